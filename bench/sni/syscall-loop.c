// SPDX-License-Identifier: Apache-2.0
/* Times one system call in a tight loop, to price what trace sni's owner hooks add to it.
 *
 *   syscall-loop MODE N     prints "<mode> <ns per call>"
 *
 * MODE: getppid (a syscall no hook looks at), devnull (write of 1 byte to /dev/null: not a
 * socket), pipe (1 byte into a pipe a thread drains), tcp (1 byte into a loopback TCP
 * connection that has already sent 32 KiB, past the hooks' 16 KiB owner limit). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void *drain(void *arg)
{
	int fd = *(int *)arg;
	static char buf[65536];
	while (read(fd, buf, sizeof buf) > 0) {
	}
	return NULL;
}

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int tcp_past_limit(void)
{
	static int peer;
	pthread_t th;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (void *)&a, sizeof a) < 0 || listen(l, 1) < 0 || getsockname(l, (void *)&a, &len) < 0)
		die("listen");
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (void *)&a, sizeof a) < 0)
		die("connect");
	peer = accept(l, NULL, NULL);
	if (peer < 0)
		die("accept");
	pthread_create(&th, NULL, drain, &peer);
	static char big[32768];
	if (write(fd, big, sizeof big) != sizeof big)
		die("write");
	usleep(100000);
	return fd;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s getppid|devnull|pipe|tcp N\n", argv[0]);
		return 2;
	}
	const char *mode = argv[1];
	long n = atol(argv[2]);
	int fd = -1;
	pthread_t th;
	if (!strcmp(mode, "devnull")) {
		fd = open("/dev/null", O_WRONLY);
	} else if (!strcmp(mode, "pipe")) {
		static int p[2];
		if (pipe(p) < 0)
			die("pipe");
		fd = p[1];
		pthread_create(&th, NULL, drain, &p[0]);
	} else if (!strcmp(mode, "tcp")) {
		fd = tcp_past_limit();
	} else if (strcmp(mode, "getppid")) {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	char c = 'x';
	double t0 = now_ns();
	if (fd < 0) {
		for (long i = 0; i < n; i++)
			syscall(SYS_getppid);
	} else {
		for (long i = 0; i < n; i++)
			if (write(fd, &c, 1) != 1)
				die("write");
	}
	printf("%s %.1f\n", mode, (now_ns() - t0) / n);
	return 0;
}
