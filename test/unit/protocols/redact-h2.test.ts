// SPDX-License-Identifier: Apache-2.0
/** --redact on raw HTTP/2: secret header values masked inside HPACK blocks, everything else intact. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { H2DirectionRedactor, type H2RedactStats } from '../../../src/protocols/redact-h2.js';
import { Redactor } from '../../../src/protocols/redact.js';
import { HpackEncoder, type FieldRepresentation, type HeaderField } from '../../../src/protocols/hpack.js';
import { huffmanEncode } from '../../../src/protocols/hpack-huffman.js';
import { Http2Connection, type Http2Exchange } from '../../../src/protocols/http2.js';
import { CONNECTION_PREFACE, concat, connection, data, frame, headers, settings, T, type GenExchange } from '../../helpers/http2-frames.js';

const RUNS = Number(process.env.FC_RUNS ?? 200);
const BEARER = 'Bearer SECRET-7f3a9c';
const COOKIE = 'session=COOKIESECRET-51d2';

function exchange(id: number, extra: HeaderField[] = []): GenExchange {
  return {
    streamId: id,
    request: [{ name: ':method', value: 'GET' }, { name: ':scheme', value: 'https' }, { name: ':authority', value: 'shop.test' }, { name: ':path', value: `/cart/${id}` }, { name: 'authorization', value: BEARER }, { name: 'cookie', value: COOKIE }, { name: 'x-trace', value: `t-${id}` }, ...extra],
    requestBody: new Uint8Array(0),
    response: [{ name: ':status', value: '200' }, { name: 'set-cookie', value: 'id=SETCOOKIESECRET-9' }, { name: 'content-type', value: 'text/plain' }],
    responseBody: new TextEncoder().encode(`body ${id}`),
    trailers: undefined,
  };
}

/** Masks a recording chunk by chunk, one redactor per direction, as the raw stage does. */
function maskAll(log: readonly { dir: 'client' | 'server'; bytes: Uint8Array }[], fromStart = true): { log: { dir: 'client' | 'server'; bytes: Uint8Array }[]; stats: H2RedactStats } {
  const stats: H2RedactStats = { masked: 0, splitBlocks: 0, unframedBytes: 0 };
  const r = new Redactor();
  const side = { client: new H2DirectionRedactor(r, stats, fromStart), server: new H2DirectionRedactor(r, stats, fromStart) };
  return { log: log.map((w) => ({ dir: w.dir, bytes: side[w.dir].push(w.bytes) })), stats };
}

function parse(log: readonly { dir: 'client' | 'server'; bytes: Uint8Array }[]): Http2Exchange[] {
  const c = new Http2Connection();
  const out: Http2Exchange[] = [];
  for (const w of log) out.push(...c.push(w.dir === 'client' ? 'outbound' : 'inbound', w.bytes, 0));
  out.push(...c.end(0));
  return out;
}

/** A recording cut into calls of the given sizes, in turn. */
function cut(log: readonly { dir: 'client' | 'server'; bytes: Uint8Array }[], sizes: readonly number[]): { dir: 'client' | 'server'; bytes: Uint8Array }[] {
  const pieces: { dir: 'client' | 'server'; bytes: Uint8Array }[] = [];
  let k = 0;
  for (const w of log) {
    for (let at = 0; at < w.bytes.length; ) {
      const n = sizes[k++ % sizes.length]!;
      pieces.push({ dir: w.dir, bytes: w.bytes.subarray(at, at + n) });
      at += n;
    }
  }
  return pieces;
}

const get = (h: readonly HeaderField[], n: string): string | undefined => h.find((x) => x.name === n)?.value;
const has = (hay: Uint8Array, needle: Uint8Array): boolean => Buffer.from(hay).includes(Buffer.from(needle));
const SECRETS = [BEARER, COOKIE, 'id=SETCOOKIESECRET-9'].flatMap((s) => [new TextEncoder().encode(s), huffmanEncode(new TextEncoder().encode(s))]);

describe('raw HTTP/2 redaction', () => {
  for (const huffman of [true, false]) {
    it(`masks Authorization, Cookie and Set-Cookie in place (${huffman ? 'Huffman' : 'plain'} values); the rest decodes as before`, () => {
      const log = connection([exchange(1), exchange(3), exchange(5)], { huffman });
      const before = parse(log);
      const { log: masked, stats } = maskAll(log);
      assert.deepEqual(masked.map((w) => w.bytes.length), log.map((w) => w.bytes.length), 'every chunk keeps its length');
      for (const w of masked) for (const s of SECRETS) assert.ok(!has(w.bytes, s), 'no secret octets left');
      const after = parse(masked);
      assert.equal(after.length, 3);
      assert.equal(stats.splitBlocks, 0);
      assert.equal(stats.unframedBytes, 0);
      after.forEach((x, i) => {
        const b = before[i]!;
        assert.equal(x.path, b.path);
        assert.equal(x.status, 200);
        assert.equal(get(x.request.headers, 'x-trace'), get(b.request.headers, 'x-trace'));
        assert.match(get(x.request.headers, 'authorization') ?? '', /^\*+$/);
        assert.match(get(x.request.headers, 'cookie') ?? '', /^\*+$/);
        assert.match(get(x.response.headers, 'set-cookie') ?? '', /^\*+$/);
        assert.deepEqual(x.response.body, b.response.body);
      });
      // the later requests name authorization from the dynamic table: its entry was masked when added
      assert.ok(stats.masked >= 3, `${stats.masked} values masked`);
    });
  }

  it('a block in HEADERS + CONTINUATION frames, with padding and priority, in one chunk', () => {
    const enc = new HpackEncoder();
    const block = headers(enc, 1, exchange(1).request, { pieces: 3, padding: 7, priority: true });
    const log = [{ dir: 'client' as const, bytes: concat([CONNECTION_PREFACE, settings(), block]) }];
    const { log: masked, stats } = maskAll(log);
    for (const s of SECRETS) assert.ok(!has(masked[0]!.bytes, s));
    assert.equal(stats.splitBlocks, 0);
    const c = new Http2Connection();
    c.push('outbound', masked[0]!.bytes, 0);
    const x = c.end(0)[0]!;
    assert.equal(x.path, '/cart/1');
    assert.match(get(x.request.headers, 'authorization') ?? '', /^\*+$/);
  });

  it('a literal whose name is a dynamic-table entry not seen (trace begun mid-connection) is masked', () => {
    const enc = new HpackEncoder();
    // the first block adds x-api-key (a name we do not know is secret) and authorization to the table
    const first = headers(enc, 1, [{ name: ':method', value: 'GET' }, { name: ':path', value: '/a' }, { name: 'x-api-key', value: 'k1' }]);
    // the second refers to x-api-key's name by index, with a new literal value
    const choose = (h: HeaderField): { huffman: boolean; mode: FieldRepresentation } => ({ huffman: false, mode: h.name === 'x-api-key' ? 'indexed-name-literal' : 'incremental' });
    const second = headers(enc, 3, [{ name: ':method', value: 'GET' }, { name: ':path', value: '/b' }, { name: 'x-api-key', value: 'APIKEYSECRET' }], { choose });
    void first; // encoded only to fill the encoder's table: the trace starts after it
    const stats: H2RedactStats = { masked: 0, splitBlocks: 0, unframedBytes: 0 };
    const d = new H2DirectionRedactor(new Redactor(), stats, false);
    const out = d.push(second);
    assert.ok(!has(out, new TextEncoder().encode('APIKEYSECRET')), 'an unknown name is treated as secret');
    assert.ok(has(out, new TextEncoder().encode('/b')), 'a field with a known, harmless name is left alone');
    assert.equal(stats.masked, 1, 'the one unknown-name value, counted');
  });

  it('a block split across chunks: its part in the earlier chunk is masked whole, and counted', () => {
    const log = connection([exchange(1)], { huffman: false });
    const req = log.findIndex((w) => w.dir === 'client' && w.bytes.length > 40 && w.bytes[3] === T.HEADERS);
    const w = log[req]!;
    const cut = 9 + 30;
    const split = [...log.slice(0, req), { dir: w.dir, bytes: w.bytes.subarray(0, cut) }, { dir: w.dir, bytes: w.bytes.subarray(cut) }, ...log.slice(req + 1)];
    const { log: masked, stats } = maskAll(split);
    assert.equal(stats.splitBlocks, 1);
    const all = concat(masked.filter((m) => m.dir === 'client').map((m) => m.bytes));
    for (const s of SECRETS) assert.ok(!has(all, s));
    // the frame after it is still framed: the response side is untouched by the split
    assert.equal(stats.unframedBytes, 0);
  });

  it('bytes that do not start a frame (a trace begun mid-frame, a gap) are masked whole until one does', () => {
    const stats: H2RedactStats = { masked: 0, splitBlocks: 0, unframedBytes: 0 };
    const d = new H2DirectionRedactor(new Redactor(), stats, false);
    const junk = new TextEncoder().encode('authorization: Bearer SECRET in the middle of something');
    const out = d.push(junk);
    assert.equal(out.length, junk.length);
    assert.ok(out.every((b) => b === 0x2a));
    assert.equal(stats.unframedBytes, junk.length);
    // a chunk that reads as a frame header: framed again
    const ping = frame(T.PING, 0, 0, new Uint8Array(8).fill(1));
    assert.deepEqual(d.push(ping), ping);
    d.gap();
    const after = data(1, new TextEncoder().encode('plain body'), false);
    assert.deepEqual(d.push(after), after, 'after a gap, a chunk starting with a frame is framed again');
  });

  it('any byte sequence, cut anywhere: never a throw, same lengths, and no secret of a generated connection survives', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 12 }), fc.boolean(), (cuts, huffman) => {
      const log = connection([exchange(1), exchange(3, [{ name: 'proxy-authorization', value: 'Basic PROXYSECRET' }])], { huffman });
      const pieces = cut(log, cuts);
      const { log: masked } = maskAll(pieces);
      for (const dir of ['client', 'server'] as const) {
        const all = concat(masked.filter((m) => m.dir === dir).map((m) => m.bytes));
        assert.equal(all.length, concat(pieces.filter((m) => m.dir === dir).map((m) => m.bytes)).length);
        for (const s of [...SECRETS, new TextEncoder().encode('PROXYSECRET'), huffmanEncode(new TextEncoder().encode('Basic PROXYSECRET'))]) assert.ok(!has(all, s));
      }
    }), { numRuns: RUNS });
    // begun mid-connection (after the settings), cut anywhere: framing on trial, still no secret
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 12 }), fc.boolean(), fc.integer({ min: 3, max: 5 }), (cuts, huffman, skip) => {
      const log = connection([exchange(1), exchange(3), exchange(5)], { huffman }).slice(skip);
      const pieces = cut(log, cuts);
      const { log: masked } = maskAll(pieces, false);
      for (const m of masked) for (const s of SECRETS) assert.ok(!has(m.bytes, s));
      const all = concat(masked.map((m) => m.bytes));
      for (const s of SECRETS) assert.ok(!has(all, s));
    }), { numRuns: RUNS });
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), (chunks) => {
      const stats: H2RedactStats = { masked: 0, splitBlocks: 0, unframedBytes: 0 };
      const d = new H2DirectionRedactor(new Redactor(), stats, true);
      for (const c of chunks) assert.equal(d.push(c).length, c.length);
    }), { numRuns: RUNS });
  });
});
