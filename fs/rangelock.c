/*
 * rangelock.c - the filesystem's face of cluster-wide byte-range locks: maps
 * fcntl's vocabulary (F_RDLCK, struct vcfs_range_lock) onto lock/rlock.h's
 * tables in the inode lock blocks.  No fs lock is taken: the tables change
 * only by their own compare-and-write, never under an inode lock record.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include "fs_int.h"
#include "../lock/lock.h"
#include "../lock/rlock.h"

static int check(struct vcfs_fs *fs, uint64_t ino, const struct vcfs_range_lock *lk)
{
	if (!fs->hb)
		return -ENOLCK;
	if (vcfs_hb_fenced(fs->hb))
		return -VCFS_EFENCED;
	if (ino == 0 || ino >= fs->sb.ninodes)
		return -EINVAL;
	if (lk && (lk->start > lk->end ||
		   (lk->type != F_RDLCK && lk->type != F_WRLCK && lk->type != F_UNLCK)))
		return -EINVAL;
	return 0;
}

static void to_rlock(const struct vcfs_range_lock *lk, struct vcfs_rlock *r)
{
	memset(r, 0, sizeof(*r));
	r->owner = lk->owner;
	r->start = lk->flock ? 0 : lk->start;
	r->end = lk->flock ? VCFS_RLOCK_EOF : lk->end;
	r->pid = lk->pid;
	r->type = lk->type == F_RDLCK ? VCFS_RL_RDLCK :
		  lk->type == F_WRLCK ? VCFS_RL_WRLCK : VCFS_RL_UNLCK;
	r->kind = lk->flock ? VCFS_RL_FLOCK : VCFS_RL_POSIX;
}

int vcfs_fs_getlk(struct vcfs_fs *fs, uint64_t ino, struct vcfs_range_lock *lk)
{
	struct vcfs_rlock want, c;
	int rc = check(fs, ino, lk);

	if (rc)
		return rc;
	to_rlock(lk, &want);
	rc = vcfs_rlock_test(fs->hb, vcfs_inode_lock_blk(&fs->sb, ino), &want, &c);
	if (rc < 0)
		return rc;
	if (!rc) {
		lk->type = F_UNLCK;
		return 0;
	}
	lk->type = c.type == VCFS_RL_WRLCK ? F_WRLCK : F_RDLCK;
	lk->start = c.start;
	lk->end = c.end;
	lk->pid = c.pid;
	lk->owner = c.owner;
	lk->slot = c.slot;
	lk->remote = c.slot != fs->slot;
	return 0;
}

int vcfs_fs_setlk(struct vcfs_fs *fs, uint64_t ino, const struct vcfs_range_lock *lk)
{
	struct vcfs_rlock r;
	int rc = check(fs, ino, lk);

	if (rc)
		return rc;
	to_rlock(lk, &r);
	return vcfs_rlock_set(fs->hb, vcfs_inode_lock_blk(&fs->sb, ino), &r, NULL);
}

int vcfs_fs_unlock_owner(struct vcfs_fs *fs, uint64_t ino, uint64_t owner, int flock)
{
	int rc = fs->hb ? check(fs, ino, NULL) : 0;	/* read-only: holds none */

	if (rc || !fs->hb)
		return rc;
	return vcfs_rlock_release(fs->hb, vcfs_inode_lock_blk(&fs->sb, ino),
				  owner == UINT64_MAX ? VCFS_RLOCK_ANY_OWNER : owner,
				  flock < 0 ? -1 : flock ? VCFS_RL_FLOCK : VCFS_RL_POSIX);
}
