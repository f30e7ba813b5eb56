/*
 * namei.c - the namespace: lookup, create, link, unlink, rmdir, rename,
 * readdir, attributes, symlinks, extended attributes, orphans.
 *
 * Every change is one op (op.c): find the objects without locks, lock them
 * in order, look again under the locks (another host may have changed the
 * directory in between: then unlock and start over), change, commit.
 *
 *	host A: lookup "f" -> 42 (no lock)       host B: rename "f" -> "g"
 *	host A: lock dir 7, inode 42             (B done, locks released)
 *	host A: dir_find "f" under the lock -> ENOENT: a real answer now
 *
 * Unlinking the last name of a regular file moves it to our slot's orphan
 * directory (VCFS_ORPHAN_INO(slot), entry named by the inode number in hex),
 * and its blocks are freed after the op by inode_reclaim() in as many
 * transactions as it takes -- at once, or at the last release if it is open.
 * A crash in between leaves the orphan for whoever recovers the slot.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <linux/fs.h>
#include "fs_int.h"
#include "../common/log.h"

#define RETRIES 8
#define NLINK_MAX 0xffff0000u

static void touch(struct vcfs_inode_disk *di, int m, int c)
{
	struct vcfs_ts_disk now;

	ts_now(&now);
	if (m)
		di->mtime = now;
	if (c)
		di->ctime = now;
}

/* Make a body free: zeroed, generation kept (it counts reuses). */
static void inode_clear(struct vcfs_inode_disk *di)
{
	uint64_t gen = le64_get(di->generation);

	memset((uint8_t *)di + sizeof(di->h), 0, sizeof(*di) - sizeof(di->h));
	di->generation = le64_mk(gen);
}

/* ---- lockless lookups ---- */

struct lk {
	uint64_t dir;
	const char *name;
	size_t len;
	struct dir_hit hit;
	uint64_t parent;
};

static int dir_body_ok(const struct vcfs_inode_disk *d)
{
	if (!le32_get(d->mode))
		return -ENOENT;
	if (!S_ISDIR(le32_get(d->mode)))
		return -ENOTDIR;
	if (!le32_get(d->nlink))
		return -ENOENT;		/* removed */
	return 0;
}

static int lookup_fn(struct vcfs_op *op, void *arg)
{
	struct lk *l = arg;
	void *p;
	int uninit, rc;

	rc = op_read_maybe(op, vcfs_inode_blk(&op->fs->sb, l->dir), VCFS_T_INODE, &p, &uninit);
	if (rc)
		return rc;
	if (uninit)
		return -ENOENT;
	rc = dir_body_ok(p);
	if (rc)
		return rc;
	l->parent = le64_get(((struct vcfs_inode_disk *)p)->parent);
	if (!l->name)
		return 0;
	return dir_find(op, p, l->name, l->len, &l->hit);
}

/* Inode named name in dir (lockless).  name NULL: *ino = dir's parent. */
static int lookup_ino(struct vcfs_fs *fs, uint64_t dir, const char *name, size_t len,
		      uint64_t *ino, uint8_t *type)
{
	struct lk l = { .dir = dir, .name = name, .len = len };
	int rc;

	if (!ino_valid(fs, dir))
		return -ENOENT;
	rc = lockless_read(fs, vcfs_inode_lock_blk(&fs->sb, dir), 0, lookup_fn, &l);
	if (rc)
		return rc;
	*ino = name ? l.hit.ino : l.parent;
	if (type)
		*type = name ? l.hit.type : DT_DIR;
	return 0;
}

int vcfs_fs_getattr(struct vcfs_fs *fs, uint64_t ino, struct vcfs_attr *out)
{
	struct vcfs_inode_disk *di = vcfs_disk_buf_alloc(VCFS_BLK);
	int rc = fs_check(fs, 0);

	if (!di)
		return -ENOMEM;
	if (!rc)
		rc = inode_read_lockless(fs, ino, di);
	if (!rc)
		inode_to_attr(ino, di, out);
	free(di);
	return rc;
}

int vcfs_fs_lookup(struct vcfs_fs *fs, uint64_t dir, const char *name, struct vcfs_attr *out)
{
	uint64_t ino;
	size_t len;
	int rc = fs_check(fs, 0);

	if (rc)
		return rc;
	if (!strcmp(name, "."))
		return vcfs_fs_getattr(fs, dir, out);
	if (!strcmp(name, "..")) {
		rc = lookup_ino(fs, dir, NULL, 0, &ino, NULL);
		return rc ? rc : vcfs_fs_getattr(fs, ino, out);
	}
	rc = name_check(name, &len);
	if (rc)
		return rc;
	rc = lookup_ino(fs, dir, name, len, &ino, NULL);
	if (rc)
		return rc;
	rc = vcfs_fs_getattr(fs, ino, out);
	return rc;
}

/* ---- creating ---- */

/* A fresh body for a newly allocated inode (locked by op). */
static int inode_new(struct vcfs_op *op, uint64_t ino, uint32_t mode, uint32_t uid,
		     uint32_t gid, struct vcfs_inode_disk **out)
{
	uint64_t blk = vcfs_inode_blk(&op->fs->sb, ino), gen = 1, seq;
	struct vcfs_inode_disk *di;
	struct vcfs_ts_disk now;
	void *p;
	int uninit = 1, rc;

	rc = op_read_maybe(op, blk, VCFS_T_INODE, &p, &uninit);
	if (rc == -VCFS_ECORRUPT) {
		vcfs_warn("inode %llu: a free inode with a damaged body; writing a new one",
			  (unsigned long long)ino);
		rc = op_new(op, blk, VCFS_T_INODE, &p);
		uninit = 1;
	}
	if (rc)
		return rc;
	di = p;
	if (!uninit)
		gen = le64_get(di->generation) + 1;
	seq = le64_get(di->h.seq);
	memset(di, 0, sizeof(*di));
	di->h.type = le16_mk(VCFS_T_INODE);
	di->h.seq = le64_mk(seq);
	di->mode = le32_mk(mode);
	di->uid = le32_mk(uid);
	di->gid = le32_mk(gid);
	di->nlink = le32_mk(S_ISDIR(mode) ? 2 : 1);
	di->generation = le64_mk(gen);
	di->orphan_slot = le32_mk(0xffffffffu);
	ts_now(&now);
	di->atime = di->mtime = di->ctime = di->crtime = now;
	op_dirty(op, di);
	*out = di;
	return 0;
}

static int check_parent(struct vcfs_op *op, uint64_t dir, struct vcfs_inode_disk **db)
{
	int rc = op_inode(op, dir, db);

	return rc ? rc : dir_body_ok(*db);
}

/* Write a long symlink target into a new small block (data, before commit). */
static int symlink_block(struct vcfs_op *op, struct vcfs_inode_disk *di, const char *target,
			 size_t len)
{
	struct vcfs_fs *fs = op->fs;
	uint8_t *buf;
	uint64_t blk;
	int rc;

	if (len >= VCFS_BLK)
		return -ENAMETOOLONG;
	rc = alloc_small(op, &blk);
	if (rc)
		return rc;
	buf = vcfs_disk_buf_alloc(VCFS_BLK);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, target, len);
	rc = vcfs_hb_write_ok(fs->hb);
	if (!rc)
		rc = vcfs_disk_write(fs->d, blk * VCFS_BLK, buf, VCFS_BLK, 0);
	op->data_written = 1;
	free(buf);
	if (rc)
		return rc;
	di->direct[0] = le64_mk(blk);
	di->blocks = le64_mk(VCFS_BLK / 512);
	return 0;
}

int fs_create(struct vcfs_fs *fs, const struct create_args *a, uint64_t *ino_out,
	      struct vcfs_attr *out)
{
	struct vcfs_inode_disk *db, *di, copy;
	struct dir_hit hit;
	struct vcfs_op op;
	uint64_t ino = 0;
	size_t len, tlen = 0;
	int rc, handed = 0;

	rc = name_check(a->name, &len);
	if (rc)
		return rc;
	if (!strcmp(a->name, ".") || !strcmp(a->name, ".."))
		return -EEXIST;
	if (a->target) {
		tlen = strlen(a->target);
		if (!tlen)
			return -ENOENT;
		if (tlen >= VCFS_BLK)
			return -ENAMETOOLONG;
	}
	rc = op_begin(fs, &op);
	if (rc)
		return rc;
	rc = op_lock_inodes(&op, &a->dir, 1);
	if (rc)
		goto out;
	rc = check_parent(&op, a->dir, &db);
	if (rc)
		goto out;
	rc = dir_find(&op, db, a->name, len, &hit);
	if (rc != -ENOENT) {
		rc = rc ? rc : -EEXIST;
		goto out;
	}
	if (S_ISDIR(a->mode) && le32_get(db->nlink) >= NLINK_MAX) {
		rc = -EMLINK;
		goto out;
	}
	rc = alloc_inode(&op, &ino);
	if (rc)
		goto out;
	rc = inode_new(&op, ino, a->mode, a->uid, a->gid, &di);
	if (rc)
		goto out;
	if (S_ISDIR(a->mode)) {
		dir_init(di, a->dir);
		db->nlink = le32_mk(le32_get(db->nlink) + 1);
	} else if (S_ISCHR(a->mode) || S_ISBLK(a->mode)) {
		di->rdev = le64_mk(a->rdev);
	} else if (S_ISLNK(a->mode)) {
		di->size = le64_mk(tlen);
		di->link_len = le32_mk((uint32_t)tlen);
		if (tlen <= VCFS_INLINE_MAX)
			memcpy(di->inline_data, a->target, tlen);
		else if ((rc = symlink_block(&op, di, a->target, tlen)))
			goto out;
	}
	rc = dir_add(&op, db, a->name, len, ino, dt_of_mode(a->mode));
	if (rc)
		goto out;
	touch(db, 1, 1);
	op_dirty(&op, db);
	memcpy(&copy, di, sizeof(copy));
	if (a->keep_lock) {
		/* the lock stays with the open (released above if the commit
		 * fails) */
		for (uint32_t i = 0; i < op.nlocks; i++)
			if (op.locks[i].ino == ino) {
				op.locks[i].how = OPL_OPEN;	/* the caller's now */
				handed = 1;
			}
	}
out:
	{
		rc = op_end(&op, rc);
		if (rc && handed)	/* the open will not happen: give the lock back */
			vcfs_lock_release(fs->hb, vcfs_inode_lock_blk(&fs->sb, ino), 0);
	}
	if (!rc) {
		*ino_out = ino;
		if (out)
			inode_to_attr(ino, &copy, out);
	}
	return rc;
}

int vcfs_fs_mknod(struct vcfs_fs *fs, uint64_t dir, const char *name, uint32_t mode,
		  uint64_t rdev, uint32_t uid, uint32_t gid, struct vcfs_attr *out)
{
	struct create_args a = { .dir = dir, .name = name, .mode = mode, .uid = uid,
				 .gid = gid, .rdev = rdev };
	uint64_t ino;

	switch (mode & S_IFMT) {
	case 0:
		a.mode |= S_IFREG;
		break;
	case S_IFREG: case S_IFIFO: case S_IFSOCK: case S_IFCHR: case S_IFBLK:
		break;
	case S_IFDIR:
		return -EPERM;	/* mkdir */
	default:
		return -EINVAL;
	}
	return fs_create(fs, &a, &ino, out);
}

int vcfs_fs_mkdir(struct vcfs_fs *fs, uint64_t dir, const char *name, uint32_t mode,
		  uint32_t uid, uint32_t gid, struct vcfs_attr *out)
{
	struct create_args a = { .dir = dir, .name = name, .mode = S_IFDIR | (mode & 07777),
				 .uid = uid, .gid = gid };
	uint64_t ino;

	return fs_create(fs, &a, &ino, out);
}

int vcfs_fs_symlink(struct vcfs_fs *fs, uint64_t dir, const char *name, const char *target,
		    uint32_t uid, uint32_t gid, struct vcfs_attr *out)
{
	struct create_args a = { .dir = dir, .name = name, .mode = S_IFLNK | 0777,
				 .uid = uid, .gid = gid, .target = target };
	uint64_t ino;

	return fs_create(fs, &a, &ino, out);
}

struct rl { uint64_t ino; char *buf; size_t size; };

static int readlink_fn(struct vcfs_op *op, void *arg)
{
	struct rl *r = arg;
	struct vcfs_inode_disk *di;
	uint32_t len;
	void *p;
	int uninit, rc;

	rc = op_read_maybe(op, vcfs_inode_blk(&op->fs->sb, r->ino), VCFS_T_INODE, &p, &uninit);
	if (rc)
		return rc;
	di = p;
	if (uninit || !le32_get(di->mode))
		return -ENOENT;
	if (!S_ISLNK(le32_get(di->mode)))
		return -EINVAL;
	len = le32_get(di->link_len);
	if (len >= VCFS_BLK)
		return VCFS_CORRUPT("symlink target length", le64_get(di->h.blkno));
	if (len <= VCFS_INLINE_MAX) {
		size_t n = len < r->size - 1 ? len : r->size - 1;
		memcpy(r->buf, di->inline_data, n);
		r->buf[n] = 0;
		return 0;
	}
	uint64_t bp;
	rc = bmap_get(op, NULL, di, 0, &bp);
	if (rc)
		return rc;
	if (!bp)
		return VCFS_CORRUPT("long symlink without its block", le64_get(di->h.blkno));
	uint8_t *blk = vcfs_disk_buf_alloc(VCFS_BLK);
	if (!blk)
		return -ENOMEM;
	rc = vcfs_disk_read(op->fs->d, VCFS_BP_ADDR(bp) * VCFS_BLK, blk, VCFS_BLK);
	if (!rc) {
		size_t n = len < r->size - 1 ? len : r->size - 1;
		memcpy(r->buf, blk, n);
		r->buf[n] = 0;
	}
	free(blk);
	return rc;
}

int vcfs_fs_readlink(struct vcfs_fs *fs, uint64_t ino, char *buf, size_t size)
{
	struct rl r = { ino, buf, size };
	int rc = fs_check(fs, 0);

	if (rc)
		return rc;
	if (!size)
		return -EINVAL;
	if (!ino_valid(fs, ino))
		return -ENOENT;
	return lockless_read(fs, vcfs_inode_lock_blk(&fs->sb, ino), 1, readlink_fn, &r);
}

/* ---- removing names ---- */

/* The orphan directory of slot, initialised on first use. */
static int orphan_dir(struct vcfs_op *op, uint32_t slot, struct vcfs_inode_disk **out)
{
	uint64_t ino = VCFS_ORPHAN_INO(slot);
	struct vcfs_inode_disk *di;
	struct vcfs_ts_disk now;
	void *p;
	int uninit, rc;

	rc = op_read_maybe(op, vcfs_inode_blk(&op->fs->sb, ino), VCFS_T_INODE, &p, &uninit);
	if (rc)
		return rc;
	di = p;
	if (uninit || !S_ISDIR(le32_get(di->mode))) {
		uint64_t seq = le64_get(di->h.seq);
		memset(di, 0, sizeof(*di));
		di->h.type = le16_mk(VCFS_T_INODE);
		di->h.seq = le64_mk(seq);
		di->mode = le32_mk(S_IFDIR | 0700);
		di->nlink = le32_mk(2);
		di->flags = le32_mk(VCFS_IF_SYSTEM);
		di->generation = le64_mk(1);
		di->orphan_slot = le32_mk(0xffffffffu);
		ts_now(&now);
		di->atime = di->mtime = di->ctime = di->crtime = now;
		dir_init(di, VCFS_ROOT_INO);
		op_dirty(op, di);
	}
	*out = di;
	return 0;
}

/* An orphan directory that became empty gives its blocks back; 1 if the
 * op's transaction had no room left for all of it. */
static int orphan_dir_tidy(struct vcfs_op *op, struct vcfs_inode_disk *od)
{
	int rc;

	if (le64_get(od->dir_count) || !le64_get(od->blocks))
		return 0;
	rc = bmap_free(op, od, 0, UINT64_MAX);
	if (rc == 1)
		return 1;	/* no room left: again in another op (holes are empty
				 * buckets, so a partly freed map is consistent) */
	if (!rc) {
		dir_init(od, VCFS_ROOT_INO);
		op_dirty(op, od);
	}
	return rc;
}

static int orphan_name(uint64_t ino, char *buf)
{
	return snprintf(buf, 24, "%" PRIx64, ino);
}

/*
 * Drop one link of inode ino (body di, locked in op).  At zero, an inode that
 * is not open here is freed in this op when its blocks fit in the
 * transaction; one that is open here, or too big, goes to our orphan
 * directory (which the caller locked for non-directories) and *reclaim is set
 * when the rest can be freed right after the op.
 */
static int drop_link(struct vcfs_op *op, uint64_t ino, struct vcfs_inode_disk *di,
		     int *reclaim)
{
	struct vcfs_fs *fs = op->fs;
	uint32_t mode = le32_get(di->mode);
	int rc;

	touch(di, 0, 1);
	op_dirty(op, di);
	if (S_ISDIR(mode)) {
		di->nlink = le32_mk(0);
		rc = dir_free_blocks(op, di);
		if (!rc)
			rc = free_inode(op, ino);
		if (!rc)
			inode_clear(di);
		return rc;
	}
	if (le32_get(di->nlink) <= 1 && op_mw_others(op, ino)) {
		/* the last release here would free blocks that hosts sharing
		 * the multi-writer file still map */
		vcfs_warn("inode %llu: removing the last name of a multi-writer file open "
			  "on %u other host(s) is refused; close it there first",
			  (unsigned long long)ino, op_mw_others(op, ino));
		return -EBUSY;
	}
	if (le32_get(di->nlink))
		di->nlink = le32_mk(le32_get(di->nlink) - 1);
	if (le32_get(di->nlink))
		return 0;
	if (!itab_find(fs, ino)) {
		/* not open here: free it in this op if its map allows */
		rc = bmap_free(op, di, 0, UINT64_MAX);
		if (rc < 0)
			return rc;
		if (!rc) {
			rc = free_inode(op, ino);
			if (!rc)
				inode_clear(di);
			return rc;
		}
		/* too many blocks for one transaction: the rest goes later */
	}
	{
		struct vcfs_inode_disk *od;
		char nm[24];
		int n = orphan_name(ino, nm);
		rc = orphan_dir(op, fs->slot, &od);
		if (!rc)
			rc = dir_add(op, od, nm, (size_t)n, ino, dt_of_mode(mode));
		if (rc)
			return rc;
		di->flags = le32_mk(le32_get(di->flags) | VCFS_IF_ORPHAN);
		di->orphan_slot = le32_mk(fs->slot);
		*reclaim = !itab_find(fs, ino);
		return 0;
	}
}

int inode_reclaim(struct vcfs_fs *fs, uint64_t ino, uint32_t oslot)
{
	uint64_t locks[2] = { VCFS_ORPHAN_INO(oslot), ino };
	struct vcfs_inode_disk *di, *od;
	struct vcfs_op op;
	char nm[24];
	int n = orphan_name(ino, nm), rc, more;

	do {
		more = 0;
		rc = op_begin(fs, &op);
		if (rc)
			return rc;
		rc = op_lock_inodes(&op, locks, 2);
		if (rc)
			goto end;
		if (itab_find(fs, ino))
			goto end;	/* opened again meanwhile: its release frees it */
		rc = orphan_dir(&op, oslot, &od);
		if (rc)
			goto end;
		rc = op_inode(&op, ino, &di);
		if (rc)
			goto end;
		if (!le32_get(di->mode) || le32_get(di->nlink) ||
		    !(le32_get(di->flags) & VCFS_IF_ORPHAN)) {
			/* freed by someone else already, or not an orphan: only
			 * the stale entry goes */
			rc = dir_remove(&op, od, nm, (size_t)n);
			if (rc == -ENOENT)
				rc = 0;
			if (!rc) {
				int t = orphan_dir_tidy(&op, od);
				rc = t < 0 ? t : 0;
			}
			goto end;
		}
		rc = bmap_free(&op, di, 0, UINT64_MAX);
		if (rc == 1 || (!rc && op.bitmaps_changed && op_room(&op) < 8)) {
			more = 1;	/* the inode and its entry in a fresh op */
			rc = 0;
			goto end;
		}
		if (rc)
			goto end;
		rc = free_inode(&op, ino);
		if (rc)
			goto end;
		inode_clear(di);
		op_dirty(&op, di);
		rc = dir_remove(&op, od, nm, (size_t)n);
		if (rc == -ENOENT)
			rc = 0;
		if (!rc)
			rc = orphan_dir_tidy(&op, od);
		if (rc == 1) {
			more = 1;	/* the tidying in a fresh op */
			rc = 0;
		}
end:
		rc = op_end(&op, rc);
	} while (!rc && more);
	if (rc)
		vcfs_warn("freeing unlinked inode %llu: %s (it stays in the orphan "
			  "directory of slot %u)", (unsigned long long)ino, vcfs_strerror(rc),
			  oslot);
	return rc;
}

struct olist { uint64_t *v; size_t n, cap; };

static int olist_fn(void *arg, const struct vcfs_dirent_disk *e, uint64_t next)
{
	struct olist *l = arg;

	(void)next;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		uint64_t *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = le64_get(e->ino);
	return 0;
}

struct oscan { uint64_t ino; struct olist *l; };

static int oscan_fn(struct vcfs_op *op, void *arg)
{
	struct oscan *s = arg;
	struct vcfs_inode_disk *di;
	void *p;
	int uninit, rc;

	s->l->n = 0;
	rc = op_read_maybe(op, vcfs_inode_blk(&op->fs->sb, s->ino), VCFS_T_INODE, &p, &uninit);
	if (rc || uninit)
		return rc;
	di = p;
	if (!S_ISDIR(le32_get(di->mode)) || !le64_get(di->dir_count))
		return 0;
	for (uint64_t b = 0, nb = dir_nbuckets(di); b < nb; b++) {
		rc = dir_iterate_bucket(op, di, (uint32_t)b, 0, olist_fn, s->l);
		if (rc)
			return rc;
	}
	return 0;
}

int orphans_reclaim(struct vcfs_fs *fs, uint32_t slot)
{
	struct olist l = { 0 };
	struct oscan s = { VCFS_ORPHAN_INO(slot), &l };
	int rc;

	if (fs->read_only || !fs->j)
		return 0;
	rc = lockless_read(fs, vcfs_inode_lock_blk(&fs->sb, s.ino), 0, oscan_fn, &s);
	for (size_t i = 0; !rc && i < l.n; i++) {
		if (!ino_valid(fs, l.v[i]) || itab_find(fs, l.v[i]))
			continue;	/* open here: its last release frees it */
		inode_reclaim(fs, l.v[i], slot);
	}
	if (l.n)
		vcfs_info("slot %u: freed %zu inode(s) unlinked while open", slot, l.n);
	free(l.v);
	return rc;
}

int vcfs_fs_unlink(struct vcfs_fs *fs, uint64_t dir, const char *name)
{
	struct vcfs_inode_disk *db, *di;
	struct dir_hit hit;
	struct vcfs_op op;
	uint64_t ino = 0;
	size_t len;
	int rc, reclaim = 0;

	rc = name_check(name, &len);
	if (rc)
		return rc;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return -EISDIR;
	for (int tries = 0; ; tries++) {
		uint8_t type;
		rc = fs_check(fs, 1);
		if (rc)
			return rc;
		rc = lookup_ino(fs, dir, name, len, &ino, &type);
		if (rc)
			return rc;
		if (type == DT_DIR)
			return -EISDIR;
		rc = op_begin(fs, &op);
		if (rc)
			return rc;
		{
			uint64_t locks[3] = { dir, ino, VCFS_ORPHAN_INO(fs->slot) };
			rc = op_lock_inodes(&op, locks, 3);
		}
		if (!rc)
			rc = check_parent(&op, dir, &db);
		if (!rc)
			rc = dir_find(&op, db, name, len, &hit);
		if (!rc && hit.ino != ino) {
			op_end(&op, -EAGAIN);
			if (tries >= RETRIES)
				return -EAGAIN;
			continue;	/* renamed over meanwhile: again */
		}
		break;
	}
	if (rc)
		goto out;
	rc = op_inode(&op, ino, &di);
	if (rc)
		goto out;
	if (S_ISDIR(le32_get(di->mode))) {
		rc = -EISDIR;
		goto out;
	}
	rc = dir_remove(&op, db, name, len);
	if (rc)
		goto out;
	touch(db, 1, 1);
	rc = drop_link(&op, ino, di, &reclaim);
out:
	rc = op_end(&op, rc);
	if (!rc && reclaim)
		inode_reclaim(fs, ino, fs->slot);
	return rc;
}

int vcfs_fs_rmdir(struct vcfs_fs *fs, uint64_t dir, const char *name)
{
	struct vcfs_inode_disk *db, *di;
	struct dir_hit hit;
	struct vcfs_op op;
	uint64_t ino = 0;
	size_t len;
	int rc, reclaim = 0;

	rc = name_check(name, &len);
	if (rc)
		return rc;
	if (!strcmp(name, "."))
		return -EINVAL;
	if (!strcmp(name, ".."))
		return -ENOTEMPTY;
	for (int tries = 0; ; tries++) {
		rc = fs_check(fs, 1);
		if (rc)
			return rc;
		rc = lookup_ino(fs, dir, name, len, &ino, NULL);
		if (rc)
			return rc;
		rc = op_begin(fs, &op);
		if (rc)
			return rc;
		{
			uint64_t locks[2] = { dir, ino };
			rc = op_lock_inodes(&op, locks, 2);
		}
		if (!rc)
			rc = check_parent(&op, dir, &db);
		if (!rc)
			rc = dir_find(&op, db, name, len, &hit);
		if (!rc && hit.ino != ino) {
			op_end(&op, -EAGAIN);
			if (tries >= RETRIES)
				return -EAGAIN;
			continue;
		}
		break;
	}
	if (rc)
		goto out;
	rc = op_inode(&op, ino, &di);
	if (rc)
		goto out;
	if (!S_ISDIR(le32_get(di->mode))) {
		rc = -ENOTDIR;
		goto out;
	}
	if (le64_get(di->dir_count)) {
		rc = -ENOTEMPTY;
		goto out;
	}
	rc = dir_remove(&op, db, name, len);
	if (rc)
		goto out;
	db->nlink = le32_mk(le32_get(db->nlink) - 1);
	touch(db, 1, 1);
	rc = drop_link(&op, ino, di, &reclaim);
out:
	return op_end(&op, rc);
}

int vcfs_fs_link(struct vcfs_fs *fs, uint64_t ino, uint64_t newdir, const char *newname,
		 struct vcfs_attr *out)
{
	struct vcfs_inode_disk *db, *di, copy;
	uint64_t locks[2] = { newdir, ino };
	struct dir_hit hit;
	struct vcfs_op op;
	size_t len;
	int rc;

	rc = name_check(newname, &len);
	if (rc)
		return rc;
	if (!strcmp(newname, ".") || !strcmp(newname, ".."))
		return -EEXIST;
	if (!ino_valid(fs, ino))
		return -ENOENT;
	rc = op_begin(fs, &op);
	if (rc)
		return rc;
	rc = op_lock_inodes(&op, locks, 2);
	if (!rc)
		rc = check_parent(&op, newdir, &db);
	if (!rc)
		rc = op_inode(&op, ino, &di);
	if (rc)
		goto out;
	if (!le32_get(di->mode) || !le32_get(di->nlink)) {
		rc = -ENOENT;
		goto out;
	}
	if (S_ISDIR(le32_get(di->mode))) {
		rc = -EPERM;
		goto out;
	}
	if (le32_get(di->nlink) >= NLINK_MAX) {
		rc = -EMLINK;
		goto out;
	}
	rc = dir_find(&op, db, newname, len, &hit);
	if (rc != -ENOENT) {
		rc = rc ? rc : -EEXIST;
		goto out;
	}
	rc = dir_add(&op, db, newname, len, ino, dt_of_mode(le32_get(di->mode)));
	if (rc)
		goto out;
	touch(db, 1, 1);
	di->nlink = le32_mk(le32_get(di->nlink) + 1);
	touch(di, 0, 1);
	op_dirty(&op, di);
	memcpy(&copy, di, sizeof(copy));
out:
	rc = op_end(&op, rc);
	if (!rc && out)
		inode_to_attr(ino, &copy, out);
	return rc;
}

/* ---- rename ---- */

/* Is dir `a` (or any of its ancestors) the directory `x`?  Under the root
 * lock (see fs_int.h) parents of directories cannot change meanwhile. */
static int is_under(struct vcfs_op *op, uint64_t a, uint64_t x)
{
	for (int depth = 0; depth < 4096; depth++) {
		void *p;
		int rc;
		if (a == x)
			return 1;
		if (a == VCFS_ROOT_INO)
			return 0;
		rc = op_read(op, vcfs_inode_blk(&op->fs->sb, a), VCFS_T_INODE, &p);
		if (rc)
			return rc;
		a = le64_get(((struct vcfs_inode_disk *)p)->parent);
	}
	return VCFS_CORRUPT("directory parents form a loop", a);
}

int vcfs_fs_rename(struct vcfs_fs *fs, uint64_t olddir, const char *oldname,
		   uint64_t newdir, const char *newname, unsigned flags)
{
	struct vcfs_inode_disk *odb, *ndb, *sb_, *tb = NULL;
	struct dir_hit hit;
	struct vcfs_op op;
	uint64_t src = 0, tgt = 0;
	uint8_t stype = 0, ttype = 0;
	size_t olen, nlen;
	int rc, reclaim = 0, sdir, tdir, xchg = !!(flags & RENAME_EXCHANGE);

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if ((flags & RENAME_NOREPLACE) && xchg)
		return -EINVAL;
	if ((rc = name_check(oldname, &olen)) || (rc = name_check(newname, &nlen)))
		return rc;
	if (!strcmp(oldname, ".") || !strcmp(oldname, "..") || !strcmp(newname, ".") ||
	    !strcmp(newname, ".."))
		return -EBUSY;
	for (int tries = 0; ; tries++) {
		rc = fs_check(fs, 1);
		if (rc)
			return rc;
		rc = lookup_ino(fs, olddir, oldname, olen, &src, &stype);
		if (rc)
			return rc;
		rc = lookup_ino(fs, newdir, newname, nlen, &tgt, &ttype);
		if (rc == -ENOENT)
			tgt = 0;
		else if (rc)
			return rc;
		if (xchg && !tgt)
			return -ENOENT;
		if ((flags & RENAME_NOREPLACE) && tgt)
			return -EEXIST;
		rc = op_begin(fs, &op);
		if (rc)
			return rc;
		{
			int moves_dir = olddir != newdir &&
					(stype == DT_DIR || (xchg && ttype == DT_DIR));
			uint64_t locks[6] = { olddir, newdir, src, tgt,
					      moves_dir ? VCFS_ROOT_INO : 0,
					      tgt && ttype != DT_DIR ? VCFS_ORPHAN_INO(fs->slot) : 0 };
			rc = op_lock_inodes(&op, locks, 6);
		}
		if (!rc)
			rc = check_parent(&op, olddir, &odb);
		if (!rc)
			rc = check_parent(&op, newdir, &ndb);
		if (!rc)
			rc = dir_find(&op, odb, oldname, olen, &hit);
		if (!rc && hit.ino == src) {
			rc = dir_find(&op, ndb, newname, nlen, &hit);
			if ((rc == -ENOENT && !tgt) || (!rc && hit.ino == tgt)) {
				rc = 0;
				break;
			}
		}
		if (rc && rc != -ENOENT)
			break;
		op_end(&op, -EAGAIN);
		if (tries >= RETRIES)
			return -EAGAIN;
	}
	if (rc)
		goto out;
	if (src == tgt)
		goto out;	/* two names of one inode: nothing to do (POSIX) */
	rc = op_inode(&op, src, &sb_);
	if (!rc && tgt)
		rc = op_inode(&op, tgt, &tb);
	if (rc)
		goto out;
	sdir = S_ISDIR(le32_get(sb_->mode));
	tdir = tb && S_ISDIR(le32_get(tb->mode));
	if (tb && !xchg) {
		if (sdir && !tdir) {
			rc = -ENOTDIR;
			goto out;
		}
		if (!sdir && tdir) {
			rc = -EISDIR;
			goto out;
		}
		if (tdir && le64_get(tb->dir_count)) {
			rc = -ENOTEMPTY;
			goto out;
		}
	}
	if (olddir != newdir) {
		/* a directory may not move into its own subtree */
		if (sdir && (rc = is_under(&op, newdir, src)) != 0) {
			rc = rc > 0 ? -EINVAL : rc;
			goto out;
		}
		if (xchg && tdir && (rc = is_under(&op, olddir, tgt)) != 0) {
			rc = rc > 0 ? -EINVAL : rc;
			goto out;
		}
	}
	if (xchg) {
		rc = dir_retarget(&op, odb, oldname, olen, tgt, dt_of_mode(le32_get(tb->mode)));
		if (!rc)
			rc = dir_retarget(&op, ndb, newname, nlen, src,
					  dt_of_mode(le32_get(sb_->mode)));
		if (rc)
			goto out;
		if (olddir != newdir) {
			if (sdir) {
				sb_->parent = le64_mk(newdir);
				odb->nlink = le32_mk(le32_get(odb->nlink) - 1);
				ndb->nlink = le32_mk(le32_get(ndb->nlink) + 1);
			}
			if (tdir) {
				tb->parent = le64_mk(olddir);
				ndb->nlink = le32_mk(le32_get(ndb->nlink) - 1);
				odb->nlink = le32_mk(le32_get(odb->nlink) + 1);
			}
		}
		touch(tb, 0, 1);
		op_dirty(&op, tb);
	} else {
		if (tb) {
			rc = dir_retarget(&op, ndb, newname, nlen, src,
					  dt_of_mode(le32_get(sb_->mode)));
			if (!rc && tdir)
				ndb->nlink = le32_mk(le32_get(ndb->nlink) - 1);
			if (!rc)
				rc = drop_link(&op, tgt, tb, &reclaim);
		} else {
			if (sdir && olddir != newdir && le32_get(ndb->nlink) >= NLINK_MAX)
				rc = -EMLINK;
			else
				rc = dir_add(&op, ndb, newname, nlen, src,
					     dt_of_mode(le32_get(sb_->mode)));
		}
		if (!rc)
			rc = dir_remove(&op, odb, oldname, olen);
		if (rc)
			goto out;
		if (sdir && olddir != newdir) {
			sb_->parent = le64_mk(newdir);
			odb->nlink = le32_mk(le32_get(odb->nlink) - 1);
			ndb->nlink = le32_mk(le32_get(ndb->nlink) + 1);
		}
	}
	touch(sb_, 0, 1);
	op_dirty(&op, sb_);
	touch(odb, 1, 1);
	op_dirty(&op, odb);
	touch(ndb, 1, 1);
	op_dirty(&op, ndb);
out:
	rc = op_end(&op, rc);
	if (!rc && reclaim)
		inode_reclaim(fs, tgt, fs->slot);
	return rc;
}

/* ---- readdir ---- */

struct rd_ent { uint64_t ino, cookie; uint8_t type; char name[VCFS_NAME_MAX + 1]; };

struct rd_bucket {
	uint64_t dir;
	uint64_t cookie, next;	/* where this bucket's read starts / the next */
	struct rd_ent *v;
	size_t n, cap;
};

static int rd_collect(void *arg, const struct vcfs_dirent_disk *e, uint64_t next)
{
	struct rd_bucket *r = arg;

	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 128;
		struct rd_ent *v = realloc(r->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n].ino = le64_get(e->ino);
	r->v[r->n].cookie = next;
	r->v[r->n].type = e->type;
	memcpy(r->v[r->n].name, e->name, e->namelen);
	r->v[r->n].name[e->namelen] = 0;
	r->n++;
	return 0;
}

static int rd_bucket_fn(struct vcfs_op *op, void *arg)
{
	struct rd_bucket *r = arg;
	void *p;
	int uninit, rc;

	r->n = 0;
	rc = op_read_maybe(op, vcfs_inode_blk(&op->fs->sb, r->dir), VCFS_T_INODE, &p, &uninit);
	if (rc)
		return rc;
	if (uninit)
		return -ENOENT;
	rc = dir_body_ok(p);
	if (rc)
		return rc;
	return dir_iterate_from(op, p, r->cookie, rd_collect, r, &r->next);
}

int vcfs_fs_readdir(struct vcfs_fs *fs, uint64_t dir, uint64_t cookie, vcfs_fill_fn fill,
		    void *arg)
{
	struct rd_bucket r = { .dir = dir };
	uint64_t parent;
	int rc = fs_check(fs, 0);

	if (rc)
		return rc;
	rc = lookup_ino(fs, dir, NULL, 0, &parent, NULL);
	if (rc)
		return rc;
	if (cookie == 0) {
		if (fill(arg, ".", dir, DT_DIR, 1))
			return 0;
		cookie = 1;
	}
	if (cookie == 1) {
		if (fill(arg, "..", parent, DT_DIR, 2))
			return 0;
		cookie = 2;
	}
	if (cookie == 2)
		cookie = 3;
	/* one bucket per consistent read; the cookies (dir.c) survive splits
	 * and removals between them */
	for (r.cookie = cookie; r.cookie != UINT64_MAX; r.cookie = r.next) {
		rc = lockless_read(fs, vcfs_inode_lock_blk(&fs->sb, dir), 0, rd_bucket_fn, &r);
		if (rc)
			break;
		for (size_t i = 0; i < r.n; i++)
			if (fill(arg, r.v[i].name, r.v[i].ino, r.v[i].type, r.v[i].cookie))
				goto out;
	}
out:
	free(r.v);
	return rc;
}

/* ---- attributes ---- */

int vcfs_fs_setattr(struct vcfs_fs *fs, uint64_t ino, const struct vcfs_attr *in,
		    unsigned mask, struct vcfs_attr *out)
{
	struct vcfs_inode_disk *di, copy;
	struct vcfs_op op;
	uint32_t mode;
	int rc = fs_check(fs, 1);

	if (rc)
		return rc;
	if (!ino_valid(fs, ino))
		return -ENOENT;
	if (mask & VCFS_SET_SIZE) {
		rc = file_set_size(fs, ino, in->size);
		if (rc)
			return rc;
		mask &= ~VCFS_SET_SIZE;
		if (!mask)
			return out ? vcfs_fs_getattr(fs, ino, out) : 0;
	}
	rc = op_begin(fs, &op);
	if (rc)
		return rc;
	rc = op_lock_inodes(&op, &ino, 1);
	if (!rc)
		rc = op_inode(&op, ino, &di);
	if (rc)
		goto out;
	if (!le32_get(di->mode)) {
		rc = -ENOENT;
		goto out;
	}
	mode = le32_get(di->mode);
	if (mask & VCFS_SET_MODE)
		mode = (mode & S_IFMT) | (in->mode & 07777);
	if ((mask & (VCFS_SET_UID | VCFS_SET_GID)) && !(mask & VCFS_SET_MODE) &&
	    !S_ISDIR(mode) &&
	    (((mask & VCFS_SET_UID) && in->uid != le32_get(di->uid)) ||
	     ((mask & VCFS_SET_GID) && in->gid != le32_get(di->gid)))) {
		/* chown clears set-user-ID, and set-group-ID when it means
		 * "set group ID" (group-executable), as local filesystems do */
		mode &= ~(uint32_t)S_ISUID;
		if (mode & S_IXGRP)
			mode &= ~(uint32_t)S_ISGID;
	}
	di->mode = le32_mk(mode);
	if (mask & VCFS_SET_UID)
		di->uid = le32_mk(in->uid);
	if (mask & VCFS_SET_GID)
		di->gid = le32_mk(in->gid);
	if (mask & VCFS_SET_ATIME_NOW)
		ts_now(&di->atime);
	else if (mask & VCFS_SET_ATIME) {
		di->atime.sec = le64_mk((uint64_t)in->atime.tv_sec);
		di->atime.nsec = le32_mk((uint32_t)in->atime.tv_nsec);
	}
	if (mask & VCFS_SET_MTIME_NOW)
		ts_now(&di->mtime);
	else if (mask & VCFS_SET_MTIME) {
		di->mtime.sec = le64_mk((uint64_t)in->mtime.tv_sec);
		di->mtime.nsec = le32_mk((uint32_t)in->mtime.tv_nsec);
	}
	if (mask & VCFS_SET_CTIME) {
		di->ctime.sec = le64_mk((uint64_t)in->ctime.tv_sec);
		di->ctime.nsec = le32_mk((uint32_t)in->ctime.tv_nsec);
	} else {
		ts_now(&di->ctime);
	}
	op_dirty(&op, di);
	memcpy(&copy, di, sizeof(copy));
out:
	rc = op_end(&op, rc);
	if (!rc && out)
		inode_to_attr(ino, &copy, out);
	return rc;
}

/* ---- extended attributes: packed u8 namelen, le16 vallen, name, value ---- */

struct xa_ent { uint32_t off, namelen, vallen, len; };

/* Find name in the packed area; 0 found (e filled), -ENODATA, or corrupt. */
static int xa_find(const struct vcfs_inode_disk *di, const char *name, size_t nlen,
		   struct xa_ent *e)
{
	uint32_t used = le32_get(di->xattr_len), off = 0;

	if (used > VCFS_XATTR_MAX)
		return VCFS_CORRUPT("inode xattr area length", le64_get(di->h.blkno));
	while (off + 3 <= used && di->xattr[off]) {
		uint32_t nl = di->xattr[off];
		uint32_t vl = (uint32_t)di->xattr[off + 1] | (uint32_t)di->xattr[off + 2] << 8;
		if (off + 3 + nl + vl > used)
			return VCFS_CORRUPT("inode xattr entry overflows its area",
					    le64_get(di->h.blkno));
		if (nl == nlen && !memcmp(di->xattr + off + 3, name, nlen)) {
			e->off = off;
			e->namelen = nl;
			e->vallen = vl;
			e->len = 3 + nl + vl;
			return 0;
		}
		off += 3 + nl + vl;
	}
	return -ENODATA;
}

/*
 * Virtual attributes (not in the packed area):
 *  user.vcfs.multiwriter  "1" while VCFS_IF_MULTIWRITER is set (listed then);
 *                         set "1"/"0", remove = "0".  Changing it while
 *                         another host has the file open fails with EBUSY.
 *  user.vcfs.lock         read-only, never listed: the inode's lock mode and
 *                         live holders, "EXCL esx1 (slot 3, gen 7)", as
 *                         vcfs locks PATH shows them.
 */
#define XA_MW	"user.vcfs.multiwriter"
#define XA_LOCK	"user.vcfs.lock"

static int mw_flag_set(struct vcfs_fs *fs, uint64_t ino, int on, int flags, int removing)
{
	struct vcfs_inode_disk *di;
	struct vcfs_op op;
	uint32_t f, others;
	int rc;

	if (!ino_valid(fs, ino))
		return -ENOENT;
	rc = op_begin(fs, &op);
	if (rc)
		return rc;
	rc = op_lock_inodes(&op, &ino, 1);
	if (!rc)
		rc = op_inode(&op, ino, &di);
	if (rc)
		goto out;
	if (!le32_get(di->mode)) {
		rc = -ENOENT;
		goto out;
	}
	if (!S_ISREG(le32_get(di->mode))) {
		vcfs_warn("inode %llu: %s applies to regular files only",
			  (unsigned long long)ino, XA_MW);
		rc = -EINVAL;
		goto out;
	}
	f = le32_get(di->flags);
	if ((flags & XATTR_CREATE) && (f & VCFS_IF_MULTIWRITER)) {
		rc = -EEXIST;
		goto out;
	}
	if (((flags & XATTR_REPLACE) || removing) && !(f & VCFS_IF_MULTIWRITER)) {
		rc = -ENODATA;
		goto out;
	}
	if (!!(f & VCFS_IF_MULTIWRITER) == on)
		goto out;	/* no change */
	others = op_mw_others(&op, ino);
	if (others) {
		vcfs_warn("inode %llu: %s cannot change while the file is open on %u "
			  "other host(s); close it there first", (unsigned long long)ino,
			  XA_MW, others);
		rc = -EBUSY;
		goto out;
	}
	di->flags = le32_mk(on ? f | VCFS_IF_MULTIWRITER : f & ~VCFS_IF_MULTIWRITER);
	touch(di, 0, 1);
	op_dirty(&op, di);
out:
	return op_end(&op, rc);
}

static ssize_t lock_xattr(struct vcfs_fs *fs, uint64_t ino, char *val, size_t size)
{
	struct vcfs_slot_info *slots = NULL;
	struct vcfs_lock_info li;
	char s[VCFS_LOCK_HOLDERS * 96 + 16];
	size_t n;
	int rc, listed = 0;

	if (!ino_valid(fs, ino) && ino != VCFS_ROOT_INO)
		return -ENOENT;
	rc = vcfs_lock_read(fs->d, &fs->sb, fs->hb, vcfs_inode_lock_blk(&fs->sb, ino), &li);
	if (rc)
		return rc;
	if (!fs->hb) {	/* read-only mount: names from the slots as written */
		slots = calloc(fs->sb.max_hosts, sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		rc = vcfs_hb_read_slots(fs->d, &fs->sb, slots);
		if (rc) {
			free(slots);
			return rc;
		}
	}
	n = (size_t)snprintf(s, sizeof(s), "%s", li.mode == VCFS_LOCK_EXCL ? "EXCL" :
			     li.mode == VCFS_LOCK_RO ? "RO" : li.mode == VCFS_LOCK_MW ? "MW" :
			     "FREE");
	for (uint32_t i = 0; i < li.nholders && n < sizeof(s); i++) {
		char name[80] = "?";
		uint32_t sl = li.holders[i].slot;
		if (li.holders[i].stale)
			continue;	/* its host is gone: it holds nothing */
		if (fs->hb)
			vcfs_hb_slot_name(fs->hb, sl, name, sizeof(name));
		else if (sl < fs->sb.max_hosts)
			snprintf(name, sizeof(name), "%s", slots[sl].host_name);
		n += (size_t)snprintf(s + n, sizeof(s) - n, "%s %s (slot %u, gen %u%s)",
				      listed++ ? "," : "", name, sl, li.holders[i].gen,
				      li.holders[i].claim ? ", changing the map" : "");
	}
	free(slots);
	if (!listed)
		n = (size_t)snprintf(s, sizeof(s), "FREE");
	if (n >= sizeof(s))
		n = sizeof(s) - 1;
	if (size && size < n)
		return -ERANGE;
	if (size)
		memcpy(val, s, n);
	return (ssize_t)n;
}

/* "1"/"0" (a trailing newline allowed); -EINVAL otherwise. */
static int mw_value(const void *val, size_t size)
{
	const char *v = val;

	if (size && v[size - 1] == '\n')
		size--;
	if (size == 1 && (v[0] == '1' || v[0] == '0'))
		return v[0] == '1';
	vcfs_warn("%s takes 1 or 0", XA_MW);
	return -EINVAL;
}

static int xa_name(const char *name, size_t *len)
{
	size_t n = strnlen(name, 256);

	if (!n)
		return -EINVAL;
	if (n > 255)
		return -ERANGE;
	*len = n;
	return 0;
}

int vcfs_fs_setxattr(struct vcfs_fs *fs, uint64_t ino, const char *name, const void *val,
		     size_t size, int flags)
{
	struct vcfs_inode_disk *di;
	struct xa_ent e;
	struct vcfs_op op;
	uint32_t used;
	size_t nlen;
	int rc;

	if ((rc = xa_name(name, &nlen)))
		return rc;
	if (!strcmp(name, XA_LOCK))
		return -EPERM;	/* read-only */
	if (!strcmp(name, XA_MW)) {
		int on = mw_value(val, size);
		return on < 0 ? on : mw_flag_set(fs, ino, on, flags, 0);
	}
	if (size > VCFS_XATTR_MAX)
		return -ENOSPC;
	if (!ino_valid(fs, ino))
		return -ENOENT;
	rc = op_begin(fs, &op);
	if (rc)
		return rc;
	rc = op_lock_inodes(&op, &ino, 1);
	if (!rc)
		rc = op_inode(&op, ino, &di);
	if (rc)
		goto out;
	if (!le32_get(di->mode)) {
		rc = -ENOENT;
		goto out;
	}
	rc = xa_find(di, name, nlen, &e);
	if (rc && rc != -ENODATA)
		goto out;
	if (!rc && (flags & XATTR_CREATE)) {
		rc = -EEXIST;
		goto out;
	}
	if (rc == -ENODATA && (flags & XATTR_REPLACE))
		goto out;
	used = le32_get(di->xattr_len);
	if (used - (rc ? 0 : e.len) + 3 + nlen + size > VCFS_XATTR_MAX) {
		rc = -ENOSPC;
		goto out;
	}
	if (!rc) {	/* drop the old value */
		memmove(di->xattr + e.off, di->xattr + e.off + e.len, used - e.off - e.len);
		used -= e.len;
	}
	di->xattr[used] = (uint8_t)nlen;
	di->xattr[used + 1] = (uint8_t)size;
	di->xattr[used + 2] = (uint8_t)(size >> 8);
	memcpy(di->xattr + used + 3, name, nlen);
	memcpy(di->xattr + used + 3 + nlen, val, size);
	used += (uint32_t)(3 + nlen + size);
	memset(di->xattr + used, 0, VCFS_XATTR_MAX - used);
	di->xattr_len = le32_mk(used);
	touch(di, 0, 1);
	op_dirty(&op, di);
	rc = 0;
out:
	return op_end(&op, rc);
}

int vcfs_fs_removexattr(struct vcfs_fs *fs, uint64_t ino, const char *name)
{
	struct vcfs_inode_disk *di;
	struct xa_ent e;
	struct vcfs_op op;
	uint32_t used;
	size_t nlen;
	int rc;

	if ((rc = xa_name(name, &nlen)))
		return rc;
	if (!strcmp(name, XA_LOCK))
		return -EPERM;
	if (!strcmp(name, XA_MW))
		return mw_flag_set(fs, ino, 0, 0, 1);
	if (!ino_valid(fs, ino))
		return -ENOENT;
	rc = op_begin(fs, &op);
	if (rc)
		return rc;
	rc = op_lock_inodes(&op, &ino, 1);
	if (!rc)
		rc = op_inode(&op, ino, &di);
	if (!rc && !le32_get(di->mode))
		rc = -ENOENT;
	if (!rc)
		rc = xa_find(di, name, nlen, &e);
	if (rc)
		goto out;
	used = le32_get(di->xattr_len);
	memmove(di->xattr + e.off, di->xattr + e.off + e.len, used - e.off - e.len);
	used -= e.len;
	memset(di->xattr + used, 0, VCFS_XATTR_MAX - used);
	di->xattr_len = le32_mk(used);
	touch(di, 0, 1);
	op_dirty(&op, di);
out:
	return op_end(&op, rc);
}

ssize_t vcfs_fs_getxattr(struct vcfs_fs *fs, uint64_t ino, const char *name, void *val,
			 size_t size)
{
	struct vcfs_inode_disk *di = vcfs_disk_buf_alloc(VCFS_BLK);
	struct xa_ent e;
	size_t nlen;
	int rc = fs_check(fs, 0);

	if (!di)
		return -ENOMEM;
	if (!rc)
		rc = xa_name(name, &nlen);
	if (!rc && !strcmp(name, XA_LOCK)) {
		free(di);
		return lock_xattr(fs, ino, val, size);
	}
	if (!rc)
		rc = inode_read_lockless(fs, ino, di);
	if (!rc && !strcmp(name, XA_MW)) {
		rc = (le32_get(di->flags) & VCFS_IF_MULTIWRITER) ? 0 : -ENODATA;
		e.vallen = 1;
		if (!rc && size)
			*(char *)val = '1';
		free(di);
		return rc ? rc : 1;
	}
	if (!rc)
		rc = xa_find(di, name, nlen, &e);
	if (!rc) {
		if (size && size < e.vallen)
			rc = -ERANGE;
		else if (size)
			memcpy(val, di->xattr + e.off + 3 + e.namelen, e.vallen);
	}
	free(di);
	return rc ? rc : (ssize_t)e.vallen;
}

ssize_t vcfs_fs_listxattr(struct vcfs_fs *fs, uint64_t ino, char *list, size_t size)
{
	struct vcfs_inode_disk *di = vcfs_disk_buf_alloc(VCFS_BLK);
	size_t total = 0;
	uint32_t used, off = 0;
	int rc = fs_check(fs, 0);

	if (!di)
		return -ENOMEM;
	if (!rc)
		rc = inode_read_lockless(fs, ino, di);
	if (rc)
		goto out;
	used = le32_get(di->xattr_len);
	if (used > VCFS_XATTR_MAX) {
		rc = VCFS_CORRUPT("inode xattr area length", le64_get(di->h.blkno));
		goto out;
	}
	while (off + 3 <= used && di->xattr[off]) {
		uint32_t nl = di->xattr[off];
		uint32_t vl = (uint32_t)di->xattr[off + 1] | (uint32_t)di->xattr[off + 2] << 8;
		if (off + 3 + nl + vl > used) {
			rc = VCFS_CORRUPT("inode xattr entry overflows its area",
					  le64_get(di->h.blkno));
			goto out;
		}
		if (size) {
			if (total + nl + 1 > size) {
				rc = -ERANGE;
				goto out;
			}
			memcpy(list + total, di->xattr + off + 3, nl);
			list[total + nl] = 0;
		}
		total += nl + 1;
		off += 3 + nl + vl;
	}
	if (le32_get(di->flags) & VCFS_IF_MULTIWRITER) {
		if (size && total + sizeof(XA_MW) > size) {
			rc = -ERANGE;
			goto out;
		}
		if (size)
			memcpy(list + total, XA_MW, sizeof(XA_MW));
		total += sizeof(XA_MW);
	}
out:
	free(di);
	return rc ? rc : (ssize_t)total;
}
