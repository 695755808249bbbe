// SPDX-License-Identifier: Apache-2.0
/**
 * Just enough ELF64 (little-endian) to find function symbols and turn their addresses into
 * file offsets, which is what uprobes and uprobe_multi take.
 */
import { openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { TlscopeError } from '../errors.js';

export interface ElfSymbol {
  name: string;
  /** virtual address as linked */
  address: bigint;
  size: bigint;
  /** offset in the file (what a uprobe attaches at) */
  fileOffset: number;
}

interface Section {
  name: string;
  type: number;
  offset: number;
  size: number;
  link: number;
  entsize: number;
  addr: bigint;
}

interface Segment {
  type: number;
  offset: number;
  vaddr: bigint;
  filesz: bigint;
  flags: number;
}

const SHT_SYMTAB = 2;
const SHT_DYNSYM = 11;
const PT_LOAD = 1;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;

export class ElfFile {
  readonly path: string;
  readonly sections: Section[];
  readonly segments: Segment[];
  private readonly fd: number;

  private constructor(path: string, fd: number, sections: Section[], segments: Segment[]) {
    this.path = path;
    this.fd = fd;
    this.sections = sections;
    this.segments = segments;
  }

  static open(path: string): ElfFile {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const h = read(fd, 0, 64);
      if (h.readUInt32BE(0) !== 0x7f454c46) throw new TlscopeError('ERR_ELF', `${path} is not an ELF file`);
      if (h[4] !== 2 || h[5] !== 1) throw new TlscopeError('ERR_ELF', `${path}: only 64-bit little-endian ELF is supported`);
      const phoff = Number(h.readBigUInt64LE(32));
      const shoff = Number(h.readBigUInt64LE(40));
      const phentsize = h.readUInt16LE(54);
      const phnum = h.readUInt16LE(56);
      const shentsize = h.readUInt16LE(58);
      const shnum = h.readUInt16LE(60);
      const shstrndx = h.readUInt16LE(62);
      if (shoff + shnum * shentsize > size || phoff + phnum * phentsize > size) throw new TlscopeError('ERR_ELF', `${path}: truncated ELF headers`);
      const segments: Segment[] = [];
      const ph = read(fd, phoff, phnum * phentsize);
      for (let i = 0; i < phnum; i++) {
        const b = i * phentsize;
        segments.push({ type: ph.readUInt32LE(b), flags: ph.readUInt32LE(b + 4), offset: Number(ph.readBigUInt64LE(b + 8)), vaddr: ph.readBigUInt64LE(b + 16), filesz: ph.readBigUInt64LE(b + 32) });
      }
      const sh = read(fd, shoff, shnum * shentsize);
      const raw = Array.from({ length: shnum }, (_, i) => {
        const b = i * shentsize;
        return {
          nameOff: sh.readUInt32LE(b), type: sh.readUInt32LE(b + 4), addr: sh.readBigUInt64LE(b + 16), offset: Number(sh.readBigUInt64LE(b + 24)),
          size: Number(sh.readBigUInt64LE(b + 32)), link: sh.readUInt32LE(b + 40), entsize: Number(sh.readBigUInt64LE(b + 56)),
        };
      });
      const strtab = raw[shstrndx];
      const names = strtab === undefined ? Buffer.alloc(0) : read(fd, strtab.offset, strtab.size);
      const sections = raw.map((s) => ({ name: cstr(names, s.nameOff), type: s.type, offset: s.offset, size: s.size, link: s.link, entsize: s.entsize, addr: s.addr }));
      return new ElfFile(path, fd, sections, segments);
    } catch (e) {
      closeSync(fd);
      if (e instanceof TlscopeError) throw e;
      throw new TlscopeError('ERR_ELF', `read ELF ${path}: ${(e as Error).message}`, { cause: e });
    }
  }

  section(name: string): Section | undefined {
    return this.sections.find((s) => s.name === name);
  }

  readSection(name: string): Buffer | undefined {
    const s = this.section(name);
    return s === undefined ? undefined : read(this.fd, s.offset, s.size);
  }

  readAt(offset: number, length: number): Buffer {
    return read(this.fd, offset, length);
  }

  /** Converts a linked virtual address to a file offset through the PT_LOAD segments. */
  addressToOffset(addr: bigint): number | undefined {
    for (const s of this.segments) {
      if (s.type === PT_LOAD && addr >= s.vaddr && addr < s.vaddr + s.filesz) return Number(addr - s.vaddr) + s.offset;
    }
    return undefined;
  }

  /**
   * Function symbols from .symtab and .dynsym. Versioned dynamic names match by their base
   * (`SSL_write` finds `SSL_write@@OPENSSL_3.0.0` since .dynsym stores the base name).
   */
  functions(filter?: (name: string) => boolean): Map<string, ElfSymbol> {
    const out = new Map<string, ElfSymbol>();
    for (const sec of this.sections) {
      if (sec.type !== SHT_SYMTAB && sec.type !== SHT_DYNSYM) continue;
      const strs = this.sections[sec.link];
      if (strs === undefined || sec.entsize !== 24) continue;
      const syms = read(this.fd, sec.offset, sec.size);
      const names = read(this.fd, strs.offset, strs.size);
      for (let b = 0; b + 24 <= syms.length; b += 24) {
        const info = syms[b + 4] ?? 0;
        const type = info & 0xf;
        if (type !== STT_FUNC && type !== STT_GNU_IFUNC) continue;
        const shndx = syms.readUInt16LE(b + 6);
        const value = syms.readBigUInt64LE(b + 8);
        if (shndx === 0 || value === 0n) continue; // undefined (imported) symbol
        const name = cstr(names, syms.readUInt32LE(b));
        if (name === '' || out.has(name) || (filter !== undefined && !filter(name))) continue;
        const fileOffset = this.addressToOffset(value);
        if (fileOffset === undefined) continue;
        out.set(name, { name, address: value, size: syms.readBigUInt64LE(b + 16), fileOffset });
      }
    }
    return out;
  }

  close(): void {
    closeSync(this.fd);
  }
}

function read(fd: number, offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, b, got, length - got, offset + got);
    if (n === 0) throw new TlscopeError('ERR_ELF', `short read at ${offset + got}`);
    got += n;
  }
  return b;
}

function cstr(b: Buffer, off: number): string {
  if (off >= b.length) return '';
  const end = b.indexOf(0, off);
  return b.toString('latin1', off, end < 0 ? b.length : end);
}

/** Offsets of the named functions in one file, or a clear error naming the missing ones. */
export function symbolOffsets(path: string, names: string[]): Map<string, ElfSymbol> {
  const elf = ElfFile.open(path);
  try {
    const want = new Set(names);
    return elf.functions((n) => want.has(n));
  } finally {
    elf.close();
  }
}
