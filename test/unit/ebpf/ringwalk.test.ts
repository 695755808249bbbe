// SPDX-License-Identifier: Apache-2.0
// The ring walk on a synthetic ring in memory: the same layout the kernel uses, with the data
// area "mapped twice" by writing every byte to both copies, as the double mmap makes it appear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RingWalker } from '../../../src/ebpf/ringbuf.js';

const PAGE = 4096;
const BUSY = 0x80000000;
const DISCARD = 0x40000000;

class FakeRing {
  readonly consumer = new ArrayBuffer(PAGE);
  readonly data: ArrayBuffer;
  private readonly bytes: Uint8Array;
  private readonly dv: DataView;
  prod = 0;

  constructor(readonly size: number) {
    this.data = new ArrayBuffer(PAGE + 2 * size);
    this.bytes = new Uint8Array(this.data);
    this.dv = new DataView(this.data);
  }

  private put(pos: number, src: Uint8Array): void {
    for (let i = 0; i < src.length; i++) {
      const off = (pos + i) % this.size;
      this.bytes[PAGE + off] = src[i] as number;
      this.bytes[PAGE + this.size + off] = src[i] as number;
    }
  }

  free(): number {
    const cons = Number(new BigInt64Array(this.consumer)[0]);
    return this.size - (this.prod - cons);
  }

  /** Writes one record; returns its position, or undefined when the ring is full. */
  write(payload: Uint8Array, flags = 0): number | undefined {
    const total = (payload.length + 8 + 7) & ~7;
    if (total > this.free()) return undefined;
    const hdr = new Uint8Array(8);
    new DataView(hdr.buffer).setUint32(0, (payload.length | flags) >>> 0, true);
    const at = this.prod;
    this.put(at, hdr);
    this.put(at + 8, payload);
    this.prod += total;
    this.dv.setBigUint64(0, BigInt(this.prod), true);
    return at;
  }

  commit(at: number): void {
    const off = at % this.size;
    for (const base of [PAGE + off, PAGE + this.size + off]) this.dv.setUint32(base, this.dv.getUint32(base, true) & ~BUSY, true);
  }
}

const decodeBytes = (dv: DataView, off: number, len: number): Uint8Array => new Uint8Array(dv.buffer, dv.byteOffset + off, len).slice();
const payload = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill & 0xff);

function walker(r: FakeRing): RingWalker<Uint8Array> {
  return new RingWalker(r.consumer, r.data, PAGE, r.size, decodeBytes);
}

test('reads records in order with 8-byte padding and advances consumer_pos', () => {
  const r = new FakeRing(PAGE);
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
  const r = new FakeRing(PAGE);
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
  const r = new FakeRing(PAGE);
  r.write(payload(4, 1));
  r.write(payload(40, 2), DISCARD);
  r.write(payload(4, 3));
  const out: Uint8Array[] = [];
  walker(r).drain(out, 100);
  assert.deepEqual(out.map((b) => b[0]), [1, 3]);
});

test('a record that wraps past the end of the data area is read whole', () => {
  const r = new FakeRing(PAGE);
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
  const r = new FakeRing(PAGE);
  for (let i = 0; i < 10; i++) r.write(payload(8, i));
  const w = walker(r);
  const out: Uint8Array[] = [];
  assert.equal(w.drain(out, 4), 4);
  assert.equal(w.drain(out, 4), 4);
  assert.equal(w.drain(out, 4), 2);
  assert.deepEqual(out.map((b) => b[0]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('a decoder that throws is counted and the walk goes on', () => {
  const r = new FakeRing(PAGE);
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
  const r = new FakeRing(PAGE);
  assert.throws(() => new RingWalker(r.consumer, r.data, PAGE, 3 * PAGE, decodeBytes), /power of two/);
});

test('property: any mix of writes and drains yields every record once, in order', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.record({ write: fc.integer({ min: 0, max: 700 }) }), fc.record({ drain: fc.integer({ min: 1, max: 5 }) })), { maxLength: 300 }),
      (ops) => {
        const r = new FakeRing(2 * PAGE);
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
