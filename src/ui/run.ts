// SPDX-License-Identifier: Apache-2.0
/** `tlscope ui`: the gadgets' sessions (src/session) → the hub (ring, views) → the HTTP server, until stopped. */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { ContainerSelector } from '../containers/selector.js';
import { errorMessage, TlscopeError, UsageError } from '../errors.js';
import { openCaptureSource, packetSummaryFields } from './capture-source.js';
import { UiHub } from './hub.js';
import { QueryError } from './query.js';
import { EntryRing } from './ring.js';
import { UiServer } from './server.js';
import { openSources, uiGadgetFields } from './sources.js';

export interface UiRunOptions {
  selector: ContainerSelector;
  host: string;
  port: number;
  tls: { cert: Buffer; key: Buffer } | undefined;
  ringEntries: number;
  ringBytes: number;
  /** the view's query in the printed URL */
  query: string | undefined;
  signal: AbortSignal;
  verbose?: boolean;
  /** --capture EXPR: also the capture gadget with this pcap filter (the UI's port left out) */
  capture?: string;
  /** mask credentials in trace tls (default true; --no-redact: false) */
  redact?: boolean;
  /** the URL line and warnings */
  say(text: string): void;
  warn(text: string): void;
}

/** The UI's gadget parameters: trace tls masks credentials unless --no-redact. */
export function uiParams(redact: boolean): Record<string, Record<string, unknown>> {
  return { 'trace tls': redact ? { redact: true } : { 'no-redact': true } };
}

/** Where the UI's flags say to serve: --port, --listen ADDR (not loopback: HTTPS or --insecure), --tls-cert/--tls-key. */
export interface UiListenFlags {
  port: number | undefined;
  listen: string | undefined;
  certFile: string | undefined;
  keyFile: string | undefined;
  insecure: boolean;
}

export const DEFAULT_UI_PORT = 7483;

/** Where and how the page is served: the flags of `tlscope ui` and `kubectl tlscope ui` alike. */
export const UI_SERVE_OPTIONS = {
  port: { type: 'string', arg: 'N', description: `port to serve on (default ${DEFAULT_UI_PORT}; 0: any free port)` },
  listen: { type: 'string', arg: 'ADDR', description: 'address to serve on instead of 127.0.0.1 (needs --tls-cert/--tls-key, or --insecure)' },
  'tls-cert': { type: 'string', arg: 'FILE', description: 'PEM certificate: serve HTTPS' },
  'tls-key': { type: 'string', arg: 'FILE', description: 'PEM private key of --tls-cert' },
  insecure: { type: 'boolean', description: 'allow --listen without TLS (the token then crosses the network in clear)' },
  ring: { type: 'string', arg: 'N', description: 'entries kept for the page (default 10000; at most 256 MiB of them)' },
} as const;

/** The flags checked (usage errors), the certificate and key read. */
export function uiListen(f: UiListenFlags): { host: string; port: number; tls: { cert: Buffer; key: Buffer } | undefined } {
  if ((f.certFile === undefined) !== (f.keyFile === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (f.listen !== undefined && isIP(f.listen) === 0) throw new UsageError(`--listen wants an IP address, got "${f.listen}"`);
  const loopback = f.listen === undefined || f.listen === '127.0.0.1' || f.listen === '::1';
  if (!loopback && f.certFile === undefined && !f.insecure) {
    throw new UsageError(`--listen ${f.listen} would show decrypted traffic to the network`, 'give --tls-cert and --tls-key (HTTPS), or --insecure to serve plain HTTP anyway');
  }
  const read = (flag: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new UsageError(`--${flag}: cannot read ${file}: ${(e as Error).message}`);
    }
  };
  const tls = f.certFile === undefined || f.keyFile === undefined ? undefined : { cert: read('tls-cert', f.certFile), key: read('tls-key', f.keyFile) };
  return { host: f.listen ?? '127.0.0.1', port: f.port ?? DEFAULT_UI_PORT, tls };
}

/** --query checked against the hub's gadgets: a usage error with its column before anything loads. */
export function checkQuery(hub: UiHub, query: string | undefined): void {
  if (query === undefined) return;
  try {
    hub.compile(query);
  } catch (e) {
    if (e instanceof QueryError) throw new UsageError(`--query: ${e.message}${e.position === undefined ? '' : ` at column ${e.position + 1}`}`, e.hint);
    throw e;
  }
}

export interface ServeOptions {
  hub: UiHub;
  host: string;
  port: number;
  tls: { cert: Buffer; key: Buffer } | undefined;
  query: string | undefined;
  redact: boolean;
  /** the command, as its lines name it (default "tlscope ui") */
  name?: string;
  say(text: string): void;
}

/** Starts the server over the hub (a taken port, a foreign address: usage errors) and says the URL to open, token and query in it, and whether credentials are masked. */
export async function serveHub(o: ServeOptions): Promise<UiServer> {
  let server: UiServer;
  try {
    server = await UiServer.start({ hub: o.hub, host: o.host, port: o.port, ...(o.tls === undefined ? {} : { tls: o.tls }) });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UsageError(`port ${o.port} on ${o.host} is taken`, 'choose another with --port N (0: any free port)');
    if (code === 'EADDRNOTAVAIL') throw new UsageError(`${o.host} is not an address of this host`, 'give --listen one of its addresses');
    throw new TlscopeError('ERR_UI_LISTEN', `cannot listen on ${o.host}:${o.port}: ${(e as Error).message}`);
  }
  const name = o.name ?? 'tlscope ui';
  const url = o.query === undefined ? server.url : `${server.url}&q=${encodeURIComponent(o.query)}`;
  o.say(`${name}: open ${url}\n`);
  o.say(`${name}: ${o.redact ? 'credentials are masked (Authorization, Proxy-Authorization, Cookie, Set-Cookie, gRPC *-bin metadata) in every view and download, raw HTTP/1 and HTTP/2 calls included; --no-redact shows them' : 'credentials are NOT masked (--no-redact)'}\n`);
  return server;
}

export async function runUi(o: UiRunOptions): Promise<void> {
  const hub = new UiHub({ ring: new EntryRing({ capacity: o.ringEntries, maxBytes: o.ringBytes }), node: hostname() });
  const warn = (text: string): void => {
    hub.warn(text);
    o.warn(text);
  };
  // a bad --query is a usage error with its column before anything loads
  for (const spec of uiGadgetFields()) hub.register(spec);
  if (o.capture !== undefined) hub.register({ gadget: 'capture', fields: packetSummaryFields() as never });
  checkQuery(hub, o.query);
  const redact = o.redact !== false;
  const sources = await openSources({ selector: o.selector, signal: o.signal, warn, params: uiParams(redact), ...(o.verbose === undefined ? {} : { verbose: o.verbose }) });
  let server: UiServer | undefined;
  let capture: Awaited<ReturnType<typeof openCaptureSource>> | undefined;
  try {
    server = await serveHub({ hub, host: o.host, port: o.port, tls: o.tls, query: o.query, redact, say: o.say });
    const runs = sources.specs.map((s) => hub.run(s));
    if (o.capture !== undefined) {
      try {
        capture = await openCaptureSource({ expression: o.capture, uiPort: server.port, selector: o.selector, signal: o.signal });
        runs.push(hub.run(capture.spec));
      } catch (e) {
        warn(`capture: ${errorMessage(e)}`);
      }
    }
    if (!o.signal.aborted) await new Promise<void>((resolve) => o.signal.addEventListener('abort', () => resolve(), { once: true }));
    await capture?.session.stop();
    await sources.stop();
    await Promise.all(runs);
  } finally {
    await server?.close();
    hub.stop();
    await capture?.session.stop();
    await sources.stop();
  }
}
