// SPDX-License-Identifier: Apache-2.0
// The gRPC runtime clients' event streams take their 'abort' listener with them when they end:
// the session watches again on one long-lived signal after every reconnect, so a listener left
// per stream would pile up (MaxListenersExceededWarning, and a leak).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerdClient } from '../../../src/containers/containerd.js';
import { CriClient } from '../../../src/containers/cri.js';

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  try {
    for await (const _ of stream) { /* no daemon: the stream fails or ends */ }
  } catch {
    // UNAVAILABLE: nothing listens on the socket
  }
}

for (const [name, make] of [
  ['containerd', (socketPath: string) => new ContainerdClient({ socketPath })],
  ['cri', (socketPath: string) => new CriClient({ socketPath, pollIntervalMs: 10 })],
] as const) {
  test(`${name}: streams that end (10 reconnects) leave no abort listener on the caller's signal`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tlscope-grpc-watch-'));
    const client = make(join(dir, 'absent.sock'));
    const ac = new AbortController();
    try {
      for (let i = 0; i < 10; i++) await drain(client.watch(ac.signal));
      assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
      // and one that is still open has exactly one, removed when the caller breaks out
      const live = client.watch(ac.signal);
      assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
      await live[Symbol.asyncIterator]().return?.();
      assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    } finally {
      client.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
