/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* A socket's 4-tuple, shared by every object that keys or reports connections (sni, tls,
 * capture_owner) and decoded once in TypeScript (src/net/tuple.ts, checked against BTF in
 * tests). Include after vmlinux.h, bpf_helpers.h, bpf_core_read.h and bpf_endian.h. */
#ifndef TLSCOPE_SOCK_H
#define TLSCOPE_SOCK_H

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* A connection's addresses as its packets carry them: s = local, d = remote for a socket; as
 * the packet says for the sni socket filter. A v4-mapped IPv6 peer is IPv4 (the packets are). */
struct tlscope_tuple {
	__u8 saddr[16];  /* network byte order; IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u16 sport;     /* host byte order */
	__u16 dport;
	__u8 family;     /* 4 or 6; 0: unknown */
	__u8 protocol;   /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad[2];
};

_Static_assert(sizeof(struct tlscope_tuple) == 40, "tlscope_tuple layout is shared with TypeScript");

/* Fills t from an AF_INET/AF_INET6 TCP or UDP socket (ports may be 0: not connected); returns
 * 0 for any other socket. t must be zeroed by the caller (it is a map key). */
static __always_inline int tlscope_tuple_from_sock(const struct sock *sk, struct tlscope_tuple *t)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	/* a bitfield before Linux 5.6; compared whole: IPPROTO_MPTCP (262) is not TCP */
	__u16 proto = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 0;
	t->protocol = proto;
	t->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET6) {
		struct in6_addr d6 = BPF_CORE_READ(sk, __sk_common.skc_v6_daddr);
		/* a v4-mapped peer (::ffff:a.b.c.d) on a dual-stack socket sends IPv4 packets */
		int mapped = d6.in6_u.u6_addr32[0] == 0 && d6.in6_u.u6_addr32[1] == 0 && d6.in6_u.u6_addr32[2] == bpf_htonl(0xffff);
		if (!mapped) {
			struct in6_addr s6 = BPF_CORE_READ(sk, __sk_common.skc_v6_rcv_saddr);
			t->family = 6;
			__builtin_memcpy(t->saddr, &s6, 16);
			__builtin_memcpy(t->daddr, &d6, 16);
			return 1;
		}
	}
	__u32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
	__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	t->family = 4;
	__builtin_memcpy(t->saddr, &s, 4);
	__builtin_memcpy(t->daddr, &d, 4);
	return 1;
}

#endif
