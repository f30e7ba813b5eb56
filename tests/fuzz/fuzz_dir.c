/*
 * fuzz_dir.c - libFuzzer target: directory blocks (fs/dir.c buckets and
 * overflow chains, packed entries, hashes; fs/namei.c lookups; fsck pass 6).
 * Input: a flags byte (FZ_RESEAL), a selector byte, then up to four 4 KiB
 * blocks that replace the seed image's directory blocks from the one the
 * selector picks on (the root's and the buckets of the directory of 150
 * files).  The volume is mounted read-only and walked (readdir, lookup of
 * every listed name and of names that exist in the seed), then fsck -n runs.
 */
#include "img.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t dirb[64];
static size_t ndirb;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	fz_init(1);
	ndirb = fz_blocks_of(VCFS_T_DIRB, dirb, 64);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vcfs_disk *d;
	size_t first, n;

	if (size < 2 || size > 2 + 4 * VCFS_BLK || !ndirb)
		return 0;
	first = data[1] % ndirb;
	n = (size - 2 + VCFS_BLK - 1) / VCFS_BLK;
	d = fz_reset();
	for (size_t i = 0; i < n && first + i < ndirb; i++) {
		size_t len = size - 2 - i * VCFS_BLK;
		fz_place(d, dirb[first + i], data + 2 + i * VCFS_BLK,
			 len < VCFS_BLK ? len : VCFS_BLK, 1, data[0]);
	}
	fz_mount_walk(d, 32);
	fz_fsck_check();
	return 0;
}
