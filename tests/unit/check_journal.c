/*
 * check_journal.c - the per-host redo journal (journal/journal.c).
 *
 * Every test works on a sparse image file under a per-run directory in
 * /var/tmp (made by main, removed at exit even when tests fail) and passes
 * hb = NULL, so nothing here depends on lock/.
 *
 * The crash test records a workload of overlapping transactions through the
 * crash layer, rebuilds the disk at EVERY write index with the keep, drop,
 * tear and random policies, replays the journal, and demands that the home
 * blocks are exactly the state after transactions 1..k, where k is the last
 * transaction whose journal record is complete in the prefix (which includes
 * every transaction whose commit had returned): never half a transaction.
 * It also crashes each of those replays at each of its writes and replays
 * again.  The crash layer tears in physical sectors, 4 KiB on the file
 * backend, so it never tears inside a block here: torn_home_repaired builds
 * those by hand.
 */
#include <check.h>
#include "ck_tmpdir.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common/clock.h"
#include "common/log.h"
#include "common/vcfs_err.h"
#include "disk/disk.h"
#include "fs/ondisk.h"
#include "journal/journal.h"

#define SLOT	1
#define NTX	5	/* transactions in the crash workload */
#define NH	7	/* home blocks it touches */

static char dir[64];	/* made by main, removed after the run */
static char img[128];
static struct vcfs_sb sb;
static uint64_t jblk;	/* header of SLOT's journal */

/* ---- log capture ---- */
static char logbuf[16384];
static size_t loglen;

static void log_sink(enum vcfs_log_level lvl, const char *msg, void *arg)
{
	(void)lvl;
	(void)arg;
	loglen += (size_t)snprintf(logbuf + loglen, sizeof(logbuf) - loglen, "%s\n", msg);
	if (loglen >= sizeof(logbuf))
		loglen = 0;
}

static void log_reset(void)
{
	loglen = 0;
	logbuf[0] = 0;
}

/* ---- images and blocks ---- */
static void setup(void)
{
	struct vcfs_mkfs_params p = { .volume_bytes = 64ull << 20, .max_hosts = 4,
				      .journal_blocks = 64, .lblock_size = 64 * 1024,
				      .label = "jtest" };
	static int n;
	int fd;

	ck_assert_int_eq(vcfs_layout_compute(&p, &sb), 0);
	jblk = vcfs_journal_blk(&sb, SLOT);
	snprintf(img, sizeof(img), "%s/img%d-%d", dir, (int)getpid(), n++);
	fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)(sb.volume_blocks * VCFS_BLK)), 0);
	close(fd);
	vcfs_log_set_sink(log_sink, NULL);
	vcfs_log_set_level(VCFS_LOG_DEBUG);
	log_reset();
}

static void teardown(void)
{
	unlink(img);
}

static struct vcfs_disk *open_path(const char *path, int direct)
{
	struct vcfs_disk_opts o = { .flags = direct ? 0 : VCFS_DISK_NO_DIRECT };
	struct vcfs_disk *d;
	char uri[200];

	snprintf(uri, sizeof(uri), "file:%s", path);
	ck_assert_int_eq(vcfs_disk_open(uri, &o, &d), 0);
	return d;
}

static struct vcfs_disk *open_img(void)
{
	return open_path(img, 0);
}

static void *blk_alloc(void)
{
	void *b = vcfs_disk_buf_alloc(VCFS_BLK);

	ck_assert_ptr_nonnull(b);
	return b;
}

static void rd(struct vcfs_disk *d, uint64_t blkno, void *buf)
{
	ck_assert_int_eq(vcfs_disk_read(d, blkno * VCFS_BLK, buf, VCFS_BLK), 0);
}

static void wr(struct vcfs_disk *d, uint64_t blkno, const void *buf)
{
	ck_assert_int_eq(vcfs_disk_write(d, blkno * VCFS_BLK, buf, VCFS_BLK, VCFS_IO_FUA), 0);
}

/* A block as the fs would hand it to vcfs_txn_add: type set, seq as read. */
static void fill(void *b, enum vcfs_btype t, uint64_t seq, unsigned pattern)
{
	uint8_t *p = b;

	for (size_t i = sizeof(struct vcfs_mhdr); i < VCFS_BLK; i++)
		p[i] = (uint8_t)(pattern * 31 + i * 7 + (i >> 8));
	memset(b, 0, sizeof(struct vcfs_mhdr));
	((struct vcfs_mhdr *)b)->type = le16_mk(t);
	vcfs_mhdr_set_seq(b, seq);
}

/* A valid home block (as another host's commit would leave it). */
static void put_valid(struct vcfs_disk *d, uint64_t blkno, enum vcfs_btype t,
		      uint64_t seq, unsigned pattern)
{
	uint8_t *b = blk_alloc();

	fill(b, t, seq, pattern);
	vcfs_mhdr_seal(b, t, blkno, sb.volgen);
	wr(d, blkno, b);
	free(b);
}

/* Rewrite the journal header of SLOT with ckpt_seq + dc and jgen + dg:
 * "crash before the checkpoint" and "generation mismatch". */
static void edit_header(struct vcfs_disk *d, int64_t dc, int64_t dg)
{
	struct vcfs_jhdr_disk *h = blk_alloc();

	rd(d, jblk, h);
	ck_assert_int_eq(vcfs_mhdr_check(h, VCFS_T_JHDR, jblk, sb.volgen), 0);
	h->ckpt_seq = le64_mk(le64_get(h->ckpt_seq) + (uint64_t)dc);
	h->jgen = le64_mk(le64_get(h->jgen) + (uint64_t)dg);
	vcfs_mhdr_reseal(h);
	wr(d, jblk, h);
	free(h);
}

/* Flip one byte of journal block k of SLOT (0 = header). */
static void flip(struct vcfs_disk *d, uint64_t k, size_t at)
{
	uint8_t *b = blk_alloc();

	rd(d, jblk + k, b);
	b[at] ^= 0x5a;
	wr(d, jblk + k, b);
	free(b);
}

static void expect_blk(struct vcfs_disk *d, uint64_t blkno, const void *want)
{
	uint8_t *b = blk_alloc();

	rd(d, blkno, b);
	ck_assert_msg(memcmp(b, want, VCFS_BLK) == 0, "block %llu differs",
		      (unsigned long long)blkno);
	free(b);
}

static struct vcfs_journal *jopen(struct vcfs_disk *d)
{
	struct vcfs_journal *j;

	ck_assert_int_eq(vcfs_journal_open(d, &sb, SLOT, NULL, &j), 0);
	return j;
}

/* Commit blocks blk[0..n) (each already filled) and keep the sealed images. */
static int commit_blocks(struct vcfs_journal *j, const uint64_t *blkno, uint8_t *const *blk,
			 uint32_t n, uint8_t **images)
{
	struct vcfs_txn *t;

	ck_assert_int_eq(vcfs_txn_begin(j, &t), 0);
	for (uint32_t i = 0; i < n; i++)
		ck_assert_int_eq(vcfs_txn_add(t, blkno[i], blk[i]), 0);
	for (uint32_t i = 0; images && i < n; i++) {
		const void *im = vcfs_txn_image(t, blkno[i]);
		ck_assert_ptr_nonnull(im);
		memcpy(images[i], im, VCFS_BLK);
	}
	return vcfs_txn_commit(t);
}

/* ---- round trip ---- */
START_TEST(round_trip)
{
	struct vcfs_disk *d = open_img();
	struct vcfs_journal *j = jopen(d);
	struct vcfs_journal_state js;
	enum { N = 20 };
	uint64_t blkno[N];
	uint8_t *blk[N], *im[N], *b = blk_alloc();

	for (int i = 0; i < N; i++) {
		/* runs of neighbours and lone blocks, added out of order */
		blkno[i] = sb.inode_start + 1 + (uint64_t)((i * 7) % N) * (i % 3 ? 1 : 5);
		for (int k = 0; k < i; k++)
			if (blkno[k] == blkno[i])
				blkno[i] += 1000;
		blk[i] = blk_alloc();
		im[i] = blk_alloc();
		fill(blk[i], i % 2 ? VCFS_T_INODE : VCFS_T_IND, (uint64_t)i * 3, (unsigned)i);
		if (i % 4)	/* the others are not initialised on disk (seq 0) */
			put_valid(d, blkno[i], VCFS_T_INODE, (uint64_t)i * 3, 99);
	}
	ck_assert_int_eq(commit_blocks(j, blkno, blk, N, im), 0);
	for (int i = 0; i < N; i++) {
		rd(d, blkno[i], b);
		ck_assert_mem_eq(b, im[i], VCFS_BLK);
		ck_assert_int_eq(vcfs_mhdr_check(b, i % 2 ? VCFS_T_INODE : VCFS_T_IND,
						 blkno[i], sb.volgen), 0);
		ck_assert_uint_eq(vcfs_mhdr_seq(b), (uint64_t)i * 3 + 1);
		ck_assert_uint_eq(le32_get(((struct vcfs_mhdr *)b)->writer), SLOT);
		/* the body is what the caller gave */
		ck_assert_mem_eq(b + 64, blk[i] + 64, VCFS_BLK - 64);
	}
	ck_assert_int_eq(vcfs_journal_inspect(d, &sb, SLOT, &js), 0);
	ck_assert_int_eq(js.initialised, 1);
	ck_assert_uint_eq(js.jgen, 1);
	ck_assert_uint_eq(js.ckpt_seq, 1);
	ck_assert_int_eq(js.pending, 0);
	ck_assert_int_eq(js.corrupt, 0);

	/* a second transaction: ckpt moves on; replay finds nothing */
	ck_assert_int_eq(commit_blocks(j, blkno, blk, 1, NULL), 0);
	ck_assert_int_eq(vcfs_journal_inspect(d, &sb, SLOT, &js), 0);
	ck_assert_uint_eq(js.ckpt_seq, 2);
	vcfs_journal_close(j);
	unsigned applied = 7;
	ck_assert_int_eq(vcfs_journal_replay(d, &sb, SLOT, NULL, &applied), 0);
	ck_assert_uint_eq(applied, 0);
	/* reopen: generation + 1, checkpoint kept */
	j = jopen(d);
	ck_assert_int_eq(vcfs_journal_inspect(d, &sb, SLOT, &js), 0);
	ck_assert_uint_eq(js.jgen, 2);
	ck_assert_uint_eq(js.ckpt_seq, 2);
	vcfs_journal_close(j);
	for (int i = 0; i < N; i++) {
		free(blk[i]);
		free(im[i]);
	}
	free(b);
	vcfs_disk_close(d);
}
END_TEST

START_TEST(add_rules)
{
	struct vcfs_disk *d = open_img();
	struct vcfs_journal *j = jopen(d);
	struct vcfs_txn *t;
	uint8_t *a = blk_alloc(), *b = blk_alloc(), *home = blk_alloc();
	uint64_t x = sb.small_start + 3;
	const uint8_t *im;

	put_valid(d, x, VCFS_T_DIRB, 41, 1);
	rd(d, x, home);
	ck_assert_int_eq(vcfs_txn_begin(j, &t), 0);
	fill(a, VCFS_T_DIRB, 41, 2);
	ck_assert_int_eq(vcfs_txn_add(t, x, a), 0);
	im = vcfs_txn_image(t, x);
	ck_assert_uint_eq(vcfs_mhdr_seq(im), 42);
	/* replacing: the caller may hand back the stamped image, or its base */
	memcpy(b, im, VCFS_BLK);
	b[100] ^= 1;
	ck_assert_int_eq(vcfs_txn_add(t, x, b), 0);
	fill(b, VCFS_T_DIRB, 41, 3);
	ck_assert_int_eq(vcfs_txn_add(t, x, b), 0);
	ck_assert_uint_eq(vcfs_txn_nblocks(t), 1);
	im = vcfs_txn_image(t, x);
	ck_assert_uint_eq(vcfs_mhdr_seq(im), 42);
	ck_assert_mem_eq(im + 64, b + 64, VCFS_BLK - 64);
	ck_assert_int_eq(vcfs_mhdr_check(im, VCFS_T_DIRB, x, sb.volgen), 0);
	ck_assert_ptr_null(vcfs_txn_image(t, x + 1));
	/* adding the image pointer itself is fine (overlapping copy) */
	ck_assert_int_eq(vcfs_txn_add(t, x, im), 0);
	ck_assert_uint_eq(vcfs_mhdr_seq(vcfs_txn_image(t, x)), 42);
	/* record blocks, journal blocks, and blocks outside the metadata */
	fill(a, VCFS_T_LOCK, 0, 4);
	ck_assert_int_eq(vcfs_txn_add(t, sb.cmeta_start, a), -EINVAL);
	fill(a, VCFS_T_JDESC, 0, 4);
	ck_assert_int_eq(vcfs_txn_add(t, sb.cmeta_start + 1, a), -EINVAL);
	fill(a, VCFS_T_INODE, 0, 4);
	ck_assert_int_eq(vcfs_txn_add(t, jblk + 3, a), -ERANGE);
	ck_assert_int_eq(vcfs_txn_add(t, sb.hb_start, a), -ERANGE);
	ck_assert_int_eq(vcfs_txn_add(t, sb.volume_blocks, a), -ERANGE);
	ck_assert_uint_eq(vcfs_txn_nblocks(t), 1);
	/* abort writes nothing */
	vcfs_txn_abort(t);
	expect_blk(d, x, home);
	/* and the next transaction still commits */
	ck_assert_int_eq(vcfs_txn_begin(j, &t), 0);
	ck_assert_int_eq(vcfs_txn_add(t, x, b), 0);
	memcpy(a, vcfs_txn_image(t, x), VCFS_BLK);
	ck_assert_int_eq(vcfs_txn_commit(t), 0);
	expect_blk(d, x, a);
	/* an empty transaction is a no-op */
	ck_assert_int_eq(vcfs_txn_begin(j, &t), 0);
	ck_assert_int_eq(vcfs_txn_commit(t), 0);
	struct vcfs_journal_state js;
	ck_assert_int_eq(vcfs_journal_inspect(d, &sb, SLOT, &js), 0);
	ck_assert_uint_eq(js.ckpt_seq, 1);
	vcfs_journal_close(j);
	free(a);
	free(b);
	free(home);
	vcfs_disk_close(d);
}
END_TEST

/* A transaction of the largest size fits its journal and replays. */
START_TEST(max_blocks)
{
	struct vcfs_disk *d = open_img();
	struct vcfs_journal *j;
	struct vcfs_txn *t;
	uint32_t max = vcfs_journal_max_blocks(&sb);
	uint8_t *b = blk_alloc(), *next = blk_alloc(), *next2 = blk_alloc();
	uint8_t **im;
	unsigned applied;

	ck_assert_uint_eq(max, sb.journal_blocks - 3);
	ck_assert_uint_le(max, VCFS_JDESC_MAX);
	{	/* the cap */
		struct vcfs_sb big = sb;
		big.journal_blocks = 4096;
		ck_assert_uint_eq(vcfs_journal_max_blocks(&big), VCFS_JDESC_MAX);
	}
	/* the next slot's journal header must survive a full transaction */
	put_valid(d, jblk + sb.journal_blocks, VCFS_T_JHDR, 5, 77);
	rd(d, jblk + sb.journal_blocks, next);
	j = jopen(d);
	im = calloc(max, sizeof(*im));
	ck_assert_int_eq(vcfs_txn_begin(j, &t), 0);
	for (uint32_t i = 0; i < max; i++) {
		fill(b, VCFS_T_IND, 0, i);
		/* descending, with gaps every 7 blocks */
		ck_assert_int_eq(vcfs_txn_add(t, sb.small_start + 2 * max - i - i / 7, b), 0);
	}
	fill(b, VCFS_T_IND, 0, 0);
	ck_assert_int_eq(vcfs_txn_add(t, sb.small_start + 3 * max, b), -E2BIG);
	/* replacing one still works when full */
	ck_assert_int_eq(vcfs_txn_add(t, sb.small_start + 2 * max, b), 0);
	ck_assert_uint_eq(vcfs_txn_nblocks(t), max);
	for (uint32_t i = 0; i < max; i++) {
		im[i] = blk_alloc();
		memcpy(im[i], vcfs_txn_image(t, sb.small_start + 2 * max - i - i / 7), VCFS_BLK);
	}
	ck_assert_int_eq(vcfs_txn_commit(t), 0);
	rd(d, jblk + sb.journal_blocks, next2);
	ck_assert_mem_eq(next, next2, VCFS_BLK);
	for (uint32_t i = 0; i < max; i++)
		expect_blk(d, sb.small_start + 2 * max - i - i / 7, im[i]);
	vcfs_journal_close(j);
	/* crash before the checkpoint with nothing home: replay writes all */
	edit_header(d, -1, 0);
	memset(b, 0, VCFS_BLK);
	for (uint32_t i = 0; i < max; i++)
		wr(d, sb.small_start + 2 * max - i - i / 7, b);
	ck_assert_int_eq(vcfs_journal_replay(d, &sb, SLOT, NULL, &applied), 0);
	ck_assert_uint_eq(applied, max);
	for (uint32_t i = 0; i < max; i++) {
		expect_blk(d, sb.small_start + 2 * max - i - i / 7, im[i]);
		free(im[i]);
	}
	free(im);
	free(b);
	free(next);
	free(next2);
	vcfs_disk_close(d);
}
END_TEST

/* ---- replay rules, without the crash layer ---- */

/* Commit {x, x+1} over valid blocks of seq 5, then un-checkpoint: the state
 * of a host that died between its home writes and the header write. */
static uint64_t header_tail(struct vcfs_disk *d)
{
	struct vcfs_jhdr_disk *h = blk_alloc();
	uint64_t t;

	rd(d, jblk, h);
	t = le64_get(h->tail);
	free(h);
	return t;
}

/* Returns the log block where the record starts (its 4 blocks follow). */
static uint64_t live_txn(struct vcfs_disk *d, uint64_t x, uint8_t **old, uint8_t **im)
{
	struct vcfs_journal *j;
	uint64_t blkno[2] = { x, x + 1 }, start;
	uint8_t *blk[2] = { blk_alloc(), blk_alloc() };

	for (int i = 0; i < 2; i++) {
		put_valid(d, blkno[i], VCFS_T_INODE, 5, 10 + i);
		rd(d, blkno[i], old[i]);
		fill(blk[i], VCFS_T_INODE, 5, 20 + i);
	}
	j = jopen(d);
	start = header_tail(d);
	ck_assert_int_eq(commit_blocks(j, blkno, blk, 2, im), 0);
	vcfs_journal_close(j);
	if (header_tail(d) != start + 4)
		start = 1;	/* the log wrapped */
	edit_header(d, -1, 0);
	{	/* and the tail where it was before the commit */
		struct vcfs_jhdr_disk *h = blk_alloc();
		rd(d, jblk, h);
		h->tail = le64_mk(start);
		vcfs_mhdr_reseal(h);
		wr(d, jblk, h);
		free(h);
	}
	free(blk[0]);
	free(blk[1]);
	return start;
}

START_TEST(seq_guard)
{
	struct vcfs_disk *d = open_img();
	uint64_t x = sb.inode_start + 11;
	uint8_t *old[2] = { blk_alloc(), blk_alloc() }, *im[2] = { blk_alloc(), blk_alloc() };
	uint8_t *newer = blk_alloc();
	struct vcfs_journal_state js;
	unsigned applied;

	live_txn(d, x, old, im);
	ck_assert_int_eq(vcfs_journal_inspect(d, &sb, SLOT, &js), 0);
	ck_assert_int_eq(js.pending, 1);
	ck_assert_uint_eq(js.pending_blocks, 2);
	/* after our transaction, another host changed x (seq 9); x+1 is back
	 * at its old version as if our home write was lost */
	put_valid(d, x, VCFS_T_INODE, 9, 55);
	rd(d, x, newer);
	wr(d, x + 1, old[1]);
	log_reset();
	ck_assert_int_eq(vcfs_journal_replay(d, &sb, SLOT, NULL, &applied), 0);
	ck_assert_uint_eq(applied, 1);
	expect_blk(d, x, newer);
	expect_blk(d, x + 1, im[1]);
	ck_assert_ptr_nonnull(strstr(logbuf, "replayed transactions 1..1 (1)"));
	ck_assert_int_eq(vcfs_journal_inspect(d, &sb, SLOT, &js), 0);
	ck_assert_int_eq(js.pending, 0);
	ck_assert_uint_eq(js.ckpt_seq, 1);
	ck_assert_uint_eq(js.jgen, 2);
	/* idempotent */
	ck_assert_int_eq(vcfs_journal_replay(d, &sb, SLOT, NULL, &applied), 0);
	ck_assert_uint_eq(applied, 0);
	expect_blk(d, x, newer);
	expect_blk(d, x + 1, im[1]);
	/* a home block of the image's own seq is not rewritten either: make the
	 * record live again (checkpoint and generation as before the replay) */
	edit_header(d, -1, -1);
	ck_assert_int_eq(vcfs_journal_replay(d, &sb, SLOT, NULL, &applied), 0);
	ck_assert_uint_eq(applied, 0);
	for (int i = 0; i < 2; i++) {
		free(old[i]);
		free(im[i]);
	}
	free(newer);
	vcfs_disk_close(d);
}
END_TEST

/* vcfs_journal_scan hands over what replay would write, and writes nothing. */
struct scanned { unsigned n; uint64_t blkno[4]; uint8_t img[4][VCFS_BLK]; };

static void scan_cb(void *arg, uint64_t blkno, const void *image)
{
	struct scanned *sc = arg;

	if (sc->n < 4) {
		sc->blkno[sc->n] = blkno;
		memcpy(sc->img[sc->n], image, VCFS_BLK);
	}
	sc->n++;
}

START_TEST(scan_writes_nothing)
{
	struct vcfs_disk *d = open_img();
	uint64_t x = sb.inode_start + 11;
	uint8_t *old[2] = { blk_alloc(), blk_alloc() }, *im[2] = { blk_alloc(), blk_alloc() };
	struct vcfs_journal_state js;
	struct scanned *sc = calloc(1, sizeof(*sc));
	unsigned n;

	live_txn(d, x, old, im);
	wr(d, x, old[0]);	/* as if the home writes had not happened */
	wr(d, x + 1, old[1]);
	ck_assert_int_eq(vcfs_journal_scan(d, &sb, SLOT, scan_cb, sc, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(sc->n, 2);
	for (int i = 0; i < 2; i++) {
		ck_assert_uint_eq(sc->blkno[i], x + (uint64_t)i);
		ck_assert_mem_eq(sc->img[i], im[i], VCFS_BLK);
		expect_blk(d, x + (uint64_t)i, old[i]);	/* home untouched */
	}
	ck_assert_int_eq(vcfs_journal_inspect(d, &sb, SLOT, &js), 0);
	ck_assert_int_eq(js.pending, 1);		/* still to replay */
	/* after the replay there is nothing left to hand over */
	ck_assert_int_eq(vcfs_journal_replay(d, &sb, SLOT, NULL, NULL), 0);
	sc->n = 0;
	ck_assert_int_eq(vcfs_journal_scan(d, &sb, SLOT, scan_cb, sc, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(sc->n, 0);
	for (int i = 0; i < 2; i++) {
		free(old[i]);
		free(im[i]);
	}
	free(sc);
	vcfs_disk_close(d);
}
END_TEST

START_TEST(torn_home_repaired)
{
	struct vcfs_disk *d = open_img();
	uint64_t x = sb.inode_start + 21;
	uint8_t *old[2] = { blk_alloc(), blk_alloc() }, *im[2] = { blk_alloc(), blk_alloc() };
	uint8_t *torn = blk_alloc();
	unsigned applied;

	live_txn(d, x, old, im);
	/* x: new first half, old second half (a torn in-place write);
	 * x+1: old first half, new second half (the sectors in other order) */
	memcpy(torn, im[0], VCFS_BLK / 2);
	memcpy(torn + VCFS_BLK / 2, old[0] + VCFS_BLK / 2, VCFS_BLK / 2);
	wr(d, x, torn);
	memcpy(torn, old[1], VCFS_BLK / 2);
	memcpy(torn + VCFS_BLK / 2, im[1] + VCFS_BLK / 2, VCFS_BLK / 2);
	wr(d, x + 1, torn);
	ck_assert_int_eq(vcfs_journal_replay(d, &sb, SLOT, NULL, &applied), 0);
	ck_assert_uint_eq(applied, 2);
	expect_blk(d, x, im[0]);
	expect_blk(d, x + 1, im[1]);
	for (int i = 0; i < 2; i++) {
		free(old[i]);
		free(im[i]);
	}
	free(torn);
	vcfs_disk_close(d);
}
END_TEST

START_TEST(corrupt_header)
{
	struct vcfs_disk *d = open_img();
	uint64_t x = sb.inode_start + 31;
	uint8_t *old[2] = { blk_alloc(), blk_alloc() }, *im[2] = { blk_alloc(), blk_alloc() };
	struct vcfs_journal_state js;
	struct vcfs_journal *j;
	unsigned applied = 9;

	live_txn(d, x, old, im);
	wr(d, x, old[0]);
	wr(d, x + 1, old[1]);
	flip(d, 0, 1000);
	log_reset();
	ck_assert_int_eq(vcfs_journal_replay(d, &sb, SLOT, NULL, &applied), -VCFS_ECORRUPT);
	ck_assert_uint_eq(applied, 0);
	ck_assert_ptr_nonnull(strstr(logbuf, "header is corrupt"));
	expect_blk(d, x, old[0]);
	expect_blk(d, x + 1, old[1]);
	ck_assert_int_eq(vcfs_journal_inspect(d, &sb, SLOT, &js), 0);
	ck_assert_int_eq(js.corrupt, 1);
	ck_assert_int_eq(js.initialised, 0);
	ck_assert_int_eq(vcfs_journal_open(d, &sb, SLOT, NULL, &j), -VCFS_ECORRUPT);
	/* fsck resets it: nothing of the old record is ever replayed */
	ck_assert_int_eq(vcfs_journal_reset(d, &sb, SLOT, NULL), 0);
	ck_assert_int_eq(vcfs_journal_inspect(d, &sb, SLOT, &js), 0);
	ck_assert_int_eq(js.initialised, 1);
	ck_assert_int_eq(js.pending, 0);
	ck_assert_int_eq(vcfs_journal_replay(d, &sb, SLOT, NULL, &applied), 0);
	ck_assert_uint_eq(applied, 0);
	expect_blk(d, x, old[0]);
	j = jopen(d);
	{
		uint64_t bn = x;
		uint8_t *b = blk_alloc();
		fill(b, VCFS_T_INODE, 5, 3);
		ck_assert_int_eq(commit_blocks(j, &bn, &b, 1, &im[0]), 0);
		expect_blk(d, x, im[0]);
		free(b);
	}
	vcfs_journal_close(j);
	for (int i = 0; i < 2; i++) {
		free(old[i]);
		free(im[i]);
	}
	vcfs_disk_close(d);
}
END_TEST

/* A damaged record, or one of another generation, is not a transaction. */
START_TEST(corrupt_record)
{
	static const struct { uint64_t k; size_t at; int dgen; const char *log; } cases[] = {
		{ 2, 3000, 0, "commit checksum does not match" },	/* an image */
		{ 1, 2000, 0, "descriptor is torn" },		/* the descriptor body */
		{ 4, 100, 0, "no valid commit record" },	/* the commit */
		{ 0, 0, 1, "earlier journal generation" },	/* jgen mismatch */
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct vcfs_disk *d = open_img();
		uint64_t x = sb.inode_start + 41 + 4 * c;
		uint8_t *old[2] = { blk_alloc(), blk_alloc() };
		uint8_t *im[2] = { blk_alloc(), blk_alloc() };
		struct vcfs_journal_state js;
		unsigned applied = 9;

		uint64_t start = live_txn(d, x, old, im);
		wr(d, x, old[0]);
		wr(d, x + 1, old[1]);
		if (cases[c].dgen)
			edit_header(d, 0, cases[c].dgen);
		else
			flip(d, start + cases[c].k - 1, cases[c].at);
		log_reset();
		ck_assert_int_eq(vcfs_journal_replay(d, &sb, SLOT, NULL, &applied), 0);
		ck_assert_uint_eq(applied, 0);
		ck_assert_msg(strstr(logbuf, cases[c].log) != NULL, "case %zu: log '%s'", c,
			      logbuf);
		expect_blk(d, x, old[0]);
		expect_blk(d, x + 1, old[1]);
		ck_assert_int_eq(vcfs_journal_inspect(d, &sb, SLOT, &js), 0);
		ck_assert_int_eq(js.pending, 0);
		for (int i = 0; i < 2; i++) {
			free(old[i]);
			free(im[i]);
		}
		vcfs_disk_close(d);
	}
}
END_TEST

/* A record left at block 1 by an earlier life of the slot (header lost)
 * never matches the generation a fresh open starts. */
START_TEST(fresh_header_skips_old_record)
{
	struct vcfs_disk *d = open_img();
	uint64_t x = sb.inode_start + 61;
	uint8_t *old[2] = { blk_alloc(), blk_alloc() }, *im[2] = { blk_alloc(), blk_alloc() };
	uint8_t *z = blk_alloc();
	struct vcfs_journal_state js;
	struct vcfs_journal *j;
	unsigned applied;

	live_txn(d, x, old, im);
	wr(d, x, old[0]);
	wr(d, jblk, z);		/* the header is gone (never written, wiped) */
	ck_assert_int_eq(vcfs_journal_replay(d, &sb, SLOT, NULL, &applied), 0);
	ck_assert_uint_eq(applied, 0);
	j = jopen(d);
	ck_assert_int_eq(vcfs_journal_inspect(d, &sb, SLOT, &js), 0);
	ck_assert_int_eq(js.pending, 0);
	ck_assert_uint_gt(js.jgen, 1);
	vcfs_journal_close(j);
	/* a crash now (header of the new generation, old record) replays nothing */
	ck_assert_int_eq(vcfs_journal_replay(d, &sb, SLOT, NULL, &applied), 0);
	ck_assert_uint_eq(applied, 0);
	expect_blk(d, x, old[0]);
	for (int i = 0; i < 2; i++) {
		free(old[i]);
		free(im[i]);
	}
	free(z);
	vcfs_disk_close(d);
}
END_TEST

/* One transaction at a time per journal. */
struct begin_arg {
	struct vcfs_journal *j;
	volatile int began;
};

static void *begin_thread(void *arg)
{
	struct begin_arg *a = arg;
	struct vcfs_txn *t;

	if (vcfs_txn_begin(a->j, &t) == 0) {
		a->began = 1;
		vcfs_txn_abort(t);
	}
	return NULL;
}

START_TEST(one_txn_at_a_time)
{
	struct vcfs_disk *d = open_img();
	struct vcfs_journal *j = jopen(d);
	struct begin_arg a = { .j = j };
	struct vcfs_txn *t;
	pthread_t th;

	ck_assert_int_eq(vcfs_txn_begin(j, &t), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, begin_thread, &a), 0);
	usleep(100 * 1000);
	ck_assert_int_eq(a.began, 0);
	vcfs_txn_abort(t);
	pthread_join(th, NULL);
	ck_assert_int_eq(a.began, 1);
	vcfs_journal_close(j);
	vcfs_disk_close(d);
}
END_TEST

/* ---- the crash workload ---- */

struct workload {
	uint64_t home[NH];
	uint8_t *init[NH];		/* initial content of each home block */
	uint8_t *state[NTX + 1][NH];	/* home blocks after transactions 1..k */
	uint8_t *jinit;			/* initial journal region of SLOT */
	size_t w[NTX + 1];		/* writes logged when commit k returned
					 * (w[0]: after open) */
	size_t rec_end[NTX + 1];	/* index of the last write of record k */
};

/* Which home blocks each transaction touches, in the order it adds them. */
static const int wl_tx[NTX][NH + 1] = {
	{ 0, 1, 4, -1 },
	{ 2, 1, 6, -1 },
	{ 5, 0, 0, -1 },		/* adds block 0 twice */
	{ 6, 2, 1, 4, 5, -1 },
	{ 0, -1 },
};

static void wl_free(struct workload *w)
{
	for (int i = 0; i < NH; i++) {
		free(w->init[i]);
		for (int k = 0; k <= NTX; k++)
			free(w->state[k][i]);
	}
	free(w->jinit);
}

/* Record the workload on a crash-layer disk over img. */
static struct vcfs_disk *wl_record(struct workload *w)
{
	struct vcfs_disk *d = open_img(), *c;
	struct vcfs_journal *j;
	uint64_t seq[NH];
	uint8_t *b = blk_alloc();

	memset(w, 0, sizeof(*w));
	/* blocks 0..2 neighbours, 4..5 neighbours, 3 and 6 alone; 4 is not
	 * initialised; 3 is never touched */
	w->home[0] = sb.inode_start + 101;
	w->home[1] = sb.inode_start + 102;
	w->home[2] = sb.inode_start + 103;
	w->home[3] = sb.inode_start + 200;
	w->home[4] = sb.small_start + 10;
	w->home[5] = sb.small_start + 11;
	w->home[6] = sb.small_start + 40;
	for (int i = 0; i < NH; i++) {
		seq[i] = i == 4 ? 0 : 3 + (uint64_t)i * 5;
		if (i != 4)
			put_valid(d, w->home[i], i < 4 ? VCFS_T_INODE : VCFS_T_DIRB, seq[i],
				  (unsigned)(100 + i));
		w->init[i] = blk_alloc();
		rd(d, w->home[i], w->init[i]);
	}
	w->jinit = vcfs_disk_buf_alloc((size_t)sb.journal_blocks * VCFS_BLK);
	ck_assert_int_eq(vcfs_disk_read(d, jblk * VCFS_BLK, w->jinit,
					(size_t)sb.journal_blocks * VCFS_BLK), 0);

	ck_assert_int_eq(vcfs_crash_wrap(d, VCFS_CRASH_LOG, &c), 0);
	j = jopen(c);
	w->w[0] = vcfs_crash_nwrites(c);
	for (int i = 0; i < NH; i++) {
		w->state[0][i] = blk_alloc();
		memcpy(w->state[0][i], w->init[i], VCFS_BLK);
	}
	for (int k = 1; k <= NTX; k++) {
		struct vcfs_txn *t;
		int touched[NH] = { 0 };

		ck_assert_int_eq(vcfs_txn_begin(j, &t), 0);
		for (int m = 0; wl_tx[k - 1][m] >= 0; m++) {
			int i = wl_tx[k - 1][m];
			fill(b, i < 4 ? VCFS_T_INODE : VCFS_T_DIRB, seq[i],
			     (unsigned)(k * 16 + i + m));
			ck_assert_int_eq(vcfs_txn_add(t, w->home[i], b), 0);
			touched[i] = 1;
		}
		for (int i = 0; i < NH; i++) {
			w->state[k][i] = blk_alloc();
			memcpy(w->state[k][i], touched[i] ? vcfs_txn_image(t, w->home[i]) :
			       w->state[k - 1][i], VCFS_BLK);
			seq[i] = vcfs_mhdr_seq(w->state[k][i]);
		}
		ck_assert_int_eq(vcfs_txn_commit(t), 0);
		w->w[k] = vcfs_crash_nwrites(c);
	}
	vcfs_journal_close(j);

	/* Find each record in the log; every write stays inside the journal
	 * of SLOT or the home blocks (what wl_restore puts back). */
	for (int k = 1; k <= NTX; k++) {
		w->rec_end[k] = (size_t)-1;
		for (size_t i = w->w[k - 1]; i < w->w[k]; i++) {
			uint64_t off, len, ep;
			int dur;

			ck_assert_int_eq(vcfs_crash_write_info(c, i, &off, &len, &ep, &dur), 0);
			if (off / VCFS_BLK > jblk && off / VCFS_BLK < jblk + sb.journal_blocks) {
				ck_assert_int_eq(dur, 1);	/* FUA */
				w->rec_end[k] = i;
				continue;
			}
			for (uint64_t blk = off / VCFS_BLK; blk < (off + len) / VCFS_BLK; blk++) {
				int hit = blk == jblk;
				for (int h = 0; h < NH; h++)
					hit |= blk == w->home[h];
				ck_assert_msg(hit, "write %zu to block %llu", i,
					      (unsigned long long)blk);
			}
		}
		ck_assert_uint_ne(w->rec_end[k], (size_t)-1);
		ck_assert_uint_eq(w->rec_end[k], w->w[k - 1]);	/* the record comes first */
	}
	free(b);
	return c;
}

/* Put the target back to the disk as it was when recording began. */
static void wl_restore(const struct workload *w, struct vcfs_disk *tgt)
{
	ck_assert_int_eq(vcfs_disk_write(tgt, jblk * VCFS_BLK, w->jinit,
					 (size_t)sb.journal_blocks * VCFS_BLK, 0), 0);
	for (int i = 0; i < NH; i++)
		ck_assert_int_eq(vcfs_disk_write(tgt, w->home[i] * VCFS_BLK, w->init[i],
						 VCFS_BLK, 0), 0);
}

/* Which committed prefix the home blocks of tgt show, or -1 if none. */
static int wl_which(const struct workload *w, struct vcfs_disk *tgt, uint8_t *const *cur)
{
	for (int i = 0; i < NH; i++)
		rd(tgt, w->home[i], cur[i]);
	for (int k = NTX; k >= 0; k--) {
		int same = 1;
		for (int i = 0; i < NH && same; i++)
			same = memcmp(cur[i], w->state[k][i], VCFS_BLK) == 0;
		if (same)
			return k;
	}
	return -1;
}

/*
 * Rebuild the crash after n workload writes (policy p), record a replay of it
 * through a second crash layer, and crash that replay after each of its
 * writes: the next replay must still reach transactions 1..want.  Returns the
 * number of crash points checked.
 */
static size_t crash_during_replay(const struct workload *w, struct vcfs_disk *c,
				  const char *tpath, size_t n, enum vcfs_crash_policy p,
				  uint64_t seed, int want, uint8_t *const *cur)
{
	static const enum vcfs_crash_policy rp[] = {
		VCFS_CRASH_KEEP, VCFS_CRASH_DROP, VCFS_CRASH_TEAR, VCFS_CRASH_RANDOM,
	};
	struct vcfs_disk *tgt = open_path(tpath, 0), *c2;
	size_t nr, points = 0;
	unsigned applied;

	wl_restore(w, tgt);
	ck_assert_int_eq(vcfs_crash_replay(c, tgt, n, p, seed), 0);
	ck_assert_int_eq(vcfs_crash_wrap(tgt, VCFS_CRASH_LOG, &c2), 0);
	ck_assert_int_eq(vcfs_journal_replay(c2, &sb, SLOT, NULL, &applied), 0);
	nr = vcfs_crash_nwrites(c2);
	tgt = open_path(tpath, 0);
	for (size_t m = 0; nr && m <= nr; m++) {
		for (size_t q = 0; q < sizeof(rp) / sizeof(rp[0]); q++) {
			wl_restore(w, tgt);
			ck_assert_int_eq(vcfs_crash_replay(c, tgt, n, p, seed), 0);
			ck_assert_int_eq(vcfs_crash_replay(c2, tgt, m, rp[q], seed + m), 0);
			ck_assert_int_eq(vcfs_journal_replay(tgt, &sb, SLOT, NULL, &applied), 0);
			ck_assert_msg(wl_which(w, tgt, cur) == want, "crash after %zu workload "
				      "writes (policy %d) and %zu of %zu replay writes (policy %d): "
				      "home blocks are not transactions 1..%d", n, (int)p, m, nr,
				      (int)rp[q], want);
			points++;
		}
	}
	vcfs_disk_close(tgt);
	vcfs_disk_close(c2);
	return points;
}

START_TEST(crash_every_write)
{
	static const struct { enum vcfs_crash_policy p; uint64_t seed; const char *name; } pol[] = {
		{ VCFS_CRASH_KEEP, 0, "keep" }, { VCFS_CRASH_DROP, 0, "drop" },
		{ VCFS_CRASH_TEAR, 0, "tear" }, { VCFS_CRASH_RANDOM, 1, "random" },
		{ VCFS_CRASH_RANDOM, 2, "random" }, { VCFS_CRASH_RANDOM, 3, "random" },
		{ VCFS_CRASH_RANDOM, 4, "random" }, { VCFS_CRASH_RANDOM, 5, "random" },
		{ VCFS_CRASH_RANDOM, 6, "random" }, { VCFS_CRASH_RANDOM, 7, "random" },
		{ VCFS_CRASH_RANDOM, 8, "random" },
	};
	const size_t npol = sizeof(pol) / sizeof(pol[0]);
	struct workload w;
	struct vcfs_disk *c, *tgt;
	char tpath[200];
	uint8_t *cur[NH], *jafter;
	size_t nw, points = 0, nested = 0;
	int fd;

	c = wl_record(&w);
	nw = vcfs_crash_nwrites(c);
	snprintf(tpath, sizeof(tpath), "%s.target", img);
	fd = open(tpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)(sb.volume_blocks * VCFS_BLK)), 0);
	close(fd);
	tgt = open_path(tpath, 0);
	for (int i = 0; i < NH; i++)
		cur[i] = blk_alloc();
	jafter = vcfs_disk_buf_alloc((size_t)sb.journal_blocks * VCFS_BLK);
	vcfs_log_set_level(VCFS_LOG_WARN);

	for (size_t n = 0; n <= nw; n++) {
		/* the last transaction whose record is complete in the prefix */
		int want = 0;
		for (int k = 1; k <= NTX; k++)
			if (w.rec_end[k] < n)
				want = k;
		/* sanity: every commit that had returned is among them */
		for (int k = 1; k <= NTX; k++)
			if (w.w[k] <= n)
				ck_assert_int_ge(want, k);
		for (size_t p = 0; p < npol; p++) {
			struct vcfs_journal_state js;
			struct vcfs_journal *j;
			unsigned applied, again;
			int got;

			wl_restore(&w, tgt);
			ck_assert_int_eq(vcfs_crash_replay(c, tgt, n, pol[p].p, pol[p].seed), 0);
			ck_assert_int_eq(vcfs_journal_replay(tgt, &sb, SLOT, NULL, &applied), 0);
			got = wl_which(&w, tgt, cur);
			ck_assert_msg(got == want, "crash after %zu of %zu writes (%s, seed %llu): "
				      "home blocks show %s %d, expected transactions 1..%d", n, nw,
				      pol[p].name, (unsigned long long)pol[p].seed,
				      got < 0 ? "no committed prefix," : "transactions 1..", got,
				      want);
			/* replay twice = same result, byte for byte */
			ck_assert_int_eq(vcfs_disk_read(tgt, jblk * VCFS_BLK, jafter,
							(size_t)sb.journal_blocks * VCFS_BLK), 0);
			ck_assert_int_eq(vcfs_journal_replay(tgt, &sb, SLOT, NULL, &again), 0);
			ck_assert_uint_eq(again, 0);
			ck_assert_int_eq(wl_which(&w, tgt, cur), want);
			{
				uint8_t *j2 = vcfs_disk_buf_alloc((size_t)sb.journal_blocks * VCFS_BLK);
				ck_assert_int_eq(vcfs_disk_read(tgt, jblk * VCFS_BLK, j2,
					(size_t)sb.journal_blocks * VCFS_BLK), 0);
				ck_assert_mem_eq(j2, jafter, (size_t)sb.journal_blocks * VCFS_BLK);
				free(j2);
			}
			ck_assert_int_eq(vcfs_journal_inspect(tgt, &sb, SLOT, &js), 0);
			ck_assert_int_eq(js.pending, 0);
			ck_assert_int_eq(js.corrupt, 0);
			/* and the host can mount again and commit on top */
			j = jopen(tgt);
			{
				uint64_t bn = w.home[0];
				uint8_t *b = blk_alloc(), *im = blk_alloc();
				fill(b, VCFS_T_INODE, vcfs_mhdr_seq(cur[0]), 999);
				ck_assert_int_eq(commit_blocks(j, &bn, &b, 1, &im), 0);
				expect_blk(tgt, bn, im);
				free(b);
				free(im);
			}
			vcfs_journal_close(j);
			points++;
			/* a crash during the replay itself, at each of its writes */
			if (pol[p].p != VCFS_CRASH_RANDOM || pol[p].seed == 1)
				nested += crash_during_replay(&w, c, tpath, n, pol[p].p,
							      pol[p].seed, want, cur);
		}
	}
	fprintf(stderr, "check_journal: crash_every_write: %zu writes in %d transactions, "
		"%zu crash points (%zu policies/seeds per write index) replayed and checked, "
		"plus %zu crash points inside those replays\n", nw, NTX, points, npol, nested);
	for (int i = 0; i < NH; i++)
		free(cur[i]);
	free(jafter);
	vcfs_disk_close(tgt);
	unlink(tpath);
	vcfs_disk_close(c);
	wl_free(&w);
}
END_TEST

/*
 * Group commit over a circular log: NG transactions, deferred, committed in
 * groups (vcfs_journal_commit every third, a checkpoint every 29th, and
 * the automatic ones when the log is half full), enough records to wrap the
 * 63-block log several times.  Crash after every write (keep, drop, tear,
 * random): the replayed home blocks must be exactly the state after some
 * transaction j, with j at least the last one whose commit had returned.
 */
#define NG	60
#define NHG	8

START_TEST(group_commit_crash)
{
	static const struct { enum vcfs_crash_policy p; uint64_t seed; } pol[] = {
		{ VCFS_CRASH_KEEP, 0 }, { VCFS_CRASH_DROP, 0 }, { VCFS_CRASH_TEAR, 0 },
		{ VCFS_CRASH_RANDOM, 1 }, { VCFS_CRASH_RANDOM, 2 }, { VCFS_CRASH_RANDOM, 3 },
	};
	struct vcfs_disk *d = open_img(), *c, *tgt;
	uint64_t home[NHG], seq[NHG], rng = 12345;
	uint8_t *state[NG + 1][NHG], *cur[NHG], *jinit, *b = blk_alloc();
	size_t durable_at[NG + 1], nw, points = 0, wraps = 0, last_rec = 0;
	struct vcfs_journal_stats js;
	struct vcfs_journal *j;
	char tpath[200];
	int fd;

	for (int i = 0; i < NHG; i++) {
		home[i] = i < 4 ? sb.inode_start + 301 + i : sb.small_start + 60 + 3 * i;
		seq[i] = 2 + (uint64_t)i;
		put_valid(d, home[i], i < 4 ? VCFS_T_INODE : VCFS_T_DIRB, seq[i], 200 + i);
		state[0][i] = blk_alloc();
		rd(d, home[i], state[0][i]);
		cur[i] = blk_alloc();
	}
	jinit = vcfs_disk_buf_alloc((size_t)sb.journal_blocks * VCFS_BLK);
	ck_assert_int_eq(vcfs_disk_read(d, jblk * VCFS_BLK, jinit,
					(size_t)sb.journal_blocks * VCFS_BLK), 0);
	ck_assert_int_eq(vcfs_crash_wrap(d, VCFS_CRASH_LOG, &c), 0);
	j = jopen(c);
	durable_at[0] = 0;
	for (int k = 1; k <= NG; k++) {
		struct vcfs_txn *t;
		int touched[NHG] = { 0 }, n = 1 + (int)((rng >> 33) % 5);

		ck_assert_int_eq(vcfs_txn_begin(j, &t), 0);
		for (int m = 0; m < n; m++) {
			int i;
			rng = rng * 6364136223846793005ull + 1442695040888963407ull;
			i = (int)((rng >> 40) % NHG);
			fill(b, i < 4 ? VCFS_T_INODE : VCFS_T_DIRB, seq[i], (unsigned)(k * 8 + m));
			ck_assert_int_eq(vcfs_txn_add(t, home[i], b), 0);
			touched[i] = 1;
		}
		for (int i = 0; i < NHG; i++) {
			state[k][i] = blk_alloc();
			memcpy(state[k][i], touched[i] ? vcfs_txn_image(t, home[i]) :
			       state[k - 1][i], VCFS_BLK);
			seq[i] = vcfs_mhdr_seq(state[k][i]);
		}
		ck_assert_int_eq(vcfs_txn_defer(t), 0);
		/* our own reads see the newest image at once */
		for (int i = 0; i < NHG; i++)
			if (touched[i]) {
				ck_assert_int_eq(vcfs_journal_lookup(j, home[i], cur[i]), 1);
				ck_assert_mem_eq(cur[i], state[k][i], VCFS_BLK);
			}
		durable_at[k] = SIZE_MAX;
		if (k % 29 == 0)
			ck_assert_int_eq(vcfs_journal_checkpoint(j), 0);
		else if (k % 3 == 0)
			ck_assert_int_eq(vcfs_journal_commit(j), 0);
		if (k % 3 == 0 || k % 29 == 0)
			for (int q = k; q > 0 && durable_at[q] == SIZE_MAX; q--)
				durable_at[q] = vcfs_crash_nwrites(c);
	}
	vcfs_journal_stats(j, &js);
	ck_assert_uint_gt(js.commits, NG / 3 - 1);
	ck_assert_uint_ge(js.checkpoints, 3);
	vcfs_journal_close(j);
	nw = vcfs_crash_nwrites(c);
	/* the log went round: records written at block 1 after later ones */
	for (size_t i = 0; i < nw; i++) {
		uint64_t off, len, ep;
		int dur;
		ck_assert_int_eq(vcfs_crash_write_info(c, i, &off, &len, &ep, &dur), 0);
		if (off / VCFS_BLK > jblk && off / VCFS_BLK < jblk + sb.journal_blocks) {
			if (off / VCFS_BLK < last_rec)
				wraps++;
			last_rec = off / VCFS_BLK;
		}
	}
	ck_assert_uint_ge(wraps, 2);

	snprintf(tpath, sizeof(tpath), "%s.gtarget", img);
	fd = open(tpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)(sb.volume_blocks * VCFS_BLK)), 0);
	close(fd);
	tgt = open_path(tpath, 0);
	vcfs_log_set_level(VCFS_LOG_WARN);
	for (size_t n = 0; n <= nw; n++) {
		int want = 0;
		for (int k = 1; k <= NG; k++)
			if (durable_at[k] <= n)
				want = k;
		for (size_t p = 0; p < sizeof(pol) / sizeof(pol[0]); p++) {
			unsigned applied, again;
			int got = -1;

			ck_assert_int_eq(vcfs_disk_write(tgt, jblk * VCFS_BLK, jinit,
							 (size_t)sb.journal_blocks * VCFS_BLK, 0), 0);
			for (int i = 0; i < NHG; i++)
				wr(tgt, home[i], state[0][i]);
			ck_assert_int_eq(vcfs_crash_replay(c, tgt, n, pol[p].p, pol[p].seed), 0);
			ck_assert_int_eq(vcfs_journal_replay(tgt, &sb, SLOT, NULL, &applied), 0);
			for (int i = 0; i < NHG; i++)
				rd(tgt, home[i], cur[i]);
			for (int k = NG; k >= 0 && got < 0; k--) {
				int same = 1;
				for (int i = 0; i < NHG && same; i++)
					same = memcmp(cur[i], state[k][i], VCFS_BLK) == 0;
				if (same)
					got = k;
			}
			ck_assert_msg(got >= want, "crash after %zu of %zu writes (policy %d, "
				      "seed %llu): home shows transaction %d, %d was durable", n,
				      nw, (int)pol[p].p, (unsigned long long)pol[p].seed, got,
				      want);
			ck_assert_int_eq(vcfs_journal_replay(tgt, &sb, SLOT, NULL, &again), 0);
			ck_assert_uint_eq(again, 0);
			points++;
		}
	}
	fprintf(stderr, "check_journal: group_commit_crash: %d transactions, %llu records, "
		"%llu checkpoints, the log wrapped %zu times; %zu writes, %zu crash points "
		"replayed and checked\n", NG, (unsigned long long)js.commits,
		(unsigned long long)js.checkpoints, wraps, nw, points);
	for (int i = 0; i < NHG; i++) {
		free(cur[i]);
		for (int k = 0; k <= NG; k++)
			free(state[k][i]);
	}
	free(jinit);
	free(b);
	vcfs_disk_close(tgt);
	unlink(tpath);
	vcfs_disk_close(c);
}
END_TEST

/* ---- the fault layer: a failed write during commit ---- */
START_TEST(commit_write_fails)
{
	struct vcfs_disk *d, *f;
	uint64_t x = sb.inode_start + 301, blkno[3] = { x, x + 1, x + 7 };
	uint8_t *blk[3], *im1[3], *im2[3];
	int nwrites = 0, rc;

	for (int i = 0; i < 3; i++) {
		blk[i] = blk_alloc();
		im1[i] = blk_alloc();
		im2[i] = blk_alloc();
	}
	/* the writes of one commit: record, 2 home runs, header = 4; then
	 * one more case for the flush */
	for (int nth = 1; nth <= 6; nth++) {
		struct vcfs_fault_rule rule = { .op = nth <= 5 ? VCFS_OP_WRITE : VCFS_OP_FLUSH,
						.nth = nth <= 5 ? (uint64_t)nth : 1,
						.err = -EIO };
		struct vcfs_journal *j;
		struct vcfs_txn *t;
		unsigned applied;
		int want;

		setup();
		d = open_img();
		for (int i = 0; i < 3; i++) {
			put_valid(d, blkno[i], VCFS_T_INODE, 2, (unsigned)i);
			fill(blk[i], VCFS_T_INODE, 2, (unsigned)(10 + i));
		}
		ck_assert_int_eq(vcfs_fault_wrap(d, &f), 0);
		j = jopen(f);
		ck_assert_int_eq(commit_blocks(j, blkno, blk, 3, im1), 0);
		for (int i = 0; i < 3; i++)
			fill(blk[i], VCFS_T_INODE, 3, (unsigned)(20 + i));
		ck_assert_int_eq(vcfs_fault_set(f, &rule), 0);
		rc = commit_blocks(j, blkno, blk, 3, im2);
		if (nth == 5) {		/* past the commit's writes: no failure */
			ck_assert_int_eq(rc, 0);
			nwrites = 4;
			vcfs_journal_close(j);
			vcfs_disk_close(f);
			teardown();
			continue;
		}
		ck_assert_int_eq(rc, -EIO);
		/* never retried, and nothing more on this journal */
		ck_assert_int_eq(vcfs_txn_begin(j, &t), -VCFS_EFENCED);
		vcfs_journal_close(j);
		vcfs_fault_clear(f);
		/* recovery: the record made it unless the first write failed */
		want = nth > 1;
		ck_assert_int_eq(vcfs_journal_replay(f, &sb, SLOT, NULL, &applied), 0);
		for (int i = 0; i < 3; i++)
			expect_blk(f, blkno[i], want ? im2[i] : im1[i]);
		vcfs_disk_close(f);
		teardown();
	}
	ck_assert_int_eq(nwrites, 4);
	for (int i = 0; i < 3; i++) {
		free(blk[i]);
		free(im1[i]);
		free(im2[i]);
	}
}
END_TEST

/* ---- cost of one commit on the file backend ---- */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

START_TEST(commit_cost)
{
	enum { ROUNDS = 200, NB = 4 };
	struct vcfs_disk *d = open_path(img, 1);
	struct vcfs_journal *j = jopen(d);
	uint64_t blkno[NB], t[ROUNDS], seq = 0;
	uint8_t *blk[NB];

	/* a typical op: inode, its bitmap, a directory block, an indirect block */
	blkno[0] = sb.inode_start + 501;
	blkno[1] = sb.cmeta_start + 1;
	blkno[2] = sb.small_start + 77;
	blkno[3] = sb.small_start + 78;
	for (int i = 0; i < NB; i++)
		blk[i] = blk_alloc();
	for (int r = 0; r < ROUNDS; r++) {
		uint64_t t0;
		for (int i = 0; i < NB; i++)
			fill(blk[i], VCFS_T_IND, seq, (unsigned)(r + i));
		t0 = vcfs_now_ns();
		ck_assert_int_eq(commit_blocks(j, blkno, blk, NB, NULL), 0);
		t[r] = vcfs_now_ns() - t0;
		seq++;
	}
	qsort(t, ROUNDS, sizeof(t[0]), cmp_u64);
	fprintf(stderr, "check_journal: commit of %d blocks on %s: p50 %llu us, p90 %llu us, "
		"max %llu us (%d commits)\n", NB, vcfs_disk_info(d)->desc,
		(unsigned long long)(t[ROUNDS / 2] / 1000),
		(unsigned long long)(t[ROUNDS * 9 / 10] / 1000),
		(unsigned long long)(t[ROUNDS - 1] / 1000), ROUNDS);
	vcfs_journal_close(j);
	for (int i = 0; i < NB; i++)
		free(blk[i]);
	vcfs_disk_close(d);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("journal");
	TCase *t;

	t = tcase_create("commit");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, round_trip);
	tcase_add_test(t, add_rules);
	tcase_add_test(t, max_blocks);
	tcase_add_test(t, one_txn_at_a_time);
	tcase_add_test(t, commit_cost);
	suite_add_tcase(s, t);

	t = tcase_create("replay");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, seq_guard);
	tcase_add_test(t, scan_writes_nothing);
	tcase_add_test(t, torn_home_repaired);
	tcase_add_test(t, corrupt_header);
	tcase_add_test(t, corrupt_record);
	tcase_add_test(t, fresh_header_skips_old_record);
	suite_add_tcase(s, t);

	t = tcase_create("crash");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 300);
	tcase_add_test(t, crash_every_write);
	tcase_add_test(t, group_commit_crash);
	tcase_add_test(t, commit_write_fails);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	strcpy(dir, "/var/tmp/vcfs-journal-XXXXXX");
	return ck_run_in_tmpdir(suite(), dir);
}
