// SPDX-License-Identifier: Apache-2.0
/** `kubectl tlscope containers | doctor`: one question to every node's agent, answers side by side. */
import { TlscopeError, UsageError, errorMessage } from '../errors.js';
import { Cluster, DEFAULT_NAMESPACE, loadKubeConfig } from './cluster.js';
import { clusterOptions, flag, help, list, parseFlags, str, type Specs } from './flags.js';
import { agentClient, unary } from './proto.js';
import type { KubeContext } from './trace.js';

const specs: Specs = {
  node: { type: 'string', arg: 'NAME', multiple: true, description: 'only these nodes' },
  'agent-namespace': { type: 'string', arg: 'NS', description: 'where the agents run (default tlscope)' },
  output: { type: 'string', short: 'o', arg: 'FORMAT', description: 'columns (default) or json' },
  ...clusterOptions,
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n')}\n`;
}

async function eachNode<T>(argv: string[], ctx: KubeContext, usage: string, ask: (c: ReturnType<typeof agentClient>) => Promise<T>): Promise<{ results: Map<string, T | Error>; json: boolean } | undefined> {
  const { values: v } = parseFlags(argv, specs);
  if (flag(v, 'help')) {
    ctx.out.write(usage);
    return undefined;
  }
  const fmt = str(v, 'output') ?? 'columns';
  if (!['columns', 'json'].includes(fmt)) throw new UsageError(`unknown output format "${fmt}"`);
  const kc = loadKubeConfig({ ...(str(v, 'kubeconfig') === undefined ? {} : { kubeconfig: str(v, 'kubeconfig') as string }), ...(str(v, 'context') === undefined ? {} : { context: str(v, 'context') as string }) });
  const cluster = new Cluster(kc, str(v, 'agent-namespace') ?? DEFAULT_NAMESPACE);
  await cluster.checkPortForward();
  const only = list(v, 'node');
  const nodes = (await cluster.nodes()).filter((n) => only === undefined || only.includes(n));
  const agents = await cluster.agentPods();
  const results = new Map<string, T | Error>();
  await Promise.all(nodes.map(async (node) => {
    const a = agents.find((x) => x.node === node && x.ready);
    if (a === undefined) {
      results.set(node, new Error(`agent not ready (${agents.find((x) => x.node === node)?.reason ?? 'no agent pod'})`));
      return;
    }
    const tunnel = await cluster.tunnel(a.pod);
    const client = agentClient(tunnel.address);
    try {
      results.set(node, await ask(client));
    } catch (e) {
      results.set(node, new Error(tunnel.lastError() || errorMessage(e)));
    } finally {
      client.close();
      tunnel.close();
    }
  }));
  return { results, json: fmt === 'json' };
}

const deadline = (): { deadline: number } => ({ deadline: Date.now() + 15000 });

export async function runContainers(argv: string[], ctx: KubeContext): Promise<number> {
  const r = await eachNode(argv, ctx, help('kubectl tlscope containers [--node NAME]', 'The containers and pods each node\'s agent knows.', specs), (c) => unary<{ containers: Record<string, unknown>[] }>((cb) => c.Containers({}, deadline(), cb)));
  if (r === undefined) return 0;
  const rows = [['K8S.NODE', 'K8S.NAMESPACE', 'K8S.PODNAME', 'K8S.CONTAINERNAME', 'RUNTIME', 'CONTAINERID', 'PID']];
  let failed = 0;
  for (const [node, res] of [...r.results].sort(([a], [b]) => a.localeCompare(b))) {
    if (res instanceof Error) {
      failed++;
      ctx.err.write(`tlscope: node ${node}: ${res.message}\n`);
      continue;
    }
    for (const c of res.containers) {
      if (r.json) ctx.out.write(`${JSON.stringify({ node, ...c })}\n`);
      else rows.push([node, String(c['k8s_namespace'] ?? ''), String(c['k8s_pod_name'] ?? ''), String(c['k8s_container_name'] ?? ''), String(c['runtime'] ?? ''), String(c['id'] ?? '').slice(0, 12), String(c['pid'] ?? '')]);
    }
  }
  if (!r.json) ctx.out.write(table(rows));
  if (failed === r.results.size) throw new TlscopeError('ERR_NO_AGENT', 'no node\'s agent answered');
  return 0;
}

interface DoctorReport {
  host: { kernel: string; libbpf: string; privileges: string };
  features: { title: string; supported: boolean; reason?: string }[];
  gadgets: { gadget: string; status: string }[];
}

export async function runDoctor(argv: string[], ctx: KubeContext): Promise<number> {
  const r = await eachNode(argv, ctx, help('kubectl tlscope doctor [--node NAME]', 'Every node\'s kernel and gadget readiness, side by side.', specs), async (c) => JSON.parse((await unary<{ json: string }>((cb) => c.Doctor({}, deadline(), cb))).json) as DoctorReport);
  if (r === undefined) return 0;
  const nodes = [...r.results.keys()].sort();
  if (r.json) {
    for (const n of nodes) {
      const x = r.results.get(n);
      ctx.out.write(`${JSON.stringify({ node: n, ...(x instanceof Error ? { error: x.message } : x) })}\n`);
    }
    return 0;
  }
  const rep = (n: string): DoctorReport | undefined => { const x = r.results.get(n); return x instanceof Error ? undefined : x; };
  const rows = [['CHECK', ...nodes]];
  rows.push(['agent', ...nodes.map((n) => { const x = r.results.get(n); return x instanceof Error ? x.message : 'ok'; })]);
  rows.push(['kernel', ...nodes.map((n) => rep(n)?.host.kernel ?? '-')]);
  rows.push(['libbpf', ...nodes.map((n) => rep(n)?.host.libbpf ?? '-')]);
  rows.push(['privileges', ...nodes.map((n) => rep(n)?.host.privileges ?? '-')]);
  const titles = [...new Set(nodes.flatMap((n) => rep(n)?.features.map((f) => f.title) ?? []))];
  for (const t of titles) rows.push([`feature: ${t}`, ...nodes.map((n) => { const f = rep(n)?.features.find((x) => x.title === t); return f === undefined ? '-' : f.supported ? 'ok' : 'unavailable'; })]);
  const gadgets = [...new Set(nodes.flatMap((n) => rep(n)?.gadgets.map((g) => g.gadget) ?? []))];
  for (const g of gadgets) rows.push([`gadget: ${g}`, ...nodes.map((n) => rep(n)?.gadgets.find((x) => x.gadget === g)?.status ?? '-')]);
  ctx.out.write(table(rows));
  return 0;
}
