// SPDX-License-Identifier: Apache-2.0
/**
 * bench/sni: `tlscope trace sni` against tshark on the same traffic. A C generator
 * (bench/sni/generator.c) sends raw ClientHellos (built once by test/helpers/clienthello.ts,
 * each one patched to carry its own server name and client random) over TCP to a local C sink,
 * one new connection per hello, no crypto — so the tracers are the bottleneck. While it runs:
 *   tlscope  `tlscope trace sni --host -o json -v` to a file
 *   tshark   `tshark -i lo -n -l -f 'tcp dst port P' -d tcp.port==P,tls
 *             -Y tls.handshake.extensions_server_name -T fields -e tls.handshake.extensions_server_name`
 *            to a file (its capture runs in a dumpcap child; both are counted)
 * and it reports, per scenario, hellos sent against distinct names each tool printed, and each
 * tool's CPU (utime + stime from /proc, all threads, from the generator's start until both had
 * printed everything they were going to). Scenarios: the generator alone (its top rate without
 * tracers), the generator's top rate with both tracers, and fixed rates.
 *
 *   npm run build && node dist/bench/sni/run.js [--quick] [--count 200000] [--rates 2000,5000,10000]
 *        [--seconds 15] [--pq|--no-pq] [--quiet-pct 20] [--quiet-wait 60] [--only baseline,top,rates]
 *        [--tlscope-args "--ring-size 16"]
 *
 * What the CPU columns leave out: the kernel work done in the sender's context (the socket
 * filters of both tools, tlscope's tcp_sendmsg_locked program, the packet copies for tshark's
 * AF_PACKET ring) is charged to the generator and softirqs, not to either tool.
 *
 * Needs root, cc, tshark. Prints a markdown table and ratios; writes JSON to bench/out/.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildClientHello } from '../../test/helpers/clienthello.js';
import { ROOT, busyPct, fixed, machineTimes, markdownTable, sleep, statCpuNs, waitQuiet, writeResults, benchOptions, listOption, numberOption } from '../common.js';

const CLI = join(ROOT, 'dist/src/cli/bin.js');
const GENERATOR_SRC = join(ROOT, 'bench/sni/generator.c');
const NAME = /^h([0-9a-f]{8})\.sni-bench\.test$/;

interface Options {
  quick: boolean;
  count: number;
  rates: number[];
  seconds: number;
  postQuantum: boolean;
  quietPct: number;
  quietWaitS: number;
  /** which scenarios: baseline (generator alone), top, rates */
  only: string[];
  /** extra arguments for `tlscope trace sni` (e.g. --ring-size 16) */
  tlscopeArgs: string[];
}

/** tlscope's ring for the run (its default, 32 MiB, or --tlscope-args "--ring-size N"); tshark gets the same capture buffer (-B, MiB). */
function ringMiB(o: Options): number {
  const i = o.tlscopeArgs.indexOf('--ring-size');
  return i >= 0 ? Number(o.tlscopeArgs[i + 1]) : 32;
}

function parseOptions(argv: string[]): Options {
  const v = benchOptions(argv, {
    quick: { type: 'boolean' }, count: { type: 'string' }, rates: { type: 'string' }, seconds: { type: 'string' }, pq: { type: 'boolean' }, 'no-pq': { type: 'boolean' },
    'quiet-pct': { type: 'string' }, 'quiet-wait': { type: 'string' }, only: { type: 'string' }, 'tlscope-args': { type: 'string' },
  }, 'node dist/bench/sni/run.js [--quick] [--count 200000] [--rates 2000,5000,10000] [--seconds 15] [--pq|--no-pq] [--quiet-pct 20] [--quiet-wait 60] [--only baseline,top,rates] [--tlscope-args "--ring-size 16"]');
  const quick = v['quick'] === true;
  const rates = (listOption(v['rates']) ?? ['2000', '5000', '10000']).map((r) => numberOption('rates', r, 1) ?? 0);
  return {
    quick,
    // --quick: 20 k hellos, two rates of 4 s, a short quiet wait, unless given
    count: numberOption('count', v['count'], 1) ?? (quick ? 20_000 : 200_000),
    rates: quick ? rates.slice(0, 2) : rates,
    seconds: numberOption('seconds', v['seconds'], 1) ?? (quick ? 4 : 15),
    postQuantum: v['no-pq'] !== true,
    quietPct: numberOption('quiet-pct', v['quiet-pct']) ?? 20,
    quietWaitS: numberOption('quiet-wait', v['quiet-wait']) ?? (quick ? 15 : 60),
    only: listOption(v['only']) ?? ['baseline', 'top', 'rates'],
    tlscopeArgs: listOption(v['tlscope-args'], /\s+/) ?? [],
  };
}

// ---------------------------------------------------------------------------------------
// /proc

/** utime + stime of a process (all its threads), in ns; 0 once it is gone. */
const cpuNs = (pid: number | undefined): number => (pid === undefined ? 0 : statCpuNs(pid) ?? 0);

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// processes

function lineOnce(child: ChildProcess, stream: 'stdout' | 'stderr', re: RegExp, ms: number): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no ${re} from ${child.spawnfile} within ${ms} ms: ${buf.slice(-500)}`)), ms);
    const s = child[stream]!;
    const on = (d: Buffer): void => {
      buf += d.toString();
      const m = re.exec(buf);
      if (m !== null) {
        clearTimeout(timer);
        s.off('data', on);
        resolve(m);
      }
    };
    s.on('data', on);
  });
}

function collect(child: ChildProcess, stream: 'stdout' | 'stderr'): () => string {
  let text = '';
  child[stream]?.on('data', (d: Buffer) => {
    if (text.length < 100_000) text += d.toString();
  });
  return () => text;
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGINT', ms = 30_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  const t = setTimeout(() => child.kill('SIGKILL'), ms);
  await exited;
  clearTimeout(t);
}

function sendOne(port: number, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, noDelay: true }, () => s.end(bytes));
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.resume();
  });
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Distinct bench names (hello indexes) in a file of lines, and how many lines named one. */
function countNames(path: string, pick: (line: string) => string | undefined): { distinct: number; lines: number; outOfRange: number; max: number } {
  const seen = new Set<number>();
  let lines = 0;
  let outOfRange = 0;
  let max = -1;
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  for (const line of text.split('\n')) {
    const name = pick(line);
    if (name === undefined) continue;
    const m = NAME.exec(name);
    if (m === null) continue;
    const i = parseInt(m[1]!, 16);
    lines++;
    seen.add(i);
    if (i > max) max = i;
  }
  void outOfRange;
  return { distinct: seen.size, lines, outOfRange, max };
}

function tlscopeName(line: string): string | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return (JSON.parse(line) as { name?: string }).name;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// one run

interface Scenario {
  name: string;
  count: number;
  /** hellos/s; 0: as fast as the generator goes */
  rate: number;
  tracers: boolean;
}

interface ToolResult {
  seen: number;
  /** lines naming a bench hello beyond the distinct ones */
  duplicates: number;
  cpuNs: number;
  /** tlscope: ring-buffer losses it reported; tshark: packets dumpcap said it dropped */
  lost: number;
  summary: string;
}

interface RunResult {
  scenario: string;
  count: number;
  rate: number;
  sent: number;
  failed: number;
  generatorSeconds: number;
  achievedRate: number;
  /** from the generator's start until both tools were done */
  windowSeconds: number;
  machineBusyPct: number;
  backgroundBusyPct: number;
  tlscope?: ToolResult;
  tshark?: ToolResult;
}

async function runScenario(sc: Scenario, o: Options, gen: string, helloFile: string, digitsOffset: number, randomOffset: number, work: string): Promise<RunResult> {
  const backgroundBusyPct = await waitQuiet(o.quietPct, o.quietWaitS);
  const sink = spawn(gen, ['sink', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const port = Number((await lineOnce(sink, 'stdout', /ready (\d+)/, 10_000))[1]);
  const file = sc.name.replace(/[^\w.-]+/g, '_');
  const tlsOut = join(work, `${file}.tlscope.json`);
  const tsharkOut = join(work, `${file}.tshark.txt`);
  let tlscope: ChildProcess | undefined;
  let tshark: ChildProcess | undefined;
  let tlsErr = (): string => '';
  let tsharkErr = (): string => '';
  let dumpcap: number | undefined;
  try {
    if (sc.tracers) {
      const fd1 = openSync(tlsOut, 'w');
      tlscope = spawn(process.execPath, [CLI, 'trace', 'sni', '--host', '-o', 'json', '-v', ...o.tlscopeArgs], { stdio: ['ignore', fd1, 'pipe'] });
      closeSync(fd1);
      tlsErr = collect(tlscope, 'stderr');
      const fd2 = openSync(tsharkOut, 'w');
      tshark = spawn('tshark', ['-i', 'lo', '-B', String(ringMiB(o)), '-n', '-l', '-f', `tcp dst port ${port}`, '-d', `tcp.port==${port},tls`, '-Y', 'tls.handshake.extensions_server_name', '-T', 'fields', '-e', 'tls.handshake.extensions_server_name'], { stdio: ['ignore', fd2, 'pipe'] });
      closeSync(fd2);
      tsharkErr = collect(tshark, 'stderr');
      // both are capturing once a warm-up hello shows in both outputs
      const deadline = Date.now() + 60_000;
      for (let n = 0; ; n++) {
        if (Date.now() > deadline) throw new Error(`the tracers did not start: tlscope: ${tlsErr()} tshark: ${tsharkErr()}`);
        const warm = `w${process.pid}-${n}.warmup.test`;
        await sendOne(port, buildClientHello({ serverName: warm, seed: 1000 + n }).bytes);
        await sleep(400);
        const a = existsSync(tlsOut) && readFileSync(tlsOut, 'utf8').includes(warm);
        const b = existsSync(tsharkOut) && readFileSync(tsharkOut, 'utf8').includes(warm);
        if (a && b) break;
      }
      dumpcap = childrenOf(tshark.pid!)[0];
    }

    const cpu0 = { tlscope: cpuNs(tlscope?.pid), tshark: cpuNs(tshark?.pid) + cpuNs(dumpcap) };
    const m0 = machineTimes();
    const t0 = process.hrtime.bigint();
    const genProc = spawn(gen, ['send', '127.0.0.1', String(port), helloFile, String(digitsOffset), String(randomOffset), String(sc.count), String(sc.rate), String(Math.floor(Math.random() * 2 ** 31))], { stdio: ['ignore', 'pipe', 'inherit'] });
    const genOut = collect(genProc, 'stdout');
    await new Promise<void>((r) => genProc.once('exit', () => r()));
    const g = JSON.parse(genOut().trim()) as { sent: number; failed: number; elapsedNs: number };

    // Done when neither output has grown for 3 s (each tool drains at its own pace).
    if (sc.tracers) {
      let last = [fileSize(tlsOut), fileSize(tsharkOut)];
      let stableSince = Date.now();
      const giveUp = Date.now() + 120_000;
      while (Date.now() - stableSince < 3000 && Date.now() < giveUp) {
        await sleep(250);
        const now = [fileSize(tlsOut), fileSize(tsharkOut)];
        if (now[0] !== last[0] || now[1] !== last[1]) {
          stableSince = Date.now();
          last = now;
        }
      }
    }
    // the 3 quiet seconds are not part of the window (but the tools' idle CPU in them is tiny)
    const windowNs = Number(process.hrtime.bigint() - t0) - (sc.tracers ? 3e9 : 0);
    const cpu1 = { tlscope: cpuNs(tlscope?.pid), tshark: cpuNs(tshark?.pid) + cpuNs(dumpcap) };
    const m1 = machineTimes();

    const result: RunResult = {
      scenario: sc.name,
      count: sc.count,
      rate: sc.rate,
      sent: g.sent,
      failed: g.failed,
      generatorSeconds: g.elapsedNs / 1e9,
      achievedRate: g.sent / (g.elapsedNs / 1e9),
      windowSeconds: windowNs / 1e9,
      machineBusyPct: busyPct(m0, m1),
      backgroundBusyPct,
    };
    if (tlscope !== undefined && tshark !== undefined) {
      await stopChild(tlscope);
      await stopChild(tshark);
      const tl = countNames(tlsOut, tlscopeName);
      const ts = countNames(tsharkOut, (l) => l.trim());
      const tlSummary = /tlscope: \d+ events?, (\d+) lost[^\n]*/.exec(tlsErr());
      const tsDropped = /(\d+) packets? dropped/.exec(tsharkErr());
      result.tlscope = { seen: tl.distinct, duplicates: tl.lines - tl.distinct, cpuNs: cpu1.tlscope - cpu0.tlscope, lost: Number(tlSummary?.[1] ?? 0), summary: tlSummary?.[0] ?? tlsErr().trim().split('\n').slice(-2).join(' ') };
      result.tshark = { seen: ts.distinct, duplicates: ts.lines - ts.distinct, cpuNs: cpu1.tshark - cpu0.tshark, lost: Number(tsDropped?.[1] ?? 0), summary: tsharkErr().trim().split('\n').filter((l) => !/dangerous/.test(l)).slice(-3).join(' / ') };
    }
    return result;
  } finally {
    if (tlscope !== undefined) await stopChild(tlscope);
    if (tshark !== undefined) await stopChild(tshark);
    await stopChild(sink, 'SIGTERM');
  }
}

// ---------------------------------------------------------------------------------------

const fmt = fixed;
const pct = (a: number, b: number): string => (b === 0 ? '–' : `${fmt((100 * a) / b, a === b ? 0 : 2)} %`);
const k = (n: number): string => (n >= 10_000 ? `${fmt(n / 1000, 1)} k` : String(Math.round(n)));

function table(results: RunResult[]): string {
  const head = ['scenario', 'sent', 'rate (hellos/s)', 'tlscope seen', 'tlscope CPU', 'tlscope µs/hello', 'tshark seen', 'tshark CPU', 'tshark µs/hello', 'tshark/tlscope CPU'];
  const rows: string[][] = [];
  for (const r of results) {
    if (r.tlscope === undefined || r.tshark === undefined) {
      rows.push([r.scenario, k(r.sent), k(r.achievedRate), '–', '–', '–', '–', '–', '–', '–']);
      continue;
    }
    const tlPct = (100 * r.tlscope.cpuNs) / (r.windowSeconds * 1e9);
    const tsPct = (100 * r.tshark.cpuNs) / (r.windowSeconds * 1e9);
    rows.push([
      r.scenario,
      k(r.sent),
      k(r.achievedRate),
      `${pct(r.tlscope.seen, r.sent)}${r.tlscope.duplicates ? ` (+${r.tlscope.duplicates} dup)` : ''}`,
      `${fmt(r.tlscope.cpuNs / 1e9, 2)} s (${fmt(tlPct, 0)} %)`,
      fmt(r.tlscope.cpuNs / 1e3 / r.sent, 1),
      `${pct(r.tshark.seen, r.sent)}${r.tshark.duplicates ? ` (+${r.tshark.duplicates} dup)` : ''}`,
      `${fmt(r.tshark.cpuNs / 1e9, 2)} s (${fmt(tsPct, 0)} %)`,
      fmt(r.tshark.cpuNs / 1e3 / r.sent, 1),
      `${fmt(r.tshark.cpuNs / Math.max(1, r.tlscope.cpuNs), 1)}×`,
    ]);
  }
  return markdownTable(head, 'lrrrrrrrrr', rows);
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('bench/sni needs root (BPF, packet capture)');
  for (const [bin, pkg] of [['tshark', 'tshark'], ['cc', 'gcc']] as const) {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${bin} is not installed (Debian package ${pkg})`);
    }
  }
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build`);
  const work = mkdtempSync(join(tmpdir(), 'tlscope-bench-sni-'));
  try {
    const gen = join(work, 'generator');
    execFileSync('cc', ['-O2', '-Wall', '-o', gen, GENERATOR_SRC]);
    // A modern browser-like hello: GREASE, ALPN h2 + http/1.1, and (default) a post-quantum
    // key share, ~1.5 KB. The 8 hex digits of the name and the client random are patched per hello.
    const built = buildClientHello({ serverName: 'h00000000.sni-bench.test', alpn: ['h2', 'http/1.1'], grease: true, postQuantum: o.postQuantum, seed: 42 });
    if (built.serverNameOffset === undefined) throw new Error('no name offset');
    const helloFile = join(work, 'hello.bin');
    writeFileSync(helloFile, built.bytes);
    const digitsOffset = built.serverNameOffset + 1;
    const randomOffset = 5 + 4 + 2; // record header, handshake header, legacy_version
    const scenarios: Scenario[] = [
      ...(o.only.includes('baseline') ? [{ name: 'top rate, no tracers', count: o.count, rate: 0, tracers: false }] : []),
      ...(o.only.includes('top') ? [{ name: 'top rate', count: o.count, rate: 0, tracers: true }] : []),
      ...(o.only.includes('rates') ? o.rates.map((rate) => ({ name: `${rate}/s`, count: Math.round(rate * o.seconds), rate, tracers: true })) : []),
    ];
    const results: RunResult[] = [];
    for (const sc of scenarios) {
      process.stderr.write(`bench/sni: ${sc.name}: ${sc.count} hellos${sc.rate ? ` at ${sc.rate}/s` : ''}…\n`);
      const r = await runScenario(sc, o, gen, helloFile, digitsOffset, randomOffset, work);
      results.push(r);
      process.stderr.write(`  sent ${r.sent} in ${fmt(r.generatorSeconds, 2)} s (${k(r.achievedRate)}/s)${r.tlscope ? `; tlscope ${r.tlscope.seen} (${r.tlscope.summary}); tshark ${r.tshark?.seen} (${r.tshark?.summary})` : ''}\n`);
    }

    const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Linux ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}, node ${process.version}, ${execFileSync('tshark', ['--version'], { encoding: 'utf8' }).split('\n')[0]}`;
    process.stdout.write(`\n## bench/sni — ${built.bytes.length}-byte ClientHellos, one TCP connection each, 127.0.0.1; tlscope trace sni --host -o json -v ${o.tlscopeArgs.join(' ')}; tshark -B ${ringMiB(o)} (the same ${ringMiB(o)} MiB as tlscope's ring)\n\n${machine}\n\n${table(results)}\n\n`);
    const withTracers = results.filter((r) => r.tlscope !== undefined && r.tshark !== undefined);
    for (const r of withTracers) {
      const tl = r.tlscope!;
      const ts = r.tshark!;
      process.stdout.write(`${r.scenario}: tlscope saw ${pct(tl.seen, r.sent)} with ${fmt(tl.cpuNs / 1e9, 2)} s CPU (${tl.lost} lost in the ring), tshark ${pct(ts.seen, r.sent)} with ${fmt(ts.cpuNs / 1e9, 2)} s (${ts.lost} packets dropped); tshark used ${fmt(ts.cpuNs / Math.max(1, tl.cpuNs), 1)}× tlscope's CPU; machine ${fmt(r.machineBusyPct, 0)} % busy (before: ${fmt(r.backgroundBusyPct, 0)} %)\n`);
    }
    // issue 15's target: CPU per hello at most 1/5 of tshark's on the same hellos (tshark/tlscope ≥ 5×), all seen
    for (const r of withTracers) {
      const ratio = r.tshark!.cpuNs / Math.max(1, r.tlscope!.cpuNs);
      const all = r.tlscope!.seen === r.sent;
      process.stdout.write(`target ${r.scenario}: tshark/tlscope CPU ${fmt(ratio, 1)}× (target ≥ 5×: ${ratio >= 5 ? 'met' : 'not met'}); tlscope saw ${pct(r.tlscope!.seen, r.sent)} (target 100 %: ${all ? 'met' : 'not met'})\n`);
    }
    const noisy = results.filter((r) => r.backgroundBusyPct > o.quietPct);
    if (noisy.length > 0) process.stdout.write(`\nNote: other work kept the machine above ${o.quietPct} % busy before ${noisy.map((r) => r.scenario).join(', ')}: those numbers are skewed.\n`);
    const file = writeResults('sni', { machine, options: o, helloBytes: built.bytes.length, results });
    process.stdout.write(`\n(JSON: ${file})\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/sni: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
