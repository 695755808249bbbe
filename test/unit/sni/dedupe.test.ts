// SPDX-License-Identifier: Apache-2.0
// trace sni reports each hello once, however many copies of it the packet sockets see, but
// never takes a different hello for a copy because it reuses a client random (a fixed random
// used to hide every later name, issue 9 (6)).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SniPipeline, SAME_BYTES_MS, SAME_TUPLE_MS } from '../../../src/gadgets/sni/pipeline.js';
import type { SniSegment } from '../../../src/gadgets/sni/decode.js';
import { buildClientHello, splitIntoSegments } from '../../helpers/clienthello.js';

interface Tuple {
  family: 4 | 6;
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
}

/** Offset of the client random in a one-record hello: record header 5, handshake header 4, version 2. */
const RANDOM_AT = 11;
const FIXED = new Uint8Array(32).fill(0x42);

function hello(name: string, seed: number, random?: Uint8Array): Uint8Array {
  const b = buildClientHello({ serverName: name, seed }).bytes.slice();
  if (random !== undefined) b.set(random, RANDOM_AT);
  return b;
}

function segs(t: Tuple, bytes: Uint8Array, isn: number, atMs: number): SniSegment[] {
  return splitIntoSegments(bytes, { initialSeq: isn, mss: 600 }).map((x, i) => ({
    tsNs: BigInt(atMs) * 1_000_000n,
    ...t,
    owner: undefined,
    seq: x.seq,
    payloadLen: x.payload.length,
    ifindex: 2,
    pktType: 0,
    first: i === 0,
    payload: x.payload,
  }));
}

const A: Tuple = { family: 4, saddr: '10.1.0.2', daddr: '10.1.0.1', sport: 41000, dport: 443 };
const B: Tuple = { family: 4, saddr: '10.1.0.2', daddr: '10.1.0.1', sport: 41001, dport: 443 };
const NAT: Tuple = { family: 4, saddr: '192.0.2.1', daddr: '10.1.0.1', sport: 61000, dport: 443 };

describe('SniPipeline: copies of a hello versus hellos that share a random', () => {
  it('different hellos reusing one 32-byte random on other connections are each reported', () => {
    const p = new SniPipeline({ now: () => 0 });
    const names = ['one.reuse.test', 'two.reuse.test', 'three.reuse.test'];
    const events = names.flatMap((n, i) => p.process(segs({ ...A, sport: 42000 + i }, hello(n, 1, FIXED), 1000 * (i + 1), 5 + i)));
    assert.deepEqual(events.map((e) => e.name), names);
    assert.deepEqual([...events[2]!.hello.random], [...FIXED]);
  });

  it('the same hello seen under a second 4-tuple (NAT) within the window is one event', () => {
    const p = new SniPipeline({ now: () => 0 });
    const bytes = hello('nat.reuse.test', 2, FIXED);
    const events = [...p.process(segs(A, bytes, 10, 100)), ...p.process(segs(NAT, bytes, 77777, 100 + SAME_BYTES_MS - 1))];
    assert.equal(events.length, 1);
    assert.equal(p.stats().duplicates >= 1, true);
  });

  it('the same bytes again after the window is a new connection (a replay), reported', () => {
    const p = new SniPipeline({ now: () => 0 });
    const bytes = hello('replay.reuse.test', 3, FIXED);
    const events = [...p.process(segs(A, bytes, 10, 0)), ...p.process(segs(B, bytes, 99999, SAME_BYTES_MS + 1))];
    assert.equal(events.length, 2);
  });

  it('same random and 4-tuple within a second merges; a second later it does not', () => {
    const p = new SniPipeline({ now: () => 0 });
    // a new connection on the same ports (ISN 64 KiB on), different bytes, same random
    const first = p.process(segs(A, hello('a.tuple.test', 4, FIXED), 10, 0));
    const soon = p.process(segs(A, hello('b.tuple.test', 5, FIXED), 10 + 65536, SAME_TUPLE_MS - 1));
    const late = p.process(segs(A, hello('c.tuple.test', 6, FIXED), 10 + 2 * 65536, 3 * SAME_TUPLE_MS));
    assert.deepEqual([...first, ...soon, ...late].map((e) => e.name), ['a.tuple.test', 'c.tuple.test']);
  });

  it('more than the remembered copies of one random: still every different hello', () => {
    const p = new SniPipeline({ now: () => 0 });
    const events = Array.from({ length: 40 }, (_, i) => p.process(segs({ ...B, sport: 30000 + i }, hello(`n${i}.many.test`, 7 + i, FIXED), 1, i))).flat();
    assert.equal(events.length, 40);
  });
});
