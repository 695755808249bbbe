// SPDX-License-Identifier: Apache-2.0
/**
 * The kTLS source of trace tls against real kernel TLS sockets: OpenSSL s_server/s_client and
 * python's ssl with kTLS switched on through OPENSSL_CONF (OpenSSL 3.0 has no -ktls flag).
 * These run in the qemu guests of scripts/kernel-matrix.sh (Debian 6.1 and 6.12; `npm test`'s
 * kernels phase, test/kernels/guest.sh). On a kernel without kTLS they skip with doctor's
 * reason; inside a guest ($KM_KERNEL set) a kernel that cannot is a failure, not a skip.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { KTLS_HOOKS_ENV, ktlsSupport } from '../../src/ebpf/ktls.js';
import { KtlsSource } from '../../src/gadgets/tls/ktls.js';
import type { TlsCall } from '../../src/gadgets/tls/assembler.js';
import { bpfObjectsNow } from '../helpers/bpf-held.js';
import { CliTracer, dataOf, makeWorkDir, runProcess, stopChild, stream, until, type TlsJson } from '../integration/tls/helpers.js';

const support = ktlsSupport();
const inGuest = process.env['KM_KERNEL'] !== undefined;
const skip = support.supported ? false : `kTLS: ${support.reason ?? 'not supported'}`;
const WAIT = 90_000; // TCG is slow: deadlines that trip only on bugs

let work: ReturnType<typeof makeWorkDir>;
let conf: string;
const small = Buffer.from(`kernel TLS says hello\n${'0123456789abcdef'.repeat(40)}\nend\n`);
const big = randomBytes(1 << 20);

before(() => {
  if (skip !== false) return;
  work = makeWorkDir('tlscope-ktls-');
  conf = join(work.dir, 'openssl.cnf');
  writeFileSync(conf, 'openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n[ssl_sect]\nsystem_default = ssl_default\n[ssl_default]\nOptions = KTLS\n');
  writeFileSync(join(work.dir, 'small.txt'), small);
  writeFileSync(join(work.dir, 'big.bin'), big);
});

after(() => work?.remove());

test('inside a kernel-matrix guest, kTLS and its hooks work', { skip: !inGuest }, () => {
  assert.equal(support.supported, true, support.reason);
  assert.ok(support.functions.includes('tls_sw_sendmsg') && support.functions.includes('tls_sw_recvmsg'));
  console.log(`# ${process.env['KM_KERNEL']}: hooks ${support.hooks}${support.fentryRefused ? ` (fentry: ${support.fentryRefused})` : ''}; functions ${support.functions.join(', ')}; sendfile via ${support.sendfile}`);
});

function env(): NodeJS.ProcessEnv {
  return { ...process.env, OPENSSL_CONF: conf };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

interface SServer {
  port: number;
  pid: number;
  child: ChildProcess;
  log(): string;
}

/** openssl s_server -WWW -sendfile in the work dir, with kTLS. */
async function sServer(version: '-tls1_2' | '-tls1_3'): Promise<SServer> {
  const port = await freePort();
  const args = ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', work.cert, '-key', work.key, '-WWW', '-sendfile', version];
  if (version === '-tls1_2') args.push('-cipher', 'ECDHE-RSA-AES128-GCM-SHA256');
  const child = spawn('openssl', args, { cwd: work.dir, env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
  await until('s_server to accept', () => log.includes('ACCEPT') || child.exitCode !== null, WAIT);
  if (child.exitCode !== null) throw new Error(`s_server exited: ${log}`);
  return { port, pid: child.pid ?? 0, child, log: () => log };
}

/** s_client asks for a path; resolves with what it received (raw bytes). */
async function sClient(port: number, path: string, version: '-tls1_2' | '-tls1_3', cmd: readonly string[] = []): Promise<{ pid: number; out: Buffer; request: Buffer }> {
  const request = Buffer.from(`GET /${path} HTTP/1.0\r\n\r\n`);
  const argv = [...cmd, 'openssl', 's_client', '-connect', `127.0.0.1:${port}`, '-quiet', version];
  const child = spawn(argv[0]!, argv.slice(1), { env: env(), stdio: ['pipe', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  let err = '';
  child.stdout!.on('data', (d: Buffer) => chunks.push(d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdin!.write(request); // kept open: s_client waits for the server to close
  const code = await new Promise<number | null>((r) => {
    const t = setTimeout(() => child.kill('SIGKILL'), WAIT);
    child.on('close', (c) => {
      clearTimeout(t);
      r(c);
    });
  });
  child.stdin!.destroy();
  const out = Buffer.concat(chunks);
  assert.ok(out.length > 0, `s_client got nothing (exit ${code}): ${err}`);
  return { pid: child.pid ?? 0, out, request };
}

/** A python ssl client (kTLS through OPENSSL_CONF); `writev`: the request in several segments through os.writev. */
async function pyClient(port: number, path: string, mode: 'sendall' | 'writev'): Promise<{ pid: number; ulp: string; out: Buffer; request: Buffer; segments: number }> {
  const parts = ['GET /', path, ' HTTP/1.0\r\n', 'X-Segments: four\r\n', '\r\n'];
  const script = `
import json, os, socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
parts = [p.encode() for p in json.loads(sys.argv[3])]
with socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=60) as raw:
    s = ctx.wrap_socket(raw, server_hostname='ktls.test')
    ulp = s.getsockopt(socket.IPPROTO_TCP, 31, 16).rstrip(b'\\0').decode()
    if sys.argv[2] == 'writev':
        os.writev(s.fileno(), parts)  # straight to the kTLS socket: the kernel makes the records
    else:
        s.sendall(b''.join(parts))
    out = b''
    while True:
        try:
            d = s.recv(65536)
        except ssl.SSLError:
            break
        if not d:
            break
        out += d
sys.stdout.write(json.dumps({'pid': os.getpid(), 'ulp': ulp, 'out': out.hex()}))
`;
  const r = await runProcess('python3', ['-c', script, String(port), mode, JSON.stringify(parts)], { env: env(), timeoutMs: WAIT }).done;
  assert.equal(r.code, 0, `python client: ${r.stderr}`);
  const j = JSON.parse(r.stdout) as { pid: number; ulp: string; out: string };
  return { pid: j.pid, ulp: j.ulp, out: Buffer.from(j.out, 'hex'), request: Buffer.from(parts.join('')), segments: parts.length };
}

function ktlsEvents(t: CliTracer, pid: number, direction: 'read' | 'write'): TlsJson[] {
  return t.events.filter((e) => e.proc.pid === pid && e.direction === direction);
}

/** Which hooks a test runs with: what the probe picks here, or kprobes forced (TLSCOPE_KTLS_HOOKS, for tests). */
type Hooks = 'probed' | 'kprobe';
const HOOK_RUNS: readonly Hooks[] = ['probed', 'kprobe'];

async function tracer(args: readonly string[], hooks: Hooks = 'probed'): Promise<CliTracer> {
  // the child takes the environment at spawn: set the variable around the constructor only
  const was = process.env[KTLS_HOOKS_ENV];
  if (hooks === 'kprobe') process.env[KTLS_HOOKS_ENV] = 'kprobe';
  let t: CliTracer;
  try {
    t = new CliTracer(args);
  } finally {
    if (was === undefined) delete process.env[KTLS_HOOKS_ENV];
    else process.env[KTLS_HOOKS_ENV] = was;
  }
  // the tracer's start (node, BTF, loading and attaching) is the slowest step under TCG: 90 s ran out on a busy host
  const t0 = Date.now();
  try {
    await until('trace tls to start', () => /tlscope: tracing \d+ file/.test(t.stderr) || t.child.exitCode !== null, 3 * WAIT);
  } catch (e) {
    await t.stop();
    throw new Error(`${(e as Error).message}; its stderr: ${t.stderr.slice(-2000)}`);
  }
  console.log(`# trace tls (${hooks}) ready after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (t.child.exitCode !== null) throw new Error(`tlscope exited: ${t.stderr}`);
  const kind = hooks === 'kprobe' ? 'kprobes' : support.hooks === 'kprobe' ? 'kprobes' : 'fentry\\/fexit';
  assert.match(t.stderr, new RegExp(`kTLS: ${kind} on tls_sw_sendmsg`));
  return t;
}

function noKtlsProgramsLeft(): void {
  const left = bpfObjectsNow<{ id: number; name?: string }>('prog').filter((p) => p.name?.startsWith('ktls_'));
  assert.deepEqual(left.map((p) => p.name), [], 'kTLS programs still loaded after tlscope exited');
}

for (const hooks of HOOK_RUNS) {
  test(`TLS 1.2 s_server -WWW -sendfile to s_client (${hooks === 'kprobe' ? 'kprobes forced' : 'probed hooks'}): request and file byte-exact, attributed, no control records`, { skip }, async () => {
    const srv = await sServer('-tls1_2');
    const t = await tracer(['--sources', 'ktls'], hooks).catch(async (e: unknown) => {
      await stopChild(srv.child); // the server, when the tracer never started
      throw e;
    });
    try {
      const c = await sClient(srv.port, 'small.txt', '-tls1_2');
      assert.ok(c.out.subarray(c.out.length - small.length).equals(small), 'the client got the file');
      // the file went out by sendfile: kernel-only bytes, with source ktls
      await until('the server write stream', () => stream(t.events, srv.pid, 'write').length >= c.out.length, WAIT);
      await until('the client read stream', () => stream(t.events, c.pid, 'read').length >= c.out.length, WAIT);
      assert.ok(stream(t.events, srv.pid, 'write').equals(c.out), 'server TX = what the client received, nothing more (no Finished, no alert)');
      assert.ok(stream(t.events, c.pid, 'read').equals(c.out), 'client RX = what it printed');
      assert.ok(stream(t.events, c.pid, 'write').equals(c.request), 'client TX = the request');
      const rx = stream(t.events, srv.pid, 'read');
      assert.ok(rx.length > 0 && c.request.subarray(0, rx.length).equals(rx), `server RX is the request: ${JSON.stringify(rx.toString())}`);
      for (const e of t.events.filter((x) => x.proc.pid === srv.pid || x.proc.pid === c.pid)) {
        assert.equal(e.source, 'ktls');
        assert.equal(e.proc.comm, 'openssl');
        assert.equal(e.tupleSource, 'socket');
        // the socket in hand: the server's local end and the client's remote end are the server port
        assert.equal(e.proc.pid === srv.pid ? e.local : e.remote, `127.0.0.1:${srv.port}`, JSON.stringify(e));
      }
      const fns = new Set(ktlsEvents(t, srv.pid, 'write').map((e) => e.function));
      assert.ok(fns.has(support.sendfile ?? 'tls_sw_sendmsg'), `sendfile seen at ${support.sendfile}: ${[...fns].join(', ')}`);
      console.log(`# server TX functions: ${[...fns].join(', ')}; server RX: ${[...new Set(ktlsEvents(t, srv.pid, 'read').map((e) => e.function))].join(', ')}`);
    } finally {
      const r = await t.stop();
      await stopChild(srv.child);
      console.log(`# ${r.stderr.split('\n').filter((l) => l.includes('kTLS:')).join(' | ')}`);
    }
    noKtlsProgramsLeft();
  });
}

test('1 MiB by sendfile over kTLS, byte-exact', { skip }, async () => {
  const srv = await sServer('-tls1_2');
  const t = await tracer(['--sources', 'ktls', '-p', String(srv.pid)]).catch(async (e: unknown) => {
    await stopChild(srv.child); // the server, when the tracer never started
    throw e;
  });
  try {
    const c = await sClient(srv.port, 'big.bin', '-tls1_2');
    assert.ok(c.out.subarray(c.out.length - big.length).equals(big), 'the client got the 1 MiB file');
    await until('1 MiB in server write events', () => stream(t.events, srv.pid, 'write').length >= c.out.length, WAIT);
    const tx = stream(t.events, srv.pid, 'write');
    assert.equal(tx.length, c.out.length);
    assert.ok(tx.equals(c.out), 'byte-exact');
    assert.ok(t.events.every((e) => e.lostBytes === 0 && !e.truncated));
    // -p: the client (another process) is kept out in the kernel
    assert.deepEqual(t.events.filter((e) => e.proc.pid !== srv.pid).map((e) => e.proc.pid), []);
  } finally {
    await t.stop();
    await stopChild(srv.child);
  }
  noKtlsProgramsLeft();
});

test('TLS 1.3: TX through kTLS (the NewSessionTicket is not shown)', { skip }, async () => {
  const srv = await sServer('-tls1_3');
  const t = await tracer(['--sources', 'ktls']).catch(async (e: unknown) => {
    await stopChild(srv.child); // the server, when the tracer never started
    throw e;
  });
  try {
    const c = await sClient(srv.port, 'small.txt', '-tls1_3');
    await until('the server write stream', () => stream(t.events, srv.pid, 'write').length >= c.out.length, WAIT);
    assert.ok(stream(t.events, srv.pid, 'write').equals(c.out), 'server TX is exactly the response');
    // OpenSSL 3.0: no TLS 1.3 RX offload, so the server's reads do not pass kTLS
    console.log(`# TLS 1.3 server RX events: ${ktlsEvents(t, srv.pid, 'read').length}`);
  } finally {
    const r = await t.stop();
    await stopChild(srv.child);
    const control = /kTLS: \d+ calls with data, \d+ inside library calls[^,]*, (\d+) control records skipped/.exec(r.stderr)?.[1];
    console.log(`# TLS 1.3: control records skipped: ${control ?? '?'}`);
  }
});

test('python ssl client with kTLS, and a writev of several segments', { skip }, async () => {
  const srv = await sServer('-tls1_2');
  const t = await tracer(['--sources', 'ktls']).catch(async (e: unknown) => {
    await stopChild(srv.child); // the server, when the tracer never started
    throw e;
  });
  try {
    const a = await pyClient(srv.port, 'small.txt', 'sendall');
    assert.equal(a.ulp, 'tls', 'the python socket uses kTLS');
    const b = await pyClient(srv.port, 'small.txt', 'writev');
    for (const c of [a, b]) {
      await until(`python ${c.pid} read stream`, () => stream(t.events, c.pid, 'read').length >= c.out.length, WAIT);
      assert.ok(stream(t.events, c.pid, 'write').equals(c.request), 'python TX = the request');
      assert.ok(stream(t.events, c.pid, 'read').equals(c.out), 'python RX = what it got');
      assert.ok(t.events.filter((e) => e.proc.pid === c.pid).every((e) => e.proc.comm.startsWith('python')));
    }
    // the writev: one call of every segment
    const w = ktlsEvents(t, b.pid, 'write');
    assert.equal(w.length, 1, `one writev call: ${w.map((e) => e.len).join(',')}`);
    assert.equal(w[0]!.len, b.request.length);
  } finally {
    await t.stop();
    await stopChild(srv.child);
  }
});

test('with the OpenSSL uprobes on too, each chunk shows once: openssl+ktls for SSL_write/SSL_read, ktls for sendfile', { skip }, async () => {
  const srv = await sServer('-tls1_2');
  const t = await tracer([]).catch(async (e: unknown) => {
    await stopChild(srv.child); // the server, when the tracer never started
    throw e;
  });
  try {
    // let the probes reach python's libssl (it is in the standard directories: probed up front)
    const c = await pyClient(srv.port, 'small.txt', 'sendall');
    await until('python events', () => stream(t.events, c.pid, 'read').length >= c.out.length, WAIT);
    const mine = t.events.filter((e) => e.proc.pid === c.pid);
    assert.ok(stream(t.events, c.pid, 'write').equals(c.request), 'the request once');
    assert.ok(stream(t.events, c.pid, 'read').equals(c.out), 'the response once');
    assert.deepEqual([...new Set(mine.map((e) => e.source))], ['openssl+ktls'], mine.map((e) => `${e.source}:${e.function}`).join(' '));
    await until('the server write stream', () => stream(t.events, srv.pid, 'write').length >= c.out.length, WAIT);
    const body = t.events.filter((e) => e.proc.pid === srv.pid && e.direction === 'write' && e.source === 'ktls');
    assert.ok(body.length > 0 && Buffer.concat(body.map(dataOf)).includes(small), 'the sendfile body from the kernel alone (source ktls)');
  } finally {
    await t.stop();
    await stopChild(srv.child);
  }
});

test('the mount-namespace filter in the kernel keeps other processes out (no container runtime in the guest: unshare -m)', { skip }, async () => {
  const srv = await sServer('-tls1_2');
  const inside = spawn('unshare', ['-m', '--propagation', 'private', 'sleep', '600'], { stdio: 'ignore' });
  await until('unshare to run', () => {
    try {
      return readFileSync(`/proc/${inside.pid}/comm`, 'utf8').trim() === 'sleep';
    } catch {
      return false;
    }
  }, WAIT);
  const mntns = Number(/\[(\d+)\]/.exec(execFileSync('readlink', [`/proc/${inside.pid}/ns/mnt`], { encoding: 'utf8' }))?.[1]);
  const src = KtlsSource.open({ maxBytes: 4 << 20, mntnsFilter: true });
  const calls: TlsCall[] = [];
  const loop = (async () => {
    for await (const b of src.calls()) calls.push(...b);
  })();
  try {
    src.allowMntns(mntns);
    const outside = await sClient(srv.port, 'small.txt', '-tls1_2');
    const within = await sClient(srv.port, 'small.txt', '-tls1_2', ['nsenter', '-t', String(inside.pid), '-m', '-r', '-w', '--']);
    await until('the in-namespace client', () => calls.some((c) => c.head.pid === within.pid && c.head.direction === 'read'), WAIT);
    assert.deepEqual([...new Set(calls.map((c) => c.head.pid))], [within.pid], `only the client in mount namespace ${mntns}`);
    assert.ok(calls.every((c) => c.head.mntns === mntns));
    assert.ok(src.kernelStats().filtered > 0n, 'the others were dropped in the kernel');
    void outside;
  } finally {
    await src.close();
    await loop;
    inside.kill('SIGKILL');
    await stopChild(srv.child);
  }
});

/**
 * A python ssl client (TLS 1.2, kTLS TX and RX) that sends the request with sendall and then
 * takes the response out of the socket with os.splice into a pipe: the kernel decrypts it
 * in tls_sw_splice_read, OpenSSL never reads it. Returns what came through the pipe, the
 * splice calls that moved bytes and how the last one ended.
 */
async function pySplice(port: number, path: string): Promise<{ pid: number; rxOffload: boolean; out: Buffer; request: Buffer; splices: number; end: string }> {
  const request = `GET /${path} HTTP/1.0\r\n\r\n`;
  const script = `
import errno, json, os, socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
with socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=60) as raw:
    s = ctx.wrap_socket(raw, server_hostname='ktls.test')
    # SOL_TLS (282) TLS_RX (2): the receive side's crypto state is the kernel's; the length must
    # be the cipher's struct exactly (40: AES-128-GCM, 56: AES-256-GCM or ChaCha20-Poly1305)
    rx = False
    for n in (40, 56):
        try:
            s.getsockopt(282, 2, n); rx = True; break
        except OSError:
            pass
    s.sendall(sys.argv[2].encode())
    s.setblocking(True)  # the timeout made the fd O_NONBLOCK; splice waits for the records
    r, w = os.pipe()
    out, splices, end = b'', 0, 'eof'
    while True:
        try:
            n = os.splice(s.fileno(), w, 1 << 16)
        except OSError as e:
            end = errno.errorcode.get(e.errno, str(e.errno)); break  # the close_notify alert: EINVAL
        if n == 0:
            break
        splices += 1
        while n > 0:
            d = os.read(r, n); out += d; n -= len(d)
sys.stdout.write(json.dumps({'pid': os.getpid(), 'rx': rx, 'out': out.hex(), 'splices': splices, 'end': end}))
`;
  const r = await runProcess('python3', ['-c', script, String(port), request], { env: env(), timeoutMs: WAIT }).done;
  assert.equal(r.code, 0, `python splice client: ${r.stderr}`);
  const j = JSON.parse(r.stdout) as { pid: number; rx: boolean; out: string; splices: number; end: string };
  return { pid: j.pid, rxOffload: j.rx, out: Buffer.from(j.out, 'hex'), request: Buffer.from(request), splices: j.splices, end: j.end };
}

for (const hooks of HOOK_RUNS) {
  test(`splice out of a kTLS socket (${hooks === 'kprobe' ? 'kprobes forced' : 'probed hooks'}): the response through tls_sw_splice_read, byte-exact`, { skip }, async () => {
    const srv = await sServer('-tls1_2');
    const t = await tracer(['--sources', 'ktls'], hooks).catch(async (e: unknown) => {
    await stopChild(srv.child); // the server, when the tracer never started
    throw e;
  });
    try {
      const c = await pySplice(srv.port, 'small.txt');
      assert.ok(c.rxOffload, 'kTLS RX is on for the python socket (getsockopt SOL_TLS TLS_RX)');
      assert.ok(c.splices > 0 && c.out.subarray(c.out.length - small.length).equals(small), `the file came through the pipe (${c.splices} splices, ended ${c.end})`);
      await until('the splice read stream', () => stream(t.events, c.pid, 'read').length >= c.out.length, WAIT);
      const reads = ktlsEvents(t, c.pid, 'read');
      // measured: every byte the client got came out of tls_sw_splice_read, none out of recvmsg
      assert.deepEqual([...new Set(reads.map((e) => e.function))], ['tls_sw_splice_read']);
      assert.equal(reads.length, c.splices, 'one event per splice call that moved bytes');
      assert.ok(stream(t.events, c.pid, 'read').equals(c.out), 'RX = what came through the pipe');
      assert.ok(stream(t.events, c.pid, 'write').equals(c.request), 'TX = the request');
      for (const e of reads) {
        assert.equal(e.source, 'ktls');
        assert.ok(e.proc.comm.startsWith('python'));
        assert.equal(e.remote, `127.0.0.1:${srv.port}`);
      }
      console.log(`# splice (${hooks}): ${c.splices} splice calls, ${c.out.length} bytes, ended ${c.end}`);
    } finally {
      await t.stop();
      await stopChild(srv.child);
    }
    noKtlsProgramsLeft();
  });
}
