// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* trace tls, kTLS source: the plaintext of kernel TLS sockets, where the kernel's software TLS
 * layer takes it from or gives it to the process.
 *
 * - TX: tls_sw_sendmsg (write/send/writev/sendmsg; since Linux 6.5 also sendfile and splice
 *   into the socket, as an ITER_BVEC of page-cache pages) and, before 6.5, tls_sw_sendpage
 *   (sendfile/splice: one page at a time, read through the page's kernel address).
 * - RX: tls_sw_recvmsg and tls_sw_splice_read (the plaintext pages it put into the pipe).
 * - Entry remembers the call (iterator, control buffer, socket) by thread; exit reads
 *   min(return value, max_bytes) bytes: every segment of UBUF, IOVEC, KVEC and BVEC iterators,
 *   whose type numbers and field names (iov / __iov) differ between kernels: CO-RE enum values
 *   and field checks. Records go out in the same struct tls_event as the library sources
 *   (bpf/include/tls.h), so user space assembles, truncates and counts them the same way.
 * - Only application data: a TLS_SET_RECORD_TYPE control message (TX) or the
 *   TLS_GET_RECORD_TYPE one the kernel writes back (RX) naming another record type (handshake
 *   Finished, NewSessionTicket, alerts such as close_notify) drops the call (counted).
 * - One object for both hook kinds: fentry/fexit programs where BPF trampolines load, kprobe/
 *   kretprobe programs otherwise; user space loads one set.
 * - Filters (pid, mount namespace, cgroup) are checked at entry, in the kernel. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tlscope.h"
#include "tls.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TLS_F_FAULT 2
#define SOL_TLS 282
#define TLS_SET_RECORD_TYPE 1
#define TLS_GET_RECORD_TYPE 2
#define TLS_RECORD_APPLICATION_DATA 23
#define MSG_PEEK 2
#define KT_PAGE_SHIFT 12

const volatile __u32 max_bytes = 4 << 20;
/* tlscope's own process: never traced */
const volatile __u32 self_tgid = 0;
/* 1: only the tgids / mount namespaces / cgroups in the maps below */
const volatile __u8 filter_pids = 0;
const volatile __u8 filter_mntns = 0;
const volatile __u8 filter_cgroups = 0;

TLSCOPE_RINGBUF(events, 1 << 24);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} ktls_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} ktls_mntns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} ktls_cgroups SEC(".maps");

/* The library sources' calls in progress (bpf/tls.bpf.c's map, shared by user space when both
 * run): bytes a probed SSL_write/SSL_read moves through kTLS are reported once, by the library
 * call, marked TLS_CALL_KTLS here ("openssl+ktls"). Alone, this map stays empty. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_call_key);
	__type(value, struct tls_call);
} tls_calls SEC(".maps");

/* How the bytes of a call are laid out. */
enum kt_kind {
	KT_NONE = 0,
	KT_UBUF = 1,  /* one user buffer */
	KT_IOVEC = 2, /* an array of struct iovec (user buffers) */
	KT_KVEC = 3,  /* an array of struct kvec (kernel buffers) */
	KT_BVEC = 4,  /* an array of struct bio_vec (pages) */
	KT_PAGE = 5,  /* one page + offset (tls_sw_sendpage) */
	KT_PIPE = 6,  /* the pipe buffers a splice added */
};

/* A call in progress, by thread. */
struct kt_call {
	__u64 start_ns;
	__u64 sk;
	__u64 msg;      /* struct msghdr * (sendmsg/recvmsg) */
	__u64 base;     /* user address, array, page or pipe bufs (enum kt_kind) */
	__u64 seg_off;  /* offset into the first segment */
	__u64 ctl;      /* RX: msg_control at entry */
	__u64 ctllen;   /* RX: msg_controllen at entry */
	__u64 pipe;     /* splice: the pipe */
	__u32 nr_segs;
	__u32 first;    /* splice: pipe head at entry */
	__u8 kind;
	__u8 func;
	__u8 direction;
	__u8 ctl_user;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct kt_call);
} ktls_calls SEC(".maps");

struct scratch {
	struct tls_event hdr;
	__u8 data[TLS_CHUNK];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} ktls_scratch SEC(".maps");

enum {
	STAT_CALLS,     /* returns that moved application data */
	STAT_EMPTY,     /* returns that moved nothing (errors, EAGAIN, EOF) */
	STAT_CONTROL,   /* calls carrying a non-data record (handshake, alert): not shown */
	STAT_PEEK,      /* MSG_PEEK reads: the bytes come again */
	STAT_FAULTS,    /* records with bytes that could not be read */
	STAT_RECORDS,   /* records written to the ring */
	STAT_TRUNCATED, /* calls cut by max_bytes */
	STAT_FILTERED,  /* entries out of the pid/mntns/cgroup filter */
	STAT_UNKNOWN,   /* iterators of another type (not read) */
	STAT_SHARED,    /* calls inside a probed library call: reported by it (openssl+ktls) */
	STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ktls_stats SEC(".maps");

static __always_inline void stat_add(__u32 which, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&ktls_stats, &which);
	if (v)
		*v += n;
}

/* Linux before 6.4 calls the iterator's segment array `iov` (since then `__iov`). */
struct iov_iter___old {
	const struct iovec *iov;
} __attribute__((preserve_access_index));

/* Page-cache and socket pages are read through the kernel's direct map (x86-64):
 * page_offset_base + (page - vmemmap_base) / sizeof(struct page) * PAGE_SIZE. */
extern const void vmemmap_base __ksym __weak;
extern const void page_offset_base __ksym __weak;

/* A typed pointer argument as a plain number (fentry refuses arithmetic on it). */
static __always_inline __u64 as_scalar(const void *p)
{
	__u64 v = 0;
	bpf_probe_read_kernel(&v, sizeof(v), &p);
	return v;
}

static __always_inline __u64 page_address(__u64 page)
{
	__u64 vmemmap = 0, direct = 0;
	if (!&vmemmap_base || !&page_offset_base || !page)
		return 0;
	if (bpf_probe_read_kernel(&vmemmap, sizeof(vmemmap), &vmemmap_base) < 0 ||
	    bpf_probe_read_kernel(&direct, sizeof(direct), &page_offset_base) < 0)
		return 0;
	__u64 size = bpf_core_type_size(struct page);
	if (!size || page < vmemmap)
		return 0;
	return direct + ((page - vmemmap) / size << KT_PAGE_SHIFT);
}

/* Inside a probed library call moving bytes the same way: mark it, report nothing here. */
static __always_inline int inside_library_call(__u8 direction)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call_key k = { .tgid = id >> 32, .tid = (__u32)id, .goid = 0 };
	struct tls_call *lc = bpf_map_lookup_elem(&tls_calls, &k);
	if (!lc || lc->direction != direction)
		return 0;
	lc->flags |= TLS_CALL_KTLS;
	stat_add(STAT_SHARED, 1);
	return 1;
}

static __always_inline int wanted(void)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (tgid == self_tgid)
		return 0;
	if (filter_pids && !bpf_map_lookup_elem(&ktls_pids, &tgid))
		goto out;
	if (filter_mntns) {
		struct task_struct *task = bpf_get_current_task_btf();
		__u32 mntns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
		if (!bpf_map_lookup_elem(&ktls_mntns, &mntns))
			goto out;
	}
	if (filter_cgroups) {
		__u64 cg = bpf_get_current_cgroup_id();
		if (!bpf_map_lookup_elem(&ktls_cgroups, &cg))
			goto out;
	}
	return 1;
out:
	stat_add(STAT_FILTERED, 1);
	return 0;
}

/* Reads a control message buffer (kernel or user memory). */
static __always_inline int ctl_read(void *dst, __u32 n, __u64 src, int user)
{
	return user ? bpf_probe_read_user(dst, n, (const void *)src) : bpf_probe_read_kernel(dst, n, (const void *)src);
}

struct kt_cmsghdr {
	__u64 len;
	__s32 level;
	__s32 type;
};

/* TX: the record type a TLS_SET_RECORD_TYPE control message asks for (application data when none). */
static __always_inline __u8 tx_record_type(struct msghdr *msg)
{
	__u64 len = BPF_CORE_READ(msg, msg_controllen);
	if (len < sizeof(struct kt_cmsghdr))
		return TLS_RECORD_APPLICATION_DATA;
	__u64 ctl = (__u64)BPF_CORE_READ(msg, msg_control);
	int user = 0;
	if (bpf_core_field_exists(msg->msg_control_is_user))
		user = BPF_CORE_READ_BITFIELD_PROBED(msg, msg_control_is_user);
	__u64 pos = 0;
	for (int i = 0; i < 4; i++) {
		struct kt_cmsghdr h = {};
		if (pos + sizeof(h) > len || ctl_read(&h, sizeof(h), ctl + pos, user) < 0 || h.len < sizeof(h))
			break;
		if (h.level == SOL_TLS && h.type == TLS_SET_RECORD_TYPE) {
			__u8 t = TLS_RECORD_APPLICATION_DATA;
			ctl_read(&t, 1, ctl + pos + sizeof(h), user);
			return t;
		}
		pos += (h.len + 7) & ~7ULL;
	}
	return TLS_RECORD_APPLICATION_DATA;
}

/* Fills the call's layout from a msghdr's iterator; 0 for an iterator type it does not read. */
static __always_inline int from_iter(struct kt_call *c, struct msghdr *msg)
{
	struct iov_iter *it = &msg->msg_iter;
	__u8 type = BPF_CORE_READ(it, iter_type);
	c->seg_off = BPF_CORE_READ(it, iov_offset);
	c->nr_segs = BPF_CORE_READ(it, nr_segs);
	if (bpf_core_enum_value_exists(enum iter_type, ITER_UBUF) && type == bpf_core_enum_value(enum iter_type, ITER_UBUF)) {
		c->kind = KT_UBUF;
		c->base = (__u64)BPF_CORE_READ(it, ubuf) + c->seg_off;
		c->seg_off = 0;
		c->nr_segs = 1;
		return 1;
	}
	__u64 array;
	if (bpf_core_field_exists(it->__iov))
		array = (__u64)BPF_CORE_READ(it, __iov);
	else
		array = (__u64)BPF_CORE_READ((struct iov_iter___old *)it, iov);
	c->base = array;
	if (type == bpf_core_enum_value(enum iter_type, ITER_IOVEC))
		c->kind = KT_IOVEC;
	else if (type == bpf_core_enum_value(enum iter_type, ITER_KVEC))
		c->kind = KT_KVEC;
	else if (type == bpf_core_enum_value(enum iter_type, ITER_BVEC))
		c->kind = KT_BVEC;
	else
		return 0;
	return 1;
}

static __always_inline struct kt_call *new_call(__u32 *tid)
{
	__u64 id = bpf_get_current_pid_tgid();
	*tid = (__u32)id;
	struct kt_call c;
	__builtin_memset(&c, 0, sizeof(c));
	bpf_map_update_elem(&ktls_calls, tid, &c, BPF_ANY);
	return bpf_map_lookup_elem(&ktls_calls, tid);
}

static __always_inline int enter_msg(struct sock *sk, struct msghdr *msg, int flags, __u8 func, __u8 direction)
{
	if (direction == TLS_DIR_WRITE && tx_record_type(msg) != TLS_RECORD_APPLICATION_DATA) {
		stat_add(STAT_CONTROL, 1);
		return 0;
	}
	if (inside_library_call(direction) || !wanted())
		return 0;
	if (direction == TLS_DIR_READ && (flags & MSG_PEEK)) {
		stat_add(STAT_PEEK, 1);
		return 0;
	}
	__u32 tid;
	struct kt_call *c = new_call(&tid);
	if (!c)
		return 0;
	c->start_ns = bpf_ktime_get_ns();
	c->sk = as_scalar(sk);
	c->msg = as_scalar(msg);
	c->func = func;
	c->direction = direction;
	if (!from_iter(c, msg)) {
		stat_add(STAT_UNKNOWN, 1);
		c->kind = KT_NONE;
	}
	if (direction == TLS_DIR_READ) {
		c->ctl = (__u64)BPF_CORE_READ(msg, msg_control);
		c->ctllen = BPF_CORE_READ(msg, msg_controllen);
		if (bpf_core_field_exists(msg->msg_control_is_user))
			c->ctl_user = BPF_CORE_READ_BITFIELD_PROBED(msg, msg_control_is_user);
	}
	return 0;
}

static __always_inline int enter_page(struct sock *sk, struct page *page, int offset)
{
	if (inside_library_call(TLS_DIR_WRITE) || !wanted())
		return 0;
	__u32 tid;
	struct kt_call *c = new_call(&tid);
	if (!c)
		return 0;
	c->start_ns = bpf_ktime_get_ns();
	c->sk = as_scalar(sk);
	c->func = TLS_FN_KTLS_SENDPAGE;
	c->direction = TLS_DIR_WRITE;
	__u64 addr = page_address(as_scalar(page));
	c->kind = addr ? KT_PAGE : KT_NONE;
	c->base = addr + (__u32)offset;
	c->nr_segs = 1;
	return 0;
}

static __always_inline int enter_splice(struct socket *sock, struct pipe_inode_info *pipe)
{
	if (inside_library_call(TLS_DIR_READ) || !wanted())
		return 0;
	__u32 tid;
	struct kt_call *c = new_call(&tid);
	if (!c)
		return 0;
	c->start_ns = bpf_ktime_get_ns();
	c->sk = (__u64)BPF_CORE_READ(sock, sk);
	c->func = TLS_FN_KTLS_SPLICE_READ;
	c->direction = TLS_DIR_READ;
	c->kind = KT_PIPE;
	c->pipe = as_scalar(pipe);
	c->first = BPF_CORE_READ(pipe, head);
	return 0;
}

/* ---- reading the bytes ------------------------------------------------------------------ */

struct walk {
	__u64 base;
	__u64 seg_off;
	__u64 bufs;    /* KT_PIPE: pipe->bufs */
	__u32 seg;
	__u32 nr_segs;
	__u32 first;   /* KT_PIPE: head at entry */
	__u32 mask;    /* KT_PIPE: ring_size - 1 */
	__u32 off;     /* bytes given out so far */
	__u32 captured;
	__u32 faults;
	__u8 kind;
};

/* The walk's state lives in a map, not on the stack: the verifier then sees unknown values in
 * the bpf_loop callback and checks it once, instead of following each step's constants
 * ("the sequence of 8193 jumps is too complex" on Linux 6.18 with the state on the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct walk);
} ktls_walk SEC(".maps");

/* The current segment: its address, length, and whether it is user memory. */
static __always_inline int segment(struct walk *w, __u64 *addr, __u64 *len, int *user)
{
	*user = 0;
	switch (w->kind) {
	case KT_UBUF:
		*addr = w->base;
		*len = w->captured;
		*user = 1;
		return 1;
	case KT_PAGE:
		*addr = w->base;
		*len = w->captured;
		return 1;
	case KT_IOVEC:
	case KT_KVEC: {
		/* struct iovec and struct kvec are both { base, len } */
		struct iovec v = {};
		if (bpf_probe_read_kernel(&v, sizeof(v), (const void *)(w->base + (__u64)w->seg * sizeof(v))) < 0)
			return 0;
		*addr = (__u64)v.iov_base;
		*len = v.iov_len;
		*user = w->kind == KT_IOVEC;
		return 1;
	}
	case KT_BVEC: {
		struct bio_vec *bv = (struct bio_vec *)(w->base + (__u64)w->seg * bpf_core_type_size(struct bio_vec));
		__u64 a = page_address((__u64)BPF_CORE_READ(bv, bv_page));
		if (!a)
			return 0;
		*addr = a + BPF_CORE_READ(bv, bv_offset);
		*len = BPF_CORE_READ(bv, bv_len);
		return 1;
	}
	case KT_PIPE: {
		__u32 idx = (w->first + w->seg) & w->mask;
		struct pipe_buffer *pb = (struct pipe_buffer *)(w->bufs + (__u64)idx * bpf_core_type_size(struct pipe_buffer));
		__u64 a = page_address((__u64)BPF_CORE_READ(pb, page));
		if (!a)
			return 0;
		*addr = a + BPF_CORE_READ(pb, offset);
		*len = BPF_CORE_READ(pb, len);
		return 1;
	}
	}
	return 0;
}

static long walk_step(__u32 i, void *unused)
{
	__u32 zero = 0;
	struct walk *w = bpf_map_lookup_elem(&ktls_walk, &zero);
	if (!w)
		return 1;
	if (w->off >= w->captured || w->seg >= w->nr_segs)
		return 1;
	__u64 addr = 0, len = 0;
	int user = 0;
	if (!segment(w, &addr, &len, &user))
		return 1;
	if (w->seg_off >= len) {
		w->seg++;
		w->seg_off = 0;
		return 0;
	}
	__u64 piece = len - w->seg_off;
	if (piece > TLS_CHUNK)
		piece = TLS_CHUNK;
	if (piece > w->captured - w->off)
		piece = w->captured - w->off;
	barrier_var(piece);
	if (piece == 0 || piece > TLS_CHUNK)
		return 1;
	struct scratch *s = bpf_map_lookup_elem(&ktls_scratch, &zero);
	if (!s)
		return 1;
	s->hdr.offset = w->off;
	s->hdr.chunk_len = piece;
	const void *src = (const void *)(addr + w->seg_off);
	long r = user ? bpf_probe_read_user(s->data, piece, src) : bpf_probe_read_kernel(s->data, piece, src);
	if (r < 0) {
		s->hdr.flags |= TLS_F_FAULT;
		w->faults++;
	}
	if (bpf_ringbuf_output(&events, s, sizeof(s->hdr) + piece, BPF_RB_NO_WAKEUP) < 0)
		tlscope_count_lost(); /* later records may still fit: user space sees the hole */
	else
		stat_add(STAT_RECORDS, 1);
	w->off += piece;
	w->seg_off += piece;
	return 0;
}

/* RX: the record type the kernel wrote back as a control message (application data when none). */
static __always_inline __u8 rx_record_type(const struct kt_call *c)
{
	if (!c->msg || c->ctllen < sizeof(struct kt_cmsghdr))
		return TLS_RECORD_APPLICATION_DATA;
	struct msghdr *msg = (struct msghdr *)c->msg;
	__u64 now = BPF_CORE_READ(msg, msg_controllen);
	if (now >= c->ctllen)
		return TLS_RECORD_APPLICATION_DATA;
	struct kt_cmsghdr h = {};
	if (ctl_read(&h, sizeof(h), c->ctl, c->ctl_user) < 0 || h.level != SOL_TLS || h.type != TLS_GET_RECORD_TYPE)
		return TLS_RECORD_APPLICATION_DATA;
	__u8 t = TLS_RECORD_APPLICATION_DATA;
	ctl_read(&t, 1, c->ctl + sizeof(h), c->ctl_user);
	return t;
}

static __always_inline int leave(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct kt_call *p = bpf_map_lookup_elem(&ktls_calls, &tid);
	if (!p)
		return 0;
	struct kt_call c = *p;
	bpf_map_delete_elem(&ktls_calls, &tid);
	if (c.func != TLS_FN_KTLS_SPLICE_READ)
		ret = (int)ret; /* int functions: a kretprobe's rax has undefined upper bits */
	if (ret <= 0) {
		stat_add(STAT_EMPTY, 1);
		return 0;
	}
	if (c.direction == TLS_DIR_READ && c.func == TLS_FN_KTLS_RECVMSG && rx_record_type(&c) != TLS_RECORD_APPLICATION_DATA) {
		stat_add(STAT_CONTROL, 1);
		return 0;
	}
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&ktls_scratch, &zero);
	if (!s)
		return 0;
	struct tls_event *h = &s->hdr;
	__builtin_memset(h, 0, sizeof(*h));
	h->ts_ns = bpf_ktime_get_ns();
	h->start_ns = c.start_ns;
	h->conn_id = c.sk;
	const struct sock *sk = (const struct sock *)c.sk;
	tlscope_proc_fill(&h->proc, BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum));
	if (tlscope_tuple_from_sock(sk, &h->tuple))
		h->tuple_source = TLS_TUPLE_CALL;
	__u64 moved = ret;
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
	h->source = TLS_SRC_KTLS;
	h->func = c.func;
	h->direction = c.direction;
	stat_add(STAT_CALLS, 1);
	if (c.kind == KT_NONE) {
		/* bytes we cannot read: one record saying so (all of it missing, counted as a fault) */
		h->flags |= TLS_F_FAULT;
		h->captured_len = 0;
		stat_add(STAT_FAULTS, 1);
		if (bpf_ringbuf_output(&events, s, sizeof(*h), BPF_RB_NO_WAKEUP) < 0)
			tlscope_count_lost();
		return 0;
	}
	if (captured == 0)
		return 0;
	struct walk *wp = bpf_map_lookup_elem(&ktls_walk, &zero);
	if (!wp)
		return 0;
	__builtin_memset(wp, 0, sizeof(*wp));
	wp->base = c.base;
	wp->seg_off = c.seg_off;
	wp->nr_segs = c.nr_segs;
	wp->captured = captured;
	wp->kind = c.kind;
	if (c.kind == KT_PIPE) {
		struct pipe_inode_info *pipe = (struct pipe_inode_info *)c.pipe;
		__u32 head = BPF_CORE_READ(pipe, head);
		__u32 ring = BPF_CORE_READ(pipe, ring_size);
		wp->bufs = (__u64)BPF_CORE_READ(pipe, bufs);
		wp->first = c.first;
		wp->mask = ring ? ring - 1 : 0;
		wp->nr_segs = head - c.first;
		wp->seg_off = 0;
	}
	__u32 nr_segs = wp->nr_segs;
	/* each step gives out one piece (at most TLS_CHUNK, within one segment) or moves past a
	 * segment: at most captured / TLS_CHUNK + 2 * segments + 2 steps */
	__u64 steps = captured / TLS_CHUNK + 2 * (__u64)nr_segs + 2;
	if (steps > (1 << 20))
		steps = 1 << 20;
	bpf_loop(steps, walk_step, NULL, 0);
	wp = bpf_map_lookup_elem(&ktls_walk, &zero);
	s = bpf_map_lookup_elem(&ktls_scratch, &zero);
	if (!wp || !s)
		return 0;
	struct walk w = *wp;
	if (w.faults)
		stat_add(STAT_FAULTS, w.faults);
	if (w.off < captured) {
		/* the layout ended before the bytes did (or a segment could not be read): the rest is
		 * missing; one empty record marks the call as faulted so user space gives it out */
		s->hdr.flags |= TLS_F_FAULT;
		s->hdr.offset = w.off;
		s->hdr.chunk_len = 0;
		if (!w.faults)
			stat_add(STAT_FAULTS, 1);
		if (w.off == 0)
			s->hdr.captured_len = 0; /* nothing came: the header alone is the call */
		if (w.off == 0 && bpf_ringbuf_output(&events, s, sizeof(s->hdr), BPF_RB_NO_WAKEUP) < 0)
			tlscope_count_lost();
	}
	return 0;
}

/* ---- fentry / fexit --------------------------------------------------------------------- */

SEC("fentry/tls_sw_sendmsg")
int BPF_PROG(ktls_fentry_sendmsg, struct sock *sk, struct msghdr *msg, size_t size)
{
	return enter_msg(sk, msg, 0, TLS_FN_KTLS_SENDMSG, TLS_DIR_WRITE);
}

SEC("fexit/tls_sw_sendmsg")
int BPF_PROG(ktls_fexit_sendmsg, struct sock *sk, struct msghdr *msg, size_t size, int ret)
{
	return leave(ret);
}

SEC("fentry/tls_sw_recvmsg")
int BPF_PROG(ktls_fentry_recvmsg, struct sock *sk, struct msghdr *msg, size_t len, int flags)
{
	return enter_msg(sk, msg, flags, TLS_FN_KTLS_RECVMSG, TLS_DIR_READ);
}

SEC("fexit/tls_sw_recvmsg")
int BPF_PROG(ktls_fexit_recvmsg, struct sock *sk, struct msghdr *msg, size_t len, int flags, int *addr_len, int ret)
{
	return leave(ret);
}

SEC("fentry/tls_sw_sendpage")
int BPF_PROG(ktls_fentry_sendpage, struct sock *sk, struct page *page, int offset)
{
	return enter_page(sk, page, offset);
}

SEC("fexit/tls_sw_sendpage")
int BPF_PROG(ktls_fexit_sendpage, struct sock *sk, struct page *page, int offset, size_t size, int flags, int ret)
{
	return leave(ret);
}

SEC("fentry/tls_sw_splice_read")
int BPF_PROG(ktls_fentry_splice_read, struct socket *sock, loff_t *ppos, struct pipe_inode_info *pipe)
{
	return enter_splice(sock, pipe);
}

SEC("fexit/tls_sw_splice_read")
int BPF_PROG(ktls_fexit_splice_read, struct socket *sock, loff_t *ppos, struct pipe_inode_info *pipe, size_t len, unsigned int flags, long ret)
{
	return leave(ret);
}

/* ---- kprobe / kretprobe ----------------------------------------------------------------- */

SEC("kprobe")
int BPF_KPROBE(ktls_kprobe_sendmsg, struct sock *sk, struct msghdr *msg)
{
	return enter_msg(sk, msg, 0, TLS_FN_KTLS_SENDMSG, TLS_DIR_WRITE);
}

SEC("kprobe")
int BPF_KPROBE(ktls_kprobe_recvmsg, struct sock *sk, struct msghdr *msg, size_t len, int flags)
{
	return enter_msg(sk, msg, flags, TLS_FN_KTLS_RECVMSG, TLS_DIR_READ);
}

SEC("kprobe")
int BPF_KPROBE(ktls_kprobe_sendpage, struct sock *sk, struct page *page, int offset)
{
	return enter_page(sk, page, offset);
}

SEC("kprobe")
int BPF_KPROBE(ktls_kprobe_splice_read, struct socket *sock, loff_t *ppos, struct pipe_inode_info *pipe)
{
	return enter_splice(sock, pipe);
}

/* One return program for all four: the call's state says what it was. */
SEC("kretprobe")
int BPF_KRETPROBE(ktls_kretprobe, long ret)
{
	return leave(ret);
}
