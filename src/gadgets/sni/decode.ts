// SPDX-License-Identifier: Apache-2.0
/** Decodes `struct sni_event` (bpf/include/sni.h); the layout is checked against BTF in tests. */
import { formatAddr } from '../../net/addr.js';

/** Byte offsets of struct sni_event, as compiled (see test/integration/sni). */
export const SNI_EVENT_LAYOUT = {
  size: 128,
  ts_ns: 0,
  tuple: 8, // struct sni_tuple: saddr[16] @0, daddr[16] @16, sport @32, dport @34, family @36
  owner: 48, // struct sni_owner: ts_ns @0, pid @8, tid @12, uid @16, gid @20, mntns @24, netns @28, cgroup_id @32, comm[16] @40
  seq: 104,
  payload_len: 108,
  captured_len: 112,
  ifindex: 116,
  pkt_type: 120,
  owner_known: 121,
  first: 122,
} as const;

export interface SniOwner {
  pid: number;
  tid: number;
  uid: number;
  gid: number;
  mntns: number;
  netns: number;
  cgroupId: bigint;
  comm: string;
}

export interface SniSegment {
  tsNs: bigint;
  family: 4 | 6;
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  owner: SniOwner | undefined;
  seq: number;
  payloadLen: number;
  ifindex: number;
  pktType: number;
  first: boolean;
  /** the captured bytes, copied out of the ring */
  payload: Uint8Array;
}

function comm(dv: DataView, off: number): string {
  let s = '';
  for (let i = 0; i < 16; i++) {
    const ch = dv.getUint8(off + i);
    if (ch === 0) break;
    s += String.fromCharCode(ch);
  }
  return s;
}

export function decodeSniSegment(dv: DataView, off: number, len: number): SniSegment {
  const L = SNI_EVENT_LAYOUT;
  if (len < L.size) throw new Error(`sni event of ${len} bytes is shorter than its ${L.size}-byte header`);
  const captured = dv.getUint32(off + L.captured_len, true);
  if (L.size + captured > len) throw new Error(`sni event claims ${captured} payload bytes but carries ${len - L.size}`);
  const bytes = new Uint8Array(dv.buffer, dv.byteOffset + off, len);
  const t = L.tuple;
  const family = dv.getUint8(off + t + 36) === 6 ? 6 : 4;
  const o = L.owner;
  const ownerKnown = dv.getUint8(off + L.owner_known) === 1;
  return {
    tsNs: dv.getBigUint64(off + L.ts_ns, true),
    family,
    saddr: formatAddr(family, bytes, t),
    daddr: formatAddr(family, bytes, t + 16),
    sport: dv.getUint16(off + t + 32, true),
    dport: dv.getUint16(off + t + 34, true),
    owner: ownerKnown
      ? {
          pid: dv.getUint32(off + o + 8, true),
          tid: dv.getUint32(off + o + 12, true),
          uid: dv.getUint32(off + o + 16, true),
          gid: dv.getUint32(off + o + 20, true),
          mntns: dv.getUint32(off + o + 24, true),
          netns: dv.getUint32(off + o + 28, true),
          cgroupId: dv.getBigUint64(off + o + 32, true),
          comm: comm(dv, off + o + 40),
        }
      : undefined,
    seq: dv.getUint32(off + L.seq, true),
    payloadLen: dv.getUint32(off + L.payload_len, true),
    ifindex: dv.getUint32(off + L.ifindex, true),
    pktType: dv.getUint8(off + L.pkt_type),
    first: dv.getUint8(off + L.first) === 1,
    payload: bytes.slice(L.size, L.size + captured),
  };
}
