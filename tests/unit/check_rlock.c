/*
 * check_rlock.c - byte-range lock tables (lock/rlock.h): the POSIX range
 * arithmetic (conflicts, split, merge, retype, capacity), the on-disk record
 * (round trip, corruption), and the table shared by in-process "hosts" that
 * each join on their own vcfs_disk over one image file (as check_lock.c):
 * conflicts across hosts, stale entries of a dead generation ignored and
 * dropped, a crashed holder recovered, fencing, and CAS races (two hosts
 * hammering one table: mutual exclusion holds and no update is lost).
 */
#include <check.h>
#include "ck_tmpdir.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "lock/lock.h"
#include "lock/rlock.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/vcfs_err.h"

#define T_MS	100
#define HOSTS	8
#define EOFR	VCFS_RLOCK_EOF

static char dir[64];
static char img[128];
static struct vcfs_sb sb;

/* ---- arithmetic ---- */

static struct vcfs_rlock L(uint32_t slot, uint64_t owner, int type, uint64_t s, uint64_t e)
{
	struct vcfs_rlock r = { .slot = slot, .gen = 7, .owner = owner, .start = s, .end = e,
				.type = (uint8_t)type, .kind = VCFS_RL_POSIX };
	return r;
}

/* e[0..n) holds exactly the ranges given as (type, start, end) triples, any order */
static void expect_ranges(const struct vcfs_rlock *e, uint32_t n, uint32_t want_n,
			  const uint64_t (*want)[3])
{
	ck_assert_uint_eq(n, want_n);
	for (uint32_t i = 0; i < want_n; i++) {
		int found = 0;
		for (uint32_t j = 0; j < n; j++)
			found |= e[j].type == want[i][0] && e[j].start == want[i][1] &&
				 e[j].end == want[i][2];
		ck_assert_msg(found, "range %llu-%llu type %llu missing",
			      (unsigned long long)want[i][1], (unsigned long long)want[i][2],
			      (unsigned long long)want[i][0]);
	}
}

START_TEST(conflict_rules)
{
	struct vcfs_rlock a = L(1, 10, VCFS_RL_RDLCK, 100, 199), b;

	b = L(2, 10, VCFS_RL_RDLCK, 150, 150);
	ck_assert(!vcfs_rlock_conflicts(&a, &b));		/* shared + shared */
	b.type = VCFS_RL_WRLCK;
	ck_assert(vcfs_rlock_conflicts(&a, &b));		/* shared + exclusive */
	b.start = b.end = 200;
	ck_assert(!vcfs_rlock_conflicts(&a, &b));		/* next byte */
	b.start = 0;
	b.end = EOFR;
	ck_assert(vcfs_rlock_conflicts(&a, &b));		/* whole file */
	b = L(1, 10, VCFS_RL_WRLCK, 0, EOFR);
	ck_assert(!vcfs_rlock_conflicts(&a, &b));		/* same owner */
	b.owner = 11;
	ck_assert(vcfs_rlock_conflicts(&a, &b));		/* other owner, same host */
	b = L(1, 10, VCFS_RL_WRLCK, 0, EOFR);
	b.gen = 8;
	ck_assert(vcfs_rlock_conflicts(&a, &b));		/* same id, later generation */
	b = L(2, 10, VCFS_RL_WRLCK, 0, EOFR);
	b.kind = VCFS_RL_FLOCK;
	ck_assert(!vcfs_rlock_conflicts(&a, &b));		/* flock vs fcntl */
	{
		struct vcfs_rlock t[2] = { L(3, 1, VCFS_RL_RDLCK, 0, 9), a };
		b = L(2, 10, VCFS_RL_WRLCK, 150, 160);
		ck_assert_int_eq(vcfs_rlock_find_conflict(t, 2, &b), 1);
		b.start = 500;
		b.end = 600;
		ck_assert_int_eq(vcfs_rlock_find_conflict(t, 2, &b), -1);
	}
}
END_TEST

START_TEST(split_merge)
{
	struct vcfs_rlock e[VCFS_RLOCK_ENTRIES], r;
	uint32_t n = 0;

	r = L(1, 5, VCFS_RL_WRLCK, 0, 99);
	ck_assert_int_eq(vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r), 0);
	/* unlocking the middle splits */
	r = L(1, 5, VCFS_RL_UNLCK, 40, 59);
	ck_assert_int_eq(vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r), 0);
	expect_ranges(e, n, 2, (const uint64_t[][3]){ { 2, 0, 39 }, { 2, 60, 99 } });
	/* a read lock in the hole: three ranges, touching but of two types */
	r = L(1, 5, VCFS_RL_RDLCK, 40, 59);
	ck_assert_int_eq(vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r), 0);
	expect_ranges(e, n, 3, (const uint64_t[][3]){ { 2, 0, 39 }, { 1, 40, 59 }, { 2, 60, 99 } });
	/* retyping it merges all three */
	r = L(1, 5, VCFS_RL_WRLCK, 40, 59);
	ck_assert_int_eq(vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r), 0);
	expect_ranges(e, n, 1, (const uint64_t[][3]){ { 2, 0, 99 } });
	/* retyping the middle of a range splits it in three */
	r = L(1, 5, VCFS_RL_RDLCK, 10, 19);
	ck_assert_int_eq(vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r), 0);
	expect_ranges(e, n, 3, (const uint64_t[][3]){ { 2, 0, 9 }, { 1, 10, 19 }, { 2, 20, 99 } });
	/* another owner's ranges are never touched */
	r = L(2, 5, VCFS_RL_RDLCK, 200, 300);
	ck_assert_int_eq(vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r), 0);
	r = L(1, 5, VCFS_RL_UNLCK, 0, EOFR);
	ck_assert_int_eq(vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r), 0);
	expect_ranges(e, n, 1, (const uint64_t[][3]){ { 1, 200, 300 } });
	ck_assert_uint_eq(e[0].slot, 2);
	/* overlapping and adjacent locks of one type merge, to EOF too */
	n = 0;
	r = L(1, 5, VCFS_RL_RDLCK, 10, 19);
	vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r);
	r = L(1, 5, VCFS_RL_RDLCK, 30, 39);
	vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r);
	r = L(1, 5, VCFS_RL_RDLCK, 20, 29);
	vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r);
	expect_ranges(e, n, 1, (const uint64_t[][3]){ { 1, 10, 39 } });
	r = L(1, 5, VCFS_RL_RDLCK, 35, EOFR);
	vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r);
	expect_ranges(e, n, 1, (const uint64_t[][3]){ { 1, 10, EOFR } });
	r = L(1, 5, VCFS_RL_UNLCK, 100, EOFR);
	vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r);
	expect_ranges(e, n, 1, (const uint64_t[][3]){ { 1, 10, 99 } });
	/* QEMU's pattern: one-byte shared locks on 100..104 become one range */
	n = 0;
	for (uint64_t b = 100; b < 105; b++) {
		r = L(1, 9, VCFS_RL_RDLCK, b, b);
		vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r);
	}
	expect_ranges(e, n, 1, (const uint64_t[][3]){ { 1, 100, 104 } });
	r = L(1, 9, VCFS_RL_UNLCK, 102, 102);
	vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r);
	expect_ranges(e, n, 2, (const uint64_t[][3]){ { 1, 100, 101 }, { 1, 103, 104 } });
}
END_TEST

START_TEST(capacity)
{
	struct vcfs_rlock e[VCFS_RLOCK_ENTRIES], r;
	uint32_t n = 0;

	for (uint64_t i = 0; i < VCFS_RLOCK_ENTRIES; i++) {
		r = L(1, 5, VCFS_RL_WRLCK, i * 10, i * 10 + 4);
		ck_assert_int_eq(vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r), 0);
	}
	ck_assert_uint_eq(n, VCFS_RLOCK_ENTRIES);
	r = L(1, 5, VCFS_RL_WRLCK, 1000, 1000);
	ck_assert_int_eq(vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r), -ENOLCK);
	ck_assert_uint_eq(n, VCFS_RLOCK_ENTRIES);
	r = L(1, 5, VCFS_RL_UNLCK, 1, 2);	/* a split needs room too */
	ck_assert_int_eq(vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r), -ENOLCK);
	r = L(1, 5, VCFS_RL_WRLCK, 5, 9);	/* but a merge frees one */
	ck_assert_int_eq(vcfs_rlock_apply(e, &n, VCFS_RLOCK_ENTRIES, &r), 0);
	ck_assert_uint_eq(n, VCFS_RLOCK_ENTRIES - 1);
}
END_TEST

START_TEST(record_round_trip)
{
	uint8_t rec[VCFS_RECORD_SIZE];
	struct vcfs_rlock_table t = { .seq = 41, .n = 2 }, u;

	t.e[0] = L(3, 0x1234567890abcdefull, VCFS_RL_WRLCK, 100, 100);
	t.e[0].pid = 777;
	t.e[1] = L(4, 2, VCFS_RL_RDLCK, 0, EOFR);
	t.e[1].kind = VCFS_RL_FLOCK;
	vcfs_rlock_encode(&t, rec, 5000, 0xabcdef, 3);
	ck_assert_int_eq(vcfs_rlock_decode(rec, 5000, 0xabcdef, &u), 0);
	ck_assert_uint_eq(u.seq, 41);
	ck_assert_uint_eq(u.n, 2);
	ck_assert_mem_eq(&u.e[0], &t.e[0], sizeof(t.e[0]));
	ck_assert_mem_eq(&u.e[1], &t.e[1], sizeof(t.e[1]));
	/* another block or volume: not initialised (empty) */
	ck_assert_int_eq(vcfs_rlock_decode(rec, 5001, 0xabcdef, &u), 1);
	ck_assert_int_eq(vcfs_rlock_decode(rec, 5000, 0xabcdee, &u), 1);
	memset(rec, 0, sizeof(rec));
	ck_assert_int_eq(vcfs_rlock_decode(rec, 5000, 0xabcdef, &u), 1);
	ck_assert_uint_eq(u.n, 0);
	/* a flipped byte: corrupt */
	vcfs_rlock_encode(&t, rec, 5000, 0xabcdef, 3);
	rec[0x50] ^= 1;
	ck_assert_int_eq(vcfs_rlock_decode(rec, 5000, 0xabcdef, &u), -VCFS_ECORRUPT);
	/* sealed but malformed: start after end */
	t.e[0].start = 200;
	vcfs_rlock_encode(&t, rec, 5000, 0xabcdef, 3);
	ck_assert_int_eq(vcfs_rlock_decode(rec, 5000, 0xabcdef, &u), -VCFS_ECORRUPT);
}
END_TEST

/* ---- hosts on one image ---- */

static atomic_int recoveries;

static int count_recover(void *arg, struct vcfs_hb *hb, uint32_t slot)
{
	(void)arg;
	(void)hb;
	(void)slot;
	atomic_fetch_add(&recoveries, 1);
	return 0;
}

struct host {
	struct vcfs_disk *d;
	struct vcfs_hb *hb;
};

static void setup(void)
{
	struct vcfs_mkfs_params p = { .volume_bytes = 256ull << 20, .max_hosts = HOSTS,
				      .io_timeout_ms = T_MS, .label = "rlocktest" };
	int fd;

	snprintf(img, sizeof(img), "%s/img-XXXXXX", dir);
	fd = mkstemp(img);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 256ll << 20), 0);
	close(fd);
	ck_assert_int_eq(vcfs_layout_compute(&p, &sb), 0);
	atomic_store(&recoveries, 0);
}

static void teardown(void)
{
	unlink(img);
}

static void join(struct host *h, const char *name)
{
	struct vcfs_disk_opts o = { .io_timeout_ms = T_MS };
	struct vcfs_hb_opts ho = { .host_name = name, .recover = count_recover, .want_slot = -1 };

	ck_assert_int_eq(vcfs_disk_open(img, &o, &h->d), 0);
	ck_assert_int_eq(vcfs_hb_join(h->d, &sb, &ho, &h->hb), 0);
}

static void leave(struct host *h)
{
	ck_assert_int_eq(vcfs_hb_leave(h->hb), 0);
	vcfs_disk_close(h->d);
}

static uint64_t lockblk(uint64_t ino)
{
	return vcfs_inode_lock_blk(&sb, ino);
}

static int set(struct host *h, uint64_t ino, uint64_t owner, int type, uint64_t s, uint64_t e,
	       struct vcfs_rlock *c)
{
	struct vcfs_rlock r = L(0, owner, type, s, e);

	return vcfs_rlock_set(h->hb, lockblk(ino), &r, c);
}

START_TEST(two_hosts)
{
	struct host a, b;
	struct vcfs_rlock c, want;
	struct vcfs_rlock_table t;

	join(&a, "alpha");
	join(&b, "beta");
	ck_assert_int_eq(set(&a, 100, 1, VCFS_RL_WRLCK, 200, 200, NULL), 0);
	ck_assert_int_eq(set(&a, 100, 1, VCFS_RL_RDLCK, 100, 101, NULL), 0);
	/* b: the write-locked byte is refused and named, the read-locked shared */
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(set(&b, 100, 1, VCFS_RL_RDLCK, 150, 250, &c), -EAGAIN);
	ck_assert_uint_eq(c.slot, vcfs_hb_slot(a.hb));
	ck_assert_uint_eq(c.start, 200);
	ck_assert_int_eq(set(&b, 100, 1, VCFS_RL_RDLCK, 100, 100, NULL), 0);
	ck_assert_int_eq(set(&b, 100, 1, VCFS_RL_WRLCK, 101, 101, NULL), -EAGAIN);
	want = L(0, 1, VCFS_RL_WRLCK, 0, EOFR);
	ck_assert_int_eq(vcfs_rlock_test(b.hb, lockblk(100), &want, &c), 1);
	/* another inode is independent */
	ck_assert_int_eq(set(&b, 101, 1, VCFS_RL_WRLCK, 0, EOFR, NULL), 0);
	/* a drops owner 1: b gets the byte; a still has nothing left */
	ck_assert_int_eq(vcfs_rlock_release(a.hb, lockblk(100), 1, -1), 0);
	ck_assert_int_eq(set(&b, 100, 1, VCFS_RL_WRLCK, 200, 200, NULL), 0);
	ck_assert_int_eq(vcfs_rlock_read(a.d, &sb, lockblk(100), &t), 0);
	ck_assert_uint_eq(t.n, 2);		/* b: 100 read, 200 write */
	/* b's all-owner release leaves it nothing; an unlock of nothing writes nothing */
	ck_assert_int_eq(vcfs_rlock_release(b.hb, lockblk(100), VCFS_RLOCK_ANY_OWNER, -1), 0);
	ck_assert_int_eq(vcfs_rlock_read(a.d, &sb, lockblk(100), &t), 0);
	ck_assert_uint_eq(t.n, 0);
	{
		uint64_t seq = t.seq;
		ck_assert_int_eq(set(&a, 100, 3, VCFS_RL_UNLCK, 0, EOFR, NULL), 0);
		ck_assert_int_eq(vcfs_rlock_read(a.d, &sb, lockblk(100), &t), 0);
		ck_assert_uint_eq(t.seq, seq);
	}
	leave(&a);
	/* a left cleanly without releasing 101's? (it held none there) -- b's
	 * whole-file lock on 101 stays */
	ck_assert_int_eq(vcfs_rlock_read(b.d, &sb, lockblk(101), &t), 0);
	ck_assert_uint_eq(t.n, 1);
	leave(&b);
}
END_TEST

START_TEST(stale_generation_ignored)
{
	struct host a, b;
	struct vcfs_rlock_table t = { .n = 1 };
	uint8_t *blk = vcfs_disk_buf_alloc(VCFS_BLK);

	join(&a, "alpha");
	join(&b, "beta");
	/* an entry of a's slot at an older generation (a host a replaced) */
	t.e[0] = L(vcfs_hb_slot(a.hb), 9, VCFS_RL_WRLCK, 0, EOFR);
	t.e[0].gen = (uint32_t)vcfs_hb_generation(a.hb) - 1;
	/* and one of a slot nobody holds */
	t.e[1] = L(HOSTS - 1, 9, VCFS_RL_WRLCK, 0, EOFR);
	t.n = 2;
	t.seq = 5;
	vcfs_rlock_encode(&t, blk + VCFS_RLOCK_OFF, lockblk(200), sb.volgen, 0);
	ck_assert_int_eq(vcfs_disk_write(a.d, lockblk(200) * VCFS_BLK, blk, VCFS_BLK,
					 VCFS_IO_FUA), 0);
	/* both are ignored: b locks the whole file, and its CAS drops them */
	ck_assert_int_eq(set(&b, 200, 1, VCFS_RL_WRLCK, 0, EOFR, NULL), 0);
	ck_assert_int_eq(vcfs_rlock_read(b.d, &sb, lockblk(200), &t), 0);
	ck_assert_uint_eq(t.n, 1);
	ck_assert_uint_eq(t.e[0].slot, vcfs_hb_slot(b.hb));
	ck_assert_uint_eq(t.seq, 6);
	/* a clean leave makes b's entries stale at once */
	leave(&b);
	ck_assert_int_eq(set(&a, 200, 1, VCFS_RL_WRLCK, 0, EOFR, NULL), 0);
	leave(&a);
	free(blk);
}
END_TEST

START_TEST(crashed_holder_recovered)
{
	struct host a, b;
	uint64_t t0;
	int rc;

	join(&a, "alpha");
	join(&b, "beta");
	ck_assert_int_eq(set(&a, 300, 1, VCFS_RL_WRLCK, 0, 0, NULL), 0);
	vcfs_hb_abandon(a.hb);		/* crash: no renewal, nothing released */
	vcfs_disk_close(a.d);
	ck_assert_int_eq(set(&b, 300, 1, VCFS_RL_WRLCK, 0, 0, NULL), -EAGAIN);
	/* after D (7T) b's request recovers a, and then gets the lock */
	t0 = vcfs_now_ns();
	while ((rc = set(&b, 300, 1, VCFS_RL_WRLCK, 0, 0, NULL)) == -EAGAIN) {
		ck_assert_uint_lt(vcfs_now_ns() - t0, 30ull * 1000 * VCFS_NS_PER_MS);
		vcfs_sleep_ns(20 * VCFS_NS_PER_MS);
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_ge(atomic_load(&recoveries), 1);
	leave(&b);
}
END_TEST

START_TEST(fenced_fails)
{
	struct host a;
	struct vcfs_rlock want = L(0, 1, VCFS_RL_WRLCK, 0, 0), c;

	join(&a, "alpha");
	ck_assert_int_eq(set(&a, 400, 1, VCFS_RL_WRLCK, 0, 0, NULL), 0);
	vcfs_hb_fence(a.hb, -EIO);
	ck_assert_int_eq(set(&a, 400, 1, VCFS_RL_UNLCK, 0, 0, NULL), -VCFS_EFENCED);
	ck_assert_int_eq(vcfs_rlock_test(a.hb, lockblk(400), &want, &c), -VCFS_EFENCED);
	ck_assert_int_eq(vcfs_rlock_release(a.hb, lockblk(400), 1, -1), -VCFS_EFENCED);
	vcfs_hb_abandon(a.hb);
	vcfs_disk_close(a.d);
}
END_TEST

/* ---- CAS races ---- */

#define ROUNDS 60
static atomic_int in_cs, cs_violations, cs_entries;

struct racer {
	struct host *h;
	uint64_t owner;
	int id;
	int err;
};

/* Take byte 0 exclusively ROUNDS times (mutual exclusion across hosts), and
 * between times lock and unlock a byte of our own (lost updates show as a
 * missing range). */
static void *race(void *arg)
{
	struct racer *r = arg;
	int got = 0;

	while (got < ROUNDS && !r->err) {
		int rc = set(r->h, 500, r->owner, VCFS_RL_WRLCK, 0, 0, NULL);
		if (rc == -EAGAIN) {
			vcfs_sleep_ns(200 * 1000);
			continue;
		}
		if (rc) {
			r->err = rc;
			break;
		}
		if (atomic_fetch_add(&in_cs, 1) != 0)
			atomic_fetch_add(&cs_violations, 1);
		atomic_fetch_add(&cs_entries, 1);
		vcfs_sleep_ns(100 * 1000);
		atomic_fetch_sub(&in_cs, 1);
		if ((rc = set(r->h, 500, r->owner, VCFS_RL_UNLCK, 0, 0, NULL)) ||
		    (rc = set(r->h, 500, r->owner, VCFS_RL_RDLCK, 1000 + (uint64_t)r->id,
			      1000 + (uint64_t)r->id, NULL)))
			r->err = rc;
		got++;
	}
	return NULL;
}

START_TEST(cas_races)
{
	struct host h[2];
	struct racer r[4];
	pthread_t th[4];
	struct vcfs_rlock_table t;

	join(&h[0], "alpha");
	join(&h[1], "beta");
	atomic_store(&in_cs, 0);
	atomic_store(&cs_violations, 0);
	atomic_store(&cs_entries, 0);
	/* two hosts, two owners (threads) on each */
	for (int i = 0; i < 4; i++) {
		r[i] = (struct racer){ .h = &h[i % 2], .owner = 100 + (uint64_t)i, .id = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, race, &r[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(r[i].err == 0, "racer %d: %s", i, vcfs_strerror(r[i].err));
	}
	ck_assert_int_eq(atomic_load(&cs_violations), 0);
	ck_assert_int_eq(atomic_load(&cs_entries), 4 * ROUNDS);
	/* every racer's own read lock landed (no update lost) */
	ck_assert_int_eq(vcfs_rlock_read(h[0].d, &sb, lockblk(500), &t), 0);
	ck_assert_uint_eq(t.n, 4);
	for (int i = 0; i < 4; i++) {
		int found = 0;
		for (uint32_t j = 0; j < t.n; j++)
			found |= t.e[j].start == 1000 + (uint64_t)i &&
				 t.e[j].owner == 100 + (uint64_t)i &&
				 t.e[j].slot == vcfs_hb_slot(h[i % 2].hb);
		ck_assert_msg(found, "racer %d's lock is missing", i);
	}
	leave(&h[0]);
	leave(&h[1]);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("rlock");
	TCase *t = tcase_create("arithmetic");

	tcase_add_test(t, conflict_rules);
	tcase_add_test(t, split_merge);
	tcase_add_test(t, capacity);
	tcase_add_test(t, record_round_trip);
	suite_add_tcase(s, t);

	t = tcase_create("hosts");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, two_hosts);
	tcase_add_test(t, stale_generation_ignored);
	tcase_add_test(t, crashed_holder_recovered);
	tcase_add_test(t, fenced_fails);
	tcase_add_test(t, cas_races);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	strcpy(dir, "/var/tmp/vcfs-rlock-XXXXXX");
	vcfs_log_set_level(VCFS_LOG_ERR);
	return ck_run_in_tmpdir(suite(), dir);
}
