// SPDX-License-Identifier: Apache-2.0
// The agent's per-client queue (bounded, drops counted), the event wire codec, the merge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { ClientStream } from '../../src/agent/client-stream.js';
import { decodeEvent, encodeEvent } from '../../src/output/event-wire.js';
import { TimeMerger } from '../../src/kube/merge.js';

class FakeCall extends EventEmitter {
  written: unknown[] = [];
  ended = false;
  room: number;
  constructor(room: number) {
    super();
    this.room = room;
  }
  write(m: unknown): boolean {
    this.written.push(m);
    return --this.room > 0;
  }
  end(): void {
    this.ended = true;
  }
  drain(room: number): void {
    this.room = room;
    this.emit('drain');
  }
}

type Msg = { events?: string[]; stats?: number };

test('a client that stops reading costs at most the bounds; the rest is dropped and counted', () => {
  const call = new FakeCall(1);
  const s = new ClientStream<Msg>(call, (json) => ({ events: json }), { maxEvents: 1000, maxBytes: 1 << 20 });
  const batch = Array.from({ length: 600 }, (_, i) => `{"i":${i}}`);
  for (let k = 0; k < 10; k++) s.events(batch); // 6000 events, the client took one message
  assert.ok(s.pending.events <= 1000, `queued ${s.pending.events}`);
  const firstMessage = (call.written[0] as Msg).events?.length ?? 0;
  assert.equal(s.pending.events + s.dropped + firstMessage, 6000);
  assert.ok(s.dropped >= 4400);
  call.drain(1_000_000);
  assert.equal(s.pending.events, 0);
  assert.equal(s.sent, 6000 - s.dropped);
  s.end({ stats: 1 });
  assert.ok(call.ended);
  assert.deepEqual(call.written.at(-1), { stats: 1 });
});

test('the byte bound holds too', () => {
  const call = new FakeCall(0);
  const s = new ClientStream<Msg>(call, (json) => ({ events: json }), { maxEvents: 1_000_000, maxBytes: 10_000 });
  s.events(Array.from({ length: 1000 }, () => 'x'.repeat(100)));
  assert.ok(s.pending.bytes <= 10_000);
  assert.ok(s.dropped >= 900);
});

test('events keep bytes and big integers across the wire', () => {
  const e = { timestamp: 1, proc: { pid: 2 }, data: Buffer.from([0, 1, 255]), view: new Uint8Array([7, 8]).subarray(1), n: 2n ** 60n, k8s: { node: 'n1' } };
  const back = decodeEvent<typeof e>(encodeEvent(e));
  assert.deepEqual([...back.data], [0, 1, 255]);
  assert.deepEqual([...back.view], [8]);
  assert.equal(back.n, 2n ** 60n);
  assert.equal(back.k8s.node, 'n1');
});

test('the merge orders events within its window and says which came too late', () => {
  const m = new TimeMerger<{ timestamp: number; id: string }>(100);
  m.push([{ timestamp: 1000, id: 'a2' }, { timestamp: 1050, id: 'a3' }]);
  m.push([{ timestamp: 990, id: 'b1' }]);
  assert.deepEqual(m.take(1080).map((e) => e.id), []);
  assert.deepEqual(m.take(1120).map((e) => e.id), ['b1', 'a2']);
  m.push([{ timestamp: 995, id: 'late' }]);
  assert.deepEqual(m.take(1200).map((e) => e.id), ['late', 'a3']);
  assert.equal(m.late, 1);
});
