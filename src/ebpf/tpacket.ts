// SPDX-License-Identifier: Apache-2.0
/**
 * The TPACKET_V3 receive ring of a packet socket: set up on the socket (PACKET_VERSION,
 * PACKET_RX_RING), mapped into this process (mmap.ts) and walked in TypeScript, block by
 * block. A block is ours while its status has TP_STATUS_USER and goes back to the kernel
 * when we store TP_STATUS_KERNEL. The ring lives and dies with the mapping and the socket.
 */
import { TlscopeError } from '../errors.js';
import { PACKET_RX_RING, PACKET_VERSION, SOL_PACKET, TPACKET_V3 } from '../constants.js';
import { c, errno } from './native.js';
import { kernelError } from './errors.js';
import { MappedRegion } from './mmap.js';

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

export interface TpacketRingOptions {
  /** Block size in bytes: a power-of-two number of pages. */
  blockSize: number;
  /** Blocks in the ring (at least 2). */
  blockCount: number;
  /** A block that holds packets is handed over after this many ms even when not full. */
  retireMs: number;
}

/** A TPACKET_V3 ring set up on a packet socket and mapped; close() unmaps it (the socket stays). */
export class TpacketRing {
  readonly walker: TpacketV3Walker;

  private constructor(private readonly region: MappedRegion, blockSize: number, blockCount: number) {
    this.walker = new TpacketV3Walker(region.memory, blockSize, blockCount);
  }

  /** PACKET_VERSION TPACKET_V3, PACKET_RX_RING, mmap: on a socket that is not bound yet. */
  static create(fd: number, opts: TpacketRingOptions): TpacketRing {
    const { blockSize, blockCount } = opts;
    const ringLen = blockSize * blockCount;
    setIntOption(fd, SOL_PACKET, PACKET_VERSION, TPACKET_V3, 'select TPACKET_V3');
    const frameSize = 2048;
    const req = Buffer.alloc(28); // struct tpacket_req3
    req.writeUInt32LE(blockSize, 0);
    req.writeUInt32LE(blockCount, 4);
    req.writeUInt32LE(frameSize, 8);
    req.writeUInt32LE((blockSize / frameSize) * blockCount, 12);
    req.writeUInt32LE(opts.retireMs, 16);
    req.writeUInt32LE(0, 20); // tp_sizeof_priv: no private area per block
    req.writeUInt32LE(0, 24); // tp_feature_req_word
    if ((c.setsockopt(fd, SOL_PACKET, PACKET_RX_RING, req, req.length) as number) < 0) throw kernelError(`set up a ${ringLen >> 20} MiB capture ring`, errno());
    return new TpacketRing(MappedRegion.map(fd, ringLen, 0, true, 'the capture ring'), blockSize, blockCount);
  }

  /** Size of the mapping. */
  get bytes(): number {
    return this.region.length;
  }

  close(): void {
    this.region.close();
  }
}

/** setsockopt with an int value; throws KernelError. */
function setIntOption(fd: number, level: number, name: number, value: number, what: string): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value, 0);
  if ((c.setsockopt(fd, level, name, v, 4) as number) < 0) throw kernelError(what, errno());
}
