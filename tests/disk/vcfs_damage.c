/*
 * vcfs_damage.c - make precise damage in a vcfs image for fsck's image tests
 * (tests/fs_fsck.sh).  Each command breaks one structure the way a bug, a torn
 * write or a crashed host would, through the disk layer like everything else.
 *
 *   vcfs_damage IMAGE COMMAND ARGS...
 *     super-zero | backup-zero
 *     hb-stale SLOT NAME        slot left LIVE by a host that is gone
 *     hb-garbage SLOT           slot with a bad checksum
 *     lock-held BLOCK SLOT [GEN]  lock record held EXCL by SLOT (generation GEN, 1);
 *                               BLOCK may be ilock:INO or clock:CLUSTER
 *     lock-garbage BLOCK
 *     rlock-held INO SLOT GEN   a write lock on all of INO in its byte-range lock
 *                               table, held by SLOT at generation GEN (added to
 *                               what the table holds)
 *     rlock-flip INO            the byte-range lock table with a stale checksum
 *     inode-field INO FIELD VALUE   FIELD: nlink blocks mode parent dir_count
 *     inode-zero INO            the body reads as never written
 *     inode-flip INO            one byte changed, checksum left stale
 *     ptr INO INDEX VALUE       direct[INDEX] = VALUE (a block number)
 *     ptr-of INO INDEX          print direct[INDEX]
 *     ind-flip INO              damage the single indirect block
 *     dirent-field DIR NAME FIELD VALUE   FIELD: ino type hash
 *     dirent-add DIR NAME INO TYPE        an extra entry in NAME's bucket
 *     dirb-flip DIR BUCKET      damage a directory bucket block
 *     cbmp-bit KIND ENTRY 0|1   KIND: inode small large
 *     cbmp-nfree CLUSTER VALUE
 *     cbmp-flip CLUSTER
 *     journal-flip SLOT         damage a journal header (after a mount wrote it)
 *     grow-inprog               header says a grow (to twice the size) is under way
 *     cbmp-short N              the last large cluster's bitmap counts N entries
 *                               fewer (a grow that stopped before extending it)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "disk/disk.h"
#include "fs/mkfs.h"
#include "fs/ondisk.h"
#include "lock/rlock.h"

static struct vcfs_disk *d;
static struct vcfs_sb sb;
static uint8_t *blk;

static void die(const char *what)
{
	fprintf(stderr, "vcfs_damage: %s\n", what);
	exit(1);
}

static void rd(uint64_t b)
{
	int rc = vcfs_disk_read(d, b * VCFS_BLK, blk, VCFS_BLK);
	if (rc)
		die(vcfs_strerror(rc));
}

static void wr(uint64_t b)
{
	int rc = vcfs_disk_write(d, b * VCFS_BLK, blk, VCFS_BLK, VCFS_IO_FUA);
	if (rc)
		die(vcfs_strerror(rc));
}

/* Rewrite a metadata block as a host would: seq + 1, fresh crc. */
static void wr_sealed(uint64_t b)
{
	struct vcfs_mhdr *h = (void *)blk;

	h->seq = le64_mk(le64_get(h->seq) + 1);
	vcfs_mhdr_seal(blk, le16_get(h->type), b, sb.volgen);
	wr(b);
}

/* A number, or ilock:INO / clock:CLUSTER for the block of a lock record. */
static uint64_t num(const char *s)
{
	char *e;
	unsigned long long v;

	if (!strncmp(s, "ilock:", 6))
		return vcfs_inode_lock_blk(&sb, strtoull(s + 6, NULL, 0));
	if (!strncmp(s, "clock:", 6))
		return vcfs_cluster_lock_blk(&sb, (uint32_t)strtoull(s + 6, NULL, 0));
	v = strtoull(s, &e, 0);
	if (*e)
		die("bad number");
	return v;
}

/* Directory bucket block of NAME in DIR (direct blocks only: small test dirs). */
static uint64_t bucket_blk(uint64_t dir, const char *name, uint32_t *hash)
{
	struct vcfs_inode_disk *ino = (void *)blk;
	uint32_t h = vcfs_dir_hash(name, strlen(name)), L, p, b;

	rd(vcfs_inode_blk(&sb, dir));
	if (vcfs_mhdr_check(blk, VCFS_T_INODE, vcfs_inode_blk(&sb, dir), sb.volgen))
		die("directory inode is not valid");
	L = le32_get(ino->dir_level);
	p = le32_get(ino->dir_split);
	b = h & ((1u << L) - 1);
	if (b < p)
		b = h & ((2u << L) - 1);
	if (b >= VCFS_NDIRECT || !ino->direct[b].v)
		die("bucket is not a direct block");
	*hash = h;
	return VCFS_BP_ADDR(le64_get(ino->direct[b]));
}

static struct vcfs_dirent_disk *find_entry(const char *name)
{
	struct vcfs_dirb_disk *db = (void *)blk;
	uint32_t off = 0, len = (uint32_t)strlen(name);

	for (uint32_t i = 0; i < le16_get(db->nent); i++) {
		struct vcfs_dirent_disk *e = (void *)(db->data + off);
		if (e->namelen == len && !memcmp(e->name, name, len))
			return e;
		off += VCFS_DIRENT_LEN(e->namelen);
	}
	die("entry not found in its bucket block");
	return NULL;
}

static uint64_t cluster_entry(const char *kind, uint64_t e, uint32_t *bit)
{
	if (!strcmp(kind, "inode")) {
		*bit = (uint32_t)(e % sb.inode_cluster);
		return e / sb.inode_cluster;
	}
	if (!strcmp(kind, "small")) {
		*bit = (uint32_t)(e % sb.small_cluster);
		return sb.ninode_clusters + e / sb.small_cluster;
	}
	if (!strcmp(kind, "large")) {
		*bit = (uint32_t)(e % sb.large_cluster);
		return sb.ninode_clusters + sb.nsmall_clusters + e / sb.large_cluster;
	}
	die("kind is inode, small or large");
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd;
	int rc;

	if (argc < 3)
		die("usage: vcfs_damage IMAGE COMMAND ARGS... (see the source header)");
	rc = vcfs_disk_open(argv[1], NULL, &d);
	if (rc)
		die(vcfs_strerror(rc));
	rc = vcfs_read_super(d, &sb, NULL);
	if (rc)
		die(vcfs_strerror(rc));
	blk = vcfs_disk_buf_alloc(VCFS_BLK);
	cmd = argv[2];
	argv += 3;
	argc -= 3;

	if (!strcmp(cmd, "super-zero")) {
		memset(blk, 0, VCFS_BLK);
		wr(0);
	} else if (!strcmp(cmd, "backup-zero")) {
		memset(blk, 0, VCFS_BLK);
		wr(sb.volume_blocks - 1);
	} else if (!strcmp(cmd, "hb-stale") && argc == 2) {
		struct vcfs_hb_disk *h = (void *)blk;
		uint32_t s = (uint32_t)num(argv[0]);
		memset(blk, 0, VCFS_BLK);
		h->h.type = le16_mk(VCFS_T_HB);
		h->state = le32_mk(VCFS_HB_LIVE);
		h->slot = le32_mk(s);
		h->generation = le64_mk(3);	/* lock-held ... 3 matches it */
		h->counter = le64_mk(1234);
		h->io_timeout_ms = le32_mk(sb.io_timeout_ms);
		snprintf(h->host_name, sizeof(h->host_name), "%s", argv[1]);
		wr_sealed(vcfs_hb_blk(&sb, s));
	} else if (!strcmp(cmd, "hb-garbage") && argc == 1) {
		uint64_t b = vcfs_hb_blk(&sb, (uint32_t)num(argv[0]));
		struct vcfs_hb_disk *h = (void *)blk;
		memset(blk, 0, VCFS_BLK);
		h->h.type = le16_mk(VCFS_T_HB);
		h->state = le32_mk(VCFS_HB_LIVE);
		vcfs_mhdr_seal(blk, VCFS_T_HB, b, sb.volgen);
		blk[0x50] ^= 0xff;
		wr(b);
	} else if (!strcmp(cmd, "lock-held") && (argc == 2 || argc == 3)) {
		struct vcfs_lock_disk *l = (void *)blk;
		uint64_t b = num(argv[0]);
		memset(blk, 0, VCFS_BLK);
		l->h.type = le16_mk(VCFS_T_LOCK);
		l->mode = le32_mk(VCFS_LOCK_EXCL);
		l->nholders = le32_mk(1);
		for (int i = 0; i < VCFS_LOCK_HOLDERS; i++)
			l->holders[i].slot = le16_mk(VCFS_NO_SLOT);
		l->holders[0].slot = le16_mk((uint16_t)num(argv[1]));
		l->holders[0].gen = le32_mk(argc == 3 ? (uint32_t)num(argv[2]) : 1);
		wr_sealed(b);
	} else if (!strcmp(cmd, "lock-garbage") && argc == 1) {
		uint64_t b = num(argv[0]);
		memset(blk, 0, VCFS_BLK);
		((struct vcfs_lock_disk *)blk)->mode = le32_mk(VCFS_LOCK_EXCL);
		vcfs_mhdr_seal(blk, VCFS_T_LOCK, b, sb.volgen);
		blk[0x44] ^= 1;
		wr(b);
	} else if (!strcmp(cmd, "rlock-held") && argc == 3) {
		uint64_t b = vcfs_inode_lock_blk(&sb, num(argv[0]));
		struct vcfs_rlock_table t;
		struct vcfs_rlock *e;
		rd(b);
		if (vcfs_rlock_decode(blk + VCFS_RLOCK_OFF, b, sb.volgen, &t) < 0)
			die("the byte-range lock table is already damaged");
		if (t.n == VCFS_RLOCK_ENTRIES)
			die("the byte-range lock table is full");
		e = &t.e[t.n++];
		memset(e, 0, sizeof(*e));
		e->slot = (uint32_t)num(argv[1]);
		e->gen = (uint32_t)num(argv[2]);
		e->owner = 0x5eed;
		e->end = VCFS_RLOCK_EOF;
		e->pid = 4242;
		e->type = VCFS_RL_WRLCK;
		e->kind = VCFS_RL_POSIX;
		t.seq++;
		vcfs_rlock_encode(&t, blk + VCFS_RLOCK_OFF, b, sb.volgen, e->slot);
		wr(b);
	} else if (!strcmp(cmd, "rlock-flip") && argc == 1) {
		uint64_t b = vcfs_inode_lock_blk(&sb, num(argv[0]));
		struct vcfs_rlock_table t = { .n = 1 };
		rd(b);
		t.e[0].slot = 1;
		t.e[0].end = VCFS_RLOCK_EOF;
		t.e[0].type = VCFS_RL_RDLCK;
		vcfs_rlock_encode(&t, blk + VCFS_RLOCK_OFF, b, sb.volgen, 1);
		blk[VCFS_RLOCK_OFF + 0x50] ^= 1;	/* entry 0's start */
		wr(b);
	} else if (!strcmp(cmd, "inode-field") && argc == 3) {
		uint64_t b = vcfs_inode_blk(&sb, num(argv[0])), v = num(argv[2]);
		struct vcfs_inode_disk *ino = (void *)blk;
		rd(b);
		if (!strcmp(argv[1], "nlink")) ino->nlink = le32_mk((uint32_t)v);
		else if (!strcmp(argv[1], "blocks")) ino->blocks = le64_mk(v);
		else if (!strcmp(argv[1], "mode")) ino->mode = le32_mk((uint32_t)v);
		else if (!strcmp(argv[1], "parent")) ino->parent = le64_mk(v);
		else if (!strcmp(argv[1], "dir_count")) ino->dir_count = le64_mk(v);
		else die("field: nlink blocks mode parent dir_count");
		wr_sealed(b);
	} else if (!strcmp(cmd, "inode-zero") && argc == 1) {
		memset(blk, 0, VCFS_BLK);
		wr(vcfs_inode_blk(&sb, num(argv[0])));
	} else if (!strcmp(cmd, "inode-flip") && argc == 1) {
		uint64_t b = vcfs_inode_blk(&sb, num(argv[0]));
		rd(b);
		blk[0x48] ^= 0x10;	/* uid, crc left stale */
		wr(b);
	} else if (!strcmp(cmd, "ptr") && argc == 3) {
		uint64_t b = vcfs_inode_blk(&sb, num(argv[0]));
		struct vcfs_inode_disk *ino = (void *)blk;
		rd(b);
		ino->direct[num(argv[1])] = le64_mk(num(argv[2]));
		wr_sealed(b);
	} else if (!strcmp(cmd, "ptr-of") && argc == 2) {
		struct vcfs_inode_disk *ino = (void *)blk;
		rd(vcfs_inode_blk(&sb, num(argv[0])));
		printf("%llu\n", (unsigned long long)VCFS_BP_ADDR(le64_get(ino->direct[num(argv[1])])));
	} else if (!strcmp(cmd, "ind-flip") && argc == 1) {
		struct vcfs_inode_disk *ino = (void *)blk;
		uint64_t a;
		rd(vcfs_inode_blk(&sb, num(argv[0])));
		a = VCFS_BP_ADDR(le64_get(ino->ind));
		if (!a)
			die("inode has no indirect block");
		rd(a);
		blk[0x100] ^= 0x01;
		wr(a);
	} else if (!strcmp(cmd, "dirent-field") && argc == 4) {
		uint32_t h;
		uint64_t b = bucket_blk(num(argv[0]), argv[1], &h), v = num(argv[3]);
		struct vcfs_dirent_disk *e;
		rd(b);
		e = find_entry(argv[1]);
		if (!strcmp(argv[2], "ino")) e->ino = le64_mk(v);
		else if (!strcmp(argv[2], "type")) e->type = (uint8_t)v;
		else if (!strcmp(argv[2], "hash")) e->hash = le32_mk((uint32_t)v);
		else die("field: ino type hash");
		wr_sealed(b);
	} else if (!strcmp(cmd, "dirent-add") && argc == 4) {
		uint32_t h, len = (uint32_t)strlen(argv[1]);
		uint64_t b = bucket_blk(num(argv[0]), argv[1], &h);
		struct vcfs_dirb_disk *db = (void *)blk;
		struct vcfs_dirent_disk *e;
		rd(b);
		if (le16_get(db->used) + VCFS_DIRENT_LEN(len) > sizeof(db->data))
			die("bucket block is full");
		e = (void *)(db->data + le16_get(db->used));
		e->ino = le64_mk(num(argv[2]));
		e->hash = le32_mk(h);
		e->type = (uint8_t)num(argv[3]);
		e->namelen = (uint8_t)len;
		memcpy(e->name, argv[1], len);
		db->used = le16_mk((uint16_t)(le16_get(db->used) + VCFS_DIRENT_LEN(len)));
		db->nent = le16_mk((uint16_t)(le16_get(db->nent) + 1));
		wr_sealed(b);
	} else if (!strcmp(cmd, "dirb-flip") && argc == 2) {
		struct vcfs_inode_disk *ino = (void *)blk;
		uint64_t a;
		rd(vcfs_inode_blk(&sb, num(argv[0])));
		a = VCFS_BP_ADDR(le64_get(ino->direct[num(argv[1])]));
		if (!a)
			die("bucket is a hole");
		rd(a);
		blk[0x60] ^= 0x20;
		wr(a);
	} else if (!strcmp(cmd, "cbmp-bit") && argc == 3) {
		uint32_t bit;
		uint64_t c = cluster_entry(argv[0], num(argv[1]), &bit);
		struct vcfs_cbmp_disk *cb = (void *)blk;
		rd(vcfs_cluster_bmp_blk(&sb, (uint32_t)c));
		if (num(argv[2]))
			cb->bits[bit / 8] |= (uint8_t)(1u << (bit % 8));
		else
			cb->bits[bit / 8] &= (uint8_t)~(1u << (bit % 8));
		wr_sealed(vcfs_cluster_bmp_blk(&sb, (uint32_t)c));
	} else if (!strcmp(cmd, "cbmp-nfree") && argc == 2) {
		uint32_t c = (uint32_t)num(argv[0]);
		rd(vcfs_cluster_bmp_blk(&sb, c));
		((struct vcfs_cbmp_disk *)blk)->nfree = le32_mk((uint32_t)num(argv[1]));
		wr_sealed(vcfs_cluster_bmp_blk(&sb, c));
	} else if (!strcmp(cmd, "journal-flip") && argc == 1) {
		uint64_t b = vcfs_journal_blk(&sb, (uint32_t)num(argv[0]));
		rd(b);
		if (vcfs_mhdr_check(blk, VCFS_T_JHDR, b, sb.volgen))
			die("journal header not initialised (mount once first)");
		blk[0x58] ^= 0x01;
		wr(b);
	} else if (!strcmp(cmd, "cbmp-flip") && argc == 1) {
		uint32_t c = (uint32_t)num(argv[0]);
		rd(vcfs_cluster_bmp_blk(&sb, c));
		blk[0x90] ^= 0x04;
		wr(vcfs_cluster_bmp_blk(&sb, c));
	} else if (!strcmp(cmd, "grow-inprog") && argc == 0) {
		sb.feat_incompat |= VCFS_FEAT_INCOMPAT_RESIZE_INPROG;
		sb.grow_target = sb.volume_blocks * 2;
		if (vcfs_write_super(d, &sb))
			die("writing the header");
	} else if (!strcmp(cmd, "cbmp-short") && argc == 1) {
		uint32_t c = sb.ninode_clusters + sb.nsmall_clusters + sb.nlarge_clusters - 1;
		uint32_t n = (uint32_t)num(argv[0]);
		struct vcfs_cbmp_disk *cb = (void *)blk;
		rd(vcfs_cluster_bmp_blk(&sb, c));
		if (le32_get(cb->count) <= n || le32_get(cb->nfree) < n)
			die("the last large cluster is too small or too full");
		for (uint32_t i = le32_get(cb->count) - n; i < le32_get(cb->count); i++)
			if (cb->bits[i / 8] & (1u << (i % 8)))
				die("an entry to cut off is in use");
		cb->count = le32_mk(le32_get(cb->count) - n);
		cb->nfree = le32_mk(le32_get(cb->nfree) - n);
		wr_sealed(vcfs_cluster_bmp_blk(&sb, c));
	} else {
		die("unknown command or wrong arguments (see the source header)");
	}
	vcfs_disk_close(d);
	free(blk);
	return 0;
}
