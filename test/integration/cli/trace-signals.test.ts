// SPDX-License-Identifier: Apache-2.0
// Ctrl-C on a running trace: a clean exit with the summary, and every program and link the
// process held is gone from the kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bpfIdsHeldBy, bpfIdsStillThere } from '../../helpers/bpf-held.js';
import { CliProcess } from '../../helpers/cli.js';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.sni);
import { sleep, waitFor } from '../../helpers/wait.js';


for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  test(`${sig} stops trace sni cleanly and detaches everything`, { skip: kernelSkip }, async (t) => {
    const cli = new CliProcess(['trace', 'sni']);
    t.after(() => {
      if (!cli.exited) cli.child.kill('SIGKILL');
    });
    const header = await waitFor('the column header', () => (cli.stdoutText.includes('\n') ? cli.stdoutText.split('\n')[0] : undefined), 60_000, () => cli.stderr);
    assert.match(header, /PID\s+TID\s+COMM\s+NAME/);
    const progs = [...bpfIdsHeldBy(cli.pid, 'prog')];
    const links = [...bpfIdsHeldBy(cli.pid, 'link')];
    assert.ok(progs.length >= 2, `the tracer holds its programs (${progs.join(',')})`);
    assert.ok(links.length >= 1, 'and the tracepoint link');
    const { code, stderr } = await cli.stop(sig);
    assert.equal(code, 0, stderr);
    assert.match(stderr, /tlscope: \d+ events? shown, 0 lost/);
    // The kernel frees them asynchronously (RCU), later still on a busy machine.
    let left: number[] = [];
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(100)) {
      left = [...bpfIdsStillThere('prog', progs), ...bpfIdsStillThere('link', links)];
      if (left.length === 0) break;
    }
    assert.deepEqual(left, []);
  });
}
