/*
 * fsck.h - offline check and repair of a datastore (the library under
 * fsck.vcfs).  Independent of the fs core on purpose: it re-reads the raw
 * structures of fs/ondisk.h, so a bug in fs/ is caught here, not repeated.
 *
 * Passes, in order:
 *   1 volume header and its backup
 *   2 heartbeat slots: refuse to repair while any host heartbeats; a slot left
 *     LIVE or RECOVERING by a crashed host is cleaned (its journal replayed)
 *   3 journals: a committed transaction still pending is replayed
 *   4 resource cluster bitmaps are read; lock records of clusters and inodes
 *     still held by hosts that are gone are cleared
 *   5 inodes marked in use: header, mode, block maps (range, duplicates,
 *     indirect blocks), st_blocks
 *   6 directory tree from the root: buckets and overflow chains, entries
 *     (dangling, type, hash and bucket, duplicates), parents, entry counts;
 *     orphan directories of hosts that are gone: their inodes are freed
 *   7 link counts; inodes in no directory are reconnected to the root as
 *     "#<inode number>"
 *   8 bitmaps against what the maps use (leaks, missing bits, free counts)
 *
 * Every finding is a problem from the table in fsck.c: a code, a message and
 * the fix.  Exit status as fsck(8): 0 clean, 1 fixed, 4 left uncorrected,
 * 8 operational error.
 */
#ifndef VCFS_FSCK_H
#define VCFS_FSCK_H

#include <stdint.h>
#include <stdio.h>
#include "../disk/disk.h"

enum vcfs_fsck_mode {
	VCFS_FSCK_CHECK,	/* -n: change nothing */
	VCFS_FSCK_REPAIR,	/* -y: fix everything */
	VCFS_FSCK_PREEN,	/* -p: fix what is safe without a human */
};

struct vcfs_fsck_opts {
	enum vcfs_fsck_mode mode;
	int force_live;		/* check (never repair) although hosts are live */
	int skip_live_wait;	/* tests: do not watch heartbeats for D */
	FILE *out;		/* the problem table; NULL = stdout */
	int verbose;
	/* Progress (optional): pass number (1..VCFS_FSCK_PASSES), its name, and
	 * how far it is; called a few hundred times per pass at most.  Pass 0:
	 * a problem line is about to be printed (clear the progress line). */
	void (*progress)(void *arg, int pass, const char *name, uint64_t done,
			 uint64_t total);
	void *progress_arg;
};
#define VCFS_FSCK_PASSES 8

struct vcfs_fsck_stats {
	unsigned found, fixed, left;
	uint64_t inodes, dirs, files, data_blocks, small_blocks;
	unsigned journals_replayed;
};

/* Returns the fsck(8) exit status (0, 1, 4 or 8). */
int vcfs_fsck(struct vcfs_disk *d, const struct vcfs_fsck_opts *o, struct vcfs_fsck_stats *st);

/* Problem codes, for tests and documentation (fsck.vcfs -l lists them). */
void vcfs_fsck_list_problems(FILE *f);

#endif
