// SPDX-License-Identifier: Apache-2.0
/**
 * Property tests: generated HTTP/1.1 messages, serialised and cut at arbitrary places, parse back
 * to what was generated; pairing survives any chunking; random bytes never throw.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Http1Parser, type Http1Message, type Http1Request, type Http1Response } from '../../../src/protocols/http1.js';
import { HttpPairer, type HttpExchange } from '../../../src/protocols/http1-pairer.js';

const RUNS = Number(process.env.FC_RUNS ?? 200);
const MAX_BODY = 1024;

interface GeneratedBody {
  bytes: Uint8Array;
  framing: 'length' | 'chunked';
  chunkSizes: number[];
}

interface GeneratedRequest {
  method: string;
  target: string;
  headers: Array<[string, string]>;
  body: GeneratedBody;
}

interface GeneratedResponse {
  status: number;
  reason: string;
  headers: Array<[string, string]>;
  body: GeneratedBody;
}

const tchar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&\'*+-.^_`|~'.split(''));
const fieldName = fc
  .string({ unit: tchar, minLength: 1, maxLength: 20 })
  .filter((n) => !['content-length', 'transfer-encoding', 'host'].includes(n.toLowerCase()));
const visible = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
const fieldValue = fc
  .array(fc.oneof(visible, fc.constant(' ')), { maxLength: 60 })
  .map((chars) => chars.join('').trim());
const headersArb = fc.array(fc.tuple(fieldName, fieldValue), { maxLength: 8 });
const bodyArb: fc.Arbitrary<GeneratedBody> = fc.record({
  bytes: fc.uint8Array({ maxLength: 3000 }),
  framing: fc.constantFrom('length' as const, 'chunked' as const),
  chunkSizes: fc.array(fc.integer({ min: 1, max: 700 }), { maxLength: 10 }),
});
const requestArb: fc.Arbitrary<GeneratedRequest> = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
  target: fc.array(fc.constantFrom(...'abcxyz019/-._~?=&%'.split('')), { maxLength: 40 }).map((c) => `/${c.join('')}`),
  headers: headersArb,
  body: bodyArb,
});
const responseArb: fc.Arbitrary<GeneratedResponse> = fc.record({
  status: fc.integer({ min: 200, max: 599 }).filter((s) => s !== 204 && s !== 304),
  reason: fc.array(fc.oneof(visible, fc.constant(' ')), { maxLength: 20 }).map((c) => c.join('').trim()),
  headers: headersArb,
  body: bodyArb,
});

const encoder = new TextEncoder();

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Head lines, framing header and body as a sender would write them. */
function serialise(startLine: string, headers: Array<[string, string]>, body: GeneratedBody, withBody: boolean): Uint8Array {
  const lines = [startLine, ...headers.map(([n, v]) => `${n}: ${v}`)];
  lines.push(body.framing === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${body.bytes.length}`);
  const head = encoder.encode(`${lines.join('\r\n')}\r\n\r\n`);
  if (!withBody) return head;
  if (body.framing === 'length') return concat([head, body.bytes]);
  const parts: Uint8Array[] = [head];
  let offset = 0;
  for (const size of [...body.chunkSizes, body.bytes.length]) {
    if (offset >= body.bytes.length) break;
    const end = Math.min(body.bytes.length, offset + size);
    parts.push(encoder.encode(`${(end - offset).toString(16)}\r\n`), body.bytes.subarray(offset, end), encoder.encode('\r\n'));
    offset = end;
  }
  parts.push(encoder.encode('0\r\n\r\n'));
  return concat(parts);
}

const requestBytes = (r: GeneratedRequest): Uint8Array => serialise(`${r.method} ${r.target} HTTP/1.1`, [['Host', 'h.test'], ...r.headers], r.body, true);
/** A response to HEAD carries its framing headers but no body. */
const responseBytes = (r: GeneratedResponse, method: string): Uint8Array =>
  serialise(`HTTP/1.1 ${r.status} ${r.reason}`.trimEnd(), r.headers, r.body, method !== 'HEAD');

/** Cuts `bytes` at the given fractions. */
function cut(bytes: Uint8Array, fractions: readonly number[]): Uint8Array[] {
  const points = [...new Set(fractions.map((f) => Math.floor(f * bytes.length)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let last = 0;
  for (const p of [...points, bytes.length]) {
    if (p > last) pieces.push(bytes.subarray(last, p));
    last = Math.max(last, p);
  }
  return pieces;
}

const cutsArb = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 30 });

function feedPieces(parser: Http1Parser, pieces: readonly Uint8Array[]): Http1Message[] {
  return pieces.flatMap((p, i) => [...parser.push(p, i)]);
}

function checkBody(message: Http1Message, body: GeneratedBody, expectBody: boolean): void {
  const length = expectBody ? body.bytes.length : 0;
  assert.equal(message.bodyBytes, length);
  assert.deepEqual(message.body, body.bytes.slice(0, Math.min(length, MAX_BODY)));
  assert.equal(message.bodyTruncated, length > MAX_BODY);
}

describe('HTTP/1.1 parser properties', () => {
  it('pipelined requests cut anywhere parse back to what was written', () => {
    fc.assert(
      fc.property(fc.array(requestArb, { minLength: 1, maxLength: 5 }), cutsArb, (requests, cuts) => {
        const wire = requests.map(requestBytes);
        const parser = new Http1Parser({ mode: 'request', maxBodyBytes: MAX_BODY });
        const messages = feedPieces(parser, cut(concat(wire), cuts));
        assert.equal(parser.state, 'http', parser.reason);
        assert.equal(messages.length, requests.length);
        messages.forEach((m, i) => {
          const r = requests[i]!;
          const request = m as Http1Request;
          assert.equal(request.method, r.method);
          assert.equal(request.target, r.target);
          assert.deepEqual(
            request.headers.slice(1, 1 + r.headers.length).map((h) => [h.name, h.value]),
            r.headers,
          );
          checkBody(request, r.body, true);
          assert.equal(request.totalBytes, wire[i]!.length);
          assert.equal(request.chunked, r.body.framing === 'chunked');
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('responses cut anywhere parse back, framed by their request method', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(requestArb, responseArb), { minLength: 1, maxLength: 5 }), cutsArb, (pairs, cuts) => {
        const parser = new Http1Parser({ mode: 'response', maxBodyBytes: MAX_BODY });
        for (const [request] of pairs) parser.expectResponseTo(request.method);
        const wire = pairs.map(([request, response]) => responseBytes(response, request.method));
        const messages = feedPieces(parser, cut(concat(wire), cuts));
        assert.equal(parser.state, 'http', parser.reason);
        assert.equal(messages.length, pairs.length);
        messages.forEach((m, i) => {
          const [request, r] = pairs[i]!;
          const response = m as Http1Response;
          assert.equal(response.status, r.status);
          assert.equal(response.reason, r.reason);
          checkBody(response, r.body, request.method !== 'HEAD');
          assert.equal(response.totalBytes, wire[i]!.length);
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('never throws on random bytes, in any mode, and stays inert after giving up', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), cutsArb, fc.constantFrom('request' as const, 'response' as const, 'auto' as const), (bytes, cuts, mode) => {
        const parser = new Http1Parser({ mode, maxHeaderBytes: 512 });
        feedPieces(parser, cut(bytes, cuts));
        if (parser.state === 'not-http') assert.ok(!(parser.reason ?? '').startsWith('internal'), parser.reason);
        parser.end(0);
        assert.equal(parser.state === 'not-http' || parser.state === 'closed' || parser.state === 'tunnel', true);
      }),
      { numRuns: RUNS * 3 },
    );
  });

  it('never throws on mutated valid messages', () => {
    fc.assert(
      fc.property(requestArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 5 }), cutsArb, (request, changes, cuts) => {
        const bytes = requestBytes(request).slice();
        for (const [at, value] of changes) bytes[at % bytes.length] = value;
        const parser = new Http1Parser({ mode: 'auto' });
        const messages = feedPieces(parser, cut(bytes, cuts));
        for (const m of messages) assert.ok(m.totalBytes <= bytes.length);
        assert.ok(!(parser.reason ?? '').startsWith('internal'), parser.reason);
      }),
      { numRuns: RUNS * 2 },
    );
  });
});

describe('HttpPairer properties', () => {
  it('pairs every exchange in order however both directions are cut and interleaved', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(requestArb, responseArb), { minLength: 1, maxLength: 5 }), cutsArb, cutsArb, fc.boolean(), (pairs, requestCuts, responseCuts, clientSide) => {
        const pairer = new HttpPairer({ maxBodyBytes: MAX_BODY });
        const requestDirection = clientSide ? 'outbound' : 'inbound';
        const responseDirection = clientSide ? 'inbound' : 'outbound';
        const exchanges: HttpExchange[] = [];
        let time = 0;
        // Requests go out (pipelined), then responses come back; each stream cut arbitrarily.
        for (const piece of cut(concat(pairs.map(([q]) => requestBytes(q))), requestCuts)) exchanges.push(...pairer.push('conn', requestDirection, piece, time++));
        for (const piece of cut(concat(pairs.map(([q, r]) => responseBytes(r, q.method))), responseCuts)) exchanges.push(...pairer.push('conn', responseDirection, piece, time++));
        assert.deepEqual(
          exchanges.map((e) => [e.method, e.path, e.status, e.host, e.requestDirection]),
          pairs.map(([q, r]) => [q.method, q.target, r.status, 'h.test', requestDirection]),
        );
        exchanges.forEach((e, i) => {
          const [q, r] = pairs[i]!;
          assert.equal(e.requestBytes, requestBytes(q).length);
          assert.equal(e.responseBytes, responseBytes(r, q.method).length);
          assert.ok(e.latencyMs >= 0 && e.durationMs >= e.latencyMs);
        });
        assert.equal(pairer.stats.unmatchedResponses, 0);
      }),
      { numRuns: RUNS },
    );
  });
});
