/* inventory.c - this host's name -> folder map (symlinks under <state_dir>/vms). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "hypervisor/hv_err.h"
#include "hypervisor/inventory.h"

static int vms_dir(const struct vcvm_env *e, char *out, size_t n, bool create)
{
	snprintf(out, n, "%s/vms", e->state_dir);
	if (!create)
		return 0;
	if (mkdir(e->state_dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (mkdir(out, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int vcvm_inv_add(const struct vcvm_env *e, const char *dir, char *why, size_t whylen)
{
	char vd[300], link[400], abs[PATH_MAX], cur[PATH_MAX];
	struct vcvm_cfg c;
	ssize_t n;
	int rc;

	if (!realpath(dir, abs)) {
		rc = -errno;
		snprintf(why, whylen, "%s: %s", dir, strerror(errno));
		return rc;
	}
	rc = vcvm_cfg_load(abs, &c, why, whylen);
	if (rc < 0)
		return rc;
	rc = vms_dir(e, vd, sizeof(vd), true);
	if (rc < 0) {
		snprintf(why, whylen, "%s: %s", vd, strerror(-rc));
		goto out;
	}
	snprintf(link, sizeof(link), "%s/%s", vd, c.name);
	if (symlink(abs, link) == 0)
		goto out;
	rc = -errno;
	if (rc == -EEXIST) {
		n = readlink(link, cur, sizeof(cur) - 1);
		if (n > 0) {
			cur[n] = 0;
			if (strcmp(cur, abs) == 0) {
				rc = 0;
				goto out;
			}
		}
		rc = -VCVM_EEXISTS;
		snprintf(why, whylen, "a VM named %s is already registered here (folder %s)",
			 c.name, n > 0 ? cur : "?");
		goto out;
	}
	snprintf(why, whylen, "%s: %s", link, strerror(-rc));
out:
	vcvm_cfg_free(&c);
	return rc;
}

int vcvm_inv_remove(const struct vcvm_env *e, const char *name)
{
	char vd[300], link[400];

	if (!vcvm_name_ok(name))
		return -VCVM_ENOVM;
	vms_dir(e, vd, sizeof(vd), false);
	snprintf(link, sizeof(link), "%s/%s", vd, name);
	if (unlink(link) < 0)
		return errno == ENOENT ? -VCVM_ENOVM : -errno;
	return 0;
}

int vcvm_inv_resolve(const struct vcvm_env *e, const char *arg, char *dir, size_t dirlen,
		     char *why, size_t whylen)
{
	char vd[300], link[400], abs[PATH_MAX];
	ssize_t n;

	if (strchr(arg, '/')) {
		if (!realpath(arg, abs)) {
			snprintf(why, whylen, "%s: %s", arg, strerror(errno));
			return errno == ENOENT ? -VCVM_ENOVM : -errno;
		}
		if (snprintf(dir, dirlen, "%s", abs) >= (int)dirlen)
			return -ENAMETOOLONG;
		return 0;
	}
	if (!vcvm_name_ok(arg)) {
		snprintf(why, whylen, "\"%s\": %s", arg, vcvm_strerror(-VCVM_ENAME));
		return -VCVM_ENAME;
	}
	vms_dir(e, vd, sizeof(vd), false);
	snprintf(link, sizeof(link), "%s/%s", vd, arg);
	n = readlink(link, dir, dirlen - 1);
	if (n < 0) {
		snprintf(why, whylen, "no VM named %s on host %s (vcvm list; vcvm register FOLDER)",
			 arg, e->host);
		return -VCVM_ENOVM;
	}
	dir[n] = 0;
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int vcvm_inv_foreach(const struct vcvm_env *e,
		     int (*fn)(const char *name, const char *dir, void *arg), void *arg)
{
	char vd[300], link[600], dir[PATH_MAX];
	struct dirent **list = NULL;
	int i, n, rc = 0;
	ssize_t l;

	vms_dir(e, vd, sizeof(vd), false);
	n = scandir(vd, &list, NULL, by_name);
	if (n < 0)
		return errno == ENOENT ? 0 : -errno;
	for (i = 0; i < n; i++) {
		if (rc == 0 && list[i]->d_name[0] != '.') {
			snprintf(link, sizeof(link), "%s/%s", vd, list[i]->d_name);
			l = readlink(link, dir, sizeof(dir) - 1);
			if (l > 0) {
				dir[l] = 0;
				rc = fn(list[i]->d_name, dir, arg);
			}
		}
		free(list[i]);
	}
	free(list);
	return rc;
}
