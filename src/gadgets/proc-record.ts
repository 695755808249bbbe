// SPDX-License-Identifier: Apache-2.0
/**
 * `struct tlscope_proc` (bpf/include/proc.h): the thread behind a kernel event — trace sni's
 * sender, trace tls's caller, capture's socket owner. One layout and one decoder, checked
 * against BTF in the tests; the TypeScript shape is the events' own ProcInfo.
 */
import type { ProcInfo } from '../fields/common.js';

/** Byte offsets of struct tlscope_proc, as compiled. */
export const PROC_LAYOUT = {
  size: 48,
  pid: 0,
  tid: 4,
  uid: 8,
  gid: 12,
  mntns: 16,
  netns: 20,
  cgroup_id: 24,
  comm: 32,
} as const;

export const COMM_LEN = 16;

/** A ProcInfo as the kernel's record fills it: every field known. */
export type ProcRecord = Required<ProcInfo>;

/** A kernel comm (up to 16 bytes, NUL-terminated unless full), one character per byte. */
export function decodeComm(dv: DataView, off: number): string {
  let s = '';
  for (let i = 0; i < COMM_LEN; i++) {
    const ch = dv.getUint8(off + i);
    if (ch === 0) break;
    s += String.fromCharCode(ch);
  }
  return s;
}

export function decodeProc(dv: DataView, off: number): ProcRecord {
  const L = PROC_LAYOUT;
  return {
    pid: dv.getUint32(off + L.pid, true),
    tid: dv.getUint32(off + L.tid, true),
    uid: dv.getUint32(off + L.uid, true),
    gid: dv.getUint32(off + L.gid, true),
    mntns: dv.getUint32(off + L.mntns, true),
    netns: dv.getUint32(off + L.netns, true),
    cgroupId: dv.getBigUint64(off + L.cgroup_id, true),
    comm: decodeComm(dv, off + L.comm),
  };
}
