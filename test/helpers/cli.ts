// SPDX-License-Identifier: Apache-2.0
/**
 * The one CLI runner of the tests: the real `tlscope` binary (the built dist/src/cli/bin.js)
 * as a child process. `runCli` runs a command to its end; `runCliSync` too, blocking (for
 * tests that must not yield); `CliProcess` is a running command (a tracer, a capture) whose
 * stdout (bytes, and lines as they come) and stderr are collected, stopped with SIGINT as
 * Ctrl-C. A `prefix` runs it under another command (setpriv, unshare, nice): `[cmd, ...args]`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startProcess, type ProcessOptions, type Ran } from './process.js';
import { waitUntil } from './wait.js';

/** The built CLI (dist/test/helpers → dist/src/cli/bin.js). */
export const CLI = fileURLToPath(new URL('../../src/cli/bin.js', import.meta.url));
/** The checkout (dist/test/helpers → three levels up). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A prefix that runs it as uid 65534 with no capabilities at all. */
export const AS_NOBODY: readonly string[] = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all'];

function argv(args: readonly string[], prefix: readonly string[]): [string, string[]] {
  if (prefix.length === 0) return [process.execPath, [CLI, ...args]];
  return [prefix[0] as string, [...prefix.slice(1), process.execPath, CLI, ...args]];
}

export interface CliOptions extends ProcessOptions {
  prefix?: readonly string[];
}

/** Runs `tlscope ARGS` to its end (stdin closed at once unless `input`). */
export function runCli(args: readonly string[], opts: CliOptions = {}): Promise<Ran> {
  const [cmd, rest] = argv(args, opts.prefix ?? []);
  return startProcess(cmd, rest, { ...opts, input: opts.input ?? '' }).done;
}

export interface RanSync {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `tlscope ARGS` to its end, blocking. */
export function runCliSync(args: readonly string[], opts: { prefix?: readonly string[]; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): RanSync {
  const [cmd, rest] = argv(args, opts.prefix ?? []);
  const r = spawnSync(cmd, rest, { encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, ...(opts.env === undefined ? {} : { env: opts.env }) });
  if (r.error !== undefined) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

export interface CliProcessOptions {
  prefix?: readonly string[];
  /** pipe stdout there instead of collecting it */
  stdout?: NodeJS.WritableStream;
  /** each stdout line as it comes (not with `stdout`) */
  onLine?: (line: string) => void;
  env?: NodeJS.ProcessEnv;
}

/** A running `tlscope ARGS`, its output collected. */
export class CliProcess {
  readonly child: ChildProcess;
  stderr = '';
  readonly finished: Promise<Finished>;
  private readonly out: Buffer[] = [];

  constructor(readonly args: readonly string[], opts: CliProcessOptions = {}) {
    const [cmd, rest] = argv(args, opts.prefix ?? []);
    this.child = spawn(cmd, rest, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...(opts.env === undefined ? {} : { env: opts.env }) });
    const stdout = this.child.stdout!;
    if (opts.stdout !== undefined) stdout.pipe(opts.stdout);
    else {
      stdout.on('data', (b: Buffer) => this.out.push(b));
      const onLine = opts.onLine;
      if (onLine !== undefined) createInterface({ input: stdout }).on('line', onLine);
    }
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
    // 'close': the process exited and its stdout and stderr are read to the end
    this.finished = new Promise((resolve) => {
      this.child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(this.out), stderr: this.stderr }));
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  get stdoutText(): string {
    return Buffer.concat(this.out).toString('utf8');
  }

  /** Whether it has exited. */
  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** Waits until stderr matches (fails early when the process exits first). */
  async waitForStderr(re: RegExp, timeoutMs = 30_000): Promise<void> {
    await waitUntil(`stderr of tlscope ${this.args.slice(0, 2).join(' ')} to match ${re}`, () => {
      if (re.test(this.stderr)) return true;
      if (this.exited) throw new Error(`tlscope ${this.args.join(' ')} exited (${this.child.exitCode ?? this.child.signalCode}) before its stderr matched ${re}:\n${this.stderr}`);
      return false;
    }, timeoutMs, () => this.stderr);
  }

  /** Waits until stdout matches (fails early when the process exits first); the match. */
  async waitForStdout(re: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
    let m: RegExpExecArray | null = null;
    await waitUntil(`stdout of tlscope ${this.args.slice(0, 2).join(' ')} to match ${re}`, () => {
      m = re.exec(this.stdoutText);
      if (m !== null) return true;
      if (this.exited) throw new Error(`tlscope ${this.args.join(' ')} exited (${this.child.exitCode ?? this.child.signalCode}) before its stdout matched ${re}:\n${this.stderr}`);
      return false;
    }, timeoutMs, () => this.stderr);
    return m as unknown as RegExpExecArray;
  }

  /** `signal` (SIGINT, as Ctrl-C), then the result; SIGKILL if it has not ended after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGINT', graceMs = 30_000): Promise<Finished> {
    if (!this.exited) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      return await this.finished;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A running `tlscope ui ARGS` and the URL it printed to open (with its token). */
export async function startUi(args: readonly string[], timeoutMs = 60_000): Promise<{ ui: CliProcess; url: string }> {
  const ui = new CliProcess(['ui', ...args]);
  try {
    const m = await ui.waitForStdout(/open (http:\/\/127\.0\.0\.1:\d+\/\?token=\S+)/, timeoutMs);
    return { ui, url: m[1] as string };
  } catch (e) {
    await ui.stop('SIGKILL', 5000);
    throw e;
  }
}
