// SPDX-License-Identifier: Apache-2.0
/**
 * Short-lived containers for the start-hook tests: `docker|podman run --rm --name N IMAGE …`
 * and `ctr run --rm --cni IMAGE N …` in the foreground, as a user types them, each marked as
 * this test process's (leftovers.ts sweeps what a killed run leaves).
 */
import { execFile } from 'node:child_process';
import { OWNER_LABEL, OWNER_START_LABEL, processStart } from '../../helpers/leftovers.js';
import type { RuntimeEnvironment, TestContainer, TestContainers, TestRuntime } from '../../helpers/runtimes.js';
import { sleep } from '../../helpers/wait.js';

export interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time of the whole run command. */
  readonly ms: number;
}

const OWNER = [`${OWNER_LABEL}=${process.pid}`, `${OWNER_START_LABEL}=${processStart(process.pid) ?? ''}`];

/** The argv that runs `command` in a fresh container named `name` and removes it afterwards. */
export function runArgv(env: RuntimeEnvironment, runtime: TestRuntime, name: string, command: readonly string[]): [string, string[]] {
  const labels = OWNER.flatMap((l) => ['--label', l]);
  switch (runtime) {
    case 'docker':
      return ['docker', ['run', '--rm', '--name', name, ...labels, env.image.docker, ...command]];
    case 'podman':
      return ['podman', ['run', '--rm', '--name', name, ...labels, env.image.podman, ...command]];
    case 'containerd':
      return ['ctr', ['run', '--rm', '--cni', ...labels, env.image.containerd, name, ...command]];
  }
}

/** Runs one container to its end (bounded by `timeoutMs`). */
export function runOnce(env: RuntimeEnvironment, runtime: TestRuntime, name: string, command: readonly string[], timeoutMs = 60_000): Promise<Ran> {
  const [cmd, args] = runArgv(env, runtime, name, command);
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null;
      resolve({ code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** The bridge's IPv4 address (the containers' gateway to the host). */
export async function bridgeAddress(bridge: string): Promise<string | undefined> {
  const out = await new Promise<string>((resolve) => execFile('ip', ['-4', '-o', 'addr', 'show', 'dev', bridge], (_e, so) => resolve(String(so))));
  return /inet (\d+\.\d+\.\d+\.\d+)\//.exec(out)?.[1];
}

/** Each runtime's bridge, whose address the host answers on. */
export const BRIDGES: Readonly<Record<TestRuntime, string>> = { docker: 'docker0', podman: 'cni-podman0', containerd: 'tlscope0' };

/** How many containers in a row per runtime (the soak script asks for more). */
export function runsPerRuntime(fallback: number): number {
  const v = Number(process.env['TLSCOPE_START_RUNS'] ?? '');
  return Number.isInteger(v) && v > 0 ? v : fallback;
}

/** The default gateway a container sees (its route to the host), from /proc/net/route. */
export async function gatewayOf(containers: TestContainers, c: TestContainer): Promise<string> {
  // `ctr task exec` can lose the output of a command that exits at once (one CI run read an empty
  // table from a pod): asked again for a few seconds before it counts as no route
  let table = '';
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(200)) {
    table = await containers.exec(c, ['cat', '/proc/net/route']);
    if (/^\S+\s+00000000\s+(?!00000000)[0-9A-F]{8}/m.test(table)) break;
  }
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === '00000000' && f[2] !== undefined && f[2] !== '00000000') {
      const n = Number.parseInt(f[2], 16);
      return [n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255].join('.');
    }
  }
  throw new Error(`no default route in ${c.name}: ${table}`);
}
