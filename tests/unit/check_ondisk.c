/* check_ondisk.c - the on-disk format: layout, header round trip, checks. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fs/ondisk.h"
#include "common/vcfs_err.h"

static struct vcfs_sb layout(uint64_t bytes, uint32_t hosts)
{
	struct vcfs_mkfs_params p = { .volume_bytes = bytes, .max_hosts = hosts, .label = "t" };
	struct vcfs_sb sb;

	ck_assert_int_eq(vcfs_layout_compute(&p, &sb), 0);
	return sb;
}

/* Regions in order, no overlap, inside the volume, cluster counts cover them. */
static void check_regions(const struct vcfs_sb *sb)
{
	ck_assert_uint_ge(sb->hb_start, VCFS_HB_START);
	ck_assert_uint_ge(sb->journal_start, sb->hb_start + sb->max_hosts);
	ck_assert_uint_ge(sb->cmeta_start, sb->journal_start +
			  (uint64_t)sb->max_hosts * sb->journal_blocks);
	ck_assert_uint_ge(sb->inode_start, sb->cmeta_start + 2ull *
			  (sb->ninode_clusters + sb->nsmall_clusters + sb->nlarge_clusters));
	ck_assert_uint_ge(sb->small_start, sb->inode_start + 2 * sb->ninodes);
	ck_assert_uint_ge(sb->large_start, sb->small_start + sb->nsmall);
	ck_assert_uint_eq(sb->large_start % sb->lblock_blocks, 0);
	ck_assert_uint_le(sb->large_start + sb->nlarge * sb->lblock_blocks, sb->volume_blocks - 1);
	ck_assert_uint_ge((uint64_t)sb->ninode_clusters * sb->inode_cluster, sb->ninodes);
	ck_assert_uint_ge((uint64_t)sb->nlarge_clusters * sb->large_cluster, sb->nlarge);
	ck_assert_uint_le(sb->inode_cluster, VCFS_CBMP_BITS);
	ck_assert_uint_le(sb->small_cluster, VCFS_CBMP_BITS);
	ck_assert_uint_le(sb->large_cluster, VCFS_CBMP_BITS);
	ck_assert_uint_gt(sb->ninodes, VCFS_FIRST_FREE_INO(sb->max_hosts));
}

START_TEST(layouts)
{
	static const struct { uint64_t bytes; uint32_t hosts; } cases[] = {
		{ 64ull << 20, 4 }, { 256ull << 20, 8 }, { 1ull << 30, 64 },
		{ 1ull << 40, 64 }, { 1ull << 40, 256 }, { 64ull << 40, 128 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vcfs_sb sb = layout(cases[i].bytes, cases[i].hosts);
		check_regions(&sb);
		/* at least 80% of a large volume is file data */
		if (cases[i].bytes >= (1ull << 30))
			ck_assert_uint_ge(sb.nlarge * sb.lblock_blocks * 10, sb.volume_blocks * 8);
	}
}
END_TEST

START_TEST(too_small)
{
	struct vcfs_mkfs_params p = { .volume_bytes = 8ull << 20, .max_hosts = 64 };
	struct vcfs_sb sb;

	ck_assert_int_eq(vcfs_layout_compute(&p, &sb), -VCFS_ETOOSMALL);
	p.volume_bytes = 1ull << 30;
	p.max_hosts = 257;
	ck_assert_int_eq(vcfs_layout_compute(&p, &sb), -EINVAL);
	p.max_hosts = 8;
	p.lblock_size = 3u << 20;
	ck_assert_int_eq(vcfs_layout_compute(&p, &sb), -EINVAL);
}
END_TEST

START_TEST(super_roundtrip)
{
	struct vcfs_sb a = layout(1ull << 40, 128), b;
	uint8_t *blk = calloc(1, VCFS_BLK);

	a.seq = 7;
	vcfs_super_encode(&a, blk, 0);
	ck_assert_int_eq(vcfs_super_decode(blk, 0, &b), 0);
	ck_assert_mem_eq(a.uuid, b.uuid, 16);
	ck_assert_str_eq(a.label, b.label);
	ck_assert_uint_eq(a.volgen, b.volgen);
	ck_assert_uint_eq(a.seq, b.seq);
	ck_assert_uint_eq(a.nlarge, b.nlarge);
	ck_assert_uint_eq(a.large_start, b.large_start);
	ck_assert_uint_eq(a.journal_blocks, b.journal_blocks);
	ck_assert_uint_eq(a.max_hosts, b.max_hosts);
	ck_assert_uint_eq(a.io_timeout_ms, b.io_timeout_ms);
	/* a backup names its own block: decoding it as block 0 fails */
	vcfs_super_encode(&a, blk, a.volume_blocks - 1);
	ck_assert_int_eq(vcfs_super_decode(blk, a.volume_blocks - 1, &b), 0);
	ck_assert_int_eq(vcfs_super_decode(blk, 0, &b), -VCFS_ECORRUPT);
	free(blk);
}
END_TEST

START_TEST(super_damage)
{
	struct vcfs_sb a = layout(1ull << 30, 8), b;
	uint8_t *blk = calloc(1, VCFS_BLK);
	struct vcfs_super_disk *s = (void *)blk;

	/* not a vcfs volume at all */
	ck_assert_int_eq(vcfs_super_decode(blk, 0, &b), -VCFS_ENOTVCFS);
	/* a flipped bit anywhere is a bad crc */
	vcfs_super_encode(&a, blk, 0);
	blk[3000] ^= 1;
	ck_assert_int_eq(vcfs_super_decode(blk, 0, &b), -VCFS_ECORRUPT);
	/* overlapping regions, resealed so only the geometry check catches it */
	vcfs_super_encode(&a, blk, 0);
	s->inode_start = le64_mk(a.cmeta_start);
	vcfs_mhdr_reseal(blk);
	ck_assert_int_eq(vcfs_super_decode(blk, 0, &b), -VCFS_ECORRUPT);
	/* a region beyond the end */
	vcfs_super_encode(&a, blk, 0);
	s->nlarge = le64_mk(a.nlarge * 2);
	s->nlarge_clusters = le32_mk((uint32_t)((a.nlarge * 2 + a.large_cluster - 1) / a.large_cluster));
	vcfs_mhdr_reseal(blk);
	ck_assert_int_eq(vcfs_super_decode(blk, 0, &b), -VCFS_ECORRUPT);
	/* unknown incompatible feature */
	vcfs_super_encode(&a, blk, 0);
	s->feat_incompat = le64_mk(1ull << 40);
	vcfs_mhdr_reseal(blk);
	ck_assert_int_eq(vcfs_super_decode(blk, 0, &b), -VCFS_EFEATURE);
	/* a newer format version */
	vcfs_super_encode(&a, blk, 0);
	s->h.fmt = le16_mk(2);
	vcfs_mhdr_reseal(blk);
	ck_assert_int_eq(vcfs_super_decode(blk, 0, &b), -VCFS_EFEATURE);
	free(blk);
}
END_TEST

START_TEST(mhdr_states)
{
	uint8_t *blk = calloc(1, VCFS_BLK);
	struct vcfs_inode_disk *ino = (void *)blk;

	/* zeros are "not initialised" */
	ck_assert_int_eq(vcfs_mhdr_check(blk, VCFS_T_INODE, 99, 1234), 1);
	ino->size = le64_mk(42);
	vcfs_mhdr_set_seq(blk, 5);
	vcfs_mhdr_seal(blk, VCFS_T_INODE, 99, 1234);
	ck_assert_int_eq(vcfs_mhdr_check(blk, VCFS_T_INODE, 99, 1234), 0);
	ck_assert_uint_eq(vcfs_mhdr_seq(blk), 5);
	/* another volume generation or another address: not initialised */
	ck_assert_int_eq(vcfs_mhdr_check(blk, VCFS_T_INODE, 99, 1235), 1);
	ck_assert_int_eq(vcfs_mhdr_check(blk, VCFS_T_INODE, 98, 1234), 1);
	/* wrong type, bad crc: corrupt */
	ck_assert_int_eq(vcfs_mhdr_check(blk, VCFS_T_DIRB, 99, 1234), -VCFS_ECORRUPT);
	blk[4095] ^= 0x80;
	ck_assert_int_eq(vcfs_mhdr_check(blk, VCFS_T_INODE, 99, 1234), -VCFS_ECORRUPT);
	/* record blocks: the crc covers 512 bytes, the rest is never looked at */
	memset(blk, 0, VCFS_BLK);
	vcfs_mhdr_seal(blk, VCFS_T_LOCK, 7, 1234);
	blk[600] = 0xff;
	ck_assert_int_eq(vcfs_mhdr_check(blk, VCFS_T_LOCK, 7, 1234), 0);
	blk[100] = 0xff;
	ck_assert_int_eq(vcfs_mhdr_check(blk, VCFS_T_LOCK, 7, 1234), -VCFS_ECORRUPT);
	free(blk);
}
END_TEST

START_TEST(dir_hash)
{
	/* stable across builds: the on-disk directory depends on it */
	uint32_t a = vcfs_dir_hash("vm1.vmdk", 8), b = vcfs_dir_hash("vm2.vmdk", 8);
	unsigned buckets[16] = { 0 };

	ck_assert_uint_eq(a, vcfs_dir_hash("vm1.vmdk", 8));
	ck_assert_uint_ne(a, b);
	/* names that differ in one digit spread over the low bits */
	for (int i = 0; i < 1600; i++) {
		char n[32];
		int l = snprintf(n, sizeof(n), "file%04d", i);
		buckets[vcfs_dir_hash(n, (size_t)l) % 16]++;
	}
	for (int i = 0; i < 16; i++)
		ck_assert_uint_gt(buckets[i], 50);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("ondisk");
	TCase *t = tcase_create("format");

	tcase_add_test(t, layouts);
	tcase_add_test(t, too_small);
	tcase_add_test(t, super_roundtrip);
	tcase_add_test(t, super_damage);
	tcase_add_test(t, mhdr_states);
	tcase_add_test(t, dir_hash);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int nf;

	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? 1 : 0;
}
