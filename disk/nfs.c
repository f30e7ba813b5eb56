/*
 * nfs.c - the nfs:// backend: one large file on an NFSv3 export, reached with
 * libnfs (no kernel mount, so no page cache and no attribute cache between
 * hosts).
 *
 *   nfs://server[:port]/export/dir/file[?opt=val&...]
 *
 * The export is found by trying the URI's directory prefixes, longest first,
 * as MOUNT paths; the rest is the file's path inside the export.  The file
 * must exist (its size is the datastore size) unless ?create=SIZE is given
 * (K/M/G/T suffixes), which creates it when missing.  Other options passed
 * to libnfs: nfsport, mountport (skip the portmapper), uid, gid, tcp-syncnt,
 * debug.  The port in the authority is the NFS port (= nfsport).  version
 * must be 3 (Debian's libnfs 4.0 NFSv4 path breaks writes over ~3.9 KiB);
 * readahead, pagecache and autoreconnect are refused: caching would hide
 * other hosts' writes and libnfs's own reconnect replays requests after the
 * I/O timeout (see "Time" below).
 *
 * ---- I/O path ----
 * libnfs contexts are not thread-safe, so one service thread owns the
 * context.  Callers build a request, queue it, poke an eventfd and sleep on
 * the request's condvar; the service thread issues it with the async API
 * (nfs_pread_async, nfs_pwrite_async, ...), polls the socket and the eventfd,
 * and completes requests from libnfs callbacks.  Every queued request is on
 * the wire at once, so N calling threads give the server queue depth N.
 * Write data is copied into the request (libnfs may re-send a short write's
 * tail from it after a caller gave up); read data is copied to the caller's
 * buffer under the lock, only while the caller still waits.
 *
 * Durability: plain writes go out UNSTABLE on the main handle; flush is a
 * COMMIT.  FUA writes and CAS writes go through a second handle opened O_SYNC,
 * which libnfs sends as FILE_SYNC: stable when acknowledged.
 *
 * Time: every request carries a deadline (now + io timeout).  A request
 * still unanswered at its deadline fails with -ETIMEDOUT and the whole
 * connection is torn down (libnfs cancels every pending call), so that no
 * request of ours can still be sent later; the next request reconnects
 * (mount, open) within its own deadline.  A server that vanishes therefore
 * costs each caller at most one io timeout, never a hang.
 *
 * ---- Compare-and-write: per-sector lock files ----
 * NFSv3 has no compare-and-swap and no locks of its own (NLM is a separate,
 * advisory protocol), but CREATE with createmode GUARDED fails with EEXIST
 * when the name exists, atomically at the server.  So sector s of file F is
 * locked by creating "F.cas/s" (libnfs: O_CREAT|O_EXCL -> GUARDED), which
 * holds 32 bytes: "VCFSLCK1", our 64-bit owner key, a per-acquisition nonce,
 * the sector (all little-endian).  Then READ s, compare, WRITE s FILE_SYNC,
 * REMOVE the lock file.  With T = io timeout, G = STALE_GUARD_FACTOR * T = 4T:
 *
 * Assumption (A): a request we send at time t executes at the server before
 * t + T or never.  We enforce our half by tearing the connection down at the
 * deadline (above) and never letting libnfs re-send; clocks of hosts run at
 * the same rate (each host only measures its own intervals, on vcfs_now_ns).
 *
 * Holder rules (h0 = when we SENT the CREATE, so the file exists no earlier):
 *   - the data WRITE is sent only before h0 + T; later, give up (no write,
 *     -ETIMEDOUT): all our writes execute before h0 + 2T;
 *   - the lock file is removed only if the REMOVE is sent before h0 + 2T
 *     (executes before h0 + 3T); later it is left for breakers.
 *
 * Stale locks: a contender that gets EEXIST stats the lock file.  Its
 * identity I = (fileid, ctime, mtime, size) is remembered with the time the
 * first reply showing I arrived (o1 >= creation >= h0).  A lock file never
 * comes back with the same identity once replaced or removed (ctime is in
 * nanoseconds and a new file has a new ctime), so seeing I at o1 and again
 * later means it stayed in place the whole time.  The contender may break I
 * when (a) opts.holder_dead(key in the file) says the holder is dead, or
 * (b) a confirming stat SENT at l0 >= o1 + G still shows I.  In case (b),
 * l0 > h0 + 3T, so the holder has finished every write and removal it will
 * ever make (if it had removed I, the stat would not show I).
 *
 * Breaking never leaves the name empty (an empty name would let a normal
 * CREATE in while another breaker's stale decision is still in flight): the
 * breaker creates its own lock file "F.cas/s.brk.<key>.<nonce>" first, then
 * RENAMEs it over "F.cas/s" (atomic replace), the rename sent before l0 + T.
 * Several breakers may have decided on the same I; each rename executes
 * before (first replace R1) + 2T, because each decision's stat ran before R1
 * and its rename was sent within T of that stat.  So a breaker waits until
 * 2T after its rename reply (b1 >= R1) and stats the name again: if the
 * fileid is its own, every stale rename has landed and it is the holder;
 * otherwise it lost (its file was replaced, i.e. unlinked) and retries.
 * The fileids in this race are all distinct: every racing file existed
 * before R1, at the same time.  The winner's own guard starts at its rename
 * R >= b0 (rename sent): breakers of it need G from a reply after R, so it
 * sends its WRITE and REMOVE only before b0 + 3T (it requires b1 < b0 + T/4,
 * so about 0.75 T remain after the 2T wait).
 *
 *   Two breakers that decided on the same stale I:
 *
 *   host A (breaker)                      host B (breaker)
 *   stat s -> I (sent l0a >= o1a + G)     stat s -> I (sent l0b >= o1b + G)
 *   rename A.brk -> s   (R1)              .
 *   reply b1a; sleep until b1a + 2T       rename B.brk -> s (R2 < R1 + 2T):
 *   .                                       replaces A's file
 *   .                                     reply b1b; sleep until b1b + 2T
 *   stat s: fileid is B's -> lost,        .
 *     back off, CREATE -> EEXIST          stat s: fileid is B's -> holder
 *     (observes B's file from now)        READ, compare, WRITE (< b0b + 3T)
 *   .                                     REMOVE s (sent < b0b + 3T)
 *   CREATE s -> ok: holder                .
 *
 *   A slow holder and a breaker (why the holder gives up):
 *
 *   host H (holder)                       host C (contender)
 *   CREATE s (sent h0) -> ok              CREATE s -> EEXIST; stat -> I (o1)
 *   READ s ...   paused past h0 + T       ... backs off, stats, I unchanged
 *   now > h0 + T: no WRITE, -ETIMEDOUT    .
 *   now > h0 + 2T: leave s in place       stat sent at l0 >= o1 + 4T -> I
 *   .                                     rename C.brk -> s, wait 2T, holder
 *   (H's WRITE, had it been sent before h0 + T, executed before h0 + 2T,
 *    long before C's rename after h0 + 4T.)
 *
 *   A holder that removed its file while a contender was counting:
 *
 *   host H (holder)                       host C (contender)
 *   CREATE s (h0), READ, WRITE            CREATE s -> EEXIST; stat -> I (o1)
 *   REMOVE s (executes < h0 + 3T)         .
 *   .                                     CREATE s -> ok (never breaks: a
 *                                           confirming stat after o1 + 4T
 *                                           cannot show I any more)
 *
 * Observations persist across calls (a small per-disk table), so a CAS that
 * times out while a stale lock is being watched resumes the watch on the
 * next call.  Bounds: an uncontended CAS is about 6 round trips; waiting
 * for a live holder is bounded by T (-ETIMEDOUT); a CAS that breaks a lock
 * spends 2T waiting, so it returns within about 3.5 T.  A CAS that returns
 * -ETIMEDOUT after sending its WRITE may or may not have written: re-read.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <nfsc/libnfs.h>
#include "disk_int.h"
#include "../common/clock.h"
#include "../common/log.h"
#include "../common/size.h"

#define NFS_MAX_IO	(1u << 20)
#define LOCK_MAGIC	"VCFSLCK1"
#define LOCK_FILE_LEN	32
#define OBS_SLOTS	64
#define POLL_TICK_MS	100

enum nreq_op {
	NR_READ, NR_WRITE, NR_FSYNC, NR_STAT, NR_UNLINK, NR_RENAME,
	NR_LOCK_CREATE,		/* CREATE excl, WRITE 32 bytes, [GETATTR], close */
	NR_LOCK_READ,		/* open, READ 32 bytes, close */
};

/* steps of the composite lock-file requests */
enum { LS_CREATE, LS_OPEN, LS_IO, LS_STAT, LS_CLOSE };

/*
 * One request.  Fields above "protected by p->mu" are written by the caller
 * before queueing and read-only afterwards; next/inext/iprev/step/tfh/err
 * belong to the service thread.
 */
struct nfs_priv;

struct nreq {
	struct nfs_priv *p;
	enum nreq_op op;
	uint64_t off;
	size_t len;
	int sync;			/* write through the FILE_SYNC handle */
	int want_stat;			/* NR_LOCK_CREATE: GETATTR the new file */
	int soft;			/* read-only: on timeout fail it but keep
					 * the connection (see svc_main) */
	char *path, *path2;		/* owned */
	void *wbuf;			/* owned copy of write data / lock content */
	uint64_t deadline;		/* vcfs_now_ns() by which it must be done */
	pthread_cond_t cv;
	/* protected by p->mu */
	void *ubuf;			/* caller's read buffer while it waits */
	int refs;			/* caller + service thread */
	int done;
	int status;			/* 0 / bytes / -errno */
	int created;			/* NR_LOCK_CREATE: the file was made */
	struct nfs_stat_64 st;		/* NR_STAT, NR_LOCK_CREATE want_stat */
	/* service thread only */
	struct nreq *next;		/* submission queue */
	struct nreq *inext, *iprev;	/* in-flight list */
	int step;
	int err;
	struct nfsfh *tfh;
};

/* A lock file seen held by someone else (see the protocol above). */
struct obs {
	uint64_t sector;
	int used;
	uint64_t ino, ctime_s, ctime_ns, mtime_s, mtime_ns, size;
	uint64_t first_seen;		/* our clock, when the first reply came */
};

struct nfs_priv {
	/* immutable after open */
	char *host;
	char *export;			/* MOUNT path */
	char *file;			/* path inside the export, "/..." */
	char *casdir;			/* file + ".cas" */
	char *opts;			/* libnfs URL options, "a=b&c=d" or "" */
	char uri[200];			/* for messages */
	uint64_t key;			/* lock-file owner key */
	uint64_t T;			/* io timeout, ns */
	int rdonly;

	pthread_mutex_t mu;
	struct nreq *q_head, *q_tail;	/* protected by mu */
	int stop;			/* protected by mu */
	int efd;			/* wakes the service thread */
	pthread_t thr;
	int thr_started;

	/* service thread only (or the opener before the thread starts) */
	struct nfs_context *nfs;
	struct nfsfh *fh, *fh_sync;
	struct nreq *inflight;
	int tearing;			/* callbacks during teardown: no chaining */
	int teardown_err;
	uint64_t size;			/* file size seen at connect */
	uint64_t readmax, writemax;

	pthread_mutex_t obs_mu;
	struct obs obs[OBS_SLOTS];	/* protected by obs_mu */
};

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static uint64_t rand64(void)
{
	static _Thread_local uint64_t s;
	uint64_t x;

	if (!s) {
		if (getrandom(&s, sizeof(s), 0) != sizeof(s))
			s = vcfs_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)&x;
		s |= 1;
	}
	x = s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return s = x;
}

static void put_le64(unsigned char *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *b)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

/* libnfs's last error message, never NULL */
static const char *nfs_errstr(struct nfs_context *nfs)
{
	const char *e = nfs ? nfs_get_error(nfs) : NULL;

	return e ? e : "no detail from libnfs";
}

static char *path_join(const char *a, const char *b)
{
	char *s;

	if (asprintf(&s, "%s%s", a, b) < 0)
		return NULL;
	return s;
}

/* ------------------------------------------------------------------ */
/* requests: completion and reference counting                          */

static struct nreq *req_new(struct nfs_priv *p, enum nreq_op op, uint64_t T)
{
	struct nreq *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->p = p;
	r->op = op;
	r->refs = 2;
	r->deadline = vcfs_now_ns() + T;
	pthread_cond_init(&r->cv, NULL);
	return r;
}

static void req_free(struct nreq *r)
{
	pthread_cond_destroy(&r->cv);
	free(r->path);
	free(r->path2);
	free(r->wbuf);
	free(r);
}

static const char *op_name(const struct nreq *r)
{
	static const char *const names[] = {
		[NR_READ] = "a READ", [NR_WRITE] = "a WRITE", [NR_FSYNC] = "a COMMIT",
		[NR_STAT] = "a LOOKUP/GETATTR", [NR_UNLINK] = "a REMOVE",
		[NR_RENAME] = "a RENAME", [NR_LOCK_CREATE] = "a lock-file CREATE",
		[NR_LOCK_READ] = "a lock-file read",
	};
	return names[r->op];
}

/* Drop one reference; p->mu held. */
static void req_put_locked(struct nreq *r)
{
	if (--r->refs == 0)
		req_free(r);
}

/* Record the result (first one wins) and wake the caller; p->mu held. */
static void req_finish_locked(struct nreq *r, int status)
{
	if (r->done)
		return;
	r->status = status;
	r->done = 1;
	r->ubuf = NULL;
	pthread_cond_signal(&r->cv);
}

static void inflight_add(struct nfs_priv *p, struct nreq *r)
{
	r->iprev = NULL;
	r->inext = p->inflight;
	if (p->inflight)
		p->inflight->iprev = r;
	p->inflight = r;
}

static void inflight_del(struct nfs_priv *p, struct nreq *r)
{
	if (r->iprev)
		r->iprev->inext = r->inext;
	else
		p->inflight = r->inext;
	if (r->inext)
		r->inext->iprev = r->iprev;
	r->inext = r->iprev = NULL;
}

/*
 * libnfs is done with r: take it off the in-flight list, finish it with
 * status (unless a timeout already did) and drop the service reference.
 * Service thread only.  A status seen while tearing down is replaced by the
 * reason for the teardown.
 */
static void req_end(struct nfs_priv *p, struct nreq *r, int status)
{
	if (p->tearing && status < 0)
		status = p->teardown_err;
	inflight_del(p, r);
	pthread_mutex_lock(&p->mu);
	req_finish_locked(r, status);
	req_put_locked(r);
	pthread_mutex_unlock(&p->mu);
}

/* ------------------------------------------------------------------ */
/* libnfs callbacks (service thread, inside nfs_service or a teardown)   */

static void rw_cb(int status, struct nfs_context *nfs, void *data, void *arg)
{
	struct nreq *r = arg;
	struct nfs_priv *p = r->p;

	(void)nfs;

	if (r->op == NR_READ && status > 0) {
		pthread_mutex_lock(&p->mu);
		if (!r->done && r->ubuf)
			memcpy(r->ubuf, data, (size_t)status < r->len ? (size_t)status : r->len);
		pthread_mutex_unlock(&p->mu);
	}
	if (status < 0 && !p->tearing)
		vcfs_debug("%s: %s: %s", p->uri, r->op == NR_READ ? "READ" : "WRITE",
			   data ? (const char *)data : "");
	req_end(p, r, status);
}

static void simple_cb(int status, struct nfs_context *nfs, void *data, void *arg)
{
	struct nreq *r = arg;
	struct nfs_priv *p = r->p;

	(void)nfs;

	if (r->op == NR_STAT && status == 0 && data) {
		pthread_mutex_lock(&p->mu);
		r->st = *(struct nfs_stat_64 *)data;
		pthread_mutex_unlock(&p->mu);
	}
	req_end(p, r, status);
}

static void lock_cb(int status, struct nfs_context *nfs, void *data, void *arg);

/* Advance a composite lock-file request by one step; returns the libnfs
 * issue result (0 = callback pending). */
static int lock_next(struct nfs_priv *p, struct nreq *r)
{
	switch (r->step) {
	case LS_IO:
		if (r->op == NR_LOCK_CREATE)
			return nfs_pwrite_async(p->nfs, r->tfh, 0, LOCK_FILE_LEN, r->wbuf,
						lock_cb, r);
		return nfs_pread_async(p->nfs, r->tfh, 0, LOCK_FILE_LEN, lock_cb, r);
	case LS_STAT:
		return nfs_fstat64_async(p->nfs, r->tfh, lock_cb, r);
	case LS_CLOSE:
		return nfs_close_async(p->nfs, r->tfh, lock_cb, r);
	}
	return -1;
}

static void lock_cb(int status, struct nfs_context *nfs, void *data, void *arg)
{
	struct nreq *r = arg;
	struct nfs_priv *p = r->p;

	(void)nfs;

	switch (r->step) {
	case LS_CREATE:
	case LS_OPEN:
		if (status < 0) {
			req_end(p, r, status);
			return;
		}
		r->tfh = data;
		if (r->op == NR_LOCK_CREATE) {
			pthread_mutex_lock(&p->mu);
			r->created = 1;
			pthread_mutex_unlock(&p->mu);
		}
		r->step = LS_IO;
		break;
	case LS_IO:
		if (status < 0)
			r->err = status;
		else if (r->op == NR_LOCK_READ) {
			/* the content goes into wbuf (owned), len = bytes */
			memcpy(r->wbuf, data, (size_t)status < LOCK_FILE_LEN ? (size_t)status
									   : LOCK_FILE_LEN);
			r->len = (size_t)status;
		} else if (status != LOCK_FILE_LEN)
			r->err = -EIO;
		r->step = (r->op == NR_LOCK_CREATE && r->want_stat && !r->err) ? LS_STAT
										 : LS_CLOSE;
		break;
	case LS_STAT:
		if (status < 0)
			r->err = status;
		else {
			pthread_mutex_lock(&p->mu);
			r->st = *(struct nfs_stat_64 *)data;
			pthread_mutex_unlock(&p->mu);
		}
		r->step = LS_CLOSE;
		break;
	case LS_CLOSE:
		if (status < 0 && !r->err)
			r->err = status;
		r->tfh = NULL;
		req_end(p, r, r->err);
		return;
	}
	if (p->tearing) {		/* the context is going away: stop here */
		req_end(p, r, p->teardown_err);
		return;
	}
	if (lock_next(p, r) < 0) {
		vcfs_err("%s: cannot queue a lock-file request: %s", p->uri,
			 nfs_errstr(p->nfs));
		req_end(p, r, -ENOMEM);
	}
}

/* Put r on the wire; on failure finish it.  Service thread. */
static void req_issue(struct nfs_priv *p, struct nreq *r)
{
	int rc = -1;

	inflight_add(p, r);
	switch (r->op) {
	case NR_READ:
		rc = nfs_pread_async(p->nfs, p->fh, r->off, r->len, rw_cb, r);
		break;
	case NR_WRITE:
		rc = nfs_pwrite_async(p->nfs, r->sync ? p->fh_sync : p->fh, r->off, r->len,
				      r->wbuf, rw_cb, r);
		break;
	case NR_FSYNC:
		rc = nfs_fsync_async(p->nfs, p->fh, simple_cb, r);
		break;
	case NR_STAT:
		rc = nfs_stat64_async(p->nfs, r->path, simple_cb, r);
		break;
	case NR_UNLINK:
		rc = nfs_unlink_async(p->nfs, r->path, simple_cb, r);
		break;
	case NR_RENAME:
		rc = nfs_rename_async(p->nfs, r->path, r->path2, simple_cb, r);
		break;
	case NR_LOCK_CREATE:
		r->step = LS_CREATE;
		rc = nfs_create_async(p->nfs, r->path, O_RDWR | O_EXCL | O_SYNC, 0644,
				      lock_cb, r);
		break;
	case NR_LOCK_READ:
		r->step = LS_OPEN;
		rc = nfs_open_async(p->nfs, r->path, O_RDONLY, lock_cb, r);
		break;
	}
	if (rc < 0) {
		vcfs_err("%s: cannot queue a request: %s", p->uri, nfs_errstr(p->nfs));
		req_end(p, r, -ENOMEM);
	}
}

/* ------------------------------------------------------------------ */
/* connection: mount, open, teardown                                    */

struct wait1 {
	int is_stat;			/* copy a struct nfs_stat_64 from data */
	int done;
	int status;
	void *data;			/* nfsfh or copied stat */
	struct nfs_stat_64 st;
	char msg[256];
};

static void wait1_cb(int status, struct nfs_context *nfs, void *data, void *arg)
{
	struct wait1 *w = arg;

	(void)nfs;
	w->done = 1;
	w->status = status;
	if (status < 0) {
		snprintf(w->msg, sizeof(w->msg), "%s", data ? (const char *)data : "");
	} else if (data && w->is_stat) {
		w->st = *(struct nfs_stat_64 *)data;
	} else if (data) {
		w->data = data;
	}
}

/*
 * Drive nfs until *done or the deadline: for connection set-up, before the
 * service loop proper runs (the caller owns nfs).  Returns 0 or -ETIMEDOUT /
 * -ENOTCONN (the context is then unusable).
 */
static int run_until(struct nfs_context *nfs, const int *done, uint64_t deadline)
{
	while (!*done) {
		struct pollfd pfd = { .fd = nfs_get_fd(nfs), .events = (short)nfs_which_events(nfs) };
		uint64_t now = vcfs_now_ns();
		int ms, n;

		if (now >= deadline)
			return -ETIMEDOUT;
		ms = (int)((deadline - now + VCFS_NS_PER_MS - 1) / VCFS_NS_PER_MS);
		if (ms > POLL_TICK_MS)
			ms = POLL_TICK_MS;
		if (pfd.fd < 0)
			return -ENOTCONN;
		n = poll(&pfd, 1, ms);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (nfs_service(nfs, n > 0 ? pfd.revents : 0) < 0)
			return *done ? 0 : -ENOTCONN;
	}
	return 0;
}

static struct nfs_context *ctx_new(struct nfs_priv *p)
{
	struct nfs_context *nfs = nfs_init_context();
	char *url = NULL;

	if (!nfs)
		return NULL;
	nfs_set_version(nfs, 3);
	nfs_set_autoreconnect(nfs, 0);
	nfs_set_dircache(nfs, 0);
	nfs_set_readahead(nfs, 0);
	/* apply libnfs's own URL options (ports, uid/gid, tcp-syncnt) */
	if (p->opts[0]) {
		struct nfs_url *u;
		if (asprintf(&url, "nfs://%s/?%s", p->host, p->opts) < 0) {
			nfs_destroy_context(nfs);
			return NULL;
		}
		u = nfs_parse_url_incomplete(nfs, url);
		free(url);
		if (!u) {
			vcfs_err("%s: libnfs refused the URI options '%s': %s", p->uri, p->opts,
				 nfs_errstr(nfs));
			nfs_destroy_context(nfs);
			return NULL;
		}
		nfs_destroy_url(u);
	}
	return nfs;
}

/*
 * A failed MOUNT either was refused for this path by a server that answered
 * (its reply names an MNT3ERR_* status) or never reached one; libnfs reports
 * the latter with assorted errnos, so classify it by its message.
 */
static int mount_refusal(const char *msg)
{
	return strstr(msg, "MNT3ERR") != NULL;
}

static int conn_errno(const char *msg, int rc)
{
	if (strstr(msg, "Network is unreachable"))
		return -ENETUNREACH;
	if (strstr(msg, "No route to host"))
		return -EHOSTUNREACH;
	if (strstr(msg, "refused") || strstr(msg, "POLLHUP") || strstr(msg, "reset by peer"))
		return -ECONNREFUSED;
	if (rc == -ETIMEDOUT)
		return rc;
	return -ENOTCONN;
}

/*
 * Mount export on a fresh context.  Returns 0 with *out set, or -errno with
 * the server's message in msg.
 */
static int mount_one(struct nfs_priv *p, const char *export, uint64_t deadline,
		     struct nfs_context **out, char *msg, size_t msglen)
{
	struct nfs_context *nfs = ctx_new(p);
	struct wait1 w = { 0 };
	int rc;

	*out = NULL;
	if (!nfs)
		return -ENOMEM;
	if (nfs_mount_async(nfs, p->host, export, wait1_cb, &w) < 0) {
		snprintf(msg, msglen, "%s", nfs_errstr(nfs));
		nfs_destroy_context(nfs);
		return conn_errno(msg, -ENOTCONN);
	}
	rc = run_until(nfs, &w.done, deadline);
	if (!rc)
		rc = w.status;
	if (rc) {
		snprintf(msg, msglen, "%s", w.msg[0] ? w.msg : nfs_errstr(nfs));
		if (!mount_refusal(msg))
			rc = conn_errno(msg, rc);
		nfs_destroy_context(nfs);
		return rc;
	}
	*out = nfs;
	return 0;
}

/* One synchronous call during set-up: issue() queued it with wait1_cb. */
static int setup_call(struct nfs_context *nfs, struct wait1 *w, int issued, uint64_t deadline)
{
	int rc;

	if (issued < 0)
		return -ENOMEM;
	rc = run_until(nfs, &w->done, deadline);
	if (rc)
		return rc;
	return w->status;
}

/*
 * Open the datastore file on a mounted context: stat (create it if asked),
 * open the plain and the O_SYNC handle, make the lock directory.  Fills
 * p->fh, p->fh_sync, p->size.  first: the open call (clear messages, create).
 */
static int open_files(struct nfs_priv *p, struct nfs_context *nfs, uint64_t deadline,
		      uint64_t create_size, int first)
{
	struct wait1 w = { .is_stat = 1 };
	int flags = p->rdonly ? O_RDONLY : O_RDWR;
	int rc;

	rc = setup_call(nfs, &w, nfs_stat64_async(nfs, p->file, wait1_cb, &w), deadline);
	if (rc == -ENOENT && first && create_size && !p->rdonly) {
		struct wait1 c = { 0 };
		rc = setup_call(nfs, &c, nfs_create_async(nfs, p->file, O_RDWR | O_EXCL, 0644,
							  wait1_cb, &c), deadline);
		if (rc == 0) {
			struct nfsfh *cfh = c.data;
			struct wait1 t = { 0 }, cl = { 0 };
			rc = setup_call(nfs, &t, nfs_ftruncate_async(nfs, cfh, create_size,
								     wait1_cb, &t), deadline);
			setup_call(nfs, &cl, nfs_close_async(nfs, cfh, wait1_cb, &cl), deadline);
			if (!rc)
				vcfs_info("%s: created the datastore file (%" PRIu64 " bytes)",
					  p->uri, create_size);
		} else if (rc == -EEXIST) {
			rc = 0;	/* another host created it meanwhile */
		}
		if (rc) {
			vcfs_err("%s: cannot create the datastore file: %s (%s)", p->uri,
				 vcfs_strerror(rc), c.msg);
			return rc;
		}
		memset(&w, 0, sizeof(w));
		w.is_stat = 1;
		rc = setup_call(nfs, &w, nfs_stat64_async(nfs, p->file, wait1_cb, &w), deadline);
	}
	if (rc) {
		if (rc == -ENOENT)
			vcfs_err("%s: no file %s in export %s of %s: create it first (e.g. "
				 "'truncate -s 64G' on the server) or add ?create=SIZE",
				 p->uri, p->file, p->export, p->host);
		else if (rc == -EACCES || rc == -EPERM)
			vcfs_err("%s: permission denied looking up %s (check the export's "
				 "access and squash rules, or ?uid=&gid=)", p->uri, p->file);
		else
			vcfs_err("%s: cannot look up %s: %s (%s)", p->uri, p->file,
				 vcfs_strerror(rc), w.msg);
		return rc;
	}
	if ((w.st.nfs_mode & S_IFMT) != S_IFREG) {
		vcfs_err("%s: %s is not a regular file", p->uri, p->file);
		return -EINVAL;
	}
	p->size = w.st.nfs_size;

	memset(&w, 0, sizeof(w));
	rc = setup_call(nfs, &w, nfs_open_async(nfs, p->file, flags, wait1_cb, &w), deadline);
	if (rc) {
		if (rc == -EACCES || rc == -EPERM)
			vcfs_err("%s: permission denied opening %s %s (check the file's mode "
				 "and owner, the export's access and squash rules, or "
				 "?uid=&gid=)", p->uri, p->file,
				 p->rdonly ? "read-only" : "read-write");
		else
			vcfs_err("%s: cannot open %s: %s (%s)", p->uri, p->file,
				 vcfs_strerror(rc), w.msg);
		return rc;
	}
	p->fh = w.data;
	if (!p->rdonly) {
		memset(&w, 0, sizeof(w));
		rc = setup_call(nfs, &w, nfs_open_async(nfs, p->file, O_RDWR | O_SYNC,
							wait1_cb, &w), deadline);
		if (rc) {
			vcfs_err("%s: cannot open %s for FILE_SYNC writes: %s (%s)", p->uri,
				 p->file, vcfs_strerror(rc), w.msg);
			return rc;
		}
		p->fh_sync = w.data;
		memset(&w, 0, sizeof(w));
		rc = setup_call(nfs, &w, nfs_mkdir2_async(nfs, p->casdir, 0755, wait1_cb, &w),
				deadline);
		if (rc && rc != -EEXIST) {
			vcfs_err("%s: cannot create the lock directory %s: %s (%s)", p->uri,
				 p->casdir, vcfs_strerror(rc), w.msg);
			return rc;
		}
	}
	p->readmax = nfs_get_readmax(nfs);
	p->writemax = nfs_get_writemax(nfs);
	return 0;
}

/*
 * Connect: mount p->export (or, on the first open, find it among the path's
 * prefixes, longest first) and open the files.  Bounded by deadline.
 * Service thread, or the opener before the thread exists.
 */
static int conn_up(struct nfs_priv *p, uint64_t deadline, uint64_t create_size, int first)
{
	struct nfs_context *nfs = NULL;
	char msg[256] = "";
	int rc;

	if (!first) {
		rc = mount_one(p, p->export, deadline, &nfs, msg, sizeof(msg));
		if (rc) {
			vcfs_err("%s: reconnect to %s failed: %s%s%s%s", p->uri, p->host,
				 vcfs_strerror(rc), msg[0] ? " (" : "", msg, msg[0] ? ")" : "");
			return rc;
		}
	} else {
		/* p->file holds the whole URI path; split it at each '/' */
		char *full = p->file, *exp = NULL;
		size_t n = strlen(full);
		char firstmsg[256] = "";
		int firstrc = 0;

		rc = -ENOENT;
		for (size_t cut = n; cut > 0; cut--) {
			if (full[cut] != '/' || cut == n)
				continue;
			free(exp);
			exp = strndup(full, cut);
			if (!exp)
				return -ENOMEM;
			rc = mount_one(p, exp, deadline, &nfs, msg, sizeof(msg));
			if (!rc || !mount_refusal(msg))
				break;
			if (!firstrc) {
				firstrc = rc;
				snprintf(firstmsg, sizeof(firstmsg), "%s", msg);
			}
		}
		if (rc) {
			free(exp);
			if (mount_refusal(msg))
				vcfs_err("%s: %s exports none of the directories of %s: %s "
					 "(check the server's exports; the URI is "
					 "nfs://server/export/path/file)", p->uri, p->host,
					 full, firstrc ? firstmsg : msg);
			else if (rc == -ETIMEDOUT)
				vcfs_err("%s: no answer from %s within the io timeout (%" PRIu64
					 " ms): is the server up and reachable?", p->uri,
					 p->host, (uint64_t)(p->T / VCFS_NS_PER_MS));
			else if (rc == -ECONNREFUSED)
				vcfs_err("%s: connection refused by %s: no portmapper or NFS "
					 "service there (%s)", p->uri, p->host, msg);
			else
				vcfs_err("%s: cannot reach %s: %s (%s)", p->uri, p->host,
					 vcfs_strerror(rc), msg);
			return rc;
		}
		p->file = strdup(full + strlen(exp));
		p->casdir = p->file ? path_join(p->file, ".cas") : NULL;
		if (!p->file || !p->casdir) {
			free(exp);
			free(full);
			nfs_destroy_context(nfs);
			return -ENOMEM;
		}
		free(full);
		p->export = exp;
	}
	rc = open_files(p, nfs, deadline, create_size, first);
	if (rc == -ETIMEDOUT && first)
		vcfs_err("%s: %s stopped answering while opening %s (io timeout %" PRIu64
			 " ms)", p->uri, p->host, p->file, (uint64_t)(p->T / VCFS_NS_PER_MS));
	if (rc) {
		nfs_destroy_context(nfs);
		p->fh = p->fh_sync = NULL;
		return rc;
	}
	p->nfs = nfs;
	return 0;
}

/*
 * Drop the connection: every pending call completes (cancelled) with err.
 * The handles belonged to the context; libnfs has no way to free an nfsfh
 * without a context, so the two small handle structs are leaked per drop.
 */
static void conn_down(struct nfs_priv *p, int err)
{
	if (!p->nfs)
		return;
	p->tearing = 1;
	p->teardown_err = err;
	nfs_destroy_context(p->nfs);
	p->nfs = NULL;
	p->fh = p->fh_sync = NULL;
	/* anything libnfs did not call back is ended here */
	while (p->inflight)
		req_end(p, p->inflight, err);
	p->tearing = 0;
}

/* ------------------------------------------------------------------ */
/* the service thread                                                   */

static void *svc_main(void *arg)
{
	struct nfs_priv *p = arg;

	for (;;) {
		struct nreq *batch, *r;
		struct pollfd pfd[2];
		uint64_t now, next_dl;
		int stop, ms, n, nfds = 1;

		pthread_mutex_lock(&p->mu);
		batch = p->q_head;
		p->q_head = p->q_tail = NULL;
		stop = p->stop;
		pthread_mutex_unlock(&p->mu);

		while ((r = batch)) {
			batch = r->next;
			r->next = NULL;
			now = vcfs_now_ns();
			if (stop || now >= r->deadline) {
				pthread_mutex_lock(&p->mu);
				req_finish_locked(r, stop ? -ESHUTDOWN : -ETIMEDOUT);
				req_put_locked(r);
				pthread_mutex_unlock(&p->mu);
				continue;
			}
			if (!p->nfs) {
				int rc = conn_up(p, r->deadline, 0, 0);
				if (rc) {
					/* everyone in this batch waited through the attempt */
					pthread_mutex_lock(&p->mu);
					req_finish_locked(r, rc);
					req_put_locked(r);
					while ((r = batch)) {
						batch = r->next;
						req_finish_locked(r, rc);
						req_put_locked(r);
					}
					pthread_mutex_unlock(&p->mu);
					break;
				}
				vcfs_info("%s: reconnected to %s", p->uri, p->host);
			}
			req_issue(p, r);
		}
		if (stop) {
			conn_down(p, -ESHUTDOWN);
			return NULL;
		}

		/* wait for the socket, a new request or the nearest deadline */
		now = vcfs_now_ns();
		next_dl = now + POLL_TICK_MS * VCFS_NS_PER_MS;
		for (r = p->inflight; r; r = r->inext)
			if (r->deadline < next_dl)
				next_dl = r->deadline;
		ms = next_dl > now ? (int)((next_dl - now + VCFS_NS_PER_MS - 1) / VCFS_NS_PER_MS) : 0;
		pfd[0].fd = p->efd;
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		if (p->nfs && nfs_get_fd(p->nfs) >= 0) {
			pfd[1].fd = nfs_get_fd(p->nfs);
			pfd[1].events = (short)nfs_which_events(p->nfs);
			pfd[1].revents = 0;
			nfds = 2;
		}
		n = poll(pfd, (nfds_t)nfds, ms);
		if (n < 0 && errno != EINTR) {
			vcfs_err("%s: poll failed: %s", p->uri, vcfs_strerror(-errno));
			vcfs_sleep_ns(POLL_TICK_MS * VCFS_NS_PER_MS);
		}
		if (n > 0 && (pfd[0].revents & POLLIN)) {
			uint64_t v;
			if (read(p->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				vcfs_warn("%s: eventfd read: %s", p->uri, vcfs_strerror(-errno));
		}
		if (p->nfs && nfds == 2 && n > 0 && pfd[1].revents) {
			if (nfs_service(p->nfs, pfd[1].revents) < 0) {
				vcfs_warn("%s: connection to %s lost (%s); reconnecting on the "
					  "next request", p->uri, p->host, nfs_errstr(p->nfs));
				conn_down(p, -ENOTCONN);
			}
		}
		/*
		 * A request past its deadline: fail it and drop the connection so
		 * that nothing of ours is still sent later (assumption (A)).  A
		 * read-only lookup is only failed: ganesha silently drops a LOOKUP
		 * or GETATTR that races with the removal of its file (it expects a
		 * retransmission), which says nothing about the connection.  Its
		 * request stays referenced by libnfs until the connection ends.
		 */
		now = vcfs_now_ns();
		for (r = p->inflight; r; r = r->inext) {
			if (now < r->deadline)
				continue;
			if (!r->soft)
				break;
			pthread_mutex_lock(&p->mu);
			req_finish_locked(r, -ETIMEDOUT);
			pthread_mutex_unlock(&p->mu);
			r->deadline = UINT64_MAX;
		}
		if (r) {
			vcfs_warn("%s: %s did not answer %s within the io timeout (%" PRIu64
				  " ms); dropping the connection", p->uri, p->host, op_name(r),
				  (uint64_t)(p->T / VCFS_NS_PER_MS));
			pthread_mutex_lock(&p->mu);
			for (r = p->inflight; r; r = r->inext)
				if (now >= r->deadline)
					req_finish_locked(r, -ETIMEDOUT);
			pthread_mutex_unlock(&p->mu);
			conn_down(p, -ETIMEDOUT);
		}
	}
}

/*
 * Queue r, wait for it, return its status and drop the caller's reference.
 * The service thread finishes every request by its deadline; the extra wait
 * here only guards against a wedged service thread.
 */
static int req_run(struct nfs_priv *p, struct nreq *r)
{
	uint64_t v = 1;
	struct timespec ts;
	uint64_t limit = r->deadline + p->T + VCFS_NS_PER_S;
	int rc;

	pthread_mutex_lock(&p->mu);
	if (p->q_tail)
		p->q_tail->next = r;
	else
		p->q_head = r;
	p->q_tail = r;
	pthread_mutex_unlock(&p->mu);
	if (write(p->efd, &v, sizeof(v)) < 0)
		vcfs_warn("%s: eventfd write: %s", p->uri, vcfs_strerror(-errno));

	pthread_mutex_lock(&p->mu);
	while (!r->done) {
		/* deadlines are on vcfs_now_ns(); the condvar waits on CLOCK_REALTIME
		 * in short steps so an injected clock cannot stretch the wait */
		uint64_t now = vcfs_now_ns();
		if (now >= limit)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&r->cv, &p->mu, &ts);
	}
	if (!r->done) {
		vcfs_err("%s: the NFS service thread did not complete a request in time",
			 p->uri);
		req_finish_locked(r, -ETIMEDOUT);
	}
	rc = r->status;
	r->ubuf = NULL;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* req_run, then drop the caller's reference. */
static int req_run_put(struct nfs_priv *p, struct nreq *r)
{
	int rc = req_run(p, r);

	pthread_mutex_lock(&p->mu);
	req_put_locked(r);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* ------------------------------------------------------------------ */
/* data path                                                            */

static int nfs_do_read(struct nfs_priv *p, uint64_t off, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		struct nreq *r = req_new(p, NR_READ, p->T);
		int rc;

		if (!r)
			return -ENOMEM;
		r->off = off + done;
		r->len = len - done;
		r->ubuf = (char *)buf + done;
		rc = req_run_put(p, r);
		if (rc < 0)
			return rc;
		if (rc == 0) {	/* end of file: the file shrank under us */
			memset((char *)buf + done, 0, len - done);
			break;
		}
		done += (size_t)rc;
	}
	return 0;
}

static int nfs_do_write(struct nfs_priv *p, uint64_t off, const void *buf, size_t len,
			int sync)
{
	size_t done = 0;

	while (done < len) {
		struct nreq *r = req_new(p, NR_WRITE, p->T);
		int rc;

		if (!r)
			return -ENOMEM;
		r->off = off + done;
		r->len = len - done;
		r->sync = sync;
		r->wbuf = malloc(r->len);
		if (!r->wbuf) {
			r->refs = 1;
			pthread_mutex_lock(&p->mu);
			req_put_locked(r);
			pthread_mutex_unlock(&p->mu);
			return -ENOMEM;
		}
		memcpy(r->wbuf, (const char *)buf + done, r->len);
		rc = req_run_put(p, r);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return -EIO;
		done += (size_t)rc;
	}
	return 0;
}

static int nfs_read_op(struct vcfs_disk *d, uint64_t off, void *buf, size_t len)
{
	return nfs_do_read(d->priv, off, buf, len);
}

static int nfs_write_op(struct vcfs_disk *d, uint64_t off, const void *buf, size_t len,
			unsigned flags)
{
	return nfs_do_write(d->priv, off, buf, len, !!(flags & VCFS_IO_FUA));
}

static int nfs_flush_op(struct vcfs_disk *d)
{
	struct nfs_priv *p = d->priv;
	struct nreq *r = req_new(p, NR_FSYNC, p->T);

	if (!r)
		return -ENOMEM;
	return req_run_put(p, r);
}

/* ------------------------------------------------------------------ */
/* lock files                                                           */

static int path_op_t(struct nfs_priv *p, enum nreq_op op, const char *a, const char *b,
		     struct nfs_stat_64 *st, uint64_t timeout)
{
	struct nreq *r = req_new(p, op, timeout);
	int rc;

	if (!r)
		return -ENOMEM;
	r->soft = op == NR_STAT;
	r->path = strdup(a);
	r->path2 = b ? strdup(b) : NULL;
	if (!r->path || (b && !r->path2)) {
		r->refs = 1;
		pthread_mutex_lock(&p->mu);
		req_put_locked(r);
		pthread_mutex_unlock(&p->mu);
		return -ENOMEM;
	}
	rc = req_run(p, r);
	pthread_mutex_lock(&p->mu);
	if (st && !rc)
		*st = r->st;
	req_put_locked(r);
	pthread_mutex_unlock(&p->mu);
	/* libnfs stats by LOOKUP then GETATTR: a lock file removed between the
	 * two gives a stale handle, which means the same as "gone" */
	if (op == NR_STAT && rc == -ESTALE)
		rc = -ENOENT;
	return rc;
}

static int path_op(struct nfs_priv *p, enum nreq_op op, const char *a, const char *b,
		   struct nfs_stat_64 *st)
{
	return path_op_t(p, op, a, b, st, p->T);
}

/*
 * Create lock file path exclusively with our key and nonce.  *created tells
 * whether the file exists because of us even when an error is returned;
 * st (optional) receives its attributes.
 */
static int lock_create(struct nfs_priv *p, const char *path, uint64_t nonce, uint64_t sector,
		       int *created, struct nfs_stat_64 *st)
{
	struct nreq *r = req_new(p, NR_LOCK_CREATE, p->T);
	unsigned char *b;
	int rc;

	*created = 0;
	if (!r)
		return -ENOMEM;
	r->path = strdup(path);
	r->wbuf = b = malloc(LOCK_FILE_LEN);
	r->want_stat = st != NULL;
	if (!r->path || !b) {
		r->refs = 1;
		pthread_mutex_lock(&p->mu);
		req_put_locked(r);
		pthread_mutex_unlock(&p->mu);
		return -ENOMEM;
	}
	memcpy(b, LOCK_MAGIC, 8);
	put_le64(b + 8, p->key);
	put_le64(b + 16, nonce);
	put_le64(b + 24, sector);
	rc = req_run(p, r);
	pthread_mutex_lock(&p->mu);
	*created = r->created;
	if (st && !rc)
		*st = r->st;
	req_put_locked(r);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* Owner key in lock file path; -ENODATA if it holds none (yet). */
static int lock_read_key(struct nfs_priv *p, const char *path, uint64_t *key)
{
	struct nreq *r = req_new(p, NR_LOCK_READ, p->T);
	int rc;

	if (!r)
		return -ENOMEM;
	r->soft = 1;
	r->path = strdup(path);
	r->wbuf = calloc(1, LOCK_FILE_LEN);
	if (!r->path || !r->wbuf) {
		r->refs = 1;
		pthread_mutex_lock(&p->mu);
		req_put_locked(r);
		pthread_mutex_unlock(&p->mu);
		return -ENOMEM;
	}
	rc = req_run(p, r);
	pthread_mutex_lock(&p->mu);
	if (!rc) {
		const unsigned char *b = r->wbuf;
		if (r->len == LOCK_FILE_LEN && !memcmp(b, LOCK_MAGIC, 8))
			*key = get_le64(b + 8);
		else
			rc = -ENODATA;
	}
	req_put_locked(r);
	pthread_mutex_unlock(&p->mu);
	return rc == -ESTALE ? -ENOENT : rc;
}

static int same_ident(const struct obs *o, const struct nfs_stat_64 *st)
{
	return o->ino == st->nfs_ino && o->ctime_s == st->nfs_ctime &&
	       o->ctime_ns == st->nfs_ctime_nsec && o->mtime_s == st->nfs_mtime &&
	       o->mtime_ns == st->nfs_mtime_nsec && o->size == st->nfs_size;
}

/*
 * Note that sector's lock file has identity st, seen in a reply that arrived
 * at now; returns when that identity was first seen.
 */
static uint64_t obs_note(struct nfs_priv *p, uint64_t sector, const struct nfs_stat_64 *st,
			 uint64_t now)
{
	struct obs *o = NULL, *oldest = &p->obs[0];
	uint64_t first;

	pthread_mutex_lock(&p->obs_mu);
	for (int i = 0; i < OBS_SLOTS; i++) {
		struct obs *c = &p->obs[i];
		if (c->used && c->sector == sector) {
			o = c;
			break;
		}
		if (!c->used || (oldest->used && c->first_seen < oldest->first_seen))
			oldest = c;
	}
	if (!o || !same_ident(o, st)) {
		if (!o)
			o = oldest;
		o->used = 1;
		o->sector = sector;
		o->ino = st->nfs_ino;
		o->ctime_s = st->nfs_ctime;
		o->ctime_ns = st->nfs_ctime_nsec;
		o->mtime_s = st->nfs_mtime;
		o->mtime_ns = st->nfs_mtime_nsec;
		o->size = st->nfs_size;
		o->first_seen = now;
	}
	first = o->first_seen;
	pthread_mutex_unlock(&p->obs_mu);
	return first;
}

static void obs_forget(struct nfs_priv *p, uint64_t sector)
{
	pthread_mutex_lock(&p->obs_mu);
	for (int i = 0; i < OBS_SLOTS; i++)
		if (p->obs[i].used && p->obs[i].sector == sector)
			p->obs[i].used = 0;
	pthread_mutex_unlock(&p->obs_mu);
}

/*
 * Replace the stale lock file lpath (identity *seen, first seen at first,
 * or known dead) with one of ours: see "Breaking" at the top.  Returns 0
 * when we hold the lock, with *anchor = when the rename was sent; -EAGAIN to
 * go back to plain acquisition; -ETIMEDOUT / other errors to give up.
 */
static int lock_break(struct nfs_priv *p, const char *lpath, uint64_t sector, uint64_t nonce,
		      const struct nfs_stat_64 *seen, uint64_t first, int dead,
		      uint64_t *anchor)
{
	const uint64_t T = p->T, G = VCFS_DISK_STALE_GUARD_FACTOR * p->T;
	struct nfs_stat_64 own, cur;
	struct obs want = { 0 };
	char *bpath = NULL;
	uint64_t l0, b0, b1;
	int created, rc;

	if (asprintf(&bpath, "%s.brk.%016" PRIx64 ".%016" PRIx64, lpath, p->key, nonce) < 0)
		return -ENOMEM;
	rc = lock_create(p, bpath, nonce, sector, &created, &own);
	if (rc)
		goto out_unlink;
	want.ino = seen->nfs_ino;
	want.ctime_s = seen->nfs_ctime;
	want.ctime_ns = seen->nfs_ctime_nsec;
	want.mtime_s = seen->nfs_mtime;
	want.mtime_ns = seen->nfs_mtime_nsec;
	want.size = seen->nfs_size;
	/* the confirming stat: sent after the guard, still showing I */
	l0 = vcfs_now_ns();
	if (!dead && l0 < first + G) {
		rc = -EAGAIN;
		goto out_unlink;
	}
	rc = path_op(p, NR_STAT, lpath, NULL, &cur);
	if (rc == -ENOENT || (!rc && !same_ident(&want, &cur))) {
		rc = -EAGAIN;	/* released or replaced meanwhile */
		goto out_unlink;
	}
	if (rc)
		goto out_unlink;
	b0 = vcfs_now_ns();
	if (b0 >= l0 + T) {
		rc = -EAGAIN;	/* the confirmation is too old to act on */
		goto out_unlink;
	}
	rc = path_op(p, NR_RENAME, bpath, lpath, NULL);
	b1 = vcfs_now_ns();
	if (rc) {
		/* our file may or may not have moved; if it did, it is at lpath
		 * and expires like any stale lock */
		if (rc == -ENOENT)
			rc = -EAGAIN;
		goto out_unlink;
	}
	obs_forget(p, sector);
	vcfs_warn("%s: broke the stale CAS lock file %s (fileid %" PRIu64 ", %s)", p->uri,
		  lpath, (uint64_t)seen->nfs_ino,
		  dead ? "its holder is dead" : "unchanged for the stale guard");
	if (b1 - b0 >= T / 4) {
		vcfs_err("%s: RENAME of a CAS lock file took %" PRIu64 " ms; leaving it to "
			 "expire", p->uri, (uint64_t)((b1 - b0) / VCFS_NS_PER_MS));
		rc = -ETIMEDOUT;
		goto out;
	}
	/* let every rename decided on the same stale file land */
	vcfs_sleep_ns(b1 + 2 * T - vcfs_now_ns());
	rc = path_op(p, NR_STAT, lpath, NULL, &cur);
	if (rc == -ENOENT || (!rc && cur.nfs_ino != own.nfs_ino)) {
		rc = -EAGAIN;	/* a later breaker's file replaced ours */
		goto out;
	}
	if (rc)
		goto out;
	*anchor = b0;
	goto out;

out_unlink:
	if (created)
		path_op(p, NR_UNLINK, bpath, NULL, NULL);
out:
	free(bpath);
	return rc;
}

static int nfs_cas_op(struct vcfs_disk *d, uint64_t off, const void *expect,
		      const void *newdata)
{
	struct nfs_priv *p = d->priv;
	const uint64_t T = p->T;
	uint32_t lsec = d->info.lsec;
	uint64_t sector = off / lsec, nonce = rand64(), start = vcfs_now_ns();
	uint64_t backoff = 50 * 1000, anchor, write_by, remove_by;
	/* a lookup racing with a release may go unanswered: retry it early */
	uint64_t stat_t = T / 8 > 100 * VCFS_NS_PER_MS ? T / 8 : (T < 100 * VCFS_NS_PER_MS ? T : 100 * VCFS_NS_PER_MS);
	unsigned char *cur = malloc(lsec);
	char *lpath = NULL;
	int created, rc, rc2;

	if (!cur || asprintf(&lpath, "%s/%" PRIu64, p->casdir, sector) < 0) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (int iter = 0;; iter++) {
		struct nfs_stat_64 st;
		uint64_t now, first, key = 0;
		int dead = 0;

		if (iter && vcfs_now_ns() - start >= T) {
			rc = -ETIMEDOUT;
			goto out_free;
		}

		anchor = vcfs_now_ns();
		rc = lock_create(p, lpath, nonce, sector, &created, NULL);
		if (!rc) {
			write_by = anchor + T;
			remove_by = anchor + 2 * T;
			break;
		}
		if (created)	/* made, but its content did not land: release */
			goto out_release_err;
		if (rc != -EEXIST)
			goto out_free;
		rc = path_op_t(p, NR_STAT, lpath, NULL, &st, stat_t);
		/*
		 * ENOENT: released between our CREATE and the stat.  EIO or no
		 * answer: ganesha answers a GETATTR on a handle whose file was just
		 * removed with NFS3ERR_IO ("Not enough memory in
		 * nfs3_FhandleToCache") or drops it - the same race; try again,
		 * still bounded by the io timeout (checked at the loop's top).
		 */
		if (rc == -ENOENT || rc == -EIO || rc == -ETIMEDOUT)
			continue;
		if (rc)
			goto out_free;
		now = vcfs_now_ns();
		first = obs_note(p, sector, &st, now);
		if (d->opts.holder_dead && st.nfs_size == LOCK_FILE_LEN &&
		    !lock_read_key(p, lpath, &key) && key != p->key)
			dead = d->opts.holder_dead(d->opts.holder_dead_arg, key) == 1;
		if (dead || now >= first + VCFS_DISK_STALE_GUARD_FACTOR * T) {
			rc = lock_break(p, lpath, sector, nonce, &st, first, dead, &anchor);
			if (!rc) {
				write_by = anchor + 3 * T;
				remove_by = anchor + 3 * T;
				break;
			}
			if (rc != -EAGAIN)
				goto out_free;
			nonce = rand64();
		}
		if (vcfs_now_ns() - start >= T) {
			rc = -ETIMEDOUT;
			vcfs_debug("%s: CAS on sector %" PRIu64 ": lock file %s held by "
				   "another host for the whole io timeout", p->uri, sector, lpath);
			goto out_free;
		}
		vcfs_sleep_ns(backoff / 2 + rand64() % backoff);
		if (backoff < 5 * VCFS_NS_PER_MS)
			backoff *= 2;
	}

	/* we hold the lock file */
	rc = nfs_do_read(p, off, cur, lsec);
	if (rc)
		goto out_release;
	if (memcmp(cur, expect, lsec)) {
		rc = -VCFS_EMISCOMPARE;
		goto out_release;
	}
	if (vcfs_now_ns() >= write_by) {
		vcfs_err("%s: CAS on sector %" PRIu64 " held its lock file past the io "
			 "timeout before writing; giving up without writing", p->uri, sector);
		rc = -ETIMEDOUT;
		goto out_release;
	}
	rc = nfs_do_write(p, off, newdata, lsec, 1);
out_release:
	if (vcfs_now_ns() >= remove_by) {
		vcfs_warn("%s: CAS lock file %s held too long to remove safely; it will be "
			  "broken as stale", p->uri, lpath);
		goto out_free;
	}
	rc2 = path_op(p, NR_UNLINK, lpath, NULL, NULL);
	if (rc2)
		vcfs_warn("%s: cannot remove CAS lock file %s: %s; it will be broken as "
			  "stale", p->uri, lpath, vcfs_strerror(rc2));
	goto out_free;
out_release_err:
	rc2 = path_op(p, NR_UNLINK, lpath, NULL, NULL);
	if (rc2)
		vcfs_warn("%s: cannot remove CAS lock file %s: %s", p->uri, lpath,
			  vcfs_strerror(rc2));
out_free:
	free(lpath);
	free(cur);
	return rc;
}

/* ------------------------------------------------------------------ */
/* open / close                                                         */

static void nfs_priv_free(struct nfs_priv *p)
{
	if (p->thr_started) {
		uint64_t v = 1;
		pthread_mutex_lock(&p->mu);
		p->stop = 1;
		pthread_mutex_unlock(&p->mu);
		if (write(p->efd, &v, sizeof(v)) < 0)
			vcfs_warn("%s: eventfd write: %s", p->uri, vcfs_strerror(-errno));
		pthread_join(p->thr, NULL);
	} else if (p->nfs) {
		nfs_destroy_context(p->nfs);
	}
	if (p->efd >= 0)
		close(p->efd);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->obs_mu);
	free(p->host);
	free(p->export);
	free(p->file);
	free(p->casdir);
	free(p->opts);
	free(p);
}

static void nfs_close_op(struct vcfs_disk *d)
{
	if (d->priv)
		nfs_priv_free(d->priv);
	free(d);
}

static int nfs_get_size_op(struct vcfs_disk *d, uint64_t *size)
{
	struct nfs_priv *p = d->priv;
	struct nfs_stat_64 st;
	int rc = path_op(p, NR_STAT, p->file, NULL, &st);

	if (!rc)
		*size = st.nfs_size;
	return rc;
}

static const struct vcfs_disk_ops nfs_ops = {
	.read = nfs_read_op,
	.write = nfs_write_op,
	.flush = nfs_flush_op,
	.cas = nfs_cas_op,
	.unmap = NULL,		/* NFSv3 cannot punch holes: disk.c writes zeros */
	.write_zeroes = NULL,
	.close = nfs_close_op,
	.get_size = nfs_get_size_op,
};

/*
 * Split the URI query: our own keys (create) are taken out, libnfs's are
 * kept in p->opts, those that would break coherence are refused.
 */
static int parse_query(struct nfs_priv *p, const char *q, uint64_t *create_size)
{
	char *dup, *save = NULL, *tok;
	size_t cap = (q ? strlen(q) : 0) + 1, used = 0;
	int rc = 0;

	p->opts = calloc(1, cap);
	if (!p->opts)
		return -ENOMEM;
	if (!q || !*q)
		return 0;
	dup = strdup(q);
	if (!dup)
		return -ENOMEM;
	for (tok = strtok_r(dup, "&", &save); tok; tok = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(tok, '=');
		const char *val = eq ? eq + 1 : "";
		if (eq)
			*eq = 0;
		if (!strcmp(tok, "create")) {
			if (vcfs_parse_size(val, create_size)) {
				vcfs_err("%s: create=%s is not a size (e.g. create=64M)", p->uri, val);
				rc = -VCFS_EBADURI;
				break;
			}
		} else if (!strcmp(tok, "version")) {
			if (strcmp(val, "3")) {
				vcfs_err("%s: version=%s: only NFSv3 is supported", p->uri, val);
				rc = -VCFS_EBADURI;
				break;
			}
		} else if (!strcmp(tok, "readahead") || !strcmp(tok, "pagecache") ||
			   !strcmp(tok, "autoreconnect") || !strcmp(tok, "dircache")) {
			vcfs_err("%s: option %s is refused: client caching or request replay "
				 "would break sharing between hosts", p->uri, tok);
			rc = -VCFS_EBADURI;
			break;
		} else if (!strcmp(tok, "nfsport") || !strcmp(tok, "mountport") ||
			   !strcmp(tok, "uid") || !strcmp(tok, "gid") ||
			   !strcmp(tok, "tcp-syncnt") || !strcmp(tok, "debug") ||
			   !strcmp(tok, "if")) {
			used += (size_t)snprintf(p->opts + used, cap - used, "%s%s=%s",
						 used ? "&" : "", tok, val);
		} else {
			vcfs_err("%s: unknown option '%s' (known: create, nfsport, mountport, "
				 "uid, gid, tcp-syncnt, debug, if, version=3)", p->uri, tok);
			rc = -VCFS_EBADURI;
			break;
		}
	}
	free(dup);
	return rc;
}

int vcfs_nfs_open(const struct vcfs_uri *u, const struct vcfs_disk_opts *o,
		  struct vcfs_disk **out)
{
	struct vcfs_disk *d = vcfs_disk_new(&nfs_ops, o);
	struct nfs_priv *p = calloc(1, sizeof(*p));
	uint64_t create_size = 0, deadline;
	uint32_t max_io;
	int rc;

	*out = NULL;
	if (!d || !p) {
		free(d);
		free(p);
		return -ENOMEM;
	}
	p->efd = -1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->obs_mu, NULL);
	p->T = (uint64_t)d->opts.io_timeout_ms * VCFS_NS_PER_MS;
	p->rdonly = !!(d->opts.flags & VCFS_DISK_RDONLY);
	p->key = d->opts.host_key;
	while (!p->key)
		p->key = rand64();
	if (u->port)
		snprintf(p->uri, sizeof(p->uri), "nfs://%s:%d%s", u->host, u->port,
			 u->path ? u->path : "");
	else
		snprintf(p->uri, sizeof(p->uri), "nfs://%s%s", u->host, u->path ? u->path : "");
	if (!u->host || !u->path || u->path[0] != '/' || u->path[strlen(u->path) - 1] == '/' ||
	    !strchr(u->path + 1, '/')) {
		vcfs_err("%s: need nfs://server[:port]/export/path/file", p->uri);
		rc = -VCFS_EBADURI;
		goto err;
	}
	p->host = strdup(u->host);
	p->file = strdup(u->path);	/* split into export + file by conn_up */
	if (!p->host || !p->file) {
		rc = -ENOMEM;
		goto err;
	}
	rc = parse_query(p, u->query, &create_size);
	if (rc)
		goto err;
	if (u->port) {
		size_t n = strlen(p->opts);
		char *s;
		if (asprintf(&s, "%s%snfsport=%d", p->opts, n ? "&" : "", u->port) < 0) {
			rc = -ENOMEM;
			goto err;
		}
		free(p->opts);
		p->opts = s;
	}
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->efd < 0) {
		rc = -errno;
		goto err;
	}
	deadline = vcfs_now_ns() + p->T;
	rc = conn_up(p, deadline, create_size, 1);
	if (rc)
		goto err;

	max_io = NFS_MAX_IO;
	if (p->readmax && p->readmax < max_io)
		max_io = (uint32_t)p->readmax;
	if (p->writemax && p->writemax < max_io)
		max_io = (uint32_t)p->writemax;
	max_io -= max_io % 4096;
	d->info.size = p->size;
	d->info.lsec = 512;
	d->info.psec = 4096;
	d->info.max_io = max_io ? max_io : 4096;
	d->info.cas_mode = VCFS_CAS_NFS_LOCKFILE;
	d->info.caps = VCFS_DISK_CAP_FUA | VCFS_DISK_CAP_CAS_SHARED |
		       (p->rdonly ? VCFS_DISK_CAP_RDONLY : 0);
	strcpy(d->info.backend, "nfs");
	snprintf(d->info.desc, sizeof(d->info.desc), "%s (NFSv3, export %s, lock-file CAS)",
		 p->uri, p->export);
	d->priv = p;

	rc = pthread_create(&p->thr, NULL, svc_main, p);
	if (rc) {
		rc = -rc;
		vcfs_err("%s: cannot start the NFS service thread: %s", p->uri,
			 vcfs_strerror(rc));
		d->priv = NULL;
		goto err;
	}
	p->thr_started = 1;
	*out = d;
	return 0;

err:
	nfs_priv_free(p);
	free(d);
	return rc;
}
