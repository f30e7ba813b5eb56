/*
 * disk_bench.c - shared-disk layer benchmark (not a test: prints numbers).
 *
 *   disk_bench [OPTIONS] [--label L] URI       through the vcfs disk layer
 *   disk_bench [OPTIONS] --raw PATH            plain O_DIRECT syscalls on a
 *                                              local file: the baseline
 *   OPTIONS: --seconds S (per measurement, default 3), --size SIZE (area,
 *            default and upper bound 64M unless given), --no-fill
 *
 * Fills the area once (one sequential 1 MiB pass, so that reads hit allocated
 * blocks; --no-fill skips it when an earlier run already did), then measures
 * 4 KiB random write and read at queue depth 1 (latency p50/p99), 4 KiB random
 * read and write at queue depth 16 (IOPS, 16 threads), 1 MiB sequential write
 * and read (MiB/s, 4 threads), and CAS latency p50/p99 (not in --raw mode).
 * Prints one line: "row LABEL key=value ..." for bench/run.sh to tabulate.
 * Writes over the first SIZE bytes of the target: test targets only.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/clock.h"
#include "common/size.h"
#include "disk/disk.h"
#include "disk/probe.h"

#define AREA (64ull << 20)

static struct vcfs_disk *D;
static int RAW_FD = -1;
static uint64_t AREA_LEN;
static double SECONDS = 3.0;

static void usage(FILE *f)
{
	fprintf(f, "usage: disk_bench [--seconds S] [--size SIZE] [--no-fill] [--label L] URI\n"
		   "       disk_bench [--seconds S] [--size SIZE] [--no-fill] [--label L] --raw PATH\n"
		   "  SIZE: bytes, or with a K/M/G suffix; the area written over (default 64M)\n"
		   "  prints one line: row LABEL key=value ...\n");
}

/* "10G", "512M", "4096" -> bytes; 0 on error (common/size.h). */
static uint64_t parse_size(const char *s)
{
	uint64_t v;

	return vcfs_parse_size(s, &v) ? 0 : v;
}

static int do_read(uint64_t off, void *b, size_t len)
{
	if (RAW_FD >= 0)
		return pread(RAW_FD, b, len, (off_t)off) == (ssize_t)len ? 0 : -EIO;
	return vcfs_disk_read(D, off, b, len);
}

static int do_write(uint64_t off, const void *b, size_t len)
{
	if (RAW_FD >= 0)
		return pwrite(RAW_FD, b, len, (off_t)off) == (ssize_t)len ? 0 : -EIO;
	return vcfs_disk_write(D, off, b, len, 0);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

struct job {
	int write;
	size_t bs;
	int seq;
	int id, nthreads;
	int once;		/* one pass over this thread's slice, no time limit */
	uint64_t ops, err;
	struct vcfs_lat lat;
	int record_lat;
};

static void *job_thread(void *p)
{
	struct job *j = p;
	void *b = vcfs_disk_buf_alloc(j->bs);
	uint64_t seed = 0x1234567ull + (uint64_t)j->id * 7919, end, pos, limit = UINT64_MAX;
	uint64_t nblk = AREA_LEN / j->bs;

	memset(b, 0xa5, j->bs);
	pos = (uint64_t)j->id * (nblk / (uint64_t)j->nthreads);
	if (j->once)	/* the last thread also takes the remainder */
		limit = j->id == j->nthreads - 1 ? nblk - pos : nblk / (uint64_t)j->nthreads;
	end = vcfs_now_ns() + (uint64_t)(SECONDS * 1e9);
	while (j->ops < limit && (j->once || vcfs_now_ns() < end)) {
		uint64_t blk = j->seq ? pos++ % nblk : rnd(&seed) % nblk;
		uint64_t t = vcfs_now_ns();
		int rc = j->write ? do_write(blk * j->bs, b, j->bs) : do_read(blk * j->bs, b, j->bs);
		if (rc) {
			j->err++;
			break;
		}
		if (j->record_lat)
			vcfs_lat_add(&j->lat, vcfs_now_ns() - t);
		j->ops++;
	}
	free(b);
	return NULL;
}

/*
 * Run nthreads jobs for SECONDS (once: one pass over the area instead);
 * returns ops per second; fills p50/p99 for QD1.
 */
static double run_jobs(int write, size_t bs, int seq, int nthreads, int once, double *p50,
		       double *p99, int *failed)
{
	pthread_t th[16];
	struct job j[16];
	uint64_t ops = 0, t0 = vcfs_now_ns();
	double secs;

	for (int i = 0; i < nthreads; i++) {
		j[i] = (struct job){ .write = write, .bs = bs, .seq = seq, .id = i,
				     .nthreads = nthreads, .once = once,
				     .record_lat = nthreads == 1 };
		pthread_create(&th[i], NULL, job_thread, &j[i]);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		ops += j[i].ops;
		*failed += j[i].err != 0;
	}
	secs = (double)(vcfs_now_ns() - t0) / 1e9;
	if (p50) {
		*p50 = (double)vcfs_lat_pct(&j[0].lat, 50) / 1000.0;
		*p99 = (double)vcfs_lat_pct(&j[0].lat, 99) / 1000.0;
	}
	for (int i = 0; i < nthreads; i++)
		vcfs_lat_free(&j[i].lat);
	return (double)ops / secs;
}

static double run(int write, size_t bs, int seq, int nthreads, double *p50, double *p99,
		  int *failed)
{
	return run_jobs(write, bs, seq, nthreads, 0, p50, p99, failed);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "seconds", required_argument, 0, 's' },
		{ "label", required_argument, 0, 'l' },
		{ "raw", required_argument, 0, 'r' },
		{ "size", required_argument, 0, 'z' },
		{ "no-fill", no_argument, 0, 'n' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 } };
	const char *label = NULL, *raw = NULL, *cas_mode = "-";
	uint64_t size = 0;
	int fill = 1;
	double rp50, rp99, wp50, wp99, riops, wiops, rmb, wmb, cp50 = 0, cp99 = 0;
	int c, failed = 0;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': SECONDS = atof(optarg); break;
		case 'l': label = optarg; break;
		case 'r': raw = optarg; break;
		case 'n': fill = 0; break;
		case 'z':
			size = parse_size(optarg);
			if (size < (1u << 20)) {
				fprintf(stderr, "disk_bench: --size %s: want at least 1M\n", optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (SECONDS <= 0) {
		fprintf(stderr, "disk_bench: --seconds must be positive\n");
		return 2;
	}
	if (raw) {
		RAW_FD = open(raw, O_RDWR | O_DIRECT);
		if (RAW_FD < 0) {
			perror(raw);
			return 1;
		}
		AREA_LEN = size ? size : AREA;
		label = label ? label : "raw-file";
	} else {
		int rc;
		if (optind != argc - 1) {
			usage(stderr);
			return 2;
		}
		rc = vcfs_disk_open(argv[optind], NULL, &D);
		if (rc) {
			char *red = vcfs_uri_redact(argv[optind]);	/* no CHAP password */
			fprintf(stderr, "disk_bench: %s: %s\n", red ? red : "target",
				vcfs_strerror(rc));
			free(red);
			return 1;
		}
		AREA_LEN = size ? size : AREA;
		if (vcfs_disk_info(D)->size < AREA_LEN)
			AREA_LEN = vcfs_disk_info(D)->size;
		label = label ? label : vcfs_disk_info(D)->backend;
		cas_mode = vcfs_cas_mode_name(vcfs_disk_info(D)->cas_mode);
	}
	AREA_LEN -= AREA_LEN % (1u << 20);

	/* fill the area once so reads hit allocated blocks */
	if (fill)
		run_jobs(1, 1u << 20, 1, 4, 1, NULL, NULL, &failed);
	wiops = run(1, 4096, 0, 1, &wp50, &wp99, &failed);
	riops = run(0, 4096, 0, 1, &rp50, &rp99, &failed);
	(void)wiops;
	(void)riops;
	riops = run(0, 4096, 0, 16, NULL, NULL, &failed);
	wiops = run(1, 4096, 0, 16, NULL, NULL, &failed);
	wmb = run(1, 1u << 20, 1, 4, NULL, NULL, &failed);
	rmb = run(0, 1u << 20, 1, 4, NULL, NULL, &failed);
	if (D) {
		const struct vcfs_disk_info *in = vcfs_disk_info(D);
		unsigned char *a = vcfs_disk_buf_alloc(in->lsec), *b = vcfs_disk_buf_alloc(in->lsec);
		struct vcfs_lat l = { 0 };
		uint64_t end = vcfs_now_ns() + (uint64_t)(SECONDS * 1e9);
		vcfs_disk_read(D, 0, a, in->lsec);
		while (vcfs_now_ns() < end) {
			uint64_t t = vcfs_now_ns();
			memcpy(b, a, in->lsec);
			b[0]++;
			if (vcfs_disk_cas(D, 0, a, b)) {
				failed++;
				break;
			}
			vcfs_lat_add(&l, vcfs_now_ns() - t);
			memcpy(a, b, in->lsec);
		}
		cp50 = (double)vcfs_lat_pct(&l, 50) / 1000.0;
		cp99 = (double)vcfs_lat_pct(&l, 99) / 1000.0;
		vcfs_lat_free(&l);
		free(a);
		free(b);
		vcfs_disk_close(D);
	} else {
		close(RAW_FD);
	}
	printf("row %s rd_p50_us=%.1f rd_p99_us=%.1f wr_p50_us=%.1f wr_p99_us=%.1f "
	       "rd_qd16_iops=%.0f wr_qd16_iops=%.0f seq_wr_mibs=%.1f seq_rd_mibs=%.1f "
	       "cas_p50_us=%.1f cas_p99_us=%.1f errors=%d cas_mode=%s\n",
	       label, rp50, rp99, wp50, wp99, riops, wiops, wmb, rmb, cp50, cp99, failed,
	       cas_mode);
	return failed ? 1 : 0;
}
