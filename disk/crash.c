/*
 * crash.c - the crash-recording layer (SQLite's test6.c, e2fsprogs test_io):
 * a backend that wraps any other, logs every write with the flush epoch it
 * belongs to, and rebuilds what a power cut would leave on the media.
 *
 * The model of a disk it simulates: a write that returned is volatile until
 * the next flush returns, unless it was FUA; volatile writes may each survive
 * whole, vanish, or tear (keep a prefix of whole physical sectors - a
 * physical sector itself is never torn).  Writes reach the media in the
 * order they were issued (no reordering between writes of one epoch beyond
 * what dropping and tearing give).
 *
 * The log: one record per write, write-zeroes or unmap (the latter two as a
 * zero-fill record without data), and per successful compare-and-write (as a
 * FUA write of its sector: a CAS is durable when it returns, and without it a
 * replayed image would lack the CAS'd sectors).  Each record keeps its data,
 * its epoch (the number of flushes that had returned when it was issued) and
 * whether it was FUA.  Failed operations are not logged.
 *
 * LOG mode: every op goes straight to lower and is only logged;
 * vcfs_crash_replay() applies a prefix of the log to a copy of the initial
 * disk as a crash right after that prefix would leave it.
 *
 * BUFFER mode: the writes of the current epoch are held (as indices into the
 * log) instead of being written; reads see lower overlaid by them in order;
 * a flush pushes them to lower in order and then flushes lower.  FUA writes
 * go to lower at once; one that overlaps a held write is also held, so that
 * a later push of the older held write cannot cover it.  CAS goes to lower
 * at once too, after a flush when a held write overlaps its sector (so that
 * it compares what this host reads); a CAS cannot be held or pushed again,
 * since its compare would then run against another host's later data.
 * vcfs_crash_now() applies the held writes per policy and stops the disk.
 *
 * RANDOM decides keep / drop / tear for record i from the i-th value of a
 * splitmix64 sequence started at seed: a record meets the same fate in
 * vcfs_crash_now() and in any replay with that seed, whatever the prefix.
 *
 * Invariants (all protected by crash_priv.mu, held across lower I/O so that
 * log order is the order writes reached lower):
 *  - log[0..nlog) is append-only; records never move their data;
 *  - every held index i has log[i].epoch == epoch, and held is in log order;
 *  - after crashed is set every op but close returns -VCFS_ECRASHED.
 * Memory grows with every write logged: a layer for tests, not production.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "disk_int.h"

enum rec_kind { REC_WRITE, REC_ZEROES, REC_UNMAP };

struct crash_rec {
	uint64_t off, len;
	uint64_t epoch;		/* flushes returned before this write */
	uint8_t *data;		/* REC_WRITE: len bytes; zero-fill records: NULL */
	enum rec_kind kind;
	int fua;		/* durable by itself */
	uint64_t order;		/* process-wide issue order (order_mu) */
};

/*
 * Order across crash layers (vcfs_crash_write_order): a write or CAS reaches
 * lower and takes its stamp under order_mu, so when several layers of one
 * process share a lower disk (hosts in one process, crashmh), stamp order is
 * the order their writes reached it.  order_depth lets a layer stacked on
 * another re-enter.  order_mu is taken after crash_priv.mu, never before.
 */
static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t order_next;
static _Thread_local int order_depth;

static void order_lock(void)
{
	if (!order_depth++)
		pthread_mutex_lock(&order_mu);
}

static void order_unlock(void)
{
	if (!--order_depth)
		pthread_mutex_unlock(&order_mu);
}

struct crash_priv {
	pthread_mutex_t mu;
	enum vcfs_crash_mode mode;
	struct crash_rec *log;	/* protected by mu, as is everything below */
	size_t nlog, caplog;
	size_t *held;		/* BUFFER: log indices not yet on lower, in order */
	size_t nheld, capheld;
	uint64_t epoch;
	int crashed;
};

static const struct vcfs_disk_ops crash_ops;

static struct crash_priv *crash_priv_of(struct vcfs_disk *d)
{
	return d && d->ops == &crash_ops ? d->priv : NULL;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : 64;
	void *n;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	n = realloc(*arr, ncap * elem);
	if (!n)
		return -ENOMEM;
	*arr = n;
	*cap = ncap;
	return 0;
}

static int overlaps(const struct crash_rec *r, uint64_t off, uint64_t len)
{
	return r->off < off + len && off < r->off + r->len;
}

static int held_overlaps(const struct crash_priv *p, uint64_t off, uint64_t len)
{
	for (size_t i = 0; i < p->nheld; i++)
		if (overlaps(&p->log[p->held[i]], off, len))
			return 1;
	return 0;
}

/* Copy buf (NULL for a zero-fill record) and make room for the record and its
 * hold; nothing is visible until log_commit().  mu held. */
static int log_prepare(struct crash_priv *p, const void *buf, uint64_t len, uint8_t **data)
{
	*data = NULL;
	if (grow((void **)&p->log, &p->caplog, p->nlog + 1, sizeof(*p->log)) ||
	    grow((void **)&p->held, &p->capheld, p->nheld + 1, sizeof(*p->held)))
		return -ENOMEM;
	if (buf) {
		*data = malloc(len ? (size_t)len : 1);
		if (!*data)
			return -ENOMEM;
		memcpy(*data, buf, (size_t)len);
	}
	return 0;
}

/* Append the record (room made by log_prepare) and hold it if asked.  mu held. */
static void log_commit(struct crash_priv *p, enum rec_kind kind, uint64_t off,
		       uint64_t len, uint8_t *data, int fua, int hold)
{
	p->log[p->nlog] = (struct crash_rec){ .off = off, .len = len, .epoch = p->epoch,
					      .data = data, .kind = kind, .fua = fua,
					      .order = __atomic_fetch_add(&order_next, 1,
									  __ATOMIC_RELAXED) };
	if (hold)
		p->held[p->nheld++] = p->nlog;
	p->nlog++;
}

/* Apply the first len bytes of r to disk t (len == r->len: all of it). */
static int rec_apply(struct vcfs_disk *t, const struct crash_rec *r, uint64_t len)
{
	if (!len)
		return 0;
	if (r->kind == REC_WRITE)
		return vcfs_disk_write(t, r->off, r->data, (size_t)len, 0);
	if (r->kind == REC_UNMAP && len == r->len)
		return vcfs_disk_unmap(t, r->off, len);
	return vcfs_disk_write_zeroes(t, r->off, len, 0);
}

/* splitmix64: the i-th value of the sequence that starts at seed. */
static uint64_t mix64(uint64_t seed, uint64_t i)
{
	uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * Bytes of record r that survive a tear: those before the last physical
 * sector boundary at or below its middle.  A write inside one physical
 * sector keeps nothing (a sector is atomic: all or nothing, and "nothing" is
 * the tear).
 */
static uint64_t tear_len(const struct crash_rec *r, uint32_t psec)
{
	uint64_t cut = (r->off + r->len / 2) / psec * psec;

	return cut > r->off ? cut - r->off : 0;
}

/* Apply volatile record i (index in the log) to t as policy p decides. */
static int rec_crash(struct vcfs_disk *t, const struct crash_rec *r, size_t i,
		     enum vcfs_crash_policy p, uint64_t seed, uint32_t psec)
{
	if (p == VCFS_CRASH_RANDOM) {
		static const enum vcfs_crash_policy pick[3] = {
			VCFS_CRASH_KEEP, VCFS_CRASH_DROP, VCFS_CRASH_TEAR };
		p = pick[mix64(seed, i) % 3];
	}
	switch (p) {
	case VCFS_CRASH_KEEP:
		return rec_apply(t, r, r->len);
	case VCFS_CRASH_TEAR:
		return rec_apply(t, r, tear_len(r, psec));
	default:
		return 0;
	}
}

static int valid_policy(enum vcfs_crash_policy p)
{
	return p == VCFS_CRASH_KEEP || p == VCFS_CRASH_DROP || p == VCFS_CRASH_TEAR ||
	       p == VCFS_CRASH_RANDOM;
}

/* BUFFER: push the held writes in order, flush lower, open a new epoch.  On
 * error the held writes stay held (pushing them again is harmless).  mu held. */
static int crash_flush_locked(struct vcfs_disk *d)
{
	struct crash_priv *p = d->priv;
	int rc = 0;

	for (size_t i = 0; !rc && i < p->nheld; i++) {
		const struct crash_rec *r = &p->log[p->held[i]];
		rc = rec_apply(d->lower, r, r->len);
	}
	if (!rc)
		rc = vcfs_disk_flush(d->lower);
	if (!rc) {
		p->nheld = 0;
		p->epoch++;
	}
	return rc;
}

static int crash_read(struct vcfs_disk *d, uint64_t off, void *buf, size_t len)
{
	struct crash_priv *p = d->priv;
	int rc;

	pthread_mutex_lock(&p->mu);
	rc = p->crashed ? -VCFS_ECRASHED : vcfs_disk_read(d->lower, off, buf, len);
	for (size_t i = 0; !rc && i < p->nheld; i++) {
		const struct crash_rec *r = &p->log[p->held[i]];
		uint64_t lo, hi;
		if (!overlaps(r, off, len))
			continue;
		lo = r->off > off ? r->off : off;
		hi = r->off + r->len < off + len ? r->off + r->len : off + len;
		if (r->data)
			memcpy((char *)buf + (lo - off), r->data + (lo - r->off), hi - lo);
		else
			memset((char *)buf + (lo - off), 0, hi - lo);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/*
 * Every kind of write: log it; in LOG mode and for FUA writes in BUFFER mode
 * pass it to lower first, else hold it.  buf is NULL for zero-fill records.
 */
static int crash_record(struct vcfs_disk *d, enum rec_kind kind, uint64_t off,
			const void *buf, uint64_t len, unsigned flags)
{
	struct crash_priv *p = d->priv;
	int fua = kind != REC_UNMAP && (flags & VCFS_IO_FUA);
	int through = p->mode == VCFS_CRASH_LOG || fua;
	int hold = 0;
	uint8_t *data = NULL;
	int rc;

	pthread_mutex_lock(&p->mu);
	rc = p->crashed ? -VCFS_ECRASHED : log_prepare(p, buf, len, &data);
	if (rc)
		goto out_unlock;
	if (p->mode == VCFS_CRASH_BUFFER)
		hold = !fua || held_overlaps(p, off, len);
	order_lock();
	if (through) {
		if (kind == REC_WRITE)
			rc = vcfs_disk_write(d->lower, off, buf, (size_t)len, flags);
		else if (kind == REC_ZEROES)
			rc = vcfs_disk_write_zeroes(d->lower, off, len, flags);
		else
			rc = vcfs_disk_unmap(d->lower, off, len);
	}
	if (rc)
		free(data);
	else
		log_commit(p, kind, off, len, data, fua, hold);
	order_unlock();
out_unlock:
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int crash_write(struct vcfs_disk *d, uint64_t off, const void *buf, size_t len,
		       unsigned flags)
{
	return crash_record(d, REC_WRITE, off, buf, len, flags);
}

static int crash_unmap(struct vcfs_disk *d, uint64_t off, uint64_t len)
{
	return crash_record(d, REC_UNMAP, off, NULL, len, 0);
}

static int crash_write_zeroes(struct vcfs_disk *d, uint64_t off, uint64_t len,
			      unsigned flags)
{
	return crash_record(d, REC_ZEROES, off, NULL, len, flags);
}

static int crash_flush(struct vcfs_disk *d)
{
	struct crash_priv *p = d->priv;
	int rc;

	pthread_mutex_lock(&p->mu);
	if (p->crashed)
		rc = -VCFS_ECRASHED;
	else if (p->mode == VCFS_CRASH_BUFFER)
		rc = crash_flush_locked(d);
	else if (!(rc = vcfs_disk_flush(d->lower)))
		p->epoch++;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int crash_cas(struct vcfs_disk *d, uint64_t off, const void *expect,
		     const void *newdata)
{
	struct crash_priv *p = d->priv;
	uint32_t lsec = d->info.lsec;
	uint8_t *data = NULL;
	int rc;

	pthread_mutex_lock(&p->mu);
	rc = p->crashed ? -VCFS_ECRASHED : log_prepare(p, newdata, lsec, &data);
	if (!rc && held_overlaps(p, off, lsec))
		rc = crash_flush_locked(d);
	order_lock();
	if (!rc)
		rc = vcfs_disk_cas(d->lower, off, expect, newdata);
	if (rc)
		free(data);
	else
		log_commit(p, REC_WRITE, off, lsec, data, 1, 0);
	order_unlock();
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static void crash_close(struct vcfs_disk *d)
{
	struct crash_priv *p = d->priv;

	vcfs_disk_close(d->lower);
	if (p) {
		for (size_t i = 0; i < p->nlog; i++)
			free(p->log[i].data);
		free(p->log);
		free(p->held);
		pthread_mutex_destroy(&p->mu);
		free(p);
	}
	free(d);
}

static const struct vcfs_disk_ops crash_ops = {
	.read = crash_read,
	.write = crash_write,
	.flush = crash_flush,
	.cas = crash_cas,
	.unmap = crash_unmap,
	.write_zeroes = crash_write_zeroes,
	.close = crash_close,
};

/*
 * Wrap lower.  On success the new disk owns lower (closing it closes lower);
 * on failure the caller still does.  Recording starts at epoch 0.
 */
int vcfs_crash_wrap(struct vcfs_disk *lower, enum vcfs_crash_mode mode,
		    struct vcfs_disk **out)
{
	const char *prefix = mode == VCFS_CRASH_LOG ? "crash(log):" : "crash(buffer):";
	struct vcfs_disk *d;
	struct crash_priv *p;
	size_t pl = strlen(prefix), ll;

	*out = NULL;
	if (!lower || (mode != VCFS_CRASH_LOG && mode != VCFS_CRASH_BUFFER))
		return -EINVAL;
	d = vcfs_disk_new(&crash_ops, &lower->opts);
	p = calloc(1, sizeof(*p));
	if (!d || !p) {
		free(d);
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->mu, NULL);
	p->mode = mode;
	d->priv = p;
	d->lower = lower;
	d->info = lower->info;
	snprintf(d->info.backend, sizeof(d->info.backend), "crash");
	/* "<prefix><lower desc>" cut to fit */
	ll = strlen(lower->info.desc);
	if (ll > sizeof(d->info.desc) - 1 - pl)
		ll = sizeof(d->info.desc) - 1 - pl;
	memcpy(d->info.desc, prefix, pl);
	memcpy(d->info.desc + pl, lower->info.desc, ll);
	d->info.desc[pl + ll] = 0;
	*out = d;
	return 0;
}

size_t vcfs_crash_nwrites(struct vcfs_disk *crash)
{
	struct crash_priv *p = crash_priv_of(crash);
	size_t n;

	if (!p)
		return 0;
	pthread_mutex_lock(&p->mu);
	n = p->nlog;
	pthread_mutex_unlock(&p->mu);
	return n;
}

/* Any output pointer may be NULL.  -EINVAL if i is not a logged write. */
int vcfs_crash_write_info(struct vcfs_disk *crash, size_t i, uint64_t *off,
			  uint64_t *len, uint64_t *epoch, int *durable)
{
	struct crash_priv *p = crash_priv_of(crash);
	int rc = -EINVAL;

	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->mu);
	if (i < p->nlog) {
		const struct crash_rec *r = &p->log[i];
		if (off)
			*off = r->off;
		if (len)
			*len = r->len;
		if (epoch)
			*epoch = r->epoch;
		if (durable)
			*durable = r->fua;
		rc = 0;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* The process-wide stamp of write i (see order_mu): writes of different
 * layers reached their lower disks in stamp order.  -EINVAL if i is not
 * logged. */
int vcfs_crash_write_order(struct vcfs_disk *crash, size_t i, uint64_t *order)
{
	struct crash_priv *p = crash_priv_of(crash);
	int rc = -EINVAL;

	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->mu);
	if (i < p->nlog) {
		*order = p->log[i].order;
		rc = 0;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/*
 * Crash now.  BUFFER: apply the held writes to lower in order (FUA ones
 * whole, the others per policy), flush lower, and stop.  LOG: every write is
 * already on lower, so only stop (build crash images with vcfs_crash_replay).
 * Either way every later op but close gives -VCFS_ECRASHED; the log stays
 * readable.  Returns the first error applying the writes, -VCFS_ECRASHED if
 * already crashed, -EINVAL for a bad policy.
 */
int vcfs_crash_now(struct vcfs_disk *crash, enum vcfs_crash_policy policy, uint64_t seed)
{
	struct crash_priv *p = crash_priv_of(crash);
	int rc = 0;

	if (!p || !valid_policy(policy))
		return -EINVAL;
	pthread_mutex_lock(&p->mu);
	if (p->crashed) {
		rc = -VCFS_ECRASHED;
		goto out_unlock;
	}
	for (size_t k = 0; !rc && k < p->nheld; k++) {
		size_t i = p->held[k];
		const struct crash_rec *r = &p->log[i];
		rc = r->fua ? rec_apply(crash->lower, r, r->len)
			    : rec_crash(crash->lower, r, i, policy, seed, crash->info.psec);
	}
	if (!rc && p->mode == VCFS_CRASH_BUFFER)
		rc = vcfs_disk_flush(crash->lower);
	p->nheld = 0;
	p->crashed = 1;
out_unlock:
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/*
 * Apply log[0..n) to target as a crash right after log[n-1] leaves them: the
 * crash epoch is log[n-1]'s; records of earlier epochs and FUA records whole,
 * the others (the crash epoch's volatile writes) per policy.  target must be
 * a copy of the disk as it was when recording began, and another disk than
 * crash; it is not flushed.  Works before and after vcfs_crash_now().
 * -EINVAL if n exceeds the log or target is crash itself.
 */
int vcfs_crash_replay(struct vcfs_disk *crash, struct vcfs_disk *target, size_t n,
		      enum vcfs_crash_policy policy, uint64_t seed)
{
	return vcfs_crash_replay_range(crash, target, n, 0, n, policy, seed);
}

/*
 * The part [from, to) of vcfs_crash_replay(crash, target, n, ...): records
 * fare as in a crash right after log[n-1] (the crash epoch is log[n-1]'s),
 * but only those in [from, to) are applied.  Several hosts' logs can so be
 * interleaved onto one target in an order the caller chooses (crashmh).
 * -EINVAL unless from <= to <= n <= the log's length.
 */
int vcfs_crash_replay_range(struct vcfs_disk *crash, struct vcfs_disk *target, size_t n,
			    size_t from, size_t to, enum vcfs_crash_policy policy,
			    uint64_t seed)
{
	struct crash_priv *p = crash_priv_of(crash);
	uint64_t crash_epoch;
	int rc = 0;

	if (!p || !target || target == crash || !valid_policy(policy))
		return -EINVAL;
	pthread_mutex_lock(&p->mu);
	if (n > p->nlog || to > n || from > to) {
		rc = -EINVAL;
		goto out_unlock;
	}
	crash_epoch = n ? p->log[n - 1].epoch : 0;
	for (size_t i = from; !rc && i < to; i++) {
		const struct crash_rec *r = &p->log[i];
		if (r->epoch < crash_epoch || r->fua)
			rc = rec_apply(target, r, r->len);
		else
			rc = rec_crash(target, r, i, policy, seed, crash->info.psec);
	}
out_unlock:
	pthread_mutex_unlock(&p->mu);
	return rc;
}
