// SPDX-License-Identifier: Apache-2.0
/** Fields of `trace tls` (plaintext events) and `trace tls --http` (request/response pairs), and how data is shown. */
import { isUtf8 } from 'node:buffer';
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

const asBuffer = (data: Uint8Array): Buffer => (Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));

/** Starts with a UTF-8 byte order mark, which the strict decoder of encodeData drops. */
const bom = (b: Uint8Array): boolean => b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf;

/**
 * What encodeData gives, as JSON text, straight from the bytes: `JSON.stringify(encodeData(data,
 * hex).text)`, without the decoder's exception on binary data or any object.
 */
export function dataJson(data: Uint8Array, hex = false): string {
  const b = asBuffer(data);
  if (hex) return `"${b.toString('hex')}"`;
  if (isUtf8(b)) return bom(b) ? JSON.stringify(encodeData(data).text) : JSON.stringify(b.toString('utf8'));
  return `"${b.toString('base64')}"`;
}

/** The dataEncoding of encodeData, as JSON text. */
export function dataEncodingJson(data: Uint8Array, hex = false): string {
  return hex ? '"hex"' : isUtf8(asBuffer(data)) ? '"utf8"' : '"base64"';
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
    { name: 'len', type: 'int', column: 'LEN', width: 7, align: 'right', description: 'bytes the call moved (its return value)', visible: true, get: (e) => data(e)?.len },
    { name: 'src', column: 'SRC', width: 22, description: 'where the bytes came from: local address:port for writes, remote for reads', visible: true, get: (e) => data(e)?.src },
    { name: 'dst', column: 'DST', width: 22, description: 'where the bytes went: remote address:port for writes, local for reads', visible: true, get: (e) => data(e)?.dst },
    { name: 'local', column: 'LOCAL', width: 22, description: "the socket's local address:port", visible: false, get: (e) => data(e)?.local },
    { name: 'remote', column: 'REMOTE', width: 22, description: "the socket's remote address:port", visible: false, get: (e) => data(e)?.remote },
    { name: 'tupleSource', column: 'TUPLE', width: 7, description: 'how the socket was found: socket (I/O during the call), session (remembered for the TLS session), thread (inferred: the thread\'s latest socket I/O)', visible: false, get: (e) => data(e)?.tupleSource },
    { name: 'source', column: 'SOURCE', width: 7, description: 'TLS stack: openssl, gnutls, go, rustls, nss, ktls (openssl+ktls, gnutls+ktls: a library call kTLS saw too)', visible: false, get: (e) => data(e)?.source },
    { name: 'function', column: 'FUNCTION', width: 24, description: 'the probed function', visible: false, get: (e) => data(e)?.function },
    { name: 'library', column: 'LIBRARY', width: 36, description: 'the file that holds it, as the process sees it', visible: false, get: (e) => data(e)?.library },
    { name: 'latencyNs', type: 'int', column: 'LATENCY', width: 10, align: 'right', description: 'ns from entering the call to its return', visible: false, get: (e) => data(e)?.latencyNs },
    { name: 'truncated', type: 'bool', column: 'TRUNC', width: 5, description: 'true when --max-bytes cut the data (data is shorter than len)', visible: false, get: (e) => data(e)?.truncated },
    { name: 'lostBytes', type: 'int', column: 'LOST', width: 7, align: 'right', description: 'captured bytes lost because the ring buffer was full (zeros in data)', visible: false, get: (e) => data(e)?.lostBytes },
    { name: 'conn', column: 'CONN', width: 14, description: 'the TLS session within the process (SSL*, gnutls session, *tls.Conn), hex', visible: false, get: (e) => data(e)?.conn },
    { name: 'data', column: 'DATA', width: 40, description: 'the plaintext, encoded as dataEncoding says', visible: false, get: (e) => encoded(e)?.text, json: (e) => { const d = data(e); return d === undefined ? undefined : dataJson(d.data, opts.hex); } },
    { name: 'dataEncoding', column: 'ENC', width: 6, description: 'utf8 (the bytes are valid UTF-8, shown as text), base64 (they are not), hex (--hex)', visible: false, get: (e) => encoded(e)?.encoding, json: (e) => { const d = data(e); return d === undefined ? undefined : dataEncodingJson(d.data, opts.hex); } },
  ];
  if (!opts.json) {
    fields.push({ name: 'preview', column: 'DATA', width: 64, description: 'the start of the plaintext, printable (\\r \\n escaped, other control bytes as .)', visible: true, get: (e) => { const d = data(e); return d === undefined ? undefined : preview(d.data); } });
  }
  return fields;
}

function headerText(hs: readonly { name: string; value: string }[] | undefined): string | undefined {
  return hs === undefined || hs.length === 0 ? undefined : JSON.stringify(hs.map((h) => [h.name, h.value]));
}

export function tlsHttpFields(): CommonField<TraceTlsEvent>[] {
  return [
    ...procFirst<TraceTlsEvent>(),
    { name: 'role', column: 'ROLE', width: 6, description: 'client: the process sent the request; server: it answered', visible: true, get: (e) => http(e)?.role },
    { name: 'http.version', column: 'VER', width: 3, description: 'HTTP version: 1.0, 1.1 or 2 (chosen by the connection preface; ALPN is not seen)', visible: true, get: (e) => http(e)?.version },
    { name: 'http.method', column: 'METHOD', width: 7, description: 'HTTP request method', visible: true, get: (e) => http(e)?.method },
    { name: 'http.status', type: 'int', column: 'STATUS', width: 6, align: 'right', description: 'HTTP response status (empty when no response came)', visible: true, get: (e) => http(e)?.status },
    { name: 'latencyMs', type: 'double', column: 'LATENCY', width: 9, align: 'right', description: "ms from the request's first byte to the response's first byte", visible: true, get: (e) => http(e)?.latencyMs },
    { name: 'durationMs', type: 'double', column: 'DURATION', width: 9, align: 'right', description: "ms from the request's first byte to the response's last byte", visible: false, get: (e) => http(e)?.durationMs },
    { name: 'client', column: 'CLIENT', width: 22, description: 'client address:port', visible: true, get: (e) => http(e)?.client },
    { name: 'server', column: 'SERVER', width: 22, description: 'server address:port', visible: true, get: (e) => http(e)?.server },
    { name: 'http.host', column: 'HOST', width: 20, description: 'the Host header or :authority', visible: false, get: (e) => http(e)?.host },
    { name: 'http.reason', column: 'REASON', width: 12, description: 'HTTP/1 reason phrase', visible: false, get: (e) => http(e)?.reason || undefined },
    { name: 'http.end', column: 'END', width: 10, description: 'complete, or how the exchange ended: cut-off (HTTP/1 connection ended mid-response), reset (RST_STREAM), goaway, connection-closed, bytes-lost (ring full), evicted', visible: false, get: (e) => http(e)?.end },
    { name: 'http.note', column: 'NOTE', width: 30, description: 'reset and GOAWAY codes, header fields that could not be decoded (trace begun mid-connection)', visible: false, get: (e) => http(e)?.note },
    { name: 'http.requestHeaders', column: 'REQHEADERS', width: 30, description: 'request header fields as a JSON array of [name, value] (pseudo-fields included; masked with --redact)', visible: false, get: (e) => headerText(http(e)?.requestHeaders) },
    { name: 'http.responseHeaders', column: 'RESPHEADERS', width: 30, description: 'response header fields and trailers as a JSON array of [name, value]', visible: false, get: (e) => headerText(http(e)?.responseHeaders) },
    { name: 'http.requestBody', column: 'REQBODY', width: 30, description: 'the start of the request body (text when UTF-8, else base64)', visible: false, get: (e) => bodyText(http(e)?.requestBody) },
    { name: 'http.responseBody', column: 'RESPBODY', width: 30, description: 'the start of the response body (text when UTF-8, else base64)', visible: false, get: (e) => bodyText(http(e)?.responseBody) },
    { name: 'http.bodyTruncated', type: 'bool', column: 'BODYTRUNC', width: 5, description: 'true when a body was longer than what is kept (16 KiB)', visible: false, get: (e) => http(e)?.bodyTruncated },
    { name: 'requestBytes', type: 'int', column: 'REQBYTES', width: 9, align: 'right', description: 'bytes of the request (HTTP/1: head and body; HTTP/2: its frames)', visible: false, get: (e) => http(e)?.requestBytes },
    { name: 'responseBytes', type: 'int', column: 'RESPBYTES', width: 9, align: 'right', description: 'bytes of the response (HTTP/1: head and body; HTTP/2: its frames)', visible: false, get: (e) => http(e)?.responseBytes },
    { name: 'grpc.service', column: 'GRPC.SERVICE', width: 24, description: 'gRPC service (from :path)', visible: false, get: (e) => http(e)?.grpc?.service },
    { name: 'grpc.method', column: 'GRPC.METHOD', width: 16, description: 'gRPC method (from :path)', visible: false, get: (e) => http(e)?.grpc?.method },
    { name: 'grpc.status', type: 'int', column: 'GRPC.STATUS', width: 6, align: 'right', description: 'grpc-status from the trailers', visible: false, get: (e) => http(e)?.grpc?.status },
    { name: 'grpc.statusName', column: 'GRPC.CODE', width: 12, description: 'grpc-status by name (OK, NOT_FOUND, …)', visible: false, get: (e) => http(e)?.grpc?.statusName },
    { name: 'grpc.message', column: 'GRPC.MESSAGE', width: 24, description: 'grpc-message from the trailers', visible: false, get: (e) => http(e)?.grpc?.message },
    { name: 'grpc.requestMessages', type: 'int', column: 'GRPC.REQS', width: 5, align: 'right', description: 'length-prefixed messages the client sent', visible: false, get: (e) => http(e)?.grpc?.requestMessages },
    { name: 'grpc.responseMessages', type: 'int', column: 'GRPC.RESPS', width: 5, align: 'right', description: 'length-prefixed messages the server sent', visible: false, get: (e) => http(e)?.grpc?.responseMessages },
    { name: 'grpc.request', column: 'GRPC.REQ', width: 30, description: 'the request messages, decoded as protobuf (field numbers, or names with --proto), one per line', visible: false, get: (e) => http(e)?.grpc?.requestText.join('\n') || undefined },
    { name: 'grpc.response', column: 'GRPC.RESP', width: 30, description: 'the response messages, decoded as protobuf', visible: false, get: (e) => http(e)?.grpc?.responseText.join('\n') || undefined },
    { name: 'source', column: 'SOURCE', width: 7, description: 'TLS stack: openssl, gnutls, go, rustls, nss, ktls', visible: false, get: (e) => http(e)?.source },
    { name: 'conn', column: 'CONN', width: 14, description: 'the TLS session within the process, hex', visible: false, get: (e) => http(e)?.conn },
    { name: 'http.path', column: 'PATH', width: 40, description: 'request path and query (:path for HTTP/2)', visible: true, get: (e) => http(e)?.path },
  ];
}

function bodyText(b: Uint8Array | undefined): string | undefined {
  return b === undefined || b.length === 0 ? undefined : encodeData(b).text;
}
