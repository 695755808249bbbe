// SPDX-License-Identifier: Apache-2.0
// trace tls (the real CLI) against NSS, Debian's libssl3/libnss3/libnspr4: its plaintext is read
// at NSPR's PR_Write/PR_Read/PR_Send/PR_Recv, and the kernel side keeps only the calls on
// descriptors whose layers hold NSS's SSL layer (its write method is code of libssl3.so). Two
// real clients: one on NSS's own API (PR_Write/PR_Read; it also writes a file through PR_Write
// between its TLS calls, bytes that must not show), against the static-OpenSSL server; and
// libcurl's NSS flavour (PR_Send/PR_Recv), against python's ssl. Byte-exact both ways, with
// pid, comm, function and tuple.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { featureSkip, NEEDS } from '../../helpers/features.js';
import { startProcess, stopChild } from '../../helpers/process.js';
import { waitUntil } from '../../helpers/wait.js';
import { dataOf, pyResponse, stream } from '../tls/helpers.js';
import { converseAndCheck, request, stackTracer } from './tracer.js';
import { nssFixture, nssSkipReason, opensslStaticFixture } from './toolchains.js';

const skip = featureSkip(...NEEDS.tls) || nssSkipReason();
const stack = stackTracer('tlscope-stacks-nss-', 600);

function said(): string {
  return stack.tracer.stderr.split('\n').filter((l) => !l.startsWith('{')).slice(-8).join('\n');
}

const probedNspr = /probing nss in \S*libnspr4\.so \(PR_Write\/PR_Read\/PR_Send\/PR_Recv on descriptors with NSS's SSL layer; \d+ probes/;

test('NSS\'s own API: PR_Write/PR_Read on the SSL descriptor byte-exact both ways, its file writes through PR_Write not shown', { skip }, async () => {
  const serverBin = opensslStaticFixture('symbols');
  const clientBin = nssFixture('peer');
  const req = request(5000);
  const reply = randomBytes(50_000);
  const file = join(stack.work.dir, 'nss-file-writes');
  const server = startProcess(serverBin, ['server', stack.work.cert, stack.work.key, reply.toString('hex')], { timeoutMs: 120_000 });
  try {
    await waitUntil('the server port', () => /^port \d+$/m.test(server.output()) || server.child.exitCode !== null);
    const port = Number(/^port (\d+)$/m.exec(server.output())?.[1]);
    assert.ok(port > 0, 'server started');
    const client = startProcess(clientBin, ['client', String(port), req.toString('hex'), file], { timeoutMs: 120_000 });
    await waitUntil('the NSS client to map libnspr4', () => readFileSync(`/proc/${client.pid}/maps`, 'utf8').includes('libnspr4.so'), 30_000);
    await stack.tracer.waitForStderr(probedNspr);
    await converseAndCheck(stack, client, server.pid, req, reply);
    const mine = stack.tracer.of(client.pid);
    for (const e of mine) {
      assert.equal(e.source, 'nss');
      assert.equal(e.function, e.direction === 'write' ? 'PR_Write' : 'PR_Read');
      assert.equal(e.proc.comm, basename(clientBin).slice(0, 15));
      assert.equal(e.remote, `127.0.0.1:${port}`, `tuple of ${e.direction}`);
      assert.equal(e.tupleSource, 'socket');
      assert.match(e.library ?? '', /libnspr4\.so$/);
    }
    assert.equal(new Set(mine.map((e) => e.conn)).size, 1, 'one TLS session: the SSL layer\'s descriptor');
    // the file writes happened while traced, went through the same PR_Write, and are not TLS
    const notes = readFileSync(file, 'utf8');
    assert.ok(notes.includes('NOT-TLS between writes') && notes.includes('NOT-TLS between reads'), notes);
    assert.ok(!mine.some((e) => dataOf(e).includes('NOT-TLS')), 'no byte of the file writes shows as TLS');
  } catch (e) {
    throw new Error(`${(e as Error).message}\nthe tracer said last:\n${said()}`, { cause: e });
  } finally {
    await stopChild(server.child);
  }
});

test('libcurl\'s NSS flavour (PR_Send/PR_Recv): the POST and the response byte-exact, python\'s side the same bytes', { skip }, async () => {
  const bin = nssFixture('curl');
  const body = randomBytes(3000).toString('hex');
  const path = `/nss-${randomBytes(6).toString('hex')}`;
  const port = stack.py.port;
  const curl = startProcess(bin, [`https://nss.test:${port}${path}`, `nss.test:${port}:127.0.0.1`, body], { timeoutMs: 60_000 });
  try {
    const ran = await curl.done;
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout, 'hello from the test server\n');
    const ev = stack.tracer.events;
    const head = (): Buffer | undefined => stack.py.requests.find((r) => r.bytes.includes(path))?.bytes;
    await waitUntil('curl\'s calls traced', () => head() !== undefined && stream(ev, curl.pid, 'write').length >= head()!.length + body.length
      && stream(ev, curl.pid, 'read').length >= pyResponse().length, 30_000);
    await stack.tracer.marker(stack.py);
    const sent = head()!;
    assert.ok(sent.toString('latin1').startsWith(`POST ${path} HTTP/1.1\r\nHost: nss.test:${port}\r\n`), sent.toString('latin1'));
    assert.ok(stream(ev, curl.pid, 'write').equals(Buffer.concat([sent, Buffer.from(body)])), 'curl\'s writes: the request the server got, then the body, byte-exact');
    assert.ok(stream(ev, curl.pid, 'read').equals(pyResponse()), 'curl\'s reads: the response, byte-exact');
    const mine = stack.tracer.of(curl.pid);
    for (const e of mine) {
      assert.equal(e.source, 'nss');
      assert.equal(e.function, e.direction === 'write' ? 'PR_Send' : 'PR_Recv');
      assert.equal(e.remote, `127.0.0.1:${port}`);
    }
    // the server's side (python: OpenSSL) read the same head
    const serverRead = stream(ev, stack.py.pid, 'read');
    assert.ok(serverRead.includes(sent), 'python read what curl sent');
  } catch (e) {
    throw new Error(`${(e as Error).message}\nthe tracer said last:\n${said()}`, { cause: e });
  } finally {
    await stopChild(curl.child);
  }
});

