// SPDX-License-Identifier: Apache-2.0
/**
 * Kernel feature probes. Each one loads (and where it matters attaches) a tiny real program
 * from bpf/probes.bpf.c, so "works" means it worked on this kernel, now. Results are cached
 * per process. A missing feature is a typed NotSupportedError with the reason.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { release } from 'node:os';
import { NotSupportedError, errorMessage } from '../errors.js';
import { symbolOffsets } from '../elf/elf.js';
import { bpf, c, libbpfUnavailable } from './native.js';
import { AF_PACKET, BPF_MAP_TYPE_RINGBUF, BPF_TRACE_UPROBE_MULTI, ENOENT, ENOTSUPP, EOPNOTSUPP, EPERM, SOCK_CLOEXEC, SOCK_RAW } from '../constants.js';
import { BpfObject } from './object.js';
import { KernelError, VerifierError } from './errors.js';
import { bpfCapable } from './caps.js';
import { ktlsSupport } from './ktls.js';
import { ensureTracefs } from './tracefs.js';
import { hasCaps } from './privileges.js';
import { FAN_MARK_ADD, FAN_OPEN_EXEC_PERM, FanotifyGroup } from './fanotify.js';

export type FeatureName =
  | 'bpf' | 'btf' | 'ringbuf' | 'socket_filter' | 'tracepoint' | 'tp_btf' | 'raw_tp' | 'uprobe' | 'uprobe_multi'
  | 'fentry' | 'kprobe' | 'tcx' | 'cgroup_skb' | 'ktls' | 'tp_tcp_sendmsg_locked' | 'fanotify_perm';

export interface FeatureResult {
  feature: FeatureName;
  title: string;
  supported: boolean;
  /** Why not, in words a user can act on. */
  reason?: string;
  /** The Linux version that introduced it. */
  since: string;
}

interface Probe {
  title: string;
  since: string;
  run(): void; // throws when not supported
}

function loadOnly(program: string, opts: { expectedAttachType?: number } = {}): BpfObject {
  return BpfObject.load('probes', {
    programs: [program],
    ...(opts.expectedAttachType === undefined ? {} : { expectedAttachType: { [program]: opts.expectedAttachType } }),
  });
}

function withObject(program: string, attach: (o: BpfObject) => void, opts: { expectedAttachType?: number } = {}): void {
  const o = loadOnly(program, opts);
  try {
    attach(o);
  } finally {
    o.close(); // closes the links too
  }
}

/** libc as this very process maps it: a file we know has `getppid`. */
function libcPath(): string {
  const maps = readFileSync('/proc/self/maps', 'utf8');
  const m = /\s(\/\S*\/libc\.so\.6)$/m.exec(maps) ?? /\s(\/\S*\/libc[-.][^/\s]*\.so[^/\s]*)$/m.exec(maps);
  if (m?.[1] === undefined) throw new Error('cannot find libc in /proc/self/maps');
  return m[1];
}

function cgroup2Mount(): string | undefined {
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[2] === 'cgroup2' && f[1] !== undefined) return f[1];
  }
  return undefined;
}

const probes: Record<FeatureName, Probe> = {
  bpf: {
    title: 'bpf() and libbpf',
    since: '4.4',
    run() {
      const why = libbpfUnavailable();
      if (why !== undefined) throw new NotSupportedError('bpf', `${why}; install libbpf1 (Debian/Ubuntu)`);
      if (!bpfCapable()) throw new NotSupportedError('bpf', 'lacking CAP_BPF (or CAP_SYS_ADMIN): run as root');
      withObject('probe_socket_filter', () => {});
    },
  },
  btf: {
    title: 'kernel BTF (CO-RE)',
    since: '5.4',
    run() {
      if (!existsSync('/sys/kernel/btf/vmlinux')) throw new NotSupportedError('btf', 'no /sys/kernel/btf/vmlinux: the kernel was built without CONFIG_DEBUG_INFO_BTF');
    },
  },
  ringbuf: {
    title: 'BPF ring buffer',
    since: '5.8',
    run() {
      if (!bpfCapable()) throw new NotSupportedError('ringbuf', 'lacking CAP_BPF (or CAP_SYS_ADMIN) to create BPF maps');
      const r = bpf.probe_map_type(BPF_MAP_TYPE_RINGBUF, null) as number;
      if (r !== 1) throw new NotSupportedError('ringbuf', r === 0 ? 'the kernel has no BPF_MAP_TYPE_RINGBUF' : `probe failed (${r})`);
    },
  },
  socket_filter: {
    title: 'socket filter on packet sockets',
    since: '3.19',
    run() {
      withObject('probe_socket_filter', (o) => {
        const fd = c.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0) as number; // protocol 0: receives nothing
        if (fd < 0) throw new NotSupportedError('socket_filter', 'cannot open an AF_PACKET socket (needs CAP_NET_RAW)');
        try {
          o.program('probe_socket_filter').attachToSocket(fd);
        } finally {
          c.close(fd);
        }
      });
    },
  },
  tracepoint: {
    title: 'tracepoints',
    since: '4.7',
    run() {
      ensureTracefs();
      withObject('probe_tracepoint', (o) => o.program('probe_tracepoint').attachTracepoint('syscalls', 'sys_enter_getppid'));
    },
  },
  tp_btf: {
    title: 'BTF tracepoints (tp_btf)',
    since: '5.5',
    run() {
      withObject('probe_tp_btf', (o) => o.program('probe_tp_btf').attachTrace());
    },
  },
  raw_tp: {
    title: 'raw tracepoints',
    since: '4.17',
    run() {
      withObject('probe_raw_tp', (o) => o.program('probe_raw_tp').attachRawTracepoint('sched_process_exit'));
    },
  },
  uprobe: {
    title: 'uprobes',
    since: '4.3',
    run() {
      ensureTracefs();
      withObject('probe_uprobe', (o) => o.program('probe_uprobe').attachUprobe({ path: libcPath(), symbol: 'getppid', pid: process.pid }));
    },
  },
  uprobe_multi: {
    title: 'uprobe_multi links',
    since: '6.6',
    run() {
      const path = libcPath();
      const sym = symbolOffsets(path, ['getppid']).get('getppid');
      if (sym === undefined) throw new Error(`no getppid in ${path}`);
      withObject('probe_uprobe_multi', (o) => o.program('probe_uprobe_multi').attachUprobeMulti(path, [sym.fileOffset], process.pid), { expectedAttachType: BPF_TRACE_UPROBE_MULTI });
    },
  },
  tp_tcp_sendmsg_locked: {
    title: 'tcp_sendmsg_locked tracepoint',
    since: '6.16',
    run() {
      try {
        withObject('probe_tcp_sendmsg_locked', (o) => o.program('probe_tcp_sendmsg_locked').attachTrace());
      } catch (e) {
        throw new NotSupportedError('tp_tcp_sendmsg_locked', `the kernel has no tcp_sendmsg_locked tracepoint (added in Linux 6.16): ${errorMessage(e)}`);
      }
    },
  },
  fentry: {
    title: 'fentry/fexit (BPF trampolines)',
    since: '5.5',
    run() {
      withObject('probe_fentry', (o) => o.program('probe_fentry').attachTrace());
    },
  },
  kprobe: {
    title: 'kprobes',
    since: '4.1',
    run() {
      if (!existsSync('/sys/kernel/tracing/kprobe_events') && !existsSync('/sys/kernel/debug/tracing/kprobe_events')) {
        ensureTracefs();
      }
      withObject('probe_kprobe', (o) => o.program('probe_kprobe').attachKprobe('do_nanosleep'));
    },
  },
  tcx: {
    title: 'tcx links',
    since: '6.6',
    run() {
      withObject('probe_tcx', (o) => o.program('probe_tcx').attachTcx(1 /* lo */, 'ingress'));
    },
  },
  cgroup_skb: {
    title: 'cgroup v2 socket-buffer programs',
    since: '4.10',
    run() {
      const mount = cgroup2Mount();
      if (mount === undefined) throw new NotSupportedError('cgroup_skb', 'no cgroup2 file system is mounted');
      withObject('probe_cgroup_skb', (o) => o.program('probe_cgroup_skb').attachCgroup(mount));
    },
  },
  fanotify_perm: {
    // The container start hook and the exec gate (src/containers/hook.ts); without it
    // containers are learnt from their runtime's events, after they start.
    title: 'fanotify permission events (containers known before they start)',
    since: '5.0',
    run() {
      let group: FanotifyGroup;
      try {
        group = FanotifyGroup.open();
      } catch (e) {
        throw new NotSupportedError('fanotify_perm', `${errorMessage(e)}: containers are learnt from runtime events after they start, so a short-lived one may be missed`);
      }
      const dir = mkdtempSync(join(tmpdir(), 'tlscope-fanotify-'));
      try {
        const file = join(dir, 'probe');
        writeFileSync(file, '', { mode: 0o700 });
        // a mark on a file nobody executes: proves the kernel takes FAN_OPEN_EXEC_PERM (5.0)
        group.mark(FAN_MARK_ADD, FAN_OPEN_EXEC_PERM, file);
      } catch (e) {
        throw new NotSupportedError('fanotify_perm', `${errorMessage(e)}: containers are learnt from runtime events after they start, so a short-lived one may be missed`);
      } finally {
        group.close();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  },
  ktls: {
    title: 'kernel TLS (kTLS)',
    since: '4.13',
    run() {
      // a real setsockopt(TCP_ULP, "tls") on a loopback socket, then the hooks (src/ebpf/ktls.ts)
      const s = ktlsSupport();
      if (!s.supported) throw new NotSupportedError('ktls', s.reason ?? 'not supported');
    },
  },
};

function tlsModuleExists(): boolean {
  const dir = `/lib/modules/${release()}/kernel/net/tls`;
  try {
    return readdirSync(dir).some((f) => f.startsWith('tls.ko'));
  } catch {
    return false;
  }
}


/** Words for an errno or error that a user can act on. */
function explain(feature: FeatureName, e: unknown): string {
  if (e instanceof NotSupportedError && e.feature === feature) return e.reason;
  const errno = e instanceof KernelError ? e.errno : undefined;
  if (feature === 'fentry' && (e instanceof NotSupportedError || e instanceof VerifierError || errno === EPERM)) {
    return 'the kernel refuses to load fentry programs (EPERM even as root: kernel lockdown or integrity mode)';
  }
  if (feature === 'kprobe' && (errno === ENOENT || errno === EOPNOTSUPP || errno === ENOTSUPP)) {
    return 'the kernel has no kprobes (CONFIG_KPROBES is off)';
  }
  return errorMessage(e);
}

const cache = new Map<FeatureName, FeatureResult>();

export function probeFeature(name: FeatureName): FeatureResult {
  const hit = cache.get(name);
  if (hit !== undefined) return hit;
  const p = probes[name];
  let result: FeatureResult;
  try {
    p.run();
    result = { feature: name, title: p.title, supported: true, since: p.since };
  } catch (e) {
    result = { feature: name, title: p.title, supported: false, reason: explain(name, e), since: p.since };
  }
  cache.set(name, result);
  return result;
}

export function probeAll(): FeatureResult[] {
  return (Object.keys(probes) as FeatureName[]).map(probeFeature);
}

/** Throws NotSupportedError unless the feature works here. */
export function requireFeature(name: FeatureName): void {
  const r = probeFeature(name);
  if (!r.supported) throw new NotSupportedError(r.title, r.reason ?? 'unknown reason');
}

export const allFeatures = (): FeatureName[] => Object.keys(probes) as FeatureName[];
