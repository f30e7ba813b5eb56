/*
 * alloc.c - inodes, small blocks and large blocks from resource clusters.
 *
 * Each cluster has a lock record and a bitmap block (ondisk.h).  To allocate,
 * an op locks a cluster, reads its bitmap, sets a bit and adds the bitmap
 * image to its transaction; the cluster lock is kept until the op commits, so
 * no other host can hand out the same entry.  Hosts start from different
 * clusters (cursor = slot * clusters / max_hosts) and so rarely meet.
 *
 * Search: a first pass only tries each cluster's lock (a busy cluster is
 * skipped), a second pass waits for busy ones -- but only for clusters above
 * every cluster lock the op already holds (class order, see fs_int.h).
 * Freeing must lock the owning cluster whatever its number: in order it
 * waits, out of order it retries without waiting for a bound (op.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "fs_int.h"
#include "../common/clock.h"
#include "../common/log.h"

struct kind_geom { uint32_t base, n, per; uint64_t total; };

static void geom(const struct vcfs_fs *fs, int kind, struct kind_geom *g)
{
	const struct vcfs_sb *sb = &fs->sb;

	switch (kind) {
	case VCFS_CK_INODE:
		g->base = 0; g->n = sb->ninode_clusters; g->per = sb->inode_cluster;
		g->total = sb->ninodes;
		break;
	case VCFS_CK_SMALL:
		g->base = sb->ninode_clusters; g->n = sb->nsmall_clusters;
		g->per = sb->small_cluster; g->total = sb->nsmall;
		break;
	default:	/* a grow may change these under us: fs_geom_refresh */
		g->base = sb->ninode_clusters + sb->nsmall_clusters;
		g->n = __atomic_load_n(&sb->nlarge_clusters, __ATOMIC_ACQUIRE);
		g->per = sb->large_cluster;
		g->total = __atomic_load_n(&sb->nlarge, __ATOMIC_ACQUIRE);
		break;
	}
}

/*
 * Read and validate the bitmap of global cluster c (locked by op); *limit:
 * entries that may be used.  A large cluster's bitmap may count fewer entries
 * than the geometry (the last cluster before a grow, not yet extended) or more
 * (a grow we have not seen): the smaller count holds (grow.c).
 */
static int read_cbmp(struct vcfs_op *op, uint32_t c, int kind, uint32_t idx,
		     const struct kind_geom *g, struct vcfs_cbmp_disk **out, uint32_t *limit)
{
	uint64_t blk = vcfs_cluster_bmp_blk(&op->fs->sb, c);
	struct vcfs_cbmp_disk *b;
	uint64_t first = (uint64_t)idx * g->per;
	uint32_t count = (uint32_t)(g->total - first < g->per ? g->total - first : g->per);
	void *p;
	int rc;

	rc = op_read(op, blk, VCFS_T_CBMP, &p);
	if (rc)
		return rc;
	b = p;
	if (le32_get(b->kind) != (uint32_t)kind || le32_get(b->index) != idx ||
	    le64_get(b->first) != first || le32_get(b->nfree) > le32_get(b->count) ||
	    (le32_get(b->count) != count &&
	     (kind != VCFS_CK_LARGE || !le32_get(b->count) || le32_get(b->count) > g->per)))
		return VCFS_CORRUPT("cluster bitmap does not describe its cluster", blk);
	*out = b;
	*limit = le32_get(b->count) < count ? le32_get(b->count) : count;
	return 0;
}

static int bit_get(const uint8_t *b, uint32_t i) { return (b[i / 8] >> (i % 8)) & 1; }
static void bit_set(uint8_t *b, uint32_t i) { b[i / 8] |= (uint8_t)(1u << (i % 8)); }
static void bit_clr(uint8_t *b, uint32_t i) { b[i / 8] &= (uint8_t)~(1u << (i % 8)); }

/* Next clear bit at or after from, below count; count if none. */
static uint32_t next_free(const uint8_t *bits, uint32_t from, uint32_t count)
{
	uint32_t i = from;

	while (i < count) {
		if (i % 8 == 0 && bits[i / 8] == 0xff) {
			i += 8;
			continue;
		}
		if (!bit_get(bits, i))
			return i;
		i++;
	}
	return count;
}

/* Drop a cluster lock taken by this op when nothing was changed under it. */
static void drop_cluster_lock(struct vcfs_op *op, uint32_t c)
{
	uint64_t blk = vcfs_cluster_lock_blk(&op->fs->sb, c);
	uint64_t bmp = vcfs_cluster_bmp_blk(&op->fs->sb, c);

	for (uint32_t i = 0; i < op->nlocks; i++) {
		if (op->locks[i].blkno != blk)
			continue;
		for (uint32_t k = 0; k < op->nbufs; k++)
			if (op->bufs[k].blkno == bmp && op->bufs[k].dirty)
				return;		/* changed earlier in this op: keep */
		op_drop_lock(op, i);	/* back to the lock cache if from there */
		op->max_cluster_lock = 0;
		for (uint32_t k = 0; k < op->nlocks; k++)
			if (!op->locks[k].ino && op->locks[k].blkno > op->max_cluster_lock)
				op->max_cluster_lock = op->locks[k].blkno;
		return;
	}
}

/*
 * Allocate one entry of kind: *entry = inode number, small block index or
 * large block index.
 */
static int alloc_entry(struct vcfs_op *op, int kind, uint64_t *entry)
{
	struct vcfs_fs *fs = op->fs;
	struct kind_geom g;
	uint8_t *skip = NULL;	/* per cluster: 1 full, 2 busy */
	uint32_t start;
	int rc = -ENOSPC;

	geom(fs, kind, &g);
	if (!g.n)
		return -ENOSPC;
	skip = calloc(g.n, 1);
	if (!skip)
		return -ENOMEM;
	pthread_mutex_lock(&fs->misc_mu);
	start = fs->cursor[kind] % g.n;
	pthread_mutex_unlock(&fs->misc_mu);
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t k = 0; k < g.n; k++) {
			uint32_t idx = (start + k) % g.n, c = g.base + idx, bit, count;
			uint64_t lockblk = vcfs_cluster_lock_blk(&fs->sb, c);
			struct vcfs_cbmp_disk *b;
			int had = op_has_lock(op, lockblk), r;

			if (skip[idx] == 1 || (pass == 1 && !skip[idx]))
				continue;
			r = op_lock_cluster(op, c, pass == 1);
			if (r == -EBUSY) {
				skip[idx] = 2;
				continue;
			}
			if (r) {
				rc = r;
				goto out;
			}
			r = read_cbmp(op, c, kind, idx, &g, &b, &count);
			if (r) {
				rc = r;
				goto out;
			}
			bit = le32_get(b->nfree) ? next_free(b->bits, 0, count) : count;
			while (bit < count && kind == VCFS_CK_INODE) {
				uint64_t ino = le64_get(b->first) + bit;
				if (ino_valid(fs, ino)) {
					r = op_trylock_inode(op, ino);
					if (!r)
						break;
					if (r != -EBUSY) {
						rc = r;
						goto out;
					}
				}
				bit = next_free(b->bits, bit + 1, count);
			}
			if (bit >= count) {
				skip[idx] = 1;
				if (!had)
					drop_cluster_lock(op, c);
				continue;
			}
			bit_set(b->bits, bit);
			b->nfree = le32_mk(le32_get(b->nfree) - 1);
			op_dirty(op, b);
			op->bitmaps_changed = 1;
			*entry = le64_get(b->first) + bit;
			pthread_mutex_lock(&fs->misc_mu);
			fs->cursor[kind] = idx;
			pthread_mutex_unlock(&fs->misc_mu);
			rc = 0;
			goto out;
		}
	}
out:
	free(skip);
	return rc;
}

static int free_entry(struct vcfs_op *op, int kind, uint64_t entry)
{
	struct vcfs_fs *fs = op->fs;
	struct kind_geom g;
	struct vcfs_cbmp_disk *b;
	uint32_t idx, bit, c, limit;
	int rc;

	geom(fs, kind, &g);
	if (entry >= g.total && kind == VCFS_CK_LARGE && !fs_geom_refresh(fs))
		geom(fs, kind, &g);	/* allocated by a host that saw a grow */
	if (entry >= g.total)
		return VCFS_CORRUPT("freeing an entry outside its region", entry);
	idx = (uint32_t)(entry / g.per);
	bit = (uint32_t)(entry % g.per);
	c = g.base + idx;
	rc = op_lock_cluster(op, c, 1);
	if (rc)
		return rc;
	rc = read_cbmp(op, c, kind, idx, &g, &b, &limit);
	if (rc)
		return rc;
	if (bit >= limit || !bit_get(b->bits, bit)) {
		vcfs_warn("cluster %u: entry %llu was already free (fsck.vcfs will check)",
			  c, (unsigned long long)entry);
		return 0;
	}
	bit_clr(b->bits, bit);
	b->nfree = le32_mk(le32_get(b->nfree) + 1);
	op_dirty(op, b);
	op->bitmaps_changed = 1;
	return 0;
}

int alloc_inode(struct vcfs_op *op, uint64_t *ino)
{
	return alloc_entry(op, VCFS_CK_INODE, ino);
}

int free_inode(struct vcfs_op *op, uint64_t ino)
{
	return free_entry(op, VCFS_CK_INODE, ino);
}

int alloc_small(struct vcfs_op *op, uint64_t *blk)
{
	uint64_t e;
	int rc = alloc_entry(op, VCFS_CK_SMALL, &e);

	if (!rc)
		*blk = vcfs_small_blk(&op->fs->sb, e);
	return rc;
}

int alloc_large(struct vcfs_op *op, uint64_t *blk)
{
	uint64_t e, had = __atomic_load_n(&op->fs->sb.nlarge, __ATOMIC_ACQUIRE);
	int rc = alloc_entry(op, VCFS_CK_LARGE, &e);

	/* full: perhaps another host grew the datastore */
	if (rc == -ENOSPC && !fs_geom_refresh(op->fs) &&
	    __atomic_load_n(&op->fs->sb.nlarge, __ATOMIC_ACQUIRE) > had)
		rc = alloc_entry(op, VCFS_CK_LARGE, &e);

	if (!rc)
		*blk = vcfs_large_blk(&op->fs->sb, e);
	return rc;
}

int free_small(struct vcfs_op *op, uint64_t blk)
{
	const struct vcfs_sb *sb = &op->fs->sb;

	if (blk < sb->small_start || blk >= sb->small_start + sb->nsmall)
		return VCFS_CORRUPT("small block pointer outside the small-block region", blk);
	op->freed_meta = 1;	/* maybe an indirect or directory block: op_end
				 * checkpoints before it can be reused as data */
	return free_entry(op, VCFS_CK_SMALL, blk - sb->small_start);
}

int free_large(struct vcfs_op *op, uint64_t blk)
{
	const struct vcfs_sb *sb = &op->fs->sb;

	if (blk >= sb->large_start && !((blk - sb->large_start) % sb->lblock_blocks) &&
	    (blk - sb->large_start) / sb->lblock_blocks >= sb->nlarge)
		fs_geom_refresh(op->fs);	/* a host that saw a grow allocated it */
	if (blk < sb->large_start || (blk - sb->large_start) % sb->lblock_blocks ||
	    (blk - sb->large_start) / sb->lblock_blocks >= sb->nlarge)
		return VCFS_CORRUPT("large block pointer outside the large-block region", blk);
	return free_entry(op, VCFS_CK_LARGE, (blk - sb->large_start) / sb->lblock_blocks);
}

/* Sum nfree over every bitmap (read in 1 MiB chunks); cached for 1 s. */
int fs_statfs(struct vcfs_fs *fs, struct vcfs_statfs *out)
{
	const struct vcfs_sb *sb = &fs->sb;
	uint64_t now = vcfs_now_ns(), n = 2ull * fs->ncl, done;
	uint64_t fr[4] = { 0 };
	uint8_t *buf;
	int rc = 0;

	pthread_mutex_lock(&fs->misc_mu);
	if (fs->statfs_at && now - fs->statfs_at < VCFS_NS_PER_S) {
		*out = fs->statfs_cache;
		pthread_mutex_unlock(&fs->misc_mu);
		return 0;
	}
	pthread_mutex_unlock(&fs->misc_mu);
	fs_geom_refresh(fs);	/* df shows a grow within a second */
	n = 2ull * __atomic_load_n(&fs->ncl, __ATOMIC_ACQUIRE);
	buf = vcfs_disk_buf_alloc(256 * VCFS_BLK);
	if (!buf)
		return -ENOMEM;
	for (done = 0; done < n && !rc; ) {
		uint32_t k = (uint32_t)(n - done < 256 ? n - done : 256);
		rc = vcfs_disk_read(fs->d, (sb->cmeta_start + done) * VCFS_BLK, buf,
				    (size_t)k * VCFS_BLK);
		for (uint32_t i = 0; !rc && i < k; i++) {
			uint64_t idx = done + i, blk = sb->cmeta_start + idx;
			const struct vcfs_cbmp_disk *b = (const void *)(buf + (size_t)i * VCFS_BLK);
			uint32_t kind;
			if (idx % 2 == 0)
				continue;
			if (fs->j)	/* our own allocations not home yet */
				vcfs_journal_lookup(fs->j, blk, buf + (size_t)i * VCFS_BLK);
			if (vcfs_mhdr_check(b, VCFS_T_CBMP, blk, sb->volgen) != 0)
				continue;	/* damaged: counts as full (fsck repairs) */
			kind = le32_get(b->kind);
			if (kind >= VCFS_CK_INODE && kind <= VCFS_CK_LARGE &&
			    le32_get(b->nfree) <= le32_get(b->count))
				fr[kind] += le32_get(b->nfree);
		}
		done += k;
	}
	free(buf);
	if (rc)
		return rc;
	out->bsize = VCFS_BLK;
	out->blocks = sb->nsmall + sb->nlarge * sb->lblock_blocks;
	out->bfree = fr[VCFS_CK_SMALL] + fr[VCFS_CK_LARGE] * sb->lblock_blocks;
	out->files = sb->ninodes - VCFS_FIRST_FREE_INO(sb->max_hosts);
	out->ffree = fr[VCFS_CK_INODE];
	out->namemax = VCFS_NAME_MAX;
	pthread_mutex_lock(&fs->misc_mu);
	fs->statfs_cache = *out;
	fs->statfs_at = now ? now : 1;
	pthread_mutex_unlock(&fs->misc_mu);
	return 0;
}
