/*
 * disk.h - the shared-disk layer: one API over every backend.
 *
 * Everything in vcfs (heartbeats, locks, journals, the filesystem, the tools)
 * reaches the datastore through this interface and nothing else; no other
 * module calls pread/pwrite/ioctl on the datastore (`make lint` checks).
 *
 * A datastore is opened by URI:
 *   file:/path                      regular file or block device, O_DIRECT
 *   iscsi://[user%pass@]host[:port]/iqn/lun   libiscsi, CHAP when given
 *   nfs://server[:port]/export/path/file[?...] libnfs over NFSv3, one big file
 *   rados://pool/image[?conf=PATH&id=NAME]    librados, image striped on objects
 * A bare path (no "scheme:") is taken as file:.
 *
 * Rules every backend keeps (and tests/disk/conformance.c checks):
 *  - offsets and lengths are multiples of the logical sector size (info.lsec),
 *    else -VCFS_EALIGN; I/O past info.size is -VCFS_ERANGE.  Buffers may have any
 *    alignment (backends bounce when they need to); vcfs_disk_buf_alloc() gives
 *    buffers that never need a bounce.
 *  - a write returns when the backend has accepted it; it is durable after a
 *    following vcfs_disk_flush() returns, or at once with VCFS_IO_FUA.
 *  - vcfs_disk_cas() compares and writes exactly one logical sector, atomically
 *    against every other host that uses the same backend through vcfs.  It is
 *    durable when it returns.  On a miscompare it returns -VCFS_EMISCOMPARE and
 *    the sector is untouched.
 *  - unmap and write_zeroes leave the range reading as zeros.
 *  - all calls are thread-safe and concurrent calls proceed in parallel: the
 *    queue depth the backend sees is the number of threads calling.
 *  - every request is bounded by the I/O timeout (opts.io_timeout_ms); a backend
 *    that does not answer in time gives -ETIMEDOUT, never a hang.
 */
#ifndef VCFS_DISK_H
#define VCFS_DISK_H

#include <stddef.h>
#include <stdint.h>
#include "../common/vcfs_err.h"

struct vcfs_disk;

/* How vcfs_disk_cas() is made atomic on this backend. */
enum vcfs_cas_mode {
	VCFS_CAS_NONE = 0,	/* no atomic primitive: unsafe, refused for sharing */
	VCFS_CAS_OFD,		/* file: OFD lock around read-compare-write; atomic
				 * among processes of one machine only */
	VCFS_CAS_ATS,		/* iSCSI COMPARE AND WRITE executed by the target */
	VCFS_CAS_ATS_PR,	/* iSCSI SCSI-3 persistent reservation around
				 * read-compare-write (target lacks COMPARE AND WRITE) */
	VCFS_CAS_NFS_LOCKFILE,	/* NFSv3 exclusive CREATE of a per-sector lock file */
	VCFS_CAS_RADOS_CMPEXT,	/* rados_write_op_cmpext + write in one operation */
	VCFS_CAS_EMULATED,	/* test layers: in-process mutex only */
};

/* Capability bits in vcfs_disk_info.caps. */
#define VCFS_DISK_CAP_UNMAP	 (1u << 0)	/* unmap frees space on the backend */
#define VCFS_DISK_CAP_FUA	 (1u << 1)	/* native force-unit-access writes */
#define VCFS_DISK_CAP_ZEROES	 (1u << 2)	/* native write-zeroes */
#define VCFS_DISK_CAP_CAS_SHARED (1u << 3)	/* CAS is atomic across machines */
#define VCFS_DISK_CAP_RDONLY	 (1u << 4)	/* opened read-only */

struct vcfs_disk_info {
	uint64_t size;		/* bytes, a multiple of lsec */
	uint32_t lsec;		/* logical sector size: unit of I/O and of CAS */
	uint32_t psec;		/* physical sector size: writes below it may tear */
	uint32_t max_io;	/* largest request the backend takes at once */
	uint32_t caps;		/* VCFS_DISK_CAP_* */
	enum vcfs_cas_mode cas_mode;
	char backend[16];	/* "file", "iscsi", "nfs", "rados", "fault", "crash" */
	char desc[256];		/* human description, never contains a password */
};

/* Write flags. */
#define VCFS_IO_FUA (1u << 0)	/* durable when the call returns */

/* Open flags in vcfs_disk_opts.flags. */
#define VCFS_DISK_RDONLY    (1u << 0)
#define VCFS_DISK_NO_DIRECT (1u << 1)	/* file: allow buffered I/O (tmpfs) */

struct vcfs_disk_opts {
	uint32_t flags;
	uint32_t io_timeout_ms;	  /* bound on one request and on connecting;
				   * 0 = VCFS_DISK_DEFAULT_IO_TIMEOUT_MS */
	const char *initiator;	  /* iSCSI initiator IQN; NULL = derived from the
				   * hostname and a per-open random suffix */
	uint64_t host_key;	  /* SCSI-3 PR key / lock-file owner id; 0 = random */
	/*
	 * Optional liveness oracle used to break a dead holder's CAS guard (PR
	 * key on iSCSI, lock file on NFS): returns 1 if the holder identified by
	 * key is known dead (its heartbeat is stale), 0 if alive or unknown.
	 * Without it a guard is broken only after it has been seen held,
	 * unchanged, for VCFS_DISK_STALE_GUARD_FACTOR I/O timeouts.
	 */
	int (*holder_dead)(void *arg, uint64_t key);
	void *holder_dead_arg;
};

#define VCFS_DISK_DEFAULT_IO_TIMEOUT_MS 5000
/* Smallest datastore any backend opens (vcfs_disk_open: -VCFS_ETOOSMALL). */
#define VCFS_DISK_MIN_SIZE (1ull << 20)
#define VCFS_DISK_STALE_GUARD_FACTOR	4

/* Open a datastore by URI.  opts may be NULL.  *out is set only on success. */
int vcfs_disk_open(const char *uri, const struct vcfs_disk_opts *opts,
		   struct vcfs_disk **out);
void vcfs_disk_close(struct vcfs_disk *d);
const struct vcfs_disk_info *vcfs_disk_info(const struct vcfs_disk *d);

int vcfs_disk_read(struct vcfs_disk *d, uint64_t off, void *buf, size_t len);
int vcfs_disk_write(struct vcfs_disk *d, uint64_t off, const void *buf, size_t len,
		    unsigned flags);
int vcfs_disk_flush(struct vcfs_disk *d);
/*
 * Ask the backend for its size again (the LUN or file was enlarged) and let
 * this handle use it; vcfs_disk_info()->size then tells.  A smaller size is
 * refused (-VCFS_ECORRUPT: the datastore was shrunk under us) and the old one
 * kept.  -EOPNOTSUPP if the backend cannot tell without reopening.
 */
int vcfs_disk_refresh_size(struct vcfs_disk *d);
/* One logical sector at off: if it equals expect, replace it with newdata. */
int vcfs_disk_cas(struct vcfs_disk *d, uint64_t off, const void *expect,
		  const void *newdata);
int vcfs_disk_unmap(struct vcfs_disk *d, uint64_t off, uint64_t len);
int vcfs_disk_write_zeroes(struct vcfs_disk *d, uint64_t off, uint64_t len,
			   unsigned flags);

/*
 * Byte-granular helpers for callers that are not sector-aligned: unaligned
 * heads and tails are read-modify-written, which is NOT atomic against other
 * hosts; use them only on ranges this host holds a lock on.
 */
int vcfs_disk_pread(struct vcfs_disk *d, uint64_t off, void *buf, size_t len);
int vcfs_disk_pwrite(struct vcfs_disk *d, uint64_t off, const void *buf, size_t len,
		     unsigned flags);

/*
 * Asynchronous reads and writes: the caller fills op, off, buf, len and done;
 * vcfs_disk_submit() queues the request and returns at once, and done() is
 * called exactly once, later, from the backend's completion thread, with 0 or
 * a negative errno (the whole length was transferred when it is 0).  Until
 * then buf must stay valid and the struct untouched.  done() must not block
 * on anything that waits for another completion of the same disk.
 *
 * Not every backend or request can go this way: -EOPNOTSUPP (backend or
 * layer without it, AIO unavailable, a buffer an O_DIRECT file would bounce,
 * length above max_io) and -EAGAIN (queue full) mean "do it with
 * vcfs_disk_read/write"; done() is then never called.  Alignment and range
 * are checked as for the synchronous calls.  Today the file: backend opened
 * O_DIRECT does it (Linux AIO, one context and one completion thread per
 * handle, set up at the first submission; test layers and the network
 * backends do not); vcfs_disk_close() waits for every submitted request.
 */
enum vcfs_disk_aio_op { VCFS_AIO_READ, VCFS_AIO_WRITE };

struct vcfs_disk_aio {
	enum vcfs_disk_aio_op op;
	uint64_t off;
	void *buf;
	size_t len;
	void (*done)(struct vcfs_disk_aio *a, int rc);
	size_t xfer;		/* private: bytes done so far (short transfers) */
};

int vcfs_disk_submit(struct vcfs_disk *d, struct vcfs_disk_aio *a);

/* 4096-aligned buffer (zeroed) that no backend needs to bounce; free with free(). */
void *vcfs_disk_buf_alloc(size_t len);

const char *vcfs_cas_mode_name(enum vcfs_cas_mode m);

/*
 * A copy of uri fit for messages and logs: the password of
 * iscsi://user%password@host/... is replaced by "***".  malloc'd; NULL only
 * when out of memory.
 */
char *vcfs_uri_redact(const char *uri);

/* ---- test layers: wrap any backend (they take ownership of lower) ---- */

/* VCFS_OP_AIO: requests of vcfs_disk_submit, which also count as their
 * READ or WRITE (so "aio" rules reach the asynchronous path alone) */
enum vcfs_disk_op {
	VCFS_OP_READ, VCFS_OP_WRITE, VCFS_OP_FLUSH, VCFS_OP_CAS, VCFS_OP_UNMAP,
	VCFS_OP_ZEROES, VCFS_OP_AIO, VCFS_OP_ANY, VCFS_OP_NR
};

struct vcfs_fault_rule {
	enum vcfs_disk_op op;	/* which operations count; VCFS_OP_ANY for all */
	uint64_t nth;		/* fail the nth matching op (1-based); 0 = never */
	int sticky;		/* and every matching op after it */
	int err;		/* returned error, e.g. -EIO (0 = -VCFS_EINJECTED) */
	uint32_t delay_us;	/* added before every matching op */
};

int vcfs_fault_wrap(struct vcfs_disk *lower, struct vcfs_disk **out);
/* Replace the rule for rule->op (counters restart). */
int vcfs_fault_set(struct vcfs_disk *fault, const struct vcfs_fault_rule *rule);
void vcfs_fault_clear(struct vcfs_disk *fault);
/* Matching ops seen so far for op. */
uint64_t vcfs_fault_count(struct vcfs_disk *fault, enum vcfs_disk_op op);
/*
 * Parse "op:nth[:sticky][:errno][:delay=us]" rules separated by ',' (for the
 * VCFS_FAULT environment variable, which vcfs_disk_open() honours).
 */
int vcfs_fault_parse(struct vcfs_disk *fault, const char *spec);

/*
 * Crash recording.  Every write (and unmap / write-zeroes) is logged with its
 * flush epoch; FUA writes and writes followed by a flush are durable.
 *
 * In BUFFER mode the writes of the current epoch are held in memory (reads see
 * them) and reach the lower disk only at flush; vcfs_crash_now() then keeps,
 * drops or tears each held write and the disk fails every later op with
 * -VCFS_ECRASHED.  In LOG mode writes pass straight through and are only
 * logged, so that vcfs_crash_replay() can rebuild the disk at any prefix.
 */
enum vcfs_crash_mode { VCFS_CRASH_LOG, VCFS_CRASH_BUFFER };
enum vcfs_crash_policy {
	VCFS_CRASH_KEEP,	/* every unflushed write survives */
	VCFS_CRASH_DROP,	/* every unflushed write is lost */
	VCFS_CRASH_TEAR,	/* each unflushed write keeps only its first half
				 * (in physical sectors) */
	VCFS_CRASH_RANDOM,	/* keep, drop or tear each one, chosen by seed */
};

int vcfs_crash_wrap(struct vcfs_disk *lower, enum vcfs_crash_mode mode,
		    struct vcfs_disk **out);
size_t vcfs_crash_nwrites(struct vcfs_disk *crash);
/* The flush epoch write i belongs to, and whether it is durable by itself. */
int vcfs_crash_write_info(struct vcfs_disk *crash, size_t i, uint64_t *off,
			  uint64_t *len, uint64_t *epoch, int *durable);
/* Process-wide issue order of write i: when several crash layers of one
 * process write one disk (hosts in one process), the order writes reached it. */
int vcfs_crash_write_order(struct vcfs_disk *crash, size_t i, uint64_t *order);
int vcfs_crash_now(struct vcfs_disk *crash, enum vcfs_crash_policy p, uint64_t seed);
/*
 * Apply the first n logged writes to target (a copy of the disk as it was when
 * recording began) as a crash right after write n-1 would leave them: writes of
 * completed epochs and FUA writes whole, the others per policy.
 */
int vcfs_crash_replay(struct vcfs_disk *crash, struct vcfs_disk *target, size_t n,
		      enum vcfs_crash_policy p, uint64_t seed);
/* Only records [from, to) of that replay (to <= n), for interleaving the logs
 * of several hosts onto one target. */
int vcfs_crash_replay_range(struct vcfs_disk *crash, struct vcfs_disk *target, size_t n,
			    size_t from, size_t to, enum vcfs_crash_policy p,
			    uint64_t seed);

#endif
