// SPDX-License-Identifier: Apache-2.0
/** Identity of processes: the pid list, the command name, and pids as seen inside pid namespaces. */
import { DEFAULT_PROC_ROOT, readProcDir, readProcText } from './read.js';

/** Every process id (thread-group leader) currently in /proc, in no particular order. */
export function listPids(procRoot = DEFAULT_PROC_ROOT): number[] {
  const entries = readProcDir(procRoot) ?? [];
  const pids: number[] = [];
  for (const name of entries) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue; // only numeric entries are processes
    const pid = Number(name);
    if (Number.isSafeInteger(pid) && pid > 0) pids.push(pid);
  }
  return pids;
}

/** `comm` (the kernel's 15-character task name), without the trailing newline. */
export function processComm(pid: number, procRoot = DEFAULT_PROC_ROOT): string | undefined {
  const text = readProcText(`${procRoot}/${pid}/comm`);
  return text === undefined ? undefined : text.replace(/\n$/, '');
}

/**
 * Whether a process still runs: false once it is gone or a zombie (its exit has run, only the
 * parent's wait is missing) — the answer a caller needs before leaving state behind for it.
 */
export function processAlive(pid: number, procRoot = DEFAULT_PROC_ROOT): boolean {
  const stat = readProcText(`${procRoot}/${pid}/stat`);
  if (stat === undefined) return false;
  const state = stat.charAt(stat.lastIndexOf(')') + 2); // "pid (comm) S ..."; comm may hold ')'
  return state !== 'Z' && state !== 'X' && state !== 'x';
}

/** The fields of /proc/PID/status that tlscope uses. */
export interface ProcessStatus {
  readonly name: string;
  readonly tgid: number;
  readonly pid: number;
  readonly ppid: number;
  /** The pid in each pid namespace, outermost (host) first, innermost (container) last. */
  readonly nspid: readonly number[];
}

export function parseProcStatus(text: string): ProcessStatus | undefined {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  const num = (key: string): number | undefined => {
    const v = fields.get(key);
    return v === undefined || v === '' ? undefined : Number(v);
  };
  const tgid = num('Tgid');
  const pid = num('Pid');
  const ppid = num('PPid');
  if (tgid === undefined || pid === undefined || ppid === undefined) return undefined;
  // NSpid exists since Linux 4.1; without it the process is only known by its host pid.
  const nspidField = fields.get('NSpid');
  const nspid = nspidField === undefined || nspidField === '' ? [pid] : nspidField.split(/\s+/).map(Number);
  return { name: fields.get('Name') ?? '', tgid, pid, ppid, nspid };
}

export function processStatus(pid: number, procRoot = DEFAULT_PROC_ROOT): ProcessStatus | undefined {
  const text = readProcText(`${procRoot}/${pid}/status`);
  return text === undefined ? undefined : parseProcStatus(text);
}

/** The pid of `pid` in each nested pid namespace, host first (see {@link ProcessStatus.nspid}). */
export function namespacedPids(pid: number, procRoot = DEFAULT_PROC_ROOT): readonly number[] | undefined {
  return processStatus(pid, procRoot)?.nspid;
}
