/*
 * fuzz_hb.c - libFuzzer target: heartbeat slots (lock/hb.c slot decoding as
 * `vcfs hosts`, mkfs's liveness check and fsck pass 2 read them).  Input: a
 * flags byte (FZ_RESEAL), then up to two 4 KiB slot blocks (the volume has
 * two slots).  The slots are read offline, then fsck -n checks the volume.
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
	struct vcfs_slot_info info[2];
	struct vcfs_disk *d;

	if (size < 1 || size > 1 + 2 * VCFS_BLK)
		return 0;
	d = fz_reset();
	fz_place(d, fz_sb.hb_start, data + 1, size - 1, fz_sb.max_hosts, data[0]);
	if (vcfs_hb_read_slots(d, &fz_sb, info) == 0)
		for (unsigned i = 0; i < 2; i++)
			if (info[i].valid && !memchr(info[i].host_name, 0,
						     sizeof(info[i].host_name)))
				abort();	/* the host name must end in the buffer */
	vcfs_disk_close(d);
	fz_fsck_check();
	return 0;
}
