// SPDX-License-Identifier: Apache-2.0
// `tlscope doctor` end to end: the real binary, the real kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { probeFeature } from '../../../src/ebpf/features.js';
import { notRoot } from '../../helpers/root.js';

const bin = fileURLToPath(new URL('../../../src/cli/bin.js', import.meta.url));
const run = (args: string[], pre: string[] = []) =>
  spawnSync(pre.length ? pre[0]! : process.execPath, [...pre.slice(1), ...(pre.length ? [process.execPath] : []), bin, ...args], { encoding: 'utf8' });

test('doctor -o json reports every probed feature and agrees with an in-process probe', { skip: notRoot }, () => {
  const r = run(['doctor', '-o', 'json']);
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as { host: { privileged: boolean }; features: { feature: string; supported: boolean; reason?: string }[]; gadgets: { gadget: string; status: string }[] };
  assert.equal(rep.host.privileged, true);
  assert.ok(rep.features.length >= 14);
  for (const f of rep.features) {
    const here = probeFeature(f.feature as Parameters<typeof probeFeature>[0]);
    assert.equal(f.supported, here.supported, `${f.feature}: ${f.reason ?? ''}`);
    if (!f.supported) assert.ok(f.reason && f.reason.length > 10, `${f.feature} says why`);
  }
  const ktls = rep.gadgets.find((g) => g.gadget === 'trace tls: kTLS');
  // the ktls probe attaches the hooks on the tls_sw_* functions itself (src/ebpf/ktls.ts)
  assert.equal(ktls?.status === 'unavailable', !probeFeature('ktls').supported);
});

test('doctor as an unprivileged user exits 1 and says to run as root', { skip: notRoot }, () => {
  const r = run(['doctor'], ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all']);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /privileges\s+missing\s+unprivileged \(run as root/);
  assert.match(r.stderr, /nothing can run on this host: not root and without the capabilities the gadgets need/);
});

test('a bad output format is a usage error (exit 2)', () => {
  const r = run(['doctor', '-o', 'yaml']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown output format "yaml"/);
});
