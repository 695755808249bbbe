// SPDX-License-Identifier: Apache-2.0
/** Decodes `struct sni_event` (bpf/include/sni.h); the layout is checked against BTF in tests. */
import { decodeTuple, tupleFamily, TUPLE_LAYOUT } from '../../net/tuple.js';
import { decodeProc, type ProcRecord } from '../proc-record.js';

/** Byte offsets of struct sni_event, as compiled (see test/integration/sni). */
export const SNI_EVENT_LAYOUT = {
  size: 128,
  ts_ns: 0,
  tuple: 8, // struct tlscope_tuple (src/net/tuple.ts)
  owner: 48, // struct sni_owner: ts_ns @0, proc @8 (struct tlscope_proc, src/gadgets/proc-record.ts)
  seq: 104,
  payload_len: 108,
  captured_len: 112,
  ifindex: 116,
  pkt_type: 120,
  owner_known: 121,
  first: 122,
} as const;

/** The sending thread (its netns is the socket's). */
export type SniOwner = ProcRecord;

/** Offset of struct tlscope_proc in struct sni_owner. */
export const SNI_OWNER_PROC = 8;

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

/** Why the record at `off` cannot be read (too short, a payload past its end, an unknown address family); undefined when it can. */
export function sniRecordProblem(dv: DataView, off: number, len: number): string | undefined {
  const L = SNI_EVENT_LAYOUT;
  if (len < L.size) return `sni event of ${len} bytes is shorter than its ${L.size}-byte header`;
  const captured = dv.getUint32(off + L.captured_len, true);
  if (L.size + captured > len) return `sni event claims ${captured} payload bytes but carries ${len - L.size}`;
  if (tupleFamily(dv, off + L.tuple) === undefined) return `sni event with address family ${dv.getUint8(off + L.tuple + TUPLE_LAYOUT.family)}`;
  return undefined;
}

/** One record as an object with a copy of its payload (tests, tools); the gadget reads batches in place (SniPipeline.processBatch). */
export function decodeSniSegment(dv: DataView, off: number, len: number): SniSegment {
  const L = SNI_EVENT_LAYOUT;
  const problem = sniRecordProblem(dv, off, len);
  if (problem !== undefined) throw new Error(problem);
  const captured = dv.getUint32(off + L.captured_len, true);
  const bytes = new Uint8Array(dv.buffer, dv.byteOffset + off, len);
  const tuple = decodeTuple(dv, off + L.tuple) as NonNullable<ReturnType<typeof decodeTuple>>;
  const ownerKnown = dv.getUint8(off + L.owner_known) === 1;
  return {
    tsNs: dv.getBigUint64(off + L.ts_ns, true),
    family: tuple.family,
    saddr: tuple.saddr,
    daddr: tuple.daddr,
    sport: tuple.sport,
    dport: tuple.dport,
    owner: ownerKnown ? decodeProc(dv, off + L.owner + SNI_OWNER_PROC) : undefined,
    seq: dv.getUint32(off + L.seq, true),
    payloadLen: dv.getUint32(off + L.payload_len, true),
    ifindex: dv.getUint32(off + L.ifindex, true),
    pktType: dv.getUint8(off + L.pkt_type),
    first: dv.getUint8(off + L.first) === 1,
    payload: bytes.slice(L.size, L.size + captured),
  };
}
