/*
 * bmap.c - block maps: direct pointers, then single, double and triple
 * indirect blocks of VCFS_NINDIRECT pointers each.
 *
 * A map addresses logical blocks of the inode's block size: 4 KiB (small
 * blocks: directories, long symlinks, files up to one large block) or the
 * large block size (VCFS_IF_LARGE).  With 1 MiB blocks the map reaches
 * (256 + 504 + 504^2 + 504^3) MiB, about 122 TiB.  Directory overflow blocks
 * live at logical 2^22 + k, in the triple indirect range.
 *
 * Indirect blocks are metadata: read with op_read, changed in the op's
 * transaction.  For files open on this host, read-only lookups go through a
 * small per-inode cache of indirect blocks, valid while the inode's lock is
 * held; every op that changes the inode clears it (op.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "fs_int.h"
#include "../common/log.h"

#define NI ((uint64_t)VCFS_NINDIRECT)
#define L1_BASE ((uint64_t)VCFS_NDIRECT)
#define L2_BASE (L1_BASE + NI)
#define L3_BASE (L2_BASE + NI * NI)
#define MAP_END (L3_BASE + NI * NI * NI)

uint64_t bmap_limit(void)
{
	return MAP_END;
}

static uint64_t cover(int depth)
{
	uint64_t c = 1;

	while (depth-- > 0)
		c *= NI;
	return c;
}

static int ind_ok(const struct vcfs_fs *fs, uint64_t addr)
{
	return addr >= fs->sb.small_start && addr < fs->sb.small_start + fs->sb.nsmall;
}

static int data_ok(const struct vcfs_fs *fs, const struct vcfs_inode_disk *di, uint64_t addr)
{
	const struct vcfs_sb *sb = &fs->sb;

	if (le32_get(di->flags) & VCFS_IF_LARGE) {
		if (addr < sb->large_start || (addr - sb->large_start) % sb->lblock_blocks)
			return 0;
		if ((addr - sb->large_start) / sb->lblock_blocks <
		    __atomic_load_n(&sb->nlarge, __ATOMIC_ACQUIRE))
			return 1;
		/* beyond the end we know: a host that saw a grow allocated it */
		fs_geom_refresh((struct vcfs_fs *)fs);
		return (addr - sb->large_start) / sb->lblock_blocks <
		       __atomic_load_n(&sb->nlarge, __ATOMIC_ACQUIRE);
	}
	return ind_ok(fs, addr);
}

/* Root slot, depth and base of the subtree holding lb (lb >= L1_BASE). */
static le64 *root_of(struct vcfs_inode_disk *di, uint64_t lb, int *depth, uint64_t *base)
{
	if (lb < L2_BASE) {
		*depth = 1; *base = L1_BASE;
		return &di->ind;
	}
	if (lb < L3_BASE) {
		*depth = 2; *base = L2_BASE;
		return &di->dind;
	}
	*depth = 3; *base = L3_BASE;
	return &di->tind;
}

/* Pointer idx of indirect block addr, through the open inode's cache. */
static int ind_ptr(struct vcfs_op *op, struct vcfs_inode *ip, uint64_t addr, uint32_t idx,
		   uint64_t *out)
{
	struct vcfs_fs *fs = op->fs;
	struct vcfs_ind_disk *ind;
	void *p;
	int rc;

	if (!ind_ok(fs, addr))
		return VCFS_CORRUPT("indirect block pointer outside the small-block region", addr);
	if (ip && !op->rw && !ip->lock_lost) {
		unsigned h = (unsigned)(addr % VCFS_IND_CACHE);
		int hit = 0;
		pthread_mutex_lock(&ip->mu);
		if (ip->ic[h].buf && ip->ic[h].blk == addr) {
			*out = le64_get(((struct vcfs_ind_disk *)(void *)ip->ic[h].buf)->ptr[idx]);
			hit = 1;
		}
		pthread_mutex_unlock(&ip->mu);
		if (hit)
			return 0;
		rc = op_read(op, addr, VCFS_T_IND, &p);
		if (rc)
			return rc;
		ind = p;
		*out = le64_get(ind->ptr[idx]);
		uint8_t *copy = malloc(VCFS_BLK);
		if (copy) {
			memcpy(copy, p, VCFS_BLK);
			pthread_mutex_lock(&ip->mu);
			free(ip->ic[h].buf);
			ip->ic[h].buf = copy;
			ip->ic[h].blk = addr;
			pthread_mutex_unlock(&ip->mu);
		}
		return 0;
	}
	rc = op_read(op, addr, VCFS_T_IND, &p);
	if (rc)
		return rc;
	ind = p;
	*out = le64_get(ind->ptr[idx]);
	return 0;
}

int bmap_get(struct vcfs_op *op, struct vcfs_inode *ip, const struct vcfs_inode_disk *di,
	     uint64_t lb, uint64_t *bp)
{
	uint64_t base, p, rel;
	int depth, rc;

	if (lb < L1_BASE) {
		*bp = le64_get(di->direct[lb]);
		goto check;
	}
	if (lb >= MAP_END) {
		*bp = 0;
		return 0;
	}
	p = le64_get(*root_of((struct vcfs_inode_disk *)di, lb, &depth, &base));
	rel = lb - base;
	for (int d = depth; d > 0 && p; d--) {
		uint64_t sub = cover(d - 1);
		rc = ind_ptr(op, ip, VCFS_BP_ADDR(p), (uint32_t)(rel / sub), &p);
		if (rc)
			return rc;
		rel %= sub;
	}
	*bp = p;
check:
	if (*bp && !data_ok(op->fs, di, VCFS_BP_ADDR(*bp)) && !S_ISDIR(le32_get(di->mode)))
		return VCFS_CORRUPT("block pointer outside its region", VCFS_BP_ADDR(*bp));
	if (*bp && S_ISDIR(le32_get(di->mode)) && !ind_ok(op->fs, VCFS_BP_ADDR(*bp)))
		return VCFS_CORRUPT("directory block pointer outside the small-block region",
				    VCFS_BP_ADDR(*bp));
	return 0;
}

int bmap_set(struct vcfs_op *op, struct vcfs_inode_disk *di, uint64_t lb, uint64_t bp)
{
	void *container = di;
	le64 *slot;
	uint64_t base, rel;
	int depth, rc;

	op_dirty(op, di);
	if (lb < L1_BASE) {
		di->direct[lb] = le64_mk(bp);
		return 0;
	}
	if (lb >= MAP_END)
		return -EFBIG;
	slot = root_of(di, lb, &depth, &base);
	rel = lb - base;
	for (int d = depth; d > 0; d--) {
		uint64_t sub = cover(d - 1), addr = VCFS_BP_ADDR(le64_get(*slot));
		struct vcfs_ind_disk *ind;
		void *p;

		if (!addr) {
			if (!bp)
				return 0;	/* clearing inside a hole */
			rc = alloc_small(op, &addr);
			if (rc)
				return rc;
			rc = op_new(op, addr, VCFS_T_IND, &p);
			if (rc)
				return rc;
			*slot = le64_mk(addr);
			op_dirty(op, container);
			di->blocks = le64_mk(le64_get(di->blocks) + VCFS_BLK / 512);
		} else {
			if (!ind_ok(op->fs, addr))
				return VCFS_CORRUPT("indirect block pointer outside the small-block "
						    "region", addr);
			rc = op_read(op, addr, VCFS_T_IND, &p);
			if (rc)
				return rc;
		}
		ind = p;
		slot = &ind->ptr[rel / sub];
		container = ind;
		rel %= sub;
	}
	*slot = le64_mk(bp);
	op_dirty(op, container);
	return 0;
}

/* Free one data block pointer of di. */
static int free_data(struct vcfs_op *op, struct vcfs_inode_disk *di, uint64_t bp)
{
	struct vcfs_fs *fs = op->fs;
	uint64_t addr = VCFS_BP_ADDR(bp), n;
	int large = !!(le32_get(di->flags) & VCFS_IF_LARGE), rc;

	if (!data_ok(fs, di, addr))
		return VCFS_CORRUPT("block pointer outside its region", addr);
	rc = large ? free_large(op, addr) : free_small(op, addr);
	if (rc)
		return rc;
	n = large ? fs->sb.lblock_size : VCFS_BLK;
	if (S_ISREG(le32_get(di->mode)))
		op_unmap(op, addr * VCFS_BLK, n);
	else
		op_forget(op, addr);	/* a directory or symlink block */
	di->blocks = le64_mk(le64_get(di->blocks) - n / 512);
	op_dirty(op, di);
	return 0;
}

static int is_zero(const le64 *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].v)
			return 0;
	return 1;
}

/* Free [from, to) under the slot (depth: 0 = data pointer).  1 = stopped. */
static int free_slot(struct vcfs_op *op, struct vcfs_inode_disk *di, le64 *slot,
		     void *container, int depth, uint64_t base, uint64_t from, uint64_t to)
{
	uint64_t bp = le64_get(*slot), addr = VCFS_BP_ADDR(bp), sub, i;
	struct vcfs_ind_disk *ind;
	void *p;
	int rc;

	if (!bp || base >= to || base + cover(depth) <= from)
		return 0;
	if (depth == 0) {
		if (op_room(op) < 4)
			return 1;
		rc = free_data(op, di, bp);
		if (rc)
			return rc;
		*slot = le64_mk(0);
		op_dirty(op, container);
		return 0;
	}
	if (!ind_ok(op->fs, addr))
		return VCFS_CORRUPT("indirect block pointer outside the small-block region", addr);
	rc = op_read(op, addr, VCFS_T_IND, &p);
	if (rc)
		return rc;
	ind = p;
	sub = cover(depth - 1);
	for (i = from > base ? (from - base) / sub : 0; i < NI && base + i * sub < to; i++) {
		rc = free_slot(op, di, &ind->ptr[i], ind, depth - 1, base + i * sub, from, to);
		if (rc)
			return rc;
	}
	if (is_zero(ind->ptr, NI)) {
		if (op_room(op) < 4)
			return 1;
		rc = free_small(op, addr);
		if (rc)
			return rc;
		op_forget(op, addr);
		di->blocks = le64_mk(le64_get(di->blocks) - VCFS_BLK / 512);
		*slot = le64_mk(0);
		op_dirty(op, container);
		op_dirty(op, di);
	}
	return 0;
}

int bmap_free(struct vcfs_op *op, struct vcfs_inode_disk *di, uint64_t from, uint64_t to)
{
	int rc;

	op_dirty(op, di);
	for (uint64_t i = from; i < L1_BASE && i < to; i++) {
		uint64_t bp = le64_get(di->direct[i]);
		if (!bp)
			continue;
		if (op_room(op) < 4)
			return 1;
		rc = free_data(op, di, bp);
		if (rc)
			return rc;
		di->direct[i] = le64_mk(0);
	}
	rc = free_slot(op, di, &di->ind, di, 1, L1_BASE, from, to);
	if (!rc)
		rc = free_slot(op, di, &di->dind, di, 2, L2_BASE, from, to);
	if (!rc)
		rc = free_slot(op, di, &di->tind, di, 3, L3_BASE, from, to);
	return rc;
}

static int next_in(struct vcfs_op *op, uint64_t bp, int depth, uint64_t base, uint64_t lb,
		   int want, uint64_t *found)
{
	uint64_t sub, i;
	struct vcfs_ind_disk *ind;
	void *p;
	int rc;

	if (base + cover(depth) <= lb)
		return 0;
	if (!bp || depth == 0) {
		int data = bp && !(bp & VCFS_BP_UNWRITTEN);
		if (data != want)
			return 0;
		*found = base > lb ? base : lb;
		return 1;
	}
	if (!ind_ok(op->fs, VCFS_BP_ADDR(bp)))
		return VCFS_CORRUPT("indirect block pointer outside the small-block region",
				    VCFS_BP_ADDR(bp));
	rc = op_read(op, VCFS_BP_ADDR(bp), VCFS_T_IND, &p);
	if (rc)
		return rc;
	ind = p;
	sub = cover(depth - 1);
	for (i = lb > base ? (lb - base) / sub : 0; i < NI; i++) {
		rc = next_in(op, le64_get(ind->ptr[i]), depth - 1, base + i * sub, lb, want, found);
		if (rc)
			return rc;
	}
	return 0;
}

int bmap_next(struct vcfs_op *op, const struct vcfs_inode_disk *di, uint64_t lb,
	      int want_data, uint64_t *found)
{
	int rc;

	*found = UINT64_MAX;
	for (uint64_t i = lb; i < L1_BASE; i++) {
		uint64_t bp = le64_get(di->direct[i]);
		int data = bp && !(bp & VCFS_BP_UNWRITTEN);
		if (data == want_data) {
			*found = i;
			return 0;
		}
	}
	rc = next_in(op, le64_get(di->ind), 1, L1_BASE, lb, want_data, found);
	if (!rc)
		rc = next_in(op, le64_get(di->dind), 2, L2_BASE, lb, want_data, found);
	if (!rc)
		rc = next_in(op, le64_get(di->tind), 3, L3_BASE, lb, want_data, found);
	return rc < 0 ? rc : 0;
}

int bmap_alloc_data(struct vcfs_op *op, const struct vcfs_inode_disk *di, uint64_t *blk)
{
	return (le32_get(di->flags) & VCFS_IF_LARGE) ? alloc_large(op, blk) : alloc_small(op, blk);
}

uint64_t bmap_blocks512(const struct vcfs_fs *fs, const struct vcfs_inode_disk *di)
{
	return bmap_bsize(fs, di) / 512;
}

int bmap_to_large(struct vcfs_op *op, struct vcfs_inode_disk *di)
{
	struct vcfs_fs *fs = op->fs;
	uint32_t lbs = fs->sb.lblock_size, nsb = lbs / VCFS_BLK;
	uint64_t L = 0, newbp = 0;
	uint8_t *buf = NULL;
	int any_alloc = 0, any_written = 0, rc;

	if (le32_get(di->flags) & VCFS_IF_LARGE)
		return 0;
	for (uint32_t lb = 0; lb < nsb; lb++) {
		uint64_t bp;
		rc = bmap_get(op, NULL, di, lb, &bp);
		if (rc)
			return rc;
		any_alloc |= bp != 0;
		any_written |= bp && !(bp & VCFS_BP_UNWRITTEN);
	}
	if (any_alloc) {
		rc = alloc_large(op, &L);
		if (rc)
			return rc;
		newbp = L | VCFS_BP_UNWRITTEN;
	}
	if (any_written) {
		buf = vcfs_disk_buf_alloc(lbs);
		if (!buf)
			return -ENOMEM;
		for (uint32_t lb = 0; lb < nsb; lb++) {
			uint64_t bp;
			rc = bmap_get(op, NULL, di, lb, &bp);
			if (!rc && bp && !(bp & VCFS_BP_UNWRITTEN))
				rc = vcfs_disk_read(fs->d, VCFS_BP_ADDR(bp) * VCFS_BLK,
						    buf + (size_t)lb * VCFS_BLK, VCFS_BLK);
			if (rc)
				goto out;
		}
		rc = vcfs_hb_write_ok(fs->hb);
		if (!rc)
			rc = vcfs_disk_write(fs->d, L * VCFS_BLK, buf, lbs, 0);
		if (rc)
			goto out;
		op->data_written = 1;
		newbp = L;
	}
	rc = bmap_free(op, di, 0, UINT64_MAX);
	if (rc == 1) {
		vcfs_err("inode: converting to large blocks needs a bigger journal");
		rc = -ENOSPC;
	}
	if (rc)
		goto out;
	di->flags = le32_mk(le32_get(di->flags) | VCFS_IF_LARGE);
	if (any_alloc) {
		di->direct[0] = le64_mk(newbp);
		di->blocks = le64_mk(le64_get(di->blocks) + lbs / 512);
	}
	op_dirty(op, di);
out:
	free(buf);
	return rc;
}
