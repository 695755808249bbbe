// SPDX-License-Identifier: Apache-2.0
// `tlscope trace sni` (the real CLI, -o json) against real TLS clients talking to local TLS
// servers under made-up *.test names: curl (OpenSSL), python ssl, node https, openssl
// s_client, gnutls-cli and a Go client built here; IPv4 and IPv6; parallel handshakes (each
// reported once although loopback shows every packet twice); a handshake on another thread
// than the connect (TID is the handshake thread's). Every test runs once per owner hook: the
// tcp_sendmsg_locked tracepoint (Linux >= 6.16) and the system-call fallback of older kernels
// (--owner-hook syscalls), which works on this kernel too.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.sni);
import { OWNER_HOOKS } from '../../../src/gadgets/sni/gadget.js';
import { Tracer, ownerHookSkip, nodeHandshake, removeTestCertificate, runProcess, startTlsServer, testName, type SniJson, type TestTlsServer } from './helpers.js';

let v4: TestTlsServer;
let v6: TestTlsServer;
let work: string;

before(async () => {
  if (kernelSkip) return;
  work = mkdtempSync(join(tmpdir(), 'tlscope-sni-clients-'));
  v4 = await startTlsServer('127.0.0.1');
  v6 = await startTlsServer('::1');
});

after(async () => {
  if (kernelSkip) return;
  await v4?.close();
  await v6?.close();
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
  removeTestCertificate();
});


const GO_BINARY = 'sni-goclient';
let goBuilt: Promise<string> | undefined;

const GO_CLIENT = `package main

import (
	"crypto/tls"
	"encoding/json"
	"os"
	"runtime"
	"syscall"
)

// The handshake's writes happen on this goroutine; locked to its thread, the thread that
// sends the ClientHello is the one whose id is printed.
func main() {
	runtime.LockOSThread()
	tid := syscall.Gettid()
	c, err := tls.Dial("tcp", os.Args[1], &tls.Config{ServerName: os.Args[2], InsecureSkipVerify: true, NextProtos: []string{"x-go", "http/1.1"}})
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\\n")
		os.Exit(1)
	}
	c.Close()
	json.NewEncoder(os.Stdout).Encode(map[string]int{"pid": os.Getpid(), "tid": tid})
}
`;

function goMissing(): string | undefined {
  const found = (process.env['PATH'] ?? '').split(':').some((d) => d !== '' && existsSync(join(d, 'go')));
  return found ? undefined : 'go is not installed (Debian package golang-go)';
}

/** Builds the Go client once for both owner hooks. */
async function buildGoClient(): Promise<string> {
  const dir = join(work, 'go');
  const cache = join(work, 'gocache');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  mkdirSync(cache, { recursive: true });
  writeFileSync(join(dir, 'main.go'), GO_CLIENT);
  writeFileSync(join(dir, 'go.mod'), 'module sniclient\n\ngo 1.19\n');
  const env = { ...process.env, GOCACHE: cache, GOFLAGS: '-mod=mod', GOPROXY: 'off', GOPATH: join(work, 'gopath'), CGO_ENABLED: '0' };
  const built = await runProcess('go', ['build', '-o', join(dir, GO_BINARY), '.'], { cwd: dir, env, timeoutMs: 120_000 });
  assert.equal(built.code, 0, built.stderr);
  return join(dir, GO_BINARY);
}

for (const hook of OWNER_HOOKS) {
describe(`owner hook: ${hook}`, { skip: ownerHookSkip(hook) }, () => {
let tracer: Tracer;

before(async () => {
  // --host: these clients run on the host; the timeout only bounds a run whose after() never comes.
  tracer = new Tracer(['--host', '--timeout', '600', '--owner-hook', hook, '-v']);
  await tracer.ready((name) => nodeHandshake('127.0.0.1', v4.port, name));
});

after(async () => {
  const r = await tracer?.stop();
  // The tracer ran through every test below and stops cleanly with its summary.
  assert.equal(r?.signal, null, r?.stderr);
  assert.equal(r?.code, 0, r?.stderr);
  assert.match(r?.stderr ?? '', /tlscope: \d+ events? shown, 0 lost/);
  assert.match(r?.stderr ?? '', hook === 'tcp_sendmsg_locked' ? /sending processes from the tcp_sendmsg_locked tracepoint/ : /sending processes from the write\/writev\/sendto\/sendmsg\/sendmmsg system call tracepoints/, '-v names the owner hook');
  assert.match(r?.stderr ?? '', new RegExp(`\\d+ owners recorded \\(${hook}\\)`));
  assert.deepEqual(tracer.nonJsonLines, []);
});

/** A marker handshake after the client is done: its hello was received, so it was past the filter. */
function marker(): Promise<void> {
  return tracer.marker((name) => nodeHandshake('127.0.0.1', v4.port, name));
}

/** Waits for the event named `name`, then for a marker: no copy of it can come after that. */
async function onlyEvent(name: string): Promise<SniJson> {
  await tracer.waitForName(name);
  await marker();
  const evs = tracer.byName(name);
  assert.equal(evs.length, 1, `exactly one event for ${name}: ${JSON.stringify(evs)}`);
  return evs[0]!;
}

function assertEvent(e: SniJson, want: { pid: number; tid?: number; comm: string; alpn: string; tlsVersion: string; dst: string; srcHost: string }): void {
  assert.equal(e.proc.pid, want.pid, 'pid');
  assert.equal(e.proc.tid, want.tid ?? want.pid, 'tid');
  assert.equal(e.proc.comm, want.comm, 'comm');
  assert.equal(e.alpn, want.alpn, 'alpn');
  assert.equal(e.tlsVersion, want.tlsVersion, 'tlsVersion');
  assert.equal(e.dst, want.dst, 'dst');
  assert.ok(e.src.startsWith(`${want.srcHost}:`), `src ${e.src} is from ${want.srcHost}`);
  assert.equal(e.direction, 'out');
  assert.equal(e.proc.uid, 0);
  assert.equal(e.ech, false);
}

test('curl (OpenSSL) over IPv4: name, pid, tid, comm, ALPN, version, addresses', { skip: kernelSkip }, async () => {
  const name = testName('curl4');
  const r = await runProcess('curl', ['-sk', '--resolve', `${name}:${v4.port}:127.0.0.1`, `https://${name}:${v4.port}/`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'ok');
  const e = await onlyEvent(name);
  assertEvent(e, { pid: r.pid, comm: 'curl', alpn: 'h2,http/1.1', tlsVersion: 'TLS1.3', dst: `127.0.0.1:${v4.port}`, srcHost: '127.0.0.1' });
  assert.ok(v4.seen.includes(name), 'the server got the same name');
});

test('curl over IPv6 (::1)', { skip: kernelSkip }, async () => {
  const name = testName('curl6');
  const r = await runProcess('curl', ['-sk', '--http1.1', '--resolve', `${name}:${v6.port}:[::1]`, `https://${name}:${v6.port}/`]);
  assert.equal(r.code, 0, r.stderr);
  const e = await onlyEvent(name);
  assertEvent(e, { pid: r.pid, comm: 'curl', alpn: 'http/1.1', tlsVersion: 'TLS1.3', dst: `[::1]:${v6.port}`, srcHost: '[::1]' });
});

const PYTHON = '/usr/bin/python3';
const PY_CLIENT = `
import json, os, socket, ssl, sys, threading
host, port, name, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(['x-py', 'http/1.1'])
# connect in this (the main) thread
raw = socket.create_connection((host, port))
out = {'pid': os.getpid(), 'main': threading.get_native_id()}
def handshake():
    out['handshake'] = threading.get_native_id()
    s = ctx.wrap_socket(raw, server_hostname=name)
    s.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')
    out['reply'] = s.recv(100).decode()
    s.close()
if mode == 'thread':
    t = threading.Thread(target=handshake)
    t.start()
    t.join()
else:
    handshake()
print(json.dumps(out))
`;


async function python(host: string, port: number, name: string, mode: 'main' | 'thread'): Promise<{ pid: number; main: number; handshake: number; reply: string }> {
  const r = await runProcess(PYTHON, ['-c', PY_CLIENT, host, String(port), name, mode]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { pid: number; main: number; handshake: number; reply: string };
  assert.equal(out.pid, r.pid, 'python is the process spawned');
  return out;
}

test('python ssl over IPv4', { skip: kernelSkip }, async () => {
  const name = testName('python4');
  const out = await python('127.0.0.1', v4.port, name, 'main');
  assert.match(out.reply, /^HTTP\/1.1 200/);
  const e = await onlyEvent(name);
  assertEvent(e, { pid: out.pid, tid: out.main, comm: 'python3', alpn: 'x-py,http/1.1', tlsVersion: 'TLS1.3', dst: `127.0.0.1:${v4.port}`, srcHost: '127.0.0.1' });
});

test('python ssl over IPv6', { skip: kernelSkip }, async () => {
  const name = testName('python6');
  const out = await python('::1', v6.port, name, 'main');
  const e = await onlyEvent(name);
  assertEvent(e, { pid: out.pid, tid: out.main, comm: 'python3', alpn: 'x-py,http/1.1', tlsVersion: 'TLS1.3', dst: `[::1]:${v6.port}`, srcHost: '[::1]' });
});

test('connect on the main thread, handshake on another: TID is the handshake thread', { skip: kernelSkip }, async () => {
  const name = testName('thread');
  const out = await python('127.0.0.1', v4.port, name, 'thread');
  assert.notEqual(out.handshake, out.main, 'the handshake ran on a second thread');
  const e = await onlyEvent(name);
  assertEvent(e, { pid: out.pid, tid: out.handshake, comm: 'python3', alpn: 'x-py,http/1.1', tlsVersion: 'TLS1.3', dst: `127.0.0.1:${v4.port}`, srcHost: '127.0.0.1' });
});

const NODE_COMM = basename(process.execPath).slice(0, 15);

test('node https', { skip: kernelSkip }, async () => {
  const name = testName('node');
  const script = `
    const https = require('node:https');
    https.get({ host: '127.0.0.1', port: ${v4.port}, path: '/', servername: ${JSON.stringify(name)}, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], agent: false }, (res) => {
      res.resume();
      res.on('end', () => process.exit(res.statusCode === 200 ? 0 : 1));
    }).on('error', (e) => { console.error(e); process.exit(2); });`;
  const r = await runProcess(process.execPath, ['-e', script]);
  assert.equal(r.code, 0, r.stderr);
  const e = await onlyEvent(name);
  assertEvent(e, { pid: r.pid, comm: NODE_COMM, alpn: 'http/1.1', tlsVersion: 'TLS1.3', dst: `127.0.0.1:${v4.port}`, srcHost: '127.0.0.1' });
});

test('openssl s_client -servername (TLS 1.3, and TLS 1.2 only)', { skip: kernelSkip }, async () => {
  const name = testName('sclient');
  const r = await runProcess('openssl', ['s_client', '-connect', `127.0.0.1:${v4.port}`, '-servername', name, '-alpn', 'x-sclient,http/1.1'], { input: '' });
  assert.equal(r.code, 0, r.stderr);
  assertEvent(await onlyEvent(name), { pid: r.pid, comm: 'openssl', alpn: 'x-sclient,http/1.1', tlsVersion: 'TLS1.3', dst: `127.0.0.1:${v4.port}`, srcHost: '127.0.0.1' });

  const name12 = testName('sclient12');
  const r12 = await runProcess('openssl', ['s_client', '-tls1_2', '-connect', `[::1]:${v6.port}`, '-servername', name12], { input: '' });
  assert.equal(r12.code, 0, r12.stderr);
  assertEvent(await onlyEvent(name12), { pid: r12.pid, comm: 'openssl', alpn: '', tlsVersion: 'TLS1.2', dst: `[::1]:${v6.port}`, srcHost: '[::1]' });
});

test('gnutls-cli', { skip: kernelSkip }, async () => {
  const name = testName('gnutls');
  const r = await runProcess('gnutls-cli', ['--insecure', '-p', String(v4.port), '--sni-hostname', name, '--alpn', 'x-gnutls', '127.0.0.1'], { input: '' });
  assert.equal(r.code, 0, r.stderr);
  assertEvent(await onlyEvent(name), { pid: r.pid, comm: 'gnutls-cli', alpn: 'x-gnutls', tlsVersion: 'TLS1.3', dst: `127.0.0.1:${v4.port}`, srcHost: '127.0.0.1' });
});


test('a Go client built here (crypto/tls), IPv4 and IPv6', { skip: kernelSkip || (goMissing() ?? false) }, async () => {
  goBuilt ??= buildGoClient();
  const binary = await goBuilt;
  for (const [addr, dst, srcHost] of [[`127.0.0.1:${v4.port}`, `127.0.0.1:${v4.port}`, '127.0.0.1'], [`[::1]:${v6.port}`, `[::1]:${v6.port}`, '[::1]']] as const) {
    const name = testName('go');
    const r = await runProcess(binary, [addr, name]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { pid: number; tid: number };
    assert.equal(out.pid, r.pid);
    assertEvent(await onlyEvent(name), { pid: r.pid, tid: out.tid, comm: GO_BINARY, alpn: 'x-go,http/1.1', tlsVersion: 'TLS1.3', dst, srcHost });
  }
});


test('20 curl processes in parallel, IPv4 and IPv6: each reported once, with its own pid', { skip: kernelSkip }, async () => {
  const names = Array.from({ length: 20 }, (_, i) => testName(`par${i}`));
  const runs = await Promise.all(names.map((name, i) => {
    const [port, addr] = i % 2 === 0 ? [v4.port, '127.0.0.1'] : [v6.port, '[::1]'];
    return runProcess('curl', ['-sk', '--http1.1', '--resolve', `${name}:${port}:${addr}`, `https://${name}:${port}/`]);
  }));
  for (const r of runs) assert.equal(r.code, 0, r.stderr);
  for (const name of names) await tracer.waitForName(name);
  await marker();
  names.forEach((name, i) => {
    const evs = tracer.byName(name);
    assert.equal(evs.length, 1, `${name}: ${JSON.stringify(evs)}`);
    assert.equal(evs[0]!.proc.pid, runs[i]!.pid);
    assert.equal(evs[0]!.proc.comm, 'curl');
    assert.equal(evs[0]!.dst, i % 2 === 0 ? `127.0.0.1:${v4.port}` : `[::1]:${v6.port}`);
  });
});

test('one process, 20 concurrent handshakes to one name: 20 events, one per connection', { skip: kernelSkip }, async () => {
  const name = testName('burst');
  const script = `
    const tls = require('node:tls');
    const one = (host, port) => new Promise((resolve, reject) => {
      const s = tls.connect({ host, port, servername: ${JSON.stringify(name)}, rejectUnauthorized: false, ALPNProtocols: ['x-burst'] }, () => { s.end(); resolve(s.localPort); });
      s.on('error', reject);
    });
    Promise.all(Array.from({ length: 20 }, (_, i) => i % 2 ? one('::1', ${v6.port}) : one('127.0.0.1', ${v4.port})))
      .then((ports) => { console.log(JSON.stringify(ports)); process.exit(0); }, (e) => { console.error(e); process.exit(1); });`;
  const r = await runProcess(process.execPath, ['-e', script]);
  assert.equal(r.code, 0, r.stderr);
  const ports = (JSON.parse(r.stdout) as number[]).sort((a, b) => a - b);
  await tracer.waitForName(name, 20);
  await marker();
  const evs = tracer.byName(name);
  assert.equal(evs.length, 20);
  assert.deepEqual(evs.map((e) => Number(e.src.slice(e.src.lastIndexOf(':') + 1))).sort((a, b) => a - b), ports, 'one event per client port');
  for (const e of evs) {
    assert.equal(e.proc.pid, r.pid);
    assert.equal(e.proc.tid, r.pid);
    assert.equal(e.alpn, 'x-burst');
  }
  assert.equal(evs.filter((e) => e.dst.startsWith('[::1]')).length, 10);
});
});
}
