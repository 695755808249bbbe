// SPDX-License-Identifier: Apache-2.0
/**
 * bench/fanin's client: what `kubectl tlscope trace sni` does with its agents' streams, minus
 * the API server. It opens one gRPC stream per agent with the plugin's own client
 * (src/kube/proto.ts), decodes every event with the wire codec (src/output/event-wire.ts),
 * merges them with the plugin's TimeMerger (src/kube/merge.ts, the same 100 ms tick and 250 ms
 * window as src/kube/trace.ts) and renders the merged stream as `-o json` with the gadget's
 * fields (src/output/json.ts) into a counting sink (no terminal: its cost is not the fan-in's).
 *
 *   node dist/bench/fanin/client.js '<json: {"agents":[{"node","address","pid"}…]}>'
 *   node dist/bench/fanin/client.js '<json: {"kubeconfig","namespace","agents":[{"node","pod","pid"}…]}>'
 *
 * The second form reaches each agent as the plugin does, through the API server's port-forward
 * (src/kube/cluster.ts's tunnel to the pod's port 7443).
 *
 * stdout: `started N` once every agent has said Started, `merged N` as the merged count grows, then at the end one JSON line of
 * counts (received, merged, late, per-agent final stats) and latencies (event timestamp →
 * receive, → merged out). It ends when every stream has ended (the runner stops the agents
 * with SIGTERM: each sends its final Stats, then ERR_AGENT_STOPPING).
 */
import { gadgetByName } from '../../src/gadgets/registry.js';
import { parseParams } from '../../src/gadgets/params.js';
import { Cluster, loadKubeConfig, type Tunnel } from '../../src/kube/cluster.js';
import { TimeMerger } from '../../src/kube/merge.js';
import { agentClient, type AgentStats, type RunMessage, type RunRequest } from '../../src/kube/proto.js';
import { decodeEvent } from '../../src/output/event-wire.js';
import { JsonWriter } from '../../src/output/json.js';

interface AgentSpec {
  node: string;
  /** a gRPC address (direct) … */
  address?: string;
  /** … or a pod reached through the API server's port-forward */
  pod?: string;
  /** the generator's pid: the scope of this agent's session */
  pid: number;
}

type Ev = { timestamp: number; name?: string };

const MERGE_TICK_MS = 100;

function percentile(xs: Float64Array, n: number, p: number): number {
  if (n === 0) return Number.NaN;
  const s = xs.slice(0, n).sort();
  return s[Math.min(n - 1, Math.floor((p / 100) * n))] as number;
}

class Samples {
  private xs = new Float64Array(1 << 16);
  n = 0;
  add(x: number): void {
    if (this.n === this.xs.length) {
      const bigger = new Float64Array(this.xs.length * 2);
      bigger.set(this.xs);
      this.xs = bigger;
    }
    this.xs[this.n++] = x;
  }
  summary(): { n: number; p50: number; p99: number; max: number } {
    return { n: this.n, p50: percentile(this.xs, this.n, 50), p99: percentile(this.xs, this.n, 99), max: percentile(this.xs, this.n, 100) };
  }
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as { agents: AgentSpec[]; kubeconfig?: string; namespace?: string };
  const { agents } = spec;
  const cluster = spec.kubeconfig === undefined ? undefined : new Cluster(loadKubeConfig({ kubeconfig: spec.kubeconfig }), spec.namespace ?? 'default');
  const tunnels: Tunnel[] = [];
  const addresses: string[] = [];
  for (const a of agents) {
    if (a.pod !== undefined && cluster !== undefined) {
      const t = await cluster.tunnel(a.pod);
      tunnels.push(t);
      addresses.push(t.address);
    } else addresses.push(a.address ?? '');
  }
  const def = gadgetByName('trace sni');
  if (def === undefined) throw new Error('no trace sni gadget');
  const params = parseParams(def.params, {});
  let renderedBytes = 0;
  const writer = new JsonWriter(def.fields(params, { json: true }) as never, { write: (s: string) => { renderedBytes += s.length; } });
  const merger = new TimeMerger<Ev>();
  const recvLatency = new Samples();
  const outLatency = new Samples();
  let received = 0;
  let merged = 0;
  let startedCount = 0;
  const finals: AgentStats[] = [];
  const errors: string[] = [];
  let open = agents.length;
  const flush = (events: Ev[]): void => {
    if (events.length === 0) return;
    const now = Date.now();
    for (const e of events) outLatency.add(now - e.timestamp);
    merged += events.length;
    writer.write(events as never);
  };
  let said = -1;
  const ticker = setInterval(() => {
    flush(merger.take(Date.now()));
    // progress for the runner: it ends its window once everything sent has come out
    if (merged !== said) process.stdout.write(`merged ${(said = merged)}\n`);
  }, MERGE_TICK_MS);
  const done = new Promise<void>((resolve) => {
    agents.forEach((a, i) => {
      const client = agentClient(addresses[i] as string);
      const request: RunRequest = {
        gadget: 'trace sni', params: {}, filter: '', timeout_ms: 0, verbose: false, json_view: true, max_queued_events: 0,
        scope: { runtimes: [], container_names: [], host: true, pids: [a.pid], k8s_namespace: '', k8s_pod_name: '', k8s_container_name: '', k8s_selector: {} },
      };
      const call = client.Run(request);
      let ended = false;
      const end = (why?: string): void => {
        if (ended) return;
        ended = true;
        if (why !== undefined) errors.push(`${a.node}: ${why}`);
        client.close();
        if (--open === 0) resolve();
      };
      call.on('data', (m: RunMessage) => {
        if (m.kind === 'events') {
          const now = Date.now();
          const batch = (m.events?.json ?? []).map((j) => decodeEvent<Ev>(j));
          for (const e of batch) recvLatency.add(now - e.timestamp);
          received += batch.length;
          merger.push(batch);
        } else if (m.kind === 'started') {
          if (++startedCount === agents.length) process.stdout.write(`started ${startedCount}\n`);
        } else if (m.kind === 'stats' && m.stats?.final) {
          finals.push(m.stats);
        } else if (m.kind === 'error' && m.error?.code !== 'ERR_AGENT_STOPPING') {
          errors.push(`${a.node}: ${m.error?.text}`);
        }
      });
      call.on('error', (e: Error & { details?: string }) => end(e.details ?? e.message));
      call.on('end', () => end());
    });
  });
  await done;
  clearInterval(ticker);
  flush(merger.drain());
  for (const t of tunnels) t.close();
  const sum = (f: (s: AgentStats) => number): number => finals.reduce((acc, s) => acc + f(s), 0);
  process.stdout.write(`${JSON.stringify({
    received,
    merged,
    late: merger.late,
    renderedBytes,
    finals: finals.length,
    shown: sum((s) => s.shown),
    lost: sum((s) => s.lost),
    droppedSlowClient: sum((s) => s.dropped_slow_client),
    outOfScope: sum((s) => s.out_of_scope),
    errors,
    recvLatencyMs: recvLatency.summary(),
    outLatencyMs: outLatency.summary(),
  })}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/fanin client: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
