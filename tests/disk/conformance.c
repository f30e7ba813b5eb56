/*
 * conformance.c - the shared-disk conformance suite, run against every
 * backend with its real server (tests/disk_*.sh).  DESTROYS the datastore's
 * contents: point it at test targets only.
 *
 *   conformance URI [--stress NPROC] [--iters N] [--threads N] [--timeout-ms T]
 *
 * Prints one line per check ("ok - name" / "not ok - name: why") and ends
 * with "conformance: N passed, N failed"; exit 0 only if all passed.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "disk/disk.h"
#include "disk/probe.h"
#include "common/clock.h"

static int npass, nfail;
static struct vcfs_disk *D, *D2;	/* D2: a second, independent open */
static const char *URI;
static struct vcfs_disk_opts OPTS;
static uint32_t LSEC;
static uint64_t SIZE;

static void result(int ok, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void result(int ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		npass++;
		printf("ok - %s\n", name);
	} else {
		nfail++;
		printf("not ok - %s: ", name);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n");
	}
	fflush(stdout);
}

static void fill(unsigned char *b, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (unsigned char)x;
	}
}

/* Write a pattern at off/len through D with an unaligned buffer when odd, read
 * it back through D and through the independent D2. */
static int roundtrip(uint64_t off, size_t len, int unaligned, unsigned flags, char *why,
		     size_t whylen)
{
	unsigned char *w = malloc(len + 1), *r = malloc(len + 1);
	unsigned char *wp = unaligned ? w + 1 : w, *rp = unaligned ? r + 1 : r;
	int rc;

	if (!w || !r) {
		snprintf(why, whylen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	fill(wp, len, off ^ len);
	rc = vcfs_disk_write(D, off, wp, len, flags);
	if (rc) {
		snprintf(why, whylen, "write: %s", vcfs_strerror(rc));
		goto out;
	}
	memset(rp, 0xee, len);
	rc = vcfs_disk_read(D, off, rp, len);
	if (rc || memcmp(wp, rp, len)) {
		snprintf(why, whylen, "read back: %s", rc ? vcfs_strerror(rc) : "data differs");
		rc = rc ? rc : -EIO;
		goto out;
	}
	memset(rp, 0xee, len);
	rc = vcfs_disk_read(D2, off, rp, len);
	if (rc || memcmp(wp, rp, len)) {
		snprintf(why, whylen, "second opener reads %s",
			 rc ? vcfs_strerror(rc) : "other data (a cache between hosts?)");
		rc = rc ? rc : -EIO;
	}
out:
	free(w);
	free(r);
	return rc;
}

static void t_geometry(void)
{
	const struct vcfs_disk_info *in = vcfs_disk_info(D);

	printf("# %s: size %llu, lsec %u, psec %u, max_io %u, cas %s, caps%s%s%s%s\n",
	       in->desc, (unsigned long long)in->size, in->lsec, in->psec, in->max_io,
	       vcfs_cas_mode_name(in->cas_mode),
	       in->caps & VCFS_DISK_CAP_UNMAP ? " unmap" : "",
	       in->caps & VCFS_DISK_CAP_FUA ? " fua" : "",
	       in->caps & VCFS_DISK_CAP_ZEROES ? " zeroes" : "",
	       in->caps & VCFS_DISK_CAP_CAS_SHARED ? " cas-shared" : "");
	result(in->size >= (1u << 20) && in->size % in->lsec == 0, "geometry: size",
	       "size %llu", (unsigned long long)in->size);
	result(in->lsec >= 512 && in->lsec <= 4096 && !(in->lsec & (in->lsec - 1)) &&
		       in->psec >= in->lsec && in->max_io >= in->lsec &&
		       in->max_io % in->lsec == 0,
	       "geometry: sector sizes", "lsec %u psec %u max_io %u", in->lsec, in->psec,
	       in->max_io);
	result(in->cas_mode != VCFS_CAS_NONE, "geometry: atomic CAS offered",
	       "backend has no atomic compare-and-write");
	result(!strstr(in->desc, "%") && !strstr(in->desc, "@"),
	       "geometry: description hides credentials", "desc '%s'", in->desc);
}

static void t_roundtrips(void)
{
	static const uint64_t secs[] = { 0, 1, 7, 63, 1023, 2047 };
	static const size_t nsecs[] = { 1, 3, 8, 17, 255 };
	char why[256], name[96];
	int ok = 1;

	for (size_t i = 0; ok && i < sizeof(secs) / sizeof(*secs); i++)
		for (size_t j = 0; ok && j < sizeof(nsecs) / sizeof(*nsecs); j++) {
			uint64_t off = secs[i] * LSEC;
			size_t len = nsecs[j] * LSEC;
			if (off + len > SIZE)
				continue;
			if (roundtrip(off, len, (int)(i + j) & 1, 0, why, sizeof(why))) {
				snprintf(name, sizeof(name), "off %llu len %zu",
					 (unsigned long long)off, len);
				ok = 0;
			}
		}
	result(ok, "round trip at odd sector offsets and sizes", "%s: %s", name, why);

	/* larger than one request: the generic layer must split */
	{
		const struct vcfs_disk_info *in = vcfs_disk_info(D);
		size_t len = in->max_io + 3 * LSEC;
		uint64_t off = 5 * LSEC;
		if (off + len <= SIZE)
			result(!roundtrip(off, len, 1, 0, why, sizeof(why)),
			       "round trip larger than max_io", "%s", why);
	}
	result(!roundtrip(SIZE - 2 * LSEC, 2 * LSEC, 0, VCFS_IO_FUA, why, sizeof(why)),
	       "FUA write of the last sectors", "%s", why);
}

static void t_bytes(void)
{
	unsigned char w[1000], r[1000];
	int rc;

	fill(w, sizeof(w), 77);
	rc = vcfs_disk_pwrite(D, 3 * LSEC - 123, w, sizeof(w), 0);
	if (!rc)
		rc = vcfs_disk_pread(D2, 3 * LSEC - 123, r, sizeof(r));
	result(!rc && !memcmp(w, r, sizeof(w)), "byte-granular pwrite/pread across sectors",
	       "%s", rc ? vcfs_strerror(rc) : "data differs");
}

static void t_bad_args(void)
{
	unsigned char *b = vcfs_disk_buf_alloc(2 * LSEC);
	int rc;

	rc = vcfs_disk_read(D, 1, b, LSEC);
	result(rc == -VCFS_EALIGN, "unaligned offset refused", "got %s", vcfs_strerror(rc));
	rc = vcfs_disk_write(D, 0, b, LSEC + 1, 0);
	result(rc == -VCFS_EALIGN, "unaligned length refused", "got %s", vcfs_strerror(rc));
	rc = vcfs_disk_read(D, SIZE - LSEC, b, 2 * LSEC);
	result(rc == -VCFS_ERANGE, "read past the end refused", "got %s", vcfs_strerror(rc));
	rc = vcfs_disk_cas(D, SIZE, b, b);
	result(rc == -VCFS_ERANGE, "CAS past the end refused", "got %s", vcfs_strerror(rc));
	free(b);
}

static void t_flush(void)
{
	char why[256];
	int rc = roundtrip(100 * LSEC, 8 * LSEC, 0, 0, why, sizeof(why));

	if (!rc)
		rc = vcfs_disk_flush(D);
	result(!rc, "write then flush", "%s", rc ? vcfs_strerror(rc) : why);
}

static int all_zero(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

static void t_zeroing(int unmap)
{
	const char *name = unmap ? "unmap reads back zeros" : "write-zeroes reads back zeros";
	size_t len = 2u << 20;
	uint64_t off = 1u << 20;
	unsigned char *b;
	char why[256];
	int rc;

	if (off + len + LSEC > SIZE)
		len = (size_t)((SIZE - off) / 2 / LSEC * LSEC);
	b = vcfs_disk_buf_alloc(len + 2 * LSEC);
	rc = roundtrip(off - LSEC, len + 2 * LSEC, 0, 0, why, sizeof(why));
	if (rc) {
		result(0, name, "fill: %s", why);
		goto out;
	}
	rc = unmap ? vcfs_disk_unmap(D, off, len) : vcfs_disk_write_zeroes(D, off, len, 0);
	if (!rc)
		rc = vcfs_disk_read(D2, off - LSEC, b, len + 2 * LSEC);
	if (rc) {
		result(0, name, "%s", vcfs_strerror(rc));
		goto out;
	}
	/* the range reads zero, the sectors just outside it are untouched */
	result(all_zero(b + LSEC, len) && !all_zero(b, LSEC) && !all_zero(b + LSEC + len, LSEC),
	       name, "range not zero or neighbours clobbered");
out:
	free(b);
}

static void t_cas(void)
{
	unsigned char *a = vcfs_disk_buf_alloc(LSEC), *b = vcfs_disk_buf_alloc(LSEC);
	unsigned char *c = vcfs_disk_buf_alloc(LSEC), *r = vcfs_disk_buf_alloc(LSEC);
	uint64_t off = 40 * LSEC;
	int rc;

	fill(a, LSEC, 1);
	fill(b, LSEC, 2);
	fill(c, LSEC, 3);
	rc = vcfs_disk_write(D, off, a, LSEC, VCFS_IO_FUA);
	if (!rc)
		rc = vcfs_disk_cas(D, off, a, b);
	if (!rc)
		rc = vcfs_disk_read(D2, off, r, LSEC);
	result(!rc && !memcmp(r, b, LSEC), "CAS success replaces the sector", "%s",
	       rc ? vcfs_strerror(rc) : "sector not replaced");
	rc = vcfs_disk_cas(D2, off, a, c);
	result(rc == -VCFS_EMISCOMPARE, "CAS miscompare reported", "got %s",
	       vcfs_strerror(rc));
	rc = vcfs_disk_read(D, off, r, LSEC);
	result(!rc && !memcmp(r, b, LSEC), "CAS miscompare leaves the data untouched", "%s",
	       rc ? vcfs_strerror(rc) : "sector changed");
	/* a miscompare only in the last byte must still be caught */
	memcpy(c, b, LSEC);
	c[LSEC - 1] ^= 1;
	rc = vcfs_disk_cas(D, off, c, a);
	result(rc == -VCFS_EMISCOMPARE, "CAS compares every byte of the sector", "got %s",
	       vcfs_strerror(rc));
	/* the neighbour sector is untouched by a CAS */
	fill(a, LSEC, 9);
	rc = vcfs_disk_write(D, off + LSEC, a, LSEC, 0);
	if (!rc)
		rc = vcfs_disk_cas(D, off, b, c);
	if (!rc)
		rc = vcfs_disk_read(D2, off + LSEC, r, LSEC);
	result(!rc && !memcmp(r, a, LSEC), "CAS touches one sector only", "%s",
	       rc ? vcfs_strerror(rc) : "neighbour changed");
	free(a);
	free(b);
	free(c);
	free(r);
}

/* Many threads on one handle: each owns a stripe, writes and verifies. */
struct qd_arg {
	int id, iters, err;
};

static void *qd_thread(void *p)
{
	struct qd_arg *a = p;
	unsigned char *w = vcfs_disk_buf_alloc(4096), *r = vcfs_disk_buf_alloc(4096);
	uint64_t base = (4u << 20) + (uint64_t)a->id * (64u << 10);

	for (int i = 0; i < a->iters && !a->err; i++) {
		uint64_t off = base + (uint64_t)(i % 16) * 4096;
		fill(w, 4096, (uint64_t)a->id << 32 | (uint64_t)i);
		if (vcfs_disk_write(D, off, w, 4096, 0) || vcfs_disk_read(D, off, r, 4096) ||
		    memcmp(w, r, 4096))
			a->err = 1;
	}
	free(w);
	free(r);
	return NULL;
}

static void t_threads(int nthreads)
{
	pthread_t th[64];
	struct qd_arg args[64];
	int bad = 0;

	if ((4u << 20) + (uint64_t)nthreads * (64u << 10) > SIZE) {
		result(1, "concurrent threads (skipped: datastore too small)", "%s", "");
		return;
	}
	for (int i = 0; i < nthreads; i++) {
		args[i] = (struct qd_arg){ .id = i, .iters = 64 };
		pthread_create(&th[i], NULL, qd_thread, &args[i]);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		bad += args[i].err;
	}
	result(!bad, "16 threads on one handle write and verify", "%d threads failed", bad);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "stress", required_argument, 0, 's' },
		{ "iters", required_argument, 0, 'i' },
		{ "threads", required_argument, 0, 't' },
		{ "timeout-ms", required_argument, 0, 'T' },
		{ 0, 0, 0, 0 } };
	int nproc = 4, iters = 100, nthreads = 16, c, rc;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': nproc = atoi(optarg); break;
		case 'i': iters = atoi(optarg); break;
		case 't': nthreads = atoi(optarg); break;
		case 'T': OPTS.io_timeout_ms = (uint32_t)atoi(optarg); break;
		default:
			fprintf(stderr, "usage: conformance URI [--stress N] [--iters N] "
					"[--threads N] [--timeout-ms T]\n");
			return 2;
		}
	}
	if (optind != argc - 1 || nthreads > 64) {
		fprintf(stderr, "usage: conformance URI [--stress N] [--iters N] [--threads N<=64]\n");
		return 2;
	}
	URI = argv[optind];
	rc = vcfs_disk_open(URI, &OPTS, &D);
	if (!rc)
		rc = vcfs_disk_open(URI, &OPTS, &D2);
	if (rc) {
		printf("not ok - open %s: %s\n", URI, vcfs_strerror(rc));
		printf("conformance: 0 passed, 1 failed\n");
		return 1;
	}
	LSEC = vcfs_disk_info(D)->lsec;
	SIZE = vcfs_disk_info(D)->size;

	t_geometry();
	t_bad_args();
	t_roundtrips();
	t_bytes();
	t_flush();
	t_zeroing(1);
	t_zeroing(0);
	t_cas();
	t_threads(nthreads);
	if (nproc > 0) {
		uint64_t final = 0, mis = 0, t0 = vcfs_now_ns();
		rc = vcfs_cas_stress(URI, &OPTS, 48 * (uint64_t)LSEC, nproc, iters, &final, &mis);
		printf("# stress: %d processes x %d increments: final %llu, %llu lost races, "
		       "%.1f s\n", nproc, iters, (unsigned long long)final,
		       (unsigned long long)mis, (double)(vcfs_now_ns() - t0) / 1e9);
		result(!rc && final == (uint64_t)nproc * (uint64_t)iters,
		       "concurrent CAS counter is exact", "%s, final %llu, want %d",
		       vcfs_strerror(rc), (unsigned long long)final, nproc * iters);
	}
	vcfs_disk_close(D2);
	vcfs_disk_close(D);
	printf("conformance: %d passed, %d failed\n", npass, nfail);
	return nfail ? 1 : 0;
}
