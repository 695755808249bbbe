// SPDX-License-Identifier: Apache-2.0
// The UI's ring: bounded by entries and by bytes, oldest out first, sequence numbers that
// only grow and find their entry while it is kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EntryRing } from '../../../src/ui/ring.js';
import { entry } from './fixtures.js';

const detail = { request: undefined, response: undefined, chunks: [], chunksOmitted: 0 };

function push(r: EntryRing, n: number, bytes = 10): number[] {
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) {
    const { seq: _, ...rest } = entry({ seq: 0, kind: 'tls', summary: `#${i}` });
    seqs.push(r.push(rest, detail, bytes).seq);
  }
  return seqs;
}

test('ring: keeps the last N by count, evictions counted, sequence numbers go on', () => {
  const r = new EntryRing({ capacity: 4, maxBytes: 1 << 20 });
  assert.deepEqual(push(r, 6), [1, 2, 3, 4, 5, 6]);
  assert.equal(r.size, 4);
  assert.equal(r.evicted, 2);
  assert.deepEqual([...r.values()].map((i) => i.entry.seq), [3, 4, 5, 6]);
  assert.equal(r.get(2), undefined);
  assert.equal(r.get(3)?.entry.summary, '#2');
  assert.equal(r.get(6)?.entry.summary, '#5');
  assert.equal(r.get(7), undefined);
  assert.deepEqual([...r.values(4)].map((i) => i.entry.seq), [5, 6]);
  assert.deepEqual([...r.values(1)].map((i) => i.entry.seq), [3, 4, 5, 6], 'after an evicted one: all that is kept');
  assert.deepEqual([...r.values(6)], []);
});

test('ring: keeps within its byte budget (a large entry pushes several out)', () => {
  const r = new EntryRing({ capacity: 100, maxBytes: 100 });
  push(r, 10, 10);
  assert.equal(r.size, 10);
  assert.equal(r.sizeBytes, 100);
  push(r, 1, 35);
  assert.equal(r.size, 7);
  assert.equal(r.sizeBytes, 95);
  assert.equal(r.evicted, 4);
  push(r, 1, 500); // larger than the budget: kept alone
  assert.equal(r.size, 1);
  assert.equal([...r.values()][0]?.bytes, 500);
});

test('ring: wraps around many times', () => {
  const r = new EntryRing({ capacity: 3, maxBytes: 1 << 20 });
  push(r, 1000);
  assert.deepEqual([...r.values()].map((i) => i.entry.seq), [998, 999, 1000]);
  assert.equal(r.get(999)?.entry.seq, 999);
});
