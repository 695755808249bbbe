// SPDX-License-Identifier: Apache-2.0
/**
 * Which TLS stacks a process maps and whether trace tls hooks each: the one decision the tls
 * gadget takes per mapped file (its probe plans, targets.ts), plus the stacks it finds but does
 * not probe (the JVM, stripped BoringSSL), each with its reason. The gadget attaches by this analysis and
 * `tlscope doctor -p` / `tlscope containers --tls` report it, so the two cannot disagree.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { ElfFile } from '../../proc/elf.js';
import { readGoBuildInfo } from '../../proc/go.js';
import { mappedCodeFiles, processMappings } from '../../proc/maps.js';
import { hasBoringSsl } from './boringssl.js';
import { fileIdentity, planFile, type ProbePlan, type ProbeSource } from './targets.js';

/** The library sources trace tls probes by default. */
export const PROBE_SOURCES: readonly ProbeSource[] = ['openssl', 'gnutls', 'go', 'rustls', 'nss'];

/** Stacks found: the probed sources' and those found but not probed. */
export type TlsStack = ProbeSource | 'boringssl' | 'nss' | 'java';

export interface StackFinding {
  stack: TlsStack;
  /** for people: "OpenSSL 3.0.19 (libssl.so.3)", "node's built-in OpenSSL 3.0.19", "Go crypto/tls go1.19.8" */
  label: string;
  /** the file as the process sees it */
  file: string;
  /** trace tls puts probes on it */
  hook: boolean;
  probes: number;
  /** what is probed (the plan's detail), or what was found */
  detail: string;
  /** why not, when `hook` is false */
  reason?: string;
}

export interface FileAnalysis {
  /** what to attach: the plans with probes */
  plans: ProbePlan[];
  /** every stack in the file, hooked or not */
  findings: StackFinding[];
}

/**
 * NSS's SSL library. Its plaintext is read where the application hands it over: NSPR's
 * PR_Write/PR_Read/PR_Send/PR_Recv in libnspr4.so (planned by targets.ts; the kernel side keeps
 * the calls on descriptors that carry NSS's SSL layer), so libssl3 itself gets no probes but is
 * what users look for. libnss3 (the crypto) is not a finding of its own.
 */
const NSS_SSL = /^libssl3\.so(\.\d+)*$/;
const NSS_CRYPTO = /^libnss3\.so(\.\d+)*$/;
const NSS_DETAIL = 'its plaintext is read at NSPR\'s PR_Write/PR_Read/PR_Send/PR_Recv (libnspr4.so), on SSL descriptors only';

/** "3.87.1" (NSS) or "4.35" (NSPR): the version string their libraries carry alone in .rodata. */
function bareVersion(path: string): string | undefined {
  let elf: ElfFile | undefined;
  try {
    elf = ElfFile.open(path);
    const b = elf.readSection('.rodata');
    if (b === undefined) return undefined;
    const m = /\0(\d+\.\d+(?:\.\d+)*)\0/.exec(b.toString('latin1'));
    return m?.[1];
  } catch {
    return undefined;
  } finally {
    elf?.close();
  }
}
export const JAVA_REASON = 'java: plaintext needs an in-process agent; not done (JSSE encrypts in Java code, so the JVM\'s native socket writes carry ciphertext and no native TLS function sees the plaintext)';

const OPENSSL_VERSION = /OpenSSL (\d+\.\d+\.\d+[a-z]?(?:\+\w+)?) /;

/** "3.0.19" from the version string OpenSSL builds carry in read-only data. */
function opensslVersion(path: string): string | undefined {
  let elf: ElfFile | undefined;
  try {
    elf = ElfFile.open(path);
    for (const s of elf.sections) {
      if (!s.name.startsWith('.rodata') || s.size === 0) continue;
      const b = elf.readSection(s.name);
      const at = b?.indexOf('OpenSSL ') ?? -1;
      if (b === undefined || at < 0) continue;
      for (let i = at; i >= 0; i = b.indexOf('OpenSSL ', i + 1)) {
        const m = OPENSSL_VERSION.exec(b.subarray(i, i + 40).toString('latin1'));
        if (m !== null) return m[1];
      }
    }
  } catch {
    return undefined;
  } finally {
    elf?.close();
  }
  return undefined;
}

function isBoring(path: string): boolean {
  let elf: ElfFile | undefined;
  try {
    elf = ElfFile.open(path);
    return hasBoringSsl(elf);
  } catch {
    return false;
  } finally {
    elf?.close();
  }
}

/** The JDK's version from the `release` file of the installation `libjvm.so` sits in (lib/server/libjvm.so). */
function javaVersion(probePath: string): string | undefined {
  const release = `${dirname(dirname(dirname(probePath)))}/release`;
  try {
    return /^JAVA_VERSION="([^"]+)"/m.exec(readFileSync(release, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

function labelOf(plan: ProbePlan, probePath: string, name: string): { stack: TlsStack; label: string } {
  const base = basename(name);
  switch (plan.source) {
    case 'openssl': {
      if (plan.detail === 'BoringSSL' || isBoring(probePath)) return { stack: 'boringssl', label: /^libssl\.so/.test(base) ? `BoringSSL (${base})` : `BoringSSL linked statically (in ${base})` };
      const v = opensslVersion(probePath);
      const ossl = v === undefined ? 'OpenSSL' : `OpenSSL ${v}`;
      if (/^libssl\.so/.test(base)) return { stack: 'openssl', label: `${ossl} (${base})` };
      if (/^node(js)?$/.test(base)) return { stack: 'openssl', label: `node's built-in ${ossl}` };
      return { stack: 'openssl', label: `${ossl} linked statically (in ${base})` };
    }
    case 'gnutls':
      return { stack: 'gnutls', label: `GnuTLS (${base})` };
    case 'go': {
      let version: string | undefined;
      try {
        const elf = ElfFile.open(probePath);
        try {
          version = readGoBuildInfo(elf)?.version;
        } finally {
          elf.close();
        }
      } catch {
        version = undefined;
      }
      return { stack: 'go', label: `Go crypto/tls ${version ?? '(Go < 1.13)'} (in ${base})` };
    }
    case 'rustls':
      return { stack: 'rustls', label: `rustls (in ${base})` };
    case 'nss': {
      const v = /^libnspr4\.so/.test(base) ? bareVersion(probePath) : undefined;
      return { stack: 'nss', label: `NSS's I/O layer: NSPR${v === undefined ? '' : ` ${v}`} (${base})` };
    }
  }
}

/**
 * The analysis of one mapped file: read through `probePath` (where probes would attach),
 * `name` its path as the process sees it. Throws what planFile throws (an unreadable or
 * non-ELF file). `labels: false` skips the versions and names (another read of the file), which
 * the gadget does not need: the decision (plans, hook, reason) is the same either way.
 */
export function analyzeFile(probePath: string, name: string, sources: ReadonlySet<ProbeSource>, opts: { labels?: boolean } = {}): FileAnalysis {
  const base = basename(name);
  if (NSS_CRYPTO.test(base)) return { plans: [], findings: [] };
  if (NSS_SSL.test(base)) {
    const v = opts.labels === false ? undefined : bareVersion(probePath);
    // like every source left out of --sources: not a finding (nor a "no hook" warning)
    if (!sources.has('nss')) return { plans: [], findings: [] };
    return { plans: [], findings: [{ stack: 'nss', label: `NSS${v === undefined ? '' : ` ${v}`} (${base})`, file: name, hook: true, probes: 0, detail: NSS_DETAIL }] };
  }
  if (base === 'libjvm.so') {
    const v = javaVersion(probePath);
    return { plans: [], findings: [{ stack: 'java', label: v === undefined ? 'JVM (libjvm.so)' : `JVM ${v} (libjvm.so)`, file: name, hook: false, probes: 0, detail: 'Java (JSSE)', reason: JAVA_REASON }] };
  }
  const all = planFile(probePath, sources);
  const findings = all.map((p): StackFinding => ({
    ...(opts.labels === false ? { stack: p.source, label: p.source } : labelOf(p, probePath, name)),
    file: name,
    hook: p.noHook === undefined && p.probes.length > 0,
    probes: p.probes.length,
    detail: p.detail,
    ...(p.noHook === undefined ? {} : { reason: p.noHook }),
  }));
  return { plans: all.filter((p) => p.noHook === undefined), findings };
}

/** A file a process maps executable, and the path to read it (and probe it) through. */
export interface ProcessCodeFile {
  /** path inside the process's mount namespace */
  path: string;
  /** `/proc/PID/root/<path>`, or `/proc/PID/map_files/<range>` when that path no longer is the file */
  probePath: string;
  /** dev:inode from the maps */
  key: string;
}

/** The code files of a process, as the tls gadget probes them; undefined when it is gone. */
export function processCodeFiles(pid: number, procRoot = '/proc'): ProcessCodeFile[] | undefined {
  const maps = processMappings(pid, procRoot);
  if (maps === undefined) return undefined;
  const out: ProcessCodeFile[] = [];
  for (const f of mappedCodeFiles(maps)) {
    if (f.path.startsWith('/memfd:')) continue;
    const rooted = `${procRoot}/${pid}/root${f.path}`;
    out.push({ path: f.path, key: f.key, probePath: !f.deleted && existsSync(rooted) ? rooted : `${procRoot}/${pid}/map_files/${f.range}` });
  }
  return out;
}

/** Per-file results by file identity: one process tree maps the same libraries many times. */
export type AnalysisCache = Map<string, StackFinding[]>;

/**
 * The TLS stacks a process maps now, with trace tls's decision for each (default sources).
 * Undefined when the process is gone or its maps cannot be read.
 */
export function processTlsStacks(pid: number, cache: AnalysisCache = new Map(), procRoot = '/proc'): StackFinding[] | undefined {
  const files = processCodeFiles(pid, procRoot);
  if (files === undefined) return undefined;
  const sources = new Set(PROBE_SOURCES);
  const out: StackFinding[] = [];
  for (const f of files) {
    const id = fileIdentity(f.probePath);
    if (id === undefined) continue;
    let findings = cache.get(id);
    if (findings === undefined) {
      try {
        findings = analyzeFile(f.probePath, f.path, sources).findings;
      } catch {
        findings = []; // not ELF, or unreadable: the gadget skips it too
      }
      cache.set(id, findings);
    }
    out.push(...findings.map((x) => ({ ...x, file: f.path })));
  }
  // libssl carries no version string; its libcrypto (the same build, which libssl needs) does
  const unversioned = out.filter((x) => x.stack === 'openssl' && x.label.startsWith('OpenSSL ('));
  const crypto = files.find((f) => /^libcrypto\.so/.test(basename(f.path)));
  if (unversioned.length > 0 && crypto !== undefined) {
    const v = opensslVersion(crypto.probePath);
    if (v !== undefined) for (const x of unversioned) x.label = `OpenSSL ${v} ${x.label.slice('OpenSSL '.length)}`;
  }
  return out;
}
