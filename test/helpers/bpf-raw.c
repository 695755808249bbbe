// SPDX-License-Identifier: Apache-2.0
// Independent evidence for the doctor test: asks the kernel directly with bpf(2), no libbpf,
// no tlscope code. `bpf-raw prog TYPE` loads "r0 = 0; exit" as a program of that type;
// `bpf-raw map TYPE` creates a map of that type (a ring buffer: 4096 bytes). Prints "ok", or
// "errno N" and exits 1.
#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: bpf-raw prog|map TYPE\n");
    return 2;
  }
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  int cmd;
  struct bpf_insn insns[2];
  memset(insns, 0, sizeof insns);
  if (strcmp(argv[1], "prog") == 0) {
    insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K; /* r0 = 0 */
    insns[1].code = BPF_JMP | BPF_EXIT;
    a.prog_type = (unsigned)atoi(argv[2]);
    a.insns = (unsigned long)insns;
    a.insn_cnt = 2;
    a.license = (unsigned long)"GPL";
    cmd = BPF_PROG_LOAD;
  } else {
    a.map_type = (unsigned)atoi(argv[2]);
    a.max_entries = 4096;
    cmd = BPF_MAP_CREATE;
  }
  long fd = syscall(__NR_bpf, cmd, &a, sizeof a);
  if (fd < 0) {
    printf("errno %d\n", errno);
    return 1;
  }
  close((int)fd);
  printf("ok\n");
  return 0;
}
