// SPDX-License-Identifier: Apache-2.0
// The seeds' walkthrough for `trace tls -c NAME` and `capture -c NAME`: containers whose first
// and only act is one HTTPS request (`docker|podman run --rm`, `ctr run --rm --cni`), one after
// the other, while both run with every container's name in -c. Each container's request is
// traced with its plaintext (`GET /first-act-<i>`) under its name, and the capture holds, in
// that container's own interface, the SYN and the ClientHello (SNI) of its connection. The
// container start hook makes this possible: the packet socket and the probes on the image's
// libssl are in place before the container's first instruction.
// The same for pods through containerd's CRI plugin as kubelet makes them (sandbox on the CNI
// bridge, app container with kubelet's labels), with --k8s-podname NAME instead of -c.
// A `trace tls --host` beside them writes none of the containers' (pods') requests, while it
// does have a request a host curl makes (its positive marker). Only the writes are checked: the
// test's TLS server is a host process, and what it reads is the host's.
//
// 30 containers per runtime, 30 pods (TLSCOPE_START_RUNS for more). Cost: ~40-90 s per
// runtime, ~35 s for the pods.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { notRoot } from '../../helpers/root.js';
import { ensureRuntimes, runtimeSkipReason, TestContainers, uniqueName, type RuntimeEnvironment, type TestContainer, type TestRuntime } from '../../helpers/runtimes.js';
import { removeTestCertificate, startTlsServer, testName, type TestTlsServer } from '../sni/helpers.js';
import { CliTracer, dataOf, type TlsJson } from '../tls/helpers.js';
import { Capture, tsharkFields, waitUntil } from '../capture/helpers.js';
import { gatewayOf, runOnce, runsPerRuntime } from './helpers.js';

const RUNS = runsPerRuntime(30);

let env: RuntimeEnvironment;
let containers: TestContainers;
let server: TestTlsServer;
let work: string;
const stops: (() => Promise<unknown>)[] = [];

const anyRuntime = (['docker', 'containerd', 'podman'] as const).some((r) => runtimeSkipReason(r) === false);

before(async () => {
  if (notRoot || !anyRuntime) return;
  env = await ensureRuntimes();
  containers = new TestContainers(env);
  server = await startTlsServer('0.0.0.0');
  work = mkdtempSync(join(tmpdir(), 'tlscope-first-act-'));
});

after(async () => {
  for (const s of stops) await s().catch(() => undefined);
  await server?.close();
  removeTestCertificate();
  await containers?.cleanup();
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

function curl(sni: string, gateway: string, path: string): string[] {
  return ['curl', '-sk', '--http1.1', '--max-time', '10', '--resolve', `${sni}:${server.port}:${gateway}`, `https://${sni}:${server.port}${path}`];
}


/** `trace tls --host`, ready: started beside a row's tracers. */
async function hostTracer(): Promise<CliTracer> {
  const t = new CliTracer(['--host', '--timeout', '900']);
  stops.push(() => t.stop());
  await t.ready();
  return t;
}

/**
 * The --host tracer's positive marker (a host curl's request is traced), then its count of the
 * row's requests written, which must be none.
 */
async function hostWrites(t: CliTracer, paths: readonly string[], label: string, diagnostic: (msg: string) => void): Promise<string[]> {
  await waitUntil('trace tls --host traced a host request', async () => {
    const path = `/host-${process.pid}-${Date.now()}`;
    await new Promise<void>((resolve) => execFile('curl', curl(testName('host'), '127.0.0.1', path), { timeout: 15_000 }, () => resolve()));
    await new Promise((r) => setTimeout(r, 300));
    return t.events.some((e) => e.direction === 'write' && dataOf(e).includes(`GET ${path} HTTP/1.1`));
  }, 60_000);
  const shown = paths.filter((p) => t.events.some((e) => e.direction === 'write' && dataOf(e).includes(`GET ${p} HTTP/1.1`)));
  diagnostic(`${label}: trace tls --host wrote ${shown.length}/${paths.length} of the requests (must be 0)`);
  for (const p of shown) diagnostic(`${label}: --host traced ${p}: ${JSON.stringify(t.events.filter((e) => dataOf(e).includes(p)).map((e) => ({ c: e.runtime?.containerName, pid: e.proc.pid, comm: e.proc.comm, d: e.direction })))}`);
  const r = await t.stop();
  assert.equal(r.code, 0, r.stderr);
  return shown;
}

async function firstAct(runtime: TestRuntime, diagnostic: (msg: string) => void): Promise<void> {
  const warmName = uniqueName('gate-tw');
  const names = Array.from({ length: RUNS }, (_, i) => uniqueName(`gate-t${runtime[0]}${i}`));
  const scope = ['-r', runtime, '-c', [warmName, ...names].join(',')];
  const tls = new CliTracer([...scope, '--timeout', '900']);
  stops.push(() => tls.stop());
  const file = join(work, `${runtime}.pcapng`);
  const cap = new Capture([...scope, '-v', '-w', file, '--timeout', '900', 'tcp']);
  stops.push(() => cap.stop());
  const warm = await containers.run(runtime, { name: warmName, ...(runtime === 'containerd' ? { cni: true } : {}) });
  const gateway = await gatewayOf(containers, warm);
  await tls.ready();
  const host = await hostTracer();
  await cap.listening(1, 60_000);
  // the warm container's requests show up: both are attached to it
  await waitUntil('a warm-up request traced', async () => {
    const path = `/warm-${Date.now()}`;
    await containers.exec(warm, curl(testName('warm'), gateway, path)).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    return tls.events.some((e) => dataOf(e).includes(path));
  }, 60_000);

  const sni = names.map((_, i) => testName(`fa-${runtime}-${i}`));
  const paths = names.map((_, i) => `/first-act-${process.pid}-${runtime}-${i}`);
  const failedRuns: string[] = [];
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await runOnce(env, runtime, names[i]!, curl(sni[i]!, gateway, paths[i]!));
    ms.push(r.ms);
    if (r.code !== 0 || r.stdout !== 'ok') failedRuns.push(`${names[i]}: exit ${r.code} ${r.stderr.trim()}`);
  }
  assert.deepEqual(failedRuns, [], 'every container made its request');
  ms.sort((a, b) => a - b);
  diagnostic(`${runtime}: one run takes ${Math.round(ms[Math.floor(ms.length / 2)]!)} ms (median), ${Math.round(ms.at(-1)!)} ms at most`);
  // a last request from the warm container: once it is traced, every earlier one is
  const last = `/last-${process.pid}`;
  await containers.exec(warm, curl(testName('last'), gateway, last));
  await waitUntil('the last request', () => tls.events.some((e) => dataOf(e).includes(last)), 30_000);
  const hostShown = await hostWrites(host, paths, runtime, diagnostic);

  const tlsMissed = names.filter((n, i) => !tls.events.some((e) => e.runtime?.containerName === n && e.direction === 'write' && dataOf(e).includes(`GET ${paths[i]} HTTP/1.1`)));
  for (const n of tlsMissed) {
    const i = names.indexOf(n);
    diagnostic(`${runtime}: trace tls missed ${n}; events with its path: ${JSON.stringify(tls.events.filter((e) => dataOf(e).includes(paths[i]!)).map((e) => ({ c: e.runtime?.containerName, pid: e.proc.pid, d: e.direction })))}`);
  }

  await new Promise((r) => setTimeout(r, 500));
  const capResult = await cap.stop();
  assert.equal(capResult.code, 0, capResult.stderr);
  const rows = await tsharkFields(file, ['frame.interface_description', 'tcp.stream', 'tcp.flags.syn', 'tcp.flags.ack', 'tls.handshake.type', 'tls.handshake.extensions_server_name'], 'tcp.flags.syn == 1 || tls.handshake.type == 1', ['-o', 'tls.desegment_ssl_records:TRUE']);
  const capMissed: string[] = [];
  for (let i = 0; i < RUNS; i++) {
    const hello = rows.find((r) => r[5] === sni[i] && (r[0] ?? '').startsWith(`${names[i]} `));
    const syn = hello === undefined ? undefined : rows.find((r) => r[1] === hello[1] && r[0] === hello[0] && r[2] === '1' && r[3] === '0');
    if (hello === undefined || syn === undefined) {
      capMissed.push(names[i]!);
      diagnostic(`${runtime}: capture missed ${names[i]}: ${hello === undefined ? 'no ClientHello in its interface' : 'no SYN'}; rows with its name: ${JSON.stringify(rows.filter((r) => r[5] === sni[i]))}`);
    }
  }
  if (capMissed.length > 0) diagnostic(`${runtime}: capture's stderr: ${capResult.stderr}`);
  diagnostic(`${runtime}: trace tls -c ${RUNS - tlsMissed.length}/${RUNS} with the plaintext, capture -c ${RUNS - capMissed.length}/${RUNS} with SYN and ClientHello`);
  assert.deepEqual(tlsMissed, [], `${runtime}: trace tls -c NAME traced every request`);
  assert.deepEqual(capMissed, [], `${runtime}: capture -c NAME has every SYN and ClientHello`);
  assert.deepEqual(hostShown, [], `${runtime}: trace tls --host traced no container's request`);
  const r = await tls.stop();
  assert.equal(r.code, 0, r.stderr);
  await containers.remove(warm);
}

for (const runtime of ['docker', 'containerd', 'podman'] as const) {
  const skip = notRoot || runtimeSkipReason(runtime);
  test(`${runtime}: ${RUNS} containers in a row whose first act is a TLS request: trace tls -c NAME has each request's plaintext, capture -c NAME each SYN and ClientHello`, { skip, timeout: 30 * 60_000 }, async (t) => {
    await firstAct(runtime, (m) => t.diagnostic(m));
  });
}

/** trace tls events carry the pod's identity too (the shared TlsJson type names only runtime). */
type PodTlsJson = TlsJson & { k8s?: { namespace?: string; podName?: string; containerName?: string; podUid?: string } };

/**
 * One pod name, `RUNS` pods in a row (a StatefulSet pod made again: same name, a new uid each
 * time), since --k8s-podname takes one name; the warm pod has that name in another namespace.
 */
async function firstActPods(diagnostic: (msg: string) => void): Promise<void> {
  const podName = uniqueName('fa-tpod');
  const namespace = `fat-${process.pid}`;
  const uid = (i: number | 'warm'): string => `f1a6${(process.pid % 0x10000).toString(16).padStart(4, '0')}-0000-4000-8000-${(i === 'warm' ? 0xfff : i).toString(16).padStart(12, '0')}`;
  const scope = ['--k8s-podname', podName];
  const tls = new CliTracer([...scope, '--timeout', '900']);
  stops.push(() => tls.stop());
  const file = join(work, 'cri.pcapng');
  const cap = new Capture([...scope, '-v', '-w', file, '--timeout', '900', 'tcp']);
  stops.push(() => cap.stop());
  const warmPod = await containers.runPod({ namespace: `${namespace}-warm`, name: podName, uid: uid('warm') }, [{ name: 'app' }]);
  const warm: TestContainer = { runtime: 'containerd', name: warmPod.containerIds[0]!, id: warmPod.containerIds[0]!, pid: warmPod.pids[0]!, namespace: 'k8s.io' };
  const gateway = await gatewayOf(containers, warm);
  await tls.ready();
  const host = await hostTracer();
  await cap.listening(1, 60_000);
  await waitUntil('a warm-up request traced', async () => {
    const path = `/warm-${Date.now()}`;
    await containers.exec(warm, curl(testName('warm'), gateway, path)).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    return tls.events.some((e) => dataOf(e).includes(path));
  }, 60_000);

  const sni = Array.from({ length: RUNS }, (_, i) => testName(`fa-pod-${i}`));
  const paths = sni.map((_, i) => `/first-act-${process.pid}-pod-${i}`);
  const failedRuns: string[] = [];
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const pod = await containers.runPod({ namespace, name: podName, uid: uid(i) }, [{ name: 'app', command: curl(sni[i]!, gateway, paths[i]!) }]);
    const r = await containers.podContainerExit(pod.sandboxId, pod.containerIds[0]!);
    await containers.removePod(pod.sandboxId);
    ms.push(performance.now() - t0);
    if (r.exitCode !== 0 || r.stdout.trim() !== 'ok') failedRuns.push(`pod ${i}: exit ${r.exitCode} ${JSON.stringify(r.stdout)}`);
  }
  assert.deepEqual(failedRuns, [], 'every pod made its request');
  ms.sort((a, b) => a - b);
  diagnostic(`cri: one pod (run, exit, remove) takes ${Math.round(ms[Math.floor(ms.length / 2)]!)} ms (median), ${Math.round(ms.at(-1)!)} ms at most`);
  const last = `/last-${process.pid}-pod`;
  await containers.exec(warm, curl(testName('last'), gateway, last));
  await waitUntil('the last request', () => tls.events.some((e) => dataOf(e).includes(last)), 30_000);
  const hostShown = await hostWrites(host, paths, 'cri', diagnostic);

  const events = tls.events as PodTlsJson[];
  const ofPod = (e: PodTlsJson, i: number): boolean => e.k8s?.podName === podName && e.k8s.namespace === namespace && e.k8s.containerName === 'app' && e.k8s.podUid === uid(i);
  const tlsMissed: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    if (events.some((e) => ofPod(e, i) && e.direction === 'write' && dataOf(e).includes(`GET ${paths[i]} HTTP/1.1`))) continue;
    tlsMissed.push(i);
    diagnostic(`cri: trace tls missed pod ${i}; events with its path: ${JSON.stringify(events.filter((e) => dataOf(e).includes(paths[i]!)).map((e) => ({ k8s: e.k8s, pid: e.proc.pid, d: e.direction })))}`);
  }

  await new Promise((r) => setTimeout(r, 500));
  const capResult = await cap.stop();
  assert.equal(capResult.code, 0, capResult.stderr);
  const rows = await tsharkFields(file, ['frame.interface_description', 'tcp.stream', 'tcp.flags.syn', 'tcp.flags.ack', 'tls.handshake.type', 'tls.handshake.extensions_server_name'], 'tcp.flags.syn == 1 || tls.handshake.type == 1', ['-o', 'tls.desegment_ssl_records:TRUE']);
  // every run's pod has the same name, so the same description; the SNI tells the runs apart
  const description = `pod ${namespace}/${podName} `;
  const capMissed: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const hello = rows.find((r) => r[5] === sni[i] && (r[0] ?? '').startsWith(description));
    const syn = hello === undefined ? undefined : rows.find((r) => r[1] === hello[1] && r[0] === hello[0] && r[2] === '1' && r[3] === '0');
    if (hello === undefined || syn === undefined) {
      capMissed.push(i);
      diagnostic(`cri: capture missed pod ${i}: ${hello === undefined ? 'no ClientHello in its interface' : 'no SYN'}; rows with its name: ${JSON.stringify(rows.filter((r) => r[5] === sni[i]))}`);
    }
  }
  if (capMissed.length > 0) diagnostic(`cri: capture's stderr: ${capResult.stderr}`);
  diagnostic(`cri: trace tls --k8s-podname ${RUNS - tlsMissed.length}/${RUNS} with the plaintext, capture --k8s-podname ${RUNS - capMissed.length}/${RUNS} with SYN and ClientHello`);
  assert.deepEqual(tlsMissed, [], 'cri: trace tls --k8s-podname NAME traced every request');
  assert.deepEqual(capMissed, [], 'cri: capture --k8s-podname NAME has every SYN and ClientHello');
  assert.deepEqual(hostShown, [], "cri: trace tls --host traced no pod's request");
  const r = await tls.stop();
  assert.equal(r.code, 0, r.stderr);
  await containers.removePod(warmPod.sandboxId);
}

test(`cri: ${RUNS} pods in a row (containerd's CRI plugin, kubelet's labels, CNI) whose app's first act is a TLS request: trace tls --k8s-podname NAME has each request's plaintext, capture --k8s-podname NAME each SYN and ClientHello`, { skip: notRoot || runtimeSkipReason('containerd'), timeout: 30 * 60_000 }, async (t) => {
  if (!env.criReady) {
    t.skip('containerd answers, but its CRI plugin does not (CRI Version failed)');
    return;
  }
  await firstActPods((m) => t.diagnostic(m));
});
