/*
 * sim.c - deterministic simulation of a vcfs cluster (issue 7): many hosts
 * in one process over one in-memory disk (disk/mem.h), on a driven clock,
 * with every choice taken from a seeded PRNG.
 *
 *   sim [-s SEED] [-n SEEDS] [-H HOSTS] [-k STEPS] [-v] [-E] [-S] [-P]
 *   (-E no I/O errors, -S no stalled requests, -P no pauses: to narrow a
 *   failure down)
 *   VCFS_SIM_SEED=S replays seed S alone (as -s S -n 1).
 *
 * World.  A 32 MiB mem store formatted for H hosts (8..16, from the seed,
 * or -H), T = 200 ms.  Each host is a struct vcfs_fs mounted through its own
 * mem handle (tag = host).  Time is sim_now: vcfs_clock_set reads it,
 * vcfs_clock_set_sleep advances it (a backoff of the running host), and
 * vcfs_hb_set_driver keeps the heartbeat threads from starting: the
 * scheduler runs each host's renewal and monitor as steps (lock.h's seam).
 *
 * Scheduler.  Each iteration advances the clock by a random fraction of T,
 * then, in a PRNG order, runs the heartbeat renewals and monitor passes that
 * are due (every R, with jitter) of every running host, and a random host's
 * operation: create a file (write, fsync, close), open a file for writing
 * (lookup, then open by number and generation: EXCL lock; -EBUSY when held,
 * -ESTALE when the number was reused meanwhile), write, fsync, close, unlink
 * (then sync).
 * Events, by the PRNG: a host crashes (vcfs_fs_crash; it remounts later), a
 * host pauses (no steps, no renewals for 2T..12T: a stalled host), a host's
 * request stalls mid-operation (the I/O hook runs the other hosts for the
 * stall, then the request fails with -ETIMEDOUT as a backend bounds every
 * request by T), I/O errors (-EIO) on a host's requests.  Every request
 * costs a random latency (the hook advances the clock).  Volatile writes
 * stay per handle until its flush; a run ends either with every host
 * crashing, or with a power cut of the store (volatile writes kept, dropped
 * or torn in a random order) and then every host crashing.
 *
 * Invariants, checked continuously:
 *  - no late write: the hook refuses, and records as a failure, any write or
 *    successful CAS from a host whose heartbeat slot no longer holds its
 *    incarnation as LIVE (it was declared dead, recovered, or reused): a
 *    fenced or paused host must not write after its lease;
 *  - exclusive locks: after every step, no file is open for writing by two
 *    hosts whose leases are both valid (vcfs_hb_write_ok);
 *  - a dead host's journal is replayed at most once per generation (from
 *    the library's log: a second replay of one (slot, generation) counts as
 *    a failure unless its first recoverer died and another took over);
 *  - every open for writing reads the file, and what it reads must lie
 *    between the last acknowledged fsync and the latest write (byte for
 *    byte);
 *  - at the end: a fresh host recovers every slot (monitor ticks across D),
 *    every file lies between its last acknowledged fsync and its latest
 *    write, every file acknowledged is there, nothing else; after its
 *    unmount fsck -n is clean (OR01 and its follow-ups allowed, as
 *    tests/fs_crash.sh after recovery).
 *
 * Determinism: every choice comes from the seed's PRNG and every host step
 * runs on the main thread; the fs's own background threads (lock cache,
 * orphan worker) are real threads, parked in their backoff sleeps and let go
 * only at the start of an iteration (or, inside an operation's wait, those
 * of other hosts), the scheduler waiting until they park again.  The orphan
 * worker waits for work on a condition variable: it says so (vcfs_idle) and
 * counts as parked; after a recovery the scheduler waits until no recovered
 * slot is pending and every thread is parked or idle.  A thread that does not
 * park within 500 ms (2 s after a recovery) is counted as a timeout in the
 * summary; each one is a point where a replay may diverge from the first
 * run, so a failing seed usually, not always, fails again alone (run it in
 * its batch: -s S -n N).
 *
 * Not modelled: clocks of hosts drifting apart (one sim_now); a request that
 * lands after its timeout (the T assumption of docs/architecture.md: a
 * stalled request here fails without landing); the network; a stall inside
 * a heartbeat renewal of a host running nested (stalls do not nest); partial
 * sector writes other than the power cut's tears; more than 16 hosts by
 * default (-H up to 31).
 *
 * Output: one line per failing seed ("FAIL seed S: ..."), then a summary;
 * exit 0 if every seed passed, 1 otherwise, 2 on a setup error.
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

#define IMG_BYTES	(32ull << 20)
#define MAXH		32
#define MAXSLOT		(2 * MAXH + 2)	/* mkfs -H 2 * hosts + 1 */
#define IO_TIMEOUT_MS	200
#define T_NS		((uint64_t)IO_TIMEOUT_MS * VCFS_NS_PER_MS)
#define MAXF		64
#define MAXV		48
#define MAXOPEN		4
#define FILE_MAX	(48u << 10)

static int verbose;

__attribute__((noreturn, format(printf, 1, 2)))
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "sim: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

#define CK(x) do { int rc_ = (x); if (rc_) die("%s:%d: %s: %s", __FILE__, __LINE__, #x, \
					      vcfs_strerror(rc_)); } while (0)

static uint64_t rng;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static int chance(unsigned per_mille)
{
	return below(1000) < per_mille;
}

/* ---- failures of the current seed ---- */

static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;
static char fail_msg[1024];
static unsigned nfail_seed;

__attribute__((format(printf, 1, 2)))
static void fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&fail_mu);
	if (!nfail_seed++) {
		va_start(ap, fmt);
		vsnprintf(fail_msg, sizeof(fail_msg), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&fail_mu);
}

/* ---- driven time ---- */

static _Atomic uint64_t sim_now;
static pthread_t main_thread;

static uint64_t sim_clock(void *arg)
{
	(void)arg;
	return sim_now;
}

static int is_main(void)
{
	return pthread_equal(pthread_self(), main_thread);
}

/* ---- hosts ---- */

enum hstate { H_DOWN, H_UP };

struct ofile { int f; struct vcfs_file *fh; };

struct shost {
	int id;
	enum hstate st;
	struct vcfs_fs *fs;
	struct vcfs_hb *hb;
	uint32_t slot;
	uint64_t gen;
	uint64_t next_renew, next_mon;
	uint64_t paused_until;	/* no steps before (a stalled host) */
	uint64_t up_at;		/* DOWN: remount not before */
	int stalled;		/* inside a stalled request */
	int busy;		/* an operation of it is on the stack */
	int ticking;		/* its heartbeat work is on the stack */
	unsigned err_per_mille;	/* I/O error rate while up */
	struct ofile open[MAXOPEN];
	unsigned nopen;
};

static struct shost H[MAXH];
static int nh;
static int cur_host = -1;	/* whose operation or tick runs on main */
static struct vcfs_sb sb;
static const char *store = "sim";
static int in_stall;		/* nesting guard */
static int no_errors, no_stalls, no_pauses;	/* -E, -S, -P: narrow a failure down */
static int quiesce;		/* the end: no events, no mounts, no stalls */

static void hb_ticks(int skip_monitor_of);

/*
 * A backoff of the running host (main thread): the clock moves, and the
 * heartbeat work that falls due meanwhile runs, as the threads would run it
 * beside a waiting operation (the waiting host's monitor excepted: it may be
 * inside its own recovery).  Other threads: a short real sleep.
 */
/*
 * The fs's own background threads (its lock cache, its orphan worker) are
 * real threads.  To keep them in step with the schedule, each one parks in
 * its backoff sleep (sim_sleep) until the scheduler lets it go (bg_run), and
 * the scheduler waits until it has parked again: they then run only at
 * known points, while the main thread waits.  A thread is tied to its host
 * by the tag of its first request.  Where a parked thread is needed to go
 * (its host crashes or unmounts, and joins it), bg_free lets all run.
 */
struct bgt { int tag, parked, go, alive, idle; };
static struct bgt bgts[512];
static int nbgt;
static int bg_free;
static unsigned bg_timeouts;
static pthread_mutex_t bg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bg_cv = PTHREAD_COND_INITIALIZER;
static pthread_key_t bg_key;
static _Thread_local int my_bgt = -1;

static void bg_exit(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&bg_mu);
	if (my_bgt >= 0)
		bgts[my_bgt].alive = 0;
	pthread_cond_broadcast(&bg_cv);
	pthread_mutex_unlock(&bg_mu);
}

/* bg_mu held */
static void bg_register(void)
{
	if (my_bgt >= 0 || nbgt == 512)
		return;
	my_bgt = nbgt++;
	bgts[my_bgt] = (struct bgt){ .tag = -1, .alive = 1 };
	pthread_setspecific(bg_key, (void *)1);
}

static void bg_tag(int tag)
{
	pthread_mutex_lock(&bg_mu);
	bg_register();
	if (my_bgt >= 0 && bgts[my_bgt].tag < 0)
		bgts[my_bgt].tag = tag;
	pthread_mutex_unlock(&bg_mu);
}

static void bg_park(void)
{
	pthread_mutex_lock(&bg_mu);
	bg_register();
	if (my_bgt < 0) {
		pthread_mutex_unlock(&bg_mu);
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
		return;
	}
	bgts[my_bgt].parked = 1;
	pthread_cond_broadcast(&bg_cv);
	while (!bgts[my_bgt].go && !bg_free)
		pthread_cond_wait(&bg_cv, &bg_mu);
	bgts[my_bgt].go = 0;
	bgts[my_bgt].parked = 0;
	pthread_mutex_unlock(&bg_mu);
	if (bg_free)
		nanosleep(&(struct timespec){ 0, 200000 }, NULL);
}

/* A thread waiting for work another thread hands it (vcfs_idle: the orphan
 * worker's wait for recovered slots) counts as parked: it does nothing until
 * the main thread's recovery wakes it, and bg_settle then waits for it. */
static void sim_idle(void *arg, int idle)
{
	(void)arg;
	pthread_mutex_lock(&bg_mu);
	bg_register();
	if (my_bgt >= 0) {
		bgts[my_bgt].idle = idle;
		bgts[my_bgt].go = 0;
	}
	pthread_cond_broadcast(&bg_cv);
	pthread_mutex_unlock(&bg_mu);
}

/* Let the parked background threads run once (inside an operation of host
 * `busy`, only those of other known hosts; never those of a host whose
 * operation is on the stack) and wait until they park again. */
static void bg_run(int busy)
{
	int chosen[512], n = 0;
	struct timespec dl;

	pthread_mutex_lock(&bg_mu);
	for (int i = 0; i < nbgt; i++) {
		struct bgt *b = &bgts[i];
		if (!b->alive || !b->parked || b->idle)
			continue;
		if (busy >= 0 && (b->tag < 0 || b->tag == busy))
			continue;
		/* nor those of a host with an operation on the stack (a stalled
		 * request runs the others nested): it holds that host's op_mu,
		 * which they would wait for until the main thread goes on */
		if (b->tag >= 0 && b->tag < nh && (H[b->tag].busy || H[b->tag].stalled))
			continue;
		b->go = 1;
		chosen[n++] = i;
	}
	pthread_cond_broadcast(&bg_cv);
	/*
	 * Up to 500 ms: a thread that has not parked by then breaks the premise
	 * that its work lands at this simulated moment (its write could land
	 * after its host's recovery and be flagged as a late write).  Such
	 * waits came from the threads of a host stalled in a request (they
	 * waited for its op_mu, held on the main thread: 15 in 100 seeds),
	 * which are no longer chosen above.
	 */
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_nsec += 500 * 1000 * 1000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	for (int k = 0; k < n; k++) {
		struct bgt *b = &bgts[chosen[k]];
		while (b->alive && !b->idle && (b->go || !b->parked))
			if (pthread_cond_timedwait(&bg_cv, &bg_mu, &dl)) {
				bg_timeouts++;
				k = n;
				break;
			}
	}
	pthread_mutex_unlock(&bg_mu);
}

/* Recoveries the log reported (each is followed by bg_settle). */
static _Atomic unsigned recoveries_seen;

/* No recovered slot waits for a host's orphan worker, and every background
 * thread is parked (in a backoff) or idle (waiting for work). */
static int bg_quiet(void)
{
	int quiet = 1;

	for (int i = 0; i < nh && quiet; i++) {
		struct vcfs_fs *fs = H[i].fs;
		if (H[i].st != H_UP || !fs)
			continue;
		pthread_mutex_lock(&fs->misc_mu);
		quiet = !fs->norphan_slots;
		pthread_mutex_unlock(&fs->misc_mu);
	}
	pthread_mutex_lock(&bg_mu);
	for (int i = 0; i < nbgt && quiet; i++)
		quiet = !bgts[i].alive || bgts[i].idle || bgts[i].parked;
	pthread_mutex_unlock(&bg_mu);
	return quiet;
}

/* After a recovery (on the main thread), let the orphan workers it woke
 * reach a park or their idle wait before the schedule goes on (up to 2 s of
 * real time; longer counts as a timeout). */
static void bg_settle(void)
{
	for (int i = 0; i < 2000; i++) {
		if (bg_quiet())
			return;
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	bg_timeouts++;
}

static void bg_set_free(int on)
{
	pthread_mutex_lock(&bg_mu);
	bg_free = on;
	pthread_cond_broadcast(&bg_cv);
	pthread_mutex_unlock(&bg_mu);
}

static void sim_sleep(void *arg, uint64_t ns)
{
	(void)arg;
	if (is_main()) {
		int me = cur_host;
		sim_now += ns;
		hb_ticks(me);
		bg_run(me);
		cur_host = me;
	} else {
		bg_park();
	}
}

/* the driver: joins and leaves of heartbeats */
static struct vcfs_hb *joining;

static void hb_driver(void *arg, struct vcfs_hb *hb, int on)
{
	(void)arg;
	if (on)
		joining = hb;
	else
		for (int i = 0; i < nh; i++)
			if (H[i].hb == hb)
				H[i].hb = NULL;
}

/* ---- the model of the files ---- */

struct fver {
	int exists;
	uint32_t size;
	uint8_t *data;		/* owned; NULL when size 0 */
	int acked;		/* an fsync (or the create's) returned for it */
};

struct sfile {
	char name[24];
	struct fver v[MAXV];
	unsigned nv;
	int writer;		/* host that has it open for writing, -1 */
};

static struct sfile F[MAXF];
static int nf;

static struct fver *last(int f)
{
	return &F[f].v[F[f].nv - 1];
}

/* A new version of f, a copy of the last one (acked 0). */
static struct fver *fver_new(int f)
{
	struct sfile *s = &F[f];
	struct fver *o = last(f), *n;

	if (s->nv == MAXV) {
		/* drop the oldest versions before the last acked one */
		unsigned a = 0;
		for (unsigned j = 0; j < s->nv; j++)
			if (s->v[j].acked)
				a = j;
		if (!a)
			a = 1;
		for (unsigned j = 0; j < a; j++)
			free(s->v[j].data);
		memmove(s->v, s->v + a, (s->nv - a) * sizeof(s->v[0]));
		s->nv -= a;
		o = last(f);
	}
	n = &s->v[s->nv++];
	*n = *o;
	n->acked = 0;
	n->data = NULL;
	if (o->size) {
		n->data = malloc(o->size);
		if (!n->data)
			die("out of memory");
		memcpy(n->data, o->data, o->size);
	}
	return n;
}

/* Acceptable versions [lo, nv). */
static unsigned lo_of(int f)
{
	unsigned lo = 0;

	for (unsigned j = 0; j < F[f].nv; j++)
		if (F[f].v[j].acked)
			lo = j;
	return lo;
}

/* Does (exists, buf[0..size)) lie between f's acceptable versions? */
static int between(int f, int exists, const uint8_t *buf, uint64_t size, char *why,
		   size_t wl)
{
	unsigned lo = lo_of(f);
	uint64_t mn = UINT64_MAX, mx = 0;
	int may_absent = 0, may_exist = 0;

	for (unsigned j = lo; j < F[f].nv; j++) {
		const struct fver *v = &F[f].v[j];
		uint64_t s = v->exists ? v->size : 0;
		may_absent |= !v->exists;
		may_exist |= v->exists;
		mn = s < mn ? s : mn;
		mx = s > mx ? s : mx;
	}
	if (!exists) {
		if (may_absent)
			return 0;
		snprintf(why, wl, "%s is missing: its version %u was acknowledged", F[f].name, lo);
		return 1;
	}
	if (!may_exist) {
		snprintf(why, wl, "%s exists, but it was unlinked (acknowledged)", F[f].name);
		return 1;
	}
	if (size < mn || size > mx) {
		snprintf(why, wl, "%s: size %llu outside [%llu, %llu] (versions %u..%u)",
			 F[f].name, (unsigned long long)size, (unsigned long long)mn,
			 (unsigned long long)mx, lo, F[f].nv - 1);
		return 1;
	}
	for (uint64_t b = 0; b < size; b++) {
		int ok = 0;
		for (unsigned j = lo; j < F[f].nv && !ok; j++) {
			const struct fver *v = &F[f].v[j];
			ok = buf[b] == (v->exists && b < v->size ? v->data[b] : 0);
		}
		if (!ok) {
			snprintf(why, wl, "%s: byte %llu (%u) is in none of versions %u..%u "
				 "(acknowledged: %u)", F[f].name, (unsigned long long)b, buf[b], lo,
				 F[f].nv - 1, lo);
			return 1;
		}
	}
	return 0;
}

/* Read a whole file (reads may be short), at most FILE_MAX + 1 bytes. */
static ssize_t read_all(struct vcfs_file *fh, uint8_t *buf)
{
	size_t got = 0;

	while (got <= FILE_MAX) {
		ssize_t k = vcfs_file_read(fh, got, buf + got, FILE_MAX + 1 - got);
		if (k < 0)
			return k;
		if (!k)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

/* ---- the I/O hook: latency, errors, stalls, late writes ---- */

static void sched_iteration(int nested);

/* Is host h's incarnation still LIVE in its slot on the store? */
static int slot_is_ours(const struct shost *h)
{
	uint8_t blk[512];
	const struct vcfs_hb_disk *r = (const void *)blk;

	if (vcfs_mem_peek(store, vcfs_hb_blk(&sb, h->slot) * VCFS_BLK, blk, sizeof(blk)))
		return 0;
	return le32_get(r->state) == VCFS_HB_LIVE && le64_get(r->generation) == h->gen;
}

static int io_hook(void *arg, uint32_t tag, enum vcfs_disk_op op, uint64_t off, uint64_t len)
{
	struct shost *h;

	(void)arg;
	(void)len;
	if (tag >= (uint32_t)nh)
		return 0;	/* the survivor, fsck, mkfs */
	h = &H[tag];
	if (!is_main()) {
		/* a background thread of h: no PRNG (it is not ours to order) */
		bg_tag((int)tag);
		if ((op == VCFS_OP_WRITE || op == VCFS_OP_ZEROES || op == VCFS_OP_UNMAP) &&
		    h->gen && !slot_is_ours(h)) {
			fail("late write: host %d (slot %u, generation %llu) wrote block %llu "
			     "from a background thread after its slot was taken or recovered",
			     h->id, h->slot, (unsigned long long)h->gen,
			     (unsigned long long)(off / VCFS_BLK));
			return -EIO;
		}
		return 0;
	}
	sim_now += below(T_NS / 100);	/* latency: up to T/100 */
	if (h->st == H_UP && h->gen && op != VCFS_OP_READ && op != VCFS_OP_FLUSH &&
	    !in_stall && !quiesce && !no_stalls && chance(4)) {
		/* the request stalls: the others run meanwhile, then it times out */
		uint64_t until = sim_now + 2 * T_NS + below(10 * T_NS);
		if (verbose)
			fprintf(stderr, "  %.3f: host %d stalls in a request (op %d, block %llu, "
				"%llu bytes) until %.3f\n", (double)sim_now / 1e9, h->id, (int)op,
				(unsigned long long)(off / VCFS_BLK), (unsigned long long)len,
				(double)until / 1e9);
		in_stall = 1;
		h->stalled = 1;
		while (sim_now < until)
			sched_iteration(1);
		h->stalled = 0;
		in_stall = 0;
		cur_host = h->id;
		return -ETIMEDOUT;
	}
	if (h->err_per_mille && chance(h->err_per_mille))
		return -EIO;
	if (op == VCFS_OP_WRITE || op == VCFS_OP_ZEROES || op == VCFS_OP_UNMAP ||
	    op == VCFS_OP_CAS) {
		if (h->gen && !slot_is_ours(h)) {
			if (op == VCFS_OP_CAS)
				return 0;	/* it will miscompare: it cannot land */
			fail("late write: host %d (slot %u, generation %llu) wrote block %llu "
			     "after its slot was taken or recovered", h->id, h->slot,
			     (unsigned long long)h->gen, (unsigned long long)(off / VCFS_BLK));
			return -EIO;
		}
	}
	return 0;
}

/* ---- the library's log: recoveries ---- */

struct replay_count { uint32_t slot; uint64_t gen; unsigned replays, takeovers; };
static struct replay_count rc_tab[1024];
static unsigned nrc;
static uint64_t dying_gen[MAXSLOT];	/* per slot: generation being recovered */
static char logtail[4096];

static struct replay_count *rc_get(uint32_t slot, uint64_t gen)
{
	for (unsigned i = 0; i < nrc; i++)
		if (rc_tab[i].slot == slot && rc_tab[i].gen == gen)
			return &rc_tab[i];
	if (nrc == 1024)
		return NULL;
	rc_tab[nrc] = (struct replay_count){ .slot = slot, .gen = gen };
	return &rc_tab[nrc++];
}

static void log_sink(enum vcfs_log_level lvl, const char *msg, void *arg)
{
	unsigned slot, by;
	unsigned long long gen;
	char host[80];
	struct replay_count *c;
	size_t l, m = strlen(msg);

	(void)arg;
	if (verbose > 1)
		fprintf(stderr, "  log %d [%s%d]: %s\n", (int)lvl, is_main() ? "host " : "bg of ",
			cur_host, msg);
	pthread_mutex_lock(&fail_mu);
	l = strlen(logtail);
	if (l + m + 2 >= sizeof(logtail)) {
		memmove(logtail, logtail + l / 2, l - l / 2 + 1);
		l = strlen(logtail);
	}
	if (l + m + 2 < sizeof(logtail)) {
		memcpy(logtail + l, msg, m);
		logtail[l + m] = '\n';
		logtail[l + m + 1] = 0;
	}
	int end = 0;

	/* %n: sscanf counts conversions, not the literal text after them */
	if (sscanf(msg, "heartbeat slot %u (host %79[^,], generation %llu) is dead%n", &slot,
		   host, &gen, &end) == 3 && end && slot < MAXSLOT) {
		dying_gen[slot] = gen;
	} else if (sscanf(msg, "heartbeat slot %u (host %79[^,], generation %llu): its "
			  "recoverer (slot %u) is gone%n", &slot, host, &gen, &by, &end) == 4 &&
		   end && slot < MAXSLOT) {
		dying_gen[slot] = gen;
		if ((c = rc_get(slot, gen)))
			c->takeovers++;
	} else if (sscanf(msg, "heartbeat slot %u: resuming our unfinished recovery%n",
			  &slot, &end) == 1 && end && slot < MAXSLOT) {
		/* our earlier replay finished but freeing the slot failed */
		if ((c = rc_get(slot, dying_gen[slot])))
			c->takeovers++;
	} else if (sscanf(msg, "recovered host slot %u:", &slot) == 1 && slot < MAXSLOT) {
		recoveries_seen++;
		c = rc_get(slot, dying_gen[slot]);
		if (c && ++c->replays > 1 + c->takeovers) {
			pthread_mutex_unlock(&fail_mu);
			fail("journal of slot %u (generation %llu) replayed %u times (%u "
			     "takeovers)", slot, (unsigned long long)c->gen, c->replays,
			     c->takeovers);
			return;
		}
	}
	pthread_mutex_unlock(&fail_mu);
}

/* ---- host life ---- */

static void host_mount(struct shost *h)
{
	struct vcfs_mount_opts mo = { 0 };
	struct vcfs_disk *d;
	char name[16];
	int rc;

	snprintf(name, sizeof(name), "host%d", h->id);
	mo.host_name = name;
	CK(vcfs_mem_open(store, (uint32_t)h->id, NULL, &d));
	h->gen = 0;		/* not checked until joined */
	cur_host = h->id;
	joining = NULL;
	rc = vcfs_fs_mount_disk(d, &mo, &h->fs);
	if (rc) {
		if (verbose)
			fprintf(stderr, "  host %d: mount: %s\n", h->id, vcfs_strerror(rc));
		h->st = H_DOWN;
		h->up_at = sim_now + T_NS;
		return;
	}
	{
		/* its background threads park first (in mount order) */
		int before = nbgt;
		for (int w = 0; w < 8; w++) {
			pthread_mutex_lock(&bg_mu);
			int parked = 1;
			for (int i = before; i < nbgt; i++)
				parked &= !bgts[i].alive || bgts[i].parked;
			int grown = nbgt > before;
			pthread_mutex_unlock(&bg_mu);
			if (grown && parked)
				break;
			nanosleep(&(struct timespec){ 0, 500000 }, NULL);
		}
	}
	h->hb = h->fs->hb;
	h->slot = vcfs_hb_slot(h->hb);
	h->gen = vcfs_hb_generation(h->hb);
	h->st = H_UP;
	h->nopen = 0;
	h->next_renew = sim_now + T_NS - below(T_NS / 4);
	h->next_mon = sim_now + below(T_NS);
	h->paused_until = 0;
	h->err_per_mille = chance(100) && !no_errors ? 5 : 0;
	if (verbose)
		fprintf(stderr, "  %.3f: host %d up: slot %u generation %llu\n",
			(double)sim_now / 1e9, h->id, h->slot, (unsigned long long)h->gen);
}

/* The host dies (or gives up after a fence): nothing more from it. */
static void host_crash(struct shost *h, const char *why)
{
	if (h->st != H_UP)
		return;
	if (verbose)
		fprintf(stderr, "  %.3f: host %d crashes (%s)\n", (double)sim_now / 1e9, h->id,
			why);
	for (unsigned i = 0; i < h->nopen; i++)
		if (F[h->open[i].f].writer == h->id)
			F[h->open[i].f].writer = -1;
	h->nopen = 0;
	bg_set_free(1);		/* its threads are joined */
	vcfs_fs_crash(h->fs);
	bg_set_free(0);
	h->fs = NULL;
	h->hb = NULL;
	h->gen = 0;
	h->st = H_DOWN;
	h->up_at = sim_now + T_NS * (1 + below(10));
}

static int lease_ok(struct shost *h)
{
	return h->st == H_UP && h->hb && !vcfs_hb_write_ok(h->hb);
}

/* ---- operations ---- */

static void fill(uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(1 + below(255));
}

extern int vcfs_fs_sync(struct vcfs_fs *fs) __attribute__((weak));

/* An operation failed with rc: expected ones are fine; the host gives up
 * after a fence or an I/O error (it would be restarted by its operator). */
static void op_failed(struct shost *h, const char *what, int rc)
{
	if (rc == -EBUSY || rc == -ENOENT || rc == -EEXIST || rc == -ENOSPC)
		return;
	if (verbose)
		fprintf(stderr, "  host %d: %s: %s\n", h->id, what, vcfs_strerror(rc));
	host_crash(h, what);
}

__attribute__((format(printf, 2, 3)))
static void trace(int f, const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	fprintf(stderr, "  %.3f: %s: ", (double)sim_now / 1e9, f >= 0 ? F[f].name : "-");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
}

static int find_open(struct shost *h, int f)
{
	for (unsigned i = 0; i < h->nopen; i++)
		if (h->open[i].f == f)
			return (int)i;
	return -1;
}

static void op_create(struct shost *h)
{
	struct vcfs_attr a;
	struct vcfs_file *fh;
	struct fver *v;
	uint32_t len = 1 + (uint32_t)below(FILE_MAX / 2);
	int f, rc;
	ssize_t k;

	if (nf == MAXF)
		return;
	f = nf++;
	snprintf(F[f].name, sizeof(F[f].name), "h%d-%d", h->id, f);
	F[f].nv = 1;
	F[f].v[0] = (struct fver){ .acked = 1 };
	F[f].writer = -1;
	v = fver_new(f);
	v->exists = 1;
	v->size = len;
	v->data = malloc(len);
	if (!v->data)
		die("out of memory");
	fill(v->data, len);
	rc = vcfs_fs_create(h->fs, vcfs_fs_root(h->fs), F[f].name, 0644, 0, 0,
			    O_RDWR | O_EXCL, &a, &fh);
	if (rc) {
		op_failed(h, "create", rc);
		return;
	}
	k = vcfs_file_write(fh, 0, v->data, len);
	rc = k == (ssize_t)len ? vcfs_file_fsync(fh, 0) : (k < 0 ? (int)k : -EIO);
	if (!rc)
		v->acked = 1;
	{
		int r2 = vcfs_file_release(fh);
		rc = rc ? rc : r2;
	}
	trace(f, "host %d creates %u bytes (inode %llu): %s", h->id, len,
	      (unsigned long long)a.ino, rc ? vcfs_strerror(rc) : "ok");
	if (rc)
		op_failed(h, "create: write/fsync/close", rc);
}

static int pick_file(int must_exist)
{
	int c[MAXF], n = 0;

	for (int f = 0; f < nf; f++)
		if (!must_exist || last(f)->exists)
			c[n++] = f;
	return n ? c[below((uint64_t)n)] : -1;
}

static void op_open(struct shost *h)
{
	int f = pick_file(1), rc;
	struct vcfs_attr a;
	struct vcfs_file *fh;
	uint8_t *buf;
	ssize_t got;
	char why[256];

	if (f < 0 || h->nopen == MAXOPEN || find_open(h, f) >= 0)
		return;
	rc = vcfs_fs_lookup(h->fs, vcfs_fs_root(h->fs), F[f].name, &a);
	if (rc) {
		if (rc == -ENOENT && lo_of(f) == F[f].nv - 1 && last(f)->exists)
			fail("%s: lookup by host %d: ENOENT, but it was acknowledged",
			     F[f].name, h->id);
		op_failed(h, "lookup", rc);
		return;
	}
	/* by number and generation: the open may wait (other hosts run
	 * meanwhile), the name be unlinked and the number reused */
	rc = vcfs_fs_open_gen(h->fs, a.ino, a.generation, O_RDWR, 0, &fh);
	if (rc == -ESTALE) {
		trace(f, "host %d: inode %llu was reused since its lookup: ESTALE", h->id,
		      (unsigned long long)a.ino);
		return;
	}
	if (rc) {
		op_failed(h, "open", rc);
		return;
	}
	if (F[f].writer >= 0 && F[f].writer != h->id && lease_ok(&H[F[f].writer]))
		fail("%s: host %d opened it for writing while host %d holds it with a valid "
		     "lease", F[f].name, h->id, F[f].writer);
	/* what the new holder reads lies between the acked and the latest */
	buf = malloc(FILE_MAX + 1);
	if (!buf)
		die("out of memory");
	got = read_all(fh, buf);
	if (got < 0) {
		free(buf);
		vcfs_file_release(fh);
		op_failed(h, "read", (int)got);
		return;
	}
	if (between(f, 1, buf, (uint64_t)got, why, sizeof(why)))
		fail("host %d opened %s: %s", h->id, F[f].name, why);
	/* from here the file is what this host read (a version of its own);
	 * it exists, whatever an unlink that failed (-EBUSY, unacknowledged)
	 * left as the last version */
	struct fver *v = fver_new(f);
	free(v->data);
	v->exists = 1;
	v->size = (uint32_t)got;
	v->data = buf;
	F[f].writer = h->id;
	h->open[h->nopen++] = (struct ofile){ f, fh };
	trace(f, "host %d opens it (inode %llu), reads %zd bytes (version %u)", h->id,
	      (unsigned long long)a.ino, got, F[f].nv - 1);
}

static void op_write(struct shost *h, int sync)
{
	struct ofile *o;
	struct fver *v;
	uint32_t off, len, nsz;
	ssize_t k;
	int rc = 0;

	if (!h->nopen)
		return;
	o = &h->open[below(h->nopen)];
	if (F[o->f].writer != h->id)
		return;
	v = fver_new(o->f);
	off = (uint32_t)below(v->size + 4096);
	len = 1 + (uint32_t)below(8192);
	if (off + len > FILE_MAX)
		off = FILE_MAX - len;
	nsz = off + len > v->size ? off + len : v->size;
	if (nsz != v->size) {
		uint8_t *n = calloc(1, nsz);
		if (!n)
			die("out of memory");
		if (v->size)
			memcpy(n, v->data, v->size);
		free(v->data);
		v->data = n;
		v->size = nsz;
	}
	fill(v->data + off, len);
	k = vcfs_file_write(o->fh, off, v->data + off, len);
	if (k != (ssize_t)len)
		rc = k < 0 ? (int)k : -EIO;
	if (!rc && sync) {
		rc = vcfs_file_fsync(o->fh, 0);
		if (!rc)
			v->acked = 1;
	}
	trace(o->f, "host %d write%s %u@%u -> %s (version %u)", h->id, sync ? "+fsync" : "", len,
	      off, rc ? vcfs_strerror(rc) : "ok", F[o->f].nv - 1);
	if (rc)
		op_failed(h, sync ? "write+fsync" : "write", rc);
}

static void op_close(struct shost *h)
{
	unsigned i;
	int rc;

	if (!h->nopen)
		return;
	i = (unsigned)below(h->nopen);
	struct ofile o = h->open[i];
	h->open[i] = h->open[--h->nopen];
	if (F[o.f].writer == h->id)
		F[o.f].writer = -1;
	rc = vcfs_file_release(o.fh);
	trace(o.f, "host %d closes: %s", h->id, rc ? vcfs_strerror(rc) : "ok");
	/* a close promises no durability (only fsync does) */
	if (rc)
		op_failed(h, "close", rc);
}

static void op_unlink(struct shost *h)
{
	int f = pick_file(1), rc;

	if (f < 0 || F[f].writer >= 0)
		return;
	struct fver *v = fver_new(f);
	free(v->data);
	v->data = NULL;
	v->size = 0;
	v->exists = 0;
	rc = vcfs_fs_unlink(h->fs, vcfs_fs_root(h->fs), F[f].name);
	if (!rc && vcfs_fs_sync)
		rc = vcfs_fs_sync(h->fs);
	trace(f, "host %d unlinks it: %s", h->id, rc ? vcfs_strerror(rc) : "ok");
	if (!rc)
		v->acked = 1;
	else if (rc == -ENOENT)
		F[f].nv--;	/* not there (an unacked create): nothing changed */
	else
		op_failed(h, "unlink", rc);
}

static void host_op_inner(struct shost *h);

static void host_op(struct shost *h)
{
	if (h->busy)
		return;
	h->busy = 1;
	host_op_inner(h);
	h->busy = 0;
}

static void host_op_inner(struct shost *h)
{
	unsigned k = (unsigned)below(100);

	cur_host = h->id;
	if (k < 20)
		op_create(h);
	else if (k < 35)
		op_open(h);
	else if (k < 60)
		op_write(h, 0);
	else if (k < 78)
		op_write(h, 1);
	else if (k < 92)
		op_close(h);
	else
		op_unlink(h);
}

/* ---- the scheduler ---- */

static void check_exclusive(void)
{
	for (int f = 0; f < nf; f++) {
		int holders = 0, first = -1;
		for (int i = 0; i < nh; i++) {
			if (H[i].st != H_UP || find_open(&H[i], f) < 0 || H[i].stalled)
				continue;
			if (!lease_ok(&H[i]))
				continue;
			if (!holders++)
				first = i;
			else
				fail("%s: hosts %d and %d both hold it open for writing with "
				     "valid leases", F[f].name, first, i);
		}
	}
}

/* Due heartbeat work of host h (its threads' part). */
static void tick_host(struct shost *h, int no_monitor)
{
	if (h->st != H_UP || h->stalled || sim_now < h->paused_until || !h->hb || h->ticking)
		return;
	h->ticking = 1;
	if (sim_now >= h->next_renew && h->hb) {
		cur_host = h->id;
		vcfs_hb_renew_tick(h->hb);
		h->next_renew = sim_now + T_NS - below(T_NS / 4);
	}
	if (!no_monitor && sim_now >= h->next_mon && h->hb) {
		cur_host = h->id;
		vcfs_hb_monitor_tick(h->hb);
		h->next_mon = sim_now + T_NS - below(T_NS / 4);
	}
	h->ticking = 0;
}

static void hb_ticks(int skip_monitor_of)
{
	for (int i = 0; i < nh; i++)
		tick_host(&H[i], i == skip_monitor_of);
}

/* One iteration: time passes, due heartbeat work and maybe an operation.
 * nested: inside a stalled request (that host is skipped). */
static void sched_iteration(int nested)
{
	int order[MAXH];

	sim_now += below(T_NS / 3) + 1;
	if (!nested) {
		static unsigned settled;
		if (recoveries_seen != settled) {
			settled = recoveries_seen;
			bg_settle();
		}
		bg_run(-1);
	}
	for (int i = 0; i < nh; i++)
		order[i] = i;
	for (int i = nh - 1; i > 0; i--) {
		int j = (int)below((uint64_t)i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (int k = 0; k < nh; k++) {
		struct shost *h = &H[order[k]];
		if (h->stalled)
			continue;
		if (h->st == H_DOWN) {
			if (!nested && !quiesce && sim_now >= h->up_at && chance(300))
				host_mount(h);
			continue;
		}
		if (sim_now < h->paused_until)
			continue;
		tick_host(h, 0);
		if (h->hb && vcfs_hb_fenced(h->hb) && !h->busy) {
			host_crash(h, "fenced");
			continue;
		}
	}
	if (!nested) {
		int i = (int)below((uint64_t)nh);
		struct shost *h = &H[i];
		if (h->st == H_UP && sim_now >= h->paused_until) {
			if (quiesce) {
				host_op(h);
			} else if (chance(6)) {
				host_crash(h, "crash event");
			} else if (!no_pauses && chance(8)) {
				h->paused_until = sim_now + 2 * T_NS + below(10 * T_NS);
				if (verbose)
					fprintf(stderr, "  %.3f: host %d pauses until %.3f\n",
						(double)sim_now / 1e9, h->id,
						(double)h->paused_until / 1e9);
			} else {
				host_op(h);
			}
		}
	} else {
		/* while a request stalls the others keep working */
		int i = (int)below((uint64_t)nh);
		struct shost *h = &H[i];
		if (h->st == H_UP && !h->stalled && sim_now >= h->paused_until && chance(500)) {
			host_op(h);
		}
	}
	check_exclusive();
}

/* ---- the end: recover everything, check everything ---- */

static int fsck_clean(char *why, size_t wl)
{
	struct vcfs_fsck_opts fo = { .mode = VCFS_FSCK_CHECK, .skip_live_wait = 1 };
	struct vcfs_fsck_stats st;
	struct vcfs_disk *d;
	char *text = NULL;
	size_t tl;
	int rc, bad = 0;

	CK(vcfs_mem_open(store, 1000, NULL, &d));
	fo.out = open_memstream(&text, &tl);
	if (!fo.out)
		die("open_memstream");
	rc = vcfs_fsck(d, &fo, &st);
	fclose(fo.out);
	vcfs_disk_close(d);
	if (rc) {
		/* OR01 and its follow-ups are allowed after recovery */
		for (char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
			if (p[0] >= 'A' && p[0] <= 'Z' && p[1] >= 'A' && p[1] <= 'Z' &&
			    p[2] >= '0' && p[2] <= '9' && p[4] == ' ' && strncmp(p, "OR01", 4) &&
			    strncmp(p, "BT01", 4) && strncmp(p, "DR11", 4)) {
				snprintf(why, wl, "fsck -n exit %d: %.200s", rc, p);
				bad = 1;
				break;
			}
		}
		if (!bad && rc != 4) {
			snprintf(why, wl, "fsck -n exit %d: %.300s", rc, text ? text : "");
			bad = 1;
		}
	}
	free(text);
	return bad;
}

static void final_check(int power_cut)
{
	struct vcfs_mount_opts mo = { .host_name = "survivor" };
	struct vcfs_slot_info si[MAXSLOT];
	struct vcfs_disk *d;
	struct vcfs_fs *fs;
	uint8_t *buf = malloc(FILE_MAX + 1);
	char why[512];
	int rc;

	if (!buf)
		die("out of memory");
	for (int i = 0; i < nh; i++)
		host_crash(&H[i], "end of run");
	if (power_cut) {
		struct vcfs_mem_cut_stats cs;
		CK(vcfs_mem_power_cut(store, rnd(), &cs));
		if (verbose)
			fprintf(stderr, "  power cut: %llu volatile writes kept, %llu dropped, "
				"%llu torn\n", (unsigned long long)cs.kept,
				(unsigned long long)cs.dropped, (unsigned long long)cs.torn);
	}
	CK(vcfs_mem_open(store, 999, NULL, &d));
	cur_host = -1;
	rc = vcfs_fs_mount_disk(d, &mo, &fs);
	if (rc) {
		fail("the survivor cannot mount: %s", vcfs_strerror(rc));
		free(buf);
		return;
	}
	for (uint64_t t = 0; t < 12 * T_NS; t += T_NS) {
		sim_now += T_NS;
		vcfs_hb_renew_tick(fs->hb);
		vcfs_hb_monitor_tick(fs->hb);
	}
	CK(vcfs_hb_slots(fs->hb, si));
	for (uint32_t s = 0; s < sb.max_hosts; s++)
		if (s != vcfs_hb_slot(fs->hb) && si[s].valid && si[s].state != VCFS_HB_FREE)
			fail("slot %u still %s after the survivor watched it for 12 T", s,
			     si[s].state == VCFS_HB_LIVE ? "LIVE" : "RECOVERING");
	for (int f = 0; f < nf; f++) {
		struct vcfs_attr a;
		struct vcfs_file *fh;
		ssize_t got = 0;
		rc = vcfs_fs_lookup(fs, vcfs_fs_root(fs), F[f].name, &a);
		if (rc && rc != -ENOENT) {
			fail("survivor: lookup %s: %s", F[f].name, vcfs_strerror(rc));
			break;
		}
		if (!rc) {
			rc = vcfs_fs_open(fs, a.ino, O_RDONLY, 0, &fh);
			if (rc) {
				fail("survivor: open %s: %s", F[f].name, vcfs_strerror(rc));
				break;
			}
			got = read_all(fh, buf);
			vcfs_file_release(fh);
			if (got < 0) {
				fail("survivor: read %s: %s", F[f].name, vcfs_strerror((int)got));
				break;
			}
		}
		if (between(f, !rc, buf, (uint64_t)got, why, sizeof(why))) {
			fail("after recovery%s: %s", power_cut ? " from a power cut" : "", why);
			break;
		}
	}
	free(buf);
	bg_set_free(1);
	rc = vcfs_fs_unmount(fs);
	bg_set_free(0);
	if (rc)
		fail("the survivor's unmount: %s", vcfs_strerror(rc));
	if (fsck_clean(why, sizeof(why)))
		fail("after recovery%s: %s", power_cut ? " from a power cut" : "", why);
}

struct seed_stats { unsigned crashes, ops, mounts; };

static int run_seed(uint64_t seed, int nhosts, unsigned steps, double *secs)
{
	struct vcfs_mkfs_params mp = { .volume_bytes = IMG_BYTES, .io_timeout_ms = IO_TIMEOUT_MS,
				       .label = "sim" };
	struct timespec t0, t1;
	struct vcfs_disk *d;
	int power_cut;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rng = seed * 0x2545f4914f6cdd1dull + 1;
	srandom((unsigned)seed);	/* mkfs mixes random() into the volume generation */
	nh = nhosts ? nhosts : 8 + (int)below(9);
	mp.max_hosts = (uint32_t)nh * 2 + 1;	/* room for restarts before recovery, + the survivor */
	nfail_seed = 0;
	fail_msg[0] = 0;
	logtail[0] = 0;
	nrc = 0;
	memset(dying_gen, 0, sizeof(dying_gen));
	sim_now = 1000 * VCFS_NS_PER_S;
	/* every thread of the last seed's hosts was joined: start the table over */
	pthread_mutex_lock(&bg_mu);
	for (int i = 0; i < nbgt; i++)
		if (bgts[i].alive)
			die("a background thread of the last seed is still alive");
	nbgt = 0;
	pthread_mutex_unlock(&bg_mu);
	cur_host = -1;
	in_stall = quiesce = 0;
	vcfs_mem_destroy(store);
	CK(vcfs_mem_create(store, IMG_BYTES, VCFS_MEM_VOLATILE));
	CK(vcfs_mem_open(store, 1001, NULL, &d));
	CK(vcfs_mkfs(d, &mp, VCFS_MKFS_FORCE, &sb));
	if (verbose)
		fprintf(stderr, "  layout: hb %llu, journals %llu, cluster records %llu, inodes "
			"%llu (+2 per inode), small blocks %llu, large blocks %llu\n",
			(unsigned long long)sb.hb_start, (unsigned long long)sb.journal_start,
			(unsigned long long)sb.cmeta_start, (unsigned long long)sb.inode_start,
			(unsigned long long)sb.small_start, (unsigned long long)sb.large_start);
	CK(vcfs_disk_flush(d));
	vcfs_disk_close(d);
	memset(H, 0, sizeof(H));
	for (int f = 0; f < nf; f++)
		for (unsigned j = 0; j < F[f].nv; j++)
			free(F[f].v[j].data);
	memset(F, 0, sizeof(F));
	nf = 0;
	for (int i = 0; i < nh; i++) {
		H[i].id = i;
		H[i].st = H_DOWN;
		H[i].up_at = sim_now + below(T_NS);
	}
	for (unsigned s = 0; s < steps && !nfail_seed; s++)
		sched_iteration(0);
	/* the live hosts recover the dead ones (the survivor needs a free slot) */
	quiesce = 1;
	for (uint64_t end = sim_now + 12 * T_NS; sim_now < end && !nfail_seed;)
		sched_iteration(0);
	quiesce = 0;
	power_cut = chance(333);
	if (!nfail_seed)
		final_check(power_cut);
	else
		for (int i = 0; i < nh; i++)
			host_crash(&H[i], "failed");
	vcfs_mem_destroy(store);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (nfail_seed) {
		printf("FAIL seed %llu (%d hosts): %s\n  replay: VCFS_SIM_SEED=%llu "
		       "build/tests/sim -H %d -k %u -v\n", (unsigned long long)seed, nh, fail_msg,
		       (unsigned long long)seed, nh, steps);
		if (verbose)
			printf("  last library messages:\n%s", logtail);
		fflush(stdout);
		return 1;
	}
	if (verbose)
		printf("seed %llu: %d hosts, %u steps, %s, %.2f s, %u recoveries seen\n",
		       (unsigned long long)seed, nh, steps, power_cut ? "power cut" : "crash",
		       *secs, nrc);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t seed = (uint64_t)time(NULL) % 1000000;
	unsigned nseeds = 200, steps = 300, failed = 0, recov = 0;
	int nhosts = 0, opt;
	double total = 0, s;

	while ((opt = getopt(argc, argv, "s:n:H:k:vESP")) != -1) {
		switch (opt) {
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'n': nseeds = (unsigned)atoi(optarg); break;
		case 'H': nhosts = atoi(optarg); break;
		case 'k': steps = (unsigned)atoi(optarg); break;
		case 'v': verbose++; break;
		case 'E': no_errors = 1; break;
		case 'S': no_stalls = 1; break;
		case 'P': no_pauses = 1; break;
		default:
			fprintf(stderr, "usage: sim [-s SEED] [-n SEEDS] [-H HOSTS] [-k STEPS] [-v] "
				"[-E no I/O errors] [-S no stalls] [-P no pauses]\n");
			return 2;
		}
	}
	if (getenv("VCFS_SIM_SEED") && *getenv("VCFS_SIM_SEED")) {
		seed = strtoull(getenv("VCFS_SIM_SEED"), NULL, 0);
		nseeds = 1;
	}
	if (nhosts < 0 || nhosts > MAXH - 1)
		die("-H: 1..%d hosts", MAXH - 1);
	setvbuf(stdout, NULL, _IOLBF, 0);
	main_thread = pthread_self();
	if (pthread_key_create(&bg_key, bg_exit))
		die("pthread_key_create");
	vcfs_log_set_sink(log_sink, NULL);
	vcfs_log_set_level(verbose > 1 ? VCFS_LOG_DEBUG : VCFS_LOG_INFO);
	vcfs_clock_set(sim_clock, NULL);
	vcfs_clock_set_sleep(sim_sleep, NULL);
	vcfs_clock_set_idle(sim_idle, NULL);
	vcfs_hb_set_driver(hb_driver, NULL);
	vcfs_mem_set_hook(io_hook, NULL);
	printf("sim: seeds %llu..%llu (VCFS_SIM_SEED=S replays one)\n",
	       (unsigned long long)seed, (unsigned long long)(seed + nseeds - 1));
	for (unsigned i = 0; i < nseeds; i++) {
		failed += run_seed(seed + i, nhosts, steps, &s);
		recov += nrc;
		total += s;
	}
	printf("sim: %u seeds (%llu..%llu), %u failed; %u host incarnations recovered by "
	       "survivors; %u background-thread waits timed out; %.1f s\n", nseeds,
	       (unsigned long long)seed, (unsigned long long)(seed + nseeds - 1), failed, recov,
	       bg_timeouts, total);
	return failed ? 1 : 0;
}
