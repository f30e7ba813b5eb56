/*
 * lock.h - cluster membership by on-disk heartbeats, and on-disk lock records.
 *
 * Everything here goes through vcfs_disk_cas() on record blocks (fs/ondisk.h:
 * struct vcfs_hb_disk, struct vcfs_lock_disk); hosts need no network.
 *
 * Timing (docs/architecture.md has the argument and the trace).  From the I/O
 * timeout T recorded in the volume header:
 *	R = T		renewal interval
 *	F = 4T		a host whose last renewal that succeeded *started* more
 *			than F - T ago issues no further write (fenced)
 *	D = F + 2T + R	an observer that saw a slot's counter unchanged for D on
 *			its own monotonic clock may declare that host dead
 * vcfs_hb_join() refuses timings that break D > F + T.
 *
 * Heartbeat protocol
 *  - join: read every slot; claim a FREE (or uninitialised) one by CAS with
 *    state LIVE, generation + 1, counter 0, host name and a fresh host uuid.
 *  - renew every R by CAS of our own slot from what we last wrote: a
 *    miscompare means another host took or recovered our slot, and we fence.
 *  - a monitor thread reads all slots every R and records, per slot, when on
 *    our clock its (state, generation, counter) last changed.
 *  - leave: CAS our slot to FREE (generation kept).
 *
 * Recovery of a dead host X (by any survivor S; exactly one wins the CAS):
 *	S: sees X LIVE with counter unchanged for D
 *	S: CAS slot X: state RECOVERING, recoverer S, recoverer_gen = S's gen
 *	S: replays X's journal (the recover callback given at join)
 *	S: CAS slot X: state FREE, generation + 1  -> every lock X held is stale
 * If S dies while RECOVERING, another survivor that sees S dead takes the
 * recovery over by the same CAS (replay is idempotent: per-block seq guard).
 *
 * Lock records
 *  - a holder entry is (slot, low 32 bits of that slot's generation); it is
 *    valid while the slot is LIVE with that generation (or RECOVERING: the
 *    journal has not been replayed yet, so its locks still stand);
 *  - acquire reads the record, drops stale holder entries, and if the mode
 *    allows, CASes the record with itself added (h.seq + 1); a miscompare just
 *    re-reads and retries.  Uncontended: one read and one CAS.
 *  - a holder that looks dead (no renewal for D) is recovered first, then its
 *    entries are stale; a holder that is alive makes acquire fail with -EBUSY
 *    (or wait, with VCFS_LOCK_WAIT, up to the given bound).
 *  - release CASes the record without our entry.
 *  - obj_version: a writer bumps it (vcfs_lock_bump) when it changed the
 *    protected object, so another host can keep a cache while it is unchanged.
 *  - MW map-change claim: VCFS_LH_CLAIM on one MW holder's entry, set by CAS
 *    when no valid entry has it (a dead claimer is recovered first), with
 *    claim_seq = the seq of that CAS; dropped by CAS (vcfs_lock_unclaim) or
 *    with the entry.  Modelled in tests/model/hb_lock.pml (-DMW).
 */
#ifndef VCFS_LOCK_H
#define VCFS_LOCK_H

#include <stdint.h>
#include "../disk/disk.h"
#include "../fs/ondisk.h"

struct vcfs_hb;

/*
 * Replay the journal of slot `slot` (called by recovery; must be idempotent).
 * Called with this host's recovery mutex held, from the monitor thread or
 * from whichever thread called vcfs_hb_recover (lock acquire does): it must
 * not call vcfs_hb_recover itself (-EDEADLK) nor leave/abandon hb.  A non-zero
 * return leaves the slot RECOVERING by us; it is retried after D.
 */
typedef int (*vcfs_recover_fn)(void *arg, struct vcfs_hb *hb, uint32_t slot);
/*
 * Told once, from the renewal thread, when this host fences itself.  why:
 * -VCFS_EMISCOMPARE  our slot was rewritten by another host (taken/recovered);
 * -ETIMEDOUT         no renewal succeeded within F - T (the log names the
 *                    last I/O error);
 * anything else      what vcfs_hb_fence() was given.
 */
typedef void (*vcfs_fence_fn)(void *arg, int why);

struct vcfs_hb_opts {
	const char *host_name;		/* NULL: gethostname() */
	vcfs_recover_fn recover;	/* NULL: this host never recovers others */
	void *recover_arg;
	vcfs_fence_fn on_fence;
	void *fence_arg;
	int want_slot;			/* -1 any; else this slot only (tests) */
};

/* Timing derived from T (milliseconds). */
struct vcfs_hb_timing { uint64_t t_ns, renew_ns, fence_ns, dead_ns; };
void vcfs_hb_timing_from(uint32_t io_timeout_ms, struct vcfs_hb_timing *out);
/* 0 if the timing is safe (D > F + T, and F - T > R so a lease outlives a
 * renewal period), else -EINVAL with a message.  vcfs_hb_join() calls it. */
int vcfs_hb_timing_ok(const struct vcfs_hb_timing *tm);

/*
 * Join the cluster: claim a slot, start the renewal and monitor threads.
 * -VCFS_EBUSY-like -EUSERS when every slot is taken (the message says how many
 * are live and that mkfs -H sets the limit); -EBUSY if want_slot is in use.
 * d must be opened with opts.io_timeout_ms <= sb->io_timeout_ms: the safety
 * argument assumes every request ends within T (join cannot check it).
 * A slot never initialised starts at a random generation, so stale lock
 * entries from before an fsck that zeroed it cannot match.
 */
int vcfs_hb_join(struct vcfs_disk *d, const struct vcfs_sb *sb,
		 const struct vcfs_hb_opts *o, struct vcfs_hb **out);
/*
 * Stop renewing and free the slot (only after every lock was released).
 * Frees hb whatever the result; -VCFS_EFENCED if the slot could not be freed
 * (fenced, or taken over): survivors then recover it.
 */
int vcfs_hb_leave(struct vcfs_hb *hb);
/* Stop the threads without touching the disk (a simulated crash in tests);
 * frees hb. */
void vcfs_hb_abandon(struct vcfs_hb *hb);

uint32_t vcfs_hb_slot(const struct vcfs_hb *hb);
uint64_t vcfs_hb_generation(const struct vcfs_hb *hb);
struct vcfs_disk *vcfs_hb_disk(const struct vcfs_hb *hb);
const struct vcfs_sb *vcfs_hb_sb(const struct vcfs_hb *hb);

/*
 * Every write to the datastore by a mounted host goes through this guard: 0 if
 * the lease allows a write to start now, else -VCFS_EFENCED (sticky).
 */
int vcfs_hb_write_ok(struct vcfs_hb *hb);
int vcfs_hb_fenced(const struct vcfs_hb *hb);
/* Fence on purpose (a metadata write failed: never retry it). */
void vcfs_hb_fence(struct vcfs_hb *hb, int why);

/* What vcfs hosts shows. */
struct vcfs_slot_info {
	uint32_t slot;
	enum vcfs_hb_state state;
	uint64_t generation, counter;
	char host_name[64];
	uint32_t recoverer;
	int valid;		/* the block is initialised */
	int dead;		/* unchanged for D as seen by this host */
	uint64_t unchanged_ns;	/* how long it has not changed, on our clock */
};
/* Fill info for every slot (n = sb->max_hosts entries). */
int vcfs_hb_slots(struct vcfs_hb *hb, struct vcfs_slot_info *info);
/* Offline: read the slots once, no liveness judgement (dead = 0). */
int vcfs_hb_read_slots(struct vcfs_disk *d, const struct vcfs_sb *sb,
		       struct vcfs_slot_info *info);
/*
 * Offline liveness check for mkfs/fsck: watch the slots for `ns` and return
 * the number whose counter changed (live hosts), 0 if none.
 */
int vcfs_hb_count_live(struct vcfs_disk *d, const struct vcfs_sb *sb, uint64_t ns);

/*
 * Recover slot if it is dead (0 done or nothing to do, -EBUSY if alive or
 * another live host is recovering it, -EOPNOTSUPP if hb has no recover fn,
 * -EDEADLK from inside a recover callback, -VCFS_EFENCED if we are fenced).
 */
int vcfs_hb_recover(struct vcfs_hb *hb, uint32_t slot);

/*
 * How this host judges a lock holder entry (slot, low 32 bits of gen); used by
 * lock.c.  Decided on the monitor's view of the slot, re-read from disk when
 * the view does not show that generation (the view may predate the holder's
 * join).  A slot whose block is corrupt counts as LIVE (never broken).
 */
enum vcfs_holder_state {
	VCFS_HOLDER_STALE = 0,	/* slot FREE or at another generation */
	VCFS_HOLDER_LIVE = 1,	/* valid; the host renews (or is being
				 * recovered by a live host) */
	VCFS_HOLDER_DEAD = 2,	/* valid, but recoverable now: LIVE and unchanged
				 * for D, or RECOVERING by a dead host */
};
/* An enum vcfs_holder_state, or a negative error (reading the slot). */
int vcfs_hb_holder_state(struct vcfs_hb *hb, uint32_t slot, uint32_t gen32);
/*
 * A read-only observer of the heartbeat region (a read-only mount): no slot,
 * no threads, nothing written.  Only vcfs_hb_holder_state is for it: it
 * judges holders as a member's monitor does (the same views: dead once a
 * slot has not changed for D on our clock, a corrupt slot LIVE, RECOVERING by
 * a dead recoverer DEAD), reading every slot when its last look is older than
 * T/4.  A holder long dead therefore costs one D at the first contact.  Free
 * it with vcfs_hb_abandon.
 */
int vcfs_hb_observe(struct vcfs_disk *d, const struct vcfs_sb *sb, struct vcfs_hb **out);

/*
 * Simulation seam (tests/disk/sim.c, tests/disk/crashmh.c).  With a driver
 * installed, vcfs_hb_join starts neither the renewal nor the monitor thread;
 * it tells the driver of the new hb (joined = 1) after a successful join, and
 * leave/abandon tell it (joined = 0) before the hb is freed.  The driver then
 * runs one iteration of the renewal loop (vcfs_hb_renew_tick: renew once
 * from the image last written, fence on a miscompare or an expired lease, or
 * call on_fence once when fenced) and of the monitor loop
 * (vcfs_hb_monitor_tick: read every slot, recover those dead for D) whenever
 * its own schedule says R has passed, on the clock it installed with
 * vcfs_clock_set.  The protocol is the threads' own: a tick is exactly one
 * pass of their loop.  Process-wide; install before joining, never change it
 * while an hb is joined.  NULL restores the threads.
 */
typedef void (*vcfs_hb_driver_fn)(void *arg, struct vcfs_hb *hb, int joined);
void vcfs_hb_set_driver(vcfs_hb_driver_fn fn, void *arg);
void vcfs_hb_renew_tick(struct vcfs_hb *hb);
void vcfs_hb_monitor_tick(struct vcfs_hb *hb);

/* ---- lock records ---- */
#define VCFS_LOCK_WAIT	(1u << 0)	/* wait for live holders (bounded) */
#define VCFS_LOCK_PEEK	(1u << 1)	/* only wait until it could be taken */

struct vcfs_lock_info {
	enum vcfs_lock_mode mode;
	uint64_t seq, obj_version;
	uint64_t claim_seq;	/* seq of the CAS that set the standing claim */
	uint32_t nholders;
	struct { uint32_t slot; uint32_t gen; int stale; int claim; }
		holders[VCFS_LOCK_HOLDERS];
};

/*
 * Take the lock record at blkno in mode.  flags VCFS_LOCK_WAIT: wait up to
 * wait_ms for live holders -- counted from the last time the record changed
 * (a lock that keeps changing hands is busy, not stuck), at most 6 x wait_ms
 * in all; waits back off with jitter.  On -EBUSY, *busy (if given) names a
 * holder.
 * *obj_version receives the record's obj_version (cache validation).
 * -EDEADLK if this host (slot and generation) already holds the record in any
 * mode: callers count their own opens; there is no in-place upgrade.
 * -EBUSY also when all VCFS_LOCK_HOLDERS entries are taken by live sharers.
 * -VCFS_ECORRUPT for a damaged record (logged), -VCFS_EFENCED when fenced.
 * VCFS_LOCK_PEEK: the same wait (dead holders recovered, the same bounds),
 * but at the point where the record could be taken return 0 without taking
 * it -- also when this host holds it already: the caller decides.  For a
 * caller that must not wait while holding its own mutex (fs/: op_mu), then
 * takes the record under it without waiting (and may lose a race).
 */
int vcfs_lock_acquire(struct vcfs_hb *hb, uint64_t blkno, enum vcfs_lock_mode mode,
		      unsigned flags, uint32_t wait_ms, uint64_t *obj_version,
		      struct vcfs_lock_info *busy);
/* Drop our entry; with bump, obj_version + 1 in the same CAS.  -ESTALE if
 * our entry is no longer there (the lock was broken). */
int vcfs_lock_release(struct vcfs_hb *hb, uint64_t blkno, int bump);
/* Bump obj_version while holding it EXCL (or MW: a writer too); -EPERM in
 * RO, -ESTALE if our entry is gone. */
int vcfs_lock_bump(struct vcfs_hb *hb, uint64_t blkno);
/*
 * Map-change claim on a record this host holds MW (a flag, VCFS_LH_CLAIM, on
 * our own holder entry; claim_seq = the seq of the CAS that set it).  At most
 * one entry has it; it coexists with every MW holder and dies with its entry
 * (release, or the holder's slot recovered: a dead host's claim is stale
 * once its journal is replayed).  Whoever changes the object's block map
 * while others share it MW holds the claim across re-read, change, journal
 * commit and home writes, and drops it with vcfs_lock_unclaim(bump).
 * *others: live MW holders besides us (a change that could invalidate their
 * cached maps -- freeing, shrinking -- must not run while it is non-zero; a
 * holder that joins while we hold the claim waits for it, see claim_wait).
 * -EBUSY (another live claimer past wait_ms; busy names it), -ESTALE (we do
 * not hold the record), -EINVAL (not MW), -EDEADLK (already claimed by us).
 */
int vcfs_lock_claim(struct vcfs_hb *hb, uint64_t blkno, unsigned flags, uint32_t wait_ms,
		    uint32_t *others, struct vcfs_lock_info *busy);
int vcfs_lock_unclaim(struct vcfs_hb *hb, uint64_t blkno, int bump);
/*
 * Wait (up to wait_ms) until no other live host's claim stands on a record
 * we hold MW, recovering a dead claimer; only_older: ignore claims set after
 * this call first read the record (a new holder loading the object waits
 * only for changes that did not count it).  *seq: the record's seq then.
 */
int vcfs_lock_claim_wait(struct vcfs_hb *hb, uint64_t blkno, int only_older, uint32_t wait_ms,
			 uint64_t *seq);
/* Still ours?  0 yes, -VCFS_EFENCED / -ESTALE if it was broken. */
int vcfs_lock_check(struct vcfs_hb *hb, uint64_t blkno);
/* Read a record (offline too: hb may be NULL, then stale = 0). */
int vcfs_lock_read(struct vcfs_disk *d, const struct vcfs_sb *sb, struct vcfs_hb *hb,
		   uint64_t blkno, struct vcfs_lock_info *out);
const char *vcfs_lock_mode_name(enum vcfs_lock_mode m);
/* Host name of a slot as last written in its heartbeat (for messages). */
void vcfs_hb_slot_name(struct vcfs_hb *hb, uint32_t slot, char *buf, size_t len);

#endif
