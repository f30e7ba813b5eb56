/*
 * probe.c - backend measurement and the compare-and-write stress used by
 * `vcfs probe`, tests/disk/conformance.c and bench/disk_bench.c.
 *
 * Everything goes through the public disk API, like any other user of it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "probe.h"
#include "../common/clock.h"
#include "../common/log.h"

int vcfs_lat_add(struct vcfs_lat *l, uint64_t ns)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		uint64_t *p = realloc(l->ns, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		l->ns = p;
		l->cap = cap;
	}
	l->ns[l->n++] = ns;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

uint64_t vcfs_lat_pct(struct vcfs_lat *l, double p)
{
	size_t i;

	if (!l->n)
		return 0;
	qsort(l->ns, l->n, sizeof(*l->ns), cmp_u64);
	i = (size_t)(p / 100.0 * (double)(l->n - 1) + 0.5);
	return l->ns[i < l->n ? i : l->n - 1];
}

void vcfs_lat_free(struct vcfs_lat *l)
{
	free(l->ns);
	memset(l, 0, sizeof(*l));
}

/* A vcfs volume starts with this magic (fs/ondisk.h); probe only needs to
 * know whether any is there, so it checks the first 8 bytes for "VCFS". */
static int looks_formatted(struct vcfs_disk *d)
{
	const struct vcfs_disk_info *in = vcfs_disk_info(d);
	unsigned char *b = vcfs_disk_buf_alloc(in->lsec);
	int rc;

	if (!b)
		return -ENOMEM;
	rc = vcfs_disk_read(d, 0, b, in->lsec);
	if (!rc)
		rc = memmem(b, 16, "VCFS", 4) != NULL;
	free(b);
	return rc;
}

int vcfs_probe_scratch(struct vcfs_disk *d, uint64_t *off, uint64_t *len)
{
	const struct vcfs_disk_info *in = vcfs_disk_info(d);
	int f = looks_formatted(d);

	if (f < 0)
		return f;
	if (f || in->size < (2u << 20)) {
		*off = *len = 0;
		return 0;
	}
	*len = 1u << 20;
	*off = (in->size - *len) / in->lsec * in->lsec;
	return 0;
}

int vcfs_probe_run(struct vcfs_disk *d, int samples, struct vcfs_probe_result *r)
{
	const struct vcfs_disk_info *in = vcfs_disk_info(d);
	struct vcfs_lat rd = { 0 }, wr = { 0 }, cas = { 0 };
	uint64_t soff, slen, t;
	unsigned char *buf = NULL, *save = NULL, *cur = NULL, *wrong = NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	r->info = *in;
	rc = vcfs_probe_scratch(d, &soff, &slen);
	if (rc)
		return rc;
	r->formatted = slen == 0;
	buf = vcfs_disk_buf_alloc(4096);
	save = vcfs_disk_buf_alloc(slen ? slen : 4096);
	cur = vcfs_disk_buf_alloc(in->lsec);
	wrong = vcfs_disk_buf_alloc(in->lsec);
	if (!buf || !save || !cur || !wrong) {
		rc = -ENOMEM;
		goto out;
	}
	if (slen) {
		rc = vcfs_disk_read(d, soff, save, slen);
		if (rc)
			goto out;
	} else {
		/* read-only: probe reads at 0 and CASes the header sector to itself */
		soff = 0;
	}

	for (int i = 0; i < samples; i++) {
		uint64_t o = soff + (uint64_t)(i % 64) * 4096 % (slen ? slen : 4096);
		t = vcfs_now_ns();
		rc = vcfs_disk_read(d, o, buf, 4096);
		if (rc)
			goto restore;
		vcfs_lat_add(&rd, vcfs_now_ns() - t);
		if (slen) {
			memset(buf, i, 4096);
			t = vcfs_now_ns();
			rc = vcfs_disk_write(d, o, buf, 4096, VCFS_IO_FUA);
			if (rc)
				goto restore;
			vcfs_lat_add(&wr, vcfs_now_ns() - t);
		}
	}

	/* identity CAS: expect what is there, write the same bytes back */
	for (int i = 0; i < samples; i++) {
		rc = vcfs_disk_read(d, soff, cur, in->lsec);
		if (rc)
			goto restore;
		t = vcfs_now_ns();
		rc = vcfs_disk_cas(d, soff, cur, cur);
		if (rc == -VCFS_EMISCOMPARE && !slen)
			continue;	/* a live host changed it: not a failure */
		if (rc)
			goto restore;
		vcfs_lat_add(&cas, vcfs_now_ns() - t);
	}
	r->cas_ok = cas.n > 0;

	/* a wrong expectation must be refused and leave the sector alone */
	rc = vcfs_disk_read(d, soff, cur, in->lsec);
	if (rc)
		goto restore;
	memcpy(wrong, cur, in->lsec);
	wrong[in->lsec - 1] ^= 0x5a;
	rc = vcfs_disk_cas(d, soff, wrong, wrong);
	if (rc == -VCFS_EMISCOMPARE) {
		rc = vcfs_disk_read(d, soff, buf, in->lsec);
		if (rc)
			goto restore;
		r->miscompare_ok = !memcmp(buf, cur, in->lsec) || !slen;
	} else if (rc == 0) {
		vcfs_err("%s: compare-and-write accepted a wrong expectation: the target "
			 "does not compare atomically", in->desc);
		r->miscompare_ok = 0;
		if (!slen)	/* we changed a live sector: put it back */
			vcfs_disk_cas(d, soff, wrong, cur);
	} else if (rc != -VCFS_EUNSAFE) {
		goto restore;
	}
	rc = 0;

	r->read4k_p50 = vcfs_lat_pct(&rd, 50);
	r->read4k_p99 = vcfs_lat_pct(&rd, 99);
	r->write4k_p50 = vcfs_lat_pct(&wr, 50);
	r->write4k_p99 = vcfs_lat_pct(&wr, 99);
	r->cas_p50 = vcfs_lat_pct(&cas, 50);
	r->cas_p99 = vcfs_lat_pct(&cas, 99);
restore:
	if (slen) {
		int rc2 = vcfs_disk_write(d, soff, save, slen, VCFS_IO_FUA);
		if (!rc)
			rc = rc2;
	}
out:
	vcfs_lat_free(&rd);
	vcfs_lat_free(&wr);
	vcfs_lat_free(&cas);
	free(buf);
	free(save);
	free(cur);
	free(wrong);
	return rc;
}

/* One stress process: returns its exit status (0 ok). */
static int stress_child(const char *uri, const struct vcfs_disk_opts *opts, uint64_t off,
			int iters, uint64_t *miscompares)
{
	struct vcfs_disk *d;
	unsigned char *cur, *next;
	uint32_t lsec;
	int rc = vcfs_disk_open(uri, opts, &d);

	if (rc) {
		char *red = vcfs_uri_redact(uri);	/* never print a password */
		fprintf(stderr, "stress: open %s: %s\n", red ? red : "datastore",
			vcfs_strerror(rc));
		free(red);
		return 2;
	}
	lsec = vcfs_disk_info(d)->lsec;
	cur = vcfs_disk_buf_alloc(lsec);
	next = vcfs_disk_buf_alloc(lsec);
	for (int i = 0; cur && next && i < iters;) {
		uint64_t v;
		rc = vcfs_disk_read(d, off, cur, lsec);
		if (rc)
			break;
		memcpy(next, cur, lsec);
		memcpy(&v, cur, sizeof(v));
		v++;
		memcpy(next, &v, sizeof(v));
		rc = vcfs_disk_cas(d, off, cur, next);
		if (rc == -VCFS_EMISCOMPARE) {
			__atomic_add_fetch(miscompares, 1, __ATOMIC_RELAXED);
			rc = 0;
			continue;
		}
		if (rc)
			break;
		i++;
	}
	if (rc) {
		char *red = vcfs_uri_redact(uri);
		fprintf(stderr, "stress: %s: %s\n", red ? red : "datastore", vcfs_strerror(rc));
		free(red);
	}
	free(cur);
	free(next);
	vcfs_disk_close(d);
	return rc ? 1 : 0;
}

int vcfs_cas_stress(const char *uri, const struct vcfs_disk_opts *opts, uint64_t off,
		    int nproc, int iters, uint64_t *final, uint64_t *miscompares)
{
	struct vcfs_disk *d;
	unsigned char *z;
	uint64_t *shared;
	pid_t *pids;
	int rc, failed = 0;

	rc = vcfs_disk_open(uri, opts, &d);
	if (rc)
		return rc;
	z = vcfs_disk_buf_alloc(vcfs_disk_info(d)->lsec);
	pids = calloc((size_t)nproc, sizeof(*pids));
	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!z || !pids || shared == MAP_FAILED) {
		rc = -ENOMEM;
		goto out;
	}
	*shared = 0;
	rc = vcfs_disk_write(d, off, z, vcfs_disk_info(d)->lsec, VCFS_IO_FUA);
	if (rc)
		goto out;
	fflush(NULL);
	for (int i = 0; i < nproc; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(stress_child(uri, opts, off, iters, shared));
		if (pids[i] < 0) {
			rc = -errno;
			nproc = i;
			break;
		}
	}
	for (int i = 0; i < nproc; i++) {
		int st;
		if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			failed++;
	}
	if (!rc) {
		rc = vcfs_disk_read(d, off, z, vcfs_disk_info(d)->lsec);
		memcpy(final, z, sizeof(*final));
		*miscompares = *shared;
	}
	if (!rc && failed)
		rc = -EIO;
out:
	if (shared != MAP_FAILED)
		munmap(shared, 4096);
	free(pids);
	free(z);
	vcfs_disk_close(d);
	return rc;
}
