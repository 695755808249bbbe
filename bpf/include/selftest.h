/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
#ifndef SELFTEST_H
#define SELFTEST_H
#define SELFTEST_MAX_BURST 256

struct selftest_event {
	__u64 seq;
	__u64 ts_ns;
	__u32 cpu;
	__u32 pad;
};
_Static_assert(sizeof(struct selftest_event) == 24, "selftest_event layout is shared with TypeScript");
#endif
