// SPDX-License-Identifier: Apache-2.0
/**
 * bench/ringbuf: events per second into the consumer, and its CPU, for tlscope's TypeScript
 * ring-buffer reader against two C consumers of the same BPF program (dist/bpf/selftest.bpf.o,
 * on_getppid, 24-byte numbered events):
 *   js       RingBufReader (timer + epoll), program submits with BPF_RB_NO_WAKEUP
 *   c-timer  libbpf ring_buffer__consume() every 5 ms, BPF_RB_NO_WAKEUP
 *   c-poll   libbpf ring_buffer__poll() with default wakeups (the usual libbpf loop)
 *
 *   npm run build && node dist/bench/ringbuf/run.js [--quick] [--reps 3] [--only js,c-poll]
 *        [--scenario max,paced,paced-b1,backlog] [--js-profile bench/out/prof] [--js-args "--decode object"]
 *        [--js-node-args "…"] [--js-consumer other/build/js-consumer.js] [--interval-ms 5]
 *        [--quiet-pct 10] [--quiet-wait 120]
 *
 * Other work on the machine skews both rates and CPU: before each run it waits (up to
 * --quiet-wait seconds) until the machine was at most --quiet-pct busy for half a second, and
 * records how busy it was.
 *
 * Needs root, cc and libbpf-dev. Prints a markdown table and the ratios; writes JSON to
 * bench/out/.
 */
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { ROOT, busyPct, fixed, machineTimes, markdownTable, median, schedstatCpuNs, sleep, waitQuiet, writeResults, benchOptions, listOption, numberOption } from '../common.js';

const OBJECT = join(ROOT, 'dist/bpf/selftest.bpf.o');
const JS_CONSUMER = join(ROOT, 'dist/bench/ringbuf/js-consumer.js');

type ConsumerName = 'js' | 'c-timer' | 'c-poll';
const CONSUMERS: ConsumerName[] = ['js', 'c-timer', 'c-poll'];

interface Scenario {
  name: string;
  what: string;
  burst: number;
  /** getppid calls */
  triggers: number;
  /** getppid calls per second; undefined: as fast as the producer goes (test/helpers/trigger) */
  rate?: number;
  /** the consumer reads nothing until the producer is done, then drains the full ring */
  backlog?: boolean;
  /** ring size in bytes (default: the object's, 16 MiB) */
  ringBytes?: number;
}

interface Options {
  quick: boolean;
  reps: number;
  only: ConsumerName[];
  scenarios: string[];
  jsNodeArgs: string[];
  jsArgs: string[];
  jsProfileDir: string;
  /** another build of js-consumer.js (e.g. against a patched reader) to compare */
  jsConsumer: string;
  intervalMs: number;
  /** before each run, wait (up to quietWaitS) until the machine is at most this % busy */
  quietPct: number;
  quietWaitS: number;
}

/** What a consumer prints (consumer.c and js-consumer.ts agree on these fields). */
interface ConsumerResult {
  consumer: string;
  received: number;
  bytes: number;
  lost: number;
  emitted: number;
  expected: number;
  outOfOrder: number;
  batches: number;
  firstSeenNs: number;
  lastDeliveryNs: number;
  firstEventTsNs: number;
  lastEventTsNs: number;
  idleStop: boolean;
  /** js only: the longest interval between two runs of a 50 ms timer in the consumer */
  loopMaxGapMs?: number;
}

interface RunResult {
  scenario: string;
  consumer: ConsumerName;
  rep: number;
  expected: number;
  received: number;
  lost: number;
  missing: number;
  outOfOrder: number;
  batches: number;
  idleStop: boolean;
  /** from "go" (backlog: from "drain") to the consumer's last delivery */
  wallNs: number;
  eventsPerSec: number;
  /** consumer CPU (all threads) from "go" until it printed its result */
  cpuNs: number;
  cpuWindowNs: number;
  cpuPct: number;
  cpuNsPerEvent: number;
  /** BPF side: events emitted / (last event's timestamp − first event's) */
  producerEventsPerSec: number;
  /** paced only (the pacer reports it): the producer's CPU, BPF program included, % of one core */
  producerCpuPct: number;
  /** both cores, % of the machine busy during the window (100 = every core saturated) */
  systemBusyPct: number;
  /** the age of the newest event when its batch reached the consumer's code, at the end */
  finalLagMs: number;
  /** js only: the longest interval between two runs of a 50 ms timer (event-loop stall) */
  loopMaxGapMs: number;
  /** how busy the machine was just before the run (other work) */
  backgroundBusyPct: number;
}

function parseOptions(argv: string[]): Options {
  const v = benchOptions(argv, {
    quick: { type: 'boolean' }, reps: { type: 'string' }, only: { type: 'string' }, scenario: { type: 'string' },
    'js-node-args': { type: 'string' }, 'js-args': { type: 'string' }, 'js-profile': { type: 'string' }, 'js-consumer': { type: 'string' },
    'interval-ms': { type: 'string' }, 'quiet-pct': { type: 'string' }, 'quiet-wait': { type: 'string' },
  }, 'node dist/bench/ringbuf/run.js [--quick] [--reps 3] [--only js,c-timer,c-poll] [--scenario max,paced,paced-b1,backlog] [--js-node-args "…"] [--js-args "…"] [--js-profile DIR] [--js-consumer path/js-consumer.js] [--interval-ms 5] [--quiet-pct 10] [--quiet-wait 120]');
  const only = (listOption(v['only']) ?? CONSUMERS).map((s) => {
    if (!CONSUMERS.includes(s as ConsumerName)) throw new Error(`unknown consumer ${s}; one of ${CONSUMERS.join(', ')}`);
    return s as ConsumerName;
  });
  return {
    quick: v['quick'] === true,
    reps: numberOption('reps', v['reps'], 1) ?? 3,
    only,
    scenarios: listOption(v['scenario']) ?? ['max', 'paced', 'paced-b1', 'backlog'],
    jsNodeArgs: listOption(v['js-node-args'], /\s+/) ?? [],
    jsArgs: listOption(v['js-args'], /\s+/) ?? [],
    jsProfileDir: typeof v['js-profile'] === 'string' ? v['js-profile'] : '',
    jsConsumer: typeof v['js-consumer'] === 'string' ? v['js-consumer'] : JS_CONSUMER,
    intervalMs: numberOption('interval-ms', v['interval-ms'], 1) ?? 5,
    quietPct: numberOption('quiet-pct', v['quiet-pct']) ?? 10,
    quietWaitS: numberOption('quiet-wait', v['quiet-wait']) ?? 120,
  };
}

function scenarios(quick: boolean): Scenario[] {
  const scale = quick ? 10 : 1;
  return [
    // 80 000 × 64 = 5.12 M events, as fast as one producer thread can emit them
    { name: 'max', what: 'trigger getppid as fast as it goes, 64 events per call', burst: 64, triggers: Math.round(80_000 / scale) },
    // 1 M events/s for 5 s: the same load for every consumer, so CPU compares like for like
    { name: 'paced', what: '1 M events/s for 5 s (15 625 getppid/s × 64)', burst: 64, triggers: Math.round(78_125 / scale), rate: 15_625 },
    // one event per trigger, like one uprobe hit per event: where wakeups cost most
    { name: 'paced-b1', what: '200 k events/s for 5 s, 1 event per getppid', burst: 1, triggers: Math.round(1_000_000 / scale), rate: 200_000 },
    // the consumer's own ceiling, which the producer hides in "max": 2 M events are written into
    // a 64 MiB ring while the consumer waits, then it drains them (the window starts there)
    { name: 'backlog', what: 'drain a ring holding 2 M events written beforehand (64 MiB ring)', burst: 64, triggers: Math.round(31_250 / scale), backlog: true, ringBytes: 64 << 20 },
  ];
}

// ---------------------------------------------------------------------------------------
// processes

/** Children alive right now, so an interrupted bench ends them (by pid) instead of orphaning them. */
const live = new Set<Child>();

class Child {
  readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: string[] = [];
  private waiters: Array<(l: string | undefined) => void> = [];
  private closed = false;
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;
  private readonly rl: Interface;

  constructor(readonly label: string, cmd: string, args: string[]) {
    this.proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.rl = createInterface({ input: this.proc.stdout });
    this.rl.on('line', (l) => {
      const w = this.waiters.shift();
      if (w !== undefined) w(l);
      else this.lines.push(l);
    });
    this.rl.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w(undefined);
    });
    this.proc.stdin.on('error', () => undefined); // EPIPE when it already exited: stop() copes
    this.proc.stderr.on('data', (d: Buffer) => {
      if (this.stderr.join('').length < 20_000) this.stderr.push(d.toString());
    });
    live.add(this);
    this.exited = new Promise((resolve) =>
      this.proc.once('exit', (code) => {
        live.delete(this);
        resolve(code);
      }),
    );
  }

  get pid(): number {
    const p = this.proc.pid;
    if (p === undefined) throw new Error(`${this.label} did not start: ${this.stderr.join('')}`);
    return p;
  }

  /** The next line on stdout, or an error after `timeoutMs`. */
  async line(timeoutMs: number): Promise<string> {
    const ready = this.lines.shift();
    if (ready !== undefined) return ready;
    if (this.closed) throw new Error(`${this.label} ended: ${this.stderr.join('').trim()}`);
    let timer: NodeJS.Timeout | undefined;
    const l = await new Promise<string | undefined>((resolve) => {
      this.waiters.push(resolve);
      timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== resolve);
        resolve(undefined);
      }, timeoutMs);
    });
    clearTimeout(timer);
    if (l === undefined) {
      throw new Error(`${this.label}: ${this.closed ? 'ended' : `no output within ${timeoutMs} ms`} (${this.stderr.join('').trim()})`);
    }
    return l;
  }

  send(line: string): void {
    if (!this.proc.stdin.destroyed) this.proc.stdin.write(`${line}\n`);
  }

  /** Ends the process we started: a line on stdin (or SIGTERM), then SIGKILL if it is still there. */
  async stop(graceful = true, timeoutMs = 10_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    if (graceful) this.send('stop');
    else this.proc.kill('SIGTERM');
    this.proc.stdin.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(t);
  }
}

/** CPU time of every thread of a process, in ns; NaN once it is gone. */
const processCpuNs = (pid: number): number => schedstatCpuNs(pid) ?? Number.NaN;

const nowNs = (): number => Number(process.hrtime.bigint()); // CLOCK_MONOTONIC

// ---------------------------------------------------------------------------------------
// one run

function profileArgs(o: Options, sc: Scenario, rep: number): string[] {
  if (o.jsProfileDir === '') return [];
  mkdirSync(o.jsProfileDir, { recursive: true });
  return ['--profile', join(o.jsProfileDir, `js-${sc.name}-${rep}.cpuprofile`)];
}

interface Tools {
  consumer: string;
  trigger: string;
  pacer: string;
}

async function runOnce(tools: Tools, sc: Scenario, consumer: ConsumerName, rep: number, o: Options): Promise<RunResult> {
  const expected = sc.triggers * sc.burst;
  const backgroundBusyPct = await waitQuiet(o.quietPct, o.quietWaitS);
  const producer =
    sc.rate === undefined
      ? new Child('trigger', tools.trigger, ['getppid', String(sc.triggers)])
      : new Child('pacer', tools.pacer, [String(sc.rate), String(sc.triggers)]);
  let cons: Child | undefined;
  try {
    const ready = await producer.line(10_000);
    const m = /^ready (\d+)$/.exec(ready);
    if (m === null) throw new Error(`producer said ${ready}`);
    const pid = m[1] ?? '';
    const common = ['--pid', pid, '--burst', String(sc.burst), '--expect', String(expected), '--obj', OBJECT, '--interval-ms', String(o.intervalMs)];
    if (sc.ringBytes !== undefined) common.push('--ring-bytes', String(sc.ringBytes));
    if (sc.backlog === true) common.push('--backlog', '1');
    cons =
      consumer === 'js'
        ? new Child('js-consumer', process.execPath, [...o.jsNodeArgs, o.jsConsumer, ...common, ...o.jsArgs, ...profileArgs(o, sc, rep)])
        : new Child(`consumer ${consumer}`, tools.consumer, [...common, '--mode', consumer === 'c-poll' ? 'poll' : 'timer']);
    const r = await cons.line(30_000);
    if (r !== 'ready') throw new Error(`${cons.label} said ${r}`);
    await sleep(100); // let the consumer settle (first timers)

    let done = '';
    if (sc.backlog === true) {
      // fill the ring while the consumer reads nothing; the timed window starts at "drain"
      producer.send('go');
      done = await producer.line(120_000);
    }
    const sys0 = machineTimes();
    const cpu0 = processCpuNs(cons.pid);
    const go = nowNs();
    if (sc.backlog === true) cons.send('drain');
    else producer.send('go');
    const line = await cons.line(300_000);
    const cpu1 = processCpuNs(cons.pid);
    const end = nowNs();
    const sys1 = machineTimes();
    const res = JSON.parse(line) as ConsumerResult;
    if (sc.backlog !== true) done = await producer.line(30_000);
    if (!done.startsWith('done ')) throw new Error(`producer said ${done}`);
    const [, , secs, cpuSecs] = done.split(' ').map(Number);
    const producerCpuPct = secs !== undefined && cpuSecs !== undefined && secs > 0 ? (100 * cpuSecs) / secs : Number.NaN;

    const wallNs = res.lastDeliveryNs - go;
    const cpuNs = cpu1 - cpu0;
    const cpuWindowNs = end - go;
    const producerSpan = res.lastEventTsNs - res.firstEventTsNs;
    return {
      scenario: sc.name,
      consumer,
      rep,
      expected,
      received: res.received,
      lost: res.lost,
      missing: expected - res.received - res.lost,
      outOfOrder: res.outOfOrder,
      batches: res.batches,
      idleStop: res.idleStop,
      wallNs,
      eventsPerSec: res.received / (wallNs / 1e9),
      cpuNs,
      cpuWindowNs,
      cpuPct: (100 * cpuNs) / cpuWindowNs,
      cpuNsPerEvent: res.received > 0 ? cpuNs / res.received : Number.NaN,
      producerEventsPerSec: producerSpan > 0 ? res.emitted / (producerSpan / 1e9) : Number.NaN,
      producerCpuPct,
      systemBusyPct: busyPct(sys0, sys1),
      finalLagMs: (res.lastDeliveryNs - res.lastEventTsNs) / 1e6,
      loopMaxGapMs: res.loopMaxGapMs ?? Number.NaN,
      backgroundBusyPct,
    };
  } finally {
    await cons?.stop();
    await producer.stop(false);
  }
}

// ---------------------------------------------------------------------------------------
// summary

interface Summary {
  scenario: string;
  consumer: ConsumerName;
  runs: number;
  eventsPerSec: number;
  received: number;
  lostMax: number;
  missingMax: number;
  outOfOrderMax: number;
  cpuPct: number;
  cpuNsPerEvent: number;
  producerEventsPerSec: number;
  producerCpuPct: number;
  systemBusyPct: number;
  batches: number;
  finalLagMs: number;
  loopMaxGapMs: number;
  backgroundBusyMaxPct: number;
}

function summarize(runs: RunResult[]): Summary[] {
  const out: Summary[] = [];
  const keys = [...new Set(runs.map((r) => `${r.scenario}\0${r.consumer}`))];
  for (const k of keys) {
    const rs = runs.filter((r) => `${r.scenario}\0${r.consumer}` === k);
    const first = rs[0] as RunResult;
    out.push({
      scenario: first.scenario,
      consumer: first.consumer,
      runs: rs.length,
      eventsPerSec: median(rs.map((r) => r.eventsPerSec)),
      received: median(rs.map((r) => r.received)),
      lostMax: Math.max(...rs.map((r) => r.lost)),
      missingMax: Math.max(...rs.map((r) => r.missing)),
      outOfOrderMax: Math.max(...rs.map((r) => r.outOfOrder)),
      cpuPct: median(rs.map((r) => r.cpuPct)),
      cpuNsPerEvent: median(rs.map((r) => r.cpuNsPerEvent)),
      producerEventsPerSec: median(rs.map((r) => r.producerEventsPerSec)),
      producerCpuPct: median(rs.map((r) => r.producerCpuPct)),
      systemBusyPct: median(rs.map((r) => r.systemBusyPct)),
      batches: median(rs.map((r) => r.batches)),
      finalLagMs: median(rs.map((r) => r.finalLagMs)),
      loopMaxGapMs: Math.max(...rs.map((r) => (Number.isNaN(r.loopMaxGapMs) ? -1 : r.loopMaxGapMs))),
      backgroundBusyMaxPct: Math.max(...rs.map((r) => r.backgroundBusyPct)),
    });
  }
  return out;
}

const fmtRate = (x: number): string => (Number.isNaN(x) ? '–' : x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : `${(x / 1e3).toFixed(0)} k`);
const fmt = fixed;

function table(sums: Summary[], scs: Scenario[]): string {
  const lines: string[] = [];
  for (const sc of scs) {
    const rows = sums.filter((s) => s.scenario === sc.name);
    if (rows.length === 0) continue;
    lines.push(`**${sc.name}** — ${sc.what}; ${(sc.triggers * sc.burst).toLocaleString('en-US')} events per run; each column is the median of ${rows[0]?.runs ?? 0} runs (lost, missing, out of order: the worst run)`);
    lines.push('');
    const head = ['consumer', 'events/s into consumer', 'lost (max)', 'missing (max)', 'out of order (max)', 'consumer CPU % of one core', 'CPU ns/event', 'producer events/s (BPF side)', 'producer CPU %', 'machine busy % (both cores, all processes)', 'batches', 'lag at end (ms)', 'js timer gap (ms)'];
    const cells = rows.map((s) => [
      s.consumer,
      fmtRate(s.eventsPerSec),
      String(s.lostMax),
      String(s.missingMax),
      String(s.outOfOrderMax),
      fmt(s.cpuPct),
      fmt(s.cpuNsPerEvent),
      fmtRate(s.producerEventsPerSec),
      Number.isNaN(s.producerCpuPct) ? '≈100 (busy loop)' : fmt(s.producerCpuPct),
      fmt(s.systemBusyPct),
      fmt(s.batches, 0),
      fmt(s.finalLagMs, 2),
      s.loopMaxGapMs < 0 ? '–' : fmt(s.loopMaxGapMs, 0),
    ]);
    lines.push(markdownTable(head, 'lrrrrrrrrrrrr', cells, 2));
    lines.push('');
  }
  return lines.join('\n');
}

interface Verdict {
  text: string;
  ok: boolean | undefined;
}

function verdicts(sums: Summary[]): Verdict[] {
  const get = (sc: string, c: ConsumerName): Summary | undefined => sums.find((s) => s.scenario === sc && s.consumer === c);
  const out: Verdict[] = [];
  const js = get('max', 'js');
  const cp = get('max', 'c-poll');
  const ct = get('max', 'c-timer');
  if (js !== undefined) {
    const ok = js.eventsPerSec >= 1.5e6 && js.lostMax === 0 && js.missingMax === 0 && js.outOfOrderMax === 0;
    out.push({ ok, text: `js events/s (max): ${fmtRate(js.eventsPerSec)}/s, lost ${js.lostMax}, missing ${js.missingMax}, out of order ${js.outOfOrderMax} — target ≥ 1.5 M/s with zero loss` });
  }
  if (js !== undefined && cp !== undefined) {
    const r = js.eventsPerSec / cp.eventsPerSec;
    out.push({ ok: r >= 2, text: `js / c-poll events/s (max): ${r.toFixed(2)}× — target ≥ 2×` });
  }
  // issue 15's targets against the C timer consumer (the same drain policy as the JS reader)
  if (js !== undefined && ct !== undefined) {
    const r = js.eventsPerSec / ct.eventsPerSec;
    out.push({ ok: r >= 1, text: `js / c-timer events/s (max): ${r.toFixed(2)}× — target ≥ 1×` });
    const c = js.cpuNsPerEvent / ct.cpuNsPerEvent;
    out.push({ ok: c <= 2, text: `CPU per event (max): js ${fmt(js.cpuNsPerEvent)} vs c-timer ${fmt(ct.cpuNsPerEvent)} ns/event = ${c.toFixed(1)}× — target ≤ 2×` });
  }
  for (const sc of ['paced', 'paced-b1']) {
    const j = get(sc, 'js');
    const t = get(sc, 'c-timer');
    const p = get(sc, 'c-poll');
    if (j === undefined) continue;
    const parts = [`js ${fmt(j.cpuPct)} %`];
    if (t !== undefined) parts.push(`c-timer ${fmt(t.cpuPct)} %`);
    if (p !== undefined) parts.push(`c-poll ${fmt(p.cpuPct)} %`);
    const c = t === undefined ? undefined : j.cpuNsPerEvent / t.cpuNsPerEvent;
    out.push({ ok: sc === 'paced' && c !== undefined ? c <= 2 : undefined, text: `CPU at the same load (${sc}): ${parts.join(', ')} of one core${c === undefined ? '' : ` (js/c-timer per event ${c.toFixed(1)}×${sc === 'paced' ? ' — target ≤ 2×' : ''})`}; js lost ${j.lostMax}, missing ${j.missingMax}` });
  }
  const bj = get('backlog', 'js');
  if (bj !== undefined) out.push({ ok: bj.eventsPerSec >= 30e6, text: `js backlog drain: ${fmtRate(bj.eventsPerSec)}/s — target ≥ 30 M/s` });
  return out;
}

// ---------------------------------------------------------------------------------------

function build(dir: string): Tools {
  const cc = (out: string, src: string, libs: string[] = []): string => {
    const bin = join(dir, out);
    execFileSync('cc', ['-O2', '-Wall', '-o', bin, src, ...libs], { stdio: ['ignore', 'inherit', 'inherit'] });
    return bin;
  };
  return {
    consumer: cc('consumer', join(ROOT, 'bench/ringbuf/consumer.c'), ['-lbpf']),
    pacer: cc('pacer', join(ROOT, 'bench/ringbuf/pacer.c')),
    trigger: cc('trigger', join(ROOT, 'test/helpers/trigger.c')),
  };
}

function machine(): Record<string, string | number> {
  const sh = (cmd: string, args: string[]): string => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
    } catch {
      return '?';
    }
  };
  const libbpf = sh('sh', ['-c', "dpkg-query -W -f='${Version}' libbpf1 2>/dev/null"]);
  return { kernel: sh('uname', ['-r']), cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '?', node: process.version, libbpf };
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (process.geteuid?.() !== 0) throw new Error('bench/ringbuf needs root (it loads BPF programs)');
  for (const f of [OBJECT, JS_CONSUMER]) if (!existsSync(f)) throw new Error(`${f} is missing: run npm run build first`);
  const scs = scenarios(o.quick).filter((s) => o.scenarios.includes(s.name));
  if (scs.length === 0) throw new Error(`no scenario among ${o.scenarios.join(', ')}`);
  const dir = mkdtempSync(join(tmpdir(), 'tlscope-bench-ringbuf-'));
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const c of live) c.proc.kill('SIGKILL'); // their BPF links are fds: the kernel detaches them
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  }
  const mach = machine();
  const runs: RunResult[] = [];
  try {
    const tools = build(dir);
    process.stderr.write(`ringbuf bench: ${JSON.stringify(mach)}${o.quick ? ' (quick)' : ''}\n`);
    for (const sc of scs) {
      for (let rep = 1; rep <= o.reps; rep++) {
        // rotate the order so no consumer always runs first
        const order = o.only.map((_, i) => o.only[(i + rep - 1) % o.only.length] as ConsumerName);
        for (const c of order) {
          const r = await runOnce(tools, sc, c, rep, o);
          runs.push(r);
          process.stderr.write(
            `  ${sc.name} ${c} #${rep}: ${fmtRate(r.eventsPerSec)}/s, received ${r.received}, lost ${r.lost}, missing ${r.missing}, ` +
              `out of order ${r.outOfOrder}, CPU ${fmt(r.cpuPct)} %, batches ${r.batches}${Number.isNaN(r.loopMaxGapMs) ? '' : `, timer gap ${fmt(r.loopMaxGapMs, 0)} ms`}, producer ${fmtRate(r.producerEventsPerSec)}/s, machine ${fmt(r.systemBusyPct)} % (before: ${fmt(r.backgroundBusyPct)} %)\n`,
          );
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const sums = summarize(runs);
  const vs = verdicts(sums);
  const md = [
    `## Ring buffer (${mach.kernel}, ${mach.cpus} CPUs, node ${mach.node}, libbpf ${mach.libbpf}${o.quick ? ', --quick' : ''})`,
    '',
    table(sums, scs),
    ...vs.map((v) => `- ${v.ok === undefined ? '' : v.ok ? '✅ ' : '❌ '}${v.text}`),
    '',
  ].join('\n');
  process.stdout.write(md);
  const noisy = sums.filter((s) => s.backgroundBusyMaxPct > o.quietPct);
  if (noisy.length > 0) {
    process.stdout.write(`\nNote: other work kept the machine above ${o.quietPct} % busy before some runs of ${noisy.map((s) => `${s.scenario}/${s.consumer} (${fmt(s.backgroundBusyMaxPct)} %)`).join(', ')}: those numbers are skewed.\n`);
  }
  const saturated = sums.filter((s) => s.systemBusyPct >= 90);
  if (saturated.length > 0) {
    process.stdout.write(`\nNote: the machine was ≥ 90 % busy (both cores) during ${saturated.map((s) => `${s.scenario}/${s.consumer}`).join(', ')}: producer and consumer compete for the CPUs there.\n`);
  }
  const file = writeResults('ringbuf', { machine: mach, options: o, scenarios: scs, runs, summary: sums, verdicts: vs });
  process.stderr.write(`wrote ${file}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/ringbuf: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
