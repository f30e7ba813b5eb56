/*
 * file.c - the file: backend.  A regular file or a block device, opened
 * O_DIRECT so that what one host writes is what every other process reading
 * the same file sees, with no page cache between them.
 *
 * Compare-and-write: an OFD lock (F_OFD_SETLK) on the sector's byte range is
 * held around read-compare-write.  OFD locks belong to the open file
 * description, so they exclude every other process (each vcfs host opens its
 * own description) but not threads sharing ours: an in-process mutex, striped
 * by sector, covers those.  This is atomic among the processes of one machine
 * and nothing more, which is what the one-machine multi-host tests need; the
 * capability bit VCFS_DISK_CAP_CAS_SHARED stays clear so tools can say so.
 * Plain writes do not take the lock: protocols must only CAS lock sectors.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include "disk_int.h"
#include "../common/clock.h"
#include "../common/log.h"

#define CAS_STRIPES 64

struct file_priv {
	int fd;
	int direct;			/* opened O_DIRECT */
	int blockdev;
	pthread_mutex_t cas_mu[CAS_STRIPES];
};

static int file_bounce_needed(const struct file_priv *p, const void *buf)
{
	return p->direct && ((uintptr_t)buf & 4095);
}

/*
 * Bounce buffers for unaligned callers (the FUSE daemon's write data is never
 * 4 KiB-aligned): one per thread, grown as needed and kept, never zeroed (every
 * byte is written before it is read).  Allocating and zeroing 1 MiB per request
 * made the daemon CPU-bound on sequential writes.  Freed at thread exit.
 */
/* One read-only, 4 KiB-aligned buffer of zeros for every disk and thread. */
#define ZERO_BUF (1u << 20)
static void *zero_buf_p;
static pthread_once_t zero_once = PTHREAD_ONCE_INIT;

static void zero_init(void)
{
	zero_buf_p = vcfs_disk_buf_alloc(ZERO_BUF);
}

static const void *zero_buf(void)
{
	pthread_once(&zero_once, zero_init);
	return zero_buf_p;
}

static pthread_key_t bounce_key;
static pthread_once_t bounce_once = PTHREAD_ONCE_INIT;
struct bounce { void *buf; size_t len; };

static void bounce_free(void *arg)
{
	struct bounce *b = arg;

	free(b->buf);
	free(b);
}

static void bounce_init(void)
{
	if (pthread_key_create(&bounce_key, bounce_free))
		abort();
}

static void *bounce_get(size_t len)
{
	struct bounce *b;

	pthread_once(&bounce_once, bounce_init);
	b = pthread_getspecific(bounce_key);
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b || pthread_setspecific(bounce_key, b)) {
			free(b);
			return NULL;
		}
	}
	if (b->len < len) {
		size_t want = (len + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1);
		void *nb = NULL;
		if (posix_memalign(&nb, 4096, want))
			return NULL;
		free(b->buf);
		b->buf = nb;
		b->len = want;
	}
	return b->buf;
}

static int file_read(struct vcfs_disk *d, uint64_t off, void *buf, size_t len)
{
	struct file_priv *p = d->priv;
	void *io = buf;
	size_t done = 0;
	int rc = 0;

	if (file_bounce_needed(p, buf) && !(io = bounce_get(len)))
		return -ENOMEM;
	while (done < len) {
		ssize_t n = pread(p->fd, (char *)io + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (n == 0) {	/* a file shrunk under us: read zeros */
			memset((char *)io + done, 0, len - done);
			break;
		}
		done += (size_t)n;
	}
	if (io != buf && !rc)
		memcpy(buf, io, len);
	return rc;
}

static int file_write(struct vcfs_disk *d, uint64_t off, const void *buf, size_t len,
		      unsigned flags)
{
	struct file_priv *p = d->priv;
	void *io = (void *)buf;
	size_t done = 0;
	int rc = 0;

	if (file_bounce_needed(p, buf)) {
		if (!(io = bounce_get(len)))
			return -ENOMEM;
		memcpy(io, buf, len);
	}
	while (done < len) {
		struct iovec iov = { (char *)io + done, len - done };
		ssize_t n = pwritev2(p->fd, &iov, 1, (off_t)(off + done),
				     (flags & VCFS_IO_FUA) ? RWF_DSYNC : 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		done += (size_t)n;
	}
	return rc;
}

static int file_flush(struct vcfs_disk *d)
{
	struct file_priv *p = d->priv;

	return fdatasync(p->fd) ? -errno : 0;
}

/* Take (type F_WRLCK) or drop (F_UNLCK) the OFD lock on one sector, bounded
 * by the I/O timeout. */
static int file_ofd_lock(struct vcfs_disk *d, uint64_t off, short type)
{
	struct file_priv *p = d->priv;
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
			    .l_start = (off_t)off, .l_len = d->info.lsec };
	uint64_t deadline = vcfs_now_ns() + d->opts.io_timeout_ms * VCFS_NS_PER_MS;
	uint64_t backoff = 20000;

	for (;;) {
		fl.l_pid = 0;
		if (!fcntl(p->fd, F_OFD_SETLK, &fl))
			return 0;
		if (errno != EAGAIN && errno != EACCES && errno != EINTR)
			return -errno;
		if (vcfs_now_ns() > deadline)
			return -ETIMEDOUT;
		vcfs_sleep_ns(backoff);
		if (backoff < 2 * VCFS_NS_PER_MS)
			backoff *= 2;
	}
}

static int file_cas(struct vcfs_disk *d, uint64_t off, const void *expect,
		    const void *newdata)
{
	struct file_priv *p = d->priv;
	pthread_mutex_t *mu = &p->cas_mu[(off / d->info.lsec) % CAS_STRIPES];
	void *cur = vcfs_disk_buf_alloc(d->info.lsec);
	int rc;

	if (!cur)
		return -ENOMEM;
	pthread_mutex_lock(mu);
	rc = file_ofd_lock(d, off, F_WRLCK);
	if (rc)
		goto out_unlock_mu;
	rc = file_read(d, off, cur, d->info.lsec);
	if (rc)
		goto out_unlock_ofd;
	if (memcmp(cur, expect, d->info.lsec)) {
		rc = -VCFS_EMISCOMPARE;
		goto out_unlock_ofd;
	}
	rc = file_write(d, off, newdata, d->info.lsec, VCFS_IO_FUA);
out_unlock_ofd:
	file_ofd_lock(d, off, F_UNLCK);
out_unlock_mu:
	pthread_mutex_unlock(mu);
	free(cur);
	return rc;
}

static int file_zero_range(struct vcfs_disk *d, uint64_t off, uint64_t len,
			   unsigned flags, int punch)
{
	struct file_priv *p = d->priv;
	int rc;

	if (p->blockdev) {
		uint64_t range[2] = { off, len };
		rc = ioctl(p->fd, BLKZEROOUT, range) ? -errno : 0;
	} else {
		int mode = FALLOC_FL_KEEP_SIZE |
			   (punch ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE);
		rc = fallocate(p->fd, mode, (off_t)off, (off_t)len) ? -errno : 0;
		if (rc == -EOPNOTSUPP && punch) /* e.g. no hole punching: zero it */
			rc = fallocate(p->fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_ZERO_RANGE,
				       (off_t)off, (off_t)len) ? -errno : 0;
	}
	if (rc == -EOPNOTSUPP || rc == -ENOTTY || rc == -EINVAL) {
		/* plain writes of zeros, from one shared zero buffer (allocating
		 * and zeroing max_io bytes per call made tmpfs replays crawl) */
		const void *z = zero_buf();
		size_t chunk = d->info.max_io < ZERO_BUF ? d->info.max_io : ZERO_BUF;
		if (!z)
			return -ENOMEM;
		rc = 0;
		while (!rc && len) {
			size_t n = len < chunk ? (size_t)len : chunk;
			rc = file_write(d, off, z, n, 0);
			off += n;
			len -= n;
		}
	}
	if (!rc && (flags & VCFS_IO_FUA))
		rc = file_flush(d);
	return rc;
}

static int file_unmap(struct vcfs_disk *d, uint64_t off, uint64_t len)
{
	return file_zero_range(d, off, len, 0, 1);
}

static int file_write_zeroes(struct vcfs_disk *d, uint64_t off, uint64_t len,
			     unsigned flags)
{
	return file_zero_range(d, off, len, flags, 0);
}

static void file_close(struct vcfs_disk *d)
{
	struct file_priv *p = d->priv;

	if (p) {
		close(p->fd);
		for (int i = 0; i < CAS_STRIPES; i++)
			pthread_mutex_destroy(&p->cas_mu[i]);
		free(p);
	}
	free(d);
}

static int file_get_size(struct vcfs_disk *d, uint64_t *size)
{
	struct file_priv *p = d->priv;
	struct stat st;

	if (p->blockdev)
		return ioctl(p->fd, BLKGETSIZE64, size) ? -errno : 0;
	if (fstat(p->fd, &st))
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

static const struct vcfs_disk_ops file_ops = {
	.read = file_read,
	.write = file_write,
	.flush = file_flush,
	.cas = file_cas,
	.unmap = file_unmap,
	.write_zeroes = file_write_zeroes,
	.close = file_close,
	.get_size = file_get_size,
};

int vcfs_file_open(const struct vcfs_uri *u, const struct vcfs_disk_opts *o,
		   struct vcfs_disk **out)
{
	struct vcfs_disk *d = vcfs_disk_new(&file_ops, o);
	struct file_priv *p = calloc(1, sizeof(*p));
	int rdonly = o && (o->flags & VCFS_DISK_RDONLY);
	int oflags = (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	struct stat st;
	int rc;

	if (!d || !p) {
		rc = -ENOMEM;
		goto err_free;
	}
	p->fd = open(u->path, oflags | O_DIRECT);
	p->direct = 1;
	if (p->fd < 0 && errno == EINVAL) {
		/* tmpfs and a few others refuse O_DIRECT */
		if (!o || !(o->flags & VCFS_DISK_NO_DIRECT))
			vcfs_warn("%s: O_DIRECT not supported here; using buffered I/O "
				  "(safe for processes of this machine only)", u->path);
		p->fd = open(u->path, oflags);
		p->direct = 0;
	}
	if (p->fd < 0) {
		rc = -errno;
		vcfs_err("%s: cannot open: %s", u->path, vcfs_strerror(rc));
		goto err_free;
	}
	if (fstat(p->fd, &st)) {
		rc = -errno;
		goto err_close;
	}
	d->info.lsec = 512;
	d->info.psec = st.st_blksize >= 512 ? (uint32_t)st.st_blksize : 4096;
	if (S_ISBLK(st.st_mode)) {
		uint64_t sz;
		int ls = 0;
		unsigned int ps = 0;
		p->blockdev = 1;
		if (ioctl(p->fd, BLKGETSIZE64, &sz) || ioctl(p->fd, BLKSSZGET, &ls)) {
			rc = -errno;
			goto err_close;
		}
		d->info.size = sz;
		d->info.lsec = (uint32_t)ls;
		if (!ioctl(p->fd, BLKPBSZGET, &ps))
			d->info.psec = ps;
	} else if (S_ISREG(st.st_mode)) {
		d->info.size = (uint64_t)st.st_size;
	} else {
		rc = -ENOTBLK;
		vcfs_err("%s: neither a regular file nor a block device", u->path);
		goto err_close;
	}
	for (int i = 0; i < CAS_STRIPES; i++)
		pthread_mutex_init(&p->cas_mu[i], NULL);
	d->priv = p;
	d->info.max_io = 4u << 20;
	d->info.cas_mode = VCFS_CAS_OFD;
	d->info.caps = VCFS_DISK_CAP_UNMAP | VCFS_DISK_CAP_FUA | VCFS_DISK_CAP_ZEROES |
		       (rdonly ? VCFS_DISK_CAP_RDONLY : 0);
	strcpy(d->info.backend, "file");
	snprintf(d->info.desc, sizeof(d->info.desc), "file:%s (%s%s)", u->path,
		 p->blockdev ? "block device" : "regular file",
		 p->direct ? ", O_DIRECT" : ", buffered");
	*out = d;
	return 0;

err_close:
	close(p->fd);
err_free:
	free(p);
	free(d);
	return rc;
}
