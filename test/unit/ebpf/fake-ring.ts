// SPDX-License-Identifier: Apache-2.0
/**
 * A synthetic BPF ring buffer in memory for the RingWalker tests, laid out as the kernel lays
 * it out: a consumer page, then a producer page followed by the data area. `mappedTwice` writes
 * every byte to a second copy of the data area, as the kernel's double mapping makes it appear
 * (so a record that wraps reads as one piece); without it the data area is there once, as
 * tlscope maps it, and a record that wraps is really split in two.
 */
import { RingWalker } from '../../../src/ebpf/ringbuf.js';

export const PAGE = 4096;
export const BUSY = 0x80000000;
export const DISCARD = 0x40000000;

export class FakeRing {
  readonly consumer = new ArrayBuffer(PAGE);
  readonly data: ArrayBuffer;
  private readonly bytes: Uint8Array;
  private readonly dv: DataView;
  private readonly copies: number[];
  prod = 0;

  constructor(readonly size: number, opts: { mappedTwice: boolean }) {
    this.copies = opts.mappedTwice ? [PAGE, PAGE + size] : [PAGE];
    this.data = new ArrayBuffer(PAGE + this.copies.length * size);
    this.bytes = new Uint8Array(this.data);
    this.dv = new DataView(this.data);
  }

  private put(pos: number, src: Uint8Array): void {
    for (let i = 0; i < src.length; i++) {
      const off = (pos + i) % this.size;
      for (const base of this.copies) this.bytes[base + off] = src[i] as number;
    }
  }

  free(): number {
    const cons = Number(new BigInt64Array(this.consumer)[0]);
    return this.size - (this.prod - cons);
  }

  /** Writes one record; returns its position, or undefined when the ring is full. */
  write(payload: Uint8Array, flags = 0): number | undefined {
    const total = (payload.length + 8 + 7) & ~7;
    if (total > this.free()) return undefined;
    const hdr = new Uint8Array(8);
    new DataView(hdr.buffer).setUint32(0, (payload.length | flags) >>> 0, true);
    const at = this.prod;
    this.put(at, hdr);
    this.put(at + 8, payload);
    this.prod += total;
    this.dv.setBigUint64(0, BigInt(this.prod), true);
    return at;
  }

  commit(at: number): void {
    const off = at % this.size;
    for (const base of this.copies) this.dv.setUint32(base + off, this.dv.getUint32(base + off, true) & ~BUSY, true);
  }
}

export const decodeBytes = (dv: DataView, off: number, len: number): Uint8Array => new Uint8Array(dv.buffer, dv.byteOffset + off, len).slice();
export const payload = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill & 0xff);

export function walker(r: FakeRing): RingWalker<Uint8Array> {
  return new RingWalker(r.consumer, r.data, PAGE, r.size, decodeBytes);
}
