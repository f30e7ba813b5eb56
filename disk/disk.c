/*
 * disk.c - the generic half of the shared-disk layer: open by URI, argument
 * checks, request splitting, byte-granular helpers.  Backends live in file.c,
 * iscsi.c, nfs.c, rados.c; test layers in fault.c and crash.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "disk_int.h"
#include "../common/log.h"

const char *vcfs_cas_mode_name(enum vcfs_cas_mode m)
{
	switch (m) {
	case VCFS_CAS_NONE:		return "none";
	case VCFS_CAS_OFD:		return "ofd";
	case VCFS_CAS_ATS:		return "ats";
	case VCFS_CAS_ATS_PR:		return "ats+pr";
	case VCFS_CAS_NFS_LOCKFILE:	return "nfs-lockfile";
	case VCFS_CAS_RADOS_CMPEXT:	return "rados-cmpext";
	case VCFS_CAS_EMULATED:		return "emulated";
	}
	return "?";
}

void *vcfs_disk_buf_alloc(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, len ? len : 1))
		return NULL;
	memset(p, 0, len);
	return p;
}

struct vcfs_disk *vcfs_disk_new(const struct vcfs_disk_ops *ops,
				const struct vcfs_disk_opts *opts)
{
	struct vcfs_disk *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->ops = ops;
	if (opts)
		d->opts = *opts;
	if (!d->opts.io_timeout_ms)
		d->opts.io_timeout_ms = VCFS_DISK_DEFAULT_IO_TIMEOUT_MS;
	return d;
}

int vcfs_disk_check_geometry(struct vcfs_disk_info *info)
{
	uint32_t s = info->lsec;

	if (s < 512 || s > 4096 || (s & (s - 1)))
		return -VCFS_EBADSECTOR;
	if (info->psec < s || info->psec > 65536 || (info->psec & (info->psec - 1)))
		info->psec = s;
	if (!info->max_io || info->max_io < s)
		info->max_io = 1u << 20;
	info->max_io -= info->max_io % s;
	info->size -= info->size % s;
	return 0;
}

int vcfs_disk_open(const char *uri, const struct vcfs_disk_opts *opts,
		   struct vcfs_disk **out)
{
	struct vcfs_uri u;
	struct vcfs_disk *d = NULL;
	const char *fault;
	int rc;

	*out = NULL;
	rc = vcfs_uri_parse(uri, &u);
	if (rc)
		return rc;
	if (!strcmp(u.scheme, "file"))
		rc = vcfs_file_open(&u, opts, &d);
	else if (!strcmp(u.scheme, "iscsi"))
		rc = vcfs_iscsi_open(&u, opts, &d);
	else if (!strcmp(u.scheme, "nfs"))
		rc = vcfs_nfs_open(&u, opts, &d);
	else if (!strcmp(u.scheme, "rados"))
		rc = vcfs_rados_open(&u, opts, &d);
	else
		rc = -VCFS_ESCHEME;
	vcfs_uri_free(&u);
	if (rc)
		return rc;
	rc = vcfs_disk_check_geometry(&d->info);
	if (!rc && d->info.size < VCFS_DISK_MIN_SIZE) {
		vcfs_err("%s: %llu bytes is below the %llu-byte minimum of a datastore; "
			 "enlarge the file or LUN", d->info.desc,
			 (unsigned long long)d->info.size, VCFS_DISK_MIN_SIZE);
		rc = -VCFS_ETOOSMALL;
	}
	if (rc) {
		vcfs_disk_close(d);
		return rc;
	}
	/* Tests reach a daemon's disk through the environment (fault.c). */
	fault = getenv("VCFS_FAULT");
	if (fault && *fault) {
		struct vcfs_disk *f;
		rc = vcfs_fault_wrap(d, &f);
		if (rc) {
			vcfs_disk_close(d);
			return rc;
		}
		rc = vcfs_fault_parse(f, fault);
		if (rc) {
			vcfs_err("VCFS_FAULT='%s' is not a fault spec", fault);
			vcfs_disk_close(f);
			return rc;
		}
		d = f;
	}
	*out = d;
	return 0;
}

void vcfs_disk_close(struct vcfs_disk *d)
{
	if (!d)
		return;
	d->ops->close(d);	/* frees priv, closes lower, frees d */
}

const struct vcfs_disk_info *vcfs_disk_info(const struct vcfs_disk *d)
{
	return &d->info;
}

static int check_range(const struct vcfs_disk *d, uint64_t off, uint64_t len)
{
	if ((off | len) % d->info.lsec)
		return -VCFS_EALIGN;
	if (off > d->info.size || len > d->info.size - off)
		return -VCFS_ERANGE;
	return 0;
}

int vcfs_disk_refresh_size(struct vcfs_disk *d)
{
	uint64_t sz;
	int rc;

	if (d->lower) {		/* a layer: its size is its lower disk's */
		rc = vcfs_disk_refresh_size(d->lower);
		if (rc)
			return rc;
		sz = d->lower->info.size;
	} else {
		if (!d->ops->get_size)
			return -EOPNOTSUPP;
		rc = d->ops->get_size(d, &sz);
		if (rc)
			return rc;
		sz -= sz % d->info.lsec;
	}
	if (sz < d->info.size) {
		vcfs_err("%s: the backend is now %llu MiB, smaller than the %llu MiB it had: "
			 "it was shrunk under a mounted datastore; restore its size",
			 d->info.desc, (unsigned long long)(sz >> 20),
			 (unsigned long long)(d->info.size >> 20));
		return -VCFS_ECORRUPT;
	}
	__atomic_store_n(&d->info.size, sz, __ATOMIC_RELEASE);
	return 0;
}

int vcfs_disk_read(struct vcfs_disk *d, uint64_t off, void *buf, size_t len)
{
	int rc = check_range(d, off, len);

	while (!rc && len) {
		size_t n = len < d->info.max_io ? len : d->info.max_io;
		rc = d->ops->read(d, off, buf, n);
		off += n;
		buf = (char *)buf + n;
		len -= n;
	}
	return rc;
}

int vcfs_disk_write(struct vcfs_disk *d, uint64_t off, const void *buf, size_t len,
		    unsigned flags)
{
	int rc = check_range(d, off, len);

	if (!rc && (d->info.caps & VCFS_DISK_CAP_RDONLY))
		rc = -EROFS;
	while (!rc && len) {
		size_t n = len < d->info.max_io ? len : d->info.max_io;
		rc = d->ops->write(d, off, buf, n, flags);
		off += n;
		buf = (const char *)buf + n;
		len -= n;
	}
	return rc;
}

int vcfs_disk_submit(struct vcfs_disk *d, struct vcfs_disk_aio *a)
{
	int rc = check_range(d, a->off, a->len);

	if (rc)
		return rc;
	if (a->op == VCFS_AIO_WRITE && (d->info.caps & VCFS_DISK_CAP_RDONLY))
		return -EROFS;
	if (!d->ops->submit || !a->len || a->len > d->info.max_io || !a->done)
		return -EOPNOTSUPP;
	a->xfer = 0;
	return d->ops->submit(d, a);
}

int vcfs_disk_flush(struct vcfs_disk *d)
{
	return d->ops->flush(d);
}

int vcfs_disk_cas(struct vcfs_disk *d, uint64_t off, const void *expect,
		  const void *newdata)
{
	int rc = check_range(d, off, d->info.lsec);

	if (rc)
		return rc;
	if (d->info.caps & VCFS_DISK_CAP_RDONLY)
		return -EROFS;
	if (!d->ops->cas || d->info.cas_mode == VCFS_CAS_NONE)
		return -VCFS_EUNSAFE;
	return d->ops->cas(d, off, expect, newdata);
}

/* Write zeros in max_io pieces: the fallback for unmap and write-zeroes. */
static int write_zero_buffers(struct vcfs_disk *d, uint64_t off, uint64_t len,
			      unsigned flags)
{
	size_t bl = len < d->info.max_io ? (size_t)len : d->info.max_io;
	void *z = vcfs_disk_buf_alloc(bl);
	int rc = 0;

	if (!z)
		return -ENOMEM;
	while (!rc && len) {
		size_t n = len < bl ? (size_t)len : bl;
		rc = d->ops->write(d, off, z, n, flags);
		off += n;
		len -= n;
	}
	free(z);
	return rc;
}

int vcfs_disk_unmap(struct vcfs_disk *d, uint64_t off, uint64_t len)
{
	int rc = check_range(d, off, len);

	if (rc)
		return rc;
	if (d->info.caps & VCFS_DISK_CAP_RDONLY)
		return -EROFS;
	if (!len)
		return 0;
	if (d->ops->unmap)
		return d->ops->unmap(d, off, len);
	return vcfs_disk_write_zeroes(d, off, len, 0);
}

int vcfs_disk_write_zeroes(struct vcfs_disk *d, uint64_t off, uint64_t len,
			   unsigned flags)
{
	int rc = check_range(d, off, len);

	if (rc)
		return rc;
	if (d->info.caps & VCFS_DISK_CAP_RDONLY)
		return -EROFS;
	if (!len)
		return 0;
	if (d->ops->write_zeroes)
		return d->ops->write_zeroes(d, off, len, flags);
	return write_zero_buffers(d, off, len, flags);
}

int vcfs_disk_pread(struct vcfs_disk *d, uint64_t off, void *buf, size_t len)
{
	uint32_t s = d->info.lsec;
	uint64_t a_off = off - off % s;
	uint64_t a_end = (off + len + s - 1) / s * s;
	char *tmp;
	int rc;

	if (!((off | len) % s))
		return vcfs_disk_read(d, off, buf, len);
	if (off + len < off || a_end > d->info.size)
		return -VCFS_ERANGE;
	tmp = vcfs_disk_buf_alloc(a_end - a_off);
	if (!tmp)
		return -ENOMEM;
	rc = vcfs_disk_read(d, a_off, tmp, a_end - a_off);
	if (!rc)
		memcpy(buf, tmp + (off - a_off), len);
	free(tmp);
	return rc;
}

int vcfs_disk_pwrite(struct vcfs_disk *d, uint64_t off, const void *buf, size_t len,
		     unsigned flags)
{
	uint32_t s = d->info.lsec;
	uint64_t a_off = off - off % s;
	uint64_t a_end = (off + len + s - 1) / s * s;
	char *tmp;
	int rc = 0;

	if (!((off | len) % s))
		return vcfs_disk_write(d, off, buf, len, flags);
	if (off + len < off || a_end > d->info.size)
		return -VCFS_ERANGE;
	tmp = vcfs_disk_buf_alloc(a_end - a_off);
	if (!tmp)
		return -ENOMEM;
	/* read only the partial head and tail sectors */
	if (off % s)
		rc = vcfs_disk_read(d, a_off, tmp, s);
	if (!rc && (off + len) % s && (a_end - s != a_off || !(off % s)))
		rc = vcfs_disk_read(d, a_end - s, tmp + (a_end - s - a_off), s);
	if (!rc) {
		memcpy(tmp + (off - a_off), buf, len);
		rc = vcfs_disk_write(d, a_off, tmp, a_end - a_off, flags);
	}
	free(tmp);
	return rc;
}
