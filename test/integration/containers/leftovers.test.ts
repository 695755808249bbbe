// SPDX-License-Identifier: Apache-2.0
// Nothing a killed test process made stays for the next file: a test process stopped by
// SIGTERM removes its containers on the way out, and what a SIGKILLed one left (containers
// labelled with its pid, a network namespace named after it) is swept at the next set-up, while
// what live test processes own is kept.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { OWNER_LABEL, OWNER_START_LABEL, sweepLeftovers } from '../../helpers/leftovers.js';
import { ensureRuntimes, runtimeSkipReason, STATE_DIR, TestContainers, uniqueName, type RuntimeEnvironment } from '../../helpers/runtimes.js';

const run = promisify(execFile);
const skipDocker = runtimeSkipReason('docker');
const withContainerd = runtimeSkipReason('containerd') === false;
const helpers = fileURLToPath(new URL('../../helpers/runtimes.js', import.meta.url));

let env: RuntimeEnvironment;
let containers: TestContainers;
const extra: string[] = [];

before(async () => {
  if (skipDocker !== false) return;
  env = await ensureRuntimes();
  containers = new TestContainers(env);
});

after(async () => {
  await containers?.cleanup();
  if (extra.length > 0) await run('docker', ['rm', '-f', ...extra]).catch(() => undefined);
});

async function dockerExists(name: string): Promise<boolean> {
  try {
    await run('docker', ['inspect', name]);
    return true;
  } catch {
    return false;
  }
}

/** A pid that no process has now (a child that has exited). */
function deadPid(): number {
  const r = spawnSync('true');
  return r.pid as number;
}

test('a test process stopped by SIGTERM removes its containers on the way out', { skip: skipDocker, timeout: 180_000 }, async () => {
  const script = `
    import(${JSON.stringify(helpers)}).then(async (h) => {
      const c = new h.TestContainers(await h.ensureRuntimes());
      const one = await c.run('docker', {});
      console.log(one.name);
      setInterval(() => {}, 1000); // a test still running
    });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, sig) => r(sig)));
  const first = await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next();
  const name = String(first.value);
  extra.push(name);
  assert.ok(await dockerExists(name), `${name} runs`);
  child.kill('SIGTERM');
  assert.equal(await exited, 'SIGTERM', 'it still ends by the signal');
  assert.equal(await dockerExists(name), false, `${name} was removed`);
});

test('what a killed test process left (a labelled container, a network namespace) is swept; what a live one owns is kept', { skip: skipDocker, timeout: 180_000 }, async () => {
  const gone = deadPid();
  const orphan = uniqueName('tlscope-orphan');
  extra.push(orphan);
  await run('docker', ['run', '-d', '--name', orphan, '--label', `${OWNER_LABEL}=${gone}`, '--label', `${OWNER_START_LABEL}=1`, env.image.docker, 'sleep', 'infinity']);
  const ns = `tlscope-leftover-${gone}`;
  await run('ip', ['netns', 'add', ns]);
  const ctrOrphan = uniqueName('tlscope-orphan');
  if (withContainerd) await run('ctr', ['-n', 'default', 'run', '-d', '--label', `${OWNER_LABEL}=${gone}`, env.image.containerd, ctrOrphan, 'sleep', 'infinity']);
  const mine = await containers.run('docker', {}); // owned by this live process
  try {
    const r = await sweepLeftovers(STATE_DIR);
    assert.ok(r.containers.includes(`docker/${orphan}`), JSON.stringify(r));
    assert.ok(r.netns.includes(ns), JSON.stringify(r));
    if (withContainerd) assert.ok(r.containers.includes(`containerd/default/${ctrOrphan}`), JSON.stringify(r));
    assert.equal(await dockerExists(orphan), false);
    assert.equal(existsSync(`/run/netns/${ns}`), false);
    assert.ok(await dockerExists(mine.name), 'a live owner keeps its container');
    assert.ok(!r.containers.some((c) => c.includes(mine.name)));
  } finally {
    if (existsSync(`/run/netns/${ns}`)) await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    if (withContainerd) {
      await run('ctr', ['-n', 'default', 'task', 'delete', '--force', ctrOrphan]).catch(() => undefined);
      await run('ctr', ['-n', 'default', 'containers', 'delete', ctrOrphan]).catch(() => undefined);
    }
  }
});
