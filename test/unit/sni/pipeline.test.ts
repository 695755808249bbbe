// SPDX-License-Identifier: Apache-2.0
// The user-space half of trace sni (SniPipeline: reassembly, owners, one event per hello) fed
// with segments the way the kernel forwards them: the segment that starts a ClientHello record
// is flagged `first` exactly as bpf/sni.bpf.c decides it, continuations follow in any order,
// loopback and veth copies repeat them, NAT shows them under a second 4-tuple, and new
// connections reuse finished connections' ports.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SniPipeline, type SniEvent } from '../../../src/gadgets/sni/pipeline.js';
import type { SniOwner, SniSegment } from '../../../src/gadgets/sni/decode.js';
import { parseClientHello, tlsVersionName, type ClientHello } from '../../../src/protocols/tls.js';
import { buildClientHello, buildCorruptedClientHello, fieldExists, LENGTH_FIELDS, shuffleInPlace, seededRandom, splitIntoSegments, type ClientHelloSpec, type Corruption } from '../../helpers/clienthello.js';
import { helloSpecArb } from '../protocols/arbitraries.js';

const RUNS = Number(process.env.FC_RUNS ?? 150);

/** What sni_socket calls the start of a ClientHello record (the `first` flag). */
function kernelFirst(p: Uint8Array): boolean {
  return p.length >= 3 && p[0] === 0x16 && p[1] === 0x03 && p[2]! <= 0x04 && (p.length < 9 || p[5] === 0x01);
}

interface Tuple {
  family: 4 | 6;
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
}

function owner(pid: number, comm = 'client'): SniOwner {
  return { pid, tid: pid + 1, uid: 1000, gid: 1000, mntns: 4026531840, netns: 4026531841, cgroupId: 1n, comm };
}

function seg(t: Tuple, seq: number, payload: Uint8Array, o: SniOwner | undefined): SniSegment {
  return { tsNs: 1n, ...t, owner: o, seq: seq >>> 0, payloadLen: payload.length, ifindex: 1, pktType: 0, first: kernelFirst(payload), payload };
}

function parsed(bytes: Uint8Array): ClientHello {
  const r = parseClientHello(bytes);
  assert.equal(r.status, 'ok');
  return (r as Extract<typeof r, { status: 'ok' }>).hello;
}

const V4: Tuple = { family: 4, saddr: '10.0.0.1', daddr: '10.0.0.2', sport: 40000, dport: 443 };

function assertEventFor(e: SniEvent, bytes: Uint8Array, t: Tuple, o: SniOwner | undefined): void {
  const h = parsed(bytes);
  assert.equal(e.name, h.serverName);
  assert.deepEqual(e.alpn, h.alpn);
  assert.equal(e.tlsVersion, tlsVersionName(h.highestVersion));
  assert.equal(e.src, t.family === 4 ? `${t.saddr}:${t.sport}` : `[${t.saddr}]:${t.sport}`);
  assert.equal(e.dst, t.family === 4 ? `${t.daddr}:${t.dport}` : `[${t.daddr}]:${t.dport}`);
  assert.equal(e.direction, o === undefined ? 'in' : 'out');
  assert.equal(e.proc.pid, o?.pid ?? 0);
  assert.equal(e.proc.tid, o?.tid ?? 0);
  assert.equal(e.proc.comm, o?.comm ?? '');
  assert.deepEqual([...e.hello.random], [...h.random]);
}

/**
 * The kernel's view: the segment at the stream start comes first (a continuation before it is
 * not forwarded), the rest in any order, each possibly twice.
 */
interface Segmentation {
  mss: number;
  isn: number;
  shuffleSeed: number;
  shuffle: boolean;
  duplicate: boolean;
  overlaps: number;
}

const segmentationArb: fc.Arbitrary<Segmentation> = fc.record({
  mss: fc.integer({ min: 1, max: 1600 }),
  isn: fc.integer({ min: 0, max: 0xffffffff }),
  shuffleSeed: fc.integer({ min: 1, max: 0x7fffffff }),
  shuffle: fc.boolean(),
  duplicate: fc.boolean(),
  overlaps: fc.integer({ min: 0, max: 3 }),
});

/**
 * The order segments reach the socket filter in: the one at the stream start first, the rest
 * in any order, each possibly twice (loopback and veth copies), plus overlapping resends.
 */
function wireOrder(bytes: Uint8Array, s: Segmentation): { seq: number; payload: Uint8Array }[] {
  const all = splitIntoSegments(bytes, { mss: s.mss, initialSeq: s.isn, duplicate: s.duplicate, overlaps: s.overlaps, seed: s.shuffleSeed });
  const firstIndex = all.findIndex((x) => x.seq === s.isn >>> 0);
  const [first] = all.splice(firstIndex, 1);
  if (s.shuffle) shuffleInPlace(all, seededRandom(s.shuffleSeed));
  return [first!, ...all];
}

const SNI_MAX_HELLO = 16384;

/**
 * What sni_socket forwards of one flow's segments, decided as bpf/sni.bpf.c decides it: a
 * segment that starts a ClientHello record opens a sequence window sized from its headers, a
 * segment inside the window is forwarded, the one reaching its end closes it.
 */
function kernelForward(segs: readonly { seq: number; payload: Uint8Array }[]): { seq: number; payload: Uint8Array }[] {
  let win: { start: number; end: number } | undefined;
  const out: { seq: number; payload: Uint8Array }[] = [];
  for (const x of segs) {
    const p = x.payload;
    if (kernelFirst(p)) {
      let need = SNI_MAX_HELLO;
      if (p.length >= 9) {
        const rec = (p[3]! << 8) | p[4]!;
        const hs = (p[6]! << 16) | (p[7]! << 8) | p[8]!;
        need = 9 + hs + (rec < hs + 4 ? 80 : 0);
        if (need > SNI_MAX_HELLO) need = SNI_MAX_HELLO;
      }
      if (p.length < need) win = { start: x.seq, end: (x.seq + need) >>> 0 };
      out.push(x);
      continue;
    }
    if (win === undefined) continue;
    const span = (win.end - win.start) >>> 0;
    if (((x.seq - win.start) >>> 0) >= span) continue;
    if (((x.seq + p.length - win.start) >>> 0) >= span) win = undefined;
    out.push(x);
  }
  return out;
}

/** Whether the forwarded segments cover the stream's first `length` bytes. */
function covers(segs: readonly { seq: number; payload: Uint8Array }[], isn: number, length: number): boolean {
  const have = new Uint8Array(length);
  for (const x of segs) {
    const off = (x.seq - isn) >>> 0;
    for (let i = 0; i < x.payload.length && off + i < length; i++) have[off + i] = 1;
  }
  return have.every((b) => b === 1);
}

/**
 * What reaches user space. Shuffling is kept to hellos of at most ~100 segments: the
 * assembler holds at most 128 out-of-order segments per flow (a documented bound), so a
 * 1400-byte hello in 3-byte segments in random order is dropped there by design.
 */
function kernelOrder(bytes: Uint8Array, s: Segmentation): { seq: number; payload: Uint8Array }[] {
  const pieces = Math.ceil(bytes.length / s.mss) * (s.duplicate ? 2 : 1) + s.overlaps;
  return kernelForward(wireOrder(bytes, pieces > 100 ? { ...s, shuffle: false } : s));
}

describe('SniPipeline: one event per ClientHello', () => {
  it('any hello, any segmentation, what the kernel forwards of it, loopback copies: one event with every field right', () => {
    let reported = 0;
    fc.assert(
      fc.property(helloSpecArb, segmentationArb, fc.boolean(), (spec, s, attributed) => {
        const bytes = buildClientHello(spec).bytes;
        const p = new SniPipeline({ now: () => 0 });
        const o = attributed ? owner(100) : undefined;
        const forwarded = kernelOrder(bytes, s);
        const events = p.process(forwarded.map((x) => seg(V4, x.seq, x.payload, o)));
        // In order, the kernel forwards the whole hello unless its first segment is under 3
        // bytes or the hello is cut into more records than its window allows for; reordered, a
        // segment behind the one that reached the window's end is not forwarded (documented
        // limits, src/gadgets/sni/README.md). Whatever it forwards, the pipeline must agree.
        const whole = covers(forwarded, s.isn >>> 0, bytes.length);
        const fewRecords = typeof spec.records === 'number' ? spec.records <= 17 : !Array.isArray(spec.records) || spec.records.length <= 16;
        if (s.mss >= 3 && (!s.shuffle || Math.ceil(bytes.length / s.mss) * (s.duplicate ? 2 : 1) > 100) && s.overlaps === 0 && fewRecords) assert.ok(whole, 'the kernel forwarded it all');
        assert.equal(events.length, whole ? 1 : 0);
        if (whole) {
          reported++;
          assertEventFor(events[0]!, bytes, V4, o);
        }
      }),
      { numRuns: RUNS },
    );
    assert.ok(reported > RUNS / 2, `${reported} of ${RUNS} runs reported a hello`);
  });

  it('many flows interleaved: one event per flow, each with its own name and owner', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(helloSpecArb, segmentationArb), { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 1 << 30 }), (flows, mixSeed) => {
        const random = seededRandom(mixSeed);
        const queues = flows.map(([spec, s], i) => {
          const bytes = buildClientHello({ ...spec, seed: (spec.seed ?? 1) * 31 + i }).bytes; // distinct randoms
          const t: Tuple = { ...V4, sport: 40000 + i };
          const segs = kernelOrder(bytes, s);
          return { bytes, t, o: owner(200 + i), segs, whole: covers(segs, s.isn >>> 0, bytes.length) };
        });
        const feed: SniSegment[] = [];
        while (queues.some((q) => q.segs.length > 0)) {
          const open = queues.filter((q) => q.segs.length > 0);
          const q = open[Math.floor(random() * open.length)]!;
          const x = q.segs.shift()!;
          feed.push(seg(q.t, x.seq, x.payload, q.o));
        }
        const p = new SniPipeline({ now: () => 0 });
        const events = p.process(feed);
        const complete = queues.filter((q) => q.whole);
        assert.equal(events.length, complete.length);
        for (const q of complete) {
          const e = events.find((ev) => ev.src === `${q.t.saddr}:${q.t.sport}`);
          assert.ok(e !== undefined);
          assertEventFor(e, q.bytes, q.t, q.o);
        }
      }),
      { numRuns: Math.max(20, Math.floor(RUNS / 3)) },
    );
  });

  it('the same hello under a second 4-tuple (NAT, another namespace) is reported once', () => {
    const bytes = buildClientHello({ serverName: 'nat.pipeline.test', postQuantum: true, seed: 3 }).bytes;
    const natted: Tuple = { family: 4, saddr: '192.0.2.10', daddr: '10.0.0.2', sport: 61000, dport: 443 };
    const p = new SniPipeline({ now: () => 0 });
    const inside = splitIntoSegments(bytes, { initialSeq: 1000 }).map((x) => seg(V4, x.seq, x.payload, owner(7)));
    const outside = splitIntoSegments(bytes, { initialSeq: 99999 }).map((x) => seg(natted, x.seq, x.payload, undefined));
    const events = p.process([...inside, ...outside]);
    assert.equal(events.length, 1);
    assertEventFor(events[0]!, bytes, V4, owner(7));
    assert.equal(p.stats().duplicates, 1);
  });

  it('IPv6 endpoints are bracketed', () => {
    const t: Tuple = { family: 6, saddr: 'fd00::1', daddr: '::1', sport: 50000, dport: 8443 };
    const bytes = buildClientHello({ serverName: 'v6.pipeline.test', seed: 4 }).bytes;
    const [e] = new SniPipeline({ now: () => 0 }).process([seg(t, 5, bytes, owner(9))]);
    assertEventFor(e!, bytes, t, owner(9));
    assert.equal(e!.src, '[fd00::1]:50000');
  });
});

describe('SniPipeline: owners', () => {
  it('the owner comes from whichever copy carried it before the hello completed', () => {
    const bytes = buildClientHello({ serverName: 'owner.pipeline.test', postQuantum: true, seed: 5 }).bytes;
    const segs = splitIntoSegments(bytes, { initialSeq: 10 });
    assert.ok(segs.length >= 2);
    // only the last segment is attributed (the owner was recorded late)
    const late = new SniPipeline({ now: () => 0 }).process(segs.map((x, i) => seg(V4, x.seq, x.payload, i === segs.length - 1 ? owner(11) : undefined)));
    assertEventFor(late[0]!, bytes, V4, owner(11));
    // only the first is (a later copy, e.g. the other end of a veth, lacks it)
    const early = new SniPipeline({ now: () => 0 }).process(segs.map((x, i) => seg(V4, x.seq, x.payload, i === 0 ? owner(12) : undefined)));
    assertEventFor(early[0]!, bytes, V4, owner(12));
  });

  it('no owner on any copy: direction in, no process', () => {
    const bytes = buildClientHello({ serverName: 'in.pipeline.test', seed: 6 }).bytes;
    const [e] = new SniPipeline({ now: () => 0 }).process([seg(V4, 1, bytes, undefined)]);
    assertEventFor(e!, bytes, V4, undefined);
  });
});

describe('SniPipeline: new connections on the same ports', () => {
  /** Each connection of a reused 4-tuple: complete, truncated or corrupted, at its own ISN. */
  const connectionArb = fc.record({
    kind: fc.constantFrom('complete' as const, 'complete' as const, 'truncated' as const, 'corrupt' as const),
    mss: fc.integer({ min: 200, max: 1500 }),
    postQuantum: fc.boolean(),
    /** ISN distance from the previous connection's: at least what a hello may span */
    gap: fc.integer({ min: 16384, max: 0xffffffff - 16384 }),
  });

  it('every complete hello on a reused 4-tuple is reported, with its own owner', () => {
    fc.assert(
      fc.property(fc.array(connectionArb, { minLength: 2, maxLength: 6 }), fc.integer({ min: 0, max: 0xffffffff }), (conns, isn0) => {
        const p = new SniPipeline({ now: () => 0 });
        let isn = isn0;
        const want: { name: string; pid: number }[] = [];
        const got: SniEvent[] = [];
        conns.forEach((c, i) => {
          const name = `c${i}.reuse.pipeline.test`;
          const spec: ClientHelloSpec = { serverName: name, postQuantum: c.postQuantum, seed: 1000 + i };
          let bytes = buildClientHello(spec).bytes;
          if (c.kind === 'truncated') bytes = bytes.slice(0, Math.max(10, bytes.length - 50));
          if (c.kind === 'corrupt') bytes = buildCorruptedClientHello(spec, { kind: 'length', field: 'serverNameList', delta: 1 });
          if (c.kind === 'complete') want.push({ name, pid: 300 + i });
          const segs = splitIntoSegments(bytes, { initialSeq: isn, mss: c.mss, duplicate: true });
          got.push(...p.process(segs.map((x) => seg(V4, x.seq, x.payload, owner(300 + i)))));
          isn = (isn + c.gap) >>> 0;
        });
        assert.deepEqual(got.map((e) => ({ name: e.name!, pid: e.proc.pid })), want);
      }),
      { numRuns: RUNS },
    );
  });

  it('a retransmitted first segment after the hello completed is not a new hello', () => {
    const bytes = buildClientHello({ serverName: 'retx.pipeline.test', postQuantum: true, seed: 7 }).bytes;
    const segs = splitIntoSegments(bytes, { initialSeq: 500 });
    const p = new SniPipeline({ now: () => 0 });
    assert.equal(p.process(segs.map((x) => seg(V4, x.seq, x.payload, owner(1)))).length, 1);
    assert.equal(p.process([seg(V4, segs[0]!.seq, segs[0]!.payload, owner(1))]).length, 0);
    assert.equal(p.stats().restarted, 0);
  });

  it('a continuation that looks like a record start (a record boundary on a segment boundary) stays in its hello', () => {
    // Cut the handshake into two records right before the compression-methods count (0x01), and
    // the stream into two segments at that record boundary: the second segment then begins
    // 16 03 01 xx xx 01, which the kernel flags as `first` too.
    const base: ClientHelloSpec = { serverName: 'boundary.pipeline.test', seed: 8 };
    const hs = buildClientHello(base).handshake;
    const at = 4 + 2 + 32 + 1 + 32 + 2 + ((hs[4 + 2 + 32 + 1 + 32]! << 8) | hs[4 + 2 + 32 + 1 + 32 + 1]!);
    assert.equal(hs[at], 0x01);
    const bytes = buildClientHello({ ...base, records: [at] }).bytes;
    const segs = splitIntoSegments(bytes, { initialSeq: 0xfffffff0, sizes: [5 + at] });
    assert.equal(kernelFirst(segs[1]!.payload), true, 'the kernel would flag the continuation');
    const p = new SniPipeline({ now: () => 0 });
    const events = p.process([...segs, ...segs].map((x) => seg(V4, x.seq, x.payload, owner(2))));
    assert.equal(events.length, 1);
    assertEventFor(events[0]!, bytes, V4, owner(2));
    assert.equal(p.stats().restarted, 0);
  });

  it('a truncated hello then a new connection only 1 s later still gets its event (idle timeout is 10 s)', () => {
    let now = 0;
    const p = new SniPipeline({ now: () => now });
    const cut = buildClientHello({ serverName: 'cut.pipeline.test', seed: 9 }).bytes.slice(0, 100);
    assert.equal(p.process([seg(V4, 1000, cut, owner(3))]).length, 0);
    now += 1000;
    const bytes = buildClientHello({ serverName: 'next.pipeline.test', seed: 10 }).bytes;
    const [e] = p.process([seg(V4, 1000 + 100 + 65537, bytes, owner(4))]);
    assertEventFor(e!, bytes, V4, owner(4));
  });
});

describe('SniPipeline: malformed input', () => {
  const corruptionArb: fc.Arbitrary<Corruption> = fc.oneof(
    fc.record({ kind: fc.constant('truncate' as const), at: fc.integer({ min: 1, max: 400 }) }),
    fc.record({ kind: fc.constant('length' as const), field: fc.constantFrom(...LENGTH_FIELDS), delta: fc.constantFrom(1, -1, 3, 0x85, -0x80) }),
    fc.record({ kind: fc.constant('oversized-name' as const), length: fc.integer({ min: 256, max: 2000 }) }),
    fc.record({ kind: fc.constant('non-printable-name' as const), position: fc.integer({ min: 0, max: 20 }), byte: fc.oneof(fc.integer({ min: 0, max: 0x20 }), fc.integer({ min: 0x7f, max: 0xff })) }),
    fc.record({ kind: fc.constant('record-type' as const), type: fc.integer({ min: 0, max: 255 }).filter((t) => t !== 22) }),
  );

  it('no corruption of a hello yields an event, and the pipeline goes on', () => {
    fc.assert(
      fc.property(corruptionArb, segmentationArb, fc.boolean(), (c, s, pq) => {
        const spec: ClientHelloSpec = { serverName: 'corrupt.pipeline.test', alpn: ['h2'], postQuantum: pq, seed: 12 };
        if (c.kind === 'length' && !fieldExists(spec, c.field)) return;
        const bad = buildCorruptedClientHello(spec, c);
        if (c.kind === 'truncate' && c.at >= buildClientHello(spec).bytes.length) return;
        const p = new SniPipeline({ now: () => 0 });
        const segs = bad.length === 0 ? [] : kernelOrder(bad, { ...s, overlaps: 0 });
        assert.deepEqual(p.process(segs.map((x) => seg(V4, x.seq, x.payload, owner(5)))), []);
        // the next connection (another 4-tuple) is reported
        const good = buildClientHello({ serverName: 'after.pipeline.test', seed: 13 }).bytes;
        const [e] = p.process([seg({ ...V4, sport: 40001 }, 77, good, owner(6))]);
        assert.equal(e?.name, 'after.pipeline.test');
      }),
      { numRuns: RUNS },
    );
  });

  it('random bytes behind a ClientHello record header never give a name that is not printable', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (tail) => {
        const bytes = Uint8Array.from([0x16, 0x03, 0x01, (tail.length + 4) >> 8, (tail.length + 4) & 0xff, 0x01, 0x00, (tail.length >> 8) & 0xff, tail.length & 0xff, ...tail]);
        const events = new SniPipeline({ now: () => 0 }).process([seg(V4, 1, bytes, undefined)]);
        for (const e of events) if (e.name !== undefined) assert.match(e.name, /^[\x21-\x7e]{1,255}$/);
      }),
      { numRuns: RUNS * 2 },
    );
  });
});
