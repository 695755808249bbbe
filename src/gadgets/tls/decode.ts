// SPDX-License-Identifier: Apache-2.0
/** Decodes `struct tls_event` and `struct tls_hint` (bpf/include/tls.h); layouts are checked against BTF in tests. */
import { formatAddr, formatEndpoint } from '../../net/addr.js';

export const TLS_EVENT_LAYOUT = {
  size: 144,
  ts_ns: 0,
  start_ns: 8,
  conn_id: 16,
  cgroup_id: 24,
  pid: 32,
  tid: 36,
  uid: 40,
  gid: 44,
  mntns: 48,
  netns: 52,
  comm: 56,
  tuple: 72, // struct tls_tuple: saddr[16] @0, daddr[16] @16, sport @32, dport @34, family @36
  total_len: 112,
  captured_len: 116,
  offset: 120,
  chunk_len: 124,
  source: 128,
  func: 129,
  direction: 130,
  tuple_source: 131,
  flags: 132,
  file_id: 136,
} as const;

export const TLS_TUPLE_SIZE = 40;
export const TLS_HINT_SIZE = 8;

export type TlsSource = 'openssl' | 'gnutls' | 'go' | 'ktls';
export type TlsDirection = 'write' | 'read';
/** How the connection tuple was found: see the README. */
export type TupleSource = 'socket' | 'session' | 'thread';

export const SOURCES: Readonly<Record<number, TlsSource>> = { 1: 'openssl', 2: 'gnutls', 3: 'go', 4: 'ktls' };
export const FUNCTIONS: Readonly<Record<number, string>> = {
  1: 'SSL_write',
  2: 'SSL_read',
  3: 'SSL_write_ex',
  4: 'SSL_read_ex',
  5: 'gnutls_record_send',
  6: 'gnutls_record_recv',
  7: 'crypto/tls.(*Conn).Write',
  8: 'crypto/tls.(*Conn).Read',
  9: 'tls_sw_sendmsg',
  10: 'tls_sw_recvmsg',
};
const TUPLE_SOURCES: Readonly<Record<number, TupleSource>> = { 1: 'socket', 2: 'session', 3: 'thread' };

export const FLAG_TRUNCATED = 1;
export const FLAG_FAULT = 2;

export interface TlsEndpoints {
  family: 4 | 6;
  /** local address:port of the socket */
  local: string;
  /** remote address:port */
  remote: string;
}

/** One ring record: a chunk of one call's plaintext. */
export interface TlsChunk {
  tsNs: bigint;
  startNs: bigint;
  connId: bigint;
  cgroupId: bigint;
  pid: number;
  tid: number;
  uid: number;
  gid: number;
  mntns: number;
  netns: number;
  comm: string;
  endpoints: TlsEndpoints | undefined;
  tupleSource: TupleSource | undefined;
  totalLen: number;
  capturedLen: number;
  offset: number;
  source: TlsSource;
  func: string;
  direction: TlsDirection;
  flags: number;
  /** which probed file fired (the gadget's attach cookie) */
  fileId: number;
  /** copied out of the ring */
  data: Uint8Array;
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

export function decodeTlsChunk(dv: DataView, off: number, len: number): TlsChunk {
  const L = TLS_EVENT_LAYOUT;
  if (len < L.size) throw new Error(`tls event of ${len} bytes is shorter than its ${L.size}-byte header`);
  const chunkLen = dv.getUint32(off + L.chunk_len, true);
  if (L.size + chunkLen > len) throw new Error(`tls event claims ${chunkLen} bytes but carries ${len - L.size}`);
  const bytes = new Uint8Array(dv.buffer, dv.byteOffset + off, len);
  const t = L.tuple;
  const fam = dv.getUint8(off + t + 36);
  const tupleSource = TUPLE_SOURCES[dv.getUint8(off + L.tuple_source)];
  let endpoints: TlsEndpoints | undefined;
  if (tupleSource !== undefined && (fam === 4 || fam === 6)) {
    endpoints = {
      family: fam,
      local: formatEndpoint(fam, formatAddr(fam, bytes, t), dv.getUint16(off + t + 32, true)),
      remote: formatEndpoint(fam, formatAddr(fam, bytes, t + 16), dv.getUint16(off + t + 34, true)),
    };
  }
  const src = dv.getUint8(off + L.source);
  const fn = dv.getUint8(off + L.func);
  return {
    tsNs: dv.getBigUint64(off + L.ts_ns, true),
    startNs: dv.getBigUint64(off + L.start_ns, true),
    connId: dv.getBigUint64(off + L.conn_id, true),
    cgroupId: dv.getBigUint64(off + L.cgroup_id, true),
    pid: dv.getUint32(off + L.pid, true),
    tid: dv.getUint32(off + L.tid, true),
    uid: dv.getUint32(off + L.uid, true),
    gid: dv.getUint32(off + L.gid, true),
    mntns: dv.getUint32(off + L.mntns, true),
    netns: dv.getUint32(off + L.netns, true),
    comm: comm(dv, off + L.comm),
    endpoints: endpoints,
    tupleSource: endpoints === undefined ? undefined : tupleSource,
    totalLen: dv.getUint32(off + L.total_len, true),
    capturedLen: dv.getUint32(off + L.captured_len, true),
    offset: dv.getUint32(off + L.offset, true),
    source: SOURCES[src] ?? 'openssl',
    func: FUNCTIONS[fn] ?? `function ${fn}`,
    direction: dv.getUint8(off + L.direction) === 1 ? 'read' : 'write',
    flags: dv.getUint8(off + L.flags),
    fileId: dv.getUint32(off + L.file_id, true),
    data: bytes.slice(L.size, L.size + chunkLen),
  };
}

export interface TlsHint {
  pid: number;
  kind: 'exec' | 'mmap';
}

export function decodeTlsHint(dv: DataView, off: number, len: number): TlsHint {
  if (len < TLS_HINT_SIZE) throw new Error(`tls hint of ${len} bytes`);
  return { pid: dv.getUint32(off, true), kind: dv.getUint32(off + 4, true) === 1 ? 'exec' : 'mmap' };
}
