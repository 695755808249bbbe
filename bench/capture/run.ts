// SPDX-License-Identifier: Apache-2.0
/**
 * bench/capture: packets per second written to a file, and drops, for `tcpdump -w` and
 * `tlscope capture -w` capturing the same traffic at the same time, in the same network
 * namespace, with the same filter.
 *
 * The traffic: a network namespace and a veth pair made here; a TCP sink in the namespace
 * (dist/bench/capture/traffic.js sink) and a sender on the host writing as fast as it can for
 * --seconds, then stopping. Both tools capture on the namespace's end of the veth:
 *   tcpdump:  ip netns exec NS tcpdump -i VETH -w FILE -Z root 'tcp port P'
 *   tlscope:  tlscope capture --pid SINK -i VETH -w FILE 'tcp port P'
 *
 * Scenarios:
 *   gso   the kernel's defaults: TCP hands the veth ~64 KiB GSO packets (bytes-bound)
 *   mtu   gso_max_segs 1 on the sender's veth: one packet per MSS (packet-bound)
 *
 *   npm run build && node dist/bench/capture/run.js [--quick] [--seconds 5] [--reps 3]
 *       [--scenario gso,mtu] [--buffer KiB] [--snaplen N] [--dir DIR]
 *
 * Both tools get the same ring (tcpdump -B, tlscope -B): 8 MiB, tlscope's default, unless
 * --buffer KiB says otherwise (a comparison at unequal rings is not one). Needs root, tcpdump and iproute2. Prints a markdown table;
 * writes JSON to bench/out/. Everything made here (namespace, veth, processes, files) is
 * removed at the end, also on failure or Ctrl-C.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, markdownTable, median, sleep, statCpuNs, waitQuiet, writeResults, benchOptions, listOption, numberOption } from '../common.js';

const BIN = join(ROOT, 'dist/src/cli/bin.js');
const TRAFFIC = join(ROOT, 'dist/bench/capture/traffic.js');

type Tool = 'tcpdump' | 'tlscope';
const TOOLS: Tool[] = ['tcpdump', 'tlscope'];

interface Options {
  quick: boolean;
  seconds: number;
  reps: number;
  scenarios: string[];
  bufferKiB: number;
  snaplen: number | undefined;
  dir: string | undefined;
  /** before each run, wait (up to quietWaitS) until the machine is at most this % busy */
  quietPct: number;
  quietWaitS: number;
  /** more arguments for tlscope capture (e.g. "--block-timeout 8") */
  tlscopeArgs: string[];
  /** run tlscope with -v and print its closing details (wake-ups, ring freezes, event-loop holds) */
  verbose: boolean;
  /** write a .cpuprofile of each tlscope run here (TLSCOPE_CPU_PROFILE) */
  profileDir: string | undefined;
  /** another build's dist/src/cli/bin.js, for before/after runs in one sitting */
  tlscopeBin: string;
}

interface ToolResult {
  tool: Tool;
  captured: number;
  received: number;
  dropped: number;
  fileBytes: number;
  /** packets written per second of traffic */
  pps: number;
  /** CPU (user + system) over the traffic window, % of one core */
  cpuPct: number;
}

interface RunResult {
  scenario: string;
  rep: number;
  /** how busy the machine was (all cores, %) just before the run: other work skews everything */
  backgroundBusyPct: number;
  seconds: number;
  sentBytes: number;
  results: ToolResult[];
}

function parseOptions(argv: string[]): Options {
  const v = benchOptions(argv, {
    quick: { type: 'boolean' }, seconds: { type: 'string' }, reps: { type: 'string' }, scenario: { type: 'string' }, scenarios: { type: 'string' },
    buffer: { type: 'string' }, snaplen: { type: 'string' }, dir: { type: 'string' }, 'quiet-pct': { type: 'string' }, 'quiet-wait': { type: 'string' },
    'tlscope-args': { type: 'string' }, verbose: { type: 'boolean' }, profile: { type: 'string' }, 'tlscope-bin': { type: 'string' },
  }, 'node dist/bench/capture/run.js [--quick] [--seconds 5] [--reps 3] [--scenario gso,mtu] [--buffer KiB] [--snaplen N] [--dir DIR] [--quiet-pct 15] [--quiet-wait 120] [--tlscope-args "..."] [--verbose] [--profile DIR] [--tlscope-bin CHECKOUT/dist/src/cli/bin.js]');
  const o: Options = {
    quick: v['quick'] === true,
    seconds: numberOption('seconds', v['seconds'], 1) ?? 5,
    reps: numberOption('reps', v['reps'], 1) ?? 3,
    scenarios: listOption(v['scenario'] ?? v['scenarios']) ?? ['gso', 'mtu'],
    bufferKiB: numberOption('buffer', v['buffer'], 1) ?? 8192,
    snaplen: numberOption('snaplen', v['snaplen'], 1),
    dir: typeof v['dir'] === 'string' ? v['dir'] : undefined,
    quietPct: numberOption('quiet-pct', v['quiet-pct']) ?? 15,
    quietWaitS: numberOption('quiet-wait', v['quiet-wait']) ?? 120,
    tlscopeArgs: typeof v['tlscope-args'] === 'string' ? v['tlscope-args'].split(/\s+/).filter((x) => x !== '') : [],
    verbose: v['verbose'] === true,
    profileDir: typeof v['profile'] === 'string' ? v['profile'] : undefined,
    tlscopeBin: typeof v['tlscope-bin'] === 'string' ? v['tlscope-bin'] : BIN,
  };
  if (o.quick) {
    o.seconds = Math.min(o.seconds, 2);
    o.reps = 1;
  }
  for (const s of o.scenarios) if (s !== 'gso' && s !== 'mtu') throw new Error(`unknown scenario ${s}: gso or mtu`);
  return o;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const ns = statCpuNs(pid);
  if (ns === undefined) throw new Error(`process ${pid} is gone`);
  return ns / 1e9;
}

/** Waits until other work leaves the machine alone; returns how busy it was at the start. */
function waitForQuiet(o: Options): Promise<number> {
  return waitQuiet(o.quietPct, o.quietWaitS, {
    pauseMs: 2000,
    onBusy: (busy) => process.stderr.write(`(machine ${busy.toFixed(0)} % busy with other work: waiting)\n`),
  });
}

class Proc {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(readonly label: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv) {
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env === undefined ? {} : { env }) });
    this.child.stdout?.setEncoding('utf8').on('data', (s: string) => (this.stdout += s));
    this.child.stderr?.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async waitFor(what: RegExp, where: 'stdout' | 'stderr', timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!what.test(this[where])) {
      if (!this.running) throw new Error(`${this.label} exited before printing ${what}: ${this.stderr.trim()}`);
      if (Date.now() > deadline) throw new Error(`${this.label}: no ${what} within ${timeoutMs / 1000} s: ${this.stderr.trim()}`);
      await sleep(20);
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGINT', timeoutMs = 30_000): Promise<number | null> {
    if (this.running) this.child.kill(signal);
    const t = setTimeout(() => this.running && this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(t);
    }
  }
}

/** tcpdump's and tlscope's closing lines: "N packets captured" and so on. */
function totals(stderr: string): { captured: number; received: number; dropped: number } {
  const n = (what: string): number => {
    const m = new RegExp(`^(\\d+) packets? ${what}$`, 'm').exec(stderr);
    if (m?.[1] === undefined) throw new Error(`no "${what}" line in:\n${stderr}`);
    return Number(m[1]);
  };
  return { captured: n('captured'), received: n('received by filter'), dropped: n('dropped by kernel') };
}

/** The namespace, veth and sink of one run; removed by close(). */
class Testbed {
  readonly ns: string;
  readonly hostIf: string;
  readonly nsIf: string;
  readonly hostIp: string;
  readonly nsIp: string;
  readonly port = 5201;
  sink: Proc | undefined;

  constructor(id: string) {
    this.ns = `tlsbench-${id}`;
    this.hostIf = `tlsb${id}h`.slice(0, 15);
    this.nsIf = `tlsb${id}n`.slice(0, 15);
    const octet = 16 + (process.pid % 200);
    this.hostIp = `10.251.${octet}.1`;
    this.nsIp = `10.251.${octet}.2`;
  }

  async open(scenario: string): Promise<void> {
    sh('ip', ['netns', 'add', this.ns]);
    sh('ip', ['link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', this.nsIf, 'netns', this.ns]);
    sh('ip', ['addr', 'add', `${this.hostIp}/30`, 'dev', this.hostIf]);
    sh('ip', ['link', 'set', this.hostIf, 'up']);
    sh('ip', ['-n', this.ns, 'addr', 'add', `${this.nsIp}/30`, 'dev', this.nsIf]);
    sh('ip', ['-n', this.ns, 'link', 'set', this.nsIf, 'up']);
    sh('ip', ['-n', this.ns, 'link', 'set', 'lo', 'up']);
    if (scenario === 'mtu') sh('ip', ['link', 'set', 'dev', this.hostIf, 'gso_max_segs', '1']);
    // `ip netns exec` execs the command: the child's pid is the sink's
    this.sink = new Proc('sink', 'ip', ['netns', 'exec', this.ns, process.execPath, TRAFFIC, 'sink', String(this.port)]);
    await this.sink.waitFor(/^ready$/m, 'stdout');
  }

  async close(): Promise<void> {
    await this.sink?.stop('SIGTERM', 5000);
    try {
      sh('ip', ['netns', 'del', this.ns]); // takes the veth pair with it
    } catch {
      // never made
    }
    try {
      sh('ip', ['link', 'del', this.hostIf]);
    } catch {
      // gone with the namespace
    }
  }
}

let activeBed: Testbed | undefined;
const activeProcs = new Set<Proc>();

async function runOnce(o: Options, scenario: string, rep: number, dir: string): Promise<RunResult> {
  const bed = new Testbed(`${process.pid % 10000}${rep}`);
  activeBed = bed;
  const filter = `tcp port ${bed.port}`;
  const files = { tcpdump: join(dir, `tcpdump-${scenario}-${rep}.pcap`), tlscope: join(dir, `tlscope-${scenario}-${rep}.pcapng`) };
  try {
    const backgroundBusyPct = await waitForQuiet(o);
    await bed.open(scenario);
    const sinkPid = bed.sink?.pid as number;
    const common = ['-B', String(o.bufferKiB), ...(o.snaplen === undefined ? [] : ['-s', String(o.snaplen)])];
    const tcpdump = new Proc('tcpdump', 'ip', ['netns', 'exec', bed.ns, 'tcpdump', '-i', bed.nsIf, '-w', files.tcpdump, '-Z', 'root', ...common, filter]);
    activeProcs.add(tcpdump);
    const profile = o.profileDir === undefined ? undefined : join(o.profileDir, `capture-${scenario}-${rep}.cpuprofile`);
    if (o.profileDir !== undefined) mkdirSync(o.profileDir, { recursive: true });
    const tlscope = new Proc('tlscope', process.execPath, [o.tlscopeBin, 'capture', '--pid', String(sinkPid), '-i', bed.nsIf, '-w', files.tlscope, ...common, ...(o.verbose ? ['-v'] : []), ...o.tlscopeArgs, filter], profile === undefined ? undefined : { ...process.env, TLSCOPE_CPU_PROFILE: profile });
    activeProcs.add(tlscope);
    await tcpdump.waitFor(/listening on/, 'stderr');
    await tlscope.waitFor(/listening on/, 'stderr');
    await sleep(300);
    const procs: Record<Tool, Proc> = { tcpdump, tlscope };
    const cpu0 = { tcpdump: cpuSeconds(tcpdump.pid), tlscope: cpuSeconds(tlscope.pid) };
    const t0 = process.hrtime.bigint();
    const sender = new Proc('sender', process.execPath, [TRAFFIC, 'send', bed.nsIp, String(bed.port), String(o.seconds)]);
    await sender.waitFor(/"bytes"/, 'stdout', (o.seconds + 30) * 1000);
    await sender.exited;
    await sleep(300); // the last blocks reach both
    const windowS = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu1 = { tcpdump: cpuSeconds(tcpdump.pid), tlscope: cpuSeconds(tlscope.pid) };
    const sent = JSON.parse(/\{.*\}/.exec(sender.stdout)?.[0] ?? '{}') as { bytes: number; seconds: number };
    await Promise.all([tcpdump.stop(), tlscope.stop()]);
    activeProcs.clear();
    if (o.verbose) {
      const details = tlscope.stderr.split('\n').filter((l) => /wake-ups|event loop held/.test(l));
      for (const l of details) process.stderr.write(`  tlscope -v: ${l.replace(/^tlscope: /, '')}\n`);
    }
    const results = TOOLS.map((tool): ToolResult => {
      const t = totals(procs[tool].stderr);
      const fileBytes = existsSync(files[tool]) ? statSync(files[tool]).size : 0;
      return { tool, ...t, fileBytes, pps: t.captured / sent.seconds, cpuPct: (100 * (cpu1[tool] - cpu0[tool])) / windowS };
    });
    return { scenario, rep, backgroundBusyPct, seconds: sent.seconds, sentBytes: sent.bytes, results };
  } finally {
    for (const p of activeProcs) await p.stop('SIGKILL', 5000);
    activeProcs.clear();
    await bed.close();
    activeBed = undefined;
    for (const f of Object.values(files)) rmSync(f, { force: true });
  }
}

function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

function table(runs: RunResult[], o: Options): string {
  const head = ['scenario', 'tool', 'packets/s written (median)', 'captured', 'received by filter', 'dropped by kernel', 'drop %', 'CPU % of a core (median)', 'MB/s sent (median)'];
  const rows: string[][] = [];
  for (const scenario of o.scenarios) {
    const rs = runs.filter((r) => r.scenario === scenario);
    if (rs.length === 0) continue;
    for (const tool of TOOLS) {
      const ts = rs.map((r) => r.results.find((x) => x.tool === tool) as ToolResult);
      const cap = ts.reduce((n, t) => n + t.captured, 0);
      const recv = ts.reduce((n, t) => n + t.received, 0);
      const drop = ts.reduce((n, t) => n + t.dropped, 0);
      rows.push([scenario, tool, fmt(median(ts.map((t) => t.pps))), String(cap), String(recv), String(drop), recv ? ((100 * drop) / recv).toFixed(2) : '0', fmt(median(ts.map((t) => t.cpuPct))), fmt(median(rs.map((r) => r.sentBytes / r.seconds / 1e6)))]);
    }
    const ratio = median(rs.map((r) => (r.results[1]?.pps ?? 0) / Math.max(1, r.results[0]?.pps ?? 0)));
    rows.push([scenario, 'tlscope / tcpdump', `×${ratio.toFixed(2)}`, '', '', '', '', '', '']);
  }
  return markdownTable(head, 'llrrrrrrr', rows);
}

/** issue 15's targets at equal rings: CPU per packet written ≤ tcpdump's, drop share ≤ tcpdump's. */
function targets(runs: RunResult[], o: Options): string {
  const out: string[] = [];
  for (const scenario of o.scenarios) {
    const rs = runs.filter((r) => r.scenario === scenario);
    if (rs.length === 0) continue;
    const per = (tool: Tool): { cpuPerPkt: number; dropShare: number } => {
      const ts = rs.map((r) => r.results.find((x) => x.tool === tool) as ToolResult);
      const recv = ts.reduce((n, t) => n + t.received, 0);
      return { cpuPerPkt: median(ts.map((t) => t.cpuPct / Math.max(1, t.pps))), dropShare: recv ? ts.reduce((n, t) => n + t.dropped, 0) / recv : 0 };
    };
    const td = per('tcpdump');
    const tl = per('tlscope');
    const cpu = tl.cpuPerPkt / Math.max(1e-12, td.cpuPerPkt);
    out.push(`target ${scenario}: tlscope CPU per packet ×${cpu.toFixed(2)} tcpdump's (target ≤ 1: ${cpu <= 1 ? 'met' : 'not met'}); drops ${(100 * tl.dropShare).toFixed(2)} % vs ${(100 * td.dropShare).toFixed(2)} % (target ≤ tcpdump's: ${tl.dropShare <= td.dropShare ? 'met' : 'not met'})`);
  }
  return out.join('\n');
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('bench/capture needs root (network namespaces, packet sockets)');
  for (const f of [BIN, TRAFFIC]) if (!existsSync(f)) throw new Error(`${f} is missing: run npm run build`);
  try {
    sh('tcpdump', ['--version']);
  } catch {
    throw new Error('tcpdump is not installed (Debian package tcpdump)');
  }
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'tlscope-bench-capture-'));
  mkdirSync(dir, { recursive: true });
  const onSignal = (): void => {
    void (async () => {
      for (const p of activeProcs) await p.stop('SIGKILL', 2000);
      await activeBed?.close();
      if (o.dir === undefined) rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    })();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const runs: RunResult[] = [];
  try {
    for (let rep = 1; rep <= o.reps; rep++) {
      for (const scenario of o.scenarios) {
        const r = await runOnce(o, scenario, rep, dir);
        runs.push(r);
        process.stderr.write(`${scenario} #${rep} (machine ${r.backgroundBusyPct.toFixed(0)} % busy before): ${(r.sentBytes / 1e6).toFixed(0)} MB in ${r.seconds.toFixed(1)} s; ${r.results.map((x) => `${x.tool} ${x.captured} captured / ${x.received} received / ${x.dropped} dropped, ${x.cpuPct.toFixed(0)} % CPU`).join('; ')}\n`);
      }
    }
  } finally {
    if (o.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
  const tcpdumpVersion = /tcpdump version (\S+)/.exec(sh('tcpdump', ['--version']))?.[1] ?? '?';
  const busiest = Math.max(...runs.map((r) => r.backgroundBusyPct));
  const header = `tcpdump ${tcpdumpVersion} vs tlscope capture, ${o.seconds} s of traffic × ${o.reps} rep(s), machine at most ${busiest.toFixed(0)} % busy before a run, files in ${o.dir ?? tmpdir()}, ring: ${o.bufferKiB} KiB for both, snap length ${o.snaplen ?? 262144}`;
  process.stdout.write(`\n${header}\n\n${table(runs, o)}\n\n${targets(runs, o)}\n`);
  const file = writeResults('capture', { options: o, tcpdumpVersion, runs });
  process.stderr.write(`results: ${file}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/capture: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
