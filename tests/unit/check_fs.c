/*
 * check_fs.c - the filesystem core (fs/fs.h) on a real image file.
 *
 * Every test formats a 256 MiB image under /var/tmp (max_hosts 8, T = 200 ms;
 * 1 s for the long big-directory and crash tests, see setup_big)
 * with the mkfs library, mounts it, and most end by unmounting and running
 * the independent fsck library over the image in check mode: it must find
 * nothing.  Two mounts of one image in one process are two hosts (each has
 * its own heartbeat slot and journal; their CAS meet in OFD locks).
 */
#include <check.h>
#include "ck_tmpdir.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/falloc.h>
#include "fs/fs.h"
#include "fs/fs_int.h"	/* white box: a host's hb, to crash or fence it */
#include "fs/mkfs.h"
#include "fs/fsck.h"
#include "journal/journal.h"
#include "common/clock.h"
#include "disk/disk.h"
#include "common/log.h"

#define IMG_BYTES (256ull << 20)
#define MIB (1u << 20)

static char dir_tmpl[] = "/var/tmp/vcfs-fs-XXXXXX";
static char img[128];
static char uri[160];
static struct vcfs_fs *fs;

static uint64_t ninodes;	/* 0: mkfs's default (4096 for 256 MiB) */
static uint32_t io_tmo = 200;	/* T: D = 7T = 1.4 s keeps dead-host tests short */

static void format(void)
{
	struct vcfs_mkfs_params p = { .volume_bytes = IMG_BYTES, .max_hosts = 8,
				      .io_timeout_ms = io_tmo, .label = "fstest",
				      .inodes = ninodes };
	struct vcfs_disk *d;
	int fd;

	snprintf(img, sizeof(img), "%s/img-%d", dir_tmpl, (int)getpid());
	fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)IMG_BYTES), 0);
	close(fd);
	snprintf(uri, sizeof(uri), "file:%s", img);
	ck_assert_int_eq(vcfs_disk_open(uri, NULL, &d), 0);
	ck_assert_int_eq(vcfs_mkfs(d, &p, VCFS_MKFS_FORCE, NULL), 0);
	vcfs_disk_close(d);
}

static struct vcfs_fs *mount_as(const char *host)
{
	struct vcfs_mount_opts o = { .host_name = host };
	struct vcfs_fs *f = NULL;

	ck_assert_int_eq(vcfs_fs_mount(uri, &o, &f), 0);
	return f;
}

static void setup(void)
{
	const char *t = getenv("VCFS_CHECK_FS_T_MS");

	ninodes = 0;
	/* T = 200 ms; sanitizer builds run 2-3x slower and set a longer T
	 * (tests/sanitizers.sh): a renewal late by F - 2T fences the host */
	io_tmo = t && atoi(t) >= 100 ? (uint32_t)atoi(t) : 200;
	vcfs_log_set_level(VCFS_LOG_WARN);
	format();
	fs = mount_as("hostA");
}

/*
 * 20,000 files need more inodes than a 256 MiB volume gets by default.  The
 * long tests (big directory, crashes) time nothing about leases: they run
 * with T = 1 s, so that a machine loaded by other work (a renewal late by
 * more than F - 2T = 400 ms fences a T = 200 ms host) does not fence them.
 */
static void setup_big(void)
{
	vcfs_log_set_level(VCFS_LOG_WARN);
	ninodes = 22000;
	io_tmo = 1000;
	format();
	fs = mount_as("hostA");
}

static void setup_slow(void)
{
	vcfs_log_set_level(VCFS_LOG_WARN);
	ninodes = 0;
	io_tmo = 1000;
	format();
	fs = mount_as("hostA");
}

static void teardown(void)
{
	if (fs)
		vcfs_fs_unmount(fs);
	fs = NULL;
	unlink(img);
}

/* Unmount and demand a clean fsck. */
static void unmount_and_fsck(void)
{
	struct vcfs_fsck_opts o = { .mode = VCFS_FSCK_CHECK, .skip_live_wait = 1 };
	struct vcfs_fsck_stats st;
	struct vcfs_disk *d;
	FILE *out = tmpfile();
	int rc;

	ck_assert_int_eq(vcfs_fs_unmount(fs), 0);
	fs = NULL;
	o.out = out;
	ck_assert_int_eq(vcfs_disk_open(uri, NULL, &d), 0);
	rc = vcfs_fsck(d, &o, &st);
	vcfs_disk_close(d);
	if (rc) {
		char line[512];
		rewind(out);
		while (fgets(line, sizeof(line), out))
			fprintf(stderr, "fsck: %s", line);
	}
	fclose(out);
	ck_assert_int_eq(rc, 0);
}

static uint64_t root(void) { return vcfs_fs_root(fs); }

static uint64_t mkfile(struct vcfs_fs *f, uint64_t dir, const char *name)
{
	struct vcfs_attr a;

	ck_assert_int_eq(vcfs_fs_mknod(f, dir, name, S_IFREG | 0644, 0, 1000, 1000, &a), 0);
	return a.ino;
}

static uint64_t mkd(uint64_t dir, const char *name)
{
	struct vcfs_attr a;

	ck_assert_int_eq(vcfs_fs_mkdir(fs, dir, name, 0755, 0, 0, &a), 0);
	ck_assert(S_ISDIR(a.mode));
	return a.ino;
}

static uint64_t ino_of(struct vcfs_fs *f, uint64_t dir, const char *name)
{
	struct vcfs_attr a;
	int rc = vcfs_fs_lookup(f, dir, name, &a);

	return rc ? 0 : a.ino;
}

static uint32_t nlink_of(uint64_t ino)
{
	struct vcfs_attr a;

	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	return a.nlink;
}

/* Deterministic content: byte at file offset o. */
static uint8_t pat(uint64_t o, unsigned seed)
{
	uint64_t x = o * 0x9e3779b97f4a7c15ull + seed;

	return (uint8_t)(x >> 56 ^ x >> 13);
}

static void fill(uint8_t *b, uint64_t off, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = pat(off + i, seed);
}

/* ---- namespace ---- */

START_TEST(create_lookup_unlink)
{
	struct vcfs_attr a, b;
	uint64_t ino;

	ck_assert_int_eq(vcfs_fs_getattr(fs, root(), &a), 0);
	ck_assert(S_ISDIR(a.mode));
	ck_assert_uint_eq(a.nlink, 2);
	ck_assert_int_eq(vcfs_fs_lookup(fs, root(), "nope", &a), -ENOENT);
	ck_assert_int_eq(vcfs_fs_mknod(fs, root(), "f", S_IFREG | 0640, 0, 7, 8, &a), 0);
	ino = a.ino;
	ck_assert_uint_eq(a.mode, S_IFREG | 0640);
	ck_assert_uint_eq(a.uid, 7);
	ck_assert_uint_eq(a.gid, 8);
	ck_assert_uint_eq(a.nlink, 1);
	ck_assert_uint_eq(a.size, 0);
	ck_assert_int_eq(vcfs_fs_lookup(fs, root(), "f", &b), 0);
	ck_assert_uint_eq(b.ino, ino);
	ck_assert_uint_eq(b.generation, a.generation);
	ck_assert_int_eq(vcfs_fs_mknod(fs, root(), "f", S_IFREG | 0640, 0, 0, 0, &a), -EEXIST);
	ck_assert_int_eq(vcfs_fs_lookup(fs, root(), ".", &b), 0);
	ck_assert_uint_eq(b.ino, root());
	ck_assert_int_eq(vcfs_fs_lookup(fs, root(), "..", &b), 0);
	ck_assert_uint_eq(b.ino, root());
	/* special files */
	ck_assert_int_eq(vcfs_fs_mknod(fs, root(), "fifo", S_IFIFO | 0600, 0, 0, 0, &a), 0);
	ck_assert(S_ISFIFO(a.mode));
	ck_assert_int_eq(vcfs_fs_mknod(fs, root(), "null", S_IFCHR | 0666, makedev(1, 3), 0, 0,
				       &a), 0);
	ck_assert_int_eq(vcfs_fs_getattr(fs, a.ino, &b), 0);
	ck_assert_uint_eq(b.rdev, makedev(1, 3));
	ck_assert_int_eq(vcfs_fs_mknod(fs, root(), "sock", S_IFSOCK | 0600, 0, 0, 0, &a), 0);
	/* names */
	{
		char longname[300];
		memset(longname, 'x', sizeof(longname));
		longname[256] = 0;
		ck_assert_int_eq(vcfs_fs_mknod(fs, root(), longname, S_IFREG | 0644, 0, 0, 0, &a),
				 -ENAMETOOLONG);
		longname[255] = 0;
		ck_assert_int_eq(vcfs_fs_mknod(fs, root(), longname, S_IFREG | 0644, 0, 0, 0, &a), 0);
		ck_assert_uint_eq(ino_of(fs, root(), longname), a.ino);
		ck_assert_int_eq(vcfs_fs_unlink(fs, root(), longname), 0);
	}
	ck_assert_int_eq(vcfs_fs_unlink(fs, root(), "f"), 0);
	ck_assert_int_eq(vcfs_fs_lookup(fs, root(), "f", &b), -ENOENT);
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &b), -ENOENT);
	ck_assert_int_eq(vcfs_fs_unlink(fs, root(), "f"), -ENOENT);
	/* a reused inode number gets a new generation */
	ck_assert_int_eq(vcfs_fs_mknod(fs, root(), "g", S_IFREG | 0644, 0, 0, 0, &b), 0);
	if (b.ino == ino)
		ck_assert_uint_gt(b.generation, a.generation);
	ck_assert_int_eq(vcfs_fs_unlink(fs, root(), "fifo"), 0);
	unmount_and_fsck();
}
END_TEST

START_TEST(mkdir_rmdir)
{
	struct vcfs_attr a;
	uint64_t d1, d2;

	d1 = mkd(root(), "d1");
	ck_assert_uint_eq(nlink_of(root()), 3);
	ck_assert_uint_eq(nlink_of(d1), 2);
	d2 = mkd(d1, "d2");
	ck_assert_uint_eq(nlink_of(d1), 3);
	ck_assert_int_eq(vcfs_fs_lookup(fs, d2, "..", &a), 0);
	ck_assert_uint_eq(a.ino, d1);
	ck_assert_int_eq(vcfs_fs_mkdir(fs, root(), "d1", 0755, 0, 0, &a), -EEXIST);
	mkfile(fs, d2, "f");
	ck_assert_int_eq(vcfs_fs_rmdir(fs, d1, "d2"), -ENOTEMPTY);
	ck_assert_int_eq(vcfs_fs_rmdir(fs, root(), "d1"), -ENOTEMPTY);
	ck_assert_int_eq(vcfs_fs_rmdir(fs, d2, "f"), -ENOTDIR);
	ck_assert_int_eq(vcfs_fs_unlink(fs, d1, "d2"), -EISDIR);
	ck_assert_int_eq(vcfs_fs_mknod(fs, ino_of(fs, d2, "f"), "x", S_IFREG | 0644, 0, 0, 0, &a),
			 -ENOTDIR);
	ck_assert_int_eq(vcfs_fs_unlink(fs, d2, "f"), 0);
	ck_assert_int_eq(vcfs_fs_rmdir(fs, d1, "d2"), 0);
	ck_assert_uint_eq(nlink_of(d1), 2);
	ck_assert_int_eq(vcfs_fs_getattr(fs, d2, &a), -ENOENT);
	ck_assert_int_eq(vcfs_fs_rmdir(fs, root(), "d1"), 0);
	ck_assert_uint_eq(nlink_of(root()), 2);
	ck_assert_int_eq(vcfs_fs_rmdir(fs, root(), "d1"), -ENOENT);
	unmount_and_fsck();
}
END_TEST

START_TEST(renames)
{
	struct vcfs_attr a;
	uint64_t d1, d2, d3, f1, f2, e;

	d1 = mkd(root(), "d1");
	d2 = mkd(root(), "d2");
	d3 = mkd(d1, "d3");
	f1 = mkfile(fs, d1, "f1");
	f2 = mkfile(fs, d2, "f2");
	/* plain move across directories */
	ck_assert_int_eq(vcfs_fs_rename(fs, d1, "f1", d2, "g1", 0), 0);
	ck_assert_uint_eq(ino_of(fs, d2, "g1"), f1);
	ck_assert_uint_eq(ino_of(fs, d1, "f1"), 0);
	/* over an existing file: the old one goes */
	ck_assert_int_eq(vcfs_fs_rename(fs, d2, "g1", d2, "f2", 0), 0);
	ck_assert_uint_eq(ino_of(fs, d2, "f2"), f1);
	ck_assert_int_eq(vcfs_fs_getattr(fs, f2, &a), -ENOENT);
	/* NOREPLACE */
	f2 = mkfile(fs, d2, "x");
	ck_assert_int_eq(vcfs_fs_rename(fs, d2, "x", d2, "f2", RENAME_NOREPLACE), -EEXIST);
	ck_assert_int_eq(vcfs_fs_rename(fs, d2, "x", d2, "y", RENAME_NOREPLACE), 0);
	/* EXCHANGE of a file and a directory across parents */
	ck_assert_int_eq(vcfs_fs_rename(fs, d2, "y", d1, "d3", RENAME_EXCHANGE), 0);
	ck_assert_uint_eq(ino_of(fs, d1, "d3"), f2);
	ck_assert_uint_eq(ino_of(fs, d2, "y"), d3);
	ck_assert_int_eq(vcfs_fs_lookup(fs, d3, "..", &a), 0);
	ck_assert_uint_eq(a.ino, d2);
	ck_assert_uint_eq(nlink_of(d1), 2);
	ck_assert_uint_eq(nlink_of(d2), 3);
	ck_assert_int_eq(vcfs_fs_rename(fs, d2, "nope", d1, "d3", RENAME_EXCHANGE), -ENOENT);
	ck_assert_int_eq(vcfs_fs_rename(fs, d2, "y", d1, "zz", RENAME_EXCHANGE), -ENOENT);
	/* directory into its own subtree */
	ck_assert_int_eq(vcfs_fs_rename(fs, root(), "d2", d3, "loop", 0), -EINVAL);
	ck_assert_int_eq(vcfs_fs_rename(fs, root(), "d2", d2, "loop", 0), -EINVAL);
	/* directory over an empty directory / a non-empty one / a file */
	e = mkd(d1, "empty");
	ck_assert_int_eq(vcfs_fs_rename(fs, d2, "y", d1, "empty", 0), 0);
	ck_assert_int_eq(vcfs_fs_getattr(fs, e, &a), -ENOENT);
	ck_assert_uint_eq(ino_of(fs, d1, "empty"), d3);
	ck_assert_uint_eq(nlink_of(d1), 3);
	ck_assert_uint_eq(nlink_of(d2), 2);
	mkfile(fs, d3, "inside");
	mkd(root(), "e2");
	ck_assert_int_eq(vcfs_fs_rename(fs, root(), "e2", d1, "empty", 0), -ENOTEMPTY);
	ck_assert_int_eq(vcfs_fs_rename(fs, root(), "e2", d2, "f2", 0), -ENOTDIR);
	ck_assert_int_eq(vcfs_fs_rename(fs, d2, "f2", root(), "e2", 0), -EISDIR);
	/* same inode under two names: nothing happens */
	ck_assert_int_eq(vcfs_fs_link(fs, f1, d2, "hard", &a), 0);
	ck_assert_int_eq(vcfs_fs_rename(fs, d2, "hard", d2, "f2", 0), 0);
	ck_assert_uint_eq(ino_of(fs, d2, "hard"), f1);
	ck_assert_uint_eq(nlink_of(f1), 2);
	/* rename onto itself */
	ck_assert_int_eq(vcfs_fs_rename(fs, d2, "f2", d2, "f2", 0), 0);
	ck_assert_int_eq(vcfs_fs_rename(fs, d2, "missing", d2, "q", 0), -ENOENT);
	unmount_and_fsck();
}
END_TEST

START_TEST(hard_links)
{
	struct vcfs_attr a;
	uint64_t d, f;

	d = mkd(root(), "d");
	f = mkfile(fs, root(), "f");
	ck_assert_int_eq(vcfs_fs_link(fs, f, d, "f2", &a), 0);
	ck_assert_uint_eq(a.nlink, 2);
	ck_assert_int_eq(vcfs_fs_link(fs, f, d, "f3", &a), 0);
	ck_assert_uint_eq(nlink_of(f), 3);
	ck_assert_int_eq(vcfs_fs_link(fs, f, d, "f3", &a), -EEXIST);
	ck_assert_int_eq(vcfs_fs_link(fs, d, root(), "dlink", &a), -EPERM);
	ck_assert_int_eq(vcfs_fs_unlink(fs, root(), "f"), 0);
	ck_assert_uint_eq(nlink_of(f), 2);
	ck_assert_uint_eq(ino_of(fs, d, "f2"), f);
	ck_assert_int_eq(vcfs_fs_unlink(fs, d, "f2"), 0);
	ck_assert_int_eq(vcfs_fs_unlink(fs, d, "f3"), 0);
	ck_assert_int_eq(vcfs_fs_getattr(fs, f, &a), -ENOENT);
	unmount_and_fsck();
}
END_TEST

START_TEST(symlinks)
{
	char buf[5000], longt[3000];
	struct vcfs_attr a;
	struct vcfs_statfs s0, s1;

	mkfile(fs, root(), "first");	/* the root's first bucket block */
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s0), 0);
	ck_assert_int_eq(vcfs_fs_symlink(fs, root(), "s", "target/of/link", 5, 6, &a), 0);
	ck_assert(S_ISLNK(a.mode));
	ck_assert_uint_eq(a.size, strlen("target/of/link"));
	ck_assert_int_eq(vcfs_fs_readlink(fs, a.ino, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "target/of/link");
	for (size_t i = 0; i < sizeof(longt) - 1; i++)
		longt[i] = (char)('a' + i % 26);
	longt[sizeof(longt) - 1] = 0;
	ck_assert_int_eq(vcfs_fs_symlink(fs, root(), "long", longt, 0, 0, &a), 0);
	ck_assert_uint_eq(a.size, strlen(longt));
	ck_assert_int_eq(vcfs_fs_readlink(fs, a.ino, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, longt);
	ck_assert_int_eq(vcfs_fs_readlink(fs, root(), buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(vcfs_fs_unlink(fs, root(), "long"), 0);
	ck_assert_int_eq(vcfs_fs_unlink(fs, root(), "s"), 0);
	sleep(1);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s1), 0);
	ck_assert_uint_eq(s1.bfree, s0.bfree);
	ck_assert_uint_eq(s1.ffree, s0.ffree);
	unmount_and_fsck();
}
END_TEST

struct seen { uint8_t *v; unsigned n, dup, dots; uint64_t base; };

static int seen_fill(void *arg, const char *name, uint64_t ino, uint32_t type, uint64_t next)
{
	struct seen *s = arg;
	unsigned k;

	(void)ino;
	(void)next;
	if (!strcmp(name, ".") || !strcmp(name, "..")) {
		ck_assert_uint_eq(type, DT_DIR);
		s->dots++;
		return 0;
	}
	ck_assert_int_eq(sscanf(name, "file-%u", &k), 1);
	ck_assert_uint_eq(type, DT_REG);
	if (s->v[k])
		s->dup++;
	s->v[k] = 1;
	s->n++;
	return 0;
}

/* Fill only a few entries per call: resumes at the cookie. */
struct paged { struct seen *s; unsigned left; uint64_t cookie; };

static int paged_fill(void *arg, const char *name, uint64_t ino, uint32_t type, uint64_t next)
{
	struct paged *p = arg;

	if (!p->left)
		return 1;
	p->left--;
	p->cookie = next;
	return seen_fill(p->s, name, ino, type, next);
}

START_TEST(big_directory)
{
	enum { N = 20000 };
	uint64_t d = mkd(root(), "big");
	uint64_t *inos = calloc(N, sizeof(*inos));
	struct seen s = { .v = calloc(N, 1) };
	struct vcfs_attr a;
	char name[32];

	for (unsigned i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "file-%u", i);
		ck_assert_int_eq(vcfs_fs_mknod(fs, d, name, S_IFREG | 0644, 0, 0, 0, &a), 0);
		inos[i] = a.ino;
	}
	ck_assert_int_eq(vcfs_fs_getattr(fs, d, &a), 0);
	for (unsigned i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "file-%u", i);
		ck_assert_uint_eq(ino_of(fs, d, name), inos[i]);
	}
	ck_assert_uint_eq(ino_of(fs, d, "file-20000"), 0);
	ck_assert_int_eq(vcfs_fs_readdir(fs, d, 0, seen_fill, &s), 0);
	ck_assert_uint_eq(s.n, N);
	ck_assert_uint_eq(s.dup, 0);
	ck_assert_uint_eq(s.dots, 2);
	/* again, a few entries per call */
	memset(s.v, 0, N);
	s.n = s.dup = s.dots = 0;
	{
		struct paged p = { .s = &s };
		unsigned before;
		do {
			before = s.n + s.dots;
			p.left = 97;
			ck_assert_int_eq(vcfs_fs_readdir(fs, d, p.cookie, paged_fill, &p), 0);
		} while (s.n + s.dots != before);
	}
	ck_assert_uint_eq(s.n, N);
	ck_assert_uint_eq(s.dup, 0);
	/* remove every other one; the rest are still found */
	for (unsigned i = 0; i < N; i += 2) {
		snprintf(name, sizeof(name), "file-%u", i);
		ck_assert_int_eq(vcfs_fs_unlink(fs, d, name), 0);
	}
	for (unsigned i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "file-%u", i);
		ck_assert_uint_eq(ino_of(fs, d, name), i % 2 ? inos[i] : 0);
	}
	ck_assert_int_eq(vcfs_fs_rmdir(fs, root(), "big"), -ENOTEMPTY);
	free(inos);
	free(s.v);
	unmount_and_fsck();
}
END_TEST

/*
 * A listing in small pages while the directory grows by thousands of entries
 * (many bucket splits) and loses some: every entry present throughout comes
 * exactly once, and no entry ever comes twice (POSIX readdir).
 */
START_TEST(readdir_during_splits)
{
	enum { N0 = 1000, ADD = 150, CALLS_MAX = 400 };
	unsigned total = N0 + CALLS_MAX * ADD, next = N0, calls = 0, before;
	uint64_t d = mkd(root(), "growing");
	struct seen s = { .v = calloc(total, 1) };
	struct paged p = { .s = &s };
	struct vcfs_attr a;
	char name[32];

	for (unsigned i = 0; i < N0; i++) {
		snprintf(name, sizeof(name), "file-%u", i);
		ck_assert_int_eq(vcfs_fs_mknod(fs, d, name, S_IFREG | 0644, 0, 0, 0, &a), 0);
	}
	do {
		before = s.n + s.dots;
		p.left = 37;
		ck_assert_int_eq(vcfs_fs_readdir(fs, d, p.cookie, paged_fill, &p), 0);
		/* between two pages: more entries (splits), and some go again */
		for (unsigned i = 0; i < ADD && next < total; i++, next++) {
			snprintf(name, sizeof(name), "file-%u", next);
			ck_assert_int_eq(vcfs_fs_mknod(fs, d, name, S_IFREG | 0644, 0, 0, 0, &a),
					 0);
			if (next % 3 == 0)
				ck_assert_int_eq(vcfs_fs_unlink(fs, d, name), 0);
		}
		calls++;
	} while (s.n + s.dots != before && calls < CALLS_MAX);
	ck_assert_uint_lt(calls, CALLS_MAX);
	ck_assert_uint_eq(s.dup, 0);
	ck_assert_uint_eq(s.dots, 2);
	for (unsigned i = 0; i < N0; i++)
		ck_assert_msg(s.v[i], "file-%u, present throughout, was never listed", i);
	fprintf(stderr, "check_fs: readdir_during_splits: %u pages while %u entries were "
		"added to the first %u; %u listed, none twice\n", calls, next - N0, N0, s.n);
	free(s.v);
	unmount_and_fsck();
}
END_TEST

/* ---- data ---- */

static struct vcfs_file *open_rw(uint64_t ino)
{
	struct vcfs_file *f = NULL;

	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDWR, 0, &f), 0);
	return f;
}

static void write_pat(struct vcfs_file *f, uint64_t off, size_t n, unsigned seed)
{
	uint8_t *b = malloc(n);

	fill(b, off, n, seed);
	ck_assert_int_eq(vcfs_file_write(f, off, b, n), (ssize_t)n);
	free(b);
}

/* Check [off, off+n) against the model. */
static void check_model(struct vcfs_file *f, const uint8_t *model, uint64_t off, size_t n)
{
	uint8_t *b = malloc(n);

	ck_assert_int_eq(vcfs_file_read(f, off, b, n), (ssize_t)n);
	for (size_t i = 0; i < n; i++)
		if (b[i] != model[off + i])
			ck_abort_msg("byte %llu: %u, expected %u", (unsigned long long)(off + i),
				     b[i], model[off + i]);
	free(b);
}

START_TEST(data_patterns)
{
	const size_t M = 3 * MIB + 12345;
	uint8_t *model = calloc(1, M), *b = malloc(M);
	struct vcfs_file *f;
	struct vcfs_attr a;
	uint64_t ino;
	static const struct { uint64_t off; size_t n; } w[] = {
		{ 0, 100 }, { 4090, 20 }, { 8191, 1 }, { 12000, 9000 }, { 700000, 300001 },
		{ 65535, 2 }, { 1048000, 2000 },		/* crosses 1 MiB: conversion */
		{ 1048576 + 4095, 4099 }, { 2 * MIB - 3, 7 }, { 3 * MIB, 12345 },
		{ 5, 1048576 },
	};

	ino = mkfile(fs, root(), "data");
	f = open_rw(ino);
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		write_pat(f, w[i].off, w[i].n, (unsigned)i + 1);
		fill(model + w[i].off, w[i].off, w[i].n, (unsigned)i + 1);
		if (w[i].off + w[i].n <= MIB) {
			/* while it fits one large block, still small blocks */
			check_model(f, model, 0, (size_t)(w[i].off + w[i].n));
		}
	}
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, M);
	check_model(f, model, 0, M);
	/* odd reads */
	check_model(f, model, 4093, 5);
	check_model(f, model, MIB - 1, 2);
	/* short read at EOF */
	ck_assert_int_eq(vcfs_file_read(f, M - 10, b, 100), 10);
	ck_assert_int_eq(vcfs_file_read(f, M + 10, b, 100), 0);
	ck_assert_int_eq(vcfs_file_fsync(f, 0), 0);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	/* remount: all of it is there */
	ck_assert_int_eq(vcfs_fs_unmount(fs), 0);
	fs = mount_as("hostA");
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDONLY, 0, &f), 0);
	check_model(f, model, 0, M);
	ck_assert_int_eq(vcfs_file_write(f, 0, b, 1), -EBADF);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	free(model);
	free(b);
	unmount_and_fsck();
}
END_TEST

START_TEST(holes)
{
	uint8_t *b = malloc(3 * MIB), *z = calloc(1, 3 * MIB);
	struct vcfs_file *f;
	struct vcfs_attr a;
	uint64_t ino = mkfile(fs, root(), "sparse"), o;

	f = open_rw(ino);
	write_pat(f, 5000, 10, 1);
	ck_assert_int_eq(vcfs_file_read(f, 0, b, 5000), 5000);
	ck_assert_mem_eq(b, z, 5000);
	/* a far write: everything before it reads zero */
	write_pat(f, 100ull * MIB + 7, 10, 2);
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, 100ull * MIB + 17);
	ck_assert_uint_le(a.blocks, 2ull * MIB / 512 + 64);
	ck_assert_int_eq(vcfs_file_read(f, 5010, b, 3 * MIB), 3 * MIB);
	ck_assert_mem_eq(b, z, 3 * MIB);
	ck_assert_int_eq(vcfs_file_read(f, 100ull * MIB - MIB, b, MIB + 7), MIB + 7);
	ck_assert_mem_eq(b, z, MIB + 7);
	{
		uint8_t e[10];
		fill(e, 5000, 10, 1);
		ck_assert_int_eq(vcfs_file_read(f, 5000, b, 10), 10);
		ck_assert_mem_eq(b, e, 10);
	}
	/* SEEK_DATA / SEEK_HOLE over the sparse file */
	ck_assert_int_eq(vcfs_file_lseek(f, 0, SEEK_DATA, &o), 0);
	ck_assert_uint_eq(o, 0);	/* block 0 holds the converted data */
	ck_assert_int_eq(vcfs_file_lseek(f, 0, SEEK_HOLE, &o), 0);
	ck_assert_uint_eq(o, MIB);
	ck_assert_int_eq(vcfs_file_lseek(f, MIB, SEEK_DATA, &o), 0);
	ck_assert_uint_eq(o, 100ull * MIB);
	ck_assert_int_eq(vcfs_file_lseek(f, 100ull * MIB + 3, SEEK_HOLE, &o), 0);
	ck_assert_uint_eq(o, 100ull * MIB + 17);
	ck_assert_int_eq(vcfs_file_lseek(f, 200ull * MIB, SEEK_DATA, &o), -ENXIO);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	free(b);
	free(z);
	unmount_and_fsck();
}
END_TEST

START_TEST(fallocate_seek_punch)
{
	struct vcfs_statfs s0, s1, s2;
	uint8_t *b = malloc(4 * MIB), *z = calloc(1, 4 * MIB);
	struct vcfs_file *f;
	struct vcfs_attr a;
	uint64_t ino = mkfile(fs, root(), "vmdk"), o;

	f = open_rw(ino);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s0), 0);
	/* 8 MiB preallocated: reads zero, counts as allocated, SEEK_DATA sees holes */
	ck_assert_int_eq(vcfs_file_fallocate(f, 0, 0, 8 * MIB), 0);
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, 8 * MIB);
	ck_assert_uint_eq(a.blocks, 8ull * MIB / 512);
	ck_assert_int_eq(vcfs_file_read(f, 0, b, 4 * MIB), 4 * MIB);
	ck_assert_mem_eq(b, z, 4 * MIB);
	ck_assert_int_eq(vcfs_file_lseek(f, 0, SEEK_DATA, &o), -ENXIO);
	ck_assert_int_eq(vcfs_file_lseek(f, 0, SEEK_HOLE, &o), 0);
	ck_assert_uint_eq(o, 0);
	/* write into the middle of an unwritten block: the rest stays zero */
	write_pat(f, 3 * MIB + 1000, 5000, 3);
	ck_assert_int_eq(vcfs_file_read(f, 3 * MIB, b, MIB), MIB);
	ck_assert_mem_eq(b, z, 1000);
	ck_assert_mem_eq(b + 6000, z, MIB - 6000);
	ck_assert_int_eq(vcfs_file_lseek(f, 0, SEEK_DATA, &o), 0);
	ck_assert_uint_eq(o, 3 * MIB);
	ck_assert_int_eq(vcfs_file_lseek(f, 3 * MIB + 5, SEEK_HOLE, &o), 0);
	ck_assert_uint_eq(o, 4 * MIB);
	/* KEEP_SIZE past the end */
	ck_assert_int_eq(vcfs_file_fallocate(f, FALLOC_FL_KEEP_SIZE, 8 * MIB, 2 * MIB), 0);
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, 8 * MIB);
	ck_assert_uint_eq(a.blocks, 10ull * MIB / 512);
	/* fill 4..8 MiB with data, then punch 4 MiB + 100 .. 7 MiB + 10 */
	for (unsigned i = 4; i < 8; i++)
		write_pat(f, (uint64_t)i * MIB, MIB, 4);
	sleep(1);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s1), 0);
	ck_assert_uint_eq(s0.bfree - s1.bfree, 10ull * MIB / 4096);
	ck_assert_int_eq(vcfs_file_fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					     4 * MIB + 100, 3 * MIB - 90), 0);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s2), 0);
	ck_assert_uint_eq(s2.bfree - s1.bfree, 2ull * MIB / 4096);	/* 5 and 6 MiB freed */
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, 8 * MIB);
	ck_assert_uint_eq(a.blocks, 8ull * MIB / 512);
	{
		uint8_t *m = malloc(4 * MIB);
		fill(m, 4 * MIB, 4 * MIB, 4);
		memset(m + 100, 0, 3 * MIB - 90);
		ck_assert_int_eq(vcfs_file_read(f, 4 * MIB, b, 4 * MIB), 4 * MIB);
		ck_assert_mem_eq(b, m, 4 * MIB);
		free(m);
	}
	ck_assert_int_eq(vcfs_file_lseek(f, 4 * MIB + 200, SEEK_HOLE, &o), 0);
	ck_assert_uint_eq(o, 5 * MIB);
	ck_assert_int_eq(vcfs_file_lseek(f, 5 * MIB, SEEK_DATA, &o), 0);
	ck_assert_uint_eq(o, 7 * MIB);
	/* ZERO_RANGE over written data */
	ck_assert_int_eq(vcfs_file_fallocate(f, FALLOC_FL_ZERO_RANGE, 7 * MIB + 20, MIB), 0);
	ck_assert_int_eq(vcfs_file_read(f, 7 * MIB, b, MIB), MIB);
	{
		uint8_t e[10];
		fill(e, 7 * MIB + 10, 10, 4);
		ck_assert_mem_eq(b, z, 10);		/* punched */
		ck_assert_mem_eq(b + 10, e, 10);	/* kept */
		ck_assert_mem_eq(b + 20, z, MIB - 20);
	}
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, 8 * MIB + 20);
	ck_assert_int_eq(vcfs_file_fallocate(f, FALLOC_FL_PUNCH_HOLE, 0, 10), -EOPNOTSUPP);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	free(b);
	free(z);
	unmount_and_fsck();
}
END_TEST

START_TEST(truncates)
{
	struct vcfs_statfs s0, s1;
	uint8_t *b = malloc(2 * MIB), *z = calloc(1, 2 * MIB);
	struct vcfs_file *f;
	struct vcfs_attr in = { 0 }, a;
	uint64_t ino = mkfile(fs, root(), "t");

	ck_assert_int_eq(vcfs_fs_statfs(fs, &s0), 0);
	f = open_rw(ino);
	write_pat(f, 0, 6 * MIB + 3, 5);
	/* down to an odd size: the tail past it reads zero after growing again */
	in.size = 2 * MIB + 5000;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_SIZE, &a), 0);
	ck_assert_uint_eq(a.size, 2 * MIB + 5000);
	ck_assert_uint_eq(a.blocks, 3ull * MIB / 512);
	in.size = 4 * MIB;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_SIZE, &a), 0);
	ck_assert_uint_eq(a.size, 4 * MIB);
	ck_assert_uint_eq(a.blocks, 3ull * MIB / 512);
	ck_assert_int_eq(vcfs_file_read(f, 2 * MIB, b, 2 * MIB), 2 * MIB);
	{
		uint8_t *m = malloc(5000);
		fill(m, 2 * MIB, 5000, 5);
		ck_assert_mem_eq(b, m, 5000);
		free(m);
	}
	ck_assert_mem_eq(b + 5000, z, 2 * MIB - 5000);
	/* to zero: all space back */
	in.size = 0;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_SIZE, &a), 0);
	ck_assert_uint_eq(a.blocks, 0);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	sleep(1);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s1), 0);
	ck_assert_uint_eq(s1.bfree, s0.bfree);
	/* truncate of a small-block file that is not open */
	f = open_rw(ino);
	write_pat(f, 0, 10000, 6);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	in.size = 4097;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_SIZE, &a), 0);
	ck_assert_uint_eq(a.blocks, 16);
	in.size = 9000;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_SIZE, &a), 0);
	f = open_rw(ino);
	ck_assert_int_eq(vcfs_file_read(f, 4096, b, 9000), 9000 - 4096);
	ck_assert_uint_eq(b[0], pat(4096, 6));
	ck_assert_mem_eq(b + 1, z, 9000 - 4097);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	/* O_TRUNC */
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDWR | O_TRUNC, 0, &f), 0);
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, 0);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	ck_assert_int_eq(vcfs_fs_setattr(fs, root(), &in, VCFS_SET_SIZE, &a), -EISDIR);
	free(b);
	free(z);
	unmount_and_fsck();
}
END_TEST

START_TEST(attrs)
{
	struct vcfs_attr in = { 0 }, a;
	uint64_t ino = mkfile(fs, root(), "a");

	in.mode = 06755;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_MODE, &a), 0);
	ck_assert_uint_eq(a.mode, S_IFREG | 06755);
	in.uid = 42;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_UID, &a), 0);
	ck_assert_uint_eq(a.uid, 42);
	ck_assert_uint_eq(a.mode, S_IFREG | 0755);	/* set-id bits cleared */
	in.atime.tv_sec = 1000;
	in.atime.tv_nsec = 123456789;
	in.mtime.tv_sec = 2000;
	in.mtime.tv_nsec = 987654321;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_ATIME | VCFS_SET_MTIME, &a), 0);
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	ck_assert_int_eq(a.atime.tv_sec, 1000);
	ck_assert_int_eq(a.atime.tv_nsec, 123456789);
	ck_assert_int_eq(a.mtime.tv_sec, 2000);
	ck_assert_int_eq(a.mtime.tv_nsec, 987654321);
	ck_assert_int_gt(a.ctime.tv_sec, 2000);
	unmount_and_fsck();
}
END_TEST

START_TEST(xattrs)
{
	char buf[1100], val[1100];
	uint64_t ino = mkfile(fs, root(), "x");

	ck_assert_int_eq(vcfs_fs_getxattr(fs, ino, "user.a", buf, sizeof(buf)), -ENODATA);
	ck_assert_int_eq(vcfs_fs_setxattr(fs, ino, "user.a", "hello", 5, 0), 0);
	ck_assert_int_eq(vcfs_fs_getxattr(fs, ino, "user.a", NULL, 0), 5);
	ck_assert_int_eq(vcfs_fs_getxattr(fs, ino, "user.a", buf, 2), -ERANGE);
	ck_assert_int_eq(vcfs_fs_getxattr(fs, ino, "user.a", buf, sizeof(buf)), 5);
	ck_assert_mem_eq(buf, "hello", 5);
	ck_assert_int_eq(vcfs_fs_setxattr(fs, ino, "user.a", "x", 1, XATTR_CREATE), -EEXIST);
	ck_assert_int_eq(vcfs_fs_setxattr(fs, ino, "user.b", "x", 1, XATTR_REPLACE), -ENODATA);
	ck_assert_int_eq(vcfs_fs_setxattr(fs, ino, "user.b", "", 0, XATTR_CREATE), 0);
	ck_assert_int_eq(vcfs_fs_setxattr(fs, ino, "user.a", "bye", 3, XATTR_REPLACE), 0);
	ck_assert_int_eq(vcfs_fs_getxattr(fs, ino, "user.a", buf, sizeof(buf)), 3);
	ck_assert_mem_eq(buf, "bye", 3);
	ck_assert_int_eq(vcfs_fs_listxattr(fs, ino, NULL, 0), 14);
	ck_assert_int_eq(vcfs_fs_listxattr(fs, ino, buf, 5), -ERANGE);
	ck_assert_int_eq(vcfs_fs_listxattr(fs, ino, buf, sizeof(buf)), 14);
	ck_assert_mem_eq(buf, "user.b\0user.a\0", 14);
	/* the area is 1 KiB */
	memset(val, 'v', sizeof(val));
	ck_assert_int_eq(vcfs_fs_setxattr(fs, ino, "user.big", val, 1000, 0), -ENOSPC);
	ck_assert_int_eq(vcfs_fs_setxattr(fs, ino, "user.big", val, 900, 0), 0);
	ck_assert_int_eq(vcfs_fs_setxattr(fs, ino, "user.c", val, 200, 0), -ENOSPC);
	ck_assert_int_eq(vcfs_fs_removexattr(fs, ino, "user.big"), 0);
	ck_assert_int_eq(vcfs_fs_removexattr(fs, ino, "user.big"), -ENODATA);
	ck_assert_int_eq(vcfs_fs_setxattr(fs, ino, "user.c", val, 200, 0), 0);
	/* on a directory, and after remount */
	ck_assert_int_eq(vcfs_fs_setxattr(fs, root(), "user.r", "1", 1, 0), 0);
	ck_assert_int_eq(vcfs_fs_unmount(fs), 0);
	fs = mount_as("hostA");
	ck_assert_int_eq(vcfs_fs_getxattr(fs, ino, "user.c", buf, sizeof(buf)), 200);
	ck_assert_int_eq(vcfs_fs_getxattr(fs, root(), "user.r", buf, sizeof(buf)), 1);
	unmount_and_fsck();
}
END_TEST

START_TEST(unlink_open)
{
	struct vcfs_statfs s0, s1, s2;
	struct vcfs_file *f, *g;
	struct vcfs_attr a;
	uint8_t b[100];
	uint64_t ino;

	mkfile(fs, root(), "first");	/* the root's first bucket block */
	sleep(1);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s0), 0);
	ck_assert_int_eq(vcfs_fs_create(fs, root(), "tmp", 0644, 0, 0, O_RDWR | O_CREAT, &a,
					&f), 0);
	ino = a.ino;
	write_pat(f, 0, 3 * MIB, 9);
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDONLY, 0, &g), 0);
	ck_assert_int_eq(vcfs_fs_unlink(fs, root(), "tmp"), 0);
	ck_assert_uint_eq(ino_of(fs, root(), "tmp"), 0);
	/* still readable and writable through the handles */
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.nlink, 0);
	write_pat(f, 3 * MIB, 100, 9);
	ck_assert_int_eq(vcfs_file_read(g, 3 * MIB, b, 100), 100);
	ck_assert_uint_eq(b[99], pat(3 * MIB + 99, 9));
	ck_assert_int_eq(vcfs_file_release(f), 0);
	sleep(1);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s1), 0);
	ck_assert_uint_lt(s1.bfree, s0.bfree);
	ck_assert_int_eq(vcfs_file_read(g, 0, b, 100), 100);
	ck_assert_uint_eq(b[5], pat(5, 9));
	ck_assert_int_eq(vcfs_file_release(g), 0);
	/* the last release freed it */
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), -ENOENT);
	sleep(1);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s2), 0);
	ck_assert_uint_eq(s2.bfree, s0.bfree);
	ck_assert_uint_eq(s2.ffree, s0.ffree);
	unmount_and_fsck();
}
END_TEST

/* An orphan left by a host that went away is freed at the next mount. */
START_TEST(orphan_after_crash)
{
	struct vcfs_statfs s0, s1;
	struct vcfs_file *f;
	struct vcfs_attr a;

	mkfile(fs, root(), "first");
	sleep(1);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s0), 0);
	ck_assert_int_eq(vcfs_fs_create(fs, root(), "o", 0644, 0, 0, O_RDWR, &a, &f), 0);
	write_pat(f, 0, 2 * MIB, 1);
	ck_assert_int_eq(vcfs_fs_unlink(fs, root(), "o"), 0);
	/* unmount with the file still open: its lock goes, the orphan stays */
	ck_assert_int_eq(vcfs_fs_unmount(fs), 0);
	free(f);
	fs = mount_as("hostA");
	ck_assert_int_eq(vcfs_fs_getattr(fs, a.ino, &a), -ENOENT);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s1), 0);
	ck_assert_uint_eq(s1.bfree, s0.bfree);
	unmount_and_fsck();
}
END_TEST

/* ---- two hosts ---- */

START_TEST(two_hosts)
{
	struct vcfs_fs *b = mount_as("hostB");
	struct vcfs_file *fa, *fb, *fa2;
	struct vcfs_attr a;
	uint8_t buf[64];
	uint64_t ino;

	/* created on A, visible on B */
	ino = mkfile(fs, root(), "shared");
	ck_assert_uint_eq(ino_of(b, root(), "shared"), ino);
	/* B creates in a directory A made */
	{
		struct vcfs_attr d;
		ck_assert_int_eq(vcfs_fs_mkdir(fs, root(), "dir", 0755, 0, 0, &d), 0);
		mkfile(b, d.ino, "fromB");
		ck_assert_uint_ne(ino_of(fs, d.ino, "fromB"), 0);
	}
	/* A opens for writing: B's write and read opens fail */
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDWR, 0, &fa), 0);
	ck_assert_int_eq(vcfs_fs_open(b, ino, O_RDWR, 0, &fb), -EBUSY);
	ck_assert_int_eq(vcfs_fs_open(b, ino, O_RDONLY, 0, &fb), -EBUSY);
	/* a second open on A shares its lock */
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDONLY, 0, &fa2), 0);
	ck_assert_int_eq(vcfs_file_write(fa, 0, "written on A", 12), 12);
	ck_assert_int_eq(vcfs_file_release(fa2), 0);
	/* B may still look at it (close-to-open: the size comes at close) */
	ck_assert_int_eq(vcfs_fs_getattr(b, ino, &a), 0);
	ck_assert_int_eq(vcfs_file_release(fa), 0);
	ck_assert_int_eq(vcfs_fs_getattr(b, ino, &a), 0);
	ck_assert_uint_eq(a.size, 12);
	/* now B gets it, and A is refused */
	ck_assert_int_eq(vcfs_fs_open(b, ino, O_RDWR, 0, &fb), 0);
	ck_assert_int_eq(vcfs_file_read(fb, 0, buf, sizeof(buf)), 12);
	ck_assert_mem_eq(buf, "written on A", 12);
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDONLY, 0, &fa), -EBUSY);
	ck_assert_int_eq(vcfs_file_release(fb), 0);
	/* read-only opens share across hosts; a write open then fails */
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDONLY, 0, &fa), 0);
	ck_assert_int_eq(vcfs_fs_open(b, ino, O_RDONLY, 0, &fb), 0);
	ck_assert_int_eq(vcfs_fs_open(b, ino, O_WRONLY, 0, &fa2), -EBUSY);
	ck_assert_int_eq(vcfs_file_release(fb), 0);
	ck_assert_int_eq(vcfs_file_release(fa), 0);
	/* multi-writer opens share */
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDWR, VCFS_OPEN_MULTIWRITER, &fa), 0);
	ck_assert_int_eq(vcfs_fs_open(b, ino, O_RDWR, VCFS_OPEN_MULTIWRITER, &fb), 0);
	ck_assert_int_eq(vcfs_file_write(fb, 0, "W", 1), 1);
	ck_assert_int_eq(vcfs_file_read(fa, 0, buf, 2), 2);
	ck_assert_mem_eq(buf, "Wr", 2);
	ck_assert_int_eq(vcfs_file_release(fb), 0);
	ck_assert_int_eq(vcfs_file_release(fa), 0);
	/* a rename on B is seen by A; removal on A is seen by B */
	ck_assert_int_eq(vcfs_fs_rename(b, root(), "shared", root(), "moved", 0), 0);
	ck_assert_uint_eq(ino_of(fs, root(), "moved"), ino);
	ck_assert_int_eq(vcfs_fs_unlink(fs, root(), "moved"), 0);
	ck_assert_uint_eq(ino_of(b, root(), "moved"), 0);
	ck_assert_int_eq(vcfs_fs_unmount(b), 0);
	unmount_and_fsck();
}
END_TEST

/*
 * A name looked up on host A, unlinked on B, its inode number reused by C
 * for another file: A's lookup of the name must then say ENOENT, and A's
 * open of the inode it had found (by number and generation, as the sim and
 * a kernel's cached entry do) must fail -ESTALE, O_TRUNC or not, never give
 * C's file (tests/sim.sh seed 439363: the open waited for the lock while the
 * other hosts did exactly this).
 */
START_TEST(reused_inode_not_reopened)
{
	struct vcfs_fs *b = mount_as("hostB"), *c = mount_as("hostC");
	struct vcfs_attr n, m, x;
	struct vcfs_file *f;
	uint8_t buf[16];

	/* C creates N: its cursor's cluster, whose lowest free inode it reuses */
	ck_assert_int_eq(vcfs_fs_mknod(c, root(), "N", S_IFREG | 0644, 0, 0, 0, &n), 0);
	ck_assert_int_eq(vcfs_fs_lookup(fs, root(), "N", &x), 0);	/* A's lookup */
	ck_assert_uint_eq(x.ino, n.ino);
	ck_assert_uint_eq(x.generation, n.generation);
	ck_assert_int_eq(vcfs_fs_unlink(b, root(), "N"), 0);
	ck_assert_int_eq(vcfs_fs_sync(b), 0);
	ck_assert_int_eq(vcfs_fs_create(c, root(), "M", 0644, 0, 0, O_RDWR | O_EXCL, &m, &f), 0);
	ck_assert_int_eq(vcfs_file_write(f, 0, "M's data", 8), 8);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	ck_assert_uint_eq(m.ino, n.ino);			/* the number was reused */
	ck_assert_uint_ne(m.generation, n.generation);
	/* A: the name is gone, the inode it found is not M */
	ck_assert_int_eq(vcfs_fs_lookup(fs, root(), "N", &x), -ENOENT);
	ck_assert_int_eq(vcfs_fs_open_gen(fs, n.ino, n.generation, O_RDONLY, 0, &f), -ESTALE);
	ck_assert_int_eq(vcfs_fs_open_gen(fs, n.ino, n.generation, O_RDWR | O_TRUNC, 0, &f),
			 -ESTALE);
	/* M is intact, and opens by its own generation */
	ck_assert_int_eq(vcfs_fs_lookup(fs, root(), "M", &x), 0);
	ck_assert_uint_eq(x.ino, m.ino);
	ck_assert_uint_eq(x.size, 8);
	ck_assert_int_eq(vcfs_fs_open_gen(fs, x.ino, x.generation, O_RDONLY, 0, &f), 0);
	ck_assert_int_eq(vcfs_file_read(f, 0, buf, sizeof(buf)), 8);
	ck_assert_mem_eq(buf, "M's data", 8);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	ck_assert_int_eq(vcfs_fs_unmount(c), 0);
	ck_assert_int_eq(vcfs_fs_unmount(b), 0);
	unmount_and_fsck();
}
END_TEST

/* Both hosts create in one directory at once (from two threads). */
struct th { struct vcfs_fs *f; uint64_t dir; int id; int errs; };

static void *creator(void *arg)
{
	struct th *t = arg;
	struct vcfs_attr a;
	char name[32];

	for (int i = 0; i < 150; i++) {
		snprintf(name, sizeof(name), "h%d-%d", t->id, i);
		if (vcfs_fs_mknod(t->f, t->dir, name, S_IFREG | 0644, 0, 0, 0, &a))
			t->errs++;
	}
	return NULL;
}

START_TEST(two_hosts_concurrent)
{
	struct vcfs_fs *b = mount_as("hostB");
	struct th ta = { fs, 0, 0, 0 }, tb = { b, 0, 1, 0 };
	struct seen s = { .v = NULL };
	pthread_t x, y;
	struct vcfs_attr d;

	ck_assert_int_eq(vcfs_fs_mkdir(fs, root(), "c", 0755, 0, 0, &d), 0);
	ta.dir = tb.dir = d.ino;
	pthread_create(&x, NULL, creator, &ta);
	pthread_create(&y, NULL, creator, &tb);
	pthread_join(x, NULL);
	pthread_join(y, NULL);
	ck_assert_int_eq(ta.errs, 0);
	ck_assert_int_eq(tb.errs, 0);
	for (int h = 0; h < 2; h++)
		for (int i = 0; i < 150; i++) {
			char name[32];
			snprintf(name, sizeof(name), "h%d-%d", h, i);
			ck_assert_uint_ne(ino_of(h ? fs : b, d.ino, name), 0);
		}
	(void)s;
	ck_assert_int_eq(vcfs_fs_getattr(b, d.ino, &d), 0);
	ck_assert_int_eq(vcfs_fs_unmount(b), 0);
	unmount_and_fsck();
}
END_TEST

START_TEST(read_only_mount)
{
	struct vcfs_mount_opts o = { .read_only = 1 };
	struct vcfs_fs *r;
	struct vcfs_file *f;
	struct vcfs_attr a;
	uint8_t buf[16];
	uint64_t ino = mkfile(fs, root(), "ro");

	f = open_rw(ino);
	ck_assert_int_eq(vcfs_file_write(f, 0, "abc", 3), 3);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	ck_assert_int_eq(vcfs_fs_mount(uri, &o, &r), 0);
	ck_assert_uint_eq(ino_of(r, root(), "ro"), ino);
	ck_assert_int_eq(vcfs_fs_mknod(r, root(), "no", S_IFREG | 0644, 0, 0, 0, &a), -EROFS);
	ck_assert_int_eq(vcfs_fs_open(r, ino, O_RDWR, 0, &f), -EROFS);
	ck_assert_int_eq(vcfs_fs_open(r, ino, O_RDONLY, 0, &f), 0);
	ck_assert_int_eq(vcfs_file_read(f, 0, buf, sizeof(buf)), 3);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	ck_assert_int_eq(vcfs_fs_unmount(r), 0);
	unmount_and_fsck();
}
END_TEST

/*
 * A read-only mount reads past a dead host (fs/ronly.c).  B makes a directory
 * with a file and a subdirectory in it, commits its journal group (sync) but
 * never checkpoints (its lock cache keeps the records: idle and hold times
 * raised so the cache's clock cannot give them back first), and dies.  With
 * no read-write host to recover B, the read-only mount R still finds all of
 * it: it judges B dead from B's heartbeat after D and reads through B's
 * journal.  Then A mounts read-write and recovers B; R reads the same.
 */
START_TEST(read_only_past_dead_host)
{
	struct vcfs_mount_opts o = { .read_only = 1 };
	struct vcfs_journal_state js;
	struct vcfs_fs *b, *r;
	struct vcfs_attr d, f, sub, a;
	uint64_t t0;

	ck_assert_int_eq(vcfs_fs_unmount(fs), 0);	/* nobody to recover B */
	fs = NULL;
	b = mount_as("hostB");
	b->lc_idle_ns = b->lc_hold_ns = 600 * VCFS_NS_PER_S;
	ck_assert_int_eq(vcfs_fs_mkdir(b, vcfs_fs_root(b), "dir", 0755, 0, 0, &d), 0);
	ck_assert_int_eq(vcfs_fs_mknod(b, d.ino, "f1", S_IFREG | 0644, 0, 0, 0, &f), 0);
	ck_assert_int_eq(vcfs_fs_mkdir(b, d.ino, "sub", 0755, 0, 0, &sub), 0);
	ck_assert_int_eq(vcfs_fs_sync(b), 0);
	ck_assert_int_eq(vcfs_journal_inspect(b->d, &b->sb, b->slot, &js), 0);
	ck_assert_msg(js.pending_txns > 0, "B's changes should wait in its journal");
	vcfs_fs_crash(b);

	ck_assert_int_eq(vcfs_fs_mount(uri, &o, &r), 0);
	t0 = vcfs_now_ns();
	ck_assert_uint_eq(ino_of(r, vcfs_fs_root(r), "dir"), d.ino);
	ck_assert_uint_eq(ino_of(r, d.ino, "f1"), f.ino);
	ck_assert_uint_eq(ino_of(r, d.ino, "sub"), sub.ino);
	ck_assert_int_eq(vcfs_fs_getattr(r, sub.ino, &a), 0);
	ck_assert(S_ISDIR(a.mode));
	/* it had to watch B's heartbeat for D = 7 T first */
	ck_assert_uint_ge(vcfs_now_ns() - t0, 7ull * io_tmo * VCFS_NS_PER_MS);

	fs = mount_as("hostA");		/* recovers B within about D */
	for (int i = 0; i < 100 && ino_of(fs, d.ino, "f1") != f.ino; i++)
		usleep(100 * 1000);
	ck_assert_uint_eq(ino_of(fs, d.ino, "f1"), f.ino);
	ck_assert_int_eq(vcfs_fs_unlink(fs, d.ino, "f1"), 0);
	ck_assert_uint_eq(ino_of(r, d.ino, "sub"), sub.ino);
	for (int i = 0; i < 30 && ino_of(r, d.ino, "f1"); i++)
		usleep(100 * 1000);	/* A's unlink: home is newer than B's journal */
	ck_assert_uint_eq(ino_of(r, d.ino, "f1"), 0);
	ck_assert_int_eq(vcfs_fs_unmount(r), 0);
	unmount_and_fsck();
}
END_TEST

START_TEST(remount_persistence)
{
	struct vcfs_file *f;
	struct vcfs_attr a;
	uint8_t buf[32];
	uint64_t d = mkd(root(), "keep"), ino;

	ck_assert_int_eq(vcfs_fs_create(fs, d, "file", 0600, 3, 4, O_WRONLY, &a, &f), 0);
	ino = a.ino;
	ck_assert_int_eq(vcfs_file_write(f, 10, "persist", 7), 7);
	ck_assert_int_eq(vcfs_file_fsync(f, 0), 0);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	ck_assert_int_eq(vcfs_fs_symlink(fs, d, "ln", "file", 0, 0, &a), 0);
	ck_assert_int_eq(vcfs_fs_unmount(fs), 0);
	fs = mount_as("hostA");
	ck_assert_uint_eq(ino_of(fs, d, "file"), ino);
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, 17);
	ck_assert_uint_eq(a.mode, S_IFREG | 0600);
	ck_assert_uint_eq(a.uid, 3);
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDONLY, 0, &f), 0);
	ck_assert_int_eq(vcfs_file_read(f, 0, buf, sizeof(buf)), 17);
	ck_assert_mem_eq(buf + 10, "persist", 7);
	ck_assert_uint_eq(buf[0], 0);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	ck_assert_int_eq(vcfs_fs_readlink(fs, ino_of(fs, d, "ln"), (char *)buf, sizeof(buf)), 0);
	ck_assert_str_eq((char *)buf, "file");
	unmount_and_fsck();
}
END_TEST

/* A host dies holding a file open and an orphan: the survivor recovers its
 * slot after D, the file's lock goes stale and the orphan is freed. */
START_TEST(dead_host_recovered)
{
	struct vcfs_fs *b = mount_as("hostB");
	struct vcfs_statfs s0, s1;
	struct vcfs_file *fb, *fo, *fa;
	struct vcfs_attr a, o;
	uint8_t buf[8];

	mkfile(fs, root(), "first");
	sleep(1);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s0), 0);
	ck_assert_int_eq(vcfs_fs_create(b, root(), "held", 0644, 0, 0, O_RDWR, &a, &fb), 0);
	ck_assert_int_eq(vcfs_file_write(fb, 0, "by B", 4), 4);
	ck_assert_int_eq(vcfs_file_fsync(fb, 0), 0);
	ck_assert_int_eq(vcfs_fs_create(b, root(), "orph", 0644, 0, 0, O_RDWR, &o, &fo), 0);
	{
		uint8_t *big = calloc(1, 2 * MIB);
		ck_assert_int_eq(vcfs_file_write(fo, 0, big, 2 * MIB), 2 * MIB);
		free(big);
	}
	ck_assert_int_eq(vcfs_fs_unlink(b, root(), "orph"), 0);
	ck_assert_int_eq(vcfs_fs_open(fs, a.ino, O_RDONLY, 0, &fa), -EBUSY);
	/* B crashes: no more heartbeats, nothing released (its lock cache
	 * thread stopped first: it would give cached records back) */
	lcache_stop(b, 0);
	vcfs_hb_abandon(b->hb);
	/* A gets the file once B is declared dead (D = 7 T = 1.4 s) */
	int rc = -EBUSY;
	for (int i = 0; i < 100 && rc == -EBUSY; i++) {
		rc = vcfs_fs_open(fs, a.ino, O_RDWR, 0, &fa);
		if (rc == -EBUSY)
			usleep(100 * 1000);
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(vcfs_file_read(fa, 0, buf, sizeof(buf)), 4);
	ck_assert_mem_eq(buf, "by B", 4);
	ck_assert_int_eq(vcfs_file_release(fa), 0);
	/* B's orphan was freed by the recovery */
	for (int i = 0; i < 50; i++) {
		if (vcfs_fs_getattr(fs, o.ino, &o) == -ENOENT)
			break;
		usleep(100 * 1000);
	}
	ck_assert_int_eq(vcfs_fs_getattr(fs, o.ino, &o), -ENOENT);
	ck_assert_int_eq(vcfs_fs_unlink(fs, root(), "held"), 0);
	sleep(1);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s1), 0);
	ck_assert_uint_eq(s1.bfree, s0.bfree);
	ck_assert_uint_eq(s1.ffree, s0.ffree);
	unmount_and_fsck();
}
END_TEST

/*
 * A wait for another host's record does not hold up this host's other
 * metadata ops (fs_int.h, struct rec_wait).  B takes directory d's record
 * (as an op of B would) and opens "held" for writing, then dies: A's create
 * in d waits until B is declared dead and recovered (7 T), A's open of "held"
 * waits one T and is refused; meanwhile A creates, fills and removes files
 * elsewhere.  Before, the waiting op held the host's op mutex and the
 * others waited behind it.
 */
struct waiter { uint64_t dir, ino; int rc; int done; };

static void *create_waiter(void *arg)
{
	struct waiter *w = arg;
	struct vcfs_attr a;
	struct vcfs_file *f;

	w->rc = vcfs_fs_create(fs, w->dir, "late", 0644, 0, 0, O_RDWR, &a, &f);
	if (!w->rc)
		w->rc = vcfs_file_release(f);
	__atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void *open_waiter(void *arg)
{
	struct waiter *w = arg;
	struct vcfs_file *f;

	w->rc = vcfs_fs_open(fs, w->ino, O_RDWR, 0, &f);
	if (!w->rc)
		vcfs_file_release(f);
	__atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/*
 * Asynchronous data I/O (vcfs_file_submit) on a fault-wrapped disk whose
 * "aio" rule holds every asynchronous request 300 ms.  A truncate and a
 * punch started while a write is in flight wait for it (the inode's pin):
 * the write lands before its block is freed, never after, when the block may
 * already be another file's.  Without the pin both return first (the write
 * sleeps in the fault layer) and the checks below fail.  What does not
 * qualify is refused for the synchronous path; an injected error reaches
 * done() and leaves the old data; data round-trips.
 */
struct fa {
	struct vcfs_file_aio a;		/* first: done() gets it */
	pthread_mutex_t mu;
	int ndone;
	ssize_t res;
};

static void fa_done(struct vcfs_file_aio *a, ssize_t res)
{
	struct fa *x = (struct fa *)a;

	pthread_mutex_lock(&x->mu);
	x->ndone++;
	x->res = res;
	pthread_mutex_unlock(&x->mu);
}

static int fa_submit(struct vcfs_file *f, struct fa *x, int write, uint64_t off, void *buf,
		     size_t len)
{
	pthread_mutex_init(&x->mu, NULL);
	x->ndone = 0;
	x->res = 1;
	x->a = (struct vcfs_file_aio){ .write = write, .off = off, .buf = buf, .len = len,
				       .done = fa_done };
	return vcfs_file_submit(f, &x->a);
}

static int fa_ndone(struct fa *x)
{
	int n;

	pthread_mutex_lock(&x->mu);
	n = x->ndone;
	pthread_mutex_unlock(&x->mu);
	return n;
}

static void fa_wait(struct fa *x)
{
	for (int i = 0; i < 5000 && !fa_ndone(x); i++)
		vcfs_sleep_ns(VCFS_NS_PER_MS);
	ck_assert_int_eq(fa_ndone(x), 1);
}

START_TEST(async_io_pins)
{
	struct vcfs_mount_opts o = { .host_name = "hostA" };
	struct vcfs_fault_rule slow = { .op = VCFS_OP_AIO, .delay_us = 300000 };
	struct vcfs_fault_rule fail = { .op = VCFS_OP_AIO, .nth = 1, .err = -EIO };
	struct vcfs_disk *d, *fd;
	struct vcfs_attr in = { 0 }, a;
	struct vcfs_file *f;
	uint8_t *b = vcfs_disk_buf_alloc(8192), *m = malloc(4096);
	struct fa x;
	uint64_t ino;

	ck_assert_int_eq(vcfs_fs_unmount(fs), 0);
	fs = NULL;
	ck_assert_int_eq(vcfs_disk_open(uri, NULL, &d), 0);
	ck_assert_int_eq(vcfs_fault_wrap(d, &fd), 0);
	ck_assert_int_eq(vcfs_fs_mount_disk(fd, &o, &fs), 0);
	ino = mkfile(fs, root(), "v");
	f = open_rw(ino);
	write_pat(f, 0, 4 * MIB, 7);

	/* a read round-trips */
	ck_assert_int_eq(fa_submit(f, &x, 0, 4096, b, 4096), 0);
	fa_wait(&x);
	ck_assert_int_eq(x.res, 4096);
	fill(m, 4096, 4096, 7);
	ck_assert_mem_eq(b, m, 4096);
	/* not the plain case: the caller goes the synchronous way */
	ck_assert_int_eq(fa_submit(f, &x, 0, 100, b, 4096), -EOPNOTSUPP);	/* unaligned */
	ck_assert_int_eq(fa_submit(f, &x, 1, 4 * MIB, b, 4096), -EOPNOTSUPP);	/* past EOF */
	ck_assert_int_eq(fa_submit(f, &x, 0, MIB - 4096, b, 8192), -EOPNOTSUPP); /* 2 blocks */
	in.size = 6 * MIB;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_SIZE, &a), 0);
	ck_assert_int_eq(fa_submit(f, &x, 0, 5 * MIB, b, 4096), -EOPNOTSUPP);	/* a hole */

	/* a truncate waits for a write in flight in a block it frees */
	ck_assert_int_eq(vcfs_fault_set(fd, &slow), 0);
	memset(b, 0x5a, 4096);
	ck_assert_int_eq(fa_submit(f, &x, 1, 3 * MIB + 8192, b, 4096), 0);
	in.size = MIB;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_SIZE, &a), 0);
	ck_assert_msg(fa_ndone(&x) == 1, "truncate returned with a write in flight in a block it freed");
	ck_assert_int_eq(x.res, 4096);

	/* and so does a punch */
	write_pat(f, MIB, 3 * MIB, 8);
	ck_assert_int_eq(fa_submit(f, &x, 1, 2 * MIB + 4096, b, 4096), 0);
	ck_assert_int_eq(vcfs_file_fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					     2 * MIB, MIB), 0);
	ck_assert_msg(fa_ndone(&x) == 1, "punch returned with a write in flight in a block it freed");
	ck_assert_int_eq(x.res, 4096);
	ck_assert_int_eq(vcfs_file_read(f, 2 * MIB + 4096, m, 4096), 4096);
	for (int i = 0; i < 4096; i++)
		ck_assert_int_eq(m[i], 0);

	/* an error reaches done(); the old data stays */
	vcfs_fault_clear(fd);
	ck_assert_int_eq(vcfs_fault_set(fd, &fail), 0);
	memset(b, 0x77, 4096);
	ck_assert_int_eq(fa_submit(f, &x, 1, 4096, b, 4096), 0);
	fa_wait(&x);
	ck_assert_int_eq(x.res, -EIO);
	ck_assert_int_eq(vcfs_file_read(f, 4096, m, 4096), 4096);
	fill(b, 4096, 4096, 7);
	ck_assert_mem_eq(m, b, 4096);
	vcfs_fault_clear(fd);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	free(b);
	free(m);
	unmount_and_fsck();
}
END_TEST

START_TEST(waits_leave_op_mutex)
{
	struct vcfs_fs *b = mount_as("hostB");
	struct waiter wc = { 0 }, wo = { 0 };
	struct vcfs_file *fb, *fa;
	struct vcfs_attr a;
	pthread_t tc, to;
	uint8_t blk[4096];

	wc.dir = mkd(root(), "d");
	wo.ino = mkfile(fs, root(), "held");
	pthread_mutex_lock(&fs->op_mu);
	ck_assert_int_eq(lcache_flush(fs), 0);	/* A's cache gives d back */
	pthread_mutex_unlock(&fs->op_mu);
	ck_assert_int_eq(vcfs_lock_acquire(b->hb, vcfs_inode_lock_blk(&b->sb, wc.dir),
					   VCFS_LOCK_EXCL, 0, 0, NULL, NULL), 0);
	ck_assert_int_eq(vcfs_fs_open(b, wo.ino, O_RDWR, 0, &fb), 0);
	lcache_stop(b, 0);
	vcfs_hb_abandon(b->hb);

	ck_assert_int_eq(pthread_create(&tc, NULL, create_waiter, &wc), 0);
	ck_assert_int_eq(pthread_create(&to, NULL, open_waiter, &wo), 0);
	usleep(20 * 1000);	/* both are waiting for B's records now */
	ck_assert_int_eq(vcfs_fs_create(fs, root(), "meanwhile", 0644, 0, 0, O_RDWR, &a, &fa), 0);
	memset(blk, 0x5a, sizeof(blk));
	ck_assert_int_eq(vcfs_file_write(fa, 2 * MIB, blk, sizeof(blk)), sizeof(blk));
	ck_assert_int_eq(vcfs_file_release(fa), 0);
	ck_assert_int_eq(vcfs_fs_unlink(fs, root(), "meanwhile"), 0);
	ck_assert_msg(!__atomic_load_n(&wo.done, __ATOMIC_SEQ_CST),
		      "A's ops waited for A's open of a file held by B");
	ck_assert_msg(!__atomic_load_n(&wc.done, __ATOMIC_SEQ_CST),
		      "A's ops waited for A's create in a directory held by B");
	pthread_join(to, NULL);
	ck_assert_int_eq(wo.rc, -EBUSY);	/* one T, B not yet dead */
	pthread_join(tc, NULL);
	ck_assert_int_eq(wc.rc, 0);		/* once B was recovered */
	ck_assert_uint_ne(ino_of(fs, wc.dir, "late"), 0);
	unmount_and_fsck();
}
END_TEST

/* An inode open read-only here can still be changed by this host. */
START_TEST(change_while_read_open)
{
	struct vcfs_attr in = { .mode = 0600 }, a;
	struct vcfs_file *f;
	uint8_t buf[8];
	uint64_t ino = mkfile(fs, root(), "r");

	f = open_rw(ino);
	ck_assert_int_eq(vcfs_file_write(f, 0, "data", 4), 4);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDONLY, 0, &f), 0);
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_MODE, &a), 0);
	ck_assert_uint_eq(a.mode, S_IFREG | 0600);
	ck_assert_int_eq(vcfs_fs_setxattr(fs, ino, "user.k", "v", 1, 0), 0);
	ck_assert_int_eq(vcfs_fs_rename(fs, root(), "r", root(), "r2", 0), 0);
	ck_assert_int_eq(vcfs_file_read(f, 0, buf, sizeof(buf)), 4);
	/* a write open next to the read open upgrades the shared lock */
	{
		struct vcfs_file *w;
		ck_assert_int_eq(vcfs_fs_open(fs, ino, O_WRONLY, 0, &w), 0);
		ck_assert_int_eq(vcfs_file_write(w, 4, "more", 4), 4);
		ck_assert_int_eq(vcfs_file_release(w), 0);
	}
	ck_assert_int_eq(vcfs_file_read(f, 0, buf, sizeof(buf)), 8);
	ck_assert_mem_eq(buf, "datamore", 8);
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, 8);
	ck_assert_int_eq(vcfs_fs_unlink(fs, root(), "r2"), 0);
	ck_assert_int_eq(vcfs_file_read(f, 0, buf, sizeof(buf)), 8);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), -ENOENT);
	unmount_and_fsck();
}
END_TEST

/* Sparse files reach past 64 TiB with 1 MiB blocks (triple indirect). */
START_TEST(huge_sparse)
{
	const uint64_t far = 64ull << 40;
	struct vcfs_file *f;
	struct vcfs_attr a;
	uint8_t buf[16];
	uint64_t ino = mkfile(fs, root(), "huge"), o;

	f = open_rw(ino);
	ck_assert_int_eq(vcfs_file_write(f, far - 5, "across 64 TiB", 13), 13);
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, far + 8);
	ck_assert_int_eq(vcfs_file_read(f, far - 5, buf, sizeof(buf)), 13);
	ck_assert_mem_eq(buf, "across 64 TiB", 13);
	ck_assert_int_eq(vcfs_file_read(f, 1ull << 40, buf, sizeof(buf)), 16);
	ck_assert_int_eq(vcfs_file_lseek(f, 0, SEEK_DATA, &o), 0);
	ck_assert_uint_eq(o, far - MIB);
	ck_assert_int_eq(vcfs_file_lseek(f, far - 5, SEEK_HOLE, &o), 0);
	ck_assert_uint_eq(o, far + MIB < a.size ? far + MIB : a.size);
	ck_assert_int_eq(vcfs_file_write(f, 200ull << 40, "x", 1), -EFBIG);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	ck_assert_int_eq(vcfs_fs_unlink(fs, root(), "huge"), 0);
	unmount_and_fsck();
}
END_TEST

/* Block 0 damaged: the backup header in the last block mounts. */
START_TEST(backup_header)
{
	struct vcfs_fs *f2 = NULL;
	uint8_t b;
	int fd;

	mkfile(fs, root(), "x");
	ck_assert_int_eq(vcfs_fs_unmount(fs), 0);
	fs = NULL;
	fd = open(img, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &b, 1, 0x100), 1);
	b ^= 0xff;
	ck_assert_int_eq(pwrite(fd, &b, 1, 0x100), 1);
	close(fd);
	fs = mount_as("hostA");
	ck_assert_uint_ne(ino_of(fs, root(), "x"), 0);
	ck_assert_int_eq(vcfs_fs_unmount(fs), 0);
	fs = NULL;
	/* not a datastore at all */
	fd = open(img, O_RDWR);
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)IMG_BYTES), 0);
	close(fd);
	ck_assert_int_eq(vcfs_fs_mount(uri, NULL, &f2), -VCFS_ENOTVCFS);
}
END_TEST

/* A fenced host refuses everything. */
START_TEST(fenced)
{
	struct vcfs_file *f;
	struct vcfs_attr a;
	uint8_t buf[4];
	uint64_t ino = mkfile(fs, root(), "f");

	f = open_rw(ino);
	vcfs_hb_fence(fs->hb, -EIO);
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), -VCFS_EFENCED);
	ck_assert_int_eq(vcfs_fs_lookup(fs, root(), "f", &a), -VCFS_EFENCED);
	ck_assert_int_eq(vcfs_fs_mknod(fs, root(), "g", S_IFREG | 0644, 0, 0, 0, &a),
			 -VCFS_EFENCED);
	ck_assert_int_eq(vcfs_file_write(f, 0, "x", 1), -VCFS_EFENCED);
	ck_assert_int_eq(vcfs_file_read(f, 0, buf, 1), -VCFS_EFENCED);
	ck_assert_int_eq(vcfs_file_fsync(f, 0), -VCFS_EFENCED);
	vcfs_file_release(f);
	vcfs_fs_unmount(fs);
	fs = NULL;
}
END_TEST

/* Threads of one host (as the FUSE daemon runs them): files written, read
 * back, truncated and removed while others list and rename. */
struct worker { int id; int errs; char msg[160]; };

static void *stress_worker(void *arg)
{
	struct worker *w = arg;
	uint8_t *b = malloc(300000), *r = malloc(300000);
	unsigned seed = (unsigned)w->id * 7919u + 1;

	for (int round = 0; round < 8 && !w->errs; round++) {
		char name[32];
		struct vcfs_file *f;
		struct vcfs_attr a, in = { 0 };
		uint64_t off = (uint64_t)(rand_r(&seed) % (3 * MIB));
		size_t n = (size_t)(rand_r(&seed) % 300000) + 1;

		snprintf(name, sizeof(name), "w%d-%d", w->id, round);
		if (vcfs_fs_create(fs, root(), name, 0644, 0, 0, O_RDWR, &a, &f)) {
			snprintf(w->msg, sizeof(w->msg), "create %s", name);
			w->errs++;
			break;
		}
		fill(b, off, n, seed);
		if (vcfs_file_write(f, off, b, n) != (ssize_t)n ||
		    vcfs_file_read(f, off, r, n) != (ssize_t)n || memcmp(b, r, n)) {
			snprintf(w->msg, sizeof(w->msg), "data %s off %llu len %zu", name,
				 (unsigned long long)off, n);
			w->errs++;
		}
		in.size = off + n / 2;
		if (vcfs_fs_setattr(fs, a.ino, &in, VCFS_SET_SIZE, &a) || a.size != off + n / 2) {
			snprintf(w->msg, sizeof(w->msg), "truncate %s", name);
			w->errs++;
		}
		vcfs_file_release(f);
		char n2[40];
		snprintf(n2, sizeof(n2), "%s.old", name);
		if (vcfs_fs_rename(fs, root(), name, root(), n2, 0) ||
		    vcfs_fs_unlink(fs, root(), n2)) {
			snprintf(w->msg, sizeof(w->msg), "rename/unlink %s", name);
			w->errs++;
		}
	}
	free(b);
	free(r);
	return NULL;
}

static int count_fill(void *arg, const char *name, uint64_t ino, uint32_t type, uint64_t next)
{
	(void)name; (void)ino; (void)type; (void)next;
	(*(unsigned *)arg)++;
	return 0;
}

static volatile int stress_done;

static void *stress_lister(void *arg)
{
	int *errs = arg;

	while (!stress_done) {
		unsigned n = 0;
		if (vcfs_fs_readdir(fs, root(), 0, count_fill, &n) || n < 2)
			(*errs)++;
	}
	return NULL;
}

START_TEST(threads)
{
	enum { NW = 3 };
	struct worker w[NW];
	pthread_t t[NW], l;
	int lerrs = 0;
	struct vcfs_statfs s0, s1;

	mkfile(fs, root(), "first");
	sleep(1);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s0), 0);
	stress_done = 0;
	pthread_create(&l, NULL, stress_lister, &lerrs);
	for (int i = 0; i < NW; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].id = i;
		pthread_create(&t[i], NULL, stress_worker, &w[i]);
	}
	for (int i = 0; i < NW; i++) {
		pthread_join(t[i], NULL);
		if (w[i].errs)
			ck_abort_msg("worker %d: %s", i, w[i].msg);
	}
	stress_done = 1;
	pthread_join(l, NULL);
	ck_assert_int_eq(lerrs, 0);
	sleep(1);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s1), 0);
	ck_assert_uint_eq(s1.bfree, s0.bfree);
	ck_assert_uint_eq(s1.ffree, s0.ffree);
	unmount_and_fsck();
}
END_TEST

/* Freeing more than one transaction holds: truncate and unlink take several
 * (the journal limit is lowered to make 3 clusters' bitmaps too many). */
START_TEST(multi_txn_free)
{
	struct vcfs_statfs s0, s1;
	struct vcfs_attr in = { 0 }, a;
	struct vcfs_file *f;
	uint32_t jmax = fs->jmax;
	uint64_t ino;

	mkfile(fs, root(), "first");
	sleep(1);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s0), 0);
	ino = mkfile(fs, root(), "big");
	f = open_rw(ino);
	ck_assert_int_eq(vcfs_file_fallocate(f, 0, 0, 140ull * MIB), 0);
	write_pat(f, 139ull * MIB, 100, 3);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	fs->jmax = 14;
	in.size = 10;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_SIZE, &a), 0);
	ck_assert_uint_eq(a.blocks, MIB / 512);
	fs->jmax = jmax;
	f = open_rw(ino);
	ck_assert_int_eq(vcfs_file_fallocate(f, 0, 0, 140ull * MIB), 0);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	fs->jmax = 14;
	ck_assert_int_eq(vcfs_fs_unlink(fs, root(), "big"), 0);
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), -ENOENT);
	fs->jmax = jmax;
	sleep(1);
	ck_assert_int_eq(vcfs_fs_statfs(fs, &s1), 0);
	ck_assert_uint_eq(s1.bfree, s0.bfree);
	ck_assert_uint_eq(s1.ffree, s0.ffree);
	unmount_and_fsck();
}
END_TEST

/* ---- multi-writer files (user.vcfs.multiwriter) ---- */

static void set_mw(struct vcfs_fs *f, uint64_t ino, const char *v, int want)
{
	ck_assert_int_eq(vcfs_fs_setxattr(f, ino, "user.vcfs.multiwriter", v, strlen(v), 0), want);
}

static void lock_string(struct vcfs_fs *f, uint64_t ino, char *buf, size_t len)
{
	ssize_t n = vcfs_fs_getxattr(f, ino, "user.vcfs.lock", buf, len - 1);

	ck_assert_int_gt(n, 0);
	buf[n] = 0;
}

/*
 * Two hosts hold one thin MW file open for writing: holes filled, unwritten
 * blocks written and the size grown by either are seen by the other at once;
 * what would free blocks the other maps is refused while both hold it.
 */
START_TEST(mw_two_hosts)
{
	struct vcfs_fs *b = mount_as("hostB");
	struct vcfs_attr in = { 0 }, a;
	struct vcfs_file *fa, *fb, *fr;
	uint8_t w[4096], r[4096], z[4096] = { 0 };
	char s[512], list[256];
	uint64_t ino = mkfile(fs, root(), "disk"), off;
	ssize_t n;

	in.size = 64ull * MIB;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_SIZE, &a), 0);
	/* not set: no attribute; bad values refused; set shows and lists */
	ck_assert_int_eq(vcfs_fs_getxattr(fs, ino, "user.vcfs.multiwriter", s, sizeof(s)),
			 -ENODATA);
	set_mw(fs, ino, "yes", -EINVAL);
	set_mw(fs, ino, "1", 0);
	/* (B looks the name up first, as every front end does) */
	ck_assert_uint_eq(ino_of(b, root(), "disk"), ino);
	ck_assert_int_eq(vcfs_fs_getxattr(b, ino, "user.vcfs.multiwriter", s, sizeof(s)), 1);
	ck_assert_int_eq(s[0], '1');
	n = vcfs_fs_listxattr(b, ino, list, sizeof(list));
	ck_assert_int_eq(n, (ssize_t)sizeof("user.vcfs.multiwriter"));
	ck_assert_str_eq(list, "user.vcfs.multiwriter");
	ck_assert_int_eq(vcfs_fs_setxattr(fs, ino, "user.vcfs.lock", "x", 1, 0), -EPERM);
	lock_string(fs, ino, s, sizeof(s));
	ck_assert_str_eq(s, "FREE");

	/* both open it O_RDWR (no flag needed: the inode says MW) */
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDWR, 0, &fa), 0);
	ck_assert_int_eq(vcfs_fs_open(b, ino, O_RDWR, 0, &fb), 0);
	ck_assert(vcfs_file_shared(fa) && vcfs_file_shared(fb));
	/* a read-only open shares too */
	ck_assert_int_eq(vcfs_fs_open(b, ino, O_RDONLY, 0, &fr), 0);
	lock_string(b, ino, s, sizeof(s));
	ck_assert_msg(!strncmp(s, "MW hostA (slot ", 15) && strstr(s, ", hostB (slot "), "%s", s);

	/* holes filled by A at rising offsets, read back by B (whose map
	 * said hole each time), and the other way round */
	for (int i = 0; i < 20; i++) {
		off = (uint64_t)i * 3 * MIB + (uint64_t)(i % 5) * 4096;
		fill(w, off, sizeof(w), 1);
		ck_assert_int_eq(vcfs_file_write(i % 2 ? fb : fa, off, w, sizeof(w)), 4096);
		ck_assert_int_eq(vcfs_file_read(i % 2 ? fa : fr, off, r, sizeof(r)), 4096);
		ck_assert_msg(!memcmp(r, w, sizeof(w)), "block %d at %llu not seen", i,
			      (unsigned long long)off);
		/* the rest of that large block reads as zeros on both */
		ck_assert_int_eq(vcfs_file_read(fb, off + 8192, r, sizeof(r)), 4096);
		ck_assert(!memcmp(r, z, sizeof(z)));
	}
	/* unwritten -> written */
	ck_assert_int_eq(vcfs_file_fallocate(fa, FALLOC_FL_KEEP_SIZE, 62 * MIB, MIB), 0);
	ck_assert_int_eq(vcfs_file_read(fb, 62 * MIB, r, sizeof(r)), 4096);
	ck_assert(!memcmp(r, z, sizeof(z)));
	fill(w, 62 * MIB, sizeof(w), 2);
	ck_assert_int_eq(vcfs_file_write(fa, 62 * MIB, w, sizeof(w)), 4096);
	ck_assert_int_eq(vcfs_file_read(fb, 62 * MIB, r, sizeof(r)), 4096);
	ck_assert(!memcmp(r, w, sizeof(w)));
	/* growth by B: A reads past its cached size, and sees the size */
	fill(w, 70 * MIB, sizeof(w), 3);
	ck_assert_int_eq(vcfs_file_write(fb, 70 * MIB, w, sizeof(w)), 4096);
	ck_assert_int_eq(vcfs_file_read(fa, 70 * MIB, r, sizeof(r)), 4096);
	ck_assert(!memcmp(r, w, sizeof(w)));
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, 70 * MIB + 4096);
	/* SEEK_DATA on A finds B's block */
	ck_assert_int_eq(vcfs_file_lseek(fa, 69 * MIB, SEEK_DATA, &off), 0);
	ck_assert_uint_eq(off, 70 * MIB);
	/* in-place overwrite inside the size by both */
	ck_assert_int_eq(vcfs_file_write(fb, 62 * MIB, "B", 1), 1);
	ck_assert_int_eq(vcfs_file_read(fa, 62 * MIB, r, 1), 1);
	ck_assert_int_eq(r[0], 'B');

	/* what would free blocks the other maps is refused */
	in.size = MIB;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_SIZE, &a), -EBUSY);
	ck_assert_int_eq(vcfs_file_fallocate(fa, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					     0, 4 * MIB), -EBUSY);
	ck_assert_int_eq(vcfs_file_fallocate(fb, FALLOC_FL_ZERO_RANGE, 0, 4 * MIB), -EBUSY);
	ck_assert_int_eq(vcfs_fs_unlink(fs, root(), "disk"), -EBUSY);
	set_mw(fs, ino, "0", -EBUSY);
	ck_assert_int_eq(vcfs_fs_removexattr(b, ino, "user.vcfs.multiwriter"), -EBUSY);
	/* ... and growing is not */
	in.size = 80 * MIB;
	ck_assert_int_eq(vcfs_fs_setattr(b, ino, &in, VCFS_SET_SIZE, &a), 0);
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, 80 * MIB);
	ck_assert_int_eq(vcfs_file_read(fa, 79 * MIB, r, sizeof(r)), 4096);

	/* B gone: A alone may shrink, punch and clear the flag */
	ck_assert_int_eq(vcfs_file_release(fr), 0);
	ck_assert_int_eq(vcfs_file_release(fb), 0);
	lock_string(fs, ino, s, sizeof(s));
	ck_assert_msg(!strncmp(s, "MW hostA (slot ", 15) && !strstr(s, "hostB"), "%s", s);
	ck_assert_int_eq(vcfs_file_fallocate(fa, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					     0, 4 * MIB), 0);
	in.size = 64 * MIB;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_SIZE, &a), 0);
	ck_assert_int_eq(vcfs_file_release(fa), 0);
	ck_assert_int_eq(vcfs_fs_removexattr(b, ino, "user.vcfs.multiwriter"), 0);
	ck_assert_int_eq(vcfs_fs_removexattr(b, ino, "user.vcfs.multiwriter"), -ENODATA);
	/* plain again: a write open is exclusive */
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDWR, 0, &fa), 0);
	ck_assert(!vcfs_file_shared(fa));
	lock_string(b, ino, s, sizeof(s));
	ck_assert_msg(!strncmp(s, "EXCL hostA (slot ", 17), "%s", s);
	ck_assert_int_eq(vcfs_fs_open(b, ino, O_RDONLY, 0, &fb), -EBUSY);
	/* the flag cannot change while another host has the file open */
	set_mw(b, ino, "1", -EBUSY);
	ck_assert_int_eq(vcfs_file_release(fa), 0);
	ck_assert_int_eq(vcfs_fs_unmount(b), 0);
	unmount_and_fsck();
}
END_TEST

/*
 * The property a live migration needs, with both hosts busy at once: A fills
 * holes in a thin MW file from one thread; B, from another, reads blocks
 * whose write A had completed before the read began: never zeros.
 */
struct mw_run {
	struct vcfs_file *f;
	uint64_t offs[400];
	int nblocks;
	int done;		/* blocks completed (atomic) */
	int bad, reads;
};

static void *mw_writer(void *arg)
{
	struct mw_run *m = arg;
	uint8_t w[4096];

	for (int i = 0; i < m->nblocks; i++) {
		fill(w, m->offs[i], sizeof(w), 7);
		if (vcfs_file_write(m->f, m->offs[i], w, sizeof(w)) != 4096) {
			__atomic_add_fetch(&m->bad, 1, __ATOMIC_SEQ_CST);
			break;
		}
		__atomic_store_n(&m->done, i + 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

START_TEST(mw_concurrent_fill)
{
	struct vcfs_fs *b = mount_as("hostB");
	struct vcfs_attr in = { 0 }, a;
	struct mw_run m = { .nblocks = 400 };
	struct vcfs_file *fa, *fb;
	uint8_t w[4096], r[4096];
	uint64_t ino = mkfile(fs, root(), "thin");
	pthread_t t;
	unsigned seed = 5;

	in.size = 200ull * MIB;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_SIZE, &a), 0);
	set_mw(fs, ino, "1", 0);
	ck_assert_uint_eq(ino_of(b, root(), "thin"), ino);
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDWR | O_DIRECT, 0, &fa), 0);
	ck_assert_int_eq(vcfs_fs_open(b, ino, O_RDWR | O_DIRECT, 0, &fb), 0);
	/* rising offsets, several blocks per large block, some in new ones */
	for (int i = 0; i < m.nblocks; i++)
		m.offs[i] = (uint64_t)i * 500 * 1024 / 4096 * 4096;
	m.f = fa;
	ck_assert_int_eq(pthread_create(&t, NULL, mw_writer, &m), 0);
	for (;;) {
		int done = __atomic_load_n(&m.done, __ATOMIC_SEQ_CST), k;
		if (done == m.nblocks || __atomic_load_n(&m.bad, __ATOMIC_SEQ_CST))
			break;
		if (!done) {
			usleep(1000);
			continue;
		}
		k = done - 1 - (int)(rand_r(&seed) % (unsigned)(done < 4 ? done : 4));
		fill(w, m.offs[k], sizeof(w), 7);
		ck_assert_int_eq(vcfs_file_read(fb, m.offs[k], r, sizeof(r)), 4096);
		if (memcmp(r, w, sizeof(w)))
			m.bad++;
		m.reads++;
	}
	pthread_join(t, NULL);
	ck_assert_int_eq(m.bad, 0);
	ck_assert_int_gt(m.reads, 0);
	/* hand-over: A stops, B writes new blocks, A (still open) reads them */
	for (int i = 0; i < 20; i++) {
		uint64_t off = 150ull * MIB + (uint64_t)i * 256 * 1024;
		fill(w, off, sizeof(w), 8);
		ck_assert_int_eq(vcfs_file_write(fb, off, w, sizeof(w)), 4096);
		ck_assert_int_eq(vcfs_file_read(fa, off, r, sizeof(r)), 4096);
		ck_assert(!memcmp(r, w, sizeof(w)));
	}
	/* everything A wrote, read by B in full */
	for (int i = 0; i < m.nblocks; i++) {
		fill(w, m.offs[i], sizeof(w), 7);
		ck_assert_int_eq(vcfs_file_read(fb, m.offs[i], r, sizeof(r)), 4096);
		ck_assert_msg(!memcmp(r, w, sizeof(w)), "block %d", i);
	}
	fprintf(stderr, "mw_concurrent_fill: %d reads of fresh blocks during %d hole fills\n",
		m.reads, m.nblocks);
	ck_assert_int_eq(vcfs_file_release(fb), 0);
	ck_assert_int_eq(vcfs_file_release(fa), 0);
	ck_assert_int_eq(vcfs_fs_unmount(b), 0);
	unmount_and_fsck();
}
END_TEST

/*
 * A host dies holding the map-change claim (taken by hand, as in the middle
 * of an allocating write): the other holder's next hole fill waits for the
 * dead host to be recovered, then goes on; the volume checks clean.
 */
START_TEST(mw_dead_claimer)
{
	struct vcfs_fs *b = mount_as("hostB");
	struct vcfs_attr in = { 0 }, a;
	struct vcfs_file *fa, *fb;
	uint8_t w[4096], r[4096];
	uint64_t ino = mkfile(fs, root(), "disk");
	uint64_t lblk;
	uint32_t others = 99;
	char s[512];

	in.size = 16ull * MIB;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_SIZE, &a), 0);
	set_mw(fs, ino, "1", 0);
	ck_assert_uint_eq(ino_of(b, root(), "disk"), ino);
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDWR, 0, &fa), 0);
	ck_assert_int_eq(vcfs_fs_open(b, ino, O_RDWR, 0, &fb), 0);
	fill(w, 0, sizeof(w), 3);
	ck_assert_int_eq(vcfs_file_write(fb, 0, w, sizeof(w)), 4096);
	lblk = vcfs_inode_lock_blk(&b->sb, ino);
	ck_assert_int_eq(vcfs_lock_claim(b->hb, lblk, 0, 0, &others, NULL), 0);
	ck_assert_uint_eq(others, 1);
	/* one claim at a time: A cannot take it now */
	ck_assert_int_eq(vcfs_lock_claim(fs->hb, lblk, 0, 0, NULL, NULL), -EBUSY);
	lock_string(fs, ino, s, sizeof(s));
	ck_assert_msg(strstr(s, "hostB (slot 1, gen ") && strstr(s, ", changing the map)"),
		      "%s", s);
	/* B dies holding it */
	vcfs_fs_crash(b);
	fill(w, 8 * MIB, sizeof(w), 4);
	ck_assert_int_eq(vcfs_file_write(fa, 8 * MIB, w, sizeof(w)), 4096);
	ck_assert_int_eq(vcfs_file_read(fa, 8 * MIB, r, sizeof(r)), 4096);
	ck_assert(!memcmp(r, w, sizeof(w)));
	fill(w, 0, sizeof(w), 3);
	ck_assert_int_eq(vcfs_file_read(fa, 0, r, sizeof(r)), 4096);
	ck_assert(!memcmp(r, w, sizeof(w)));
	lock_string(fs, ino, s, sizeof(s));
	ck_assert_msg(!strncmp(s, "MW hostA (slot 0, gen ", 22) && !strstr(s, "hostB"), "%s", s);
	/* alone now: A may shrink it */
	in.size = MIB;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_SIZE, &a), 0);
	ck_assert_int_eq(vcfs_file_release(fa), 0);
	unmount_and_fsck();
}
END_TEST

/*
 * A multi-writer file only this host has open (a storage-move target): its
 * fills keep the map-change claim and leave their changes in the journal's
 * group (fs_int.h "Deferred data-path ops").  A second host that opens it
 * meanwhile must wait for that claim and then see every fill (size and
 * data); from then on fills on either host are seen by the other, and the
 * kept claim never outlives the file's release.
 */
START_TEST(mw_join_kept_claim)
{
	uint32_t lbs = fs->sb.lblock_size;
	uint8_t *w = malloc(6 * (size_t)lbs), *r = malloc(6 * (size_t)lbs);
	uint64_t ino = mkfile(fs, root(), "target");
	struct vcfs_file *fa, *fb;
	struct vcfs_attr a;
	struct vcfs_fs *b;

	fill(w, 0, 6 * (size_t)lbs, 41);
	set_mw(fs, ino, "1", 0);
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDWR, 0, &fa), 0);
	ck_assert(vcfs_file_shared(fa));
	/* alone: sequential fills, the first claims, the next reuse it */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(vcfs_file_write(fa, (uint64_t)i * lbs, w + (size_t)i * lbs, lbs),
				 (ssize_t)lbs);
	/* B joins right away (A may still keep the claim) */
	b = mount_as("hostB");
	ck_assert_uint_eq(ino_of(b, root(), "target"), ino);
	ck_assert_int_eq(vcfs_fs_open(b, ino, O_RDWR, 0, &fb), 0);
	ck_assert(vcfs_file_shared(fb));
	ck_assert_int_eq(vcfs_fs_getattr(b, ino, &a), 0);
	ck_assert_uint_eq(a.size, 3ull * lbs);
	ck_assert_int_eq(vcfs_file_read(fb, 0, r, 3 * (size_t)lbs), (ssize_t)(3 * (size_t)lbs));
	ck_assert_msg(!memcmp(r, w, 3 * (size_t)lbs), "B reads other bytes than A's fills");
	/* both hold it now: A's next fill is seen by B, B's by A */
	ck_assert_int_eq(vcfs_file_write(fa, 3ull * lbs, w + 3 * (size_t)lbs, lbs), (ssize_t)lbs);
	ck_assert_int_eq(vcfs_file_read(fb, 3ull * lbs, r, lbs), (ssize_t)lbs);
	ck_assert(!memcmp(r, w + 3 * (size_t)lbs, lbs));
	ck_assert_int_eq(vcfs_file_write(fb, 4ull * lbs, w + 4 * (size_t)lbs, lbs), (ssize_t)lbs);
	ck_assert_int_eq(vcfs_file_read(fa, 4ull * lbs, r, lbs), (ssize_t)lbs);
	ck_assert(!memcmp(r, w + 4 * (size_t)lbs, lbs));
	ck_assert_int_eq(vcfs_file_release(fb), 0);
	/* alone again: kept claim again; release gives it back (no claim
	 * left on the record: B can open and claim at once) */
	ck_assert_int_eq(vcfs_file_write(fa, 5ull * lbs, w + 5 * (size_t)lbs, lbs), (ssize_t)lbs);
	ck_assert_int_eq(vcfs_file_release(fa), 0);
	ck_assert_uint_eq(fs->nkc, 0);
	ck_assert_int_eq(vcfs_fs_open(b, ino, O_RDWR, 0, &fb), 0);
	ck_assert_int_eq(vcfs_file_read(fb, 0, r, 6 * (size_t)lbs), (ssize_t)(6 * (size_t)lbs));
	ck_assert(!memcmp(r, w, 6 * (size_t)lbs));
	ck_assert_int_eq(vcfs_file_release(fb), 0);
	ck_assert_int_eq(vcfs_fs_unmount(b), 0);
	free(w);
	free(r);
	unmount_and_fsck();
}
END_TEST

/*
 * A lock that justified a cache is lost (B takes the file while A's read
 * open had let go of its record for an op): the fs tells the front end
 * (inval hook), A's old descriptor fails instead of serving old data, and
 * A's next open and getattr see what B wrote.
 */
static int inval_count;
static uint64_t inval_ino;

static void count_inval(void *arg, uint64_t ino)
{
	(void)arg;
	__atomic_add_fetch(&inval_count, 1, __ATOMIC_SEQ_CST);
	inval_ino = ino;
}

START_TEST(lock_loss_invalidates)
{
	struct vcfs_fs *b = mount_as("hostB");
	struct vcfs_attr in = { 0 }, a;
	struct vcfs_file *fa, *fb;
	uint64_t ino = mkfile(fs, root(), "f");
	char r[32];

	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_WRONLY, 0, &fa), 0);
	ck_assert_int_eq(vcfs_file_write(fa, 0, "old", 3), 3);
	ck_assert_int_eq(vcfs_file_release(fa), 0);
	ck_assert_uint_eq(ino_of(b, root(), "f"), ino);
	vcfs_fs_set_inval(fs, count_inval, NULL);
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDONLY, 0, &fa), 0);
	ck_assert_int_eq(vcfs_file_read(fa, 0, r, sizeof(r)), 3);
	/* A's entry disappears (as if broken), B takes the file EXCL */
	ck_assert_int_eq(vcfs_lock_release(fs->hb, vcfs_inode_lock_blk(&fs->sb, ino), 0), 0);
	ck_assert_int_eq(vcfs_fs_open(b, ino, O_RDWR, 0, &fb), 0);
	ck_assert_int_eq(vcfs_file_write(fb, 0, "new content", 11), 11);
	ck_assert_int_eq(vcfs_file_fsync(fb, 0), 0);
	/* A finds out at its next change of the inode */
	in.mode = 0600;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino, &in, VCFS_SET_MODE, &a), -EBUSY);
	ck_assert_int_ge(__atomic_load_n(&inval_count, __ATOMIC_SEQ_CST), 1);
	ck_assert_uint_eq(inval_ino, ino);
	ck_assert_int_eq(vcfs_file_read(fa, 0, r, sizeof(r)), -EIO);
	ck_assert_int_eq(vcfs_fs_getattr(fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, 11);
	ck_assert_int_eq(vcfs_file_release(fb), 0);
	ck_assert_int_eq(vcfs_file_release(fa), 0);
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDONLY, 0, &fa), 0);
	ck_assert_int_eq(vcfs_file_read(fa, 0, r, sizeof(r)), 11);
	ck_assert(!memcmp(r, "new content", 11));
	ck_assert_int_eq(vcfs_file_release(fa), 0);
	/* fencing invalidates every open inode */
	inval_count = 0;
	ck_assert_int_eq(vcfs_fs_open(fs, ino, O_RDONLY, 0, &fa), 0);
	vcfs_hb_fence(fs->hb, -EIO);
	for (int i = 0; i < 100 && !__atomic_load_n(&inval_count, __ATOMIC_SEQ_CST); i++)
		usleep(20 * 1000);
	ck_assert_int_ge(__atomic_load_n(&inval_count, __ATOMIC_SEQ_CST), 1);
	ck_assert_int_eq(vcfs_file_read(fa, 0, r, sizeof(r)), -VCFS_EFENCED);
	vcfs_file_release(fa);
	vcfs_fs_set_inval(fs, NULL, NULL);
	vcfs_fs_crash(fs);
	fs = NULL;
	ck_assert_int_eq(vcfs_fs_unmount(b), 0);
}
END_TEST

/* ---- crashes ---- */

/* Copy a mostly sparse image, skipping zero chunks. */
static void copy_sparse(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY), out = open(dst, O_RDWR | O_CREAT | O_TRUNC, 0600);
	uint8_t *b = malloc(MIB), *z = calloc(1, MIB);

	ck_assert_int_ge(in, 0);
	ck_assert_int_ge(out, 0);
	ck_assert_int_eq(ftruncate(out, (off_t)IMG_BYTES), 0);
	for (uint64_t off = 0; off < IMG_BYTES; off += MIB) {
		ck_assert_int_eq(pread(in, b, MIB, (off_t)off), (ssize_t)MIB);
		if (memcmp(b, z, MIB))
			ck_assert_int_eq(pwrite(out, b, MIB, (off_t)off), (ssize_t)MIB);
	}
	close(in);
	close(out);
	free(b);
	free(z);
}

/* Run fsck; returns its status, problem ids found appended to ids. */
static int fsck_ids(const char *u, enum vcfs_fsck_mode mode, char *ids, size_t idlen)
{
	struct vcfs_fsck_opts o = { .mode = mode, .skip_live_wait = 1 };
	struct vcfs_fsck_stats st;
	struct vcfs_disk *d;
	char line[512];
	FILE *out = tmpfile();
	int rc;

	o.out = out;
	ck_assert_int_eq(vcfs_disk_open(u, NULL, &d), 0);
	rc = vcfs_fsck(d, &o, &st);
	vcfs_disk_close(d);
	rewind(out);
	ids[0] = 0;
	while (fgets(line, sizeof(line), out)) {
		if (strlen(ids) + strlen(line) + 1 < idlen)
			strcat(ids, line);
	}
	fclose(out);
	return rc;
}

/*
 * Only what a crash leaves by design may need repair: the dead host's slot
 * and journal, its stale locks, its orphans -- and what freeing an orphan
 * makes fsck say next (the orphan directory's count, the freed entries).
 */
static int allowed_problems(const char *report)
{
	char copy[8192], *save, *l;
	int orphans = strstr(report, "\nOR01") != NULL;

	snprintf(copy, sizeof(copy), "%s", report);
	for (l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		unsigned dirno;
		if (!strncmp(l, "code", 4) || l[0] == ' ')
			continue;
		if (!strncmp(l, "HB02", 4) || !strncmp(l, "JN01", 4) || !strncmp(l, "OR01", 4) ||
		    !strncmp(l, "LK01", 4))
			continue;
		if (orphans && !strncmp(l, "BT01", 4))
			continue;
		if (orphans && !strncmp(l, "DR11", 4) && strstr(l, "directory ") &&
		    sscanf(strstr(l, "directory ") + 10, "%u", &dirno) == 1 &&
		    dirno >= VCFS_ORPHAN_INO(0) && dirno < VCFS_ORPHAN_INO(VCFS_MAX_HOSTS))
			continue;
		return 0;
	}
	return 1;
}

/*
 * A workload (creates, writes past the small->large conversion, fsync,
 * rename, link, unlink, an orphan, truncate, mkdir/rmdir, xattr) recorded by
 * the crash layer; the host dies without unmounting.  At every crash point
 * (every write of the log, kept / dropped / torn / at random) the image must
 * need no repair but what a dead host leaves by design (fsck -y: its slot,
 * journal, locks, orphans), be clean after it, and still hold the file that
 * was fsync'd before the crash point, whole.
 */
START_TEST(crash_every_write)
{
	/* every crash point with KEEP or DROP (alternating), torn and random
	 * ones on every sixth: n % every == at */
	static const struct {
		enum vcfs_crash_policy p; uint64_t seed; size_t every, at;
	} pol[] = {
		{ VCFS_CRASH_KEEP, 0, 2, 0 }, { VCFS_CRASH_DROP, 0, 2, 1 },
		{ VCFS_CRASH_TEAR, 0, 6, 3 }, { VCFS_CRASH_RANDOM, 1, 6, 0 },
	};
	char base[200], tpath[200], turi[220], report[8192];
	uint8_t *data = malloc(200000), *rb = malloc(200000);
	struct vcfs_disk *d, *c, *tgt;
	struct vcfs_file *f, *g;
	struct vcfs_attr a, in = { 0 };
	struct { uint64_t off, len; } *rng;
	size_t nw, marker_a, points = 0;
	uint64_t dir;

	/* a volume with a directory in it, then the workload on a crash layer */
	mkd(root(), "d");
	ck_assert_int_eq(vcfs_fs_unmount(fs), 0);
	fs = NULL;
	snprintf(base, sizeof(base), "%s.base", img);
	snprintf(tpath, sizeof(tpath), "%s.target", img);
	snprintf(turi, sizeof(turi), "file:%s", tpath);
	copy_sparse(img, base);
	ck_assert_int_eq(vcfs_disk_open(uri, NULL, &d), 0);
	ck_assert_int_eq(vcfs_crash_wrap(d, VCFS_CRASH_LOG, &c), 0);
	{
		struct vcfs_mount_opts o = { .host_name = "crashy" };
		ck_assert_int_eq(vcfs_fs_mount_disk(c, &o, &fs), 0);
	}
	dir = ino_of(fs, root(), "d");
	fill(data, 0, 200000, 11);
	ck_assert_int_eq(vcfs_fs_create(fs, dir, "a", 0644, 0, 0, O_RDWR, &a, &f), 0);
	ck_assert_int_eq(vcfs_file_write(f, 0, data, 200000), 200000);
	ck_assert_int_eq(vcfs_file_fsync(f, 0), 0);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	marker_a = vcfs_crash_nwrites(c);
	/* written, never fsync'd: whatever of it a crash keeps must be its data */
	ck_assert_int_eq(vcfs_fs_create(fs, root(), "z", 0644, 0, 0, O_RDWR, &a, &f), 0);
	ck_assert_int_eq(vcfs_file_write(f, 0, data, 200000), 200000);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	/* and one that grows past a large block (converted) in several writes */
	ck_assert_int_eq(vcfs_fs_create(fs, root(), "y", 0644, 0, 0, O_RDWR, &a, &f), 0);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(vcfs_file_write(f, (uint64_t)i * 200000, data, 200000), 200000);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	ck_assert_int_eq(vcfs_fs_create(fs, dir, "b", 0644, 0, 0, O_RDWR, &a, &f), 0);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(vcfs_file_write(f, (uint64_t)i * 200000, data, 200000), 200000);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	ck_assert_int_eq(vcfs_fs_rename(fs, dir, "a", dir, "a2", 0), 0);
	ck_assert_int_eq(vcfs_fs_link(fs, a.ino, root(), "b2", &a), 0);
	ck_assert_int_eq(vcfs_fs_unlink(fs, dir, "b"), 0);
	ck_assert_int_eq(vcfs_fs_create(fs, dir, "c", 0644, 0, 0, O_RDWR, &a, &f), 0);
	ck_assert_int_eq(vcfs_file_write(f, 0, data, 100000), 100000);
	ck_assert_int_eq(vcfs_fs_open(fs, a.ino, O_RDONLY, 0, &g), 0);
	ck_assert_int_eq(vcfs_fs_unlink(fs, dir, "c"), 0);
	ck_assert_int_eq(vcfs_file_release(f), 0);
	ck_assert_int_eq(vcfs_file_release(g), 0);
	in.size = 5000;
	ck_assert_int_eq(vcfs_fs_setattr(fs, ino_of(fs, root(), "b2"), &in, VCFS_SET_SIZE, &a), 0);
	mkd(dir, "e");
	ck_assert_int_eq(vcfs_fs_rmdir(fs, dir, "e"), 0);
	ck_assert_int_eq(vcfs_fs_setxattr(fs, dir, "user.x", "y", 1, 0), 0);
	/* an open file with unflushed size when the host dies */
	ck_assert_int_eq(vcfs_fs_create(fs, dir, "open", 0644, 0, 0, O_RDWR, &a, &f), 0);
	ck_assert_int_eq(vcfs_file_write(f, 0, data, 5000), 5000);
	ck_assert_int_eq(vcfs_fs_unlink(fs, dir, "open"), 0);
	/* the host dies here: no unmount, nothing more is written */
	lcache_stop(fs, 0);
	vcfs_hb_abandon(fs->hb);
	fs = NULL;
	nw = vcfs_crash_nwrites(c);
	ck_assert_uint_gt(nw, marker_a);

	rng = calloc(nw, sizeof(*rng));
	for (size_t i = 0; i < nw; i++) {
		uint64_t ep;
		int dur;
		ck_assert_int_eq(vcfs_crash_write_info(c, i, &rng[i].off, &rng[i].len, &ep, &dur), 0);
	}
	copy_sparse(base, tpath);
	vcfs_log_set_level(VCFS_LOG_ERR);
	for (size_t n = 0; n <= nw; n++) {
		for (size_t p = 0; p < sizeof(pol) / sizeof(pol[0]); p++) {
			int bf, tf, rc;
			uint8_t *buf;

			if (n % pol[p].every != pol[p].at && n != nw)
				continue;
			bf = open(base, O_RDONLY);
			tf = open(tpath, O_RDWR);
			buf = malloc(MIB);

			/* back to the base image where the log wrote */
			for (size_t i = 0; i < nw; i++)
				for (uint64_t o = 0; o < rng[i].len; o += MIB) {
					size_t k = rng[i].len - o < MIB ? (size_t)(rng[i].len - o) : MIB;
					ck_assert_int_eq(pread(bf, buf, k, (off_t)(rng[i].off + o)),
							 (ssize_t)k);
					ck_assert_int_eq(pwrite(tf, buf, k, (off_t)(rng[i].off + o)),
							 (ssize_t)k);
				}
			close(bf);
			close(tf);
			free(buf);
			ck_assert_int_eq(vcfs_disk_open(turi, NULL, &tgt), 0);
			ck_assert_int_eq(vcfs_crash_replay(c, tgt, n, pol[p].p, pol[p].seed), 0);
			vcfs_disk_close(tgt);
			rc = fsck_ids(turi, VCFS_FSCK_REPAIR, report, sizeof(report));
			ck_assert_msg((rc == 0 || rc == 1) && allowed_problems(report),
				      "crash after %zu of %zu writes (policy %d): fsck %d:\n%s", n,
				      nw, (int)pol[p].p, rc, report);
			if (strstr(report, "\nOR01")) {
				/* fsck frees an orphan's blocks only on its next run */
				rc = fsck_ids(turi, VCFS_FSCK_REPAIR, report, sizeof(report));
				ck_assert_msg(rc == 0 || (rc == 1 && !strstr(report, "\nBT02") &&
							  strstr(report, "\nBT01")),
					      "crash after %zu of %zu writes (policy %d): second "
					      "fsck %d:\n%s", n, nw, (int)pol[p].p, rc, report);
			}
			rc = fsck_ids(turi, VCFS_FSCK_CHECK, report, sizeof(report));
			ck_assert_msg(rc == 0, "crash after %zu of %zu writes (policy %d): last "
				      "fsck %d:\n%s", n, nw, (int)pol[p].p, rc, report);
			points++;
			if (pol[p].p != VCFS_CRASH_KEEP && pol[p].p != VCFS_CRASH_DROP)
				continue;
			/* what was fsync'd before the crash is there, whole; what a
			 * map points at is what was written there */
			{
				struct vcfs_mount_opts o = { .host_name = "after" };
				struct vcfs_fs *m;
				struct vcfs_attr za;
				uint64_t md, ai, zi;
				ck_assert_int_eq(vcfs_fs_mount(turi, &o, &m), 0);
				md = ino_of(m, vcfs_fs_root(m), "d");
				ai = ino_of(m, md, "a");
				if (!ai)
					ai = ino_of(m, md, "a2");
				ck_assert_msg(ai || n < marker_a,
					      "crash after %zu writes: the fsync'd file is gone", n);
				if (ai && n >= marker_a) {
					ck_assert_int_eq(vcfs_fs_open(m, ai, O_RDONLY, 0, &f), 0);
					ck_assert_int_eq(vcfs_file_read(f, 0, rb, 200000), 200000);
					ck_assert_mem_eq(rb, data, 200000);
					ck_assert_int_eq(vcfs_file_release(f), 0);
				}
				zi = ino_of(m, vcfs_fs_root(m), "z");
				if (zi) {
					ck_assert_int_eq(vcfs_fs_getattr(m, zi, &za), 0);
					ck_assert_int_eq(vcfs_fs_open(m, zi, O_RDONLY, 0, &f), 0);
					ck_assert_int_eq(vcfs_file_read(f, 0, rb, 200000), (ssize_t)za.size);
					ck_assert_msg(!memcmp(rb, data, za.size), "crash after %zu writes "
						      "(policy %d): z holds %llu bytes that are not what "
						      "was written", n, (int)pol[p].p,
						      (unsigned long long)za.size);
					ck_assert_int_eq(vcfs_file_release(f), 0);
				}
				zi = ino_of(m, vcfs_fs_root(m), "y");
				if (zi) {
					ck_assert_int_eq(vcfs_fs_getattr(m, zi, &za), 0);
					ck_assert_int_eq(vcfs_fs_open(m, zi, O_RDONLY, 0, &f), 0);
					for (uint64_t yo = 0; yo < za.size; yo += 200000) {
						size_t k = za.size - yo < 200000 ?
							   (size_t)(za.size - yo) : 200000;
						ck_assert_int_eq(vcfs_file_read(f, yo, rb, k), (ssize_t)k);
						ck_assert_msg(!memcmp(rb, data, k), "crash after %zu "
							      "writes (policy %d): y differs at %llu", n,
							      (int)pol[p].p, (unsigned long long)yo);
					}
					ck_assert_int_eq(vcfs_file_release(f), 0);
				}
				ck_assert_int_eq(vcfs_fs_unmount(m), 0);
			}
		}
	}
	fprintf(stderr, "crash_every_write: %zu crash points over %zu writes\n", points, nw);
	free(rng);
	free(data);
	free(rb);
	unlink(base);
	unlink(tpath);
}
END_TEST

/*
 * First writes into thin files defer their map changes to the journal's
 * group commit (fs_int.h DESIGN): one op per large block, no checkpoint per
 * op, and for a multi-writer file nobody else holds, the map-change claim
 * kept across ops.  The failure mode that design risks: a record mapping a
 * block whose data never reached the media (the data flush must precede
 * the record), or an fsync that does not make the fills durable.  Two files
 * filled sequentially a large block at a time, an fsync in the middle of
 * each, then more fills the host dies before committing; at every crash
 * point (kept / dropped / torn / random): fsck needs no repair but what a
 * dead host leaves, and every byte below each file's size is what was
 * written (a hole or stale data there is a map ahead of its data), and the
 * fsync'd prefix is there.
 */
START_TEST(crash_seq_fill)
{
	static const struct {
		enum vcfs_crash_policy p; uint64_t seed; size_t every, at;
	} pol[] = {
		{ VCFS_CRASH_KEEP, 0, 2, 0 }, { VCFS_CRASH_DROP, 0, 2, 1 },
		{ VCFS_CRASH_TEAR, 0, 8, 3 }, { VCFS_CRASH_RANDOM, 3, 8, 7 },
	};
	static const char *names[2] = { "s", "m" };
	const unsigned nsync = 3, nall = 6;
	char base[200], tpath[200], turi[220], report[8192];
	uint32_t lbs;
	uint8_t *data, *rb;
	struct vcfs_disk *d, *c, *tgt;
	struct vcfs_file *f[2];
	struct vcfs_attr a;
	struct { uint64_t off, len; } *rng;
	size_t nw, marker[2], points = 0;

	lbs = fs->sb.lblock_size;
	data = malloc((size_t)nall * lbs);
	rb = malloc((size_t)nall * lbs);
	fill(data, 0, (size_t)nall * lbs, 23);
	ck_assert_int_eq(vcfs_fs_unmount(fs), 0);
	fs = NULL;
	snprintf(base, sizeof(base), "%s.base", img);
	snprintf(tpath, sizeof(tpath), "%s.target", img);
	snprintf(turi, sizeof(turi), "file:%s", tpath);
	copy_sparse(img, base);
	ck_assert_int_eq(vcfs_disk_open(uri, NULL, &d), 0);
	ck_assert_int_eq(vcfs_crash_wrap(d, VCFS_CRASH_LOG, &c), 0);
	{
		struct vcfs_mount_opts o = { .host_name = "crashy" };
		ck_assert_int_eq(vcfs_fs_mount_disk(c, &o, &fs), 0);
	}
	/* s: an ordinary file (EXCL open); m: multi-writer, open only here */
	ck_assert_int_eq(vcfs_fs_create(fs, root(), "s", 0644, 0, 0, O_RDWR, &a, &f[0]), 0);
	{
		uint64_t mi = mkfile(fs, root(), "m");
		set_mw(fs, mi, "1", 0);
		ck_assert_int_eq(vcfs_fs_open(fs, mi, O_RDWR, 0, &f[1]), 0);
		ck_assert(vcfs_file_shared(f[1]));
	}
	for (int k = 0; k < 2; k++) {
		for (unsigned i = 0; i < nsync; i++)
			ck_assert_int_eq(vcfs_file_write(f[k], (uint64_t)i * lbs, data + (size_t)i * lbs,
							 lbs), (ssize_t)lbs);
		ck_assert_int_eq(vcfs_file_fsync(f[k], 0), 0);
		marker[k] = vcfs_crash_nwrites(c);
	}
	/* not fsync'd: some of it may stay, all of it must be what was written */
	for (unsigned i = nsync; i < nall; i++)
		for (int k = 0; k < 2; k++)
			ck_assert_int_eq(vcfs_file_write(f[k], (uint64_t)i * lbs,
							 data + (size_t)i * lbs, lbs), (ssize_t)lbs);
	/* the host dies here: no release, no unmount */
	lcache_stop(fs, 0);
	vcfs_hb_abandon(fs->hb);
	fs = NULL;
	nw = vcfs_crash_nwrites(c);
	ck_assert_uint_gt(nw, marker[1]);

	rng = calloc(nw, sizeof(*rng));
	for (size_t i = 0; i < nw; i++) {
		uint64_t ep;
		int dur;
		ck_assert_int_eq(vcfs_crash_write_info(c, i, &rng[i].off, &rng[i].len, &ep, &dur), 0);
	}
	copy_sparse(base, tpath);
	vcfs_log_set_level(VCFS_LOG_ERR);
	for (size_t n = 0; n <= nw; n++) {
		for (size_t p = 0; p < sizeof(pol) / sizeof(pol[0]); p++) {
			int bf, tf, rc;
			uint8_t *buf;

			if (n % pol[p].every != pol[p].at && n != nw)
				continue;
			bf = open(base, O_RDONLY);
			tf = open(tpath, O_RDWR);
			buf = malloc(MIB);
			for (size_t i = 0; i < nw; i++)
				for (uint64_t o = 0; o < rng[i].len; o += MIB) {
					size_t k = rng[i].len - o < MIB ? (size_t)(rng[i].len - o) : MIB;
					ck_assert_int_eq(pread(bf, buf, k, (off_t)(rng[i].off + o)),
							 (ssize_t)k);
					ck_assert_int_eq(pwrite(tf, buf, k, (off_t)(rng[i].off + o)),
							 (ssize_t)k);
				}
			close(bf);
			close(tf);
			free(buf);
			ck_assert_int_eq(vcfs_disk_open(turi, NULL, &tgt), 0);
			ck_assert_int_eq(vcfs_crash_replay(c, tgt, n, pol[p].p, pol[p].seed), 0);
			vcfs_disk_close(tgt);
			rc = fsck_ids(turi, VCFS_FSCK_REPAIR, report, sizeof(report));
			ck_assert_msg((rc == 0 || rc == 1) && allowed_problems(report),
				      "crash after %zu of %zu writes (policy %d): fsck %d:\n%s", n,
				      nw, (int)pol[p].p, rc, report);
			rc = fsck_ids(turi, VCFS_FSCK_CHECK, report, sizeof(report));
			ck_assert_msg(rc == 0, "crash after %zu of %zu writes (policy %d): last "
				      "fsck %d:\n%s", n, nw, (int)pol[p].p, rc, report);
			points++;
			{
				struct vcfs_mount_opts o = { .host_name = "after" };
				struct vcfs_fs *m;
				struct vcfs_file *g;
				struct vcfs_attr za;
				ck_assert_int_eq(vcfs_fs_mount(turi, &o, &m), 0);
				for (int k = 0; k < 2; k++) {
					uint64_t zi = ino_of(m, vcfs_fs_root(m), names[k]);
					if (!zi) {
						ck_assert_msg(n < marker[k], "crash after %zu writes: "
							      "the fsync'd file %s is gone", n, names[k]);
						continue;
					}
					ck_assert_int_eq(vcfs_fs_getattr(m, zi, &za), 0);
					ck_assert_msg(n < marker[k] || za.size >= (uint64_t)nsync * lbs,
						      "crash after %zu writes (policy %d): %s is %llu "
						      "bytes, fsync'd %llu", n, (int)pol[p].p, names[k],
						      (unsigned long long)za.size,
						      (unsigned long long)nsync * lbs);
					ck_assert_uint_le(za.size, (uint64_t)nall * lbs);
					ck_assert_int_eq(vcfs_fs_open(m, zi, O_RDONLY, 0, &g), 0);
					ck_assert_int_eq(vcfs_file_read(g, 0, rb, za.size), (ssize_t)za.size);
					for (uint64_t b = 0; b < za.size; b += lbs) {
						size_t l = za.size - b < lbs ? (size_t)(za.size - b) : lbs;
						ck_assert_msg(!memcmp(rb + b, data + b, l), "crash after %zu "
							      "writes (policy %d): %s block %llu of %llu bytes "
							      "is not what was written there", n,
							      (int)pol[p].p, names[k],
							      (unsigned long long)(b / lbs),
							      (unsigned long long)za.size);
					}
					ck_assert_int_eq(vcfs_file_release(g), 0);
				}
				ck_assert_int_eq(vcfs_fs_unmount(m), 0);
			}
		}
	}
	fprintf(stderr, "crash_seq_fill: %zu crash points over %zu writes\n", points, nw);
	free(rng);
	free(data);
	free(rb);
	unlink(base);
	unlink(tpath);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("fs");
	TCase *t = tcase_create("fs");
	TCase *big = tcase_create("big");
	TCase *crash = tcase_create("crash");

	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, create_lookup_unlink);
	tcase_add_test(t, mkdir_rmdir);
	tcase_add_test(t, renames);
	tcase_add_test(t, hard_links);
	tcase_add_test(t, symlinks);
	tcase_add_test(t, data_patterns);
	tcase_add_test(t, holes);
	tcase_add_test(t, fallocate_seek_punch);
	tcase_add_test(t, truncates);
	tcase_add_test(t, attrs);
	tcase_add_test(t, xattrs);
	tcase_add_test(t, unlink_open);
	tcase_add_test(t, orphan_after_crash);
	tcase_add_test(t, two_hosts);
	tcase_add_test(t, reused_inode_not_reopened);
	tcase_add_test(t, two_hosts_concurrent);
	tcase_add_test(t, read_only_mount);
	tcase_add_test(t, read_only_past_dead_host);
	tcase_add_test(t, remount_persistence);
	tcase_add_test(t, dead_host_recovered);
	tcase_add_test(t, change_while_read_open);
	tcase_add_test(t, huge_sparse);
	tcase_add_test(t, backup_header);
	tcase_add_test(t, fenced);
	tcase_add_test(t, threads);
	tcase_add_test(t, multi_txn_free);
	tcase_add_test(t, mw_two_hosts);
	tcase_add_test(t, mw_concurrent_fill);
	tcase_add_test(t, mw_dead_claimer);
	tcase_add_test(t, lock_loss_invalidates);
	tcase_add_test(t, mw_join_kept_claim);
	tcase_add_test(t, waits_leave_op_mutex);
	tcase_add_test(t, async_io_pins);
	suite_add_tcase(s, t);
	tcase_add_checked_fixture(big, setup_big, teardown);
	tcase_set_timeout(big, 900);
	tcase_add_test(big, big_directory);
	tcase_add_test(big, readdir_during_splits);
	suite_add_tcase(s, big);
	tcase_add_checked_fixture(crash, setup_slow, teardown);
	tcase_set_timeout(crash, 900);
	tcase_add_test(crash, crash_every_write);
	tcase_add_test(crash, crash_seq_fill);
	suite_add_tcase(s, crash);
	return s;
}

int main(void)
{
	return ck_run_in_tmpdir(suite(), dir_tmpl);
}
