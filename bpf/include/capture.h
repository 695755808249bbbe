/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Shared between bpf/capture_owner.bpf.c and src/gadgets/capture/owners.ts. */
#ifndef CAPTURE_H
#define CAPTURE_H

#include "sock.h"

#define CAPTURE_COMM_LEN 16

/* The process that used a socket (sent or received on it), sent once per socket and process. */
struct capture_owner {
	struct tlscope_tuple tuple; /* a connected TCP or UDP socket: saddr is the local address */
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u32 mntns;
	__u32 netns;
	__u32 pad;
	char comm[CAPTURE_COMM_LEN];
};

_Static_assert(sizeof(struct capture_owner) == 80, "capture_owner layout is shared with TypeScript");

#endif
