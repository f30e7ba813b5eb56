/*
 * inventory.h - which VMs this host knows: <state_dir>/vms/<name> is a
 * symlink to the VM's folder.
 *
 * A VM is its folder; the inventory only maps short names to folders so the
 * CLI can say `vcvm start web01`.  Every host that mounts the datastore can
 * register the same folder (that is how a VM moves between hosts); the name
 * is the VM's own (vm.json "name").  A command may also name a folder
 * directly (anything with a '/').
 */
#ifndef VCVM_INVENTORY_H
#define VCVM_INVENTORY_H

#include <stddef.h>
#include "hypervisor/vm.h"

/*
 * Register folder dir (absolute or relative; stored absolute) under the VM's
 * name from its vm.json.  -VCVM_EEXISTS if the name maps to another folder
 * (why names it); registering the same folder again is fine.
 */
int vcvm_inv_add(const struct vcvm_env *e, const char *dir, char *why, size_t whylen);

/* Forget name (the folder is left alone).  -VCVM_ENOVM if not registered. */
int vcvm_inv_remove(const struct vcvm_env *e, const char *name);

/*
 * Resolve a VM argument: a folder (contains '/') or a registered name.
 * Writes the folder's absolute path into dir.  -VCVM_ENOVM with why.
 */
int vcvm_inv_resolve(const struct vcvm_env *e, const char *arg, char *dir, size_t dirlen,
		     char *why, size_t whylen);

/* Call fn for every registered VM in name order; stops at fn's first non-zero. */
int vcvm_inv_foreach(const struct vcvm_env *e,
		     int (*fn)(const char *name, const char *dir, void *arg), void *arg);

#endif
