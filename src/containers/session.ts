// SPDX-License-Identifier: Apache-2.0
/**
 * Keeps one runtime client followed for the lifetime of the index: subscribe to events, list
 * (so nothing between the two is missed), then apply events as they come; when the connection
 * breaks, report it once and reconnect with backoff, re-listing to catch up. A connection that
 * had been followed for a while and ends is first reconnected once, quietly (podman 4.3's service
 * has been seen ending every event stream at once while it kept running, around a rotation of its
 * event log); only if that fails is it reported. A runtime whose socket does not exist is
 * absent: it is looked for again now and then, silently.
 */
import { TlscopeError } from '../errors.js';
import { RuntimeError } from './errors.js';
import type { RuntimeClient, RuntimeContainer, RuntimeEvent, RuntimeName } from './types.js';

export type SessionState = 'starting' | 'absent' | 'healthy' | 'broken';

/** A runtime that exists but fails; sent once per breakage, never per event. */
export interface RuntimeWarning {
  readonly runtime: RuntimeName;
  readonly socketPath: string;
  readonly error: TlscopeError;
}

/** What a session needs from the index. */
export interface SessionSink {
  /** The full list after (re)connecting: add what is new, drop what this session owned and is gone. */
  sync(session: RuntimeSession, containers: readonly RuntimeContainer[]): void;
  /** One event; `start` is resolved through `session.client.inspect`. */
  apply(session: RuntimeSession, event: RuntimeEvent): Promise<void>;
  warn(warning: RuntimeWarning): void;
}

export interface SessionTiming {
  /** First retry after a failure; doubles up to `maxBackoffMs`. */
  readonly minBackoffMs: number;
  readonly maxBackoffMs: number;
  /** How often an absent runtime's socket is looked for. */
  readonly absentRecheckMs: number;
}

export const DEFAULT_SESSION_TIMING: SessionTiming = { minBackoffMs: 250, maxBackoffMs: 5000, absentRecheckMs: 2000 };

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function asTlscopeError(client: RuntimeClient, e: unknown): TlscopeError {
  if (e instanceof TlscopeError) return e;
  return new RuntimeError(client.name, client.socketPath, e instanceof Error ? e.message : String(e), e);
}

export class RuntimeSession {
  state: SessionState = 'starting';
  private readonly firstAttempt: Promise<void>;
  private resolveFirstAttempt: () => void = () => {};
  private warned = false;
  private loop: Promise<void> | undefined;

  constructor(
    readonly client: RuntimeClient,
    private readonly sink: SessionSink,
    private readonly signal: AbortSignal,
    private readonly timing: SessionTiming = DEFAULT_SESSION_TIMING,
  ) {
    this.firstAttempt = new Promise((resolve) => {
      this.resolveFirstAttempt = resolve;
    });
  }

  /** Starts following; resolves once the runtime was listed, found absent, or found broken. */
  start(): Promise<void> {
    this.loop ??= this.run();
    return this.firstAttempt;
  }

  /** Resolves when the follow loop has ended (after the signal aborted). */
  async stopped(): Promise<void> {
    await this.loop;
  }

  private async run(): Promise<void> {
    let backoff = this.timing.minBackoffMs;
    /** When the current connection was listed and started being followed. */
    let followedSince: number | undefined;
    while (!this.signal.aborted) {
      if (!this.client.isPresent()) {
        this.state = 'absent';
        this.resolveFirstAttempt();
        await sleep(this.timing.absentRecheckMs, this.signal);
        continue;
      }
      const events = this.client.watch(this.signal)[Symbol.asyncIterator]();
      let retryQuietly = false;
      try {
        const containers = await this.client.list(this.signal);
        if (this.signal.aborted) break;
        this.state = 'healthy';
        this.warned = false;
        backoff = this.timing.minBackoffMs;
        followedSince = Date.now();
        this.sink.sync(this, containers);
        this.resolveFirstAttempt();
        for (;;) {
          const next = await events.next();
          if (next.done) break;
          await this.sink.apply(this, next.value);
        }
      } catch (e) {
        if (this.signal.aborted) break;
        // A connection followed for a while that ends is reconnected (and re-listed) once before
        // it counts as broken: a live daemon may end its streams (podman's service did, around a
        // rotation of its event log). A runtime that is really gone fails that reconnection, which
        // is then reported. One that ends streams right after connecting is reported at once.
        retryQuietly = this.state === 'healthy' && followedSince !== undefined && Date.now() - followedSince >= this.timing.maxBackoffMs;
        this.state = 'broken';
        followedSince = undefined;
        if (!retryQuietly && !this.warned) {
          this.warned = true;
          this.sink.warn({ runtime: this.client.name, socketPath: this.client.socketPath, error: asTlscopeError(this.client, e) });
        }
        this.resolveFirstAttempt();
      } finally {
        await events.return?.();
      }
      if (retryQuietly) {
        await sleep(this.timing.minBackoffMs, this.signal);
        continue;
      }
      await sleep(backoff, this.signal);
      backoff = Math.min(backoff * 2, this.timing.maxBackoffMs);
    }
    this.resolveFirstAttempt();
  }
}
