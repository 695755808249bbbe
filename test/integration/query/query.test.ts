// SPDX-License-Identifier: Apache-2.0
// --query (CEL) narrows real events of each gadget: trace sni (name and pid, the pid pushed
// down as -p), trace tls --http (http.path, tls), capture (dport). Each drops a matching-but-
// for-the-query event sent before a positive marker that passes the query: the ring delivers
// in order, so once the marker is out, the dropped event would have been out too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server } from 'node:net';
import { notRoot } from '../../helpers/root.js';
import { Tracer, nodeHandshake, startTlsServer, testName, runProcess as runSni, type TestTlsServer } from '../sni/helpers.js';
import { CliTracer, makeWorkDir, runProcess, startPyServer, until, type PyServer } from '../tls/helpers.js';
import { Capture, waitUntil } from '../capture/helpers.js';

let tls: TestTlsServer;
let work: ReturnType<typeof makeWorkDir>;
let py: PyServer;

before(async () => {
  if (notRoot) return;
  tls = await startTlsServer('127.0.0.1');
  work = makeWorkDir('tlscope-query-');
  py = await startPyServer(work);
});

after(async () => {
  if (notRoot) return;
  await tls?.close();
  await py?.close();
  work?.remove();
});

test('trace sni --query: a name test and a pid (pushed down as -p) keep only what matches', { skip: notRoot }, async () => {
  const query = `proc.pid == ${process.pid} && !name.startsWith("drop-") && name.endsWith(".sni.test") && !tls`;
  const tracer = new Tracer(['--host', '--timeout', '300', '-v', '--query', query]);
  try {
    await tracer.ready((n) => nodeHandshake(tls.host, tls.port, n));
    const dropByName = `drop-${testName('node')}`;
    await nodeHandshake(tls.host, tls.port, dropByName);
    const otherPid = testName('curl');
    const r = await runSni('curl', ['-sk', '--resolve', `${otherPid}:${tls.port}:127.0.0.1`, `https://${otherPid}:${tls.port}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(tls.seen.includes(dropByName) && tls.seen.includes(otherPid), 'both hellos reached the server');
    await tracer.marker((n) => nodeHandshake(tls.host, tls.port, n));
    assert.deepEqual(tracer.byName(dropByName), [], 'the name the query excludes');
    assert.deepEqual(tracer.byName(otherPid), [], 'curl is another pid');
    assert.ok(tracer.events.length > 0 && tracer.events.every((e) => e.proc.pid === process.pid && !(e.name ?? "").startsWith('drop-')), JSON.stringify(tracer.events));
  } finally {
    const r = await tracer.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});

test('trace sni --query: a type error is a usage error with the column, before anything is attached', { skip: notRoot }, async () => {
  const r = await runSni(process.execPath, [new URL('../../../src/cli/bin.js', import.meta.url).pathname, 'trace', 'sni', '--query', 'name == "a" && proc.pid == "7"']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^tlscope: --query: no such overload: int == string at column 16\n {4}name == "a" && proc\.pid == "7"\n {19}\^\n/);
});

test('trace tls --http --query: http.path and the tls boolean keep only matching exchanges', { skip: notRoot }, async () => {
  const tracer = new CliTracer(['--host', '--http', '--query', 'tls && !http.path.startsWith("/drop") && http.status == 200 && proc.comm == "curl"']);
  const paths = (): string[] => tracer.events.map((e) => (e as unknown as { path?: string }).path ?? '');
  try {
    await tracer.ready();
    const curl = async (path: string): Promise<void> => {
      const r = await runProcess('curl', ['-sk', '--http1.1', '--resolve', `q.test:${py.port}:127.0.0.1`, `https://q.test:${py.port}${path}`]).done;
      assert.equal(r.code, 0, r.stderr);
    };
    await curl('/drop-me');
    await curl('/keep-me');
    await until('the /keep-me exchange', () => paths().includes('/keep-me'));
    await tracer.marker(py, (path) => paths().includes(path));
    assert.ok(py.requests.some((q) => q.bytes.includes('/drop-me')), 'the server got /drop-me');
    assert.ok(!paths().some((p) => p.startsWith('/drop')), paths().join(' '));
    // the python server's side (comm python3) is left out by proc.comm
    assert.ok(tracer.events.every((e) => e.proc.comm === 'curl'), JSON.stringify(tracer.events));
  } finally {
    const r = await tracer.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});

function listen(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer((s) => s.end('hi\n'));
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}

function knock(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.end());
    s.resume(); // read the server's answer to its end, or 'close' never comes
    s.on('error', reject);
    s.on('close', () => resolve());
  });
}

test('capture --query: only packets the expression keeps (after the pcap filter)', { skip: notRoot }, async () => {
  const keep = await listen();
  const drop = await listen();
  const cap = new Capture(['--host', '-i', 'lo', '--query', `dport == ${keep.port} && protocol == "tcp" && direction == "in" && interface == "lo"`, 'tcp']);
  try {
    await cap.listening();
    // a warm-up: the socket may be listening before its ring delivers
    await waitUntil('a kept packet', async () => {
      await knock(keep.port);
      return new RegExp(`\\.${keep.port}: `).test(cap.stdoutText);
    }, 30_000, () => cap.stderr);
    await knock(drop.port);
    const before = (cap.stdoutText.match(new RegExp(`\\.${keep.port}: Flags \\[S\\]`, 'g')) ?? []).length;
    await knock(keep.port); // the marker: after it, the dropped connection's packets would be out
    await waitUntil('the marker SYN', () => (cap.stdoutText.match(new RegExp(`\\.${keep.port}: Flags \\[S\\]`, 'g')) ?? []).length > before, 30_000, () => cap.stdoutText);
    const lines = cap.stdoutText.trim().split('\n');
    assert.ok(!lines.some((l) => l.includes(`.${drop.port}`)), lines.join('\n'));
    assert.ok(lines.every((l) => l.includes(`.${keep.port}: `)), `only packets to ${keep.port}:\n${lines.join('\n')}`);
  } finally {
    const r = await cap.stop();
    assert.equal(r.code, 0, r.stderr);
    keep.server.close();
    drop.server.close();
  }
});
