// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* trace tls --keylog: TLS secrets as Go's crypto/tls hands them to its key log, for an
 * NSS key log file (Wireshark, tshark -o tls.keylog_file:).
 *
 * A uprobe on the entry of crypto/tls.(*Config).writeKeyLog(label string, clientRandom,
 * secret []byte). crypto/tls calls it for every handshake (TLS 1.2: CLIENT_RANDOM; TLS 1.3:
 * the four traffic secrets) whether or not the program set a KeyLogWriter: the function
 * returns at once when it has none, but its arguments are there at entry. No struct offsets:
 * only the function's arguments, by the Go ABI.
 * - register ABI (Go >= 1.17): c RAX, label.ptr RBX, label.len RCX, clientRandom.ptr RDI,
 *   .len RSI, .cap R8, secret.ptr R9, .len R10, .cap R11.
 * - stack ABI0 (Go < 1.17): the same words at sp+8 … sp+72. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "tlscope.h"
#include "proc.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Each field's room is 64 bytes and holds at most 63 (TLS: labels up to 31 bytes, the client
 * random 32, secrets up to 48): the length is masked with 63, which the verifier can follow. */
#define KEYLOG_ROOM 64
#define KEYLOG_LABEL_MAX 63
#define KEYLOG_RANDOM_MAX 63
#define KEYLOG_SECRET_MAX 63

#define KEYLOG_F_FAULT 1    /* some bytes could not be read from the process */
#define KEYLOG_F_TOO_LONG 2 /* a label or secret longer than the record holds (not written) */

struct keylog_event {
	struct tlscope_proc proc;
	__u64 ts_ns;
	__u8 label_len;
	__u8 random_len;
	__u8 secret_len;
	__u8 flags;
	__u32 pad;
	char label[KEYLOG_ROOM];
	__u8 random[KEYLOG_ROOM];
	__u8 secret[KEYLOG_ROOM];
};

TLSCOPE_RINGBUF(keys, 1 << 18);
TLSCOPE_BTF_TYPE(keylog_event);

static __always_inline long read_bounded(void *dst, __u64 src, __u32 len)
{
	__u32 n = len;
	asm volatile("" : "+r"(n)); /* opaque to the compiler: the mask below stays */
	n &= KEYLOG_ROOM - 1;
	return bpf_probe_read_user(dst, n, (const void *)src);
}

static __always_inline int emit(__u8 flags, __u64 label, __u64 label_len, __u64 random, __u64 random_len, __u64 secret, __u64 secret_len)
{
	struct keylog_event *e = tlscope_reserve(&keys, sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	tlscope_proc_fill(&e->proc, 0);
	e->ts_ns = bpf_ktime_get_ns();
	e->flags = flags;
	if (label_len > KEYLOG_LABEL_MAX || random_len > KEYLOG_RANDOM_MAX || secret_len > KEYLOG_SECRET_MAX)
		e->flags |= KEYLOG_F_TOO_LONG;
	e->label_len = label_len > KEYLOG_LABEL_MAX ? KEYLOG_LABEL_MAX : label_len;
	e->random_len = random_len > KEYLOG_RANDOM_MAX ? KEYLOG_RANDOM_MAX : random_len;
	e->secret_len = secret_len > KEYLOG_SECRET_MAX ? KEYLOG_SECRET_MAX : secret_len;
	/* a size of 0 is fine for bpf_probe_read_user */
	if (read_bounded(e->label, label, e->label_len) < 0 ||
	    read_bounded(e->random, random, e->random_len) < 0 ||
	    read_bounded(e->secret, secret, e->secret_len) < 0)
		e->flags |= KEYLOG_F_FAULT;
	tlscope_submit(e);
	return 0;
}

SEC("uprobe")
int keylog_go_reg(struct pt_regs *ctx)
{
	return emit(0, ctx->bx, ctx->cx, ctx->di, ctx->si, ctx->r9, ctx->r10);
}

SEC("uprobe")
int keylog_go_stack(struct pt_regs *ctx)
{
	/* sp: return address; +8 c; +16 label.ptr, +24 label.len; +32 random.ptr, +40 .len, +48 .cap;
	 * +56 secret.ptr, +64 .len, +72 .cap */
	__u64 a[8] = {};
	if (bpf_probe_read_user(a, sizeof(a), (const void *)(ctx->sp + 16)) < 0)
		return emit(KEYLOG_F_FAULT, 0, 0, 0, 0, 0, 0); /* counted, not silent */
	return emit(0, a[0], a[1], a[2], a[3], a[5], a[6]);
}
