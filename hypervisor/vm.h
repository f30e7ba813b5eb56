/*
 * vm.h - run a VM from its folder on this host: QEMU started from vm.json,
 * driven over QMP, watched for crashes.
 *
 * Where things live:
 *   <folder>/vm.json, disks, serial.log     the VM (on the datastore, shared)
 *   <run_dir>/<uuid>/state.json             runtime state of this host's QEMU
 *   <run_dir>/<uuid>/qmp.sock, qemu.pid,    host-local: a socket, a pid and
 *        qemu.log, exit.json, lock          QEMU's own messages
 *   <state_dir>/vms/<name> -> <folder>      this host's inventory (inventory.h)
 *
 * The runtime state is never in the config: the config is shared by every
 * host and only changes on purpose; the runtime state is a fact about one
 * host's process, rewritten on every start and meaningless elsewhere.
 *
 * Process tree: vcvm forks a small supervisor (the "shim", as conmon is for
 * containers) that starts QEMU, waits for it and writes exit.json with how it
 * ended (exit code or signal).  So without any daemon, `status` can tell a
 * guest power-off from a crash (QEMU killed, or host rebooted: /run is gone).
 * The agent, when it comes, is the shim's parent and gets SIGCHLD at once.
 *
 * Safety on one host: a per-VM flock on <run_dir>/<uuid>/lock serialises
 * start/stop/reset of one VM on this host, and QEMU's own image locking
 * refuses a second writer of a disk file.  Between hosts, the datastore's
 * lock on the VM (<folder>/.vcvm.lock, guard.h) is taken before QEMU opens a
 * disk and held by the shim until QEMU is reaped (QEMU gets SIGKILL if its
 * shim dies: PR_SET_PDEATHSIG); vMotion hands it over (migrate.c).
 *
 * Timeouts (milliseconds): QMP connect VCVM_START_MS after fork; each QMP
 * command VCVM_QMP_MS; stop waits the caller's timeout for the guest's
 * power-off, then quit + VCVM_QUIT_MS, then SIGKILL.
 */
#ifndef VCVM_VM_H
#define VCVM_VM_H

#include <stdbool.h>
#include <stdint.h>
#include "hypervisor/qmp.h"
#include "hypervisor/vmcfg.h"

#define VCVM_START_MS		15000
#define VCVM_QMP_MS		5000
#define VCVM_QUIT_MS		5000
#define VCVM_STOP_DEFAULT_MS	30000

/* This host's settings (from the environment, with defaults). */
struct vcvm_env {
	char host[VCVM_HOST_MAX];	/* VCVM_HOST, else the hostname */
	char run_dir[256];		/* VCVM_RUN_DIR, /run/vcvm */
	char state_dir[256];		/* VCVM_STATE_DIR, /var/lib/vcvm */
	char qemu[256];			/* VCVM_QEMU, qemu-system-x86_64 */
	char accel[8];			/* VCVM_ACCEL=kvm|tcg|auto (default): kvm if
					 * /dev/kvm opens and the CPU has VMX/SVM */
	char aio[16];			/* VCVM_AIO=native (default)|io_uring|threads:
					 * QEMU's aio for disks (cache.direct).  Not
					 * threads by default: FUSE (libfuse < 3.15)
					 * runs direct writes to one file one at a
					 * time, so a thread pool's parallel pwrites
					 * queue up; Linux AIO keeps its queue depth
					 * (qemu-img bench, 4 KiB writes QD16 on vcfs:
					 * 4.6x faster) */
};

/* Fill e from the environment; -EINVAL with a message in why (a bad
 * VCVM_ACCEL or VCVM_AIO). */
int vcvm_env_init(struct vcvm_env *e, char *why, size_t whylen);

enum vcvm_run_state {
	VCVM_ST_STOPPED,	/* no QEMU on this host */
	VCVM_ST_RUNNING,	/* QEMU up, guest running */
	VCVM_ST_PAUSED,		/* QEMU up, guest not running (paused, migrating, ...) */
	VCVM_ST_CRASHED,	/* QEMU gone without being stopped (see last_exit) */
};

struct vcvm_status {
	enum vcvm_run_state state;
	char qemu_status[32];		/* QMP query-status ("running", "paused", ...) */
	char host[VCVM_HOST_MAX];
	int pid;
	char qmp[256];
	char accel[8];
	int64_t started;		/* unix time of the start */
	char last_exit[160];		/* how the last QEMU ended, "" if unknown */
};

const char *vcvm_state_name(enum vcvm_run_state s);

/*
 * Start the VM in folder dir.  Returns 0 once QEMU runs the guest; on
 * failure -VCVM_ERUNNING (why names the host and pid), -VCVM_EQEMUDIED (why
 * holds QEMU's last words), -VCVM_ECONFIG, -ENOENT (a disk is missing), ...
 */
int vcvm_vm_start(const struct vcvm_env *e, const char *dir, char *why, size_t whylen);

/*
 * vcvm_vm_start with flags.  VCVM_START_INCOMING: the destination of a
 * vMotion (migrate.c): QEMU with "-incoming defer", the serial port on a null
 * backend (the source still writes the log), no datastore lock yet, left
 * paused for migrate-incoming.  machine: the machine type to use instead of
 * vm.json's (the source's versioned one, e.g. pc-q35-7.2 for q35), or NULL.
 */
#define VCVM_START_INCOMING	(1u << 0)
int vcvm_vm_start_ex(const struct vcvm_env *e, const char *dir, unsigned flags,
		     const char *machine, char *why, size_t whylen);

/*
 * Stop: ACPI power button, wait up to timeout_ms for the guest to power off,
 * then quit, then SIGKILL.  hard: quit at once.  Returns when QEMU is gone
 * (its disks closed).  -VCVM_ENOTRUNNING if it was not running.
 */
int vcvm_vm_stop(const struct vcvm_env *e, const char *dir, int timeout_ms, bool hard,
		 char *why, size_t whylen);

/* Hard reset of the guest (QMP system_reset). */
int vcvm_vm_reset(const struct vcvm_env *e, const char *dir, char *why, size_t whylen);

/* State on this host.  A crashed QEMU's leftovers are cleaned up here. */
int vcvm_vm_status(const struct vcvm_env *e, const char *dir, struct vcvm_status *st);

/* A QMP connection to the running VM (for operations built on top). */
int vcvm_vm_qmp(const struct vcvm_env *e, const char *dir, struct vcvm_qmp **q);

/*
 * Create folder dir with vm.json from cfg and its first disk (disk0.raw,
 * sparse, disk_bytes; 0 = no disk).  kernel/initrd (may be NULL) are copied
 * into the folder and cfg's boot paths set to the copies.  The folder must not
 * exist yet (-EEXIST).  On failure nothing is left behind.
 */
int vcvm_vm_create(const char *dir, struct vcvm_cfg *cfg, uint64_t disk_bytes,
		   const char *kernel, const char *initrd, char *why, size_t whylen);

/*
 * Delete the VM's files (config, disks, serial logs, boot files in the
 * folder) and the folder if it is then empty.  Refuses a running VM.
 */
int vcvm_vm_destroy(const struct vcvm_env *e, const char *dir, char *why, size_t whylen);

/* Parse "10G", "512M", "4096" (bytes; K/M/G/T powers of 1024). 0 or -EINVAL. */
int vcvm_parse_size(const char *s, uint64_t *out);

#endif
