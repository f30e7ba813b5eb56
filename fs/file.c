/*
 * file.c - opens, the data path, truncate, fallocate, SEEK_DATA/SEEK_HOLE.
 *
 * An open of a regular file takes the inode's lock record (waiting at most
 * one I/O timeout, enough for another host's op to finish, not for an open):
 * O_WRONLY/O_RDWR EXCL (VCFS_OPEN_MULTIWRITER: MW), O_RDONLY RO.  Opens on
 * this host share one lock (counted in struct vcfs_inode); a write open next
 * to read opens upgrades RO -> EXCL by release + acquire, and the last writer
 * downgrades back.  Another host's conflicting holder gives -EBUSY with the
 * holder named in the log, like ESXi's "failed to lock the file".
 *
 * Data never goes through the journal:
 *  - a block that is mapped and written is read/written in place (map_rw
 *    shared), after vcfs_hb_write_ok;
 *  - a hole or an unwritten block is filled in an op (map_rw exclusive):
 *    allocate, zero what the write does not cover, write the data, and only
 *    then hand the map change to the journal's group, marked as mapping
 *    data (the record that commits it is preceded by a flush): a crash
 *    leaves the old map, never a map pointing at stale data.  Under an
 *    EXCL open the op does not checkpoint (fs_int.h "Deferred data-path
 *    ops"): one op per large block costs no flush and no journal write of
 *    its own; fsync commits the group and checkpoints, release checkpoints
 *    before the record goes (open_unlock);
 *  - size and mtime changes are kept in the cached body (ip->dirty) and
 *    committed at fsync, release and with any allocation;
 *  - multi-writer (MW) opens: VCFS_OPEN_MULTIWRITER, or any open of a file
 *    with VCFS_IF_MULTIWRITER (user.vcfs.multiwriter, readers too) -- see
 *    "Multi-writer files" in docs/architecture.md.  They write in place only
 *    inside the size.  A map change (hole filled, unwritten -> written, size
 *    grown) runs as an op under the record's map-change claim (lock.h:
 *    vcfs_lock_claim; op.c OPL_CLAIM): the op reads the body from disk
 *    (through our journal), allocates, zeroes, writes data, flushes,
 *    commits, writes home, and only then unclaims (obj_version + 1), so
 *    another host sees a map change whole or not at all.  A fill (write_alloc:
 *    op.mw_keep) whose claim found no other holder -- a storage-move target,
 *    a new disk only this host has open -- keeps the claim after the op and
 *    defers its change to the group like an EXCL open's fill; the next
 *    fills reuse the claim with no lock I/O; it is given back (checkpoint,
 *    unclaim) by the lock cache's clock within T/4, at release, and before
 *    any other map change of the file, and a host that joins meanwhile
 *    waits for it before loading the body.  While other hosts hold the file (the claim counts
 *    them), maps only grow: truncate down, punch, zero-range, the
 *    small -> large conversion and removing the last name fail with -EBUSY.
 *    A holder whose cached map shows a hole, an unwritten block or an offset
 *    past its size re-reads the body (mw_refresh: no valid claim, body, then
 *    the record's seq unchanged) once before answering; an MW open waits for
 *    claims that began before it joined (claim_wait) before loading the body;
 *    the body under the lock decides the mode if the flag changed since the
 *    lockless read that chose it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <linux/falloc.h>
#include "fs_int.h"
#include "../common/log.h"

static uint64_t max_size(const struct vcfs_fs *fs)
{
	return (uint64_t)fs->sb.lblock_size * bmap_limit();
}

/* Zero bytes [off, off + len) of the datastore (inside one block we own). */
static int zero_bytes(struct vcfs_fs *fs, uint64_t off, uint64_t len)
{
	uint32_t lsec = vcfs_disk_info(fs->d)->lsec;
	uint64_t a = (off + lsec - 1) / lsec * lsec, b = (off + len) / lsec * lsec;
	uint8_t *z;
	int rc = vcfs_hb_write_ok(fs->hb);

	if (rc || !len)
		return rc;
	if (a >= b) {	/* inside one sector */
		z = calloc(1, len);
		if (!z)
			return -ENOMEM;
		rc = vcfs_disk_pwrite(fs->d, off, z, len, 0);
		free(z);
		return rc;
	}
	rc = vcfs_disk_write_zeroes(fs->d, a, b - a, 0);
	if (!rc && a > off) {
		z = calloc(1, a - off);
		rc = z ? vcfs_disk_pwrite(fs->d, off, z, a - off, 0) : -ENOMEM;
		free(z);
	}
	if (!rc && off + len > b) {
		z = calloc(1, off + len - b);
		rc = z ? vcfs_disk_pwrite(fs->d, b, z, off + len - b, 0) : -ENOMEM;
		free(z);
	}
	return rc;
}

/* ---- opens ---- */

static void warn_locked(struct vcfs_fs *fs, uint64_t ino, enum vcfs_lock_mode want,
			const struct vcfs_lock_info *busy)
{
	char name[80] = "?";

	if (busy->nholders)
		vcfs_hb_slot_name(fs->hb, busy->holders[0].slot, name, sizeof(name));
	vcfs_warn("failed to lock the file: inode %llu is open (%s lock) on host '%s' "
		  "(slot %u); wanted %s", (unsigned long long)ino,
		  vcfs_lock_mode_name(busy->mode), name,
		  busy->nholders ? busy->holders[0].slot : 0, vcfs_lock_mode_name(want));
}

/* Take the lock record of ip in mode for opens (op_mu held); wait: for a
 * holder, up to one I/O timeout (else only try: the open waited already). */
static int open_lock(struct vcfs_fs *fs, struct vcfs_inode *ip, enum vcfs_lock_mode mode,
		     int wait)
{
	uint64_t blk = vcfs_inode_lock_blk(&fs->sb, ip->ino);
	struct vcfs_lock_info busy;
	int rc;

	if (!fs->hb)
		return 0;	/* read-only mount: no locks */
	lcache_drop(fs, blk);	/* our own ops may still cache it */
	/* A holder that is another host's op goes within milliseconds; one
	 * that is an open stays: wait one I/O timeout, not the op bound. */
	rc = vcfs_lock_acquire(fs->hb, blk, mode, wait ? VCFS_LOCK_WAIT : 0, fs->sb.io_timeout_ms,
			       NULL, &busy);
	if (rc == -EBUSY)
		warn_locked(fs, ip->ino, mode, &busy);
	if (!rc && mode == VCFS_LOCK_MW) {
		/* a map change that started before we joined did not count us
		 * among the holders: let it finish before we load the body */
		rc = vcfs_lock_claim_wait(fs->hb, blk, 1, fs->lock_wait_ms, NULL);
		if (rc) {
			vcfs_warn("inode %llu: another host's map change did not end: %s",
				  (unsigned long long)ip->ino, vcfs_strerror(rc));
			vcfs_lock_release(fs->hb, blk, 0);
		}
	}
	return rc;
}

/* bump: the record was held EXCL or MW (changes may have been made under it). */
static int open_unlock(struct vcfs_fs *fs, struct vcfs_inode *ip, int bump)
{
	int rc;

	if (!fs->hb || ip->lock_lost)
		return 0;
	if (bump || ip->claim_kept) {
		/* map changes of our writes may be in the journal only, under
		 * this record (or a claim we kept): home first */
		rc = lcache_before_release(fs, ip);
		if (rc)
			return rc;	/* fenced: the record stays ours */
	}
	rc = vcfs_lock_release(fs->hb, vcfs_inode_lock_blk(&fs->sb, ip->ino), bump);
	return rc == -ESTALE ? 0 : rc;
}

/* Read ip's body from disk (we hold its lock). */
static int load_body(struct vcfs_fs *fs, struct vcfs_inode *ip)
{
	uint64_t blk = vcfs_inode_blk(&fs->sb, ip->ino);
	int rc = 0;

	/* a body our journal holds newer than home (a create's) first */
	if (!fs->j || !vcfs_journal_lookup(fs->j, blk, ip->body)) {
		rc = vcfs_disk_read(fs->d, blk * VCFS_BLK, ip->body, VCFS_BLK);
		if (!rc && fs->read_only)
			ro_overlay(fs, blk, ip->body);	/* a dead holder's journal */
	}
	if (!rc) {
		rc = vcfs_mhdr_check(ip->body, VCFS_T_INODE, blk, fs->sb.volgen);
		if (rc == 1 || (!rc && !le32_get(ip->body->mode)))
			rc = -ENOENT;
		else if (rc < 0)
			rc = VCFS_CORRUPT("inode", blk);
	}
	ind_cache_clear(ip);
	return rc;
}

/* The mode an open of f takes given the body's multi-writer flag. */
static enum vcfs_lock_mode mw_mode(const struct vcfs_file *f, const struct vcfs_inode_disk *di)
{
	return (le32_get(di->flags) & VCFS_IF_MULTIWRITER) ? VCFS_LOCK_MW : f->base_mode;
}

/* Open regular file ino (op_mu held); wait as open_lock's. */
static int open_regular(struct vcfs_fs *fs, struct vcfs_file *f, int fresh_excl, int wait)
{
	enum vcfs_lock_mode want = f->mode, old;
	struct vcfs_inode *ip = itab_get(fs, f->ino, 1);
	int rc = 0, tries = 0;

	if (!ip)
		return -ENOMEM;
	if (fresh_excl) {
		/* the create op left us its EXCL lock */
		inode_set_lost(ip, 0);
		rc = load_body(fs, ip);
		inode_set_held(ip, VCFS_LOCK_EXCL);
		goto got;
	}
	if (ip->held == VCFS_LOCK_FREE || ip->lock_lost) {
		if (ip->lock_lost && ip->held != VCFS_LOCK_FREE) {
			rc = -EIO;	/* opens still use a lost lock */
			goto fail;
		}
relock:
		rc = open_lock(fs, ip, want, wait);
		if (rc)
			goto fail;
		rc = load_body(fs, ip);
		if (rc) {
			open_unlock(fs, ip, 0);
			goto fail;
		}
		if (mw_mode(f, ip->body) != want && tries++ < 3) {
			/* the multi-writer flag changed since the lockless read
			 * that chose the mode: the body under the lock decides */
			open_unlock(fs, ip, 0);
			want = mw_mode(f, ip->body);
			goto relock;
		}
		inode_set_held(ip, want);
		f->mode = want;
		if (want == VCFS_LOCK_MW && f->can_write)
			f->vflags |= VCFS_OPEN_MULTIWRITER;
		else if (f->base_mode != VCFS_LOCK_MW)
			f->vflags &= ~VCFS_OPEN_MULTIWRITER;
		goto got;
	}
	if (ip->held == want || ip->held == VCFS_LOCK_EXCL || want == VCFS_LOCK_RO)
		goto got;	/* shared with the opens already here */
	/* upgrade RO -> EXCL/MW, or MW <-> EXCL */
	old = ip->held;
	inode_set_held(ip, VCFS_LOCK_FREE);
	rc = open_unlock(fs, ip, old != VCFS_LOCK_RO);
	if (rc) {
		inode_set_held(ip, old);
		goto fail;
	}
	rc = open_lock(fs, ip, want, wait);
	if (rc) {
		int r2 = open_lock(fs, ip, old, 1);
		if (r2) {
			vcfs_warn("inode %llu: lost its %s lock while upgrading it",
				  (unsigned long long)ip->ino, vcfs_lock_mode_name(old));
			inode_set_lost(ip, 1);
			fs_inval(fs, ip->ino);
		}
		inode_set_held(ip, old);
		goto fail;
	}
	rc = load_body(fs, ip);
	inode_set_held(ip, want);
got:
	if (rc)
		goto fail;
	if (want == VCFS_LOCK_MW)
		ip->nmw++;
	else if (f->can_write)
		ip->nwrite++;
	else
		ip->nread++;
	f->ip = ip;
	f->locked = 1;
	return 0;
fail:
	if (fresh_excl) {
		inode_set_held(ip, VCFS_LOCK_FREE);
		open_unlock(fs, ip, 1);
	}
	itab_put(fs, ip);
	return rc;
}

static int file_new(struct vcfs_fs *fs, uint64_t ino, int oflags, unsigned vflags,
		    struct vcfs_file **out)
{
	struct vcfs_file *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->fs = fs;
	f->ino = ino;
	f->oflags = oflags;
	f->vflags = vflags;
	f->can_read = (oflags & O_ACCMODE) != O_WRONLY;
	f->can_write = (oflags & O_ACCMODE) != O_RDONLY;
	f->mode = !f->can_write ? VCFS_LOCK_RO :
		  (vflags & VCFS_OPEN_MULTIWRITER) ? VCFS_LOCK_MW : VCFS_LOCK_EXCL;
	f->base_mode = f->mode;
	pthread_mutex_lock(&fs->itab_mu);
	f->fnext = fs->files;
	if (f->fnext)
		f->fnext->fpprev = &f->fnext;
	f->fpprev = &fs->files;
	fs->files = f;
	pthread_mutex_unlock(&fs->itab_mu);
	*out = f;
	return 0;
}

/* Unlink a handle from fs->files and free it (NULL is fine). */
static void file_free(struct vcfs_file *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->fs->itab_mu);
	if (f->fnext)
		f->fnext->fpprev = f->fpprev;
	*f->fpprev = f->fnext;
	pthread_mutex_unlock(&f->fs->itab_mu);
	free(f);
}

/*
 * gen: the generation the caller resolved ino to (0: any).  An inode number
 * is reused once its inode is freed, and the caller's lookup (or the kernel's
 * cached entry) is not atomic with the open: between them another host may
 * unlink the name and create another file on the same number (create bumps
 * the generation).  The open must then fail (-ESTALE: the kernel looks the
 * name up again), never give the other file: checked on the lockless read,
 * and again on the body read under the open's lock, before any O_TRUNC.
 */
static int do_open(struct vcfs_fs *fs, uint64_t ino, uint64_t gen, int oflags,
		   unsigned vflags, int fresh_excl, struct vcfs_file **out)
{
	struct vcfs_inode_disk *di = NULL;
	struct vcfs_file *f = NULL;
	int rc = fs_check(fs, (oflags & O_ACCMODE) != O_RDONLY), wait = 1;

	if (rc)
		return rc;
	rc = file_new(fs, ino, oflags, vflags, &f);
	if (rc)
		return rc;
	if (!fresh_excl) {
		di = vcfs_disk_buf_alloc(VCFS_BLK);
		rc = di ? inode_read_lockless(fs, ino, di) : -ENOMEM;
		if (!rc && gen && le64_get(di->generation) != gen)
			rc = -ESTALE;
		/* freed since the lookup (another host renamed over the name
		 * or removed it): -ESTALE too, so the kernel looks the name
		 * up again instead of failing the open with ENOENT */
		if (rc == -ENOENT && gen)
			rc = -ESTALE;
		if (rc)
			goto err;
		if (S_ISDIR(le32_get(di->mode))) {
			if (f->can_write) {
				rc = -EISDIR;
				goto err;
			}
			f->is_dir = 1;
			goto done;	/* no lock: readdir reads lockless */
		}
		if (!S_ISREG(le32_get(di->mode)))
			goto done;	/* FIFOs, devices, sockets, symlinks: no data here */
		if (le32_get(di->flags) & VCFS_IF_MULTIWRITER) {
			/* every open of a multi-writer file shares with MW */
			f->mode = VCFS_LOCK_MW;
			if (f->can_write)
				f->vflags |= VCFS_OPEN_MULTIWRITER;
		}
	}
	if (!fresh_excl && fs->hb) {
		/* a holder on another host (its open, or an op): wait for it
		 * here, without op_mu (fs_int.h, "Waiting without op_mu"); the
		 * acquire under op_mu then only tries if it is still there */
		rc = vcfs_lock_acquire(fs->hb, vcfs_inode_lock_blk(&fs->sb, f->ino), f->mode,
				       VCFS_LOCK_WAIT | VCFS_LOCK_PEEK, fs->sb.io_timeout_ms,
				       NULL, NULL);
		if (rc && rc != -EBUSY)
			goto err;
		wait = !rc;
	}
	pthread_mutex_lock(&fs->op_mu);
	rc = open_regular(fs, f, fresh_excl, wait);
	pthread_mutex_unlock(&fs->op_mu);
	if (rc)
		goto err;
	if (gen) {
		uint64_t g;

		pthread_mutex_lock(&f->ip->mu);
		g = le64_get(f->ip->body->generation);
		pthread_mutex_unlock(&f->ip->mu);
		if (g != gen) {
			/* reused while we waited for the lock */
			vcfs_file_release(f);
			f = NULL;
			rc = -ESTALE;
			goto err;
		}
	}
	if ((oflags & O_TRUNC) && f->can_write) {
		rc = file_set_size(fs, ino, 0);
		if (rc) {
			vcfs_file_release(f);
			f = NULL;
			goto err;
		}
	}
done:
	free(di);
	*out = f;
	return 0;
err:
	free(di);
	file_free(f);
	return rc;
}

int vcfs_fs_open(struct vcfs_fs *fs, uint64_t ino, int oflags, unsigned vflags,
		 struct vcfs_file **out)
{
	return vcfs_fs_open_gen(fs, ino, 0, oflags, vflags, out);
}

int vcfs_fs_open_gen(struct vcfs_fs *fs, uint64_t ino, uint64_t gen, int oflags,
		     unsigned vflags, struct vcfs_file **out)
{
	if (!ino_valid(fs, ino))
		return -ENOENT;
	return do_open(fs, ino, gen, oflags, vflags, 0, out);
}

int vcfs_fs_create(struct vcfs_fs *fs, uint64_t dir, const char *name, uint32_t mode,
		   uint32_t uid, uint32_t gid, int oflags, struct vcfs_attr *attr,
		   struct vcfs_file **out)
{
	struct create_args a = { .dir = dir, .name = name, .mode = S_IFREG | (mode & 07777),
				 .uid = uid, .gid = gid };
	uint64_t ino;
	int rc = fs_check(fs, 1);

	if (rc)
		return rc;
	a.keep_lock = (oflags & O_ACCMODE) != O_RDONLY;
	rc = fs_create(fs, &a, &ino, attr);
	if (rc == -EEXIST && !(oflags & O_EXCL)) {
		/* lost a race with another creator: open what is there */
		struct vcfs_attr at;
		rc = vcfs_fs_lookup(fs, dir, name, &at);
		if (rc)
			return rc;
		if (S_ISDIR(at.mode))
			return -EISDIR;
		rc = do_open(fs, at.ino, at.generation, oflags, 0, 0, out);
		if (!rc && attr)
			rc = vcfs_fs_getattr(fs, at.ino, attr);
		return rc;
	}
	if (rc)
		return rc;
	return do_open(fs, ino, 0, oflags & ~O_TRUNC, 0, a.keep_lock, out);
}

/* Commit ip's in-memory size/mtime (an op under the open's lock). */
static int commit_body(struct vcfs_fs *fs, struct vcfs_inode *ip)
{
	struct vcfs_inode_disk *di;
	struct vcfs_op op;
	int dirty, rc;

	pthread_mutex_lock(&ip->mu);
	dirty = ip->dirty;
	pthread_mutex_unlock(&ip->mu);
	if (!dirty)
		return 0;
	rc = op_begin(fs, &op);
	if (rc)
		return rc;
	rc = op_lock_inodes(&op, &ip->ino, 1);
	if (!rc)
		rc = op_inode(&op, ip->ino, &di);
	if (!rc)
		op_dirty(&op, di);
	/* a size that grew over in-place writes covers their data: that data
	 * first, or a crash could show a size over bytes never written */
	op.data_written = 1;
	return op_end(&op, rc);
}

int vcfs_file_shared(const struct vcfs_file *f)
{
	return f && f->locked && f->mode == VCFS_LOCK_MW;
}

int vcfs_file_release(struct vcfs_file *f)
{
	struct vcfs_fs *fs = f->fs;
	struct vcfs_inode *ip = f->ip;
	int rc = 0, r2, reclaim = 0;
	uint32_t oslot = 0;

	if (!f->locked)
		goto out;
	if (f->can_write && ip->held != VCFS_LOCK_RO && !ip->lock_lost && !fs->read_only &&
	    !vcfs_hb_fenced(fs->hb))
		rc = commit_body(fs, ip);
	pthread_mutex_lock(&fs->op_mu);
	if (f->mode == VCFS_LOCK_MW && ip->nmw)
		ip->nmw--;
	else if (f->can_write && ip->nwrite)
		ip->nwrite--;
	else if (ip->nread)
		ip->nread--;
	if (!ip->nread && !ip->nwrite && !ip->nmw) {
		enum vcfs_lock_mode h = ip->held;

		inode_set_held(ip, VCFS_LOCK_FREE);
		r2 = h != VCFS_LOCK_FREE ? open_unlock(fs, ip, h != VCFS_LOCK_RO) : 0;
		if (r2 && !rc && r2 != -VCFS_EFENCED)
			rc = r2;
		if (!le32_get(ip->body->nlink) && (le32_get(ip->body->flags) & VCFS_IF_ORPHAN) &&
		    !ip->lock_lost) {
			reclaim = 1;
			oslot = le32_get(ip->body->orphan_slot);
		}
		inode_set_lost(ip, 0);
	} else if (!ip->nwrite && !ip->nmw && ip->held != VCFS_LOCK_RO && !ip->lock_lost) {
		/* the last writer went: readers keep an RO lock */
		r2 = open_unlock(fs, ip, 1);
		if (!r2)
			r2 = fs->hb ? vcfs_lock_acquire(fs->hb, vcfs_inode_lock_blk(&fs->sb, ip->ino),
						       VCFS_LOCK_RO, VCFS_LOCK_WAIT, fs->lock_wait_ms,
						       NULL, NULL) : 0;
		if (r2) {
			vcfs_warn("inode %llu: could not keep a read lock for its readers: %s",
				  (unsigned long long)ip->ino, vcfs_strerror(r2));
			inode_set_lost(ip, 1);
			fs_inval(fs, ip->ino);
		} else {
			inode_set_held(ip, VCFS_LOCK_RO);
		}
	}
	pthread_mutex_unlock(&fs->op_mu);
	itab_put(fs, ip);
	if (reclaim && !fs->read_only && oslot < fs->sb.max_hosts)
		inode_reclaim(fs, f->ino, oslot);
out:
	file_free(f);
	return rc;
}

int inode_close_all(struct vcfs_fs *fs, struct vcfs_inode *ip)
{
	int rc = 0;

	if (ip->held != VCFS_LOCK_FREE && !ip->lock_lost && ip->held != VCFS_LOCK_RO &&
	    fs->hb && !vcfs_hb_fenced(fs->hb))
		rc = commit_body(fs, ip);
	pthread_mutex_lock(&fs->op_mu);
	{
		enum vcfs_lock_mode h = ip->held;

		inode_set_held(ip, VCFS_LOCK_FREE);
		if (h != VCFS_LOCK_FREE)
			open_unlock(fs, ip, h != VCFS_LOCK_RO);
	}
	ip->nread = ip->nwrite = ip->nmw = 0;
	pthread_mutex_unlock(&fs->op_mu);
	/* the orphan, if any, is freed at the next mount of this slot or by
	 * whoever recovers it */
	pthread_mutex_lock(&fs->itab_mu);
	ip->refs = 1;
	pthread_mutex_unlock(&fs->itab_mu);
	itab_put(fs, ip);
	return rc;
}

/* ---- the data path ---- */

/* Other hosts may change ip's map (we share it MW): see the file comment. */
static int mw_shared(const struct vcfs_fs *fs, const struct vcfs_inode *ip)
{
	return fs->hb && ip->held == VCFS_LOCK_MW;
}

/*
 * Re-read the body of an inode shared MW from disk (map_rw not held): once
 * no other host's map change is in flight (its claim), with the lock record
 * unchanged around the read, so the body is one that a finished op wrote
 * home together with every block it points at.
 */
static int mw_refresh(struct vcfs_fs *fs, struct vcfs_inode *ip)
{
	uint64_t lblk = vcfs_inode_lock_blk(&fs->sb, ip->ino);
	uint64_t blk = vcfs_inode_blk(&fs->sb, ip->ino), seq;
	struct vcfs_inode_disk *di = vcfs_disk_buf_alloc(VCFS_BLK);
	struct vcfs_lock_info b;
	int rc, tries = 0;

	if (!di)
		return -ENOMEM;
	for (;;) {
		rc = vcfs_lock_claim_wait(fs->hb, lblk, 0, fs->lock_wait_ms, &seq);
		if (rc == -ESTALE) {
			vcfs_warn("inode %llu: its multi-writer lock is gone",
				  (unsigned long long)ip->ino);
			inode_set_lost(ip, 1);
			fs_inval(fs, ip->ino);
			rc = -EIO;
		}
		if (!rc && fs->j && vcfs_journal_lookup(fs->j, blk, di))
			break;	/* our own change under a claim we keep, not
				 * home yet: newer than home, and nobody else
				 * changes it while we keep the claim */
		if (!rc)
			rc = vcfs_disk_read(fs->d, blk * VCFS_BLK, di, VCFS_BLK);
		if (rc)
			break;
		rc = vcfs_mhdr_check(di, VCFS_T_INODE, blk, fs->sb.volgen);
		if (rc > 0)
			rc = VCFS_CORRUPT("inode", blk);
		if (!rc)
			rc = vcfs_lock_read(fs->d, &fs->sb, NULL, lblk, &b);
		if (!rc && b.seq == seq)
			break;
		if (++tries > 50) {
			if (!rc)
				rc = -EAGAIN;
			vcfs_err("inode %llu: no stable copy of its body after %d reads: %s",
				 (unsigned long long)ip->ino, tries, vcfs_strerror(rc));
			break;
		}
	}
	if (!rc) {
		inode_map_wrlock(ip);
		pthread_mutex_lock(&ip->mu);
		memcpy(ip->body, di, VCFS_BLK);
		pthread_mutex_unlock(&ip->mu);
		ind_cache_clear(ip);
		pthread_rwlock_unlock(&ip->map_rw);
	}
	free(di);
	return rc;
}

/* Live hosts besides us holding f's inode (a refusal's pre-check). */
static int mw_others(struct vcfs_file *f)
{
	struct vcfs_fs *fs = f->fs;
	struct vcfs_lock_info li;
	uint32_t me = fs->slot;
	int n = 0, rc;

	if (!mw_shared(fs, f->ip))
		return 0;
	rc = vcfs_lock_read(fs->d, &fs->sb, fs->hb, vcfs_inode_lock_blk(&fs->sb, f->ino), &li);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < li.nholders; i++)
		n += !li.holders[i].stale && li.holders[i].slot != me;
	return n;
}

/* The refusal of a change that would free or shrink what others cached. */
static int mw_refuse(struct vcfs_fs *fs, uint64_t ino, const char *what, uint32_t n)
{
	vcfs_warn("inode %llu: %s refused: the multi-writer file is open on %u other "
		  "host(s), whose cached block maps must stay valid; close it there first",
		  (unsigned long long)ino, what, n);
	(void)fs;
	return -EBUSY;
}

static int file_usable(struct vcfs_file *f, int write)
{
	int rc = fs_check(f->fs, write);

	if (rc)
		return rc;
	if (write ? !f->can_write : !f->can_read)
		return -EBADF;
	if (!f->locked)
		return f->is_dir ? -EISDIR : -EINVAL;	/* not a regular file */
	if (f->ip->lock_lost)
		return -EIO;
	return 0;
}

ssize_t vcfs_file_read(struct vcfs_file *f, uint64_t off, void *buf, size_t len)
{
	struct vcfs_fs *fs = f->fs;
	struct vcfs_inode *ip = f->ip;
	uint8_t *p = buf;
	uint64_t size;
	size_t done = 0, want = len;
	int rc = file_usable(f, 0), refreshed = 0;

	if (rc)
		return rc;
again:
	pthread_rwlock_rdlock(&ip->map_rw);
	pthread_mutex_lock(&ip->mu);
	size = le64_get(ip->body->size);
	pthread_mutex_unlock(&ip->mu);
	len = want;
	if (off + done >= size || !len) {
		if (len && !refreshed && mw_shared(fs, ip))
			goto refresh;	/* another host may have grown it */
		goto out;
	}
	if (len > size - off)
		len = (size_t)(size - off);
	while (done < len) {
		uint32_t bs = bmap_bsize(fs, ip->body);
		uint64_t lb = (off + done) / bs, bp;
		uint32_t boff = (uint32_t)((off + done) % bs);
		size_t n = bs - boff < len - done ? bs - boff : len - done;
		struct vcfs_op op;

		op_begin_ro(fs, &op);
		rc = bmap_get(&op, ip, ip->body, lb, &bp);
		op_end_ro(&op);
		if ((rc || !bp || (bp & VCFS_BP_UNWRITTEN)) && !refreshed && mw_shared(fs, ip))
			goto refresh;	/* maybe filled by another host since */
		if (rc)
			break;
		if (!bp || (bp & VCFS_BP_UNWRITTEN))
			memset(p + done, 0, n);
		else if ((rc = vcfs_disk_pread(fs->d, VCFS_BP_ADDR(bp) * VCFS_BLK + boff,
					       p + done, n)))
			break;
		done += n;
	}
out:
	pthread_rwlock_unlock(&ip->map_rw);
	return done ? (ssize_t)done : rc;
refresh:
	pthread_rwlock_unlock(&ip->map_rw);
	refreshed = 1;
	rc = mw_refresh(fs, ip);
	if (rc)
		return done ? (ssize_t)done : rc;
	goto again;
}

/* Mark size/mtime after a write of [off, end) (ip->mu taken here). */
static void note_write(struct vcfs_inode *ip, uint64_t end, int mw)
{
	pthread_mutex_lock(&ip->mu);
	if (end > le64_get(ip->body->size)) {
		ip->body->size = le64_mk(end);
		ip->dirty = 1;
	}
	if (!mw) {
		ts_now(&ip->body->mtime);
		ip->body->ctime = ip->body->mtime;
		ip->dirty = 1;
	}
	pthread_mutex_unlock(&ip->mu);
}

/* Write one block's part into a new or unwritten block at addr. */
static int fill_block(struct vcfs_fs *fs, uint64_t addr, uint32_t bs, uint32_t boff,
		      const uint8_t *data, size_t n)
{
	int rc = vcfs_hb_write_ok(fs->hb);

	if (!rc && n < bs)
		rc = vcfs_disk_write_zeroes(fs->d, addr * VCFS_BLK, bs, 0);
	if (!rc)
		rc = vcfs_disk_pwrite(fs->d, addr * VCFS_BLK + boff, data, n, 0);
	return rc;
}

/* Slow path: as much of [off, off + len) as one op holds, allocating. */
static ssize_t write_alloc(struct vcfs_file *f, uint64_t off, const uint8_t *buf, size_t len)
{
	struct vcfs_fs *fs = f->fs;
	struct vcfs_inode_disk *di;
	struct vcfs_op op;
	size_t done = 0;
	int rc;

	rc = op_begin(fs, &op);
	if (rc)
		return rc;
	op.mw_keep = 1;		/* only grows the map: see the file comment */
	rc = op_lock_inodes(&op, &f->ino, 1);
	if (!rc)
		rc = op_inode(&op, f->ino, &di);
	if (rc)
		goto out;
	if (!(le32_get(di->flags) & VCFS_IF_LARGE) && off + len > fs->sb.lblock_size) {
		uint32_t n = op_mw_others(&op, f->ino);
		rc = n ? mw_refuse(fs, f->ino, "growing past one large block (which moves "
				   "its blocks)", n) : bmap_to_large(&op, di);
		if (rc)
			goto out;
	}
	while (done < len && (!done || op_room(&op) > 8)) {	/* one block at least */
		uint32_t bs = bmap_bsize(fs, di);
		uint64_t lb = (off + done) / bs, bp, addr;
		uint32_t boff = (uint32_t)((off + done) % bs);
		size_t n = bs - boff < len - done ? bs - boff : len - done;

		rc = bmap_get(&op, NULL, di, lb, &bp);
		if (rc)
			break;
		addr = VCFS_BP_ADDR(bp);
		if (bp && !(bp & VCFS_BP_UNWRITTEN)) {
			rc = vcfs_hb_write_ok(fs->hb);
			if (!rc)
				rc = vcfs_disk_pwrite(fs->d, addr * VCFS_BLK + boff, buf + done, n, 0);
		} else {
			int fresh = !bp;
			if (fresh) {
				rc = bmap_alloc_data(&op, di, &addr);
				if (rc)
					break;
			}
			rc = fill_block(fs, addr, bs, boff, buf + done, n);
			op.data_written = 1;
			if (!rc)
				rc = bmap_set(&op, di, lb, addr);
			if (fresh && !rc) {
				di->blocks = le64_mk(le64_get(di->blocks) + bs / 512);
			} else if (fresh) {
				/* The op still commits what was written before (done
				 * > 0): give the unmapped block back, or it stays
				 * allocated and counted (fsck IN05, BT01).  Seen by
				 * tests/sim.sh: a data write timed out mid-op. */
				int r2 = (le32_get(di->flags) & VCFS_IF_LARGE) ?
					 free_large(&op, addr) : free_small(&op, addr);
				if (r2)
					vcfs_warn("write to inode %llu: giving back block %llu "
						  "after a failed write: %s",
						  (unsigned long long)f->ino,
						  (unsigned long long)addr, vcfs_strerror(r2));
			}
		}
		if (rc)
			break;
		done += n;
	}
	if (done) {
		op.data_written = 1;
		if (off + done > le64_get(di->size))
			di->size = le64_mk(off + done);
		ts_now(&di->mtime);
		di->ctime = di->mtime;
		op_dirty(&op, di);
		rc = 0;
	}
out:
	rc = op_end(&op, rc);
	return rc ? rc : (ssize_t)done;
}

static int zero_partial(struct vcfs_file *f, uint64_t off, uint64_t len);

ssize_t vcfs_file_write(struct vcfs_file *f, uint64_t off, const void *buf, size_t len)
{
	struct vcfs_fs *fs = f->fs;
	struct vcfs_inode *ip = f->ip;
	const uint8_t *p = buf;
	int mw = !!(f->vflags & VCFS_OPEN_MULTIWRITER);
	size_t done = 0;
	int rc = file_usable(f, 1);

	if (rc)
		return rc;
	if (f->oflags & O_APPEND) {
		pthread_mutex_lock(&ip->mu);
		off = le64_get(ip->body->size);
		pthread_mutex_unlock(&ip->mu);
	}
	if (off + len > max_size(fs) || off + len < off)
		return -EFBIG;
	if (!mw) {
		/* The last block's bytes past EOF may hold a write that never
		 * became part of the file (its writer crashed before the size
		 * was committed): a write that starts past EOF zeroes them first,
		 * or the gap would show that data instead of zeros.  Seen by
		 * tests/sim.sh (a new holder extending a crashed holder's file). */
		uint64_t size;
		uint32_t bs;
		pthread_mutex_lock(&ip->mu);
		size = le64_get(ip->body->size);
		bs = bmap_bsize(fs, ip->body);
		pthread_mutex_unlock(&ip->mu);
		if (off > size && size % bs) {
			uint64_t bend = (size / bs + 1) * bs;
			rc = zero_partial(f, size, (off < bend ? off : bend) - size);
			if (rc)
				return rc;
		}
	}
	while (done < len) {
		uint64_t bp = 0, lb;
		uint32_t bs, boff;
		size_t n;
		struct vcfs_op op;
		int fast = 0;

		pthread_rwlock_rdlock(&ip->map_rw);
		bs = bmap_bsize(fs, ip->body);
		lb = (off + done) / bs;
		boff = (uint32_t)((off + done) % bs);
		n = bs - boff < len - done ? bs - boff : len - done;
		if ((le32_get(ip->body->flags) & VCFS_IF_LARGE) ||
		    off + len <= fs->sb.lblock_size) {
			op_begin_ro(fs, &op);
			rc = bmap_get(&op, ip, ip->body, lb, &bp);
			op_end_ro(&op);
			fast = !rc && bp && !(bp & VCFS_BP_UNWRITTEN);
		}
		if (fast && mw) {
			/* multi-writer: other hosts write too, so only this
			 * host's EXCL (an op) may grow the size */
			pthread_mutex_lock(&ip->mu);
			fast = off + done + n <= le64_get(ip->body->size);
			pthread_mutex_unlock(&ip->mu);
		}
		if (fast) {
			rc = vcfs_hb_write_ok(fs->hb);
			if (!rc)
				rc = vcfs_disk_pwrite(fs->d, VCFS_BP_ADDR(bp) * VCFS_BLK + boff,
						      p + done, n, 0);
			if (!rc)
				note_write(ip, off + done + n, mw);
		}
		pthread_rwlock_unlock(&ip->map_rw);
		if (rc)
			break;
		if (fast) {
			done += n;
			continue;
		}
		ssize_t w = write_alloc(f, off + done, p + done, len - done);
		if (w < 0) {
			rc = (int)w;
			break;
		}
		done += (size_t)w;
	}
	return done ? (ssize_t)done : rc;
}

/*
 * Asynchronous data I/O (fs.h vcfs_file_submit).  Under map_rw shared the
 * request is checked like the in-place case of vcfs_file_read/write and the
 * inode pinned (ip->pins); map_rw is then dropped -- a lock held from one
 * thread to another's completion is no lock -- and the pin keeps the block:
 * every map change takes map_rw through inode_map_wrlock, which waits for
 * the pins to go.  A write's size/mtime note (note_write) is made at its
 * completion, before the unpin, as the synchronous write makes it before
 * dropping map_rw.
 */
static void unpin(struct vcfs_inode *ip)
{
	pthread_mutex_lock(&ip->mu);
	if (--ip->pins == 0)
		pthread_cond_broadcast(&ip->pins_cv);
	pthread_mutex_unlock(&ip->mu);
}

static void aio_done(struct vcfs_disk_aio *da, int rc)
{
	struct vcfs_file_aio *a = (struct vcfs_file_aio *)((char *)da -
							    offsetof(struct vcfs_file_aio, da));
	struct vcfs_inode *ip = a->f->ip;

	if (!rc && a->write)
		note_write(ip, a->off + a->len, 0);
	unpin(ip);
	a->done(a, rc ? rc : (ssize_t)a->len);
}

int vcfs_file_submit(struct vcfs_file *f, struct vcfs_file_aio *a)
{
	struct vcfs_fs *fs = f->fs;
	struct vcfs_inode *ip = f->ip;
	uint32_t lsec = vcfs_disk_info(fs->d)->lsec, bs, boff;
	uint64_t size, bp = 0;
	struct vcfs_op op;
	int rc = file_usable(f, a->write);

	if (rc)
		return rc;
	if ((f->vflags & VCFS_OPEN_MULTIWRITER) || (a->write && (f->oflags & O_APPEND)) ||
	    !a->len || ((a->off | a->len) % lsec))
		return -EOPNOTSUPP;
	pthread_rwlock_rdlock(&ip->map_rw);
	rc = -EOPNOTSUPP;
	if (mw_shared(fs, ip))
		goto out;
	pthread_mutex_lock(&ip->mu);
	size = le64_get(ip->body->size);
	bs = bmap_bsize(fs, ip->body);
	pthread_mutex_unlock(&ip->mu);
	boff = (uint32_t)(a->off % bs);
	if (a->off + a->len > size || a->off + a->len < a->off || boff + a->len > bs)
		goto out;	/* past EOF (a write may grow it), or two blocks */
	if (!(le32_get(ip->body->flags) & VCFS_IF_LARGE) && a->off + a->len > fs->sb.lblock_size)
		goto out;
	op_begin_ro(fs, &op);
	rc = bmap_get(&op, ip, ip->body, a->off / bs, &bp);
	op_end_ro(&op);
	if (rc || !bp || (bp & VCFS_BP_UNWRITTEN)) {
		rc = -EOPNOTSUPP;	/* a hole to read as zeros, or to fill */
		goto out;
	}
	if (a->write && (rc = vcfs_hb_write_ok(fs->hb)))
		goto out;
	a->f = f;
	a->da = (struct vcfs_disk_aio){
		.op = a->write ? VCFS_AIO_WRITE : VCFS_AIO_READ,
		.off = VCFS_BP_ADDR(bp) * VCFS_BLK + boff,
		.buf = a->buf,
		.len = a->len,
		.done = aio_done,
	};
	pthread_mutex_lock(&ip->mu);
	ip->pins++;
	pthread_mutex_unlock(&ip->mu);
	pthread_rwlock_unlock(&ip->map_rw);
	/* once submitted, a, f and ip may be gone (done() answered, the file
	 * was closed): nothing here touches them after a success */
	rc = vcfs_disk_submit(fs->d, &a->da);
	if (rc)
		unpin(ip);
	return rc;
out:
	pthread_rwlock_unlock(&ip->map_rw);
	return rc;
}

int vcfs_file_fsync(struct vcfs_file *f, int datasync)
{
	struct vcfs_fs *fs = f->fs;
	int rc = fs_check(fs, 0);

	(void)datasync;	/* size changes must be durable for data to be reachable */
	if (rc || fs->read_only)
		return rc;
	if (f->locked && !f->ip->lock_lost && f->ip->held != VCFS_LOCK_RO) {
		rc = commit_body(fs, f->ip);
		/* the map changes of our fills wait in the journal's group:
		 * one record (after a data flush) makes them durable, the
		 * checkpoint puts them home, where other hosts read the body
		 * (what fsync always promised: size committed at fsync) */
		if (!rc && fs->j)
			rc = vcfs_journal_checkpoint(fs->j);
		if (rc)
			return rc;
	}
	rc = vcfs_hb_write_ok(fs->hb);
	return rc ? rc : vcfs_disk_flush(fs->d);
}

/* ---- size changes ---- */

int file_set_size(struct vcfs_fs *fs, uint64_t ino, uint64_t size)
{
	struct vcfs_inode_disk *di;
	struct vcfs_op op;
	int rc, more;

	if (size > max_size(fs))
		return -EFBIG;
	more = 0;
	do {
		rc = op_begin(fs, &op);
		if (rc)
			return rc;
		rc = op_lock_inodes(&op, &ino, 1);
		if (!rc)
			rc = op_inode(&op, ino, &di);
		if (rc)
			goto end;
		if (!le32_get(di->mode)) {
			rc = -ENOENT;
			goto end;
		}
		if (!S_ISREG(le32_get(di->mode))) {
			rc = S_ISDIR(le32_get(di->mode)) ? -EISDIR : -EINVAL;
			goto end;
		}
		uint32_t others = op_mw_others(&op, ino);
		if (size > fs->sb.lblock_size && !(le32_get(di->flags) & VCFS_IF_LARGE)) {
			rc = others ? mw_refuse(fs, ino, "growing past one large block", others) :
			     bmap_to_large(&op, di);
			if (rc)
				goto end;
		}
		uint32_t bs = bmap_bsize(fs, di);
		uint64_t old = le64_get(di->size);
		if (size < old && others) {
			rc = mw_refuse(fs, ino, "truncating", others);
			goto end;
		}
		if (size < old || more) {
			/* zero the tail of the last block, free the blocks past it
			 * (more: the previous op stopped with the journal full) */
			more = 0;
			if (size % bs) {
				uint64_t bp;
				rc = bmap_get(&op, NULL, di, size / bs, &bp);
				if (!rc && bp && !(bp & VCFS_BP_UNWRITTEN)) {
					rc = zero_bytes(fs, VCFS_BP_ADDR(bp) * VCFS_BLK + size % bs,
							bs - size % bs);
					op.data_written = 1;
				}
				if (rc)
					goto end;
			}
			rc = bmap_free(&op, di, (size + bs - 1) / bs, UINT64_MAX);
			if (rc == 1) {
				more = 1;
				rc = 0;
			}
			if (rc)
				goto end;
		}
		if (!size && !more && !le64_get(di->blocks) &&
		    (le32_get(di->flags) & VCFS_IF_LARGE)) {
			/* empty again: start over with small blocks */
			di->flags = le32_mk(le32_get(di->flags) & ~VCFS_IF_LARGE);
			op_dirty(&op, di);
		}
		if (size != old) {
			di->size = le64_mk(size);
			ts_now(&di->mtime);
			di->ctime = di->mtime;
			op_dirty(&op, di);
		}
end:
		rc = op_end(&op, rc);
	} while (!rc && more);
	return rc;
}

/* ---- fallocate ---- */

/*
 * Allocate unwritten blocks for the holes of logical [lb0, lb1); written
 * blocks in [z0, z1) become unwritten (ZERO_RANGE).  Converts a small-block
 * file first when conv_end passes one large block.  Several ops.
 */
static int falloc_blocks(struct vcfs_file *f, uint64_t lb0, uint64_t lb1, uint64_t z0,
			 uint64_t z1, uint64_t new_size, uint64_t conv_end)
{
	struct vcfs_fs *fs = f->fs;
	struct vcfs_inode_disk *di;
	struct vcfs_op op;
	uint64_t lb = lb0;
	int rc;

	do {
		rc = op_begin(fs, &op);
		if (rc)
			return rc;
		rc = op_lock_inodes(&op, &f->ino, 1);
		if (!rc)
			rc = op_inode(&op, f->ino, &di);
		if (rc)
			goto end;
		uint32_t others = op_mw_others(&op, f->ino);
		if (others && z0 < z1) {
			rc = mw_refuse(fs, f->ino, "zeroing a range", others);
			goto end;
		}
		if (conv_end > fs->sb.lblock_size && !(le32_get(di->flags) & VCFS_IF_LARGE)) {
			/* logical numbers change with the block size: the caller
			 * computed them for large blocks */
			rc = others ? mw_refuse(fs, f->ino, "growing past one large block",
						others) : bmap_to_large(&op, di);
			if (rc)
				goto end;
		}
		uint32_t bs = bmap_bsize(fs, di);
		uint64_t first = lb;
		for (; lb < lb1 && (lb == first || op_room(&op) > 8); lb++) {
			uint64_t bp, addr;
			rc = bmap_get(&op, NULL, di, lb, &bp);
			if (rc)
				goto end;
			if (bp && (lb < z0 || lb >= z1 || (bp & VCFS_BP_UNWRITTEN)))
				continue;
			if (bp) {
				rc = bmap_set(&op, di, lb, bp | VCFS_BP_UNWRITTEN);
				if (rc)
					goto end;
				continue;
			}
			rc = bmap_alloc_data(&op, di, &addr);
			if (!rc)
				rc = bmap_set(&op, di, lb, addr | VCFS_BP_UNWRITTEN);
			if (rc)
				goto end;
			di->blocks = le64_mk(le64_get(di->blocks) + bs / 512);
		}
		if (lb >= lb1 && new_size > le64_get(di->size)) {
			di->size = le64_mk(new_size);
			ts_now(&di->mtime);
		}
		ts_now(&di->ctime);
		op_dirty(&op, di);
end:
		rc = op_end(&op, rc);
	} while (!rc && lb < lb1);
	return rc;
}

/* Zero [off, off + len) inside block lb if it is written (partial blocks). */
static int zero_partial(struct vcfs_file *f, uint64_t off, uint64_t len)
{
	struct vcfs_fs *fs = f->fs;
	struct vcfs_inode *ip = f->ip;
	struct vcfs_op op;
	uint32_t bs;
	uint64_t bp;
	int rc;

	if (!len)
		return 0;
	pthread_rwlock_rdlock(&ip->map_rw);
	bs = bmap_bsize(fs, ip->body);
	op_begin_ro(fs, &op);
	rc = bmap_get(&op, ip, ip->body, off / bs, &bp);
	op_end_ro(&op);
	if (!rc && bp && !(bp & VCFS_BP_UNWRITTEN))
		rc = zero_bytes(fs, VCFS_BP_ADDR(bp) * VCFS_BLK + off % bs, len);
	pthread_rwlock_unlock(&ip->map_rw);
	return rc;
}

/* Free whole blocks [lb0, lb1) (several ops). */
static int punch_blocks(struct vcfs_file *f, uint64_t lb0, uint64_t lb1)
{
	struct vcfs_fs *fs = f->fs;
	struct vcfs_inode_disk *di;
	struct vcfs_op op;
	int rc, more;

	do {
		more = 0;
		rc = op_begin(fs, &op);
		if (rc)
			return rc;
		rc = op_lock_inodes(&op, &f->ino, 1);
		if (!rc && op_mw_others(&op, f->ino))
			rc = mw_refuse(fs, f->ino, "punching a hole", op_mw_others(&op, f->ino));
		if (!rc)
			rc = op_inode(&op, f->ino, &di);
		if (!rc)
			rc = bmap_free(&op, di, lb0, lb1);
		if (rc == 1) {
			more = 1;
			rc = 0;
		}
		if (!rc) {
			ts_now(&di->mtime);
			di->ctime = di->mtime;
			op_dirty(&op, di);
		}
		rc = op_end(&op, rc);
	} while (!rc && more);
	return rc;
}

int vcfs_file_fallocate(struct vcfs_file *f, int mode, uint64_t off, uint64_t len)
{
	struct vcfs_fs *fs = f->fs;
	uint64_t end = off + len, size, bs;
	int keep = !!(mode & FALLOC_FL_KEEP_SIZE), large, rc = file_usable(f, 1);

	if (rc)
		return rc;
	if (!len || end < off)
		return -EINVAL;
	if (end > max_size(fs))
		return -EFBIG;
	pthread_mutex_lock(&f->ip->mu);
	size = le64_get(f->ip->body->size);
	large = !!(le32_get(f->ip->body->flags) & VCFS_IF_LARGE);
	pthread_mutex_unlock(&f->ip->mu);
	/* the block size the map will have once the range is in it */
	bs = (large || end > fs->sb.lblock_size) ? fs->sb.lblock_size : VCFS_BLK;

	if ((mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) && (rc = mw_others(f))) {
		/* checked before zeroing the partial ends in place; the ops
		 * check again under the claim */
		if (rc > 0)
			rc = mw_refuse(fs, f->ino, (mode & FALLOC_FL_PUNCH_HOLE) ?
				       "punching a hole" : "zeroing a range", (uint32_t)rc);
		return rc;
	}
	switch (mode & ~FALLOC_FL_KEEP_SIZE) {
	case 0:
		return falloc_blocks(f, off / bs, (end + bs - 1) / bs, 0, 0, keep ? 0 : end, end);
	case FALLOC_FL_PUNCH_HOLE: {
		if (!keep)
			return -EOPNOTSUPP;
		bs = large ? fs->sb.lblock_size : VCFS_BLK;
		uint64_t lb0 = (off + bs - 1) / bs, lb1 = end / bs;
		if (lb0 > lb1) {	/* inside one block */
			return zero_partial(f, off, len);
		}
		rc = zero_partial(f, off, lb0 * bs - off);
		if (!rc)
			rc = zero_partial(f, lb1 * bs, end - lb1 * bs);
		if (!rc && lb1 > lb0)
			rc = punch_blocks(f, lb0, lb1);
		return rc;
	}
	case FALLOC_FL_ZERO_RANGE: {
		if (end > fs->sb.lblock_size && !large) {
			/* convert first so the partial ends are in large blocks */
			rc = falloc_blocks(f, 0, 0, 0, 0, 0, end);
			if (rc)
				return rc;
		}
		uint64_t lb0 = (off + bs - 1) / bs, lb1 = end / bs;
		if (lb0 > lb1) {
			rc = zero_partial(f, off, len);
		} else {
			rc = zero_partial(f, off, lb0 * bs - off);
			if (!rc)
				rc = zero_partial(f, lb1 * bs, end - lb1 * bs);
		}
		/* whole blocks become unwritten; partial ends that are holes
		 * get an unwritten block too (ZERO_RANGE allocates) */
		if (!rc)
			rc = falloc_blocks(f, off / bs, (end + bs - 1) / bs, lb0, lb1,
					   keep ? 0 : end, end);
		(void)size;
		return rc;
	}
	}
	return -EOPNOTSUPP;
}

int vcfs_file_lseek(struct vcfs_file *f, uint64_t off, int whence, uint64_t *out)
{
	struct vcfs_fs *fs = f->fs;
	struct vcfs_inode *ip = f->ip;
	struct vcfs_op op;
	uint64_t size, found, bs;
	int rc = file_usable(f, 0);

	if (rc == -EBADF)
		rc = 0;		/* seeking needs no read access */
	if (rc)
		return rc;
	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (mw_shared(fs, ip) && (rc = mw_refresh(fs, ip)))
		return rc;	/* the map as other hosts left it */
	pthread_rwlock_rdlock(&ip->map_rw);
	pthread_mutex_lock(&ip->mu);
	size = le64_get(ip->body->size);
	pthread_mutex_unlock(&ip->mu);
	if (off >= size) {
		rc = -ENXIO;
		goto out;
	}
	bs = bmap_bsize(fs, ip->body);
	op_begin_ro(fs, &op);
	rc = bmap_next(&op, ip->body, off / bs, whence == SEEK_DATA, &found);
	op_end_ro(&op);
	if (rc)
		goto out;
	if (found == UINT64_MAX || found * bs >= size) {
		if (whence == SEEK_DATA)
			rc = -ENXIO;
		else
			*out = size;
	} else {
		*out = found * bs > off ? found * bs : off;
	}
out:
	pthread_rwlock_unlock(&ip->map_rw);
	return rc;
}
