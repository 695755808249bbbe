// SPDX-License-Identifier: Apache-2.0
/**
 * bench/fanin/portforward: what the API server's port-forward costs one agent's stream. On the
 * repo's test cluster (`scripts/cluster.sh up`, which must be running) it starts a pod (the
 * cluster's pause image, so nothing but its network namespace matters), and in that pod's
 * network namespace a `tlscope agent --listen 127.0.0.1:7443`, a sink and a generator
 * (bench/sni/generator.c) at a fixed rate. The same bench client (bench/fanin/client.ts) then
 * reads the stream twice:
 *   direct        the client in the pod's network namespace, connecting to 127.0.0.1:7443
 *   port-forward  the client on the host, through src/kube/cluster.ts's tunnel: client-node's
 *                 PortForward (a websocket to the API server) → kubelet → containerd's stream
 *                 server, which connects to 127.0.0.1:7443 in the pod — what the plugin does
 * and reports events/s, counts, the client's CPU, and the CPU of the cluster's processes on the
 * path (kube-apiserver, every kubelet and containerd), with the direct run as their baseline.
 *
 *   npm run build && bash scripts/cluster.sh up && nice node dist/bench/fanin/portforward.js [--rate 2000] [--seconds 4]
 *
 * The agent runs as a host process in the pod's network namespace, not in the pod's container:
 * port-forward only needs something listening in that namespace. Cleans up its pod and processes.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildClientHello } from '../../test/helpers/clienthello.js';
import { ROOT, benchOptions, busyPct, fixed, machineTimes, markdownTable, numberOption, sleep, writeResults } from '../common.js';
import { collect, cpuNs, lineOnce, rss, stopChild, waitMerged } from './procs.js';

const CLI = join(ROOT, 'dist/src/cli/bin.js');
const CLIENT = join(ROOT, 'dist/bench/fanin/client.js');
const GENERATOR_SRC = join(ROOT, 'bench/sni/generator.c');
const CLUSTER = join(ROOT, 'scripts/cluster.sh');
const POD = 'tlscope-fanin-pf';

const kubectl = (...args: string[]): string => execFileSync('bash', [CLUSTER, 'kubectl', ...args], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });

/** pids whose comm is one of `names` */
function pidsNamed(names: readonly string[]): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (names.includes(readFileSync(`/proc/${d}/comm`, 'utf8').trim())) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

/** A process of the pod (its cgroup path names the pod's uid). */
function podPid(uid: string): number | undefined {
  const forms = [uid, uid.replace(/-/g, '_')];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cg = readFileSync(`/proc/${d}/cgroup`, 'utf8');
      if (forms.some((f) => cg.includes(`pod${f}`))) return Number(d);
    } catch {
      // gone
    }
  }
  return undefined;
}

interface Run {
  mode: 'direct' | 'port-forward';
  sent: number;
  shown: number;
  dropped: number;
  received: number;
  merged: number;
  windowSeconds: number;
  eventsPerSecond: number;
  clientCpuNs: number;
  clientRss: number;
  agentCpuNs: number;
  clusterCpuNs: number;
  recvP50: number;
  recvP99: number;
  machineBusyPct: number;
  loadavg1: number;
  errors: string[];
}

async function once(mode: Run['mode'], netns: string, gen: string, helloFile: string, nameOff: number, o: { rate: number; seconds: number }, kubeconfig: string, clusterPids: number[]): Promise<Run> {
  const enter = [`--net=${netns}`];
  const kids: ChildProcess[] = [];
  try {
    const sink = spawn('nsenter', [...enter, gen, 'sink', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'ignore'] });
    kids.push(sink);
    const port = Number((await lineOnce(sink, 'stdout', /ready (\d+)/, 10_000))[1]);
    const agent = spawn('nsenter', [...enter, process.execPath, CLI, 'agent', '--listen', '127.0.0.1:7443', '--node', 'pf'], { stdio: ['ignore', 'ignore', 'pipe'] });
    kids.push(agent);
    await lineOnce(agent, 'stderr', /: ready \(/, 120_000);
    const count = Math.round(o.rate * o.seconds);
    const g = spawn('nsenter', [...enter, 'sh', '-c', 'read go; exec "$@"', 'sh', gen, 'send', '127.0.0.1', String(port), helloFile, String(nameOff), String(11), String(count), String(o.rate), '1'], { stdio: ['pipe', 'pipe', 'inherit'] });
    kids.push(g);
    const gOut = collect(g, 'stdout');
    await sleep(200);
    const spec = mode === 'direct'
      ? { agents: [{ node: 'pf', address: '127.0.0.1:7443', pid: g.pid }] }
      : { kubeconfig, namespace: 'default', agents: [{ node: 'pf', pod: POD, pid: g.pid }] };
    const client = mode === 'direct'
      ? spawn('nsenter', [...enter, process.execPath, CLIENT, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, [CLIENT, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
    kids.push(client);
    const cOut = collect(client, 'stdout');
    const cErr = collect(client, 'stderr');
    await lineOnce(client, 'stdout', /started \d+/, 60_000).catch((e: Error) => { throw new Error(`${e.message} (client: ${cErr()})`); });
    await sleep(500);
    const sum = (pids: number[]): number => pids.reduce((a: number, p) => a + cpuNs(p), 0);
    const c0 = { client: cpuNs(client.pid), agent: cpuNs(agent.pid), cluster: sum(clusterPids) };
    const m0 = machineTimes();
    const w0 = process.hrtime.bigint();
    g.stdin!.end('go\n');
    await new Promise<void>((r) => (g.stdout!.readableEnded ? r() : g.once('close', () => r())));
    const wall0 = Date.now() - Number(process.hrtime.bigint() - w0) / 1e6;
    const done = await waitMerged(cOut, (JSON.parse(gOut().trim() || '{"sent":0}') as { sent: number }).sent);
    const deliverySeconds = (done.at - wall0) / 1000;
    const windowSeconds = Number(process.hrtime.bigint() - w0) / 1e9;
    const c1 = { client: cpuNs(client.pid), agent: cpuNs(agent.pid), cluster: sum(clusterPids) };
    const m1 = machineTimes();
    const clientRss = rss(client.pid).rss;
    const sent = (JSON.parse(gOut().trim() || '{"sent":0}') as { sent: number }).sent;
    const clientExit = new Promise<void>((r) => client.once('exit', () => r()));
    await stopChild(agent);
    await Promise.race([clientExit, sleep(20_000)]);
    const line = cOut().trim().split('\n').at(-1) ?? '';
    if (!line.startsWith('{')) throw new Error(`no result from the client: ${cErr()}`);
    const c = JSON.parse(line) as { received: number; merged: number; shown: number; droppedSlowClient: number; errors: string[]; recvLatencyMs: { p50: number; p99: number } };
    return {
      mode, sent, shown: c.shown, dropped: c.droppedSlowClient, received: c.received, merged: c.merged, windowSeconds, eventsPerSecond: c.merged / deliverySeconds,
      clientCpuNs: c1.client - c0.client, clientRss, agentCpuNs: c1.agent - c0.agent, clusterCpuNs: c1.cluster - c0.cluster,
      recvP50: c.recvLatencyMs.p50, recvP99: c.recvLatencyMs.p99, machineBusyPct: busyPct(m0, m1), loadavg1: loadavg()[0] ?? 0, errors: c.errors,
    };
  } finally {
    for (const k of kids.reverse()) await stopChild(k, 'SIGTERM');
  }
}

async function main(): Promise<void> {
  const v = benchOptions(process.argv.slice(2), { rate: { type: 'string' }, seconds: { type: 'string' } }, 'node dist/bench/fanin/portforward.js [--rate 2000] [--seconds 4]');
  const o = { rate: numberOption('rate', v['rate'], 1) ?? 2000, seconds: numberOption('seconds', v['seconds'], 1) ?? 4 };
  if (process.getuid?.() !== 0) throw new Error('bench/fanin/portforward needs root');
  for (const f of [CLI, CLIENT]) if (!existsSync(f)) throw new Error(`${f} is missing: run npm run build`);
  let kubeconfig: string;
  try {
    kubeconfig = execFileSync('bash', [CLUSTER, 'kubeconfig'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    throw new Error('no test cluster: bash scripts/cluster.sh up first');
  }
  const work = mkdtempSync(join(tmpdir(), 'tlscope-bench-fanin-pf-'));
  const runs: Run[] = [];
  try {
    kubectl('delete', 'pod', POD, '--ignore-not-found', '--wait=true');
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: POD, namespace: 'default' }, spec: { containers: [{ name: 'pause', image: 'tlscope.test/pause:1', imagePullPolicy: 'Never' }] } };
    writeFileSync(join(work, 'pod.json'), JSON.stringify(pod));
    kubectl('apply', '-f', join(work, 'pod.json'));
    kubectl('wait', '--for=condition=Ready', `pod/${POD}`, '--timeout=90s');
    const uid = kubectl('get', 'pod', POD, '-o', 'jsonpath={.metadata.uid}').trim();
    const pid = podPid(uid);
    if (pid === undefined) throw new Error(`no process of pod ${POD} (uid ${uid}) found`);
    const netns = `/proc/${pid}/ns/net`;
    const gen = join(work, 'generator');
    execFileSync('cc', ['-O2', '-Wall', '-o', gen, GENERATOR_SRC]);
    const built = buildClientHello({ serverName: 'h00000000.pf.fanin.test', alpn: ['h2', 'http/1.1'], grease: true, postQuantum: true, seed: 7 });
    const helloFile = join(work, 'hello.bin');
    writeFileSync(helloFile, built.bytes);
    const clusterPids = pidsNamed(['kube-apiserver', 'kubelet', 'containerd']);
    for (const mode of ['direct', 'port-forward'] as const) {
      process.stderr.write(`bench/fanin/portforward: ${mode}, ${o.rate} hellos/s for ${o.seconds} s…\n`);
      const r = await once(mode, netns, gen, helloFile, (built.serverNameOffset ?? 0) + 1, o, kubeconfig, clusterPids);
      runs.push(r);
      process.stderr.write(`  sent ${r.sent}, shown ${r.shown}, dropped ${r.dropped}, received ${r.received}; client ${fixed(r.clientCpuNs / 1e9, 2)} s, cluster ${fixed(r.clusterCpuNs / 1e9, 2)} s${r.errors.length ? `; errors: ${r.errors.join('; ')}` : ''}\n`);
    }
  } finally {
    try {
      kubectl('delete', 'pod', POD, '--ignore-not-found', '--wait=false');
    } catch {
      // the cluster went away
    }
    rmSync(work, { recursive: true, force: true });
  }
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Linux ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}, node ${process.version}`;
  const head = ['path', 'sent', 'shown', 'dropped (queue)', 'received', 'events/s', 'client CPU', 'client µs/event', 'client RSS MiB', 'agent CPU', 'apiserver+kubelets+containerd CPU', 'recv latency p50/p99 ms', 'machine busy'];
  const rows = runs.map((r) => [r.mode, String(r.sent), String(r.shown), String(r.dropped), String(r.received), fixed(r.eventsPerSecond, 0),
    `${fixed(r.clientCpuNs / 1e9, 2)} s`, fixed(r.clientCpuNs / 1e3 / Math.max(1, r.received), 1), fixed(r.clientRss / 2 ** 20, 0),
    `${fixed(r.agentCpuNs / 1e9, 2)} s`, `${fixed(r.clusterCpuNs / 1e9, 2)} s`, `${fixed(r.recvP50, 0)} / ${fixed(r.recvP99, 0)}`, `${fixed(r.machineBusyPct, 0)} % (load ${fixed(r.loadavg1, 1)})`]);
  process.stdout.write(`\n## bench/fanin/portforward — one agent, trace sni at ${o.rate} hellos/s for ${o.seconds} s, direct vs the API server's port-forward\n\n${machine}\n\n${markdownTable(head, 'lrrrrrrrrrrrr', rows)}\n`);
  process.stdout.write(`\n(JSON: ${writeResults('fanin-portforward', { machine, options: o, runs })})\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/fanin/portforward: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
