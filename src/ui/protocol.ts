// SPDX-License-Identifier: Apache-2.0
/**
 * What the UI server sends the page (types only: the page's bundle imports them too).
 * One entry per thing shown in the table, whatever gadget made it; `json` is the object
 * `-o json` prints for that event, so a downloaded view reads like the CLI's output.
 */

export type EntryKind = 'http' | 'tls' | 'sni' | 'packet';

/** A message body as the detail pane shows it. */
export interface UiBody {
  /** base64 of the captured bytes (may be fewer than `bytes`) */
  base64: string;
  /** bytes the message carried */
  bytes: number;
  truncated: boolean;
}

export interface UiMessage {
  /** the start line: "GET /x HTTP/1.1", "HTTP/1.1 200 OK" */
  startLine: string;
  headers: [string, string][];
  body: UiBody | undefined;
}

/** One plaintext call of a connection, as the table's "tls" rows carry it. */
export interface UiChunk {
  time: number;
  direction: 'write' | 'read';
  len: number;
  base64: string;
  truncated: boolean;
  /** the socket's addresses (for the decrypted pcapng download) */
  local?: string;
  remote?: string;
  /** the TLS session within the process */
  conn?: string;
  /** the probed function (SSL_write, …) */
  function?: string;
}

export interface EntryDetail {
  request: UiMessage | undefined;
  response: UiMessage | undefined;
  /** the plaintext calls the exchange was read from (or the call itself for a tls row) */
  chunks: UiChunk[];
  /** chunks left out of `chunks` (bounded) */
  chunksOmitted: number;
}

/** A row: the columns the table shows, the same for every gadget. */
export interface Entry {
  seq: number;
  kind: EntryKind;
  /** ms since the epoch */
  time: number;
  node: string | undefined;
  /** "namespace/pod" */
  pod: string | undefined;
  container: string | undefined;
  comm: string;
  pid: number;
  /** the TLS stack it was decrypted from (openssl, gnutls, go, ktls); undefined: not decrypted */
  tls: string | undefined;
  src: string | undefined;
  dst: string | undefined;
  /** HTTP: client / server (who this process was); tls rows: write / read */
  role: string | undefined;
  method: string | undefined;
  path: string | undefined;
  host: string | undefined;
  status: number | undefined;
  latencyMs: number | undefined;
  /** what the row says when it is not an HTTP exchange (a preview, an SNI name, a packet line) */
  summary: string;
  /** the `-o json` object of the event, without bulky data (the detail has it) */
  json: Record<string, unknown>;
}

/** Per gadget session: the engine's counters. */
export interface UiSessionStats {
  shown: number;
  lost: number;
  misses: Record<string, number>;
  outOfScope: number;
  filtered: number;
  /** waiting for late binding now */
  held: number;
  /** -c names that have not appeared (yet) */
  missingContainers?: string[];
  /** why the run does not do what was asked (a container that never appeared, …) */
  problems?: string[];
  /** a cluster session (`kubectl tlscope ui`): each node's agent, its state and counts */
  nodes?: UiNodeStatus[];
}

/** One node of a cluster session. */
export interface UiNodeStatus {
  node: string;
  /** starting, running, gone (its agent went away: waiting for it), not ready, unreachable, ended */
  state: string;
  /** the agent pod */
  pod?: string;
  /** why it is gone, not ready or unreachable */
  reason?: string;
  /** times its agent went away */
  gone: number;
  shown: number;
  lost: number;
}

export interface UiStats {
  sessions: Record<string, UiSessionStats>;
  ring: { size: number; capacity: number; evicted: number };
  /** this stream: entries left out by the view's query, dropped because the page read too slowly */
  view: { matched: number; queryFiltered: number; dropped: number };
  warnings: string[];
  /** what the sessions said as it happened ("waiting for container web to start") */
  notes: string[];
  uptimeMs: number;
}

/** Server-sent events on /api/stream: `event: <type>` with this JSON as data. */
export type StreamEvent =
  | { type: 'hello'; query: string; ringCapacity: number; gadgets: string[]; node: string }
  | { type: 'entries'; entries: Entry[] }
  | { type: 'stats'; stats: UiStats };

/** /api/query answers a bad query with this (400). */
export interface QueryErrorBody {
  error: string;
  /** 0-based character offset in the query, when known */
  position: number | undefined;
  /** what to try instead */
  hint?: string;
}
