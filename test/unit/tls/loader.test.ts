// SPDX-License-Identifier: Apache-2.0
// src/proc/loader.ts: a program's libraries found in a root as its loader finds them (no
// ld.so.cache), over small ELF files written here (PT_INTERP, DT_NEEDED, DT_RPATH, DT_RUNPATH).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { dynamicInfo, programLibraries, programPath, resolveInRoot } from '../../../src/proc/loader.js';
import { ElfFile } from '../../../src/proc/elf.js';
import { entryTlsLibraries } from '../../../src/gadgets/tls/targets.js';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

interface Dyn { interp?: string; needed?: string[]; rpath?: string; runpath?: string }

/** A minimal ELF64 shared object: the PT_INTERP segment, .dynstr, .dynamic and .shstrtab. */
function elf(d: Dyn): Buffer {
  const strs: string[] = [];
  const dynstr: Buffer[] = [Buffer.from([0])];
  let strLen = 1;
  const str = (s: string): number => {
    const at = strLen;
    dynstr.push(Buffer.from(`${s}\0`, 'latin1'));
    strLen += s.length + 1;
    strs.push(s);
    return at;
  };
  const entries: [number, number][] = [];
  for (const n of d.needed ?? []) entries.push([1, str(n)]);
  if (d.rpath !== undefined) entries.push([15, str(d.rpath)]);
  if (d.runpath !== undefined) entries.push([29, str(d.runpath)]);
  entries.push([0, 0]);
  const dynstrBuf = Buffer.concat(dynstr);
  const dynBuf = Buffer.alloc(entries.length * 16);
  entries.forEach(([tag, val], i) => {
    dynBuf.writeBigInt64LE(BigInt(tag), i * 16);
    dynBuf.writeBigUInt64LE(BigInt(val), i * 16 + 8);
  });
  const shstr = Buffer.from('\0.dynstr\0.dynamic\0.shstrtab\0', 'latin1');
  const interp = d.interp === undefined ? Buffer.alloc(0) : Buffer.from(`${d.interp}\0`, 'latin1');
  const phnum = d.interp === undefined ? 0 : 1;
  const phoff = 64;
  let off = phoff + phnum * 56;
  const interpOff = off;
  off += interp.length;
  const dynstrOff = off;
  off += dynstrBuf.length;
  off = (off + 7) & ~7;
  const dynOff = off;
  off += dynBuf.length;
  const shstrOff = off;
  off += shstr.length;
  off = (off + 7) & ~7;
  const shoff = off;
  const shnum = 4;
  const b = Buffer.alloc(shoff + shnum * 64);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = 2;
  b[5] = 1;
  b[6] = 1;
  b.writeUInt16LE(3, 16);
  b.writeUInt16LE(62, 18);
  b.writeUInt32LE(1, 20);
  b.writeBigUInt64LE(BigInt(phoff), 32);
  b.writeBigUInt64LE(BigInt(shoff), 40);
  b.writeUInt16LE(64, 52);
  b.writeUInt16LE(56, 54);
  b.writeUInt16LE(phnum, 56);
  b.writeUInt16LE(64, 58);
  b.writeUInt16LE(shnum, 60);
  b.writeUInt16LE(3, 62);
  if (phnum === 1) {
    b.writeUInt32LE(3, phoff);
    b.writeUInt32LE(4, phoff + 4);
    b.writeBigUInt64LE(BigInt(interpOff), phoff + 8);
    b.writeBigUInt64LE(BigInt(interp.length), phoff + 32);
    interp.copy(b, interpOff);
  }
  dynstrBuf.copy(b, dynstrOff);
  dynBuf.copy(b, dynOff);
  shstr.copy(b, shstrOff);
  const sh = (i: number, name: number, type: number, offset: number, size: number, link: number, entsize: number): void => {
    const o = shoff + i * 64;
    b.writeUInt32LE(name, o);
    b.writeUInt32LE(type, o + 4);
    b.writeBigUInt64LE(BigInt(offset), o + 24);
    b.writeBigUInt64LE(BigInt(size), o + 32);
    b.writeUInt32LE(link, o + 40);
    b.writeBigUInt64LE(BigInt(entsize), o + 56);
  };
  sh(1, 1, 3, dynstrOff, dynstrBuf.length, 0, 0);
  sh(2, 9, 6, dynOff, dynBuf.length, 1, 16);
  sh(3, 18, 3, shstrOff, shstr.length, 0, 0);
  return b;
}

function makeRoot(files: Record<string, Dyn | { link: string }>): string {
  const root = mkdtempSync(join(tmpdir(), 'tlscope-loader-'));
  roots.push(root);
  for (const [path, f] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    if ('link' in f) symlinkSync(f.link, join(root, path));
    else writeFileSync(join(root, path), elf(f));
  }
  return root;
}

const GLIBC = '/lib64/ld-linux-x86-64.so.2';
const MUSL = '/lib/ld-musl-x86_64.so.1';

test('dynamicInfo reads PT_INTERP, DT_NEEDED, DT_RPATH and DT_RUNPATH', () => {
  const root = makeRoot({ '/p': { interp: GLIBC, needed: ['libssl.so.3', 'libc.so.6'], rpath: '/a:/b', runpath: '$ORIGIN/lib' } });
  const e = ElfFile.open(join(root, 'p'));
  try {
    assert.deepEqual(dynamicInfo(e), { interp: GLIBC, needed: ['libssl.so.3', 'libc.so.6'], rpath: ['/a', '/b'], runpath: ['$ORIGIN/lib'] });
  } finally {
    e.close();
  }
});

test('glibc rules without ld.so.cache: default dirs, a library\'s own $ORIGIN RUNPATH, symlinks, breadth first', () => {
  const root = makeRoot({
    '/app/prog': { interp: GLIBC, needed: ['libcurl.so.4', 'libc.so.6'] },
    '/lib/x86_64-linux-gnu/libc.so.6': {},
    '/usr/lib/x86_64-linux-gnu/libcurl.so.4': { link: 'libcurl.so.4.8.0' },
    '/usr/lib/x86_64-linux-gnu/libcurl.so.4.8.0': { needed: ['libssl.so.3', 'libc.so.6'], runpath: '$ORIGIN/tls' },
    '/usr/lib/x86_64-linux-gnu/tls/libssl.so.3': { needed: ['libcrypto.so.3'] },
    '/usr/lib/x86_64-linux-gnu/libcrypto.so.3': {},
  });
  assert.deepEqual(programLibraries(root, '/app/prog', { env: [] }), [
    '/usr/lib/x86_64-linux-gnu/libcurl.so.4.8.0', '/lib/x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/tls/libssl.so.3', '/usr/lib/x86_64-linux-gnu/libcrypto.so.3',
  ]);
});

test('glibc: LD_LIBRARY_PATH before RUNPATH and the defaults; RPATH of the program before it', () => {
  const files = {
    '/app/prog': { interp: GLIBC, needed: ['libssl.so.3'] },
    '/opt/tls/lib/libssl.so.3': {},
    '/lib/x86_64-linux-gnu/libssl.so.3': {},
  };
  assert.deepEqual(programLibraries(makeRoot(files), '/app/prog', { env: ['PATH=/bin', 'LD_LIBRARY_PATH=/opt/tls/lib'] }), ['/opt/tls/lib/libssl.so.3']);
  assert.deepEqual(programLibraries(makeRoot(files), '/app/prog', { env: [] }), ['/lib/x86_64-linux-gnu/libssl.so.3']);
  const rooted = makeRoot({ ...files, '/app/prog': { interp: GLIBC, needed: ['libssl.so.3'], rpath: '/rp' }, '/rp/libssl.so.3': {} });
  assert.deepEqual(programLibraries(rooted, '/app/prog', { env: ['LD_LIBRARY_PATH=/opt/tls/lib'] }), ['/rp/libssl.so.3'], 'DT_RPATH (no RUNPATH) comes first');
});

test('musl rules: RPATH after LD_LIBRARY_PATH, libc.so is the loader itself, /etc/ld-musl-ARCH.path replaces the defaults', () => {
  const root = makeRoot({
    '/app/tlsget': { interp: MUSL, needed: ['libssl.so.3', 'libcrypto.so.3', 'libc.so'], rpath: '/opt/openssl-musl/lib' },
    // an absolute link means the root's path, never the host's
    '/opt/openssl-musl/lib/libssl.so.3': { link: '/opt/openssl-musl/lib/libssl.so.3.0' },
    '/opt/openssl-musl/lib/libssl.so.3.0': { needed: ['libcrypto.so.3', 'libc.so'] },
    '/opt/openssl-musl/lib/libcrypto.so.3': { needed: ['libc.so'] },
    '/lib/ld-musl-x86_64.so.1': {},
  });
  assert.deepEqual(programLibraries(root, '/app/tlsget', { env: [] }), ['/opt/openssl-musl/lib/libssl.so.3.0', '/opt/openssl-musl/lib/libcrypto.so.3']);
  const indirect = makeRoot({
    '/app/prog': { interp: MUSL, needed: ['libcurl.so.4', 'libc.so'], runpath: '/opt/o' },
    '/opt/o/libcurl.so.4': { needed: ['libssl.so.3'] },
    '/opt/o/libssl.so.3': {},
  });
  assert.deepEqual(programLibraries(indirect, '/app/prog', { env: [] }), ['/opt/o/libcurl.so.4', '/opt/o/libssl.so.3'], 'a library\'s need through the program\'s RUNPATH');
  const pathFile = makeRoot({
    '/bin/prog': { interp: MUSL, needed: ['libgnutls.so.30'] },
    '/usr/lib/libgnutls.so.30': {},
    '/custom/libgnutls.so.30': {},
  });
  assert.deepEqual(programLibraries(pathFile, '/bin/prog', { env: [] }), ['/usr/lib/libgnutls.so.30'], 'default /lib:/usr/local/lib:/usr/lib');
  mkdirSync(join(pathFile, 'etc'));
  writeFileSync(join(pathFile, 'etc', 'ld-musl-x86_64.path'), '/custom\n/usr/lib\n');
  assert.deepEqual(programLibraries(pathFile, '/bin/prog', { env: [] }), ['/custom/libgnutls.so.30']);
});

test('resolveInRoot and programPath stay inside the root; PATH of the entry\'s env', () => {
  const root = makeRoot({
    '/usr/bin/tlsget': { interp: GLIBC },
    '/bin': { link: 'usr/bin' },
    '/lib/escape': { link: '/etc/hostname' },
    '/lib/loop': { link: 'loop' },
  });
  assert.equal(resolveInRoot(root, '/bin/tlsget'), '/usr/bin/tlsget');
  assert.equal(resolveInRoot(root, '/lib/escape'), undefined, 'the host\'s /etc/hostname is not the root\'s');
  assert.equal(resolveInRoot(root, '/lib/loop'), undefined);
  assert.equal(programPath(root, 'tlsget', { env: ['PATH=/sbin:/bin'] }), '/usr/bin/tlsget');
  assert.equal(programPath(root, 'tlsget', { env: ['PATH=/sbin'] }), undefined);
  assert.equal(programPath(root, './tlsget', { env: [], cwd: '/usr/bin' }), '/usr/bin/tlsget');
});

test('entryTlsLibraries: only libssl/libgnutls of the entry program\'s closure; nothing for a program not there', () => {
  const root = makeRoot({
    '/app/prog': { interp: GLIBC, needed: ['libcurl.so.4', 'libc.so.6'] },
    '/opt/x/libcurl.so.4': { needed: ['libssl.so.3', 'libgnutls.so.30'] },
    '/opt/x/libssl.so.3': {},
    '/opt/x/libgnutls.so.30': {},
    '/lib/x86_64-linux-gnu/libc.so.6': {},
  });
  assert.deepEqual(entryTlsLibraries(root, { args: ['/app/prog'], env: ['LD_LIBRARY_PATH=/opt/x'], cwd: '/' }), ['/opt/x/libssl.so.3', '/opt/x/libgnutls.so.30']);
  assert.deepEqual(entryTlsLibraries(root, { args: ['nothere'], env: [], cwd: '/' }), []);
  assert.deepEqual(entryTlsLibraries(root, { args: [], env: [], cwd: '/' }), []);
});
