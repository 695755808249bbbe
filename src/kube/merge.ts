// SPDX-License-Identifier: Apache-2.0
/**
 * Merges the nodes' streams into one, time-ordered within a small bound: an event waits up to
 * `windowMs` for earlier events of slower nodes, then goes out in timestamp order. An event
 * that arrives later than the window (a node far behind) goes out at once, out of order, and
 * is counted. Pure (the clock is passed in).
 */
export interface Timed {
  timestamp: number;
}

export class TimeMerger<E extends Timed> {
  private pending: E[] = [];
  private watermark = -Infinity;
  /** events that arrived after later ones had gone out */
  late = 0;

  constructor(private readonly windowMs = 250) {}

  push(batch: readonly E[]): void {
    for (const e of batch) {
      if (e.timestamp < this.watermark) this.late++;
      this.pending.push(e);
    }
  }

  /** What may go out now, in order. */
  take(now: number): E[] {
    if (this.pending.length === 0) return [];
    const cut = now - this.windowMs;
    this.pending.sort((a, b) => a.timestamp - b.timestamp);
    let i = 0;
    while (i < this.pending.length && (this.pending[i] as E).timestamp <= cut) i++;
    // late arrivals (older than what already went out) go out now too
    while (i < this.pending.length && (this.pending[i] as E).timestamp < this.watermark) i++;
    const out = this.pending.slice(0, i);
    this.pending = this.pending.slice(i);
    if (out.length > 0) this.watermark = Math.max(this.watermark, (out.at(-1) as E).timestamp);
    return out;
  }

  drain(): E[] {
    const out = this.pending.sort((a, b) => a.timestamp - b.timestamp);
    this.pending = [];
    return out;
  }

  get size(): number {
    return this.pending.length;
  }
}
