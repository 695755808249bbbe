// SPDX-License-Identifier: Apache-2.0
/**
 * `tlscope doctor -p PID`: the TLS stacks a process maps and whether trace tls hooks each, by the
 * tls gadget's own analysis (gadgets/tls/stacks.ts). `containers --tls` uses the same report per
 * container.
 */
import { existsSync } from 'node:fs';
import { processTlsStacks, type AnalysisCache, type StackFinding } from '../gadgets/tls/stacks.js';
import { TlscopeError, UsageError } from '../errors.js';
import { processComm } from '../proc/process.js';

export interface ProcessTls {
  pid: number;
  comm: string | undefined;
  stacks: StackFinding[];
}

/** Checks `-p` values: positive integers. */
export function parsePids(values: readonly string[]): number[] {
  return values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter((s) => s !== '').map((s) => {
    if (!/^\d+$/.test(s) || Number(s) < 1) throw new UsageError(`-p ${s}: not a process id`, 'give a host pid, e.g. -p 1234 (find one with: ps -eo pid,comm)');
    return Number(s);
  });
}

/** The report of one process; a process that does not exist (or whose maps cannot be read) is an error. */
export function processTls(pid: number, cache: AnalysisCache = new Map()): ProcessTls {
  if (!existsSync(`/proc/${pid}`)) {
    throw new TlscopeError('ERR_NO_PROCESS', `no process ${pid} on this host`, { hint: 'give a host pid (ps -eo pid,comm lists them; for a container\'s processes: tlscope containers --tls)' });
  }
  const stacks = processTlsStacks(pid, cache);
  if (stacks === undefined) {
    throw new TlscopeError('ERR_NO_PROCESS', `cannot read /proc/${pid}/maps (the process exited, or this is a kernel thread)`, { hint: 'run as root for other users\' processes; check the pid with ps -p' });
  }
  return { pid, comm: processComm(pid), stacks };
}

/** "yes: 8 probes (…)", "yes (…)" for a stack hooked in another file (NSS through NSPR), or "no: reason". */
export function hookWords(s: StackFinding): string {
  if (!s.hook) return `no: ${s.reason ?? 'nothing to probe'}`;
  return s.probes === 0 ? `yes (${s.detail})` : `yes: ${s.probes} probes (${s.detail})`;
}

/** A short summary for one column: "OpenSSL 3.0.19 (libssl.so.3) hooked; JVM 17 (libjvm.so) not hooked". */
export function stacksSummary(stacks: readonly StackFinding[]): string {
  if (stacks.length === 0) return 'none';
  const seen = new Set<string>();
  const out: string[] = [];
  for (const s of stacks) {
    const t = `${s.label} ${s.hook ? 'hooked' : 'not hooked'}`;
    if (!seen.has(t)) out.push(t);
    seen.add(t);
  }
  return out.join('; ');
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n');
}

/** Columns: one row per stack found (a process without any gets one row saying so). */
export function processTlsTable(reports: readonly ProcessTls[]): string {
  const rows = [['PID', 'COMM', 'STACK', 'FILE', 'HOOK']];
  for (const r of reports) {
    if (r.stacks.length === 0) rows.push([String(r.pid), r.comm ?? '', '-', '-', 'no TLS library mapped (one loaded later is probed when trace tls sees it mapped)']);
    for (const s of r.stacks) rows.push([String(r.pid), r.comm ?? '', s.label, s.file, hookWords(s)]);
  }
  return `${table(rows)}\n`;
}
