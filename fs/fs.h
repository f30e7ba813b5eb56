/*
 * fs.h - the datastore filesystem as seen by its front ends (the FUSE daemon,
 * the admin tools, tests).  One struct vcfs_fs is one mounted host of the
 * cluster: it owns a heartbeat slot and a journal, and every call below is
 * safe against the other hosts that have the same datastore mounted.
 *
 * Calls name objects by inode number, like FUSE's low-level API, so the daemon
 * maps node ids to inodes one to one.  Every call returns 0 or a negative
 * error (-errno, or -VCFS_E* from common/vcfs_err.h); POSIX refusals use the
 * errno a local filesystem would (ENOENT, EEXIST, ENOTEMPTY, EISDIR, ENOTDIR,
 * ENAMETOOLONG, EXDEV, EBUSY when another host holds the object's lock).
 *
 * Cluster rules the implementation keeps (see docs/architecture.md):
 *  - a metadata change takes the lock record of every object it modifies by
 *    compare-and-write, re-reads those objects from disk, commits one journal
 *    transaction, writes the blocks home, and only then releases the locks:
 *    another host that takes the lock next always reads current metadata;
 *  - an open for writing takes the inode's lock exclusively for as long as the
 *    file stays open (another host's write open gets EBUSY and the log names the
 *    holder); read-only opens share; VCFS_OPEN_MULTIWRITER shares writers,
 *    and so does every open of a file whose user.vcfs.multiwriter is set;
 *  - once fenced (lost heartbeat), every call fails with -VCFS_EFENCED.
 */
#ifndef VCFS_FS_H
#define VCFS_FS_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include "../common/vcfs_err.h"
#include "../disk/disk.h"

struct vcfs_fs;
struct vcfs_file;
struct vcfs_disk;

struct vcfs_mount_opts {
	const char *host_name;	/* name shown to other hosts; NULL = hostname */
	int read_only;		/* mount without a heartbeat slot: reads only */
	uint32_t io_timeout_ms;	/* 0 = the value recorded in the volume header */
	int grow;		/* `vcfs grow` only: mount although a grow was
				 * interrupted, to finish it */
};

struct vcfs_attr {
	uint64_t ino;
	uint64_t size;
	uint64_t blocks;	/* 512-byte units allocated */
	uint32_t mode, nlink, uid, gid;
	uint64_t rdev;
	struct timespec atime, mtime, ctime, crtime;
	uint64_t generation;	/* inode generation: changes when a number is reused */
};

/* setattr mask bits */
#define VCFS_SET_MODE	(1u << 0)
#define VCFS_SET_UID	(1u << 1)
#define VCFS_SET_GID	(1u << 2)
#define VCFS_SET_SIZE	(1u << 3)
#define VCFS_SET_ATIME	(1u << 4)
#define VCFS_SET_MTIME	(1u << 5)
#define VCFS_SET_ATIME_NOW (1u << 6)
#define VCFS_SET_MTIME_NOW (1u << 7)
#define VCFS_SET_CTIME	(1u << 8)

/* open flags beyond O_* access modes */
#define VCFS_OPEN_MULTIWRITER (1u << 0)	/* share a write open with other hosts */

struct vcfs_statfs {
	uint64_t bsize, blocks, bfree, files, ffree, namemax;
};

int vcfs_fs_mount(const char *uri, const struct vcfs_mount_opts *o, struct vcfs_fs **out);
/*
 * Mount a datastore that is already open (tests put a crash or fault layer
 * under the fs this way).  Takes ownership of d: unmount closes it, and so
 * does a failed mount.  d must bound each request by the volume header's I/O
 * timeout or less (vcfs_fs_mount opens it so; the lease timing assumes it).
 */
int vcfs_fs_mount_disk(struct vcfs_disk *d, const struct vcfs_mount_opts *o,
		       struct vcfs_fs **out);
/* Flush, release every lock, clear the heartbeat slot. */
int vcfs_fs_unmount(struct vcfs_fs *fs);
/*
 * Tests: a simulated crash of this host.  Writes nothing: the host fences
 * itself, its heartbeat stops without freeing the slot, opens and locks stay
 * as they are on disk (survivors or fsck recover the slot).  Frees fs and
 * closes its disk and every file handle of fs still open: none may be used
 * afterwards.
 */
void vcfs_fs_crash(struct vcfs_fs *fs);
uint64_t vcfs_fs_root(const struct vcfs_fs *fs);

/*
 * Grow the datastore into space added to its backend (fs/grow.c has the
 * protocol).  want_bytes 0: the backend's whole size.  Online: other hosts
 * keep running and start using the new space the next time they run out of
 * it, stat the filesystem, or meet a block or bitmap of the grown part.
 * Finishes an interrupted grow first.  0 with res->grown = 0: nothing to do.
 */
struct vcfs_grow_result {
	uint64_t old_bytes, new_bytes;	/* volume size before and after */
	uint64_t limit_bytes;		/* largest size grow can ever reach */
	uint64_t added_large;		/* large blocks added */
	uint32_t old_clusters, new_clusters;	/* large-block clusters */
	int grown, resumed;		/* resumed: an interrupted grow was finished */
	int capped;			/* the backend is larger than limit_bytes */
};
int vcfs_fs_grow(struct vcfs_fs *fs, uint64_t want_bytes, struct vcfs_grow_result *res);

int vcfs_fs_lookup(struct vcfs_fs *fs, uint64_t dir, const char *name, struct vcfs_attr *out);
int vcfs_fs_getattr(struct vcfs_fs *fs, uint64_t ino, struct vcfs_attr *out);
int vcfs_fs_setattr(struct vcfs_fs *fs, uint64_t ino, const struct vcfs_attr *in,
		    unsigned mask, struct vcfs_attr *out);
/* Regular files, FIFOs, sockets and device nodes (mode carries the type). */
int vcfs_fs_mknod(struct vcfs_fs *fs, uint64_t dir, const char *name, uint32_t mode,
		  uint64_t rdev, uint32_t uid, uint32_t gid, struct vcfs_attr *out);
int vcfs_fs_mkdir(struct vcfs_fs *fs, uint64_t dir, const char *name, uint32_t mode,
		  uint32_t uid, uint32_t gid, struct vcfs_attr *out);
int vcfs_fs_symlink(struct vcfs_fs *fs, uint64_t dir, const char *name, const char *target,
		    uint32_t uid, uint32_t gid, struct vcfs_attr *out);
/* The target, NUL-terminated (cut to size - 1 bytes); 0 or -errno. */
int vcfs_fs_readlink(struct vcfs_fs *fs, uint64_t ino, char *buf, size_t size);
int vcfs_fs_link(struct vcfs_fs *fs, uint64_t ino, uint64_t newdir, const char *newname,
		 struct vcfs_attr *out);
int vcfs_fs_unlink(struct vcfs_fs *fs, uint64_t dir, const char *name);
int vcfs_fs_rmdir(struct vcfs_fs *fs, uint64_t dir, const char *name);
/* flags: RENAME_NOREPLACE, RENAME_EXCHANGE (linux/fs.h values) */
int vcfs_fs_rename(struct vcfs_fs *fs, uint64_t olddir, const char *oldname,
		   uint64_t newdir, const char *newname, unsigned flags);

/*
 * Directory listing from cookie (0 = start; "." and ".." come first).  fill()
 * returns non-zero when the caller's buffer is full; the entry is then not
 * consumed and the next call resumes at it.  type is a DT_* value.
 */
typedef int (*vcfs_fill_fn)(void *arg, const char *name, uint64_t ino, uint32_t type,
			    uint64_t next_cookie);
int vcfs_fs_readdir(struct vcfs_fs *fs, uint64_t dir, uint64_t cookie, vcfs_fill_fn fill,
		    void *arg);

int vcfs_fs_open(struct vcfs_fs *fs, uint64_t ino, int oflags, unsigned vflags,
		 struct vcfs_file **out);
/*
 * Open the inode a lookup returned, by number AND generation (attr.generation;
 * 0: any, as vcfs_fs_open).  A lookup and the open that follows are not
 * atomic: meanwhile another host may unlink the name and create another file
 * that reuses the number (with the next generation).  That open fails with
 * -ESTALE (the kernel then looks the name up again), checked under the open's
 * lock before O_TRUNC; an inode freed meanwhile gives -ENOENT.
 */
int vcfs_fs_open_gen(struct vcfs_fs *fs, uint64_t ino, uint64_t gen, int oflags,
		     unsigned vflags, struct vcfs_file **out);
int vcfs_fs_create(struct vcfs_fs *fs, uint64_t dir, const char *name, uint32_t mode,
		   uint32_t uid, uint32_t gid, int oflags, struct vcfs_attr *attr,
		   struct vcfs_file **out);
/* 1 if other hosts may write the file while f is open (a multi-writer
 * open): nothing read through f may be cached. */
int vcfs_file_shared(const struct vcfs_file *f);
/* Last close: drops the lock; frees the inode if it was unlinked while open. */
int vcfs_file_release(struct vcfs_file *f);
ssize_t vcfs_file_read(struct vcfs_file *f, uint64_t off, void *buf, size_t len);
ssize_t vcfs_file_write(struct vcfs_file *f, uint64_t off, const void *buf, size_t len);
/*
 * Asynchronous read or write of f (the FUSE daemon's data path): fill write,
 * off, buf, len and done; 0 means submitted, and done(a, res) is called
 * exactly once, later, from the disk layer's completion thread, with the
 * byte count or a negative errno; buf and a stay untouched until then, and
 * f open.  Anything else (-EOPNOTSUPP, -EAGAIN, ...) means "not this way":
 * call vcfs_file_read/write, which also give the right error.  Only the plain
 * case goes: one block, mapped and written, sector-aligned, inside the size
 * (a write), not multi-writer, not O_APPEND, on a backend with an
 * asynchronous path (disk.h vcfs_disk_submit).  The block map cannot change
 * under the request: it pins the inode, and every map change waits for the
 * pins to go (fs_int.h, struct vcfs_inode).
 */
struct vcfs_file_aio {
	int write;
	uint64_t off;
	void *buf;
	size_t len;
	void (*done)(struct vcfs_file_aio *a, ssize_t res);
	/* private */
	struct vcfs_disk_aio da;
	struct vcfs_file *f;
};
int vcfs_file_submit(struct vcfs_file *f, struct vcfs_file_aio *a);
int vcfs_file_fsync(struct vcfs_file *f, int datasync);
/*
 * Make every metadata change this host made so far durable (one journal
 * record for the whole pending group): fsync of a directory, syncfs.  Ops
 * return before their change is durable (group commit); fsync of a file,
 * its last close and this are the points where it is.
 */
int vcfs_fs_sync(struct vcfs_fs *fs);
/* mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|KEEP_SIZE, FALLOC_FL_ZERO_RANGE */
int vcfs_file_fallocate(struct vcfs_file *f, int mode, uint64_t off, uint64_t len);
/* SEEK_DATA / SEEK_HOLE; -ENXIO past the end as lseek(2). */
int vcfs_file_lseek(struct vcfs_file *f, uint64_t off, int whence, uint64_t *out);

int vcfs_fs_setxattr(struct vcfs_fs *fs, uint64_t ino, const char *name, const void *val,
		     size_t size, int flags);
/* Returns the value size; with size 0 only the size. */
ssize_t vcfs_fs_getxattr(struct vcfs_fs *fs, uint64_t ino, const char *name, void *val,
			 size_t size);
ssize_t vcfs_fs_listxattr(struct vcfs_fs *fs, uint64_t ino, char *list, size_t size);
int vcfs_fs_removexattr(struct vcfs_fs *fs, uint64_t ino, const char *name);

int vcfs_fs_statfs(struct vcfs_fs *fs, struct vcfs_statfs *out);

/*
 * Cluster-wide byte-range locks (fcntl POSIX and OFD locks, flock), kept in
 * the inode's on-disk lock table (lock/rlock.h has the protocol): they work
 * whatever lock record mode other hosts hold the inode in.  owner is the
 * kernel's lock owner id; type F_RDLCK, F_WRLCK or F_UNLCK; end inclusive,
 * UINT64_MAX for "to EOF".  A read-only mount has no heartbeat slot and
 * cannot hold cluster locks: getlk and setlk give -ENOLCK, unlock_owner 0.
 */
struct vcfs_range_lock {
	uint64_t owner, start, end;
	uint32_t pid;		/* in: the locker; out (getlk): the holder's pid */
	int type;		/* F_RDLCK, F_WRLCK, F_UNLCK */
	int flock;		/* 1: an flock(2) lock (never conflicts with fcntl) */
	int remote;		/* out (getlk): held by another host; pid is then
				 * that host's pid, meaningless here */
	uint32_t slot;		/* out (getlk): the holder's heartbeat slot */
};
/* F_GETLK: lk in; out the first conflicting lock, or type F_UNLCK. */
int vcfs_fs_getlk(struct vcfs_fs *fs, uint64_t ino, struct vcfs_range_lock *lk);
/* F_SETLK: 0, -EAGAIN if another owner's lock conflicts, -ENOLCK if the
 * inode's table is full, EIO-class errors when fenced. */
int vcfs_fs_setlk(struct vcfs_fs *fs, uint64_t ino, const struct vcfs_range_lock *lk);
/* Drop this host's locks of owner on ino (flock: -1 both kinds, 0 fcntl,
 * 1 flock; owner UINT64_MAX: every owner of this host).  Returns how many
 * locks this host still holds on ino, or a negative error. */
int vcfs_fs_unlock_owner(struct vcfs_fs *fs, uint64_t ino, uint64_t owner, int flock);

/*
 * Coherence hook for the FUSE daemon: called (from any thread) when an inode's
 * cached attributes or data may be stale because another host changed it or a
 * lock that justified a cache was lost; the daemon invalidates the kernel's cache.
 */
typedef void (*vcfs_inval_fn)(void *arg, uint64_t ino);
void vcfs_fs_set_inval(struct vcfs_fs *fs, vcfs_inval_fn fn, void *arg);

#endif
