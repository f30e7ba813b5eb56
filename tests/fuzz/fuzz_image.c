/*
 * fuzz_image.c - libFuzzer target: a whole datastore image, as fsck.vcfs and
 * a mount meet a disk nobody validated.  Input: a flags byte (FZ_RESEAL),
 * then records of a le32 block number and 4096 bytes: the image's non-zero
 * blocks (a 16 MiB volume whose other blocks read as zeros; block numbers
 * wrap at the volume size).  Seeds are real images cut this way
 * (tests/fuzz/mkcorpus.sh).  fsck -n checks the image, then it is mounted
 * read-only and walked.
 */
#include "img.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REC (4 + VCFS_BLK)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	fz_init(0);	/* only for the memfd; the input is the whole image */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vcfs_disk *d;

	if (size < 1 || size > 1 + 64 * REC)
		return 0;
	d = fz_open();
	if (vcfs_disk_unmap(d, 0, FZ_IMG_BYTES))
		abort();
	for (size_t off = 1; off + 4 < size; off += REC) {
		uint32_t b;
		size_t len = size - off - 4 < VCFS_BLK ? size - off - 4 : VCFS_BLK;
		uint8_t *blk = vcfs_disk_buf_alloc(VCFS_BLK);

		memcpy(&b, data + off, 4);
		memcpy(blk, data + off + 4, len);
		if (data[0] & FZ_RESEAL)
			fz_reseal(blk);
		fz_must("placing a block", vcfs_disk_write(d, (uint64_t)(b % FZ_NBLK) * VCFS_BLK,
							   blk, VCFS_BLK, 0));
		free(blk);
	}
	vcfs_disk_close(d);
	fz_fsck_check();
	fz_mount_walk(fz_open(), 32);
	return 0;
}
