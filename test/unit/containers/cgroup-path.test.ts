// SPDX-License-Identifier: Apache-2.0
// Container ids from cgroup paths, on paths as the runtimes really write them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { containerFromCgroupPath } from '../../../src/containers/cgroup-path.js';

const ID = 'a4297a833e6c2ba3cd0cb4171ebecd52448048bb414d37a09cdcbe8feda5d2eb';
const ID2 = '7d66b54ea714ad25a8f9717e3b23560fa0803982a5b2836b97b5ac2771ec3dc4';
const UID = '5f3c2a1e-9b7d-4c6e-8a2f-1d0e3b4c5a69';

test('docker, cgroupfs driver: /docker/<id>', () => {
  assert.deepEqual(containerFromCgroupPath(`/docker/${ID}`), { runtime: 'docker', id: ID });
});

test('docker, systemd driver: docker-<id>.scope', () => {
  assert.deepEqual(containerFromCgroupPath(`/system.slice/docker-${ID}.scope`), { runtime: 'docker', id: ID });
});

test('docker in docker: the innermost container wins', () => {
  assert.deepEqual(containerFromCgroupPath(`/docker/${ID}/docker/${ID2}`), { runtime: 'docker', id: ID2 });
});

test('podman, cgroupfs: /libpod_parent/libpod-<id>', () => {
  assert.deepEqual(containerFromCgroupPath(`/libpod_parent/libpod-${ID}`), { runtime: 'podman', id: ID });
});

test('podman, systemd, cgroup v2 with the /container sub-cgroup', () => {
  assert.deepEqual(containerFromCgroupPath(`/machine.slice/libpod-${ID}.scope/container`), { runtime: 'podman', id: ID });
});

test('conmon processes are not containers', () => {
  assert.equal(containerFromCgroupPath(`/machine.slice/libpod-conmon-${ID}.scope`), undefined);
  assert.equal(containerFromCgroupPath(`/libpod_parent/conmon`), undefined);
  assert.equal(containerFromCgroupPath(`/kubepods.slice/kubepods-burstable.slice/crio-conmon-${ID}.scope`), undefined);
});

test('cri-o, systemd: crio-<id>.scope under the pod slice (pod uid unescaped)', () => {
  const path = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID.replaceAll('-', '_')}.slice/crio-${ID}.scope`;
  assert.deepEqual(containerFromCgroupPath(path), { runtime: 'cri-o', id: ID, podUid: UID });
});

test('cri-o, cgroupfs: /kubepods/<qos>/pod<uid>/crio-<id>', () => {
  assert.deepEqual(containerFromCgroupPath(`/kubepods/besteffort/pod${UID}/crio-${ID}`), { runtime: 'cri-o', id: ID, podUid: UID });
});

test('containerd CRI, systemd: cri-containerd-<id>.scope', () => {
  const path = `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID.replaceAll('-', '_')}.slice/cri-containerd-${ID}.scope`;
  assert.deepEqual(containerFromCgroupPath(path), { runtime: 'containerd', id: ID, podUid: UID });
});

test('kubelet cgroupfs layout names the container and pod but not the runtime', () => {
  assert.deepEqual(containerFromCgroupPath(`/kubepods/burstable/pod${UID}/${ID}`), { runtime: undefined, id: ID, podUid: UID });
  assert.deepEqual(containerFromCgroupPath(`/kubepods/pod${UID}/${ID}`), { runtime: undefined, id: ID, podUid: UID });
});

test('containerd (ctr, nerdctl): /<namespace>/<id> in a known namespace', () => {
  assert.deepEqual(containerFromCgroupPath('/default/web-1'), { runtime: 'containerd', id: 'web-1', runtimeNamespace: 'default' });
  assert.deepEqual(containerFromCgroupPath(`/k8s.io/${ID}`), { runtime: 'containerd', id: ID, runtimeNamespace: 'k8s.io' });
  const namespaces = new Set(['default', 'buildkit']);
  assert.deepEqual(containerFromCgroupPath('/buildkit/job.1', { containerdNamespaces: namespaces }), { runtime: 'containerd', id: 'job.1', runtimeNamespace: 'buildkit' });
});

test('ordinary host cgroups are not containers', () => {
  for (const path of ['/', '', '/user.slice/user-0.slice/session-1.scope', '/system.slice/ssh.service', '/init.scope', '/process_api/febf25aafd29e00a44629bdc37acd080', '/user.slice/user-0.slice', '/system.slice/containerd.service', '/docker', `/docker/${ID.slice(0, 12)}`]) {
    assert.equal(containerFromCgroupPath(path), undefined, path);
  }
});

test('upper-case or short hex is not a container id', () => {
  assert.equal(containerFromCgroupPath(`/docker/${ID.toUpperCase()}`), undefined);
  assert.equal(containerFromCgroupPath(`/system.slice/docker-${ID.slice(1)}.scope`), undefined);
});
