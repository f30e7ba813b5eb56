/*
 * journal.h - the per-host redo journal of metadata blocks.
 *
 * Format in fs/ondisk.h (struct vcfs_jhdr_disk, vcfs_jdesc_disk,
 * vcfs_jcommit_disk); each host slot has journal_blocks blocks at
 * vcfs_journal_blk(sb, slot).
 *
 * One transaction at a time per host (vcfs_txn_begin takes the journal mutex):
 *   1. the caller adds the new images of the metadata blocks it changed
 *      (vcfs_txn_add), each with its mhdr type set; the journal stamps blkno,
 *      volume generation, seq = (seq the block had when read) + 1, the
 *      writer slot, and the crc;
 *   2. vcfs_txn_commit writes descriptor + images + commit record as ONE write
 *      at journal block 1 with FUA (a torn write fails the commit crc and is
 *      then simply not a transaction);
 *   3. writes every image home, flushes;
 *   4. writes the journal header with ckpt_seq = this transaction (FUA).
 * Only then does the caller release its locks.  So at most one transaction
 * (ckpt_seq + 1) is ever live, and a freed block can never be overwritten by
 * a replay of an old transaction after another host reused it.
 *
 * Replay (own journal at mount, a dead host's by its recoverer, fsck): if the
 * transaction at block 1 has tseq == ckpt_seq + 1, the journal's jgen and a
 * good commit crc, write each image home unless the home block already holds
 * a valid block of a seq >= the image's seq; flush; then write the header with
 * ckpt_seq = tseq and jgen + 1.  Idempotent.
 *
 * Every write is guarded by the heartbeat lease (vcfs_hb_write_ok) when a hb is
 * given; a failed write during commit fences the host (never retried: the
 * journal then holds the truth and recovery replays it).
 */
#ifndef VCFS_JOURNAL_H
#define VCFS_JOURNAL_H

#include <stdint.h>
#include "../disk/disk.h"
#include "../fs/ondisk.h"

struct vcfs_hb;
struct vcfs_journal;
struct vcfs_txn;

/*
 * Largest number of blocks one transaction may hold for this volume:
 * journal_blocks - 3 (header, descriptor and commit take one block each),
 * at most VCFS_JDESC_MAX.
 */
uint32_t vcfs_journal_max_blocks(const struct vcfs_sb *sb);

/*
 * Open slot's journal for writing (after vcfs_journal_replay of the same
 * slot; open replays again, a no-op then, so a pending transaction can never
 * be overwritten).  Writes the header with jgen + 1 (a never used header
 * starts the journal).  hb may be NULL for offline tools (no lease guard).
 * -VCFS_ECORRUPT if the header is damaged (vcfs_journal_reset).
 */
int vcfs_journal_open(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
		      struct vcfs_hb *hb, struct vcfs_journal **out);
void vcfs_journal_close(struct vcfs_journal *j);

/*
 * Replay slot's journal.  *applied (may be NULL): blocks written home.
 * 0 also when there is nothing to replay (never used, checkpointed, torn or
 * foreign record: the log says which).  -VCFS_ECORRUPT when the header is
 * damaged: what is committed is unknown, so nothing is written (fsck resets
 * the journal).  Write errors are returned, never retried, and do not fence.
 */
int vcfs_journal_replay(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
			struct vcfs_hb *hb, unsigned *applied);
/*
 * fsck: make a damaged journal usable again: a valid header whose generation
 * and checkpoint go past everything found in the old header and record, so
 * nothing in the journal is ever replayed.  Only after the volume has been
 * checked (a transaction that was pending is lost).
 */
int vcfs_journal_reset(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
		       struct vcfs_hb *hb);

/* What fsck and `vcfs hosts` show about a journal. */
struct vcfs_journal_state {
	int initialised;	/* header valid */
	uint64_t jgen, ckpt_seq;
	int pending;		/* a committed transaction awaits replay */
	uint32_t pending_blocks;
	int corrupt;		/* header has our signature but is damaged
				 * (initialised = 0; replay and open refuse) */
};
/* 0 unless the journal could not be read (I/O error). */
int vcfs_journal_inspect(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
			 struct vcfs_journal_state *out);

int vcfs_txn_begin(struct vcfs_journal *j, struct vcfs_txn **out);
/*
 * Add (or replace) the new image of block blkno.  blk is 4096 bytes whose
 * mhdr.type is set and whose mhdr.seq is the seq the block had when it was
 * read (0 for a block that was not initialised); the journal copies it.
 * -E2BIG past vcfs_journal_max_blocks().
 */
int vcfs_txn_add(struct vcfs_txn *t, uint64_t blkno, const void *blk);
/* The sealed image the transaction will write (after add), or NULL. */
const void *vcfs_txn_image(struct vcfs_txn *t, uint64_t blkno);
uint32_t vcfs_txn_nblocks(const struct vcfs_txn *t);
/* Commit, write home, checkpoint; frees t.  Error => the host is fenced. */
int vcfs_txn_commit(struct vcfs_txn *t);
/* Forget t (nothing was written); frees t. */
void vcfs_txn_abort(struct vcfs_txn *t);

#endif
