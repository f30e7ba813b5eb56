/*
 * mem.h - an in-memory shared disk for simulation and enumeration tests
 * (disk/mem.c).  Not a production backend: it is reached only through these
 * calls, never by a URI.
 *
 * A store is a named byte array in this process.  Every vcfs_mem_open() of a
 * name gives a separate handle on the same store, as each host has its own
 * path to one LUN: what one handle writes the others read at once (the
 * array's cache is shared), and CAS is atomic across handles.  Each handle
 * carries a tag (the simulated host it belongs to) that the hook sees.
 *
 * The hook (vcfs_mem_set_hook) runs before every operation of every handle,
 * outside the store's lock: a simulator advances its clock there (latency),
 * stalls a host (pause), fails the operation (I/O errors, a request that
 * outlived its timeout) or refuses a write that lands too late; a non-zero
 * return is given to the caller and nothing is applied.
 *
 * With VCFS_MEM_VOLATILE the store also keeps the stable image (what a power
 * cut leaves): writes that are neither FUA nor CAS stay volatile until a
 * flush -- from any handle: the write cache is the array's, and SYNCHRONIZE
 * CACHE (or fdatasync of a shared file) is LUN-wide.  (A host-side cache, a
 * host counting on its own flushes only, is crash.c's per-host model.)
 * vcfs_mem_power_cut() applies the volatile writes to the stable image in a
 * random order (reordering),
 * each kept, dropped or torn at a 4 KiB boundary, and makes the result the
 * visible image.  A write takes the bytes it covers away from every older
 * volatile write (any handle's): an array keeps overlapping writes in order,
 * so a cut never puts older bytes over newer ones.
 *
 * Restore: each store records which 4 KiB blocks were written since the last
 * vcfs_mem_restore(), which copies just those blocks back from another store
 * (an enumeration resets its target image in microseconds).
 */
#ifndef VCFS_MEM_H
#define VCFS_MEM_H

#include <stdint.h>
#include "disk.h"

#define VCFS_MEM_VOLATILE (1u << 0)	/* track the stable image (power cuts) */

/* Create store name of size bytes (a multiple of 4096, >= 1 MiB), zeroed.
 * -EEXIST if it exists. */
int vcfs_mem_create(const char *name, uint64_t size, unsigned flags);
/* Forget the store (handles still open keep it until they close). */
void vcfs_mem_destroy(const char *name);
/* A new handle on store name; tag is what the hook is told. */
int vcfs_mem_open(const char *name, uint32_t tag, const struct vcfs_disk_opts *o,
		  struct vcfs_disk **out);
uint32_t vcfs_mem_tag(const struct vcfs_disk *d);

/* Make dst equal to src again, copying only the blocks written in dst since
 * its last restore (and, the first time, every block).  Same sizes. */
int vcfs_mem_restore(const char *dst, const char *src);
/* Copy the whole visible image of src into dst (same sizes), marking all. */
int vcfs_mem_copy(const char *dst, const char *src);
/* Read the visible image without hooks or checks. */
int vcfs_mem_peek(const char *name, uint64_t off, void *buf, size_t len);
/* Blocks written in the store since its last restore. */
uint64_t vcfs_mem_dirty_blocks(const char *name);

/* op is VCFS_OP_READ .. VCFS_OP_ZEROES; 0 lets the operation proceed. */
typedef int (*vcfs_mem_hook_fn)(void *arg, uint32_t tag, enum vcfs_disk_op op,
				uint64_t off, uint64_t len);
void vcfs_mem_set_hook(vcfs_mem_hook_fn fn, void *arg);

/* VOLATILE stores: a power cut as described above; counts what it did. */
struct vcfs_mem_cut_stats { uint64_t kept, dropped, torn; };
int vcfs_mem_power_cut(const char *name, uint64_t seed, struct vcfs_mem_cut_stats *st);

#endif
