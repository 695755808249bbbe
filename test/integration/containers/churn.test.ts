// SPDX-License-Identifier: Apache-2.0
// 50 containers started and stopped while the index follows every runtime: each is seen coming
// and going, and afterwards the index and this process's file descriptors are as before.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { ContainerIndex, type ContainerIndexWarning, type ContainerInfo } from '../../../src/containers/index.js';
import { ensureRuntimes, runtimeSkipReason, TEST_RUNTIMES, TestContainers, type TestContainer, type TestRuntime } from '../../helpers/runtimes.js';

const runtimes = TEST_RUNTIMES.filter((r) => runtimeSkipReason(r) === false);
const TOTAL = 50;
const PARALLEL = 5;

let containers: TestContainers | undefined;
let index: ContainerIndex | undefined;
after(async () => {
  await index?.close();
  await containers?.cleanup();
});

function openFds(): string[] {
  return readdirSync('/proc/self/fd');
}

/** Waits until `read()` stops changing and equals `want` (or the time is up); returns the last value. */
async function settle<T>(read: () => T, want: T, ms: number): Promise<T> {
  const end = Date.now() + ms;
  let v = read();
  while (v !== want && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    v = read();
  }
  return v;
}

async function inParallel<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  }));
  return out;
}

test(`${TOTAL} containers started and stopped leave no fds and no index entries behind`, { skip: runtimes.length === 0 && (runtimeSkipReason('docker') || 'no runtime') }, async (t) => {
  const env = await ensureRuntimes();
  containers = new TestContainers(env);
  const fdsWithoutIndex = openFds().length;
  const warnings: ContainerIndexWarning[] = [];
  index = new ContainerIndex({ onWarning: (w) => warnings.push(w) });
  await index.start();
  // Let the clients' first connections finish closing before counting.
  await new Promise((r) => setTimeout(r, 300));
  const sizeBefore = index.size;
  const fdsBefore = openFds().length;

  const added = new Set<number>();
  const removed = new Set<number>();
  // Other test processes may run containers on the same daemons meanwhile: keep count of
  // theirs, so the size check is exact about ours.
  const ours = (c: ContainerInfo) => c.labels['tlscope.test.owner'] === String(process.pid);
  let foreign = 0;
  index.subscribe((e) => {
    if (!ours(e.container)) foreign += e.type === 'added' ? 1 : e.type === 'removed' ? -1 : 0;
    else if (e.type === 'added') added.add(e.container.pid);
    else if (e.type === 'removed') removed.add(e.container.pid);
  });

  const plan: TestRuntime[] = Array.from({ length: TOTAL }, (_, i) => runtimes[i % runtimes.length] as TestRuntime);
  const started = Date.now();
  const running: TestContainer[] = await inParallel(plan, PARALLEL, (runtime) => containers!.run(runtime));
  const startMs = Date.now() - started;
  const pids = running.map((c) => c.pid);
  await settle(() => pids.every((p) => added.has(p)), true, 5000);
  assert.deepEqual(pids.filter((p) => !added.has(p)), [], 'every container was seen starting');
  assert.equal(index.all().filter(ours).length, TOTAL);

  const stopping = Date.now();
  await containers.remove(...running);
  const stopMs = Date.now() - stopping;
  await settle(() => pids.every((p) => removed.has(p)), true, 5000);
  assert.deepEqual(pids.filter((p) => !removed.has(p)), [], 'every container was seen stopping');
  assert.equal(await settle(() => index!.size - foreign, sizeBefore, 3000), sizeBefore, 'index back to its size');
  assert.deepEqual(index.all().filter(ours), []);
  const fdsAfter = await settle(() => openFds().length, fdsBefore, 5000);
  assert.equal(fdsAfter, fdsBefore, `open fds before ${fdsBefore}, after ${fdsAfter}`);
  assert.deepEqual(warnings, []);
  t.diagnostic(`${TOTAL} containers (${runtimes.join(', ')}): started in ${startMs} ms, removed in ${stopMs} ms; index ${sizeBefore} → ${sizeBefore + TOTAL} → ${index.size - foreign} (+${foreign} not ours); fds ${fdsBefore} → ${fdsAfter}`);

  // And close() gives back every socket the index held (event streams, gRPC channel).
  await index.close();
  const fdsClosed = await settle(() => openFds().length, fdsWithoutIndex, 3000);
  assert.equal(fdsClosed, fdsWithoutIndex, `open fds without the index ${fdsWithoutIndex}, after close ${fdsClosed}`);
});
