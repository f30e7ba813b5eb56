/*
 * fuzz_lock.c - libFuzzer target: on-disk lock records (lock/lock.c record
 * decoding; fsck pass 4 clears stale ones).  Input: a flags byte
 * (FZ_RESEAL), a selector byte, then a 4 KiB record that replaces the lock
 * record of the root inode, of the file, of the directory or of inode
 * cluster 0 (selector mod 4).  The record is read offline (what `vcfs locks`
 * shows), the volume is mounted read-only and walked (lockless reads check
 * the record's state and seq), and fsck -n runs.
 */
#include "img.h"
#include "lock/lock.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	fz_init(1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vcfs_lock_info li;
	struct vcfs_disk *d;
	uint64_t blk[4];

	if (size < 2 || size > 2 + VCFS_BLK)
		return 0;
	blk[0] = vcfs_inode_lock_blk(&fz_sb, VCFS_ROOT_INO);
	blk[1] = vcfs_inode_lock_blk(&fz_sb, fz_ino_file);
	blk[2] = vcfs_inode_lock_blk(&fz_sb, fz_ino_dir);
	blk[3] = vcfs_cluster_lock_blk(&fz_sb, 0);
	d = fz_reset();
	fz_place(d, blk[data[1] % 4], data + 2, size - 2, 1, data[0]);
	if (vcfs_lock_read(d, &fz_sb, NULL, blk[data[1] % 4], &li) == 0 &&
	    li.nholders > VCFS_LOCK_HOLDERS)
		abort();
	fz_mount_walk(d, 32);
	fz_fsck_check();
	return 0;
}
