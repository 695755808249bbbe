// SPDX-License-Identifier: Apache-2.0
/* A tiny process for runtime tests and benchmarks: waits for a line on stdin, then calls
 * getppid() (a tracepoint target) or tlscope_test_marker() (a uprobe target) N times.
 * usage: trigger getppid|marker N */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline, used)) unsigned long tlscope_test_marker(unsigned long i)
{
	__asm__ volatile("" : : "r"(i) : "memory");
	return i;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s getppid|marker N\n", argv[0]);
		return 2;
	}
	unsigned long n = strtoul(argv[2], NULL, 10);
	int marker = strcmp(argv[1], "marker") == 0;
	printf("ready %d\n", getpid());
	fflush(stdout);
	char line[16];
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	for (unsigned long i = 0; i < n; i++) {
		if (marker)
			tlscope_test_marker(i);
		else
			getppid();
	}
	printf("done %lu\n", n);
	fflush(stdout);
	return 0;
}
