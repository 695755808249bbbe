// SPDX-License-Identifier: Apache-2.0
/**
 * BPF ring buffer reader. The ring's pages are mmap'd and walked in TypeScript (the way
 * cilium/ebpf does it): no native callback per event. It drains on a short timer and on
 * epoll readiness, at most `maxPerDrain` records at a time so the event loop stays
 * responsive, and hands out decoded batches through an async iterator.
 *
 * Layout (kernel/bpf/ringbuf.c): page 0 holds consumer_pos (we write it), page 1 holds
 * producer_pos, then the data area. The kernel lets a reader map the data area twice back to
 * back so that a record that wraps is contiguous; tlscope maps it once (resident memory: a
 * 32 MiB ring mapped twice counted 64 MiB) and copies the two halves of the rare record that
 * wraps into a scratch buffer. Each record: u32 len (bit 31 busy, bit 30 discarded), u32 page
 * offset, then the sample, padded to 8 bytes; a header never wraps (both are 8-aligned).
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

/**
 * Records as a view over one copy of the ring's bytes: record i is
 * `bytes[offsets[i] .. offsets[i] + lengths[i])`, in ring order; read its fields on demand
 * through `view` (DataView over `bytes`) — no object and no decoder call per record. The copy
 * belongs to the batch: it stays valid after the ring has moved on.
 */
export class RingBatch {
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array, readonly offsets: Int32Array, readonly lengths: Int32Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get length(): number {
    return this.offsets.length;
  }

  /** Record i's bytes, without a copy. */
  record(i: number): Uint8Array {
    const o = this.offsets[i] as number;
    return this.bytes.subarray(o, o + (this.lengths[i] as number));
  }
}

const EMPTY_BATCH = new RingBatch(new Uint8Array(0), new Int32Array(0), new Int32Array(0));

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

  /** a record whose sample wraps past the end of the data area, put together here */
  private scratch = new Uint8Array(0);
  private scratchView = new DataView(new ArrayBuffer(0));
  private readonly bytes: Uint8Array;

  /**
   * @param consumerPage the consumer page (consumer_pos at offset 0)
   * @param producerAndData the producer page followed by the data area (mapped once; a second
   *   copy behind it is not read)
   */
  constructor(consumerPage: ArrayBuffer, producerAndData: ArrayBuffer, page: number, size: number, readonly decode: Decoder<T>) {
    if ((size & (size - 1)) !== 0 || size < page || size > 2 ** 30) throw new TlscopeError('ERR_RINGBUF', `ring size ${size} is not a power of two between a page and 1 GiB`);
    if (producerAndData.byteLength < page + size) throw new TlscopeError('ERR_RINGBUF', `ring mapping of ${producerAndData.byteLength} bytes is smaller than a page + ${size}`);
    this.hdr = new Int32Array(producerAndData);
    this.view = new DataView(producerAndData);
    this.bytes = new Uint8Array(producerAndData);
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

  private scratchOff = new Int32Array(1024);
  private scratchLen = new Int32Array(1024);

  /**
   * Up to `max` committed records as one RingBatch: one pass over the record headers (offsets
   * and lengths; discarded records skipped, a busy one ends the walk so order is kept), one copy
   * of the bytes they span, then the consumer position moves past them (each record exactly
   * once). The decoder is not used. Returns an empty batch when nothing is committed.
   */
  drainBatch(max: number): RingBatch {
    const prod = Number(Atomics.load(this.producer, 0));
    const { hdr, mask, dataBase } = this;
    const start = this.consPos;
    let cons = start;
    let n = 0;
    let bytes = 0;
    let offs = this.scratchOff;
    let lens = this.scratchLen;
    const startAt = dataBase + (start & mask);
    while (cons < prod && n < max) {
      const at = dataBase + (cons & mask);
      const word = (PLAIN_HEADER_LOADS ? (hdr[at >>> 2] as number) : Atomics.load(hdr, at >>> 2)) >>> 0;
      if ((word & BUSY) !== 0) break;
      const len = word & ~(BUSY | DISCARD);
      if ((word & DISCARD) === 0) {
        if (n === offs.length) {
          const o2 = new Int32Array(n * 2);
          o2.set(offs);
          const l2 = new Int32Array(n * 2);
          l2.set(lens);
          this.scratchOff = offs = o2;
          this.scratchLen = lens = l2;
        }
        offs[n] = cons - start + HDR;
        lens[n] = len;
        n++;
        bytes += len;
      }
      cons += (len + HDR + 7) & ~7;
    }
    if (cons === start) {
      this.stats.drains++;
      return EMPTY_BATCH;
    }
    const span = cons - start;
    const first = Math.min(span, mask + 1 - (start & mask));
    const copy = new Uint8Array(span);
    copy.set(this.bytes.subarray(startAt, startAt + first));
    if (first < span) copy.set(this.bytes.subarray(dataBase, dataBase + span - first), first); // wrapped
    this.consPos = cons;
    Atomics.store(this.consumer, 0, BigInt(cons));
    this.stats.records += n;
    this.stats.bytes += bytes;
    this.stats.drains++;
    return new RingBatch(copy, offs.slice(0, n), lens.slice(0, n));
  }

  /** Decodes a sample that runs past the end of the data area from a copy of its two halves. */
  private decodeWrapped(at: number, len: number): T {
    if (this.scratch.length < len) {
      this.scratch = new Uint8Array(Math.max(len, 2 * this.scratch.length, 4096));
      this.scratchView = new DataView(this.scratch.buffer);
    }
    const end = this.dataBase + this.mask + 1;
    const head = end - at;
    this.scratch.set(this.bytes.subarray(at, end));
    this.scratch.set(this.bytes.subarray(this.dataBase, this.dataBase + len - head), head);
    return this.decode(this.scratchView, 0, len);
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
            out.push(off + HDR + len <= mask + 1 ? decode(view, at + HDR, len) : this.decodeWrapped(at + HDR, len));
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
      this.data = MappedRegion.map(map.fd, page + size, page, false, `data pages of ${map.name}`);
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

  /** Up to `max` committed records as one batch over a copy of their bytes (empty once closed). */
  drainBatch(max: number): RingBatch {
    return this.data.mapped ? this.walker.drainBatch(max) : EMPTY_BATCH;
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

interface Waiter<B> {
  resolve: (r: IteratorResult<B>) => void;
}

/**
 * The timer, the epoll wake-ups, the queue and the async iteration of a ring reader; what one
 * drain yields (decoded records, or a RingBatch) is the subclass's.
 */
abstract class RingReaderBase<B extends { readonly length: number }, T> implements AsyncIterable<B> {
  readonly map: BpfMap;
  protected readonly walker: PolledRingBuffer<T>;
  protected readonly maxPerDrain: number;
  private readonly maxQueued: number;
  private readonly lostCounter: BpfMap | undefined;
  private readonly queue: B[] = [];
  private waiter: Waiter<B> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** undefined where epoll could not be set up: the timer alone drains then */
  private epoll: EpollWaiter | undefined;
  protected state: 'open' | 'closing' | 'closed' = 'open';
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

  /** Drains now, synchronously, ignoring the queue limit; returns what was read. */
  abstract drainNow(max?: number): B;

  private pump(): void {
    if (this.state === 'closed') return;
    if (this.queue.length >= this.maxQueued) return; // slow consumer: let the kernel count drops
    const out = this.drainNow();
    if (out.length > 0) this.deliver(out);
    this.armEpoll();
  }

  private deliver(batch: B): void {
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

  async next(): Promise<IteratorResult<B>> {
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

  [Symbol.asyncIterator](): AsyncIterator<B> {
    return {
      next: () => this.next(),
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
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
        const out = this.drainNow();
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

/** Decoded records, batch by batch: the decoder runs once per record as the ring is walked. */
export class RingBufReader<T> extends RingReaderBase<T[], T> {
  drainNow(max = this.maxPerDrain): T[] {
    const out: T[] = [];
    if (this.state !== 'closed') this.walker.drain(out, max);
    return out;
  }

  /** Every event, one at a time (flattens the batches). */
  async *events(): AsyncGenerator<T> {
    for await (const batch of this) yield* batch;
  }
}

const NO_DECODE: Decoder<never> = () => {
  throw new TlscopeError('ERR_RINGBUF', 'a batch reader decodes nothing');
};

/**
 * Batches, not objects: each drain is one RingBatch, a copy of the committed bytes with the
 * records' offsets and lengths; the consumer reads fields on demand. Same timer, wake-ups,
 * queue limit, order, exactly-once and loss counting as RingBufReader.
 */
export class RingBatchReader extends RingReaderBase<RingBatch, never> {
  constructor(map: BpfMap, opts: Omit<RingReaderOptions<never>, 'decode'>) {
    super(map, { ...opts, decode: NO_DECODE });
  }

  drainNow(max = this.maxPerDrain): RingBatch {
    return this.state === 'closed' ? EMPTY_BATCH : this.walker.drainBatch(max);
  }
}
