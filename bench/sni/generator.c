// SPDX-License-Identifier: Apache-2.0
/*
 * bench/sni: ClientHellos over TCP as fast as possible (or at a fixed rate), no crypto, so the
 * tracers are the bottleneck; and the sink they go to.
 *
 *   generator sink HOST
 *       listens on HOST (port chosen by the kernel), prints "ready PORT", accepts and closes
 *       connections until SIGTERM/SIGINT.
 *   generator send HOST PORT HELLO_FILE NAME_DIGITS_OFFSET RANDOM_OFFSET COUNT RATE RUN_ID
 *       sends COUNT hellos, one per new connection: connect, write the hello, close with a
 *       reset (no TIME_WAIT; loopback then reuses ports within seconds, as busy clients do).
 *       Hello i is the file's bytes with 8 hex digits of i written at NAME_DIGITS_OFFSET (so
 *       every hello names its own server) and i, RUN_ID at RANDOM_OFFSET (a distinct client
 *       random). RATE 0: as fast as it goes; otherwise hellos per second, paced against
 *       absolute deadlines. Prints one JSON line: sent, failed, elapsed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int sink(const char *host)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	if (fd < 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1) {
		perror("sink socket");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 65535) < 0 || getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
		perror("sink bind/listen");
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: accept returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("ready %u\n", ntohs(a.sin_port));
	fflush(stdout);
	unsigned long accepted = 0;
	while (!stop) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("accept");
			return 1;
		}
		accepted++;
		close(c);
	}
	fprintf(stderr, "sink: %lu connections\n", accepted);
	return 0;
}

static void hex8(char *to, uint32_t v)
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 7; i >= 0; i--, v >>= 4)
		to[i] = digits[v & 0xf];
}

static int send_hellos(int argc, char **argv)
{
	if (argc != 10) {
		fprintf(stderr, "usage: generator send HOST PORT HELLO_FILE NAME_DIGITS_OFFSET RANDOM_OFFSET COUNT RATE RUN_ID\n");
		return 2;
	}
	const char *host = argv[2];
	int port = atoi(argv[3]);
	const char *file = argv[4];
	long name_off = atol(argv[5]), random_off = atol(argv[6]);
	long count = atol(argv[7]);
	double rate = atof(argv[8]);
	uint32_t run_id = (uint32_t)strtoul(argv[9], NULL, 0);

	FILE *f = fopen(file, "rb");
	struct stat st;
	if (f == NULL || fstat(fileno(f), &st) < 0) {
		perror(file);
		return 1;
	}
	size_t len = (size_t)st.st_size;
	char *hello = malloc(len);
	if (hello == NULL || fread(hello, 1, len, f) != len) {
		perror("read hello");
		return 1;
	}
	fclose(f);
	if (name_off < 0 || (size_t)name_off + 8 > len || random_off < 0 || (size_t)random_off + 12 > len) {
		fprintf(stderr, "offsets outside the %zu-byte hello\n", len);
		return 2;
	}

	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
		fprintf(stderr, "bad host %s\n", host);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	const int one = 1;
	const struct linger reset = { .l_onoff = 1, .l_linger = 0 };
	long sent = 0, failed = 0;
	uint64_t start = now_ns();
	for (long i = 0; i < count && !stop; i++) {
		if (rate > 0) {
			uint64_t due = start + (uint64_t)((double)i * 1e9 / rate);
			struct timespec ts = { .tv_sec = (time_t)(due / 1000000000ull), .tv_nsec = (long)(due % 1000000000ull) };
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop)
				;
		}
		hex8(hello + name_off, (uint32_t)i);
		uint32_t idx = (uint32_t)i;
		memcpy(hello + random_off, &idx, 4);
		memcpy(hello + random_off + 4, &run_id, 4);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			failed++;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		size_t off = 0;
		while (ok && off < len) {
			ssize_t n = write(fd, hello + off, len - off);
			if (n <= 0) {
				if (n < 0 && errno == EINTR)
					continue;
				ok = 0;
				break;
			}
			off += (size_t)n;
		}
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
		close(fd);
		if (ok)
			sent++;
		else
			failed++;
	}
	uint64_t elapsed = now_ns() - start;
	printf("{\"sent\":%ld,\"failed\":%ld,\"elapsedNs\":%llu,\"bytes\":%zu}\n", sent, failed, (unsigned long long)elapsed, len);
	free(hello);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "sink") == 0)
		return sink(argv[2]);
	if (argc >= 2 && strcmp(argv[1], "send") == 0)
		return send_hellos(argc, argv);
	fprintf(stderr, "usage: generator sink HOST | generator send …\n");
	return 2;
}
