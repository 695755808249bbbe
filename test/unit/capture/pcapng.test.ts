// SPDX-License-Identifier: Apache-2.0
// The pcapng writer: its output parsed back block by block, and read by tshark when installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EPB_INBOUND, EPB_OUTBOUND, EPB_UNICAST, nanosecondsHighLow, PcapngWriter } from '../../../src/output/pcapng.js';
import { ethernet, ipv4, tcp, TCP_ACK, TCP_PSH } from './packets.js';

interface Block {
  type: number;
  body: Buffer;
  options: Map<number, Buffer[]>;
}

/** A strict reader: every length must agree, every block must be 4-byte aligned. */
function parse(file: Buffer): Block[] {
  const blocks: Block[] = [];
  let p = 0;
  while (p < file.length) {
    const type = file.readUInt32LE(p);
    const len = file.readUInt32LE(p + 4);
    assert.equal(len % 4, 0, `block at ${p} not aligned`);
    assert.ok(len >= 12 && p + len <= file.length, `block at ${p} overruns`);
    assert.equal(file.readUInt32LE(p + len - 4), len, `trailing length of block at ${p}`);
    blocks.push({ type, body: file.subarray(p + 8, p + len - 4), options: new Map() });
    p += len;
  }
  return blocks;
}

function parseOptions(b: Buffer, from: number): Map<number, Buffer[]> {
  const m = new Map<number, Buffer[]>();
  let p = from;
  while (p + 4 <= b.length) {
    const code = b.readUInt16LE(p);
    const len = b.readUInt16LE(p + 2);
    if (code === 0) {
      assert.equal(len, 0);
      assert.equal(p + 4, b.length, 'opt_endofopt ends the block');
      return m;
    }
    const list = m.get(code) ?? [];
    list.push(b.subarray(p + 4, p + 4 + len));
    m.set(code, list);
    p += 4 + ((len + 3) & ~3);
  }
  assert.equal(p, b.length, 'options fill the block');
  return m;
}

const pkt = Buffer.from(ethernet(0x0800, ipv4('10.0.0.1', '10.0.0.2', 6, tcp({ sport: 41000, dport: 8000, seq: 1, ack: 1, flags: TCP_PSH | TCP_ACK, payload: 'GET /tlscope-path HTTP/1.1\r\nHost: web.test\r\n\r\n' }))));

function sample(): Buffer {
  const chunks: Buffer[] = [];
  const w = new PcapngWriter((c) => chunks.push(Buffer.from(c)), { application: 'tlscope test', os: 'Linux' }, { bufferSize: 256 });
  const a = w.addInterface({ linkType: 1, snaplen: 262144, name: 'eth0', description: 'web (docker) eth0', filter: 'tcp port 8000' });
  const b = w.addInterface({ linkType: 101, snaplen: 262144, name: 'tun0', description: 'pod shop/cart (containerd) tun0' });
  w.writePacket(a, 1795324902, 700300202, pkt, 0, pkt.length, pkt.length, EPB_OUTBOUND | EPB_UNICAST, 'sender: pid 42 curl on the host');
  // a packet cut by the snap length (caplen < original length), no options
  w.writePacket(b, 1795324903, 5, pkt, 14, 21, pkt.length - 14);
  // straight from a bigger buffer at an offset (as from the ring)
  const ring = Buffer.concat([Buffer.alloc(100, 0xee), pkt, Buffer.alloc(7, 0xee)]);
  w.writePacket(a, 1795324904, 999999999, ring, 100, pkt.length, pkt.length, EPB_INBOUND | EPB_UNICAST);
  w.writeInterfaceStats(a, { endSec: 1795324905, endNsec: 0, received: 3, osDropped: 0 });
  w.flush();
  assert.equal(w.packets, 3);
  return Buffer.concat(chunks);
}

test('nanosecondsHighLow splits a 64-bit nanosecond count exactly', () => {
  for (const [sec, nsec] of [[0, 0], [1, 1], [1795324902, 700300202], [4294967295, 999999999], [65535, 999999999], [65536, 0]] as const) {
    const total = BigInt(sec) * 1_000_000_000n + BigInt(nsec);
    const [hi, lo] = nanosecondsHighLow(sec, nsec);
    assert.equal(BigInt(hi) * 4294967296n + BigInt(lo), total, `${sec}.${nsec}`);
    assert.ok(lo >= 0 && lo < 4294967296 && Number.isInteger(hi) && Number.isInteger(lo));
  }
});

test('blocks: SHB, one IDB per interface, EPBs with data, flags and comments, ISB', () => {
  const file = sample();
  const blocks = parse(file);
  assert.deepEqual(blocks.map((b) => b.type), [0x0a0d0d0a, 1, 1, 6, 6, 6, 5]);
  const shb = blocks[0] as Block;
  assert.equal(shb.body.readUInt32LE(0), 0x1a2b3c4d);
  assert.equal(shb.body.readUInt16LE(4), 1);
  assert.equal(shb.body.readBigInt64LE(8), -1n);
  assert.equal(parseOptions(shb.body, 16).get(4)?.[0]?.toString(), 'tlscope test');

  const idb = blocks[1] as Block;
  assert.equal(idb.body.readUInt16LE(0), 1);
  assert.equal(idb.body.readUInt32LE(4), 262144);
  const io = parseOptions(idb.body, 8);
  assert.equal(io.get(2)?.[0]?.toString(), 'eth0');
  assert.equal(io.get(3)?.[0]?.toString(), 'web (docker) eth0');
  assert.deepEqual([...(io.get(9)?.[0] ?? [])], [9]);
  assert.equal(io.get(11)?.[0]?.toString('latin1'), '\0tcp port 8000');
  assert.equal((blocks[2] as Block).body.readUInt16LE(0), 101);

  const epb = blocks[3] as Block;
  assert.equal(epb.body.readUInt32LE(0), 0);
  const [hi, lo] = [epb.body.readUInt32LE(4), epb.body.readUInt32LE(8)];
  assert.equal(BigInt(hi) * 4294967296n + BigInt(lo), 1795324902_700300202n);
  const caplen = epb.body.readUInt32LE(12);
  assert.equal(caplen, pkt.length);
  assert.equal(epb.body.readUInt32LE(16), pkt.length);
  assert.deepEqual(epb.body.subarray(20, 20 + caplen), pkt);
  const eo = parseOptions(epb.body, 20 + ((caplen + 3) & ~3));
  assert.equal(eo.get(1)?.[0]?.toString(), 'sender: pid 42 curl on the host');
  assert.equal(eo.get(2)?.[0]?.readUInt32LE(0), EPB_OUTBOUND | EPB_UNICAST);

  const cut = blocks[4] as Block;
  assert.equal(cut.body.readUInt32LE(0), 1);
  assert.equal(cut.body.readUInt32LE(12), 21);
  assert.equal(cut.body.readUInt32LE(16), pkt.length - 14);
  assert.equal(cut.body.length, 20 + 24, 'padded to 4 bytes, no options');

  const fromRing = blocks[5] as Block;
  assert.deepEqual(fromRing.body.subarray(20, 20 + pkt.length), pkt);
});

test('a small buffer flushes as it fills and grows for one big packet', () => {
  const chunks: Buffer[] = [];
  const w = new PcapngWriter((c) => chunks.push(Buffer.from(c)), {}, { bufferSize: 64 });
  const id = w.addInterface({ linkType: 1, snaplen: 262144 });
  const big = Buffer.alloc(70000, 0x41);
  w.writePacket(id, 1, 0, big, 0, big.length, big.length);
  w.writePacket(id, 2, 0, pkt, 0, pkt.length, pkt.length);
  w.flush();
  const blocks = parse(Buffer.concat(chunks));
  assert.deepEqual(blocks.map((b) => b.type), [0x0a0d0d0a, 1, 6, 6]);
  assert.equal(blocks[2]?.body.readUInt32LE(12), 70000);
  assert.ok(chunks.length >= 3);
  assert.equal(w.bytesWritten, Buffer.concat(chunks).length);
});

const tshark = spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0;

test('tshark reads the file without a warning: interfaces, comments, HTTP', { skip: tshark ? false : 'tshark is not installed' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tlscope-pcapng-'));
  try {
    const f = join(dir, 'sample.pcapng');
    writeFileSync(f, sample());
    const r = spawnSync('tshark', ['-r', f, '-T', 'fields', '-e', 'frame.interface_description', '-e', 'frame.comment', '-e', 'http.request.uri', '-e', 'frame.p2p_dir'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /damaged|corrupt|isn't|cut short/i);
    const rows = r.stdout.trim().split('\n').map((l) => l.split('\t'));
    assert.equal(rows.length, 3);
    assert.equal(rows[0]?.[0], 'web (docker) eth0');
    assert.equal(rows[0]?.[1], 'sender: pid 42 curl on the host');
    assert.equal(rows[0]?.[2], '/tlscope-path');
    assert.equal(rows[1]?.[0], 'pod shop/cart (containerd) tun0');
    const info = execFileSync('capinfos', ['-M', f], { encoding: 'utf8' });
    assert.match(info, /Number of interfaces in file: 2/);
    assert.match(info, /nanoseconds/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
