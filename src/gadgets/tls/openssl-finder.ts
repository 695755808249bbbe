// SPDX-License-Identifier: Apache-2.0
/**
 * OpenSSL 3 functions without symbols. Every OpenSSL 3 build with error strings (the default)
 * raises errors through ERR_raise, which records the raising function's name (`__func__`, a
 * NUL-terminated array in .rodata). SSL_read and SSL_write raise SSL_R_BAD_LENGTH,
 * ssl_read_internal and ssl_write_internal raise SSL_R_UNINITIALIZED, so each of them holds a
 * RIP-relative LEA of its own name. Finding the name in .rodata, the one LEA that loads it in
 * .text, and the `.eh_frame` FDE around that LEA gives the function's entry — in a stripped
 * static binary and in a shared libssl.so.3 alike (whose internal functions are never
 * exported). The internal ones are what the SSL BIO (BIO_f_ssl) calls, so they also cover
 * programs that never call SSL_read/SSL_write (`openssl s_server -www`).
 *
 * Not covered: OpenSSL 1.1 (its errors carry numeric function codes, no names), builds with
 * OPENSSL_NO_ERR or no `.eh_frame`, and a name loaded by more than one function (ambiguous:
 * no probe rather than a wrong one).
 */
import type { ElfFile } from '../../proc/elf.js';
import { ehFrameRanges, rangeOf } from '../../proc/eh-frame.js';

export interface FoundFunction {
  name: string;
  address: bigint;
  fileOffset: number;
}

export const OPENSSL_FUNC_NAMES = ['SSL_write', 'SSL_read', 'ssl_write_internal', 'ssl_read_internal'] as const;

/** Addresses where `\0name\0` starts a string in the read-only data sections. */
function nameAddresses(elf: ElfFile, name: string): bigint[] {
  const needle = Buffer.from(`\0${name}\0`, 'latin1');
  const out: bigint[] = [];
  for (const s of elf.sections) {
    if (!s.name.startsWith('.rodata') || s.size === 0) continue;
    const b = elf.readSection(s.name);
    if (b === undefined) continue;
    for (let i = b.indexOf(needle); i >= 0; i = b.indexOf(needle, i + 1)) out.push(s.addr + BigInt(i + 1));
  }
  return out;
}

/** True when the file holds OpenSSL 3's libssl (its internal function names as __func__ strings). */
export function hasOpenSsl3(elf: ElfFile): boolean {
  return nameAddresses(elf, 'ssl_write_internal').length > 0;
}

/**
 * The named functions found by the LEA of their own name. Names not found, or found in more
 * than one function, are left out.
 */
export function findOpenSslFunctions(elf: ElfFile, names: readonly string[] = OPENSSL_FUNC_NAMES): Map<string, FoundFunction> {
  const out = new Map<string, FoundFunction>();
  const targets = new Map<bigint, string>();
  for (const n of names) for (const a of nameAddresses(elf, n)) targets.set(a, n);
  const text = elf.section('.text');
  if (targets.size === 0 || text === undefined) return out;
  const ranges = ehFrameRanges(elf);
  if (ranges.length === 0) return out;
  const code = elf.readAt(text.offset, text.size);
  const hits = new Map<string, Set<bigint>>();
  // lea r64, [rip + disp32]: REX.W (48 / 4c) 8d, ModRM with mod 00 and r/m 101
  for (let i = 0; i + 7 <= code.length; i++) {
    const rex = code[i];
    if ((rex !== 0x48 && rex !== 0x4c) || code[i + 1] !== 0x8d || ((code[i + 2] as number) & 0xc7) !== 0x05) continue;
    const at = text.addr + BigInt(i);
    const target = at + 7n + BigInt(code.readInt32LE(i + 3));
    const name = targets.get(target);
    if (name === undefined) continue;
    const fn = rangeOf(ranges, at);
    if (fn === undefined) continue;
    let set = hits.get(name);
    if (set === undefined) hits.set(name, (set = new Set()));
    set.add(fn.start);
  }
  for (const [name, starts] of hits) {
    if (starts.size !== 1) continue;
    const address = [...starts][0] as bigint;
    const fileOffset = elf.addressToOffset(address);
    if (fileOffset !== undefined) out.set(name, { name, address, fileOffset });
  }
  return out;
}
