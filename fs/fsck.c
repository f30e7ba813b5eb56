/*
 * fsck.c - offline check and repair (see fsck.h for the passes).
 *
 * Memory: one struct ino_info per inode (24 bytes), one bit per small and per
 * large block, and every cluster bitmap block: about 10 MiB for 1 TiB.
 * Reads: the header, the heartbeat region and the cluster region in large
 * requests, then two blocks (lock + body) per inode in use and the blocks of
 * their maps: an empty volume of any size is checked in well under a second.
 *
 * Repairs are plain writes: fsck runs only when no host heartbeats (checked in
 * pass 2), so nobody else writes.  Every block it changes gets seq + 1 and a
 * fresh crc, so a journal replay later never prefers an older image.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include "fsck.h"
#include "mkfs.h"
#include "ondisk.h"
#include "../common/log.h"
#include "../journal/journal.h"
#include "../lock/lock.h"
#include "../lock/rlock.h"

/*          code            id      message                                              fix                                  preen */
#define PROBLEMS(X)                                                                                                            \
	X(P_SUPER_PRIMARY, "SB01", "volume header in block 0 is damaged",                "rewrite it from the backup",          1) \
	X(P_SUPER_BACKUP,  "SB02", "backup volume header is damaged or stale",           "rewrite it from block 0",             1) \
	X(P_GROW_INPROG,   "GR01", "a grow of the volume was interrupted",               "clear it: the volume keeps its old size (run vcfs grow again)", 1) \
	X(P_GROW_SHORT,    "GR02", "large-block cluster was not extended by a grow",     "extend its bitmap to the whole cluster", 1) \
	X(P_HB_BAD,        "HB01", "heartbeat slot is corrupt",                          "reset the slot to free",              1) \
	X(P_HB_UNCLEAN,    "HB02", "host did not unmount cleanly (slot in use, not heartbeating)", "replay its journal and free the slot", 1) \
	X(P_JOURNAL_PENDING,"JN01","journal holds committed transactions not yet written home", "replay them",               1) \
	X(P_JOURNAL_BAD,   "JN02", "journal header is damaged (what it held is unknown)", "reset the journal past any old record", 0) \
	X(P_CBMP_BAD,      "CL01", "resource cluster bitmap block is damaged",           "rebuild it from the block maps",      0) \
	X(P_LOCK_STALE,    "LK01", "lock record is held by a host that is gone (its slot was not cleaned)", "release it", 1) \
	X(P_LOCK_BAD,      "LK02", "lock record is corrupt",                             "reset it to free",                    1) \
	X(P_RLOCK_STALE,   "RL01", "byte-range lock held by a host that is gone",        "drop it",                             1) \
	X(P_RLOCK_BAD,     "RL02", "byte-range lock table is corrupt",                   "reset it to empty",                   1) \
	X(P_ROOT_BAD,      "IN01", "root directory inode is damaged",                    "recreate an empty root; entries are reconnected", 0) \
	X(P_INODE_UNINIT,  "IN02", "inode is marked in use but was never written",       "free it",                             1) \
	X(P_INODE_CORRUPT, "IN03", "inode is corrupt",                                   "free it; its blocks are released",    0) \
	X(P_INODE_MODE,    "IN04", "inode has an invalid file type",                     "free it",                             0) \
	X(P_INODE_BLOCKS,  "IN05", "inode's allocated-block count is wrong",             "set it from the block map",           1) \
	X(P_BMAP_RANGE,    "BM01", "block pointer outside its region",                   "clear it (the range becomes a hole)", 0) \
	X(P_BMAP_DUP,      "BM02", "block claimed by two files",                         "clear the second claim (a hole)",     0) \
	X(P_IND_BAD,       "BM03", "indirect block is damaged",                          "clear it (the range becomes a hole)", 0) \
	X(P_DIRB_BAD,      "DR01", "directory block is damaged",                         "drop it; its inodes are reconnected", 0) \
	X(P_DIRB_CHAIN,    "DR02", "directory overflow chain is broken",                 "end the chain there",                 1) \
	X(P_DIRENT_BAD,    "DR03", "malformed directory entry",                          "drop it and the rest of its block",   0) \
	X(P_DIRENT_DANGLING,"DR04","directory entry points to a free or bad inode",      "remove the entry",                    1) \
	X(P_DIRENT_TYPE,   "DR05", "directory entry type differs from the inode's",      "set it from the inode",               1) \
	X(P_DIRENT_HASH,   "DR06", "directory entry has a wrong hash",                   "recompute it",                        1) \
	X(P_DIRENT_BUCKET, "DR07", "directory entry is in the wrong hash bucket",        "move it to its bucket",               1) \
	X(P_DIRENT_DUP,    "DR08", "duplicate name in a directory",                      "remove the second entry",             0) \
	X(P_DIR_MULTI,     "DR09", "directory has more than one parent",                 "remove the extra entry",              0) \
	X(P_DIR_PARENT,    "DR10", "directory's parent field is wrong",                  "set it",                              1) \
	X(P_DIR_COUNT,     "DR11", "directory's entry count is wrong",                   "set it",                              1) \
	X(P_ORPHAN,        "OR01", "orphan (unlinked while open) of a host that is gone", "free it",                            1) \
	X(P_UNREF,         "LN01", "inode is in no directory",                           "reconnect it to the root as #<inode>", 0) \
	X(P_NLINK,         "LN02", "inode's link count is wrong",                        "set it",                              1) \
	X(P_BMP_LEAK,      "BT01", "blocks or inodes marked in use but used by nothing", "mark them free",                      1) \
	X(P_BMP_MISSING,   "BT02", "blocks or inodes in use but marked free",            "mark them in use",                    1) \
	X(P_BMP_NFREE,     "BT03", "cluster free count is wrong",                        "set it",                              1)

enum problem {
#define P_ENUM(c, id, msg, fix, preen) c,
	PROBLEMS(P_ENUM)
#undef P_ENUM
	P_NR
};

static const struct { const char *id, *msg, *fix; int preen; } ptab[] = {
#define P_TAB(c, id, msg, fix, preen) { id, msg, fix, preen },
	PROBLEMS(P_TAB)
#undef P_TAB
};

void vcfs_fsck_list_problems(FILE *f)
{
	for (int i = 0; i < P_NR; i++)
		fprintf(f, "%s  %-60s  fix: %s%s\n", ptab[i].id, ptab[i].msg, ptab[i].fix,
			ptab[i].preen ? "" : " (not with -p)");
}

enum { I_FREE = 0, I_OK, I_BAD };

struct ino_info {
	uint32_t nlink, refs, subdirs, mode;
	uint64_t parent;	/* first directory found holding it (dirs) */
	uint8_t state, reached, orphan;
};

struct fsck {
	struct vcfs_disk *d;
	struct vcfs_sb sb;
	const struct vcfs_fsck_opts *o;
	struct vcfs_fsck_stats *st;
	FILE *out;
	int offline;		/* no live host: orphans and locks are ours to clean */
	uint32_t ncl;
	uint8_t *cbmp;		/* ncl bitmap blocks */
	uint8_t *cbmp_bad;	/* per cluster: block was invalid */
	uint8_t *small_seen, *large_seen;
	struct ino_info *ii;
	int oper_err;
	int header_printed;
	uint8_t slot_state[VCFS_MAX_HOSTS];	/* after pass 2's repairs */
	uint64_t slot_gen[VCFS_MAX_HOSTS];
};

static int bit_get(const uint8_t *b, uint64_t i) { return (b[i / 8] >> (i % 8)) & 1; }
static void bit_set(uint8_t *b, uint64_t i) { b[i / 8] |= (uint8_t)(1u << (i % 8)); }
static void bit_clr(uint8_t *b, uint64_t i) { b[i / 8] &= (uint8_t)~(1u << (i % 8)); }

/* Report a problem; returns 1 if it is to be fixed now. */
__attribute__((format(printf, 3, 4)))
static int problem(struct fsck *fc, enum problem p, const char *fmt, ...)
{
	char det[512];
	va_list ap;
	int fix;

	va_start(ap, fmt);
	vsnprintf(det, sizeof(det), fmt, ap);
	va_end(ap);
	fix = fc->o->mode == VCFS_FSCK_REPAIR ||
	      (fc->o->mode == VCFS_FSCK_PREEN && ptab[p].preen);
	if (fc->o->progress)	/* pass 0: clear the progress line first */
		fc->o->progress(fc->o->progress_arg, 0, NULL, 0, 0);
	if (!fc->header_printed) {
		fprintf(fc->out, "%-5s %-8s %s\n", "code", "action", "problem");
		fc->header_printed = 1;
	}
	fprintf(fc->out, "%-5s %-8s %s: %s\n", ptab[p].id, fix ? "FIXED" : "LEFT", ptab[p].msg, det);
	if (!fix)
		fprintf(fc->out, "%-5s %-8s   fix with -y: %s\n", "", "", ptab[p].fix);
	fc->st->found++;
	if (fix)
		fc->st->fixed++;
	else
		fc->st->left++;
	return fix;
}

static int rd(struct fsck *fc, uint64_t blk, void *buf, size_t nblk)
{
	int rc = vcfs_disk_read(fc->d, blk * VCFS_BLK, buf, nblk * VCFS_BLK);
	if (rc) {
		vcfs_err("fsck: reading block %llu: %s", (unsigned long long)blk, vcfs_strerror(rc));
		fc->oper_err = rc;
	}
	return rc;
}

/* Write a metadata block with seq + 1 and a fresh crc. */
static int wr_meta(struct fsck *fc, uint64_t blk, void *buf)
{
	struct vcfs_mhdr *h = buf;
	int rc;

	h->seq = le64_mk(le64_get(h->seq) + 1);
	vcfs_mhdr_seal(buf, le16_get(h->type), blk, fc->sb.volgen);
	rc = vcfs_disk_write(fc->d, blk * VCFS_BLK, buf, VCFS_BLK, 0);
	if (rc) {
		vcfs_err("fsck: writing block %llu: %s", (unsigned long long)blk, vcfs_strerror(rc));
		fc->oper_err = rc;
	}
	return rc;
}

static int wr_zero(struct fsck *fc, uint64_t blk)
{
	void *z = vcfs_disk_buf_alloc(VCFS_BLK);
	int rc = z ? vcfs_disk_write(fc->d, blk * VCFS_BLK, z, VCFS_BLK, 0) : -ENOMEM;

	free(z);
	if (rc)
		fc->oper_err = rc;
	return rc;
}

/* ---- pass 1: headers ---- */
/* Report progress of pass `pass` (1..8): every 1/256 of it and at its end. */
static void prog(struct fsck *fc, int pass, const char *name, uint64_t done, uint64_t total)
{
	uint64_t step = total / 256 ? total / 256 : 1;

	if (fc->o->progress && (done % step == 0 || done == total))
		fc->o->progress(fc->o->progress_arg, pass, name, done, total);
}

static int pass_super(struct fsck *fc)
{
	const struct vcfs_disk_info *di = vcfs_disk_info(fc->d);
	uint8_t *b = vcfs_disk_buf_alloc(VCFS_BLK);
	struct vcfs_sb back;
	int used_backup = 0, rc;
	uint64_t last;

	rc = vcfs_read_super(fc->d, &fc->sb, &used_backup);
	if (rc) {
		if (rc == -VCFS_ENOTVCFS)
			vcfs_err("%s is not a vcfs datastore (no vcfs signature in block 0); "
				 "check the URI, or format it with mkfs.vcfs", di->desc);
		else if (rc == -VCFS_EFEATURE)
			vcfs_err("%s uses a format this fsck.vcfs does not know; use a newer vcfs",
				 di->desc);
		else
			vcfs_err("%s: no usable volume header (block 0 and backup): %s",
				 di->desc, vcfs_strerror(rc));
		free(b);
		return rc;
	}
	if (used_backup && problem(fc, P_SUPER_PRIMARY, "block 0"))
		vcfs_write_super(fc->d, &fc->sb);
	if ((fc->sb.feat_incompat & VCFS_FEAT_INCOMPAT_RESIZE_INPROG) &&
	    problem(fc, P_GROW_INPROG, "to %llu MiB",
		    (unsigned long long)(fc->sb.grow_target * VCFS_BLK >> 20))) {
		/* nothing refers to the clusters it may have written yet */
		fc->sb.feat_incompat &= ~VCFS_FEAT_INCOMPAT_RESIZE_INPROG;
		fc->sb.grow_target = 0;
		used_backup = 1;	/* the backup is rewritten too */
		if (fc->o->mode != VCFS_FSCK_CHECK)
			vcfs_write_super(fc->d, &fc->sb);
	}
	last = fc->sb.volume_blocks - 1;
	if (!used_backup && !rd(fc, last, b, 1)) {
		rc = vcfs_super_decode(b, last, &back);
		if ((rc || back.seq != fc->sb.seq || back.volgen != fc->sb.volgen) &&
		    problem(fc, P_SUPER_BACKUP, "block %llu", (unsigned long long)last)) {
			fc->sb.seq--;	/* vcfs_write_super bumps it back */
			vcfs_write_super(fc->d, &fc->sb);
		}
	}
	free(b);
	return fc->oper_err;
}

/* ---- pass 2 and 3: heartbeats, journals ---- */
static int pass_hosts(struct fsck *fc)
{
	const struct vcfs_sb *sb = &fc->sb;
	uint8_t *hb = vcfs_disk_buf_alloc((size_t)sb->max_hosts * VCFS_BLK);
	uint32_t s, inuse = 0;
	int rc = 0;

	if (!hb)
		return -ENOMEM;
	if (rd(fc, sb->hb_start, hb, sb->max_hosts)) {
		free(hb);
		return fc->oper_err;
	}
	for (s = 0; s < sb->max_hosts; s++) {
		struct vcfs_hb_disk *h = (void *)(hb + (size_t)s * VCFS_BLK);
		rc = vcfs_mhdr_check(h, VCFS_T_HB, sb->hb_start + s, sb->volgen);
		if (rc < 0) {
			if (problem(fc, P_HB_BAD, "slot %u", s))
				wr_zero(fc, sb->hb_start + s);
			memset(h, 0, VCFS_BLK);
		} else if (rc == 0 && le32_get(h->state) != VCFS_HB_FREE) {
			inuse++;
		}
	}
	if (inuse) {
		struct vcfs_hb_timing tm;
		int live = 0;
		vcfs_hb_timing_from(sb->io_timeout_ms, &tm);
		if (!fc->o->skip_live_wait) {
			if (fc->o->verbose)
				fprintf(fc->out, "%u heartbeat slot(s) marked in use; watching them "
					"for %.1f s\n", inuse, (double)tm.dead_ns / 1e9);
			live = vcfs_hb_count_live(fc->d, sb, tm.dead_ns);
			if (live < 0) {
				free(hb);
				return fc->oper_err = live;
			}
		}
		if (live > 0) {
			if (fc->o->mode != VCFS_FSCK_CHECK || !fc->o->force_live) {
				vcfs_err("%d host(s) are heartbeating on this datastore: unmount it on "
					 "every host before fsck.vcfs (a read-only check of a live "
					 "datastore is possible with -n -f)", live);
				free(hb);
				return fc->oper_err = -VCFS_ELIVE;
			}
			fprintf(fc->out, "warning: %d host(s) are live; this read-only check may "
				"see their changes half done\n", live);
			free(hb);
			return 0;
		}
	}
	fc->offline = 1;
	for (s = 0; s < sb->max_hosts; s++) {
		struct vcfs_hb_disk *h = (void *)(hb + (size_t)s * VCFS_BLK);
		if (le32_get(h->h.magic) != VCFS_MAGIC || le32_get(h->state) == VCFS_HB_FREE ||
		    vcfs_mhdr_check(h, VCFS_T_HB, sb->hb_start + s, sb->volgen) != 0)
			continue;
		if (problem(fc, P_HB_UNCLEAN, "slot %u (host %.64s)", s, h->host_name)) {
			unsigned n = 0;
			rc = vcfs_journal_replay(fc->d, sb, s, NULL, &n);
			if (rc) {
				vcfs_err("fsck: replaying the journal of slot %u: %s", s,
					 vcfs_strerror(rc));
				fc->oper_err = rc;
				continue;
			}
			fc->st->journals_replayed++;
			h->state = le32_mk(VCFS_HB_FREE);
			h->generation = le64_mk(le64_get(h->generation) + 1);
			wr_meta(fc, sb->hb_start + s, h);
		}
	}
	for (s = 0; s < sb->max_hosts; s++) {
		struct vcfs_hb_disk *h = (void *)(hb + (size_t)s * VCFS_BLK);
		if (vcfs_mhdr_check(h, VCFS_T_HB, sb->hb_start + s, sb->volgen) == 0) {
			fc->slot_state[s] = (uint8_t)le32_get(h->state);
			fc->slot_gen[s] = le64_get(h->generation);
		}
	}
	free(hb);
	if (fc->oper_err)
		return fc->oper_err;
	for (s = 0; s < sb->max_hosts; s++) {
		struct vcfs_journal_state js;
		rc = vcfs_journal_inspect(fc->d, sb, s, &js);
		if (rc) {
			fc->oper_err = rc;
			return rc;
		}
		if (js.corrupt) {
			if (problem(fc, P_JOURNAL_BAD, "slot %u", s)) {
				rc = vcfs_journal_reset(fc->d, sb, s, NULL);
				if (rc)
					return fc->oper_err = rc;
			}
			continue;
		}
		if (js.pending && problem(fc, P_JOURNAL_PENDING, "slot %u, %u transaction "
					  "record(s), %u block image(s)", s, js.pending_txns,
					  js.pending_blocks)) {
			rc = vcfs_journal_replay(fc->d, sb, s, NULL, NULL);
			if (rc)
				return fc->oper_err = rc;
			fc->st->journals_replayed++;
		}
	}
	return 0;
}

/* ---- pass 4: clusters and locks ---- */
static uint32_t cl_of(const struct fsck *fc, int kind, uint64_t entry, uint32_t *bit)
{
	const struct vcfs_sb *sb = &fc->sb;

	switch (kind) {
	case VCFS_CK_INODE:
		*bit = (uint32_t)(entry % sb->inode_cluster);
		return (uint32_t)(entry / sb->inode_cluster);
	case VCFS_CK_SMALL:
		*bit = (uint32_t)(entry % sb->small_cluster);
		return sb->ninode_clusters + (uint32_t)(entry / sb->small_cluster);
	default:
		*bit = (uint32_t)(entry % sb->large_cluster);
		return sb->ninode_clusters + sb->nsmall_clusters + (uint32_t)(entry / sb->large_cluster);
	}
}

static struct vcfs_cbmp_disk *cbmp(struct fsck *fc, uint32_t c)
{
	return (struct vcfs_cbmp_disk *)(fc->cbmp + (size_t)c * VCFS_BLK);
}

static int disk_used(struct fsck *fc, int kind, uint64_t entry)
{
	uint32_t bit, c = cl_of(fc, kind, entry, &bit);

	return !fc->cbmp_bad[c] && bit_get(cbmp(fc, c)->bits, bit);
}

/* Check a lock record; offline, a held record is stale. */
static void check_lock(struct fsck *fc, uint64_t blk, const void *rec, const char *what,
		       uint64_t id)
{
	const struct vcfs_lock_disk *l = rec;
	int rc = vcfs_mhdr_check(rec, VCFS_T_LOCK, blk, fc->sb.volgen);

	if (rc < 0) {
		if (problem(fc, P_LOCK_BAD, "%s %llu (block %llu)", what, (unsigned long long)id,
			    (unsigned long long)blk))
			wr_zero(fc, blk);
	} else if (rc == 0 && le32_get(l->mode) != VCFS_LOCK_FREE && fc->offline) {
		/*
		 * An entry whose slot is free or has another generation is stale by
		 * design (a recovered host's entries are never cleaned up one by
		 * one) and costs nothing.  Only an entry that still matches a slot
		 * marked in use, whose host is gone, is a problem: that slot was not
		 * cleaned (fsck -n, or a failed replay).
		 */
		for (int i = 0; i < VCFS_LOCK_HOLDERS; i++) {
			uint32_t s = le16_get(l->holders[i].slot);
			if (s >= fc->sb.max_hosts || fc->slot_state[s] == VCFS_HB_FREE ||
			    (uint32_t)fc->slot_gen[s] != le32_get(l->holders[i].gen))
				continue;
			if (problem(fc, P_LOCK_STALE, "%s %llu held by slot %u", what,
				    (unsigned long long)id, s))
				wr_zero(fc, blk);
			break;
		}
	}
}

/*
 * Does the bitmap of cluster c describe it?  A large cluster counting fewer
 * entries than its geometry (the last one before a grow that was not
 * extended, grow.c step 5) is extended here (GR02).
 */
static int cbmp_describes(struct fsck *fc, uint32_t c)
{
	struct vcfs_cbmp_disk *b = cbmp(fc, c);
	struct vcfs_cluster_geom g;
	uint32_t have = le32_get(b->count);

	vcfs_cluster_geom(&fc->sb, c, &g);
	if (le32_get(b->kind) != g.kind || le32_get(b->index) != g.index ||
	    le64_get(b->first) != g.first || le32_get(b->nfree) > have || !have ||
	    have > g.count || (have < g.count && g.kind != VCFS_CK_LARGE))
		return 0;
	if (have < g.count && problem(fc, P_GROW_SHORT, "cluster %u: %u of %u entries", c,
				      have, g.count)) {
		b->count = le32_mk(g.count);
		b->nfree = le32_mk(le32_get(b->nfree) + g.count - have);
		if (fc->o->mode != VCFS_FSCK_CHECK)
			wr_meta(fc, vcfs_cluster_bmp_blk(&fc->sb, c), b);
	}
	return 1;
}

static int pass_clusters(struct fsck *fc)
{
	const struct vcfs_sb *sb = &fc->sb;
	uint64_t n = 2ull * fc->ncl, done;
	uint8_t *buf = vcfs_disk_buf_alloc(256 * VCFS_BLK);
	uint8_t *lk;

	if (!buf)
		return -ENOMEM;
	for (done = 0; done < n; ) {
		uint32_t k = (uint32_t)(n - done < 256 ? n - done : 256);
		if (rd(fc, sb->cmeta_start + done, buf, k))
			break;
		prog(fc, 4, "resource clusters", done + k, n);
		for (uint32_t i = 0; i < k; i++) {
			uint64_t idx = done + i, blk = sb->cmeta_start + idx;
			uint32_t c = (uint32_t)(idx / 2);
			if (idx % 2 == 0) {
				check_lock(fc, blk, buf + (size_t)i * VCFS_BLK, "cluster", c);
				continue;
			}
			memcpy(cbmp(fc, c), buf + (size_t)i * VCFS_BLK, VCFS_BLK);
			if (vcfs_mhdr_check(cbmp(fc, c), VCFS_T_CBMP, blk, sb->volgen) != 0 ||
			    !cbmp_describes(fc, c)) {
				fc->cbmp_bad[c] = 1;
				problem(fc, P_CBMP_BAD, "cluster %u (block %llu)", c,
					(unsigned long long)blk);
			}
		}
		done += k;
	}
	lk = vcfs_disk_buf_alloc(VCFS_BLK);
	if (lk && !rd(fc, VCFS_VOLLOCK_BLKNO, lk, 1))
		check_lock(fc, VCFS_VOLLOCK_BLKNO, lk, "volume lock", 0);
	free(lk);
	free(buf);
	return fc->oper_err;
}

/*
 * Check an inode's byte-range lock table (bytes 512..1023 of its lock block).
 * An entry counts only while its slot is in use at its generation; offline
 * (no live host) none does.  Repairs rewrite those 512 bytes over the block
 * as it is on disk now (check_lock may have just reset the lock record).
 */
static void check_rlock(struct fsck *fc, uint64_t blk, const uint8_t *lockblk, uint64_t ino)
{
	struct vcfs_rlock_table t;
	uint32_t k = 0, nstale = 0, first = 0;
	uint8_t *b;
	int rc = vcfs_rlock_decode(lockblk + VCFS_RLOCK_OFF, blk, fc->sb.volgen, &t);

	if (rc == 1)
		return;		/* never used: empty */
	if (rc < 0) {
		if (!problem(fc, P_RLOCK_BAD, "inode %llu (block %llu)", (unsigned long long)ino,
			     (unsigned long long)blk))
			return;
		memset(&t, 0, sizeof(t));
	} else {
		for (uint32_t i = 0; i < t.n; i++) {
			uint32_t s = t.e[i].slot;
			if (fc->offline || s >= fc->sb.max_hosts ||
			    fc->slot_state[s] == VCFS_HB_FREE ||
			    (uint32_t)fc->slot_gen[s] != t.e[i].gen) {
				if (!nstale++)
					first = s;
				continue;
			}
			t.e[k++] = t.e[i];
		}
		if (!nstale || !problem(fc, P_RLOCK_STALE, "inode %llu: %u lock(s), slot %u first",
					(unsigned long long)ino, nstale, first))
			return;
		t.n = k;
	}
	b = vcfs_disk_buf_alloc(VCFS_BLK);
	if (!b) {
		fc->oper_err = -ENOMEM;
		return;
	}
	if (!rd(fc, blk, b, 1)) {
		t.seq++;
		vcfs_rlock_encode(&t, b + VCFS_RLOCK_OFF, blk, fc->sb.volgen, 0);
		rc = vcfs_disk_write(fc->d, blk * VCFS_BLK, b, VCFS_BLK, 0);
		if (rc) {
			vcfs_err("fsck: writing block %llu: %s", (unsigned long long)blk,
				 vcfs_strerror(rc));
			fc->oper_err = rc;
		}
	}
	free(b);
}

/* ---- pass 5: inodes and block maps ---- */
static int ptr_ok(const struct fsck *fc, uint64_t addr, int large)
{
	const struct vcfs_sb *sb = &fc->sb;

	if (large)
		return addr >= sb->large_start && (addr - sb->large_start) % sb->lblock_blocks == 0 &&
		       (addr - sb->large_start) / sb->lblock_blocks < sb->nlarge;
	return addr >= sb->small_start && addr < sb->small_start + sb->nsmall;
}

/* Claim a block for ino; 0 if it was free, else it is a duplicate. */
static int claim(struct fsck *fc, uint64_t addr, int large)
{
	const struct vcfs_sb *sb = &fc->sb;
	uint8_t *seen = large ? fc->large_seen : fc->small_seen;
	uint64_t i = large ? (addr - sb->large_start) / sb->lblock_blocks : addr - sb->small_start;

	if (bit_get(seen, i))
		return 1;
	bit_set(seen, i);
	return 0;
}

struct walk {
	uint64_t ino, blocks;	/* 512-byte units */
	int large;
};

/* Check one pointer slot; returns 1 if it was cleared. */
static int check_ptr(struct fsck *fc, struct walk *w, le64 *slot, int depth);

static int walk_ind(struct fsck *fc, struct walk *w, uint64_t addr, int depth)
{
	struct vcfs_ind_disk *ind = vcfs_disk_buf_alloc(VCFS_BLK);
	int changed = 0, rc;

	if (!ind || rd(fc, addr, ind, 1)) {
		free(ind);
		return -1;
	}
	rc = vcfs_mhdr_check(ind, VCFS_T_IND, addr, fc->sb.volgen);
	if (rc) {
		free(ind);
		return 1;	/* caller reports and clears */
	}
	for (uint32_t i = 0; i < VCFS_NINDIRECT; i++)
		if (ind->ptr[i].v)
			changed |= check_ptr(fc, w, &ind->ptr[i], depth - 1);
	if (changed && fc->o->mode != VCFS_FSCK_CHECK)
		wr_meta(fc, addr, ind);
	free(ind);
	return 0;
}

static int check_ptr(struct fsck *fc, struct walk *w, le64 *slot, int depth)
{
	uint64_t bp = le64_get(*slot), addr = VCFS_BP_ADDR(bp);
	int large = depth == 0 && w->large, rc;

	if (!ptr_ok(fc, addr, large)) {
		if (problem(fc, P_BMAP_RANGE, "inode %llu: block %llu", (unsigned long long)w->ino,
			    (unsigned long long)addr)) {
			*slot = le64_mk(0);
			return 1;
		}
		return 0;
	}
	if (claim(fc, addr, large)) {
		if (problem(fc, P_BMAP_DUP, "inode %llu: block %llu", (unsigned long long)w->ino,
			    (unsigned long long)addr)) {
			*slot = le64_mk(0);
			return 1;
		}
		return 0;
	}
	w->blocks += large ? fc->sb.lblock_size / 512 : VCFS_BLK / 512;
	if (depth == 0)
		return 0;
	rc = walk_ind(fc, w, addr, depth);
	if (rc == 1 && problem(fc, P_IND_BAD, "inode %llu: indirect block %llu",
			       (unsigned long long)w->ino, (unsigned long long)addr)) {
		/* dropped from the map: not counted, and freed by the bitmap pass */
		*slot = le64_mk(0);
		w->blocks -= VCFS_BLK / 512;
		bit_clr(fc->small_seen, addr - fc->sb.small_start);
		return 1;
	}
	return 0;
}

static int valid_type(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFIFO:
	case S_IFSOCK: case S_IFCHR: case S_IFBLK:
		return 1;
	}
	return 0;
}

static int is_reserved(const struct fsck *fc, uint64_t ino)
{
	return ino == 0 || (ino >= 2 && ino < VCFS_FIRST_FREE_INO(fc->sb.max_hosts));
}

static int is_orphan_dir(const struct fsck *fc, uint64_t ino)
{
	return ino >= VCFS_ORPHAN_INO(0) && ino < VCFS_ORPHAN_INO(fc->sb.max_hosts);
}

static void write_root(struct fsck *fc, struct vcfs_inode_disk *ino)
{
	uint64_t seq = le64_get(ino->h.seq);

	vcfs_mkfs_root(ino);
	ino->h.seq = le64_mk(seq);
	wr_meta(fc, vcfs_inode_blk(&fc->sb, VCFS_ROOT_INO), ino);
}

static int pass_inodes(struct fsck *fc)
{
	const struct vcfs_sb *sb = &fc->sb;
	uint8_t *buf = vcfs_disk_buf_alloc(2 * VCFS_BLK);
	struct vcfs_inode_disk *ino = (void *)(buf + VCFS_BLK);

	if (!buf)
		return -ENOMEM;
	for (uint64_t n = 1; n < sb->ninodes && !fc->oper_err; n++) {
		struct ino_info *ii = &fc->ii[n];
		struct walk w = { .ino = n };

		prog(fc, 5, "inodes and block maps", n + 1, sb->ninodes);
		int used = disk_used(fc, VCFS_CK_INODE, n), rc, changed = 0;
		uint32_t c, bit;

		c = cl_of(fc, VCFS_CK_INODE, n, &bit);
		if (fc->cbmp_bad[c] || n == VCFS_ROOT_INO)
			used = 1;	/* every inode of a damaged cluster; the root always */
		if (!used || (is_reserved(fc, n) && !is_orphan_dir(fc, n)))
			continue;
		if (rd(fc, vcfs_inode_lock_blk(sb, n), buf, 2))
			break;
		check_lock(fc, vcfs_inode_lock_blk(sb, n), buf, "inode", n);
		check_rlock(fc, vcfs_inode_lock_blk(sb, n), buf, n);
		rc = vcfs_mhdr_check(ino, VCFS_T_INODE, vcfs_inode_blk(sb, n), sb->volgen);
		if (is_orphan_dir(fc, n) && rc == 1)
			continue;	/* never used: an empty orphan directory */
		if (n == VCFS_ROOT_INO && (rc || (le32_get(ino->mode) & S_IFMT) != S_IFDIR)) {
			if (problem(fc, P_ROOT_BAD, "inode 1")) {
				write_root(fc, ino);
				rc = 0;
			} else {
				ii->state = I_BAD;
				continue;
			}
		}
		if (rc == 1) {
			if (!fc->cbmp_bad[c] && problem(fc, P_INODE_UNINIT, "inode %llu",
							(unsigned long long)n))
				ii->state = I_FREE;
			else if (!fc->cbmp_bad[c])
				ii->state = I_BAD;
			continue;
		}
		if (rc < 0) {
			problem(fc, P_INODE_CORRUPT, "inode %llu", (unsigned long long)n);
			ii->state = I_BAD;
			continue;
		}
		if (!valid_type(le32_get(ino->mode))) {
			problem(fc, P_INODE_MODE, "inode %llu: mode 0%o", (unsigned long long)n,
				le32_get(ino->mode));
			ii->state = I_BAD;
			continue;
		}
		ii->state = I_OK;
		ii->mode = le32_get(ino->mode);
		ii->nlink = le32_get(ino->nlink);
		fc->st->inodes++;
		if (S_ISDIR(ii->mode))
			fc->st->dirs++;
		else if (S_ISREG(ii->mode))
			fc->st->files++;
		w.large = !!(le32_get(ino->flags) & VCFS_IF_LARGE);
		for (int i = 0; i < VCFS_NDIRECT; i++)
			if (ino->direct[i].v)
				changed |= check_ptr(fc, &w, &ino->direct[i], 0);
		if (ino->ind.v)
			changed |= check_ptr(fc, &w, &ino->ind, 1);
		if (ino->dind.v)
			changed |= check_ptr(fc, &w, &ino->dind, 2);
		if (ino->tind.v)
			changed |= check_ptr(fc, &w, &ino->tind, 3);
		if (w.blocks != le64_get(ino->blocks) &&
		    problem(fc, P_INODE_BLOCKS, "inode %llu: %llu, maps hold %llu",
			    (unsigned long long)n, (unsigned long long)le64_get(ino->blocks),
			    (unsigned long long)w.blocks)) {
			ino->blocks = le64_mk(w.blocks);
			changed = 1;
		}
		if (changed && fc->o->mode != VCFS_FSCK_CHECK)
			wr_meta(fc, vcfs_inode_blk(sb, n), ino);
	}
	free(buf);
	return fc->oper_err;
}

/* ---- directories ---- */

/* Logical block lb of an inode's map (0 = hole), reading indirect blocks. */
static uint64_t map_lookup(struct fsck *fc, const struct vcfs_inode_disk *ino, uint64_t lb)
{
	uint64_t per = VCFS_NINDIRECT, idx[3], bp;
	int depth;
	struct vcfs_ind_disk *ind;

	if (lb < VCFS_NDIRECT)
		return VCFS_BP_ADDR(le64_get(ino->direct[lb]));
	lb -= VCFS_NDIRECT;
	if (lb < per) {
		depth = 1; bp = le64_get(ino->ind); idx[0] = lb;
	} else if ((lb -= per) < per * per) {
		depth = 2; bp = le64_get(ino->dind); idx[0] = lb / per; idx[1] = lb % per;
	} else {
		lb -= per * per;
		if (lb >= per * per * per)
			return 0;
		depth = 3; bp = le64_get(ino->tind);
		idx[0] = lb / (per * per); idx[1] = lb / per % per; idx[2] = lb % per;
	}
	ind = vcfs_disk_buf_alloc(VCFS_BLK);
	for (int i = 0; i < depth && bp && ind; i++) {
		uint64_t a = VCFS_BP_ADDR(bp);
		if (!ptr_ok(fc, a, 0) || vcfs_disk_read(fc->d, a * VCFS_BLK, ind, VCFS_BLK) ||
		    vcfs_mhdr_check(ind, VCFS_T_IND, a, fc->sb.volgen)) {
			bp = 0;
			break;
		}
		bp = le64_get(ind->ptr[idx[i]]);
	}
	free(ind);
	return VCFS_BP_ADDR(bp);
}

static uint8_t dt_of(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return DT_REG;
	case S_IFDIR: return DT_DIR;
	case S_IFLNK: return DT_LNK;
	case S_IFIFO: return DT_FIFO;
	case S_IFSOCK: return DT_SOCK;
	case S_IFCHR: return DT_CHR;
	case S_IFBLK: return DT_BLK;
	}
	return DT_UNKNOWN;
}

static uint32_t bucket_of(uint32_t h, uint32_t level, uint32_t split)
{
	uint32_t b = h & ((1u << level) - 1);

	if (b < split)
		b = h & ((2u << level) - 1);
	return b;
}

/* Remove the entry at byte offset off of a directory block. */
static void dirb_remove(struct vcfs_dirb_disk *db, uint32_t off, uint32_t len)
{
	uint32_t used = le16_get(db->used);

	memmove(db->data + off, db->data + off + len, used - off - len);
	memset(db->data + used - len, 0, len);
	db->used = le16_mk((uint16_t)(used - len));
	db->nent = le16_mk((uint16_t)(le16_get(db->nent) - 1));
}

struct pending_entry { uint64_t ino; uint32_t hash; uint8_t type, namelen; char name[256]; };

struct dirq { uint64_t *v; size_t n, cap; };

static void dirq_push(struct dirq *q, uint64_t ino)
{
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 64;
		q->v = realloc(q->v, q->cap * sizeof(*q->v));
	}
	q->v[q->n++] = ino;
}

/* Name set per directory, for duplicates: open hashing on (hash, name). */
struct nameset { struct pending_entry *e; size_t n, cap; };

static int nameset_add(struct nameset *s, uint32_t hash, const char *name, uint8_t len)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->e[i].hash == hash && s->e[i].namelen == len &&
		    !memcmp(s->e[i].name, name, len))
			return 1;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->e = realloc(s->e, s->cap * sizeof(*s->e));
	}
	s->e[s->n].hash = hash;
	s->e[s->n].namelen = len;
	memcpy(s->e[s->n].name, name, len);
	s->n++;
	return 0;
}

static int dir_insert(struct fsck *fc, uint64_t dir, const char *name, uint8_t len,
		      uint64_t ino, uint8_t type);

static int read_inode(struct fsck *fc, uint64_t n, struct vcfs_inode_disk *ino)
{
	if (rd(fc, vcfs_inode_blk(&fc->sb, n), ino, 1))
		return -1;
	return vcfs_mhdr_check(ino, VCFS_T_INODE, vcfs_inode_blk(&fc->sb, n), fc->sb.volgen);
}

/*
 * Give the blocks under pointer bp back to the bitmap pass: pass 5 claimed
 * them for an inode that pass 6 then freed (an orphan of a host that is
 * gone).  Only when no problem has been left unfixed: the map then holds no
 * duplicate or out-of-range pointer, so every block it names is its own.
 */
static void unclaim(struct fsck *fc, uint64_t bp, int depth, int large)
{
	const struct vcfs_sb *sb = &fc->sb;
	uint64_t addr = VCFS_BP_ADDR(bp);
	int big = depth == 0 && large;

	if (!addr || !ptr_ok(fc, addr, big))
		return;
	if (depth > 0) {
		struct vcfs_ind_disk *ind = vcfs_disk_buf_alloc(VCFS_BLK);
		if (ind && !rd(fc, addr, ind, 1) &&
		    !vcfs_mhdr_check(ind, VCFS_T_IND, addr, sb->volgen))
			for (uint32_t i = 0; i < VCFS_NINDIRECT; i++)
				unclaim(fc, le64_get(ind->ptr[i]), depth - 1, large);
		free(ind);
	}
	if (big)
		bit_clr(fc->large_seen, (addr - sb->large_start) / sb->lblock_blocks);
	else
		bit_clr(fc->small_seen, addr - sb->small_start);
}

static void unclaim_inode(struct fsck *fc, uint64_t n)
{
	struct vcfs_inode_disk *ino = vcfs_disk_buf_alloc(VCFS_BLK);
	int large;

	if (!ino || fc->st->left || read_inode(fc, n, ino)) {
		free(ino);
		return;
	}
	large = !!(le32_get(ino->flags) & VCFS_IF_LARGE);
	for (int i = 0; i < VCFS_NDIRECT; i++)
		unclaim(fc, le64_get(ino->direct[i]), 0, large);
	unclaim(fc, le64_get(ino->ind), 1, large);
	unclaim(fc, le64_get(ino->dind), 2, large);
	unclaim(fc, le64_get(ino->tind), 3, large);
	free(ino);
}

/* Walk one directory: every bucket chain, every entry. */
static void check_dir(struct fsck *fc, uint64_t dn, struct dirq *q, int orphan_dir)
{
	const struct vcfs_sb *sb = &fc->sb;
	struct vcfs_inode_disk *ino = vcfs_disk_buf_alloc(VCFS_BLK);
	struct vcfs_dirb_disk *db = vcfs_disk_buf_alloc(VCFS_BLK);
	struct nameset names = { 0 };
	struct pending_entry *moves = NULL;
	size_t nmoves = 0;
	uint64_t count = 0;
	uint32_t level, split, nb, novf;
	int fix = fc->o->mode != VCFS_FSCK_CHECK;

	if (!ino || !db || read_inode(fc, dn, ino) != 0)
		goto out;
	level = le32_get(ino->dir_level);
	split = le32_get(ino->dir_split);
	novf = le32_get(ino->dir_novf);
	if (level > 24 || split >= (1u << level)) {
		problem(fc, P_INODE_CORRUPT, "directory %llu: hashing level %u split %u",
			(unsigned long long)dn, level, split);
		goto out;
	}
	nb = (1u << level) + split;
	for (uint32_t b = 0; b < nb; b++) {
		uint64_t lb = b, addr, prev_addr = 0;
		uint32_t hops = 0;

		/* bucket b is logical block b (0 included); overflow blocks are
		 * never at logical 0, so next == 0 ends the chain */
		for (int head = 1; head || lb; head = 0) {
			addr = map_lookup(fc, ino, lb);
			if (!addr)
				break;
			if (hops++ > novf + 1 || rd(fc, addr, db, 1))
				break;
			if (vcfs_mhdr_check(db, VCFS_T_DIRB, addr, sb->volgen) != 0) {
				if (problem(fc, P_DIRB_BAD, "directory %llu, bucket %u, block %llu",
					    (unsigned long long)dn, b, (unsigned long long)addr) &&
				    lb < VCFS_NDIRECT) {
					/* drop it from the map: the bucket becomes a hole
					 * that reconnection can fill; the block is freed
					 * by the bitmap pass */
					if (read_inode(fc, dn, ino) == 0) {
						uint64_t a = fc->sb.small_start;
						ino->direct[lb] = le64_mk(0);
						ino->blocks = le64_mk(le64_get(ino->blocks) - VCFS_BLK / 512);
						wr_meta(fc, vcfs_inode_blk(sb, dn), ino);
						bit_clr(fc->small_seen, addr - a);
					}
				}
				/* its entries become unreferenced and are reconnected */
				if (prev_addr && fix) {
					struct vcfs_dirb_disk *pb = vcfs_disk_buf_alloc(VCFS_BLK);
					if (pb && !rd(fc, prev_addr, pb, 1)) {
						pb->next = le64_mk(0);
						wr_meta(fc, prev_addr, pb);
					}
					free(pb);
				}
				break;
			}
			int changed = 0;
			uint32_t off = 0, used = le16_get(db->used), nent = le16_get(db->nent), i;
			if (used > sizeof(db->data))
				used = sizeof(db->data);
			for (i = 0; i < nent; i++) {
				struct vcfs_dirent_disk *e = (void *)(db->data + off);
				uint32_t elen;
				uint64_t t;
				if (off + sizeof(*e) > used || !e->namelen ||
				    off + (elen = VCFS_DIRENT_LEN(e->namelen)) > used ||
				    memchr(e->name, '/', e->namelen) || memchr(e->name, 0, e->namelen)) {
					if (problem(fc, P_DIRENT_BAD, "directory %llu, block %llu, entry %u",
						    (unsigned long long)dn, (unsigned long long)addr, i)) {
						memset(db->data + off, 0, sizeof(db->data) - off);
						db->used = le16_mk((uint16_t)off);
						db->nent = le16_mk((uint16_t)i);
						changed = 1;
					}
					break;
				}
				t = le64_get(e->ino);
				if (!t || t >= sb->ninodes || fc->ii[t].state != I_OK ||
				    (is_reserved(fc, t) && !orphan_dir)) {
					if (problem(fc, P_DIRENT_DANGLING, "directory %llu: '%.*s' -> inode %llu",
						    (unsigned long long)dn, e->namelen, e->name,
						    (unsigned long long)t)) {
						dirb_remove(db, off, elen);
						changed = 1;
						continue;	/* same offset, next entry */
					}
					off += elen;
					continue;
				}
				uint32_t h = vcfs_dir_hash(e->name, e->namelen);
				if (le32_get(e->hash) != h &&
				    problem(fc, P_DIRENT_HASH, "directory %llu: '%.*s'",
					    (unsigned long long)dn, e->namelen, e->name)) {
					e->hash = le32_mk(h);
					changed = 1;
				}
				if (nameset_add(&names, h, e->name, e->namelen)) {
					if (problem(fc, P_DIRENT_DUP, "directory %llu: '%.*s'",
						    (unsigned long long)dn, e->namelen, e->name)) {
						dirb_remove(db, off, elen);
						changed = 1;
						continue;
					}
				}
				if (e->type != dt_of(fc->ii[t].mode) &&
				    problem(fc, P_DIRENT_TYPE, "directory %llu: '%.*s'",
					    (unsigned long long)dn, e->namelen, e->name)) {
					e->type = dt_of(fc->ii[t].mode);
					changed = 1;
				}
				if (S_ISDIR(fc->ii[t].mode) && !orphan_dir) {
					if (fc->ii[t].reached || t == VCFS_ROOT_INO) {
						if (problem(fc, P_DIR_MULTI, "directory %llu also in %llu as '%.*s'",
							    (unsigned long long)t, (unsigned long long)dn,
							    e->namelen, e->name)) {
							dirb_remove(db, off, elen);
							changed = 1;
							continue;
						}
					} else {
						fc->ii[t].reached = 1;
						fc->ii[t].parent = dn;
						fc->ii[dn].subdirs++;
						dirq_push(q, t);
					}
				}
				if (orphan_dir && !fc->offline) {
					fc->ii[t].orphan = 1;	/* its host is live: leave it */
					off += elen;
					continue;
				}
				if (orphan_dir) {
					if (problem(fc, P_ORPHAN, "inode %llu (host slot %llu)",
						    (unsigned long long)t,
						    (unsigned long long)(dn - VCFS_ORPHAN_INO(0)))) {
						fc->ii[t].state = I_BAD;	/* freed in the bitmap pass */
						unclaim_inode(fc, t);	/* and its blocks */
						dirb_remove(db, off, elen);
						changed = 1;
						continue;
					}
				}
				if (bucket_of(h, level, split) != b && !orphan_dir) {
					if (problem(fc, P_DIRENT_BUCKET, "directory %llu: '%.*s'",
						    (unsigned long long)dn, e->namelen, e->name)) {
						moves = realloc(moves, (nmoves + 1) * sizeof(*moves));
						moves[nmoves].ino = t;
						moves[nmoves].type = e->type;
						moves[nmoves].namelen = e->namelen;
						memcpy(moves[nmoves].name, e->name, e->namelen);
						nmoves++;
						dirb_remove(db, off, elen);
						changed = 1;
						fc->ii[t].refs++;
						count++;
						continue;
					}
				}
				fc->ii[t].refs++;
				count++;
				off += elen;
			}
			if (le32_get(db->bucket) != b) {
				db->bucket = le32_mk(b);
				changed = 1;
			}
			if (changed && fix)
				wr_meta(fc, addr, db);
			prev_addr = addr;
			lb = le64_get(db->next);
			if (lb && (lb < VCFS_DIR_OVF_BASE || lb >= VCFS_DIR_OVF_BASE + novf)) {
				if (problem(fc, P_DIRB_CHAIN, "directory %llu, bucket %u",
					    (unsigned long long)dn, b) && fix) {
					db->next = le64_mk(0);
					wr_meta(fc, addr, db);
				}
				break;
			}
		}
	}
	/* entries found in the wrong bucket go where lookups will find them */
	for (size_t i = 0; i < nmoves; i++)
		if (dir_insert(fc, dn, moves[i].name, moves[i].namelen, moves[i].ino,
			       moves[i].type))
			vcfs_err("fsck: could not move '%.*s' in directory %llu",
				 moves[i].namelen, moves[i].name, (unsigned long long)dn);
	if (read_inode(fc, dn, ino) == 0 && le64_get(ino->dir_count) != count &&
	    problem(fc, P_DIR_COUNT, "directory %llu: %llu, holds %llu", (unsigned long long)dn,
		    (unsigned long long)le64_get(ino->dir_count), (unsigned long long)count)) {
		ino->dir_count = le64_mk(count);
		wr_meta(fc, vcfs_inode_blk(sb, dn), ino);
	}
out:
	free(moves);
	free(names.e);
	free(db);
	free(ino);
}

/* Take a free small block (for reconnecting into a bucket that is a hole). */
static uint64_t alloc_small(struct fsck *fc)
{
	for (uint64_t i = 0; i < fc->sb.nsmall; i++)
		if (!bit_get(fc->small_seen, i) && !disk_used(fc, VCFS_CK_SMALL, i)) {
			bit_set(fc->small_seen, i);
			return fc->sb.small_start + i;
		}
	return 0;
}

/*
 * Insert an entry (reconnection, bucket moves).  Only into a bucket chain
 * block with room, or a bucket that is a hole among the direct blocks; a full
 * chain is left for an online host to split (the problem stays "LEFT").
 */
static int dir_insert(struct fsck *fc, uint64_t dir, const char *name, uint8_t len,
		      uint64_t ino, uint8_t type)
{
	const struct vcfs_sb *sb = &fc->sb;
	struct vcfs_inode_disk *di = vcfs_disk_buf_alloc(VCFS_BLK);
	struct vcfs_dirb_disk *db = vcfs_disk_buf_alloc(VCFS_BLK);
	uint32_t h = vcfs_dir_hash(name, len), b, need = VCFS_DIRENT_LEN(len);
	uint64_t lb, addr;
	int rc = -ENOSPC;

	if (!di || !db || read_inode(fc, dir, di) != 0)
		goto out;
	b = bucket_of(h, le32_get(di->dir_level), le32_get(di->dir_split));
	for (lb = b; ; lb = le64_get(db->next)) {
		addr = map_lookup(fc, di, lb);
		if (!addr) {
			if (lb != b || b >= VCFS_NDIRECT || !(addr = alloc_small(fc)))
				goto out;
			memset(db, 0, VCFS_BLK);
			db->h.type = le16_mk(VCFS_T_DIRB);
			db->bucket = le32_mk(b);
			di->direct[b] = le64_mk(addr);
			di->blocks = le64_mk(le64_get(di->blocks) + VCFS_BLK / 512);
			/* mark it in use on disk now: the bitmap pass then agrees */
			uint32_t bit, c = cl_of(fc, VCFS_CK_SMALL, addr - sb->small_start, &bit);
			bit_set(cbmp(fc, c)->bits, bit);
			cbmp(fc, c)->nfree = le32_mk(le32_get(cbmp(fc, c)->nfree) - 1);
			break;
		}
		if (rd(fc, addr, db, 1) || vcfs_mhdr_check(db, VCFS_T_DIRB, addr, sb->volgen))
			goto out;
		if (le16_get(db->used) + need <= sizeof(db->data))
			break;
		if (!le64_get(db->next))
			goto out;
	}
	struct vcfs_dirent_disk *e = (void *)(db->data + le16_get(db->used));
	e->ino = le64_mk(ino);
	e->hash = le32_mk(h);
	e->type = type;
	e->namelen = len;
	memcpy(e->name, name, len);
	db->used = le16_mk((uint16_t)(le16_get(db->used) + need));
	db->nent = le16_mk((uint16_t)(le16_get(db->nent) + 1));
	rc = wr_meta(fc, addr, db);
	if (!rc) {
		di->dir_count = le64_mk(le64_get(di->dir_count) + 1);
		rc = wr_meta(fc, vcfs_inode_blk(sb, dir), di);
	}
out:
	free(db);
	free(di);
	return rc;
}

static int pass_dirs(struct fsck *fc)
{
	struct dirq q = { 0 };

	if (fc->ii[VCFS_ROOT_INO].state != I_OK)
		return 0;
	fc->ii[VCFS_ROOT_INO].reached = 1;
	fc->ii[VCFS_ROOT_INO].parent = VCFS_ROOT_INO;
	dirq_push(&q, VCFS_ROOT_INO);
	for (size_t i = 0; i < q.n && !fc->oper_err; i++) {
		prog(fc, 6, "directories", i + 1, q.n);
		check_dir(fc, q.v[i], &q, 0);
	}
	for (uint32_t s = 0; s < fc->sb.max_hosts && !fc->oper_err; s++) {
		uint64_t od = VCFS_ORPHAN_INO(s);
		if (fc->ii[od].state == I_OK && S_ISDIR(fc->ii[od].mode))
			check_dir(fc, od, &q, 1);
	}
	free(q.v);
	return fc->oper_err;
}

/* ---- pass 7: parents, link counts, unreferenced inodes ---- */
static int pass_links(struct fsck *fc)
{
	const struct vcfs_sb *sb = &fc->sb;
	struct vcfs_inode_disk *ino = vcfs_disk_buf_alloc(VCFS_BLK);
	int fix = fc->o->mode != VCFS_FSCK_CHECK;

	if (!ino)
		return -ENOMEM;
	for (uint64_t n = 1; n < sb->ninodes && !fc->oper_err; n++) {
		struct ino_info *ii = &fc->ii[n];
		uint32_t want;
		int changed = 0;

		prog(fc, 7, "links", n + 1, sb->ninodes);
		if (ii->state != I_OK || is_reserved(fc, n))
			continue;
		if (ii->orphan && !ii->refs)
			continue;
		if (n != VCFS_ROOT_INO && !ii->refs) {
			if (problem(fc, P_UNREF, "inode %llu (%s)", (unsigned long long)n,
				    S_ISDIR(ii->mode) ? "directory" : "file")) {
				char name[32];
				int l = snprintf(name, sizeof(name), "#%llu", (unsigned long long)n);
				if (dir_insert(fc, VCFS_ROOT_INO, name, (uint8_t)l, n, dt_of(ii->mode)) == 0) {
					ii->refs = 1;
					if (S_ISDIR(ii->mode)) {
						ii->parent = VCFS_ROOT_INO;
						ii->reached = 1;
						fc->ii[VCFS_ROOT_INO].subdirs++;
						/* the root's count changed after it was checked */
						if (read_inode(fc, VCFS_ROOT_INO, ino) == 0) {
							ino->nlink = le32_mk(2 + fc->ii[VCFS_ROOT_INO].subdirs);
							fc->ii[VCFS_ROOT_INO].nlink = le32_get(ino->nlink);
							wr_meta(fc, vcfs_inode_blk(sb, VCFS_ROOT_INO), ino);
						}
					}
				} else {
					fprintf(fc->out, "      could not reconnect inode %llu (root bucket full)\n",
						(unsigned long long)n);
					fc->st->fixed--;
					fc->st->left++;
				}
			}
			if (!ii->refs)
				continue;
		}
		if (read_inode(fc, n, ino) != 0)
			continue;
		if (S_ISDIR(ii->mode)) {
			want = 2 + ii->subdirs;
			if (ii->reached && le64_get(ino->parent) != ii->parent &&
			    problem(fc, P_DIR_PARENT, "directory %llu: %llu, really %llu",
				    (unsigned long long)n, (unsigned long long)le64_get(ino->parent),
				    (unsigned long long)ii->parent)) {
				ino->parent = le64_mk(ii->parent);
				changed = 1;
			}
		} else {
			want = ii->refs;
		}
		if (le32_get(ino->nlink) != want &&
		    problem(fc, P_NLINK, "inode %llu: %u, really %u", (unsigned long long)n,
			    le32_get(ino->nlink), want)) {
			ino->nlink = le32_mk(want);
			changed = 1;
		}
		if (changed && fix)
			wr_meta(fc, vcfs_inode_blk(sb, n), ino);
	}
	free(ino);
	return fc->oper_err;
}

/* ---- pass 8: bitmaps ---- */

/* Should entry e of a cluster of this kind be marked in use? */
static int want_bit(struct fsck *fc, uint32_t kind, uint64_t e)
{
	if (kind == VCFS_CK_SMALL)
		return bit_get(fc->small_seen, e);
	if (kind == VCFS_CK_LARGE)
		return bit_get(fc->large_seen, e);
	/* inode 0, reserved numbers and orphan directories are always in use */
	return e == 0 || is_reserved(fc, e) || fc->ii[e].state == I_OK;
}

static int pass_bitmaps(struct fsck *fc)
{
	const struct vcfs_sb *sb = &fc->sb;
	int fix = fc->o->mode != VCFS_FSCK_CHECK;

	for (uint32_t c = 0; c < fc->ncl && !fc->oper_err; c++) {
		struct vcfs_cbmp_disk *b = cbmp(fc, c);
		struct vcfs_cluster_geom g;
		uint32_t kind, idx, count, leak = 0, miss = 0, used = 0;
		uint64_t first;
		int changed = 0;

		prog(fc, 8, "bitmaps", c + 1, fc->ncl);
		vcfs_cluster_geom(sb, c, &g);
		kind = g.kind;
		idx = g.index;
		first = g.first;
		count = g.count;
		if (fc->cbmp_bad[c]) {
			uint64_t seq = le64_get(b->h.seq);
			memset(b, 0, VCFS_BLK);
			b->h.seq = le64_mk(seq);
			b->h.type = le16_mk(VCFS_T_CBMP);
			b->kind = le32_mk(kind);
			b->index = le32_mk(idx);
			b->first = le64_mk(first);
			b->count = le32_mk(count);
			changed = 1;	/* the problem was reported in pass 4 */
		}
		for (uint32_t i = 0; i < count; i++) {
			uint64_t e = first + i;
			int want = want_bit(fc, kind, e), have = bit_get(b->bits, i);
			used += (uint32_t)want;
			if (want == have)
				continue;
			if (fc->cbmp_bad[c]) {
				if (want)
					bit_set(b->bits, i);
				continue;
			}
			if (have)
				leak++;
			else
				miss++;
		}
		if (leak && problem(fc, P_BMP_LEAK, "cluster %u: %u entries", c, leak)) {
			for (uint32_t i = 0; i < count; i++)
				if (!want_bit(fc, kind, first + i))
					bit_clr(b->bits, i);
			changed = 1;
		}
		if (miss && problem(fc, P_BMP_MISSING, "cluster %u: %u entries", c, miss)) {
			for (uint32_t i = 0; i < count; i++)
				if (want_bit(fc, kind, first + i))
					bit_set(b->bits, i);
			changed = 1;
		}
		/* free count from the bits as they now are */
		used = 0;
		for (uint32_t i = 0; i < count; i++)
			used += (uint32_t)bit_get(b->bits, i);
		if (le32_get(b->nfree) != count - used) {
			if (changed || fc->cbmp_bad[c] ||
			    problem(fc, P_BMP_NFREE, "cluster %u: %u, really %u", c,
				    le32_get(b->nfree), count - used)) {
				b->nfree = le32_mk(count - used);
				changed = 1;
			}
		}
		if (kind == VCFS_CK_SMALL)
			fc->st->small_blocks += used;
		else if (kind == VCFS_CK_LARGE)
			fc->st->data_blocks += used;
		if (changed && fix)
			wr_meta(fc, vcfs_cluster_bmp_blk(sb, c), b);
	}
	return fc->oper_err;
}

int vcfs_fsck(struct vcfs_disk *d, const struct vcfs_fsck_opts *o, struct vcfs_fsck_stats *st)
{
	struct vcfs_fsck_stats dummy;
	struct fsck fc = { .d = d, .o = o, .st = st ? st : &dummy };
	int rc;

	memset(fc.st, 0, sizeof(*fc.st));
	fc.out = o->out ? o->out : stdout;
	if (o->mode != VCFS_FSCK_CHECK && (vcfs_disk_info(d)->caps & VCFS_DISK_CAP_RDONLY)) {
		vcfs_err("the datastore is open read-only; use -n to check without repairing");
		return 8;
	}
	prog(&fc, 1, "volume header", 0, 1);
	rc = pass_super(&fc);
	if (rc)
		return 8;
	prog(&fc, 2, "heartbeats and journals", 0, 1);
	rc = pass_hosts(&fc);
	if (rc)
		return 8;
	prog(&fc, 3, "heartbeats and journals", 1, 1);
	fc.ncl = fc.sb.ninode_clusters + fc.sb.nsmall_clusters + fc.sb.nlarge_clusters;
	fc.cbmp = vcfs_disk_buf_alloc((size_t)fc.ncl * VCFS_BLK);
	fc.cbmp_bad = calloc(fc.ncl, 1);
	fc.small_seen = calloc(fc.sb.nsmall / 8 + 1, 1);
	fc.large_seen = calloc(fc.sb.nlarge / 8 + 1, 1);
	fc.ii = calloc(fc.sb.ninodes, sizeof(*fc.ii));
	if (!fc.cbmp || !fc.cbmp_bad || !fc.small_seen || !fc.large_seen || !fc.ii) {
		vcfs_err("fsck: out of memory for %llu inodes", (unsigned long long)fc.sb.ninodes);
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = pass_clusters(&fc)) || (rc = pass_inodes(&fc)) || (rc = pass_dirs(&fc)) ||
	    (rc = pass_links(&fc)) || (rc = pass_bitmaps(&fc)))
		goto out;
	if (o->mode != VCFS_FSCK_CHECK && fc.st->fixed)
		rc = vcfs_disk_flush(d);
out:
	free(fc.ii);
	free(fc.large_seen);
	free(fc.small_seen);
	free(fc.cbmp_bad);
	free(fc.cbmp);
	if (rc || fc.oper_err)
		return 8;
	if (fc.st->left)
		return 4;
	return fc.st->fixed ? 1 : 0;
}
