/*
 * ck_tmpdir.h - main() of a libcheck suite that needs scratch files.
 *
 * The run gets a fresh directory under /var/tmp (O_DIRECT needs a real
 * filesystem, and /tmp may be tmpfs), made before the tests fork so that
 * every test sees the same path, and swept afterwards: a failed test exits
 * without its teardown and leaves its images behind.  Header-only: each
 * suite is a program of its own.
 */
#ifndef VCFS_CK_TMPDIR_H
#define VCFS_CK_TMPDIR_H

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Remove the files in dir, then dir. */
static inline void ck_sweep_dir(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	char path[512];

	while (dp && (e = readdir(dp))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (dp)
		closedir(dp);
	rmdir(dir);
}

/* Make the directory tmpl names (".../name-XXXXXX", filled in place), run
 * every test of s (forked, unless CK_FORK=no), sweep the directory; the exit
 * status for main. */
static inline int ck_run_in_tmpdir(Suite *s, char *tmpl)
{
	SRunner *sr;
	int nf;

	if (!mkdtemp(tmpl)) {
		perror(tmpl);
		return 1;
	}
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	ck_sweep_dir(tmpl);
	return nf ? 1 : 0;
}

#endif
