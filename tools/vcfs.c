/*
 * vcfs.c - the admin CLI (like vmkfstools and debugfs.ocfs2): a thin front end
 * that parses arguments and calls the libraries.
 *
 *   vcfs probe [--stress N] [--iters N] [--json] [--timeout-ms T] URI
 *   vcfs info [--json] URI
 *   vcfs hosts [--json] [--watch-ms MS] URI
 *   vcfs locks [--json] URI INODE | PATH
 *   vcfs disk create|clone|extend|inflate|reclaim ...
 *   vcfs break-lock [--yes] URI INODE
 *   vcfs grow [--size SIZE] [--json] URI
 *
 * Exit codes: 0 success (probe: the target is safe for vcfs), 1 the target
 * or object is unsafe / the check failed, 2 usage, 8 operational error.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/size.h"
#include "disk/disk.h"
#include "disk/probe.h"
#include "fs/admin.h"
#include "fs/fs.h"

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
		"  disk create --thin|--zeroed|--eager [--multiwriter] SIZE PATH\n"
		"  disk clone SRC DST | disk extend PATH SIZE | disk inflate PATH | disk reclaim PATH\n"
		"        VM disk files on a mounted datastore\n"
		"  locks [--json] URI INODE | locks [--json] PATH\n"
		"  grow [--size SIZE] [--json] URI\n"
		"        use space added to the LUN or file, online (finishes an interrupted grow)\n"
		"  break-lock [--yes] URI INODE\n"
		"        release a lock whose holder is dead (refuses a live holder)\n"
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
	int stress_rc = 0, stressed = 0, ret;
	char *uri;	/* argv's URI with any password replaced: for messages */

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
	uri = vcfs_uri_redact(argv[optind]);
	if (!uri) {
		fprintf(stderr, "vcfs probe: out of memory\n");
		return EXIT_OPERR;
	}
	rc = vcfs_disk_open(argv[optind], &opts, &d);
	if (rc) {
		fprintf(stderr, "vcfs probe: cannot open %s: %s\n", uri, vcfs_strerror(rc));
		ret = EXIT_OPERR;
		goto out_free_uri;
	}
	rc = vcfs_probe_run(d, 32, &r);
	if (!rc && nproc) {
		rc = vcfs_probe_scratch(d, &soff, &slen);
		if (!rc && !slen) {
			fprintf(stderr, "vcfs probe: %s holds a vcfs datastore: --stress would "
					"write to it; run it before mkfs.vcfs\n", uri);
			vcfs_disk_close(d);
			ret = EXIT_USAGE;
			goto out_free_uri;
		}
	}
	vcfs_disk_close(d);
	if (rc) {
		fprintf(stderr, "vcfs probe: %s: %s\n", uri, vcfs_strerror(rc));
		ret = EXIT_OPERR;
		goto out_free_uri;
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
			ret = EXIT_OPERR;
			goto out_free_uri;
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
	ret = safe ? 0 : EXIT_UNSAFE;
out_free_uri:
	free(uri);
	return ret;
}

/*
 * vcfs locks PATH: the file's inode from stat(2) (FUSE node id = inode number)
 * and its datastore from the mount's source in /proc/self/mountinfo.  The
 * source is the URI as mounted, minus any password, so this works for file:
 * datastores; for others the message asks for the URI.
 */
static int locks_by_path(const char *path, int json)
{
	struct vcfs_disk_opts opts = { .flags = VCFS_DISK_RDONLY };
	struct vcfs_disk *d;
	struct stat st;
	char line[4096], best_src[1024] = "", *real;
	size_t best = 0;
	FILE *mi;
	int rc;

	if (stat(path, &st) || !(real = realpath(path, NULL))) {
		fprintf(stderr, "vcfs locks: %s: %s\n", path, strerror(errno));
		return EXIT_OPERR;
	}
	mi = fopen("/proc/self/mountinfo", "r");
	while (mi && fgets(line, sizeof(line), mi)) {
		char mnt[1024], fstype[64], src[1024], *dash = strstr(line, " - ");
		size_t n;
		if (!dash || sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1 ||
		    sscanf(dash + 3, "%63s %1023s", fstype, src) != 2 || strcmp(fstype, "fuse.vcfs"))
			continue;
		n = strlen(mnt);
		if (!strncmp(real, mnt, n) && (real[n] == '/' || !real[n] || n == 1) && n > best) {
			best = n;
			snprintf(best_src, sizeof(best_src), "%s", src);
		}
	}
	if (mi)
		fclose(mi);
	free(real);
	if (!best) {
		fprintf(stderr, "vcfs locks: %s is not on a vcfs mount; give URI INODE instead\n", path);
		return EXIT_USAGE;
	}
	if (strstr(best_src, "***")) {
		fprintf(stderr, "vcfs locks: the datastore %s needs credentials; run "
			"vcfs locks URI %llu\n", best_src, (unsigned long long)st.st_ino);
		return EXIT_USAGE;
	}
	rc = vcfs_disk_open(best_src, &opts, &d);
	if (rc) {
		fprintf(stderr, "vcfs locks: cannot open %s: %s\n", best_src, vcfs_strerror(rc));
		return EXIT_OPERR;
	}
	rc = vcfs_admin_inode_lock(d, (uint64_t)st.st_ino, stdout, json);
	vcfs_disk_close(d);
	if (rc)
		fprintf(stderr, "vcfs locks: %s: %s\n", path, vcfs_strerror(rc));
	return rc ? EXIT_OPERR : 0;
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
	if (want == 2 && optind == argc - 1)
		return locks_by_path(argv[optind], json);
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

/* ---- vcfs break-lock ---- */

static int ask_yes(void *arg, const char *text)
{
	char line[16];

	if (arg)	/* --yes */
		return 1;
	printf("%s\nType 'yes' to break it: ", text);
	fflush(stdout);
	return fgets(line, sizeof(line), stdin) && !strcmp(line, "yes\n");
}

static int cmd_break_lock(int argc, char **argv)
{
	struct vcfs_disk *d;
	int yes = 0, i = 1, rc;
	char *red;

	if (argc > 1 && !strcmp(argv[1], "--yes")) {
		yes = 1;
		i++;
	}
	if (argc - i != 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	red = vcfs_uri_redact(argv[i]);
	rc = vcfs_disk_open(argv[i], NULL, &d);
	if (rc) {
		fprintf(stderr, "vcfs break-lock: cannot open %s: %s\n", red ? red : "datastore",
			vcfs_strerror(rc));
		free(red);
		return EXIT_OPERR;
	}
	rc = vcfs_admin_break_lock(d, strtoull(argv[i + 1], NULL, 0), ask_yes,
				   yes ? (void *)1 : NULL, stdout);
	vcfs_disk_close(d);
	free(red);
	if (rc == -EBUSY || rc == -ECANCELED)
		return EXIT_UNSAFE;
	if (rc) {
		fprintf(stderr, "vcfs break-lock: %s\n", vcfs_strerror(rc));
		return EXIT_OPERR;
	}
	return 0;
}

/* ---- vcfs disk: VM disk files on a mounted datastore (any filesystem works) ---- */

/* "10G", "512M", "4096" -> bytes; 0 on error (common/size.h). */
static uint64_t parse_size(const char *s)
{
	uint64_t v;

	return vcfs_parse_size(s, &v) ? 0 : v;
}

/* A progress bar on stderr when it is a terminal. */
static void progress(const char *what, uint64_t done, uint64_t total)
{
	static int last = -1;
	int pct;

	if (!isatty(2) || !total)
		return;
	pct = (int)(done * 100 / total);
	if (pct == last && done < total)
		return;
	last = pct;
	fprintf(stderr, "\r%s [%-40.*s] %3d%%", what, pct * 40 / 100,
		"########################################", pct);
	if (done >= total) {
		fputc('\n', stderr);
		last = -1;
	}
}

/*
 * vcfs grow: join the cluster as a short-lived host (its own heartbeat slot,
 * so the volume lock and the cluster locks it takes follow the same rules as
 * every host's) and grow; other hosts stay mounted.
 */
static int cmd_grow(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, 0, 's' },
		{ "json", no_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 }
	};
	struct vcfs_mount_opts mo = { .host_name = NULL, .grow = 1 };
	struct vcfs_grow_result r;
	struct vcfs_fs *fs;
	uint64_t want = 0;
	int json = 0, c, rc, rc2;
	char host[96], name[64], *red;

	optind = 1;
	while ((c = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			want = parse_size(optarg);
			if (!want) {
				fprintf(stderr, "vcfs grow: bad size '%s' (e.g. 2T, 500G)\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'j': json = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (gethostname(name, sizeof(name)))
		strcpy(name, "localhost");
	name[sizeof(name) - 1] = '\0';
	snprintf(host, sizeof(host), "%s (vcfs grow)", name);
	mo.host_name = host;
	red = vcfs_uri_redact(argv[optind]);
	rc = vcfs_fs_mount(argv[optind], &mo, &fs);
	if (rc) {
		fprintf(stderr, "vcfs grow: cannot join %s: %s\n", red ? red : "the datastore",
			vcfs_strerror(rc));
		free(red);
		return EXIT_OPERR;
	}
	rc = vcfs_fs_grow(fs, want, &r);
	rc2 = vcfs_fs_unmount(fs);
	if (!rc)
		rc = rc2;
	if (rc) {
		fprintf(stderr, "vcfs grow: %s: %s\n", red ? red : "datastore", vcfs_strerror(rc));
		free(red);
		return EXIT_OPERR;
	}
	free(red);
	if (json) {
		json_t *o = json_pack("{s:b, s:b, s:b, s:I, s:I, s:I, s:I, s:i, s:i}",
			"grown", r.grown, "resumed", r.resumed, "capped", r.capped,
			"old_bytes", (json_int_t)r.old_bytes, "new_bytes", (json_int_t)r.new_bytes,
			"limit_bytes", (json_int_t)r.limit_bytes,
			"added_large_blocks", (json_int_t)r.added_large,
			"old_clusters", (int)r.old_clusters, "new_clusters", (int)r.new_clusters);
		json_dumpf(o, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(o);
	} else if (r.grown) {
		printf("grew from %llu MiB to %llu MiB%s (large-block clusters %u -> %u); "
		       "can grow to %llu MiB at most\n",
		       (unsigned long long)(r.old_bytes >> 20), (unsigned long long)(r.new_bytes >> 20),
		       r.resumed ? ", finishing an interrupted grow" : "",
		       r.old_clusters, r.new_clusters, (unsigned long long)(r.limit_bytes >> 20));
	} else {
		printf("nothing to grow: the volume is %llu MiB and uses all of its backend "
		       "(limit %llu MiB)\n", (unsigned long long)(r.old_bytes >> 20),
		       (unsigned long long)(r.limit_bytes >> 20));
	}
	return 0;
}

#define DISK_CHUNK (1u << 20)

/* Write zeros over [off, off+len) in 1 MiB pieces (eager zeroing). */
static int write_zeros(int fd, uint64_t off, uint64_t len, uint64_t *done, uint64_t total,
		       const char *what)
{
	static char *z;

	if (!z && posix_memalign((void **)&z, 4096, DISK_CHUNK))
		return -ENOMEM;
	memset(z, 0, DISK_CHUNK);
	while (len) {
		size_t n = len < DISK_CHUNK ? (size_t)len : DISK_CHUNK;
		ssize_t w = pwrite(fd, z, n, (off_t)off);
		if (w < 0)
			return -errno;
		off += (uint64_t)w;
		len -= (uint64_t)w;
		*done += (uint64_t)w;
		progress(what, *done, total);
	}
	return 0;
}

static int disk_create(const char *kind, uint64_t size, const char *path, int mw)
{
	int fd, rc = 0;
	uint64_t done = 0;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0) {
		fprintf(stderr, "vcfs disk create: %s: %s\n", path, strerror(errno));
		return EXIT_OPERR;
	}
	if (ftruncate(fd, (off_t)size))
		rc = -errno;
	else if (mw && fsetxattr(fd, "user.vcfs.multiwriter", "1", 1, 0))
		rc = -errno;	/* not on vcfs (ENOTSUP), or an old daemon */
	else if (!strcmp(kind, "zeroed") && fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)size))
		rc = -errno;
	else if (!strcmp(kind, "eager")) {
		if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)size))
			rc = -errno;
		else
			rc = write_zeros(fd, 0, size, &done, size, "zeroing");
	}
	if (!rc && fsync(fd))
		rc = -errno;
	close(fd);
	if (rc) {
		fprintf(stderr, "vcfs disk create: %s: %s%s\n", path, strerror(-rc),
			rc == -ENOSPC ? " (the datastore is full: see vcfs info)" : "");
		unlink(path);
		return EXIT_OPERR;
	}
	printf("created %s%s disk %s, %llu bytes\n", kind, mw ? " multi-writer" : "", path,
	       (unsigned long long)size);
	return 0;
}

/* Copy only the data extents (SEEK_DATA/SEEK_HOLE): holes stay holes. */
static int disk_clone(const char *src, const char *dst)
{
	int in, out, rc = 0;
	struct stat st;
	off_t data, hole;
	uint64_t done = 0, copied = 0;
	char *buf = NULL;

	in = open(src, O_RDONLY);
	if (in < 0 || fstat(in, &st)) {
		fprintf(stderr, "vcfs disk clone: %s: %s\n", src, strerror(errno));
		return EXIT_OPERR;
	}
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL, st.st_mode & 0777);
	if (out < 0) {
		fprintf(stderr, "vcfs disk clone: %s: %s\n", dst, strerror(errno));
		close(in);
		return EXIT_OPERR;
	}
	if (posix_memalign((void **)&buf, 4096, DISK_CHUNK)) {
		rc = -ENOMEM;
		goto out;
	}
	if (ftruncate(out, st.st_size)) {
		rc = -errno;
		goto out;
	}
	for (data = 0; data < st.st_size; data = hole) {
		data = lseek(in, data, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break;	/* only a hole is left */
			rc = -errno;
			goto out;
		}
		hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0) {
			rc = -errno;
			goto out;
		}
		for (off_t o = data; o < hole; ) {
			size_t n = (size_t)(hole - o) < DISK_CHUNK ? (size_t)(hole - o) : DISK_CHUNK;
			ssize_t r = pread(in, buf, n, o);
			if (r <= 0) {
				rc = r < 0 ? -errno : -EIO;
				goto out;
			}
			if (pwrite(out, buf, (size_t)r, o) != r) {
				rc = -errno;
				goto out;
			}
			o += r;
			copied += (uint64_t)r;
			done = (uint64_t)o;
			progress("cloning", done, (uint64_t)st.st_size);
		}
	}
	progress("cloning", (uint64_t)st.st_size, (uint64_t)st.st_size);
	if (fsync(out))
		rc = -errno;
out:
	free(buf);
	close(in);
	close(out);
	if (rc) {
		fprintf(stderr, "vcfs disk clone: %s -> %s: %s\n", src, dst, strerror(-rc));
		unlink(dst);
		return EXIT_OPERR;
	}
	printf("cloned %s to %s: %llu bytes, %llu bytes of data copied, holes kept\n", src, dst,
	       (unsigned long long)st.st_size, (unsigned long long)copied);
	return 0;
}

/* Grow a disk; a fully allocated (thick) disk stays thick. */
static int disk_extend(const char *path, uint64_t size)
{
	struct stat st;
	int fd = open(path, O_RDWR), rc = 0, thick;

	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "vcfs disk extend: %s: %s\n", path, strerror(errno));
		return EXIT_OPERR;
	}
	if (size <= (uint64_t)st.st_size) {
		fprintf(stderr, "vcfs disk extend: %s is already %llu bytes; disks only grow\n",
			path, (unsigned long long)st.st_size);
		close(fd);
		return EXIT_USAGE;
	}
	thick = (uint64_t)st.st_blocks * 512 >= (uint64_t)st.st_size && st.st_size > 0;
	if (thick && fallocate(fd, 0, st.st_size, (off_t)(size - (uint64_t)st.st_size)))
		rc = -errno;
	else if (!thick && ftruncate(fd, (off_t)size))
		rc = -errno;
	if (!rc && fsync(fd))
		rc = -errno;
	close(fd);
	if (rc) {
		fprintf(stderr, "vcfs disk extend: %s: %s\n", path, strerror(-rc));
		return EXIT_OPERR;
	}
	printf("extended %s to %llu bytes (%s)\n", path, (unsigned long long)size,
	       thick ? "thick" : "thin");
	return 0;
}

/* Thin -> eager zeroed: allocate and zero every hole. */
static int disk_inflate(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDWR), rc = 0;
	off_t hole, data;
	uint64_t done = 0, filled = 0;

	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "vcfs disk inflate: %s: %s\n", path, strerror(errno));
		return EXIT_OPERR;
	}
	for (hole = 0; hole < st.st_size; hole = data) {
		hole = lseek(fd, hole, SEEK_HOLE);
		if (hole < 0 || hole >= st.st_size)
			break;
		data = lseek(fd, hole, SEEK_DATA);
		if (data < 0)
			data = st.st_size;
		done = (uint64_t)hole;
		rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, hole, data - hole) ? -errno : 0;
		if (!rc)
			rc = write_zeros(fd, (uint64_t)hole, (uint64_t)(data - hole), &done,
					 (uint64_t)st.st_size, "inflating");
		if (rc)
			break;
		filled += (uint64_t)(data - hole);
	}
	if (!rc && fsync(fd))
		rc = -errno;
	close(fd);
	if (rc) {
		fprintf(stderr, "vcfs disk inflate: %s: %s%s\n", path, strerror(-rc),
			rc == -ENOSPC ? " (the datastore is full)" : "");
		return EXIT_OPERR;
	}
	progress("inflating", (uint64_t)st.st_size, (uint64_t)st.st_size);
	printf("inflated %s: %llu bytes allocated and zeroed\n", path, (unsigned long long)filled);
	return 0;
}

/* Punch every all-zero 1 MiB piece: its space returns to the datastore. */
static int disk_reclaim(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDWR), rc = 0;
	char *buf = NULL;
	uint64_t punched = 0;

	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "vcfs disk reclaim: %s: %s\n", path, strerror(errno));
		return EXIT_OPERR;
	}
	if (posix_memalign((void **)&buf, 4096, DISK_CHUNK)) {
		close(fd);
		return EXIT_OPERR;
	}
	for (off_t o = 0; o < st.st_size; o += DISK_CHUNK) {
		off_t d = lseek(fd, o, SEEK_DATA);
		if (d < 0)
			break;
		if (d >= o + (off_t)DISK_CHUNK) {
			o = d - d % DISK_CHUNK - DISK_CHUNK;
			continue;
		}
		ssize_t r = pread(fd, buf, DISK_CHUNK, o);
		if (r < 0) {
			rc = -errno;
			break;
		}
		int zero = 1;
		for (ssize_t i = 0; i < r && zero; i += 8)
			zero = !*(uint64_t *)(buf + i);
		if (zero && r > 0) {
			if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, o, r)) {
				rc = -errno;
				break;
			}
			punched += (uint64_t)r;
		}
		progress("reclaiming", (uint64_t)o + (uint64_t)r, (uint64_t)st.st_size);
	}
	if (!rc && fsync(fd))
		rc = -errno;
	free(buf);
	close(fd);
	if (rc) {
		fprintf(stderr, "vcfs disk reclaim: %s: %s\n", path, strerror(-rc));
		return EXIT_OPERR;
	}
	progress("reclaiming", (uint64_t)st.st_size, (uint64_t)st.st_size);
	printf("reclaimed %llu bytes of zeros in %s\n", (unsigned long long)punched, path);
	return 0;
}

static int cmd_disk(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	uint64_t size;

	if (!strcmp(sub, "create") && argc == 6 && !strcmp(argv[2], "--multiwriter")) {
		/* --multiwriter first: the same with the kind next */
		char *k = argv[3];
		argv[3] = argv[2];
		argv[2] = k;
	}
	if (!strcmp(sub, "create") && (argc == 5 || (argc == 6 && !strcmp(argv[3], "--multiwriter"))) &&
	    (!strcmp(argv[2], "--thin") || !strcmp(argv[2], "--zeroed") ||
	     !strcmp(argv[2], "--eager"))) {
		int mw = argc == 6;
		size = parse_size(argv[3 + mw]);
		if (!size) {
			fprintf(stderr, "vcfs disk create: bad size '%s' (e.g. 10G)\n", argv[3 + mw]);
			return EXIT_USAGE;
		}
		return disk_create(argv[2] + 2, size, argv[4 + mw], mw);
	}
	if (!strcmp(sub, "clone") && argc == 4)
		return disk_clone(argv[2], argv[3]);
	if (!strcmp(sub, "extend") && argc == 4) {
		size = parse_size(argv[3]);
		if (!size) {
			fprintf(stderr, "vcfs disk extend: bad size '%s'\n", argv[3]);
			return EXIT_USAGE;
		}
		return disk_extend(argv[2], size);
	}
	if (!strcmp(sub, "inflate") && argc == 3)
		return disk_inflate(argv[2]);
	if (!strcmp(sub, "reclaim") && argc == 3)
		return disk_reclaim(argv[2]);
	usage(stderr);
	return EXIT_USAGE;
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
	if (!strcmp(argv[1], "disk"))
		return cmd_disk(argc - 1, argv + 1);
	if (!strcmp(argv[1], "break-lock"))
		return cmd_break_lock(argc - 1, argv + 1);
	if (!strcmp(argv[1], "grow"))
		return cmd_grow(argc - 1, argv + 1);
	if (!strcmp(argv[1], "info") || !strcmp(argv[1], "hosts") || !strcmp(argv[1], "locks"))
		return cmd_view(argv[1], argc - 1, argv + 1);
	fprintf(stderr, "vcfs: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
