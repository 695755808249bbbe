// SPDX-License-Identifier: Apache-2.0
// The seeds' walkthrough, many times over: `docker run --rm --name N IMAGE <TLS request>` (and
// podman's, and `ctr run --rm --cni`) while `tlscope trace sni -r RT -c N…` runs. Each
// container's first and only act is the request; it exits right after the answer. With the
// container start hook, every one is reported with its name — by the filtered tracer, and by
// an unfiltered one running beside it (which must not call any of them the host's), and a
// `--host` one shows none of them (while it does show a hello this process sends).
// The same for pods through containerd's CRI plugin, as kubelet makes them (RunPodSandbox on
// the CNI bridge, CreateContainer + StartContainer with kubelet's labels): the pod's app
// container's first act is the request; `trace sni --k8s-podname NAME` reports each.
//
// 30 containers per runtime (TLSCOPE_START_RUNS=100 for the soak, see bench/gate/soak.mjs),
// 30 pods. Cost here: about 30–45 s per runtime on the 2-core VMs, 30 s for the pods (0.7 s each:
// sandbox, container, exit, removal).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { notRoot } from '../../helpers/root.js';
import { ensureRuntimes, runtimeSkipReason, TestContainers, uniqueName, type RuntimeEnvironment, type TestContainer, type TestRuntime } from '../../helpers/runtimes.js';
import { nodeHandshake, Tracer, removeTestCertificate, startTlsServer, testName, tracerComplaints, type SniJson, type TestTlsServer } from '../sni/helpers.js';
import { gatewayOf, runOnce, runsPerRuntime } from './helpers.js';

const RUNS = runsPerRuntime(30);

let env: RuntimeEnvironment;
let containers: TestContainers;
let server: TestTlsServer;
const tracers: Tracer[] = [];

const anyRuntime = (['docker', 'containerd', 'podman'] as const).some((r) => runtimeSkipReason(r) === false);

before(async () => {
  if (notRoot || !anyRuntime) return;
  env = await ensureRuntimes();
  containers = new TestContainers(env);
  server = await startTlsServer('0.0.0.0');
});

after(async () => {
  for (const t of tracers) await t.stop();
  await server?.close();
  removeTestCertificate();
  await containers?.cleanup();
});

function tracer(args: string[]): Tracer {
  const t = new Tracer([...args, '--timeout', '900']);
  tracers.push(t);
  return t;
}

function curl(name: string, gateway: string): string[] {
  return ['curl', '-sk', '--http1.1', '--max-time', '10', '--resolve', `${name}:${server.port}:${gateway}`, `https://${name}:${server.port}/`];
}


/**
 * Was 3 (open defect). Cause found: the hook read runc's command line only after letting its
 * exec go, and marked the pid file's directory after that; on a loaded machine the worker
 * thread came too late, the pid file had been read unheld (race.test.ts reproduces it with a
 * delayed worker). runc's init exec is now held until the mark is in place.
 */
const MAX_MISSES = 0;

async function firstActRuns(runtime: TestRuntime, diagnostic: (msg: string) => void): Promise<void> {
  const warmName = uniqueName('gate-warm');
  const names = Array.from({ length: RUNS }, (_, i) => uniqueName(`gate-${runtime}-${i}`));
  const filtered = tracer(['-r', runtime, '-c', [warmName, ...names].join(',')]);
  const unfiltered = tracer([]);
  const host = tracer(['--host']);
  const warm = await containers.run(runtime, { name: warmName, ...(runtime === 'containerd' ? { cni: true } : {}) });
  const gateway = await gatewayOf(containers, warm);
  for (const t of [filtered, unfiltered]) {
    await t.ready(async (n) => {
      await containers.exec(warm, curl(n, gateway));
    });
  }
  await host.ready((n) => nodeHandshake('127.0.0.1', server.port, n));

  const sni = names.map((_, i) => testName(`first-${runtime}-${i}`));
  const failedRuns: string[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await runOnce(env, runtime, names[i]!, curl(sni[i]!, gateway));
    if (r.code !== 0 || r.stdout !== 'ok') failedRuns.push(`${names[i]}: exit ${r.code} ${r.stderr.trim()}`);
  }
  assert.deepEqual(failedRuns, [], 'every container made its request');
  // a last hello from the warm container: once it is out, every earlier one is
  for (const t of [filtered, unfiltered]) await t.marker((n) => containers.exec(warm, curl(n, gateway)));
  // the --host tracer's own positive marker: it does see a hello from the host
  await host.marker((n) => nodeHandshake('127.0.0.1', server.port, n));

  const missedFiltered = sni.filter((n, i) => !filtered.byName(n).some((e) => e.runtime?.containerName === names[i]));
  const missedUnfiltered = sni.filter((n, i) => !unfiltered.byName(n).some((e) => e.runtime?.containerName === names[i]));
  const asHost = sni.filter((n) => unfiltered.byName(n).some((e) => e.runtime?.containerName === undefined));
  const byHostTracer = sni.filter((n) => host.byName(n).length > 0);
  diagnostic(`${runtime}: ${RUNS - missedFiltered.length}/${RUNS} reported by -c, ${RUNS - missedUnfiltered.length}/${RUNS} named unfiltered, ${asHost.length} shown as the host, ${byHostTracer.length} shown by --host`);
  for (const n of byHostTracer) diagnostic(`${runtime}: --host showed ${n}: ${JSON.stringify(host.byName(n))}`);
  for (const n of missedFiltered) diagnostic(`${runtime}: missed by -c: ${n}; unfiltered saw it as ${JSON.stringify(unfiltered.byName(n).map((e) => e.runtime?.containerName ?? '(host)'))}`);
  // Every miss is printed above (with how the unfiltered tracer saw it) before this fails.
  assert.ok(missedFiltered.length <= MAX_MISSES, `${runtime}: trace sni -c NAME missed ${missedFiltered.length} of ${RUNS}: ${missedFiltered.join(' ')}`);
  assert.ok(missedUnfiltered.length <= MAX_MISSES, `${runtime}: unfiltered trace sni missed ${missedUnfiltered.length} of ${RUNS}: ${missedUnfiltered.join(' ')}`);
  assert.deepEqual(asHost, [], `${runtime}: no container hello is the host's`);
  assert.deepEqual(byHostTracer, [], `${runtime}: trace sni --host shows no container's hello`);
  for (const t of [filtered, unfiltered, host]) {
    const r = await t.stop();
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(tracerComplaints(r.stderr), []);
  }
  await containers.remove(warm);
}

for (const runtime of ['docker', 'containerd', 'podman'] as const) {
  const skip = notRoot || runtimeSkipReason(runtime);
  test(`${runtime}: ${RUNS} containers in a row whose first act is a TLS request are each reported by trace sni -c NAME and, named, by unfiltered trace sni; --host shows none`, { skip, timeout: 30 * 60_000 }, async (t) => {
    await firstActRuns(runtime, (m) => t.diagnostic(m));
  });
}

/**
 * One pod name, `RUNS` pods in a row (a StatefulSet pod deleted and made again: same name, a
 * new uid each time), since --k8s-podname takes one name; a warm pod of the same name in
 * another namespace keeps the filtered tracer's warm-up and marker in its scope. Each pod is
 * told apart by its uid (k8s.podUid).
 */
async function firstActPods(diagnostic: (msg: string) => void): Promise<void> {
  const podName = uniqueName('fa-pod');
  const namespace = `fa-${process.pid}`;
  const uid = (i: number | 'warm'): string => `f1a5${(process.pid % 0x10000).toString(16).padStart(4, '0')}-0000-4000-8000-${(i === 'warm' ? 0xfff : i).toString(16).padStart(12, '0')}`;
  const filtered = tracer(['--k8s-podname', podName]);
  const unfiltered = tracer([]);
  const host = tracer(['--host']);
  const warmPod = await containers.runPod({ namespace: `${namespace}-warm`, name: podName, uid: uid('warm') }, [{ name: 'app' }]);
  const warm: TestContainer = { runtime: 'containerd', name: warmPod.containerIds[0]!, id: warmPod.containerIds[0]!, pid: warmPod.pids[0]!, namespace: 'k8s.io' };
  const gateway = await gatewayOf(containers, warm);
  for (const t of [filtered, unfiltered]) {
    await t.ready(async (n) => {
      await containers.exec(warm, curl(n, gateway));
    });
  }
  await host.ready((n) => nodeHandshake('127.0.0.1', server.port, n));

  const sni = Array.from({ length: RUNS }, (_, i) => testName(`first-pod-${i}`));
  const failedRuns: string[] = [];
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const pod = await containers.runPod({ namespace, name: podName, uid: uid(i) }, [{ name: 'app', command: curl(sni[i]!, gateway) }]);
    const r = await containers.podContainerExit(pod.sandboxId, pod.containerIds[0]!);
    await containers.removePod(pod.sandboxId);
    ms.push(performance.now() - t0);
    if (r.exitCode !== 0 || r.stdout.trim() !== 'ok') failedRuns.push(`pod ${i}: exit ${r.exitCode} ${JSON.stringify(r.stdout)}`);
  }
  assert.deepEqual(failedRuns, [], 'every pod made its request');
  ms.sort((a, b) => a - b);
  diagnostic(`cri: one pod (run, exit, remove) takes ${Math.round(ms[Math.floor(ms.length / 2)]!)} ms (median), ${Math.round(ms.at(-1)!)} ms at most`);
  for (const t of [filtered, unfiltered]) await t.marker((n) => containers.exec(warm, curl(n, gateway)));
  await host.marker((n) => nodeHandshake('127.0.0.1', server.port, n));

  const named = (e: SniJson, i: number): boolean => e.k8s?.podName === podName && e.k8s.namespace === namespace && e.k8s.containerName === 'app' && e.k8s.podUid === uid(i) && e.runtime?.runtimeName === 'containerd';
  const missedFiltered = sni.filter((n, i) => !filtered.byName(n).some((e) => named(e, i)));
  const missedUnfiltered = sni.filter((n, i) => !unfiltered.byName(n).some((e) => named(e, i)));
  const asHost = sni.filter((n) => unfiltered.byName(n).some((e) => e.runtime?.containerName === undefined));
  const byHostTracer = sni.filter((n) => host.byName(n).length > 0);
  diagnostic(`cri: ${RUNS - missedFiltered.length}/${RUNS} reported by --k8s-podname, ${RUNS - missedUnfiltered.length}/${RUNS} named (namespace/pod/uid/container) unfiltered, ${asHost.length} shown as the host, ${byHostTracer.length} shown by --host`);
  for (const n of missedFiltered) diagnostic(`cri: missed by --k8s-podname: ${n}; unfiltered saw it as ${JSON.stringify(unfiltered.byName(n).map((e) => ({ r: e.runtime, k8s: e.k8s })))}`);
  for (const n of byHostTracer) diagnostic(`cri: --host showed ${n}: ${JSON.stringify(host.byName(n))}`);
  assert.ok(missedFiltered.length <= MAX_MISSES, `cri: trace sni --k8s-podname missed ${missedFiltered.length} of ${RUNS}: ${missedFiltered.join(' ')}`);
  assert.ok(missedUnfiltered.length <= MAX_MISSES, `cri: unfiltered trace sni missed ${missedUnfiltered.length} of ${RUNS}: ${missedUnfiltered.join(' ')}`);
  assert.deepEqual(asHost, [], 'cri: no pod hello is the host\'s');
  assert.deepEqual(byHostTracer, [], 'cri: trace sni --host shows no pod\'s hello');
  for (const t of [filtered, unfiltered, host]) {
    const r = await t.stop();
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(tracerComplaints(r.stderr), []);
  }
  await containers.removePod(warmPod.sandboxId);
}

test(`cri: ${RUNS} pods in a row (containerd's CRI plugin, kubelet's labels, CNI) whose app's first act is a TLS request are each reported by trace sni --k8s-podname NAME and, named, by unfiltered trace sni; --host shows none`, { skip: notRoot || runtimeSkipReason('containerd'), timeout: 30 * 60_000 }, async (t) => {
  if (!env.criReady) {
    t.skip('containerd answers, but its CRI plugin does not (CRI Version failed)');
    return;
  }
  await firstActPods((m) => t.diagnostic(m));
});
