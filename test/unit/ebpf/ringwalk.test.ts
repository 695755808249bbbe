// SPDX-License-Identifier: Apache-2.0
// The ring walk on a synthetic ring in memory (fake-ring.ts): the same layout the kernel uses, with the data
// area "mapped twice" by writing every byte to both copies, as the double mmap makes it appear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RingWalker } from '../../../src/ebpf/ringbuf.js';
import { BUSY, DISCARD, FakeRing, PAGE, decodeBytes, payload, walker } from './fake-ring.js';

const newRing = (size: number): FakeRing => new FakeRing(size, { mappedTwice: true });


test('reads records in order with 8-byte padding and advances consumer_pos', () => {
  const r = newRing(PAGE);
  r.write(payload(1, 1));
  r.write(payload(13, 2));
  r.write(payload(8, 3));
  const w = walker(r);
  const out: Uint8Array[] = [];
  assert.equal(w.drain(out, 100), 3);
  assert.deepEqual(out.map((b) => [b.length, b[0]]), [[1, 1], [13, 2], [8, 3]]);
  assert.equal(Number(new BigInt64Array(r.consumer)[0]), 16 + 24 + 16);
  assert.equal(w.pending(), 0);
});

test('stops at a record still being written and resumes after its commit', () => {
  const r = newRing(PAGE);
  r.write(payload(4, 1));
  const busy = r.write(payload(4, 2), BUSY);
  r.write(payload(4, 3));
  const w = walker(r);
  const out: Uint8Array[] = [];
  assert.equal(w.drain(out, 100), 1, 'must not skip past an uncommitted record');
  assert.ok(busy !== undefined);
  r.commit(busy);
  assert.equal(w.drain(out, 100), 2);
  assert.deepEqual(out.map((b) => b[0]), [1, 2, 3]);
});

test('skips discarded records but consumes their space', () => {
  const r = newRing(PAGE);
  r.write(payload(4, 1));
  r.write(payload(40, 2), DISCARD);
  r.write(payload(4, 3));
  const out: Uint8Array[] = [];
  walker(r).drain(out, 100);
  assert.deepEqual(out.map((b) => b[0]), [1, 3]);
});

test('a record that wraps past the end of the data area is read whole', () => {
  const r = newRing(PAGE);
  const w = walker(r);
  const out: Uint8Array[] = [];
  r.write(payload(PAGE - 8 - 24, 7)); // leaves 24 bytes before the end
  w.drain(out, 10);
  const big = Uint8Array.from({ length: 100 }, (_, i) => i);
  r.write(big); // header at end-24, payload wraps to the start
  w.drain(out, 10);
  assert.deepEqual(out[1], big);
});

test('respects the per-drain cap', () => {
  const r = newRing(PAGE);
  for (let i = 0; i < 10; i++) r.write(payload(8, i));
  const w = walker(r);
  const out: Uint8Array[] = [];
  assert.equal(w.drain(out, 4), 4);
  assert.equal(w.drain(out, 4), 4);
  assert.equal(w.drain(out, 4), 2);
  assert.deepEqual(out.map((b) => b[0]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('a decoder that throws is counted and the walk goes on', () => {
  const r = newRing(PAGE);
  r.write(payload(4, 1));
  r.write(payload(5, 2));
  r.write(payload(4, 3));
  const w = new RingWalker(r.consumer, r.data, PAGE, r.size, (dv, off, len) => {
    if (len === 5) throw new Error('bad record');
    return dv.getUint8(off);
  });
  const out: number[] = [];
  w.drain(out, 10);
  assert.deepEqual(out, [1, 3]);
  assert.equal(w.stats.decodeErrors, 1);
});

test('rejects a ring size that is not a power of two', () => {
  const r = newRing(PAGE);
  assert.throws(() => new RingWalker(r.consumer, r.data, PAGE, 3 * PAGE, decodeBytes), /power of two/);
});

test('property: any mix of writes and drains yields every record once, in order', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.record({ write: fc.integer({ min: 0, max: 700 }) }), fc.record({ drain: fc.integer({ min: 1, max: 5 }) })), { maxLength: 300 }),
      (ops) => {
        const r = newRing(2 * PAGE);
        const w = walker(r);
        const written: number[] = [];
        const got: Uint8Array[] = [];
        let id = 0;
        for (const op of ops) {
          if ('write' in op) {
            const p = new Uint8Array(op.write + 4);
            new DataView(p.buffer).setUint32(0, id, true);
            if (r.write(p) !== undefined) written.push(id);
            id++;
          } else {
            w.drain(got, op.drain);
          }
        }
        while (w.drain(got, 1000) > 0);
        assert.deepEqual(got.map((b) => new DataView(b.buffer).getUint32(0, true)), written);
        assert.equal(w.pending(), 0);
      },
    ),
    { numRuns: 200 },
  );
});
