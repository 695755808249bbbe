// SPDX-License-Identifier: Apache-2.0
/**
 * A shared mapping of a kernel ring into this process: the one type behind both rings tlscope
 * reads in TypeScript, a BPF ring buffer map (a read-write consumer page, then the producer
 * page and the data area mapped twice, read-only) and a packet socket's TPACKET_V3 ring (one
 * read-write mapping). Their walks differ (ringbuf.ts, tpacket.ts); mapping, viewing and
 * unmapping are this.
 */
import { MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE } from '../constants.js';
import { c, errno, viewMemory, type Ptr } from './native.js';
import { kernelError } from './errors.js';

export class MappedRegion {
  /** the mapped bytes, without a copy; valid until close() */
  readonly memory: ArrayBuffer;
  private ptr: Ptr;

  private constructor(ptr: Ptr, readonly length: number) {
    this.ptr = ptr;
    this.memory = viewMemory(ptr, length);
  }

  /** mmap(MAP_SHARED) of `length` bytes of `fd` at `offset`; `what` names it in the error. */
  static map(fd: number, length: number, offset: number, writable: boolean, what: string): MappedRegion {
    const ptr = c.mmap(null, length, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, offset) as Ptr;
    if (ptr === MAP_FAILED) throw kernelError(`mmap ${what}`, errno());
    return new MappedRegion(ptr, length);
  }

  get mapped(): boolean {
    return this.ptr !== 0n;
  }

  /** Unmaps (idempotent); `memory` must not be touched after this. */
  close(): void {
    if (this.ptr === 0n) return;
    c.munmap(this.ptr, this.length);
    this.ptr = 0n;
  }
}
