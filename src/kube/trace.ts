// SPDX-License-Identifier: Apache-2.0
/**
 * `kubectl tlscope trace sni|tls`: the same gadget session on every node's agent, through the
 * API server's port-forward, merged into one stream in time order with the node of each event.
 * A node whose agent goes away is said ("node X: agent gone (reason)") and counted; when the
 * DaemonSet's new pod is ready the node is asked again (resumed), and so is a node that joins.
 */
import { parseSelectorFlags, type ContainerSelector } from '../containers/selector.js';
import { TlscopeError, UsageError, errorMessage } from '../errors.js';
import { defaultVisible, type CommonEvent, type CommonField } from '../fields/common.js';
import { selectFields } from '../fields/field.js';
import { parseFilter } from '../fields/filter.js';
import type { GadgetDefinition } from '../gadgets/definition.js';
import { parseParams } from '../gadgets/params.js';
import { ColumnWriter, type Sink } from '../output/columns.js';
import { decodeEvent } from '../output/event-wire.js';
import { JsonWriter } from '../output/json.js';
import { Cluster, DEFAULT_NAMESPACE, loadKubeConfig, type AgentPod, type Tunnel } from './cluster.js';
import { clusterOptions, flag, help, list, paramSpecs, parseFlags, str, traceOptions, type Values } from './flags.js';
import { agentClient, type AgentClient, type AgentStats, type RunMessage, type RunRequest } from './proto.js';
import { TimeMerger } from './merge.js';

export interface KubeContext {
  out: Sink;
  err: Sink;
  signal: AbortSignal;
}

type NodeEvent = CommonEvent & { k8s?: CommonEvent['k8s'] & { node?: string } };

export function nodeField<E extends NodeEvent>(): CommonField<E> {
  return { name: 'k8s.node', column: 'K8S.NODE', width: 14, description: 'Kubernetes node the event was seen on', visible: true, group: 'k8s', get: (e) => e.k8s?.node };
}

const POLL_MS = 2000;
const MERGE_TICK_MS = 100;

export function traceUsage(def: GadgetDefinition<any, any>): string {
  const specs = { ...traceOptions, ...clusterOptions, ...paramSpecs(def.params) };
  return help(`kubectl tlscope ${def.name} [options]`, `${def.summary}\nOn every node (or --node NAME…), through each node's tlscope agent; events merged in time order.`, specs,
    'Scope flags are tlscope\'s (see `tlscope ' + def.name + ' --help`); pod filters are resolved by the API, and only the nodes\nthat run matching pods are asked. Needs pods/portforward in the agents\' namespace.');
}

interface NodeRun {
  node: string;
  pod: string;
  tunnel: Tunnel;
  client: AgentClient;
  call: ReturnType<AgentClient['Run']>;
  stats: AgentStats | undefined;
  started: boolean;
  done: boolean;
}

function rawParams(def: GadgetDefinition<any, any>, v: Values): { raw: Record<string, unknown>; wire: Record<string, string> } {
  const raw: Record<string, unknown> = {};
  const wire: Record<string, string> = {};
  for (const p of def.params) {
    if (p.hidden || v[p.name] === undefined) continue;
    if (p.type === 'bool') {
      raw[p.name] = flag(v, p.name);
      wire[p.name] = String(flag(v, p.name));
    } else if (p.type === 'list') {
      const l = list(v, p.name) ?? [];
      raw[p.name] = l;
      wire[p.name] = l.join(',');
    } else {
      raw[p.name] = str(v, p.name);
      wire[p.name] = str(v, p.name) as string;
    }
  }
  return { raw, wire };
}

function wireScope(s: ContainerSelector): RunRequest['scope'] {
  return {
    runtimes: [...(s.runtimes ?? [])],
    container_names: [...(s.containerNames ?? [])],
    host: s.host === true,
    pids: [...(s.pids ?? [])],
    k8s_namespace: s.k8sNamespace ?? '',
    k8s_pod_name: s.k8sPodName ?? '',
    k8s_container_name: s.k8sContainerName ?? '',
    k8s_selector: { ...(s.k8sSelector ?? {}) },
  };
}

function plural(n: number, w: string): string {
  return `${n} ${w}${n === 1 ? '' : 's'}`;
}

export async function runKubeTrace<E extends NodeEvent>(def: GadgetDefinition<E, any>, argv: string[], ctx: KubeContext): Promise<number> {
  const specs = { ...traceOptions, ...clusterOptions, ...paramSpecs(def.params) };
  const { values: v } = parseFlags(argv, specs);
  if (flag(v, 'help')) {
    ctx.out.write(traceUsage(def));
    return 0;
  }
  const format = str(v, 'output') ?? 'columns';
  if (!['columns', 'json', 'jsonpretty'].includes(format)) throw new UsageError(`unknown output format "${format}"`, 'use columns, json or jsonpretty');
  const podNs = str(v, 'k8s-namespace') ?? str(v, 'namespace');
  const selector = parseSelectorFlags({
    ...(v['runtimes'] === undefined ? {} : { runtimes: list(v, 'runtimes') ?? [] }),
    ...(v['containername'] === undefined ? {} : { containername: list(v, 'containername') ?? [] }),
    ...(flag(v, 'host') ? { host: true } : {}),
    ...(v['pid'] === undefined ? {} : { pid: list(v, 'pid') ?? [] }),
    ...(podNs === undefined ? {} : { k8sNamespace: podNs }),
    ...(str(v, 'k8s-podname') === undefined ? {} : { k8sPodname: str(v, 'k8s-podname') as string }),
    ...(str(v, 'k8s-containername') === undefined ? {} : { k8sContainername: str(v, 'k8s-containername') as string }),
    ...(v['k8s-selector'] === undefined ? {} : { k8sSelector: list(v, 'k8s-selector') ?? [] }),
  });
  const timeoutText = str(v, 'timeout');
  const timeout = timeoutText === undefined ? undefined : Number(timeoutText);
  if (timeout !== undefined && !(Number.isInteger(timeout) && timeout > 0)) throw new UsageError(`--timeout wants a whole number of seconds, got "${timeoutText}"`);
  const filter = str(v, 'filter');
  const verbose = flag(v, 'verbose');
  // usage errors before anything talks to the cluster
  const { raw, wire } = rawParams(def, v);
  const params = parseParams(def.params, raw);
  def.validate?.(params, selector);
  const view = { json: format !== 'columns' };
  const fields = [nodeField<E>(), ...def.fields(params, view)];
  parseFilter(def.fields(params, view), filter);
  const shown = format === 'columns'
    ? selectFields(fields, str(v, 'fields'), defaultVisible({ containers: false, pods: true }))
    : selectFields(fields, str(v, 'fields'), () => true);
  const onlyNodes = list(v, 'node');

  const kc = loadKubeConfig({ ...(str(v, 'kubeconfig') === undefined ? {} : { kubeconfig: str(v, 'kubeconfig') as string }), ...(str(v, 'context') === undefined ? {} : { context: str(v, 'context') as string }) });
  const cluster = new Cluster(kc, str(v, 'agent-namespace') ?? DEFAULT_NAMESPACE);
  await cluster.checkPortForward();
  const allNodes = await cluster.nodes();
  for (const n of onlyNodes ?? []) {
    if (!allNodes.includes(n)) throw new UsageError(`--node ${n}: no such node`, `nodes: ${allNodes.join(', ')}`);
  }
  const podFilter = selector.k8sPodName !== undefined || selector.k8sSelector !== undefined;

  async function wantedNodes(): Promise<string[]> {
    let nodes = onlyNodes ?? allNodes;
    if (podFilter) {
      const pods = await cluster.matchingPods({ ...(selector.k8sNamespace === undefined ? {} : { namespace: selector.k8sNamespace }), ...(selector.k8sPodName === undefined ? {} : { podName: selector.k8sPodName }), ...(selector.k8sSelector === undefined ? {} : { selector: { ...selector.k8sSelector } }) });
      // no pod yet: every node, since it may start anywhere; else only the nodes that run them
      if (pods.length > 0) nodes = nodes.filter((n) => pods.some((p) => p.node === n));
    }
    return nodes;
  }

  const request: RunRequest = {
    gadget: def.name, params: wire, scope: wireScope(selector), filter: filter ?? '', timeout_ms: timeout === undefined ? 0 : timeout * 1000,
    verbose, json_view: view.json, max_queued_events: 0,
  };
  const writer = format === 'columns' ? new ColumnWriter(shown, ctx.out) : new JsonWriter(shown, ctx.out, format === 'jsonpretty');
  if (writer instanceof ColumnWriter) writer.header();
  const detail = format === 'columns' ? def.detail?.(params) : undefined;
  const merger = new TimeMerger<E>();
  const runs = new Map<string, NodeRun>();
  const gone: { node: string; reason: string }[] = [];
  const finals: AgentStats[] = [];
  const everStarted = new Set<string>();
  let stopping = false;
  let problem: TlscopeError | undefined;
  const say = (text: string): void => { ctx.err.write(`tlscope: ${text}\n`); };

  const flushEvents = (events: E[]): void => {
    if (events.length === 0) return;
    if (detail === undefined) writer.write(events);
    else {
      for (const e of events) {
        writer.write([e]);
        const text = detail(e);
        if (text) ctx.out.write(text.endsWith('\n') ? text : `${text}\n`);
      }
    }
  };

  let settle: () => void = () => {};
  const allDone = new Promise<void>((resolve) => { settle = resolve; });
  const checkDone = (): void => {
    if (timeout !== undefined && [...runs.values()].every((r) => r.done) && runs.size > 0 && timedOut) settle();
  };
  let timedOut = false;

  const asked = new Set<string>();
  const starting = new Set<string>();
  function startNode(a: AgentPod): void {
    asked.add(a.node);
    starting.add(a.node);
    void (async () => {
      const tunnel = await cluster.tunnel(a.pod);
      const client = agentClient(tunnel.address);
      const call = client.Run(request);
      const run: NodeRun = { node: a.node, pod: a.pod, tunnel, client, call, stats: undefined, started: false, done: false };
      runs.set(a.node, run);
      starting.delete(a.node);
      let final: AgentStats | undefined;
      let leaving: string | undefined;
      const end = (reason: string | undefined): void => {
        if (run.done) return;
        run.done = true;
        tunnel.close();
        client.close();
        const last = final ?? run.stats;
        if (last !== undefined) finals.push(last);
        if (reason !== undefined && !stopping) {
          gone.push({ node: a.node, reason });
          say(`node ${a.node}: agent gone (${reason})`);
          runs.delete(a.node); // asked again when its agent is back
        }
        checkDone();
      };
      call.on('data', (m: RunMessage) => {
        switch (m.kind) {
          case 'started':
            run.started = true;
            if (everStarted.has(a.node)) say(`node ${a.node}: agent back (${a.pod}), resumed`);
            everStarted.add(a.node);
            if (verbose) say(`node ${a.node}: ${m.started?.gadget} started (agent ${m.started?.version}, pod ${a.pod})`);
            break;
          case 'events':
            merger.push((m.events?.json ?? []).map((j) => decodeEvent<E>(j)));
            break;
          case 'warning':
            say(`node ${a.node}: warning: ${m.warning?.text}`);
            break;
          case 'info':
            if (!m.info?.verbose || verbose) say(`node ${a.node}: ${m.info?.text}`);
            break;
          case 'stats':
            run.stats = m.stats;
            if (m.stats?.final) final = m.stats;
            break;
          case 'error':
            if (m.error?.code === 'ERR_AGENT_STOPPING') {
              leaving = m.error.text;
              break;
            }
            problem ??= new TlscopeError(m.error?.code ?? 'ERR_AGENT', `node ${a.node}: ${m.error?.text}`, { ...(m.error?.hint ? { hint: m.error.hint } : {}), ...(m.error?.exit_code ? { exitCode: m.error.exit_code } : {}) });
            say(`node ${a.node}: ${m.error?.text}`);
            break;
        }
      });
      call.on('error', (e) => {
        if (stopping && e.code === 1) return end(undefined); // cancelled by us
        end(leaving ?? (tunnel.lastError() || e.details || errorMessage(e)));
      });
      call.on('end', () => end(leaving ?? (final !== undefined || problem !== undefined ? undefined : 'its stream ended without the final stats')));
    })().catch((e: unknown) => {
      starting.delete(a.node);
      say(`node ${a.node}: cannot reach its agent: ${errorMessage(e)}`);
    });
  }

  const notReadySaid = new Map<string, string>();
  async function poll(first: boolean): Promise<void> {
    const [agents, nodes] = await Promise.all([cluster.agentPods(), wantedNodes()]);
    for (const node of nodes) {
      if (runs.has(node) || starting.has(node)) continue;
      const a = agents.find((x) => x.node === node && x.ready);
      if (a === undefined) {
        const why = agents.find((x) => x.node === node)?.reason ?? 'no agent pod (is tlscope deployed? kubectl tlscope deploy)';
        if (notReadySaid.get(node) !== why) say(`node ${node}: agent not ready (${why})`);
        notReadySaid.set(node, why);
        continue;
      }
      notReadySaid.delete(node);
      startNode(a);
    }
    if (first && runs.size === 0 && notReadySaid.size === nodes.length && nodes.length > 0 && [...notReadySaid.values()].every((w) => w.startsWith('no agent pod'))) {
      throw new TlscopeError('ERR_NO_AGENT', `no tlscope agent on ${nodes.length === 1 ? `node ${nodes[0]}` : `any of the ${nodes.length} nodes`} in namespace ${cluster.namespace}`, { hint: 'kubectl tlscope deploy (or --agent-namespace NS)' });
    }
  }

  await poll(true);
  say(`asking ${plural(asked.size, 'node')}: ${[...asked].sort().join(', ')}`);
  const ticker = setInterval(() => flushEvents(merger.take(Date.now())), MERGE_TICK_MS);
  const poller = setInterval(() => { if (!stopping) poll(false).catch((e: unknown) => say(`cannot list the agents: ${errorMessage(e)}`)); }, POLL_MS);
  const timers: NodeJS.Timeout[] = [];
  if (timeout !== undefined) {
    // the agents end their sessions at the timeout and send their final stats; wait a little for them
    timers.push(setTimeout(() => { timedOut = true; checkDone(); timers.push(setTimeout(settle, 5000)); }, timeout * 1000));
  }
  const onAbort = (): void => settle();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  await allDone;
  stopping = true;
  ctx.signal.removeEventListener('abort', onAbort);
  clearInterval(poller);
  for (const t of timers) clearTimeout(t);
  for (const r of runs.values()) {
    if (!r.done) {
      r.call.cancel();
      if (r.stats !== undefined) finals.push(r.stats);
      r.done = true;
      r.tunnel.close();
      r.client.close();
    }
  }
  clearInterval(ticker);
  flushEvents(merger.drain());

  // the summary: every node's counts added up, and every node lost on the way
  const sum = { shown: 0, lost: 0, outOfScope: 0, filtered: 0, dropped: 0, misses: {} as Record<string, number> };
  const reported = new Set<string>();
  for (const st of finals) {
    reported.add(st.node);
    sum.shown += st.shown;
    sum.lost += st.lost;
    sum.outOfScope += st.out_of_scope;
    sum.filtered += st.filtered;
    sum.dropped += st.dropped_slow_client;
    for (const [k, n] of Object.entries(st.misses)) sum.misses[k] = (sum.misses[k] ?? 0) + n;
    for (const p of st.problems) problem ??= new TlscopeError(p.code, `node ${st.node}: ${p.text}`, p.hint ? { hint: p.hint } : {});
  }
  const parts = [`${plural(sum.shown, 'event')} shown from ${plural(everStarted.size, 'node')}`, sum.lost > 0 ? `${sum.lost} lost (ring buffer full)` : '0 lost'];
  if (sum.dropped > 0) parts.push(`${sum.dropped} dropped by the agents (this client read too slowly)`);
  if (sum.outOfScope > 0) parts.push(`${sum.outOfScope} out of scope`);
  if (sum.filtered > 0) parts.push(`${sum.filtered} filtered out`);
  for (const [k, n] of Object.entries(sum.misses)) if (n > 0) parts.push(`${n} ${k}`);
  if (merger.late > 0) parts.push(`${merger.late} merged out of order (a node more than 250 ms behind)`);
  if (gone.length > 0) parts.push(`${plural(gone.length, 'agent')} gone: ${gone.map((g) => `node ${g.node} (${g.reason})`).join('; ')}`);
  say(parts.join(', '));
  if (problem !== undefined) throw problem;
  if (everStarted.size === 0) throw new TlscopeError('ERR_NO_AGENT', 'no node\'s agent could run the trace', { hint: 'kubectl tlscope deploy, then check kubectl -n tlscope get pods' });
  return 0;
}
