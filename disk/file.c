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
 *
 * Asynchronous requests (vcfs_disk_submit, used by the FUSE daemon's data
 * path): Linux native AIO (io_submit), one context per handle, set up at the
 * first submission (tools never pay for it), and one completion thread that
 * reaps it (io_getevents, many events per call) and calls each request's
 * done().  Any thread submits with no lock of ours: io_submit is thread-safe
 * on one context.  (An io_uring shared by 16 submitting threads needs a lock
 * around its submission queue; measured here, that lock cost more than the
 * blocking pwrite it replaced: 4 KiB QD16 writes 31k vs 52k IOPS.)  Only an
 * O_DIRECT handle submits: buffered AIO would block in io_submit.  A short
 * transfer or -EAGAIN/-EINTR is sent again for the rest; if that cannot be
 * queued, the completion thread finishes the request with a plain
 * pread/pwrite.  Where the context cannot be set up (aio-max-nr reached, a
 * seccomp filter) the handle says so once and vcfs_disk_submit answers
 * -EOPNOTSUPP: callers use the synchronous calls.  file_close waits until
 * every done() has returned, then stops the thread with a zero-length read
 * whose user data is 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <sys/syscall.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
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
	/* asynchronous path: see the file comment */
	pthread_mutex_t aio_mu;		/* aio_state set-up, inflight */
	pthread_cond_t aio_idle;	/* inflight fell to 0 */
	int aio_state;			/* 0 not tried, 1 up, -1 unavailable */
	unsigned inflight;		/* submitted, done() not yet returned */
	aio_context_t actx;
	pthread_t reaper;
	struct vcfs_disk *d;
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

/* ---- asynchronous path (vcfs_disk_submit) ---- */

#define AIO_EVENTS 256

static int sys_io_setup(unsigned n, aio_context_t *ctx)
{
	return syscall(SYS_io_setup, n, ctx) ? -errno : 0;
}

static int sys_io_destroy(aio_context_t ctx)
{
	return syscall(SYS_io_destroy, ctx) ? -errno : 0;
}

/* Queue the rest of a: 0, or a negative errno (-EAGAIN: no room). */
static int aio_queue(struct file_priv *p, struct vcfs_disk_aio *a)
{
	struct iocb cb = {
		.aio_data = (uint64_t)(uintptr_t)a,
		.aio_lio_opcode = a->op == VCFS_AIO_WRITE ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD,
		.aio_fildes = (uint32_t)p->fd,
		.aio_buf = (uint64_t)(uintptr_t)((char *)a->buf + a->xfer),
		.aio_nbytes = a->len - a->xfer,
		.aio_offset = (int64_t)(a->off + a->xfer),
	}, *cbp = &cb;
	long n;

	/* what the submitter wrote into a happens before the reaper reads it
	 * (the kernel orders them; a release/acquire pair on xfer says so to
	 * ThreadSanitizer too) */
	__atomic_store_n(&a->xfer, a->xfer, __ATOMIC_RELEASE);
	do
		n = syscall(SYS_io_submit, p->actx, 1L, &cbp);
	while (n < 0 && errno == EINTR);
	if (n == 1)
		return 0;
	return n < 0 ? -errno : -EAGAIN;
}

static void aio_finish(struct file_priv *p, struct vcfs_disk_aio *a, int rc)
{
	a->done(a, rc);
	pthread_mutex_lock(&p->aio_mu);
	if (--p->inflight == 0)
		pthread_cond_broadcast(&p->aio_idle);
	pthread_mutex_unlock(&p->aio_mu);
}

/* One completion of a: finish it, or send the rest again. */
static void aio_complete(struct file_priv *p, struct vcfs_disk_aio *a, long res)
{
	struct vcfs_disk *d = p->d;
	int rc;

	if (res == 0 && a->op == VCFS_AIO_READ) {
		/* a file shrunk under us: zeros, as file_read gives */
		memset((char *)a->buf + a->xfer, 0, a->len - a->xfer);
		res = (long)(a->len - a->xfer);
	} else if (res == 0) {
		res = -EIO;	/* a write that wrote nothing and said nothing */
	}
	if (res < 0 && res != -EAGAIN && res != -EINTR) {
		aio_finish(p, a, (int)res);
		return;
	}
	if (res > 0)
		a->xfer += (size_t)res;
	if (a->xfer == a->len) {
		aio_finish(p, a, 0);
		return;
	}
	if (!aio_queue(p, a))
		return;
	/* no room: the rest the plain way, here */
	if (a->op == VCFS_AIO_WRITE)
		rc = file_write(d, a->off + a->xfer, (char *)a->buf + a->xfer, a->len - a->xfer, 0);
	else
		rc = file_read(d, a->off + a->xfer, (char *)a->buf + a->xfer, a->len - a->xfer);
	aio_finish(p, a, rc);
}

static void *aio_reaper(void *arg)
{
	struct file_priv *p = arg;
	struct io_event ev[64];

	for (;;) {
		long n = syscall(SYS_io_getevents, p->actx, 1L, 64L, ev, NULL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			vcfs_err("%s: waiting for AIO completions: %s", p->d->info.desc,
				 strerror(errno));
			vcfs_sleep_ns(10 * VCFS_NS_PER_MS);
			continue;
		}
		for (long i = 0; i < n; i++) {
			struct vcfs_disk_aio *a = (struct vcfs_disk_aio *)(uintptr_t)ev[i].data;
			if (!a)
				return NULL;	/* file_close's stop */
			(void)__atomic_load_n(&a->xfer, __ATOMIC_ACQUIRE);
			aio_complete(p, a, (long)ev[i].res);
		}
	}
}

/* Set the context up (aio_mu held): 1 up, -1 unavailable (said once). */
static int aio_setup(struct file_priv *p)
{
	sigset_t all, old;
	int rc;

	if (p->aio_state)
		return p->aio_state;
	/* aio_state is read without aio_mu (file_submit): atomic stores */
	__atomic_store_n(&p->aio_state, -1, __ATOMIC_RELAXED);
	rc = sys_io_setup(AIO_EVENTS, &p->actx);
	if (rc) {
		vcfs_info("%s: no Linux AIO (%s): reads and writes stay synchronous",
			  p->d->info.desc, vcfs_strerror(rc));
		return -1;
	}
	/* the reaper takes no signals: they belong to the program's threads */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&p->reaper, NULL, aio_reaper, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		vcfs_warn("%s: no AIO completion thread (%s): reads and writes "
			  "stay synchronous", p->d->info.desc, strerror(rc));
		sys_io_destroy(p->actx);
		return -1;
	}
	__atomic_store_n(&p->aio_state, 1, __ATOMIC_RELEASE);
	return 1;
}

static int file_submit(struct vcfs_disk *d, struct vcfs_disk_aio *a)
{
	struct file_priv *p = d->priv;
	int rc;

	if (file_bounce_needed(p, a->buf) || !p->direct)
		return -EOPNOTSUPP;	/* buffered AIO would block in submit */
	if (__atomic_load_n(&p->aio_state, __ATOMIC_ACQUIRE) != 1) {
		pthread_mutex_lock(&p->aio_mu);
		rc = aio_setup(p);
		pthread_mutex_unlock(&p->aio_mu);
		if (rc != 1)
			return -EOPNOTSUPP;
	}
	pthread_mutex_lock(&p->aio_mu);
	p->inflight++;
	pthread_mutex_unlock(&p->aio_mu);
	rc = aio_queue(p, a);
	if (rc) {
		pthread_mutex_lock(&p->aio_mu);
		if (--p->inflight == 0)
			pthread_cond_broadcast(&p->aio_idle);
		pthread_mutex_unlock(&p->aio_mu);
		if (rc != -EAGAIN)
			rc = -EOPNOTSUPP;
	}
	return rc;
}

/* Wait for every request, stop the reaper (with a zero-length read whose
 * user data is 0: the context has no NOP), drop the context. */
static void aio_stop(struct file_priv *p)
{
	pthread_mutex_lock(&p->aio_mu);
	while (p->inflight)
		pthread_cond_wait(&p->aio_idle, &p->aio_mu);
	if (p->aio_state == 1) {
		struct iocb cb = { .aio_data = 0, .aio_lio_opcode = IOCB_CMD_PREAD,
				   .aio_fildes = (uint32_t)p->fd }, *cbp = &cb;
		int tries = 0;

		while (syscall(SYS_io_submit, p->actx, 1L, &cbp) != 1 && ++tries < 1000)
			vcfs_sleep_ns(VCFS_NS_PER_MS);
		if (tries < 1000) {
			pthread_join(p->reaper, NULL);
			sys_io_destroy(p->actx);
		} else {
			/* nothing is in flight: the reaper waits for ever on a
			 * context left to it, touching nothing */
			vcfs_warn("%s: could not stop the AIO completion thread (%s); "
				  "left waiting", p->d->info.desc, strerror(errno));
			pthread_detach(p->reaper);
		}
	}
	__atomic_store_n(&p->aio_state, -1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&p->aio_mu);
}

static void file_close(struct vcfs_disk *d)
{
	struct file_priv *p = d->priv;

	if (p) {
		aio_stop(p);
		close(p->fd);
		for (int i = 0; i < CAS_STRIPES; i++)
			pthread_mutex_destroy(&p->cas_mu[i]);
		pthread_mutex_destroy(&p->aio_mu);
		pthread_cond_destroy(&p->aio_idle);
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
	.submit = file_submit,
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
	pthread_mutex_init(&p->aio_mu, NULL);
	pthread_cond_init(&p->aio_idle, NULL);
	p->d = d;
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
