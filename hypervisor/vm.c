/*
 * vm.c - QEMU from vm.json: command line, supervisor shim, QMP control,
 * runtime state, crash detection.  See vm.h for where files live and why.
 *
 * Lock order: the per-VM run lock (<run_dir>/<uuid>/lock, flock) is taken
 * first and held for a whole start/stop/reset/destroy; the config file is
 * read and written under it.  Start and destroy then take the VM's datastore
 * lock (guard.h): start hands it to the shim, which keeps it until QEMU is
 * reaped; destroy holds it while it deletes.  status() reads without the lock (it only looks)
 * but cleans up a dead QEMU's leftovers only under it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "hypervisor/guard.h"
#include "hypervisor/hv_err.h"
#include "hypervisor/hv_int.h"
#include "hypervisor/vm.h"

#define SHORT_MS	2000	/* status probes of a running QEMU */
#define LOCK_WAIT_MS	60000	/* another vcvm working on this VM */

__attribute__((format(printf, 3, 4)))
static void say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *vcvm_state_name(enum vcvm_run_state s)
{
	switch (s) {
	case VCVM_ST_STOPPED: return "stopped";
	case VCVM_ST_RUNNING: return "running";
	case VCVM_ST_PAUSED:  return "paused";
	case VCVM_ST_CRASHED: return "crashed";
	}
	return "?";
}

/* ---- host environment ---- */

static void env_str(char *out, size_t n, const char *var, const char *dflt)
{
	const char *v = getenv(var);

	snprintf(out, n, "%s", v && *v ? v : dflt);
}

/*
 * Can this CPU run KVM guests?  /dev/kvm alone is not enough: some nested
 * hosts (micro-VMs) expose it without VMX/SVM, and a 64-bit guest then hangs
 * in its first instructions with no error anywhere.  KVM needs the flag.
 */
static bool cpu_has_virt(void)
{
	char line[4096];
	bool yes = false;
	FILE *f = fopen("/proc/cpuinfo", "r");

	if (!f)
		return false;
	while (!yes && fgets(line, sizeof(line), f))
		if (strncmp(line, "flags", 5) == 0)
			yes = strstr(line, " vmx") || strstr(line, " svm");
	fclose(f);
	return yes;
}

int vcvm_env_init(struct vcvm_env *e, char *why, size_t whylen)
{
	char hn[VCVM_HOST_MAX] = "localhost";
	int fd;

	memset(e, 0, sizeof(*e));
	if (gethostname(hn, sizeof(hn)) < 0)
		snprintf(hn, sizeof(hn), "localhost");
	hn[sizeof(hn) - 1] = 0;
	env_str(e->host, sizeof(e->host), "VCVM_HOST", hn);
	env_str(e->run_dir, sizeof(e->run_dir), "VCVM_RUN_DIR", "/run/vcvm");
	env_str(e->state_dir, sizeof(e->state_dir), "VCVM_STATE_DIR", "/var/lib/vcvm");
	env_str(e->qemu, sizeof(e->qemu), "VCVM_QEMU", "qemu-system-x86_64");
	env_str(e->accel, sizeof(e->accel), "VCVM_ACCEL", "auto");
	if (strcmp(e->accel, "auto") == 0) {
		fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		snprintf(e->accel, sizeof(e->accel), "%s", fd >= 0 && cpu_has_virt() ? "kvm" : "tcg");
		if (fd >= 0)
			close(fd);
	}
	if (strcmp(e->accel, "kvm") && strcmp(e->accel, "tcg")) {
		say(why, whylen, "VCVM_ACCEL=%s: must be kvm, tcg or auto", e->accel);
		return -EINVAL;
	}
	env_str(e->aio, sizeof(e->aio), "VCVM_AIO", "native");
	if (strcmp(e->aio, "native") && strcmp(e->aio, "io_uring") && strcmp(e->aio, "threads")) {
		say(why, whylen, "VCVM_AIO=%s: must be native, io_uring or threads", e->aio);
		return -EINVAL;
	}
	return 0;
}

/* ---- small file helpers ---- */

static int mkdir_p(const char *path)
{
	char tmp[512], *p;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Write a JSON document to path atomically (tmp + fsync + rename). */
static int write_json(const char *path, json_t *doc)
{
	char tmp[600];
	int fd, rc = 0;
	char *s = json_dumps(doc, JSON_INDENT(2));
	size_t n;

	if (!s)
		return -ENOMEM;
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	n = strlen(s);
	s[n] = '\n';
	if (write(fd, s, n + 1) != (ssize_t)(n + 1) || fsync(fd) < 0)
		rc = errno ? -errno : -EIO;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
out:
	free(s);
	return rc;
}

static void rundir_of(const struct vcvm_env *e, const struct vcvm_cfg *c, char *out, size_t n)
{
	hv_fmt(out, n, "%s/%s", e->run_dir, c->uuid);
}

static void in_dir(char *out, size_t n, const char *dir, const char *file)
{
	hv_fmt(out, n, "%s/%s", dir, file);
}

/* Last lines of a file (QEMU's last words), joined with "; ". */
static void tail_of(const char *path, char *out, size_t outlen, int lines)
{
	char buf[4096], *p, *start;
	ssize_t n;
	off_t size;
	int fd = open(path, O_RDONLY | O_CLOEXEC), seen = 0;

	out[0] = 0;
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	lseek(fd, size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = 0;
	for (start = buf + n; start > buf; start--)
		if (start[-1] == '\n' && ++seen == lines)
			break;
	for (p = start; *p; p++)
		if (*p == '\n')
			*p = '|';
	hv_fmt(out, outlen, "%s", start);
}

/* Start time of pid (field 22 of /proc/pid/stat), 0 if gone or a zombie. */
static unsigned long long proc_start(int pid)
{
	char path[64], buf[1024], *p, state;
	unsigned long long st = 0;
	ssize_t n;
	int fd, i;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');		/* comm may hold spaces and parentheses */
	if (!p || sscanf(p + 2, "%c", &state) != 1 || state == 'Z' || state == 'X')
		return 0;
	for (i = 3, p += 2; i < 22 && p; i++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p || sscanf(p, "%llu", &st) != 1)
		return 0;
	return st;
}

static bool qemu_alive(int pid, unsigned long long start)
{
	unsigned long long s = proc_start(pid);

	return s != 0 && (start == 0 || s == start);
}

int vcvm_run_lock(const char *rundir, char *why, size_t whylen)
{
	char path[600];
	uint64_t deadline = mono_ms() + LOCK_WAIT_MS;
	int fd, rc;

	rc = mkdir_p(rundir);
	if (rc < 0) {
		say(why, whylen, "%s: %s", rundir, vcvm_strerror(rc));
		return rc;
	}
	in_dir(path, sizeof(path), rundir, "lock");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		say(why, whylen, "%s: %s", path, vcvm_strerror(rc));
		return rc;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK || mono_ms() > deadline) {
			rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
			say(why, whylen, "another vcvm is working on this VM (%s)", path);
			close(fd);
			return rc;
		}
		sleep_ms(50);
	}
	return fd;
}

/* ---- runtime state ---- */

struct runstate {
	int pid;
	unsigned long long pid_start;
	char host[VCVM_HOST_MAX];
	char qmp[256];
	char accel[8];
	int64_t started;
};

static int state_read(const char *rundir, struct runstate *rs)
{
	char path[600];
	json_t *j;

	memset(rs, 0, sizeof(*rs));
	in_dir(path, sizeof(path), rundir, "state.json");
	j = json_load_file(path, 0, NULL);
	if (!j)
		return access(path, F_OK) == 0 ? -EIO : -ENOENT;
	rs->pid = (int)json_integer_value(json_object_get(j, "pid"));
	rs->pid_start = (unsigned long long)json_integer_value(json_object_get(j, "pid_start"));
	rs->started = json_integer_value(json_object_get(j, "started"));
	snprintf(rs->host, sizeof(rs->host), "%s", json_string_value(json_object_get(j, "host")) ?: "");
	snprintf(rs->qmp, sizeof(rs->qmp), "%s", json_string_value(json_object_get(j, "qmp")) ?: "");
	snprintf(rs->accel, sizeof(rs->accel), "%s",
		 json_string_value(json_object_get(j, "accel")) ?: "");
	json_decref(j);
	return 0;
}

static int state_write(const char *rundir, const struct runstate *rs, const char *dir,
		       const struct vcvm_cfg *c)
{
	char path[600];
	json_t *j;
	int rc;

	in_dir(path, sizeof(path), rundir, "state.json");
	j = json_pack("{s:s, s:s, s:s, s:i, s:I, s:s, s:s, s:I}", "name", c->name, "folder", dir,
		      "host", rs->host, "pid", rs->pid, "pid_start", (json_int_t)rs->pid_start,
		      "qmp", rs->qmp, "accel", rs->accel, "started", (json_int_t)rs->started);
	if (!j)
		return -ENOMEM;
	rc = write_json(path, j);
	json_decref(j);
	return rc;
}

/* exit.json: how the last QEMU ended.  abnormal: killed or failed. */
static void exit_read(const char *rundir, char *out, size_t n, bool *abnormal)
{
	char path[600];
	json_t *j;

	out[0] = 0;
	*abnormal = false;
	in_dir(path, sizeof(path), rundir, "exit.json");
	j = json_load_file(path, 0, NULL);
	if (!j)
		return;
	snprintf(out, n, "%s", json_string_value(json_object_get(j, "reason")) ?: "");
	*abnormal = json_is_true(json_object_get(j, "abnormal"));
	json_decref(j);
}

static void exit_write(const char *rundir, const char *reason, bool abnormal)
{
	char path[600];
	json_t *j = json_pack("{s:s, s:b, s:I}", "reason", reason, "abnormal", abnormal,
			      "time", (json_int_t)time(NULL));

	in_dir(path, sizeof(path), rundir, "exit.json");
	if (j)
		write_json(path, j);
	json_decref(j);
}

static void state_clear(const char *rundir)
{
	static const char *const files[] = { "state.json", "qmp.sock", "qemu.pid" };
	char path[600];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		in_dir(path, sizeof(path), rundir, files[i]);
		unlink(path);
	}
}

/* ---- QEMU command line ---- */

struct argv {
	char **v;
	int n, cap;
	int oom;
};

__attribute__((format(printf, 2, 3)))
static void arg(struct argv *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (a->oom)
		return;
	if (a->n + 2 > a->cap) {
		int ncap = a->cap ? a->cap * 2 : 64;
		char **nv = realloc(a->v, sizeof(char *) * (size_t)ncap);

		if (!nv) {
			a->oom = 1;
			return;
		}
		a->v = nv;
		a->cap = ncap;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) {
		a->oom = 1;
		va_end(ap);
		return;
	}
	va_end(ap);
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void arg_free(struct argv *a)
{
	int i;

	for (i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
}

/* A value inside QEMU's key=value,... syntax: commas doubled. */
static const char *optesc(const char *s, char *buf, size_t n)
{
	size_t o = 0;

	for (; *s && o + 2 < n; s++) {
		buf[o++] = *s;
		if (*s == ',')
			buf[o++] = ',';
	}
	buf[o] = 0;
	return buf;
}

static void arg_json(struct argv *a, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	if (!s) {
		a->oom = 1;
	} else {
		arg(a, "%s", s);
		free(s);
	}
	json_decref(j);
}

static int build_argv(const struct vcvm_env *e, const char *dir, const struct vcvm_cfg *c,
		      const char *rundir, struct argv *a, unsigned flags)
{
	char path[VCVM_PATH_MAX + 64], esc[2 * (VCVM_PATH_MAX + 64)];
	bool scsi = false;
	unsigned i, sata = 0;

	arg(a, "%s", e->qemu);
	arg(a, "-name");
	arg(a, "guest=%s,debug-threads=on", c->name);
	arg(a, "-uuid");
	arg(a, "%s", c->uuid);
	arg(a, "-machine");
	arg(a, "%s", c->machine);
	arg(a, "-accel");
	arg(a, "%s", e->accel);
	arg(a, "-cpu");
	arg(a, "%s,enforce", c->cpu_model);	/* refuse a model this host cannot run */
	arg(a, "-m");
	arg(a, "%u", c->memory_mib);
	arg(a, "-smp");
	arg(a, "%u", c->vcpus);
	arg(a, "-nodefaults");
	arg(a, "-no-user-config");
	arg(a, "-display");
	arg(a, "none");
	arg(a, "-msg");
	arg(a, "timestamp=on");
	arg(a, "-S");			/* paused until we are connected: no event lost */

	in_dir(path, sizeof(path), rundir, "qmp.sock");
	arg(a, "-qmp");
	arg(a, "unix:%s,server=on,wait=off", optesc(path, esc, sizeof(esc)));
	in_dir(path, sizeof(path), rundir, "qemu.pid");
	arg(a, "-pidfile");
	arg(a, "%s", path);

	vcvm_cfg_path(dir, c->serial_log, path, sizeof(path));
	arg(a, "-chardev");
	if (flags & VCVM_START_INCOMING)	/* the source writes the log until commit */
		arg(a, "null,id=serial0");
	else
		arg(a, "file,id=serial0,path=%s,append=on", optesc(path, esc, sizeof(esc)));
	arg(a, "-serial");
	arg(a, "chardev:serial0");

	if (c->kernel[0]) {
		vcvm_cfg_path(dir, c->kernel, path, sizeof(path));
		arg(a, "-kernel");
		arg(a, "%s", path);
		if (c->initrd[0]) {
			vcvm_cfg_path(dir, c->initrd, path, sizeof(path));
			arg(a, "-initrd");
			arg(a, "%s", path);
		}
		if (c->append[0]) {
			arg(a, "-append");
			arg(a, "%s", c->append);
		}
	}

	/*
	 * Disks: protocol node (file, O_DIRECT, aio e->aio: Linux AIO by
	 * default, see vm.h) under a format node; discards pass down so holes
	 * stay holes.  JSON syntax: no escaping of file names.
	 */
	for (i = 0; i < c->ndisks; i++) {
		const struct vcvm_disk *d = &c->disks[i];
		char fnode[16], dnode[16];

		snprintf(fnode, sizeof(fnode), "file%u", i);
		snprintf(dnode, sizeof(dnode), "disk%u", i);
		vcvm_cfg_path(dir, d->file, path, sizeof(path));
		arg(a, "-blockdev");
		arg_json(a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:b, s:b}}", "driver", "file",
				      "node-name", fnode, "filename", path, "aio", e->aio,
				      "discard", "unmap", "cache", "direct", 1, "no-flush", 0));
		arg(a, "-blockdev");
		arg_json(a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:b, s:b}}",
				      "driver", vcvm_fmt_name(d->format), "node-name", dnode,
				      "file", fnode, "discard", "unmap", "detect-zeroes", "unmap",
				      "cache", "direct", 1, "no-flush", 0));
		arg(a, "-device");
		switch (d->bus) {
		case VCVM_BUS_VIRTIO:
			arg(a, "virtio-blk-pci,drive=%s,id=vd%u%s", dnode, i, i == 0 ? ",bootindex=1" : "");
			break;
		case VCVM_BUS_SATA:
			arg(a, "ide-hd,drive=%s,id=sd%u,bus=ide.%u%s", dnode, i, sata++,
			    i == 0 ? ",bootindex=1" : "");
			break;
		case VCVM_BUS_SCSI:
			if (!scsi) {	/* the controller first: -device it, -device disk */
				arg(a, "virtio-scsi-pci,id=scsi0");
				arg(a, "-device");
				scsi = true;
			}
			arg(a, "scsi-hd,drive=%s,id=sc%u,bus=scsi0.0%s", dnode, i,
			    i == 0 ? ",bootindex=1" : "");
			break;
		}
	}
	if (sata > 6)
		return -E2BIG;
	if (flags & VCVM_START_INCOMING) {
		arg(a, "-incoming");
		arg(a, "defer");
	}
	for (i = 0; i < c->nnics; i++) {
		const struct vcvm_nic *n = &c->nics[i];

		if (strcmp(n->network, "user") == 0) {
			arg(a, "-netdev");
			arg(a, "user,id=net%u", i);
			arg(a, "-device");
			arg(a, "%s,netdev=net%u,mac=%s,id=nic%u", n->model, i, n->mac, i);
		} else {
			arg(a, "-device");
			arg(a, "%s,mac=%s,id=nic%u", n->model, n->mac, i);
		}
	}
	return a->oom ? -ENOMEM : 0;
}

/*
 * The shim: a child that starts QEMU in its own session, waits for it and
 * records how it ended.  Never returns.
 */
__attribute__((noreturn))
static void shim(const char *rundir, struct argv *a, int guardfd, const char *dir,
		 const char *host)
{
	char path[600], reason[160];
	sigset_t sigs, old;
	int fd, st;
	pid_t q;

	setsid();
	in_dir(path, sizeof(path), rundir, "qemu.log");
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0)
		dup2(fd, 0);
	/* the VM's datastore lock (guard.h) is the one fd we keep, as fd 3 */
	if (guardfd >= 0 && guardfd != 3)
		guardfd = dup3(guardfd, 3, O_CLOEXEC) == 3 ? 3 : -1;
	closefrom(guardfd == 3 ? 4 : 3);	/* no inherited locks or sockets */
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGCHLD);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGUSR2);
	sigprocmask(SIG_BLOCK, &sigs, &old);

	q = fork();
	if (q < 0)
		_exit(126);
	if (q == 0) {
		/* QEMU never outlives the shim that holds its lock */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(a->v[0], a->v);
		fprintf(stderr, "vcvm: exec %s: %s\n", a->v[0], strerror(errno));
		_exit(127);
	}
	vcvm_guard_shim_wait(q, &guardfd, dir, host, rundir, &st);
	if (WIFSIGNALED(st))
		snprintf(reason, sizeof(reason), "QEMU killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else if (WEXITSTATUS(st) == 0)
		snprintf(reason, sizeof(reason), "QEMU exited (guest powered off or quit)");
	else
		snprintf(reason, sizeof(reason), "QEMU exited with status %d", WEXITSTATUS(st));
	fprintf(stderr, "vcvm-shim: %s\n", reason);
	exit_write(rundir, reason, !(WIFEXITED(st) && WEXITSTATUS(st) == 0));
	_exit(0);
}

static int read_pidfile(const char *rundir)
{
	char path[600], buf[32];
	int fd = -1, pid = 0;
	ssize_t n;

	in_dir(path, sizeof(path), rundir, "qemu.pid");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = 0;
		pid = atoi(buf);
	}
	return pid;
}

/* Status with the run lock held or not; cleans leftovers of a dead QEMU if locked. */
static int status_of(const struct vcvm_env *e, const char *rundir, struct vcvm_status *st,
		     bool locked)
{
	struct runstate rs;
	struct vcvm_qmp *q;
	bool abnormal;
	json_t *r = NULL;
	int rc;

	memset(st, 0, sizeof(*st));
	st->state = VCVM_ST_STOPPED;
	exit_read(rundir, st->last_exit, sizeof(st->last_exit), &abnormal);
	rc = state_read(rundir, &rs);
	if (rc < 0) {
		if (abnormal)
			st->state = VCVM_ST_CRASHED;
		return 0;
	}
	snprintf(st->host, sizeof(st->host), "%s", rs.host);
	snprintf(st->qmp, sizeof(st->qmp), "%s", rs.qmp);
	snprintf(st->accel, sizeof(st->accel), "%s", rs.accel);
	st->pid = rs.pid;
	st->started = rs.started;

	if (!qemu_alive(rs.pid, rs.pid_start)) {
		/* QEMU is gone but nobody stopped it: a crash, or the guest powered off */
		if (!st->last_exit[0]) {
			snprintf(st->last_exit, sizeof(st->last_exit),
				 "QEMU pid %d vanished without an exit record", rs.pid);
			abnormal = true;
			if (locked)
				exit_write(rundir, st->last_exit, true);
		}
		st->state = abnormal ? VCVM_ST_CRASHED : VCVM_ST_STOPPED;
		if (locked)
			state_clear(rundir);
		return 0;
	}
	st->last_exit[0] = 0;
	st->state = VCVM_ST_RUNNING;
	snprintf(st->qemu_status, sizeof(st->qemu_status), "unknown");
	(void)e;
	rc = vcvm_qmp_connect(rs.qmp, SHORT_MS, &q);
	if (rc < 0) {
		snprintf(st->qemu_status, sizeof(st->qemu_status), "monitor busy");
		return 0;
	}
	if (vcvm_qmp_execute(q, "query-status", NULL, SHORT_MS, &r) == 0) {
		snprintf(st->qemu_status, sizeof(st->qemu_status), "%s",
			 json_string_value(json_object_get(r, "status")) ?: "?");
		if (strcmp(st->qemu_status, "running") != 0)
			st->state = VCVM_ST_PAUSED;
		json_decref(r);
	}
	vcvm_qmp_close(q);
	return 0;
}

int vcvm_vm_status(const struct vcvm_env *e, const char *dir, struct vcvm_status *st)
{
	char rundir[512];
	struct vcvm_cfg c;
	int rc;

	memset(st, 0, sizeof(*st));
	rc = vcvm_cfg_load(dir, &c, NULL, 0);
	if (rc < 0)
		return rc;
	rundir_of(e, &c, rundir, sizeof(rundir));
	rc = status_of(e, rundir, st, false);
	vcvm_cfg_free(&c);
	return rc;
}

/* Wait until QEMU (pid/start) is gone or timeout_ms passed. true if gone. */
static bool wait_gone(int pid, unsigned long long start, int timeout_ms)
{
	uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;

	while (qemu_alive(pid, start)) {
		if (mono_ms() >= deadline)
			return false;
		sleep_ms(20);
	}
	return true;
}

/* Check that the files QEMU will open are there, naming the field if not. */
static int check_files(const char *dir, const struct vcvm_cfg *c, char *why, size_t whylen)
{
	char path[VCVM_PATH_MAX + 64];
	struct stat sb;
	unsigned i;

	for (i = 0; i < c->ndisks; i++) {
		vcvm_cfg_path(dir, c->disks[i].file, path, sizeof(path));
		if (stat(path, &sb) < 0) {
			int rc = -errno;

			say(why, whylen, "disks[%u].file: %s: %s", i, path, strerror(-rc));
			return rc;
		}
	}
	if (c->kernel[0]) {
		vcvm_cfg_path(dir, c->kernel, path, sizeof(path));
		if (stat(path, &sb) < 0) {
			say(why, whylen, "boot.kernel: %s: %s", path, strerror(errno));
			return -errno;
		}
	}
	if (c->initrd[0]) {
		vcvm_cfg_path(dir, c->initrd, path, sizeof(path));
		if (stat(path, &sb) < 0) {
			say(why, whylen, "boot.initrd: %s: %s", path, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

/*
 * Disks are shared writers on the datastore (user.vcfs.multiwriter): the
 * destination of a vMotion opens them while the source still runs.  QEMU's
 * image locking then guards them.  Best effort: a datastore without the
 * attribute ignores it.  Set only when missing, and only by the holder of
 * the VM's datastore lock: setting it is a metadata operation that holds the
 * file's lock record for a moment, and another host's open meanwhile fails.
 */
static void mark_multiwriter(const char *dir, const struct vcvm_cfg *c)
{
	char path[VCVM_PATH_MAX + 64], v[8];
	unsigned i;

	for (i = 0; i < c->ndisks; i++) {
		vcvm_cfg_path(dir, c->disks[i].file, path, sizeof(path));
		if (getxattr(path, "user.vcfs.multiwriter", v, sizeof(v)) > 0)
			continue;
		if (setxattr(path, "user.vcfs.multiwriter", "1", 1, 0) < 0 && errno != ENOTSUP)
			vcfs_debug("%s: user.vcfs.multiwriter: %s", path, strerror(errno));
	}
}

/* A cold start begins a new serial log; the previous one is kept as .1. */
static void rotate_serial(const char *dir, const struct vcvm_cfg *c)
{
	char path[VCVM_PATH_MAX + 64], old[VCVM_PATH_MAX + 80];

	vcvm_cfg_path(dir, c->serial_log, path, sizeof(path));
	snprintf(old, sizeof(old), "%s.1", path);
	if (rename(path, old) < 0 && errno != ENOENT)
		vcfs_warn("cannot rotate %s: %s", path, strerror(errno));
}

int vcvm_vm_start(const struct vcvm_env *e, const char *dir, char *why, size_t whylen)
{
	return vcvm_vm_start_ex(e, dir, 0, NULL, why, whylen);
}

int vcvm_vm_start_ex(const struct vcvm_env *e, const char *dir, unsigned flags,
		     const char *machine, char *why, size_t whylen)
{
	char rundir[512], sock[600], logp[600], tail[400], qpath[1024];
	int guardfd = -1;
	struct argv a = { 0 };
	struct vcvm_status st;
	struct runstate rs;
	struct vcvm_cfg c;
	struct vcvm_qmp *q = NULL;
	uint64_t deadline;
	pid_t shim_pid;
	int rc, lockfd, wst;

	rc = vcvm_cfg_load(dir, &c, why, whylen);
	if (rc < 0)
		return rc;
	if (machine && machine[0])	/* not saved: vm.json keeps its own */
		snprintf(c.machine, sizeof(c.machine), "%s", machine);
	if (hv_find_prog(e->qemu, qpath, sizeof(qpath))) {
		rc = -VCVM_ENOQEMU;
		say(why, whylen, "%s: %s", e->qemu, vcvm_strerror(rc));
		goto out_cfg;
	}
	rundir_of(e, &c, rundir, sizeof(rundir));
	lockfd = vcvm_run_lock(rundir, why, whylen);
	if (lockfd < 0) {
		rc = lockfd;
		goto out_cfg;
	}
	status_of(e, rundir, &st, true);
	if (st.state == VCVM_ST_RUNNING || st.state == VCVM_ST_PAUSED) {
		rc = -VCVM_ERUNNING;
		say(why, whylen, "%s is already running on host %s (QEMU pid %d, %s)", c.name,
		    st.host, st.pid, st.qemu_status);
		goto out_lock;
	}
	rc = check_files(dir, &c, why, whylen);
	if (rc < 0)
		goto out_lock;
	/* the datastore lock before QEMU opens a disk; incoming: at commit */
	if (!(flags & VCVM_START_INCOMING)) {
		guardfd = vcvm_guard_take(dir, e->host, why, whylen);
		if (guardfd < 0) {
			rc = guardfd;
			goto out_lock;
		}
		mark_multiwriter(dir, &c);
	}
	rc = build_argv(e, dir, &c, rundir, &a, flags);
	if (rc < 0) {
		say(why, whylen, "cannot build the QEMU command line: %s", vcvm_strerror(rc));
		goto out_argv;
	}
	state_clear(rundir);
	in_dir(logp, sizeof(logp), rundir, "exit.json");
	unlink(logp);
	if (!(flags & VCVM_START_INCOMING))
		rotate_serial(dir, &c);
	in_dir(sock, sizeof(sock), rundir, "qmp.sock");
	in_dir(logp, sizeof(logp), rundir, "qemu.log");
	{
		/* mark each start in QEMU's log so its last words are easy to find */
		FILE *f = fopen(logp, "a");

		if (f) {
			int i;

			fprintf(f, "---- vcvm start %s on %s at %lld:", c.name, e->host,
				(long long)time(NULL));
			for (i = 0; i < a.n; i++)
				fprintf(f, " %s", a.v[i]);
			fprintf(f, "\n");
			fclose(f);
		}
	}

	shim_pid = fork();
	if (shim_pid < 0) {
		rc = -errno;
		say(why, whylen, "fork: %s", strerror(errno));
		goto out_argv;
	}
	if (shim_pid == 0)
		shim(rundir, &a, guardfd, dir, e->host);
	if (guardfd >= 0)
		close(guardfd);		/* the shim's now: it goes when QEMU is reaped */
	guardfd = -1;
	if (!(flags & VCVM_START_INCOMING))
		vcvm_event(rundir, e->host, "guard taken (start)");

	/* QEMU is up when its monitor answers; if the shim exits first, it failed */
	deadline = mono_ms() + VCVM_START_MS;
	for (;;) {
		if (waitpid(shim_pid, &wst, WNOHANG) == shim_pid) {
			tail_of(logp, tail, sizeof(tail), 3);
			rc = -VCVM_EQEMUDIED;
			say(why, whylen, "QEMU did not start: %s", tail);
			goto out_argv;
		}
		rc = vcvm_qmp_connect(sock, 250, &q);
		if (rc == 0)
			break;
		if (rc != -ETIMEDOUT || mono_ms() > deadline) {
			uint64_t until = mono_ms() + 2000;

			/* QEMU opens its monitor before it checks the CPU model
			 * (-cpu ...,enforce) and the devices: a QEMU that
			 * exits now says why in its log */
			while (mono_ms() < until && waitpid(shim_pid, &wst, WNOHANG) == 0)
				sleep_ms(20);
			if (kill(shim_pid, 0) < 0) {
				tail_of(logp, tail, sizeof(tail), 2);
				rc = -VCVM_EQEMUDIED;
				say(why, whylen, "QEMU did not start (cpu %s): %s", c.cpu_model, tail);
				goto out_argv;
			}
			say(why, whylen, "QEMU's monitor %s did not answer: %s", sock,
			    vcvm_strerror(rc));
			goto out_kill;
		}
	}

	memset(&rs, 0, sizeof(rs));
	rs.pid = read_pidfile(rundir);
	rs.pid_start = proc_start(rs.pid);
	if (!rs.pid || !rs.pid_start) {
		rc = -VCVM_EQEMUDIED;
		say(why, whylen, "QEMU wrote no pid file");
		goto out_qmp_kill;
	}
	snprintf(rs.host, sizeof(rs.host), "%s", e->host);
	hv_fmt(rs.qmp, sizeof(rs.qmp), "%s", sock);
	snprintf(rs.accel, sizeof(rs.accel), "%s", e->accel);
	rs.started = (int64_t)time(NULL);
	rc = state_write(rundir, &rs, dir, &c);
	if (rc < 0) {
		say(why, whylen, "cannot write the runtime state in %s: %s", rundir, vcvm_strerror(rc));
		goto out_qmp_kill;
	}
	if (flags & VCVM_START_INCOMING) {	/* migrate.c takes it from here */
		vcvm_qmp_close(q);
		rc = 0;
		goto out_argv;
	}
	rc = vcvm_qmp_execute(q, "cont", NULL, VCVM_QMP_MS, NULL);
	if (rc < 0) {
		say(why, whylen, "QEMU refused to run the guest: %s %s", vcvm_strerror(rc),
		    vcvm_qmp_error_desc(q));
		goto out_qmp_kill;
	}
	vcvm_qmp_close(q);

	/* HA's "host that last ran it": best effort, the VM runs either way */
	if (strcmp(c.ha.last_host, e->host) != 0) {
		char w[256];

		snprintf(c.ha.last_host, sizeof(c.ha.last_host), "%s", e->host);
		if (vcvm_cfg_save(dir, &c, w, sizeof(w)) < 0)
			vcfs_warn("cannot record ha.last_host: %s", w);
	}
	rc = 0;
	goto out_argv;

out_qmp_kill:
	vcvm_qmp_close(q);
out_kill:
	kill(-shim_pid, SIGKILL);	/* the shim's session: shim and QEMU */
	waitpid(shim_pid, NULL, 0);
	state_clear(rundir);
out_argv:
	arg_free(&a);
out_lock:
	if (guardfd >= 0)
		close(guardfd);
	close(lockfd);
out_cfg:
	vcvm_cfg_free(&c);
	return rc;
}

int vcvm_vm_stop(const struct vcvm_env *e, const char *dir, int timeout_ms, bool hard,
		 char *why, size_t whylen)
{
	char rundir[512], how[64];
	struct vcvm_status st;
	struct runstate rs;
	struct vcvm_cfg c;
	struct vcvm_qmp *q = NULL;
	uint64_t deadline;
	int rc, lockfd;

	rc = vcvm_cfg_load(dir, &c, why, whylen);
	if (rc < 0)
		return rc;
	rundir_of(e, &c, rundir, sizeof(rundir));
	lockfd = vcvm_run_lock(rundir, why, whylen);
	if (lockfd < 0) {
		rc = lockfd;
		goto out_cfg;
	}
	status_of(e, rundir, &st, true);
	if (st.state != VCVM_ST_RUNNING && st.state != VCVM_ST_PAUSED) {
		rc = -VCVM_ENOTRUNNING;
		say(why, whylen, "%s is not running on host %s%s%s", c.name, e->host,
		    st.last_exit[0] ? "; last: " : "", st.last_exit);
		goto out_lock;
	}
	if (state_read(rundir, &rs) < 0) {
		rc = -VCVM_ENOTRUNNING;
		goto out_lock;
	}

	rc = vcvm_qmp_connect(rs.qmp, VCVM_QMP_MS, &q);
	if (rc < 0)
		vcfs_warn("%s: monitor did not answer (%s): killing QEMU", c.name, vcvm_strerror(rc));
	snprintf(how, sizeof(how), "killed");
	if (q && !hard && st.state == VCVM_ST_RUNNING) {
		/* the ACPI power button; a guest that listens powers off and QEMU exits */
		rc = vcvm_qmp_execute(q, "system_powerdown", NULL, VCVM_QMP_MS, NULL);
		deadline = mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
		while (rc == 0 && qemu_alive(rs.pid, rs.pid_start) && mono_ms() < deadline) {
			int r = vcvm_qmp_wait_event(q, "SHUTDOWN", 100, NULL);

			if (r == -VCVM_EQMPCLOSED || r == 0)
				wait_gone(rs.pid, rs.pid_start, 2000);
		}
		if (!qemu_alive(rs.pid, rs.pid_start))
			snprintf(how, sizeof(how), "guest powered off");
	}
	if (q && qemu_alive(rs.pid, rs.pid_start)) {
		rc = vcvm_qmp_execute(q, "quit", NULL, VCVM_QMP_MS, NULL);
		if ((rc == 0 || rc == -VCVM_EQMPCLOSED) && wait_gone(rs.pid, rs.pid_start, VCVM_QUIT_MS))
			snprintf(how, sizeof(how), hard ? "powered off (quit)" :
				 "guest did not power off in time: quit");
	}
	vcvm_qmp_close(q);
	if (qemu_alive(rs.pid, rs.pid_start)) {
		kill(rs.pid, SIGKILL);
		if (!wait_gone(rs.pid, rs.pid_start, VCVM_QUIT_MS)) {
			rc = -ETIMEDOUT;
			say(why, whylen, "QEMU pid %d does not die", rs.pid);
			goto out_lock;
		}
	}
	/* the shim writes its record right after QEMU is reaped; ours replaces it */
	{
		char p[600], reason[160];

		in_dir(p, sizeof(p), rundir, "exit.json");
		deadline = mono_ms() + 1000;
		while (access(p, F_OK) < 0 && mono_ms() < deadline)
			sleep_ms(10);
		snprintf(reason, sizeof(reason), "stopped by vcvm on %s (%s)", e->host, how);
		exit_write(rundir, reason, false);
	}
	state_clear(rundir);
	rc = 0;
out_lock:
	close(lockfd);
out_cfg:
	vcvm_cfg_free(&c);
	return rc;
}

int vcvm_vm_qmp(const struct vcvm_env *e, const char *dir, struct vcvm_qmp **q)
{
	char rundir[512];
	struct runstate rs;
	struct vcvm_cfg c;
	int rc;

	*q = NULL;
	rc = vcvm_cfg_load(dir, &c, NULL, 0);
	if (rc < 0)
		return rc;
	rundir_of(e, &c, rundir, sizeof(rundir));
	vcvm_cfg_free(&c);
	if (state_read(rundir, &rs) < 0 || !qemu_alive(rs.pid, rs.pid_start))
		return -VCVM_ENOTRUNNING;
	return vcvm_qmp_connect(rs.qmp, VCVM_QMP_MS, q);
}

int vcvm_vm_reset(const struct vcvm_env *e, const char *dir, char *why, size_t whylen)
{
	char rundir[512];
	struct vcvm_status st;
	struct vcvm_cfg c;
	struct vcvm_qmp *q = NULL;
	int rc, lockfd;

	rc = vcvm_cfg_load(dir, &c, why, whylen);
	if (rc < 0)
		return rc;
	rundir_of(e, &c, rundir, sizeof(rundir));
	lockfd = vcvm_run_lock(rundir, why, whylen);
	if (lockfd < 0) {
		rc = lockfd;
		goto out_cfg;
	}
	status_of(e, rundir, &st, true);
	if (st.state != VCVM_ST_RUNNING && st.state != VCVM_ST_PAUSED) {
		rc = -VCVM_ENOTRUNNING;
		say(why, whylen, "%s is not running on host %s", c.name, e->host);
		goto out_lock;
	}
	rc = vcvm_qmp_connect(st.qmp, VCVM_QMP_MS, &q);
	if (rc < 0) {
		say(why, whylen, "monitor %s: %s", st.qmp, vcvm_strerror(rc));
		goto out_lock;
	}
	rc = vcvm_qmp_execute(q, "system_reset", NULL, VCVM_QMP_MS, NULL);
	if (rc == 0)
		rc = vcvm_qmp_wait_event(q, "RESET", VCVM_QMP_MS, NULL);
	if (rc < 0)
		say(why, whylen, "reset: %s %s", vcvm_strerror(rc), vcvm_qmp_error_desc(q));
	vcvm_qmp_close(q);
out_lock:
	close(lockfd);
out_cfg:
	vcvm_cfg_free(&c);
	return rc;
}

/* ---- create / destroy ---- */

int vcvm_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	case 0: break;
	default: return -EINVAL;
	}
	if (*end == 'i' || *end == 'B')
		end++;
	if (*end == 'B')
		end++;
	if (*end || (shift && v > (~0ULL >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in, outfd, rc = 0;

	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	outfd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (outfd < 0) {
		rc = -errno;
		goto out_in;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write(outfd, buf, (size_t)n) != n) {
			rc = errno ? -errno : -EIO;
			break;
		}
	}
	if (n < 0)
		rc = -errno;
	if (rc == 0 && fsync(outfd) < 0)
		rc = -errno;
	close(outfd);
	if (rc < 0)
		unlink(to);
out_in:
	close(in);
	return rc;
}

int vcvm_vm_create(const char *dir, struct vcvm_cfg *cfg, uint64_t disk_bytes,
		   const char *kernel, const char *initrd, char *why, size_t whylen)
{
	char path[VCVM_PATH_MAX + 64];
	int rc, fd;

	rc = vcvm_cfg_validate(cfg, why, whylen);
	if (rc < 0)
		return rc;
	if (mkdir(dir, 0755) < 0) {
		rc = -errno;
		say(why, whylen, "%s: %s", dir, strerror(errno));
		return rc;
	}
	if (kernel) {
		in_dir(path, sizeof(path), dir, "vmlinuz");
		rc = copy_file(kernel, path);
		if (rc < 0) {
			say(why, whylen, "copying the kernel %s: %s", kernel, strerror(-rc));
			goto err_files;
		}
		snprintf(cfg->kernel, sizeof(cfg->kernel), "vmlinuz");
	}
	if (initrd) {
		in_dir(path, sizeof(path), dir, "initrd.img");
		rc = copy_file(initrd, path);
		if (rc < 0) {
			say(why, whylen, "copying the initrd %s: %s", initrd, strerror(-rc));
			goto err_files;
		}
		snprintf(cfg->initrd, sizeof(cfg->initrd), "initrd.img");
	}
	if (disk_bytes) {
		struct vcvm_disk *d = &cfg->disks[0];

		if (cfg->ndisks >= VCVM_MAX_DISKS) {
			rc = -E2BIG;
			goto err_files;
		}
		memmove(&cfg->disks[1], &cfg->disks[0], sizeof(*d) * cfg->ndisks);
		memset(d, 0, sizeof(*d));
		snprintf(d->file, sizeof(d->file), "disk0.raw");
		d->format = VCVM_FMT_RAW;
		d->bus = VCVM_BUS_VIRTIO;
		d->io_shares = 1000;
		cfg->ndisks++;
		in_dir(path, sizeof(path), dir, d->file);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 || ftruncate(fd, (off_t)disk_bytes) < 0) {
			rc = -errno;
			say(why, whylen, "creating %s: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto err_files;
		}
		close(fd);
	}
	rc = vcvm_cfg_save(dir, cfg, why, whylen);
	if (rc < 0)
		goto err_files;
	return 0;

err_files:
	{
		static const char *const files[] = { "vmlinuz", "initrd.img", "disk0.raw",
						     VCVM_CFG_FILE };
		size_t i;

		for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			in_dir(path, sizeof(path), dir, files[i]);
			unlink(path);
		}
		rmdir(dir);
	}
	return rc;
}

int vcvm_vm_destroy(const struct vcvm_env *e, const char *dir, char *why, size_t whylen)
{
	char rundir[512], path[VCVM_PATH_MAX + 80];
	struct vcvm_status st;
	struct vcvm_cfg c;
	unsigned i;
	int rc, lockfd, guardfd;
	DIR *dh;
	struct dirent *de;

	rc = vcvm_cfg_load(dir, &c, why, whylen);
	if (rc < 0)
		return rc;
	rundir_of(e, &c, rundir, sizeof(rundir));
	lockfd = vcvm_run_lock(rundir, why, whylen);
	if (lockfd < 0) {
		rc = lockfd;
		goto out_cfg;
	}
	status_of(e, rundir, &st, true);
	if (st.state == VCVM_ST_RUNNING || st.state == VCVM_ST_PAUSED) {
		rc = -VCVM_ERUNNING;
		say(why, whylen, "%s is running on host %s: stop it first", c.name, st.host);
		goto out_lock;
	}
	/* no other host runs it either: its datastore lock must be free */
	guardfd = vcvm_guard_take(dir, e->host, why, whylen);
	if (guardfd < 0) {
		rc = guardfd;
		goto out_lock;
	}
	in_dir(path, sizeof(path), dir, VCVM_GUARD_FILE);
	unlink(path);
	close(guardfd);
	/*
	 * What lives in the folder, and absolute files the VM owns (move-storage
	 * put them in <datastore>/<name>/, removed too when that is left empty);
	 * any other disk given by absolute path may be shared: left alone.
	 */
	for (i = 0; i < c.ndisks; i++) {
		if (c.disks[i].file[0] == '/' && !c.disks[i].owned)
			continue;
		vcvm_cfg_path(dir, c.disks[i].file, path, sizeof(path));
		if (unlink(path) < 0 && errno != ENOENT)
			vcfs_warn("cannot remove %s: %s", path, strerror(errno));
		if (c.disks[i].file[0] == '/') {
			char *slash = strrchr(path, '/'), *parent;

			*slash = '\0';
			parent = strrchr(path, '/');
			if (parent && strcmp(parent + 1, c.name) == 0)
				rmdir(path);	/* fails, quietly, unless empty */
		}
	}
	if (c.serial_log[0] != '/') {
		vcvm_cfg_path(dir, c.serial_log, path, sizeof(path));
		unlink(path);
		strncat(path, ".1", sizeof(path) - strlen(path) - 1);
		unlink(path);
	}
	if (c.kernel[0] && c.kernel[0] != '/') {
		vcvm_cfg_path(dir, c.kernel, path, sizeof(path));
		unlink(path);
	}
	if (c.initrd[0] && c.initrd[0] != '/') {
		vcvm_cfg_path(dir, c.initrd, path, sizeof(path));
		unlink(path);
	}
	vcvm_cfg_path(dir, VCVM_CFG_FILE, path, sizeof(path));
	if (unlink(path) < 0) {
		rc = -errno;
		say(why, whylen, "%s: %s", path, strerror(errno));
		goto out_lock;
	}
	if (rmdir(dir) < 0)
		vcfs_warn("folder %s kept: it holds other files (%s)", dir, strerror(errno));
	/* this host's runtime leftovers */
	dh = opendir(rundir);
	if (dh) {
		while ((de = readdir(dh)))
			if (de->d_name[0] != '.' && strcmp(de->d_name, "lock")) {
				in_dir(path, sizeof(path), rundir, de->d_name);
				unlink(path);
			}
		closedir(dh);
	}
	in_dir(path, sizeof(path), rundir, "lock");
	unlink(path);
	rmdir(rundir);
	rc = 0;
out_lock:
	close(lockfd);
out_cfg:
	vcvm_cfg_free(&c);
	return rc;
}
