/*
 * guard.c - the VM's datastore lock (.vcvm.lock): take, name the holder,
 * the shim's release/take service, hand-over events.  See guard.h.
 *
 * Naming the holder of a refused guard, best source first:
 *   1. the virtual xattr user.vcfs.lock of the lock file ("EXCL esx2 (slot
 *      1, gen 3)"), when the vcfs daemon offers it;
 *   2. the lock record itself, read from the datastore the mount came from
 *      (fs/admin.h, as `vcfs locks PATH` does; file: datastores);
 *   3. the text the holder wrote into the file (plain directories: the OFD
 *      lock refuses, the file is still readable).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "common/log.h"
#include "disk/disk.h"
#include "fs/admin.h"
#include "hypervisor/guard.h"
#include "hypervisor/hv_err.h"
#include "hypervisor/hv_int.h"
#include "hypervisor/vmcfg.h"

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static long long real_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

__attribute__((format(printf, 4, 0)))
static void event_v(const char *rundir, const char *host, long long us, const char *fmt,
		    va_list ap)
{
	char path[600], msg[400];
	FILE *f;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	hv_fmt(path, sizeof(path), "%s/events.log", rundir);
	f = fopen(path, "a");
	if (!f)
		return;
	fprintf(f, "%lld %s %s\n", us, host, msg);
	fclose(f);
}

void vcvm_event(const char *rundir, const char *host, const char *fmt, ...)
{
	long long us = real_us();
	va_list ap;

	va_start(ap, fmt);
	event_v(rundir, host, us, fmt, ap);
	va_end(ap);
}

/* An event stamped with an earlier time (the moment it happened). */
__attribute__((format(printf, 4, 5)))
void vcvm_event_at(const char *rundir, const char *host, long long us, const char *fmt,
		   ...)
{
	va_list ap;

	va_start(ap, fmt);
	event_v(rundir, host, us, fmt, ap);
	va_end(ap);
}

/* Holder from the lock record on the datastore the mount came from. */
static int holder_from_record(const char *path, char *out, size_t n)
{
	struct vcfs_disk_opts opts = { .flags = VCFS_DISK_RDONLY };
	char line[4096], src[1024] = "", *real, *buf = NULL;
	size_t best = 0, blen = 0;
	struct vcfs_disk *d;
	struct stat st;
	json_t *j, *h;
	FILE *mi, *mem;
	size_t i;
	int rc;

	if (stat(path, &st) < 0 || !(real = realpath(path, NULL)))
		return -errno;
	mi = fopen("/proc/self/mountinfo", "r");
	while (mi && fgets(line, sizeof(line), mi)) {
		char mnt[1024], fstype[64], s[1024], *dash = strstr(line, " - ");
		size_t l;

		if (!dash || sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1 ||
		    sscanf(dash + 3, "%63s %1023s", fstype, s) != 2 || strcmp(fstype, "fuse.vcfs"))
			continue;
		l = strlen(mnt);
		if (!strncmp(real, mnt, l) && (real[l] == '/' || !real[l] || l == 1) && l > best) {
			best = l;
			snprintf(src, sizeof(src), "%s", s);
		}
	}
	if (mi)
		fclose(mi);
	free(real);
	if (!best || strstr(src, "***"))
		return -ENOENT;
	rc = vcfs_disk_open(src, &opts, &d);
	if (rc)
		return rc;
	mem = open_memstream(&buf, &blen);
	if (!mem) {
		vcfs_disk_close(d);
		return -ENOMEM;
	}
	rc = vcfs_admin_inode_lock(d, (uint64_t)st.st_ino, mem, 1);
	fclose(mem);
	vcfs_disk_close(d);
	j = rc ? NULL : json_loads(buf, 0, NULL);
	free(buf);
	if (!j)
		return rc ? rc : -EIO;
	out[0] = 0;
	json_array_foreach(json_object_get(j, "holders"), i, h) {
		size_t l = strlen(out);

		snprintf(out + l, n - l, "%shost %s (slot %d, generation %lld)", l ? ", " : "",
			 json_string_value(json_object_get(h, "host")) ?: "?",
			 (int)json_integer_value(json_object_get(h, "slot")),
			 (long long)json_integer_value(json_object_get(h, "generation")));
	}
	json_decref(j);
	return out[0] ? 0 : -ENOENT;
}

void vcvm_guard_holder(const char *dir, char *out, size_t n)
{
	char path[VCVM_PATH_MAX + 32], buf[256];
	ssize_t l;
	int fd;

	out[0] = 0;
	hv_fmt(path, sizeof(path), "%s/%s", dir, VCVM_GUARD_FILE);
	l = getxattr(path, "user.vcfs.lock", buf, sizeof(buf) - 1);
	if (l > 0) {
		char mode[16], host[VCVM_HOST_MAX];
		int used = 0;

		buf[l] = 0;
		buf[strcspn(buf, "\n")] = 0;
		/* "MODE HOST (slot S, gen G)" -> "host HOST (MODE, slot S, gen G)" */
		if (sscanf(buf, "%15s %63s (%n", mode, host, &used) == 2 && used > 0)
			hv_fmt(out, n, "host %s (%s, %s", host, mode, buf + used);
		else
			hv_fmt(out, n, "%s", buf);
		return;
	}
	if (holder_from_record(path, out, n) == 0)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		l = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (l > 0) {
			buf[l] = 0;
			buf[strcspn(buf, "\n")] = 0;
			while (l > 0 && (buf[l - 1] == ' ' || !buf[l - 1]))
				buf[--l] = 0;
			hv_fmt(out, n, "%s", buf);
		}
	}
}

/*
 * Write who holds it into the file: for whoever is refused on a datastore
 * without lock records, and for a vMotion source that takes the lock back
 * (it must not resume if another host took it meanwhile: the text then
 * names that host).  Fixed width, so that it is one data write in place.
 */
#define NOTE_LEN	128

static void note_holder(int fd, const char *dir, const char *host)
{
	char txt[NOTE_LEN + 1];
	struct stat sb;
	int n = snprintf(txt, sizeof(txt), "host %s (pid %d, since %lld)", host, (int)getpid(),
			 (long long)time(NULL));

	if (n > NOTE_LEN - 1)
		n = NOTE_LEN - 1;
	memset(txt + n, ' ', (size_t)(NOTE_LEN - 1 - n));
	txt[NOTE_LEN - 1] = '\n';
	if ((fstat(fd, &sb) == 0 && sb.st_size != NOTE_LEN && ftruncate(fd, NOTE_LEN) < 0) ||
	    lseek(fd, 0, SEEK_SET) < 0 || write(fd, txt, NOTE_LEN) != NOTE_LEN)
		vcfs_warn("%s/%s: cannot record the holder: %s", dir, VCVM_GUARD_FILE,
			  strerror(errno));
}

/* The holder text already in the file (a previous holder's), "" if none. */
static void read_note(int fd, char *out, size_t n)
{
	ssize_t l;

	out[0] = 0;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return;
	l = read(fd, out, n - 1);
	out[l > 0 ? l : 0] = 0;
	out[strcspn(out, "\n")] = 0;
	for (l = (ssize_t)strlen(out); l > 0 && out[l - 1] == ' '; l--)
		out[l - 1] = 0;
}

static int guard_open(const char *dir, char *why, size_t whylen, long long *open_us)
{
	char path[VCVM_PATH_MAX + 32], holder[256];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd, rc;

	if (hv_fmt(path, sizeof(path), "%s/%s", dir, VCVM_GUARD_FILE) < 0)
		return -ENAMETOOLONG;
	*open_us = real_us();
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	*open_us = real_us() - *open_us;
	if (fd < 0) {
		rc = -errno;
		goto refused;
	}
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		rc = -errno;
		close(fd);
		if (rc == -EAGAIN || rc == -EACCES)
			rc = -EBUSY;
		goto refused;
	}
	return fd;

refused:
	if (rc == -EBUSY) {
		vcvm_guard_holder(dir, holder, sizeof(holder));
		hv_fmt(why, whylen, "the VM is running on another host: %s is locked by %s",
		       path, holder[0] ? holder : "another host (holder unknown)");
		return -VCVM_ERUNNING;
	}
	hv_fmt(why, whylen, "cannot take the VM's datastore lock %s: %s", path, strerror(-rc));
	return rc;
}

int vcvm_guard_take(const char *dir, const char *host, char *why, size_t whylen)
{
	long long us;
	int fd = guard_open(dir, why, whylen, &us);

	if (fd >= 0)
		note_holder(fd, dir, host);
	return fd;
}

/* ---- the shim's side ---- */

static void answer(const char *rundir, const char *state, const char *why)
{
	char path[600], tmp[620];
	json_t *j = json_pack("{s:s, s:s, s:I}", "state", state, "why", why ? why : "",
			      "time_us", (json_int_t)real_us());

	hv_fmt(path, sizeof(path), "%s/guard.json", rundir);
	hv_fmt(tmp, sizeof(tmp), "%s.tmp", path);
	if (j && json_dump_file(j, tmp, JSON_COMPACT) == 0)
		rename(tmp, path);
	json_decref(j);
}

/*
 * After the close of the guard: wait (bounded) until the lock record is
 * no longer held EXCL.  FUSE sends RELEASE after close() has returned,
 * so without this the destination's open could still find the record held
 * and back off (lock.c: exponential, up to 20 ms a wait) inside the guest's
 * pause; polling the record here, 100 us apart, answers "released" as soon
 * as the release CAS landed.  Not a vcfs mount (no user.vcfs.lock): at once.
 */
static void wait_released(const char *dir)
{
	char path[VCVM_PATH_MAX + 32], buf[256];
	struct timespec t = { 0, 100 * 1000 };
	uint64_t until = mono_ms() + 2000;
	ssize_t l;

	/* held EXCL at all: nobody else takes it before we answer "released"
	 * (the destination tries only after COMMIT), and our mount's host name
	 * need not be VCVM_HOST */
	hv_fmt(path, sizeof(path), "%s/%s", dir, VCVM_GUARD_FILE);
	do {
		l = getxattr(path, "user.vcfs.lock", buf, sizeof(buf) - 1);
		if (l <= 0)
			return;
		buf[l] = 0;
		if (strncmp(buf, "EXCL ", 5) != 0)
			return;
		nanosleep(&t, NULL);
	} while (mono_ms() < until);
}

void vcvm_guard_shim_wait(pid_t qemu, int *guardfd, const char *dir, const char *host,
			  const char *rundir, int *wstatus)
{
	struct timespec one = { 1, 0 };
	long long t0, t1, open_us = 0;
	char why[512], prev[NOTE_LEN + 1];
	siginfo_t si;
	sigset_t set;
	int sig, fd;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	for (;;) {
		if (waitpid(qemu, wstatus, WNOHANG) == qemu)
			break;
		sig = sigtimedwait(&set, &si, &one);
		if (sig == SIGUSR1) {
			t0 = real_us();
			if (*guardfd >= 0) {
				close(*guardfd);	/* vcfs: the lock record's release CAS */
				*guardfd = -1;
				wait_released(dir);
			}
			answer(rundir, "released", NULL);
			/* stamped before the close: the release cannot come earlier */
			vcvm_event_at(rundir, host, t0, "guard released (close %lld us)", real_us() - t0);
		} else if (sig == SIGUSR2) {
			if (*guardfd >= 0) {
				answer(rundir, "held", NULL);
				vcvm_event(rundir, host, "guard taken (already held)");
				continue;
			}
			why[0] = 0;
			t0 = real_us();
			fd = guard_open(dir, why, sizeof(why), &open_us);
			t1 = real_us();
			if (fd < 0) {
				answer(rundir, "refused", why);
				vcvm_event(rundir, host, "guard refused (%lld us): %s", t1 - t0, why);
				continue;
			}
			*guardfd = fd;
			/* retake (sigqueue value 1): who held it before us */
			prev[0] = 0;
			if (si.si_code == SI_QUEUE && si.si_value.sival_int == 1)
				read_note(fd, prev, sizeof(prev));
			/* before the answer: the requester may cont once it has it */
			note_holder(fd, dir, host);
			answer(rundir, "held", prev);
			vcvm_event(rundir, host, "guard taken (open %lld us: open(2) %lld, OFD lock %lld; "
				   "noted +%lld us)", t1 - t0, open_us, t1 - t0 - open_us, real_us() - t1);
		}
	}
	if (*guardfd >= 0) {
		close(*guardfd);
		*guardfd = -1;
		vcvm_event(rundir, host, "guard released (QEMU reaped)");
	}
}

/* Parent pid of pid, 0 if gone. */
static int ppid_of(int pid)
{
	char path[64], buf[512], *p;
	int fd, ppid = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %d", &ppid) != 1)
		return 0;
	return ppid;
}

int vcvm_guard_ask(const char *rundir, int qemu_pid, bool take, char *why, size_t whylen)
{
	char path[600];
	int shim = ppid_of(qemu_pid);

	if (shim <= 1) {
		hv_fmt(why, whylen, "QEMU pid %d has no vcvm shim (gone?)", qemu_pid);
		return -ESRCH;
	}
	hv_fmt(path, sizeof(path), "%s/guard.json", rundir);
	unlink(path);
	if (kill(shim, take ? SIGUSR2 : SIGUSR1) < 0) {
		hv_fmt(why, whylen, "shim pid %d: %s", shim, strerror(errno));
		return -errno;
	}
	return 0;
}

/* The shim's answer, if it is there: 0/-VCVM_ERUNNING, or -EAGAIN. */
static int read_answer(const char *path, bool take, char *why, size_t whylen)
{
	json_t *j = json_load_file(path, 0, NULL);
	const char *st;
	int rc;

	if (!j)
		return -EAGAIN;
	st = json_string_value(json_object_get(j, "state")) ?: "";
	rc = strcmp(st, take ? "held" : "released") == 0 ? 0 : -VCVM_ERUNNING;
	if (rc)
		hv_fmt(why, whylen, "%s", json_string_value(json_object_get(j, "why")) ?: st);
	json_decref(j);
	return rc;
}

/*
 * One inotify instance per process, kept: closing one waits for an SRCU
 * grace period in the kernel (fsnotify group teardown), 10-30 ms on a busy
 * host -- inside the vMotion switch-over, where the destination waits for
 * its shim's answer before cont.  A forked child makes its own (a shared
 * one would share the event queue); removing a watch does not wait.
 */
static int guard_inotify(void)
{
	static int fd = -1;
	static pid_t owner;

	if (fd >= 0 && owner == getpid())
		return fd;
	if (fd >= 0)
		close(fd);	/* the parent's: not the last reference */
	fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	owner = getpid();
	return fd;
}

int vcvm_guard_wait(const char *rundir, int qemu_pid, bool take, char *why, size_t whylen)
{
	char path[600], buf[4096];
	uint64_t deadline = mono_ms() + VCVM_GUARD_WAIT_MS + 5000;
	int ino = -1, wd = -1, rc;

	hv_fmt(path, sizeof(path), "%s/guard.json", rundir);
	for (;;) {
		rc = read_answer(path, take, why, whylen);
		if (rc != -EAGAIN)
			break;
		if (mono_ms() >= deadline || (qemu_pid > 0 && ppid_of(qemu_pid) <= 1)) {
			hv_fmt(why, whylen, "the shim of QEMU pid %d did not answer a guard %s",
			       qemu_pid, take ? "take" : "release");
			rc = -ETIMEDOUT;
			break;
		}
		if (wd < 0 && (ino = guard_inotify()) >= 0) {
			/* the answer is renamed into place: wake on that, not on a
			 * timer; look again once watching (it may have come) */
			while (read(ino, buf, sizeof(buf)) > 0)
				;	/* other directories' old events */
			wd = inotify_add_watch(ino, rundir, IN_MOVED_TO | IN_CLOSE_WRITE);
			if (wd >= 0)
				continue;
		}
		if (wd >= 0) {
			struct pollfd p = { .fd = ino, .events = POLLIN };

			if (poll(&p, 1, 200) > 0)
				while (read(ino, buf, sizeof(buf)) > 0)
					;
		} else {
			usleep(2000);
		}
	}
	if (wd >= 0)
		inotify_rm_watch(ino, wd);
	return rc;
}

int vcvm_guard_retake(const char *rundir, int qemu_pid, const char *host, char *why,
		      size_t whylen)
{
	union sigval v = { .sival_int = 1 };
	char path[600], prev[NOTE_LEN + 1] = "", other[64];
	int shim = ppid_of(qemu_pid), rc;
	json_t *j;

	if (shim <= 1) {
		hv_fmt(why, whylen, "QEMU pid %d has no vcvm shim (gone?)", qemu_pid);
		return -ESRCH;
	}
	hv_fmt(path, sizeof(path), "%s/guard.json", rundir);
	unlink(path);
	if (sigqueue(shim, SIGUSR2, v) < 0) {
		hv_fmt(why, whylen, "shim pid %d: %s", shim, strerror(errno));
		return -errno;
	}
	rc = vcvm_guard_wait(rundir, qemu_pid, true, why, whylen);
	if (rc < 0)
		return rc;
	j = json_load_file(path, 0, NULL);
	snprintf(prev, sizeof(prev), "%s", json_string_value(json_object_get(j, "why")) ?: "");
	json_decref(j);
	if (sscanf(prev, "host %63s", other) == 1 && strcmp(other, host)) {
		char w[256];

		vcvm_guard_ctl(rundir, qemu_pid, false, w, sizeof(w));
		hv_fmt(why, whylen, "host %s took the VM's lock after this host released it (%s): "
		       "this copy of the VM is stale", other, prev);
		return -ESTALE;
	}
	return 0;
}

int vcvm_guard_ctl(const char *rundir, int qemu_pid, bool take, char *why, size_t whylen)
{
	int rc = vcvm_guard_ask(rundir, qemu_pid, take, why, whylen);

	return rc < 0 ? rc : vcvm_guard_wait(rundir, qemu_pid, take, why, whylen);
}
