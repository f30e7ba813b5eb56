/*
 * journal.h - the per-host redo journal of metadata blocks.
 *
 * Format in fs/ondisk.h (struct vcfs_jhdr_disk, vcfs_jdesc_disk,
 * vcfs_jcommit_disk); each host slot has journal_blocks blocks at
 * vcfs_journal_blk(sb, slot): a header and a circular log of records.
 *
 * Transactions (one being built at a time per host: vcfs_txn_begin takes the
 * journal mutex):
 *   1. the caller adds the new images of the metadata blocks it changed
 *      (vcfs_txn_add), each with its mhdr type set; the journal stamps blkno,
 *      volume generation, seq = (seq the block had when read) + 1, the
 *      writer slot, and the crc;
 *   2. vcfs_txn_defer merges it into the in-memory pending set: group commit,
 *      no I/O (unless the group is full: then the group is committed first);
 *      or vcfs_txn_commit, which also commits and checkpoints at once;
 *   3. vcfs_journal_commit writes every pending image as ONE record at the
 *      head of the log with FUA (durable: fsync); a torn write fails the
 *      commit crc and is then simply not a transaction; when a pending
 *      transaction maps data (vcfs_txn_set_data: a block filled by the data
 *      path), a disk flush precedes the record -- one flush per group, not
 *      per allocation;
 *   4. vcfs_journal_checkpoint commits, then writes every committed image
 *      home, flushes, and writes the header with ckpt_seq = the last record
 *      and tail = the head (FUA).  Automatic when the log is over half full
 *      or has no room for the next record.
 * The host reads its own metadata through vcfs_journal_lookup (pending or
 * committed images newer than home).  Cluster rule (fs/op.c keeps it):
 * every block the journal holds is protected by a lock record this host
 * holds, and a checkpoint precedes the release of any such lock -- other
 * hosts read home locations only.
 *
 * Replay (own journal at mount, a dead host's by its recoverer, fsck): from
 * the header's tail, each record tseq ckpt_seq + 1, + 2, ... of the header's
 * jgen whose commit crc verifies, found right after its predecessor or at
 * log block 1 (wrap-around), until the first that is not there; each image
 * is written home unless the home block already holds a valid block of a seq
 * >= the image's seq; flush; then the header with ckpt_seq = the last one
 * replayed, the tail after it, and jgen + 1.  Idempotent.
 *
 * Every write is guarded by the heartbeat lease (vcfs_hb_write_ok) when a hb is
 * given; a failed write fences the host (never retried: the journal then
 * holds the truth and recovery replays it).
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
 * slot; open replays again, a no-op then, so a live record can never be
 * overwritten).  Close forgets what is not checkpointed (the caller
 * checkpoints first at a clean unmount).  Writes the header with jgen + 1 (a never used header
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

/*
 * Read-only: hand every block image of slot's committed transactions that
 * are not checkpointed yet to fn, in commit order (a block's later image
 * after its earlier one), writing nothing.  A read-only mount uses it to see
 * what a dead host committed before a read-write host has recovered it.
 * 0 also when there is nothing (*nimages, may be NULL: images handed);
 * -VCFS_ECORRUPT if the header is damaged.
 */
typedef void (*vcfs_journal_scan_fn)(void *arg, uint64_t blkno, const void *img);
/* Replay's seq guard: 1 if home (read from blkno) is a valid block of the
 * volume whose change seq is at least img's, so img must not replace it. */
int vcfs_journal_home_current(const void *home, const void *img, uint64_t blkno,
			      uint64_t volgen);
int vcfs_journal_scan(struct vcfs_disk *d, const struct vcfs_sb *sb, uint32_t slot,
		      vcfs_journal_scan_fn fn, void *arg, unsigned *nimages);

/* What fsck and `vcfs hosts` show about a journal. */
struct vcfs_journal_state {
	int initialised;	/* header valid */
	uint64_t jgen, ckpt_seq;
	int pending;		/* committed transactions await replay */
	uint32_t pending_txns;	/* how many */
	uint32_t pending_blocks;	/* block images in them */
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
/*
 * t maps data blocks the caller wrote (and saw complete) before: the record
 * that commits t is preceded by a disk flush (so a map never reaches the
 * media before its data, whenever the group is committed).
 */
void vcfs_txn_set_data(struct vcfs_txn *t);
/* Commit, write home, checkpoint; frees t.  Error => the host is fenced. */
int vcfs_txn_commit(struct vcfs_txn *t);
/* Join the pending group (committed later); frees t.  Error => fenced. */
int vcfs_txn_defer(struct vcfs_txn *t);

/* Write the pending group as one durable record.  Error => fenced. */
int vcfs_journal_commit(struct vcfs_journal *j);
/* Commit, then everything committed home, flush, header.  Error => fenced. */
int vcfs_journal_checkpoint(struct vcfs_journal *j);
/* 1 and the image in buf (4096 bytes) if the journal holds blkno newer than
 * its home location (pending or committed), else 0. */
int vcfs_journal_lookup(struct vcfs_journal *j, uint64_t blkno, void *buf);
struct vcfs_journal_stats {
	uint32_t pending, committed;	/* blocks not home, by state */
	uint32_t log_used, log_blocks;
	uint64_t commits, checkpoints;	/* records written, checkpoints done */
};
void vcfs_journal_stats(struct vcfs_journal *j, struct vcfs_journal_stats *out);
/* Forget t (nothing was written); frees t. */
void vcfs_txn_abort(struct vcfs_txn *t);

#endif
