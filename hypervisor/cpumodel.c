/*
 * cpumodel.c - CPU models this host runs, and the cluster's common model
 * (cpumodel.h has the design).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include "hypervisor/cpumodel.h"
#include "hypervisor/hv_int.h"

/*
 * Named x86 models by rough feature level, lowest first: Intel's and AMD's
 * lines interleaved, so that the common model of a one-vendor cluster is
 * that vendor's newest common generation.  Versioned aliases (-v1, -IBRS)
 * are left out: a cluster agrees on a plain name.
 */
static const char *const ladder[] = {
	"qemu64", "kvm64", "Opteron_G1", "Conroe", "Opteron_G2", "Penryn", "Opteron_G3",
	"Nehalem", "Westmere", "Opteron_G4", "SandyBridge", "IvyBridge", "Opteron_G5",
	"Haswell-noTSX", "Haswell", "Broadwell-noTSX", "Broadwell", "EPYC",
	"Skylake-Client", "Skylake-Server", "EPYC-Rome", "Cascadelake-Server", "Cooperlake",
	"EPYC-Milan", "Icelake-Server", "SapphireRapids",
};
#define NLADDER (sizeof(ladder) / sizeof(ladder[0]))

#define PROBE_OUT (1u << 20)

static int rank(const char *name)
{
	size_t i;

	for (i = 0; i < NLADDER; i++)
		if (strcmp(ladder[i], name) == 0)
			return (int)i;
	return -1;
}

static int allowed(const char *policy, const char *name)
{
	char buf[1024], *t, *save = NULL;

	if (!policy || !*policy)
		return 1;
	snprintf(buf, sizeof(buf), "%s", policy);
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (strcmp(t, name) == 0)
			return 1;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	int rx = rank(x), ry = rank(y);

	if (rx >= 0 || ry >= 0)
		return rx < 0 ? 1 : ry < 0 ? -1 : rx - ry;
	return strcmp(x, y);
}

/* The "return" array of query-cpu-definitions among QEMU's output lines. */
static json_t *find_definitions(char *out)
{
	char *line, *save = NULL;

	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_t *j = json_loads(line, 0, NULL), *r = json_object_get(j, "return");

		if (json_is_array(r) && json_array_size(r) &&
		    json_object_get(json_array_get(r, 0), "name")) {
			json_incref(r);
			json_decref(j);
			return r;
		}
		json_decref(j);
	}
	return NULL;
}

/*
 * The probe starts QEMU (about 80 ms under TCG), once per HOST_INFO and per
 * migration's PREPARE: a process keeps its last answer for the same QEMU
 * binary (path, inode, size, mtime: an upgrade probes again), accelerator
 * and policy.  An unresolvable binary is never cached.
 */
static pthread_mutex_t probe_mu = PTHREAD_MUTEX_INITIALIZER;
static char probe_key[PATH_MAX + 512];
static json_t *probe_models;

/* The cache key of e's QEMU with policy, or -1 if the binary is not found. */
static int probe_key_of(const struct vcvm_env *e, const char *policy, char *key, size_t n)
{
	char path[PATH_MAX];
	struct stat st;

	if (hv_find_prog(e->qemu, path, sizeof(path)) || stat(path, &st))
		return -1;
	return snprintf(key, n, "%s|%llu|%llu|%lld.%09ld|%s|%s", path,
			(unsigned long long)st.st_ino, (unsigned long long)st.st_size,
			(long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, e->accel,
			policy ? policy : "") < (int)n ? 0 : -1;
}

static int cpu_probe(const struct vcvm_env *e, json_t **models, char *why, size_t whylen);

int vcvm_cpu_usable(const struct vcvm_env *e, json_t **models, char *why, size_t whylen)
{
	char key[sizeof(probe_key)];
	int cacheable = probe_key_of(e, getenv("VCVM_CPU_MODELS"), key, sizeof(key)) == 0, rc;

	pthread_mutex_lock(&probe_mu);
	if (cacheable && probe_models && !strcmp(key, probe_key)) {
		*models = json_deep_copy(probe_models);
		pthread_mutex_unlock(&probe_mu);
		return *models ? 0 : -ENOMEM;
	}
	pthread_mutex_unlock(&probe_mu);
	rc = cpu_probe(e, models, why, whylen);
	if (!rc && cacheable) {
		json_t *copy = json_deep_copy(*models);

		pthread_mutex_lock(&probe_mu);
		json_decref(probe_models);
		probe_models = copy;
		strcpy(probe_key, key);
		pthread_mutex_unlock(&probe_mu);
	}
	return rc;
}

static int cpu_probe(const struct vcvm_env *e, json_t **models, char *why, size_t whylen)
{
	static const char in[] = "{\"execute\": \"qmp_capabilities\"}\n"
				 "{\"execute\": \"query-cpu-definitions\"}\n"
				 "{\"execute\": \"quit\"}\n";
	char *argv[] = { (char *)e->qemu, "-machine", "none", "-accel", (char *)e->accel,
			 "-nodefaults", "-no-user-config", "-display", "none", "-qmp", "stdio",
			 NULL };
	const char *policy = getenv("VCVM_CPU_MODELS");
	char err[256], *out = malloc(PROBE_OUT);
	const char **names = NULL;
	json_t *defs, *d;
	size_t i, n = 0;
	int rc;

	*models = NULL;
	if (!out)
		return -ENOMEM;
	rc = hv_run(argv, in, out, PROBE_OUT, err, sizeof(err));
	defs = rc == 0 ? find_definitions(out) : NULL;
	free(out);
	if (!defs) {
		hv_fmt(why, whylen, "%s (-accel %s) did not list its CPU models: %s", e->qemu,
		       e->accel, rc < 0 ? strerror(-rc) : err[0] ? err : "no query-cpu-definitions answer");
		return rc < 0 ? rc : -EIO;
	}
	names = calloc(json_array_size(defs) + 1, sizeof(*names));
	if (!names) {
		json_decref(defs);
		return -ENOMEM;
	}
	json_array_foreach(defs, i, d) {
		const char *name = json_string_value(json_object_get(d, "name"));
		json_t *unav = json_object_get(d, "unavailable-features");

		if (!name || !strcmp(name, "max") || !strcmp(name, "host") || !strcmp(name, "base"))
			continue;
		if (json_is_false(json_object_get(d, "migration-safe")) ||
		    (json_is_array(unav) && json_array_size(unav)) || !allowed(policy, name))
			continue;
		names[n++] = name;
	}
	qsort(names, n, sizeof(*names), by_name);
	*models = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(*models, json_string(names[i]));
	free(names);
	json_decref(defs);
	if (!n) {
		json_decref(*models);
		*models = NULL;
		hv_fmt(why, whylen, "this host runs no CPU model%s", policy && *policy ?
		       " that VCVM_CPU_MODELS (--cpu-models) allows" : "");
		return -ENOENT;
	}
	return 0;
}

int vcvm_cpu_has(json_t *models, const char *name)
{
	json_t *v;
	size_t i;

	json_array_foreach(models, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
			return 1;
	return 0;
}

const char *vcvm_cpu_common(json_t *const *sets, size_t n)
{
	size_t i, k;

	for (i = NLADDER; i-- > 0;) {
		for (k = 0; k < n && vcvm_cpu_has(sets[k], ladder[i]); k++)
			;
		if (n && k == n)
			return ladder[i];
	}
	return "";
}

static int cluster_path(const char *datastore, char *out, size_t n, const char *suffix)
{
	return hv_fmt(out, n, "%s/%s%s", datastore, VCVM_CLUSTER_FILE, suffix);
}

int vcvm_cluster_cpu_get(const char *datastore, char *out, size_t n, char *why, size_t whylen)
{
	char path[4200];
	json_error_t je;
	json_t *j;
	const char *m;

	out[0] = '\0';
	if (cluster_path(datastore, path, sizeof(path), "") < 0)
		return -ENAMETOOLONG;
	if (access(path, F_OK) < 0)
		return errno == ENOENT ? 0 : -errno;
	j = json_load_file(path, 0, &je);
	if (!j) {
		hv_fmt(why, whylen, "%s: %s (line %d): fix or remove it, or run vcvm cluster-cpu",
		       path, je.text, je.line);
		return -EINVAL;
	}
	m = json_string_value(json_object_get(j, "cpu_model"));
	if (!m || !*m || strlen(m) >= n) {
		hv_fmt(why, whylen, "%s: no usable \"cpu_model\": run vcvm cluster-cpu", path);
		json_decref(j);
		return -EINVAL;
	}
	snprintf(out, n, "%s", m);
	json_decref(j);
	return 0;
}

int vcvm_cluster_cpu_set(const char *datastore, const char *model, json_t *hosts,
			 const char *by, char *why, size_t whylen)
{
	char path[4200], tmp[4200];
	json_t *j;
	char *text;
	int fd, rc = 0;

	if (cluster_path(datastore, path, sizeof(path), "") < 0 ||
	    cluster_path(datastore, tmp, sizeof(tmp), ".tmp") < 0)
		return -ENAMETOOLONG;
	j = json_pack("{s:i, s:s, s:O, s:s, s:I}", "format", 1, "cpu_model", model, "hosts", hosts,
		      "set_by", by, "set_at", (json_int_t)time(NULL));
	text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	if (!text)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	errno = 0;
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    write(fd, "\n", 1) != 1 || fsync(fd) < 0)
		rc = errno ? -errno : -EIO;
	if (fd >= 0 && close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	free(text);
	if (rc) {
		unlink(tmp);
		hv_fmt(why, whylen, "cannot write %s: %s", path, strerror(-rc));
		return rc;
	}
	fd = open(datastore, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}
