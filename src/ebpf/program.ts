// SPDX-License-Identifier: Apache-2.0
/**
 * A loaded program of a BpfObject and every way tlscope attaches one: uprobes (also
 * uprobe_multi through raw BPF_LINK_CREATE, which libbpf 1.1 lacks), tracepoints, raw
 * tracepoints, tp_btf/fentry, kprobes, cgroups, tcx, and a socket this process owns. Each
 * attachment is a BpfLink (an fd) tracked by the object; BPF_PROG_TEST_RUN for tests.
 */
import {
  BPF_LINK_CREATE, BPF_TCX_EGRESS, BPF_TCX_INGRESS, BPF_TRACE_UPROBE_MULTI, O_CLOEXEC, O_DIRECTORY, O_RDONLY, SOL_SOCKET, SO_ATTACH_BPF,
} from '../constants.js';
import { addressOf, bpf, bpfSyscall, c, errno, type Ptr } from './native.js';
import { collectLogs, kernelError } from './errors.js';
import { BpfLink, objectInfoId, type LinkOwner } from './link.js';

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
  private readonly obj: LinkOwner;
  private readonly ptr: Ptr;

  /** @internal made by BpfObject.program() */
  constructor(obj: LinkOwner, name: string, ptr: Ptr) {
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
    return objectInfoId(this.fd);
  }
}
