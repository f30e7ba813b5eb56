/*
 * iscsi.c - the iscsi:// backend: a LUN reached through libiscsi, shared by
 * every host that mounts the datastore.
 *
 *   iscsi://[user%password@]host[:port]/target-iqn/lun
 *
 * ---- Shape ----
 * One iscsi_context (one session, one TCP connection) per open disk, owned by
 * one service thread.  libiscsi is not thread-safe, so nothing else touches the
 * context once the thread runs: callers build a request on their stack, put it
 * on the submit list, kick an eventfd and sleep on the request's condition
 * variable.  The service thread turns requests into libiscsi tasks
 * (iscsi_*_task with a completion callback), poll()s the iSCSI socket and the
 * eventfd, and completes requests from the callbacks.  Any number of callers
 * are therefore in flight at once: sixteen threads give the target a queue
 * depth of sixteen.  Before the thread starts (during open) the opening thread
 * drives the same machinery itself.
 *
 * Every request carries a deadline (the caller's io_timeout_ms, shared by all
 * retries of one vcfs call).  The service thread never sleeps past the earliest
 * deadline; an expired request is cancelled locally (iscsi_scsi_cancel_task,
 * so libiscsi forgets the caller's buffer before the caller returns) and
 * completes with -ETIMEDOUT.  Because a cancelled command may still be queued
 * at the target, an expiry also tears the session down; the service thread
 * then logs in again with the SAME initiator name and ISID (the same I_T
 * nexus, so persistent-reservation registrations survive), which makes the
 * target reinstate the session and abort what the old one left behind.
 *
 * Reconnection is ours, not libiscsi's: libiscsi 1.19 (Debian 12) parks the
 * commands of a reconnecting session in a shadow context that
 * iscsi_scsi_cancel_task() cannot reach and re-sends them after reconnecting,
 * i.e. after their caller timed out and its buffer is gone (a use-after-free
 * we hit in testing).  So auto-reconnect is off; when a session breaks
 * (socket error, TCP_USER_TIMEOUT/keep-alive equal to the io timeout, an
 * expiry) in-flight commands complete with "session lost" (idempotent ones
 * are retried within their deadline), new requests wait on a pending list,
 * and the service thread reconnects with backoff (0.1 s doubling to
 * min(2 s, io timeout / 2)).  A target that disappears therefore gives bounded
 * -ETIMEDOUT errors, never a hang, and service resumes when it returns.
 *
 * Retries inside one call (bounded by its deadline): UNIT ATTENTION, NOT READY,
 * ABORTED COMMAND, BUSY and TASK SET FULL always; RESERVATION CONFLICT for data
 * commands when another host holds the CAS reservation (below); transport
 * errors for idempotent commands (reads, writes, flushes) but never for
 * COMPARE AND WRITE.
 *
 * ---- Geometry and capabilities (probed at open) ----
 * READ CAPACITY(16) (fallback 10): size, logical block size, physical block
 * size from LBPPBE, LBPRZ.  VPD Block Limits (B0h): maximum transfer length
 * (capped at 1 MiB), maximum WRITE SAME and UNMAP lengths.  VPD Logical Block
 * Provisioning (B2h): LBPU -> VCFS_DISK_CAP_UNMAP.  MODE SENSE DPOFUA ->
 * VCFS_DISK_CAP_FUA (without it a FUA write is WRITE + SYNCHRONIZE CACHE of
 * its range).  WRITE SAME(16) and SYNCHRONIZE CACHE(16) are tried on first use
 * and replaced (plain zero writes, SYNCHRONIZE CACHE(10)) when the target
 * answers "invalid operation code".  unmap leaves zeros: after UNMAP, a target
 * without LBPRZ gets the range written with zeros too.
 *
 * ---- Compare-and-write, mode "ats" ----
 * SCSI COMPARE AND WRITE (89h), executed atomically by the target; a
 * MISCOMPARE sense is -VCFS_EMISCOMPARE.  Supported is decided by TRYING it
 * at open (an identity CAW of the last sector: read it, compare and write it
 * with itself), never by the Block Limits page: Debian's tgt advertises
 * COMPARE AND WRITE and then rejects the opcode.  A CAW interrupted by a
 * connection loss is not retried (it may have been executed: the caller sees
 * an error and re-reads).
 *
 * ---- Compare-and-write, mode "ats+pr" (target lacks COMPARE AND WRITE) ----
 * SCSI-3 persistent reservations.  Each open registers its own key K
 * (opts.host_key or a random non-zero 64-bit value; REGISTER AND IGNORE
 * EXISTING KEY) and unregisters at close.  One CAS is
 *
 *     PR IN READ RESERVATION                 another key holds it: back off
 *     PR OUT RESERVE (Write Exclusive - Registrants Only, key K)
 *     READ sector -> compare with expect
 *     WRITE sector (FUA)                     only if equal
 *     PR OUT RELEASE
 *
 * under a per-open mutex (the reservation belongs to the I_T nexus, which all
 * threads of this open share, so they must not interleave).  Only one nexus
 * can hold the reservation: while K holds it, every other RESERVE gets
 * RESERVATION CONFLICT, so other hosts' CAS retry with randomized backoff
 * (0.1 ms doubling to 10 ms) within their own io timeout and a short CAS is
 * seen only as latency.  The type is Write Exclusive - REGISTRANTS ONLY, not
 * plain Write Exclusive: every registered vcfs host keeps writing data while
 * another one runs a CAS (plain writes of CAS sectors are outside the
 * contract, as on every backend), and only an unregistered nexus - a host
 * preempted as stale - is refused.  That also avoids a bug of Debian's tgt
 * 1.0.85, measured here: a write of a few KiB refused by a plain Write
 * Exclusive reservation is never answered (tgt logs "Forcing release of tx
 * task" at disconnect), which would cost every data write racing a CAS a
 * whole io timeout.  Reads are never blocked.
 *
 * A holder that died between RESERVE and RELEASE leaves the LUN reserved.
 * Before each RESERVE, and on a conflict, we read the reservation and track the
 * holder's key and when we first saw it, on our own monotonic clock, across
 * retries and across CAS calls (tracking restarts when the holder changes,
 * when our own RESERVE succeeds, or when 2 io timeouts pass without an
 * observation).  We PREEMPT the holder's key (which also removes its
 * registration and makes us the holder) when opts.holder_dead(key) says it is
 * dead, or else once the same key has been seen holding continuously for
 * VCFS_DISK_STALE_GUARD_FACTOR io timeouts.  A live holder holds the
 * reservation for less than one io timeout (its whole CAS is bounded by one),
 * so it is never preempted while it makes progress.  Its registration being
 * gone is what fences a holder that was only paused:
 *
 *   host A (key Ka)                     host B (key Kb)
 *   RESERVE ok
 *   READ sector = X
 *   ...paused (VM stopped, SIGSTOP)...  RESERVE -> conflict, holder Ka (t0)
 *                                       ...retries, holder Ka ...
 *                                       t0 + 4 io timeouts: PREEMPT Ka
 *                                         (Ka unregistered, Kb holds)
 *                                       READ = X, WRITE Y, RELEASE
 *   ...resumes...
 *   WRITE sector (based on X)
 *     -> RESERVATION CONFLICT (Ka is no longer registered, the write is refused)
 *   re-REGISTER Ka, restart the CAS:
 *   RESERVE ok, READ = Y != expect
 *     -> -VCFS_EMISCOMPARE                   (B's update survives)
 *
 * The race the reservation itself closes:
 *
 *   host A                              host B
 *   RESERVE ok
 *   READ = X                            RESERVE -> conflict (A holds)
 *   WRITE Y                             backoff ...
 *   RELEASE                             RESERVE ok
 *                                       READ = Y (compares against Y, not X)
 *
 * Limits: (1) only hosts that go through vcfs take the reservation; a plain
 * writer that ignores RESERVATION CONFLICT semantics is not excluded.  (2) The
 * stale-guard rule relies on every host using the same io timeout and on no
 * live CAS lasting longer than one (true: each is bounded by its deadline).
 * (3) A CAS costs four round trips instead of one, and CAS from all hosts are
 * serialized LUN-wide.  (4) If a RELEASE fails (connection lost), the
 * reservation stays until another host's stale guard breaks it (4 io
 * timeouts), or until this open re-reserves (a holder's RESERVE succeeds).
 * (5) host_key must differ between opens (a reservation held under our own
 * key by another nexus is taken to be our dead previous session and is
 * preempted at once).  (6) A dead holder's reservation is broken only by CAS
 * callers (the stale guard above); it does not block data writes.  (7) A
 * write refused because our registration was removed re-registers and
 * retries; on tgt that refusal is the unanswered write above, so it costs one
 * io timeout and a session reset first.
 *
 * ---- Locks ----
 * priv.mu protects the submit list, the in-flight list and every request's
 * done flag.  priv.pr_mu serializes PR-mode CAS and protects the stale-holder
 * tracking; take it before issuing any request (never held by the service
 * thread).  The iscsi_context belongs to the service thread once it runs.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include "disk_int.h"
#include "../common/clock.h"
#include "../common/log.h"

#define ISC_DEFAULT_PORT   3260
#define ISC_MAX_IO	   (1u << 20)
#define ISC_POLL_MAX_MS	   100		/* libiscsi wants iscsi_service() this often */
#define ISC_BACKOFF_MIN_NS 100000ULL	/* first retry after ~0.1 ms */
#define ISC_BACKOFF_MAX_NS (10 * VCFS_NS_PER_MS)

enum isc_op {
	ISC_TUR, ISC_INQUIRY, ISC_RC16, ISC_RC10, ISC_MODESENSE6, ISC_READ16,
	ISC_WRITE16, ISC_CAW, ISC_SYNC16, ISC_SYNC10, ISC_UNMAP, ISC_WS16,
	ISC_PRIN, ISC_PROUT,
};

/* Not a SCSI status: the task could not even be built or queued. */
#define ISC_STATUS_NOTQUEUED 0x0f0000ff

/*
 * One SCSI command on its way through the service thread.  Lives on the
 * caller's stack; done/next/inflight_next are protected by priv.mu.
 */
struct isc_req {
	enum isc_op op;
	uint64_t lba;
	uint32_t nblocks;		/* sync, write same, unmap */
	unsigned char *buf;		/* data out, or data in for READ16 */
	uint32_t len;			/* bytes */
	int fua;
	int evpd, page;			/* INQUIRY */
	int sa, type;			/* PR IN / PR OUT service action, PR type */
	struct scsi_persistent_reserve_out_basic prout;
	struct unmap_list ul;
	int keep_task;			/* caller unmarshalls task, then frees it */

	struct isc_priv *p;
	uint64_t deadline;		/* vcfs_now_ns() value */
	struct scsi_task *task;
	int status;			/* SCSI_STATUS_* or ISC_STATUS_NOTQUEUED */
	struct scsi_sense sense;
	char errmsg[160];		/* libiscsi's words for a transport error */
	int done;
	pthread_cond_t cv;
	struct isc_req *next;		/* submit list, then pending list */
	struct isc_req *inflight_next;	/* in-flight list */
};

/* Connection states, driven by the service thread (by the opener before). */
enum isc_state { ISC_DOWN, ISC_CONNECTING, ISC_UP };

struct isc_priv {
	struct iscsi_context *ctx;	/* NULL while DOWN */
	int lun;
	int efd;			/* eventfd: wakes the service thread */
	pthread_t thread;
	int threaded;			/* service thread running */
	int stopping;			/* protected by mu */
	pthread_mutex_t mu;
	struct isc_req *subq_head, *subq_tail;	/* protected by mu */
	/* the rest of this block: service thread (or opener) only */
	struct isc_req *pending_head, *pending_tail;	/* waiting for ISC_UP */
	struct isc_req *inflight;	/* handed to libiscsi */
	uint64_t last_service_ns;
	uint64_t tmo_ns;		/* the io timeout */

	/* connection: what to log in with, and where we are */
	enum isc_state state;
	int conn_failed;		/* CONNECTING: full connect reported failure */
	int conn_broken;		/* UP: the session broke */
	int conn_logged_in;		/* at the failure: login had succeeded */
	int ever_up;
	uint64_t conn_deadline;		/* CONNECTING gives up at */
	uint64_t next_attempt_ns;	/* DOWN: reconnect at */
	uint64_t backoff_ns;
	char conn_err[320];
	char portal[300];
	char initiator[256];
	char *target, *user, *password;
	uint32_t isid_rnd;		/* same ISID on every login: same I_T nexus */

	uint32_t lsec;
	uint64_t nblocks;
	uint32_t max_xfer_blocks;	/* 0 = unlimited */
	uint64_t max_ws_blocks;		/* 0 = unknown */
	uint32_t max_unmap_blocks;	/* 0 = unlimited */
	int lbpu, lbprz, dpofua;
	int no_ws16, no_sync16;		/* learned on first use; racy-benign ints */
	unsigned char *zero;		/* one zero block for WRITE SAME */

	/* persistent reservations (ATS_PR mode) */
	int pr_registered;
	uint64_t key;
	pthread_mutex_t pr_mu;
	uint64_t stale_key;		/* holder being timed, 0 = none; pr_mu */
	uint64_t stale_since, stale_last;	/* ns; pr_mu */

	char name[200];			/* "iscsi://host:port/iqn/lun" for messages */
};

/* ---------------------------------------------------------------------- */
/* request plumbing                                                        */

static uint64_t isc_rand64(void)
{
	uint64_t v = 0;

	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		v = vcfs_now_ns() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() << 32;
	return v;
}

static void isc_req_init(struct isc_req *r, enum isc_op op)
{
	memset(r, 0, sizeof(*r));
	r->op = op;
	pthread_cond_init(&r->cv, NULL);
}

static void isc_req_fini(struct isc_req *r)
{
	if (r->task) {
		scsi_free_scsi_task(r->task);
		r->task = NULL;
	}
	pthread_cond_destroy(&r->cv);
}

static void isc_complete(struct isc_priv *p, struct isc_req *r)
{
	pthread_mutex_lock(&p->mu);
	r->done = 1;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&p->mu);
}

static void isc_inflight_remove(struct isc_priv *p, struct isc_req *r)
{
	struct isc_req **pp;

	for (pp = &p->inflight; *pp; pp = &(*pp)->inflight_next)
		if (*pp == r) {
			*pp = r->inflight_next;
			break;
		}
}

/*
 * libiscsi completion callback (service thread, or opener before it runs).
 * CANCELLED means one of two things: we cancelled it at its deadline, or the
 * session was torn down under it (then the command may be retried).
 */
static void isc_task_cb(struct iscsi_context *ctx, int status, void *command_data,
			void *private_data)
{
	struct isc_req *r = private_data;
	struct isc_priv *p = r->p;

	(void)command_data;
	if (status == SCSI_STATUS_CANCELLED && vcfs_now_ns() < r->deadline) {
		status = SCSI_STATUS_ERROR;
		snprintf(r->errmsg, sizeof(r->errmsg), "the session was lost");
		if (p->state == ISC_UP)
			p->conn_broken = 1;
	}
	r->status = status;
	if (status == SCSI_STATUS_CHECK_CONDITION)
		r->sense = r->task->sense;
	if (status == SCSI_STATUS_ERROR && !r->errmsg[0])
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", iscsi_get_error(ctx));
	if (!r->keep_task || status != SCSI_STATUS_GOOD) {
		scsi_free_scsi_task(r->task);
		r->task = NULL;
	}
	isc_inflight_remove(p, r);
	isc_complete(p, r);
}

/* Build and queue the libiscsi task for r.  Service thread (or opener). */
static void isc_start(struct isc_priv *p, struct isc_req *r)
{
	struct iscsi_context *c = p->ctx;
	int lun = p->lun, bs = (int)p->lsec;
	struct scsi_task *t = NULL;

	switch (r->op) {
	case ISC_TUR:
		t = iscsi_testunitready_task(c, lun, isc_task_cb, r);
		break;
	case ISC_INQUIRY:
		t = iscsi_inquiry_task(c, lun, r->evpd, r->page, 255, isc_task_cb, r);
		break;
	case ISC_RC16:
		t = iscsi_readcapacity16_task(c, lun, isc_task_cb, r);
		break;
	case ISC_RC10:
		t = iscsi_readcapacity10_task(c, lun, 0, 0, isc_task_cb, r);
		break;
	case ISC_MODESENSE6:
		t = iscsi_modesense6_task(c, lun, 1, SCSI_MODESENSE_PC_CURRENT,
					  SCSI_MODEPAGE_RETURN_ALL_PAGES, 0, 255,
					  isc_task_cb, r);
		break;
	case ISC_READ16:
		/* data goes straight into the caller's buffer (added before
		 * iscsi_service() can see the response: same thread) */
		t = iscsi_read16_task(c, lun, r->lba, r->len, bs, 0, 0, 0, 0, 0,
				      isc_task_cb, r);
		if (t && scsi_task_add_data_in_buffer(t, (int)r->len, r->buf)) {
			iscsi_scsi_cancel_task(c, t);	/* runs the callback */
			return;
		}
		break;
	case ISC_WRITE16:
		t = iscsi_write16_task(c, lun, r->lba, r->buf, r->len, bs, 0, 0, r->fua, 0,
				       0, isc_task_cb, r);
		break;
	case ISC_CAW:
		t = iscsi_compareandwrite_task(c, lun, r->lba, r->buf, r->len, bs, 0, 0,
					       r->fua, 0, 0, isc_task_cb, r);
		break;
	case ISC_SYNC16:
		t = iscsi_synchronizecache16_task(c, lun, r->lba, r->nblocks, 0, 0,
						  isc_task_cb, r);
		break;
	case ISC_SYNC10:
		t = iscsi_synchronizecache10_task(c, lun, (int)r->lba, (int)r->nblocks, 0, 0,
						  isc_task_cb, r);
		break;
	case ISC_UNMAP:
		t = iscsi_unmap_task(c, lun, 0, 0, &r->ul, 1, isc_task_cb, r);
		break;
	case ISC_WS16:
		t = iscsi_writesame16_task(c, lun, r->lba, r->buf, r->len, r->nblocks, 0, 0,
					   0, 0, isc_task_cb, r);
		break;
	case ISC_PRIN:
		t = iscsi_persistent_reserve_in_task(c, lun, r->sa, 4096, isc_task_cb, r);
		break;
	case ISC_PROUT:
		t = iscsi_persistent_reserve_out_task(c, lun, r->sa,
						      SCSI_PERSISTENT_RESERVE_SCOPE_LU, r->type,
						      &r->prout, isc_task_cb, r);
		break;
	}
	if (!t) {
		r->status = ISC_STATUS_NOTQUEUED;
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", iscsi_get_error(c));
		isc_complete(p, r);
		return;
	}
	/* The callback may not run before this: it runs from iscsi_service(),
	 * which only this thread calls. */
	r->task = t;
	r->inflight_next = p->inflight;
	p->inflight = r;
}

/* Append r to the pending list (requests waiting for a session).  Service
 * thread (or opener). */
static void isc_pending_add(struct isc_priv *p, struct isc_req *r)
{
	r->next = NULL;
	if (p->pending_tail)
		p->pending_tail->next = r;
	else
		p->pending_head = r;
	p->pending_tail = r;
}

/* Start every pending request once the session is up.  Service thread. */
static void isc_start_pending(struct isc_priv *p)
{
	while (p->state == ISC_UP && p->pending_head) {
		struct isc_req *r = p->pending_head;
		p->pending_head = r->next;
		if (!p->pending_head)
			p->pending_tail = NULL;
		isc_start(p, r);
	}
}

static void isc_conn_cb(struct iscsi_context *ctx, int status, void *command_data,
			void *private_data);

/* A fresh context configured for our session.  Service thread (or opener). */
static int isc_ctx_new(struct isc_priv *p)
{
	int tmo_ms = (int)(p->tmo_ns / VCFS_NS_PER_MS);
	struct iscsi_context *c = iscsi_create_context(p->initiator);

	if (!c) {
		snprintf(p->conn_err, sizeof(p->conn_err), "cannot create an iSCSI context "
			 "for initiator %s", p->initiator);
		return -ENOMEM;
	}
	if (iscsi_set_targetname(c, p->target) ||
	    iscsi_set_session_type(c, ISCSI_SESSION_NORMAL) ||
	    iscsi_set_header_digest(c, ISCSI_HEADER_DIGEST_NONE_CRC32C) ||
	    iscsi_set_isid_random(c, p->isid_rnd, 0) ||
	    (p->user && iscsi_set_initiator_username_pwd(c, p->user,
							 p->password ? p->password : ""))) {
		snprintf(p->conn_err, sizeof(p->conn_err), "%s", iscsi_get_error(c));
		iscsi_destroy_context(c);
		return -EINVAL;
	}
	/*
	 * libiscsi 1.19's own reconnect parks commands in a shadow context that
	 * iscsi_scsi_cancel_task() cannot see, then re-sends them after their
	 * caller gave up (and its buffer is gone); so it is off, and
	 * isc_conn_step() reconnects instead.
	 */
	iscsi_set_noautoreconnect(c, 1);
	iscsi_set_tcp_user_timeout(c, tmo_ms);
	iscsi_set_tcp_keepidle(c, (tmo_ms + 999) / 1000);
	iscsi_set_tcp_keepintvl(c, (tmo_ms + 2999) / 3000);
	iscsi_set_tcp_keepcnt(c, 3);
	p->ctx = c;
	return 0;
}

/*
 * Connect and log in, asynchronously: iscsi_full_connect_async does TCP
 * connect, login, TEST UNIT READY (eating unit attentions) and INQUIRY of the
 * LUN, then calls isc_conn_cb.  Service thread (or opener).
 */
static int isc_conn_start(struct isc_priv *p)
{
	int rc = isc_ctx_new(p);

	if (rc)
		return rc;
	p->state = ISC_CONNECTING;
	p->conn_failed = 0;
	p->conn_broken = 0;
	p->conn_logged_in = 0;
	p->conn_err[0] = 0;
	p->conn_deadline = vcfs_now_ns() + p->tmo_ns;
	if (iscsi_full_connect_async(p->ctx, p->portal, p->lun, isc_conn_cb, p)) {
		p->conn_failed = 1;
		snprintf(p->conn_err, sizeof(p->conn_err), "%s", iscsi_get_error(p->ctx));
	}
	return 0;
}

static void isc_conn_cb(struct iscsi_context *ctx, int status, void *command_data,
			void *private_data)
{
	struct isc_priv *p = private_data;

	(void)command_data;
	if (p->state == ISC_CONNECTING) {
		if (status == SCSI_STATUS_GOOD) {
			p->state = ISC_UP;
			return;
		}
		if (!p->conn_failed) {
			p->conn_failed = 1;
			p->conn_logged_in = iscsi_is_logged_in(ctx);
			snprintf(p->conn_err, sizeof(p->conn_err), "%s", iscsi_get_error(ctx));
		}
	} else if (p->state == ISC_UP && status != SCSI_STATUS_GOOD) {
		/* libiscsi calls the connect callback again when the session dies */
		p->conn_broken = 1;
	}
}

/*
 * Tear the session down: every in-flight command completes (CANCELLED before
 * its deadline = "session lost", which idempotent commands retry on the next
 * session) and the context is freed.  Service thread (or opener, or close).
 */
static void isc_drop(struct isc_priv *p)
{
	struct isc_req *r;

	if (p->ctx) {
		iscsi_scsi_cancel_all_tasks(p->ctx);
		/* libiscsi skips the callbacks when it no longer counts itself
		 * logged in; its PDUs are gone then, our tasks are still ours */
		while ((r = p->inflight)) {
			p->inflight = r->inflight_next;
			scsi_free_scsi_task(r->task);
			r->task = NULL;
			r->status = SCSI_STATUS_ERROR;
			snprintf(r->errmsg, sizeof(r->errmsg), "the session was lost");
			isc_complete(p, r);
		}
		iscsi_destroy_context(p->ctx);
		p->ctx = NULL;
	}
	p->state = ISC_DOWN;
	p->next_attempt_ns = vcfs_now_ns() + p->backoff_ns;
	/* double up to min(2 s, io timeout / 2): a target that comes back is
	 * found again within about half an io timeout */
	{
		uint64_t cap = p->tmo_ns / 2 < 2 * VCFS_NS_PER_S ? p->tmo_ns / 2 : 2 * VCFS_NS_PER_S;
		p->backoff_ns = p->backoff_ns * 2 > cap ? cap : p->backoff_ns * 2;
		if (p->backoff_ns < 100 * VCFS_NS_PER_MS)
			p->backoff_ns = 100 * VCFS_NS_PER_MS;
	}
}

/*
 * Advance the connection state machine: give up a login that failed or took
 * longer than the io timeout, notice a broken session, reconnect with backoff
 * (0.1 s doubling to min(2 s, io timeout / 2)).  Service thread only: the opener runs its one
 * connect itself.
 */
static void isc_conn_step(struct isc_priv *p, uint64_t now)
{
	if (p->state == ISC_CONNECTING && (p->conn_failed || now >= p->conn_deadline)) {
		vcfs_debug("%s: reconnect failed: %s", p->name,
			   p->conn_failed ? p->conn_err : "no answer within the io timeout");
		isc_drop(p);
	} else if (p->state == ISC_UP && p->conn_broken) {
		vcfs_warn("%s: the session was lost; reconnecting", p->name);
		isc_drop(p);
		p->next_attempt_ns = now;	/* first attempt at once */
	}
	if (p->state == ISC_DOWN && now >= p->next_attempt_ns && isc_conn_start(p)) {
		vcfs_debug("%s: reconnect: %s", p->name, p->conn_err);
		p->next_attempt_ns = now + p->backoff_ns;
	}
	if (p->state == ISC_UP && p->backoff_ns != 100 * VCFS_NS_PER_MS) {
		vcfs_warn("%s: session re-established", p->name);
		p->backoff_ns = 100 * VCFS_NS_PER_MS;
	}
}

/* Fail requests past their deadline.  Service thread (or opener). */
static void isc_expire(struct isc_priv *p, uint64_t now)
{
	struct isc_req *r, **pp;
	int expired = 0;

	/* never handed to libiscsi: just complete them */
	p->pending_tail = NULL;
	for (pp = &p->pending_head; (r = *pp);) {
		if (r->deadline > now) {
			p->pending_tail = r;
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		r->status = SCSI_STATUS_CANCELLED;
		snprintf(r->errmsg, sizeof(r->errmsg), "no session to the target");
		isc_complete(p, r);
	}
again:
	for (r = p->inflight; r; r = r->inflight_next) {
		if (r->deadline > now)
			continue;
		expired++;
		if (iscsi_scsi_cancel_task(p->ctx, r->task)) {
			/* libiscsi no longer knows it: complete it ourselves */
			isc_inflight_remove(p, r);
			scsi_free_scsi_task(r->task);
			r->task = NULL;
			r->status = SCSI_STATUS_CANCELLED;
			isc_complete(p, r);
		}
		goto again;	/* the list changed under us */
	}
	if (expired && p->threaded && p->state == ISC_UP) {
		/* Drop the session: logging in again with the same ISID makes the
		 * target reinstate the session and abort the commands we gave up
		 * on, instead of executing them later. */
		vcfs_warn("%s: %d command(s) unanswered within the io timeout (%llu ms); "
			  "resetting the session", p->name, expired,
			  (unsigned long long)(p->tmo_ns / VCFS_NS_PER_MS));
		isc_drop(p);
		p->next_attempt_ns = now;
	}
}

/* One round of poll + iscsi_service + deadline checks, waiting at most
 * max_ms.  Service thread (or opener). */
static void isc_service_once(struct isc_priv *p, int max_ms)
{
	struct pollfd pfd[2];
	uint64_t now = vcfs_now_ns(), until = now + (uint64_t)max_ms * VCFS_NS_PER_MS;
	int n = 1, timeout, fd = -1, ev = 0, revents = 0;
	struct isc_req *r;

	for (r = p->inflight; r; r = r->inflight_next)
		until = r->deadline < until ? r->deadline : until;
	for (r = p->pending_head; r; r = r->next)
		until = r->deadline < until ? r->deadline : until;
	if (p->state == ISC_CONNECTING && p->conn_deadline < until)
		until = p->conn_deadline;
	if (p->state == ISC_DOWN && p->threaded && p->next_attempt_ns < until)
		until = p->next_attempt_ns;
	timeout = until > now ? (int)((until - now + VCFS_NS_PER_MS - 1) / VCFS_NS_PER_MS) : 0;
	pfd[0].fd = p->efd;
	pfd[0].events = POLLIN;
	pfd[0].revents = 0;
	if (p->ctx) {
		fd = iscsi_get_fd(p->ctx);
		ev = iscsi_which_events(p->ctx);
	}
	if (fd >= 0 && ev) {
		pfd[1].fd = fd;
		pfd[1].events = (short)ev;
		pfd[1].revents = 0;
		n = 2;
	}
	if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR)
		vcfs_warn("%s: poll: %s", p->name, strerror(errno));
	if (pfd[0].revents & POLLIN) {
		uint64_t v;
		if (read(p->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			vcfs_warn("%s: eventfd read: %s", p->name, strerror(errno));
	}
	if (n == 2)
		revents = pfd[1].revents;
	now = vcfs_now_ns();
	if (p->ctx && (revents || now - p->last_service_ns >= ISC_POLL_MAX_MS * VCFS_NS_PER_MS)) {
		p->last_service_ns = now;
		if (iscsi_service(p->ctx, revents) < 0) {
			if (p->state == ISC_UP) {
				p->conn_broken = 1;
			} else if (p->state == ISC_CONNECTING && !p->conn_failed) {
				p->conn_failed = 1;
				p->conn_logged_in = iscsi_is_logged_in(p->ctx);
				snprintf(p->conn_err, sizeof(p->conn_err), "%s",
					 iscsi_get_error(p->ctx));
			}
		}
	}
	isc_expire(p, vcfs_now_ns());
}

static void *isc_thread(void *arg)
{
	struct isc_priv *p = arg;

	for (;;) {
		struct isc_req *list;

		pthread_mutex_lock(&p->mu);
		if (p->stopping) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		list = p->subq_head;
		p->subq_head = p->subq_tail = NULL;
		pthread_mutex_unlock(&p->mu);
		while (list) {
			struct isc_req *r = list;
			list = r->next;
			isc_pending_add(p, r);
		}
		isc_conn_step(p, vcfs_now_ns());
		isc_start_pending(p);
		isc_service_once(p, ISC_POLL_MAX_MS);
	}
	return NULL;
}

/* Run r to completion (or to its deadline).  Any thread once the service
 * thread runs; the opener (with the session up) before that. */
static void isc_exec(struct isc_priv *p, struct isc_req *r, uint64_t deadline)
{
	r->p = p;
	r->deadline = deadline;
	r->done = 0;
	r->status = SCSI_STATUS_ERROR;
	r->errmsg[0] = 0;
	r->next = NULL;
	if (r->task) {		/* a kept task of an earlier attempt */
		scsi_free_scsi_task(r->task);
		r->task = NULL;
	}
	if (!p->threaded) {
		if (p->state == ISC_UP)
			isc_start(p, r);
		else
			isc_pending_add(p, r);	/* expires on its deadline */
		while (!r->done)
			isc_service_once(p, ISC_POLL_MAX_MS);
		return;
	}
	pthread_mutex_lock(&p->mu);
	if (p->subq_tail)
		p->subq_tail->next = r;
	else
		p->subq_head = r;
	p->subq_tail = r;
	pthread_mutex_unlock(&p->mu);
	{
		uint64_t one = 1;
		if (write(p->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			vcfs_warn("%s: eventfd write: %s", p->name, strerror(errno));
	}
	/* The service thread completes every request by its deadline (expiry
	 * cancels it), so this wait is bounded. */
	pthread_mutex_lock(&p->mu);
	while (!r->done)
		pthread_cond_wait(&r->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

/* Map a finished request to the vcfs error space. */
static int isc_errno(const struct isc_req *r)
{
	switch (r->status) {
	case SCSI_STATUS_GOOD:
		return 0;
	case SCSI_STATUS_CHECK_CONDITION:
		switch ((int)r->sense.key) {
		case SCSI_SENSE_MISCOMPARE:
			return -VCFS_EMISCOMPARE;
		case SCSI_SENSE_ILLEGAL_REQUEST:
			if (r->sense.ascq == SCSI_SENSE_ASCQ_INVALID_OPERATION_CODE)
				return -EOPNOTSUPP;
			if (r->sense.ascq == SCSI_SENSE_ASCQ_LOGICAL_UNIT_NOT_SUPPORTED)
				return -VCFS_ENOLUN;
			if (r->sense.ascq == SCSI_SENSE_ASCQ_LBA_OUT_OF_RANGE)
				return -VCFS_ERANGE;
			return -EINVAL;
		case SCSI_SENSE_UNIT_ATTENTION:
		case SCSI_SENSE_NOT_READY:
		case SCSI_SENSE_COMMAND_ABORTED:
			return -EAGAIN;
		case SCSI_SENSE_DATA_PROTECTION:
			return -EROFS;
		default:
			return -EIO;
		}
	case SCSI_STATUS_RESERVATION_CONFLICT:
		return -VCFS_ERESERVED;
	case SCSI_STATUS_BUSY:
	case SCSI_STATUS_TASK_SET_FULL:
		return -EBUSY;
	case SCSI_STATUS_CANCELLED:
	case SCSI_STATUS_TIMEOUT:
		return -ETIMEDOUT;
	case ISC_STATUS_NOTQUEUED:
		return -ENOMEM;
	default:
		return -ECONNRESET;	/* SCSI_STATUS_ERROR: the transport failed */
	}
}

/* Retry classes for isc_cmd(). */
#define RETRY_TRANSPORT (1u << 0)	/* command is idempotent */
#define RETRY_CONFLICT	(1u << 1)	/* wait out other hosts' CAS reservations */

static void isc_backoff(uint64_t *ns, uint64_t deadline)
{
	uint64_t now = vcfs_now_ns(), d = *ns / 2 + isc_rand64() % (*ns / 2 + 1);

	if (now >= deadline)
		return;
	if (d > deadline - now)
		d = deadline - now;
	vcfs_sleep_ns(d);
	*ns = *ns * 2 > ISC_BACKOFF_MAX_NS ? ISC_BACKOFF_MAX_NS : *ns * 2;
}

/* Execute r, retrying what is retryable until deadline.  Returns 0 or a vcfs
 * error; logs nothing (callers name the operation). */
static int isc_register(struct isc_priv *p, uint64_t deadline);

static int isc_cmd(struct isc_priv *p, struct isc_req *r, uint64_t deadline, unsigned retry)
{
	uint64_t backoff = ISC_BACKOFF_MIN_NS;
	int rc, reregistered = 0;

	for (;;) {
		isc_exec(p, r, deadline);
		rc = isc_errno(r);
		if (rc == 0 || rc == -ETIMEDOUT)
			return rc;
		if (rc == -VCFS_ERESERVED && (retry & RETRY_CONFLICT) && p->pr_registered &&
		    !reregistered) {
			/* Registrants may write through our own reservation type:
			 * refused means this nexus was preempted as stale.  Join
			 * again (idempotent) and retry. */
			reregistered = 1;
			vcfs_warn("%s: write refused by a reservation; registering key "
				  "%016llx again", p->name, (unsigned long long)p->key);
			if (!isc_register(p, deadline))
				continue;
		}
		if (!(rc == -EAGAIN || rc == -EBUSY ||
		      (rc == -VCFS_ERESERVED && (retry & RETRY_CONFLICT)) ||
		      (rc == -ECONNRESET && (retry & RETRY_TRANSPORT))))
			return rc;
		if (vcfs_now_ns() >= deadline)
			return rc == -VCFS_ERESERVED ? rc : -ETIMEDOUT;
		/* a unit attention is consumed by reporting it: retry at once */
		if (!(rc == -EAGAIN && r->sense.key == SCSI_SENSE_UNIT_ATTENTION))
			isc_backoff(&backoff, deadline);
	}
}

static uint64_t isc_deadline(const struct vcfs_disk *d)
{
	return vcfs_now_ns() + d->opts.io_timeout_ms * VCFS_NS_PER_MS;
}

static const char *isc_why(const struct isc_req *r, int rc)
{
	static __thread char buf[200];

	if (r->status == SCSI_STATUS_CHECK_CONDITION) {
		snprintf(buf, sizeof(buf), "%s (%s)", scsi_sense_key_str(r->sense.key),
			 scsi_sense_ascq_str(r->sense.ascq));
		return buf;
	}
	if (r->errmsg[0]) {
		snprintf(buf, sizeof(buf), "%s: %s", vcfs_strerror(rc), r->errmsg);
		return buf;
	}
	return vcfs_strerror(rc);
}

/* ---------------------------------------------------------------------- */
/* data path                                                               */

static int isc_sync_range(struct isc_priv *p, uint64_t lba, uint32_t nblocks,
			  uint64_t deadline)
{
	struct isc_req r;
	int rc;

	if (!p->no_sync16) {
		isc_req_init(&r, ISC_SYNC16);
		r.lba = lba;
		r.nblocks = nblocks;
		rc = isc_cmd(p, &r, deadline, RETRY_TRANSPORT | RETRY_CONFLICT);
		isc_req_fini(&r);
		if (rc != -EOPNOTSUPP)
			return rc;
		p->no_sync16 = 1;
	}
	if (lba > UINT32_MAX || nblocks > UINT16_MAX)
		lba = nblocks = 0;	/* SYNCHRONIZE CACHE(10) cannot name it: all */
	isc_req_init(&r, ISC_SYNC10);
	r.lba = lba;
	r.nblocks = nblocks;
	rc = isc_cmd(p, &r, deadline, RETRY_TRANSPORT | RETRY_CONFLICT);
	isc_req_fini(&r);
	return rc;
}

static int iscsi_read(struct vcfs_disk *d, uint64_t off, void *buf, size_t len)
{
	struct isc_priv *p = d->priv;
	struct isc_req r;
	int rc;

	isc_req_init(&r, ISC_READ16);
	r.lba = off / p->lsec;
	r.buf = buf;
	r.len = (uint32_t)len;
	rc = isc_cmd(p, &r, isc_deadline(d), RETRY_TRANSPORT);
	if (rc)
		vcfs_err("%s: read of %zu bytes at %llu failed: %s", p->name, len,
			 (unsigned long long)off, isc_why(&r, rc));
	isc_req_fini(&r);
	return rc;
}

static int isc_write_deadline(struct vcfs_disk *d, uint64_t off, const void *buf,
			      size_t len, unsigned flags, uint64_t deadline)
{
	struct isc_priv *p = d->priv;
	int fua = (flags & VCFS_IO_FUA) != 0;
	struct isc_req r;
	int rc;

	isc_req_init(&r, ISC_WRITE16);
	r.lba = off / p->lsec;
	r.buf = (unsigned char *)buf;	/* libiscsi only reads data-out */
	r.len = (uint32_t)len;
	r.fua = fua && p->dpofua;
	/* A conflict: we were preempted (isc_cmd re-registers), or a foreign
	 * initiator reserved the LUN (wait, within the deadline). */
	rc = isc_cmd(p, &r, deadline, RETRY_TRANSPORT | RETRY_CONFLICT);
	if (!rc && fua && !p->dpofua)
		rc = isc_sync_range(p, r.lba, (uint32_t)(len / p->lsec), deadline);
	if (rc)
		vcfs_err("%s: write of %zu bytes at %llu failed: %s%s", p->name, len,
			 (unsigned long long)off, isc_why(&r, rc),
			 rc == -VCFS_ERESERVED ? "; another initiator holds a reservation on "
			 "the LUN (check for non-vcfs initiators)" : "");
	isc_req_fini(&r);
	return rc;
}

static int iscsi_write(struct vcfs_disk *d, uint64_t off, const void *buf, size_t len,
		       unsigned flags)
{
	return isc_write_deadline(d, off, buf, len, flags, isc_deadline(d));
}

static int iscsi_flush(struct vcfs_disk *d)
{
	struct isc_priv *p = d->priv;
	int rc = isc_sync_range(p, 0, 0, isc_deadline(d));

	if (rc)
		vcfs_err("%s: SYNCHRONIZE CACHE failed: %s", p->name, vcfs_strerror(rc));
	return rc;
}

/* Zeros by plain writes of max_io pieces (WRITE SAME unavailable). */
static int isc_write_zero_buffers(struct vcfs_disk *d, uint64_t off, uint64_t len,
				  uint64_t deadline)
{
	size_t bl = len < d->info.max_io ? (size_t)len : d->info.max_io;
	unsigned char *z = calloc(1, bl);
	int rc = 0;

	if (!z)
		return -ENOMEM;
	while (!rc && len) {
		size_t n = len < bl ? (size_t)len : bl;
		rc = isc_write_deadline(d, off, z, n, 0, deadline);
		off += n;
		len -= n;
	}
	free(z);
	return rc;
}

static int isc_zero(struct vcfs_disk *d, uint64_t off, uint64_t len, unsigned flags,
		    uint64_t deadline)
{
	struct isc_priv *p = d->priv;
	uint64_t lba = off / p->lsec, left = len / p->lsec;
	uint64_t chunk = p->max_ws_blocks ? p->max_ws_blocks : (32u << 20) / p->lsec;
	int rc = 0;

	if (chunk > UINT32_MAX)
		chunk = UINT32_MAX;
	while (!p->no_ws16 && left) {
		struct isc_req r;
		uint64_t n = left < chunk ? left : chunk;

		isc_req_init(&r, ISC_WS16);
		r.lba = lba;
		r.nblocks = (uint32_t)n;
		r.buf = p->zero;
		r.len = p->lsec;
		rc = isc_cmd(p, &r, deadline, RETRY_TRANSPORT | RETRY_CONFLICT);
		if (rc == -EOPNOTSUPP || (rc == -EINVAL && lba == off / p->lsec)) {
			/* no WRITE SAME(16), or not this long: plain zero writes */
			vcfs_debug("%s: WRITE SAME(16) refused (%s); writing zeros",
				   p->name, isc_why(&r, rc));
			p->no_ws16 = 1;
			rc = 0;
		} else if (rc) {
			vcfs_err("%s: WRITE SAME of %llu blocks at %llu failed: %s", p->name,
				 (unsigned long long)n, (unsigned long long)lba,
				 isc_why(&r, rc));
		}
		isc_req_fini(&r);
		if (rc)
			return rc;
		if (p->no_ws16)
			break;
		lba += n;
		left -= n;
	}
	if (left)
		rc = isc_write_zero_buffers(d, lba * p->lsec, left * p->lsec, deadline);
	if (!rc && (flags & VCFS_IO_FUA))
		rc = isc_sync_range(p, off / p->lsec, (uint32_t)(len / p->lsec), deadline);
	return rc;
}

static int iscsi_write_zeroes(struct vcfs_disk *d, uint64_t off, uint64_t len,
			      unsigned flags)
{
	return isc_zero(d, off, len, flags, isc_deadline(d));
}

static int iscsi_unmap(struct vcfs_disk *d, uint64_t off, uint64_t len)
{
	struct isc_priv *p = d->priv;
	uint64_t deadline = isc_deadline(d);
	uint64_t lba = off / p->lsec, left = len / p->lsec;
	uint64_t chunk = p->max_unmap_blocks ? p->max_unmap_blocks : UINT32_MAX;
	int rc = 0;

	if (!p->lbpu)	/* the target cannot free space: zeros are the contract */
		return isc_zero(d, off, len, 0, deadline);
	while (!rc && left) {
		struct isc_req r;
		uint64_t n = left < chunk ? left : chunk;

		isc_req_init(&r, ISC_UNMAP);
		r.ul.lba = lba;
		r.ul.num = (uint32_t)n;
		rc = isc_cmd(p, &r, deadline, RETRY_TRANSPORT | RETRY_CONFLICT);
		if (rc)
			vcfs_err("%s: UNMAP of %llu blocks at %llu failed: %s", p->name,
				 (unsigned long long)n, (unsigned long long)lba,
				 isc_why(&r, rc));
		isc_req_fini(&r);
		lba += n;
		left -= n;
	}
	/* Without LBPRZ an unmapped block may read as anything: make it zeros. */
	if (!rc && !p->lbprz)
		rc = isc_zero(d, off, len, 0, deadline);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* compare-and-write                                                       */

static int isc_caw(struct isc_priv *p, uint64_t lba, const void *expect,
		   const void *newdata, uint64_t deadline, struct isc_req *r)
{
	unsigned char *two = malloc(2 * (size_t)p->lsec);
	int rc;

	if (!two)
		return -ENOMEM;
	memcpy(two, expect, p->lsec);
	memcpy(two + p->lsec, newdata, p->lsec);
	isc_req_init(r, ISC_CAW);
	r->lba = lba;
	r->buf = two;
	r->len = 2 * p->lsec;
	r->fua = p->dpofua;
	/* no transport retry: a lost answer may hide an executed CAW */
	rc = isc_cmd(p, r, deadline, 0);
	if (!rc && !p->dpofua)
		rc = isc_sync_range(p, lba, 1, deadline);
	free(two);
	return rc;
}

static int iscsi_cas_ats(struct vcfs_disk *d, uint64_t off, const void *expect,
			 const void *newdata)
{
	struct isc_priv *p = d->priv;
	struct isc_req r;
	int rc = isc_caw(p, off / p->lsec, expect, newdata, isc_deadline(d), &r);

	if (rc && rc != -VCFS_EMISCOMPARE)
		vcfs_err("%s: COMPARE AND WRITE at %llu failed: %s", p->name,
			 (unsigned long long)off, isc_why(&r, rc));
	isc_req_fini(&r);
	return rc;
}

static int isc_prout(struct isc_priv *p, int sa, uint64_t key, uint64_t sakey,
		     uint64_t deadline, struct isc_req *r)
{
	isc_req_init(r, ISC_PROUT);
	r->sa = sa;
	r->type = SCSI_PERSISTENT_RESERVE_TYPE_WRITE_EXCLUSIVE_REGISTRANTS_ONLY;
	r->prout.reservation_key = key;
	r->prout.service_action_reservation_key = sakey;
	return isc_cmd(p, r, deadline, RETRY_TRANSPORT);
}

static int isc_register(struct isc_priv *p, uint64_t deadline)
{
	struct isc_req r;
	int rc = isc_prout(p, SCSI_PERSISTENT_RESERVE_REGISTER_AND_IGNORE_EXISTING_KEY, 0,
			   p->key, deadline, &r);

	if (rc)
		vcfs_err("%s: PERSISTENT RESERVE OUT REGISTER failed: %s", p->name,
			 isc_why(&r, rc));
	isc_req_fini(&r);
	return rc;
}

/* Current reservation holder's key into *holder (0 = none). */
static int isc_read_reservation(struct isc_priv *p, uint64_t deadline, uint64_t *holder)
{
	struct scsi_persistent_reserve_in_read_reservation *rr;
	struct isc_req r;
	int rc;

	isc_req_init(&r, ISC_PRIN);
	r.sa = SCSI_PERSISTENT_RESERVE_READ_RESERVATION;
	r.keep_task = 1;
	rc = isc_cmd(p, &r, deadline, RETRY_TRANSPORT);
	if (!rc) {
		rr = scsi_datain_unmarshall(r.task);
		if (!rr) {
			vcfs_err("%s: unreadable PERSISTENT RESERVE IN data", p->name);
			rc = -VCFS_EPROTO;
		} else {
			*holder = rr->reserved ? rr->reservation_key : 0;
		}
	} else {
		vcfs_err("%s: PERSISTENT RESERVE IN failed: %s", p->name, isc_why(&r, rc));
	}
	isc_req_fini(&r);
	return rc;
}

/*
 * RESERVE refused: find out by whom and decide whether to break it.  Returns
 * 0 to retry (maybe at once), or an error.  Called with pr_mu held.
 */
static int isc_pr_holder(struct vcfs_disk *d, uint64_t holder, uint64_t deadline,
			 int *retry_now)
{
	struct isc_priv *p = d->priv;
	uint64_t now = vcfs_now_ns(), guard;
	int rc = 0, dead;

	*retry_now = 0;
	if (!holder) {
		/* Released since our RESERVE was refused, or this nexus is not
		 * registered: a host preempted us as stale, or libiscsi
		 * reconnected (a new session has a new ISID, hence a new I_T
		 * nexus without registration).  REGISTER AND IGNORE EXISTING KEY
		 * is idempotent: just do it. */
		p->stale_key = 0;
		rc = isc_register(p, deadline);
		*retry_now = !rc;
		return rc;
	}
	if (holder == p->key) {
		/* Refused although the holder has our key: the holder is our
		 * previous session, dropped by a reconnect in the middle of a CAS
		 * (keys are unique per open and pr_mu is ours, so no CAS of this
		 * open is running).  It is dead: register this nexus and preempt. */
		struct isc_req r;
		vcfs_warn("%s: the reservation is still held by our previous session "
			  "(key %016llx); taking it over", p->name, (unsigned long long)holder);
		p->stale_key = 0;
		rc = isc_register(p, deadline);
		if (rc)
			return rc;
		rc = isc_prout(p, SCSI_PERSISTENT_RESERVE_PREEMPT, p->key, holder, deadline, &r);
		if (rc && rc != -VCFS_ERESERVED)
			vcfs_err("%s: PREEMPT of our own stale key failed: %s", p->name,
				 isc_why(&r, rc));
		isc_req_fini(&r);
		*retry_now = 1;
		return rc == -VCFS_ERESERVED ? 0 : rc;
	}
	guard = (uint64_t)VCFS_DISK_STALE_GUARD_FACTOR * d->opts.io_timeout_ms * VCFS_NS_PER_MS;
	if (holder != p->stale_key ||
	    now - p->stale_last > 2ULL * d->opts.io_timeout_ms * VCFS_NS_PER_MS) {
		p->stale_key = holder;
		p->stale_since = now;
	}
	p->stale_last = now;
	dead = d->opts.holder_dead && d->opts.holder_dead(d->opts.holder_dead_arg, holder) == 1;
	if (dead || now - p->stale_since >= guard) {
		struct isc_req r;
		vcfs_warn("%s: preempting reservation key %016llx: %s", p->name,
			  (unsigned long long)holder,
			  dead ? "its host is dead" : "held unchanged for longer than the "
			  "stale guard (VCFS_DISK_STALE_GUARD_FACTOR io timeouts)");
		/* only a registered nexus may preempt (we may have reconnected) */
		rc = isc_register(p, deadline);
		if (!rc)
			rc = isc_prout(p, SCSI_PERSISTENT_RESERVE_PREEMPT, p->key, holder,
				       deadline, &r);
		else
			isc_req_init(&r, ISC_PROUT);
		if (rc) {
			vcfs_err("%s: PREEMPT of key %016llx failed: %s", p->name,
				 (unsigned long long)holder, isc_why(&r, rc));
		}
		isc_req_fini(&r);
		p->stale_key = 0;
		*retry_now = !rc;
	}
	return rc;
}

static int isc_pr_conflict(struct vcfs_disk *d, uint64_t deadline, int *retry_now)
{
	uint64_t holder = 0;
	int rc = isc_read_reservation(d->priv, deadline, &holder);

	*retry_now = 0;
	return rc ? rc : isc_pr_holder(d, holder, deadline, retry_now);
}

static int iscsi_cas_pr(struct vcfs_disk *d, uint64_t off, const void *expect,
			const void *newdata)
{
	struct isc_priv *p = d->priv;
	uint64_t deadline = isc_deadline(d), backoff = ISC_BACKOFF_MIN_NS;
	unsigned char *cur = malloc(p->lsec);
	struct isc_req r;
	int rc, rc2, retry_now;

	if (!cur)
		return -ENOMEM;
	pthread_mutex_lock(&p->pr_mu);
	for (;;) {
		uint64_t holder = 0;

		/*
		 * Look before reserving: while another key holds the reservation,
		 * time it (stale guard) and back off without sending RESERVE.
		 * Besides sparing a round trip, this is what makes a dead holder
		 * breakable on Debian's tgt, which leaves a refused RESERVE (a
		 * command with a parameter list) unanswered in some states.
		 */
		rc = isc_read_reservation(p, deadline, &holder);
		if (rc)
			break;
		if (holder && holder != p->key) {
			rc = isc_pr_holder(d, holder, deadline, &retry_now);
			if (rc)
				break;
			if (!retry_now) {
				if (vcfs_now_ns() + ISC_BACKOFF_MIN_NS >= deadline) {
					rc = -VCFS_ERESERVED;
					break;
				}
				isc_backoff(&backoff, deadline);
			}
			continue;
		}
		rc = isc_prout(p, SCSI_PERSISTENT_RESERVE_RESERVE, p->key, 0, deadline, &r);
		isc_req_fini(&r);
		if (rc == -VCFS_ERESERVED) {
			if (vcfs_now_ns() >= deadline)
				break;
			rc = isc_pr_conflict(d, deadline, &retry_now);
			if (rc)
				break;
			if (!retry_now)
				isc_backoff(&backoff, deadline);
			continue;
		}
		if (rc) {
			vcfs_err("%s: PERSISTENT RESERVE OUT RESERVE failed: %s", p->name,
				 vcfs_strerror(rc));
			break;
		}
		p->stale_key = 0;	/* we got it: nobody is stuck holding it */

		/* holding the reservation: no other vcfs host can CAS now */
		isc_req_init(&r, ISC_READ16);
		r.lba = off / p->lsec;
		r.buf = cur;
		r.len = p->lsec;
		rc = isc_cmd(p, &r, deadline, RETRY_TRANSPORT);
		isc_req_fini(&r);
		if (!rc && memcmp(cur, expect, p->lsec))
			rc = -VCFS_EMISCOMPARE;
		if (!rc) {
			isc_req_init(&r, ISC_WRITE16);
			r.lba = off / p->lsec;
			r.buf = (unsigned char *)newdata;
			r.len = p->lsec;
			r.fua = p->dpofua;
			rc = isc_cmd(p, &r, deadline, RETRY_TRANSPORT);
			isc_req_fini(&r);
			if (!rc && !p->dpofua)
				rc = isc_sync_range(p, off / p->lsec, 1, deadline);
		}
		/* Release even after a timeout: give it its own short budget. */
		rc2 = isc_prout(p, SCSI_PERSISTENT_RESERVE_RELEASE, p->key, 0,
				vcfs_now_ns() + d->opts.io_timeout_ms * VCFS_NS_PER_MS, &r);
		if (rc2 && rc2 != -VCFS_ERESERVED)
			vcfs_warn("%s: RELEASE failed (%s): other hosts will break the "
				  "reservation after the stale guard", p->name,
				  isc_why(&r, rc2));
		isc_req_fini(&r);
		if (rc == -VCFS_ERESERVED && vcfs_now_ns() < deadline) {
			/* Preempted between RESERVE and WRITE: the write was refused,
			 * nothing changed.  Start over (re-registering). */
			rc = isc_register(p, deadline);
			if (rc)
				break;
			continue;
		}
		if (rc && rc != -VCFS_EMISCOMPARE)
			vcfs_err("%s: compare-and-write at %llu under reservation failed: %s",
				 p->name, (unsigned long long)off, vcfs_strerror(rc));
		break;
	}
	if (rc == -VCFS_ERESERVED)
		vcfs_err("%s: compare-and-write at %llu: the LUN stayed reserved by another "
			 "host for the whole io timeout (%u ms); retry later", p->name,
			 (unsigned long long)off, d->opts.io_timeout_ms);
	pthread_mutex_unlock(&p->pr_mu);
	free(cur);
	return rc;
}

static int iscsi_cas(struct vcfs_disk *d, uint64_t off, const void *expect,
		     const void *newdata)
{
	if (d->info.cas_mode == VCFS_CAS_ATS)
		return iscsi_cas_ats(d, off, expect, newdata);
	return iscsi_cas_pr(d, off, expect, newdata);
}

/* ---------------------------------------------------------------------- */
/* open and close                                                          */

/* Log out (bounded), then free the context.  Service thread stopped. */
static void isc_logout_destroy(struct isc_priv *p, uint32_t timeout_ms)
{
	uint64_t deadline = vcfs_now_ns() + timeout_ms * VCFS_NS_PER_MS;

	if (!p->ctx)
		return;
	if (p->state == ISC_UP && iscsi_is_logged_in(p->ctx) &&
	    !iscsi_logout_async(p->ctx, NULL, NULL)) {
		/* no callback needed: wait until the target answered */
		while (p->ctx && iscsi_is_logged_in(p->ctx) && vcfs_now_ns() < deadline &&
		       iscsi_out_queue_length(p->ctx) + iscsi_queue_length(p->ctx) > 0)
			isc_service_once(p, 20);
	}
	isc_drop(p);
}

static void iscsi_close(struct vcfs_disk *d)
{
	struct isc_priv *p = d->priv;

	if (p) {
		if (p->pr_registered) {
			struct isc_req r;
			/* REGISTER with a zero service-action key unregisters */
			int rc = isc_prout(p, SCSI_PERSISTENT_RESERVE_REGISTER_AND_IGNORE_EXISTING_KEY,
					   0, 0, isc_deadline(d), &r);
			if (rc)
				vcfs_warn("%s: unregistering key %016llx failed: %s", p->name,
					  (unsigned long long)p->key, isc_why(&r, rc));
			isc_req_fini(&r);
		}
		if (p->threaded) {
			uint64_t one = 1;
			pthread_mutex_lock(&p->mu);
			p->stopping = 1;
			pthread_mutex_unlock(&p->mu);
			if (write(p->efd, &one, sizeof(one)) < 0)
				vcfs_warn("%s: eventfd write: %s", p->name, strerror(errno));
			pthread_join(p->thread, NULL);
			p->threaded = 0;
		}
		isc_logout_destroy(p, d->opts.io_timeout_ms < 2000 ? d->opts.io_timeout_ms : 2000);
		if (p->efd >= 0)
			close(p->efd);
		pthread_mutex_destroy(&p->mu);
		pthread_mutex_destroy(&p->pr_mu);
		free(p->zero);
		free(p->target);
		free(p->user);
		if (p->password) {
			explicit_bzero(p->password, strlen(p->password));
			free(p->password);
		}
		free(p);
	}
	free(d);
}

struct isc_capacity {
	uint64_t nblocks;
	uint32_t lsec, psec;
	int lbprz;
};

/* READ CAPACITY (16, or 10 where a target lacks it). */
static int isc_read_capacity(struct isc_priv *p, uint64_t deadline, struct isc_capacity *cap)
{
	struct isc_req r;
	int rc;

	memset(cap, 0, sizeof(*cap));
	isc_req_init(&r, ISC_RC16);
	r.keep_task = 1;
	rc = isc_cmd(p, &r, deadline, 0);
	if (!rc) {
		struct scsi_readcapacity16 *rc16 = scsi_datain_unmarshall(r.task);
		if (!rc16) {
			rc = -VCFS_EPROTO;
		} else {
			cap->nblocks = rc16->returned_lba + 1;
			cap->lsec = rc16->block_length;
			cap->psec = rc16->lbppbe < 8 ? cap->lsec << rc16->lbppbe : cap->lsec;
			cap->lbprz = rc16->lbprz;
		}
	}
	isc_req_fini(&r);
	if (rc == -EOPNOTSUPP || rc == -EINVAL) {
		isc_req_init(&r, ISC_RC10);
		r.keep_task = 1;
		rc = isc_cmd(p, &r, deadline, 0);
		if (!rc) {
			struct scsi_readcapacity10 *rc10 = scsi_datain_unmarshall(r.task);
			if (!rc10) {
				rc = -VCFS_EPROTO;
			} else {
				cap->nblocks = (uint64_t)rc10->lba + 1;
				cap->lsec = cap->psec = rc10->block_size;
			}
		}
		isc_req_fini(&r);
	}
	return rc;
}

/* READ CAPACITY again: the LUN may have been enlarged on the array. */
static int iscsi_get_size(struct vcfs_disk *d, uint64_t *size)
{
	struct isc_priv *p = d->priv;
	struct isc_capacity cap;
	int rc = isc_read_capacity(p, isc_deadline(d), &cap);

	if (rc)
		vcfs_err("%s: READ CAPACITY failed: %s", p->name, vcfs_strerror(rc));
	else
		*size = cap.nblocks * cap.lsec;
	return rc;
}

static const struct vcfs_disk_ops iscsi_ops = {
	.read = iscsi_read,
	.write = iscsi_write,
	.flush = iscsi_flush,
	.cas = iscsi_cas,
	.unmap = iscsi_unmap,
	.write_zeroes = iscsi_write_zeroes,
	.close = iscsi_close,
	.get_size = iscsi_get_size,
};

/* Initiator IQN: opts->initiator, else derived from the hostname and a random
 * suffix (each open is its own initiator, hence its own I_T nexus). */
static void isc_initiator_name(const struct vcfs_disk_opts *o, char *out, size_t len)
{
	char host[64] = "host", clean[64];
	size_t j = 0;

	if (o && o->initiator && *o->initiator) {
		snprintf(out, len, "%s", o->initiator);
		return;
	}
	if (gethostname(host, sizeof(host) - 1))
		snprintf(host, sizeof(host), "host");
	host[sizeof(host) - 1] = 0;
	for (size_t i = 0; host[i] && j < sizeof(clean) - 1; i++) {
		char c = host[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')
			clean[j++] = c;
	}
	clean[j] = 0;
	snprintf(out, len, "iqn.2026-11.org.vcfs:%s.%08x", j ? clean : "host",
		 (unsigned)(isc_rand64() & 0xffffffffu));
}

/*
 * First connect and login, driven by the opener, with a clear error for each
 * way it fails.  libiscsi keeps no errno or login status code for us, only
 * its message, so the message is what is classified.
 */
static int isc_connect(struct isc_priv *p, const struct vcfs_uri *u)
{
	uint32_t tmo_ms = (uint32_t)(p->tmo_ns / VCFS_NS_PER_MS);
	const char *e = p->conn_err;
	int rc;

	rc = isc_conn_start(p);
	if (rc) {
		vcfs_err("%s: %s", p->name, p->conn_err);
		return rc;
	}
	while (p->state == ISC_CONNECTING && !p->conn_failed && vcfs_now_ns() < p->conn_deadline)
		isc_service_once(p, ISC_POLL_MAX_MS);
	if (p->state == ISC_UP)
		return 0;
	if (!p->conn_failed) {
		vcfs_err("%s: %s did not complete the connection and login within the io "
			 "timeout (%u ms); is the host reachable and the target alive?",
			 p->name, p->portal, tmo_ms);
		return -ETIMEDOUT;
	}
	if (p->conn_logged_in) {
		/* logged in, so it is the LUN that failed TEST UNIT READY/INQUIRY */
		vcfs_err("%s: the target has no usable LUN %d (%s); list the LUNs with "
			 "iscsi-ls -s iscsi://%s/%s", p->name, p->lun, *e ? e : "refused",
			 u->host, u->target);
		return -VCFS_ENOLUN;
	}
	if (strcasestr(e, "auth")) {
		vcfs_err("%s: login refused: %s; check the CHAP user and password%s",
			 p->name, e, u->user ? "" : " (the target wants CHAP: give "
			 "iscsi://user%password@host/...)");
		return -VCFS_EAUTH;
	}
	if (strcasestr(e, "not found") || strcasestr(e, "not exist") ||
	    strcasestr(e, "removed")) {
		vcfs_err("%s: login refused: %s; no target named %s on %s (list them with "
			 "iscsi-ls iscsi://%s)", p->name, e, u->target, u->host, u->host);
		return -ENXIO;
	}
	if (strcasestr(e, "log in") || strcasestr(e, "login")) {
		vcfs_err("%s: login failed: %s", p->name, e);
		return -ECONNREFUSED;
	}
	if (strcasestr(e, "unreachable")) {
		vcfs_err("%s: cannot connect to %s: host or network unreachable", p->name,
			 p->portal);
		return -EHOSTUNREACH;
	}
	vcfs_err("%s: cannot connect to %s (connection refused or reset); is the target "
		 "running and the port right?", p->name, p->portal);
	return -ECONNREFUSED;
}

/* Geometry, VPD pages, FUA: fills p and d->info.  Opener only. */
static int isc_probe_geometry(struct vcfs_disk *d)
{
	struct isc_priv *p = d->priv;
	struct isc_capacity cap;
	struct isc_req r;
	int rc, has_b0 = 0, has_b2 = 0;

	/* TEST UNIT READY: consumes the unit attention a fresh login brings,
	 * and tells a missing LUN early. */
	isc_req_init(&r, ISC_TUR);
	rc = isc_cmd(p, &r, isc_deadline(d), 0);
	if (rc == -VCFS_ENOLUN)
		vcfs_err("%s: the target has no LUN %d (%s)", p->name, p->lun,
			 isc_why(&r, rc));
	else if (rc)
		vcfs_err("%s: TEST UNIT READY failed: %s", p->name, isc_why(&r, rc));
	isc_req_fini(&r);
	if (rc)
		return rc;

	isc_req_init(&r, ISC_INQUIRY);
	r.keep_task = 1;
	rc = isc_cmd(p, &r, isc_deadline(d), 0);
	if (!rc) {
		struct scsi_inquiry_standard *inq = scsi_datain_unmarshall(r.task);
		if (!inq) {
			rc = -VCFS_EPROTO;
			vcfs_err("%s: unreadable INQUIRY data", p->name);
		} else if (inq->qualifier != SCSI_INQUIRY_PERIPHERAL_QUALIFIER_CONNECTED) {
			rc = -VCFS_ENOLUN;
			vcfs_err("%s: the target has no LUN %d", p->name, p->lun);
		} else if (inq->device_type != SCSI_INQUIRY_PERIPHERAL_DEVICE_TYPE_DIRECT_ACCESS) {
			rc = -ENOTBLK;
			vcfs_err("%s: LUN %d is not a disk (SCSI device type %d); use a disk LUN",
				 p->name, p->lun, (int)inq->device_type);
		}
	} else {
		vcfs_err("%s: INQUIRY failed: %s", p->name, isc_why(&r, rc));
	}
	isc_req_fini(&r);
	if (rc)
		return rc;

	rc = isc_read_capacity(p, isc_deadline(d), &cap);
	if (rc) {
		vcfs_err("%s: READ CAPACITY failed: %s", p->name, vcfs_strerror(rc));
		return rc;
	}
	p->nblocks = cap.nblocks;
	p->lsec = cap.lsec;
	d->info.psec = cap.psec;
	p->lbprz = cap.lbprz;
	if (p->lsec < 512 || p->lsec > 4096 || (p->lsec & (p->lsec - 1))) {
		vcfs_err("%s: logical block size %u is not supported (need 512, 1024, 2048 or "
			 "4096); reformat the LUN with another block size", p->name, p->lsec);
		return -VCFS_EBADSECTOR;
	}
	d->info.lsec = p->lsec;
	d->info.size = p->nblocks * p->lsec;

	/* Which VPD pages exist (a target may fail an unknown page) */
	isc_req_init(&r, ISC_INQUIRY);
	r.evpd = 1;
	r.page = SCSI_INQUIRY_PAGECODE_SUPPORTED_VPD_PAGES;
	r.keep_task = 1;
	if (!isc_cmd(p, &r, isc_deadline(d), 0)) {
		struct scsi_inquiry_supported_pages *sp = scsi_datain_unmarshall(r.task);
		for (int i = 0; sp && i < sp->num_pages; i++) {
			has_b0 |= sp->pages[i] == SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS;
			has_b2 |= sp->pages[i] == SCSI_INQUIRY_PAGECODE_LOGICAL_BLOCK_PROVISIONING;
		}
	}
	isc_req_fini(&r);
	if (has_b0) {
		isc_req_init(&r, ISC_INQUIRY);
		r.evpd = 1;
		r.page = SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS;
		r.keep_task = 1;
		if (!isc_cmd(p, &r, isc_deadline(d), 0)) {
			struct scsi_inquiry_block_limits *bl = scsi_datain_unmarshall(r.task);
			if (bl) {
				p->max_xfer_blocks = bl->max_xfer_len;
				p->max_ws_blocks = bl->max_ws_len;
				p->max_unmap_blocks = bl->max_unmap == 0xffffffffu ? 0 :
						      bl->max_unmap;
			}
		}
		isc_req_fini(&r);
	}
	if (has_b2) {
		isc_req_init(&r, ISC_INQUIRY);
		r.evpd = 1;
		r.page = SCSI_INQUIRY_PAGECODE_LOGICAL_BLOCK_PROVISIONING;
		r.keep_task = 1;
		if (!isc_cmd(p, &r, isc_deadline(d), 0)) {
			struct scsi_inquiry_logical_block_provisioning *lbp =
				scsi_datain_unmarshall(r.task);
			if (lbp)
				p->lbpu = lbp->lbpu;
		}
		isc_req_fini(&r);
	}
	isc_req_init(&r, ISC_MODESENSE6);
	r.keep_task = 1;
	if (!isc_cmd(p, &r, isc_deadline(d), 0)) {
		struct scsi_mode_sense *ms = scsi_datain_unmarshall(r.task);
		if (ms)
			p->dpofua = (ms->device_specific_parameter & 0x10) != 0;
	}
	isc_req_fini(&r);

	d->info.max_io = ISC_MAX_IO;
	if (p->max_xfer_blocks && (uint64_t)p->max_xfer_blocks * p->lsec < ISC_MAX_IO)
		d->info.max_io = p->max_xfer_blocks * p->lsec;
	return 0;
}

/*
 * Does the target execute COMPARE AND WRITE?  Try it: an identity CAW of the
 * last sector (compare with what we just read, write the same bytes back).
 * 1 = yes, 0 = refused as unsupported, <0 = error.  Opener only.
 */
static int isc_probe_caw(struct vcfs_disk *d)
{
	struct isc_priv *p = d->priv;
	unsigned char *sec = calloc(1, p->lsec);
	uint64_t lba = p->nblocks - 1;
	struct isc_req r;
	int rc;

	if (!sec)
		return -ENOMEM;
	isc_req_init(&r, ISC_READ16);
	r.lba = lba;
	r.buf = sec;
	r.len = p->lsec;
	rc = isc_cmd(p, &r, isc_deadline(d), RETRY_TRANSPORT);
	if (rc)
		vcfs_err("%s: reading the last sector failed: %s", p->name, isc_why(&r, rc));
	isc_req_fini(&r);
	if (rc)
		goto out;
	rc = isc_caw(p, lba, sec, sec, isc_deadline(d), &r);
	if (rc == 0 || rc == -VCFS_EMISCOMPARE) {
		rc = 1;		/* a miscompare also proves the target compared */
	} else if (r.status == SCSI_STATUS_CHECK_CONDITION &&
		   r.sense.key == SCSI_SENSE_ILLEGAL_REQUEST) {
		vcfs_debug("%s: COMPARE AND WRITE refused (%s): using persistent reservations",
			  p->name, isc_why(&r, rc));
		rc = 0;
	} else {
		vcfs_err("%s: trying COMPARE AND WRITE failed: %s", p->name, isc_why(&r, rc));
	}
	isc_req_fini(&r);
out:
	free(sec);
	return rc;
}

/* Check persistent reservations work and register our key.  Opener only. */
static int isc_setup_pr(struct vcfs_disk *d)
{
	struct isc_priv *p = d->priv;
	struct isc_req r;
	int rc;

	isc_req_init(&r, ISC_PRIN);
	r.sa = SCSI_PERSISTENT_RESERVE_READ_KEYS;
	rc = isc_cmd(p, &r, isc_deadline(d), RETRY_TRANSPORT);
	if (rc == -EOPNOTSUPP || rc == -EINVAL) {
		vcfs_warn("%s: the target offers neither COMPARE AND WRITE nor persistent "
			  "reservations (%s): compare-and-write is unsafe; use another target",
			  p->name, isc_why(&r, rc));
		isc_req_fini(&r);
		return 0;
	}
	if (rc)
		vcfs_err("%s: PERSISTENT RESERVE IN failed: %s", p->name, isc_why(&r, rc));
	isc_req_fini(&r);
	if (rc)
		return rc;
	p->key = d->opts.host_key;
	while (!p->key)
		p->key = isc_rand64();
	rc = isc_register(p, isc_deadline(d));
	if (rc)
		return rc;
	p->pr_registered = 1;
	d->info.cas_mode = VCFS_CAS_ATS_PR;
	return 0;
}

int vcfs_iscsi_open(const struct vcfs_uri *u, const struct vcfs_disk_opts *o,
		    struct vcfs_disk **out)
{
	struct vcfs_disk *d = vcfs_disk_new(&iscsi_ops, o);
	struct isc_priv *p = calloc(1, sizeof(*p));
	int rdonly = o && (o->flags & VCFS_DISK_RDONLY);
	int rc, caw;

	*out = NULL;
	if (!d || !p) {
		free(d);
		free(p);
		return -ENOMEM;
	}
	p->efd = -1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->pr_mu, NULL);
	p->lun = u->lun;
	p->tmo_ns = d->opts.io_timeout_ms * VCFS_NS_PER_MS;
	p->lsec = 512;		/* until READ CAPACITY tells */
	d->priv = p;
	snprintf(p->name, sizeof(p->name), "iscsi://%s%s%s:%d/%s/%d",
		 strchr(u->host, ':') ? "[" : "", u->host, strchr(u->host, ':') ? "]" : "",
		 u->port ? u->port : ISC_DEFAULT_PORT, u->target, u->lun);
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->efd < 0) {
		rc = -errno;
		vcfs_err("%s: eventfd: %s", p->name, vcfs_strerror(rc));
		goto err_close;
	}
	isc_initiator_name(o, p->initiator, sizeof(p->initiator));
	snprintf(p->portal, sizeof(p->portal), strchr(u->host, ':') ? "[%s]:%d" : "%s:%d",
		 u->host, u->port ? u->port : ISC_DEFAULT_PORT);
	p->target = strdup(u->target);
	p->user = u->user ? strdup(u->user) : NULL;
	p->password = u->password ? strdup(u->password) : NULL;
	if (!p->target || (u->user && !p->user) || (u->password && !p->password)) {
		rc = -ENOMEM;
		goto err_close;
	}
	p->isid_rnd = (uint32_t)isc_rand64();
	p->backoff_ns = 100 * VCFS_NS_PER_MS;
	rc = isc_connect(p, u);
	if (rc)
		goto err_close;
	rc = isc_probe_geometry(d);
	if (rc)
		goto err_close;
	p->zero = calloc(1, p->lsec);
	if (!p->zero) {
		rc = -ENOMEM;
		goto err_close;
	}
	if (p->lbpu)
		d->info.caps |= VCFS_DISK_CAP_UNMAP;
	if (p->dpofua)
		d->info.caps |= VCFS_DISK_CAP_FUA;
	d->info.caps |= VCFS_DISK_CAP_ZEROES;	/* WRITE SAME, or zero writes */

	if (rdonly) {
		/* A read-only open writes nothing, not even an identity CAW or a
		 * PR registration, so it cannot compare-and-write. */
		d->info.caps |= VCFS_DISK_CAP_RDONLY;
		d->info.cas_mode = VCFS_CAS_NONE;
	} else if (d->info.size >= VCFS_DISK_MIN_SIZE) {
		caw = isc_probe_caw(d);
		if (caw < 0) {
			rc = caw;
			goto err_close;
		}
		if (caw) {
			d->info.cas_mode = VCFS_CAS_ATS;
		} else {
			rc = isc_setup_pr(d);
			if (rc)
				goto err_close;
		}
	}
	if (d->info.cas_mode == VCFS_CAS_ATS || d->info.cas_mode == VCFS_CAS_ATS_PR)
		d->info.caps |= VCFS_DISK_CAP_CAS_SHARED;

	/* From here on the service thread owns the context. */
	rc = pthread_create(&p->thread, NULL, isc_thread, p);
	if (rc) {
		rc = -rc;
		vcfs_err("%s: cannot start the service thread: %s", p->name, vcfs_strerror(rc));
		goto err_close;
	}
	p->threaded = 1;

	strcpy(d->info.backend, "iscsi");
	snprintf(d->info.desc, sizeof(d->info.desc), "%s (%s)", p->name,
		 d->info.cas_mode == VCFS_CAS_ATS ? "ATS" :
		 d->info.cas_mode == VCFS_CAS_ATS_PR ? "ATS+PR" :
		 rdonly ? "read-only" : "no atomic CAS");
	*out = d;
	return 0;

err_close:
	/* The disk's own close: unregisters (if registered), logs out, frees. */
	snprintf(d->info.desc, sizeof(d->info.desc), "%s", p->name);
	iscsi_close(d);
	return rc;
}
