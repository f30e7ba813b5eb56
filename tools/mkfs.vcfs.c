/*
 * mkfs.vcfs.c - format a datastore (front end of fs/mkfs.c).
 *
 *   mkfs.vcfs [-L label] [-H max-hosts] [-b block-size] [-T io-timeout-ms]
 *             [-J journal-size] [-N inodes] [-G grow-limit] [-f] [-n] [-q] URI
 *
 * Exit codes: 0 formatted, 1 refused (live hosts, too small, bad geometry),
 * 2 usage, 8 operational error (cannot open, I/O error).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>
#include "common/clock.h"
#include "common/log.h"
#include "common/size.h"
#include "disk/disk.h"
#include "fs/mkfs.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mkfs.vcfs [-L label] [-H max-hosts] [-b block-size] [-T io-timeout-ms]\n"
		"                 [-J journal-size] [-N inodes] [-G grow-limit] [-f] [-n] [-q] URI\n"
		"  -L label          volume label (up to 63 bytes)\n"
		"  -H max-hosts      hosts that may mount at once, 1..256 (default 64)\n"
		"  -b block-size     file block size, 64K..64M, power of two (default 1M)\n"
		"  -T io-timeout-ms  I/O timeout T every lease timeout derives from (default 1000)\n"
		"  -J journal-size   journal per host (default 1M, less on small volumes)\n"
		"  -N inodes         number of inodes (default one per 4 MiB)\n"
		"  -G grow-limit     largest size vcfs grow may reach later (default 16 x the\n"
		"                    volume, at most 64T; never below the volume)\n"
		"  -f                format even if hosts are heartbeating on the datastore\n"
		"  -n                print the layout, write nothing\n"
		"  -q                quiet\n"
		"URIs: file:/path | iscsi://[user%%pass@]host[:port]/iqn/lun |\n"
		"      nfs://server[:port]/export/file | rados://pool/image[?conf=PATH]\n"
		"See mkfs.vcfs(8).\n");
}

/* "10G", "512M", "4096" -> bytes; 0 on error (common/size.h). */
static uint64_t parse_size(const char *s)
{
	uint64_t v;

	return vcfs_parse_size(s, &v) ? 0 : v;
}

static void print_layout(const struct vcfs_sb *sb, const char *desc)
{
	char u[37];
	uint64_t mib = sb->volume_blocks * VCFS_BLK >> 20;

	uuid_unparse(sb->uuid, u);
	printf("datastore   %s\n", desc);
	printf("label       %s\n", sb->label[0] ? sb->label : "(none)");
	printf("uuid        %s\n", u);
	printf("size        %llu MiB (%llu blocks of 4 KiB)\n", (unsigned long long)mib,
	       (unsigned long long)sb->volume_blocks);
	printf("hosts       %u heartbeat slots, journal %u KiB each\n", sb->max_hosts,
	       sb->journal_blocks * 4);
	printf("timing      T=%u ms: renew every %u ms, fence after %u ms, dead after %u ms\n",
	       sb->io_timeout_ms, sb->io_timeout_ms, 4 * sb->io_timeout_ms,
	       7 * sb->io_timeout_ms);
	printf("inodes      %llu in %u clusters of %u\n", (unsigned long long)sb->ninodes,
	       sb->ninode_clusters, sb->inode_cluster);
	printf("small       %llu blocks of 4 KiB in %u clusters of %u\n",
	       (unsigned long long)sb->nsmall, sb->nsmall_clusters, sb->small_cluster);
	printf("large       %llu blocks of %u KiB in %u clusters of %u\n",
	       (unsigned long long)sb->nlarge, sb->lblock_size >> 10, sb->nlarge_clusters,
	       sb->large_cluster);
	printf("capacity    %llu MiB for file data\n",
	       (unsigned long long)(sb->nlarge * sb->lblock_size >> 20));
	printf("grow limit  %llu MiB (vcfs grow; room for %u large-block clusters)\n",
	       (unsigned long long)(vcfs_grow_limit(sb) >> 20), sb->nlarge_clusters_max);
}

int main(int argc, char **argv)
{
	struct vcfs_mkfs_params p = { 0 };
	struct vcfs_disk_opts o = { 0 };
	struct vcfs_disk *d;
	struct vcfs_sb sb;
	unsigned flags = 0;
	int c, rc, quiet = 0;
	uint64_t v, t0;
	char *red;

	while ((c = getopt(argc, argv, "L:H:b:T:J:N:G:fnqh")) != -1) {
		switch (c) {
		case 'L': p.label = optarg; break;
		case 'H': p.max_hosts = (uint32_t)atoi(optarg);
			if (!p.max_hosts) goto bad;
			break;
		case 'b': v = parse_size(optarg);
			if (!v || v > (1u << 30)) goto bad;
			p.lblock_size = (uint32_t)v; break;
		case 'T': p.io_timeout_ms = (uint32_t)atoi(optarg);
			if (!p.io_timeout_ms) goto bad;
			break;
		case 'J': v = parse_size(optarg);
			if (!v || v % VCFS_BLK || v / VCFS_BLK > (1u << 20)) goto bad;
			p.journal_blocks = (uint32_t)(v / VCFS_BLK); break;
		case 'N': p.inodes = strtoull(optarg, NULL, 10);
			if (!p.inodes) goto bad;
			break;
		case 'G': v = parse_size(optarg);
			if (!v) { fprintf(stderr, "mkfs.vcfs: bad grow limit '%s'\n", optarg); return 2; }
			p.grow_limit_bytes = v; break;
		case 'f': flags |= VCFS_MKFS_FORCE; break;
		case 'n': flags |= VCFS_MKFS_DRYRUN; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	red = vcfs_uri_redact(argv[optind]);
	o.io_timeout_ms = 5000;
	rc = vcfs_disk_open(argv[optind], &o, &d);
	if (rc) {
		fprintf(stderr, "mkfs.vcfs: cannot open %s: %s\n", red ? red : "datastore",
			vcfs_strerror(rc));
		free(red);
		return 8;
	}
	if (vcfs_disk_info(d)->cas_mode == VCFS_CAS_NONE)
		fprintf(stderr, "mkfs.vcfs: warning: %s offers no atomic compare-and-write; "
			"only one host may ever mount it (see vcfs probe)\n",
			vcfs_disk_info(d)->desc);
	t0 = vcfs_now_ns();
	rc = vcfs_mkfs(d, &p, flags, &sb);
	if (!rc && !quiet) {
		print_layout(&sb, vcfs_disk_info(d)->desc);
		if (flags & VCFS_MKFS_DRYRUN)
			printf("dry run: nothing written\n");
		else
			printf("formatted in %.2f s\n", (double)(vcfs_now_ns() - t0) / 1e9);
	}
	vcfs_disk_close(d);
	if (rc)
		fprintf(stderr, "mkfs.vcfs: %s: %s\n", red ? red : "datastore", vcfs_strerror(rc));
	free(red);
	if (!rc)
		return 0;
	return (rc == -VCFS_ELIVE || rc == -VCFS_ETOOSMALL || rc == -EINVAL ||
		rc == -ENAMETOOLONG) ? 1 : 8;
bad:
	fprintf(stderr, "mkfs.vcfs: bad value for -%c: '%s'\n", c, optarg);
	usage(stderr);
	return 2;
}
