// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* One tiny program per kernel feature tlscope may use. src/ebpf/features.ts loads each alone
 * and attaches it for real, so a "works" in `tlscope doctor` means it worked here. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("socket")
int probe_socket_filter(struct __sk_buff *skb) { return 0; }

SEC("tp/syscalls/sys_enter_getppid")
int probe_tracepoint(void *ctx) { return 0; }

SEC("tp_btf/sched_process_exit")
int BPF_PROG(probe_tp_btf, struct task_struct *p) { return 0; }

SEC("raw_tp/sched_process_exit")
int probe_raw_tp(void *ctx) { return 0; }

SEC("uprobe")
int probe_uprobe(struct pt_regs *ctx) { return 0; }

/* Loaded with expected attach type BPF_TRACE_UPROBE_MULTI by the prober (libbpf 1.1 has no
 * section name for it). */
SEC("uprobe")
int probe_uprobe_multi(struct pt_regs *ctx) { return 0; }

SEC("fentry/bpf_fentry_test1")
int BPF_PROG(probe_fentry, int a) { return 0; }

SEC("kprobe")
int probe_kprobe(struct pt_regs *ctx) { return 0; }

SEC("tc")
int probe_tcx(struct __sk_buff *skb) { return -1; /* TCX_NEXT: no effect on traffic */ }

SEC("cgroup_skb/egress")
int probe_cgroup_skb(struct __sk_buff *skb) { return 1; /* allow */ }

/* trace sni's owner hook: the tcp_sendmsg_locked tracepoint exists since Linux 6.16. */
SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(probe_tcp_sendmsg_locked, const struct sock *sk) { return 0; }
