/*
 * vcfs-fuse.c - the per-host daemon: mounts a vcfs datastore through the
 * libfuse3 low-level API.  A thin front end: every request is one call into
 * fs/fs.h and one reply (passthrough_ll's shape).
 *
 *   vcfs-fuse [-f] [-d] [-o host=NAME,ro,io_timeout=MS,...] URI MOUNTPOINT
 *
 * Mapping.  FUSE node ids ARE vcfs inode numbers (root 1 == FUSE_ROOT_ID), so
 * the daemon keeps no table and lookup counts need no bookkeeping: forget
 * only acknowledges.  The fs layer keeps what must live while a file is open
 * (its lock record) in struct vcfs_file, carried in fi->fh.
 *
 * Caching across hosts.  Attributes and entries are cached by the kernel for
 * VCFS_FUSE_TIMEOUT (1 s): another host's create, rename or unlink shows up
 * here within a second.  Files opened for writing use direct I/O (no page
 * cache), so every write reaches the datastore and another host that opens
 * the file next (close-to-open) reads it; read-only opens use the page cache,
 * which the kernel drops at every open (keep_cache = 0) and which the fs layer
 * invalidates through the inval hook when a lock that justified it is lost.
 * Negative lookups are never cached (another host may create the name).
 *
 * Permissions are checked by the kernel (default_permissions); the daemon
 * applies the setgid-directory rule at creation.  Errors: -errno passes
 * through; a fenced host answers EIO to everything (and logged why once);
 * other vcfs codes become EIO with a log line naming them.
 */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <unistd.h>
#include "common/log.h"
#include "common/vcfs_err.h"
#include "disk/disk.h"
#include "fs/fs.h"

_Static_assert(FUSE_ROOT_ID == 1, "vcfs's root inode is FUSE's root node id");

#define VCFS_FUSE_TIMEOUT 1.0
#define VCFS_FUSE_MAX_IO (1u << 20)

static struct vcfs_fs *g_fs;
static struct fuse_session *g_se;

/* Map a vcfs return code to the errno FUSE sends back. */
static int to_errno(int rc, const char *op)
{
	if (rc >= 0)
		return 0;
	rc = -rc;
	if (rc < VCFS_ERR_BASE)
		return rc;
	if (rc == VCFS_EFENCED) {
		static int said;
		if (!said++)
			vcfs_err("%s: %s; every operation on this mount now fails with EIO "
				 "(unmount and mount again once the storage path is back)", op,
				 vcfs_strerror(-rc));
		return EIO;
	}
	vcfs_err("%s: %s", op, vcfs_strerror(-rc));
	return EIO;
}

static void fill_stat(const struct vcfs_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_rdev = a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = 4096;
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

static void reply_entry(fuse_req_t req, int rc, const struct vcfs_attr *a, const char *op)
{
	struct fuse_entry_param e;

	if (rc) {
		fuse_reply_err(req, to_errno(rc, op));
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = a->ino;
	e.generation = a->generation;
	fill_stat(a, &e.attr);
	e.attr_timeout = VCFS_FUSE_TIMEOUT;
	e.entry_timeout = VCFS_FUSE_TIMEOUT;
	fuse_reply_entry(req, &e);
}

/* The setgid-directory rule: new objects take the directory's group, and new
 * directories inherit the bit. */
static void creation_ids(fuse_req_t req, fuse_ino_t parent, uint32_t *mode, uint32_t *uid,
			 uint32_t *gid)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct vcfs_attr pa;

	*uid = c->uid;
	*gid = c->gid;
	if (vcfs_fs_getattr(g_fs, parent, &pa) == 0 && (pa.mode & S_ISGID)) {
		*gid = pa.gid;
		if (S_ISDIR(*mode))
			*mode |= S_ISGID;
	}
}

static void op_init(void *ud, struct fuse_conn_info *conn)
{
	(void)ud;
	conn->max_write = VCFS_FUSE_MAX_IO;
	conn->max_read = VCFS_FUSE_MAX_IO;
	conn->max_readahead = VCFS_FUSE_MAX_IO;
	conn->max_background = 64;
	conn->time_gran = 1;
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* the page cache of read-only opens is dropped explicitly */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* The kernel clears set-user/group-ID itself on truncate and chown
	 * (as a mode change in setattr); writes are handled in op_write. */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vcfs_attr a;
	int rc = vcfs_fs_lookup(g_fs, parent, name, &a);

	if (rc == -ENOENT) {
		/* entry_timeout 0: another host may create the name any time */
		fuse_reply_err(req, ENOENT);
		return;
	}
	reply_entry(req, rc, &a, "lookup");
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	(void)count;
	(void)f;
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vcfs_attr a;
	struct stat st;
	int rc;

	(void)fi;
	rc = vcfs_fs_getattr(g_fs, ino, &a);
	if (rc) {
		fuse_reply_err(req, to_errno(rc, "getattr"));
		return;
	}
	fill_stat(&a, &st);
	fuse_reply_attr(req, &st, VCFS_FUSE_TIMEOUT);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct vcfs_attr in, out;
	unsigned mask = 0;
	struct stat st;
	int rc;

	/*
	 * ftruncate() arrives with fi; fs.h changes the size by inode either
	 * way (this host's open lock is per inode, so a truncate through an
	 * open handle and one by path take the same route).  UTIME_NOW comes
	 * as the *_NOW bits, taken from the fs layer's clock.
	 */
	(void)fi;
	memset(&in, 0, sizeof(in));
	in.mode = attr->st_mode;
	in.uid = attr->st_uid;
	in.gid = attr->st_gid;
	in.size = (uint64_t)attr->st_size;
	in.atime = attr->st_atim;
	in.mtime = attr->st_mtim;
	in.ctime = attr->st_ctim;
	if (to_set & FUSE_SET_ATTR_MODE) mask |= VCFS_SET_MODE;
	if (to_set & FUSE_SET_ATTR_UID) mask |= VCFS_SET_UID;
	if (to_set & FUSE_SET_ATTR_GID) mask |= VCFS_SET_GID;
	if (to_set & FUSE_SET_ATTR_SIZE) mask |= VCFS_SET_SIZE;
	if (to_set & FUSE_SET_ATTR_ATIME) mask |= VCFS_SET_ATIME;
	if (to_set & FUSE_SET_ATTR_MTIME) mask |= VCFS_SET_MTIME;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) mask |= VCFS_SET_ATIME_NOW;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) mask |= VCFS_SET_MTIME_NOW;
	if (to_set & FUSE_SET_ATTR_CTIME) mask |= VCFS_SET_CTIME;
	rc = vcfs_fs_setattr(g_fs, ino, &in, mask, &out);
	if (rc) {
		fuse_reply_err(req, to_errno(rc, "setattr"));
		return;
	}
	fill_stat(&out, &st);
	fuse_reply_attr(req, &st, VCFS_FUSE_TIMEOUT);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	int rc = vcfs_fs_readlink(g_fs, ino, buf, sizeof(buf));

	if (rc < 0) {
		fuse_reply_err(req, to_errno(rc, "readlink"));
		return;
	}
	buf[sizeof(buf) - 1] = 0;
	fuse_reply_readlink(req, buf);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	struct vcfs_attr a;
	uint32_t m = mode, uid, gid;

	creation_ids(req, parent, &m, &uid, &gid);
	reply_entry(req, vcfs_fs_mknod(g_fs, parent, name, m, rdev, uid, gid, &a), &a, "mknod");
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct vcfs_attr a;
	uint32_t m = mode | S_IFDIR, uid, gid;

	creation_ids(req, parent, &m, &uid, &gid);
	reply_entry(req, vcfs_fs_mkdir(g_fs, parent, name, m & ~(uint32_t)S_IFMT, uid, gid, &a),
		    &a, "mkdir");
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct vcfs_attr a;
	uint32_t m = S_IFLNK | 0777, uid, gid;

	creation_ids(req, parent, &m, &uid, &gid);
	reply_entry(req, vcfs_fs_symlink(g_fs, parent, name, link, uid, gid, &a), &a, "symlink");
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct vcfs_attr a;

	reply_entry(req, vcfs_fs_link(g_fs, ino, newparent, newname, &a), &a, "link");
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, to_errno(vcfs_fs_unlink(g_fs, parent, name), "unlink"));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, to_errno(vcfs_fs_rmdir(g_fs, parent, name), "rmdir"));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	fuse_reply_err(req, to_errno(vcfs_fs_rename(g_fs, parent, name, newparent, newname,
						     flags), "rename"));
}

/*
 * What fi->fh carries: the fs layer's open file, and whether the file had
 * set-user-ID (or group-executable set-group-ID) at open.  A write by an
 * unprivileged caller must clear those bits (as write(2) on a local
 * filesystem does).  The kernel asks the daemon to do it for direct I/O
 * writes, but libfuse 3.14 does not pass that flag on, so the daemon does it
 * on the first such write; a chmod u+s made while the file stays open is not
 * seen (the bit is then cleared at the next open's first write).
 */
struct vfh {
	struct vcfs_file *f;
	int killpriv;		/* atomic: 1 until the bits were checked */
};

static uint32_t privs_to_kill(uint32_t mode)
{
	uint32_t kill = mode & S_ISUID;

	if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		kill |= S_ISGID;
	return S_ISREG(mode) ? kill : 0;
}

static int open_handle(struct vcfs_file *f, uint32_t mode, struct fuse_file_info *fi)
{
	struct vfh *h = malloc(sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->f = f;
	h->killpriv = privs_to_kill(mode) != 0;
	fi->fh = (uint64_t)(uintptr_t)h;
	return 0;
}

static void set_open_flags(struct fuse_file_info *fi)
{
	/*
	 * Writers get direct I/O: no page cache, so every write reaches the
	 * datastore before it returns, and nothing dirty sits in this host's
	 * cache when another host opens the file next (close-to-open).  That
	 * costs shared writable mmap (ENODEV), which VM disks never need;
	 * QEMU cache=none and O_DIRECT dd work.  Read-only opens keep the page
	 * cache (mmap, exec, readahead) but drop it at every open, and O_DIRECT
	 * readers bypass it as they asked.
	 */
	fi->direct_io = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_DIRECT);
	fi->keep_cache = 0;
}

static struct vfh *vfh(struct fuse_file_info *fi)
{
	return (struct vfh *)(uintptr_t)fi->fh;
}

static struct vcfs_file *fh(struct fuse_file_info *fi)
{
	return vfh(fi)->f;
}

static int release_handle(struct fuse_file_info *fi)
{
	struct vfh *h = vfh(fi);
	int rc = vcfs_file_release(h->f);

	free(h);
	fi->fh = 0;
	return rc;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vcfs_file *f;
	struct vcfs_attr a;
	int rc = vcfs_fs_open(g_fs, ino, fi->flags, 0, &f);

	if (rc) {
		fuse_reply_err(req, to_errno(rc, "open"));
		return;
	}
	if (vcfs_fs_getattr(g_fs, ino, &a))
		a.mode = S_IFREG | S_ISUID;	/* unknown: check at the first write */
	rc = open_handle(f, a.mode, fi);
	if (rc) {
		vcfs_file_release(f);
		fuse_reply_err(req, -rc);
		return;
	}
	set_open_flags(fi);
	if (fuse_reply_open(req, fi) == -ENOENT)
		release_handle(fi);	/* the opener was interrupted */
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	struct vcfs_attr a;
	struct vcfs_file *f;
	uint32_t m = mode, uid, gid;
	int rc;

	creation_ids(req, parent, &m, &uid, &gid);
	rc = vcfs_fs_create(g_fs, parent, name, m, uid, gid, fi->flags, &a, &f);
	if (rc) {
		fuse_reply_err(req, to_errno(rc, "create"));
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = a.ino;
	e.generation = a.generation;
	fill_stat(&a, &e.attr);
	e.attr_timeout = VCFS_FUSE_TIMEOUT;
	e.entry_timeout = VCFS_FUSE_TIMEOUT;
	rc = open_handle(f, a.mode, fi);
	if (rc) {
		vcfs_file_release(f);
		fuse_reply_err(req, -rc);
		return;
	}
	set_open_flags(fi);
	if (fuse_reply_create(req, &e, fi) == -ENOENT)
		release_handle(fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	void *buf = NULL;
	ssize_t n;

	(void)ino;
	if (size > VCFS_FUSE_MAX_IO)
		size = VCFS_FUSE_MAX_IO;
	if (posix_memalign(&buf, 4096, size ? size : 1)) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = vcfs_file_read(fh(fi), (uint64_t)off, buf, size);
	if (n < 0)
		fuse_reply_err(req, to_errno((int)n, "read"));
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

/* An unprivileged write clears set-user-ID and set-group-ID (see struct vfh). */
static void kill_privs(fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vcfs_attr a, in, out;
	uint32_t kill;
	int rc;

	__atomic_store_n(&vfh(fi)->killpriv, 0, __ATOMIC_RELAXED);
	rc = vcfs_fs_getattr(g_fs, ino, &a);
	if (rc || !(kill = privs_to_kill(a.mode)))
		return;
	memset(&in, 0, sizeof(in));
	in.mode = a.mode & ~kill;
	rc = vcfs_fs_setattr(g_fs, ino, &in, VCFS_SET_MODE, &out);
	if (rc)
		vcfs_warn("inode %llu: clearing set-ID bits after a write: %s",
			  (unsigned long long)ino, vcfs_strerror(rc));
	else
		fuse_lowlevel_notify_inval_inode(g_se, ino, -1, 0);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	ssize_t n;

	n = vcfs_file_write(fh(fi), (uint64_t)off, buf, size);
	if (n > 0 && __atomic_load_n(&vfh(fi)->killpriv, __ATOMIC_RELAXED) &&
	    fuse_req_ctx(req)->uid != 0)
		kill_privs(ino, fi);
	if (n < 0)
		fuse_reply_err(req, to_errno((int)n, "write"));
	else
		fuse_reply_write(req, (size_t)n);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fuse_reply_err(req, to_errno(release_handle(fi), "release"));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	fuse_reply_err(req, to_errno(vcfs_file_fsync(fh(fi), datasync), "fsync"));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	(void)ino;
	fuse_reply_err(req, to_errno(vcfs_file_fallocate(fh(fi), mode, (uint64_t)off,
							  (uint64_t)len), "fallocate"));
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	uint64_t out;
	int rc;

	(void)ino;
	rc = vcfs_file_lseek(fh(fi), (uint64_t)off, whence, &out);
	if (rc)
		fuse_reply_err(req, to_errno(rc, "lseek"));
	else
		fuse_reply_lseek(req, (off_t)out);
}

struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, pos;
};

static int fill_dir(void *arg, const char *name, uint64_t ino, uint32_t type,
		    uint64_t next_cookie)
{
	struct dirbuf *db = arg;
	struct stat st;
	size_t n;

	memset(&st, 0, sizeof(st));
	st.st_ino = ino;
	st.st_mode = type << 12;
	n = fuse_add_direntry(db->req, db->buf + db->pos, db->size - db->pos, name, &st,
			      (off_t)next_cookie);
	if (n > db->size - db->pos)
		return 1;	/* full: the entry is not consumed */
	db->pos += n;
	return 0;
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct dirbuf db = { .req = req, .size = size };
	int rc;

	(void)fi;
	db.buf = malloc(size);
	if (!db.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = vcfs_fs_readdir(g_fs, ino, (uint64_t)off, fill_dir, &db);
	if (rc < 0)
		fuse_reply_err(req, to_errno(rc, "readdir"));
	else
		fuse_reply_buf(req, db.buf, db.pos);
	free(db.buf);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct vcfs_statfs s;
	struct statvfs st;
	int rc;

	(void)ino;
	rc = vcfs_fs_statfs(g_fs, &s);
	if (rc) {
		fuse_reply_err(req, to_errno(rc, "statfs"));
		return;
	}
	memset(&st, 0, sizeof(st));
	st.f_bsize = s.bsize;
	st.f_frsize = s.bsize;
	st.f_blocks = s.blocks;
	st.f_bfree = s.bfree;
	st.f_bavail = s.bfree;
	st.f_files = s.files;
	st.f_ffree = s.ffree;
	st.f_favail = s.ffree;
	st.f_namemax = s.namemax;
	fuse_reply_statfs(req, &st);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	fuse_reply_err(req, to_errno(vcfs_fs_setxattr(g_fs, ino, name, value, size, flags),
				     "setxattr"));
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	ssize_t n;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = vcfs_fs_getxattr(g_fs, ino, name, buf, size);
	if (n < 0)
		fuse_reply_err(req, to_errno((int)n, "getxattr"));
	else if (!size)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	ssize_t n;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = vcfs_fs_listxattr(g_fs, ino, buf, size);
	if (n < 0)
		fuse_reply_err(req, to_errno((int)n, "listxattr"));
	else if (!size)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, to_errno(vcfs_fs_removexattr(g_fs, ino, name), "removexattr"));
}

static const struct fuse_lowlevel_ops vcfs_ops = {
	.init		= op_init,
	.lookup		= op_lookup,
	.forget		= op_forget,
	.forget_multi	= op_forget_multi,
	.getattr	= op_getattr,
	.setattr	= op_setattr,
	.readlink	= op_readlink,
	.mknod		= op_mknod,
	.mkdir		= op_mkdir,
	.symlink	= op_symlink,
	.link		= op_link,
	.unlink		= op_unlink,
	.rmdir		= op_rmdir,
	.rename		= op_rename,
	.open		= op_open,
	.create		= op_create,
	.read		= op_read,
	.write		= op_write,
	.flush		= op_flush,
	.release	= op_release,
	.fsync		= op_fsync,
	.fallocate	= op_fallocate,
	.lseek		= op_lseek,
	.readdir	= op_readdir,
	.statfs		= op_statfs,
	.setxattr	= op_setxattr,
	.getxattr	= op_getxattr,
	.listxattr	= op_listxattr,
	.removexattr	= op_removexattr,
};

/* Called by the fs layer when an inode's cached state may be stale. */
static void inval_inode(void *arg, uint64_t ino)
{
	(void)arg;
	if (g_se)
		fuse_lowlevel_notify_inval_inode(g_se, ino, 0, 0);
}

static int g_syslog;
static volatile int g_stderr_open = 1;	/* until the daemon detaches */

/*
 * The daemon's log: everything to syslog; while the starting process still
 * waits, errors and warnings also reach the user's terminal.
 */
static void log_to_syslog(enum vcfs_log_level lvl, const char *msg, void *arg)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

	(void)arg;
	syslog(prio[lvl], "%s", msg);
	if (g_stderr_open && lvl <= VCFS_LOG_WARN)
		fprintf(stderr, "vcfs-fuse: %s\n", msg);
}

struct cli {
	char *uri, *mountpoint, *host;
	unsigned io_timeout;
	int ro, foreground, debug, nonopt;
};

enum { KEY_HELP, KEY_FG, KEY_DEBUG, KEY_RO };

static const struct fuse_opt cli_spec[] = {
	{ "host=%s", offsetof(struct cli, host), 0 },
	{ "io_timeout=%u", offsetof(struct cli, io_timeout), 0 },
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("-f", KEY_FG),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_END
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vcfs-fuse [-f] [-d] [-o OPTIONS] URI MOUNTPOINT\n"
		"  -f                 stay in the foreground (log to stderr)\n"
		"  -d                 FUSE debug output (implies -f)\n"
		"  -o host=NAME       the name other hosts see (default: the hostname)\n"
		"  -o ro              mount read-only (no heartbeat slot, no writes)\n"
		"  -o io_timeout=MS   I/O timeout for the backend (default: the datastore's T)\n"
		"  -o OPT             other FUSE and mount options are passed through\n"
		"See vcfs-fuse(8).\n");
}

static int cli_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cli *c = data;

	(void)outargs;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (c->nonopt == 0) {
			c->uri = strdup(arg);
			c->nonopt++;
			return 0;
		}
		if (c->nonopt == 1) {
			struct stat st;

			c->mountpoint = realpath(arg, NULL);
			if (!c->mountpoint || stat(c->mountpoint, &st)) {
				fprintf(stderr, "vcfs-fuse: mount point %s: %s\n", arg, strerror(errno));
				exit(1);
			}
			if (!S_ISDIR(st.st_mode)) {
				fprintf(stderr, "vcfs-fuse: mount point %s: %s\n", arg,
					strerror(ENOTDIR));
				exit(1);
			}
			c->nonopt++;
			return 0;
		}
		fprintf(stderr, "vcfs-fuse: unexpected argument '%s'\n", arg);
		return -1;
	case KEY_RO:
		c->ro = 1;
		return 1;	/* also a kernel mount option */
	case KEY_FG:
		c->foreground = 1;
		return 0;
	case KEY_DEBUG:
		c->debug = 1;
		c->foreground = 1;
		return 1;
	case KEY_HELP:
		usage(stdout);
		exit(0);
	}
	return 1;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct vcfs_mount_opts mo = { 0 };
	struct fuse_loop_config *lc = NULL;
	struct cli c = { 0 };
	char fsname[300], *red;
	int rc, ret = 1, ready[2] = { -1, -1 };

	if (fuse_opt_parse(&args, &c, cli_spec, cli_proc) == -1)
		return 1;
	if (!c.uri || !c.mountpoint) {
		usage(stderr);
		return 1;
	}
	red = vcfs_uri_redact(c.uri);
	/*
	 * Daemonise BEFORE mounting: the heartbeat renewal and monitor threads
	 * that vcfs_fs_mount starts would not survive a later fork().  The
	 * parent waits on a pipe for the child's verdict, so a wrong URI or a
	 * full cluster still reaches the user's terminal and exit status.
	 */
	if (!c.foreground) {
		pid_t pid;
		char verdict = 1;

		if (pipe(ready) || (pid = fork()) < 0) {
			perror("vcfs-fuse: fork");
			goto out_args;
		}
		if (pid > 0) {
			close(ready[1]);
			if (read(ready[0], &verdict, 1) != 1)
				verdict = 1;
			_exit(verdict ? 1 : 0);
		}
		close(ready[0]);
		setsid();
		openlog("vcfs-fuse", LOG_PID, LOG_DAEMON);
		vcfs_log_set_sink(log_to_syslog, NULL);
		g_syslog = 1;
	}

	/* Mount the datastore first: a wrong URI or a full cluster is reported
	 * to the user before anything is mounted or daemonised. */
	mo.host_name = c.host;
	mo.read_only = c.ro;
	mo.io_timeout_ms = c.io_timeout;
	rc = vcfs_fs_mount(c.uri, &mo, &g_fs);
	if (rc) {
		fprintf(stderr, "vcfs-fuse: cannot mount %s: %s\n", red ? red : "datastore",
			vcfs_strerror(rc));
		goto out_args;
	}

	/* fsname shows in /proc/mounts and df: the URI without its password,
	 * and without commas, which would split the option list */
	for (char *p = red; p && *p; p++)
		if (*p == ',')
			*p = '_';
	snprintf(fsname, sizeof(fsname), "-ofsname=%s,subtype=vcfs,default_permissions,max_read=1048576%s",
		 red ? red : "vcfs", getuid() == 0 ? ",allow_other" : "");
	fuse_opt_add_arg(&args, fsname);

	g_se = fuse_session_new(&args, &vcfs_ops, sizeof(vcfs_ops), NULL);
	if (!g_se)
		goto out_fs;
	if (fuse_set_signal_handlers(g_se))
		goto out_session;
	if (fuse_session_mount(g_se, c.mountpoint)) {
		fprintf(stderr, "vcfs-fuse: cannot mount on %s\n", c.mountpoint);
		goto out_signals;
	}
	vcfs_fs_set_inval(g_fs, inval_inode, NULL);
	vcfs_info("%s mounted on %s", red ? red : "datastore", c.mountpoint);
	if (!c.foreground) {
		char ok = 0;
		int nul = open("/dev/null", O_RDWR);

		if (write(ready[1], &ok, 1) != 1)
			vcfs_warn("the starting process went away");
		close(ready[1]);
		ready[1] = -1;
		if (chdir("/"))
			vcfs_warn("chdir /: %s", strerror(errno));
		g_stderr_open = 0;
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(nul, 2);
			if (nul > 2)
				close(nul);
		}
	}

	lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(lc, 16);
	fuse_loop_cfg_set_idle_threads(lc, 4);
	ret = fuse_session_loop_mt(g_se, lc) ? 1 : 0;
	fuse_loop_cfg_destroy(lc);

	vcfs_fs_set_inval(g_fs, NULL, NULL);
	fuse_session_unmount(g_se);
out_signals:
	fuse_remove_signal_handlers(g_se);
out_session:
	fuse_session_destroy(g_se);
	g_se = NULL;
out_fs:
	rc = vcfs_fs_unmount(g_fs);
	if (rc) {
		vcfs_err("unmount of %s: %s", red ? red : "datastore", vcfs_strerror(rc));
		ret = 1;
	}
out_args:
	if (ready[1] >= 0) {
		char fail = 1;	/* tell the waiting parent */
		if (write(ready[1], &fail, 1) != 1)
			ret = 1;
	}
	free(red);
	free(c.uri);
	free(c.mountpoint);
	free(c.host);
	fuse_opt_free_args(&args);
	if (g_syslog)
		closelog();
	return ret;
}
