/*
 * vcfs-fuse.c - the per-host daemon: mounts a vcfs datastore through the
 * libfuse3 low-level API.  A thin front end: every request is one call into
 * fs/fs.h and one reply (passthrough_ll's shape).
 *
 *   vcfs-fuse [-f] [-d] [-o host=NAME,ro,io_timeout=MS,...] URI MOUNTPOINT
 *
 * Mapping.  FUSE node ids ARE vcfs inode numbers (root 1 == FUSE_ROOT_ID).
 * The fs layer keeps what must live while a file is open (its lock record)
 * in struct vcfs_file, carried in fi->fh.  The one table the daemon keeps
 * (gens, counted by lookups and forgets) is the generation of the inode each
 * node id stands for in the kernel: another host may unlink a name and
 * create a file that reuses its inode number while the kernel still has the
 * old entry (entry_timeout, or between its lookup and open), so an open asks
 * for that generation (vcfs_fs_open_gen) and gets ESTALE, on which the kernel
 * looks the name up again, rather than the other file.
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
#include <linux/fuse.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <semaphore.h>
#include <time.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <unistd.h>
#include "common/clock.h"
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

/* ---- node id -> generation the kernel has (see Mapping) ---- */

struct gen_ent {
	uint64_t ino, gen, nlookup;
	struct gen_ent *next;
};
#define GEN_BUCKETS 4096
static struct gen_ent *gens[GEN_BUCKETS];
static pthread_mutex_t gens_mu = PTHREAD_MUTEX_INITIALIZER;

static struct gen_ent **gen_slot(uint64_t ino)
{
	struct gen_ent **p = &gens[ino % GEN_BUCKETS];

	while (*p && (*p)->ino != ino)
		p = &(*p)->next;
	return p;
}

/* The kernel is told of ino at gen (one lookup more); before the reply. */
static void gen_note(uint64_t ino, uint64_t gen)
{
	struct gen_ent **p, *e;

	pthread_mutex_lock(&gens_mu);
	p = gen_slot(ino);
	e = *p;
	if (!e && (e = calloc(1, sizeof(*e))) != NULL) {
		e->ino = ino;
		*p = e;
	}
	if (e) {
		e->gen = gen;
		e->nlookup++;
	}
	pthread_mutex_unlock(&gens_mu);
	/* out of memory: no entry, the open checks nothing (as before) */
}

static void gen_forget(uint64_t ino, uint64_t n)
{
	struct gen_ent **p, *e;

	pthread_mutex_lock(&gens_mu);
	p = gen_slot(ino);
	e = *p;
	if (e && (e->nlookup <= n || !(e->nlookup -= n))) {
		*p = e->next;
		free(e);
	}
	pthread_mutex_unlock(&gens_mu);
}

/* The generation the kernel's node ino stands for; 0: not known (any). */
static uint64_t gen_of(uint64_t ino)
{
	struct gen_ent *e;
	uint64_t g;

	pthread_mutex_lock(&gens_mu);
	e = *gen_slot(ino);
	g = e ? e->gen : 0;
	pthread_mutex_unlock(&gens_mu);
	return g;
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
	gen_note(a->ino, a->generation);
	if (fuse_reply_entry(req, &e))
		gen_forget(a->ino, 1);	/* the kernel did not take it */
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
	/* byte-range locks and flock go to the daemon (cluster-wide) */
	if (conn->capable & FUSE_CAP_POSIX_LOCKS)
		conn->want |= FUSE_CAP_POSIX_LOCKS;
	if (conn->capable & FUSE_CAP_FLOCK_LOCKS)
		conn->want |= FUSE_CAP_FLOCK_LOCKS;
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
	gen_forget(ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	for (size_t i = 0; i < count; i++)
		gen_forget(f[i].ino, f[i].nlookup);
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
	/* lock owners that set locks through this handle (g_lk_mu) */
	struct lk_owner { uint64_t owner; int flushed; } *own;
	uint32_t nown, capown;
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
	memset(h, 0, sizeof(*h));
	h->f = f;
	h->killpriv = privs_to_kill(mode) != 0;
	fi->fh = (uint64_t)(uintptr_t)h;
	return 0;
}

static __thread int t_parallel_dio;

static void set_open_flags(struct fuse_file_info *fi)
{
	/*
	 * Writers get direct I/O: no page cache, so every write reaches the
	 * datastore before it returns, and nothing dirty sits in this host's
	 * cache when another host opens the file next (close-to-open).  That
	 * costs shared writable mmap (ENODEV), which VM disks never need;
	 * QEMU cache=none and O_DIRECT dd work.  Read-only opens keep the page
	 * cache (mmap, exec, readahead) but drop it at every open, and O_DIRECT
	 * readers bypass it as they asked.  Every open of a multi-writer file
	 * (user.vcfs.multiwriter) is direct too: other hosts write it in place
	 * while we have it open, with nothing to tell our page cache.
	 */
	fi->direct_io = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_DIRECT) ||
			vcfs_file_shared(((struct vfh *)(uintptr_t)fi->fh)->f);
	fi->keep_cache = 0;
	t_parallel_dio = fi->direct_io;
}

/*
 * Parallel direct writes.  Unless an open's reply carries
 * FOPEN_PARALLEL_DIRECT_WRITES (Linux 6.2+), the kernel takes the file's
 * inode lock exclusively around every direct write, so synchronous writers
 * to ONE file (QEMU aio=threads, 16 psync threads) run one at a time.  The
 * daemon is safe with them (the fast path shares ip->map_rw; fills run as
 * ops): libaio already brings it concurrent writes of one file.  libfuse
 * 3.14's fuse_file_info has no field for the flag (3.15 added
 * parallel_direct_writes), so replies go out through io_writev, which sets
 * the bit in the fuse_open_out of a successful open or create reply that
 * set_open_flags marked in this thread (t_parallel_dio).  Writes that extend
 * the file or append still take the lock exclusively (the kernel decides).
 */
static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	if (t_parallel_dio) {
		const struct fuse_out_header *oh = iov[0].iov_base;

		t_parallel_dio = 0;
		if (count == 2 && oh->error == 0 &&
		    (iov[1].iov_len == sizeof(struct fuse_open_out) ||
		     iov[1].iov_len == sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out))) {
			struct fuse_open_out *o = (struct fuse_open_out *)(void *)
				((char *)iov[1].iov_base + iov[1].iov_len - sizeof(*o));
			o->open_flags |= FOPEN_PARALLEL_DIRECT_WRITES;
		}
	}
	return writev(fd, iov, count);
}

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	return read(fd, buf, len);
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

	free(h->own);
	free(h);
	fi->fh = 0;
	return rc;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vcfs_file *f;
	struct vcfs_attr a;
	int rc = vcfs_fs_open_gen(g_fs, ino, gen_of(ino), fi->flags, 0, &f);

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
	rc = fuse_reply_open(req, fi);
	t_parallel_dio = 0;
	if (rc == -ENOENT)
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
	gen_note(a.ino, a.generation);
	rc = fuse_reply_create(req, &e, fi);
	t_parallel_dio = 0;
	if (rc == -ENOENT) {
		gen_forget(a.ino, 1);
		release_handle(fi);
	}
}

/*
 * Asynchronous READs and WRITEs.  A request that vcfs_file_submit takes (the
 * plain case: one mapped block inside the size, see fs.h) is answered by
 * aio_reply from the disk layer's completion thread, and the worker goes back
 * to /dev/fuse at once instead of sleeping in pread/pwrite: the daemon's
 * cost per 4 KiB request was mostly that sleep and wake-up (measured: with
 * writes answered at once and never written, a QD16 fio job ran 150-200k
 * IOPS; with a blocking pwrite per request, 40-47k).  Anything else runs
 * synchronously in the worker, as before.
 *
 * A WRITE's data stays where the worker received it: the request takes the
 * worker's receive buffer (struct xfer.own) and the worker goes on with a
 * spare one (iobuf_get); aio_reply puts it back.  No copy, and 4 KiB-aligned
 * (see the request loop below).  A READ's buffer is its own.  g_xfers counts
 * requests in flight: main waits for 0 before the session goes.
 */
struct xfer {
	struct vcfs_file_aio a;
	fuse_req_t req;
	void *own;	/* WRITE: the receive buffer the data lies in; READ: buf */
};

#define VCFS_FUSE_RECV_SIZE (VCFS_FUSE_MAX_IO + 2 * 4096u)	/* >= se->bufsize */
#define VCFS_FUSE_WORKERS 16
#define IOBUF_SPARE 32	/* buffers for requests in flight, beyond the workers' */

/*
 * I/O buffers (the workers' receive buffers, the spares a WRITE swaps in, READ
 * buffers) come from one region of transparent huge pages (MADV_HUGEPAGE).
 * The kernel walks and pins a request's buffer twice (the copy through
 * /dev/fuse, then the O_DIRECT request to the backing file), and the backing
 * device gets one segment per physically contiguous run: over 4 KiB pages a
 * 1 MiB request was 256 of each.  Measured on 2 vCPUs (fio, 1 MiB, O_DIRECT,
 * alternating runs): QD1 writes 1.3 -> 1.6-2.0 GB/s, QD4 reads 1.0-1.2 ->
 * 1.55-1.87 GB/s with half the daemon's CPU; 4 KiB requests unchanged.
 * The region holds IOBUF_N buffers, about 50 MiB of address space, resident
 * as it is used and then kept (daemon RSS measured: 10 MB idle, 47 MB during
 * and after 1 MiB QD16 writes, which 4 KiB pages also peaked at).  A
 * buffer outside it (the region could not be mapped, or every buffer is in
 * use) comes from posix_memalign and goes back to free().
 */
#define IOBUF_SIZE (VCFS_FUSE_RECV_SIZE + 4096u)
#define IOBUF_N (VCFS_FUSE_WORKERS + IOBUF_SPARE)
#define IOBUF_HUGE (2u << 20)

static __thread void **t_rbuf;		/* the worker's receive buffer slot */
static unsigned g_xfers;		/* atomic */
static pthread_mutex_t iobuf_mu = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *iobuf_base;		/* the region, IOBUF_HUGE-aligned */
static size_t iobuf_len;
static void *iobuf_free[IOBUF_N];
static unsigned iobuf_nfree;

static void iobuf_init(void)
{
	size_t len = ((size_t)IOBUF_N * IOBUF_SIZE + IOBUF_HUGE - 1) & ~(size_t)(IOBUF_HUGE - 1);
	uint8_t *p, *a;
	unsigned i;

	p = mmap(NULL, len + IOBUF_HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		vcfs_warn("mapping %zu MiB of I/O buffers: %s (using malloc'd ones)",
			  len >> 20, strerror(errno));
		return;
	}
	a = (uint8_t *)(((uintptr_t)p + IOBUF_HUGE - 1) & ~(uintptr_t)(IOBUF_HUGE - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	if (a + len < p + len + IOBUF_HUGE)
		munmap(a + len, (size_t)(p + len + IOBUF_HUGE - (a + len)));
	/* advice only: without THP (disabled, or "never") the region is
	 * ordinary pages and everything still works */
	(void)madvise(a, len, MADV_HUGEPAGE);
	iobuf_base = a;
	iobuf_len = len;
	for (i = 0; i < IOBUF_N; i++)
		iobuf_free[iobuf_nfree++] = a + (size_t)(IOBUF_N - 1 - i) * IOBUF_SIZE;
}

static void iobuf_fini(void)
{
	if (iobuf_base)
		munmap(iobuf_base, iobuf_len);
	iobuf_base = NULL;
	iobuf_nfree = 0;
}

/* A 4 KiB-aligned buffer of IOBUF_SIZE bytes from the region, or NULL. */
static void *iobuf_pooled(void)
{
	void *b = NULL;

	pthread_mutex_lock(&iobuf_mu);
	if (iobuf_nfree)
		b = iobuf_free[--iobuf_nfree];
	pthread_mutex_unlock(&iobuf_mu);
	return b;
}

/* A 4 KiB-aligned buffer of at least size bytes (<= IOBUF_SIZE), or NULL. */
static void *iobuf_get(size_t size)
{
	void *b = iobuf_pooled();

	if (!b && posix_memalign(&b, 4096, size ? size : 1))
		b = NULL;
	return b;
}

static void iobuf_put(void *b)
{
	if (b && iobuf_base && (uint8_t *)b >= iobuf_base &&
	    (uint8_t *)b < iobuf_base + iobuf_len) {
		pthread_mutex_lock(&iobuf_mu);
		iobuf_free[iobuf_nfree++] = b;
		pthread_mutex_unlock(&iobuf_mu);
	} else {
		free(b);
	}
}

static void aio_reply(struct vcfs_file_aio *a, ssize_t res)
{
	struct xfer *x = (struct xfer *)(void *)((char *)a - offsetof(struct xfer, a));

	if (res < 0)
		fuse_reply_err(x->req, to_errno((int)res, a->write ? "write" : "read"));
	else if (a->write)
		fuse_reply_write(x->req, (size_t)res);
	else
		fuse_reply_buf(x->req, a->buf, (size_t)res);
	iobuf_put(x->own);
	free(x);
	__atomic_sub_fetch(&g_xfers, 1, __ATOMIC_RELEASE);
}

/* Submit x (a filled in); 1 if it went, else x is the caller's again. */
static int aio_try(struct vcfs_file *f, struct xfer *x)
{
	x->a.done = aio_reply;
	__atomic_add_fetch(&g_xfers, 1, __ATOMIC_ACQUIRE);
	if (!vcfs_file_submit(f, &x->a))
		return 1;
	__atomic_sub_fetch(&g_xfers, 1, __ATOMIC_RELEASE);
	return 0;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	void *buf = NULL;
	struct xfer *x;
	ssize_t n;

	(void)ino;
	if (size > VCFS_FUSE_MAX_IO)
		size = VCFS_FUSE_MAX_IO;
	if (!(buf = iobuf_get(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (size && (x = malloc(sizeof(*x)))) {
		*x = (struct xfer){ .a = { .off = (uint64_t)off, .buf = buf, .len = size },
				    .req = req, .own = buf };
		if (aio_try(fh(fi), x))
			return;
		free(x);
	}
	n = vcfs_file_read(fh(fi), (uint64_t)off, buf, size);
	if (n < 0)
		fuse_reply_err(req, to_errno((int)n, "read"));
	else
		fuse_reply_buf(req, buf, (size_t)n);
	iobuf_put(buf);
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
	int killpriv = __atomic_load_n(&vfh(fi)->killpriv, __ATOMIC_RELAXED);
	uint8_t *rb = t_rbuf ? *t_rbuf : NULL;
	struct xfer *x;
	ssize_t n;

	if (!killpriv && rb && (const uint8_t *)buf >= rb &&
	    (const uint8_t *)buf + size <= rb + VCFS_FUSE_RECV_SIZE + 4096 &&
	    (x = malloc(sizeof(*x)))) {
		void *spare = iobuf_get(IOBUF_SIZE);

		*x = (struct xfer){ .a = { .write = 1, .off = (uint64_t)off, .buf = (void *)buf,
					   .len = size }, .req = req, .own = rb };
		if (spare) {
			/* the request keeps rb, which its completion may give
			 * to another worker before aio_try returns */
			*t_rbuf = spare;
			if (aio_try(fh(fi), x))
				return;
			*t_rbuf = rb;
			iobuf_put(spare);
		}
		free(x);
	}
	n = vcfs_file_write(fh(fi), (uint64_t)off, buf, size);
	if (n > 0 && killpriv && fuse_req_ctx(req)->uid != 0)
		kill_privs(ino, fi);
	if (n < 0)
		fuse_reply_err(req, to_errno((int)n, "write"));
	else
		fuse_reply_write(req, (size_t)n);
}

/*
 * Byte-range locks (fcntl POSIX and OFD, flock) are cluster-wide: they live
 * in the inode's on-disk lock table (lock/rlock.h) and every request goes to
 * the datastore; the kernel keeps none of them locally.
 *
 * Owners.  The kernel names a POSIX lock's owner by its files_struct (one per
 * process), an OFD or flock lock's by its struct file (one per open, so one
 * per struct vfh).  FUSE does not say which of the two a request is, so:
 *  - flush (every close(2)) carries the closer's files_struct: drop that
 *    owner's fcntl locks on the inode, as POSIX wants on any close;
 *  - release (the last close of an open file) drops the flock owner the
 *    kernel names (FUSE_RELEASE_FLOCK_UNLOCK) and every owner that set locks
 *    through this handle and was never seen in a flush of it: such an owner
 *    is the struct file itself (an OFD lock), since a process that set a
 *    POSIX lock through the handle must have closed it (flush) before the
 *    last close.  A process's POSIX owner can thus never be dropped by
 *    another handle's late release.
 *  - unmount drops whatever this host still holds (a daemon killed hard
 *    leaves them to its slot: freed or recovered, they are stale).
 * g_locked lists the inodes this host ever set a lock on, so that a close of
 * any other file costs nothing.
 *
 * F_SETLKW: see struct lk_wait (one thread polls every waiter).  F_GETLK reports
 * a holder on this host with its pid and one on another host with pid 0
 * (its pid would name an unrelated process here).
 */
static pthread_mutex_t g_lk_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *g_locked;		/* inodes with locks set from here */
static uint32_t g_nlocked, g_caplocked;

static int ino_locked(uint64_t ino)
{
	int found = 0;

	pthread_mutex_lock(&g_lk_mu);
	for (uint32_t i = 0; i < g_nlocked && !found; i++)
		found = g_locked[i] == ino;
	pthread_mutex_unlock(&g_lk_mu);
	return found;
}

/* Remember ino and (for this handle) owner before a lock is set. */
static int note_lock(uint64_t ino, struct fuse_file_info *fi, uint64_t owner)
{
	struct vfh *h = fi ? vfh(fi) : NULL;
	uint32_t i;
	int rc = 0;

	pthread_mutex_lock(&g_lk_mu);
	for (i = 0; i < g_nlocked && g_locked[i] != ino; i++)
		;
	if (i == g_nlocked) {
		if (g_nlocked == g_caplocked) {
			uint32_t cap = g_caplocked ? 2 * g_caplocked : 16;
			uint64_t *n = realloc(g_locked, cap * sizeof(*n));
			if (!n) {
				rc = -ENOMEM;
				goto out;
			}
			g_locked = n;
			g_caplocked = cap;
		}
		g_locked[g_nlocked++] = ino;
	}
	if (!h)
		goto out;
	for (i = 0; i < h->nown && h->own[i].owner != owner; i++)
		;
	if (i == h->nown) {
		if (h->nown == h->capown) {
			uint32_t cap = h->capown ? 2 * h->capown : 4;
			struct lk_owner *n = realloc(h->own, cap * sizeof(*n));
			if (!n) {
				rc = -ENOMEM;
				goto out;
			}
			h->own = n;
			h->capown = cap;
		}
		h->own[h->nown].owner = owner;
		h->own[h->nown++].flushed = 0;
	}
out:
	pthread_mutex_unlock(&g_lk_mu);
	return rc;
}

static int lock_range(const struct flock *l, struct vcfs_range_lock *lk, uint64_t owner)
{
	memset(lk, 0, sizeof(*lk));
	if (l->l_start < 0 || l->l_len < 0)
		return -EINVAL;
	lk->owner = owner;
	lk->start = (uint64_t)l->l_start;
	/* libfuse gives l_len 0 for "to EOF" (the kernel's OFFSET_MAX) */
	lk->end = l->l_len == 0 || l->l_start + l->l_len - 1 >= LLONG_MAX - 1 ? UINT64_MAX :
		  (uint64_t)(l->l_start + l->l_len - 1);
	lk->type = l->l_type;
	lk->pid = l->l_pid > 0 ? (uint32_t)l->l_pid : 0;
	return 0;
}

static void op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *l)
{
	struct vcfs_range_lock lk;
	int rc = lock_range(l, &lk, fi->lock_owner);

	if (!rc)
		rc = vcfs_fs_getlk(g_fs, ino, &lk);
	if (rc) {
		fuse_reply_err(req, to_errno(rc, "getlk"));
		return;
	}
	l->l_type = (short)lk.type;
	l->l_whence = SEEK_SET;
	if (lk.type != F_UNLCK) {
		l->l_start = (off_t)lk.start;
		l->l_len = lk.end >= (uint64_t)LLONG_MAX ? 0 : (off_t)(lk.end - lk.start + 1);
		l->l_pid = lk.remote ? 0 : (pid_t)lk.pid;
	}
	fuse_reply_lock(req, l);
}

/*
 * Waiting locks (F_SETLKW, flock without LOCK_NB).  A worker thread tries the
 * lock once; if it is held, the request is queued here and the worker goes
 * back to reading requests (a waiter must not hold one of the
 * VCFS_FUSE_WORKERS threads: enough waiters would leave none to process the
 * unlock or the interrupt that ends their wait).  One thread retries every
 * queued request with its own backoff (1 ms doubling to 100 ms) and replies
 * when the lock is granted, the request was interrupted (a signal to the
 * locker: EINTR, which the kernel restarts or returns) or an error happened
 * (fenced: EIO).
 */
struct lk_wait {
	fuse_req_t req;
	fuse_ino_t ino;
	struct vcfs_range_lock lk;
	uint64_t next_ns, backoff;
	int cancelled;		/* its owner closed the file meanwhile (g_wait_mu) */
	struct lk_wait *next;
};

static pthread_mutex_t g_wait_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wait_cv = PTHREAD_COND_INITIALIZER;
static struct lk_wait *g_waits;		/* g_wait_mu */
static int g_wait_stop, g_wait_started;
static pthread_t g_wait_th;

static int lk_reply_errno(int rc, const struct vcfs_range_lock *lk)
{
	if (rc == -EAGAIN)
		return lk->flock ? EWOULDBLOCK : EAGAIN;
	if (rc == -EINTR || rc == -ENOLCK || rc == -EINVAL)
		return -rc;
	return to_errno(rc, lk->flock ? "flock" : "setlk");
}

static void *waiter_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&g_wait_mu);
	while (!g_wait_stop) {
		struct lk_wait **pp = &g_waits, *w;
		uint64_t now = vcfs_now_ns(), next = now + 100 * VCFS_NS_PER_MS;
		struct timespec ts;

		while ((w = *pp)) {
			int rc;

			if (w->next_ns > now && !fuse_req_interrupted(w->req)) {
				next = w->next_ns < next ? w->next_ns : next;
				pp = &w->next;
				continue;
			}
			/* try without the list lock: setlk does I/O */
			rc = w->cancelled ? -EINTR : 0;
			pthread_mutex_unlock(&g_wait_mu);
			if (!rc)
				rc = fuse_req_interrupted(w->req) ? -EINTR :
				     vcfs_fs_setlk(g_fs, w->ino, &w->lk);
			pthread_mutex_lock(&g_wait_mu);
			if (w->cancelled) {
				/* a flush or release of its owner ran meanwhile: the
				 * locker is gone (killed while it waited); a grant that
				 * landed after that flush's unlock must not stay */
				if (!rc) {
					struct vcfs_range_lock un = w->lk;
					un.type = F_UNLCK;
					pthread_mutex_unlock(&g_wait_mu);
					vcfs_fs_setlk(g_fs, w->ino, &un);
					pthread_mutex_lock(&g_wait_mu);
				}
				rc = -EINTR;
			}
			now = vcfs_now_ns();
			if (rc == -EAGAIN) {
				w->backoff = w->backoff * 2 < 100 * VCFS_NS_PER_MS ?
					     w->backoff * 2 : 100 * VCFS_NS_PER_MS;
				w->next_ns = now + w->backoff;
				next = w->next_ns < next ? w->next_ns : next;
				pp = &w->next;
				continue;
			}
			*pp = w->next;	/* only this thread unlinks */
			fuse_reply_err(w->req, rc ? lk_reply_errno(rc, &w->lk) : 0);
			free(w);
		}
		if (g_wait_stop)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		{
			uint64_t d = next > now ? next - now : 0;
			ts.tv_sec += (time_t)(d / 1000000000ull);
			ts.tv_nsec += (long)(d % 1000000000ull);
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
		}
		pthread_cond_timedwait(&g_wait_cv, &g_wait_mu, &ts);
	}
	/* shutting down: nobody will grant them */
	while (g_waits) {
		struct lk_wait *w = g_waits;
		g_waits = w->next;
		fuse_reply_err(w->req, EINTR);
		free(w);
	}
	pthread_mutex_unlock(&g_wait_mu);
	return NULL;
}

/* Try lk once; if it is held and sleep, queue the request (0: replied later). */
static int setlk_or_queue(fuse_req_t req, fuse_ino_t ino, const struct vcfs_range_lock *lk,
			  int sleep)
{
	struct lk_wait *w;
	int rc = vcfs_fs_setlk(g_fs, ino, lk);

	if (rc != -EAGAIN || !sleep)
		return rc ? rc : 1;
	if (!(w = calloc(1, sizeof(*w))))
		return -ENOMEM;
	w->req = req;
	w->ino = ino;
	w->lk = *lk;
	w->backoff = VCFS_NS_PER_MS;
	w->next_ns = vcfs_now_ns() + w->backoff;
	pthread_mutex_lock(&g_wait_mu);
	if (!g_wait_started) {
		if ((rc = -pthread_create(&g_wait_th, NULL, waiter_main, NULL))) {
			pthread_mutex_unlock(&g_wait_mu);
			free(w);
			return rc;
		}
		g_wait_started = 1;
	}
	w->next = g_waits;
	g_waits = w;
	pthread_cond_signal(&g_wait_cv);
	pthread_mutex_unlock(&g_wait_mu);
	return 0;
}

/* The owner's file is being closed: its queued waiters on ino end (EINTR). */
static void cancel_waiters(fuse_ino_t ino, uint64_t owner)
{
	int any = 0;

	pthread_mutex_lock(&g_wait_mu);
	for (struct lk_wait *w = g_waits; w; w = w->next)
		if (w->ino == ino && w->lk.owner == owner) {
			w->cancelled = 1;
			w->next_ns = 0;
			any = 1;
		}
	if (any)
		pthread_cond_signal(&g_wait_cv);
	pthread_mutex_unlock(&g_wait_mu);
}

static void waiter_stop(void)
{
	pthread_mutex_lock(&g_wait_mu);
	g_wait_stop = 1;
	pthread_cond_signal(&g_wait_cv);
	pthread_mutex_unlock(&g_wait_mu);
	if (g_wait_started)
		pthread_join(g_wait_th, NULL);
}

static void op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *l, int sleep)
{
	struct vcfs_range_lock lk;
	int rc = lock_range(l, &lk, fi->lock_owner);

	if (!rc && lk.type != F_UNLCK)
		rc = note_lock(ino, fi->fh ? fi : NULL, fi->lock_owner);
	if (!rc && !(rc = setlk_or_queue(req, ino, &lk, sleep)))
		return;		/* queued: the waiter thread replies */
	fuse_reply_err(req, rc == 1 ? 0 : lk_reply_errno(rc, &lk));
}

static void op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	struct vcfs_range_lock lk = { .owner = fi->lock_owner, .flock = 1,
				      .end = UINT64_MAX };
	int rc = 0;

	switch (op & ~LOCK_NB) {
	case LOCK_SH: lk.type = F_RDLCK; break;
	case LOCK_EX: lk.type = F_WRLCK; break;
	case LOCK_UN: lk.type = F_UNLCK; break;
	default: rc = -EINVAL;
	}
	lk.pid = (uint32_t)fuse_req_ctx(req)->pid;
	if (!rc && lk.type != F_UNLCK)
		rc = note_lock(ino, fi->fh ? fi : NULL, fi->lock_owner);
	if (!rc && !(rc = setlk_or_queue(req, ino, &lk, !(op & LOCK_NB))))
		return;
	fuse_reply_err(req, rc == 1 ? 0 : lk_reply_errno(rc, &lk));
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfh *h = fi->fh ? vfh(fi) : NULL;
	int rc = 0;

	if (!ino_locked(ino)) {
		fuse_reply_err(req, 0);
		return;
	}
	pthread_mutex_lock(&g_lk_mu);
	for (uint32_t i = 0; h && i < h->nown; i++)
		if (h->own[i].owner == fi->lock_owner)
			h->own[i].flushed = 1;
	pthread_mutex_unlock(&g_lk_mu);
	cancel_waiters(ino, fi->lock_owner);
	rc = vcfs_fs_unlock_owner(g_fs, ino, fi->lock_owner, 0);
	fuse_reply_err(req, rc < 0 ? to_errno(rc, "flush (dropping POSIX locks)") : 0);
}

/* The last close of an open file: its OFD and flock locks go (see above). */
static void release_locks(fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfh *h = vfh(fi);
	int rc = 0;

	if (!ino_locked(ino))
		return;
	if (fi->flock_release) {
		cancel_waiters(ino, fi->lock_owner);
		rc = vcfs_fs_unlock_owner(g_fs, ino, fi->lock_owner, -1);
	}
	for (uint32_t i = 0; rc >= 0 && i < h->nown; i++)
		if (!h->own[i].flushed) {
			cancel_waiters(ino, h->own[i].owner);
			rc = vcfs_fs_unlock_owner(g_fs, ino, h->own[i].owner, -1);
		}
	if (rc < 0)
		vcfs_warn("inode %llu: dropping the locks of a closed file: %s (they stay "
			  "until this host unmounts or is recovered)", (unsigned long long)ino,
			  vcfs_strerror(rc));
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	release_locks(ino, fi);
	fuse_reply_err(req, to_errno(release_handle(fi), "release"));
}

/* Unmount: drop whatever this host still holds. */
static void release_all_locks(void)
{
	for (uint32_t i = 0; i < g_nlocked; i++) {
		int rc = vcfs_fs_unlock_owner(g_fs, g_locked[i], UINT64_MAX, -1);
		if (rc < 0)
			vcfs_warn("inode %llu: dropping byte-range locks at unmount: %s",
				  (unsigned long long)g_locked[i], vcfs_strerror(rc));
	}
	free(g_locked);
	g_locked = NULL;
	g_nlocked = g_caplocked = 0;
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int rc = vcfs_file_fsync(fh(fi), datasync);

	(void)ino;
	if (!rc)	/* and the pending metadata group, as a journaling fs does */
		rc = vcfs_fs_sync(g_fs);
	fuse_reply_err(req, to_errno(rc, "fsync"));
}

/* fsync of a directory: its entries (every pending metadata change) durable */
static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, to_errno(vcfs_fs_sync(g_fs), "fsyncdir"));
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
	iobuf_put(buf);
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
	iobuf_put(buf);
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
	.fsyncdir	= op_fsyncdir,
	.fallocate	= op_fallocate,
	.lseek		= op_lseek,
	.readdir	= op_readdir,
	.statfs		= op_statfs,
	.setxattr	= op_setxattr,
	.getxattr	= op_getxattr,
	.listxattr	= op_listxattr,
	.removexattr	= op_removexattr,
	.getlk		= op_getlk,
	.setlk		= op_setlk,
	.flock		= op_flock,
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

/*
 * The request loop.  libfuse 3.14's own loop reads every request into a
 * malloc'd buffer, so the data of a WRITE (after the 40-byte in-header and the
 * 40-byte write_in) is never 4 KiB-aligned and the file backend had to copy
 * each O_DIRECT write into a bounce buffer: a second 1 MiB memcpy per 1 MiB
 * write, a quarter of the daemon's CPU on sequential writes.  Here each
 * worker reads into a buffer placed so that WRITE data starts on a page
 * boundary (fuse_session_receive_buf reads into buf->mem when it is set, and
 * uses no splice: we implement .write, not .write_buf).
 *
 * VCFS_FUSE_WORKERS threads each loop receive -> process.  A worker that sees
 * the session end (unmount: ENODEV; a signal: fuse_session_exit) posts
 * loop_done; main then cancels the others, which can be cancelled only while
 * they wait in read (cancellation is disabled around processing), as
 * libfuse's loop does.
 */
#define VCFS_FUSE_WRITE_HDR 80	/* fuse_in_header + fuse_write_in */

static sem_t loop_done;
static int loop_err;

static void *loop_worker(void *arg)
{
	struct fuse_buf fbuf = { .mem = NULL };
	int res;

	t_rbuf = arg;	/* op_write may swap *t_rbuf for a spare one */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	while (!fuse_session_exited(g_se)) {
		fbuf.mem = (uint8_t *)*t_rbuf + 4096 - VCFS_FUSE_WRITE_HDR;
		fbuf.size = 0;
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		res = fuse_session_receive_buf(g_se, &fbuf);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		if (res == -EINTR)
			continue;
		if (res <= 0) {
			if (res < 0) {
				__atomic_store_n(&loop_err, res, __ATOMIC_RELAXED);
				fuse_session_exit(g_se);
			}
			break;
		}
		fuse_session_process_buf(g_se, &fbuf);
	}
	sem_post(&loop_done);
	return NULL;
}

static int run_loop(void)
{
	pthread_t th[VCFS_FUSE_WORKERS];
	void *mem[VCFS_FUSE_WORKERS] = { NULL };
	unsigned n = 0, i;
	int rc = 0;

	if (sem_init(&loop_done, 0, 0))
		return -errno;
	for (i = 0; i < VCFS_FUSE_WORKERS; i++) {
		if (!(mem[i] = iobuf_get(IOBUF_SIZE))) {
			rc = -ENOMEM;
			break;
		}
		rc = -pthread_create(&th[i], NULL, loop_worker, &mem[i]);
		if (rc)
			break;
		n++;
	}
	if (n == 0) {
		vcfs_err("starting the request threads: %s", strerror(-rc));
		goto out;
	}
	rc = 0;
	/* a signal (SIGTERM, SIGINT) ends the session in whichever thread
	 * takes it: interrupted here, look */
	while (sem_wait(&loop_done) && errno == EINTR && !fuse_session_exited(g_se))
		;
	fuse_session_exit(g_se);
	for (i = 0; i < n; i++)
		pthread_cancel(th[i]);
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	rc = __atomic_load_n(&loop_err, __ATOMIC_RELAXED);
	if (rc)
		vcfs_err("reading requests from /dev/fuse: %s", strerror(-rc));
out:
	for (i = 0; i < VCFS_FUSE_WORKERS; i++)
		iobuf_put(mem[i]);
	sem_destroy(&loop_done);
	return rc ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct vcfs_mount_opts mo = { 0 };
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
	if (fuse_session_custom_io(g_se, &(struct fuse_custom_io){ .writev = io_writev, .read = io_read },
				   fuse_session_fd(g_se)))
		vcfs_warn("replies without FOPEN_PARALLEL_DIRECT_WRITES: direct writes to one file "
			  "run one at a time");
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

	iobuf_init();
	ret = run_loop() ? 1 : 0;
	/* answers still due from the completion thread go out before the
	 * session does */
	while (__atomic_load_n(&g_xfers, __ATOMIC_ACQUIRE))
		vcfs_sleep_ns(VCFS_NS_PER_MS);
	iobuf_fini();
	waiter_stop();

	vcfs_fs_set_inval(g_fs, NULL, NULL);
	fuse_session_unmount(g_se);
	release_all_locks();
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
