/*
 * mkfs.h - formatting a datastore (the library under mkfs.vcfs).
 *
 * vcfs_mkfs() writes only what cannot be lazily initialised: the volume header
 * and its backup, one bitmap block per resource cluster, and the root inode.
 * Heartbeat slots, journals, lock records, other inodes and the per-host
 * orphan directories are left as they are: the new volume generation makes
 * whatever they hold read as "not initialised", which means free / empty.  A
 * 1 TiB datastore with 64 hosts is formatted with about 4 MiB of writes.
 *
 * Order (crash-safe): the old header is invalidated first (FUA), the cluster
 * bitmaps and the root inode are written, then the backup header, a flush, and
 * the primary header last with FUA.  A datastore whose mkfs was interrupted has
 * no valid header at block 0 and is refused as "not a vcfs datastore".
 */
#ifndef VCFS_MKFS_H
#define VCFS_MKFS_H

#include <stdint.h>
#include "../disk/disk.h"
#include "ondisk.h"

#define VCFS_MKFS_FORCE	(1u << 0)	/* format even with live heartbeats */
#define VCFS_MKFS_DRYRUN (1u << 1)	/* compute and print, write nothing */

/*
 * Format d.  p->volume_bytes 0 = the whole disk.  Unless VCFS_MKFS_FORCE,
 * refuses (-VCFS_ELIVE) a datastore that already holds a vcfs volume with a
 * heartbeat that changes while it watches (up to the old volume's dead
 * threshold D; no wait when no slot is LIVE).  out (may be NULL) gets the new
 * geometry.
 */
int vcfs_mkfs(struct vcfs_disk *d, const struct vcfs_mkfs_params *p, unsigned flags,
	      struct vcfs_sb *out);

/* Fill blk with the empty, sealed bitmap block of global cluster c (grow too). */
void vcfs_mkfs_cbmp(const struct vcfs_sb *sb, uint32_t c, void *blk);

/* An empty root directory inode body, times now (unsealed; seq 0). */
void vcfs_mkfs_root(struct vcfs_inode_disk *ino);

/* Read and decode the volume header; falls back to the backup (and says so). */
int vcfs_read_super(struct vcfs_disk *d, struct vcfs_sb *sb, int *used_backup);

/* Write the header to block 0 and the backup block (FUA), seq + 1. */
int vcfs_write_super(struct vcfs_disk *d, struct vcfs_sb *sb);

#endif
