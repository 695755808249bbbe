// SPDX-License-Identifier: Apache-2.0
/**
 * BoringSSL linked into a program (the `boring` Rust crate, Chromium-derived and Envoy-style
 * builds). With symbols its SSL_read/SSL_write are found like OpenSSL's (local `.symtab`
 * symbols count, targets.ts). Without symbols there is no way here to tell them apart: unlike
 * OpenSSL 3's ERR_raise, which records the raising function's `__func__`, BoringSSL's
 * OPENSSL_PUT_ERROR records only `__FILE__` and `__LINE__`, so every function of `ssl_lib.cc`
 * loads the same file name and only version-specific line numbers would differ. Such a file is
 * reported as "TLS library found, no hook" with that reason rather than silently skipped.
 */
import type { ElfFile } from '../../proc/elf.js';
import type { ProbePlan } from './targets.js';

/** BoringSSL's libssl source file, whose path its error macros store (OpenSSL's is `ssl_lib.c`). */
const MARKER = Buffer.from('/ssl/ssl_lib.cc\0', 'latin1');

/** True when the file carries BoringSSL's libssl (by the path its errors record). */
export function hasBoringSsl(elf: ElfFile): boolean {
  for (const s of elf.sections) {
    if (!s.name.startsWith('.rodata') || s.size === 0) continue;
    if (elf.readSection(s.name)?.includes(MARKER)) return true;
  }
  return false;
}

/** The "found, no hook" plan of a file with BoringSSL but no SSL_read/SSL_write symbols. */
export function boringSslNoHook(elf: ElfFile): ProbePlan | undefined {
  if (!hasBoringSsl(elf)) return undefined;
  return {
    source: 'openssl',
    probes: [],
    detail: 'BoringSSL',
    noHook: 'BoringSSL without symbols: its errors record file and line, not function names, so SSL_read/SSL_write cannot be found (keep .symtab: do not strip)',
  };
}
