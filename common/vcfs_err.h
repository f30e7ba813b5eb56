/*
 * vcfs_err.h - the one error space of vcfs.
 *
 * Every library call returns int: 0 on success, -errno for a system error, or a
 * negated project code (> VCFS_ERR_BASE) from the list below.  The list is an
 * X-macro so that the enum and vcfs_strerror() can never drift apart.
 */
#ifndef VCFS_ERR_H
#define VCFS_ERR_H

#define VCFS_ERR_BASE 4096

/*      name              value                 message */
#define VCFS_ERRORS(X)                                                              \
	X(VCFS_EMISCOMPARE, VCFS_ERR_BASE + 1, "compare-and-write miscompare: the sector changed") \
	X(VCFS_ECORRUPT,    VCFS_ERR_BASE + 2, "on-disk structure is corrupt")         \
	X(VCFS_EBADURI,     VCFS_ERR_BASE + 3, "malformed datastore URI")              \
	X(VCFS_ESCHEME,     VCFS_ERR_BASE + 4, "unknown URI scheme (use file:, iscsi://, nfs:// or rados://)") \
	X(VCFS_ENOBACKEND,  VCFS_ERR_BASE + 5, "backend not built into this vcfs (rebuild with RADOS=1)") \
	X(VCFS_EUNSAFE,     VCFS_ERR_BASE + 6, "backend offers no atomic compare-and-write: unsafe for a shared datastore") \
	X(VCFS_ETOOSMALL,   VCFS_ERR_BASE + 7, "datastore is smaller than the minimum vcfs needs") \
	X(VCFS_EBADSECTOR,  VCFS_ERR_BASE + 8, "unsupported sector size (need a power of two from 512 to 4096)") \
	X(VCFS_EAUTH,       VCFS_ERR_BASE + 9, "authentication refused by the target (check CHAP user and password)") \
	X(VCFS_ENOLUN,      VCFS_ERR_BASE + 10, "no such LUN on the target")           \
	X(VCFS_EFENCED,     VCFS_ERR_BASE + 11, "this host is fenced: it lost its heartbeat lease and may not write") \
	X(VCFS_ERESERVED,   VCFS_ERR_BASE + 12, "the LUN is reserved by another host (SCSI reservation conflict)") \
	X(VCFS_EINJECTED,   VCFS_ERR_BASE + 13, "injected fault (test layer)")         \
	X(VCFS_ECRASHED,    VCFS_ERR_BASE + 14, "simulated crash: the disk is gone (test layer)") \
	X(VCFS_EPROTO,      VCFS_ERR_BASE + 15, "the storage target answered outside the protocol") \
	X(VCFS_EALIGN,      VCFS_ERR_BASE + 16, "offset or length is not a multiple of the sector size") \
	X(VCFS_ERANGE,      VCFS_ERR_BASE + 17, "I/O beyond the end of the datastore")  \
	X(VCFS_ENOTVCFS,    VCFS_ERR_BASE + 18, "not a vcfs datastore (no vcfs signature)") \
	X(VCFS_EFEATURE,    VCFS_ERR_BASE + 19, "datastore uses features this vcfs does not know") \
	X(VCFS_ELIVE,       VCFS_ERR_BASE + 20, "the datastore has live hosts (heartbeats are changing)")

enum vcfs_err {
#define VCFS_ERR_ENUM(name, val, msg) name = (val),
	VCFS_ERRORS(VCFS_ERR_ENUM)
#undef VCFS_ERR_ENUM
};

/* Message for a return code (accepts both signs); never NULL. */
const char *vcfs_strerror(int err);

#endif
