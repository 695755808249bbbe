// SPDX-License-Identifier: Apache-2.0
// `tlscope trace sni` (the real CLI) with containers: curl inside a docker container talking to
// a TLS server on the host (through the docker0 gateway) is reported with its container's name
// and nothing from the host is; a real CRI pod (containerd's CRI plugin, as kubelet makes it:
// a sandbox and two containers sharing its network namespace on the CNI bridge) is reported
// per container with its pod's namespace and name, and --k8s-podname selects it; a container
// started while tracing is picked up; a container that exits mid-trace causes no error.
//
// The client's pid is known exactly by making curl the container's first process: the
// container starts a shell that waits for /tmp/go and then execs curl (same pid). The server
// answers `slow-…` names after 2 s, so the container lives on while its event is enriched.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.sni);
import { CNI_NETWORK, ensureRuntimes, runtimeSkipReason, TestContainers, uniqueName, type TestContainer } from '../../helpers/runtimes.js';
import { Tracer, removeTestCertificate, runProcess, sh, sleep, startTlsServer, testName, tracerComplaints, waitUntil, type SniJson, type TestTlsServer } from './helpers.js';


const skipDocker = kernelSkip || runtimeSkipReason('docker');
const skipContainerd = kernelSkip || runtimeSkipReason('containerd');
const DOCKER_GATEWAY = '172.17.0.1';

let containers: TestContainers;
let server: TestTlsServer;
let criReady = false;
const tracers: Tracer[] = [];

before(async () => {
  if (skipDocker !== false && skipContainerd !== false) return;
  const env = await ensureRuntimes();
  containers = new TestContainers(env);
  // Containers reach the host through their bridge's gateway: listen on every address (the
  // port is random and the server lives only for this file).
  server = await startTlsServer('0.0.0.0');
  criReady = env.criReady;
});

after(async () => {
  for (const t of tracers) await t.stop();
  await server?.close();
  removeTestCertificate();
  await containers?.cleanup();
});

function tracer(args: string[]): Tracer {
  const t = new Tracer([...args, '--timeout', '300']);
  tracers.push(t);
  return t;
}

function curlArgs(name: string, gateway: string): string[] {
  return ['curl', '-sk', '--http1.1', '--max-time', '10', '--resolve', `${name}:${server.port}:${gateway}`, `https://${name}:${server.port}/`];
}

/** A container whose first process waits for /tmp/go, then becomes curl to `name`. */
function waitThenCurl(name: string, gateway: string): string[] {
  return ['sh', '-c', `until [ -e /tmp/go ]; do sleep 0.1; done; exec ${curlArgs(name, gateway).join(' ')}`];
}

async function gatewayOf(bridge: string): Promise<string> {
  const out = await sh('ip', ['-4', '-o', 'addr', 'show', 'dev', bridge]);
  const m = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(out);
  if (m === null) throw new Error(`no IPv4 address on ${bridge}: ${out}`);
  return m[1]!;
}

/** The gateway of the CNI bridge pods are on: it has its address once a container is on it. */
async function gatewayOfCniBridge(): Promise<string> {
  assert.ok(criReady, "containerd's CRI plugin answers (it is enabled in Debian's default config)");
  const probe = await containers.run('containerd', { name: uniqueName('tlscope-sni'), cni: true });
  try {
    return await gatewayOf(CNI_NETWORK.bridge);
  } finally {
    await containers.remove(probe);
  }
}

/** A pod's containers (from runPod), as TestContainers for exec (CRI containers live in containerd's k8s.io namespace). */
function criContainers(p: { containerIds: readonly string[]; pids: readonly number[] }): [TestContainer, ...TestContainer[]] {
  const all = p.containerIds.map((id, i): TestContainer => ({ runtime: 'containerd', name: id, id, pid: p.pids[i]!, namespace: 'k8s.io' }));
  assert.ok(all.length > 0 && all.every((c) => c.pid > 0), JSON.stringify(p));
  return all as [TestContainer, ...TestContainer[]];
}

function assertContainerEvent(e: SniJson, c: TestContainer, want: { name: string; gateway: string; runtime: string; containerName?: string }): void {
  assert.equal(e.name, want.name);
  assert.equal(e.proc.pid, c.pid, 'the container’s first process, which exec’d curl');
  assert.equal(e.proc.tid, c.pid);
  assert.equal(e.proc.comm, 'curl');
  assert.equal(e.alpn, 'http/1.1');
  assert.equal(e.tlsVersion, 'TLS1.3');
  assert.equal(e.dst, `${want.gateway}:${server.port}`);
  assert.equal(e.direction, 'out');
  assert.equal(e.runtime?.runtimeName, want.runtime);
  assert.equal(e.runtime?.containerName, want.containerName ?? c.name);
}

test('docker: -r docker -c NAME reports curl inside that container, with its name, and nothing from the host', { skip: skipDocker }, async () => {
  const name = testName('slow-docker');
  const c = await containers.run('docker', { name: uniqueName('tlscope-sni'), command: waitThenCurl(name, DOCKER_GATEWAY) });
  const t = tracer(['-r', 'docker', '-c', c.name]);
  await t.ready(async (warm) => {
    await containers.exec(c, curlArgs(warm, DOCKER_GATEWAY));
  });
  // the host is out of scope
  const hostName = testName('host');
  const host = await runProcess('curl', ['-sk', '--http1.1', '--resolve', `${hostName}:${server.port}:127.0.0.1`, `https://${hostName}:${server.port}/`]);
  assert.equal(host.code, 0, host.stderr);

  await containers.exec(c, ['touch', '/tmp/go']);
  const [e] = await t.waitForName(name);
  assertContainerEvent(e!, c, { name, gateway: DOCKER_GATEWAY, runtime: 'docker' });
  assert.ok(e!.src.startsWith('172.17.'), e!.src);
  assert.match(e!.runtime?.containerId ?? '', /^[0-9a-f]{64}$/);
  assert.ok(server.seen.includes(name));
  // the container's hello is the marker: sent after the host's curl had finished, so any event of that one is out already
  assert.deepEqual(t.byName(hostName), [], 'the host is not in scope');
  const r = await t.stop();
  assert.equal(r.code, 0, r.stderr);
  // stop() returns once the tracer has printed what its ring held and exited: every copy of the hello is in
  assert.equal(t.byName(name).length, 1);
  assert.ok(t.events.every((ev) => ev.runtime?.containerName === c.name), 'every event is from the container');
});

test('a CRI pod of two containers sharing its network namespace: --k8s-podname/--k8s-namespace report each hello with its own container and the pod, nothing from the host', { skip: skipContainerd }, async () => {
  const pod = { namespace: `sni-${process.pid}`, name: uniqueName('sni-pod'), uid: randomUUID() };
  const name = testName('slow-pod');
  const sideName = testName('sidecar');
  // CRI pods are on the CNI bridge, whose gateway is the host (the server listens on every address)
  const gateway = await gatewayOfCniBridge();
  const p = await containers.runPod(pod, [{ name: 'client', command: waitThenCurl(name, gateway) }, { name: 'sidecar' }]);
  const [client, sidecar] = criContainers(p);
  assert.ok(sidecar !== undefined);
  // the premise: both containers are in the pod's one network namespace, with separate mount namespaces
  assert.equal(readlinkSync(`/proc/${client.pid}/ns/net`), readlinkSync(`/proc/${sidecar.pid}/ns/net`));
  assert.notEqual(readlinkSync(`/proc/${client.pid}/ns/mnt`), readlinkSync(`/proc/${sidecar.pid}/ns/mnt`));
  assert.notEqual(readlinkSync(`/proc/${client.pid}/ns/net`), readlinkSync('/proc/self/ns/net'));
  const t = tracer(['--k8s-namespace', pod.namespace, '--k8s-podname', pod.name]);
  await t.ready(async (warm) => {
    await containers.exec(sidecar, curlArgs(warm, gateway));
  });
  const hostName = testName('host');
  const host = await runProcess('curl', ['-sk', '--http1.1', '--resolve', `${hostName}:${server.port}:127.0.0.1`, `https://${hostName}:${server.port}/`]);
  assert.equal(host.code, 0, host.stderr);
  // the sibling's hello, from the same network namespace
  await containers.exec(sidecar, curlArgs(sideName, gateway));
  const [s] = await t.waitForName(sideName);
  assert.equal(s!.proc.comm, 'curl');
  assert.equal(s!.runtime?.containerName, 'sidecar');
  assert.deepEqual(s!.k8s, { namespace: pod.namespace, podName: pod.name, containerName: 'sidecar', podUid: pod.uid });

  await containers.exec(client, ['touch', '/tmp/go']);
  const [e] = await t.waitForName(name);
  // containerd names a CRI container by its name in the pod (src/containers/README.md)
  assertContainerEvent(e!, client, { name, gateway, runtime: 'containerd', containerName: 'client' });
  assert.ok(e!.src.startsWith('10.222.'), e!.src);
  assert.equal(e!.runtime?.containerId, p.containerIds[0]);
  assert.deepEqual(e!.k8s, { namespace: pod.namespace, podName: pod.name, containerName: 'client', podUid: pod.uid });
  // the client's hello is the marker: sent after the host's curl had finished
  assert.deepEqual(t.byName(hostName), [], 'the host is not in scope');
  const r = await t.stop();
  assert.equal(r.code, 0, r.stderr);
  assert.equal(t.byName(name).length, 1);
  assert.equal(t.byName(sideName).length, 1);
  assert.ok(t.events.every((ev) => ev.k8s?.podName === pod.name && ev.k8s.namespace === pod.namespace), 'every event is from the pod');
  await containers.removePod(p.sandboxId);
});

test('a CRI pod: --k8s-podname of another pod in the same namespace leaves this pod out', { skip: skipContainerd }, async () => {
  const namespace = `sni-${process.pid}`;
  const gateway = await gatewayOfCniBridge();
  const a = await containers.runPod({ namespace, name: uniqueName('sni-a'), uid: randomUUID() }, [{ name: 'client' }]);
  const bPod = { namespace, name: uniqueName('sni-b'), uid: randomUUID() };
  const b = await containers.runPod(bPod, [{ name: 'client' }]);
  const [inA] = criContainers(a);
  const [inB] = criContainers(b);
  const t = tracer(['--k8s-namespace', namespace, '--k8s-podname', bPod.name]);
  await t.ready(async (warm) => {
    await containers.exec(inB, curlArgs(warm, gateway));
  });
  const aName = testName('pod-a');
  await containers.exec(inA, curlArgs(aName, gateway));
  const bName = testName('pod-b');
  await containers.exec(inB, curlArgs(bName, gateway));
  const [e] = await t.waitForName(bName);
  assert.equal(e!.k8s?.podName, bPod.name);
  assert.deepEqual(t.byName(aName), [], 'the other pod is not in scope');
  const r = await t.stop();
  assert.equal(r.code, 0, r.stderr);
  await containers.removePod(a.sandboxId);
  await containers.removePod(b.sandboxId);
});

test('docker: a container started while tracing is picked up', { skip: skipDocker }, async () => {
  const cname = uniqueName('tlscope-sni');
  const t = tracer(['-r', 'docker', '-c', cname]);
  await waitUntil('the tracer waits for the container', () => /waiting for container/.test(t.stderr), 60_000);
  const c = await containers.run('docker', { name: cname });
  // The first handshakes may come before the container's namespace is watched: repeat.
  const deadline = Date.now() + 60_000;
  const tried: string[] = [];
  const firstSeen = (): SniJson | undefined => tried.map((n) => t.byName(n)[0]).find((e) => e !== undefined);
  let seen: SniJson | undefined;
  while (seen === undefined && Date.now() < deadline) {
    const name = testName('late');
    tried.push(name);
    await containers.exec(c, curlArgs(name, DOCKER_GATEWAY));
    await sleep(300);
    seen = firstSeen(); // a late event for an earlier try counts too
  }
  assert.ok(seen !== undefined, `no event from the container started while tracing: ${t.stderr}`);
  assert.equal(seen.runtime?.containerName, cname);
  assert.equal(seen.runtime?.runtimeName, 'docker');
  assert.equal(seen.proc.comm, 'curl');
  const r = await t.stop();
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /never appeared/);
  await containers.remove(c);
});

test('docker: a container that exits mid-trace causes no error, and tracing goes on', { skip: skipDocker }, async () => {
  const stays = await containers.run('docker', { name: uniqueName('tlscope-sni') });
  const goes = await containers.run('docker', { name: uniqueName('tlscope-sni'), command: ['sh', '-c', 'until [ -e /tmp/go ]; do sleep 0.1; done; exit 0'] });
  const t = tracer(['-r', 'docker', '-c', `${stays.name},${goes.name}`]);
  await t.ready(async (warm) => {
    await containers.exec(goes, curlArgs(warm, DOCKER_GATEWAY));
  });
  await containers.exec(goes, ['touch', '/tmp/go']);
  await waitUntil('the container to exit', () => {
    try {
      return process.kill(goes.pid, 0) && false;
    } catch {
      return true;
    }
  }, 30_000);
  await sleep(1500); // the index learns of the exit and the namespace's socket is closed
  const name = testName('after-exit');
  await containers.exec(stays, curlArgs(name, DOCKER_GATEWAY));
  const [e] = await t.waitForName(name);
  assert.equal(e!.runtime?.containerName, stays.name);
  await containers.remove(goes);
  await sleep(300);
  const r = await t.stop();
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(tracerComplaints(r.stderr), []);
  await containers.remove(stays);
});
