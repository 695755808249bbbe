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

#define AF_INET 2
#define AF_INET6 10

TLSCOPE_RINGBUF(owners, 1 << 20);
TLSCOPE_BTF_TYPE(capture_owner);

struct owner_seen {
	__u32 pid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct capture_tuple);
	__type(value, struct owner_seen);
} owner_seen SEC(".maps");

static __always_inline int tuple_of(const struct sock *sk, struct capture_tuple *t)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 0;
	t->protocol = proto;
	t->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (t->sport == 0 || t->dport == 0)
		return 0; /* not connected (unconnected UDP): no tuple to match packets with */
	if (family == AF_INET) {
		__u32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		t->family = 4;
		__builtin_memcpy(t->saddr, &s, 4);
		__builtin_memcpy(t->daddr, &d, 4);
		return 1;
	}
	if (family != AF_INET6)
		return 0;
	struct in6_addr d6 = BPF_CORE_READ(sk, __sk_common.skc_v6_daddr);
	if (d6.in6_u.u6_addr32[0] == 0 && d6.in6_u.u6_addr32[1] == 0 && d6.in6_u.u6_addr32[2] == bpf_htonl(0xffff)) {
		/* v4-mapped peer: the packets are IPv4 */
		__u32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		t->family = 4;
		__builtin_memcpy(t->saddr, &s, 4);
		__builtin_memcpy(t->daddr, &d, 4);
		return 1;
	}
	struct in6_addr s6 = BPF_CORE_READ(sk, __sk_common.skc_v6_rcv_saddr);
	t->family = 6;
	__builtin_memcpy(t->saddr, &s6, 16);
	__builtin_memcpy(t->daddr, &d6, 16);
	return 1;
}

static __always_inline void note(const struct sock *sk, int ret)
{
	if (ret <= 0)
		return;
	struct capture_owner o;
	__builtin_memset(&o, 0, sizeof(o));
	if (!tuple_of(sk, &o.tuple))
		return;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 pid = pid_tgid >> 32;
	struct owner_seen *seen = bpf_map_lookup_elem(&owner_seen, &o.tuple);
	if (seen && seen->pid == pid)
		return;
	struct owner_seen now = { .pid = pid };
	bpf_map_update_elem(&owner_seen, &o.tuple, &now, BPF_ANY);

	struct task_struct *task = bpf_get_current_task_btf();
	o.pid = pid;
	o.tid = (__u32)pid_tgid;
	o.uid = (__u32)bpf_get_current_uid_gid();
	o.mntns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	o.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	bpf_get_current_comm(o.comm, sizeof(o.comm));
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
