// SPDX-License-Identifier: Apache-2.0
/**
 * `--redact` without `--http`: credentials masked in the raw plaintext of every call, per
 * connection — HTTP/1 header lines in place (Redactor.http1Bytes), HTTP/2 header blocks
 * through each direction's HPACK table (protocols/redact-h2.ts). The protocol is chosen from a
 * connection's first bytes as `--http` chooses it. A connection is the session pointer and
 * socket tuple within a process, as in http.ts; at most `maxConnections` are followed (the
 * least recently used one is forgotten: its next bytes are framed anew, masked whole when they
 * do not start a frame).
 */
import { H2DirectionRedactor, type H2RedactStats } from '../../protocols/redact-h2.js';
import { looksLikeFrameStart, prefaceMatches } from '../../protocols/http2.js';
import type { Redactor } from '../../protocols/redact.js';
import type { TlsEvent } from './gadget.js';

interface RawConn {
  tuple: string | undefined;
  proto: 'h1' | 'h2';
  fromStart: boolean;
  write?: H2DirectionRedactor;
  read?: H2DirectionRedactor;
}

export class RawRedaction {
  private readonly redactor: Redactor;
  private readonly conns = new Map<string, RawConn>();
  private readonly maxConnections: number;
  readonly h2: H2RedactStats = { masked: 0, splitBlocks: 0, unframedBytes: 0 };
  /** HTTP/1 header values masked */
  readonly h1 = { masked: 0 };

  constructor(redactor: Redactor, maxConnections = 4096) {
    this.redactor = redactor;
    this.maxConnections = maxConnections;
  }

  process(batch: readonly TlsEvent[]): TlsEvent[] {
    return batch.map((e) => {
      const data = this.mask(e);
      return data === e.data ? e : { ...e, data };
    });
  }

  private mask(e: TlsEvent): Uint8Array {
    if (e.data.length === 0) return e.data;
    const conn = this.connectionOf(e);
    if (conn.proto === 'h1') return this.redactor.http1Bytes(e.data, this.h1);
    const side = e.direction === 'write' ? 'write' : 'read';
    const d = (conn[side] ??= new H2DirectionRedactor(this.redactor, this.h2, conn.fromStart));
    // zeros where bytes were lost: the framing after them is not known
    if (e.lostBytes > 0 || e.fault) d.gap();
    const out = d.push(e.data);
    // --max-bytes cut the call: the rest of its bytes never reach us
    if (e.truncated) d.gap();
    return out;
  }

  private connectionOf(e: TlsEvent): RawConn {
    const key = `${e.proc.pid}:${e.conn}`;
    const tuple = e.local === undefined || e.remote === undefined ? undefined : `${e.local}>${e.remote}`;
    let c = this.conns.get(key);
    if (c !== undefined && tuple !== undefined && c.tuple !== undefined && c.tuple !== tuple) c = undefined;
    if (c === undefined) {
      const preface = prefaceMatches(e.data) !== 'no';
      c = { tuple, proto: preface || looksLikeFrameStart(e.data) ? 'h2' : 'h1', fromStart: preface };
      while (this.conns.size >= this.maxConnections) {
        const oldest = this.conns.keys().next();
        if (oldest.done === true) break;
        this.conns.delete(oldest.value);
      }
    } else {
      c.tuple ??= tuple;
      this.conns.delete(key);
    }
    this.conns.set(key, c);
    return c;
  }
}

/**
 * The summary said at the end of every run (not only with -v) once anything was masked or a
 * fallback masked bytes whole: a user must know that the data shown was changed, and where
 * masking could not read the framing (HTTP/2 blocks split across calls, bytes it could not
 * frame) and so hid more than the secrets. Undefined when nothing was masked.
 */
export function redactionSummary(r: RawRedaction): string | undefined {
  const { h1, h2 } = r;
  if (h1.masked + h2.masked + h2.splitBlocks + h2.unframedBytes === 0) return undefined;
  const fallback = [
    ...(h2.splitBlocks > 0 ? [`${h2.splitBlocks} HTTP/2 header block${h2.splitBlocks === 1 ? '' : 's'} split across calls (the earlier part masked whole)`] : []),
    ...(h2.unframedBytes > 0 ? [`${h2.unframedBytes} HTTP/2 byte${h2.unframedBytes === 1 ? '' : 's'} that could not be framed (trace begun mid-connection, or bytes lost) masked whole`] : []),
  ];
  return `redaction: ${h1.masked} HTTP/1 header value${h1.masked === 1 ? '' : 's'} and ${h2.masked} HTTP/2 header value${h2.masked === 1 ? '' : 's'} masked in the raw data${fallback.length === 0 ? '' : `; raw fallback: ${fallback.join(', ')}`}`;
}
