// SPDX-License-Identifier: Apache-2.0
// --query (CEL) narrows real events of each gadget: trace sni (name and pid, the pid pushed
// down as -p), trace tls --http (http.path, tls), capture (dport). Each drops a matching-but-
// for-the-query event sent before a positive marker that passes the query: the ring delivers
// in order, so once the marker is out, the dropped event would have been out too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.sni, ...NEEDS.tls, ...NEEDS.capture);
import { Tracer, nodeHandshake, startTlsServer, testName, type TestTlsServer } from '../sni/helpers.js';
import { CliTracer, makeWorkDir, startPyServer, type PyServer } from '../tls/helpers.js';
import { Capture } from '../capture/helpers.js';
import { runCli } from '../../helpers/cli.js';
import { runProcess } from '../../helpers/process.js';
import { waitUntil } from '../../helpers/wait.js';


let tls: TestTlsServer;
let work: ReturnType<typeof makeWorkDir>;
let py: PyServer;

before(async () => {
  if (kernelSkip) return;
  tls = await startTlsServer('127.0.0.1');
  work = makeWorkDir('tlscope-query-');
  py = await startPyServer(work);
});

after(async () => {
  if (kernelSkip) return;
  await tls?.close();
  await py?.close();
  work?.remove();
});

test('trace sni --query: a name test and a pid (pushed down as -p) keep only what matches', { skip: kernelSkip }, async () => {
  const query = `proc.pid == ${process.pid} && !name.startsWith("drop-") && name.endsWith(".sni.test") && !tls`;
  const tracer = new Tracer(['--host', '--timeout', '300', '-v', '--query', query]);
  try {
    await tracer.ready((n) => nodeHandshake(tls.host, tls.port, n));
    const dropByName = `drop-${testName('node')}`;
    await nodeHandshake(tls.host, tls.port, dropByName);
    const otherPid = testName('curl');
    const r = await runProcess('curl', ['-sk', '--resolve', `${otherPid}:${tls.port}:127.0.0.1`, `https://${otherPid}:${tls.port}/`]);
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

test('trace sni --query: a type error is a usage error with the column, before anything is attached', { skip: kernelSkip }, async () => {
  const r = await runCli(['trace', 'sni', '--query', 'name == "a" && proc.pid == "7"']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^tlscope: --query: no such overload: int == string at column 16\n {4}name == "a" && proc\.pid == "7"\n {19}\^\n/);
});

test('trace tls --http --query: http.path and the tls boolean keep only matching exchanges', { skip: kernelSkip }, async () => {
  const tracer = new CliTracer(['--host', '--http', '--query', 'tls && !http.path.startsWith("/drop") && http.status == 200 && proc.comm == "curl"']);
  const paths = (): string[] => tracer.events.map((e) => (e as unknown as { http?: { path?: string } }).http?.path ?? "");
  try {
    await tracer.ready();
    const curl = async (path: string): Promise<void> => {
      const r = await runProcess('curl', ['-sk', '--http1.1', '--resolve', `q.test:${py.port}:127.0.0.1`, `https://q.test:${py.port}${path}`]);
      assert.equal(r.code, 0, r.stderr);
    };
    await curl('/drop-me');
    await curl('/keep-me');
    await waitUntil('the /keep-me exchange', () => paths().includes('/keep-me'));
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


const capCount = (text: string, re: RegExp): number => (text.match(re) ?? []).length;

test('capture --query: only packets the expression keeps (after the pcap filter)', { skip: kernelSkip }, async () => {
  const keep = await listen();
  const drop = await listen();
  const cap = new Capture(['--host', '-i', 'lo', '--query', `dport == ${keep.port} && protocol == "tcp" && direction == "in" && interface == "lo"`, 'tcp']);
  const syns = (): number => capCount(cap.stdoutText, new RegExp(`\\.${keep.port}: Flags \\[S\\]`, 'g'));
  try {
    await cap.listening();
    // a warm-up: the socket may be listening before its ring delivers
    await waitUntil('a kept packet', async () => {
      await knock(keep.port);
      return new RegExp(`\\.${keep.port}: `).test(cap.stdoutText);
    }, 30_000, () => cap.stderr);
    await knock(drop.port);
    const before = syns();
    await knock(keep.port); // the marker: after it, the dropped connection's packets would be out
    await waitUntil('the marker SYN', () => syns() > before, 30_000, () => cap.stdoutText);
    const lines = cap.stdoutText.trim().split('\n');
    assert.ok(!lines.some((l) => l.includes(`.${drop.port}`)), lines.join('\n'));
    assert.ok(lines.every((l) => l.includes(`.${keep.port}: `)), `only packets to ${keep.port}:\n${lines.join('\n')}`);
  } finally {
    const r = await cap.stop();
    assert.equal(r.code, 0, r.stderr);
    // the summary counts what the query left out (at least the replies from keep.port, and drop's)
    const left = /^(\d+) packets? not matching the query$/m.exec(r.stderr);
    assert.ok(left !== null && Number(left[1]) > 0, r.stderr);
    keep.server.close();
    drop.server.close();
  }
});

test('capture --query: proc.comm names the sending process (owners are loaded for it without -v or -w)', { skip: kernelSkip }, async () => {
  const srv = await listen();
  const cap = new Capture(['--host', '-i', 'lo', '--query', `dport == ${srv.port} && proc.comm == "curl"`, 'tcp']);
  const curlPorts = new Set<number>();
  const curlOnce = async (): Promise<void> => {
    // curl speaks HTTP to a server that answers "hi": it fails (exit 1 or 52/56) but its packets are real
    const r = await runProcess('curl', ['-s', '--max-time', '5', '-o', '/dev/null', '-w', '%{local_port}', `http://127.0.0.1:${srv.port}/`]);
    const port = Number(r.stdout.trim());
    assert.ok(port > 0, `curl's local port: ${r.stdout} ${r.stderr}`);
    curlPorts.add(port);
  };
  const linesFrom = (port: number): number => capCount(cap.stdoutText, new RegExp(`127\\.0\\.0\\.1\\.${port} > `, 'g'));
  try {
    await cap.listening();
    await waitUntil('a packet of curl', async () => {
      await curlOnce();
      return [...curlPorts].some((p) => linesFrom(p) > 0);
    }, 30_000, () => cap.stderr);
    // node (this test's process) talks to the same port: not curl, so left out
    const nodePort = await new Promise<number>((resolve, reject) => {
      const s = connect(srv.port, '127.0.0.1', () => { const p = s.localPort as number; s.write('x'); s.end(); s.on('close', () => resolve(p)); });
      s.resume();
      s.on('error', reject);
    });
    const before = [...curlPorts].reduce((n, p) => n + linesFrom(p), 0);
    await curlOnce(); // the marker
    const marker = [...curlPorts].at(-1) as number;
    await waitUntil('the marker curl', () => linesFrom(marker) > 0 && [...curlPorts].reduce((n, p) => n + linesFrom(p), 0) > before, 30_000, () => cap.stdoutText);
    const lines = cap.stdoutText.trim().split('\n');
    assert.equal(linesFrom(nodePort), 0, `node's connection from port ${nodePort} is not curl's:\n${lines.join('\n')}`);
    assert.ok(lines.every((l) => [...curlPorts].some((p) => l.includes(`127.0.0.1.${p} > 127.0.0.1.${srv.port}: `))), `only curl's packets to ${srv.port}:\n${lines.join('\n')}`);
  } finally {
    const r = await cap.stop();
    assert.equal(r.code, 0, r.stderr);
    srv.server.close();
  }
});

test('capture --query: proc.netns_id is pushed down (no socket where it cannot match)', { skip: kernelSkip }, async () => {
  const hostNetns = statSync('/proc/self/ns/net').ino;
  // the host's inode: listening as without a query
  const yes = new Capture(['--host', '-i', 'lo', '--timeout', '2', '--query', `proc.netns_id == ${hostNetns}`]);
  await yes.listening();
  const ry = await yes.finished;
  assert.equal(ry.code, 0, ry.stderr);
  // another inode: no socket at all, and the run says why nothing was captured
  const other = hostNetns + 1;
  const no = new Capture(['--host', '-v', '-i', 'lo', '--timeout', '2', '--query', `proc.netns_id == ${other} || proc.netns_id == ${other + 1}`]);
  const rn = await no.finished;
  assert.equal(rn.code, 0, rn.stderr);
  assert.doesNotMatch(rn.stderr, /listening on/, rn.stderr);
  assert.match(rn.stderr, new RegExp(`not listening in netns ${hostNetns}: the query needs proc\\.netns_id in \\[${other}, ${other + 1}\\]`), rn.stderr);
  assert.match(rn.stderr, /no namespace in scope has the query's proc\.netns_id/, rn.stderr);
  assert.match(rn.stderr, /^0 packets captured$/m, rn.stderr);
});

test('capture --query: a bad expression is a usage error with the column, before anything is opened', { skip: kernelSkip }, async () => {
  const typeError = await runCli(['capture', '--host', '--query', 'protocol == "tcp" && dport == "443"', 'tcp']);
  assert.equal(typeError.code, 2, typeError.stderr);
  assert.match(typeError.stderr, /^tlscope: --query: no such overload: int == string at column 22\n {4}protocol == "tcp" && dport == "443"\n {25}\^\n/);
  assert.doesNotMatch(typeError.stderr, /listening on/);
  const unknown = await runCli(['capture', '--query', 'proc.cmd == "curl"']);
  assert.equal(unknown.code, 2, unknown.stderr);
  assert.match(unknown.stderr, /^tlscope: --query: unknown field "proc\.cmd" at column 1\n/);
  assert.match(unknown.stderr, /known fields: .*proc\.comm/);
});
