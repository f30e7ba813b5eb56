/*
 * fsck.vcfs.c - check and repair a datastore offline (front end of fs/fsck.c).
 *
 *   fsck.vcfs [-n | -y | -p] [-f] [-v] [-l] URI
 *
 * Exit status as fsck(8): 0 clean, 1 problems fixed, 4 problems left
 * uncorrected, 8 operational error (cannot open, live hosts, I/O error),
 * 16 usage error.
 */
#include <getopt.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/clock.h"
#include "common/log.h"
#include "disk/disk.h"
#include "fs/fsck.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: fsck.vcfs [-n | -y | -p] [-f] [-v] [-l] URI\n"
		"  -n   check only, change nothing (default)\n"
		"  -y   repair every problem found\n"
		"  -p   preen: repair what is safe without a human (-a is the same)\n"
		"  -f   with -n: check even though hosts have it mounted (results may be\n"
		"       inconsistent); repairs are always refused while hosts are live\n"
		"  -v   say what each pass does\n"
		"  -l   list the problem codes and their fixes\n"
		"exit: 0 clean, 1 fixed, 4 left uncorrected, 8 operational error, 16 usage\n"
		"See fsck.vcfs(8).\n");
}

/* A progress line on stderr (a terminal only): pass, name, bar, percent. */
static void progress(void *arg, int pass, const char *name, uint64_t done, uint64_t total)
{
	static int last = -1, last_pass;
	int pct = total ? (int)(done * 100 / total) : 100;

	(void)arg;
	if (!pass) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		last = -1;
		return;
	}
	if (pct == last && pass == last_pass)
		return;
	last = pct;
	last_pass = pass;
	fprintf(stderr, "\rpass %d/%d %-24s [%-30.*s] %3d%%", pass, VCFS_FSCK_PASSES, name,
		pct * 30 / 100, "##############################", pct);
	if (pass == VCFS_FSCK_PASSES && done >= total)
		fputs("\r\033[K", stderr);	/* done: leave the table clean */
}

int main(int argc, char **argv)
{
	struct vcfs_fsck_opts o = { .mode = VCFS_FSCK_CHECK };
	struct vcfs_fsck_stats st;
	struct vcfs_disk_opts dopts = { 0 };
	struct vcfs_disk *d;
	int c, rc, nmodes = 0;
	uint64_t t0;
	char *red;

	while ((c = getopt(argc, argv, "nypafvlWh")) != -1) {
		switch (c) {
		case 'n': o.mode = VCFS_FSCK_CHECK; nmodes++; break;
		case 'y': o.mode = VCFS_FSCK_REPAIR; nmodes++; break;
		case 'p': case 'a': o.mode = VCFS_FSCK_PREEN; nmodes++; break;
		case 'f': o.force_live = 1; break;
		case 'v': o.verbose = 1; break;
		case 'W': o.skip_live_wait = 1; break;	/* tests only: trust the slots */
		case 'l': vcfs_fsck_list_problems(stdout); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 16;
		}
	}
	if (optind != argc - 1 || nmodes > 1) {
		usage(stderr);
		return 16;
	}
	red = vcfs_uri_redact(argv[optind]);
	if (o.mode == VCFS_FSCK_CHECK)
		dopts.flags |= VCFS_DISK_RDONLY;
	rc = vcfs_disk_open(argv[optind], &dopts, &d);
	if (rc) {
		fprintf(stderr, "fsck.vcfs: cannot open %s: %s\n", red ? red : "datastore",
			vcfs_strerror(rc));
		free(red);
		return 8;
	}
	if (isatty(2) && !o.verbose)
		o.progress = progress;
	t0 = vcfs_now_ns();
	rc = vcfs_fsck(d, &o, &st);
	if (o.progress && rc == 8)
		fputc('\n', stderr);
	vcfs_disk_close(d);
	if (rc != 8)
		printf("%s: %llu inodes (%llu directories, %llu files), %llu data blocks, "
		       "%llu small blocks; %u problem(s), %u fixed, %u left; %.2f s\n",
		       red ? red : "datastore", (unsigned long long)st.inodes,
		       (unsigned long long)st.dirs, (unsigned long long)st.files,
		       (unsigned long long)st.data_blocks, (unsigned long long)st.small_blocks,
		       st.found, st.fixed, st.left, (double)(vcfs_now_ns() - t0) / 1e9);
	else
		fprintf(stderr, "fsck.vcfs: %s: check aborted (operational error, see above)\n",
			red ? red : "datastore");
	if (rc == 4)
		printf("run fsck.vcfs -y to repair what was left\n");
	free(red);
	return rc;
}
