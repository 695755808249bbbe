// SPDX-License-Identifier: Apache-2.0
// The shared decoders of bpf/include/sock.h (struct tlscope_tuple) and bpf/include/proc.h
// (struct tlscope_proc) on records laid out as the kernel writes them; the integration tests of
// sni, tls and capture check the same offsets against each compiled object's BTF.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeTuple, encodeTuple, tupleFamily, TUPLE_LAYOUT, IPPROTO_TCP, IPPROTO_UDP } from '../../../src/net/tuple.js';
import { formatIPv4, formatIPv6 } from '../../../src/net/addr.js';
import { decodeComm, decodeProc, PROC_LAYOUT } from '../../../src/gadgets/proc-record.js';

const RUNS = Number(process.env.FC_RUNS ?? 300);

test('tlscope_tuple: IPv4 and IPv6 round-trip at any offset; the address bytes stay in network order', () => {
  const arb = fc.record({
    family: fc.constantFrom(4 as const, 6 as const),
    protocol: fc.constantFrom(0, IPPROTO_TCP, IPPROTO_UDP),
    saddr: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    daddr: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    sport: fc.integer({ min: 0, max: 0xffff }),
    dport: fc.integer({ min: 0, max: 0xffff }),
  });
  fc.assert(
    fc.property(arb, fc.integer({ min: 0, max: 40 }), (t, at) => {
      const b = Buffer.alloc(at + TUPLE_LAYOUT.size + 8, 0xee);
      encodeTuple(t).copy(b, at);
      const got = decodeTuple(new DataView(b.buffer, b.byteOffset, b.length), at);
      const n = t.family === 4 ? 4 : 16;
      assert.ok(got !== undefined);
      assert.equal(got.family, t.family);
      assert.equal(got.protocol, t.protocol);
      assert.equal(got.sport, t.sport);
      assert.equal(got.dport, t.dport);
      assert.equal(got.saddr, t.family === 4 ? formatIPv4(t.saddr) : formatIPv6(t.saddr));
      assert.equal(got.daddr, t.family === 4 ? formatIPv4(t.daddr) : formatIPv6(t.daddr));
      assert.deepEqual([...got.saddrBytes], [...t.saddr.subarray(0, n)]);
      assert.deepEqual([...got.daddrBytes], [...t.daddr.subarray(0, n)]);
    }),
    { numRuns: RUNS },
  );
});

test('tlscope_tuple: the layout the kernel writes (little-endian ports, family, protocol); family 0 is no tuple', () => {
  const b = encodeTuple({ family: 4, protocol: IPPROTO_TCP, saddr: [127, 0, 0, 1], daddr: [10, 1, 2, 3], sport: 0x1234, dport: 443 });
  assert.equal(b.length, 40);
  assert.deepEqual([...b.subarray(0, 4)], [127, 0, 0, 1]);
  assert.deepEqual([...b.subarray(16, 20)], [10, 1, 2, 3]);
  assert.deepEqual([...b.subarray(32, 40)], [0x34, 0x12, 0xbb, 0x01, 4, 6, 0, 0]);
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  assert.deepEqual({ ...decodeTuple(dv, 0), saddrBytes: undefined, daddrBytes: undefined }, {
    family: 4, protocol: 6, saddr: '127.0.0.1', daddr: '10.1.2.3', sport: 0x1234, dport: 443, saddrBytes: undefined, daddrBytes: undefined,
  });
  b[TUPLE_LAYOUT.family] = 0;
  assert.equal(tupleFamily(dv, 0), undefined);
  assert.equal(decodeTuple(dv, 0), undefined);
});

test('tlscope_proc: every field, comm up to its NUL or all 16 bytes', () => {
  const L = PROC_LAYOUT;
  const b = Buffer.alloc(8 + L.size);
  const at = 8;
  b.writeUInt32LE(4242, at + L.pid);
  b.writeUInt32LE(4243, at + L.tid);
  b.writeUInt32LE(1000, at + L.uid);
  b.writeUInt32LE(1001, at + L.gid);
  b.writeUInt32LE(4026531840, at + L.mntns);
  b.writeUInt32LE(4026531841, at + L.netns);
  b.writeBigUInt64LE(0xfedcba9876543210n, at + L.cgroup_id);
  b.write('curl', at + L.comm, 'latin1');
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  assert.deepEqual(decodeProc(dv, at), { pid: 4242, tid: 4243, uid: 1000, gid: 1001, mntns: 4026531840, netns: 4026531841, cgroupId: 0xfedcba9876543210n, comm: 'curl' });
  b.write('0123456789abcdef', at + L.comm, 'latin1');
  assert.equal(decodeComm(dv, at + L.comm), '0123456789abcdef');
});
