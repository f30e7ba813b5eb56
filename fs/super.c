/*
 * super.c - mount and unmount, recovery of dead hosts, the open-inode table
 * and small helpers shared by the fs core.
 *
 * Mount (read-write):
 *	disk open -> volume header (backup if block 0 is damaged) -> checks
 *	-> vcfs_hb_join (claims a slot; recover = fs_recover) -> replay our
 *	slot's journal -> vcfs_journal_open -> free our slot's orphans.
 * A read-only mount opens the disk read-only and joins nothing: it never
 * writes, and reads lock records only to see that what it reads is stable.
 *
 * Recovery (fs_recover, called by lock/ when a host is dead): replay the dead
 * slot's journal, then free the inodes listed in its orphan directory with
 * our own journal -- by the worker thread, after the callback has returned
 * (see worker_main).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include "fs_int.h"
#include "mkfs.h"
#include "../common/clock.h"
#include "../common/log.h"

int fs_check(struct vcfs_fs *fs, int write)
{
	if (fs->hb && vcfs_hb_fenced(fs->hb))
		return -VCFS_EFENCED;
	if (write && fs->read_only)
		return -EROFS;
	return 0;
}

int ino_valid(const struct vcfs_fs *fs, uint64_t ino)
{
	return ino == VCFS_ROOT_INO ||
	       (ino >= VCFS_FIRST_FREE_INO(fs->sb.max_hosts) && ino < fs->sb.ninodes);
}

void ts_now(struct vcfs_ts_disk *t)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	t->sec = le64_mk((uint64_t)now.tv_sec);
	t->nsec = le32_mk((uint32_t)now.tv_nsec);
	t->pad = le32_mk(0);
}

static struct timespec ts_get(struct vcfs_ts_disk t)
{
	struct timespec r = { (time_t)le64_get(t.sec), (long)le32_get(t.nsec) };

	return r;
}

void inode_to_attr(uint64_t ino, const struct vcfs_inode_disk *di, struct vcfs_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->size = le64_get(di->size);
	a->blocks = le64_get(di->blocks);
	a->mode = le32_get(di->mode);
	a->nlink = le32_get(di->nlink);
	a->uid = le32_get(di->uid);
	a->gid = le32_get(di->gid);
	a->rdev = le64_get(di->rdev);
	a->atime = ts_get(di->atime);
	a->mtime = ts_get(di->mtime);
	a->ctime = ts_get(di->ctime);
	a->crtime = ts_get(di->crtime);
	a->generation = le64_get(di->generation);
}

uint8_t dt_of_mode(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return DT_REG;
	case S_IFDIR: return DT_DIR;
	case S_IFLNK: return DT_LNK;
	case S_IFIFO: return DT_FIFO;
	case S_IFSOCK: return DT_SOCK;
	case S_IFCHR: return DT_CHR;
	case S_IFBLK: return DT_BLK;
	}
	return DT_UNKNOWN;
}

void fs_inval(struct vcfs_fs *fs, uint64_t ino)
{
	if (fs->inval)
		fs->inval(fs->inval_arg, ino);
}

void vcfs_fs_set_inval(struct vcfs_fs *fs, vcfs_inval_fn fn, void *arg)
{
	fs->inval = fn;
	fs->inval_arg = arg;
}

uint64_t vcfs_fs_root(const struct vcfs_fs *fs)
{
	return fs->sb.root_ino;
}

/* ---- the open-inode table ---- */

struct vcfs_inode *itab_find(struct vcfs_fs *fs, uint64_t ino)
{
	struct vcfs_inode *ip;

	pthread_mutex_lock(&fs->itab_mu);
	for (ip = fs->itab[ino % VCFS_ITAB_SIZE]; ip; ip = ip->hnext)
		if (ip->ino == ino)
			break;
	pthread_mutex_unlock(&fs->itab_mu);
	return ip;
}

struct vcfs_inode *itab_get(struct vcfs_fs *fs, uint64_t ino, int create)
{
	struct vcfs_inode *ip;

	pthread_mutex_lock(&fs->itab_mu);
	for (ip = fs->itab[ino % VCFS_ITAB_SIZE]; ip; ip = ip->hnext)
		if (ip->ino == ino) {
			ip->refs++;
			goto out;
		}
	if (!create)
		goto out;
	ip = calloc(1, sizeof(*ip));
	if (!ip)
		goto out;
	ip->body = vcfs_disk_buf_alloc(VCFS_BLK);
	if (!ip->body) {
		free(ip);
		ip = NULL;
		goto out;
	}
	ip->ino = ino;
	ip->refs = 1;
	pthread_rwlock_init(&ip->map_rw, NULL);
	pthread_mutex_init(&ip->mu, NULL);
	pthread_cond_init(&ip->pins_cv, NULL);
	ip->hnext = fs->itab[ino % VCFS_ITAB_SIZE];
	fs->itab[ino % VCFS_ITAB_SIZE] = ip;
out:
	pthread_mutex_unlock(&fs->itab_mu);
	return ip;
}

void ind_cache_clear(struct vcfs_inode *ip)
{
	pthread_mutex_lock(&ip->mu);
	for (int i = 0; i < VCFS_IND_CACHE; i++) {
		free(ip->ic[i].buf);
		ip->ic[i].buf = NULL;
		ip->ic[i].blk = 0;
	}
	pthread_mutex_unlock(&ip->mu);
}

void inode_map_wrlock(struct vcfs_inode *ip)
{
	pthread_rwlock_wrlock(&ip->map_rw);
	pthread_mutex_lock(&ip->mu);
	while (ip->pins)
		pthread_cond_wait(&ip->pins_cv, &ip->mu);
	pthread_mutex_unlock(&ip->mu);
}

void itab_put(struct vcfs_fs *fs, struct vcfs_inode *ip)
{
	struct vcfs_inode **pp;

	pthread_mutex_lock(&fs->itab_mu);
	if (--ip->refs) {
		pthread_mutex_unlock(&fs->itab_mu);
		return;
	}
	for (pp = &fs->itab[ip->ino % VCFS_ITAB_SIZE]; *pp; pp = &(*pp)->hnext)
		if (*pp == ip) {
			*pp = ip->hnext;
			break;
		}
	pthread_mutex_unlock(&fs->itab_mu);
	ind_cache_clear(ip);
	pthread_rwlock_destroy(&ip->map_rw);
	pthread_mutex_destroy(&ip->mu);
	pthread_cond_destroy(&ip->pins_cv);
	free(ip->body);
	free(ip);
}

/* ---- lockless inode reads ---- */

struct rd_ino { uint64_t ino; struct vcfs_inode_disk *out; };

static int rd_ino_fn(struct vcfs_op *op, void *arg)
{
	struct rd_ino *r = arg;
	void *p;
	int uninit, rc;

	rc = op_read_maybe(op, vcfs_inode_blk(&op->fs->sb, r->ino), VCFS_T_INODE, &p, &uninit);
	if (rc)
		return rc;
	if (uninit)
		return -ENOENT;
	memcpy(r->out, p, VCFS_BLK);
	return 0;
}

int inode_read_lockless(struct vcfs_fs *fs, uint64_t ino, struct vcfs_inode_disk *out)
{
	struct rd_ino r = { ino, out };
	struct vcfs_inode *ip;
	int rc;

	if (!ino_valid(fs, ino))
		return -ENOENT;
	ip = itab_get(fs, ino, 0);
	if (ip) {
		int have = 0;
		pthread_mutex_lock(&ip->mu);
		/* MW: other hosts change it under us; read what is on disk */
		if (ip->held != VCFS_LOCK_FREE && ip->held != VCFS_LOCK_MW && !ip->lock_lost) {
			memcpy(out, ip->body, VCFS_BLK);
			have = 1;
		}
		pthread_mutex_unlock(&ip->mu);
		itab_put(fs, ip);
		if (have)
			return le32_get(out->mode) ? 0 : -ENOENT;
	}
	rc = lockless_read(fs, vcfs_inode_lock_blk(&fs->sb, ino), 1, rd_ino_fn, &r);
	if (rc)
		return rc;
	if (!le32_get(out->mode))
		return -ENOENT;		/* a freed inode */
	return 0;
}

/* ---- recovery ---- */

/*
 * The worker frees the orphans of recovered slots.  It runs outside the
 * recover callback on purpose: during the callback the dead host's locks
 * still stand (its slot is RECOVERING), so its orphans cannot be locked yet;
 * inode_reclaim's lock waits cover the moment until lock/ has bumped the
 * dead slot's generation.
 */
static void *worker_main(void *arg)
{
	struct vcfs_fs *fs = arg;

	pthread_mutex_lock(&fs->misc_mu);
	for (;;) {
		while (!fs->worker_stop && !fs->norphan_slots) {
			vcfs_idle(1);
			pthread_cond_wait(&fs->work_cv, &fs->misc_mu);
			vcfs_idle(0);
		}
		if (fs->worker_stop)
			break;
		uint32_t slot = fs->orphan_slots[--fs->norphan_slots];
		pthread_mutex_unlock(&fs->misc_mu);
		if (!fs_check(fs, 1))
			orphans_reclaim(fs, slot);
		pthread_mutex_lock(&fs->misc_mu);
	}
	pthread_mutex_unlock(&fs->misc_mu);
	return NULL;
}

/*
 * This host fenced itself: every lock it held may be another host's by now,
 * so nothing the front end cached under them may be served any more (a
 * read-only open's page cache would go on answering without asking us).
 * Called from the renewal thread; the inode numbers are collected first so
 * the hook runs without itab_mu.
 */
static void fs_on_fence(void *arg, int why)
{
	struct vcfs_fs *fs = arg;
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;

	(void)why;
	if (!fs->inval)
		return;
	pthread_mutex_lock(&fs->itab_mu);
	for (int i = 0; i < VCFS_ITAB_SIZE; i++)
		for (struct vcfs_inode *ip = fs->itab[i]; ip; ip = ip->hnext) {
			if (n == cap) {
				uint64_t *nv = realloc(v, (cap ? cap * 2 : 64) * sizeof(*v));
				if (!nv)
					break;
				v = nv;
				cap = cap ? cap * 2 : 64;
			}
			v[n++] = ip->ino;
		}
	pthread_mutex_unlock(&fs->itab_mu);
	for (size_t i = 0; i < n; i++)
		fs_inval(fs, v[i]);
	free(v);
}

static int fs_recover(void *arg, struct vcfs_hb *hb, uint32_t slot)
{
	struct vcfs_fs *fs = arg;
	unsigned applied = 0;
	uint32_t *n;
	int rc;

	rc = vcfs_journal_replay(fs->d, &fs->sb, slot, hb, &applied);
	if (rc) {
		vcfs_err("recovering host slot %u: journal replay failed: %s", slot,
			 vcfs_strerror(rc));
		return rc;
	}
	vcfs_info("recovered host slot %u: %u journaled block(s) written home", slot, applied);
	pthread_mutex_lock(&fs->misc_mu);
	n = realloc(fs->orphan_slots, (fs->norphan_slots + 1) * sizeof(*n));
	if (n) {
		fs->orphan_slots = n;
		n[fs->norphan_slots++] = slot;
		pthread_cond_signal(&fs->work_cv);
	} else {
		vcfs_warn("slot %u: no memory to queue its orphans; fsck.vcfs frees them", slot);
	}
	pthread_mutex_unlock(&fs->misc_mu);
	return 0;
}

/* ---- mount / unmount ---- */

static int open_disk(const char *uri, int ro, uint32_t tmo, struct vcfs_disk **d)
{
	struct vcfs_disk_opts dopt = { .flags = ro ? VCFS_DISK_RDONLY : 0, .io_timeout_ms = tmo };
	int rc = vcfs_disk_open(uri, &dopt, d);

	if (rc)
		vcfs_err("cannot open datastore %s: %s", uri, vcfs_strerror(rc));
	return rc;
}

static void vc_free(struct vcfs_fs *fs)
{
	for (uint32_t i = 0; fs->vc && i < VCFS_VC_SIZE; i++)
		free(fs->vc[i].buf);
	free(fs->vc);
	fs->vc = NULL;
	pthread_mutex_destroy(&fs->vc_mu);
}

static int read_header(struct vcfs_disk *d, const char *what, struct vcfs_sb *sb)
{
	int used_backup = 0, rc = vcfs_read_super(d, sb, &used_backup);

	if (rc == -VCFS_ENOTVCFS)
		vcfs_err("%s is not a vcfs datastore (no vcfs signature in block 0); "
			 "check the URI or format it with mkfs.vcfs", what);
	else if (rc == -VCFS_EFEATURE)
		vcfs_err("%s uses an on-disk format or features this vcfs does not "
			 "know; use a newer vcfs", what);
	else if (rc)
		vcfs_err("%s: no usable volume header (block 0 and its backup): %s; "
			 "run fsck.vcfs", what, vcfs_strerror(rc));
	return rc;
}

/*
 * Mount the datastore open as d (ownership passes to the fs: unmount closes
 * it, and so does a failed mount).  d must bound every request by the I/O
 * timeout in the volume header or less (vcfs_fs_mount reopens to ensure it).
 */
int vcfs_fs_mount_disk(struct vcfs_disk *d, const struct vcfs_mount_opts *o,
		       struct vcfs_fs **out)
{
	struct vcfs_mount_opts dflt = { 0 };
	struct vcfs_hb_opts ho = { 0 };
	struct vcfs_fs *fs;
	const char *uri = vcfs_disk_info(d)->desc;	/* never holds a password */
	int rc;

	if (!o)
		o = &dflt;
	fs = calloc(1, sizeof(*fs));
	if (!fs) {
		vcfs_disk_close(d);
		return -ENOMEM;
	}
	pthread_mutex_init(&fs->op_mu, NULL);
	pthread_mutex_init(&fs->itab_mu, NULL);
	pthread_mutex_init(&fs->misc_mu, NULL);
	pthread_cond_init(&fs->work_cv, NULL);
	pthread_mutex_init(&fs->vc_mu, NULL);
	fs->vc = calloc(VCFS_VC_SIZE, sizeof(*fs->vc));	/* none: no cache */
	fs->read_only = !!o->read_only;
	fs->d = d;

	rc = read_header(fs->d, uri, &fs->sb);
	if (rc)
		goto err_disk;
	if ((fs->sb.feat_incompat & VCFS_FEAT_INCOMPAT_RESIZE_INPROG) && !o->grow) {
		vcfs_err("%s: a grow of the datastore to %llu MiB was interrupted: run "
			 "`vcfs grow %s` to finish it", uri,
			 (unsigned long long)(fs->sb.grow_target * VCFS_BLK >> 20), uri);
		rc = -VCFS_EFEATURE;
		goto err_disk;
	}
	if ((fs->sb.feat_ro_compat & ~VCFS_FEAT_RO_COMPAT_SUPP) && !fs->read_only) {
		vcfs_err("%s uses features this vcfs can only read (0x%llx): mount it "
			 "read-only", uri, (unsigned long long)fs->sb.feat_ro_compat);
		rc = -EROFS;
		goto err_disk;
	}
	if (!fs->read_only && (vcfs_disk_info(d)->caps & VCFS_DISK_CAP_RDONLY)) {
		vcfs_err("%s is open read-only: mount it read-only", uri);
		rc = -EROFS;
		goto err_disk;
	}
	if (o->io_timeout_ms && o->io_timeout_ms > fs->sb.io_timeout_ms) {
		vcfs_err("I/O timeout %u ms is longer than the datastore's %u ms: every "
			 "host must bound a request by the value in the volume header",
			 o->io_timeout_ms, fs->sb.io_timeout_ms);
		rc = -EINVAL;
		goto err_disk;
	}
	fs->ncl = fs->sb.ninode_clusters + fs->sb.nsmall_clusters + fs->sb.nlarge_clusters;
	fs->lock_wait_ms = 10 * fs->sb.io_timeout_ms;
	if (fs->read_only) {
		fs->slot = VCFS_NO_SLOT;
		rc = ro_init(fs);
		if (rc)
			goto err_disk;
		goto done;
	}
	fs->jmax = vcfs_journal_max_blocks(&fs->sb);
	if (fs->jmax < 32) {
		vcfs_err("%s: journals of %u blocks are too small for the fs core", uri,
			 fs->sb.journal_blocks);
		rc = -VCFS_ECORRUPT;
		goto err_disk;
	}
	ho.host_name = o->host_name;
	ho.recover = fs_recover;
	ho.recover_arg = fs;
	ho.on_fence = fs_on_fence;
	ho.fence_arg = fs;
	ho.want_slot = -1;
	rc = vcfs_hb_join(fs->d, &fs->sb, &ho, &fs->hb);
	if (rc) {
		vcfs_err("%s: cannot join the cluster: %s", uri, vcfs_strerror(rc));
		goto err_disk;
	}
	fs->slot = vcfs_hb_slot(fs->hb);
	rc = vcfs_journal_replay(fs->d, &fs->sb, fs->slot, fs->hb, NULL);
	if (rc) {
		vcfs_err("%s: replaying the journal of slot %u: %s", uri, fs->slot,
			 vcfs_strerror(rc));
		goto err_hb;
	}
	rc = vcfs_journal_open(fs->d, &fs->sb, fs->slot, fs->hb, &fs->j);
	if (rc) {
		vcfs_err("%s: opening the journal of slot %u: %s", uri, fs->slot,
			 vcfs_strerror(rc));
		goto err_hb;
	}
	for (int k = VCFS_CK_INODE; k <= VCFS_CK_LARGE; k++) {
		uint32_t n = k == VCFS_CK_INODE ? fs->sb.ninode_clusters :
			     k == VCFS_CK_SMALL ? fs->sb.nsmall_clusters : fs->sb.nlarge_clusters;
		fs->cursor[k] = (uint32_t)((uint64_t)fs->slot * n / fs->sb.max_hosts);
	}
	/* leftovers of an earlier life of this slot */
	orphans_reclaim(fs, fs->slot);
	rc = pthread_create(&fs->worker, NULL, worker_main, fs);
	if (rc) {
		rc = -rc;
		vcfs_journal_close(fs->j);
		goto err_hb;
	}
	fs->worker_started = 1;
	lcache_start(fs);	/* failure: ops just do not cache locks */
done:
	vcfs_info("mounted '%s' (%s)%s, host slot %d", fs->sb.label, uri,
		  fs->read_only ? " read-only" : "", fs->read_only ? -1 : (int)fs->slot);
	*out = fs;
	return 0;
err_hb:
	vcfs_hb_leave(fs->hb);
err_disk:
	vcfs_disk_close(fs->d);
	vc_free(fs);
	ro_free(fs);
	pthread_cond_destroy(&fs->work_cv);
	pthread_mutex_destroy(&fs->misc_mu);
	pthread_mutex_destroy(&fs->itab_mu);
	pthread_mutex_destroy(&fs->op_mu);
	free(fs);
	return rc;
}

int vcfs_fs_mount(const char *uri, const struct vcfs_mount_opts *o, struct vcfs_fs **out)
{
	struct vcfs_disk *d;
	struct vcfs_sb sb;
	int ro = o && o->read_only, rc;
	uint32_t want = o ? o->io_timeout_ms : 0;

	rc = open_disk(uri, ro, want, &d);
	if (rc)
		return rc;
	rc = read_header(d, uri, &sb);
	if (rc) {
		vcfs_disk_close(d);
		return rc;
	}
	if (want > sb.io_timeout_ms) {
		vcfs_err("I/O timeout %u ms is longer than the datastore's %u ms: every "
			 "host must bound a request by the value in the volume header",
			 want, sb.io_timeout_ms);
		vcfs_disk_close(d);
		return -EINVAL;
	}
	if (!want) {
		/* reopen with the request bound the lease timing assumes */
		vcfs_disk_close(d);
		rc = open_disk(uri, ro, sb.io_timeout_ms, &d);
		if (rc)
			return rc;
	}
	return vcfs_fs_mount_disk(d, o, out);
}

int vcfs_fs_unmount(struct vcfs_fs *fs)
{
	int rc = 0, r2;

	if (!fs)
		return 0;
	/* opens the caller left: commit and release their locks */
	for (;;) {
		struct vcfs_inode *ip = NULL;
		pthread_mutex_lock(&fs->itab_mu);
		for (int i = 0; i < VCFS_ITAB_SIZE && !ip; i++)
			ip = fs->itab[i];
		pthread_mutex_unlock(&fs->itab_mu);
		if (!ip)
			break;
		vcfs_warn("unmount: inode %llu is still open; closing it",
			  (unsigned long long)ip->ino);
		r2 = inode_close_all(fs, ip);
		if (r2 && !rc)
			rc = r2;
	}
	/* cached lock records: everything home, then released */
	lcache_stop(fs, 1);
	if (fs->worker_started) {
		pthread_mutex_lock(&fs->misc_mu);
		fs->worker_stop = 1;
		pthread_cond_signal(&fs->work_cv);
		pthread_mutex_unlock(&fs->misc_mu);
		pthread_join(fs->worker, NULL);
	}
	if (fs->j)
		vcfs_journal_close(fs->j);
	if (fs->hb) {
		r2 = vcfs_hb_leave(fs->hb);
		if (r2 && !rc)
			rc = r2;
	}
	vcfs_disk_close(fs->d);
	free(fs->orphan_slots);
	vc_free(fs);
	ro_free(fs);
	pthread_cond_destroy(&fs->work_cv);
	pthread_mutex_destroy(&fs->misc_mu);
	pthread_mutex_destroy(&fs->itab_mu);
	pthread_mutex_destroy(&fs->op_mu);
	free(fs);
	return rc;
}

/*
 * Tests: stop as a host that lost power would.  The host is fenced first, so
 * a thread still in an op (or the orphan worker) issues no further write;
 * the heartbeat stops without clearing the slot (vcfs_hb_abandon), no open is
 * committed, no lock released.  Memory is freed and the disk closed.  No
 * handle of fs may be used after (nor during) this call.
 */
void vcfs_fs_crash(struct vcfs_fs *fs)
{
	if (!fs)
		return;
	if (fs->hb)
		vcfs_hb_fence(fs->hb, -VCFS_ECRASHED);
	lcache_stop(fs, 0);
	if (fs->worker_started) {
		pthread_mutex_lock(&fs->misc_mu);
		fs->worker_stop = 1;
		pthread_cond_signal(&fs->work_cv);
		pthread_mutex_unlock(&fs->misc_mu);
		pthread_join(fs->worker, NULL);
	}
	if (fs->hb)
		vcfs_hb_abandon(fs->hb);
	if (fs->j)
		vcfs_journal_close(fs->j);
	/* the caller may not use the handles it still has (fs.h): free them */
	while (fs->files) {
		struct vcfs_file *f = fs->files;
		fs->files = f->fnext;
		free(f);
	}
	for (int i = 0; i < VCFS_ITAB_SIZE; i++) {
		struct vcfs_inode *ip, *next;
		for (ip = fs->itab[i]; ip; ip = next) {
			next = ip->hnext;
			ind_cache_clear(ip);
			pthread_rwlock_destroy(&ip->map_rw);
			pthread_mutex_destroy(&ip->mu);
			pthread_cond_destroy(&ip->pins_cv);
			free(ip->body);
			free(ip);
		}
	}
	vcfs_disk_close(fs->d);
	free(fs->orphan_slots);
	vc_free(fs);
	ro_free(fs);
	pthread_cond_destroy(&fs->work_cv);
	pthread_mutex_destroy(&fs->misc_mu);
	pthread_mutex_destroy(&fs->itab_mu);
	pthread_mutex_destroy(&fs->op_mu);
	free(fs);
}

int vcfs_fs_statfs(struct vcfs_fs *fs, struct vcfs_statfs *out)
{
	int rc = fs_check(fs, 0);

	return rc ? rc : fs_statfs(fs, out);
}
