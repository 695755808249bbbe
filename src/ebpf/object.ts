// SPDX-License-Identifier: Apache-2.0
/**
 * BPF objects, programs, maps and links over libbpf. Every kernel resource has close(); a
 * link is an fd, so the kernel detaches it when tlscope exits, even by SIGKILL.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NotSupportedError, PermissionError, TlscopeError } from '../errors.js';
import { datasecVars, structLayout, type StructLayout } from './btf.js';
import {
  addressOf, bpf, bpfSyscall, c, errno, setLibbpfPrintSink, strerror, viewMemory, O_CLOEXEC, O_DIRECTORY, O_RDONLY, type Ptr,
} from './native.js';

const EPERM = 1;
const ENOENT = 2;
const EACCES = 13;
const EINVAL = 22;
const ENOTSUPP = 524;
const EOPNOTSUPP = 95;

/** A program the verifier (or the kernel) refused; `log` holds everything libbpf printed. */
export class VerifierError extends TlscopeError {
  readonly program: string | undefined;
  readonly summary: string;
  readonly log: string;
  constructor(object: string, program: string | undefined, summary: string, log: string, cause?: unknown) {
    super('ERR_VERIFIER', `load ${object}${program === undefined ? '' : ` program ${program}`}: ${summary}`, {
      hint: 'run with -v to see the full verifier log',
      ...(cause === undefined ? {} : { cause }),
    });
    this.program = program;
    this.summary = summary;
    this.log = log;
  }
}

/** A failed kernel call, with the errno it returned. */
export class KernelError extends TlscopeError {
  readonly errno: number;
  constructor(what: string, err: number, hint?: string) {
    super('ERR_KERNEL', `${what}: ${strerror(err)} (errno ${err})`, hint === undefined ? {} : { hint });
    this.errno = err;
  }
}

/** Turns a negative libbpf return or errno into the right typed error. */
export function kernelError(what: string, err: number, log?: string): TlscopeError {
  const e = Math.abs(err);
  const tail = log ? `: ${lastLogLine(log)}` : '';
  if ((e === EPERM || e === EACCES) && c.geteuid() !== 0) return new PermissionError(`${what}: ${strerror(e)}${tail}`);
  if (e === ENOTSUPP || e === EOPNOTSUPP) return new NotSupportedError(what, `the kernel answered ${strerror(e)}${tail}`);
  return new KernelError(`${what}${tail}`, e);
}

function lastLogLine(log: string): string {
  const lines = log.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('-- ') && !/^libbpf: prog '.*': -- /.test(l));
  return lines.at(-1)?.replace(/^libbpf: /, '') ?? '';
}

/**
 * The verifier's reason: the lines after the last instruction it printed (before the
 * "processed N insns" totals), plus the source line it stopped at when the object has BTF
 * line info, e.g. "invalid access to map value, value_size=8 off=32 size=8; R0 min value is
 * outside of the allowed memory range (at selftest.bpf.c:74: return *(v + 4);)".
 */
export function summarizeVerifierLog(log: string): string {
  const lines = log.split('\n').map((l) => l.replace(/^libbpf: (prog '[^']*': )?/, '').trim()).filter(Boolean);
  const begin = lines.findIndex((l) => l.includes('BEGIN PROG LOAD LOG'));
  const end = lines.findIndex((l) => l.includes('END PROG LOAD LOG'));
  const body = begin >= 0 && end > begin ? lines.slice(begin + 1, end) : lines;
  const isInsn = (l: string): boolean => /^\d+: \(/.test(l) || /^\d+: R\d/.test(l);
  let lastInsn = -1;
  body.forEach((l, i) => {
    if (isInsn(l)) lastInsn = i;
  });
  const totals = body.findIndex((l) => /^processed \d+ insns/.test(l));
  const reason = body.slice(lastInsn + 1, totals > lastInsn ? totals : undefined).filter((l) => !l.startsWith(';') && !/^(verification time|stack depth)/.test(l));
  const src = body.slice(0, lastInsn + 1).reverse().find((l) => l.startsWith('; '));
  const where = src === undefined ? '' : (/^; (.*?) @ (\S+:\d+)$/.exec(src) ?? undefined);
  const at = where ? ` (at ${where[2]}: ${where[1]})` : '';
  const text = reason.join('; ') || body.filter((l) => !/^(processed|verification time|stack depth)/.test(l)).at(-1) || 'the kernel refused the program';
  return `${text}${at}`;
}

/** Where compiled objects live: dist/bpf/<name>.bpf.o next to the compiled sources. */
export function objectPath(name: string): string {
  return fileURLToPath(new URL(`../../bpf/${name}.bpf.o`, import.meta.url));
}

export type ConstValue = number | bigint | boolean | Uint8Array;

export interface LoadOptions {
  /** `const volatile` settings by variable name, written into .rodata before load. */
  constants?: Record<string, ConstValue>;
  /** max_entries overrides by map name (ring buffer sizes, table sizes). */
  maxEntries?: Record<string, number>;
  /** Load only these programs (others stay unloaded); default all. */
  programs?: string[];
  /** expected_attach_type overrides by program name (for attach types libbpf 1.1 lacks). */
  expectedAttachType?: Record<string, number>;
  /** Program type overrides by program name. */
  programType?: Record<string, number>;
  /** Maps of this object that are another loaded object's maps (by name: the map to share). */
  reuseMaps?: Record<string, BpfMap>;
}

let logLines: string[] = [];
function collectLogs<T>(fn: () => T): { result: T; log: string } {
  logLines = [];
  setLibbpfPrintSink((_level, line) => {
    if (logLines.length < 20000) logLines.push(line);
  });
  try {
    const result = fn();
    return { result, log: logLines.join('') };
  } finally {
    setLibbpfPrintSink(undefined);
  }
}

export class BpfObject {
  readonly name: string;
  private ptr: Ptr;
  private readonly programs = new Map<string, BpfProgram>();
  private readonly maps = new Map<string, BpfMap>();
  private readonly links = new Set<Closable>();

  private constructor(name: string, ptr: Ptr) {
    this.name = name;
    this.ptr = ptr;
  }

  /** Opens `dist/bpf/<name>.bpf.o` (or a path ending in .o), applies the options, loads it. */
  static load(nameOrPath: string, opts: LoadOptions = {}): BpfObject {
    const path = nameOrPath.endsWith('.o') ? nameOrPath : objectPath(nameOrPath);
    if (!existsSync(path)) {
      throw new TlscopeError('ERR_NO_OBJECT', `BPF object ${path} is missing`, { hint: 'run `npm run build` in the tlscope checkout' });
    }
    const opened = collectLogs(() => bpf.object_open_file(path, null) as Ptr | null);
    if (opened.result === null) throw kernelError(`open ${path}`, errno(), opened.log);
    const obj = new BpfObject(nameOrPath.replace(/^.*\//, '').replace(/\.bpf\.o$/, ''), opened.result);
    try {
      obj.configure(opts);
      const loaded = collectLogs(() => bpf.object_load(obj.ptr) as number);
      if (loaded.result < 0) throw obj.loadError(loaded.result, loaded.log);
      return obj;
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  private configure(opts: LoadOptions): void {
    for (const [name, shared] of Object.entries(opts.reuseMaps ?? {})) {
      const r = bpf.map_reuse_fd(this.mapPtr(name), shared.fd) as number;
      if (r < 0) throw kernelError(`share map ${name}`, r);
    }
    for (const [name, n] of Object.entries(opts.maxEntries ?? {})) {
      const m = this.mapPtr(name);
      const r = bpf.map_set_max_entries(m, n) as number;
      if (r < 0) throw kernelError(`set max_entries of ${name}`, r);
    }
    if (opts.programs !== undefined) {
      const wanted = new Set(opts.programs);
      for (const p of this.programPtrs()) {
        const name = bpf.program_name(p) as string;
        bpf.program_set_autoload(p, wanted.has(name));
        wanted.delete(name);
      }
      if (wanted.size > 0) throw new TlscopeError('ERR_NO_PROGRAM', `${this.name}: no program named ${[...wanted].join(', ')}`);
    }
    for (const [name, t] of Object.entries(opts.programType ?? {})) bpf.program_set_type(this.programPtr(name), t);
    for (const [name, t] of Object.entries(opts.expectedAttachType ?? {})) bpf.program_set_expected_attach_type(this.programPtr(name), t);
    if (opts.constants !== undefined && Object.keys(opts.constants).length > 0) this.writeConstants(opts.constants);
  }

  private writeConstants(constants: Record<string, ConstValue>): void {
    const btf = bpf.object_btf(this.ptr) as Ptr | null;
    if (btf === null) throw new TlscopeError('ERR_NO_BTF', `${this.name}: object has no BTF; build it with clang -g`);
    const vars = new Map(datasecVars(btf, '.rodata').map((v) => [v.name, v]));
    const rodata = this.findRodataMap();
    const sizeOut = [0];
    const base = rodata === undefined ? null : (bpf.map_initial_value(rodata, sizeOut) as Ptr | null);
    for (const [name, value] of Object.entries(constants)) {
      const v = vars.get(name);
      if (v === undefined || base === null) throw new TlscopeError('ERR_NO_CONSTANT', `${this.name}: no const volatile variable named ${name}`);
      const dv = new DataView(viewMemory(base, Number(sizeOut[0])));
      writeValue(dv, v.offset, v.size, value, name);
    }
  }

  private findRodataMap(): Ptr | undefined {
    for (let m = bpf.object_next_map(this.ptr, null) as Ptr | null; m !== null; m = bpf.object_next_map(this.ptr, m) as Ptr | null) {
      if ((bpf.map_name(m) as string).endsWith('.rodata')) return m;
    }
    return undefined;
  }

  private loadError(ret: number, log: string): TlscopeError {
    const e = Math.abs(ret);
    const failed = /prog '([^']+)': (BPF program load failed|failed to load)/.exec(log)?.[1];
    if (failed !== undefined && e !== EPERM) return new VerifierError(this.name, failed, summarizeVerifierLog(log), log);
    if (e === EPERM && c.geteuid() !== 0) return new PermissionError(`load ${this.name}: operation not permitted`);
    if (e === EPERM || e === EINVAL || e === ENOENT || e === ENOTSUPP || e === EOPNOTSUPP) {
      return new NotSupportedError(`load ${this.name}${failed === undefined ? '' : ` program ${failed}`}`, `the kernel answered ${strerror(e)}${log ? `: ${summarizeVerifierLog(log)}` : ''}`);
    }
    return new VerifierError(this.name, failed, `${strerror(e)}: ${summarizeVerifierLog(log)}`, log);
  }

  private *programPtrs(): Generator<Ptr> {
    for (let p = bpf.object_next_program(this.ptr, null) as Ptr | null; p !== null; p = bpf.object_next_program(this.ptr, p) as Ptr | null) yield p;
  }

  private programPtr(name: string): Ptr {
    const p = bpf.object_find_program(this.ptr, name) as Ptr | null;
    if (p === null) throw new TlscopeError('ERR_NO_PROGRAM', `${this.name}: no program named ${name}`);
    return p;
  }

  private mapPtr(name: string): Ptr {
    const m = bpf.object_find_map(this.ptr, name) as Ptr | null;
    if (m === null) throw new TlscopeError('ERR_NO_MAP', `${this.name}: no map named ${name}`);
    return m;
  }

  program(name: string): BpfProgram {
    this.assertOpen();
    let p = this.programs.get(name);
    if (p === undefined) {
      p = new BpfProgram(this, name, this.programPtr(name));
      this.programs.set(name, p);
    }
    return p;
  }

  map(name: string): BpfMap {
    this.assertOpen();
    let m = this.maps.get(name);
    if (m === undefined) {
      const ptr = this.mapPtr(name);
      m = new BpfMap(name, bpf.map_fd(ptr) as number, bpf.map_type(ptr) as number, bpf.map_key_size(ptr) as number, bpf.map_value_size(ptr) as number, bpf.map_max_entries(ptr) as number);
      this.maps.set(name, m);
    }
    return m;
  }

  hasMap(name: string): boolean {
    return (bpf.object_find_map(this.ptr, name) as Ptr | null) !== null;
  }

  /** The compiled layout of a struct, for checking a TypeScript decoder against it. */
  structLayout(name: string): StructLayout | undefined {
    const btf = bpf.object_btf(this.ptr) as Ptr | null;
    return btf === null ? undefined : structLayout(btf, name);
  }

  /** @internal links register themselves so close() tears them down first. */
  track(l: Closable): void {
    this.links.add(l);
  }
  untrack(l: Closable): void {
    this.links.delete(l);
  }

  get closed(): boolean {
    return this.ptr === 0n;
  }

  private assertOpen(): void {
    if (this.ptr === 0n) throw new TlscopeError('ERR_CLOSED', `${this.name}: object is closed`);
  }

  close(): void {
    if (this.ptr === 0n) return;
    for (const l of [...this.links]) l.close();
    bpf.object_close(this.ptr);
    this.ptr = 0n;
    this.programs.clear();
    this.maps.clear();
  }
}

function writeValue(dv: DataView, off: number, size: number, value: ConstValue, name: string): void {
  if (value instanceof Uint8Array) {
    if (value.length > size) throw new TlscopeError('ERR_CONSTANT_SIZE', `constant ${name}: ${value.length} bytes do not fit in ${size}`);
    new Uint8Array(dv.buffer, dv.byteOffset + off, size).fill(0).set(value);
    return;
  }
  const n = typeof value === 'boolean' ? (value ? 1n : 0n) : BigInt(value);
  switch (size) {
    case 1: dv.setUint8(off, Number(BigInt.asUintN(8, n))); break;
    case 2: dv.setUint16(off, Number(BigInt.asUintN(16, n)), true); break;
    case 4: dv.setUint32(off, Number(BigInt.asUintN(32, n)), true); break;
    case 8: dv.setBigUint64(off, BigInt.asUintN(64, n), true); break;
    default: throw new TlscopeError('ERR_CONSTANT_SIZE', `constant ${name} is ${size} bytes; pass a Uint8Array`);
  }
}

export interface Closable {
  close(): void;
}

/** An attachment that the kernel owns through one fd (a bpf_link, or a raw link fd). */
export class BpfLink implements Closable {
  readonly description: string;
  private linkPtr: Ptr;
  private rawFd: number;
  private readonly owner: BpfObject;

  constructor(owner: BpfObject, description: string, linkPtr: Ptr, rawFd = -1) {
    this.owner = owner;
    this.description = description;
    this.linkPtr = linkPtr;
    this.rawFd = rawFd;
    owner.track(this);
  }

  get fd(): number {
    return this.linkPtr !== 0n ? (bpf.link_fd(this.linkPtr) as number) : this.rawFd;
  }

  get closed(): boolean {
    return this.linkPtr === 0n && this.rawFd < 0;
  }

  close(): void {
    if (this.linkPtr !== 0n) {
      bpf.link_destroy(this.linkPtr);
      this.linkPtr = 0n;
    }
    if (this.rawFd >= 0) {
      c.close(this.rawFd);
      this.rawFd = -1;
    }
    this.owner.untrack(this);
  }
}

export interface UprobeTarget {
  /** The file to probe: a library or executable (a /proc/PID/root/… path for a container). */
  path: string;
  /** A symbol name (versioned names resolve: `SSL_write` finds `SSL_write@@OPENSSL_3.0.0`). */
  symbol?: string;
  /** A file offset; with `symbol`, relative to it. */
  offset?: number;
  /** Only this process (host pid); default every process that maps the file. */
  pid?: number;
  retprobe?: boolean;
  /** A value the program reads with bpf_get_attach_cookie() (Linux ≥ 5.15), e.g. which file fired. */
  cookie?: bigint;
}

export interface TestRunResult {
  retval: number;
  durationNs: number;
  dataOut: Buffer;
}

export class BpfProgram {
  readonly name: string;
  private readonly obj: BpfObject;
  private readonly ptr: Ptr;

  constructor(obj: BpfObject, name: string, ptr: Ptr) {
    this.obj = obj;
    this.name = name;
    this.ptr = ptr;
  }

  get fd(): number {
    return bpf.program_fd(this.ptr) as number;
  }

  private linkOrThrow(what: string, fn: () => Ptr | null): BpfLink {
    const r = collectLogs(fn);
    if (r.result === null) throw kernelError(`attach ${this.name} to ${what}`, errno(), r.log);
    return new BpfLink(this.obj, `${this.name} → ${what}`, r.result);
  }

  attachUprobe(t: UprobeTarget): BpfLink {
    // struct bpf_uprobe_opts (libbpf 1.1): sz@0 ref_ctr_offset@8 bpf_cookie@16 retprobe@24 func_name@32; size 40
    const opts = Buffer.alloc(40);
    opts.writeBigUInt64LE(40n, 0);
    opts.writeUInt8(t.retprobe ? 1 : 0, 24);
    if (t.cookie !== undefined) opts.writeBigUInt64LE(BigInt.asUintN(64, t.cookie), 16);
    const fname = t.symbol === undefined ? undefined : Buffer.from(`${t.symbol}\0`);
    if (fname !== undefined) opts.writeBigUInt64LE(addressOf(fname), 32);
    const what = `${t.retprobe ? 'uretprobe' : 'uprobe'} ${t.path}:${t.symbol ?? ''}${t.offset ? `+0x${t.offset.toString(16)}` : ''}`;
    const link = this.linkOrThrow(what, () => bpf.attach_uprobe_opts(this.ptr, t.pid ?? -1, t.path, t.offset ?? 0, opts) as Ptr | null);
    void fname; // kept alive until the call returned
    return link;
  }

  /** A classic tracepoint: `tp/<category>/<name>`. */
  attachTracepoint(category: string, name: string): BpfLink {
    return this.linkOrThrow(`tracepoint ${category}/${name}`, () => bpf.attach_tracepoint(this.ptr, category, name) as Ptr | null);
  }

  attachRawTracepoint(name: string): BpfLink {
    return this.linkOrThrow(`raw tracepoint ${name}`, () => bpf.attach_raw_tracepoint(this.ptr, name) as Ptr | null);
  }

  /** tp_btf, fentry/fexit: the target comes from the section name. */
  attachTrace(): BpfLink {
    return this.linkOrThrow('its BTF target', () => bpf.attach_trace(this.ptr) as Ptr | null);
  }

  attachKprobe(func: string, retprobe = false): BpfLink {
    return this.linkOrThrow(`${retprobe ? 'kretprobe' : 'kprobe'} ${func}`, () => bpf.attach_kprobe(this.ptr, retprobe, func) as Ptr | null);
  }

  /** cgroup programs, on a cgroup v2 directory. */
  attachCgroup(cgroupPath: string): BpfLink {
    const fd = c.open(cgroupPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC) as number;
    if (fd < 0) throw kernelError(`open cgroup ${cgroupPath}`, errno());
    try {
      return this.linkOrThrow(`cgroup ${cgroupPath}`, () => bpf.attach_cgroup(this.ptr, fd) as Ptr | null);
    } finally {
      c.close(fd);
    }
  }

  /** tcx (Linux ≥ 6.6) through raw BPF_LINK_CREATE: detaches when the link fd closes. */
  attachTcx(ifindex: number, direction: 'ingress' | 'egress'): BpfLink {
    const attr = Buffer.alloc(168);
    attr.writeUInt32LE(this.fd, 0);
    attr.writeUInt32LE(ifindex, 4);
    attr.writeUInt32LE(direction === 'ingress' ? BPF_TCX_INGRESS : BPF_TCX_EGRESS, 8);
    const fd = bpfSyscall(BPF_LINK_CREATE, attr);
    if (fd < 0) throw kernelError(`attach ${this.name} to tcx ${direction} of ifindex ${ifindex}`, errno());
    return new BpfLink(this.obj, `${this.name} → tcx/${direction} ifindex ${ifindex}`, 0n, fd);
  }

  /** uprobe_multi (Linux ≥ 6.6) through raw BPF_LINK_CREATE; the program must be loaded with
   * expected attach type BPF_TRACE_UPROBE_MULTI. `cookies`, one per offset, are what
   * bpf_get_attach_cookie() returns there. */
  attachUprobeMulti(path: string, offsets: number[], pid = 0, retprobe = false, cookies?: readonly bigint[]): BpfLink {
    const pathBuf = Buffer.from(`${path}\0`);
    const offs = Buffer.alloc(8 * offsets.length);
    offsets.forEach((o, i) => offs.writeBigUInt64LE(BigInt(o), i * 8));
    const cookieBuf = cookies === undefined ? undefined : Buffer.alloc(8 * offsets.length);
    cookies?.forEach((c, i) => cookieBuf?.writeBigUInt64LE(BigInt.asUintN(64, c), i * 8));
    const attr = Buffer.alloc(168);
    attr.writeUInt32LE(this.fd, 0);
    attr.writeUInt32LE(BPF_TRACE_UPROBE_MULTI, 8);
    attr.writeBigUInt64LE(addressOf(pathBuf), 16);
    attr.writeBigUInt64LE(addressOf(offs), 24);
    if (cookieBuf !== undefined) attr.writeBigUInt64LE(addressOf(cookieBuf), 40);
    attr.writeUInt32LE(offsets.length, 48);
    attr.writeUInt32LE(retprobe ? 1 : 0, 52); // BPF_F_UPROBE_MULTI_RETURN
    attr.writeUInt32LE(pid, 56);
    const fd = bpfSyscall(BPF_LINK_CREATE, attr);
    const err = errno();
    void pathBuf;
    void cookieBuf;
    if (fd < 0) throw kernelError(`attach ${this.name} to uprobe_multi ${path} (${offsets.length} offsets)`, err);
    return new BpfLink(this.obj, `${this.name} → uprobe_multi ${path}`, 0n, fd);
  }

  /** Attaches a socket filter to a socket this process owns; closing the socket detaches it. */
  attachToSocket(sockFd: number): void {
    const v = Buffer.alloc(4);
    v.writeInt32LE(this.fd, 0);
    const r = c.setsockopt(sockFd, SOL_SOCKET, SO_ATTACH_BPF, v, 4) as number;
    if (r < 0) throw kernelError(`attach ${this.name} to socket ${sockFd}`, errno());
  }

  /** BPF_PROG_TEST_RUN: runs the program once on `data` (socket filters, raw tracepoints, …). */
  testRun(data: Uint8Array, outSize = Math.max(256, data.length + 256)): TestRunResult {
    const input = Buffer.from(data);
    const out = Buffer.alloc(outSize);
    // struct bpf_test_run_opts: sz@0 data_in@8 data_out@16 data_size_in@24 data_size_out@28
    // ctx_in@32 ctx_out@40 ctx_size_in@48 ctx_size_out@52 retval@56 repeat@60 duration@64; size 80
    const o = Buffer.alloc(80);
    o.writeBigUInt64LE(80n, 0);
    o.writeBigUInt64LE(addressOf(input), 8);
    o.writeBigUInt64LE(addressOf(out), 16);
    o.writeUInt32LE(input.length, 24);
    o.writeUInt32LE(out.length, 28);
    o.writeInt32LE(1, 60);
    const r = bpf.prog_test_run_opts(this.fd, o) as number;
    if (r < 0) throw kernelError(`test run ${this.name}`, r);
    return { retval: o.readUInt32LE(56), durationNs: o.readUInt32LE(64), dataOut: out.subarray(0, o.readUInt32LE(28)) };
  }

  /** The kernel's id for this program (as `bpftool prog` shows it). */
  id(): number {
    return infoId(this.fd);
  }
}

export const SOL_SOCKET = 1;
export const SO_ATTACH_BPF = 50;
const BPF_LINK_CREATE = 28;
const BPF_TCX_INGRESS = 46;
const BPF_TCX_EGRESS = 47;
export const BPF_TRACE_UPROBE_MULTI = 48;

function infoId(fd: number): number {
  const info = Buffer.alloc(256);
  const len = [info.length];
  const r = bpf.obj_get_info_by_fd(fd, info, len) as number;
  if (r < 0) throw kernelError('get object info', r);
  return info.readUInt32LE(4);
}

/** Kernel id of a link fd. */
export function linkId(link: BpfLink): number {
  return infoId(link.fd);
}

const BPF_MAP_TYPE_PERCPU_HASH = 5;
const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
const BPF_MAP_TYPE_LRU_PERCPU_HASH = 10;
export const BPF_MAP_TYPE_RINGBUF = 27;

let cpus: number | undefined;
export function possibleCpus(): number {
  cpus ??= bpf.num_possible_cpus() as number;
  return cpus;
}

export class BpfMap {
  readonly name: string;
  readonly fd: number;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;

  constructor(name: string, fd: number, type: number, keySize: number, valueSize: number, maxEntries: number) {
    this.name = name;
    this.fd = fd;
    this.type = type;
    this.keySize = keySize;
    this.valueSize = valueSize;
    this.maxEntries = maxEntries;
  }

  get perCpu(): boolean {
    return this.type === BPF_MAP_TYPE_PERCPU_ARRAY || this.type === BPF_MAP_TYPE_PERCPU_HASH || this.type === BPF_MAP_TYPE_LRU_PERCPU_HASH;
  }

  /** Bytes a lookup returns: per-CPU maps hold one 8-byte-aligned slot per possible CPU. */
  get lookupSize(): number {
    return this.perCpu ? Math.ceil(this.valueSize / 8) * 8 * possibleCpus() : this.valueSize;
  }

  private key(k: Uint8Array): Buffer {
    if (k.length !== this.keySize) throw new TlscopeError('ERR_MAP_KEY', `${this.name}: key is ${k.length} bytes, map wants ${this.keySize}`);
    return Buffer.from(k.buffer, k.byteOffset, k.byteLength);
  }

  lookup(k: Uint8Array): Buffer | undefined {
    const out = Buffer.alloc(this.lookupSize);
    const r = bpf.map_lookup_elem(this.fd, this.key(k), out) as number;
    if (r === -ENOENT) return undefined;
    if (r < 0) throw kernelError(`lookup in ${this.name}`, r);
    return out;
  }

  /** Per-CPU values of a lookup, one Buffer each. */
  lookupPerCpu(k: Uint8Array): Buffer[] | undefined {
    const all = this.lookup(k);
    if (all === undefined) return undefined;
    const stride = Math.ceil(this.valueSize / 8) * 8;
    return Array.from({ length: possibleCpus() }, (_, i) => all.subarray(i * stride, i * stride + this.valueSize));
  }

  update(k: Uint8Array, v: Uint8Array, flags: 'any' | 'noexist' | 'exist' = 'any'): void {
    const want = this.lookupSize;
    if (v.length !== want) throw new TlscopeError('ERR_MAP_VALUE', `${this.name}: value is ${v.length} bytes, map wants ${want}`);
    const f = flags === 'any' ? 0n : flags === 'noexist' ? 1n : 2n;
    const r = bpf.map_update_elem(this.fd, this.key(k), Buffer.from(v.buffer, v.byteOffset, v.byteLength), f) as number;
    if (r < 0) throw kernelError(`update ${this.name}`, r);
  }

  /** Returns false when the key was absent. */
  delete(k: Uint8Array): boolean {
    const r = bpf.map_delete_elem(this.fd, this.key(k)) as number;
    if (r === -ENOENT) return false;
    if (r < 0) throw kernelError(`delete from ${this.name}`, r);
    return true;
  }

  *keys(): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const r = bpf.map_get_next_key(this.fd, prev, next) as number;
      if (r === -ENOENT) return;
      if (r < 0) throw kernelError(`iterate ${this.name}`, r);
      yield next;
      prev = next;
    }
  }

  /** Number of entries (walks the keys; for tests and stats, not hot paths). */
  count(): number {
    let n = 0;
    for (const _ of this.keys()) n++;
    return n;
  }

  /** Sum of a per-CPU u64 counter at `index` of an array map. */
  sumU64(index = 0): bigint {
    const k = Buffer.alloc(4);
    k.writeUInt32LE(index, 0);
    const vals = this.perCpu ? this.lookupPerCpu(k) : [this.lookup(k)];
    let s = 0n;
    for (const v of vals ?? []) if (v !== undefined) s += v.readBigUInt64LE(0);
    return s;
  }
}
