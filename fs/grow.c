/*
 * grow.c - grow a datastore, online, into space added to its backend.
 *
 * Only the large-block region grows (VM disks are what fills a datastore);
 * inodes, small blocks and journals keep the sizes mkfs gave them.  mkfs
 * reserves cluster records for nlarge_clusters_max large-block clusters (its
 * grow limit, mkfs.vcfs -G, default 16 times the volume up to 64 TiB), so a
 * grow adds clusters in place and no metadata ever moves.
 *
 * Protocol (the grower is a mounted host; the others stay mounted):
 *  1. take the volume lock record EXCL (one grow at a time; fsck runs only
 *     with no live host), re-read the header, ask the backend for its size;
 *  2. header: VCFS_FEAT_INCOMPAT_RESIZE_INPROG + grow_target, written as
 *     always (backup in the current last block, then block 0, FUA each).
 *     From here a host that mounts refuses and says to run `vcfs grow` again;
 *     hosts already mounted ignore a header with the bit set;
 *  3. write the new clusters' lock records (free) and sealed empty bitmaps
 *     into their reserved slots, flush: nothing refers to them yet;
 *  4. header: the new volume_blocks, nlarge and nlarge_clusters, the bit
 *     cleared; backup in the NEW last block first, then block 0.  This write
 *     of block 0 is the commit point;
 *  5. a cluster that used to be the last one may have been partial: its
 *     bitmap's count is raised to the full cluster in a journaled op under
 *     its lock.  Until then every host allocates in it only below the count
 *     the bitmap has (alloc.c uses the smaller of bitmap and geometry), so a
 *     short count wastes space, never corrupts: the next grow or fsck.vcfs
 *     (GR02) extends it;
 *  6. release the volume lock with obj_version + 1.
 * A crash before 4 leaves the bit set: mounts refuse, `vcfs grow URI` finishes
 * the recorded target (3 rewrites blocks nobody uses, so repeating it is
 * harmless), fsck.vcfs reports it as GR01.  After 4 the grow is done, but for
 * the space step 5 would have given back.
 *
 * Every write here checks vcfs_hb_write_ok first: a grower that lost its
 * lease (fenced) stops like any host, with the header still consistent.
 *
 * Other hosts learn the new geometry lazily (fs_geom_refresh): when a large
 * allocation finds no space, when statfs runs (its result is cached for one
 * second), and when a block pointer lies beyond the end they know.  A host
 * adopts it only once its own disk handle sees the new size
 * (vcfs_disk_refresh_size); a backend that cannot tell keeps the old
 * geometry, safely, until that host remounts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fs_int.h"
#include "mkfs.h"
#include "../common/log.h"

#define GROW_CHUNK	256	/* blocks per write of cluster records */

/* Adopt a grown header if one is committed and our disk handle reaches it. */
int fs_geom_refresh(struct vcfs_fs *fs)
{
	void *blk = vcfs_disk_buf_alloc(VCFS_BLK);
	struct vcfs_sb nsb;
	int rc;

	if (!blk)
		return -ENOMEM;
	rc = vcfs_disk_read(fs->d, 0, blk, VCFS_BLK);
	if (!rc)
		rc = vcfs_super_decode(blk, VCFS_SUPER_BLKNO, &nsb);
	free(blk);
	if (rc)
		return rc;
	if (memcmp(nsb.uuid, fs->sb.uuid, 16) || nsb.volgen != fs->sb.volgen) {
		vcfs_err("the volume header now names another datastore (reformatted under "
			 "a mounted host?); unmount this host");
		return -VCFS_ECORRUPT;
	}
	if ((nsb.feat_incompat & VCFS_FEAT_INCOMPAT_RESIZE_INPROG) ||
	    nsb.nlarge <= __atomic_load_n(&fs->sb.nlarge, __ATOMIC_ACQUIRE))
		return 0;
	if (nsb.volume_blocks * VCFS_BLK > vcfs_disk_info(fs->d)->size) {
		rc = vcfs_disk_refresh_size(fs->d);
		if (rc || nsb.volume_blocks * VCFS_BLK > vcfs_disk_info(fs->d)->size) {
			if (!fs->grow_warned) {
				fs->grow_warned = 1;
				vcfs_warn("the datastore was grown to %llu MiB but this host's "
					  "backend does not show the new size%s%s; remount "
					  "this host to use the new space",
					  (unsigned long long)(nsb.volume_blocks * VCFS_BLK >> 20),
					  rc ? ": " : "", rc ? vcfs_strerror(rc) : "");
			}
			return 0;
		}
	}
	pthread_mutex_lock(&fs->misc_mu);
	if (nsb.nlarge > fs->sb.nlarge) {
		/* readers load nlarge_clusters (acquire) before nlarge: one that
		 * sees the new cluster count sees the new block count too */
		__atomic_store_n(&fs->sb.volume_blocks, nsb.volume_blocks, __ATOMIC_RELAXED);
		__atomic_store_n(&fs->sb.nlarge, nsb.nlarge, __ATOMIC_RELEASE);
		__atomic_store_n(&fs->sb.nlarge_clusters, nsb.nlarge_clusters, __ATOMIC_RELEASE);
		__atomic_store_n(&fs->ncl, fs->sb.ninode_clusters + fs->sb.nsmall_clusters +
				 nsb.nlarge_clusters, __ATOMIC_RELEASE);
		fs->sb.grow_time = nsb.grow_time;
		fs->statfs_at = 0;
		vcfs_info("the datastore grew to %llu MiB (%llu large blocks)",
			  (unsigned long long)(nsb.volume_blocks * VCFS_BLK >> 20),
			  (unsigned long long)nsb.nlarge);
	}
	pthread_mutex_unlock(&fs->misc_mu);
	return 0;
}

/* Header write under our lease. */
static int write_header(struct vcfs_fs *fs, struct vcfs_sb *sb)
{
	int rc = vcfs_hb_write_ok(fs->hb);

	if (!rc)
		rc = vcfs_write_super(fs->d, sb);
	if (!rc)
		rc = vcfs_disk_flush(fs->d);
	return rc;
}

/* Step 3: free lock records and empty bitmaps for large clusters [from, to). */
static int write_new_clusters(struct vcfs_fs *fs, const struct vcfs_sb *nsb,
			      uint32_t from, uint32_t to)
{
	uint32_t base = nsb->ninode_clusters + nsb->nsmall_clusters;
	uint64_t blk = vcfs_cluster_lock_blk(nsb, base + from);
	uint64_t end = vcfs_cluster_lock_blk(nsb, base + to);
	uint8_t *buf = vcfs_disk_buf_alloc(GROW_CHUNK * VCFS_BLK);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	while (blk < end && !rc) {
		uint32_t n = (uint32_t)(end - blk < GROW_CHUNK ? end - blk : GROW_CHUNK);
		memset(buf, 0, (size_t)n * VCFS_BLK);
		for (uint32_t i = 1; i < n; i += 2)	/* blk is a lock record: even */
			vcfs_mkfs_cbmp(nsb, (uint32_t)((blk + i - nsb->cmeta_start) / 2),
				       buf + (size_t)i * VCFS_BLK);
		rc = vcfs_hb_write_ok(fs->hb);
		if (!rc)
			rc = vcfs_disk_write(fs->d, blk * VCFS_BLK, buf, (size_t)n * VCFS_BLK, 0);
		blk += n;
	}
	free(buf);
	return rc ? rc : vcfs_disk_flush(fs->d);
}

/*
 * Step 5: every large cluster whose bitmap counts fewer entries than the
 * geometry gives it (the last cluster before a grow) is extended.  Returns
 * the number of clusters extended or -errno.
 */
static int extend_short_clusters(struct vcfs_fs *fs)
{
	const struct vcfs_sb *sb = &fs->sb;
	uint32_t base = sb->ninode_clusters + sb->nsmall_clusters, n = 0;
	uint8_t *bmp = vcfs_disk_buf_alloc(VCFS_BLK);
	int rc = 0;

	if (!bmp)
		return -ENOMEM;
	for (uint32_t i = 0; i < sb->nlarge_clusters && !rc; i++) {
		struct vcfs_cluster_geom g;
		struct vcfs_op op;
		struct vcfs_cbmp_disk *b;
		uint32_t c = base + i, have;
		void *p;

		vcfs_cluster_geom(sb, c, &g);
		/* a look without the lock first: nearly every cluster is fine */
		rc = vcfs_disk_read(fs->d, vcfs_cluster_bmp_blk(sb, c) * VCFS_BLK, bmp, VCFS_BLK);
		if (rc)
			break;
		b = (struct vcfs_cbmp_disk *)bmp;
		if (vcfs_mhdr_check(b, VCFS_T_CBMP, vcfs_cluster_bmp_blk(sb, c), sb->volgen) ||
		    le32_get(b->count) >= g.count)
			continue;
		rc = op_begin(fs, &op);
		if (rc)
			break;
		rc = op_lock_cluster(&op, c, 1);
		if (!rc)
			rc = op_read(&op, vcfs_cluster_bmp_blk(sb, c), VCFS_T_CBMP, &p);
		if (!rc) {
			b = p;
			have = le32_get(b->count);
			if (le32_get(b->kind) != VCFS_CK_LARGE || le32_get(b->index) != g.index ||
			    le64_get(b->first) != g.first || have > g.count ||
			    le32_get(b->nfree) > have) {
				rc = VCFS_CORRUPT("cluster bitmap does not describe its cluster",
						  vcfs_cluster_bmp_blk(sb, c));
			} else if (have < g.count) {
				/* bits past the old count were never set (mkfs zeroes them) */
				b->count = le32_mk(g.count);
				b->nfree = le32_mk(le32_get(b->nfree) + g.count - have);
				op_dirty(&op, b);
				op.bitmaps_changed = 1;
				n++;
			}
		}
		rc = op_end(&op, rc);
	}
	free(bmp);
	return rc ? rc : (int)n;
}

int vcfs_fs_grow(struct vcfs_fs *fs, uint64_t want_bytes, struct vcfs_grow_result *res)
{
	struct vcfs_sb sb, nsb;
	struct vcfs_lock_info busy;
	uint64_t dev_blocks, target, nlarge, cap_blocks;
	uint32_t nlc;
	char who[80];
	int rc, ext;

	memset(res, 0, sizeof(*res));
	rc = fs_check(fs, 1);
	if (rc)
		return rc;
	rc = vcfs_lock_acquire(fs->hb, VCFS_VOLLOCK_BLKNO, VCFS_LOCK_EXCL, VCFS_LOCK_WAIT,
			       fs->lock_wait_ms, NULL, &busy);
	if (rc) {
		if (rc == -EBUSY) {
			vcfs_hb_slot_name(fs->hb, busy.holders[0].slot, who, sizeof(who));
			vcfs_err("the volume lock is held by host %s (slot %u): another grow is "
				 "running; try again when it ends", who, busy.holders[0].slot);
		}
		return rc;
	}
	rc = vcfs_disk_refresh_size(fs->d);
	if (rc && rc != -EOPNOTSUPP)
		goto out;
	rc = vcfs_read_super(fs->d, &sb, NULL);
	if (rc)
		goto out;
	dev_blocks = vcfs_disk_info(fs->d)->size / VCFS_BLK;
	cap_blocks = vcfs_grow_limit(&sb) / VCFS_BLK;
	res->old_bytes = sb.volume_blocks * VCFS_BLK;
	res->limit_bytes = cap_blocks * VCFS_BLK;
	res->old_clusters = sb.nlarge_clusters;
	if (sb.feat_incompat & VCFS_FEAT_INCOMPAT_RESIZE_INPROG) {
		res->resumed = 1;
		target = sb.grow_target;
		vcfs_info("finishing an interrupted grow to %llu MiB",
			  (unsigned long long)(target * VCFS_BLK >> 20));
		if (want_bytes / VCFS_BLK > target)
			vcfs_warn("finishing the interrupted grow first; run vcfs grow again "
				  "for the rest");
	} else {
		target = want_bytes ? want_bytes / VCFS_BLK : dev_blocks;
	}
	if (target > dev_blocks) {
		vcfs_err("the backend holds %llu MiB, less than the %llu MiB asked for: "
			 "enlarge the LUN or file first",
			 (unsigned long long)(dev_blocks * VCFS_BLK >> 20),
			 (unsigned long long)(target * VCFS_BLK >> 20));
		rc = -VCFS_ERANGE;
		goto out;
	}
	if (target > cap_blocks) {
		res->capped = 1;
		vcfs_warn("this datastore can grow to %llu MiB at most (mkfs.vcfs -G sets the "
			  "limit); the rest of the %llu MiB stays unused",
			  (unsigned long long)(cap_blocks * VCFS_BLK >> 20),
			  (unsigned long long)(target * VCFS_BLK >> 20));
		target = cap_blocks;
	}
	nlarge = target > sb.large_start + 1 ? (target - 1 - sb.large_start) / sb.lblock_blocks : 0;
	if (!res->resumed && nlarge <= sb.nlarge) {
		res->new_bytes = res->old_bytes;
		res->new_clusters = sb.nlarge_clusters;
		ext = extend_short_clusters(fs);
		rc = ext < 0 ? ext : 0;
		if (!rc && !want_bytes)
			vcfs_info("nothing to grow: the volume already uses the %llu MiB its "
				  "backend has%s", (unsigned long long)(res->old_bytes >> 20),
				  ext > 0 ? " (a cluster left short by an earlier grow was "
				  "extended)" : "");
		goto out;
	}
	if (nlarge < sb.nlarge)
		nlarge = sb.nlarge;
	nlc = (uint32_t)((nlarge + sb.large_cluster - 1) / sb.large_cluster);

	/* 2. in progress */
	if (!res->resumed) {
		sb.feat_incompat |= VCFS_FEAT_INCOMPAT_RESIZE_INPROG;
		sb.grow_target = target;
		rc = write_header(fs, &sb);
		if (rc)
			goto out;
	}
	/* 3. the new clusters */
	nsb = sb;
	nsb.nlarge = nlarge;
	nsb.nlarge_clusters = nlc;
	nsb.volume_blocks = target;
	if (nlc > sb.nlarge_clusters) {
		rc = write_new_clusters(fs, &nsb, sb.nlarge_clusters, nlc);
		if (rc)
			goto out;
	}
	/* 4. commit */
	nsb.feat_incompat &= ~VCFS_FEAT_INCOMPAT_RESIZE_INPROG;
	nsb.grow_target = 0;
	nsb.grow_time = (uint64_t)time(NULL);
	rc = write_header(fs, &nsb);
	if (rc)
		goto out;
	res->grown = 1;
	res->new_bytes = target * VCFS_BLK;
	res->added_large = nlarge - sb.nlarge;
	res->new_clusters = nlc;
	vcfs_info("grew the datastore from %llu MiB to %llu MiB (+%llu large blocks, %u "
		  "clusters)", (unsigned long long)(res->old_bytes >> 20),
		  (unsigned long long)(res->new_bytes >> 20),
		  (unsigned long long)res->added_large, nlc);
	/* 5. our own view first, then the short cluster */
	rc = fs_geom_refresh(fs);
	if (!rc) {
		ext = extend_short_clusters(fs);
		rc = ext < 0 ? ext : 0;
	}
	if (rc)
		vcfs_warn("the grow is committed, but extending the last old cluster failed "
			  "(%s): part of it stays unused until vcfs grow or fsck.vcfs runs again",
			  vcfs_strerror(rc));
out:
	vcfs_lock_release(fs->hb, VCFS_VOLLOCK_BLKNO, 1);
	return rc;
}
