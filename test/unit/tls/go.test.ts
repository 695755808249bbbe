// SPDX-License-Identifier: Apache-2.0
// Go binaries without a Go toolchain: build info in both layouts, pclntab function tables of
// every format (1.2–1.15, 1.16–1.17, 1.18+), and RET offsets found by disassembly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { goAbi, parseGoBuildInfo, parsePclntab, returnOffsets } from '../../../src/proc/go.js';

const MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');

function uvarint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

test('build info, Go 1.18+ layout: inline length-prefixed strings', () => {
  const version = 'go1.21.4';
  const mod = '0w\xaf\f\x92t\b\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6path\texample.test/app\nmod\texample.test/app\t(devel)\t\n';
  const head = Buffer.alloc(32);
  MAGIC.copy(head, 0);
  head[14] = 8;
  head[15] = 2;
  const sec = Buffer.concat([head, uvarint(version.length), Buffer.from(version), uvarint(Buffer.byteLength(mod, 'latin1')), Buffer.from(mod, 'latin1')]);
  const info = parseGoBuildInfo(sec, () => undefined);
  assert.deepEqual(info, { version, major: 1, minor: 21, mainModule: 'example.test/app' });
  assert.equal(goAbi(info), 'register');
});

test('build info, Go 1.13–1.17 layout: pointers to string headers', () => {
  const sec = Buffer.alloc(32);
  MAGIC.copy(sec, 0);
  sec[14] = 8;
  sec[15] = 0;
  sec.writeBigUInt64LE(0x1000n, 16); // -> version string header
  sec.writeBigUInt64LE(0x1010n, 24); // -> modinfo string header
  const mem = new Map<bigint, Buffer>();
  const hdr = (ptr: bigint, len: number): Buffer => {
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(ptr, 0);
    b.writeBigUInt64LE(BigInt(len), 8);
    return b;
  };
  mem.set(0x1000n, hdr(0x2000n, 9));
  mem.set(0x1010n, hdr(0x3000n, 30));
  mem.set(0x2000n, Buffer.from('go1.16.15'));
  mem.set(0x3000n, Buffer.from('path\tcmd/x\nmod\texample.test/x\tv1\n'));
  const info = parseGoBuildInfo(sec, (a, n) => mem.get(a)?.subarray(0, n));
  assert.equal(info?.version, 'go1.16.15');
  assert.equal(info?.minor, 16);
  assert.equal(info?.mainModule, 'example.test/x');
  assert.equal(goAbi(info), 'stack');
  assert.equal(goAbi(undefined), 'stack', 'no build info: older than Go 1.13');
  assert.equal(parseGoBuildInfo(Buffer.alloc(40), () => undefined), undefined);
});

const NAMES = ['main.main', 'crypto/tls.(*Conn).Write', 'crypto/tls.(*Conn).Read'];

test('pclntab, Go 1.18+ (magic 0xfffffff0/1): entries relative to textStart', () => {
  for (const magic of [0xfffffff0, 0xfffffff1]) {
    const names = Buffer.from(`${NAMES.join('\0')}\0`);
    const nameOffs = [0, NAMES[0]!.length + 1, NAMES[0]!.length + NAMES[1]!.length + 2];
    const header = 8 + 8 * 8;
    const funcnameOff = header;
    const pclnOff = funcnameOff + names.length;
    const functab = Buffer.alloc((NAMES.length + 1) * 8);
    const funcs = Buffer.alloc(NAMES.length * 8);
    const entries = [0x0, 0x100, 0x340, 0x500];
    for (let i = 0; i <= NAMES.length; i++) {
      functab.writeUInt32LE(entries[i]!, i * 8);
      if (i < NAMES.length) {
        functab.writeUInt32LE(functab.length + i * 8, i * 8 + 4);
        funcs.writeUInt32LE(entries[i]!, i * 8);
        funcs.writeInt32LE(nameOffs[i]!, i * 8 + 4);
      }
    }
    const h = Buffer.alloc(header);
    h.writeUInt32LE(magic, 0);
    h[6] = 1;
    h[7] = 8;
    h.writeBigUInt64LE(BigInt(NAMES.length), 8);
    h.writeBigUInt64LE(0x401000n, 8 + 2 * 8);
    h.writeBigUInt64LE(BigInt(funcnameOff), 8 + 3 * 8);
    h.writeBigUInt64LE(BigInt(pclnOff), 8 + 7 * 8);
    const tab = Buffer.concat([h, names, functab, funcs]);
    const got = parsePclntab(tab, 0n, (n) => n.startsWith('crypto/tls'));
    assert.deepEqual(got, [
      { entry: 0x401100n, end: 0x401340n, name: 'crypto/tls.(*Conn).Write' },
      { entry: 0x401340n, end: 0x401500n, name: 'crypto/tls.(*Conn).Read' },
    ]);
  }
});

test('pclntab, Go 1.16/1.17 (magic 0xfffffffa): absolute entries, names in their own table', () => {
  const names = Buffer.from(`${NAMES.join('\0')}\0`);
  const nameOffs = [0, NAMES[0]!.length + 1, NAMES[0]!.length + NAMES[1]!.length + 2];
  const header = 8 + 7 * 8;
  const funcnameOff = header;
  const pclnOff = funcnameOff + names.length;
  const entries = [0x401000n, 0x401100n, 0x401340n, 0x401500n];
  const functab = Buffer.alloc((NAMES.length + 1) * 16);
  const funcs = Buffer.alloc(NAMES.length * 16);
  for (let i = 0; i <= NAMES.length; i++) {
    functab.writeBigUInt64LE(entries[i]!, i * 16);
    if (i < NAMES.length) {
      functab.writeBigUInt64LE(BigInt(functab.length + i * 16), i * 16 + 8);
      funcs.writeBigUInt64LE(entries[i]!, i * 16);
      funcs.writeInt32LE(nameOffs[i]!, i * 16 + 8);
    }
  }
  const h = Buffer.alloc(header);
  h.writeUInt32LE(0xfffffffa, 0);
  h[7] = 8;
  h.writeBigUInt64LE(BigInt(NAMES.length), 8);
  h.writeBigUInt64LE(BigInt(funcnameOff), 8 + 2 * 8);
  h.writeBigUInt64LE(BigInt(pclnOff), 8 + 6 * 8);
  const got = parsePclntab(Buffer.concat([h, names, functab, funcs]), 0n, (n) => n === 'crypto/tls.(*Conn).Read');
  assert.deepEqual(got, [{ entry: 0x401340n, end: 0x401500n, name: 'crypto/tls.(*Conn).Read' }]);
});

test('pclntab, Go 1.2–1.15 (magic 0xfffffffb): offsets from the table start', () => {
  const entries = [0x401000n, 0x401100n, 0x401340n, 0x401500n];
  const functabOff = 16;
  const functabLen = NAMES.length * 16 + 8;
  const funcsOff = functabOff + functabLen;
  const namesOff = funcsOff + NAMES.length * 16;
  const names = Buffer.from(`${NAMES.join('\0')}\0`);
  const nameOffs = [0, NAMES[0]!.length + 1, NAMES[0]!.length + NAMES[1]!.length + 2].map((o) => namesOff + o);
  const tab = Buffer.alloc(namesOff + names.length);
  tab.writeUInt32LE(0xfffffffb, 0);
  tab[7] = 8;
  tab.writeBigUInt64LE(BigInt(NAMES.length), 8);
  for (let i = 0; i < NAMES.length; i++) {
    tab.writeBigUInt64LE(entries[i]!, functabOff + i * 16);
    tab.writeBigUInt64LE(BigInt(funcsOff + i * 16), functabOff + i * 16 + 8);
    tab.writeBigUInt64LE(entries[i]!, funcsOff + i * 16);
    tab.writeInt32LE(nameOffs[i]!, funcsOff + i * 16 + 8);
  }
  tab.writeBigUInt64LE(entries[3]!, functabOff + NAMES.length * 16);
  names.copy(tab, namesOff);
  const got = parsePclntab(tab, 0n, (n) => n.includes('Write'));
  assert.deepEqual(got, [{ entry: 0x401100n, end: 0x401340n, name: 'crypto/tls.(*Conn).Write' }]);
  const bad = Buffer.alloc(64);
  bad[7] = 8;
  assert.throws(() => parsePclntab(bad, 0n, () => true), /unknown pclntab magic/);
});

test('RET offsets: every ret (and ret imm16), not bytes that merely look like one', () => {
  const code = Buffer.from([
    0x48, 0x89, 0xc3, // mov rbx, rax
    0xc3, // ret                          @3
    0xb8, 0xc3, 0x00, 0x00, 0x00, // mov eax, 0xc3 (a c3 byte inside an instruction)
    0xc2, 0x08, 0x00, // ret 8                        @9
    0x90, // nop
    0xc3, // ret                          @13
  ]);
  assert.deepEqual(returnOffsets(code, 0x401000n, 0x1000), [0x1003, 0x1009, 0x100d]);
});
