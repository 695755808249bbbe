// SPDX-License-Identifier: Apache-2.0
/**
 * trace tls: the plaintext processes give to and get from TLS libraries (bpf/tls.bpf.c).
 * Probes are attached per file that processes in scope actually map (found in
 * /proc/PID/maps, probed through /proc/PID/root/…, de-duplicated by file identity), plus the
 * TLS libraries present in each in-scope root filesystem before anything maps them. This
 * module never prints: it yields batches of TlsEvent.
 */
import { existsSync } from 'node:fs';
import type { ContainerIndex } from '../../containers/index.js';
import type { ContainerEntry } from '../../containers/types.js';
import type { ContainerSelector } from '../../containers/selector.js';
import { includesHost, hasContainerFilter, matches } from '../../containers/selector.js';
import { errorMessage, NotSupportedError, TlscopeError } from '../../errors.js';
import { ktlsSupport, type KtlsHooks } from '../../ebpf/ktls.js';
import { namespaceInode } from '../../proc/namespaces.js';
import { probeFeature, requireFeature } from '../../ebpf/features.js';
import { BPF_TRACE_UPROBE_MULTI } from '../../constants.js';
import { BpfObject } from '../../ebpf/object.js';
import type { BpfLink } from '../../ebpf/link.js';
import { RingBufReader } from '../../ebpf/ringbuf.js';
import { ensureTracefs } from '../../ebpf/tracefs.js';
import type { CommonEvent } from '../../fields/common.js';
import { processAlive } from '../../proc/process.js';
import { monotonicToEpochMs } from '../clock.js';
import { CallAssembler, type TlsCall } from './assembler.js';
import { decodeTlsChunk, decodeTlsHint, type TlsChunk, type TlsDirection, type TlsHint, type TlsSource, type TupleSource } from './decode.js';
import { KeylogSource, type KeylogOptions } from './keylog.js';
import { KtlsSource, mergeBatches } from './ktls.js';
import { ProcessScope, type ProcessWatcher } from './process-scope.js';
import { socketConn } from './rustls.js';
import { analyzeFile, PROBE_SOURCES, processCodeFiles, type StackFinding } from './stacks.js';
import { entryTlsLibraries, fileIdentity, tlsLibrariesUnder, type PlannedProbe, type ProbePlan, type ProbeSource } from './targets.js';

export interface TlsEvent extends CommonEvent {
  kind: 'data';
  /** when the call returned, CLOCK_MONOTONIC (for precise intervals) */
  monotonicNs: bigint;
  source: TlsSource;
  /** the probed function, e.g. "SSL_write", "crypto/tls.(*Conn).Read" */
  function: string;
  /** the file that holds it, as the process sees it (best effort) */
  library: string | undefined;
  direction: TlsDirection;
  /** bytes the call moved (its return value) */
  len: number;
  /** the captured plaintext (all of it unless `truncated`) */
  data: Uint8Array;
  /** --max-bytes cut the data: data.length < len */
  truncated: boolean;
  /** captured bytes lost because the ring buffer was full (left as zeros in data) */
  lostBytes: number;
  /** some bytes could not be read from the process's memory (left as zeros) */
  fault: boolean;
  /** ring records the call came in */
  chunks: number;
  /** where the bytes came from and went to: local→remote for writes, remote→local for reads */
  src: string | undefined;
  dst: string | undefined;
  local: string | undefined;
  remote: string | undefined;
  tupleSource: TupleSource | undefined;
  /** from entering the call to its return */
  latencyNs: number;
  /** the TLS session within the process (SSL*, gnutls_session_t, *tls.Conn), hex */
  conn: string;
}

export interface TlsOptions {
  /** ring buffer size in bytes (power of two, default 16 MiB) */
  ringBytes?: number;
  /** bytes of one call captured at most (default 4 MiB) */
  maxBytes?: number;
  /** probe only these processes (host pids): the probes are per process then */
  pids?: readonly number[];
  /** default: the library sources, and ktls where the kernel has it */
  sources?: readonly TlsSourceName[];
  /** kTLS: only the mount namespaces of the scope pass the kernel filter (set for -c/-r/--k8s-*) */
  ktlsMntnsFilter?: boolean;
  /** kTLS: force a hook kind (tests) */
  ktlsHooks?: KtlsHooks;
  /** told why the kTLS source is off when it was not asked for explicitly */
  onKtlsOff?: (reason: string) => void;
  signal?: AbortSignal;
  /** things that did not work (a file that could not be probed): told once each */
  onWarning?: (msg: string) => void;
  /** each file as it gets probes */
  onProbed?: (file: AttachedFile) => void;
  /**
   * How sockets are found for connection tuples: the sock_send_length/sock_recv_length
   * tracepoints (Linux ≥ 6.3), or the fd of read/write/send/recv system calls looked up in the
   * task's fd table (older kernels). Default: the tracepoints when the kernel has them.
   */
  tupleHooks?: 'auto' | 'sock' | 'syscalls';
  /** attach with uprobe_multi links (default: when the kernel has them) */
  uprobeMulti?: boolean;
  /** --keylog: TLS secrets of Go programs, each as an NSS key log line (keylog.ts) */
  keylog?: KeylogOptions['onLine'];
}

export type TupleHooks = 'sock' | 'syscalls';
/** What --sources takes: the library sources and the kernel's. */
export type TlsSourceName = ProbeSource | 'ktls';

const COMMON_PROGRAMS = [
  'tls_ssl_write', 'tls_ssl_read', 'tls_ssl_write_ex', 'tls_ssl_read_ex', 'tls_ssl_write_int', 'tls_ssl_read_int', 'tls_gnutls_send', 'tls_gnutls_recv', 'tls_rustls_write', 'tls_rustls_writev', 'tls_rustls_read', 'tls_nss_write', 'tls_nss_read', 'tls_nss_send', 'tls_nss_recv', 'tls_lib_ret',
  'tls_go_write_reg', 'tls_go_read_reg', 'tls_go_ret_reg', 'tls_go_write_stack', 'tls_go_read_stack', 'tls_go_ret_stack',
  'tls_exit', 'tls_exec', 'tls_mmap',
];
/** Programs attached to probed files (uprobe_multi needs them loaded for it). */
const PROBE_PROGRAMS = COMMON_PROGRAMS.filter((p) => /^tls_(ssl|gnutls|rustls|nss|lib|go)_/.test(p));
const SOCK_PROGRAMS = ['tls_sock_send', 'tls_sock_recv'];
const SYSCALLS = ['write', 'writev', 'sendto', 'sendmsg', 'read', 'readv', 'recvfrom', 'recvmsg'];

export interface AttachedFile {
  /** path the probes were attached through */
  path: string;
  source: ProbeSource;
  detail: string;
  probes: number;
  /** kernel links holding them */
  links: number;
  /** per-process attachment (-p) */
  pid: number | undefined;
}

export interface TlsStats {
  events: number;
  lost: bigint;
  bytes: number;
  truncatedCalls: number;
  incompleteCalls: number;
  decodeErrors: number;
  files: number;
  links: number;
}

interface FileState {
  plans: ProbePlan[];
  links: BpfLink[];
  path: string;
  pid: number | undefined;
}

const DEFAULT_MAX_BYTES = 4 << 20;
const HINT_DELAY_MS = 50;

export class TlsGadget implements AsyncIterable<TlsEvent[]>, ProcessWatcher {
  private readonly obj: BpfObject;
  private readonly links: BpfLink[] = [];
  private readonly reader: RingBufReader<TlsChunk>;
  private readonly hintReader: RingBufReader<TlsHint>;
  private readonly assembler = new CallAssembler();
  private readonly sources: ReadonlySet<ProbeSource>;
  private readonly pids: ReadonlySet<number> | undefined;
  private warn: (msg: string) => void;
  private readonly warnGiven: boolean;
  private note: ((msg: string) => void) | undefined;
  private readonly onProbed: ((file: AttachedFile) => void) | undefined;
  /** file identity (plus @pid per process) → what is attached there */
  private readonly files = new Map<string, FileState>();
  /** maps key (dev:inode) → file identity, so a library mapped by many processes is stat'ed once */
  private readonly identities = new Map<string, string>();
  /** attach cookie → the probed file as processes see it (for the library field) */
  private readonly fileNames = new Map<number, string>();
  private nextFileId = 1;
  private readonly hintListeners = new Set<(pid: number) => void>();
  private readonly hinted = new Set<number>();
  private hintTimer: NodeJS.Timeout | undefined;
  private hintLoop: Promise<void> | undefined;
  private closed = false;
  /** how connection tuples are found on this kernel */
  tupleHooks: TupleHooks = 'sock';
  /** probes attached as uprobe_multi links (one per file and program) */
  multi = false;
  private events = 0;
  private bytes = 0;
  private truncated = 0;

  private constructor(obj: BpfObject, opts: TlsOptions) {
    this.obj = obj;
    this.sources = new Set((opts.sources ?? PROBE_SOURCES).filter((s): s is ProbeSource => s !== 'ktls'));
    this.pids = opts.pids?.length ? new Set(opts.pids) : undefined;
    this.warn = opts.onWarning ?? (() => {});
    this.warnGiven = opts.onWarning !== undefined;
    this.onProbed = opts.onProbed;
    const signal = opts.signal === undefined ? {} : { signal: opts.signal };
    this.reader = new RingBufReader(obj.map('events'), { decode: decodeTlsChunk, lostCounter: obj.map('tlscope_lost'), ...signal });
    this.hintReader = new RingBufReader(obj.map('hints'), { decode: decodeTlsHint, intervalMs: 10, ...signal });
  }

  /** Loads the kernel side and attaches the tracepoints; probes come with watchProcess/watchRoot. */
  static open(opts: TlsOptions = {}): TlsGadget {
    requireFeature('ringbuf');
    requireFeature('uprobe');
    requireFeature('tp_btf');
    ensureTracefs();
    const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    if (!Number.isInteger(maxBytes) || maxBytes < 0 || maxBytes > 0xffffffff) throw new TlscopeError('ERR_USAGE', `max bytes ${maxBytes} is out of range`);
    // uprobe_multi (Linux ≥ 6.6): one link per file and program, whatever the number of RETs —
    // and unregistered in one go (closing 15 perf-event uprobes took 1.7 s here, one multi link 24 ms)
    const multi = opts.uprobeMulti ?? probeFeature('uprobe_multi').supported;
    const load = (hooks: TupleHooks): BpfObject => BpfObject.load('tls', {
      ...(multi ? { expectedAttachType: Object.fromEntries(PROBE_PROGRAMS.map((p) => [p, BPF_TRACE_UPROBE_MULTI])) } : {}),
      constants: { max_bytes: maxBytes },
      programs: [...COMMON_PROGRAMS, ...(hooks === 'sock' ? SOCK_PROGRAMS : SYSCALLS.map((n) => `tls_sys_${n}`))],
      ...(opts.ringBytes === undefined ? {} : { maxEntries: { events: opts.ringBytes } }),
    });
    let hooks: TupleHooks = opts.tupleHooks === 'syscalls' ? 'syscalls' : 'sock';
    let obj: BpfObject;
    try {
      obj = load(hooks);
    } catch (e) {
      // Linux < 6.3 has no sock_send_length/sock_recv_length: their tp_btf programs do not load
      if (opts.tupleHooks !== undefined && opts.tupleHooks !== 'auto') throw e;
      if (!(e instanceof TlscopeError) || !/tls_sock_(send|recv)/.test(e.message)) throw e;
      hooks = 'syscalls';
      obj = load(hooks);
    }
    let g: TlsGadget | undefined;
    try {
      g = new TlsGadget(obj, opts);
      g.tupleHooks = hooks;
      g.multi = multi;
      if (hooks === 'sock') {
        for (const p of SOCK_PROGRAMS) g.links.push(obj.program(p).attachTrace());
      } else {
        for (const n of SYSCALLS) g.links.push(obj.program(`tls_sys_${n}`).attachTracepoint('syscalls', `sys_enter_${n}`));
      }
      g.links.push(obj.program('tls_exit').attachTrace());
      g.links.push(obj.program('tls_exec').attachTrace());
      g.links.push(obj.program('tls_mmap').attachTracepoint('syscalls', 'sys_enter_mmap'));
      g.hintLoop = g.readHints();
      g.openKtls(opts, maxBytes);
      if (opts.keylog !== undefined) {
        g.keylog = KeylogSource.open({ onLine: opts.keylog, onWarning: (m) => g?.warn(m), ...(opts.signal === undefined ? {} : { signal: opts.signal }) });
      }
      return g;
    } catch (e) {
      if (g !== undefined) void g.close();
      else obj.close();
      throw e;
    }
  }

  /** The key log source (bpf/keylog.bpf.c), with --keylog. */
  keylog: KeylogSource | undefined;
  /** The kTLS source (bpf/ktls.bpf.c), when it runs. */
  ktls: KtlsSource | undefined;
  /** Why the kTLS source is off (when it was not asked for and the kernel cannot). */
  ktlsOff: string | undefined;

  private openKtls(opts: TlsOptions, maxBytes: number): void {
    const asked = opts.sources?.includes('ktls');
    if (asked === false) return;
    const support = ktlsSupport();
    if (!support.supported) {
      if (asked === true) throw new NotSupportedError('kTLS source', support.reason ?? 'not supported');
      this.ktlsOff = support.reason ?? 'not supported';
      opts.onKtlsOff?.(this.ktlsOff);
      return;
    }
    this.ktls = KtlsSource.open({
      maxBytes,
      libraryCalls: this.obj.map('tls_calls'),
      ...(opts.ringBytes === undefined ? {} : { ringBytes: opts.ringBytes }),
      ...(opts.pids?.length ? { pids: opts.pids } : {}),
      ...(opts.ktlsMntnsFilter === true ? { mntnsFilter: true } : {}),
      ...(opts.ktlsHooks === undefined ? {} : { hooks: opts.ktlsHooks }),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    });
  }

  /** kTLS's kernel filter follows the scope: the host's and each in-scope container's mount namespace. */
  private followKtlsScope(selector: ContainerSelector, index: ContainerIndex | undefined): void {
    const k = this.ktls;
    if (k === undefined || !hasContainerFilter(selector)) return;
    if (includesHost(selector)) {
      const host = namespaceInode(1, 'mnt');
      if (host !== undefined) k.allowMntns(host);
    }
    if (index === undefined) return;
    for (const c of index.all()) if (matches(selector, c)) k.allowMntns(c.mntns);
    this.ktlsUnsubscribe = index.subscribe((e) => {
      if (!matches(selector, e.container)) return;
      if (e.type === 'removed') k.dropMntns(e.container.mntns);
      else k.allowMntns(e.container.mntns);
    });
  }

  private ktlsUnsubscribe: (() => void) | undefined;

  /** The scope adapter the trace runner drives (see ProcessScope). */
  followScope(selector: ContainerSelector, index: ContainerIndex | undefined, warn: (msg: string) => void, note?: (msg: string) => void): ProcessScope {
    if (!this.warnGiven) this.warn = warn;
    if (note !== undefined) this.note = note;
    this.followKtlsScope(selector, index);
    return new ProcessScope(this, selector, index, warn);
  }

  // ---- finding and probing code ----

  watchProcess(pid: number): void {
    if (this.closed) return;
    if (this.pids !== undefined && !this.pids.has(pid)) return;
    const files = processCodeFiles(pid);
    if (files === undefined) return;
    let probed = false;
    for (const f of files) {
      const probePath = f.probePath;
      let identity = this.identities.get(f.key);
      if (identity === undefined) {
        identity = fileIdentity(probePath);
        if (identity === undefined) continue; // gone meanwhile: not remembered, the next process will tell
        if (this.identities.size >= 65536) this.identities.clear(); // bounded; it is only a cache of stat()s
        this.identities.set(f.key, identity);
      }
      if (this.ensureFile(identity, probePath, f.path, pid) !== undefined) probed = true;
    }
    // Record its socket I/O from now on, not only from its first TLS call: a handshake (not
    // probed) may read the first request along with it, and that read names the socket.
    if (probed) this.markTlsProcess(pid);
  }

  private markTlsProcess(pid: number): void {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(pid, 0);
    try {
      this.obj.map('tls_pids').update(key, Buffer.from([1]), 'noexist');
    } catch {
      // already there (EEXIST), or the map is full of live entries: the first call adds it
      return;
    }
    // It may have died while we read its maps: its exit hook has run, so nothing in the kernel
    // would remove the entry just added.
    if (!processAlive(pid)) this.forgetProcess(pid);
  }

  /**
   * The process left /proc. Its exit hook normally cleared its kernel state; an entry still in
   * tls_pids means user space marked it after that hook ran (the race above), so its
   * leftovers are swept here.
   */
  forgetProcess(pid: number): void {
    if (this.closed) return;
    const key = Buffer.alloc(4);
    key.writeUInt32LE(pid, 0);
    if (!this.obj.map('tls_pids').delete(key)) return;
    this.swept++;
    this.obj.map('tls_thread_io').delete(key);
    for (const name of ['tls_calls', 'tls_conns']) {
      const map = this.obj.map(name);
      const stale = [...map.keys()].filter((k) => k.readUInt32LE(0) === pid);
      for (const k of stale) map.delete(k);
    }
  }

  watchRoot(root: string, entry?: ContainerEntry): void {
    if (this.closed || this.pids !== undefined) return; // per-process probes come from the processes' maps
    const paths = tlsLibrariesUnder(root);
    // the TLS libraries the first program loads, wherever they are (an RPATH, LD_LIBRARY_PATH):
    // resolved as its loader will, since it may make its first request before any mapping is seen
    if (entry !== undefined) for (const p of entryTlsLibraries(root, entry, (m) => this.warn(m))) if (!paths.includes(p)) paths.push(p);
    for (const path of paths) {
      const full = `${root}${path}`;
      const identity = fileIdentity(full);
      if (identity !== undefined) this.ensureFile(identity, full, path, undefined);
    }
  }

  /**
   * The exec gate holds an exec of `file` (a path to the very inode, valid during the call;
   * `name` is the path it was exec'd by): probes go on the file before the process runs.
   */
  probeBeforeExec(file: string, name: string, pid: number): void {
    if (this.closed || this.pids !== undefined) return;
    const identity = fileIdentity(file);
    if (identity === undefined) return;
    // said and listed as the process's own path, the way its maps would have found it
    if (this.ensureFile(identity, file, name, undefined, `/proc/${pid}/root${name}`) !== undefined) this.markTlsProcess(pid);
  }

  onProcessHint(listener: (pid: number) => void): () => void {
    this.hintListeners.add(listener);
    return () => this.hintListeners.delete(listener);
  }

  /**
   * Probes a file once (per process with -p). `name` is its path as processes see it; `shown`
   * the path to list it by when `probePath` is only valid now (the exec gate's fd).
   */
  private ensureFile(identity: string, probePath: string, name: string, pid: number | undefined, shown = probePath): FileState | undefined {
    const perPid = this.pids !== undefined ? pid : undefined;
    const key = perPid === undefined ? identity : `${identity}@${perPid}`;
    const known = this.files.get(key);
    if (known !== undefined) return known.plans.length > 0 ? known : undefined;
    const state: FileState = { plans: [], links: [], path: shown, pid: perPid };
    this.files.set(key, state);
    const gone = (): undefined => {
      // the process went away while we looked (its /proc/PID/root with it): forget the file, so
      // another process that maps it gets it probed
      for (const l of state.links) l.close();
      this.files.delete(key);
      return undefined;
    };
    let findings: StackFinding[];
    try {
      ({ plans: state.plans, findings } = analyzeFile(probePath, name, this.sources, { labels: false }));
    } catch (e) {
      if (!existsSync(probePath)) return gone();
      if (!(e instanceof TlscopeError && e.code === 'ERR_ELF')) this.warn(`cannot read ${probePath}: ${errorMessage(e)}`);
      return undefined;
    }
    for (const f of findings) if (!f.hook) this.warn(`TLS library found, no hook: ${f.stack === 'boringssl' ? 'openssl' : f.stack} in ${shown}: ${f.reason ?? 'nothing to probe'}`);
    const fileId = this.nextFileId++;
    this.fileNames.set(fileId, name);
    for (const plan of state.plans) {
      const before = state.links.length;
      const failed: string[] = [];
      for (const group of groupProbes(plan.probes, this.multi)) {
        try {
          state.links.push(this.multi
            ? this.obj.program(group.program).attachUprobeMulti(probePath, group.offsets, perPid ?? 0, group.retprobe, group.offsets.map(() => BigInt(fileId)))
            : this.obj.program(group.program).attachUprobe({ path: probePath, offset: group.offsets[0] ?? 0, retprobe: group.retprobe, cookie: BigInt(fileId), ...(perPid === undefined ? {} : { pid: perPid }) }));
        } catch (e) {
          if (!existsSync(probePath)) return gone();
          failed.push(`${group.what}: ${errorMessage(e)}`);
        }
      }
      if (failed.length > 0) this.warn(`cannot probe ${failed.length} place${failed.length === 1 ? '' : 's'} in ${shown} (${plan.source}); first: ${failed[0]}`);
      const file: AttachedFile = { path: shown, source: plan.source, detail: plan.detail, probes: plan.probes.length, links: state.links.length - before, pid: perPid };
      this.note?.(`probing ${file.source} in ${file.path}${perPid === undefined ? '' : ` for pid ${perPid}`} (${file.detail}; ${file.probes} probes${this.multi ? ` in ${file.links} uprobe_multi links` : ''})`);
      this.onProbed?.(file);
    }
    if (this.keylog !== undefined && state.plans.some((p) => p.source === 'go')) {
      const probed = this.keylog.attach(key, probePath, perPid, shown);
      if (probed !== undefined) this.note?.(probed);
    }
    return state.plans.length > 0 ? state : undefined;
  }

  /** Files with probes attached now. */
  attachedFiles(): AttachedFile[] {
    const out: AttachedFile[] = [];
    for (const f of this.files.values()) {
      for (const p of f.plans) out.push({ path: f.path, source: p.source, detail: p.detail, probes: p.probes.length, links: f.links.length, pid: f.pid });
    }
    return out;
  }

  private async readHints(): Promise<void> {
    for await (const batch of this.hintReader) {
      const now = new Set<number>();
      for (const h of batch) {
        // an exec'd program is mapped already (a static Go binary needs nothing more): look now;
        // after an mmap, let the loader finish mapping the rest before looking
        if (h.kind === 'exec') now.add(h.pid);
        else this.hinted.add(h.pid);
      }
      for (const pid of now) this.hint(pid);
      if (this.hinted.size > 0) {
        this.hintTimer ??= setTimeout(() => {
          this.hintTimer = undefined;
          const pids = [...this.hinted];
          this.hinted.clear();
          for (const pid of pids) this.hint(pid);
        }, HINT_DELAY_MS);
      }
    }
  }

  private hint(pid: number): void {
    for (const l of this.hintListeners) l(pid);
  }

  // ---- events ----

  private toEvent(c: TlsCall): TlsEvent {
    const h = c.head;
    const ep = h.endpoints;
    const write = h.direction === 'write';
    this.events++;
    this.bytes += h.totalLen;
    if (c.truncated) this.truncated++;
    return {
      kind: 'data',
      monotonicNs: h.tsNs,
      timestamp: monotonicToEpochMs(h.tsNs),
      proc: { pid: h.pid, tid: h.tid, comm: h.comm, uid: h.uid, gid: h.gid, mntns: h.mntns, netns: h.netns },
      source: h.source,
      function: h.func,
      library: this.fileNames.get(h.fileId),
      direction: h.direction,
      len: h.totalLen,
      data: c.data,
      truncated: c.truncated,
      lostBytes: c.lostBytes,
      fault: c.fault,
      chunks: c.chunks,
      src: ep === undefined ? undefined : write ? ep.local : ep.remote,
      dst: ep === undefined ? undefined : write ? ep.remote : ep.local,
      local: ep?.local,
      remote: ep?.remote,
      tupleSource: h.tupleSource,
      latencyNs: Number(h.tsNs - h.startNs),
      // rustls' reads and writes hold different pointers of one session: its socket names it
      conn: h.source === 'rustls' && ep !== undefined ? socketConn(ep.local, ep.remote) : h.connId.toString(16),
    };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TlsEvent[]> {
    const sources: AsyncIterable<TlsCall[]>[] = [this.libraryCalls()];
    if (this.ktls !== undefined) sources.push(this.ktls.calls());
    for await (const calls of mergeBatches(sources)) yield calls.map((c) => this.toEvent(c));
  }

  private async *libraryCalls(): AsyncGenerator<TlsCall[]> {
    for await (const batch of this.reader) {
      const calls: TlsCall[] = [];
      for (const chunk of batch) this.assembler.push(chunk, calls);
      this.assembler.expire(calls);
      if (calls.length > 0) yield calls;
    }
    const rest: TlsCall[] = [];
    this.assembler.flush(rest);
    if (rest.length > 0) yield rest;
  }

  stats(): TlsStats {
    return {
      events: this.events,
      lost: this.reader.lost() + (this.ktls?.lost() ?? 0n),
      bytes: this.bytes,
      truncatedCalls: this.truncated,
      incompleteCalls: this.assembler.incomplete + (this.ktls?.incompleteCalls ?? 0),
      decodeErrors: this.reader.stats.decodeErrors,
      files: [...this.files.values()].filter((f) => f.plans.length > 0).length,
      links: [...this.files.values()].reduce((n, f) => n + f.links.length, 0),
    };
  }

  private finalKernelStats: Record<string, bigint> | undefined;
  /** Processes whose kernel state user space had to sweep after their exit (see forgetProcess). */
  private swept = 0;

  /** Kernel counters: calls with data, empty returns, nested entries skipped, read faults, records, truncated calls, hints, NSPR calls on other descriptors, NSPR calls not confirmed. */
  kernelStats(): Record<string, bigint> {
    if (this.finalKernelStats !== undefined) return this.finalKernelStats;
    const m = this.obj.map('tls_stats');
    return { calls: m.sumU64(0), empty: m.sumU64(1), nested: m.sumU64(2), faults: m.sumU64(3), records: m.sumU64(4), truncated: m.sumU64(5), hints: m.sumU64(6), nssOther: m.sumU64(7), nssBusy: m.sumU64(8) };
  }

  /** @internal for tests: what the kernel's maps hold. */
  kernelMaps(): { calls: number; conns: number; pids: number; swept: number; callsOf(pid: number): number; keysOf(pid: number): number; threadHas(tid: number): boolean } {
    const calls = this.obj.map('tls_calls');
    const threads = this.obj.map('tls_thread_io');
    const conns = this.obj.map('tls_conns');
    const pids = this.obj.map('tls_pids');
    const count = (keys: Iterable<Buffer>, pid: number): number => {
      let n = 0;
      for (const k of keys) if (k.readUInt32LE(0) === pid) n++;
      return n;
    };
    return {
      calls: calls.count(),
      conns: conns.count(),
      swept: this.swept,
      pids: pids.count(),
      callsOf: (pid) => count(calls.keys(), pid),
      keysOf: (pid) => count(calls.keys(), pid) + count(conns.keys(), pid) + count(pids.keys(), pid),
      threadHas: (tid) => count(threads.keys(), tid) > 0,
    };
  }

  /** Stops: detaches everything, reads what the kernel already queued (iteration then ends). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const f of this.files.values()) for (const l of f.links) l.close();
    for (const l of this.links) l.close();
    this.links.length = 0;
    if (this.hintTimer !== undefined) clearTimeout(this.hintTimer);
    this.hintTimer = undefined;
    this.hintListeners.clear();
    await this.hintReader.close({ drain: false });
    await this.hintLoop;
    this.ktlsUnsubscribe?.();
    await this.ktls?.close();
    await this.keylog?.close();
    await this.reader.close();
    this.finalKernelStats = this.kernelStats();
    this.obj.close();
  }
}

interface ProbeGroup {
  program: string;
  retprobe: boolean;
  offsets: number[];
  what: string;
}

/** One link per program and kind with uprobe_multi; one per probe otherwise. */
function groupProbes(probes: readonly PlannedProbe[], multi: boolean): ProbeGroup[] {
  if (!multi) return probes.map((p) => ({ program: p.program, retprobe: p.retprobe, offsets: [p.offset], what: p.what }));
  const groups = new Map<string, ProbeGroup>();
  for (const p of probes) {
    const k = `${p.program}/${p.retprobe}`;
    const g = groups.get(k);
    if (g === undefined) groups.set(k, { program: p.program, retprobe: p.retprobe, offsets: [p.offset], what: p.what });
    else g.offsets.push(p.offset);
  }
  return [...groups.values()];
}
