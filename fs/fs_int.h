/*
 * fs_int.h - internals of the filesystem core (the fs/ sources implementing fs/fs.h).
 *
 * DESIGN
 *
 * One struct vcfs_fs is one mounted host: its disk, the decoded volume header,
 * its heartbeat (lock/) and journal (journal/), its slot, and a table of the
 * inodes that are OPEN on this host.  Nothing else is cached between calls
 * but what the lock cache keeps (below): every metadata change re-reads what
 * it changes under the objects' lock records (through the journal's images
 * of our own changes not yet home), so another host's changes are always
 * seen.
 *
 * Operations ("ops", op.c).  Every metadata change runs as one struct vcfs_op:
 *   1. op_begin() takes fs->op_mu (one metadata op at a time per host: the
 *      journal has one transaction at a time anyway, and it makes lock records
 *      never contended between threads of one host, which lock.c requires:
 *      -EDEADLK on a record this host already holds);
 *   2. op_lock_inodes() takes the lock records of the inodes it modifies with
 *      vcfs_lock_acquire(EXCL, WAIT, fs->lock_wait_ms), sorted by number;
 *      an inode this host already holds EXCL because it is open for writing
 *      is used under that lock (its cached body is the truth); an inode this
 *      host holds RO for read opens is re-locked EXCL for the op and RO again
 *      after it ("RO dance"); one held MW takes the record's map-change claim
 *      for the op (OPL_CLAIM, file.c) and reads the body from disk;
 *   3. blocks are read through op_read() (validated with vcfs_mhdr_check,
 *      corruption reported with VCFS_CORRUPT naming the block) into the op's
 *      block list; changed ones are marked dirty; new metadata blocks come
 *      from op_new(), which keeps the seq the block had on disk so journal
 *      replay never mistakes the new image for an older one;
 *   4. allocation (alloc.c) locks resource clusters (class order: all inode
 *      locks, then cluster locks by number -- by class, NOT by block number:
 *      the cluster region lies below the inode table on disk, whatever
 *      ondisk.h's header says; a lock taken out of that order -- a new
 *      inode's own lock, a lower cluster -- is only tried, or retried without
 *      waiting for a bounded time when a free needs that very cluster, so
 *      hosts cannot deadlock, at worst one op times out) and adds bitmap
 *      images;
 *   5. op_end() puts every dirty block in ONE journal transaction and defers
 *      it (vcfs_txn_defer: it joins the pending group, committed later as one
 *      record with other ops' -- group commit), then either keeps its locks
 *      in the lock cache (below) or checkpoints the journal (commit, home,
 *      flush, header) and releases them with bump = 1 (obj_version + 1);
 *      unmaps freed data blocks after a checkpoint, and copies committed inode
 *      images back to the open-inode table.
 *
 * The lock cache (op.c).  A lock record an op took (OPL_OWN) stays held EXCL
 * after the op, in fs->lc, so the next op on the same directory or cluster
 * takes it with no I/O, and the op's blocks stay only in the journal (which
 * op_read, op_new, load_body and statfs consult first: this host always sees
 * its newest metadata).  Rule: every block our journal holds newer than home
 * is protected by a record we hold, and before any such record is released
 * the journal is checkpointed -- other hosts read home locations only.  Hence
 * op_end checkpoints (and releases) when the op holds a lock that opens here
 * share with others (OPL_DANCE; OPL_CLAIM unless the claim is kept, below),
 * when it changed the body of an existing non-directory inode under a record
 * the op itself took (another host reads a body it finds held EXCL:
 * close-to-open), freed small blocks (a journaled
 * indirect or directory block must not be live in the log when it can be
 * reused as data), freed data to unmap, or the cache is full
 * (VCFS_LC_MAX).  Nothing tells us that another host waits for a record we
 * cache; instead the cache gives everything back (checkpoint, release) after
 * lc_idle_ns without an op (min(T/10, 20 ms)) and after lc_hold_ns of holding
 * (T/4), and then caches nothing for lc_cool_ns (T/20) so that the waiter's
 * polls find the record free between our ops: a waiter gets it within about
 * T/4 + its poll interval.  An op about to WAIT for a record first gives
 * back everything it caches, so cached records never join a wait cycle
 * between hosts.  Opens (file.c open_lock) flush the cache when it holds
 * the inode's record.  Lockless reads of a record we cache run under op_mu
 * through the journal.  Metadata ops are durable at the next record: fsync
 * of a file, fsync of a directory and vcfs_fs_sync commit the pending group;
 * a crash loses at most the ops of the last T/4, never half of one.
 *
 * Deferred data-path ops (first writes into thin files).  An op under a
 * record an open here holds EXCL (OPL_OPEN: a fill of holes, the size
 * commit, fallocate) is deferred like a cached op: its transaction joins the
 * group and the record stays with the open, which is the "record we hold"
 * of the rule above; the open's release (open_unlock ->
 * lcache_before_release) and fsync checkpoint first.  Other hosts cannot
 * open the file meanwhile and read its body with close-to-open semantics
 * anyway.  The data an op's map points at is ordered by the journal, not by
 * the op: the txn is marked (vcfs_txn_set_data) and the record that commits
 * the group is preceded by one disk flush -- one flush per group instead of
 * per large block.  A multi-writer file holds MW, not EXCL, and other hosts
 * read its body from home whenever their cached map falls short; so only a
 * fill (op->mw_keep) whose claim found NO other holder keeps the claim after
 * the op (fs->kc, ip->claim_kept) and leaves its change in the group: a host
 * that joins waits for claims older than its join before loading the body
 * (lock.h vcfs_lock_claim_wait), and the lock cache's clock gives kept claims
 * back like cached records (checkpoint, unclaim with obj_version + 1; within
 * lc_hold_ns, so the joiner waits at most about T/4); the next fill then
 * counts the joiner and runs synchronously.  Any other change of a file
 * whose claim we keep drops the kept claim first and claims afresh; the
 * release of the file, lcache_flush and unmount drop it too.  mw_refresh
 * reads the body from our journal first (our own change under the kept
 * claim).  Costs that remain per large block: one op (op_mu, the cached
 * cluster lock, bitmap and inode images merged into the group) and the data
 * write; per T/4: one checkpoint.
 *   Large changes (truncating a big file) run as several ops, each below
 *   vcfs_journal_max_blocks(); the map stays consistent between them.
 *
 * Lock order, per host: fs->op_mu, then inode map_rw (exclusive, taken by
 * inode_map_wrlock, which then waits for the inode's asynchronous data I/O
 * -- its pins -- to complete: that I/O waits for no lock of ours), then
 * fs->itab_mu / ip->mu (short, never held across I/O that waits on locks).
 * Cluster-wide: inode lock records by number, then cluster records by number.
 * A directory rename across parents also takes the root inode's lock record
 * first (inode 1 is the lowest number): it serialises the subtree check of
 * every such rename in the cluster, as Linux's s_vfs_rename_mutex does.
 *
 * Reads without modification (lookup, getattr, readdir, readlink, getxattr)
 * take no lock: lockless_read() reads the object's lock record, waits
 * (bounded) while another host holds it EXCL, reads the blocks with a
 * read-only op, re-reads the record and retries unless h.seq is unchanged.
 * An inode body that another host holds EXCL because the file is open there
 * is accepted as read (close-to-open semantics: size and mtime are committed
 * at fsync and close); a torn body fails its crc and is re-read.
 *
 * Block maps (bmap.c): VCFS_NDIRECT direct pointers, then single, double and
 * triple indirect blocks (small blocks, journaled).  A regular file uses
 * small 4 KiB blocks while it fits in one large block, and is converted once
 * to large blocks (VCFS_IF_LARGE) when it grows past it.  0 is a hole;
 * VCFS_BP_UNWRITTEN marks an allocated block that reads as zeros.  Invariant:
 * bytes of an allocated block past EOF are zero (new blocks are zeroed where
 * the write does not cover them; truncate zeroes the tail of the last block).
 * inode.blocks counts 512-byte units of data AND indirect blocks (as fsck).
 *
 * Data (file.c) never goes through the journal: a write to a written block
 * goes straight to the disk under the open's EXCL lock (vcfs_hb_write_ok
 * first); a write into a hole or an unwritten block allocates in an op,
 * writes zeroes and data, and only then hands the map change to the journal
 * marked op->data_written: the record that commits it is preceded by a flush
 * (the journal record is FUA, which orders nothing before it, and a map must
 * never reach the media before its data).  size and mtime of an
 * open-for-write inode live in its cached body and are committed at fsync,
 * release, and with any allocation (durable at the next record, home at
 * fsync and release: see "Deferred data-path ops").
 *
 * Directories (dir.c): linear hashing (ondisk.h); readdir goes in order of
 * bit-reversed hash, in which every bucket is an interval that a split only
 * halves, so a cookie (3 + (rev(hash) << 16 | rank)) stays valid across
 * splits and removals (dir_iterate_from); 1 and 2 are "." and "..".
 *
 * Unlinked while open: nlink 0, VCFS_IF_ORPHAN, an entry named by the inode
 * number in hex in VCFS_ORPHAN_INO(our slot); the last release frees it.  A
 * dead host's orphans are freed by whoever recovers it: the recover callback
 * replays the journal and queues the slot for fs->worker, which frees them
 * once the recovery is complete (the dead host's locks are stale only after
 * the callback returns and lock/ bumps the slot's generation).  Our own
 * slot's leftovers are freed at mount.  An unlinked inode not open here is
 * freed in the unlink's own op when its blocks fit one transaction.
 *
 * Opens (file.c) take the inode's lock record for as long as the file is
 * open, waiting at most one I/O timeout (another host's op ends within it,
 * an open does not): EBUSY names the holder.
 *
 * Waiting without op_mu.  An op whose FIRST record is held by another host,
 * and an open of a file held elsewhere, wait for it with op_mu released
 * (vcfs_lock_acquire with VCFS_LOCK_PEEK: the lock layer's own wait, bounds
 * and recovery of dead holders, without taking the record), then take it
 * under op_mu without waiting; an op that loses that race to another host
 * starts over (it holds nothing yet), within 6 x lock_wait_ms in all.  Only
 * a wait with nothing held can drop op_mu: a record this host holds must
 * never be contended between its own threads.
 *
 * Limits, on purpose for now: metadata ops of one host run one at a time.
 * An op waiting for its FIRST record (the directory of a create, unlink,
 * mkdir; the inode of a setattr) and an open waiting for a file held
 * elsewhere wait without op_mu, so this host's other ops -- the fills of
 * thin files among them -- go on; a later record of an op (a rename's second
 * directory, a resource cluster, a new inode) is waited for under op_mu and
 * delays them, up to lock_wait_ms.  Writes to allocated blocks never take
 * op_mu.  The group commit therefore groups successive ops, not concurrent
 * ones.  atime is not maintained; directories never give buckets back.
 */
#ifndef VCFS_FS_INT_H
#define VCFS_FS_INT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include "fs.h"
#include "ondisk.h"
#include "../disk/disk.h"
#include "../lock/lock.h"
#include "../journal/journal.h"

/* ---- open inodes ---- */

#define VCFS_IND_CACHE 16	/* indirect blocks cached per open inode */

struct vcfs_inode {
	struct vcfs_inode *hnext;	/* fs->itab chain; protected by itab_mu */
	uint64_t ino;
	unsigned refs;			/* handles + ops using it; itab_mu */
	unsigned nwrite, nread, nmw;	/* opens by kind (nmw: any open that
					 * asked for MW); op_mu */
	enum vcfs_lock_mode held;	/* record mode held for the opens; op_mu,
					 * changed under mu too (inode_set_held) */
	int lock_lost;			/* the record was lost (RO dance failed);
					 * like held */
	pthread_rwlock_t map_rw;	/* shared: data I/O reading the map and
					 * body; exclusive: an op changing them
					 * (inode_map_wrlock: after the pins) */
	unsigned pins;			/* asynchronous data I/O in flight on
					 * blocks the map gave it (mu): a map
					 * change waits for 0 (pins_cv) */
	pthread_cond_t pins_cv;
	pthread_mutex_t mu;		/* size/mtime updates by data writes and
					 * the indirect cache; never across I/O */
	struct vcfs_inode_disk *body;	/* valid while held != FREE */
	int dirty;			/* body changed in memory, not committed */
	int claim_kept;			/* our MW map-change claim outlives the
					 * op that took it (fs->kc; op_mu) */
	struct { uint64_t blk; uint8_t *buf; } ic[VCFS_IND_CACHE];
};

struct vcfs_file {
	struct vcfs_fs *fs;
	struct vcfs_inode *ip;
	uint64_t ino;
	int oflags;
	unsigned vflags;
	int can_read, can_write, locked;	/* locked: counted in ip->n* */
	enum vcfs_lock_mode mode;		/* what the open asked for */
	enum vcfs_lock_mode base_mode;		/* ... were the file not MW */
	int is_dir;				/* no data: -EISDIR */
	struct vcfs_file *fnext, **fpprev;	/* fs->files; itab_mu */
};

#define VCFS_ITAB_SIZE 256
#define VCFS_LC_MAX 64		/* lock records one host caches at most */
#define VCFS_LC_BUSY 16		/* contended records it remembers */
#define VCFS_LC_HIST 128	/* released records whose version it remembers */
#define VCFS_KC_MAX 8		/* MW map-change claims kept after their op */

/*
 * Versioned metadata cache for lockless reads.  Every metadata block belongs
 * to one lock record (an inode's body, map and directory blocks to the
 * inode's).  Any change to it takes that record EXCL, which bumps its seq; so
 * while the record is FREE or RO at seq s, a copy read under (record, s) is
 * the block.  An EXCL record is never trusted here: a file open for writing
 * elsewhere changes under an unchanged seq, and a dead holder's journal is
 * replayed under it.  Direct-mapped by block number.
 */
#define VCFS_VC_SIZE 1024
struct vcfs_vc_ent {
	uint64_t blkno, lock, seq;
	uint8_t *buf;		/* NULL: empty */
	uint8_t uninit;
};

struct vcfs_fs {
	struct vcfs_disk *d;
	struct vcfs_sb sb;
	struct vcfs_hb *hb;		/* NULL on a read-only mount */
	struct vcfs_journal *j;		/* NULL on a read-only mount */
	uint32_t slot;
	int read_only;
	uint32_t lock_wait_ms;		/* bound on waiting for a lock record */
	uint32_t jmax;			/* blocks one transaction may hold */
	uint32_t ncl;			/* resource clusters of all kinds */

	pthread_mutex_t op_mu;		/* one metadata op at a time */
	pthread_mutex_t itab_mu;
	int grow_warned;		/* told once that we cannot see a grow */
	struct vcfs_inode *itab[VCFS_ITAB_SIZE];
	struct vcfs_file *files;	/* open handles (vcfs_fs_crash frees
					 * those left); itab_mu */

	pthread_mutex_t misc_mu;	/* cursors, statfs cache, pending orphans */
	uint32_t cursor[4];		/* per cluster kind: index within kind */
	uint64_t statfs_at;		/* vcfs_now_ns of the cached statfs; 0 none */
	struct vcfs_statfs statfs_cache;
	uint32_t *orphan_slots;		/* dead slots whose orphans await freeing */
	uint32_t norphan_slots;
	pthread_cond_t work_cv;		/* wakes the worker (misc_mu) */
	pthread_t worker;		/* frees recovered slots' orphans */
	int worker_started, worker_stop;

	vcfs_inval_fn inval;
	void *inval_arg;

	pthread_mutex_t vc_mu;
	struct vcfs_vc_ent *vc;		/* VCFS_VC_SIZE entries, or NULL */

	/* lock cache (op.c): records kept EXCL after the op that took them;
	 * fields protected by op_mu, except the thread's own */
	struct { uint64_t blkno, ver; int bump; } lc[VCFS_LC_MAX];
	uint32_t nlc;
	uint64_t lc_since;		/* vcfs_now_ns when the cache last filled */
	uint64_t lc_last;		/* ... when an op last used it */
	uint64_t lc_cool_until;		/* no caching before (fairness) */
	uint64_t lc_hold_ns, lc_idle_ns, lc_cool_ns;
	struct { uint64_t blkno, ver; } lc_hist[VCFS_LC_HIST];	/* obj_version
					 * each record had when we last released
					 * it (op_mu, round robin) */
	uint32_t lc_hist_next;
	struct { uint64_t blkno, until; } lc_busy[VCFS_LC_BUSY];	/* records
					 * another host held when we wanted them
					 * lately: not cached (op_mu) */
	struct vcfs_inode *kc[VCFS_KC_MAX];	/* inodes whose MW claim we keep
					 * (one itab reference each; op_mu) */
	uint32_t nkc;			/* atomic store: lc_main peeks */
	uint64_t kc_since;		/* vcfs_now_ns when kc last filled */
	pthread_t lc_thread;
	int lc_started, lc_stop;	/* lc_stop: atomic */

	/* read-only mounts (ronly.c): a heartbeat observer, per slot the
	 * holder generation whose journal is in the overlay, and the journal
	 * images of dead lock holders (the overlay); NULL on read-write
	 * mounts.  ro_mu; ro_n also read atomically. */
	pthread_mutex_t ro_mu;
	struct vcfs_hb *ro_hb;
	uint64_t *ro_scanned;		/* gen32 + 1; 0: none */
	struct ro_img *ro_ov;
	uint32_t ro_cap, ro_n;
};

/* ronly.c: a read-only mount reading past a dead host.  ro_init/ro_free:
 * at mount and unmount (ro_free is a no-op on read-write mounts). */
int ro_init(struct vcfs_fs *fs);
void ro_free(struct vcfs_fs *fs);
/* How a read-only mount judges lock holder (slot, low 32 bits of gen): an
 * enum vcfs_holder_state.  The first time it is DEAD, its journal joins the
 * overlay (if that fails it stays LIVE: never read past it). */
int ro_holder_state(struct vcfs_fs *fs, uint32_t slot, uint32_t gen32);
/* A home block just read into buf: the overlay's image instead when it is
 * newer (change seq) or home is not a valid block there. */
void ro_overlay(struct vcfs_fs *fs, uint64_t blkno, void *buf);

/*
 * held and lock_lost also tell inode_read_lockless (which holds only ip->mu,
 * not op_mu) whether ip->body may be served: they change under both, a mode
 * is published once the body under it is loaded, and withdrawn before the
 * record is released (ThreadSanitizer found release racing with getattr).
 */
static inline void inode_set_held(struct vcfs_inode *ip, enum vcfs_lock_mode m)
{
	pthread_mutex_lock(&ip->mu);
	ip->held = m;
	pthread_mutex_unlock(&ip->mu);
}

static inline void inode_set_lost(struct vcfs_inode *ip, int lost)
{
	pthread_mutex_lock(&ip->mu);
	ip->lock_lost = lost;
	pthread_mutex_unlock(&ip->mu);
}

/* ---- ops (op.c) ---- */

struct op_buf {
	uint64_t blkno;
	uint8_t *b;		/* 4 KiB, vcfs_disk_buf_alloc */
	uint16_t type;
	uint8_t dirty;
	uint8_t uninit;		/* the block was not initialised on disk */
};

enum op_lock_how {
	OPL_OWN = 0,		/* acquired by this op: release at the end */
	OPL_OPEN,		/* held EXCL by an open on this host: keep */
	OPL_DANCE,		/* held RO by opens: released, EXCL for the op, RO after */
	OPL_CLAIM,		/* held MW by opens: the map-change claim for the op */
};

struct op_lock {
	uint64_t blkno;
	uint64_t ino;		/* 0 for a cluster lock */
	int how;
	struct vcfs_inode *ip;	/* an open inode (map_rw held exclusive) */
	uint8_t cached;		/* taken from the lock cache: the journal may
				 * hold blocks it protects */
	uint8_t bump;		/* ... with a change to publish (obj_version
				 * + 1 at release) */
	uint8_t fresh;		/* a new inode, allocated by this op */
	uint8_t again;		/* we had it last: nobody changed it since */
	uint64_t ver;		/* obj_version when acquired */
	uint32_t others;	/* OPL_CLAIM: other hosts holding it MW */
	uint8_t kept;		/* OPL_CLAIM: a kept claim reused (our journal
				 * may hold blocks changed under it) */
};

#define OP_MAXLOCK 32

struct vcfs_op {
	struct vcfs_fs *fs;
	int rw;				/* 0: lockless read op */
	struct op_buf *bufs;
	uint32_t nbufs, capbufs, ndirty;
	struct op_lock locks[OP_MAXLOCK];
	uint32_t nlocks;
	uint64_t max_cluster_lock;	/* highest cluster lock block held */
	struct { uint64_t off, len; } *unmap;	/* freed data ranges (bytes) */
	uint32_t nunmap, capunmap;
	int bitmaps_changed;
	int freed_meta;			/* freed small blocks (alloc.c): may have
					 * been metadata, checkpoint at the end */
	int data_written;		/* data for blocks this op maps: flush first */
	int mw_keep;			/* a fill of holes (write_alloc): an MW
					 * claim with no other holder may be kept
					 * after the op, and a kept one reused */
	/* lockless reads: the version of the lock record guarding every block
	 * this op reads, when blocks may be served from fs->vc */
	int vc_ok;
	uint64_t vc_lock, vc_seq;
};

int op_begin(struct vcfs_fs *fs, struct vcfs_op *op);
void op_begin_ro(struct vcfs_fs *fs, struct vcfs_op *op);
/* Commit (rc == 0) or abandon (rc != 0), release, free; returns rc or the
 * commit error. */
int op_end(struct vcfs_op *op, int rc);
void op_end_ro(struct vcfs_op *op);
/* Forget every block read so far (a lockless read retries). */
void op_reset_ro(struct vcfs_op *op);

/* Lock the inodes (any order, duplicates and zeros ignored) EXCL for op. */
int op_lock_inodes(struct vcfs_op *op, const uint64_t *inos, unsigned n);
/* Try (no wait) to lock one more inode (a newly allocated one): -EBUSY. */
int op_trylock_inode(struct vcfs_op *op, uint64_t ino);
int op_has_lock(const struct vcfs_op *op, uint64_t blkno);
/* Other hosts that hold ino MW while op changes it under the claim (0 when
 * the op holds it EXCL): nothing they may have cached can be freed. */
uint32_t op_mw_others(const struct vcfs_op *op, uint64_t ino);
/* Cluster lock c: waits only when in order, else retries for a bound. */
int op_lock_cluster(struct vcfs_op *op, uint32_t c, int may_wait);
/* Release every lock of an op that changed nothing (retry after re-check). */
void op_unlock_all(struct vcfs_op *op);
/* Give back lock i of op (nothing changed under it in this op): to the lock
 * cache when it came from there, else released. */
void op_drop_lock(struct vcfs_op *op, uint32_t i);

/* ---- the lock cache (op.c) ---- */
int lcache_start(struct vcfs_fs *fs);
/* Stop the thread; flush: checkpoint and release every cached record
 * (unmount), else forget them (a crash). */
void lcache_stop(struct vcfs_fs *fs, int flush);
/* Checkpoint the journal and release every cached record (op_mu held). */
int lcache_flush(struct vcfs_fs *fs);
/* Before taking lock record blkno outside an op (opens; op_mu held): if the
 * cache holds it, flush the cache. */
void lcache_drop(struct vcfs_fs *fs, uint64_t blkno);
/* Before releasing an open's record (op_mu held): drop a kept MW claim and
 * checkpoint the journal, which may hold blocks changed under the record.
 * An error means we are fenced: the record must stay ours. */
int lcache_before_release(struct vcfs_fs *fs, struct vcfs_inode *ip);

/* Read a metadata block of type t: -VCFS_ECORRUPT if not initialised. */
int op_read(struct vcfs_op *op, uint64_t blkno, enum vcfs_btype t, void **out);
/* Same, but a block not initialised is returned zeroed (type set, seq 0)
 * with *uninit = 1. */
int op_read_maybe(struct vcfs_op *op, uint64_t blkno, enum vcfs_btype t, void **out,
		  int *uninit);
/* A new image for blkno (zeroed, type t, seq of what the disk holds). */
int op_new(struct vcfs_op *op, uint64_t blkno, enum vcfs_btype t, void **out);
void op_dirty(struct vcfs_op *op, const void *buf);
/* Do not write blkno after all (a metadata block that was freed). */
void op_forget(struct vcfs_op *op, uint64_t blkno);
/* Queue a freed data range for unmap after commit. */
void op_unmap(struct vcfs_op *op, uint64_t off, uint64_t len);
/* The inode body for ino: locked in op (or the open inode's cached body). */
int op_inode(struct vcfs_op *op, uint64_t ino, struct vcfs_inode_disk **out);
/* Room left in this op's transaction (blocks). */
uint32_t op_room(const struct vcfs_op *op);

/*
 * Lockless consistent read of what lock record lockblk protects: calls
 * fn(op, arg) with a fresh read-only op until the record's seq is the same
 * before and after.  accept_held: an EXCL holder on another host does not
 * make us wait (inode bodies of files open there).
 */
int lockless_read(struct vcfs_fs *fs, uint64_t lockblk, int accept_held,
		  int (*fn)(struct vcfs_op *op, void *arg), void *arg);

/* ---- fs-wide helpers (super.c) ---- */
int fs_check(struct vcfs_fs *fs, int write);	/* fenced / read-only */
struct vcfs_inode *itab_get(struct vcfs_fs *fs, uint64_t ino, int create);
void itab_put(struct vcfs_fs *fs, struct vcfs_inode *ip);
struct vcfs_inode *itab_find(struct vcfs_fs *fs, uint64_t ino);	/* no ref */
int ino_valid(const struct vcfs_fs *fs, uint64_t ino);
void inode_to_attr(uint64_t ino, const struct vcfs_inode_disk *di, struct vcfs_attr *a);
void ts_now(struct vcfs_ts_disk *t);
/* Read the body of ino without locks (cached body if open here). */
int inode_read_lockless(struct vcfs_fs *fs, uint64_t ino, struct vcfs_inode_disk *out);
/* Adopt a grown volume header (grow.c); 0 also when there is nothing new.
 * sb.nlarge_clusters, sb.nlarge, sb.volume_blocks and ncl change under
 * readers: load nlarge_clusters (acquire) before nlarge. */
int fs_geom_refresh(struct vcfs_fs *fs);
uint8_t dt_of_mode(uint32_t mode);
void fs_inval(struct vcfs_fs *fs, uint64_t ino);
void ind_cache_clear(struct vcfs_inode *ip);
/* map_rw exclusive, once no asynchronous I/O is pinned on the inode's blocks
 * (vcfs_file_submit pins under map_rw shared, so none comes after) */
void inode_map_wrlock(struct vcfs_inode *ip);
/* Free the orphans listed in slot's orphan directory (not open here). */
int orphans_reclaim(struct vcfs_fs *fs, uint32_t slot);
/* Free an unlinked inode: blocks (several ops), then inode + orphan entry.
 * Called without op_mu. */
int inode_reclaim(struct vcfs_fs *fs, uint64_t ino, uint32_t orphan_slot);

/* ---- allocation (alloc.c) ---- */
int alloc_inode(struct vcfs_op *op, uint64_t *ino);
int free_inode(struct vcfs_op *op, uint64_t ino);
/* Small block: returns its 4 KiB block number. */
int alloc_small(struct vcfs_op *op, uint64_t *blk);
/* Large block: returns the 4 KiB number of its first block. */
int alloc_large(struct vcfs_op *op, uint64_t *blk);
int free_small(struct vcfs_op *op, uint64_t blk);
int free_large(struct vcfs_op *op, uint64_t blk);
int fs_statfs(struct vcfs_fs *fs, struct vcfs_statfs *out);

/* ---- block maps (bmap.c) ---- */
static inline uint32_t bmap_bsize(const struct vcfs_fs *fs, const struct vcfs_inode_disk *di)
{
	return (le32_get(di->flags) & VCFS_IF_LARGE) ? fs->sb.lblock_size : VCFS_BLK;
}
/* Highest logical block + 1 a map can address. */
uint64_t bmap_limit(void);
/* Pointer for logical block lb (0 = hole); ip: indirect cache (may be NULL). */
int bmap_get(struct vcfs_op *op, struct vcfs_inode *ip, const struct vcfs_inode_disk *di,
	     uint64_t lb, uint64_t *bp);
/* Set the pointer of lb (allocating indirect blocks); di is dirty in op. */
int bmap_set(struct vcfs_op *op, struct vcfs_inode_disk *di, uint64_t lb, uint64_t bp);
/*
 * Free the blocks of logical [from, to) (to = UINT64_MAX: to the end),
 * dropping indirect blocks that become empty.  Stops early, returning 1,
 * when the op's transaction is nearly full: commit and call again.
 */
int bmap_free(struct vcfs_op *op, struct vcfs_inode_disk *di, uint64_t from, uint64_t to);
/* First logical block >= lb that is data (want_data) or a hole/unwritten;
 * *found = UINT64_MAX if none below bmap_limit(). */
int bmap_next(struct vcfs_op *op, const struct vcfs_inode_disk *di, uint64_t lb,
	      int want_data, uint64_t *found);
/* Convert a small-block file to large blocks (data copied). */
int bmap_to_large(struct vcfs_op *op, struct vcfs_inode_disk *di);
/* Allocate a data block for di (small or large), unaccounted. */
int bmap_alloc_data(struct vcfs_op *op, const struct vcfs_inode_disk *di, uint64_t *blk);
uint64_t bmap_blocks512(const struct vcfs_fs *fs, const struct vcfs_inode_disk *di);

/* ---- directories (dir.c) ---- */
struct dir_hit {
	uint64_t ino;
	uint8_t type;
	uint64_t lb;		/* logical block holding the entry */
	uint64_t blk;		/* its block number */
	uint32_t off;		/* byte offset of the entry in data[] */
};
/* 0 found, -ENOENT not found. */
int dir_find(struct vcfs_op *op, const struct vcfs_inode_disk *dir, const char *name,
	     size_t len, struct dir_hit *hit);
/* Add an entry (dir is dirty in op; dir_count + 1, splits). */
int dir_add(struct vcfs_op *op, struct vcfs_inode_disk *dir, const char *name, size_t len,
	    uint64_t ino, uint8_t type);
/* Remove the entry named (found again); dir_count - 1. */
int dir_remove(struct vcfs_op *op, struct vcfs_inode_disk *dir, const char *name, size_t len);
/* Point an existing entry at another inode. */
int dir_retarget(struct vcfs_op *op, struct vcfs_inode_disk *dir, const char *name,
		 size_t len, uint64_t ino, uint8_t type);
/* Initialise an empty directory body (no blocks). */
void dir_init(struct vcfs_inode_disk *di, uint64_t parent);
/* Free every block of a directory (it must be empty). */
int dir_free_blocks(struct vcfs_op *op, struct vcfs_inode_disk *dir);
typedef int (*dir_iter_fn)(void *arg, const struct vcfs_dirent_disk *e, uint64_t next_cookie);
/* Buckets of a directory (0 if its geometry is corrupt). */
uint64_t dir_nbuckets(const struct vcfs_inode_disk *dir);
/* Entries of bucket b from index idx on; fn gets each entry's next cookie;
 * stops when fn returns non-zero (returned). */
int dir_iterate_bucket(struct vcfs_op *op, const struct vcfs_inode_disk *dir, uint32_t b,
		       uint32_t idx, dir_iter_fn fn, void *arg);
/* readdir: the entries of the bucket that holds position cookie, from it on,
 * in readdir order (dir.c); *next: the cookie where the next bucket starts,
 * UINT64_MAX at the end. */
int dir_iterate_from(struct vcfs_op *op, const struct vcfs_inode_disk *dir, uint64_t cookie,
		     dir_iter_fn fn, void *arg, uint64_t *next);
int name_check(const char *name, size_t *len);

/* ---- namespace (namei.c) ---- */
struct create_args {
	uint64_t dir;
	const char *name;
	uint32_t mode, uid, gid;
	uint64_t rdev;
	const char *target;	/* symlinks */
	int keep_lock;		/* leave the new inode's EXCL lock held (an open) */
};
/* Create an inode and its entry in one op: -EEXIST if the name exists. */
int fs_create(struct vcfs_fs *fs, const struct create_args *a, uint64_t *ino_out,
	      struct vcfs_attr *out);

/* ---- files (file.c) ---- */
/* Change size (truncate / extend) of ino under an op that locked it. */
int file_set_size(struct vcfs_fs *fs, uint64_t ino, uint64_t size);
/* Unmount: commit and release an inode's opens whatever the handles. */
int inode_close_all(struct vcfs_fs *fs, struct vcfs_inode *ip);

#endif
