// SPDX-License-Identifier: Apache-2.0
/**
 * kTLS on this kernel, probed for real. First a loopback TCP connection is given the "tls"
 * upper-layer protocol (setsockopt TCP_ULP, "tls"), which also loads the tls module where it
 * is one; then the hooks of bpf/ktls.bpf.c are loaded and attached on the tls_sw_* functions
 * this kernel has: fentry/fexit first, kprobe/kretprobe when BPF trampolines are refused.
 * The answer (cached per process) tells doctor what works and the kTLS source what to load.
 *
 * For testing only: TLSCOPE_KTLS_HOOKS=kprobe (or fentry) forces one hook kind, so the kprobe
 * fallback can be tested on kernels where fentry loads (test/kernels); any other value is
 * refused. Doctor and trace tls then report the forced kind and say it was forced.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { AF_INET, ENOENT, IPPROTO_TCP, SOCK_CLOEXEC, SOCK_STREAM, TCP_ULP } from '../constants.js';
import { errorMessage } from '../errors.js';
import { c, errno, strerror } from './native.js';
import { BpfObject, type LoadOptions } from './object.js';
import type { BpfLink } from './link.js';
import { ensureTracefs } from './tracefs.js';

export type KtlsHooks = 'fentry' | 'kprobe';

/** Where plaintext passes, in the order the table in docs/kernels.md gives them. */
export const KTLS_FUNCTIONS = ['tls_sw_sendmsg', 'tls_sw_recvmsg', 'tls_sw_sendpage', 'tls_sw_splice_read'] as const;
export type KtlsFunction = (typeof KTLS_FUNCTIONS)[number];

const PROGRAM_SUFFIX: Record<KtlsFunction, string> = {
  tls_sw_sendmsg: 'sendmsg',
  tls_sw_recvmsg: 'recvmsg',
  tls_sw_sendpage: 'sendpage',
  tls_sw_splice_read: 'splice_read',
};

export interface KtlsSupport {
  supported: boolean;
  /** Why not, in words a user can act on. */
  reason?: string;
  /** The hook kind the source uses here. */
  hooks?: KtlsHooks;
  /** Why fentry/fexit were not used (when hooks is kprobe). */
  fentryRefused?: string;
  /** The hook kind was forced by TLSCOPE_KTLS_HOOKS (tests), not chosen by the probe. */
  forced?: boolean;
  /** The tls_sw_* functions this kernel has. */
  functions: KtlsFunction[];
  /** Which function carries sendfile/splice plaintext here. */
  sendfile?: 'tls_sw_sendpage' | 'tls_sw_sendmsg';
  /** The kernel can offload TLS to a NIC (tls_device_*): those sockets are not covered. */
  deviceOffload: boolean;
  /** Sockets offloaded to a device now (/proc/net/tls_stat). */
  deviceSockets: number;
}


function sockaddrLoopback(port: number): Buffer {
  const a = Buffer.alloc(16);
  a.writeUInt16LE(AF_INET, 0);
  a.writeUInt16BE(port, 2);
  a.set([127, 0, 0, 1], 4);
  return a;
}

/** setsockopt(TCP_ULP, "tls") on a connected loopback socket: undefined when it worked, else why not. */
export function ulpProbe(): string | undefined {
  const fds: number[] = [];
  const sock = (): number => {
    const fd = c.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0) as number;
    if (fd < 0) throw new Error(`socket: ${strerror(errno())}`);
    fds.push(fd);
    return fd;
  };
  try {
    const srv = sock();
    const any = sockaddrLoopback(0);
    if ((c.bind(srv, any, any.length) as number) < 0 || (c.listen(srv, 1) as number) < 0) return `cannot listen on 127.0.0.1: ${strerror(errno())}`;
    const got = Buffer.alloc(16);
    const len = [16];
    if ((c.getsockname(srv, got, len) as number) < 0) return `getsockname: ${strerror(errno())}`;
    const cli = sock();
    const to = sockaddrLoopback(got.readUInt16BE(2));
    if ((c.connect(cli, to, to.length) as number) < 0) return `cannot connect to 127.0.0.1 (is the loopback interface up?): ${strerror(errno())}`;
    const acc = c.accept4(srv, null, null, SOCK_CLOEXEC) as number;
    if (acc >= 0) fds.push(acc);
    const name = Buffer.from('tls');
    if ((c.setsockopt(cli, IPPROTO_TCP, TCP_ULP, name, name.length) as number) === 0) return undefined;
    const e = errno();
    if (e !== ENOENT) return `setsockopt(TCP_ULP, "tls") on a loopback socket failed: ${strerror(e)}`;
    if (tlsModuleFile() !== undefined) {
      return `the kernel has kTLS as a module (${tlsModuleFile() ?? ''}) but it is not loaded and could not be loaded: run \`modprobe tls\` (autoloading needs CAP_NET_ADMIN and a working modprobe)`;
    }
    return 'the kernel has no CONFIG_TLS: setsockopt(TCP_ULP, "tls") on a loopback socket answered ENOENT and there is no tls module';
  } catch (e) {
    return errorMessage(e);
  } finally {
    for (const fd of fds) c.close(fd);
  }
}

function tlsModuleFile(): string | undefined {
  for (const base of [`/lib/modules/${release()}`, `/usr/lib/modules/${release()}`]) {
    const dir = `${base}/kernel/net/tls`;
    try {
      const f = readdirSync(dir).find((n) => n.startsWith('tls.ko'));
      if (f !== undefined) return `${dir}/${f}`;
    } catch {
      // not there
    }
  }
  return undefined;
}

/** The tls_sw_* (and tls_device_*) functions the running kernel has, from /proc/kallsyms. */
export function kernelTlsFunctions(kallsyms = '/proc/kallsyms'): { functions: KtlsFunction[]; device: boolean } {
  let text = '';
  try {
    text = readFileSync(kallsyms, 'utf8');
  } catch {
    return { functions: [], device: false };
  }
  const has = (name: string): boolean => new RegExp(`^\\S+ [tT] ${name}(\\s|$)`, 'm').test(text);
  return { functions: KTLS_FUNCTIONS.filter(has), device: has('tls_device_sendmsg') };
}

/** Sockets offloaded to a NIC now: TlsCurrTxDevice + TlsCurrRxDevice. */
export function deviceSockets(stat = '/proc/net/tls_stat'): number {
  try {
    const t = readFileSync(stat, 'utf8');
    let n = 0;
    for (const m of t.matchAll(/^TlsCurr(?:Tx|Rx)Device\s+(\d+)/gm)) n += Number(m[1]);
    return n;
  } catch {
    return 0;
  }
}

/** Programs of bpf/ktls.bpf.c to load for a hook kind and the functions present. */
export function ktlsPrograms(hooks: KtlsHooks, functions: readonly KtlsFunction[]): string[] {
  const out: string[] = [];
  for (const f of functions) {
    const s = PROGRAM_SUFFIX[f];
    if (hooks === 'fentry') out.push(`ktls_fentry_${s}`, `ktls_fexit_${s}`);
    else out.push(`ktls_kprobe_${s}`);
  }
  if (hooks === 'kprobe' && functions.length > 0) out.push('ktls_kretprobe');
  return out;
}

/** Loads bpf/ktls.bpf.c with one hook kind on the given functions. */
export function loadKtls(hooks: KtlsHooks, functions: readonly KtlsFunction[], opts: Omit<LoadOptions, 'programs'> = {}): BpfObject {
  return BpfObject.load('ktls', { ...opts, programs: ktlsPrograms(hooks, functions) });
}

/** Attaches what loadKtls loaded; the links close with the object. */
export function attachKtls(obj: BpfObject, hooks: KtlsHooks, functions: readonly KtlsFunction[]): BpfLink[] {
  const links: BpfLink[] = [];
  for (const f of functions) {
    const s = PROGRAM_SUFFIX[f];
    if (hooks === 'fentry') {
      links.push(obj.program(`ktls_fentry_${s}`).attachTrace(), obj.program(`ktls_fexit_${s}`).attachTrace());
    } else {
      links.push(obj.program(`ktls_kprobe_${s}`).attachKprobe(f), obj.program('ktls_kretprobe').attachKprobe(f, true));
    }
  }
  return links;
}

function tryHooks(hooks: KtlsHooks, functions: readonly KtlsFunction[]): string | undefined {
  try {
    if (hooks === 'kprobe' && !existsSync('/sys/kernel/tracing/kprobe_events') && !existsSync('/sys/kernel/debug/tracing/kprobe_events')) ensureTracefs();
    const o = loadKtls(hooks, functions, { maxEntries: { events: 4096 } });
    try {
      attachKtls(o, hooks, functions);
    } finally {
      o.close();
    }
    return undefined;
  } catch (e) {
    return errorMessage(e);
  }
}

/** The environment variable that forces a hook kind (for tests). */
export const KTLS_HOOKS_ENV = 'TLSCOPE_KTLS_HOOKS';

/** The forced hook kind, undefined when not forced; throws on a value that is neither. */
export function forcedKtlsHooks(env: NodeJS.ProcessEnv = process.env): KtlsHooks | undefined {
  const v = env[KTLS_HOOKS_ENV];
  if (v === undefined || v === '') return undefined;
  if (v === 'fentry' || v === 'kprobe') return v;
  throw new Error(`${KTLS_HOOKS_ENV}=${v}: fentry or kprobe (a setting for tests)`);
}

let cached: KtlsSupport | undefined;

/** What kTLS tracing can do on this kernel (probed once per process). */
export function ktlsSupport(): KtlsSupport {
  if (cached !== undefined) return cached;
  const base = { functions: [] as KtlsFunction[], deviceOffload: false, deviceSockets: 0 };
  const ulp = ulpProbe();
  if (ulp !== undefined) return (cached = { ...base, supported: false, reason: ulp });
  const { functions, device } = kernelTlsFunctions();
  const common = { functions, deviceOffload: device, deviceSockets: deviceSockets() };
  if (!functions.includes('tls_sw_sendmsg') || !functions.includes('tls_sw_recvmsg')) {
    return (cached = { ...common, supported: false, reason: 'kTLS works, but tls_sw_sendmsg/tls_sw_recvmsg are not in /proc/kallsyms (not readable, or renamed in this kernel)' });
  }
  const sendfile = functions.includes('tls_sw_sendpage') ? 'tls_sw_sendpage' as const : 'tls_sw_sendmsg' as const;
  let forced: KtlsHooks | undefined;
  try {
    forced = forcedKtlsHooks();
  } catch (e) {
    return (cached = { ...common, supported: false, reason: errorMessage(e) });
  }
  if (forced !== undefined) {
    const why = tryHooks(forced, functions);
    if (why !== undefined) return (cached = { ...common, supported: false, reason: `kTLS works, but the ${forced} hooks forced by ${KTLS_HOOKS_ENV} cannot be attached: ${why}` });
    return (cached = { ...common, supported: true, hooks: forced, sendfile, forced: true, ...(forced === 'kprobe' ? { fentryRefused: `not tried: ${KTLS_HOOKS_ENV}=kprobe` } : {}) });
  }
  const fentry = tryHooks('fentry', functions);
  if (fentry === undefined) return (cached = { ...common, supported: true, hooks: 'fentry', sendfile });
  const kprobe = tryHooks('kprobe', functions);
  if (kprobe === undefined) return (cached = { ...common, supported: true, hooks: 'kprobe', fentryRefused: fentry, sendfile });
  return (cached = { ...common, supported: false, reason: `kTLS works, but neither fentry/fexit (${fentry}) nor kprobes (${kprobe}) can be attached to tls_sw_sendmsg` });
}

/** One line for doctor: what works, or exactly why not. */
export function describeKtls(s: KtlsSupport): string {
  if (!s.supported) return s.reason ?? 'not supported';
  const hooks = s.hooks === 'fentry'
    ? `fentry/fexit${s.forced === true ? ` (forced by ${KTLS_HOOKS_ENV})` : ''}`
    : s.forced === true ? `kprobe/kretprobe (forced by ${KTLS_HOOKS_ENV}; fentry not tried)` : `kprobe/kretprobe (fentry refused: ${s.fentryRefused ?? '?'})`;
  const sendfile = s.sendfile === 'tls_sw_sendpage' ? 'sendfile/splice through tls_sw_sendpage (page-cache pages)' : 'sendfile/splice through tls_sw_sendmsg (ITER_BVEC pages)';
  const rx = s.functions.includes('tls_sw_splice_read') ? 'tls_sw_recvmsg, tls_sw_splice_read' : 'tls_sw_recvmsg';
  const device = s.deviceOffload
    ? `; device-offloaded kTLS (tls_device_*, ${s.deviceSockets} socket${s.deviceSockets === 1 ? '' : 's'} now) is not covered`
    : '; no device offload in this kernel';
  return `${hooks} on tls_sw_sendmsg, ${rx}; ${sendfile}${device}`;
}
