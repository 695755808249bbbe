// SPDX-License-Identifier: Apache-2.0
/**
 * Reassembles the ClientHello of many TCP flows from segments that arrive in any order, with
 * duplicates (loopback shows every packet twice) and overlapping retransmissions, and reports
 * each flow's hello exactly once.
 *
 * Where the stream starts. A segment that arrives first is not necessarily the first one sent,
 * so the byte the ClientHello starts at is fixed in one of two ways:
 * - given: `startFlow(flow, initialSeq)` with the sequence number of the stream's first byte
 *   (the SYN's sequence number + 1) when the caller saw the handshake. Exact; any segmentation
 *   works, including a first segment shorter than a record header.
 * - inferred (otherwise): a segment is a start candidate when its payload begins like a
 *   ClientHello record (`isTlsHandshakeStart`, 6 bytes) and is a valid prefix of one (the
 *   parser does not call it invalid: record header, handshake header, client version… as far
 *   as the segment goes). The first candidate anchors the stream; a later-arriving candidate
 *   with an earlier sequence number re-anchors it (the old bytes are kept and placed again).
 *   Segments seen before any candidate are held (bounded) and placed once one arrives; bytes
 *   before the anchor are dropped, so a hello after a plaintext prelude (STARTTLS) is found
 *   too. Limits: the first segment must carry at least 6 bytes; a segment inside the hello that
 *   passes as a candidate (it would need to begin with a record header followed by
 *   "01 00 xx xx 03 0y") and arrives first can make the flow fail as invalid — never yield a
 *   wrong hello. Callers that see SYNs should use `startFlow` and be exact.
 *
 * Bounds. At most `maxFlowBytes` of stream per flow (a hello needing more is dropped as
 * `oversized`), at most `maxHeldSegments` out-of-order pieces, at most `maxFlows` flows (least
 * recently used evicted first), and flows idle for `idleTimeoutMs` by the caller's clock are
 * forgotten. Every drop is counted by reason in `stats`. Payloads are copied: the caller may
 * reuse its buffers (ring-buffer memory) as soon as `push` returns.
 *
 * A flow that produced its hello, or was dropped, stays as a small tombstone (until evicted,
 * expired or `forget`) so late duplicates are recognised instead of reported again.
 */
import { Buffer } from 'node:buffer';
import { isTlsHandshakeStart, parseClientHello, type ClientHello, type ClientHelloParseResult } from './tls.js';

export interface ClientHelloAssemblerOptions {
  /** Milliseconds, any monotonic origin; read once per call. */
  now: () => number;
  /** Stream bytes kept per flow; a ClientHello needing more is dropped (default 16 KiB). */
  maxFlowBytes?: number;
  /** Flows tracked at once; the least recently used is evicted beyond it (default 4096). */
  maxFlows?: number;
  /** A flow with no segment for this long is forgotten (default 30 s). */
  idleTimeoutMs?: number;
  /** Out-of-order segments held per flow (default 128). */
  maxHeldSegments?: number;
}

export type AssemblerDropReason =
  /** The bytes are not a well-formed ClientHello (`detail` says where). */
  | 'invalid'
  /** The ClientHello needs more than `maxFlowBytes`. */
  | 'oversized'
  /** Too many or too large out-of-order segments held while waiting for a gap to fill. */
  | 'buffer-limit'
  /** A retransmission carried different bytes than the first copy: no way to know which is real. */
  | 'inconsistent-retransmission'
  /** `maxFlowBytes` of segments arrived and none began a ClientHello record. */
  | 'no-handshake-start';

export type AssemblerResult =
  /** `bytes`: a copy of the stream bytes that carried the hello (its records), for callers that compare copies. */
  | { status: 'hello'; hello: ClientHello; bytes: Uint8Array }
  /** Kept; the hello is not complete yet. */
  | { status: 'pending' }
  /** This segment made the flow fail; counted in stats. Later segments get 'finished'. */
  | { status: 'dropped'; reason: AssemblerDropReason; detail: string }
  /** The flow already produced its hello or was dropped; the segment was ignored. */
  | { status: 'finished' };

export interface AssemblerStats {
  segments: number;
  hellos: number;
  /** Segments whose bytes were all already known (loopback doubles, retransmissions). */
  duplicateSegments: number;
  /** Segments that lay wholly before the stream's start. */
  segmentsBeforeStart: number;
  /** Segments for flows already finished. */
  segmentsAfterFinish: number;
  /**
   * Segments that began like a ClientHello record but were malformed at once, so did not
   * anchor a flow (without `startFlow`, a malformed hello is held until a limit drops it).
   */
  rejectedStartCandidates: number;
  evictedFlows: number;
  expiredFlows: number;
  dropped: Record<AssemblerDropReason, number>;
}

const DEFAULTS = {
  maxFlowBytes: 16 * 1024,
  maxFlows: 4096,
  idleTimeoutMs: 30_000,
  maxHeldSegments: 128,
} as const;

const INITIAL_BUFFER = 2048;

interface HeldSegment {
  seq: number;
  bytes: Uint8Array;
}

interface Flow {
  /** Sequence number of stream byte 0, once known. */
  start: number | undefined;
  /** The caller gave the start (startFlow); otherwise it was inferred and may move earlier. */
  startGiven: boolean;
  /** Contiguous stream bytes from `start`. */
  prefix: Uint8Array;
  prefixLength: number;
  /** Segments not yet contiguous with the prefix (or all of them, before `start` is known). */
  held: HeldSegment[];
  heldBytes: number;
  finished: boolean;
  lastSeen: number;
  /** Why the last segment that began like a ClientHello record was not one (for the drop detail). */
  rejectedStart: string | undefined;
  /**
   * The prefix length the last parse asked for: parsing a shorter prefix again could only say
   * need-more, so it waits (keeps many small segments from costing a parse each).
   */
  needed: number;
}

/** Thrown inside `push` to end a flow; turned into a `dropped` result there. */
class FlowDrop {
  constructor(
    readonly reason: AssemblerDropReason,
    readonly detail: string,
  ) {}
}

const PENDING: AssemblerResult = Object.freeze({ status: 'pending' });
const FINISHED: AssemblerResult = Object.freeze({ status: 'finished' });
const EMPTY = new Uint8Array(0);

export class ClientHelloAssembler<K = string> {
  private readonly flows = new Map<K, Flow>();
  /** Prefix buffers of finished flows, reused: most flows need one 2 KiB buffer for a moment. */
  private readonly pool = new BufferPool();
  private readonly limits: Required<Omit<ClientHelloAssemblerOptions, 'now'>>;
  private readonly now: () => number;
  readonly stats: AssemblerStats = {
    segments: 0,
    hellos: 0,
    duplicateSegments: 0,
    segmentsBeforeStart: 0,
    segmentsAfterFinish: 0,
    rejectedStartCandidates: 0,
    evictedFlows: 0,
    expiredFlows: 0,
    dropped: { invalid: 0, oversized: 0, 'buffer-limit': 0, 'inconsistent-retransmission': 0, 'no-handshake-start': 0 },
  };

  constructor(options: ClientHelloAssemblerOptions) {
    this.now = options.now;
    this.limits = {
      maxFlowBytes: options.maxFlowBytes ?? DEFAULTS.maxFlowBytes,
      maxFlows: Math.max(1, options.maxFlows ?? DEFAULTS.maxFlows),
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
      maxHeldSegments: options.maxHeldSegments ?? DEFAULTS.maxHeldSegments,
    };
  }

  get flowCount(): number {
    return this.flows.size;
  }

  /**
   * Declares that `flow`'s stream starts at `initialSeq` (SYN seq + 1), so its ClientHello is
   * the first byte of the stream. Best before its data; if segments came first, the start they
   * suggested gives way to this one. Returns the hello if the segments already held complete it.
   */
  startFlow(flow: K, initialSeq: number): AssemblerResult {
    const state = this.touch(flow, this.now());
    if (state.finished) return FINISHED;
    if (state.startGiven) return PENDING;
    this.anchor(state, initialSeq >>> 0);
    state.startGiven = true;
    return this.guarded(state, () => this.settle(state, false));
  }

  /** Feeds one TCP segment: `seq` is the sequence number of its first payload byte. */
  push(flow: K, seq: number, payload: Uint8Array): AssemblerResult {
    this.stats.segments++;
    const state = this.touch(flow, this.now());
    if (state.finished) {
      this.stats.segmentsAfterFinish++;
      return FINISHED;
    }
    if (payload.length === 0) return PENDING;
    const segmentSeq = seq >>> 0;
    return this.guarded(state, () => {
      const startParse = state.startGiven ? undefined : this.earlierStartCandidate(state, segmentSeq, payload);
      if (startParse !== undefined) this.anchor(state, segmentSeq);
      if (state.start === undefined) {
        this.hold(state, segmentSeq, payload, 'no-handshake-start');
        return PENDING;
      }
      const grew = this.place(state, segmentSeq, payload);
      // When the prefix is exactly this segment, it was parsed already as a start candidate.
      const known = startParse !== undefined && state.held.length === 0 && state.prefixLength === payload.length ? startParse : undefined;
      return this.settle(state, grew, known);
    });
  }

  /**
   * A segment that begins a ClientHello, before the current inferred start (if any): returns
   * its parse. One that begins like a record but does not parse as the start of a hello is not
   * an anchor (it may lie inside the hello); it is counted, and held like any other segment.
   */
  private earlierStartCandidate(state: Flow, seq: number, payload: Uint8Array): ClientHelloParseResult | undefined {
    if (state.start !== undefined) {
      const distance = (seq - state.start) | 0;
      if (distance >= 0 || distance <= -this.limits.maxFlowBytes) return undefined;
    }
    if (!isTlsHandshakeStart(payload)) return undefined;
    const parsed = parseClientHello(payload);
    if (parsed.status !== 'invalid') return parsed;
    this.stats.rejectedStartCandidates++;
    state.rejectedStart = parsed.reason;
    return undefined;
  }

  /** (Re)anchors the stream at `seq`; bytes already assembled go back to the held segments. */
  private anchor(state: Flow, seq: number): void {
    if (state.start !== undefined && state.prefixLength > 0) {
      // Bypasses the held budget on purpose: the prefix is itself bounded by maxFlowBytes.
      state.held.push({ seq: state.start, bytes: state.prefix.slice(0, state.prefixLength) });
      state.heldBytes += state.prefixLength;
      state.prefixLength = 0;
    }
    state.start = seq;
    state.needed = 0;
  }

  /** Runs a step that may end the flow, turning a FlowDrop into the `dropped` result. */
  private guarded(state: Flow, step: () => AssemblerResult): AssemblerResult {
    try {
      return step();
    } catch (drop) {
      if (!(drop instanceof FlowDrop)) throw drop;
      this.finish(state);
      this.stats.dropped[drop.reason]++;
      return { status: 'dropped', reason: drop.reason, detail: drop.detail };
    }
  }

  /** The connection ended: forget the flow now rather than at its idle timeout. */
  forget(flow: K): void {
    this.flows.delete(flow);
  }

  /**
   * At most the last-seen time of the map's front flow: while `now` is not a timeout past it,
   * no flow is idle and the map is not walked. (A walk from the front steps over the holes
   * that touch's re-insertions leave in V8's map: thousands per call with thousands of flows,
   * which was a fifth of trace sni's CPU; bench/sni/pipeline.)
   */
  private frontSeen = Infinity;

  /** Forgets flows idle past the timeout; `push` does this too. Returns how many went. */
  expireIdle(now = this.now()): number {
    if (now - this.frontSeen < this.limits.idleTimeoutMs) return 0;
    let expired = 0;
    this.frontSeen = Infinity;
    // The map is in last-seen order (touch re-inserts), so the idle ones are at the front.
    for (const [key, state] of this.flows) {
      if (now - state.lastSeen < this.limits.idleTimeoutMs) {
        this.frontSeen = state.lastSeen;
        break;
      }
      this.flows.delete(key);
      expired++;
    }
    this.stats.expiredFlows += expired;
    return expired;
  }

  /** Finds or creates the flow and moves it to the most-recently-used end. */
  private touch(flow: K, now: number): Flow {
    this.expireIdle(now);
    let state = this.flows.get(flow);
    if (state !== undefined) {
      this.flows.delete(flow);
    } else {
      this.evictIfFull();
      state = { start: undefined, startGiven: false, prefix: EMPTY, prefixLength: 0, held: [], heldBytes: 0, finished: false, lastSeen: now, rejectedStart: undefined, needed: 0 };
    }
    state.lastSeen = now;
    this.flows.set(flow, state);
    if (this.flows.size === 1 || now < this.frontSeen) this.frontSeen = Math.min(this.frontSeen, now);
    return state;
  }

  /** Makes room for one more flow: the least recently used go, 1/16 of the limit at a time (see evictOldest). */
  private evictIfFull(): void {
    const { maxFlows } = this.limits;
    if (this.flows.size < maxFlows) return;
    this.stats.evictedFlows += evictOldest(this.flows, this.flows.size - maxFlows + 1 + (maxFlows >> 4));
  }

  /**
   * Puts a segment's bytes where they belong relative to the start: into the prefix when they
   * touch it, held otherwise. Returns whether the prefix grew.
   */
  private place(state: Flow, seq: number, payload: Uint8Array): boolean {
    const offset = (seq - state.start!) | 0; // signed distance, so wrap-around just works
    const end = offset + payload.length;
    if (end <= 0) {
      this.stats.segmentsBeforeStart++;
      return false;
    }
    const from = Math.max(0, offset);
    // Bytes past the limit cannot belong to a hello we would accept; the parse says 'oversized'.
    const to = Math.min(end, this.limits.maxFlowBytes);
    if (from >= to) return false;
    if (from > state.prefixLength) {
      this.hold(state, (state.start! + from) >>> 0, payload.subarray(from - offset, to - offset), 'buffer-limit');
      return false;
    }
    return this.extendPrefix(state, payload.subarray(from - offset, to - offset), from);
  }

  /** Appends bytes starting at stream offset `from` (≤ prefixLength), checking any overlap. */
  private extendPrefix(state: Flow, bytes: Uint8Array, from: number): boolean {
    const to = from + bytes.length;
    const overlapEnd = Math.min(to, state.prefixLength);
    if (overlapEnd > from) checkSameBytes(state.prefix.subarray(from, overlapEnd), bytes.subarray(0, overlapEnd - from), from);
    if (to <= state.prefixLength) {
      this.stats.duplicateSegments++;
      return false;
    }
    this.reserve(state, to);
    state.prefix.set(bytes.subarray(state.prefixLength - from), state.prefixLength);
    state.prefixLength = to;
    return true;
  }

  private reserve(state: Flow, length: number): void {
    if (length <= state.prefix.length) return;
    let capacity = Math.max(INITIAL_BUFFER, state.prefix.length);
    while (capacity < length) capacity *= 2;
    const grown = this.pool.take(Math.min(capacity, this.limits.maxFlowBytes));
    grown.set(state.prefix.subarray(0, state.prefixLength));
    this.pool.give(state.prefix);
    state.prefix = grown;
  }

  /** Keeps a copy of an out-of-order segment, within the per-flow bounds. */
  private hold(state: Flow, seq: number, bytes: Uint8Array, overflow: AssemblerDropReason): void {
    for (const held of state.held) {
      if (held.seq === seq && held.bytes.length === bytes.length) {
        if (Buffer.compare(held.bytes, bytes) !== 0) {
          throw new FlowDrop('inconsistent-retransmission', `two different segments at sequence number ${seq}`);
        }
        this.stats.duplicateSegments++;
        return;
      }
    }
    if (state.held.length >= this.limits.maxHeldSegments || state.heldBytes + bytes.length > this.limits.maxFlowBytes) {
      const what = state.start === undefined ? 'without a segment that starts a ClientHello record' : 'held out of order';
      const detail = `${state.held.length + 1} segments (${state.heldBytes + bytes.length} bytes) ${what}; limits ${this.limits.maxHeldSegments} segments, ${this.limits.maxFlowBytes} bytes`;
      throw new FlowDrop(overflow, state.rejectedStart === undefined ? detail : `${detail}; a segment that began like one was not: ${state.rejectedStart}`);
    }
    state.held.push({ seq, bytes: bytes.slice() });
    state.heldBytes += bytes.length;
  }

  /** Moves held segments that now touch the prefix into it, then parses if anything grew. */
  private settle(state: Flow, grew: boolean, knownParse?: ClientHelloParseResult): AssemblerResult {
    const absorbed = this.absorbHeld(state);
    if (!grew && !absorbed) return PENDING;
    if (knownParse === undefined && state.prefixLength < state.needed) return PENDING;
    return this.judge(state, knownParse ?? parseClientHello(state.prefix.subarray(0, state.prefixLength)));
  }

  private absorbHeld(state: Flow): boolean {
    let grew = false;
    let progressed = true;
    while (progressed && state.held.length > 0) {
      progressed = false;
      for (let i = 0; i < state.held.length; i++) {
        const held = state.held[i]!;
        const offset = (held.seq - state.start!) | 0;
        if (offset > state.prefixLength) continue;
        state.held.splice(i--, 1);
        state.heldBytes -= held.bytes.length;
        if (this.place(state, held.seq, held.bytes)) {
          grew = true;
          progressed = true;
        }
      }
    }
    return grew;
  }

  /** Turns the parse of the prefix into the flow's outcome. */
  private judge(state: Flow, result: ClientHelloParseResult): AssemblerResult {
    switch (result.status) {
      case 'ok': {
        const bytes = state.prefix.slice(0, Math.min(result.hello.streamLength, state.prefixLength));
        this.finish(state);
        this.stats.hellos++;
        return { status: 'hello', hello: result.hello, bytes };
      }
      case 'invalid':
        throw new FlowDrop('invalid', result.reason);
      case 'need-more':
        state.needed = result.needed;
        if (result.needed > this.limits.maxFlowBytes) {
          throw new FlowDrop('oversized', `the ClientHello needs at least ${result.needed} bytes, the limit is ${this.limits.maxFlowBytes}`);
        }
        return PENDING;
    }
  }

  /** Keeps only the tombstone: the buffers go now, not at eviction. */
  private finish(state: Flow): void {
    state.finished = true;
    this.pool.give(state.prefix);
    state.prefix = EMPTY;
    state.prefixLength = 0;
    state.held = [];
    state.heldBytes = 0;
  }
}

/** Overlapping copies must agree; `Buffer.compare` is a memcmp, the loop only runs to report. */
function checkSameBytes(known: Uint8Array, arrived: Uint8Array, streamOffset: number): void {
  if (Buffer.compare(known, arrived) === 0) return;
  let i = 0;
  while (known[i] === arrived[i]) i++;
  throw new FlowDrop('inconsistent-retransmission', `stream byte ${streamOffset + i} arrived as 0x${hex(known[i]!)} and as 0x${hex(arrived[i]!)}`);
}

/** A few spare buffers per size; a buffer given back must not be referenced any more. */
class BufferPool {
  private static readonly PER_SIZE = 16;
  private readonly spares = new Map<number, Uint8Array[]>();

  take(size: number): Uint8Array {
    return this.spares.get(size)?.pop() ?? new Uint8Array(size);
  }

  give(buffer: Uint8Array): void {
    if (buffer.length === 0) return;
    let list = this.spares.get(buffer.length);
    if (list === undefined) this.spares.set(buffer.length, (list = []));
    if (list.length < BufferPool.PER_SIZE) list.push(buffer);
  }
}

function hex(value: number): string {
  return value.toString(16).padStart(2, '0');
}

/**
 * Deletes the `n` oldest entries of an insertion-ordered map (an LRU that re-inserts on use);
 * returns how many went. Callers evict in chunks rather than one entry per insertion: each new
 * iterator walks over the holes deleted entries leave at the front of V8's map, so evicting one
 * at a time costs a walk of up to the map's size per insertion.
 */
export function evictOldest<K, V>(m: Map<K, V>, n: number): number {
  let gone = 0;
  if (n <= 0) return 0;
  for (const k of m.keys()) {
    m.delete(k);
    if (++gone >= n) break;
  }
  return gone;
}
