// SPDX-License-Identifier: Apache-2.0
/**
 * Just enough of a packet for tcpdump's one-line summary and for matching a packet with the
 * socket that sent it: Ethernet (with VLAN tags), ARP, IPv4, IPv6 (extension headers), TCP
 * (flags, sequence numbers, options), UDP, ICMP and ICMPv6. Pure: bytes in, a description out.
 * Anything shorter than its headers is described as far as it goes and marked truncated.
 */
import { formatIPv4, formatIPv6 } from '../net/addr.js';

import {
  ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, LINKTYPE_ETHERNET, LINKTYPE_RAW,
} from '../constants.js';

export { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, LINKTYPE_ETHERNET, LINKTYPE_RAW };

export interface EthernetInfo {
  src: string;
  dst: string;
  /** the ethertype after any VLAN tags */
  type: number;
  vlans: number[];
}

export interface TcpInfo {
  flags: number;
  seq: number;
  ack: number;
  win: number;
  urg: number;
  /** decoded options, tcpdump style: "mss 1460", "sackOK", "TS val 1 ecr 2", "nop", "wscale 7" */
  options: string[];
  /** payload bytes (from the IP lengths, not the captured bytes) */
  payload: number;
  /** offset of the payload in the captured bytes */
  payloadOffset: number;
}

export interface IcmpInfo {
  type: number;
  code: number;
  id: number;
  seq: number;
  /** ICMPv6 neighbour discovery target, when there is one */
  target?: string;
}

export interface ArpInfo {
  op: number;
  senderMac: string;
  senderIp: string;
  targetIp: string;
}

export interface PacketInfo {
  linkType: number;
  ether: EthernetInfo | undefined;
  /** offset of the network-layer header in the packet (-1 when there is none we know) */
  netOffset: number;
  /** 'IP', 'IP6', 'ARP' or '' for anything else */
  network: '' | 'IP' | 'IP6' | 'ARP';
  ethertype: number;
  src: string;
  dst: string;
  /** IP protocol / IPv6 next header (0 when not IP) */
  protocol: number;
  sport: number;
  dport: number;
  /** bytes after the IP header(s), from the IP lengths */
  ipPayload: number;
  /** an IP fragment other than the first: no transport header */
  fragmentOffset: number;
  ttl: number;
  tcp: TcpInfo | undefined;
  udpLength: number;
  icmp: IcmpInfo | undefined;
  arp: ArpInfo | undefined;
  /** the headers were cut short by the snap length */
  truncated: boolean;
}

function mac(b: Uint8Array, o: number): string {
  let s = '';
  for (let i = 0; i < 6; i++) s += `${i ? ':' : ''}${(b[o + i] ?? 0).toString(16).padStart(2, '0')}`;
  return s;
}

function u16(b: Uint8Array, o: number): number {
  return ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);
}

function u32(b: Uint8Array, o: number): number {
  return (((b[o] ?? 0) << 24) | ((b[o + 1] ?? 0) << 16) | ((b[o + 2] ?? 0) << 8) | (b[o + 3] ?? 0)) >>> 0;
}

function empty(linkType: number): PacketInfo {
  return {
    linkType, ether: undefined, netOffset: -1, network: '', ethertype: 0, src: '', dst: '', protocol: 0, sport: 0, dport: 0,
    ipPayload: 0, fragmentOffset: 0, ttl: 0, tcp: undefined, udpLength: 0, icmp: undefined, arp: undefined, truncated: false,
  };
}

/**
 * Describes the packet in `b[off, off + caplen)`. `vlanTci`/`vlanTpid` are a tag the kernel
 * took out of the packet (hardware VLAN acceleration): it is reported as if it were there.
 */
export function dissect(b: Uint8Array, off: number, caplen: number, linkType: number, vlanTci = 0, vlanTpid = 0): PacketInfo {
  const info = empty(linkType);
  const end = off + caplen;
  let p = off;
  let type: number;
  if (linkType === LINKTYPE_ETHERNET) {
    if (caplen < 14) {
      info.truncated = true;
      return info;
    }
    const vlans: number[] = [];
    if (vlanTpid !== 0) vlans.push(vlanTci & 0xfff);
    type = u16(b, p + 12);
    p += 14;
    while ((type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ) && p + 4 <= end) {
      vlans.push(u16(b, p) & 0xfff);
      type = u16(b, p + 2);
      p += 4;
    }
    info.ether = { dst: mac(b, off), src: mac(b, off + 6), type, vlans };
  } else if (linkType === LINKTYPE_RAW) {
    if (caplen < 1) {
      info.truncated = true;
      return info;
    }
    const version = (b[p] ?? 0) >> 4;
    type = version === 4 ? ETHERTYPE_IPV4 : version === 6 ? ETHERTYPE_IPV6 : 0;
  } else {
    return info;
  }
  info.ethertype = type;
  info.netOffset = p - off;
  if (type === ETHERTYPE_IPV4) ipv4(b, p, end, info);
  else if (type === ETHERTYPE_IPV6) ipv6(b, p, end, info);
  else if (type === ETHERTYPE_ARP) arp(b, p, end, info);
  return info;
}

function ipv4(b: Uint8Array, p: number, end: number, info: PacketInfo): void {
  info.network = 'IP';
  if (p + 20 > end) {
    info.truncated = true;
    return;
  }
  const ihl = ((b[p] ?? 0) & 0x0f) * 4;
  const total = u16(b, p + 2);
  const frag = u16(b, p + 6);
  info.ttl = b[p + 8] ?? 0;
  info.protocol = b[p + 9] ?? 0;
  info.src = formatIPv4(b, p + 12);
  info.dst = formatIPv4(b, p + 16);
  info.fragmentOffset = (frag & 0x1fff) * 8;
  info.ipPayload = Math.max(0, total - ihl);
  if (ihl < 20) {
    info.truncated = true;
    return;
  }
  if (info.fragmentOffset !== 0) return;
  transport(b, p + ihl, Math.min(end, p + total), end, info);
}

const V6_EXT = new Set([0, 43, 44, 51, 60]);

function ipv6(b: Uint8Array, p: number, end: number, info: PacketInfo): void {
  info.network = 'IP6';
  if (p + 40 > end) {
    info.truncated = true;
    return;
  }
  const plen = u16(b, p + 4);
  let next = b[p + 6] ?? 0;
  info.ttl = b[p + 7] ?? 0;
  info.src = formatIPv6(b, p + 8);
  info.dst = formatIPv6(b, p + 24);
  const ipEnd = p + 40 + plen;
  let q = p + 40;
  for (let i = 0; i < 8 && V6_EXT.has(next); i++) {
    if (q + 8 > end) {
      info.truncated = true;
      info.protocol = next;
      return;
    }
    const nh = b[q] ?? 0;
    if (next === 44) {
      info.fragmentOffset = u16(b, q + 2) & 0xfff8;
      q += 8;
    } else if (next === 51) {
      q += ((b[q + 1] ?? 0) + 2) * 4;
    } else {
      q += ((b[q + 1] ?? 0) + 1) * 8;
    }
    next = nh;
  }
  info.protocol = next;
  info.ipPayload = Math.max(0, ipEnd - q);
  if (info.fragmentOffset !== 0) return;
  transport(b, q, Math.min(end, ipEnd), end, info);
}

function transport(b: Uint8Array, q: number, ipEnd: number, end: number, info: PacketInfo): void {
  const avail = Math.min(end, ipEnd);
  switch (info.protocol) {
    case IPPROTO_TCP: {
      if (q + 20 > avail) {
        info.truncated = true;
        return;
      }
      info.sport = u16(b, q);
      info.dport = u16(b, q + 2);
      const doff = ((b[q + 12] ?? 0) >> 4) * 4;
      const tcp: TcpInfo = {
        seq: u32(b, q + 4),
        ack: u32(b, q + 8),
        flags: ((b[q + 12] ?? 0) & 1) << 8 | (b[q + 13] ?? 0),
        win: u16(b, q + 14),
        urg: u16(b, q + 18),
        options: [],
        payload: Math.max(0, info.ipPayload - doff),
        payloadOffset: q + doff,
      };
      if (doff > 20) tcp.options = tcpOptions(b, q + 20, Math.min(q + doff, avail));
      if (q + doff > avail) info.truncated = true;
      info.tcp = tcp;
      return;
    }
    case IPPROTO_UDP:
      if (q + 8 > avail) {
        info.truncated = true;
        return;
      }
      info.sport = u16(b, q);
      info.dport = u16(b, q + 2);
      info.udpLength = Math.max(0, u16(b, q + 4) - 8);
      return;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6: {
      if (q + 8 > avail) {
        info.truncated = q + 4 > avail;
        if (q + 2 <= avail) info.icmp = { type: b[q] ?? 0, code: b[q + 1] ?? 0, id: 0, seq: 0 };
        return;
      }
      const icmp: IcmpInfo = { type: b[q] ?? 0, code: b[q + 1] ?? 0, id: u16(b, q + 4), seq: u16(b, q + 6) };
      if (info.protocol === IPPROTO_ICMPV6 && (icmp.type === 135 || icmp.type === 136) && q + 24 <= avail) icmp.target = formatIPv6(b, q + 8);
      info.icmp = icmp;
      return;
    }
    default:
      return;
  }
}

function tcpOptions(b: Uint8Array, q: number, end: number): string[] {
  const out: string[] = [];
  while (q < end) {
    const kind = b[q] ?? 0;
    if (kind === 0) {
      out.push('eol');
      break;
    }
    if (kind === 1) {
      out.push('nop');
      q++;
      continue;
    }
    const len = b[q + 1] ?? 0;
    if (len < 2 || q + len > end) {
      out.push('bad opt');
      break;
    }
    switch (kind) {
      case 2:
        out.push(`mss ${u16(b, q + 2)}`);
        break;
      case 3:
        out.push(`wscale ${b[q + 2] ?? 0}`);
        break;
      case 4:
        out.push('sackOK');
        break;
      case 5: {
        const blocks: string[] = [];
        for (let i = q + 2; i + 8 <= q + len; i += 8) blocks.push(`{${u32(b, i)}:${u32(b, i + 4)}}`);
        out.push(`sack ${blocks.length} ${blocks.join('')}`);
        break;
      }
      case 8:
        out.push(`TS val ${u32(b, q + 2)} ecr ${u32(b, q + 6)}`);
        break;
      case 30:
        out.push('mptcp');
        break;
      case 34:
        out.push('tfo');
        break;
      default:
        out.push(`unknown-${kind}`);
    }
    q += len;
  }
  return out;
}

function arp(b: Uint8Array, p: number, end: number, info: PacketInfo): void {
  info.network = 'ARP';
  if (p + 28 > end) {
    info.truncated = true;
    return;
  }
  // Ethernet/IPv4 ARP only (htype 1, ptype 0x0800, hlen 6, plen 4)
  if (u16(b, p) !== 1 || u16(b, p + 2) !== ETHERTYPE_IPV4 || b[p + 4] !== 6 || b[p + 5] !== 4) return;
  info.arp = { op: u16(b, p + 6), senderMac: mac(b, p + 8), senderIp: formatIPv4(b, p + 14), targetIp: formatIPv4(b, p + 24) };
}

// ---- flow keys, for matching packets with the sockets that carry them ----------------------

/** Offset of the IP header of a packet (after Ethernet and VLAN tags), or -1. */
function ipOffset(b: Uint8Array, off: number, end: number, linkType: number): number {
  if (linkType === LINKTYPE_RAW) return off < end ? off : -1;
  if (linkType !== LINKTYPE_ETHERNET || off + 14 > end) return -1;
  let p = off + 14;
  let type = u16(b, off + 12);
  while ((type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ) && p + 4 <= end) {
    type = u16(b, p + 2);
    p += 4;
  }
  return type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6 ? p : -1;
}

export interface FlowKeys {
  forward: string;
  reverse: string;
}

/**
 * A key naming one direction of a TCP or UDP flow, the same for a packet (src → dst) and for a
 * socket whose local end is src: "6|167772161|1234|167772162|80" (IPv4 addresses as numbers,
 * IPv6 as hex). Undefined for anything else.
 */
export function flowKeyOf(b: Uint8Array, off: number, caplen: number, linkType: number): FlowKeys | undefined {
  const end = off + caplen;
  const p = ipOffset(b, off, end, linkType);
  if (p < 0) return undefined;
  const version = (b[p] ?? 0) >> 4;
  let proto: number;
  let src: string;
  let dst: string;
  let q: number;
  if (version === 4) {
    if (p + 20 > end) return undefined;
    if ((u16(b, p + 6) & 0x1fff) !== 0) return undefined;
    proto = b[p + 9] ?? 0;
    src = String(u32(b, p + 12));
    dst = String(u32(b, p + 16));
    q = p + ((b[p] ?? 0) & 0x0f) * 4;
  } else if (version === 6) {
    if (p + 40 > end) return undefined;
    proto = b[p + 6] ?? 0; // extension headers: not matched (rare on TCP/UDP)
    src = v6Key(b, p + 8);
    dst = v6Key(b, p + 24);
    q = p + 40;
  } else {
    return undefined;
  }
  if ((proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) || q + 4 > end) return undefined;
  const sport = u16(b, q);
  const dport = u16(b, q + 2);
  return { forward: `${proto}|${src}|${sport}|${dst}|${dport}`, reverse: `${proto}|${dst}|${dport}|${src}|${sport}` };
}

/**
 * flowKeyOf with a memory of the last IPv4 flow: in a busy capture most packets follow one of
 * the same flow, and those cost a few comparisons instead of two new strings.
 */
export class FlowKeyReader {
  private proto = -1;
  private src = 0;
  private dst = 0;
  private ports = 0;
  private last: FlowKeys | undefined;

  read(b: Uint8Array, off: number, caplen: number, linkType: number): FlowKeys | undefined {
    const end = off + caplen;
    const p = ipOffset(b, off, end, linkType);
    if (p >= 0 && (b[p] ?? 0) >> 4 === 4 && p + 20 <= end) {
      const q = p + ((b[p] ?? 0) & 0x0f) * 4;
      if (q + 4 <= end && (u16(b, p + 6) & 0x1fff) === 0) {
        const proto = b[p + 9] ?? 0;
        const src = u32(b, p + 12);
        const dst = u32(b, p + 16);
        const ports = u32(b, q);
        if (proto === this.proto && src === this.src && dst === this.dst && ports === this.ports) return this.last;
        this.last = flowKeyOf(b, off, caplen, linkType);
        this.proto = proto;
        this.src = src;
        this.dst = dst;
        this.ports = ports;
        return this.last;
      }
    }
    return flowKeyOf(b, off, caplen, linkType);
  }
}

function v6Key(b: Uint8Array, o: number): string {
  return Buffer.from(b.buffer, b.byteOffset + o, 16).toString('hex');
}

/** The same key for a socket's tuple (addresses in network order, as the kernel holds them). */
export function flowKeyOfTuple(protocol: number, family: 4 | 6, saddr: Uint8Array, sport: number, daddr: Uint8Array, dport: number): string {
  const a = family === 4 ? String(u32(saddr, 0)) : v6Key(saddr, 0);
  const z = family === 4 ? String(u32(daddr, 0)) : v6Key(daddr, 0);
  return `${protocol}|${a}|${sport}|${z}|${dport}`;
}
