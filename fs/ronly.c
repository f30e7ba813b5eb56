/*
 * ronly.c - what a read-only mount needs to read past a dead host.
 *
 * A read-only mount has no heartbeat slot, takes no locks and recovers no
 * one.  A lock record held EXCL by another host means "the blocks under it
 * are being changed, and the newest images may be only in that host's
 * journal" (the lock cache keeps them there: fs_int.h).  While the holder
 * lives, lockless_read waits for it, as on a read-write mount.  When it has
 * died, a read-write host recovers it within D; but with none mounted (a
 * backup host alone, every writer down) nobody ever would, so here:
 *
 *  - ro_holder_state judges a holder (slot, generation) through a heartbeat
 *    observer (lock.h vcfs_hb_observe): the monitor's own judgement, from
 *    the slots' blocks alone -- STALE if the slot is free or at another
 *    generation, DEAD once it has not changed for D on our clock since we
 *    first looked (a host long dead costs one D at the first contact), else
 *    LIVE.
 *  - the first time a holder is DEAD, its journal's committed transactions
 *    that are not home yet (vcfs_journal_scan: read, never written) become
 *    the overlay: blkno -> newest image.  Reads of home blocks (op_read,
 *    load_body) take the overlay's image when it is newer than home by the
 *    block's change seq -- the journal's own seq guard -- so once a
 *    read-write host has replayed that journal, or changed a block again,
 *    home wins and the overlay is harmless.  Transactions the dead host never
 *    committed are lost for everyone alike (its recovery would drop them).
 *
 * The overlay lives until unmount (at most one journal's worth of images
 * per dead incarnation seen).  Locking: ro_mu, never held across I/O of
 * others' locks; the observer and overlay are NULL on read-write mounts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "fs_int.h"
#include "../common/clock.h"
#include "../common/log.h"
#include "../journal/journal.h"

struct ro_img {
	uint64_t blkno;		/* 0: empty (block 0 is the header, never journaled) */
	uint8_t *img;
};

int ro_init(struct vcfs_fs *fs)
{
	int rc;

	pthread_mutex_init(&fs->ro_mu, NULL);
	fs->ro_scanned = calloc(fs->sb.max_hosts, sizeof(*fs->ro_scanned));
	rc = fs->ro_scanned ? vcfs_hb_observe(fs->d, &fs->sb, &fs->ro_hb) : -ENOMEM;
	if (rc) {
		free(fs->ro_scanned);
		fs->ro_scanned = NULL;
		pthread_mutex_destroy(&fs->ro_mu);
	}
	return rc;
}

void ro_free(struct vcfs_fs *fs)
{
	if (!fs->ro_hb)
		return;
	for (uint32_t i = 0; i < fs->ro_cap; i++)
		free(fs->ro_ov[i].img);
	free(fs->ro_ov);
	free(fs->ro_scanned);
	vcfs_hb_abandon(fs->ro_hb);
	fs->ro_ov = NULL;
	fs->ro_scanned = NULL;
	fs->ro_hb = NULL;
	fs->ro_cap = fs->ro_n = 0;
	pthread_mutex_destroy(&fs->ro_mu);
}

static uint32_t ro_hash(uint64_t blkno, uint32_t cap)
{
	return (uint32_t)((blkno * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

/* The entry of blkno, or the empty one where it would go (ro_mu held). */
static struct ro_img *ro_slot_of(struct ro_img *t, uint32_t cap, uint64_t blkno)
{
	uint32_t i = ro_hash(blkno, cap);

	while (t[i].blkno && t[i].blkno != blkno)
		i = (i + 1) & (cap - 1);
	return &t[i];
}

static int ro_grow(struct vcfs_fs *fs)
{
	uint32_t cap = fs->ro_cap ? 2 * fs->ro_cap : 256;
	struct ro_img *t = calloc(cap, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (uint32_t i = 0; i < fs->ro_cap; i++)
		if (fs->ro_ov[i].blkno)
			*ro_slot_of(t, cap, fs->ro_ov[i].blkno) = fs->ro_ov[i];
	free(fs->ro_ov);
	fs->ro_ov = t;
	fs->ro_cap = cap;
	return 0;
}

struct ro_scan_ctx {
	struct vcfs_fs *fs;
	int err;
};

/* vcfs_journal_scan callback (ro_mu held by the scanner): keep the newest. */
static void ro_scan_img(void *arg, uint64_t blkno, const void *img)
{
	struct ro_scan_ctx *c = arg;
	struct vcfs_fs *fs = c->fs;
	struct ro_img *e;

	if (c->err || !blkno)
		return;
	if (2 * (fs->ro_n + 1) > fs->ro_cap && (c->err = ro_grow(fs)))
		return;
	e = ro_slot_of(fs->ro_ov, fs->ro_cap, blkno);
	if (e->blkno && vcfs_mhdr_seq(e->img) > vcfs_mhdr_seq(img))
		return;
	if (!e->img && !(e->img = malloc(VCFS_BLK))) {
		c->err = -ENOMEM;
		return;
	}
	if (!e->blkno)
		__atomic_add_fetch(&fs->ro_n, 1, __ATOMIC_RELEASE);
	e->blkno = blkno;
	memcpy(e->img, img, VCFS_BLK);
}

/* Put slot's journal into the overlay (ro_mu held). */
static int ro_scan(struct vcfs_fs *fs, uint32_t slot, uint32_t gen32)
{
	struct ro_scan_ctx c = { .fs = fs };
	unsigned n = 0;
	int rc;

	rc = vcfs_journal_scan(fs->d, &fs->sb, slot, ro_scan_img, &c, &n);
	if (!rc)
		rc = c.err;
	if (rc) {
		vcfs_warn("read-only mount: reading the journal of dead host slot %u: %s; its "
			  "metadata stays unreadable here until a read-write host recovers it",
			  slot, vcfs_strerror(rc));
		return rc;
	}
	vcfs_info("read-only mount: host slot %u (generation %u) is dead; reading its "
		  "metadata through its journal (%u block image(s) not home yet) until a "
		  "read-write host recovers it", slot, gen32, n);
	return 0;
}

int ro_holder_state(struct vcfs_fs *fs, uint32_t slot, uint32_t gen32)
{
	int st;

	if (!fs->ro_hb || slot >= fs->sb.max_hosts)
		return VCFS_HOLDER_LIVE;
	st = vcfs_hb_holder_state(fs->ro_hb, slot, gen32);
	if (st < 0)
		return VCFS_HOLDER_LIVE;	/* cannot judge: wait as for a live one */
	if (st != VCFS_HOLDER_DEAD)
		return st;
	pthread_mutex_lock(&fs->ro_mu);
	if (fs->ro_scanned[slot] != (uint64_t)gen32 + 1) {
		if (ro_scan(fs, slot, gen32))
			st = VCFS_HOLDER_LIVE;	/* no overlay: never read past it */
		else
			fs->ro_scanned[slot] = (uint64_t)gen32 + 1;
	}
	pthread_mutex_unlock(&fs->ro_mu);
	return st;
}

void ro_overlay(struct vcfs_fs *fs, uint64_t blkno, void *buf)
{
	struct ro_img *e;

	if (!__atomic_load_n(&fs->ro_n, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&fs->ro_mu);
	e = ro_slot_of(fs->ro_ov, fs->ro_cap, blkno);
	/* what replay would do: the image, unless home is valid and as new */
	if (e->blkno && !vcfs_journal_home_current(buf, e->img, blkno, fs->sb.volgen))
		memcpy(buf, e->img, VCFS_BLK);
	pthread_mutex_unlock(&fs->ro_mu);
}
