/*
 * op.c - metadata operations: locks, block images, one journal transaction.
 *
 * An op is the unit every metadata change runs in (see fs_int.h DESIGN):
 *	op_begin  -> op_lock_inodes -> op_read / op_new / op_dirty / alloc
 *	          -> op_end: txn of every dirty block, commit, unmap freed data,
 *	             release locks (bump), refresh the open-inode table.
 * A read-only op (op_begin_ro) only caches the blocks a lockless read needs.
 *
 * Why a new block keeps the seq it had on disk (op_new):
 *	host A: dir block X (seq 9) freed      host B: allocates X as an indirect
 *	                                       block, image seq 0 + 1 = 1
 *	crash of B, replay of B's journal: "write home unless the home block has
 *	a valid seq >= 1" -> X still holds A's seq 9: the image would be skipped.
 * With the old seq (9 -> 10) replay writes it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "fs_int.h"
#include "../common/clock.h"
#include "../common/log.h"


static void op_init(struct vcfs_fs *fs, struct vcfs_op *op, int rw)
{
	memset(op, 0, sizeof(*op));
	op->fs = fs;
	op->rw = rw;
}

int op_begin(struct vcfs_fs *fs, struct vcfs_op *op)
{
	int rc = fs_check(fs, 1);

	if (rc)
		return rc;
	pthread_mutex_lock(&fs->op_mu);
	op_init(fs, op, 1);
	return 0;
}

void op_begin_ro(struct vcfs_fs *fs, struct vcfs_op *op)
{
	op_init(fs, op, 0);
}

static void free_bufs(struct vcfs_op *op)
{
	for (uint32_t i = 0; i < op->nbufs; i++)
		free(op->bufs[i].b);
	free(op->bufs);
	op->bufs = NULL;
	op->nbufs = op->capbufs = op->ndirty = 0;
}

void op_reset_ro(struct vcfs_op *op)
{
	free_bufs(op);
}

void op_end_ro(struct vcfs_op *op)
{
	free_bufs(op);
}

static struct op_buf *find_buf(struct vcfs_op *op, uint64_t blkno)
{
	/* newest first: ops touch few blocks, and the last one most often */
	for (uint32_t i = op->nbufs; i-- > 0; )
		if (op->bufs[i].blkno == blkno)
			return &op->bufs[i];
	return NULL;
}

static struct op_buf *add_buf(struct vcfs_op *op, uint64_t blkno)
{
	struct op_buf *nb;

	if (op->nbufs == op->capbufs) {
		uint32_t cap = op->capbufs ? op->capbufs * 2 : 16;
		nb = realloc(op->bufs, cap * sizeof(*nb));
		if (!nb)
			return NULL;
		op->bufs = nb;
		op->capbufs = cap;
	}
	nb = &op->bufs[op->nbufs];
	memset(nb, 0, sizeof(*nb));
	nb->b = vcfs_disk_buf_alloc(VCFS_BLK);
	if (!nb->b)
		return NULL;
	nb->blkno = blkno;
	op->nbufs++;
	return nb;
}

/* ---- the versioned cache (fs_int.h) ---- */

static struct vcfs_vc_ent *vc_slot(struct vcfs_fs *fs, uint64_t blkno)
{
	return &fs->vc[(blkno * 0x9e3779b97f4a7c15ull >> 32) % VCFS_VC_SIZE];
}

/* Serve blkno from the cache into ob if it was read under the same lock
 * record version; 1 if served. */
static int vc_get(struct vcfs_fs *fs, const struct vcfs_op *op, uint64_t blkno,
		  enum vcfs_btype t, struct op_buf *ob)
{
	struct vcfs_vc_ent *e;
	int hit = 0;

	if (!fs->vc)
		return 0;
	pthread_mutex_lock(&fs->vc_mu);
	e = vc_slot(fs, blkno);
	if (e->buf && e->blkno == blkno && e->lock == op->vc_lock && e->seq == op->vc_seq &&
	    le16_get(((struct vcfs_mhdr *)(void *)e->buf)->type) == t) {
		memcpy(ob->b, e->buf, VCFS_BLK);
		ob->uninit = e->uninit;
		hit = 1;
	}
	pthread_mutex_unlock(&fs->vc_mu);
	return hit;
}

static void vc_put(struct vcfs_fs *fs, const struct vcfs_op *op, const struct op_buf *ob)
{
	struct vcfs_vc_ent *e;

	if (!fs->vc)
		return;
	pthread_mutex_lock(&fs->vc_mu);
	e = vc_slot(fs, ob->blkno);
	if (!e->buf)
		e->buf = malloc(VCFS_BLK);
	if (e->buf) {
		memcpy(e->buf, ob->b, VCFS_BLK);
		e->blkno = ob->blkno;
		e->lock = op->vc_lock;
		e->seq = op->vc_seq;
		e->uninit = ob->uninit;
	}
	pthread_mutex_unlock(&fs->vc_mu);
}

int op_read_maybe(struct vcfs_op *op, uint64_t blkno, enum vcfs_btype t, void **out,
		  int *uninit)
{
	struct vcfs_fs *fs = op->fs;
	struct op_buf *ob = find_buf(op, blkno);
	int rc;

	if (ob) {
		if (ob->type != t)
			return VCFS_CORRUPT("block read as two different types", blkno);
		*out = ob->b;
		if (uninit)
			*uninit = ob->uninit;
		return 0;
	}
	if (blkno < fs->sb.hb_start || blkno >= fs->sb.volume_blocks - 1)
		return VCFS_CORRUPT("block number outside the datastore", blkno);
	ob = add_buf(op, blkno);
	if (!ob)
		return -ENOMEM;
	ob->type = (uint16_t)t;
	if (fs->j && vcfs_journal_lookup(fs->j, blkno, ob->b)) {
		/* our own change, not home yet (we hold its lock) */
		rc = vcfs_mhdr_check(ob->b, t, blkno, fs->sb.volgen);
		if (rc) {
			rc = VCFS_CORRUPT("journaled block read as another type", blkno);
			goto fail;
		}
		if (uninit)
			*uninit = 0;
		*out = ob->b;
		return 0;
	}
	if (op->vc_ok && vc_get(fs, op, blkno, t, ob)) {
		if (ob->uninit && !uninit) {
			rc = VCFS_CORRUPT("metadata block is not initialised", blkno);
			goto fail;
		}
		if (uninit)
			*uninit = ob->uninit;
		*out = ob->b;
		return 0;
	}
	rc = vcfs_disk_read(fs->d, blkno * VCFS_BLK, ob->b, VCFS_BLK);
	if (rc) {
		vcfs_err("reading %s at block %llu: %s", vcfs_btype_name(t),
			 (unsigned long long)blkno, vcfs_strerror(rc));
		goto fail;
	}
	if (fs->read_only)
		ro_overlay(fs, blkno, ob->b);	/* a dead holder's journal */
	rc = vcfs_mhdr_check(ob->b, t, blkno, fs->sb.volgen);
	if (rc < 0) {
		rc = VCFS_CORRUPT(vcfs_btype_name(t), blkno);
		goto fail;
	}
	if (rc == 1) {
		if (!uninit) {
			rc = VCFS_CORRUPT("metadata block is not initialised", blkno);
			goto fail;
		}
		memset(ob->b, 0, VCFS_BLK);
		((struct vcfs_mhdr *)(void *)ob->b)->type = le16_mk((uint16_t)t);
		ob->uninit = 1;
	}
	if (uninit)
		*uninit = ob->uninit;
	if (op->vc_ok)
		vc_put(fs, op, ob);
	*out = ob->b;
	return 0;
fail:
	free(ob->b);
	op->nbufs--;
	return rc;
}

int op_read(struct vcfs_op *op, uint64_t blkno, enum vcfs_btype t, void **out)
{
	return op_read_maybe(op, blkno, t, out, NULL);
}

int op_new(struct vcfs_op *op, uint64_t blkno, enum vcfs_btype t, void **out)
{
	struct vcfs_fs *fs = op->fs;
	struct op_buf *ob = find_buf(op, blkno);
	struct vcfs_mhdr *h;
	uint64_t seq = 0;
	int rc;

	if (!ob) {
		ob = add_buf(op, blkno);
		if (!ob)
			return -ENOMEM;
		rc = 0;
		if (!fs->j || !vcfs_journal_lookup(fs->j, blkno, ob->b))
			rc = vcfs_disk_read(fs->d, blkno * VCFS_BLK, ob->b, VCFS_BLK);
		if (rc) {
			free(ob->b);
			op->nbufs--;
			return rc;
		}
	}
	h = (struct vcfs_mhdr *)(void *)ob->b;
	/* keep the seq of whatever valid block of this volume was there, of
	 * any type (see the file comment) */
	if (le32_get(h->magic) == VCFS_MAGIC && le64_get(h->blkno) == blkno &&
	    le64_get(h->volgen) == fs->sb.volgen)
		seq = le64_get(h->seq);
	memset(ob->b, 0, VCFS_BLK);
	h->type = le16_mk((uint16_t)t);
	h->seq = le64_mk(seq);
	ob->type = (uint16_t)t;
	ob->uninit = 0;
	if (!ob->dirty) {
		ob->dirty = 1;
		op->ndirty++;
	}
	*out = ob->b;
	return 0;
}

void op_dirty(struct vcfs_op *op, const void *buf)
{
	for (uint32_t i = 0; i < op->nbufs; i++)
		if (op->bufs[i].b == buf) {
			if (!op->bufs[i].dirty) {
				op->bufs[i].dirty = 1;
				op->ndirty++;
			}
			return;
		}
	vcfs_err("op_dirty: buffer not in the op");
	abort();
}

void op_forget(struct vcfs_op *op, uint64_t blkno)
{
	struct op_buf *ob = find_buf(op, blkno);

	if (ob && ob->dirty) {
		ob->dirty = 0;
		op->ndirty--;
	}
}

void op_unmap(struct vcfs_op *op, uint64_t off, uint64_t len)
{
	if (op->nunmap && op->unmap[op->nunmap - 1].off + op->unmap[op->nunmap - 1].len == off) {
		op->unmap[op->nunmap - 1].len += len;
		return;
	}
	if (op->nunmap == op->capunmap) {
		uint32_t cap = op->capunmap ? op->capunmap * 2 : 16;
		void *n = realloc(op->unmap, cap * sizeof(*op->unmap));
		if (!n)
			return;		/* only space reclamation is lost */
		op->unmap = n;
		op->capunmap = cap;
	}
	op->unmap[op->nunmap].off = off;
	op->unmap[op->nunmap].len = len;
	op->nunmap++;
}

uint32_t op_room(const struct vcfs_op *op)
{
	uint32_t lim = op->fs->jmax > 24 ? op->fs->jmax - 16 : op->fs->jmax / 2;

	return op->ndirty >= lim ? 0 : lim - op->ndirty;
}

int op_has_lock(const struct vcfs_op *op, uint64_t blkno)
{
	for (uint32_t i = 0; i < op->nlocks; i++)
		if (op->locks[i].blkno == blkno)
			return 1;
	return 0;
}

static struct op_lock *find_lock_ino(struct vcfs_op *op, uint64_t ino)
{
	for (uint32_t i = 0; i < op->nlocks; i++)
		if (op->locks[i].ino == ino)
			return &op->locks[i];
	return NULL;
}

uint32_t op_mw_others(const struct vcfs_op *op, uint64_t ino)
{
	for (uint32_t i = 0; i < op->nlocks; i++)
		if (op->locks[i].ino == ino && op->locks[i].how == OPL_CLAIM)
			return op->locks[i].others;
	return 0;
}

static void warn_busy(struct vcfs_fs *fs, const char *what, uint64_t id,
		      const struct vcfs_lock_info *busy)
{
	char name[80] = "?";

	if (busy->nholders)
		vcfs_hb_slot_name(fs->hb, busy->holders[0].slot, name, sizeof(name));
	vcfs_warn("%s %llu is locked (%s) by host '%s' (slot %u)", what,
		  (unsigned long long)id, vcfs_lock_mode_name(busy->mode), name,
		  busy->nholders ? busy->holders[0].slot : 0);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* ---- the lock cache (fs_int.h DESIGN) ---- */

static int lc_enabled(const struct vcfs_fs *fs)
{
	return fs->lc_started && fs->hb && fs->j;
}

/* nlc changes under op_mu, but lc_main peeks at it without: store atomically
 * (ThreadSanitizer: plain writes racing with that relaxed load) */
static void lc_set_n(struct vcfs_fs *fs, uint32_t n)
{
	__atomic_store_n(&fs->nlc, n, __ATOMIC_RELAXED);
}

static int lc_find(const struct vcfs_fs *fs, uint64_t blkno)
{
	for (uint32_t i = 0; i < fs->nlc; i++)
		if (fs->lc[i].blkno == blkno)
			return (int)i;
	return -1;
}

/* Move blkno from the cache to lock l of an op: 1 if it was cached. */
static int lc_take(struct vcfs_fs *fs, uint64_t blkno, struct op_lock *l)
{
	int i = lc_find(fs, blkno);

	if (i < 0)
		return 0;
	l->cached = 1;
	l->bump = (uint8_t)fs->lc[i].bump;
	l->ver = fs->lc[i].ver;
	fs->lc[i] = fs->lc[fs->nlc - 1];
	lc_set_n(fs, fs->nlc - 1);
	return 1;
}

static void lc_put(struct vcfs_fs *fs, uint64_t blkno, uint64_t ver, int bump)
{
	if (fs->nlc == 0)
		fs->lc_since = vcfs_now_ns();
	fs->lc[fs->nlc].blkno = blkno;
	fs->lc[fs->nlc].ver = ver;
	fs->lc[fs->nlc].bump = bump;
	lc_set_n(fs, fs->nlc + 1);
}

/*
 * Release history: a record is cached only from the second op in a row that
 * finds it as we left it (obj_version unchanged since our release), so a
 * directory several hosts work in is handed on after every op, as without
 * the cache, and one host's own directory is kept.
 */
static void lc_hist_put(struct vcfs_fs *fs, uint64_t blkno, uint64_t ver)
{
	uint32_t at = fs->lc_hist_next;

	for (uint32_t i = 0; i < VCFS_LC_HIST; i++)
		if (fs->lc_hist[i].blkno == blkno) {
			at = i;
			break;
		}
	if (at == fs->lc_hist_next)
		fs->lc_hist_next = (fs->lc_hist_next + 1) % VCFS_LC_HIST;
	fs->lc_hist[at].blkno = blkno;
	fs->lc_hist[at].ver = ver;
}

static int lc_hist_same(const struct vcfs_fs *fs, uint64_t blkno, uint64_t ver)
{
	for (uint32_t i = 0; i < VCFS_LC_HIST; i++)
		if (fs->lc_hist[i].blkno == blkno)
			return fs->lc_hist[i].ver == ver;
	return 0;
}

/* Release an OPL_OWN record (the journal holds nothing it protects). */
static int lc_release(struct vcfs_fs *fs, uint64_t blkno, uint64_t ver, int bump)
{
	int rc = vcfs_lock_release(fs->hb, blkno, bump);

	if (!rc)
		lc_hist_put(fs, blkno, ver + (bump ? 1 : 0));
	return rc;
}

static void kc_set_n(struct vcfs_fs *fs, uint32_t n)
{
	__atomic_store_n(&fs->nkc, n, __ATOMIC_RELAXED);
}

static int kc_find(const struct vcfs_fs *fs, const struct vcfs_inode *ip)
{
	for (uint32_t i = 0; i < fs->nkc; i++)
		if (fs->kc[i] == ip)
			return (int)i;
	return -1;
}

/* Forget kept claim i (the claim itself was dropped, or we crashed). */
static void kc_forget(struct vcfs_fs *fs, uint32_t i)
{
	struct vcfs_inode *ip = fs->kc[i];

	ip->claim_kept = 0;
	fs->kc[i] = fs->kc[fs->nkc - 1];
	kc_set_n(fs, fs->nkc - 1);
	itab_put(fs, ip);
}

/* Drop kept claim i: the journal is checkpointed (the caller did). */
static void kc_unclaim(struct vcfs_fs *fs, uint32_t i)
{
	struct vcfs_inode *ip = fs->kc[i];
	int rc = vcfs_lock_unclaim(fs->hb, vcfs_inode_lock_blk(&fs->sb, ip->ino), 1);

	if (rc && rc != -VCFS_EFENCED)
		vcfs_warn("inode %llu: dropping the kept map-change claim: %s",
			  (unsigned long long)ip->ino, vcfs_strerror(rc));
	kc_forget(fs, i);
}

int lcache_flush(struct vcfs_fs *fs)
{
	int rc;

	if (!fs->j || (!fs->nlc && !fs->nkc))
		return 0;
	/* everything the records protect goes home before they go */
	rc = vcfs_journal_checkpoint(fs->j);
	for (uint32_t i = 0; !rc && i < fs->nlc; i++) {
		int r2 = lc_release(fs, fs->lc[i].blkno, fs->lc[i].ver, fs->lc[i].bump);
		if (r2 && r2 != -VCFS_EFENCED && r2 != -ESTALE)
			vcfs_warn("releasing cached lock record %llu: %s",
				  (unsigned long long)fs->lc[i].blkno, vcfs_strerror(r2));
	}
	/* on a failed checkpoint we are fenced: the records (and claims) stay
	 * ours on disk until a survivor replays the journal and recovers the
	 * slot */
	while (fs->nkc) {
		if (rc)
			kc_forget(fs, fs->nkc - 1);
		else
			kc_unclaim(fs, fs->nkc - 1);
	}
	lc_set_n(fs, 0);
	return rc;
}

int lcache_before_release(struct vcfs_fs *fs, struct vcfs_inode *ip)
{
	int rc, i;

	if (!fs->j)
		return 0;
	rc = vcfs_journal_checkpoint(fs->j);
	i = kc_find(fs, ip);
	if (i >= 0) {
		if (rc)
			kc_forget(fs, (uint32_t)i);
		else
			kc_unclaim(fs, (uint32_t)i);
	}
	return rc;
}

/*
 * A record we found held by another host is contended: for the next T we do
 * not cache it, so that under contention hosts take turns op by op (as
 * without the cache) instead of each keeping it for up to lc_hold_ns.
 */
static void lc_mark_busy(struct vcfs_fs *fs, uint64_t blkno)
{
	uint64_t now = vcfs_now_ns(), oldest = UINT64_MAX;
	unsigned at = 0;

	for (unsigned i = 0; i < VCFS_LC_BUSY; i++) {
		if (fs->lc_busy[i].blkno == blkno || fs->lc_busy[i].until <= now) {
			at = i;
			break;
		}
		if (fs->lc_busy[i].until < oldest) {
			oldest = fs->lc_busy[i].until;
			at = i;
		}
	}
	fs->lc_busy[at].blkno = blkno;
	fs->lc_busy[at].until = now + (uint64_t)fs->sb.io_timeout_ms * VCFS_NS_PER_MS;
}

static int lc_is_busy(const struct vcfs_fs *fs, uint64_t blkno)
{
	uint64_t now = vcfs_now_ns();

	for (unsigned i = 0; i < VCFS_LC_BUSY; i++)
		if (fs->lc_busy[i].blkno == blkno && fs->lc_busy[i].until > now)
			return 1;
	return 0;
}

void lcache_drop(struct vcfs_fs *fs, uint64_t blkno)
{
	if (lc_find(fs, blkno) >= 0)
		lcache_flush(fs);
}

/*
 * The cache's clock: every 10 ms, give everything back (checkpoint, release)
 * when no op used the cache for lc_idle_ns, or when it has held records for
 * lc_hold_ns -- another host waiting for one of them gets it within that --
 * and then cache nothing for lc_cool_ns so that the waiter's polls find the
 * record free between our ops.
 */
static void *lc_main(void *arg)
{
	struct vcfs_fs *fs = arg;

	while (!__atomic_load_n(&fs->lc_stop, __ATOMIC_ACQUIRE)) {
		vcfs_sleep_ns(10 * VCFS_NS_PER_MS);
		if (!__atomic_load_n(&fs->nlc, __ATOMIC_RELAXED) &&
		    !__atomic_load_n(&fs->nkc, __ATOMIC_RELAXED))
			continue;
		pthread_mutex_lock(&fs->op_mu);
		if (fs->nlc || fs->nkc) {
			uint64_t now = vcfs_now_ns();
			int held = (fs->nlc && now - fs->lc_since >= fs->lc_hold_ns) ||
				   (fs->nkc && now - fs->kc_since >= fs->lc_hold_ns);
			if (held || now - fs->lc_last >= fs->lc_idle_ns) {
				lcache_flush(fs);
				if (held)
					fs->lc_cool_until = now + fs->lc_cool_ns;
			}
		}
		pthread_mutex_unlock(&fs->op_mu);
	}
	return NULL;
}

int lcache_start(struct vcfs_fs *fs)
{
	uint64_t t = (uint64_t)fs->sb.io_timeout_ms * VCFS_NS_PER_MS;
	int rc;

	if (!fs->hb || !fs->j)
		return 0;
	fs->lc_hold_ns = t / 4;
	fs->lc_idle_ns = t / 10 < 20 * VCFS_NS_PER_MS ? t / 10 : 20 * VCFS_NS_PER_MS;
	fs->lc_cool_ns = t / 20;
	fs->lc_stop = 0;
	lc_set_n(fs, 0);
	rc = pthread_create(&fs->lc_thread, NULL, lc_main, fs);
	if (rc) {
		vcfs_warn("lock cache thread: %s; metadata ops will not cache locks",
			  strerror(rc));
		return -rc;
	}
	fs->lc_started = 1;
	return 0;
}

void lcache_stop(struct vcfs_fs *fs, int flush)
{
	if (!fs->lc_started)
		return;
	__atomic_store_n(&fs->lc_stop, 1, __ATOMIC_RELEASE);
	pthread_join(fs->lc_thread, NULL);
	pthread_mutex_lock(&fs->op_mu);
	if (flush) {
		struct vcfs_journal_stats js;
		lcache_flush(fs);
		vcfs_journal_stats(fs->j, &js);
		vcfs_info("journal of slot %u: %llu records written, %llu checkpoints",
			  fs->slot, (unsigned long long)js.commits,
			  (unsigned long long)js.checkpoints);
	}
	while (fs->nkc)
		kc_forget(fs, fs->nkc - 1);	/* a crash: the claims stay on disk */
	lc_set_n(fs, 0);
	fs->lc_started = 0;
	pthread_mutex_unlock(&fs->op_mu);
}

int vcfs_fs_sync(struct vcfs_fs *fs)
{
	if (!fs || fs->read_only || !fs->j)
		return 0;
	return vcfs_journal_commit(fs->j);
}

/* Take ino's lock for op (caller checked it is not held by op yet). */
static int lock_one_inode(struct vcfs_op *op, uint64_t ino, int wait)
{
	struct vcfs_fs *fs = op->fs;
	uint64_t blk = vcfs_inode_lock_blk(&fs->sb, ino);
	struct vcfs_lock_info busy;
	uint64_t hard = 0;	/* waits outside op_mu end by then, lost races too */
	struct op_lock *l;
	struct vcfs_inode *ip;
	int rc;

again:
	if (op->nlocks == OP_MAXLOCK)
		return -E2BIG;
	l = &op->locks[op->nlocks];
	memset(l, 0, sizeof(*l));
	l->blkno = blk;
	l->ino = ino;
	ip = itab_get(fs, ino, 0);
	if (ip && ip->held != VCFS_LOCK_FREE && !ip->lock_lost) {
		inode_map_wrlock(ip);
		l->ip = ip;
		if (ip->held == VCFS_LOCK_EXCL) {
			l->how = OPL_OPEN;
			op->nlocks++;
			return 0;
		}
		if (ip->held == VCFS_LOCK_MW) {
			/* shared with other hosts' MW opens: the map-change
			 * claim, and the body comes from disk (op_inode) */
			l->how = OPL_CLAIM;
			if (ip->claim_kept) {
				int k = kc_find(fs, ip);
				if (op->mw_keep && k >= 0) {
					/* ours since an earlier fill, with no
					 * other holder then: a joiner waits for
					 * it before it loads the body */
					kc_forget(fs, (uint32_t)k);
					l->kept = 1;
					op->nlocks++;
					return 0;
				}
				/* any other change claims afresh, counting
				 * the holders: the kept one goes first */
				rc = lcache_before_release(fs, ip);
				if (rc)
					goto fail_unlock;
			}
			rc = vcfs_lock_claim(fs->hb, blk, wait ? VCFS_LOCK_WAIT : 0,
					     fs->lock_wait_ms, &l->others, &busy);
			if (rc == -ESTALE) {
				vcfs_warn("inode %llu: its multi-writer lock is gone",
					  (unsigned long long)ino);
				inode_set_lost(ip, 1);
				fs_inval(fs, ino);
				rc = -EIO;
			}
			if (rc == -EBUSY && wait)
				warn_busy(fs, "inode (map change)", ino, &busy);
			if (rc)
				goto fail_unlock;
			op->nlocks++;
			return 0;
		}
		/* RO for opens here: EXCL for the op, then back */
		l->how = OPL_DANCE;
		rc = vcfs_lock_release(fs->hb, blk, 0);
		if (rc && rc != -ESTALE)
			goto fail_unlock;
		rc = vcfs_lock_acquire(fs->hb, blk, VCFS_LOCK_EXCL, wait ? VCFS_LOCK_WAIT : 0,
				       fs->lock_wait_ms, NULL, &busy);
		if (rc) {
			int rc2 = vcfs_lock_acquire(fs->hb, blk, ip->held, VCFS_LOCK_WAIT,
						    fs->lock_wait_ms, NULL, NULL);
			if (rc2) {
				vcfs_warn("inode %llu: lost its %s lock while trying to change it",
					  (unsigned long long)ino, vcfs_lock_mode_name(ip->held));
				inode_set_lost(ip, 1);
				fs_inval(fs, ino);
			}
			if (rc == -EBUSY)
				warn_busy(fs, "inode", ino, &busy);
			goto fail_unlock;
		}
		op->nlocks++;
		return 0;
	}
	if (ip)
		inode_map_wrlock(ip);
	l->ip = ip;
	l->how = OPL_OWN;
	if (lc_take(fs, blk, l)) {
		op->nlocks++;
		return 0;
	}
	rc = vcfs_lock_acquire(fs->hb, blk, VCFS_LOCK_EXCL, 0, 0, &l->ver, &busy);
	if (rc == -EBUSY)
		lc_mark_busy(fs, blk);
	if (rc == -EBUSY && wait && !op->nlocks && !op->nbufs) {
		/* the op's first record: wait for it without op_mu (fs_int.h,
		 * "Waiting without op_mu"), having given back what we cache so
		 * that no host waits for us while we wait for it; then start
		 * over, taking it under op_mu (another may win it first) */
		uint64_t now = vcfs_now_ns();

		if (ip) {
			pthread_rwlock_unlock(&ip->map_rw);
			itab_put(fs, ip);
		}
		lcache_flush(fs);
		if (!hard)
			hard = now + 6ull * fs->lock_wait_ms * VCFS_NS_PER_MS;
		rc = -EBUSY;
		if (now < hard) {
			uint64_t left_ms = (hard - now) / VCFS_NS_PER_MS + 1;

			pthread_mutex_unlock(&fs->op_mu);
			rc = vcfs_lock_acquire(fs->hb, blk, VCFS_LOCK_EXCL,
					       VCFS_LOCK_WAIT | VCFS_LOCK_PEEK,
					       left_ms < fs->lock_wait_ms ? (uint32_t)left_ms
									  : fs->lock_wait_ms,
					       NULL, &busy);
			pthread_mutex_lock(&fs->op_mu);
			if (!rc)
				goto again;
		}
		if (rc == -EBUSY)
			warn_busy(fs, "inode", ino, &busy);
		return rc;
	}
	if (rc == -EBUSY && wait) {
		/* about to wait: first give back what we cache, so that no
		 * host waits for us while we wait for it */
		lcache_flush(fs);
		rc = vcfs_lock_acquire(fs->hb, blk, VCFS_LOCK_EXCL, VCFS_LOCK_WAIT,
				       fs->lock_wait_ms, &l->ver, &busy);
	}
	if (!rc)
		l->again = (uint8_t)lc_hist_same(fs, blk, l->ver);
	if (rc) {
		if (rc == -EBUSY && wait)
			warn_busy(fs, "inode", ino, &busy);
		if (rc == -EDEADLK)
			rc = -EBUSY;
		goto fail_unlock;
	}
	op->nlocks++;
	return 0;
fail_unlock:
	if (ip) {
		pthread_rwlock_unlock(&ip->map_rw);
		itab_put(fs, ip);
	}
	return rc;
}

int op_lock_inodes(struct vcfs_op *op, const uint64_t *inos, unsigned n)
{
	uint64_t v[OP_MAXLOCK];
	unsigned m = 0;
	int rc;

	if (n > OP_MAXLOCK)
		return -E2BIG;
	for (unsigned i = 0; i < n; i++)
		if (inos[i])
			v[m++] = inos[i];
	qsort(v, m, sizeof(v[0]), cmp_u64);
	for (unsigned i = 0; i < m; i++) {
		if (i && v[i] == v[i - 1])
			continue;
		if (!ino_valid(op->fs, v[i]) && v[i] != VCFS_ROOT_INO &&
		    !(v[i] >= VCFS_ORPHAN_INO(0) && v[i] < VCFS_ORPHAN_INO(op->fs->sb.max_hosts)))
			return -ENOENT;
		if (find_lock_ino(op, v[i]))
			continue;
		/* in class order only while no cluster lock is held and the
		 * inode numbers keep rising; otherwise just try */
		int in_order = !op->max_cluster_lock;
		for (uint32_t k = 0; k < op->nlocks; k++)
			if (op->locks[k].ino > v[i])
				in_order = 0;
		rc = lock_one_inode(op, v[i], in_order);
		if (rc)
			return rc;
	}
	return 0;
}

int op_trylock_inode(struct vcfs_op *op, uint64_t ino)
{
	struct vcfs_inode *ip;

	if (find_lock_ino(op, ino))
		return -EBUSY;
	int rc;

	ip = itab_find(op->fs, ino);
	if (ip)
		return -EBUSY;	/* open here: not a free inode */
	rc = lock_one_inode(op, ino, 0);
	if (!rc)
		op->locks[op->nlocks - 1].fresh = 1;
	return rc;
}

int op_lock_cluster(struct vcfs_op *op, uint32_t c, int may_wait)
{
	struct vcfs_fs *fs = op->fs;
	uint64_t blk = vcfs_cluster_lock_blk(&fs->sb, c);
	uint64_t deadline, backoff = 200 * 1000ull;
	struct vcfs_lock_info busy;
	struct op_lock *l;
	int rc;

	if (op_has_lock(op, blk))
		return 0;
	if (op->nlocks == OP_MAXLOCK)
		return -EBUSY;	/* the caller tries another cluster or fails */
	l = &op->locks[op->nlocks];
	memset(l, 0, sizeof(*l));
	if (lc_take(fs, blk, l)) {
		rc = 0;
		goto got;
	}
	rc = vcfs_lock_acquire(fs->hb, blk, VCFS_LOCK_EXCL, 0, 0, &l->ver, &busy);
	if (rc == -EBUSY)
		lc_mark_busy(fs, blk);
	if (rc != -EBUSY || !may_wait) {
		/* taken, or not to wait for */
	} else if (lcache_flush(fs), blk > op->max_cluster_lock) {
		/* (about to wait: our cached records went back first) */
		rc = vcfs_lock_acquire(fs->hb, blk, VCFS_LOCK_EXCL, VCFS_LOCK_WAIT,
				       fs->lock_wait_ms, &l->ver, &busy);
	} else {
		deadline = vcfs_now_ns() + (uint64_t)fs->lock_wait_ms * VCFS_NS_PER_MS;
		for (;;) {
			rc = vcfs_lock_acquire(fs->hb, blk, VCFS_LOCK_EXCL, 0, 0, &l->ver, &busy);
			if (rc != -EBUSY || !may_wait || vcfs_now_ns() > deadline)
				break;
			vcfs_sleep_ns(backoff);
			if (backoff < 20 * VCFS_NS_PER_MS)
				backoff *= 2;
		}
	}
	if (rc) {
		if (rc == -EBUSY && may_wait)
			warn_busy(fs, "resource cluster", c, &busy);
		return rc;
	}
	if (!l->cached)
		l->again = (uint8_t)lc_hist_same(fs, blk, l->ver);
got:
	op->nlocks++;
	l->blkno = blk;
	l->how = OPL_OWN;
	if (blk > op->max_cluster_lock)
		op->max_cluster_lock = blk;
	return 0;
}

int op_inode(struct vcfs_op *op, uint64_t ino, struct vcfs_inode_disk **out)
{
	struct vcfs_fs *fs = op->fs;
	uint64_t blk = vcfs_inode_blk(&fs->sb, ino);
	struct op_lock *l = find_lock_ino(op, ino);
	struct op_buf *ob;
	void *p;
	int rc;

	if (!l) {
		vcfs_err("op_inode: inode %llu is not locked by the op", (unsigned long long)ino);
		return -EINVAL;
	}
	if (l->how == OPL_OPEN && !find_buf(op, blk)) {
		ob = add_buf(op, blk);
		if (!ob)
			return -ENOMEM;
		memcpy(ob->b, l->ip->body, VCFS_BLK);
		ob->type = VCFS_T_INODE;
		*out = (struct vcfs_inode_disk *)(void *)ob->b;
		return 0;
	}
	rc = op_read(op, blk, VCFS_T_INODE, &p);
	if (rc)
		return rc;
	*out = p;
	return 0;
}

/* Release every lock; committed: bump and refresh open inodes. */
static int lock_keepable(struct vcfs_op *op, const struct op_lock *l);

/*
 * Whether an MW claim may outlive its op (kept in fs->kc): only a fill of
 * holes (op->mw_keep) that found no other holder, with room in fs->kc.
 */
static int claim_keepable(const struct vcfs_op *op, const struct op_lock *l)
{
	const struct vcfs_fs *fs = op->fs;

	return op->mw_keep && !l->others && fs->nkc < VCFS_KC_MAX && fs->hb &&
	       lc_enabled(fs) && vcfs_now_ns() >= fs->lc_cool_until;
}

/* Release every lock (cache: OPL_OWN ones go to the lock cache; else the
 * caller checkpointed the journal); committed: bump and refresh open inodes. */
static void release_locks(struct vcfs_op *op, int committed, int cache)
{
	struct vcfs_fs *fs = op->fs;
	int rc;

	for (uint32_t i = op->nlocks; i-- > 0; ) {
		struct op_lock *l = &op->locks[i];
		struct vcfs_inode *ip = l->ip;

		if (ip && committed) {
			struct op_buf *ob = find_buf(op, vcfs_inode_blk(&fs->sb, l->ino));
			if (ob && !ob->uninit && l->how != OPL_OWN) {
				pthread_mutex_lock(&ip->mu);
				memcpy(ip->body, ob->b, VCFS_BLK);
				ip->dirty = 0;
				pthread_mutex_unlock(&ip->mu);
			}
			ind_cache_clear(ip);
		}
		if (l->how == OPL_OWN && cache && lock_keepable(op, l)) {
			lc_put(fs, l->blkno, l->ver, l->bump || committed);
		} else if (l->how == OPL_OWN) {
			rc = lc_release(fs, l->blkno, l->ver, l->bump || committed);
			if (rc && rc != -VCFS_EFENCED)
				vcfs_warn("releasing lock record %llu: %s",
					  (unsigned long long)l->blkno, vcfs_strerror(rc));
		} else if (l->how == OPL_CLAIM && cache && claim_keepable(op, l)) {
			/* kept (fs->kc) with the itab reference of this lock */
			if (fs->nkc == 0)
				fs->kc_since = vcfs_now_ns();
			fs->kc[fs->nkc] = ip;
			kc_set_n(fs, fs->nkc + 1);
			ip->claim_kept = 1;
			pthread_rwlock_unlock(&ip->map_rw);
			continue;
		} else if (l->how == OPL_CLAIM) {
			if (l->kept && fs->j)
				vcfs_journal_checkpoint(fs->j);	/* error: fenced */
			rc = vcfs_lock_unclaim(fs->hb, l->blkno, committed || l->kept);
			if (rc && rc != -VCFS_EFENCED)
				vcfs_warn("inode %llu: dropping the map-change claim: %s",
					  (unsigned long long)l->ino, vcfs_strerror(rc));
		}
		if (l->how == OPL_DANCE) {
			rc = vcfs_lock_release(fs->hb, l->blkno, committed);
			if (!rc || rc == -ESTALE)
				rc = vcfs_lock_acquire(fs->hb, l->blkno, ip->held, VCFS_LOCK_WAIT,
						       fs->lock_wait_ms, NULL, NULL);
			if (rc) {
				vcfs_warn("inode %llu: could not take its %s lock back for "
					  "its opens (%s)", (unsigned long long)l->ino,
					  vcfs_lock_mode_name(ip->held), vcfs_strerror(rc));
				inode_set_lost(ip, 1);
				fs_inval(fs, l->ino);
			}
		}
		if (ip) {
			pthread_rwlock_unlock(&ip->map_rw);
			itab_put(fs, ip);
		}
	}
	op->nlocks = 0;
	op->max_cluster_lock = 0;
}

/*
 * Whether lock l of op may stay cached with the op's change to what it
 * protects still only in our journal.  Other hosts read an inode body they
 * find held EXCL (a file open there: close-to-open), so a changed body of an
 * existing file or symlink must be home when the op ends.  Directories are
 * never read that way, a new inode is reached only through its (cached)
 * directory, a freed one reads as free either way; clusters are only locked.
 */
static int lock_keepable(struct vcfs_op *op, const struct op_lock *l)
{
	const struct op_buf *ob;
	uint32_t mode;

	if (lc_is_busy(op->fs, l->blkno) || (!l->cached && !l->again && !l->fresh))
		return 0;	/* others want it, or changed it since we had
				 * it: hand it on after the op */
	if (!l->ino || l->fresh)
		return 1;
	ob = find_buf(op, vcfs_inode_blk(&op->fs->sb, l->ino));
	if (!ob || !ob->dirty)
		return 1;
	mode = le32_get(((const struct vcfs_inode_disk *)(const void *)ob->b)->mode);
	return mode == 0 || S_ISDIR(mode);
}

/* Whether op's locks may go to the lock cache (else: checkpoint first). */
static int op_may_cache(struct vcfs_op *op)
{
	struct vcfs_fs *fs = op->fs;
	uint32_t nown = 0;

	if (!lc_enabled(fs) || vcfs_now_ns() < fs->lc_cool_until)
		return 0;
	for (uint32_t i = 0; i < op->nlocks; i++) {
		const struct op_lock *l = &op->locks[i];
		if (l->how == OPL_OPEN)
			continue;	/* held EXCL by an open here: kept, and
					 * checkpointed before its release
					 * (lcache_before_release); a new
					 * inode is reached only through its
					 * directory, which stays cached */
		if (l->how == OPL_CLAIM && claim_keepable(op, l))
			continue;	/* a fill of holes nobody else sees yet */
		if (l->how != OPL_OWN)
			return 0;	/* RO dance, a claim others share: the
					 * change goes home at the op's end */
		nown++;
	}
	if (fs->nlc + nown > VCFS_LC_MAX)
		lcache_flush(fs);	/* full: give it all back, start again */
	return fs->nlc + nown <= VCFS_LC_MAX;
}

void op_unlock_all(struct vcfs_op *op)
{
	int cache = op_may_cache(op);

	if (!cache && op->fs->j)
		vcfs_journal_checkpoint(op->fs->j);	/* error: fenced */
	release_locks(op, 0, cache);
	free_bufs(op);
}

void op_drop_lock(struct vcfs_op *op, uint32_t i)
{
	struct vcfs_fs *fs = op->fs;
	struct op_lock *l = &op->locks[i];
	int rc;

	if (l->cached && fs->nlc < VCFS_LC_MAX) {
		lc_put(fs, l->blkno, l->ver, l->bump);
	} else {
		if (l->cached)
			vcfs_journal_checkpoint(fs->j);	/* error: fenced */
		rc = lc_release(fs, l->blkno, l->ver, l->bump);
		if (rc && rc != -VCFS_EFENCED)
			vcfs_warn("releasing lock record %llu: %s",
				  (unsigned long long)l->blkno, vcfs_strerror(rc));
	}
	op->locks[i] = op->locks[--op->nlocks];
}

int op_end(struct vcfs_op *op, int rc)
{
	struct vcfs_fs *fs = op->fs;
	struct vcfs_txn *t = NULL;
	int cache = op_may_cache(op), ckpt = 0;
	uint32_t i;

	if (!rc && op->ndirty) {
		rc = vcfs_txn_begin(fs->j, &t);
		/* the data the new map points at first (see fs_int.h): the
		 * journal flushes before the record that holds this txn */
		if (!rc && op->data_written)
			vcfs_txn_set_data(t);
		for (i = 0; !rc && i < op->nbufs; i++) {
			struct op_buf *ob = &op->bufs[i];
			if (!ob->dirty)
				continue;
			rc = vcfs_txn_add(t, ob->blkno, ob->b);
			if (rc)
				vcfs_err("adding block %llu to a transaction: %s",
					 (unsigned long long)ob->blkno, vcfs_strerror(rc));
		}
		for (i = 0; !rc && i < op->nbufs; i++) {
			const void *img;
			if (!op->bufs[i].dirty)
				continue;
			img = vcfs_txn_image(t, op->bufs[i].blkno);
			if (img)
				memcpy(op->bufs[i].b, img, VCFS_BLK);
			op->bufs[i].uninit = 0;
		}
		if (rc) {
			if (t)
				vcfs_txn_abort(t);
		} else {
			/* the group commit: durable at the next record */
			rc = vcfs_txn_defer(t);
			if (rc)
				vcfs_err("journal commit failed: %s", vcfs_strerror(rc));
		}
	}
	/*
	 * Checkpoint (commit, home, header) now unless every lock stays
	 * cached, and also then when the op freed blocks that may have been
	 * metadata (no live record may hold a block that could be reused as
	 * data) or freed data to unmap (the free must be durable first).
	 */
	for (i = 0; cache && i < op->nlocks; i++)
		if (op->locks[i].how == OPL_OWN && !lock_keepable(op, &op->locks[i]))
			ckpt = 1;	/* that one is released: home first */
	if (fs->j && (!cache || ckpt || (!rc && (op->freed_meta || op->nunmap)))) {
		int r2 = vcfs_journal_checkpoint(fs->j);
		if (r2) {
			vcfs_err("journal commit failed: %s", vcfs_strerror(r2));
			if (!rc)
				rc = r2;
		}
	}
	if (!rc) {
		for (i = 0; i < op->nunmap; i++) {
			int r2 = vcfs_hb_write_ok(fs->hb);
			if (!r2)
				r2 = vcfs_disk_unmap(fs->d, op->unmap[i].off, op->unmap[i].len);
			if (r2 && r2 != -EOPNOTSUPP)
				vcfs_debug("unmap of freed blocks at %llu: %s",
					   (unsigned long long)op->unmap[i].off, vcfs_strerror(r2));
		}
	}
	release_locks(op, !rc, cache);
	if (cache)
		fs->lc_last = vcfs_now_ns();
	if (op->bitmaps_changed) {
		pthread_mutex_lock(&fs->misc_mu);
		fs->statfs_at = 0;
		pthread_mutex_unlock(&fs->misc_mu);
	}
	free_bufs(op);
	free(op->unmap);
	op->unmap = NULL;
	pthread_mutex_unlock(&fs->op_mu);
	return rc;
}

int lockless_read(struct vcfs_fs *fs, uint64_t lockblk, int accept_held,
		  int (*fn)(struct vcfs_op *op, void *arg), void *arg)
{
	uint64_t deadline = vcfs_now_ns() +
		(uint64_t)(fs->lock_wait_ms + 2 * fs->sb.io_timeout_ms) * VCFS_NS_PER_MS;
	uint64_t backoff = 100 * 1000ull;
	struct vcfs_lock_info a, b;
	struct vcfs_op op;
	unsigned corrupt = 0;
	int rc;

	for (;;) {
		if (vcfs_now_ns() > deadline && fs->hb) {
			/* the object keeps changing (or stays held): read it under
			 * a shared lock instead */
			rc = vcfs_lock_acquire(fs->hb, lockblk, VCFS_LOCK_RO, VCFS_LOCK_WAIT,
					       fs->lock_wait_ms, NULL, NULL);
			if (rc)
				return rc == -EDEADLK ? -EBUSY : rc;
			op_begin_ro(fs, &op);
			rc = fn(&op, arg);
			op_end_ro(&op);
			vcfs_lock_release(fs->hb, lockblk, 0);
			return rc;
		}
		if (!fs->hb && vcfs_now_ns() > deadline + (uint64_t)fs->lock_wait_ms * VCFS_NS_PER_MS)
			return -EAGAIN;	/* read-only mount: no lock to fall back on */
		rc = vcfs_lock_read(fs->d, &fs->sb, fs->hb, lockblk, &a);
		if (rc)
			return rc;
		if (a.mode == VCFS_LOCK_EXCL && lc_enabled(fs)) {
			/* held by us: cached, or by an op that is about to end;
			 * our journal may hold newer blocks than home */
			int ours = 0;
			for (uint32_t i = 0; i < a.nholders; i++)
				ours |= a.holders[i].slot == fs->slot && !a.holders[i].stale;
			if (ours) {
				pthread_mutex_lock(&fs->op_mu);
				if (lc_find(fs, lockblk) >= 0) {
					op_begin_ro(fs, &op);
					rc = fn(&op, arg);
					op_end_ro(&op);
					pthread_mutex_unlock(&fs->op_mu);
					return rc;
				}
				pthread_mutex_unlock(&fs->op_mu);
				/* not cached: an open here holds it (or it
				 * was released meanwhile): as for any holder */
			}
		}
		if (a.mode == VCFS_LOCK_EXCL && !accept_held && vcfs_now_ns() < deadline) {
			int live = 0;
			for (uint32_t i = 0; i < a.nholders; i++)
				live |= fs->hb ? !a.holders[i].stale :
					ro_holder_state(fs, a.holders[i].slot, a.holders[i].gen) ==
						VCFS_HOLDER_LIVE;
			if (live) {
				vcfs_sleep_ns(backoff);
				if (backoff < 20 * VCFS_NS_PER_MS)
					backoff *= 2;
				continue;
			}
		}
		op_begin_ro(fs, &op);
		/* unchanged since (lockblk, seq) while nobody holds it EXCL */
		op.vc_ok = a.mode == VCFS_LOCK_FREE || a.mode == VCFS_LOCK_RO;
		op.vc_lock = lockblk;
		op.vc_seq = a.seq;
		rc = fn(&op, arg);
		op_end_ro(&op);
		{
			int r2 = vcfs_lock_read(fs->d, &fs->sb, fs->hb, lockblk, &b);
			if (r2)
				return r2;
		}
		if (b.seq != a.seq)
			continue;
		if (rc == -VCFS_ECORRUPT && accept_held && a.mode != VCFS_LOCK_FREE &&
		    ++corrupt < 4)
			continue;	/* maybe a torn read of a body being written */
		return rc;
	}
}
