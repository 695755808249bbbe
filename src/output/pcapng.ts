// SPDX-License-Identifier: Apache-2.0
/**
 * A pcapng writer (draft-ietf-opsawg-pcapng): one Section Header Block, Interface Description
 * Blocks added as interfaces appear (a block may come anywhere before the first packet that
 * names it), and Enhanced Packet Blocks. Little-endian, as the machine writes it; the byte-order
 * magic tells readers.
 *
 * Blocks are laid out into one growing buffer and handed to the sink on flush(), so a burst of
 * packets costs one write. Packet bytes are copied straight from where they lie (the capture
 * ring) into that buffer.
 */

const SHB = 0x0a0d0d0a;
const IDB = 0x00000001;
const ISB = 0x00000005;
const EPB = 0x00000006;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;

const OPT_ENDOFOPT = 0;
const OPT_COMMENT = 1;
const SHB_HARDWARE = 2;
const SHB_OS = 3;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_DESCRIPTION = 3;
const IF_TSRESOL = 9;
const IF_FILTER = 11;
const IF_OS = 12;
const EPB_FLAGS = 2;
const ISB_STARTTIME = 2;
const ISB_ENDTIME = 3;
const ISB_IFRECV = 4;
const ISB_IFDROP = 5;
const ISB_OSDROP = 7;

/** epb_flags: direction in bits 0-1, reception type in bits 2-4. */
export const EPB_INBOUND = 1;
export const EPB_OUTBOUND = 2;
export const EPB_UNICAST = 1 << 2;
export const EPB_MULTICAST = 2 << 2;
export const EPB_BROADCAST = 3 << 2;
export const EPB_PROMISCUOUS = 4 << 2;

export interface PcapngSectionInfo {
  /** shb_userappl, e.g. "tlscope 0.1.0" */
  application?: string;
  /** shb_os, e.g. "Linux 6.1.0" */
  os?: string;
  /** shb_hardware */
  hardware?: string;
  /** a comment on the section */
  comment?: string;
}

export interface PcapngInterface {
  /** LINKTYPE_* (1 Ethernet, 101 raw IP, …) */
  linkType: number;
  snaplen: number;
  /** if_name */
  name?: string;
  /** if_description: who the interface belongs to, e.g. "web (docker) eth0" */
  description?: string;
  /** if_filter: the capture filter, as a libpcap expression */
  filter?: string;
  /** if_os */
  os?: string;
  /** timestamps are in 10^-tsresol seconds; default 9 (nanoseconds) */
  tsresol?: number;
}

export interface PcapngInterfaceStats {
  startSec?: number;
  startNsec?: number;
  endSec: number;
  endNsec: number;
  /** packets received by the interface's filter */
  received?: number;
  /** packets dropped by the capture (ring full) */
  osDropped?: number;
  dropped?: number;
}

export type BinarySink = (chunk: Uint8Array) => void;

function optLen(valueLen: number): number {
  return 4 + ((valueLen + 3) & ~3);
}

/**
 * Splits `sec` s + `nsec` ns into the high and low 32 bits of a 64-bit count of nanoseconds
 * without BigInt (the total passes 2^53, so plain multiplication would round).
 */
export function nanosecondsHighLow(sec: number, nsec: number): [number, number] {
  const secHi = Math.floor(sec / 65536);
  const secLo = sec % 65536;
  const x = secHi * 1e9; // < 2^46: exact; x · 2^16 is the high part of sec · 1e9
  const xHi = Math.floor(x / 65536); // x · 2^16 = xHi · 2^32 + (x mod 2^16) · 2^16
  const low = (x % 65536) * 65536 + secLo * 1e9 + nsec; // < 2^47: exact
  const carry = Math.floor(low / 4294967296);
  return [xHi + carry, low - carry * 4294967296];
}

export class PcapngWriter {
  private buf: Buffer;
  /** over `buf`, renewed with it */
  private view: DataView;
  private pos = 0;
  private interfaces = 0;
  private readonly sink: BinarySink;
  private readonly reuse: boolean;
  /** bytes written to the sink so far */
  bytesWritten = 0;
  packets = 0;

  /**
   * @param sink receives each flushed chunk
   * @param opts.reuseBuffer the sink is done with a chunk when it returns (a synchronous file
   *   write): the same memory is used again. Otherwise each chunk is a fresh buffer.
   */
  constructor(sink: BinarySink, section: PcapngSectionInfo = {}, opts: { bufferSize?: number; reuseBuffer?: boolean } = {}) {
    this.sink = sink;
    this.reuse = opts.reuseBuffer ?? false;
    this.buf = Buffer.allocUnsafe(opts.bufferSize ?? 1 << 20);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
    this.sectionHeader(section);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) {
      this.buf = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
      this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
    }
  }

  private putOption(code: number, value: Buffer): void {
    const b = this.buf;
    b.writeUInt16LE(code, this.pos);
    b.writeUInt16LE(value.length, this.pos + 2);
    value.copy(b, this.pos + 4);
    const padded = (value.length + 3) & ~3;
    for (let i = this.pos + 4 + value.length; i < this.pos + 4 + padded; i++) b[i] = 0;
    this.pos += 4 + padded;
  }

  private putEnd(): void {
    this.buf.writeUInt32LE(OPT_ENDOFOPT, this.pos);
    this.pos += 4;
  }

  /** Writes a block: header, `body` bytes written by `fill`, options, trailer. */
  private block(type: number, bodyLen: number, options: [number, Buffer][], fill: (b: Buffer, at: number) => void): void {
    const optsLen = options.length === 0 ? 0 : options.reduce((n, [, v]) => n + optLen(v.length), 0) + 4;
    const total = 12 + bodyLen + optsLen;
    this.ensure(total);
    const start = this.pos;
    this.buf.writeUInt32LE(type, start);
    this.buf.writeUInt32LE(total, start + 4);
    fill(this.buf, start + 8);
    this.pos = start + 8 + bodyLen;
    for (const [code, v] of options) this.putOption(code, v);
    if (options.length > 0) this.putEnd();
    this.buf.writeUInt32LE(total, this.pos);
    this.pos += 4;
  }

  private sectionHeader(s: PcapngSectionInfo): void {
    const options: [number, Buffer][] = [];
    if (s.comment !== undefined) options.push([OPT_COMMENT, Buffer.from(s.comment)]);
    if (s.hardware !== undefined) options.push([SHB_HARDWARE, Buffer.from(s.hardware)]);
    if (s.os !== undefined) options.push([SHB_OS, Buffer.from(s.os)]);
    if (s.application !== undefined) options.push([SHB_USERAPPL, Buffer.from(s.application)]);
    this.block(SHB, 16, options, (b, at) => {
      b.writeUInt32LE(BYTE_ORDER_MAGIC, at);
      b.writeUInt16LE(1, at + 4); // major
      b.writeUInt16LE(0, at + 6); // minor
      b.writeInt32LE(-1, at + 8); // section length unknown (64-bit -1)
      b.writeInt32LE(-1, at + 12);
    });
  }

  /** Adds an interface; returns its id for writePacket. */
  addInterface(i: PcapngInterface): number {
    const options: [number, Buffer][] = [];
    if (i.name !== undefined) options.push([IF_NAME, Buffer.from(i.name)]);
    if (i.description !== undefined) options.push([IF_DESCRIPTION, Buffer.from(i.description)]);
    options.push([IF_TSRESOL, Buffer.from([i.tsresol ?? 9])]);
    // if_filter: first byte 0 = a libpcap filter string
    if (i.filter !== undefined && i.filter !== '') options.push([IF_FILTER, Buffer.concat([Buffer.from([0]), Buffer.from(i.filter)])]);
    if (i.os !== undefined) options.push([IF_OS, Buffer.from(i.os)]);
    this.block(IDB, 8, options, (b, at) => {
      b.writeUInt16LE(i.linkType, at);
      b.writeUInt16LE(0, at + 2);
      b.writeUInt32LE(i.snaplen, at + 4);
    });
    return this.interfaces++;
  }

  get interfaceCount(): number {
    return this.interfaces;
  }

  /**
   * An Enhanced Packet Block. The packet is `src[offset, offset + caplen)`; `origLen` is its
   * length on the wire; `flags` are epb_flags (0: none); `comment` an opt_comment (UTF-8 bytes
   * may be given as bytes, to encode a comment repeated on many packets once).
   */
  writePacket(ifId: number, sec: number, nsec: number, src: Uint8Array, offset: number, caplen: number, origLen: number, flags = 0, comment?: string | Uint8Array): void {
    const padded = (caplen + 3) & ~3;
    const commentBuf = comment === undefined || comment.length === 0 ? undefined : typeof comment === 'string' ? Buffer.from(comment) : comment;
    const optsLen = (flags !== 0 ? 8 : 0) + (commentBuf !== undefined ? optLen(commentBuf.length) : 0);
    const total = 32 + padded + (optsLen > 0 ? optsLen + 4 : 0);
    if (this.pos + total > this.buf.length) this.ensure(total);
    const b = this.buf;
    const v = this.view;
    let p = this.pos;
    // the 64-bit nanosecond timestamp, as nanosecondsHighLow() computes it, without an array
    const secHi = Math.floor(sec / 65536);
    const x = secHi * 1e9;
    const low = (x % 65536) * 65536 + (sec % 65536) * 1e9 + nsec;
    const carry = Math.floor(low / 4294967296);
    v.setUint32(p, EPB, true);
    v.setUint32(p + 4, total, true);
    v.setUint32(p + 8, ifId, true);
    v.setUint32(p + 12, Math.floor(x / 65536) + carry, true);
    v.setUint32(p + 16, low - carry * 4294967296, true);
    v.setUint32(p + 20, caplen, true);
    v.setUint32(p + 24, origLen, true);
    p += 28;
    // a plain Uint8Array view: Buffer#subarray and Buffer#copy cost more than the copy of an MTU packet
    b.set(new Uint8Array(src.buffer, src.byteOffset + offset, caplen), p);
    for (let i = p + caplen; i < p + padded; i++) b[i] = 0;
    p += padded;
    if (optsLen > 0) {
      if (commentBuf !== undefined) {
        const n = commentBuf.length;
        v.setUint16(p, OPT_COMMENT, true);
        v.setUint16(p + 2, n, true);
        b.set(commentBuf, p + 4);
        const end = p + 4 + ((n + 3) & ~3);
        for (let i = p + 4 + n; i < end; i++) b[i] = 0;
        p = end;
      }
      if (flags !== 0) {
        v.setUint16(p, EPB_FLAGS, true);
        v.setUint16(p + 2, 4, true);
        v.setUint32(p + 4, flags >>> 0, true);
        p += 8;
      }
      v.setUint32(p, OPT_ENDOFOPT, true);
      p += 4;
    }
    v.setUint32(p, total, true);
    this.pos = p + 4;
    this.packets++;
  }

  /** An Interface Statistics Block: counters for one interface, usually at the end. */
  writeInterfaceStats(ifId: number, s: PcapngInterfaceStats): void {
    const u64 = (v: number): Buffer => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(v));
      return b;
    };
    const ts = (sec: number, nsec: number): Buffer => {
      const [hi, lo] = nanosecondsHighLow(sec, nsec);
      const b = Buffer.alloc(8);
      b.writeUInt32LE(hi, 0);
      b.writeUInt32LE(lo, 4);
      return b;
    };
    const options: [number, Buffer][] = [];
    if (s.startSec !== undefined) options.push([ISB_STARTTIME, ts(s.startSec, s.startNsec ?? 0)]);
    options.push([ISB_ENDTIME, ts(s.endSec, s.endNsec)]);
    if (s.received !== undefined) options.push([ISB_IFRECV, u64(s.received)]);
    if (s.dropped !== undefined) options.push([ISB_IFDROP, u64(s.dropped)]);
    if (s.osDropped !== undefined) options.push([ISB_OSDROP, u64(s.osDropped)]);
    const [hi, lo] = nanosecondsHighLow(s.endSec, s.endNsec);
    this.block(ISB, 12, options, (b, at) => {
      b.writeUInt32LE(ifId, at);
      b.writeUInt32LE(hi, at + 4);
      b.writeUInt32LE(lo, at + 8);
    });
  }

  /** Bytes laid out and not yet handed to the sink. */
  get pending(): number {
    return this.pos;
  }

  /** Hands what is laid out to the sink. */
  flush(): void {
    if (this.pos === 0) return;
    const chunk = this.reuse ? this.buf.subarray(0, this.pos) : Buffer.from(this.buf.subarray(0, this.pos));
    this.bytesWritten += this.pos;
    this.pos = 0;
    this.sink(chunk);
  }
}
