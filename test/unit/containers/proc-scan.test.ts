// SPDX-License-Identifier: Apache-2.0
// The /proc fallback on its own, with a fake /proc and a hand-driven clock.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CgroupContainerRef } from '../../../src/containers/cgroup-path.js';
import { ProcScanner, type ScanTarget } from '../../../src/containers/proc-scan.js';
import type { ContainerInfo } from '../../../src/containers/types.js';
import { FakeProc } from './fake-proc.js';

const HOST_MNT = 4026531840;
const proc = new FakeProc();
proc.add({ pid: 1, mnt: HOST_MNT, net: 4026531992, cgroup: '/init.scope' });
after(() => proc.dispose());

function harness() {
  const found: { ref: CgroupContainerRef; pid: number; mntns: number }[] = [];
  const gone: ContainerInfo[] = [];
  const entries: ContainerInfo[] = [];
  let now = 1_000_000;
  const target: ScanTarget = {
    entries: () => entries,
    isIndexedMntns: (m) => entries.some((e) => e.mntns === m),
    hostMntns: () => HOST_MNT,
    containerdNamespaces: new Set(['default']),
    gone: (c) => gone.push(c),
    found: (ref, pid, mntns) => found.push({ ref, pid, mntns }),
  };
  const scanner = new ProcScanner(target, proc.root, () => now);
  return { scanner, found, gone, entries, advance: (ms: number) => (now += ms) };
}

test('new processes are examined once; host ones and known containers are skipped', () => {
  const h = harness();
  proc.add({ pid: 10, mnt: HOST_MNT, net: 1, cgroup: '/user.slice' });
  proc.add({ pid: 11, mnt: 7001, net: 8001, cgroup: '/default/web' });
  h.scanner.scan();
  assert.deepEqual(h.found.map((f) => [f.pid, f.ref.runtime, f.ref.id, f.mntns]), [[11, 'containerd', 'web', 7001]]);
  h.scanner.scan();
  assert.equal(h.found.length, 1, 'a pid already seen is not examined again');
  proc.remove(10);
  proc.remove(11);
});

test('a process whose cgroup is joined a moment after its namespaces is still found', () => {
  const h = harness();
  proc.add({ pid: 20, mnt: 7002, net: 8002, cgroup: '/' }); // runc init before joining the cgroup
  h.scanner.scan();
  assert.equal(h.found.length, 0);
  h.advance(500);
  writeFileSync(join(proc.root, '20', 'cgroup'), '0::/docker/' + 'd'.repeat(64) + '\n');
  h.scanner.scan();
  assert.deepEqual(h.found.map((f) => [f.pid, f.ref.runtime]), [[20, 'docker']]);
  proc.remove(20);
});

test('a private mount namespace that never becomes a container is given up on, while it lives', () => {
  const h = harness();
  proc.add({ pid: 30, mnt: 7003, net: 8003, cgroup: '/system.slice/private-tmp.service' });
  h.scanner.scan();
  h.advance(4000);
  h.scanner.scan(); // window over: namespace 7003 is not a container
  // Even a process there in a container-looking cgroup is not taken for one while 30 holds it.
  proc.add({ pid: 31, mnt: 7003, net: 8003, cgroup: '/default/odd' });
  h.scanner.scan();
  assert.equal(h.found.length, 0);
  // Namespace inode numbers are recycled: once 30 is gone, 7003 may be a new container's.
  proc.remove(30);
  proc.remove(31);
  proc.add({ pid: 32, mnt: 7003, net: 8006, cgroup: '/default/recycled' });
  h.scanner.scan();
  assert.deepEqual(h.found.map((f) => [f.pid, f.ref.id]), [[32, 'recycled']]);
  proc.remove(32);
});

test('entries whose first process is gone or replaced are reported gone', () => {
  const h = harness();
  proc.add({ pid: 40, mnt: 7004, net: 8004, cgroup: '/default/a' });
  proc.add({ pid: 41, mnt: 7005, net: 8005, cgroup: '/default/b' });
  const entry = (pid: number, mntns: number): ContainerInfo => ({
    runtime: 'containerd', id: String(pid), name: String(pid), image: '', labels: {}, pid, mntns, netns: 0, cgroupPath: '', cgroupId: undefined,
    k8s: undefined, runtimeNamespace: 'default', source: 'runtime',
  });
  h.entries.push(entry(40, 7004), entry(41, 7005), entry(42, 7006));
  proc.add({ pid: 41, mnt: HOST_MNT, net: 1, cgroup: '/' }); // pid reused by a host process
  h.scanner.scan();
  assert.deepEqual(h.gone.map((c) => c.pid).sort(), [41, 42]);
  proc.remove(40);
  proc.remove(41);
});
