// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* Programs that exercise the runtime itself: they emit numbered events in bursts so tests and
 * bench/ringbuf can check that every event arrives exactly once and in order, and one program
 * the verifier must refuse. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "tlscope.h"
#include "selftest.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 target_tgid = 0; /* only this process triggers */
const volatile __u32 burst = 1;       /* events per trigger, at most SELFTEST_MAX_BURST */
const volatile __u8 wakeup = 0;       /* 1: wake the reader on every event (for comparison) */

TLSCOPE_RINGBUF(events, 1 << 24);
TLSCOPE_BTF_TYPE(selftest_event);

__u64 next_seq = 0;
__u64 emitted = 0;

static __always_inline int emit_burst(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid != target_tgid)
		return 0;
	for (__u32 i = 0; i < SELFTEST_MAX_BURST; i++) {
		if (i >= burst)
			break;
		struct selftest_event *e = tlscope_reserve(&events, sizeof(*e));
		__sync_fetch_and_add(&emitted, 1);
		if (!e)
			continue;
		e->seq = __sync_fetch_and_add(&next_seq, 1);
		e->ts_ns = bpf_ktime_get_ns();
		e->cpu = bpf_get_smp_processor_id();
		e->pad = 0;
		if (wakeup)
			bpf_ringbuf_submit(e, 0);
		else
			tlscope_submit(e);
	}
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	return emit_burst();
}

SEC("uprobe")
int on_marker(struct pt_regs *ctx)
{
	return emit_burst();
}

/* Reads past the end of a map value: the verifier must refuse it with a readable message. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} one_value SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int reject_me(void *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&one_value, &k);
	if (!v)
		return 0;
	return *(v + 4);
}
