// SPDX-License-Identifier: Apache-2.0
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ClientHelloAssembler, type AssemblerResult } from '../../../src/protocols/clienthello-assembler.js';
import { parseClientHello, type ClientHello } from '../../../src/protocols/tls.js';
import { buildClientHello, splitIntoSegments, type ClientHelloSpec, type TcpSegment } from '../../helpers/clienthello.js';
import { helloSpecArb } from './arbitraries.js';

const RUNS = Number(process.env.FC_RUNS ?? 200);
const NAMED: ClientHelloSpec = { serverName: 'late.example.test', alpn: ['h2', 'http/1.1'], postQuantum: true, seed: 11 };

class FakeClock {
  ms = 0;
  readonly now = (): number => this.ms;
}

function assembler(options: Partial<ConstructorParameters<typeof ClientHelloAssembler>[0]> = {}): ClientHelloAssembler {
  return new ClientHelloAssembler({ now: () => 0, ...options });
}

/** Feeds segments in the given order; returns every non-pending result. */
function feed(a: ClientHelloAssembler, segments: readonly TcpSegment[], flow = 'f'): AssemblerResult[] {
  return segments.map((s) => a.push(flow, s.seq, s.payload)).filter((r) => r.status !== 'pending');
}

function hellos(results: readonly AssemblerResult[]): ClientHello[] {
  return results.flatMap((r) => (r.status === 'hello' ? [r.hello] : []));
}

function directParse(bytes: Uint8Array): ClientHello {
  const result = parseClientHello(bytes);
  assert.equal(result.status, 'ok');
  return (result as Extract<typeof result, { status: 'ok' }>).hello;
}

describe('ClientHelloAssembler: in order and reordered', () => {
  it('reports a hello split over two segments once, when the second arrives', () => {
    const bytes = buildClientHello(NAMED).bytes;
    const [first, second] = splitIntoSegments(bytes, { initialSeq: 1000 });
    const a = assembler();
    assert.deepEqual(a.push('f', first!.seq, first!.payload), { status: 'pending' });
    const result = a.push('f', second!.seq, second!.payload);
    assert.equal(result.status, 'hello');
    assert.equal(result.status === 'hello' && result.hello.serverName, 'late.example.test');
    assert.deepEqual(a.push('f', second!.seq, second!.payload), { status: 'finished' });
    assert.equal(a.stats.hellos, 1);
    assert.equal(a.stats.segmentsAfterFinish, 1);
  });

  it('is not confused by loopback duplicates', () => {
    const bytes = buildClientHello(NAMED).bytes;
    const a = assembler();
    const segments = splitIntoSegments(bytes, { duplicate: true, mss: 500 });
    const results = feed(a, segments);
    assert.equal(hellos(results).length, 1);
    // Every duplicate but the last one's (which comes after the hello) is recognised as such.
    assert.equal(a.stats.duplicateSegments, segments.length / 2 - 1);
    assert.equal(a.stats.segmentsAfterFinish, 1);
  });

  it('places a later segment that arrives first once the start arrives', () => {
    const bytes = buildClientHello(NAMED).bytes;
    const segments = splitIntoSegments(bytes, { mss: 700 }).reverse();
    const results = feed(assembler(), segments);
    assert.deepEqual(hellos(results), [directParse(bytes)]);
  });

  it('handles sequence numbers that wrap past 2^32 in the middle of the hello', () => {
    const bytes = buildClientHello(NAMED).bytes;
    const segments = splitIntoSegments(bytes, { initialSeq: 0xffffffff - 600, mss: 400, shuffle: true, seed: 3 });
    assert.ok(segments.some((s) => s.seq < 1000));
    assert.equal(hellos(feed(assembler(), segments))[0]?.serverName, 'late.example.test');
  });

  it('with a given start, accepts first segments too short to recognise', () => {
    const bytes = buildClientHello(NAMED).bytes;
    const segments = splitIntoSegments(bytes, { initialSeq: 5, sizes: [1, 2, 3], mss: 300, shuffle: true, duplicate: true, seed: 8 });
    const a = assembler();
    a.startFlow('f', 5);
    assert.equal(hellos(feed(a, segments)).length, 1);
  });

  it('lets a start given late override the one the segments suggested', () => {
    const bytes = buildClientHello(NAMED).bytes;
    const segments = splitIntoSegments(bytes, { initialSeq: 900, sizes: [3], mss: 700 });
    const a = assembler();
    assert.deepEqual(feed(a, [...segments].reverse()), []); // the 3-byte first segment cannot anchor
    const result = a.startFlow('f', 900);
    assert.equal(result.status === 'hello' && result.hello.serverName, 'late.example.test');
  });

  it('finds a hello after a plaintext prelude (STARTTLS) by its record header', () => {
    const prelude = new TextEncoder().encode('220 ready\r\n');
    const hello = buildClientHello(NAMED).bytes;
    const stream = new Uint8Array(prelude.length + hello.length);
    stream.set(prelude);
    stream.set(hello, prelude.length);
    const segments = splitIntoSegments(stream, { sizes: [prelude.length], mss: 800, initialSeq: 77 });
    const a = assembler();
    assert.equal(hellos(feed(a, [segments[2]!, segments[0]!, segments[1]!]))[0]?.serverName, 'late.example.test');
    assert.equal(a.stats.segmentsBeforeStart, 1);
  });

  it('keeps flows apart', () => {
    const a = assembler();
    const one = splitIntoSegments(buildClientHello({ serverName: 'one.test', postQuantum: true }).bytes, { initialSeq: 1 });
    const two = splitIntoSegments(buildClientHello({ serverName: 'two.test', postQuantum: true }).bytes, { initialSeq: 1 });
    const results = [a.push('a', one[0]!.seq, one[0]!.payload), a.push('b', two[0]!.seq, two[0]!.payload)];
    results.push(a.push('b', two[1]!.seq, two[1]!.payload), a.push('a', one[1]!.seq, one[1]!.payload));
    assert.deepEqual(
      hellos(results).map((h) => h.serverName),
      ['two.test', 'one.test'],
    );
  });

  it('copies payloads: the caller may reuse its buffer at once', () => {
    const bytes = buildClientHello(NAMED).bytes;
    const segments = splitIntoSegments(bytes, { mss: 600 });
    const a = assembler();
    const scratch = new Uint8Array(600);
    const results: AssemblerResult[] = [];
    for (const s of [segments[1]!, segments[0]!, segments[2]!]) {
      scratch.set(s.payload);
      results.push(a.push('f', s.seq, scratch.subarray(0, s.payload.length)));
      scratch.fill(0xee);
    }
    assert.equal(hellos(results)[0]?.serverName, 'late.example.test');
  });

  it('re-anchors when the real start arrives after a segment that looked like one', () => {
    // Records split so that the second segment starts at a record header followed by bytes
    // that pass as a handshake header and client version: "01 00 00 08 03 03".
    const fake = Uint8Array.of(22, 3, 1, 0, 6, 1, 0, 0, 8, 3, 3);
    const real = buildClientHello(NAMED).bytes;
    const segments = [
      { seq: 100, payload: real },
      { seq: 100 + real.length, payload: fake },
    ];
    const a = assembler();
    const results = feed(a, [segments[1]!, segments[0]!]);
    assert.equal(hellos(results)[0]?.serverName, 'late.example.test');
  });
});

describe('ClientHelloAssembler: bounds and drops', () => {
  it('never reports a truncated stream', () => {
    const bytes = buildClientHello(NAMED).bytes;
    const segments = splitIntoSegments(bytes.subarray(0, bytes.length - 1), { mss: 500 });
    const a = assembler();
    assert.deepEqual(feed(a, segments), []);
    assert.equal(a.flowCount, 1);
  });

  it('drops a hello larger than the per-flow limit, counted as oversized', () => {
    const bytes = buildClientHello({ ...NAMED, paddedLength: 20_000 }).bytes;
    const a = assembler();
    const results = feed(a, splitIntoSegments(bytes, { mss: 1460 }));
    assert.equal(results[0]?.status, 'dropped');
    assert.equal(results[0]?.status === 'dropped' && results[0].reason, 'oversized');
    assert.ok(results.slice(1).every((r) => r.status === 'finished'));
    assert.equal(a.stats.dropped.oversized, 1);
  });

  it('accepts a hello right at the limit', () => {
    const bytes = buildClientHello({ ...NAMED, paddedLength: 4000 }).bytes;
    const a = assembler({ maxFlowBytes: bytes.length });
    assert.equal(hellos(feed(a, splitIntoSegments(bytes, { shuffle: true, seed: 2 }))).length, 1);
    const b = assembler({ maxFlowBytes: bytes.length - 1 });
    assert.equal(feed(b, splitIntoSegments(bytes, { shuffle: true, seed: 2 }))[0]?.status, 'dropped');
  });

  it('with a given start, drops a malformed hello at once with the parser reason', () => {
    const bytes = buildClientHello({ serverName: 'bad name.test' }).bytes;
    const a = assembler();
    a.startFlow('f', 0);
    const [result] = feed(a, splitIntoSegments(bytes, { initialSeq: 0 }));
    assert.equal(result?.status, 'dropped');
    assert.match(result?.status === 'dropped' ? result.detail : '', /host_name byte 3 is 0x20/);
    assert.equal(a.stats.dropped.invalid, 1);
  });

  it('without a start, does not anchor on a malformed hello, and says why when it gives up', () => {
    const bytes = buildClientHello({ serverName: 'bad name.test', paddedLength: 3000 }).bytes;
    const a = assembler({ maxFlowBytes: 2048 });
    const results = feed(a, splitIntoSegments(bytes, { mss: 1000 }));
    assert.equal(a.stats.rejectedStartCandidates, 1);
    assert.equal(results[0]?.status === 'dropped' && results[0].reason, 'no-handshake-start');
    assert.match(results[0]?.status === 'dropped' ? results[0].detail : '', /host_name byte 3 is 0x20/);
  });

  it('drops a flow whose retransmission disagrees with the first copy', () => {
    const bytes = buildClientHello(NAMED).bytes;
    const [first, second] = splitIntoSegments(bytes, { initialSeq: 0 });
    const altered = first!.payload.slice(100, 300);
    altered[7]! ^= 1;
    const a = assembler();
    a.push('f', first!.seq, first!.payload);
    const result = a.push('f', 100, altered);
    assert.equal(result.status === 'dropped' && result.reason, 'inconsistent-retransmission');
    assert.deepEqual(a.push('f', second!.seq, second!.payload), { status: 'finished' });
  });

  it('gives up on a flow that never starts a ClientHello', () => {
    const a = assembler({ maxFlowBytes: 4096 });
    const http = new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(200));
    const results = feed(a, splitIntoSegments(http, { mss: 512 }));
    assert.equal(results[0]?.status === 'dropped' && results[0].reason, 'no-handshake-start');
    assert.equal(a.stats.dropped['no-handshake-start'], 1);
  });

  it('bounds the out-of-order segments it holds', () => {
    const bytes = buildClientHello({ ...NAMED, paddedLength: 3000 }).bytes;
    const segments = splitIntoSegments(bytes, { mss: 10, initialSeq: 0 });
    const a = assembler({ maxHeldSegments: 8 });
    a.startFlow('f', 0);
    const results = feed(a, segments.slice(1, 20));
    assert.equal(results[0]?.status === 'dropped' && results[0].reason, 'buffer-limit');
  });

  it('evicts the least recently used flow beyond maxFlows', () => {
    const bytes = buildClientHello(NAMED).bytes;
    const [first, second] = splitIntoSegments(bytes);
    const a = assembler({ maxFlows: 2 });
    a.push('a', first!.seq, first!.payload);
    a.push('b', first!.seq, first!.payload);
    a.push('a', first!.seq, first!.payload); // a is now the most recent
    a.push('c', first!.seq, first!.payload); // evicts b
    assert.equal(a.flowCount, 2);
    assert.equal(a.stats.evictedFlows, 1);
    assert.equal(a.push('a', second!.seq, second!.payload).status, 'hello');
    assert.equal(a.push('b', second!.seq, second!.payload).status, 'pending'); // b starts over, without its start
  });

  it('forgets idle flows by the caller clock', () => {
    const clock = new FakeClock();
    const bytes = buildClientHello(NAMED).bytes;
    const [first] = splitIntoSegments(bytes);
    const a = new ClientHelloAssembler({ now: clock.now, idleTimeoutMs: 1000 });
    a.push('old', first!.seq, first!.payload);
    clock.ms = 600;
    a.push('new', first!.seq, first!.payload);
    clock.ms = 1100;
    assert.equal(a.expireIdle(), 1);
    assert.equal(a.flowCount, 1);
    clock.ms = 5000;
    a.push('other', first!.seq, first!.payload);
    assert.equal(a.flowCount, 1);
    assert.equal(a.stats.expiredFlows, 2);
  });

  it('forget drops a flow at once', () => {
    const a = assembler();
    const [first] = splitIntoSegments(buildClientHello(NAMED).bytes);
    a.push('f', first!.seq, first!.payload);
    a.forget('f');
    assert.equal(a.flowCount, 0);
  });
});

describe('ClientHelloAssembler properties', () => {
  /** A spec, its stream, and a segmentation whose first segment carries at least 6 bytes. */
  const scenario = fc.record({
    spec: helloSpecArb,
    sizes: fc.array(fc.integer({ min: 1, max: 1500 }), { maxLength: 12 }),
    firstSize: fc.integer({ min: 6, max: 1500 }),
    // Segments of at least 64 bytes keep even a 6 KiB hello under the 128 held segments.
    mss: fc.integer({ min: 64, max: 1460 }),
    initialSeq: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0xffffffff - 3000, max: 0xffffffff })),
    duplicate: fc.boolean(),
    overlaps: fc.integer({ min: 0, max: 4 }),
    seed: fc.integer({ min: 1, max: 0x7fffffff }),
    givenStart: fc.boolean(),
  });

  it('any order, duplication and overlap of the segments yields the same single hello', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const bytes = buildClientHello(s.spec).bytes;
        const segments = splitIntoSegments(bytes, {
          initialSeq: s.initialSeq,
          sizes: s.givenStart ? s.sizes : [s.firstSize, ...s.sizes],
          mss: s.mss,
          duplicate: s.duplicate,
          overlaps: s.overlaps,
          shuffle: true,
          seed: s.seed,
        });
        const a = assembler();
        if (s.givenStart) a.startFlow('f', s.initialSeq);
        const results = feed(a, segments);
        assert.equal(results[0]?.status, 'hello', JSON.stringify(results[0]));
        assert.ok(results.slice(1).every((r) => r.status === 'finished'));
        assert.deepEqual(hellos(results)[0], directParse(bytes));
      }),
      { numRuns: RUNS },
    );
  });

  it('a stream with a gap never yields a hello', () => {
    fc.assert(
      fc.property(scenario, fc.nat(), (s, pick) => {
        const bytes = buildClientHello(s.spec).bytes;
        const segments = splitIntoSegments(bytes, { initialSeq: s.initialSeq, sizes: [s.firstSize, ...s.sizes], mss: s.mss, seed: s.seed });
        const missing = segments[pick % segments.length]!;
        const rest = segments.filter((x) => x !== missing);
        const withDuplicates = s.duplicate ? [...rest, ...rest] : rest;
        const a = assembler();
        if (s.givenStart) a.startFlow('f', s.initialSeq);
        assert.deepEqual(hellos(feed(a, withDuplicates)), []);
      }),
      { numRuns: RUNS },
    );
  });
});
