/*
 * dir_bench.c - does a directory stay fast as it grows?  (Not a test: prints
 * numbers.)
 *
 *   dir_bench [-n N] [--steps K] [--label L] [PATH]
 *
 * Formats PATH (default: a sparse 4 GiB file under /var/tmp, removed at
 * exit) with room for N + 1000 inodes, mounts it as one host (T = 1 s,
 * through the fs library: no FUSE, no kernel cache) and fills one directory
 * with N empty files, in K steps (default 10).  After each step it times,
 * against the directory as it now is:
 *   create   every create of the step (mknod of an empty file)
 *   lookup   1000 lookups of random existing names (lockless reads)
 *   miss     1000 lookups of names that do not exist
 * and prints one line per step: "row LABEL entries=E create_ops=.. create_p50_us=..
 * create_p99_us=.. lookup_p50_us=.. lookup_p99_us=.. miss_p50_us=.. miss_p99_us=..".
 * Flat rows from 10% to 100% of N are what "stays fast" means.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "bench/bench_util.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/vcfs_err.h"
#include "disk/disk.h"
#include "fs/fs.h"
#include "fs/mkfs.h"

static uint64_t rnd_state = 88172645463325252ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "steps", required_argument, 0, 's' },
		{ "label", required_argument, 0, 'l' },
		{ 0, 0, 0, 0 }
	};
	unsigned long n = 100000, steps = 10;
	const char *label = "vcfs";
	char tmp[] = "/var/tmp/vcfs-dirbench-XXXXXX", uri[4200], name[64];
	const char *path = NULL;
	struct vcfs_mkfs_params p = { .volume_bytes = 4ull << 30, .max_hosts = 8,
				      .io_timeout_ms = 1000, .label = "dirbench" };
	struct vcfs_mount_opts mo = { .host_name = "dirbench" };
	struct vcfs_disk *d;
	struct vcfs_fs *fs;
	struct vcfs_attr a;
	uint64_t *cr, lk[1000], ms[1000], dir;
	unsigned long done = 0;
	int c, rc;

	while ((c = getopt_long(argc, argv, "n:", lo, NULL)) != -1) {
		switch (c) {
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 's': steps = strtoul(optarg, NULL, 10); break;
		case 'l': label = optarg; break;
		default:
			fprintf(stderr, "usage: dir_bench [-n N] [--steps K] [--label L] [PATH]\n");
			return 2;
		}
	}
	if (n < 10 || steps < 1 || steps > n) {
		fprintf(stderr, "dir_bench: -n at least 10 and --steps between 1 and n\n");
		return 2;
	}
	path = bench_scratch(optind < argc ? argv[optind] : NULL, tmp, p.volume_bytes);
	if (!path)
		return 1;
	vcfs_log_set_level(VCFS_LOG_WARN);
	p.inodes = n + 1000;
	snprintf(uri, sizeof(uri), "file:%s", path);
	cr = calloc(n / steps + 1, sizeof(*cr));
	if (!cr)
		return 1;
	if ((rc = vcfs_disk_open(uri, NULL, &d)) ||
	    (rc = vcfs_mkfs(d, &p, VCFS_MKFS_FORCE, NULL))) {
		fprintf(stderr, "dir_bench: mkfs %s: %s\n", path, vcfs_strerror(rc));
		return 1;
	}
	vcfs_disk_close(d);
	if ((rc = vcfs_fs_mount(uri, &mo, &fs)) ||
	    (rc = vcfs_fs_mkdir(fs, vcfs_fs_root(fs), "d", 0755, 0, 0, &a))) {
		fprintf(stderr, "dir_bench: mount %s: %s\n", path, vcfs_strerror(rc));
		return 1;
	}
	dir = a.ino;
	for (unsigned long s = 1; s <= steps; s++) {
		unsigned long upto = n * s / steps, k = 0;
		uint64_t t0 = vcfs_now_ns(), t;

		for (; done < upto; done++, k++) {
			snprintf(name, sizeof(name), "vm-%07lu-flat.vmdk", done);
			t = vcfs_now_ns();
			rc = vcfs_fs_mknod(fs, dir, name, S_IFREG | 0644, 0, 0, 0, &a);
			cr[k] = vcfs_now_ns() - t;
			if (rc) {
				fprintf(stderr, "dir_bench: create %s: %s\n", name, vcfs_strerror(rc));
				return 1;
			}
		}
		double secs = (double)(vcfs_now_ns() - t0) / 1e9;
		for (int i = 0; i < 1000; i++) {
			snprintf(name, sizeof(name), "vm-%07lu-flat.vmdk", (unsigned long)(rnd() % done));
			t = vcfs_now_ns();
			rc = vcfs_fs_lookup(fs, dir, name, &a);
			lk[i] = vcfs_now_ns() - t;
			if (rc) {
				fprintf(stderr, "dir_bench: lookup %s: %s\n", name, vcfs_strerror(rc));
				return 1;
			}
			snprintf(name, sizeof(name), "vm-%07lu-none.vmdk", (unsigned long)(rnd() % done));
			t = vcfs_now_ns();
			rc = vcfs_fs_lookup(fs, dir, name, &a);
			ms[i] = vcfs_now_ns() - t;
			if (rc != -ENOENT) {
				fprintf(stderr, "dir_bench: lookup of a missing name: %s\n",
					vcfs_strerror(rc));
				return 1;
			}
		}
		printf("row %s entries=%lu create_ops=%.0f create_p50_us=%.0f create_p99_us=%.0f "
		       "lookup_p50_us=%.0f lookup_p99_us=%.0f miss_p50_us=%.0f miss_p99_us=%.0f\n",
		       label, done, (double)k / secs, bench_pct_us(cr, k, 50), bench_pct_us(cr, k, 99),
		       bench_pct_us(lk, 1000, 50), bench_pct_us(lk, 1000, 99), bench_pct_us(ms, 1000, 50),
		       bench_pct_us(ms, 1000, 99));
		fflush(stdout);
	}
	rc = vcfs_fs_unmount(fs);
	if (path == tmp)
		unlink(tmp);
	free(cr);
	return rc ? 1 : 0;
}
