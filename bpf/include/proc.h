/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* The process (thread) behind an event, shared by sni, tls and capture and decoded once in TypeScript
 * (src/gadgets/proc-record.ts, checked against BTF in tests). Include after vmlinux.h,
 * bpf_helpers.h and bpf_core_read.h. */
#ifndef TLSCOPE_PROC_H
#define TLSCOPE_PROC_H

#define TLSCOPE_COMM_LEN 16

struct tlscope_proc {
	__u32 pid;  /* host tgid */
	__u32 tid;  /* host thread id */
	__u32 uid;
	__u32 gid;
	__u32 mntns; /* mount namespace inode: the container index key */
	__u32 netns; /* network namespace inode */
	__u64 cgroup_id;
	char comm[TLSCOPE_COMM_LEN]; /* the thread's comm */
};

_Static_assert(sizeof(struct tlscope_proc) == 48, "tlscope_proc layout is shared with TypeScript");

/* The current thread, in process context; netns as the caller knows it (the socket's, or the task's). */
static __always_inline void tlscope_proc_fill(struct tlscope_proc *p, __u32 netns)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	struct task_struct *task = bpf_get_current_task_btf();
	p->pid = pid_tgid >> 32;
	p->tid = (__u32)pid_tgid;
	p->uid = (__u32)uid_gid;
	p->gid = uid_gid >> 32;
	p->mntns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	p->netns = netns;
	p->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(p->comm, sizeof(p->comm));
}

#endif
