/*
 * hv_err.h - the hypervisor layer's codes in vcfs's one error space.
 *
 * Same rules as common/vcfs_err.h: functions return 0, -errno, or a negated
 * code from this list.  The codes sit in their own range above the datastore's
 * (VCFS_ERR_BASE + 512 ...) so that the two lists cannot collide while they are
 * written by different people; vcvm_strerror() covers both spaces and errno.
 * When common/ is next touched this list can be folded into VCFS_ERRORS as is.
 */
#ifndef VCVM_HV_ERR_H
#define VCVM_HV_ERR_H

#include "common/vcfs_err.h"

#define VCVM_ERR_BASE (VCFS_ERR_BASE + 512)

/*      name               value               message */
#define VCVM_ERRORS(X)                                                                 \
	X(VCVM_EQMP,        VCVM_ERR_BASE + 1,  "QEMU refused the command (QMP error)")        \
	X(VCVM_EQMPPROTO,   VCVM_ERR_BASE + 2,  "QEMU answered outside the QMP protocol")      \
	X(VCVM_EQMPCLOSED,  VCVM_ERR_BASE + 3,  "QEMU closed its QMP connection (has it exited?)") \
	X(VCVM_ECONFIG,     VCVM_ERR_BASE + 4,  "invalid VM configuration")                   \
	X(VCVM_ECFGVERSION, VCVM_ERR_BASE + 5,  "VM configuration has a newer format version than this vcvm") \
	X(VCVM_ENOVM,       VCVM_ERR_BASE + 6,  "no such VM (no vm.json in the folder, or not registered)") \
	X(VCVM_ERUNNING,    VCVM_ERR_BASE + 7,  "the VM is already running")                  \
	X(VCVM_ENOTRUNNING, VCVM_ERR_BASE + 8,  "the VM is not running")                      \
	X(VCVM_EQEMUDIED,   VCVM_ERR_BASE + 9,  "QEMU exited unexpectedly (see qemu.log in the VM folder)") \
	X(VCVM_ENOQEMU,     VCVM_ERR_BASE + 10, "qemu-system-x86_64 not found (install qemu-system-x86)") \
	X(VCVM_ENAME,       VCVM_ERR_BASE + 11, "invalid VM name (letters, digits, '.', '_', '-'; at most 64)") \
	X(VCVM_EEXISTS,     VCVM_ERR_BASE + 12, "a VM of that name is already registered") \
	X(VCVM_EAUTH,       VCVM_ERR_BASE + 32, "agent authentication failed (is the cluster key the same on both sides? see vcvm keygen)") \
	X(VCVM_EPROTO,      VCVM_ERR_BASE + 33, "agent protocol error (bad frame, MAC or sequence number)") \
	X(VCVM_EMIGRATE,    VCVM_ERR_BASE + 34, "migration failed (the VM keeps running on the source)") \
	X(VCVM_ECPU,        VCVM_ERR_BASE + 35, "the destination does not offer the VM's CPU model or machine")

enum vcvm_err {
#define VCVM_ERR_ENUM(name, val, msg) name = (val),
	VCVM_ERRORS(VCVM_ERR_ENUM)
#undef VCVM_ERR_ENUM
};

/* Message for any return code of vcfs or vcvm (either sign); never NULL. */
const char *vcvm_strerror(int err);

#endif
