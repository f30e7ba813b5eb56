/*
 * journal.c - the per-host redo journal of metadata blocks (journal.h has the
 * protocol; fs/ondisk.h the format).
 *
 * Journal of slot s, in blocks from vcfs_journal_blk(sb, s):
 *
 *   0          header (jgen, ckpt_seq)
 *   1          descriptor of the live-or-last transaction (tseq, targets[])
 *   2 .. n+1   the n images, sorted by home block number
 *   n+2        commit record (data_crc over the descriptor and every image)
 *
 * so a transaction of n blocks needs n + 3 journal blocks with the header:
 * vcfs_journal_max_blocks() is journal_blocks - 3 (capped at VCFS_JDESC_MAX).
 *
 * Invariants:
 *  - a transaction is live iff the record at block 1 has tseq == ckpt_seq + 1,
 *    the header's jgen, and a commit whose data_crc verifies.  The record is
 *    written with one FUA write; a torn or dropped piece of it fails the crc
 *    (the crc covers the descriptor too, so a new descriptor over an old
 *    commit, or the reverse, never verifies);
 *  - home writes start only after the record is durable, and the header moves
 *    ckpt_seq to the transaction only after every home write is flushed, so a
 *    crash at any point leaves either nothing of the transaction or a live
 *    record that replay completes;
 *  - replay writes an image home only over a block that is not a valid block
 *    of this volume (uninitialised, or torn: bad crc) or is a valid block of
 *    an older seq: newer metadata written since by another host survives;
 *  - jgen moves at every open and every replay that retired a transaction, so
 *    a record left from an earlier life of the slot never matches again;
 *  - a failed write during commit is never retried: the journal turns sticky-
 *    failed (every later vcfs_txn_begin returns the error) and the host is
 *    fenced when it has a heartbeat; replay by a recoverer finishes the job.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "journal.h"
#include "../common/crc32c.h"
#include "../common/log.h"
#include "../common/vcfs_err.h"
#include "../lock/lock.h"

struct txn_ent {
	uint64_t blkno;		/* home block */
	uint64_t seq;		/* stamped seq: the seq it was read with + 1 */
};

struct txn_ord {
	uint64_t blkno;
	uint32_t idx;
};

struct vcfs_txn {
	struct vcfs_journal *j;
	uint32_t n;		/* images at j->rec + (1 + i) * VCFS_BLK */
	struct txn_ent ent[VCFS_JDESC_MAX];
};

struct vcfs_journal {
	struct vcfs_disk *d;
	struct vcfs_sb sb;
	struct vcfs_hb *hb;	/* NULL offline: no lease guard */
	uint32_t slot;
	uint32_t max;		/* vcfs_journal_max_blocks() */
	uint64_t jblk;		/* block of the header */

	pthread_mutex_t mu;	/* held from vcfs_txn_begin to commit / abort */
	/* protected by mu: */
	uint64_t jgen, ckpt_seq, hdr_seq;
	int err;		/* sticky: a commit failed, no more transactions */
	uint8_t *rec;		/* (max + 2) blocks: descriptor, images, commit */
	uint8_t *hdr;		/* one block */
	uint8_t *tmp;		/* one block, for sorting images */
	struct txn_ord *order;	/* max entries, for sorting */
	struct vcfs_txn txn;
};

/* The journal header as read. */
struct jhdr_state {
	int init;		/* header valid */
	uint64_t jgen, ckpt_seq, seq;
};

uint32_t vcfs_journal_max_blocks(const struct vcfs_sb *sb)
{
	uint32_t n;

	if (sb->journal_blocks < 4)
		return 0;
	n = sb->journal_blocks - 3;	/* header, descriptor, commit */
	return n < VCFS_JDESC_MAX ? n : VCFS_JDESC_MAX;
}

static uint64_t blk_off(uint64_t blkno)
{
	return blkno << VCFS_BLK_SHIFT;
}

/* Every write by a mounted host is guarded by its lease. */
static int guarded_write(struct vcfs_disk *d, struct vcfs_hb *hb, uint64_t blkno,
			 const void *buf, uint32_t nblk, unsigned flags)
{
	int rc;

	if (hb) {
		rc = vcfs_hb_write_ok(hb);
		if (rc)
			return rc;
	}
	return vcfs_disk_write(d, blk_off(blkno), buf, (size_t)nblk * VCFS_BLK, flags);
}

/*
 * Read slot's journal header into st.  0 (st->init tells whether it is
 * valid), -VCFS_ECORRUPT if it has our signature but is damaged, or an I/O
 * error.  buf: one block.
 */
static int read_header(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
		       void *buf, struct jhdr_state *st)
{
	const struct vcfs_jhdr_disk *h = buf;
	uint64_t blk = vcfs_journal_blk(sb, slot);
	int rc;

	memset(st, 0, sizeof(*st));
	rc = vcfs_disk_read(d, blk_off(blk), buf, VCFS_BLK);
	if (rc)
		return rc;
	rc = vcfs_mhdr_check(buf, VCFS_T_JHDR, blk, sb->volgen);
	if (rc == 1)
		return 0;
	if (rc < 0)
		return rc;
	if (le32_get(h->slot) != slot)
		return VCFS_CORRUPT("journal header names another slot", blk);
	st->init = 1;
	st->jgen = le64_get(h->jgen);
	st->ckpt_seq = le64_get(h->ckpt_seq);
	st->seq = le64_get(h->h.seq);
	return 0;
}

static int write_header(struct vcfs_disk *d, struct vcfs_hb *hb, const struct vcfs_sb *sb,
			uint32_t slot, uint32_t writer, const struct jhdr_state *st, void *buf)
{
	struct vcfs_jhdr_disk *h = buf;
	uint64_t blk = vcfs_journal_blk(sb, slot);

	memset(buf, 0, VCFS_BLK);
	h->slot = le32_mk(slot);
	h->jgen = le64_mk(st->jgen);
	h->ckpt_seq = le64_mk(st->ckpt_seq);
	h->h.seq = le64_mk(st->seq);
	h->h.writer = le32_mk(writer);
	vcfs_mhdr_seal(buf, VCFS_T_JHDR, blk, sb->volgen);
	return guarded_write(d, hb, blk, buf, 1, VCFS_IO_FUA);
}

/*
 * Read the record at journal block 1 into rec ((max + 2) blocks) and decide
 * whether it is the live transaction of a journal whose header is st.
 * Returns 1 (live: *n images at rec + VCFS_BLK, *tseq), 0 (nothing to
 * replay; *why says why, for the log), or an I/O error.
 */
static int load_record(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
		       const struct jhdr_state *st, uint8_t *rec, uint32_t *n,
		       uint64_t *tseq, const char **why)
{
	const struct vcfs_jdesc_disk *desc = (const void *)rec;
	const struct vcfs_jcommit_disk *cm;
	uint64_t jb = vcfs_journal_blk(sb, slot), cblk;
	uint32_t nb, max = vcfs_journal_max_blocks(sb);
	int rc;

	*n = 0;
	*tseq = 0;
	rc = vcfs_disk_read(d, blk_off(jb + 1), rec, VCFS_BLK);
	if (rc)
		return rc;
	rc = vcfs_mhdr_check(rec, VCFS_T_JDESC, jb + 1, sb->volgen);
	if (rc == 1) {
		*why = "no transaction was ever written";
		return 0;
	}
	if (rc < 0) {
		*why = "the descriptor is torn (a commit that never completed)";
		return 0;
	}
	nb = le32_get(desc->nblocks);
	if (le64_get(desc->tseq) != st->ckpt_seq + 1) {
		*why = "the last transaction is checkpointed";
		return 0;
	}
	if (le64_get(desc->jgen) != st->jgen) {
		*why = "the transaction belongs to an earlier journal generation";
		return 0;
	}
	if (nb == 0 || nb > max || le32_get(desc->slot) != slot) {
		vcfs_err("journal of slot %u: descriptor (block %llu) with a valid checksum "
			 "holds %u blocks for slot %u: ignored", slot,
			 (unsigned long long)(jb + 1), nb, le32_get(desc->slot));
		*why = "the descriptor is inconsistent";
		return 0;
	}
	rc = vcfs_disk_read(d, blk_off(jb + 2), rec + VCFS_BLK, (size_t)(nb + 1) * VCFS_BLK);
	if (rc)
		return rc;
	cblk = jb + 2 + nb;
	cm = (const void *)(rec + (size_t)(nb + 1) * VCFS_BLK);
	rc = vcfs_mhdr_check(cm, VCFS_T_JCOMMIT, cblk, sb->volgen);
	if (rc) {
		*why = "no valid commit record (a commit that never completed)";
		return 0;
	}
	if (le64_get(cm->tseq) != le64_get(desc->tseq) || le64_get(cm->jgen) != st->jgen ||
	    le32_get(cm->nblocks) != nb) {
		*why = "the commit record belongs to another transaction";
		return 0;
	}
	if (le32_get(cm->data_crc) != vcfs_crc32c(0, rec, (size_t)(nb + 1) * VCFS_BLK)) {
		*why = "the commit checksum does not match (a torn journal write)";
		return 0;
	}
	*n = nb;
	*tseq = le64_get(desc->tseq);
	return 1;
}

/*
 * Write images home: image i (at imgs + i * VCFS_BLK) to targets[i] for every
 * i with sel == NULL or sel[i]; neighbours in both the array and on disk go
 * out as one write.
 */
static int write_home(struct vcfs_disk *d, struct vcfs_hb *hb, const uint64_t *targets,
		      const uint8_t *imgs, const uint8_t *sel, uint32_t n)
{
	uint32_t i = 0, k;
	int rc;

	while (i < n) {
		if (sel && !sel[i]) {
			i++;
			continue;
		}
		for (k = 1; i + k < n && (!sel || sel[i + k]) &&
			    targets[i + k] == targets[i] + k; k++)
			;
		rc = guarded_write(d, hb, targets[i], imgs + (size_t)i * VCFS_BLK, k, 0);
		if (rc)
			return rc;
		i += k;
	}
	return 0;
}

/*
 * 1 if home (read from blkno) is a valid block of this volume whose seq is at
 * least img's: the seq guard.  A torn home block (our signature, bad crc)
 * is not valid, so the image repairs it.
 */
static int home_is_current(const void *home, const void *img, uint64_t blkno,
			   uint64_t volgen)
{
	const struct vcfs_mhdr *h = home;

	if (le32_get(h->magic) != VCFS_MAGIC || le64_get(h->blkno) != blkno ||
	    le64_get(h->volgen) != volgen)
		return 0;
	if (vcfs_mhdr_check(home, (enum vcfs_btype)le16_get(h->type), blkno, volgen) != 0)
		return 0;
	return vcfs_mhdr_seq(home) >= vcfs_mhdr_seq(img);
}

/*
 * The replay itself, for vcfs_journal_replay and vcfs_journal_open.  On
 * success *st is the header as it is now on disk.
 */
static int replay_slot(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
		       struct vcfs_hb *hb, unsigned *applied, struct jhdr_state *st)
{
	uint32_t max = vcfs_journal_max_blocks(sb), n = 0, i, nwrite = 0;
	uint32_t writer = hb ? vcfs_hb_slot(hb) : slot;
	uint8_t *rec = NULL, *home = NULL, *sel = NULL;
	uint64_t *targets = NULL, tseq = 0;
	const struct vcfs_jdesc_disk *desc;
	const char *why = "";
	int rc;

	if (applied)
		*applied = 0;
	if (slot >= sb->max_hosts || max == 0)
		return -EINVAL;
	rec = vcfs_disk_buf_alloc((size_t)(max + 2) * VCFS_BLK);
	home = vcfs_disk_buf_alloc(VCFS_BLK);
	sel = calloc(max, 1);
	targets = calloc(max, sizeof(*targets));
	if (!rec || !home || !sel || !targets) {
		rc = -ENOMEM;
		goto out_free;
	}
	rc = read_header(d, sb, slot, home, st);
	if (rc == -VCFS_ECORRUPT) {
		vcfs_err("journal of slot %u: the header is corrupt, so what is committed is "
			 "unknown: nothing replayed (fsck.vcfs resets the journal)", slot);
		goto out_free;
	}
	if (rc)
		goto out_free;
	if (!st->init) {
		vcfs_debug("journal of slot %u: never used, nothing to replay", slot);
		goto out_free;
	}
	rc = load_record(d, sb, slot, st, rec, &n, &tseq, &why);
	if (rc < 0)
		goto out_free;
	if (rc == 0) {
		vcfs_info("journal of slot %u (generation %llu, checkpoint %llu): nothing to "
			  "replay: %s", slot, (unsigned long long)st->jgen,
			  (unsigned long long)st->ckpt_seq, why);
		goto out_free;
	}

	/* The record verified; each image must still describe its target. */
	desc = (const void *)rec;
	for (i = 0; i < n; i++) {
		const uint8_t *img = rec + (size_t)(i + 1) * VCFS_BLK;
		const struct vcfs_mhdr *ih = (const void *)img;

		targets[i] = le64_get(desc->targets[i]);
		if (targets[i] >= sb->volume_blocks ||
		    vcfs_mhdr_check(img, (enum vcfs_btype)le16_get(ih->type), targets[i],
				    sb->volgen) != 0) {
			rc = VCFS_CORRUPT("journal image does not match its target", targets[i]);
			goto out_free;
		}
	}
	for (i = 0; i < n; i++) {
		const uint8_t *img = rec + (size_t)(i + 1) * VCFS_BLK;

		rc = vcfs_disk_read(d, blk_off(targets[i]), home, VCFS_BLK);
		if (rc)
			goto out_free;
		sel[i] = !home_is_current(home, img, targets[i], sb->volgen);
		nwrite += sel[i];
	}
	rc = write_home(d, hb, targets, rec + VCFS_BLK, sel, n);
	if (rc)
		goto out_io;
	rc = vcfs_disk_flush(d);
	if (rc)
		goto out_io;
	st->ckpt_seq = tseq;
	st->jgen++;
	st->seq++;
	rc = write_header(d, hb, sb, slot, writer, st, home);
	if (rc)
		goto out_io;
	vcfs_info("journal of slot %u: replayed transaction %llu: %u of %u block(s) written "
		  "home, %u already held the same or newer metadata", slot,
		  (unsigned long long)tseq, nwrite, n, n - nwrite);
	if (applied)
		*applied = nwrite;
	goto out_free;

out_io:
	vcfs_err("journal of slot %u: replaying transaction %llu: %s", slot,
		 (unsigned long long)tseq, vcfs_strerror(rc));
out_free:
	free(targets);
	free(sel);
	free(home);
	free(rec);
	return rc;
}

int vcfs_journal_replay(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
			struct vcfs_hb *hb, unsigned *applied)
{
	struct jhdr_state st;

	return replay_slot(d, sb, slot, hb, applied, &st);
}

int vcfs_journal_inspect(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
			 struct vcfs_journal_state *out)
{
	uint32_t max = vcfs_journal_max_blocks(sb), n = 0;
	struct jhdr_state st;
	const char *why = "";
	uint64_t tseq;
	uint8_t *rec;
	int rc;

	memset(out, 0, sizeof(*out));
	if (slot >= sb->max_hosts || max == 0)
		return -EINVAL;
	rec = vcfs_disk_buf_alloc((size_t)(max + 2) * VCFS_BLK);
	if (!rec)
		return -ENOMEM;
	rc = read_header(d, sb, slot, rec, &st);
	if (rc == -VCFS_ECORRUPT) {
		out->corrupt = 1;
		rc = 0;
		goto out_free;
	}
	if (rc || !st.init)
		goto out_free;
	out->initialised = 1;
	out->jgen = st.jgen;
	out->ckpt_seq = st.ckpt_seq;
	rc = load_record(d, sb, slot, &st, rec, &n, &tseq, &why);
	if (rc < 0)
		goto out_free;
	out->pending = rc;
	out->pending_blocks = n;
	rc = 0;
out_free:
	free(rec);
	return rc;
}

int vcfs_journal_reset(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
		       struct vcfs_hb *hb)
{
	const struct vcfs_mhdr *h;
	struct jhdr_state st = { 0 };
	uint64_t jb = vcfs_journal_blk(sb, slot), jgen = 0, ckpt = 0, seq = 0;
	uint8_t *buf;
	int rc;

	if (slot >= sb->max_hosts || vcfs_journal_max_blocks(sb) == 0)
		return -EINVAL;
	buf = vcfs_disk_buf_alloc(2 * VCFS_BLK);
	if (!buf)
		return -ENOMEM;
	rc = vcfs_disk_read(d, blk_off(jb), buf, 2 * VCFS_BLK);
	if (rc)
		goto out_free;
	/* Whatever generation the damaged header or the record carry, go past it. */
	h = (const void *)buf;
	if (le32_get(h->magic) == VCFS_MAGIC && le64_get(h->volgen) == sb->volgen &&
	    le64_get(h->blkno) == jb) {
		const struct vcfs_jhdr_disk *jh = (const void *)buf;
		jgen = le64_get(jh->jgen);
		ckpt = le64_get(jh->ckpt_seq);
		seq = le64_get(jh->h.seq);
	}
	h = (const void *)(buf + VCFS_BLK);
	if (le32_get(h->magic) == VCFS_MAGIC && le64_get(h->volgen) == sb->volgen &&
	    le64_get(h->blkno) == jb + 1) {
		const struct vcfs_jdesc_disk *jd = (const void *)h;
		if (le64_get(jd->jgen) > jgen)
			jgen = le64_get(jd->jgen);
		if (le64_get(jd->tseq) > ckpt)
			ckpt = le64_get(jd->tseq);
	}
	st.jgen = jgen + 1;
	st.ckpt_seq = ckpt;
	st.seq = seq + 1;
	rc = write_header(d, hb, sb, slot, hb ? vcfs_hb_slot(hb) : slot, &st, buf);
	if (rc == 0)
		vcfs_info("journal of slot %u: reset (generation %llu, checkpoint %llu)", slot,
			  (unsigned long long)st.jgen, (unsigned long long)st.ckpt_seq);
out_free:
	free(buf);
	return rc;
}

int vcfs_journal_open(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
		      struct vcfs_hb *hb, struct vcfs_journal **out)
{
	struct vcfs_journal *j;
	struct jhdr_state st;
	uint32_t max = vcfs_journal_max_blocks(sb);
	int rc;

	*out = NULL;
	if (slot >= sb->max_hosts || max == 0)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->d = d;
	j->sb = *sb;
	j->hb = hb;
	j->slot = slot;
	j->max = max;
	j->jblk = vcfs_journal_blk(sb, slot);
	j->rec = vcfs_disk_buf_alloc((size_t)(max + 2) * VCFS_BLK);
	j->hdr = vcfs_disk_buf_alloc(VCFS_BLK);
	j->tmp = vcfs_disk_buf_alloc(VCFS_BLK);
	j->order = calloc(max, sizeof(*j->order));
	if (!j->rec || !j->hdr || !j->tmp || !j->order) {
		rc = -ENOMEM;
		goto err_free;
	}
	rc = pthread_mutex_init(&j->mu, NULL);
	if (rc) {
		rc = -rc;
		goto err_free;
	}
	/* The caller replayed already; a pending transaction here would be
	 * overwritten by our first commit, so finish it (no-op otherwise). */
	rc = replay_slot(d, sb, slot, hb, NULL, &st);
	if (rc)
		goto err_mutex;
	if (!st.init) {
		/* First use (or reset by hand): go past any record left at block 1
		 * so that it can never match the new generation. */
		const struct vcfs_jdesc_disk *desc = (const void *)j->rec;
		rc = vcfs_disk_read(d, blk_off(j->jblk + 1), j->rec, VCFS_BLK);
		if (rc)
			goto err_mutex;
		if (le32_get(desc->h.magic) == VCFS_MAGIC &&
		    le64_get(desc->h.volgen) == sb->volgen &&
		    le64_get(desc->h.blkno) == j->jblk + 1)
			st.jgen = le64_get(desc->jgen);
	}
	st.jgen++;
	st.seq++;
	rc = write_header(d, hb, sb, slot, slot, &st, j->hdr);
	if (rc) {
		vcfs_err("journal of slot %u: writing its header: %s", slot, vcfs_strerror(rc));
		goto err_mutex;
	}
	j->jgen = st.jgen;
	j->ckpt_seq = st.ckpt_seq;
	j->hdr_seq = st.seq;
	j->txn.j = j;
	vcfs_debug("journal of slot %u open: generation %llu, checkpoint %llu, %u blocks "
		   "per transaction", slot, (unsigned long long)j->jgen,
		   (unsigned long long)j->ckpt_seq, max);
	*out = j;
	return 0;

err_mutex:
	pthread_mutex_destroy(&j->mu);
err_free:
	free(j->order);
	free(j->tmp);
	free(j->hdr);
	free(j->rec);
	free(j);
	return rc;
}

void vcfs_journal_close(struct vcfs_journal *j)
{
	if (!j)
		return;
	pthread_mutex_destroy(&j->mu);
	free(j->order);
	free(j->tmp);
	free(j->hdr);
	free(j->rec);
	free(j);
}

/*
 * Takes j->mu; it stays held until vcfs_txn_commit or vcfs_txn_abort.
 * -VCFS_EFENCED once a commit failed or the host's lease is lost.
 */
int vcfs_txn_begin(struct vcfs_journal *j, struct vcfs_txn **out)
{
	*out = NULL;
	pthread_mutex_lock(&j->mu);
	if (!j->err && j->hb && vcfs_hb_fenced(j->hb))
		j->err = -VCFS_EFENCED;
	if (j->err) {
		int rc = j->err;
		pthread_mutex_unlock(&j->mu);
		return rc;
	}
	j->txn.n = 0;
	*out = &j->txn;
	return 0;
}

static struct txn_ent *txn_find(struct vcfs_txn *t, uint64_t blkno, uint32_t *idx)
{
	for (uint32_t i = 0; i < t->n; i++)
		if (t->ent[i].blkno == blkno) {
			*idx = i;
			return &t->ent[i];
		}
	return NULL;
}

static uint8_t *txn_img(struct vcfs_txn *t, uint32_t i)
{
	return t->j->rec + (size_t)(i + 1) * VCFS_BLK;
}

int vcfs_txn_add(struct vcfs_txn *t, uint64_t blkno, const void *blk)
{
	struct vcfs_journal *j = t->j;
	const struct vcfs_mhdr *in = blk;
	enum vcfs_btype type = (enum vcfs_btype)le16_get(in->type);
	struct txn_ent *e;
	struct vcfs_mhdr *h;
	uint32_t i;

	switch (type) {
	case VCFS_T_SUPER: case VCFS_T_CBMP: case VCFS_T_INODE:
	case VCFS_T_IND: case VCFS_T_DIRB:
		break;
	default:	/* record blocks change only by CAS; journal blocks never */
		vcfs_err("journal: block %llu of type %u cannot be journaled",
			 (unsigned long long)blkno, (unsigned)type);
		return -EINVAL;
	}
	if (blkno >= j->sb.volume_blocks ||
	    (blkno >= j->sb.hb_start && blkno < j->sb.cmeta_start)) {
		vcfs_err("journal: block %llu is outside the journaled metadata",
			 (unsigned long long)blkno);
		return -ERANGE;
	}
	e = txn_find(t, blkno, &i);
	if (!e) {
		if (t->n >= j->max)
			return -E2BIG;
		i = t->n++;
		e = &t->ent[i];
		e->blkno = blkno;
		e->seq = vcfs_mhdr_seq(blk) + 1;
	}
	memmove(txn_img(t, i), blk, VCFS_BLK);	/* blk may be our own image */
	h = (struct vcfs_mhdr *)txn_img(t, i);
	h->seq = le64_mk(e->seq);
	h->writer = le32_mk(j->slot);
	vcfs_mhdr_seal(h, type, blkno, j->sb.volgen);
	return 0;
}

const void *vcfs_txn_image(struct vcfs_txn *t, uint64_t blkno)
{
	uint32_t i;

	return txn_find(t, blkno, &i) ? txn_img(t, i) : NULL;
}

uint32_t vcfs_txn_nblocks(const struct vcfs_txn *t)
{
	return t->n;
}

static void txn_end(struct vcfs_txn *t)
{
	t->n = 0;
	pthread_mutex_unlock(&t->j->mu);
}

void vcfs_txn_abort(struct vcfs_txn *t)
{
	txn_end(t);
}

static int ord_cmp(const void *a, const void *b)
{
	const struct txn_ord *x = a, *y = b;

	return x->blkno < y->blkno ? -1 : x->blkno > y->blkno;
}

/*
 * Put the entries and their images in block order, so that neighbours on disk
 * are neighbours in the record and go home as one write.
 */
static void txn_sort(struct vcfs_txn *t)
{
	struct vcfs_journal *j = t->j;
	struct txn_ord *ord = j->order;
	uint32_t i, q, src;
	int sorted = 1;

	for (i = 1; i < t->n && sorted; i++)
		sorted = t->ent[i - 1].blkno < t->ent[i].blkno;
	if (sorted)
		return;
	for (i = 0; i < t->n; i++) {
		ord[i].blkno = t->ent[i].blkno;
		ord[i].idx = i;
	}
	qsort(ord, t->n, sizeof(*ord), ord_cmp);
	/* Apply the permutation in place, cycle by cycle: position p takes the
	 * old entry ord[p].idx; a placed position gets idx = p. */
	for (i = 0; i < t->n; i++) {
		struct txn_ent keep;

		if (ord[i].idx == i)
			continue;
		memcpy(j->tmp, txn_img(t, i), VCFS_BLK);
		keep = t->ent[i];
		q = i;
		for (;;) {
			src = ord[q].idx;
			ord[q].idx = q;
			if (src == i) {
				memcpy(txn_img(t, q), j->tmp, VCFS_BLK);
				t->ent[q] = keep;
				break;
			}
			memcpy(txn_img(t, q), txn_img(t, src), VCFS_BLK);
			t->ent[q] = t->ent[src];
			q = src;
		}
	}
}

/*
 * Commit: record (FUA), home, flush, header (FUA).  Needs j->mu (from begin);
 * releases it.  Any error is sticky and fences the host (hb): the journal
 * then holds the truth and recovery replays it.
 */
int vcfs_txn_commit(struct vcfs_txn *t)
{
	struct vcfs_journal *j = t->j;
	struct vcfs_jdesc_disk *desc = (void *)j->rec;
	struct vcfs_jcommit_disk *cm;
	struct jhdr_state st;
	uint64_t targets[VCFS_JDESC_MAX];
	uint64_t tseq = j->ckpt_seq + 1;
	uint32_t n = t->n, i;
	const char *what;
	int rc;

	if (n == 0) {
		txn_end(t);
		return 0;
	}
	txn_sort(t);
	memset(desc, 0, VCFS_BLK);
	desc->jgen = le64_mk(j->jgen);
	desc->nblocks = le32_mk(n);
	desc->slot = le32_mk(j->slot);
	desc->tseq = le64_mk(tseq);
	for (i = 0; i < n; i++) {
		targets[i] = t->ent[i].blkno;
		desc->targets[i] = le64_mk(targets[i]);
	}
	desc->h.seq = le64_mk(tseq);
	desc->h.writer = le32_mk(j->slot);
	vcfs_mhdr_seal(desc, VCFS_T_JDESC, j->jblk + 1, j->sb.volgen);

	cm = (void *)(j->rec + (size_t)(n + 1) * VCFS_BLK);
	memset(cm, 0, VCFS_BLK);
	cm->jgen = le64_mk(j->jgen);
	cm->tseq = le64_mk(tseq);
	cm->nblocks = le32_mk(n);
	cm->data_crc = le32_mk(vcfs_crc32c(0, j->rec, (size_t)(n + 1) * VCFS_BLK));
	cm->h.seq = le64_mk(tseq);
	cm->h.writer = le32_mk(j->slot);
	vcfs_mhdr_seal(cm, VCFS_T_JCOMMIT, j->jblk + 2 + n, j->sb.volgen);

	what = "writing the journal record";
	rc = guarded_write(j->d, j->hb, j->jblk + 1, j->rec, n + 2, VCFS_IO_FUA);
	if (rc)
		goto err;
	what = "writing metadata home";
	rc = write_home(j->d, j->hb, targets, j->rec + VCFS_BLK, NULL, n);
	if (rc)
		goto err;
	what = "flushing metadata";
	rc = vcfs_disk_flush(j->d);
	if (rc)
		goto err;
	what = "checkpointing the journal";
	st.init = 1;
	st.jgen = j->jgen;
	st.ckpt_seq = tseq;
	st.seq = j->hdr_seq + 1;
	rc = write_header(j->d, j->hb, &j->sb, j->slot, j->slot, &st, j->hdr);
	if (rc)
		goto err;
	j->ckpt_seq = tseq;
	j->hdr_seq = st.seq;
	txn_end(t);
	return 0;

err:
	vcfs_err("journal of slot %u: transaction %llu (%u blocks): %s: %s; no further "
		 "transactions on this journal, replay completes it", j->slot,
		 (unsigned long long)tseq, n, what, vcfs_strerror(rc));
	j->err = rc == -VCFS_EFENCED ? rc : -VCFS_EFENCED;
	if (j->hb && rc != -VCFS_EFENCED)
		vcfs_hb_fence(j->hb, rc);
	txn_end(t);
	return rc;
}
