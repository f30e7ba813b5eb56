/*
 * storage_move.c - Storage vMotion (agent.h, storage_move.h): the disks of a
 * running VM move to another folder while the guest writes; a stopped VM's
 * disks are copied offline.  Either way holes stay holes.
 *
 * Live, per disk (all disks of one move run together and switch together):
 *   1. create the target file: same size, sparse (ftruncate), O_EXCL,
 *      marked multi-writer like every VM disk (mark_vm_disk below); a qcow2
 *      disk's target is formatted by `qemu-img create` with the source's
 *      virtual size and cluster size (qemu-img info -U reads them while QEMU
 *      runs; a qcow2 with a backing file is refused: sync=full would flatten
 *      its chain into more data than the space check counted);
 *   2. blockdev-add a file node (cache.direct, aio as the VM's disks:
 *      VCVM_AIO, vm.h) and a format node (raw or
 *      qcow2, as the disk) over it with discard=unmap and
 *      detect-zeroes=unmap: the mirror's initial zeroing and every all-zero
 *      write become punched holes (qcow2: unallocated clusters), not
 *      written zeroes;
 *   3. blockdev-mirror sync=full copy-mode=write-blocking: a guest write
 *      completes only once it is on both files, so the copy converges
 *      whatever the guest's write rate (the background copy only ever
 *      shrinks the dirty set);
 *   4. BLOCK_JOB_READY from every job -> block-job-complete each
 *      ("switch-over"); BLOCK_JOB_COMPLETED -> QEMU has pivoted: checked in
 *      query-block (the guest device's node is now the target's);
 *   5. vm.json rewritten once, atomically (vmcfg.c: temp, fsync, rename,
 *      fsync of the folder), with the new paths;
 *   6. the old nodes are blockdev-del'ed (QEMU closes the old files) and the
 *      old files removed.
 * Any failure or cancel before 4 completes: block-job-cancel force=true on
 * every job, the target nodes deleted, the target files removed; the guest
 * never stopped using its old disks and vm.json was never touched.
 *
 * The crash windows, and how move_cancel() (run by `vcvm move-storage VM
 * --cancel`) repairs them from move.json:
 *   mover dies before the pivot     -> QEMU still has the job/nodes: cancel
 *                                      them, delete the target file;
 *   mover dies between pivot and 5  -> QEMU runs on the target: write vm.json
 *                                      now, then 6 (the old file is kept
 *                                      until vm.json names the new one);
 *   mover dies after 5              -> finish 6.
 * So a file that vm.json names is never removed, and the guest is never
 * left on a file vm.json does not name once the cleanup ran.
 *
 * Offline (VM stopped on this host): the file as it is, whatever its format
 * (a qcow2 file is copied byte for byte): the data extents (SEEK_DATA/SEEK_HOLE)
 * are read and written in 1 MiB pieces, all-zero 64 KiB pieces skipped; the
 * target is fsync'ed, then vm.json rewritten, then the old file removed.
 * The run lock keeps a start out for the whole copy.
 *
 * Cancel requests reach the mover as a file, <run_dir>/<uuid>/move.cancel,
 * polled every tick (~200 ms), or from a signal handler of the mover itself
 * (vcvm_move_interrupt).  The mover cannot be reached over QMP: QEMU's
 * monitor socket serves one client, and the mover holds it for the events.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "hypervisor/hv_err.h"
#include "hypervisor/hv_int.h"
#include "hypervisor/storage_move.h"

#define TICK_MS		200	/* event wait; cancel file poll */
#define POLL_MS		500	/* query-block-jobs for progress */
#define SWITCH_MS	120000	/* block-job-complete to BLOCK_JOB_COMPLETED */
#define CANCEL_MS	60000	/* block-job-cancel to its event */
#define MOVER_WAIT_MS	120000	/* --cancel waits this long for a live mover */
#define COPY_CHUNK	(1u << 20)
#define ZERO_PIECE	(64u << 10)
#define MULTIWRITER_XATTR "user.vcfs.multiwriter"

static volatile sig_atomic_t interrupted;

void vcvm_move_interrupt(void)
{
	interrupted = 1;
}

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

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Start time of pid (field 22 of /proc/pid/stat), 0 if gone or a zombie. */
static unsigned long long proc_start(int pid)
{
	char path[64], buf[1024], *p, state;
	unsigned long long st = 0;
	FILE *f;
	int i;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (!p)
		return 0;
	p = strrchr(buf, ')');
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

/* ---- where a path lives ---- */

/*
 * A VM disk carries the multi-writer mark, as vcvm start sets it on every
 * disk (vm.c): the destination of a vMotion opens the disk while the source
 * still runs, and QEMU's image locking guards it.  Set before QEMU opens the
 * target.  Best effort: a filesystem without user xattrs ignores it.
 */
static void mark_vm_disk(const char *path)
{
	if (setxattr(path, MULTIWRITER_XATTR, "1", 1, 0) < 0 && errno != ENOTSUP)
		vcfs_debug("%s: %s: %s", path, MULTIWRITER_XATTR, strerror(errno));
}

static bool same_dir(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];

	return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

/* rmdir dir if it is empty and not keep (the VM folder); quiet. */
static void rmdir_if_empty(const char *dir, const char *keep)
{
	if (!same_dir(dir, keep))
		rmdir(dir);
}

/* ---- the move record ---- */

enum mv_state { MV_NEW, MV_RUNNING, MV_READY, MV_COMPLETING, MV_DONE, MV_FAILED, MV_CANCELLED };

struct mv_disk {
	unsigned idx;
	char src[VCVM_PATH_MAX + 64];		/* the file the VM uses now */
	char dst[VCVM_PATH_MAX + 64];		/* its new place */
	char newrel[VCVM_PATH_MAX];		/* what vm.json will say */
	char job[32], tnode[32], tfile[32];	/* QEMU names (live) */
	char oldnode[64];
	uint64_t size, allocated, done, len;
	uint64_t vsize, cluster;		/* qcow2, live: the target's geometry */
	enum mv_state st;
	bool created, added_file, added_fmt, pivoted;
	char err[256];
};

struct mv {
	const struct vcvm_env *e;
	const char *dir;
	struct vcvm_cfg c;
	char rundir[512], rec[600], cancel[600];
	char tdir[VCVM_PATH_MAX + VCVM_NAME_MAX + 2];
	bool tdir_created, live;
	unsigned n;
	struct mv_disk d[VCVM_MAX_DISKS];
	vcvm_progress_fn progress;
	void *arg;
	uint64_t t0;
};

static int write_file_atomic(const char *path, const char *s)
{
	char tmp[700];
	size_t n = strlen(s);
	int fd, rc = 0;

	hv_fmt(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, s, n) != (ssize_t)n || fsync(fd) < 0)
		rc = errno ? -errno : -EIO;
	close(fd);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

static int record_write(struct mv *m)
{
	json_t *j, *arr = json_array();
	unsigned i;
	char *s;
	int rc;

	for (i = 0; i < m->n; i++) {
		struct mv_disk *d = &m->d[i];

		json_array_append_new(arr, json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
						     "index", (int)d->idx, "source", d->src,
						     "target", d->dst, "file", d->newrel, "job", d->job,
						     "node", d->tnode, "file_node", d->tfile,
						     "old_node", d->oldnode));
	}
	j = json_pack("{s:i, s:I, s:s, s:b, s:s, s:b, s:o}", "pid", (int)getpid(),
		      "pid_start", (json_int_t)proc_start((int)getpid()), "host", m->e->host,
		      "live", m->live, "to", m->tdir, "created_dir", m->tdir_created, "disks", arr);
	if (!j)
		return -ENOMEM;
	s = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	if (!s)
		return -ENOMEM;
	rc = write_file_atomic(m->rec, s);
	free(s);
	return rc;
}

static void record_drop(struct mv *m)
{
	unlink(m->rec);
	unlink(m->cancel);
}

static bool cancel_asked(const struct mv *m)
{
	return interrupted || access(m->cancel, F_OK) == 0;
}

/* ---- QMP helpers ---- */

/* The guest device's id for disk i, as vm.c's build_argv names it. */
static void dev_id(const struct vcvm_cfg *c, unsigned i, char *out, size_t n)
{
	static const char *const pfx[] = { [VCVM_BUS_VIRTIO] = "vd", [VCVM_BUS_SCSI] = "sc",
					   [VCVM_BUS_SATA] = "sd" };

	snprintf(out, n, "%s%u", pfx[c->disks[i].bus], i);
}

/*
 * The node the guest's device for disk i reads and writes now (query-block:
 * its "qdev" is the id or /machine/peripheral/<id>/...).  0 or -ENOENT.
 */
static int device_node(struct vcvm_qmp *q, const struct vcvm_cfg *c, unsigned i, char *out,
		       size_t n)
{
	char id[16], pfx[64];
	json_t *r = NULL, *b;
	size_t k;
	int rc;

	dev_id(c, i, id, sizeof(id));
	snprintf(pfx, sizeof(pfx), "/machine/peripheral/%s/", id);
	rc = vcvm_qmp_execute(q, "query-block", NULL, VCVM_QMP_MS, &r);
	if (rc < 0)
		return rc;
	rc = -ENOENT;
	json_array_foreach(r, k, b) {
		const char *qdev = json_string_value(json_object_get(b, "qdev"));
		const char *node = json_string_value(json_object_get(json_object_get(b, "inserted"),
								     "node-name"));

		if (!qdev || !node)
			continue;
		if (strcmp(qdev, id) == 0 || strncmp(qdev, pfx, strlen(pfx)) == 0) {
			snprintf(out, n, "%s", node);
			rc = 0;
			break;
		}
	}
	json_decref(r);
	return rc;
}

/*
 * The protocol node under format node fmt: vm.c names the pair diskN/fileN,
 * this file mvd<tag>/mvf<tag>; otherwise the "file" node whose filename is
 * path.  0 or -ENOENT.
 */
static int file_node_of(struct vcvm_qmp *q, const char *fmt, const char *path, char *out,
			size_t n)
{
	json_t *r = NULL, *b;
	size_t k;
	int rc;

	if (strncmp(fmt, "disk", 4) == 0) {
		snprintf(out, n, "file%s", fmt + 4);
		return 0;
	}
	if (strncmp(fmt, "mvd", 3) == 0) {
		snprintf(out, n, "mvf%s", fmt + 3);
		return 0;
	}
	rc = vcvm_qmp_execute(q, "query-named-block-nodes", NULL, VCVM_QMP_MS, &r);
	if (rc < 0)
		return rc;
	rc = -ENOENT;
	json_array_foreach(r, k, b) {
		const char *drv = json_string_value(json_object_get(b, "drv"));
		const char *file = json_string_value(json_object_get(b, "file"));
		const char *node = json_string_value(json_object_get(b, "node-name"));

		if (drv && file && node && strcmp(drv, "file") == 0 && strcmp(file, path) == 0) {
			snprintf(out, n, "%s", node);
			rc = 0;
			break;
		}
	}
	json_decref(r);
	return rc;
}

/* blockdev-del, retried for a moment while the node is still busy. */
static int node_del(struct vcvm_qmp *q, const char *node)
{
	uint64_t deadline = mono_ms() + 5000;
	json_t *a;
	int rc;

	if (!node[0])
		return 0;
	a = json_pack("{s:s}", "node-name", node);
	for (;;) {
		rc = vcvm_qmp_execute(q, "blockdev-del", a, VCVM_QMP_MS, NULL);
		if (rc != -VCVM_EQMP || mono_ms() > deadline ||
		    strstr(vcvm_qmp_error_desc(q), "not found") ||
		    strstr(vcvm_qmp_error_desc(q), "Cannot find"))
			break;
		sleep_ms(100);
	}
	json_decref(a);
	if (rc < 0)
		vcfs_warn("blockdev-del %s: %s %s", node, vcvm_strerror(rc), vcvm_qmp_error_desc(q));
	return rc;
}

static int job_cancel(struct vcvm_qmp *q, const char *job)
{
	json_t *a = json_pack("{s:s, s:b}", "device", job, "force", 1);
	int rc = vcvm_qmp_execute(q, "block-job-cancel", a, VCVM_QMP_MS, NULL);

	json_decref(a);
	return rc;
}

/* Our jobs' offset/len from query-block-jobs; reports progress. */
static void poll_jobs(struct mv *m, struct vcvm_qmp *q)
{
	uint64_t done = 0, total = 0;
	json_t *r = NULL, *j;
	unsigned i;
	size_t k;

	if (vcvm_qmp_execute(q, "query-block-jobs", NULL, VCVM_QMP_MS, &r) < 0)
		return;
	json_array_foreach(r, k, j) {
		const char *id = json_string_value(json_object_get(j, "device"));

		for (i = 0; id && i < m->n; i++)
			if (strcmp(id, m->d[i].job) == 0) {
				m->d[i].done = (uint64_t)json_integer_value(json_object_get(j, "offset"));
				m->d[i].len = (uint64_t)json_integer_value(json_object_get(j, "len"));
			}
	}
	json_decref(r);
	for (i = 0; i < m->n; i++) {
		done += m->d[i].done;
		total += m->d[i].len;
	}
	if (m->progress) {
		struct vcvm_progress p = { "mirror", done, total };

		m->progress(&p, m->arg);
	}
}

static struct mv_disk *disk_of_job(struct mv *m, json_t *ev)
{
	const char *id = json_string_value(json_object_get(json_object_get(ev, "data"), "device"));
	unsigned i;

	for (i = 0; id && i < m->n; i++)
		if (strcmp(id, m->d[i].job) == 0)
			return &m->d[i];
	return NULL;
}

/* Sort one event into the disks' states. */
static void on_event(struct mv *m, json_t *ev)
{
	const char *name = json_string_value(json_object_get(ev, "event"));
	json_t *data = json_object_get(ev, "data");
	struct mv_disk *d = disk_of_job(m, ev);
	const char *err;

	if (!name || !d)
		return;
	if (strcmp(name, "BLOCK_JOB_READY") == 0) {
		if (d->st == MV_RUNNING)
			d->st = MV_READY;
	} else if (strcmp(name, "BLOCK_JOB_COMPLETED") == 0) {
		err = json_string_value(json_object_get(data, "error"));
		if (err) {
			d->st = MV_FAILED;
			snprintf(d->err, sizeof(d->err), "%s", err);
		} else {
			/* completed without a pivot when cancelled after READY: checked later */
			d->st = d->st == MV_COMPLETING ? MV_DONE : MV_CANCELLED;
		}
		d->done = (uint64_t)json_integer_value(json_object_get(data, "offset"));
	} else if (strcmp(name, "BLOCK_JOB_CANCELLED") == 0) {
		d->st = MV_CANCELLED;
	} else if (strcmp(name, "BLOCK_JOB_ERROR") == 0 && !d->err[0]) {
		snprintf(d->err, sizeof(d->err), "I/O error on %s (%s)",
			 json_string_value(json_object_get(data, "operation")) ?: "?",
			 json_string_value(json_object_get(data, "action")) ?: "?");
	}
}

static bool terminal(enum mv_state s)
{
	return s == MV_DONE || s == MV_FAILED || s == MV_CANCELLED || s == MV_NEW;
}

/* Wait (bounded) until every started job has ended; events sorted on the way. */
static int wait_jobs(struct mv *m, struct vcvm_qmp *q, int timeout_ms)
{
	uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
	json_t *ev;
	unsigned i;
	int rc;

	for (;;) {
		for (i = 0; i < m->n && terminal(m->d[i].st); i++)
			;
		if (i == m->n)
			return 0;
		if (mono_ms() > deadline)
			return -ETIMEDOUT;
		rc = vcvm_qmp_wait_event(q, NULL, TICK_MS, &ev);
		if (rc == 0) {
			on_event(m, ev);
			json_decref(ev);
		} else if (rc != -ETIMEDOUT) {
			return rc;
		}
	}
}

/* Undo every disk that did not pivot: cancel its job, delete its nodes and file. */
static void undo_live(struct mv *m, struct vcvm_qmp *q)
{
	unsigned i;

	for (i = 0; q && i < m->n; i++)
		if (!terminal(m->d[i].st) && job_cancel(q, m->d[i].job) < 0)
			vcfs_warn("block-job-cancel %s: %s", m->d[i].job, vcvm_qmp_error_desc(q));
	if (q && wait_jobs(m, q, CANCEL_MS) < 0)
		vcfs_warn("block jobs did not end within %d s", CANCEL_MS / 1000);
	for (i = 0; i < m->n; i++) {
		struct mv_disk *d = &m->d[i];

		if (d->pivoted)
			continue;
		if (q && d->added_fmt)
			node_del(q, d->tnode);
		if (q && d->added_file)
			node_del(q, d->tfile);
		if (d->created && unlink(d->dst) < 0 && errno != ENOENT)
			vcfs_warn("cannot remove the partial target %s: %s", d->dst, strerror(errno));
		d->created = false;
	}
}

/* Steps 1-2: target file and nodes for disk d; 3: the mirror job. */
static int start_disk(struct mv *m, struct vcvm_qmp *q, struct mv_disk *d, uint64_t speed,
		      char *why, size_t whylen)
{
	json_t *a;
	int rc;

	rc = device_node(q, &m->c, d->idx, d->oldnode, sizeof(d->oldnode));
	if (rc < 0) {
		say(why, whylen, "disks[%u]: QEMU shows no block device for it (%s)", d->idx,
		    vcvm_strerror(rc));
		return rc;
	}
	a = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:b, s:b}}", "driver", "file", "node-name",
		      d->tfile, "filename", d->dst, "aio", m->e->aio, "discard", "unmap",
		      "cache", "direct", 1, "no-flush", 0);
	rc = vcvm_qmp_execute(q, "blockdev-add", a, VCVM_QMP_MS, NULL);
	json_decref(a);
	if (rc < 0)
		goto qerr;
	d->added_file = true;
	a = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:b, s:b}}", "driver",
		      vcvm_fmt_name(m->c.disks[d->idx].format), "node-name", d->tnode, "file", d->tfile, "discard", "unmap", "detect-zeroes", "unmap",
		      "cache", "direct", 1, "no-flush", 0);
	rc = vcvm_qmp_execute(q, "blockdev-add", a, VCVM_QMP_MS, NULL);
	json_decref(a);
	if (rc < 0)
		goto qerr;
	d->added_fmt = true;
	a = json_pack("{s:s, s:s, s:s, s:s, s:s}", "job-id", d->job, "device", d->oldnode,
		      "target", d->tnode, "sync", "full", "copy-mode", "write-blocking");
	if (speed)
		json_object_set_new(a, "speed", json_integer((json_int_t)speed));
	rc = vcvm_qmp_execute(q, "blockdev-mirror", a, VCVM_QMP_MS, NULL);
	json_decref(a);
	if (rc < 0)
		goto qerr;
	d->st = MV_RUNNING;
	return 0;
qerr:
	say(why, whylen, "disks[%u] -> %s: QEMU refused: %s %s", d->idx, d->dst,
	    vcvm_strerror(rc), vcvm_qmp_error_desc(q));
	return rc;
}

/*
 * The first failed disk's story, for why.  npiv: how many disks did switch
 * over (their move stands; vm.json names them).
 */
static int failure_of(struct mv *m, unsigned npiv, char *why, size_t whylen)
{
	const char *tail = npiv ? "this disk stays where it was; the disks that switched over "
				  "moved (vm.json names them)"
				: "the VM runs on its old disks, vm.json unchanged";
	unsigned i;

	for (i = 0; i < m->n; i++) {
		struct mv_disk *d = &m->d[i];

		if (d->st == MV_FAILED || (!d->pivoted && d->err[0])) {
			bool full = strstr(d->err, "No space") != NULL;

			say(why, whylen, "copying disks[%u] %s to %s failed: %s%s; %s", d->idx,
			    d->src, d->dst, d->err, full ? " (the target datastore is full: free "
			    "space or choose another)" : "", tail);
			return full ? -ENOSPC : -EIO;
		}
	}
	say(why, whylen, "a block job ended without its disk switching over; %s", tail);
	return -EIO;
}

/* Step 6 for a pivoted disk: QEMU lets go of the old file, which is removed. */
static void drop_old(struct mv *m, struct vcvm_qmp *q, struct mv_disk *d)
{
	char fnode[64] = "", dirbuf[VCVM_PATH_MAX + 64];

	if (q && d->oldnode[0]) {
		if (file_node_of(q, d->oldnode, d->src, fnode, sizeof(fnode)) < 0)
			fnode[0] = 0;
		node_del(q, d->oldnode);
		node_del(q, fnode);
	}
	if (unlink(d->src) < 0 && errno != ENOENT)
		vcfs_warn("cannot remove the old disk %s: %s", d->src, strerror(errno));
	snprintf(dirbuf, sizeof(dirbuf), "%s", d->src);
	rmdir_if_empty(dirname(dirbuf), m->dir);
}

/* Step 5: vm.json names the pivoted disks' new files. */
static int save_config(struct mv *m, char *why, size_t whylen)
{
	char w[256];
	unsigned i;
	int rc;

	for (i = 0; i < m->n; i++)
		if (m->d[i].pivoted) {
			struct vcvm_disk *cd = &m->c.disks[m->d[i].idx];

			snprintf(cd->file, sizeof(cd->file), "%s", m->d[i].newrel);
			cd->owned = true;	/* the move made it: destroy deletes it */
		}
	rc = vcvm_cfg_save(m->dir, &m->c, w, sizeof(w));
	if (rc < 0)
		say(why, whylen, "QEMU now runs the VM's disks from %s but vm.json could not be "
		    "written (%s); both files are kept: run vcvm move-storage %s --cancel to "
		    "record the new paths", m->tdir, w, m->c.name);
	return rc;
}

static int move_live(struct mv *m, uint64_t speed, char *why, size_t whylen)
{
	struct vcvm_qmp *q = NULL;
	uint64_t last_poll = 0, switch_deadline = 0;
	bool cancelling = false, switching = false, user_cancel = false;
	unsigned i, npiv;
	json_t *ev;
	int rc;

	rc = vcvm_vm_qmp(m->e, m->dir, &q);
	if (rc < 0) {
		say(why, whylen, "cannot reach the monitor of %s: %s", m->c.name, vcvm_strerror(rc));
		goto undo;
	}
	vcvm_qmp_flush_events(q);
	for (i = 0; i < m->n; i++) {
		rc = start_disk(m, q, &m->d[i], speed, why, whylen);
		if (rc < 0)
			goto undo;
	}
	record_write(m);

	for (;;) {
		bool all_ready = true, all_end = true, any_failed = false;

		for (i = 0; i < m->n; i++) {
			all_ready &= m->d[i].st == MV_READY;
			all_end &= terminal(m->d[i].st);
			any_failed |= m->d[i].st == MV_FAILED || m->d[i].st == MV_CANCELLED;
		}
		if (all_end) {
			rc = 0;
			break;
		}
		if (!switching && !cancelling && (any_failed || cancel_asked(m))) {
			cancelling = true;
			user_cancel = !any_failed;
			for (i = 0; i < m->n; i++)
				if (!terminal(m->d[i].st))
					job_cancel(q, m->d[i].job);
		}
		if (all_ready && !switching && !cancelling) {
			/* step 4: every disk in step, the guest's writes on both sides */
			switching = true;
			switch_deadline = mono_ms() + SWITCH_MS;
			poll_jobs(m, q);
			if (m->progress) {
				struct vcvm_progress p = { "switch-over", 0, 1 };

				m->progress(&p, m->arg);
			}
			for (i = 0; i < m->n; i++) {
				json_t *a = json_pack("{s:s}", "device", m->d[i].job);

				m->d[i].st = MV_COMPLETING;
				rc = vcvm_qmp_execute(q, "block-job-complete", a, VCVM_QMP_MS, NULL);
				json_decref(a);
				if (rc < 0) {
					/* this disk stays behind: its job is cancelled */
					m->d[i].st = MV_READY;
					snprintf(m->d[i].err, sizeof(m->d[i].err),
						 "block-job-complete: %s", vcvm_qmp_error_desc(q));
					vcfs_warn("%s: %s", m->d[i].job, m->d[i].err);
					job_cancel(q, m->d[i].job);
				}
			}
		}
		if (switching && mono_ms() > switch_deadline) {
			rc = -ETIMEDOUT;
			say(why, whylen, "QEMU did not finish the switch-over in %d s", SWITCH_MS / 1000);
			break;
		}
		rc = vcvm_qmp_wait_event(q, NULL, TICK_MS, &ev);
		if (rc == 0) {
			on_event(m, ev);
			json_decref(ev);
		} else if (rc != -ETIMEDOUT) {
			say(why, whylen, "QEMU's monitor went away during the move (%s): is the VM "
			    "still running?", vcvm_strerror(rc));
			vcvm_qmp_close(q);
			q = NULL;
			goto undo;
		}
		if (!switching && mono_ms() - last_poll >= POLL_MS) {
			last_poll = mono_ms();
			poll_jobs(m, q);
		}
	}

	/* which disks did switch: the guest's device sits on the target node now */
	npiv = 0;
	for (i = 0; i < m->n; i++) {
		char node[64];

		if (device_node(q, &m->c, m->d[i].idx, node, sizeof(node)) == 0 &&
		    strcmp(node, m->d[i].tnode) == 0) {
			m->d[i].pivoted = true;
			npiv++;
		}
	}
	if (npiv == 0) {
		if (rc == 0 && user_cancel) {
			rc = -ECANCELED;
			say(why, whylen, "cancelled; %s runs on its old disks, vm.json unchanged",
			    m->c.name);
		} else if (rc == 0) {
			rc = failure_of(m, 0, why, whylen);
		}
		goto undo;
	}
	/* some switched, some not (a failed completion): keep what switched */
	if (npiv < m->n)
		rc = failure_of(m, npiv, why, whylen);
	else
		rc = 0;
	{
		char w2[512] = "";
		int src = save_config(m, w2, sizeof(w2));

		if (src < 0) {
			say(why, whylen, "%s", w2);
			vcvm_qmp_close(q);
			return src;		/* move.json stays: --cancel finishes it */
		}
	}
	for (i = 0; i < m->n; i++)
		if (m->d[i].pivoted)
			drop_old(m, q, &m->d[i]);
	undo_live(m, q);
	vcvm_qmp_close(q);
	return rc;

undo:
	undo_live(m, q);
	vcvm_qmp_close(q);
	return rc;
}

/* ---- offline ---- */

static bool all_zero(const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/*
 * Copy src's data extents into dst (already created, sized, sparse); zero
 * pieces are skipped so they stay holes.  *copied: bytes written.
 */
static int copy_sparse(struct mv *m, struct mv_disk *d, uint64_t *base, uint64_t total,
		       char *why, size_t whylen)
{
	int in, out, rc = 0;
	off_t data, hole, o;
	uint64_t last = 0;
	char *buf = NULL;

	in = open(d->src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		rc = -errno;
		say(why, whylen, "disks[%u]: %s: %s", d->idx, d->src, strerror(errno));
		return rc;
	}
	out = open(d->dst, O_WRONLY | O_CLOEXEC);
	if (out < 0) {
		rc = -errno;
		say(why, whylen, "%s: %s", d->dst, strerror(errno));
		goto out_in;
	}
	if (posix_memalign((void **)&buf, 4096, COPY_CHUNK)) {
		rc = -ENOMEM;
		goto out;
	}
	for (data = 0; data < (off_t)d->size; data = hole) {
		data = lseek(in, data, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break;		/* only a hole is left */
			rc = -errno;
			say(why, whylen, "%s: SEEK_DATA: %s", d->src, strerror(errno));
			goto out;
		}
		hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0) {
			rc = -errno;
			say(why, whylen, "%s: SEEK_HOLE: %s", d->src, strerror(errno));
			goto out;
		}
		for (o = data; o < hole; ) {
			size_t n = (size_t)(hole - o) < COPY_CHUNK ? (size_t)(hole - o) : COPY_CHUNK;
			ssize_t r = pread(in, buf, n, o);
			size_t p;

			if (r <= 0) {
				rc = r < 0 ? -errno : -EIO;
				say(why, whylen, "reading %s at %lld: %s", d->src, (long long)o,
				    strerror(-rc));
				goto out;
			}
			for (p = 0; p < (size_t)r; p += ZERO_PIECE) {
				size_t k = (size_t)r - p < ZERO_PIECE ? (size_t)r - p : ZERO_PIECE;

				if (all_zero(buf + p, k))
					continue;
				if (pwrite(out, buf + p, k, o + (off_t)p) != (ssize_t)k) {
					rc = errno ? -errno : -EIO;
					say(why, whylen, "writing %s: %s%s", d->dst, strerror(-rc),
					    rc == -ENOSPC ? " (the target datastore is full)" : "");
					goto out;
				}
				d->done += k;
			}
			o += r;
			if (cancel_asked(m)) {
				rc = -ECANCELED;
				say(why, whylen, "cancelled; vm.json unchanged");
				goto out;
			}
			if (m->progress && mono_ms() - last >= POLL_MS) {
				struct vcvm_progress pr = { "copy", *base + (uint64_t)o, total };

				last = mono_ms();
				m->progress(&pr, m->arg);
			}
		}
	}
	if (fsync(out) < 0) {
		rc = -errno;
		say(why, whylen, "fsync %s: %s", d->dst, strerror(errno));
	}
out:
	free(buf);
	close(out);
out_in:
	close(in);
	*base += d->size;
	return rc;
}

static int move_offline(struct mv *m, char *why, size_t whylen)
{
	uint64_t base = 0, total = 0;
	unsigned i;
	int rc = 0;

	for (i = 0; i < m->n; i++)
		total += m->d[i].size;
	for (i = 0; i < m->n && rc == 0; i++)
		rc = copy_sparse(m, &m->d[i], &base, total, why, whylen);
	if (rc < 0)
		goto undo;
	for (i = 0; i < m->n; i++)
		m->d[i].pivoted = true;
	rc = save_config(m, why, whylen);
	if (rc < 0) {
		for (i = 0; i < m->n; i++)
			m->d[i].pivoted = false;
		say(why, whylen, "vm.json could not be written; the copies are removed");
		goto undo;
	}
	for (i = 0; i < m->n; i++)
		drop_old(m, NULL, &m->d[i]);
	return 0;
undo:
	for (i = 0; i < m->n; i++)
		if (m->d[i].created)
			unlink(m->d[i].dst);
	return rc;
}

/* ---- preparation ---- */

/* Where the disks go (storage_move.h); creates the folder if needed. */
static int target_dir(struct mv *m, const char *to, char *why, size_t whylen)
{
	char buf[VCVM_PATH_MAX + 8];
	struct stat sb;
	const char *base;
	int rc;

	if (stat(to, &sb) < 0) {
		rc = -errno;
		say(why, whylen, "target %s: %s (mount the datastore or create the folder first)",
		    to, strerror(errno));
		return rc;
	}
	if (!S_ISDIR(sb.st_mode)) {
		say(why, whylen, "target %s is not a folder (give a datastore or a folder)", to);
		return -ENOTDIR;
	}
	snprintf(buf, sizeof(buf), "%s", to);
	while (strlen(buf) > 1 && buf[strlen(buf) - 1] == '/')
		buf[strlen(buf) - 1] = 0;
	base = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
	if (same_dir(buf, m->dir) || strcmp(base, m->c.name) == 0) {
		rc = hv_fmt(m->tdir, sizeof(m->tdir), "%s", buf);
	} else {
		rc = hv_fmt(m->tdir, sizeof(m->tdir), "%s/%s", buf, m->c.name);
		if (rc == 0 && mkdir(m->tdir, 0755) == 0)
			m->tdir_created = true;
		else if (rc == 0 && errno != EEXIST) {
			rc = -errno;
			say(why, whylen, "cannot create %s: %s", m->tdir, strerror(errno));
			return rc;
		}
	}
	if (rc < 0)
		say(why, whylen, "target %s: path too long", to);
	return rc;
}

/* ---- qcow2 targets (live moves) ---- */

static const char *qemu_img(void)
{
	const char *s = getenv("VCVM_QEMU_IMG");

	return s && *s ? s : "qemu-img";
}

/* The source's virtual size and cluster size (d->vsize, d->cluster). */
static int qcow2_geometry(struct mv_disk *d, char *why, size_t whylen)
{
	char out[16384], err[256];
	char *argv[] = { (char *)qemu_img(), "info", "-U", "--output=json", "-f", "qcow2",
			 d->src, NULL };
	json_t *j, *v;
	int rc = hv_run(argv, NULL, out, sizeof(out), err, sizeof(err));

	if (rc != 0) {
		say(why, whylen, "%s: %s info failed: %s", d->src, argv[0],
		    rc < 0 ? strerror(-rc) : err);
		return rc < 0 ? rc : -EIO;
	}
	j = json_loads(out, 0, NULL);
	if (!j) {
		say(why, whylen, "%s: %s info printed no JSON", d->src, argv[0]);
		return -EIO;
	}
	if ((v = json_object_get(j, "backing-filename")) && json_is_string(v)) {
		say(why, whylen, "%s is a qcow2 with a backing file (%s): move-storage moves "
		    "standalone disks; make it one first (qemu-img convert or rebase -b '')",
		    d->src, json_string_value(v));
		json_decref(j);
		return -ENOTSUP;
	}
	v = json_object_get(j, "virtual-size");
	d->vsize = json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
	v = json_object_get(j, "cluster-size");
	d->cluster = json_is_integer(v) ? (uint64_t)json_integer_value(v) : 65536;
	json_decref(j);
	if (!d->vsize) {
		say(why, whylen, "%s: qemu-img info shows no virtual size", d->src);
		return -EIO;
	}
	return 0;
}

/* Format the (empty, created) target as qcow2 with the source's geometry. */
static int qcow2_create(struct mv_disk *d, char *why, size_t whylen)
{
	char out[1024], err[256], opt[64], size[32];
	char *argv[] = { (char *)qemu_img(), "create", "-q", "-f", "qcow2", "-o", opt,
			 d->dst, size, NULL };
	int rc;

	snprintf(opt, sizeof(opt), "cluster_size=%llu", (unsigned long long)d->cluster);
	snprintf(size, sizeof(size), "%llu", (unsigned long long)d->vsize);
	rc = hv_run(argv, NULL, out, sizeof(out), err, sizeof(err));
	if (rc != 0) {
		say(why, whylen, "target %s: %s create failed: %s", d->dst, argv[0],
		    rc < 0 ? strerror(-rc) : err);
		return rc < 0 ? rc : -EIO;
	}
	return 0;
}

/* Pick the disks, name their targets, check room, create the files. */
static int prepare(struct mv *m, int disk, char *why, size_t whylen)
{
	uint64_t need = 0;
	struct statvfs vs;
	struct stat sb;
	bool in_folder = same_dir(m->tdir, m->dir);
	unsigned i, skipped = 0;
	int rc, fd;

	if (disk >= (int)m->c.ndisks) {
		say(why, whylen, "--disk %d: %s has %u disk%s (0..%d)", disk, m->c.name,
		    m->c.ndisks, m->c.ndisks == 1 ? "" : "s", (int)m->c.ndisks - 1);
		return -EINVAL;
	}
	for (i = 0; i < m->c.ndisks; i++) {
		struct mv_disk *d = &m->d[m->n];
		char sdir[VCVM_PATH_MAX + 64], tmp[VCVM_PATH_MAX + 64];
		const char *base;

		if (disk >= 0 && (int)i != disk)
			continue;
		memset(d, 0, sizeof(*d));
		d->idx = i;
		vcvm_cfg_path(m->dir, m->c.disks[i].file, d->src, sizeof(d->src));
		if (stat(d->src, &sb) < 0) {
			rc = -errno;
			say(why, whylen, "disks[%u].file: %s: %s", i, d->src, strerror(errno));
			return rc;
		}
		if (m->live && m->c.disks[i].format == VCVM_FMT_QCOW2 &&
		    (rc = qcow2_geometry(d, why, whylen)) < 0)
			return rc;
		snprintf(sdir, sizeof(sdir), "%s", d->src);
		if (same_dir(dirname(sdir), m->tdir)) {
			skipped++;
			continue;	/* already there */
		}
		snprintf(tmp, sizeof(tmp), "%s", d->src);
		base = basename(tmp);
		if (hv_fmt(d->dst, sizeof(d->dst), "%s/%s", m->tdir, base) < 0 ||
		    hv_fmt(d->newrel, sizeof(d->newrel), "%s", in_folder ? base : d->dst) < 0) {
			say(why, whylen, "target path for disks[%u] is too long", i);
			return -ENAMETOOLONG;
		}
		d->size = (uint64_t)sb.st_size;
		d->allocated = (uint64_t)sb.st_blocks * 512;
		need += d->allocated;
		snprintf(d->job, sizeof(d->job), "vcvm-move-%u", i);
		snprintf(d->tnode, sizeof(d->tnode), "mvd%d-%u", (int)getpid(), i);
		snprintf(d->tfile, sizeof(d->tfile), "mvf%d-%u", (int)getpid(), i);
		m->n++;
	}
	if (m->n == 0) {
		say(why, whylen, "nothing to move: %s already in %s", skipped > 1 ?
		    "the disks are" : "the disk is", m->tdir);
		return -EALREADY;
	}
	/* room for the data (holes stay holes), with 1% + 16 MiB of slack */
	if (statvfs(m->tdir, &vs) == 0) {
		uint64_t avail = (uint64_t)vs.f_bavail * vs.f_frsize;
		uint64_t want = need + need / 100 + (16u << 20);

		if (avail < want) {
			say(why, whylen, "the target %s has %llu MiB free; the disks hold %llu MiB "
			    "of data (+ slack): free space or choose another datastore", m->tdir,
			    (unsigned long long)(avail >> 20), (unsigned long long)(need >> 20));
			return -ENOSPC;
		}
	}
	for (i = 0; i < m->n; i++) {
		struct mv_disk *d = &m->d[i];

		fd = open(d->dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0) {
			rc = -errno;
			say(why, whylen, "target %s: %s%s", d->dst, strerror(errno), errno == EEXIST ?
			    " (a file of that name is already there: remove it or move elsewhere)" : "");
			return rc;
		}
		d->created = true;
		if (!d->vsize && ftruncate(fd, (off_t)d->size) < 0) {
			rc = -errno;
			say(why, whylen, "target %s: cannot size it to %llu bytes: %s", d->dst,
			    (unsigned long long)d->size, strerror(errno));
			close(fd);
			return rc;
		}
		close(fd);
		mark_vm_disk(d->dst);
		if (d->vsize && (rc = qcow2_create(d, why, whylen)) < 0)
			return rc;
	}
	return 0;
}

/*
 * What moved: per disk "copied" is the data the target holds now (its
 * allocated bytes: holes are not counted), "mirrored" what the block job
 * walked (live: the whole disk, zero ranges included).
 */
static json_t *result_json(const struct mv *m)
{
	json_t *arr = json_array();
	uint64_t data, total = 0;
	struct stat sb;
	unsigned i;

	for (i = 0; i < m->n; i++) {
		const struct mv_disk *d = &m->d[i];

		if (!d->pivoted)
			continue;
		data = stat(d->dst, &sb) == 0 ? (uint64_t)sb.st_blocks * 512 : d->done;
		total += data;
		json_array_append_new(arr, json_pack("{s:i, s:s, s:s, s:I, s:I, s:I}", "index",
						     (int)d->idx, "from", d->src, "to", d->dst,
						     "size", (json_int_t)d->size, "copied", (json_int_t)data,
						     "mirrored", (json_int_t)d->done));
	}
	return json_pack("{s:s, s:b, s:s, s:f, s:I, s:o}", "name", m->c.name, "live", m->live,
			 "folder", m->tdir, "seconds", (double)(mono_ms() - m->t0) / 1000.0,
			 "copied", (json_int_t)total, "disks", arr);
}

static void paths_of(const struct vcvm_env *e, const char *dir, struct mv *m)
{
	m->e = e;
	m->dir = dir;
	hv_fmt(m->rundir, sizeof(m->rundir), "%s/%s", e->run_dir, m->c.uuid);
	hv_fmt(m->rec, sizeof(m->rec), "%s/move.json", m->rundir);
	hv_fmt(m->cancel, sizeof(m->cancel), "%s/move.cancel", m->rundir);
}

/* Is the mover recorded in move.json alive?  pid in *pid. */
static bool mover_alive(json_t *rec, int *pid)
{
	unsigned long long st;

	*pid = (int)json_integer_value(json_object_get(rec, "pid"));
	st = (unsigned long long)json_integer_value(json_object_get(rec, "pid_start"));
	return *pid > 0 && proc_start(*pid) != 0 && proc_start(*pid) == st;
}

int vcvm_move_storage(const struct vcvm_env *e, const char *dir, const char *to, int disk,
		      uint64_t max_bandwidth, vcvm_progress_fn progress, void *arg,
		      json_t **data, char *why, size_t whylen)
{
	struct vcvm_status st;
	struct mv *m;
	json_t *old;
	int rc, lockfd, pid;

	*data = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->progress = progress;
	m->arg = arg;
	m->t0 = mono_ms();
	rc = vcvm_cfg_load(dir, &m->c, why, whylen);
	if (rc < 0)
		goto out_free;
	paths_of(e, dir, m);
	lockfd = vcvm_run_lock(m->rundir, why, whylen);
	if (lockfd < 0) {
		rc = lockfd;
		goto out_cfg;
	}
	old = json_load_file(m->rec, 0, NULL);
	if (old) {
		rc = mover_alive(old, &pid) ? -EBUSY : -EAGAIN;
		say(why, whylen, rc == -EBUSY ? "a move of %s is running (pid %d)" :
		    "a previous move of %s (pid %d) was interrupted: run vcvm move-storage %s "
		    "--cancel to clean it up first", m->c.name, pid, m->c.name);
		json_decref(old);
		goto out_lock;
	}
	unlink(m->cancel);
	rc = target_dir(m, to, why, whylen);
	if (rc < 0)
		goto out_lock;
	rc = vcvm_vm_status(e, dir, &st);
	if (rc < 0) {
		say(why, whylen, "status of %s: %s", m->c.name, vcvm_strerror(rc));
		goto out_tdir;
	}
	m->live = st.state == VCVM_ST_RUNNING || st.state == VCVM_ST_PAUSED;
	rc = prepare(m, disk, why, whylen);
	if (rc < 0)
		goto out_targets;
	rc = record_write(m);
	if (rc < 0) {
		say(why, whylen, "cannot record the move in %s: %s", m->rec, strerror(-rc));
		goto out_targets;
	}
	vcfs_debug("moving %u disk%s of %s to %s (%s)", m->n, m->n == 1 ? "" : "s", m->c.name,
		  m->tdir, m->live ? "live" : "offline");
	rc = m->live ? move_live(m, max_bandwidth, why, whylen) : move_offline(m, why, whylen);
	if (rc == 0 || access(m->rec, F_OK) == 0) {
		/* a failed config save keeps the record for --cancel (save_config) */
		bool keep = false;
		unsigned i;

		for (i = 0; i < m->n; i++)
			keep |= m->d[i].pivoted && rc < 0 &&
				strcmp(m->c.disks[m->d[i].idx].file, m->d[i].newrel) != 0;
		if (!keep)
			record_drop(m);
	}
	if (rc == 0)
		*data = result_json(m);
	goto out_tdir;

out_targets:
	{
		unsigned i;

		for (i = 0; i < m->n; i++)
			if (m->d[i].created)
				unlink(m->d[i].dst);
	}
out_tdir:
	if (m->tdir_created && rc < 0)
		rmdir(m->tdir);
out_lock:
	close(lockfd);
out_cfg:
	vcvm_cfg_free(&m->c);
out_free:
	free(m);
	return rc;
}

/* ---- cancel, and the cleanup after a mover that died ---- */

/* Load move.json's disks into m (the mover's view). */
static int record_load(struct mv *m, json_t *rec)
{
	json_t *arr = json_object_get(rec, "disks"), *j;
	size_t k;

	m->live = json_is_true(json_object_get(rec, "live"));
	snprintf(m->tdir, sizeof(m->tdir), "%s", json_string_value(json_object_get(rec, "to")) ?: "");
	m->tdir_created = json_is_true(json_object_get(rec, "created_dir"));
	json_array_foreach(arr, k, j) {
		struct mv_disk *d;

		if (m->n >= VCVM_MAX_DISKS)
			break;
		d = &m->d[m->n];
		memset(d, 0, sizeof(*d));
		d->idx = (unsigned)json_integer_value(json_object_get(j, "index"));
		if (d->idx >= m->c.ndisks)
			continue;
#define REC_STR(field, key) \
		snprintf(d->field, sizeof(d->field), "%s", json_string_value(json_object_get(j, key)) ?: "")
		REC_STR(src, "source");
		REC_STR(dst, "target");
		REC_STR(newrel, "file");
		REC_STR(job, "job");
		REC_STR(tnode, "node");
		REC_STR(tfile, "file_node");
		REC_STR(oldnode, "old_node");
#undef REC_STR
		d->created = true;
		d->added_file = d->added_fmt = m->live;
		d->st = MV_RUNNING;
		m->n++;
	}
	return 0;
}

/*
 * The mover is gone: decide per disk from what QEMU and vm.json say (see the
 * crash windows at the top).  Run with the run lock held.
 */
static int repair(struct mv *m, json_t **data, char *why, size_t whylen)
{
	struct vcvm_qmp *q = NULL;
	json_t *kept = json_array(), *removed = json_array();
	unsigned i, npiv = 0;
	int rc = 0;

	if (m->live && vcvm_vm_qmp(m->e, m->dir, &q) < 0)
		q = NULL;		/* QEMU is gone: nothing runs on either file */
	for (i = 0; i < m->n; i++) {
		struct mv_disk *d = &m->d[i];
		char node[64];

		if (strcmp(m->c.disks[d->idx].file, d->newrel) == 0)
			d->pivoted = true;	/* vm.json already names the target */
		else if (q && device_node(q, &m->c, d->idx, node, sizeof(node)) == 0 &&
			 strcmp(node, d->tnode) == 0)
			d->pivoted = true;
		npiv += d->pivoted;
		if (!q)
			d->st = MV_CANCELLED;
	}
	if (npiv) {
		rc = save_config(m, why, whylen);
		if (rc < 0) {
			vcvm_qmp_close(q);
			json_decref(kept);
			json_decref(removed);
			return rc;
		}
	}
	for (i = 0; i < m->n; i++) {
		if (m->d[i].pivoted) {
			drop_old(m, q, &m->d[i]);
			json_array_append_new(kept, json_string(m->d[i].dst));
		} else {
			json_array_append_new(removed, json_string(m->d[i].dst));
		}
	}
	undo_live(m, q);
	if (m->tdir_created)
		rmdir(m->tdir);
	vcvm_qmp_close(q);
	record_drop(m);
	*data = json_pack("{s:s, s:s, s:o, s:o}", "name", m->c.name, "done",
			  npiv ? "finished the switched disks" : "cancelled",
			  "kept", kept, "removed", removed);
	return 0;
}

int vcvm_move_cancel(const struct vcvm_env *e, const char *dir, json_t **data,
		     char *why, size_t whylen)
{
	uint64_t deadline;
	struct mv *m;
	json_t *rec;
	int rc, pid, fd, lockfd;
	bool finished = false;

	*data = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	rc = vcvm_cfg_load(dir, &m->c, why, whylen);
	if (rc < 0)
		goto out_free;
	paths_of(e, dir, m);
	rec = json_load_file(m->rec, 0, NULL);
	if (!rec) {
		rc = -ENOENT;
		say(why, whylen, "no storage move of %s is in progress on host %s", m->c.name, e->host);
		goto out_cfg;
	}
	if (mover_alive(rec, &pid)) {
		/* ask it, then wait for it to clean up after itself */
		fd = open(m->cancel, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0) {
			rc = -errno;
			say(why, whylen, "%s: %s", m->cancel, strerror(errno));
			goto out_rec;
		}
		close(fd);
		deadline = mono_ms() + MOVER_WAIT_MS;
		while (access(m->rec, F_OK) == 0 && mover_alive(rec, &pid) && mono_ms() < deadline)
			sleep_ms(100);
		if (access(m->rec, F_OK) == 0 && mover_alive(rec, &pid)) {
			rc = -ETIMEDOUT;
			say(why, whylen, "the mover (pid %d) did not stop within %d s", pid,
			    MOVER_WAIT_MS / 1000);
			goto out_rec;
		}
		unlink(m->cancel);
		if (access(m->rec, F_OK) != 0) {
			struct vcvm_cfg now;
			json_t *j;
			size_t k;

			/* too late? then vm.json names the targets */
			if (vcvm_cfg_load(dir, &now, NULL, 0) == 0) {
				json_array_foreach(json_object_get(rec, "disks"), k, j) {
					int idx = (int)json_integer_value(json_object_get(j, "index"));
					const char *f = json_string_value(json_object_get(j, "file"));

					if (idx < (int)now.ndisks && f && strcmp(now.disks[idx].file, f) == 0)
						finished = true;
				}
				vcvm_cfg_free(&now);
			}
			*data = json_pack("{s:s, s:s}", "name", m->c.name, "done", finished ?
					  "too late: the move had switched over and completed" :
					  "cancelled");
			rc = 0;
			goto out_rec;
		}
		/* it died on the way: clean up below */
	}
	lockfd = vcvm_run_lock(m->rundir, why, whylen);
	if (lockfd < 0) {
		rc = lockfd;
		goto out_rec;
	}
	json_decref(rec);
	rec = json_load_file(m->rec, 0, NULL);
	if (!rec) {
		*data = json_pack("{s:s, s:s}", "name", m->c.name, "done", "nothing left to do");
		rc = 0;
	} else {
		record_load(m, rec);
		rc = repair(m, data, why, whylen);
	}
	close(lockfd);
out_rec:
	json_decref(rec);
out_cfg:
	vcvm_cfg_free(&m->c);
out_free:
	free(m);
	return rc;
}
