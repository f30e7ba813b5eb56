/*
 * mkfs.c - format a datastore; read and write the volume header.
 * See mkfs.h for what is written and in which order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mkfs.h"
#include "../common/log.h"
#include "../lock/lock.h"

#define CHUNK_BLOCKS 256	/* 1 MiB writes for the cluster region */

int vcfs_read_super(struct vcfs_disk *d, struct vcfs_sb *sb, int *used_backup)
{
	const struct vcfs_disk_info *di = vcfs_disk_info(d);
	uint64_t last = di->size / VCFS_BLK - 1;
	void *blk = vcfs_disk_buf_alloc(VCFS_BLK);
	int rc, rc2;

	if (!blk)
		return -ENOMEM;
	if (used_backup)
		*used_backup = 0;
	rc = vcfs_disk_read(d, 0, blk, VCFS_BLK);
	if (!rc)
		rc = vcfs_super_decode(blk, VCFS_SUPER_BLKNO, sb);
	if (rc == -VCFS_ECORRUPT || rc == -VCFS_ENOTVCFS) {
		/* the backup sits in the last block of the volume as formatted;
		 * a grown LUN moved the end, so try the recorded end first */
		rc2 = vcfs_disk_read(d, last * VCFS_BLK, blk, VCFS_BLK);
		if (!rc2)
			rc2 = vcfs_super_decode(blk, last, sb);
		if (!rc2) {
			vcfs_warn("volume header at block 0 is damaged; using the backup "
				  "in block %llu (run fsck.vcfs to repair)",
				  (unsigned long long)last);
			if (used_backup)
				*used_backup = 1;
			rc = 0;
		}
	}
	if (!rc && sb->volume_blocks > di->size / VCFS_BLK) {
		vcfs_err("the volume header says %llu MiB but the datastore has %llu MiB: "
			 "the LUN or file was shrunk",
			 (unsigned long long)(sb->volume_blocks * VCFS_BLK >> 20),
			 (unsigned long long)(di->size >> 20));
		rc = -VCFS_ECORRUPT;
	}
	free(blk);
	return rc;
}

int vcfs_write_super(struct vcfs_disk *d, struct vcfs_sb *sb)
{
	void *blk = vcfs_disk_buf_alloc(VCFS_BLK);
	int rc;

	if (!blk)
		return -ENOMEM;
	sb->seq++;
	vcfs_super_encode(sb, blk, sb->volume_blocks - 1);
	rc = vcfs_disk_write(d, (sb->volume_blocks - 1) * VCFS_BLK, blk, VCFS_BLK, VCFS_IO_FUA);
	if (!rc) {
		vcfs_super_encode(sb, blk, VCFS_SUPER_BLKNO);
		rc = vcfs_disk_write(d, 0, blk, VCFS_BLK, VCFS_IO_FUA);
	}
	free(blk);
	return rc;
}

/* Refuse to format under live hosts: the slots of the old volume must be quiet. */
static int check_no_live_hosts(struct vcfs_disk *d)
{
	struct vcfs_slot_info *info = NULL;
	struct vcfs_sb old;
	struct vcfs_hb_timing tm;
	uint32_t i, nlive = 0;
	int rc, live;

	rc = vcfs_read_super(d, &old, NULL);
	if (rc)
		return 0;	/* not a vcfs volume (or beyond repair): nothing to protect */
	vcfs_info("%s holds a vcfs datastore '%s'; checking that no host uses it",
		  vcfs_disk_info(d)->desc, old.label);
	info = calloc(old.max_hosts, sizeof(*info));
	if (!info)
		return -ENOMEM;
	rc = vcfs_hb_read_slots(d, &old, info);
	if (rc)
		goto out;
	for (i = 0; i < old.max_hosts; i++)
		if (info[i].valid && info[i].state != VCFS_HB_FREE)
			nlive++;
	if (!nlive)
		goto out;
	vcfs_hb_timing_from(old.io_timeout_ms, &tm);
	vcfs_info("%u heartbeat slot(s) are marked in use; watching them for %.1f s",
		  nlive, (double)tm.dead_ns / 1e9);
	live = vcfs_hb_count_live(d, &old, tm.dead_ns);
	if (live < 0) {
		rc = live;
		goto out;
	}
	if (live > 0) {
		vcfs_err("%d host(s) are heartbeating on this datastore (see `vcfs hosts`); "
			 "unmount it everywhere first, or force with -f if you are sure",
			 live);
		rc = -VCFS_ELIVE;
		goto out;
	}
	vcfs_warn("the %u slot(s) marked in use are not heartbeating (crashed hosts); "
		  "formatting over them", nlive);
out:
	free(info);
	return rc;
}

static void set_bits(uint8_t *bits, uint64_t from, uint64_t to)
{
	for (uint64_t i = from; i < to; i++)
		bits[i / 8] |= (uint8_t)(1u << (i % 8));
}

void vcfs_mkfs_cbmp(const struct vcfs_sb *sb, uint32_t c, void *blk)
{
	struct vcfs_cbmp_disk *b = blk;
	struct vcfs_cluster_geom g;
	uint32_t kind, idx, count;
	uint64_t first;

	memset(b, 0, sizeof(*b));
	vcfs_cluster_geom(sb, c, &g);
	kind = g.kind;
	idx = g.index;
	first = g.first;
	count = g.count;
	b->kind = le32_mk(kind);
	b->index = le32_mk(idx);
	b->first = le64_mk(first);
	b->count = le32_mk(count);
	b->nfree = le32_mk(count);
	if (kind == VCFS_CK_INODE && idx == 0) {
		/* inode 0 (unused), the root, reserved numbers and the per-host
		 * orphan directories */
		uint64_t res = VCFS_FIRST_FREE_INO(sb->max_hosts);
		if (res > count)
			res = count;
		set_bits(b->bits, 0, res);
		b->nfree = le32_mk(count - (uint32_t)res);
	}
	b->h.seq = le64_mk(1);
	vcfs_mhdr_seal(b, VCFS_T_CBMP, vcfs_cluster_bmp_blk(sb, c), sb->volgen);
}

void vcfs_mkfs_root(struct vcfs_inode_disk *ino)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	memset(ino, 0, sizeof(*ino));
	ino->h.type = le16_mk(VCFS_T_INODE);
	ino->mode = le32_mk(0040755);
	ino->nlink = le32_mk(2);
	ino->parent = le64_mk(VCFS_ROOT_INO);
	ino->generation = le64_mk(1);
	ino->orphan_slot = le32_mk(0xffffffffu);
	ino->atime.sec = ino->mtime.sec = ino->ctime.sec = ino->crtime.sec =
		le64_mk((uint64_t)now.tv_sec);
	ino->atime.nsec = ino->mtime.nsec = ino->ctime.nsec = ino->crtime.nsec =
		le32_mk((uint32_t)now.tv_nsec);
}

static void make_root(const struct vcfs_sb *sb, void *blk)
{
	struct vcfs_inode_disk *ino = blk;

	vcfs_mkfs_root(ino);
	ino->h.seq = le64_mk(1);
	vcfs_mhdr_seal(ino, VCFS_T_INODE, vcfs_inode_blk(sb, VCFS_ROOT_INO), sb->volgen);
}

int vcfs_mkfs(struct vcfs_disk *d, const struct vcfs_mkfs_params *p, unsigned flags,
	      struct vcfs_sb *out)
{
	const struct vcfs_disk_info *di = vcfs_disk_info(d);
	struct vcfs_mkfs_params pp = *p;
	struct vcfs_sb sb;
	uint32_t ncl, c;
	uint64_t blk, end;
	uint8_t *buf = NULL;
	int rc;

	if (!pp.volume_bytes || pp.volume_bytes > di->size)
		pp.volume_bytes = di->size;
	if (di->caps & VCFS_DISK_CAP_RDONLY) {
		vcfs_err("%s is open read-only", di->desc);
		return -EROFS;
	}
	rc = vcfs_layout_compute(&pp, &sb);
	if (rc)
		return rc;
	if (out)
		*out = sb;
	if (flags & VCFS_MKFS_DRYRUN)
		return 0;
	if (!(flags & VCFS_MKFS_FORCE)) {
		rc = check_no_live_hosts(d);
		if (rc)
			return rc;
	}
	buf = vcfs_disk_buf_alloc(CHUNK_BLOCKS * VCFS_BLK);
	if (!buf)
		return -ENOMEM;

	/* 1. the old header goes first: an interrupted mkfs leaves no volume */
	rc = vcfs_disk_write(d, 0, buf, VCFS_BLK, VCFS_IO_FUA);
	if (rc)
		goto out;

	/* 2. the cluster region: lock records stay zero (free), bitmaps sealed */
	ncl = sb.ninode_clusters + sb.nsmall_clusters + sb.nlarge_clusters;
	end = vcfs_cluster_lock_blk(&sb, ncl);
	c = 0;
	for (blk = sb.cmeta_start; blk < end; ) {
		uint32_t n = (uint32_t)(end - blk < CHUNK_BLOCKS ? end - blk : CHUNK_BLOCKS);
		memset(buf, 0, (size_t)n * VCFS_BLK);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t b = blk + i;
			if ((b - sb.cmeta_start) % 2 == 1) {
				vcfs_mkfs_cbmp(&sb, c, buf + (size_t)i * VCFS_BLK);
				c++;
			}
		}
		rc = vcfs_disk_write(d, blk * VCFS_BLK, buf, (size_t)n * VCFS_BLK, 0);
		if (rc)
			goto out;
		blk += n;
	}

	/* 3. the root directory: lock record zero (free), body sealed */
	memset(buf, 0, 2 * VCFS_BLK);
	make_root(&sb, buf + VCFS_BLK);
	rc = vcfs_disk_write(d, vcfs_inode_lock_blk(&sb, VCFS_ROOT_INO) * VCFS_BLK, buf,
			     2 * VCFS_BLK, 0);
	if (rc)
		goto out;
	/* the volume lock record: free */
	memset(buf, 0, VCFS_BLK);
	rc = vcfs_disk_write(d, VCFS_VOLLOCK_BLKNO * VCFS_BLK, buf, VCFS_BLK, 0);
	if (rc)
		goto out;
	rc = vcfs_disk_flush(d);
	if (rc)
		goto out;

	/* 4. backup, then the primary header (vcfs_write_super: backup first) */
	sb.seq = 0;
	rc = vcfs_write_super(d, &sb);
	if (!rc)
		rc = vcfs_disk_flush(d);
	if (!rc && out)
		*out = sb;
out:
	if (rc)
		vcfs_err("formatting %s failed: %s; the datastore holds no volume now, "
			 "run mkfs.vcfs again", di->desc, vcfs_strerror(rc));
	free(buf);
	return rc;
}
