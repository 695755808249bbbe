// SPDX-License-Identifier: Apache-2.0
// What `tlscope trace tls` prints: the default columns (COMM PID DIR LEN SRC DST and a
// printable preview), --hex dumps, --http request/response pairs (client and server side),
// -o json --hex, and --max-bytes from the command line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.tls);
import { CliTracer, dataOf, makeWorkDir, pyResponse, startPyServer, type PyServer } from './helpers.js';
import { CLI } from '../../helpers/cli.js';
import { startProcess } from '../../helpers/process.js';
import { waitUntil } from '../../helpers/wait.js';


let work: ReturnType<typeof makeWorkDir>;
let py: PyServer;

before(async () => {
  if (kernelSkip) return;
  work = makeWorkDir('tlscope-tls-output-');
  py = await startPyServer(work);
});

after(async () => {
  if (kernelSkip) return;
  await py?.close();
  work?.remove();
});

async function curl(path: string, ...extra: string[]): Promise<number> {
  const r = await startProcess('curl', ['-sk', '--http1.1', '--resolve', `out.test:${py.port}:127.0.0.1`, `https://out.test:${py.port}${path}`, ...extra]).done;
  assert.equal(r.code, 0, r.stderr);
  return r.pid;
}

test('columns: COMM PID DIR LEN SRC DST and a printable preview; --hex adds a dump under each line', { skip: kernelSkip }, async () => {
  const tracer = new CliTracer(['--host', '--hex'], { json: false });
  try {
    await tracer.ready();
    const pid = await curl('/columns');
    await waitUntil('curl\'s write and read', () => tracer.lines.some((l) => new RegExp(`^curl\\s+${pid}\\s+read\\s`).test(l)));
    // no wait for more: curl's write returned before its read, so its row and dump are printed before the read's row
    const header = tracer.lines[0] ?? '';
    assert.match(header, /^COMM\s+PID\s+DIR\s+LEN\s+SRC\s+DST\s+DATA$/);
    const at = tracer.lines.findIndex((l) => new RegExp(`^curl\\s+${pid}\\s+write\\s`).test(l));
    const row = tracer.lines[at] ?? '';
    assert.match(row, new RegExp(`^curl\\s+${pid}\\s+write\\s+\\d+\\s+127\\.0\\.0\\.1:\\d+\\s+127\\.0\\.0\\.1:${py.port}\\s+GET /columns HTTP/1\\.1\\\\r\\\\nHost: out\\.test:${py.port}\\\\r\\\\n`));
    // the dump: offset, 16 bytes in hex, the printable form
    assert.match(tracer.lines[at + 1] ?? '', /^ {4}00000000 {2}47 45 54 20 2f 63 6f 6c {2}75 6d 6e 73 20 48 54 54 {2}\|GET \/columns HTT\|$/);
    const read = tracer.lines.find((l) => new RegExp(`^curl\\s+${pid}\\s+read\\s+\\d+\\s+127\\.0\\.0\\.1:${py.port}\\s`).test(l)) ?? '';
    assert.match(read, /HTTP\/1\.1 200 OK\\r\\nContent-Type: text\/plain\\r\\n/);
  } finally {
    const r = await tracer.stop();
    assert.equal(r.code, 0, r.stderr);
  }
});

test('--http: requests paired with responses per connection, on the client and on the server', { skip: kernelSkip }, async () => {
  const tracer = new CliTracer(['--host', '--http']);
  try {
    await tracer.ready();
    // two requests on one keep-alive connection
    const pid = await curl('/first?a=1', '--next', ...['-sk', '--http1.1', '--resolve', `out.test:${py.port}:127.0.0.1`, `https://out.test:${py.port}/second`]);
    await waitUntil('both exchanges on both sides', () => tracer.events.filter((e) => (e as unknown as { http?: { path?: string } }).http?.path === '/second').length >= 2);
    await tracer.marker(py, (path) => tracer.events.some((e) => (e as unknown as { http?: { path?: string } }).http?.path === path)); // then no more exchanges of curl's connection can come
    type HttpJson = { proc: { pid: number; comm: string }; role: string; http: { method: string; path: string; status: number; host: string }; latencyMs: number; client: string; server: string; responseBytes: number };
    const all = tracer.events as unknown as HttpJson[];
    const client = all.filter((e) => e.proc.pid === pid);
    assert.deepEqual(client.map((e) => [e.role, e.http.method, e.http.path, e.http.status]), [['client', 'GET', '/first?a=1', 200], ['client', 'GET', '/second', 200]]);
    for (const e of client) {
      assert.equal(e.http.host, `out.test:${py.port}`);
      assert.equal(e.server, `127.0.0.1:${py.port}`);
      assert.ok(e.latencyMs >= 0 && e.latencyMs < 10_000);
      assert.equal(e.responseBytes, pyResponse().length);
    }
    assert.equal(client[0]?.client, client[1]?.client, 'one connection');
    const server = all.filter((e) => e.proc.pid === py.pid && e.client === client[0]?.client);
    assert.deepEqual(server.map((e) => [e.role, e.http.method, e.http.path, e.http.status]), [['server', 'GET', '/first?a=1', 200], ['server', 'GET', '/second', 200]]);
  } finally {
    const r = await tracer.stop();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /tlscope: \d+ events? shown, 0 lost/);
  }
});

test('-o json --hex and --max-bytes from the command line', { skip: kernelSkip }, async () => {
  const tracer = new CliTracer(['--host', '--hex', '--max-bytes', '16']);
  try {
    await tracer.ready();
    const pid = await curl('/json-hex');
    await waitUntil('curl\'s events', () => tracer.of(pid).some((e) => e.direction === 'read'));
    // no wait for more: curl's write returned before its read, so its event came first
    const w = tracer.of(pid).find((e) => e.direction === 'write')!;
    assert.equal(w.dataEncoding, 'hex');
    assert.equal(w.data, Buffer.from('GET /json-hex HT').toString('hex'));
    assert.equal(w.truncated, true);
    assert.ok(w.len > 16);
    assert.equal(dataOf(w).length, 16);
  } finally {
    await tracer.stop();
  }
});

test('--help lists the fields; bad flags are usage errors', { skip: kernelSkip }, async () => {
  const h = await startProcess(process.execPath, [CLI, 'trace', 'tls', '--help']).done;
  assert.equal(h.code, 0);
  for (const f of ['direction', 'len', 'src', 'dst', 'tupleSource', 'dataEncoding', 'latencyNs', '--http', '--hex', '--max-bytes']) assert.ok(h.stdout.includes(f), f);
  const bad = await startProcess(process.execPath, [CLI, 'trace', 'tls', '--max-bytes', 'lots']).done;
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--max-bytes wants a size/);
  const src = await startProcess(process.execPath, [CLI, 'trace', 'tls', '--sources', 'openssl,wolfssl']).done;
  assert.equal(src.code, 2);
  assert.match(src.stderr, /unknown TLS stack "wolfssl"/);
});
