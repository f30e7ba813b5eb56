/*
 * guard.h - the datastore lock that keeps two hosts from running one VM.
 *
 * The guard is <VM folder>/.vcvm.lock opened O_RDWR on the datastore.  On a
 * vcfs mount a write open takes the file's lock record exclusively for this
 * host (owned by its heartbeat slot); another host's open fails with EBUSY
 * after one I/O timeout.  On top, an OFD write lock on the whole file covers
 * datastores where opens do not exclude (a plain directory shared by
 * namespaces of one kernel; vcfs once byte-range locks are cluster-wide).
 * Nothing here asks another agent: safety is the datastore's.
 *
 * Who holds it: the VM's shim (vm.c), the process that waits for QEMU.  It
 * is taken before QEMU opens a disk, and closed when the shim exits, which is
 * right after QEMU is reaped: a QEMU crash frees it (QEMU dies with its shim
 * too: PR_SET_PDEATHSIG), a host crash frees it with the host's heartbeat.
 * For vMotion the agent asks the shim to release it (SIGUSR1) or take it
 * (SIGUSR2); the shim answers in <run_dir>/<uuid>/guard.json as soon as the
 * lock file is closed and (vcfs) its record no longer held (the shim polls
 * user.vcfs.lock: FUSE's RELEASE comes after close returns), or open with
 * the holder's name written into it (one
 * fixed-width write in place; a source taking the lock back reads the name
 * there first: vcvm_guard_retake).  On vcfs the release is the close
 * (the lock record's release CAS, sent by the kernel after the close
 * returns) and the take is the open (one read and one CAS of the record,
 * waiting up to one I/O timeout for the release) plus the OFD lock.
 *
 * Events that prove the hand-over order are appended to
 * <run_dir>/<uuid>/events.log as "<unix time in us> <host> <event>"; the
 * shim's "guard released (close N us)" and "guard taken (open N us)" time
 * the datastore's part of the hand-over.
 */
#ifndef VCVM_GUARD_H
#define VCVM_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define VCVM_GUARD_FILE		".vcvm.lock"
#define VCVM_GUARD_WAIT_MS	60000	/* vcfs waits one I/O timeout per try */

/*
 * Take the guard of folder dir for host.  Returns an fd (O_CLOEXEC) or
 * -VCVM_ERUNNING with why naming the holder ("... locked by host esx2 (slot
 * 1, generation 3)"), or -errno.
 */
int vcvm_guard_take(const char *dir, const char *host, char *why, size_t whylen);

/* Who holds the guard of dir, as text ("" if it cannot tell). */
void vcvm_guard_holder(const char *dir, char *out, size_t n);

/*
 * The shim's wait: reap qemu (status in *wstatus) while serving release/take
 * signals for *guardfd (-1 = not held).  Signals SIGCHLD, SIGUSR1, SIGUSR2
 * must be blocked by the caller before it forked QEMU.
 */
void vcvm_guard_shim_wait(pid_t qemu, int *guardfd, const char *dir, const char *host,
			  const char *rundir, int *wstatus);

/*
 * Ask the shim of the QEMU qemu_pid to release (take = false) or take the
 * guard, and wait for its answer.  0, or -VCVM_ERUNNING (why names the
 * holder), -ESRCH (no shim), -ETIMEDOUT.
 */
int vcvm_guard_ctl(const char *rundir, int qemu_pid, bool take, char *why, size_t whylen);

/*
 * The same in two halves, so that the caller can work while the shim opens
 * or closes the lock file (vMotion switches the serial port meanwhile):
 * _ask signals the shim (0, -ESRCH), _wait waits for its answer (woken by
 * inotify on the run directory, not by a timer).
 */
int vcvm_guard_ask(const char *rundir, int qemu_pid, bool take, char *why, size_t whylen);
int vcvm_guard_wait(const char *rundir, int qemu_pid, bool take, char *why, size_t whylen);

/*
 * A vMotion source taking back the guard it released: like a take, but the
 * shim reports the holder text it found in the file (every taker writes its
 * own before its shim answers, so before its QEMU can run).  If it names
 * another host, that host held the lock since our release and may have run
 * the VM: the guard is released again and -ESTALE returned (why says so);
 * this QEMU must never run again.  0 when the lock is ours and nobody else
 * had it (or the shim never let go).
 */
int vcvm_guard_retake(const char *rundir, int qemu_pid, const char *host, char *why,
		      size_t whylen);

/* Append an event line to <rundir>/events.log (best effort). */
void vcvm_event(const char *rundir, const char *host, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The same, stamped us (CLOCK_REALTIME, microseconds): when it happened. */
void vcvm_event_at(const char *rundir, const char *host, long long us, const char *fmt,
		   ...) __attribute__((format(printf, 4, 5)));

#endif
