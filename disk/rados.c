/*
 * rados.c - the rados:// backend: a datastore striped over RADOS objects,
 * reached with librados (no kernel rbd, no client cache).
 *
 *   rados://pool/image[?conf=PATH&id=NAME&create=SIZE]
 *
 * conf: the ceph.conf to read (default: librados's search, i.e. $CEPH_CONF,
 * /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf); id: the client name
 * ("admin" = client.admin, the default; a name with a dot is taken whole);
 * create: make the image with this size (K/M/G/T suffixes) if it does not
 * exist.  $CEPH_ARGS is honoured like in the ceph tools, except for the
 * three timeouts below, which always follow the io timeout.
 *
 * ---- Layout ----
 * Byte b of the image lives in object "<image>.<16 hex digits of b / 4 MiB>"
 * at offset b % 4 MiB.  Objects are created by their first write and may be
 * missing or shorter than 4 MiB: the missing part reads as zeros.  The size
 * is in the header object "<image>.vcfs-header" (format below), made once,
 * exclusively (LIBRADOS_CREATE_EXCLUSIVE: of two hosts creating the same
 * image one wins, the other opens what the winner made).  Invariant: no
 * object holds data beyond its slice of the image, so removing an object
 * whose slice is wholly unmapped loses nothing else.
 *
 * ---- I/O path ----
 * librados is thread-safe; every calling thread issues its own asynchronous
 * operations (rados_aio_*) and sleeps until they complete, so N calling
 * threads give the cluster queue depth N, and a request spanning objects
 * sends its pieces in parallel.  Writes are acknowledged by the OSDs after
 * they are committed on every replica, so a write is durable when it
 * returns: FUA costs nothing and flush has nothing to do.
 *
 * Compare-and-write is one RADOS write operation holding a cmpext (the
 * expected sector) and a write (the new one): the primary OSD executes both
 * atomically against every other client, or neither.  A miscompare comes
 * back as -MAX_ERRNO - (offset of the first differing byte).  Ceph 16.2.15
 * (Debian 12) compares a missing object, or the part of an object beyond its
 * end, as zeros (tests/disk_rados.sh checks both on a fresh image, through
 * this backend).  For OSDs that answer -ENOENT for a missing object
 * instead, a CAS expecting zeros is redone as "create exclusively + write",
 * which is the same test made atomically by the OSD; and a miscompare
 * reported at the object's end while the expected bytes from there on are
 * zero (an OSD comparing against the short data) extends the object with a
 * truncate (zeros, no data lost: the invariant above) and retries.  Neither
 * fallback is reached with 16.2.15.
 *
 * ---- Time ----
 * Every call has a deadline: now + io timeout (T).  A caller that is still
 * waiting at its deadline returns -ETIMEDOUT and leaves its operations to
 * librados: read data lands in a bounce buffer owned by the call (never in
 * the caller's buffer after it returned), write data is copied by librados
 * at submission, and the completion callback frees the call when the last
 * operation ends.  librados itself gives up on an operation after
 * rados_osd_op_timeout, on the monitors after client_mount_timeout and
 * rados_mon_op_timeout; all three are set to T rounded up to whole seconds
 * (their unit), so the connection at open is bounded by that and nothing
 * waits for ever.  Unlike NFS (nfs.c), RADOS offers no way to make sure that
 * an abandoned operation will not still execute on the OSD later; a caller
 * that got -ETIMEDOUT from a write or CAS must re-read to learn the outcome.
 * Worst case for one operation sent at t0 (S = T rounded up to seconds):
 *
 *   t0          sent (or queued in librados until the OSD map allows)
 *   t0 + T      caller returns -ETIMEDOUT; the call lives on
 *   t0 + S      librados cancels it locally; callback frees the call
 *   later       an OSD that already holds the message (say it was paused)
 *               may still execute it: nothing bounds this on the client
 *   close       waits up to 2T + 2 s for cancelled operations to complete
 *
 * ---- Header object "<image>.vcfs-header" (64 bytes, little-endian) ----
 *   0x00  magic "VCFSRIMG"
 *   0x08  le32 version (1)
 *   0x0c  le32 object order: log2 of the object size (22 = 4 MiB)
 *   0x10  le64 image size in bytes
 *   0x18  36 reserved bytes, zero
 *   0x3c  le32 crc32c of bytes 0x00..0x3b
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "disk_int.h"
#include "../common/log.h"
#include "../common/size.h"

#ifndef VCFS_HAVE_RADOS

int vcfs_rados_open(const struct vcfs_uri *u, const struct vcfs_disk_opts *o,
		    struct vcfs_disk **out)
{
	(void)o;
	*out = NULL;
	vcfs_err("rados://%s/%s: rados support not built into this vcfs (install "
		 "librados-dev and rebuild with RADOS=1)", u->pool ? u->pool : "",
		 u->image ? u->image : "");
	return -VCFS_ENOBACKEND;
}

#else /* VCFS_HAVE_RADOS */

#include <pthread.h>
#include <stddef.h>
#include <time.h>
#include <rados/librados.h>
#include "../common/clock.h"
#include "../common/crc32c.h"

#define OBJ_ORDER_DEFAULT 22		/* 4 MiB objects */
#define OBJ_ORDER_MIN	  16
#define OBJ_ORDER_MAX	  26		/* below osd_max_object_size (128 MiB) */
#define HDR_SUFFIX	  ".vcfs-header"
#define HDR_MAGIC	  "VCFSRIMG"
#define HDR_VERSION	  1
#define IMAGE_NAME_MAX	  200		/* + ".<16 hex>" stays a short oid */
#define OID_MAX		  (IMAGE_NAME_MAX + 32)
#define RADOS_MAX_ERRNO	  4095		/* cmpext: -MAX_ERRNO - offset */
#define UNMAP_BATCH	  64		/* objects removed / zeroed in parallel */
#define CAS_RETRIES	  4		/* the fallbacks above, each at most once */

/* Header object, as stored (all multi-byte fields little-endian). */
struct rados_hdr {
	uint8_t magic[8];		/* 0x00 */
	uint8_t version[4];		/* 0x08 */
	uint8_t order[4];		/* 0x0c */
	uint8_t size[8];		/* 0x10 */
	uint8_t reserved[36];		/* 0x18 */
	uint8_t crc[4];			/* 0x3c */
};
_Static_assert(sizeof(struct rados_hdr) == 64, "rados header is 64 bytes");
_Static_assert(offsetof(struct rados_hdr, size) == 0x10, "size at 0x10");
_Static_assert(offsetof(struct rados_hdr, crc) == 0x3c, "crc at 0x3c");

struct rados_priv {
	/* immutable after open */
	rados_t cluster;
	rados_ioctx_t io;
	char *pool, *image;
	char uri[300];			/* "rados://pool/image", for messages */
	uint64_t T;			/* io timeout, ns */
	uint64_t size;
	unsigned order;			/* log2 object size */
	int connected, have_io;
	/* operations submitted and not yet completed (close waits for 0) */
	int inflight;			/* atomic */
};

enum rop { RO_READ, RO_WRITE, RO_REMOVE, RO_ZERO, RO_TRUNC, RO_CAS, RO_CREATE_CAS,
	   RO_CREATE_HDR };

struct call;

/* One operation on one object. */
struct piece {
	struct call *call;
	enum rop op;
	char oid[OID_MAX];
	uint64_t ooff;			/* offset in the object */
	size_t len;
	char *bounce;			/* RO_READ: data lands here (in call->mem) */
	rados_completion_t comp;
	rados_write_op_t wop;
	int prval;			/* RO_CAS: cmpext's own result */
	/* protected by call->mu */
	int done;
	int rc;
};

/*
 * One caller's request: pieces sent together and waited for together.  refs
 * = the caller + every piece whose completion is still to come; whoever
 * drops the last one frees the call (see "Time" above).
 */
struct call {
	struct rados_priv *p;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;			/* protected by mu */
	int nissued, ndone;		/* protected by mu */
	int n;
	char *mem;			/* read bounce buffers, owned */
	struct piece pc[];
};

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static void put_le32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static uint64_t get_le64(const uint8_t *b)
{
	return (uint64_t)get_le32(b) | (uint64_t)get_le32(b + 4) << 32;
}

static int all_zero(const void *buf, size_t len)
{
	const unsigned char *b = buf;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return 0;
	return 1;
}

static uint64_t T_ms(const struct rados_priv *p)
{
	return (uint64_t)(p->T / VCFS_NS_PER_MS);
}

static uint64_t obj_size(const struct rados_priv *p)
{
	return 1ull << p->order;
}

/* Bytes of the image that object idx holds at most (the last may be short). */
static uint64_t obj_len(const struct rados_priv *p, uint64_t idx)
{
	uint64_t base = idx << p->order;

	return p->size - base < obj_size(p) ? p->size - base : obj_size(p);
}

static void obj_name(const struct rados_priv *p, uint64_t idx, char *oid)
{
	snprintf(oid, OID_MAX, "%s.%016" PRIx64, p->image, idx);
}

/* T in whole seconds, rounded up: the unit of librados's timeouts. */
static void set_timeout(struct rados_priv *p, const char *key)
{
	char v[32];
	int rc;

	snprintf(v, sizeof(v), "%" PRIu64, (uint64_t)((p->T + VCFS_NS_PER_S - 1) / VCFS_NS_PER_S));
	rc = rados_conf_set(p->cluster, key, v);
	if (rc)
		vcfs_warn("%s: cannot set %s = %s: %s", p->uri, key, v, vcfs_strerror(rc));
}

/* ------------------------------------------------------------------ */
/* calls: submission, completion, waiting                               */

static struct call *call_new(struct rados_priv *p, int n, size_t bounce_len)
{
	struct call *c = calloc(1, sizeof(*c) + (size_t)n * sizeof(struct piece));

	if (!c)
		return NULL;
	if (bounce_len) {
		c->mem = malloc(bounce_len);
		if (!c->mem) {
			free(c);
			return NULL;
		}
	}
	c->p = p;
	c->n = n;
	c->refs = 1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	for (int i = 0; i < n; i++)
		c->pc[i].call = c;
	return c;
}

static void call_free(struct call *c)
{
	for (int i = 0; i < c->n; i++) {
		if (c->pc[i].comp)
			rados_aio_release(c->pc[i].comp);
		if (c->pc[i].wop)
			rados_release_write_op(c->pc[i].wop);
	}
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c->mem);
	free(c);
}

/* Drop one reference; the last one frees. */
static void call_put(struct call *c)
{
	int last;

	pthread_mutex_lock(&c->mu);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->mu);
	if (last)
		call_free(c);
}

/*
 * Completion callback, on librados's finisher thread: record the result,
 * wake the caller, drop the piece's reference.  The in-flight count is
 * dropped last, so that close (which waits for it) never frees p under us;
 * nothing here touches p after that.
 */
static void piece_cb(rados_completion_t comp, void *arg)
{
	struct piece *pc = arg;
	struct call *c = pc->call;
	struct rados_priv *p = c->p;
	int rc = rados_aio_get_return_value(comp), last;

	pthread_mutex_lock(&c->mu);
	pc->rc = rc;
	pc->done = 1;
	if (++c->ndone == c->nissued)
		pthread_cond_signal(&c->cv);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->mu);
	if (last)
		call_free(c);
	__atomic_sub_fetch(&p->inflight, 1, __ATOMIC_RELEASE);
}

/* Submit piece i; on a synchronous failure it is finished at once. */
static void piece_issue(struct call *c, int i, const void *wbuf, const void *expect)
{
	struct rados_priv *p = c->p;
	struct piece *pc = &c->pc[i];
	int rc;

	rc = rados_aio_create_completion2(pc, piece_cb, &pc->comp);
	if (rc) {
		pc->comp = NULL;
		goto failed;
	}
	/*
	 * Count the piece before sending it: its callback may run before
	 * rados_aio_* returns, and must not drop the caller's reference.
	 */
	__atomic_add_fetch(&p->inflight, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&c->mu);
	c->nissued++;
	c->refs++;
	pthread_mutex_unlock(&c->mu);
	switch (pc->op) {
	case RO_READ:
		rc = rados_aio_read(p->io, pc->oid, pc->comp, pc->bounce, pc->len, pc->ooff);
		break;
	case RO_WRITE:
		/* librados copies buf into its own buffer list here */
		rc = rados_aio_write(p->io, pc->oid, pc->comp, wbuf, pc->len, pc->ooff);
		break;
	case RO_REMOVE:
		rc = rados_aio_remove(p->io, pc->oid, pc->comp);
		break;
	case RO_ZERO:
	case RO_TRUNC:
	case RO_CAS:
	case RO_CREATE_CAS:
	case RO_CREATE_HDR:
		pc->wop = rados_create_write_op();
		if (!pc->wop) {
			rc = -ENOMEM;
			break;
		}
		if (pc->op == RO_ZERO) {
			rados_write_op_zero(pc->wop, pc->ooff, pc->len);
		} else if (pc->op == RO_TRUNC) {
			/* extend only: pc->ooff is the object's full slice length */
			rados_write_op_assert_exists(pc->wop);
			rados_write_op_truncate(pc->wop, pc->ooff);
		} else if (pc->op == RO_CAS) {
			pc->prval = 0;
			rados_write_op_cmpext(pc->wop, expect, pc->len, pc->ooff, &pc->prval);
			rados_write_op_write(pc->wop, wbuf, pc->len, pc->ooff);
		} else if (pc->op == RO_CREATE_CAS) {
			rados_write_op_create(pc->wop, LIBRADOS_CREATE_EXCLUSIVE, NULL);
			rados_write_op_write(pc->wop, wbuf, pc->len, pc->ooff);
		} else {
			rados_write_op_create(pc->wop, LIBRADOS_CREATE_EXCLUSIVE, NULL);
			rados_write_op_write_full(pc->wop, wbuf, pc->len);
		}
		rc = rados_aio_write_op_operate(pc->wop, p->io, pc->comp, pc->oid, NULL, 0);
		break;
	}
	if (rc) {
		/* never sent: no callback will come, take the counts back */
		__atomic_sub_fetch(&p->inflight, 1, __ATOMIC_RELAXED);
		pthread_mutex_lock(&c->mu);
		c->nissued--;
		c->refs--;
		pthread_mutex_unlock(&c->mu);
		goto failed;
	}
	return;

failed:
	pthread_mutex_lock(&c->mu);
	pc->rc = rc < 0 ? rc : -EIO;
	pc->done = 1;
	pthread_mutex_unlock(&c->mu);
}

/*
 * Wait for every issued piece or the deadline.  Returns 0 when all are done
 * (results in pc[].rc, read data in the bounces), -ETIMEDOUT otherwise.  The
 * caller keeps its reference either way and reads results only on 0.
 * Deadlines are on vcfs_now_ns(); the condvar waits on CLOCK_REALTIME in
 * short steps so that an injected clock cannot stretch the wait.
 */
static int call_wait(struct call *c, uint64_t deadline)
{
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	while (c->ndone < c->nissued) {
		struct timespec ts;
		if (vcfs_now_ns() >= deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

/* The outcome of one completed piece, in vcfs terms. */
static int piece_result(const struct piece *pc)
{
	int rc = pc->rc;

	switch (pc->op) {
	case RO_READ:			/* rc = bytes read */
		return rc == -ENOENT || rc >= 0 ? 0 : rc;	/* missing: zeros */
	case RO_REMOVE:
	case RO_ZERO:
		return rc == -ENOENT ? 0 : rc;	/* nothing there: already zero */
	case RO_CAS:
		if (rc <= -RADOS_MAX_ERRNO || pc->prval <= -RADOS_MAX_ERRNO)
			return -VCFS_EMISCOMPARE;
		return rc;
	default:
		return rc < 0 ? rc : 0;
	}
}

static void log_timeout(struct rados_priv *p, const struct call *c, const char *what)
{
	vcfs_warn("%s: %s of object %s: no answer from the OSDs within the io timeout "
		  "(%" PRIu64 " ms)", p->uri, what, c->n ? c->pc[0].oid : "?",
		  T_ms(p));
}

/* Issue every piece of c, wait, return the first error (0 if none). */
static int call_run(struct call *c, const void *const *wbufs, const void *expect,
		    const char *what)
{
	uint64_t deadline = vcfs_now_ns() + c->p->T;
	int rc;

	for (int i = 0; i < c->n; i++)
		piece_issue(c, i, wbufs ? wbufs[i] : NULL, expect);
	rc = call_wait(c, deadline);
	if (rc) {
		log_timeout(c->p, c, what);
		return rc;
	}
	for (int i = 0; i < c->n && !rc; i++)
		rc = piece_result(&c->pc[i]);
	return rc;
}

/* ------------------------------------------------------------------ */
/* data path                                                            */

/* Number of objects [off, off + len) touches. */
static int span_objects(const struct rados_priv *p, uint64_t off, uint64_t len)
{
	return (int)(((off + len - 1) >> p->order) - (off >> p->order) + 1);
}

static int rad_read(struct vcfs_disk *d, uint64_t off, void *buf, size_t len)
{
	struct rados_priv *p = d->priv;
	int n = span_objects(p, off, len), rc;
	struct call *c = call_new(p, n, len);
	uint64_t pos = off;
	size_t done = 0;

	if (!c)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		struct piece *pc = &c->pc[i];
		uint64_t idx = pos >> p->order;
		pc->op = RO_READ;
		pc->ooff = pos & (obj_size(p) - 1);
		pc->len = (size_t)(obj_size(p) - pc->ooff < len - done ? obj_size(p) - pc->ooff
								      : len - done);
		pc->bounce = c->mem + done;
		obj_name(p, idx, pc->oid);
		pos += pc->len;
		done += pc->len;
	}
	rc = call_run(c, NULL, NULL, "read");
	if (!rc) {
		/* a missing object or the part past a short one reads as zeros */
		done = 0;
		for (int i = 0; i < n; i++) {
			const struct piece *pc = &c->pc[i];
			size_t got = pc->rc > 0 ? (size_t)pc->rc : 0;
			if (got > pc->len)
				got = pc->len;
			memcpy((char *)buf + done, pc->bounce, got);
			memset((char *)buf + done + got, 0, pc->len - got);
			done += pc->len;
		}
	} else if (rc != -ETIMEDOUT) {
		vcfs_err("%s: read of %zu bytes at %" PRIu64 " failed: %s", p->uri, len, off,
			 vcfs_strerror(rc));
	}
	call_put(c);
	return rc;
}

static int rad_write(struct vcfs_disk *d, uint64_t off, const void *buf, size_t len,
			   unsigned flags)
{
	struct rados_priv *p = d->priv;
	int n = span_objects(p, off, len), rc;
	struct call *c = call_new(p, n, 0);
	const void *wbufs[2];
	const void **wb = n <= 2 ? wbufs : malloc((size_t)n * sizeof(*wb));
	uint64_t pos = off;
	size_t done = 0;

	(void)flags;	/* every write is committed on all replicas when acked */
	if (!c || !wb) {
		if (c)
			call_put(c);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		struct piece *pc = &c->pc[i];
		pc->op = RO_WRITE;
		pc->ooff = pos & (obj_size(p) - 1);
		pc->len = (size_t)(obj_size(p) - pc->ooff < len - done ? obj_size(p) - pc->ooff
								      : len - done);
		obj_name(p, pos >> p->order, pc->oid);
		wb[i] = (const char *)buf + done;
		pos += pc->len;
		done += pc->len;
	}
	rc = call_run(c, wb, NULL, "write");
	if (rc && rc != -ETIMEDOUT)
		vcfs_err("%s: write of %zu bytes at %" PRIu64 " failed: %s", p->uri, len, off,
			 vcfs_strerror(rc));
	call_put(c);
	if (wb != wbufs)
		free(wb);
	return rc;
}

static int rad_flush(struct vcfs_disk *d)
{
	(void)d;	/* acknowledged writes are already durable */
	return 0;
}

/* One single-piece write operation on oid (CAS, its fallbacks). */
static int run_one(struct rados_priv *p, enum rop op, const char *oid, uint64_t ooff,
		   size_t len, const void *wbuf, const void *expect, int *raw)
{
	struct call *c = call_new(p, 1, 0);
	const void *wb[1] = { wbuf };
	int rc;

	if (!c)
		return -ENOMEM;
	c->pc[0].op = op;
	c->pc[0].ooff = ooff;
	c->pc[0].len = len;
	snprintf(c->pc[0].oid, OID_MAX, "%s", oid);
	rc = call_run(c, wb, expect, op == RO_TRUNC ? "extend" : "compare-and-write");
	if (raw && rc != -ETIMEDOUT)
		*raw = c->pc[0].rc;
	call_put(c);
	return rc;
}

/*
 * Compare-and-write of one sector (see the top of the file).  Returns 0,
 * -VCFS_EMISCOMPARE (nothing written), or an error.
 */
static int rad_cas(struct vcfs_disk *d, uint64_t off, const void *expect,
			const void *newdata)
{
	struct rados_priv *p = d->priv;
	uint32_t lsec = d->info.lsec;
	uint64_t idx = off >> p->order, ooff = off & (obj_size(p) - 1);
	char oid[OID_MAX];
	int rc = -EIO, raw = 0;

	obj_name(p, idx, oid);
	for (int attempt = 0; attempt < CAS_RETRIES; attempt++) {
		rc = run_one(p, RO_CAS, oid, ooff, lsec, newdata, expect, &raw);
		if (rc == -ENOENT) {
			/* an OSD that does not compare a missing object as zeros */
			if (!all_zero(expect, lsec))
				return -VCFS_EMISCOMPARE;
			rc = run_one(p, RO_CREATE_CAS, oid, ooff, lsec, newdata, NULL, NULL);
			if (rc == -EEXIST)
				continue;	/* created meanwhile: compare again */
			break;
		}
		if (rc == -VCFS_EMISCOMPARE && raw <= -RADOS_MAX_ERRNO) {
			/*
			 * An OSD that compares against the short object's data
			 * reports the miscompare where the data ends.  If we
			 * expected zeros from there on, extend the object (the
			 * same zeros, now stored) and compare again.
			 */
			uint64_t m = (uint64_t)(-(int64_t)raw - RADOS_MAX_ERRNO);
			uint64_t sz = 0;
			time_t mt;
			if (m >= lsec || !all_zero((const char *)expect + m, lsec - m))
				break;
			if (rados_stat(p->io, oid, &sz, &mt) || sz > ooff + m)
				break;
			if (run_one(p, RO_TRUNC, oid, obj_len(p, idx), 0, NULL, NULL, NULL))
				break;
			continue;
		}
		break;
	}
	if (rc && rc != -VCFS_EMISCOMPARE && rc != -ETIMEDOUT)
		vcfs_err("%s: compare-and-write at %" PRIu64 " failed: %s", p->uri, off,
			 vcfs_strerror(rc));
	return rc;
}

/*
 * Make [off, off + len) read as zeros: objects whose whole slice is in the
 * range are removed (space freed), partial ones zeroed (which never creates
 * a missing object).  UNMAP_BATCH objects at a time, each batch within the
 * io timeout.
 */
static int rad_zero_range(struct rados_priv *p, uint64_t off, uint64_t len)
{
	while (len) {
		int n = span_objects(p, off, len), rc;
		struct call *c;

		if (n > UNMAP_BATCH)
			n = UNMAP_BATCH;
		c = call_new(p, n, 0);
		if (!c)
			return -ENOMEM;
		for (int i = 0; i < n; i++) {
			struct piece *pc = &c->pc[i];
			uint64_t idx = off >> p->order, olen = obj_len(p, idx);
			pc->ooff = off & (obj_size(p) - 1);
			pc->len = (size_t)(olen - pc->ooff < len ? olen - pc->ooff : len);
			pc->op = pc->ooff == 0 && pc->len == olen ? RO_REMOVE : RO_ZERO;
			obj_name(p, idx, pc->oid);
			off += pc->len;
			len -= pc->len;
		}
		rc = call_run(c, NULL, NULL, "unmap");
		call_put(c);
		if (rc) {
			if (rc != -ETIMEDOUT)
				vcfs_err("%s: unmap failed: %s", p->uri, vcfs_strerror(rc));
			return rc;
		}
	}
	return 0;
}

static int rad_unmap(struct vcfs_disk *d, uint64_t off, uint64_t len)
{
	return rad_zero_range(d->priv, off, len);
}

static int rad_zeroes(struct vcfs_disk *d, uint64_t off, uint64_t len, unsigned flags)
{
	(void)flags;
	return rad_zero_range(d->priv, off, len);
}

/* ------------------------------------------------------------------ */
/* open / close                                                         */

static void rad_priv_free(struct rados_priv *p)
{
	/*
	 * Operations abandoned at their deadline still hold their calls; let
	 * librados finish them (its own op timeout ends each one) before the
	 * cluster handle goes away.
	 */
	uint64_t limit = vcfs_now_ns() + 2 * p->T + 2 * VCFS_NS_PER_S;

	while (__atomic_load_n(&p->inflight, __ATOMIC_ACQUIRE) && vcfs_now_ns() < limit)
		vcfs_sleep_ns(10 * VCFS_NS_PER_MS);
	if (__atomic_load_n(&p->inflight, __ATOMIC_ACQUIRE))
		vcfs_warn("%s: %d operations still pending at close", p->uri,
			  __atomic_load_n(&p->inflight, __ATOMIC_ACQUIRE));
	if (p->have_io)
		rados_ioctx_destroy(p->io);
	if (p->cluster)
		rados_shutdown(p->cluster);
	free(p->pool);
	free(p->image);
	free(p);
}

static void rad_close(struct vcfs_disk *d)
{
	if (d->priv)
		rad_priv_free(d->priv);
	free(d);
}

static const struct vcfs_disk_ops rados_ops = {
	.read = rad_read,
	.write = rad_write,
	.flush = rad_flush,
	.cas = rad_cas,
	.unmap = rad_unmap,
	.write_zeroes = rad_zeroes,
	.close = rad_close,
};

struct rados_query {
	char *conf, *id;
	uint64_t create;
};

static int parse_query(struct rados_priv *p, const char *q, struct rados_query *rq)
{
	char *dup, *save = NULL, *tok;
	int rc = 0;

	if (!q || !*q)
		return 0;
	dup = strdup(q);
	if (!dup)
		return -ENOMEM;
	for (tok = strtok_r(dup, "&", &save); tok && !rc; tok = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(tok, '=');
		const char *val = eq ? eq + 1 : "";
		char **slot = NULL;
		if (eq)
			*eq = 0;
		if (!strcmp(tok, "create")) {
			if (vcfs_parse_size(val, &rq->create) || !rq->create || rq->create % 512) {
				vcfs_err("%s: create=%s is not a size in whole 512-byte "
					 "sectors (e.g. create=64G)", p->uri, val);
				rc = -VCFS_EBADURI;
			}
			continue;
		}
		if (!strcmp(tok, "conf"))
			slot = &rq->conf;
		else if (!strcmp(tok, "id"))
			slot = &rq->id;
		if (!slot) {
			vcfs_err("%s: unknown option '%s' (known: conf, id, create)", p->uri, tok);
			rc = -VCFS_EBADURI;
		} else if (!*val) {
			vcfs_err("%s: option %s needs a value", p->uri, tok);
			rc = -VCFS_EBADURI;
		} else {
			free(*slot);
			*slot = strdup(val);
			if (!*slot)
				rc = -ENOMEM;
		}
	}
	free(dup);
	return rc;
}

static void hdr_encode(struct rados_hdr *h, uint64_t size, unsigned order)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, HDR_MAGIC, 8);
	put_le32(h->version, HDR_VERSION);
	put_le32(h->order, order);
	put_le64(h->size, size);
	put_le32(h->crc, vcfs_crc32c(0, h, offsetof(struct rados_hdr, crc)));
}

/* Check and decode a header of len bytes; -VCFS_ECORRUPT with a message. */
static int hdr_decode(struct rados_priv *p, const struct rados_hdr *h, size_t len)
{
	uint32_t crc, order, ver;

	if (len < sizeof(*h) || memcmp(h->magic, HDR_MAGIC, 8)) {
		vcfs_err("%s: object %s%s is not a vcfs image header (%zu bytes, no %s "
			 "magic)", p->uri, p->image, HDR_SUFFIX, len, HDR_MAGIC);
		return -VCFS_ECORRUPT;
	}
	crc = vcfs_crc32c(0, h, offsetof(struct rados_hdr, crc));
	if (crc != get_le32(h->crc)) {
		vcfs_err("%s: image header %s%s fails its checksum (crc32c %08x, stored "
			 "%08x)", p->uri, p->image, HDR_SUFFIX, crc, get_le32(h->crc));
		return -VCFS_ECORRUPT;
	}
	ver = get_le32(h->version);
	order = get_le32(h->order);
	if (ver != HDR_VERSION) {
		vcfs_err("%s: image header version %u; this vcfs knows version %u", p->uri,
			 ver, HDR_VERSION);
		return -VCFS_EFEATURE;
	}
	if (order < OBJ_ORDER_MIN || order > OBJ_ORDER_MAX) {
		vcfs_err("%s: image header gives objects of 2^%u bytes (want 2^%u..2^%u)",
			 p->uri, order, OBJ_ORDER_MIN, OBJ_ORDER_MAX);
		return -VCFS_ECORRUPT;
	}
	p->order = order;
	p->size = get_le64(h->size);
	return 0;
}

/* Read the header object into h; returns its length or -errno. */
static int hdr_read(struct rados_priv *p, struct rados_hdr *h)
{
	struct call *c = call_new(p, 1, sizeof(*h));
	int rc;

	if (!c)
		return -ENOMEM;
	c->pc[0].op = RO_READ;
	c->pc[0].len = sizeof(*h);
	c->pc[0].bounce = c->mem;
	snprintf(c->pc[0].oid, OID_MAX, "%s%s", p->image, HDR_SUFFIX);
	rc = call_run(c, NULL, NULL, "header read");
	if (!rc) {
		rc = c->pc[0].rc;	/* raw: -ENOENT means no image */
		if (rc >= 0)
			memcpy(h, c->mem, (size_t)rc);
	}
	call_put(c);
	return rc;
}

/*
 * Find the image's header, creating the image (exclusively) when it is
 * missing and create_size is given.
 */
static int open_image(struct rados_priv *p, uint64_t create_size, int rdonly)
{
	struct rados_hdr h;
	int rc;

	for (int attempt = 0; attempt < 2; attempt++) {
		memset(&h, 0, sizeof(h));
		rc = hdr_read(p, &h);
		if (rc >= 0)
			break;
		if (rc != -ENOENT || !create_size || rdonly || attempt)
			break;
		{
			char oid[OID_MAX];
			snprintf(oid, OID_MAX, "%s%s", p->image, HDR_SUFFIX);
			hdr_encode(&h, create_size, OBJ_ORDER_DEFAULT);
			rc = run_one(p, RO_CREATE_HDR, oid, 0, sizeof(h), &h, NULL, NULL);
		}
		if (rc == 0)
			vcfs_info("%s: created the image (%" PRIu64 " bytes in objects of "
				  "%u MiB)", p->uri, create_size, 1u << (OBJ_ORDER_DEFAULT - 20));
		else if (rc != -EEXIST)	/* EEXIST: another host made it; read it */
			break;
	}
	if (rc == -ENOENT) {
		vcfs_err("%s: no such image %s in pool %s: create it with ?create=SIZE%s",
			 p->uri, p->image, p->pool,
			 rdonly && create_size ? " (not on a read-only open)" : "");
		return rc;
	}
	if (rc == -ETIMEDOUT)
		vcfs_err("%s: the OSDs did not answer within the io timeout (%" PRIu64
			 " ms) while opening the image: are the OSDs of the pool up?",
			 p->uri, T_ms(p));
	else if (rc < 0)
		vcfs_err("%s: cannot open image header %s%s: %s", p->uri, p->image,
			 HDR_SUFFIX, vcfs_strerror(rc));
	if (rc < 0)
		return rc;
	rc = hdr_decode(p, &h, (size_t)rc);
	if (rc)
		return rc;
	if (create_size && create_size != p->size)
		vcfs_info("%s: the image exists with %" PRIu64 " bytes; create=%" PRIu64
			  " ignored", p->uri, p->size, create_size);
	return 0;
}

/* Connect to the cluster named by the conf; messages name conf and monitors. */
static int connect_cluster(struct rados_priv *p, const struct rados_query *rq)
{
	char name[128], mons[256] = "", where[300];
	int rc;

	if (!rq->id)
		snprintf(name, sizeof(name), "client.admin");
	else if (strchr(rq->id, '.'))
		snprintf(name, sizeof(name), "%s", rq->id);
	else
		snprintf(name, sizeof(name), "client.%s", rq->id);
	rc = rados_create2(&p->cluster, "ceph", name, 0);
	if (rc) {
		p->cluster = NULL;
		vcfs_err("%s: cannot create a rados client %s: %s", p->uri, name,
			 vcfs_strerror(rc));
		return rc;
	}
	rc = rados_conf_read_file(p->cluster, rq->conf);
	if (rc) {
		if (rq->conf)
			vcfs_err("%s: cannot read ceph config %s: %s", p->uri, rq->conf,
				 rc == -ENOENT ? "no such file" :
				 rc == -EINVAL ? "not a valid ceph.conf" : vcfs_strerror(rc));
		else
			vcfs_err("%s: no ceph config found ($CEPH_CONF, /etc/ceph/ceph.conf, "
				 "~/.ceph/config, ./ceph.conf): give one with ?conf=PATH",
				 p->uri);
		return rc;
	}
	/* librados's own messages would only repeat ours (CEPH_ARGS may
	 * turn them back on) */
	rados_conf_set(p->cluster, "log_to_stderr", "false");
	rados_conf_set(p->cluster, "err_to_stderr", "false");
	rc = rados_conf_parse_env(p->cluster, NULL);
	if (rc)
		vcfs_warn("%s: CEPH_ARGS not understood: %s", p->uri, vcfs_strerror(rc));
	set_timeout(p, "client_mount_timeout");
	set_timeout(p, "rados_mon_op_timeout");
	set_timeout(p, "rados_osd_op_timeout");
	rados_conf_get(p->cluster, "mon_host", mons, sizeof(mons));
	snprintf(where, sizeof(where), "monitors %s (from %s)", mons[0] ? mons : "(none)",
		 rq->conf ? rq->conf : "the default ceph config");
	if (!mons[0]) {
		vcfs_err("%s: no monitors configured (mon host) in %s", p->uri,
			 rq->conf ? rq->conf : "the default ceph config");
		return -EINVAL;
	}

	rc = rados_connect(p->cluster);
	if (rc == -ETIMEDOUT)
		vcfs_err("%s: no answer from the %s within the io timeout (%" PRIu64 " ms): "
			 "is the cluster up and reachable?", p->uri, where,
			 T_ms(p));
	else if (rc == -EACCES || rc == -EPERM || rc == -ENOENT)
		vcfs_err("%s: the %s refused %s: %s (check ?id= and the keyring)", p->uri,
			 where, name, vcfs_strerror(rc));
	else if (rc)
		vcfs_err("%s: cannot connect to the %s: %s", p->uri, where, vcfs_strerror(rc));
	if (rc)
		return rc;
	p->connected = 1;
	return 0;
}

int vcfs_rados_open(const struct vcfs_uri *u, const struct vcfs_disk_opts *o,
		    struct vcfs_disk **out)
{
	struct vcfs_disk *d = vcfs_disk_new(&rados_ops, o);
	struct rados_priv *p = calloc(1, sizeof(*p));
	struct rados_query rq = { 0 };
	int rdonly, rc;

	*out = NULL;
	if (!d || !p) {
		free(d);
		free(p);
		return -ENOMEM;
	}
	p->T = (uint64_t)d->opts.io_timeout_ms * VCFS_NS_PER_MS;
	rdonly = !!(d->opts.flags & VCFS_DISK_RDONLY);
	snprintf(p->uri, sizeof(p->uri), "rados://%s/%s", u->pool ? u->pool : "",
		 u->image ? u->image : "");
	if (!u->pool || !u->image || !*u->pool || !*u->image) {
		vcfs_err("%s: need rados://pool/image", p->uri);
		rc = -VCFS_EBADURI;
		goto err;
	}
	if (strlen(u->image) > IMAGE_NAME_MAX) {
		vcfs_err("%s: image name longer than %d characters", p->uri, IMAGE_NAME_MAX);
		rc = -VCFS_EBADURI;
		goto err;
	}
	p->pool = strdup(u->pool);
	p->image = strdup(u->image);
	if (!p->pool || !p->image) {
		rc = -ENOMEM;
		goto err;
	}
	rc = parse_query(p, u->query, &rq);
	if (rc)
		goto err;
	rc = connect_cluster(p, &rq);
	if (rc)
		goto err;
	rc = rados_ioctx_create(p->cluster, u->pool, &p->io);
	if (rc) {
		if (rc == -ENOENT)
			vcfs_err("%s: no pool %s in the cluster (create it: ceph osd pool "
				 "create %s)", p->uri, u->pool, u->pool);
		else if (rc == -ETIMEDOUT)
			vcfs_err("%s: no OSD map from the monitors within the io timeout "
				 "(%" PRIu64 " ms)", p->uri, T_ms(p));
		else
			vcfs_err("%s: cannot open pool %s: %s", p->uri, u->pool,
				 vcfs_strerror(rc));
		goto err;
	}
	p->have_io = 1;
	rc = open_image(p, rq.create, rdonly);
	if (rc)
		goto err;

	d->info.size = p->size;
	d->info.lsec = 512;
	d->info.psec = 4096;
	d->info.max_io = (uint32_t)obj_size(p);
	d->info.cas_mode = VCFS_CAS_RADOS_CMPEXT;
	d->info.caps = VCFS_DISK_CAP_CAS_SHARED | VCFS_DISK_CAP_UNMAP | VCFS_DISK_CAP_FUA |
		       VCFS_DISK_CAP_ZEROES | (rdonly ? VCFS_DISK_CAP_RDONLY : 0);
	strcpy(d->info.backend, "rados");
	snprintf(d->info.desc, sizeof(d->info.desc),
		 "rados pool %s image %s (%" PRIu64 " objects of %" PRIu64 " %s)", p->pool,
		 p->image, (p->size + obj_size(p) - 1) >> p->order,
		 p->order >= 20 ? obj_size(p) >> 20 : obj_size(p) >> 10,
		 p->order >= 20 ? "MiB" : "KiB");
	d->priv = p;
	free(rq.conf);
	free(rq.id);
	*out = d;
	return 0;

err:
	free(rq.conf);
	free(rq.id);
	rad_priv_free(p);
	free(d);
	return rc;
}

#endif /* VCFS_HAVE_RADOS */
