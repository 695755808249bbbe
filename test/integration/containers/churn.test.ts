// SPDX-License-Identifier: Apache-2.0
// 50 containers started and stopped while the index follows every runtime: each is seen coming
// and going, and afterwards the index and this process's file descriptors are as before.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import { ContainerIndex, type ContainerIndexWarning, type ContainerInfo } from '../../../src/containers/index.js';
import { ensureRuntimes, runtimeSkipReason, TEST_RUNTIMES, TestContainers, type TestContainer, type TestRuntime } from '../../helpers/runtimes.js';

const runtimes = TEST_RUNTIMES.filter((r) => runtimeSkipReason(r) === false);
const TOTAL = 50;
const PARALLEL = 5;
/**
 * Marks this run's containers. The helper's `tlscope.test.owner` label is a pid, and pids are
 * recycled (pid_max is 32768 on the test VMs): containers leaked by a test process that was
 * killed (SIGTERM skips after() hooks) carry a pid a later test process may be given.
 */
const RUN_LABEL = 'tlscope.test.churn-run';
const RUN_ID = `${process.pid}-${randomUUID()}`;

let containers: TestContainers | undefined;
let index: ContainerIndex | undefined;
after(async () => {
  await index?.close();
  await containers?.cleanup();
});

function openFds(): string[] {
  return readdirSync('/proc/self/fd');
}

/** What each open fd is (`socket:[…]`, a path), for a failure message. */
function fdTargets(): string[] {
  return openFds().map((fd) => {
    try {
      return `${fd}→${readlinkSync(`/proc/self/fd/${fd}`)}`;
    } catch {
      return `${fd}→?`; // the fd readdir used, closed already
    }
  });
}

function fdDiff(before: readonly string[], after: readonly string[]): string {
  return `closed: [${before.filter((f) => !after.includes(f)).join(', ')}], opened: [${after.filter((f) => !before.includes(f)).join(', ')}]`;
}

/**
 * The fds the index holds at rest. Other test processes may start and stop containers on the
 * same daemons meanwhile, and the index asks about each (one short-lived connection per
 * request), so a single reading can include connections in flight. Those only ever add to
 * what is held at rest: the smallest count over a window is the resting one.
 */
async function restingFds(ms: number): Promise<string[]> {
  const end = Date.now() + ms;
  let least = fdTargets();
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 20));
    const now = fdTargets();
    if (now.length < least.length) least = now;
  }
  return least;
}

/**
 * Waits until `read()` equals `want` (or the time is up); returns the last value. The deadlines
 * are long: the machine is small and shared, and they must only trip on a real leak or miss.
 */
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
  const restingBefore = await restingFds(1000);
  const fdsBefore = restingBefore.length;
  const sizeBefore = index.size; // counted in the same tick as the subscription below

  const added = new Set<number>();
  const removed = new Set<number>();
  const addedTwice: number[] = [];
  // Other test processes may run containers on the same daemons meanwhile: keep count of
  // theirs, so the size check is exact about ours.
  const ours = (c: ContainerInfo) => c.labels[RUN_LABEL] === RUN_ID;
  const foreignWeight = (c: ContainerInfo) => (ours(c) ? 0 : 1);
  let foreign = 0;
  index.subscribe((e) => {
    if (e.type === 'added') foreign += foreignWeight(e.container);
    else if (e.type === 'removed') foreign -= foreignWeight(e.container);
    else foreign += foreignWeight(e.container) - foreignWeight(e.previous);
    if (!ours(e.container)) return;
    // Seen starting: added, or — when its runtime could not be asked at that moment — added
    // from its cgroup path (no labels yet) and then updated with what the runtime says.
    if (e.type === 'added' && added.has(e.container.pid)) addedTwice.push(e.container.pid);
    if (e.type === 'removed') removed.add(e.container.pid);
    else added.add(e.container.pid);
  });

  const plan: TestRuntime[] = Array.from({ length: TOTAL }, (_, i) => runtimes[i % runtimes.length] as TestRuntime);
  const started = Date.now();
  const running: TestContainer[] = await inParallel(plan, PARALLEL, (runtime) => containers!.run(runtime, { labels: { [RUN_LABEL]: RUN_ID } }));
  const startMs = Date.now() - started;
  const pids = running.map((c) => c.pid);
  await settle(() => pids.every((p) => added.has(p)), true, 30_000);
  assert.deepEqual(pids.filter((p) => !added.has(p)), [], 'every container was seen starting');
  assert.deepEqual(addedTwice, [], 'no container was added twice');
  const mine = index.all().filter(ours);
  const describe = (c: ContainerInfo) => `${c.runtime}/${c.runtimeNamespace ?? ''}/${c.id.slice(0, 12)} pid ${c.pid} mntns ${c.mntns} (${c.source})`;
  assert.equal(mine.length, TOTAL, `entries of this run: ${mine.map(describe).join('; ')}`);
  for (const c of running) {
    const entries = mine.filter((e) => e.runtime === c.runtime && (c.runtime === 'containerd' ? e.id === c.name && e.runtimeNamespace === c.namespace : e.id === c.id));
    assert.equal(entries.length, 1, `${c.runtime} container ${c.name}: ${entries.length} entries (${entries.map(describe).join('; ')})`);
    assert.equal(entries[0]?.pid, c.pid);
  }

  const stopping = Date.now();
  await containers.remove(...running);
  const stopMs = Date.now() - stopping;
  await settle(() => pids.every((p) => removed.has(p)), true, 30_000);
  assert.deepEqual(pids.filter((p) => !removed.has(p)), [], 'every container was seen stopping');
  assert.equal(await settle(() => index!.size - foreign, sizeBefore, 30_000), sizeBefore, 'index back to its size');
  assert.deepEqual(index.all().filter(ours), []);
  const fdsAfter = await settle(() => openFds().length, fdsBefore, 30_000);
  assert.equal(fdsAfter, fdsBefore, `open fds before ${fdsBefore}, after ${fdsAfter}; ${fdDiff(restingBefore, fdTargets())}`);
  assert.deepEqual(warnings, []);
  t.diagnostic(`${TOTAL} containers (${runtimes.join(', ')}): started in ${startMs} ms, removed in ${stopMs} ms; index ${sizeBefore} → ${sizeBefore + TOTAL} → ${index.size - foreign} (+${foreign} not ours); fds ${fdsBefore} → ${fdsAfter}`);

  // And close() gives back every socket the index held (event streams, gRPC channel).
  await index.close();
  const fdsClosed = await settle(() => openFds().length, fdsWithoutIndex, 30_000);
  assert.equal(fdsClosed, fdsWithoutIndex, `open fds without the index ${fdsWithoutIndex}, after close ${fdsClosed}`);
});
