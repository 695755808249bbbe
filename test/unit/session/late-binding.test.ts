// SPDX-License-Identifier: Apache-2.0
// Late binding, kernel-free: the hold queue's bounds, and a session over a scripted runtime and
// a fake /proc, fed by a gadget that is only a push function (no BPF: the session's logic alone).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { ContainerIndex } from '../../../src/containers/index.js';
import { AsyncQueue } from '../../../src/containers/queue.js';
import type { ContainerSelector } from '../../../src/containers/selector.js';
import type { RuntimeClient, RuntimeContainer, RuntimeEvent, RuntimeName } from '../../../src/containers/types.js';
import { commonFields, type CommonEvent } from '../../../src/fields/common.js';
import type { GadgetContext, GadgetDefinition } from '../../../src/gadgets/definition.js';
import { DEFAULT_HOLD, LateBinding } from '../../../src/session/late-binding.js';
import { Session, type SessionMessage, type SessionStats } from '../../../src/session/session.js';
import { FakeProc } from '../containers/fake-proc.js';
import { waitUntil } from '../../helpers/wait.js';

test('LateBinding: release by key in arrival order, expiry by time, the count bound pushes the oldest out', () => {
  assert.deepEqual(DEFAULT_HOLD, { holdMs: 2000, maxHeld: 10_000 });
  const lb = new LateBinding<string>({ holdMs: 100, maxHeld: 3 });
  assert.deepEqual(lb.hold('a1', 1, 0), []);
  assert.deepEqual(lb.hold('b1', 2, 10), []);
  assert.deepEqual(lb.hold('a2', 1, 20), []);
  assert.equal(lb.size, 3);
  assert.ok(lb.waiting(1) && lb.waiting(2) && !lb.waiting(3));
  assert.deepEqual(lb.hold('c1', 3, 30), ['a1'], 'a fourth event pushes the oldest out');
  assert.deepEqual(lb.release(1), ['a2']);
  assert.equal(lb.waiting(1), false);
  assert.deepEqual(lb.expire(105), [], 'b1 waited 95 ms');
  assert.deepEqual(lb.expire(110), ['b1']);
  assert.deepEqual(lb.release(9), []);
  assert.deepEqual(lb.drain(), ['c1']);
  assert.equal(lb.size, 0);
  assert.deepEqual(lb.keys(), []);
});

// ---- a session over a scripted runtime ----

const HOST = { mnt: 4026531840, net: 4026531992 };
const ID1 = '1'.repeat(64);
const ID2 = '2'.repeat(64);
const fast = { minBackoffMs: 5, maxBackoffMs: 20, absentRecheckMs: 10 };

class ScriptedRuntime implements RuntimeClient {
  containers = new Map<string, RuntimeContainer>();
  private readonly queues = new Set<AsyncQueue<RuntimeEvent>>();
  constructor(readonly name: RuntimeName, readonly socketPath = `/run/${name}.sock`) {}
  isPresent(): boolean {
    return true;
  }
  async list(): Promise<RuntimeContainer[]> {
    return [...this.containers.values()];
  }
  async inspect(id: string): Promise<RuntimeContainer | undefined> {
    return this.containers.get(id);
  }
  watch(signal: AbortSignal): AsyncIterable<RuntimeEvent> {
    const q: AsyncQueue<RuntimeEvent> = new AsyncQueue<RuntimeEvent>(() => this.queues.delete(q));
    this.queues.add(q);
    signal.addEventListener('abort', () => q.end(), { once: true });
    return q;
  }
  start(c: RuntimeContainer): void {
    this.containers.set(c.id, c);
    for (const q of this.queues) q.push({ type: 'start', id: c.id });
  }
  close(): void {}
}

const proc = new FakeProc();
proc.add({ pid: 1, ...HOST, cgroup: '/init.scope' });
proc.add({ pid: 50, ...HOST, cgroup: '/user.slice' });
proc.add({ pid: 100, mnt: 5001, net: 6001, cgroup: `/docker/${ID1}` });
proc.add({ pid: 200, mnt: 5002, net: 6002, cgroup: `/docker/${ID2}` });
after(() => proc.dispose());

interface Ev extends CommonEvent {
  n: number;
}

function ev(n: number, pid: number, mntns: number): Ev {
  return { n, timestamp: 0, proc: { pid, tid: pid, comm: 'x', mntns } };
}

/** A kernel-free gadget: the test pushes its events. */
function fakeGadget(): { def: GadgetDefinition<Ev>; push: (batch: Ev[]) => void } {
  let ctx: GadgetContext<Ev> | undefined;
  const def: GadgetDefinition<Ev> = {
    name: 'fake', oneLine: '', usage: '', summary: '', about: '', params: [],
    fields: () => [...commonFields<Ev>(), { name: 'n', column: 'N', width: 4, description: 'n', visible: true, get: (e) => e.n }],
    requirements: [],
    processEvents: true,
    open(_params, c) {
      ctx = c;
      return { scope: { kind: 'self', follow: () => ({ start() {}, stop() {} }) }, lost: () => 0, close: async () => {} };
    },
  };
  return { def, push: (b) => (ctx as GadgetContext<Ev>).push(b) };
}

async function run(scope: ContainerSelector, script: (push: (b: Ev[]) => void, docker: ScriptedRuntime, shown: readonly Ev[], index: ContainerIndex) => Promise<void>, holdMs = 150, filter?: string): Promise<{ shown: Ev[]; stats: SessionStats }> {
  const docker = new ScriptedRuntime('docker');
  const index = new ContainerIndex({ clients: [docker], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  const g = fakeGadget();
  const session = await Session.start(g.def, { scope, index, hold: { holdMs }, ...(filter === undefined ? {} : { filter }) });
  const shown: Ev[] = [];
  let stats: SessionStats | undefined;
  const reading = (async () => {
    for await (const m of session as AsyncIterable<SessionMessage<Ev>>) {
      if (m.type === 'events') shown.push(...m.events);
      if (m.type === 'stats' && m.final) stats = m.stats;
    }
  })();
  await script(g.push, docker, shown, index);
  await session.stop();
  await reading;
  await index.close();
  return { shown, stats: stats as SessionStats };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const until = (what: string, cond: () => boolean, ms = 5000): Promise<void> => waitUntil(what, cond, ms, undefined, 5);

test('an event of a container the index learns later is held, then attributed (never the host)', async () => {
  const { shown, stats } = await run({}, async (push, docker, seen) => {
    push([ev(1, 100, 5001), ev(2, 50, HOST.mnt)]);
    await until('the host event', () => seen.length === 1);
    assert.equal(seen[0]?.n, 2, 'the unknown one waits');
    docker.start({ runtime: 'docker', id: ID1, name: 'web', image: 'img', labels: {}, pid: 100 });
    await until('the held event', () => seen.length === 2);
  }, 5000);
  const one = shown.find((e) => e.n === 1);
  const two = shown.find((e) => e.n === 2);
  assert.equal(one?.runtime?.containerName, 'web', 'attributed once the index knew it');
  assert.equal(two?.runtime, undefined, 'the host event is the host');
  assert.equal(stats.shown, 2);
  assert.equal(stats.misses['unattributed'], undefined);
});

test('unfiltered: an event whose namespace stays unknown is shown as container "?" after the bound, and counted', async () => {
  const t0 = Date.now();
  let waited = 0;
  const { shown, stats } = await run({}, async (push, _docker, seen) => {
    push([ev(1, 200, 5002)]);
    await sleep(50);
    assert.equal(seen.length, 0, 'held, not shown at once');
    await until('the held event to leave', () => seen.length > 0);
    waited = Date.now() - t0;
  }, 150);
  assert.ok(waited >= 150, `left after ${waited} ms, the bound is 150`);
  assert.equal(shown.length, 1);
  assert.equal(shown[0]?.runtime?.containerName, '?');
  assert.equal(stats.misses['unattributed'], 1);
  assert.equal(stats.held, 0);
});

test('--host: an unknown namespace is not the host: dropped after the bound and counted; the host event shown', async () => {
  const { shown, stats } = await run({ host: true }, async (push) => {
    push([ev(1, 200, 5002), ev(2, 50, HOST.mnt)]);
    await sleep(400); // past the 150 ms bound (the stop would drain it the same way)
  }, 150);
  assert.deepEqual(shown.map((e) => e.n), [2]);
  assert.equal(stats.misses['unattributed, not in scope'], 1);
  assert.equal(stats.misses['unattributed'], undefined);
});

test('-c NAME: held events of that container are shown once known; another container is out of scope', async () => {
  const { shown, stats } = await run({ containerNames: ['web'] }, async (push, docker, seen, index) => {
    push([ev(1, 100, 5001), ev(2, 200, 5002), ev(3, 50, HOST.mnt)]);
    docker.start({ runtime: 'docker', id: ID2, name: 'db', image: 'img', labels: {}, pid: 200 });
    docker.start({ runtime: 'docker', id: ID1, name: 'web', image: 'img', labels: {}, pid: 100 });
    await until('web\'s event', () => seen.length === 1);
    await until('db known', () => index.byMntns(5002) !== undefined);
  }, 5000);
  assert.deepEqual(shown.map((e) => [e.n, e.runtime?.containerName]), [[1, 'web']]);
  assert.equal(stats.outOfScope, 2, 'db and the host');
  assert.equal(stats.missingContainers.length, 0);
});

test('the stop drains what is held (as unattributed) and --filter counts what it drops', async () => {
  const { shown, stats } = await run({}, async (push) => {
    push([ev(1, 200, 5002), ev(2, 50, HOST.mnt), ev(3, 50, HOST.mnt)]);
  }, 60_000, 'n!=3');
  assert.deepEqual(shown.map((e) => e.n).sort(), [1, 2]);
  assert.equal(shown.find((e) => e.n === 1)?.runtime?.containerName, '?');
  assert.equal(stats.filtered, 1);
  assert.equal(stats.shown, 2);
});

test('--timeout counts from the start of tracing: a gadget that takes longer to open than the timeout still traces for the whole timeout', async () => {
  const g = fakeGadget();
  const open = g.def.open.bind(g.def);
  let openedAt = 0;
  const slow: GadgetDefinition<Ev> = {
    ...g.def,
    async open(params, c) {
      await sleep(400); // loading programs on a busy host
      openedAt = Date.now();
      return open(params, c);
    },
  };
  const index = new ContainerIndex({ clients: [], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  const session = await Session.start(slow, { scope: {}, index, timeoutMs: 300 });
  const shown: Ev[] = [];
  let endedAt = 0;
  const reading = (async () => {
    for await (const m of session as AsyncIterable<SessionMessage<Ev>>) if (m.type === 'events') shown.push(...m.events);
    endedAt = Date.now();
  })();
  assert.ok(openedAt > 0, 'the session is open when start() returns');
  g.push([ev(1, 50, HOST.mnt)]);
  await reading;
  await index.close();
  assert.deepEqual(shown.map((e) => e.n), [1], 'an event right after the open is shown, not cut by a timeout that ran during the open');
  assert.ok(endedAt - openedAt >= 280, `traced ${endedAt - openedAt} ms after the open, want the whole 300 ms timeout`);
});
