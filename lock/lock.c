/*
 * lock.c - on-disk lock records (protocol in lock.h, format in fs/ondisk.h).
 *
 * A lock record is a record block: everything in its first 512 bytes, changed
 * only by vcfs_disk_cas() of the first logical sector of its 4 KiB block, with
 * expect = exactly what we read.  We always read the whole block and write it
 * back unchanged past the record, so a 4096-byte sector CAS is the same code.
 *
 * Invariants of a record written here:
 *  - holders[0 .. nholders-1] are the entries, the rest are VCFS_NO_SLOT;
 *  - mode is VCFS_LOCK_FREE exactly when nholders is 0;
 *  - h.seq + 1 at every change; acquired_seq = h.seq of the last acquire.
 *
 * Two hosts racing for one record:
 *	A: reads (seq 7, free)		B: reads (seq 7, free)
 *	A: CAS 7 -> 8 (A holds)		B: CAS miscompares, re-reads (seq 8, A)
 *	                                B: A is live: -EBUSY (or waits)
 * A holder's entry carries the low 32 bits of its slot generation; recovery of
 * a dead slot bumps the generation, which makes every entry of it stale at
 * once without anyone rewriting the records.
 *
 * No locking in memory: every call is a read-decide-CAS loop, so any thread of
 * any host may call anything at any time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lock.h"
#include "../common/clock.h"
#include "../common/log.h"
#include "../common/vcfs_err.h"

#define BACKOFF_MIN_NS	(200 * 1000ull)		/* first wait for a live holder */
#define BACKOFF_MAX_NS	(20 * VCFS_NS_PER_MS)	/* longest single wait */
/* A waiter whose record keeps changing (busy, not stuck) waits at most this
 * many times its wait_ms in all. */
#define LOCK_WAIT_PROGRESS_MAX	6

/* A record decoded to host order. */
struct rec {
	int init;			/* the block held a valid record */
	enum vcfs_lock_mode mode;
	uint64_t seq, obj_version, claim_seq;
	uint32_t n;
	struct { uint32_t slot, gen, flags; } e[VCFS_LOCK_HOLDERS];
};

const char *vcfs_lock_mode_name(enum vcfs_lock_mode m)
{
	switch (m) {
	case VCFS_LOCK_FREE: return "free";
	case VCFS_LOCK_EXCL: return "exclusive";
	case VCFS_LOCK_RO:   return "read-only";
	case VCFS_LOCK_MW:   return "multi-writer";
	}
	return "unknown";
}

/* Read and decode the record at blkno into blk (4 KiB) and r. */
static int rec_read(struct vcfs_disk *d, const struct vcfs_sb *sb, uint64_t blkno,
		    uint8_t *blk, struct rec *r)
{
	const struct vcfs_lock_disk *l = (const void *)blk;
	uint32_t i, n = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	if (blkno < VCFS_VOLLOCK_BLKNO || blkno >= sb->volume_blocks) {
		vcfs_err("lock record: block %llu is outside the datastore",
			 (unsigned long long)blkno);
		return -EINVAL;
	}
	rc = vcfs_disk_read(d, blkno * VCFS_BLK, blk, VCFS_BLK);
	if (rc)
		return rc;
	rc = vcfs_mhdr_check(blk, VCFS_T_LOCK, blkno, sb->volgen);
	if (rc < 0)
		return rc;
	if (rc == 1)
		return 0;	/* never initialised: a free record */
	r->init = 1;
	r->mode = (enum vcfs_lock_mode)le32_get(l->mode);
	r->seq = le64_get(l->h.seq);
	r->obj_version = le64_get(l->obj_version);
	r->claim_seq = le64_get(l->claim_seq);
	if (r->mode > VCFS_LOCK_MW)
		return VCFS_CORRUPT("lock record has an unknown mode", blkno);
	if (le32_get(l->nholders) > VCFS_LOCK_HOLDERS)
		return VCFS_CORRUPT("lock record has too many holders", blkno);
	for (i = 0; i < VCFS_LOCK_HOLDERS; i++) {
		if (le16_get(l->holders[i].slot) == VCFS_NO_SLOT)
			continue;
		r->e[n].slot = le16_get(l->holders[i].slot);
		r->e[n].gen = le32_get(l->holders[i].gen);
		r->e[n].flags = le16_get(l->holders[i].flags);
		n++;
	}
	r->n = n;
	if (n != le32_get(l->nholders) || (n == 0) != (r->mode == VCFS_LOCK_FREE))
		return VCFS_CORRUPT("lock record: holder count and mode disagree", blkno);
	return 0;
}

/*
 * Build the image that replaces blk: the block as read with the record part
 * rewritten from r, h.seq + 1, sealed.  Returns the new seq.
 */
static uint64_t rec_build(struct vcfs_hb *hb, uint64_t blkno, const uint8_t *blk,
			  const struct rec *r, int acquired, uint8_t *img)
{
	struct vcfs_lock_disk *l = (void *)img;
	uint64_t seq = r->seq + 1;

	memcpy(img, blk, VCFS_BLK);
	memset(img, 0, VCFS_RECORD_SIZE);
	l->mode = le32_mk(r->n ? r->mode : VCFS_LOCK_FREE);
	l->nholders = le32_mk(r->n);
	l->obj_version = le64_mk(r->obj_version);
	l->claim_seq = le64_mk(r->claim_seq);
	l->acquired_seq = acquired ? le64_mk(seq) :
			  ((const struct vcfs_lock_disk *)(const void *)blk)->acquired_seq;
	for (uint32_t i = 0; i < VCFS_LOCK_HOLDERS; i++) {
		l->holders[i].slot = le16_mk(i < r->n ? (uint16_t)r->e[i].slot : VCFS_NO_SLOT);
		l->holders[i].gen = le32_mk(i < r->n ? r->e[i].gen : 0);
		l->holders[i].flags = le16_mk(i < r->n ? (uint16_t)r->e[i].flags : 0);
	}
	vcfs_mhdr_set_seq(img, seq);
	l->h.writer = le32_mk(vcfs_hb_slot(hb));
	vcfs_mhdr_seal(img, VCFS_T_LOCK, blkno, vcfs_hb_sb(hb)->volgen);
	return seq;
}

static int cas_rec(struct vcfs_hb *hb, uint64_t blkno, const uint8_t *blk,
		   const uint8_t *img)
{
	int rc = vcfs_hb_write_ok(hb);

	return rc ? rc : vcfs_disk_cas(vcfs_hb_disk(hb), blkno * VCFS_BLK, blk, img);
}

/* Index of our entry (this slot at this generation) in r, or -1. */
static int find_self(struct vcfs_hb *hb, const struct rec *r)
{
	uint32_t me = vcfs_hb_slot(hb), gen = (uint32_t)vcfs_hb_generation(hb);

	for (uint32_t i = 0; i < r->n; i++)
		if (r->e[i].slot == me && r->e[i].gen == gen)
			return (int)i;
	return -1;
}

static void rec_drop(struct rec *r, uint32_t i)
{
	memmove(&r->e[i], &r->e[i + 1], (r->n - i - 1) * sizeof(r->e[0]));
	r->n--;
}

static int compatible(enum vcfs_lock_mode held, enum vcfs_lock_mode want)
{
	return (held == VCFS_LOCK_RO && want == VCFS_LOCK_RO) ||
	       (held == VCFS_LOCK_MW && want == VCFS_LOCK_MW);
}

static void fill_info(const struct rec *r, const int *stale, struct vcfs_lock_info *out)
{
	memset(out, 0, sizeof(*out));
	out->mode = r->mode;
	out->seq = r->seq;
	out->obj_version = r->obj_version;
	out->claim_seq = r->claim_seq;
	out->nholders = r->n;
	for (uint32_t i = 0; i < r->n; i++) {
		out->holders[i].slot = r->e[i].slot;
		out->holders[i].gen = r->e[i].gen;
		out->holders[i].claim = !!(r->e[i].flags & VCFS_LH_CLAIM);
		out->holders[i].stale = stale ? stale[i] : 0;
	}
}

/*
 * After a CAS failed with an I/O error it may still have landed: re-read and
 * say whether our entry is there (1), absent (0), or the error.
 */
static int landed(struct vcfs_hb *hb, uint64_t blkno, uint8_t *blk)
{
	struct rec r;
	int rc = rec_read(vcfs_hb_disk(hb), vcfs_hb_sb(hb), blkno, blk, &r);

	return rc ? rc : find_self(hb, &r) >= 0;
}

int vcfs_lock_acquire(struct vcfs_hb *hb, uint64_t blkno, enum vcfs_lock_mode mode,
		      unsigned flags, uint32_t wait_ms, uint64_t *obj_version,
		      struct vcfs_lock_info *busy)
{
	struct vcfs_disk *d = vcfs_hb_disk(hb);
	const struct vcfs_sb *sb = vcfs_hb_sb(hb);
	uint8_t *blk = vcfs_disk_buf_alloc(VCFS_BLK), *img = vcfs_disk_buf_alloc(VCFS_BLK);
	uint64_t start = vcfs_now_ns(), wait_ns = (uint64_t)wait_ms * VCFS_NS_PER_MS;
	uint64_t deadline = start + wait_ns, hard = start + LOCK_WAIT_PROGRESS_MAX * wait_ns;
	uint64_t backoff = BACKOFF_MIN_NS, seen_seq = 0;
	unsigned misses = 0, seed = (unsigned)(start ^ (blkno << 7) ^ (uintptr_t)&start);
	int rc, seen = 0, in_doubt = 0;

	if (!blk || !img) {
		rc = -ENOMEM;
		goto out;
	}
	if (mode != VCFS_LOCK_EXCL && mode != VCFS_LOCK_RO && mode != VCFS_LOCK_MW) {
		rc = -EINVAL;
		goto out;
	}
	for (;;) {
		struct rec r, keep;
		int stale[VCFS_LOCK_HOLDERS], conflict = -1, dead = -1;
		uint64_t now;

		if ((rc = vcfs_hb_write_ok(hb)))
			goto out;
		if ((rc = rec_read(d, sb, blkno, blk, &r)))
			goto out;
		if (find_self(hb, &r) >= 0) {
			if (flags & VCFS_LOCK_PEEK) {
				rc = 0;	/* ours already: the caller decides */
				goto out;
			}
			if (in_doubt) {
				/* the CAS that timed out landed after all: only we
				 * write entries with our slot and generation */
				if (obj_version)
					*obj_version = r.obj_version;
				rc = 0;
				goto out;
			}
			vcfs_err("lock record %llu: this host already holds it (%s); callers "
				 "must count their own opens", (unsigned long long)blkno,
				 vcfs_lock_mode_name(r.mode));
			rc = -EDEADLK;
			goto out;
		}
		keep = r;
		keep.n = 0;
		for (uint32_t i = 0; i < r.n; i++) {
			int st = vcfs_hb_holder_state(hb, r.e[i].slot, r.e[i].gen);
			if (st < 0) {
				rc = st;
				goto out;
			}
			stale[i] = st == VCFS_HOLDER_STALE;
			if (stale[i])
				continue;	/* dropped by our CAS */
			keep.e[keep.n++] = r.e[i];
			if (compatible(r.mode, mode))
				continue;
			if (st == VCFS_HOLDER_LIVE && conflict < 0)
				conflict = (int)i;
			else if (st == VCFS_HOLDER_DEAD && dead < 0)
				dead = (int)i;
		}
		if (conflict < 0 && dead >= 0) {
			/* the holder looks dead to us: recover it (exactly one survivor
			 * wins that), then its entries are stale */
			rc = vcfs_hb_recover(hb, r.e[dead].slot);
			if (!rc)
				continue;
			if (rc != -EBUSY && rc != -EOPNOTSUPP && rc != -EDEADLK)
				goto out;
			conflict = dead;	/* someone else recovers it: wait */
		}
		if (conflict < 0 && keep.n == VCFS_LOCK_HOLDERS) {
			vcfs_warn("lock record %llu: all %u holder entries are in use",
				  (unsigned long long)blkno, VCFS_LOCK_HOLDERS);
			conflict = 0;
		}
		if (conflict >= 0) {
			now = vcfs_now_ns();
			/* the record moved since we last looked (it changed hands or
			 * holders): the lock is busy, not stuck -- wait on, up to a
			 * hard bound, instead of failing a host that lost the race
			 * to many others in a row */
			if (seen && r.seq != seen_seq && now + wait_ns > deadline)
				deadline = now + wait_ns < hard ? now + wait_ns : hard;
			seen = 1;
			seen_seq = r.seq;
			if ((flags & VCFS_LOCK_WAIT) && now < deadline) {
				uint64_t w = backoff < deadline - now ? backoff : deadline - now;
				/* jitter: hosts that back off together retry apart */
				w = w / 2 + (uint64_t)rand_r(&seed) % (w / 2 + 1);
				vcfs_sleep_ns(w);
				backoff = backoff * 2 < BACKOFF_MAX_NS ? backoff * 2 : BACKOFF_MAX_NS;
				continue;
			}
			if (busy) {
				fill_info(&r, stale, busy);
				if (conflict > 0) {	/* name a live holder first */
					uint32_t s = busy->holders[0].slot, g = busy->holders[0].gen;
					busy->holders[0] = busy->holders[conflict];
					busy->holders[conflict].slot = s;
					busy->holders[conflict].gen = g;
					busy->holders[conflict].stale = stale[0];
				}
			}
			rc = -EBUSY;
			goto out;
		}
		if (flags & VCFS_LOCK_PEEK) {
			rc = 0;		/* takeable now; not taken */
			goto out;
		}
		if (!keep.n)
			keep.mode = mode;
		keep.e[keep.n].slot = vcfs_hb_slot(hb);
		keep.e[keep.n].gen = (uint32_t)vcfs_hb_generation(hb);
		keep.e[keep.n].flags = 0;
		keep.n++;
		rec_build(hb, blkno, blk, &keep, 1, img);
		rc = cas_rec(hb, blkno, blk, img);
		if (rc == -VCFS_EMISCOMPARE) {
			/* the record changed under us: look again; after a few
			 * misses in a row, step aside a little (random) */
			if (++misses > 3)
				vcfs_sleep_ns((vcfs_now_ns() / 1000 % 200 + 1) * 1000);
			continue;
		}
		if (rc && rc != -VCFS_EFENCED) {
			int l = landed(hb, blkno, blk);
			if (l == 1)
				rc = 0;
			else if (l == 0 && rc == -ETIMEDOUT && (flags & VCFS_LOCK_WAIT) &&
				 vcfs_now_ns() < deadline) {
				/* the backend timed out (a busy sector: the file
				 * backend's OFD lock, a loaded target) and our entry
				 * is not there: try again within our wait */
				in_doubt = 1;
				continue;
			} else if (l < 0)
				vcfs_warn("lock record %llu: acquire failed (%s) and the record "
					  "cannot be re-read (%s): our entry may linger until "
					  "this host leaves", (unsigned long long)blkno,
					  vcfs_strerror(rc), vcfs_strerror(l));
		}
		if (!rc && obj_version)
			*obj_version = keep.obj_version;
		goto out;
	}
out:
	free(blk);
	free(img);
	return rc;
}

/* Drop our entry (release) or keep it (bump), obj_version + bump. */
static int change_own(struct vcfs_hb *hb, uint64_t blkno, int drop, int bump)
{
	struct vcfs_disk *d = vcfs_hb_disk(hb);
	const struct vcfs_sb *sb = vcfs_hb_sb(hb);
	uint8_t *blk = vcfs_disk_buf_alloc(VCFS_BLK), *img = vcfs_disk_buf_alloc(VCFS_BLK);
	int rc;

	if (!blk || !img) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		struct rec r;
		int i;

		if ((rc = vcfs_hb_write_ok(hb)))
			goto out;
		if ((rc = rec_read(d, sb, blkno, blk, &r)))
			goto out;
		if ((i = find_self(hb, &r)) < 0) {
			vcfs_warn("lock record %llu: our entry is gone (the lock was broken)",
				  (unsigned long long)blkno);
			rc = -ESTALE;
			goto out;
		}
		if (!drop && r.mode == VCFS_LOCK_RO) {
			rc = -EPERM;
			goto out;
		}
		if (drop)
			rec_drop(&r, (uint32_t)i);
		r.obj_version += bump ? 1 : 0;
		rec_build(hb, blkno, blk, &r, 0, img);
		rc = cas_rec(hb, blkno, blk, img);
		if (rc == -VCFS_EMISCOMPARE)
			continue;
		if (rc && rc != -VCFS_EFENCED && drop && landed(hb, blkno, blk) == 0)
			rc = 0;		/* the release landed before the error */
		goto out;
	}
out:
	free(blk);
	free(img);
	return rc;
}

int vcfs_lock_release(struct vcfs_hb *hb, uint64_t blkno, int bump)
{
	return change_own(hb, blkno, 1, bump);
}

int vcfs_lock_bump(struct vcfs_hb *hb, uint64_t blkno)
{
	return change_own(hb, blkno, 0, 1);
}

/*
 * The map-change claim (lock.h).  One read-decide-CAS loop serves both
 * taking it (claim) and waiting for other hosts' claims to end (wait_only):
 * a claim by another entry blocks while that holder is live, is recovered
 * while it looks dead, and counts for nothing once stale.
 */
static int claim_loop(struct vcfs_hb *hb, uint64_t blkno, int wait_only, int only_older,
		      unsigned flags, uint32_t wait_ms, uint32_t *others, uint64_t *seq_out,
		      struct vcfs_lock_info *busy)
{
	struct vcfs_disk *d = vcfs_hb_disk(hb);
	const struct vcfs_sb *sb = vcfs_hb_sb(hb);
	uint8_t *blk = vcfs_disk_buf_alloc(VCFS_BLK), *img = vcfs_disk_buf_alloc(VCFS_BLK);
	uint64_t deadline = vcfs_now_ns() + (uint64_t)wait_ms * VCFS_NS_PER_MS;
	uint64_t backoff = 50 * 1000ull, first_seq = 0;
	int rc, first = 1;

	if (!blk || !img) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		struct rec r;
		int stale[VCFS_LOCK_HOLDERS] = { 0 }, self, other = -1, dead = 0;
		uint32_t nothers = 0;

		if ((rc = vcfs_hb_write_ok(hb)))
			goto out;
		if ((rc = rec_read(d, sb, blkno, blk, &r)))
			goto out;
		if (first) {
			first_seq = r.seq;
			first = 0;
		}
		self = find_self(hb, &r);
		if (self < 0) {
			rc = -ESTALE;	/* we hold nothing here (any more) */
			goto out;
		}
		if (r.mode != VCFS_LOCK_MW) {
			rc = -EINVAL;
			goto out;
		}
		if (!wait_only && (r.e[self].flags & VCFS_LH_CLAIM)) {
			rc = -EDEADLK;
			goto out;
		}
		for (uint32_t i = 0; i < r.n; i++) {
			int st;
			if ((int)i == self)
				continue;
			st = vcfs_hb_holder_state(hb, r.e[i].slot, r.e[i].gen);
			if (st < 0) {
				rc = st;
				goto out;
			}
			stale[i] = st == VCFS_HOLDER_STALE;
			if (stale[i])
				continue;
			nothers++;
			if (!(r.e[i].flags & VCFS_LH_CLAIM))
				continue;
			if (only_older && r.claim_seq > first_seq)
				continue;	/* set after we looked first */
			other = (int)i;
			dead = st == VCFS_HOLDER_DEAD;
		}
		if (other >= 0 && dead) {
			rc = vcfs_hb_recover(hb, r.e[other].slot);
			if (!rc)
				continue;
			if (rc != -EBUSY && rc != -EOPNOTSUPP && rc != -EDEADLK)
				goto out;
		}
		if (other >= 0) {
			uint64_t now = vcfs_now_ns();
			if ((flags & VCFS_LOCK_WAIT) && now < deadline) {
				vcfs_sleep_ns(backoff < deadline - now ? backoff : deadline - now);
				backoff = backoff * 2 < 2 * VCFS_NS_PER_MS ? backoff * 2 :
					  2 * VCFS_NS_PER_MS;
				continue;
			}
			if (busy) {
				fill_info(&r, stale, busy);
				busy->holders[0] = busy->holders[other];
			}
			rc = -EBUSY;
			goto out;
		}
		if (others)
			*others = nothers;
		if (wait_only) {
			if (seq_out)
				*seq_out = r.seq;
			rc = 0;
			goto out;
		}
		/* stale entries stay (acquire drops them); ours gets the claim */
		r.e[self].flags |= VCFS_LH_CLAIM;
		r.claim_seq = r.seq + 1;
		rec_build(hb, blkno, blk, &r, 0, img);
		rc = cas_rec(hb, blkno, blk, img);
		if (rc == -VCFS_EMISCOMPARE)
			continue;
		if (rc && rc != -VCFS_EFENCED) {
			/* landed anyway?  then the claim is ours */
			struct rec r2;
			if (!rec_read(d, sb, blkno, blk, &r2) && (self = find_self(hb, &r2)) >= 0 &&
			    (r2.e[self].flags & VCFS_LH_CLAIM))
				rc = 0;
		}
		if (!rc && seq_out)
			*seq_out = r.claim_seq;
		goto out;
	}
out:
	free(blk);
	free(img);
	return rc;
}

int vcfs_lock_claim(struct vcfs_hb *hb, uint64_t blkno, unsigned flags, uint32_t wait_ms,
		    uint32_t *others, struct vcfs_lock_info *busy)
{
	return claim_loop(hb, blkno, 0, 0, flags, wait_ms, others, NULL, busy);
}

int vcfs_lock_claim_wait(struct vcfs_hb *hb, uint64_t blkno, int only_older, uint32_t wait_ms,
			 uint64_t *seq)
{
	return claim_loop(hb, blkno, 1, only_older, VCFS_LOCK_WAIT, wait_ms, NULL, seq, NULL);
}

int vcfs_lock_unclaim(struct vcfs_hb *hb, uint64_t blkno, int bump)
{
	struct vcfs_disk *d = vcfs_hb_disk(hb);
	const struct vcfs_sb *sb = vcfs_hb_sb(hb);
	uint8_t *blk = vcfs_disk_buf_alloc(VCFS_BLK), *img = vcfs_disk_buf_alloc(VCFS_BLK);
	int rc;

	if (!blk || !img) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		struct rec r;
		int i;

		if ((rc = vcfs_hb_write_ok(hb)))
			goto out;
		if ((rc = rec_read(d, sb, blkno, blk, &r)))
			goto out;
		i = find_self(hb, &r);
		if (i < 0 || !(r.e[i].flags & VCFS_LH_CLAIM)) {
			vcfs_warn("lock record %llu: our map-change claim is gone (the lock "
				  "was broken)", (unsigned long long)blkno);
			rc = -ESTALE;
			goto out;
		}
		r.e[i].flags &= ~VCFS_LH_CLAIM;
		r.obj_version += bump ? 1 : 0;
		rec_build(hb, blkno, blk, &r, 0, img);
		rc = cas_rec(hb, blkno, blk, img);
		if (rc == -VCFS_EMISCOMPARE)
			continue;
		if (rc && rc != -VCFS_EFENCED) {
			struct rec r2;
			if (!rec_read(d, sb, blkno, blk, &r2) && (i = find_self(hb, &r2)) >= 0 &&
			    !(r2.e[i].flags & VCFS_LH_CLAIM))
				rc = 0;
		}
		goto out;
	}
out:
	free(blk);
	free(img);
	return rc;
}

int vcfs_lock_check(struct vcfs_hb *hb, uint64_t blkno)
{
	uint8_t *blk = vcfs_disk_buf_alloc(VCFS_BLK);
	struct rec r;
	int rc;

	if (!blk)
		return -ENOMEM;
	rc = vcfs_hb_write_ok(hb);
	if (!rc)
		rc = rec_read(vcfs_hb_disk(hb), vcfs_hb_sb(hb), blkno, blk, &r);
	if (!rc && find_self(hb, &r) < 0)
		rc = -ESTALE;
	free(blk);
	return rc;
}

int vcfs_lock_read(struct vcfs_disk *d, const struct vcfs_sb *sb, struct vcfs_hb *hb,
		   uint64_t blkno, struct vcfs_lock_info *out)
{
	uint8_t *blk = vcfs_disk_buf_alloc(VCFS_BLK);
	int stale[VCFS_LOCK_HOLDERS] = { 0 };
	struct rec r;
	int rc;

	if (!blk)
		return -ENOMEM;
	rc = rec_read(d, sb, blkno, blk, &r);
	for (uint32_t i = 0; !rc && hb && i < r.n; i++) {
		int st = vcfs_hb_holder_state(hb, r.e[i].slot, r.e[i].gen);
		if (st < 0)
			rc = st;
		stale[i] = st == VCFS_HOLDER_STALE;
	}
	if (!rc)
		fill_info(&r, stale, out);
	free(blk);
	return rc;
}
