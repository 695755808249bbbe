// SPDX-License-Identifier: Apache-2.0
// A process with a ContainerIndex and its start hook, for the bounds tests (not a test itself).
// usage: node hook-child.js MODE DEADLINE_MS [SETTLE_DELAY_MS [noguard]]
//   wait50  — each subscriber call waits 50 ms, then reports the container's first process's comm
//   block   — the first 'added' blocks the main event loop for 5 s (synchronously)
//   forever — subscribers return a Promise that never settles
// Prints JSON lines: {"event":"ready"}, {"event":"added",…}, {"event":"unblocked"}, {"event":"stats",…}.
import { readFileSync } from 'node:fs';
import { ContainerIndex } from '../../../src/containers/index.js';

const [mode = 'wait50', deadline = '100', settleDelay = '0', guard = 'guard'] = process.argv.slice(2);
const say = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
const comm = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
};

const index = new ContainerIndex({ hook: { deadlineMs: Number(deadline), settleDelayMs: Number(settleDelay), guardInitExec: guard !== 'noguard' } });
let blocked = false;
index.subscribe((e) => {
  say({ event: 'index', type: e.type, source: e.container.source, name: e.container.name, id: e.container.id });
  // 'updated': the /proc rescan may have found the created container by its cgroup first
  if (e.type === 'removed' || e.container.source !== 'hook' || (e.type === 'updated' && e.previous.source === 'hook')) return undefined;
  const c = e.container;
  say({ event: 'added', name: c.name, pid: c.pid, comm: comm(c.pid), at: Date.now() });
  switch (mode) {
    case 'block': {
      if (blocked) return undefined;
      blocked = true;
      const end = Date.now() + 5000;
      while (Date.now() < end) {
        // the main event loop is stuck here; the hook's worker thread is not
      }
      say({ event: 'unblocked', at: Date.now() });
      return undefined;
    }
    case 'forever':
      return new Promise<void>(() => {});
    default:
      return new Promise<void>((resolve) => {
        setTimeout(() => {
          say({ event: 'settled', name: c.name, pid: c.pid, comm: comm(c.pid), at: Date.now() });
          resolve();
        }, 50);
      });
  }
});
await index.start();
say({ event: 'ready', hook: index.hookStatus() });
process.stdin.on('data', (d) => {
  if (String(d).includes('stats')) say({ event: 'stats', hook: index.hookStatus() });
  if (String(d).includes('quit')) void index.close().then(() => process.exit(0));
});
