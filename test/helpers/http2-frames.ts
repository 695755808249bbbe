// SPDX-License-Identifier: Apache-2.0
/** Builds HTTP/2 frames and whole connections for parser tests and benchmarks. */
import { HpackEncoder, type FieldRepresentation, type HeaderField } from '../../src/protocols/hpack.js';
import { CONNECTION_PREFACE } from '../../src/protocols/http2.js';

export const T = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const F = { END_STREAM: 1, ACK: 1, END_HEADERS: 4, PADDED: 8, PRIORITY: 0x20 } as const;

export function frame(type: number, flags: number, streamId: number, payload: Uint8Array | readonly number[] = []): Uint8Array {
  const p = payload instanceof Uint8Array ? payload : Uint8Array.from(payload);
  const out = new Uint8Array(9 + p.length);
  out[0] = (p.length >> 16) & 0xff;
  out[1] = (p.length >> 8) & 0xff;
  out[2] = p.length & 0xff;
  out[3] = type;
  out[4] = flags;
  out[5] = (streamId >>> 24) & 0x7f;
  out[6] = (streamId >> 16) & 0xff;
  out[7] = (streamId >> 8) & 0xff;
  out[8] = streamId & 0xff;
  out.set(p, 9);
  return out;
}

export function u32be(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

export function settings(values: Array<[number, number]> = []): Uint8Array {
  return frame(T.SETTINGS, 0, 0, values.flatMap(([id, v]) => [(id >> 8) & 0xff, id & 0xff, ...u32be(v)]));
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export interface HeadersOptions {
  endStream?: boolean;
  /** split the block into this many frames (HEADERS + CONTINUATIONs) */
  pieces?: number;
  padding?: number;
  priority?: boolean;
  choose?: (h: HeaderField, i: number) => { huffman: boolean; mode: FieldRepresentation };
}

/** HEADERS (+ CONTINUATION) frames for one header block, encoded with `enc`. */
export function headers(enc: HpackEncoder, streamId: number, fields: readonly HeaderField[], o: HeadersOptions = {}): Uint8Array {
  const block = enc.encode(fields, o.choose);
  const pieces = Math.max(1, Math.min(o.pieces ?? 1, Math.max(1, block.length)));
  const size = Math.ceil(block.length / pieces);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < pieces; i++) parts.push(block.subarray(i * size, Math.min(block.length, (i + 1) * size)));
  const out: Uint8Array[] = [];
  parts.forEach((part, i) => {
    const last = i === parts.length - 1;
    if (i === 0) {
      let flags = (o.endStream ? F.END_STREAM : 0) | (last ? F.END_HEADERS : 0);
      const pre: number[] = [];
      if (o.padding !== undefined) {
        flags |= F.PADDED;
        pre.push(o.padding);
      }
      if (o.priority) {
        flags |= F.PRIORITY;
        pre.push(0, 0, 0, 0, 16);
      }
      out.push(frame(T.HEADERS, flags, streamId, concat([Uint8Array.from(pre), part, new Uint8Array(o.padding ?? 0)])));
    } else {
      out.push(frame(T.CONTINUATION, last ? F.END_HEADERS : 0, streamId, part));
    }
  });
  return concat(out);
}

/** DATA frames for a body, at most `max` bytes each. */
export function data(streamId: number, body: Uint8Array, endStream: boolean, max = 16384, padding?: number): Uint8Array {
  const out: Uint8Array[] = [];
  if (body.length === 0) return frame(T.DATA, endStream ? F.END_STREAM : 0, streamId);
  for (let at = 0; at < body.length; at += max) {
    const last = at + max >= body.length;
    const part = body.subarray(at, Math.min(body.length, at + max));
    const flags = (last && endStream ? F.END_STREAM : 0) | (padding !== undefined ? F.PADDED : 0);
    out.push(frame(T.DATA, flags, streamId, padding !== undefined ? concat([Uint8Array.of(padding), part, new Uint8Array(padding)]) : part));
  }
  return concat(out);
}

export { CONNECTION_PREFACE };

export interface GenExchange {
  streamId: number;
  request: HeaderField[];
  requestBody: Uint8Array;
  response: HeaderField[];
  responseBody: Uint8Array;
  trailers: HeaderField[] | undefined;
}

/**
 * A whole connection: the client's bytes and the server's, as a list of writes in the order
 * an observer sees them (requests before their responses), each tagged with its direction.
 */
export function connection(exchanges: readonly GenExchange[], o: { pieces?: number; huffman?: boolean } = {}): Array<{ dir: 'client' | 'server'; bytes: Uint8Array }> {
  const c = new HpackEncoder();
  const s = new HpackEncoder();
  const out: Array<{ dir: 'client' | 'server'; bytes: Uint8Array }> = [];
  out.push({ dir: 'client', bytes: concat([CONNECTION_PREFACE, settings([[3, 100], [4, 65535]])]) });
  out.push({ dir: 'server', bytes: concat([settings([[3, 250]]), frame(T.SETTINGS, F.ACK, 0)]) });
  out.push({ dir: 'client', bytes: frame(T.SETTINGS, F.ACK, 0) });
  const choose = (): { huffman: boolean; mode: FieldRepresentation } => ({ huffman: o.huffman ?? true, mode: 'incremental' });
  for (const x of exchanges) {
    const hasBody = x.requestBody.length > 0;
    out.push({ dir: 'client', bytes: headers(c, x.streamId, x.request, { endStream: !hasBody, pieces: o.pieces ?? 1, choose }) });
    if (hasBody) out.push({ dir: 'client', bytes: data(x.streamId, x.requestBody, true) });
    const end = x.responseBody.length === 0 && x.trailers === undefined;
    out.push({ dir: 'server', bytes: headers(s, x.streamId, x.response, { endStream: end, pieces: o.pieces ?? 1, choose }) });
    if (x.responseBody.length > 0) out.push({ dir: 'server', bytes: data(x.streamId, x.responseBody, x.trailers === undefined) });
    if (x.trailers !== undefined) out.push({ dir: 'server', bytes: headers(s, x.streamId, x.trailers, { endStream: true, choose }) });
  }
  return out;
}
