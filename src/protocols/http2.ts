// SPDX-License-Identifier: Apache-2.0
/**
 * HTTP/2 (RFC 9113) for an observed connection: both directions' frames, HPACK per direction,
 * and streams paired into exchanges for `trace tls --http`.
 *
 * `Http2Connection` takes the bytes of each direction as the traced process wrote ('outbound')
 * and read ('inbound') them, in any split. It reads the connection preface, every frame type
 * (DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE,
 * CONTINUATION; unknown types are skipped as the RFC says) and reports an exchange per stream
 * when its response ends, is reset, is refused by a GOAWAY, or the connection ends.
 *
 * Pairing is by stream id, so it cannot cross streams. Which direction is the client's is
 * taken only from evidence (the preface, a `:method` or `:status` field, a PUSH_PROMISE); a
 * stream whose request was never seen (the trace began after it) is counted, not shown.
 *
 * A trace that starts mid-connection has no preface: the first bytes must then look like a
 * frame header, and HPACK starts with an unknown dynamic table (fields that refer to it are
 * listed in `undecoded` instead of guessed).
 *
 * Bounded: buffered frames (non-DATA) up to `maxFrameBytes` (larger ones are skipped, which
 * costs HPACK its table), `maxStreams` open streams per connection (oldest dropped, counted),
 * body bytes kept per side up to `maxBodyBytes` (all counted). Never throws on input: bytes it
 * cannot read turn the connection into `not-h2` with a reason.
 */

import { HpackDecoder, type HeaderField, type UndecodedField } from './hpack.js';

export type Http2Direction = 'outbound' | 'inbound';

export const CONNECTION_PREFACE = new TextEncoder().encode('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export const FRAME_TYPES = ['DATA', 'HEADERS', 'PRIORITY', 'RST_STREAM', 'SETTINGS', 'PUSH_PROMISE', 'PING', 'GOAWAY', 'WINDOW_UPDATE', 'CONTINUATION'] as const;
export type FrameTypeName = (typeof FRAME_TYPES)[number];

const DATA = 0x0;
const HEADERS = 0x1;
const PRIORITY = 0x2;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PUSH_PROMISE = 0x5;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;

const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

const ERROR_CODES = [
  'NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR',
  'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED',
];

/** "CANCEL", "NO_ERROR", or "0x1234" for codes the RFC does not name. */
export function errorCodeName(code: number): string {
  return ERROR_CODES[code] ?? `0x${code.toString(16)}`;
}

export interface FrameHeader {
  length: number;
  type: number;
  flags: number;
  streamId: number;
}

/** The 9-byte frame header at `pos` (the caller checked there are 9 bytes). */
export function readFrameHeader(b: Uint8Array, pos: number): FrameHeader {
  return {
    length: ((b[pos] ?? 0) << 16) | ((b[pos + 1] ?? 0) << 8) | (b[pos + 2] ?? 0),
    type: b[pos + 3] ?? 0,
    flags: b[pos + 4] ?? 0,
    streamId: (((b[pos + 5] ?? 0) & 0x7f) * 0x1000000) + (((b[pos + 6] ?? 0) << 16) | ((b[pos + 7] ?? 0) << 8) | (b[pos + 8] ?? 0)),
  };
}

/**
 * Whether bytes at the start of a direction (no preface) plausibly begin with an HTTP/2 frame:
 * a known type whose stream id suits it (SETTINGS/PING/GOAWAY on 0, the others not), and a
 * length within the default maximum frame size. Mid-connection detection only; never proof.
 */
export function looksLikeFrameStart(b: Uint8Array): boolean {
  if (b.length < 9) return false;
  const h = readFrameHeader(b, 0);
  if (h.type > CONTINUATION) return false;
  if ((b[5] ?? 0) & 0x80 && h.type !== DATA) return false;
  const connectionLevel = h.type === SETTINGS || h.type === PING || h.type === GOAWAY;
  if (connectionLevel !== (h.streamId === 0) && h.type !== WINDOW_UPDATE) return false;
  if (h.length > 16384) return false;
  if (h.type === SETTINGS && h.length % 6 !== 0) return false;
  if (h.type === PING && h.length !== 8) return false;
  if ((h.type === WINDOW_UPDATE && h.length !== 4) || (h.type === RST_STREAM && h.length !== 4) || (h.type === PRIORITY && h.length !== 5)) return false;
  return true;
}

/** Does the stream start with the client preface (as far as the bytes go)? */
export function prefaceMatches(b: Uint8Array): 'yes' | 'no' | 'maybe' {
  const n = Math.min(b.length, CONNECTION_PREFACE.length);
  for (let i = 0; i < n; i++) if (b[i] !== CONNECTION_PREFACE[i]) return 'no';
  return n === CONNECTION_PREFACE.length ? 'yes' : 'maybe';
}

export interface BodySink {
  push(bytes: Uint8Array, timestampMs: number): void;
  end(timestampMs: number): void;
}

export interface Http2Side {
  /** The first HEADERS' fields (the final response's for the server side; 1xx ones are in `informational`). */
  headers: HeaderField[];
  informational: HeaderField[][];
  trailers: HeaderField[] | undefined;
  /** Fields that referred to dynamic-table entries the trace never saw. */
  undecoded: UndecodedField[];
  /** HPACK errors met in this side's blocks. */
  hpackErrors: string[];
  /** The first `maxBodyBytes` of DATA (padding removed). */
  body: Uint8Array;
  bodyBytes: number;
  bodyTruncated: boolean;
  /** Frame bytes this side sent on the stream (headers and DATA frames, 9-byte headers included). */
  frameBytes: number;
  /** END_STREAM seen. */
  ended: boolean;
  firstAt: number | undefined;
  lastAt: number | undefined;
}

export type Http2End = 'complete' | 'reset' | 'goaway' | 'connection-closed' | 'bytes-lost' | 'evicted';

export interface Http2Exchange {
  version: '2';
  streamId: number;
  pushed: boolean;
  method: string | undefined;
  scheme: string | undefined;
  authority: string | undefined;
  path: string | undefined;
  /** undefined when no final response came (reset, refused, cut off). */
  status: number | undefined;
  requestDirection: Http2Direction;
  request: Http2Side;
  response: Http2Side;
  /** how the stream ended */
  end: Http2End;
  /** RST_STREAM's error code name, and which side sent it */
  reset: { code: string; by: 'client' | 'server' } | undefined;
  /** a GOAWAY that ended this stream, or that the connection had seen by then */
  goaway: { code: string; lastStreamId: number; debug: string; by: 'client' | 'server' } | undefined;
  /** request's first frame to response's first frame, ms (undefined without a response) */
  latencyMs: number | undefined;
  /** request's first frame to the stream's last frame, ms */
  durationMs: number;
  /** what this exchange lacks because the trace began mid-connection */
  midConnection: boolean;
}

export interface Http2Options {
  /** Body bytes kept per side of each stream (default 16 KiB); all are counted. */
  maxBodyBytes?: number;
  /** Non-DATA frames larger than this are skipped (default 256 KiB). */
  maxFrameBytes?: number;
  /** Open streams kept per connection (default 256). */
  maxStreams?: number;
  /** Decoded header bytes kept per block (default 64 KiB). */
  maxHeaderListBytes?: number;
  /** Called for each stream's side once its headers are known, to consume its DATA (gRPC). */
  bodySink?: (side: 'request' | 'response', headers: readonly HeaderField[], exchange: () => Http2Stream) => BodySink | undefined;
}

export interface Http2Stats {
  frames: number;
  exchanges: number;
  /** streams whose request the trace never saw */
  unmatchedStreams: number;
  evictedStreams: number;
  skippedFrames: number;
  hpackErrors: number;
  /** fields not decoded because the dynamic table was not seen */
  undecodedFields: number;
}

export type Http2State = 'h2' | 'not-h2' | 'closed';

interface Reader {
  /** 'preface': still checking the client preface; 'sniff': first bytes of a direction without one */
  phase: 'start' | 'preface' | 'header' | 'payload' | 'data' | 'skip' | 'stopped';
  header: Uint8Array;
  headerFill: number;
  frame: FrameHeader | undefined;
  payload: Uint8Array | undefined;
  payloadFill: number;
  remaining: number;
  /** DATA frame being streamed: padding still to come at its end, padding length byte pending */
  dataPadPending: boolean;
  dataPad: number;
  dataStream: Http2Stream | undefined;
  hpack: HpackDecoder;
  /** a header block being assembled (HEADERS/PUSH_PROMISE + CONTINUATION) */
  block: { streamId: number; type: number; flags: number; promised: number; parts: Uint8Array[]; bytes: number; frameBytes: number } | undefined;
  prefaceAt: number;
  started: boolean;
  /** the highest stream id this direction opened */
  lastOpened: number;
}

/** @internal state of one stream; exported for body sinks. */
export interface Http2Stream {
  id: number;
  pushed: boolean;
  sides: Record<Http2Direction, SideState>;
  firstHeadersFrom: Http2Direction | undefined;
  reset: { code: string; from: Http2Direction } | undefined;
  midConnection: boolean;
}

interface SideState extends Http2Side {
  headersSeen: boolean;
  finalSeen: boolean;
  sink: BodySink | undefined;
  bodyBuffer: Uint8Array | undefined;
}

const NONE: readonly Http2Exchange[] = Object.freeze([]);

export class Http2Connection {
  private readonly opts: Required<Omit<Http2Options, 'bodySink'>>;
  private readonly bodySink: Http2Options['bodySink'];
  private readonly readers: Record<Http2Direction, Reader>;
  private readonly streams = new Map<number, Http2Stream>();
  /** recently finished stream ids: late frames for them open nothing */
  private readonly closedIds = new Set<number>();
  private clientDirection: Http2Direction | undefined;
  private goaway: { code: string; lastStreamId: number; debug: string } | undefined;
  private goawayFrom: Http2Direction | undefined;
  private stopped: string | undefined;
  private closed = false;
  private now = 0;
  private out: Http2Exchange[] | undefined;
  private fromStart: boolean | undefined;
  readonly stats: Http2Stats = { frames: 0, exchanges: 0, unmatchedStreams: 0, evictedStreams: 0, skippedFrames: 0, hpackErrors: 0, undecodedFields: 0 };

  constructor(options: Http2Options = {}) {
    this.opts = {
      maxBodyBytes: options.maxBodyBytes ?? 16 * 1024,
      maxFrameBytes: options.maxFrameBytes ?? 256 * 1024,
      maxStreams: Math.max(1, options.maxStreams ?? 256),
      maxHeaderListBytes: options.maxHeaderListBytes ?? 64 * 1024,
    };
    this.bodySink = options.bodySink;
    this.readers = { outbound: this.newReader(), inbound: this.newReader() };
  }

  get state(): Http2State {
    if (this.closed) return 'closed';
    return this.stopped === undefined ? 'h2' : 'not-h2';
  }

  /** Why the bytes stopped being read as HTTP/2. */
  get reason(): string | undefined {
    return this.stopped;
  }

  /** Which direction carries the client's frames, once there was evidence. */
  get client(): Http2Direction | undefined {
    return this.clientDirection;
  }

  /** Streams open now. */
  get openStreams(): number {
    return this.streams.size;
  }

  push(direction: Http2Direction, bytes: Uint8Array, timestampMs: number): readonly Http2Exchange[] {
    if (this.stopped !== undefined || this.closed || bytes.length === 0) return NONE;
    this.now = timestampMs;
    this.out = undefined;
    try {
      this.consume(direction, this.readers[direction], bytes);
    } catch (e) {
      // a bug, not input: it must still not take the tracer down
      this.stop(`internal parser error: ${e instanceof Error ? e.message : String(e)}`);
    }
    return this.out ?? NONE;
  }

  /**
   * Bytes of a direction were lost (the ring was full): frames and HPACK can no longer be
   * followed. Open streams are reported as they stand and the connection stops being read.
   */
  gap(timestampMs: number): readonly Http2Exchange[] {
    if (this.closed || this.stopped !== undefined) return NONE;
    this.now = timestampMs;
    this.out = undefined;
    for (const s of [...this.streams.values()]) this.finish(s, 'bytes-lost');
    this.streams.clear();
    this.stop('bytes were lost (the ring buffer was full)');
    return this.out ?? NONE;
  }

  /** The connection closed (or the trace ends): every open stream is reported as it stands. */
  end(timestampMs: number): readonly Http2Exchange[] {
    if (this.closed) return NONE;
    this.now = timestampMs;
    this.out = undefined;
    for (const s of [...this.streams.values()]) this.finish(s, 'connection-closed');
    this.streams.clear();
    this.closed = true;
    return this.out ?? NONE;
  }

  // ---------------------------------------------------------------- bytes → frames

  private newReader(): Reader {
    return {
      phase: 'start', header: new Uint8Array(9), headerFill: 0, frame: undefined, payload: undefined, payloadFill: 0, remaining: 0,
      dataPadPending: false, dataPad: 0, dataStream: undefined,
      hpack: new HpackDecoder({ fromStart: false, maxHeaderListBytes: 64 * 1024 }), block: undefined, prefaceAt: 0, started: false, lastOpened: 0,
    };
  }

  private stop(reason: string): void {
    if (this.stopped !== undefined) return;
    this.stopped = reason;
    for (const r of Object.values(this.readers)) r.phase = 'stopped';
  }

  private consume(direction: Http2Direction, r: Reader, b: Uint8Array): void {
    let pos = 0;
    while (pos < b.length && this.stopped === undefined) {
      switch (r.phase) {
        case 'start': {
          // the first bytes of this direction: the preface, a frame (mid-connection or the server side), or not HTTP/2
          const m = prefaceMatches(b.subarray(pos));
          if (m !== 'no') {
            r.phase = 'preface';
            continue;
          }
          if (this.fromStart === undefined) {
            // the first bytes the connection shows are not a preface: the trace began after it
            if (!looksLikeFrameStart(b.subarray(pos))) return this.stop('the bytes are neither the HTTP/2 preface nor a frame');
            this.setFromStart(false);
          }
          r.phase = 'header';
          r.started = true;
          continue;
        }
        case 'preface': {
          const take = Math.min(CONNECTION_PREFACE.length - r.prefaceAt, b.length - pos);
          for (let i = 0; i < take; i++) {
            if (b[pos + i] !== CONNECTION_PREFACE[r.prefaceAt + i]) return this.stop('a broken HTTP/2 connection preface');
          }
          r.prefaceAt += take;
          pos += take;
          if (r.prefaceAt === CONNECTION_PREFACE.length) {
            this.setClient(direction);
            if (this.fromStart === undefined) this.setFromStart(true);
            r.phase = 'header';
            r.started = true;
          }
          continue;
        }
        case 'header': {
          const take = Math.min(9 - r.headerFill, b.length - pos);
          r.header.set(b.subarray(pos, pos + take), r.headerFill);
          r.headerFill += take;
          pos += take;
          if (r.headerFill < 9) continue;
          r.headerFill = 0;
          this.frameStart(direction, r, readFrameHeader(r.header, 0));
          continue;
        }
        case 'payload': {
          const take = Math.min(r.remaining, b.length - pos);
          r.payload?.set(b.subarray(pos, pos + take), r.payloadFill);
          r.payloadFill += take;
          r.remaining -= take;
          pos += take;
          if (r.remaining === 0) {
            const f = r.frame;
            const p = r.payload;
            r.payload = undefined;
            r.phase = 'header';
            if (f !== undefined && p !== undefined) this.frame(direction, r, f, p);
          }
          continue;
        }
        case 'data': {
          pos = this.dataBytes(direction, r, b, pos);
          continue;
        }
        case 'skip': {
          const take = Math.min(r.remaining, b.length - pos);
          r.remaining -= take;
          pos += take;
          if (r.remaining === 0) r.phase = 'header';
          continue;
        }
        case 'stopped':
          return;
      }
    }
  }

  private setFromStart(fromStart: boolean): void {
    this.fromStart = fromStart;
    for (const r of Object.values(this.readers)) {
      r.hpack = new HpackDecoder({ fromStart, maxHeaderListBytes: this.opts.maxHeaderListBytes });
    }
  }

  private frameStart(direction: Http2Direction, r: Reader, f: FrameHeader): void {
    this.stats.frames++;
    r.frame = f;
    if (r.block !== undefined && (f.type !== CONTINUATION || f.streamId !== r.block.streamId)) {
      // RFC 9113 §6.10: nothing may come between a header block's frames
      return this.stop(`a ${frameName(f.type)} frame inside a header block of stream ${r.block.streamId}`);
    }
    if (f.type === DATA) {
      if (f.streamId === 0) return this.stop('DATA on stream 0');
      r.phase = 'data';
      r.remaining = f.length;
      r.dataPadPending = (f.flags & FLAG_PADDED) !== 0;
      r.dataPad = 0;
      r.dataStream = this.streams.get(f.streamId);
      if (r.dataStream !== undefined) this.side(r.dataStream, direction).frameBytes += 9 + f.length;
      if (f.length === 0) this.dataEnd(direction, r);
      return;
    }
    if (f.length > this.opts.maxFrameBytes || f.type > CONTINUATION) {
      // too large to keep, or a type this parser does not know (ignored, RFC 9113 §4.1)
      if (f.type <= CONTINUATION) {
        this.stats.skippedFrames++;
        if (f.type === HEADERS || f.type === PUSH_PROMISE || f.type === CONTINUATION) {
          r.hpack = new HpackDecoder({ fromStart: false, maxHeaderListBytes: this.opts.maxHeaderListBytes });
          r.block = undefined;
        }
      }
      r.phase = f.length === 0 ? 'header' : 'skip';
      r.remaining = f.length;
      return;
    }
    r.payload = new Uint8Array(f.length);
    r.payloadFill = 0;
    r.remaining = f.length;
    r.phase = 'payload';
    if (f.length === 0) {
      r.phase = 'header';
      const p = r.payload;
      r.payload = undefined;
      this.frame(direction, r, f, p);
    }
  }

  /** DATA bytes as they come: padding length, data (to the stream), padding. */
  private dataBytes(direction: Http2Direction, r: Reader, b: Uint8Array, pos: number): number {
    const f = r.frame;
    if (f === undefined) return b.length;
    if (r.dataPadPending) {
      r.dataPad = b[pos] ?? 0;
      r.dataPadPending = false;
      r.remaining--;
      pos++;
      if (r.dataPad > r.remaining) {
        this.stop(`DATA padding of ${r.dataPad} in a frame of ${f.length}`);
        return b.length;
      }
    }
    const dataLeft = r.remaining - r.dataPad;
    const take = Math.min(Math.max(0, dataLeft), b.length - pos);
    if (take > 0 && r.dataStream !== undefined) this.body(r.dataStream, direction, b.subarray(pos, pos + take));
    pos += take;
    r.remaining -= take;
    const padTake = Math.min(r.remaining, b.length - pos);
    if (r.remaining <= r.dataPad) {
      r.remaining -= padTake;
      pos += padTake;
    }
    if (r.remaining === 0) this.dataEnd(direction, r);
    return pos;
  }

  private dataEnd(direction: Http2Direction, r: Reader): void {
    r.phase = 'header';
    const f = r.frame;
    const s = r.dataStream;
    r.dataStream = undefined;
    if (f !== undefined && s !== undefined && (f.flags & FLAG_END_STREAM) !== 0) this.sideEnded(s, direction);
  }

  private frame(direction: Http2Direction, r: Reader, f: FrameHeader, p: Uint8Array): void {
    switch (f.type) {
      case HEADERS:
      case PUSH_PROMISE:
        return this.headersFrame(direction, r, f, p);
      case CONTINUATION: {
        const blk = r.block;
        if (blk === undefined) return this.stop(`CONTINUATION on stream ${f.streamId} without a header block`);
        blk.parts.push(p);
        blk.bytes += p.length;
        blk.frameBytes += 9 + p.length;
        if (blk.bytes > this.opts.maxFrameBytes) {
          r.block = undefined;
          r.hpack = new HpackDecoder({ fromStart: false, maxHeaderListBytes: this.opts.maxHeaderListBytes });
          this.stats.skippedFrames++;
          return;
        }
        if ((f.flags & FLAG_END_HEADERS) !== 0) this.blockDone(direction, r);
        return;
      }
      case SETTINGS: {
        if (f.streamId !== 0 || p.length % 6 !== 0) return this.stop('a malformed SETTINGS frame');
        if ((f.flags & FLAG_ACK) !== 0) return;
        for (let i = 0; i + 6 <= p.length; i += 6) {
          const id = ((p[i] ?? 0) << 8) | (p[i + 1] ?? 0);
          const value = (((p[i + 2] ?? 0) << 24) >>> 0) + (((p[i + 3] ?? 0) << 16) | ((p[i + 4] ?? 0) << 8) | (p[i + 5] ?? 0));
          // HEADER_TABLE_SIZE bounds the table of what the *other* side encodes
          if (id === 1) this.readers[opposite(direction)].hpack.setSettingsMaxTableSize(value);
        }
        return;
      }
      case RST_STREAM: {
        if (p.length !== 4 || f.streamId === 0) return this.stop('a malformed RST_STREAM frame');
        const s = this.streams.get(f.streamId);
        if (s === undefined) return;
        s.reset = { code: errorCodeName(u32(p, 0)), from: direction };
        this.streams.delete(s.id);
        this.finish(s, 'reset');
        return;
      }
      case GOAWAY: {
        if (p.length < 8 || f.streamId !== 0) return this.stop('a malformed GOAWAY frame');
        const last = u32(p, 0) & 0x7fffffff;
        this.goaway = { code: errorCodeName(u32(p, 4)), lastStreamId: last, debug: printable(p.subarray(8, Math.min(p.length, 8 + 256))) };
        this.goawayFrom = direction;
        // streams the receiver opened above last-stream-id were not and will not be processed
        for (const s of [...this.streams.values()]) {
          if (s.id > last && s.firstHeadersFrom !== undefined && s.firstHeadersFrom !== direction) {
            this.streams.delete(s.id);
            this.finish(s, 'goaway');
          }
        }
        return;
      }
      case PRIORITY:
      case PING:
      case WINDOW_UPDATE:
        return;
    }
  }

  private headersFrame(direction: Http2Direction, r: Reader, f: FrameHeader, p: Uint8Array): void {
    if (f.streamId === 0) return this.stop(`${frameName(f.type)} on stream 0`);
    let start = 0;
    let end = p.length;
    if ((f.flags & FLAG_PADDED) !== 0) {
      const pad = p[0] ?? 0;
      start = 1;
      end -= pad;
    }
    let promised = 0;
    if (f.type === HEADERS && (f.flags & FLAG_PRIORITY) !== 0) start += 5;
    if (f.type === PUSH_PROMISE) {
      promised = u32(p, start) & 0x7fffffff;
      start += 4;
    }
    if (end < start) return this.stop(`${frameName(f.type)} padding longer than the frame`);
    r.block = { streamId: f.streamId, type: f.type, flags: f.flags, promised, parts: [p.subarray(start, end)], bytes: end - start, frameBytes: 9 + p.length };
    if ((f.flags & FLAG_END_HEADERS) !== 0) this.blockDone(direction, r);
  }

  private blockDone(direction: Http2Direction, r: Reader): void {
    const blk = r.block;
    r.block = undefined;
    if (blk === undefined) return;
    const bytes = blk.parts.length === 1 ? (blk.parts[0] ?? new Uint8Array(0)) : concat(blk.parts, blk.bytes);
    const result = r.hpack.decode(bytes);
    this.stats.undecodedFields += result.undecoded.length;
    if (!result.ok) this.stats.hpackErrors++;
    if (blk.type === PUSH_PROMISE) {
      // the sender is the server; the promised stream's request is these fields
      this.setClient(opposite(direction));
      const s = this.open(blk.promised, true, opposite(direction));
      if (s === undefined) return;
      const side = this.side(s, opposite(direction));
      this.takeHeaders(s, side, result, 'request');
      side.ended = true;
      side.frameBytes += blk.frameBytes;
      return;
    }
    let s = this.streams.get(blk.streamId);
    if (s === undefined && this.closedIds.has(blk.streamId)) return;
    if (s === undefined) {
      if (blk.streamId <= r.lastOpened) {
        // streams open in increasing order (RFC 9113 §5.1.1): this block is out of place
        this.stats.hpackErrors++;
        r.hpack = new HpackDecoder({ fromStart: false, maxHeaderListBytes: this.opts.maxHeaderListBytes });
        return;
      }
      r.lastOpened = blk.streamId;
      s = this.open(blk.streamId, false, direction);
      if (s === undefined) return;
    }
    // evidence of roles: a request carries :method, a response :status
    if (result.headers.some((h) => h.name === ':method')) this.setClient(direction);
    else if (result.headers.some((h) => h.name === ':status')) this.setClient(opposite(direction));
    const side = this.side(s, direction);
    side.frameBytes += blk.frameBytes;
    const role = this.roleOf(direction) ?? (s.firstHeadersFrom === direction ? 'client' : 'server');
    if (!result.ok) side.hpackErrors.push(result.error);
    const malformed = side.ended ? 'a header block after the end of the stream' : checkFields(result.headers, side.finalSeen ? 'trailers' : role === 'client' ? 'request' : 'response', result.undecoded.length > 0);
    if (malformed !== undefined) {
      // a block no endpoint sends: the bytes or the HPACK state are out of step with the
      // connection's; nothing decoded from this table can be trusted from here on
      side.hpackErrors.push(malformed);
      this.stats.hpackErrors++;
      r.hpack = new HpackDecoder({ fromStart: false, maxHeaderListBytes: this.opts.maxHeaderListBytes });
      return;
    }
    this.takeHeaders(s, side, result, role === 'client' ? 'request' : 'response');
    if ((blk.flags & FLAG_END_STREAM) !== 0) this.sideEnded(s, direction);
  }

  private takeHeaders(s: Http2Stream, side: SideState, result: ReturnType<HpackDecoder['decode']>, role: 'request' | 'response'): void {
    side.undecoded.push(...result.undecoded);
    if (side.firstAt === undefined) side.firstAt = this.now;
    side.lastAt = this.now;
    if (!side.finalSeen) {
      const status = Number(result.headers.find((h) => h.name === ':status')?.value);
      if (role === 'response' && status >= 100 && status < 200) {
        side.informational.push(result.headers);
        return;
      }
      side.headers = result.headers;
      side.headersSeen = true;
      side.finalSeen = true;
      if (this.bodySink !== undefined) side.sink = this.bodySink(role, result.headers, () => s);
      return;
    }
    side.trailers = result.headers;
  }

  // ---------------------------------------------------------------- streams

  private open(id: number, pushed: boolean, from: Http2Direction): Http2Stream | undefined {
    const known = this.streams.get(id);
    if (known !== undefined) return known;
    if (this.closedIds.has(id)) return undefined;
    while (this.streams.size >= this.opts.maxStreams) {
      const oldest = this.streams.values().next();
      if (oldest.done === true) break;
      this.streams.delete(oldest.value.id);
      this.stats.evictedStreams++;
      this.finish(oldest.value, 'evicted');
    }
    const s: Http2Stream = {
      id,
      pushed,
      sides: { outbound: newSide(), inbound: newSide() },
      firstHeadersFrom: from,
      reset: undefined,
      midConnection: this.fromStart === false,
    };
    this.streams.set(id, s);
    return s;
  }

  private side(s: Http2Stream, d: Http2Direction): SideState {
    return s.sides[d];
  }

  private body(s: Http2Stream, d: Http2Direction, bytes: Uint8Array): void {
    const side = this.side(s, d);
    side.bodyBytes += bytes.length;
    side.lastAt = this.now;
    side.firstAt ??= this.now;
    const room = this.opts.maxBodyBytes - (side.bodyBuffer === undefined ? 0 : side.body.length);
    if (bytes.length > room) side.bodyTruncated = true;
    const take = Math.min(room, bytes.length);
    if (take > 0) {
      const have = side.body.length;
      if (side.bodyBuffer === undefined || have + take > side.bodyBuffer.length) {
        const grown = new Uint8Array(Math.min(this.opts.maxBodyBytes, Math.max(have + take, 2 * have, 256)));
        grown.set(side.body);
        side.bodyBuffer = grown;
      }
      side.bodyBuffer.set(bytes.subarray(0, take), have);
      side.body = side.bodyBuffer.subarray(0, have + take);
    }
    side.sink?.push(bytes, this.now);
  }

  private sideEnded(s: Http2Stream, d: Http2Direction): void {
    const side = this.side(s, d);
    side.ended = true;
    side.lastAt = this.now;
    side.sink?.end(this.now);
    if (this.roleOf(d) === 'server' || (this.clientDirection === undefined && s.firstHeadersFrom !== d)) {
      this.streams.delete(s.id);
      this.finish(s, 'complete');
    }
  }

  private setClient(d: Http2Direction): void {
    this.clientDirection ??= d;
  }

  private roleOf(d: Http2Direction): 'client' | 'server' | undefined {
    if (this.clientDirection === undefined) return undefined;
    return d === this.clientDirection ? 'client' : 'server';
  }

  private finish(s: Http2Stream, how: Http2End): void {
    this.closedIds.add(s.id);
    if (this.closedIds.size > 1024) this.closedIds.delete(this.closedIds.values().next().value as number);
    const client = this.clientDirection;
    if (client === undefined) {
      // no evidence of which side is the client: reporting would be guessing
      this.stats.unmatchedStreams++;
      return;
    }
    const req = s.sides[client];
    const res = s.sides[opposite(client)];
    if (!req.headersSeen) {
      // the request came before the trace did: nothing to pair the response with
      this.stats.unmatchedStreams++;
      return;
    }
    for (const side of [req, res]) if (!side.ended) side.sink?.end(this.now);
    const pseudo = (name: string): string | undefined => req.headers.find((h) => h.name === name)?.value;
    const statusText = res.headers.find((h) => h.name === ':status')?.value;
    const status = statusText === undefined ? undefined : Number(statusText);
    const started = req.firstAt ?? this.now;
    const lastAt = Math.max(req.lastAt ?? started, res.lastAt ?? started, how === 'complete' ? 0 : this.now);
    this.stats.exchanges++;
    (this.out ??= []).push({
      version: '2',
      streamId: s.id,
      pushed: s.pushed,
      method: pseudo(':method'),
      scheme: pseudo(':scheme'),
      authority: pseudo(':authority') ?? req.headers.find((h) => h.name === 'host')?.value,
      path: pseudo(':path'),
      status: status !== undefined && Number.isInteger(status) ? status : undefined,
      requestDirection: client,
      request: publicSide(req),
      response: publicSide(res),
      end: how,
      reset: s.reset === undefined ? undefined : { code: s.reset.code, by: s.reset.from === client ? 'client' : 'server' },
      goaway: this.goaway === undefined ? undefined : { ...this.goaway, by: this.goawayFrom === client ? 'client' : 'server' },
      latencyMs: res.firstAt === undefined ? undefined : res.firstAt - started,
      durationMs: lastAt - started,
      midConnection: s.midConnection,
    });
  }
}

/**
 * RFC 9113 §8.3: pseudo-fields once each, before the others; a request has :method (and
 * :path unless CONNECT), a response :status, trailers none. Undecodable fields are not counted.
 */
function checkFields(fields: readonly HeaderField[], kind: 'request' | 'response' | 'trailers', someUndecoded: boolean): string | undefined {
  const seen = new Set<string>();
  let regular = false;
  for (const f of fields) {
    if (!f.name.startsWith(':')) {
      regular = true;
      continue;
    }
    if (regular) return `pseudo-field ${f.name} after a regular field`;
    if (seen.has(f.name)) return `pseudo-field ${f.name} twice`;
    seen.add(f.name);
    const allowed = kind === 'request' ? REQUEST_PSEUDO.has(f.name) : kind === 'response' ? f.name === ':status' : false;
    if (!allowed) return `pseudo-field ${f.name} in ${kind === 'trailers' ? 'trailers' : `a ${kind}`}`;
  }
  if (someUndecoded) return undefined; // a missing field may be among those
  if (kind === 'request' && (!seen.has(':method') || (!seen.has(':path') && fields.find((f) => f.name === ':method')?.value !== 'CONNECT'))) return 'a request without :method or :path';
  if (kind === 'response' && !seen.has(':status')) return 'a response without :status';
  return undefined;
}

const REQUEST_PSEUDO = new Set([':method', ':scheme', ':authority', ':path', ':protocol']);

function newSide(): SideState {
  return {
    headers: [], informational: [], trailers: undefined, undecoded: [], hpackErrors: [], body: new Uint8Array(0), bodyBytes: 0, bodyTruncated: false,
    frameBytes: 0, ended: false, firstAt: undefined, lastAt: undefined, headersSeen: false, finalSeen: false, sink: undefined, bodyBuffer: undefined,
  };
}

function publicSide(s: SideState): Http2Side {
  return {
    headers: s.headers, informational: s.informational, trailers: s.trailers, undecoded: s.undecoded, hpackErrors: s.hpackErrors,
    body: s.body.slice(), bodyBytes: s.bodyBytes, bodyTruncated: s.bodyTruncated, frameBytes: s.frameBytes, ended: s.ended, firstAt: s.firstAt, lastAt: s.lastAt,
  };
}

function opposite(d: Http2Direction): Http2Direction {
  return d === 'outbound' ? 'inbound' : 'outbound';
}

function u32(b: Uint8Array, pos: number): number {
  return (((b[pos] ?? 0) << 24) >>> 0) + (((b[pos + 1] ?? 0) << 16) | ((b[pos + 2] ?? 0) << 8) | (b[pos + 3] ?? 0));
}

function frameName(type: number): string {
  return FRAME_TYPES[type] ?? `type 0x${type.toString(16)}`;
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function printable(b: Uint8Array): string {
  return Array.from(b, (c) => (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '.')).join('');
}
