/*
 * rlock.h - cluster-wide byte-range locks (fcntl POSIX and OFD locks, flock)
 * kept on the datastore, one table per inode (fs/ondisk.h: struct
 * vcfs_rlock_disk, bytes 512..1023 of the inode's lock record block).
 *
 * Who owns a lock.  An entry is (holder slot, low 32 bits of that slot's
 * generation, owner, kind).  owner is the lock owner id the kernel gives the
 * host's FUSE daemon: the scrambled address of the files_struct for POSIX
 * locks, of the struct file for OFD and flock locks; it means something only
 * on that host, so two entries have the same owner only when slot, generation
 * and owner all match.  kind separates fcntl locks (POSIX and OFD, which do
 * conflict with each other: FUSE does not tell them apart) from flock locks
 * (which on Linux never conflict with fcntl locks).
 *
 * Validity: the rule of lock records (lock.h).  An entry counts while its
 * slot is LIVE or RECOVERING at that generation; once the slot is freed
 * (clean unmount) or recovered (generation + 1) every entry of it is stale at
 * once, is ignored by every decision and is dropped by the next change of
 * the table.  A conflicting entry whose host looks dead (no renewal for D) is
 * recovered first (vcfs_hb_recover), exactly as lock acquire does.
 *
 * Protocol.  No in-memory locking and no lock record is taken: every call is
 *	read the lock block -> decode the table -> drop stale entries ->
 *	decide -> CAS the sector holding the table from exactly what was read
 * and a miscompare re-reads and decides again.  So it works whatever mode
 * another host holds the inode's lock record in (a file open for write on
 * one host and opened again elsewhere), and any thread of any host may call
 * anything at any time.  Two hosts racing for one range:
 *	A: reads seq 7 (empty)			B: reads seq 7 (empty)
 *	A: CAS 7 -> 8 (A: 100-100 W)		B: CAS miscompares, re-reads seq 8
 *						B: conflict with A (live): -EAGAIN
 * A change that decides nothing (an unlock of nothing) writes nothing.
 *
 * POSIX arithmetic (vcfs_rlock_apply): a request replaces whatever the same
 * owner held over its range; ranges of one owner and type that overlap or
 * touch merge; unlocking or retyping the middle of a range splits it.  A
 * table holds VCFS_RLOCK_ENTRIES ranges per inode; a change that would need
 * more fails with -ENOLCK (as fcntl does when the kernel's lock table is
 * full).  No deadlock detection across hosts (F_SETLKW never gives EDEADLK).
 */
#ifndef VCFS_RLOCK_H
#define VCFS_RLOCK_H

#include <stdint.h>
#include "../disk/disk.h"
#include "../fs/ondisk.h"

struct vcfs_hb;

/* One lock range in host order. */
struct vcfs_rlock {
	uint32_t slot, gen;	/* holder host (slot, low 32 bits of generation) */
	uint64_t owner;		/* the kernel's lock owner id on that host */
	uint64_t start, end;	/* inclusive; end VCFS_RLOCK_EOF: to EOF */
	uint32_t pid;		/* locking process, on the holder's host */
	uint8_t type;		/* enum vcfs_rlock_type */
	uint8_t kind;		/* enum vcfs_rlock_kind */
};

struct vcfs_rlock_table {
	int init;		/* the record was initialised on disk */
	uint64_t seq;		/* h.seq as read */
	uint32_t n;
	struct vcfs_rlock e[VCFS_RLOCK_ENTRIES];
};

/* ---- range arithmetic (pure, no I/O) ---- */

/* Same owner: slot, generation, owner id and kind all match. */
int vcfs_rlock_same_owner(const struct vcfs_rlock *a, const struct vcfs_rlock *b);
/* held blocks want: same kind, other owner, overlapping, one of them a write lock. */
int vcfs_rlock_conflicts(const struct vcfs_rlock *held, const struct vcfs_rlock *want);
/* Index of the first entry of e[0..n) that blocks want, or -1. */
int vcfs_rlock_find_conflict(const struct vcfs_rlock *e, uint32_t n,
			     const struct vcfs_rlock *want);
/*
 * Apply req (type RDLCK, WRLCK or UNLCK) for req's owner to e[0..*n) with
 * POSIX semantics: split, trim, merge.  Conflicts are not checked here.
 * 0, or -ENOLCK when the result needs more than cap entries (e unchanged).
 */
int vcfs_rlock_apply(struct vcfs_rlock *e, uint32_t *n, uint32_t cap,
		     const struct vcfs_rlock *req);
/* Drop every entry of (slot, gen, owner) of kind (-1: any kind; owner
 * VCFS_RLOCK_ANY_OWNER: every owner of that host).  Returns how many. */
#define VCFS_RLOCK_ANY_OWNER UINT64_MAX
uint32_t vcfs_rlock_drop_owner(struct vcfs_rlock *e, uint32_t *n, uint32_t slot, uint32_t gen,
			       uint64_t owner, int kind);

/* ---- the on-disk record (the 512 bytes at VCFS_RLOCK_OFF of a lock block) ---- */

/* 0 valid, 1 never initialised (an empty table), -VCFS_ECORRUPT (logged). */
int vcfs_rlock_decode(const void *rec, uint64_t blkno, uint64_t volgen,
		      struct vcfs_rlock_table *t);
/* Write t into rec (512 bytes) with h.seq = t->seq, sealed. */
void vcfs_rlock_encode(const struct vcfs_rlock_table *t, void *rec, uint64_t blkno,
		       uint64_t volgen, uint32_t writer);

/* ---- cluster operations (blkno: the inode's lock record block) ---- */

/*
 * Set, change or drop (type UNLCK) req's range for req's owner; req->slot and
 * req->gen are filled from hb.  0; -EAGAIN if a live lock of another owner
 * conflicts (*conflict, if given, receives it); -ENOLCK when the table is
 * full; -VCFS_EFENCED once fenced; -VCFS_ECORRUPT for a damaged table.
 */
int vcfs_rlock_set(struct vcfs_hb *hb, uint64_t blkno, struct vcfs_rlock *req,
		   struct vcfs_rlock *conflict);
/* F_GETLK: 1 and *conflict if a valid lock of another owner blocks req, 0 if
 * none, or a negative error (-VCFS_EFENCED once fenced). */
int vcfs_rlock_test(struct vcfs_hb *hb, uint64_t blkno, struct vcfs_rlock *req,
		    struct vcfs_rlock *conflict);
/*
 * Drop this host's entries of owner (VCFS_RLOCK_ANY_OWNER: all of this host)
 * of kind (-1 any).  Returns how many this host still holds on the inode
 * afterwards (>= 0), or a negative error.
 */
int vcfs_rlock_release(struct vcfs_hb *hb, uint64_t blkno, uint64_t owner, int kind);
/* Read a table (offline too: no liveness judgement). */
int vcfs_rlock_read(struct vcfs_disk *d, const struct vcfs_sb *sb, uint64_t blkno,
		    struct vcfs_rlock_table *t);

#endif
