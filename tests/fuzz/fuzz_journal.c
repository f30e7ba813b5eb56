/*
 * fuzz_journal.c - libFuzzer target: journal replay (journal/journal.c), what
 * a mount, a survivor recovering a dead host and fsck pass 3 run on a
 * journal region nobody validated.  Input: a flags byte (FZ_RESEAL: reseal
 * every block, FZ_FIXJCRC: recompute the commit record's data crc so a
 * mutated transaction gets applied), then up to 12 blocks that replace the
 * start of slot 0's journal: header, descriptor, images, commit.  The
 * journal is inspected and replayed, then fsck -n and a read-only walk look
 * at whatever the replay wrote home.
 */
#include "img.h"
#include "journal/journal.h"

#define NJ 12

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
	struct vcfs_journal_state st;
	struct vcfs_disk *d;
	uint64_t j0 = vcfs_journal_blk(&fz_sb, 0);
	uint8_t *rec;
	unsigned applied = 0;
	size_t n;

	if (size < 1 || size > 1 + NJ * VCFS_BLK)
		return 0;
	n = (size - 1 + VCFS_BLK - 1) / VCFS_BLK;
	rec = calloc(NJ, VCFS_BLK);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *base = fz_base_block(j0 + i);
		if (base)
			memcpy(rec + i * VCFS_BLK, base, VCFS_BLK);
	}
	memcpy(rec, data + 1, size - 1);
	if (data[0] & FZ_RESEAL)
		for (size_t i = 0; i < n; i++)
			fz_reseal(rec + i * VCFS_BLK);
	if ((data[0] & FZ_FIXJCRC) && n > 1)
		fz_fix_jcrc(rec + VCFS_BLK, n - 1);
	d = fz_reset();
	fz_place(d, j0, rec, n * VCFS_BLK, n, 0);
	free(rec);
	if (vcfs_journal_inspect(d, &fz_sb, 0, &st) == 0 && st.pending &&
	    st.pending_blocks > VCFS_JDESC_MAX)
		abort();
	(void)vcfs_journal_replay(d, &fz_sb, 0, NULL, &applied);
	if (applied > VCFS_JDESC_MAX)
		abort();
	/* a second replay finds nothing more to do, or the same refusal */
	(void)vcfs_journal_replay(d, &fz_sb, 0, NULL, &applied);
	vcfs_disk_close(d);
	fz_fsck_check();
	fz_mount_walk(fz_open(), 32);
	return 0;
}
