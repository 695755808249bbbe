#!/usr/bin/env node
// Runs the compiled test suites with node's test runner: unit tests (no privileges) in
// parallel, then integration tests (root, real kernel and runtimes) one file at a time so
// they do not compete for the two cores and the shared daemons.
// Then the browser tests (the web UI in Debian's chromium, as root), also one file at a time.
// Then, as root, the kernels phase: the kTLS tests (test/kernels) in qemu guests of Debian's
// 6.1 and 6.12 kernels (scripts/kernel-matrix.sh --run test/kernels/guest.sh; under TCG on 2
// cores: 150 s per kernel for the first 7 tests on a quiet machine, 14-18 min for the 10 tests of
// now at load 10-25; downloads one kernel package each from apt).
// Then, as root, the cluster phase (test/cluster on a two-node cluster from scripts/cluster.sh).
// usage: node scripts/run-tests.mjs [unit|integration|browser|kernels|cluster] [name-filter]
// TLSCOPE_KERNELS="6.1 6.12" picks the kernels; TLSCOPE_KERNELS=none skips the phase.
// TLSCOPE_TEST_DIST=DIR runs the suites under DIR/<suite> instead of dist/test/<suite> (the
// runner's own test, on fixtures; no leftover sweep then).
//
// A run fails when a test or a hook (before/after, also inside describe) failed, when the
// test process failed without a failing test in its report, and when a suite ran files but
// passed nothing (every test skipped: a non-root run of the integration tests proves nothing).
import { readdirSync, statSync, existsSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const [which = 'all', filter] = process.argv.slice(2);
const fixtureDist = process.env.TLSCOPE_TEST_DIST;
const distTest = fixtureDist ?? join(root, 'dist', 'test');

/**
 * Reads a TAP report (node's reporter, nested by indentation): pass/skipped/todo/cancelled
 * from its summary lines, and the failures counted here. A failure is a `not ok` with no failing
 * result below it: a failing test, a failing hook (a suite or file reported `not ok` although
 * its tests passed; a test `not ok # SKIP` because its before hook threw), a file that crashed.
 * A parent failing only because a subtest failed is not counted again; `not ok # TODO` is not
 * a failure. (Node's own "# fail" misses hooks that fail inside describe, and a before hook
 * that throws while the tests skip.)
 */
function readTap(text) {
  const out = { pass: 0, fail: 0, skipped: 0, todo: 0, cancelled: 0, failures: [], skipReasons: new Map() };
  for (const k of ['pass', 'skipped', 'todo', 'cancelled']) {
    const m = new RegExp(`^# ${k} (\\d+)$`, 'm').exec(text);
    if (m) out[k] = Number(m[1]);
  }
  const failedBelow = new Map(); // indentation → whether something failed at that depth since its parent's result
  let yaml = false;
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (yaml) {
      if (t === '...') yaml = false;
      continue;
    }
    if (t === '---') {
      yaml = true;
      continue;
    }
    const m = /^(\s*)(not ok|ok) \d+(?: - (.*))?$/.exec(line);
    if (m === null) continue;
    const depth = m[1].length;
    const rest = m[3] ?? '';
    let childFailed = false;
    for (const [d, f] of failedBelow) {
      if (d > depth) {
        childFailed ||= f;
        failedBelow.delete(d);
      }
    }
    const failed = m[2] === 'not ok' && !/\s#\s*TODO\b/i.test(rest);
    if (failed && !childFailed) {
      out.fail++;
      out.failures.push(/\s#\s*SKIP\b/i.test(rest) ? `${rest.replace(/\s#\s*SKIP\b.*$/i, '')} (its before hook failed)` : rest);
    }
    failedBelow.set(depth, (failedBelow.get(depth) ?? false) || failed || childFailed);
    const skip = m[2] === 'ok' ? /\s#\s*SKIP\b\s*(.*)$/i.exec(rest) : null;
    if (skip !== null) {
      const reason = skip[1].trim() || '(no reason given)';
      out.skipReasons.set(reason, (out.skipReasons.get(reason) ?? 0) + 1);
    }
  }
  return out;
}

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
/** suites that ran files but passed nothing */
const allSkipped = [];
/** Phases that did not run (said where they were decided, repeated in the closing line). */
const notRun = [];
const runStart = Date.now();
/** The first build of the cluster's binaries on 2 cores (measured 26–38 min), for the CI budget. */
const CLUSTER_BUILD_MIN = 35;
const tapDir = mkdtempSync(join(tmpdir(), 'tlscope-tap-'));
for (const [suite, concurrency] of [['unit', 2], ['integration', 1], ['browser', 1]]) {
  if (which !== 'all' && which !== suite) continue;
  if (stoppedBy !== undefined) break;
  const files = find(join(distTest, suite));
  if (files.length === 0) continue;
  console.log(`\n# ${suite}: ${files.length} files`);
  if (suite === 'integration' && process.getuid?.() === 0 && fixtureDist === undefined) {
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
  const text = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
  const r = readTap(text);
  if (status !== 0 && r.fail === 0) {
    // it failed, yet no test or hook says so: the process itself (a crash, a hang killed)
    r.fail = 1;
    r.failures.push(`the ${suite} test process exited with ${status} and no failing test in its report`);
  }
  if (status !== 0 || r.fail > 0) failed = true;
  for (const k of Object.keys(totals)) totals[k] += k === 'fail' ? r.fail : r[k];
  if (r.fail > 0) console.log(`\n# ${suite}: ${r.fail} failed: ${r.failures.join('; ')}`);
  if (r.pass === 0) {
    // every test skipped (or none ran): the suite proved nothing, so the run does not pass
    failed = true;
    const reasons = [...r.skipReasons].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([why, n]) => `${n}× ${why}`).join('; ');
    const said = `# ${suite}: no test passed (${r.skipped} skipped${reasons === '' ? '' : `: ${reasons}`})`;
    console.log(`\n${said}`);
    allSkipped.push(suite);
  }
}
const kernels = (process.env.TLSCOPE_KERNELS ?? '6.1 6.12').split(/\s+/).filter((k) => k && k !== 'none');
if ((which === 'all' || which === 'kernels') && stoppedBy === undefined && kernels.length > 0) {
  const out = join(tapDir, 'kernels');
  console.log(`\n# kernels: ${kernels.join(', ')} under qemu (test/kernels)`);
  if (process.getuid?.() !== 0) {
    console.log('# kernels: skipped: needs root (it boots qemu guests that load BPF)');
  } else {
    // one kernel-matrix run per kernel: in one run for both, the 6.12 guest that followed the
    // 6.1 guest stopped after ~30 s without a report (twice, clean clones); alone it passed
    for (const kernel of kernels) {
      if (stoppedBy !== undefined) break;
      const status = await new Promise((resolve) => {
        current = spawn('bash', [join(root, 'scripts', 'kernel-matrix.sh'), '--run', join(root, 'test', 'kernels', 'guest.sh'), '--out', out, kernel], { stdio: 'inherit', cwd: root, env: { KM_VM_TIMEOUT: '1500', ...process.env } });
        current.on('error', () => resolve(1));
        current.on('close', (code) => resolve(code ?? 1));
      });
      current = undefined;
      if (status !== 0) failed = true;
    }
    for (const k of existsSync(out) ? readdirSync(out) : []) {
      const tap = join(out, k, 'kernels.tap');
      const text = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
      const r = readTap(text);
      if (text === '') {
        // the guest gave no report at all (it did not boot, or the tests did not finish): a failure, named
        failed = true;
        r.fail += 1;
        r.failures.push(`${k}: no test report from the guest (see kernel-matrix's table above and its vm.log)`);
      }
      if (r.fail > 0) {
        failed = true;
        console.log(`\n# kernels ${k}: ${r.fail} failed: ${r.failures.join('; ')}`);
      }
      for (const key of Object.keys(totals)) totals[key] += key === 'fail' ? r.fail : r[key];
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
    // CI's whole run is bounded (90 min); a fresh machine's first build of Kubernetes takes about
    // 30 min on 2 cores. When the binaries are not cached and the build would end past the
    // budget, the phase does not run: said loudly and counted as not run (never as passed), with
    // the one command that makes the next run's phase take ~2 min.
    const built = await runScript(['built']);
    current = undefined;
    const started = Number(process.env.TLSCOPE_CI_START ?? '') * 1000 || runStart;
    const budgetMin = Number(process.env.TLSCOPE_CI_BUDGET_MIN ?? '85');
    const elapsedMin = (Date.now() - started) / 60_000;
    if (built !== 0 && elapsedMin + CLUSTER_BUILD_MIN > budgetMin) {
      notRun.push('cluster');
      console.log(`# cluster: NOT RUN: Kubernetes is not built on this machine yet (scripts/cluster.sh build: ~${CLUSTER_BUILD_MIN} min on 2 cores, cached in /var/cache/tlscope-cluster) and this run is ${Math.round(elapsedMin)} min in, of a ${budgetMin} min budget (TLSCOPE_CI_BUDGET_MIN). Build once, then the phase takes ~2 min: sudo scripts/cluster.sh build`);
    } else {
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
}
rmSync(tapDir, { recursive: true, force: true });
if (stoppedBy !== undefined) {
  console.log(`\nstopped by ${stoppedBy}`);
  process.exit(stoppedBy === 'SIGINT' ? 130 : 143);
}
// One closing line for the whole run (unit + integration).
console.log(`\n${totals.pass} passed, ${totals.fail} failed, ${totals.skipped} skipped${totals.cancelled > 0 ? ` (${totals.cancelled} cancelled)` : ''}${allSkipped.length > 0 ? `; no test passed in ${allSkipped.join(', ')}` : ''}${notRun.length > 0 ? `; NOT RUN: ${notRun.join(', ')} (see above)` : ''}`);
process.exit(failed || totals.pass === 0 ? 1 : 0);
