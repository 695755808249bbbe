// SPDX-License-Identifier: Apache-2.0
// trace tls (the real CLI) against OpenSSL 3 linked statically into a program (libssl.a, built
// here), with symbols and stripped: without symbols SSL_read/SSL_write and
// ssl_read_internal/ssl_write_internal are found by the LEA of their own __func__ name and
// .eh_frame (openssl-finder.ts). And `openssl s_server -www`, which writes through the SSL BIO
// (BIO_f_ssl → ssl_write_internal, never SSL_write): its plaintext comes from libssl.so.3's
// unexported internals. Byte-exact both ways, with pid and tuple.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.tls);
import { stream, type TlsJson } from '../tls/helpers.js';
import { converseAndCheck, escape, request, stackTracer } from './tracer.js';
import { startProcess, stopChild } from '../../helpers/process.js';
import { waitUntil } from '../../helpers/wait.js';
import { opensslStaticFixture } from './toolchains.js';
import { ElfFile } from '../../../src/proc/elf.js';
import { findOpenSslFunctions, OPENSSL_FUNC_NAMES } from '../../../src/gadgets/tls/openssl-finder.js';


const stack = stackTracer('tlscope-stacks-openssl-', 900);

function said(): string {
  return stack.tracer.stderr.split('\n').filter((l) => !l.startsWith('{')).slice(-8).join('\n');
}

async function exchange(serverBin: string, clientBin: string): Promise<void> {
  const req = request(3000);
  const reply = randomBytes(40_000);
  const probed = (bin: string): RegExp => new RegExp(`probing openssl in /proc/\\d+/root${escape(bin)} \\(([^)]*)\\)`);
  const server = startProcess(serverBin, ['server', stack.work.cert, stack.work.key, reply.toString('hex')], { timeoutMs: 120_000 });
  try {
    await stack.tracer.waitForStderr(probed(serverBin));
    await waitUntil('the server port', () => /^port \d+$/m.test(server.output()) || server.child.exitCode !== null);
    const port = Number(/^port (\d+)$/m.exec(server.output())?.[1]);
    assert.ok(port > 0, 'server started');
    const client = startProcess(clientBin, ['client', String(port), req.toString('hex')], { timeoutMs: 120_000 });
    await stack.tracer.waitForStderr(probed(clientBin));
    await converseAndCheck(stack, client, server.pid, req, reply);
    const check = (evs: TlsJson[], bin: string, local: (e: TlsJson) => string | undefined): void => {
      for (const e of evs) {
        assert.equal(e.source, 'openssl');
        assert.match(e.function, /^SSL_(read|write)$/, 'the exported function reports, the internal one nested in it does not');
        assert.equal(e.proc.comm, basename(bin).slice(0, 15));
        assert.equal(local(e), `127.0.0.1:${port}`, `tuple of ${e.direction}`);
      }
    };
    check(stack.tracer.of(client.pid), clientBin, (e) => e.remote);
    check(stack.tracer.of(server.pid), serverBin, (e) => e.local);
  } catch (e) {
    throw new Error(`${(e as Error).message}\nthe tracer said last:\n${said()}`, { cause: e });
  } finally {
    await stopChild(server.child);
  }
}

test('static OpenSSL 3: with symbols (server) ↔ stripped (client), then the other way round', { skip: kernelSkip }, async () => {
  const symbols = opensslStaticFixture('symbols');
  const stripped = opensslStaticFixture('stripped');
  // the finder on the stripped build lands on the very addresses the symbols give
  const withSyms = ElfFile.open(symbols);
  const without = ElfFile.open(stripped);
  try {
    const truth = withSyms.functions((n) => (OPENSSL_FUNC_NAMES as readonly string[]).includes(n));
    const found = findOpenSslFunctions(without);
    assert.equal(without.functions().size, 0, 'really stripped');
    for (const n of OPENSSL_FUNC_NAMES) assert.equal(found.get(n)?.address, truth.get(n)?.address, n);
  } finally {
    withSyms.close();
    without.close();
  }
  await exchange(symbols, stripped);
  assert.match(stack.tracer.stderr, new RegExp(`probing openssl in /proc/\\d+/root${escape(stripped)} \\(SSL_read/SSL_write; ssl_read_internal/ssl_write_internal \\(SSL BIO\\); without symbols: `));
  await exchange(stripped, symbols);
});

test('openssl s_server -www (SSL BIO, no SSL_write call): its plaintext from libssl.so.3 internals', { skip: kernelSkip }, async () => {
  const server = startProcess('openssl', ['s_server', '-www', '-accept', '0', '-naccept', '1', '-cert', stack.work.cert, '-key', stack.work.key], { timeoutMs: 120_000 });
  try {
    await waitUntil('s_server to listen', () => /ACCEPT/.test(server.output()) || server.child.exitCode !== null);
    let port = 0;
    await waitUntil('its port', () => {
      const m = /:(\d+)\s/.exec(listening(server.pid));
      port = Number(m?.[1] ?? 0);
      return port > 0;
    });
    const path = `/bio-${randomBytes(6).toString('hex')}`;
    const curl = await startProcess('curl', ['-sk', '--http1.1', '--resolve', `bio.test:${port}:127.0.0.1`, `https://bio.test:${port}${path}`]).done;
    assert.equal(curl.code, 0, curl.stderr);
    await waitUntil('s_server events', () => stream(stack.tracer.events, server.pid, 'write').toString('latin1').includes('</HTML>') || stream(stack.tracer.events, server.pid, 'write').toString('latin1').includes('</BODY>'), 30_000)
      .catch((e: Error) => { throw new Error(`${e.message}\n${said()}`); });
    await stack.tracer.marker(stack.py);
    const read = stream(stack.tracer.events, server.pid, 'read').toString('latin1');
    const wrote = stream(stack.tracer.events, server.pid, 'write').toString('latin1');
    assert.ok(read.startsWith(`GET ${path} HTTP/1.1\r\nHost: bio.test:${port}\r\n`), read.slice(0, 200));
    assert.ok(wrote.startsWith('HTTP/1.0 200 ok\r\n'), wrote.slice(0, 200));
    // what curl got is what the server was traced writing
    assert.ok(wrote.includes(curl.stdout.slice(0, 200)), 'curl got what was traced');
    for (const e of stack.tracer.of(server.pid)) {
      assert.equal(e.source, 'openssl');
      assert.ok(['ssl_read_internal', 'ssl_write_internal', 'SSL_read'].includes(e.function), e.function);
      assert.equal(e.local, `127.0.0.1:${port}`);
    }
    assert.ok(stack.tracer.of(server.pid).some((e) => e.function === 'ssl_write_internal'), 'the response went through the SSL BIO');
  } finally {
    await stopChild(server.child);
  }
});

/** The listening sockets of a process, from ss. */
function listening(pid: number): string {
  let out = '';
  try {
    out = execFileSync('ss', ['-Htlnp'], { encoding: 'utf8' });
  } catch {
    return '';
  }
  return out.split('\n').filter((l) => l.includes(`pid=${pid},`)).join('\n');
}
