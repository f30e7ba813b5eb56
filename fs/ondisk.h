/*
 * ondisk.h - the vcfs on-disk format, version 1.  docs/ondisk.md is the prose
 * version of this file; the two must agree (the offsets below are the truth).
 *
 * Written like ocfs2_fs.h: only fixed-width little-endian fields wrapped in
 * le16/le32/le64 (so a missed conversion is a compile error), a hex offset
 * comment every 16 bytes, explicit reserved space, _Static_assert on sizes.
 * All conversion lives in ondisk.c (vcfs_*_decode / vcfs_*_encode).
 *
 * Units.  The datastore is addressed in 4 KiB blocks ("blocks", VCFS_BLK) from
 * byte 0 whatever the backend's sector size.  File data of large files lives in
 * large blocks (VCFS default 1 MiB, mkfs -b); a large block is named by the
 * number of its first 4 KiB block.
 *
 * Every metadata block starts with struct vcfs_mhdr: signature, type, its own
 * block number, the volume generation and a per-block change sequence, and a
 * crc32c.  A block whose signature, number, generation or crc do not match is
 * "not initialised" (mkfs never zeroes what it can leave; the volume generation
 * is random per mkfs so a previous format's blocks never look valid) or, where
 * the allocation maps say it must be valid, corrupt.
 *
 * Record blocks (heartbeat slots and lock records) are changed only by
 * compare-and-write of one logical sector, so all they hold lives in their
 * first 512 bytes and their crc covers only those 512 bytes; the rest of their
 * 4 KiB block is never written.
 *
 * Layout, in blocks (see vcfs_layout_compute() in ondisk.c):
 *
 *   0                 volume header (VCFS_T_SUPER)
 *   1                 volume lock record (grow, fsck, mkfs in progress)
 *   2 .. 15           reserved
 *   hb_start          max_hosts heartbeat slots, one block each
 *   journal_start     max_hosts journals of journal_blocks blocks each
 *   cmeta_start       2 blocks per resource cluster: lock record, bitmap;
 *                     inode clusters, then small-block clusters, then
 *                     large-block clusters -- room for nlarge_clusters_max
 *                     of those, so `vcfs grow` can add clusters in place
 *                     (the records past nlarge_clusters are never read)
 *   inode_start       ninodes inode slots of 2 blocks: lock record, body
 *                     (inode number n is at inode_start + 2n; 0 is unused)
 *   small_start       nsmall small blocks (4 KiB): directories, indirect
 *                     blocks, long symlinks, files up to one large block
 *   large_start       nlarge large blocks (aligned to the large block size)
 *   volume_blocks - 1 backup of the volume header
 *
 * Grow (fs/grow.c): only the large-block region grows, into the space after
 * it; the backup header moves to the new last block.
 *
 * Lock order (deadlock freedom): within one operation a host takes lock
 * records by class, volume lock < inode locks < cluster locks, and within a
 * class in ascending block number.  (The cluster region lies below the inode
 * table on disk, so block order alone is not the class order.)  A lock that
 * would break this order -- a new inode's own lock, a lower cluster -- is only
 * tried, never waited for (fs/fs_int.h).
 */
#ifndef VCFS_ONDISK_H
#define VCFS_ONDISK_H

#include <stddef.h>
#include <stdint.h>

typedef struct { uint16_t v; } le16;
typedef struct { uint32_t v; } le32;
typedef struct { uint64_t v; } le64;

/* The build refuses big-endian hosts for now; the wrappers keep the door open. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vcfs: big-endian hosts need byte swaps in ondisk.c"
#endif
static inline uint16_t le16_get(le16 x) { return x.v; }
static inline uint32_t le32_get(le32 x) { return x.v; }
static inline uint64_t le64_get(le64 x) { return x.v; }
static inline le16 le16_mk(uint16_t v) { le16 x = { v }; return x; }
static inline le32 le32_mk(uint32_t v) { le32 x = { v }; return x; }
static inline le64 le64_mk(uint64_t v) { le64 x = { v }; return x; }

#define VCFS_BLK		4096u
#define VCFS_BLK_SHIFT		12
#define VCFS_RECORD_SIZE	512u	/* what a CAS covers on a 512-byte-sector disk */
#define VCFS_MAGIC		0x53464356u	/* "VCFS" as bytes on disk */
#define VCFS_FORMAT_VERSION	1

#define VCFS_SUPER_BLKNO	0
#define VCFS_VOLLOCK_BLKNO	1
#define VCFS_HB_START		16

#define VCFS_MAX_HOSTS		256	/* the format's limit (-H) */
#define VCFS_DEFAULT_HOSTS	64
#define VCFS_DEFAULT_LBLOCK	(1u << 20)
#define VCFS_DEFAULT_IO_TIMEOUT_MS 1000
#define VCFS_DEFAULT_GROW_MAX	(64ull << 40)	/* default grow limit (mkfs -G) */
#define VCFS_MAX_LARGE_CLUSTERS	(1u << 20)	/* cluster records for large blocks */
#define VCFS_MAX_VOLUME_BLOCKS	(1ull << 40)	/* 4 PiB: byte offsets never overflow */
#define VCFS_DEFAULT_JOURNAL_BLOCKS 256	/* 1 MiB per host */
#define VCFS_MIN_JOURNAL_BLOCKS	64

/* Block types (vcfs_mhdr.type). */
enum vcfs_btype {
	VCFS_T_SUPER	= 1,	/* volume header and its backup */
	VCFS_T_LOCK	= 2,	/* lock record (record block) */
	VCFS_T_HB	= 3,	/* heartbeat slot (record block) */
	VCFS_T_JHDR	= 4,	/* journal header */
	VCFS_T_JDESC	= 5,	/* journal transaction descriptor */
	VCFS_T_JCOMMIT	= 6,	/* journal commit record */
	VCFS_T_CBMP	= 7,	/* resource cluster descriptor + bitmap */
	VCFS_T_INODE	= 8,	/* inode body */
	VCFS_T_IND	= 9,	/* indirect block of a block map */
	VCFS_T_DIRB	= 10,	/* directory bucket or overflow block */
	VCFS_T_RLOCK	= 11,	/* byte-range lock table (record, in a lock block) */
};

/* ---- the header of every metadata block (64 bytes) ---- */
struct vcfs_mhdr {
/*00*/	le32	magic;		/* VCFS_MAGIC */
	le16	type;		/* enum vcfs_btype */
	le16	fmt;		/* VCFS_FORMAT_VERSION */
	le64	blkno;		/* this block's own number */
/*10*/	le64	volgen;		/* volume generation (random per mkfs) */
	le64	seq;		/* change sequence of this block: +1 per change;
				 * journal replay writes a copy only over an
				 * older seq, never over newer metadata */
/*20*/	le32	crc;		/* crc32c of the block (record blocks: of the
				 * first 512 bytes) with this field zero */
	le32	writer;		/* heartbeat slot of the last writer (debugging) */
	le64	reserved0[3];
/*40*/
};
_Static_assert(sizeof(struct vcfs_mhdr) == 64, "mhdr");

/* ---- volume header: block 0, backup in the last block ---- */
#define VCFS_FEAT_INCOMPAT_RESIZE_INPROG (1ull << 0)	/* grow interrupted: fsck */
#define VCFS_FEAT_INCOMPAT_SUPP	VCFS_FEAT_INCOMPAT_RESIZE_INPROG
#define VCFS_FEAT_RO_COMPAT_SUPP 0ull
#define VCFS_FEAT_COMPAT_SUPP	0ull
#define VCFS_LABEL_MAX		63

struct vcfs_super_disk {
	struct vcfs_mhdr h;
/*40*/	uint8_t	uuid[16];
/*50*/	char	label[64];	/* NUL-terminated */
/*90*/	le32	blk_size;	/* VCFS_BLK */
	le32	lblock_size;	/* large block size in bytes (power of 2) */
	le32	max_hosts;	/* heartbeat slots and journals */
	le32	io_timeout_ms;	/* T: every timeout derives from it */
/*A0*/	le32	journal_blocks;	/* per host, including its header */
	le32	inode_cluster;	/* inodes per inode cluster */
	le32	small_cluster;	/* small blocks per small-block cluster */
	le32	large_cluster;	/* large blocks per large-block cluster */
/*B0*/	le64	feat_compat;
	le64	feat_incompat;
/*C0*/	le64	feat_ro_compat;
	le64	volume_blocks;	/* size of the datastore in blocks */
/*D0*/	le64	hb_start;
	le64	journal_start;
/*E0*/	le64	cmeta_start;
	le32	ninode_clusters;
	le32	nsmall_clusters;
/*F0*/	le32	nlarge_clusters;
	le32	pad0;
	le64	inode_start;
/*100*/	le64	ninodes;
	le64	small_start;
/*110*/	le64	nsmall;
	le64	large_start;
/*120*/	le64	nlarge;
	le64	root_ino;	/* VCFS_ROOT_INO */
/*130*/	le64	mkfs_time;	/* seconds since the epoch */
	le64	grow_time;
/*140*/	le32	nlarge_clusters_max;	/* cluster records reserved for large
				 * clusters (grow adds clusters up to it);
				 * 0 in volumes made before: nlarge_clusters */
	le32	pad1;
/*148*/	le64	grow_target;	/* volume_blocks a grow in progress aims at */
/*150*/	uint8_t	reserved[4096 - 0x150];
};
_Static_assert(sizeof(struct vcfs_super_disk) == VCFS_BLK, "super");
_Static_assert(offsetof(struct vcfs_super_disk, ninodes) == 0x100, "super ninodes");

/* ---- heartbeat slot (record block): hb_start + slot ---- */
enum vcfs_hb_state {
	VCFS_HB_FREE = 0,	/* nobody; also what an uninitialised slot means */
	VCFS_HB_LIVE = 1,	/* a host renews counter every R */
	VCFS_HB_RECOVERING = 2,	/* a survivor (recoverer) replays its journal */
};

struct vcfs_hb_disk {
	struct vcfs_mhdr h;
/*40*/	le32	state;		/* enum vcfs_hb_state */
	le32	slot;
	le64	generation;	/* +1 at every claim and every recovery; lock
				 * holders record it, so bumping it releases
				 * every lock the slot held at once */
/*50*/	le64	counter;	/* +1 per renewal while LIVE */
	le32	recoverer;	/* slot replaying this one (RECOVERING) */
	le32	io_timeout_ms;	/* what the host uses (must equal the header) */
/*60*/	le64	recoverer_gen;	/* recoverer's generation when it claimed */
	le64	mount_time;	/* seconds since the epoch, informational */
/*70*/	uint8_t	host_uuid[16];	/* random per mount */
/*80*/	char	host_name[64];	/* NUL-terminated */
/*C0*/	uint8_t	reserved[VCFS_RECORD_SIZE - 0xC0];
/*200*/	uint8_t	unused[VCFS_BLK - VCFS_RECORD_SIZE];	/* never written */
};
_Static_assert(sizeof(struct vcfs_hb_disk) == VCFS_BLK, "hb");

/* ---- lock record (record block) ---- */
enum vcfs_lock_mode {
	VCFS_LOCK_FREE = 0,
	VCFS_LOCK_EXCL = 1,	/* one holder */
	VCFS_LOCK_RO = 2,	/* many readers */
	VCFS_LOCK_MW = 3,	/* many writers, by explicit choice */
};
#define VCFS_LOCK_HOLDERS 32
#define VCFS_NO_SLOT	0xffffu

struct vcfs_lock_holder {
	le16	slot;		/* VCFS_NO_SLOT: empty entry */
	le16	flags;		/* VCFS_LH_* */
	le32	gen;		/* low 32 bits of the slot's generation when taken */
};

/* holder entry flags */
#define VCFS_LH_CLAIM	(1u << 0)	/* MW: this holder changes the object's
					 * map now (at most one entry has it) */

struct vcfs_lock_disk {
	struct vcfs_mhdr h;	/* h.seq: +1 at every acquire and release */
/*40*/	le32	mode;		/* enum vcfs_lock_mode */
	le32	nholders;
	le64	obj_version;	/* +1 whenever the protected object changes:
				 * a host may keep a cache of the object while
				 * this is unchanged */
/*50*/	le64	acquired_seq;	/* informational: h.seq when last acquired */
	le64	claim_seq;	/* h.seq of the CAS that set VCFS_LH_CLAIM */
/*60*/	struct vcfs_lock_holder holders[VCFS_LOCK_HOLDERS];
/*160*/	uint8_t	reserved[VCFS_RECORD_SIZE - 0x160];
/*200*/	uint8_t	unused[VCFS_BLK - VCFS_RECORD_SIZE];	/* inode lock blocks: bytes
				 * 0x200-0x3FF are the byte-range lock table
				 * (struct vcfs_rlock_disk); the rest is never
				 * written */
};
_Static_assert(sizeof(struct vcfs_lock_disk) == VCFS_BLK, "lock");
_Static_assert(offsetof(struct vcfs_lock_disk, holders) == 0x60, "lock holders");

/* ---- byte-range lock table: bytes 512..1023 of an inode's lock block ----
 *
 * fcntl (POSIX and OFD) and flock locks of every host on one inode.  A record
 * of its own (h.type VCFS_T_RLOCK, h.blkno = the lock block's number, crc over
 * its 512 bytes) in the second 512-byte sector of the inode's lock record
 * block, which struct vcfs_lock_disk leaves unused: changed only by
 * vcfs_disk_cas() of the logical sector holding it (on a 4096-byte-sector
 * disk that sector also holds the lock record; both sides then rewrite the
 * other's bytes unchanged and a concurrent change just miscompares).  Never
 * initialised means empty.  Protocol in lock/rlock.h.
 */
#define VCFS_RLOCK_OFF		VCFS_RECORD_SIZE	/* byte offset in the lock block */
#define VCFS_RLOCK_ENTRIES	11
#define VCFS_RLOCK_EOF		UINT64_MAX		/* end of a lock "to EOF" */

enum vcfs_rlock_type { VCFS_RL_UNLCK = 0, VCFS_RL_RDLCK = 1, VCFS_RL_WRLCK = 2 };
enum vcfs_rlock_kind { VCFS_RL_POSIX = 0, VCFS_RL_FLOCK = 1 };

struct vcfs_rlock_ent {
/*00*/	le16	slot;		/* holder's heartbeat slot; VCFS_NO_SLOT: empty */
	uint8_t	type;		/* enum vcfs_rlock_type (RDLCK or WRLCK) */
	uint8_t	kind;		/* enum vcfs_rlock_kind: fcntl (POSIX + OFD), flock */
	le32	gen;		/* low 32 bits of the slot's generation */
/*08*/	le64	owner;		/* the kernel's lock owner id on that host */
/*10*/	le64	start;		/* first byte */
/*18*/	le64	end;		/* last byte, inclusive; VCFS_RLOCK_EOF: to EOF */
/*20*/	le32	pid;		/* locking process on that host (informational) */
	le32	reserved;
/*28*/
};
_Static_assert(sizeof(struct vcfs_rlock_ent) == 40, "rlock entry");

struct vcfs_rlock_disk {
	struct vcfs_mhdr h;	/* h.seq: +1 at every change */
/*40*/	struct vcfs_rlock_ent e[VCFS_RLOCK_ENTRIES];	/* used ones first */
/*1F8*/	le32	nent;		/* entries in use */
	le32	reserved;
/*200*/
};
_Static_assert(sizeof(struct vcfs_rlock_disk) == VCFS_RECORD_SIZE, "rlock");
_Static_assert(offsetof(struct vcfs_rlock_disk, nent) == 0x1F8, "rlock nent");
_Static_assert(VCFS_RLOCK_OFF + sizeof(struct vcfs_rlock_disk) <= VCFS_BLK, "rlock fits");

/* ---- journal (per host slot: journal_start + slot * journal_blocks) ----
 *
 * Block 0 is the journal header; blocks 1 .. journal_blocks - 1 are a
 * circular log of records, each one contiguous write: descriptor, the new
 * images of its blocks, commit record.  A record never straddles the end of
 * the log: one that does not fit before it starts at block 1.  The records
 * live after a checkpoint are tseq ckpt_seq + 1, + 2, ... of the header's
 * jgen, the first at block `tail` (or at block 1: a writer that found the log
 * empty may restart there), each next one right after its predecessor (or at
 * block 1).  Replay applies them in order while each is found and verifies.
 */
struct vcfs_jhdr_disk {
	struct vcfs_mhdr h;
/*40*/	le32	slot;
	le32	pad0;
	le64	jgen;		/* +1 at every mount of the slot and every replay */
/*50*/	le64	ckpt_seq;	/* every transaction up to this one is home */
	le64	tail;		/* log block of record ckpt_seq + 1 (0: 1) */
/*60*/	uint8_t	reserved[VCFS_BLK - 0x60];
};
_Static_assert(sizeof(struct vcfs_jhdr_disk) == VCFS_BLK, "jhdr");

#define VCFS_JDESC_MAX ((VCFS_BLK - 0x60) / 8)	/* 500 blocks per transaction */

struct vcfs_jdesc_disk {
	struct vcfs_mhdr h;	/* h.seq = transaction seq (not a block version) */
/*40*/	le64	jgen;
	le32	nblocks;
	le32	slot;
/*50*/	le64	tseq;		/* transaction sequence */
	le64	reserved0;
/*60*/	le64	targets[VCFS_JDESC_MAX];	/* home block of each image */
};
_Static_assert(sizeof(struct vcfs_jdesc_disk) == VCFS_BLK, "jdesc");

struct vcfs_jcommit_disk {
	struct vcfs_mhdr h;
/*40*/	le64	jgen;
	le64	tseq;
/*50*/	le32	nblocks;
	le32	data_crc;	/* crc32c over the descriptor and every image */
	le64	reserved0;
/*60*/	uint8_t	reserved[VCFS_BLK - 0x60];
};
_Static_assert(sizeof(struct vcfs_jcommit_disk) == VCFS_BLK, "jcommit");

/* ---- resource cluster: cmeta_start + 2 * cluster_index: lock, then this ---- */
enum vcfs_cluster_kind { VCFS_CK_INODE = 1, VCFS_CK_SMALL = 2, VCFS_CK_LARGE = 3 };
#define VCFS_CBMP_BITS ((VCFS_BLK - 0x80) * 8)	/* 31744 entries at most */

struct vcfs_cbmp_disk {
	struct vcfs_mhdr h;
/*40*/	le32	kind;		/* enum vcfs_cluster_kind */
	le32	index;		/* index of the cluster within its kind */
	le64	first;		/* first entry: inode number, small block index
				 * or large block index */
/*50*/	le32	count;		/* entries in this cluster */
	le32	nfree;		/* clear bits among count */
	le64	reserved0[5];
/*80*/	uint8_t	bits[VCFS_BLK - 0x80];	/* bit i set: entry first+i in use */
};
_Static_assert(sizeof(struct vcfs_cbmp_disk) == VCFS_BLK, "cbmp");

/* ---- inode: inode_start + 2 * ino: lock record, then this body ---- */
#define VCFS_ROOT_INO		1
#define VCFS_ORPHAN_INO(slot)	(16 + (uint64_t)(slot))	/* per-host orphan dirs */
#define VCFS_FIRST_FREE_INO(max_hosts) (16 + (uint64_t)(max_hosts))
#define VCFS_NDIRECT		256
#define VCFS_NINDIRECT		((VCFS_BLK - 64) / 8)	/* 504 per indirect block */
#define VCFS_INLINE_MAX		736	/* short symlink targets */
#define VCFS_XATTR_MAX		1024	/* bytes of packed extended attributes */

/* Block pointer: the 4 KiB block number of a small block or of the first block
 * of a large block; 0 is a hole. */
#define VCFS_BP_UNWRITTEN (1ull << 63)	/* allocated, reads as zeros (fallocate) */
#define VCFS_BP_ADDR(bp)  ((bp) & ~VCFS_BP_UNWRITTEN)

#define VCFS_IF_LARGE	(1u << 0)	/* map points to large blocks, else small */
#define VCFS_IF_ORPHAN	(1u << 1)	/* unlinked while open; listed in the
					 * owner's orphan directory */
#define VCFS_IF_SYSTEM	(1u << 2)	/* orphan directories and the like */
#define VCFS_IF_MULTIWRITER (1u << 3)	/* every open shares the file with other
					 * hosts' opens (user.vcfs.multiwriter) */

struct vcfs_ts_disk { le64 sec; le32 nsec; le32 pad; };

struct vcfs_inode_disk {
	struct vcfs_mhdr h;
/*40*/	le32	mode;		/* S_IF* | permission bits */
	le32	uid;
	le32	gid;
	le32	nlink;
/*50*/	le64	size;
	le64	blocks;		/* 512-byte units allocated (stat st_blocks) */
/*60*/	struct vcfs_ts_disk atime;
/*70*/	struct vcfs_ts_disk mtime;
/*80*/	struct vcfs_ts_disk ctime;
/*90*/	struct vcfs_ts_disk crtime;
/*A0*/	le64	generation;	/* +1 each time this number is reused */
	le64	rdev;
/*B0*/	le32	flags;		/* VCFS_IF_* */
	le32	xattr_len;	/* bytes used in xattr[] */
	le32	orphan_slot;	/* with VCFS_IF_ORPHAN */
	le32	link_len;	/* symlinks: target length */
/*C0*/	le64	parent;		/* directories: inode of ".." */
	le64	dir_count;	/* directories: entries (without . and ..) */
/*D0*/	le32	dir_level;	/* directories: linear hashing level L */
	le32	dir_split;	/* and split pointer p: 2^L + p buckets */
	le32	dir_novf;	/* overflow blocks allocated so far */
	le32	pad0;
/*E0*/	le64	reserved0[4];
/*100*/	le64	direct[VCFS_NDIRECT];
/*900*/	le64	ind;		/* single, double and triple indirect */
	le64	dind;
/*910*/	le64	tind;
	le64	reserved1;
/*920*/	uint8_t	inline_data[VCFS_INLINE_MAX];	/* short symlink target */
/*C00*/	uint8_t	xattr[VCFS_XATTR_MAX];	/* packed: u8 namelen, le16 vallen,
					 * name, value; namelen 0 ends */
};
_Static_assert(sizeof(struct vcfs_inode_disk) == VCFS_BLK, "inode");
_Static_assert(offsetof(struct vcfs_inode_disk, direct) == 0x100, "inode direct");
_Static_assert(offsetof(struct vcfs_inode_disk, inline_data) == 0x920, "inode inline");
_Static_assert(offsetof(struct vcfs_inode_disk, xattr) == 0xC00, "inode xattr");

struct vcfs_ind_disk {
	struct vcfs_mhdr h;
/*40*/	le64	ptr[VCFS_NINDIRECT];
};
_Static_assert(sizeof(struct vcfs_ind_disk) == VCFS_BLK, "ind");

/* ---- directories: linear hashing over 4 KiB buckets ----
 * Bucket b lives at logical block b of the directory; overflow block k at
 * logical block VCFS_DIR_OVF_BASE + k.  A name hashes with vcfs_dir_hash();
 * bucket = h mod 2^L, or h mod 2^(L+1) when that is below the split pointer.
 * When dir_count exceeds VCFS_DIR_LOAD * buckets, bucket p splits.
 */
#define VCFS_DIR_OVF_BASE	(1ull << 22)
#define VCFS_DIR_LOAD		64
#define VCFS_NAME_MAX		255

struct vcfs_dirb_disk {
	struct vcfs_mhdr h;
/*40*/	le64	next;		/* logical block of the next overflow, 0 none */
	le32	bucket;		/* bucket this chain belongs to */
	le16	nent;
	le16	used;		/* bytes of data[] in use */
/*50*/	uint8_t	data[VCFS_BLK - 0x50];	/* packed entries, see below */
};
_Static_assert(sizeof(struct vcfs_dirb_disk) == VCFS_BLK, "dirb");

/* One entry in vcfs_dirb_disk.data, 8-byte aligned length. */
struct vcfs_dirent_disk {
/*00*/	le64	ino;
	le32	hash;
	uint8_t	type;		/* DT_* */
	uint8_t	namelen;
	char	name[];		/* not NUL-terminated */
};
#define VCFS_DIRENT_LEN(namelen) ((sizeof(struct vcfs_dirent_disk) + (namelen) + 7) & ~7u)

/* ---- host-endian views and helpers (ondisk.c) ---- */

/* The decoded volume header; everything else reads geometry from here. */
struct vcfs_sb {
	uint8_t uuid[16];
	char label[64];
	uint64_t volgen;
	uint32_t lblock_size, lblock_blocks;	/* bytes; 4 KiB blocks per large block */
	uint32_t max_hosts, io_timeout_ms, journal_blocks;
	uint32_t inode_cluster, small_cluster, large_cluster;
	uint32_t ninode_clusters, nsmall_clusters, nlarge_clusters;
	uint32_t nlarge_clusters_max;		/* >= nlarge_clusters: room to grow */
	uint64_t grow_target;			/* with VCFS_FEAT_INCOMPAT_RESIZE_INPROG */
	uint64_t feat_compat, feat_incompat, feat_ro_compat;
	uint64_t volume_blocks, hb_start, journal_start, cmeta_start;
	uint64_t inode_start, ninodes, small_start, nsmall, large_start, nlarge;
	uint64_t root_ino, mkfs_time, grow_time, seq;
};

/* What mkfs asks for; zero fields take defaults. */
struct vcfs_mkfs_params {
	uint64_t volume_bytes;
	uint32_t max_hosts, lblock_size, io_timeout_ms, journal_blocks;
	uint64_t inodes;		/* 0 = one per 4 MiB, at least 4096 */
	uint64_t grow_limit_bytes;	/* largest size `vcfs grow` may reach;
					 * 0 = 16 x volume_bytes, at most 64 TiB
					 * (never below volume_bytes) */
	const char *label;
	const uint8_t *uuid;		/* NULL = random */
};

/* Compute a layout (fills every geometry field of sb, volgen random unless set). */
int vcfs_layout_compute(const struct vcfs_mkfs_params *p, struct vcfs_sb *sb);

/* Block address helpers. */
static inline uint64_t vcfs_hb_blk(const struct vcfs_sb *sb, uint32_t slot)
{ return sb->hb_start + slot; }
static inline uint64_t vcfs_journal_blk(const struct vcfs_sb *sb, uint32_t slot)
{ return sb->journal_start + (uint64_t)slot * sb->journal_blocks; }
/* Cluster c counts across kinds: inode clusters, then small, then large. */
static inline uint64_t vcfs_cluster_lock_blk(const struct vcfs_sb *sb, uint32_t c)
{ return sb->cmeta_start + 2ull * c; }
static inline uint64_t vcfs_cluster_bmp_blk(const struct vcfs_sb *sb, uint32_t c)
{ return sb->cmeta_start + 2ull * c + 1; }
static inline uint64_t vcfs_inode_lock_blk(const struct vcfs_sb *sb, uint64_t ino)
{ return sb->inode_start + 2 * ino; }
static inline uint64_t vcfs_inode_blk(const struct vcfs_sb *sb, uint64_t ino)
{ return sb->inode_start + 2 * ino + 1; }
static inline uint64_t vcfs_small_blk(const struct vcfs_sb *sb, uint64_t i)
{ return sb->small_start + i; }
static inline uint64_t vcfs_large_blk(const struct vcfs_sb *sb, uint64_t i)
{ return sb->large_start + i * sb->lblock_blocks; }

/* Largest volume size in bytes that `vcfs grow` can reach. */
static inline uint64_t vcfs_grow_limit(const struct vcfs_sb *sb)
{ return (sb->large_start + (uint64_t)sb->nlarge_clusters_max * sb->large_cluster *
	  sb->lblock_blocks + 1) * 4096; }

/* Which entries global cluster c (inode, then small, then large clusters) covers. */
struct vcfs_cluster_geom { uint32_t kind, index, count; uint64_t first; };
void vcfs_cluster_geom(const struct vcfs_sb *sb, uint32_t c, struct vcfs_cluster_geom *g);

/* Encode sb into a 4 KiB header block (sealed with crc) and back. */
void vcfs_super_encode(const struct vcfs_sb *sb, void *blk, uint64_t blkno);
/* -VCFS_ENOTVCFS (no signature), -VCFS_ECORRUPT (bad crc / geometry),
 * -VCFS_EFEATURE (unknown incompat bits). */
int vcfs_super_decode(const void *blk, uint64_t blkno, struct vcfs_sb *sb);

/* Size the crc of a block of this type covers. */
size_t vcfs_crc_len(enum vcfs_btype t);
/* Fill magic/type/fmt/blkno/volgen (leaves seq, writer) and compute the crc. */
void vcfs_mhdr_seal(void *blk, enum vcfs_btype t, uint64_t blkno, uint64_t volgen);
/* Recompute the crc only (after changing a sealed block). */
void vcfs_mhdr_reseal(void *blk);
/*
 * Check a metadata block read from blkno: 0 if valid and of type t;
 * 1 if it is not initialised for this volume (other signature / generation /
 * number, or all zeros); -VCFS_ECORRUPT if it has our signature, number and
 * generation but a bad crc or type (logged with the block number).
 */
int vcfs_mhdr_check(const void *blk, enum vcfs_btype t, uint64_t blkno, uint64_t volgen);
static inline uint64_t vcfs_mhdr_seq(const void *blk)
{ return le64_get(((const struct vcfs_mhdr *)blk)->seq); }
static inline void vcfs_mhdr_set_seq(void *blk, uint64_t seq)
{ ((struct vcfs_mhdr *)blk)->seq = le64_mk(seq); }

/* Directory name hash (never 0 .. no meaning; stable across versions). */
uint32_t vcfs_dir_hash(const char *name, size_t len);

/* Names for messages ("inode", "lock", ...). */
const char *vcfs_btype_name(enum vcfs_btype t);

#endif
