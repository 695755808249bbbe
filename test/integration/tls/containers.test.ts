// SPDX-License-Identifier: Apache-2.0
// trace tls in a docker container with its own copy of libssl (the test image carries curl,
// openssl and their libraries): the container starts after the tracer, its libssl is probed
// through /proc/PID/root, curl inside talks to an openssl server inside (container loopback),
// events carry the container's name, and a host process outside the scope is not shown. Then
// a Go server and client (static, built here) copied into the container and run there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.tls);
import { ensureRuntimes, runtimeSkipReason, TestContainers, uniqueName, type TestContainer } from '../../helpers/runtimes.js';
import { CliTracer, buildGoApp, dataOf, goSkipReason, makeWorkDir, startPyServer } from './helpers.js';
import { startProcess } from '../../helpers/process.js';
import { sleep, waitUntil } from '../../helpers/wait.js';


const skip = kernelSkip || runtimeSkipReason('docker');
let containers: TestContainers | undefined;

before(async () => {
  if (skip) return;
  containers = new TestContainers(await ensureRuntimes());
});

after(async () => {
  await containers?.cleanup();
});

test('a docker container with its own libssl, started while tracing: curl inside is traced, with its name', { skip, timeout: 240_000 }, async () => {
  const name = uniqueName('tlscope-tls');
  const work = makeWorkDir('tlscope-tls-containers-');
  const host = await startPyServer(work);
  const tracer = new CliTracer(['-r', 'docker', '-c', name, '--timeout', '300']);
  let c: TestContainer | undefined;
  try {
    await tracer.ready();
    c = await containers!.run('docker', { name });
    // its libssl is probed as the container appears, through its root, before anything maps it
    await tracer.waitForStderr(new RegExp(`probing openssl in /proc/${c.pid}/root/\\S*libssl\\.so\\.3 `), 60_000);
    execFileSync('docker', ['cp', work.cert, `${c.id}:/tmp/c.pem`]);
    execFileSync('docker', ['cp', work.key, `${c.id}:/tmp/k.pem`]);
    execFileSync('docker', ['exec', '-d', c.id, 'openssl', 's_server', '-accept', '127.0.0.1:8443', '-cert', '/tmp/c.pem', '-key', '/tmp/k.pem', '-www', '-quiet']);
    // s_server may take a moment to listen: curl retries refused connections (no TLS happens on those)
    const out = await containers!.exec(c, ['curl', '-sk', '--retry', '30', '--retry-connrefused', '--retry-delay', '1', '--http1.1', '--resolve', 'box.test:8443:127.0.0.1', 'https://box.test:8443/inside']);
    assert.match(out, /s_server/);
    // a host client talking to a host server: outside the scope
    const hostCurl = await startProcess('curl', ['-sk', '--resolve', `shop.test:${host.port}:127.0.0.1`, `https://shop.test:${host.port}/host`]).done;
    assert.equal(hostCurl.code, 0);

    await waitUntil('curl\'s events in the container', () => tracer.events.some((e) => e.proc.comm === 'curl' && e.direction === 'read' && dataOf(e).toString().includes('s_server')), 20_000);
    // the positive marker: one more request inside, after the host curl ended. Calls enter the
    // one ring in order, and the tracer prints in ring order: once the marker's request is out,
    // anything of the host curl would be out too.
    const marker = `/marker-${process.pid}`;
    await containers!.exec(c, ['curl', '-sk', '--http1.1', '--resolve', 'box.test:8443:127.0.0.1', `https://box.test:8443${marker}`]);
    await waitUntil('the marker request in the container', () => tracer.events.some((e) => e.direction === 'write' && dataOf(e).toString().includes(`GET ${marker} `)), 20_000);
    const curl = tracer.events.filter((e) => e.proc.comm === 'curl');
    const writes = Buffer.concat(curl.filter((e) => e.direction === 'write').map(dataOf)).toString();
    assert.match(writes, /^GET \/inside HTTP\/1\.1\r\nHost: box\.test:8443\r\n/);
    const reads = Buffer.concat(curl.filter((e) => e.direction === 'read').map(dataOf)).toString();
    assert.match(reads, /^HTTP\/1\.0 200 ok\r\n/);
    for (const e of curl) {
      assert.equal(e.runtime?.containerName, name);
      assert.equal(e.runtime?.runtimeName, 'docker');
      assert.equal(e.source, 'openssl');
      assert.match(e.library ?? '', /^\/(usr\/)?lib\/x86_64-linux-gnu\/libssl\.so\.3$/, 'the container\'s own copy, named as the container sees it');
      assert.match(e.local ?? '', /^127\.0\.0\.1:\d+$/);
      assert.equal(e.remote, '127.0.0.1:8443');
      assert.notEqual(e.proc.pid, hostCurl.pid);
    }
    assert.ok(!tracer.events.some((e) => e.proc.pid === hostCurl.pid || e.proc.pid === host.pid), 'host processes are out of scope');
    const r = await tracer.stop();
    assert.equal(r.code, 0, r.stderr);
  } finally {
    await tracer.stop();
    await host.close();
    if (c !== undefined) await containers!.remove(c);
    work.remove();
  }
});

test('Go inside a docker container: a server and a client built here, run in the container, traced by goroutine', { skip: skip || goSkipReason(), timeout: 300_000 }, async () => {
  const name = uniqueName('tlscope-tls-go');
  const work = makeWorkDir('tlscope-tls-containers-go-');
  const app = buildGoApp(work.dir); // CGO_ENABLED=0: static, runs on the busybox image
  const c = await containers!.run('docker', { name });
  const tracer = new CliTracer(['-r', 'docker', '-c', name, '--timeout', '300']);
  try {
    await tracer.ready();
    for (const [from, to] of [[app.stripped, '/tmp/tlsapp'], [work.cert, '/tmp/c.pem'], [work.key, '/tmp/k.pem']] as const) execFileSync('docker', ['cp', from, `${c.id}:${to}`]);
    execFileSync('docker', ['exec', '-d', c.id, '/tmp/tlsapp', 'server', '127.0.0.1:9443', '/tmp/c.pem', '/tmp/k.pem']);
    // probed from the exec hint, through the container's root
    await tracer.waitForStderr(/probing go in \/proc\/\d+\/root\/tmp\/tlsapp \(go1\.\d+[.\d]*, register ABI, \d+ RETs/, 30_000);
    await sleep(500);
    const client = startProcess('docker', ['exec', '-i', c.id, '/tmp/tlsapp', 'client', '127.0.0.1:9443', '/inside/a,/inside/b'], { input: 'go\n', inputDelayMs: 500, timeoutMs: 60_000 });
    const r = await client.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '200 31\n200 31\n');
    await waitUntil('both sides', () => tracer.events.filter((e) => e.source === 'go' && dataOf(e).toString().includes('hi to /inside/b')).length >= 2, 20_000);
    await sleep(300);
    const go = tracer.events.filter((e) => e.source === 'go');
    const writes = Buffer.concat(go.filter((e) => e.direction === 'write' && dataOf(e).toString().startsWith('GET ')).map(dataOf)).toString();
    assert.match(writes, /^GET \/inside\/a HTTP\/1\.1\r\n[\s\S]*GET \/inside\/b HTTP\/1\.1\r\n/);
    for (const e of go) {
      assert.equal(e.runtime?.containerName, name);
      assert.equal(e.library, '/tmp/tlsapp');
      assert.ok(e.local === '127.0.0.1:9443' || e.remote === '127.0.0.1:9443', `tuple ${e.local} ${e.remote}`);
    }
    const done = await tracer.stop();
    assert.equal(done.code, 0, done.stderr);
  } finally {
    await tracer.stop();
    await containers!.remove(c);
    work.remove();
  }
});
