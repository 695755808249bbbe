/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Shared between bpf/sni.bpf.c and src/gadgets/sni/decode.ts (checked against BTF in tests). */
#ifndef SNI_H
#define SNI_H

#include "sock.h"
#include "proc.h"

#define SNI_MAX_PAYLOAD 16384   /* bytes of one segment forwarded at most (power of two) */
#define SNI_MAX_HELLO 16384     /* a flow's ClientHello window: bytes forwarded per flow at most */

/* Who sent on a TCP 4-tuple: filled in process context (tcp_sendmsg_locked). */
struct sni_owner {
	__u64 ts_ns;
	struct tlscope_proc proc; /* netns: the socket's */
};

/* One forwarded TCP segment (the start of a ClientHello, or its continuation). */
struct sni_event {
	__u64 ts_ns;
	struct tlscope_tuple tuple; /* protocol: IPPROTO_TCP */
	struct sni_owner owner; /* zero when no local process sent it */
	__u32 seq;              /* TCP sequence number of the first payload byte */
	__u32 payload_len;      /* bytes of TCP payload in the segment */
	__u32 captured_len;     /* bytes that follow this header */
	__u32 ifindex;
	__u8 pkt_type;          /* PACKET_HOST, PACKET_OUTGOING, … */
	__u8 owner_known;
	__u8 first;             /* 1: payload starts a TLS handshake record */
	__u8 pad[5];
	/* __u8 payload[captured_len] follows */
};

_Static_assert(sizeof(struct sni_owner) == 56, "sni_owner layout is shared with TypeScript");
_Static_assert(sizeof(struct sni_event) == 128, "sni_event layout is shared with TypeScript");

#endif
