// SPDX-License-Identifier: Apache-2.0
// The feature skip rule (test/helpers/features.ts): skip only on a kernel too old for the
// feature or built without it; otherwise the feature is expected to work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { featureExpected, kernelAtLeast, kernelVersion, parseKernelConfig } from '../../helpers/features.js';

const config = parseKernelConfig([
  'CONFIG_BPF_SYSCALL=y',
  'CONFIG_DEBUG_INFO_BTF=y',
  'CONFIG_BPF_JIT=y',
  'CONFIG_BPF_EVENTS=y',
  'CONFIG_FTRACE_SYSCALLS=y',
  '# CONFIG_KPROBES is not set',
  'CONFIG_KPROBE_EVENTS=y',
  'CONFIG_TLS=m',
  'CONFIG_LOCALVERSION="-test"',
].join('\n'), 'fixture');

test('kernel versions compare numerically, with distribution suffixes', () => {
  assert.deepEqual(kernelVersion('6.1.0-18-amd64'), [6, 1, 0]);
  assert.deepEqual(kernelVersion('6.18.44-fc-v1098'), [6, 18, 44]);
  assert.deepEqual(kernelVersion('5.10'), [5, 10, 0]);
  assert.equal(kernelAtLeast('6.16', '6.18.44-fc'), true);
  assert.equal(kernelAtLeast('6.16', '6.9.1'), false, '6.9 < 6.16: not a string comparison');
  assert.equal(kernelAtLeast('5.8', '5.8.0'), true);
  assert.equal(kernelAtLeast('5.8', '5.7.19'), false);
});

test('config lines: set, not set, quoted values, absent', () => {
  assert.equal(config.get('CONFIG_BPF_SYSCALL'), 'y');
  assert.equal(config.get('CONFIG_KPROBES'), 'n');
  assert.equal(config.get('CONFIG_LOCALVERSION'), '-test');
  assert.equal(config.get('CONFIG_NOPE'), undefined);
});

test('a feature is excused by an old kernel or a config without it, and only then', () => {
  assert.deepEqual(featureExpected('ringbuf', '6.1.0', config), { expected: true });
  const old = featureExpected('ringbuf', '5.4.0', config);
  assert.equal(old.expected, false);
  assert.match(old.expected ? '' : old.why, /older than 5\.8/);
  const kprobe = featureExpected('kprobe', '6.1.0', config);
  assert.equal(kprobe.expected, false);
  assert.match(kprobe.expected ? '' : kprobe.why, /built without CONFIG_KPROBES \(fixture\)/);
  // no config to read: the version alone decides (cilium's rule), so the feature must work
  assert.deepEqual(featureExpected('kprobe', '6.1.0', null), { expected: true });
  assert.deepEqual(featureExpected('tp_tcp_sendmsg_locked', '6.16.0', config), { expected: true });
  assert.equal(featureExpected('tp_tcp_sendmsg_locked', '6.15.9', config).expected, false);
});
