// SPDX-License-Identifier: Apache-2.0
/**
 * Session events → table entries. The table's columns are the same for every gadget; what
 * differs goes in `summary` and in the detail. The `json` of an entry is the `-o json` object
 * (toJsonObject), less the captured data, which the detail carries.
 *
 * TLS plaintext calls on connections that speak HTTP/1 are paired into exchanges (one row per
 * request and response, with the calls it was read from in its detail); calls on other
 * connections are rows of their own.
 */
import type { CommonEvent } from '../fields/common.js';
import type { Field } from '../fields/field.js';
import type { TlsEvent } from '../gadgets/tls/gadget.js';
import { TlsHttp, type TlsHttpEvent } from '../gadgets/tls/http.js';
import type { Redactor } from '../protocols/redact.js';
import { preview } from '../gadgets/tls/fields.js';
import { toJsonObject } from '../output/json.js';
import { looksLikeFrameStart, prefaceMatches } from '../protocols/http2.js';
import type { Http1Request, Http1Response } from '../protocols/http1.js';
import type { Entry, EntryDetail, EntryKind, UiChunk, UiMessage } from './protocol.js';

export interface PendingEntry {
  entry: Omit<Entry, 'seq'>;
  detail: EntryDetail;
  bytes: number;
}

/** Raw calls kept per HTTP connection until its next exchange, and bytes kept per call. */
const CHUNKS_PER_EXCHANGE = 16;
const CHUNK_BYTES = 64 * 1024;
const HTTP_CONNECTIONS = 4096;

const HTTP_START = /^(?:(?:GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE) \S+ HTTP\/1\.[01]\r?\n|HTTP\/1\.[01] \d{3})/;

/** Whether a connection's first plaintext is HTTP/1 or HTTP/2 (its preface, or a frame mid-connection): the pairing's choice. */
function speaksHttp(data: Uint8Array): boolean {
  if (HTTP_START.test(Buffer.from(data.subarray(0, 64)).toString('latin1'))) return true;
  const p = prefaceMatches(data);
  return p !== 'no' || looksLikeFrameStart(data);
}

function b64(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
}

function isTlsData(e: CommonEvent): e is TlsEvent {
  const x = e as Partial<TlsEvent>;
  return x.kind === 'data' && x.data instanceof Uint8Array;
}

function isTlsHttp(e: CommonEvent): e is TlsHttpEvent {
  return (e as Partial<TlsHttpEvent>).kind === 'http';
}

function message(m: Http1Request | Http1Response | undefined): UiMessage | undefined {
  if (m === undefined) return undefined;
  const startLine = m.kind === 'request' ? `${m.method} ${m.target} HTTP/${m.version}` : `HTTP/${m.version} ${m.status} ${m.reason}`;
  return {
    startLine,
    headers: m.headers.map((h) => [h.name, h.value]),
    body: m.bodyBytes === 0 && m.body.length === 0 ? undefined : { base64: b64(m.body), bytes: m.bodyBytes, truncated: m.bodyTruncated },
  };
}

/** One side of an HTTP/1 or HTTP/2 exchange as the detail pane shows it (already redacted by the stage). */
function httpMessage(x: TlsHttpEvent, side: 'request' | 'response'): UiMessage {
  const req = side === 'request';
  const body = req ? x.requestBody : x.responseBody;
  const bytes = req ? x.requestBodyBytes : x.responseBodyBytes;
  return {
    startLine: req ? `${x.method ?? '?'} ${x.path ?? '?'} HTTP/${x.version}` : `HTTP/${x.version} ${x.status ?? '-'} ${x.reason}`.trimEnd(),
    headers: (req ? x.requestHeaders : x.responseHeaders).map((h) => [h.name, h.value]),
    body: bytes === 0 && body.length === 0 ? undefined : { base64: b64(body), bytes, truncated: body.length < bytes },
  };
}

function chunkOf(e: TlsEvent): UiChunk {
  const data = e.data.length > CHUNK_BYTES ? e.data.subarray(0, CHUNK_BYTES) : e.data;
  return {
    time: e.timestamp, direction: e.direction, len: e.len, base64: b64(data), truncated: e.truncated || data.length < e.data.length,
    ...(e.local === undefined ? {} : { local: e.local }), ...(e.remote === undefined ? {} : { remote: e.remote }), conn: e.conn, function: e.function,
  };
}

function identity(e: CommonEvent, node: string | undefined): Pick<Entry, 'time' | 'node' | 'pod' | 'container' | 'comm' | 'pid'> {
  return {
    time: e.timestamp,
    node,
    pod: e.k8s === undefined ? undefined : `${e.k8s.namespace}/${e.k8s.podName}`,
    container: e.runtime?.containerName,
    comm: e.proc.comm,
    pid: e.proc.pid,
  };
}

const NO_HTTP = { role: undefined, method: undefined, path: undefined, host: undefined, status: undefined, latencyMs: undefined } as const;

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
}

/** Rough bytes an entry costs to keep: its captured data and its JSON text. */
function cost(entry: Omit<Entry, 'seq'>, detail: EntryDetail): number {
  let n = 512 + JSON.stringify(entry.json).length;
  for (const c of detail.chunks) n += c.base64.length + 64;
  for (const m of [detail.request, detail.response]) {
    if (m === undefined) continue;
    n += m.startLine.length + (m.body?.base64.length ?? 0);
    for (const [k, v] of m.headers) n += k.length + v.length + 16;
  }
  return n;
}

/** Turns one gadget's events into entries; keeps the HTTP pairing state of that gadget. */
export class EntryMaker<E extends CommonEvent> {
  private readonly pairing: TlsHttp;
  private readonly httpFields: readonly Field<TlsHttpEvent>[] | undefined;
  /** connection → whether its first plaintext looked like HTTP/1, and its calls since the last exchange */
  private readonly conns = new Map<string, { http: boolean; chunks: UiChunk[]; omitted: number }>();

  constructor(
    private readonly gadget: string,
    private readonly fields: readonly Field<E>[],
    private readonly node: string | undefined,
    httpFields?: readonly Field<TlsHttpEvent>[],
    redactor?: Redactor,
    /** the events' pids are another host's (a cluster node's): their liveness is not read from this host's /proc */
    remotePids = false,
  ) {
    this.httpFields = httpFields;
    this.pairing = new TlsHttp({ ...(redactor === undefined ? {} : { redactor }), ...(remotePids ? { processAlive: () => true } : {}) });
  }

  make(batch: readonly E[]): PendingEntry[] {
    const out: PendingEntry[] = [];
    const data: TlsEvent[] = [];
    for (const e of batch) {
      if (isTlsData(e)) {
        data.push(e);
        const key = `${e.proc.pid}:${e.conn}`;
        let c = this.conns.get(key);
        if (c === undefined) {
          c = { http: speaksHttp(e.data), chunks: [], omitted: 0 };
          this.conns.set(key, c);
          if (this.conns.size > HTTP_CONNECTIONS) this.conns.delete(this.conns.keys().next().value as string);
        }
        if (c.http) {
          c.chunks.push(chunkOf(e));
          if (c.chunks.length > CHUNKS_PER_EXCHANGE) {
            c.chunks.shift();
            c.omitted++;
          }
        } else out.push(this.tlsRow(e));
      } else if (isTlsHttp(e)) out.push(this.httpRow(e, this.fields as readonly Field<unknown>[] as readonly Field<TlsHttpEvent>[]));
      else out.push(this.otherRow(e));
    }
    if (data.length > 0) {
      for (const x of this.pairing.process(data)) out.push(this.httpRow(x, this.httpFields));
    }
    return out;
  }

  get pairingStats(): { exchanges: number; unmatchedResponses: number; notHttpStreams: number } {
    return this.pairing.stats;
  }

  private finish(kind: EntryKind, entry: Omit<Entry, 'seq' | 'kind'>, detail: EntryDetail): PendingEntry {
    const full = { kind, ...entry };
    return { entry: full, detail, bytes: cost(full, detail) };
  }

  private tlsRow(e: TlsEvent): PendingEntry {
    const json = toJsonObject(this.fields as readonly Field<unknown>[] as readonly Field<TlsEvent>[], e);
    delete json['data'];
    delete json['dataEncoding'];
    delete json['preview'];
    return this.finish('tls', {
      ...identity(e, this.node),
      tls: e.source,
      src: e.src,
      dst: e.dst,
      ...NO_HTTP,
      role: e.direction,
      summary: `${e.direction} ${e.len} B  ${preview(e.data, 96)}`,
      json: { gadget: this.gadget, ...json },
    }, { request: undefined, response: undefined, chunks: [chunkOf(e)], chunksOmitted: 0 });
  }

  private httpRow(x: TlsHttpEvent, fields: readonly Field<TlsHttpEvent>[] | undefined): PendingEntry {
    const key = `${x.proc.pid}:${x.conn}`;
    const c = this.conns.get(key);
    const chunks = c?.chunks ?? [];
    const omitted = c?.omitted ?? 0;
    if (c !== undefined) {
      // the pairing read HTTP on it (a trace begun mid-connection: its first bytes did not say)
      c.http = true;
      c.chunks = [];
      c.omitted = 0;
    }
    const json = fields === undefined ? {} : toJsonObject(fields, x);
    return this.finish('http', {
      ...identity(x, this.node),
      tls: x.source,
      src: x.client,
      dst: x.server,
      role: x.role,
      method: x.method,
      path: x.path,
      host: x.host,
      status: x.status,
      latencyMs: x.latencyMs,
      summary: `${x.method} ${x.path} → ${x.status}`,
      json: { gadget: this.gadget, kind: 'http', ...json },
    }, { request: httpMessage(x, 'request'), response: httpMessage(x, 'response'), chunks, chunksOmitted: omitted });
  }

  private otherRow(e: E): PendingEntry {
    const json = toJsonObject(this.fields, e);
    const name = str(json['name']);
    const sni = this.gadget === 'trace sni';
    const summary = sni ? `SNI ${name ?? '(none)'}${Array.isArray((e as { alpn?: unknown }).alpn) ? `  ${((e as unknown as { alpn: string[] }).alpn).join(',')}` : ''}` : str(json['summary']) ?? str(json['text']) ?? JSON.stringify(json).slice(0, 160);
    return this.finish(sni ? 'sni' : 'packet', {
      ...identity(e, this.node),
      tls: undefined,
      src: str(json['src']),
      dst: str(json['dst']),
      ...NO_HTTP,
      summary,
      json: { gadget: this.gadget, ...json },
    }, { request: undefined, response: undefined, chunks: [], chunksOmitted: 0 });
  }
}
