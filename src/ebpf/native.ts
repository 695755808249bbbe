// SPDX-License-Identifier: Apache-2.0
/**
 * The one place that reaches native code: libbpf (system libbpf.so.1, ≥ 1.0) and libc,
 * through koffi. Everything else in tlscope calls the typed wrappers in src/ebpf/.
 *
 * Conventions: pointers are bigint (0n is NULL, koffi hands back null for NULL returns);
 * structs are plain Buffers laid out with DataView at offsets taken from the kernel's and
 * libbpf's own headers (see the comments at each layout).
 */
import koffi, { type LibraryHandle } from 'koffi';
import { SYS_bpf, _SC_PAGESIZE } from '../constants.js';

type Lib = LibraryHandle;
/** A native function as koffi gives it: callable, with `.async(…args, cb)`. */
export type NativeFn = ReturnType<Lib['func']>;

export type Ptr = bigint;

function loadLibrary(names: string[]): Lib {
  let last: unknown;
  for (const n of names) {
    try {
      return koffi.load(n);
    } catch (e) {
      last = e;
    }
  }
  throw new Error(`cannot load ${names[0]}: ${String(last)}`, { cause: last });
}

const libc = loadLibrary(['libc.so.6']);
let libbpfHandle: Lib | undefined;
let libbpfLoadError: unknown;
try {
  libbpfHandle = loadLibrary(['libbpf.so.1']);
} catch (e) {
  libbpfLoadError = e;
}

/** Why libbpf could not be loaded, or undefined when it was. */
export function libbpfUnavailable(): string | undefined {
  return libbpfHandle === undefined ? String((libbpfLoadError as Error)?.message ?? libbpfLoadError) : undefined;
}

function bpfFn(decl: string): NativeFn {
  if (libbpfHandle === undefined) {
    // Defer the failure to the first use so that `tlscope --help` and doctor still work.
    return ((..._args: unknown[]) => {
      throw new Error(`libbpf.so.1 is not installed (${libbpfUnavailable()}); install the libbpf1 package`);
    }) as unknown as NativeFn;
  }
  return libbpfHandle.func(decl);
}

export const errno = (): number => koffi.errno();

// ---- libc -------------------------------------------------------------------------------
export const c = {
  close: libc.func('int close(int fd)'),
  geteuid: libc.func('uint32_t geteuid()'),
  getpid: libc.func('int getpid()'),
  gettid: libc.func('int gettid()'),
  getppid: libc.func('int getppid()'),
  mmap: libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)'),
  munmap: libc.func('int munmap(void *addr, size_t len)'),
  sysconf: libc.func('long sysconf(int name)'),
  pthread_sigmask: libc.func('int pthread_sigmask(int how, const uint8_t *set, _Out_ uint8_t *oldset)'),
  epoll_create1: libc.func('int epoll_create1(int flags)'),
  epoll_ctl: libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
  epoll_wait: libc.func('int epoll_wait(int epfd, _Out_ uint8_t *events, int maxevents, int timeout)'),
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, void *val, uint32_t len)'),
  getsockopt: libc.func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *val, _Inout_ uint32_t *len)'),
  bind: libc.func('int bind(int fd, void *addr, uint32_t len)'),
  listen: libc.func('int listen(int fd, int backlog)'),
  connect: libc.func('int connect(int fd, void *addr, uint32_t len)'),
  accept4: libc.func('int accept4(int fd, void *addr, void *len, int flags)'),
  getsockname: libc.func('int getsockname(int fd, _Out_ uint8_t *addr, _Inout_ uint32_t *len)'),
  setns: libc.func('int setns(int fd, int nstype)'),
  open: libc.func('int open(const char *path, int flags)'),
  strerror: libc.func('const char *strerror(int errnum)'),
  vsnprintf: libc.func('int vsnprintf(_Out_ uint8_t *buf, size_t n, const char *fmt, void *ap)'),
  syscall3: libc.func('long syscall(long nr, ...)'),
  mount: libc.func('int mount(const char *src, const char *target, const char *fstype, unsigned long flags, void *data)'),
  // packet sockets (src/ebpf/packet-socket.ts): interface lookups on a socket, which answer for
  // that socket's network namespace (SIOCGIFINDEX, SIOCGIFNAME)
  ioctl: libc.func('int ioctl(int fd, unsigned long request, _Inout_ uint8_t *arg)'),
  // fanotify (src/ebpf/fanotify.ts): the container start hook and the exec gate, answered
  // from a worker thread that polls the group and an eventfd
  fanotify_init: libc.func('int fanotify_init(unsigned int flags, unsigned int event_f_flags)'),
  fanotify_mark: libc.func('int fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dirfd, const char *path)'),
  read: libc.func('long read(int fd, _Out_ uint8_t *buf, size_t n)'),
  write: libc.func('long write(int fd, uint8_t *buf, size_t n)'),
  poll: libc.func('int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)'),
  eventfd: libc.func('int eventfd(unsigned int initval, int flags)'),
};

export function strerror(e: number): string {
  return String(c.strerror(e));
}

// ---- libpcap (filter compilation only: tcpdump's filter syntax to classic BPF) -------------
let libpcapHandle: Lib | undefined;
let libpcapLoadError: unknown;
try {
  libpcapHandle = loadLibrary(['libpcap.so.0.8', 'libpcap.so.1', 'libpcap.so']);
} catch (e) {
  libpcapLoadError = e;
}

/** Why libpcap could not be loaded, or undefined when it was. */
export function libpcapUnavailable(): string | undefined {
  return libpcapHandle === undefined ? String((libpcapLoadError as Error)?.message ?? libpcapLoadError) : undefined;
}

function pcapFn(decl: string): NativeFn {
  if (libpcapHandle === undefined) {
    return ((..._args: unknown[]) => {
      throw new Error(`libpcap is not installed (${libpcapUnavailable()}); install the libpcap0.8 package`);
    }) as unknown as NativeFn;
  }
  return libpcapHandle.func(decl);
}

/** struct bpf_program (pcap/bpf.h): u_int bf_len @0, struct bpf_insn *bf_insns @8; 16 bytes. */
export const pcap = {
  lib_version: pcapFn('const char *pcap_lib_version()'),
  open_dead: pcapFn('void *pcap_open_dead(int linktype, int snaplen)'),
  close: pcapFn('void pcap_close(void *p)'),
  compile: pcapFn('int pcap_compile(void *p, _Inout_ uint8_t *prog, const char *expr, int optimize, uint32_t netmask)'),
  geterr: pcapFn('const char *pcap_geterr(void *p)'),
  freecode: pcapFn('void pcap_freecode(_Inout_ uint8_t *prog)'),
};

// ---- libbpf -------------------------------------------------------------------------------
const PrintFn = koffi.proto('int tlscope_libbpf_print_fn(int level, const char *fmt, void *ap)');

export const bpf = {
  set_print: bpfFn('void *libbpf_set_print(tlscope_libbpf_print_fn *fn)'),
  major: bpfFn('uint32_t libbpf_major_version()'),
  minor: bpfFn('uint32_t libbpf_minor_version()'),
  num_possible_cpus: bpfFn('int libbpf_num_possible_cpus()'),
  probe_map_type: bpfFn('int libbpf_probe_bpf_map_type(int type, void *opts)'),

  object_open_file: bpfFn('void *bpf_object__open_file(const char *path, void *opts)'),
  object_load: bpfFn('int bpf_object__load(void *obj)'),
  object_close: bpfFn('void bpf_object__close(void *obj)'),
  object_btf: bpfFn('void *bpf_object__btf(void *obj)'),
  object_find_map: bpfFn('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
  object_find_program: bpfFn('void *bpf_object__find_program_by_name(void *obj, const char *name)'),
  object_next_program: bpfFn('void *bpf_object__next_program(void *obj, void *prev)'),
  object_next_map: bpfFn('void *bpf_object__next_map(void *obj, void *prev)'),

  program_name: bpfFn('const char *bpf_program__name(void *prog)'),
  program_section: bpfFn('const char *bpf_program__section_name(void *prog)'),
  program_fd: bpfFn('int bpf_program__fd(void *prog)'),
  program_set_autoload: bpfFn('int bpf_program__set_autoload(void *prog, bool autoload)'),
  program_set_log_buf: bpfFn('int bpf_program__set_log_buf(void *prog, void *buf, size_t size)'),
  program_set_log_level: bpfFn('int bpf_program__set_log_level(void *prog, uint32_t level)'),
  program_set_expected_attach_type: bpfFn('int bpf_program__set_expected_attach_type(void *prog, int type)'),
  program_set_type: bpfFn('int bpf_program__set_type(void *prog, int type)'),
  program_type: bpfFn('int bpf_program__type(void *prog)'),
  attach_uprobe_opts: bpfFn('void *bpf_program__attach_uprobe_opts(void *prog, int pid, const char *path, size_t offset, void *opts)'),
  attach_tracepoint: bpfFn('void *bpf_program__attach_tracepoint(void *prog, const char *category, const char *name)'),
  attach_raw_tracepoint: bpfFn('void *bpf_program__attach_raw_tracepoint(void *prog, const char *name)'),
  attach_trace: bpfFn('void *bpf_program__attach_trace(void *prog)'),
  attach_kprobe: bpfFn('void *bpf_program__attach_kprobe(void *prog, bool retprobe, const char *func)'),
  attach_cgroup: bpfFn('void *bpf_program__attach_cgroup(void *prog, int cgroup_fd)'),
  attach_generic: bpfFn('void *bpf_program__attach(void *prog)'),
  link_destroy: bpfFn('int bpf_link__destroy(void *link)'),
  link_fd: bpfFn('int bpf_link__fd(void *link)'),

  map_name: bpfFn('const char *bpf_map__name(void *map)'),
  map_fd: bpfFn('int bpf_map__fd(void *map)'),
  map_type: bpfFn('int bpf_map__type(void *map)'),
  map_key_size: bpfFn('uint32_t bpf_map__key_size(void *map)'),
  map_value_size: bpfFn('uint32_t bpf_map__value_size(void *map)'),
  map_max_entries: bpfFn('uint32_t bpf_map__max_entries(void *map)'),
  map_set_max_entries: bpfFn('int bpf_map__set_max_entries(void *map, uint32_t n)'),
  map_reuse_fd: bpfFn('int bpf_map__reuse_fd(void *map, int fd)'),
  map_initial_value: bpfFn('void *bpf_map__initial_value(void *map, _Out_ size_t *size)'),

  map_lookup_elem: bpfFn('int bpf_map_lookup_elem(int fd, void *key, void *value)'),
  map_update_elem: bpfFn('int bpf_map_update_elem(int fd, void *key, void *value, uint64_t flags)'),
  map_delete_elem: bpfFn('int bpf_map_delete_elem(int fd, void *key)'),
  map_get_next_key: bpfFn('int bpf_map_get_next_key(int fd, void *key, void *next)'),
  obj_get_info_by_fd: bpfFn('int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *len)'),
  prog_test_run_opts: bpfFn('int bpf_prog_test_run_opts(int fd, void *opts)'),

  btf_find_by_name_kind: bpfFn('int btf__find_by_name_kind(void *btf, const char *name, uint32_t kind)'),
  btf_type_by_id: bpfFn('void *btf__type_by_id(void *btf, uint32_t id)'),
  btf_name_by_offset: bpfFn('const char *btf__name_by_offset(void *btf, uint32_t off)'),
  btf_resolve_size: bpfFn('long btf__resolve_size(void *btf, uint32_t id)'),
};

/** libbpf log lines (level, text) go to this sink; the loader swaps it around each call. */
let printSink: ((level: number, line: string) => void) | undefined;
// libbpf prints a whole verifier log with one "%s": 4 KiB cut the reason off
const printBuf = Buffer.alloc(1 << 20);
let printRegistered = false;

export function setLibbpfPrintSink(fn: ((level: number, line: string) => void) | undefined): void {
  if (!printRegistered && libbpfHandle !== undefined) {
    const cb = koffi.register((level: number, fmt: string, ap: Ptr) => {
      const n = c.vsnprintf(printBuf, printBuf.length, fmt, ap) as number;
      const text = printBuf.subarray(0, Math.max(0, Math.min(n, printBuf.length - 1))).toString('utf8');
      printSink?.(level, text);
      return 0;
    }, koffi.pointer(PrintFn));
    bpf.set_print(cb);
    printRegistered = true;
  }
  printSink = fn;
}

/** A view of native memory as an ArrayBuffer, without copying. */
export function viewMemory(ptr: Ptr, length: number): ArrayBuffer {
  return koffi.view(ptr, length);
}

/** Reads a NUL-terminated string at ptr, at most max bytes. */
export function readCString(ptr: Ptr, max = 256): string {
  const b = Buffer.from(viewMemory(ptr, max));
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? max : end).toString('utf8');
}

/** Address of a Buffer's first byte, for structs that embed pointers. */
export function addressOf(buf: Buffer): bigint {
  return koffi.address(buf);
}

export function pageSize(): number {
  return Number(c.sysconf(_SC_PAGESIZE));
}

/** Raw bpf(2): for commands libbpf 1.1 lacks (tcx and uprobe_multi links). */
export function bpfSyscall(cmd: number, attr: Buffer): number {
  const r = c.syscall3(SYS_bpf, 'int', cmd, 'void *', attr, 'uint32_t', attr.length) as number | bigint;
  return Number(r);
}

// ---- signals ------------------------------------------------------------------------------
const SIG_BLOCK = 0;
const SIG_SETMASK = 2;
/** glibc's sigset_t: 1024 bits */
const SIGSET_BYTES = 128;
const ALL_SIGNALS = Buffer.alloc(SIGSET_BYTES, 0xff);

/**
 * Runs `fn` with this thread's signals blocked (SIGKILL and SIGSTOP cannot be). The verifier
 * gives up with EAGAIN when a signal is pending for the loading thread (kernel/bpf/verifier.c
 * checks signal_pending), and libbpf retries only a few times: measured, every load of the
 * sni object failed under `node --cpu-prof` (SIGPROF each millisecond), and a SIGCHLD or
 * SIGWINCH at the wrong moment fails one. A blocked signal waits and is handled right after.
 */
export function withSignalsBlocked<T>(fn: () => T): T {
  const old = Buffer.alloc(SIGSET_BYTES);
  const blocked = (c.pthread_sigmask(SIG_BLOCK, ALL_SIGNALS, old) as number) === 0;
  try {
    return fn();
  } finally {
    if (blocked) c.pthread_sigmask(SIG_SETMASK, old, null);
  }
}
