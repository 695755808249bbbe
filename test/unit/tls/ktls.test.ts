// SPDX-License-Identifier: Apache-2.0
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeKtls, deviceSockets, forcedKtlsHooks, kernelTlsFunctions, ktlsPrograms } from '../../../src/ebpf/ktls.js';
import { mergeBatches } from '../../../src/gadgets/tls/ktls.js';
import { decodeTlsChunk, FLAG_KTLS, TLS_EVENT_LAYOUT } from '../../../src/gadgets/tls/decode.js';

function tmp(name: string, text: string): { path: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'ktls-unit-'));
  const path = join(dir, name);
  writeFileSync(path, text);
  return { path, done: () => rmSync(dir, { recursive: true, force: true }) };
}

test('the tls_sw_* functions of a kernel, from kallsyms (6.1 has sendpage, 6.12 not)', () => {
  const k61 = tmp('kallsyms', 'ffffffffc0a00000 t tls_sw_sendmsg\t[tls]\nffffffffc0a00100 t tls_sw_sendpage\t[tls]\nffffffffc0a00200 t tls_sw_recvmsg\t[tls]\nffffffffc0a00300 t tls_sw_splice_read\t[tls]\nffffffffc0a00400 t tls_device_sendmsg\t[tls]\nffffffffc0a00500 t tls_sw_sendpage_locked\t[tls]\n');
  const k612 = tmp('kallsyms', '0000000000000000 T tls_sw_sendmsg\n0000000000000000 T tls_sw_recvmsg\n0000000000000000 T tls_sw_splice_read\n0000000000000000 t tls_sw_sendmsg_locked\n');
  try {
    assert.deepEqual(kernelTlsFunctions(k61.path), { functions: ['tls_sw_sendmsg', 'tls_sw_recvmsg', 'tls_sw_sendpage', 'tls_sw_splice_read'], device: true });
    assert.deepEqual(kernelTlsFunctions(k612.path), { functions: ['tls_sw_sendmsg', 'tls_sw_recvmsg', 'tls_sw_splice_read'], device: false });
    assert.deepEqual(kernelTlsFunctions('/nonexistent'), { functions: [], device: false });
  } finally {
    k61.done();
    k612.done();
  }
});

test('device-offloaded sockets from /proc/net/tls_stat', () => {
  const s = tmp('tls_stat', 'TlsCurrTxSw                     \t1\nTlsCurrRxSw                     \t1\nTlsCurrTxDevice                 \t2\nTlsCurrRxDevice                 \t3\nTlsTxSw                         \t7\n');
  try {
    assert.equal(deviceSockets(s.path), 5);
    assert.equal(deviceSockets('/nonexistent'), 0);
  } finally {
    s.done();
  }
});

test('programs per hook kind: fentry+fexit per function, kprobes share one kretprobe', () => {
  assert.deepEqual(ktlsPrograms('fentry', ['tls_sw_sendmsg', 'tls_sw_recvmsg']), ['ktls_fentry_sendmsg', 'ktls_fexit_sendmsg', 'ktls_fentry_recvmsg', 'ktls_fexit_recvmsg']);
  assert.deepEqual(ktlsPrograms('kprobe', ['tls_sw_sendmsg', 'tls_sw_sendpage']), ['ktls_kprobe_sendmsg', 'ktls_kprobe_sendpage', 'ktls_kretprobe']);
});

test("doctor's kTLS line says the hook kind, the sendfile path and that device offload is not covered", () => {
  const fns = ['tls_sw_sendmsg', 'tls_sw_recvmsg', 'tls_sw_sendpage', 'tls_sw_splice_read'] as const;
  assert.equal(
    describeKtls({ supported: true, hooks: 'fentry', functions: [...fns], sendfile: 'tls_sw_sendpage', deviceOffload: true, deviceSockets: 0 }),
    'fentry/fexit on tls_sw_sendmsg, tls_sw_recvmsg, tls_sw_splice_read; sendfile/splice through tls_sw_sendpage (page-cache pages); device-offloaded kTLS (tls_device_*, 0 sockets now) is not covered',
  );
  assert.match(describeKtls({ supported: true, hooks: 'kprobe', fentryRefused: 'EPERM', functions: ['tls_sw_sendmsg', 'tls_sw_recvmsg'], sendfile: 'tls_sw_sendmsg', deviceOffload: false, deviceSockets: 0 }), /^kprobe\/kretprobe \(fentry refused: EPERM\) on tls_sw_sendmsg, tls_sw_recvmsg; sendfile\/splice through tls_sw_sendmsg \(ITER_BVEC pages\); no device offload in this kernel$/);
  assert.equal(describeKtls({ supported: false, reason: 'the kernel has no CONFIG_TLS', functions: [], deviceOffload: false, deviceSockets: 0 }), 'the kernel has no CONFIG_TLS');
});

test('a library record marked by the kTLS hooks decodes as openssl+ktls', () => {
  const L = TLS_EVENT_LAYOUT;
  const b = new DataView(new ArrayBuffer(L.size + 3));
  b.setUint32(L.chunk_len, 3, true);
  b.setUint32(L.captured_len, 3, true);
  b.setUint32(L.total_len, 3, true);
  b.setUint8(L.source, 1);
  b.setUint8(L.func, 3);
  b.setUint8(L.flags, FLAG_KTLS);
  assert.equal(decodeTlsChunk(b, 0, L.size + 3).source, 'openssl+ktls');
  b.setUint8(L.flags, 0);
  assert.equal(decodeTlsChunk(b, 0, L.size + 3).source, 'openssl');
  b.setUint8(L.source, 4);
  b.setUint8(L.func, 13); // TLS_FN_KTLS_SENDPAGE (bpf/include/tls.h)
  const k = decodeTlsChunk(b, 0, L.size + 3);
  assert.equal(k.source, 'ktls');
  assert.equal(k.func, 'tls_sw_sendpage');
});

test('mergeBatches gives every batch of every source, and ends when all end', async () => {
  async function* src(name: string, n: number, delayMs: number): AsyncGenerator<string[]> {
    for (let i = 0; i < n; i++) {
      await new Promise((r) => setTimeout(r, delayMs));
      yield [`${name}${i}`];
    }
  }
  const got: string[] = [];
  for await (const b of mergeBatches([src('a', 3, 5), src('b', 2, 7), src('c', 0, 1)])) got.push(...b);
  assert.deepEqual(got.sort(), ['a0', 'a1', 'a2', 'b0', 'b1']);
});

test('TLSCOPE_KTLS_HOOKS (for tests) forces fentry or kprobe; other values are refused; doctor says it was forced', () => {
  assert.equal(forcedKtlsHooks({}), undefined);
  assert.equal(forcedKtlsHooks({ TLSCOPE_KTLS_HOOKS: '' }), undefined);
  assert.equal(forcedKtlsHooks({ TLSCOPE_KTLS_HOOKS: 'kprobe' }), 'kprobe');
  assert.equal(forcedKtlsHooks({ TLSCOPE_KTLS_HOOKS: 'fentry' }), 'fentry');
  assert.throws(() => forcedKtlsHooks({ TLSCOPE_KTLS_HOOKS: 'kprobes' }), /TLSCOPE_KTLS_HOOKS=kprobes: fentry or kprobe/);
  const base = { supported: true, functions: ['tls_sw_sendmsg', 'tls_sw_recvmsg'] as const, sendfile: 'tls_sw_sendmsg' as const, deviceOffload: false, deviceSockets: 0 };
  assert.match(describeKtls({ ...base, functions: [...base.functions], hooks: 'kprobe', forced: true, fentryRefused: 'not tried' }), /^kprobe\/kretprobe \(forced by TLSCOPE_KTLS_HOOKS; fentry not tried\) on tls_sw_sendmsg/);
  assert.match(describeKtls({ ...base, functions: [...base.functions], hooks: 'fentry', forced: true }), /^fentry\/fexit \(forced by TLSCOPE_KTLS_HOOKS\) on/);
  assert.match(describeKtls({ ...base, functions: [...base.functions], hooks: 'fentry' }), /^fentry\/fexit on/);
});
