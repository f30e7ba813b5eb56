/*
 * img.h - shared harness of the libFuzzer targets that parse a datastore
 * (included by one tests/fuzz/fuzz_*.c each; everything here is static).
 *
 * The image lives in memory: a memfd opened through the file: backend as
 * /proc/self/fd/N (buffered: tmpfs refuses O_DIRECT), so every byte the code
 * under test reads goes through disk/ exactly as from a real datastore and no
 * storage syscall is added outside disk/.
 *
 * fz_init() formats a 16 MiB volume once per process (mkfs -H 2 -b 64K -N 256)
 * and populates it through the library, like a real host would: a directory
 * of 150 files (bucket splits, several directory blocks), a file with data in
 * direct blocks and one far past them (an indirect block), short and long
 * symlinks, xattrs, a FIFO, a hard link.  The non-zero blocks of that image
 * are kept as the base; fz_reset() puts them back (after punching the whole
 * memfd) before each input, so inputs never see each other's writes.
 *
 * Mutated metadata almost never carries a valid crc32c, and then every parser
 * stops at the crc check.  Targets therefore reseal (fz_reseal) what they
 * place when the first input byte says so (FZ_RESEAL), so both the crc check
 * and everything behind it are exercised.
 */
#ifndef VCFS_FUZZ_IMG_H
#define VCFS_FUZZ_IMG_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "common/crc32c.h"
#include "common/log.h"
#include "disk/disk.h"
#include "fs/fs.h"
#include "fs/fsck.h"
#include "fs/mkfs.h"
#include "fs/ondisk.h"

#define FZ_IMG_BYTES	(16ull << 20)
#define FZ_NBLK		(FZ_IMG_BYTES / VCFS_BLK)

#define FZ_RESEAL	(1u << 0)	/* input flag: recompute block crcs */
#define FZ_FIXJCRC	(1u << 1)	/* input flag: recompute a journal commit's data crc */

static int fz_memfd = -1;
static char fz_uri[64];
static struct vcfs_sb fz_sb;
static uint8_t *fz_base;		/* base image: non-zero blocks, packed */
static uint64_t *fz_base_blk;
static size_t fz_nbase;
/* inodes of the populated tree (fz_init) */
static uint64_t fz_ino_dir, fz_ino_file, fz_ino_big, fz_ino_link;

static inline void fz_die(const char *what, int rc)
{
	fprintf(stderr, "fuzz harness: %s: %s\n", what, vcfs_strerror(rc));
	abort();
}

static inline void fz_quiet_sink(enum vcfs_log_level lvl, const char *msg, void *arg)
{
	(void)lvl; (void)msg; (void)arg;
}

/* A new handle on the in-memory image (the caller closes it or hands it on). */
static inline struct vcfs_disk *fz_open(void)
{
	struct vcfs_disk_opts o = { .flags = VCFS_DISK_NO_DIRECT, .io_timeout_ms = 1000 };
	struct vcfs_disk *d;
	int rc = vcfs_disk_open(fz_uri, &o, &d);

	if (rc)
		fz_die("opening the memfd image", rc);
	return d;
}

/* Reseal a block that claims to be vcfs metadata (the crc of its type). */
static inline void fz_reseal(void *blk)
{
	const struct vcfs_mhdr *h = blk;

	if (le32_get(h->magic) == VCFS_MAGIC)
		vcfs_mhdr_reseal(blk);
}

/* Recompute the data crc of the journal record at rec (descriptor first). */
static inline void fz_fix_jcrc(uint8_t *rec, size_t nblocks_avail)
{
	const struct vcfs_jdesc_disk *jd = (const void *)rec;
	uint32_t nb = le32_get(jd->nblocks);
	struct vcfs_jcommit_disk *cm;

	if (nb > VCFS_JDESC_MAX || (size_t)nb + 2 > nblocks_avail)
		return;
	cm = (void *)(rec + (size_t)(nb + 1) * VCFS_BLK);
	cm->data_crc = le32_mk(vcfs_crc32c(0, rec, (size_t)(nb + 1) * VCFS_BLK));
	fz_reseal(cm);
}

static inline void fz_must(const char *what, int rc)
{
	if (rc < 0)
		fz_die(what, rc);
}

static inline void fz_populate(void)
{
	struct vcfs_mount_opts mo = { .host_name = "fuzzseed" };
	struct vcfs_fs *fs;
	struct vcfs_file *f;
	struct vcfs_attr a;
	uint64_t root;
	char name[32], buf[3000];

	fz_must("mounting the seed image", vcfs_fs_mount_disk(fz_open(), &mo, &fs));
	root = vcfs_fs_root(fs);
	fz_must("mkdir", vcfs_fs_mkdir(fs, root, "dir", 0755, 0, 0, &a));
	fz_ino_dir = a.ino;
	for (int i = 0; i < 150; i++) {
		snprintf(name, sizeof(name), "entry-%03d", i);
		fz_must("create", vcfs_fs_mknod(fs, fz_ino_dir, name, 0100644, 0, 0, 0, &a));
	}
	fz_must("mkdir", vcfs_fs_mkdir(fs, fz_ino_dir, "sub", 0700, 1, 2, &a));
	fz_must("create", vcfs_fs_create(fs, root, "file", 0100644, 0, 0, 02, &a, &f));
	fz_ino_file = a.ino;
	memset(buf, 'x', sizeof(buf));
	for (int i = 0; i < 6; i++)
		if (vcfs_file_write(f, (uint64_t)i * 4096 + 100, buf, sizeof(buf)) < 0)
			fz_die("write", -EIO);
	fz_must("release", vcfs_file_release(f));
	fz_must("create", vcfs_fs_create(fs, root, "big", 0100600, 0, 0, 02, &a, &f));
	fz_ino_big = a.ino;
	/* 64 KiB blocks after conversion; one past VCFS_NDIRECT needs an indirect */
	if (vcfs_file_write(f, 0, buf, sizeof(buf)) < 0 ||
	    vcfs_file_write(f, 2u << 20, buf, sizeof(buf)) < 0 ||
	    vcfs_file_write(f, (uint64_t)(VCFS_NDIRECT + 3) * (64u << 10), buf, 100) < 0)
		fz_die("write big", -EIO);
	fz_must("release", vcfs_file_release(f));
	fz_must("symlink", vcfs_fs_symlink(fs, root, "short", "file", 0, 0, &a));
	memset(buf, 'l', 2000);
	buf[2000] = 0;
	fz_must("symlink", vcfs_fs_symlink(fs, root, "long", buf, 0, 0, &a));
	fz_ino_link = a.ino;
	fz_must("setxattr", vcfs_fs_setxattr(fs, fz_ino_file, "user.a", "1", 1, 0));
	fz_must("setxattr", vcfs_fs_setxattr(fs, fz_ino_file, "user.bb", buf, 300, 0));
	fz_must("mknod", vcfs_fs_mknod(fs, root, "fifo", 010644, 0, 0, 0, &a));
	fz_must("link", vcfs_fs_link(fs, fz_ino_file, fz_ino_dir, "hard", &a));
	fz_must("unmount", vcfs_fs_unmount(fs));
}

/*
 * Once per process: the memfd, mkfs, the populated tree, the base snapshot.
 * populate = 0 keeps the bare mkfs image (fewer blocks to restore).
 */
static inline void fz_init(int populate)
{
	struct vcfs_mkfs_params p = { .volume_bytes = FZ_IMG_BYTES, .max_hosts = 2,
				      .lblock_size = 64u << 10, .io_timeout_ms = 1000,
				      .inodes = 256, .label = "fuzz" };
	uint8_t *blk = vcfs_disk_buf_alloc(VCFS_BLK);
	struct vcfs_disk *d;

	if (!getenv("VCFS_FUZZ_LOG"))
		vcfs_log_set_sink(fz_quiet_sink, NULL);
	fz_memfd = memfd_create("vcfs-fuzz", MFD_CLOEXEC);
	if (fz_memfd < 0 || ftruncate(fz_memfd, (off_t)FZ_IMG_BYTES))
		fz_die("memfd", -errno);
	snprintf(fz_uri, sizeof(fz_uri), "/proc/self/fd/%d", fz_memfd);
	d = fz_open();
	fz_must("mkfs", vcfs_mkfs(d, &p, VCFS_MKFS_FORCE, &fz_sb));
	vcfs_disk_close(d);
	if (populate)
		fz_populate();
	d = fz_open();
	fz_base = malloc(FZ_IMG_BYTES);
	fz_base_blk = malloc(FZ_NBLK * sizeof(*fz_base_blk));
	if (!blk || !fz_base || !fz_base_blk)
		fz_die("memory", -ENOMEM);
	for (uint64_t b = 0; b < FZ_NBLK; b++) {
		fz_must("reading the seed image", vcfs_disk_read(d, b * VCFS_BLK, blk, VCFS_BLK));
		for (size_t i = 0; i < VCFS_BLK; i++)
			if (blk[i]) {
				memcpy(fz_base + fz_nbase * VCFS_BLK, blk, VCFS_BLK);
				fz_base_blk[fz_nbase++] = b;
				break;
			}
	}
	vcfs_disk_close(d);
	free(blk);
}

/* Put the base image back; returns a handle on it. */
static inline struct vcfs_disk *fz_reset(void)
{
	struct vcfs_disk *d = fz_open();

	fz_must("unmap", vcfs_disk_unmap(d, 0, FZ_IMG_BYTES));
	for (size_t i = 0; i < fz_nbase; i++)
		fz_must("restore", vcfs_disk_write(d, fz_base_blk[i] * VCFS_BLK,
						   fz_base + i * VCFS_BLK, VCFS_BLK, 0));
	return d;
}

/* The base image's copy of block b, or NULL if it is zero there. */
static inline const uint8_t *fz_base_block(uint64_t b)
{
	for (size_t i = 0; i < fz_nbase; i++)
		if (fz_base_blk[i] == b)
			return fz_base + i * VCFS_BLK;
	return NULL;
}

/* Block numbers of the base image's blocks of type t (at most max). */
static inline size_t fz_blocks_of(enum vcfs_btype t, uint64_t *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < fz_nbase && n < max; i++) {
		const struct vcfs_mhdr *h = (const void *)(fz_base + i * VCFS_BLK);
		if (le32_get(h->magic) == VCFS_MAGIC && le16_get(h->type) == t)
			out[n++] = fz_base_blk[i];
	}
	return n;
}

/*
 * Write up to nblk blocks from data at block b (a short last block is padded
 * with the base image's bytes), resealing each when flags say so.
 */
static inline void fz_place(struct vcfs_disk *d, uint64_t b, const uint8_t *data, size_t size,
		     size_t nblk, unsigned flags)
{
	uint8_t *blk = vcfs_disk_buf_alloc(VCFS_BLK);

	for (size_t i = 0; i < nblk && i * VCFS_BLK < size; i++) {
		const uint8_t *base = fz_base_block(b + i);
		size_t n = size - i * VCFS_BLK < VCFS_BLK ? size - i * VCFS_BLK : VCFS_BLK;

		if (base)
			memcpy(blk, base, VCFS_BLK);
		else
			memset(blk, 0, VCFS_BLK);
		memcpy(blk, data + i * VCFS_BLK, n);
		if (flags & FZ_RESEAL)
			fz_reseal(blk);
		fz_must("placing the input", vcfs_disk_write(d, (b + i) * VCFS_BLK, blk,
							     VCFS_BLK, 0));
	}
	free(blk);
}

/* ---- walking a mounted tree: what the FUSE daemon would ask ---- */

struct fz_walk { struct vcfs_fs *fs; uint64_t dir; int depth; unsigned budget; };

static inline void fz_visit(struct fz_walk *w, uint64_t ino);

static inline int fz_fill(void *arg, const char *name, uint64_t ino, uint32_t type,
		   uint64_t next_cookie)
{
	struct fz_walk *w = arg;
	struct vcfs_attr a;

	(void)type; (void)next_cookie;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	(void)vcfs_fs_lookup(w->fs, w->dir, name, &a);
	if (w->budget && w->depth < 4) {
		w->budget--;
		w->depth++;
		fz_visit(w, ino);
		w->depth--;
	}
	return 0;
}

/* getattr, readlink, xattrs, a read and SEEK_DATA/HOLE, readdir + recursion */
static inline void fz_visit(struct fz_walk *w, uint64_t ino)
{
	struct vcfs_attr a;
	struct vcfs_file *f;
	char buf[8192];
	uint64_t off;

	if (vcfs_fs_getattr(w->fs, ino, &a))
		return;
	(void)vcfs_fs_readlink(w->fs, ino, buf, sizeof(buf));
	if (vcfs_fs_listxattr(w->fs, ino, buf, sizeof(buf)) > 0)
		(void)vcfs_fs_getxattr(w->fs, ino, buf, buf + 4096, 4096);
	(void)vcfs_fs_getxattr(w->fs, ino, "user.a", buf, sizeof(buf));
	if ((a.mode & 0170000) == 0040000) {
		uint64_t up = w->dir;

		w->dir = ino;
		(void)vcfs_fs_readdir(w->fs, ino, 0, fz_fill, w);
		w->dir = up;
		(void)vcfs_fs_lookup(w->fs, ino, "entry-077", &a);
		(void)vcfs_fs_lookup(w->fs, ino, "file", &a);
		return;
	}
	if ((a.mode & 0170000) != 0100000 || vcfs_fs_open(w->fs, ino, 0, 0, &f))
		return;
	(void)vcfs_file_read(f, 0, buf, sizeof(buf));
	(void)vcfs_file_read(f, a.size > 4096 ? a.size - 4096 : 0, buf, sizeof(buf));
	(void)vcfs_file_read(f, (uint64_t)(VCFS_NDIRECT + 3) * (64u << 10), buf, 512);
	(void)vcfs_file_lseek(f, 0, 3 /* SEEK_DATA */, &off);
	(void)vcfs_file_lseek(f, 0, 4 /* SEEK_HOLE */, &off);
	(void)vcfs_file_lseek(f, 1u << 20, 3, &off);
	vcfs_file_release(f);
}

/* Mount d read-only (takes d), walk the tree from the root, unmount. */
static inline void fz_mount_walk(struct vcfs_disk *d, unsigned budget)
{
	struct vcfs_mount_opts mo = { .read_only = 1 };
	struct vcfs_fs *fs;
	struct fz_walk w = { .budget = budget };

	if (vcfs_fs_mount_disk(d, &mo, &fs))
		return;
	w.fs = fs;
	fz_visit(&w, vcfs_fs_root(fs));
	vcfs_fs_unmount(fs);
}

/* fsck -n on the image (reads only). */
static inline int fz_fsck_check(void)
{
	static FILE *null;
	struct vcfs_fsck_opts o = { .mode = VCFS_FSCK_CHECK, .skip_live_wait = 1,
				    .force_live = 1 };
	struct vcfs_fsck_stats st;
	struct vcfs_disk *d = fz_open();
	int rc;

	if (!null)
		null = fopen("/dev/null", "w");
	o.out = getenv("VCFS_FUZZ_LOG") ? stderr : null;
	rc = vcfs_fsck(d, &o, &st);
	vcfs_disk_close(d);
	return rc;
}

#endif
