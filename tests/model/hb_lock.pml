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
#define MAXT 16

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
	:: atomic { !wr_pending && !a_fenced && now < a_last_ok + F && now >= a_next_wr ->
		wr_pending = true; wr_deadline = now + T; a_next_wr = now + 1 }
	/* a write lands */
	:: atomic { wr_pending ->
		assert(!taken);
		wr_pending = false }
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
	/* acquire: the holder entry is stale once its generation is old */
	:: atomic { lk_holder == 1 && lk_gen != hb_gen ->
		lk_holder = me; lk_gen = 0; taken = true }
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
