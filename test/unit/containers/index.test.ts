// SPDX-License-Identifier: Apache-2.0
// The container index's bookkeeping, with scripted runtime clients over a fake /proc (no root).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { ContainerIndex, type ContainerIndexEvent, type ContainerIndexWarning } from '../../../src/containers/index.js';
import { RuntimeError } from '../../../src/containers/errors.js';
import { AsyncQueue } from '../../../src/containers/queue.js';
import type { RuntimeClient, RuntimeContainer, RuntimeEvent, RuntimeName } from '../../../src/containers/types.js';
import { FakeProc } from './fake-proc.js';
import { waitUntil } from '../../helpers/wait.js';

const HOST = { mnt: 4026531840, net: 4026531992 };
const ID1 = '1'.repeat(64);
const ID2 = '2'.repeat(64);
const ID3 = '3'.repeat(64);
const fast = { minBackoffMs: 5, maxBackoffMs: 20, absentRecheckMs: 10 };

/** A runtime whose answers the test scripts. */
class ScriptedRuntime implements RuntimeClient {
  present = true;
  failing: string | undefined;
  containers = new Map<string, RuntimeContainer>();
  listCalls = 0;
  closed = false;
  protected readonly queues = new Set<AsyncQueue<RuntimeEvent>>();
  constructor(readonly name: RuntimeName, readonly socketPath = `/run/${name}.sock`) {}
  isPresent(): boolean {
    return this.present;
  }
  async list(): Promise<RuntimeContainer[]> {
    this.listCalls++;
    if (this.failing) throw new RuntimeError(this.name, this.socketPath, this.failing);
    return [...this.containers.values()];
  }
  async inspect(id: string): Promise<RuntimeContainer | undefined> {
    if (this.failing) throw new RuntimeError(this.name, this.socketPath, this.failing);
    return this.containers.get(id);
  }
  watch(signal: AbortSignal): AsyncIterable<RuntimeEvent> {
    const q: AsyncQueue<RuntimeEvent> = new AsyncQueue<RuntimeEvent>(() => this.queues.delete(q));
    this.queues.add(q);
    if (this.failing) q.fail(new RuntimeError(this.name, this.socketPath, this.failing));
    signal.addEventListener('abort', () => q.end(), { once: true });
    return q;
  }
  start(c: RuntimeContainer): void {
    this.containers.set(c.id, c);
    for (const q of this.queues) q.push({ type: 'start', id: c.id });
  }
  stop(id: string): void {
    this.containers.delete(id);
    for (const q of this.queues) q.push({ type: 'stop', id });
  }
  get watching(): number {
    return this.queues.size;
  }
  close(): void {
    this.closed = true;
  }
}

const proc = new FakeProc();
proc.add({ pid: 1, ...HOST, cgroup: '/init.scope' });
after(() => proc.dispose());

function container(runtime: RuntimeName, id: string, pid: number, over: Partial<RuntimeContainer> = {}): RuntimeContainer {
  return { runtime, id, name: `c-${pid}`, image: 'img', labels: {}, pid, ...over };
}

const until = (what: string, cond: () => boolean, ms = 2000): Promise<void> => waitUntil(what, cond, ms, undefined, 5);

function recorder(index: ContainerIndex): string[] {
  const log: string[] = [];
  index.subscribe((e: ContainerIndexEvent) => log.push(`${e.type}:${e.container.name}`));
  return log;
}

test('start lists runtimes; every key finds the container in O(1) maps', async () => {
  proc.add({ pid: 100, mnt: 5001, net: 6001, cgroup: `/docker/${ID1}` });
  proc.add({ pid: 101, mnt: 5001, net: 6001, cgroup: `/docker/${ID1}` }); // a second process in the same container
  const docker = new ScriptedRuntime('docker');
  docker.containers.set(ID1, container('docker', ID1, 100, {
    name: 'web',
    labels: { 'io.kubernetes.pod.name': 'web-1', 'io.kubernetes.pod.namespace': 'shop', 'io.kubernetes.pod.uid': 'u1', 'io.kubernetes.container.name': 'nginx' },
  }));
  const index = new ContainerIndex({ clients: [docker], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  const log = recorder(index);
  try {
    await index.start();
    assert.deepEqual(log, ['added:web']);
    const c = index.byMntns(5001);
    assert.ok(c);
    assert.equal(c.runtime, 'docker');
    assert.equal(c.pid, 100);
    assert.equal(c.netns, 6001);
    assert.equal(c.cgroupPath, `/docker/${ID1}`);
    assert.equal(typeof c.cgroupId, 'bigint');
    assert.equal(c.source, 'runtime');
    assert.deepEqual(c.k8s, { namespace: 'shop', podName: 'web-1', podUid: 'u1', containerName: 'nginx', podLabels: {} });
    assert.equal(index.byNetns(6001)[0], c);
    assert.equal(index.byPid(100), c);
    assert.equal(index.byPid(101), c, 'any process of the container, through its mount namespace');
    assert.equal(index.byPid(1), undefined, 'host');
    assert.equal(index.byPid(99999), undefined, 'gone');
    assert.equal(index.byCgroupId(c.cgroupId!), c);
    assert.equal(index.byCgroupPath(`/docker/${ID1}`), c);
    assert.equal(index.byId(ID1), c);
    assert.deepEqual(index.hostNamespaces, { ...HOST, pid: 4026531836 });
  } finally {
    await index.close();
    proc.remove(100);
    proc.remove(101);
  }
  assert.equal(docker.closed, true, 'the index closes its clients');
  assert.equal(docker.watching, 0, 'and its event streams');
});

test('runtime events add and remove containers; a stop for an unknown id is harmless', async () => {
  const podman = new ScriptedRuntime('podman');
  const index = new ContainerIndex({ clients: [podman], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  const log = recorder(index);
  try {
    await index.start();
    await until('watching', () => podman.watching === 1);
    proc.add({ pid: 200, mnt: 5002, net: 6002, cgroup: `/libpod_parent/libpod-${ID2}` });
    podman.start(container('podman', ID2, 200, { name: 'api' }));
    await until('added', () => index.size === 1);
    podman.stop('unknown');
    podman.stop(ID2);
    await until('removed', () => index.size === 0);
    assert.deepEqual(log, ['added:api', 'removed:api']);
    assert.equal(index.byMntns(5002), undefined);
    assert.equal(index.byNetns(6002).length, 0);
    assert.equal(index.byPid(200), undefined);
  } finally {
    await index.close();
    proc.remove(200);
  }
});

test('an absent runtime is silent; a broken one warns once, however often it is retried', async () => {
  const absent = new ScriptedRuntime('cri-o');
  absent.present = false;
  const broken = new ScriptedRuntime('containerd');
  broken.failing = 'connection refused';
  const warnings: ContainerIndexWarning[] = [];
  const index = new ContainerIndex({ clients: [absent, broken], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast, onWarning: (w) => warnings.push(w) });
  try {
    await index.start();
    await until('several retries', () => broken.listCalls >= 4);
    assert.equal(warnings.length, 1);
    const w = warnings[0];
    assert.ok(w?.kind === 'runtime');
    assert.equal(w.runtime, 'containerd');
    assert.match(w.error.message, /connection refused/);
    assert.ok(w.error.hint);
    assert.equal(absent.listCalls, 0);
    // Recovery, then a new breakage, is a new warning.
    broken.failing = undefined;
    await until('recovered', () => broken.watching === 1);
    broken.failing = 'gone again';
    for (const q of [...(broken as unknown as { queues: Set<AsyncQueue<RuntimeEvent>> }).queues]) q.fail(new RuntimeError('containerd', broken.socketPath, 'gone again'));
    await until('second warning', () => warnings.length === 2);
  } finally {
    await index.close();
  }
});

test('a runtime that appears later is picked up', async () => {
  const late = new ScriptedRuntime('docker');
  late.present = false;
  proc.add({ pid: 300, mnt: 5003, net: 6003, cgroup: `/docker/${ID3}` });
  late.containers.set(ID3, container('docker', ID3, 300, { name: 'late' }));
  const index = new ContainerIndex({ clients: [late], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  try {
    await index.start();
    assert.equal(index.size, 0);
    late.present = true;
    await until('listed', () => index.size === 1);
    assert.equal(index.byMntns(5003)?.name, 'late');
  } finally {
    await index.close();
    proc.remove(300);
  }
});

test('rescan: a container nobody reported is indexed from its cgroup, and dropped when it exits', async () => {
  const docker = new ScriptedRuntime('docker');
  docker.present = false; // dockerd's socket is not there: only the cgroup names the container
  const index = new ContainerIndex({ clients: [docker], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  const log = recorder(index);
  try {
    await index.start();
    proc.add({ pid: 400, mnt: 5004, net: 6004, cgroup: `/docker/${ID1}` });
    proc.add({ pid: 401, mnt: 5005, net: HOST.net, cgroup: '/system.slice/some.service' }); // private mount ns, not a container
    index.rescan();
    const c = index.byMntns(5004);
    assert.ok(c);
    assert.equal(c.source, 'cgroup');
    assert.equal(c.runtime, 'docker');
    assert.equal(c.id, ID1);
    assert.equal(c.name, ID1.slice(0, 12));
    assert.equal(index.byMntns(5005), undefined);
    proc.remove(400);
    index.rescan();
    assert.equal(index.size, 0);
    assert.deepEqual(log, [`added:${ID1.slice(0, 12)}`, `removed:${ID1.slice(0, 12)}`]);
  } finally {
    await index.close();
    proc.remove(401);
  }
});

test('rescan: a container found by cgroup is asked about through its runtime when that runtime answers', async () => {
  const containerd = new ScriptedRuntime('containerd');
  const index = new ContainerIndex({ clients: [containerd], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  try {
    await index.start();
    // The runtime knows it but its start event was lost.
    proc.add({ pid: 500, mnt: 5006, net: 6006, cgroup: '/default/web' });
    containerd.containers.set('web', container('containerd', 'web', 500, { name: 'web', runtimeNamespace: 'default' }));
    index.rescan();
    await until('resolved', () => index.size === 1);
    assert.equal(index.byMntns(5006)?.source, 'runtime');
    assert.equal(index.byMntns(5006)?.runtimeNamespace, 'default');
  } finally {
    await index.close();
    proc.remove(500);
  }
});

test('rescan: an entry whose process is gone is removed even without a stop event', async () => {
  const docker = new ScriptedRuntime('docker');
  proc.add({ pid: 600, mnt: 5007, net: 6007, cgroup: `/docker/${ID2}` });
  docker.containers.set(ID2, container('docker', ID2, 600));
  const index = new ContainerIndex({ clients: [docker], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  try {
    await index.start();
    assert.equal(index.size, 1);
    proc.remove(600);
    index.rescan();
    assert.equal(index.size, 0);
    // pid reused by an unrelated process: also gone.
    proc.add({ pid: 601, mnt: 5008, net: 6008, cgroup: `/docker/${ID3}` });
    docker.start(container('docker', ID3, 601));
    await until('added', () => index.size === 1);
    proc.add({ pid: 601, mnt: HOST.mnt, net: HOST.net, cgroup: '/' });
    index.rescan();
    assert.equal(index.size, 0);
  } finally {
    await index.close();
    proc.remove(601);
  }
});

test('a mount namespace inode recycled for a new container replaces the dead entry at once', async () => {
  const docker = new ScriptedRuntime('docker');
  proc.add({ pid: 900, mnt: 5030, net: 6030, cgroup: `/docker/${ID1}` });
  docker.containers.set(ID1, container('docker', ID1, 900, { name: 'old' }));
  const index = new ContainerIndex({ clients: [docker], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  try {
    await index.start();
    await until('watching', () => docker.watching === 1);
    const before = Date.now(); // an event of the old one, attributed after the new one took the inode
    await new Promise((r) => setTimeout(r, 20));
    proc.remove(900); // exits; its stop event is lost
    proc.add({ pid: 901, mnt: 5030, net: 6031, cgroup: `/docker/${ID2}` });
    docker.start(container('docker', ID2, 901, { name: 'new' }));
    await until('replaced', () => index.byMntns(5030)?.name === 'new');
    assert.equal(index.size, 1);
    assert.equal(index.byMntns(5030, before)?.name, 'old', 'an event from before the inode changed hands keeps its container');
    assert.equal(index.byMntns(5030, Date.now() + 1)?.name, 'new');
  } finally {
    await index.close();
    proc.remove(901);
  }
});

test('one container reported by two clients is indexed once; pods share a netns; host-network containers are not under the host netns', async () => {
  const a = new ScriptedRuntime('containerd');
  const b = new ScriptedRuntime('containerd', '/run/other.sock');
  proc.add({ pid: 700, mnt: 5010, net: 6010, cgroup: '/k8s.io/app' });
  proc.add({ pid: 701, mnt: 5011, net: 6010, cgroup: '/k8s.io/sidecar' });
  proc.add({ pid: 702, mnt: 5012, net: HOST.net, cgroup: '/default/hostnet' });
  a.containers.set('app', container('containerd', 'app', 700, { runtimeNamespace: 'k8s.io' }));
  a.containers.set('sidecar', container('containerd', 'sidecar', 701, { runtimeNamespace: 'k8s.io' }));
  a.containers.set('hostnet', container('containerd', 'hostnet', 702, { runtimeNamespace: 'default' }));
  b.containers.set('app', container('containerd', 'app', 700)); // the CRI view: no namespace
  const index = new ContainerIndex({ clients: [a, b], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  try {
    await index.start();
    assert.equal(index.size, 3);
    assert.deepEqual(index.byNetns(6010).map((c) => c.id).sort(), ['app', 'sidecar']);
    assert.equal(index.byNetns(HOST.net).length, 0);
    assert.equal(index.byMntns(5012)?.id, 'hostnet');
  } finally {
    await index.close();
    for (const pid of [700, 701, 702]) proc.remove(pid);
  }
});

test('waitFor resolves on a later container and rejects when its signal aborts; events() ends on close', async () => {
  // AbortSignal.timeout does not keep the process alive, and scripted runtimes hold no sockets.
  const keepAlive = setInterval(() => {}, 1000);
  const docker = new ScriptedRuntime('docker');
  const index = new ContainerIndex({ clients: [docker], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  await index.start();
  await until('watching', () => docker.watching === 1);
  const waiting = index.waitFor((c) => c.name === 'later', AbortSignal.timeout(2000));
  const seen: string[] = [];
  const iterating = (async () => {
    for await (const e of index.events()) seen.push(e.type);
  })();
  proc.add({ pid: 800, mnt: 5020, net: 6020, cgroup: `/docker/${ID1}` });
  docker.start(container('docker', ID1, 800, { name: 'later' }));
  assert.equal((await waiting).pid, 800);
  await assert.rejects(index.waitFor((c) => c.name === 'never', AbortSignal.timeout(50)), { name: 'TimeoutError' });
  await index.close();
  await iterating;
  assert.deepEqual(seen, ['added']);
  await assert.rejects(index.start(), { code: 'ERR_CLOSED' });
  proc.remove(800);
  clearInterval(keepAlive);
});

test('close() leaves no timer behind', async () => {
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  await new Promise((r) => setTimeout(r, 30));
  const before = timers();
  const absent = new ScriptedRuntime('docker');
  absent.present = false;
  const index = new ContainerIndex({ clients: [absent], procRoot: proc.root, rescanIntervalMs: 20, sessionTiming: fast });
  await index.start();
  await new Promise((r) => setTimeout(r, 60));
  await index.close();
  assert.equal(timers(), before);
});

/** A runtime that answers an inspect only when the test lets it (after the process has exited), as an exited container (pid 0) when asked with `exited`. */
class SlowRuntime extends ScriptedRuntime {
  private gate: (() => void) | undefined;
  private readonly opened = new Promise<void>((resolve) => { this.gate = resolve; });
  asked: { id: string; exited: boolean }[] = [];
  answer(): void {
    this.gate?.();
  }
  override async inspect(id: string, _ns?: string, _signal?: AbortSignal, opts?: { exited?: boolean }): Promise<RuntimeContainer | undefined> {
    this.asked.push({ id, exited: opts?.exited === true });
    await this.opened;
    const c = this.containers.get(id);
    if (c === undefined) return undefined;
    return opts?.exited === true ? { ...c, pid: 0 } : undefined; // exited: only `exited` gets it
  }
  startWithPid(c: RuntimeContainer): void {
    this.containers.set(c.id, c);
    for (const q of this.queues) q.push({ type: 'start', id: c.id, pid: c.pid });
  }
}

test('a short-lived container whose start event names its pid: described from what /proc said then, though its runtime answers after the exit', async () => {
  const containerd = new SlowRuntime('containerd');
  const index = new ContainerIndex({ clients: [containerd], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  try {
    await index.start();
    proc.add({ pid: 900, mnt: 5090, net: 6090, cgroup: '/k8s.io/quick' });
    containerd.startWithPid(container('containerd', 'quick', 900, { name: 'quick', runtimeNamespace: 'k8s.io' }));
    await until('asked', () => containerd.asked.length === 1);
    proc.remove(900); // it exits before the runtime answers
    containerd.answer();
    await until('indexed', () => index.size === 1);
    const c = index.byMntns(5090);
    assert.equal(c?.name, 'quick');
    assert.equal(c?.netns, 6090);
    assert.deepEqual(containerd.asked, [{ id: 'quick', exited: true }]);
  } finally {
    await index.close();
    proc.remove(900);
  }
});

test('byPid of a process in an unknown namespace is looked at at once (no rescan), and the runtime\'s answer after its exit still names it', async () => {
  const containerd = new SlowRuntime('containerd');
  const index = new ContainerIndex({ clients: [containerd], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  try {
    await index.start();
    proc.add({ pid: 910, mnt: 5091, net: 6091, cgroup: '/k8s.io/brief' });
    containerd.containers.set('brief', container('containerd', 'brief', 910, { name: 'brief', runtimeNamespace: 'k8s.io' }));
    assert.equal(index.byPid(910), undefined);
    await until('asked', () => containerd.asked.length === 1);
    proc.remove(910);
    containerd.answer();
    await until('indexed', () => index.size === 1);
    assert.equal(index.byMntns(5091)?.name, 'brief');
    // a second event of that pid soon after does not look again
    index.byPid(910);
    assert.equal(containerd.asked.length, 1);
  } finally {
    await index.close();
    proc.remove(910);
  }
});

test('recheck: a container whose mount namespace inode an event of another network namespace carried is forgotten once it has exited, and the new one named at once', async () => {
  const containerd = new ScriptedRuntime('containerd');
  const index = new ContainerIndex({ clients: [containerd], procRoot: proc.root, rescanIntervalMs: 0, sessionTiming: fast });
  try {
    await index.start();
    proc.add({ pid: 600, mnt: 5010, net: 6010, cgroup: '/default/old' });
    containerd.containers.set('old', container('containerd', 'old', 600, { name: 'old', runtimeNamespace: 'default' }));
    index.rescan();
    await until('old indexed', () => index.byMntns(5010)?.name === 'old');
    const old = index.byMntns(5010)!;
    // still running: an event of another network namespace does not unseat it
    proc.add({ pid: 601, mnt: 5010, net: 6011, cgroup: '/default/new' });
    index.recheck(old, 601);
    assert.equal(index.byMntns(5010)?.name, 'old');
    // old exits; its inode is new's now (as the kernel recycles them): no rescan needed
    proc.remove(600);
    containerd.containers.set('new', container('containerd', 'new', 601, { name: 'new', runtimeNamespace: 'default' }));
    index.recheck(old, 601);
    await until('new indexed', () => index.byMntns(5010)?.name === 'new');
    assert.equal(index.byMntns(5010)?.netns, 6011);
  } finally {
    await index.close();
    proc.remove(601);
  }
});
