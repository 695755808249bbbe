// SPDX-License-Identifier: Apache-2.0
/** Helpers for the capture tests: run `tlscope capture` (the real CLI), servers in containers, tshark. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { CliProcess, type Finished } from '../../helpers/cli.js';
import * as shared from '../../helpers/process.js';
import { runProcess } from '../../helpers/process.js';
import { waitUntil } from '../../helpers/wait.js';

export { CLI as BIN, ROOT, type Finished } from '../../helpers/cli.js';
export { sleep, waitUntil } from '../../helpers/wait.js';

export function marker(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** A running `tlscope capture`, its output collected. */
export class Capture extends CliProcess {
  constructor(args: readonly string[], opts: { stdout?: 'pipe' | NodeJS.WritableStream } = {}) {
    super(['capture', ...args], opts.stdout === undefined || opts.stdout === 'pipe' ? {} : { stdout: opts.stdout });
  }

  /** Waits until stderr has `n` "listening on" lines (one per namespace captured). */
  async listening(n = 1, timeoutMs = 30_000): Promise<void> {
    await waitUntil(`${n} "listening on" line(s) from tlscope capture`, () => (this.stderr.match(/^tlscope: listening on /gm)?.length ?? 0) >= n, timeoutMs, () => this.stderr);
  }

  /** SIGINT, as Ctrl-C, then the result (SIGKILL after 20 s). */
  override stop(signal: NodeJS.Signals = 'SIGINT', graceMs = 20_000): Promise<Finished> {
    return super.stop(signal, graceMs);
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
  const r = await runProcess('curl', ['-s', '--max-time', '30', url], { timeoutMs: 35_000 });
  if (r.code !== 0) throw new Error(`curl ${url}: exit ${r.code ?? r.signal}: ${r.stderr}`);
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
  const r = await runProcess('tshark', args, { timeoutMs: 60_000 });
  return { code: r.code ?? 1, stdout: r.stdout, stderr: r.signal === null ? r.stderr : `${r.stderr}\n(killed by ${r.signal})` };
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

/** A shell command's stdout; throws with its stderr when it fails. */
export function sh(command: string): Promise<string> {
  return shared.sh('sh', ['-c', command], 30_000);
}
