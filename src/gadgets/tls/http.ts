// SPDX-License-Identifier: Apache-2.0
/**
 * `trace tls --http`: the plaintext events turned into request/response exchanges, per
 * connection, for HTTP/1.x and HTTP/2 (with gRPC on top), on the client and the server side.
 *
 * The protocol is chosen per connection from its first bytes: the HTTP/2 connection preface
 * (or, for a trace begun mid-connection, bytes that read as an HTTP/2 frame) means h2, anything
 * else is given to the HTTP/1 parser (which says `not-http` for what it cannot read). ALPN is
 * not seen: the uprobes see plaintext after the handshake.
 *
 * A connection is the TLS session pointer *and* its socket's 4-tuple within a process: node
 * (and any allocator) reuses an SSL* for a later connection, which must start a new parser
 * rather than continue the old one. A connection ends — its open exchanges reported as they
 * stand, close-delimited HTTP/1 responses completed — when its session pointer shows up with a
 * new tuple, when its process is gone, and when the trace ends (`flush`).
 */
import type { CommonEvent } from '../../fields/common.js';
import { HttpPairer, type HttpExchange } from '../../protocols/http1-pairer.js';
import { Http2Connection, looksLikeFrameStart, prefaceMatches, type Http2Exchange } from '../../protocols/http2.js';
import { GrpcMessageReader, grpcCallOf, grpcStatusOf, isGrpc } from '../../protocols/grpc.js';
import { decodeProtobuf, formatProtobuf } from '../../protocols/protobuf-wire.js';
import type { HeaderField } from '../../protocols/hpack.js';
import type { Redactor } from '../../protocols/redact.js';
import { processAlive } from '../../proc/process.js';
import type { TlsSource } from './decode.js';
import type { TlsEvent } from './gadget.js';

export interface GrpcInfo {
  service: string;
  method: string;
  /** grpc-status, when the trailers came */
  status: number | undefined;
  statusName: string | undefined;
  message: string | undefined;
  requestMessages: number;
  responseMessages: number;
  /** the messages, decoded generically (or by --proto), one line each */
  requestText: string[];
  responseText: string[];
}

export interface TlsHttpEvent extends CommonEvent {
  kind: 'http';
  source: TlsSource;
  library: string | undefined;
  /** client: this process sent the request; server: it answered */
  role: 'client' | 'server';
  /** "1.1", "1.0", "2" */
  version: string;
  method: string | undefined;
  path: string | undefined;
  host: string | undefined;
  /** undefined when no response came (reset, cut off) */
  status: number | undefined;
  reason: string;
  /** request's first byte to response's first byte, ms */
  latencyMs: number | undefined;
  /** request's first byte to response's last byte, ms */
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
  /** complete, or how it ended otherwise: cut-off, reset, goaway, connection-closed, bytes-lost, evicted */
  end: string;
  /** what else is worth knowing: reset code, GOAWAY, fields that could not be decoded */
  note: string | undefined;
  requestHeaders: readonly HeaderField[];
  responseHeaders: readonly HeaderField[];
  /** the start of each body (16 KiB), and how many body bytes there were */
  requestBody: Uint8Array;
  responseBody: Uint8Array;
  requestBodyBytes: number;
  responseBodyBytes: number;
  bodyTruncated: boolean;
  grpc: GrpcInfo | undefined;
  /** client and server endpoints */
  client: string | undefined;
  server: string | undefined;
  conn: string;
  /**
   * The raw calls of its connection since the exchange before it, as `trace tls -w` writes them
   * (masked when --redact masks raw data); only when the pairing was asked to keep them.
   */
  calls?: readonly TlsEvent[];
}

export interface HttpPairingStats {
  exchanges: number;
  http2Exchanges: number;
  unmatchedResponses: number;
  notHttpStreams: number;
  /** connections ended because their session pointer came back with a new socket */
  reusedSessions: number;
  /** exchanges reported at a connection's end or the trace's, not complete */
  incomplete: number;
  /** with keepCalls: calls forgotten because their connection held too many without an exchange */
  callsNotKept: number;
  /** header values (trailers included) the redactor masked in the exchanges */
  maskedHeaders: number;
}

export interface TlsHttpOptions {
  redactor?: Redactor;
  /** decodes a gRPC message with the .proto files given (`--proto`); else generic protobuf */
  describeMessage?: (service: string, method: string, side: 'request' | 'response', bytes: Uint8Array) => string | undefined;
  /** connections kept (default 4096) */
  maxConnections?: number;
  /** how often dead processes' connections are ended (default 1000 ms) */
  sweepMs?: number;
  /**
   * Whether a process still runs (default: its /proc entry on this host). A reader of another
   * host's events (kubectl tlscope ui) cannot tell: \`() => true\`, and their connections end
   * only on a new tuple, eviction or flush.
   */
  processAlive?: (pid: number) => boolean;
  /**
   * Keep each connection's raw calls and hand them out with the next exchange made on it
   * (TlsHttpEvent.calls), each through `view` first (the raw masking). A connection's calls
   * after its last exchange (or of a stream that is not HTTP) are never handed out.
   */
  keepCalls?: { view(e: TlsEvent): TlsEvent; maxPerConnection?: number };
}

interface Conn {
  key: string;
  /** pid:SSL* */
  session: string;
  tuple: string | undefined;
  proto: 'h1' | 'h2' | undefined;
  h2: Http2Connection | undefined;
  grpc: Map<number, { request?: GrpcMessageReader; response?: GrpcMessageReader }>;
  last: TlsEvent;
  lastMs: number;
  /** with keepCalls: its calls since its latest exchange */
  calls: TlsEvent[];
}

export class TlsHttp {
  private readonly pairer: HttpPairer<string>;
  private readonly conns = new Map<string, Conn>();
  /** pid:SSL* → the key of its current connection */
  private readonly sessions = new Map<string, string>();
  private readonly opts: TlsHttpOptions;
  private readonly maxConnections: number;
  private lastSweep = 0;
  private readonly counts = { reusedSessions: 0, incomplete: 0, h2: 0, h1: 0, callsNotKept: 0, maskedHeaders: 0 };

  constructor(opts: TlsHttpOptions = {}) {
    this.opts = opts;
    this.maxConnections = opts.maxConnections ?? 4096;
    this.pairer = new HttpPairer<string>({ maxConnections: this.maxConnections });
  }

  process(batch: readonly TlsEvent[]): TlsHttpEvent[] {
    const out: TlsHttpEvent[] = [];
    for (const e of batch) {
      const ms = Number(e.monotonicNs) / 1e6;
      const conn = this.connectionOf(e, ms, out);
      conn.last = e;
      conn.lastMs = ms;
      if (this.opts.keepCalls !== undefined) this.keep(conn, e, this.opts.keepCalls);
      const direction = e.direction === 'write' ? 'outbound' : 'inbound';
      if (conn.proto === undefined) conn.proto = sniff(e.data);
      if (conn.proto === 'h2') {
        const h2 = (conn.h2 ??= this.newH2(conn));
        if (e.lostBytes > 0) for (const x of h2.gap(ms)) out.push(this.fromH2(x, conn));
        else for (const x of h2.push(direction, e.data, ms)) out.push(this.fromH2(x, conn));
      } else {
        for (const x of this.pairer.push(conn.key, direction, e.data, ms)) out.push(this.fromH1(x, conn));
      }
    }
    const now = batch.length > 0 ? Number(batch[batch.length - 1]?.monotonicNs ?? 0n) / 1e6 : 0;
    if (now - this.lastSweep >= (this.opts.sweepMs ?? 1000)) {
      this.lastSweep = now;
      this.sweepDeadProcesses(now, out);
    }
    return out;
  }

  private keep(conn: Conn, e: TlsEvent, k: NonNullable<TlsHttpOptions['keepCalls']>): void {
    conn.calls.push(k.view(e));
    // a stream that never completes an exchange (not HTTP, one endless response) must not grow without bound
    if (conn.calls.length > (k.maxPerConnection ?? 4096)) {
      conn.calls.shift();
      this.counts.callsNotKept++;
    }
  }

  /** Header fields through the redactor (if any), counted. */
  private masked<H extends HeaderField>(hs: readonly H[]): readonly H[] {
    const r = this.opts.redactor;
    if (r === undefined) return hs;
    const out = r.headers(hs);
    for (let i = 0; i < out.length; i++) if (out[i] !== hs[i]) this.counts.maskedHeaders++;
    return out;
  }

  /** The calls kept on a connection so far, handed to the exchange being made (and forgotten). */
  private takeCalls(c: Conn): Pick<TlsHttpEvent, 'calls'> {
    if (this.opts.keepCalls === undefined) return {};
    const calls = c.calls;
    c.calls = [];
    return { calls };
  }

  /** The trace ends: every connection's open exchanges, as they stand. */
  flush(): TlsHttpEvent[] {
    const out: TlsHttpEvent[] = [];
    for (const c of [...this.conns.values()]) this.endConnection(c, c.lastMs, out);
    return out;
  }

  get stats(): HttpPairingStats {
    const s = this.pairer.stats;
    return {
      exchanges: this.counts.h1 + this.counts.h2,
      http2Exchanges: this.counts.h2,
      unmatchedResponses: s.unmatchedResponses,
      notHttpStreams: s.notHttpStreams,
      reusedSessions: this.counts.reusedSessions,
      incomplete: this.counts.incomplete,
      callsNotKept: this.counts.callsNotKept,
      maskedHeaders: this.counts.maskedHeaders,
    };
  }

  private connectionOf(e: TlsEvent, ms: number, out: TlsHttpEvent[]): Conn {
    const session = `${e.proc.pid}:${e.conn}`;
    const tuple = e.local === undefined || e.remote === undefined ? undefined : `${e.local}>${e.remote}`;
    const currentKey = this.sessions.get(session);
    let conn = currentKey === undefined ? undefined : this.conns.get(currentKey);
    if (conn !== undefined && tuple !== undefined && conn.tuple !== undefined && conn.tuple !== tuple) {
      // the session pointer now belongs to another connection: the old one has closed
      this.counts.reusedSessions++;
      this.endConnection(conn, ms, out);
      conn = undefined;
    }
    if (conn === undefined) {
      while (this.conns.size >= this.maxConnections) {
        const oldest = this.conns.values().next();
        if (oldest.done === true) break;
        this.endConnection(oldest.value, ms, out);
      }
      const key = `${session}:${tuple ?? '?'}:${ms}`;
      conn = { key, session, tuple, proto: undefined, h2: undefined, grpc: new Map(), last: e, lastMs: ms, calls: [] };
      this.conns.set(key, conn);
      this.sessions.set(session, key);
    } else {
      conn.tuple ??= tuple;
      // least recently used last
      this.conns.delete(conn.key);
      this.conns.set(conn.key, conn);
    }
    return conn;
  }

  private endConnection(c: Conn, ms: number, out: TlsHttpEvent[]): void {
    this.conns.delete(c.key);
    if (this.sessions.get(c.session) === c.key) this.sessions.delete(c.session);
    if (c.proto === 'h2') {
      for (const x of c.h2?.end(ms) ?? []) out.push(this.fromH2(x, c));
    } else {
      for (const x of this.pairer.end(c.key, ms)) out.push(this.fromH1(x, c));
    }
  }

  private sweepDeadProcesses(now: number, out: TlsHttpEvent[]): void {
    const dead = new Map<number, boolean>();
    for (const c of [...this.conns.values()]) {
      if (now - c.lastMs < 500) continue;
      const pid = c.last.proc.pid;
      let gone = dead.get(pid);
      if (gone === undefined) dead.set(pid, (gone = !(this.opts.processAlive ?? processAlive)(pid)));
      if (gone) this.endConnection(c, c.lastMs, out);
    }
  }

  private newH2(conn: Conn): Http2Connection {
    return new Http2Connection({
      bodySink: (side, headers, stream) => {
        if (!isGrpc(headers)) return undefined;
        const id = stream().id;
        const r = new GrpcMessageReader(headers);
        const g = conn.grpc.get(id) ?? {};
        g[side] = r;
        conn.grpc.set(id, g);
        if (conn.grpc.size > 1024) conn.grpc.delete(conn.grpc.keys().next().value as number);
        return r;
      },
    });
  }

  private fromH1(x: HttpExchange, c: Conn): TlsHttpEvent {
    const e = c.last;
    const client = x.requestDirection === 'outbound';
    const complete = x.response.complete;
    this.counts.h1++;
    if (!complete) this.counts.incomplete++;
    const r = this.opts.redactor;
    const reqHeaders = x.request?.headers ?? [];
    return {
      ...this.common(e, client),
      version: x.response.version,
      method: x.method,
      path: x.path,
      host: x.host,
      status: x.status,
      reason: x.reason,
      latencyMs: round3(x.latencyMs),
      durationMs: round3(x.durationMs),
      requestBytes: x.requestBytes,
      responseBytes: x.responseBytes,
      end: complete ? 'complete' : 'cut-off',
      note: complete ? undefined : `the connection ended after ${x.response.bodyBytes} body bytes of the response`,
      requestHeaders: this.masked(reqHeaders),
      responseHeaders: this.masked(x.response.headers),
      requestBody: redactBody(r, x.request?.body ?? new Uint8Array(0)),
      responseBody: redactBody(r, x.response.body),
      requestBodyBytes: x.request?.bodyBytes ?? 0,
      responseBodyBytes: x.response.bodyBytes,
      bodyTruncated: x.response.bodyTruncated || (x.request?.bodyTruncated ?? false),
      grpc: undefined,
      ...this.takeCalls(c),
    };
  }

  private fromH2(x: Http2Exchange, c: Conn): TlsHttpEvent {
    const e = c.last;
    const client = x.requestDirection === 'outbound';
    this.counts.h2++;
    if (x.end !== 'complete') this.counts.incomplete++;
    const r = this.opts.redactor;
    const notes: string[] = [];
    if (x.reset !== undefined) notes.push(`RST_STREAM ${x.reset.code} from the ${x.reset.by}`);
    if (x.goaway !== undefined && (x.end === 'goaway' || x.goaway.code !== 'NO_ERROR')) notes.push(`GOAWAY ${x.goaway.code} from the ${x.goaway.by} (last stream ${x.goaway.lastStreamId}${x.goaway.debug ? `: ${x.goaway.debug}` : ''})`);
    const undecoded = x.request.undecoded.length + x.response.undecoded.length;
    if (undecoded > 0) notes.push(`${undecoded} header field${undecoded === 1 ? '' : 's'} not decoded: the trace began mid-connection (HPACK dynamic table not seen; indexes ${[...x.request.undecoded, ...x.response.undecoded].map((u) => u.index).join(',')})`);
    const errs = [...x.request.hpackErrors, ...x.response.hpackErrors];
    if (errs.length > 0) notes.push(`HPACK: ${errs[0]}`);
    const call = grpcCallOf(x.path);
    let grpc: GrpcInfo | undefined;
    const g = c.grpc.get(x.streamId);
    c.grpc.delete(x.streamId);
    if (call !== undefined && (g !== undefined || isGrpc(x.request.headers))) {
      const st = grpcStatusOf(x.response.trailers, x.response.headers);
      const describe = (side: 'request' | 'response', reader: GrpcMessageReader | undefined): string[] =>
        (reader?.messages ?? []).map((m) => {
          if (m.error !== undefined) return `<${m.error}>`;
          const named = this.opts.describeMessage?.(call.service, call.method, side, m.data);
          if (named !== undefined) return named + (m.truncated ? ' …' : '');
          const pb = decodeProtobuf(m.data);
          return (pb === undefined ? `0x${Buffer.from(m.data).toString('hex')}` : formatProtobuf(pb)) + (m.truncated ? ' …' : '');
        });
      grpc = {
        service: call.service,
        method: call.method,
        status: st?.code,
        statusName: st?.name,
        message: st?.message,
        requestMessages: g?.request?.count ?? 0,
        responseMessages: g?.response?.count ?? 0,
        requestText: describe('request', g?.request),
        responseText: describe('response', g?.response),
      };
    }
    const responseHeaders = x.response.trailers === undefined ? x.response.headers : [...x.response.headers, ...x.response.trailers];
    return {
      ...this.common(e, client),
      version: '2',
      method: x.method,
      path: x.path,
      host: x.authority,
      status: x.status,
      reason: '',
      latencyMs: x.latencyMs === undefined ? undefined : round3(x.latencyMs),
      durationMs: round3(x.durationMs),
      requestBytes: x.request.frameBytes,
      responseBytes: x.response.frameBytes,
      end: x.end,
      note: notes.length === 0 ? undefined : notes.join('; '),
      requestHeaders: this.masked(x.request.headers),
      responseHeaders: this.masked(responseHeaders),
      requestBody: redactBody(r, x.request.body),
      responseBody: redactBody(r, x.response.body),
      requestBodyBytes: x.request.bodyBytes,
      responseBodyBytes: x.response.bodyBytes,
      bodyTruncated: x.request.bodyTruncated || x.response.bodyTruncated,
      grpc,
      ...this.takeCalls(c),
    };
  }

  private common(e: TlsEvent, client: boolean): Pick<TlsHttpEvent, 'kind' | 'timestamp' | 'proc' | 'source' | 'library' | 'role' | 'client' | 'server' | 'conn'> & Partial<CommonEvent> {
    return {
      kind: 'http',
      timestamp: e.timestamp,
      proc: e.proc,
      ...(e.runtime === undefined ? {} : { runtime: e.runtime }),
      ...(e.k8s === undefined ? {} : { k8s: e.k8s }),
      source: e.source,
      library: e.library,
      role: client ? 'client' : 'server',
      client: client ? e.local : e.remote,
      server: client ? e.remote : e.local,
      conn: e.conn,
    };
  }
}

/** h2 by the preface (or a frame, mid-connection); else HTTP/1. */
function sniff(b: Uint8Array): 'h1' | 'h2' {
  if (prefaceMatches(b) !== 'no') return 'h2';
  return looksLikeFrameStart(b) ? 'h2' : 'h1';
}

function redactBody(r: Redactor | undefined, b: Uint8Array): Uint8Array {
  return r === undefined ? b : r.body(b);
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}
