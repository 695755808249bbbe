/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Shared between bpf/capture_owner.bpf.c and src/gadgets/capture/owners.ts. */
#ifndef CAPTURE_H
#define CAPTURE_H

#define CAPTURE_COMM_LEN 16

/* A connected socket's addresses as its packets carry them: saddr is the local address. */
struct capture_tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* host byte order */
	__u16 dport;
	__u8 family; /* 4 or 6 */
	__u8 protocol; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad[2];
};

/* The process that used a socket (sent or received on it), sent once per socket and process. */
struct capture_owner {
	struct capture_tuple tuple;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u32 mntns;
	__u32 netns;
	__u32 pad;
	char comm[CAPTURE_COMM_LEN];
};

_Static_assert(sizeof(struct capture_tuple) == 40, "capture_tuple layout is shared with TypeScript");
_Static_assert(sizeof(struct capture_owner) == 80, "capture_owner layout is shared with TypeScript");

#endif
