// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* trace tls: the plaintext that processes hand to TLS libraries and get back from them.
 *
 * - C libraries (OpenSSL SSL_write/SSL_read/SSL_write_ex/SSL_read_ex, GnuTLS
 *   gnutls_record_send/recv, NSS through NSPR's PR_Write/PR_Read/PR_Send/PR_Recv on SSL
 *   descriptors only): a uprobe at entry remembers the buffer, keyed by thread; a
 *   uretprobe reads the return value and, when the call moved bytes, that many bytes of the
 *   buffer.
 * - Go crypto/tls (*Conn).Write/Read: a uprobe at entry and one on every RET instruction of the
 *   function (found by disassembly in user space) — never a uretprobe, which breaks Go's stack
 *   handling. Entry and return are paired by goroutine (g: R14 with the register ABI, the TLS
 *   slot at fs_base-8 with the stack ABI), since a goroutine may resume on another thread.
 * - The connection tuple: sock_send_length/sock_recv_length (tp_btf) record, for threads of
 *   processes that use TLS, the last socket they did I/O on. Socket I/O during a call names the
 *   call's socket and is remembered for the TLS session; memory-BIO stacks (node) do their
 *   socket I/O outside the call: there the thread's latest socket is used (marked inferred).
 * - sched_process_exit drops the state of threads and processes that die (even mid-call);
 *   exec and PROT_EXEC mmap send hints so user space probes newly mapped code.
 * Only calls that moved bytes (return value > 0) produce records. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tlscope.h"
#include "tls.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PROT_EXEC 4
#define TLS_F_FAULT 2 /* some bytes could not be read from the process (left as zeros) */

/* Bytes of one call captured at most (the rest is counted, flagged TLS_F_TRUNCATED). */
const volatile __u32 max_bytes = 4 << 20;
/* A read call with no socket I/O of its own takes the thread's latest receive within this window. */
const volatile __u64 infer_window_ns = 50ULL * 1000 * 1000;
/* mmap hints per process at most one per this interval (exec hints always go). */
const volatile __u64 hint_interval_ns = 20ULL * 1000 * 1000;

TLSCOPE_RINGBUF(events, 1 << 24);
TLSCOPE_RINGBUF(hints, 1 << 16);
TLSCOPE_BTF_TYPE(tls_event);
TLSCOPE_BTF_TYPE(tls_hint);

/* struct tls_call_key, struct tls_call: bpf/include/tls.h (bpf/ktls.bpf.c marks calls in tls_calls). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_call_key);
	__type(value, struct tls_call);
} tls_calls SEC(".maps");

/* The latest socket each thread (of a process that uses TLS) did I/O on. */
struct tls_thread_io {
	struct tlscope_tuple tuple;
	__u64 ts_ns;
	__u8 direction;
	__u8 pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, struct tls_thread_io);
} tls_thread_io SEC(".maps");

/* The socket of each TLS session, once known. */
struct tls_conn_key {
	__u32 tgid;
	__u32 pad;
	__u64 conn;
};

struct tls_conn {
	struct tlscope_tuple tuple;
	__u64 ts_ns;
	__u8 strong; /* 1: from socket I/O during a call; 0: inferred */
	__u8 pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_conn_key);
	__type(value, struct tls_conn);
} tls_conns SEC(".maps");

/* Processes that have entered a probed function: their socket I/O is recorded. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} tls_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u64);
} tls_hinted SEC(".maps");

struct scratch {
	struct tls_event hdr;
	__u8 data[TLS_CHUNK];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} tls_scratch SEC(".maps");

/* Counters for -v and tests. */
enum {
	STAT_CALLS,      /* returns that moved bytes */
	STAT_EMPTY,      /* returns that moved none (errors, WANT_READ, EOF) */
	STAT_NESTED,     /* entries skipped: nested inside another probed call */
	STAT_FAULTS,     /* chunks with bytes that could not be read */
	STAT_RECORDS,    /* records written to the ring */
	STAT_TRUNCATED,  /* calls cut by max_bytes */
	STAT_HINTS,
	STAT_NSS_OTHER,  /* NSPR calls on descriptors without NSS's SSL layer (files, plain sockets): skipped */
	STAT_NSS_BUSY,   /* NSPR calls whose SSL layer could not be confirmed (the memory map was busy): missed */
	STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tls_stats SEC(".maps");

static __always_inline void stat_add(__u32 which, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&tls_stats, &which);
	if (v)
		*v += n;
}

/* ---- sockets ---------------------------------------------------------------------------- */

static __always_inline int record_io(const struct sock *sk, __u8 direction)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (!bpf_map_lookup_elem(&tls_pids, &tgid))
		return 0;
	struct tls_thread_io io;
	__builtin_memset(&io, 0, sizeof(io));
	if (!tlscope_tuple_from_sock(sk, &io.tuple) || io.tuple.protocol != IPPROTO_TCP)
		return 0;
	io.ts_ns = bpf_ktime_get_ns();
	io.direction = direction;
	__u32 tid = (__u32)id;
	bpf_map_update_elem(&tls_thread_io, &tid, &io, BPF_ANY);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(tls_sock_send, struct sock *sk, int ret, int flags)
{
	return record_io(sk, TLS_DIR_WRITE);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tls_sock_recv, struct sock *sk, int ret, int flags)
{
	return record_io(sk, TLS_DIR_READ);
}

/* Before Linux 6.3 (no sock_*_length tracepoints): the socket behind the fd of read/write/
 * send/recv system calls, through the task's fd table (tlscope_sock_of_fd, bpf/include/sock.h,
 * shared with trace sni's pre-6.16 owner hook). */
static __always_inline int record_fd_io(long fd, __u8 direction)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&tls_pids, &tgid))
		return 0;
	const struct sock *sk = tlscope_sock_of_fd(fd);
	return sk ? record_io(sk, direction) : 0;
}

#define TLS_SYSCALL_IO(name, direction)                                  \
	SEC("tp/syscalls/sys_enter_" #name)                              \
	int tls_sys_##name(struct trace_event_raw_sys_enter *ctx)        \
	{                                                                \
		return record_fd_io((long)ctx->args[0], direction);      \
	}

TLS_SYSCALL_IO(write, TLS_DIR_WRITE)
TLS_SYSCALL_IO(writev, TLS_DIR_WRITE)
TLS_SYSCALL_IO(sendto, TLS_DIR_WRITE)
TLS_SYSCALL_IO(sendmsg, TLS_DIR_WRITE)
TLS_SYSCALL_IO(read, TLS_DIR_READ)
TLS_SYSCALL_IO(readv, TLS_DIR_READ)
TLS_SYSCALL_IO(recvfrom, TLS_DIR_READ)
TLS_SYSCALL_IO(recvmsg, TLS_DIR_READ)

/* The tuple of a call's connection, and how it was found (enum tls_tuple_source). */
static __always_inline __u8 resolve_tuple(__u32 tgid, __u32 tid, const struct tls_call *call, __u64 now, struct tlscope_tuple *out)
{
	struct tls_thread_io *io = bpf_map_lookup_elem(&tls_thread_io, &tid);
	struct tls_conn_key ck = { .tgid = tgid, .pad = 0, .conn = call->conn };
	struct tls_conn fresh;
	__builtin_memset(&fresh, 0, sizeof(fresh));
	if (io && io->ts_ns >= call->start_ns) {
		*out = io->tuple;
		fresh.tuple = io->tuple;
		fresh.ts_ns = now;
		fresh.strong = 1;
		bpf_map_update_elem(&tls_conns, &ck, &fresh, BPF_ANY);
		return TLS_TUPLE_CALL;
	}
	struct tls_conn *known = bpf_map_lookup_elem(&tls_conns, &ck);
	if (known && known->strong) {
		*out = known->tuple;
		return TLS_TUPLE_SESSION;
	}
	/* memory-BIO stacks feed a read call right after receiving on the same thread */
	if (io && call->direction == TLS_DIR_READ && io->direction == TLS_DIR_READ && now - io->ts_ns < infer_window_ns) {
		*out = io->tuple;
		fresh.tuple = io->tuple;
		fresh.ts_ns = now;
		bpf_map_update_elem(&tls_conns, &ck, &fresh, BPF_ANY);
		return TLS_TUPLE_THREAD;
	}
	if (known) {
		*out = known->tuple;
		return TLS_TUPLE_THREAD;
	}
	if (io) {
		*out = io->tuple;
		fresh.tuple = io->tuple;
		fresh.ts_ns = now;
		bpf_map_update_elem(&tls_conns, &ck, &fresh, BPF_NOEXIST);
		return TLS_TUPLE_THREAD;
	}
	return TLS_TUPLE_NONE;
}

/* ---- emitting a call's plaintext ---------------------------------------------------------- */

struct emit_ctx {
	__u64 buf;
	__u32 captured;
	__u32 faults;
	__u32 base_off; /* offset in the call of buf's first byte (a vectored call's segment) */
	__u32 pad;
};

static long emit_chunk(__u32 i, struct emit_ctx *ec)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&tls_scratch, &zero);
	if (!s)
		return 1;
	__u64 off = (__u64)i * TLS_CHUNK;
	if (off >= ec->captured)
		return 1;
	__u64 len = ec->captured - off;
	if (len > TLS_CHUNK)
		len = TLS_CHUNK;
	barrier_var(len);
	if (len == 0 || len > TLS_CHUNK)
		return 1;
	s->hdr.offset = ec->base_off + off;
	s->hdr.chunk_len = len;
	if (bpf_probe_read_user(s->data, len, (const void *)(ec->buf + off)) < 0) {
		s->hdr.flags |= TLS_F_FAULT;
		ec->faults++;
	}
	if (bpf_ringbuf_output(&events, s, sizeof(s->hdr) + len, BPF_RB_NO_WAKEUP) < 0) {
		tlscope_count_lost();
		return 0; /* later chunks may still fit: user space sees the hole */
	}
	stat_add(STAT_RECORDS, 1);
	return 0;
}

/* Segments of a vectored call (rustls Writer::write_vectored) emitted at most; bytes past them
 * are not captured and show as missing bytes (lostBytes) of the call. */
#define TLS_MAX_IOV 8

static __always_inline int emit_call(const struct tls_call *call, __u32 tgid, __u32 tid, __u64 moved)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&tls_scratch, &zero);
	if (!s)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	struct tls_event *h = &s->hdr;
	__builtin_memset(h, 0, sizeof(*h));
	h->ts_ns = now;
	h->start_ns = call->start_ns;
	h->conn_id = call->conn;
	struct task_struct *task = bpf_get_current_task_btf();
	tlscope_proc_fill(&h->proc, BPF_CORE_READ(task, nsproxy, net_ns, ns.inum)); /* tgid, tid: the current thread's */
	h->tuple_source = resolve_tuple(tgid, tid, call, now, &h->tuple);
	if (moved > 0xffffffffULL)
		moved = 0xffffffffULL;
	__u32 captured = moved;
	if (captured > max_bytes) {
		captured = max_bytes;
		h->flags |= TLS_F_TRUNCATED;
		stat_add(STAT_TRUNCATED, 1);
	}
	h->total_len = moved;
	h->captured_len = captured;
	h->file_id = call->file_id;
	h->source = call->source;
	h->func = call->func;
	h->direction = call->direction;
	if (call->flags & TLS_CALL_KTLS)
		h->flags |= TLS_F_KTLS;
	stat_add(STAT_CALLS, 1);
	if (captured == 0)
		return 0;
	if (call->func == TLS_FN_RUSTLS_WRITEV) {
		/* buf: an iovec (IoSlice) array of outlen entries; each segment its own chunks */
		__u32 done = 0;
		for (__u32 j = 0; j < TLS_MAX_IOV; j++) {
			__u64 v[2] = {};
			if (j >= call->outlen || done >= captured || bpf_probe_read_user(v, sizeof(v), (const void *)(call->buf + (__u64)j * 16)) < 0)
				break;
			__u32 n = captured - done;
			if (v[1] < n)
				n = v[1];
			struct emit_ctx seg = { .buf = v[0], .captured = n, .faults = 0, .base_off = done };
			bpf_loop((n + TLS_CHUNK - 1) / TLS_CHUNK, emit_chunk, &seg, 0);
			if (seg.faults)
				stat_add(STAT_FAULTS, seg.faults);
			done += n;
		}
		return 0;
	}
	struct emit_ctx ec = { .buf = call->buf, .captured = captured, .faults = 0, .base_off = 0 };
	bpf_loop((captured + TLS_CHUNK - 1) / TLS_CHUNK, emit_chunk, &ec, 0);
	if (ec.faults)
		stat_add(STAT_FAULTS, ec.faults);
	return 0;
}

static __always_inline void note_pid(__u32 tgid)
{
	if (bpf_map_lookup_elem(&tls_pids, &tgid))
		return;
	__u8 one = 1;
	bpf_map_update_elem(&tls_pids, &tgid, &one, BPF_NOEXIST);
}

/* ---- C libraries: entry uprobes, one uretprobe ------------------------------------------- */

static __always_inline int enter_c(struct pt_regs *ctx, __u8 source, __u8 func, __u8 direction, __u64 conn, __u64 buf, __u64 outlen)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call_key k = { .tgid = id >> 32, .tid = (__u32)id, .goid = 0 };
	__u64 sp = PT_REGS_SP(ctx);
	struct tls_call *outer = bpf_map_lookup_elem(&tls_calls, &k);
	/* an internal function entered from an exported one, by call or by tail jump (equal sp) */
	int internal = func == TLS_FN_SSL_WRITE_INTERNAL || func == TLS_FN_SSL_READ_INTERNAL;
	if (outer && (sp < outer->sp || (internal && sp == outer->sp))) {
		stat_add(STAT_NESTED, 1); /* called from inside a probed call: the outer one reports */
		return 0;
	}
	struct tls_call c;
	__builtin_memset(&c, 0, sizeof(c));
	c.start_ns = bpf_ktime_get_ns();
	c.conn = conn;
	c.buf = buf;
	c.outlen = outlen;
	c.sp = sp;
	c.source = source;
	c.func = func;
	c.direction = direction;
	c.file_id = bpf_get_attach_cookie(ctx);
	bpf_map_update_elem(&tls_calls, &k, &c, BPF_ANY);
	note_pid(k.tgid);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(tls_ssl_write, void *ssl, const void *buf, int num)
{
	return enter_c(ctx, TLS_SRC_OPENSSL, TLS_FN_SSL_WRITE, TLS_DIR_WRITE, (__u64)ssl, (__u64)buf, 0);
}

SEC("uprobe")
int BPF_KPROBE(tls_ssl_read, void *ssl, void *buf, int num)
{
	return enter_c(ctx, TLS_SRC_OPENSSL, TLS_FN_SSL_READ, TLS_DIR_READ, (__u64)ssl, (__u64)buf, 0);
}

SEC("uprobe")
int BPF_KPROBE(tls_ssl_write_ex, void *ssl, const void *buf, __u64 num, __u64 *written)
{
	return enter_c(ctx, TLS_SRC_OPENSSL, TLS_FN_SSL_WRITE_EX, TLS_DIR_WRITE, (__u64)ssl, (__u64)buf, (__u64)written);
}

SEC("uprobe")
int BPF_KPROBE(tls_ssl_read_ex, void *ssl, void *buf, __u64 num, __u64 *readbytes)
{
	return enter_c(ctx, TLS_SRC_OPENSSL, TLS_FN_SSL_READ_EX, TLS_DIR_READ, (__u64)ssl, (__u64)buf, (__u64)readbytes);
}

SEC("uprobe")
int BPF_KPROBE(tls_ssl_write_int, void *ssl, const void *buf, __u64 num, __u64 *written)
{
	return enter_c(ctx, TLS_SRC_OPENSSL, TLS_FN_SSL_WRITE_INTERNAL, TLS_DIR_WRITE, (__u64)ssl, (__u64)buf, (__u64)written);
}

SEC("uprobe")
int BPF_KPROBE(tls_ssl_read_int, void *ssl, void *buf, __u64 num, __u64 *readbytes)
{
	return enter_c(ctx, TLS_SRC_OPENSSL, TLS_FN_SSL_READ_INTERNAL, TLS_DIR_READ, (__u64)ssl, (__u64)buf, (__u64)readbytes);
}

SEC("uprobe")
int BPF_KPROBE(tls_gnutls_send, void *session, const void *data, __u64 size)
{
	return enter_c(ctx, TLS_SRC_GNUTLS, TLS_FN_GNUTLS_SEND, TLS_DIR_WRITE, (__u64)session, (__u64)data, 0);
}

SEC("uprobe")
int BPF_KPROBE(tls_gnutls_recv, void *session, void *data, __u64 size)
{
	return enter_c(ctx, TLS_SRC_GNUTLS, TLS_FN_GNUTLS_RECV, TLS_DIR_READ, (__u64)session, (__u64)data, 0);
}

/* rustls (src/gadgets/tls/rustls.ts): self is &mut Writer { sink: &mut dyn PlaintextSink } or
 * &mut Reader { received_plaintext: &mut ChunkVecBuffer, .. }; its first word names the session. */
static __always_inline int enter_rustls(struct pt_regs *ctx, __u8 func, __u8 direction)
{
	__u64 conn = 0;
	bpf_probe_read_user(&conn, sizeof(conn), (const void *)PT_REGS_PARM1(ctx));
	/* write_vectored: (self, bufs.ptr, bufs.len): the count rides in outlen */
	return enter_c(ctx, TLS_SRC_RUSTLS, func, direction, conn, PT_REGS_PARM2(ctx), func == TLS_FN_RUSTLS_WRITEV ? PT_REGS_PARM3(ctx) : 0);
}

SEC("uprobe")
int tls_rustls_writev(struct pt_regs *ctx)
{
	return enter_rustls(ctx, TLS_FN_RUSTLS_WRITEV, TLS_DIR_WRITE);
}

SEC("uprobe")
int tls_rustls_write(struct pt_regs *ctx)
{
	return enter_rustls(ctx, TLS_FN_RUSTLS_WRITE, TLS_DIR_WRITE);
}

SEC("uprobe")
int tls_rustls_read(struct pt_regs *ctx)
{
	return enter_rustls(ctx, TLS_FN_RUSTLS_READ, TLS_DIR_READ);
}

/* ---- NSS: NSPR's PR_Write/PR_Read/PR_Send/PR_Recv, on SSL descriptors only ------------------
 *
 * NSS encrypts inside an NSPR I/O layer: the application calls PR_Write(fd, …) on a descriptor
 * (PRFileDesc) whose stack of layers holds NSS's SSL layer, and that layer's methods encrypt and
 * call the layer below it directly (never back through PR_Write). The same four functions serve
 * every other NSPR descriptor too (files, pipes, plain sockets), so a call is taken only when one
 * of the descriptor's top layers is NSS's: a layer whose write method is code of libssl3.so (the
 * SSL layer's method table, filled at run time, points into it). The layer ids NSPR hands out are
 * assigned at run time and its method tables sit in NSS's .bss, so neither can be known from the
 * files; the mapping that holds the method is, through bpf_find_vma. Confirmed methods are kept
 * per process (dropped at its exec and exit), so the walk costs one lookup after the first call.
 *
 * PRFileDesc (NSPR's prio.h, unchanged since NSPR 4.0): methods @0, secret @8, lower @16,
 * higher @24, dtor @32, identity @40. PRIOMethods: file_type (PRDescType, 4 bytes, padded)
 * @0, close @8, read @16, write @24. */
#define NSS_MAX_LAYERS 4
#define NSS_FD_LOWER 16
#define NSS_METHOD_WRITE 24
#define NSS_EBUSY 16

struct nss_method_key {
	__u32 tgid;
	__u32 pad;
	__u64 method;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct nss_method_key);
	__type(value, __u8);
} tls_nss_methods SEC(".maps");

struct nss_vma_ctx {
	__u8 ssl;
};

static long nss_vma_cb(struct task_struct *task, struct vm_area_struct *vma, struct nss_vma_ctx *c)
{
	static const char want[] = "libssl3.so";
	char name[sizeof(want)] = {};
	const unsigned char *n = BPF_CORE_READ(vma, vm_file, f_path.dentry, d_name.name);
	if (!n || bpf_probe_read_kernel_str(name, sizeof(name), n) != sizeof(want))
		return 0;
#pragma unroll
	for (int i = 0; i < sizeof(want) - 1; i++)
		if (name[i] != want[i])
			return 0;
	c->ssl = 1;
	return 0;
}

/* The descriptor's SSL layer (the session's id), or 0: not an SSL descriptor (or not confirmed). */
static __always_inline __u64 nss_ssl_layer(__u64 fd)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct task_struct *task = bpf_get_current_task_btf();
	int busy = 0;
#pragma unroll
	for (int i = 0; i < NSS_MAX_LAYERS; i++) {
		__u64 methods = 0, write = 0;
		if (!fd || bpf_probe_read_user(&methods, sizeof(methods), (const void *)fd) < 0 || !methods)
			break;
		if (bpf_probe_read_user(&write, sizeof(write), (const void *)(methods + NSS_METHOD_WRITE)) < 0)
			break;
		if (write) {
			struct nss_method_key k = { .tgid = tgid, .pad = 0, .method = write };
			if (bpf_map_lookup_elem(&tls_nss_methods, &k))
				return fd;
			struct nss_vma_ctx c = { .ssl = 0 };
			if (bpf_find_vma(task, write, nss_vma_cb, &c, 0) == -NSS_EBUSY)
				busy = 1;
			if (c.ssl) {
				__u8 one = 1;
				bpf_map_update_elem(&tls_nss_methods, &k, &one, BPF_ANY);
				return fd;
			}
		}
		if (bpf_probe_read_user(&fd, sizeof(fd), (const void *)(fd + NSS_FD_LOWER)) < 0)
			break;
	}
	stat_add(busy ? STAT_NSS_BUSY : STAT_NSS_OTHER, 1);
	return 0;
}

static __always_inline int enter_nss(struct pt_regs *ctx, __u8 func, __u8 direction)
{
	__u64 layer = nss_ssl_layer(PT_REGS_PARM1(ctx));
	if (!layer)
		return 0;
	return enter_c(ctx, TLS_SRC_NSS, func, direction, layer, PT_REGS_PARM2(ctx), 0);
}

/* PR_Write(fd, buf, amount), PR_Read(fd, buf, amount), PR_Send/PR_Recv(fd, buf, amount, flags, timeout) */
SEC("uprobe")
int tls_nss_write(struct pt_regs *ctx)
{
	return enter_nss(ctx, TLS_FN_NSS_WRITE, TLS_DIR_WRITE);
}

SEC("uprobe")
int tls_nss_read(struct pt_regs *ctx)
{
	return enter_nss(ctx, TLS_FN_NSS_READ, TLS_DIR_READ);
}

SEC("uprobe")
int tls_nss_send(struct pt_regs *ctx)
{
	return enter_nss(ctx, TLS_FN_NSS_SEND, TLS_DIR_WRITE);
}

SEC("uprobe")
int tls_nss_recv(struct pt_regs *ctx)
{
	return enter_nss(ctx, TLS_FN_NSS_RECV, TLS_DIR_READ);
}

SEC("uretprobe")
int tls_lib_ret(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call_key k = { .tgid = id >> 32, .tid = (__u32)id, .goid = 0 };
	struct tls_call *c = bpf_map_lookup_elem(&tls_calls, &k);
	if (!c)
		return 0;
	/* A nested call returns with the stack pointer at or below the outer call's entry. */
	if (PT_REGS_SP(ctx) <= c->sp)
		return 0;
	struct tls_call call = *c;
	bpf_map_delete_elem(&tls_calls, &k);
	__u64 moved = 0;
	if (call.func == TLS_FN_SSL_WRITE_EX || call.func == TLS_FN_SSL_READ_EX ||
	    call.func == TLS_FN_SSL_WRITE_INTERNAL || call.func == TLS_FN_SSL_READ_INTERNAL) {
		/* _ex: 1 on success; the internal ones: > 0 (what the method's read/write said) */
		if ((int)PT_REGS_RC(ctx) <= 0)
			goto empty;
		if (bpf_probe_read_user(&moved, sizeof(moved), (const void *)call.outlen) < 0)
			goto empty;
	} else if (call.func == TLS_FN_RUSTLS_WRITE || call.func == TLS_FN_RUSTLS_READ || call.func == TLS_FN_RUSTLS_WRITEV) {
		/* io::Result<usize>: the tag in RAX (0: Ok), the count in RDX */
		if ((__u8)PT_REGS_RC(ctx) != 0)
			goto empty;
		moved = ctx->dx;
	} else if (call.func == TLS_FN_SSL_WRITE || call.func == TLS_FN_SSL_READ ||
		   (call.func >= TLS_FN_NSS_WRITE && call.func <= TLS_FN_NSS_RECV)) {
		/* int / PRInt32 */
		int r = (int)PT_REGS_RC(ctx);
		if (r <= 0)
			goto empty;
		moved = r;
	} else {
		long r = (long)PT_REGS_RC(ctx); /* ssize_t */
		if (r <= 0)
			goto empty;
		moved = r;
	}
	if (moved == 0)
		goto empty;
	return emit_call(&call, k.tgid, k.tid, moved);
empty:
	stat_add(STAT_EMPTY, 1);
	return 0;
}

/* ---- Go crypto/tls ------------------------------------------------------------------------ */

/* g of the stack ABI (Go < 1.17 on amd64): the TLS slot at fs_base - 8. */
static __always_inline __u64 go_g_from_tls(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 fsbase = BPF_CORE_READ(task, thread.fsbase);
	__u64 g = 0;
	if (fsbase == 0 || bpf_probe_read_user(&g, sizeof(g), (const void *)(fsbase - 8)) < 0)
		return 0;
	return g;
}

static __always_inline int go_enter(void *ctx, __u64 g, __u64 conn, __u64 buf, __u8 func, __u8 direction)
{
	if (g == 0)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call_key k = { .tgid = id >> 32, .tid = 0, .goid = g };
	struct tls_call c;
	__builtin_memset(&c, 0, sizeof(c));
	c.start_ns = bpf_ktime_get_ns();
	c.conn = conn;
	c.buf = buf;
	c.source = TLS_SRC_GO;
	c.func = func;
	c.direction = direction;
	c.file_id = bpf_get_attach_cookie(ctx);
	bpf_map_update_elem(&tls_calls, &k, &c, BPF_ANY); /* a re-entry after stack growth overwrites */
	note_pid(k.tgid);
	return 0;
}

static __always_inline int go_return(__u64 g, long n)
{
	if (g == 0)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call_key k = { .tgid = id >> 32, .tid = 0, .goid = g };
	struct tls_call *c = bpf_map_lookup_elem(&tls_calls, &k);
	if (!c)
		return 0;
	struct tls_call call = *c;
	bpf_map_delete_elem(&tls_calls, &k);
	if (n <= 0) {
		stat_add(STAT_EMPTY, 1);
		return 0;
	}
	return emit_call(&call, k.tgid, (__u32)id, n);
}

/* Register ABI (Go >= 1.17): receiver in RAX, b.ptr in RBX, b.len in RCX; n back in RAX; g in R14. */
SEC("uprobe")
int tls_go_write_reg(struct pt_regs *ctx)
{
	return go_enter(ctx, ctx->r14, ctx->ax, ctx->bx, TLS_FN_GO_WRITE, TLS_DIR_WRITE);
}

SEC("uprobe")
int tls_go_read_reg(struct pt_regs *ctx)
{
	return go_enter(ctx, ctx->r14, ctx->ax, ctx->bx, TLS_FN_GO_READ, TLS_DIR_READ);
}

SEC("uprobe")
int tls_go_ret_reg(struct pt_regs *ctx)
{
	return go_return(ctx->r14, (long)ctx->ax);
}

/* Stack ABI0 (Go < 1.17): at entry and at RET the stack holds the return address, then the
 * receiver (sp+8), b.ptr (+16), b.len (+24), b.cap (+32), then the results n (+40), err. */
SEC("uprobe")
int tls_go_write_stack(struct pt_regs *ctx)
{
	__u64 args[2] = {};
	if (bpf_probe_read_user(args, sizeof(args), (const void *)(ctx->sp + 8)) < 0)
		return 0;
	return go_enter(ctx, go_g_from_tls(), args[0], args[1], TLS_FN_GO_WRITE, TLS_DIR_WRITE);
}

SEC("uprobe")
int tls_go_read_stack(struct pt_regs *ctx)
{
	__u64 args[2] = {};
	if (bpf_probe_read_user(args, sizeof(args), (const void *)(ctx->sp + 8)) < 0)
		return 0;
	return go_enter(ctx, go_g_from_tls(), args[0], args[1], TLS_FN_GO_READ, TLS_DIR_READ);
}

SEC("uprobe")
int tls_go_ret_stack(struct pt_regs *ctx)
{
	long n = 0;
	if (bpf_probe_read_user(&n, sizeof(n), (const void *)(ctx->sp + 40)) < 0)
		return 0;
	return go_return(go_g_from_tls(), n);
}

/* ---- process life ------------------------------------------------------------------------- */

static long drop_call_of(struct bpf_map *map, struct tls_call_key *k, struct tls_call *v, __u32 *tgid)
{
	if (k->tgid == *tgid)
		bpf_map_delete_elem(map, k);
	return 0;
}

static long drop_conn_of(struct bpf_map *map, struct tls_conn_key *k, struct tls_conn *v, __u32 *tgid)
{
	if (k->tgid == *tgid)
		bpf_map_delete_elem(map, k);
	return 0;
}

static long drop_nss_of(struct bpf_map *map, struct nss_method_key *k, __u8 *v, __u32 *tgid)
{
	if (k->tgid == *tgid)
		bpf_map_delete_elem(map, k);
	return 0;
}

/* A thread exits: forget its call and socket; the last thread of a process: everything of it. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(tls_exit, struct task_struct *p)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__u32 tid = (__u32)id;
	if (!bpf_map_lookup_elem(&tls_pids, &tgid))
		return 0;
	struct tls_call_key k = { .tgid = tgid, .tid = tid, .goid = 0 };
	bpf_map_delete_elem(&tls_calls, &k);
	bpf_map_delete_elem(&tls_thread_io, &tid);
	struct task_struct *task = bpf_get_current_task_btf();
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	bpf_for_each_map_elem(&tls_calls, drop_call_of, &tgid, 0);
	bpf_for_each_map_elem(&tls_conns, drop_conn_of, &tgid, 0);
	bpf_for_each_map_elem(&tls_nss_methods, drop_nss_of, &tgid, 0);
	bpf_map_delete_elem(&tls_pids, &tgid);
	bpf_map_delete_elem(&tls_hinted, &tgid);
	return 0;
}

static __always_inline int hint(__u32 kind)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 now = bpf_ktime_get_ns();
	__u64 *last = bpf_map_lookup_elem(&tls_hinted, &tgid);
	if (kind == TLS_HINT_MMAP && last && now - *last < hint_interval_ns)
		return 0;
	bpf_map_update_elem(&tls_hinted, &tgid, &now, BPF_ANY);
	struct tls_hint *h = tlscope_reserve(&hints, sizeof(*h));
	if (!h)
		return 0;
	h->pid = tgid;
	h->kind = kind;
	tlscope_submit(h);
	stat_add(STAT_HINTS, 1);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(tls_exec, struct task_struct *p)
{
	/* a new program: NSS methods confirmed in the old one's memory map say nothing any more */
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (bpf_map_lookup_elem(&tls_pids, &tgid))
		bpf_for_each_map_elem(&tls_nss_methods, drop_nss_of, &tgid, 0);
	return hint(TLS_HINT_EXEC);
}

SEC("tp/syscalls/sys_enter_mmap")
int tls_mmap(struct trace_event_raw_sys_enter *ctx)
{
	if (!(ctx->args[2] & PROT_EXEC) || (long)ctx->args[4] < 0)
		return 0;
	return hint(TLS_HINT_MMAP);
}
