/*
 * admin.h - what the `vcfs` admin tool shows about a datastore, offline: the
 * volume header and space, the heartbeat slots with their liveness, and lock
 * records.  Works on a datastore that hosts have mounted (it only reads).
 */
#ifndef VCFS_ADMIN_H
#define VCFS_ADMIN_H

#include <stdint.h>
#include <stdio.h>
#include "../disk/disk.h"
#include "ondisk.h"

struct vcfs_space {
	uint64_t large_total, large_free;	/* large blocks */
	uint64_t small_total, small_free;	/* 4 KiB blocks */
	uint64_t inodes_total, inodes_free;
};
int vcfs_admin_space(struct vcfs_disk *d, const struct vcfs_sb *sb, struct vcfs_space *out);

/* `vcfs info`: header, geometry, space. */
int vcfs_admin_info(struct vcfs_disk *d, FILE *out, int json);

/*
 * `vcfs hosts`: every slot in use with state, generation, counter, host name,
 * journal state and liveness judged by watching the counters for watch_ms
 * (0 = 2 x the I/O timeout, enough to see one renewal of a live host).
 */
int vcfs_admin_hosts(struct vcfs_disk *d, uint32_t watch_ms, FILE *out, int json);

/* `vcfs locks URI INO`: the lock record of an inode, with holder names. */
int vcfs_admin_inode_lock(struct vcfs_disk *d, uint64_t ino, FILE *out, int json);

/*
 * `vcfs break-lock`: release inode ino's lock, ONLY if every host holding it is
 * dead.  The holders' heartbeats are watched for the dead threshold D = 7T;
 * any that changes makes it refuse (-EBUSY, naming the host).  Dead holders are
 * recovered exactly as a surviving host would: their slot is claimed by
 * compare-and-write (RECOVERING), their journal replayed, then the slot is
 * freed with its generation bumped, which releases every lock they held.
 * confirm(arg, text) is asked before anything is written; 0 = abort.
 */
int vcfs_admin_break_lock(struct vcfs_disk *d, uint64_t ino,
			  int (*confirm)(void *arg, const char *text), void *arg, FILE *out);

#endif
