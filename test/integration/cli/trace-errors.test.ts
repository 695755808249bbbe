// SPDX-License-Identifier: Apache-2.0
// What a user who gets something wrong sees from a tracing command: a clear message, a hint,
// the right exit code, and nothing left attached.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { AS_NOBODY, runCliSync, type RanSync } from '../../helpers/cli.js';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.sni);


const tlscope = (args: string[], prefix: readonly string[] = []): RanSync => runCliSync(args, { prefix, timeoutMs: 30_000 });

test('bad flags are usage errors (exit 2) that name the problem', () => {
  const cases: [string[], RegExp][] = [
    [['trace', 'sni', '--bogus'], /--bogus/],
    [['trace', 'sni', '-o', 'xml'], /unknown output format "xml"/],
    [['trace', 'sni', '--timeout', 'soon'], /--timeout wants a whole number/],
    [['trace', 'sni', '--fields', 'pid,nope'], /unknown field "nope"/],
    [['trace', 'sni', '--filter', 'name~('], /bad regular expression/],
    [['trace', 'sni', '-r', 'lxc'], /unknown runtime "lxc"/],
    [['trace', 'sni', '-p', 'abc'], /"abc" is not a process id/],
    [['trace', 'sni', '--k8s-selector', 'novalue'], /is not key=value/],
  ];
  for (const [args, re] of cases) {
    const r = tlscope(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
  }
});

test('--help teaches: scope rules, examples and every field', () => {
  const r = tlscope(['trace', 'sni', '--help']);
  assert.equal(r.code, 0);
  for (const s of ['-c, --containername NAME', '--k8s-podname POD', 'With no filter, the host and every container are traced', 'Examples:', 'proc.comm', 'tlsVersion']) {
    assert.ok(r.stdout.includes(s), `help mentions ${s}`);
  }
});

test('not root: trace sni refuses with the privileges it needs (exit 4)', { skip: kernelSkip }, () => {
  const r = tlscope(['trace', 'sni', '--timeout', '1'], AS_NOBODY);
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /tlscope trace sni needs CAP_BPF, CAP_PERFMON, CAP_NET_RAW/);
  assert.match(r.stderr, /hint: run as root, or with CAP_BPF, CAP_PERFMON, CAP_NET_RAW/);
});

test('a container that never appears: said to be awaited, then an error at --timeout', { skip: kernelSkip }, () => {
  const r = tlscope(['trace', 'sni', '-c', 'no-such-container-tlscope', '--timeout', '2']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /waiting for container no-such-container-tlscope to start \(up to 2 s\)/);
  assert.match(r.stderr, /container no-such-container-tlscope never appeared/);
  assert.match(r.stderr, /hint: check the name with `tlscope containers`/);
});

test('-p with no such process and --max-bytes 0 are usage errors (exit 2) before anything loads', () => {
  let pid = 999999;
  while (existsSync(`/proc/${pid}`)) pid++;
  for (const cmd of [['trace', 'sni'], ['trace', 'tls'], ['capture']]) {
    const r = tlscope([...cmd, '-p', String(pid), '--timeout', '5']);
    assert.equal(r.code, 2, `${cmd.join(' ')} -p ${pid}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`-p ${pid}: no such process`));
    assert.match(r.stderr, /hint: give the host pid of a running process/);
  }
  // a real pid next to a missing one: still an error (naming the missing one)
  const mixed = tlscope(['trace', 'sni', '-p', `${process.pid},${pid}`, '--timeout', '5']);
  assert.equal(mixed.code, 2, mixed.stderr);
  assert.match(mixed.stderr, new RegExp(`-p ${pid}: no such process`));
  for (const v of ['0', '0k']) {
    const r = tlscope(['trace', 'tls', '--max-bytes', v, '--timeout', '5']);
    assert.equal(r.code, 2, `--max-bytes ${v}: ${r.stderr}`);
    assert.match(r.stderr, /--max-bytes wants a size ≥ 1 bytes/);
    assert.match(r.stderr, /hint: --max-bytes 0 would keep nothing/);
  }
});
