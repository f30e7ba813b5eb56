/*
 * lock_bench.c - lock record latency (not a test: prints numbers).
 *
 *   lock_bench [--count N] [--label L] [PATH]
 *
 * Joins one host (T = 1 s) on PATH (default: a 256 MiB temporary file under
 * /var/tmp, removed at exit) and times, N times each:
 *   excl   uncontended EXCL acquire (1 read + 1 CAS) and release (1 read + 1 CAS)
 *   ro2    RO acquire + release while a second host holds the record RO
 *          (the holder check is answered from the heartbeat monitor's view)
 *   cas    a bare vcfs_disk_cas of one sector, for comparison
 * Prints one line per case: "row LABEL case=C n=N p50_us=.. p99_us=.. max_us=..".
 * PATH is written over (heartbeat slots and a few lock records): test files only.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench/bench_util.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/vcfs_err.h"
#include "disk/disk.h"
#include "lock/lock.h"

static void report(const char *label, const char *what, uint64_t *ns, int n)
{
	printf("row %s case=%s n=%d p50_us=%.1f p99_us=%.1f max_us=%.1f\n", label, what, n,
	       bench_pct_us(ns, (size_t)n, 50), bench_pct_us(ns, (size_t)n, 99),
	       bench_pct_us(ns, (size_t)n, 100));
}

static int open_host(const char *path, const struct vcfs_sb *sb, const char *name,
		     struct vcfs_disk **d, struct vcfs_hb **hb)
{
	struct vcfs_disk_opts o = { .io_timeout_ms = sb->io_timeout_ms };
	struct vcfs_hb_opts ho = { .host_name = name, .want_slot = -1 };
	int rc = vcfs_disk_open(path, &o, d);

	if (rc)
		return rc;
	rc = vcfs_hb_join(*d, sb, &ho, hb);
	if (rc)
		vcfs_disk_close(*d);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "label", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	struct vcfs_mkfs_params p = { .volume_bytes = 256ull << 20, .max_hosts = 8,
				      .io_timeout_ms = 1000, .label = "lockbench" };
	char tmp[] = "/var/tmp/vcfs-lockbench-XXXXXX";
	const char *path = NULL, *label = "file";
	struct vcfs_disk *d1, *d2;
	struct vcfs_hb *h1, *h2;
	struct vcfs_sb sb;
	uint64_t *acq, *rel, *ns, v, t0, blk;
	uint8_t *cur, *nw;
	int n = 2000, c, rc;

	while ((c = getopt_long(argc, argv, "n:l:", lo, NULL)) != -1) {
		switch (c) {
		case 'n': n = atoi(optarg); break;
		case 'l': label = optarg; break;
		default:
			fprintf(stderr, "usage: lock_bench [--count N] [--label L] [PATH]\n");
			return 2;
		}
	}
	if (n < 10)
		n = 10;
	path = bench_scratch(optind < argc ? argv[optind] : NULL, tmp, p.volume_bytes);
	if (!path)
		return 1;
	vcfs_log_set_level(VCFS_LOG_WARN);
	acq = calloc((size_t)n, sizeof(*acq));
	rel = calloc((size_t)n, sizeof(*rel));
	ns = calloc((size_t)n, sizeof(*ns));
	if (!acq || !rel || !ns || vcfs_layout_compute(&p, &sb))
		return 1;
	if ((rc = open_host(path, &sb, "bench1", &d1, &h1)) ||
	    (rc = open_host(path, &sb, "bench2", &d2, &h2))) {
		fprintf(stderr, "lock_bench: join: %s\n", vcfs_strerror(rc));
		return 1;
	}
	blk = vcfs_inode_lock_blk(&sb, 100);

	for (int i = 0; i < n; i++) {
		t0 = vcfs_now_ns();
		rc = vcfs_lock_acquire(h1, blk, VCFS_LOCK_EXCL, 0, 0, &v, NULL);
		acq[i] = vcfs_now_ns() - t0;
		if (!rc) {
			t0 = vcfs_now_ns();
			rc = vcfs_lock_release(h1, blk, 0);
			rel[i] = vcfs_now_ns() - t0;
		}
		ns[i] = acq[i] + rel[i];
		if (rc) {
			fprintf(stderr, "lock_bench: %s\n", vcfs_strerror(rc));
			return 1;
		}
	}
	report(label, "excl_acquire", acq, n);
	report(label, "excl_release", rel, n);
	report(label, "excl_pair", ns, n);

	blk = vcfs_inode_lock_blk(&sb, 101);
	if ((rc = vcfs_lock_acquire(h2, blk, VCFS_LOCK_RO, 0, 0, &v, NULL)))
		return 1;
	for (int i = 0; i < n; i++) {
		t0 = vcfs_now_ns();
		rc = vcfs_lock_acquire(h1, blk, VCFS_LOCK_RO, 0, 0, &v, NULL);
		if (!rc)
			rc = vcfs_lock_release(h1, blk, 0);
		ns[i] = vcfs_now_ns() - t0;
		if (rc) {
			fprintf(stderr, "lock_bench: %s\n", vcfs_strerror(rc));
			return 1;
		}
	}
	report(label, "ro2_pair", ns, n);
	vcfs_lock_release(h2, blk, 0);

	cur = vcfs_disk_buf_alloc(VCFS_BLK);
	nw = vcfs_disk_buf_alloc(VCFS_BLK);
	blk = vcfs_inode_lock_blk(&sb, 102) * VCFS_BLK;
	if (!cur || !nw || vcfs_disk_read(d1, blk, cur, VCFS_BLK))
		return 1;
	for (int i = 0; i < n; i++) {
		memcpy(nw, cur, VCFS_BLK);
		nw[0]++;
		t0 = vcfs_now_ns();
		rc = vcfs_disk_cas(d1, blk, cur, nw);
		ns[i] = vcfs_now_ns() - t0;
		if (rc)
			return 1;
		memcpy(cur, nw, VCFS_BLK);
	}
	report(label, "disk_cas", ns, n);

	vcfs_hb_leave(h2);
	vcfs_hb_leave(h1);
	vcfs_disk_close(d2);
	vcfs_disk_close(d1);
	if (path == tmp)
		unlink(tmp);
	free(cur);
	free(nw);
	free(acq);
	free(rel);
	free(ns);
	return 0;
}
