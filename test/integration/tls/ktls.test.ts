// SPDX-License-Identifier: Apache-2.0
/**
 * The kTLS source on this host. The tests that drive kernel TLS sockets are in
 * test/kernels/ktls.test.ts and run in qemu guests (Debian 6.1 and 6.12, npm test's kernels
 * phase); here, on a kernel without kTLS, they would skip, and this checks the reason they
 * would give is the measured one and the one doctor and `trace tls --sources ktls` give.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { ktlsSupport } from '../../../src/ebpf/ktls.js';
import { notRoot } from '../../helpers/root.js';
import { runCliSync } from '../../helpers/cli.js';
import { featureExpected, kernelConfig } from '../../helpers/features.js';

const support = ktlsSupport();

test('kTLS is supported exactly when the kernel was built with it (CONFIG_TLS, its module): the probe is not trusted on its own', { skip: notRoot }, () => {
  const want = featureExpected('ktls');
  const ulps = readFileSync('/proc/sys/net/ipv4/tcp_available_ulp', 'utf8');
  if (want.expected) {
    assert.equal(support.supported, true, `this kernel should have kTLS (${kernelConfig()?.source ?? 'no config to read'}; ULPs: ${ulps.trim()}), yet the probe says: ${support.reason}`);
  } else {
    assert.equal(support.supported, false, `kTLS works although ${want.why}`);
    assert.doesNotMatch(ulps, /\btls\b/, 'no "tls" ULP is registered');
  }
});

test('without kTLS: the reason is measured (setsockopt TCP_ULP "tls" on loopback) and doctor and trace tls give it', { skip: notRoot || (support.supported ? 'this kernel has kTLS: the kernel tests (test/kernels) cover it' : false) }, () => {
  const reason = support.reason ?? '';
  const ulps = readFileSync('/proc/sys/net/ipv4/tcp_available_ulp', 'utf8');
  assert.doesNotMatch(ulps, /\btls\b/, 'the "tls" ULP is registered, yet the probe failed');
  if (!existsSync(`/sys/module/tls`)) assert.match(reason, /CONFIG_TLS|tls module|modprobe tls/);
  // doctor's kTLS line carries the same words
  const d = runCliSync(['doctor', '-o', 'json']);
  const rep = JSON.parse(d.stdout) as { gadgets: { gadget: string; status: string; detail: string }[]; features: { feature: string; supported: boolean; reason?: string }[] };
  const line = rep.gadgets.find((g) => g.gadget === 'trace tls: kTLS');
  assert.equal(line?.status, 'unavailable');
  assert.ok(line?.detail.includes(reason), `doctor: ${line?.detail}`);
  assert.equal(rep.features.find((f) => f.feature === 'ktls')?.reason, reason);
  // asked for explicitly, trace tls refuses with it (exit 3: not supported here)
  const t = runCliSync(['trace', 'tls', '--sources', 'ktls', '--timeout', '5'], { timeoutMs: 60_000 });
  assert.notEqual(t.code, 0);
  assert.ok(t.stderr.includes(reason), t.stderr);
  // by default it runs without kTLS and says why with -v
  const v = runCliSync(['trace', 'tls', '-v', '--timeout', '2', '-o', 'json'], { timeoutMs: 90_000 });
  assert.equal(v.code, 0, v.stderr);
  assert.ok(v.stderr.includes(`kTLS: off (${reason})`), v.stderr);
});
