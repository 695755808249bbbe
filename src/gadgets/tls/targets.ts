// SPDX-License-Identifier: Apache-2.0
/**
 * Which probes a file needs: OpenSSL-style SSL_* exports (libssl 1.1/3, BoringSSL, node and
 * other binaries that carry OpenSSL statically and export it), GnuTLS record functions, NSPR's
 * PR_Write/PR_Read/PR_Send/PR_Recv (NSS; the kernel side keeps SSL descriptors only), and Go
 * crypto/tls methods (entry + every RET, by ABI). Read from the file's ELF symbols; for Go also
 * its build info and pclntab.
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ContainerEntry } from '../../containers/types.js';
import { errorMessage, TlscopeError } from '../../errors.js';
import { programLibraries, programPath } from '../../proc/loader.js';
import { ElfFile } from '../../proc/elf.js';
import { functionReturns, goAbi, goFunctions, isGoBinary, readGoBuildInfo } from '../../proc/go.js';
import type { TlsSource } from './decode.js';
import { findOpenSslFunctions, hasOpenSsl3 } from './openssl-finder.js';
import { planRustls } from './rustls.js';
import { boringSslNoHook } from './boringssl.js';

/** The library sources (probed per file); the kernel's is `ktls` (ktls.ts). */
export type ProbeSource = Extract<TlsSource, 'openssl' | 'gnutls' | 'go' | 'rustls' | 'nss'>;

export interface PlannedProbe {
  /** BPF program in tls.bpf.c */
  program: string;
  /** file offset of the instruction to probe */
  offset: number;
  retprobe: boolean;
  /** for messages: "SSL_write", "crypto/tls.(*Conn).Read+0x104" */
  what: string;
}

export interface ProbePlan {
  source: ProbeSource;
  probes: PlannedProbe[];
  /** e.g. "go1.19.8, register ABI" */
  detail: string;
  /** the TLS stack is in the file but cannot be hooked: why (no probes then) */
  noHook?: string;
}

const OPENSSL: readonly (readonly [string, string])[] = [
  ['SSL_write', 'tls_ssl_write'],
  ['SSL_read', 'tls_ssl_read'],
  ['SSL_write_ex', 'tls_ssl_write_ex'],
  ['SSL_read_ex', 'tls_ssl_read_ex'],
];
/** OpenSSL 3's internal entry points (SSL_*(_ex) and the SSL BIO call them): symbols or the finder. */
const OPENSSL_INTERNAL: readonly (readonly [string, string])[] = [
  ['ssl_write_internal', 'tls_ssl_write_int'],
  ['ssl_read_internal', 'tls_ssl_read_int'],
];
const GNUTLS: readonly (readonly [string, string])[] = [
  ['gnutls_record_send', 'tls_gnutls_send'],
  ['gnutls_record_recv', 'tls_gnutls_recv'],
];
/** NSPR's I/O calls (libnspr4.so): the BPF side keeps only those on descriptors with NSS's SSL layer. */
const NSPR: readonly (readonly [string, string])[] = [
  ['PR_Write', 'tls_nss_write'],
  ['PR_Read', 'tls_nss_read'],
  ['PR_Send', 'tls_nss_send'],
  ['PR_Recv', 'tls_nss_recv'],
];
const GO_WRITE = 'crypto/tls.(*Conn).Write';
const GO_READ = 'crypto/tls.(*Conn).Read';

/** What to probe in the ELF file at `path` (read through the path the probes will use). */
export function planFile(path: string, sources: ReadonlySet<ProbeSource>): ProbePlan[] {
  const elf = ElfFile.open(path);
  try {
    const plans: ProbePlan[] = [];
    const names = new Set<string>([...OPENSSL, ...OPENSSL_INTERNAL, ...GNUTLS, ...NSPR].map(([n]) => n));
    const syms: Map<string, { fileOffset: number }> = elf.functions((n) => names.has(n));
    let found: string[] = [];
    if (sources.has('openssl') && !OPENSSL_INTERNAL.every(([n]) => syms.has(n)) && hasOpenSsl3(elf)) {
      // stripped static OpenSSL, or libssl.so.3's unexported internals: by their __func__ names
      for (const [n, f] of findOpenSslFunctions(elf)) {
        if (syms.has(n)) continue;
        syms.set(n, f);
        found.push(n);
      }
    }
    const lib = (source: ProbeSource, table: readonly (readonly [string, string])[], detail: string): void => {
      if (!sources.has(source)) return;
      const probes: PlannedProbe[] = [];
      for (const [name, program] of table) {
        const s = syms.get(name);
        if (s === undefined) continue;
        probes.push({ program, offset: s.fileOffset, retprobe: false, what: name });
        probes.push({ program: 'tls_lib_ret', offset: s.fileOffset, retprobe: true, what: `${name} (return)` });
      }
      // both directions or nothing: half a conversation misleads
      const [w, r] = table;
      if (w !== undefined && r !== undefined && syms.has(w[0]) && syms.has(r[0])) plans.push({ source, probes, detail });
    };
    const internal = OPENSSL_INTERNAL.every(([n]) => syms.has(n));
    const opensslTable = internal ? [...OPENSSL_INTERNAL, ...OPENSSL] : OPENSSL;
    found = found.filter((n) => syms.has(n));
    const opensslDetail = [
      syms.has('SSL_write_ex') ? 'SSL_read/SSL_write and their _ex forms' : 'SSL_read/SSL_write',
      ...(internal ? ['ssl_read_internal/ssl_write_internal (SSL BIO)'] : []),
      ...(found.length > 0 ? [`without symbols: ${found.join(', ')}`] : []),
    ].join('; ');
    lib('openssl', opensslTable, opensslDetail);
    if (sources.has('openssl') && !plans.some((p) => p.source === 'openssl')) {
      const boring = boringSslNoHook(elf);
      if (boring !== undefined) plans.push(boring);
    }
    lib('gnutls', GNUTLS, 'gnutls_record_send/recv');
    lib('nss', NSPR, 'PR_Write/PR_Read/PR_Send/PR_Recv on descriptors with NSS\'s SSL layer');
    if (sources.has('rustls')) {
      const p = planRustls(elf);
      if (p !== undefined) plans.push(p);
    }
    if (sources.has('go') && isGoBinary(elf)) {
      const info = readGoBuildInfo(elf);
      const abi = goAbi(info);
      const fns = goFunctions(elf, [GO_WRITE, GO_READ]);
      const w = fns.get(GO_WRITE);
      const r = fns.get(GO_READ);
      if (w !== undefined && r !== undefined) {
        const suffix = abi === 'register' ? 'reg' : 'stack';
        const probes: PlannedProbe[] = [];
        for (const [fn, entry] of [[w, `tls_go_write_${suffix}`], [r, `tls_go_read_${suffix}`]] as const) {
          probes.push({ program: entry, offset: fn.fileOffset, retprobe: false, what: fn.name });
          for (const off of functionReturns(elf, fn)) {
            probes.push({ program: `tls_go_ret_${suffix}`, offset: off, retprobe: false, what: `${fn.name}+0x${(off - fn.fileOffset).toString(16)} (RET)` });
          }
        }
        const rets = probes.length - 2;
        plans.push({ source: 'go', probes, detail: `${info?.version ?? 'Go < 1.13'}, ${abi} ABI, ${rets} RETs` });
      }
    }
    return plans;
  } finally {
    elf.close();
  }
}

/** Where distributions keep shared libraries (x86-64). */
export const LIBRARY_DIRS: readonly string[] = [
  '/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib', '/usr/local/lib', '/usr/local/lib64',
];

/** libssl (OpenSSL), GnuTLS, and NSPR (NSS's plaintext goes through its PR_* calls) */
const TLS_LIBRARY = /^lib(ssl|gnutls|nspr4)\.so(\.\d+)*$/;

/** TLS libraries present under a root (`/proc/PID/root`), whether mapped yet or not, as paths inside it. */
export function tlsLibrariesUnder(root: string): string[] {
  const out: string[] = [];
  for (const dir of LIBRARY_DIRS) {
    let names: string[];
    try {
      names = readdirSync(join(root, dir));
    } catch {
      continue;
    }
    // versioned names first: the unversioned one is usually a symlink to the same file
    for (const n of names.filter((x) => TLS_LIBRARY.test(x)).sort((a, b) => b.length - a.length)) out.push(`${dir}/${n}`);
  }
  return out;
}

/**
 * The TLS libraries (libssl, libgnutls) a container's first program will load, as paths inside
 * `root`: resolved as its dynamic loader resolves them (src/proc/loader.ts: RPATH/RUNPATH,
 * LD_LIBRARY_PATH of its environment, glibc's or musl's default directories; no ld.so.cache).
 * A program that cannot be found or read gives none (said through `note`): the mappings find its
 * libraries later.
 */
export function entryTlsLibraries(root: string, entry: ContainerEntry, note?: (message: string) => void): string[] {
  const arg0 = entry.args[0];
  if (arg0 === undefined) return [];
  const env = { env: entry.env, cwd: entry.cwd };
  const program = programPath(root, arg0, env);
  if (program === undefined) return [];
  try {
    return programLibraries(root, program, env).filter((p) => TLS_LIBRARY.test(basename(p)));
  } catch (e) {
    if (!(e instanceof TlscopeError && e.code === 'ERR_ELF')) note?.(`cannot read the libraries of ${program} in ${root}: ${errorMessage(e)}`);
    return [];
  }
}

/**
 * Identity of a file for de-duplicating probes: inode number, size and modification time,
 * without the device, because the same file seen through two overlayfs mounts (two containers
 * of one image) has one inode number but two devices, and the kernel puts uprobes on the real
 * inode underneath. Undefined when the file cannot be read.
 */
export function fileIdentity(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    if (!st.isFile()) return undefined;
    return `${st.ino}:${st.size}:${st.mtimeNs}`;
  } catch {
    return undefined;
  }
}
