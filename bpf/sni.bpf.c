// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* trace sni: forwards the TCP segments that carry a TLS ClientHello to user space, which
 * reassembles and parses them (src/gadgets/sni). Two programs:
 *  - sni_sendmsg (tp_btf/tcp_sendmsg_locked, Linux >= 6.16) runs in the thread that sends on a
 *    TCP socket and records who it is, keyed by the connection's 4-tuple; before 6.16 the
 *    sni_sys_* programs do the same at the entry of write/writev/sendto/sendmsg/sendmmsg;
 *  - sni_socket, a socket filter on one AF_PACKET socket per network namespace in scope,
 *    finds segments that start a handshake record (and the continuation segments of that
 *    ClientHello, by TCP sequence window) and forwards them with the owner attached.
 * The socket filter returns 0: the packet socket queues nothing. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tlscope.h"
#include "sni.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define PACKET_OUTGOING 4
#define LOOPBACK_IFINDEX 1
#define NEXTHDR_HOP 0
#define NEXTHDR_TCP 6
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60
#define IPV6_MAX_EXT_HEADERS 8

/* Record the sending thread while a connection has sent fewer bytes than this: covers the
 * ClientHello of a TLS client, and of STARTTLS protocols after a short plaintext preamble. */
const volatile __u32 owner_max_bytes_sent = 16384;
/* Loopback shows each packet twice (outgoing, then incoming): keep only the incoming copy. */
const volatile __u8 skip_loopback_outgoing = 1;

/* 32 MiB: at ~10 k hellos/s a 4 MiB ring lost 5-11 % in bursts, 32 MiB lost none (docs/benchmarks.md) */
TLSCOPE_RINGBUF(events, 1 << 25);
TLSCOPE_BTF_TYPE(sni_event);

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tlscope_tuple);
	__type(value, struct sni_owner);
} sni_owners SEC(".maps");

struct flow_window {
	__u32 start; /* sequence number of the ClientHello's first byte */
	__u32 end;   /* one past the last byte we expect to need */
	/* A segment of 1 or 2 bytes that may begin a record (16 / 16 03): nothing is forwarded
	 * until the bytes that follow it confirm a ClientHello record header (16 03 0x, with x <= 4);
	 * until then the window is tentative and holds the bytes seen so far. */
	__u8 hdr[8];
	__u8 have;
	__u8 tentative;
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tlscope_tuple);
	__type(value, struct flow_window);
} sni_flows SEC(".maps");

struct scratch {
	struct sni_event hdr;
	__u8 payload[SNI_MAX_PAYLOAD];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} sni_scratch SEC(".maps");

/* Counters for `tlscope trace sni -v` and tests: what the filter saw and did. */
enum {
	STAT_SEGMENTS_FORWARDED,
	STAT_HELLO_STARTS,
	STAT_LOAD_ERRORS,
	STAT_OWNERS_RECORDED,
	STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sni_stats SEC(".maps");

static __always_inline void stat_inc(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&sni_stats, &which);
	if (n)
		*n += 1;
}

/* ---- owner of a connection, in process context -------------------------------------- */

/* Records the current thread as the sender on sk while the connection has sent fewer than
 * owner_max_bytes_sent bytes. Runs before the segment is built (tcp_sendmsg_locked, or the
 * entry of the system call), so the socket filter finds the owner when the packet passes. */
static __always_inline int record_owner(const struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	if (BPF_CORE_READ(tp, bytes_sent) >= owner_max_bytes_sent)
		return 0;
	struct tlscope_tuple key;
	__builtin_memset(&key, 0, sizeof(key));
	if (!tlscope_tuple_from_sock(sk, &key) || key.protocol != IPPROTO_TCP)
		return 0;
	if (key.sport == 0 || key.dport == 0)
		return 0; /* not connected yet (a TCP Fast Open sendto): no 4-tuple the packets will carry */

	struct sni_owner o;
	__builtin_memset(&o, 0, sizeof(o));
	o.ts_ns = bpf_ktime_get_ns();
	tlscope_proc_fill(&o.proc, BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum));
	bpf_map_update_elem(&sni_owners, &key, &o, BPF_ANY);
	stat_inc(STAT_OWNERS_RECORDED);
	return 0;
}

/* Linux >= 6.16: in the thread that sends on a TCP socket, with the socket at hand. */
SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(sni_sendmsg, const struct sock *sk, const struct msghdr *msg, const struct sk_buff *skb, int size_goal)
{
	return record_owner(sk);
}

/* Before 6.16 (or forced): the entry of the system calls that send on a socket, whose fd is
 * resolved through the task's fd table (bpf/include/sock.h, shared with trace tls). They fire
 * for every write on the host, so everything that is not a young TCP connection leaves after a
 * few reads: not a socket (pipes, files, ttys), not a stream, not IPv4/IPv6 (unix sockets), not
 * TCP (MPTCP, SCTP), or past the byte limit. Not seen: io_uring sends, sendfile/splice, and
 * pwritev2 — they do not go through these system calls. */
static __always_inline int owner_of_fd(long fd)
{
	struct socket *sock = tlscope_socket_of_fd(fd);
	if (!sock || BPF_CORE_READ(sock, type) != SOCK_STREAM)
		return 0;
	const struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP)
		return 0; /* before reading tcp_sock fields */
	return record_owner(sk);
}

#define SNI_SYSCALL_OWNER(name)                                          \
	SEC("tp/syscalls/sys_enter_" #name)                              \
	int sni_sys_##name(struct trace_event_raw_sys_enter *ctx)        \
	{                                                                \
		return owner_of_fd((long)ctx->args[0]);                  \
	}

SNI_SYSCALL_OWNER(write)
SNI_SYSCALL_OWNER(writev)
SNI_SYSCALL_OWNER(sendto)
SNI_SYSCALL_OWNER(sendmsg)
SNI_SYSCALL_OWNER(sendmmsg)

/* ---- the packet side ----------------------------------------------------------------- */

/* Headers are read relative to the network header (whatever the link layer is); they sit in
 * the skb's linear part. Payload may sit in page fragments, which only bpf_skb_load_bytes
 * follows, and that one counts from the packet start (the link header on a SOCK_RAW packet
 * socket): payload loads use the link-header length found by link_header_len(). */
static __always_inline int load(struct __sk_buff *skb, __u32 off, void *to, __u32 len)
{
	if (bpf_skb_load_bytes_relative(skb, off, to, len, BPF_HDR_START_NET) < 0) {
		stat_inc(STAT_LOAD_ERRORS);
		return -1;
	}
	return 0;
}

/* Finds the TCP header; fills the addresses and returns the end of the IP datagram, or 0. */
static __always_inline __u32 parse_ip(struct __sk_buff *skb, struct tlscope_tuple *t, __u32 *l4off, __u64 *ip_head)
{
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (load(skb, 0, &ip, sizeof(ip)))
			return 0;
		if (ip.protocol != IPPROTO_TCP || (ip.frag_off & bpf_htons(0x1fff)) != 0)
			return 0; /* not TCP, or not the first fragment */
		__u32 ihl = ip.ihl * 4;
		if (ihl < sizeof(ip))
			return 0;
		__builtin_memcpy(ip_head, &ip, 8);
		t->family = 4;
		t->protocol = IPPROTO_TCP;
		__builtin_memcpy(t->saddr, &ip.saddr, 4);
		__builtin_memcpy(t->daddr, &ip.daddr, 4);
		*l4off = ihl;
		return bpf_ntohs(ip.tot_len);
	}
	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return 0;
	struct ipv6hdr ip6;
	if (load(skb, 0, &ip6, sizeof(ip6)))
		return 0;
	__builtin_memcpy(ip_head, &ip6, 8);
	__u8 next = ip6.nexthdr;
	__u32 off = sizeof(ip6);
	for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
		if (next == NEXTHDR_TCP)
			break;
		__u8 ext[4];
		if (load(skb, off, ext, sizeof(ext)))
			return 0;
		switch (next) {
		case NEXTHDR_HOP:
		case NEXTHDR_ROUTING:
		case NEXTHDR_DEST:
			off += ((__u32)ext[1] + 1) * 8;
			break;
		case NEXTHDR_FRAGMENT:
			if (((ext[2] << 8 | ext[3]) & 0xfff8) != 0)
				return 0; /* not the first fragment */
			off += 8;
			break;
		case NEXTHDR_AUTH:
			off += ((__u32)ext[1] + 2) * 4;
			break;
		default:
			return 0;
		}
		next = ext[0];
	}
	if (next != NEXTHDR_TCP)
		return 0;
	t->family = 6;
	t->protocol = IPPROTO_TCP;
	__builtin_memcpy(t->saddr, &ip6.saddr, 16);
	__builtin_memcpy(t->daddr, &ip6.daddr, 16);
	*l4off = off;
	return sizeof(ip6) + bpf_ntohs(ip6.payload_len);
}

/* Length of the link-layer header: what precedes an IP datagram that ends the packet
 * (Ethernet, loopback and veth: 14; raw IP tunnels: 0; cooked or VLAN: other). Checked by
 * finding the IP header's first bytes there; returns -1 when they are not. */
static __always_inline int link_header_len(struct __sk_buff *skb, __u32 ip_end, __u64 ip_head)
{
	if (skb->len < ip_end)
		return -1;
	__u32 l2 = skb->len - ip_end;
	if (l2 > 64)
		return -1; /* trailing bytes after the datagram: not a layout we know */
	__u64 there = 0;
	if (bpf_skb_load_bytes(skb, l2, &there, sizeof(there)) < 0 || there != ip_head)
		return -1;
	return l2;
}

/* Forwards the 1-2 bytes a confirmed tentative window held, as the segment that begins the
 * hello (seq = the window's start, first = 1), ahead of the segment that confirmed it. */
static __always_inline void forward_held_start(struct __sk_buff *skb, const struct tlscope_tuple *t, const struct flow_window *w, __u8 held)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&sni_scratch, &zero);
	if (!s)
		return;
	__builtin_memset(&s->hdr, 0, sizeof(s->hdr));
	s->hdr.ts_ns = bpf_ktime_get_ns();
	s->hdr.tuple = *t;
	s->hdr.seq = w->start;
	s->hdr.payload_len = held;
	s->hdr.ifindex = skb->ifindex;
	s->hdr.pkt_type = skb->pkt_type;
	s->hdr.first = 1;
	struct sni_owner *o = bpf_map_lookup_elem(&sni_owners, t);
	if (o) {
		s->hdr.owner = *o;
		s->hdr.owner_known = 1;
	}
	s->payload[0] = w->hdr[0];
	s->payload[1] = w->hdr[1];
	if (held == 2) {
		s->hdr.captured_len = 2;
		if (bpf_ringbuf_output(&events, s, sizeof(s->hdr) + 2, BPF_RB_NO_WAKEUP) < 0)
			tlscope_count_lost();
		else
			stat_inc(STAT_SEGMENTS_FORWARDED);
	} else {
		s->hdr.captured_len = 1;
		if (bpf_ringbuf_output(&events, s, sizeof(s->hdr) + 1, BPF_RB_NO_WAKEUP) < 0)
			tlscope_count_lost();
		else
			stat_inc(STAT_SEGMENTS_FORWARDED);
	}
}

/* A tentative window (see struct flow_window): takes the next bytes of the stream. Returns 1
 * when they confirm a ClientHello record (the window is then a normal one and the held bytes
 * have been forwarded), 0 when more are needed or they are not one (the window is dropped). */
static __always_inline int confirm_tentative(struct __sk_buff *skb, const struct tlscope_tuple *t, struct flow_window *w, __u32 seq, __u32 plen, __u32 off)
{
	__u8 have = w->have;
	if (have == 0 || have > 2 || seq != w->start + have)
		return 0; /* a copy of the first bytes, or not the bytes that follow them */
	__u32 n = plen;
	if (n > 8 - have)
		n = 8 - have;
	n = ((n - 1) & 7) + 1;
	__u8 tmp[8];
	__builtin_memset(tmp, 0, sizeof(tmp));
	if (bpf_skb_load_bytes(skb, off, tmp, n) < 0)
		return 0;
	for (int i = 0; i < 8; i++) {
		__u32 j = have + i;
		if (i >= n || j >= 8)
			break;
		w->hdr[j & 7] = tmp[i];
	}
	__u32 now = have + n;
	if (w->hdr[0] != 0x16 || (now >= 2 && w->hdr[1] != 0x03) || (now >= 3 && w->hdr[2] > 0x04) || (now >= 6 && w->hdr[5] != 0x01)) {
		bpf_map_delete_elem(&sni_flows, t);
		return 0;
	}
	if (now < 3) {
		w->have = now;
		return 0;
	}
	w->tentative = 0;
	forward_held_start(skb, t, w, have);
	return 1;
}

SEC("socket")
int sni_socket(struct __sk_buff *skb)
{
	if (skip_loopback_outgoing && skb->pkt_type == PACKET_OUTGOING && skb->ifindex == LOOPBACK_IFINDEX)
		return 0;

	struct tlscope_tuple t;
	__builtin_memset(&t, 0, sizeof(t));
	__u32 l4off = 0;
	__u64 ip_head = 0;
	__u32 ip_end = parse_ip(skb, &t, &l4off, &ip_head);
	if (ip_end == 0)
		return 0;
	struct tcphdr tcp;
	if (load(skb, l4off, &tcp, sizeof(tcp)))
		return 0;
	__u32 payload_off = l4off + tcp.doff * 4;
	if (tcp.doff < 5 || ip_end <= payload_off)
		return 0; /* no payload */
	__u32 plen = ip_end - payload_off;
	int l2 = link_header_len(skb, ip_end, ip_head);
	if (l2 < 0) {
		stat_inc(STAT_LOAD_ERRORS);
		return 0;
	}
	__u32 pkt_payload_off = (__u32)l2 + payload_off;
	t.sport = bpf_ntohs(tcp.source);
	t.dport = bpf_ntohs(tcp.dest);
	__u32 seq = bpf_ntohl(tcp.seq);

	/* Does this segment start a handshake record carrying a ClientHello?
	 * 0x16 0x03 0x0{0..4} len:2 | 0x01 hs_len:3 */
	__u8 head[9];
	__builtin_memset(head, 0, sizeof(head));
	int first = 0;
	if (plen >= 9) {
		if (bpf_skb_load_bytes(skb, pkt_payload_off, head, 9) < 0)
			return 0;
	} else if (plen >= 3) {
		if (bpf_skb_load_bytes(skb, pkt_payload_off, head, 3) < 0)
			return 0;
	}
	if (plen >= 3 && head[0] == 0x16 && head[1] == 0x03 && head[2] <= 0x04 && (plen < 9 || head[5] == 0x01))
		first = 1;

	if (plen <= 2) {
		/* 1 or 2 bytes: the start of a record header written on its own (16, or 16 03), or a
		 * small piece inside a hello already being forwarded */
		if (plen == 2) {
			if (bpf_skb_load_bytes(skb, pkt_payload_off, head, 2) < 0)
				return 0;
		} else if (bpf_skb_load_bytes(skb, pkt_payload_off, head, 1) < 0) {
			return 0;
		}
		struct flow_window *old = bpf_map_lookup_elem(&sni_flows, &t);
		int inside = old && !old->tentative && seq - old->start < old->end - old->start;
		if (!inside && head[0] == 0x16 && (plen == 1 || head[1] == 0x03)) {
			if (old && old->tentative && old->start == seq)
				return 0; /* another copy of it */
			struct flow_window w;
			__builtin_memset(&w, 0, sizeof(w));
			w.start = seq;
			w.end = seq + SNI_MAX_HELLO;
			w.hdr[0] = head[0];
			w.hdr[1] = head[1];
			w.have = plen;
			w.tentative = 1;
			bpf_map_update_elem(&sni_flows, &t, &w, BPF_ANY);
			return 0;
		}
	}

	if (first) {
		__u32 need = SNI_MAX_HELLO;
		if (plen >= 9) {
			__u32 rec_len = (__u32)head[3] << 8 | head[4];
			__u32 hs_len = (__u32)head[6] << 16 | (__u32)head[7] << 8 | head[8];
			need = 5 + 4 + hs_len;
			if (rec_len < hs_len + 4)
				need += 5 * 16; /* the hello spans several records: room for their headers */
			if (need > SNI_MAX_HELLO)
				need = SNI_MAX_HELLO;
		}
		if (plen < need) {
			struct flow_window w = { .start = seq, .end = seq + need };
			bpf_map_update_elem(&sni_flows, &t, &w, BPF_ANY);
		}
		stat_inc(STAT_HELLO_STARTS);
	} else {
		struct flow_window *w = bpf_map_lookup_elem(&sni_flows, &t);
		if (!w)
			return 0;
		if (w->tentative) {
			if (!confirm_tentative(skb, &t, w, seq, plen, pkt_payload_off))
				return 0;
			stat_inc(STAT_HELLO_STARTS);
		}
		__u32 span = w->end - w->start;
		if (seq - w->start >= span)
			return 0; /* outside the ClientHello (sequence arithmetic wraps) */
		if (seq + plen - w->start >= span)
			bpf_map_delete_elem(&sni_flows, &t); /* this one completes the window */
	}

	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&sni_scratch, &zero);
	if (!s)
		return 0;
	__builtin_memset(&s->hdr, 0, sizeof(s->hdr));
	s->hdr.ts_ns = bpf_ktime_get_ns();
	s->hdr.tuple = t;
	s->hdr.seq = seq;
	s->hdr.payload_len = plen;
	s->hdr.ifindex = skb->ifindex;
	s->hdr.pkt_type = skb->pkt_type;
	s->hdr.first = first;
	struct sni_owner *o = bpf_map_lookup_elem(&sni_owners, &t);
	if (o) {
		s->hdr.owner = *o;
		s->hdr.owner_known = 1;
	}

	__u64 len = plen;
	if (len > SNI_MAX_PAYLOAD)
		len = SNI_MAX_PAYLOAD;
	barrier_var(len);
	if (len == 0 || len > SNI_MAX_PAYLOAD)
		return 0;
	/* 1..SNI_MAX_PAYLOAD in a form every verifier can prove: 6.1's does not learn len >= 1 from
	 * the test above and refuses bpf_skb_load_bytes ("R3 min value is outside of the allowed
	 * memory range", size 0). Same value for every len in range. */
	len = ((len - 1) & (SNI_MAX_PAYLOAD - 1)) + 1;
	if (bpf_skb_load_bytes(skb, pkt_payload_off, s->payload, len) < 0) {
		stat_inc(STAT_LOAD_ERRORS);
		return 0;
	}
	s->hdr.captured_len = len;
	if (bpf_ringbuf_output(&events, s, sizeof(s->hdr) + len, BPF_RB_NO_WAKEUP) < 0)
		tlscope_count_lost();
	else
		stat_inc(STAT_SEGMENTS_FORWARDED);
	return 0;
}
