// SPDX-License-Identifier: Apache-2.0
/**
 * Puts the chunks of each call back together. The kernel writes one call's chunks in order
 * from one program run, so they reach the ring in order, possibly interleaved with other
 * threads' records and split across drains. A call is complete when its captured bytes are
 * all there; when the ring was full some chunks are missing: the call is then given out when
 * its thread's next call shows up, when it is older than `maxAgeMs`, or at flush, with the
 * missing bytes counted (and left as zeros).
 */
import { FLAG_FAULT, FLAG_TRUNCATED, type TlsChunk } from './decode.js';

export interface TlsCall {
  /** The first chunk's header (the call's identity and metadata). */
  head: TlsChunk;
  /** The captured plaintext, in order. */
  data: Uint8Array;
  /** Records the call came in. */
  chunks: number;
  /** Captured bytes that never arrived (ring full). */
  lostBytes: number;
  /** max_bytes cut the data: data.length < head.totalLen. */
  truncated: boolean;
  /** Some bytes could not be read from the process (left as zeros). */
  fault: boolean;
}

interface Pending {
  head: TlsChunk;
  parts: TlsChunk[];
  received: number;
  flags: number;
  arrivedMs: number;
}

export interface AssemblerOptions {
  maxAgeMs?: number;
  /** Calls waiting for chunks at most; the oldest is given out incomplete beyond it. */
  maxPending?: number;
  now?: () => number;
}

export class CallAssembler {
  private readonly pending = new Map<string, Pending>();
  /** The key of the call each thread has pending. */
  private readonly byTid = new Map<number, string>();
  private readonly maxAgeMs: number;
  private readonly maxPending: number;
  private readonly now: () => number;
  incomplete = 0;

  constructor(opts: AssemblerOptions = {}) {
    this.maxAgeMs = opts.maxAgeMs ?? 2000;
    this.maxPending = opts.maxPending ?? 1024;
    this.now = opts.now ?? (() => performance.now());
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  push(c: TlsChunk, out: TlsCall[]): void {
    const key = `${c.tid}:${c.startNs}`;
    const open = this.byTid.get(c.tid);
    if (open !== undefined && open !== key) this.finish(open, out); // the thread moved on: that call is over
    let p = this.pending.get(key);
    if (p === undefined) {
      if (c.offset === 0 && c.data.length === c.capturedLen) {
        out.push(callOf(c, c.data, 1, 0, c.flags)); // the common case: one record
        return;
      }
      if (this.pending.size >= this.maxPending) {
        const oldest = this.pending.keys().next().value;
        if (oldest !== undefined) this.finish(oldest, out);
      }
      p = { head: c, parts: [], received: 0, flags: 0, arrivedMs: this.now() };
      this.pending.set(key, p);
      this.byTid.set(c.tid, key);
    }
    p.parts.push(c);
    p.received += c.data.length;
    p.flags |= c.flags;
    if (p.received >= p.head.capturedLen) this.finish(key, out);
  }

  /** Gives out calls that have waited longer than maxAgeMs for missing chunks. */
  expire(out: TlsCall[]): void {
    const limit = this.now() - this.maxAgeMs;
    for (const [key, p] of this.pending) {
      if (p.arrivedMs <= limit) this.finish(key, out);
    }
  }

  /** Everything still pending, incomplete. */
  flush(out: TlsCall[]): void {
    for (const key of [...this.pending.keys()]) this.finish(key, out);
  }

  private finish(key: string, out: TlsCall[]): void {
    const p = this.pending.get(key);
    if (p === undefined) return;
    this.pending.delete(key);
    if (this.byTid.get(p.head.tid) === key) this.byTid.delete(p.head.tid);
    const data = new Uint8Array(p.head.capturedLen);
    let got = 0;
    for (const part of p.parts) {
      if (part.offset + part.data.length > data.length) continue;
      data.set(part.data, part.offset);
      got += part.data.length;
    }
    const lost = Math.max(0, p.head.capturedLen - got);
    if (lost > 0) this.incomplete++;
    out.push(callOf(p.head, data, p.parts.length, lost, p.flags));
  }
}

function callOf(head: TlsChunk, data: Uint8Array, chunks: number, lostBytes: number, flags: number): TlsCall {
  return { head, data, chunks, lostBytes, truncated: (flags & FLAG_TRUNCATED) !== 0, fault: (flags & FLAG_FAULT) !== 0 };
}
