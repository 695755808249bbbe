// SPDX-License-Identifier: Apache-2.0
// The start hook's reading of runtime command lines, bundles and specs (argv and paths as
// measured from containerd-shim-runc-v2 1.6, conmon 2.1 and runc 1.1 on the test VMs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bundleOwner, conmonName, isSandbox, labelsFromAnnotations, parseDockerConfigV2, parseOciSpec, parsePidFile, parseRuntimeCommand } from '../../../src/containers/oci.js';
import { containerFromHook } from '../../../src/containers/hook.js';
import { k8sIdentityFromLabels } from '../../../src/containers/k8s.js';

const ID = '5558689fc1b8d38f659f97c236894d193f9c124e9145df7f0363ed00612ac48b';
const TASK = `/run/containerd/io.containerd.runtime.v2.task/moby/${ID}`;

test('runc create as containerd-shim calls it: bundle, pid file and id after global options', () => {
  const argv = ['runc', '--root', '/run/containerd/runc/moby', '--log', `${TASK}/log.json`, '--log-format', 'json', 'create', '--bundle', TASK, '--pid-file', `${TASK}/init.pid`, ID];
  assert.deepEqual(parseRuntimeCommand(argv), { verb: 'create', bundle: TASK, pidFile: `${TASK}/init.pid`, id: ID });
});

test('runc create as conmon calls it: -b, --pid-file=, --no-pivot, a relative path resolved against the cwd', () => {
  const argv = ['/usr/bin/runc', '--systemd-cgroup', 'create', '-b', 'userdata', '--pid-file=run/pidfile', '--no-pivot', '--console-socket', '/tmp/x.sock', 'abc'];
  assert.deepEqual(parseRuntimeCommand(argv, '/var/lib/c'), { verb: 'create', bundle: '/var/lib/c/userdata', pidFile: '/var/lib/c/run/pidfile', id: 'abc' });
});

test('other runtime verbs, and a create without a pid file, are not held', () => {
  assert.equal(parseRuntimeCommand(['runc', '--root', '/r', 'start', ID]), undefined);
  assert.equal(parseRuntimeCommand(['runc', 'init']), undefined);
  assert.equal(parseRuntimeCommand(['runc', 'create', '--bundle', '/b', ID]), undefined);
  assert.equal(parseRuntimeCommand(['runc', 'create', '--pid-file']), undefined);
  assert.equal(parseRuntimeCommand([]), undefined);
});

test('bundles name their runtime: moby is docker, other containerd namespaces are containerd, storage dirs podman or cri-o', () => {
  const none = parseOciSpec('{}');
  assert.deepEqual(bundleOwner(TASK, none, ID), { runtime: 'docker', id: ID });
  assert.deepEqual(bundleOwner('/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc', none, 'abc'), { runtime: 'containerd', id: 'abc', runtimeNamespace: 'k8s.io' });
  const libpod = parseOciSpec(JSON.stringify({ annotations: { 'io.container.manager': 'libpod' } }));
  assert.deepEqual(bundleOwner(`/var/lib/containers/storage/overlay-containers/${ID}/userdata`, libpod, ID), { runtime: 'podman', id: ID });
  const crio = parseOciSpec(JSON.stringify({ annotations: { 'io.kubernetes.cri-o.Name': 'x' } }));
  assert.deepEqual(bundleOwner(`/run/containers/storage/overlay-containers/${ID}/userdata`, crio, ID)?.runtime, 'cri-o');
  assert.equal(bundleOwner('/tmp/mybundle', none, 'x'), undefined);
});

test("containerd's CRI annotations give the pod identity; sandboxes are recognised", () => {
  const spec = parseOciSpec(JSON.stringify({
    annotations: {
      'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.container-name': 'web',
      'io.kubernetes.cri.sandbox-name': 'web-7d9f', 'io.kubernetes.cri.sandbox-namespace': 'shop', 'io.kubernetes.cri.sandbox-uid': 'u-1',
    },
  }));
  const k8s = k8sIdentityFromLabels(labelsFromAnnotations(spec.annotations));
  assert.equal(k8s?.podName, 'web-7d9f');
  assert.equal(k8s?.namespace, 'shop');
  assert.equal(k8s?.podUid, 'u-1');
  assert.equal(k8s?.containerName, 'web');
  assert.equal(isSandbox(spec), false);
  assert.equal(isSandbox(parseOciSpec(JSON.stringify({ annotations: { 'io.kubernetes.cri.container-type': 'sandbox' } }))), true);
});

test('container names: ctr labels copied into annotations, conmon -n, docker config.v2.json', () => {
  const ctr = containerFromHook({
    create: { verb: 'create', bundle: '/run/containerd/io.containerd.runtime.v2.task/default/c1', pidFile: '/x/init.pid', id: 'c1' },
    spec: parseOciSpec(JSON.stringify({ annotations: { 'io.kubernetes.container.name': 'nginx', foo: 'bar' } })),
    pid: 42,
    readerArgv: [],
  });
  assert.deepEqual(ctr, { runtime: 'containerd', id: 'c1', name: 'nginx', image: '', labels: { 'io.kubernetes.container.name': 'nginx', foo: 'bar' }, pid: 42, runtimeNamespace: 'default' });
  const podman = containerFromHook({
    create: { verb: 'create', bundle: `/var/lib/containers/storage/overlay-containers/${ID}/userdata`, pidFile: '/x/pidfile', id: ID },
    spec: parseOciSpec(JSON.stringify({ annotations: { 'io.container.manager': 'libpod' } })),
    pid: 43,
    readerArgv: ['/usr/bin/conmon', '--api-version', '1', '-c', ID, '-n', 'web1', '-b', '/b'],
  });
  assert.equal(podman?.name, 'web1');
  assert.equal(podman?.runtime, 'podman');
  assert.equal(conmonName(['/usr/bin/podman', '-n', 'x']), undefined);
  assert.deepEqual(parseDockerConfigV2(JSON.stringify({ Name: '/test-trace-sni', Config: { Image: 'busybox', Labels: { a: 'b' } } })), { name: 'test-trace-sni', image: 'busybox', labels: { a: 'b' } });
});

test('pid files: one decimal pid, with or without a newline', () => {
  assert.equal(parsePidFile('15563'), 15563);
  assert.equal(parsePidFile('15563\n'), 15563);
  assert.equal(parsePidFile(''), undefined);
  assert.equal(parsePidFile('0'), undefined);
  assert.equal(parsePidFile('12ab'), undefined);
  assert.equal(parsePidFile('99999999999'), undefined);
});

test("the spec's process (args, PATH and LD_LIBRARY_PATH of its env, cwd) becomes the container's entry: its first program, for probes before it runs", () => {
  const spec = parseOciSpec(JSON.stringify({ process: { args: ['/app/tlsget', 'x'], env: ['PATH=/bin', 'API_TOKEN=s3cret', 'LD_LIBRARY_PATH=/opt/tls/lib', 7], cwd: '/srv' } }));
  assert.deepEqual(spec.process, { args: ['/app/tlsget', 'x'], env: ['PATH=/bin', 'LD_LIBRARY_PATH=/opt/tls/lib'], cwd: '/srv' });
  assert.equal(parseOciSpec(JSON.stringify({ process: { args: [] } })).process, undefined, 'no program, no entry');
  assert.deepEqual(parseOciSpec(JSON.stringify({ process: { args: ['sh'] } })).process, { args: ['sh'], env: [], cwd: '/' });
  const c = containerFromHook({
    create: { verb: 'create', bundle: '/run/containerd/io.containerd.runtime.v2.task/default/c2', pidFile: '/x/init.pid', id: 'c2' },
    spec,
    pid: 44,
    readerArgv: [],
  });
  assert.deepEqual(c?.entry, spec.process);
});
