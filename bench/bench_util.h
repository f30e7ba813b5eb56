/*
 * bench_util.h - what the C benchmarks share (header-only: each benchmark
 * is one program).  Latencies are kept in nanoseconds and printed in µs.
 */
#ifndef VCFS_BENCH_UTIL_H
#define VCFS_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

static inline int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sort v[0..n) and return its p-th percentile (0..100; v[n * p / 100],
 * the largest for 100) in µs; 0 for no values. */
static inline double bench_pct_us(uint64_t *v, size_t n, unsigned p)
{
	size_t i;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), bench_cmp_u64);
	i = n * p / 100;
	return (double)v[i < n ? i : n - 1] / 1e3;
}

/* The datastore to format: given (a PATH argument) if not NULL, else a
 * sparse file of bytes made from tmpl (".../name-XXXXXX", filled in place;
 * the caller unlinks it when the returned pointer is tmpl).  NULL after
 * saying why. */
static inline const char *bench_scratch(const char *given, char *tmpl, uint64_t bytes)
{
	int fd;

	if (given)
		return given;
	fd = mkstemp(tmpl);
	if (fd < 0 || ftruncate(fd, (off_t)bytes)) {
		perror(tmpl);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	close(fd);
	return tmpl;
}

#endif
