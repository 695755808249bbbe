// SPDX-License-Identifier: Apache-2.0
/**
 * rustls: where plaintext crosses the library boundary in a Rust program. rustls is a crate,
 * compiled into the program (no shared library, no C symbols), and every way of using it —
 * `rustls::Stream`, `StreamOwned`, tokio-rustls, hyper-rustls — ends in two methods:
 * `<rustls::conn::connection::Writer as std::io::Write>::write` (plaintext in) and
 * `<rustls::conn::connection::Reader as std::io::Read>::read` (plaintext out); `rustls::conn::Writer`
 * / `Reader` in 0.21-0.22. Neither is generic, so each exists once per binary, in the rustls crate's
 * code, whatever the connection type.
 *
 * - With symbols: the mangled names, legacy (`_ZN…17h<hash>E`, what stable rustc emits for crates)
 *   or v0 (`_R…`, `-C symbol-mangling-version=v0`), demangled just enough here to read the path.
 * - Stripped: `Reader::read` is the one function that loads the "peer closed connection without
 *   sending TLS close_notify" message (its `UnexpectedEof` error): the message's address in
 *   `.rodata`, the one RIP-relative LEA of it in `.text`, the `.eh_frame` FDE around the LEA.
 *   `Writer::write` is a 16-byte forwarder to the `PlaintextSink` trait object
 *   (`mov rax,[rdi]; mov rcx,[rdi+8]; mov rcx,[rcx+0x18]; mov rdi,rax; jmp rcx`), compiled into
 *   the same unit as `Reader::read`: the one FDE with exactly those bytes among Reader::read's
 *   neighbours. A build where either is not found singly gets no probes, and the reason.
 *
 * Both return `io::Result<usize>` in RAX (0: Ok) and RDX (the count), the Rust ABI's pair return
 * on x86-64 (checked by disassembly of rustc 1.95 builds): a uretprobe reads them.
 * `Writer::write_vectored` (tokio-rustls writes vectored) is probed too where the program has it
 * (the same forwarder with the next vtable slot); its buffers are an IoSlice (iovec) array.
 * Not covered: rustls' unbuffered API (`UnbufferedConnection`, plaintext in caller buffers
 * with no read/write call), LTO builds that inline both methods into their callers.
 */
import { createHash } from 'node:crypto';
import type { ElfFile } from '../../proc/elf.js';
import { ehFrameRanges, rangeOf, type CodeRange } from '../../proc/eh-frame.js';
import type { PlannedProbe, ProbePlan } from './targets.js';

export interface RustlsFunction {
  name: string;
  address: bigint;
  fileOffset: number;
}

export interface RustlsFunctions {
  write?: RustlsFunction;
  read?: RustlsFunction;
  /** `Writer::write_vectored`: only in programs that call it (tokio-rustls does) */
  writev?: RustlsFunction;
  /** how they were found */
  how: 'symbols' | 'pattern';
  /** when one is missing: why */
  reason?: string;
}

export const RUSTLS_WRITE = '<rustls::conn::connection::Writer as std::io::Write>::write';
export const RUSTLS_READ = '<rustls::conn::connection::Reader as std::io::Read>::read';
export const RUSTLS_WRITEV = '<rustls::conn::connection::Writer as std::io::Write>::write_vectored';

const CLOSE_NOTIFY = 'peer closed connection without sending TLS close_notify';
const LEGACY_ESCAPES: Readonly<Record<string, string>> = { SP: '@', BP: '*', RF: '&', LT: '<', GT: '>', LP: '(', RP: ')', C: ',' };

/** A legacy-mangled Rust name (`_ZN…E`) as its path (`<a::B as c::D>::f`), without the hash. */
export function demangleLegacy(mangled: string): string | undefined {
  const sym = mangled.replace(/\.llvm\.\d+$/, '');
  if (!sym.startsWith('_ZN') || !sym.endsWith('E')) return undefined;
  const parts: string[] = [];
  let i = 3;
  while (i < sym.length - 1) {
    const m = /^\d+/.exec(sym.slice(i));
    if (m === null) return undefined;
    const n = Number(m[0]);
    i += m[0].length;
    let seg = sym.slice(i, i + n);
    i += n;
    if (seg.length !== n) return undefined;
    if (seg.startsWith('_$')) seg = seg.slice(1);
    seg = seg.replace(/\$([A-Z]{1,2}|u[0-9a-f]{2,6})\$/g, (all, e: string) => (e.startsWith('u') ? String.fromCodePoint(parseInt(e.slice(1), 16)) : LEGACY_ESCAPES[e] ?? all)).replace(/\.\./g, '::');
    parts.push(seg);
  }
  if (i !== sym.length - 1) return undefined;
  if (parts.length > 1 && /^h[0-9a-f]{16}$/.test(parts[parts.length - 1] as string)) parts.pop();
  return parts.join('::');
}

/**
 * The identifiers of a v0-mangled name (`_R…`), in order: enough to recognise a path, not a full
 * demangler (no generic arguments, backreferences skipped).
 */
export function v0Identifiers(mangled: string): string[] | undefined {
  const sym = mangled.replace(/\.llvm\.\d+$/, '');
  if (!sym.startsWith('_R')) return undefined;
  const out: string[] = [];
  let i = 2;
  while (i < sym.length) {
    const c = sym[i] as string;
    if (c === 's' && /[A-Z]/.test(sym[i - 1] ?? '')) {
      // a disambiguator after a crate root (C) or namespace tag: s <base-62> _
      const end = sym.indexOf('_', i);
      if (end < 0) break;
      i = end + 1;
    } else if (c === 'B') {
      // a backreference: B <base-62> _
      const end = sym.indexOf('_', i);
      if (end < 0) break;
      i = end + 1;
    } else if (/[0-9]/.test(c)) {
      const m = /^\d+/.exec(sym.slice(i)) as RegExpExecArray;
      i += m[0].length;
      if (sym[i] === '_') i++;
      const n = Number(m[0]);
      out.push(sym.slice(i, i + n));
      i += n;
    } else {
      i++;
    }
  }
  return out;
}

const LEGACY_PATTERNS = {
  write: /^<rustls::(?:\w+::)*Writer(?:<[^>]*>)? as std::io::Write>::write$/,
  read: /^<rustls::(?:\w+::)*Reader(?:<[^>]*>)? as std::io::Read>::read$/,
  writev: /^<rustls::(?:\w+::)*Writer(?:<[^>]*>)? as std::io::Write>::write_vectored$/,
} as const;

function v0Is(ids: readonly string[], type: 'Writer' | 'Reader', trait: 'Write' | 'Read', method: 'write' | 'read' | 'write_vectored'): boolean {
  const n = ids.length;
  // …rustls…<type> std io <trait> <method>, the impl's self type before its trait
  return n >= 6 && ids[n - 1] === method && ids[n - 2] === trait && ids[n - 3] === 'io' && ids[n - 4] === 'std' && ids[n - 5] === type && ids.slice(0, n - 5).includes('rustls');
}

/** Which of the two methods a mangled symbol is, if either. */
export function rustlsMethodOf(mangled: string): 'write' | 'read' | 'writev' | undefined {
  if (!mangled.includes('rustls')) return undefined;
  const legacy = demangleLegacy(mangled);
  if (legacy !== undefined) {
    if (LEGACY_PATTERNS.write.test(legacy)) return 'write';
    if (LEGACY_PATTERNS.read.test(legacy)) return 'read';
    if (LEGACY_PATTERNS.writev.test(legacy)) return 'writev';
    return undefined;
  }
  const ids = v0Identifiers(mangled);
  if (ids === undefined) return undefined;
  if (v0Is(ids, 'Writer', 'Write', 'write')) return 'write';
  if (v0Is(ids, 'Reader', 'Read', 'read')) return 'read';
  if (v0Is(ids, 'Writer', 'Write', 'write_vectored')) return 'writev';
  return undefined;
}

/** Addresses in the read-only sections where `text` starts. */
function stringAddresses(elf: ElfFile, text: string): bigint[] {
  const needle = Buffer.from(text, 'latin1');
  const out: bigint[] = [];
  for (const s of elf.sections) {
    if (!s.name.startsWith('.rodata') || s.size === 0) continue;
    const b = elf.readSection(s.name);
    if (b === undefined) continue;
    for (let i = b.indexOf(needle); i >= 0; i = b.indexOf(needle, i + 1)) out.push(s.addr + BigInt(i));
  }
  return out;
}

/** True when the file carries rustls (its close_notify message), with or without symbols. */
export function hasRustls(elf: ElfFile): boolean {
  return stringAddresses(elf, CLOSE_NOTIFY).length > 0;
}

/** mov rax,[rdi]; mov rcx,[rdi+8]; mov rcx,[rcx+SLOT]; mov rdi,rax; jmp rcx: a call through the sink's vtable */
const forwarder = (slot: number): Buffer => Buffer.from(`488b07488b4f08488b49${slot.toString(16).padStart(2, '0')}4889c7ffe1`, 'hex');
/** PlaintextSink's vtable: drop, size, align, then write (0x18), write_vectored (0x20), flush */
const WRITE_FORWARDER = forwarder(0x18);
const WRITEV_FORWARDER = forwarder(0x20);
/** FDEs on either side of Reader::read looked at for Writer::write. */
const NEIGHBOURS = 8;

function at(elf: ElfFile, address: bigint, name: string): RustlsFunction | undefined {
  const fileOffset = elf.addressToOffset(address);
  return fileOffset === undefined ? undefined : { name, address, fileOffset };
}

/** rustls' Writer::write and Reader::read in a stripped file, or why not. */
function byPattern(elf: ElfFile): RustlsFunctions {
  const none = (reason: string): RustlsFunctions => ({ how: 'pattern', reason });
  const targets = new Set(stringAddresses(elf, CLOSE_NOTIFY));
  const text = elf.section('.text');
  if (targets.size === 0) return none('no rustls close_notify message');
  if (text === undefined) return none('no .text section');
  const ranges = ehFrameRanges(elf);
  if (ranges.length === 0) return none('no .eh_frame function bounds');
  const code = elf.readAt(text.offset, text.size);
  const loaders = new Set<CodeRange>();
  // lea r64, [rip + disp32]: REX.W (48 / 4c) 8d, ModRM with mod 00 and r/m 101
  for (let i = 0; i + 7 <= code.length; i++) {
    const rex = code[i];
    if ((rex !== 0x48 && rex !== 0x4c) || code[i + 1] !== 0x8d || ((code[i + 2] as number) & 0xc7) !== 0x05) continue;
    const addr = text.addr + BigInt(i);
    if (!targets.has(addr + 7n + BigInt(code.readInt32LE(i + 3)))) continue;
    const fn = rangeOf(ranges, addr);
    if (fn !== undefined) loaders.add(fn);
  }
  if (loaders.size !== 1) return none(`the close_notify message is loaded by ${loaders.size} functions, not one`);
  const reader = [...loaders][0] as CodeRange;
  const read = at(elf, reader.start, `${RUSTLS_READ} (by its close_notify message)`);
  const idx = ranges.indexOf(reader);
  const near = (bytes: Buffer): CodeRange[] => {
    const out: CodeRange[] = [];
    for (let j = Math.max(0, idx - NEIGHBOURS); j <= Math.min(ranges.length - 1, idx + NEIGHBOURS); j++) {
      const r = ranges[j] as CodeRange;
      if (r.end - r.start < BigInt(bytes.length) || r.start < text.addr || r.start >= text.addr + BigInt(text.size)) continue;
      const off = Number(r.start - text.addr);
      if (code.subarray(off, off + bytes.length).equals(bytes)) out.push(r);
    }
    return out;
  };
  const writers = near(WRITE_FORWARDER);
  if (writers.length !== 1) return { how: 'pattern', ...(read === undefined ? {} : { read }), reason: `Writer::write: ${writers.length} forwarders next to Reader::read, not one` };
  const write = at(elf, (writers[0] as CodeRange).start, `${RUSTLS_WRITE} (next to Reader::read)`);
  const vectored = near(WRITEV_FORWARDER);
  const writev = vectored.length === 1 ? at(elf, (vectored[0] as CodeRange).start, `${RUSTLS_WRITEV} (next to Reader::read)`) : undefined;
  return { how: 'pattern', ...(write === undefined ? {} : { write }), ...(read === undefined ? {} : { read }), ...(writev === undefined ? {} : { writev }) };
}

/** rustls' two plaintext methods in an ELF file: by symbol, else by pattern when rustls is in it. */
export function findRustls(elf: ElfFile): RustlsFunctions | undefined {
  let write: RustlsFunction | undefined;
  let read: RustlsFunction | undefined;
  let writev: RustlsFunction | undefined;
  let any = false;
  for (const s of elf.functions((n) => n.includes('rustls')).values()) {
    any = true;
    const m = rustlsMethodOf(s.name);
    if (m === 'write') write ??= { name: RUSTLS_WRITE, address: s.address, fileOffset: s.fileOffset };
    else if (m === 'read') read ??= { name: RUSTLS_READ, address: s.address, fileOffset: s.fileOffset };
    else if (m === 'writev') writev ??= { name: RUSTLS_WRITEV, address: s.address, fileOffset: s.fileOffset };
  }
  if (write !== undefined && read !== undefined) return { how: 'symbols', write, read, ...(writev === undefined ? {} : { writev }) };
  if (!hasRustls(elf)) return undefined;
  const found = byPattern(elf);
  if (any && found.reason !== undefined) found.reason = `symbols without Writer::write/Reader::read (inlined? LTO?); ${found.reason}`;
  return found;
}

/**
 * The probes for rustls in a file: entry uprobes and uretprobes on both methods; a plan with
 * `noHook` (and no probes) when rustls is in the file but a method was not found.
 */
export function planRustls(elf: ElfFile): ProbePlan | undefined {
  const f = findRustls(elf);
  if (f === undefined) return undefined;
  if (f.write === undefined || f.read === undefined) {
    return { source: 'rustls', probes: [], detail: `rustls (${f.how})`, noHook: f.reason ?? 'Writer::write or Reader::read not found' };
  }
  const probes: PlannedProbe[] = [];
  const fns: [RustlsFunction, string][] = [[f.write, 'tls_rustls_write'], [f.read, 'tls_rustls_read']];
  if (f.writev !== undefined) fns.push([f.writev, 'tls_rustls_writev']);
  for (const [fn, program] of fns) {
    probes.push({ program, offset: fn.fileOffset, retprobe: false, what: fn.name });
    probes.push({ program: 'tls_lib_ret', offset: fn.fileOffset, retprobe: true, what: `${fn.name} (return)` });
  }
  return { source: 'rustls', probes, detail: `Writer::write${f.writev === undefined ? '' : ', write_vectored'}/Reader::read by ${f.how === 'symbols' ? 'symbol' : 'pattern, without symbols'}` };
}

/** A rustls session's `conn`: its socket's endpoints, hashed to the hex width of a pointer. */
export function socketConn(local: string, remote: string): string {
  return createHash('sha256').update(`${local} ${remote}`).digest('hex').slice(0, 12);
}
