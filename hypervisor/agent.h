/*
 * agent.h - the vcvm request API: one request type per operation, answered by
 * vcvm_handle() on the host that runs (or will run) the VM.
 *
 * The CLI either calls vcvm_handle() in its own process ("direct mode") or,
 * with --host, sends the request to that host's agent (vcvm-agent.c), which
 * serves it over authenticated TCP by calling the same vcvm_handle(); agents
 * talk to each other the same way (vMotion).  wire.c implements the wire
 * shape below; this file is the contract.
 *
 * ---- Wire shape (implemented: wire.c, vcvm-agent.c) ----
 *
 * Transport: TCP, port VCVM_AGENT_PORT, between host agents and from the CLI
 * to an agent.  Messages are frames: a 4-byte big-endian length, then one
 * JSON object (at most VCVM_MSG_MAX bytes).
 *
 * Authentication (cluster secret K, 32 random bytes written as 64 hex digits
 * by `vcvm keygen` to /etc/vcvm/cluster.key (VCVM_KEY_FILE, --key), the same
 * on every host, mode 0600 enforced; nothing is processed before this;
 * nonces travel as 64 hex digits, the MACs below cover the raw bytes):
 *   agent  -> client  {"hello": {"proto": 1, "host": "esx1", "nonce": Na}}
 *   client -> agent   {"auth": {"nonce": Nc, "mac": HMAC-SHA256(K, "vcvm-c"|Na|Nc)}}
 *   agent  -> client  {"auth_ok": {"mac": HMAC-SHA256(K, "vcvm-a"|Nc|Na)}}
 *                     (or closes without a word: no oracle for a wrong key)
 * Both sides then know the other holds K; the session key is
 * Ks = HMAC-SHA256(K, "vcvm-s"|Na|Nc).  Every later frame carries "seq"
 * (strictly increasing per direction, from 1) and "mac" = HMAC-SHA256(Ks,
 * decimal(seq) "\n" type "\n" canonical JSON of the rest: the frame minus
 * seq/type/mac, keys sorted, compact, ASCII; type "" for frames without
 * one); a frame with a bad mac or an old seq
 * closes the connection (no replay, no splicing).  Frames are not encrypted:
 * no secret crosses the agent channel (VM memory goes QEMU to QEMU on its own
 * connection; QEMU's tls-creds are the upgrade path for that stream).
 *
 * Request:   {"type": "start", "seq": 7, "vm": "web01", "args": {...}, "mac": ...}
 * Progress:  {"seq": 8, "progress": {"phase": "memory", "done": 123, "total": 456}}
 *            zero or more, for long operations (the CLI draws a progress line)
 * Response:  {"seq": 9, "rc": 0, "error": "why, naming the field or host", "data": {...}}
 *            rc is in vcfs's one error space (values are fixed by the X-macros).
 *
 * Compatibility: a request type is never changed, only added; an agent that
 * does not know a type answers rc = -ENOSYS naming its protocol version; a new
 * optional argument must default to the old behaviour.
 *
 * ---- Who decides what ----
 *
 * Safety never rests on agents agreeing.  START takes the VM's lock on the
 * datastore (<folder>/.vcvm.lock opened for writing: exclusive, owned by this
 * host's heartbeat slot; plus an OFD lock) before QEMU opens a disk; a lock
 * held by a live host fails with -VCVM_ERUNNING naming that host (from the
 * user.vcfs.lock xattr or the lock record); a dead host's lock is freed by
 * the heartbeat protocol (lock/lock.h) after D.  The VM's shim holds the
 * lock and exits when it has reaped QEMU, so a QEMU crash frees it and
 * QEMU dies with its shim (guard.h); a crashed host's locks go with its
 * heartbeat.  Disks are multi-writer files (user.vcfs.multiwriter) so a
 * vMotion destination can open them; QEMU's image locking (cluster-wide
 * byte-range locks on vcfs) guards them.
 *
 * vMotion (MIGRATE, run by the source agent; the CLI shows its progress):
 *   1. source -> destination: MIGRATE_PREPARE {folder, cpu_model, machine}:
 *      the destination checks it can see the folder and runs the CPU model,
 *      starts QEMU with the same device layout and "-incoming defer"
 *      (serial port on a null backend until commit), late-block-activate,
 *      migrate-incoming on tcp:<its address>:0 (below), answers the port;
 *      the source connects to the address it reached the agent on.  Its disks stay
 *      inactive (QEMU does not write an incoming VM's disks).
 *   2. source: migrate-set-capabilities pause-before-switchover=on (+ events),
 *      migrate-set-parameters max-bandwidth (high on fast links),
 *      downtime-limit (10 ms: a small last copy; the target for the whole
 *      pause is 50 ms); migrate tcp:dest:port; progress from query-migrate /
 *      MIGRATION events; auto-converge if the dirty rate wins.
 *   3. switch-over, in this order (no moment with two writers):
 *        source: event STOP (its timestamp starts the guest's pause), then
 *                MIGRATION "pre-switchover": serial port to null (the log's
 *                release on the datastore overlaps the last copy);
 *        source: migrate-continue at once -> QEMU sends the last pages and
 *                the device state, flushes and inactivates its disks
 *                (before the end of the stream): its last write has landed;
 *        source: MIGRATION event "completed" (blocking on the monitor, no
 *                polling) -> releases the VM's datastore lock (its shim
 *                closes .vcvm.lock: on vcfs the lock record's release CAS);
 *        source -> destination: MIGRATE_COMMIT on the connection of PREPARE;
 *        destination: incoming "completed" (MIGRATION event on the monitor
 *                it kept open since PREPARE) -> its shim opens .vcvm.lock
 *                (one read + CAS of the record; vcfs waits for the release)
 *                while the serial port is pointed at the log -> "cont" at
 *                once: its first write comes after the lock is its own ->
 *                progress frame "resumed" (the source's switch-over time
 *                ends there) -> bookkeeping (ha.last_host) -> response
 *                with resume_us, the timestamp of its QEMU's RESUME event
 *                (the guest's pause, pause_ms, is RESUME - STOP);
 *        source: query-migrate (QEMU's figures), quits QEMU, records
 *                "migrated to HOST".
 *      Each step is logged with its time in <run_dir>/<uuid>/events.log
 *      (the shims time their close/open of the lock file there).
 *   4. failure before "completed" (destination dies, its agent hangs up, link
 *      cut = no progress for 15 s, MIGRATE_CANCEL; MIGRATE_CANCEL also
 *      resumes a source whose MIGRATE process died, if its shim still holds
 *      the lock): migrate_cancel, the source "cont"s, it never gave up its
 *      lock; the destination's QEMU is killed (MIGRATE_ABORT).
 *   5. failure after "completed": the lock decides, and a QEMU runs the guest
 *      only while its shim holds it.  The source releases it only while
 *      paused after its last write, and never resumes once it let go unless
 *      its own shim takes it back; the destination conts only after its shim
 *      took it.  So:
 *      - COMMIT fails: the source asks its shim to retake the lock; taken ->
 *        it resumes and aborts the destination; held by the destination (it
 *        finished alone, below) -> the VM runs there, the source quits QEMU;
 *        taken but the destination held it meanwhile -> stale (below).
 *      - the source's MIGRATE process dies (or its host): the destination's
 *        agent sees the connection end (at once; a dead host: TCP keepalive,
 *        ~25 s).  If its incoming migration completed (the destination QEMU
 *        holds the whole state, paused), it tries the lock: free means the
 *        source released it after its last write -> cont there; held means
 *        the source never let go and may resume -> it kills its QEMU.  An
 *        incoming migration that did not complete -> it kills its QEMU.
 *        Then it sends MIGRATE_CANCEL to the source's agent (best effort;
 *        from_host = itself when it dropped its copy), which resumes an
 *        orphaned source whose shim still holds the lock (from
 *        pre-switchover or postmigrate), or one that released it if the
 *        destination dropped its copy and the shim can take the lock back,
 *        or quits a stale one whose lock another host holds now (`vcvm
 *        migrate --cancel` does the same, without the dropped case).
 *      - the source stays silent with the lock released (a hung process):
 *        the destination tries the lock after VCVM_MIGRATE_COMMIT_MS with
 *        its incoming migration completed, and retries while it is refused;
 *        a COMMIT that arrives after it finished alone is answered "done".
 *      - a source takes the lock back only through vcvm_guard_retake: every
 *        taker writes its name into .vcvm.lock before its shim answers (so
 *        before its QEMU can run), and the retake reads it first; another
 *        host's name means that host held the lock since our release and may
 *        have run the guest (it ran, then died, freeing the lock): our copy
 *        is stale, the lock is let go again and our QEMU is stopped.
 *      Either way: running exactly once, where the lock is, and never from
 *      stale memory.  Not covered: both agents (or hosts) gone after the
 *      release, or the last case: the VM then runs nowhere until a `vcvm
 *      start` (disks consistent: the last writer's writes landed).
 *   The destination's incoming QEMU listens on this host's address from the
 *   hosts file (VCVM_HOSTS_FILE) when it has one, else on every address.
 *   The cluster's CPU model (the lowest common one, EVC-like) is in each
 *   vm.json's cpu_model; MIGRATE_PREPARE refuses a model the host lacks
 *   (vcvm-agent --cpu-models, else QEMU's -cpu help).  An agent whose
 *   connection from a source ends between PREPARE and COMMIT/ABORT runs
 *   step 5's check (vcvm_migrate_orphan, migrate.h).  MIGRATE runs in direct
 *   mode too (the CLI is the source); PREPARE/COMMIT/ABORT need the
 *   destination's agent.
 *
 * Storage vMotion (MOVE_STORAGE, on the running host; storage_move.c):
 *   per disk: create the target file (same size, sparse) under the new
 *   folder, blockdev-add it (file + format, cache.direct), blockdev-mirror
 *   sync=full copy-mode=write-blocking (converges whatever the guest writes),
 *   progress from query-block-jobs, on BLOCK_JOB_READY block-job-complete, on
 *   BLOCK_JOB_COMPLETED rewrite vm.json (atomic rename) with the new path,
 *   then remove the old file.  Zeroes are not copied (detect-zeroes=unmap),
 *   so holes stay holes.  A failure before complete: block-job-cancel, remove
 *   the partial target, the config never changed.
 *
 * HOST_INFO (ops.c; direct mode too): host, accel, the CPU models it runs
 *   and its best ladder model (cpumodel.h), load1, mem_available_mib,
 *   vms_running -- for `vcvm cluster-cpu` now, DRS and HA placement later.
 *
 * HA, DRS, FT (later waves; the types are reserved now):
 *   HA_RESTART  start a VM whose host was declared dead (sent by the HA
 *               master, itself elected by a datastore lock), in ha.priority order.
 *   FT_ENABLE / FT_DISABLE / FT_FAILOVER  a secondary on ft.secondary kept in
 *               lock-step (COLO or checkpointing); failover promotes it.
 */
#ifndef VCVM_AGENT_H
#define VCVM_AGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "hypervisor/vm.h"

#define VCVM_AGENT_PORT		9077
#define VCVM_AGENT_PROTO	1
#define VCVM_MSG_MAX		(16u << 20)

/*        name                    number  wire name */
#define VCVM_REQUESTS(X)                                         \
	X(VCVM_REQ_PING,              1,  "ping")                \
	X(VCVM_REQ_CREATE,            2,  "create")              \
	X(VCVM_REQ_START,             3,  "start")               \
	X(VCVM_REQ_STOP,              4,  "stop")                \
	X(VCVM_REQ_RESET,             5,  "reset")               \
	X(VCVM_REQ_STATUS,            6,  "status")              \
	X(VCVM_REQ_LIST,              7,  "list")                \
	X(VCVM_REQ_DESTROY,           8,  "destroy")             \
	X(VCVM_REQ_REGISTER,          9,  "register")            \
	X(VCVM_REQ_UNREGISTER,        10, "unregister")          \
	X(VCVM_REQ_MIGRATE,           32, "migrate")             \
	X(VCVM_REQ_MIGRATE_PREPARE,   33, "migrate-prepare")     \
	X(VCVM_REQ_MIGRATE_COMMIT,    34, "migrate-commit")      \
	X(VCVM_REQ_MIGRATE_ABORT,     35, "migrate-abort")       \
	X(VCVM_REQ_MIGRATE_CANCEL,    36, "migrate-cancel")      \
	X(VCVM_REQ_MOVE_STORAGE,      48, "move-storage")        \
	X(VCVM_REQ_MOVE_CANCEL,       49, "move-cancel")         \
	X(VCVM_REQ_HOST_INFO,         64, "host-info")           \
	X(VCVM_REQ_HA_RESTART,        65, "ha-restart")          \
	X(VCVM_REQ_FT_ENABLE,         80, "ft-enable")           \
	X(VCVM_REQ_FT_DISABLE,        81, "ft-disable")          \
	X(VCVM_REQ_FT_FAILOVER,       82, "ft-failover")

enum vcvm_req_type {
#define VCVM_REQ_ENUM(name, num, wire) name = (num),
	VCVM_REQUESTS(VCVM_REQ_ENUM)
#undef VCVM_REQ_ENUM
};

const char *vcvm_req_name(enum vcvm_req_type t);	/* wire name, "?" if unknown */
int vcvm_req_from_name(const char *s);		/* type, or -ENOSYS */

/* One request.  vm: a registered name or a folder path. */
struct vcvm_request {
	enum vcvm_req_type type;
	uint64_t seq;
	char vm[VCVM_PATH_MAX];
	union {
		struct {			/* CREATE: folder = datastore/name */
			char datastore[VCVM_PATH_MAX];
			uint32_t memory_mib, vcpus;	/* 0 = default */
			uint64_t disk_bytes;		/* 0 = no disk */
			char cpu_model[64];		/* "" = default */
			char kernel[VCVM_PATH_MAX], initrd[VCVM_PATH_MAX];	/* "" = none */
			char append[1024];
		} create;
		struct {			/* STOP */
			int timeout_ms;			/* wait for the guest; 0 = default */
			bool hard;			/* power off at once */
		} stop;
		struct {			/* MIGRATE (to the source's agent) */
			char to_host[VCVM_HOST_MAX];
			uint64_t max_bandwidth;		/* bytes/s, 0 = line rate */
			uint32_t downtime_ms;		/* 0 = default (50) */
		} migrate;
		struct {			/* MIGRATE_PREPARE (source -> destination) */
			char folder[VCVM_PATH_MAX];
			char cpu_model[64], machine[32];
			char from_host[VCVM_HOST_MAX];
		} migrate_prepare;
		struct {			/* MIGRATE_COMMIT / _ABORT (source -> destination);
						 * MIGRATE_CANCEL: "" from a user, else the
						 * destination that lost its source and dropped
						 * its copy (never ran it): optional */
			char from_host[VCVM_HOST_MAX];
		} migrate_commit;
		struct {			/* MOVE_STORAGE */
			char to[VCVM_PATH_MAX];		/* datastore folder or path */
			int disk;			/* -1 = every disk */
			uint64_t max_bandwidth;		/* 0 = unlimited */
		} move_storage;
		struct {			/* HA_RESTART (HA master -> chosen host) */
			char dead_host[VCVM_HOST_MAX];
		} ha_restart;
		struct {			/* FT_ENABLE */
			char secondary[VCVM_HOST_MAX];
		} ft;
	} u;
};

/* Progress of a long operation, sent before its response. */
struct vcvm_progress {
	const char *phase;		/* "memory", "switch-over", "mirror", ... */
	uint64_t done, total;		/* bytes (or steps) */
};

typedef void (*vcvm_progress_fn)(const struct vcvm_progress *p, void *arg);

/* The answer: rc in the one error space, why for humans, data for programs. */
struct vcvm_response {
	int rc;
	char why[512];
	json_t *data;			/* owned; release with vcvm_response_free */
};

/*
 * Run one request on this host.  Returns resp->rc.  progress may be NULL.
 * Types that belong to the agent (HA, FT) answer -ENOSYS in
 * direct mode; MIGRATE* run here (migrate.h).  MOVE_STORAGE and MOVE_CANCEL run here, on the
 * host that runs the VM (storage_move.h); progress gets "mirror"/"copy".
 */
int vcvm_handle(const struct vcvm_env *e, const struct vcvm_request *req,
		vcvm_progress_fn progress, void *arg, struct vcvm_response *resp);

void vcvm_response_free(struct vcvm_response *resp);

#endif
