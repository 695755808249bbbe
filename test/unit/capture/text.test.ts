// SPDX-License-Identifier: Apache-2.0
// tcpdump-style text: one-line summaries, -A, -X and the closing statistics, against what
// tcpdump 4.99 prints for the same packets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dissect, flowKeyOf, flowKeyOfTuple, FlowKeyReader, LINKTYPE_ETHERNET, LINKTYPE_RAW } from '../../../src/protocols/dissect.js';
import { decodeOwner } from '../../../src/gadgets/capture/owners.js';
import { asciiDump, directionWord, formatCaptureTotals, hexAsciiDump, packetSummary, tcpFlags, TcpSequences, TimeFormatter } from '../../../src/output/packet-text.js';
import { arpRequest, ethernet, icmpEcho, ipv4, ipv4Bytes, ipv6, tcp, udp, TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from './packets.js';

function summary(bytes: number[], linkType = LINKTYPE_ETHERNET, seqs?: TcpSequences, link = false): string {
  const b = Buffer.from(bytes);
  return packetSummary(dissect(b, 0, b.length, linkType), b.length, seqs, { link });
}

test('the closing statistics, worded as tcpdump\'s', () => {
  assert.equal(formatCaptureTotals({ captured: 12, received: 14, dropped: 0 }), '12 packets captured\n14 packets received by filter\n0 packets dropped by kernel\n');
  assert.equal(formatCaptureTotals({ captured: 1, received: 1, dropped: 1 }), '1 packet captured\n1 packet received by filter\n1 packet dropped by kernel\n');
});

test('TCP: flags, relative sequence numbers after the SYN, options, length', () => {
  const seqs = new TcpSequences();
  const syn = ethernet(0x0800, ipv4('172.17.0.1', '172.17.0.2', 6, tcp({ sport: 48486, dport: 8000, seq: 3624973893, flags: TCP_SYN, win: 64240, options: [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0x3c, 0x4a, 0x2f, 0x51, 0, 0, 0, 0, 1, 3, 3, 10] })));
  assert.equal(summary(syn, LINKTYPE_ETHERNET, seqs), 'IP 172.17.0.1.48486 > 172.17.0.2.8000: Flags [S], seq 3624973893, win 64240, options [mss 1460,sackOK,TS val 1011494737 ecr 0,nop,wscale 10], length 0');
  const synack = ethernet(0x0800, ipv4('172.17.0.2', '172.17.0.1', 6, tcp({ sport: 8000, dport: 48486, seq: 4095518382, ack: 3624973894, flags: TCP_SYN | TCP_ACK, win: 65160 })));
  assert.equal(summary(synack, LINKTYPE_ETHERNET, seqs), 'IP 172.17.0.2.8000 > 172.17.0.1.48486: Flags [S.], seq 4095518382, ack 3624973894, win 65160, length 0');
  const ack = ethernet(0x0800, ipv4('172.17.0.1', '172.17.0.2', 6, tcp({ sport: 48486, dport: 8000, seq: 3624973894, ack: 4095518383, flags: TCP_ACK, win: 63 })));
  assert.equal(summary(ack, LINKTYPE_ETHERNET, seqs), 'IP 172.17.0.1.48486 > 172.17.0.2.8000: Flags [.], ack 1, win 63, length 0');
  const get = ethernet(0x0800, ipv4('172.17.0.1', '172.17.0.2', 6, tcp({ sport: 48486, dport: 8000, seq: 3624973894, ack: 4095518383, flags: TCP_PSH | TCP_ACK, win: 63, payload: 'x'.repeat(89) })));
  assert.equal(summary(get, LINKTYPE_ETHERNET, seqs), 'IP 172.17.0.1.48486 > 172.17.0.2.8000: Flags [P.], seq 1:90, ack 1, win 63, length 89');
  const fin = ethernet(0x0800, ipv4('172.17.0.2', '172.17.0.1', 6, tcp({ sport: 8000, dport: 48486, seq: 4095518383 + 222, ack: 3624973894 + 89, flags: TCP_FIN | TCP_ACK, win: 64 })));
  assert.equal(summary(fin, LINKTYPE_ETHERNET, seqs), 'IP 172.17.0.2.8000 > 172.17.0.1.48486: Flags [F.], seq 223, ack 90, win 64, length 0');
  // -S: absolute
  assert.equal(summary(get), 'IP 172.17.0.1.48486 > 172.17.0.2.8000: Flags [P.], seq 3624973894:3624973983, ack 4095518383, win 63, length 89');
  assert.equal(tcpFlags(0), 'none');
  assert.equal(tcpFlags(TCP_FIN | TCP_SYN | 0x04 | TCP_PSH | TCP_ACK | 0x20 | 0x40 | 0x80), 'FSRP.UEW');
});

test('UDP, ICMP, ARP, IPv6, raw IP, fragments, other ethertypes, -e', () => {
  assert.equal(summary(ethernet(0x0800, ipv4('127.0.0.1', '127.0.0.1', 17, udp(57359, 9999, 'hello-tlscope\r\nline2')))), 'IP 127.0.0.1.57359 > 127.0.0.1.9999: UDP, length 20');
  assert.equal(summary(ethernet(0x0800, ipv4('10.0.0.1', '10.0.0.2', 1, icmpEcho(8, 7, 1, new Array(56).fill(0))))), 'IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 7, seq 1, length 64');
  assert.equal(summary(ethernet(0x0806, arpRequest('02:42:ac:11:00:02', '172.17.0.2', '172.17.0.1'))), 'ARP, Request who-has 172.17.0.1 tell 172.17.0.2, length 28');
  assert.equal(summary(ethernet(0x86dd, ipv6('fd00::1', 'fd00::2', 6, tcp({ sport: 443, dport: 50000, seq: 5, ack: 6, flags: TCP_ACK })))), 'IP6 fd00::1.443 > fd00::2.50000: Flags [.], ack 6, win 502, length 0');
  assert.equal(summary(ethernet(0x86dd, ipv6('fd00::1', 'fd00::2', 58, icmpEcho(128, 1, 2, [1, 2])))), 'IP6 fd00::1 > fd00::2: ICMP6, echo request, id 1, seq 2, length 10');
  assert.equal(summary(ipv4('10.8.0.1', '10.8.0.2', 17, udp(1, 2, 'ab')), LINKTYPE_RAW), 'IP 10.8.0.1.1 > 10.8.0.2.2: UDP, length 2');
  assert.equal(summary(ethernet(0x0800, ipv4('10.0.0.1', '10.0.0.2', 17, [1, 2, 3, 4], { fragOffset: 1480 }))), 'IP 10.0.0.1 > 10.0.0.2: ip-proto-17 (frag offset 1480), length 4');
  assert.equal(summary(ethernet(0x88cc, [1, 2, 3])), 'ethertype 0x88cc (unknown), length 17');
  assert.equal(summary(ethernet(0x0800, ipv4('10.0.0.1', '10.0.0.2', 17, udp(1, 2, ''))), LINKTYPE_ETHERNET, undefined, true), '02:00:00:00:00:01 > 02:00:00:00:00:02, ethertype IPv4 (0x0800), length 42: IP 10.0.0.1.1 > 10.0.0.2.2: UDP, length 0');
  // truncated by the snap length
  const b = Buffer.from(ethernet(0x0800, ipv4('10.0.0.1', '10.0.0.2', 6, tcp({ sport: 1, dport: 2, flags: TCP_ACK }))));
  assert.match(packetSummary(dissect(b, 0, 40, LINKTYPE_ETHERNET), b.length, undefined), /\[\|truncated\]$/);
});

test('-A: text as tcpdump shows it (CR before LF dropped, other bytes as dots)', () => {
  const b = Buffer.from('\x45\x00\x01GET / HTTP/1.1\r\nHost: x\r\n\r\nbody\rmore\x7f');
  assert.equal(asciiDump(b, 0, b.length), '\nE..GET / HTTP/1.1\nHost: x\n\nbody.more.');
});

test('-X: hex and ASCII, 16 bytes a line, exactly as tcpdump -X', () => {
  const b = Buffer.from('45000030cdbd400040116efd7f0000017f000001caa1270f001cfe2f68656c6c6f2d746c73636f70650d0a6c696e6532', 'hex');
  assert.equal(hexAsciiDump(b, 0, b.length), [
    '',
    "\t0x0000:  4500 0030 cdbd 4000 4011 6efd 7f00 0001  E..0..@.@.n.....",
    "\t0x0010:  7f00 0001 caa1 270f 001c fe2f 6865 6c6c  ......'..../hell",
    '\t0x0020:  6f2d 746c 7363 6f70 650d 0a6c 696e 6532  o-tlscope..line2',
  ].join('\n'));
  assert.equal(hexAsciiDump(b, 0, 3), '\n\t0x0000:  4500 00                                  E..');
});

test('directions and times', () => {
  assert.deepEqual([0, 1, 2, 3, 4].map(directionWord), ['In', 'B', 'M', 'P', 'Out']);
  const t = new TimeFormatter();
  const s = t.format(1795324902, 700300202);
  assert.match(s, /^\d\d:\d\d:\d\d\.700300$/);
  assert.equal(t.format(1795324902, 5000).slice(-7), '.000005');
});

test('flow keys: a packet and the socket that sent it agree, in both directions', () => {
  const pkt = Buffer.from(ethernet(0x0800, ipv4('172.17.0.1', '172.17.0.2', 6, tcp({ sport: 48486, dport: 8000, flags: TCP_ACK }))));
  const k = flowKeyOf(pkt, 0, pkt.length, LINKTYPE_ETHERNET);
  assert.ok(k !== undefined);
  assert.equal(k.forward, flowKeyOfTuple(6, 4, Uint8Array.from(ipv4Bytes('172.17.0.1')), 48486, Uint8Array.from(ipv4Bytes('172.17.0.2')), 8000));
  assert.equal(k.reverse, flowKeyOfTuple(6, 4, Uint8Array.from(ipv4Bytes('172.17.0.2')), 8000, Uint8Array.from(ipv4Bytes('172.17.0.1')), 48486));
  assert.equal(flowKeyOf(pkt.subarray(14), 0, pkt.length - 14, LINKTYPE_RAW)?.forward, k.forward);
  const arp = Buffer.from(ethernet(0x0806, arpRequest('02:42:ac:11:00:02', '1.1.1.1', '2.2.2.2')));
  assert.equal(flowKeyOf(arp, 0, arp.length, LINKTYPE_ETHERNET), undefined);
  // struct capture_owner as the kernel writes it: the tuple, then struct tlscope_proc at 40
  const rec = Buffer.alloc(88);
  Buffer.from(ipv4Bytes('172.17.0.2')).copy(rec, 0);
  Buffer.from(ipv4Bytes('172.17.0.1')).copy(rec, 16);
  rec.writeUInt16LE(8000, 32);
  rec.writeUInt16LE(48486, 34);
  rec.writeUInt8(4, 36);
  rec.writeUInt8(6, 37);
  rec.writeUInt32LE(5550, 40);
  rec.writeUInt32LE(5551, 44);
  rec.writeUInt32LE(4026532184, 56);
  rec.write('httpd', 72);
  const d = decodeOwner(new DataView(rec.buffer, rec.byteOffset, rec.length), 0);
  assert.equal(d.key, k.reverse);
  assert.deepEqual({ pid: d.owner.pid, tid: d.owner.tid, comm: d.owner.comm, mntns: d.owner.mntns }, { pid: 5550, tid: 5551, comm: 'httpd', mntns: 4026532184 });
});

test('FlowKeyReader: the same keys as flowKeyOf, also when flows alternate and repeat', () => {
  const mk = (src: string, sport: number, proto = 6): Buffer => Buffer.from(ethernet(0x0800, ipv4(src, '10.0.0.9', proto, proto === 6 ? tcp({ sport, dport: 80, flags: TCP_ACK }) : udp(sport, 53, 'q'))));
  const v6 = Buffer.from(ethernet(0x86dd, ipv6('fd00::1', 'fd00::2', 6, tcp({ sport: 1, dport: 2, flags: TCP_ACK }))));
  const arp = Buffer.from(ethernet(0x0806, arpRequest('02:42:ac:11:00:02', '1.1.1.1', '2.2.2.2')));
  const seq = [mk('10.0.0.1', 1000), mk('10.0.0.1', 1000), mk('10.0.0.1', 1001), mk('10.0.0.2', 1000), mk('10.0.0.1', 1000, 17), v6, arp, mk('10.0.0.1', 1000), v6];
  const r = new FlowKeyReader();
  for (const p of seq) assert.deepEqual(r.read(p, 0, p.length, LINKTYPE_ETHERNET), flowKeyOf(p, 0, p.length, LINKTYPE_ETHERNET));
});
