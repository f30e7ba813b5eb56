/*
 * dir.c - directories by linear hashing over 4 KiB buckets (ondisk.h).
 *
 * A directory of 2^L + p buckets: a name with hash h lives in bucket
 * h mod 2^L, or h mod 2^(L+1) when that is below p.  Bucket b is logical block
 * b of the directory's map (a hole is an empty bucket); its overflow blocks
 * are logical VCFS_DIR_OVF_BASE + k, chained by `next`.  When the entry count
 * passes VCFS_DIR_LOAD per bucket, bucket p is split into p and p + 2^L and
 * p advances (L + 1 when p reaches 2^L).  So a lookup reads one bucket block
 * (two with an overflow) whatever the size, and a directory grows one bucket
 * at a time with no rehash pause.  Directories never shrink their buckets;
 * an overflow block that empties is unlinked and freed.
 *
 * Entries are packed from data[0], 8-byte aligned lengths; removal compacts
 * the block.  "." and ".." are not stored.
 *
 * Every function runs inside an op: reads through op_read (a read-only op for
 * lockless lookups), changes marked dirty for the op's transaction.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "fs_int.h"
#include "../common/log.h"

#define DATA_MAX ((uint32_t)sizeof(((struct vcfs_dirb_disk *)0)->data))
#define MAX_LEVEL 21	/* 2^22 buckets would reach the overflow numbers */

static uint32_t bucket_of(uint32_t h, uint32_t level, uint32_t split)
{
	uint32_t b = h & ((1u << level) - 1);

	if (b < split)
		b = h & ((2u << level) - 1);
	return b;
}

int name_check(const char *name, size_t *len)
{
	size_t n = strnlen(name, VCFS_NAME_MAX + 1);

	if (!n)
		return -ENOENT;
	if (n > VCFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (memchr(name, '/', n))
		return -EINVAL;
	*len = n;
	return 0;
}

void dir_init(struct vcfs_inode_disk *di, uint64_t parent)
{
	di->parent = le64_mk(parent);
	di->dir_count = le64_mk(0);
	di->dir_level = le32_mk(0);
	di->dir_split = le32_mk(0);
	di->dir_novf = le32_mk(0);
}

static int dir_geom(const struct vcfs_inode_disk *dir, uint32_t *level, uint32_t *split)
{
	*level = le32_get(dir->dir_level);
	*split = le32_get(dir->dir_split);
	if (*level > MAX_LEVEL || *split >= (1u << *level))
		return -VCFS_ECORRUPT;
	return 0;
}

/* Read directory block at logical lb: *db NULL if it is a hole. */
static int read_dirb(struct vcfs_op *op, const struct vcfs_inode_disk *dir, uint64_t lb,
		     struct vcfs_dirb_disk **db, uint64_t *blk)
{
	uint64_t bp;
	void *p;
	int rc;

	*db = NULL;
	rc = bmap_get(op, NULL, dir, lb, &bp);
	if (rc || !bp)
		return rc;
	*blk = VCFS_BP_ADDR(bp);
	rc = op_read(op, *blk, VCFS_T_DIRB, &p);
	if (rc)
		return rc;
	*db = p;
	if (le16_get((*db)->used) > DATA_MAX || le16_get((*db)->nent) > DATA_MAX / 16)
		return VCFS_CORRUPT("directory block: entry area overflows", *blk);
	return 0;
}

/* Entry at off within used, validated. */
static struct vcfs_dirent_disk *entry_at(struct vcfs_dirb_disk *db, uint32_t off, uint64_t blk,
					 int *rc)
{
	struct vcfs_dirent_disk *e = (void *)(db->data + off);
	uint32_t used = le16_get(db->used);

	if (off + sizeof(*e) > used || !e->namelen || off + VCFS_DIRENT_LEN(e->namelen) > used) {
		*rc = VCFS_CORRUPT("malformed directory entry", blk);
		return NULL;
	}
	*rc = 0;
	return e;
}

int dir_find(struct vcfs_op *op, const struct vcfs_inode_disk *dir, const char *name,
	     size_t len, struct dir_hit *hit)
{
	uint32_t h = vcfs_dir_hash(name, len), level, split, hops = 0;
	uint64_t lb, blk = 0;
	struct vcfs_dirb_disk *db;
	int rc;

	if (dir_geom(dir, &level, &split))
		return VCFS_CORRUPT("directory hashing level or split pointer out of range",
				    le64_get(dir->h.blkno));
	lb = bucket_of(h, level, split);
	for (;;) {
		rc = read_dirb(op, dir, lb, &db, &blk);
		if (rc)
			return rc;
		if (!db)
			return -ENOENT;
		for (uint32_t off = 0; off < le16_get(db->used); ) {
			struct vcfs_dirent_disk *e = entry_at(db, off, blk, &rc);
			if (!e)
				return rc;
			if (le32_get(e->hash) == h && e->namelen == len &&
			    !memcmp(e->name, name, len)) {
				hit->ino = le64_get(e->ino);
				hit->type = e->type;
				hit->lb = lb;
				hit->blk = blk;
				hit->off = off;
				return 0;
			}
			off += VCFS_DIRENT_LEN(e->namelen);
		}
		lb = le64_get(db->next);
		if (!lb)
			return -ENOENT;
		if (lb < VCFS_DIR_OVF_BASE || ++hops > le32_get(dir->dir_novf) + 1)
			return VCFS_CORRUPT("directory overflow chain is broken", blk);
	}
}

/* A new, empty directory block for logical lb of bucket b. */
static int new_dirb(struct vcfs_op *op, struct vcfs_inode_disk *dir, uint64_t lb, uint32_t b,
		    struct vcfs_dirb_disk **out)
{
	uint64_t addr;
	void *p;
	int rc;

	rc = alloc_small(op, &addr);
	if (rc)
		return rc;
	rc = op_new(op, addr, VCFS_T_DIRB, &p);
	if (rc)
		return rc;
	*out = p;
	(*out)->bucket = le32_mk(b);
	rc = bmap_set(op, dir, lb, addr);
	if (rc)
		return rc;
	dir->blocks = le64_mk(le64_get(dir->blocks) + VCFS_BLK / 512);
	return 0;
}

/* Append a packed entry (elen bytes) to bucket b's chain, growing it. */
static int chain_append(struct vcfs_op *op, struct vcfs_inode_disk *dir, uint32_t b,
			const void *ent, uint32_t elen)
{
	struct vcfs_dirb_disk *db, *nb;
	uint64_t lb = b, blk = 0, nlb;
	uint32_t hops = 0;
	int rc;

	for (;;) {
		rc = read_dirb(op, dir, lb, &db, &blk);
		if (rc)
			return rc;
		if (!db) {
			rc = new_dirb(op, dir, lb, b, &db);
			if (rc)
				return rc;
			break;
		}
		if (le16_get(db->used) + elen <= DATA_MAX)
			break;
		nlb = le64_get(db->next);
		if (!nlb) {
			uint32_t k = le32_get(dir->dir_novf);
			nlb = VCFS_DIR_OVF_BASE + k;
			rc = new_dirb(op, dir, nlb, b, &nb);
			if (rc)
				return rc;
			dir->dir_novf = le32_mk(k + 1);
			db->next = le64_mk(nlb);
			op_dirty(op, db);
			db = nb;
			break;
		}
		if (nlb < VCFS_DIR_OVF_BASE || ++hops > le32_get(dir->dir_novf) + 1)
			return VCFS_CORRUPT("directory overflow chain is broken", blk);
		lb = nlb;
	}
	memcpy(db->data + le16_get(db->used), ent, elen);
	db->used = le16_mk((uint16_t)(le16_get(db->used) + elen));
	db->nent = le16_mk((uint16_t)(le16_get(db->nent) + 1));
	op_dirty(op, db);
	return 0;
}

/* Unlink and free empty overflow blocks of bucket b's chain. */
static int chain_trim(struct vcfs_op *op, struct vcfs_inode_disk *dir, uint32_t b)
{
	struct vcfs_dirb_disk *db, *prev = NULL;
	uint64_t lb = b, blk = 0;
	uint32_t hops = 0;
	int rc;

	for (;;) {
		rc = read_dirb(op, dir, lb, &db, &blk);
		if (rc || !db)
			return rc;
		uint64_t next = le64_get(db->next);
		if (prev && !le16_get(db->nent)) {
			prev->next = le64_mk(next);
			op_dirty(op, prev);
			rc = free_small(op, blk);
			if (rc)
				return rc;
			op_forget(op, blk);
			rc = bmap_set(op, dir, lb, 0);
			if (rc)
				return rc;
			dir->blocks = le64_mk(le64_get(dir->blocks) - VCFS_BLK / 512);
		} else {
			prev = db;
		}
		if (!next)
			return 0;
		if (next < VCFS_DIR_OVF_BASE || ++hops > le32_get(dir->dir_novf) + 1)
			return VCFS_CORRUPT("directory overflow chain is broken", blk);
		lb = next;
	}
}

/* Split bucket p into p and p + 2^L. */
static int dir_split(struct vcfs_op *op, struct vcfs_inode_disk *dir)
{
	uint32_t level, split, mask, src, hops = 0;
	uint64_t lb, blk = 0;
	struct vcfs_dirb_disk *db;
	uint8_t *keep = NULL;
	size_t nkeep = 0, cap = 0;
	int rc;

	if (dir_geom(dir, &level, &split))
		return VCFS_CORRUPT("directory hashing level or split pointer out of range",
				    le64_get(dir->h.blkno));
	if (level >= MAX_LEVEL)
		return 0;	/* as large as the format allows: chains just grow */
	mask = (2u << level) - 1;
	src = split;
	/* take every entry out of bucket `split`'s chain */
	for (lb = split; ; ) {
		rc = read_dirb(op, dir, lb, &db, &blk);
		if (rc)
			goto out;
		if (!db)
			break;
		uint32_t used = le16_get(db->used);
		if (nkeep + used > cap) {
			cap = (nkeep + used) * 2;
			uint8_t *n = realloc(keep, cap);
			if (!n) {
				rc = -ENOMEM;
				goto out;
			}
			keep = n;
		}
		memcpy(keep + nkeep, db->data, used);
		nkeep += used;
		memset(db->data, 0, used);
		db->used = le16_mk(0);
		db->nent = le16_mk(0);
		op_dirty(op, db);
		lb = le64_get(db->next);
		if (!lb)
			break;
		if (lb < VCFS_DIR_OVF_BASE || ++hops > le32_get(dir->dir_novf) + 1) {
			rc = VCFS_CORRUPT("directory overflow chain is broken", blk);
			goto out;
		}
	}
	/* the new geometry first: chain_append does not look at it, but any
	 * later lookup in this op must */
	split++;
	if (split == (1u << level)) {
		level++;
		split = 0;
	}
	dir->dir_level = le32_mk(level);
	dir->dir_split = le32_mk(split);
	op_dirty(op, dir);
	for (size_t off = 0; off < nkeep; ) {
		const struct vcfs_dirent_disk *e = (const void *)(keep + off);
		uint32_t elen = VCFS_DIRENT_LEN(e->namelen);
		uint32_t b = le32_get(e->hash) & mask;
		rc = chain_append(op, dir, b, e, elen);
		if (rc)
			goto out;
		off += elen;
	}
	rc = chain_trim(op, dir, src);
out:
	free(keep);
	return rc;
}

int dir_add(struct vcfs_op *op, struct vcfs_inode_disk *dir, const char *name, size_t len,
	    uint64_t ino, uint8_t type)
{
	uint8_t ent[VCFS_DIRENT_LEN(VCFS_NAME_MAX)];
	struct vcfs_dirent_disk *e = (void *)ent;
	uint32_t h = vcfs_dir_hash(name, len), level, split, elen = VCFS_DIRENT_LEN(len);
	uint64_t count, nb;
	int rc;

	if (dir_geom(dir, &level, &split))
		return VCFS_CORRUPT("directory hashing level or split pointer out of range",
				    le64_get(dir->h.blkno));
	memset(ent, 0, elen);
	e->ino = le64_mk(ino);
	e->hash = le32_mk(h);
	e->type = type;
	e->namelen = (uint8_t)len;
	memcpy(e->name, name, len);
	rc = chain_append(op, dir, bucket_of(h, level, split), ent, elen);
	if (rc)
		return rc;
	count = le64_get(dir->dir_count) + 1;
	dir->dir_count = le64_mk(count);
	op_dirty(op, dir);
	nb = (1ull << level) + split;
	if (count > (uint64_t)VCFS_DIR_LOAD * nb)
		rc = dir_split(op, dir);
	return rc;
}

int dir_remove(struct vcfs_op *op, struct vcfs_inode_disk *dir, const char *name, size_t len)
{
	struct dir_hit hit;
	struct vcfs_dirb_disk *db;
	uint32_t used, elen;
	void *p;
	int rc;

	rc = dir_find(op, dir, name, len, &hit);
	if (rc)
		return rc;
	rc = op_read(op, hit.blk, VCFS_T_DIRB, &p);
	if (rc)
		return rc;
	db = p;
	used = le16_get(db->used);
	elen = VCFS_DIRENT_LEN(len);
	memmove(db->data + hit.off, db->data + hit.off + elen, used - hit.off - elen);
	memset(db->data + used - elen, 0, elen);
	db->used = le16_mk((uint16_t)(used - elen));
	db->nent = le16_mk((uint16_t)(le16_get(db->nent) - 1));
	op_dirty(op, db);
	dir->dir_count = le64_mk(le64_get(dir->dir_count) - 1);
	op_dirty(op, dir);
	if (!le16_get(db->nent) && hit.lb >= VCFS_DIR_OVF_BASE)
		rc = chain_trim(op, dir, le32_get(db->bucket));
	return rc;
}

int dir_retarget(struct vcfs_op *op, struct vcfs_inode_disk *dir, const char *name,
		 size_t len, uint64_t ino, uint8_t type)
{
	struct dir_hit hit;
	struct vcfs_dirent_disk *e;
	void *p;
	int rc;

	rc = dir_find(op, dir, name, len, &hit);
	if (rc)
		return rc;
	rc = op_read(op, hit.blk, VCFS_T_DIRB, &p);
	if (rc)
		return rc;
	e = (void *)(((struct vcfs_dirb_disk *)p)->data + hit.off);
	e->ino = le64_mk(ino);
	e->type = type;
	op_dirty(op, p);
	op_dirty(op, dir);
	return 0;
}

int dir_free_blocks(struct vcfs_op *op, struct vcfs_inode_disk *dir)
{
	int rc = bmap_free(op, dir, 0, UINT64_MAX);

	if (rc == 1) {
		vcfs_err("directory: freeing its blocks needs more than one transaction");
		rc = -ENOSPC;
	}
	return rc;
}

uint64_t dir_nbuckets(const struct vcfs_inode_disk *dir)
{
	uint32_t level, split;

	if (dir_geom(dir, &level, &split))
		return 0;
	return (1ull << level) + split;
}

static uint32_t rev32(uint32_t x)
{
	x = (x >> 1 & 0x55555555u) | (x & 0x55555555u) << 1;
	x = (x >> 2 & 0x33333333u) | (x & 0x33333333u) << 2;
	x = (x >> 4 & 0x0f0f0f0fu) | (x & 0x0f0f0f0fu) << 4;
	x = (x >> 8 & 0x00ff00ffu) | (x & 0x00ff00ffu) << 8;
	return x >> 16 | x << 16;
}

struct rd_item {
	uint32_t rev;
	const struct vcfs_dirent_disk *e;
};

static int rd_item_cmp(const void *a, const void *b)
{
	const struct rd_item *x = a, *y = b;
	int c;

	if (x->rev != y->rev)
		return x->rev < y->rev ? -1 : 1;
	c = memcmp(x->e->name, y->e->name,
		   x->e->namelen < y->e->namelen ? x->e->namelen : y->e->namelen);
	return c ? c : (int)x->e->namelen - (int)y->e->namelen;
}

/*
 * readdir order and cookies.  Entries come in increasing order of their
 * bit-reversed hash r = rev32(hash) (names break ties).  In that order the
 * buckets of a linear-hashing directory are contiguous intervals -- bucket b
 * of depth d (d low hash bits) holds exactly the r whose top d bits are
 * b's low d bits reversed -- and a split cuts one interval in two halves
 * without moving anything else.  So a position in this order names the same
 * place before and after any split or removal: the cookie after an entry is
 * 3 + (r << 16 | k) with k its rank + 1 among entries of the same r, and the
 * next call resumes at the first entry past it, in whatever bucket holds r
 * now.  Every entry present throughout a listing is returned exactly once.
 */
int dir_iterate_from(struct vcfs_op *op, const struct vcfs_inode_disk *dir, uint64_t cookie,
		     dir_iter_fn fn, void *arg, uint64_t *next)
{
	uint64_t pos = cookie <= 3 ? 0 : (cookie - 3) >> 16, start, end, lb, blk = 0;
	uint32_t k = cookie <= 3 ? 0 : (uint32_t)((cookie - 3) & 0xffff);
	uint32_t level, split, b, d, n = 0, cap = 0, hops = 0, rank = 0;
	struct rd_item *v = NULL;
	struct vcfs_dirb_disk *db;
	int rc;

	*next = UINT64_MAX;
	if (pos >> 32)
		return 0;
	if (dir_geom(dir, &level, &split))
		return VCFS_CORRUPT("directory geometry", le64_get(dir->h.blkno));
	b = bucket_of(rev32((uint32_t)pos), level, split);
	d = (b < split || b >= (1u << level)) ? level + 1 : level;
	start = d ? (uint64_t)(rev32(b) >> (32 - d)) << (32 - d) : 0;
	end = start + (1ull << (32 - d));
	if (end >> 32 == 0)
		*next = 3 + (end << 16);
	for (lb = b;;) {
		rc = read_dirb(op, dir, lb, &db, &blk);
		if (rc || !db)
			break;
		for (uint32_t off = 0; off < le16_get(db->used); ) {
			struct vcfs_dirent_disk *e = entry_at(db, off, blk, &rc);
			if (!e)
				goto out;
			if (n == cap) {
				struct rd_item *nv;
				cap = cap ? 2 * cap : 128;
				nv = realloc(v, cap * sizeof(*v));
				if (!nv) {
					rc = -ENOMEM;
					goto out;
				}
				v = nv;
			}
			v[n].rev = rev32(le32_get(e->hash));
			v[n++].e = e;
			off += VCFS_DIRENT_LEN(e->namelen);
		}
		lb = le64_get(db->next);
		if (!lb)
			break;
		if (lb < VCFS_DIR_OVF_BASE || ++hops > le32_get(dir->dir_novf) + 1) {
			rc = VCFS_CORRUPT("directory overflow chain is broken", blk);
			goto out;
		}
	}
	if (rc)
		goto out;
	if (n > 1)	/* v is NULL for an empty chain: qsort's pointer must not be */
		qsort(v, n, sizeof(*v), rd_item_cmp);
	for (uint32_t i = 0; i < n; i++) {
		rank = i && v[i].rev == v[i - 1].rev ? rank + 1 : 0;
		if (v[i].rev < pos || (v[i].rev == pos && rank < k))
			continue;
		rc = fn(arg, v[i].e, 3 + ((uint64_t)v[i].rev << 16 | (rank + 1 < 0xffff ?
								     rank + 1 : 0xffff)));
		if (rc)
			break;
	}
out:
	free(v);
	return rc;
}

int dir_iterate_bucket(struct vcfs_op *op, const struct vcfs_inode_disk *dir, uint32_t b,
		       uint32_t idx, dir_iter_fn fn, void *arg)
{
	uint64_t lb = b, blk = 0;
	uint32_t n = 0, hops = 0;
	struct vcfs_dirb_disk *db;
	int rc;

	if (b >= dir_nbuckets(dir))
		return 0;
	for (;;) {
		rc = read_dirb(op, dir, lb, &db, &blk);
		if (rc || !db)
			return rc;
		for (uint32_t off = 0; off < le16_get(db->used); n++) {
			struct vcfs_dirent_disk *e = entry_at(db, off, blk, &rc);
			if (!e)
				return rc;
			if (n >= idx) {
				rc = fn(arg, e, 3 + ((uint64_t)b << 32 | (n + 1)));
				if (rc)
					return rc;
			}
			off += VCFS_DIRENT_LEN(e->namelen);
		}
		lb = le64_get(db->next);
		if (!lb)
			return 0;
		if (lb < VCFS_DIR_OVF_BASE || ++hops > le32_get(dir->dir_novf) + 1)
			return VCFS_CORRUPT("directory overflow chain is broken", blk);
	}
}
