/*
 * ops.c - vcvm_handle(): one request on this host, as the CLI runs it today
 * (direct mode) and as the agent will run it for requests from the network.
 * Each operation resolves the VM, calls vm.c / inventory.c, and answers with
 * rc + why + a JSON data object that the CLI prints.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hypervisor/agent.h"
#include "hypervisor/cpumodel.h"
#include "hypervisor/hv_err.h"
#include "hypervisor/hv_int.h"
#include "hypervisor/inventory.h"
#include "hypervisor/storage_move.h"
#include "hypervisor/migrate.h"

static const struct {
	enum vcvm_req_type t;
	const char *name;
} req_names[] = {
#define VCVM_REQ_NAME(name, num, wire) { name, wire },
	VCVM_REQUESTS(VCVM_REQ_NAME)
#undef VCVM_REQ_NAME
};

const char *vcvm_req_name(enum vcvm_req_type t)
{
	size_t i;

	for (i = 0; i < sizeof(req_names) / sizeof(req_names[0]); i++)
		if (req_names[i].t == t)
			return req_names[i].name;
	return "?";
}

int vcvm_req_from_name(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(req_names) / sizeof(req_names[0]); i++)
		if (strcmp(req_names[i].name, s) == 0)
			return (int)req_names[i].t;
	return -ENOSYS;
}

void vcvm_response_free(struct vcvm_response *resp)
{
	json_decref(resp->data);
	resp->data = NULL;
}

/* First number of the line of /proc/<file> that starts with key, or -1. */
static double proc_num(const char *file, const char *key)
{
	char line[256];
	double v = -1;
	FILE *f = fopen(file, "r");

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, key, strlen(key)) == 0) {
			v = strtod(line + strlen(key), NULL);
			break;
		}
	if (f)
		fclose(f);
	return v;
}

/* The status object the CLI prints (and an agent would send). */
static json_t *status_json(const char *dir, const struct vcvm_cfg *c, const struct vcvm_status *st)
{
	char path[VCVM_PATH_MAX + 64];
	json_t *j, *disks = json_array();
	unsigned i;

	for (i = 0; i < c->ndisks; i++) {
		vcvm_cfg_path(dir, c->disks[i].file, path, sizeof(path));
		json_array_append_new(disks, json_pack("{s:s, s:s, s:s}", "file", path, "format",
						       vcvm_fmt_name(c->disks[i].format), "bus",
						       vcvm_bus_name(c->disks[i].bus)));
	}
	vcvm_cfg_path(dir, c->serial_log, path, sizeof(path));
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:I, s:s, s:i, s:i, s:s, s:s, s:o}",
		      "name", c->name, "uuid", c->uuid, "folder", dir,
		      "state", vcvm_state_name(st->state), "qemu_status", st->qemu_status,
		      "host", st->host, "pid", st->pid, "accel", st->accel,
		      "started", (json_int_t)st->started, "last_exit", st->last_exit,
		      "memory_mib", (int)c->memory_mib, "vcpus", (int)c->vcpus,
		      "cpu_model", c->cpu_model, "serial_log", path, "disks", disks);
	return j;
}

struct list_ctx {
	const struct vcvm_env *e;
	json_t *arr;
};

static int list_one(const char *name, const char *dir, void *arg)
{
	struct list_ctx *lc = arg;
	struct vcvm_status st;
	struct vcvm_cfg c;
	json_t *j;

	if (vcvm_cfg_load(dir, &c, NULL, 0) < 0) {
		json_array_append_new(lc->arr, json_pack("{s:s, s:s, s:s}", "name", name,
							 "folder", dir, "state", "missing"));
		return 0;
	}
	vcvm_vm_status(lc->e, dir, &st);
	j = status_json(dir, &c, &st);
	if (j)
		json_object_set_new(j, "name", json_string(name));
	json_array_append_new(lc->arr, j);
	vcvm_cfg_free(&c);
	return 0;
}

static int do_create(const struct vcvm_env *e, const struct vcvm_request *req,
		     struct vcvm_response *r)
{
	char folder[VCVM_PATH_MAX + VCVM_NAME_MAX + 2], existing[VCVM_PATH_MAX], w[256];
	const __typeof__(req->u.create) *a = &req->u.create;
	struct vcvm_cfg c;
	int rc;

	rc = vcvm_cfg_init(&c, req->vm);
	if (rc < 0) {
		hv_fmt(r->why, sizeof(r->why), "\"%s\": %s", req->vm, vcvm_strerror(rc));
		return rc;
	}
	if (vcvm_inv_resolve(e, req->vm, existing, sizeof(existing), w, sizeof(w)) == 0) {
		hv_fmt(r->why, sizeof(r->why), "a VM named %s is already registered here (folder %s)",
			 req->vm, existing);
		return -VCVM_EEXISTS;
	}
	if (!a->datastore[0]) {
		hv_fmt(r->why, sizeof(r->why), "create needs a datastore folder (--datastore DIR)");
		return -EINVAL;
	}
	if (hv_fmt(folder, sizeof(folder), "%s/%s", a->datastore, req->vm) < 0) {
		hv_fmt(r->why, sizeof(r->why), "--datastore: path too long");
		return -ENAMETOOLONG;
	}
	if (a->memory_mib)
		c.memory_mib = a->memory_mib;
	if (a->vcpus)
		c.vcpus = a->vcpus;
	if (a->cpu_model[0]) {
		snprintf(c.cpu_model, sizeof(c.cpu_model), "%s", a->cpu_model);
	} else {
		/* the cluster's model, when `vcvm cluster-cpu` recorded one here */
		char m[sizeof(c.cpu_model)];

		rc = vcvm_cluster_cpu_get(a->datastore, m, sizeof(m), r->why, sizeof(r->why));
		if (rc < 0)
			return rc;
		if (m[0])
			snprintf(c.cpu_model, sizeof(c.cpu_model), "%s", m);
	}
	if (a->append[0])
		snprintf(c.append, sizeof(c.append), "%s", a->append);
	if (a->append[0] && !a->kernel[0]) {
		hv_fmt(r->why, sizeof(r->why), "--append needs --kernel");
		return -EINVAL;
	}
	if (a->kernel[0])
		snprintf(c.kernel, sizeof(c.kernel), "-");	/* placeholder: create sets the copy */
	rc = vcvm_vm_create(folder, &c, a->disk_bytes, a->kernel[0] ? a->kernel : NULL,
			    a->initrd[0] ? a->initrd : NULL, r->why, sizeof(r->why));
	if (rc < 0)
		return rc;
	rc = vcvm_inv_add(e, folder, r->why, sizeof(r->why));
	if (rc < 0)
		return rc;
	r->data = json_pack("{s:s, s:s, s:s}", "name", c.name, "uuid", c.uuid, "folder", folder);
	return 0;
}

/*
 * HOST_INFO: what placement (DRS, HA, cluster-cpu) needs to know of this
 * host: its name, accelerator, the CPU models it runs (cpumodel.h), load,
 * free memory and how many VMs it runs.
 */
static int host_info(const struct vcvm_env *e, struct vcvm_response *r)
{
	struct list_ctx lc = { e, json_array() };
	json_t *models = NULL, *v;
	size_t i, running = 0;
	int rc;

	rc = vcvm_cpu_usable(e, &models, r->why, sizeof(r->why));
	if (rc < 0) {
		json_decref(lc.arr);
		return rc;
	}
	vcvm_inv_foreach(e, list_one, &lc);
	json_array_foreach(lc.arr, i, v)
		running += strcmp(json_string_value(json_object_get(v, "host")) ?: "", e->host) == 0 &&
			   strcmp(json_string_value(json_object_get(v, "state")) ?: "", "running") == 0;
	json_decref(lc.arr);
	r->data = json_pack("{s:s, s:s, s:s, s:o, s:f, s:I, s:I}", "host", e->host,
			    "accel", e->accel, "cpu_best", vcvm_cpu_common(&models, 1),
			    "cpu_models", models, "load1", proc_num("/proc/loadavg", ""),
			    "mem_available_mib",
			    (json_int_t)(proc_num("/proc/meminfo", "MemAvailable:") / 1024),
			    "vms_running", (json_int_t)running);
	return r->data ? 0 : -ENOMEM;
}

int vcvm_handle(const struct vcvm_env *e, const struct vcvm_request *req,
		vcvm_progress_fn progress, void *arg, struct vcvm_response *r)
{
	char dir[VCVM_PATH_MAX];
	struct vcvm_status st;
	struct vcvm_cfg c;
	int rc = 0;

	memset(r, 0, sizeof(*r));

	switch (req->type) {
	case VCVM_REQ_PING:
		r->data = json_pack("{s:s, s:i, s:s}", "host", e->host, "proto", VCVM_AGENT_PROTO,
				    "accel", e->accel);
		break;
	case VCVM_REQ_CREATE:
		rc = do_create(e, req, r);
		break;
	case VCVM_REQ_LIST: {
		struct list_ctx lc = { e, json_array() };

		rc = vcvm_inv_foreach(e, list_one, &lc);
		r->data = lc.arr;
		break;
	}
	case VCVM_REQ_REGISTER:
		rc = vcvm_inv_add(e, req->vm, r->why, sizeof(r->why));
		if (rc == 0 && vcvm_cfg_load(req->vm, &c, NULL, 0) == 0) {
			r->data = json_pack("{s:s, s:s}", "name", c.name, "folder", req->vm);
			vcvm_cfg_free(&c);
		}
		break;
	case VCVM_REQ_UNREGISTER:
		rc = vcvm_inv_remove(e, req->vm);
		if (rc < 0)
			hv_fmt(r->why, sizeof(r->why), "%s: %s", req->vm, vcvm_strerror(rc));
		break;
	case VCVM_REQ_START:
	case VCVM_REQ_STOP:
	case VCVM_REQ_RESET:
	case VCVM_REQ_STATUS:
	case VCVM_REQ_DESTROY:
		rc = vcvm_inv_resolve(e, req->vm, dir, sizeof(dir), r->why, sizeof(r->why));
		if (rc < 0)
			break;
		if (req->type == VCVM_REQ_START) {
			rc = vcvm_vm_start(e, dir, r->why, sizeof(r->why));
		} else if (req->type == VCVM_REQ_STOP) {
			rc = vcvm_vm_stop(e, dir, req->u.stop.timeout_ms > 0 ? req->u.stop.timeout_ms
					  : VCVM_STOP_DEFAULT_MS, req->u.stop.hard,
					  r->why, sizeof(r->why));
		} else if (req->type == VCVM_REQ_RESET) {
			rc = vcvm_vm_reset(e, dir, r->why, sizeof(r->why));
		} else if (req->type == VCVM_REQ_DESTROY) {
			rc = vcvm_cfg_load(dir, &c, r->why, sizeof(r->why));
			if (rc < 0)
				break;
			rc = vcvm_vm_destroy(e, dir, r->why, sizeof(r->why));
			if (rc == 0)
				vcvm_inv_remove(e, c.name);
			vcvm_cfg_free(&c);
		}
		if (rc < 0)
			break;
		/* every VM operation answers with the VM's state afterwards */
		rc = vcvm_cfg_load(dir, &c, r->why, sizeof(r->why));
		if (rc < 0) {
			if (req->type == VCVM_REQ_DESTROY)
				rc = 0;		/* it is gone, as asked */
			break;
		}
		rc = vcvm_vm_status(e, dir, &st);
		if (rc == 0)
			r->data = status_json(dir, &c, &st);
		vcvm_cfg_free(&c);
		break;
	case VCVM_REQ_MIGRATE:
	case VCVM_REQ_MIGRATE_PREPARE:
	case VCVM_REQ_MIGRATE_COMMIT:
	case VCVM_REQ_MIGRATE_ABORT:
	case VCVM_REQ_MIGRATE_CANCEL:
		rc = vcvm_migrate_handle(e, req, progress, arg, r);
		break;
	case VCVM_REQ_HOST_INFO:
		rc = host_info(e, r);
		break;
	case VCVM_REQ_MOVE_STORAGE:	/* storage_move.c */
	case VCVM_REQ_MOVE_CANCEL:
		rc = vcvm_inv_resolve(e, req->vm, dir, sizeof(dir), r->why, sizeof(r->why));
		if (rc < 0)
			break;
		if (req->type == VCVM_REQ_MOVE_CANCEL)
			rc = vcvm_move_cancel(e, dir, &r->data, r->why, sizeof(r->why));
		else
			rc = vcvm_move_storage(e, dir, req->u.move_storage.to, req->u.move_storage.disk,
					       req->u.move_storage.max_bandwidth, progress, arg,
					       &r->data, r->why, sizeof(r->why));
		break;
	default:
		rc = -ENOSYS;
		hv_fmt(r->why, sizeof(r->why), "%s is done by the host agent (not in direct mode "
			 "yet; protocol %d)", vcvm_req_name(req->type), VCVM_AGENT_PROTO);
		break;
	}
	if (rc < 0 && !r->why[0])
		hv_fmt(r->why, sizeof(r->why), "%s", vcvm_strerror(rc));
	r->rc = rc;
	return rc;
}
