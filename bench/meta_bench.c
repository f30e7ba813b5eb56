/*
 * meta_bench.c - metadata operation rates in one directory (not a test:
 * prints numbers).
 *
 *   meta_bench [-n N] [--settle SECS] [--label L] [--prefix P] DIR
 *       N creates (open O_CREAT|O_EXCL|O_WRONLY + close of an empty file),
 *       then N stats, then N unlinks, each phase timed on its own.
 *   meta_bench --seconds S [--start-at EPOCH] [--label L] [--prefix P] DIR
 *       creates files until S seconds have passed (the files are left), for
 *       runs of many processes or hosts at once: with --start-at (seconds
 *       since the epoch, CLOCK_REALTIME, which every namespace shares) they
 *       all begin at the same instant and run for the same time, so their
 *       counts add up to an aggregate rate.
 *
 * --settle waits that long between the creates and the stats, so that a
 * FUSE mount's kernel entry and attribute cache (1 s in vcfs-fuse) has
 * expired and every stat reaches the daemon; the wait is not timed.
 *
 * Prints one line, "row LABEL key=value ...": per phase PHASE_ops (ops/s),
 * PHASE_p50_us and PHASE_p99_us (latency of one operation), and n=, errors=.
 * DIR must exist; names are PREFIX<i> (default prefix "f").
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "bench/bench_util.h"

struct lat {
	uint64_t *ns;
	size_t n, cap;
};

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int lat_add(struct lat *l, uint64_t ns)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 4096;
		uint64_t *p = realloc(l->ns, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->ns = p;
		l->cap = cap;
	}
	l->ns[l->n++] = ns;
	return 0;
}

/* " PHASE_ops=.. PHASE_p50_us=.. PHASE_p99_us=.." for l->n ops over secs. */
static void report(const char *phase, struct lat *l, double secs)
{
	if (!l->n || secs <= 0) {
		printf(" %s_ops=0", phase);
		return;
	}
	printf(" %s_ops=%.1f %s_p50_us=%.1f %s_p99_us=%.1f", phase, (double)l->n / secs,
	       phase, bench_pct_us(l->ns, l->n, 50), phase, bench_pct_us(l->ns, l->n, 99));
}

enum phase { P_CREATE, P_STAT, P_UNLINK };

/* One operation on DIR/PREFIX<i>: 0 or -errno. */
static int one_op(enum phase ph, const char *dir, const char *prefix, size_t i)
{
	char path[4096];
	struct stat st;
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s%zu", dir, prefix, i) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	switch (ph) {
	case P_CREATE:
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		return close(fd) ? -errno : 0;
	case P_STAT:
		return stat(path, &st) ? -errno : 0;
	case P_UNLINK:
		return unlink(path) ? -errno : 0;
	}
	return -EINVAL;
}

/* Run phase ph over names [0, n); first error is printed once. */
static double run_phase(enum phase ph, const char *dir, const char *prefix, size_t n,
			struct lat *l, unsigned *errors)
{
	static const char *names[] = { "create", "stat", "unlink" };
	uint64_t t0 = now_ns(CLOCK_MONOTONIC), t;

	for (size_t i = 0; i < n; i++) {
		int rc;

		t = now_ns(CLOCK_MONOTONIC);
		rc = one_op(ph, dir, prefix, i);
		if (rc) {
			if (!(*errors)++)
				fprintf(stderr, "meta_bench: %s %s/%s%zu: %s\n", names[ph], dir,
					prefix, i, strerror(-rc));
			continue;
		}
		if (lat_add(l, now_ns(CLOCK_MONOTONIC) - t))
			break;
	}
	return (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
}

static void sleep_until_realtime(double epoch)
{
	struct timespec ts;

	if (epoch <= 0)
		return;
	ts.tv_sec = (time_t)epoch;
	ts.tv_nsec = (long)((epoch - (double)ts.tv_sec) * 1e9);
	while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: meta_bench [-n N] [--settle SECS] [--label L] [--prefix P] DIR\n"
		   "       meta_bench --seconds S [--start-at EPOCH] [--label L] [--prefix P] DIR\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 's' },
		{ "start-at", required_argument, NULL, 'a' },
		{ "settle", required_argument, NULL, 'w' },
		{ "label", required_argument, NULL, 'l' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct lat cr = { 0 }, st = { 0 }, ul = { 0 };
	const char *label = "dir", *prefix = "f", *dir;
	double secs = 0, start_at = 0, settle = 0, t_cr, t_st, t_ul;
	unsigned errors = 0;
	size_t n = 1000;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "n:s:a:w:l:p:h", lo, NULL)) != -1) {
		switch (c) {
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 's': secs = atof(optarg); break;
		case 'a': start_at = atof(optarg); break;
		case 'w': settle = atof(optarg); break;
		case 'l': label = optarg; break;
		case 'p': prefix = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1 || (!secs && !n) || secs < 0) {
		usage(stderr);
		return 2;
	}
	dir = argv[optind];

	if (secs > 0) {
		uint64_t t0, end, t;
		size_t i;

		sleep_until_realtime(start_at);
		t0 = now_ns(CLOCK_MONOTONIC);
		end = t0 + (uint64_t)(secs * 1e9);
		for (i = 0; (t = now_ns(CLOCK_MONOTONIC)) < end; i++) {
			int r = one_op(P_CREATE, dir, prefix, i);

			if (r) {
				if (!errors++)
					fprintf(stderr, "meta_bench: create %s/%s%zu: %s\n", dir,
						prefix, i, strerror(-r));
				if (errors > 100)
					break;	/* e.g. out of inodes: stop, report */
				continue;
			}
			if (lat_add(&cr, now_ns(CLOCK_MONOTONIC) - t))
				goto out;
		}
		/* the rate counts completed creates over the whole window */
		t_cr = (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
		printf("row %s n=%zu secs=%.3f errors=%u", label, cr.n, t_cr, errors);
		report("create", &cr, t_cr);
		printf("\n");
		rc = errors ? 1 : 0;
		goto out;
	}

	t_cr = run_phase(P_CREATE, dir, prefix, n, &cr, &errors);
	if (settle > 0) {
		struct timespec ts = { .tv_sec = (time_t)settle,
				       .tv_nsec = (long)((settle - (double)(time_t)settle) * 1e9) };
		nanosleep(&ts, NULL);
	}
	t_st = run_phase(P_STAT, dir, prefix, n, &st, &errors);
	t_ul = run_phase(P_UNLINK, dir, prefix, n, &ul, &errors);
	printf("row %s n=%zu errors=%u", label, n, errors);
	report("create", &cr, t_cr);
	report("stat", &st, t_st);
	report("unlink", &ul, t_ul);
	printf("\n");
	rc = errors ? 1 : 0;
out:
	free(cr.ns);
	free(st.ns);
	free(ul.ns);
	return rc;
}
