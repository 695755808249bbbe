// SPDX-License-Identifier: Apache-2.0
// `capture --all-netns`: every network namespace of the host, also those that belong to no
// container (`ip netns add`), found when they are created: traffic in a namespace made after
// the capture started is captured and labelled with that namespace. Plain `capture` (the
// host's namespace, as tcpdump) does not see it. Issue 9 (6).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.capture);
import { runProcess } from '../../helpers/process.js';
import { Capture, marker, waitUntil } from './helpers.js';

const namespaces: string[] = [];

after(async () => {
  for (const ns of namespaces) await runProcess('ip', ['netns', 'del', ns]).catch(() => undefined);
});

async function ip(...args: string[]): Promise<void> {
  const r = await runProcess('ip', args);
  assert.equal(r.code, 0, `ip ${args.join(' ')}: ${r.stderr}`);
}

test('--all-netns captures in a namespace made by ip netns add after the start; plain capture does not', { skip: kernelSkip, timeout: 120_000 }, async () => {
  const all = new Capture(['--all-netns', '-A', 'udp port 9']);
  const host = new Capture(['-A', 'udp port 9']);
  try {
    await all.listening(1);
    await host.listening(1);
    const ns = `tlscope-allns-${process.pid}`;
    namespaces.push(ns);
    await ip('netns', 'add', ns);
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    const text = marker('allnetns');
    // the namespace is found when created; send until its socket is in (bounded), then once more
    await waitUntil('the new namespace captured', async () => {
      await runProcess('ip', ['netns', 'exec', ns, 'sh', '-c', `printf '${text}' > /dev/udp/127.0.0.1/9 2>/dev/null || python3 -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'${text}', ('127.0.0.1', 9))"`]);
      return all.stdoutText.includes(text);
    }, 15_000, () => all.stderr);
    assert.match(all.stderr, /listening on .* netns \d+/, 'a listening line for the new namespace');
    await ip('netns', 'del', ns);
    namespaces.pop();
  } finally {
    const a = await all.stop();
    const h = await host.stop();
    assert.equal(a.code, 0, a.stderr);
    assert.equal(h.code, 0, h.stderr);
    assert.ok(!h.stdout.toString().includes('allnetns-'), 'plain capture (the host namespace) did not see the other namespace');
  }
});

test('--all-netns with another scope flag is a usage error', { skip: kernelSkip, timeout: 30_000 }, async () => {
  const r = await runProcess(process.execPath, [new URL('../../../src/cli/bin.js', import.meta.url).pathname, 'capture', '--all-netns', '--host']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--all-netns takes no other scope flag/);
});
