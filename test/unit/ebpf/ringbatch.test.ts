// SPDX-License-Identifier: Apache-2.0
// RingWalker.drainBatch (batches over a copy of the ring's bytes) on the synthetic ring of
// fake-ring.ts: order, exactly once, discards, busy records, wrapping, and a batch that
// outlives the ring's reuse of its bytes. Unlike ringwalk.test.ts's ring, this one holds the
// data area once, as tlscope maps it: a record that wraps is really split in two.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RingWalker, type RingBatch } from '../../../src/ebpf/ringbuf.js';
import { BUSY, DISCARD, FakeRing, PAGE, walker } from './fake-ring.js';

const newRing = (size: number): FakeRing => new FakeRing(size, { mappedTwice: false });


const ids = (b: RingBatch): number[] => [...b.offsets].map((o) => b.view.getUint32(o, true));
const idPayload = (id: number, n: number): Uint8Array => {
  const p = new Uint8Array(n + 4).fill(0xee);
  new DataView(p.buffer).setUint32(0, id, true);
  return p;
};

test('a batch holds the committed records in order, stops at a busy one, skips discarded ones', () => {
  const r = newRing(2 * PAGE);
  const w = walker(r);
  r.write(idPayload(1, 3));
  r.write(idPayload(2, 10), DISCARD);
  r.write(idPayload(3, 0));
  const busy = r.write(idPayload(4, 20), BUSY) as number;
  r.write(idPayload(5, 1));
  const b = w.drainBatch(100);
  assert.deepEqual(ids(b), [1, 3]);
  assert.deepEqual([...b.lengths], [7, 4]);
  assert.deepEqual([...b.record(0)], [...idPayload(1, 3)]);
  r.commit(busy);
  assert.deepEqual(ids(w.drainBatch(100)), [4, 5]);
  assert.equal(w.pending(), 0);
  assert.equal(w.drainBatch(100).length, 0);
  assert.equal(w.stats.records, 4);
});

test('a wrapping record is whole, and a batch keeps its bytes after the ring reuses them', () => {
  const r = newRing(2 * PAGE);
  const w = walker(r);
  for (let i = 0; i < 7; i++) r.write(idPayload(i, 1000));
  assert.equal(w.drainBatch(100).length, 7);
  r.write(idPayload(100, 3000)); // crosses the end of the data area
  const b = w.drainBatch(100);
  assert.deepEqual(ids(b), [100]);
  for (let i = 0; i < 3; i++) r.write(idPayload(200 + i, 2000)); // overwrites what b was copied from
  assert.deepEqual([...b.record(0)], [...idPayload(100, 3000)]);
  assert.deepEqual(ids(w.drainBatch(2)), [200, 201]);
  assert.deepEqual(ids(w.drainBatch(2)), [202]);
});

test('property: any mix of writes (some discarded) and batch drains yields every record once, in order', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.record({ write: fc.integer({ min: 0, max: 700 }), discard: fc.boolean() }), fc.record({ drain: fc.integer({ min: 1, max: 5 }) })), { maxLength: 300 }),
      (ops) => {
        const r = newRing(2 * PAGE);
        const w = walker(r);
        const written: number[] = [];
        const got: number[] = [];
        let id = 0;
        for (const op of ops) {
          if ('write' in op) {
            if (r.write(idPayload(id, op.write), op.discard ? DISCARD : 0) !== undefined && !op.discard) written.push(id);
            id++;
          } else {
            got.push(...ids(w.drainBatch(op.drain)));
          }
        }
        for (;;) {
          const b = w.drainBatch(1000);
          got.push(...ids(b));
          if (b.length === 0 && w.pending() === 0) break;
        }
        assert.deepEqual(got, written);
      },
    ),
    { numRuns: 200 },
  );
});

test('drain() decodes a record split by the end of the data area from a copy of its halves', () => {
  const r = newRing(2 * PAGE);
  const w = walker(r);
  const got: Uint8Array[] = [];
  for (let i = 0; i < 7; i++) r.write(idPayload(i, 1000));
  assert.equal(w.drain(got, 100), 7);
  const big = idPayload(100, 3000);
  for (let i = 4; i < big.length; i++) big[i] = i & 0xff;
  r.write(big); // starts at 7 * 1008, ends past 8192
  r.write(idPayload(101, 5));
  got.length = 0;
  assert.equal(w.drain(got, 100), 2);
  assert.deepEqual([...(got[0] as Uint8Array)], [...big]);
  assert.deepEqual([...(got[1] as Uint8Array)], [...idPayload(101, 5)]);
});
