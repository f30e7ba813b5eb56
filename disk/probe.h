/*
 * probe.h - measuring and proving a backend before trusting it (vcfs probe,
 * the conformance suite and the benchmarks share these).
 */
#ifndef VCFS_PROBE_H
#define VCFS_PROBE_H

#include <stdint.h>
#include "disk.h"

/* Latency sample set: nanoseconds, sorted by vcfs_lat_summary(). */
struct vcfs_lat {
	uint64_t *ns;
	size_t n, cap;
};
int vcfs_lat_add(struct vcfs_lat *l, uint64_t ns);
/* Sort and return the p-th percentile (0..100) in ns; 0 when empty. */
uint64_t vcfs_lat_pct(struct vcfs_lat *l, double p);
void vcfs_lat_free(struct vcfs_lat *l);

/*
 * The scratch area vcfs probe may write: on a disk that does not carry a vcfs
 * signature, the last 1 MiB (its old contents are saved first and written back
 * after); on a vcfs datastore none (0 is returned in *len and probing is
 * read-only plus identity compare-and-writes, which are harmless to live hosts).
 */
int vcfs_probe_scratch(struct vcfs_disk *d, uint64_t *off, uint64_t *len);

struct vcfs_probe_result {
	struct vcfs_disk_info info;
	int formatted;		/* a vcfs signature was found: read-only probe */
	int cas_ok;		/* identity CAS succeeded */
	int miscompare_ok;	/* a wrong expectation was refused, data untouched */
	uint64_t read4k_p50, read4k_p99;	/* ns */
	uint64_t write4k_p50, write4k_p99;	/* ns, 0 when read-only */
	uint64_t cas_p50, cas_p99;		/* ns */
};
/* Non-destructive probe: samples ops of each kind. */
int vcfs_probe_run(struct vcfs_disk *d, int samples, struct vcfs_probe_result *r);

/*
 * nproc processes each open uri on their own (as separate hosts would) and
 * add 1 to the 64-bit counter at the start of the sector at off, iters times,
 * by read + compare-and-write retries.  *final gets the counter's end value
 * (it starts from 0); *miscompares the number of lost races.  Each process
 * gives up on an error.  Returns 0 when every process finished cleanly.
 */
int vcfs_cas_stress(const char *uri, const struct vcfs_disk_opts *opts, uint64_t off,
		    int nproc, int iters, uint64_t *final, uint64_t *miscompares);

#endif
