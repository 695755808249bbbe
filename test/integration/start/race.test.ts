// SPDX-License-Identifier: Apache-2.0
// The start hook does not race a busy machine. The hook used to learn a runtime's command line
// (`create --bundle B --pid-file P`) by reading /proc after the runtime's exec had been let go,
// then mark P's directory; a worker thread delayed for longer than `runc create` takes (a
// loaded 2-core CI machine) marked it after the pid file was written and read: that start was
// not held, and a `-c NAME` tracer had no packet socket in the container in time (the first-act
// misses). Now runc's own re-exec for the container's init (`/proc/self/exe init`, from a
// child that still has runc's command line) is held until the mark is in place.
//
// Simulated here by delaying the hook's reading of the runtime's command line by 1.5 s (a
// test-only setting): every start is still held, with the init exec guard on; with it off the
// same delay lets starts go unheld (the control: proves the delay is enough to lose the race).
// Cost: about 30 s.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { notRoot } from '../../helpers/root.js';
import { probeFeature } from '../../../src/ebpf/features.js';
import { ensureRuntimes, runtimeSkipReason, TestContainers, uniqueName, type RuntimeEnvironment, type TestRuntime } from '../../helpers/runtimes.js';
import { runOnce } from './helpers.js';

const CHILD = fileURLToPath(new URL('./hook-child.js', import.meta.url));
const noFanotify = notRoot || (probeFeature('fanotify_perm').supported ? false : `fanotify permission events: ${probeFeature('fanotify_perm').reason}`);
const DELAY_MS = 1500;
const RUNS = 4;

let env: RuntimeEnvironment;
let containers: TestContainers;
const children: ChildProcess[] = [];

before(async () => {
  if (noFanotify !== false) return;
  env = await ensureRuntimes();
  containers = new TestContainers(env);
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await containers?.cleanup();
});

interface Line { event: string; name?: string; comm?: string; type?: string; source?: string; id?: string; hook?: { stats: { held: number; guarded: number; late: number } } }

/** hook-child.js with the command line read DELAY_MS late; `guard` false turns the init-exec guard off. */
async function heldNames(runtime: TestRuntime, guard: boolean): Promise<{ held: string[]; names: string[]; stats: NonNullable<Line['hook']>['stats']; why: string[] }> {
  const child = spawn(process.execPath, [CHILD, 'wait50', '100', String(DELAY_MS), guard ? 'guard' : 'noguard'], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  const lines: Line[] = [];
  let stderr = '';
  createInterface({ input: child.stdout! }).on('line', (l) => lines.push(JSON.parse(l) as Line));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const until = async (pred: (l: Line) => boolean, what: string): Promise<Line> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const hit = lines.find(pred);
      if (hit !== undefined) return hit;
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no ${what}: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await until((l) => l.event === 'ready', 'ready');
  const names: string[] = [];
  for (let i = 0; i < RUNS; i++) {
    const name = uniqueName(`gate-race-${runtime}-${guard ? 'g' : 'n'}${i}`);
    names.push(name);
    const r = await runOnce(env, runtime, name, ['true']);
    assert.equal(r.code, 0, r.stderr);
  }
  await new Promise((r) => setTimeout(r, DELAY_MS + 600)); // anything the slow path still does
  const n = lines.length;
  child.stdin!.write('stats\n');
  const stats = (await until((l) => l.event === 'stats' && lines.indexOf(l) >= n, 'stats')).hook!.stats;
  const exited = new Promise((r) => child.once('exit', r));
  child.stdin!.write('quit\n');
  await exited;
  const held = names.filter((nm) => lines.some((l) => l.event === 'settled' && l.name === nm && /^runc:\[2:INIT\]$|^crun/.test(l.comm ?? '')));
  const why = names.filter((nm) => !held.includes(nm)).map((nm) => `${nm}: ${JSON.stringify(lines.filter((l) => l.name === nm))}`);
  if (why.length > 0) why.push(`all: ${JSON.stringify(lines.filter((l) => l.event === 'index' || l.event === 'settled'))}`);
  return { held, names, stats, why };
}

for (const runtime of ['docker', 'containerd', 'podman'] as const) {
  test(`${runtime}: with the hook's reading of runtime command lines ${DELAY_MS} ms late, every start is still held before its workload runs`, { skip: noFanotify || runtimeSkipReason(runtime), timeout: 180_000 }, async () => {
    const on = await heldNames(runtime, true);
    assert.deepEqual(on.held, on.names, `each start held (the workload had not run when the subscriber settled); not: ${on.why.join('; ')} ${JSON.stringify(on.stats)}`);
    assert.ok(on.stats.guarded >= RUNS, `guarded ${on.stats.guarded}`);
    const off = await heldNames(runtime, false);
    assert.ok(off.held.length < off.names.length, `control: without the guard the same delay loses the race (held ${off.held.length} of ${off.names.length})`);
  });
}
