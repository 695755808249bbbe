// SPDX-License-Identifier: Apache-2.0
// Ctrl-C on a running trace: a clean exit with the summary, and every program and link the
// process held is gone from the kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { bpfIdsHeldBy, bpfIdsStillThere } from '../../helpers/bpf-held.js';
import { notRoot } from '../../helpers/root.js';

const bin = fileURLToPath(new URL('../../../src/cli/bin.js', import.meta.url));

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
    const progs = [...bpfIdsHeldBy(child.pid!, 'prog')];
    const links = [...bpfIdsHeldBy(child.pid!, 'link')];
    assert.ok(progs.length >= 2, `the tracer holds its programs (${progs.join(',')})`);
    assert.ok(links.length >= 1, 'and the tracepoint link');
    child.kill(sig);
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    assert.equal(code, 0, stderr);
    assert.match(stderr, /tlscope: \d+ events? shown, 0 lost/);
    // The kernel frees them asynchronously (RCU), later still on a busy machine.
    let left: number[] = [];
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
      left = [...bpfIdsStillThere('prog', progs), ...bpfIdsStillThere('link', links)];
      if (left.length === 0) break;
    }
    assert.deepEqual(left, []);
  });
}
