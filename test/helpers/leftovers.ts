// SPDX-License-Identifier: Apache-2.0
/**
 * What an earlier test process left behind because it was killed (SIGKILL, or a SIGTERM that
 * skipped its after() hooks) or its clean-up failed: containers labelled with its pid, network
 * namespaces named after it, private daemons under the state directory. Removed at the start of
 * a run (scripts/run-tests.mjs) and of each file's runtime set-up, but only when the process
 * that made them is gone: other people's test runs on the same machine keep theirs.
 *
 * Ownership marks: containers carry `tlscope.test.owner=PID` and `tlscope.test.owner-start=` the
 * start time of that process (pids are recycled); network namespaces are named
 * `tlscope-<what>-PID…` (uniqueName) ; private daemons live in `STATE_DIR/daemons-PID`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { processAlive, stopProcess } from './daemons.js';

export const OWNER_LABEL = 'tlscope.test.owner';
export const OWNER_START_LABEL = 'tlscope.test.owner-start';

/** Start time of a process (clock ticks since boot, /proc/PID/stat field 22), or undefined. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether the process that made something (pid, and its start time when known) is gone. */
export function ownerGone(pid: number, start?: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false; // not a mark of ours: keep
  if (!processAlive(pid)) return true;
  return start !== undefined && start !== '' && processStart(pid) !== start;
}

function run(cmd: string, args: readonly string[], timeoutMs = 60_000): string {
  return execFileSync(cmd, [...args], { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
}

function tryRun(cmd: string, args: readonly string[], timeoutMs = 60_000): boolean {
  try {
    run(cmd, args, timeoutMs);
    return true;
  } catch {
    return false;
  }
}

function onPath(binary: string): boolean {
  return (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => existsSync(join(d, binary)));
}

export interface SweepResult {
  readonly containers: string[];
  readonly netns: string[];
  readonly daemons: string[];
  readonly errors: string[];
}

/** docker / podman containers whose owner is gone. */
function sweepEngine(runtime: 'docker' | 'podman', out: SweepResult): void {
  if (!onPath(runtime)) return;
  const format = runtime === 'docker'
    ? `{{.Names}}\t{{.Label "${OWNER_LABEL}"}}\t{{.Label "${OWNER_START_LABEL}"}}`
    : `{{.Names}}\t{{index .Labels "${OWNER_LABEL}"}}\t{{index .Labels "${OWNER_START_LABEL}"}}`;
  let listing: string;
  try {
    listing = run(runtime, ['ps', '-a', '--filter', `label=${OWNER_LABEL}`, '--format', format]);
  } catch {
    return; // not running: nothing of ours can be running in it either
  }
  const names: string[] = [];
  for (const line of listing.split('\n')) {
    const [name, pid, start] = line.split('\t');
    if (name && ownerGone(Number(pid), start === '<no value>' ? undefined : start)) names.push(name);
  }
  for (let i = 0; i < names.length; i += 50) {
    const batch = names.slice(i, i + 50);
    if (tryRun(runtime, runtime === 'podman' ? ['rm', '-f', '-t', '0', '-i', ...batch] : ['rm', '-f', ...batch], 120_000)) out.containers.push(...batch.map((n) => `${runtime}/${n}`));
    else out.errors.push(`${runtime} rm ${batch.join(' ')}`);
  }
}

/** containerd containers (namespaces the tests use) whose owner is gone. */
function sweepContainerd(out: SweepResult): void {
  if (!onPath('ctr')) return;
  for (const ns of ['default', 'k8s.io']) {
    let ids: string[];
    try {
      ids = run('ctr', ['-n', ns, 'containers', 'ls', '-q', `labels."${OWNER_LABEL}"`], 30_000).split('\n').filter(Boolean);
    } catch {
      return;
    }
    for (const id of ids) {
      let labels: Record<string, string> = {};
      try {
        labels = (JSON.parse(run('ctr', ['-n', ns, 'containers', 'info', id], 30_000)) as { Labels?: Record<string, string> }).Labels ?? {};
      } catch {
        continue; // removed meanwhile
      }
      if (!ownerGone(Number(labels[OWNER_LABEL]), labels[OWNER_START_LABEL])) continue;
      tryRun('ctr', ['-n', ns, 'task', 'kill', '-s', 'SIGKILL', id], 30_000);
      tryRun('ctr', ['-n', ns, 'task', 'delete', '--force', id], 30_000);
      if (tryRun('ctr', ['-n', ns, 'containers', 'delete', id], 30_000)) out.containers.push(`containerd/${ns}/${id}`);
      else out.errors.push(`ctr -n ${ns} containers delete ${id}`);
    }
  }
}

/** Network namespaces named tlscope-…-PID… whose PID is gone (their veths go with them). */
function sweepNetns(out: SweepResult): void {
  if (!existsSync('/run/netns')) return;
  for (const name of readdirSync('/run/netns')) {
    const m = /^tlscope-[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*-(\d+)(?:-|$)/.exec(name);
    if (m === null || !ownerGone(Number(m[1]))) continue;
    if (tryRun('ip', ['netns', 'del', name], 30_000)) out.netns.push(name);
    else out.errors.push(`ip netns del ${name}`);
  }
}

/** Private daemons a killed daemons.test left in STATE_DIR/daemons-PID. */
async function sweepPrivateDaemons(stateDir: string, out: SweepResult): Promise<void> {
  if (!existsSync(stateDir)) return;
  for (const entry of readdirSync(stateDir)) {
    const m = /^daemons-(\d+)$/.exec(entry);
    if (m === null || !ownerGone(Number(m[1]))) continue;
    const dir = join(stateDir, entry);
    // dockerd first, then the containerd it used
    const pidFiles = readdirSync(dir).filter((f) => f.endsWith('.pid')).sort((a, b) => Number(b.startsWith('dockerd')) - Number(a.startsWith('dockerd')));
    for (const f of pidFiles) {
      const [p, start] = readFileSync(join(dir, f), 'utf8').trim().split(/\s+/);
      const pid = Number(p);
      if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid) || (start !== undefined && processStart(pid) !== start)) continue;
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      // containerd, or daemons.test's dockerd stand-in
      if (!/(^|\/)containerd$/.test(argv[0] ?? '') && !(argv[1] ?? '').endsWith('/fixtures/engine-like.js')) continue;
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone
      }
      await stopProcess(pid, 20_000).catch((e: unknown) => out.errors.push(String(e)));
      out.daemons.push(`${f.replace(/\.pid$/, '')} pid ${pid}`);
    }
    const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((x) => x.startsWith(`${dir}/`));
    for (const x of mounts.reverse()) tryRun('umount', ['-l', x]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Removes what test processes that are gone left behind. Best effort; says what it did. */
export async function sweepLeftovers(stateDir: string): Promise<SweepResult> {
  const out: SweepResult = { containers: [], netns: [], daemons: [], errors: [] };
  if (process.getuid?.() !== 0) return out;
  sweepEngine('docker', out);
  sweepEngine('podman', out);
  sweepContainerd(out);
  sweepNetns(out);
  await sweepPrivateDaemons(stateDir, out);
  return out;
}

export function describeSweep(r: SweepResult): string | undefined {
  const parts = [
    r.containers.length > 0 ? `containers ${r.containers.join(', ')}` : '',
    r.netns.length > 0 ? `network namespaces ${r.netns.join(', ')}` : '',
    r.daemons.length > 0 ? `private daemons ${r.daemons.join(', ')}` : '',
    r.errors.length > 0 ? `could not remove: ${r.errors.join('; ')}` : '',
  ].filter(Boolean);
  return parts.length === 0 ? undefined : `removed what earlier, killed test processes left: ${parts.join('; ')}`;
}
