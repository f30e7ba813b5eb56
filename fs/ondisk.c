/*
 * ondisk.c - every byte-order conversion and checksum of the on-disk format,
 * and the layout computation shared by mkfs, fsck, grow and mount.
 *
 * Invariants kept here:
 *  - a block is sealed (vcfs_mhdr_seal/reseal) as the last step before it is
 *    written, so the crc always covers exactly what reaches the disk;
 *  - vcfs_super_decode refuses any geometry whose regions overlap or leave the
 *    volume, so later code may trust the numbers in struct vcfs_sb.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>
#include "ondisk.h"
#include "../common/crc32c.h"
#include "../common/log.h"
#include "../common/vcfs_err.h"

const char *vcfs_btype_name(enum vcfs_btype t)
{
	switch (t) {
	case VCFS_T_SUPER:	return "volume header";
	case VCFS_T_LOCK:	return "lock record";
	case VCFS_T_HB:		return "heartbeat slot";
	case VCFS_T_JHDR:	return "journal header";
	case VCFS_T_JDESC:	return "journal descriptor";
	case VCFS_T_JCOMMIT:	return "journal commit";
	case VCFS_T_CBMP:	return "cluster bitmap";
	case VCFS_T_INODE:	return "inode";
	case VCFS_T_IND:	return "indirect block";
	case VCFS_T_DIRB:	return "directory block";
	case VCFS_T_RLOCK:	return "byte-range lock table";
	}
	return "block";
}

size_t vcfs_crc_len(enum vcfs_btype t)
{
	return (t == VCFS_T_LOCK || t == VCFS_T_HB || t == VCFS_T_RLOCK) ?
	       VCFS_RECORD_SIZE : VCFS_BLK;
}

static uint32_t block_crc(const void *blk, size_t len)
{
	const struct vcfs_mhdr *h = blk;
	static const uint8_t zero[4];
	size_t at = offsetof(struct vcfs_mhdr, crc);
	uint32_t c;

	(void)h;
	c = vcfs_crc32c(0, blk, at);
	c = vcfs_crc32c(c, zero, sizeof(zero));
	return vcfs_crc32c(c, (const uint8_t *)blk + at + 4, len - at - 4);
}

void vcfs_mhdr_reseal(void *blk)
{
	struct vcfs_mhdr *h = blk;

	h->crc = le32_mk(block_crc(blk, vcfs_crc_len(le16_get(h->type))));
}

void vcfs_mhdr_seal(void *blk, enum vcfs_btype t, uint64_t blkno, uint64_t volgen)
{
	struct vcfs_mhdr *h = blk;

	h->magic = le32_mk(VCFS_MAGIC);
	h->type = le16_mk(t);
	h->fmt = le16_mk(VCFS_FORMAT_VERSION);
	h->blkno = le64_mk(blkno);
	h->volgen = le64_mk(volgen);
	vcfs_mhdr_reseal(blk);
}

int vcfs_mhdr_check(const void *blk, enum vcfs_btype t, uint64_t blkno, uint64_t volgen)
{
	const struct vcfs_mhdr *h = blk;

	if (le32_get(h->magic) != VCFS_MAGIC || le64_get(h->blkno) != blkno ||
	    le64_get(h->volgen) != volgen)
		return 1;	/* not initialised for this volume */
	if (le16_get(h->type) != t) {
		vcfs_err("block %llu: expected a %s, found a %s",
			 (unsigned long long)blkno, vcfs_btype_name(t),
			 vcfs_btype_name(le16_get(h->type)));
		return -VCFS_ECORRUPT;
	}
	if (le32_get(h->crc) != block_crc(blk, vcfs_crc_len(t))) {
		vcfs_err("block %llu: %s has a bad checksum", (unsigned long long)blkno,
			 vcfs_btype_name(t));
		return -VCFS_ECORRUPT;
	}
	return 0;
}

uint32_t vcfs_dir_hash(const char *name, size_t len)
{
	/* crc32c with a fixed seed, then a final mix so that short names that
	 * differ in one byte spread over the low bits used for bucketing. */
	uint32_t h = vcfs_crc32c(0x7663u, name, len);

	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	return h;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static uint32_t clamp32(uint64_t v, uint32_t lo, uint32_t hi)
{
	return v < lo ? lo : v > hi ? hi : (uint32_t)v;
}

static uint32_t div_up(uint64_t a, uint64_t b)
{
	return (uint32_t)((a + b - 1) / b);
}

int vcfs_layout_compute(const struct vcfs_mkfs_params *p, struct vcfs_sb *sb)
{
	uint64_t vb = p->volume_bytes / VCFS_BLK, avail, jend, nlarge_max, cm_end, glim;
	uint32_t lbb, ncl;

	memset(sb, 0, sizeof(*sb));
	sb->max_hosts = p->max_hosts ? p->max_hosts : VCFS_DEFAULT_HOSTS;
	sb->lblock_size = p->lblock_size ? p->lblock_size : VCFS_DEFAULT_LBLOCK;
	sb->io_timeout_ms = p->io_timeout_ms ? p->io_timeout_ms : VCFS_DEFAULT_IO_TIMEOUT_MS;
	if (sb->max_hosts < 1 || sb->max_hosts > VCFS_MAX_HOSTS) {
		vcfs_err("max hosts %u: must be 1 to %u", sb->max_hosts, VCFS_MAX_HOSTS);
		return -EINVAL;
	}
	if (sb->lblock_size < 64 * 1024 || sb->lblock_size > 64u * 1024 * 1024 ||
	    (sb->lblock_size & (sb->lblock_size - 1))) {
		vcfs_err("block size %u: must be a power of two from 64 KiB to 64 MiB",
			 sb->lblock_size);
		return -EINVAL;
	}
	if (sb->io_timeout_ms < 100 || sb->io_timeout_ms > 60000) {
		vcfs_err("I/O timeout %u ms: must be 100 to 60000", sb->io_timeout_ms);
		return -EINVAL;
	}
	if (vb > VCFS_MAX_VOLUME_BLOCKS) {
		vcfs_err("a datastore of %llu TiB is larger than the %llu TiB vcfs supports",
			 (unsigned long long)(p->volume_bytes >> 40),
			 (unsigned long long)(VCFS_MAX_VOLUME_BLOCKS * VCFS_BLK >> 40));
		return -EINVAL;
	}
	lbb = sb->lblock_size / VCFS_BLK;
	sb->lblock_blocks = lbb;
	sb->volume_blocks = vb;

	sb->journal_blocks = p->journal_blocks ? p->journal_blocks : VCFS_DEFAULT_JOURNAL_BLOCKS;
	if (!p->journal_blocks)	/* journals take at most 1/8 of a small volume */
		while (sb->journal_blocks > VCFS_MIN_JOURNAL_BLOCKS &&
		       (uint64_t)sb->max_hosts * sb->journal_blocks * 8 > vb)
			sb->journal_blocks /= 2;
	if (sb->journal_blocks < VCFS_MIN_JOURNAL_BLOCKS) {
		vcfs_err("journal of %u blocks: at least %u", sb->journal_blocks,
			 VCFS_MIN_JOURNAL_BLOCKS);
		return -EINVAL;
	}

	sb->hb_start = VCFS_HB_START;
	sb->journal_start = align_up(sb->hb_start + sb->max_hosts, 16);
	jend = sb->journal_start + (uint64_t)sb->max_hosts * sb->journal_blocks;
	if (jend + 1 >= vb)
		goto small;
	avail = vb - jend - 1;

	sb->ninodes = p->inodes ? p->inodes : p->volume_bytes / (4u << 20);
	if (sb->ninodes < 4096 && !p->inodes)
		sb->ninodes = 4096;
	if (sb->ninodes * 2 > avail / 8 && !p->inodes)	/* table <= 1/8 */
		sb->ninodes = avail / 16;
	if (sb->ninodes < VCFS_FIRST_FREE_INO(sb->max_hosts) + 64)
		goto small;
	sb->nsmall = avail / 32;
	if (sb->nsmall < 2048)
		sb->nsmall = 2048;
	sb->inode_cluster = clamp32(sb->ninodes / 64, 256, VCFS_CBMP_BITS);
	sb->small_cluster = clamp32(sb->nsmall / 64, 1024, VCFS_CBMP_BITS);
	sb->ninode_clusters = div_up(sb->ninodes, sb->inode_cluster);
	sb->nsmall_clusters = div_up(sb->nsmall, sb->small_cluster);

	/* The large-block clusters are sized from an upper bound on nlarge so the
	 * cluster metadata region never has to move once the rest is placed. */
	if (avail < 2 * sb->ninodes + sb->nsmall)
		goto small;
	nlarge_max = (avail - 2 * sb->ninodes - sb->nsmall) / lbb;
	sb->large_cluster = clamp32(nlarge_max / 64, 64, VCFS_CBMP_BITS);
	/* room in the cluster region for the large clusters of a grown volume */
	glim = p->grow_limit_bytes;
	if (!glim) {
		glim = p->volume_bytes > (VCFS_DEFAULT_GROW_MAX >> 4) ?
		       VCFS_DEFAULT_GROW_MAX : p->volume_bytes * 16;
		if (glim < p->volume_bytes)
			glim = p->volume_bytes;
	}
	if (glim / VCFS_BLK > VCFS_MAX_VOLUME_BLOCKS)
		glim = VCFS_MAX_VOLUME_BLOCKS * VCFS_BLK;
	if (glim < p->volume_bytes) {
		vcfs_err("grow limit %llu MiB is below the volume size %llu MiB",
			 (unsigned long long)(glim >> 20),
			 (unsigned long long)(p->volume_bytes >> 20));
		return -EINVAL;
	}
	if ((glim / VCFS_BLK / lbb + 1 + sb->large_cluster - 1) / sb->large_cluster >
	    VCFS_MAX_LARGE_CLUSTERS) {
		vcfs_err("grow limit %llu GiB is too large for this volume: at most %u "
			 "large-block clusters of %u blocks (use a smaller -G)",
			 (unsigned long long)(glim >> 30), VCFS_MAX_LARGE_CLUSTERS,
			 sb->large_cluster);
		return -EINVAL;
	}
	sb->nlarge_clusters_max = div_up(glim / VCFS_BLK / lbb + 1, sb->large_cluster);
	ncl = sb->ninode_clusters + sb->nsmall_clusters + sb->nlarge_clusters_max;

	sb->cmeta_start = align_up(jend, 16);
	cm_end = sb->cmeta_start + 2ull * ncl;
	sb->inode_start = align_up(cm_end, 16);
	sb->small_start = align_up(sb->inode_start + 2 * sb->ninodes, 256);
	sb->large_start = align_up(sb->small_start + sb->nsmall, lbb);
	if (sb->large_start + 1 >= vb)
		goto small;
	sb->nlarge = (vb - 1 - sb->large_start) / lbb;
	if (sb->nlarge < 4)
		goto small;
	sb->nlarge_clusters = div_up(sb->nlarge, sb->large_cluster);
	sb->root_ino = VCFS_ROOT_INO;
	sb->mkfs_time = (uint64_t)time(NULL);
	memcpy(sb->uuid, p->uuid ? p->uuid : sb->uuid, 16);
	if (!p->uuid)
		uuid_generate(sb->uuid);
	if (p->label) {
		if (strlen(p->label) > VCFS_LABEL_MAX) {
			vcfs_err("label '%s' is longer than %d bytes", p->label, VCFS_LABEL_MAX);
			return -ENAMETOOLONG;
		}
		strcpy(sb->label, p->label);
	}
	/* a random, non-zero volume generation: blocks of an earlier format never
	 * match it, so nothing has to be zeroed */
	memcpy(&sb->volgen, sb->uuid + 8, 8);
	sb->volgen ^= (uint64_t)sb->mkfs_time << 20 ^ (uint64_t)random();
	if (!sb->volgen)
		sb->volgen = 1;
	return 0;
small:
	vcfs_err("a datastore of %llu MiB is too small for %u hosts with %u KiB blocks; "
		 "use fewer hosts (-H) or a larger LUN or file",
		 (unsigned long long)(p->volume_bytes >> 20), sb->max_hosts,
		 sb->lblock_size >> 10);
	return -VCFS_ETOOSMALL;
}

void vcfs_super_encode(const struct vcfs_sb *sb, void *blk, uint64_t blkno)
{
	struct vcfs_super_disk *s = blk;

	memset(s, 0, sizeof(*s));
	memcpy(s->uuid, sb->uuid, 16);
	memcpy(s->label, sb->label, sizeof(s->label) - 1);
	s->blk_size = le32_mk(VCFS_BLK);
	s->lblock_size = le32_mk(sb->lblock_size);
	s->max_hosts = le32_mk(sb->max_hosts);
	s->io_timeout_ms = le32_mk(sb->io_timeout_ms);
	s->journal_blocks = le32_mk(sb->journal_blocks);
	s->inode_cluster = le32_mk(sb->inode_cluster);
	s->small_cluster = le32_mk(sb->small_cluster);
	s->large_cluster = le32_mk(sb->large_cluster);
	s->feat_compat = le64_mk(sb->feat_compat);
	s->feat_incompat = le64_mk(sb->feat_incompat);
	s->feat_ro_compat = le64_mk(sb->feat_ro_compat);
	s->volume_blocks = le64_mk(sb->volume_blocks);
	s->hb_start = le64_mk(sb->hb_start);
	s->journal_start = le64_mk(sb->journal_start);
	s->cmeta_start = le64_mk(sb->cmeta_start);
	s->ninode_clusters = le32_mk(sb->ninode_clusters);
	s->nsmall_clusters = le32_mk(sb->nsmall_clusters);
	s->nlarge_clusters = le32_mk(sb->nlarge_clusters);
	s->inode_start = le64_mk(sb->inode_start);
	s->ninodes = le64_mk(sb->ninodes);
	s->small_start = le64_mk(sb->small_start);
	s->nsmall = le64_mk(sb->nsmall);
	s->large_start = le64_mk(sb->large_start);
	s->nlarge = le64_mk(sb->nlarge);
	s->root_ino = le64_mk(sb->root_ino);
	s->mkfs_time = le64_mk(sb->mkfs_time);
	s->grow_time = le64_mk(sb->grow_time);
	s->nlarge_clusters_max = le32_mk(sb->nlarge_clusters_max);
	s->grow_target = le64_mk(sb->grow_target);
	s->h.seq = le64_mk(sb->seq);
	vcfs_mhdr_seal(s, VCFS_T_SUPER, blkno, sb->volgen);
}

#define GEOM_BAD(why) do { vcfs_err("volume header: %s", why); return -VCFS_ECORRUPT; } while (0)

int vcfs_super_decode(const void *blk, uint64_t blkno, struct vcfs_sb *sb)
{
	const struct vcfs_super_disk *s = blk;
	uint64_t jend, cm_end;
	uint32_t ncl;
	int rc;

	if (le32_get(s->h.magic) != VCFS_MAGIC || le16_get(s->h.type) != VCFS_T_SUPER)
		return -VCFS_ENOTVCFS;
	if (le16_get(s->h.fmt) != VCFS_FORMAT_VERSION) {
		vcfs_err("volume header: format version %u, this vcfs reads version %u",
			 le16_get(s->h.fmt), VCFS_FORMAT_VERSION);
		return -VCFS_EFEATURE;
	}
	rc = vcfs_mhdr_check(blk, VCFS_T_SUPER, blkno, le64_get(s->h.volgen));
	if (rc)
		return rc < 0 ? rc : VCFS_CORRUPT("volume header does not name its own block", blkno);
	memset(sb, 0, sizeof(*sb));
	memcpy(sb->uuid, s->uuid, 16);
	memcpy(sb->label, s->label, sizeof(sb->label) - 1);
	sb->volgen = le64_get(s->h.volgen);
	sb->seq = le64_get(s->h.seq);
	sb->lblock_size = le32_get(s->lblock_size);
	sb->max_hosts = le32_get(s->max_hosts);
	sb->io_timeout_ms = le32_get(s->io_timeout_ms);
	sb->journal_blocks = le32_get(s->journal_blocks);
	sb->inode_cluster = le32_get(s->inode_cluster);
	sb->small_cluster = le32_get(s->small_cluster);
	sb->large_cluster = le32_get(s->large_cluster);
	sb->feat_compat = le64_get(s->feat_compat);
	sb->feat_incompat = le64_get(s->feat_incompat);
	sb->feat_ro_compat = le64_get(s->feat_ro_compat);
	sb->volume_blocks = le64_get(s->volume_blocks);
	sb->hb_start = le64_get(s->hb_start);
	sb->journal_start = le64_get(s->journal_start);
	sb->cmeta_start = le64_get(s->cmeta_start);
	sb->ninode_clusters = le32_get(s->ninode_clusters);
	sb->nsmall_clusters = le32_get(s->nsmall_clusters);
	sb->nlarge_clusters = le32_get(s->nlarge_clusters);
	sb->inode_start = le64_get(s->inode_start);
	sb->ninodes = le64_get(s->ninodes);
	sb->small_start = le64_get(s->small_start);
	sb->nsmall = le64_get(s->nsmall);
	sb->large_start = le64_get(s->large_start);
	sb->nlarge = le64_get(s->nlarge);
	sb->root_ino = le64_get(s->root_ino);
	sb->mkfs_time = le64_get(s->mkfs_time);
	sb->grow_time = le64_get(s->grow_time);
	sb->nlarge_clusters_max = le32_get(s->nlarge_clusters_max);
	sb->grow_target = le64_get(s->grow_target);
	if (!sb->nlarge_clusters_max)	/* made before grow existed */
		sb->nlarge_clusters_max = sb->nlarge_clusters;

	if (le32_get(s->blk_size) != VCFS_BLK)
		GEOM_BAD("block size is not 4096");
	if (sb->volume_blocks > VCFS_MAX_VOLUME_BLOCKS)
		GEOM_BAD("volume size out of range (over 4 PiB)");
	/* every start and count within the volume before any arithmetic on
	 * them: sums of a few such values cannot overflow */
	if (sb->volume_blocks < VCFS_HB_START + 2 ||
	    sb->hb_start > sb->volume_blocks || sb->journal_start > sb->volume_blocks ||
	    sb->cmeta_start > sb->volume_blocks || sb->inode_start > sb->volume_blocks ||
	    sb->ninodes > sb->volume_blocks || sb->small_start > sb->volume_blocks ||
	    sb->nsmall > sb->volume_blocks || sb->large_start > sb->volume_blocks ||
	    sb->nlarge > sb->volume_blocks || sb->grow_target > VCFS_MAX_VOLUME_BLOCKS)
		GEOM_BAD("regions overlap or leave the volume");
	if (sb->lblock_size < 64 * 1024 || (sb->lblock_size & (sb->lblock_size - 1)) ||
	    sb->lblock_size > 64u * 1024 * 1024)
		GEOM_BAD("large block size out of range");
	sb->lblock_blocks = sb->lblock_size / VCFS_BLK;
	if (!sb->max_hosts || sb->max_hosts > VCFS_MAX_HOSTS)
		GEOM_BAD("max hosts out of range");
	if (sb->io_timeout_ms < 100 || sb->io_timeout_ms > 60000)
		GEOM_BAD("I/O timeout out of range");
	if (sb->journal_blocks < VCFS_MIN_JOURNAL_BLOCKS)
		GEOM_BAD("journal too small");
	if (!sb->inode_cluster || sb->inode_cluster > VCFS_CBMP_BITS ||
	    !sb->small_cluster || sb->small_cluster > VCFS_CBMP_BITS ||
	    !sb->large_cluster || sb->large_cluster > VCFS_CBMP_BITS)
		GEOM_BAD("cluster size out of range");
	if (sb->ninode_clusters != div_up(sb->ninodes, sb->inode_cluster) ||
	    sb->nsmall_clusters != div_up(sb->nsmall, sb->small_cluster) ||
	    sb->nlarge_clusters != div_up(sb->nlarge, sb->large_cluster))
		GEOM_BAD("cluster counts do not match the region sizes");
	jend = sb->journal_start + (uint64_t)sb->max_hosts * sb->journal_blocks;
	if (sb->nlarge_clusters > sb->nlarge_clusters_max)
		GEOM_BAD("more large clusters than the cluster region has room for");
	ncl = sb->ninode_clusters + sb->nsmall_clusters + sb->nlarge_clusters_max;
	cm_end = sb->cmeta_start + 2ull * ncl;
	if (sb->hb_start < VCFS_HB_START || sb->journal_start < sb->hb_start + sb->max_hosts ||
	    sb->cmeta_start < jend || sb->inode_start < cm_end ||
	    sb->small_start < sb->inode_start + 2 * sb->ninodes ||
	    sb->large_start < sb->small_start + sb->nsmall ||
	    sb->large_start % sb->lblock_blocks ||
	    sb->large_start + sb->nlarge * sb->lblock_blocks > sb->volume_blocks - 1)
		GEOM_BAD("regions overlap or leave the volume");
	if (sb->root_ino != VCFS_ROOT_INO ||
	    sb->ninodes <= VCFS_FIRST_FREE_INO(sb->max_hosts))
		GEOM_BAD("root inode or inode count out of range");
	if (sb->feat_incompat & ~VCFS_FEAT_INCOMPAT_SUPP) {
		vcfs_err("volume uses incompatible features 0x%llx this vcfs does not know",
			 (unsigned long long)(sb->feat_incompat & ~VCFS_FEAT_INCOMPAT_SUPP));
		return -VCFS_EFEATURE;
	}
	return 0;
}

void vcfs_cluster_geom(const struct vcfs_sb *sb, uint32_t c, struct vcfs_cluster_geom *g)
{
	uint32_t per;
	uint64_t total;

	if (c < sb->ninode_clusters) {
		g->kind = VCFS_CK_INODE; g->index = c; per = sb->inode_cluster; total = sb->ninodes;
	} else if (c < sb->ninode_clusters + sb->nsmall_clusters) {
		g->kind = VCFS_CK_SMALL; g->index = c - sb->ninode_clusters;
		per = sb->small_cluster; total = sb->nsmall;
	} else {
		g->kind = VCFS_CK_LARGE; g->index = c - sb->ninode_clusters - sb->nsmall_clusters;
		per = sb->large_cluster; total = sb->nlarge;
	}
	g->first = (uint64_t)g->index * per;
	g->count = (uint32_t)(total - g->first < per ? total - g->first : per);
}
