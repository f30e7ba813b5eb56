/*
 * vmcfg.c - vm.json: parse, validate, write atomically.
 *
 * Parsing and validation are separate passes: from_json() only checks types
 * (so that a wrong type is named as such), validate() checks values, and both
 * write the offending field's path into why.  save() validates first, so no
 * invalid file is ever written by vcvm.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include "common/log.h"
#include "hypervisor/hv_err.h"
#include "hypervisor/vmcfg.h"

#define MEM_MIN_MIB	16u
#define MEM_MAX_MIB	(1024u * 1024u)
#define VCPUS_MAX	64u

static const char *const fmt_names[] = { "raw", "qcow2" };
static const char *const bus_names[] = { "virtio", "scsi", "sata" };
static const char *const ha_names[] = { "disabled", "low", "medium", "high" };

const char *vcvm_fmt_name(enum vcvm_disk_format f)
{
	return (unsigned)f < 2 ? fmt_names[f] : "?";
}

const char *vcvm_bus_name(enum vcvm_disk_bus b)
{
	return (unsigned)b < 3 ? bus_names[b] : "?";
}

const char *vcvm_ha_name(enum vcvm_ha_priority p)
{
	return (unsigned)p < 4 ? ha_names[p] : "?";
}

static int lookup(const char *const *names, int n, const char *s)
{
	int i;

	for (i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

__attribute__((format(printf, 3, 4)))
static int bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -VCVM_ECONFIG;
}

bool vcvm_name_ok(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > VCVM_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
			return false;
	return true;
}

int vcvm_cfg_init(struct vcvm_cfg *c, const char *name)
{
	uuid_t u;

	memset(c, 0, sizeof(*c));
	if (!vcvm_name_ok(name))
		return -VCVM_ENAME;
	c->format = VCVM_CFG_FORMAT;
	snprintf(c->name, sizeof(c->name), "%s", name);
	uuid_generate_random(u);
	uuid_unparse_lower(u, c->uuid);
	c->memory_mib = 256;
	c->vcpus = 1;
	snprintf(c->cpu_model, sizeof(c->cpu_model), "qemu64");
	snprintf(c->machine, sizeof(c->machine), "q35");
	snprintf(c->serial_log, sizeof(c->serial_log), "serial.log");
	c->ha.priority = VCVM_HA_MEDIUM;
	return 0;
}

/* ---- value checks ---- */

/* A path from the config: non-empty, no "..", no control characters. */
static bool path_ok(const char *p)
{
	const char *s;

	if (!*p)
		return false;
	for (s = p; *s; s++)
		if ((unsigned char)*s < 0x20)
			return false;
	for (s = p; (s = strstr(s, "..")); s += 2)
		if ((s == p || s[-1] == '/') && (s[2] == 0 || s[2] == '/'))
			return false;
	return true;
}

static bool token_ok(const char *s, const char *extra)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
			return false;
	return true;
}

static bool mac_ok(const char *m)
{
	int i;

	if (strlen(m) != 17)
		return false;
	for (i = 0; i < 17; i++) {
		if (i % 3 == 2 ? m[i] != ':' : !isxdigit((unsigned char)m[i]))
			return false;
	}
	/* a unicast address: the group bit of the first octet must be clear */
	return (strtol(m, NULL, 16) & 1) == 0;
}

int vcvm_cfg_validate(const struct vcvm_cfg *c, char *why, size_t whylen)
{
	uuid_t u;
	unsigned i, j;

	if (c->format < 1 || c->format > VCVM_CFG_FORMAT)
		return bad(why, whylen, "format: %d is not a format this vcvm writes (1..%d)",
			   c->format, VCVM_CFG_FORMAT);
	if (!vcvm_name_ok(c->name))
		return bad(why, whylen, "name: \"%s\" is not a valid VM name (letters, digits, "
			   "'.', '_', '-'; 1..%d; not starting with '.' or '-')", c->name, VCVM_NAME_MAX);
	if (uuid_parse(c->uuid, u) != 0)
		return bad(why, whylen, "uuid: \"%s\" is not a UUID", c->uuid);
	if (c->memory_mib < MEM_MIN_MIB || c->memory_mib > MEM_MAX_MIB)
		return bad(why, whylen, "memory_mib: must be between %u and %u (got %u)",
			   MEM_MIN_MIB, MEM_MAX_MIB, c->memory_mib);
	if (c->vcpus < 1 || c->vcpus > VCPUS_MAX)
		return bad(why, whylen, "vcpus: must be between 1 and %u (got %u)", VCPUS_MAX, c->vcpus);
	if (!token_ok(c->cpu_model, "_-.,=+"))
		return bad(why, whylen, "cpu_model: \"%s\" is not a CPU model name", c->cpu_model);
	if (strcmp(c->machine, "q35") != 0 && strncmp(c->machine, "pc-q35-", 7) != 0)
		return bad(why, whylen, "machine: must be q35 or pc-q35-X.Y (got \"%s\")", c->machine);
	if (c->kernel[0] && !path_ok(c->kernel))
		return bad(why, whylen, "boot.kernel: \"%s\" is not an allowed path", c->kernel);
	if (c->initrd[0] && !path_ok(c->initrd))
		return bad(why, whylen, "boot.initrd: \"%s\" is not an allowed path", c->initrd);
	if ((c->initrd[0] || c->append[0]) && !c->kernel[0])
		return bad(why, whylen, "boot.kernel: needed when boot.initrd or boot.append is set");
	if (c->ndisks > VCVM_MAX_DISKS)
		return bad(why, whylen, "disks: at most %d", VCVM_MAX_DISKS);
	for (i = 0; i < c->ndisks; i++) {
		const struct vcvm_disk *d = &c->disks[i];

		if (!path_ok(d->file))
			return bad(why, whylen, "disks[%u].file: \"%s\" is not an allowed path "
				   "(non-empty, no \"..\")", i, d->file);
		if ((unsigned)d->format > VCVM_FMT_QCOW2)
			return bad(why, whylen, "disks[%u].format: must be raw or qcow2", i);
		if ((unsigned)d->bus > VCVM_BUS_SATA)
			return bad(why, whylen, "disks[%u].bus: must be virtio, scsi or sata", i);
		if (d->io_shares < 1 || d->io_shares > 1000000)
			return bad(why, whylen, "disks[%u].io.shares: must be between 1 and 1000000 "
				   "(got %u)", i, d->io_shares);
		for (j = 0; j < i; j++)
			if (strcmp(c->disks[j].file, d->file) == 0)
				return bad(why, whylen, "disks[%u].file: \"%s\" is already disks[%u]",
					   i, d->file, j);
	}
	if (c->nnics > VCVM_MAX_NICS)
		return bad(why, whylen, "nics: at most %d", VCVM_MAX_NICS);
	for (i = 0; i < c->nnics; i++) {
		const struct vcvm_nic *n = &c->nics[i];

		if (strcmp(n->model, "virtio-net-pci") && strcmp(n->model, "e1000e"))
			return bad(why, whylen, "nics[%u].model: must be virtio-net-pci or e1000e "
				   "(got \"%s\")", i, n->model);
		if (!mac_ok(n->mac))
			return bad(why, whylen, "nics[%u].mac: \"%s\" is not a unicast MAC "
				   "(xx:xx:xx:xx:xx:xx)", i, n->mac);
		if (strcmp(n->network, "user") && strcmp(n->network, "none"))
			return bad(why, whylen, "nics[%u].network: must be user or none (got \"%s\")",
				   i, n->network);
	}
	if (!path_ok(c->serial_log))
		return bad(why, whylen, "serial_log: \"%s\" is not an allowed path", c->serial_log);
	if ((unsigned)c->ha.priority > VCVM_HA_HIGH)
		return bad(why, whylen, "ha.priority: must be disabled, low, medium or high");
	if (c->ha.last_host[0] && !token_ok(c->ha.last_host, "._-"))
		return bad(why, whylen, "ha.last_host: \"%s\" is not a host name", c->ha.last_host);
	if (c->drs.ngroups > VCVM_MAX_GROUPS)
		return bad(why, whylen, "drs.groups: at most %d", VCVM_MAX_GROUPS);
	for (i = 0; i < c->drs.ngroups; i++)
		if (!vcvm_name_ok(c->drs.groups[i]))
			return bad(why, whylen, "drs.groups[%u]: \"%s\" is not a valid group name",
				   i, c->drs.groups[i]);
	if (c->ft.secondary[0] && !token_ok(c->ft.secondary, "._-"))
		return bad(why, whylen, "ft.secondary: \"%s\" is not a host name", c->ft.secondary);
	if (c->nalarms > VCVM_MAX_ALARMS)
		return bad(why, whylen, "alarms: at most %d", VCVM_MAX_ALARMS);
	for (i = 0; i < c->nalarms; i++) {
		const struct vcvm_alarm *a = &c->alarms[i];

		if (!token_ok(a->metric, "_"))
			return bad(why, whylen, "alarms[%u].metric: \"%s\" is not a metric name",
				   i, a->metric);
		if (a->critical < a->warning)
			return bad(why, whylen, "alarms[%u].critical: must not be below warning", i);
	}
	if (c->replication.target[0] && !path_ok(c->replication.target))
		return bad(why, whylen, "replication.target: \"%s\" is not an allowed path or URI",
			   c->replication.target);
	return 0;
}

/* ---- JSON -> struct (types only) ---- */

struct px {
	char *why;
	size_t whylen;
};

/* String member key of obj into out; absent leaves out as it is. */
static int get_str(struct px *p, json_t *obj, const char *path, const char *key,
		   char *out, size_t outsz)
{
	json_t *v = json_object_get(obj, key);
	size_t n;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return bad(p->why, p->whylen, "%s%s: must be a string", path, key);
	n = json_string_length(v);
	if (n >= outsz)
		return bad(p->why, p->whylen, "%s%s: longer than %zu characters", path, key, outsz - 1);
	if (strlen(json_string_value(v)) != n)
		return bad(p->why, p->whylen, "%s%s: contains a NUL character", path, key);
	memcpy(out, json_string_value(v), n + 1);
	return 0;
}

static int get_uint(struct px *p, json_t *obj, const char *path, const char *key,
		    uint64_t max, uint64_t *out)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return bad(p->why, p->whylen, "%s%s: must be an integer from 0 to %llu", path, key,
			   (unsigned long long)max);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int get_bool(struct px *p, json_t *obj, const char *path, const char *key, bool *out)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return bad(p->why, p->whylen, "%s%s: must be true or false", path, key);
	*out = json_is_true(v);
	return 0;
}

static int get_u32(struct px *p, json_t *obj, const char *path, const char *key, uint32_t *out)
{
	uint64_t v = *out;
	int rc = get_uint(p, obj, path, key, UINT32_MAX, &v);

	*out = (uint32_t)v;
	return rc;
}

static int get_enum(struct px *p, json_t *obj, const char *path, const char *key,
		    const char *const *names, int n, int *out)
{
	json_t *v = json_object_get(obj, key);
	char list[128] = "";
	int i, k;

	if (!v || json_is_null(v))
		return 0;
	i = json_is_string(v) ? lookup(names, n, json_string_value(v)) : -1;
	if (i < 0) {
		for (k = 0; k < n; k++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				 k ? (k == n - 1 ? " or " : ", ") : "", names[k]);
		if (!json_is_string(v))
			return bad(p->why, p->whylen, "%s%s: must be a string: %s", path, key, list);
		return bad(p->why, p->whylen, "%s%s: must be %s (got \"%s\")", path, key, list,
			   json_string_value(v));
	}
	*out = i;
	return 0;
}

/* Member key of obj that must be an object (or absent: *sub = NULL). */
static int get_obj(struct px *p, json_t *obj, const char *path, const char *key, json_t **sub)
{
	json_t *v = json_object_get(obj, key);

	*sub = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return bad(p->why, p->whylen, "%s%s: must be an object", path, key);
	*sub = v;
	return 0;
}

static int get_arr(struct px *p, json_t *obj, const char *key, size_t max, json_t **arr)
{
	json_t *v = json_object_get(obj, key);

	*arr = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return bad(p->why, p->whylen, "%s: must be an array", key);
	if (json_array_size(v) > max)
		return bad(p->why, p->whylen, "%s: at most %zu entries (got %zu)", key, max,
			   json_array_size(v));
	*arr = v;
	return 0;
}

static int parse_disk(struct px *p, json_t *o, unsigned i, struct vcvm_disk *d)
{
	char path[32];
	json_t *io;
	int rc, e;

	snprintf(path, sizeof(path), "disks[%u].", i);
	if (!json_is_object(o))
		return bad(p->why, p->whylen, "disks[%u]: must be an object", i);
	d->format = VCVM_FMT_RAW;
	d->bus = VCVM_BUS_VIRTIO;
	d->io_shares = 1000;
	if (!json_object_get(o, "file"))
		return bad(p->why, p->whylen, "disks[%u].file: missing", i);
	if ((rc = get_str(p, o, path, "file", d->file, sizeof(d->file))) < 0)
		return rc;
	d->owned = false;
	if ((rc = get_bool(p, o, path, "owned", &d->owned)) < 0)
		return rc;
	e = d->format;
	if ((rc = get_enum(p, o, path, "format", fmt_names, 2, &e)) < 0)
		return rc;
	d->format = (enum vcvm_disk_format)e;
	e = d->bus;
	if ((rc = get_enum(p, o, path, "bus", bus_names, 3, &e)) < 0)
		return rc;
	d->bus = (enum vcvm_disk_bus)e;
	snprintf(path, sizeof(path), "disks[%u].io.", i);
	if ((rc = get_obj(p, o, path, "io", &io)) < 0)
		return rc;
	if (io && ((rc = get_u32(p, io, path, "shares", &d->io_shares)) < 0 ||
		   (rc = get_uint(p, io, path, "limit_iops", UINT64_MAX >> 1, &d->io_limit_iops)) < 0 ||
		   (rc = get_uint(p, io, path, "limit_bps", UINT64_MAX >> 1, &d->io_limit_bps)) < 0))
		return rc;
	return 0;
}

static int parse_nic(struct px *p, json_t *o, unsigned i, struct vcvm_nic *n)
{
	char path[32];
	int rc;

	snprintf(path, sizeof(path), "nics[%u].", i);
	if (!json_is_object(o))
		return bad(p->why, p->whylen, "nics[%u]: must be an object", i);
	snprintf(n->model, sizeof(n->model), "virtio-net-pci");
	snprintf(n->network, sizeof(n->network), "user");
	if (!json_object_get(o, "mac"))
		return bad(p->why, p->whylen, "nics[%u].mac: missing", i);
	if ((rc = get_str(p, o, path, "model", n->model, sizeof(n->model))) < 0 ||
	    (rc = get_str(p, o, path, "mac", n->mac, sizeof(n->mac))) < 0 ||
	    (rc = get_str(p, o, path, "network", n->network, sizeof(n->network))) < 0)
		return rc;
	return 0;
}

static int parse_alarm(struct px *p, json_t *o, unsigned i, struct vcvm_alarm *a)
{
	char path[32];
	json_t *w, *c;
	int rc;

	snprintf(path, sizeof(path), "alarms[%u].", i);
	if (!json_is_object(o))
		return bad(p->why, p->whylen, "alarms[%u]: must be an object", i);
	if ((rc = get_str(p, o, path, "metric", a->metric, sizeof(a->metric))) < 0)
		return rc;
	w = json_object_get(o, "warning");
	c = json_object_get(o, "critical");
	if (!json_is_number(w))
		return bad(p->why, p->whylen, "alarms[%u].warning: must be a number", i);
	if (!json_is_number(c))
		return bad(p->why, p->whylen, "alarms[%u].critical: must be a number", i);
	a->warning = json_number_value(w);
	a->critical = json_number_value(c);
	return 0;
}

static int parse(struct px *p, json_t *root, struct vcvm_cfg *c)
{
	json_t *o, *arr, *v;
	uint64_t fmt = 0;
	size_t i;
	int rc, e;

	if (!json_is_object(root))
		return bad(p->why, p->whylen, "the file must hold a JSON object");
	if (!json_object_get(root, "format"))
		return bad(p->why, p->whylen, "format: missing (the format version)");
	if ((rc = get_uint(p, root, "", "format", INT32_MAX, &fmt)) < 0)
		return rc;
	if (fmt > VCVM_CFG_FORMAT) {
		bad(p->why, p->whylen, "format: %llu is newer than this vcvm understands (%d)",
		    (unsigned long long)fmt, VCVM_CFG_FORMAT);
		return -VCVM_ECFGVERSION;
	}
	if (fmt < 1)
		return bad(p->why, p->whylen, "format: must be 1 or more (got %llu)",
			   (unsigned long long)fmt);
	c->format = (int)fmt;

	if (!json_object_get(root, "name"))
		return bad(p->why, p->whylen, "name: missing");
	if (!json_object_get(root, "uuid"))
		return bad(p->why, p->whylen, "uuid: missing");
	if ((rc = get_str(p, root, "", "name", c->name, sizeof(c->name))) < 0 ||
	    (rc = get_str(p, root, "", "uuid", c->uuid, sizeof(c->uuid))) < 0 ||
	    (rc = get_u32(p, root, "", "memory_mib", &c->memory_mib)) < 0 ||
	    (rc = get_u32(p, root, "", "vcpus", &c->vcpus)) < 0 ||
	    (rc = get_str(p, root, "", "cpu_model", c->cpu_model, sizeof(c->cpu_model))) < 0 ||
	    (rc = get_str(p, root, "", "machine", c->machine, sizeof(c->machine))) < 0 ||
	    (rc = get_str(p, root, "", "serial_log", c->serial_log, sizeof(c->serial_log))) < 0)
		return rc;

	if ((rc = get_obj(p, root, "", "boot", &o)) < 0)
		return rc;
	if (o && ((rc = get_str(p, o, "boot.", "kernel", c->kernel, sizeof(c->kernel))) < 0 ||
		  (rc = get_str(p, o, "boot.", "initrd", c->initrd, sizeof(c->initrd))) < 0 ||
		  (rc = get_str(p, o, "boot.", "append", c->append, sizeof(c->append))) < 0))
		return rc;

	if ((rc = get_arr(p, root, "disks", VCVM_MAX_DISKS, &arr)) < 0)
		return rc;
	c->ndisks = 0;
	json_array_foreach(arr, i, v) {
		if ((rc = parse_disk(p, v, (unsigned)i, &c->disks[i])) < 0)
			return rc;
		c->ndisks++;
	}
	if ((rc = get_arr(p, root, "nics", VCVM_MAX_NICS, &arr)) < 0)
		return rc;
	c->nnics = 0;
	json_array_foreach(arr, i, v) {
		if ((rc = parse_nic(p, v, (unsigned)i, &c->nics[i])) < 0)
			return rc;
		c->nnics++;
	}

	if ((rc = get_obj(p, root, "", "ha", &o)) < 0)
		return rc;
	if (o) {
		e = c->ha.priority;
		if ((rc = get_enum(p, o, "ha.", "priority", ha_names, 4, &e)) < 0 ||
		    (rc = get_str(p, o, "ha.", "last_host", c->ha.last_host,
				  sizeof(c->ha.last_host))) < 0)
			return rc;
		c->ha.priority = (enum vcvm_ha_priority)e;
	}
	if ((rc = get_obj(p, root, "", "drs", &o)) < 0)
		return rc;
	if (o) {
		arr = json_object_get(o, "groups");
		if (arr && !json_is_array(arr))
			return bad(p->why, p->whylen, "drs.groups: must be an array");
		if (json_array_size(arr) > VCVM_MAX_GROUPS)
			return bad(p->why, p->whylen, "drs.groups: at most %d entries", VCVM_MAX_GROUPS);
		c->drs.ngroups = 0;
		json_array_foreach(arr, i, v) {
			if (!json_is_string(v) || json_string_length(v) > VCVM_NAME_MAX)
				return bad(p->why, p->whylen, "drs.groups[%zu]: must be a string of at "
					   "most %d characters", i, VCVM_NAME_MAX);
			snprintf(c->drs.groups[i], sizeof(c->drs.groups[i]), "%s",
				 json_string_value(v));
			c->drs.ngroups++;
		}
	}
	if ((rc = get_obj(p, root, "", "ft", &o)) < 0)
		return rc;
	if (o && (rc = get_str(p, o, "ft.", "secondary", c->ft.secondary,
			       sizeof(c->ft.secondary))) < 0)
		return rc;
	v = json_object_get(root, "template");
	if (v && !json_is_null(v)) {
		if (!json_is_boolean(v))
			return bad(p->why, p->whylen, "template: must be true or false");
		c->is_template = json_is_true(v);
	}
	if ((rc = get_arr(p, root, "alarms", VCVM_MAX_ALARMS, &arr)) < 0)
		return rc;
	c->nalarms = 0;
	json_array_foreach(arr, i, v) {
		if ((rc = parse_alarm(p, v, (unsigned)i, &c->alarms[i])) < 0)
			return rc;
		c->nalarms++;
	}
	if ((rc = get_obj(p, root, "", "replication", &o)) < 0)
		return rc;
	if (o && ((rc = get_str(p, o, "replication.", "target", c->replication.target,
				sizeof(c->replication.target))) < 0 ||
		  (rc = get_uint(p, o, "replication.", "last_generation", UINT64_MAX >> 1,
				 &c->replication.last_generation)) < 0))
		return rc;
	return 0;
}

int vcvm_cfg_from_json(json_t *root, struct vcvm_cfg *c, char *why, size_t whylen)
{
	struct px p = { why, whylen };
	int rc;

	/* defaults for what the file may leave out */
	memset(c, 0, sizeof(*c));
	c->memory_mib = 256;
	c->vcpus = 1;
	snprintf(c->cpu_model, sizeof(c->cpu_model), "qemu64");
	snprintf(c->machine, sizeof(c->machine), "q35");
	snprintf(c->serial_log, sizeof(c->serial_log), "serial.log");
	c->ha.priority = VCVM_HA_MEDIUM;

	rc = parse(&p, root, c);
	if (rc == 0)
		rc = vcvm_cfg_validate(c, why, whylen);
	if (rc < 0)
		return rc;
	c->raw = json_incref(root);
	return 0;
}

/* ---- struct -> JSON ---- */

json_t *vcvm_cfg_to_json(const struct vcvm_cfg *c)
{
	json_t *root, *arr, *o, *old;
	unsigned i;

	/* start from a copy of the loaded document so unknown keys survive */
	root = c->raw ? json_deep_copy(c->raw) : json_object();
	if (!root)
		return NULL;
	json_object_set_new(root, "format", json_integer(VCVM_CFG_FORMAT));
	json_object_set_new(root, "name", json_string(c->name));
	json_object_set_new(root, "uuid", json_string(c->uuid));
	json_object_set_new(root, "memory_mib", json_integer(c->memory_mib));
	json_object_set_new(root, "vcpus", json_integer(c->vcpus));
	json_object_set_new(root, "cpu_model", json_string(c->cpu_model));
	json_object_set_new(root, "machine", json_string(c->machine));
	if (c->kernel[0]) {
		o = json_object_get(root, "boot");
		o = json_is_object(o) ? json_incref(o) : json_object();
		json_object_set_new(o, "kernel", json_string(c->kernel));
		json_object_set_new(o, "initrd", json_string(c->initrd));
		json_object_set_new(o, "append", json_string(c->append));
		json_object_set_new(root, "boot", o);
	} else {
		json_object_del(root, "boot");
	}

	old = json_object_get(root, "disks");
	arr = json_array();
	for (i = 0; i < c->ndisks; i++) {
		const struct vcvm_disk *d = &c->disks[i];
		json_t *prev = json_array_get(old, i);

		o = json_is_object(prev) ? json_deep_copy(prev) : json_object();
		json_object_set_new(o, "file", json_string(d->file));
		if (d->file[0] == '/' && d->owned)
			json_object_set_new(o, "owned", json_true());
		else
			json_object_del(o, "owned");
		json_object_set_new(o, "format", json_string(vcvm_fmt_name(d->format)));
		json_object_set_new(o, "bus", json_string(vcvm_bus_name(d->bus)));
		json_object_set_new(o, "io", json_pack("{s:I, s:I, s:I}",
						       "shares", (json_int_t)d->io_shares,
						       "limit_iops", (json_int_t)d->io_limit_iops,
						       "limit_bps", (json_int_t)d->io_limit_bps));
		json_array_append_new(arr, o);
	}
	json_object_set_new(root, "disks", arr);

	arr = json_array();
	for (i = 0; i < c->nnics; i++)
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "model", c->nics[i].model,
						     "mac", c->nics[i].mac,
						     "network", c->nics[i].network));
	json_object_set_new(root, "nics", arr);
	json_object_set_new(root, "serial_log", json_string(c->serial_log));

	json_object_set_new(root, "ha", json_pack("{s:s, s:s}", "priority",
						  vcvm_ha_name(c->ha.priority),
						  "last_host", c->ha.last_host));
	arr = json_array();
	for (i = 0; i < c->drs.ngroups; i++)
		json_array_append_new(arr, json_string(c->drs.groups[i]));
	json_object_set_new(root, "drs", json_pack("{s:o}", "groups", arr));
	json_object_set_new(root, "ft", json_pack("{s:s}", "secondary", c->ft.secondary));
	json_object_set_new(root, "template", json_boolean(c->is_template));
	arr = json_array();
	for (i = 0; i < c->nalarms; i++)
		json_array_append_new(arr, json_pack("{s:s, s:f, s:f}", "metric", c->alarms[i].metric,
						     "warning", c->alarms[i].warning,
						     "critical", c->alarms[i].critical));
	json_object_set_new(root, "alarms", arr);
	json_object_set_new(root, "replication",
			    json_pack("{s:s, s:I}", "target", c->replication.target,
				      "last_generation", (json_int_t)c->replication.last_generation));
	return root;
}

/* ---- files ---- */

int vcvm_cfg_path(const char *dir, const char *rel, char *out, size_t outlen)
{
	int n = rel[0] == '/' ? snprintf(out, outlen, "%s", rel)
			      : snprintf(out, outlen, "%s/%s", dir, rel);

	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int vcvm_cfg_load(const char *dir, struct vcvm_cfg *c, char *why, size_t whylen)
{
	char path[VCVM_PATH_MAX + 16];
	json_error_t jerr;
	json_t *root;
	int rc;

	memset(c, 0, sizeof(*c));
	if ((rc = vcvm_cfg_path(dir, VCVM_CFG_FILE, path, sizeof(path))) < 0)
		return rc;
	if (access(path, F_OK) < 0) {
		rc = errno == ENOENT ? -VCVM_ENOVM : -errno;
		if (why)
			snprintf(why, whylen, "%s: %s", path, vcvm_strerror(rc));
		return rc;
	}
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		if (jerr.line <= 0 && why)	/* not a syntax error: an I/O error */
			snprintf(why, whylen, "%s: %s", path, jerr.text);
		else
			bad(why, whylen, "%s: line %d column %d: %s", path, jerr.line,
			    jerr.column, jerr.text);
		return -VCVM_ECONFIG;
	}
	rc = vcvm_cfg_from_json(root, c, why, whylen);
	json_decref(root);
	return rc;
}

static int write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int vcvm_cfg_save(const char *dir, const struct vcvm_cfg *c, char *why, size_t whylen)
{
	char path[VCVM_PATH_MAX + 16], tmp[VCVM_PATH_MAX + 48];
	json_t *doc = NULL;
	char *text = NULL;
	int rc, fd = -1, dfd;

	rc = vcvm_cfg_validate(c, why, whylen);
	if (rc < 0)
		return rc;
	if ((rc = vcvm_cfg_path(dir, VCVM_CFG_FILE, path, sizeof(path))) < 0)
		return rc;
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());

	doc = vcvm_cfg_to_json(c);
	if (!doc) {
		rc = -ENOMEM;
		goto out;
	}
	text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text) {
		rc = -ENOMEM;
		goto out_doc;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out_text;
	}
	if ((rc = write_all(fd, text, strlen(text))) < 0 || (rc = write_all(fd, "\n", 1)) < 0)
		goto out_unlink;
	if (fsync(fd) < 0) {
		rc = -errno;
		goto out_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = -errno;
		goto out_unlink;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto out_unlink;
	}
	/* make the rename itself durable */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) < 0 && errno != EINVAL)
			rc = -errno;
		close(dfd);
	}
	goto out_text;

out_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	if (why)
		snprintf(why, whylen, "%s: %s", path, vcvm_strerror(rc));
out_text:
	free(text);
out_doc:
	json_decref(doc);
out:
	return rc;
}

void vcvm_cfg_free(struct vcvm_cfg *c)
{
	json_decref(c->raw);
	c->raw = NULL;
}
