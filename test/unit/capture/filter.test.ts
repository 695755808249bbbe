// SPDX-License-Identifier: Apache-2.0
// tcpdump filter expressions compiled by the system's libpcap, and the dispatch program that
// runs them per link type; checked by running the programs in a classic BPF interpreter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileFilter, dispatchProgram, FilterError, pcapCompile } from '../../../src/ebpf/pcap-filter.js';
import { ARPHRD, DLT_EN10MB, PACKET_HOST, PACKET_OUTGOING } from '../../../src/constants.js';
import { libpcapUnavailable } from '../../../src/ebpf/native.js';
import { runClassicBpf } from './cbpf.js';
import { ethernet, ipv4, tcp, udp, TCP_ACK, TCP_PSH } from './packets.js';

const skip = libpcapUnavailable() === undefined ? false : `libpcap is not installed: ${libpcapUnavailable()}`;

const httpEth = Buffer.from(ethernet(0x0800, ipv4('10.0.0.1', '10.0.0.2', 6, tcp({ sport: 41000, dport: 8000, flags: TCP_PSH | TCP_ACK, payload: 'GET / HTTP/1.1\r\n\r\n' }))));
const dnsEth = Buffer.from(ethernet(0x0800, ipv4('10.0.0.1', '10.0.0.2', 17, udp(5353, 53, 'x'))));
const httpRaw = httpEth.subarray(14);

test('a good expression compiles for Ethernet and raw IP; the program keeps what it should', { skip }, () => {
  const f = compileFilter('tcp port 8000', 262144);
  assert.ok(f.ethernet.length > 0 && f.ethernet.length % 8 === 0);
  assert.ok(f.raw !== undefined);
  const eth = { hatype: ARPHRD.ETHER, pkttype: PACKET_HOST };
  assert.equal(runClassicBpf(f.program, httpEth, eth), 262144);
  assert.equal(runClassicBpf(f.program, dnsEth, eth), 0);
  // the same packet on a tun device (raw IP) goes through the raw-IP program
  assert.equal(runClassicBpf(f.program, httpRaw, { hatype: ARPHRD.NONE, pkttype: PACKET_HOST }), 262144);
  // an Ethernet-compiled filter would misread the raw packet; the dispatch prevents it
  assert.equal(runClassicBpf(f.ethernet, httpRaw), 0);
});

test('loopback: the outgoing copy is dropped in the kernel, the incoming one kept (as tcpdump -i lo)', { skip }, () => {
  const f = compileFilter('', 65535);
  assert.equal(runClassicBpf(f.program, httpEth, { hatype: ARPHRD.LOOPBACK, pkttype: PACKET_OUTGOING }), 0);
  assert.equal(runClassicBpf(f.program, httpEth, { hatype: ARPHRD.LOOPBACK, pkttype: PACKET_HOST }), 65535);
  // on a veth, outgoing packets are kept
  assert.equal(runClassicBpf(f.program, httpEth, { hatype: ARPHRD.ETHER, pkttype: PACKET_OUTGOING }), 65535);
});

test('other link types are not captured', { skip }, () => {
  const f = compileFilter('', 262144);
  assert.equal(runClassicBpf(f.program, httpEth, { hatype: 512 /* PPP */ }), 0);
  assert.equal(runClassicBpf(f.program, httpEth, { hatype: 32 /* INFINIBAND */ }), 0);
});

test('the snap length is the verdict: the kernel truncates to it', { skip }, () => {
  const f = compileFilter('tcp', 96);
  assert.equal(runClassicBpf(f.program, httpEth, { hatype: ARPHRD.ETHER }), 96);
});

test('a link-layer expression applies to Ethernet only; raw-IP interfaces then capture nothing', { skip }, () => {
  const f = compileFilter('ether host 02:00:00:00:00:01', 262144);
  assert.equal(f.raw, undefined);
  assert.match(f.rawError ?? '', /ethernet addresses supported only on/);
  assert.equal(runClassicBpf(f.program, httpEth, { hatype: ARPHRD.ETHER }), 262144);
  assert.equal(runClassicBpf(f.program, httpRaw, { hatype: ARPHRD.NONE }), 0);
});

test('a bad expression is a usage error (exit 2) with libpcap\'s own message', { skip }, () => {
  assert.throws(() => compileFilter('tcp port', 262144), (e: unknown) => {
    assert.ok(e instanceof FilterError);
    assert.equal(e.exitCode, 2);
    assert.equal(e.pcapMessage, "can't parse filter expression: syntax error");
    assert.match(e.message, /tcp port/);
    return true;
  });
  assert.throws(() => compileFilter('port 99999', 262144), (e: unknown) => e instanceof FilterError && /99999/.test(e.pcapMessage));
});

test('pcapCompile reports errors instead of throwing', { skip }, () => {
  const r = pcapCompile('proto nonsense-proto', DLT_EN10MB, 100);
  assert.ok('error' in r);
});

test('dispatchProgram: jumps land inside the program for long compiled filters', { skip }, () => {
  // a long expression (more than 255 instructions) exercises the ja over the Ethernet part
  const ports = Array.from({ length: 120 }, (_, i) => `port ${1000 + i}`).join(' or ');
  const f = compileFilter(`tcp and (${ports})`, 262144);
  assert.ok(f.ethernet.length / 8 > 255, `only ${f.ethernet.length / 8} instructions`);
  const p = Buffer.from(ethernet(0x0800, ipv4('10.0.0.1', '10.0.0.2', 6, tcp({ sport: 1059, dport: 5000, flags: TCP_ACK }))));
  assert.equal(runClassicBpf(f.program, p, { hatype: ARPHRD.ETHER }), 262144);
  assert.equal(runClassicBpf(f.program, p.subarray(14), { hatype: ARPHRD.TUNNEL }), 262144);
  const other = Buffer.from(ethernet(0x0800, ipv4('10.0.0.1', '10.0.0.2', 6, tcp({ sport: 2000, dport: 5000, flags: TCP_ACK }))));
  assert.equal(runClassicBpf(f.program, other, { hatype: ARPHRD.ETHER }), 0);
  assert.equal(dispatchProgram(f.ethernet, undefined).length, f.program.length - (f.raw?.length ?? 0) + 8);
});
