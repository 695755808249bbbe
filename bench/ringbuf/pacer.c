// SPDX-License-Identifier: Apache-2.0
/*
 * bench/ringbuf: a paced producer. Like test/helpers/trigger.c it prints "ready PID", waits
 * for a line on stdin and then calls getppid() N times (each call makes on_getppid emit one
 * burst), but at a fixed rate: every millisecond it catches up to RATE calls per second.
 *
 * usage: pacer RATE N        (RATE getppid calls per second)
 * At the end it prints "done N SECONDS CPU_SECONDS" (its own CPU, BPF program included).
 * Built by the runner: cc -O2 -o pacer pacer.c
 */
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s RATE N\n", argv[0]);
		return 2;
	}
	double rate = strtod(argv[1], NULL);
	unsigned long n = strtoul(argv[2], NULL, 10);
	if (!(rate > 0)) {
		fprintf(stderr, "pacer: RATE must be > 0\n");
		return 2;
	}
	printf("ready %d\n", getpid());
	fflush(stdout);
	char line[16];
	if (!fgets(line, sizeof(line), stdin))
		return 1;

	struct timespec tick;
	clock_gettime(CLOCK_MONOTONIC, &tick);
	double t0 = now_s();
	unsigned long done = 0;
	while (done < n) {
		unsigned long due = (unsigned long)((now_s() - t0) * rate) + 1;
		if (due > n)
			due = n;
		while (done < due) {
			getppid();
			done++;
		}
		tick.tv_nsec += 1000000;
		if (tick.tv_nsec >= 1000000000) {
			tick.tv_nsec -= 1000000000;
			tick.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL);
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	/* done N seconds cpu-seconds: the producer's own CPU (the BPF program runs in its syscalls) */
	printf("done %lu %.6f %.6f\n", n, now_s() - t0,
	       (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	fflush(stdout);
	return 0;
}
