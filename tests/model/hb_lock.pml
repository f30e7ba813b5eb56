/*
 * hb_lock.pml - a Promela model of vcfs's heartbeat, lock, recovery and
 * self-fencing protocol (lock/lock.h, lock/hb.c, docs/architecture.md), checked
 * by spin in the test command (tests/model_spin.sh).
 *
 * Host A holds an exclusive lock record and writes under it.  Hosts B and C
 * watch A's heartbeat slot; either may declare A dead, claim its recovery by
 * compare-and-write of A's slot (vcfs_hb_recover), replay A's journal
 * (vcfs_recover_fn), bump A's generation (slot FREE, generation + 1) and then
 * take the lock (vcfs_lock_acquire: an entry with an old generation is stale).
 *
 * What may go wrong is all allowed: A may pause for any time (it simply takes
 * no steps), its renewals and writes may fail or take up to T to land, reads
 * and compare-and-writes of the others happen at any time.  The clock never
 * passes the deadline of an I/O in flight: the storage assumption (a request
 * completes or is dropped within T), as in sanlock.
 *
 * Checked:
 *   - no write of A lands once another host holds A's lock (split brain);
 *   - A's journal is replayed at most once per generation;
 *   - the lock is taken by at most one of B and C.
 *
 * -DMW: the record is multi-writer, held by A and B together, and what A
 * writes is a map change under the map-change claim (VCFS_LH_CLAIM on A's
 * holder entry, lock.h): A takes the claim by CAS when no valid entry has
 * it, writes, and drops it only after its writes landed; B takes it when it
 * is free or its holder's generation is old (A recovered).  B re-reads the
 * map (mw_refresh) after claim_wait saw no valid claim at record seq s, and
 * keeps what it read only if the record still has seq s after.  Checked: no
 * map write of A lands while B holds the claim, nor during a read of the map
 * that B keeps.  tests/model_spin.sh runs -DMW -DMAXT=11 (3 million states:
 * A's death, B's recovery and B's claim fit in 11 ticks; with D = F it finds
 * the violation); the map-read part needs -DMWREAD too (16 million states,
 * about a minute of CPU: run by hand).
 * Timing constants in ticks (T = 1): R = T, F = 4T, D = F + 2T + R.
 * tests/model_spin.sh also runs it with D = F (a wrong rule) and requires
 * spin to find the split brain, so the check itself can fail.
 */
#ifndef T
#define T 1
#endif
#define R T
#define F (4 * T)
#ifndef D
#define D (F + 2 * T + R)
#endif
#ifndef MAXT
#define MAXT 16	/* ticks explored (the MW run uses 11: a bigger state) */
#endif

#define FREE 0
#define LIVE 1
#define RECOVERING 2

byte now = 0;

/* A's heartbeat slot on disk (struct vcfs_hb_disk) */
byte hb_state = LIVE;
byte hb_gen = 1;
byte hb_counter = 0;
byte hb_recoverer = 0;

/* the lock record (struct vcfs_lock_disk): holder slot and its generation */
byte lk_holder = 1;	/* 1 = A, 2 = B, 3 = C */
byte lk_gen = 1;

/* A's requests in flight */
bool ren_pending = false;
byte ren_issue, ren_deadline;
bool wr_pending = false;
byte wr_deadline;
byte a_last_ok = 0;	/* start time of A's last successful renewal */
byte a_next_ren = 0;	/* renewals start at most once per R */
byte a_next_wr = 0;	/* and writes at most once per tick (bounds the model) */
bool a_fenced = false;

byte replays = 0;	/* of A's journal, generation 1 */
bool taken = false;	/* another host holds A's former lock */

#ifdef MW
byte claim = 0;		/* holder entry with VCFS_LH_CLAIM: 0 none, 1 A, 2 B */
byte claim_gen = 0;	/* A's generation in its entry when A has it */
bool a_claims = false;	/* A believes it holds the claim */
bool b_claims = false;
bool b_reading = false;	/* B re-reads the map (between claim_wait and the
			 * record re-read) */
bool rec_changed = false;	/* the record's seq moved during B's read */
bool landed_in_read = false;	/* a map write of A landed during B's read */
#define A_MAY_WRITE a_claims	/* map writes only under the claim */
#else
#define A_MAY_WRITE true
#endif

active proctype Clock()
{
	do
	:: atomic { now < MAXT &&
		(!ren_pending || now < ren_deadline) &&
		(!wr_pending || now < wr_deadline) -> now++ }
	:: now >= MAXT -> break
	od
}

/* Host A: renews (vcfs_hb renewal thread) and writes under its lock. */
active proctype A()
{
#ifdef RACE
	false;	/* A never takes a step: it died at time 0 */
#endif
	do
	/* start a renewal: compare-and-write of its own slot */
	:: atomic { !ren_pending && !a_fenced && now >= a_next_ren ->
		ren_pending = true; ren_issue = now; ren_deadline = now + T;
		a_next_ren = now + R }
	/* the renewal lands: atomic at the target against what A last wrote */
	:: atomic { ren_pending ->
		if
		:: hb_state == LIVE && hb_gen == 1 ->
			hb_counter++; a_last_ok = ren_issue
		:: else ->
			a_fenced = true	/* slot taken: fence */
		fi;
		ren_pending = false }
	/* the renewal fails or times out */
	:: atomic { ren_pending -> ren_pending = false }
	/* the lease guard (vcfs_hb_write_ok): start a write only before F */
	:: atomic { !wr_pending && !a_fenced && now < a_last_ok + F && now >= a_next_wr &&
		A_MAY_WRITE -> wr_pending = true; wr_deadline = now + T; a_next_wr = now + 1 }
	/* a write lands */
	:: atomic { wr_pending ->
#ifdef MW
		assert(!b_claims);
		landed_in_read = landed_in_read || b_reading;
#else
		assert(!taken);
#endif
		wr_pending = false }
#ifdef MW
	/* take the claim: a CAS (lease-guarded) that finds no valid claim */
	:: atomic { !a_claims && !a_fenced && now < a_last_ok + F &&
		(claim == 0 || (claim == 1 && claim_gen != hb_gen)) ->
		claim = 1; claim_gen = 1; a_claims = true; rec_changed = b_reading }
	/* drop it once the op's writes landed (vcfs_lock_unclaim) */
	:: atomic { a_claims && !wr_pending && !a_fenced && now < a_last_ok + F ->
		if
		:: claim == 1 && claim_gen == hb_gen -> claim = 0; rec_changed = b_reading
		:: else -> skip	/* gone: the lock was broken */
		fi;
		a_claims = false }
#endif
	/* a write fails */
	:: atomic { wr_pending -> wr_pending = false }
	/* fence on time: no renewal succeeded for F */
	:: atomic { !a_fenced && now >= a_last_ok + F -> a_fenced = true }
	od
}

/* Hosts B and C: the monitor thread, recovery, and lock acquire. */
proctype Observer(byte me)
{
	byte seen_counter, seen_state, seen_gen, seen_time;
	bool watching = false;

	do
	/* read A's slot; note on our own clock when it last changed */
	:: atomic {
		if
		:: !watching || hb_counter != seen_counter || hb_state != seen_state ||
		   hb_gen != seen_gen ->
			seen_counter = hb_counter; seen_state = hb_state;
			seen_gen = hb_gen; seen_time = now; watching = true
		:: else -> skip
		fi }
	/* unchanged for D: claim the recovery by compare-and-write */
	:: atomic { watching && seen_state == LIVE && now >= seen_time + D ->
		if
		:: hb_state == seen_state && hb_counter == seen_counter && hb_gen == seen_gen ->
			hb_state = RECOVERING; hb_recoverer = me
		:: else -> skip	/* miscompare: someone else won, or A renewed */
		fi }
	/* we won the claim: replay A's journal, then bump its generation */
	:: atomic { hb_state == RECOVERING && hb_recoverer == me ->
		replays++;
		assert(replays <= 1);
		hb_gen++; hb_state = FREE; hb_recoverer = 0 }
#ifndef MW
	/* acquire: the holder entry is stale once its generation is old */
	:: atomic { lk_holder == 1 && lk_gen != hb_gen ->
		lk_holder = me; lk_gen = 0; taken = true }
#else
	/* the claim, when nobody valid has it (A's is stale once A's
	 * generation moved on: recovered) */
	:: atomic { !b_claims && !b_reading &&
		(claim == 0 || (claim == 1 && claim_gen != hb_gen)) ->
		claim = me; b_claims = true }
	:: atomic { b_claims -> claim = 0; b_claims = false }
#ifdef MWREAD
	/* re-reading the map: claim_wait saw no valid claim (seq s) */
	:: atomic { !b_claims && !b_reading &&
		(claim == 0 || (claim == 1 && claim_gen != hb_gen)) ->
		b_reading = true; rec_changed = false; landed_in_read = false }
	/* the record re-read: kept only at the same seq */
	:: atomic { b_reading ->
		assert(rec_changed || !landed_in_read);
		b_reading = false }
#endif
#endif
	od
}

/*
 * Two configurations keep the state space small (tests/model_spin.sh runs both):
 * default: A as above against one observer B (split brain);
 * -DRACE: A silent from the start, observers B and C race to recover it
 * (one replay, one taker).
 */
init
{
	run Observer(2);
#ifdef RACE
	run Observer(3)
#endif
}
