// SPDX-License-Identifier: Apache-2.0
// The kernel half of `trace sni` on crafted packets, through BPF_PROG_TEST_RUN on the real
// kernel: which segments the socket filter forwards (ring buffer), which flows it opens a
// sequence window for (sni_flows), what it counts (sni_stats); and the BTF layout of the
// structs the TypeScript decoder reads.
//
// What the kernel does with test_run data for a socket filter (net/bpf/test_run.c,
// bpf_prog_test_run_skb, verified here by the IPv4 case forwarding exactly its payload): the
// input must be a whole Ethernet frame; the kernel runs eth_type_trans() on it (against the
// loopback device: skb->protocol from the EtherType, pkt_type PACKET_HOST for a zero
// destination MAC), which *pulls* the Ethernet header, and only "L2" program types (tc) get it
// pushed back. So a socket filter under test_run sees skb->data at the IP header and skb->len
// without the 14 Ethernet bytes — unlike a real SOCK_RAW packet socket, where skb->data is at
// the link header. sni_socket finds the link-header length itself (link_header_len: the IP
// datagram ends the packet), which is 0 here and 14 on loopback/veth; both paths are covered,
// test_run here and real sockets in the other sni integration tests.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BpfObject } from '../../../src/ebpf/object.js';
import { RingBufReader } from '../../../src/ebpf/ringbuf.js';
import { decodeSniSegment, SNI_EVENT_LAYOUT, SNI_OWNER_PROC, type SniSegment } from '../../../src/gadgets/sni/decode.js';
import { parseClientHello } from '../../../src/protocols/tls.js';
import { buildClientHello } from '../../helpers/clienthello.js';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.sni);
import { encodeTuple, IPPROTO_TCP, TUPLE_LAYOUT } from '../../../src/net/tuple.js';
import { PROC_LAYOUT } from '../../../src/gadgets/proc-record.js';


// ---------------------------------------------------------------------------------------------
// frames

const V4_SRC = [10, 99, 0, 1];
const V4_DST = [10, 99, 0, 2];
const V6_SRC = [0xfd, 0, 0x05, 0xe1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_DST = [0xfd, 0, 0x05, 0xe1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const IPPROTO_UDP = 17;

function u16(n: number): number[] {
  return [(n >>> 8) & 0xff, n & 0xff];
}
function u32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

function ethernet(etherType: number, rest: number[] | Uint8Array): Uint8Array {
  return Uint8Array.from([...new Array<number>(12).fill(0), ...u16(etherType), ...rest]);
}

function tcp(sport: number, dport: number, seq: number, payload: Uint8Array, doffWords = 5): number[] {
  const options = new Array<number>((doffWords - 5) * 4).fill(1); // NOPs
  return [...u16(sport), ...u16(dport), ...u32(seq), ...u32(1), (doffWords << 4) & 0xf0, 0x18, ...u16(65535), 0, 0, 0, 0, ...options, ...payload];
}

interface V4Options {
  sport?: number;
  dport?: number;
  seq?: number;
  /** fragment offset in 8-byte units and the more-fragments flag */
  fragOffset?: number;
  moreFragments?: boolean;
  optionWords?: number;
  protocol?: number;
  /** total length written in the header (default: the real one) */
  totLen?: number;
  /** cut the frame after this many bytes of the IP datagram */
  truncateTo?: number;
}

function ipv4Frame(payload: Uint8Array, o: V4Options = {}): Uint8Array {
  const l4 = o.protocol === IPPROTO_UDP
    ? [...u16(o.sport ?? 40000), ...u16(o.dport ?? 443), ...u16(8 + payload.length), 0, 0, ...payload]
    : tcp(o.sport ?? 40000, o.dport ?? 443, o.seq ?? 1000, payload);
  const ihlWords = 5 + (o.optionWords ?? 0);
  const totLen = o.totLen ?? ihlWords * 4 + l4.length;
  const frag = ((o.moreFragments ? 0x2000 : 0) | (o.fragOffset ?? 0)) & 0xffff;
  const header = [0x40 | ihlWords, 0, ...u16(totLen), ...u16(0x1234), ...u16(frag), 64, o.protocol ?? IPPROTO_TCP, 0, 0, ...V4_SRC, ...V4_DST, ...new Array<number>((o.optionWords ?? 0) * 4).fill(1)];
  const datagram = [...header, ...l4];
  return ethernet(0x0800, datagram.slice(0, o.truncateTo ?? datagram.length));
}

/** An IPv6 extension header: next header, length in 8-byte units beyond the first, padding. */
function ext(kind: 'hop' | 'dest' | 'routing' | 'fragment' | 'auth', next: number, fragOffset = 0): number[] {
  switch (kind) {
    case 'hop':
    case 'dest':
      return [next, 0, 1, 4, 0, 0, 0, 0]; // PadN option filling the 8 bytes
    case 'routing':
      return [next, 2, 0, 0, 0, 0, 0, 0, ...new Array<number>(16).fill(0)]; // type 0, segments left 0, one address
    case 'fragment':
      return [next, 0, ...u16((fragOffset << 3) | 1), ...u32(0xabcd)];
    case 'auth':
      return [next, 4, 0, 0, ...u32(0x100), ...u32(1), ...new Array<number>(12).fill(0)]; // (4 + 2) * 4 = 24 bytes
  }
}

const NEXT: Record<'hop' | 'dest' | 'routing' | 'fragment' | 'auth', number> = { hop: 0, dest: 60, routing: 43, fragment: 44, auth: 51 };

function ipv6Frame(payload: Uint8Array, o: { sport?: number; dport?: number; seq?: number; exts?: readonly ('hop' | 'dest' | 'routing' | 'fragment' | 'auth')[]; fragOffset?: number } = {}): Uint8Array {
  const exts = o.exts ?? [];
  const l4 = tcp(o.sport ?? 40001, o.dport ?? 443, o.seq ?? 5000, payload);
  const chain: number[] = [];
  exts.forEach((kind, i) => chain.push(...ext(kind, i + 1 < exts.length ? NEXT[exts[i + 1]!] : IPPROTO_TCP, kind === 'fragment' ? o.fragOffset ?? 0 : 0)));
  const first = exts.length > 0 ? NEXT[exts[0]!] : IPPROTO_TCP;
  const header = [0x60, 0, 0, 0, ...u16(chain.length + l4.length), first, 64, ...V6_SRC, ...V6_DST];
  return ethernet(0x86dd, [...header, ...chain, ...l4]);
}

// ---------------------------------------------------------------------------------------------
// the program under test

let obj: BpfObject;
let reader: RingBufReader<SniSegment>;

before(() => {
  if (kernelSkip) return;
  obj = BpfObject.load('sni');
  // A drain period far beyond the test: records stay in the ring until run() takes them.
  reader = new RingBufReader(obj.map('events'), { decode: decodeSniSegment, intervalMs: 3_600_000 });
});

after(async () => {
  await reader?.close();
  obj?.close();
});

const STAT = { forwarded: 0, helloStarts: 1, loadErrors: 2 } as const;

function stats(): Record<keyof typeof STAT, bigint> {
  const m = obj.map('sni_stats');
  return { forwarded: m.sumU64(STAT.forwarded), helloStarts: m.sumU64(STAT.helloStarts), loadErrors: m.sumU64(STAT.loadErrors) };
}

interface RunResult {
  retval: number;
  forwarded: SniSegment[];
  delta: Record<keyof typeof STAT, bigint>;
}

/** Runs sni_socket once on `frame` and takes whatever it put in the ring (synchronously). */
function run(frame: Uint8Array): RunResult {
  const before = stats();
  const r = obj.program('sni_socket').testRun(frame);
  const forwarded = reader.drainNow();
  const after = stats();
  return {
    retval: r.retval,
    forwarded,
    delta: { forwarded: after.forwarded - before.forwarded, helloStarts: after.helloStarts - before.helloStarts, loadErrors: after.loadErrors - before.loadErrors },
  };
}

/** run(), or 'refused' when test_run rejects the frame itself with EINVAL. */
function runOrRefused(frame: Uint8Array): RunResult | 'refused' {
  try {
    return run(frame);
  } catch (e) {
    if ((e as { errno?: number }).errno === 22) return 'refused';
    throw e;
  }
}

/** The sni_owners/sni_flows key of a segment: the packet's tuple (protocol TCP), as sockets are keyed too. */
function tupleKey(family: 4 | 6, sport: number, dport: number): Buffer {
  return encodeTuple({ family, protocol: IPPROTO_TCP, saddr: family === 4 ? V4_SRC : V6_SRC, daddr: family === 4 ? V4_DST : V6_DST, sport, dport });
}

function flowWindow(key: Buffer): { start: number; end: number } | undefined {
  const v = obj.map('sni_flows').lookup(key);
  return v === undefined ? undefined : { start: v.readUInt32LE(0), end: v.readUInt32LE(4) };
}

function nameOf(bytes: Uint8Array): string | undefined {
  const r = parseClientHello(bytes);
  assert.equal(r.status, 'ok', JSON.stringify(r));
  return r.status === 'ok' ? r.hello.serverName : undefined;
}

const SMALL = buildClientHello({ serverName: 'first.testrun.test', alpn: ['h2'], seed: 3 }).bytes;
/** ~3 KB: a post-quantum key share and padding, the name after all of it. */
const LARGE = (() => {
  const base = { serverName: 'late.testrun.test', postQuantum: true, paddedLength: 3000, seed: 4 } as const;
  const types = buildClientHello(base).extensionTypes.filter((t) => t !== 0);
  const built = buildClientHello({ ...base, extensionOrder: types });
  assert.ok((built.serverNameOffset ?? 0) > 2900, 'the name is at the end');
  return built.bytes;
})();

// ---------------------------------------------------------------------------------------------

test('IPv4: a segment with a whole ClientHello is forwarded once, exactly, without a flow window', { skip: kernelSkip }, () => {
  const r = run(ipv4Frame(SMALL, { sport: 41000, seq: 0xfffffff0 }));
  assert.equal(r.retval, 0, 'the packet socket queues nothing');
  assert.equal(r.forwarded.length, 1);
  assert.deepEqual(r.delta, { forwarded: 1n, helloStarts: 1n, loadErrors: 0n });
  const s = r.forwarded[0]!;
  assert.equal(s.family, 4);
  assert.equal(s.saddr, '10.99.0.1');
  assert.equal(s.daddr, '10.99.0.2');
  assert.equal(s.sport, 41000);
  assert.equal(s.dport, 443);
  assert.equal(s.seq, 0xfffffff0);
  assert.equal(s.payloadLen, SMALL.length);
  assert.equal(s.first, true);
  assert.equal(s.owner, undefined, 'no process sent it');
  assert.equal(s.pktType, 0, 'PACKET_HOST from eth_type_trans');
  assert.equal(s.ifindex, 1, 'test_run uses the loopback device');
  assert.deepEqual([...s.payload], [...SMALL], 'the payload starts at the TCP payload: the link header length was 0');
  assert.equal(nameOf(s.payload), 'first.testrun.test');
  assert.equal(flowWindow(tupleKey(4, 41000, 443)), undefined);
});

test('the owner recorded for the 4-tuple (in process context) rides along', { skip: kernelSkip }, () => {
  const key = tupleKey(4, 41001, 443);
  const owner = Buffer.alloc(56);
  owner.writeBigUInt64LE(123n, 0);
  owner.writeUInt32LE(4242, 8); // pid
  owner.writeUInt32LE(4243, 12); // tid
  owner.writeUInt32LE(1000, 16); // uid
  owner.writeUInt32LE(1001, 20); // gid
  owner.writeUInt32LE(4026531840, 24); // mntns
  owner.writeUInt32LE(4026531841, 28); // netns
  owner.writeBigUInt64LE(77n, 32); // cgroup id
  owner.write('fake-client', 40, 'latin1');
  obj.map('sni_owners').update(key, owner);
  try {
    const r = run(ipv4Frame(SMALL, { sport: 41001 }));
    assert.equal(r.forwarded.length, 1);
    assert.deepEqual(r.forwarded[0]!.owner, { pid: 4242, tid: 4243, uid: 1000, gid: 1001, mntns: 4026531840, netns: 4026531841, cgroupId: 77n, comm: 'fake-client' });
  } finally {
    obj.map('sni_owners').delete(key);
  }
});

test('a ClientHello over three segments: the first opens a window, continuations inside it are forwarded, the last closes it', { skip: kernelSkip }, () => {
  const seq = 0xfffffc00; // the window wraps past 2^32
  const key = tupleKey(4, 41002, 443);
  const cuts = [0, 1448, 2896, LARGE.length];
  const got: SniSegment[] = [];
  for (let i = 0; i < 3; i++) {
    const piece = LARGE.slice(cuts[i], cuts[i + 1]);
    const r = run(ipv4Frame(piece, { sport: 41002, seq: (seq + cuts[i]!) >>> 0 }));
    assert.equal(r.forwarded.length, 1, `segment ${i} is forwarded`);
    assert.equal(r.delta.helloStarts, i === 0 ? 1n : 0n);
    assert.equal(r.forwarded[0]!.first, i === 0);
    got.push(r.forwarded[0]!);
    if (i === 0) assert.deepEqual(flowWindow(key), { start: seq, end: (seq + LARGE.length) >>> 0 }, 'window = the handshake record');
    if (i === 1) assert.ok(flowWindow(key) !== undefined, 'still open');
  }
  assert.equal(flowWindow(key), undefined, 'the segment that completes the window closes it');
  const joined = new Uint8Array(LARGE.length);
  for (const s of got) joined.set(s.payload, (s.seq - seq) >>> 0);
  assert.equal(nameOf(joined), 'late.testrun.test');

  // After the window: more bytes of the same connection are not forwarded.
  const after = run(ipv4Frame(Uint8Array.from([1, 2, 3, 4]), { sport: 41002, seq: (seq + LARGE.length) >>> 0 }));
  assert.equal(after.forwarded.length, 0);
});

test('a continuation that arrives before its first segment is not forwarded (documented limit)', { skip: kernelSkip }, () => {
  const r = run(ipv4Frame(LARGE.slice(1448, 2896), { sport: 41003, seq: 7000 + 1448 }));
  assert.equal(r.forwarded.length, 0);
  assert.equal(flowWindow(tupleKey(4, 41003, 443)), undefined);
});

test('segments that do not start a ClientHello record are not forwarded', { skip: kernelSkip }, () => {
  const http = new TextEncoder().encode('GET / HTTP/1.1\r\nHost: plain.testrun.test\r\n\r\n');
  const appData = Uint8Array.from([0x17, 0x03, 0x03, 0x00, 0x10, ...new Array<number>(16).fill(7)]);
  const serverHello = Uint8Array.from([0x16, 0x03, 0x03, 0x00, 0x30, 0x02, 0x00, 0x00, 0x2c, ...new Array<number>(44).fill(0)]);
  const sslv2ish = Uint8Array.from([0x16, 0x03, 0x07, 0x00, 0x10, 0x01, 0x00, 0x00, 0x0c, ...new Array<number>(12).fill(0)]);
  for (const [what, payload] of [['HTTP', http], ['application data', appData], ['ServerHello', serverHello], ['record version 0x0307', sslv2ish]] as const) {
    const r = run(ipv4Frame(payload, { sport: 41004 }));
    assert.equal(r.forwarded.length, 0, what);
    assert.deepEqual(r.delta, { forwarded: 0n, helloStarts: 0n, loadErrors: 0n }, what);
  }
  const noPayload = run(ipv4Frame(new Uint8Array(0), { sport: 41004 }));
  assert.equal(noPayload.forwarded.length, 0, 'a bare ACK');
  const udp = run(ipv4Frame(SMALL, { protocol: IPPROTO_UDP, sport: 41004 }));
  assert.equal(udp.forwarded.length, 0, 'UDP');
});

test('a first segment shorter than the handshake header opens a maximal window', { skip: kernelSkip }, () => {
  const r = run(ipv4Frame(SMALL.slice(0, 3), { sport: 41005, seq: 100 }));
  assert.equal(r.forwarded.length, 1);
  assert.equal(r.forwarded[0]!.first, true);
  assert.deepEqual(flowWindow(tupleKey(4, 41005, 443)), { start: 100, end: 100 + 16384 });
  const rest = run(ipv4Frame(SMALL.slice(3), { sport: 41005, seq: 103 }));
  assert.equal(rest.forwarded.length, 1, 'the rest is a continuation');
  assert.equal(rest.forwarded[0]!.first, false);
  obj.map('sni_flows').delete(tupleKey(4, 41005, 443));
});

test('IPv4 options and TCP options are skipped', { skip: kernelSkip }, () => {
  const frame = ipv4Frame(SMALL, { sport: 41006, optionWords: 3 });
  const r = run(frame);
  assert.equal(r.forwarded.length, 1);
  assert.equal(nameOf(r.forwarded[0]!.payload), 'first.testrun.test');
  // TCP options (doff 8): the payload still starts right after them
  const withTcpOptions = ethernet(0x0800, [0x45, 0, ...u16(20 + 32 + SMALL.length), 0, 0, 0, 0, 64, 6, 0, 0, ...V4_SRC, ...V4_DST, ...tcp(41007, 443, 1, SMALL, 8)]);
  const t = run(withTcpOptions);
  assert.equal(t.forwarded.length, 1);
  assert.deepEqual([...t.forwarded[0]!.payload], [...SMALL]);
});

test('IPv4 fragments: a first fragment is parsed, a non-first fragment is ignored', { skip: kernelSkip }, () => {
  const first = run(ipv4Frame(SMALL.slice(0, 200), { sport: 41008, moreFragments: true }));
  assert.equal(first.forwarded.length, 1, 'offset 0 with MF carries the TCP header');
  obj.map('sni_flows').delete(tupleKey(4, 41008, 443));
  // A non-first fragment whose bytes happen to look like a TCP header + ClientHello.
  const later = run(ipv4Frame(SMALL, { sport: 41009, fragOffset: 185 }));
  assert.equal(later.forwarded.length, 0);
  assert.equal(later.delta.helloStarts, 0n);
});

test('IPv6: plain, with hop-by-hop and destination options, with routing + fragment + AH', { skip: kernelSkip }, () => {
  const plain = run(ipv6Frame(SMALL, { sport: 42000 }));
  assert.equal(plain.forwarded.length, 1);
  const s = plain.forwarded[0]!;
  assert.equal(s.family, 6);
  assert.equal(s.saddr, 'fd00:5e1::1');
  assert.equal(s.daddr, 'fd00:5e1::2');
  assert.equal(s.sport, 42000);
  assert.deepEqual([...s.payload], [...SMALL]);

  const hopDest = run(ipv6Frame(SMALL, { sport: 42001, exts: ['hop', 'dest'] }));
  assert.equal(hopDest.forwarded.length, 1, 'hop-by-hop + destination options');
  assert.deepEqual([...hopDest.forwarded[0]!.payload], [...SMALL]);

  const mixed = run(ipv6Frame(SMALL, { sport: 42002, exts: ['hop', 'routing', 'fragment', 'auth', 'dest'] }));
  assert.equal(mixed.forwarded.length, 1, 'five different extension headers');
  assert.deepEqual([...mixed.forwarded[0]!.payload], [...SMALL]);
  assert.equal(nameOf(mixed.forwarded[0]!.payload), 'first.testrun.test');
});

test('IPv6: a non-first fragment and a chain longer than the walk bound are ignored', { skip: kernelSkip }, () => {
  const frag = run(ipv6Frame(SMALL, { sport: 42003, exts: ['fragment'], fragOffset: 100 }));
  assert.equal(frag.forwarded.length, 0);
  const eight = run(ipv6Frame(SMALL, { sport: 42004, exts: ['dest', 'dest', 'dest', 'dest', 'dest', 'dest', 'dest', 'dest'] }));
  assert.equal(eight.forwarded.length, 1, 'eight extension headers are walked');
  const nine = run(ipv6Frame(SMALL, { sport: 42005, exts: ['dest', 'dest', 'dest', 'dest', 'dest', 'dest', 'dest', 'dest', 'dest'] }));
  assert.equal(nine.forwarded.length, 0, 'nine are beyond the bound');
});

test('truncated packets are counted as read errors, never forwarded, and do not disturb what follows', { skip: kernelSkip }, () => {
  // IP says 600 bytes, the frame carries far fewer
  const short = run(ipv4Frame(SMALL.slice(0, 100), { sport: 41010, totLen: 600 }));
  assert.equal(short.retval, 0);
  assert.equal(short.forwarded.length, 0);
  assert.equal(short.delta.loadErrors, 1n);
  // the TCP header cut in the middle
  const cutTcp = run(ipv4Frame(SMALL, { sport: 41011, truncateTo: 30 }));
  assert.equal(cutTcp.forwarded.length, 0);
  assert.equal(cutTcp.delta.loadErrors, 1n);
  // an IPv6 extension header running past the end
  const v6 = ipv6Frame(SMALL, { exts: ['hop'] });
  assert.equal(run(v6.slice(0, 14 + 40 + 4)).forwarded.length, 0);
  // Half an IP header, or none: the program must not forward them. Linux 6.18's test_run
  // refuses such frames itself with EINVAL (seen here: a frame shorter than Ethernet + the
  // EtherType's fixed IP header never reaches the program); a kernel that lets them through
  // must see nothing forwarded. A refusal counts only when it is the kernel's, not the sni
  // program's: a socket filter that does nothing (bpf/probes.bpf.c) must be refused the same frame.
  const trivial = BpfObject.load('probes', { programs: ['probe_socket_filter'] });
  try {
    for (const [what, frame] of [
      ['half an IPv4 header', ipv4Frame(SMALL, { truncateTo: 10 })],
      ['half an IPv6 header', ethernet(0x86dd, [0x60, 0, 0, 0, 0, 20, 6, 64])],
      ['an Ethernet header alone', ethernet(0x0800, [])],
    ] as const) {
      const r = runOrRefused(frame);
      if (r !== 'refused') {
        assert.equal(r.forwarded.length, 0, what);
        assert.equal(r.retval, 0, `${what}: not kept`);
        continue;
      }
      let kernel: number | undefined;
      try {
        trivial.program('probe_socket_filter').testRun(frame);
      } catch (e) {
        kernel = (e as { errno?: number }).errno;
      }
      assert.equal(kernel, 22, `${what}: the sni program was refused it (EINVAL), so a do-nothing socket filter must be too (test_run's own check)`);
    }
  } finally {
    trivial.close();
  }
  // and a good one still goes through
  assert.equal(run(ipv4Frame(SMALL, { sport: 41012 })).forwarded.length, 1);
});

// ---------------------------------------------------------------------------------------------

test('BTF: struct sni_event, sni_owner and the shared tlscope_tuple and tlscope_proc are laid out as the TypeScript decoders read them', { skip: kernelSkip }, () => {
  const ev = obj.structLayout('sni_event');
  assert.ok(ev !== undefined, 'sni_event is in the object BTF');
  assert.equal(ev.size, SNI_EVENT_LAYOUT.size);
  const at = new Map(ev.members.map((m) => [m.name, m]));
  for (const [field, offset] of Object.entries(SNI_EVENT_LAYOUT)) {
    if (field === 'size') continue;
    assert.equal(at.get(field)?.offset, offset, `sni_event.${field}`);
  }
  assert.deepEqual(ev.members.map((m) => [m.name, m.offset, m.size]), [
    ['ts_ns', 0, 8], ['tuple', 8, 40], ['owner', 48, 56], ['seq', 104, 4], ['payload_len', 108, 4], ['captured_len', 112, 4],
    ['ifindex', 116, 4], ['pkt_type', 120, 1], ['owner_known', 121, 1], ['first', 122, 1], ['pad', 123, 5],
  ]);
  // decode.ts reads the nested structs with the shared decoders (src/net/tuple.ts, src/gadgets/proc-record.ts)
  for (const [name, want] of [['tlscope_tuple', TUPLE_LAYOUT], ['tlscope_proc', PROC_LAYOUT]] as const) {
    const l = obj.structLayout(name);
    assert.equal(l?.size, want.size, `${name} size`);
    const at = new Map(l?.members.map((m) => [m.name, m.offset]));
    for (const [field, offset] of Object.entries(want)) if (field !== 'size') assert.equal(at.get(field), offset, `${name}.${field}`);
  }
  assert.deepEqual(obj.structLayout('sni_owner')?.members.map((m) => [m.name, m.offset, m.size]), [
    ['ts_ns', 0, 8], ['proc', SNI_OWNER_PROC, PROC_LAYOUT.size],
  ]);
  assert.equal(obj.structLayout('sni_owner')?.size, 56);
});
