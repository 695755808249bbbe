/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Shared between bpf/capture_owner.bpf.c and src/gadgets/capture/owners.ts (tuple: src/net/tuple.ts,
 * proc: src/gadgets/proc-record.ts; checked against BTF in the tests). Include after vmlinux.h,
 * bpf_helpers.h and bpf_core_read.h. */
#ifndef CAPTURE_H
#define CAPTURE_H

#include "sock.h"
#include "proc.h"

/* The process that used a socket (sent or received on it), sent once per socket and process. */
struct capture_owner {
	struct tlscope_tuple tuple; /* a connected TCP or UDP socket: saddr is the local address */
	struct tlscope_proc proc;   /* the thread that sent or received; netns: the socket's */
};

_Static_assert(sizeof(struct capture_owner) == 88, "capture_owner layout is shared with TypeScript");

#endif
