/*
 * fuzz_inode.c - libFuzzer target: inode bodies (fs/super.c, fs/namei.c,
 * fs/file.c reading mode, size, flags, inline symlink targets, packed
 * xattrs, directory geometry; fsck pass 5).  Input: a flags byte
 * (FZ_RESEAL), a selector byte, then a 4 KiB body that replaces one of the
 * seed image's inodes (selector mod the number of inodes: root, the
 * directory of 150 files, regular files, symlinks, the FIFO, ...).  The
 * volume is mounted read-only and walked (getattr, readdir, lookup,
 * readlink, xattrs, reads, SEEK_DATA/HOLE), then fsck -n runs.
 */
#include "img.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t inodes[512];
static size_t ninodes;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	fz_init(1);
	ninodes = fz_blocks_of(VCFS_T_INODE, inodes, 512);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vcfs_disk *d;

	if (size < 2 || size > 2 + VCFS_BLK || !ninodes)
		return 0;
	d = fz_reset();
	fz_place(d, inodes[data[1] % ninodes], data + 2, size - 2, 1, data[0]);
	fz_mount_walk(d, 32);
	fz_fsck_check();
	return 0;
}
