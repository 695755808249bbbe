#!/usr/bin/env node
// Runs the compiled test suites with node's test runner: unit tests (no privileges) in
// parallel, then integration tests (root, real kernel and runtimes) one file at a time so
// they do not compete for the two cores and the shared daemons.
// Then the browser tests (the web UI in Debian's chromium, as root), also one file at a time.
// Then, as root, the kernels phase: the kTLS tests (test/kernels) in qemu guests of Debian's
// 6.1 and 6.12 kernels (scripts/kernel-matrix.sh --run test/kernels/guest.sh; about 4-6 min
// per kernel under TCG on 2 cores, downloads one kernel package each from apt).
// Then, as root, the cluster phase (test/cluster on a two-node cluster from scripts/cluster.sh).
// usage: node scripts/run-tests.mjs [unit|integration|browser|kernels|cluster] [name-filter]
// TLSCOPE_KERNELS="6.1 6.12" picks the kernels; TLSCOPE_KERNELS=none skips the phase.
import { readdirSync, statSync, existsSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const [which = 'all', filter] = process.argv.slice(2);

function find(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? find(p) : n.endsWith('.test.js') ? [p] : [];
  }).filter((p) => filter === undefined || p.includes(filter)).sort();
}

// A SIGTERM (a cancelled CI job) or SIGINT for this runner goes on to the test process, whose
// harness then removes its containers before it ends; the runner stops after it.
let current;
let stoppedBy;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    stoppedBy ??= sig;
    current?.kill(sig);
  });
}

let failed = false;
const totals = { pass: 0, fail: 0, skipped: 0, todo: 0, cancelled: 0 };
const tapDir = mkdtempSync(join(tmpdir(), 'tlscope-tap-'));
for (const [suite, concurrency] of [['unit', 2], ['integration', 1], ['browser', 1]]) {
  if (which !== 'all' && which !== suite) continue;
  if (stoppedBy !== undefined) break;
  const files = find(join(root, 'dist', 'test', suite));
  if (files.length === 0) continue;
  console.log(`\n# ${suite}: ${files.length} files`);
  if (suite === 'integration' && process.getuid?.() === 0) {
    // What test processes of an earlier run left behind when they were killed (containers,
    // network namespaces, private daemons): only theirs, and only once they are gone.
    const { sweepLeftovers, describeSweep } = await import(join(root, 'dist', 'test', 'helpers', 'leftovers.js'));
    const { STATE_DIR } = await import(join(root, 'dist', 'test', 'helpers', 'runtimes.js'));
    const said = describeSweep(await sweepLeftovers(STATE_DIR));
    if (said !== undefined) console.log(`# ${said}`);
  }
  const tap = join(tapDir, `${suite}.tap`);
  const status = await new Promise((resolve) => {
    current = spawn(process.execPath, [
      '--test', `--test-concurrency=${concurrency}`,
      '--test-reporter=spec', '--test-reporter-destination=stdout',
      '--test-reporter=tap', `--test-reporter-destination=${tap}`,
      ...files,
    ], { stdio: 'inherit', cwd: root });
    current.on('error', () => resolve(1));
    current.on('close', (code) => resolve(code ?? 1));
  });
  current = undefined;
  if (status !== 0) failed = true;
  const text = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
  for (const k of Object.keys(totals)) {
    const m = new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text);
    if (m) totals[k] += Number(m[1]);
  }
}
const kernels = (process.env.TLSCOPE_KERNELS ?? '6.1 6.12').split(/\s+/).filter((k) => k && k !== 'none');
if ((which === 'all' || which === 'kernels') && stoppedBy === undefined && kernels.length > 0) {
  const out = join(tapDir, 'kernels');
  console.log(`\n# kernels: ${kernels.join(', ')} under qemu (test/kernels)`);
  if (process.getuid?.() !== 0) {
    console.log('# kernels: skipped: needs root (it boots qemu guests that load BPF)');
  } else {
    const status = await new Promise((resolve) => {
      current = spawn('bash', [join(root, 'scripts', 'kernel-matrix.sh'), '--run', join(root, 'test', 'kernels', 'guest.sh'), '--out', out, ...kernels], { stdio: 'inherit', cwd: root });
      current.on('error', () => resolve(1));
      current.on('close', (code) => resolve(code ?? 1));
    });
    current = undefined;
    if (status !== 0) failed = true;
    for (const k of existsSync(out) ? readdirSync(out) : []) {
      const tap = join(out, k, 'kernels.tap');
      const text = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
      if (text === '') failed = true;
      for (const key of Object.keys(totals)) {
        const m = new RegExp(`^# ${key} (\\d+)$`, 'm').exec(text);
        if (m) totals[key] += Number(m[1]);
      }
    }
  }
}
// ---- cluster phase (test/cluster): a real Kubernetes cluster from scripts/cluster.sh ----
// Builds it the first time (Kubernetes and etcd from the Go module proxy: about 25-35 min on
// 2 cores, cached in /var/cache/tlscope-cluster), starts it (about 1 min), runs the cluster
// tests against it, takes it down. TLSCOPE_CLUSTER=none skips the phase; =keep leaves it up.
const clusterMode = process.env.TLSCOPE_CLUSTER ?? 'up';
if ((which === 'all' || which === 'cluster') && stoppedBy === undefined && clusterMode !== 'none') {
  const files = find(join(root, 'dist', 'test', 'cluster'));
  console.log(`\n# cluster: ${files.length} files on a two-node cluster (scripts/cluster.sh)`);
  if (process.getuid?.() !== 0) {
    console.log('# cluster: skipped: needs root (it starts kubelets, containerd and BPF agents)');
  } else if (files.length > 0) {
    const runScript = (args) => new Promise((resolve) => {
      current = spawn('bash', [join(root, 'scripts', 'cluster.sh'), ...args], { stdio: ['ignore', 'inherit', 'inherit'], cwd: root });
      current.on('error', () => resolve(1));
      current.on('close', (code) => resolve(code ?? 1));
    });
    const t0 = Date.now();
    const up = await runScript(['up']);
    current = undefined;
    console.log(`# cluster: up in ${Math.round((Date.now() - t0) / 1000)} s`);
    if (up !== 0) {
      failed = true;
      totals.fail += 1;
      console.log('# cluster: scripts/cluster.sh up failed: the cluster tests did not run');
    } else if (stoppedBy === undefined) {
      const tap = join(tapDir, 'cluster.tap');
      const status = await new Promise((resolve) => {
        current = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tap}`, ...files], { stdio: 'inherit', cwd: root });
        current.on('error', () => resolve(1));
        current.on('close', (code) => resolve(code ?? 1));
      });
      current = undefined;
      if (status !== 0) failed = true;
      const text = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
      for (const k of Object.keys(totals)) {
        const m = new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text);
        if (m) totals[k] += Number(m[1]);
      }
    }
    if (clusterMode !== 'keep') await runScript(['down']);
    current = undefined;
  }
}
rmSync(tapDir, { recursive: true, force: true });
if (stoppedBy !== undefined) {
  console.log(`\nstopped by ${stoppedBy}`);
  process.exit(stoppedBy === 'SIGINT' ? 130 : 143);
}
// One closing line for the whole run (unit + integration).
console.log(`\n${totals.pass} passed, ${totals.fail + totals.cancelled} failed, ${totals.skipped} skipped`);
process.exit(failed || totals.pass === 0 ? 1 : 0);
