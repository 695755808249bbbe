// SPDX-License-Identifier: Apache-2.0
// trace tls (the real CLI) against rustls: a Rust client and server (test/fixtures/stacks/rust,
// rustls 0.23 from crates.io over std::net, built by the test set-up) with legacy-mangled
// symbols, v0-mangled symbols, and stripped, where Reader::read is found by the LEA of its
// close_notify message and Writer::write as the trait-object forwarder next to it
// (src/gadgets/tls/rustls.ts). Byte-exact plaintext both ways, client and server side, with
// pid, comm, the connection tuple and one `conn` per session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, openSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.tls);
import type { TlsJson } from '../tls/helpers.js';
import { converseAndCheck, escape, request, stackTracer } from './tracer.js';
import { startProcess, stopChild } from '../../helpers/process.js';
import { waitUntil } from '../../helpers/wait.js';
import { boringFixture, rustlsFixture } from './toolchains.js';
import { ElfFile } from '../../../src/proc/elf.js';
import { findRustls } from '../../../src/gadgets/tls/rustls.js';

const stack = stackTracer('tlscope-stacks-rustls-', 900);

function said(): string {
  return stack.tracer.stderr.split('\n').filter((l) => !l.startsWith('{')).slice(-8).join('\n');
}

const how = (bin: string): string => (bin.includes('-stripped-') ? 'pattern, without symbols' : 'symbol');
const probed = (bin: string, boring: boolean): RegExp => new RegExp(boring
  ? `probing openssl in /proc/\\d+/root${escape(bin)} \\(SSL_read/SSL_write; 4 probes`
  : `probing rustls in /proc/\\d+/root${escape(bin)} \\(Writer::write, write_vectored/Reader::read by ${escape(how(bin))}; 6 probes`);

let copies = 0;
/**
 * A fresh copy of a fixture binary (a new inode, probed anew): the tracer marks a process as a
 * TLS user in the same step that prints "probing …", so waiting for that line means the
 * handshake's socket I/O is recorded. A file probed before gives no such line for a new process.
 */
function fresh(bin: string, role: string): string {
  const out = join(stack.work.dir, `${basename(bin)}-${role}${++copies}`);
  copyFileSync(bin, out);
  chmodSync(out, 0o755);
  return out;
}

/** One request and reply between fixture peers; `boring`: the BoringSSL peers, traced as openssl. */
async function exchange(serverFixture: string, clientFixture: string, { vectored = false, boring = false } = {}): Promise<void> {
  const serverBin = fresh(serverFixture, 's');
  const clientBin = fresh(clientFixture, 'c');
  const req = request(3000);
  const reply = randomBytes(40_000);
  const server = startProcess(serverBin, ['server', stack.work.cert, stack.work.key, reply.toString('hex')], { timeoutMs: 120_000 });
  try {
    await stack.tracer.waitForStderr(probed(serverBin, boring));
    await waitUntil('the server port', () => /^port \d+$/m.test(server.output()) || server.child.exitCode !== null);
    const port = Number(/^port (\d+)$/m.exec(server.output())?.[1]);
    assert.ok(port > 0, `server started: ${server.output()}`);
    const client = startProcess(clientBin, ['client', String(port), req.toString('hex'), ...(vectored ? ['vectored'] : [])], { timeoutMs: 120_000 });
    await stack.tracer.waitForStderr(probed(clientBin, boring));
    await converseAndCheck(stack, client, server.pid, req, reply);
    const check = (evs: TlsJson[], bin: string, local: (e: TlsJson) => string | undefined, writes = boring ? 'SSL_write' : 'rustls::Writer::write'): void => {
      assert.ok(evs.length >= 2);
      for (const e of evs) {
        assert.equal(e.source, boring ? 'openssl' : 'rustls');
        assert.equal(e.function, e.direction === 'write' ? writes : boring ? 'SSL_read' : 'rustls::Reader::read');
        assert.equal(e.proc.comm, basename(bin).slice(0, 15));
        assert.equal(local(e), `127.0.0.1:${port}`, `tuple of ${e.direction}`);
        assert.equal(e.library, bin);
        // rustls::Stream does the socket I/O around the calls, not in them: the thread's socket
        if (!boring) assert.equal(e.tupleSource, 'thread');
      }
      // reads and writes of the one session carry one conn (what --http pairs by)
      assert.equal(new Set(evs.map((e) => e.conn)).size, 1, 'one conn per session');
    };
    check(stack.tracer.of(client.pid), clientBin, (e) => e.remote, vectored ? 'rustls::Writer::write_vectored' : undefined);
    if (vectored) assert.equal(stack.tracer.of(client.pid).filter((e) => e.direction === 'write').length, 1, 'the request in one write_vectored of three slices');
    check(stack.tracer.of(server.pid), serverBin, (e) => e.local);
  } catch (e) {
    throw new Error(`${(e as Error).message}\nthe tracer said last:\n${said()}`, { cause: e });
  } finally {
    await stopChild(server.child);
  }
}

test('rustls: without symbols the finder lands where the symbols say', { skip: kernelSkip }, () => {
  const withSyms = ElfFile.open(rustlsFixture('symbols'));
  const without = ElfFile.open(rustlsFixture('stripped'));
  try {
    const truth = findRustls(withSyms);
    const found = findRustls(without);
    assert.equal(truth?.how, 'symbols');
    assert.equal(without.functions().size, 0, 'really stripped');
    assert.equal(found?.how, 'pattern');
    assert.equal(found?.reason, undefined);
    assert.equal(found?.read?.address, truth?.read?.address, 'Reader::read');
    assert.equal(found?.write?.address, truth?.write?.address, 'Writer::write');
    assert.ok(truth?.writev !== undefined);
    assert.equal(found?.writev?.address, truth?.writev?.address, 'Writer::write_vectored');
  } finally {
    withSyms.close();
    without.close();
  }
});

test('rustls: legacy symbols (server) ↔ stripped (client), then the other way round', { skip: kernelSkip }, async () => {
  const symbols = rustlsFixture('symbols');
  const stripped = rustlsFixture('stripped');
  await exchange(symbols, stripped);
  await exchange(stripped, symbols);
});

test('rustls: v0-mangled symbols (server and client)', { skip: kernelSkip }, async () => {
  const v0 = rustlsFixture('v0');
  await exchange(v0, v0);
});

test('rustls: Writer::write_vectored (three slices in one call), with symbols and stripped', { skip: kernelSkip }, async () => {
  await exchange(rustlsFixture('stripped'), rustlsFixture('symbols'), { vectored: true });
  await exchange(rustlsFixture('symbols'), rustlsFixture('stripped'), { vectored: true });
});

test('rustls whose Writer::write cannot be found: "TLS library found, no hook", with the reason', { skip: kernelSkip }, async () => {
  // the stripped build with Writer::write's forwarder bytes changed (never called: the server
  // only listens here)
  const bin = fresh(rustlsFixture('stripped'), 'nohook');
  const elf = ElfFile.open(bin);
  let at: number | undefined;
  try {
    at = findRustls(elf)?.write?.fileOffset;
  } finally {
    elf.close();
  }
  assert.ok(at !== undefined);
  const fd = openSync(bin, 'r+');
  try {
    writeSync(fd, Buffer.from([0xcc]), 0, 1, at + 15); // its last byte (of jmp rcx)
  } finally {
    closeSync(fd);
  }
  const server = startProcess(bin, ['server', stack.work.cert, stack.work.key, '00'], { timeoutMs: 120_000 });
  try {
    await stack.tracer.waitForStderr(new RegExp(`TLS library found, no hook: rustls in /proc/\\d+/root${escape(bin)}: Writer::write: 0 forwarders next to Reader::read, not one`));
    assert.doesNotMatch(stack.tracer.stderr, new RegExp(`probing rustls in /proc/\\d+/root${escape(bin)}`));
  } finally {
    await stopChild(server.child);
  }
});

// BoringSSL, statically linked by the `boring` crate (test/fixtures/stacks/boring): with symbols
// its SSL_read/SSL_write are probed like OpenSSL's; stripped, it is named and left unhooked.
test('BoringSSL (boring crate, static): client and server with symbols, byte-exact', { skip: kernelSkip }, async () => {
  const bin = boringFixture('symbols');
  await exchange(bin, bin, { boring: true });
});

test('BoringSSL stripped: "TLS library found, no hook", with the reason', { skip: kernelSkip }, async () => {
  const bin = fresh(boringFixture('stripped'), 'nohook');
  const server = startProcess(bin, ['server', stack.work.cert, stack.work.key, '00'], { timeoutMs: 120_000 });
  try {
    await stack.tracer.waitForStderr(new RegExp(`TLS library found, no hook: openssl in /proc/\\d+/root${escape(bin)}: BoringSSL without symbols: its errors record file and line, not function names`));
  } finally {
    await stopChild(server.child);
  }
});
