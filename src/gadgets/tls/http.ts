// SPDX-License-Identifier: Apache-2.0
/**
 * `trace tls --http`: HTTP/1.x requests paired with their responses per TLS session, from the
 * plaintext events. Clients and servers alike: the side that sends requests is found from the
 * bytes (src/protocols/http1-pairer.ts).
 */
import type { CommonEvent } from '../../fields/common.js';
import { HttpPairer, type HttpExchange } from '../../protocols/http1-pairer.js';
import type { TlsSource } from './decode.js';
import type { TlsEvent } from './gadget.js';

export interface TlsHttpEvent extends CommonEvent {
  kind: 'http';
  source: TlsSource;
  library: string | undefined;
  /** client: this process sent the request; server: it answered */
  role: 'client' | 'server';
  method: string;
  path: string;
  host: string | undefined;
  status: number;
  reason: string;
  /** request's first byte to response's first byte, ms */
  latencyMs: number;
  /** request's first byte to response's last byte, ms */
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
  /** client and server endpoints */
  client: string | undefined;
  server: string | undefined;
  conn: string;
  exchange: HttpExchange;
}

export interface HttpPairingStats {
  exchanges: number;
  unmatchedResponses: number;
  notHttpStreams: number;
}

export class TlsHttp {
  private readonly pairer = new HttpPairer<string>({ maxConnections: 4096 });
  /** the latest data event of each connection (process, container, endpoints) */
  private readonly last = new Map<string, TlsEvent>();

  process(batch: readonly TlsEvent[]): TlsHttpEvent[] {
    const out: TlsHttpEvent[] = [];
    for (const e of batch) {
      const key = `${e.proc.pid}:${e.conn}`;
      this.last.delete(key);
      this.last.set(key, e);
      if (this.last.size > 4096) this.last.delete(this.last.keys().next().value as string);
      const ms = Number(e.monotonicNs) / 1e6;
      for (const x of this.pairer.push(key, e.direction === 'write' ? 'outbound' : 'inbound', e.data, ms)) out.push(this.toEvent(x, e));
    }
    return out;
  }

  get stats(): HttpPairingStats {
    const s = this.pairer.stats;
    return { exchanges: s.exchanges, unmatchedResponses: s.unmatchedResponses, notHttpStreams: s.notHttpStreams };
  }

  private toEvent(x: HttpExchange, e: TlsEvent): TlsHttpEvent {
    const client = x.requestDirection === 'outbound';
    return {
      kind: 'http',
      timestamp: e.timestamp,
      proc: e.proc,
      source: e.source,
      library: e.library,
      role: client ? 'client' : 'server',
      method: x.method,
      path: x.path,
      host: x.host,
      status: x.status,
      reason: x.reason,
      latencyMs: round3(x.latencyMs),
      durationMs: round3(x.durationMs),
      requestBytes: x.requestBytes,
      responseBytes: x.responseBytes,
      client: client ? e.local : e.remote,
      server: client ? e.remote : e.local,
      conn: e.conn,
      exchange: x,
    };
  }
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}
