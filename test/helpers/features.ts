// SPDX-License-Identifier: Apache-2.0
/**
 * Skipping a test for a missing kernel feature, by cilium/ebpf's rule: a test may skip only
 * when the kernel is too old for the feature, or when independent evidence (the kernel's own
 * config, /proc/config.gz or /boot/config-<release>; a module file that is not there) says it
 * was built without it. On a kernel that should have the feature, a probe that says "not
 * supported" is a bug (in the probe, in the loader, or in the kernel) and must be seen: then
 * the tests are NOT skipped (they run and fail on their own), and a failing test is added that
 * names the feature and the probe's reason, so a broken probe can never pass as a missing
 * feature. Without root every kernel-dependent test skips (notRoot) — and the runner fails a
 * suite in which nothing passed.
 */
import { test } from 'node:test';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { release } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { probeFeature, type FeatureName } from '../../src/ebpf/features.js';
import { notRoot } from './root.js';

/** major, minor, patch of a release string ("6.1.0-18-amd64" → [6, 1, 0]). */
export function kernelVersion(r: string = release()): [number, number, number] {
  const [a = 0, b = 0, c = 0] = (/^(\d+)\.(\d+)(?:\.(\d+))?/.exec(r) ?? []).slice(1).map((x) => Number(x ?? 0));
  return [a, b, c];
}

/** Whether the running kernel (or `r`) is at least `v` ("5.8"). */
export function kernelAtLeast(v: string, r: string = release()): boolean {
  const have = kernelVersion(r);
  const want = kernelVersion(v);
  for (let i = 0; i < 3; i++) {
    if ((have[i] as number) !== (want[i] as number)) return (have[i] as number) > (want[i] as number);
  }
  return true;
}

export interface KernelConfig {
  /** where it was read */
  source: string;
  /** 'y', 'm', a value, or 'n' for "is not set"; undefined when the config does not name it */
  get(symbol: string): string | undefined;
}

/** Parses kernel config text (CONFIG_X=y lines and "# CONFIG_X is not set"). */
export function parseKernelConfig(text: string, source: string): KernelConfig {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const set = /^(CONFIG_\w+)=(.*)$/.exec(line);
    if (set !== null) values.set(set[1] as string, (set[2] as string).replace(/^"(.*)"$/, '$1'));
    const unset = /^# (CONFIG_\w+) is not set$/.exec(line);
    if (unset !== null) values.set(unset[1] as string, 'n');
  }
  return { source, get: (s) => values.get(s) };
}

let configCache: KernelConfig | null | undefined;
/** The running kernel's build config, if it can be read here (/proc/config.gz, /boot, /lib/modules). */
export function kernelConfig(): KernelConfig | undefined {
  if (configCache !== undefined) return configCache ?? undefined;
  configCache = null;
  const r = release();
  const tries: [string, () => string][] = [
    ['/proc/config.gz', () => gunzipSync(readFileSync('/proc/config.gz')).toString('utf8')],
    [`/boot/config-${r}`, () => readFileSync(`/boot/config-${r}`, 'utf8')],
    [`/lib/modules/${r}/config`, () => readFileSync(`/lib/modules/${r}/config`, 'utf8')],
  ];
  for (const [source, read] of tries) {
    try {
      configCache = parseKernelConfig(read(), source);
      break;
    } catch {
      // next
    }
  }
  return configCache ?? undefined;
}

interface Requirement {
  /** the Linux release that brought it */
  since: string;
  /** config symbols it needs: any one "not set" means the kernel was built without it */
  config: readonly string[];
  /** other independent evidence that rules it out here, in words; undefined when there is none */
  ruledOut?(cfg: KernelConfig | null): string | undefined;
}

/** What each feature needs, from the kernel's history (not from src/: this is the test's own word). */
export const REQUIREMENTS: Readonly<Record<FeatureName, Requirement>> = {
  bpf: { since: '4.4', config: ['CONFIG_BPF_SYSCALL'] },
  btf: { since: '5.4', config: ['CONFIG_DEBUG_INFO_BTF'] },
  ringbuf: { since: '5.8', config: ['CONFIG_BPF_SYSCALL'] },
  socket_filter: { since: '3.19', config: ['CONFIG_BPF_SYSCALL'] },
  tracepoint: { since: '4.7', config: ['CONFIG_BPF_EVENTS', 'CONFIG_FTRACE_SYSCALLS'] },
  tp_btf: { since: '5.5', config: ['CONFIG_DEBUG_INFO_BTF', 'CONFIG_BPF_JIT'] },
  raw_tp: { since: '4.17', config: ['CONFIG_BPF_EVENTS'] },
  uprobe: { since: '4.3', config: ['CONFIG_UPROBE_EVENTS', 'CONFIG_BPF_EVENTS'] },
  uprobe_multi: { since: '6.6', config: ['CONFIG_UPROBES', 'CONFIG_BPF_EVENTS'] },
  fentry: { since: '5.5', config: ['CONFIG_DEBUG_INFO_BTF', 'CONFIG_BPF_JIT', 'CONFIG_FUNCTION_TRACER'], ruledOut: lockdown },
  kprobe: { since: '4.1', config: ['CONFIG_KPROBES', 'CONFIG_KPROBE_EVENTS', 'CONFIG_BPF_EVENTS'] },
  tcx: { since: '6.6', config: ['CONFIG_NET_XGRESS'] },
  cgroup_skb: { since: '4.10', config: ['CONFIG_CGROUP_BPF'] },
  ktls: { since: '4.13', config: ['CONFIG_TLS'], ruledOut: tlsModuleMissing },
  tp_tcp_sendmsg_locked: { since: '6.16', config: [] },
  fanotify_perm: { since: '5.0', config: ['CONFIG_FANOTIFY_ACCESS_PERMISSIONS'] },
};

/**
 * Kernel lockdown (integrity or confidentiality) refuses fentry to root. Evidence: securityfs's
 * lockdown file when it is mounted; else tracefs itself refusing root the list of traceable
 * functions (EPERM), which is what a locked-down ftrace does (fentry attaches through ftrace).
 */
function lockdown(): string | undefined {
  try {
    const mode = /\[(\w+)\]/.exec(readFileSync('/sys/kernel/security/lockdown', 'utf8'))?.[1];
    if (mode !== undefined) return mode !== 'none' ? `kernel lockdown is in ${mode} mode` : undefined;
  } catch {
    // securityfs not mounted: ask tracefs
  }
  if (process.getuid?.() !== 0) return undefined;
  for (const root of ['/sys/kernel/tracing', '/sys/kernel/debug/tracing']) {
    try {
      const fd = openSync(`${root}/available_filter_functions`, 'r');
      try {
        readSync(fd, Buffer.alloc(64), 0, 64, null);
      } finally {
        closeSync(fd);
      }
      return undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EPERM') return `tracefs refuses root ${root}/available_filter_functions (EPERM): function tracing is locked down`;
    }
  }
  return undefined;
}

/** CONFIG_TLS=m with no tls module installed for this kernel. */
function tlsModuleMissing(cfg: KernelConfig | null): string | undefined {
  if (cfg?.get('CONFIG_TLS') !== 'm') return undefined;
  const dir = `/lib/modules/${release()}/kernel/net/tls`;
  return existsSync(dir) ? undefined : `CONFIG_TLS=m but there is no ${dir}`;
}

/**
 * Whether the feature must work here, by independent evidence: `expected: false` with the
 * reason when the kernel is older than it or its config lacks it; else `expected: true`.
 * `cfg` null: no config to read, the version alone decides.
 */
export function featureExpected(name: FeatureName, r: string = release(), cfg: KernelConfig | null = kernelConfig() ?? null): { expected: true } | { expected: false; why: string } {
  const req = REQUIREMENTS[name];
  if (!kernelAtLeast(req.since, r)) return { expected: false, why: `Linux ${r} is older than ${req.since}, which brought ${name}` };
  const off = req.config.filter((s) => cfg?.get(s) === 'n');
  if (off.length > 0) return { expected: false, why: `the kernel was built without ${off.join(', ')} (${cfg?.source})` };
  const other = req.ruledOut?.(cfg);
  if (other !== undefined) return { expected: false, why: other };
  return { expected: true };
}

const reported = new Set<FeatureName>();

/**
 * The skip reason for a test that needs these kernel features (and root), or false. A feature
 * that is missing for a measured reason (old kernel, built without it) skips; one that should
 * work but does not is reported as a failing test of its own and does not skip.
 */
export function featureSkip(...names: FeatureName[]): string | false {
  if (notRoot !== false) return notRoot;
  const skips: string[] = [];
  for (const name of names) {
    const probe = probeFeature(name);
    const want = featureExpected(name);
    if (probe.supported) continue;
    if (!want.expected) {
      skips.push(`${name}: ${want.why} (probe: ${probe.reason ?? 'not supported'})`);
      continue;
    }
    if (!reported.has(name)) {
      reported.add(name);
      const why = probe.reason ?? 'not supported';
      test(`kernel feature ${name} works here (Linux ${release()} ≥ ${REQUIREMENTS[name].since}, not ruled out by its config)`, () => {
        throw new Error(`the ${name} probe says "${why}", yet this kernel should have it: a broken probe or loader, not a reason to skip`);
      });
    }
  }
  return skips.length > 0 ? skips.join('; ') : false;
}

/** The kernel features each gadget's tests need (what the gadget loads and attaches). */
export const NEEDS = {
  sni: ['ringbuf', 'socket_filter', 'tracepoint'],
  tls: ['ringbuf', 'uprobe', 'tp_btf', 'tracepoint'],
  /** capture, and its owner attribution (packet comments, --query proc.*) */
  capture: ['socket_filter', 'ringbuf', 'tp_btf'],
} as const satisfies Record<string, readonly FeatureName[]>;
