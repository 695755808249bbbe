// SPDX-License-Identifier: Apache-2.0
// Names of captured namespaces: a container, a pod (several containers sharing a namespace).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ContainerInfo } from '../../../src/containers/types.js';
import { containerPlace, labelFor } from '../../../src/gadgets/capture/labels.js';

function container(name: string, runtime: ContainerInfo['runtime'], pod?: { namespace: string; podName: string }): ContainerInfo {
  return {
    runtime, id: `${name}-id`, name, image: 'busybox', labels: {}, pid: 1, mntns: 1, netns: 2, cgroupPath: '', cgroupId: undefined,
    k8s: pod === undefined ? undefined : { ...pod, podUid: 'u', containerName: name, podLabels: {} },
    runtimeNamespace: undefined, source: 'runtime',
  };
}

test('one container: its name and runtime', () => {
  assert.deepEqual(labelFor([container('web', 'docker')]), { short: 'web', long: 'web (docker)' });
});

test('a pod: namespace/name, whatever its containers are called', () => {
  const pod = { namespace: 'shop', podName: 'cart-7d9f' };
  assert.deepEqual(labelFor([container('app', 'containerd', pod), container('sidecar', 'containerd', pod)]), { short: 'shop/cart-7d9f', long: 'pod shop/cart-7d9f (containerd)' });
});

test('containers sharing a namespace outside Kubernetes (--network container:…): every name', () => {
  assert.deepEqual(labelFor([container('web', 'docker'), container('debug', 'podman')]), { short: 'web,debug', long: 'web,debug (docker,podman)' });
});

test('no container: no label (the caller names the host or the pid)', () => {
  assert.equal(labelFor([]), undefined);
});

test('a process in a pod: its own container, then the pod (the pod\'s containers share one namespace label)', () => {
  const pod = { namespace: 'shop', podName: 'cart-7d9f' };
  assert.equal(containerPlace(container('app', 'containerd', pod)), 'app of pod shop/cart-7d9f (containerd)');
  assert.equal(containerPlace(container('sidecar', 'containerd', pod)), 'sidecar of pod shop/cart-7d9f (containerd)');
  assert.equal(containerPlace(container('web', 'docker')), 'web (docker)');
});
