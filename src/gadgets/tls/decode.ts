// SPDX-License-Identifier: Apache-2.0
/** Decodes `struct tls_event` and `struct tls_hint` (bpf/include/tls.h); layouts are checked against BTF in tests. */
import { formatEndpoint } from '../../net/addr.js';
import { decodeTuple } from '../../net/tuple.js';
import { decodeProc, type ProcRecord } from '../proc-record.js';

export const TLS_EVENT_LAYOUT = {
  size: 144,
  ts_ns: 0,
  start_ns: 8,
  conn_id: 16,
  proc: 24, // struct tlscope_proc (src/gadgets/proc-record.ts)
  tuple: 72, // struct tlscope_tuple (src/net/tuple.ts)
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

export const TLS_HINT_SIZE = 8;

/** `openssl+ktls`, `gnutls+ktls`: a library call whose bytes the kTLS hooks saw too (shown once). */
export type TlsSource = 'openssl' | 'gnutls' | 'go' | 'rustls' | 'nss' | 'ktls' | 'openssl+ktls' | 'gnutls+ktls';
export type TlsDirection = 'write' | 'read';
/** How the connection tuple was found: see the README. */
export type TupleSource = 'socket' | 'session' | 'thread';

export const SOURCES: Readonly<Record<number, TlsSource>> = { 1: 'openssl', 2: 'gnutls', 3: 'go', 4: 'ktls', 6: 'rustls', 7: 'nss' };
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
  11: 'ssl_write_internal',
  12: 'ssl_read_internal',
  13: 'tls_sw_sendpage',
  14: 'tls_sw_splice_read',
  20: 'rustls::Writer::write',
  21: 'rustls::Reader::read',
  22: 'rustls::Writer::write_vectored',
  23: 'PR_Write',
  24: 'PR_Read',
  25: 'PR_Send',
  26: 'PR_Recv',
};
const TUPLE_SOURCES: Readonly<Record<number, TupleSource>> = { 1: 'socket', 2: 'session', 3: 'thread' };

export const FLAG_TRUNCATED = 1;
export const FLAG_FAULT = 2;
export const FLAG_KTLS = 4;

export interface TlsEndpoints {
  family: 4 | 6;
  /** local address:port of the socket */
  local: string;
  /** remote address:port */
  remote: string;
}

/** One ring record: a chunk of one call's plaintext, with the calling thread's record. */
export interface TlsChunk extends ProcRecord {
  tsNs: bigint;
  startNs: bigint;
  connId: bigint;
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

function withKtls(s: TlsSource, flags: number): TlsSource {
  if ((flags & FLAG_KTLS) === 0) return s;
  return s === 'openssl' ? 'openssl+ktls' : s === 'gnutls' ? 'gnutls+ktls' : s;
}

export function decodeTlsChunk(dv: DataView, off: number, len: number): TlsChunk {
  const L = TLS_EVENT_LAYOUT;
  if (len < L.size) throw new Error(`tls event of ${len} bytes is shorter than its ${L.size}-byte header`);
  const chunkLen = dv.getUint32(off + L.chunk_len, true);
  if (L.size + chunkLen > len) throw new Error(`tls event claims ${chunkLen} bytes but carries ${len - L.size}`);
  const bytes = new Uint8Array(dv.buffer, dv.byteOffset + off, len);
  const tupleSource = TUPLE_SOURCES[dv.getUint8(off + L.tuple_source)];
  const t = tupleSource === undefined ? undefined : decodeTuple(dv, off + L.tuple);
  const endpoints: TlsEndpoints | undefined = t === undefined
    ? undefined
    : { family: t.family, local: formatEndpoint(t.family, t.saddr, t.sport), remote: formatEndpoint(t.family, t.daddr, t.dport) };
  const src = dv.getUint8(off + L.source);
  const fn = dv.getUint8(off + L.func);
  return {
    tsNs: dv.getBigUint64(off + L.ts_ns, true),
    startNs: dv.getBigUint64(off + L.start_ns, true),
    connId: dv.getBigUint64(off + L.conn_id, true),
    ...decodeProc(dv, off + L.proc),
    endpoints: endpoints,
    tupleSource: endpoints === undefined ? undefined : tupleSource,
    totalLen: dv.getUint32(off + L.total_len, true),
    capturedLen: dv.getUint32(off + L.captured_len, true),
    offset: dv.getUint32(off + L.offset, true),
    source: withKtls(SOURCES[src] ?? 'openssl', dv.getUint8(off + L.flags)),
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
