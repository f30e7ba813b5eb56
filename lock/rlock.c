/*
 * rlock.c - byte-range lock tables on disk (protocol in rlock.h, format in
 * fs/ondisk.h: struct vcfs_rlock_disk).
 *
 * The table is read with its whole 4 KiB lock block and written back by
 * vcfs_disk_cas() of the one logical sector that holds bytes 512..1023 of
 * that block, with expect = exactly what was read; on a 512-byte-sector disk
 * that sector is the table alone, on a 4096-byte one the whole block (the lock
 * record's bytes are rewritten unchanged, so a lock record change in between
 * makes our CAS miscompare, and ours makes lock.c's miscompare: both retry).
 *
 * Invariants of a table written here:
 *  - e[0 .. nent-1] are the entries, the rest are empty (slot VCFS_NO_SLOT);
 *  - no stale entry survives a change (every write filters them out);
 *  - ranges of one owner and kind never overlap, and ranges of one owner,
 *    kind and type never touch (they would have merged);
 *  - h.seq + 1 at every change.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "rlock.h"
#include "lock.h"
#include "../common/clock.h"
#include "../common/log.h"
#include "../common/vcfs_err.h"

/* ---- arithmetic ---- */

int vcfs_rlock_same_owner(const struct vcfs_rlock *a, const struct vcfs_rlock *b)
{
	return a->slot == b->slot && a->gen == b->gen && a->owner == b->owner &&
	       a->kind == b->kind;
}

static int overlap(const struct vcfs_rlock *a, const struct vcfs_rlock *b)
{
	return a->start <= b->end && b->start <= a->end;
}

/* a ends right before b starts, or the other way round */
static int touch(const struct vcfs_rlock *a, const struct vcfs_rlock *b)
{
	return (a->end != VCFS_RLOCK_EOF && a->end + 1 == b->start) ||
	       (b->end != VCFS_RLOCK_EOF && b->end + 1 == a->start);
}

int vcfs_rlock_conflicts(const struct vcfs_rlock *held, const struct vcfs_rlock *want)
{
	if (held->kind != want->kind || vcfs_rlock_same_owner(held, want))
		return 0;
	if (!overlap(held, want))
		return 0;
	return held->type == VCFS_RL_WRLCK || want->type == VCFS_RL_WRLCK;
}

int vcfs_rlock_find_conflict(const struct vcfs_rlock *e, uint32_t n,
			     const struct vcfs_rlock *want)
{
	for (uint32_t i = 0; i < n; i++)
		if (vcfs_rlock_conflicts(&e[i], want))
			return (int)i;
	return -1;
}

int vcfs_rlock_apply(struct vcfs_rlock *e, uint32_t *n, uint32_t cap,
		     const struct vcfs_rlock *req)
{
	/* one range of the owner at most contains req strictly (the owner's
	 * ranges are disjoint), so one split at most: n + 2 entries suffice */
	struct vcfs_rlock cur[VCFS_RLOCK_ENTRIES + 2], nxt[VCFS_RLOCK_ENTRIES + 2], r = *req;
	uint32_t m = *n, k, i;
	int merged;

	if (m > VCFS_RLOCK_ENTRIES)
		return -EINVAL;
	memcpy(cur, e, m * sizeof(*e));
	/* absorbing a range grows r; look again until a pass absorbs nothing
	 * (a grown r only covers ranges it absorbed, so this ends) */
	do {
		merged = 0;
		for (i = 0, k = 0; i < m; i++) {
			const struct vcfs_rlock *x = &cur[i];

			if (!vcfs_rlock_same_owner(x, &r) ||
			    (!overlap(x, &r) && !(touch(x, &r) && x->type == r.type))) {
				nxt[k++] = *x;
				continue;
			}
			if (r.type != VCFS_RL_UNLCK && x->type == r.type) {
				r.start = x->start < r.start ? x->start : r.start;
				r.end = x->end > r.end ? x->end : r.end;
				merged = 1;
				continue;
			}
			/* another type, or an unlock: keep what lies outside r */
			if (x->start < r.start) {
				nxt[k] = *x;
				nxt[k++].end = r.start - 1;
			}
			if (x->end > r.end) {
				nxt[k] = *x;
				nxt[k++].start = r.end + 1;
			}
		}
		memcpy(cur, nxt, k * sizeof(*cur));
		m = k;
	} while (merged);
	if (r.type != VCFS_RL_UNLCK)
		cur[m++] = r;
	if (m > cap)
		return -ENOLCK;
	memcpy(e, cur, m * sizeof(*e));
	*n = m;
	return 0;
}

uint32_t vcfs_rlock_drop_owner(struct vcfs_rlock *e, uint32_t *n, uint32_t slot, uint32_t gen,
			       uint64_t owner, int kind)
{
	uint32_t k = 0, dropped = 0;

	for (uint32_t i = 0; i < *n; i++) {
		if (e[i].slot == slot && e[i].gen == gen &&
		    (owner == VCFS_RLOCK_ANY_OWNER || e[i].owner == owner) &&
		    (kind < 0 || e[i].kind == kind)) {
			dropped++;
			continue;
		}
		e[k++] = e[i];
	}
	*n = k;
	return dropped;
}

/* ---- encoding ---- */

int vcfs_rlock_decode(const void *rec, uint64_t blkno, uint64_t volgen,
		      struct vcfs_rlock_table *t)
{
	const struct vcfs_rlock_disk *r = rec;
	uint32_t i, n;
	int rc;

	memset(t, 0, sizeof(*t));
	rc = vcfs_mhdr_check(rec, VCFS_T_RLOCK, blkno, volgen);
	if (rc)
		return rc;	/* 1: never initialised, an empty table */
	t->init = 1;
	t->seq = le64_get(r->h.seq);
	n = le32_get(r->nent);
	if (n > VCFS_RLOCK_ENTRIES)
		return VCFS_CORRUPT("byte-range lock table has too many entries", blkno);
	for (i = 0; i < VCFS_RLOCK_ENTRIES; i++) {
		const struct vcfs_rlock_ent *x = &r->e[i];
		struct vcfs_rlock *y = &t->e[i];

		if (i >= n) {
			if (le16_get(x->slot) != VCFS_NO_SLOT)
				return VCFS_CORRUPT("byte-range lock table: entry past the count",
						    blkno);
			continue;
		}
		y->slot = le16_get(x->slot);
		y->gen = le32_get(x->gen);
		y->owner = le64_get(x->owner);
		y->start = le64_get(x->start);
		y->end = le64_get(x->end);
		y->pid = le32_get(x->pid);
		y->type = x->type;
		y->kind = x->kind;
		if (y->slot >= VCFS_MAX_HOSTS || y->start > y->end ||
		    (y->type != VCFS_RL_RDLCK && y->type != VCFS_RL_WRLCK) ||
		    (y->kind != VCFS_RL_POSIX && y->kind != VCFS_RL_FLOCK))
			return VCFS_CORRUPT("byte-range lock table: malformed entry", blkno);
	}
	t->n = n;
	return 0;
}

void vcfs_rlock_encode(const struct vcfs_rlock_table *t, void *rec, uint64_t blkno,
		       uint64_t volgen, uint32_t writer)
{
	struct vcfs_rlock_disk *r = rec;

	memset(r, 0, sizeof(*r));
	for (uint32_t i = 0; i < VCFS_RLOCK_ENTRIES; i++) {
		struct vcfs_rlock_ent *x = &r->e[i];
		const struct vcfs_rlock *y = &t->e[i];

		if (i >= t->n) {
			x->slot = le16_mk(VCFS_NO_SLOT);
			continue;
		}
		x->slot = le16_mk((uint16_t)y->slot);
		x->gen = le32_mk(y->gen);
		x->owner = le64_mk(y->owner);
		x->start = le64_mk(y->start);
		x->end = le64_mk(y->end);
		x->pid = le32_mk(y->pid);
		x->type = y->type;
		x->kind = y->kind;
	}
	r->nent = le32_mk(t->n);
	r->h.writer = le32_mk(writer);
	vcfs_mhdr_set_seq(r, t->seq);
	vcfs_mhdr_seal(r, VCFS_T_RLOCK, blkno, volgen);
}

/* ---- on disk ---- */

static int tab_read(struct vcfs_disk *d, const struct vcfs_sb *sb, uint64_t blkno,
		    uint8_t *blk, struct vcfs_rlock_table *t)
{
	int rc;

	if (blkno < sb->inode_start || blkno >= sb->small_start) {
		vcfs_err("byte-range locks: block %llu is not an inode lock block",
			 (unsigned long long)blkno);
		return -EINVAL;
	}
	rc = vcfs_disk_read(d, blkno * VCFS_BLK, blk, VCFS_BLK);
	if (rc)
		return rc;
	rc = vcfs_rlock_decode(blk + VCFS_RLOCK_OFF, blkno, sb->volgen, t);
	return rc < 0 ? rc : 0;
}

int vcfs_rlock_read(struct vcfs_disk *d, const struct vcfs_sb *sb, uint64_t blkno,
		    struct vcfs_rlock_table *t)
{
	uint8_t *blk = vcfs_disk_buf_alloc(VCFS_BLK);
	int rc;

	if (!blk)
		return -ENOMEM;
	rc = tab_read(d, sb, blkno, blk, t);
	free(blk);
	return rc;
}

/*
 * Keep the entries of t that still count; st[i] receives each kept entry's
 * holder state.  Returns how many were dropped, or a negative error.
 */
static int filter(struct vcfs_hb *hb, struct vcfs_rlock_table *t, int *st)
{
	uint32_t me = vcfs_hb_slot(hb), gen = (uint32_t)vcfs_hb_generation(hb), k = 0;
	int dropped = 0;

	for (uint32_t i = 0; i < t->n; i++) {
		int s = VCFS_HOLDER_LIVE;

		if (t->e[i].slot != me || t->e[i].gen != gen) {
			s = vcfs_hb_holder_state(hb, t->e[i].slot, t->e[i].gen);
			if (s < 0)
				return s;
		}
		if (s == VCFS_HOLDER_STALE) {
			dropped++;
			continue;
		}
		st[k] = s;
		t->e[k++] = t->e[i];
	}
	t->n = k;
	return dropped;
}

/* CAS the sector holding the table: blk as read, t encoded into a copy. */
static int tab_write(struct vcfs_hb *hb, uint64_t blkno, const uint8_t *blk,
		     struct vcfs_rlock_table *t)
{
	struct vcfs_disk *d = vcfs_hb_disk(hb);
	uint32_t lsec = vcfs_disk_info(d)->lsec;
	uint32_t soff = (VCFS_RLOCK_OFF / lsec) * lsec;
	uint8_t *img = vcfs_disk_buf_alloc(VCFS_BLK);
	int rc;

	if (!img)
		return -ENOMEM;
	memcpy(img, blk, VCFS_BLK);
	t->seq++;
	vcfs_rlock_encode(t, img + VCFS_RLOCK_OFF, blkno, vcfs_hb_sb(hb)->volgen,
			  vcfs_hb_slot(hb));
	rc = vcfs_hb_write_ok(hb);
	if (!rc)
		rc = vcfs_disk_cas(d, blkno * VCFS_BLK + soff, blk + soff, img + soff);
	free(img);
	return rc;
}

/*
 * A conflict whose holder looks dead: recover it (its entries then go stale)
 * and return 1 to look again, 0 to report the conflict, or an error.
 */
static int recover_dead(struct vcfs_hb *hb, uint32_t slot)
{
	int rc = vcfs_hb_recover(hb, slot);

	if (!rc)
		return 1;
	if (rc == -EBUSY || rc == -EOPNOTSUPP || rc == -EDEADLK)
		return 0;	/* another host recovers it, or we cannot */
	return rc;
}

int vcfs_rlock_set(struct vcfs_hb *hb, uint64_t blkno, struct vcfs_rlock *req,
		   struct vcfs_rlock *conflict)
{
	struct vcfs_disk *d = vcfs_hb_disk(hb);
	uint8_t *blk = vcfs_disk_buf_alloc(VCFS_BLK);
	unsigned misses = 0;
	int rc;

	if (!blk)
		return -ENOMEM;
	req->slot = vcfs_hb_slot(hb);
	req->gen = (uint32_t)vcfs_hb_generation(hb);
	if (req->start > req->end || req->type > VCFS_RL_WRLCK || req->kind > VCFS_RL_FLOCK) {
		rc = -EINVAL;
		goto out;
	}
	for (;;) {
		struct vcfs_rlock_table t;
		int st[VCFS_RLOCK_ENTRIES], dropped, c;

		if ((rc = vcfs_hb_write_ok(hb)))
			goto out;
		if ((rc = tab_read(d, vcfs_hb_sb(hb), blkno, blk, &t)))
			goto out;
		if ((dropped = filter(hb, &t, st)) < 0) {
			rc = dropped;
			goto out;
		}
		if (req->type != VCFS_RL_UNLCK &&
		    (c = vcfs_rlock_find_conflict(t.e, t.n, req)) >= 0) {
			if (st[c] == VCFS_HOLDER_DEAD) {
				rc = recover_dead(hb, t.e[c].slot);
				if (rc < 0)
					goto out;
				if (rc)
					continue;
			}
			if (conflict)
				*conflict = t.e[c];
			rc = -EAGAIN;
			goto out;
		}
		if (req->type == VCFS_RL_UNLCK && !dropped) {
			/* an unlock over nothing of ours: nothing to write */
			int mine = 0;
			for (uint32_t i = 0; i < t.n; i++)
				mine |= vcfs_rlock_same_owner(&t.e[i], req) &&
					t.e[i].start <= req->end && req->start <= t.e[i].end;
			if (!mine)
				goto out;
		}
		if ((rc = vcfs_rlock_apply(t.e, &t.n, VCFS_RLOCK_ENTRIES, req))) {
			vcfs_warn("inode lock block %llu: all %u byte-range lock entries are "
				  "in use", (unsigned long long)blkno, VCFS_RLOCK_ENTRIES);
			goto out;
		}
		rc = tab_write(hb, blkno, blk, &t);
		if (rc == -VCFS_EMISCOMPARE) {
			if (++misses > 3)
				vcfs_sleep_ns((vcfs_now_ns() / 1000 % 200 + 1) * 1000);
			continue;
		}
		goto out;
	}
out:
	free(blk);
	return rc;
}

int vcfs_rlock_test(struct vcfs_hb *hb, uint64_t blkno, struct vcfs_rlock *req,
		    struct vcfs_rlock *conflict)
{
	uint8_t *blk = vcfs_disk_buf_alloc(VCFS_BLK);
	struct vcfs_rlock_table t;
	int st[VCFS_RLOCK_ENTRIES], rc, c;

	if (!blk)
		return -ENOMEM;
	req->slot = vcfs_hb_slot(hb);
	req->gen = (uint32_t)vcfs_hb_generation(hb);
	rc = vcfs_hb_write_ok(hb);
	if (!rc)
		rc = tab_read(vcfs_hb_disk(hb), vcfs_hb_sb(hb), blkno, blk, &t);
	if (!rc && (rc = filter(hb, &t, st)) > 0)
		rc = 0;
	if (!rc && (c = vcfs_rlock_find_conflict(t.e, t.n, req)) >= 0) {
		*conflict = t.e[c];
		rc = 1;
	}
	free(blk);
	return rc;
}

int vcfs_rlock_release(struct vcfs_hb *hb, uint64_t blkno, uint64_t owner, int kind)
{
	struct vcfs_disk *d = vcfs_hb_disk(hb);
	uint32_t me = vcfs_hb_slot(hb), gen = (uint32_t)vcfs_hb_generation(hb);
	uint8_t *blk = vcfs_disk_buf_alloc(VCFS_BLK);
	int rc;

	if (!blk)
		return -ENOMEM;
	for (;;) {
		struct vcfs_rlock_table t;
		int st[VCFS_RLOCK_ENTRIES];
		uint32_t left = 0;

		if ((rc = vcfs_hb_write_ok(hb)))
			break;
		if ((rc = tab_read(d, vcfs_hb_sb(hb), blkno, blk, &t)))
			break;
		if ((rc = filter(hb, &t, st)) < 0)
			break;
		if (!vcfs_rlock_drop_owner(t.e, &t.n, me, gen, owner, kind) && !rc) {
			rc = 0;		/* nothing of that owner, nothing stale */
		} else {
			rc = tab_write(hb, blkno, blk, &t);
			if (rc == -VCFS_EMISCOMPARE)
				continue;
			if (rc)
				break;
		}
		for (uint32_t i = 0; i < t.n; i++)
			left += t.e[i].slot == me && t.e[i].gen == gen;
		rc = (int)left;
		break;
	}
	free(blk);
	return rc;
}
