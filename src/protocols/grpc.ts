// SPDX-License-Identifier: Apache-2.0
/**
 * gRPC over HTTP/2: service and method from `:path`, length-prefixed messages read from the
 * DATA of each side as they come (any split, several per frame, streaming calls), the
 * compressed flag honoured (gzip and deflate decoded, bounded), status and message from the
 * trailers (or from a trailers-only response).
 */
import { gunzipSync, inflateSync } from 'node:zlib';
import type { HeaderField } from './hpack.js';
import type { BodySink } from './http2.js';

export interface GrpcMessage {
  /** bytes on the wire after the 5-byte prefix */
  wireBytes: number;
  compressed: boolean;
  /** the (decompressed) message, at most `maxMessageBytes` */
  data: Uint8Array;
  truncated: boolean;
  /** why a compressed message could not be decompressed */
  error?: string;
  at: number;
}

export interface GrpcCall {
  service: string;
  method: string;
}

/** "/pkg.Service/Method" → { service: "pkg.Service", method: "Method" }. */
export function grpcCallOf(path: string | undefined): GrpcCall | undefined {
  if (path === undefined) return undefined;
  const m = /^\/([^/]+)\/([^/?]+)$/.exec(path);
  return m === null ? undefined : { service: m[1] ?? '', method: m[2] ?? '' };
}

export function isGrpc(headers: readonly HeaderField[]): boolean {
  const ct = headers.find((h) => h.name === 'content-type')?.value;
  return ct !== undefined && /^application\/grpc(\+|;|$)/.test(ct);
}

export const GRPC_STATUS: readonly string[] = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
];

/** grpc-status and grpc-message (percent-decoded) from trailers or a trailers-only response. */
export function grpcStatusOf(...blocks: ReadonlyArray<readonly HeaderField[] | undefined>): { code: number; name: string; message: string | undefined } | undefined {
  for (const b of blocks) {
    const s = b?.find((h) => h.name === 'grpc-status')?.value;
    if (s === undefined || !/^\d+$/.test(s)) continue;
    const code = Number(s);
    const raw = b?.find((h) => h.name === 'grpc-message')?.value;
    let message = raw;
    if (raw !== undefined) {
      try {
        message = decodeURIComponent(raw);
      } catch {
        message = raw;
      }
    }
    return { code, name: GRPC_STATUS[code] ?? String(code), message };
  }
  return undefined;
}

export interface GrpcReaderOptions {
  /** messages kept per side (default 32); all are counted */
  maxMessages?: number;
  /** bytes kept per message (default 4 KiB) */
  maxMessageBytes?: number;
  /** compressed messages larger than this on the wire are not decompressed (default 1 MiB) */
  maxCompressedBytes?: number;
}

/** Reads the length-prefixed messages of one side of a gRPC stream from its DATA. */
export class GrpcMessageReader implements BodySink {
  readonly messages: GrpcMessage[] = [];
  count = 0;
  /** bytes left over at the end that did not make a whole message */
  partialBytes = 0;
  private readonly encoding: string | undefined;
  private readonly o: Required<GrpcReaderOptions>;
  private prefix = new Uint8Array(5);
  private prefixFill = 0;
  private remaining = 0;
  private current: { compressed: boolean; wireBytes: number; parts: Uint8Array[]; kept: number; at: number } | undefined;

  constructor(headers: readonly HeaderField[], options: GrpcReaderOptions = {}) {
    this.encoding = headers.find((h) => h.name === 'grpc-encoding')?.value;
    this.o = { maxMessages: options.maxMessages ?? 32, maxMessageBytes: options.maxMessageBytes ?? 4096, maxCompressedBytes: options.maxCompressedBytes ?? 1 << 20 };
  }

  push(bytes: Uint8Array, at: number): void {
    let pos = 0;
    while (pos < bytes.length) {
      if (this.current === undefined) {
        const take = Math.min(5 - this.prefixFill, bytes.length - pos);
        this.prefix.set(bytes.subarray(pos, pos + take), this.prefixFill);
        this.prefixFill += take;
        pos += take;
        if (this.prefixFill < 5) return;
        this.prefixFill = 0;
        const len = ((this.prefix[1] ?? 0) * 0x1000000) + (((this.prefix[2] ?? 0) << 16) | ((this.prefix[3] ?? 0) << 8) | (this.prefix[4] ?? 0));
        this.current = { compressed: ((this.prefix[0] ?? 0) & 1) === 1, wireBytes: len, parts: [], kept: 0, at };
        this.remaining = len;
        if (len === 0) this.done();
        continue;
      }
      const take = Math.min(this.remaining, bytes.length - pos);
      const c = this.current;
      // compressed messages are kept whole (up to the bound) to be decompressed; others up to what is shown
      const keep = c.compressed ? this.o.maxCompressedBytes : this.o.maxMessageBytes;
      const k = Math.min(take, keep - c.kept);
      if (k > 0 && this.messages.length < this.o.maxMessages) {
        c.parts.push(bytes.slice(pos, pos + k));
        c.kept += k;
      }
      pos += take;
      this.remaining -= take;
      if (this.remaining === 0) this.done();
    }
  }

  end(): void {
    this.partialBytes = this.prefixFill + (this.current === undefined ? 0 : this.current.wireBytes - this.remaining);
  }

  private done(): void {
    const c = this.current;
    this.current = undefined;
    if (c === undefined) return;
    this.count++;
    if (this.messages.length >= this.o.maxMessages) return;
    let data = concat(c.parts, c.kept);
    let truncated = c.kept < c.wireBytes;
    let error: string | undefined;
    if (c.compressed) {
      if (truncated) error = `compressed message of ${c.wireBytes} bytes not decompressed (limit ${this.o.maxCompressedBytes})`;
      else {
        try {
          const opts = { maxOutputLength: this.o.maxMessageBytes * 16 };
          data = new Uint8Array(this.encoding === 'deflate' ? inflateSync(data, opts) : gunzipSync(data, opts));
        } catch (e) {
          error = `cannot decompress (${this.encoding ?? 'no grpc-encoding'}): ${e instanceof Error ? e.message : String(e)}`;
        }
      }
      if (data.length > this.o.maxMessageBytes) {
        data = data.slice(0, this.o.maxMessageBytes);
        truncated = true;
      }
    }
    this.messages.push({ wireBytes: c.wireBytes, compressed: c.compressed, data, truncated, at: c.at, ...(error === undefined ? {} : { error }) });
  }
}

function concat(parts: readonly Uint8Array[], n: number): Uint8Array {
  if (parts.length === 1) return parts[0] ?? new Uint8Array(0);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
