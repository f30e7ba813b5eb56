/*
 * hb.c - heartbeat slots: membership, the write lease, fencing, dead-host
 * detection and recovery.  The protocol is in lock.h, the timing argument in
 * docs/architecture.md ("Timing: one I/O timeout, one timeline").
 *
 * Threads of one struct vcfs_hb:
 *   renewal  CASes our slot every R from the image it last wrote.  It is the
 *            only writer of our slot while we are joined and waits for nothing
 *            but the disk and its own timer: the monitor, recoveries and lock
 *            callers can never delay a renewal.
 *   monitor  reads every slot every R and keeps, per slot, the time on our
 *            clock when its (state, generation, counter) last changed; with
 *            opts.recover it recovers slots that stayed unchanged for D.
 *   callers  vcfs_hb_write_ok (lease check), vcfs_hb_recover, lock.c.
 * With a driver installed (vcfs_hb_set_driver, for the simulator) neither
 * thread is started: the driver runs each loop's body, renew_once and
 * monitor_pass, through vcfs_hb_renew_tick / vcfs_hb_monitor_tick.
 *
 * Invariants:
 *  - lease_start is the START time of the last renewal that succeeded (the
 *    claim counts as one).  A write may start only while
 *    now - lease_start <= F - T; it then lands by lease_start + F.
 *  - fenced, once set, is never cleared.  A fenced host writes nothing more,
 *    not even its heartbeat, so survivors see it dead after D and recover it.
 *  - a slot's "changed" time is taken AFTER the read that first returned the
 *    current value, so it is never earlier than the write that put the value
 *    on disk (an observer that knows nothing yet never declares anyone dead
 *    before watching for D itself).
 *  - a view that two reads update out of order only looks "changed" more
 *    often: that delays a death verdict, never hastens it.
 *
 * Lock order: rec_mu (one recovery at a time) before view_mu; mu (stop flag
 * and timers) is never held with either.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include "lock.h"
#include "../common/clock.h"
#include "../common/log.h"
#include "../common/vcfs_err.h"

/* What this host last knew of one slot; protected by hb->view_mu. */
struct slot_view {
	int known;			/* read at least once */
	int corrupt;			/* our signature but a bad crc or type */
	uint8_t raw[VCFS_RECORD_SIZE];	/* the record as last read */
	struct vcfs_slot_info si;	/* decoded (si.valid: initialised) */
	uint64_t changed_ns;		/* our clock, after the read that first
					 * returned (state, generation, counter) */
	uint64_t retry_after_ns;	/* a failed recovery waits until then */
};

/* The hb whose recover callback this thread is running (re-entry guard). */
static _Thread_local const struct vcfs_hb *in_recover;

/* Simulation seam (lock.h, vcfs_hb_set_driver): the installed driver, or NULL
 * for the renewal and monitor threads. */
static vcfs_hb_driver_fn hb_driver;
static void *hb_driver_arg;

struct vcfs_hb {
	struct vcfs_disk *d;
	struct vcfs_sb sb;
	struct vcfs_hb_timing tm;
	vcfs_recover_fn recover;
	void *recover_arg;
	vcfs_fence_fn on_fence;
	void *fence_arg;
	uint32_t slot, lsec;
	uint64_t gen;
	char name[64];

	/* Our slot; owned by the renewal thread while it runs, then by leave. */
	uint8_t *mine;		/* block image we last wrote (4 KiB) */
	uint8_t *next;		/* image being written */
	uint8_t *unsure;	/* an attempt that failed with an I/O error: it
				 * may have landed all the same */
	int have_unsure;
	_Atomic int last_err;	/* last renewal error, for the fence message */

	_Atomic uint64_t lease_start;
	_Atomic int fenced;	/* 0, or why (a negative error) */

	pthread_mutex_t mu;	/* protects stop; cv wakes both threads */
	pthread_cond_t cv;
	int stop;
	int threads;		/* both threads were started */
	pthread_t renew_thr, mon_thr;

	pthread_mutex_t rec_mu;	/* one recovery at a time; before view_mu */
	_Atomic int rec_busy;	/* a recovery is under way on this host */

	pthread_mutex_t view_mu;
	struct slot_view *views;	/* max_hosts entries */
	uint8_t *mon_buf;		/* max_hosts blocks: the monitor thread's, or
					 * an observer's refreshing caller's */
	int mon_last_rc;		/* monitor: last error reported */

	int observer;		/* vcfs_hb_observe: no slot, no threads */
	int observing;		/* observer: a caller is reading every slot */
	uint64_t observed_ns;	/* observer: when every slot was last read
				 * (view_mu, both) */

	int driven;		/* no threads: a driver ticks us (lock.h) */
	int fence_told;		/* driven: on_fence was called */
	uint8_t *tick_seen;	/* driven: renewal's scratch block */
};

static const char *state_name(uint32_t st)
{
	switch (st) {
	case VCFS_HB_FREE:	 return "FREE";
	case VCFS_HB_LIVE:	 return "LIVE";
	case VCFS_HB_RECOVERING: return "RECOVERING";
	}
	return "?";
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* ---- timing ---- */

void vcfs_hb_timing_from(uint32_t io_timeout_ms, struct vcfs_hb_timing *out)
{
	uint64_t t = (uint64_t)io_timeout_ms * VCFS_NS_PER_MS;

	out->t_ns = t;
	out->renew_ns = t;			/* R = T */
	out->fence_ns = 4 * t;			/* F = 4T */
	out->dead_ns = out->fence_ns + 2 * t + out->renew_ns;	/* D = F + 2T + R */
}

int vcfs_hb_timing_ok(const struct vcfs_hb_timing *tm)
{
	if (!tm->t_ns || !tm->renew_ns) {
		vcfs_err("heartbeat timing: the I/O timeout and the renewal interval "
			 "must not be zero");
		return -EINVAL;
	}
	if (tm->fence_ns <= tm->t_ns + tm->renew_ns) {
		vcfs_err("heartbeat timing: F (%.0f ms) - T (%.0f ms) must exceed R "
			 "(%.0f ms), or a host fences between two renewals",
			 ms(tm->fence_ns), ms(tm->t_ns), ms(tm->renew_ns));
		return -EINVAL;
	}
	if (tm->dead_ns <= tm->fence_ns + tm->t_ns) {
		vcfs_err("heartbeat timing: D (%.0f ms) must exceed F + T (%.0f ms): a "
			 "host could be declared dead while its last write is in flight",
			 ms(tm->dead_ns), ms(tm->fence_ns + tm->t_ns));
		return -EINVAL;
	}
	return 0;
}

/* ---- slot blocks ---- */

static uint64_t slot_off(const struct vcfs_sb *sb, uint32_t s)
{
	return vcfs_hb_blk(sb, s) * VCFS_BLK;
}

/*
 * Decode one slot block.  Returns vcfs_mhdr_check's verdict: 0 valid, 1 not
 * initialised (FREE), -VCFS_ECORRUPT (logged by the check).
 */
static int slot_decode(const struct vcfs_sb *sb, uint32_t s, const void *blk,
		       struct vcfs_slot_info *si)
{
	const struct vcfs_hb_disk *h = blk;
	int rc = vcfs_mhdr_check(blk, VCFS_T_HB, vcfs_hb_blk(sb, s), sb->volgen);

	memset(si, 0, sizeof(*si));
	si->slot = s;
	si->state = VCFS_HB_FREE;
	si->recoverer = VCFS_NO_SLOT;
	if (rc)
		return rc;
	si->valid = 1;
	si->state = (enum vcfs_hb_state)le32_get(h->state);
	si->generation = le64_get(h->generation);
	si->counter = le64_get(h->counter);
	si->recoverer = le32_get(h->recoverer);
	memcpy(si->host_name, h->host_name, sizeof(si->host_name) - 1);
	if (si->state > VCFS_HB_RECOVERING) {
		vcfs_err("heartbeat slot %u: unknown state %u", s, (unsigned)si->state);
		return -VCFS_ECORRUPT;
	}
	return 0;
}

static uint64_t recoverer_gen_of(const uint8_t *raw)
{
	return le64_get(((const struct vcfs_hb_disk *)(const void *)raw)->recoverer_gen);
}

/*
 * Build the next image of slot s from its current block cur: copy, let the
 * caller change fields, then bump seq, name the writer and seal.
 */
static void slot_seal(struct vcfs_hb *hb, uint32_t s, void *img)
{
	struct vcfs_hb_disk *h = img;

	vcfs_mhdr_set_seq(img, vcfs_mhdr_seq(img) + 1);
	h->h.writer = le32_mk(hb->slot);
	vcfs_mhdr_seal(img, VCFS_T_HB, vcfs_hb_blk(&hb->sb, s), hb->sb.volgen);
}

/* CAS slot s from cur (the block as read) to img: exactly lsec bytes. */
static int slot_cas(struct vcfs_hb *hb, uint32_t s, const void *cur, const void *img)
{
	return vcfs_disk_cas(hb->d, slot_off(&hb->sb, s), cur, img);
}

/* ---- views ---- */

/* Record what a read that has just returned saw of slot s.  view_mu held. */
static void view_update_locked(struct vcfs_hb *hb, uint32_t s, const void *blk,
			       uint64_t now)
{
	struct slot_view *v = &hb->views[s];
	struct vcfs_slot_info n;
	int rc, changed;

	if (v->known && !memcmp(v->raw, blk, VCFS_RECORD_SIZE))
		return;		/* same bytes: nothing changed (and no log spam) */
	rc = slot_decode(&hb->sb, s, blk, &n);
	changed = !v->known || n.valid != v->si.valid || n.state != v->si.state ||
		  n.generation != v->si.generation || n.counter != v->si.counter ||
		  (rc < 0) != v->corrupt;
	memcpy(v->raw, blk, VCFS_RECORD_SIZE);
	v->si = n;
	v->corrupt = rc < 0;
	v->known = 1;
	if (changed)
		v->changed_ns = now;
}

static void view_update(struct vcfs_hb *hb, uint32_t s, const void *blk)
{
	pthread_mutex_lock(&hb->view_mu);
	view_update_locked(hb, s, blk, vcfs_now_ns());
	pthread_mutex_unlock(&hb->view_mu);
}

/* Read every slot into buf (max_hosts blocks) and update the views. */
static int observe_all(struct vcfs_hb *hb, uint8_t *buf)
{
	int rc = vcfs_disk_read(hb->d, slot_off(&hb->sb, 0), buf,
				(size_t)hb->sb.max_hosts * VCFS_BLK);
	uint64_t now;

	if (rc)
		return rc;
	pthread_mutex_lock(&hb->view_mu);
	now = vcfs_now_ns();
	for (uint32_t s = 0; s < hb->sb.max_hosts; s++)
		view_update_locked(hb, s, buf + (size_t)s * VCFS_BLK, now);
	pthread_mutex_unlock(&hb->view_mu);
	return 0;
}

/* Read slot s into blk (one block) and update its view. */
static int observe_one(struct vcfs_hb *hb, uint32_t s, uint8_t *blk)
{
	int rc = vcfs_disk_read(hb->d, slot_off(&hb->sb, s), blk, VCFS_BLK);

	if (!rc)
		view_update(hb, s, blk);
	return rc;
}

/* Unchanged for D on our clock, and not FREE.  view_mu held. */
static int view_dead(const struct vcfs_hb *hb, uint32_t s, uint64_t now)
{
	const struct slot_view *v = &hb->views[s];

	return s != hb->slot && v->known && v->si.valid && v->si.state != VCFS_HB_FREE &&
	       now - v->changed_ns >= hb->tm.dead_ns;
}

/*
 * Has the host that recovers slot s (RECOVERING) stopped for good?  Yes if
 * the recoverer's slot moved on to a later generation, was freed at that
 * generation, or looks dead itself.  A view of the recoverer at an EARLIER
 * generation is just older than the claim: not gone.  view_mu held.
 */
static int recoverer_gone(const struct vcfs_hb *hb, uint32_t s, uint64_t now)
{
	const struct slot_view *v = &hb->views[s];
	uint32_t r = v->si.recoverer;
	uint64_t rgen = recoverer_gen_of(v->raw);
	const struct slot_view *rv;

	if (r >= hb->sb.max_hosts)
		return 1;	/* nobody can be recovering it under that name */
	if (r == hb->slot)
		return rgen != hb->gen || !atomic_load(&hb->rec_busy);
	rv = &hb->views[r];
	if (!rv->known || !rv->si.valid)
		return 0;
	if (rv->si.generation > rgen)
		return 1;
	if (rv->si.generation < rgen)
		return 0;
	return rv->si.state == VCFS_HB_FREE || view_dead(hb, r, now);
}

/* Would recovery of slot s proceed now, as far as the views tell?  view_mu held. */
static int view_recoverable(const struct vcfs_hb *hb, uint32_t s, uint64_t now)
{
	const struct slot_view *v = &hb->views[s];

	if (s == hb->slot || !v->known || !v->si.valid || v->corrupt)
		return 0;
	if (v->si.state == VCFS_HB_LIVE)
		return view_dead(hb, s, now);
	if (v->si.state == VCFS_HB_RECOVERING)
		return recoverer_gone(hb, s, now);
	return 0;
}

/* ---- fencing and the lease ---- */

static void wake(struct vcfs_hb *hb)
{
	pthread_mutex_lock(&hb->mu);
	pthread_cond_broadcast(&hb->cv);
	pthread_mutex_unlock(&hb->mu);
}

/* Enter the sticky fenced state (first caller wins and logs why). */
static void set_fenced(struct vcfs_hb *hb, int why, const char *reason)
{
	int expect = 0;

	if (!why)
		why = -VCFS_EFENCED;
	if (!atomic_compare_exchange_strong(&hb->fenced, &expect, why))
		return;
	vcfs_err("heartbeat slot %u (%s): FENCED: %s; this host issues no further "
		 "writes to the datastore (survivors recover its slot after %.1f s)",
		 hb->slot, hb->name, reason, (double)hb->tm.dead_ns / 1e9);
	wake(hb);
}

void vcfs_hb_fence(struct vcfs_hb *hb, int why)
{
	char reason[128];

	snprintf(reason, sizeof(reason), "fenced on purpose (%s)",
		 why ? vcfs_strerror(why) : "no reason given");
	set_fenced(hb, why, reason);
}

int vcfs_hb_fenced(const struct vcfs_hb *hb)
{
	return atomic_load(&((struct vcfs_hb *)hb)->fenced) != 0;
}

/* Lease expired at now?  (The last renewal that succeeded started > F - T ago.) */
static int lease_expired(struct vcfs_hb *hb, uint64_t now)
{
	uint64_t ls = atomic_load(&hb->lease_start);

	return now > ls && now - ls > hb->tm.fence_ns - hb->tm.t_ns;
}

static void fence_expired(struct vcfs_hb *hb, uint64_t now)
{
	char reason[200];

	snprintf(reason, sizeof(reason), "no heartbeat renewal succeeded for %.0f ms "
		 "(limit F - T = %.0f ms; last error: %s)",
		 ms(now - atomic_load(&hb->lease_start)), ms(hb->tm.fence_ns - hb->tm.t_ns),
		 hb->last_err ? vcfs_strerror(hb->last_err) : "none, renewal late");
	set_fenced(hb, -ETIMEDOUT, reason);
}

int vcfs_hb_write_ok(struct vcfs_hb *hb)
{
	uint64_t now;

	if (atomic_load(&hb->fenced))
		return -VCFS_EFENCED;
	now = vcfs_now_ns();
	if (lease_expired(hb, now)) {
		fence_expired(hb, now);
		return -VCFS_EFENCED;
	}
	return 0;
}

/* ---- renewal ---- */

/*
 * CAS our slot from hb->mine to hb->next.  An attempt that failed with an I/O
 * error may still have landed; when the next CAS then miscompares and the
 * slot holds exactly that attempt, adopt it and try again.  Returns 0, an I/O
 * error, or -VCFS_EMISCOMPARE if another host rewrote the slot (*seen then
 * holds what is there).  Renewal thread, or leave after it stopped.
 */
static int cas_own(struct vcfs_hb *hb, uint8_t *seen)
{
	int rc = slot_cas(hb, hb->slot, hb->mine, hb->next);

	if (rc == -VCFS_EMISCOMPARE && hb->have_unsure) {
		int rrc = vcfs_disk_read(hb->d, slot_off(&hb->sb, hb->slot), seen, VCFS_BLK);
		if (rrc)
			return rrc;
		if (memcmp(seen, hb->unsure, hb->lsec))
			return -VCFS_EMISCOMPARE;
		vcfs_info("heartbeat slot %u: a renewal reported failed had landed", hb->slot);
		memcpy(hb->mine, hb->unsure, VCFS_BLK);
		hb->have_unsure = 0;
		return -EAGAIN;		/* rebuild next from mine and retry */
	}
	if (rc == -VCFS_EMISCOMPARE) {
		int rrc = vcfs_disk_read(hb->d, slot_off(&hb->sb, hb->slot), seen, VCFS_BLK);
		if (rrc)
			memset(seen, 0, VCFS_BLK);
	} else if (rc) {
		memcpy(hb->unsure, hb->next, VCFS_BLK);
		hb->have_unsure = 1;
	} else {
		hb->have_unsure = 0;
	}
	return rc;
}

/* One renewal that started at start.  Renewal thread. */
static void renew_once(struct vcfs_hb *hb, uint64_t start, uint8_t *seen)
{
	struct vcfs_hb_disk *n = (struct vcfs_hb_disk *)(void *)hb->next;
	uint64_t ls;
	int rc;

again:
	if (atomic_load(&hb->fenced))
		return;		/* fenced meanwhile (vcfs_hb_fence): not one more write */
	if (lease_expired(hb, start)) {
		fence_expired(hb, start);
		return;
	}
	memcpy(hb->next, hb->mine, VCFS_BLK);
	n->counter = le64_mk(le64_get(n->counter) + 1);
	slot_seal(hb, hb->slot, hb->next);
	rc = cas_own(hb, seen);
	if (rc == -EAGAIN) {
		start = vcfs_now_ns();
		goto again;
	}
	if (!rc) {
		uint8_t *t = hb->mine;
		hb->mine = hb->next;
		hb->next = t;
		ls = atomic_load(&hb->lease_start);
		if (start > ls)
			atomic_store(&hb->lease_start, start);
		if (hb->last_err)
			vcfs_info("heartbeat slot %u: renewal succeeds again", hb->slot);
		hb->last_err = 0;
		return;
	}
	if (rc == -VCFS_EMISCOMPARE) {
		struct vcfs_slot_info si;
		char reason[256];
		slot_decode(&hb->sb, hb->slot, seen, &si);
		snprintf(reason, sizeof(reason), "heartbeat slot %u was rewritten by "
			 "another host (now %s, generation %llu, recoverer %u): it took or "
			 "recovered our slot", hb->slot, state_name(si.state),
			 (unsigned long long)si.generation, si.recoverer);
		set_fenced(hb, -VCFS_EMISCOMPARE, reason);
		return;
	}
	if (!hb->last_err || rc != hb->last_err)
		vcfs_warn("heartbeat slot %u: renewal failed: %s; retrying (lease left "
			  "%.0f ms)", hb->slot, vcfs_strerror(rc),
			  ms(hb->tm.fence_ns - hb->tm.t_ns) -
			  ms(vcfs_now_ns() - atomic_load(&hb->lease_start)));
	hb->last_err = rc;
	if (lease_expired(hb, vcfs_now_ns()))
		fence_expired(hb, vcfs_now_ns());
}

/*
 * Sleep until the injected clock reaches `until` or stop/fence is signalled;
 * the real wait is cut in slices of at most R so a driven clock is honoured.
 * Returns the stop flag.  mu not held.
 */
static int wait_until(struct vcfs_hb *hb, uint64_t until, int wake_on_fence)
{
	int stop;

	pthread_mutex_lock(&hb->mu);
	for (;;) {
		uint64_t now = vcfs_now_ns(), d;
		struct timespec ts;
		if (hb->stop || (wake_on_fence && atomic_load(&hb->fenced)) || now >= until)
			break;
		d = until - now;
		if (d > hb->tm.renew_ns)
			d = hb->tm.renew_ns;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		d += (uint64_t)ts.tv_nsec;
		ts.tv_sec += (time_t)(d / VCFS_NS_PER_S);
		ts.tv_nsec = (long)(d % VCFS_NS_PER_S);
		pthread_cond_timedwait(&hb->cv, &hb->mu, &ts);
	}
	stop = hb->stop;
	pthread_mutex_unlock(&hb->mu);
	return stop;
}

static void *renew_main(void *arg)
{
	struct vcfs_hb *hb = arg;
	uint8_t *seen = vcfs_disk_buf_alloc(VCFS_BLK);
	uint64_t next_at = atomic_load(&hb->lease_start) + hb->tm.renew_ns;

	for (;;) {
		int why, stop = wait_until(hb, next_at, 1);
		uint64_t start;
		if ((why = atomic_load(&hb->fenced))) {
			if (hb->on_fence)
				hb->on_fence(hb->fence_arg, why);
			break;
		}
		if (stop)
			break;
		start = vcfs_now_ns();
		next_at = start + hb->tm.renew_ns;
		if (!seen) {		/* cannot even allocate: do not pretend */
			hb->last_err = -ENOMEM;
			if (lease_expired(hb, start))
				fence_expired(hb, start);
			seen = vcfs_disk_buf_alloc(VCFS_BLK);
			continue;
		}
		renew_once(hb, start, seen);
	}
	free(seen);
	return NULL;
}

/* ---- monitor ---- */

/* One pass of the monitor: read every slot, recover the dead ones. */
static void monitor_pass(struct vcfs_hb *hb)
{
	int rc = observe_all(hb, hb->mon_buf);

	if (rc && rc != hb->mon_last_rc)
		vcfs_warn("heartbeat monitor: reading the slots failed: %s",
			  vcfs_strerror(rc));
	hb->mon_last_rc = rc;
	if (!rc && hb->recover && !atomic_load(&hb->fenced)) {
		for (uint32_t s = 0; s < hb->sb.max_hosts; s++) {
			uint64_t now = vcfs_now_ns();
			int go;
			pthread_mutex_lock(&hb->view_mu);
			go = view_recoverable(hb, s, now) && now >= hb->views[s].retry_after_ns;
			pthread_mutex_unlock(&hb->view_mu);
			if (!go)
				continue;
			rc = vcfs_hb_recover(hb, s);
			if (rc && rc != -EBUSY && rc != -VCFS_EFENCED)
				vcfs_warn("heartbeat monitor: recovery of slot %u failed: %s",
					  s, vcfs_strerror(rc));
			pthread_mutex_lock(&hb->mu);
			rc = hb->stop;
			pthread_mutex_unlock(&hb->mu);
			if (rc || atomic_load(&hb->fenced))
				break;
		}
	}
}

static void *monitor_main(void *arg)
{
	struct vcfs_hb *hb = arg;
	uint64_t next_at = vcfs_now_ns() + hb->tm.renew_ns;

	while (!wait_until(hb, next_at, 0)) {
		next_at = vcfs_now_ns() + hb->tm.renew_ns;
		monitor_pass(hb);
	}
	return NULL;
}

/* ---- simulation seam (lock.h) ---- */

void vcfs_hb_set_driver(vcfs_hb_driver_fn fn, void *arg)
{
	hb_driver = fn;
	hb_driver_arg = arg;
}

/* One iteration of renew_main's loop, run by the driver. */
void vcfs_hb_renew_tick(struct vcfs_hb *hb)
{
	int why = atomic_load(&hb->fenced);

	if (why) {
		if (!hb->fence_told && hb->on_fence)
			hb->on_fence(hb->fence_arg, why);
		hb->fence_told = 1;
		return;
	}
	if (!hb->tick_seen && !(hb->tick_seen = vcfs_disk_buf_alloc(VCFS_BLK))) {
		hb->last_err = -ENOMEM;
		if (lease_expired(hb, vcfs_now_ns()))
			fence_expired(hb, vcfs_now_ns());
		return;
	}
	renew_once(hb, vcfs_now_ns(), hb->tick_seen);
}

/* One iteration of monitor_main's loop, run by the driver. */
void vcfs_hb_monitor_tick(struct vcfs_hb *hb)
{
	monitor_pass(hb);
}

/* ---- recovery ---- */

/*
 * The protocol (lock.h):
 *	S: sees X LIVE with counter unchanged for D (or RECOVERING by a dead host)
 *	S: CAS slot X: RECOVERING, recoverer S, recoverer_gen = S's generation
 *	S: replays X's journal (recover callback)
 *	S: CAS slot X: FREE, generation + 1
 * Two survivors racing:
 *	S1: reads X (LIVE, c)		S2: reads X (LIVE, c)
 *	S1: CAS -> RECOVERING by S1	S2: CAS miscompares: re-reads X, sees it
 *	    replays ...			    changed, and returns -EBUSY
 * so exactly one replays, unless the winner dies and another takes over.
 */
int vcfs_hb_recover(struct vcfs_hb *hb, uint32_t slot)
{
	struct vcfs_hb_disk *img;
	uint8_t *cur = NULL, *next = NULL;
	struct slot_view v;
	uint64_t now;
	int rc, resume = 0;

	if (slot >= hb->sb.max_hosts || slot == hb->slot)
		return -EINVAL;
	if (!hb->recover)
		return -EOPNOTSUPP;
	if (in_recover == hb)
		return -EDEADLK;	/* from inside a recover callback */
	rc = vcfs_hb_write_ok(hb);
	if (rc)
		return rc;
	pthread_mutex_lock(&hb->rec_mu);
	atomic_store(&hb->rec_busy, 1);
	cur = vcfs_disk_buf_alloc(VCFS_BLK);
	next = vcfs_disk_buf_alloc(VCFS_BLK);
	if (!cur || !next) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	rc = observe_one(hb, slot, cur);
	if (rc)
		goto out_unlock;
	pthread_mutex_lock(&hb->view_mu);
	v = hb->views[slot];
	pthread_mutex_unlock(&hb->view_mu);
	if (v.corrupt) {
		rc = -VCFS_ECORRUPT;
		goto out_unlock;
	}
	if (!v.si.valid || v.si.state == VCFS_HB_FREE) {
		rc = 0;		/* nothing to do (somebody finished it) */
		goto out_unlock;
	}
	if (v.si.state == VCFS_HB_RECOVERING) {
		uint32_t r = v.si.recoverer;
		resume = r == hb->slot && recoverer_gen_of(v.raw) == hb->gen;
		if (!resume && r < hb->sb.max_hosts && r != hb->slot) {
			/* read the recoverer AFTER the slot: it shows the claim's
			 * generation or a later one */
			rc = observe_one(hb, r, next);
			if (rc)
				goto out_unlock;
		}
	}
	pthread_mutex_lock(&hb->view_mu);
	now = vcfs_now_ns();
	v = hb->views[slot];
	rc = resume || view_recoverable(hb, slot, now) ? 0 : -EBUSY;
	pthread_mutex_unlock(&hb->view_mu);
	if (rc)
		goto out_unlock;

	if (!resume) {
		memcpy(next, cur, VCFS_BLK);
		img = (struct vcfs_hb_disk *)(void *)next;
		img->state = le32_mk(VCFS_HB_RECOVERING);
		img->recoverer = le32_mk(hb->slot);
		img->recoverer_gen = le64_mk(hb->gen);
		slot_seal(hb, slot, next);
		rc = vcfs_hb_write_ok(hb);
		if (!rc)
			rc = slot_cas(hb, slot, cur, next);
		if (rc == -VCFS_EMISCOMPARE) {
			/* another survivor was first (or the host came back) */
			observe_one(hb, slot, cur);
			rc = -EBUSY;
			goto out_unlock;
		}
		if (rc)
			goto out_unlock;
		memcpy(cur, next, VCFS_BLK);
		view_update(hb, slot, cur);
		if (v.si.state == VCFS_HB_LIVE)
			vcfs_info("heartbeat slot %u (host %.64s, generation %llu) is dead: no "
				  "renewal for %.1f s; slot %u replays its journal", slot,
				  v.si.host_name, (unsigned long long)v.si.generation,
				  (double)(now - v.changed_ns) / 1e9, hb->slot);
		else
			vcfs_info("heartbeat slot %u (host %.64s, generation %llu): its recoverer "
				  "(slot %u) is gone; slot %u takes the recovery over", slot,
				  v.si.host_name, (unsigned long long)v.si.generation,
				  v.si.recoverer, hb->slot);
	} else {
		vcfs_info("heartbeat slot %u: resuming our unfinished recovery", slot);
	}

	in_recover = hb;
	rc = hb->recover(hb->recover_arg, hb, slot);
	in_recover = NULL;
	if (rc) {
		vcfs_err("heartbeat slot %u: replaying its journal failed: %s; the slot "
			 "stays RECOVERING (retried in %.1f s)", slot, vcfs_strerror(rc),
			 (double)hb->tm.dead_ns / 1e9);
		pthread_mutex_lock(&hb->view_mu);
		hb->views[slot].retry_after_ns = vcfs_now_ns() + hb->tm.dead_ns;
		pthread_mutex_unlock(&hb->view_mu);
		goto out_unlock;
	}
	memcpy(next, cur, VCFS_BLK);
	img = (struct vcfs_hb_disk *)(void *)next;
	img->state = le32_mk(VCFS_HB_FREE);
	img->generation = le64_mk(le64_get(img->generation) + 1);
	slot_seal(hb, slot, next);
	rc = vcfs_hb_write_ok(hb);
	if (!rc)
		rc = slot_cas(hb, slot, cur, next);
	if (rc == -VCFS_EMISCOMPARE) {
		vcfs_warn("heartbeat slot %u: another host took over our recovery of it "
			  "(it thought us dead)", slot);
		observe_one(hb, slot, cur);
		rc = -EBUSY;
		goto out_unlock;
	}
	if (rc) {
		vcfs_err("heartbeat slot %u: journal replayed but freeing the slot "
			 "failed: %s", slot, vcfs_strerror(rc));
		goto out_unlock;
	}
	view_update(hb, slot, next);
	vcfs_info("heartbeat slot %u recovered: FREE at generation %llu, its locks "
		  "are released", slot, (unsigned long long)le64_get(img->generation));
out_unlock:
	atomic_store(&hb->rec_busy, 0);
	pthread_mutex_unlock(&hb->rec_mu);
	free(cur);
	free(next);
	return rc;
}

/*
 * An observer has no monitor thread: read every slot when the views are
 * older than T/4 (a member's monitor reads them every T).  One caller reads
 * (into mon_buf) while the others go on with the views they have: a view
 * that does not know a holder yet makes vcfs_hb_holder_state read that one
 * slot itself.
 */
static int observer_refresh(struct vcfs_hb *hb)
{
	uint64_t now = vcfs_now_ns();
	int rc;

	pthread_mutex_lock(&hb->view_mu);
	if (hb->observing || (hb->observed_ns && now - hb->observed_ns < hb->tm.t_ns / 4)) {
		pthread_mutex_unlock(&hb->view_mu);
		return 0;
	}
	hb->observing = 1;
	pthread_mutex_unlock(&hb->view_mu);
	rc = observe_all(hb, hb->mon_buf);
	pthread_mutex_lock(&hb->view_mu);
	hb->observing = 0;
	if (!rc)
		hb->observed_ns = now;
	pthread_mutex_unlock(&hb->view_mu);
	return rc;
}

int vcfs_hb_holder_state(struct vcfs_hb *hb, uint32_t slot, uint32_t gen32)
{
	struct slot_view *v;
	uint8_t *blk;
	int rc, fresh = 0;

	if (slot >= hb->sb.max_hosts)
		return VCFS_HOLDER_STALE;
	if (hb->observer && (rc = observer_refresh(hb)))
		return rc;
	if (slot == hb->slot)
		return gen32 == (uint32_t)hb->gen ? VCFS_HOLDER_LIVE : VCFS_HOLDER_STALE;
	for (;;) {
		pthread_mutex_lock(&hb->view_mu);
		v = &hb->views[slot];
		if (v->known && v->corrupt) {
			rc = VCFS_HOLDER_LIVE;
		} else if (v->known && v->si.valid && v->si.state != VCFS_HB_FREE &&
			   (uint32_t)v->si.generation == gen32) {
			rc = view_recoverable(hb, slot, vcfs_now_ns()) ? VCFS_HOLDER_DEAD :
								       VCFS_HOLDER_LIVE;
		} else {
			rc = fresh ? VCFS_HOLDER_STALE : -1;
		}
		pthread_mutex_unlock(&hb->view_mu);
		if (rc >= 0)
			return rc;
		/* the view may predate the holder's claim: ask the disk (read after
		 * the lock record, so it shows the claim if the entry is valid) */
		blk = vcfs_disk_buf_alloc(VCFS_BLK);
		if (!blk)
			return -ENOMEM;
		rc = observe_one(hb, slot, blk);
		free(blk);
		if (rc)
			return rc;
		fresh = 1;
	}
}

/* ---- join, leave ---- */

static void hb_free(struct vcfs_hb *hb)
{
	if (!hb)
		return;
	pthread_mutex_destroy(&hb->mu);
	pthread_cond_destroy(&hb->cv);
	pthread_mutex_destroy(&hb->rec_mu);
	pthread_mutex_destroy(&hb->view_mu);
	free(hb->views);
	free(hb->mon_buf);
	free(hb->mine);
	free(hb->next);
	free(hb->unsure);
	free(hb->tick_seen);
	free(hb);
}

static void stop_threads(struct vcfs_hb *hb)
{
	if (hb->driven && hb_driver)
		hb_driver(hb_driver_arg, hb, 0);
	hb->driven = 0;
	if (!hb->threads)
		return;
	pthread_mutex_lock(&hb->mu);
	hb->stop = 1;
	pthread_cond_broadcast(&hb->cv);
	pthread_mutex_unlock(&hb->mu);
	pthread_join(hb->renew_thr, NULL);
	pthread_join(hb->mon_thr, NULL);
	hb->threads = 0;
}

/* Try to claim slot s whose block (as read) is cur.  0, -EBUSY (in use or
 * corrupt), -VCFS_EMISCOMPARE (raced) or an I/O error. */
static int claim(struct vcfs_hb *hb, uint32_t s, const uint8_t *cur)
{
	struct vcfs_hb_disk *n = (struct vcfs_hb_disk *)(void *)hb->next;
	struct vcfs_slot_info si;
	uint64_t gen, start;
	int rc = slot_decode(&hb->sb, s, cur, &si);

	if (rc < 0 || (rc == 0 && si.state != VCFS_HB_FREE))
		return -EBUSY;
	memcpy(hb->next, cur, VCFS_BLK);
	if (rc == 1) {
		/* Never initialised (or zeroed by fsck): start the generation at a
		 * random value so that no stale lock entry of an earlier life of
		 * this slot can match it. */
		uint32_t r;
		uuid_t u;
		uuid_generate(u);
		memcpy(&r, u, sizeof(r));
		memset(hb->next, 0, VCFS_RECORD_SIZE);
		gen = (uint64_t)(r | 1u);
	} else {
		gen = si.generation + 1;
	}
	n->state = le32_mk(VCFS_HB_LIVE);
	n->slot = le32_mk(s);
	n->generation = le64_mk(gen);
	n->counter = le64_mk(0);
	n->recoverer = le32_mk(VCFS_NO_SLOT);
	n->io_timeout_ms = le32_mk(hb->sb.io_timeout_ms);
	n->recoverer_gen = le64_mk(0);
	n->mount_time = le64_mk((uint64_t)time(NULL));
	uuid_generate(n->host_uuid);
	memset(n->host_name, 0, sizeof(n->host_name));
	memcpy(n->host_name, hb->name, strlen(hb->name));
	hb->slot = s;
	slot_seal(hb, s, hb->next);
	start = vcfs_now_ns();
	rc = slot_cas(hb, s, cur, hb->next);
	if (rc)
		return rc;
	memcpy(hb->mine, hb->next, VCFS_BLK);
	hb->gen = gen;
	atomic_store(&hb->lease_start, start);
	view_update(hb, s, hb->mine);
	return 0;
}

int vcfs_hb_join(struct vcfs_disk *d, const struct vcfs_sb *sb,
		 const struct vcfs_hb_opts *o, struct vcfs_hb **out)
{
	static const struct vcfs_hb_opts defaults = { .want_slot = -1 };
	const struct vcfs_disk_info *di = vcfs_disk_info(d);
	struct vcfs_hb *hb = calloc(1, sizeof(*hb));
	pthread_condattr_t ca;
	uint8_t *all = NULL;
	uint32_t s, nlive = 0;
	int rc = -ENOMEM;

	*out = NULL;
	if (!o)
		o = &defaults;
	if (!hb)
		return -ENOMEM;
	hb->d = d;
	hb->sb = *sb;
	hb->lsec = di->lsec;
	hb->recover = o->recover;
	hb->recover_arg = o->recover_arg;
	hb->on_fence = o->on_fence;
	hb->fence_arg = o->fence_arg;
	pthread_mutex_init(&hb->mu, NULL);
	pthread_mutex_init(&hb->rec_mu, NULL);
	pthread_mutex_init(&hb->view_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&hb->cv, &ca);
	pthread_condattr_destroy(&ca);
	vcfs_hb_timing_from(sb->io_timeout_ms, &hb->tm);
	if ((rc = vcfs_hb_timing_ok(&hb->tm)))
		goto err_free;
	if (hb->lsec < 512 || hb->lsec > VCFS_BLK) {
		vcfs_err("heartbeat: a %u-byte sector does not fit a record block", hb->lsec);
		rc = -VCFS_EBADSECTOR;
		goto err_free;
	}
	if (o->want_slot >= 0 && (uint32_t)o->want_slot >= sb->max_hosts) {
		vcfs_err("heartbeat: slot %d does not exist (this datastore has %u)",
			 o->want_slot, sb->max_hosts);
		rc = -EINVAL;
		goto err_free;
	}
	if (o->host_name) {
		snprintf(hb->name, sizeof(hb->name), "%s", o->host_name);
	} else if (gethostname(hb->name, sizeof(hb->name) - 1)) {
		snprintf(hb->name, sizeof(hb->name), "pid-%d", (int)getpid());
	}
	hb->views = calloc(sb->max_hosts, sizeof(*hb->views));
	hb->mon_buf = vcfs_disk_buf_alloc((size_t)sb->max_hosts * VCFS_BLK);
	all = vcfs_disk_buf_alloc((size_t)sb->max_hosts * VCFS_BLK);
	hb->mine = vcfs_disk_buf_alloc(VCFS_BLK);
	hb->next = vcfs_disk_buf_alloc(VCFS_BLK);
	hb->unsure = vcfs_disk_buf_alloc(VCFS_BLK);
	rc = -ENOMEM;
	if (!hb->views || !hb->mon_buf || !all || !hb->mine || !hb->next || !hb->unsure)
		goto err_free;

	hb->slot = VCFS_NO_SLOT;
	rc = observe_all(hb, all);
	if (rc) {
		vcfs_err("heartbeat: reading the slots failed: %s", vcfs_strerror(rc));
		goto err_free;
	}
	rc = -EUSERS;
	for (s = 0; s < sb->max_hosts; s++) {
		uint8_t *cur = all + (size_t)s * VCFS_BLK;
		if (o->want_slot >= 0 && s != (uint32_t)o->want_slot)
			continue;
		for (int tries = 0; tries < 8; tries++) {
			rc = claim(hb, s, cur);
			if (rc != -VCFS_EMISCOMPARE)
				break;
			/* raced with another host: look again */
			if ((rc = observe_one(hb, s, cur)))
				break;
			rc = -VCFS_EMISCOMPARE;
		}
		if (!rc)
			break;
		if (rc != -EBUSY && rc != -VCFS_EMISCOMPARE) {
			vcfs_err("heartbeat: claiming slot %u failed: %s", s, vcfs_strerror(rc));
			goto err_free;
		}
	}
	if (rc) {
		pthread_mutex_lock(&hb->view_mu);
		for (s = 0; s < sb->max_hosts; s++)
			nlive += hb->views[s].si.state != VCFS_HB_FREE || hb->views[s].corrupt;
		pthread_mutex_unlock(&hb->view_mu);
		if (o->want_slot >= 0) {
			vcfs_err("heartbeat: slot %d is in use", o->want_slot);
			rc = -EBUSY;
		} else {
			vcfs_err("heartbeat: all %u heartbeat slots of this datastore are in use "
				 "(%u marked live or recovering); the limit is set at format "
				 "time (mkfs.vcfs -H)", sb->max_hosts, nlive);
			rc = -EUSERS;
		}
		goto err_free;
	}
	free(all);
	all = NULL;

	hb->driven = hb_driver != NULL;
	if (hb->driven)
		goto started;	/* the driver ticks renewal and monitor */
	if ((rc = -pthread_create(&hb->renew_thr, NULL, renew_main, hb)))
		goto err_leave;
	if ((rc = -pthread_create(&hb->mon_thr, NULL, monitor_main, hb))) {
		pthread_mutex_lock(&hb->mu);
		hb->stop = 1;
		pthread_cond_broadcast(&hb->cv);
		pthread_mutex_unlock(&hb->mu);
		pthread_join(hb->renew_thr, NULL);
		goto err_leave;
	}
	hb->threads = 1;
started:
	vcfs_info("joined as heartbeat slot %u (host %s, generation %llu): renew every "
		  "%.0f ms, fence after %.0f ms without renewal, others dead after %.0f ms",
		  hb->slot, hb->name, (unsigned long long)hb->gen, ms(hb->tm.renew_ns),
		  ms(hb->tm.fence_ns - hb->tm.t_ns), ms(hb->tm.dead_ns));
	*out = hb;
	if (hb->driven)
		hb_driver(hb_driver_arg, hb, 1);
	return 0;

err_leave:
	vcfs_err("heartbeat: cannot start threads: %s", vcfs_strerror(rc));
	{
		struct vcfs_hb_disk *n = (struct vcfs_hb_disk *)(void *)hb->next;
		memcpy(hb->next, hb->mine, VCFS_BLK);
		n->state = le32_mk(VCFS_HB_FREE);
		slot_seal(hb, hb->slot, hb->next);
		slot_cas(hb, hb->slot, hb->mine, hb->next);
	}
err_free:
	free(all);
	hb_free(hb);
	return rc;
}

int vcfs_hb_leave(struct vcfs_hb *hb)
{
	uint8_t *seen = vcfs_disk_buf_alloc(VCFS_BLK);
	int rc;

	stop_threads(hb);	/* before touching mine/next: renewals swap them */
	rc = seen ? vcfs_hb_write_ok(hb) : -ENOMEM;
	while (!rc) {
		struct vcfs_hb_disk *n = (struct vcfs_hb_disk *)(void *)hb->next;
		memcpy(hb->next, hb->mine, VCFS_BLK);
		n->state = le32_mk(VCFS_HB_FREE);
		slot_seal(hb, hb->slot, hb->next);
		rc = cas_own(hb, seen);
		if (rc != -EAGAIN)
			break;
		rc = vcfs_hb_write_ok(hb);
	}
	if (rc == -VCFS_EMISCOMPARE) {
		struct vcfs_slot_info a, b;
		slot_decode(&hb->sb, hb->slot, hb->mine, &a);
		slot_decode(&hb->sb, hb->slot, seen, &b);
		vcfs_err("heartbeat slot %u: rewritten by another host: we wrote %s gen %llu "
			 "counter %llu seq %llu, the slot holds %s gen %llu counter %llu seq "
			 "%llu writer %u", hb->slot, state_name(a.state),
			 (unsigned long long)a.generation, (unsigned long long)a.counter,
			 (unsigned long long)vcfs_mhdr_seq(hb->mine), state_name(b.state),
			 (unsigned long long)b.generation, (unsigned long long)b.counter,
			 (unsigned long long)vcfs_mhdr_seq(seen),
			 le32_get(((struct vcfs_mhdr *)(void *)seen)->writer));
		rc = -VCFS_EFENCED;	/* someone took the slot: not ours to free */
	}
	if (rc)
		vcfs_warn("heartbeat slot %u: left without freeing it (%s); survivors "
			  "recover it after %.1f s", hb->slot, vcfs_strerror(rc),
			  (double)hb->tm.dead_ns / 1e9);
	else
		vcfs_info("heartbeat slot %u: left the cluster", hb->slot);
	free(seen);
	hb_free(hb);
	return rc;
}

int vcfs_hb_observe(struct vcfs_disk *d, const struct vcfs_sb *sb, struct vcfs_hb **out)
{
	struct vcfs_hb *hb = calloc(1, sizeof(*hb));

	*out = NULL;
	if (!hb)
		return -ENOMEM;
	hb->d = d;
	hb->sb = *sb;
	hb->lsec = vcfs_disk_info(d)->lsec;
	hb->slot = VCFS_NO_SLOT;
	hb->observer = 1;
	pthread_mutex_init(&hb->mu, NULL);
	pthread_cond_init(&hb->cv, NULL);
	pthread_mutex_init(&hb->rec_mu, NULL);
	pthread_mutex_init(&hb->view_mu, NULL);
	vcfs_hb_timing_from(sb->io_timeout_ms, &hb->tm);
	hb->views = calloc(sb->max_hosts, sizeof(*hb->views));
	hb->mon_buf = vcfs_disk_buf_alloc((size_t)sb->max_hosts * VCFS_BLK);
	if (!hb->views || !hb->mon_buf) {
		hb_free(hb);
		return -ENOMEM;
	}
	*out = hb;
	return 0;
}

void vcfs_hb_abandon(struct vcfs_hb *hb)
{
	stop_threads(hb);
	hb_free(hb);
}

/* ---- accessors and inspection ---- */

uint32_t vcfs_hb_slot(const struct vcfs_hb *hb)
{
	return hb->slot;
}

uint64_t vcfs_hb_generation(const struct vcfs_hb *hb)
{
	return hb->gen;
}

struct vcfs_disk *vcfs_hb_disk(const struct vcfs_hb *hb)
{
	return hb->d;
}

const struct vcfs_sb *vcfs_hb_sb(const struct vcfs_hb *hb)
{
	return &hb->sb;
}

int vcfs_hb_slots(struct vcfs_hb *hb, struct vcfs_slot_info *info)
{
	uint8_t *buf = vcfs_disk_buf_alloc((size_t)hb->sb.max_hosts * VCFS_BLK);
	uint64_t now;
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = observe_all(hb, buf);
	free(buf);
	if (rc)
		return rc;
	pthread_mutex_lock(&hb->view_mu);
	now = vcfs_now_ns();
	for (uint32_t s = 0; s < hb->sb.max_hosts; s++) {
		const struct slot_view *v = &hb->views[s];
		info[s] = v->si;
		info[s].dead = view_dead(hb, s, now);
		info[s].unchanged_ns = now - v->changed_ns;
	}
	pthread_mutex_unlock(&hb->view_mu);
	return 0;
}

int vcfs_hb_read_slots(struct vcfs_disk *d, const struct vcfs_sb *sb,
		       struct vcfs_slot_info *info)
{
	uint8_t *buf = vcfs_disk_buf_alloc((size_t)sb->max_hosts * VCFS_BLK);
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = vcfs_disk_read(d, slot_off(sb, 0), buf, (size_t)sb->max_hosts * VCFS_BLK);
	for (uint32_t s = 0; !rc && s < sb->max_hosts; s++)
		slot_decode(sb, s, buf + (size_t)s * VCFS_BLK, &info[s]);
	free(buf);
	return rc;
}

/*
 * Watch the slots for ns (reading every T) and count those whose
 * (state, generation, counter) changed and that end LIVE.  Returns early once
 * every slot that was in use at the start has been seen changing.
 */
int vcfs_hb_count_live(struct vcfs_disk *d, const struct vcfs_sb *sb, uint64_t ns)
{
	struct vcfs_slot_info *first = calloc(sb->max_hosts, sizeof(*first));
	struct vcfs_slot_info *now = calloc(sb->max_hosts, sizeof(*now));
	uint8_t *changed = calloc(sb->max_hosts, 1);
	uint64_t t = (uint64_t)sb->io_timeout_ms * VCFS_NS_PER_MS, start, el;
	int rc = -ENOMEM, live = 0;

	if (!first || !now || !changed)
		goto out;
	rc = vcfs_hb_read_slots(d, sb, first);
	if (rc)
		goto out;
	start = vcfs_now_ns();
	while ((el = vcfs_now_ns() - start) < ns) {
		uint32_t inuse = 0, seen = 0;
		vcfs_sleep_ns(ns - el < t ? ns - el : t);
		rc = vcfs_hb_read_slots(d, sb, now);
		if (rc)
			goto out;
		for (uint32_t s = 0; s < sb->max_hosts; s++) {
			if (now[s].state != first[s].state || now[s].generation != first[s].generation ||
			    now[s].counter != first[s].counter || now[s].valid != first[s].valid)
				changed[s] = 1;
			if (first[s].state != VCFS_HB_FREE) {
				inuse++;
				seen += changed[s];
			}
		}
		if (inuse && seen == inuse)
			break;
	}
	rc = vcfs_hb_read_slots(d, sb, now);
	if (rc)
		goto out;
	for (uint32_t s = 0; s < sb->max_hosts; s++)
		live += changed[s] && now[s].state == VCFS_HB_LIVE;
	rc = live;
out:
	free(first);
	free(now);
	free(changed);
	return rc;
}

void vcfs_hb_slot_name(struct vcfs_hb *hb, uint32_t slot, char *buf, size_t len)
{
	if (!len)
		return;
	if (slot >= hb->sb.max_hosts) {
		snprintf(buf, len, "slot %u?", slot);
		return;
	}
	if (slot == hb->slot) {
		snprintf(buf, len, "%s", hb->name);
		return;
	}
	pthread_mutex_lock(&hb->view_mu);
	if (hb->views[slot].si.valid && hb->views[slot].si.host_name[0])
		snprintf(buf, len, "%.63s", hb->views[slot].si.host_name);
	else
		snprintf(buf, len, "slot %u", slot);
	pthread_mutex_unlock(&hb->view_mu);
}
