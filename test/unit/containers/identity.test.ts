// SPDX-License-Identifier: Apache-2.0
// One container, one entry: whatever order the /proc fallback, the runtime's event stream and a
// re-list report a container in, the index holds it once (runtime + id, + containerd
// namespace), a cgroup-derived entry is replaced by the runtime's (`updated`, not a second
// `added`), and a fallback that lost the race never overwrites what the runtime said.
// Runtime answers are held and released by the test, so each interleaving is exact.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { ContainerIndex, type ContainerIndexEvent } from '../../../src/containers/index.js';
import { RuntimeError } from '../../../src/containers/errors.js';
import { AsyncQueue } from '../../../src/containers/queue.js';
import type { RuntimeClient, RuntimeContainer, RuntimeEvent, RuntimeName } from '../../../src/containers/types.js';
import { FakeProc } from './fake-proc.js';
import { waitUntil } from '../../helpers/wait.js';

const HOST = { mnt: 4026531840, net: 4026531992 };
const ID = 'a'.repeat(64);
const POD_UID = '0c6f7a8e-1b2c-4d3e-8f90-a1b2c3d4e5f6';
const fast = { minBackoffMs: 5, maxBackoffMs: 20, absentRecheckMs: 10 };

interface HeldInspect {
  readonly id: string;
  answer(c: RuntimeContainer | undefined): void;
  fail(message: string): void;
}

/** A runtime whose inspect answers wait until the test releases them, in the order it chooses. */
class GatedRuntime implements RuntimeClient {
  present = true;
  listed: RuntimeContainer[] = [];
  readonly held: HeldInspect[] = [];
  private readonly queues = new Set<AsyncQueue<RuntimeEvent>>();
  constructor(readonly name: RuntimeName, readonly socketPath = `/run/${name}.sock`) {}
  isPresent(): boolean {
    return this.present;
  }
  async list(): Promise<RuntimeContainer[]> {
    return [...this.listed];
  }
  inspect(id: string): Promise<RuntimeContainer | undefined> {
    return new Promise((resolve, reject) => {
      this.held.push({ id, answer: resolve, fail: (m) => reject(new RuntimeError(this.name, this.socketPath, m)) });
    });
  }
  watch(signal: AbortSignal): AsyncIterable<RuntimeEvent> {
    const q: AsyncQueue<RuntimeEvent> = new AsyncQueue<RuntimeEvent>(() => this.queues.delete(q));
    this.queues.add(q);
    signal.addEventListener('abort', () => q.end(), { once: true });
    return q;
  }
  emit(event: RuntimeEvent): void {
    for (const q of this.queues) q.push(event);
  }
  get watching(): number {
    return this.queues.size;
  }
  close(): void {}
}

const proc = new FakeProc();
proc.add({ pid: 1, ...HOST, cgroup: '/init.scope' });
after(() => proc.dispose());

const until = (what: string, cond: () => boolean, ms = 2000): Promise<void> => waitUntil(what, cond, ms, undefined, 2);

/** Lets every continuation of a released answer run (inspect → describe → upsert is synchronous after the await). */
async function settled(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

function recorder(index: ContainerIndex): string[] {
  const log: string[] = [];
  index.subscribe((e: ContainerIndexEvent) => log.push(`${e.type}:${e.container.source}:${e.container.name}`));
  return log;
}

const web: RuntimeContainer = { runtime: 'docker', id: ID, name: 'web', image: 'img', labels: { owner: 'me' }, pid: 100 };

// The race behind duplicate or downgraded entries: the rescan sees a new container's process
// before the runtime's start event is applied, asks the runtime (answer held), the event path
// indexes the container, and only then does the rescan's question come back — answered, empty,
// or failed (the fallback then describes the container from its cgroup path).
for (const rescanAnswer of ['answered', 'not running', 'failed'] as const) {
  for (const order of ['event first', 'rescan first'] as const) {
    test(`start event and /proc rescan race (${order}, rescan's inspect ${rescanAnswer}): one entry, the runtime's, one 'added'`, async () => {
      const docker = new GatedRuntime('docker');
      const index = new ContainerIndex({ clients: [docker], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
      const log = recorder(index);
      try {
        await index.start();
        await until('watching', () => docker.watching === 1);
        proc.add({ pid: 100, mnt: 5001, net: 6001, cgroup: `/docker/${ID}` });
        index.rescan(); // the fallback finds the process and asks docker about it
        await until('rescan asks', () => docker.held.length === 1);
        docker.emit({ type: 'start', id: ID }); // the start event, applied concurrently
        await until('event asks', () => docker.held.length === 2);
        const [fromRescan, fromEvent] = docker.held as [HeldInspect, HeldInspect];
        const releaseRescan = (): void => {
          if (rescanAnswer === 'answered') fromRescan.answer(web);
          else if (rescanAnswer === 'not running') fromRescan.answer(undefined);
          else fromRescan.fail('inspect: no answer within 5000 ms');
        };
        if (order === 'event first') {
          fromEvent.answer(web);
          await settled();
          releaseRescan();
        } else {
          releaseRescan();
          await settled();
          fromEvent.answer(web);
        }
        await settled();
        assert.equal(index.size, 1, 'one entry for one container');
        const c = index.byMntns(5001);
        assert.equal(c?.source, 'runtime');
        assert.equal(c?.name, 'web');
        assert.deepEqual(c?.labels, { owner: 'me' }, 'the runtime’s labels are kept');
        assert.equal(log.filter((e) => e.startsWith('added:')).length, 1, `one 'added' (${log.join(', ')})`);
        assert.deepEqual(log.filter((e) => e.startsWith('removed:')), []);
        assert.match(log.at(-1) ?? '', /^(added|updated):runtime:web$/, 'the last word is the runtime’s');
      } finally {
        await index.close();
        proc.remove(100);
      }
    });
  }
}

test('a cgroup-derived entry is replaced by the runtime’s under the same key: updated, not a second added', async () => {
  const docker = new GatedRuntime('docker');
  docker.present = false; // not reachable yet: the fallback indexes from the cgroup path alone
  const index = new ContainerIndex({ clients: [docker], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  const log = recorder(index);
  try {
    await index.start();
    proc.add({ pid: 200, mnt: 5002, net: 6002, cgroup: `/docker/${ID}` });
    proc.add({ pid: 201, mnt: 5002, net: 6002, cgroup: `/docker/${ID}` }); // a second process of it
    index.rescan();
    assert.deepEqual(log, [`added:cgroup:${ID.slice(0, 12)}`]);
    docker.listed = [{ ...web, pid: 200 }];
    docker.present = true;
    await until('listed', () => index.byMntns(5002)?.source === 'runtime');
    assert.equal(index.size, 1);
    assert.deepEqual(log, [`added:cgroup:${ID.slice(0, 12)}`, 'updated:runtime:web']);
  } finally {
    await index.close();
    proc.remove(200);
    proc.remove(201);
  }
});

test('containerd: a cgroup path without the namespace, then the runtime with it: one entry, updated', async () => {
  const containerd = new GatedRuntime('containerd');
  containerd.present = false;
  const index = new ContainerIndex({ clients: [containerd], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  const events: ContainerIndexEvent[] = [];
  index.subscribe((e) => events.push(e));
  const cgroup = `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${POD_UID.replaceAll('-', '_')}.slice/cri-containerd-${ID}.scope`;
  try {
    await index.start();
    // The process the rescan happens to see first is not the container's first one, and it
    // exits before the runtime answers: the entry is still this container (same runtime and id).
    proc.add({ pid: 301, mnt: 5003, net: 6003, cgroup });
    index.rescan();
    assert.equal(index.size, 1);
    assert.equal(index.byMntns(5003)?.runtimeNamespace, undefined, 'the path does not say the namespace');
    proc.remove(301);
    proc.add({ pid: 300, mnt: 5003, net: 6003, cgroup });
    containerd.listed = [{ runtime: 'containerd', id: ID, name: 'app', image: 'img', labels: { 'io.kubernetes.pod.uid': POD_UID }, pid: 300, runtimeNamespace: 'k8s.io' }];
    containerd.present = true;
    await until('listed', () => index.byMntns(5003)?.source === 'runtime');
    assert.equal(index.size, 1, 'containerd//<id> and containerd/k8s.io/<id> are one container');
    assert.deepEqual(events.map((e) => `${e.type}:${e.container.source}`), ['added:cgroup', 'updated:runtime']);
    const updated = events[1];
    assert.ok(updated?.type === 'updated');
    assert.equal(updated.previous.pid, 301);
    assert.equal(updated.container.runtimeNamespace, 'k8s.io');
    assert.equal(index.byId(ID), updated.container);
    // And the stop event (keyed with the namespace) removes it.
    containerd.emit({ type: 'stop', id: ID, runtimeNamespace: 'k8s.io' });
    await until('stopped', () => index.size === 0);
    assert.equal(events.at(-1)?.type, 'removed');
  } finally {
    await index.close();
    proc.remove(300);
  }
});
