// SPDX-License-Identifier: Apache-2.0
/** `tlscope ui`: the gadgets' sessions (src/session) → the hub (ring, views) → the HTTP server, until stopped. */
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

export async function runUi(o: UiRunOptions): Promise<void> {
  const hub = new UiHub({ ring: new EntryRing({ capacity: o.ringEntries, maxBytes: o.ringBytes }), node: hostname() });
  const warn = (text: string): void => {
    hub.warn(text);
    o.warn(text);
  };
  // a bad --query is a usage error with its column before anything loads
  for (const spec of uiGadgetFields()) hub.register(spec);
  if (o.capture !== undefined) hub.register({ gadget: 'capture', fields: packetSummaryFields() as never });
  if (o.query !== undefined) {
    try {
      hub.compile(o.query);
    } catch (e) {
      if (e instanceof QueryError) throw new UsageError(`--query: ${e.message}${e.position === undefined ? '' : ` at column ${e.position + 1}`}`, e.hint);
      throw e;
    }
  }
  const redact = o.redact !== false;
  const sources = await openSources({ selector: o.selector, signal: o.signal, warn, params: uiParams(redact), ...(o.verbose === undefined ? {} : { verbose: o.verbose }) });
  let server: UiServer | undefined;
  let capture: Awaited<ReturnType<typeof openCaptureSource>> | undefined;
  try {
    try {
      server = await UiServer.start({ hub, host: o.host, port: o.port, ...(o.tls === undefined ? {} : { tls: o.tls }) });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE') throw new UsageError(`port ${o.port} on ${o.host} is taken`, 'choose another with --port N (0: any free port)');
      if (code === 'EADDRNOTAVAIL') throw new UsageError(`${o.host} is not an address of this host`, 'give --listen one of its addresses');
      throw new TlscopeError('ERR_UI_LISTEN', `cannot listen on ${o.host}:${o.port}: ${(e as Error).message}`);
    }
    const url = o.query === undefined ? server.url : `${server.url}&q=${encodeURIComponent(o.query)}`;
    o.say(`tlscope ui: open ${url}\n`);
    o.say(`tlscope ui: ${redact ? 'credentials are masked (Authorization, Proxy-Authorization, Cookie, Set-Cookie, gRPC *-bin metadata) in every view and download, raw HTTP/1 and HTTP/2 calls included; --no-redact shows them' : 'credentials are NOT masked (--no-redact)'}\n`);
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
