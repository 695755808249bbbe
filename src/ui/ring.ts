// SPDX-License-Identifier: Apache-2.0
/**
 * The last N entries the UI keeps, with their details: bounded by count and by bytes, the
 * oldest evicted first (and counted). Sequence numbers only grow, so a page can ask for what
 * came after the last entry it has.
 */
import type { Entry, EntryDetail } from './protocol.js';

export interface RingItem {
  entry: Entry;
  detail: EntryDetail;
  /** what it costs to keep (roughly: captured bytes and strings) */
  bytes: number;
}

export interface RingOptions {
  /** entries kept at most */
  capacity: number;
  /** bytes kept at most (the details' captured data dominate) */
  maxBytes: number;
}

export class EntryRing {
  private readonly items: (RingItem | undefined)[];
  private head = 0; // index of the oldest
  private count = 0;
  private bytes = 0;
  private nextSeq = 1;
  /** entries pushed out to stay within the bounds */
  evicted = 0;

  constructor(private readonly opts: RingOptions) {
    if (!Number.isInteger(opts.capacity) || opts.capacity < 1) throw new RangeError(`ring capacity must be a positive integer, got ${opts.capacity}`);
    this.items = new Array<RingItem | undefined>(opts.capacity);
  }

  get capacity(): number {
    return this.opts.capacity;
  }

  get size(): number {
    return this.count;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  /** Gives the entry its sequence number and keeps it; returns the number. */
  push(entry: Omit<Entry, 'seq'>, detail: EntryDetail, bytes: number): Entry {
    const e: Entry = { ...entry, seq: this.nextSeq++ };
    while (this.count > 0 && (this.count === this.opts.capacity || this.bytes + bytes > this.opts.maxBytes)) this.evictOldest();
    const at = (this.head + this.count) % this.opts.capacity;
    this.items[at] = { entry: e, detail, bytes };
    this.count++;
    this.bytes += bytes;
    return e;
  }

  private evictOldest(): void {
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.opts.capacity;
    this.count--;
    this.bytes -= item?.bytes ?? 0;
    this.evicted++;
  }

  /** The item with this sequence number, while it is kept. */
  get(seq: number): RingItem | undefined {
    const first = this.items[this.head];
    if (first === undefined) return undefined;
    const i = seq - first.entry.seq; // sequence numbers in the ring are consecutive
    if (!Number.isInteger(i) || i < 0 || i >= this.count) return undefined;
    return this.items[(this.head + i) % this.opts.capacity];
  }

  /** Oldest first; only those after `afterSeq` when given. */
  *values(afterSeq = 0): IterableIterator<RingItem> {
    const first = this.items[this.head];
    if (first === undefined) return;
    const skip = Math.max(0, Math.min(this.count, afterSeq - first.entry.seq + 1));
    for (let i = skip; i < this.count; i++) {
      const item = this.items[(this.head + i) % this.opts.capacity];
      if (item !== undefined) yield item;
    }
  }
}
