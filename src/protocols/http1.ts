// SPDX-License-Identifier: Apache-2.0
/**
 * Incremental HTTP/1.x parsing for observed byte streams (RFC 9112). Pairing requests with
 * responses per connection is in `http1-pairer.ts`.
 *
 * One `Http1Parser` follows one direction of a connection. It takes the bytes as they come (any
 * split, one byte at a time if need be), handles pipelining, Content-Length and chunked bodies,
 * close-delimited responses, 1xx interim responses and protocol switches, and turns garbage
 * into a `not-http` state with a reason — it never throws on input. Memory is bounded: a
 * message head may be at most `maxHeaderBytes` (64 KiB), bodies are counted and only their
 * first `maxBodyBytes` kept; a body byte is never copied otherwise.
 *
 * Bytes are read where they arrived (a line split across pushes is the only thing copied) and
 * strings are made only for what a message reports: method, target, reason, header names and
 * values.
 *
 * Being a passive observer it is lenient where senders commonly are (bare LF line ends, empty
 * lines before a request) and strict where leniency would misframe the stream (conflicting
 * Content-Length, a non-chunked Transfer-Encoding on a request, control bytes in a head).
 */

import { Buffer } from 'node:buffer';

export interface HttpHeader {
  /** As sent (case kept). */
  name: string;
  /** Without surrounding whitespace; obs-text bytes appear as Latin-1 characters. */
  value: string;
}

interface Http1MessageBase {
  /** "1.1" or "1.0". */
  version: string;
  headers: readonly HttpHeader[];
  /** Bytes of the start line, header fields and the empty line. */
  headerBytes: number;
  /** Body bytes after transfer decoding (chunk framing not counted). */
  bodyBytes: number;
  /** The first `maxBodyBytes` of the decoded body. */
  body: Uint8Array;
  bodyTruncated: boolean;
  chunked: boolean;
  /** Every byte the message took on the wire: head, body, chunk framing, trailers. */
  totalBytes: number;
  /** Caller timestamps of the pushes that brought the first byte, the end of the head, the last byte. */
  startedAt: number;
  headersAt: number;
  completedAt: number;
  /** False when the stream ended (`end`) before the message did. */
  complete: boolean;
}

export interface Http1Request extends Http1MessageBase {
  kind: 'request';
  method: string;
  /** The request-target as sent: "/path?q", "http://host/path", "host:443" or "*". */
  target: string;
}

export interface Http1Response extends Http1MessageBase {
  kind: 'response';
  status: number;
  reason: string;
}

export type Http1Message = Http1Request | Http1Response;

/** A message head, reported as soon as it is complete (before its body). */
export type Http1Head =
  | { kind: 'request'; method: string; target: string; version: string; headers: readonly HttpHeader[] }
  | { kind: 'response'; status: number; reason: string; version: string; headers: readonly HttpHeader[] };

export interface HeadInfo {
  /** Timestamp of the push that brought the message's first byte. */
  startedAt: number;
  /** Bytes of the start line, fields and empty line. */
  headerBytes: number;
}

/** 'auto' takes a stream starting with "HTTP/" as responses, anything else as requests. */
export type Http1Mode = 'request' | 'response' | 'auto';

export type Http1StreamState = 'http' | 'not-http' | 'tunnel' | 'closed';

export interface Http1ParserOptions {
  mode: Http1Mode;
  /** Largest message head (and trailer section) accepted (default 64 KiB). */
  maxHeaderBytes?: number;
  /** Body bytes kept per message; the rest is counted only (default 16 KiB). */
  maxBodyBytes?: number;
  /** Called with each head as soon as it is complete (before its body). */
  onHead?: (head: Http1Head, info: HeadInfo) => void;
}

const DEFAULT_MAX_HEADER_BYTES = 64 * 1024;
const DEFAULT_MAX_BODY_BYTES = 16 * 1024;
/** Responses framed by their request's method are remembered this far ahead (pipelining). */
const MAX_EXPECTED_METHODS = 64;
const MAX_METHOD_LENGTH = 32;
const MAX_CHUNK_LINE = 4096;

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const SEMICOLON = 0x3b;
const HTTP_SLASH = [0x48, 0x54, 0x54, 0x50, 0x2f] as const; // "HTTP/"

type Phase =
  | 'start-line'
  | 'header-line'
  | 'body-length'
  | 'chunk-size'
  | 'chunk-data'
  | 'chunk-end'
  | 'trailer-line'
  | 'body-until-close'
  | 'stopped';

const NO_MESSAGES: readonly Http1Message[] = Object.freeze([]);

/** Signals a stream that is not (or no longer) HTTP; caught in `push`. */
class NotHttp {
  constructor(readonly reason: string) {}
}

/** The message being read. */
interface Draft {
  head: Http1Head;
  headers: HttpHeader[];
  headerBytes: number;
  totalBytes: number;
  bodyBytes: number;
  body: BodyCapture;
  chunked: boolean;
  startedAt: number;
  headersAt: number;
}

export class Http1Parser {
  private readonly maxHeaderBytes: number;
  private readonly maxBodyBytes: number;
  private readonly onHead: ((head: Http1Head, info: HeadInfo) => void) | undefined;
  private mode: Http1Mode;
  private phase: Phase = 'start-line';
  private readonly line = new LineBuffer();
  private draft: Draft | undefined;
  /** Bytes of the start line and fields so far (limit: maxHeaderBytes). */
  private headBytes = 0;
  /** Body bytes still due in a Content-Length body or the current chunk. */
  private remaining = 0;
  private readonly expectedMethods: string[] = [];
  private currentTime = 0;
  /** When the current start line's first byte arrived. */
  private firstByteAt = 0;
  private out: Http1Message[] | undefined;
  private stopState: Exclude<Http1StreamState, 'http'> | undefined;
  private stopReason: string | undefined;

  constructor(options: Http1ParserOptions) {
    this.mode = options.mode;
    this.maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.onHead = options.onHead;
  }

  /** 'http' while parsing; 'not-http' after garbage; 'tunnel' after CONNECT/101; 'closed' after end(). Bytes are ignored once not 'http'. */
  get state(): Http1StreamState {
    return this.stopState ?? 'http';
  }

  /** Why the stream stopped being parsed as HTTP. */
  get reason(): string | undefined {
    return this.stopReason;
  }

  /** What this side sends, once known (in 'auto' mode: after the first start line). */
  get kind(): 'request' | 'response' | undefined {
    return this.mode === 'auto' ? undefined : this.mode;
  }

  /**
   * Frames the next response by the request it answers (HEAD and CONNECT change how a response
   * body is delimited). Call in request order; without it, responses are framed as for GET.
   */
  expectResponseTo(method: string): void {
    if (this.expectedMethods.length >= MAX_EXPECTED_METHODS) this.expectedMethods.shift();
    this.expectedMethods.push(method);
  }

  /** The peer switched protocols (a 101 or a CONNECT tunnel): stop parsing, quietly. */
  switchToTunnel(): void {
    this.stop('tunnel', 'the connection switched protocols');
  }

  /** Feeds the next bytes of the stream; returns the messages they completed, in order. */
  push(chunk: Uint8Array, timestampMs = 0): readonly Http1Message[] {
    if (this.stopState !== undefined || chunk.length === 0) return NO_MESSAGES;
    this.currentTime = timestampMs;
    this.out = undefined;
    // A Buffer view (no copy) so head strings decode natively (Buffer#toString), not byte by byte.
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    try {
      let pos = 0;
      while (pos < chunk.length && this.phase !== 'stopped') {
        pos = this.isLinePhase() ? this.consumeLine(bytes, pos) : this.consumeBody(bytes, pos);
      }
    } catch (e) {
      // Anything but NotHttp is a bug; it still must not take the tracer down with it.
      this.stop('not-http', e instanceof NotHttp ? e.reason : `internal parser error: ${e instanceof Error ? e.message : String(e)}`);
    }
    return this.out ?? NO_MESSAGES;
  }

  /**
   * The stream ended (connection closed): completes a close-delimited body, and returns a
   * message cut short as incomplete.
   */
  end(timestampMs = 0): readonly Http1Message[] {
    this.currentTime = timestampMs;
    this.out = undefined;
    const draft = this.draft;
    if (draft !== undefined && this.stopState === undefined) this.emit(draft, this.phase === 'body-until-close');
    this.stop('closed', 'the stream ended');
    return this.out ?? NO_MESSAGES;
  }

  private isLinePhase(): boolean {
    return this.phase !== 'body-length' && this.phase !== 'chunk-data' && this.phase !== 'body-until-close';
  }

  private stop(state: Exclude<Http1StreamState, 'http'>, reason: string): void {
    if (this.stopState !== undefined) return;
    this.stopState = state;
    this.stopReason = reason;
    this.phase = 'stopped';
    this.draft = undefined;
    this.line.clear();
  }

  // ------------------------------------------------------------------ lines

  /** Takes bytes up to the next LF; handles the line when it is whole. Returns the new position. */
  private consumeLine(chunk: Buffer, pos: number): number {
    if (this.phase === 'start-line' && this.line.length === 0) this.firstByteAt = this.currentTime;
    const lf = chunk.indexOf(LF, pos);
    const end = lf < 0 ? chunk.length : lf + 1;
    if (this.draft !== undefined) this.draft.totalBytes += end - pos;
    if (lf < 0) {
      this.line.append(chunk, pos, end);
      this.checkPartialLine();
      return end;
    }
    // A line inside one chunk is read in place; only a line split across pushes is copied.
    let bytes = chunk;
    let start = pos;
    let lineEnd = end;
    if (this.line.length > 0) {
      this.line.append(chunk, pos, end);
      bytes = this.line.bytes;
      start = 0;
      lineEnd = this.line.length;
    }
    this.countHeadLine(lineEnd - start);
    // Content ends before LF, and before a CR right before it (bare LF is tolerated).
    const contentEnd = lineEnd - start >= 2 && bytes[lineEnd - 2] === CR ? lineEnd - 2 : lineEnd - 1;
    this.handleLine(bytes, start, contentEnd);
    this.line.clear();
    return end;
  }

  private isChunkLinePhase(): boolean {
    return this.phase === 'chunk-size' || this.phase === 'chunk-end';
  }

  /** Head lines (start line, fields, trailers) count against maxHeaderBytes. */
  private countHeadLine(length: number): void {
    if (this.isChunkLinePhase()) return;
    this.headBytes += length;
    if (this.headBytes > this.maxHeaderBytes) throw new NotHttp(`message head larger than ${this.maxHeaderBytes} bytes`);
  }

  /** Limits what may pile up before a line ends, and rejects a start line that cannot be HTTP. */
  private checkPartialLine(): void {
    if (this.phase === 'chunk-end' && (this.line.length > 1 || this.line.bytes[0] !== CR)) {
      throw new NotHttp('chunk data not followed by CRLF');
    }
    if (this.isChunkLinePhase()) {
      if (this.line.length > MAX_CHUNK_LINE) throw new NotHttp(`chunk size line longer than ${MAX_CHUNK_LINE} bytes`);
      return;
    }
    if (this.headBytes + this.line.length > this.maxHeaderBytes) throw new NotHttp(`message head larger than ${this.maxHeaderBytes} bytes`);
    if (this.phase === 'start-line') this.checkStartLinePrefix(this.line.bytes, 0, this.line.length);
  }

  private handleLine(bytes: Buffer, start: number, end: number): void {
    switch (this.phase) {
      case 'start-line':
        return this.startLine(bytes, start, end);
      case 'header-line':
        return end === start ? this.endOfHead() : this.fieldLine(bytes, start, end, this.draft!.headers);
      case 'chunk-size':
        return this.chunkSizeLine(bytes, start, end);
      case 'chunk-end':
        if (end !== start) throw new NotHttp('chunk data not followed by CRLF');
        this.phase = 'chunk-size';
        return;
      case 'trailer-line':
        // Trailer fields are checked and counted, not kept: they are not part of the head.
        return end === start ? this.complete() : this.fieldLine(bytes, start, end, undefined);
      default:
        return;
    }
  }

  // ------------------------------------------------------------------ heads

  private startLine(bytes: Buffer, start: number, end: number): void {
    if (end === start) {
      // RFC 9112 §2.2: empty lines before a request line are ignored.
      this.headBytes = 0;
      return;
    }
    this.checkStartLinePrefix(bytes, start, end);
    const isResponse = startsWithHttpSlash(bytes, start, end);
    if (this.mode === 'auto') this.mode = isResponse ? 'response' : 'request';
    const headers: HttpHeader[] = [];
    const head = this.mode === 'response' ? parseStatusLine(bytes, start, end, headers) : parseRequestLine(bytes, start, end, headers);
    this.draft = {
      head,
      headers,
      headerBytes: 0,
      // The start line was not counted as it arrived: there was no draft yet.
      totalBytes: this.headBytes,
      bodyBytes: 0,
      body: new BodyCapture(this.maxBodyBytes),
      chunked: false,
      startedAt: this.firstByteAt,
      headersAt: this.currentTime,
    };
    this.phase = 'header-line';
  }

  /** Fails fast on bytes that cannot start an HTTP/1 message, instead of buffering 64 KiB. */
  private checkStartLinePrefix(bytes: Buffer, start: number, end: number): void {
    const wantResponse = this.mode === 'response';
    const wantRequest = this.mode === 'request';
    const looksLikeResponse = httpSlashPrefixMatches(bytes, start, end);
    if (wantResponse && !looksLikeResponse) throw new NotHttp(`response does not start with "HTTP/": ${preview(bytes, start, end)}`);
    if (looksLikeResponse && !wantRequest) return;
    for (let i = start; i < end && i - start <= MAX_METHOD_LENGTH; i++) {
      const b = bytes[i]!;
      if (b === SP && i > start) return;
      if (!isTchar(b)) throw new NotHttp(`not an HTTP request method: ${preview(bytes, start, end)}`);
    }
    if (end - start > MAX_METHOD_LENGTH) throw new NotHttp(`no request method within ${MAX_METHOD_LENGTH} bytes: ${preview(bytes, start, end)}`);
  }

  /** A field line; stored into `headers` unless it is a trailer (undefined). */
  private fieldLine(bytes: Buffer, start: number, end: number, headers: HttpHeader[] | undefined): void {
    const first = bytes[start]!;
    if (first === SP || first === HTAB) {
      // obs-fold: a continuation of the previous field's value (RFC 9112 §5.2).
      const [valueStart, valueEnd] = trimWhitespace(bytes, start, end);
      checkFieldValue(bytes, valueStart, valueEnd);
      if (headers === undefined) return;
      const previous = headers[headers.length - 1];
      if (previous === undefined) throw new NotHttp('continuation line before any header field');
      previous.value = `${previous.value} ${latin1(bytes, valueStart, valueEnd)}`;
      return;
    }
    let colon = start;
    while (colon < end && bytes[colon] !== COLON) {
      if (!isTchar(bytes[colon]!)) throw new NotHttp(`invalid header field name: ${preview(bytes, start, end)}`);
      colon++;
    }
    if (colon === end || colon === start) throw new NotHttp(`header line without a field name and colon: ${preview(bytes, start, end)}`);
    const [valueStart, valueEnd] = trimWhitespace(bytes, colon + 1, end);
    checkFieldValue(bytes, valueStart, valueEnd);
    headers?.push({ name: latin1(bytes, start, colon), value: latin1(bytes, valueStart, valueEnd) });
  }

  /** The empty line after the fields: decide how the body is delimited. */
  private endOfHead(): void {
    const draft = this.draft!;
    draft.headerBytes = this.headBytes;
    draft.headersAt = this.currentTime;
    const head = draft.head;
    this.onHead?.(head, { startedAt: draft.startedAt, headerBytes: draft.headerBytes });
    const framing = head.kind === 'request' ? requestFraming(draft.headers) : this.responseFraming(draft.headers, head.status);
    this.startBody(draft, framing);
  }

  private responseFraming(headers: readonly HttpHeader[], status: number): Framing {
    const informational = status >= 100 && status < 200 && status !== 101;
    // An interim response does not answer the request: the method stays expected.
    const method = informational ? undefined : this.expectedMethods.shift();
    if (informational || status === 204 || status === 304 || method === 'HEAD') return { kind: 'none' };
    if (status === 101 || (method === 'CONNECT' && status >= 200 && status < 300)) return { kind: 'tunnel' };
    return responseBodyFraming(headers);
  }

  private startBody(draft: Draft, framing: Framing): void {
    switch (framing.kind) {
      case 'none':
        return this.complete();
      case 'tunnel':
        this.complete();
        return this.switchToTunnel();
      case 'length':
        if (framing.length === 0) return this.complete();
        this.remaining = framing.length;
        this.phase = 'body-length';
        return;
      case 'chunked':
        draft.chunked = true;
        this.phase = 'chunk-size';
        return;
      case 'until-close':
        this.phase = 'body-until-close';
        return;
    }
  }

  // ------------------------------------------------------------------ bodies

  private consumeBody(chunk: Uint8Array, pos: number): number {
    const draft = this.draft!;
    const available = chunk.length - pos;
    const take = this.phase === 'body-until-close' ? available : Math.min(available, this.remaining);
    draft.body.add(chunk, pos, pos + take);
    draft.bodyBytes += take;
    draft.totalBytes += take;
    if (this.phase === 'body-until-close') return pos + take;
    this.remaining -= take;
    if (this.remaining === 0) {
      if (this.phase === 'chunk-data') this.phase = 'chunk-end';
      else this.complete();
    }
    return pos + take;
  }

  private chunkSizeLine(bytes: Buffer, start: number, end: number): void {
    let size = 0;
    let digits = 0;
    let i = start;
    for (; i < end; i++) {
      const value = hexDigitValue(bytes[i]!);
      if (value < 0) break;
      if (++digits > 12) throw new NotHttp('chunk size larger than 2^48');
      size = size * 16 + value;
    }
    if (digits === 0) throw new NotHttp(`bad chunk size line: ${preview(bytes, start, end)}`);
    while (i < end && (bytes[i] === SP || bytes[i] === HTAB)) i++;
    if (i < end && bytes[i] !== SEMICOLON) throw new NotHttp(`bad chunk size line: ${preview(bytes, start, end)}`);
    if (size === 0) {
      this.headBytes = 0; // the trailer section has its own head budget
      this.phase = 'trailer-line';
      return;
    }
    this.remaining = size;
    this.phase = 'chunk-data';
  }

  private complete(): void {
    const draft = this.draft;
    if (draft === undefined) return;
    this.emit(draft, true);
    this.draft = undefined;
    this.headBytes = 0;
    this.remaining = 0;
    if (this.phase !== 'stopped') this.phase = 'start-line';
  }

  private emit(draft: Draft, complete: boolean): void {
    const body = draft.body.result();
    const base = {
      version: draft.head.version,
      headers: draft.headers,
      headerBytes: draft.headerBytes,
      bodyBytes: draft.bodyBytes,
      body: body.bytes,
      bodyTruncated: body.truncated,
      chunked: draft.chunked,
      totalBytes: draft.totalBytes,
      startedAt: draft.startedAt,
      headersAt: draft.headersAt,
      completedAt: this.currentTime,
      complete,
    };
    const head = draft.head;
    const message: Http1Message =
      head.kind === 'request'
        ? { kind: 'request', method: head.method, target: head.target, ...base }
        : { kind: 'response', status: head.status, reason: head.reason, ...base };
    (this.out ??= []).push(message);
  }
}

// --------------------------------------------------------------------- framing

type Framing =
  | { kind: 'none' }
  | { kind: 'length'; length: number }
  | { kind: 'chunked' }
  | { kind: 'until-close' }
  | { kind: 'tunnel' };

/**
 * RFC 9112 §6.3 for requests: chunked, Content-Length, or no body. A CONNECT request does not
 * switch the stream by itself: only a 2xx answer does (a refused CONNECT leaves it HTTP), so the
 * pairer switches this side when it sees that answer.
 */
function requestFraming(headers: readonly HttpHeader[]): Framing {
  const transferEncoding = headerValues(headers, 'transfer-encoding');
  if (transferEncoding !== undefined) {
    if (lastCoding(transferEncoding) === 'chunked') return { kind: 'chunked' };
    throw new NotHttp(`request Transfer-Encoding "${transferEncoding}" does not end in chunked`);
  }
  const length = contentLength(headers);
  return length === undefined ? { kind: 'none' } : { kind: 'length', length };
}

/** RFC 9112 §6.3 for responses with a body: chunked, Content-Length, or until the connection closes. */
function responseBodyFraming(headers: readonly HttpHeader[]): Framing {
  const transferEncoding = headerValues(headers, 'transfer-encoding');
  if (transferEncoding !== undefined) return lastCoding(transferEncoding) === 'chunked' ? { kind: 'chunked' } : { kind: 'until-close' };
  const length = contentLength(headers);
  return length === undefined ? { kind: 'until-close' } : { kind: 'length', length };
}

/** All values of a field joined by commas (the list form), or undefined when absent. */
function headerValues(headers: readonly HttpHeader[], lowerName: string): string | undefined {
  let joined: string | undefined;
  for (const h of headers) {
    if (h.name.length === lowerName.length && h.name.toLowerCase() === lowerName) joined = joined === undefined ? h.value : `${joined}, ${h.value}`;
  }
  return joined;
}

function lastCoding(transferEncoding: string): string {
  const codings = transferEncoding.split(',');
  return (codings[codings.length - 1] ?? '').trim().toLowerCase();
}

/** Content-Length; repeated values must agree ("5, 5" is 5), anything else is not framable. */
function contentLength(headers: readonly HttpHeader[]): number | undefined {
  const values = headerValues(headers, 'content-length');
  if (values === undefined) return undefined;
  let length: number | undefined;
  for (const raw of values.split(',')) {
    const text = raw.trim();
    if (!/^\d{1,15}$/.test(text)) throw new NotHttp(`bad Content-Length "${values}"`);
    const value = Number(text);
    if (length !== undefined && value !== length) throw new NotHttp(`conflicting Content-Length "${values}"`);
    length = value;
  }
  return length;
}

// --------------------------------------------------------------------- start lines

function parseRequestLine(bytes: Buffer, start: number, end: number, headers: readonly HttpHeader[]): Http1Head {
  const firstSpace = bytes.indexOf(SP, start);
  const lastSpace = bytes.lastIndexOf(SP, end - 1);
  if (firstSpace < 0 || firstSpace >= end || lastSpace <= firstSpace) throw new NotHttp(`bad request line: ${preview(bytes, start, end)}`);
  for (let i = firstSpace + 1; i < lastSpace; i++) {
    const b = bytes[i]!;
    if (b <= SP || b === 0x7f) throw new NotHttp(`bad request target: ${preview(bytes, start, end)}`);
  }
  if (lastSpace === firstSpace + 1) throw new NotHttp(`empty request target: ${preview(bytes, start, end)}`);
  const version = httpVersion(bytes, lastSpace + 1, end);
  if (version === undefined) {
    const what = startsWithPreface(bytes, start, end) ? 'HTTP/2 connection preface' : `bad HTTP version in request line: ${preview(bytes, start, end)}`;
    throw new NotHttp(what);
  }
  return {
    kind: 'request',
    method: latin1(bytes, start, firstSpace),
    target: latin1(bytes, firstSpace + 1, lastSpace),
    version,
    headers,
  };
}

function parseStatusLine(bytes: Buffer, start: number, end: number, headers: readonly HttpHeader[]): Http1Head {
  const versionEnd = bytes.indexOf(SP, start);
  if (versionEnd < 0 || versionEnd >= end) throw new NotHttp(`bad status line: ${preview(bytes, start, end)}`);
  const version = httpVersion(bytes, start, versionEnd);
  const codeStart = versionEnd + 1;
  if (version === undefined || end - codeStart < 3) throw new NotHttp(`bad status line: ${preview(bytes, start, end)}`);
  let status = 0;
  for (let i = codeStart; i < codeStart + 3; i++) {
    const digit = bytes[i]! - 0x30;
    if (digit < 0 || digit > 9) throw new NotHttp(`bad status code: ${preview(bytes, start, end)}`);
    status = status * 10 + digit;
  }
  if (status < 100) throw new NotHttp(`bad status code: ${preview(bytes, start, end)}`);
  const afterCode = codeStart + 3;
  if (afterCode < end && bytes[afterCode] !== SP) throw new NotHttp(`bad status line: ${preview(bytes, start, end)}`);
  const reasonStart = Math.min(afterCode + 1, end);
  for (let i = reasonStart; i < end; i++) {
    const b = bytes[i]!;
    if ((b < SP && b !== HTAB) || b === 0x7f) throw new NotHttp(`control byte in reason phrase: ${preview(bytes, start, end)}`);
  }
  return { kind: 'response', status, reason: latin1(bytes, reasonStart, end), version, headers };
}

/** "HTTP/1.1" → "1.1", "HTTP/1.0" → "1.0"; HTTP/1.x only. */
function httpVersion(bytes: Uint8Array, start: number, end: number): string | undefined {
  if (end - start !== 8 || !startsWithHttpSlash(bytes, start, end)) return undefined;
  if (bytes[start + 5] !== 0x31 || bytes[start + 6] !== 0x2e) return undefined;
  const minor = bytes[start + 7]!;
  return minor === 0x30 || minor === 0x31 ? `1.${minor - 0x30}` : undefined;
}

function startsWithHttpSlash(bytes: Uint8Array, start: number, end: number): boolean {
  return end - start >= HTTP_SLASH.length && httpSlashPrefixMatches(bytes, start, end);
}

/** The bytes so far agree with "HTTP/" (as far as they go). */
function httpSlashPrefixMatches(bytes: Uint8Array, start: number, end: number): boolean {
  const n = Math.min(end - start, HTTP_SLASH.length);
  for (let i = 0; i < n; i++) if (bytes[start + i] !== HTTP_SLASH[i]) return false;
  return n > 0;
}

function startsWithPreface(bytes: Buffer, start: number, end: number): boolean {
  return end - start >= 14 && latin1(bytes, start, start + 14) === 'PRI * HTTP/2.0';
}

// --------------------------------------------------------------------- bytes

/** tchar (RFC 9110 §5.6.2): the bytes of methods and field names. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

function isTchar(b: number): boolean {
  return TCHAR[b] === 1;
}

function hexDigitValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  return -1;
}

function trimWhitespace(bytes: Uint8Array, start: number, end: number): [number, number] {
  while (start < end && (bytes[start] === SP || bytes[start] === HTAB)) start++;
  while (end > start && (bytes[end - 1] === SP || bytes[end - 1] === HTAB)) end--;
  return [start, end];
}

/** Field values: visible bytes, spaces, tabs and obs-text; no CR, LF, NUL or other controls. */
function checkFieldValue(bytes: Uint8Array, start: number, end: number): void {
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    if ((b < SP && b !== HTAB) || b === 0x7f) throw new NotHttp(`control byte 0x${b.toString(16).padStart(2, '0')} in a header value`);
  }
}

/** Latin-1 decoding of a byte range: header bytes are octets, and obs-text must survive. */
function latin1(bytes: Buffer, start: number, end: number): string {
  return bytes.toString('latin1', start, end);
}

/** A short printable excerpt for reasons. */
function preview(bytes: Uint8Array, start: number, end: number): string {
  const shown = bytes.subarray(start, Math.min(end, start + 40));
  return JSON.stringify(Array.from(shown, (b) => (b >= SP && b < 0x7f ? String.fromCharCode(b) : '.')).join(''));
}

/** The current line, when it spans pushes; bounded by the callers' limits. */
class LineBuffer {
  bytes: Buffer = Buffer.alloc(256);
  length = 0;

  append(source: Uint8Array, start: number, end: number): void {
    const needed = this.length + end - start;
    if (needed > this.bytes.length) {
      const grown = Buffer.alloc(Math.max(needed, this.bytes.length * 2));
      grown.set(this.bytes.subarray(0, this.length));
      this.bytes = grown;
    }
    this.bytes.set(source.subarray(start, end), this.length);
    this.length = needed;
  }

  clear(): void {
    this.length = 0;
  }
}

/** Keeps the first `limit` bytes of a body, allocating only when there is a body. */
class BodyCapture {
  private buffer: Uint8Array | undefined;
  private length = 0;
  private truncated = false;

  constructor(private readonly limit: number) {}

  add(source: Uint8Array, start: number, end: number): void {
    const room = this.limit - this.length;
    if (end - start > room) this.truncated = true;
    const take = Math.min(room, end - start);
    if (take <= 0) return;
    if (this.buffer === undefined || this.length + take > this.buffer.length) {
      const grown = new Uint8Array(Math.min(this.limit, Math.max(this.length + take, 2 * (this.buffer?.length ?? 256))));
      if (this.buffer !== undefined) grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(source.subarray(start, start + take), this.length);
    this.length += take;
  }

  result(): { bytes: Uint8Array; truncated: boolean } {
    return { bytes: this.buffer === undefined ? new Uint8Array(0) : this.buffer.slice(0, this.length), truncated: this.truncated };
  }
}
