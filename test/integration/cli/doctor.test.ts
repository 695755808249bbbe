// SPDX-License-Identifier: Apache-2.0
// `tlscope doctor` end to end: the real binary, the real kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import type { FeatureName } from '../../../src/ebpf/features.js';
import { BPF_MAP_TYPE_RINGBUF, BPF_PROG_TYPE_SOCKET_FILTER, rawBpf } from '../../helpers/bpf-raw.js';
import { featureExpected, featureSkip, kernelConfig } from '../../helpers/features.js';
import { AS_NOBODY, runCliSync } from '../../helpers/cli.js';
import { notRoot } from '../../helpers/root.js';


/** root and bpf(2) (doctor itself needs neither, but these tests compare with the kernel) */
const kernelSkip = featureSkip('bpf');

/** tracefs, wherever it is mounted (tlscope mounts it when it is not: by now it is) */
function tracefs(path: string): boolean {
  return ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'].some((root) => existsSync(`${root}/${path}`));
}

function cgroup2Mounted(): boolean {
  return readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[2] === 'cgroup2');
}

/**
 * Whether each feature works here, from evidence that shares no code with tlscope's probes:
 * the kernel's version and build config (test/helpers/features.ts), a raw bpf(2) call from a
 * C program, tracefs event files, /sys/kernel/btf, the mounts. A probe that breaks reports
 * "not supported" where this says it works, and fails here.
 */
const evidence: Record<FeatureName, () => boolean> = {
  bpf: () => rawBpf('prog', BPF_PROG_TYPE_SOCKET_FILTER) === 'ok',
  socket_filter: () => rawBpf('prog', BPF_PROG_TYPE_SOCKET_FILTER) === 'ok',
  ringbuf: () => featureExpected('ringbuf').expected && rawBpf('map', BPF_MAP_TYPE_RINGBUF) === 'ok',
  btf: () => existsSync('/sys/kernel/btf/vmlinux'),
  tracepoint: () => featureExpected('tracepoint').expected && tracefs('events/syscalls/sys_enter_getppid'),
  tp_btf: () => featureExpected('tp_btf').expected && existsSync('/sys/kernel/btf/vmlinux'),
  raw_tp: () => featureExpected('raw_tp').expected && tracefs('events/sched/sched_process_exit'),
  uprobe: () => featureExpected('uprobe').expected && tracefs('uprobe_events'),
  uprobe_multi: () => featureExpected('uprobe_multi').expected && tracefs('uprobe_events'),
  fentry: () => featureExpected('fentry').expected,
  kprobe: () => featureExpected('kprobe').expected && tracefs('kprobe_events'),
  tcx: () => featureExpected('tcx').expected,
  cgroup_skb: () => featureExpected('cgroup_skb').expected && cgroup2Mounted(),
  ktls: () => featureExpected('ktls').expected,
  tp_tcp_sendmsg_locked: () => tracefs('events/tcp/tcp_sendmsg_locked'),
  fanotify_perm: () => featureExpected('fanotify_perm').expected,
};

test('doctor -o json: every feature agrees with evidence independent of its probes (kernel config, raw bpf(2), tracefs)', { skip: kernelSkip }, () => {
  const r = runCliSync(['doctor', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as { host: { privileged: boolean }; features: { feature: string; supported: boolean; reason?: string }[]; gadgets: { gadget: string; status: string }[] };
  assert.equal(rep.host.privileged, true);
  assert.deepEqual(rep.features.map((f) => f.feature).sort(), Object.keys(evidence).sort(), 'doctor reports each feature this test has evidence for');
  const config = kernelConfig()?.source ?? 'no kernel config readable';
  for (const f of rep.features) {
    const want = evidence[f.feature as FeatureName]();
    const expected = featureExpected(f.feature as FeatureName);
    assert.equal(f.supported, want, `${f.feature}: doctor says ${f.supported ? 'supported' : `not supported (${f.reason ?? ''})`}; the evidence (${config}${expected.expected ? '' : `: ${expected.why}`}) says ${want ? 'it works' : 'it cannot'}`);
    if (!f.supported) assert.ok(f.reason && f.reason.length > 10, `${f.feature} says why`);
  }
  const ktls = rep.gadgets.find((g) => g.gadget === 'trace tls: kTLS');
  assert.equal(ktls?.status === 'unavailable', !evidence.ktls(), `kTLS gadget line: ${JSON.stringify(ktls)}`);
});

test('doctor as an unprivileged user exits 1 and says to run as root', { skip: notRoot }, () => {
  const r = runCliSync(['doctor'], { prefix: AS_NOBODY });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /privileges\s+missing\s+unprivileged \(run as root/);
  assert.match(r.stderr, /nothing can run on this host: not root and without the capabilities the gadgets need/);
});

test('a bad output format is a usage error (exit 2)', () => {
  const r = runCliSync(['doctor', '-o', 'yaml']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown output format "yaml"/);
});
