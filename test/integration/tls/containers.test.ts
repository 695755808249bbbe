// SPDX-License-Identifier: Apache-2.0
// trace tls in a docker container with its own copy of libssl (the test image carries curl,
// openssl and their libraries): the container starts after the tracer, its libssl is probed
// through /proc/PID/root, curl inside talks to an openssl server inside (container loopback),
// events carry the container's name, and a host process outside the scope is not shown.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { notRoot } from '../../helpers/root.js';
import { ensureRuntimes, runtimeSkipReason, TestContainers, uniqueName, type TestContainer } from '../../helpers/runtimes.js';
import { CliTracer, dataOf, makeWorkDir, runProcess, sleep, startPyServer, until } from './helpers.js';

const skip = notRoot || runtimeSkipReason('docker');
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
    await sleep(1000);
    const out = await containers!.exec(c, ['curl', '-sk', '--http1.1', '--resolve', 'box.test:8443:127.0.0.1', 'https://box.test:8443/inside']);
    assert.match(out, /s_server/);
    // a host client talking to a host server: outside the scope
    const hostCurl = await runProcess('curl', ['-sk', '--resolve', `shop.test:${host.port}:127.0.0.1`, `https://shop.test:${host.port}/host`]).done;
    assert.equal(hostCurl.code, 0);

    await until('curl\'s events in the container', () => tracer.events.some((e) => e.proc.comm === 'curl' && e.direction === 'read' && dataOf(e).toString().includes('s_server')), 20_000);
    await sleep(500);
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
