/*
 * journal.c - the per-host redo journal of metadata blocks (journal.h has the
 * protocol; fs/ondisk.h the format).
 *
 * Journal of slot s, in blocks from vcfs_journal_blk(sb, s):
 *
 *   0            header (jgen, ckpt_seq, tail)
 *   1 .. L       circular log, L = journal_blocks - 1; a record of n images:
 *                  descriptor (tseq, jgen, targets[] sorted), n images,
 *                  commit (data_crc over the descriptor and every image)
 *                as ONE write with FUA; a record that would pass block L
 *                starts at block 1 instead (the blocks skipped are "waste").
 *
 * In memory, every block the journal holds newer than its home location is
 * one entry with up to two images: cimg, committed (in a durable record) but
 * not yet home, and pimg, pending (ops gave it, no record yet).  Ops read
 * through vcfs_journal_lookup, so this host sees its own latest metadata.
 *
 *   vcfs_txn_defer     merges a transaction into the pending set (group
 *                      commit: many ops, one record); commits first when the
 *                      record would pass max blocks
 *   commit             one record of every pending image at the head of the
 *                      log; when the log cannot hold it, checkpoint first;
 *                      after it, checkpoint when the log is over half full
 *   checkpoint         every committed image home (sorted, runs coalesced),
 *                      flush, header (ckpt_seq = last tseq, tail = head)
 *   vcfs_journal_checkpoint = commit + checkpoint (callers: before a lock
 *                      that protects journaled blocks is released, fsync,
 *                      unmount); vcfs_txn_commit = defer + that.
 *
 * Invariants:
 *  - the records live after the header are exactly tseq ckpt_seq + 1 .. of
 *    the header's jgen, in log order; a record is found at the position after
 *    its predecessor (tail for the first) or at block 1 -- (jgen, tseq) is
 *    unique, so a stale record of an earlier lap or generation never matches,
 *    and a torn or dropped piece fails the commit crc (which covers the
 *    descriptor too): replay stops at the first record that is not the next;
 *  - log space is reused only after a checkpoint made every record in it
 *    home and moved the header past it;
 *  - replay writes an image home only over a block that is not a valid block
 *    of this volume (uninitialised, or torn: bad crc) or is a valid block of
 *    an older seq: newer metadata written since by another host survives; a
 *    block in several records gets each image in order (seqs rise);
 *  - a block freed and reused as DATA cannot be told apart from a torn one,
 *    so no live record may hold an image of a block that could be reused:
 *    the fs checkpoints (vcfs_journal_checkpoint) at the end of every op that
 *    frees metadata blocks, before its cluster lock can be given up;
 *  - jgen moves at every open and every replay that retired a transaction, so
 *    a record left from an earlier life of the slot never matches again;
 *  - a failed write is never retried: the journal turns sticky-failed (every
 *    later call returns the error) and the host is fenced when it has a
 *    heartbeat; replay by a recoverer finishes the job.
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

#define JHASH 1024

/* A block the journal holds newer than home. */
struct jent {
	struct jent *next;	/* hash chain */
	uint64_t blkno;
	uint8_t *cimg;		/* committed, not yet home; or NULL */
	uint8_t *pimg;		/* pending, in no record yet; or NULL */
};

struct txn_ent {
	uint64_t blkno;		/* home block */
	uint64_t seq;		/* stamped seq: the seq it was read with + 1 */
};

struct vcfs_txn {
	struct vcfs_journal *j;
	uint32_t n;		/* images at j->stage + i * VCFS_BLK */
	int data;		/* maps data written before it: flush first */
	struct txn_ent ent[VCFS_JDESC_MAX];
};

struct vcfs_journal {
	struct vcfs_disk *d;
	struct vcfs_sb sb;
	struct vcfs_hb *hb;	/* NULL offline: no lease guard */
	uint32_t slot;
	uint32_t max;		/* vcfs_journal_max_blocks() */
	uint32_t nlog;		/* L: log blocks 1 .. L */
	uint64_t jblk;		/* block of the header */

	pthread_mutex_t mu;	/* held from vcfs_txn_begin to commit / abort */
	uint8_t *stage;		/* max blocks: the images of txn (mu) */
	struct vcfs_txn txn;

	pthread_mutex_t smu;	/* everything below */
	uint64_t jgen, ckpt_seq, hdr_seq;
	uint64_t tseq;		/* last tseq in a durable record */
	uint32_t tail, head;	/* log position of record ckpt_seq + 1 / next */
	uint32_t used;		/* log blocks from tail to head, waste included */
	int err;		/* sticky: a write failed, no more transactions */
	struct jent *hash[JHASH];
	uint32_t npend, ncommitted;
	int pend_data;		/* a pending txn maps data: the record that
				 * commits it is preceded by a flush */
	uint8_t *rec;		/* (max + 2) blocks: a record, or a home run */
	uint8_t *hdr;		/* one block */
	struct jent **sorted;	/* scratch, for sorting entries */
	uint32_t capsorted;
	uint64_t ncommits, nckpts;
};

/* The journal header as read. */
struct jhdr_state {
	int init;		/* header valid */
	uint64_t jgen, ckpt_seq, seq;
	uint32_t tail;
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
	st->tail = (uint32_t)le64_get(h->tail);
	if (st->tail == 0 || st->tail >= sb->journal_blocks)
		st->tail = 1;	/* never set (the one-record format), or damaged:
				 * replay looks at block 1 anyway */
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
	h->tail = le64_mk(st->tail);
	h->h.seq = le64_mk(st->seq);
	h->h.writer = le32_mk(writer);
	vcfs_mhdr_seal(buf, VCFS_T_JHDR, blk, sb->volgen);
	return guarded_write(d, hb, blk, buf, 1, VCFS_IO_FUA);
}

/*
 * Read the record at log block pos into rec ((max + 2) blocks) and decide
 * whether it is transaction tseq of a journal whose header is st.  Returns 1
 * (*n images at rec + VCFS_BLK), 0 (not it; *why says why, for the log), or
 * an I/O error.
 */
static int load_record(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
		       const struct jhdr_state *st, uint32_t pos, uint64_t tseq, uint8_t *rec,
		       uint32_t *n, const char **why)
{
	const struct vcfs_jdesc_disk *desc = (const void *)rec;
	const struct vcfs_jcommit_disk *cm;
	uint64_t jb = vcfs_journal_blk(sb, slot), cblk;
	uint32_t nb, max = vcfs_journal_max_blocks(sb), nlog = sb->journal_blocks - 1;
	int rc;

	*n = 0;
	rc = vcfs_disk_read(d, blk_off(jb + pos), rec, VCFS_BLK);
	if (rc)
		return rc;
	if (le16_get(desc->h.type) != VCFS_T_JDESC && le32_get(desc->h.magic) == VCFS_MAGIC &&
	    le64_get(desc->h.volgen) == sb->volgen && le64_get(desc->h.blkno) == jb + pos) {
		/* the middle of an older record: probing, not damage */
		*why = "no descriptor there (the inside of an older record)";
		return 0;
	}
	rc = vcfs_mhdr_check(rec, VCFS_T_JDESC, jb + pos, sb->volgen);
	if (rc == 1) {
		*why = "no record was ever written there";
		return 0;
	}
	if (rc < 0) {
		*why = "the descriptor is torn (a commit that never completed)";
		return 0;
	}
	nb = le32_get(desc->nblocks);
	if (le64_get(desc->jgen) != st->jgen) {
		*why = "the record belongs to an earlier journal generation";
		return 0;
	}
	if (le64_get(desc->tseq) != tseq) {
		*why = le64_get(desc->tseq) < tseq ? "the record there is older (checkpointed)" :
			"the record there is not the next one";
		return 0;
	}
	if (nb == 0 || nb > max || le32_get(desc->slot) != slot || pos + nb + 1 > nlog) {
		vcfs_err("journal of slot %u: descriptor (block %llu) with a valid checksum "
			 "holds %u blocks for slot %u: ignored", slot,
			 (unsigned long long)(jb + pos), nb, le32_get(desc->slot));
		*why = "the descriptor is inconsistent";
		return 0;
	}
	rc = vcfs_disk_read(d, blk_off(jb + pos + 1), rec + VCFS_BLK, (size_t)(nb + 1) * VCFS_BLK);
	if (rc)
		return rc;
	cblk = jb + pos + 1 + nb;
	cm = (const void *)(rec + (size_t)(nb + 1) * VCFS_BLK);
	rc = vcfs_mhdr_check(cm, VCFS_T_JCOMMIT, cblk, sb->volgen);
	if (rc) {
		*why = "no valid commit record (a commit that never completed)";
		return 0;
	}
	if (le64_get(cm->tseq) != tseq || le64_get(cm->jgen) != st->jgen ||
	    le32_get(cm->nblocks) != nb) {
		*why = "the commit record belongs to another transaction";
		return 0;
	}
	if (le32_get(cm->data_crc) != vcfs_crc32c(0, rec, (size_t)(nb + 1) * VCFS_BLK)) {
		*why = "the commit checksum does not match (a torn journal write)";
		return 0;
	}
	*n = nb;
	return 1;
}

/*
 * Find transaction tseq: at *pos (the position after its predecessor), else
 * at block 1 (the writer wrapped, or restarted an empty log there).  On 1,
 * *pos is where it was found.
 */
static int find_record(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
		       const struct jhdr_state *st, uint32_t *pos, uint64_t tseq, uint8_t *rec,
		       uint32_t *n, const char **why)
{
	int rc = load_record(d, sb, slot, st, *pos, tseq, rec, n, why);

	if (rc != 0 || *pos == 1)
		return rc;
	rc = load_record(d, sb, slot, st, 1, tseq, rec, n, why);
	if (rc == 1)
		*pos = 1;
	return rc;
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
int vcfs_journal_home_current(const void *home, const void *img, uint64_t blkno,
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

/* What replay_slot found (and did). */
struct replay_res {
	uint32_t ntxn, nblocks, nwrite;
	uint64_t first, last;	/* tseqs replayed */
	uint32_t end;		/* log position after the last record */
};

/*
 * The records live in slot's journal, in order; apply: write them home (seq
 * guard), or with scan set hand each verified image to scan instead (no
 * write), or only count them.  rec: (max + 2) blocks; home: one block.
 */
static int walk_log(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
		    struct vcfs_hb *hb, const struct jhdr_state *st, int apply, uint8_t *rec,
		    uint8_t *home, uint8_t *sel, uint64_t *targets, struct replay_res *r,
		    const char **why, vcfs_journal_scan_fn scan, void *scan_arg)
{
	uint32_t pos = st->tail, n, i, nlog = sb->journal_blocks - 1;
	uint64_t tseq = st->ckpt_seq + 1;
	int rc;

	memset(r, 0, sizeof(*r));
	r->end = pos;
	for (;;) {
		rc = find_record(d, sb, slot, st, &pos, tseq, rec, &n, why);
		if (rc <= 0)
			return rc;
		if (!r->ntxn)
			r->first = tseq;
		if (apply) {
			const struct vcfs_jdesc_disk *desc = (const void *)rec;
			/* The record verified; each image must still describe its target. */
			for (i = 0; i < n; i++) {
				const uint8_t *img = rec + (size_t)(i + 1) * VCFS_BLK;
				const struct vcfs_mhdr *ih = (const void *)img;

				targets[i] = le64_get(desc->targets[i]);
				if (targets[i] >= sb->volume_blocks ||
				    vcfs_mhdr_check(img, (enum vcfs_btype)le16_get(ih->type),
						    targets[i], sb->volgen) != 0)
					return VCFS_CORRUPT("journal image does not match its target",
							    targets[i]);
			}
			for (i = 0; scan && i < n; i++)
				scan(scan_arg, targets[i], rec + (size_t)(i + 1) * VCFS_BLK);
			for (i = 0; !scan && i < n; i++) {
				rc = vcfs_disk_read(d, blk_off(targets[i]), home, VCFS_BLK);
				if (rc)
					return rc;
				sel[i] = !vcfs_journal_home_current(home,
								    rec + (size_t)(i + 1) * VCFS_BLK,
								    targets[i], sb->volgen);
				r->nwrite += sel[i];
			}
			rc = scan ? 0 : write_home(d, hb, targets, rec + VCFS_BLK, sel, n);
			if (rc)
				return rc;
		}
		r->ntxn++;
		r->nblocks += n;
		r->last = tseq;
		tseq++;
		pos += n + 2;
		if (pos > nlog)
			pos = 1;
		r->end = pos;
	}
}

/*
 * The replay itself, for vcfs_journal_replay and vcfs_journal_open.  On
 * success *st is the header as it is now on disk.
 */
static int replay_slot(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
		       struct vcfs_hb *hb, unsigned *applied, struct jhdr_state *st)
{
	uint32_t max = vcfs_journal_max_blocks(sb);
	uint32_t writer = hb ? vcfs_hb_slot(hb) : slot;
	uint8_t *rec = NULL, *home = NULL, *sel = NULL;
	uint64_t *targets = NULL;
	struct replay_res r = { 0 };
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
	rc = walk_log(d, sb, slot, hb, st, 1, rec, home, sel, targets, &r, &why, NULL, NULL);
	if (rc < 0)
		goto out_io;
	if (r.ntxn == 0) {
		vcfs_info("journal of slot %u (generation %llu, checkpoint %llu): nothing to "
			  "replay: %s", slot, (unsigned long long)st->jgen,
			  (unsigned long long)st->ckpt_seq, why);
		goto out_free;
	}
	rc = vcfs_disk_flush(d);
	if (rc)
		goto out_io;
	st->ckpt_seq = r.last;
	st->tail = r.end;
	st->jgen++;
	st->seq++;
	rc = write_header(d, hb, sb, slot, writer, st, home);
	if (rc)
		goto out_io;
	vcfs_info("journal of slot %u: replayed transactions %llu..%llu (%u): %u of %u "
		  "block image(s) written home, the others' homes already held the same or "
		  "newer metadata; the log ended because %s", slot,
		  (unsigned long long)r.first, (unsigned long long)r.last, r.ntxn, r.nwrite,
		  r.nblocks, why);
	if (applied)
		*applied = r.nwrite;
	goto out_free;

out_io:
	if (rc != -VCFS_ECORRUPT)
		vcfs_err("journal of slot %u: replaying transaction %llu: %s", slot,
			 (unsigned long long)(st->ckpt_seq + r.ntxn + 1), vcfs_strerror(rc));
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
	uint32_t max = vcfs_journal_max_blocks(sb);
	struct jhdr_state st;
	struct replay_res r;
	const char *why = "";
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
	rc = walk_log(d, sb, slot, NULL, &st, 0, rec, NULL, NULL, NULL, &r, &why, NULL, NULL);
	if (rc < 0)
		goto out_free;
	out->pending = r.ntxn > 0;
	out->pending_txns = r.ntxn;
	out->pending_blocks = r.nblocks;
	rc = 0;
out_free:
	free(rec);
	return rc;
}

int vcfs_journal_scan(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
		      vcfs_journal_scan_fn fn, void *arg, unsigned *nimages)
{
	uint32_t max = vcfs_journal_max_blocks(sb);
	struct jhdr_state st;
	struct replay_res r = { 0 };
	const char *why = "";
	uint64_t *targets;
	uint8_t *rec;
	int rc;

	if (nimages)
		*nimages = 0;
	if (slot >= sb->max_hosts || max == 0 || !fn)
		return -EINVAL;
	rec = vcfs_disk_buf_alloc((size_t)(max + 2) * VCFS_BLK);
	targets = calloc(max, sizeof(*targets));
	if (!rec || !targets) {
		rc = -ENOMEM;
		goto out;
	}
	rc = read_header(d, sb, slot, rec, &st);
	if (rc || !st.init)
		goto out;
	rc = walk_log(d, sb, slot, NULL, &st, 1, rec, NULL, NULL, targets, &r, &why, fn, arg);
	if (rc > 0)
		rc = 0;
	if (!rc && nimages)
		*nimages = r.nblocks;
out:
	free(targets);
	free(rec);
	return rc;
}

/*
 * The highest jgen and tseq any header, descriptor or commit block of slot's
 * journal carries (whatever their crc: a damaged one may still be what a
 * stale record would match).
 */
static int scan_max(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
		    uint64_t *jgen, uint64_t *tseq, uint64_t *hseq)
{
	uint64_t jb = vcfs_journal_blk(sb, slot);
	uint8_t *buf = vcfs_disk_buf_alloc((size_t)sb->journal_blocks * VCFS_BLK);
	int rc;

	*jgen = *tseq = *hseq = 0;
	if (!buf)
		return -ENOMEM;
	rc = vcfs_disk_read(d, blk_off(jb), buf, (size_t)sb->journal_blocks * VCFS_BLK);
	for (uint32_t i = 0; !rc && i < sb->journal_blocks; i++) {
		const uint8_t *b = buf + (size_t)i * VCFS_BLK;
		const struct vcfs_mhdr *h = (const void *)b;
		uint64_t g = 0, t = 0;

		if (le32_get(h->magic) != VCFS_MAGIC || le64_get(h->volgen) != sb->volgen ||
		    le64_get(h->blkno) != jb + i)
			continue;
		switch (le16_get(h->type)) {
		case VCFS_T_JHDR:
			g = le64_get(((const struct vcfs_jhdr_disk *)(const void *)b)->jgen);
			t = le64_get(((const struct vcfs_jhdr_disk *)(const void *)b)->ckpt_seq);
			if (le64_get(h->seq) > *hseq)
				*hseq = le64_get(h->seq);
			break;
		case VCFS_T_JDESC:
			g = le64_get(((const struct vcfs_jdesc_disk *)(const void *)b)->jgen);
			t = le64_get(((const struct vcfs_jdesc_disk *)(const void *)b)->tseq);
			break;
		case VCFS_T_JCOMMIT:
			g = le64_get(((const struct vcfs_jcommit_disk *)(const void *)b)->jgen);
			t = le64_get(((const struct vcfs_jcommit_disk *)(const void *)b)->tseq);
			break;
		default:
			continue;
		}
		if (g > *jgen)
			*jgen = g;
		if (t > *tseq)
			*tseq = t;
	}
	free(buf);
	return rc;
}

int vcfs_journal_reset(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
		       struct vcfs_hb *hb)
{
	struct jhdr_state st = { 0 };
	uint64_t jgen, ckpt, seq;
	uint8_t *buf;
	int rc;

	if (slot >= sb->max_hosts || vcfs_journal_max_blocks(sb) == 0)
		return -EINVAL;
	buf = vcfs_disk_buf_alloc(VCFS_BLK);
	if (!buf)
		return -ENOMEM;
	/* Whatever generation the damaged header or any record carry, go past it. */
	rc = scan_max(d, sb, slot, &jgen, &ckpt, &seq);
	if (rc)
		goto out_free;
	st.jgen = jgen + 1;
	st.ckpt_seq = ckpt;
	st.seq = seq + 1;
	st.tail = 1;
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
	j->nlog = sb->journal_blocks - 1;
	j->jblk = vcfs_journal_blk(sb, slot);
	j->rec = vcfs_disk_buf_alloc((size_t)(max + 2) * VCFS_BLK);
	j->hdr = vcfs_disk_buf_alloc(VCFS_BLK);
	j->stage = vcfs_disk_buf_alloc((size_t)max * VCFS_BLK);
	if (!j->rec || !j->hdr || !j->stage) {
		rc = -ENOMEM;
		goto err_free;
	}
	rc = pthread_mutex_init(&j->mu, NULL);
	if (rc) {
		rc = -rc;
		goto err_free;
	}
	rc = pthread_mutex_init(&j->smu, NULL);
	if (rc) {
		rc = -rc;
		pthread_mutex_destroy(&j->mu);
		goto err_free;
	}
	/* The caller replayed already; a pending transaction here would be
	 * overwritten by our first commit, so finish it (no-op otherwise). */
	rc = replay_slot(d, sb, slot, hb, NULL, &st);
	if (rc)
		goto err_mutex;
	if (!st.init) {
		/* First use (or reset by hand): go past any record left in the
		 * log so that it can never match the new generation. */
		uint64_t g, t, hs;
		rc = scan_max(d, sb, slot, &g, &t, &hs);
		if (rc)
			goto err_mutex;
		st.jgen = g;
		st.ckpt_seq = t;
		st.seq = hs;
		st.tail = 1;
	}
	st.jgen++;
	st.seq++;
	rc = write_header(d, hb, sb, slot, slot, &st, j->hdr);
	if (rc) {
		vcfs_err("journal of slot %u: writing its header: %s", slot, vcfs_strerror(rc));
		goto err_mutex;
	}
	j->jgen = st.jgen;
	j->ckpt_seq = j->tseq = st.ckpt_seq;
	j->hdr_seq = st.seq;
	j->tail = j->head = st.tail;
	j->txn.j = j;
	vcfs_debug("journal of slot %u open: generation %llu, checkpoint %llu, log of %u "
		   "blocks from block %u, %u blocks per transaction", slot,
		   (unsigned long long)j->jgen, (unsigned long long)j->ckpt_seq, j->nlog,
		   j->tail, max);
	*out = j;
	return 0;

err_mutex:
	pthread_mutex_destroy(&j->smu);
	pthread_mutex_destroy(&j->mu);
err_free:
	free(j->stage);
	free(j->hdr);
	free(j->rec);
	free(j);
	return rc;
}

static void ent_free(struct jent *e)
{
	free(e->cimg);
	free(e->pimg);
	free(e);
}

void vcfs_journal_close(struct vcfs_journal *j)
{
	if (!j)
		return;
	if (j->npend || j->ncommitted)
		vcfs_debug("journal of slot %u closed with %u pending and %u committed "
			   "block(s) not home (replay finishes them)", j->slot, j->npend,
			   j->ncommitted);
	for (uint32_t i = 0; i < JHASH; i++)
		while (j->hash[i]) {
			struct jent *e = j->hash[i];
			j->hash[i] = e->next;
			ent_free(e);
		}
	pthread_mutex_destroy(&j->smu);
	pthread_mutex_destroy(&j->mu);
	free(j->sorted);
	free(j->stage);
	free(j->hdr);
	free(j->rec);
	free(j);
}

/* ---- the in-memory table (smu) ---- */

static struct jent **ent_slot(struct vcfs_journal *j, uint64_t blkno)
{
	return &j->hash[(blkno * 0x9e3779b97f4a7c15ull >> 40) % JHASH];
}

static struct jent *ent_find(struct vcfs_journal *j, uint64_t blkno)
{
	for (struct jent *e = *ent_slot(j, blkno); e; e = e->next)
		if (e->blkno == blkno)
			return e;
	return NULL;
}

int vcfs_journal_lookup(struct vcfs_journal *j, uint64_t blkno, void *buf)
{
	struct jent *e;
	int hit = 0;

	pthread_mutex_lock(&j->smu);
	e = ent_find(j, blkno);
	if (e && (e->pimg || e->cimg)) {
		memcpy(buf, e->pimg ? e->pimg : e->cimg, VCFS_BLK);
		hit = 1;
	}
	pthread_mutex_unlock(&j->smu);
	return hit;
}

void vcfs_journal_stats(struct vcfs_journal *j, struct vcfs_journal_stats *out)
{
	pthread_mutex_lock(&j->smu);
	out->pending = j->npend;
	out->committed = j->ncommitted;
	out->log_used = j->used;
	out->log_blocks = j->nlog;
	out->commits = j->ncommits;
	out->checkpoints = j->nckpts;
	pthread_mutex_unlock(&j->smu);
}

static int ent_cmp(const void *a, const void *b)
{
	const struct jent *x = *(struct jent *const *)a, *y = *(struct jent *const *)b;

	return x->blkno < y->blkno ? -1 : x->blkno > y->blkno;
}

/* Entries with a pending (want_pending) or committed image, sorted by block. */
static int collect(struct vcfs_journal *j, int want_pending, uint32_t *n)
{
	uint32_t want = want_pending ? j->npend : j->ncommitted, k = 0;

	*n = 0;
	if (want == 0)
		return 0;
	if (want > j->capsorted) {
		struct jent **s = realloc(j->sorted, want * sizeof(*s));
		if (!s)
			return -ENOMEM;
		j->sorted = s;
		j->capsorted = want;
	}
	for (uint32_t i = 0; i < JHASH; i++)
		for (struct jent *e = j->hash[i]; e; e = e->next)
			if (want_pending ? e->pimg != NULL : e->cimg != NULL) {
				assert(k < want);
				j->sorted[k++] = e;
			}
	assert(k == want);
	qsort(j->sorted, k, sizeof(*j->sorted), ent_cmp);
	*n = k;
	return 0;
}

/* A write failed: sticky, and the host fences (never retried). */
static int fail(struct vcfs_journal *j, int rc, const char *what)
{
	vcfs_err("journal of slot %u: %s: %s; no further transactions on this journal, "
		 "replay completes it", j->slot, what, vcfs_strerror(rc));
	j->err = rc == -VCFS_EFENCED ? rc : -VCFS_EFENCED;
	if (j->hb && rc != -VCFS_EFENCED)
		vcfs_hb_fence(j->hb, rc);
	return rc;
}

/*
 * Checkpoint (smu): every committed image home, flush, header past them.
 * Pending images stay (they are in no record).
 */
static int checkpoint_locked(struct vcfs_journal *j)
{
	struct jhdr_state st;
	uint32_t n, i = 0, k;
	int rc;

	if (j->err)
		return j->err;
	if (j->ncommitted == 0 && j->used == 0)
		return 0;
	rc = collect(j, 0, &n);
	if (rc)
		return rc;
	/* runs of neighbours, up to max + 2 blocks each, through rec */
	while (i < n) {
		for (k = 0; i + k < n && k < j->max + 2 &&
			    (k == 0 || j->sorted[i + k]->blkno == j->sorted[i]->blkno + k); k++)
			memcpy(j->rec + (size_t)k * VCFS_BLK, j->sorted[i + k]->cimg, VCFS_BLK);
		rc = guarded_write(j->d, j->hb, j->sorted[i]->blkno, j->rec, k, 0);
		if (rc)
			return fail(j, rc, "writing metadata home");
		i += k;
	}
	if (n) {
		rc = vcfs_disk_flush(j->d);
		if (rc)
			return fail(j, rc, "flushing metadata");
	}
	st.init = 1;
	st.jgen = j->jgen;
	st.ckpt_seq = j->tseq;
	st.tail = j->head;
	st.seq = j->hdr_seq + 1;
	rc = write_header(j->d, j->hb, &j->sb, j->slot, j->slot, &st, j->hdr);
	if (rc)
		return fail(j, rc, "checkpointing the journal");
	j->ckpt_seq = j->tseq;
	j->hdr_seq = st.seq;
	j->tail = j->head;
	j->used = 0;
	for (i = 0; i < n; i++) {
		struct jent *e = j->sorted[i];
		free(e->cimg);
		e->cimg = NULL;
		if (!e->pimg) {
			struct jent **pp = ent_slot(j, e->blkno);
			while (*pp != e)
				pp = &(*pp)->next;
			*pp = e->next;
			free(e);
		}
	}
	j->ncommitted = 0;
	j->nckpts++;
	return 0;
}

/*
 * Commit (smu): one record of every pending image at the head of the log
 * (FUA); checkpoint first when the log has no room for it, after it when the
 * log is over half full.
 */
static int commit_locked(struct vcfs_journal *j)
{
	struct vcfs_jdesc_disk *desc = (void *)j->rec;
	struct vcfs_jcommit_disk *cm;
	uint32_t n, need, pos, waste, i;
	uint64_t tseq = j->tseq + 1;
	int rc;

	if (j->err)
		return j->err;
	if (j->npend == 0)
		return 0;
	need = j->npend + 2;
	assert(j->npend <= j->max && need <= j->nlog);
	for (;;) {
		pos = j->head;
		waste = 0;
		if (pos + need - 1 > j->nlog) {
			waste = j->nlog - pos + 1;
			pos = 1;
		}
		if (j->used + waste + need <= j->nlog)
			break;
		if (j->used == 0) {
			/* empty log: start it over at block 1 (replay looks
			 * there when the record is not at the header's tail) */
			j->head = j->tail = 1;
			continue;
		}
		rc = checkpoint_locked(j);
		if (rc)
			return rc;
	}
	if (j->pend_data) {
		/* the data the pending maps point at is on the media before
		 * the FUA record that maps it (FUA orders nothing before it) */
		rc = vcfs_disk_flush(j->d);
		if (rc)
			return fail(j, rc, "flushing data before a journal record");
		j->pend_data = 0;
	}
	rc = collect(j, 1, &n);
	if (rc)
		return rc;
	memset(desc, 0, VCFS_BLK);
	desc->jgen = le64_mk(j->jgen);
	desc->nblocks = le32_mk(n);
	desc->slot = le32_mk(j->slot);
	desc->tseq = le64_mk(tseq);
	for (i = 0; i < n; i++) {
		desc->targets[i] = le64_mk(j->sorted[i]->blkno);
		memcpy(j->rec + (size_t)(i + 1) * VCFS_BLK, j->sorted[i]->pimg, VCFS_BLK);
	}
	desc->h.seq = le64_mk(tseq);
	desc->h.writer = le32_mk(j->slot);
	vcfs_mhdr_seal(desc, VCFS_T_JDESC, j->jblk + pos, j->sb.volgen);
	cm = (void *)(j->rec + (size_t)(n + 1) * VCFS_BLK);
	memset(cm, 0, VCFS_BLK);
	cm->jgen = le64_mk(j->jgen);
	cm->tseq = le64_mk(tseq);
	cm->nblocks = le32_mk(n);
	cm->data_crc = le32_mk(vcfs_crc32c(0, j->rec, (size_t)(n + 1) * VCFS_BLK));
	cm->h.seq = le64_mk(tseq);
	cm->h.writer = le32_mk(j->slot);
	vcfs_mhdr_seal(cm, VCFS_T_JCOMMIT, j->jblk + pos + 1 + n, j->sb.volgen);
	rc = guarded_write(j->d, j->hb, j->jblk + pos, j->rec, n + 2, VCFS_IO_FUA);
	if (rc)
		return fail(j, rc, "writing the journal record");
	for (i = 0; i < n; i++) {
		struct jent *e = j->sorted[i];
		if (e->cimg)
			free(e->cimg);
		else
			j->ncommitted++;
		e->cimg = e->pimg;
		e->pimg = NULL;
	}
	j->npend = 0;
	j->tseq = tseq;
	j->head = pos + need;
	if (j->head > j->nlog)
		j->head = 1;
	j->used += waste + need;
	j->ncommits++;
	if (j->used > j->nlog / 2)
		return checkpoint_locked(j);
	return 0;
}

int vcfs_journal_commit(struct vcfs_journal *j)
{
	int rc;

	pthread_mutex_lock(&j->smu);
	rc = commit_locked(j);
	pthread_mutex_unlock(&j->smu);
	return rc;
}

int vcfs_journal_checkpoint(struct vcfs_journal *j)
{
	int rc;

	pthread_mutex_lock(&j->smu);
	rc = commit_locked(j);
	if (!rc)
		rc = checkpoint_locked(j);
	pthread_mutex_unlock(&j->smu);
	return rc;
}

/*
 * Takes j->mu; it stays held until vcfs_txn_commit, _defer or _abort.
 * -VCFS_EFENCED once a write failed or the host's lease is lost.
 */
int vcfs_txn_begin(struct vcfs_journal *j, struct vcfs_txn **out)
{
	int rc;

	*out = NULL;
	pthread_mutex_lock(&j->mu);
	pthread_mutex_lock(&j->smu);
	if (!j->err && j->hb && vcfs_hb_fenced(j->hb))
		j->err = -VCFS_EFENCED;
	rc = j->err;
	pthread_mutex_unlock(&j->smu);
	if (rc) {
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
	return t->j->stage + (size_t)i * VCFS_BLK;
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

void vcfs_txn_set_data(struct vcfs_txn *t)
{
	t->data = 1;
}

static void txn_end(struct vcfs_txn *t)
{
	t->n = 0;
	t->data = 0;
	pthread_mutex_unlock(&t->j->mu);
}

void vcfs_txn_abort(struct vcfs_txn *t)
{
	txn_end(t);
}

/* Merge t into the pending set (smu). */
static int merge_locked(struct vcfs_txn *t)
{
	struct vcfs_journal *j = t->j;
	uint32_t add = 0, i;
	int rc;

	if (j->err)
		return j->err;
	for (i = 0; i < t->n; i++) {
		struct jent *e = ent_find(j, t->ent[i].blkno);
		add += !e || !e->pimg;
	}
	if (j->npend + add > j->max) {
		rc = commit_locked(j);	/* one record per group that fills */
		if (rc)
			return rc;
	}
	for (i = 0; i < t->n; i++) {
		struct jent *e = ent_find(j, t->ent[i].blkno);
		if (!e) {
			e = calloc(1, sizeof(*e));
			if (!e)
				return -ENOMEM;
			e->blkno = t->ent[i].blkno;
			e->next = *ent_slot(j, e->blkno);
			*ent_slot(j, e->blkno) = e;
		}
		if (!e->pimg) {
			e->pimg = malloc(VCFS_BLK);
			if (!e->pimg)
				return -ENOMEM;
			j->npend++;
		}
		memcpy(e->pimg, txn_img(t, i), VCFS_BLK);
	}
	if (t->data && t->n)
		j->pend_data = 1;
	return 0;
}

/*
 * Defer: t joins the pending set (no I/O unless a group filled).  An error
 * (a write failed: the host is fenced; or no memory) leaves t unmerged.
 */
int vcfs_txn_defer(struct vcfs_txn *t)
{
	struct vcfs_journal *j = t->j;
	int rc;

	pthread_mutex_lock(&j->smu);
	rc = merge_locked(t);
	if (rc == -ENOMEM)
		rc = fail(j, rc, "no memory for a transaction");
	pthread_mutex_unlock(&j->smu);
	txn_end(t);
	return rc;
}

/*
 * Commit t durably and home: defer, then commit + checkpoint.  Any error is
 * sticky and fences the host (hb): the journal then holds the truth and
 * recovery replays it.
 */
int vcfs_txn_commit(struct vcfs_txn *t)
{
	struct vcfs_journal *j = t->j;
	int rc;

	if (t->n == 0) {
		txn_end(t);
		return 0;
	}
	pthread_mutex_lock(&j->smu);
	rc = merge_locked(t);
	if (rc == -ENOMEM)
		rc = fail(j, rc, "no memory for a transaction");
	if (!rc)
		rc = commit_locked(j);
	if (!rc)
		rc = checkpoint_locked(j);
	pthread_mutex_unlock(&j->smu);
	txn_end(t);
	return rc;
}
