// SPDX-License-Identifier: Apache-2.0
// The selector every gadget's flags build, and how it matches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../../src/errors.js';
import { includesHost, matches, matchesContainer, parseSelectorFlags, runtimesInScope, type ContainerSelector } from '../../../src/containers/selector.js';
import type { ContainerInfo } from '../../../src/containers/types.js';

function container(over: Partial<ContainerInfo> = {}): ContainerInfo {
  return {
    runtime: 'docker', id: 'a'.repeat(64), name: 'web', image: 'nginx', labels: {}, pid: 100, mntns: 1, netns: 2,
    cgroupPath: '/docker/x', cgroupId: undefined, k8s: undefined, runtimeNamespace: undefined, source: 'runtime', ...over,
  };
}

const pod = container({
  runtime: 'containerd', name: 'nginx', runtimeNamespace: 'k8s.io',
  labels: { 'io.kubernetes.container.name': 'nginx', team: 'blue' },
  k8s: { namespace: 'shop', podName: 'web-1', podUid: 'u1', containerName: 'nginx', podLabels: { app: 'web', tier: 'front' } },
});

test('no filter: the host and every container are in scope', () => {
  const s: ContainerSelector = {};
  assert.equal(includesHost(s), true);
  assert.equal(matches(s, undefined, 1), true);
  assert.equal(matches(s, container()), true);
  assert.equal(matches(s, pod), true);
});

test('--host alone: only the host', () => {
  const s = parseSelectorFlags({ host: true });
  assert.equal(matches(s, undefined, 1), true);
  assert.equal(matches(s, container()), false);
});

test('container filters leave the host out, --host adds it back', () => {
  const only = parseSelectorFlags({ containername: 'web' });
  assert.equal(matches(only, undefined), false);
  assert.equal(matches(only, container()), true);
  assert.equal(matches(only, container({ name: 'db' })), false);
  const plusHost = parseSelectorFlags({ containername: 'web', host: true });
  assert.equal(matches(plusHost, undefined), true);
  assert.equal(matches(plusHost, container()), true);
  assert.equal(matches(plusHost, container({ name: 'db' })), false);
});

test('host: false keeps every container but no host', () => {
  const s: ContainerSelector = { host: false };
  assert.equal(matches(s, undefined), false);
  assert.equal(matches(s, container()), true);
});

test('runtimes: any of the listed', () => {
  const s = parseSelectorFlags({ runtimes: 'docker,containerd' });
  assert.equal(matchesContainer(s, container()), true);
  assert.equal(matchesContainer(s, pod), true);
  assert.equal(matchesContainer(s, container({ runtime: 'podman' })), false);
});

test('different filters must all hold', () => {
  const s = parseSelectorFlags({ runtimes: 'containerd', k8sNamespace: 'shop', k8sPodname: 'web-1', k8sContainername: 'nginx' });
  assert.equal(matchesContainer(s, pod), true);
  assert.equal(matchesContainer(s, { ...pod, k8s: { ...pod.k8s!, podName: 'web-2' } }), false);
  assert.equal(matchesContainer(s, container()), false, 'not a pod at all');
});

test('--k8s-selector matches pod labels, then container labels', () => {
  assert.equal(matchesContainer(parseSelectorFlags({ k8sSelector: 'app=web,tier=front' }), pod), true);
  assert.equal(matchesContainer(parseSelectorFlags({ k8sSelector: 'app=db' }), pod), false);
  assert.equal(matchesContainer(parseSelectorFlags({ k8sSelector: 'team=blue' }), pod), true);
  assert.equal(matchesContainer(parseSelectorFlags({ k8sSelector: 'app=web' }), container({ labels: { app: 'web' } })), false, 'plain containers have no pod');
});

test('pids narrow processes wherever they are; an event without pid is not narrowed here', () => {
  const s = parseSelectorFlags({ pid: ['42', '43'] });
  assert.equal(matches(s, undefined, 42), true);
  assert.equal(matches(s, undefined, 44), false);
  assert.equal(matches(s, container(), 43), true);
  assert.equal(matches(s, container()), true);
  assert.equal(includesHost(s), true, 'pids alone do not drop the host');
});

test('parse: repeated and comma-separated values, duplicates folded, crio alias', () => {
  assert.deepEqual(parseSelectorFlags({ runtimes: ['docker', 'crio,docker'], containername: ['a,b', 'a'], pid: [7, '8,7'] }), {
    runtimes: ['docker', 'cri-o'],
    containerNames: ['a', 'b'],
    pids: [7, 8],
  });
  assert.deepEqual(parseSelectorFlags({ k8sSelector: ['app=web', 'tier=front'] }), { k8sSelector: { app: 'web', tier: 'front' } });
  assert.deepEqual(parseSelectorFlags({ k8sSelector: 'example.com/team=blue,empty=' }), { k8sSelector: { 'example.com/team': 'blue', empty: '' } });
  assert.deepEqual(parseSelectorFlags({}), {});
});

test('parse: bad input is a UsageError with a hint', () => {
  const bad: Parameters<typeof parseSelectorFlags>[0][] = [
    { runtimes: 'docker,rkt' },
    { runtimes: 'docker,' },
    { runtimes: '' },
    { containername: 'a,,b' },
    { pid: 'abc' },
    { pid: '0' },
    { pid: '-3' },
    { pid: '1.5' },
    { k8sSelector: 'app' },
    { k8sSelector: '=web' },
    { k8sSelector: 'app=web,app=db' },
    { k8sSelector: 'bad key=x' },
    { k8sSelector: 'app=has space' },
    { k8sNamespace: '  ' },
  ];
  for (const flags of bad) {
    assert.throws(() => parseSelectorFlags(flags), (e: unknown) => e instanceof UsageError && e.exitCode === 2 && typeof e.hint === 'string' && e.hint.length > 0, JSON.stringify(flags));
  }
});

test('runtimesInScope: all when none named', () => {
  assert.deepEqual(runtimesInScope({}), ['docker', 'containerd', 'podman', 'cri-o']);
  assert.deepEqual(runtimesInScope(parseSelectorFlags({ runtimes: 'podman' })), ['podman']);
});
