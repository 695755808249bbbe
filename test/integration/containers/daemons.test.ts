// SPDX-License-Identifier: Apache-2.0
// The harness's daemon health check against daemons this file starts itself, privately (their
// own sockets, state and data directories; the shared daemons other tests use are never
// touched), stopped with SIGSTOP to look like the dockerd that once deadlocked under load: a
// real containerd, and a dockerd stand-in that keeps a pid file as dockerd does. One the
// harness started is stopped and started again; one it did not start is left alone and named
// in a fast, clear failure.
//
// Not a second real dockerd: even with its own data and exec roots, a dockerd started with
// `--bridge none` deletes the host's docker0 (the shared dockerd's bridge) when it starts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkHealth, ensureDaemon, ownDaemonPid, processAlive, stopProcess, type DaemonSpec, type HealthTiming } from '../../helpers/daemons.js';
import { containerdDaemon, dockerDaemon, runtimeSkipReason, STATE_DIR } from '../../helpers/runtimes.js';

const skipContainerd = runtimeSkipReason('containerd');
const engineLike = fileURLToPath(new URL('./fixtures/engine-like.js', import.meta.url));

/**
 * Short tries for daemons this file stopped on purpose, still long enough that a healthy private
 * daemon on a busy machine answers in one of them (each answer is one `ctr` run or two HTTP GETs).
 */
const FAST: HealthTiming = { probeTimeoutMs: 5000, attempts: 2, stopTimeoutMs: 10_000 };

const dir = join(STATE_DIR, `daemons-${process.pid}`);
/** Every pid this file started, stopped (and SIGCONT'd) in after() whatever happened. */
const started = new Set<number>();

function containerdConfig(name: string): { socket: string; config: string } {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  const socket = join(d, 'c.sock');
  const config = join(d, 'config.toml');
  writeFileSync(config, [
    'version = 2',
    `root = "${d}/root"`,
    `state = "${d}/state"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${socket}"`,
    '[ttrpc]',
    `  address = "${socket}.ttrpc"`,
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = "${d}/opt"`,
    '',
  ].join('\n'));
  return { socket, config };
}

function privateContainerd(name: string): DaemonSpec {
  const { socket, config } = containerdConfig(name);
  return containerdDaemon({ socket, config, stateDir: dir, name });
}

/** dockerd's spec (its health check, its own pid file) with the stand-in as the command. */
function privateDockerd(): DaemonSpec {
  const d = join(dir, 'dockerd');
  mkdirSync(d, { recursive: true });
  const pidFile = join(d, 'docker.pid');
  const socket = join(d, 'd.sock');
  return dockerDaemon({ name: 'dockerd-like', socket, pidFile, stateDir: dir, command: process.execPath, args: [engineLike, socket, pidFile] });
}

function signal(pid: number, s: NodeJS.Signals): void {
  try {
    process.kill(pid, s);
  } catch {
    // gone
  }
}

/** State letter of /proc/PID/stat: T when stopped. */
function procState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

before(() => {
  mkdirSync(dir, { recursive: true });
});

after(async () => {
  // dockerd before the containerd it uses
  for (const pid of [...started].reverse()) {
    signal(pid, 'SIGCONT');
    await stopProcess(pid, 20_000).catch(() => undefined);
  }
  // nothing of ours may stay mounted under the directory before it goes
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(`${dir}/`));
  for (const m of mounts.reverse()) spawn('umount', ['-l', m], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
});

test('a daemon the harness started that stops answering (SIGSTOP) is stopped, its pid file cleared, and started again once; a killed one is started again', { skip: skipContainerd, timeout: 300_000 }, async (t) => {
  const containerd = privateContainerd('containerd-private');
  const c1 = await ensureDaemon(containerd, FAST);
  assert.equal(c1.action, 'started');
  started.add(c1.pid as number);
  const dockerd = privateDockerd();
  const d1 = await ensureDaemon(dockerd, FAST);
  assert.equal(d1.action, 'started');
  const pid1 = (d1 as { pid: number }).pid;
  started.add(pid1);
  const dockerPidFile = dockerd.ownPidFiles?.[0] as string;
  assert.equal(Number(readFileSync(dockerPidFile, 'utf8').trim()), pid1, 'it wrote its own pid file');

  // healthy: left alone
  assert.deepEqual(await ensureDaemon(dockerd, FAST), { action: 'none', pid: pid1 });

  // alive but not answering, like the deadlocked dockerd
  signal(pid1, 'SIGSTOP');
  assert.equal((await checkHealth(dockerd, FAST)).state, 'hung');
  const d2 = await ensureDaemon(dockerd, FAST);
  assert.equal(d2.action, 'restarted', JSON.stringify(d2));
  const pid2 = (d2 as { pid: number }).pid;
  started.add(pid2);
  t.diagnostic(`dockerd: ${(d2 as { why: string }).why}; pid ${pid1} → ${pid2}`);
  assert.equal((d2 as { stoppedPid: number }).stoppedPid, pid1);
  assert.notEqual(pid2, pid1);
  assert.equal(processAlive(pid1), false, 'the hung one is gone');
  assert.equal(ownDaemonPid(dockerd), pid2);
  assert.equal(Number(readFileSync(dockerPidFile, 'utf8').trim()), pid2, 'no "pid file found": the new one wrote its own');
  assert.equal((await checkHealth(dockerd, FAST)).state, 'ok');

  // the same for containerd
  const cpid1 = c1.pid as number;
  signal(cpid1, 'SIGSTOP');
  const c2 = await ensureDaemon(containerd, FAST);
  assert.equal(c2.action, 'restarted', JSON.stringify(c2));
  started.add((c2 as { pid: number }).pid);
  assert.equal(processAlive(cpid1), false);
  assert.equal((await checkHealth(containerd, FAST)).state, 'ok');

  // killed outright: its socket and pid files stay behind, and a new one is simply started
  signal(pid2, 'SIGKILL');
  await stopProcess(pid2, 10_000);
  assert.ok(existsSync(dockerPidFile), 'SIGKILL leaves its pid file');
  const d3 = await ensureDaemon(dockerd, FAST);
  assert.equal(d3.action, 'started', JSON.stringify(d3));
  started.add((d3 as { pid: number }).pid);
  assert.equal((await checkHealth(dockerd, FAST)).state, 'ok');
});

test('a daemon the harness did not start that stops answering: a fast failure naming it and what to do; it is not signalled', { skip: skipContainerd, timeout: 120_000 }, async () => {
  const spec = privateContainerd('containerd-foreign');
  // started by hand, as systemd would: no pid file of the harness
  const child = spawn(spec.command, [...spec.args], { stdio: 'ignore' });
  const pid = child.pid as number;
  started.add(pid);
  const deadline = Date.now() + 60_000;
  while ((await checkHealth(spec, FAST)).state !== 'ok') {
    assert.ok(Date.now() < deadline, 'the hand-started containerd answers within 60 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(ownDaemonPid(spec), undefined);
  signal(pid, 'SIGSTOP');
  const t0 = Date.now();
  await assert.rejects(ensureDaemon(spec, FAST), (e: unknown) => {
    const m = (e as Error).message;
    assert.match(m, /^containerd-foreign is alive but does not answer/);
    assert.match(m, new RegExp(`pid ${pid} on ${spec.socket.replace(/[.]/g, '\\.')} was not started by this test harness`));
    assert.match(m, /no second containerd-foreign is started/);
    assert.match(m, /Restart it \(systemctl restart containerd/);
    return true;
  });
  const took = Date.now() - t0;
  assert.ok(took < FAST.attempts * FAST.probeTimeoutMs + 10_000, `failed in ${took} ms`);
  assert.equal(procState(pid), 'T', 'still there, still stopped: not ours to signal');
  assert.equal(existsSync(join(dir, 'containerd-foreign.log')), false, 'no second daemon was started');
  signal(pid, 'SIGCONT');
  await stopProcess(pid, 20_000);
});
