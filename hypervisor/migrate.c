/*
 * migrate.c - vMotion between hosts that mount one datastore (see agent.h
 * for the protocol and migrate.h for the entry points).
 *
 * Source (MIGRATE), holding the VM's run lock on this host throughout:
 *
 *   source agent                          destination agent
 *   ------------                          -----------------
 *   machine = QOM type of /machine
 *   (q35 -> pc-q35-7.2)
 *   PREPARE {folder, cpu, machine} ---->  checks, QEMU -incoming defer with
 *                                         that machine, late-block-activate;
 *                                         keeps vm.json and the monitor open
 *                                  <----  migrate-incoming tcp:<own addr>:0 -> port
 *   caps: pause-before-switchover,
 *   auto-converge, events; params:
 *   max-bandwidth, downtime-limit 10 ms;
 *   migrate tcp:<dest>:<port>
 *   ... "active" (progress frames) ...
 *   STOP (its timestamp: the pause
 *   begins), "pre-switchover": serial
 *   -> null, migrate-continue at once
 *   event "completed": disks flushed
 *   and inactive, the source's last
 *   write has landed
 *   shim closes the guard (.vcvm.lock)
 *   COMMIT ---------------------------->  incoming "completed" (event); shim
 *                                         opens the guard (waits for our
 *                                         release on vcfs) while serial -> the
 *                                         log; cont
 *                                  <----  progress "resumed"
 *                                         RESUME (its timestamp: the pause
 *                                         ends), ha.last_host
 *                                  <----  ok {resume_us}
 *   query-migrate (downtime), quit
 *   QEMU, exit record "migrated"
 *
 * What the figures cover.  QEMU 7.2's query-migrate "downtime" is measured
 * by the source QEMU alone (migration_completion(): downtime_start is taken
 * under the big lock just before vm_stop_force_state(FINISH_MIGRATE); it
 * ends in migration_calculate_complete() once the last RAM pages and the
 * device state went into the socket and the disks were inactivated): it
 * includes our pre-switchover round trip (serial -> null, migrate-continue)
 * but not the destination loading that state, the lock hand-over or cont.
 * No return-path: with it the source would also wait for the destination's
 * acknowledgement, a round trip more inside the pause, and "completed"
 * would still not mean the destination runs.  The guest-visible pause is
 * pause_ms: the source QEMU's STOP event to the destination QEMU's RESUME
 * event, each stamped by its QEMU (CLOCK_REALTIME: comparable across hosts
 * only as far as their clocks agree; the hosts of the tests share one).
 *
 * Inside the pause we poll nothing: every wait is on an event (QMP events,
 * the shim's answer through inotify, the COMMIT frame; only vcfs itself
 * re-reads a lock record, with backoff, while the other host's release is
 * on its way), the serial log's release on the datastore overlaps the copy
 * of the last pages, and the
 * processes of the chain (agents, shims, the destination QEMU's main thread
 * from COMMIT to cont) run at real-time priority for its duration (rt_prio)
 * so that a busy host does not add a scheduling delay per hop.
 *
 * Before "completed" any failure (destination QEMU or agent gone, link cut:
 * no progress for VCVM_MIGRATE_STALL_MS, MIGRATE_CANCEL) ends in
 * migrate_cancel, cont on the source if it was paused, ABORT to the
 * destination (kills its QEMU): the source never gave up its guard.
 *
 * After "completed" the guard decides, and nothing else: a QEMU runs the
 * guest only while its shim holds it.  The source lets it go only while
 * paused after its last write; it resumes only if its shim takes it back.
 * The destination conts only after its shim took it.
 *  - COMMIT fails: the source retakes the guard and conts (its disks
 *    re-activate); if the destination holds it (it finished alone), the VM
 *    runs there and the source quits its QEMU.
 *  - the source's process dies (window: after its release, before COMMIT
 *    reached the destination) or goes silent: the destination's agent calls
 *    vcvm_migrate_orphan(): incoming completed and the guard free -> it
 *    takes it and conts; the guard held by the source -> it kills its QEMU
 *    (lost connection) or waits (silent).  Then it asks the source's agent
 *    (MIGRATE_CANCEL) to resume its orphaned QEMU if its shim still holds
 *    the guard (resume_orphan), or to quit it if another host holds it now.
 * Two QEMUs never run: each needs the one lock, and a source that released
 * it never resumes without taking it back (vcvm_guard_retake), which fails
 * with -ESTALE if another host held it in between: its QEMU is then stopped.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "hypervisor/cpumodel.h"
#include "hypervisor/guard.h"
#include "hypervisor/hv_err.h"
#include "hypervisor/hv_int.h"
#include "hypervisor/inventory.h"
#include "hypervisor/migrate.h"
#include "hypervisor/wire.h"

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A QMP event's own timestamp (QEMU's CLOCK_REALTIME), in us; 0 if none. */
static long long ev_us(json_t *ev)
{
	json_t *ts = json_object_get(ev, "timestamp");

	if (!ts)
		return 0;
	return (long long)json_integer_value(json_object_get(ts, "seconds")) * 1000000 +
	       (long long)json_integer_value(json_object_get(ts, "microseconds"));
}

static long long real_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * The switch-over's processes run at real-time priority (SCHED_FIFO 1) while
 * the guest is paused or about to be: this process, and a shim for its
 * close/open of the lock file.  On a busy host a wake-up otherwise waits
 * behind CPU-bound work (vCPU threads, builds) for 10-20 ms, and the
 * switch-over is a chain of them (QEMU event -> agent -> COMMIT -> agent ->
 * shim -> agent -> cont).  They block at once each time (no spinning).
 * Best effort (without CAP_SYS_NICE nothing changes); reset on fork;
 * VCVM_SWITCHOVER_RT=0 leaves every priority alone.
 */
static void rt_prio(pid_t pid, bool on)
{
	struct sched_param sp = { .sched_priority = on ? 1 : 0 };
	const char *env = getenv("VCVM_SWITCHOVER_RT");

	if (env && !strcmp(env, "0"))
		return;
	if (pid > 0 && sched_setscheduler(pid, on ? SCHED_FIFO | SCHED_RESET_ON_FORK : SCHED_OTHER,
					  &sp) < 0 && on)
		vcfs_debug("switch-over priority for pid %d: %s", (int)pid, strerror(errno));
}

/* The shim of QEMU pid (its parent), 0 if none. */
static pid_t shim_of(int qemu_pid)
{
	char path[64], buf[512], *p;
	int ppid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", qemu_pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	if (!p || sscanf(p + 2, "%*c %d", &ppid) != 1)
		ppid = 0;
	fclose(f);
	return ppid > 1 ? ppid : 0;
}

/* Does QEMU pid still run: alive and not a zombie its shim has yet to reap? */
static bool qemu_runs(int pid)
{
	char path[64], buf[512], *p, state = 0;
	FILE *f;

	if (pid <= 0 || kill(pid, 0) < 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	if (p && sscanf(p + 2, "%c", &state) != 1)
		state = 0;
	fclose(f);
	return state && state != 'Z' && state != 'X';
}

/* What this host knows of the VM in folder dir. */
struct mvm {
	char dir[VCVM_PATH_MAX];
	char rundir[VCVM_PATH_MAX + 64];
	struct vcvm_cfg c;
	int pid;			/* QEMU, 0 if not running here */
	char qmp[256];
	int runlock;			/* flock on <rundir>/lock, -1 */
};

static int mvm_load(const struct vcvm_env *e, const char *vm, struct mvm *m, char *why, size_t n)
{
	char path[VCVM_PATH_MAX + 80];
	json_t *j;
	int rc;

	memset(m, 0, sizeof(*m));
	m->runlock = -1;
	rc = vcvm_inv_resolve(e, vm, m->dir, sizeof(m->dir), why, n);
	if (rc < 0)
		return rc;
	/*
	 * Another host may just have replaced vm.json (atomic rename: a vMotion
	 * destination records ha.last_host); the kernel's cached entry can then
	 * name the old file for up to the vcfs entry timeout (1 s) and the open
	 * fail with ENOENT.  Look again after it.
	 */
	for (int i = 0; (rc = vcvm_cfg_load(m->dir, &m->c, why, n)) < 0 && i < 8 &&
	     (rc == -VCVM_ENOVM || strstr(why, strerror(ENOENT))); i++)
		sleep_ms(200);
	if (rc < 0)
		return rc;
	hv_fmt(m->rundir, sizeof(m->rundir), "%s/%s", e->run_dir, m->c.uuid);
	hv_fmt(path, sizeof(path), "%s/state.json", m->rundir);
	j = json_load_file(path, 0, NULL);
	if (j) {
		m->pid = (int)json_integer_value(json_object_get(j, "pid"));
		snprintf(m->qmp, sizeof(m->qmp), "%s", json_string_value(json_object_get(j, "qmp")) ?: "");
		json_decref(j);
		if (!qemu_runs(m->pid))
			m->pid = 0;
	}
	return 0;
}

static void mvm_free(struct mvm *m)
{
	if (m->runlock >= 0)
		close(m->runlock);
	m->runlock = -1;
	vcvm_cfg_free(&m->c);
}

/* The same per-VM run lock vm.c takes (serialises operations on this host). */
static int mvm_runlock(struct mvm *m, char *why, size_t n)
{
	char path[VCVM_PATH_MAX + 80];
	uint64_t deadline = mono_ms() + 30000;

	hv_fmt(path, sizeof(path), "%s/lock", m->rundir);
	m->runlock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (m->runlock < 0) {
		hv_fmt(why, n, "%s: %s", path, strerror(errno));
		return -errno;
	}
	while (flock(m->runlock, LOCK_EX | LOCK_NB) < 0) {
		if (mono_ms() > deadline) {
			hv_fmt(why, n, "another vcvm is working on this VM (%s)", path);
			return -EBUSY;
		}
		sleep_ms(50);
	}
	return 0;
}

static int qmp_str(struct vcvm_qmp *q, const char *cmd, json_t *args, const char *key,
		   char *out, size_t n)
{
	json_t *ret = NULL;
	int rc = vcvm_qmp_execute(q, cmd, args, VCVM_QMP_MS, &ret);

	out[0] = 0;
	if (rc == 0)
		snprintf(out, n, "%s", json_string_value(json_object_get(ret, key)) ?: "");
	json_decref(ret);
	return rc;
}

static int qmp_do(struct vcvm_qmp *q, const char *cmd, json_t *args, char *why, size_t n)
{
	int rc = vcvm_qmp_execute(q, cmd, args, VCVM_QMP_MS, NULL);

	if (rc < 0)
		hv_fmt(why, n, "QEMU %s: %s %s", cmd, vcvm_strerror(rc), vcvm_qmp_error_desc(q));
	json_decref(args);
	return rc;
}

/* chardev-change serial0 to the datastore's log (on) or to null (off). */
static int serial_to(struct vcvm_qmp *q, const char *dir, const struct vcvm_cfg *c, bool on,
		     char *why, size_t n)
{
	char path[VCVM_PATH_MAX + 64];
	json_t *be;

	vcvm_cfg_path(dir, c->serial_log, path, sizeof(path));
	be = on ? json_pack("{s:s, s:{s:s, s:b}}", "type", "file", "data", "out", path, "append", 1)
		: json_pack("{s:s, s:{}}", "type", "null", "data");
	return qmp_do(q, "chardev-change", json_pack("{s:s, s:o}", "id", "serial0", "backend", be),
		      why, n);
}

static void write_file_json(const char *path, json_t *j)
{
	char tmp[VCVM_PATH_MAX + 100];

	hv_fmt(tmp, sizeof(tmp), "%s.tmp", path);
	if (j && json_dump_file(j, tmp, JSON_COMPACT) == 0)
		rename(tmp, path);
	json_decref(j);
}

/* ---- destination ---- */

/*
 * The destination's side of one incoming vMotion, kept by the agent's
 * connection process from PREPARE to COMMIT/ABORT (or to the orphan
 * handling when the source goes): the monitor stays open, so "completed"
 * arrives as a MIGRATION event instead of being polled for, and COMMIT pays
 * no QMP handshake.  QEMU's monitor serves one client at a time: vcvm status
 * of the incoming VM waits meanwhile, as it does on the source.
 */
static struct {
	char dir[VCVM_PATH_MAX];
	struct vcvm_qmp *q;
	struct mvm m;			/* as PREPARE loaded it (vm.json read then) */
	bool have_m;
	uint64_t completed_at;		/* mono ms first seen completed, 0 */
} in;

static void in_drop(void)
{
	rt_prio(getpid(), false);	/* from PREPARE's end */
	vcvm_qmp_close(in.q);
	if (in.have_m)
		mvm_free(&in.m);
	memset(&in, 0, sizeof(in));
}

/*
 * The VM of folder vm as PREPARE loaded it, if this process prepared it and
 * its QEMU still runs (COMMIT then reads nothing from the datastore: a read
 * of vm.json on vcfs takes its lock record), else loaded now into *own.
 */
static int in_mvm(const struct vcvm_env *e, const char *vm, struct mvm *own, struct mvm **m,
		  char *why, size_t n)
{
	if (in.have_m && !strcmp(in.m.dir, vm) && qemu_runs(in.m.pid)) {
		*m = &in.m;
		memset(own, 0, sizeof(*own));
		own->runlock = -1;
		return 0;
	}
	*m = own;
	return mvm_load(e, vm, own, why, n);
}

/* The incoming QEMU's monitor for m (the kept one if it is m's). */
static int in_qmp(const struct vcvm_env *e, const struct mvm *m, struct vcvm_qmp **q)
{
	int rc;

	if (in.q && strcmp(in.dir, m->dir) == 0) {
		*q = in.q;
		return 0;
	}
	in_drop();
	rc = vcvm_vm_qmp(e, m->dir, &in.q);
	if (rc < 0)
		return rc;
	snprintf(in.dir, sizeof(in.dir), "%s", m->dir);
	*q = in.q;
	return 0;
}

/*
 * Wait up to ms for the incoming migration to end (completed, failed,
 * cancelled), woken by its MIGRATION events; its status in st.
 */
static int in_settle(struct vcvm_qmp *q, int ms, char *st, size_t n)
{
	uint64_t deadline = mono_ms() + (uint64_t)ms;
	json_t *ev = NULL;
	int rc;

	/* the events already sent tell it without a round trip */
	vcvm_qmp_read_ready(q);
	while (vcvm_qmp_wait_event(q, "MIGRATION", 0, &ev) == 0) {
		const char *s = json_string_value(json_object_get(json_object_get(ev, "data"),
								  "status"));

		if (s && (!strcmp(s, "completed") || !strcmp(s, "failed"))) {
			snprintf(st, n, "%s", s);
			json_decref(ev);
			return 0;
		}
		json_decref(ev);
	}
	for (;;) {
		rc = qmp_str(q, "query-migrate", NULL, "status", st, n);
		if (rc < 0)
			return rc;
		if (!strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "cancelled") ||
		    mono_ms() >= deadline)
			return 0;
		rc = vcvm_qmp_wait_event(q, "MIGRATION", (int)(deadline - mono_ms() < 500 ?
							       deadline - mono_ms() : 500), NULL);
		if (rc == -VCVM_EQMPCLOSED)
			return rc;
	}
}

/*
 * Run the incoming VM here: take the guard through the shim, serial port to
 * the log, cont.  overlap: switch the serial port while the shim opens the
 * lock file (COMMIT: the source closed the log before it sent COMMIT); else
 * only once the guard is ours (a source that died may still hold the log).
 * The first write of the guest comes after the guard is ours.
 */
static int finish_here(const struct vcvm_env *e, struct mvm *m, struct vcvm_qmp *q, bool overlap,
		       const char *how, char *why, size_t n)
{
	long long t0 = real_us(), t_held, t_cont, t_ser = 0;
	pid_t shim = shim_of(m->pid);
	char w[256] = "";
	int rc, ser = -EAGAIN;

	rt_prio(getpid(), true);	/* until in_drop */
	rt_prio(shim, true);
	rc = vcvm_guard_ask(m->rundir, m->pid, true, why, n);
	if (rc < 0)
		return rc;
	if (overlap) {
		ser = serial_to(q, m->dir, &m->c, true, w, sizeof(w));
		t_ser = real_us() - t0;
	}
	rc = vcvm_guard_wait(m->rundir, m->pid, true, why, n);
	rt_prio(shim, false);
	if (rc < 0) {
		if (ser == 0)	/* the source may reopen it */
			serial_to(q, m->dir, &m->c, false, w, sizeof(w));
		return rc;
	}
	t_held = real_us();
	if (ser == -EAGAIN)
		ser = serial_to(q, m->dir, &m->c, true, w, sizeof(w));
	t_cont = real_us();
	rc = ser < 0 ? ser : qmp_do(q, "cont", NULL, w, sizeof(w));
	if (rc == -ETIMEDOUT && ser == 0) {
		/* the guest may run: keep the lock, the VM is ours */
		hv_fmt(why, n, "%s (the VM may run here: the lock stays here)", w);
		return -EINPROGRESS;
	}
	if (rc < 0) {
		char w2[256];

		hv_fmt(why, n, "%s", w);
		serial_to(q, m->dir, &m->c, false, w2, sizeof(w2));
		vcvm_guard_ctl(m->rundir, m->pid, false, w2, sizeof(w2));
		return rc;
	}
	vcvm_event_at(m->rundir, e->host, t0, "lock asked of the shim (%s)", how);
	vcvm_event(m->rundir, e->host, "cont (%s; the guest's first write comes after this; lock "
		   "asked -> held %lld us, serial log opened +%lld us, cont sent +%lld us, took %lld "
		   "us)", how, t_held - t0, t_ser, t_cont - t0, real_us() - t_cont);
	return 0;
}

/* After cont: this host last ran it (HA), the incoming record goes. */
static void finished_here(const struct vcvm_env *e, struct mvm *m, bool keep_record)
{
	char path[VCVM_PATH_MAX + 80], w[256];
	json_t *j;

	hv_fmt(path, sizeof(path), "%s/incoming.json", m->rundir);
	if (keep_record) {	/* a COMMIT that comes late is answered "done" */
		j = json_load_file(path, 0, NULL);
		if (j) {
			json_object_set_new(j, "finished", json_true());
			write_file_json(path, j);
		}
	} else {
		unlink(path);
	}
	snprintf(m->c.ha.last_host, sizeof(m->c.ha.last_host), "%s", e->host);
	if (vcvm_cfg_save(m->dir, &m->c, w, sizeof(w)) < 0)
		vcfs_warn("cannot record ha.last_host: %s", w);
}


/* Is word a CPU model (x86 lines of -cpu help) or machine (first column)? */
static bool qemu_offers(const struct vcvm_env *e, bool cpu, const char *word)
{
	char cmd[400], line[512], a[128], b[128];
	bool yes = false;
	FILE *f;

	hv_fmt(cmd, sizeof(cmd), "'%s' -%s help 2>/dev/null", e->qemu, cpu ? "cpu" : "machine");
	f = popen(cmd, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (cpu && sscanf(line, "%127s %127s", a, b) == 2 && strcmp(a, "x86") == 0)
			yes |= strcmp(b, word) == 0;
		else if (!cpu && sscanf(line, "%127s", a) == 1)
			yes |= strcmp(a, word) == 0;
	}
	pclose(f);
	return yes;
}

/*
 * Does this host run model?  The models its QEMU runs with its accelerator,
 * within its policy (cpumodel.c: no unavailable features, migration-safe,
 * VCVM_CPU_MODELS): host and max are not, they differ between hosts.  If
 * the probe fails, what QEMU lists and the policy allows (enforce decides).
 */
static bool cpu_allowed(const struct vcvm_env *e, const char *model)
{
	const char *list = getenv("VCVM_CPU_MODELS");
	char why[256], buf[1024], *t, *save = NULL;
	json_t *models = NULL;
	bool yes;

	if (vcvm_cpu_usable(e, &models, why, sizeof(why)) == 0) {
		yes = vcvm_cpu_has(models, model);
		json_decref(models);
		return yes;
	}
	vcfs_warn("%s; checking the CPU model against qemu -cpu help", why);
	if (!list || !*list)
		return qemu_offers(e, true, model);
	snprintf(buf, sizeof(buf), "%s", list);
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (strcmp(t, model) == 0)
			return true;
	return false;
}

static int do_prepare(const struct vcvm_env *e, const struct vcvm_request *req,
		      struct vcvm_response *r)
{
	const __typeof__(req->u.migrate_prepare) *a = &req->u.migrate_prepare;
	char path[VCVM_PATH_MAX + 80], addr[64], uri[96];
	struct vcvm_qmp *q = NULL;
	struct mvm m;
	json_t *ret = NULL, *sa;
	int rc, port = 0;
	uint64_t deadline;

	rc = mvm_load(e, a->folder, &m, r->why, sizeof(r->why));
	if (rc < 0) {
		hv_fmt(r->why, sizeof(r->why), "host %s cannot use the VM folder %s: %s "
		       "(is the datastore mounted at the same path?)", e->host, a->folder,
		       vcvm_strerror(rc));
		return rc;
	}
	if (!cpu_allowed(e, m.c.cpu_model) || (a->cpu_model[0] && strcmp(a->cpu_model, m.c.cpu_model))) {
		rc = -VCVM_ECPU;
		hv_fmt(r->why, sizeof(r->why), "host %s does not offer CPU model \"%s\" (%s); set "
		       "cpu_model in vm.json to one every host runs (vcvm cluster-cpu finds it)",
		       e->host, m.c.cpu_model, getenv("VCVM_CPU_MODELS") ? "its --cpu-models"
		       : "vcvm host-info lists what it runs");
		goto out;
	}
	if (!qemu_offers(e, false, a->machine[0] ? a->machine : m.c.machine)) {
		rc = -VCVM_ECPU;
		hv_fmt(r->why, sizeof(r->why), "host %s's QEMU has no machine type %s", e->host,
		       a->machine[0] ? a->machine : m.c.machine);
		goto out;
	}
	if (m.pid) {
		rc = -VCVM_ERUNNING;
		hv_fmt(r->why, sizeof(r->why), "%s already runs on host %s (QEMU pid %d)", m.c.name,
		       e->host, m.pid);
		goto out;
	}
	vcvm_inv_add(e, m.dir, NULL, 0);	/* known here from now on (same folder: no-op) */
	rc = vcvm_vm_start_ex(e, m.dir, VCVM_START_INCOMING, a->machine, r->why, sizeof(r->why));
	if (rc < 0)
		goto out;
	hv_fmt(path, sizeof(path), "%s/incoming.json", m.rundir);
	write_file_json(path, json_pack("{s:s}", "from_host", a->from_host));
	rc = in_qmp(e, &m, &q);
	if (rc < 0) {
		hv_fmt(r->why, sizeof(r->why), "incoming QEMU's monitor: %s", vcvm_strerror(rc));
		goto out_kill;
	}
	/* disks activate at cont, after the guard is ours */
	rc = qmp_do(q, "migrate-set-capabilities", json_pack("{s:[{s:s, s:b}, {s:s, s:b}]}",
		    "capabilities", "capability", "late-block-activate", "state", 1,
		    "capability", "events", "state", 1), r->why, sizeof(r->why));
	/* listen on this host's own address (the hosts file's), else on all */
	if (vcvm_host_address(e->host, addr, sizeof(addr)) < 0)
		snprintf(addr, sizeof(addr), "0.0.0.0");
	hv_fmt(uri, sizeof(uri), strchr(addr, ':') ? "tcp:[%s]:0" : "tcp:%s:0", addr);
	if (rc == 0)
		rc = qmp_do(q, "migrate-incoming", json_pack("{s:s}", "uri", uri),
			    r->why, sizeof(r->why));
	deadline = mono_ms() + VCVM_QMP_MS;
	while (rc == 0 && !port && mono_ms() < deadline) {
		rc = vcvm_qmp_execute(q, "query-migrate", NULL, VCVM_QMP_MS, &ret);
		sa = json_array_get(json_object_get(ret, "socket-address"), 0);
		if (json_string_value(json_object_get(sa, "port")))
			port = atoi(json_string_value(json_object_get(sa, "port")));
		json_decref(ret);
		ret = NULL;
		if (!port)
			sleep_ms(20);
	}
	if (rc < 0 || !port) {
		rc = rc < 0 ? rc : -ETIMEDOUT;
		if (!r->why[0])
			hv_fmt(r->why, sizeof(r->why), "incoming QEMU gave no listening port");
		goto out_kill;
	}
	vcvm_event(m.rundir, e->host, "incoming QEMU ready on %s port %d (from %s)", addr, port,
		   a->from_host);
	r->data = json_pack("{s:s, s:i, s:s}", "host", e->host, "port", port, "folder", m.dir);
	if (in.have_m)
		mvm_free(&in.m);
	in.have_m = false;
	if (mvm_load(e, m.dir, &in.m, r->why, sizeof(r->why)) == 0)	/* the pid, now */
		in.have_m = in.m.pid > 0;
	if (!in.have_m)
		mvm_free(&in.m);
	rt_prio(getpid(), true);	/* COMMIT wakes us at once (until in_drop) */
	r->why[0] = 0;
	rc = 0;
	goto out;
out_kill:
	in_drop();
	vcvm_vm_stop(e, m.dir, 0, true, NULL, 0);
out:
	mvm_free(&m);
	return rc;
}

static bool from_matches(const struct mvm *m, const char *from, bool *finished)
{
	char path[VCVM_PATH_MAX + 80];
	json_t *j;
	bool ok;

	hv_fmt(path, sizeof(path), "%s/incoming.json", m->rundir);
	j = json_load_file(path, 0, NULL);
	ok = j && strcmp(json_string_value(json_object_get(j, "from_host")) ?: "", from) == 0;
	if (finished)
		*finished = ok && json_is_true(json_object_get(j, "finished"));
	json_decref(j);
	return ok;
}

static int do_commit(const struct vcvm_env *e, const struct vcvm_request *req,
		     vcvm_progress_fn progress_fn, void *arg, struct vcvm_response *r)
{
	char path[VCVM_PATH_MAX + 80], st[32] = "";
	struct vcvm_progress p = { "resumed", 0, 0 };
	struct vcvm_qmp *q = NULL;
	bool finished = false;
	long long resume_us = 0, t0, t1;
	struct mvm own, *m;
	json_t *ev = NULL;
	int rc;

	rc = in_mvm(e, req->vm, &own, &m, r->why, sizeof(r->why));
	if (rc < 0)
		return rc;
	vcvm_event(m->rundir, e->host, "commit from %s", req->u.migrate_commit.from_host);
	if (!m->pid || !from_matches(m, req->u.migrate_commit.from_host, &finished)) {
		rc = -VCVM_ENOTRUNNING;
		hv_fmt(r->why, sizeof(r->why), "no incoming migration of %s from %s on host %s",
		       m->c.name, req->u.migrate_commit.from_host, e->host);
		goto out;
	}
	if (finished && !qemu_runs(m->pid)) {
		/* it ran here after the source went quiet, and has stopped since
		 * (killed, crashed): not "done" -- the source must learn that
		 * another host held the lock after its release (its copy is
		 * stale) and stop its QEMU, not report a running VM.  A QEMU
		 * killed a moment ago can still be a zombie: kill(0) is not
		 * enough (tests/vm_migrate_fail.sh, "stale"). */
		rc = -VCVM_ENOTRUNNING;
		hv_fmt(r->why, sizeof(r->why), "%s ran on %s after %s went silent, and its QEMU "
		       "has stopped since", m->c.name, e->host, req->u.migrate_commit.from_host);
		goto out;
	}
	if (finished) {		/* the source went quiet after its release: done already */
		hv_fmt(path, sizeof(path), "%s/incoming.json", m->rundir);
		unlink(path);
		r->data = json_pack("{s:s, s:s, s:b}", "host", e->host, "state", "running",
				    "finished_alone", 1);
		goto out;
	}
	/*
	 * Its QEMU's main thread loads the last of the stream (the source
	 * completed once it was in the socket) and then runs cont: at the
	 * switch-over's priority too, until cont (it blocks once loaded).
	 */
	rt_prio(m->pid, true);
	t0 = real_us();
	rc = mvm_runlock(m, r->why, sizeof(r->why));
	t1 = real_us();
	if (rc == 0)
		rc = in_qmp(e, m, &q);
	if (rc == 0)
		rc = in_settle(q, 10000, st, sizeof(st));
	vcvm_event(m->rundir, e->host, "incoming %s (run lock %lld us, then %lld us)", st, t1 - t0,
		   real_us() - t1);
	if (rc < 0 || strcmp(st, "completed")) {
		rc = rc < 0 ? rc : -VCVM_EMIGRATE;
		hv_fmt(r->why, sizeof(r->why), "incoming migration on %s is \"%s\", not completed",
		       e->host, st);
		goto out;
	}
	rc = finish_here(e, m, q, true, "commit", r->why, sizeof(r->why));
	rt_prio(m->pid, false);
	if (rc < 0)
		goto out;
	if (progress_fn)	/* the source times the switch-over by this frame */
		progress_fn(&p, arg);
	/*
	 * cont emitted RESUME before it answered: its timestamp is the moment
	 * the guest runs here again, on QEMU's clock (the source's STOP is on
	 * its own: the guest-visible pause is the difference).
	 */
	if (vcvm_qmp_wait_event(q, "RESUME", 1000, &ev) == 0 && (resume_us = ev_us(ev)))
		vcvm_event_at(m->rundir, e->host, resume_us, "guest running (RESUME event)");
	json_decref(ev);
	finished_here(e, m, false);
	r->data = json_pack("{s:s, s:s, s:I}", "host", e->host, "state", "running",
			    "resume_us", (json_int_t)resume_us);
out:
	if (m->pid > 0)
		rt_prio(m->pid, false);
	in_drop();
	mvm_free(&own);
	return rc;
}

/*
 * The source of an incoming vMotion went away (lost: its connection ended)
 * or stayed silent with the incoming migration completed.  The datastore
 * lock decides who runs the VM:
 *  - incoming not completed: the source never let go; lost -> kill ours;
 *  - completed: our QEMU has the whole state and the source's disks are
 *    inactive (QEMU flushes them before the end of the stream).  Try to take
 *    the guard: it is free only if the source released it, which it does
 *    after its last write and never takes back once we hold it.  Taken ->
 *    cont here.  Refused (the source still holds it, so it may resume) ->
 *    lost: kill ours; silent: wait more (its COMMIT may still come).
 * When lost, the source host's agent is then asked (MIGRATE_CANCEL, best
 * effort) to resume its orphaned QEMU or to stop a stale one.
 */
int vcvm_migrate_orphan(const struct vcvm_env *e, const char *folder, const char *from,
			bool lost, char *why, size_t n)
{
	char st[32] = "", w[256] = "";
	struct vcvm_qmp *q = NULL;
	char dir[VCVM_PATH_MAX];
	struct mvm own, *m;
	int rc, res;

	rc = in_mvm(e, folder, &own, &m, why, n);	/* once a second: no vm.json read */
	if (rc < 0)
		return rc;
	if (!m->pid || !from_matches(m, from, NULL)) {
		rc = 0;			/* nothing of it left here */
		hv_fmt(why, n, "no incoming QEMU left");
		goto out;
	}
	rc = in_qmp(e, m, &q);
	if (rc == 0)
		rc = in_settle(q, lost ? 10000 : 0, st, sizeof(st));
	if (rc == 0 && !lost && strcmp(st, "completed")) {
		in.completed_at = 0;
		rc = -EAGAIN;		/* still streaming: silence is normal */
		goto out_keep;
	}
	if (rc == 0 && !lost) {
		if (!in.completed_at)
			in.completed_at = mono_ms();
		if (mono_ms() - in.completed_at < VCVM_MIGRATE_COMMIT_MS) {
			rc = -EAGAIN;
			goto out_keep;
		}
	}
	res = -VCVM_EMIGRATE;
	if (rc == 0 && !strcmp(st, "completed")) {
		vcvm_event(m->rundir, e->host, "source %s %s after the incoming migration completed: "
			   "trying the VM's lock", from, lost ? "lost" : "silent");
		res = finish_here(e, m, q, false, lost ? "source lost" : "source silent", w, sizeof(w));
	}
	if (res == -EINPROGRESS) {
		vcfs_warn("%s: cont: %s", m->c.name, w);
		res = 0;
	}
	if (res == 0) {
		finished_here(e, m, !lost);
		hv_fmt(why, n, "%s runs here: the source released its lock and went %s", m->c.name,
		       lost ? "away" : "silent");
		rc = 1;
	} else if (!lost) {
		rc = -EAGAIN;		/* it still holds the lock: its COMMIT may come */
		in.completed_at = mono_ms();
		goto out_keep;
	} else {
		snprintf(dir, sizeof(dir), "%s", m->dir);
		vcvm_event(m->rundir, e->host, "source %s lost (incoming %s%s): killing the incoming "
			   "QEMU", from, st, res == -VCVM_ERUNNING ? ", its lock still held" : "");
		in_drop();	/* m may point into it: not used below */
		vcvm_vm_stop(e, dir, 0, true, NULL, 0);
		hv_fmt(why, n, "incoming migration \"%s\"%s: incoming QEMU killed", st,
		       res == -VCVM_ERUNNING ? ", the source still holds the lock" : "");
		rc = 0;
	}
	if (lost) {
		struct vcvm_request cr = { .type = VCVM_REQ_MIGRATE_CANCEL };
		struct vcvm_response cresp;

		snprintf(cr.vm, sizeof(cr.vm), "%s", folder);
		if (rc == 0)	/* ours is gone and never ran: the source may resume */
			snprintf(cr.u.migrate_commit.from_host,
				 sizeof(cr.u.migrate_commit.from_host), "%s", e->host);
		vcvm_remote(from, &cr, NULL, NULL, &cresp);
		vcfs_info("asked %s to resume or stop its QEMU of %s: %s", from, folder,
			  cresp.rc ? cresp.why : "resumed");
		vcvm_response_free(&cresp);
	}
out:
	in_drop();
out_keep:
	mvm_free(&own);
	return rc;
}

static int do_abort(const struct vcvm_env *e, const struct vcvm_request *req,
		    struct vcvm_response *r)
{
	char path[VCVM_PATH_MAX + 80], st[32] = "";
	struct vcvm_qmp *q = NULL;
	struct mvm m;
	int rc;

	rc = mvm_load(e, req->vm, &m, r->why, sizeof(r->why));
	if (rc < 0)
		return rc;
	if (!from_matches(&m, req->u.migrate_commit.from_host, NULL)) {
		rc = -VCVM_ENOTRUNNING;
		hv_fmt(r->why, sizeof(r->why), "no incoming migration of %s from %s on host %s",
		       m.c.name, req->u.migrate_commit.from_host, e->host);
		goto out;
	}
	if (m.pid && in_qmp(e, &m, &q) == 0) {
		qmp_str(q, "query-status", NULL, "status", st, sizeof(st));
		in_drop();
		if (!strcmp(st, "running")) {
			rc = -VCVM_ERUNNING;
			hv_fmt(r->why, sizeof(r->why), "%s already runs on %s (committed)", m.c.name,
			       e->host);
			goto out;
		}
	}
	if (m.pid)
		vcvm_vm_stop(e, m.dir, 0, true, NULL, 0);
	hv_fmt(path, sizeof(path), "%s/incoming.json", m.rundir);
	unlink(path);
	vcvm_event(m.rundir, e->host, "incoming migration aborted");
	rc = 0;
out:
	mvm_free(&m);
	return rc;
}

/* ---- source ---- */

/* The source's QEMU once it must not run any more: quit, exit record why. */
static void source_quit(struct mvm *m, struct vcvm_qmp **q, const char *reason)
{
	char path[VCVM_PATH_MAX + 80];

	vcvm_qmp_execute(*q, "quit", NULL, VCVM_QMP_MS, NULL);
	vcvm_qmp_close(*q);
	*q = NULL;
	for (int i = 0; i < 250 && kill(m->pid, 0) == 0; i++)
		sleep_ms(20);
	hv_fmt(path, sizeof(path), "%s/exit.json", m->rundir);
	for (int i = 0; i < 100 && access(path, F_OK) < 0; i++)
		sleep_ms(10);
	write_file_json(path, json_pack("{s:s, s:b, s:I}", "reason", reason, "abnormal", 0,
					"time", (json_int_t)time(NULL)));
	hv_fmt(path, sizeof(path), "%s/state.json", m->rundir);
	unlink(path);
}

/* "host esx2 (...)" -> "esx2"; "" if holder names no host. */
static void holder_host(const char *holder, char *out, size_t n)
{
	out[0] = 0;
	if (sscanf(holder, "host %63s", out) != 1)
		out[0] = 0;
	(void)n;
}

/*
 * The process that ran a vMotion from here died (killed CLI or agent): QEMU
 * may wait paused in pre-switchover, or in postmigrate if it died after
 * "completed", for ever.  The guard decides:
 *  - the shim still holds it (never released): cancel the migration, serial
 *    port back to the log, cont (from postmigrate QEMU re-activates the
 *    disks); the destination cannot have run the VM, it never had the lock;
 *  - released: the destination may run it, and once it did our state is
 *    stale: never resume.  If another host holds the lock now, our QEMU is
 *    stopped ("migrated to" it).  Exception: the destination's agent says
 *    (dropped_by, its name) that it lost us and killed its copy without
 *    running it: then resume if the shim can take the lock back (free).
 * The destination's agent sends MIGRATE_CANCEL here itself when it loses
 * its source, so this usually runs without a user.
 */
static int resume_orphan(const struct vcvm_env *e, struct mvm *m, const char *dropped_by,
			 struct vcvm_response *r)
{
	char path[VCVM_PATH_MAX + 80], st[32] = "", holder[256], hh[64], w[256];
	struct vcvm_qmp *q = NULL;
	json_t *j, *ret = NULL, *cd;
	bool released, serial_null = false;
	size_t i;
	int rc;

	hv_fmt(path, sizeof(path), "%s/guard.json", m->rundir);
	j = json_load_file(path, 0, NULL);
	released = j && !strcmp(json_string_value(json_object_get(j, "state")) ?: "", "released");
	json_decref(j);
	rc = vcvm_vm_qmp(e, m->dir, &q);
	if (rc == 0)
		rc = qmp_str(q, "query-status", NULL, "status", st, sizeof(st));
	if (rc == 0 && released) {
		vcvm_guard_holder(m->dir, holder, sizeof(holder));
		holder_host(holder, hh, sizeof(hh));
		if (hh[0] && strcmp(hh, e->host) && strcmp(st, "running")) {
			hv_fmt(w, sizeof(w), "migrated to %s", hh);
			source_quit(m, &q, w);
			vcvm_event(m->rundir, e->host, "orphaned migration: %s holds the lock, "
				   "stale source QEMU stopped", hh);
			hv_fmt(r->why, sizeof(r->why), "no migration of %s in progress on host %s: it "
			       "was handed over to %s, which holds its lock and runs it; the stale "
			       "QEMU here was stopped", m->c.name, e->host, hh);
			return -VCVM_ENOTRUNNING;
		}
	}
	if (rc < 0 || !strcmp(st, "running") || (released && !dropped_by[0])) {
		vcvm_qmp_close(q);
		hv_fmt(r->why, sizeof(r->why), "no migration of %s in progress on host %s%s",
		       m->c.name, e->host, released ?
		       " (it was handed over: see vcvm status on the destination)" : "");
		return -VCVM_ENOTRUNNING;
	}
	/* the lock decides: the shim answers "held" at once if it never let go;
	 * released, and the destination dropped its copy: only if still free */
	rc = vcvm_guard_retake(m->rundir, m->pid, e->host, r->why, sizeof(r->why));
	if (rc == -ESTALE) {
		source_quit(m, &q, "stopped: stale after a vMotion (another host took the lock)");
		vcvm_event(m->rundir, e->host, "orphaned migration: %s; source QEMU stopped", r->why);
		return -VCVM_ENOTRUNNING;
	}
	if (rc < 0) {
		vcvm_qmp_close(q);
		return rc;
	}
	vcvm_qmp_execute(q, "migrate_cancel", NULL, VCVM_QMP_MS, NULL);
	for (int k = 0; k < 50 && qmp_str(q, "query-status", NULL, "status", st, sizeof(st)) == 0 &&
	     !strcmp(st, "finish-migrate"); k++)
		sleep_ms(20);
	if (vcvm_qmp_execute(q, "query-chardev", NULL, VCVM_QMP_MS, &ret) == 0)
		json_array_foreach(ret, i, cd)
			if (!strcmp(json_string_value(json_object_get(cd, "label")) ?: "", "serial0"))
				serial_null = !strcmp(json_string_value(json_object_get(cd,
						      "filename")) ?: "", "null");
	json_decref(ret);
	if (serial_null && serial_to(q, m->dir, &m->c, true, w, sizeof(w)) < 0)
		vcfs_warn("%s: serial port stays off: %s", m->c.name, w);
	rc = qmp_do(q, "cont", NULL, r->why, sizeof(r->why));
	vcvm_qmp_close(q);
	if (rc == 0) {
		vcvm_event(m->rundir, e->host, "orphaned migration cancelled: source resumed (from %s)",
			   st);
		r->data = json_pack("{s:s, s:s}", "name", m->c.name, "state", "resumed");
	}
	return rc;
}

static int do_cancel(const struct vcvm_env *e, const struct vcvm_request *req,
		     struct vcvm_response *r)
{
	char path[VCVM_PATH_MAX + 80];
	struct mvm m;
	json_t *j;
	int rc, pid = 0;

	rc = mvm_load(e, req->vm, &m, r->why, sizeof(r->why));
	if (rc < 0)
		return rc;
	hv_fmt(path, sizeof(path), "%s/migrate.json", m.rundir);
	j = json_load_file(path, 0, NULL);
	if (j)
		pid = (int)json_integer_value(json_object_get(j, "pid"));
	json_decref(j);
	if ((pid <= 0 || kill(pid, 0) < 0) && m.pid) {
		rc = resume_orphan(e, &m, req->u.migrate_commit.from_host, r);
	} else if (pid <= 0 || kill(pid, 0) < 0) {
		rc = -VCVM_ENOTRUNNING;
		hv_fmt(r->why, sizeof(r->why), "no migration of %s in progress on host %s",
		       m.c.name, e->host);
	} else {
		hv_fmt(path, sizeof(path), "%s/migrate.cancel", m.rundir);
		write_file_json(path, json_pack("{s:s}", "by", "vcvm migrate --cancel"));
		r->data = json_pack("{s:s, s:s}", "name", m.c.name, "state", "cancelling");
	}
	mvm_free(&m);
	return rc;
}

/*
 * The versioned machine type the source QEMU runs ("q35" is an alias whose
 * target changes with QEMU versions; both ends must agree): the QOM type of
 * /machine ("pc-q35-7.2-machine"), else query-machines' entry aliased by
 * cfg, else cfg as it is.
 */
static void source_machine(struct vcvm_qmp *q, const char *cfg, char *out, size_t n)
{
	json_t *ret = NULL, *mc, *args = json_pack("{s:s, s:s}", "path", "/machine",
						   "property", "type");
	const char *t;
	size_t i, l;
	int rc;

	snprintf(out, n, "%s", cfg);
	rc = vcvm_qmp_execute(q, "qom-get", args, VCVM_QMP_MS, &ret);
	json_decref(args);
	if (rc == 0 &&
	    (t = json_string_value(ret)) && (l = strlen(t)) > 8 &&
	    !strcmp(t + l - 8, "-machine") && l - 8 < n) {
		snprintf(out, n, "%.*s", (int)(l - 8), t);
		json_decref(ret);
		return;
	}
	json_decref(ret);
	ret = NULL;
	if (vcvm_qmp_execute(q, "query-machines", NULL, VCVM_QMP_MS, &ret) == 0)
		json_array_foreach(ret, i, mc)
			if (!strcmp(json_string_value(json_object_get(mc, "alias")) ?: "", cfg))
				snprintf(out, n, "%s", json_string_value(json_object_get(mc, "name")) ?: cfg);
	json_decref(ret);
}

struct mig {
	const struct vcvm_env *e;
	struct mvm m;
	struct vcvm_qmp *q;
	struct vcvm_conn *dest;
	vcvm_progress_fn progress;
	void *arg;
	char to[VCVM_HOST_MAX];
	char st[32];			/* outgoing status, from MIGRATION events */
	uint64_t t_resumed;		/* mono ms the destination said "resumed" */
	long long stop_us;		/* the source QEMU's STOP event (its clock), 0 */
	long long resumed_us;		/* real us the destination said "resumed" */
	bool serial_off;		/* serial port switched to null (pre-switchover) */
};

/* COMMIT's progress frame "resumed": the destination's guest runs. */
static void commit_progress(const struct vcvm_progress *p, void *arg)
{
	struct mig *g = arg;

	if (!strcmp(p->phase, "resumed") && !g->t_resumed) {
		g->t_resumed = mono_ms();
		g->resumed_us = real_us();
	}
}

/*
 * Test hook (VCVM_TEST_DIE_AFTER=completed|lock-released[:stop], migrate.h):
 * the vMotion process dies (or stops, as a hung one) at that point, for the
 * tests of what the destination and --cancel do then.
 */
static void test_die(struct mig *g, const char *at)
{
	const char *h = getenv("VCVM_TEST_DIE_AFTER");

	size_t l = strlen(at);

	if (h && !strcmp(h, at)) {
		vcvm_event(g->m.rundir, g->e->host, "test hook VCVM_TEST_DIE_AFTER=%s: dying", at);
		_exit(99);
	}
	if (h && !strncmp(h, at, l) && !strcmp(h + l, ":stop")) {	/* a hung process */
		vcvm_event(g->m.rundir, g->e->host, "test hook VCVM_TEST_DIE_AFTER=%s: stopping", h);
		raise(SIGSTOP);
	}
}

static bool st_busy(const char *st)
{
	return !strcmp(st, "setup") || !strcmp(st, "active") || !strcmp(st, "pre-switchover") ||
	       !strcmp(st, "device") || !strcmp(st, "cancelling") || !st[0];
}

/*
 * Follow the outgoing migration's status through MIGRATION events, waiting
 * up to ms for a change.  Not query-migrate's "status": a QEMU that was
 * itself a vMotion destination reports its incoming "completed" there for
 * the rest of its life, whatever its outgoing migration does.
 */
static void mig_wait(struct mig *g, int ms)
{
	json_t *ev = NULL;
	int rc = vcvm_qmp_wait_event(g->q, "MIGRATION", ms, &ev);

	while (rc == 0) {
		snprintf(g->st, sizeof(g->st), "%s", json_string_value(json_object_get(
			 json_object_get(ev, "data"), "status")) ?: g->st);
		json_decref(ev);
		ev = NULL;
		if (!strcmp(g->st, "pre-switchover"))
			return;		/* act on it at once */
		rc = vcvm_qmp_wait_event(g->q, "MIGRATION", 0, &ev);
	}
	if (rc == -VCVM_EQMPCLOSED)
		snprintf(g->st, sizeof(g->st), "failed");
	/* STOP: the moment the guest paused for the switch-over (its timestamp) */
	while (vcvm_qmp_wait_event(g->q, "STOP", 0, &ev) == 0) {
		g->stop_us = ev_us(ev);
		json_decref(ev);
		ev = NULL;
	}
	vcvm_qmp_flush_events(g->q);	/* RESUME, ...: not ours */
}

static void progress(struct mig *g, const char *phase, uint64_t done, uint64_t total)
{
	struct vcvm_progress p = { phase, done, total };

	if (g->progress)
		g->progress(&p, g->arg);
}

/* The destination's agent hung up (EOF or error on its connection)? */
static bool dest_gone(struct mig *g)
{
	struct pollfd p = { .fd = vcvm_conn_fd(g->dest), .events = POLLIN };

	return poll(&p, 1, 0) == 1;	/* nothing is due from it while we migrate */
}

static void dest_abort(struct mig *g)
{
	struct vcvm_request req = { .type = VCVM_REQ_MIGRATE_ABORT };
	struct vcvm_response r;

	snprintf(req.vm, sizeof(req.vm), "%s", g->m.dir);
	snprintf(req.u.migrate_commit.from_host, sizeof(req.u.migrate_commit.from_host), "%s",
		 g->e->host);
	/* behind a cut link nobody answers: the destination's agent aborts by
	 * itself when our connection dies (TCP keepalive) */
	vcvm_conn_set_call_ms(g->dest, 5000);
	if (vcvm_call(g->dest, &req, NULL, NULL, &r) < 0)
		vcfs_warn("%s: abort on %s: %s", g->m.c.name, g->to, r.why);
	vcvm_response_free(&r);
}

/* After a failure before "completed": the source runs on, with its guard. */
static void resume_source(struct mig *g)
{
	char st[32], w[256];
	uint64_t deadline = mono_ms() + 10000;

	/* log back first: QEMU itself may resume the guest when it cancels */
	if (g->serial_off && serial_to(g->q, g->m.dir, &g->m.c, true, w, sizeof(w)) < 0)
		vcfs_warn("%s: serial port stays off: %s", g->m.c.name, w);
	else
		g->serial_off = false;
	vcvm_qmp_execute(g->q, "migrate_cancel", NULL, VCVM_QMP_MS, NULL);
	while (st_busy(g->st) && mono_ms() < deadline)
		mig_wait(g, 200);
	if (qmp_str(g->q, "query-status", NULL, "status", st, sizeof(st)) == 0 &&
	    strcmp(st, "running") && qmp_do(g->q, "cont", NULL, w, sizeof(w)) < 0)
		vcfs_err("%s: cannot resume the source: %s", g->m.c.name, w);
	vcvm_event(g->m.rundir, g->e->host, "migration failed: source resumed");
}

static int do_migrate(const struct vcvm_env *e, const struct vcvm_request *req,
		      vcvm_progress_fn progress_fn, void *arg, struct vcvm_response *r)
{
	const __typeof__(req->u.migrate) *a = &req->u.migrate;
	struct mig g = { .e = e, .progress = progress_fn, .arg = arg };
	struct vcvm_request pr = { .type = VCVM_REQ_MIGRATE_PREPARE };
	struct vcvm_response presp = { 0 }, cresp = { 0 };
	char path[VCVM_PATH_MAX + 80], *st = g.st, uri[128], w[256], err[256] = "";
	uint8_t key[VCVM_KEY_LEN];
	uint64_t t0 = mono_ms(), t_pause = 0, last_bytes = 0, last_move = mono_ms(), ram_total = 0;
	long long t_completed_us = 0, resume_us = 0;
	pid_t shim = 0;
	char w2[256] = "";
	bool asked;
	int64_t downtime = -1, total_time = -1;
	bool cancelled = false;
	int rc, port;

	rc = mvm_load(e, req->vm, &g.m, r->why, sizeof(r->why));
	if (rc < 0)
		return rc;
	snprintf(g.to, sizeof(g.to), "%s", a->to_host);
	if (!a->to_host[0]) {
		rc = -EINVAL;
		hv_fmt(r->why, sizeof(r->why), "migrate needs a destination (--to HOST)");
		goto out;
	}
	rc = mvm_runlock(&g.m, r->why, sizeof(r->why));
	if (rc < 0)
		goto out;
	if (!g.m.pid) {
		rc = -VCVM_ENOTRUNNING;
		hv_fmt(r->why, sizeof(r->why), "%s is not running on host %s", g.m.c.name, e->host);
		goto out;
	}
	rc = vcvm_key_load(vcvm_key_path(), key, r->why, sizeof(r->why));
	if (rc == 0)
		rc = vcvm_conn_connect(a->to_host, key, &g.dest, r->why, sizeof(r->why));
	memset(key, 0, sizeof(key));
	if (rc < 0)
		goto out;
	snprintf(g.to, sizeof(g.to), "%s", vcvm_conn_peer(g.dest));
	if (strcmp(g.to, e->host) == 0) {
		rc = -EINVAL;
		hv_fmt(r->why, sizeof(r->why), "%s already runs on %s", g.m.c.name, e->host);
		goto out;
	}
	hv_fmt(path, sizeof(path), "%s/migrate.cancel", g.m.rundir);
	unlink(path);
	hv_fmt(path, sizeof(path), "%s/migrate.json", g.m.rundir);
	write_file_json(path, json_pack("{s:i, s:s}", "pid", (int)getpid(), "to", g.to));

	/* 1. the destination gets ready, with the machine type we really run */
	progress(&g, "prepare", 0, 0);
	rc = vcvm_qmp_connect(g.m.qmp, VCVM_QMP_MS, &g.q);
	if (rc < 0) {
		hv_fmt(r->why, sizeof(r->why), "monitor %s: %s", g.m.qmp, vcvm_strerror(rc));
		goto out_nodest;
	}
	snprintf(pr.vm, sizeof(pr.vm), "%s", g.m.dir);
	snprintf(pr.u.migrate_prepare.folder, sizeof(pr.u.migrate_prepare.folder), "%s", g.m.dir);
	snprintf(pr.u.migrate_prepare.cpu_model, sizeof(pr.u.migrate_prepare.cpu_model), "%s",
		 g.m.c.cpu_model);
	source_machine(g.q, g.m.c.machine, pr.u.migrate_prepare.machine,
		       sizeof(pr.u.migrate_prepare.machine));
	snprintf(pr.u.migrate_prepare.from_host, sizeof(pr.u.migrate_prepare.from_host), "%s", e->host);
	rc = vcvm_call(g.dest, &pr, NULL, NULL, &presp);
	if (rc < 0) {
		hv_fmt(r->why, sizeof(r->why), "%s", presp.why);
		goto out_nodest;
	}
	port = (int)json_integer_value(json_object_get(presp.data, "port"));

	/* 2. the stream */
	/*
	 * pause-before-switchover: the guest stopped, QEMU waits (without its
	 * big lock) for our migrate-continue; we close the serial log there, so
	 * that its release on the datastore overlaps the copy of the last pages
	 * and the destination's open of it does not wait in the switch-over.
	 */
	rc = qmp_do(g.q, "migrate-set-capabilities", json_pack(
		    "{s:[{s:s, s:b}, {s:s, s:b}, {s:s, s:b}]}", "capabilities",
		    "capability", "pause-before-switchover", "state", 1,
		    "capability", "auto-converge", "state", 1,
		    "capability", "events", "state", 1), r->why, sizeof(r->why));
	if (rc == 0)
		rc = qmp_do(g.q, "migrate-set-parameters", json_pack("{s:I, s:I}",
			    "max-bandwidth", (json_int_t)(a->max_bandwidth ? a->max_bandwidth :
							  VCVM_MIGRATE_BW),
			    "downtime-limit", (json_int_t)(a->downtime_ms ? a->downtime_ms :
							   VCVM_MIGRATE_DOWNTIME)),
			    r->why, sizeof(r->why));
	if (rc < 0)
		goto out_abort;
	hv_fmt(uri, sizeof(uri), strchr(vcvm_conn_remote_addr(g.dest), ':') ? "tcp:[%s]:%d" :
	       "tcp:%s:%d", vcvm_conn_remote_addr(g.dest), port);
	vcvm_event(g.m.rundir, e->host, "migration to %s started (%s)", g.to, uri);
	vcvm_qmp_flush_events(g.q);
	snprintf(g.st, sizeof(g.st), "setup");
	last_move = mono_ms();		/* PREPARE may have taken long (QEMU start) */
	rt_prio(getpid(), true);		/* STOP and completed wake us at once (until out) */
	rc = qmp_do(g.q, "migrate", json_pack("{s:s}", "uri", uri), r->why, sizeof(r->why));
	if (rc < 0)
		goto out_abort;

	/* 3. until completed, or failed */
	for (;;) {
		json_t *ret = NULL, *ram;
		uint64_t moved;

		if (!strcmp(st, "pre-switchover")) {
			/* the guest is stopped: serial log closed (it writes nothing
			 * more), continue at once, then block on the MIGRATION
			 * events until the end (no query, no polling) */
			t_pause = mono_ms();
			rc = serial_to(g.q, g.m.dir, &g.m.c, false, err, sizeof(err));
			if (rc < 0)
				break;
			g.serial_off = true;
			rc = qmp_do(g.q, "migrate-continue", json_pack("{s:s}", "state", "pre-switchover"),
				    err, sizeof(err));
			if (rc < 0)
				break;
			vcvm_event(g.m.rundir, e->host, "pre-switchover: guest paused, serial log closed, "
				   "continued");
			progress(&g, "switch-over", last_bytes, ram_total);
			snprintf(g.st, sizeof(g.st), "device");
			while (st_busy(st) && mono_ms() - t_pause < VCVM_MIGRATE_STALL_MS)
				mig_wait(&g, 1000);
			continue;
		}
		if (!strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "cancelled"))
			break;
		rc = vcvm_qmp_execute(g.q, "query-migrate", NULL, VCVM_QMP_MS, &ret);
		if (rc < 0) {
			hv_fmt(err, sizeof(err), "source QEMU: %s", vcvm_strerror(rc));
			break;
		}
		ram = json_object_get(ret, "ram");
		moved = (uint64_t)json_integer_value(json_object_get(ram, "transferred"));
		ram_total = (uint64_t)json_integer_value(json_object_get(ram, "total"));
		json_decref(ret);
		if (moved != last_bytes) {
			last_bytes = moved;
			last_move = mono_ms();
		}
		progress(&g, "memory", moved, ram_total);
		hv_fmt(path, sizeof(path), "%s/migrate.cancel", g.m.rundir);
		if (access(path, F_OK) == 0) {
			cancelled = true;
			hv_fmt(err, sizeof(err), "cancelled (vcvm migrate --cancel)");
			break;
		}
		if (dest_gone(&g)) {
			hv_fmt(err, sizeof(err), "the agent on %s hung up", g.to);
			break;
		}
		if (mono_ms() - last_move > VCVM_MIGRATE_STALL_MS) {
			hv_fmt(err, sizeof(err), "no progress for %d s (link to %s cut?)",
			       VCVM_MIGRATE_STALL_MS / 1000, g.to);
			break;
		}
		/* a status change (MIGRATION event) wakes us at once: the guest is
		 * paused from pre-switchover until we continue */
		mig_wait(&g, VCVM_MIGRATE_POLL_MS);
	}
	if (strcmp(st, "completed")) {
		if (!err[0] && !strcmp(st, "failed")) {
			json_t *ret = NULL;

			if (vcvm_qmp_execute(g.q, "query-migrate", NULL, VCVM_QMP_MS, &ret) == 0)
				hv_fmt(err, sizeof(err), "QEMU: %s", json_string_value(json_object_get(
				       ret, "error-desc")) ?: "failed");
			json_decref(ret);
		}
		resume_source(&g);
		if (!dest_gone(&g))
			dest_abort(&g);
		rc = -VCVM_EMIGRATE;
		hv_fmt(r->why, sizeof(r->why), "migration of %s to %s %s: %s; it keeps running on %s",
		       g.m.c.name, g.to, cancelled ? "cancelled" : "failed", err[0] ? err : st, e->host);
		goto out;
	}
	t_completed_us = real_us();
	if (!g.stop_us) {
		json_t *ev = NULL;

		if (vcvm_qmp_wait_event(g.q, "STOP", 0, &ev) == 0)
			g.stop_us = ev_us(ev);
		json_decref(ev);
	}
	if (g.stop_us)
		vcvm_event_at(g.m.rundir, e->host, g.stop_us, "guest stopped for the switch-over "
			      "(STOP event)");
	vcvm_event(g.m.rundir, e->host, "completed: source disks flushed and inactive");
	test_die(&g, "completed");

	/*
	 * 4. switch-over: guard from us to the destination, then its cont.  The
	 * shim closes the lock file while we send COMMIT (the serial port went
	 * off at pre-switchover): the destination's open waits for the release
	 * on the datastore (vcfs), so nothing here needs to wait for it first.
	 */
	shim = shim_of(g.m.pid);
	rt_prio(shim, true);		/* its release is the destination's wait */
	rc = vcvm_guard_ask(g.m.rundir, g.m.pid, false, w, sizeof(w));
	asked = rc == 0;
	if (rc == 0 && !g.serial_off)	/* closed at pre-switchover, normally */
		rc = serial_to(g.q, g.m.dir, &g.m.c, false, w, sizeof(w));
	if (rc == 0 && getenv("VCVM_TEST_DIE_AFTER")) {
		rc = vcvm_guard_wait(g.m.rundir, g.m.pid, false, w, sizeof(w));
		rt_prio(shim, false);
		asked = false;
		if (rc == 0)
			test_die(&g, "lock-released");
	}
	if (rc == 0) {
		struct vcvm_request cr = { .type = VCVM_REQ_MIGRATE_COMMIT };

		snprintf(cr.vm, sizeof(cr.vm), "%s", g.m.dir);
		snprintf(cr.u.migrate_commit.from_host, sizeof(cr.u.migrate_commit.from_host), "%s",
			 e->host);
		rc = vcvm_call(g.dest, &cr, commit_progress, &g, &cresp);
		hv_fmt(w, sizeof(w), "%s", cresp.why);
	}
	/* the shim's answer, before any other request to it */
	if (asked && vcvm_guard_wait(g.m.rundir, g.m.pid, false, w2, sizeof(w2)) < 0)
		vcfs_warn("%s: guard release: %s", g.m.c.name, w2);
	rt_prio(shim, false);
	if (rc < 0) {
		char hh[64] = "";
		int rc2;

		/* take it back and run here; if another host has it, it runs there;
		 * if another host had it meanwhile, our copy is stale */
		rc2 = vcvm_guard_retake(g.m.rundir, g.m.pid, e->host, w2, sizeof(w2));
		if (rc2 == -ESTALE) {
			vcvm_event(g.m.rundir, e->host, "commit failed (%s); %s: stale source QEMU "
				   "stopped", w, w2);
			source_quit(&g.m, &g.q, "stopped: stale after a vMotion (another host took "
				    "the lock)");
			hv_fmt(r->why, sizeof(r->why), "commit on %s failed (%s); %s, so it was stopped; "
			       "%s runs nowhere now: start it again (vcvm start)", g.to, w, w2, g.m.c.name);
			rc = -VCVM_EMIGRATE;
			goto out;
		}
		if (rc2 == 0 && serial_to(g.q, g.m.dir, &g.m.c, true, w2, sizeof(w2)) == 0 &&
		    qmp_do(g.q, "cont", NULL, w2, sizeof(w2)) == 0) {
			dest_abort(&g);
			vcvm_event(g.m.rundir, e->host, "commit failed: source resumed");
			hv_fmt(r->why, sizeof(r->why), "commit on %s failed (%s); %s keeps running on %s",
			       g.to, w, g.m.c.name, e->host);
			rc = -VCVM_EMIGRATE;
			goto out;
		}
		if (rc2 == -VCVM_ERUNNING) {
			char holder[256];

			vcvm_guard_holder(g.m.dir, holder, sizeof(holder));
			holder_host(holder, hh, sizeof(hh));
		}
		if (!hh[0] || strcmp(hh, g.to)) {
			hv_fmt(r->why, sizeof(r->why), "commit on %s failed (%s) and the source cannot "
			       "resume (%s): check vcvm status on %s", g.to, w, w2, g.to);
			rc = -VCVM_EMIGRATE;
			goto out;
		}
		/* the destination took the lock itself (finished alone): done */
		vcvm_event(g.m.rundir, e->host, "commit failed (%s) but %s holds the lock: it runs there",
			   w, g.to);
	}
	{
		uint64_t t_done = mono_ms();
		json_t *ret = NULL;

		long long done_us = real_us();
		long long p0 = g.stop_us;	/* the guest paused (source QEMU's STOP) */

		if (!g.t_resumed) {
			g.t_resumed = t_done;
			g.resumed_us = done_us;
		}
		resume_us = (long long)json_integer_value(json_object_get(cresp.data, "resume_us"));
		vcvm_event(g.m.rundir, e->host, "commit acknowledged by %s (stopped -> running: "
			   "completed +%lld ms, resumed frame +%lld ms, destination RESUME +%lld ms)",
			   g.to, p0 ? (t_completed_us - p0) / 1000 : -1,
			   p0 ? (g.resumed_us - p0) / 1000 : -1,
			   p0 && resume_us ? (resume_us - p0) / 1000 : -1);
		/* QEMU's own figures, now that the guest runs again */
		if (vcvm_qmp_execute(g.q, "query-migrate", NULL, VCVM_QMP_MS, &ret) == 0) {
			char *dump = json_dumps(ret, JSON_COMPACT);

			downtime = json_integer_value(json_object_get(ret, "downtime"));
			total_time = json_integer_value(json_object_get(ret, "total-time"));
			vcfs_debug("query-migrate: %s", dump ? dump : "?");
			free(dump);
		}
		json_decref(ret);
		hv_fmt(w2, sizeof(w2), "migrated to %s", g.to);
		source_quit(&g.m, &g.q, w2);
		r->data = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
				    "name", g.m.c.name, "state", "running", "host", g.to,
				    "from", e->host,
				    "downtime_ms", (json_int_t)downtime,
				    "total_ms", (json_int_t)total_time,
				    "pause_ms", (json_int_t)(p0 && resume_us ? (resume_us - p0) / 1000
							     : -1),
				    "switchover_ms", (json_int_t)(p0 ? (g.resumed_us - p0) / 1000 : -1),
				    "commit_ms", (json_int_t)(p0 ? (done_us - p0) / 1000 : -1),
				    "elapsed_ms", (json_int_t)(t_done - t0),
				    "ram_bytes", (json_int_t)ram_total);
		rc = 0;
	}
	goto out;

out_abort:
	dest_abort(&g);
out_nodest:
	;
out:
	rt_prio(getpid(), false);
	hv_fmt(path, sizeof(path), "%s/migrate.json", g.m.rundir);
	unlink(path);
	hv_fmt(path, sizeof(path), "%s/migrate.cancel", g.m.rundir);
	unlink(path);
	vcvm_response_free(&presp);
	vcvm_response_free(&cresp);
	vcvm_qmp_close(g.q);
	vcvm_conn_close(g.dest);
	mvm_free(&g.m);
	return rc;
}

int vcvm_migrate_handle(const struct vcvm_env *e, const struct vcvm_request *req,
			vcvm_progress_fn progress_fn, void *arg, struct vcvm_response *r)
{
	switch (req->type) {
	case VCVM_REQ_MIGRATE:
		return do_migrate(e, req, progress_fn, arg, r);
	case VCVM_REQ_MIGRATE_PREPARE:
		return do_prepare(e, req, r);
	case VCVM_REQ_MIGRATE_COMMIT:
		return do_commit(e, req, progress_fn, arg, r);
	case VCVM_REQ_MIGRATE_ABORT:
		return do_abort(e, req, r);
	case VCVM_REQ_MIGRATE_CANCEL:
		return do_cancel(e, req, r);
	default:
		return -ENOSYS;
	}
}
