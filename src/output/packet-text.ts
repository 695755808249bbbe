// SPDX-License-Identifier: Apache-2.0
/**
 * tcpdump-style text for `tlscope capture`: the one-line summary of a packet, its bytes as
 * ASCII (-A) or hex and ASCII (-X), and the closing statistics. The wording follows tcpdump's
 * so that what people grep for in tcpdump output ("Flags [P.]", "length 87", "who-has") is
 * there, but tlscope never resolves names (tcpdump -n is always on).
 */
import type { PacketInfo } from '../protocols/dissect.js';

export interface PacketTextOptions {
  /** -e: the link-level header (MAC addresses, ethertype) on each line */
  link?: boolean;
  /** -S: absolute TCP sequence numbers */
  absoluteSeq?: boolean;
}

/** "Out", "In", … as tcpdump -i any prints the direction (sll_pkttype). */
export function directionWord(pkttype: number): string {
  switch (pkttype) {
    case 0:
      return 'In';
    case 1:
      return 'B';
    case 2:
      return 'M';
    case 3:
      return 'P';
    case 4:
      return 'Out';
    default:
      return '?';
  }
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** Local wall-clock time with microseconds, as tcpdump prints it: "19:21:26.685275". */
export class TimeFormatter {
  private lastSec = -1;
  private lastText = '';

  format(sec: number, nsec: number): string {
    if (sec !== this.lastSec) {
      const d = new Date(sec * 1000);
      this.lastText = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
      this.lastSec = sec;
    }
    return `${this.lastText}.${String(Math.floor(nsec / 1000)).padStart(6, '0')}`;
  }
}

const TCP_FLAG_CHARS: readonly [number, string][] = [
  [0x01, 'F'], [0x02, 'S'], [0x04, 'R'], [0x08, 'P'], [0x10, '.'], [0x20, 'U'], [0x40, 'E'], [0x80, 'W'], [0x100, 'e'],
];

export function tcpFlags(flags: number): string {
  let s = '';
  for (const [bit, ch] of TCP_FLAG_CHARS) if ((flags & bit) !== 0) s += ch;
  return s === '' ? 'none' : s;
}

/**
 * Relative TCP sequence numbers, as tcpdump shows them by default: numbers count from the
 * first byte of each direction (its SYN, or the first packet seen when the capture started
 * mid-connection). A bounded memory of connections.
 */
export class TcpSequences {
  private readonly base = new Map<string, number>();
  constructor(private readonly capacity = 16384) {}

  private remember(key: string, value: number): void {
    this.base.delete(key);
    this.base.set(key, value);
    if (this.base.size > this.capacity) this.base.delete(this.base.keys().next().value as string);
  }

  /** Base for one direction; `seq - 1` when unknown, so the next byte counts as 1. */
  private baseOf(key: string, seq: number): number {
    const b = this.base.get(key);
    if (b !== undefined) return b;
    const guess = (seq - 1) >>> 0;
    this.remember(key, guess);
    return guess;
  }

  /** Relative seq and ack of a packet; SYN packets stay absolute (and set the base). */
  relative(info: PacketInfo): { seq: number; ack: number; absolute: boolean } {
    const t = info.tcp;
    if (t === undefined) return { seq: 0, ack: 0, absolute: true };
    const fwd = `${info.src}|${info.sport}|${info.dst}|${info.dport}`;
    const rev = `${info.dst}|${info.dport}|${info.src}|${info.sport}`;
    if ((t.flags & 0x02) !== 0) {
      this.remember(fwd, t.seq);
      return { seq: t.seq, ack: t.ack, absolute: true };
    }
    const seq = (t.seq - this.baseOf(fwd, t.seq)) >>> 0;
    const ack = (t.flags & 0x10) !== 0 ? (t.ack - this.baseOf(rev, t.ack)) >>> 0 : 0;
    return { seq, ack, absolute: false };
  }
}

function endpoint(info: PacketInfo, addr: string, port: number): string {
  return `${addr}.${port}`;
}

const ICMP_NAMES: Record<number, string> = { 0: 'echo reply', 3: 'destination unreachable', 5: 'redirect', 8: 'echo request', 11: 'time exceeded', 12: 'parameter problem', 13: 'time stamp request', 14: 'time stamp reply' };
const ICMP_UNREACH: Record<number, string> = { 0: 'net', 1: 'host', 2: 'protocol', 3: 'port', 4: 'need to frag' };
const ICMP6_NAMES: Record<number, string> = {
  1: 'destination unreachable', 2: 'packet too big', 3: 'time exceeded', 4: 'parameter problem', 128: 'echo request', 129: 'echo reply',
  130: 'multicast listener query', 131: 'multicast listener report', 133: 'router solicitation', 134: 'router advertisement',
  135: 'neighbor solicitation', 136: 'neighbor advertisement', 143: 'multicast listener report v2',
};

const ETHERTYPE_NAMES: Record<number, string> = { 0x0800: 'IPv4', 0x86dd: 'IPv6', 0x0806: 'ARP', 0x8100: '802.1Q', 0x88cc: 'LLDP' };

/** The link-level part tcpdump -e prints before the rest. */
function linkPart(info: PacketInfo, wireLen: number): string {
  const e = info.ether;
  if (e === undefined) return '';
  const vlan = e.vlans.length > 0 ? `, ${e.vlans.map((v) => `vlan ${v}`).join(', ')}` : '';
  const name = ETHERTYPE_NAMES[e.type];
  return `${e.src} > ${e.dst}${vlan}, ethertype ${name === undefined ? '' : `${name} `}(0x${e.type.toString(16).padStart(4, '0')}), length ${wireLen}: `;
}

/**
 * The summary after time, interface and direction: "IP 10.0.0.1.8000 > 10.0.0.2.41234: Flags
 * [P.], seq 1:186, ack 87, win 509, length 185". `wireLen` is the packet's length on the wire.
 */
export function packetSummary(info: PacketInfo, wireLen: number, seqs: TcpSequences | undefined, opts: PacketTextOptions = {}): string {
  const link = opts.link ? linkPart(info, wireLen) : '';
  const trunc = info.truncated ? ' [|truncated]' : '';
  switch (info.network) {
    case 'ARP': {
      const a = info.arp;
      if (a === undefined) return `${link}ARP, length ${wireLen - info.netOffset}${trunc}`;
      const len = `, length ${Math.max(0, wireLen - info.netOffset)}`;
      if (a.op === 1) return `${link}ARP, Request who-has ${a.targetIp} tell ${a.senderIp}${len}`;
      if (a.op === 2) return `${link}ARP, Reply ${a.senderIp} is-at ${a.senderMac}${len}`;
      return `${link}ARP, op ${a.op} ${a.senderIp} > ${a.targetIp}${len}`;
    }
    case 'IP':
    case 'IP6':
      return `${link}${info.network} ${ipPart(info, seqs, opts)}${trunc}`;
    default: {
      if (info.linkType !== 1 && info.ethertype === 0) return `${link}unknown link type ${info.linkType}, length ${wireLen}`;
      return `${link}ethertype 0x${info.ethertype.toString(16).padStart(4, '0')} (unknown), length ${wireLen}${trunc}`;
    }
  }
}

function ipPart(info: PacketInfo, seqs: TcpSequences | undefined, opts: PacketTextOptions): string {
  if (info.src === '') return `[|ip]`;
  if (info.fragmentOffset !== 0) return `${info.src} > ${info.dst}: ip-proto-${info.protocol} (frag offset ${info.fragmentOffset}), length ${info.ipPayload}`;
  const t = info.tcp;
  if (t !== undefined) {
    const parts = [`Flags [${tcpFlags(t.flags)}]`];
    const rel = opts.absoluteSeq || seqs === undefined ? { seq: t.seq, ack: t.ack } : seqs.relative(info);
    if (t.payload > 0) parts.push(`seq ${rel.seq}:${(rel.seq + t.payload) >>> 0}`);
    else if ((t.flags & 0x07) !== 0) parts.push(`seq ${rel.seq}`);
    if ((t.flags & 0x10) !== 0) parts.push(`ack ${rel.ack}`);
    parts.push(`win ${t.win}`);
    if ((t.flags & 0x20) !== 0) parts.push(`urg ${t.urg}`);
    if (t.options.length > 0) parts.push(`options [${t.options.join(',')}]`);
    parts.push(`length ${t.payload}`);
    return `${endpoint(info, info.src, info.sport)} > ${endpoint(info, info.dst, info.dport)}: ${parts.join(', ')}`;
  }
  if (info.protocol === 17 && (info.sport !== 0 || info.dport !== 0)) {
    return `${endpoint(info, info.src, info.sport)} > ${endpoint(info, info.dst, info.dport)}: UDP, length ${info.udpLength}`;
  }
  const i = info.icmp;
  if (i !== undefined && info.protocol === 1) {
    let what = ICMP_NAMES[i.type] ?? `type-#${i.type}`;
    if (i.type === 0 || i.type === 8) what += `, id ${i.id}, seq ${i.seq}`;
    if (i.type === 3) what = `${ICMP_UNREACH[i.code] ?? `code ${i.code}`} unreachable`;
    return `${info.src} > ${info.dst}: ICMP ${what}, length ${info.ipPayload}`;
  }
  if (i !== undefined && info.protocol === 58) {
    let what = ICMP6_NAMES[i.type] ?? `type-#${i.type}`;
    if (i.type === 128 || i.type === 129) what += `, id ${i.id}, seq ${i.seq}`;
    if (i.type === 135 && i.target !== undefined) what += `, who has ${i.target}`;
    if (i.type === 136 && i.target !== undefined) what += `, tgt is ${i.target}`;
    return `${info.src} > ${info.dst}: ICMP6, ${what}, length ${info.ipPayload}`;
  }
  return `${info.src} > ${info.dst}: ip-proto-${info.protocol} ${info.ipPayload}`;
}

/** Whether tcpdump -A shows a byte as itself: printable, space, tab or newline. */
function asciiShown(ch: number): boolean {
  return (ch > 0x20 && ch < 0x7f) || ch === 0x20 || ch === 0x09 || ch === 0x0a;
}

/**
 * tcpdump -A: the bytes from `from` to `to` as text; other bytes as '.', a CR dropped where a
 * line ends (CR LF) and shown as '.' elsewhere. Starts with a newline, like tcpdump.
 */
export function asciiDump(b: Uint8Array, from: number, to: number): string {
  let s = '\n';
  for (let i = from; i < to; i++) {
    const ch = b[i] ?? 0;
    if (ch === 0x0d) {
      if (i + 1 < to && b[i + 1] === 0x0a) continue;
      s += '.';
    } else {
      s += asciiShown(ch) ? String.fromCharCode(ch) : '.';
    }
  }
  return s;
}

/** tcpdump -X: 16 bytes a line, offset, hex in pairs, then the same bytes as ASCII. */
export function hexAsciiDump(b: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let line = from; line < to; line += 16) {
    const end = Math.min(line + 16, to);
    let hex = '';
    let ascii = '';
    for (let i = line; i < end; i++) {
      const ch = b[i] ?? 0;
      if ((i - line) % 2 === 0) hex += ' ';
      hex += ch.toString(16).padStart(2, '0');
      ascii += ch >= 0x20 && ch < 0x7f ? String.fromCharCode(ch) : '.';
    }
    s += `\n\t0x${(line - from).toString(16).padStart(4, '0')}: ${hex.padEnd(40)}  ${ascii}`;
  }
  return s;
}

export interface CaptureTotals {
  /** packets tlscope read and printed or wrote */
  captured: number;
  /** packets that passed the kernel filter (including those then dropped) */
  received: number;
  /** packets the kernel dropped because tlscope did not read fast enough */
  dropped: number;
}

/** The closing lines, worded as tcpdump's (it prints them to stderr too). */
export function formatCaptureTotals(t: CaptureTotals): string {
  const n = (k: number, what: string): string => `${k} packet${k === 1 ? '' : 's'} ${what}`;
  return `${n(t.captured, 'captured')}\n${n(t.received, 'received by filter')}\n${n(t.dropped, 'dropped by kernel')}\n`;
}
