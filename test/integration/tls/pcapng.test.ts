// SPDX-License-Identifier: Apache-2.0
// trace tls -w FILE writes what the run shows, read back with tshark: --filter and --query
// (also with --http, where the file holds the shown exchanges' raw calls) leave out of the file
// what they leave out of the output; a docker container's calls go on one interface named
// after the container, with the container in each packet's comment; --redact's masked bytes
// are the ones written, and the redaction summary is said without -v.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.tls);
import { ensureRuntimes, runtimeSkipReason, TestContainers, uniqueName, type TestContainer } from '../../helpers/runtimes.js';
import { CliProcess } from '../../helpers/cli.js';
import { CliTracer, dataOf, makeWorkDir, startPyServer, type PyServer } from './helpers.js';
import { startProcess } from '../../helpers/process.js';
import { waitUntil } from '../../helpers/wait.js';

const tsharkSkip = spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0 ? false : 'tshark is not installed (scripts/setup.sh --test installs it)';
const skip = kernelSkip || tsharkSkip;

let work: ReturnType<typeof makeWorkDir>;
let py: PyServer;

before(async () => {
  if (skip) return;
  work = makeWorkDir('tlscope-tls-pcapng-');
  py = await startPyServer(work);
});

after(async () => {
  if (skip) return;
  await py?.close();
  work?.remove();
});

/** curl to the python server; its pid and local port. */
async function curl(path: string, ...extra: string[]): Promise<{ pid: number; port: number }> {
  const r = await startProcess('curl', ['-sk', '--http1.1', '--resolve', `pcap.test:${py.port}:127.0.0.1`, ...extra, '-o', '/dev/null', '-w', '%{local_port}', `https://pcap.test:${py.port}${path}`]).done;
  assert.equal(r.code, 0, r.stderr);
  return { pid: r.pid, port: Number(r.stdout) };
}

/** tshark -T fields rows of the frames matching `filter`. */
function fields(file: string, filter: string, ...f: string[]): string[][] {
  return execFileSync('tshark', ['-r', file, ...(filter === '' ? [] : ['-Y', filter]), '-T', 'fields', '-E', 'separator=|', ...f.flatMap((x) => ['-e', x])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    .trim().split('\n').filter((l) => l !== '').map((l) => l.split('|'));
}

/** The TCP conversations tshark finds, as "a:p <-> b:p" lines. */
function conversations(file: string): string[] {
  const out = execFileSync('tshark', ['-r', file, '-q', '-z', 'conv,tcp'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.split('\n').filter((l) => l.includes('<->')).map((l) => l.trim().split(/\s+/).slice(0, 3).join(' '));
}

const interfaces = (file: string): string[] => [...new Set(fields(file, '', 'frame.interface_name').map((r) => r[0] ?? ''))].sort();

test('--filter: only the shown calls are in the file (curl\'s, not the python server\'s), on an interface per process', { skip }, async () => {
  const file = join(work.dir, 'filter.pcapng');
  const tracer = new CliTracer(['--host', '--filter', 'proc.comm==curl', '-w', file]);
  let a: { pid: number; port: number } | undefined;
  let b: { pid: number; port: number } | undefined;
  try {
    await tracer.ready();
    a = await curl('/filter/a');
    b = await curl('/filter/b');
    await waitUntil('both curls\' responses', () => [a!, b!].every((c) => tracer.of(c.pid).some((e) => e.direction === 'read')), 20_000);
  } finally {
    const s = await tracer.stop();
    assert.equal(s.code, 0, s.stderr);
  }
  assert.ok(!tracer.events.some((e) => e.proc.comm !== 'curl'), 'the filter held on the output');
  assert.deepEqual(interfaces(file), [`pid ${a.pid} (curl)`, `pid ${b.pid} (curl)`].sort());
  const comments = fields(file, 'tcp.len > 0', 'frame.comment').map((r) => r[0] ?? '');
  assert.ok(comments.length >= 4 && comments.every((c) => / curl SSL_(write|read)/.test(c)), comments.join('\n'));
  const uris = fields(file, 'http.request', 'http.request.uri').map((r) => r[0]).sort();
  assert.deepEqual(uris, ['/filter/a', '/filter/b'], 'each request once: the server\'s copy was filtered out');
  const convs = conversations(file);
  assert.equal(convs.length, 2, convs.join('\n'));
  for (const c of [a, b]) assert.ok(convs.some((l) => l.includes(`127.0.0.1:${c.port} `) || l.endsWith(`127.0.0.1:${c.port}`)), `${c.port} in ${convs.join('; ')}`);
});

test('--http --query --redact: the file holds the raw calls of the shown exchanges only (both sides of /keep, nothing of /drop), masked', { skip }, async () => {
  const file = join(work.dir, 'query.pcapng');
  const secret = `HTTPSECRET${process.pid}`;
  const tracer = new CliTracer(['--host', '--http', '--redact', '--query', 'http.path == "/keep"', '-w', file]);
  let keep: { pid: number; port: number } | undefined;
  let drop: { pid: number; port: number } | undefined;
  try {
    await tracer.ready();
    drop = await curl('/drop');
    keep = await curl('/keep', '-H', `Authorization: Bearer ${secret}`);
    await waitUntil('/keep on both sides', () => tracer.events.filter((e) => (e as unknown as { http?: { path?: string } }).http?.path === '/keep').length >= 2, 20_000);
  } finally {
    const s = await tracer.stop();
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stderr, /^tlscope: redaction: 2 header values masked in the exchanges; in the raw calls kept for -w \(of every connection, before --query and --filter choose what is written\): [1-9]\d* HTTP\/1 header values? and 0 HTTP\/2 header values masked in the raw data$/m, s.stderr);
  }
  const raw = execFileSync('tshark', ['-r', file, '-Y', 'frame contains "GET /keep "', '-T', 'fields', '-e', 'tcp.payload'], { encoding: 'utf8' }).trim().split('\n').map((h) => Buffer.from(h, 'hex').toString('latin1'));
  assert.equal(raw.length, 2);
  for (const r of raw) {
    assert.match(r, /\r\nAuthorization: \*+\r\n/);
    assert.ok(!r.includes(secret));
  }
  assert.deepEqual(interfaces(file), [`pid ${keep.pid} (curl)`, `pid ${py.pid} (python3)`].sort());
  // both ends were traced: the stream is in the file twice with the same sequence numbers (tshark
  // dissects one copy as HTTP, the other as a retransmission), so the bytes are looked for
  const keepRows = fields(file, 'frame contains "GET /keep "', 'frame.interface_name').map((r) => r[0]).sort();
  assert.deepEqual(keepRows, [`pid ${keep.pid} (curl)`, `pid ${py.pid} (python3)`].sort(), 'the request as curl wrote it and as the server read it');
  assert.deepEqual(fields(file, 'frame contains "/drop"', 'frame.number'), [], 'nothing of the dropped exchange');
  assert.ok(fields(file, 'http.response.code == 200', 'frame.number').length >= 1, 'the response is there too');
  const convs = conversations(file);
  assert.equal(convs.length, 1, convs.join('\n'));
  assert.ok(convs[0]?.includes(`127.0.0.1:${keep.port}`), convs[0]);
  assert.ok(!convs[0]?.includes(`127.0.0.1:${drop.port}`));
});

test('--redact -w: the file holds the masked bytes, and the redaction summary is said without -v', { skip }, async () => {
  const file = join(work.dir, 'redact.pcapng');
  const secret = `PCAPSECRET${process.pid}`;
  // no -v: the summary must come anyway
  const t = new CliProcess(['trace', 'tls', '--host', '-o', 'json', '--redact', '-w', file]);
  let pid = 0;
  try {
    await t.waitForStderr(/tlscope: exec gate: /, 60_000);
    // no "tracing N files" line without -v: ask until a call shows
    await waitUntil('a masked request in the output', async () => {
      pid = (await curl('/redact', '-H', `Authorization: Bearer ${secret}`)).pid;
      return t.stdoutText.includes(`"pid":${pid}`) || t.stdoutText.includes('GET /redact');
    }, 30_000, undefined, 500);
    await waitUntil('the server\'s read', () => t.stdoutText.split('\n').filter((l) => l.includes('GET /redact')).length >= 2, 10_000);
  } finally {
    const s = await t.stop();
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stderr, /^tlscope: redaction: [1-9]\d* HTTP\/1 header values? and 0 HTTP\/2 header values masked in the raw data$/m, s.stderr);
  }
  assert.ok(existsSync(file));
  const masked = fields(file, 'frame contains "Authorization: Bearer" || frame contains "Authorization: *"', 'frame.interface_name', 'tcp.payload');
  assert.ok(masked.length >= 2, 'both copies of the request (curl\'s and the server\'s)');
  for (const [, payload] of masked) assert.match(Buffer.from(payload ?? '', 'hex').toString('latin1'), /\r\nAuthorization: \*+\r\n/);
  assert.ok(!execFileSync('tshark', ['-r', file, '-x'], { encoding: 'latin1' }).includes(secret.slice(0, 8)));
});

const dockerSkip = skip || runtimeSkipReason('docker');

test('-c CONTAINER -w: the container\'s calls on one interface named after it, the container in each comment', { skip: dockerSkip, timeout: 240_000 }, async () => {
  const containers = new TestContainers(await ensureRuntimes());
  const name = uniqueName('tlscope-pcap');
  const file = join(work.dir, 'container.pcapng');
  const tracer = new CliTracer(['-r', 'docker', '-c', name, '--timeout', '300', '-w', file]);
  let c: TestContainer | undefined;
  let host: { pid: number; port: number } | undefined;
  try {
    await tracer.ready();
    c = await containers.run('docker', { name });
    await tracer.waitForStderr(new RegExp(`probing openssl in /proc/${c.pid}/root/\\S*libssl\\.so\\.3 `), 60_000);
    execFileSync('docker', ['cp', work.cert, `${c.id}:/tmp/c.pem`]);
    execFileSync('docker', ['cp', work.key, `${c.id}:/tmp/k.pem`]);
    execFileSync('docker', ['exec', '-d', c.id, 'openssl', 's_server', '-accept', '127.0.0.1:8443', '-cert', '/tmp/c.pem', '-key', '/tmp/k.pem', '-www', '-quiet']);
    await containers.exec(c, ['curl', '-sk', '--retry', '30', '--retry-connrefused', '--retry-delay', '1', '--http1.1', '--resolve', 'box.test:8443:127.0.0.1', 'https://box.test:8443/inside']);
    // a host client outside the scope
    host = await curl('/outside');
    const marker = `/marker-${process.pid}`;
    await containers.exec(c, ['curl', '-sk', '--http1.1', '--resolve', 'box.test:8443:127.0.0.1', `https://box.test:8443${marker}`]);
    await waitUntil('the marker request in the container', () => tracer.events.some((e) => e.direction === 'write' && dataOf(e).toString().includes(`GET ${marker} `)), 20_000);
  } finally {
    const s = await tracer.stop();
    if (c !== undefined) await containers.remove(c);
    await containers.cleanup();
    assert.equal(s.code, 0, s.stderr);
  }
  assert.deepEqual(interfaces(file), [`${name} (docker)`], 'one interface, the container\'s');
  const rows = fields(file, 'tcp.len > 0', 'frame.comment', 'tcp.srcport', 'tcp.dstport');
  assert.ok(rows.length >= 4);
  for (const r of rows) {
    assert.match(r[0] ?? '', new RegExp(`^pid \\d+ tid \\d+ (curl|openssl) \\S+ in ${name} \\(docker\\)$`));
    assert.ok(r[1] === '8443' || r[2] === '8443', 'the container\'s own connection');
  }
  const uris = fields(file, 'http.request', 'http.request.uri').map((r) => r[0]);
  assert.ok(uris.includes('/inside') && uris.includes(`/marker-${process.pid}`), uris.join(', '));
  assert.ok(!uris.includes('/outside'));
  assert.ok(!conversations(file).some((l) => l.includes(`:${host!.port}`)), 'nothing of the host client');
});
