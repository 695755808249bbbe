// SPDX-License-Identifier: Apache-2.0
/**
 * The UI's HTTP(S) server: the page and its assets, and the API the page reads — a stream of
 * entries as server-sent events (/api/stream), one entry's detail, a query check, the view as
 * JSON lines. Every request needs the token: in the URL (?token=, as printed), in the cookie
 * the first visit sets, or as `Authorization: Bearer`. Without it: 401.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { PlaintextPcapngWriter, type PlaintextChunk } from '../output/plaintext-pcapng.js';
import type { UiHub } from './hub.js';
import type { Entry, QueryErrorBody, StreamEvent } from './protocol.js';
import { QueryError, type ViewQuery } from './query.js';

export interface UiServerOptions {
  hub: UiHub;
  host: string;
  /** 0: any free port */
  port: number;
  /** PEM cert and key: serve HTTPS */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** default: a random one */
  token?: string;
  /** where the built page lives (default: web/ beside this file) */
  assetsDir?: URL;
  /** ms between stats messages on a stream (default 1000) */
  statsMs?: number;
}

interface Asset {
  type: string;
  body: Buffer;
}

const ASSETS: Record<string, string> = {
  '/': 'index.html',
  '/app.js': 'app.js',
  '/app.css': 'app.css',
};
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

function loadAssets(dir: URL): Map<string, Asset> {
  const m = new Map<string, Asset>();
  for (const [path, file] of Object.entries(ASSETS)) {
    const ext = file.split('.').at(-1) ?? '';
    m.set(path, { type: TYPES[ext] ?? 'application/octet-stream', body: readFileSync(new URL(file, dir)) });
  }
  return m;
}

export class UiServer {
  readonly token: string;
  private readonly server: Server;
  private readonly assets: Map<string, Asset>;
  private readonly streams = new Set<ServerResponse>();
  private readonly cookieName: string;

  private constructor(private readonly opts: UiServerOptions, server: Server, token: string) {
    this.server = server;
    this.token = token;
    this.assets = loadAssets(opts.assetsDir ?? new URL('./web/', import.meta.url));
    this.cookieName = 'tlscope_ui';
  }

  static async start(opts: UiServerOptions): Promise<UiServer> {
    const token = opts.token ?? randomBytes(24).toString('base64url');
    let self: UiServer | undefined;
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      self?.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`internal error: ${(e as Error).message}\n`);
      });
    };
    const server = opts.tls === undefined ? createHttpServer(handler) : createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, handler);
    self = new UiServer(opts, server, token);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return self;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The URL to open, token included. */
  get url(): string {
    const host = this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host;
    return `${this.opts.tls === undefined ? 'http' : 'https'}://${host}:${this.port}/?token=${this.token}`;
  }

  async close(): Promise<void> {
    for (const s of this.streams) s.end();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private authorized(req: IncomingMessage, url: URL): 'url' | 'other' | false {
    const given = url.searchParams.get('token');
    if (given !== null && this.same(given)) return 'url';
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ') && this.same(auth.slice(7))) return 'other';
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const [k, v] = part.trim().split('=');
      if (k === this.cookieName && v !== undefined && this.same(v)) return 'other';
    }
    return false;
  }

  private same(s: string): boolean {
    const a = Buffer.from(s);
    const b = Buffer.from(this.token);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://ui.invalid');
    const how = this.authorized(req, url);
    if (how === false) {
      res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end('401: this page needs the token: open the URL `tlscope ui` printed (…/?token=…)\n');
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' });
      res.end();
      return;
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    const headers: Record<string, string> = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };
    if (how === 'url') headers['set-cookie'] = `${this.cookieName}=${this.token}; Path=/; HttpOnly; SameSite=Strict${this.opts.tls === undefined ? '' : '; Secure'}`;
    const asset = this.assets.get(url.pathname);
    if (asset !== undefined) {
      res.writeHead(200, {
        ...headers,
        'content-type': asset.type,
        // the page is all there is: nothing from elsewhere, ever
        'content-security-policy': "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
      });
      res.end(asset.body);
      return;
    }
    switch (url.pathname) {
      case '/api/stream':
        return this.stream(req, res, url, headers);
      case '/api/query':
        return this.checkQuery(res, url, headers);
      case '/api/download.jsonl':
        return this.download(res, url, headers);
      case '/api/download.pcapng':
        return this.downloadPcapng(res, url, headers);
    }
    const m = /^\/api\/entry\/(\d+)$/.exec(url.pathname);
    if (m !== null) {
      const item = this.opts.hub.ring.get(Number(m[1]));
      if (item === undefined) return this.json(res, 404, headers, { error: 'no longer kept (the ring holds the latest entries only)' });
      return this.json(res, 200, headers, { entry: item.entry, detail: item.detail });
    }
    res.writeHead(404, { ...headers, 'content-type': 'text/plain' });
    res.end('not found\n');
  }

  private json(res: ServerResponse, status: number, headers: Record<string, string>, body: unknown): void {
    res.writeHead(status, { ...headers, 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  /** The query of ?q=, or an answer (400 with the position) and undefined. */
  private query(res: ServerResponse, url: URL, headers: Record<string, string>): { q: ViewQuery | undefined } | undefined {
    const text = url.searchParams.get('q') ?? '';
    if (text.trim() === '') return { q: undefined };
    try {
      return { q: this.opts.hub.compile(text) };
    } catch (e) {
      if (!(e instanceof QueryError)) throw e;
      const body: QueryErrorBody = { error: e.message, position: e.position, ...(e.hint === undefined ? {} : { hint: e.hint }) };
      this.json(res, 400, headers, body);
      return undefined;
    }
  }

  private checkQuery(res: ServerResponse, url: URL, headers: Record<string, string>): void {
    if (this.query(res, url, headers) !== undefined) this.json(res, 200, headers, { ok: true });
  }

  private download(res: ServerResponse, url: URL, headers: Record<string, string>): void {
    const parsed = this.query(res, url, headers);
    if (parsed === undefined) return;
    const upTo = Number(url.searchParams.get('upto') ?? Infinity);
    res.writeHead(200, { ...headers, 'content-type': 'application/x-ndjson', 'content-disposition': 'attachment; filename="tlscope-view.jsonl"' });
    let out = '';
    for (const { entry } of this.opts.hub.ring.values()) {
      if (entry.seq > upTo) break;
      if (parsed.q !== undefined && !parsed.q.match(entry)) continue;
      out += `${JSON.stringify(entry.json)}\n`;
      if (out.length > 1 << 20) {
        res.write(out);
        out = '';
      }
    }
    res.end(out);
  }

  /**
   * The view's decrypted plaintext as pcapng (as `trace tls -w`): the raw calls kept with each
   * matching row, as TCP streams of their real 4-tuples, one interface per process. What the
   * ring did not keep (calls cut at 64 KiB, more than 16 per exchange) is not there.
   */
  private downloadPcapng(res: ServerResponse, url: URL, headers: Record<string, string>): void {
    const parsed = this.query(res, url, headers);
    if (parsed === undefined) return;
    const upTo = Number(url.searchParams.get('upto') ?? Infinity);
    const chunks: PlaintextChunk[] = [];
    for (const { entry, detail } of this.opts.hub.ring.values()) {
      if (entry.seq > upTo) break;
      if (parsed.q !== undefined && !parsed.q.match(entry)) continue;
      const who = entry.container === undefined || entry.container === '?' ? '' : ` in ${entry.container}`;
      for (const c of detail.chunks) {
        if (c.local === undefined || c.remote === undefined) continue;
        chunks.push({
          timestampMs: c.time,
          direction: c.direction,
          local: c.local,
          remote: c.remote,
          data: Buffer.from(c.base64, 'base64'),
          owner: `pid ${entry.pid} (${entry.comm})${who}`,
          comment: `pid ${entry.pid} ${entry.comm} ${c.function ?? c.direction}${c.truncated ? ' (cut: not all of the call was kept)' : ''}`,
          ...(c.conn === undefined ? {} : { connection: c.conn }),
        });
      }
    }
    chunks.sort((a, b) => a.timestampMs - b.timestampMs);
    const parts: Buffer[] = [];
    const w = new PlaintextPcapngWriter((b) => void parts.push(Buffer.from(b)), 'tlscope ui');
    w.write(chunks);
    w.close();
    res.writeHead(200, { ...headers, 'content-type': 'application/vnd.tcpdump.pcap', 'content-disposition': 'attachment; filename="tlscope-view.pcapng"' });
    res.end(Buffer.concat(parts));
  }

  private stream(req: IncomingMessage, res: ServerResponse, url: URL, headers: Record<string, string>): void {
    const parsed = this.query(res, url, headers);
    if (parsed === undefined) return;
    const after = Number(url.searchParams.get('after') ?? 0);
    res.writeHead(200, { ...headers, 'content-type': 'text/event-stream', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.socket?.setNoDelay(true);
    const send = (ev: StreamEvent): boolean => res.write(`event: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`);
    const hub = this.opts.hub;
    send({ type: 'hello', query: parsed.q?.text ?? '', ringCapacity: hub.ring.capacity, gadgets: hub.gadgets, node: hub.node ?? '' });
    this.streams.add(res);
    const view = hub.open({ write: (entries: Entry[]) => send({ type: 'entries', entries }) }, { query: parsed.q }, Number.isFinite(after) ? after : 0);
    const onDrain = (): void => view.drained();
    res.on('drain', onDrain);
    const sendStats = (): void => void send({ type: 'stats', stats: hub.stats(view) });
    sendStats();
    const timer = setInterval(sendStats, this.opts.statsMs ?? 1000);
    const done = (): void => {
      clearInterval(timer);
      hub.close(view);
      this.streams.delete(res);
    };
    req.on('close', done);
    res.on('close', done);
  }
}
