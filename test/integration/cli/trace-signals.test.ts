// SPDX-License-Identifier: Apache-2.0
// Ctrl-C on a running trace: a clean exit with the summary, and every program and link the
// process held is gone from the kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { notRoot } from '../../helpers/root.js';

const bin = fileURLToPath(new URL('../../../src/cli/bin.js', import.meta.url));

interface Held {
  id: number;
}

/** Kernel ids of the programs or links a process holds, from its fds' fdinfo. */
function heldBy(kind: 'prog' | 'link', pid: number): number[] {
  const ids = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    let info = '';
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile
    }
    const m = new RegExp(`^${kind}_id:\\s+(\\d+)$`, 'm').exec(info);
    if (m?.[1] !== undefined) ids.add(Number(m[1]));
  }
  return [...ids];
}

function stillThere(kind: 'prog' | 'link', ids: number[]): number[] {
  const all = new Set((JSON.parse(execFileSync('bpftool', ['-j', kind, 'list'], { encoding: 'utf8' }) || '[]') as Held[]).map((x) => x.id));
  return ids.filter((id) => all.has(id));
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  test(`${sig} stops trace sni cleanly and detaches everything`, { skip: notRoot }, async (t) => {
    const child = spawn(process.execPath, [bin, 'trace', 'sni'], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const header = await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next();
    assert.match(String(header.value), /PID\s+TID\s+COMM\s+NAME/);
    const progs = heldBy('prog', child.pid!);
    const links = heldBy('link', child.pid!);
    assert.ok(progs.length >= 2, `the tracer holds its programs (${progs.join(',')})`);
    assert.ok(links.length >= 1, 'and the tracepoint link');
    child.kill(sig);
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    assert.equal(code, 0, stderr);
    assert.match(stderr, /tlscope: \d+ events?, 0 lost/);
    // The kernel frees them asynchronously (RCU), later still on a busy machine.
    let left: number[] = [];
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
      left = [...stillThere('prog', progs), ...stillThere('link', links)];
      if (left.length === 0) break;
    }
    assert.deepEqual(left, []);
  });
}
