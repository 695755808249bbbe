// SPDX-License-Identifier: Apache-2.0
// Ctrl-C on a running trace: a clean exit with the summary, and every program and link the
// process held is gone from the kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bpfIdsHeldBy, bpfIdsStillThere } from '../../helpers/bpf-held.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, CliProcess } from '../../helpers/cli.js';
import { startProcess } from '../../helpers/process.js';
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

// The verifier gives up (EAGAIN) when a signal is pending for the loading thread; V8's sampling
// profiler sends SIGPROF every few hundred µs, so before the loads ran with signals blocked,
// every `trace sni` under --cpu-prof failed with "failed to load: -11" (4 of 4 here).
test('a storm of signals while the BPF objects load (node --cpu-prof, SIGPROF every 100 µs) does not fail the load', { skip: kernelSkip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tlscope-prof-'));
  try {
    for (const gadget of [['trace', 'sni'], ['trace', 'tls'], ['capture']]) {
      const r = await startProcess(process.execPath, ['--cpu-prof', '--cpu-prof-interval', '100', `--cpu-prof-dir=${dir}`, CLI, ...gadget, '--host', '--timeout', '1'], { input: '', timeoutMs: 120_000 }).done;
      assert.equal(r.code, 0, `${gadget.join(' ')}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /failed to load/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
