// SPDX-License-Identifier: Apache-2.0
// decodeSniSegment on synthetic ring records laid out as bpf/include/sni.h says (the same
// layout the integration test checks against the compiled BTF): every field round-trips, at any
// offset in the ring, and records that lie about their length are refused. SniPipeline.processBatch,
// which reads the same records in place, gives the events decode + process give.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeSniSegment, SNI_EVENT_LAYOUT, type SniOwner, type SniSegment } from '../../../src/gadgets/sni/decode.js';
import { formatIPv4, formatIPv6 } from '../../../src/net/addr.js';
import { SniPipeline } from '../../../src/gadgets/sni/pipeline.js';
import { RingBatch } from '../../../src/ebpf/ringbuf.js';
import { buildClientHello, seededRandom, shuffleInPlace, splitIntoSegments } from '../../helpers/clienthello.js';

const RUNS = Number(process.env.FC_RUNS ?? 300);
const L = SNI_EVENT_LAYOUT;

interface RawRecord {
  tsNs: bigint;
  family: 4 | 6;
  saddr: Uint8Array;
  daddr: Uint8Array;
  sport: number;
  dport: number;
  owner: (Omit<SniOwner, 'comm'> & { ts: bigint; comm: Uint8Array }) | undefined;
  seq: number;
  payloadLen: number;
  ifindex: number;
  pktType: number;
  first: boolean;
  payload: Uint8Array;
}

/** Writes a record the way the BPF program does (little-endian x86/arm64 layout). */
function encode(r: RawRecord, capturedLen = r.payload.length): Uint8Array {
  const buf = new Uint8Array(L.size + r.payload.length);
  const dv = new DataView(buf.buffer);
  dv.setBigUint64(L.ts_ns, r.tsNs, true);
  buf.set(r.saddr, L.tuple);
  buf.set(r.daddr, L.tuple + 16);
  dv.setUint16(L.tuple + 32, r.sport, true);
  dv.setUint16(L.tuple + 34, r.dport, true);
  dv.setUint8(L.tuple + 36, r.family);
  if (r.owner !== undefined) {
    const o = L.owner;
    dv.setBigUint64(o, r.owner.ts, true);
    dv.setUint32(o + 8, r.owner.pid, true);
    dv.setUint32(o + 12, r.owner.tid, true);
    dv.setUint32(o + 16, r.owner.uid, true);
    dv.setUint32(o + 20, r.owner.gid, true);
    dv.setUint32(o + 24, r.owner.mntns, true);
    dv.setUint32(o + 28, r.owner.netns, true);
    dv.setBigUint64(o + 32, r.owner.cgroupId, true);
    buf.set(r.owner.comm, o + 40);
    dv.setUint8(L.owner_known, 1);
  }
  dv.setUint32(L.seq, r.seq, true);
  dv.setUint32(L.payload_len, r.payloadLen, true);
  dv.setUint32(L.captured_len, capturedLen, true);
  dv.setUint32(L.ifindex, r.ifindex, true);
  dv.setUint8(L.pkt_type, r.pktType);
  dv.setUint8(L.first, r.first ? 1 : 0);
  buf.set(r.payload, L.size);
  return buf;
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const commArb = fc.uint8Array({ minLength: 0, maxLength: 16 }).map((b) => b.map((c) => 0x20 + (c % 95)));
const ownerArb = fc.record({
  ts: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  pid: u32,
  tid: u32,
  uid: u32,
  gid: u32,
  mntns: u32,
  netns: u32,
  cgroupId: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  comm: commArb,
});
const recordArb: fc.Arbitrary<RawRecord> = fc
  .record({
    tsNs: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    family: fc.constantFrom(4 as const, 6 as const),
    saddr: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    daddr: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    sport: fc.integer({ min: 0, max: 0xffff }),
    dport: fc.integer({ min: 0, max: 0xffff }),
    owner: fc.option(ownerArb, { nil: undefined }),
    seq: u32,
    payloadLen: u32,
    ifindex: u32,
    pktType: fc.integer({ min: 0, max: 255 }),
    first: fc.boolean(),
    payload: fc.uint8Array({ maxLength: 3000 }),
  })
  .map((r) => (r.family === 4 ? { ...r, saddr: r.saddr.map((b, i) => (i < 4 ? b : 0)), daddr: r.daddr.map((b, i) => (i < 4 ? b : 0)) } : r));

function expected(r: RawRecord): SniSegment {
  const fmt = r.family === 4 ? formatIPv4 : formatIPv6;
  let comm = '';
  if (r.owner !== undefined) for (const c of r.owner.comm) comm += String.fromCharCode(c);
  return {
    tsNs: r.tsNs,
    family: r.family,
    saddr: fmt(r.saddr),
    daddr: fmt(r.daddr),
    sport: r.sport,
    dport: r.dport,
    owner: r.owner === undefined ? undefined : { pid: r.owner.pid, tid: r.owner.tid, uid: r.owner.uid, gid: r.owner.gid, mntns: r.owner.mntns, netns: r.owner.netns, cgroupId: r.owner.cgroupId, comm },
    seq: r.seq,
    payloadLen: r.payloadLen,
    ifindex: r.ifindex,
    pktType: r.pktType,
    first: r.first,
    payload: r.payload,
  };
}

describe('decodeSniSegment', () => {
  it('round-trips every field of arbitrary records at arbitrary offsets of a larger buffer', () => {
    fc.assert(
      fc.property(recordArb, fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 64 }), (r, before, viewOffset) => {
        const rec = encode(r);
        // a ring's data area: the record somewhere inside, the DataView itself offset in its buffer
        const backing = new Uint8Array(viewOffset + before * 8 + rec.length + 32).fill(0xee);
        backing.set(rec, viewOffset + before * 8);
        const dv = new DataView(backing.buffer, viewOffset);
        const got = decodeSniSegment(dv, before * 8, rec.length);
        assert.deepEqual(got, expected(r));
      }),
      { numRuns: RUNS },
    );
  });

  it('copies the payload out of the ring (the ring may be overwritten once decode returns)', () => {
    const rec = encode({ tsNs: 1n, family: 4, saddr: new Uint8Array(16), daddr: new Uint8Array(16), sport: 1, dport: 2, owner: undefined, seq: 3, payloadLen: 3, ifindex: 1, pktType: 0, first: true, payload: Uint8Array.of(0x16, 3, 1) });
    const got = decodeSniSegment(new DataView(rec.buffer), 0, rec.length);
    rec.fill(0);
    assert.deepEqual([...got.payload], [0x16, 3, 1]);
  });

  it('formats addresses: IPv4 from the first four bytes, IPv6 compressed', () => {
    const v6 = new Uint8Array(16);
    v6[15] = 1;
    const base: RawRecord = { tsNs: 0n, family: 6, saddr: v6, daddr: Uint8Array.from([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]), sport: 443, dport: 55555, owner: undefined, seq: 0, payloadLen: 0, ifindex: 0, pktType: 4, first: false, payload: new Uint8Array(0) };
    let got = decodeSniSegment(new DataView(encode(base).buffer), 0, L.size);
    assert.equal(got.saddr, '::1');
    assert.equal(got.daddr, 'fd00::2');
    const v4 = new Uint8Array(16);
    v4.set([127, 0, 0, 1]);
    got = decodeSniSegment(new DataView(encode({ ...base, family: 4, saddr: v4, daddr: v4 }).buffer), 0, L.size);
    assert.equal(got.saddr, '127.0.0.1');
    assert.equal(got.family, 4);
  });

  it('a 16-byte comm without a terminating NUL is read whole; a NUL ends it early', () => {
    const owner = { ts: 0n, pid: 1, tid: 2, uid: 0, gid: 0, mntns: 0, netns: 0, cgroupId: 0n, comm: new TextEncoder().encode('abcdefghijklmnop') };
    const rec: RawRecord = { tsNs: 0n, family: 4, saddr: new Uint8Array(16), daddr: new Uint8Array(16), sport: 0, dport: 0, owner, seq: 0, payloadLen: 0, ifindex: 0, pktType: 0, first: false, payload: new Uint8Array(0) };
    assert.equal(decodeSniSegment(new DataView(encode(rec).buffer), 0, L.size).owner?.comm, 'abcdefghijklmnop');
    const withNul = { ...owner, comm: Uint8Array.from([0x63, 0x75, 0x72, 0x6c, 0, 0x78, 0x78]) };
    assert.equal(decodeSniSegment(new DataView(encode({ ...rec, owner: withNul }).buffer), 0, L.size).owner?.comm, 'curl');
  });

  it('refuses a record shorter than its header, or claiming more payload than it carries', () => {
    fc.assert(
      fc.property(recordArb, fc.integer({ min: 1, max: 5000 }), (r, extra) => {
        const rec = encode(r, r.payload.length + extra);
        assert.throws(() => decodeSniSegment(new DataView(rec.buffer), 0, rec.length), /claims \d+ payload bytes/);
        assert.throws(() => decodeSniSegment(new DataView(rec.buffer), 0, Math.min(rec.length, L.size - 1)), /shorter than its 128-byte header/);
      }),
      { numRuns: Math.min(RUNS, 100) },
    );
  });

  it('ignores whatever follows the captured bytes in the record (ring padding)', () => {
    const r: RawRecord = { tsNs: 5n, family: 4, saddr: new Uint8Array(16), daddr: new Uint8Array(16), sport: 9, dport: 10, owner: undefined, seq: 11, payloadLen: 1000, ifindex: 2, pktType: 0, first: true, payload: Uint8Array.of(1, 2, 3) };
    const rec = encode(r);
    const padded = new Uint8Array(rec.length + 5).fill(0xaa);
    padded.set(rec);
    const got = decodeSniSegment(new DataView(padded.buffer), 0, padded.length);
    assert.deepEqual([...got.payload], [1, 2, 3]);
    assert.equal(got.payloadLen, 1000, 'payload_len is the segment’s, captured_len what was copied');
  });
});

/** Records as drainBatch hands them out: each after an 8-byte ring header, 8-byte aligned. */
function batchOf(records: Uint8Array[]): RingBatch {
  const offsets: number[] = [];
  let size = 0;
  for (const r of records) {
    offsets.push(size + 8);
    size += (r.length + 8 + 7) & ~7;
  }
  const bytes = new Uint8Array(size).fill(0xee);
  records.forEach((r, i) => bytes.set(r, offsets[i] as number));
  return new RingBatch(bytes, Int32Array.from(offsets), Int32Array.from(records.map((r) => r.length)));
}

describe('SniPipeline.processBatch (records read in place)', () => {
  it('gives the events decodeSniSegment + process give, for flows of split, duplicated, shuffled hellos over IPv4 and IPv6, and counts a malformed record', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 1, max: 6 }), (seed, flows) => {
        const random = seededRandom(seed);
        const records: Uint8Array[] = [];
        for (let f = 0; f < flows; f++) {
          const family = random() < 0.5 ? 4 : 6;
          const addr = new Uint8Array(16);
          addr[0] = family === 4 ? 10 : 0xfd;
          addr[family === 4 ? 3 : 15] = 1 + f;
          const hello = buildClientHello({ seed: seed + f, serverName: `f${f}.batch.test`, alpn: ['h2'], postQuantum: random() < 0.5 });
          const segs = splitIntoSegments(hello.bytes, { seed: seed + f, mss: 200 + Math.floor(random() * 1500), duplicate: random() < 0.5 });
          const start = Math.min(...segs.map((s) => s.seq));
          const owner = random() < 0.7 ? { ts: 1n, pid: 100 + f, tid: 200 + f, uid: 0, gid: 0, mntns: 7, netns: 8, cgroupId: 9n, comm: new TextEncoder().encode(`c${f}`) } : undefined;
          for (const s of segs) {
            records.push(encode({ tsNs: BigInt(1e9 + f * 1e6), family, saddr: addr, daddr: addr.map((b, i) => (i === 1 ? 9 : b)), sport: 40000 + f, dport: 443, owner, seq: s.seq, payloadLen: s.payload.length, ifindex: 1, pktType: 0, first: s.seq === start, payload: s.payload }));
          }
        }
        shuffleInPlace(records, random);
        const bad = encode({ tsNs: 0n, family: 4, saddr: new Uint8Array(16), daddr: new Uint8Array(16), sport: 1, dport: 2, owner: undefined, seq: 0, payloadLen: 0, ifindex: 0, pktType: 0, first: true, payload: new Uint8Array(0) });
        bad[L.tuple + 36] = 9; // no such address family
        records.splice(Math.floor(random() * records.length), 0, bad);
        const b = batchOf(records);
        const segments = [];
        for (let i = 0; i < b.length; i++) {
          try {
            segments.push(decodeSniSegment(b.view, b.offsets[i] as number, b.lengths[i] as number));
          } catch {
            // the malformed one
          }
        }
        const objects = new SniPipeline({ now: () => 0 });
        const byObjects = objects.process(segments);
        const p = new SniPipeline({ now: () => 0 });
        const inPlace = p.processBatch(b);
        assert.equal(byObjects.length, flows, 'every hello once');
        assert.deepEqual(inPlace, byObjects);
        assert.equal(p.decodeErrors, 1);
        assert.match(p.lastDecodeError ?? '', /address family 9/);
        assert.deepEqual(p.stats(), objects.stats());
      }),
      { numRuns: Math.min(RUNS, 60) },
    );
  });

  it('keeps no view of the batch: the events survive the batch being overwritten', () => {
    const hello = buildClientHello({ seed: 3, serverName: 'keep.batch.test' });
    const rec = encode({ tsNs: 1n, family: 4, saddr: Uint8Array.of(127, 0, 0, 1, ...new Array(12).fill(0)), daddr: Uint8Array.of(127, 0, 0, 1, ...new Array(12).fill(0)), sport: 5, dport: 443, owner: undefined, seq: 1, payloadLen: hello.bytes.length, ifindex: 1, pktType: 0, first: true, payload: hello.bytes });
    const b = batchOf([rec]);
    const [ev] = new SniPipeline({ now: () => 0 }).processBatch(b);
    b.bytes.fill(0);
    assert.equal(ev?.name, 'keep.batch.test');
    assert.equal(ev?.src, '127.0.0.1:5');
  });
});
