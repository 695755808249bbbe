// SPDX-License-Identifier: Apache-2.0
// The eBPF runtime against the real kernel: programs, constants, maps, the ring-buffer reader,
// loss accounting, verifier errors, and nothing left attached after SIGKILL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { BpfObject } from '../../../src/ebpf/object.js';
import { VerifierError } from '../../../src/ebpf/errors.js';
import { RingBufReader } from '../../../src/ebpf/ringbuf.js';
import { ensureTracefs } from '../../../src/ebpf/tracefs.js';
import { TlscopeError } from '../../../src/errors.js';
import { startTrigger } from '../../helpers/trigger.js';
import { featureSkip } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip('bpf', 'btf', 'tracepoint', 'uprobe', 'ringbuf');


const EVENT_SIZE = 24;
const decodeSeq = (dv: DataView, off: number): bigint => dv.getBigUint64(off, true);

interface Run {
  got: number;
  outOfOrder: number;
  lost: bigint;
}

/** Loads selftest for one trigger process, lets it fire, reads everything back. */
async function runBurst(mode: 'getppid' | 'marker', triggers: number, burst: number, ringBytes: number): Promise<Run> {
  ensureTracefs();
  const trig = await startTrigger(mode, triggers);
  const prog = mode === 'getppid' ? 'on_getppid' : 'on_marker';
  const obj = BpfObject.load('selftest', { programs: [prog], constants: { target_tgid: trig.pid, burst }, maxEntries: { events: ringBytes } });
  try {
    if (mode === 'getppid') obj.program(prog).attachTracepoint('syscalls', 'sys_enter_getppid');
    else obj.program(prog).attachUprobe({ path: trig.path, symbol: 'tlscope_test_marker', pid: trig.pid });
    const reader = new RingBufReader(obj.map('events'), { decode: decodeSeq, lostCounter: obj.map('tlscope_lost') });
    const expected = triggers * burst;
    let got = 0;
    let outOfOrder = 0;
    let next = 0n;
    const done = trig.go().then(() => reader.close()); // close() drains what is already committed
    for await (const batch of reader) {
      for (const seq of batch) {
        if (seq !== next) outOfOrder++;
        next = seq + 1n;
      }
      got += batch.length;
    }
    await done;
    assert.ok(got <= expected);
    return { got, outOfOrder, lost: reader.lost() };
  } finally {
    trig.kill();
    obj.close();
  }
}

test('tracepoint: over a million events arrive exactly once and in order', { skip: kernelSkip }, async () => {
  const triggers = 16384;
  const burst = 64; // 1,048,576 events; the 64 MiB ring holds them all, so none may be lost
  const r = await runBurst('getppid', triggers, burst, 64 << 20);
  assert.equal(r.lost, 0n);
  assert.equal(r.outOfOrder, 0);
  assert.equal(r.got, triggers * burst);
});

test('uprobe in a test binary: over a million events arrive exactly once and in order', { skip: kernelSkip }, async () => {
  const triggers = 16384;
  const burst = 64;
  const r = await runBurst('marker', triggers, burst, 64 << 20);
  assert.equal(r.lost, 0n);
  assert.equal(r.outOfOrder, 0);
  assert.equal(r.got, triggers * burst);
});

test('a deliberately overfilled ring: received + lost is exactly what was emitted', { skip: kernelSkip }, async () => {
  ensureTracefs();
  const trig = await startTrigger('getppid', 1000);
  const burst = 50; // 50,000 events into a 64 KiB ring that nobody reads until the end
  const obj = BpfObject.load('selftest', { programs: ['on_getppid'], constants: { target_tgid: trig.pid, burst }, maxEntries: { events: 64 << 10 } });
  try {
    obj.program('on_getppid').attachTracepoint('syscalls', 'sys_enter_getppid');
    await trig.go();
    const reader = new RingBufReader(obj.map('events'), { decode: decodeSeq, lostCounter: obj.map('tlscope_lost') });
    const got = reader.drainNow(1 << 20);
    await reader.close();
    const lost = reader.lost();
    // The kernel keeps producer - consumer strictly below the ring size, so one slot stays free.
    const capacity = (64 << 10) / (EVENT_SIZE + 8) - 1;
    assert.equal(got.length, capacity, 'the ring holds exactly its capacity of 32-byte records');
    assert.equal(BigInt(got.length) + lost, 50_000n);
    assert.deepEqual(got.slice(0, 3), [0n, 1n, 2n]);
  } finally {
    trig.kill();
    obj.close();
  }
});

test('constants, maps and closed objects behave', { skip: kernelSkip }, () => {
  const obj = BpfObject.load('selftest', { programs: ['on_getppid'], constants: { target_tgid: 1, burst: 3 } });
  const m = obj.map('one_value');
  const k = Buffer.alloc(4);
  m.update(k, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]));
  assert.deepEqual([...(m.lookup(k) ?? [])], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(m.count(), 1);
  assert.throws(() => m.lookup(Buffer.alloc(3)), /key is 3 bytes/);
  assert.equal(obj.map('tlscope_lost').sumU64(), 0n);
  assert.equal(obj.structLayout('selftest_event')?.size, EVENT_SIZE);
  obj.close();
  assert.throws(() => obj.map('one_value'), (e: unknown) => e instanceof TlscopeError && e.code === 'ERR_CLOSED');
  assert.throws(
    () => BpfObject.load('selftest', { programs: ['on_getppid'], constants: { no_such_setting: 1 } }),
    (e: unknown) => e instanceof TlscopeError && e.code === 'ERR_NO_CONSTANT',
  );
});

test('the TypeScript view of selftest_event matches the compiled BTF layout', { skip: kernelSkip }, () => {
  const obj = BpfObject.load('selftest', { programs: ['on_getppid'] });
  try {
    const l = obj.structLayout('selftest_event');
    assert.deepEqual(l?.members.map((m) => [m.name, m.offset, m.size]), [['seq', 0, 8], ['ts_ns', 8, 8], ['cpu', 16, 4], ['pad', 20, 4]]);
  } finally {
    obj.close();
  }
});

test('a program the verifier refuses gives a one-line summary and the full log', { skip: kernelSkip }, () => {
  let err: unknown;
  try {
    BpfObject.load('selftest', { programs: ['reject_me'] }).close();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof VerifierError, `expected a VerifierError, got ${String(err)}`);
  assert.equal(err.program, 'reject_me');
  assert.match(err.summary, /^invalid access to map value, value_size=8 off=32 size=8.*\(at selftest\.bpf\.c:\d+: return \*\(v \+ 4\);\)$/);
  assert.ok(!err.message.includes('\n'), 'the message is one line');
  assert.match(err.log, /BEGIN PROG LOAD LOG[\s\S]*END PROG LOAD LOG/);
});

function idsOf(kind: 'prog' | 'link'): Set<number> {
  const out = JSON.parse(execFileSync('bpftool', ['-j', kind, 'list'], { encoding: 'utf8' }) || '[]') as { id: number }[];
  return new Set(out.map((x) => x.id));
}

test('after SIGKILL no program or link of ours remains', { skip: kernelSkip }, async () => {
  const holder = fileURLToPath(new URL('./fixtures/holder.js', import.meta.url));
  const child = spawn(process.execPath, [holder], { stdio: ['ignore', 'pipe', 'inherit'] });
  const first = await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next();
  const held = JSON.parse(String(first.value)) as { progs: number[]; links: number[] };
  assert.ok(held.progs.length >= 2 && held.links.length >= 2, 'the holder attached a tracepoint and a uprobe');
  const progsBefore = idsOf('prog');
  const linksBefore = idsOf('link');
  for (const id of held.progs) assert.ok(progsBefore.has(id));
  for (const id of held.links) assert.ok(linksBefore.has(id));
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  // The kernel frees them asynchronously (RCU), later still on a busy machine.
  let remaining: number[] = [];
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    const p = idsOf('prog');
    const l = idsOf('link');
    remaining = [...held.progs.filter((id) => p.has(id)), ...held.links.filter((id) => l.has(id))];
    if (remaining.length === 0) break;
  }
  assert.deepEqual(remaining, []);
});
