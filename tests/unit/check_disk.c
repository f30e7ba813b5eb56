/*
 * check_disk.c - disk/ below the backends that need servers: the URI parser,
 * the file backend on an image under /var/tmp, the fault-injection layer and
 * the crash-recording layer.
 *
 * Images live in a per-run directory that main() creates and removes, so a
 * failing test (whose teardown does not run in fork mode) leaves nothing
 * behind.  Each test gets its own image (checked fixture).  Expected disk
 * images are built by the test from its own model of the writes it issued,
 * never read back from the layer under test.
 */
#include <check.h>
#include "ck_tmpdir.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "disk/disk.h"
#include "disk/disk_int.h"
#include "disk/mem.h"
#include "common/clock.h"
#include "common/log.h"

#define IMG_SIZE (4u << 20)

static char rundir[128];	/* set by main before the forks */
static char img[256];		/* this test's image (checked fixture) */

/* ---- helpers ---- */

static void fill(uint8_t *b, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x2545F4914F6CDD1Dull;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)(x >> 24);
	}
}

static void make_image(char *path, size_t pathlen, uint64_t size)
{
	int fd;

	snprintf(path, pathlen, "%s/img.XXXXXX", rundir);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static void setup(void)
{
	make_image(img, sizeof(img), IMG_SIZE);
}

static void teardown(void)
{
	unlink(img);
}

static struct vcfs_disk *open_path(const char *path, uint32_t flags)
{
	struct vcfs_disk_opts o = { .flags = flags | VCFS_DISK_NO_DIRECT };
	struct vcfs_disk *d = NULL;
	char uri[300];
	int rc;

	snprintf(uri, sizeof(uri), "file:%s", path);
	rc = vcfs_disk_open(uri, &o, &d);
	ck_assert_msg(rc == 0, "open %s: %s", uri, vcfs_strerror(rc));
	return d;
}

static uint8_t *xalloc(size_t len)
{
	uint8_t *p = vcfs_disk_buf_alloc(len);

	ck_assert_ptr_nonnull(p);
	return p;
}

/* Read [off, off+len) of d into a new buffer. */
static uint8_t *rd(struct vcfs_disk *d, uint64_t off, size_t len)
{
	uint8_t *b = xalloc(len);
	int rc = vcfs_disk_read(d, off, b, len);

	ck_assert_msg(rc == 0, "read %llu+%zu: %s", (unsigned long long)off, len,
		      vcfs_strerror(rc));
	return b;
}

/* Equal, or fail naming the first differing byte.  (memcmp first: every
 * passing ck_assert is a message to the parent process in fork mode.) */
static void same(const uint8_t *got, const uint8_t *want, size_t len, const char *what)
{
	size_t i = 0;

	if (!memcmp(got, want, len))
		return;
	while (got[i] == want[i])
		i++;
	ck_abort_msg("%s: first difference at byte %zu of %zu (got 0x%02x, want 0x%02x)",
		     what, i, len, got[i], want[i]);
}

static int all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

/* Expected errors are logged into this buffer instead of stderr. */
static char last_log[1024];
static int nlogged;

static void log_to_buffer(enum vcfs_log_level lvl, const char *msg, void *arg)
{
	(void)lvl;
	(void)arg;
	nlogged++;
	snprintf(last_log, sizeof(last_log), "%s", msg);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * VCFS_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* ================= URI parser ================= */

struct uri_case {
	const char *uri;
	const char *scheme, *user, *password, *host;
	int port;
	const char *path, *target;
	int lun;
	const char *pool, *image, *query;
};

START_TEST(uri_good)
{
	static const struct uri_case c[] = {
		{ "/var/tmp/ds.img", "file", .path = "/var/tmp/ds.img" },
		{ "file:/var/tmp/ds.img", "file", .path = "/var/tmp/ds.img" },
		{ "file:///var/tmp/ds.img", "file", .path = "/var/tmp/ds.img" },
		{ "FILE:/dev/sdb", "file", .path = "/dev/sdb" },
		{ "./ds.img", "file", .path = "./ds.img" },
		{ "ds.img", "file", .path = "ds.img" },
		{ "images/a:b.img", "file", .path = "images/a:b.img" },
		{ "iscsi://127.0.0.1/iqn.2026-11.org.vcfs:t/0", "iscsi", .host = "127.0.0.1",
		  .target = "iqn.2026-11.org.vcfs:t", .lun = 0 },
		{ "iscsi://10.0.0.5:3261/iqn.2026-11.org.vcfs:t/7", "iscsi", .host = "10.0.0.5",
		  .port = 3261, .target = "iqn.2026-11.org.vcfs:t", .lun = 7 },
		{ "iscsi://alice%s3cret@san.example.com/iqn.x:t/1", "iscsi", "alice", "s3cret",
		  "san.example.com", .target = "iqn.x:t", .lun = 1 },
		{ "iscsi://alice:s3cret@san:3260/iqn.x:t/2", "iscsi", "alice", "s3cret", "san",
		  3260, .target = "iqn.x:t", .lun = 2 },
		/* escapes in user and password; the separator is the first '%'
		 * that does not start one */
		{ "iscsi://al%40ice%p%25w%3Ad@h/iqn.x:t/3", "iscsi", "al@ice", "p%w:d", "h",
		  .target = "iqn.x:t", .lun = 3 },
		{ "iscsi://[::1]:3260/iqn.x:t/16383", "iscsi", .host = "::1", .port = 3260,
		  .target = "iqn.x:t", .lun = 16383 },
		{ "iscsi://[fe80::1]/iqn.x:t/0", "iscsi", .host = "fe80::1", .target = "iqn.x:t" },
		{ "iscsi://h:65535/iqn.x:t/00012", "iscsi", .host = "h", .port = 65535,
		  .target = "iqn.x:t", .lun = 12 },
		{ "nfs://server/export/vcfs.img", "nfs", .host = "server",
		  .path = "/export/vcfs.img" },
		{ "nfs://nas.lan:2049/srv/nfs/ds/vcfs.img?version=3", "nfs", .host = "nas.lan",
		  .port = 2049, .path = "/srv/nfs/ds/vcfs.img", .query = "version=3" },
		{ "nfs://[2001:db8::7]/e/f", "nfs", .host = "2001:db8::7", .path = "/e/f" },
		{ "rados://rbd/vcfs", "rados", .pool = "rbd", .image = "vcfs" },
		{ "rados://rbd/vcfs?conf=/etc/ceph/ceph.conf&id=admin", "rados", .pool = "rbd",
		  .image = "vcfs", .query = "conf=/etc/ceph/ceph.conf&id=admin" },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct vcfs_uri u;
		int rc = vcfs_uri_parse(c[i].uri, &u);

		ck_assert_msg(rc == 0, "%s: %s", c[i].uri, vcfs_strerror(rc));
		ck_assert_pstr_eq(u.scheme, c[i].scheme);
		ck_assert_pstr_eq(u.user, c[i].user);
		ck_assert_pstr_eq(u.password, c[i].password);
		ck_assert_pstr_eq(u.host, c[i].host);
		ck_assert_msg(u.port == c[i].port, "%s: port %d", c[i].uri, u.port);
		ck_assert_pstr_eq(u.path, c[i].path);
		ck_assert_pstr_eq(u.target, c[i].target);
		ck_assert_msg(u.lun == c[i].lun, "%s: lun %d", c[i].uri, u.lun);
		ck_assert_pstr_eq(u.pool, c[i].pool);
		ck_assert_pstr_eq(u.image, c[i].image);
		ck_assert_pstr_eq(u.query, c[i].query);
		vcfs_uri_free(&u);
		ck_assert_ptr_null(u.scheme);
	}
}
END_TEST

START_TEST(uri_bad)
{
	static const struct { const char *uri; int rc; } c[] = {
		{ "", -VCFS_EBADURI },
		{ "ftp://host/x", -VCFS_ESCHEME },
		{ "http://host/x", -VCFS_ESCHEME },
		{ "1scsi://h/iqn/0", -VCFS_EBADURI },	/* scheme must be letters */
		{ "file://host/path", -VCFS_EBADURI },
		/* word:rest without a '/' before the ':' names a scheme (it was
		 * taken as a relative path): unknown ones are refused, file:
		 * wants an absolute path (tests/fuzz/regress/uri/) */
		{ "ftp:x", -VCFS_ESCHEME },
		{ "ds:img", -VCFS_ESCHEME },
		{ "file:relative.img", -VCFS_EBADURI },
		{ "FILE:x", -VCFS_EBADURI },
		{ "file:", -VCFS_EBADURI },
		{ "iscsi:", -VCFS_EBADURI },
		{ "/var/tmp/a\tb.img", -VCFS_EBADURI },	/* control characters */
		{ "/var/tmp/a\x7f", -VCFS_EBADURI },
		/* iscsi */
		{ "iscsi:h/iqn.x:t/0", -VCFS_EBADURI },
		{ "iscsi://h", -VCFS_EBADURI },
		{ "iscsi:///iqn.x:t/0", -VCFS_EBADURI },
		{ "iscsi://127.0.0.1/iqn.2026-11.org.vcfs:t", -VCFS_EBADURI },	/* no LUN */
		{ "iscsi://h/iqn.x:t/", -VCFS_EBADURI },
		{ "iscsi://h//0", -VCFS_EBADURI },
		{ "iscsi://h/iqn.x:t/1a", -VCFS_EBADURI },
		{ "iscsi://h/iqn.x:t/-1", -VCFS_EBADURI },
		{ "iscsi://h/iqn.x:t/16384", -VCFS_EBADURI },
		{ "iscsi://h:0/iqn.x:t/0", -VCFS_EBADURI },
		{ "iscsi://h:65536/iqn.x:t/0", -VCFS_EBADURI },
		{ "iscsi://127.0.0.1:99999/iqn.2026-11.org.vcfs:t/0", -VCFS_EBADURI },
		{ "iscsi://h:/iqn.x:t/0", -VCFS_EBADURI },
		{ "iscsi://h:32a/iqn.x:t/0", -VCFS_EBADURI },
		{ "iscsi://:3260/iqn.x:t/0", -VCFS_EBADURI },
		{ "iscsi://ho st/iqn.x:t/0", -VCFS_EBADURI },
		{ "iscsi://[::1/iqn.x:t/0", -VCFS_EBADURI },
		{ "iscsi://[]/iqn.x:t/0", -VCFS_EBADURI },
		{ "iscsi://[::1]x/iqn.x:t/0", -VCFS_EBADURI },
		{ "iscsi://alice%@h/iqn.x:t/0", -VCFS_EBADURI },	/* empty password */
		{ "iscsi://%pw@h/iqn.x:t/0", -VCFS_EBADURI },		/* empty user */
		{ "iscsi://alice@h/iqn.x:t/0", -VCFS_EBADURI },	/* no password */
		{ "iscsi://al%00ice%pw@h/iqn.x:t/0", -VCFS_EBADURI },	/* NUL byte */
		{ "iscsi://alice%p%zzw@h/iqn.x:t/0", -VCFS_EBADURI },	/* bad escape */
		/* nfs */
		{ "nfs://server/vcfs.img", -VCFS_EBADURI },	/* needs export + file */
		{ "nfs://server/export/", -VCFS_EBADURI },
		{ "nfs://alice%pw@server/e/f", -VCFS_EBADURI },	/* no CHAP on NFS */
		{ "nfs://server:0/e/f", -VCFS_EBADURI },
		{ "nfs:///e/f", -VCFS_EBADURI },
		{ "nfs://server", -VCFS_EBADURI },
		/* rados */
		{ "rados://rbd", -VCFS_EBADURI },
		{ "rados://rbd/", -VCFS_EBADURI },
		{ "rados://rbd/a/b", -VCFS_EBADURI },
		{ "rados:///img", -VCFS_EBADURI },
		{ "rados://rbd/?conf=/etc/ceph/ceph.conf", -VCFS_EBADURI },
	};
	struct vcfs_uri u;

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		int rc = vcfs_uri_parse(c[i].uri, &u);
		ck_assert_msg(rc == c[i].rc, "'%s': got %d (%s), want %d", c[i].uri, rc,
			      vcfs_strerror(rc), c[i].rc);
		/* nothing left allocated in u on failure */
		ck_assert_ptr_null(u.scheme);
		ck_assert_ptr_null(u.host);
		ck_assert_ptr_null(u.user);
		ck_assert_ptr_null(u.password);
	}
	ck_assert_int_eq(vcfs_uri_parse(NULL, &u), -VCFS_EBADURI);
}
END_TEST

START_TEST(uri_query_and_redact)
{
	struct vcfs_uri u;
	char *v;

	ck_assert_int_eq(vcfs_uri_parse("rados://rbd/vcfs?conf=%2Fetc%2Fceph%2Fceph.conf"
					"&id=admin", &u), 0);
	v = vcfs_uri_query_get(&u, "conf");
	ck_assert_pstr_eq(v, "/etc/ceph/ceph.conf");	/* percent-decoded */
	free(v);
	v = vcfs_uri_query_get(&u, "id");
	ck_assert_pstr_eq(v, "admin");
	free(v);
	v = vcfs_uri_query_get(&u, "con");	/* a prefix of a key is not the key */
	ck_assert_ptr_null(v);
	v = vcfs_uri_query_get(&u, "pool");
	ck_assert_ptr_null(v);
	vcfs_uri_free(&u);

	ck_assert_int_eq(vcfs_uri_parse("rados://rbd/vcfs", &u), 0);
	ck_assert_ptr_null(vcfs_uri_query_get(&u, "conf"));
	vcfs_uri_free(&u);

	v = vcfs_uri_redact("iscsi://alice%s3cret@h:3260/iqn.x:t/1");
	ck_assert_pstr_eq(v, "iscsi://alice%***@h:3260/iqn.x:t/1");
	free(v);
	v = vcfs_uri_redact("iscsi://alice:s3cret@h/iqn.x:t/1");
	ck_assert_pstr_eq(v, "iscsi://alice:***@h/iqn.x:t/1");
	free(v);
	v = vcfs_uri_redact("iscsi://h/iqn.x:t/1");
	ck_assert_pstr_eq(v, "iscsi://h/iqn.x:t/1");
	free(v);
	v = vcfs_uri_redact("/var/tmp/a%b@c");
	ck_assert_pstr_eq(v, "/var/tmp/a%b@c");
	free(v);
}
END_TEST

START_TEST(uri_open_errors)
{
	struct vcfs_disk *d = (struct vcfs_disk *)&d;	/* must be reset to NULL */
	char path[300];

	ck_assert_int_eq(vcfs_disk_open("ftp://host/x", NULL, &d), -VCFS_ESCHEME);
	ck_assert_ptr_null(d);
	ck_assert_int_eq(vcfs_disk_open("iscsi://h/iqn.x:t", NULL, &d), -VCFS_EBADURI);
	snprintf(path, sizeof(path), "%s/does-not-exist.img", rundir);
	vcfs_log_set_sink(log_to_buffer, NULL);	/* expected errors: keep stderr quiet */
	ck_assert_int_eq(vcfs_disk_open(path, NULL, &d), -ENOENT);
	ck_assert_int_eq(vcfs_disk_open(rundir, NULL, &d), -EISDIR);
	/* a datastore below the minimum size */
	{
		char small[256];
		struct vcfs_disk_opts o = { .flags = VCFS_DISK_NO_DIRECT };
		make_image(small, sizeof(small), 4096);
		ck_assert_int_eq(vcfs_disk_open(small, &o, &d), -VCFS_ETOOSMALL);
		unlink(small);
	}
	ck_assert_ptr_null(d);
}
END_TEST

/* ================= the file backend ================= */

START_TEST(file_info)
{
	struct vcfs_disk *d = open_path(img, 0);
	const struct vcfs_disk_info *in = vcfs_disk_info(d);

	ck_assert_str_eq(in->backend, "file");
	ck_assert_uint_eq(in->size, IMG_SIZE);
	ck_assert_uint_eq(in->lsec, 512);
	ck_assert_uint_ge(in->psec, in->lsec);
	ck_assert_uint_eq(in->psec % in->lsec, 0);
	ck_assert_uint_ge(in->max_io, in->lsec);
	ck_assert_int_eq(in->cas_mode, VCFS_CAS_OFD);
	ck_assert_uint_eq(in->caps & (VCFS_DISK_CAP_FUA | VCFS_DISK_CAP_UNMAP |
				      VCFS_DISK_CAP_ZEROES | VCFS_DISK_CAP_CAS_SHARED |
				      VCFS_DISK_CAP_RDONLY),
			  VCFS_DISK_CAP_FUA | VCFS_DISK_CAP_UNMAP | VCFS_DISK_CAP_ZEROES);
	ck_assert_ptr_nonnull(strstr(in->desc, img));
	vcfs_disk_close(d);
}
END_TEST

/* Writes at odd sector offsets and sizes, from aligned and unaligned buffers;
 * a second open must see exactly the shadow image (neighbours untouched). */
START_TEST(file_roundtrips)
{
	static const uint64_t secs[] = { 1, 3, 7, 63, 1023, 4093 };
	static const size_t nsecs[] = { 1, 3, 17, 129 };
	struct vcfs_disk *d = open_path(img, 0), *d2 = open_path(img, 0);
	uint8_t *shadow = calloc(1, IMG_SIZE), *w = malloc(129 * 512 + 1), *r;
	int k = 0;

	ck_assert_ptr_nonnull(shadow);
	ck_assert_ptr_nonnull(w);
	for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++)
		for (size_t j = 0; j < sizeof(nsecs) / sizeof(nsecs[0]); j++, k++) {
			uint64_t off = secs[i] * 512;
			size_t len = nsecs[j] * 512;
			uint8_t *wp = w + (k & 1);	/* every other buffer unaligned */
			uint8_t *rb = malloc(len + 1), *rp = rb + (k & 1);

			if (off + len > IMG_SIZE) {
				free(rb);
				continue;
			}
			fill(wp, len, (uint64_t)k + 1);
			ck_assert_int_eq(vcfs_disk_write(d, off, wp, len, k % 3 ? 0 : VCFS_IO_FUA), 0);
			memcpy(shadow + off, wp, len);
			memset(rp, 0xee, len);
			ck_assert_int_eq(vcfs_disk_read(d, off, rp, len), 0);
			same(rp, wp, len, "read back");
			free(rb);
		}
	ck_assert_int_eq(vcfs_disk_flush(d), 0);
	r = rd(d2, 0, IMG_SIZE);
	same(r, shadow, IMG_SIZE, "whole image through a second open");
	free(r);
	/* larger than max_io: disk.c splits */
	{
		size_t len = vcfs_disk_info(d)->max_io + 3 * 512;
		uint8_t *big = malloc(len);
		if (len + 512 <= IMG_SIZE) {
			fill(big, len, 99);
			ck_assert_int_eq(vcfs_disk_write(d, 512, big, len, 0), 0);
			r = rd(d2, 512, len);
			same(r, big, len, "write larger than max_io");
			free(r);
		}
		free(big);
	}
	free(shadow);
	free(w);
	vcfs_disk_close(d2);
	vcfs_disk_close(d);
}
END_TEST

START_TEST(file_errors)
{
	struct vcfs_disk *d = open_path(img, 0), *ro;
	uint8_t *b = xalloc(2048), *before, *after;

	fill(b, 2048, 5);
	ck_assert_int_eq(vcfs_disk_write(d, 0, b, 2048, 0), 0);
	before = rd(d, 0, 4096);
	/* alignment */
	ck_assert_int_eq(vcfs_disk_read(d, 1, b, 512), -VCFS_EALIGN);
	ck_assert_int_eq(vcfs_disk_read(d, 0, b, 100), -VCFS_EALIGN);
	ck_assert_int_eq(vcfs_disk_write(d, 0, b, 513, 0), -VCFS_EALIGN);
	ck_assert_int_eq(vcfs_disk_write(d, 256, b, 512, 0), -VCFS_EALIGN);
	ck_assert_int_eq(vcfs_disk_cas(d, 100, b, b), -VCFS_EALIGN);
	ck_assert_int_eq(vcfs_disk_unmap(d, 7, 512), -VCFS_EALIGN);
	ck_assert_int_eq(vcfs_disk_write_zeroes(d, 0, 100, 0), -VCFS_EALIGN);
	/* range */
	ck_assert_int_eq(vcfs_disk_read(d, IMG_SIZE - 512, b, 1024), -VCFS_ERANGE);
	ck_assert_int_eq(vcfs_disk_read(d, IMG_SIZE, b, 512), -VCFS_ERANGE);
	ck_assert_int_eq(vcfs_disk_write(d, IMG_SIZE, b, 512, 0), -VCFS_ERANGE);
	ck_assert_int_eq(vcfs_disk_write(d, UINT64_MAX - 511, b, 512, 0), -VCFS_ERANGE);
	ck_assert_int_eq(vcfs_disk_cas(d, IMG_SIZE, b, b), -VCFS_ERANGE);
	ck_assert_int_eq(vcfs_disk_unmap(d, IMG_SIZE - 512, 1024), -VCFS_ERANGE);
	ck_assert_int_eq(vcfs_disk_write_zeroes(d, IMG_SIZE, 512, 0), -VCFS_ERANGE);
	ck_assert_int_eq(vcfs_disk_pread(d, IMG_SIZE - 10, b, 11), -VCFS_ERANGE);
	ck_assert_int_eq(vcfs_disk_pwrite(d, IMG_SIZE - 10, b, 11, 0), -VCFS_ERANGE);
	/* none of the refused calls changed anything */
	after = rd(d, 0, 4096);
	same(after, before, 4096, "after refused calls");
	free(after);
	/* read-only opens refuse every kind of write */
	ro = open_path(img, VCFS_DISK_RDONLY);
	ck_assert_uint_ne(vcfs_disk_info(ro)->caps & VCFS_DISK_CAP_RDONLY, 0);
	ck_assert_int_eq(vcfs_disk_write(ro, 0, b, 512, 0), -EROFS);
	ck_assert_int_eq(vcfs_disk_cas(ro, 0, before, b), -EROFS);
	ck_assert_int_eq(vcfs_disk_unmap(ro, 0, 512), -EROFS);
	ck_assert_int_eq(vcfs_disk_write_zeroes(ro, 0, 512, 0), -EROFS);
	ck_assert_int_eq(vcfs_disk_read(ro, 0, b, 512), 0);
	same(b, before, 512, "read-only read");
	vcfs_disk_close(ro);
	free(before);
	free(b);
	vcfs_disk_close(d);
}
END_TEST

START_TEST(file_cas)
{
	struct vcfs_disk *d = open_path(img, 0), *d2 = open_path(img, 0);
	uint8_t *a = malloc(513), *b = malloc(513), *c = xalloc(512), *n = xalloc(512), *r;
	uint8_t *ua = a + 1, *ub = b + 1;	/* unaligned expect/newdata */
	const uint64_t off = 40 * 512;

	fill(ua, 512, 1);
	fill(ub, 512, 2);
	fill(n, 512, 9);
	ck_assert_int_eq(vcfs_disk_write(d, off, ua, 512, 0), 0);
	ck_assert_int_eq(vcfs_disk_write(d, off + 512, n, 512, 0), 0);
	ck_assert_int_eq(vcfs_disk_write(d, off - 512, n, 512, 0), 0);
	ck_assert_int_eq(vcfs_disk_cas(d, off, ua, ub), 0);
	r = rd(d2, off, 512);
	same(r, ub, 512, "CAS success replaces the sector");
	free(r);
	/* miscompare: reported, and the sector untouched */
	fill(c, 512, 3);
	ck_assert_int_eq(vcfs_disk_cas(d2, off, ua, c), -VCFS_EMISCOMPARE);
	r = rd(d, off, 512);
	same(r, ub, 512, "sector after a miscompare");
	free(r);
	/* a difference in the last byte only is still a miscompare */
	memcpy(c, ub, 512);
	c[511] ^= 1;
	ck_assert_int_eq(vcfs_disk_cas(d, off, c, ua), -VCFS_EMISCOMPARE);
	r = rd(d2, off, 512);
	same(r, ub, 512, "sector after a last-byte miscompare");
	free(r);
	/* neighbours never touched */
	r = rd(d2, off - 512, 512);
	same(r, n, 512, "sector before");
	free(r);
	r = rd(d2, off + 512, 512);
	same(r, n, 512, "sector after");
	free(r);
	free(a);
	free(b);
	free(c);
	free(n);
	vcfs_disk_close(d2);
	vcfs_disk_close(d);
}
END_TEST

START_TEST(file_unmap_and_zeroes)
{
	struct vcfs_disk *d = open_path(img, 0), *d2 = open_path(img, 0);
	const size_t len = 256 << 10;
	uint8_t *w = xalloc(len), *r;

	for (int unmap = 0; unmap < 2; unmap++) {
		fill(w, len, 40 + (uint64_t)unmap);
		ck_assert_int_eq(vcfs_disk_write(d, 1 << 20, w, len, 0), 0);
		/* zero the middle, from an odd sector, an odd number of sectors */
		if (unmap)
			ck_assert_int_eq(vcfs_disk_unmap(d, (1 << 20) + 3 * 512, 301 * 512), 0);
		else
			ck_assert_int_eq(vcfs_disk_write_zeroes(d, (1 << 20) + 3 * 512, 301 * 512,
								VCFS_IO_FUA), 0);
		r = rd(d2, 1 << 20, len);
		ck_assert_msg(all_zero(r + 3 * 512, 301 * 512), "%s: range not zero",
			      unmap ? "unmap" : "write_zeroes");
		same(r, w, 3 * 512, "sectors before the zeroed range");
		same(r + 304 * 512, w + 304 * 512, len - 304 * 512, "sectors after it");
		free(r);
	}
	/* zero length is a no-op, not an error */
	ck_assert_int_eq(vcfs_disk_unmap(d, 0, 0), 0);
	ck_assert_int_eq(vcfs_disk_write_zeroes(d, 0, 0, 0), 0);
	free(w);
	vcfs_disk_close(d2);
	vcfs_disk_close(d);
}
END_TEST

/* Byte-granular helpers against a shadow copy: heads and tails inside one
 * sector, across sectors, aligned, and at the very end of the disk. */
START_TEST(file_bytes)
{
	struct vcfs_disk *d = open_path(img, 0), *d2 = open_path(img, 0);
	const size_t region = 64 << 10;
	uint8_t *shadow = malloc(region), *buf = malloc(region), *r;
	uint64_t x = 12345;
	static const struct { uint64_t off; size_t len; } fixed[] = {
		{ 0, 1 }, { 511, 1 }, { 511, 2 }, { 100, 300 }, { 3 * 512 - 123, 1000 },
		{ 1024, 512 }, { 1024, 2048 }, { 7, 4096 + 9 }, { 512 - 1, 512 + 2 },
	};

	ck_assert_ptr_nonnull(shadow);
	fill(shadow, region, 7);
	ck_assert_int_eq(vcfs_disk_write(d, 0, shadow, region, 0), 0);
	for (int i = 0; i < 200; i++) {
		uint64_t off;
		size_t len;
		if (i < (int)(sizeof(fixed) / sizeof(fixed[0]))) {
			off = fixed[i].off;
			len = fixed[i].len;
		} else {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			off = (x >> 33) % (region - 1);
			len = 1 + (size_t)((x >> 13) % 3000);
			if (off + len > region)
				len = (size_t)(region - off);
		}
		fill(buf, len, (uint64_t)i + 1000);
		ck_assert_int_eq(vcfs_disk_pwrite(d, off, buf, len, i & 1 ? VCFS_IO_FUA : 0), 0);
		memcpy(shadow + off, buf, len);
		/* and read a random byte range back */
		memset(buf, 0xee, len);
		ck_assert_int_eq(vcfs_disk_pread(d2, off, buf, len), 0);
		same(buf, shadow + off, len, "pread after pwrite");
	}
	r = rd(d2, 0, region);
	same(r, shadow, region, "region after 200 byte-granular writes");
	free(r);
	/* the last bytes of the disk */
	fill(buf, 10, 3);
	ck_assert_int_eq(vcfs_disk_pwrite(d, IMG_SIZE - 10, buf, 10, 0), 0);
	memset(buf + 100, 0, 10);
	ck_assert_int_eq(vcfs_disk_pread(d2, IMG_SIZE - 10, buf + 100, 10), 0);
	same(buf + 100, buf, 10, "last 10 bytes");
	free(shadow);
	free(buf);
	vcfs_disk_close(d2);
	vcfs_disk_close(d);
}
END_TEST

/* ================= the fault layer ================= */

static const uint64_t CAS_OFF = 3 * 512;

/* A file disk wrapped in a fault layer with no rule; sector CAS_OFF holds a
 * known pattern so that a CAS of it onto itself succeeds. */
static struct vcfs_disk *fault_disk(void)
{
	struct vcfs_disk *d = open_path(img, 0), *f = NULL;
	uint8_t *b = xalloc(512);

	fill(b, 512, 77);
	ck_assert_int_eq(vcfs_disk_write(d, CAS_OFF, b, 512, 0), 0);
	free(b);
	ck_assert_int_eq(vcfs_fault_wrap(d, &f), 0);
	ck_assert_ptr_nonnull(f);
	return f;
}

/* One operation of kind op through d: 0 when it went through. */
/* ---- asynchronous requests: a batch waited for on a condition ---- */

struct aio_batch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned done, failed;
	int last_rc;
};

struct aio_req {
	struct vcfs_disk_aio a;
	struct aio_batch *b;
	int rc;
};

static void aio_req_done(struct vcfs_disk_aio *a, int rc)
{
	struct aio_req *r = (struct aio_req *)a;	/* a is the first member */
	struct aio_batch *b = r->b;

	r->rc = rc;
	pthread_mutex_lock(&b->mu);
	b->done++;
	b->failed += rc != 0;
	b->last_rc = rc;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static void batch_init(struct aio_batch *b)
{
	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
}

/* Wait (at most 10 s) until n requests of b are done; the count. */
static unsigned batch_wait(struct aio_batch *b, unsigned n)
{
	uint64_t end = vcfs_now_ns() + 10 * VCFS_NS_PER_S;
	unsigned got;

	pthread_mutex_lock(&b->mu);
	while (b->done < n && vcfs_now_ns() < end) {
		pthread_mutex_unlock(&b->mu);
		vcfs_sleep_ns(VCFS_NS_PER_MS);
		pthread_mutex_lock(&b->mu);
	}
	got = b->done;
	pthread_mutex_unlock(&b->mu);
	return got;
}

static void req_init(struct aio_req *r, struct aio_batch *b, enum vcfs_disk_aio_op op,
		     uint64_t off, void *buf, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->a = (struct vcfs_disk_aio){ .op = op, .off = off, .buf = buf, .len = len,
				       .done = aio_req_done };
	r->b = b;
	r->rc = 1;	/* not called */
}

/* One asynchronous request, waited for: submit's error or done's. */
static int aio_one(struct vcfs_disk *d, enum vcfs_disk_aio_op op, uint64_t off, void *buf,
		   size_t len)
{
	struct aio_batch b;
	struct aio_req r;
	int rc;

	batch_init(&b);
	req_init(&r, &b, op, off, buf, len);
	rc = vcfs_disk_submit(d, &r.a);
	if (!rc) {
		ck_assert_uint_eq(batch_wait(&b, 1), 1);
		rc = r.rc;
	}
	return rc;
}

static int do_op(struct vcfs_disk *d, enum vcfs_disk_op op)
{
	uint8_t b[512], cur[512];
	int rc;

	switch (op) {
	case VCFS_OP_READ:
		return vcfs_disk_read(d, 0, b, 512);
	case VCFS_OP_WRITE:
		memset(b, 0x5a, sizeof(b));
		return vcfs_disk_write(d, 512, b, 512, 0);
	case VCFS_OP_FLUSH:
		return vcfs_disk_flush(d);
	case VCFS_OP_CAS:
		/* the known pattern onto itself: no read through d needed */
		fill(cur, 512, 77);
		rc = vcfs_disk_cas(d, CAS_OFF, cur, cur);
		return rc;
	case VCFS_OP_UNMAP:
		return vcfs_disk_unmap(d, 8 * 512, 512);
	case VCFS_OP_ZEROES:
		return vcfs_disk_write_zeroes(d, 9 * 512, 512, 0);
	case VCFS_OP_AIO: {
		void *ab = vcfs_disk_buf_alloc(4096);
		memset(ab, 0x6b, 4096);
		rc = aio_one(d, VCFS_AIO_WRITE, 16 * 4096, ab, 4096);
		free(ab);
		return rc;
	}
	default:
		ck_abort_msg("bad op %d", op);
	}
	return 0;
}

START_TEST(fault_passthrough_info)
{
	struct vcfs_disk *f = fault_disk();
	const struct vcfs_disk_info *in = vcfs_disk_info(f);
	const char *lower_desc = vcfs_disk_info(f->lower)->desc;

	ck_assert_str_eq(in->backend, "fault");
	ck_assert_int_eq(strncmp(in->desc, "fault", 5), 0);
	ck_assert_ptr_nonnull(strstr(in->desc, lower_desc));
	ck_assert_uint_eq(in->size, IMG_SIZE);
	ck_assert_uint_eq(in->lsec, vcfs_disk_info(f->lower)->lsec);
	ck_assert_uint_eq(in->max_io, vcfs_disk_info(f->lower)->max_io);
	ck_assert_int_eq(in->cas_mode, VCFS_CAS_OFD);
	for (int op = VCFS_OP_READ; op < VCFS_OP_ANY; op++)
		for (int k = 0; k < 3; k++)
			ck_assert_int_eq(do_op(f, (enum vcfs_disk_op)op), 0);
	/* counts are kept even without a rule; an asynchronous write counts as
	 * a write and as aio */
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_WRITE), 6);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_AIO), 3);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_ANY), 21);
	vcfs_disk_close(f);
}
END_TEST

START_TEST(fault_nth_once)
{
	struct vcfs_disk *f = fault_disk();
	struct vcfs_fault_rule rule = { .op = VCFS_OP_WRITE, .nth = 3, .err = -EIO };
	uint8_t *w = xalloc(512), *r;

	ck_assert_int_eq(vcfs_fault_set(f, &rule), 0);
	for (int i = 1; i <= 6; i++) {
		fill(w, 512, (uint64_t)i);
		ck_assert_int_eq(vcfs_disk_write(f, 100 * 512 + (uint64_t)i * 512, w, 512, 0),
				 i == 3 ? -EIO : 0);
	}
	/* the failed write never reached the disk */
	r = rd(f->lower, 103 * 512, 512);
	ck_assert(all_zero(r, 512));
	free(r);
	r = rd(f->lower, 104 * 512, 512);
	fill(w, 512, 4);
	same(r, w, 512, "write after the failed one");
	free(r);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_WRITE), 6);
	/* reads are not writes */
	ck_assert_int_eq(do_op(f, VCFS_OP_READ), 0);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_WRITE), 6);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_READ), 1);	/* rd() went below */
	free(w);
	vcfs_disk_close(f);
}
END_TEST

START_TEST(fault_sticky_default_err)
{
	struct vcfs_disk *f = fault_disk();
	struct vcfs_fault_rule rule = { .op = VCFS_OP_FLUSH, .nth = 2, .sticky = 1 };

	ck_assert_int_eq(vcfs_fault_set(f, &rule), 0);
	ck_assert_int_eq(do_op(f, VCFS_OP_FLUSH), 0);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(do_op(f, VCFS_OP_FLUSH), -VCFS_EINJECTED);
		ck_assert_int_eq(do_op(f, VCFS_OP_WRITE), 0);	/* other ops unaffected */
	}
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_FLUSH), 6);
	/* setting the rule again restarts its counter: the first flush passes */
	ck_assert_int_eq(vcfs_fault_set(f, &rule), 0);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_FLUSH), 0);
	ck_assert_int_eq(do_op(f, VCFS_OP_FLUSH), 0);
	ck_assert_int_eq(do_op(f, VCFS_OP_FLUSH), -VCFS_EINJECTED);
	vcfs_disk_close(f);
}
END_TEST

START_TEST(fault_any)
{
	struct vcfs_disk *f = fault_disk();
	struct vcfs_fault_rule any = { .op = VCFS_OP_ANY, .nth = 4, .err = -ENOSPC };
	struct vcfs_fault_rule cas = { .op = VCFS_OP_CAS, .nth = 1, .err = -ETIMEDOUT };

	ck_assert_int_eq(vcfs_fault_set(f, &any), 0);
	ck_assert_int_eq(do_op(f, VCFS_OP_READ), 0);
	ck_assert_int_eq(do_op(f, VCFS_OP_FLUSH), 0);
	ck_assert_int_eq(do_op(f, VCFS_OP_UNMAP), 0);
	ck_assert_int_eq(do_op(f, VCFS_OP_ZEROES), -ENOSPC);	/* the 4th op of any kind */
	ck_assert_int_eq(do_op(f, VCFS_OP_ZEROES), 0);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_ANY), 5);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_ZEROES), 2);
	/* when the ANY rule and the op's own rule fire together, the op's wins */
	any.nth = 6;
	ck_assert_int_eq(vcfs_fault_set(f, &any), 0);
	ck_assert_int_eq(vcfs_fault_set(f, &cas), 0);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(do_op(f, VCFS_OP_READ), 0);
	ck_assert_int_eq(do_op(f, VCFS_OP_CAS), -ETIMEDOUT);
	ck_assert_int_eq(do_op(f, VCFS_OP_CAS), 0);
	vcfs_disk_close(f);
}
END_TEST

START_TEST(fault_delay)
{
	struct vcfs_disk *f = fault_disk();
	struct vcfs_fault_rule rule = { .op = VCFS_OP_READ, .delay_us = 25000 };
	uint64_t t0, t1;

	ck_assert_int_eq(vcfs_fault_set(f, &rule), 0);
	t0 = mono_ns();
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(do_op(f, VCFS_OP_READ), 0);	/* delayed, not failed */
	t1 = mono_ns();
	ck_assert_uint_ge(t1 - t0, 100 * VCFS_NS_PER_MS);
	/* a delay on a rule that also fails: slept, then failed */
	rule = (struct vcfs_fault_rule){ .op = VCFS_OP_WRITE, .nth = 1, .err = -EIO,
					 .delay_us = 30000 };
	ck_assert_int_eq(vcfs_fault_set(f, &rule), 0);
	t0 = mono_ns();
	ck_assert_int_eq(do_op(f, VCFS_OP_WRITE), -EIO);
	ck_assert_uint_ge(mono_ns() - t0, 30 * VCFS_NS_PER_MS);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_READ), 4);
	vcfs_disk_close(f);
}
END_TEST

START_TEST(fault_clear_and_bad_set)
{
	struct vcfs_disk *f = fault_disk();
	struct vcfs_disk *plain = open_path(img, 0);
	struct vcfs_fault_rule rule = { .op = VCFS_OP_READ, .nth = 1, .sticky = 1, .err = -EIO };

	ck_assert_int_eq(vcfs_fault_set(f, &rule), 0);
	ck_assert_int_eq(do_op(f, VCFS_OP_READ), -EIO);
	ck_assert_int_eq(do_op(f, VCFS_OP_READ), -EIO);
	vcfs_fault_clear(f);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_READ), 0);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_ANY), 0);
	ck_assert_int_eq(do_op(f, VCFS_OP_READ), 0);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_READ), 1);
	/* bad rules are refused and change nothing */
	rule.op = VCFS_OP_NR;
	ck_assert_int_eq(vcfs_fault_set(f, &rule), -EINVAL);
	rule.op = VCFS_OP_READ;
	rule.err = EIO;		/* positive: a caller who forgot the sign */
	ck_assert_int_eq(vcfs_fault_set(f, &rule), -EINVAL);
	ck_assert_int_eq(do_op(f, VCFS_OP_READ), 0);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_NR), 0);
	/* the calls on a disk that is not a fault layer */
	rule.err = -EIO;
	ck_assert_int_eq(vcfs_fault_set(plain, &rule), -EINVAL);
	ck_assert_int_eq(vcfs_fault_parse(plain, "read:1"), -EINVAL);
	ck_assert_uint_eq(vcfs_fault_count(plain, VCFS_OP_READ), 0);
	vcfs_fault_clear(plain);
	ck_assert_int_eq(do_op(plain, VCFS_OP_READ), 0);
	vcfs_disk_close(plain);
	vcfs_disk_close(f);
}
END_TEST

/*
 * A backend that does nothing, as fast as possible: under it the fault
 * layer's own bookkeeping is all the work, so threads really race on it.
 */
static int null_read(struct vcfs_disk *d, uint64_t off, void *buf, size_t len)
{
	(void)d;
	(void)off;
	memset(buf, 0, len);
	return 0;
}

static int null_write(struct vcfs_disk *d, uint64_t off, const void *buf, size_t len,
		      unsigned flags)
{
	(void)d;
	(void)off;
	(void)buf;
	(void)len;
	(void)flags;
	return 0;
}

static int null_flush(struct vcfs_disk *d)
{
	(void)d;
	return 0;
}

static void null_close(struct vcfs_disk *d)
{
	free(d);
}

static const struct vcfs_disk_ops null_ops = {
	.read = null_read, .write = null_write, .flush = null_flush, .close = null_close,
};

static struct vcfs_disk *null_disk(void)
{
	struct vcfs_disk *d = vcfs_disk_new(&null_ops, NULL);

	ck_assert_ptr_nonnull(d);
	d->info = (struct vcfs_disk_info){ .size = 1 << 20, .lsec = 512, .psec = 512,
					   .max_io = 1 << 20, .backend = "null" };
	return d;
}

/* Many threads: a once-rule fires exactly once, a sticky one from its nth on,
 * and no op is lost from the counts. */
enum { FT_THREADS = 8, FT_OPS = 50000 };

struct fault_thr {
	struct vcfs_disk *f;
	int failed, flush_failed, other;
};

static void *fault_thread(void *arg)
{
	struct fault_thr *t = arg;
	uint8_t b[512] = { 0 };

	for (int i = 0; i < FT_OPS; i++) {
		int rc = vcfs_disk_write(t->f, 0, b, 512, 0);
		if (rc == -EIO)
			t->failed++;
		else if (rc)
			t->other++;
		rc = vcfs_disk_flush(t->f);
		if (rc == -ENOSPC)
			t->flush_failed++;
		else if (rc)
			t->other++;
	}
	return NULL;
}

START_TEST(fault_threads)
{
	struct vcfs_disk *f;
	struct vcfs_fault_rule once = { .op = VCFS_OP_WRITE, .nth = 12345, .err = -EIO };
	struct vcfs_fault_rule sticky = { .op = VCFS_OP_FLUSH, .nth = 100001, .sticky = 1,
					  .err = -ENOSPC };
	struct fault_thr t[FT_THREADS];
	pthread_t th[FT_THREADS];
	int failed = 0, flush_failed = 0;
	const uint64_t total = (uint64_t)FT_THREADS * FT_OPS;

	ck_assert_int_eq(vcfs_fault_wrap(null_disk(), &f), 0);
	ck_assert_int_eq(vcfs_fault_set(f, &once), 0);
	ck_assert_int_eq(vcfs_fault_set(f, &sticky), 0);
	for (int i = 0; i < FT_THREADS; i++) {
		t[i] = (struct fault_thr){ .f = f };
		ck_assert_int_eq(pthread_create(&th[i], NULL, fault_thread, &t[i]), 0);
	}
	for (int i = 0; i < FT_THREADS; i++) {
		pthread_join(th[i], NULL);
		failed += t[i].failed;
		flush_failed += t[i].flush_failed;
		ck_assert_int_eq(t[i].other, 0);
	}
	ck_assert_int_eq(failed, 1);
	ck_assert_int_eq(flush_failed, (int)(total - 100000));
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_WRITE), total);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_FLUSH), total);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_ANY), 2 * total);
	vcfs_disk_close(f);
}
END_TEST

/*
 * Good specs: for each, the ops of every kind are driven `runs` times and the
 * ones that must fail (1-based positions per kind) fail with the given error.
 */
struct spec_case {
	const char *spec;
	struct { enum vcfs_disk_op op; uint64_t nth; int sticky, err; } want[3];
};

START_TEST(fault_parse_good)
{
	static const struct spec_case c[] = {
		{ "write:1:sticky:EIO", { { VCFS_OP_WRITE, 1, 1, -EIO } } },
		{ "read:2:ENOSPC", { { VCFS_OP_READ, 2, 0, -ENOSPC } } },
		{ "flush:1:ETIMEDOUT", { { VCFS_OP_FLUSH, 1, 0, -ETIMEDOUT } } },
		{ "cas:3:EROFS", { { VCFS_OP_CAS, 3, 0, -EROFS } } },
		{ "unmap:1:ENOTCONN", { { VCFS_OP_UNMAP, 1, 0, -ENOTCONN } } },
		{ "zeroes:2:28", { { VCFS_OP_ZEROES, 2, 0, -28 } } },	/* errno by number */
		{ "write:2", { { VCFS_OP_WRITE, 2, 0, -VCFS_EINJECTED } } },
		{ "cas:1:VCFS_EMISCOMPARE", { { VCFS_OP_CAS, 1, 0, -VCFS_EMISCOMPARE } } },
		{ "cas:2:sticky:EFENCED", { { VCFS_OP_CAS, 2, 1, -VCFS_EFENCED } } },
		{ "write:2:delay=100:EIO:sticky", { { VCFS_OP_WRITE, 2, 1, -EIO } } },
		{ "read:0:delay=10", { { VCFS_OP_READ, 0, 0, 0 } } },	/* delay only */
		{ "read:2:EIO,write:1:sticky:ENOSPC,flush:3:delay=1:ETIMEDOUT",
		  { { VCFS_OP_READ, 2, 0, -EIO }, { VCFS_OP_WRITE, 1, 1, -ENOSPC },
		    { VCFS_OP_FLUSH, 3, 0, -ETIMEDOUT } } },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct vcfs_disk *f = fault_disk();
		int rc = vcfs_fault_parse(f, c[i].spec);

		ck_assert_msg(rc == 0, "'%s': %s", c[i].spec, vcfs_strerror(rc));
		/* (an asynchronous write also counts as a write: below) */
		for (int op = VCFS_OP_READ; op < VCFS_OP_AIO; op++) {
			uint64_t nth = 0;
			int sticky = 0, err = 0;
			for (int k = 0; k < 3; k++)
				if (c[i].want[k].nth && (int)c[i].want[k].op == op) {
					nth = c[i].want[k].nth;
					sticky = c[i].want[k].sticky;
					err = c[i].want[k].err;
				}
			for (uint64_t n = 1; n <= 5; n++) {
				int fires = nth && (sticky ? n >= nth : n == nth);
				rc = do_op(f, (enum vcfs_disk_op)op);
				ck_assert_msg(rc == (fires ? err : 0), "'%s': op %d number %llu "
					      "gave %d (%s)", c[i].spec, op, (unsigned long long)n,
					      rc, vcfs_strerror(rc));
			}
		}
		vcfs_disk_close(f);
	}
	/* "aio" reaches asynchronous requests alone */
	{
		struct vcfs_disk *f = fault_disk();
		ck_assert_int_eq(vcfs_fault_parse(f, "aio:1:sticky:EIO"), 0);
		ck_assert_int_eq(do_op(f, VCFS_OP_WRITE), 0);
		ck_assert_int_eq(do_op(f, VCFS_OP_AIO), -EIO);
		ck_assert_int_eq(do_op(f, VCFS_OP_WRITE), 0);
		vcfs_disk_close(f);
	}
}
END_TEST

START_TEST(fault_parse_any)
{
	struct vcfs_disk *f = fault_disk();

	ck_assert_int_eq(vcfs_fault_parse(f, "any:3:sticky:EIO"), 0);
	ck_assert_int_eq(do_op(f, VCFS_OP_FLUSH), 0);
	ck_assert_int_eq(do_op(f, VCFS_OP_READ), 0);
	ck_assert_int_eq(do_op(f, VCFS_OP_CAS), -EIO);
	ck_assert_int_eq(do_op(f, VCFS_OP_UNMAP), -EIO);
	ck_assert_int_eq(do_op(f, VCFS_OP_READ), -EIO);
	vcfs_disk_close(f);
}
END_TEST

START_TEST(fault_parse_bad)
{
	static const char *const bad[] = {
		"", "write", "write:", ":1", "write:x", "write:-1", "write:1x", "bogus:1",
		"writes:1", "write:1:EWHAT", "write:1:0", "write:1:sticky:sticky",
		"write:1:EIO:ENOSPC", "write:1:delay=", "write:1:delay=abc",
		"write:1:delay=99999999999", "write:1:delay=5:delay=6", "write:1:",
		"write:1,", ",write:1", "write:1,,read:1", "write:1,write:2",
		"write:99999999999999999999999", "write 1", "write:1: EIO",
		"read:1,bogus:1",
	};
	struct vcfs_disk *f = fault_disk();
	struct vcfs_fault_rule rule = { .op = VCFS_OP_WRITE, .nth = 2, .err = -EROFS };

	vcfs_log_set_sink(log_to_buffer, NULL);
	ck_assert_int_eq(vcfs_fault_set(f, &rule), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(vcfs_fault_parse(f, bad[i]) == -EINVAL, "'%s' accepted", bad[i]);
	ck_assert_int_eq(vcfs_fault_parse(f, NULL), -EINVAL);
	/* all or nothing: "read:1,bogus:1" set no read rule, and the write
	 * rule from before is intact with its counter */
	ck_assert_int_eq(do_op(f, VCFS_OP_READ), 0);
	ck_assert_int_eq(do_op(f, VCFS_OP_WRITE), 0);
	ck_assert_int_eq(do_op(f, VCFS_OP_WRITE), -EROFS);
	vcfs_disk_close(f);
}
END_TEST

/* vcfs_disk_open wraps the disk when VCFS_FAULT is set (fork mode: the
 * environment change stays in this test's process). */
START_TEST(fault_env)
{
	struct vcfs_disk_opts o = { .flags = VCFS_DISK_NO_DIRECT };
	struct vcfs_disk *d = NULL;
	uint8_t *b = xalloc(512);

	ck_assert_int_eq(setenv("VCFS_FAULT", "write:2:sticky:EIO", 1), 0);
	ck_assert_int_eq(vcfs_disk_open(img, &o, &d), 0);
	ck_assert_str_eq(vcfs_disk_info(d)->backend, "fault");
	ck_assert_int_eq(vcfs_disk_write(d, 0, b, 512, 0), 0);
	ck_assert_int_eq(vcfs_disk_write(d, 0, b, 512, 0), -EIO);
	ck_assert_int_eq(vcfs_disk_write(d, 0, b, 512, 0), -EIO);
	ck_assert_str_eq(vcfs_strerror(-EIO), "Input/output error");
	vcfs_disk_close(d);
	vcfs_log_set_sink(log_to_buffer, NULL);
	ck_assert_int_eq(setenv("VCFS_FAULT", "write:two", 1), 0);
	d = NULL;
	ck_assert_int_eq(vcfs_disk_open(img, &o, &d), -EINVAL);
	ck_assert_ptr_null(d);
	ck_assert_int_eq(nlogged, 1);	/* and the operator is told why */
	ck_assert_ptr_nonnull(strstr(last_log, "write:two"));
	ck_assert_int_eq(setenv("VCFS_FAULT", "", 1), 0);	/* empty: no layer */
	ck_assert_int_eq(vcfs_disk_open(img, &o, &d), 0);
	ck_assert_str_eq(vcfs_disk_info(d)->backend, "file");
	vcfs_disk_close(d);
	unsetenv("VCFS_FAULT");
	free(b);
}
END_TEST

/* ================= the crash layer ================= */

/*
 * A model of the writes a test issued: the test keeps its own list and builds
 * expected images from it, never from the layer.
 */
struct mrec {
	uint64_t off, len, epoch;
	const uint8_t *data;	/* NULL: zero fill */
	int fua;
};

struct model {
	struct mrec r[64];
	size_t n;
	uint64_t epoch;
};

static void m_add(struct model *m, uint64_t off, uint64_t len, const uint8_t *data, int fua)
{
	ck_assert_uint_lt(m->n, 64);
	m->r[m->n++] = (struct mrec){ off, len, m->epoch, data, fua };
}

/* Apply the first `keep` bytes of record r to the image img (region at 0). */
static void m_apply(uint8_t *image, const struct mrec *r, uint64_t keep)
{
	if (r->data)
		memcpy(image + r->off, r->data, (size_t)keep);
	else
		memset(image + r->off, 0, (size_t)keep);
}

/* Bytes a tear keeps: up to the last physical sector boundary at or below the
 * middle of the write (a physical sector never tears). */
static uint64_t m_tear(const struct mrec *r, uint32_t psec)
{
	uint64_t cut = (r->off + r->len / 2) / psec * psec;

	return cut > r->off ? cut - r->off : 0;
}

/*
 * Expected image after a crash following record n-1.  choice[k] (for the k-th
 * volatile record) overrides policy when policy is RANDOM: 0 keep, 1 drop,
 * 2 tear.  Returns the number of volatile records.
 */
static size_t m_image(const struct model *m, size_t n, enum vcfs_crash_policy p,
		      const int *choice, const uint8_t *initial, uint8_t *image, size_t region,
		      uint32_t psec)
{
	uint64_t e = n ? m->r[n - 1].epoch : 0;
	size_t k = 0;

	memcpy(image, initial, region);
	for (size_t i = 0; i < n; i++) {
		const struct mrec *r = &m->r[i];
		int c;
		if (r->epoch < e || r->fua) {
			m_apply(image, r, r->len);
			continue;
		}
		c = p == VCFS_CRASH_KEEP ? 0 : p == VCFS_CRASH_DROP ? 1 :
		    p == VCFS_CRASH_TEAR ? 2 : choice ? choice[k] : 0;
		k++;
		if (c == 0)
			m_apply(image, r, r->len);
		else if (c == 2)
			m_apply(image, r, m_tear(r, psec));
	}
	return k;
}

/* Does image equal some keep/drop/tear choice for the volatile records? */
static int m_some_choice(const struct model *m, size_t n, const uint8_t *initial,
			 const uint8_t *got, uint8_t *scratch, size_t region, uint32_t psec)
{
	int choice[64] = { 0 };
	size_t k = m_image(m, n, VCFS_CRASH_KEEP, NULL, initial, scratch, region, psec);
	size_t combos = 1;

	ck_assert_uint_le(k, 8);
	for (size_t i = 0; i < k; i++)
		combos *= 3;
	for (size_t c = 0; c < combos; c++) {
		size_t x = c;
		for (size_t i = 0; i < k; i++, x /= 3)
			choice[i] = (int)(x % 3);
		m_image(m, n, VCFS_CRASH_RANDOM, choice, initial, scratch, region, psec);
		if (!memcmp(scratch, got, region))
			return 1;
	}
	return 0;
}

static uint8_t *pattern(size_t len, uint64_t seed)
{
	uint8_t *b = xalloc(len);

	fill(b, len, seed);
	return b;
}

/* Recording helpers: issue through the crash disk c and note it in m. */
static void c_write(struct vcfs_disk *c, struct model *m, uint64_t off, const uint8_t *data,
		    uint64_t len, unsigned flags)
{
	ck_assert_int_eq(vcfs_disk_write(c, off, data, (size_t)len, flags), 0);
	m_add(m, off, len, data, !!(flags & VCFS_IO_FUA));
}

static void c_zeroes(struct vcfs_disk *c, struct model *m, uint64_t off, uint64_t len,
		     unsigned flags)
{
	ck_assert_int_eq(vcfs_disk_write_zeroes(c, off, len, flags), 0);
	m_add(m, off, len, NULL, !!(flags & VCFS_IO_FUA));
}

static void c_unmap(struct vcfs_disk *c, struct model *m, uint64_t off, uint64_t len)
{
	ck_assert_int_eq(vcfs_disk_unmap(c, off, len), 0);
	m_add(m, off, len, NULL, 0);
}

static void c_flush(struct vcfs_disk *c, struct model *m)
{
	ck_assert_int_eq(vcfs_disk_flush(c), 0);
	m->epoch++;
}

/* The layer's log must be the model's, record for record. */
static void check_log(struct vcfs_disk *c, const struct model *m)
{
	ck_assert_uint_eq(vcfs_crash_nwrites(c), m->n);
	for (size_t i = 0; i < m->n; i++) {
		uint64_t off, len, ep;
		int dur;
		ck_assert_int_eq(vcfs_crash_write_info(c, i, &off, &len, &ep, &dur), 0);
		ck_assert_msg(off == m->r[i].off && len == m->r[i].len && ep == m->r[i].epoch &&
			      dur == m->r[i].fua, "record %zu: off %llu len %llu epoch %llu "
			      "durable %d", i, (unsigned long long)off, (unsigned long long)len,
			      (unsigned long long)ep, dur);
	}
	ck_assert_int_eq(vcfs_crash_write_info(c, m->n, NULL, NULL, NULL, NULL), -EINVAL);
}

/* Fill region [0, region) of the image file at path with the initial pattern. */
static void put_initial(const char *path, const uint8_t *initial, size_t region)
{
	struct vcfs_disk *d = open_path(path, 0);

	ck_assert_int_eq(vcfs_disk_write(d, 0, initial, region, 0), 0);
	vcfs_disk_close(d);
}

START_TEST(crash_buffer_reads_see_held)
{
	struct vcfs_disk *c, *d2;
	const size_t region = 64 << 10;
	uint8_t *initial = pattern(region, 1), *a = pattern(8192, 2), *b = pattern(4096, 3);
	uint8_t *want = malloc(region), *r;

	put_initial(img, initial, region);
	ck_assert_int_eq(vcfs_crash_wrap(open_path(img, 0), VCFS_CRASH_BUFFER, &c), 0);
	ck_assert_str_eq(vcfs_disk_info(c)->backend, "crash");
	ck_assert_uint_eq(vcfs_disk_info(c)->size, IMG_SIZE);
	d2 = open_path(img, 0);
	/* held writes, overlapping, then zero fills over parts of them */
	ck_assert_int_eq(vcfs_disk_write(c, 4096, a, 8192, 0), 0);
	ck_assert_int_eq(vcfs_disk_write(c, 8192, b, 4096, 0), 0);
	ck_assert_int_eq(vcfs_disk_write_zeroes(c, 4096 + 512, 1024, 0), 0);
	ck_assert_int_eq(vcfs_disk_unmap(c, 20480, 2048), 0);
	memcpy(want, initial, region);
	memcpy(want + 4096, a, 8192);
	memcpy(want + 8192, b, 4096);
	memset(want + 4096 + 512, 0, 1024);
	memset(want + 20480, 0, 2048);
	/* this host reads its own writes, in order; a read that covers them
	 * only partly sees the overlay on the right bytes */
	r = rd(c, 0, region);
	same(r, want, region, "read through the crash layer");
	free(r);
	r = rd(c, 8192 + 1024, 1024);
	same(r, want + 8192 + 1024, 1024, "partial read of a held write");
	free(r);
	/* nothing has reached the disk yet */
	r = rd(d2, 0, region);
	same(r, initial, region, "disk before the flush");
	free(r);
	ck_assert_int_eq(vcfs_disk_flush(c), 0);
	r = rd(d2, 0, region);
	same(r, want, region, "disk after the flush");
	free(r);
	free(initial);
	free(a);
	free(b);
	free(want);
	vcfs_disk_close(d2);
	vcfs_disk_close(c);
}
END_TEST

/*
 * A BUFFER workload crashed with policy _i: flushed writes, FUA writes (one
 * overlapping a held write) and zero fills survive as the model says; torn
 * writes keep exactly their first half; a log replay of the same records
 * with the same policy gives the same image.
 */
START_TEST(crash_buffer_policy)
{
	const enum vcfs_crash_policy pol = (enum vcfs_crash_policy)_i;
	struct vcfs_disk *c, *d2;
	struct model m = { .n = 0 };
	uint32_t P, L;
	size_t region;
	uint8_t *initial, *want, *r, *d[8];
	char tgt[256];

	ck_assert_int_eq(vcfs_crash_wrap(open_path(img, 0), VCFS_CRASH_BUFFER, &c), 0);
	P = vcfs_disk_info(c)->psec;
	L = vcfs_disk_info(c)->lsec;
	region = 32 * (size_t)P;
	initial = pattern(region, 10);
	want = malloc(region);
	for (int i = 0; i < 8; i++)
		d[i] = pattern(4 * (size_t)P, 20 + (uint64_t)i);
	ck_assert_int_eq(vcfs_disk_write(c->lower, 0, initial, region, 0), 0);
	d2 = open_path(img, 0);

	c_write(c, &m, 0, d[0], 2 * P, 0);		/* flushed: survives */
	c_flush(c, &m);
	c_write(c, &m, 4 * P, d[1], 4 * P, 0);		/* tears to 2 psec */
	c_write(c, &m, 10 * P, d[2], 2 * P, 0);		/* tears to 1 psec */
	c_write(c, &m, 14 * P, d[3], P, VCFS_IO_FUA);	/* durable at once */
	c_write(c, &m, 16 * P, d[4], L, 0);		/* inside one psec */
	c_write(c, &m, 20 * P, d[5], 3 * P, 0);		/* tears to 1 psec */
	c_zeroes(c, &m, 24 * P, 2 * P, 0);
	c_write(c, &m, 5 * P, d[6], P, VCFS_IO_FUA);	/* over the held d[1] */
	check_log(c, &m);

	/* before the crash the disk has the flushed and the FUA writes only */
	r = rd(d2, 0, region);
	memcpy(want, initial, region);
	memcpy(want, d[0], 2 * (size_t)P);
	memcpy(want + 14 * P, d[3], P);
	memcpy(want + 5 * P, d[6], P);
	same(r, want, region, "disk before the crash");
	free(r);

	ck_assert_int_eq(vcfs_crash_now(c, pol, 0), 0);
	r = rd(d2, 0, region);
	m_image(&m, m.n, pol, NULL, initial, want, region, P);
	same(r, want, region, "disk after the crash");
	/* spelled out, not only through the model */
	same(r, d[0], 2 * (size_t)P, "flushed write");
	same(r + 14 * P, d[3], P, "FUA write");
	same(r + 5 * P, d[6], P, "FUA write over a held write");
	switch (pol) {
	case VCFS_CRASH_KEEP:
		same(r + 4 * P, d[1], P, "kept write, head");
		same(r + 6 * P, d[1] + 2 * P, 2 * (size_t)P, "kept write, tail");
		same(r + 16 * P, d[4], L, "kept small write");
		ck_assert(all_zero(r + 24 * P, 2 * (size_t)P));
		break;
	case VCFS_CRASH_DROP:
		same(r + 4 * P, initial + 4 * P, P, "dropped write, head");
		same(r + 6 * P, initial + 6 * P, 2 * (size_t)P, "dropped write, tail");
		same(r + 10 * P, initial + 10 * P, 2 * (size_t)P, "dropped write");
		same(r + 24 * P, initial + 24 * P, 2 * (size_t)P, "dropped zero fill");
		break;
	case VCFS_CRASH_TEAR:
		/* exactly the first half */
		same(r + 4 * P, d[1], P, "torn write, first psec");
		same(r + 6 * P, initial + 6 * P, 2 * (size_t)P, "torn write, second half");
		same(r + 10 * P, d[2], P, "torn 2-psec write, first half");
		same(r + 11 * P, initial + 11 * P, P, "torn 2-psec write, second half");
		same(r + 16 * P, initial + 16 * P, P, "a write inside one psec cannot tear");
		same(r + 20 * P, d[5], P, "torn 3-psec write keeps 1 psec");
		same(r + 21 * P, initial + 21 * P, 2 * (size_t)P, "torn 3-psec write, rest");
		ck_assert(all_zero(r + 24 * P, P));
		same(r + 25 * P, initial + 25 * P, P, "torn zero fill, second half");
		break;
	default:
		ck_abort_msg("policy %d", pol);
	}
	free(r);

	/* replaying the log onto a copy of the initial disk gives the same image */
	make_image(tgt, sizeof(tgt), IMG_SIZE);
	put_initial(tgt, initial, region);
	{
		struct vcfs_disk *t = open_path(tgt, 0);
		ck_assert_int_eq(vcfs_crash_replay(c, t, m.n, pol, 0), 0);
		r = rd(t, 0, region);
		same(r, want, region, "replay of the same crash");
		free(r);
		vcfs_disk_close(t);
	}
	unlink(tgt);
	for (int i = 0; i < 8; i++)
		free(d[i]);
	free(initial);
	free(want);
	vcfs_disk_close(d2);
	vcfs_disk_close(c);
}
END_TEST

/* RANDOM: each write meets one of the three fates, the same for the same seed
 * (in vcfs_crash_now and in a replay), and over a few seeds all three occur. */
START_TEST(crash_random)
{
	const int NW = 6;
	uint32_t P = 0;
	size_t region = 0;
	uint8_t *initial = NULL, *d[6], *first[4] = { NULL };
	int seen[3] = { 0 };

	for (uint64_t seed = 1; seed <= 8; seed++) {
		struct vcfs_disk *c, *d2;
		struct model m = { .n = 0 };
		uint8_t *r, *want;
		char path[256];

		make_image(path, sizeof(path), IMG_SIZE);
		ck_assert_int_eq(vcfs_crash_wrap(open_path(path, 0), VCFS_CRASH_BUFFER, &c), 0);
		if (!P) {
			P = vcfs_disk_info(c)->psec;
			region = 4 * (size_t)P * (size_t)NW;
			initial = pattern(region, 30);
			for (int i = 0; i < NW; i++)
				d[i] = pattern(2 * (size_t)P, 40 + (uint64_t)i);
		}
		ck_assert_int_eq(vcfs_disk_write(c->lower, 0, initial, region, 0), 0);
		for (int i = 0; i < NW; i++)
			c_write(c, &m, (uint64_t)i * 4 * P, d[i], 2 * P, 0);
		ck_assert_int_eq(vcfs_crash_now(c, VCFS_CRASH_RANDOM, seed), 0);
		d2 = open_path(path, 0);
		r = rd(d2, 0, region);
		for (int i = 0; i < NW; i++) {
			const uint8_t *got = r + (size_t)i * 4 * P, *old = initial + (size_t)i * 4 * P;
			if (!memcmp(got, d[i], 2 * (size_t)P))
				seen[0]++;
			else if (!memcmp(got, old, 2 * (size_t)P))
				seen[1]++;
			else if (!memcmp(got, d[i], P) && !memcmp(got + P, old + P, P))
				seen[2]++;
			else
				ck_abort_msg("seed %llu write %d: neither kept, dropped nor torn",
					     (unsigned long long)seed, i);
			same(got + 2 * P, old + 2 * P, 2 * (size_t)P, "between the writes");
		}
		/* the same seed through a replay: the same image */
		want = xalloc(region);
		ck_assert_int_eq(vcfs_disk_write(d2, 0, initial, region, 0), 0);
		ck_assert_int_eq(vcfs_crash_replay(c, d2, m.n, VCFS_CRASH_RANDOM, seed), 0);
		ck_assert_int_eq(vcfs_disk_read(d2, 0, want, region), 0);
		same(want, r, region, "replay with the same seed");
		free(want);
		if (seed <= 4)
			first[seed - 1] = r;
		else
			free(r);
		vcfs_disk_close(d2);
		vcfs_disk_close(c);
		unlink(path);
	}
	/* fates over 48 writes: all three happen */
	ck_assert_int_gt(seen[0], 0);
	ck_assert_int_gt(seen[1], 0);
	ck_assert_int_gt(seen[2], 0);
	/* different seeds give different crashes */
	ck_assert(memcmp(first[0], first[1], region) || memcmp(first[0], first[2], region) ||
		  memcmp(first[0], first[3], region));
	for (int i = 0; i < 4; i++)
		free(first[i]);
	for (int i = 0; i < NW; i++)
		free(d[i]);
	free(initial);
}
END_TEST

START_TEST(crash_ops_after_crash)
{
	for (int mode = 0; mode < 2; mode++) {
		struct vcfs_disk *c;
		uint8_t *b = pattern(1024, 5), *r;
		int rc;

		ck_assert_int_eq(vcfs_crash_wrap(open_path(img, 0), (enum vcfs_crash_mode)mode,
						 &c), 0);
		ck_assert_int_eq(vcfs_disk_write(c, 0, b, 512, 0), 0);
		ck_assert_int_eq(vcfs_crash_now(c, VCFS_CRASH_KEEP, 0), 0);
		ck_assert_int_eq(vcfs_disk_read(c, 0, b, 512), -VCFS_ECRASHED);
		ck_assert_int_eq(vcfs_disk_write(c, 0, b, 512, 0), -VCFS_ECRASHED);
		ck_assert_int_eq(vcfs_disk_write(c, 0, b, 512, VCFS_IO_FUA), -VCFS_ECRASHED);
		ck_assert_int_eq(vcfs_disk_flush(c), -VCFS_ECRASHED);
		ck_assert_int_eq(vcfs_disk_cas(c, 0, b, b), -VCFS_ECRASHED);
		ck_assert_int_eq(vcfs_disk_unmap(c, 0, 512), -VCFS_ECRASHED);
		ck_assert_int_eq(vcfs_disk_write_zeroes(c, 0, 512, 0), -VCFS_ECRASHED);
		ck_assert_int_eq(vcfs_disk_pread(c, 3, b, 10), -VCFS_ECRASHED);
		ck_assert_int_eq(vcfs_disk_pwrite(c, 3, b, 10, 0), -VCFS_ECRASHED);
		ck_assert_int_eq(vcfs_crash_now(c, VCFS_CRASH_DROP, 0), -VCFS_ECRASHED);
		/* the log survives the crash: one write, nothing after it */
		ck_assert_uint_eq(vcfs_crash_nwrites(c), 1);
		/* KEEP kept the write that was held (BUFFER) or already there (LOG) */
		r = rd(c->lower, 0, 512);
		rc = memcmp(r, b, 512);
		ck_assert_msg(rc == 0, "mode %d: the kept write is missing", mode);
		free(r);
		free(b);
		vcfs_disk_close(c);
	}
}
END_TEST

/* CAS in BUFFER mode sees the held writes, is durable at once, and does not
 * flush held writes it does not overlap. */
START_TEST(crash_buffer_cas)
{
	struct vcfs_disk *c, *d2;
	uint8_t *a = pattern(512, 1), *b = pattern(512, 2), *x = pattern(512, 3);
	uint8_t *y = pattern(512, 4), *r;
	const uint64_t s = 64 * 512, far = 200 * 512;

	ck_assert_int_eq(vcfs_crash_wrap(open_path(img, 0), VCFS_CRASH_BUFFER, &c), 0);
	d2 = open_path(img, 0);
	ck_assert_int_eq(vcfs_disk_write(c, far, y, 512, 0), 0);	/* held, elsewhere */
	/* a CAS on a sector without held writes: through, and nothing flushed */
	ck_assert_int_eq(vcfs_disk_write(c->lower, s + 4096, a, 512, 0), 0);
	ck_assert_int_eq(vcfs_disk_cas(c, s + 4096, a, b), 0);
	r = rd(d2, s + 4096, 512);
	same(r, b, 512, "CAS durable at once");
	free(r);
	r = rd(d2, far, 512);
	ck_assert(all_zero(r, 512));	/* the held write is still held */
	free(r);
	/* a CAS over a held write compares what this host reads */
	ck_assert_int_eq(vcfs_disk_write(c, s, a, 512, 0), 0);
	ck_assert_int_eq(vcfs_disk_cas(c, s, x, b), -VCFS_EMISCOMPARE);
	r = rd(c, s, 512);
	same(r, a, 512, "held sector after a miscompare");
	free(r);
	ck_assert_int_eq(vcfs_disk_cas(c, s, a, b), 0);
	r = rd(d2, s, 512);
	same(r, b, 512, "CAS over a held write, on disk");
	free(r);
	/* the CAS is logged as a durable write: it survives a DROP crash */
	ck_assert_int_eq(vcfs_disk_write(c, s + 512, x, 512, 0), 0);
	ck_assert_int_eq(vcfs_crash_now(c, VCFS_CRASH_DROP, 0), 0);
	r = rd(d2, s, 1024);
	same(r, b, 512, "CAS after the crash");
	ck_assert(all_zero(r + 512, 512));	/* the held write after it was dropped */
	free(r);
	free(a);
	free(b);
	free(x);
	free(y);
	vcfs_disk_close(d2);
	vcfs_disk_close(c);
}
END_TEST

/*
 * LOG mode: a workload of writes, FUA writes, zero fills, unmaps and a CAS
 * over four epochs; a replay at every prefix n (0..N) with every policy
 * reproduces the model's image (RANDOM: one of the images some choice of
 * fates gives, the same for the same seed).  Replaying everything with KEEP
 * gives the disk as it is.
 */
START_TEST(crash_log_replay_every_prefix)
{
	struct vcfs_disk *c, *t;
	struct model m = { .n = 0 };
	uint32_t P, L;
	size_t region;
	uint8_t *initial, *want, *got, *got2, *scratch, *d[12], *cur;
	char tgt[256];
	size_t checked = 0;

	ck_assert_int_eq(vcfs_crash_wrap(open_path(img, 0), VCFS_CRASH_LOG, &c), 0);
	ck_assert_str_eq(vcfs_disk_info(c)->backend, "crash");
	P = vcfs_disk_info(c)->psec;
	L = vcfs_disk_info(c)->lsec;
	region = 40 * (size_t)P;
	initial = pattern(region, 50);
	for (int i = 0; i < 12; i++)
		d[i] = pattern(4 * (size_t)P, 60 + (uint64_t)i);
	ck_assert_int_eq(vcfs_disk_write(c->lower, 0, initial, region, 0), 0);

	/* epoch 0 */
	c_write(c, &m, 0, d[0], 4 * P, 0);
	c_write(c, &m, 2 * P, d[1], 4 * P, 0);			/* overlaps d[0] */
	c_write(c, &m, 8 * P, d[2], L, 0);
	c_flush(c, &m);
	/* epoch 1 */
	c_write(c, &m, P, d[3], 2 * P, VCFS_IO_FUA);
	c_zeroes(c, &m, 4 * P, 2 * P, 0);
	c_write(c, &m, 10 * P, d[4], 3 * P, 0);
	c_flush(c, &m);
	/* epoch 2 (LOG mode passes every op through at once) */
	c_unmap(c, &m, 0, 2 * P);
	cur = rd(c, 8 * P, L);
	ck_assert_int_eq(vcfs_disk_cas(c, 8 * P, cur, d[5]), 0);
	m_add(&m, 8 * P, L, d[5], 1);		/* a CAS is a durable write */
	free(cur);
	ck_assert_int_eq(vcfs_disk_cas(c, 8 * P, d[0], d[6]), -VCFS_EMISCOMPARE);
	c_write(c, &m, 12 * P, d[7], 4 * P, 0);
	c_zeroes(c, &m, 20 * P, 2 * P, VCFS_IO_FUA);
	c_write(c, &m, 5 * P + L, d[8], 2 * P, 0);		/* not psec-aligned */
	c_flush(c, &m);
	/* epoch 3, never flushed */
	c_write(c, &m, 30 * P, d[9], 4 * P, 0);
	c_write(c, &m, 32 * P, d[10], 4 * P, VCFS_IO_FUA);
	c_write(c, &m, 31 * P, d[11], 2 * P, 0);
	check_log(c, &m);

	want = malloc(region);
	scratch = malloc(region);
	got = xalloc(region);
	got2 = xalloc(region);
	/* the live disk is the whole log applied */
	m_image(&m, m.n, VCFS_CRASH_KEEP, NULL, initial, want, region, P);
	ck_assert_int_eq(vcfs_disk_read(c, 0, got, region), 0);
	same(got, want, region, "disk after the workload");

	make_image(tgt, sizeof(tgt), IMG_SIZE);
	t = open_path(tgt, 0);
	for (size_t n = 0; n <= m.n; n++) {
		static const enum vcfs_crash_policy pols[] = {
			VCFS_CRASH_KEEP, VCFS_CRASH_DROP, VCFS_CRASH_TEAR };
		for (size_t p = 0; p < 3; p++) {
			ck_assert_int_eq(vcfs_disk_write(t, 0, initial, region, 0), 0);
			ck_assert_int_eq(vcfs_crash_replay(c, t, n, pols[p], 0), 0);
			ck_assert_int_eq(vcfs_disk_read(t, 0, got, region), 0);
			m_image(&m, n, pols[p], NULL, initial, want, region, P);
			ck_assert_msg(!memcmp(got, want, region), "prefix %zu, policy %d: "
				      "image differs from the model", n, (int)pols[p]);
			checked++;
		}
		for (uint64_t seed = 1; seed <= 3; seed++) {
			ck_assert_int_eq(vcfs_disk_write(t, 0, initial, region, 0), 0);
			ck_assert_int_eq(vcfs_crash_replay(c, t, n, VCFS_CRASH_RANDOM, seed), 0);
			ck_assert_int_eq(vcfs_disk_read(t, 0, got, region), 0);
			ck_assert_msg(m_some_choice(&m, n, initial, got, scratch, region, P),
				      "prefix %zu, random seed %llu: no choice of fates gives "
				      "this image", n, (unsigned long long)seed);
			ck_assert_int_eq(vcfs_disk_write(t, 0, initial, region, 0), 0);
			ck_assert_int_eq(vcfs_crash_replay(c, t, n, VCFS_CRASH_RANDOM, seed), 0);
			ck_assert_int_eq(vcfs_disk_read(t, 0, got2, region), 0);
			same(got2, got, region, "second replay with the same seed");
			checked++;
		}
	}
	ck_assert_uint_eq(checked, 6 * (m.n + 1));
	/* a replay of more than was logged, or onto itself, is refused */
	ck_assert_int_eq(vcfs_crash_replay(c, t, m.n + 1, VCFS_CRASH_KEEP, 0), -EINVAL);
	ck_assert_int_eq(vcfs_crash_replay(c, c, 1, VCFS_CRASH_KEEP, 0), -EINVAL);
	vcfs_disk_close(t);
	unlink(tgt);
	for (int i = 0; i < 12; i++)
		free(d[i]);
	free(initial);
	free(want);
	free(scratch);
	free(got);
	free(got2);
	vcfs_disk_close(c);
}
END_TEST

/* FUA writes survive every crash, in both modes; an unflushed write before a
 * FUA write does not become durable through it. */
START_TEST(crash_fua_survives)
{
	static const enum vcfs_crash_policy pols[] = {
		VCFS_CRASH_KEEP, VCFS_CRASH_DROP, VCFS_CRASH_TEAR, VCFS_CRASH_RANDOM };

	for (size_t p = 0; p < 4; p++) {
		struct vcfs_disk *c, *d2;
		uint8_t *a = pattern(8192, 1 + p), *f = pattern(8192, 9 + p), *r;
		char path[256];

		make_image(path, sizeof(path), IMG_SIZE);
		ck_assert_int_eq(vcfs_crash_wrap(open_path(path, 0), VCFS_CRASH_BUFFER, &c), 0);
		ck_assert_int_eq(vcfs_disk_write(c, 0, a, 8192, 0), 0);
		ck_assert_int_eq(vcfs_disk_write(c, 65536, f, 8192, VCFS_IO_FUA), 0);
		ck_assert_int_eq(vcfs_disk_write_zeroes(c, 131072, 4096, VCFS_IO_FUA), 0);
		ck_assert_int_eq(vcfs_crash_now(c, pols[p], p), 0);
		d2 = open_path(path, 0);
		r = rd(d2, 65536, 8192);
		same(r, f, 8192, "FUA write after the crash");
		free(r);
		if (pols[p] == VCFS_CRASH_DROP) {
			r = rd(d2, 0, 8192);
			ck_assert(all_zero(r, 8192));
			free(r);
		}
		vcfs_disk_close(d2);
		vcfs_disk_close(c);
		unlink(path);
		free(a);
		free(f);
	}
	/* and in a LOG replay ending on the FUA write, under DROP */
	{
		struct vcfs_disk *c, *t;
		uint8_t *a = pattern(8192, 1), *f = pattern(4096, 2), *r;
		char tgt[256];

		ck_assert_int_eq(vcfs_crash_wrap(open_path(img, 0), VCFS_CRASH_LOG, &c), 0);
		ck_assert_int_eq(vcfs_disk_write(c, 0, a, 8192, 0), 0);
		ck_assert_int_eq(vcfs_disk_write(c, 8192, f, 4096, VCFS_IO_FUA), 0);
		make_image(tgt, sizeof(tgt), IMG_SIZE);
		t = open_path(tgt, 0);
		ck_assert_int_eq(vcfs_crash_replay(c, t, 2, VCFS_CRASH_DROP, 0), 0);
		r = rd(t, 0, 12288);
		ck_assert(all_zero(r, 8192));
		same(r + 8192, f, 4096, "FUA write in a replay");
		free(r);
		vcfs_disk_close(t);
		unlink(tgt);
		free(a);
		free(f);
		vcfs_disk_close(c);
	}
}
END_TEST

START_TEST(crash_bad_args)
{
	struct vcfs_disk *d = open_path(img, 0), *c = (struct vcfs_disk *)&d;

	ck_assert_int_eq(vcfs_crash_wrap(d, (enum vcfs_crash_mode)7, &c), -EINVAL);
	ck_assert_ptr_null(c);
	/* the calls on a disk that is not a crash layer */
	ck_assert_uint_eq(vcfs_crash_nwrites(d), 0);
	ck_assert_int_eq(vcfs_crash_write_info(d, 0, NULL, NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(vcfs_crash_now(d, VCFS_CRASH_KEEP, 0), -EINVAL);
	ck_assert_int_eq(vcfs_crash_wrap(d, VCFS_CRASH_LOG, &c), 0);	/* d still ours */
	ck_assert_int_eq(vcfs_crash_now(c, (enum vcfs_crash_policy)9, 0), -EINVAL);
	ck_assert_int_eq(vcfs_crash_replay(c, d, 0, VCFS_CRASH_KEEP, 0), 0);	/* nothing */
	ck_assert_int_eq(vcfs_crash_replay(c, d, 1, VCFS_CRASH_KEEP, 0), -EINVAL);
	ck_assert_uint_eq(vcfs_crash_nwrites(c), 0);
	vcfs_disk_close(c);
}
END_TEST

/*
 * The file backend's asynchronous path: 4 threads x 64 writes of distinct
 * patterns in flight at once, every byte read back both ways; argument
 * checks; a read-only handle; and close waits for requests in flight.
 */
#define AIO_THREADS 4
#define AIO_PER 64
struct aio_thr { struct vcfs_disk *d; struct aio_batch *b; struct aio_req *r; uint8_t *buf; int t; };

static void *aio_thr_run(void *arg)
{
	struct aio_thr *x = arg;

	for (int i = 0; i < AIO_PER; i++) {
		int k = x->t * AIO_PER + i;
		uint8_t *p = x->buf + (size_t)k * 4096;
		fill(p, 4096, 1000 + (uint64_t)k);
		/* interleaved: thread t writes every 4th 4 KiB block */
		req_init(&x->r[k], x->b, VCFS_AIO_WRITE, (uint64_t)(i * AIO_THREADS + x->t) * 4096,
			 p, 4096);
		ck_assert_int_eq(vcfs_disk_submit(x->d, &x->r[k].a), 0);
	}
	return NULL;
}

START_TEST(file_submit)
{
	struct vcfs_disk *d = open_path(img, 0), *ro;
	const unsigned n = AIO_THREADS * AIO_PER;
	uint8_t *buf = vcfs_disk_buf_alloc((size_t)n * 4096), *back = vcfs_disk_buf_alloc(4096);
	uint8_t *rd = vcfs_disk_buf_alloc((size_t)n * 4096);
	struct aio_req *r = calloc(n, sizeof(*r)), one;
	struct aio_thr th[AIO_THREADS];
	pthread_t tid[AIO_THREADS];
	struct aio_batch b;

	batch_init(&b);
	for (int t = 0; t < AIO_THREADS; t++) {
		th[t] = (struct aio_thr){ d, &b, r, buf, t };
		ck_assert_int_eq(pthread_create(&tid[t], NULL, aio_thr_run, &th[t]), 0);
	}
	for (int t = 0; t < AIO_THREADS; t++)
		pthread_join(tid[t], NULL);
	ck_assert_uint_eq(batch_wait(&b, n), n);
	ck_assert_uint_eq(b.failed, 0);
	for (unsigned k = 0; k < n; k++) {
		ck_assert_int_eq(vcfs_disk_read(d, r[k].a.off, back, 4096), 0);
		ck_assert_msg(!memcmp(back, buf + (size_t)k * 4096, 4096), "write %u lost", k);
	}
	/* and read back asynchronously, all in flight at once */
	batch_init(&b);
	for (unsigned k = 0; k < n; k++) {
		req_init(&r[k], &b, VCFS_AIO_READ, (uint64_t)k * 4096, rd + (size_t)k * 4096, 4096);
		ck_assert_int_eq(vcfs_disk_submit(d, &r[k].a), 0);
	}
	ck_assert_uint_eq(batch_wait(&b, n), n);
	ck_assert_uint_eq(b.failed, 0);
	for (unsigned k = 0; k < n; k++) {
		unsigned w = (k % AIO_THREADS) * AIO_PER + k / AIO_THREADS;	/* who wrote it */
		ck_assert_msg(!memcmp(rd + (size_t)k * 4096, buf + (size_t)w * 4096, 4096),
			      "async read of block %u", k);
	}
	/* what the synchronous calls refuse, and what "do it synchronously" means */
	batch_init(&b);
	req_init(&one, &b, VCFS_AIO_READ, 100, rd, 4096);
	ck_assert_int_eq(vcfs_disk_submit(d, &one.a), -VCFS_EALIGN);
	req_init(&one, &b, VCFS_AIO_READ, IMG_SIZE, rd, 4096);
	ck_assert_int_eq(vcfs_disk_submit(d, &one.a), -VCFS_ERANGE);
	req_init(&one, &b, VCFS_AIO_WRITE, 0, buf + 512, 4096);	/* would bounce */
	ck_assert_int_eq(vcfs_disk_submit(d, &one.a), -EOPNOTSUPP);
	req_init(&one, &b, VCFS_AIO_WRITE, 0, buf, 4096);
	one.a.done = NULL;
	ck_assert_int_eq(vcfs_disk_submit(d, &one.a), -EOPNOTSUPP);
	req_init(&one, &b, VCFS_AIO_WRITE, 0, buf, 8u << 20);	/* above max_io, and size */
	ck_assert_int_lt(vcfs_disk_submit(d, &one.a), 0);
	ck_assert_uint_eq(b.done, 0);
	ro = open_path(img, VCFS_DISK_RDONLY);
	req_init(&one, &b, VCFS_AIO_WRITE, 0, buf, 4096);
	ck_assert_int_eq(vcfs_disk_submit(ro, &one.a), -EROFS);
	ck_assert_int_eq(aio_one(ro, VCFS_AIO_READ, 4096, rd, 4096), 0);
	vcfs_disk_close(ro);
	/* close with requests in flight: every done() has run when it returns */
	batch_init(&b);
	for (unsigned k = 0; k < n; k++) {
		req_init(&r[k], &b, VCFS_AIO_WRITE, (uint64_t)k * 4096, buf, 4096);
		ck_assert_int_eq(vcfs_disk_submit(d, &r[k].a), 0);
	}
	vcfs_disk_close(d);
	ck_assert_uint_eq(b.done, n);
	ck_assert_uint_eq(b.failed, 0);
	free(r);
	free(buf);
	free(rd);
	free(back);
}
END_TEST

/* A backend without an asynchronous path says so; the fault layer has one,
 * where its rules reach (an "aio" rule only there). */
START_TEST(fault_submit)
{
	struct vcfs_disk *m, *f, *d = open_path(img, 0);
	struct vcfs_fault_rule fail = { .op = VCFS_OP_AIO, .nth = 2, .err = -EIO };
	struct vcfs_fault_rule slow = { .op = VCFS_OP_AIO, .delay_us = 200000 };
	uint8_t *a = vcfs_disk_buf_alloc(4096), *z = vcfs_disk_buf_alloc(4096);
	uint8_t *back = vcfs_disk_buf_alloc(4096);
	struct aio_batch b;
	struct aio_req r;
	uint64_t t0;

	ck_assert_int_eq(vcfs_mem_create("aio", IMG_SIZE, 0), 0);
	ck_assert_int_eq(vcfs_mem_open("aio", 1, NULL, &m), 0);
	batch_init(&b);
	req_init(&r, &b, VCFS_AIO_READ, 0, back, 4096);
	ck_assert_int_eq(vcfs_disk_submit(m, &r.a), -EOPNOTSUPP);
	vcfs_disk_close(m);
	vcfs_mem_destroy("aio");

	ck_assert_int_eq(vcfs_fault_wrap(d, &f), 0);
	fill(a, 4096, 5);
	ck_assert_int_eq(vcfs_fault_set(f, &fail), 0);
	ck_assert_int_eq(aio_one(f, VCFS_AIO_WRITE, 8192, a, 4096), 0);
	ck_assert_int_eq(aio_one(f, VCFS_AIO_WRITE, 12288, a, 4096), -EIO);
	ck_assert_int_eq(vcfs_disk_read(f, 12288, back, 4096), 0);
	ck_assert_msg(!memcmp(back, z, 4096), "a failed asynchronous write reached the disk");
	ck_assert_int_eq(vcfs_disk_read(f, 8192, back, 4096), 0);
	ck_assert_int_eq(memcmp(back, a, 4096), 0);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_AIO), 2);
	ck_assert_uint_eq(vcfs_fault_count(f, VCFS_OP_WRITE), 2);
	/* the delay holds the request, not the submitter, nor plain writes */
	ck_assert_int_eq(vcfs_fault_set(f, &slow), 0);
	batch_init(&b);
	req_init(&r, &b, VCFS_AIO_WRITE, 16384, a, 4096);
	t0 = vcfs_now_ns();
	ck_assert_int_eq(vcfs_disk_submit(f, &r.a), 0);
	ck_assert_int_eq(vcfs_disk_write(f, 20480, a, 4096, 0), 0);
	ck_assert_uint_lt(vcfs_now_ns() - t0, 150 * VCFS_NS_PER_MS);
	ck_assert_uint_eq(b.done, 0);
	/* close waits for it */
	vcfs_disk_close(f);
	ck_assert_uint_eq(b.done, 1);
	ck_assert_int_eq(r.rc, 0);
	ck_assert_uint_ge(vcfs_now_ns() - t0, 190 * VCFS_NS_PER_MS);
	free(a);
	free(z);
	free(back);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("disk");
	TCase *uri = tcase_create("uri"), *file = tcase_create("file");
	TCase *fault = tcase_create("fault"), *crash = tcase_create("crash");

	tcase_add_test(uri, uri_good);
	tcase_add_test(uri, uri_bad);
	tcase_add_test(uri, uri_query_and_redact);
	tcase_add_checked_fixture(uri, setup, teardown);
	tcase_add_test(uri, uri_open_errors);
	suite_add_tcase(s, uri);

	tcase_add_checked_fixture(file, setup, teardown);
	tcase_set_timeout(file, 60);
	tcase_add_test(file, file_info);
	tcase_add_test(file, file_roundtrips);
	tcase_add_test(file, file_errors);
	tcase_add_test(file, file_cas);
	tcase_add_test(file, file_unmap_and_zeroes);
	tcase_add_test(file, file_bytes);
	tcase_add_test(file, file_submit);
	suite_add_tcase(s, file);

	tcase_add_checked_fixture(fault, setup, teardown);
	tcase_set_timeout(fault, 60);
	tcase_add_test(fault, fault_passthrough_info);
	tcase_add_test(fault, fault_nth_once);
	tcase_add_test(fault, fault_sticky_default_err);
	tcase_add_test(fault, fault_any);
	tcase_add_test(fault, fault_delay);
	tcase_add_test(fault, fault_clear_and_bad_set);
	tcase_add_test(fault, fault_threads);
	tcase_add_test(fault, fault_parse_good);
	tcase_add_test(fault, fault_parse_any);
	tcase_add_test(fault, fault_parse_bad);
	tcase_add_test(fault, fault_env);
	tcase_add_test(fault, fault_submit);
	suite_add_tcase(s, fault);

	tcase_add_checked_fixture(crash, setup, teardown);
	tcase_set_timeout(crash, 120);
	tcase_add_test(crash, crash_buffer_reads_see_held);
	tcase_add_loop_test(crash, crash_buffer_policy, VCFS_CRASH_KEEP, VCFS_CRASH_TEAR + 1);
	tcase_add_test(crash, crash_random);
	tcase_add_test(crash, crash_ops_after_crash);
	tcase_add_test(crash, crash_buffer_cas);
	tcase_add_test(crash, crash_log_replay_every_prefix);
	tcase_add_test(crash, crash_fua_survives);
	tcase_add_test(crash, crash_bad_args);
	suite_add_tcase(s, crash);
	return s;
}

int main(void)
{
	snprintf(rundir, sizeof(rundir), "/var/tmp/check_disk.XXXXXX");
	return ck_run_in_tmpdir(suite(), rundir);
}
