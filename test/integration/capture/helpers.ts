// SPDX-License-Identifier: Apache-2.0
/** Helpers for the capture tests: run `tlscope capture` (the real CLI), servers in containers, tshark. */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The checkout (dist/test/integration/capture → four levels up). */
export const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
export const BIN = `${ROOT}dist/src/cli/bin.js`;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function marker(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** A running `tlscope capture`, its output collected. */
export class Capture {
  readonly child: ChildProcess;
  private out: Buffer[] = [];
  stderr = '';
  readonly finished: Promise<Finished>;

  constructor(args: readonly string[], opts: { stdout?: 'pipe' | NodeJS.WritableStream } = {}) {
    this.child = spawn(process.execPath, [BIN, 'capture', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    if (opts.stdout !== undefined && opts.stdout !== 'pipe') this.child.stdout?.pipe(opts.stdout);
    else this.child.stdout?.on('data', (b: Buffer) => this.out.push(b));
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (s: string) => (this.stderr += s));
    this.finished = new Promise((resolve) => {
      this.child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(this.out), stderr: this.stderr }));
    });
  }

  get stdoutText(): string {
    return Buffer.concat(this.out).toString('utf8');
  }

  /** Waits until stderr has `n` "listening on" lines (one per namespace captured). */
  async listening(n = 1, timeoutMs = 30_000): Promise<void> {
    await waitUntil(`${n} "listening on" line(s) from tlscope capture`, () => (this.stderr.match(/^tlscope: listening on /gm)?.length ?? 0) >= n, timeoutMs, () => this.stderr);
  }

  /** SIGINT, as Ctrl-C, then the result. */
  async stop(): Promise<Finished> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGINT');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    try {
      return await this.finished;
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Polls `cond` until it holds. The default deadline is long on purpose: these tests share a
 * small VM with other work, and a deadline should only trip on a real bug.
 */
export async function waitUntil(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 30_000, detail?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${detail ? `\n${detail()}` : ''}`);
    await sleep(50);
  }
}

/** Waits until something accepts TCP connections at host:port. */
export async function waitForPort(host: string, port: number, timeoutMs = 30_000): Promise<void> {
  await waitUntil(`${host}:${port} accepting connections`, () => new Promise<boolean>((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  }), timeoutMs);
}

export async function curl(url: string): Promise<string> {
  const r = await run('curl', ['-s', '--max-time', '30', url], { timeout: 35_000 });
  return r.stdout;
}

/** TCP states in /proc/net/tcp (hex) of a connection that still has packets to exchange. */
const UNFINISHED_TCP_STATES = new Set(['01', '02', '03', '04', '05', '08', '09', '0B']); // ESTABLISHED, SYN_SENT/RECV, FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING

/**
 * Connections on `port` in the network namespace of `pid` that have not finished their close
 * (LISTEN and TIME_WAIT do not count). Once there are none, every packet of those connections
 * has passed the namespace's interfaces, so a capture there has been handed all of them.
 */
export function openConnections(pid: number, port: number): number {
  let n = 0;
  for (const file of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4) continue;
      const local = Number.parseInt((f[1] ?? '').split(':')[1] ?? '', 16);
      const remote = Number.parseInt((f[2] ?? '').split(':')[1] ?? '', 16);
      if ((local === port || remote === port) && UNFINISHED_TCP_STATES.has(f[3] ?? '')) n++;
    }
  }
  return n;
}

/** Waits until every connection on `port` in the namespace of `pid` has finished (see openConnections). */
export async function connectionsFinished(pid: number, port: number): Promise<void> {
  await waitUntil(`connections on port ${port} in the namespace of pid ${pid} finished`, () => openConnections(pid, port) === 0, 30_000, () => readFileSync(`/proc/${pid}/net/tcp`, 'utf8'));
}

/** A counter from /proc/PID/net/snmp (e.g. Udp NoPorts) in the network namespace of `pid`. */
export function snmpCounter(pid: number, proto: string, name: string): number {
  const lines = readFileSync(`/proc/${pid}/net/snmp`, 'utf8').split('\n').filter((l) => l.startsWith(`${proto}:`));
  const names = (lines[0] ?? '').split(/\s+/);
  const values = (lines[1] ?? '').split(/\s+/);
  const i = names.indexOf(name);
  if (i < 1) throw new Error(`no ${proto} ${name} in /proc/${pid}/net/snmp`);
  return Number(values[i]);
}

export interface TsharkResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function tshark(args: readonly string[]): Promise<TsharkResult> {
  try {
    const r = await run('tshark', [...args], { timeout: 60_000, maxBuffer: 64 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? String(e) };
  }
}

/** tshark -T fields over a file: one array of field values per packet. */
export async function tsharkFields(file: string, fields: readonly string[], filter?: string, extra: readonly string[] = []): Promise<string[][]> {
  const r = await tshark(['-r', file, ...extra, ...(filter === undefined ? [] : ['-Y', filter]), '-T', 'fields', ...fields.flatMap((f) => ['-e', f])]);
  if (r.code !== 0) throw new Error(`tshark -r ${file} failed (${r.code}): ${r.stderr}`);
  assertNoDamage(r.stderr);
  return r.stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
}

export function assertNoDamage(stderr: string): void {
  const bad = stderr.split('\n').filter((l) => /damaged|corrupt|cut short|isn't|unknown|error/i.test(l));
  if (bad.length > 0) throw new Error(`tshark complained: ${bad.join(' | ')}`);
}

/** The shell command that serves `body` at /<path> over HTTP on port `port` with busybox httpd. */
export function httpdCommand(files: Readonly<Record<string, string>>, ports: readonly number[] = [8000]): string[] {
  const writes = Object.entries(files).map(([p, body]) => `echo ${body} > /www/${p}`).join(' && ');
  const servers = ports.map((p, i) => `httpd ${i === ports.length - 1 ? '-f ' : ''}-p ${p} -h /www`).join(' && ');
  return ['sh', '-c', `mkdir -p /www && ${writes} && ${servers}`];
}

export async function sh(command: string): Promise<string> {
  const r = await run('sh', ['-c', command], { timeout: 30_000 });
  return r.stdout;
}
