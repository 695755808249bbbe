// SPDX-License-Identifier: Apache-2.0
/** Fields of `trace tls` (plaintext events) and `trace tls --http` (request/response pairs), and how data is shown. */
import { commonFields, type CommonEvent, type CommonField } from '../../fields/common.js';
import type { TlsEvent } from './gadget.js';
import type { TlsHttpEvent } from './http.js';

export type TraceTlsEvent = TlsEvent | TlsHttpEvent;

export type DataEncoding = 'utf8' | 'base64' | 'hex';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const lenientUtf8 = new TextDecoder('utf-8');

/** The data as JSON carries it: UTF-8 text when the bytes are valid UTF-8, else base64 (or hex when asked). */
export function encodeData(data: Uint8Array, hex = false): { text: string; encoding: DataEncoding } {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (hex) return { text: b.toString('hex'), encoding: 'hex' };
  try {
    return { text: strictUtf8.decode(data), encoding: 'utf8' };
  } catch {
    return { text: b.toString('base64'), encoding: 'base64' };
  }
}

/** One printable line: \r \n \t shown escaped, other control bytes and invalid UTF-8 as '.'. */
export function preview(data: Uint8Array, max = 64): string {
  const text = lenientUtf8.decode(data.subarray(0, max * 4));
  let out = '';
  for (const ch of text) {
    if (out.length >= max) return `${out}…`;
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '\r') out += '\\r';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f || (c >= 0x80 && c < 0xa0) || ch === '\ufffd') out += '.';
    else out += ch;
  }
  return data.length > max * 4 ? `${out}…` : out;
}

/** `hexdump -C` style lines, indented. */
export function hexDump(data: Uint8Array, indent = '    '): string {
  const lines: string[] = [];
  for (let off = 0; off < data.length; off += 16) {
    const row = data.subarray(off, off + 16);
    let hex = '';
    let ascii = '';
    for (let i = 0; i < 16; i++) {
      const b = row[i];
      hex += b === undefined ? '   ' : `${b.toString(16).padStart(2, '0')} `;
      if (i === 7) hex += ' ';
      if (b !== undefined) ascii += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.';
    }
    lines.push(`${indent}${off.toString(16).padStart(8, '0')}  ${hex} |${ascii}|`);
  }
  return lines.join('\n');
}

function data(e: TraceTlsEvent): TlsEvent | undefined {
  return e.kind === 'data' ? e : undefined;
}
function http(e: TraceTlsEvent): TlsHttpEvent | undefined {
  return e.kind === 'http' ? e : undefined;
}

/** The common fields in the order this gadget shows them: COMM before PID, TID hidden. */
function procFirst<E extends CommonEvent>(): CommonField<E>[] {
  const common = commonFields<E>().map((f) => (f.name === 'proc.tid' ? { ...f, visible: false } : f));
  const comm = common.find((f) => f.name === 'proc.comm');
  const rest = common.filter((f) => f.name !== 'proc.comm');
  const pidAt = rest.findIndex((f) => f.name === 'proc.pid');
  if (comm !== undefined && pidAt >= 0) rest.splice(pidAt, 0, comm);
  return rest;
}

export interface TlsFieldOptions {
  /** -o json: no preview column; data encoded */
  json: boolean;
  hex: boolean;
}

export function tlsDataFields(opts: TlsFieldOptions): CommonField<TraceTlsEvent>[] {
  const enc = new WeakMap<object, { text: string; encoding: DataEncoding }>();
  const encoded = (e: TraceTlsEvent): { text: string; encoding: DataEncoding } | undefined => {
    const d = data(e);
    if (d === undefined) return undefined;
    let x = enc.get(d);
    if (x === undefined) enc.set(d, (x = encodeData(d.data, opts.hex)));
    return x;
  };
  const fields: CommonField<TraceTlsEvent>[] = [
    ...procFirst<TraceTlsEvent>(),
    { name: 'direction', column: 'DIR', width: 5, description: 'write: the process gave plaintext to TLS (sent); read: TLS gave it plaintext (received)', visible: true, get: (e) => data(e)?.direction },
    { name: 'len', column: 'LEN', type: 'int', width: 7, align: 'right', description: 'bytes the call moved (its return value)', visible: true, get: (e) => data(e)?.len },
    { name: 'src', column: 'SRC', width: 22, description: 'where the bytes came from: local address:port for writes, remote for reads', visible: true, get: (e) => data(e)?.src },
    { name: 'dst', column: 'DST', width: 22, description: 'where the bytes went: remote address:port for writes, local for reads', visible: true, get: (e) => data(e)?.dst },
    { name: 'local', column: 'LOCAL', width: 22, description: "the socket's local address:port", visible: false, get: (e) => data(e)?.local },
    { name: 'remote', column: 'REMOTE', width: 22, description: "the socket's remote address:port", visible: false, get: (e) => data(e)?.remote },
    { name: 'tupleSource', column: 'TUPLE', width: 7, description: 'how the socket was found: socket (I/O during the call), session (remembered for the TLS session), thread (inferred: the thread\'s latest socket I/O)', visible: false, get: (e) => data(e)?.tupleSource },
    { name: 'source', column: 'SOURCE', width: 7, description: 'TLS stack: openssl, gnutls, go (ktls later)', visible: false, get: (e) => data(e)?.source },
    { name: 'function', column: 'FUNCTION', width: 24, description: 'the probed function', visible: false, get: (e) => data(e)?.function },
    { name: 'library', column: 'LIBRARY', width: 36, description: 'the file that holds it, as the process sees it', visible: false, get: (e) => data(e)?.library },
    { name: 'latencyNs', column: 'LATENCY', type: 'int', width: 10, align: 'right', description: 'ns from entering the call to its return', visible: false, get: (e) => data(e)?.latencyNs },
    { name: 'truncated', column: 'TRUNC', type: 'bool', width: 5, description: 'true when --max-bytes cut the data (data is shorter than len)', visible: false, get: (e) => data(e)?.truncated },
    { name: 'lostBytes', column: 'LOST', type: 'int', width: 7, align: 'right', description: 'captured bytes lost because the ring buffer was full (zeros in data)', visible: false, get: (e) => data(e)?.lostBytes },
    { name: 'conn', column: 'CONN', width: 14, description: 'the TLS session within the process (SSL*, gnutls session, *tls.Conn), hex', visible: false, get: (e) => data(e)?.conn },
    { name: 'data', column: 'DATA', width: 40, description: 'the plaintext, encoded as dataEncoding says', visible: false, get: (e) => encoded(e)?.text },
    { name: 'dataEncoding', column: 'ENC', width: 6, description: 'utf8 (the bytes are valid UTF-8, shown as text), base64 (they are not), hex (--hex)', visible: false, get: (e) => encoded(e)?.encoding },
  ];
  if (!opts.json) {
    fields.push({ name: 'preview', column: 'DATA', width: 64, description: 'the start of the plaintext, printable (\\r \\n escaped, other control bytes as .)', visible: true, get: (e) => { const d = data(e); return d === undefined ? undefined : preview(d.data); } });
  }
  return fields;
}

export function tlsHttpFields(): CommonField<TraceTlsEvent>[] {
  return [
    ...procFirst<TraceTlsEvent>(),
    { name: 'role', column: 'ROLE', width: 6, description: 'client: the process sent the request; server: it answered', visible: true, get: (e) => http(e)?.role },
    { name: 'method', column: 'METHOD', width: 7, description: 'HTTP request method', visible: true, get: (e) => http(e)?.method },
    { name: 'status', column: 'STATUS', type: 'int', width: 6, align: 'right', description: 'HTTP response status', visible: true, get: (e) => http(e)?.status },
    { name: 'latencyMs', column: 'LATENCY', type: 'double', width: 9, align: 'right', description: "ms from the request's first byte to the response's first byte", visible: true, get: (e) => http(e)?.latencyMs },
    { name: 'durationMs', column: 'DURATION', type: 'double', width: 9, align: 'right', description: "ms from the request's first byte to the response's last byte", visible: false, get: (e) => http(e)?.durationMs },
    { name: 'client', column: 'CLIENT', width: 22, description: 'client address:port', visible: true, get: (e) => http(e)?.client },
    { name: 'server', column: 'SERVER', width: 22, description: 'server address:port', visible: true, get: (e) => http(e)?.server },
    { name: 'host', column: 'HOST', width: 20, description: 'the Host header', visible: false, get: (e) => http(e)?.host },
    { name: 'reason', column: 'REASON', width: 12, description: 'HTTP reason phrase', visible: false, get: (e) => http(e)?.reason },
    { name: 'requestBytes', column: 'REQBYTES', type: 'int', width: 9, align: 'right', description: 'bytes of the request (head and body)', visible: false, get: (e) => http(e)?.requestBytes },
    { name: 'responseBytes', column: 'RESPBYTES', type: 'int', width: 9, align: 'right', description: 'bytes of the response (head and body)', visible: false, get: (e) => http(e)?.responseBytes },
    { name: 'source', column: 'SOURCE', width: 7, description: 'TLS stack: openssl, gnutls, go', visible: false, get: (e) => http(e)?.source },
    { name: 'conn', column: 'CONN', width: 14, description: 'the TLS session within the process, hex', visible: false, get: (e) => http(e)?.conn },
    { name: 'path', column: 'PATH', width: 40, description: 'request path and query', visible: true, get: (e) => http(e)?.path },
  ];
}
