/*
 * vmcfg.h - a VM's configuration file, <folder>/vm.json.
 *
 * A VM is a folder on a datastore: vm.json (this module), its disk files and
 * its serial log.  The folder path is all the code knows; whether it sits on a
 * vcfs mount, NFS or a local directory does not matter here.
 *
 * The file is JSON (jansson) with a format version.  A vcvm that finds a newer
 * format refuses the file (-VCVM_ECFGVERSION) rather than guess.  Fields added
 * within a format version are additive: keys this vcvm does not know are kept
 * as they are when it rewrites the file, so hosts running different vcvm
 * builds do not erase each other's fields.
 *
 * What is *not* here: which host runs the VM, QEMU's pid, sockets.  That is
 * runtime state (vm.h) and lives outside the configuration, so that rewriting
 * one never races with the other and a crashed host leaves no stale config.
 *
 * Example (format 1):
 *   { "format": 1, "name": "web01", "uuid": "…", "memory_mib": 256, "vcpus": 1,
 *     "cpu_model": "qemu64", "machine": "q35",
 *     "boot": { "kernel": "vmlinuz", "initrd": "initrd.img", "append": "console=ttyS0" },
 *     "disks": [ { "file": "disk0.raw", "format": "raw", "bus": "virtio",
 *                  "io": { "shares": 1000, "limit_iops": 0, "limit_bps": 0 } } ],
 *     "nics": [ { "model": "virtio-net-pci", "mac": "52:54:00:12:34:56", "network": "user" } ],
 *     "serial_log": "serial.log",
 *     "ha": { "priority": "medium", "last_host": "" },
 *     "drs": { "groups": [] }, "ft": { "secondary": "" }, "template": false,
 *     "alarms": [ { "metric": "cpu_pct", "warning": 80, "critical": 95 } ],
 *     "replication": { "target": "", "last_generation": 0 } }
 *
 * Writes are atomic: vm.json.tmp.<pid> is written, fsync'ed, renamed over
 * vm.json, and the folder fsync'ed.  A reader sees the old or the new file,
 * never a mix.  Serialising writers (two hosts updating one VM) is the caller's
 * job: the datastore's lock on the VM, once the agent holds it.
 */
#ifndef VCVM_VMCFG_H
#define VCVM_VMCFG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define VCVM_CFG_FORMAT		1		/* the format this vcvm writes */
#define VCVM_CFG_FILE		"vm.json"
#define VCVM_NAME_MAX		64
#define VCVM_PATH_MAX		512
#define VCVM_MAX_DISKS		16
#define VCVM_MAX_NICS		8
#define VCVM_MAX_GROUPS		16
#define VCVM_MAX_ALARMS		16
#define VCVM_HOST_MAX		64

enum vcvm_disk_format { VCVM_FMT_RAW, VCVM_FMT_QCOW2 };
enum vcvm_disk_bus { VCVM_BUS_VIRTIO, VCVM_BUS_SCSI, VCVM_BUS_SATA };
enum vcvm_ha_priority { VCVM_HA_DISABLED, VCVM_HA_LOW, VCVM_HA_MEDIUM, VCVM_HA_HIGH };

struct vcvm_disk {
	char file[VCVM_PATH_MAX];	/* relative to the folder, or absolute */
	bool owned;			/* an absolute file the VM owns ("owned": true,
					 * set by move-storage): destroy deletes it;
					 * a relative file is always the VM's */
	enum vcvm_disk_format format;
	enum vcvm_disk_bus bus;
	/* storage I/O control (reserved: recorded, not enforced yet) */
	uint32_t io_shares;		/* relative weight, default 1000 */
	uint64_t io_limit_iops;		/* 0 = unlimited */
	uint64_t io_limit_bps;		/* 0 = unlimited */
};

struct vcvm_nic {
	char model[32];			/* virtio-net-pci | e1000e */
	char mac[18];			/* xx:xx:xx:xx:xx:xx */
	char network[64];		/* "user" (QEMU user net) | "none" (link down) */
};

struct vcvm_alarm {			/* reserved: recorded, not evaluated yet */
	char metric[32];
	double warning, critical;
};

struct vcvm_cfg {
	int format;
	char name[VCVM_NAME_MAX + 1];
	char uuid[37];
	uint32_t memory_mib;
	uint32_t vcpus;
	char cpu_model[64];		/* QEMU -cpu; the cluster's common model */
	char machine[32];		/* q35 or pc-q35-X.Y */
	/* direct kernel boot (optional; files relative to the folder or absolute) */
	char kernel[VCVM_PATH_MAX];
	char initrd[VCVM_PATH_MAX];
	char append[1024];
	unsigned ndisks;
	struct vcvm_disk disks[VCVM_MAX_DISKS];
	unsigned nnics;
	struct vcvm_nic nics[VCVM_MAX_NICS];
	char serial_log[VCVM_PATH_MAX];	/* relative to the folder, or absolute */

	/* reserved for later features: recorded and validated, not acted on yet */
	struct {
		enum vcvm_ha_priority priority;
		char last_host[VCVM_HOST_MAX];	/* host that last ran it */
	} ha;
	struct {
		unsigned ngroups;
		char groups[VCVM_MAX_GROUPS][VCVM_NAME_MAX + 1];	/* affinity group names */
	} drs;
	struct {
		char secondary[VCVM_HOST_MAX];	/* FT secondary's host, "" = none */
	} ft;
	bool is_template;
	unsigned nalarms;
	struct vcvm_alarm alarms[VCVM_MAX_ALARMS];
	struct {
		char target[VCVM_PATH_MAX];	/* datastore path or URI, "" = none */
		uint64_t last_generation;
	} replication;

	json_t *raw;	/* the document it was loaded from (unknown keys kept); may be NULL */
};

/* Defaults for a new VM named name (a fresh random uuid). 0 or -VCVM_ENAME. */
int vcvm_cfg_init(struct vcvm_cfg *c, const char *name);

/*
 * Check every field.  On failure returns -VCVM_ECONFIG and writes into why a
 * message that names the field ("disks[1].format: must be raw or qcow2").
 */
int vcvm_cfg_validate(const struct vcvm_cfg *c, char *why, size_t whylen);

/* Parse a document (borrowed) into c, then validate.  -VCVM_ECONFIG/_ECFGVERSION + why. */
int vcvm_cfg_from_json(json_t *root, struct vcvm_cfg *c, char *why, size_t whylen);

/* The document for c (unknown keys of c->raw kept); NULL if out of memory. */
json_t *vcvm_cfg_to_json(const struct vcvm_cfg *c);

/*
 * Load <dir>/vm.json.  -VCVM_ENOVM if it does not exist, -VCVM_ECONFIG with
 * why (including JSON syntax errors with line and column), -errno.
 * The caller releases c with vcvm_cfg_free().
 */
int vcvm_cfg_load(const char *dir, struct vcvm_cfg *c, char *why, size_t whylen);

/* Validate and write <dir>/vm.json atomically (see above). */
int vcvm_cfg_save(const char *dir, const struct vcvm_cfg *c, char *why, size_t whylen);

/* A path from the config resolved against the folder (absolute stays). */
int vcvm_cfg_path(const char *dir, const char *rel, char *out, size_t outlen);

/* Name rule shared by the CLI: [A-Za-z0-9._-], 1..64, not starting with '.' or '-'. */
bool vcvm_name_ok(const char *name);

void vcvm_cfg_free(struct vcvm_cfg *c);

const char *vcvm_fmt_name(enum vcvm_disk_format f);
const char *vcvm_bus_name(enum vcvm_disk_bus b);
const char *vcvm_ha_name(enum vcvm_ha_priority p);

#endif
