/*
 * vcfs.c - the admin CLI (like vmkfstools and debugfs.ocfs2): a thin front end
 * that parses arguments and calls the libraries.
 *
 *   vcfs probe [--stress N] [--iters N] [--json] [--timeout-ms T] URI
 *   vcfs info [--json] URI
 *   vcfs hosts [--json] [--watch-ms MS] URI
 *   vcfs locks [--json] URI INODE
 *
 * Exit codes: 0 success (probe: the target is safe for vcfs), 1 the target
 * or object is unsafe / the check failed, 2 usage, 8 operational error.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "disk/disk.h"
#include "disk/probe.h"
#include "fs/admin.h"

#define EXIT_UNSAFE 1
#define EXIT_USAGE 2
#define EXIT_OPERR 8

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vcfs COMMAND [options] ...\n"
		"  probe [--stress N] [--iters N] [--json] [--timeout-ms T] URI\n"
		"        what the backend offers and whether it is safe for vcfs\n"
		"  info [--json] URI\n"
		"        volume header, geometry, free space\n"
		"  hosts [--json] [--watch-ms MS] URI\n"
		"        heartbeat slots: host, generation, liveness, journal state\n"
		"  locks [--json] URI INODE\n"
		"        the lock record of an inode: mode, holders, versions\n"
		"URIs: file:/path | iscsi://[user%%pass@]host[:port]/iqn/lun |\n"
		"      nfs://server[:port]/export/file | rados://pool/image[?conf=PATH]\n"
		"See vcfs(8).\n");
}

static int cmd_probe(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "stress", required_argument, 0, 's' },
		{ "iters", required_argument, 0, 'i' },
		{ "json", no_argument, 0, 'j' },
		{ "timeout-ms", required_argument, 0, 'T' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 } };
	struct vcfs_disk_opts opts = { 0 };
	struct vcfs_probe_result r;
	struct vcfs_disk *d;
	int nproc = 0, iters = 100, json = 0, c, rc, safe;
	uint64_t final = 0, mis = 0, soff = 0, slen = 0;
	int stress_rc = 0, stressed = 0;
	char *uri;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': nproc = atoi(optarg); break;
		case 'i': iters = atoi(optarg); break;
		case 'j': json = 1; break;
		case 'T': opts.io_timeout_ms = (uint32_t)atoi(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || nproc < 0 || nproc > 256 || iters < 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	uri = vcfs_uri_redact(argv[optind]);	/* for messages: no password */
	if (!uri)
		return EXIT_OPERR;
	rc = vcfs_disk_open(argv[optind], &opts, &d);
	if (rc) {
		fprintf(stderr, "vcfs probe: cannot open %s: %s\n", uri, vcfs_strerror(rc));
		return EXIT_OPERR;
	}
	rc = vcfs_probe_run(d, 32, &r);
	if (!rc && nproc) {
		rc = vcfs_probe_scratch(d, &soff, &slen);
		if (!rc && !slen) {
			fprintf(stderr, "vcfs probe: %s holds a vcfs datastore: --stress would "
					"write to it; run it before mkfs.vcfs\n", uri);
			vcfs_disk_close(d);
			return EXIT_USAGE;
		}
	}
	vcfs_disk_close(d);
	if (rc) {
		fprintf(stderr, "vcfs probe: %s: %s\n", uri, vcfs_strerror(rc));
		return EXIT_OPERR;
	}
	if (nproc) {
		stressed = 1;
		stress_rc = vcfs_cas_stress(argv[optind], &opts, soff, nproc, iters, &final, &mis);
		/* leave the scratch sector as probe found it: zeroed is what it was
		 * before mkfs on a fresh target; the counter is not data */
		if (!vcfs_disk_open(argv[optind], &opts, &d)) {
			unsigned char *z = vcfs_disk_buf_alloc(r.info.lsec);
			if (z)
				vcfs_disk_write(d, soff, z, r.info.lsec, VCFS_IO_FUA);
			free(z);
			vcfs_disk_close(d);
		}
	}
	safe = r.info.cas_mode != VCFS_CAS_NONE && r.cas_ok && r.miscompare_ok &&
	       (!stressed || (!stress_rc && final == (uint64_t)nproc * (uint64_t)iters));

	if (json) {
		json_t *o = json_pack("{s:s, s:s, s:I, s:i, s:i, s:i, s:s, s:b, s:b, s:b, s:b,"
				      " s:{s:f, s:f}, s:{s:f, s:f}, s:{s:f, s:f}, s:b}",
			"target", r.info.desc, "backend", r.info.backend,
			"size", (json_int_t)r.info.size, "lsec", (int)r.info.lsec,
			"psec", (int)r.info.psec, "max_io", (int)r.info.max_io,
			"cas_mode", vcfs_cas_mode_name(r.info.cas_mode),
			"ats", r.info.cas_mode == VCFS_CAS_ATS,
			"cas_shared", !!(r.info.caps & VCFS_DISK_CAP_CAS_SHARED),
			"unmap", !!(r.info.caps & VCFS_DISK_CAP_UNMAP),
			"formatted", r.formatted,
			"read4k_us", "p50", us(r.read4k_p50), "p99", us(r.read4k_p99),
			"write4k_us", "p50", us(r.write4k_p50), "p99", us(r.write4k_p99),
			"cas_us", "p50", us(r.cas_p50), "p99", us(r.cas_p99),
			"safe", safe);
		if (o && stressed)
			json_object_set_new(o, "stress", json_pack("{s:i, s:i, s:I, s:I, s:b}",
				"procs", nproc, "iters", iters, "final", (json_int_t)final,
				"lost_races", (json_int_t)mis,
				"exact", final == (uint64_t)nproc * (uint64_t)iters));
		if (!o) {
			fprintf(stderr, "vcfs probe: out of memory\n");
			return EXIT_OPERR;
		}
		json_dumpf(o, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
		putchar('\n');
		json_decref(o);
	} else {
		printf("target:        %s\n", r.info.desc);
		printf("backend:       %s\n", r.info.backend);
		printf("size:          %llu bytes (%.1f GiB)\n", (unsigned long long)r.info.size,
		       (double)r.info.size / (1 << 30));
		printf("sector size:   %u logical, %u physical; max request %u KiB\n",
		       r.info.lsec, r.info.psec, r.info.max_io >> 10);
		printf("ATS:           %s\n", r.info.cas_mode == VCFS_CAS_ATS ? "yes" : "no");
		printf("CAS mode:      %s%s\n", vcfs_cas_mode_name(r.info.cas_mode),
		       r.info.cas_mode == VCFS_CAS_OFD ?
			       " (atomic among processes of this machine only)" :
		       r.info.cas_mode == VCFS_CAS_ATS_PR ?
			       " (SCSI-3 persistent reservation around read-compare-write)" : "");
		printf("UNMAP:         %s\n", r.info.caps & VCFS_DISK_CAP_UNMAP ? "yes" :
		       "no (freed space is zero-written)");
		printf("probe mode:    %s\n", r.formatted ?
		       "read-only (a vcfs datastore is here; identity compare-and-writes only)" :
		       "scratch area at the end of the target, restored afterwards");
		printf("4 KiB read:    p50 %.0f us, p99 %.0f us\n", us(r.read4k_p50),
		       us(r.read4k_p99));
		if (!r.formatted)
			printf("4 KiB write:   p50 %.0f us, p99 %.0f us (FUA)\n",
			       us(r.write4k_p50), us(r.write4k_p99));
		printf("CAS:           p50 %.0f us, p99 %.0f us; miscompare %s\n", us(r.cas_p50),
		       us(r.cas_p99), r.miscompare_ok ? "detected" : "NOT DETECTED");
		if (stressed)
			printf("stress:        %d processes x %d increments = %llu (%s), %llu lost races\n",
			       nproc, iters, (unsigned long long)final,
			       final == (uint64_t)nproc * (uint64_t)iters ? "exact" : "WRONG",
			       (unsigned long long)mis);
		printf("verdict:       %s\n", safe ?
		       "SAFE for a shared vcfs datastore" :
		       "UNSAFE: no working atomic compare-and-write; do not format it for sharing");
	}
	return safe ? 0 : EXIT_UNSAFE;
}

/* info, hosts, locks: open read-only, call the admin library. */
static int cmd_view(const char *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, 0, 'j' },
		{ "watch-ms", required_argument, 0, 'w' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 } };
	struct vcfs_disk_opts opts = { .flags = VCFS_DISK_RDONLY };
	struct vcfs_disk *d;
	int json = 0, c, rc, want = !strcmp(cmd, "locks") ? 2 : 1;
	uint32_t watch = 0;
	char *red;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'j': json = 1; break;
		case 'w': watch = (uint32_t)atoi(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - want) {
		usage(stderr);
		return EXIT_USAGE;
	}
	red = vcfs_uri_redact(argv[optind]);
	rc = vcfs_disk_open(argv[optind], &opts, &d);
	if (rc) {
		fprintf(stderr, "vcfs %s: cannot open %s: %s\n", cmd, red ? red : "datastore",
			vcfs_strerror(rc));
		free(red);
		return EXIT_OPERR;
	}
	if (!strcmp(cmd, "info"))
		rc = vcfs_admin_info(d, stdout, json);
	else if (!strcmp(cmd, "hosts"))
		rc = vcfs_admin_hosts(d, watch, stdout, json);
	else
		rc = vcfs_admin_inode_lock(d, strtoull(argv[optind + 1], NULL, 0), stdout, json);
	vcfs_disk_close(d);
	if (rc)
		fprintf(stderr, "vcfs %s: %s: %s\n", cmd, red ? red : "datastore",
			rc == -VCFS_ENOTVCFS ? "not a vcfs datastore (format it with mkfs.vcfs)" :
			vcfs_strerror(rc));
	free(red);
	return rc ? EXIT_OPERR : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "probe"))
		return cmd_probe(argc - 1, argv + 1);
	if (!strcmp(argv[1], "info") || !strcmp(argv[1], "hosts") || !strcmp(argv[1], "locks"))
		return cmd_view(argv[1], argc - 1, argv + 1);
	fprintf(stderr, "vcfs: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
