// SPDX-License-Identifier: Apache-2.0
/**
 * Which BPF programs and links a process holds, read from the fdinfo of its fds (Debian's
 * bpftool has no `pids` in its JSON), and which of them the kernel still has — for the tests
 * that check nothing stays attached after tlscope exits, and for the benchmarks that read
 * tlscope's programs' run-time statistics.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export type BpfObjectKind = 'prog' | 'link';

/** Kernel ids of the programs (or links) `pid` holds an fd of. */
export function bpfIdsHeldBy(pid: number, kind: BpfObjectKind = 'prog'): Set<number> {
  const ids = new Set<number>();
  const re = new RegExp(`^${kind}_id:\\s+(\\d+)$`, 'm');
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    let info: string;
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile
    }
    const m = re.exec(info);
    if (m?.[1] !== undefined) ids.add(Number(m[1]));
  }
  return ids;
}

/** Every program (or link) the kernel has now, as bpftool lists it. */
export function bpfObjectsNow<T extends { id: number }>(kind: BpfObjectKind): T[] {
  return JSON.parse(execFileSync('bpftool', ['-j', kind, 'show'], { encoding: 'utf8', maxBuffer: 64 << 20 }) || '[]') as T[];
}

/** Those of `ids` the kernel still has. */
export function bpfIdsStillThere(kind: BpfObjectKind, ids: Iterable<number>): number[] {
  const now = new Set(bpfObjectsNow(kind).map((x) => x.id));
  return [...ids].filter((id) => now.has(id));
}
