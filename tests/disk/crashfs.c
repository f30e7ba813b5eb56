/*
 * crashfs.c - crash-point enumeration over the filesystem (issue 3's crash
 * tests; issue 7's "crash at every write, recover, demand a clean fsck and
 * every acknowledged fsync").
 *
 *   crashfs -w WORKLOAD|all [-s SEED] [-r NRANDOM] [-m] [-v] [-k] [-d DIR]
 *           [-n WRITES] [-F MAXFAIL]
 *   workloads: create write rename truncate falloc mix grow orphan
 *
 * 1. Record.  A 128 MiB image (4 hosts, T = 200 ms) is formatted and mounted
 *    through the crash layer in LOG mode (vcfs_fs_mount_disk).  The workload
 *    runs single-threaded on that host while a model of the namespace and of
 *    every file's bytes follows it.  After each step has become durable (an
 *    fsync returned, or vcfs_fs_sync after a metadata op: ops commit in groups) the
 *    model is snapshotted as state S_k with w_k = the number of writes logged
 *    at that moment.  The clock is frozen (vcfs_clock_set) so the heartbeat
 *    never renews: the write log of a workload is the same in every run for
 *    one seed, and a crash point named by its write index is reproduced with
 *    -s SEED -n WRITES.  The host stays mounted (idle) while its log is
 *    enumerated, and is then stopped with vcfs_fs_crash.
 *
 * 2. Enumerate.  For every n in 0..N (N = writes logged) and each policy --
 *    KEEP, DROP, TEAR, and NRANDOM seeds of RANDOM -- the crash image "power
 *    lost right after write n-1" is built with vcfs_crash_replay onto a copy
 *    of the freshly formatted image (in /dev/shm).  Policies that give the
 *    same image as one already checked at this n are counted as covered but
 *    not re-checked: all of them when the crash epoch holds no volatile
 *    write, TEAR when every volatile write tears to nothing (then it is DROP)
 *    or to all of itself.  On tmpfs the physical sector is 4 KiB, so TEAR
 *    differs from DROP only for volatile writes of several blocks.
 *
 * 3. Recover and check each image:
 *    - fsck -y: the crashed host's slot is still LIVE; fsck replays its
 *      journal and frees it.  It may only report HB02 (unclean slot), JN01
 *      (pending journal), OR01 (orphans of a host that is gone) and what
 *      freeing an orphan brings with it (findings_ok); anything else is
 *      damage a crash must not cause;
 *    - fsck -n must then be clean (exit 0);
 *    - a new host mounts the image (read-write: a read-only mount cannot
 *      tell the crashed host's lock entries are stale, and waits on each)
 *      and walks it.  With k the last state such that w_k < n (the flush or
 *      FUA write that made it durable is inside the replayed prefix), the
 *      image must lie between S_k and S_k+1 (the step in flight):
 *        the set of paths is exactly that of S_k or that of S_k+1 (each step
 *        makes at most one namespace change, and that commits atomically);
 *        a file's size lies between its sizes in the two states (absent = 0);
 *        each byte equals that byte in S_k or in S_k+1 (past a state's size,
 *        or absent: 0) -- so every fsync'd byte is there, a file never shows
 *        another file's old data, and a torn write shows old or new bytes;
 *    - with -m, for the KEEP policy the new host also writes a file, and
 *      after every unmount fsck -n must still be clean.
 *
 * The last line is a summary ("crashfs: WORKLOAD: ... crash points ...");
 * exit 0 if every point passed, 1 if some failed (the first ones are
 * described with their write index, policy and seed), 2 on a setup error.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/falloc.h>
#include "common/clock.h"
#include "common/log.h"
#include "disk/disk.h"
#include "fs/fs.h"
#include "fs/fsck.h"
#include "fs/mkfs.h"

#define IMG_BYTES	(128ull << 20)
#define MAX_HOSTS	4
#define IO_TIMEOUT_MS	200
#define MAXE		64	/* paths in a model */
#define PATHLEN		48
#define MAX_REPORTED	3	/* failures described in full */
static unsigned max_failures = 25;	/* stop enumerating after this many (-F) */

static int verbose;

/* ================= small helpers ================= */

__attribute__((noreturn, format(printf, 1, 2)))
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "crashfs: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return n ? rng_next(s) % n : 0;
}

/* Messages of the library for the current crash point; printed on failure. */
static char logbuf[1 << 16];
static size_t loglen;

static void log_sink(enum vcfs_log_level lvl, const char *msg, void *arg)
{
	static const char *const lv[] = { "ERR", "WARN", "INFO", "DEBUG" };
	int k;

	(void)arg;
	if (verbose > 1)
		fprintf(stderr, "  log: %s: %s\n", lv[lvl], msg);
	k = snprintf(logbuf + loglen, sizeof(logbuf) - loglen, "    %s: %s\n", lv[lvl], msg);
	if (k > 0 && loglen + (size_t)k < sizeof(logbuf))
		loglen += (size_t)k;
}

/* The recording runs on a frozen clock: no heartbeat renewal, no lease
 * expiry, so the write log depends only on the workload. */
static uint64_t frozen_ns;

static uint64_t frozen_clock(void *arg)
{
	(void)arg;
	return frozen_ns;
}

/* ================= the model ================= */

struct content {
	uint64_t size;
	uint8_t *data;
	unsigned refs;
};

struct entry {
	char path[PATHLEN];
	int dir;
	struct content *c;	/* regular files */
};

struct model {
	struct entry e[MAXE];
	unsigned n;
};

struct state {
	struct model m;		/* contents shared by reference */
	size_t w;		/* writes logged when it was durable */
	char what[64];
};

static struct content *content_new(uint64_t size, const struct content *from)
{
	struct content *c = xmalloc(sizeof(*c));

	c->size = size;
	c->refs = 1;
	c->data = xmalloc((size_t)size);
	memset(c->data, 0, (size_t)size);
	if (from)
		memcpy(c->data, from->data, (size_t)(from->size < size ? from->size : size));
	return c;
}

static void content_put(struct content *c)
{
	if (c && !--c->refs) {
		free(c->data);
		free(c);
	}
}

static int m_find(const struct model *m, const char *path)
{
	for (unsigned i = 0; i < m->n; i++)
		if (!strcmp(m->e[i].path, path))
			return (int)i;
	return -1;
}

static struct entry *m_get(struct model *m, const char *path)
{
	int i = m_find(m, path);

	if (i < 0)
		die("model: no %s", path);
	return &m->e[i];
}

static void m_add(struct model *m, const char *path, int dir)
{
	if (m->n == MAXE || m_find(m, path) >= 0)
		die("model: cannot add %s", path);
	snprintf(m->e[m->n].path, PATHLEN, "%s", path);
	m->e[m->n].dir = dir;
	m->e[m->n].c = dir ? NULL : content_new(0, NULL);
	m->n++;
}

static void m_remove(struct model *m, const char *path)
{
	int i = m_find(m, path);

	if (i < 0)
		die("model: no %s to remove", path);
	content_put(m->e[i].c);
	m->e[i] = m->e[--m->n];
}

/* Replace the content of path by a private copy of size bytes. */
static struct content *m_cow(struct model *m, const char *path, uint64_t size)
{
	struct entry *e = m_get(m, path);
	struct content *c = content_new(size, e->c);

	content_put(e->c);
	e->c = c;
	return c;
}

static void m_write(struct model *m, const char *path, uint64_t off, const uint8_t *buf,
		    size_t len)
{
	uint64_t old = m_get(m, path)->c->size;
	struct content *c = m_cow(m, path, off + len > old ? off + len : old);

	memcpy(c->data + off, buf, len);
}

static void m_setsize(struct model *m, const char *path, uint64_t size)
{
	m_cow(m, path, size);
}

/* Zero [off, off + len); extend: the size grows to cover it. */
static void m_zero(struct model *m, const char *path, uint64_t off, uint64_t len, int extend)
{
	uint64_t old = m_get(m, path)->c->size, sz = old;
	struct content *c;

	if (extend && off + len > sz)
		sz = off + len;
	c = m_cow(m, path, sz);
	if (off < sz)
		memset(c->data + off, 0, (size_t)((off + len < sz ? off + len : sz) - off));
}

/* Rename from -> to (a directory carries its subtree); flags as rename(2). */
static void m_rename(struct model *m, const char *from, const char *to, unsigned flags)
{
	size_t fl = strlen(from), tl = strlen(to);

	if (flags & RENAME_EXCHANGE) {
		struct entry *a = m_get(m, from), *b = m_get(m, to);
		struct entry t = *a;
		if (a->dir || b->dir)
			die("model: exchange of directories is not modelled");
		a->dir = b->dir;
		a->c = b->c;
		b->dir = t.dir;
		b->c = t.c;
		return;
	}
	if (m_find(m, to) >= 0)
		m_remove(m, to);
	for (unsigned i = 0; i < m->n; i++) {
		char *p = m->e[i].path;
		char np[PATHLEN];
		if (strcmp(p, from) && !(strncmp(p, from, fl) == 0 && p[fl] == '/'))
			continue;
		if (tl + strlen(p + fl) >= PATHLEN)
			die("model: path too long");
		snprintf(np, sizeof(np), "%s%s", to, p + fl);
		snprintf(p, PATHLEN, "%s", np);
	}
}

static void m_copy(struct model *dst, const struct model *src)
{
	*dst = *src;
	for (unsigned i = 0; i < dst->n; i++)
		if (dst->e[i].c)
			dst->e[i].c->refs++;
}

static void m_free(struct model *m)
{
	for (unsigned i = 0; i < m->n; i++)
		content_put(m->e[i].c);
	m->n = 0;
}

/* ================= recording a workload ================= */

struct rec {
	struct vcfs_fs *fs;
	struct vcfs_disk *crash;	/* the crash layer the fs writes through */
	struct model m;
	struct state *st;
	unsigned nst, capst;
	uint64_t rng;
	unsigned step;
};

static void ckpt(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ckpt(struct rec *r, const char *fmt, ...)
{
	struct state *s;
	va_list ap;

	if (r->nst == r->capst) {
		r->capst = r->capst ? 2 * r->capst : 64;
		r->st = realloc(r->st, r->capst * sizeof(*r->st));
		if (!r->st)
			die("out of memory");
	}
	/* ops commit in groups: the step is durable once the group is */
	if (r->fs && vcfs_fs_sync(r->fs))
		die("vcfs_fs_sync failed");
	s = &r->st[r->nst++];
	m_copy(&s->m, &r->m);
	s->w = vcfs_crash_nwrites(r->crash);
	va_start(ap, fmt);
	vsnprintf(s->what, sizeof(s->what), fmt, ap);
	va_end(ap);
	if (verbose)
		fprintf(stderr, "  state %u after %zu writes: %s\n", r->nst - 1, s->w, s->what);
}

#define CK(expr) do {								\
	long long rc_ = (long long)(expr);					\
	if (rc_ < 0)								\
		die("%s:%d: %s: %s", __FILE__, __LINE__, #expr,		\
		    vcfs_strerror((int)rc_));					\
} while (0)

/* Directory inode and last component of path. */
static uint64_t resolve(struct vcfs_fs *fs, const char *path, const char **name)
{
	uint64_t dir = vcfs_fs_root(fs);
	char comp[PATHLEN];
	const char *p = path, *s;

	while ((s = strchr(p, '/'))) {
		struct vcfs_attr a;
		snprintf(comp, sizeof(comp), "%.*s", (int)(s - p), p);
		CK(vcfs_fs_lookup(fs, dir, comp, &a));
		dir = a.ino;
		p = s + 1;
	}
	*name = p;
	return dir;
}

static uint64_t ino_of(struct vcfs_fs *fs, const char *path)
{
	const char *name;
	uint64_t dir = resolve(fs, path, &name);
	struct vcfs_attr a;

	CK(vcfs_fs_lookup(fs, dir, name, &a));
	return a.ino;
}

/* Non-zero bytes, so that a lost write never looks like the data. */
static void fill(struct rec *r, uint8_t *b, size_t n)
{
	uint64_t x = 0;

	for (size_t i = 0; i < n; i++) {
		if (i % 8 == 0)
			x = rng_next(&r->rng);
		b[i] = (uint8_t)(1 + (x >> (8 * (i % 8))) % 255);
	}
}

static void w_write(struct rec *r, struct vcfs_file *f, const char *path, uint64_t off,
		    size_t len, int sync)
{
	uint8_t *b = xmalloc(len);
	ssize_t k;

	fill(r, b, len);
	k = vcfs_file_write(f, off, b, len);
	if (k != (ssize_t)len)
		die("write %s %zu@%llu: %s", path, len, (unsigned long long)off,
		    k < 0 ? vcfs_strerror((int)k) : "short");
	m_write(&r->m, path, off, b, len);
	free(b);
	if (sync) {
		CK(vcfs_file_fsync(f, sync == 2));
		ckpt(r, "write %s %zu@%llu", path, len, (unsigned long long)off);
	}
}

/* Create path with len bytes, fsync; returns the open file (O_RDWR). */
static struct vcfs_file *w_create(struct rec *r, const char *path, size_t len)
{
	const char *name;
	uint64_t dir = resolve(r->fs, path, &name);
	struct vcfs_attr a;
	struct vcfs_file *f;

	CK(vcfs_fs_create(r->fs, dir, name, 0644, 0, 0, O_RDWR | O_EXCL, &a, &f));
	m_add(&r->m, path, 0);
	if (len)
		w_write(r, f, path, 0, len, 0);
	CK(vcfs_file_fsync(f, 0));
	ckpt(r, "create %s (%zu bytes)", path, len);
	return f;
}

static void w_create_closed(struct rec *r, const char *path, size_t len)
{
	CK(vcfs_file_release(w_create(r, path, len)));
}

static void w_mkdir(struct rec *r, const char *path)
{
	const char *name;
	uint64_t dir = resolve(r->fs, path, &name);
	struct vcfs_attr a;

	CK(vcfs_fs_mkdir(r->fs, dir, name, 0755, 0, 0, &a));
	m_add(&r->m, path, 1);
	ckpt(r, "mkdir %s", path);
}

static void w_rmdir(struct rec *r, const char *path)
{
	const char *name;
	uint64_t dir = resolve(r->fs, path, &name);

	CK(vcfs_fs_rmdir(r->fs, dir, name));
	m_remove(&r->m, path);
	ckpt(r, "rmdir %s", path);
}

static void w_unlink(struct rec *r, const char *path)
{
	const char *name;
	uint64_t dir = resolve(r->fs, path, &name);

	CK(vcfs_fs_unlink(r->fs, dir, name));
	m_remove(&r->m, path);
	ckpt(r, "unlink %s", path);
}

static void w_rename(struct rec *r, const char *from, const char *to, unsigned flags)
{
	const char *n1, *n2;
	uint64_t d1 = resolve(r->fs, from, &n1), d2 = resolve(r->fs, to, &n2);

	CK(vcfs_fs_rename(r->fs, d1, n1, d2, n2, flags));
	m_rename(&r->m, from, to, flags);
	ckpt(r, "rename %s -> %s%s", from, to, flags & RENAME_EXCHANGE ? " (exchange)" : "");
}

/* Truncate by path (setattr), f: an open of it on this host or NULL. */
static void w_truncate(struct rec *r, const char *path, struct vcfs_file *f, uint64_t size)
{
	struct vcfs_attr in = { .size = size }, out;

	CK(vcfs_fs_setattr(r->fs, ino_of(r->fs, path), &in, VCFS_SET_SIZE, &out));
	if (out.size != size)
		die("truncate %s to %llu gave size %llu", path, (unsigned long long)size,
		    (unsigned long long)out.size);
	m_setsize(&r->m, path, size);
	if (f)
		CK(vcfs_file_fsync(f, 0));
	ckpt(r, "truncate %s %llu", path, (unsigned long long)size);
}

static void w_falloc(struct rec *r, struct vcfs_file *f, const char *path, int mode,
		     uint64_t off, uint64_t len)
{
	CK(vcfs_file_fallocate(f, mode, off, len));
	if (mode & FALLOC_FL_PUNCH_HOLE)
		m_zero(&r->m, path, off, len, 0);
	else if (mode & FALLOC_FL_ZERO_RANGE)
		m_zero(&r->m, path, off, len, !(mode & FALLOC_FL_KEEP_SIZE));
	else if (!(mode & FALLOC_FL_KEEP_SIZE))
		m_zero(&r->m, path, off + len, 0, 1);	/* only the size grows */
	CK(vcfs_file_fsync(f, 0));
	ckpt(r, "fallocate %s mode %#x %llu+%llu", path, (unsigned)mode,
	     (unsigned long long)off, (unsigned long long)len);
}

/* ---- the workloads ---- */

static void wl_create(struct rec *r)
{
	static const size_t len[] = { 0, 1, 700, 4096, 9000, 40000, 70001, 200000 };
	char p[PATHLEN];

	for (unsigned i = 0; i < sizeof(len) / sizeof(len[0]); i++) {
		snprintf(p, sizeof(p), "f%u", i);
		w_create_closed(r, p, len[i]);
	}
	w_mkdir(r, "d");
	w_create_closed(r, "d/g", 3000);
	w_create_closed(r, "d/h", 12345);
}

static void wl_write(struct rec *r)
{
	struct vcfs_file *f = w_create(r, "vm.img", 0);

	for (int i = 0; i < 24; i++) {
		uint64_t off = rng_below(&r->rng, 256 << 10);
		size_t len = 1 + (size_t)rng_below(&r->rng, 16 << 10);
		if (i % 3 == 0) {	/* block-aligned, as a guest's I/O is */
			off &= ~4095ull;
			len = (len + 4095) & ~(size_t)4095;
		}
		w_write(r, f, "vm.img", off, len, 1 + (i & 1));
	}
	CK(vcfs_file_release(f));
	ckpt(r, "release vm.img");
}

static void wl_rename(struct rec *r)
{
	struct vcfs_file *held;

	w_create_closed(r, "a", 5000);
	w_create_closed(r, "b", 9000);
	w_create_closed(r, "c", 100);
	w_create_closed(r, "x", 20000);
	w_mkdir(r, "d");
	w_rename(r, "a", "a2", 0);
	w_rename(r, "c", "d/c", 0);		/* across directories */
	w_rename(r, "d/c", "b", 0);		/* over an existing file */
	w_rename(r, "a2", "x", RENAME_EXCHANGE);
	w_unlink(r, "x");
	CK(vcfs_fs_open(r->fs, ino_of(r->fs, "b"), O_RDWR, 0, &held));
	w_unlink(r, "b");			/* unlinked while open: an orphan */
	w_mkdir(r, "d/e");
	w_create_closed(r, "d/e/y", 7000);
	w_rename(r, "d", "d2", 0);		/* a directory with its subtree */
	w_unlink(r, "d2/e/y");
	w_rmdir(r, "d2/e");
	w_create_closed(r, "z", 30000);
	w_rename(r, "z", "d2/z", RENAME_NOREPLACE);
	w_unlink(r, "a2");
	CK(vcfs_file_release(held));		/* the orphan is freed */
	ckpt(r, "release the orphan");
}

static void wl_truncate(struct rec *r)
{
	static const uint64_t sz[] = { 100000, 5000, 4096, 300000, 77777, 0 };
	struct vcfs_file *f;

	w_create_closed(r, "t", 200000);
	for (unsigned i = 0; i < sizeof(sz) / sizeof(sz[0]); i++)
		w_truncate(r, "t", NULL, sz[i]);
	CK(vcfs_fs_open(r->fs, ino_of(r->fs, "t"), O_RDWR, 0, &f));
	w_write(r, f, "t", 10000, 50000, 1);
	w_truncate(r, "t", f, 30000);		/* while open here */
	CK(vcfs_file_release(f));
	/* a file of large blocks, cut down and emptied */
	f = w_create(r, "big", 0);
	w_write(r, f, "big", 0, 1536 << 10, 1);
	CK(vcfs_file_release(f));
	w_truncate(r, "big", NULL, (1 << 20) + 4097);
	w_truncate(r, "big", NULL, 600000);
	w_truncate(r, "big", NULL, 0);
	w_truncate(r, "big", NULL, 5000);
}

static void wl_falloc(struct rec *r)
{
	struct vcfs_file *f = w_create(r, "fa", 20000);

	w_falloc(r, f, "fa", FALLOC_FL_KEEP_SIZE, 0, 200 << 10);
	w_falloc(r, f, "fa", 0, 200 << 10, 60 << 10);
	w_write(r, f, "fa", 100000, 3000, 1);			/* into unwritten */
	w_falloc(r, f, "fa", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8192, 40000);
	w_falloc(r, f, "fa", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 50001, 500);
	w_falloc(r, f, "fa", FALLOC_FL_ZERO_RANGE, 120000, 10000);
	w_falloc(r, f, "fa", FALLOC_FL_ZERO_RANGE, 250000, 30000);	/* grows */
	w_write(r, f, "fa", 10000, 20000, 1);			/* into the hole */
	w_falloc(r, f, "fa", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1 << 20);
	w_write(r, f, "fa", 4096, 4096, 1);
	CK(vcfs_file_release(f));
	ckpt(r, "release fa");
}

/* Seeded random steps over a few files and a directory. */
static void wl_mix(struct rec *r)
{
	static const char *const pool[] = { "m0", "m1", "m2", "sub/m3", "sub/m4" };
	const unsigned np = sizeof(pool) / sizeof(pool[0]);

	w_mkdir(r, "sub");
	for (int i = 0; i < 48; i++) {
		const char *p = pool[rng_below(&r->rng, np)];
		int exists = m_find(&r->m, p) >= 0;
		unsigned op = (unsigned)rng_below(&r->rng, 6);
		struct vcfs_file *f;
		if (!exists) {
			w_create_closed(r, p, (size_t)rng_below(&r->rng, 60000));
			continue;
		}
		uint64_t size = m_get(&r->m, p)->c->size;
		switch (op) {
		case 0:
		case 1:
			CK(vcfs_fs_open(r->fs, ino_of(r->fs, p), O_RDWR, 0, &f));
			w_write(r, f, p, rng_below(&r->rng, size + 8192),
				1 + (size_t)rng_below(&r->rng, 30000), 1);
			CK(vcfs_file_release(f));
			break;
		case 2:
			w_truncate(r, p, NULL, rng_below(&r->rng, size + 20000));
			break;
		case 3:
			CK(vcfs_fs_open(r->fs, ino_of(r->fs, p), O_RDWR, 0, &f));
			w_falloc(r, f, p, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				 rng_below(&r->rng, size + 1), 1 + rng_below(&r->rng, 20000));
			CK(vcfs_file_release(f));
			break;
		case 4: {
			const char *q = pool[rng_below(&r->rng, np)];
			if (strcmp(p, q))
				w_rename(r, p, q, 0);
			break;
		}
		default:
			w_unlink(r, p);
			break;
		}
	}
}

/* A file growing past one large block: converted from small blocks. */
static void wl_grow(struct rec *r)
{
	struct vcfs_file *f = w_create(r, "g", 0);
	uint64_t off = 0;

	while (off < (1300u << 10)) {
		w_write(r, f, "g", off, 200000, 1);
		off += 200000;
	}
	w_write(r, f, "g", 12345, 5000, 1);		/* inside the first MiB */
	w_write(r, f, "g", (2u << 20) + 100, 3000, 1);	/* past a hole */
	CK(vcfs_file_release(f));
	ckpt(r, "release g");
	/* and a second one converted by a truncate up before any write */
	f = w_create(r, "g2", 70000);
	w_truncate(r, "g2", f, (1u << 20) + 1);
	w_write(r, f, "g2", 1 << 20, 4096, 1);
	CK(vcfs_file_release(f));
}

/* The smallest case of a crash with a file unlinked while open. */
static void wl_orphan(struct rec *r)
{
	struct vcfs_file *f = w_create(r, "o", 9000);

	w_unlink(r, "o");
	CK(vcfs_file_fsync(f, 0));
	ckpt(r, "orphan held open");
	CK(vcfs_file_release(f));	/* the last close frees it */
	ckpt(r, "orphan released");
}

static const struct workload {
	const char *name;
	void (*run)(struct rec *r);
} workloads[] = {
	{ "create", wl_create }, { "write", wl_write }, { "rename", wl_rename },
	{ "truncate", wl_truncate }, { "falloc", wl_falloc }, { "mix", wl_mix },
	{ "grow", wl_grow }, { "orphan", wl_orphan },
};

/* ================= images ================= */

struct images {
	char dir[64];
	char init[96], rec[96], tgt[96];	/* pristine, recorded, crash target */
	struct vcfs_disk *mkfs_log;		/* mkfs's writes (a crash layer) */
	uint64_t hdr_bytes;			/* header region up to the last
						 * heartbeat slot */
	uint32_t psec;
};

static struct vcfs_disk *open_img(const char *path)
{
	struct vcfs_disk_opts o = { .flags = VCFS_DISK_NO_DIRECT,
				    .io_timeout_ms = IO_TIMEOUT_MS };
	struct vcfs_disk *d;
	char uri[128];
	int rc;

	snprintf(uri, sizeof(uri), "file:%s", path);
	rc = vcfs_disk_open(uri, &o, &d);
	if (rc)
		die("open %s: %s", uri, vcfs_strerror(rc));
	return d;
}

static void make_file(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || ftruncate(fd, (off_t)IMG_BYTES))
		die("%s: %s", path, strerror(errno));
	close(fd);
}

/* Format the pristine image, and make the other two copies of it by replaying
 * mkfs's own writes onto empty files. */
static void images_make(struct images *im, const char *base)
{
	struct vcfs_mkfs_params p = { .volume_bytes = IMG_BYTES, .max_hosts = MAX_HOSTS,
				      .io_timeout_ms = IO_TIMEOUT_MS, .label = "crashfs" };
	const char *copies[2] = { im->rec, im->tgt };
	struct vcfs_disk *c, *d;
	struct vcfs_sb sb;
	int rc;

	snprintf(im->dir, sizeof(im->dir), "%s/vcfs-crashfs-XXXXXX", base);
	if (!mkdtemp(im->dir))
		die("mkdtemp %s: %s", im->dir, strerror(errno));
	snprintf(im->init, sizeof(im->init), "%s/init.img", im->dir);
	snprintf(im->rec, sizeof(im->rec), "%s/rec.img", im->dir);
	snprintf(im->tgt, sizeof(im->tgt), "%s/target.img", im->dir);
	make_file(im->init);
	make_file(im->rec);
	make_file(im->tgt);
	CK(vcfs_crash_wrap(open_img(im->init), VCFS_CRASH_LOG, &c));
	rc = vcfs_mkfs(c, &p, VCFS_MKFS_FORCE, &sb);
	if (rc)
		die("mkfs: %s", vcfs_strerror(rc));
	im->hdr_bytes = (sb.hb_start + sb.max_hosts) * VCFS_BLK;
	for (int i = 0; i < 2; i++) {
		d = open_img(copies[i]);
		CK(vcfs_crash_replay(c, d, vcfs_crash_nwrites(c), VCFS_CRASH_KEEP, 0));
		vcfs_disk_close(d);
	}
	im->mkfs_log = c;
}

static void images_remove(struct images *im)
{
	vcfs_disk_close(im->mkfs_log);
	unlink(im->init);
	unlink(im->rec);
	unlink(im->tgt);
	rmdir(im->dir);
}

/* Copy the byte ranges a crash point wrote (logged by layer tw) back from the
 * pristine image into the target. */
struct range { uint64_t off, len; };

static int range_cmp(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

static size_t ranges_of(struct vcfs_disk *tw, struct range **out)
{
	size_t n = vcfs_crash_nwrites(tw), k = 0;
	struct range *r = xmalloc((n ? n : 1) * sizeof(*r));

	for (size_t i = 0; i < n; i++)
		CK(vcfs_crash_write_info(tw, i, &r[i].off, &r[i].len, NULL, NULL));
	qsort(r, n, sizeof(*r), range_cmp);
	for (size_t i = 0; i < n; i++) {
		if (k && r[i].off <= r[k - 1].off + r[k - 1].len) {
			uint64_t end = r[i].off + r[i].len;
			if (end > r[k - 1].off + r[k - 1].len)
				r[k - 1].len = end - r[k - 1].off;
		} else {
			r[k++] = r[i];
		}
	}
	*out = r;
	return k;
}

static void copy_range(struct vcfs_disk *src, struct vcfs_disk *dst, uint64_t off,
		       uint64_t len)
{
	static uint8_t *buf;
	const size_t chunk = 1 << 20;

	if (!buf)
		buf = vcfs_disk_buf_alloc(chunk);
	for (uint64_t o = 0; o < len; o += chunk) {
		size_t l = len - o < chunk ? (size_t)(len - o) : chunk;
		CK(vcfs_disk_read(src, off + o, buf, l));
		CK(vcfs_disk_write(dst, off + o, buf, l, 0));
	}
}

/* Undo ranges r[0..n) and the header and heartbeat region (blocks 0 up to
 * the last heartbeat slot) of the target. */
static void restore(const struct images *im, const struct range *r, size_t n)
{
	struct vcfs_disk *src = open_img(im->init), *dst = open_img(im->tgt);

	copy_range(src, dst, 0, im->hdr_bytes);
	for (size_t i = 0; i < n; i++)
		copy_range(src, dst, r[i].off, r[i].len);
	vcfs_disk_close(src);
	vcfs_disk_close(dst);
}

/* ================= checking one crash image ================= */

struct found {
	char path[PATHLEN];
	int dir;
	uint64_t ino, size;
};

struct walk {
	struct vcfs_fs *fs;
	struct found f[MAXE * 2];
	unsigned n;
	int err;
	char msg[256];
	char prefix[PATHLEN];
};

struct dir_acc {
	struct walk *w;
	char names[MAXE * 2][PATHLEN];
	uint64_t inos[MAXE * 2];
	uint32_t types[MAXE * 2];
	unsigned n;
};

static int walk_fill(void *arg, const char *name, uint64_t ino, uint32_t type,
		     uint64_t next_cookie)
{
	struct dir_acc *a = arg;

	(void)next_cookie;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	if (a->n == MAXE * 2) {
		a->w->err = 1;
		return 0;
	}
	snprintf(a->names[a->n], PATHLEN, "%s", name);
	a->inos[a->n] = ino;
	a->types[a->n] = type;
	a->n++;
	return 0;
}

static void walk_dir(struct walk *w, uint64_t dir, const char *prefix, int depth)
{
	struct dir_acc *a = calloc(1, sizeof(*a));
	int rc;

	if (!a)
		die("out of memory");
	a->w = w;
	rc = vcfs_fs_readdir(w->fs, dir, 0, walk_fill, a);
	if (rc && !w->err) {
		w->err = 1;
		snprintf(w->msg, sizeof(w->msg), "readdir of '%s': %s", prefix,
			 vcfs_strerror(rc));
	}
	for (unsigned i = 0; i < a->n && !w->err; i++) {
		struct found *f;
		struct vcfs_attr at;
		if (w->n == MAXE * 2) {
			w->err = 1;
			snprintf(w->msg, sizeof(w->msg), "more than %d paths", MAXE * 2);
			break;
		}
		f = &w->f[w->n++];
		snprintf(f->path, PATHLEN, "%s%s", prefix, a->names[i]);
		rc = vcfs_fs_getattr(w->fs, a->inos[i], &at);
		if (rc) {
			w->err = 1;
			snprintf(w->msg, sizeof(w->msg), "getattr of '%s' (inode %llu): %s",
				 f->path, (unsigned long long)a->inos[i], vcfs_strerror(rc));
			break;
		}
		f->dir = S_ISDIR(at.mode);
		f->ino = at.ino;
		f->size = at.size;
		if (f->dir != (a->types[i] == DT_DIR) || (!f->dir && !S_ISREG(at.mode))) {
			w->err = 1;
			snprintf(w->msg, sizeof(w->msg), "'%s': entry type %u, inode mode %o",
				 f->path, a->types[i], at.mode);
			break;
		}
		if (f->dir && depth < 8) {
			char np[PATHLEN];
			snprintf(np, sizeof(np), "%s/", f->path);
			walk_dir(w, at.ino, np, depth + 1);
		}
	}
	free(a);
}

/* The path sets of found and of state m are equal. */
static int same_names(const struct walk *w, const struct model *m)
{
	if (w->n != m->n)
		return 0;
	for (unsigned i = 0; i < w->n; i++) {
		int k = m_find(m, w->f[i].path);
		if (k < 0 || m->e[k].dir != w->f[i].dir)
			return 0;
	}
	return 1;
}

static uint8_t byte_at(const struct content *c, uint64_t i)
{
	return c && i < c->size ? c->data[i] : 0;
}

/*
 * The recovered volume (mounted as fs) lies between states a and b.  0 if
 * so; else 1 with why filled.
 */
static int verify(struct vcfs_fs *fs, const struct model *a, const struct model *b,
		  char *why, size_t whylen)
{
	struct walk *w = calloc(1, sizeof(*w));
	uint8_t *buf = NULL;
	size_t bufcap = 0;
	int bad = 0;

	if (!w)
		die("out of memory");
	w->fs = fs;
	walk_dir(w, vcfs_fs_root(fs), "", 0);
	if (w->err) {
		snprintf(why, whylen, "walking the tree: %s", w->msg);
		bad = 1;
		goto out;
	}
	if (!same_names(w, a) && !same_names(w, b)) {
		size_t o = (size_t)snprintf(why, whylen, "paths are neither the state before "
					    "nor after the step in flight; found:");
		for (unsigned i = 0; i < w->n && o < whylen; i++)
			o += (size_t)snprintf(why + o, whylen - o, " %s%s", w->f[i].path,
					      w->f[i].dir ? "/" : "");
		bad = 1;
		goto out;
	}
	for (unsigned i = 0; i < w->n && !bad; i++) {
		const struct found *f = &w->f[i];
		int ka = m_find(a, f->path), kb = m_find(b, f->path);
		const struct content *ca = ka >= 0 ? a->e[ka].c : NULL;
		const struct content *cb = kb >= 0 ? b->e[kb].c : NULL;
		uint64_t sa = ca ? ca->size : 0, sb = cb ? cb->size : 0;
		uint64_t lo = sa < sb ? sa : sb, hi = sa < sb ? sb : sa;
		struct vcfs_file *fh;
		ssize_t got;
		int rc;

		if (f->dir)
			continue;
		if (f->size < lo || f->size > hi) {
			snprintf(why, whylen, "'%s' has size %llu; durable %llu, in flight %llu",
				 f->path, (unsigned long long)f->size, (unsigned long long)sa,
				 (unsigned long long)sb);
			bad = 1;
			break;
		}
		if (f->size + 1 > bufcap) {
			free(buf);
			bufcap = (size_t)f->size + 1;
			buf = xmalloc(bufcap);
		}
		rc = vcfs_fs_open(fs, f->ino, O_RDONLY, 0, &fh);
		if (rc) {
			snprintf(why, whylen, "open '%s': %s", f->path, vcfs_strerror(rc));
			bad = 1;
			break;
		}
		got = vcfs_file_read(fh, 0, buf, (size_t)f->size + 1);
		vcfs_file_release(fh);
		if (got != (ssize_t)f->size) {
			snprintf(why, whylen, "read '%s' (size %llu) gave %zd%s%s", f->path,
				 (unsigned long long)f->size, got, got < 0 ? ": " : "",
				 got < 0 ? vcfs_strerror((int)got) : "");
			bad = 1;
			break;
		}
		if (ca && f->size == sa && !memcmp(buf, ca->data, (size_t)sa))
			continue;
		if (cb && f->size == sb && !memcmp(buf, cb->data, (size_t)sb))
			continue;
		for (uint64_t o = 0; o < f->size; o++) {
			uint8_t x = byte_at(ca, o), y = byte_at(cb, o);
			if (buf[o] == x || buf[o] == y)
				continue;
			uint64_t e = o;
			while (e < f->size && buf[e] != byte_at(ca, e) && buf[e] != byte_at(cb, e))
				e++;
			snprintf(why, whylen, "'%s' (size %llu): bytes %llu..%llu are neither the "
				 "durable data nor the data in flight (byte %llu: 0x%02x, durable "
				 "0x%02x, in flight 0x%02x)", f->path, (unsigned long long)f->size,
				 (unsigned long long)o, (unsigned long long)e - 1,
				 (unsigned long long)o, buf[o], x, y);
			bad = 1;
			break;
		}
	}
out:
	free(buf);
	free(w);
	return bad;
}

/* Codes fsck printed (first column), space separated, in codes. */
static void fsck_codes(const char *out, char *codes, size_t len)
{
	const char *p = out;
	size_t o = 0;

	codes[0] = 0;
	while (p && *p) {
		if (p[0] >= 'A' && p[0] <= 'Z' && p[1] >= 'A' && p[1] <= 'Z' &&
		    p[2] >= '0' && p[2] <= '9' && p[3] >= '0' && p[3] <= '9' && p[4] == ' ' &&
		    o + 6 < len && !strstr(codes, (char[5]){ p[0], p[1], p[2], p[3], 0 })) {
			memcpy(codes + o, p, 4);
			codes[o + 4] = ' ';
			o += 5;
			codes[o] = 0;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
}

static int fsck_run(struct vcfs_disk *d, enum vcfs_fsck_mode mode, char **text)
{
	struct vcfs_fsck_opts o = { .mode = mode, .skip_live_wait = 1 };
	struct vcfs_fsck_stats st;
	size_t len;
	int rc;

	o.out = open_memstream(text, &len);
	if (!o.out)
		die("open_memstream: %s", strerror(errno));
	rc = vcfs_fsck(d, &o, &st);
	fclose(o.out);
	return rc;
}

/*
 * What fsck -y may find on a crashed volume: the crashed host's slot (HB02),
 * its pending transaction (JN01), its orphans (OR01).  Freeing an orphan is
 * reported three times: fsck removes the entry (OR01), then finds the orphan
 * directory's count one too high (DR11 on directory VCFS_ORPHAN_INO(slot))
 * and the freed inode still marked in its bitmap (BT01), which it fixes in
 * later passes.  Those two are accepted only beside an OR01, DR11 only on an
 * orphan directory.  0 if every finding is one of these, else 1 with why.
 */
static int findings_ok(const char *text, const char *codes, char *why, size_t whylen)
{
	int orphans = strstr(codes, "OR01") != NULL;

	for (const char *c = codes; *c; c += 5) {
		if (!strncmp(c, "HB02", 4) || !strncmp(c, "JN01", 4) || !strncmp(c, "OR01", 4))
			continue;
		if (orphans && !strncmp(c, "BT01", 4))
			continue;
		if (orphans && !strncmp(c, "DR11", 4)) {
			const char *p = text;
			int bad = 0;
			while ((p = strstr(p, "\nDR11"))) {
				const char *d = strstr(p, "directory ");
				unsigned long long dn = d ? strtoull(d + 10, NULL, 10) : 0;
				p++;
				/* VCFS_ORPHAN_INO(s) = 16 + s */
				if (dn < 16 || dn >= 16 + MAX_HOSTS)
					bad = 1;
			}
			if (!bad)
				continue;
		}
		snprintf(why, whylen, "fsck -y findings: %s(a crash may only leave HB02, JN01, "
			 "OR01, and DR11 on an orphan directory and BT01 beside OR01)", codes);
		return 1;
	}
	return 0;
}

static const char *const pol_name[] = { "keep", "drop", "tear", "random" };

struct point {
	size_t n;
	enum vcfs_crash_policy p;
	uint64_t seed;
	unsigned k;		/* last durable state */
};

struct run {
	const struct workload *wl;
	struct images im;
	struct vcfs_disk *crash;
	struct state *st;
	unsigned nst;
	int rw_mount;
	unsigned failures;
	double t_fsck, t_mount, t_replay, t_restore;
};

static void report(struct run *ru, const struct point *pt, const char *what,
		   const char *detail, const char *fsck1, const char *fsck2)
{
	const struct state *s = &ru->st[pt->k];

	ru->failures++;
	if (ru->failures > MAX_REPORTED && !verbose)
		return;
	printf("FAIL %s: crash after write %zu of %zu, policy %s", ru->wl->name, pt->n,
	       vcfs_crash_nwrites(ru->crash), pol_name[pt->p]);
	if (pt->p == VCFS_CRASH_RANDOM)
		printf(" seed %llu", (unsigned long long)pt->seed);
	printf(": %s\n", what);
	printf("  durable: state %u \"%s\" (at %zu writes)", pt->k, s->what, s->w);
	if (pt->k + 1 < ru->nst)
		printf("; in flight: state %u \"%s\" (at %zu writes)", pt->k + 1,
		       ru->st[pt->k + 1].what, ru->st[pt->k + 1].w);
	printf("\n");
	if (detail && *detail)
		printf("  %s\n", detail);
	if (fsck1 && *fsck1)
		printf("  fsck -y said:\n%s", fsck1);
	if (fsck2 && *fsck2)
		printf("  fsck -n said:\n%s", fsck2);
	if (loglen)
		printf("  library log:\n%s", logbuf);
	fflush(stdout);
}

/*
 * Build, recover and check crash point pt.  0 pass, 1 fail.
 *
 * The recovered volume is read through a read-write mount as a new host: a
 * read-only mount has no heartbeat, so it cannot tell that the lock entries
 * the crashed host left are stale, and waits 10 T + 2 T on each of them.
 * The target's writes are logged by a crash layer (tw) so that they can be
 * undone; the one write issued after the log is read, the heartbeat slot
 * freed by the unmount, lies in the header region restored as well.
 */
static int check_point(struct run *ru, const struct point *pt)
{
	const struct model *a = &ru->st[pt->k].m;
	const struct model *b = pt->k + 1 < ru->nst ? &ru->st[pt->k + 1].m : a;
	struct vcfs_mount_opts rw = { .host_name = "recoverer" };
	struct vcfs_disk *tw;
	struct vcfs_fs *fs = NULL;
	struct range *rg = NULL;
	size_t nrg = 0;
	char *f1 = NULL, *f2 = NULL, codes[128], why[1024] = "";
	int rc, bad = 1;
	double t0 = now_s(), t1;

	loglen = 0;
	logbuf[0] = 0;
	CK(vcfs_crash_wrap(open_img(ru->im.tgt), VCFS_CRASH_LOG, &tw));
	rc = vcfs_crash_replay(ru->crash, tw, pt->n, pt->p, pt->seed);
	if (rc)
		die("replay of %zu writes: %s", pt->n, vcfs_strerror(rc));
	t1 = now_s();
	ru->t_replay += t1 - t0;
	t0 = t1;

	rc = fsck_run(tw, VCFS_FSCK_REPAIR, &f1);
	fsck_codes(f1, codes, sizeof(codes));
	if (rc != 0 && rc != 1) {
		snprintf(why, sizeof(why), "fsck -y exit %d (findings: %s)", rc, codes);
		report(ru, pt, "recovery by fsck -y failed", why, f1, NULL);
		goto out_tw;
	}
	if (findings_ok(f1, codes, why, sizeof(why))) {
		report(ru, pt, "fsck -y repaired damage", why, f1, NULL);
		goto out_tw;
	}
	rc = fsck_run(tw, VCFS_FSCK_CHECK, &f2);
	ru->t_fsck += now_s() - t0;
	if (rc) {
		snprintf(why, sizeof(why), "fsck -n exit %d after fsck -y", rc);
		report(ru, pt, "not clean after recovery", why, f1, f2);
		goto out_tw;
	}

	t0 = now_s();
	rc = vcfs_fs_mount_disk(tw, &rw, &fs);	/* tw is handed over */
	if (rc) {
		tw = NULL;
		snprintf(why, sizeof(why), "mount as a new host: %s", vcfs_strerror(rc));
		report(ru, pt, "recovered volume does not mount", why, f1, f2);
		goto out;
	}
	if (verify(fs, a, b, why, sizeof(why))) {
		report(ru, pt, "fsync'd data or namespace wrong after recovery", why, NULL, NULL);
		goto out_fs;
	}
	if (ru->rw_mount && pt->p == VCFS_CRASH_KEEP) {
		/* the new host works on the recovered volume */
		struct vcfs_file *fh;
		struct vcfs_attr at;
		rc = vcfs_fs_create(fs, vcfs_fs_root(fs), "after-recovery", 0644, 0, 0,
				    O_RDWR | O_EXCL, &at, &fh);
		if (!rc) {
			int r2;
			rc = vcfs_file_write(fh, 0, "ok", 2) == 2 ? 0 : -EIO;
			r2 = vcfs_file_release(fh);
			rc = rc ? rc : r2;
		}
		if (rc) {
			snprintf(why, sizeof(why), "working on the recovered volume: %s",
				 vcfs_strerror(rc));
			report(ru, pt, "recovered volume is not usable", why, f1, f2);
			goto out_fs;
		}
	}
	nrg = ranges_of(tw, &rg);
	rc = vcfs_fs_unmount(fs);
	fs = NULL;
	if (rc) {
		snprintf(why, sizeof(why), "unmount of the new host: %s", vcfs_strerror(rc));
		report(ru, pt, "recovered volume is not usable", why, f1, f2);
		goto out;
	}
	if (ru->rw_mount) {
		struct vcfs_disk *d = open_img(ru->im.tgt);
		free(f2);
		f2 = NULL;
		rc = fsck_run(d, VCFS_FSCK_CHECK, &f2);
		vcfs_disk_close(d);
		if (rc) {
			snprintf(why, sizeof(why), "fsck -n exit %d after a new host mounted "
				 "the recovered volume", rc);
			report(ru, pt, "not clean after use", why, NULL, f2);
			goto out;
		}
	}
	bad = 0;
	goto out;
out_fs:
	nrg = ranges_of(tw, &rg);
	vcfs_fs_crash(fs);
	goto out;
out_tw:
	nrg = ranges_of(tw, &rg);
	vcfs_disk_close(tw);
out:
	ru->t_mount += now_s() - t0;
	t0 = now_s();
	restore(&ru->im, rg, nrg);
	ru->t_restore += now_s() - t0;
	free(rg);
	free(f1);
	free(f2);
	return bad;
}

/* ================= enumeration ================= */

struct wrec { uint64_t off, len, epoch; int durable; };

/* Bytes of a volatile write a TEAR keeps (disk.h: its first half, in whole
 * physical sectors). */
static uint64_t tear_keeps(const struct wrec *w, uint32_t psec)
{
	uint64_t cut = (w->off + w->len / 2) / psec * psec;

	return cut > w->off ? cut - w->off : 0;
}

struct counts { size_t covered[4], checked[4]; };

static int run_workload(const struct workload *wl, uint64_t seed, unsigned nrandom,
			int rw_mount, int keep, const char *base, long only_n)
{
	struct run ru = { .wl = wl, .rw_mount = rw_mount };
	struct rec r = { .rng = seed };
	struct vcfs_mount_opts mo = { .host_name = "recorder" };
	struct counts cnt = { { 0 }, { 0 } };
	struct wrec *wr;
	size_t nw, images = 0, stopped_at = 0;
	double t_start = now_s(), t_rec;
	int rc;

	images_make(&ru.im, base);
	CK(vcfs_crash_wrap(open_img(ru.im.rec), VCFS_CRASH_LOG, &r.crash));
	ru.crash = r.crash;
	ru.im.psec = vcfs_disk_info(r.crash)->psec;
	rc = vcfs_fs_mount_disk(r.crash, &mo, &r.fs);
	if (rc)
		die("mount: %s", vcfs_strerror(rc));
	/* state 0: the empty volume, durable from the start */
	ckpt(&r, "mounted, empty");
	r.st[0].w = 0;
	wl->run(&r);
	ckpt(&r, "end of workload");
	nw = vcfs_crash_nwrites(r.crash);
	t_rec = now_s() - t_start;
	ru.st = r.st;
	ru.nst = r.nst;

	wr = xmalloc((nw ? nw : 1) * sizeof(*wr));
	for (size_t i = 0; i < nw; i++)
		CK(vcfs_crash_write_info(r.crash, i, &wr[i].off, &wr[i].len, &wr[i].epoch,
					 &wr[i].durable));

	if (verbose > 1)
		for (size_t i = 0; i < nw; i++)
			fprintf(stderr, "  write %zu: block %llu +%llu bytes, epoch %llu%s\n", i,
				(unsigned long long)(wr[i].off / 4096),
				(unsigned long long)wr[i].len, (unsigned long long)wr[i].epoch,
				wr[i].durable ? ", durable" : "");
	/* every write index, every policy; the fs stays mounted (idle on its
	 * frozen clock) so that its crash layer keeps the log */
	unsigned k = 0;
	size_t epoch_start = 0;
	for (size_t n = 0; n <= nw && ru.failures < max_failures; n++) {
		uint64_t vol = 0, kept_keep = 0, kept_tear = 0;
		struct point pt = { .n = n };
		while (k + 1 < r.nst && r.st[k + 1].w < n)
			k++;
		pt.k = k;
		if (n && (n == 1 || wr[n - 1].epoch != wr[n - 2].epoch))
			epoch_start = n - 1;
		/* what the policies do to the crash epoch's volatile writes */
		for (size_t i = epoch_start; n && i < n; i++) {
			if (wr[i].durable)
				continue;
			vol++;
			kept_keep += wr[i].len;
			kept_tear += tear_keeps(&wr[i], ru.im.psec);
		}
		if (only_n >= 0 && n != (size_t)only_n)
			continue;
		for (int p = VCFS_CRASH_KEEP; p <= VCFS_CRASH_RANDOM; p++) {
			unsigned reps = p == VCFS_CRASH_RANDOM ? nrandom : 1;
			for (unsigned s = 0; s < reps && ru.failures < max_failures; s++) {
				int same = 0;
				pt.p = (enum vcfs_crash_policy)p;
				pt.seed = p == VCFS_CRASH_RANDOM ? seed + s + 1 : 0;
				cnt.covered[p]++;
				if (!vol && p != VCFS_CRASH_KEEP)
					same = 1;	/* nothing volatile: one image */
				if (p == VCFS_CRASH_TEAR && (kept_tear == 0 || kept_tear == kept_keep))
					same = 1;	/* = drop, or = keep */
				if (same)
					continue;
				cnt.checked[p]++;
				images++;
				if (check_point(&ru, &pt) && !stopped_at)
					stopped_at = n;
			}
		}
		if (verbose && n % 50 == 0)
			fprintf(stderr, "  %s: %zu/%zu writes, %zu images, %.1f s\n", wl->name, n,
				nw, images, now_s() - t_start);
	}
	vcfs_fs_crash(r.fs);	/* closes the crash layer */

	size_t total = cnt.covered[0] + cnt.covered[1] + cnt.covered[2] + cnt.covered[3];
	printf("crashfs: %s: %zu writes recorded in %.2f s, %u durable states; crash points "
	       "%zu (keep %zu, drop %zu, tear %zu, random %zu = %u seeds x %zu), %zu distinct "
	       "images recovered and checked (keep %zu, drop %zu, tear %zu, random %zu); "
	       "%u failed%s; seed %llu; %.1f s (replay %.1f, fsck %.1f, mount+verify %.1f, "
	       "restore %.1f)\n",
	       wl->name, nw, t_rec, r.nst, total, cnt.covered[0], cnt.covered[1],
	       cnt.covered[2], cnt.covered[3], nrandom, nw + 1, images, cnt.checked[0],
	       cnt.checked[1], cnt.checked[2], cnt.checked[3], ru.failures,
	       ru.failures >= max_failures ? " (stopped early)" : "",
	       (unsigned long long)seed, now_s() - t_start, ru.t_replay, ru.t_fsck,
	       ru.t_mount, ru.t_restore);
	fflush(stdout);
	for (unsigned i = 0; i < r.nst; i++)
		m_free(&r.st[i].m);
	free(r.st);
	m_free(&r.m);
	free(wr);
	if (keep)
		fprintf(stderr, "crashfs: images kept in %s\n", ru.im.dir);
	else
		images_remove(&ru.im);
	return ru.failures ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: crashfs -w WORKLOAD|all [-s SEED] [-r NRANDOM] [-m] [-v] [-k] "
		"[-d DIR] [-n WRITES] [-F MAXFAIL]\n  workloads:");
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
		fprintf(stderr, " %s", workloads[i].name);
	fprintf(stderr, "\n  -m: the new host also writes (KEEP), fsck -n after its unmount"
		"\n  -k: keep the images\n  -n: only the crash after that many writes\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *wname = NULL, *base = "/dev/shm";
	uint64_t seed = 1;
	unsigned nrandom = 2;
	int rw_mount = 0, keep = 0, opt, fails = 0, found = 0;
	long only_n = -1;

	while ((opt = getopt(argc, argv, "w:s:r:mvkd:n:F:")) != -1) {
		switch (opt) {
		case 'w': wname = optarg; break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'r': nrandom = (unsigned)atoi(optarg); break;
		case 'm': rw_mount = 1; break;
		case 'v': verbose++; break;
		case 'k': keep = 1; break;
		case 'd': base = optarg; break;
		case 'n': only_n = atol(optarg); break;
		case 'F': max_failures = (unsigned)atoi(optarg); break;
		default: usage();
		}
	}
	if (!wname || optind != argc)
		usage();
	if (access(base, W_OK))
		base = "/var/tmp";
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* The file backend writes zeros from a fresh 4 MiB buffer where the
	 * filesystem (tmpfs) cannot zero a range; from the heap, that buffer
	 * is not faulted in again at every call of every replay. */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 512 << 20);
	vcfs_log_set_sink(log_sink, NULL);
	vcfs_log_set_level(verbose > 1 ? VCFS_LOG_DEBUG : VCFS_LOG_INFO);
	frozen_ns = vcfs_now_ns();
	vcfs_clock_set(frozen_clock, NULL);
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++) {
		if (strcmp(wname, "all") && strcmp(wname, workloads[i].name))
			continue;
		found = 1;
		fails += run_workload(&workloads[i], seed, nrandom, rw_mount, keep, base, only_n);
	}
	if (!found)
		usage();
	return fails ? 1 : 0;
}
