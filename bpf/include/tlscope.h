/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Shared by every tlscope BPF program: the lost-event counter and ring-buffer helpers.
 * Include after vmlinux.h and bpf_helpers.h. */
#ifndef TLSCOPE_H
#define TLSCOPE_H

/* Every object that emits events declares its ring buffer with TLSCOPE_RINGBUF(name, bytes)
 * and reserves through tlscope_reserve(), so a full ring is counted in tlscope_lost (read by
 * user space and shown to the user) instead of disappearing silently. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} tlscope_lost SEC(".maps");

#define TLSCOPE_RINGBUF(name, bytes)                       \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_RINGBUF);        \
		__uint(max_entries, bytes);                \
	} name SEC(".maps")

static __always_inline void tlscope_count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&tlscope_lost, &zero);
	if (n)
		*n += 1; /* per-CPU slot: no atomic needed */
}

/* Reserve or count the loss. */
static __always_inline void *tlscope_reserve(void *ringbuf, __u64 size)
{
	void *e = bpf_ringbuf_reserve(ringbuf, size, 0);
	if (!e)
		tlscope_count_lost();
	return e;
}

/* Submit without waking the reader: user space drains on a short timer (measured: a wakeup
 * per event doubles the cost of a uprobe hit). */
#define tlscope_submit(e) bpf_ringbuf_submit((e), BPF_RB_NO_WAKEUP)

/* Keeps an event struct in the object's BTF even when only pointers to it are used, so user
 * space can check its decoder against the compiled layout (ARCHITECTURE.md decision 8). */
#define TLSCOPE_BTF_TYPE(name) struct name __tlscope_btf_##name __attribute__((unused))

#endif
