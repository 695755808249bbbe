// SPDX-License-Identifier: Apache-2.0
// The TPACKET_V3 ring walk over a ring built in memory with the kernel's layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BLOCK, SLL, TPHDR, TP_STATUS_KERNEL, TP_STATUS_LOSING, TP_STATUS_USER, TP_STATUS_VLAN_VALID, TpacketV3Walker, type RingPacket } from '../../../src/ebpf/tpacket.js';

const BLOCK_SIZE = 4096;

interface FakePacket {
  data: number[];
  len?: number;
  sec?: number;
  nsec?: number;
  ifindex?: number;
  hatype?: number;
  pkttype?: number;
  status?: number;
  vlanTci?: number;
}

/** Writes packets into block `b` the way the kernel lays them out, then hands it to user space. */
function fillBlock(mem: ArrayBuffer, b: number, packets: FakePacket[], status = TP_STATUS_USER): void {
  const v = new DataView(mem);
  const base = b * BLOCK_SIZE;
  v.setUint32(base + BLOCK.numPkts, packets.length, true);
  v.setUint32(base + BLOCK.firstPkt, BLOCK.size, true);
  let off = base + BLOCK.size;
  packets.forEach((p, i) => {
    const mac = TPHDR.size + SLL.size + 2; // as the kernel: header, sockaddr_ll, aligned
    const total = (mac + p.data.length + 15) & ~15;
    v.setUint32(off + TPHDR.next, i === packets.length - 1 ? 0 : total, true);
    v.setUint32(off + TPHDR.sec, p.sec ?? 1000 + i, true);
    v.setUint32(off + TPHDR.nsec, p.nsec ?? i, true);
    v.setUint32(off + TPHDR.snaplen, p.data.length, true);
    v.setUint32(off + TPHDR.len, p.len ?? p.data.length, true);
    v.setUint32(off + TPHDR.status, p.status ?? TP_STATUS_USER, true);
    v.setUint16(off + TPHDR.mac, mac, true);
    v.setUint32(off + TPHDR.vlanTci, p.vlanTci ?? 0, true);
    v.setUint16(off + SLL.at + SLL.protocol, 0x0800, false);
    v.setInt32(off + SLL.at + SLL.ifindex, p.ifindex ?? 2, true);
    v.setUint16(off + SLL.at + SLL.hatype, p.hatype ?? 1, true);
    v.setUint8(off + SLL.at + SLL.pkttype, p.pkttype ?? 0);
    new Uint8Array(mem, off + mac, p.data.length).set(p.data);
    off += total;
  });
  v.setUint32(base + BLOCK.status, status, true);
}

function collect(w: TpacketV3Walker, stopAfter = Infinity): { pkts: Omit<RingPacket, 'buf'>[]; bytes: number[][]; go: boolean } {
  const pkts: Omit<RingPacket, 'buf'>[] = [];
  const bytes: number[][] = [];
  const go = w.drain((p) => {
    const { buf, ...rest } = p;
    pkts.push({ ...rest });
    bytes.push([...buf.subarray(p.offset, p.offset + p.caplen)]);
    return pkts.length < stopAfter;
  });
  return { pkts, bytes, go };
}

test('walks ready blocks in order, hands each back to the kernel, and stops at the first kernel block', () => {
  const mem = new ArrayBuffer(BLOCK_SIZE * 4);
  const w = new TpacketV3Walker(mem, BLOCK_SIZE, 4);
  assert.equal(w.ready(), false);
  fillBlock(mem, 0, [{ data: [1, 2, 3] }, { data: [4, 5], len: 1500, ifindex: 7, hatype: 772, pkttype: 4 }]);
  fillBlock(mem, 1, [{ data: [6] }]);
  assert.equal(w.ready(), true);
  const r = collect(w);
  assert.deepEqual(r.bytes, [[1, 2, 3], [4, 5], [6]]);
  assert.equal(r.pkts[1]?.len, 1500);
  assert.equal(r.pkts[1]?.caplen, 2);
  assert.equal(r.pkts[1]?.ifindex, 7);
  assert.equal(r.pkts[1]?.hatype, 772);
  assert.equal(r.pkts[1]?.pkttype, 4);
  assert.equal(r.pkts[0]?.protocol, 0x0800);
  assert.equal(r.pkts[0]?.sec, 1000);
  const v = new DataView(mem);
  assert.equal(v.getUint32(BLOCK.status, true), TP_STATUS_KERNEL);
  assert.equal(v.getUint32(BLOCK_SIZE + BLOCK.status, true), TP_STATUS_KERNEL);
  assert.equal(w.ready(), false);
  assert.deepEqual({ blocks: w.stats.blocks, packets: w.stats.packets }, { blocks: 2, packets: 3 });
});

test('wraps around the ring', () => {
  const mem = new ArrayBuffer(BLOCK_SIZE * 2);
  const w = new TpacketV3Walker(mem, BLOCK_SIZE, 2);
  for (let round = 0; round < 5; round++) {
    fillBlock(mem, round % 2, [{ data: [round] }]);
    assert.deepEqual(collect(w).bytes, [[round]]);
  }
  assert.equal(w.stats.blocks, 5);
});

test('a visitor that stops ends the walk after its block, which is still handed back', () => {
  const mem = new ArrayBuffer(BLOCK_SIZE * 4);
  const w = new TpacketV3Walker(mem, BLOCK_SIZE, 4);
  fillBlock(mem, 0, [{ data: [1] }, { data: [2] }, { data: [3] }]);
  fillBlock(mem, 1, [{ data: [4] }]);
  const r = collect(w, 2);
  assert.equal(r.go, false);
  assert.deepEqual(r.bytes, [[1], [2]]);
  assert.equal(new DataView(mem).getUint32(BLOCK.status, true), TP_STATUS_KERNEL);
  assert.equal(w.ready(), true, 'the next block is still there');
});

test('VLAN tags the kernel took out, and loss marks, are reported', () => {
  const mem = new ArrayBuffer(BLOCK_SIZE * 2);
  const w = new TpacketV3Walker(mem, BLOCK_SIZE, 2);
  fillBlock(mem, 0, [{ data: [1], status: TP_STATUS_USER | TP_STATUS_VLAN_VALID | TP_STATUS_LOSING, vlanTci: 0x2064 }]);
  const r = collect(w);
  assert.equal(r.pkts[0]?.vlanTci, 0x2064);
  assert.equal(r.pkts[0]?.vlanTpid, 0x8100);
  assert.equal(w.stats.losingPackets, 1);
});

test('maxBlocks bounds one drain', () => {
  const mem = new ArrayBuffer(BLOCK_SIZE * 4);
  const w = new TpacketV3Walker(mem, BLOCK_SIZE, 4);
  for (let b = 0; b < 3; b++) fillBlock(mem, b, [{ data: [b] }]);
  const seen: number[] = [];
  w.drain((p) => seen.push(p.buf[p.offset] as number) > 0, 2);
  assert.deepEqual(seen, [0, 1]);
  w.drain((p) => seen.push(p.buf[p.offset] as number) > 0, 2);
  assert.deepEqual(seen, [0, 1, 2]);
});
