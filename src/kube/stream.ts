// SPDX-License-Identifier: Apache-2.0
/**
 * The cluster stream: one gadget session on every node's agent, through the API server's
 * port-forward, merged into one stream in time order. It finds the agents (and the nodes that
 * run the pods asked for), opens a tunnel and a Run per node, says when a node's agent goes
 * ("node X: agent gone (reason)") and asks it again when the DaemonSet's new pod is ready
 * ("node X: agent back (pod), resumed"), as it does for a node that joins. What it produces is
 * messages — merged event batches, lines to say, each node's state and counts — and, at its end,
 * the summed final stats. It writes nothing: `kubectl tlscope trace` puts a writer behind it,
 * `kubectl tlscope ui` the UI's hub.
 */
import { parseSelectorFlags, type ContainerSelector } from '../containers/selector.js';
import { TlscopeError, UsageError, errorMessage } from '../errors.js';
import type { CommonEvent } from '../fields/common.js';
import type { GadgetDefinition } from '../gadgets/definition.js';
import { decodeEvent } from '../output/event-wire.js';
import { Cluster, DEFAULT_NAMESPACE, loadKubeConfig, type AgentPod, type Tunnel } from './cluster.js';
import { flag, list, str, type Values } from './flags.js';
import { TimeMerger } from './merge.js';
import { agentClient, type AgentClient, type AgentStats, type RunMessage, type RunRequest } from './proto.js';

export type NodeEvent = CommonEvent & { k8s?: CommonEvent['k8s'] & { node?: string } };

const POLL_MS = 2000;
const MERGE_TICK_MS = 100;

/** Where a node stands: asked (tunnel opening), running, its agent gone, not ready, unreachable, ended. */
export type NodeStateName = 'starting' | 'running' | 'gone' | 'not ready' | 'unreachable' | 'ended';

export interface NodeState {
  node: string;
  state: NodeStateName;
  /** the agent pod asked (or last asked) */
  pod: string | undefined;
  /** why it is gone, not ready or unreachable */
  reason: string | undefined;
  /** times its agent went away during this stream */
  gone: number;
  /** its counts over the whole stream (its agents' runs added up) */
  shown: number;
  lost: number;
  misses: Record<string, number>;
  outOfScope: number;
  filtered: number;
  held: number;
  dropped: number;
  /** the gadget's own counters over the whole stream (capture: captured, received, dropped, …) */
  counters: Record<string, number>;
}

/** A line the stream says; `text` is the line as `kubectl tlscope trace` prints it (after "tlscope: "). */
export interface StreamSay {
  type: 'say';
  level: 'warning' | 'info';
  node: string | undefined;
  text: string;
  /** set when the line is a node's error (its session could not run) */
  error?: true;
}

export type ClusterMessage<E> =
  | { type: 'events'; events: E[] }
  | StreamSay
  /** a node's state or counts changed: every node's, in name order */
  | { type: 'nodes'; nodes: NodeState[] };

export interface ClusterSum {
  shown: number;
  lost: number;
  outOfScope: number;
  filtered: number;
  dropped: number;
  misses: Record<string, number>;
}

export interface ClusterSummary {
  /** nodes whose agent started the session */
  started: string[];
  gone: { node: string; reason: string }[];
  sum: ClusterSum;
  /** events merged out of order */
  late: number;
  /** the first problem a node reported (an error, or a final stats problem) */
  problem: TlscopeError | undefined;
  nodes: NodeState[];
}

export interface ClusterStreamOptions {
  cluster: Cluster;
  /** every node of the cluster */
  allNodes: readonly string[];
  /** --node: only these */
  onlyNodes: readonly string[] | undefined;
  selector: ContainerSelector;
  request: RunRequest;
  verbose: boolean;
  /** seconds: the agents end their sessions then (and the stream ends when they all have) */
  timeout: number | undefined;
  signal: AbortSignal;
  emit(m: ClusterMessage<NodeEvent>): void;
  /** how long an event waits for earlier ones of slower nodes (default 250 ms) */
  mergeWindowMs?: number;
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

function plural(n: number, w: string): string {
  return `${n} ${w}${n === 1 ? '' : 's'}`;
}

/** The scope flags (tlscope's, and -n as --k8s-namespace) as a selector; a usage error when they do not parse. */
export function selectorFromFlags(v: Values): ContainerSelector {
  const podNs = str(v, 'k8s-namespace') ?? str(v, 'namespace');
  return parseSelectorFlags({
    ...(v['runtimes'] === undefined ? {} : { runtimes: list(v, 'runtimes') ?? [] }),
    ...(v['containername'] === undefined ? {} : { containername: list(v, 'containername') ?? [] }),
    ...(flag(v, 'host') ? { host: true } : {}),
    ...(v['pid'] === undefined ? {} : { pid: list(v, 'pid') ?? [] }),
    ...(podNs === undefined ? {} : { k8sNamespace: podNs }),
    ...(str(v, 'k8s-podname') === undefined ? {} : { k8sPodname: str(v, 'k8s-podname') as string }),
    ...(str(v, 'k8s-containername') === undefined ? {} : { k8sContainername: str(v, 'k8s-containername') as string }),
    ...(v['k8s-selector'] === undefined ? {} : { k8sSelector: list(v, 'k8s-selector') ?? [] }),
  });
}

/** --timeout SECONDS, checked. */
export function timeoutFromFlags(v: Values): number | undefined {
  const timeoutText = str(v, 'timeout');
  const timeout = timeoutText === undefined ? undefined : Number(timeoutText);
  if (timeout !== undefined && !(Number.isInteger(timeout) && timeout > 0)) throw new UsageError(`--timeout wants a whole number of seconds, got "${timeoutText}"`);
  return timeout;
}

/** A gadget's parameters from the flags: as the definition reads them, and as the agent's request carries them. */
export function rawParams(def: GadgetDefinition<any, any>, v: Values): { raw: Record<string, unknown>; wire: Record<string, string> } {
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

export function wireScope(s: ContainerSelector): RunRequest['scope'] {
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

/** The cluster of --kubeconfig/--context, its port-forward right checked, its nodes, --node checked against them. */
export async function openCluster(v: Values): Promise<{ cluster: Cluster; allNodes: string[]; onlyNodes: string[] | undefined; context: string }> {
  const onlyNodes = list(v, 'node');
  const kc = loadKubeConfig({ ...(str(v, 'kubeconfig') === undefined ? {} : { kubeconfig: str(v, 'kubeconfig') as string }), ...(str(v, 'context') === undefined ? {} : { context: str(v, 'context') as string }) });
  const cluster = new Cluster(kc, str(v, 'agent-namespace') ?? DEFAULT_NAMESPACE);
  await cluster.checkPortForward();
  const allNodes = await cluster.nodes();
  for (const n of onlyNodes ?? []) {
    if (!allNodes.includes(n)) throw new UsageError(`--node ${n}: no such node`, `nodes: ${allNodes.join(', ')}`);
  }
  return { cluster, allNodes, onlyNodes, context: kc.getCurrentContext() };
}

function emptyState(node: string): NodeState {
  return { node, state: 'starting', pod: undefined, reason: undefined, gone: 0, shown: 0, lost: 0, misses: {}, outOfScope: 0, filtered: 0, held: 0, dropped: 0, counters: {} };
}

/** An agent's final counts added to a node's (with its gadget counters) or to the cluster's sum. */
function addStats(to: ClusterSum & { counters?: Record<string, number> }, st: AgentStats): void {
  to.shown += st.shown;
  to.lost += st.lost;
  to.outOfScope += st.out_of_scope;
  to.filtered += st.filtered;
  to.dropped += st.dropped_slow_client;
  for (const [k, n] of Object.entries(st.misses)) to.misses[k] = (to.misses[k] ?? 0) + n;
  const counters = to.counters;
  if (counters !== undefined) for (const [k, n] of Object.entries(st.gadget_counters ?? {})) counters[k] = (counters[k] ?? 0) + n;
}

/** The stream's closing line, as `kubectl tlscope trace` says it. */
export function summaryLine(s: ClusterSummary): string {
  const { sum } = s;
  const parts = [`${plural(sum.shown, 'event')} shown from ${plural(s.started.length, 'node')}`, sum.lost > 0 ? `${sum.lost} lost (ring buffer full)` : '0 lost'];
  if (sum.dropped > 0) parts.push(`${sum.dropped} dropped by the agents (this client read too slowly)`);
  if (sum.outOfScope > 0) parts.push(`${sum.outOfScope} out of scope`);
  if (sum.filtered > 0) parts.push(`${sum.filtered} filtered out`);
  for (const [k, n] of Object.entries(sum.misses)) if (n > 0) parts.push(`${n} ${k}`);
  if (s.late > 0) parts.push(`${s.late} merged out of order (a node more than 250 ms behind)`);
  if (s.gone.length > 0) parts.push(`${plural(s.gone.length, 'agent')} gone: ${s.gone.map((g) => `node ${g.node} (${g.reason})`).join('; ')}`);
  return parts.join(', ');
}

/**
 * Runs the stream until the signal (or, with a timeout, until every node's session has ended)
 * and returns its summary. Throws ERR_NO_AGENT before anything runs when no node asked has an
 * agent pod at all.
 */
export async function runClusterStream(o: ClusterStreamOptions): Promise<ClusterSummary> {
  const { cluster, request, verbose, timeout, selector } = o;
  const podFilter = selector.k8sPodName !== undefined || selector.k8sSelector !== undefined;

  async function wantedNodes(): Promise<string[]> {
    let nodes = [...(o.onlyNodes ?? o.allNodes)];
    if (podFilter) {
      const pods = await cluster.matchingPods({ ...(selector.k8sNamespace === undefined ? {} : { namespace: selector.k8sNamespace }), ...(selector.k8sPodName === undefined ? {} : { podName: selector.k8sPodName }), ...(selector.k8sSelector === undefined ? {} : { selector: { ...selector.k8sSelector } }) });
      // no pod yet: every node, since it may start anywhere; else only the nodes that run them
      if (pods.length > 0) nodes = nodes.filter((n) => pods.some((p) => p.node === n));
    }
    return nodes;
  }

  const merger = new TimeMerger<NodeEvent>(o.mergeWindowMs);
  const runs = new Map<string, NodeRun>();
  const gone: { node: string; reason: string }[] = [];
  const finals: AgentStats[] = [];
  const everStarted = new Set<string>();
  let stopping = false;
  let problem: TlscopeError | undefined;
  const say = (level: StreamSay['level'], node: string | undefined, text: string, error = false): void => o.emit({ type: 'say', level, node, text, ...(error ? { error: true as const } : {}) });

  // each node's state; `ended` holds the counts of its agents' runs that are over
  const states = new Map<string, NodeState>();
  const ended = new Map<string, NodeState>();
  const stateOf = (node: string): NodeState => {
    let s = states.get(node);
    if (s === undefined) states.set(node, (s = emptyState(node)));
    return s;
  };
  const publish = (): void => {
    const nodes: NodeState[] = [];
    for (const node of [...states.keys()].sort()) {
      const s = states.get(node) as NodeState;
      const total: NodeState = { ...s, ...emptyState(node), state: s.state, pod: s.pod, reason: s.reason, gone: s.gone, held: runs.get(node)?.stats?.held ?? 0 };
      const base = ended.get(node);
      if (base !== undefined) {
        total.shown += base.shown; total.lost += base.lost; total.outOfScope += base.outOfScope; total.filtered += base.filtered; total.dropped += base.dropped;
        for (const [k, n] of Object.entries(base.misses)) total.misses[k] = (total.misses[k] ?? 0) + n;
        for (const [k, n] of Object.entries(base.counters)) total.counters[k] = (total.counters[k] ?? 0) + n;
      }
      const live = runs.get(node);
      if (live?.stats !== undefined && !live.done) addStats(total, live.stats);
      nodes.push(total);
    }
    o.emit({ type: 'nodes', nodes });
  };
  const setState = (node: string, state: NodeStateName, pod: string | undefined, reason: string | undefined): void => {
    const s = stateOf(node);
    s.state = state;
    s.pod = pod;
    s.reason = reason;
    publish();
  };
  const keepFinal = (node: string, st: AgentStats): void => {
    finals.push(st);
    let base = ended.get(node);
    if (base === undefined) ended.set(node, (base = emptyState(node)));
    addStats(base, st);
  };

  let settle: () => void = () => {};
  const allDone = new Promise<void>((resolve) => { settle = resolve; });
  let timedOut = false;
  const checkDone = (): void => {
    if (timeout !== undefined && [...runs.values()].every((r) => r.done) && runs.size > 0 && timedOut) settle();
  };

  const asked = new Set<string>();
  const starting = new Set<string>();
  function startNode(a: AgentPod): void {
    asked.add(a.node);
    starting.add(a.node);
    setState(a.node, 'starting', a.pod, undefined);
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
        if (last !== undefined) keepFinal(a.node, last);
        if (reason !== undefined && !stopping) {
          gone.push({ node: a.node, reason });
          stateOf(a.node).gone++;
          say('warning', a.node, `node ${a.node}: agent gone (${reason})`);
          runs.delete(a.node); // asked again when its agent is back
          setState(a.node, 'gone', a.pod, reason);
        } else setState(a.node, 'ended', a.pod, undefined);
        checkDone();
      };
      call.on('data', (m: RunMessage) => {
        switch (m.kind) {
          case 'started':
            run.started = true;
            if (everStarted.has(a.node)) say('info', a.node, `node ${a.node}: agent back (${a.pod}), resumed`);
            everStarted.add(a.node);
            if (verbose) say('info', a.node, `node ${a.node}: ${m.started?.gadget} started (agent ${m.started?.version}, pod ${a.pod})`);
            setState(a.node, 'running', a.pod, undefined);
            break;
          case 'events':
            merger.push((m.events?.json ?? []).map((j) => decodeEvent<NodeEvent>(j)));
            break;
          case 'warning':
            say('warning', a.node, `node ${a.node}: warning: ${m.warning?.text}`);
            break;
          case 'info':
            if (!m.info?.verbose || verbose) say('info', a.node, `node ${a.node}: ${m.info?.text}`);
            break;
          case 'stats':
            run.stats = m.stats;
            if (m.stats?.final) final = m.stats;
            publish();
            break;
          case 'error':
            if (m.error?.code === 'ERR_AGENT_STOPPING') {
              leaving = m.error.text;
              break;
            }
            problem ??= new TlscopeError(m.error?.code ?? 'ERR_AGENT', `node ${a.node}: ${m.error?.text}`, { ...(m.error?.hint ? { hint: m.error.hint } : {}), ...(m.error?.exit_code ? { exitCode: m.error.exit_code } : {}) });
            say('warning', a.node, `node ${a.node}: ${m.error?.text}`, true);
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
      say('warning', a.node, `node ${a.node}: cannot reach its agent: ${errorMessage(e)}`);
      setState(a.node, 'unreachable', a.pod, errorMessage(e));
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
        if (notReadySaid.get(node) !== why) {
          say('warning', node, `node ${node}: agent not ready (${why})`);
          // a node whose agent is gone stays "gone" (with why) until it is back
          const s = stateOf(node);
          if (s.state !== 'gone') setState(node, 'not ready', agents.find((x) => x.node === node)?.pod, why);
        }
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
  say('info', undefined, `asking ${plural(asked.size, 'node')}: ${[...asked].sort().join(', ')}`);
  const flush = (events: NodeEvent[]): void => {
    if (events.length > 0) o.emit({ type: 'events', events });
  };
  const ticker = setInterval(() => flush(merger.take(Date.now())), MERGE_TICK_MS);
  const poller = setInterval(() => { if (!stopping) poll(false).catch((e: unknown) => say('warning', undefined, `cannot list the agents: ${errorMessage(e)}`)); }, POLL_MS);
  const timers: NodeJS.Timeout[] = [];
  if (timeout !== undefined) {
    // the agents end their sessions at the timeout and send their final stats; wait a little for them
    timers.push(setTimeout(() => { timedOut = true; checkDone(); timers.push(setTimeout(settle, 5000)); }, timeout * 1000));
  }
  const onAbort = (): void => settle();
  if (o.signal.aborted) settle();
  else o.signal.addEventListener('abort', onAbort, { once: true });
  await allDone;
  stopping = true;
  o.signal.removeEventListener('abort', onAbort);
  clearInterval(poller);
  for (const t of timers) clearTimeout(t);
  for (const r of runs.values()) {
    if (!r.done) {
      r.call.cancel();
      if (r.stats !== undefined) keepFinal(r.node, r.stats);
      r.done = true;
      r.tunnel.close();
      r.client.close();
      stateOf(r.node).state = 'ended';
    }
  }
  clearInterval(ticker);
  flush(merger.drain());
  publish();

  // the summary: every node's counts added up, and every node lost on the way
  const sum: ClusterSum = { shown: 0, lost: 0, outOfScope: 0, filtered: 0, dropped: 0, misses: {} };
  for (const st of finals) {
    addStats(sum, st);
    for (const p of st.problems) problem ??= new TlscopeError(p.code, `node ${st.node}: ${p.text}`, p.hint ? { hint: p.hint } : {});
  }
  const nodes = [...states.keys()].sort().map((n) => states.get(n) as NodeState);
  return { started: [...everStarted], gone, sum, late: merger.late, problem, nodes };
}
