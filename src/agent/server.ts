// SPDX-License-Identifier: Apache-2.0
/**
 * The node agent: a gRPC server (proto/tlscope/agent/v1/agent.proto) that runs gadget sessions
 * on this node for its clients and streams what they yield, each event with k8s.node.
 *
 * It listens where only the API server's port-forward reaches it: the loopback of its pod's
 * network namespace (or a unix socket). Every session runs in-process on one shared container
 * index of this node's runtime; each client has a bounded queue (client-stream.ts). stop()
 * ends every session (detaching its programs and links), then the server and the index.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { Server, ServerCredentials, status as GrpcStatus, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { ContainerIndex, createRuntimeClients, type ContainerInfo, type RuntimeName } from '../containers/index.js';
import type { ContainerSelector } from '../containers/selector.js';
import { errorMessage, TlscopeError } from '../errors.js';
import type { CommonEvent } from '../fields/common.js';
import { gadgetByName } from '../gadgets/registry.js';
import { encodeEvent } from '../output/event-wire.js';
import { Session, type SessionStats } from '../session/session.js';
import { hostNamespaces, namespaceInode } from '../proc/namespaces.js';
import type { CapturedPacket } from '../gadgets/capture/definition.js';
import { CaptureRelay } from './capture-relay.js';
import { ClientStream, DEFAULT_CLIENT_LIMITS, type ClientLimits } from './client-stream.js';
import { agentPackage, AGENT_SERVICE, HEALTH_SERVICE } from './proto.js';

export interface AgentOptions {
  /** the node's name (the downward API's spec.nodeName) */
  node: string;
  /** "HOST:PORT" (loopback only) or "unix:/path" */
  listen: string;
  version: string;
  /** the node's runtimes to follow (default containerd) and their sockets */
  runtimes?: readonly RuntimeName[];
  sockets?: Partial<Record<RuntimeName, string>>;
  /** per-client queue bounds */
  limits?: Partial<ClientLimits>;
  /** `tlscope doctor -o json`'s report, from the front end that starts the agent */
  doctor?: () => unknown;
  /** where the agent says what happens (stderr in the pod: kubectl logs) */
  log?: (text: string) => void;
  /** an index to use instead of one on the node's runtimes (tests) */
  index?: ContainerIndex;
  /**
   * HOST:PORT for kubelet's probes: GET /healthz (the agent answers) and /readyz (it serves
   * sessions). Only those two words, no data: it may listen on the pod's address.
   */
  health?: string;
  /**
   * Mask credentials in trace tls sessions (default true): a session gets --redact unless its
   * request's params say no-redact=true. false (`tlscope agent --no-redact`): only when asked.
   */
  redact?: boolean;
  /**
   * Learn containers before they start (the container start hook, src/containers/hook.ts).
   * Default: on where the agent shares the host's mount namespace (the hook marks the runtime
   * binaries and reads their pid files and bundles by their host paths); off in a pod, where
   * those paths are not the agent's. Off, network gadgets scoped to containers watch every
   * network namespace so that a pod's first packets are caught before the index knows it.
   */
  startHook?: boolean;
}

/** What the start-up line says about learning containers before they start. */
function hookLine(index: ContainerIndex, asked: boolean | undefined): string {
  const h = index.hookStatus();
  if (h.active) return `container start hook: on (${h.runtimes.length} runtime binar${h.runtimes.length === 1 ? 'y' : 'ies'} watched)`;
  const why = h.reason !== undefined && h.reason !== 'off' ? h.reason : asked === false ? 'turned off' : 'the agent is not in the host\'s mount namespace';
  return `container start hook: off (${why}): pods are learnt after they start, so scoped network gadgets watch every network namespace and hold what they catch until its pod is known`;
}

/** Whether this process sees the host's mounts (its mount namespace is pid 1's). */
function inHostMountNamespace(): boolean {
  // "the host" as every layer defines it (pid 1's namespaces where readable, else our own). Where
  // pid 1 cannot be read in a pod, the hook starts and finds no runtime binary at its paths: off.
  const own = namespaceInode(process.pid, 'mnt');
  return own !== undefined && own === hostNamespaces()?.mnt;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
type RunRequest = {
  gadget: string;
  params: Record<string, string>;
  scope: {
    runtimes: string[]; container_names: string[]; host: boolean; pids: number[];
    k8s_namespace: string; k8s_pod_name: string; k8s_container_name: string; k8s_selector: Record<string, string>;
  } | null;
  filter: string;
  timeout_ms: number;
  verbose: boolean;
  json_view: boolean;
  max_queued_events: number;
};
type RunMessage = Record<string, unknown>;

function isLoopbackListen(listen: string): boolean {
  if (listen.startsWith('unix:')) return true;
  const host = listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

function kernel(): string {
  try {
    return readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    return '';
  }
}

function statsMessage(node: string, st: SessionStats, dropped: number, final: boolean, counters: Record<string, number>): RunMessage {
  return {
    stats: {
      node,
      shown: st.shown,
      lost: st.lost,
      misses: st.misses,
      out_of_scope: st.outOfScope,
      filtered: st.filtered,
      held: st.held,
      missing_containers: st.missingContainers,
      problems: st.problems.map((p) => ({ code: p.code, text: p.text, hint: p.hint ?? '' })),
      dropped_slow_client: dropped,
      final,
      gadget_counters: counters,
    },
  };
}

export class Agent {
  private server: Server | undefined;
  private healthServer: HttpServer | undefined;
  private index: ContainerIndex;
  private readonly ownIndex: boolean;
  private readonly sessions = new Set<Session<any>>();
  private readonly streams = new Set<ClientStream<RunMessage>>();
  private readonly log: (text: string) => void;
  private readonly limits: ClientLimits;
  private ready = false;
  private stopping: Promise<void> | undefined;
  /** the address bound, e.g. 127.0.0.1:7443 (the port resolved when 0 was asked) */
  address = '';

  constructor(private readonly opts: AgentOptions) {
    if (!isLoopbackListen(opts.listen)) {
      throw new TlscopeError('ERR_USAGE', `the agent listens only on a loopback address or a unix socket, not ${opts.listen}`, {
        exitCode: 2,
        hint: 'clients reach it through `kubectl port-forward` (the API server), which RBAC guards: use 127.0.0.1:PORT',
      });
    }
    this.log = opts.log ?? (() => {});
    this.limits = { ...DEFAULT_CLIENT_LIMITS, ...opts.limits };
    this.ownIndex = opts.index === undefined;
    this.index = opts.index ?? new ContainerIndex({
      clients: createRuntimeClients({ runtimes: opts.runtimes ?? ['containerd'], ...(opts.sockets === undefined ? {} : { sockets: opts.sockets }) }),
      hook: opts.startHook ?? inHostMountNamespace(),
      onWarning: (w) => this.log(`warning: ${w.kind === 'runtime' ? `${w.runtime}: ` : ''}${errorMessage(w.error)}`),
    });
  }

  async start(): Promise<void> {
    const pkg = agentPackage();
    const server = new Server({ 'grpc.max_send_message_length': 64 << 20 });
    const agentService = (pkg[AGENT_SERVICE] as ServiceDefinition);
    const healthService = (pkg[HEALTH_SERVICE] as ServiceDefinition);
    server.addService(agentService, {
      Run: (call: ServerWritableStream<RunRequest, RunMessage>) => void this.run(call),
      Containers: (_call: ServerUnaryCall<unknown, unknown>, cb: sendUnaryData<unknown>) => cb(null, { node: this.opts.node, containers: this.index.all().map(containerMessage) }),
      Doctor: (_call: ServerUnaryCall<unknown, unknown>, cb: sendUnaryData<unknown>) => {
        try {
          cb(null, { node: this.opts.node, json: JSON.stringify(this.opts.doctor?.() ?? {}) });
        } catch (e) {
          cb({ code: GrpcStatus.INTERNAL, details: errorMessage(e) }, null);
        }
      },
      Info: (_call: ServerUnaryCall<unknown, unknown>, cb: sendUnaryData<unknown>) => cb(null, this.info()),
    } as UntypedServiceImplementation);
    server.addService(healthService, {
      Check: (call: ServerUnaryCall<{ service: string }, unknown>, cb: sendUnaryData<unknown>) => {
        const svc = call.request.service;
        if (svc !== '' && svc !== AGENT_SERVICE) cb(null, { status: 'SERVICE_UNKNOWN' });
        else cb(null, { status: this.ready && this.stopping === undefined ? 'SERVING' : 'NOT_SERVING' });
      },
    } as UntypedServiceImplementation);
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(this.opts.listen, ServerCredentials.createInsecure(), (err, p) => (err ? reject(new TlscopeError('ERR_AGENT', `cannot listen on ${this.opts.listen}: ${err.message}`, { cause: err })) : resolve(p)));
    });
    this.server = server;
    this.address = this.opts.listen.startsWith('unix:') ? this.opts.listen : `${this.opts.listen.slice(0, this.opts.listen.lastIndexOf(':'))}:${port}`;
    this.log(`node ${this.opts.node}: listening on ${this.address}`);
    if (this.opts.health !== undefined) await this.startHealth(this.opts.health);
    await this.index.start();
    this.ready = true;
    this.log(`node ${this.opts.node}: ready (${this.index.all().length} containers known); ${hookLine(this.index, this.opts.startHook)}; ${redactionLine(this.opts.redact !== false)}`);
  }

  private async startHealth(addr: string): Promise<void> {
    const i = addr.lastIndexOf(':');
    const host = addr.slice(0, i).replace(/^\[|\]$/g, '');
    const port = Number(addr.slice(i + 1));
    const hs = createHttpServer((req, res) => {
      const ready = this.ready && this.stopping === undefined;
      if (req.method !== 'GET' || (req.url !== '/healthz' && req.url !== '/readyz')) {
        res.writeHead(404).end();
        return;
      }
      const ok = req.url === '/healthz' || ready;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not ready\n');
    });
    await new Promise<void>((resolve, reject) => {
      hs.once('error', (e) => reject(new TlscopeError('ERR_AGENT', `cannot listen on ${addr} for health checks: ${e.message}`, { cause: e })));
      hs.listen(port, host, () => resolve());
    });
    this.healthServer = hs;
    this.log(`node ${this.opts.node}: health checks on http://${addr}/healthz and /readyz`);
  }

  info(): Record<string, unknown> {
    return { node: this.opts.node, version: this.opts.version, ready: this.ready && this.stopping === undefined, sessions: this.sessions.size, clients: this.streams.size, kernel: kernel() };
  }

  private async run(call: ServerWritableStream<RunRequest, RunMessage>): Promise<void> {
    const req = call.request;
    const node = this.opts.node;
    const limits = req.max_queued_events > 0 ? { ...this.limits, maxEvents: req.max_queued_events } : this.limits;
    const out = new ClientStream<RunMessage>(call, (json) => ({ events: { node, json } }), limits);
    this.streams.add(out);
    const controller = new AbortController();
    let gone = false;
    const onGone = (): void => {
      gone = true;
      out.abandon();
      controller.abort();
    };
    call.on('cancelled', onGone);
    call.on('error', onGone);
    let session: Session<CommonEvent> | undefined;
    const cleanups: (() => void)[] = [];
    try {
      if (this.stopping !== undefined) throw new TlscopeError('ERR_AGENT', `node ${node}: the agent is stopping`);
      const def = gadgetByName(req.gadget);
      if (def === undefined) throw new TlscopeError('ERR_USAGE', `unknown gadget "${req.gadget}"`, { exitCode: 2, hint: 'trace sni, trace tls or capture' });
      const params: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(req.params ?? {})) {
        const p = def.params.find((x) => x.name === k);
        params[k] = p?.type === 'bool' ? v === 'true' : p?.type === 'list' ? v.split(',').filter(Boolean) : v;
      }
      if (def.name === 'trace tls') Object.assign(params, sessionRedaction(params, this.opts.redact !== false));
      const scope = scopeFrom(req.scope);
      // capture's packets are copied into wire packets (and, for pods not known yet, held) by the relay
      const relay = def.name === 'capture' ? new CaptureRelay({
        node, selector: scope, byNetns: (i) => this.index.byNetns(i), hostNetns: () => this.index.hostNamespaces?.net ?? hostNamespaces()?.net,
        everyNamespace: !this.index.hookStatus().active, ownNetns: ownPodNetns(this.index), send: (packets) => out.events(packets.map((w) => encodeEvent(w))),
      }) : undefined;
      const relayTick = relay === undefined ? undefined : setInterval(() => relay.tick(Date.now()), 100);
      if (relay !== undefined) {
        for (const c of this.index.all()) relay.learn(c);
        cleanups.push(this.index.subscribe((e) => { if (e.type !== 'removed') relay.learn(e.container); }));
      }
      const counters = (sess: Session<CommonEvent>): Record<string, number> => (relay === undefined ? sess.gadgetCounters() : { ...sess.gadgetCounters(), sent: relay.counters.sent, notInScope: relay.counters.outOfScope, ownNamespace: relay.counters.own, unattributed: relay.counters.unattributed, heldNow: relay.counters.held });
      const endRelay = (): void => { if (relayTick !== undefined) clearInterval(relayTick); relay?.close(); };
      cleanups.push(endRelay);
      session = await Session.start(def as never, {
        params,
        scope,
        ...(req.filter ? { filter: req.filter } : {}),
        ...(req.timeout_ms > 0 ? { timeoutMs: req.timeout_ms } : {}),
        signal: controller.signal,
        index: this.index,
        verbose: req.verbose,
        view: { json: req.json_view },
        // synchronous: capture's packets are views of its ring, valid only during the call. The
        // node goes on here, not as an operator: capture's packets (processEvents false) skip them.
        sink: relay === undefined
          ? { events: (batch: CommonEvent[]) => out.events(batch.map((e) => encodeEvent(withNode(e, node)))) }
          : { events: (batch: CommonEvent[]) => relay.packets(batch as unknown as CapturedPacket[], Date.now()) },
      }) as Session<CommonEvent>;
      this.sessions.add(session);
      out.control({ started: { node, gadget: def.name, version: this.opts.version } });
      // Without the start hook (an agent in a pod) a pod is learnt after it starts; network
      // gadgets catch its first packets anyway (every namespace is watched), but probes go on a
      // pod's TLS libraries only once it is known: what it says before that is not seen.
      if (def.name === 'trace tls' && !this.index.hookStatus().active) {
        out.control({ warning: { code: 'late-attach', text: `pods are learnt after they start here (${hookLine(this.index, this.opts.startHook).replace(/\): .*$/, ')')}): a pod's TLS calls made before its libraries are probed (typically its first ~100 ms) are not seen` } });
      }
      this.log(`node ${node}: ${def.name} started for a client (${this.sessions.size} sessions)`);
      const s = session;
      for await (const m of s) {
        if (gone) break;
        if (m.type === 'warning') out.control({ warning: { code: m.code, text: m.text, verbose: false } });
        else if (m.type === 'info') out.control({ info: { code: m.code, text: m.text, verbose: m.verbose } });
        else if (m.type === 'stats') {
          if (m.final) {
            endRelay();
            const last = statsMessage(node, m.stats, out.dropped, true, counters(s));
            if (this.stopping === undefined) out.end(last);
            else {
              // the session ended because the agent is going (SIGTERM: its pod is deleted or
              // restarted), not because the trace is over: the client says so and comes back
              out.control(last);
              out.end({ error: { code: 'ERR_AGENT_STOPPING', text: 'the agent is stopping (its pod is being deleted or restarted)', hint: '', exit_code: 1 } });
            }
            return;
          }
          out.control(statsMessage(node, m.stats, out.dropped, false, counters(s)));
        }
      }
      if (!gone) {
        const st = await s.stop();
        endRelay();
        out.end(statsMessage(node, st, out.dropped, true, counters(s)));
      }
    } catch (e) {
      const err = e instanceof TlscopeError ? e : new TlscopeError('ERR_INTERNAL', errorMessage(e));
      this.log(`node ${node}: ${req.gadget}: ${err.message}`);
      out.end({ error: { code: err.code, text: err.message, hint: err.hint ?? '', exit_code: err.exitCode } });
    } finally {
      for (const c of cleanups) c();
      if (session !== undefined) {
        await session.stop().catch(() => undefined);
        this.sessions.delete(session);
        this.log(`node ${node}: ${req.gadget} ended${gone ? ' (client gone)' : ''}; dropped for a slow client: ${out.dropped}`);
      }
      this.streams.delete(out);
    }
  }

  /** Ends every session (their programs and links detach), then the server and the index. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all([...this.sessions].map((s) => s.stop().catch(() => undefined)));
      const server = this.server;
      if (server !== undefined) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => { server.forceShutdown(); resolve(); }, 3000);
          server.tryShutdown(() => { clearTimeout(t); resolve(); });
        });
      }
      this.healthServer?.close();
      if (this.ownIndex) await this.index.close();
      this.log(`node ${this.opts.node}: stopped`);
    })();
    return this.stopping;
  }
}

/** The agent's network namespace when it is not the host's (a pod's): its loopback carries the clients' streams. */
function ownPodNetns(index: ContainerIndex): number | undefined {
  const own = namespaceInode(process.pid, 'net');
  return own !== undefined && own !== (index.hostNamespaces?.net ?? hostNamespaces()?.net) ? own : undefined;
}

/** The redaction parameters of a trace tls session: --redact by default unless no-redact was asked. */
export function sessionRedaction(params: Readonly<Record<string, unknown>>, byDefault: boolean): Record<string, unknown> {
  if (params['no-redact'] === true) return { redact: false };
  return byDefault ? { redact: true } : {};
}

export function redactionLine(on: boolean): string {
  return on
    ? 'trace tls credentials are masked (Authorization, Proxy-Authorization, Cookie, Set-Cookie, gRPC *-bin metadata; in raw HTTP/1 and HTTP/2 data and in --http exchanges): a client turns it off with --no-redact, the agent with tlscope agent --no-redact'
    : 'trace tls credentials are NOT masked (--no-redact): a client masks them with --redact';
}

/**
 * The scope a client asked for, on this node. The node's pods only, unless the client asked for
 * the host too: on a node, processes outside this node's runtime are not this node's pods (a
 * test cluster's nodes may even share one kernel).
 */
export function scopeFrom(s: RunRequest['scope']): ContainerSelector {
  if (s === null || s === undefined) return { host: false, runtimes: ['containerd'] };
  const sel: { -readonly [K in keyof ContainerSelector]: ContainerSelector[K] } = {};
  sel.runtimes = s.runtimes.length > 0 ? s.runtimes : ['containerd'];
  if (s.container_names.length > 0) sel.containerNames = s.container_names;
  if (s.host) sel.host = true;
  if (s.pids.length > 0) sel.pids = s.pids;
  if (s.k8s_namespace) sel.k8sNamespace = s.k8s_namespace;
  if (s.k8s_pod_name) sel.k8sPodName = s.k8s_pod_name;
  if (s.k8s_container_name) sel.k8sContainerName = s.k8s_container_name;
  if (Object.keys(s.k8s_selector ?? {}).length > 0) sel.k8sSelector = s.k8s_selector;
  return sel;
}

/** The event with k8s.node set (a shallow copy: the session's object is left as it was). */
export function withNode(e: CommonEvent, node: string): CommonEvent {
  return { ...e, k8s: { ...(e.k8s ?? {}), node } as NonNullable<CommonEvent['k8s']> };
}

function containerMessage(c: ContainerInfo): Record<string, unknown> {
  return {
    runtime: c.runtime, id: c.id, name: c.name, image: c.image, pid: c.pid, mntns: c.mntns, netns: c.netns,
    k8s_namespace: c.k8s?.namespace ?? '', k8s_pod_name: c.k8s?.podName ?? '', k8s_container_name: c.k8s?.containerName ?? '', k8s_pod_uid: c.k8s?.podUid ?? '',
  };
}
