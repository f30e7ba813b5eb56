/*
 * cpumodel.h - CPU models: what this host can run, and the cluster's one
 * model (the lowest common model, as VMware's EVC baseline).
 *
 * A host "runs" a model when its QEMU, with this host's accelerator, shows
 * it in query-cpu-definitions with no unavailable features (probed with QEMU
 * -machine none answering QMP on stdin; a process keeps the answer for the
 * same binary, accelerator and policy), it is
 * migration-safe (not max, host or base), and the host's policy allows it
 * (VCVM_CPU_MODELS / vcvm-agent --cpu-models, a comma list; unset: all).
 *
 * The cluster's model is the highest model on a fixed ladder of named x86
 * generations (vcvm_cpu_ladder: Intel and AMD lines, qemu64 at the bottom)
 * that every host runs: `vcvm cluster-cpu` asks every host (HOST_INFO) and
 * records the choice on the datastore in .vcvm-cluster.json, so every host
 * that creates a VM there starts from it; a VM then migrates to any host of
 * the cluster.  QEMU is started with -cpu MODEL,enforce (vm.c), so a host
 * that cannot run a VM's model refuses to start it instead of running a
 * lesser CPU the VM could not be migrated back from.
 */
#ifndef VCVM_CPUMODEL_H
#define VCVM_CPUMODEL_H

#include <jansson.h>
#include <stddef.h>
#include "hypervisor/vm.h"

#define VCVM_CLUSTER_FILE	".vcvm-cluster.json"

/* The models this host runs (a new JSON array of strings, ladder order
 * first, then the others by name).  0 or -errno (why says what). */
int vcvm_cpu_usable(const struct vcvm_env *e, json_t **models, char *why, size_t whylen);

/* Does models (an array of strings) hold name? */
int vcvm_cpu_has(json_t *models, const char *name);

/* The highest ladder model in every one of sets[0..n) ("" if none). */
const char *vcvm_cpu_common(json_t *const *sets, size_t n);

/* The datastore's recorded cluster model into out ("" and 0 when none is
 * recorded); -errno when the record is unreadable (why says what). */
int vcvm_cluster_cpu_get(const char *datastore, char *out, size_t n, char *why, size_t whylen);

/* Record model as the datastore's cluster model (atomic rewrite); hosts is
 * a JSON array kept in the record for people (who was asked). */
int vcvm_cluster_cpu_set(const char *datastore, const char *model, json_t *hosts,
			 const char *by, char *why, size_t whylen);

#endif
