// SPDX-License-Identifier: Apache-2.0
// `tlscope trace tls` (the real CLI, -o json) against real TLS clients and servers on loopback
// under made-up *.test names: curl and python (OpenSSL, SSL_*_ex), node https (OpenSSL inside
// node, memory BIOs), gnutls-cli (GnuTLS), a Go client and server built here (crypto/tls, one
// with symbols, one stripped); IPv4 and IPv6; a 1 MiB body; bytes compared with what the
// peers really sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.tls);
import { CliTracer, buildGoApp, dataOf, goSkipReason, makeWorkDir, pyResponse, startPyServer, stream, type GoApp, type PyServer, type TlsJson } from './helpers.js';
import { startProcess, stopChild } from '../../helpers/process.js';
import { sleep, waitUntil } from '../../helpers/wait.js';

let work: ReturnType<typeof makeWorkDir>;
let tracer: CliTracer;
let py: PyServer;
let py6: PyServer;

before(async () => {
  if (kernelSkip) return;
  work = makeWorkDir('tlscope-tls-clients-');
  py = await startPyServer(work);
  py6 = await startPyServer(work, 'fixed', { host: '::1' });
  tracer = new CliTracer(['--host', '--timeout', '900']);
  await tracer.ready();
});

after(async () => {
  if (kernelSkip) return;
  const r = await tracer?.stop();
  await py?.close();
  await py6?.close();
  work?.remove();
  assert.equal(r?.signal, null, r?.stderr);
  assert.equal(r?.code, 0, r?.stderr);
  assert.match(r?.stderr ?? '', /tlscope: \d+ events? shown, 0 lost/);
  assert.deepEqual(tracer.nonJsonLines, []);
});

/** Waits until `pid` has moved at least these many bytes each way. */
async function settled(pid: number, write: number, read: number): Promise<TlsJson[]> {
  await waitUntil(`events of pid ${pid} (${write} written, ${read} read)`, () => stream(tracer.events, pid, 'write').length >= write && stream(tracer.events, pid, 'read').length >= read);
  await tracer.marker(py); // pid has exited: anything more from it is out by now
  return tracer.of(pid);
}

function assertTuple(evs: readonly TlsJson[], local: string, remote: string, sources: readonly string[] = ['socket', 'session']): void {
  const all = evs.map((e) => ({ ...e, data: e.data.slice(0, 20) }));
  for (const e of evs) {
    assert.ok(e.local !== undefined, `every event has a tuple: ${JSON.stringify(all, null, 1)}`);
    assert.equal(e.local, local, `local of ${e.function} ${e.direction}`);
    assert.equal(e.remote, remote, `remote of ${e.function} ${e.direction}`);
    assert.equal(e.src, e.direction === 'write' ? local : remote);
    assert.equal(e.dst, e.direction === 'write' ? remote : local);
    assert.ok(e.tupleSource !== undefined && sources.includes(e.tupleSource), `tupleSource ${e.tupleSource} in ${sources.join('/')}`);
  }
}

test('curl → a local TLS server: request and response byte for byte, with the socket tuple', { skip: kernelSkip }, async () => {
  const before = py.requests.length;
  const r = await startProcess('curl', ['-sk', '--http1.1', '--resolve', `shop.test:${py.port}:127.0.0.1`, `https://shop.test:${py.port}/basket?id=7`]).done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'hello from the test server\n');
  await waitUntil('the server to log the request', () => py.requests.length > before);
  const req = py.requests.at(-1)!;
  const evs = await settled(r.pid, req.bytes.length, pyResponse().length);
  assert.deepEqual(stream(evs, r.pid, 'write'), req.bytes, 'what curl wrote is what the server read');
  assert.deepEqual(stream(evs, r.pid, 'read'), pyResponse(), 'what curl read is what the server wrote');
  for (const e of evs) {
    assert.equal(e.proc.comm, 'curl');
    assert.equal(e.source, 'openssl');
    assert.match(e.function, /^SSL_(write|read)(_ex)?$/);
    assert.match(e.library ?? '', /libssl\.so\.3$/);
    assert.equal(e.truncated, false);
    assert.equal(e.lostBytes, 0);
    assert.equal(e.len, dataOf(e).length);
    assert.ok(e.latencyNs > 0);
    assert.equal(e.dataEncoding, 'utf8');
  }
  assert.equal(new Set(evs.map((e) => e.conn)).size, 1, 'one TLS session');
  assertTuple(evs, `127.0.0.1:${req.clientPort}`, `127.0.0.1:${py.port}`);
  assert.ok(evs.some((e) => e.tupleSource === 'socket'));
  // the server side of the same conversation, from the same trace; its write returns (and is
  // recorded) only after curl may have read the answer, so the marker does not cover it: wait
  const serverSide = (): TlsJson[] => tracer.of(py.pid).filter((e) => e.remote === `127.0.0.1:${req.clientPort}`);
  await waitUntil('the server\'s answer', () => stream(serverSide(), py.pid, 'write').length >= pyResponse().length);
  const server = serverSide();
  assert.deepEqual(stream(server, py.pid, 'read'), req.bytes);
  assert.deepEqual(stream(server, py.pid, 'write'), pyResponse());
});

test('curl over IPv6: the tuple is [::1]:port', { skip: kernelSkip }, async () => {
  const before = py6.requests.length;
  const r = await startProcess('curl', ['-sk', '--http1.1', '--resolve', `six.test:${py6.port}:[::1]`, `https://six.test:${py6.port}/v6`]).done;
  assert.equal(r.code, 0, r.stderr);
  await waitUntil('the server to log the request', () => py6.requests.length > before);
  const req = py6.requests.at(-1)!;
  const evs = await settled(r.pid, req.bytes.length, pyResponse().length);
  assert.deepEqual(stream(evs, r.pid, 'write'), req.bytes);
  assertTuple(evs, `[::1]:${req.clientPort}`, `[::1]:${py6.port}`);
});

test('python ssl: SSL_write_ex and SSL_read_ex', { skip: kernelSkip }, async () => {
  const script = join(work.dir, 'client.py');
  writeFileSync(script, `
import socket, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[1]))), server_hostname='py.test')
s.sendall(b'GET /from-python HTTP/1.1\\r\\nHost: py.test\\r\\nX-Test: ' + b'p' * 300 + b'\\r\\n\\r\\n')
got = b''
while len(got) < int(sys.argv[2]):
    d = s.recv(65536)
    if not d: break
    got += d
sys.stdout.write(got.decode())
`);
  const before = py.requests.length;
  const r = await startProcess('python3', [script, String(py.port), String(pyResponse().length)]).done;
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(Buffer.from(r.stdout), pyResponse());
  await waitUntil('the request', () => py.requests.length > before);
  const req = py.requests.at(-1)!;
  const evs = await settled(r.pid, req.bytes.length, pyResponse().length);
  assert.deepEqual(stream(evs, r.pid, 'write'), req.bytes);
  assert.deepEqual(stream(evs, r.pid, 'read'), pyResponse());
  assert.ok(evs.some((e) => e.function === 'SSL_write_ex'), 'python writes with SSL_write_ex');
  assert.ok(evs.some((e) => e.function === 'SSL_read_ex'), 'python reads with SSL_read_ex');
  assertTuple(evs, `127.0.0.1:${req.clientPort}`, `127.0.0.1:${py.port}`);
});

test('node https client and server: each request once, tuples of the right socket', { skip: kernelSkip }, async () => {
  const serverJs = join(work.dir, 'server.mjs');
  const clientJs = join(work.dir, 'client.mjs');
  writeFileSync(serverJs, `
import https from 'node:https'; import fs from 'node:fs';
const s = https.createServer({ key: fs.readFileSync(${JSON.stringify(work.key)}), cert: fs.readFileSync(${JSON.stringify(work.cert)}) }, (req, res) => {
  let n = 0; req.on('data', (c) => n += c.length);
  req.on('end', () => { res.setHeader('content-type', 'text/plain'); res.end('node server got ' + req.url + ' with ' + n + ' bytes\\n'); });
});
s.listen(0, '127.0.0.1', () => console.log('port', s.address().port));
`);
  writeFileSync(clientJs, `
import https from 'node:https';

const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
const port = Number(process.argv[2]);
function one(path, body) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, method: 'POST', servername: 'node.test', rejectUnauthorized: false, agent, headers: { host: 'node.test', 'content-length': body.length } }, (res) => {
      let text = ''; res.setEncoding('utf8'); res.on('data', (c) => text += c); res.on('end', () => resolve(text));
    });
    req.on('error', reject); req.end(body);
  });
}
process.stdout.write(await one('/n1', 'first body'));
process.stdout.write(await one('/n2', 'second body, longer'));
agent.destroy();
`);
  const server = startProcess(process.execPath, [serverJs], { timeoutMs: 120_000 });
  await waitUntil('the node server', () => /port \d+/.test(server.output()));
  const port = Number(/port (\d+)/.exec(server.output())?.[1]);
  try {
    const c = await startProcess(process.execPath, [clientJs, String(port)]).done;
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout, 'node server got /n1 with 10 bytes\nnode server got /n2 with 19 bytes\n');
    await waitUntil('node events', () => stream(tracer.events, c.pid, 'read').toString().includes('/n2 with 19 bytes') && stream(tracer.events, server.pid, 'write').toString().includes('/n2 with 19 bytes'));
    // the client has exited; the server read each request before answering it and can read no more bytes
    await tracer.marker(py);
    const cw = stream(tracer.events, c.pid, 'write').toString();
    const sr = stream(tracer.events, server.pid, 'read').toString();
    for (const text of [cw, sr]) {
      assert.equal(text.split('POST /n1 HTTP/1.1').length - 1, 1, 'the first request once, although node calls SSL_write during the handshake');
      assert.equal(text.split('POST /n2 HTTP/1.1').length - 1, 1);
      assert.ok(text.includes('first body') && text.includes('second body, longer'));
    }
    assert.equal(cw, sr, 'the server read exactly what the client wrote');
    assert.equal(stream(tracer.events, c.pid, 'read').toString(), stream(tracer.events, server.pid, 'write').toString());
    const clientEvents = tracer.of(c.pid);
    const local = clientEvents.find((e) => e.local !== undefined)?.local ?? '';
    assert.match(local, /^127\.0\.0\.1:\d+$/);
    assertTuple(clientEvents, local, `127.0.0.1:${port}`, ['socket', 'session', 'thread']);
    assertTuple(tracer.of(server.pid), `127.0.0.1:${port}`, local, ['socket', 'session', 'thread']);
    for (const e of [...clientEvents, ...tracer.of(server.pid)]) {
      assert.equal(e.source, 'openssl');
      assert.match(e.function, /^SSL_(read|write)$/);
      assert.match(e.library ?? '', /\/node$/);
    }
  } finally {
    await stopChild(server.child);
  }
});

test('gnutls-cli: gnutls_record_send and gnutls_record_recv', { skip: kernelSkip }, async () => {
  const request = 'GET /gnutls HTTP/1.1\r\nHost: gnu.test\r\n\r\n';
  const before = py.requests.length;
  const r = startProcess('gnutls-cli', ['--insecure', '--logfile=/dev/null', '-p', String(py.port), '127.0.0.1'], { input: request, inputDelayMs: 500 });
  await waitUntil('the request', () => py.requests.length > before);
  await waitUntil('gnutls-cli to read the response', () => stream(tracer.events, r.pid, 'read').length >= pyResponse().length);
  r.child.kill('SIGTERM');
  await r.done;
  const req = py.requests.at(-1)!;
  assert.deepEqual(req.bytes.toString(), request);
  const evs = tracer.of(r.pid);
  assert.deepEqual(stream(evs, r.pid, 'write').toString(), request);
  assert.deepEqual(stream(evs, r.pid, 'read'), pyResponse());
  for (const e of evs) {
    assert.equal(e.source, 'gnutls');
    assert.match(e.function, /^gnutls_record_(send|recv)$/);
  }
  assertTuple(evs, `127.0.0.1:${req.clientPort}`, `127.0.0.1:${py.port}`);
});

let goApp: GoApp | undefined;

test('Go: a client (stripped PIE) and a server (stripped) built here: paired by goroutine, nothing crashes', { skip: kernelSkip || goSkipReason() }, async () => {
  goApp ??= buildGoApp(work.dir);
  // the server first: exec'd after the tracer started, probed from the exec hint
  const server = startProcess(goApp.stripped, ['server', '127.0.0.1:0', work.cert, work.key], { timeoutMs: 120_000 });
  await tracer.waitForStderr(new RegExp(`probing go in /proc/${server.pid}/root\\S*tlsapp-stripped \\(go1\\.\\d+[.\\d]*, register ABI, \\d+ RETs`));
  await sleep(300);
  // the server listens on a port the kernel chose: find it
  const port = await listeningPort(server.pid);
  const client = startProcess(goApp.pie, ['client', `127.0.0.1:${port}`, '/a,/b/c'], { input: 'go\n', inputDelayMs: 10_000 });
  await tracer.waitForStderr(new RegExp(`probing go in /proc/${client.pid}/root\\S*tlsapp-pie \\(`));
  client.child.stdin!.write('go\n');
  const r = await client.done;
  try {
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '200 24\n200 26\n');
    await waitUntil('Go events', () => stream(tracer.events, r.pid, 'read').toString().includes('hi to /b/c') && stream(tracer.events, server.pid, 'write').toString().includes('hi to /b/c'));
    // as for node: the client has exited, the server can move no more bytes
    await tracer.marker(py);
    const cw = stream(tracer.events, r.pid, 'write').toString();
    assert.match(cw, /^GET \/a HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\nUser-Agent: Go-http-client\/1\.1\r\nAccept-Encoding: gzip\r\n\r\nGET \/b\/c HTTP\/1\.1\r\n/);
    assert.equal(cw, stream(tracer.events, server.pid, 'read').toString(), 'the server read what the client wrote');
    assert.equal(stream(tracer.events, r.pid, 'read').toString(), stream(tracer.events, server.pid, 'write').toString());
    assert.match(stream(tracer.events, r.pid, 'read').toString(), /go server says hi to \/a\n[\s\S]*go server says hi to \/b\/c\n$/);
    for (const e of [...tracer.of(r.pid), ...tracer.of(server.pid)]) {
      assert.equal(e.source, 'go');
      assert.match(e.function, /^crypto\/tls\.\(\*Conn\)\.(Read|Write)$/);
      assert.ok(e.len > 0);
    }
    const local = tracer.of(r.pid).find((e) => e.local !== undefined)?.local ?? '';
    assertTuple(tracer.of(r.pid), local, `127.0.0.1:${port}`);
    // the server's handshake (not probed) may have read the first request along with the
    // client's Finished: that read is then named by the thread's socket I/O (inferred)
    assertTuple(tracer.of(server.pid), `127.0.0.1:${port}`, local, ['socket', 'session', 'thread']);
    assert.equal(server.child.exitCode, null, 'the traced Go server still runs');
  } finally {
    await stopChild(server.child);
  }
});

async function listeningPort(pid: number): Promise<number> {
  let port = 0;
  await waitUntil(`pid ${pid} to listen`, () => {
    const out = runSync('ss', ['-Hltnp']);
    const m = new RegExp(`127\\.0\\.0\\.1:(\\d+)\\s.*pid=${pid},`).exec(out);
    if (m !== null) port = Number(m[1]);
    return port > 0;
  });
  return port;
}

function runSync(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}

test('a 1 MiB body: complete and in order, in the server\'s single write and in the client\'s reads', { skip: kernelSkip }, async () => {
  const body = randomBytes(1 << 20);
  const file = join(work.dir, 'big.bin');
  writeFileSync(file, body);
  const big = await startPyServer(work, 'file', { file });
  try {
    const r = await startProcess('curl', ['-sk', '--http1.1', '--resolve', `big.test:${big.port}:127.0.0.1`, `https://big.test:${big.port}/big`, '-o', '/dev/null', '-w', '%{size_download}']).done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, String(body.length));
    const response = pyResponse(body);
    await waitUntil('the whole body at the client', () => stream(tracer.events, r.pid, 'read').length >= response.length, 30_000);
    await waitUntil('the whole body at the server', () => stream(tracer.events, big.pid, 'write').length >= response.length, 30_000);
    await tracer.marker(py); // curl has exited; the server answered its only request
    assert.ok(stream(tracer.events, r.pid, 'read').equals(response), 'curl read every byte, in order');
    const writes = tracer.of(big.pid).filter((e) => e.direction === 'write');
    assert.equal(writes.length, 1, 'python sent the response with one SSL_write_ex');
    const w = writes[0]!;
    assert.equal(w.len, response.length);
    assert.equal(w.truncated, false);
    assert.equal(w.lostBytes, 0);
    assert.equal(w.dataEncoding, 'base64', 'random bytes are not UTF-8');
    assert.ok(dataOf(w).equals(response), 'one call of 1 MiB: every chunk, in order');
  } finally {
    await big.close();
  }
});
