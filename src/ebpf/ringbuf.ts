// SPDX-License-Identifier: Apache-2.0
/**
 * BPF ring buffer reader. The ring's pages are mmap'd and walked in TypeScript (the way
 * cilium/ebpf does it): no native callback per event. It drains on a short timer and on
 * epoll readiness, at most `maxPerDrain` records at a time so the event loop stays
 * responsive, and hands out decoded batches through an async iterator.
 *
 * Layout (kernel/bpf/ringbuf.c): page 0 holds consumer_pos (we write it), page 1 holds
 * producer_pos, then the data area is mapped twice back to back so a record that wraps is
 * still contiguous. Each record: u32 len (bit 31 busy, bit 30 discarded), u32 page offset,
 * then the sample, padded to 8 bytes.
 *
 * PolledRingBuffer is the mapped ring read only when asked; RingBufReader adds the timer, the
 * epoll wake-ups (epoll.ts) and the async iteration.
 */
import { TlscopeError } from '../errors.js';
import { BPF_MAP_TYPE_RINGBUF } from '../constants.js';
import { pageSize } from './native.js';
import type { BpfMap } from './map.js';
import { EpollWaiter } from './epoll.js';
import { MappedRegion } from './mmap.js';

const BUSY = 0x80000000;
const DISCARD = 0x40000000;
const HDR = 8;
/** x86-64 keeps loads in order (TSO), so a plain load of the header orders like an acquire,
 * and V8 inlines it where it does not inline Atomics.load (measured: bench/ringbuf). */
const PLAIN_HEADER_LOADS = process.arch === 'x64';
/** next() drains at once only with this much waiting; below it, the timer and epoll deliver
 * (tiny synchronous drains cost a promise and an array per few records). */
const EAGER_DRAIN_BYTES = 64 * 1024;
/** Eager drains chain in microtasks, which starve timers, I/O and signal handlers; after this
 * long without a turn of the event loop the next drain waits for one (setImmediate). */
const EAGER_BUDGET_MS = 15;

/**
 * Turns one record into a value. `view` is only valid during the call: copy any bytes you
 * keep (`Uint8Array.prototype.slice`), never keep a subarray of it.
 */
export type Decoder<T> = (view: DataView, offset: number, length: number) => T;

export interface RingReaderOptions<T> {
  decode: Decoder<T>;
  /** Drain period in ms (default 5). */
  intervalMs?: number;
  /** Records per drain at most (default 65536). */
  maxPerDrain?: number;
  /** Batches held for a slow consumer before draining pauses and the kernel starts dropping (default 256). */
  maxQueuedBatches?: number;
  /** The per-CPU u64 counter the programs bump when bpf_ringbuf_reserve fails (tlscope_lost). */
  lostCounter?: BpfMap;
  signal?: AbortSignal;
}

export interface RingStats {
  records: number;
  bytes: number;
  drains: number;
  decodeErrors: number;
}

/** Pure ring walk over mapped memory; separated so unit tests can run it on a synthetic ring. */
export class RingWalker<T> {
  private readonly hdr: Int32Array;
  private readonly view: DataView;
  private readonly mask: number;
  private readonly dataBase: number;
  private readonly producer: BigInt64Array;
  private readonly consumer: BigInt64Array;
  private consPos: number;
  readonly stats: RingStats = { records: 0, bytes: 0, drains: 0, decodeErrors: 0 };
  lastDecodeError: unknown;

  /**
   * @param consumerPage the consumer page (consumer_pos at offset 0)
   * @param producerAndData the producer page followed by the data area mapped twice
   */
  constructor(consumerPage: ArrayBuffer, producerAndData: ArrayBuffer, page: number, size: number, readonly decode: Decoder<T>) {
    if ((size & (size - 1)) !== 0 || size < page || size > 2 ** 30) throw new TlscopeError('ERR_RINGBUF', `ring size ${size} is not a power of two between a page and 1 GiB`);
    this.hdr = new Int32Array(producerAndData);
    this.view = new DataView(producerAndData);
    this.producer = new BigInt64Array(producerAndData, 0, 1);
    this.consumer = new BigInt64Array(consumerPage, 0, 1);
    this.mask = size - 1;
    this.dataBase = page;
    this.consPos = Number(Atomics.load(this.consumer, 0));
  }

  /** Bytes written by the kernel and not yet consumed. */
  pending(): number {
    return Number(Atomics.load(this.producer, 0)) - this.consPos;
  }

  /** Walks up to `max` committed records into `out`; returns how many records it consumed. */
  drain(out: T[], max: number): number {
    const prod = Number(Atomics.load(this.producer, 0));
    const { hdr, view, decode, mask, dataBase } = this;
    let cons = this.consPos;
    let off = cons % (mask + 1);
    let n = 0;
    let bytes = 0;
    let total = 0;
    for (;;) {
      // One try around the loop, not one per record: a decoder that throws is rare.
      try {
        while (cons < prod && n < max) {
          const at = dataBase + off;
          const word = (PLAIN_HEADER_LOADS ? (hdr[at >>> 2] as number) : Atomics.load(hdr, at >>> 2)) >>> 0;
          if ((word & BUSY) !== 0) break; // reserved but not yet committed: stop here, keep order
          const len = word & ~(BUSY | DISCARD);
          total = (len + HDR + 7) & ~7;
          if ((word & DISCARD) === 0) {
            out.push(decode(view, at + HDR, len));
            n++;
            bytes += len;
          }
          cons += total;
          off = (off + total) & mask;
        }
        break;
      } catch (e) {
        // the record at `cons` did not decode: count it and step over it
        this.stats.decodeErrors++;
        this.lastDecodeError = e;
        cons += total;
        off = (off + total) & mask;
      }
    }
    if (cons !== this.consPos) {
      this.consPos = cons;
      Atomics.store(this.consumer, 0, BigInt(cons));
    }
    this.stats.records += n;
    this.stats.bytes += bytes;
    this.stats.drains++;
    return n;
  }
}

/**
 * A BPF ring buffer map mapped into this process and read synchronously, only when the caller
 * asks (no timer, no epoll): for side information that is needed exactly when something else
 * is read — capture's socket owners, read just before each batch of packets — and the mapping
 * under RingBufReader.
 */
export class PolledRingBuffer<T> {
  private readonly walker: RingWalker<T>;
  private readonly consumer: MappedRegion;
  private readonly data: MappedRegion;

  constructor(readonly map: BpfMap, decode: Decoder<T>) {
    if (map.type !== BPF_MAP_TYPE_RINGBUF) throw new TlscopeError('ERR_RINGBUF', `${map.name} is not a ring buffer map`);
    const page = pageSize();
    const size = map.maxEntries;
    this.consumer = MappedRegion.map(map.fd, page, 0, true, `consumer page of ${map.name}`);
    try {
      this.data = MappedRegion.map(map.fd, page + 2 * size, page, false, `data pages of ${map.name}`);
    } catch (e) {
      this.consumer.close();
      throw e;
    }
    this.walker = new RingWalker(this.consumer.memory, this.data.memory, page, size, decode);
  }

  /** Everything committed so far (at most `max` records). */
  read(max = 65536): T[] {
    const out: T[] = [];
    this.drain(out, max);
    return out;
  }

  /** Walks up to `max` committed records into `out`; returns how many it consumed (0 once closed). */
  drain(out: T[], max: number): number {
    return this.data.mapped ? this.walker.drain(out, max) : 0;
  }

  /** Bytes written by the kernel and not yet consumed. */
  pending(): number {
    return this.data.mapped ? this.walker.pending() : 0;
  }

  get stats(): Readonly<RingStats> {
    return this.walker.stats;
  }

  get lastDecodeError(): unknown {
    return this.walker.lastDecodeError;
  }

  get decodeErrors(): number {
    return this.walker.stats.decodeErrors;
  }

  close(): void {
    this.data.close();
    this.consumer.close();
  }
}

interface Waiter<T> {
  resolve: (r: IteratorResult<T[]>) => void;
}

export class RingBufReader<T> implements AsyncIterable<T[]> {
  readonly map: BpfMap;
  private readonly walker: PolledRingBuffer<T>;
  private readonly maxPerDrain: number;
  private readonly maxQueued: number;
  private readonly lostCounter: BpfMap | undefined;
  private readonly queue: T[][] = [];
  private waiter: Waiter<T> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** undefined where epoll could not be set up: the timer alone drains then */
  private epoll: EpollWaiter | undefined;
  private state: 'open' | 'closing' | 'closed' = 'open';
  /** the epoll set's close, which a second close() waits for */
  private closedDone: Promise<void> = Promise.resolve();
  private readonly onAbort = (): void => void this.close();
  private readonly signal: AbortSignal | undefined;

  constructor(map: BpfMap, opts: RingReaderOptions<T>) {
    this.map = map;
    this.maxPerDrain = opts.maxPerDrain ?? 65536;
    this.maxQueued = opts.maxQueuedBatches ?? 256;
    this.lostCounter = opts.lostCounter;
    this.walker = new PolledRingBuffer(map, opts.decode);

    let epoll: EpollWaiter | undefined;
    try {
      epoll = new EpollWaiter(1);
      epoll.add(map.fd);
    } catch {
      void epoll?.close();
      epoll = undefined;
    }
    this.epoll = epoll;
    this.timer = setInterval(() => this.pump(), opts.intervalMs ?? 5);
    this.armEpoll();
    this.signal = opts.signal;
    if (opts.signal !== undefined) {
      if (opts.signal.aborted) queueMicrotask(this.onAbort);
      else opts.signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  get stats(): Readonly<RingStats> {
    return this.walker.stats;
  }

  get lastDecodeError(): unknown {
    return this.walker.lastDecodeError;
  }

  private finalLost: bigint | undefined;

  /** Events the kernel could not reserve room for (ring full), summed over CPUs; after
   * close(), the count as it was at close. */
  lost(): bigint {
    return this.finalLost ?? this.lostCounter?.sumU64(0) ?? 0n;
  }

  /** Drains now, synchronously, ignoring the queue limit; returns the records read. */
  drainNow(max = this.maxPerDrain): T[] {
    const out: T[] = [];
    if (this.state !== 'closed') this.walker.drain(out, max);
    return out;
  }

  private pump(): void {
    if (this.state === 'closed') return;
    if (this.queue.length >= this.maxQueued) return; // slow consumer: let the kernel count drops
    const out: T[] = [];
    this.walker.drain(out, this.maxPerDrain);
    if (out.length > 0) this.deliver(out);
    this.armEpoll();
  }

  private deliver(batch: T[]): void {
    const w = this.waiter;
    if (w !== undefined) {
      this.waiter = undefined;
      w.resolve({ value: batch, done: false });
    } else {
      this.queue.push(batch);
    }
  }

  private armEpoll(): void {
    if (this.epoll === undefined || this.epoll.waiting || this.state !== 'open' || this.queue.length >= this.maxQueued) return;
    if (this.walker.pending() > 0) return; // data waiting: the timer takes it; polling now would spin
    this.epoll.wait(50, (n) => {
      if (this.state === 'open') {
        if (n > 0) this.pump();
        else this.armEpoll();
      }
    });
  }

  async next(): Promise<IteratorResult<T[]>> {
    const q = this.queue.shift();
    if (q !== undefined) return { value: q, done: false };
    if (this.state !== 'open') return { value: undefined, done: true };
    if (this.walker.pending() >= EAGER_DRAIN_BYTES) {
      if (this.withinEagerBudget()) {
        const now = this.drainNow();
        if (now.length > 0) return { value: now, done: false };
      } else {
        // let timers, I/O and signals run, then go on draining right after them
        setImmediate(() => this.pump());
      }
    }
    return new Promise((resolve) => {
      this.waiter = { resolve };
    });
  }

  /** When the current run of eager drains started; reset by each turn of the event loop. */
  private eagerSince = -1;

  private withinEagerBudget(): boolean {
    const now = performance.now();
    if (this.eagerSince < 0) {
      this.eagerSince = now;
      setImmediate(() => {
        this.eagerSince = -1;
      });
    }
    return now - this.eagerSince < EAGER_BUDGET_MS;
  }

  [Symbol.asyncIterator](): AsyncIterator<T[]> {
    return {
      next: () => this.next(),
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }

  /** Every event, one at a time (flattens the batches). */
  async *events(): AsyncGenerator<T> {
    for await (const batch of this) yield* batch;
  }

  /**
   * Stops reading. With `drain` (default), what the kernel already committed is read and
   * queued first, so iteration ends after the last event instead of losing it.
   */
  async close(opts: { drain?: boolean } = {}): Promise<void> {
    if (this.state !== 'open') return this.closedDone;
    this.state = 'closing';
    if (this.timer !== undefined) clearInterval(this.timer);
    this.signal?.removeEventListener('abort', this.onAbort);
    if (opts.drain !== false) {
      for (;;) {
        const out: T[] = [];
        if (this.walker.drain(out, this.maxPerDrain) === 0 && this.walker.pending() === 0) break;
        if (out.length > 0) this.deliver(out);
        else break;
      }
    }
    this.closedDone = this.epoll?.close() ?? Promise.resolve();
    await this.closedDone;
    this.finalLost = this.lost();
    this.state = 'closed';
    this.epoll = undefined;
    this.walker.close();
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve({ value: undefined, done: true });
  }
}
