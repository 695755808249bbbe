// SPDX-License-Identifier: Apache-2.0
// The container start hook's bounds, each against a real runtime start:
// - a subscriber's Promise is waited for: when it settles, the container's first process is
//   still in its runtime's init (comm `runc:[2:INIT]`), i.e. its workload has not run (all runtimes);
// - a main event loop blocked for 5 s does not hold `docker run` for 5 s: the worker thread
//   answers at the deadline (100 ms), the run ends while the loop is still blocked, the miss is
//   counted as expired;
// - `kill -9` of tlscope while a start is held (a deadline of 10 minutes, a subscriber that never
//   settles) lets the start go at once: the kernel allows what a closed fanotify group held.
// Cost: about 15 s.
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

interface Line { event: string; name?: string; pid?: number; comm?: string; at?: number; hook?: { active: boolean; stats: { held: number; released: number; expired: number; heldMs: number[] } } }

class HookChild {
  readonly lines: Line[] = [];
  readonly child: ChildProcess;
  stderr = '';
  constructor(mode: string, deadlineMs: number) {
    this.child = spawn(process.execPath, [CHILD, mode, String(deadlineMs)], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(this.child);
    createInterface({ input: this.child.stdout! }).on('line', (l) => this.lines.push(JSON.parse(l) as Line));
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
  }
  async waitFor(pred: (l: Line) => boolean, what: string, ms = 30_000): Promise<Line> {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = this.lines.find(pred);
      if (hit !== undefined) return hit;
      if (this.child.exitCode !== null) throw new Error(`hook child exited (${this.child.exitCode}) before ${what}: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`no ${what} within ${ms} ms: ${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  async stats(): Promise<NonNullable<Line['hook']>> {
    const before = this.lines.length;
    this.child.stdin!.write('stats\n');
    const l = await this.waitFor((x) => x.event === 'stats' && this.lines.indexOf(x) >= before, 'stats');
    return l.hook!;
  }
  async quit(): Promise<void> {
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.stdin!.write('quit\n');
    await exited;
  }
}

for (const runtime of ['docker', 'containerd', 'podman'] as const satisfies readonly TestRuntime[]) {
  test(`${runtime}: the start waits for a subscriber's Promise; when it settles the workload has not run yet`, { skip: noFanotify || runtimeSkipReason(runtime) }, async () => {
    const h = new HookChild('wait50', 2000);
    const ready = await h.waitFor((l) => l.event === 'ready', 'ready');
    assert.equal(ready.hook?.active, true, 'the hook is active');
    const name = uniqueName(`gate-wait-${runtime}`);
    const r = await runOnce(env, runtime, name, ['true']);
    assert.equal(r.code, 0, r.stderr);
    const added = await h.waitFor((l) => l.event === 'added' && l.name === name, `added ${name}`);
    const settled = await h.waitFor((l) => l.event === 'settled' && l.name === name, `settled ${name}`);
    assert.equal(settled.pid, added.pid);
    assert.match(settled.comm ?? '', /^runc:\[2:INIT\]$|^crun/, 'still in the runtime’s init 50 ms later: held');
    const s = await h.stats();
    assert.equal(s.stats.expired, 0);
    assert.ok(s.stats.released >= 1);
    await h.quit();
  });
}

test('docker: a main event loop blocked for 5 s holds docker run for the deadline only (100 ms), and the miss is counted', { skip: noFanotify || runtimeSkipReason('docker') }, async () => {
  const h = new HookChild('block', 100);
  await h.waitFor((l) => l.event === 'ready', 'ready');
  const name = uniqueName('gate-block');
  const r = await runOnce(env, 'docker', name, ['true']);
  const ended = Date.now();
  assert.equal(r.code, 0, r.stderr);
  const unblocked = await h.waitFor((l) => l.event === 'unblocked', 'the end of the block');
  assert.ok(ended < unblocked.at!, `docker run ended (${ended}) while the main loop was still blocked (until ${unblocked.at})`);
  const s = await h.stats();
  assert.equal(s.stats.expired, 1, 'answered at the deadline, counted');
  const held = s.stats.heldMs[0]!;
  // the worker's own clock: at least the deadline, and nowhere near the 5 s block
  assert.ok(held >= 100 && held < 1000, `held ${held} ms`);
  await h.quit();
});

test('docker: kill -9 of the process holding a start lets it go at once (deadline 10 min, a subscriber that never settles)', { skip: noFanotify || runtimeSkipReason('docker') }, async () => {
  const h = new HookChild('forever', 600_000);
  await h.waitFor((l) => l.event === 'ready', 'ready');
  const name = uniqueName('gate-kill');
  const run = runOnce(env, 'docker', name, ['true'], 120_000);
  await h.waitFor((l) => l.event === 'added' && l.name === name, `held ${name}`);
  await new Promise((r) => setTimeout(r, 300));
  let done = false;
  void run.then(() => (done = true));
  assert.equal(done, false, 'the start is held while the subscriber has not settled');
  h.child.kill('SIGKILL');
  const r = await Promise.race([run, new Promise<undefined>((res) => setTimeout(() => res(undefined), 30_000))]);
  assert.ok(r !== undefined, 'docker run finished after the kill (else it would wait for the 10 min deadline)');
  assert.equal(r.code, 0, r.stderr);
});
