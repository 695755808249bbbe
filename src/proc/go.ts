// SPDX-License-Identifier: Apache-2.0
/**
 * Go binaries: the Go version from the build info (`.go.buildinfo`), function addresses from
 * `.symtab` or — when the binary is stripped — from the pclntab that every Go binary keeps for
 * its own stack traces, and the RET instructions of a function found by disassembling it
 * (iced-x86). Uprobes on each RET stand in for a uretprobe, which Go programs do not survive.
 * amd64 only (ELF64 little-endian, x86-64 code).
 */
import { lazyModule } from '../lazy-module.js';
import { TlscopeError } from '../errors.js';
import type { ElfFile } from '../elf/elf.js';

export interface GoBuildInfo {
  /** As the toolchain wrote it, e.g. "go1.19.8" or "devel go1.23-abcdef". */
  version: string;
  major: number;
  minor: number;
  /** The main module's path when the build info has it. */
  mainModule: string | undefined;
}

/** The calling convention of Go functions: registers since Go 1.17 on amd64, the stack before. */
export type GoAbi = 'register' | 'stack';

export interface GoFunction {
  name: string;
  address: bigint;
  /** Bytes of code (to the next function for pclntab lookups, so it may include padding). */
  size: number;
  fileOffset: number;
}

const BUILDINFO_MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');

/** Where the pclntab is: its own section, or inside .data.rel.ro for -buildmode=pie. */
const PCLNTAB_SECTIONS = ['.gopclntab', '.data.rel.ro.gopclntab'];

export function isGoBinary(elf: ElfFile): boolean {
  return elf.section('.go.buildinfo') !== undefined || elf.section('.note.go.buildid') !== undefined || PCLNTAB_SECTIONS.some((n) => elf.section(n) !== undefined);
}

function readUvarint(b: Buffer, off: number): { value: number; next: number } | undefined {
  let value = 0;
  let shift = 0;
  for (let i = off; i < b.length && i < off + 10; i++) {
    const byte = b[i] as number;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return { value, next: i + 1 };
    shift += 7;
  }
  return undefined;
}

/**
 * Parses a `.go.buildinfo` section. `readAt(address, length)` reads the binary's memory image
 * at a virtual address (needed by Go < 1.18, which stores pointers to the strings).
 */
export function parseGoBuildInfo(section: Buffer, readAt: (address: bigint, length: number) => Buffer | undefined): GoBuildInfo | undefined {
  if (section.length < 32 || !section.subarray(0, 14).equals(BUILDINFO_MAGIC)) return undefined;
  const ptrSize = section[14] as number;
  const flags = section[15] as number;
  let version: string | undefined;
  let modinfo: string | undefined;
  if ((flags & 2) !== 0) {
    // Go 1.18+: length-prefixed strings inline after the 32-byte header
    const v = readUvarint(section, 32);
    if (v === undefined) return undefined;
    version = section.toString('utf8', v.next, v.next + v.value);
    const m = readUvarint(section, v.next + v.value);
    if (m !== undefined) modinfo = section.toString('utf8', m.next, m.next + m.value);
  } else {
    if (ptrSize !== 8 || (flags & 1) !== 0) return undefined; // 64-bit little-endian only
    const str = (at: number): string | undefined => {
      const headerAddr = section.readBigUInt64LE(at);
      const header = readAt(headerAddr, 16);
      if (header === undefined) return undefined;
      const len = Number(header.readBigUInt64LE(8));
      if (len > 1 << 20) return undefined;
      return readAt(header.readBigUInt64LE(0), len)?.toString('utf8');
    };
    version = str(16);
    modinfo = str(24);
  }
  if (version === undefined) return undefined;
  const m = /go(\d+)\.(\d+)/.exec(version);
  if (m === null) return undefined;
  // modinfo: 16 bytes of framing, then lines "path\tmain/module", "mod\tpath\tversion\t…"
  const main = modinfo === undefined ? undefined : /^mod\t([^\t\n]+)/m.exec(modinfo)?.[1] ?? /^path\t([^\t\n]+)/m.exec(modinfo)?.[1];
  return { version, major: Number(m[1]), minor: Number(m[2]), mainModule: main };
}

/** Reads `length` bytes at a virtual address of the file's loaded image. */
function imageReader(elf: ElfFile): (address: bigint, length: number) => Buffer | undefined {
  return (address, length) => {
    const off = elf.addressToOffset(address);
    if (off === undefined) return undefined;
    try {
      return elf.readAt(off, length);
    } catch {
      return undefined;
    }
  };
}

export function readGoBuildInfo(elf: ElfFile): GoBuildInfo | undefined {
  const section = elf.readSection('.go.buildinfo');
  return section === undefined ? undefined : parseGoBuildInfo(section, imageReader(elf));
}

/** Go 1.17 moved amd64 to the register ABI; binaries without build info predate Go 1.13. */
export function goAbi(info: GoBuildInfo | undefined): GoAbi {
  if (info === undefined) return 'stack';
  return info.major > 1 || info.minor >= 17 ? 'register' : 'stack';
}

interface PclnFunc {
  entry: bigint;
  end: bigint;
  name: string;
}

function cstring(b: Buffer, off: number): string {
  if (off < 0 || off >= b.length) return '';
  const end = b.indexOf(0, off);
  return b.toString('utf8', off, end < 0 ? b.length : end);
}

/**
 * Functions named in a pclntab (Go 1.2 through 1.2x), only those `want` accepts. `textStart` is
 * the address of the text section, used when the table does not carry it.
 */
export function parsePclntab(tab: Buffer, textStart: bigint, want: (name: string) => boolean): PclnFunc[] {
  if (tab.length < 16) throw new TlscopeError('ERR_GO', 'pclntab is too short');
  const magic = tab.readUInt32LE(0);
  const ptrSize = tab[7] as number;
  if (ptrSize !== 8) throw new TlscopeError('ERR_GO', `pclntab with ${ptrSize}-byte pointers is not supported`);
  const word = (off: number): number => Number(tab.readBigUInt64LE(off));
  const out: PclnFunc[] = [];
  if (magic === 0xfffffff0 || magic === 0xfffffff1) {
    // Go 1.18+ (f0) and 1.20+ (f1): 32-bit offsets from textStart
    const nfunc = word(8);
    const text = BigInt(word(8 + 2 * 8)) || textStart;
    const funcnameOff = word(8 + 3 * 8);
    const pclnOff = word(8 + 7 * 8);
    for (let i = 0; i < nfunc; i++) {
      const at = pclnOff + i * 8;
      const entry = text + BigInt(tab.readUInt32LE(at));
      const funcOff = tab.readUInt32LE(at + 4);
      const end = text + BigInt(tab.readUInt32LE(at + 8));
      const nameOff = tab.readInt32LE(pclnOff + funcOff + 4);
      const name = cstring(tab, funcnameOff + nameOff);
      if (want(name)) out.push({ entry, end, name });
    }
    return out;
  }
  if (magic === 0xfffffffa) {
    // Go 1.16, 1.17: pointer-sized entries, names in their own table
    const nfunc = word(8);
    const funcnameOff = word(8 + 2 * 8);
    const pclnOff = word(8 + 6 * 8);
    for (let i = 0; i < nfunc; i++) {
      const at = pclnOff + i * 16;
      const entry = tab.readBigUInt64LE(at);
      const funcOff = word(at + 8);
      const end = tab.readBigUInt64LE(at + 16);
      const nameOff = tab.readInt32LE(pclnOff + funcOff + 8);
      const name = cstring(tab, funcnameOff + nameOff);
      if (want(name)) out.push({ entry, end, name });
    }
    return out;
  }
  if (magic === 0xfffffffb) {
    // Go 1.2 – 1.15: offsets from the table's start
    const nfunc = word(8);
    const functab = 8 + 8;
    for (let i = 0; i < nfunc; i++) {
      const at = functab + i * 16;
      const entry = tab.readBigUInt64LE(at);
      const funcOff = word(at + 8);
      const end = tab.readBigUInt64LE(at + 16);
      const nameOff = tab.readInt32LE(funcOff + 8);
      const name = cstring(tab, nameOff);
      if (want(name)) out.push({ entry, end, name });
    }
    return out;
  }
  throw new TlscopeError('ERR_GO', `unknown pclntab magic 0x${magic.toString(16)}`);
}

/** The named functions, from .symtab when the binary has it, else from its pclntab. */
export function goFunctions(elf: ElfFile, names: readonly string[]): Map<string, GoFunction> {
  const want = new Set(names);
  const out = new Map<string, GoFunction>();
  for (const [name, s] of elf.functions((n) => want.has(n))) {
    if (s.size > 0n) out.set(name, { name, address: s.address, size: Number(s.size), fileOffset: s.fileOffset });
  }
  if (out.size === want.size) return out;
  const name = PCLNTAB_SECTIONS.find((n) => elf.section(n) !== undefined);
  const tab = name === undefined ? undefined : elf.readSection(name);
  if (tab === undefined) return out;
  const text = elf.section('.text')?.addr ?? 0n;
  for (const f of parsePclntab(tab, text, (n) => want.has(n) && !out.has(n))) {
    const fileOffset = elf.addressToOffset(f.entry);
    if (fileOffset === undefined || f.end <= f.entry) continue;
    out.set(f.name, { name: f.name, address: f.entry, size: Number(f.end - f.entry), fileOffset });
  }
  return out;
}

type Iced = typeof import('iced-x86');
/**
 * The disassembler is loaded on the first Go binary: its WebAssembly module adds ~25 MB of
 * resident memory, which a tracer that never meets a Go program should not pay.
 */
const disassembler = lazyModule<Iced>('iced-x86');

/** File offsets of every RET instruction in `code`, which is loaded at `address` and read from `fileOffset`. */
export function returnOffsets(code: Uint8Array, address: bigint, fileOffset: number): number[] {
  const { Decoder, DecoderOptions, Instruction, Mnemonic, Code } = disassembler();
  const decoder = new Decoder(64, code, DecoderOptions.None);
  const ins = new Instruction();
  const out: number[] = [];
  try {
    decoder.ip = address;
    while (decoder.canDecode) {
      decoder.decodeOut(ins);
      if (ins.code === Code.INVALID) continue;
      if (ins.mnemonic === Mnemonic.Ret) out.push(fileOffset + Number(ins.ip - address));
    }
  } finally {
    ins.free();
    decoder.free();
  }
  return out;
}

/** RET offsets of one function of the file. */
export function functionReturns(elf: ElfFile, fn: GoFunction): number[] {
  return returnOffsets(elf.readAt(fn.fileOffset, fn.size), fn.address, fn.fileOffset);
}
