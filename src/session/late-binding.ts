// SPDX-License-Identifier: Apache-2.0
/**
 * Late binding: events whose mount namespace the container index does not know yet wait here
 * until it does (a container younger than its runtime's event), then go on to be attributed
 * and scoped; past the bounds they leave as unattributed. Kernel-free: time is given.
 *
 * Bounds: an event waits at most `holdMs` (default 2000 ms) and at most `maxHeld` events
 * (default 10000) wait at once; beyond that the oldest leave first.
 */

export interface HoldBounds {
  holdMs: number;
  maxHeld: number;
}

export const DEFAULT_HOLD: HoldBounds = { holdMs: 2000, maxHeld: 10_000 };

interface Held<E> {
  e: E;
  key: number;
  at: number;
}

export class LateBinding<E> {
  /** in arrival order; a Map keeps it and removes in O(1) */
  private readonly queue = new Map<number, Held<E>>();
  private readonly byKey = new Map<number, Set<number>>();
  private seq = 0;
  readonly bounds: HoldBounds;

  constructor(bounds: Partial<HoldBounds> = {}) {
    this.bounds = { ...DEFAULT_HOLD, ...bounds };
  }

  get size(): number {
    return this.queue.size;
  }

  /** Holds `e` under `key` (its mount namespace); returns the events pushed out by the count bound. */
  hold(e: E, key: number, now: number): E[] {
    const id = this.seq++;
    this.queue.set(id, { e, key, at: now });
    let ids = this.byKey.get(key);
    if (ids === undefined) this.byKey.set(key, (ids = new Set()));
    ids.add(id);
    const out: E[] = [];
    while (this.queue.size > this.bounds.maxHeld) {
      const first = this.queue.keys().next().value as number;
      out.push(this.take(first));
    }
    return out;
  }

  /** Whether events are waiting for `key`. */
  waiting(key: number): boolean {
    return this.byKey.has(key);
  }

  /** The keys events are waiting for. */
  keys(): number[] {
    return [...this.byKey.keys()];
  }

  /** The index learned `key`: its events, in arrival order. */
  release(key: number): E[] {
    const ids = this.byKey.get(key);
    if (ids === undefined) return [];
    return [...ids].map((id) => this.take(id));
  }

  /** Events that have waited `holdMs` or longer at `now`, in arrival order. */
  expire(now: number): E[] {
    const out: E[] = [];
    for (const [id, h] of this.queue) {
      if (now - h.at < this.bounds.holdMs) break; // arrival order is time order
      out.push(this.take(id));
    }
    return out;
  }

  /** Everything still waiting (the session stops), in arrival order. */
  drain(): E[] {
    return [...this.queue.keys()].map((id) => this.take(id));
  }

  private take(id: number): E {
    const h = this.queue.get(id) as Held<E>;
    this.queue.delete(id);
    const ids = this.byKey.get(h.key);
    ids?.delete(id);
    if (ids !== undefined && ids.size === 0) this.byKey.delete(h.key);
    return h.e;
  }
}
