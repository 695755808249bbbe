// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* tlscope capture: which process uses which connection, so that a captured packet can say
 * who sent it and who it was for (a comment on each packet of a pcapng file).
 *
 * sock_send_length and sock_recv_length fire in the process that calls send/recv on a socket
 * (any protocol; TCP and connected UDP sockets are kept). The 4-tuple is remembered with the
 * process in an LRU map; a record goes to user space only when a tuple is new or changes
 * hands, so steady traffic costs one map lookup per call and no ring traffic. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tlscope.h"
#include "capture.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";


TLSCOPE_RINGBUF(owners, 1 << 20);
TLSCOPE_BTF_TYPE(capture_owner);

struct owner_seen {
	__u32 pid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tlscope_tuple);
	__type(value, struct owner_seen);
} owner_seen SEC(".maps");

static __always_inline void note(const struct sock *sk, int ret)
{
	if (ret <= 0)
		return;
	struct capture_owner o;
	__builtin_memset(&o, 0, sizeof(o));
	/* TCP or UDP; a socket that is not connected (unconnected UDP) has no tuple to match packets with */
	if (!tlscope_tuple_from_sock(sk, &o.tuple) || o.tuple.sport == 0 || o.tuple.dport == 0)
		return;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 pid = pid_tgid >> 32;
	struct owner_seen *seen = bpf_map_lookup_elem(&owner_seen, &o.tuple);
	if (seen && seen->pid == pid)
		return;
	struct owner_seen now = { .pid = pid };
	bpf_map_update_elem(&owner_seen, &o.tuple, &now, BPF_ANY);

	tlscope_proc_fill(&o.proc, BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum));
	if (bpf_ringbuf_output(&owners, &o, sizeof(o), BPF_RB_NO_WAKEUP) < 0) {
		tlscope_count_lost();
		bpf_map_delete_elem(&owner_seen, &o.tuple); /* try again on the next call */
	}
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(owner_send, struct sock *sk, int ret, int flags)
{
	note(sk, ret);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(owner_recv, struct sock *sk, int ret, int flags)
{
	note(sk, ret);
	return 0;
}
