// SPDX-License-Identifier: Apache-2.0
/**
 * What the benchmark runners under bench/ share: where the checkout is, waiting for a quiet
 * machine, CPU time from /proc, medians, markdown tables and the JSON results in bench/out/,
 * command-line options, and the timing loop of the parser micro benchmarks.
 *
 * Every function here is small and does one thing; a runner keeps what is its own (its
 * processes, its scenarios, its columns).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** The checkout's root: this file is dist/bench/common.js once built. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Where every runner writes its results as JSON (ignored by git). */
export const OUT_DIR = join(ROOT, 'bench/out');

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------
// how busy the machine is

/** Jiffies the whole machine (all cores) has spent busy, and in total, since boot. */
export interface MachineTimes {
  busy: number;
  total: number;
}

/**
 * The first line of /proc/stat: user nice system idle iowait irq softirq steal. guest and
 * guest_nice are left out, as the kernel already counts them in user and nice.
 */
export function machineTimes(): MachineTimes {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/** % of the machine (100 = every core) busy between two readings of machineTimes(); 0 if no time passed. */
export function busyPct(a: MachineTimes, b: MachineTimes): number {
  return b.total === a.total ? 0 : (100 * (b.busy - a.busy)) / (b.total - a.total);
}

/** How busy the machine is over the next `ms` milliseconds, in % of all cores (10 ms resolution). */
export async function machineBusyPct(ms = 500): Promise<number> {
  const a = machineTimes();
  await sleep(ms);
  return busyPct(a, machineTimes());
}

export interface QuietOptions {
  /** pause between a busy reading and the next one (default none: read again at once) */
  pauseMs?: number;
  /** told each busy reading before the wait goes on (e.g. to say why the bench is waiting) */
  onBusy?: (busyPct: number) => void;
}

/**
 * Other work on the machine skews rates and CPU: waits until the machine was at most
 * `maxBusyPct` busy over half a second, or `maxWaitS` seconds have passed, whichever comes
 * first. Returns the last reading, so the runner can record how busy the machine was.
 */
export async function waitQuiet(maxBusyPct: number, maxWaitS: number, opts: QuietOptions = {}): Promise<number> {
  const deadline = Date.now() + maxWaitS * 1000;
  for (;;) {
    const busy = await machineBusyPct(500);
    if (busy <= maxBusyPct || Date.now() >= deadline) return busy;
    opts.onBusy?.(busy);
    if (opts.pauseMs !== undefined && opts.pauseMs > 0) await sleep(opts.pauseMs);
  }
}

// ---------------------------------------------------------------------------------------
// CPU time of a process

let clockTicks: number | undefined;

/** USER_HZ, the unit of utime and stime in /proc/PID/stat (100 on Linux). */
function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/**
 * utime + stime of a process, all its threads, in ns, from /proc/PID/stat (the kernel counts
 * in 1/USER_HZ s: 10 ms resolution); undefined once the process is gone.
 */
export function statCpuNs(pid: number): number | undefined {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // the fields after "pid (comm) ": state=0 … utime=11 stime=12 (comm may hold spaces and ")")
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e9) / clkTck();
}

/**
 * CPU time of every thread of a process, in ns, from /proc/PID/task/TID/schedstat (ns
 * resolution; threads that ended before the call are not counted); undefined once the process
 * is gone.
 */
export function schedstatCpuNs(pid: number): number | undefined {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  let sum = 0;
  for (const tid of tids) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return sum;
}

// ---------------------------------------------------------------------------------------
// summaries and tables

/**
 * The median of the numbers that are not NaN (NaN if none). With an even count, `even`
 * says which: 'mean' (default) the mean of the two middle values, 'lower' the lower one.
 */
export function median(xs: readonly number[], even: 'mean' | 'lower' = 'mean'): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  if (s.length % 2 === 1) return s[m] as number;
  return even === 'lower' ? (s[m - 1] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** `x` with `digits` decimals, or '–' when it is not a finite number (nothing measured). */
export function fixed(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '–';
}

/** One markdown table row; an empty cell is written `| |`. */
export function markdownRow(cells: readonly string[]): string {
  return `|${cells.map((c) => (c === '' ? ' ' : ` ${c} `)).join('|')}|`;
}

/**
 * A markdown table: the header, the alignment row, the rows, joined by newlines (no newline
 * at the end). `align` has one letter per column, `l` or `r`; `rightDashes` is how many dashes
 * a right-aligned column's marker has (`--:` or `---:`: the runners keep the style the docs
 * quote).
 */
export function markdownTable(head: readonly string[], align: string, rows: ReadonlyArray<readonly string[]>, rightDashes: 2 | 3 = 3): string {
  if (align.length !== head.length) throw new Error(`markdownTable: ${head.length} columns, ${align.length} alignments`);
  const marks = [...align].map((a) => (a === 'r' ? `${'-'.repeat(rightDashes)}:` : '---'));
  return [markdownRow(head), `|${marks.join('|')}|`, ...rows.map(markdownRow)].join('\n');
}

// ---------------------------------------------------------------------------------------
// results

/**
 * Writes `data` as indented JSON to bench/out/NAME-<ISO time>.json (the directory is made if
 * needed); returns the file's path.
 */
export function writeResults(name: string, data: unknown): string {
  mkdirSync(OUT_DIR, { recursive: true });
  const file = join(OUT_DIR, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

// ---------------------------------------------------------------------------------------
// micro benchmarks (bench/parsers)

/**
 * Operations per second of `run(n)` (which does n operations and returns a value derived from
 * them, so the work cannot be optimised away): one warm-up call of 2000 for the JIT, then
 * batches from 1000, doubled while less than 50 ms has passed, until `seconds` are up.
 */
export function opsPerSecond(run: (n: number) => number, seconds: number): number {
  run(2000);
  let batch = 1000;
  let done = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  let now = start;
  while (now < deadline) {
    run(batch);
    done += batch;
    now = process.hrtime.bigint();
    if (now - start < 50_000_000n) batch *= 2;
  }
  return done / (Number(now - start) / 1e9);
}

// ---- command-line options ----

type OptionSpecs = NonNullable<ParseArgsConfig['options']>;

/**
 * A runner's options through node:util's parseArgs (strict: an unknown option or a missing
 * value is an error naming it); `--help`/`-h` prints `usage` and exits 0. Numbers and lists are
 * checked by {@link numberOption} and {@link listOption}.
 */
export function benchOptions(argv: string[], options: OptionSpecs, usage: string): Record<string, unknown> {
  // `--tlscope-args "--ring-size 4"`: a value option takes the next word even when it starts
  // with a dash (parseArgs alone wants `--tlscope-args=--ring-size 4`)
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const next = argv[i + 1];
    if (a.startsWith('--') && options[a.slice(2)]?.type === 'string' && next?.startsWith('-') === true) {
      args.push(`${a}=${next}`);
      i++;
    } else {
      args.push(a);
    }
  }
  const { values } = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values['help'] === true) {
    process.stdout.write(`usage: ${usage}\n`);
    process.exit(0);
  }
  return values;
}

/** A number option: undefined stays undefined; anything not a finite number ≥ `min` is an error. */
export function numberOption(name: string, v: unknown, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n) || n < min) throw new Error(`--${name} takes a number ≥ ${min}, not ${JSON.stringify(v)}`);
  return n;
}

/** A list option split on commas (or on whitespace with `sep: /\s+/`), empty items dropped. */
export function listOption(v: unknown, sep: string | RegExp = ','): string[] | undefined {
  return typeof v === 'string' ? v.split(sep).filter(Boolean) : undefined;
}
