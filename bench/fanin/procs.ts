// SPDX-License-Identifier: Apache-2.0
/** bench/fanin's child processes: their CPU and memory from /proc, their output, stopping them. */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { statCpuNs } from '../common.js';

export const cpuNs = (pid: number | undefined): number => (pid === undefined ? 0 : statCpuNs(pid) ?? 0);

/** VmRSS and VmHWM of a process, in bytes (0 once it is gone). */
export function rss(pid: number | undefined): { rss: number; hwm: number } {
  if (pid === undefined) return { rss: 0, hwm: 0 };
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

export function lineOnce(child: ChildProcess, stream: 'stdout' | 'stderr', re: RegExp, ms: number): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const s = child[stream]!;
    const timer = setTimeout(() => { s.off('data', on); reject(new Error(`no ${re} within ${ms} ms: ${buf.slice(-500)}`)); }, ms);
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

export function collect(child: ChildProcess, stream: 'stdout' | 'stderr'): () => string {
  let text = '';
  child[stream]?.on('data', (d: Buffer) => {
    if (text.length < 200_000) text += d.toString();
  });
  return () => text;
}

export const exited = (c: ChildProcess): boolean => c.exitCode !== null || c.signalCode !== null;

export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', ms = 10_000): Promise<void> {
  if (exited(child)) return;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  const t = setTimeout(() => child.kill('SIGKILL'), ms);
  await gone;
  clearTimeout(t);
}

/**
 * Waits until the client's last `merged N` line reaches `want`, or it has not grown for
 * `stallMs`; returns when the last growth was seen (ms since the epoch) and the count.
 */
export async function waitMerged(out: () => string, want: number, stallMs = 3000, maxMs = 120_000): Promise<{ at: number; merged: number }> {
  const last = (): number => {
    const m = /merged (\d+)\n(?![\s\S]*merged \d+\n)/.exec(out());
    return m === null ? 0 : Number(m[1]);
  };
  let seen = last();
  let at = Date.now();
  const giveUp = Date.now() + maxMs;
  while (seen < want && Date.now() - at < stallMs && Date.now() < giveUp) {
    await new Promise((r) => setTimeout(r, 50));
    const now = last();
    if (now !== seen) {
      seen = now;
      at = Date.now();
    }
  }
  return { at, merged: seen };
}
