// SPDX-License-Identifier: Apache-2.0
/**
 * What the agent owes one client, bounded: events wait here while the client's stream cannot
 * take more (grpc-js's write() says so), up to a number of events and of bytes; past that they
 * are dropped and counted, and the count goes out in every Stats. A slow client therefore costs
 * the agent at most its bounds, never its memory. Control messages (warnings, stats) are few
 * (the session deduplicates warnings, stats come once a second) and always queued.
 */

export interface WritableCall<M> {
  write(message: M): boolean;
  end(): void;
  once(event: 'drain', listener: () => void): unknown;
}

export interface ClientLimits {
  maxEvents: number;
  maxBytes: number;
}

export const DEFAULT_CLIENT_LIMITS: ClientLimits = { maxEvents: 20_000, maxBytes: 16 << 20 };

/** Events per message: large enough to amortise framing, small enough to interleave control. */
const EVENTS_PER_MESSAGE = 512;

interface Queued<M> {
  message: M;
  events: string[] | undefined;
  bytes: number;
}

export class ClientStream<M> {
  private readonly queue: Queued<M>[] = [];
  private queuedEvents = 0;
  private queuedBytes = 0;
  private blocked = false;
  private ending = false;
  private ended = false;
  /** events dropped because the client read too slowly */
  dropped = 0;
  /** events handed to the stream */
  sent = 0;

  constructor(
    private readonly call: WritableCall<M>,
    private readonly wrapEvents: (json: string[]) => M,
    private readonly limits: ClientLimits = DEFAULT_CLIENT_LIMITS,
  ) {}

  get pending(): { events: number; bytes: number } {
    return { events: this.queuedEvents, bytes: this.queuedBytes };
  }

  events(json: readonly string[]): void {
    if (this.ending) return;
    let i = 0;
    while (i < json.length) {
      const last = this.queue.at(-1);
      let target = last?.events !== undefined && last.events.length < EVENTS_PER_MESSAGE ? last : undefined;
      if (target === undefined) {
        const events: string[] = [];
        target = { message: this.wrapEvents(events), events, bytes: 0 };
        this.queue.push(target);
      }
      const into = target.events as string[];
      while (i < json.length && into.length < EVENTS_PER_MESSAGE) {
        const j = json[i] as string;
        if (this.queuedEvents >= this.limits.maxEvents || this.queuedBytes + j.length > this.limits.maxBytes) {
          this.dropped += json.length - i;
          i = json.length;
          break;
        }
        into.push(j);
        target.bytes += j.length;
        this.queuedEvents++;
        this.queuedBytes += j.length;
        i++;
      }
      if (into.length === 0) this.queue.splice(this.queue.indexOf(target), 1);
    }
    this.flush();
  }

  control(message: M): void {
    if (this.ending) return;
    this.queue.push({ message, events: undefined, bytes: 0 });
    this.flush();
  }

  /** Sends what is queued, then ends the stream. */
  end(last?: M): void {
    if (this.ending) return;
    if (last !== undefined) this.queue.push({ message: last, events: undefined, bytes: 0 });
    this.ending = true;
    this.flush();
  }

  /** The client went away: nothing more is sent. */
  abandon(): void {
    this.ending = true;
    this.ended = true;
    this.queue.length = 0;
    this.queuedEvents = 0;
    this.queuedBytes = 0;
  }

  private flush(): void {
    while (!this.blocked && !this.ended && this.queue.length > 0) {
      const q = this.queue.shift() as Queued<M>;
      if (q.events !== undefined) {
        this.queuedEvents -= q.events.length;
        this.queuedBytes -= q.bytes;
        this.sent += q.events.length;
      }
      if (!this.call.write(q.message)) {
        this.blocked = true;
        this.call.once('drain', () => {
          this.blocked = false;
          this.flush();
        });
      }
    }
    if (this.ending && !this.ended && !this.blocked && this.queue.length === 0) {
      this.ended = true;
      this.call.end();
    }
  }
}
