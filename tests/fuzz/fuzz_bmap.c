/*
 * fuzz_bmap.c - libFuzzer target: block maps (fs/bmap.c: direct pointers,
 * indirect blocks, the unwritten bit, large-block files; fsck pass 5's map
 * walk).  Input: a flags byte (FZ_RESEAL), then up to two 4 KiB blocks: the
 * indirect block of the large-block file "big" (its pointer at logical
 * block VCFS_NDIRECT + 3), and optionally the body of "big" itself (direct
 * pointers, ind/dind/tind, size, flags).  The volume is mounted read-only
 * and the file read at its direct and indirect parts, SEEK_DATA/HOLE asked,
 * then fsck -n runs.
 */
#include "img.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t ind_blk;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint64_t b[4];

	(void)argc; (void)argv;
	fz_init(1);
	if (fz_blocks_of(VCFS_T_IND, b, 4) < 1) {
		fprintf(stderr, "fuzz_bmap: the seed image has no indirect block\n");
		abort();
	}
	ind_blk = b[0];
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vcfs_disk *d;

	if (size < 1 || size > 1 + 2 * VCFS_BLK)
		return 0;
	d = fz_reset();
	fz_place(d, ind_blk, data + 1, size - 1, 1, data[0]);
	if (size > 1 + VCFS_BLK)
		fz_place(d, vcfs_inode_blk(&fz_sb, fz_ino_big), data + 1 + VCFS_BLK,
			 size - 1 - VCFS_BLK, 1, data[0]);
	fz_mount_walk(d, 32);
	fz_fsck_check();
	return 0;
}
