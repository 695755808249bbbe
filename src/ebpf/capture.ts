// SPDX-License-Identifier: Apache-2.0
/**
 * Packet capture for `tlscope capture`: tcpdump's filter language compiled by libpcap to
 * classic BPF, an AF_PACKET socket created inside the target's network namespace with that
 * filter attached (SO_ATTACH_FILTER, so the kernel drops what does not match and truncates to
 * the snap length), and a TPACKET_V3 ring mapped into this process and walked in TypeScript.
 *
 * Nothing here outlives the process: the filter lives and dies with the socket, the ring with
 * the mapping and the socket.
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
import {
  addressOf, c, errno, pcap, viewMemory, pageSize, MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE,
  EPOLLIN, EPOLL_CTL_ADD, EPOLL_CLOEXEC, type Ptr,
} from './native.js';
import { BPF_MAP_TYPE_RINGBUF, kernelError, type BpfMap } from './object.js';
import { RingWalker, type Decoder } from './ringbuf.js';
import { AF_PACKET, ETH_P_ALL, inNetns, netnsInode, PACKET_STATISTICS, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_RAW, SOL_PACKET, SOL_SOCKET } from './packet.js';

const SO_ATTACH_FILTER = 26;
const PACKET_RX_RING = 5;
const PACKET_VERSION = 10;
const TPACKET_V3 = 2;
const SIOCGIFNAME = 0x8910;
const SIOCGIFINDEX = 0x8933;
const ENODEV = 19;

/** libpcap's link types (DLT_*) for pcap_open_dead, and the file link types (LINKTYPE_*). */
export const DLT_EN10MB = 1;
/** DLT_RAW is 12 everywhere but OpenBSD */
export const DLT_RAW = 12;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;

/** Hardware types (ARPHRD_*, linux/if_arp.h) as sockaddr_ll.sll_hatype carries them. */
export const ARPHRD = {
  ETHER: 1,
  TUNNEL: 768,
  TUNNEL6: 769,
  LOOPBACK: 772,
  SIT: 776,
  RAWIP: 519,
  NONE: 0xfffe,
} as const;

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

/** sll_pkttype values (linux/if_packet.h). */
export const PACKET_HOST = 0;
export const PACKET_BROADCAST = 1;
export const PACKET_MULTICAST = 2;
export const PACKET_OTHERHOST = 3;
export const PACKET_OUTGOING = 4;

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
const BPF_MAXINSNS = 4096;

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

// ---- the TPACKET_V3 ring ------------------------------------------------------------------

/** Per-packet status bits (tp_status) and block status (linux/if_packet.h). */
export const TP_STATUS_KERNEL = 0;
export const TP_STATUS_USER = 1;
export const TP_STATUS_LOSING = 1 << 2;
export const TP_STATUS_VLAN_VALID = 1 << 4;
export const TP_STATUS_BLK_TMO = 1 << 5;
export const TP_STATUS_VLAN_TPID_VALID = 1 << 6;

/**
 * struct tpacket_block_desc: version@0 offset_to_priv@4, then struct tpacket_hdr_v1:
 * block_status@8 num_pkts@12 offset_to_first_pkt@16 blk_len@20 seq_num@24 ts_first@32
 * ts_last@40; 48 bytes.
 */
export const BLOCK = { status: 8, numPkts: 12, firstPkt: 16, blkLen: 20, seq: 24, size: 48 } as const;
/**
 * struct tpacket3_hdr: tp_next_offset@0 tp_sec@4 tp_nsec@8 tp_snaplen@12 tp_len@16
 * tp_status@20 tp_mac@24(u16) tp_net@26(u16) hv1{tp_rxhash@28 tp_vlan_tci@32 tp_vlan_tpid@36(u16)}
 * 48 bytes; then struct sockaddr_ll at TPACKET_ALIGN(48) = 48: family@0 protocol@2(be16)
 * ifindex@4(i32) hatype@8(u16) pkttype@10(u8) halen@11 addr@12.
 */
export const TPHDR = { next: 0, sec: 4, nsec: 8, snaplen: 12, len: 16, status: 20, mac: 24, net: 26, vlanTci: 32, vlanTpid: 36, size: 48 } as const;
export const SLL = { at: 48, protocol: 2, ifindex: 4, hatype: 8, pkttype: 10, size: 20 } as const;

/**
 * One packet as the ring holds it. The object is reused for every packet of a drain: copy
 * what you keep. `buf[offset .. offset + caplen)` is the packet from its link-layer header;
 * those bytes are only valid during the visit.
 */
export interface RingPacket {
  sec: number;
  nsec: number;
  caplen: number;
  /** length on the wire */
  len: number;
  status: number;
  ifindex: number;
  hatype: number;
  pkttype: number;
  /** ETH_P_* of the packet, host order */
  protocol: number;
  vlanTci: number;
  vlanTpid: number;
  buf: Buffer;
  offset: number;
}

/** Return false to stop the walk (a packet count was reached): the rest of the block is skipped. */
export type PacketVisitor = (p: RingPacket) => boolean;

export interface RingWalkStats {
  blocks: number;
  packets: number;
  /** blocks that the kernel retired on its timer, not because they were full */
  timedOutBlocks: number;
  /** packets flagged TP_STATUS_LOSING (the kernel dropped packets before them) */
  losingPackets: number;
}

/**
 * Walks a TPACKET_V3 receive ring over mapped memory: blocks in order; a block whose status
 * has TP_STATUS_USER belongs to us until we hand it back with TP_STATUS_KERNEL. Pure (no
 * system calls), so unit tests run it over a ring they build.
 */
export class TpacketV3Walker {
  private readonly words: Int32Array;
  private readonly view: DataView;
  readonly buf: Buffer;
  private current = 0;
  private readonly pkt: RingPacket;
  readonly stats: RingWalkStats = { blocks: 0, packets: 0, timedOutBlocks: 0, losingPackets: 0 };

  constructor(memory: ArrayBuffer, readonly blockSize: number, readonly blockCount: number) {
    if (blockSize % 8 !== 0 || blockSize * blockCount > memory.byteLength) throw new TlscopeError('ERR_CAPTURE', `ring of ${blockCount} × ${blockSize} bytes does not fit ${memory.byteLength}`);
    this.words = new Int32Array(memory);
    this.view = new DataView(memory);
    this.buf = Buffer.from(memory);
    this.pkt = { sec: 0, nsec: 0, caplen: 0, len: 0, status: 0, ifindex: 0, hatype: 0, pkttype: 0, protocol: 0, vlanTci: 0, vlanTpid: 0, buf: this.buf, offset: 0 };
  }

  /** Whether the next block is ours to read. */
  ready(): boolean {
    const at = this.current * this.blockSize + BLOCK.status;
    return (Atomics.load(this.words, at >>> 2) & TP_STATUS_USER) !== 0;
  }

  /**
   * Visits the packets of up to `maxBlocks` ready blocks and gives each block back to the
   * kernel. Returns false when the visitor asked to stop.
   */
  drain(visit: PacketVisitor, maxBlocks = this.blockCount): boolean {
    const v = this.view;
    const p = this.pkt;
    for (let b = 0; b < maxBlocks; b++) {
      const base = this.current * this.blockSize;
      const statusWord = (base + BLOCK.status) >>> 2;
      const status = Atomics.load(this.words, statusWord);
      if ((status & TP_STATUS_USER) === 0) return true;
      const n = v.getUint32(base + BLOCK.numPkts, true);
      let off = base + v.getUint32(base + BLOCK.firstPkt, true);
      let go = true;
      for (let i = 0; i < n && go; i++) {
        p.sec = v.getUint32(off + TPHDR.sec, true);
        p.nsec = v.getUint32(off + TPHDR.nsec, true);
        p.caplen = v.getUint32(off + TPHDR.snaplen, true);
        p.len = v.getUint32(off + TPHDR.len, true);
        p.status = v.getUint32(off + TPHDR.status, true);
        p.offset = off + v.getUint16(off + TPHDR.mac, true);
        p.protocol = v.getUint16(off + SLL.at + SLL.protocol, false);
        p.ifindex = v.getInt32(off + SLL.at + SLL.ifindex, true);
        p.hatype = v.getUint16(off + SLL.at + SLL.hatype, true);
        p.pkttype = v.getUint8(off + SLL.at + SLL.pkttype);
        if ((p.status & TP_STATUS_VLAN_VALID) !== 0) {
          p.vlanTci = v.getUint32(off + TPHDR.vlanTci, true) & 0xffff;
          p.vlanTpid = (p.status & TP_STATUS_VLAN_TPID_VALID) !== 0 ? v.getUint16(off + TPHDR.vlanTpid, true) : 0x8100;
        } else {
          p.vlanTci = 0;
          p.vlanTpid = 0;
        }
        if ((p.status & TP_STATUS_LOSING) !== 0) this.stats.losingPackets++;
        this.stats.packets++;
        go = visit(p);
        const next = v.getUint32(off + TPHDR.next, true);
        if (next === 0) break;
        off += next;
      }
      if ((status & TP_STATUS_BLK_TMO) !== 0) this.stats.timedOutBlocks++;
      this.stats.blocks++;
      Atomics.store(this.words, statusWord, TP_STATUS_KERNEL);
      this.current = (this.current + 1) % this.blockCount;
      if (!go) return false;
    }
    return true;
  }
}

// ---- capture sockets --------------------------------------------------------------------------

export interface CaptureSocketOptions {
  /** A network namespace (`/proc/PID/ns/net`); default ours. */
  nsPath?: string;
  /** Only this interface (a name in that namespace); default every interface. */
  interfaceName?: string;
  /** The classic BPF program (CompiledFilter.program). */
  filter: Buffer;
  /** Ring block size in bytes: a power-of-two number of pages (default 1 MiB). */
  blockSize?: number;
  /** Blocks in the ring (default 8). */
  blockCount?: number;
  /** A block that holds packets is handed over after this many ms even when not full (default 8). */
  retireMs?: number;
}

export interface CaptureSocketStats {
  /** packets that passed the filter (including those then dropped), as libpcap's ps_recv */
  received: number;
  /** packets the kernel dropped because the ring was full */
  dropped: number;
  /** times the queue was frozen (ring full) */
  freezes: number;
}

/** An AF_PACKET socket with a filter and a TPACKET_V3 ring, living in one network namespace. */
export class CaptureSocket {
  readonly fd: number;
  /** inode of the socket's network namespace */
  readonly netns: number;
  /** the bound interface, 0 for all */
  readonly ifindex: number;
  readonly walker: TpacketV3Walker;
  private readonly ringPtr: Ptr;
  private readonly ringLen: number;
  private readonly names = new Map<number, string>();
  private totals: CaptureSocketStats = { received: 0, dropped: 0, freezes: 0 };
  private open = true;

  private constructor(fd: number, netns: number, ifindex: number, ringPtr: Ptr, blockSize: number, blockCount: number) {
    this.fd = fd;
    this.netns = netns;
    this.ifindex = ifindex;
    this.ringPtr = ringPtr;
    this.ringLen = blockSize * blockCount;
    this.walker = new TpacketV3Walker(viewMemory(ringPtr, this.ringLen), blockSize, blockCount);
  }

  /**
   * socket() inside the namespace, then: filter, TPACKET_V3, ring, mmap — and only then bind
   * to every protocol, so that nothing is queued before the filter is in place.
   */
  static open(opts: CaptureSocketOptions): CaptureSocket {
    const page = pageSize();
    const blockSize = opts.blockSize ?? 1 << 20;
    const blockCount = opts.blockCount ?? 8;
    if (blockSize < page || (blockSize & (blockSize - 1)) !== 0) throw new TlscopeError('ERR_CAPTURE', `ring block size ${blockSize} is not a power of two of at least a page`);
    if (blockCount < 2) throw new TlscopeError('ERR_CAPTURE', 'a capture ring needs at least 2 blocks');
    const nsPath = opts.nsPath ?? '/proc/thread-self/ns/net';
    const made = (): { fd: number; err: number } => {
      const fd = c.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) as number;
      return { fd, err: fd < 0 ? errno() : 0 };
    };
    const { fd, err } = opts.nsPath === undefined ? made() : inNetns(opts.nsPath, made);
    if (fd < 0) throw kernelError('open packet socket', err);
    let ringPtr: Ptr | undefined;
    const ringLen = blockSize * blockCount;
    try {
      const netns = netnsInode(nsPath);
      let ifindex = 0;
      if (opts.interfaceName !== undefined) {
        ifindex = interfaceIndex(fd, opts.interfaceName);
        if (ifindex === 0) {
          throw new TlscopeError('ERR_NO_INTERFACE', `no interface ${JSON.stringify(opts.interfaceName)} in network namespace ${netns}`, { hint: 'list them with `ip -n NS link` or `nsenter -t PID -n ip link`; leave -i out for every interface' });
        }
      }
      attachClassicFilter(fd, opts.filter);
      setInt(fd, SOL_PACKET, PACKET_VERSION, TPACKET_V3, 'select TPACKET_V3');
      const frameSize = 2048;
      const req = Buffer.alloc(28); // struct tpacket_req3
      req.writeUInt32LE(blockSize, 0);
      req.writeUInt32LE(blockCount, 4);
      req.writeUInt32LE(frameSize, 8);
      req.writeUInt32LE((blockSize / frameSize) * blockCount, 12);
      req.writeUInt32LE(opts.retireMs ?? 8, 16);
      req.writeUInt32LE(0, 20); // tp_sizeof_priv: no private area per block
      req.writeUInt32LE(0, 24); // tp_feature_req_word
      if ((c.setsockopt(fd, SOL_PACKET, PACKET_RX_RING, req, req.length) as number) < 0) throw kernelError(`set up a ${ringLen >> 20} MiB capture ring`, errno());
      const ptr = c.mmap(null, ringLen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) as Ptr;
      if (ptr === MAP_FAILED) throw kernelError('mmap the capture ring', errno());
      ringPtr = ptr;
      const sll = Buffer.alloc(SLL.size);
      sll.writeUInt16LE(AF_PACKET, 0);
      sll.writeUInt16BE(ETH_P_ALL, 2);
      sll.writeInt32LE(ifindex, 4);
      if ((c.bind(fd, sll, sll.length) as number) < 0) throw kernelError('bind packet socket', errno());
      return new CaptureSocket(fd, netns, ifindex, ptr, blockSize, blockCount);
    } catch (e) {
      if (ringPtr !== undefined) c.munmap(ringPtr, ringLen);
      c.close(fd);
      throw e;
    }
  }

  /** The name of an interface of the socket's namespace (cached); `if<N>` once it is gone. */
  interfaceName(ifindex: number): string {
    let n = this.names.get(ifindex);
    if (n === undefined) {
      n = (this.open ? interfaceNameOf(this.fd, ifindex) : undefined) ?? `if${ifindex}`;
      this.names.set(ifindex, n);
    }
    return n;
  }

  /** Counters since the socket was opened (PACKET_STATISTICS resets on read: they are summed). */
  stats(): CaptureSocketStats {
    if (this.open) {
      const buf = Buffer.alloc(12); // struct tpacket_stats_v3
      const len = [12];
      if ((c.getsockopt(this.fd, SOL_PACKET, PACKET_STATISTICS, buf, len) as number) === 0) {
        // tp_packets already includes tp_drops (the kernel adds them when reporting)
        this.totals = {
          received: this.totals.received + buf.readUInt32LE(0),
          dropped: this.totals.dropped + buf.readUInt32LE(4),
          freezes: this.totals.freezes + buf.readUInt32LE(8),
        };
      }
    }
    return { ...this.totals };
  }

  get isOpen(): boolean {
    return this.open;
  }

  /** Size of the ring mapped for this socket. */
  get ringBytes(): number {
    return this.ringLen;
  }

  /** Reads the final counters, unmaps the ring and closes the socket (the filter goes with it). */
  close(): void {
    if (!this.open) return;
    this.stats();
    this.open = false;
    c.munmap(this.ringPtr, this.ringLen);
    c.close(this.fd);
  }
}

function setInt(fd: number, level: number, name: number, value: number, what: string): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value, 0);
  if ((c.setsockopt(fd, level, name, v, 4) as number) < 0) throw kernelError(what, errno());
}

/** SO_ATTACH_FILTER with a classic BPF program (struct sock_fprog: u16 len @0, pointer @8). */
export function attachClassicFilter(fd: number, program: Buffer): void {
  const insns = Buffer.from(program); // kept alive across the call
  const fprog = Buffer.alloc(16);
  fprog.writeUInt16LE(insns.length / 8, 0);
  fprog.writeBigUInt64LE(BigInt(addressOf(insns)), 8);
  const r = c.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, fprog, 16) as number;
  const e = errno();
  void insns;
  if (r < 0) throw kernelError('attach the capture filter', e);
}

/** struct ifreq: ifr_name[16] @0, union @16 (ifr_ifindex int). Resolved in the socket's namespace. */
function interfaceIndex(fd: number, name: string): number {
  if (Buffer.byteLength(name) > 15) return 0;
  const ifr = Buffer.alloc(40);
  ifr.write(name, 0, 'utf8');
  if ((c.ioctl(fd, SIOCGIFINDEX, ifr) as number) < 0) {
    const e = errno();
    if (e === ENODEV) return 0;
    throw kernelError(`look up interface ${name}`, e);
  }
  return ifr.readInt32LE(16);
}

function interfaceNameOf(fd: number, ifindex: number): string | undefined {
  const ifr = Buffer.alloc(40);
  ifr.writeInt32LE(ifindex, 16);
  if ((c.ioctl(fd, SIOCGIFNAME, ifr) as number) < 0) return undefined;
  const end = ifr.indexOf(0);
  return ifr.subarray(0, end < 0 || end > 16 ? 16 : end).toString('utf8');
}

// ---- waiting for packets ------------------------------------------------------------------------

/**
 * Calls `onReady` when packets may be waiting on any of a set of capture sockets. It waits in
 * epoll (epoll_wait runs on koffi's worker thread, so the event loop never blocks) until the
 * kernel hands a block over, then reads, and reads on at once (through setImmediate, so that
 * timers and I/O still get their turn) while more blocks are ready; only when the rings are
 * empty does it wait again. One epoll round trip per wait costs ~25 µs here (measured: 2000
 * async epoll_wait calls in 50 ms); a polling timer would add its period to the time a full
 * ring has to absorb (at 1 GB/s, 5 ms is 5 MB). The wait times out every `waitMs` and reads
 * anyway, so a wake-up the kernel did not send costs at most that long.
 */
export class CapturePoller {
  private epfd: number;
  private pending = false;
  private again = false;
  private done: Promise<void> = Promise.resolve();
  private readonly events = Buffer.alloc(12 * 8);
  private closed = false;
  /** epoll waits that ended with a socket ready / reads scheduled at once because more was ready */
  readonly stats = { wakeups: 0, timeouts: 0, rereads: 0 };

  /**
   * @param onReady reads what is ready
   * @param isIdle whether no socket has a block ready now
   */
  constructor(private readonly onReady: () => void, private readonly isIdle: () => boolean, private readonly waitMs = 100) {
    this.epfd = c.epoll_create1(EPOLL_CLOEXEC) as number;
    if (this.epfd < 0) throw kernelError('epoll_create1', errno());
    this.arm();
  }

  /** Watches a socket (closing the socket removes it from epoll by itself). */
  add(fd: number): void {
    const ev = Buffer.alloc(12); // struct epoll_event is packed on x86-64: u32 events, u64 data
    ev.writeUInt32LE(EPOLLIN, 0);
    ev.writeUInt32LE(fd, 4);
    if ((c.epoll_ctl(this.epfd, EPOLL_CTL_ADD, fd, ev) as number) < 0) throw kernelError('epoll_ctl', errno());
  }

  private tick(): void {
    if (this.closed) return;
    this.onReady();
    if (this.isIdle()) {
      this.arm();
      return;
    }
    if (!this.again) {
      this.again = true;
      this.stats.rereads++;
      setImmediate(() => {
        this.again = false;
        this.tick();
      });
    }
  }

  private arm(): void {
    if (this.closed || this.pending) return;
    this.pending = true;
    this.done = new Promise((resolve) => {
      c.epoll_wait.async(this.epfd, this.events, 8, this.waitMs, (_err: unknown, n: number) => {
        this.pending = false;
        resolve();
        if (n > 0) this.stats.wakeups++;
        else this.stats.timeouts++;
        this.tick();
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.done;
    c.close(this.epfd);
    this.epfd = -1;
  }
}

// ---- a BPF ring buffer read only when asked -----------------------------------------------------

/**
 * A BPF ring buffer read synchronously, only when the caller asks (no timer, no epoll): for
 * side information that is needed exactly when something else is read — capture's socket
 * owners, read just before each batch of packets. The walk is ringbuf.ts's RingWalker.
 */
export class PolledRingBuffer<T> {
  private readonly walker: RingWalker<T>;
  private readonly consumerPtr: Ptr;
  private readonly dataPtr: Ptr;
  private readonly page: number;
  private readonly dataLen: number;
  private open = true;

  constructor(readonly map: BpfMap, decode: Decoder<T>) {
    if (map.type !== BPF_MAP_TYPE_RINGBUF) throw new TlscopeError('ERR_RINGBUF', `${map.name} is not a ring buffer map`);
    this.page = pageSize();
    this.dataLen = this.page + 2 * map.maxEntries;
    const cons = c.mmap(null, this.page, PROT_READ | PROT_WRITE, MAP_SHARED, map.fd, 0) as Ptr;
    if (cons === MAP_FAILED) throw kernelError(`mmap consumer page of ${map.name}`, errno());
    const data = c.mmap(null, this.dataLen, PROT_READ, MAP_SHARED, map.fd, this.page) as Ptr;
    if (data === MAP_FAILED) {
      const e = errno();
      c.munmap(cons, this.page);
      throw kernelError(`mmap data pages of ${map.name}`, e);
    }
    this.consumerPtr = cons;
    this.dataPtr = data;
    this.walker = new RingWalker(viewMemory(cons, this.page), viewMemory(data, this.dataLen), this.page, map.maxEntries, decode);
  }

  /** Everything committed so far (at most `max` records). */
  read(max = 65536): T[] {
    const out: T[] = [];
    if (this.open) this.walker.drain(out, max);
    return out;
  }

  get decodeErrors(): number {
    return this.walker.stats.decodeErrors;
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    c.munmap(this.dataPtr, this.dataLen);
    c.munmap(this.consumerPtr, this.page);
  }
}
