// SPDX-License-Identifier: Apache-2.0
// A runtime session's reconnection rules, with a scripted client and sink.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RuntimeError } from '../../../src/containers/errors.js';
import { AsyncQueue } from '../../../src/containers/queue.js';
import { RuntimeSession, type RuntimeWarning, type SessionSink } from '../../../src/containers/session.js';
import type { RuntimeClient, RuntimeContainer, RuntimeEvent } from '../../../src/containers/types.js';
import { waitUntil } from '../../helpers/wait.js';

const timing = { minBackoffMs: 5, maxBackoffMs: 40, absentRecheckMs: 10 };

class StreamingRuntime implements RuntimeClient {
  readonly name = 'podman' as const;
  readonly socketPath = '/run/podman/podman.sock';
  failing: string | undefined;
  listCalls = 0;
  readonly streams: AsyncQueue<RuntimeEvent>[] = [];
  isPresent(): boolean {
    return true;
  }
  async list(): Promise<RuntimeContainer[]> {
    this.listCalls++;
    if (this.failing !== undefined) throw new RuntimeError(this.name, this.socketPath, this.failing);
    return [];
  }
  async inspect(): Promise<RuntimeContainer | undefined> {
    return undefined;
  }
  watch(signal: AbortSignal): AsyncIterable<RuntimeEvent> {
    const q = new AsyncQueue<RuntimeEvent>();
    signal.addEventListener('abort', () => q.end(), { once: true });
    this.streams.push(q);
    return q;
  }
  /** The daemon closes the current event stream while it keeps running (podman's service was seen doing so). */
  endStream(): void {
    this.streams.at(-1)?.fail(new RuntimeError(this.name, this.socketPath, 'event stream ended (daemon restarted?)'));
  }
  close(): void {}
}

function sink(warnings: RuntimeWarning[]): SessionSink & { syncs: number } {
  const s = {
    syncs: 0,
    sync: () => {
      s.syncs++;
    },
    apply: async () => {},
    warn: (w: RuntimeWarning) => {
      warnings.push(w);
    },
  };
  return s;
}

const until = (what: string, cond: () => boolean, ms = 2000): Promise<void> => waitUntil(what, cond, ms, undefined, 2);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('an event stream that ends after being followed a while is reconnected and re-listed without a warning', async () => {
  const client = new StreamingRuntime();
  const warnings: RuntimeWarning[] = [];
  const s = sink(warnings);
  const controller = new AbortController();
  const session = new RuntimeSession(client, s, controller.signal, timing);
  try {
    await session.start();
    assert.equal(session.state, 'healthy');
    for (let round = 1; round <= 3; round++) {
      await sleep(timing.maxBackoffMs + 10);
      client.endStream();
      await until(`re-listed (${round})`, () => s.syncs === round + 1 && session.state === 'healthy');
    }
    assert.deepEqual(warnings, []);
  } finally {
    controller.abort();
    await session.stopped();
  }
});

test('a stream that ended and cannot be reconnected is reported once', async () => {
  const client = new StreamingRuntime();
  const warnings: RuntimeWarning[] = [];
  const controller = new AbortController();
  const session = new RuntimeSession(client, sink(warnings), controller.signal, timing);
  try {
    await session.start();
    await sleep(timing.maxBackoffMs + 10);
    client.failing = 'connect ECONNREFUSED /run/podman/podman.sock';
    client.endStream();
    await until('reported', () => warnings.length === 1);
    const listed = client.listCalls;
    await until('retried with backoff', () => client.listCalls >= listed + 3);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]?.error.message ?? '', /ECONNREFUSED/);
    assert.equal(session.state, 'broken');
  } finally {
    controller.abort();
    await session.stopped();
  }
});

test('a stream that ends right after connecting is a breakage at once (no silent reconnect loop)', async () => {
  const client = new StreamingRuntime();
  const warnings: RuntimeWarning[] = [];
  const controller = new AbortController();
  const session = new RuntimeSession(client, sink(warnings), controller.signal, timing);
  try {
    await session.start();
    client.endStream(); // within maxBackoffMs of being listed
    await until('reported', () => warnings.length === 1);
    assert.match(warnings[0]?.error.message ?? '', /event stream ended/);
  } finally {
    controller.abort();
    await session.stopped();
  }
});
