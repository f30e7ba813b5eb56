/*
 * crashmh.c - crash points across hosts (issue 7): three hosts work on one
 * datastore at the same time, each through its own crash-recording disk
 * handle; crash images are built from every host's write stream cut at
 * prefixes that the flushes and the lock protocol allow together, and a
 * fresh host recovers each of them as a survivor would.
 *
 *   crashmh [-s SEED] [-S STEPS] [-R RANDOM] [-P PERHOST] [-F MAXFAIL] [-v]
 *           [-x POINT]
 *
 * 1. Record (one process, one thread).  The volume is an in-memory store
 *    (disk/mem.h), 64 MiB, 4 slots, T = 200 ms.  Hosts h0, h1, h2 each mount
 *    it through vcfs_mem_open + vcfs_crash_wrap(LOG) + vcfs_fs_mount_disk: one
 *    struct vcfs_fs per host, one log per host.  Time is driven
 *    (vcfs_clock_set, vcfs_clock_set_sleep, vcfs_hb_set_driver): no
 *    heartbeat thread runs, so the logs are the same in every run of a seed.
 *    The main thread runs the workload as steps, each one operation of one
 *    host: mkdir of the shared directory s and of each host's own dH; then
 *    seeded random steps -- create (write + fsync + close) in s or the
 *    host's own directory, overwrite a closed file of any host (open, write,
 *    fsync, close), rename into s or the host's directory, unlink, and a
 *    hand-over file s/hand kept open (EXCL lock) by one host over several
 *    steps (write + fsync), closed, then opened by another host.  A model
 *    keeps every version of every file with the host and the log positions
 *    of the step that made it: started at `from`, durable at `w` (the
 *    host's writes logged when the step returned).
 *
 * 2. Order.  Steps are serial, so the recording has one global order of
 *    segments (host, log range).  Synchronisation edges: a compare-and-write
 *    on a record block (lock records, heartbeat slots; a durable one-sector
 *    record there) by host B at B's log index j reads what the previous
 *    record of that sector wrote; if that was host A's record i, then any
 *    crash image holding B's record j holds A's record i: n_B > j => n_A > i.
 *    This is the lock protocol's guarantee (a host's writes before its
 *    release precede the other host's writes after its acquire).
 *
 * 3. Crash points: a prefix n_h of every host's log, closed under the edges,
 *    and a policy (keep, drop, tear, random) for the volatile writes of every
 *    host's crash epoch (crash.c's model per host: a host's writes are
 *    durable after its own flush).  Enumerated:
 *      a. every prefix of the recorded global order (each write of each host),
 *         with keep, drop, tear (when it differs) and one random seed;
 *      b. every prefix of each host with the other hosts at the smallest
 *         prefixes the edges allow (they crashed as early as possible), keep
 *         and random;
 *      c. -R random vectors (each host's prefix uniform, then closed upward
 *         or downward under the edges at random), random policy.
 *    Each point is replayed onto a copy of the formatted image by applying
 *    the global segments in recorded order, each cut at its host's prefix
 *    (vcfs_crash_replay_range): for a vector closed under the edges this is
 *    the image of every interleaving consistent with them.
 *
 * 4. Recover and check.  A fresh host "survivor" mounts the image, its
 *    monitor is ticked while the driven clock passes D: it recovers every
 *    dead slot (claims by CAS, replays the journal, bumps the generation,
 *    which breaks the locks).  Then, through the survivor: the namespace and
 *    every file must lie between versions: for each file, k_min = its last
 *    version durable in the image (w < n_host), k_max = its last version
 *    whose step had started (from < n_host); its path is one of those
 *    versions' paths (or absent if one of them is absent), its size between
 *    theirs, each byte equals that byte in one of them; no path that no
 *    version explains.  So every acknowledged fsync (and every committed
 *    metadata operation) of every host is there byte for byte.  The
 *    survivor then unmounts, and fsck -n must be clean but for OR01 and its
 *    follow-ups (the codes tests/fs_crash.sh allows after recovery; HB02 and
 *    JN01 are not allowed here: the survivor recovered every slot).
 *
 * Last line: "crashmh: ... N crash points ..."; exit 0 all passed, 1 some
 * failed (the first are described with their point number: -x POINT repeats
 * that point alone), 2 setup error.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common/clock.h"
#include "common/log.h"
#include "disk/disk.h"
#include "disk/mem.h"
#include "fs/fs.h"
#include "fs/fs_int.h"
#include "fs/fsck.h"
#include "fs/mkfs.h"
#include "lock/lock.h"

#define IMG_BYTES	(64ull << 20)
#define NHOST		3
#define MAX_HOSTS	4
#define IO_TIMEOUT_MS	200
#define MAXF		96
#define MAXV		24
#define PATHLEN		40
#define MAXSEG		4096
#define MAX_REPORTED	3

static int verbose;
static unsigned max_failures = 10;

__attribute__((noreturn, format(printf, 1, 2)))
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "crashmh: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

#define CK(x) do { int rc_ = (x); if (rc_) die("%s:%d: %s: %s", __FILE__, __LINE__, #x, \
					      vcfs_strerror(rc_)); } while (0)

static void *xcalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (!p)
		die("out of memory");
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

/* ---- driven time ---- */

static _Atomic uint64_t sim_now = 1000 * VCFS_NS_PER_S;

static uint64_t sim_clock(void *arg)
{
	(void)arg;
	return sim_now;
}

static pthread_t main_thread;
static struct vcfs_hb *joined[16];
static uint64_t last_renew;

/* Backoff sleeps of the main thread advance the driven clock (and let a
 * little real time pass); those of the
 * survivor's orphan worker (a real thread, waiting for a lock that recovery
 * is about to free) sleep for real, briefly, and leave the clock alone: the
 * main thread alone drives time, so the survivor's lease stays where its
 * renewal ticks put it. */
static void sim_sleep(void *arg, uint64_t ns)
{
	(void)arg;
	if (pthread_equal(pthread_self(), main_thread)) {
		/* a waiter is waiting for a background thread of another host
		 * (its lock cache gives records back on the driven clock): let
		 * real time pass too, a twentieth of it, so that thread runs */
		uint64_t real = ns / 20 < 5 * VCFS_NS_PER_MS ? ns / 20 : 5 * VCFS_NS_PER_MS;
		nanosleep(&(struct timespec){ 0, (long)real }, NULL);
		sim_now += ns;
		/* the heartbeat threads' part: renew every R of driven time */
		if (sim_now - last_renew >= IO_TIMEOUT_MS * VCFS_NS_PER_MS) {
			last_renew = sim_now;
			for (int i = 0; i < 16; i++)
				if (joined[i])
					vcfs_hb_renew_tick(joined[i]);
		}
	} else {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

static void hb_driver(void *arg, struct vcfs_hb *hb, int on)
{
	(void)arg;
	for (int i = 0; i < 16; i++) {
		if (on && !joined[i]) {
			joined[i] = hb;
			return;
		}
		if (!on && joined[i] == hb) {
			joined[i] = NULL;
			return;
		}
	}
	if (on)
		die("more than 16 heartbeats joined");
}

/* library messages of the current point, printed on failure */
static char logbuf[1 << 15];
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

/* ---- the model ---- */

struct version {
	char path[PATHLEN];	/* "" = absent */
	int dir;
	uint32_t size;
	uint8_t *data;		/* shared between versions when unchanged */
	int host;		/* -1: initial (durable from the start) */
	size_t from, w;		/* the host's log length at the step's start / end */
};

struct mfile {
	struct version v[MAXV];
	unsigned nv;
	int open_by;		/* host holding it open (s/hand), -1 */
};

static struct mfile files[MAXF];
static unsigned nfiles;

struct host {
	struct vcfs_fs *fs;
	struct vcfs_disk *crash;
	struct vcfs_file *hand;	/* s/hand while this host holds it */
};

static struct host hosts[NHOST];

struct seg { int h; size_t from, to; };
static struct seg segs[MAXSEG];
static unsigned nseg;

static struct version *cur(unsigned f)
{
	return &files[f].v[files[f].nv - 1];
}

static unsigned file_new(int dir)
{
	if (nfiles == MAXF)
		die("too many files");
	files[nfiles].nv = 1;
	files[nfiles].open_by = -1;
	files[nfiles].v[0] = (struct version){ .dir = dir, .host = -1 };
	return nfiles++;
}

/* A new version of f by host h, started at log position from. */
static struct version *vers_new(unsigned f, int h, size_t from)
{
	struct mfile *m = &files[f];

	if (m->nv == MAXV)
		die("too many versions of a file");
	m->v[m->nv] = m->v[m->nv - 1];
	m->v[m->nv].host = h;
	m->v[m->nv].from = from;
	return &m->v[m->nv++];
}

static size_t logn(int h)
{
	return vcfs_crash_nwrites(hosts[h].crash);
}

static size_t nlog[NHOST];

static size_t nlog_of(int h)
{
	return nlog[h];
}

/* ---- workload steps ---- */

static uint64_t lookup_ino(struct vcfs_fs *fs, const char *path, const char **name)
{
	char comp[PATHLEN];
	const char *slash = strchr(path, '/');
	struct vcfs_attr a;
	uint64_t dir = vcfs_fs_root(fs);

	if (!slash) {
		*name = path;
		return dir;
	}
	snprintf(comp, sizeof(comp), "%.*s", (int)(slash - path), path);
	CK(vcfs_fs_lookup(fs, dir, comp, &a));
	*name = slash + 1;
	return a.ino;
}

static uint64_t ino_of(struct vcfs_fs *fs, const char *path)
{
	const char *name;
	uint64_t dir = lookup_ino(fs, path, &name);
	struct vcfs_attr a;

	CK(vcfs_fs_lookup(fs, dir, name, &a));
	return a.ino;
}

/* Steps mark nothing: the segments are built after recording from the
 * crash layers' process-wide order stamps (vcfs_crash_write_order), which
 * also place the writes of the fs's background threads (lock cache, orphan
 * worker) where they happened. */
static void seg_close(int h, size_t from)
{
	(void)h;
	(void)from;
}

static void segs_build(void)
{
	size_t next[NHOST] = { 0 };

	for (;;) {
		int best = -1;
		uint64_t bo = UINT64_MAX, o;
		for (int h = 0; h < NHOST; h++) {
			if (next[h] >= nlog_of(h))
				continue;
			CK(vcfs_crash_write_order(hosts[h].crash, next[h], &o));
			if (o < bo) {
				bo = o;
				best = h;
			}
		}
		if (best < 0)
			break;
		if (nseg && segs[nseg - 1].h == best && segs[nseg - 1].to == next[best]) {
			segs[nseg - 1].to++;
		} else {
			if (nseg == MAXSEG)
				die("too many segments");
			segs[nseg++] = (struct seg){ best, next[best], next[best] + 1 };
		}
		next[best]++;
	}
}

static void fill(uint64_t *rng, uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(1 + rng_below(rng, 255));
}

/* Write len random bytes at off into f's new version v (file open as fh). */
static void do_write(uint64_t *rng, struct vcfs_file *fh, struct version *v, uint32_t off,
		     uint32_t len)
{
	uint32_t nsize = off + len > v->size ? off + len : v->size;
	uint8_t *nd = xcalloc(nsize);
	ssize_t k;

	if (v->size)
		memcpy(nd, v->data, v->size);
	fill(rng, nd + off, len);
	k = vcfs_file_write(fh, off, nd + off, len);
	if (k != (ssize_t)len)
		die("write %s %u@%u: %s", v->path, len, off,
		    k < 0 ? vcfs_strerror((int)k) : "short");
	CK(vcfs_file_fsync(fh, 0));
	v->data = nd;		/* old data stays with the older version */
	v->size = nsize;
}

static unsigned name_seq;

/*
 * Where metadata ops commit in groups (vcfs_fs_sync exists), a step that
 * made a metadata change is durable after vcfs_fs_sync; where they commit
 * synchronously (no vcfs_fs_sync), when the op returns.  Weak, so that this
 * test builds and means the same against either.
 */
extern int vcfs_fs_sync(struct vcfs_fs *fs) __attribute__((weak));

static void meta_sync(int h)
{
	if (vcfs_fs_sync)
		CK(vcfs_fs_sync(hosts[h].fs));
}

static void step_mkdir(int h, const char *path)
{
	struct host *H = &hosts[h];
	size_t from = logn(h);
	unsigned f = file_new(1);
	struct version *v = vers_new(f, h, from);
	const char *name;
	uint64_t dir = lookup_ino(H->fs, path, &name);
	struct vcfs_attr a;

	CK(vcfs_fs_mkdir(H->fs, dir, name, 0755, 0, 0, &a));
	meta_sync(h);
	snprintf(v->path, sizeof(v->path), "%s", path);
	v->w = logn(h);
	seg_close(h, from);
}

static void step_create(uint64_t *rng, int h, const char *path)
{
	struct host *H = &hosts[h];
	size_t from = logn(h);
	unsigned f = file_new(0);
	struct version *v = vers_new(f, h, from);
	const char *name;
	uint64_t dir = lookup_ino(H->fs, path, &name);
	struct vcfs_attr a;
	struct vcfs_file *fh;

	CK(vcfs_fs_create(H->fs, dir, name, 0644, 0, 0, O_RDWR | O_EXCL, &a, &fh));
	snprintf(v->path, sizeof(v->path), "%s", path);
	do_write(rng, fh, v, 0, 1 + (uint32_t)rng_below(rng, 20000));
	if (!strcmp(path, "s/hand")) {
		H->hand = fh;
		files[f].open_by = h;
	} else {
		CK(vcfs_file_release(fh));
	}
	v->w = logn(h);
	seg_close(h, from);
}

/* Any closed regular file, or -1. */
static int pick_file(uint64_t *rng)
{
	unsigned c[MAXF], n = 0;

	for (unsigned f = 0; f < nfiles; f++)
		if (!cur(f)->dir && cur(f)->path[0] && files[f].open_by < 0 &&
		    strcmp(cur(f)->path, "s/hand"))
			c[n++] = f;
	return n ? (int)c[rng_below(rng, n)] : -1;
}

static void step_overwrite(uint64_t *rng, int h, unsigned f)
{
	struct host *H = &hosts[h];
	size_t from = logn(h);
	struct version *v = vers_new(f, h, from);
	struct vcfs_file *fh;
	uint32_t off = (uint32_t)rng_below(rng, v->size + 4096);

	CK(vcfs_fs_open(H->fs, ino_of(H->fs, v->path), O_RDWR, 0, &fh));
	do_write(rng, fh, v, off, 1 + (uint32_t)rng_below(rng, 12000));
	CK(vcfs_file_release(fh));
	v->w = logn(h);
	seg_close(h, from);
}

static void step_rename(int h, unsigned f, const char *to)
{
	struct host *H = &hosts[h];
	size_t from = logn(h);
	struct version *v = vers_new(f, h, from);
	const char *n1, *n2;
	uint64_t d1 = lookup_ino(H->fs, v->path, &n1), d2 = lookup_ino(H->fs, to, &n2);

	CK(vcfs_fs_rename(H->fs, d1, n1, d2, n2, 0));
	meta_sync(h);
	snprintf(v->path, sizeof(v->path), "%s", to);
	v->w = logn(h);
	seg_close(h, from);
}

static void step_unlink(int h, unsigned f)
{
	struct host *H = &hosts[h];
	size_t from = logn(h);
	struct version *v = vers_new(f, h, from);
	const char *name;
	uint64_t dir = lookup_ino(H->fs, v->path, &name);

	CK(vcfs_fs_unlink(H->fs, dir, name));
	meta_sync(h);
	v->path[0] = 0;
	v->size = 0;
	v->w = logn(h);
	seg_close(h, from);
}

static int hand_file = -1;

/* The hand-over file: its holder writes (or closes it); else a host opens it. */
static void step_hand(uint64_t *rng, int h)
{
	struct mfile *m = &files[hand_file];
	int holder = m->open_by;
	size_t from;

	if (holder >= 0 && (holder != h || rng_below(rng, 3) == 0)) {
		/* the holder releases (the lock goes back to FREE) */
		from = logn(holder);
		CK(vcfs_file_release(hosts[holder].hand));
		hosts[holder].hand = NULL;
		m->open_by = -1;
		seg_close(holder, from);
		if (verbose)
			fprintf(stderr, "  h%d releases s/hand\n", holder);
		return;
	}
	from = logn(h);
	if (holder < 0) {
		CK(vcfs_fs_open(hosts[h].fs, ino_of(hosts[h].fs, "s/hand"), O_RDWR, 0,
				&hosts[h].hand));
		m->open_by = h;
		if (verbose)
			fprintf(stderr, "  h%d takes s/hand\n", h);
	}
	struct version *v = vers_new((unsigned)hand_file, h, from);
	do_write(rng, hosts[h].hand, v, (uint32_t)rng_below(rng, v->size + 2048),
		 1 + (uint32_t)rng_below(rng, 9000));
	v->w = logn(h);
	seg_close(h, from);
}

static void record(uint64_t seed, unsigned nsteps)
{
	uint64_t rng = seed;
	char p[PATHLEN];

	step_mkdir(0, "s");
	for (int h = 0; h < NHOST; h++) {
		snprintf(p, sizeof(p), "d%d", h);
		step_mkdir(h, p);
	}
	step_create(&rng, 0, "s/hand");
	hand_file = (int)nfiles - 1;
	for (unsigned i = 0; i < nsteps; i++) {
		int h = (int)rng_below(&rng, NHOST), f = pick_file(&rng);
		unsigned k = (unsigned)rng_below(&rng, 10);
		if (k < 3 || f < 0) {
			snprintf(p, sizeof(p), "%s/f%u", rng_below(&rng, 2) ? "s" : (char[3]){ 'd',
				 (char)('0' + h), 0 }, name_seq++);
			step_create(&rng, h, p);
		} else if (k < 5) {
			step_overwrite(&rng, h, (unsigned)f);
		} else if (k < 7) {
			snprintf(p, sizeof(p), "%s/r%u", rng_below(&rng, 2) ? "s" : (char[3]){ 'd',
				 (char)('0' + h), 0 }, name_seq++);
			step_rename(h, (unsigned)f, p);
		} else if (k < 8) {
			step_unlink(h, (unsigned)f);
		} else {
			step_hand(&rng, h);
		}
	}
	if (files[hand_file].open_by >= 0)
		step_hand(&rng, (files[hand_file].open_by + 1) % NHOST);	/* release */
}

/* ---- synchronisation edges and crash vectors ---- */

struct edge { int a; size_t i; int b; size_t j; };	/* n_b > j => n_a > i */
static struct edge *edges;
static size_t nedges;
static struct vcfs_sb sb;

static int is_record_block(uint64_t blk)
{
	if (blk == 1 || (blk >= sb.hb_start && blk < sb.hb_start + sb.max_hosts))
		return 1;
	if (blk >= sb.cmeta_start && blk < sb.inode_start)
		return (blk - sb.cmeta_start) % 2 == 0;
	if (blk >= sb.inode_start && blk < sb.inode_start + 2 * sb.ninodes)
		return (blk - sb.inode_start) % 2 == 0;
	return 0;
}

static void edges_build(void)
{
	/* last record per sector: (host, index), via a small open hash */
	size_t cap = 1 << 16;
	struct { uint64_t off; int h; size_t i; int used; } *last = xcalloc(cap * sizeof(*last));
	size_t cape = 256;

	edges = xcalloc(cape * sizeof(*edges));
	for (unsigned s = 0; s < nseg; s++) {
		for (size_t i = segs[s].from; i < segs[s].to; i++) {
			uint64_t off, len, ep;
			int dur, h = segs[s].h;
			size_t k;
			CK(vcfs_crash_write_info(hosts[h].crash, i, &off, &len, &ep, &dur));
			if (!dur || len != 512 || !is_record_block(off / VCFS_BLK))
				continue;
			k = (size_t)(off / 512 * 0x9e3779b1u) % cap;
			while (last[k].used && last[k].off != off)
				k = (k + 1) % cap;
			if (last[k].used && last[k].h != h) {
				if (nedges == cape) {
					cape *= 2;
					edges = realloc(edges, cape * sizeof(*edges));
					if (!edges)
						die("out of memory");
				}
				edges[nedges++] = (struct edge){ last[k].h, last[k].i, h, i };
			}
			last[k].used = 1;
			last[k].off = off;
			last[k].h = h;
			last[k].i = i;
		}
	}
	free(last);
}

/* Close n under the edges: up raises the source host, else lowers the sink. */
static void close_vec(size_t *n, int up)
{
	for (int changed = 1; changed;) {
		changed = 0;
		for (size_t e = 0; e < nedges; e++) {
			const struct edge *E = &edges[e];
			if (n[E->b] > E->j && n[E->a] <= E->i) {
				if (up)
					n[E->a] = E->i + 1;
				else
					n[E->b] = E->j;
				changed = 1;
			}
		}
	}
}

static int consistent(const size_t *n)
{
	for (size_t e = 0; e < nedges; e++)
		if (n[edges[e].b] > edges[e].j && n[edges[e].a] <= edges[e].i)
			return 0;
	return 1;
}

/* ---- checking one point ---- */

static const char *const pol_name[] = { "keep", "drop", "tear", "random" };

struct point {
	size_t n[NHOST];
	enum vcfs_crash_policy p;
	uint64_t seed;
	char kind;		/* 'g' global prefix, 'h' per host, 'r' random */
};

static unsigned npoints, nfail, nchecked;
static long only_point = -1;

static void replay(const struct point *pt)
{
	struct vcfs_disk *t;

	CK(vcfs_mem_restore("tgt", "init"));
	CK(vcfs_mem_open("tgt", 99, NULL, &t));
	for (unsigned s = 0; s < nseg; s++) {
		size_t n = pt->n[segs[s].h], to = segs[s].to < n ? segs[s].to : n;
		if (segs[s].from >= to)
			continue;
		CK(vcfs_crash_replay_range(hosts[segs[s].h].crash, t, n, segs[s].from, to, pt->p,
					   pt->seed + (uint64_t)segs[s].h * 7919));
	}
	vcfs_disk_close(t);
}

/* Found on the image. */
struct found { char path[PATHLEN]; int dir; uint64_t ino; };

static int walk(struct vcfs_fs *fs, uint64_t dir, const char *prefix, struct found *fo,
		unsigned *nf, char *why, size_t wl);

struct wctx { struct found *fo; unsigned *nf; const char *prefix; int err; };

static int walk_fill(void *arg, const char *name, uint64_t ino, uint32_t type, uint64_t next)
{
	struct wctx *c = arg;

	(void)next;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	if (*c->nf >= MAXF * 2) {
		c->err = 1;
		return 0;
	}
	snprintf(c->fo[*c->nf].path, PATHLEN, "%s%s", c->prefix, name);
	c->fo[*c->nf].dir = type == 4;	/* DT_DIR */
	c->fo[*c->nf].ino = ino;
	(*c->nf)++;
	return 0;
}

static int walk(struct vcfs_fs *fs, uint64_t dir, const char *prefix, struct found *fo,
		unsigned *nf, char *why, size_t wl)
{
	unsigned first = *nf;
	struct wctx c = { fo, nf, prefix, 0 };
	int rc = vcfs_fs_readdir(fs, dir, 0, walk_fill, &c);

	if (rc || c.err) {
		snprintf(why, wl, "readdir '%.40s': %s", prefix, rc ? vcfs_strerror(rc) : "too many");
		return 1;
	}
	for (unsigned i = first, end = *nf; i < end; i++) {
		char p[PATHLEN];
		if (!fo[i].dir || prefix[0])
			continue;
		snprintf(p, sizeof(p), "%s/", fo[i].path);
		if (walk(fs, fo[i].ino, p, fo, nf, why, wl))
			return 1;
	}
	return 0;
}

static int durable(const struct version *v, const size_t *n)
{
	return v->host < 0 || v->w < n[v->host];
}

static int started(const struct version *v, const size_t *n)
{
	return v->host < 0 || v->from < n[v->host];
}

/* The range [lo, hi] of acceptable versions of file f at vector n. */
static void vrange(unsigned f, const size_t *n, unsigned *lo, unsigned *hi)
{
	*lo = 0;
	*hi = 0;
	for (unsigned j = 0; j < files[f].nv; j++) {
		if (durable(&files[f].v[j], n))
			*lo = j;
		if (started(&files[f].v[j], n))
			*hi = j;
	}
	if (*hi < *lo)
		*hi = *lo;
}

static int verify(struct vcfs_fs *fs, const size_t *n, char *why, size_t wl)
{
	static struct found fo[MAXF * 2];
	unsigned nf = 0, lo[MAXF], hi[MAXF], seen[MAXF] = { 0 };
	uint8_t *buf = NULL;
	int bad = 0;

	if (walk(fs, vcfs_fs_root(fs), "", fo, &nf, why, wl))
		return 1;
	for (unsigned f = 0; f < nfiles; f++)
		vrange(f, n, &lo[f], &hi[f]);
	for (unsigned i = 0; i < nf && !bad; i++) {
		int match = -1;
		for (unsigned f = 0; f < nfiles && match < 0; f++)
			for (unsigned j = lo[f]; j <= hi[f]; j++)
				if (!strcmp(files[f].v[j].path, fo[i].path)) {
					match = (int)f;
					break;
				}
		if (match < 0) {
			snprintf(why, wl, "'%.40s' is on the image but no version of any file "
				 "in flight or durable has that path", fo[i].path);
			bad = 1;
			break;
		}
		if (seen[match]++) {
			snprintf(why, wl, "'%.40s': a second path for one file (rename not atomic)",
				 fo[i].path);
			bad = 1;
			break;
		}
		if (fo[i].dir != files[match].v[0].dir) {
			snprintf(why, wl, "'%.40s': wrong type", fo[i].path);
			bad = 1;
			break;
		}
		if (fo[i].dir)
			continue;
		/* contents: size and every byte between the acceptable versions */
		struct vcfs_attr at;
		struct vcfs_file *fh;
		uint32_t minsz = UINT32_MAX, maxsz = 0;
		ssize_t got;
		CK(vcfs_fs_getattr(fs, fo[i].ino, &at));
		for (unsigned j = lo[match]; j <= hi[match]; j++) {
			const struct version *v = &files[match].v[j];
			uint32_t sz = v->path[0] ? v->size : 0;
			minsz = sz < minsz ? sz : minsz;
			maxsz = sz > maxsz ? sz : maxsz;
		}
		if (at.size < minsz || at.size > maxsz) {
			snprintf(why, wl, "'%.40s': size %llu outside [%u, %u] (versions %u..%u)",
				 fo[i].path, (unsigned long long)at.size, minsz, maxsz, lo[match],
				 hi[match]);
			bad = 1;
			break;
		}
		buf = realloc(buf, (size_t)at.size + 1);
		if (!buf)
			die("out of memory");
		int rc = vcfs_fs_open(fs, fo[i].ino, O_RDONLY, 0, &fh);
		if (rc) {
			snprintf(why, wl, "open '%.40s': %s", fo[i].path, vcfs_strerror(rc));
			bad = 1;
			break;
		}
		got = vcfs_file_read(fh, 0, buf, (size_t)at.size + 1);
		vcfs_file_release(fh);
		if (got != (ssize_t)at.size) {
			snprintf(why, wl, "read '%.40s': %zd of %llu bytes", fo[i].path, got,
				 (unsigned long long)at.size);
			bad = 1;
			break;
		}
		for (uint64_t b = 0; b < at.size && !bad; b++) {
			int ok = 0;
			for (unsigned j = lo[match]; j <= hi[match] && !ok; j++) {
				const struct version *v = &files[match].v[j];
				uint8_t want = v->path[0] && b < v->size ? v->data[b] : 0;
				ok = buf[b] == want;
			}
			if (!ok) {
				snprintf(why, wl, "'%.40s': byte %llu is %u, in no version %u..%u "
					 "(durable: %u, by h%d)", fo[i].path, (unsigned long long)b,
					 buf[b], lo[match], hi[match], lo[match],
					 files[match].v[lo[match]].host);
				bad = 1;
			}
		}
	}
	for (unsigned f = 0; f < nfiles && !bad; f++) {
		int may_absent = 0;
		for (unsigned j = lo[f]; j <= hi[f]; j++)
			may_absent |= !files[f].v[j].path[0];
		if (!seen[f] && !may_absent) {
			snprintf(why, wl, "'%.40s' is missing: its version %u (by h%d, durable at "
				 "its write %zu) was acknowledged", files[f].v[lo[f]].path, lo[f],
				 files[f].v[lo[f]].host, files[f].v[lo[f]].w);
			bad = 1;
		}
	}
	free(buf);
	return bad;
}

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

/* fs_crash.sh's allowance after recovery: OR01, with BT01 and DR11 (on an
 * orphan directory) beside it.  0 if codes holds nothing else. */
static int codes_ok(const char *text, const char *codes)
{
	int orphans = strstr(codes, "OR01") != NULL;

	for (const char *c = codes; *c; c += 5) {
		if (!strncmp(c, "OR01", 4))
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
				if (dn < 16 || dn >= 16 + MAX_HOSTS)
					bad = 1;
			}
			if (!bad)
				continue;
		}
		return 1;
	}
	return 0;
}

static void report(const struct point *pt, unsigned idx, const char *what, const char *why,
		   const char *fsck_out)
{
	nfail++;
	if (nfail > MAX_REPORTED && !verbose)
		return;
	printf("FAIL point %u (%s): prefixes", idx,
	       pt->kind == 'g' ? "global prefix" : pt->kind == 'h' ? "per host" : "random");
	for (int h = 0; h < NHOST; h++)
		printf(" h%d %zu/%zu", h, pt->n[h], nlog[h]);
	printf(", policy %s", pol_name[pt->p]);
	if (pt->p == VCFS_CRASH_RANDOM)
		printf(" seed %llu", (unsigned long long)pt->seed);
	printf(": %s\n  %s\n", what, why);
	if (fsck_out && *fsck_out)
		printf("  fsck -n said:\n%s", fsck_out);
	if (loglen)
		printf("  library log:\n%s", logbuf);
	fflush(stdout);
}

static uint64_t t_dead_ns;

static int check_point(const struct point *pt, unsigned idx)
{
	struct vcfs_mount_opts mo = { .host_name = "survivor" };
	struct vcfs_fsck_opts fo = { .mode = VCFS_FSCK_CHECK, .skip_live_wait = 1 };
	struct vcfs_fsck_stats st;
	struct vcfs_slot_info si[MAX_HOSTS];
	struct vcfs_disk *d;
	struct vcfs_fs *fs;
	struct vcfs_hb *hb;
	char why[512] = "", codes[128], *text = NULL;
	size_t tl;
	int rc, bad = 1;

	loglen = 0;
	logbuf[0] = 0;
	nchecked++;
	replay(pt);
	CK(vcfs_mem_open("tgt", 98, NULL, &d));
	rc = vcfs_fs_mount_disk(d, &mo, &fs);
	if (rc) {
		snprintf(why, sizeof(why), "mount: %s", vcfs_strerror(rc));
		report(pt, idx, "the survivor cannot mount", why, NULL);
		return 1;
	}
	/* the survivor's own heartbeat and monitor, ticked every R while the
	 * clock passes D: it declares the crashed hosts dead and recovers them */
	hb = fs->hb;
	for (uint64_t t = 0; t <= t_dead_ns + 3 * IO_TIMEOUT_MS * VCFS_NS_PER_MS;
	     t += IO_TIMEOUT_MS * VCFS_NS_PER_MS) {
		sim_now += IO_TIMEOUT_MS * VCFS_NS_PER_MS;
		vcfs_hb_renew_tick(hb);
		vcfs_hb_monitor_tick(hb);
	}
	CK(vcfs_hb_slots(hb, si));
	for (uint32_t s = 0; s < MAX_HOSTS; s++)
		if (s != vcfs_hb_slot(hb) && si[s].valid && si[s].state != VCFS_HB_FREE) {
			snprintf(why, sizeof(why), "slot %u (%s) is still %s after D", s,
				 si[s].host_name, si[s].state == VCFS_HB_LIVE ? "LIVE" : "RECOVERING");
			report(pt, idx, "the survivor did not recover every crashed host", why, NULL);
			vcfs_fs_crash(fs);
			return 1;
		}
	if (verify(fs, pt->n, why, sizeof(why))) {
		report(pt, idx, "fsync'd data or namespace wrong after recovery", why, NULL);
		vcfs_fs_crash(fs);
		return 1;
	}
	rc = vcfs_fs_unmount(fs);
	if (rc) {
		snprintf(why, sizeof(why), "unmount: %s", vcfs_strerror(rc));
		report(pt, idx, "the survivor cannot unmount", why, NULL);
		return 1;
	}
	CK(vcfs_mem_open("tgt", 97, NULL, &d));
	fo.out = open_memstream(&text, &tl);
	if (!fo.out)
		die("open_memstream: %s", strerror(errno));
	rc = vcfs_fsck(d, &fo, &st);
	fclose(fo.out);
	vcfs_disk_close(d);
	fsck_codes(text, codes, sizeof(codes));
	if (rc && (rc != 4 || codes_ok(text, codes))) {
		snprintf(why, sizeof(why), "fsck -n exit %d, findings: %s", rc, codes);
		report(pt, idx, "not clean after recovery", why, text);
	} else {
		bad = 0;
	}
	free(text);
	return bad;
}

static void run_point(struct point *pt)
{
	unsigned idx = npoints++;

	if (!consistent(pt->n))
		die("internal: point %u is not closed under the edges", idx);
	if (only_point >= 0 && (long)idx != only_point)
		return;
	if (nfail >= max_failures)
		return;
	check_point(pt, idx);
}

/* Does any host's crash epoch at n hold a volatile write? (else every policy
 * gives the keep image) */
static int any_volatile(const size_t *n, int *tear_differs)
{
	int any = 0;

	*tear_differs = 0;
	for (int h = 0; h < NHOST; h++) {
		uint64_t ce, ep, len, off;
		int dur;
		if (!n[h])
			continue;
		CK(vcfs_crash_write_info(hosts[h].crash, n[h] - 1, NULL, NULL, &ce, NULL));
		for (size_t i = n[h]; i-- > 0;) {
			CK(vcfs_crash_write_info(hosts[h].crash, i, &off, &len, &ep, &dur));
			if (ep != ce)
				break;
			if (dur)
				continue;
			any = 1;
			if (len > 2 * 4096)
				*tear_differs = 1;
		}
	}
	return any;
}

static void points_for(const size_t *n, char kind, int all_policies, uint64_t seed)
{
	struct point pt = { .kind = kind };
	int tear, vol;

	memcpy(pt.n, n, sizeof(pt.n));
	vol = any_volatile(n, &tear);
	pt.p = VCFS_CRASH_KEEP;
	run_point(&pt);
	if (!vol)
		return;
	if (all_policies) {
		pt.p = VCFS_CRASH_DROP;
		run_point(&pt);
		if (tear) {
			pt.p = VCFS_CRASH_TEAR;
			run_point(&pt);
		}
	}
	pt.p = VCFS_CRASH_RANDOM;
	pt.seed = seed;
	run_point(&pt);
}

int main(int argc, char **argv)
{
	uint64_t seed = (uint64_t)time(NULL) % 100000;
	unsigned nsteps = 30, nrandom = 400, perhost_every = 1;
	struct vcfs_mkfs_params mp = { .volume_bytes = IMG_BYTES, .max_hosts = MAX_HOSTS,
				       .io_timeout_ms = IO_TIMEOUT_MS, .label = "crashmh" };
	struct vcfs_hb_timing tm;
	struct vcfs_disk *d;
	double t0 = now_s(), t_rec;
	unsigned cnt[3] = { 0, 0, 0 };
	int opt;

	if (getenv("VCFS_CRASH_SEED"))
		seed = strtoull(getenv("VCFS_CRASH_SEED"), NULL, 0);
	while ((opt = getopt(argc, argv, "s:S:R:P:F:vx:")) != -1) {
		switch (opt) {
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'S': nsteps = (unsigned)atoi(optarg); break;
		case 'R': nrandom = (unsigned)atoi(optarg); break;
		case 'P': perhost_every = (unsigned)atoi(optarg); break;
		case 'F': max_failures = (unsigned)atoi(optarg); break;
		case 'v': verbose++; break;
		case 'x': only_point = atol(optarg); break;
		default:
			fprintf(stderr, "usage: crashmh [-s SEED] [-S STEPS] [-R RANDOM] "
				"[-P PERHOST-STRIDE] [-F MAXFAIL] [-v] [-x POINT]\n");
			return 2;
		}
	}
	if (!perhost_every)
		perhost_every = 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("crashmh: seed %llu (VCFS_CRASH_SEED=%llu repeats it)\n",
	       (unsigned long long)seed, (unsigned long long)seed);
	vcfs_log_set_sink(log_sink, NULL);
	vcfs_log_set_level(verbose > 1 ? VCFS_LOG_DEBUG : VCFS_LOG_INFO);
	main_thread = pthread_self();
	vcfs_clock_set(sim_clock, NULL);
	vcfs_clock_set_sleep(sim_sleep, NULL);
	vcfs_hb_set_driver(hb_driver, NULL);
	vcfs_hb_timing_from(IO_TIMEOUT_MS, &tm);
	t_dead_ns = tm.dead_ns;

	CK(vcfs_mem_create("init", IMG_BYTES, 0));
	CK(vcfs_mem_create("rec", IMG_BYTES, 0));
	CK(vcfs_mem_create("tgt", IMG_BYTES, 0));
	CK(vcfs_mem_open("init", 100, NULL, &d));
	CK(vcfs_mkfs(d, &mp, VCFS_MKFS_FORCE, &sb));
	vcfs_disk_close(d);
	CK(vcfs_mem_copy("rec", "init"));

	/* 1. record: three hosts, one process, one log each */
	for (int h = 0; h < NHOST; h++) {
		struct vcfs_mount_opts mo = { 0 };
		char name[16];
		size_t from;
		snprintf(name, sizeof(name), "h%d", h);
		mo.host_name = name;
		CK(vcfs_mem_open("rec", (uint32_t)h, NULL, &d));
		CK(vcfs_crash_wrap(d, VCFS_CRASH_LOG, &hosts[h].crash));
		from = 0;
		CK(vcfs_fs_mount_disk(hosts[h].crash, &mo, &hosts[h].fs));
		seg_close(h, from);
	}
	record(seed, nsteps);
	for (int h = 0; h < NHOST; h++) {
		nlog[h] = logn(h);
		/* nothing more from the recorders: their logs are final */
		vcfs_hb_fence(hosts[h].fs->hb, -VCFS_EFENCED);
	}
	/* a background write that passed its lease check before the fence lands
	 * within an I/O; give it that long */
	nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
	for (int h = 0; h < NHOST; h++)
		nlog[h] = logn(h);	/* final: a fenced host writes nothing */
	segs_build();
	edges_build();
	t_rec = now_s() - t0;
	printf("crashmh: recorded %u steps: h0 %zu, h1 %zu, h2 %zu writes in %u segments, "
	       "%zu lock/heartbeat synchronisation edges, %u files (%.2f s)\n", nsteps,
	       nlog[0], nlog[1], nlog[2], nseg, nedges, nfiles, t_rec);
	if (verbose)
		for (size_t e = 0; e < nedges; e++)
			fprintf(stderr, "  edge: h%d write %zu -> h%d write %zu\n", edges[e].a,
				edges[e].i, edges[e].b, edges[e].j);

	/* 2a. every prefix of the recorded global order */
	{
		size_t n[NHOST] = { 0 };
		points_for(n, 'g', 1, seed);
		for (unsigned s = 0; s < nseg && nfail < max_failures; s++)
			for (size_t i = segs[s].from; i < segs[s].to; i++) {
				n[segs[s].h] = i + 1;
				points_for(n, 'g', 1, seed + i);
			}
	}
	cnt[0] = npoints;
	/* 2b. every prefix of each host, the others as early as the edges allow */
	for (int h = 0; h < NHOST && nfail < max_failures; h++)
		for (size_t k = 0; k <= nlog[h]; k += perhost_every) {
			size_t n[NHOST] = { 0 };
			n[h] = k;
			close_vec(n, 1);
			points_for(n, 'h', 0, seed + k * 31 + (uint64_t)h);
		}
	cnt[1] = npoints - cnt[0];
	/* 2c. random vectors */
	{
		uint64_t rng = seed ^ 0xabcdef;
		for (unsigned r = 0; r < nrandom && nfail < max_failures; r++) {
			struct point pt = { .kind = 'r', .p = VCFS_CRASH_RANDOM };
			for (int h = 0; h < NHOST; h++)
				pt.n[h] = (size_t)rng_below(&rng, nlog[h] + 1);
			close_vec(pt.n, (int)rng_below(&rng, 2));
			pt.seed = rng_next(&rng);
			run_point(&pt);
		}
	}
	cnt[2] = npoints - cnt[0] - cnt[1];

	for (int h = 0; h < NHOST; h++)
		vcfs_fs_crash(hosts[h].fs);
	printf("crashmh: seed %llu: %u hosts, %zu+%zu+%zu writes, %zu edges; crash points %u "
	       "(global prefixes %u, per-host prefixes %u, random interleavings %u), %u "
	       "recovered and checked; %u failed%s; %.1f s\n", (unsigned long long)seed, NHOST,
	       nlog[0], nlog[1], nlog[2], nedges, npoints, cnt[0], cnt[1], cnt[2], nchecked,
	       nfail, nfail >= max_failures ? " (stopped early)" : "", now_s() - t0);
	vcfs_mem_destroy("init");
	vcfs_mem_destroy("rec");
	vcfs_mem_destroy("tgt");
	return nfail ? 1 : 0;
}
