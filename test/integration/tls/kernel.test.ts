// SPDX-License-Identifier: Apache-2.0
// The trace tls kernel side through the gadget in-process: the event layout against BTF, no
// state left behind by a process killed in the middle of a call (OpenSSL and Go), --max-bytes,
// a library a running process maps later (dlopen), and nothing attached after tlscope exits —
// even by SIGKILL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject } from '../../../src/ebpf/object.js';
import { TLS_EVENT_LAYOUT, TLS_HINT_SIZE } from '../../../src/gadgets/tls/decode.js';
import { TUPLE_LAYOUT } from '../../../src/net/tuple.js';
import { PROC_LAYOUT } from '../../../src/gadgets/proc-record.js';
import { bpfIdsHeldBy } from '../../helpers/bpf-held.js';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.tls);
import { CliTracer, buildGoApp, goSkipReason, makeWorkDir, pyResponse, startPyServer, type GoApp, type Session, openSession } from './helpers.js';
import { startProcess } from '../../helpers/process.js';
import { sleep, waitUntil } from '../../helpers/wait.js';

let work: ReturnType<typeof makeWorkDir>;
let session: Session;

before(() => {
  if (kernelSkip) return;
  work = makeWorkDir('tlscope-tls-kernel-');
  session = openSession({}, { maxBytes: 1000 });
});

after(async () => {
  if (kernelSkip) return;
  await session?.close();
  work?.remove();
});

test('struct tls_event, tls_hint and the shared tlscope_tuple and tlscope_proc: the TypeScript decoders match the compiled BTF layout', { skip: kernelSkip }, () => {
  const obj = BpfObject.load('tls');
  try {
    const l = obj.structLayout('tls_event');
    assert.equal(l?.size, TLS_EVENT_LAYOUT.size);
    const at = new Map(l?.members.map((m) => [m.name, m.offset]));
    for (const [name, off] of Object.entries(TLS_EVENT_LAYOUT)) {
      if (name === 'size') continue;
      assert.equal(at.get(name), off, `offset of ${name}`);
    }
    assert.equal(obj.structLayout('tls_hint')?.size, TLS_HINT_SIZE);
    // the nested structs, read by the shared decoders (src/net/tuple.ts, src/gadgets/proc-record.ts)
    for (const [name, want] of [['tlscope_tuple', TUPLE_LAYOUT], ['tlscope_proc', PROC_LAYOUT]] as const) {
      const s = obj.structLayout(name);
      assert.equal(s?.size, want.size, `${name} size`);
      const offsets = new Map(s?.members.map((m) => [m.name, m.offset]));
      for (const [field, offset] of Object.entries(want)) if (field !== 'size') assert.equal(offsets.get(field), offset, `${name}.${field}`);
    }
  } finally {
    obj.close();
  }
});

const HANG_PY = `
import socket, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[1]))), server_hostname='hang.test')
s.sendall(b'GET /never HTTP/1.1\\r\\nHost: hang.test\\r\\n\\r\\n')
print('reading', flush=True)
s.recv(100)
`;

/** Entries the kernel keeps for a process (calls, sessions, the pid) and the thread's socket record. */
function stateOf(pid: number): { keyed: number; threadIo: boolean } {
  const m = session.gadget.kernelMaps();
  return { keyed: m.keysOf(pid), threadIo: m.threadHas(pid) };
}

test('a process killed in the middle of SSL_read_ex leaves no map entries behind', { skip: kernelSkip }, async () => {
  const silent = await startPyServer(work, 'silent');
  const script = join(work.dir, 'hang.py');
  writeFileSync(script, HANG_PY);
  try {
    const p = startProcess('python3', [script, String(silent.port)], { timeoutMs: 60_000 });
    await waitUntil('the client to block in SSL_read_ex', () => p.output().includes('reading'));
    await waitUntil('its call in the kernel map', () => session.gadget.kernelMaps().callsOf(p.pid) > 0);
    assert.equal(stateOf(p.pid).threadIo, true, 'its socket I/O is recorded');
    // the write's event reaches us through the ring buffer, after the call that follows it may be in the map
    await waitUntil('the write of its request as an event', () =>
      session.of(p.pid).some((e) => e.direction === 'write' && Buffer.from(e.data).toString().startsWith('GET /never')));
    p.child.kill('SIGKILL');
    await p.done;
    await waitUntil('the exit to clear its entries', () => stateOf(p.pid).keyed === 0 && !stateOf(p.pid).threadIo, 15_000)
      .catch((e: Error) => assert.fail(`${e.message}; left: ${JSON.stringify({ ...stateOf(p.pid), calls: session.gadget.kernelMaps().callsOf(p.pid) })}`));
  } finally {
    await silent.close();
  }
});

let goApp: GoApp | undefined;

test('a Go program killed in the middle of (*Conn).Read leaves no map entries behind', { skip: kernelSkip || goSkipReason() }, async () => {
  goApp ??= buildGoApp(work.dir);
  const silent = await startPyServer(work, 'silent');
  try {
    const p = startProcess(goApp.path, ['hang', `127.0.0.1:${silent.port}`], { timeoutMs: 60_000 });
    await waitUntil('the Go binary to be probed', () => session.gadget.attachedFiles().some((f) => f.source === 'go' && f.path.endsWith('/tlsapp')));
    await sleep(200);
    p.child.stdin!.write('go\n');
    await waitUntil('the Go client to block in Read', () => p.output().includes('reading'));
    await waitUntil('its goroutine-keyed call in the kernel map', () => session.gadget.kernelMaps().callsOf(p.pid) > 0);
    p.child.kill('SIGKILL');
    await p.done;
    await waitUntil('the exit to clear its entries', () => stateOf(p.pid).keyed === 0, 15_000);
  } finally {
    await silent.close();
  }
});

test('max bytes: a long call is cut at the limit and says so', { skip: kernelSkip }, async () => {
  const body = Buffer.alloc(5000, 'x');
  const file = join(work.dir, 'five-k.txt');
  writeFileSync(file, body);
  const server = await startPyServer(work, 'file', { file });
  try {
    const r = await startProcess('curl', ['-sk', '--resolve', `cut.test:${server.port}:127.0.0.1`, `https://cut.test:${server.port}/`, '-o', '/dev/null']).done;
    assert.equal(r.code, 0, r.stderr);
    const response = pyResponse(body);
    await waitUntil('the server\'s write', () => session.of(server.pid).some((e) => e.direction === 'write'));
    const w = session.of(server.pid).find((e) => e.direction === 'write')!;
    assert.equal(w.len, response.length);
    assert.equal(w.data.length, 1000);
    assert.equal(w.truncated, true);
    assert.deepEqual(Buffer.from(w.data), response.subarray(0, 1000));
    // curl reads in pieces; each piece is cut on its own
    await waitUntil('curl\'s reads', () => session.of(r.pid).filter((e) => e.direction === 'read').reduce((n, e) => n + e.len, 0) >= response.length);
    for (const e of session.of(r.pid)) assert.equal(e.truncated, e.len > 1000);
    assert.ok(session.gadget.stats().truncatedCalls >= 1);
  } finally {
    await server.close();
  }
});

test('a library a running process maps later (dlopen from its own directory) is probed', { skip: kernelSkip }, async () => {
  // a private copy of libssl in a directory tlscope never looks into: found only in /proc/PID/maps
  const libdir = join(work.dir, 'private-lib');
  mkdirSync(libdir, { recursive: true });
  const host = execFileSync('python3', ['-c', 'import _ssl, sys; print(_ssl.__file__)'], { encoding: 'utf8' }).trim();
  const libssl = /=>\s*(\S*libssl\.so\.3)/.exec(execFileSync('ldd', [host], { encoding: 'utf8' }))?.[1];
  assert.ok(libssl !== undefined, 'python\'s _ssl links libssl.so.3');
  copyFileSync(libssl, join(libdir, 'libssl.so.3'));
  const server = await startPyServer(work);
  const script = join(work.dir, 'late.py');
  writeFileSync(script, `
import sys, time
print('started', flush=True)
sys.stdin.readline()
import ssl, socket
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
print('loaded', flush=True)
sys.stdin.readline()
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[1]))), server_hostname='late.test')
s.sendall(b'GET /late HTTP/1.1\\r\\nHost: late.test\\r\\n\\r\\n')
got = b''
while len(got) < int(sys.argv[2]):
    got += s.recv(65536)
print('done', flush=True)
`);

  try {
    // the positive marker for "not probed before it is mapped": tlscope has looked at the
    // process (its maps, through the gadget's watchProcess) while it ran without libssl
    const looked: number[] = [];
    const watchProcess = session.gadget.watchProcess;
    session.gadget.watchProcess = (pid: number): void => {
      watchProcess.call(session.gadget, pid);
      looked.push(pid);
    };
    const p = startProcess('python3', [script, String(server.port), String(pyResponse().length)], { env: { ...process.env, LD_LIBRARY_PATH: libdir }, timeoutMs: 60_000 });
    try {
      await waitUntil('python to start', () => p.output().includes('started'));
      await waitUntil(`tlscope to look at pid ${p.pid} (exec hint or rescan)`, () => looked.includes(p.pid), 15_000);
    } finally {
      session.gadget.watchProcess = watchProcess;
    }
    assert.ok(!session.gadget.attachedFiles().some((f) => f.path.includes('private-lib')), 'not probed before it is mapped');
    p.child.stdin!.write('\n');
    await waitUntil('python to load ssl', () => p.output().includes('loaded'));
    await waitUntil('the private libssl to be probed', () => session.gadget.attachedFiles().some((f) => f.path.endsWith('private-lib/libssl.so.3') && f.source === 'openssl'), 15_000);
    p.child.stdin!.write('\n');
    await waitUntil('the exchange', () => p.output().includes('done'));
    await waitUntil('its events', () => session.of(p.pid).filter((e) => e.direction === 'read').reduce((n, e) => n + e.len, 0) >= pyResponse().length);
    const evs = session.of(p.pid);
    assert.ok(evs.every((e) => e.library === join(libdir, 'libssl.so.3')), `events come from the private copy: ${evs.map((e) => e.library).join(', ')}`);
    assert.equal(Buffer.concat(evs.filter((e) => e.direction === 'write').map((e) => e.data)).toString(), 'GET /late HTTP/1.1\r\nHost: late.test\r\n\r\n');
    p.child.stdin!.end();
    await p.done;
  } finally {
    await server.close();
  }
});

function programExists(id: number): boolean {
  return spawnSync('bpftool', ['prog', 'show', 'id', String(id)], { stdio: 'ignore' }).status === 0;
}

for (const signal of ['SIGINT', 'SIGKILL'] as const) {
  test(`nothing stays attached after tlscope trace tls exits (${signal})`, { skip: kernelSkip }, async () => {
    const tracer = new CliTracer(['--host']);
    await tracer.ready();
    const ids = bpfIdsHeldBy(tracer.child.pid ?? 0, 'prog');
    assert.ok(ids.size >= 10, `tlscope holds its programs (${ids.size})`);
    assert.ok([...ids].every(programExists));
    if (signal === 'SIGKILL') tracer.child.kill(signal);
    const r = await tracer.stop(); // SIGINT, when it still runs
    if (signal === 'SIGINT') assert.equal(r.code, 0, r.stderr);
    await waitUntil('the kernel to free every program (and so every probe holding one)', () => [...ids].every((id) => !programExists(id)), 30_000);
  });
}

test('kernels before 6.3: per-offset uprobe links, sockets from the fds of read/write/send/recv system calls — same events', { skip: kernelSkip }, async () => {
  const server = await startPyServer(work);
  // before 6.3: no sock_send_length/sock_recv_length; before 6.6: no uprobe_multi
  const old = openSession({}, { tupleHooks: 'syscalls', uprobeMulti: false });
  try {
    assert.equal(old.gadget.tupleHooks, 'syscalls');
    assert.equal(old.gadget.multi, false);
    assert.equal(session.gadget.tupleHooks, 'sock', 'this kernel has the tracepoints');
    assert.equal(session.gadget.multi, true, 'and uprobe_multi');
    const r = await startProcess('curl', ['-sk', '--resolve', `old.test:${server.port}:127.0.0.1`, `https://old.test:${server.port}/old-kernel`]).done;
    assert.equal(r.code, 0, r.stderr);
    await waitUntil('curl\'s events in both sessions', () => [old, session].every((s) => s.of(r.pid).some((e) => e.direction === 'read')));
    const req = server.requests.at(-1)!;
    for (const s of [old, session]) {
      for (const e of s.of(r.pid)) {
        assert.equal(e.local, `127.0.0.1:${req.clientPort}`);
        assert.equal(e.remote, `127.0.0.1:${server.port}`);
        // a write sends during the call; a read either receives during it or is served from
        // what the TLS session buffered (then the socket is the one remembered for the session)
        if (e.direction === 'write') assert.equal(e.tupleSource, 'socket', `${s === old ? 'syscalls' : 'sock'} mode: a write`);
        else assert.ok(e.tupleSource === 'socket' || e.tupleSource === 'session', `${s === old ? 'syscalls' : 'sock'} mode: a read's tuple came from ${e.tupleSource}`);
        assert.match(e.library ?? '', /libssl\.so\.3$/, 'the attach cookie names the file in both modes');
      }
    }
    assert.deepEqual(Buffer.concat(old.of(r.pid).map((e) => e.data)), Buffer.concat(session.of(r.pid).map((e) => e.data)));
    // the first read of the response waits for it: it receives during the call, in both modes
    for (const s of [old, session]) assert.equal(s.of(r.pid).find((e) => e.direction === 'read')?.tupleSource, 'socket', `${s === old ? 'syscalls' : 'sock'} mode: the first read`);
  } finally {
    await old.close();
    await server.close();
  }
});
