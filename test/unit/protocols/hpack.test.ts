// SPDX-License-Identifier: Apache-2.0
/** HPACK: the RFC 7541 examples, Huffman both ways, every representation, mid-connection starts, any bytes. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HpackDecoder, HpackEncoder, readInteger, type FieldRepresentation, type HeaderField } from '../../../src/protocols/hpack.js';
import { huffmanDecode, huffmanEncode } from '../../../src/protocols/hpack-huffman.js';

const RUNS = Number(process.env.FC_RUNS ?? 200);
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

describe('hpack', () => {
  it('decodes the RFC 7541 C.4 requests (Huffman, dynamic table across blocks)', () => {
    const d = new HpackDecoder({ fromStart: true });
    const r1 = d.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff'));
    assert.deepEqual(r1.headers, [
      { name: ':method', value: 'GET' }, { name: ':scheme', value: 'http' }, { name: ':path', value: '/' }, { name: ':authority', value: 'www.example.com' },
    ]);
    const r2 = d.decode(hex('8286 84be 5886 a8eb 1064 9cbf'));
    assert.deepEqual(r2.headers.slice(3), [{ name: ':authority', value: 'www.example.com' }, { name: 'cache-control', value: 'no-cache' }]);
    const r3 = d.decode(hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'));
    assert.deepEqual(r3.headers, [
      { name: ':method', value: 'GET' }, { name: ':scheme', value: 'https' }, { name: ':path', value: '/index.html' },
      { name: ':authority', value: 'www.example.com' }, { name: 'custom-key', value: 'custom-value' },
    ]);
    assert.ok(r3.ok && d.synced);
  });

  it('reads integers as RFC 7541 C.1 encodes them, and refuses overflow and truncation', () => {
    assert.deepEqual(readInteger(Uint8Array.of(0x0a), 0, 5), { value: 10, next: 1 });
    assert.deepEqual(readInteger(Uint8Array.of(0x1f, 0x9a, 0x0a), 0, 5), { value: 1337, next: 3 });
    assert.equal(readInteger(Uint8Array.of(0x1f, 0x9a), 0, 5), undefined);
    assert.equal(readInteger(Uint8Array.of(0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f), 0, 5), undefined);
  });

  it('Huffman: any bytes round-trip; EOS and bad padding are refused', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
      const e = huffmanEncode(b);
      assert.deepEqual(huffmanDecode(e, 0, e.length), b);
    }), { numRuns: RUNS });
    assert.equal(huffmanDecode(Uint8Array.of(0xff, 0xff, 0xff, 0xff), 0, 4), undefined); // EOS (30 ones)
    assert.equal(huffmanDecode(Uint8Array.of(0x00), 0, 1), undefined); // '0' (5 bits) then 000 padding
  });

  it('every representation, any table size, round-trips through encoder and decoder', () => {
    const field = fc.record({
      name: fc.oneof(fc.constantFrom(':path', ':method', 'content-type', 'cookie', 'x-a', 'authorization', 'grpc-status'), fc.stringMatching(/^[a-z0-9-]{1,20}$/)),
      value: fc.oneof(fc.constantFrom('GET', '/', '200', ''), fc.string({ maxLength: 60 }), fc.string({ unit: 'grapheme', maxLength: 10 })),
    });
    const choice = fc.record({ huffman: fc.boolean(), mode: fc.constantFrom<FieldRepresentation>('incremental', 'literal', 'never', 'indexed-name-literal') });
    fc.assert(fc.property(fc.array(fc.tuple(fc.array(fc.tuple(field, choice), { maxLength: 12 }), fc.option(fc.integer({ min: 0, max: 4096 }))), { maxLength: 8 }), (blocks) => {
      const enc = new HpackEncoder();
      const dec = new HpackDecoder({ fromStart: true });
      for (const [fields, resize] of blocks) {
        if (resize !== null) enc.setMaxTableSize(resize);
        const block = enc.encode(fields.map(([f]) => f), (_h, i) => fields[i]![1]);
        const r = dec.decode(block);
        assert.ok(r.ok, r.ok ? '' : r.error);
        assert.deepEqual(r.headers, fields.map(([f]) => ({ name: f.name, value: f.value })));
        assert.equal(r.undecoded.length, 0);
      }
    }), { numRuns: RUNS });
  });

  it('a decoder that missed the start says which fields it cannot read, and is synced once the table is refilled', () => {
    const enc = new HpackEncoder(256);
    const full = new HpackDecoder({ fromStart: true, maxTableSize: 256 });
    const late = new HpackDecoder({ fromStart: false, maxTableSize: 256 });
    const first: HeaderField[] = [{ name: 'x-early', value: 'one' }];
    full.decode(enc.encode(first)); // the late decoder never sees this block
    const second: HeaderField[] = [{ name: 'x-early', value: 'one' }, { name: 'x-new', value: 'two' }];
    const block = enc.encode(second);
    assert.deepEqual(full.decode(block).headers, second);
    const r = late.decode(block);
    assert.ok(r.ok);
    assert.deepEqual(r.headers, [{ name: 'x-new', value: 'two' }]);
    assert.deepEqual(r.undecoded, [{ index: 62, reason: 'dynamic-table-not-seen' }]);
    assert.equal(late.synced, false);
    // entries seen since then index correctly: x-new is now the newest
    const third = enc.encode([{ name: 'x-new', value: 'two' }]);
    assert.deepEqual(late.decode(third).headers, [{ name: 'x-new', value: 'two' }]);
    // fill the table with entries it sees: the unseen tail must have been evicted
    for (let i = 0; i < 8; i++) late.decode(enc.encode([{ name: `x-fill-${i}`, value: 'v'.repeat(20) }]));
    assert.equal(late.synced, true);
  });

  it('a literal whose indexed name was not seen keeps its value and says so', () => {
    const enc = new HpackEncoder();
    enc.encode([{ name: 'x-secret-name', value: 'a' }]);
    const block = enc.encode([{ name: 'x-secret-name', value: 'b' }], () => ({ huffman: false, mode: 'never' }));
    const r = new HpackDecoder({ fromStart: false }).decode(block);
    assert.deepEqual(r.undecoded, [{ index: 62, value: 'b', reason: 'dynamic-table-not-seen' }]);
  });

  it('any bytes: never throws; errors say why; a decoder that was fresh refuses unknown indexes', () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 6 }), fc.boolean(), (blocks, fromStart) => {
      const d = new HpackDecoder({ fromStart });
      for (const b of blocks) {
        const r = d.decode(b);
        if (!r.ok) assert.ok(r.error.length > 0);
      }
    }), { numRuns: RUNS * 5 });
    const r = new HpackDecoder({ fromStart: true }).decode(Uint8Array.of(0xbe)); // index 62, empty table
    assert.equal(r.ok, false);
  });

  it('caps what one block may decode to', () => {
    const enc = new HpackEncoder();
    const many = Array.from({ length: 100 }, (_, i) => ({ name: `x-${i}`, value: 'y'.repeat(100) }));
    const r = new HpackDecoder({ fromStart: true, maxHeaderListBytes: 2000 }).decode(enc.encode(many, () => ({ huffman: false, mode: 'literal' })));
    assert.ok(r.ok && r.truncated && r.headers.length < 100 && r.headers.length > 0);
  });
});
