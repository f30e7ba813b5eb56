/*
 * fuzz_super.c - libFuzzer target: the volume header (fs/ondisk.c
 * vcfs_super_decode, fs/mkfs.c vcfs_read_super with its backup fallback).
 * Input: a flags byte (FZ_RESEAL: recompute the crc), then the 4 KiB header.
 * decode promises (ondisk.c) that an accepted geometry has no region that
 * overlaps another or leaves the volume: checked here.  An accepted header
 * is then put at block 0 of the seed image (backup intact) and the volume is
 * mounted read-only and walked.
 */
#include "img.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	fz_init(1);
	return 0;
}

#define BAD(what) do { fprintf(stderr, "vcfs_super_decode accepted an impossible " \
				   "geometry (%s)\n", what); abort(); } while (0)

static void check_geometry(const struct vcfs_sb *sb)
{
	uint64_t vb = sb->volume_blocks, ncl;

	if (!sb->max_hosts || !sb->lblock_blocks || vb > VCFS_MAX_VOLUME_BLOCKS)
		BAD("check 1");
	if (vcfs_hb_blk(sb, sb->max_hosts - 1) >= sb->journal_start ||
	    vcfs_journal_blk(sb, sb->max_hosts) > sb->cmeta_start)
		BAD("check 2");
	ncl = (uint64_t)sb->ninode_clusters + sb->nsmall_clusters + sb->nlarge_clusters;
	if (ncl && vcfs_cluster_bmp_blk(sb, (uint32_t)(ncl - 1)) >= sb->inode_start)
		BAD("check 3");
	if (sb->ninodes && vcfs_inode_blk(sb, sb->ninodes - 1) >= sb->small_start)
		BAD("check 4");
	if (sb->nsmall && vcfs_small_blk(sb, sb->nsmall - 1) >= sb->large_start)
		BAD("check 5");
	if (sb->nlarge && vcfs_large_blk(sb, sb->nlarge - 1) + sb->lblock_blocks > vb)
		BAD("check 6");
	for (uint64_t c = 0; c < ncl && c < 4096; c++) {
		struct vcfs_cluster_geom g;
		vcfs_cluster_geom(sb, (uint32_t)c, &g);
		if (g.count > VCFS_CBMP_BITS)
			BAD("check 7");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *blk;
	struct vcfs_sb sb;
	unsigned flags;
	struct vcfs_disk *d;

	if (size < 1 || size > 1 + VCFS_BLK)
		return 0;
	flags = data[0];
	blk = calloc(1, VCFS_BLK);
	memcpy(blk, fz_base_block(0), VCFS_BLK);
	memcpy(blk, data + 1, size - 1);
	if (flags & FZ_RESEAL)
		fz_reseal(blk);
	if (vcfs_super_decode(blk, 0, &sb) == 0) {
		check_geometry(&sb);
		d = fz_reset();
		fz_place(d, 0, blk, VCFS_BLK, 1, 0);
		if (vcfs_read_super(d, &sb, NULL) == 0)
			check_geometry(&sb);
		fz_mount_walk(d, 32);
	}
	free(blk);
	return 0;
}
