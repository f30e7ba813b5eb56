/*
 * disk_int.h - what a backend implements.  Only disk/ includes this.
 *
 * vcfs_disk_* in disk.c check alignment and range, split requests larger than
 * info.max_io, then call the vtable; a backend therefore sees only aligned,
 * in-range requests of at most max_io bytes (buffers may still be unaligned).
 */
#ifndef VCFS_DISK_INT_H
#define VCFS_DISK_INT_H

#include "disk.h"

struct vcfs_disk_ops {
	int (*read)(struct vcfs_disk *d, uint64_t off, void *buf, size_t len);
	int (*write)(struct vcfs_disk *d, uint64_t off, const void *buf, size_t len,
		     unsigned flags);
	int (*flush)(struct vcfs_disk *d);
	int (*cas)(struct vcfs_disk *d, uint64_t off, const void *expect,
		   const void *newdata);
	/* NULL: disk.c writes zeros instead (and unmap is then write-zeroes) */
	int (*unmap)(struct vcfs_disk *d, uint64_t off, uint64_t len);
	int (*write_zeroes)(struct vcfs_disk *d, uint64_t off, uint64_t len,
			    unsigned flags);
	void (*close)(struct vcfs_disk *d);
	/* NULL: the size seen at open is all this handle ever uses */
	int (*get_size)(struct vcfs_disk *d, uint64_t *size);
	/* NULL: no asynchronous path (vcfs_disk_submit gives -EOPNOTSUPP) */
	int (*submit)(struct vcfs_disk *d, struct vcfs_disk_aio *a);
};

struct vcfs_disk {
	const struct vcfs_disk_ops *ops;
	struct vcfs_disk_info info;
	struct vcfs_disk_opts opts;	/* io_timeout_ms filled in */
	void *priv;			/* backend state */
	struct vcfs_disk *lower;	/* for layers */
};

/* Parsed URI; every string is owned by the struct (vcfs_uri_free). */
struct vcfs_uri {
	char *scheme;		/* "file", "iscsi", "nfs", "rados" */
	char *user, *password;	/* iSCSI CHAP (percent-decoded) */
	char *host;		/* iscsi, nfs */
	int port;		/* 0 = default */
	char *path;		/* file: the path; nfs: /export/path/file */
	char *target;		/* iscsi: the IQN */
	int lun;		/* iscsi */
	char *pool, *image;	/* rados */
	char *query;		/* raw query string after '?', or NULL */
};

int vcfs_uri_parse(const char *s, struct vcfs_uri *u);
void vcfs_uri_free(struct vcfs_uri *u);
/* Value of key in the query string (malloc'd), or NULL. */
char *vcfs_uri_query_get(const struct vcfs_uri *u, const char *key);

/* Allocate a disk with ops and opts (defaults applied); priv left NULL. */
struct vcfs_disk *vcfs_disk_new(const struct vcfs_disk_ops *ops,
				const struct vcfs_disk_opts *opts);
/* Check a sector size reported by a backend. */
int vcfs_disk_check_geometry(struct vcfs_disk_info *info);

/* Backends: each fills *out on success. */
int vcfs_file_open(const struct vcfs_uri *u, const struct vcfs_disk_opts *o,
		   struct vcfs_disk **out);
int vcfs_iscsi_open(const struct vcfs_uri *u, const struct vcfs_disk_opts *o,
		    struct vcfs_disk **out);
int vcfs_nfs_open(const struct vcfs_uri *u, const struct vcfs_disk_opts *o,
		  struct vcfs_disk **out);
int vcfs_rados_open(const struct vcfs_uri *u, const struct vcfs_disk_opts *o,
		    struct vcfs_disk **out);

#endif
