// SPDX-License-Identifier: Apache-2.0
/*
 * bench/ringbuf: the C reference consumer of dist/bpf/selftest.bpf.o (program on_getppid).
 *
 * Two ways of reading the same ring buffer with libbpf:
 *   poll   the usual libbpf loop: the program submits with default wakeups (wakeup=1) and
 *          the consumer sleeps in ring_buffer__poll() until the kernel wakes it;
 *   timer  the program submits with BPF_RB_NO_WAKEUP (wakeup=0) and the consumer calls
 *          ring_buffer__consume() every --interval-ms (5 ms), like tlscope's reader.
 *
 * Protocol with bench/ringbuf/run.ts (one line each on stdout):
 *   "ready"         after the program is attached (with --backlog 1 it then waits for a line
 *                   on stdin before it reads anything, so the ring fills first);
 *   {json}          the results, once received + lost reached --expect (or it went idle);
 * then it waits for a line (or EOF) on stdin before it detaches and exits, so the runner can
 * sample this process's CPU time while nothing else runs.
 *
 * Built by the runner: cc -O2 -o consumer consumer.c -lbpf
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

/* The layout of struct selftest_event (bpf/include/selftest.h), 24 bytes. */
struct event {
	uint64_t seq;
	uint64_t ts_ns;
	uint32_t cpu;
	uint32_t pad;
};

struct state {
	uint64_t received;
	uint64_t next_seq;     /* the seq expected next */
	uint64_t out_of_order; /* records whose seq was not the expected one */
	uint64_t first_ts;     /* bpf_ktime_get_ns() of the first record (CLOCK_MONOTONIC) */
	uint64_t last_ts;      /* … of the latest record */
	uint64_t bytes;
};

static struct state st;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int on_sample(void *ctx, void *data, size_t len)
{
	(void)ctx;
	const struct event *e = data;
	if (len < sizeof(*e)) {
		st.out_of_order++;
		return 0;
	}
	if (e->seq != st.next_seq)
		st.out_of_order++;
	st.next_seq = e->seq + 1;
	if (st.received == 0)
		st.first_ts = e->ts_ns;
	st.last_ts = e->ts_ns;
	st.received++;
	st.bytes += len;
	return 0;
}

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "consumer: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* Offset and size of a variable in a data section (".rodata", ".bss"), from the object's BTF. */
static int section_var(const struct btf *btf, const char *sec, const char *name, uint32_t *off, uint32_t *size)
{
	int id = btf__find_by_name_kind(btf, sec, BTF_KIND_DATASEC);
	if (id < 0)
		return id;
	const struct btf_type *t = btf__type_by_id(btf, id);
	const struct btf_var_secinfo *vs = btf_var_secinfos(t);
	for (int i = 0; i < btf_vlen(t); i++, vs++) {
		const struct btf_type *v = btf__type_by_id(btf, vs->type);
		if (strcmp(btf__name_by_offset(btf, v->name_off), name) == 0) {
			*off = vs->offset;
			*size = vs->size;
			return 0;
		}
	}
	return -ENOENT;
}

static void set_const(struct bpf_object *obj, uint8_t *rodata, size_t rodata_size, const char *name, uint64_t value)
{
	uint32_t off, size;
	int err = section_var(bpf_object__btf(obj), ".rodata", name, &off, &size);
	if (err)
		die(name, err);
	if (off + size > rodata_size || size > 8)
		die(name, EINVAL);
	/* x86-64 is little-endian: the low `size` bytes of value */
	memcpy(rodata + off, &value, size);
}

static uint64_t read_bss_u64(struct bpf_object *obj, const char *name)
{
	struct bpf_map *bss = bpf_object__find_map_by_name(obj, ".bss");
	uint32_t off, size;
	if (!bss || section_var(bpf_object__btf(obj), ".bss", name, &off, &size) || size != 8)
		return UINT64_MAX;
	size_t vsz = bpf_map__value_size(bss);
	uint8_t *buf = calloc(1, vsz);
	uint32_t zero = 0;
	uint64_t v = UINT64_MAX;
	if (buf && bpf_map_lookup_elem(bpf_map__fd(bss), &zero, buf) == 0)
		memcpy(&v, buf + off, 8);
	free(buf);
	return v;
}

static uint64_t read_lost(struct bpf_object *obj)
{
	struct bpf_map *m = bpf_object__find_map_by_name(obj, "tlscope_lost");
	int ncpu = libbpf_num_possible_cpus();
	if (!m || ncpu <= 0)
		return UINT64_MAX;
	uint64_t *vals = calloc((size_t)ncpu, sizeof(uint64_t)); /* u64 values: stride 8 */
	uint32_t zero = 0;
	uint64_t sum = UINT64_MAX;
	if (vals && bpf_map_lookup_elem(bpf_map__fd(m), &zero, vals) == 0) {
		sum = 0;
		for (int i = 0; i < ncpu; i++)
			sum += vals[i];
	}
	free(vals);
	return sum;
}

static void usage(void)
{
	fprintf(stderr, "usage: consumer --obj selftest.bpf.o --pid PID --burst B --expect N --mode poll|timer\n"
			"                [--interval-ms 5] [--ring-bytes BYTES] [--idle-ms 2000] [--backlog 1]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *path = NULL, *mode = NULL;
	long pid = -1, burst = 1, interval_ms = 5, idle_ms = 2000, backlog = 0;
	unsigned long long expect = 0, ring_bytes = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		if (!strcmp(a, "--obj")) path = v;
		else if (!strcmp(a, "--mode")) mode = v;
		else if (!strcmp(a, "--pid")) pid = strtol(v, NULL, 10);
		else if (!strcmp(a, "--burst")) burst = strtol(v, NULL, 10);
		else if (!strcmp(a, "--expect")) expect = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--interval-ms")) interval_ms = strtol(v, NULL, 10);
		else if (!strcmp(a, "--ring-bytes")) ring_bytes = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--idle-ms")) idle_ms = strtol(v, NULL, 10);
		else if (!strcmp(a, "--backlog")) backlog = strtol(v, NULL, 10);
		else usage();
		i++;
	}
	if (!path || !mode || pid <= 0 || expect == 0 || interval_ms <= 0)
		usage();
	bool poll_mode = !strcmp(mode, "poll");
	if (!poll_mode && strcmp(mode, "timer"))
		usage();

	libbpf_set_print(quiet_print);
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	if (!obj)
		die("open object", errno);

	/* Only on_getppid: the object also holds a uprobe program and one the verifier refuses. */
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, obj)
		bpf_program__set_autoload(prog, strcmp(bpf_program__name(prog), "on_getppid") == 0);

	/* const volatile settings: copy .rodata's initial image, patch it, hand it back. */
	struct bpf_map *ro = bpf_object__find_map_by_name(obj, ".rodata");
	if (!ro)
		die("find .rodata", ENOENT);
	size_t ro_size = 0;
	const void *ro_init = bpf_map__initial_value(ro, &ro_size);
	uint8_t *ro_copy = malloc(ro_size);
	if (!ro_init || !ro_copy)
		die("read .rodata", ENOMEM);
	memcpy(ro_copy, ro_init, ro_size);
	set_const(obj, ro_copy, ro_size, "target_tgid", (uint64_t)pid);
	set_const(obj, ro_copy, ro_size, "burst", (uint64_t)burst);
	set_const(obj, ro_copy, ro_size, "wakeup", poll_mode ? 1 : 0);
	int err = bpf_map__set_initial_value(ro, ro_copy, ro_size);
	free(ro_copy);
	if (err)
		die("set .rodata", err);

	struct bpf_map *events = bpf_object__find_map_by_name(obj, "events");
	if (!events)
		die("find map events", ENOENT);
	if (ring_bytes && (err = bpf_map__set_max_entries(events, (uint32_t)ring_bytes)))
		die("set ring size", err);

	if ((err = bpf_object__load(obj)))
		die("load", err);
	struct bpf_link *link = bpf_program__attach_tracepoint(bpf_object__find_program_by_name(obj, "on_getppid"), "syscalls", "sys_enter_getppid");
	if (!link)
		die("attach tracepoint syscalls/sys_enter_getppid", errno);
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(events), on_sample, NULL, NULL);
	if (!rb)
		die("ring_buffer__new", errno);

	printf("ready\n");
	fflush(stdout);
	char line[64];
	if (backlog && !fgets(line, sizeof(line), stdin)) /* --backlog: let the ring fill, read on "drain" */
		die("stdin", EPIPE);

	uint64_t first_seen = 0, last_delivery = 0, last_progress = now_ns(), batches = 0, lost = 0;
	const uint64_t idle_ns = (uint64_t)idle_ms * 1000000ull;
	const struct timespec period = { .tv_sec = interval_ms / 1000, .tv_nsec = (interval_ms % 1000) * 1000000L };
	bool idle = false;
	for (;;) {
		/* timer: consume, then sleep a period (an empty ring costs one look at two positions) */
		int n = poll_mode ? ring_buffer__poll(rb, 100) : ring_buffer__consume(rb);
		if (n < 0 && n != -EINTR)
			die(poll_mode ? "ring_buffer__poll" : "ring_buffer__consume", n);
		uint64_t t = now_ns();
		if (n > 0) {
			batches++;
			if (first_seen == 0)
				first_seen = t;
			last_delivery = t;
			last_progress = t;
		}
		/* the lost counter is a map lookup: read it only when it can end the run */
		if (n <= 0 || st.received >= expect) {
			lost = read_lost(obj);
			if (st.received + lost >= expect)
				break;
		}
		if (t - last_progress > idle_ns && (st.received > 0 || t - last_progress > 30 * idle_ns)) {
			idle = true;
			break;
		}
		if (!poll_mode)
			nanosleep(&period, NULL);
	}
	lost = read_lost(obj);
	uint64_t emitted = read_bss_u64(obj, "emitted");

	printf("{\"consumer\":\"c-%s\",\"received\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"lost\":%" PRIu64
	       ",\"emitted\":%" PRIu64 ",\"expected\":%llu,\"outOfOrder\":%" PRIu64 ",\"batches\":%" PRIu64
	       ",\"firstSeenNs\":%" PRIu64 ",\"lastDeliveryNs\":%" PRIu64 ",\"firstEventTsNs\":%" PRIu64
	       ",\"lastEventTsNs\":%" PRIu64 ",\"idleStop\":%s}\n",
	       mode, st.received, st.bytes, lost, emitted, expect, st.out_of_order, batches, first_seen, last_delivery,
	       st.first_ts, st.last_ts, idle ? "true" : "false");
	fflush(stdout);

	(void)!fgets(line, sizeof(line), stdin);
	ring_buffer__free(rb);
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return 0;
}
