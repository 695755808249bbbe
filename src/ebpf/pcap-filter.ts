// SPDX-License-Identifier: Apache-2.0
/**
 * tcpdump's filter language, compiled by libpcap to classic BPF, for `tlscope capture`'s
 * packet sockets (SO_ATTACH_FILTER, so the kernel drops what does not match and truncates to
 * the snap length).
 *
 * Link types. A socket bound to every interface of a namespace gets packets of every link type
 * there, each starting at its link-layer header (SOCK_RAW). libpcap compiles a filter for one
 * link type, so the attached program starts with a dispatch on the interface's hardware type
 * (the SKF_AD_HATYPE ancillary load): Ethernet-framed devices (Ethernet, veth, bridge,
 * loopback — Linux gives loopback a zeroed Ethernet header, as tcpdump shows it) run the filter
 * compiled for DLT_EN10MB; devices whose packets start at the IP header (tun, wireguard, ipip,
 * sit, "rawip") run the one compiled for DLT_RAW; packets of any other link type (PPP, IPoIB,
 * CAN, GRE with a header, …) are not captured.
 */
import { TlscopeError, UsageError } from '../errors.js';
import { ARPHRD, BPF_MAXINSNS, DLT_EN10MB, DLT_RAW, LINKTYPE_ETHERNET, LINKTYPE_RAW, PACKET_OUTGOING } from '../constants.js';
import { pcap, viewMemory, type Ptr } from './native.js';

/** Devices whose SOCK_RAW packets start with an Ethernet header. */
export const ETHERNET_HATYPES: readonly number[] = [ARPHRD.ETHER, ARPHRD.LOOPBACK];
/** Devices whose SOCK_RAW packets start with the IP header (no link-layer header at all). */
export const RAW_IP_HATYPES: readonly number[] = [ARPHRD.NONE, ARPHRD.RAWIP, ARPHRD.TUNNEL, ARPHRD.TUNNEL6, ARPHRD.SIT];

/** The file link type of a device's packets, or undefined when this capture does not take them. */
export function linkTypeOfHatype(hatype: number): number | undefined {
  if (ETHERNET_HATYPES.includes(hatype)) return LINKTYPE_ETHERNET;
  if (RAW_IP_HATYPES.includes(hatype)) return LINKTYPE_RAW;
  return undefined;
}

// ---- filters ---------------------------------------------------------------------------------

/** A tcpdump filter expression compiled for both link-layer framings tlscope captures. */
export interface CompiledFilter {
  readonly expression: string;
  readonly snaplen: number;
  /** struct sock_filter[] for Ethernet-framed devices */
  readonly ethernet: Buffer;
  /** for raw-IP devices; undefined when the expression does not apply to them (e.g. `ether host …`) */
  readonly raw: Buffer | undefined;
  /** libpcap's reason when `raw` is undefined */
  readonly rawError: string | undefined;
  /** the program attached to every capture socket: the dispatch on hardware type, then both */
  readonly program: Buffer;
}

/** A filter expression libpcap refused: exit 2, with libpcap's own words. */
export class FilterError extends UsageError {
  constructor(readonly expression: string, readonly pcapMessage: string) {
    super(`bad filter expression ${JSON.stringify(expression)}: ${pcapMessage}`, 'the filter is tcpdump\'s (see `man pcap-filter`), e.g. \'tcp port 8000 and host 10.0.0.2\'');
  }
}

const PCAP_NETMASK_UNKNOWN = 0xffffffff;

/**
 * Compiles `expression` with libpcap for one link type; returns the instructions (8 bytes
 * each, struct bpf_insn = struct sock_filter) or libpcap's error message.
 */
export function pcapCompile(expression: string, linktype: number, snaplen: number): { insns: Buffer } | { error: string } {
  const handle = pcap.open_dead(linktype, snaplen) as Ptr | null;
  if (handle === null) throw new TlscopeError('ERR_PCAP', 'pcap_open_dead failed (out of memory?)');
  try {
    const prog = Buffer.alloc(16); // struct bpf_program
    if ((pcap.compile(handle, prog, expression, 1, PCAP_NETMASK_UNKNOWN) as number) < 0) {
      return { error: String(pcap.geterr(handle)) };
    }
    try {
      const n = prog.readUInt32LE(0);
      const ptr = prog.readBigUInt64LE(8);
      return { insns: Buffer.from(viewMemory(ptr, n * 8).slice(0)) };
    } finally {
      pcap.freecode(prog);
    }
  } finally {
    pcap.close(handle);
  }
}

/** libpcap's version string, for --version-like output and doctor. */
export function pcapVersion(): string {
  return String(pcap.lib_version());
}

function insn(code: number, jt: number, jf: number, k: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(code, 0);
  b.writeUInt8(jt, 2);
  b.writeUInt8(jf, 3);
  b.writeUInt32LE(k >>> 0, 4);
  return b;
}

const BPF_LD_W_ABS = 0x20;
const BPF_JMP_JEQ_K = 0x15;
const BPF_JMP_JA = 0x05;
const BPF_RET_K = 0x06;
const SKF_AD_OFF = -0x1000;
const SKF_AD_HATYPE = 28;
const SKF_AD_PKTTYPE = 4;

/**
 * One classic BPF program for a socket on every interface: load the device's hardware type,
 * run `ethernet` for Ethernet-framed devices, `raw` for raw-IP ones, drop anything else.
 * Classic BPF jumps are relative (and forward only), so each compiled program is appended
 * unchanged.
 *
 * Loopback: every packet shows twice, once leaving (PACKET_OUTGOING) and once arriving.
 * libpcap drops the outgoing copy on `lo` (tcpdump -i lo prints each packet once); here the
 * kernel drops it, before it costs a copy.
 *
 *   0       ld  #hatype
 *   1       jeq #ETHER     → eth
 *   2       jeq #LOOPBACK  → lo
 *   3..     jeq #<raw-IP type> → toraw     (one per raw-IP type)
 *           ret #0                          (any other link type)
 *   lo:     ld  #pkttype
 *           jeq #OUTGOING  → drop, else → eth
 *   drop:   ret #0
 *   toraw:  ja  +len(ethernet)
 *   eth:    <ethernet program>
 *           <raw program, or ret #0>
 */
export function dispatchProgram(ethernet: Buffer, raw: Buffer | undefined): Buffer {
  const rawProg = raw ?? insn(BPF_RET_K, 0, 0, 0);
  const rawTypes = RAW_IP_HATYPES;
  const lo = 3 + rawTypes.length + 1;
  const drop = lo + 2;
  const toRaw = drop + 1;
  const eth = toRaw + 1;
  const prog: Buffer[] = [
    insn(BPF_LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_HATYPE),
    insn(BPF_JMP_JEQ_K, eth - 2, 0, ARPHRD.ETHER),
    insn(BPF_JMP_JEQ_K, lo - 3, 0, ARPHRD.LOOPBACK),
  ];
  rawTypes.forEach((t, i) => prog.push(insn(BPF_JMP_JEQ_K, toRaw - (3 + i + 1), 0, t)));
  prog.push(insn(BPF_RET_K, 0, 0, 0));
  prog.push(insn(BPF_LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_PKTTYPE));
  prog.push(insn(BPF_JMP_JEQ_K, drop - (lo + 2), eth - (lo + 2), PACKET_OUTGOING));
  prog.push(insn(BPF_RET_K, 0, 0, 0));
  prog.push(insn(BPF_JMP_JA, 0, 0, ethernet.length / 8));
  const program = Buffer.concat([...prog, ethernet, rawProg]);
  if (program.length / 8 > BPF_MAXINSNS) {
    throw new UsageError(`the filter compiles to ${program.length / 8} instructions; the kernel takes at most ${BPF_MAXINSNS}`, 'simplify the filter expression');
  }
  return program;
}

/** Compiles a tcpdump filter expression; throws FilterError with libpcap's message when it is wrong. */
export function compileFilter(expression: string, snaplen: number): CompiledFilter {
  const eth = pcapCompile(expression, DLT_EN10MB, snaplen);
  if ('error' in eth) throw new FilterError(expression, eth.error);
  const raw = pcapCompile(expression, DLT_RAW, snaplen);
  const rawInsns = 'insns' in raw ? raw.insns : undefined;
  return {
    expression,
    snaplen,
    ethernet: eth.insns,
    raw: rawInsns,
    rawError: 'error' in raw ? raw.error : undefined,
    program: dispatchProgram(eth.insns, rawInsns),
  };
}
