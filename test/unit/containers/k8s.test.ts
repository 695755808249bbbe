// SPDX-License-Identifier: Apache-2.0
// Kubernetes identity from kubelet's labels, without an API server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCriSandbox, k8sIdentityFromLabels, podLabelsFromSandbox } from '../../../src/containers/k8s.js';

const kubelet = {
  'io.kubernetes.pod.name': 'web-7d4b9c-x2x9z',
  'io.kubernetes.pod.namespace': 'shop',
  'io.kubernetes.pod.uid': '5f3c2a1e-9b7d-4c6e-8a2f-1d0e3b4c5a69',
  'io.kubernetes.container.name': 'nginx',
  'io.cri-containerd.kind': 'container',
};

test('all four kubelet labels map to the pod identity', () => {
  assert.deepEqual(k8sIdentityFromLabels(kubelet), {
    namespace: 'shop',
    podName: 'web-7d4b9c-x2x9z',
    podUid: '5f3c2a1e-9b7d-4c6e-8a2f-1d0e3b4c5a69',
    containerName: 'nginx',
    podLabels: {},
  });
});

test('pod labels are carried when the runtime knows them', () => {
  assert.deepEqual(k8sIdentityFromLabels(kubelet, { app: 'web' })?.podLabels, { app: 'web' });
});

test('a container without kubelet labels has no pod', () => {
  assert.equal(k8sIdentityFromLabels({}), undefined);
  assert.equal(k8sIdentityFromLabels({ 'com.docker.compose.project': 'x', 'io.kubernetes.container.name': 'lonely' }), undefined);
});

test('partial labels (hand-made containers) give empty strings, not undefined', () => {
  assert.deepEqual(k8sIdentityFromLabels({ 'io.kubernetes.pod.name': 'web' }), { namespace: '', podName: 'web', podUid: '', containerName: '', podLabels: {} });
});

test('sandbox detection and pod labels out of sandbox labels', () => {
  assert.equal(isCriSandbox({ 'io.cri-containerd.kind': 'sandbox' }), true);
  assert.equal(isCriSandbox(kubelet), false);
  assert.equal(isCriSandbox({}), false);
  assert.deepEqual(
    podLabelsFromSandbox({ app: 'web', tier: 'front', 'io.kubernetes.pod.name': 'web-1', 'io.kubernetes.pod.uid': 'u', 'io.cri-containerd.kind': 'sandbox' }),
    { app: 'web', tier: 'front' },
  );
});
