// SPDX-License-Identifier: Apache-2.0
/**
 * The one process runner of the tests: start a command with its output collected (stdout and
 * stderr as text), run one to its end, stop one, and run a short command for its output.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { sleep } from './wait.js';

const execFileP = promisify(execFile);

export interface Ran {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  pid: number;
  child: ChildProcess;
  /** when it has exited and its output is read to the end */
  done: Promise<Ran>;
  /** standard output so far */
  output(): string;
  /** standard error so far */
  errors(): string;
}

export interface ProcessOptions {
  /** written to stdin (after `inputDelayMs`), which is then closed; without it stdin stays open */
  input?: string;
  inputDelayMs?: number;
  /** SIGKILL after this long (default 30 s) */
  timeoutMs?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** each stdout line as it comes (a server saying its port, say) */
  onLine?: (line: string) => void;
}

/** Starts a command; its stdin stays open unless `input` is given. */
export function startProcess(cmd: string, args: readonly string[], opts: ProcessOptions = {}): Running {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }), ...(opts.env === undefined ? {} : { env: opts.env }) });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin!.on('error', () => {});
  const onLine = opts.onLine;
  if (onLine !== undefined) createInterface({ input: child.stdout! }).on('line', onLine);
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  if (opts.input !== undefined) {
    const input = opts.input;
    if (opts.inputDelayMs === undefined) child.stdin!.end(input);
    else setTimeout(() => child.stdin!.end(input), opts.inputDelayMs);
  }
  const done = new Promise<Ran>((resolve, reject) => {
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // 'close': exited, and stdout and stderr are read to the end; a background child that
    // inherited the pipes may hold them open, so after the exit wait for it at most 2 s
    let settled = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ pid: child.pid ?? 0, code, signal, stdout, stderr });
    };
    child.on('close', finish);
    child.on('exit', (code, signal) => setTimeout(() => finish(code, signal), 2000).unref());
  });
  return { pid: child.pid ?? 0, child, done, output: () => stdout, errors: () => stderr };
}

/** Runs a command to its end; stdin gets `input` (default: nothing) and is closed at once. */
export function runProcess(cmd: string, args: readonly string[], opts: ProcessOptions = {}): Promise<Ran> {
  return startProcess(cmd, args, { ...opts, input: opts.input ?? '' }).done;
}

/** A short command's stdout; throws (with its stderr) when it fails. */
export async function sh(cmd: string, args: readonly string[], timeoutMs = 20_000): Promise<string> {
  try {
    return (await execFileP(cmd, [...args], { timeout: timeoutMs, maxBuffer: 16 << 20 })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

/** Sends `signal` and waits for the exit (at most 5 s). */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  await Promise.race([done, sleep(5000)]);
}
