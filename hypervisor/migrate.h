/*
 * migrate.h - vMotion: MIGRATE (on the source host), MIGRATE_PREPARE /
 * _COMMIT / _ABORT (on the destination, sent by the source), MIGRATE_CANCEL
 * (on the source, from anyone).  The order of the switch-over and what
 * happens on failure are in agent.h; how the datastore lock moves is in
 * guard.h.
 *
 * The destination's CPU models: VCVM_CPU_MODELS (comma list, set by
 * vcvm-agent --cpu-models: the cluster's baseline, EVC-like), else every
 * model `qemu -cpu help` lists.  PREPARE refuses a VM whose vm.json
 * cpu_model is not in it (-VCVM_ECPU naming the model and the host).
 */
#ifndef VCVM_MIGRATE_H
#define VCVM_MIGRATE_H

#include "hypervisor/agent.h"

#define VCVM_MIGRATE_POLL_MS	100	/* query-migrate period (progress only) */
#define VCVM_MIGRATE_COMMIT_MS	10000	/* destination: completed, no COMMIT that long */
#define VCVM_MIGRATE_STALL_MS	15000	/* no byte moved that long: link cut, cancel */
#define VCVM_MIGRATE_BW		(10ull << 30)	/* default max-bandwidth, bytes/s */
#define VCVM_MIGRATE_DOWNTIME	10	/* default downtime-limit, ms: a small last copy */

/* One MIGRATE* request (vcvm_handle dispatches them here). */
int vcvm_migrate_handle(const struct vcvm_env *e, const struct vcvm_request *req,
			vcvm_progress_fn progress, void *arg, struct vcvm_response *r);

/*
 * Destination, from the agent's connection process: the source of the
 * incoming vMotion of folder (PREPAREd from host from) went away (lost: its
 * connection ended) or has been silent (lost = false: called about once a
 * second while no frame comes).  The datastore lock decides (agent.h,
 * switch-over): 1 = the VM now runs here; 0 = the incoming QEMU is gone
 * (the source keeps the VM); -EAGAIN = nothing to do yet, call again.
 * why says what happened.
 */
int vcvm_migrate_orphan(const struct vcvm_env *e, const char *folder, const char *from,
			bool lost, char *why, size_t n);

/*
 * Test hook: VCVM_TEST_DIE_AFTER=completed (the source saw "completed") or
 * =lock-released (its shim released the VM's lock, COMMIT not sent) makes
 * the process running a MIGRATE _exit(99) there, as a crash would; with
 * ":stop" appended it stops itself (SIGSTOP) there instead, as a hung
 * process, until SIGCONT.  For tests/vm_migrate_fail.sh only.
 */

#endif
