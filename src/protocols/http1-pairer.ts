// SPDX-License-Identifier: Apache-2.0
/**
 * Pairs HTTP/1.x requests with their responses per connection, for `trace tls --http`.
 *
 * The caller feeds both directions of each connection as seen by the traced process
 * ('outbound': what it wrote, 'inbound': what it read) with its own timestamps. Which side
 * carries requests is detected from the first bytes (a stream starting with "HTTP/" carries
 * responses), so clients and servers alike work. Responses answer requests in order (FIFO,
 * which is what HTTP/1.1 pipelining guarantees); interim 1xx responses are skipped; after a
 * 101 or a CONNECT tunnel both directions stop being parsed.
 *
 * Bounded: at most `maxConnections` connections (least recently used evicted), at most
 * `maxPendingRequests` unanswered requests per connection (oldest dropped), and the parser's
 * own head and body limits. Every loss is counted in `stats`.
 */
import { Http1Parser, type HeadInfo, type Http1Head, type Http1Message, type Http1Request, type Http1Response, type HttpHeader } from './http1.js';

export type HttpDirection = 'outbound' | 'inbound';

export interface HttpExchange {
  method: string;
  /** Path and query ("/a?b"); for absolute-form targets the path part; authority-form and "*" as sent. */
  path: string;
  /** The Host header, else the authority of an absolute-form target (or of a CONNECT). */
  host: string | undefined;
  status: number;
  reason: string;
  /** Which direction carried the request. */
  requestDirection: HttpDirection;
  /** Wire bytes of the request (head + body); only the head's when it was still arriving. */
  requestBytes: number;
  requestComplete: boolean;
  /** Wire bytes of the response (head + body). */
  responseBytes: number;
  /** From the request's first byte to the response's first byte, by the caller's timestamps. */
  latencyMs: number;
  /** From the request's first byte to the response's last byte. */
  durationMs: number;
  /** The whole request (undefined if the response completed first) and response, with headers and captured bodies. */
  request: Http1Request | undefined;
  response: Http1Response;
}

export interface HttpPairerOptions {
  /** Default 1024. */
  maxConnections?: number;
  /** Unanswered requests kept per connection (default 64). */
  maxPendingRequests?: number;
  /** Per-message head limit (default 64 KiB). */
  maxHeaderBytes?: number;
  /** Body bytes kept per message (default 16 KiB); all are counted. */
  maxBodyBytes?: number;
}

export interface HttpPairerStats {
  exchanges: number;
  /** Final responses with no request waiting (the capture began mid-connection). */
  unmatchedResponses: number;
  /** Requests dropped unanswered because too many were pending. */
  droppedRequests: number;
  /** Directions that turned out not to be HTTP/1 (TLS to something else, HTTP/2, garbage). */
  notHttpStreams: number;
  evictedConnections: number;
}

interface PendingRequest {
  head: Extract<Http1Head, { kind: 'request' }>;
  info: HeadInfo;
  message: Http1Request | undefined;
}

interface Connection {
  parsers: Record<HttpDirection, Http1Parser>;
  /** Requests sent in each direction, waiting for their response from the other. */
  pending: Record<HttpDirection, PendingRequest[]>;
  /** Requests whose head came but whose message has not completed yet, oldest first. */
  awaitingMessage: Record<HttpDirection, PendingRequest[]>;
  notHttpCounted: Record<HttpDirection, boolean>;
}

const NO_EXCHANGES: readonly HttpExchange[] = Object.freeze([]);

export class HttpPairer<K = string> {
  private readonly connections = new Map<K, Connection>();
  private readonly options: Required<HttpPairerOptions>;
  readonly stats: HttpPairerStats = { exchanges: 0, unmatchedResponses: 0, droppedRequests: 0, notHttpStreams: 0, evictedConnections: 0 };

  constructor(options: HttpPairerOptions = {}) {
    this.options = {
      maxConnections: Math.max(1, options.maxConnections ?? 1024),
      maxPendingRequests: Math.max(1, options.maxPendingRequests ?? 64),
      maxHeaderBytes: options.maxHeaderBytes ?? 64 * 1024,
      maxBodyBytes: options.maxBodyBytes ?? 16 * 1024,
    };
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Feeds bytes of one direction of a connection; returns the exchanges they completed. */
  push(connection: K, direction: HttpDirection, bytes: Uint8Array, timestampMs: number): readonly HttpExchange[] {
    const conn = this.touch(connection);
    const messages = conn.parsers[direction].push(bytes, timestampMs);
    const exchanges = this.collect(conn, direction, messages);
    this.countNotHttp(conn, direction);
    return exchanges;
  }

  /** The connection closed: completes close-delimited responses and forgets it. */
  end(connection: K, timestampMs: number): readonly HttpExchange[] {
    const conn = this.connections.get(connection);
    if (conn === undefined) return NO_EXCHANGES;
    this.connections.delete(connection);
    const out: HttpExchange[] = [];
    for (const direction of ['outbound', 'inbound'] as const) {
      out.push(...this.collect(conn, direction, conn.parsers[direction].end(timestampMs)));
    }
    return out;
  }

  private touch(key: K): Connection {
    let conn = this.connections.get(key);
    if (conn !== undefined) {
      this.connections.delete(key);
    } else {
      this.evictIfFull();
      conn = this.newConnection();
    }
    this.connections.set(key, conn);
    return conn;
  }

  private evictIfFull(): void {
    while (this.connections.size >= this.options.maxConnections) {
      const oldest = this.connections.keys().next();
      if (oldest.done === true) return;
      this.connections.delete(oldest.value);
      this.stats.evictedConnections++;
    }
  }

  private newConnection(): Connection {
    // The parsers report heads back to their connection, which exists by the time they push.
    let conn: Connection | undefined;
    const parser = (direction: HttpDirection): Http1Parser =>
      new Http1Parser({
        mode: 'auto',
        maxHeaderBytes: this.options.maxHeaderBytes,
        maxBodyBytes: this.options.maxBodyBytes,
        onHead: (head, info) => {
          if (conn !== undefined) this.onHead(conn, direction, head, info);
        },
      });
    conn = {
      parsers: { outbound: parser('outbound'), inbound: parser('inbound') },
      pending: { outbound: [], inbound: [] },
      awaitingMessage: { outbound: [], inbound: [] },
      notHttpCounted: { outbound: false, inbound: false },
    };
    return conn;
  }

  /** A request head: queue it, and tell the other direction how to frame its response. */
  private onHead(conn: Connection, direction: HttpDirection, head: Http1Head, info: HeadInfo): void {
    if (head.kind !== 'request') return;
    const entry: PendingRequest = { head, info, message: undefined };
    const queue = conn.pending[direction];
    if (queue.length >= this.options.maxPendingRequests) {
      queue.shift();
      this.stats.droppedRequests++;
    }
    queue.push(entry);
    // Heads are reported during a push, messages after it: several may wait in one pipelined push.
    const awaiting = conn.awaitingMessage[direction];
    if (awaiting.length >= this.options.maxPendingRequests) awaiting.shift();
    awaiting.push(entry);
    conn.parsers[opposite(direction)].expectResponseTo(head.method);
  }

  private collect(conn: Connection, direction: HttpDirection, messages: readonly Http1Message[]): readonly HttpExchange[] {
    let out: HttpExchange[] | undefined;
    for (const message of messages) {
      if (message.kind === 'request') {
        const entry = conn.awaitingMessage[direction].shift();
        if (entry !== undefined) entry.message = message;
        continue;
      }
      const exchange = this.answer(conn, direction, message);
      if (exchange !== undefined) (out ??= []).push(exchange);
    }
    return out ?? NO_EXCHANGES;
  }

  /** A response arrived on `direction`: it answers the oldest request sent the other way. */
  private answer(conn: Connection, direction: HttpDirection, response: Http1Response): HttpExchange | undefined {
    if (response.status < 200 && response.status !== 101) return undefined;
    const requestDirection = opposite(direction);
    const entry = conn.pending[requestDirection].shift();
    if (entry === undefined) {
      this.stats.unmatchedResponses++;
      return undefined;
    }
    if (conn.parsers[direction].state === 'tunnel') conn.parsers[requestDirection].switchToTunnel();
    this.stats.exchanges++;
    return exchangeOf(entry, requestDirection, response);
  }

  private countNotHttp(conn: Connection, direction: HttpDirection): void {
    if (conn.notHttpCounted[direction] || conn.parsers[direction].state !== 'not-http') return;
    conn.notHttpCounted[direction] = true;
    this.stats.notHttpStreams++;
  }
}

function exchangeOf(entry: PendingRequest, requestDirection: HttpDirection, response: Http1Response): HttpExchange {
  const { head, info, message } = entry;
  const target = splitTarget(head.target);
  return {
    method: head.method,
    path: target.path,
    host: headerValue(head.headers, 'host') ?? target.authority ?? (head.method === 'CONNECT' ? head.target : undefined),
    status: response.status,
    reason: response.reason,
    requestDirection,
    requestBytes: message?.totalBytes ?? info.headerBytes,
    requestComplete: message?.complete ?? false,
    responseBytes: response.totalBytes,
    latencyMs: response.startedAt - info.startedAt,
    durationMs: response.completedAt - info.startedAt,
    request: message,
    response,
  };
}

function opposite(direction: HttpDirection): HttpDirection {
  return direction === 'outbound' ? 'inbound' : 'outbound';
}

function headerValue(headers: readonly HttpHeader[], lowerName: string): string | undefined {
  for (const h of headers) if (h.name.length === lowerName.length && h.name.toLowerCase() === lowerName) return h.value;
  return undefined;
}

/** Absolute-form "http://host:port/p?q" → authority and "/p?q"; other forms keep the target as the path. */
function splitTarget(target: string): { path: string; authority: string | undefined } {
  const scheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.exec(target);
  if (scheme === null) return { path: target, authority: undefined };
  const rest = target.slice(scheme[0].length);
  const slash = rest.search(/[/?]/);
  if (slash < 0) return { path: '/', authority: rest };
  const path = rest.slice(slash);
  return { path: path.startsWith('?') ? `/${path}` : path, authority: rest.slice(0, slash) };
}
