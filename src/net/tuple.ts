// SPDX-License-Identifier: Apache-2.0
/**
 * `struct tlscope_tuple` (bpf/include/sock.h): a connection's addresses and ports as the kernel
 * programs key and report them (trace sni, trace tls, capture's owners). One layout, checked
 * against each object's BTF in the integration tests.
 */
import { formatAddr } from './addr.js';

/** Byte offsets of struct tlscope_tuple, as compiled. */
export const TUPLE_LAYOUT = {
  size: 40,
  saddr: 0,
  daddr: 16,
  sport: 32,
  dport: 34,
  family: 36,
  protocol: 37,
} as const;

export { IPPROTO_TCP, IPPROTO_UDP } from '../constants.js';

export interface SockTuple {
  family: 4 | 6;
  /** IPPROTO_TCP, IPPROTO_UDP (0 where the program does not say) */
  protocol: number;
  /** addresses as people read them (IPv4 dotted, IPv6 compressed) */
  saddr: string;
  daddr: string;
  /** host byte order */
  sport: number;
  dport: number;
  /** the addresses in network order, as the kernel holds them (views into the record: copy to keep) */
  saddrBytes: Uint8Array;
  daddrBytes: Uint8Array;
}

/** The family byte of the tuple at `off`: 4, 6, or undefined (0: the program found no socket). */
export function tupleFamily(dv: DataView, off: number): 4 | 6 | undefined {
  const f = dv.getUint8(off + TUPLE_LAYOUT.family);
  return f === 4 || f === 6 ? f : undefined;
}

/** Decodes the tuple at `off`; undefined when its family is neither 4 nor 6. */
export function decodeTuple(dv: DataView, off: number): SockTuple | undefined {
  const family = tupleFamily(dv, off);
  if (family === undefined) return undefined;
  const L = TUPLE_LAYOUT;
  const saddrBytes = new Uint8Array(dv.buffer, dv.byteOffset + off + L.saddr, family === 4 ? 4 : 16);
  const daddrBytes = new Uint8Array(dv.buffer, dv.byteOffset + off + L.daddr, family === 4 ? 4 : 16);
  return {
    family,
    protocol: dv.getUint8(off + L.protocol),
    saddr: formatAddr(family, saddrBytes),
    daddr: formatAddr(family, daddrBytes),
    sport: dv.getUint16(off + L.sport, true),
    dport: dv.getUint16(off + L.dport, true),
    saddrBytes,
    daddrBytes,
  };
}

/** The 40 bytes of a tuple as the kernel lays it out: map keys in tests and tools. */
export function encodeTuple(t: { family: 4 | 6; protocol?: number; saddr: ArrayLike<number>; daddr: ArrayLike<number>; sport: number; dport: number }): Buffer {
  const L = TUPLE_LAYOUT;
  const b = Buffer.alloc(L.size);
  b.set(Array.from(t.saddr).slice(0, 16), L.saddr);
  b.set(Array.from(t.daddr).slice(0, 16), L.daddr);
  b.writeUInt16LE(t.sport, L.sport);
  b.writeUInt16LE(t.dport, L.dport);
  b.writeUInt8(t.family, L.family);
  b.writeUInt8(t.protocol ?? 0, L.protocol);
  return b;
}
