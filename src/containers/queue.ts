// SPDX-License-Identifier: Apache-2.0
/**
 * A push-to-pull bridge: a stream callback pushes, an async iterator pulls. Values pushed before
 * anyone iterates are kept, which is what lets a runtime client subscribe to events first and
 * list containers second without losing what happens in between.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined;
  private done = false;
  private failure: { error: unknown } | undefined;

  /** `onStop` runs once when the queue ends for any reason, including the consumer breaking out. */
  constructor(private readonly onStop: () => void = () => {}) {}

  push(item: T): void {
    if (this.done) return;
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: item, done: false });
    } else {
      this.items.push(item);
    }
  }

  /** Ends the stream normally after the items already queued. */
  end(): void {
    this.finish(undefined);
  }

  /** Ends the stream with an error, thrown to the consumer after the items already queued. */
  fail(error: unknown): void {
    this.finish({ error });
  }

  private finish(failure: { error: unknown } | undefined): void {
    if (this.done) return;
    this.done = true;
    this.failure = failure;
    this.onStop();
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      if (failure === undefined) w.resolve({ value: undefined, done: true });
      else w.reject(failure.error);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const item = this.items.shift();
        if (item !== undefined) return Promise.resolve({ value: item, done: false });
        if (this.done) {
          if (this.failure !== undefined) {
            const { error } = this.failure;
            this.failure = undefined; // report once; later calls just see the end
            return Promise.reject(error);
          }
          return Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve, reject) => {
          this.waiter = { resolve, reject };
        });
      },
      return: () => {
        this.items.length = 0;
        this.finish(undefined);
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
