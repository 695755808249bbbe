// SPDX-License-Identifier: Apache-2.0
/**
 * bench/fanin: the plugin's fan-in. N real `tlscope agent` processes, each in its own network
 * namespace (`ip netns add`), each serving gRPC on a unix socket (`--listen unix:PATH`: a unix
 * socket is reachable from the host's namespace, 127.0.0.1 of the agent's namespace is not) and
 * running a real `trace sni` session scoped to its namespace's generator (bench/sni/generator.c:
 * ClientHellos over TCP to a sink in the same namespace, one connection each, at a fixed rate per
 * agent). ONE client process (bench/fanin/client.ts: the plugin's gRPC client, wire decoder,
 * TimeMerger and JSON writer) reads all N streams and merges them.
 *
 *   npm run build && nice node dist/bench/fanin/run.js [--agents 2,10,50] [--rate 200] [--seconds 4]
 *        [--quiet-pct 60] [--quiet-wait 10]
 *
 * Per N it reports: hellos sent, events the agents' sessions yielded (shown), dropped by the
 * agents' per-client queues (dropped_slow_client), lost in their rings, received and merged out
 * by the client; merged events/s (merged / the time from the generators' start to the last merged
 * event); the client's CPU (utime + stime from /proc, over the window from the generators' start
 * until everything sent was merged, or nothing more came for 3 s) and RSS (VmRSS, VmHWM); the agents'
 * CPU and RSS totals over the same window; latency from the event's timestamp to the client's
 * receive and to its merged output (p50/p99; the merge holds events up to 250 ms on purpose).
 *
 * The gadget's own cost is in the agents' CPU (each agent also pays its Node.js runtime); the
 * client's CPU is the fan-in's: N gRPC streams, JSON decode, merge, render.
 *
 * Needs root (netns, BPF), cc, nsenter. Cleans up every namespace and process it starts (by pid).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildClientHello } from '../../test/helpers/clienthello.js';
import { ROOT, benchOptions, busyPct, fixed, listOption, machineTimes, markdownTable, numberOption, sleep, waitQuiet, writeResults } from '../common.js';
import { collect, cpuNs, lineOnce, rss, stopChild, waitMerged } from './procs.js';

const CLI = join(ROOT, 'dist/src/cli/bin.js');
const CLIENT = join(ROOT, 'dist/bench/fanin/client.js');
const GENERATOR_SRC = join(ROOT, 'bench/sni/generator.c');
const USAGE = 'node dist/bench/fanin/run.js [--agents 2,10,50] [--rate 200] [--seconds 4] [--quiet-pct 60] [--quiet-wait 10]';

interface Options {
  agents: number[];
  /** hellos/s per agent */
  rate: number;
  seconds: number;
  quietPct: number;
  quietWaitS: number;
}

function parseOptions(argv: string[]): Options {
  const v = benchOptions(argv, { agents: { type: 'string' }, rate: { type: 'string' }, seconds: { type: 'string' }, 'quiet-pct': { type: 'string' }, 'quiet-wait': { type: 'string' } }, USAGE);
  return {
    agents: (listOption(v['agents']) ?? ['2', '10', '50']).map((n) => numberOption('agents', n, 1) ?? 1),
    rate: numberOption('rate', v['rate'], 1) ?? 200,
    seconds: numberOption('seconds', v['seconds'], 1) ?? 4,
    quietPct: numberOption('quiet-pct', v['quiet-pct']) ?? 60,
    quietWaitS: numberOption('quiet-wait', v['quiet-wait']) ?? 10,
  };
}

// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------

interface Node {
  ns: string;
  name: string;
  socket: string;
  sink?: ChildProcess;
  agent?: ChildProcess;
  gen?: ChildProcess;
  genOut?: () => string;
  agentErr?: () => string;
}

interface Result {
  agents: number;
  ratePerAgent: number;
  sent: number;
  failed: number;
  shown: number;
  droppedSlowClient: number;
  lost: number;
  received: number;
  merged: number;
  late: number;
  /** from the generators' start: until the client's CPU was read, until they ended, until the last merged event */
  windowSeconds: number;
  genSeconds: number;
  deliverySeconds: number;
  mergedPerSecond: number;
  clientCpuNs: number;
  clientRss: number;
  clientHwm: number;
  agentsCpuNs: number;
  agentsRss: number;
  recvLatencyMs: { n: number; p50: number; p99: number; max: number };
  outLatencyMs: { n: number; p50: number; p99: number; max: number };
  machineBusyPct: number;
  backgroundBusyPct: number;
  loadavg1: number;
  startSeconds: number;
  errors: string[];
}

async function runN(n: number, o: Options, gen: string, work: string, tag: string): Promise<Result> {
  const backgroundBusyPct = await waitQuiet(o.quietPct, o.quietWaitS);
  const nodes: Node[] = [];
  let client: ChildProcess | undefined;
  const t0 = Date.now();
  try {
    for (let i = 0; i < n; i++) {
      const node: Node = { ns: `tlscope-fanin-${tag}-${i}`, name: `fanin-${String(i).padStart(3, '0')}`, socket: join(work, `agent-${n}-${i}.sock`) };
      execFileSync('ip', ['netns', 'add', node.ns]);
      nodes.push(node);
      execFileSync('ip', ['-n', node.ns, 'link', 'set', 'lo', 'up']);
    }
    const enter = (node: Node): string[] => [`--net=/run/netns/${node.ns}`];
    // agents, a few at a time (each is a Node.js start: ~0.5 s of CPU on a quiet machine)
    for (let i = 0; i < nodes.length; i += 5) {
      await Promise.all(nodes.slice(i, i + 5).map(async (node) => {
        node.sink = spawn('nsenter', [...enter(node), gen, 'sink', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'ignore'] });
        node.agent = spawn('nsenter', [...enter(node), process.execPath, CLI, 'agent', '--listen', `unix:${node.socket}`, '--node', node.name], { stdio: ['ignore', 'ignore', 'pipe'] });
        node.agentErr = collect(node.agent, 'stderr');
        await lineOnce(node.agent, 'stderr', /: ready \(/, 120_000);
      }));
    }
    const ports = await Promise.all(nodes.map(async (node) => Number((await lineOnce(node.sink!, 'stdout', /ready (\d+)/, 10_000))[1])));
    // each generator waits on stdin: its pid (kept by exec) is the scope of its agent's session
    const count = Math.round(o.rate * o.seconds);
    nodes.forEach((node, i) => {
      const built = buildClientHello({ serverName: `h00000000.a${String(i).padStart(3, '0')}.fanin.test`, alpn: ['h2', 'http/1.1'], grease: true, postQuantum: true, seed: 42 + i });
      const helloFile = join(work, `hello-${i}.bin`);
      writeFileSync(helloFile, built.bytes);
      const args = [gen, 'send', '127.0.0.1', String(ports[i]), helloFile, String((built.serverNameOffset ?? 0) + 1), String(5 + 4 + 2), String(count), String(o.rate), String(i)];
      node.gen = spawn('nsenter', [...enter(node), 'sh', '-c', 'read go; exec "$@"', 'sh', ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
      node.genOut = collect(node.gen, 'stdout');
    });
    await sleep(200);
    const spec = { agents: nodes.map((node) => ({ node: node.name, address: `unix:${node.socket}`, pid: node.gen!.pid })) };
    client = spawn(process.execPath, [CLIENT, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const clientOut = collect(client, 'stdout');
    const clientErr = collect(client, 'stderr');
    await lineOnce(client, 'stdout', /started \d+/, 120_000).catch((e: Error) => { throw new Error(`${e.message} (client: ${clientErr()})`); });
    const startSeconds = (Date.now() - t0) / 1000;
    await sleep(500);

    const agentPids: number[] = nodes.map((node) => node.agent!.pid ?? 0);
    const cpu0 = { client: cpuNs(client.pid), agents: agentPids.reduce((a: number, p) => a + cpuNs(p), 0) };
    const m0 = machineTimes();
    const w0 = process.hrtime.bigint();
    for (const node of nodes) node.gen!.stdin!.end('go\n');
    const wall0 = Date.now();
    await Promise.all(nodes.map((node) => new Promise<void>((r) => (node.gen!.stdout!.readableEnded ? r() : node.gen!.once('close', () => r())))));
    const genSeconds = (Date.now() - wall0) / 1000;
    // the window ends when every hello sent has come out of the merge (or nothing more comes for 3 s)
    const sentSoFar = nodes.reduce((a: number, node) => a + ((JSON.parse(node.genOut!().trim() || '{"sent":0}') as { sent: number }).sent), 0);
    const done = await waitMerged(clientOut, sentSoFar);
    const windowSeconds = Number(process.hrtime.bigint() - w0) / 1e9;
    const deliverySeconds = (done.at - wall0) / 1000;
    const cpu1 = { client: cpuNs(client.pid), agents: agentPids.reduce((a: number, p) => a + cpuNs(p), 0) };
    const m1 = machineTimes();
    const cm = rss(client.pid);
    const agentsRss = agentPids.reduce((a: number, p) => a + rss(p).rss, 0);
    const loadavg1 = loadavg()[0] ?? 0;

    let sent = 0;
    let failed = 0;
    for (const node of nodes) {
      const g = JSON.parse(node.genOut!().trim() || '{"sent":0,"failed":0}') as { sent: number; failed: number };
      sent += g.sent;
      failed += g.failed;
    }
    // SIGTERM: every agent sends its final Stats and ERR_AGENT_STOPPING; the client then reports
    const clientExit = new Promise<void>((r) => client!.once('exit', () => r()));
    await Promise.all(nodes.map((node) => stopChild(node.agent!)));
    await Promise.race([clientExit, sleep(20_000)]);
    const line = clientOut().trim().split('\n').at(-1) ?? '';
    if (!line.startsWith('{')) throw new Error(`no result from the client: ${clientErr()}`);
    const c = JSON.parse(line) as { received: number; merged: number; late: number; shown: number; lost: number; droppedSlowClient: number; errors: string[]; recvLatencyMs: Result['recvLatencyMs']; outLatencyMs: Result['outLatencyMs'] };
    return {
      agents: n, ratePerAgent: o.rate, sent, failed, shown: c.shown, droppedSlowClient: c.droppedSlowClient, lost: c.lost, received: c.received, merged: c.merged, late: c.late,
      windowSeconds, genSeconds, deliverySeconds, mergedPerSecond: c.merged / deliverySeconds,
      clientCpuNs: cpu1.client - cpu0.client, clientRss: cm.rss, clientHwm: cm.hwm, agentsCpuNs: cpu1.agents - cpu0.agents, agentsRss,
      recvLatencyMs: c.recvLatencyMs, outLatencyMs: c.outLatencyMs,
      machineBusyPct: busyPct(m0, m1), backgroundBusyPct, loadavg1, startSeconds, errors: c.errors,
    };
  } finally {
    if (client !== undefined) await stopChild(client, 'SIGKILL');
    await Promise.all(nodes.flatMap((node) => [node.gen, node.agent, node.sink].filter((c): c is ChildProcess => c !== undefined).map((c) => stopChild(c))));
    for (const node of nodes) {
      try {
        execFileSync('ip', ['netns', 'del', node.ns]);
      } catch {
        // already gone
      }
    }
  }
}

// ---------------------------------------------------------------------------------------

const mib = (b: number): string => fixed(b / 2 ** 20, 0);
const k = (x: number): string => (x >= 10_000 ? `${fixed(x / 1000, 1)} k` : String(Math.round(x)));

function table(rs: Result[]): string {
  const head = ['agents', 'sent', 'send s', 'shown by agents', 'dropped (queue)', 'received', 'last merged at s', 'merged/s', 'client CPU', 'client µs/event', 'client RSS (peak) MiB', 'agents CPU', 'agents RSS MiB', 'latency recv p50/p99 ms', 'latency merged p50/p99 ms', 'machine busy'];
  return markdownTable(head, 'rrrrrrrrrrrrrrrr', rs.map((r) => [
    String(r.agents), k(r.sent), fixed(r.genSeconds, 1), k(r.shown), String(r.droppedSlowClient), k(r.received), fixed(r.deliverySeconds, 1), k(r.mergedPerSecond),
    `${fixed(r.clientCpuNs / 1e9, 2)} s (${fixed((100 * r.clientCpuNs) / (r.windowSeconds * 1e9), 0)} %)`,
    fixed(r.clientCpuNs / 1e3 / Math.max(1, r.received), 1),
    `${mib(r.clientRss)} (${mib(r.clientHwm)})`,
    `${fixed(r.agentsCpuNs / 1e9, 2)} s (${fixed((100 * r.agentsCpuNs) / (r.windowSeconds * 1e9), 0)} %)`,
    mib(r.agentsRss),
    `${fixed(r.recvLatencyMs.p50, 0)} / ${fixed(r.recvLatencyMs.p99, 0)}`,
    `${fixed(r.outLatencyMs.p50, 0)} / ${fixed(r.outLatencyMs.p99, 0)}`,
    `${fixed(r.machineBusyPct, 0)} % (load ${fixed(r.loadavg1, 1)})`,
  ]));
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('bench/fanin needs root (network namespaces, BPF)');
  for (const f of [CLI, CLIENT]) if (!existsSync(f)) throw new Error(`${f} is missing: run npm run build`);
  const work = mkdtempSync(join(tmpdir(), 'tlscope-bench-fanin-'));
  const results: Result[] = [];
  try {
    const gen = join(work, 'generator');
    execFileSync('cc', ['-O2', '-Wall', '-o', gen, GENERATOR_SRC]);
    for (const n of o.agents) {
      process.stderr.write(`bench/fanin: ${n} agents, ${o.rate} hellos/s each for ${o.seconds} s…\n`);
      const r = await runN(n, o, gen, work, String(process.pid));
      results.push(r);
      process.stderr.write(`  sent ${r.sent}, shown ${r.shown}, dropped ${r.droppedSlowClient}, received ${r.received}, merged ${r.merged} (${r.late} late); client ${fixed(r.clientCpuNs / 1e9, 2)} s CPU, agents ${fixed(r.agentsCpuNs / 1e9, 2)} s; started in ${fixed(r.startSeconds, 1)} s${r.errors.length ? `; errors: ${r.errors.slice(0, 3).join('; ')}` : ''}\n`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Linux ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}, node ${process.version}`;
  process.stdout.write(`\n## bench/fanin — N tlscope agents (one netns each, trace sni, ${o.rate} hellos/s each for ${o.seconds} s) → one client (the plugin's gRPC client + TimeMerger + JSON writer)\n\n${machine}\n\n${table(results)}\n`);
  const noisy = results.filter((r) => r.backgroundBusyPct > o.quietPct);
  if (noisy.length > 0) process.stdout.write(`\nNote: other work kept the machine above ${o.quietPct} % busy before N = ${noisy.map((r) => r.agents).join(', ')}: those numbers are skewed.\n`);
  process.stdout.write(`\n(JSON: ${writeResults('fanin', { machine, options: o, results })})\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/fanin: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
