/*
 * vcvm.c - the VM command line (like vim-cmd / govc): parses arguments into a
 * struct vcvm_request and hands it to vcvm_handle() (agent.h).  Today that
 * runs here, on this host ("direct mode"); with the agent, the same request
 * goes over authenticated TCP and the same answer comes back.  Printing works
 * only from the answer's rc/why/data, so nothing changes for the user then.
 *
 * Exit codes: 0 success, 1 the operation failed, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "hypervisor/agent.h"
#include "hypervisor/cpumodel.h"
#include "hypervisor/hv_err.h"
#include "hypervisor/storage_move.h"
#include "hypervisor/wire.h"

#define EXIT_FAIL  1
#define EXIT_USAGE 2

static int json_out;
static const char *agent_addr;	/* --host: talk to that host's vcvm-agent */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vcvm [--host HOST[:PORT]] [--key FILE] COMMAND [options]\n"
		"  create NAME --datastore DIR [--memory MiB] [--cpus N] [--disk-size SIZE]\n"
		"         [--cpu-model MODEL] [--kernel FILE [--initrd FILE] [--append ARGS]]\n"
		"  start VM                      power on\n"
		"  stop VM [--timeout S] [--hard]  ACPI power-off, then quit; --hard: at once\n"
		"  reset VM                      hard reset of the guest\n"
		"  status VM [--json]\n"
		"  list [--json]\n"
		"  console VM [-f]               the serial log (-f: follow while it runs)\n"
		"  destroy VM                    delete the VM's files (must be stopped)\n"
		"  register DIR / unregister VM  add an existing VM folder / forget a VM\n"
		"  move-storage VM --to DIR [--disk N] [--max-bandwidth RATE] [--json]\n"
		"  move-storage VM --cancel      move the disks while the VM runs (Storage vMotion)\n"
		"  migrate VM --to HOST [--downtime MS] [--max-bandwidth BYTES/S]   vMotion\n"
		"  migrate VM --cancel           stop a vMotion in progress (VM stays)\n"
		"  host-info [--json]            this host's (or --host's) CPU models, load, memory\n"
		"  cluster-cpu --datastore DIR [--hosts H1,H2,...] [--dry-run] [--json]\n"
		"                                ask every host, record the cluster's CPU model\n"
		"  keygen [FILE]                 new cluster key (default %s)\n"
		"--host: send the request to HOST's vcvm-agent; without it, run it here.\n"
		"VM is a registered name or a folder path.  See vcvm(1).\n", VCVM_KEY_DEFAULT);
}

static int fail(const char *op, const char *vm, const struct vcvm_response *r)
{
	fprintf(stderr, "vcvm: %s%s%s: %s\n", op, vm ? " " : "", vm ? vm : "",
		r->why[0] ? r->why : vcvm_strerror(r->rc));
	return EXIT_FAIL;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static void print_status(json_t *d)
{
	json_t *disk;
	size_t i;

	printf("name:      %s\n", jstr(d, "name"));
	printf("state:     %s", jstr(d, "state"));
	if (strcmp(jstr(d, "state"), "running") == 0 || strcmp(jstr(d, "state"), "paused") == 0)
		printf(" on %s (QEMU pid %d, %s, %s)", jstr(d, "host"),
		       (int)json_integer_value(json_object_get(d, "pid")), jstr(d, "accel"),
		       jstr(d, "qemu_status"));
	printf("\n");
	if (jstr(d, "last_exit")[0])
		printf("last exit: %s\n", jstr(d, "last_exit"));
	printf("folder:    %s\n", jstr(d, "folder"));
	printf("uuid:      %s\n", jstr(d, "uuid"));
	printf("memory:    %d MiB, %d vCPU, cpu %s\n",
	       (int)json_integer_value(json_object_get(d, "memory_mib")),
	       (int)json_integer_value(json_object_get(d, "vcpus")), jstr(d, "cpu_model"));
	json_array_foreach(json_object_get(d, "disks"), i, disk)
		printf("disk%zu:     %s (%s, %s)\n", i, jstr(disk, "file"), jstr(disk, "format"),
		       jstr(disk, "bus"));
	printf("serial:    %s\n", jstr(d, "serial_log"));
}

static void print_data(json_t *d)
{
	char *s;

	if (!d)
		return;
	s = json_dumps(d, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (s)
		printf("%s\n", s);
	free(s);
}

/* vMotion's progress line (one line per phase when not a tty). */
static void mig_progress(const struct vcvm_progress *p, void *arg)
{
	static char last[32];
	int tty = isatty(2);

	(void)arg;
	if (!tty && !strcmp(last, p->phase))
		return;
	if (p->total)
		fprintf(stderr, "%s%-12s %3d%% %8.1f / %.1f MiB%s", tty ? "\r" : "", p->phase,
			(int)(p->done >= p->total ? 100 : p->done * 100 / p->total),
			p->done / 1048576.0, p->total / 1048576.0, tty ? "" : "\n");
	else
		fprintf(stderr, "%s%-12s%s", tty ? "\r" : "", p->phase, tty ? "" : "\n");
	snprintf(last, sizeof(last), "%s", p->phase);
}

/* Run req here (direct mode) or on --host's agent. */
static int run(const struct vcvm_env *e, struct vcvm_request *req, struct vcvm_response *r)
{
	static uint64_t seq;
	int rc;

	req->seq = ++seq;
	if (agent_addr)
		rc = vcvm_remote(agent_addr, req, mig_progress, NULL, r);
	else
		rc = vcvm_handle(e, req, mig_progress, NULL, r);
	if (isatty(2) && req->type == VCVM_REQ_MIGRATE)
		fprintf(stderr, "\n");
	return rc;
}

static int cmd_migrate(const struct vcvm_env *e, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "to", required_argument, 0, 't' },
		{ "cancel", no_argument, 0, 'c' },
		{ "downtime", required_argument, 0, 'd' },
		{ "max-bandwidth", required_argument, 0, 'b' },
		{ "json", no_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 } };
	struct vcvm_request req = { .type = VCVM_REQ_MIGRATE };
	struct vcvm_response r;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			snprintf(req.u.migrate.to_host, sizeof(req.u.migrate.to_host), "%s", optarg);
			break;
		case 'c': req.type = VCVM_REQ_MIGRATE_CANCEL; break;
		case 'd': req.u.migrate.downtime_ms = (uint32_t)atoi(optarg); break;
		case 'b':
			if (vcvm_parse_size(optarg, &req.u.migrate.max_bandwidth) < 0) {
				fprintf(stderr, "vcvm: migrate: --max-bandwidth: not a size: %s\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'j': json_out = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || (req.type == VCVM_REQ_MIGRATE && !req.u.migrate.to_host[0])) {
		fprintf(stderr, "vcvm: migrate VM --to HOST | migrate VM --cancel\n");
		return EXIT_USAGE;
	}
	snprintf(req.vm, sizeof(req.vm), "%s", argv[optind]);
	if (run(e, &req, &r) < 0) {
		fail(req.type == VCVM_REQ_MIGRATE ? "migrate" : "migrate --cancel", req.vm, &r);
		vcvm_response_free(&r);
		return EXIT_FAIL;
	}
	if (json_out)
		print_data(r.data);
	else if (req.type == VCVM_REQ_MIGRATE_CANCEL && !strcmp(jstr(r.data, "state"), "resumed"))
		printf("%s: the process running its vMotion had died: migration cancelled, "
		       "guest resumed\n", req.vm);
	else if (req.type == VCVM_REQ_MIGRATE_CANCEL)
		printf("%s: cancelling the migration\n", req.vm);
	else
		printf("%s: migrated %s -> %s in %lld ms (QEMU downtime %lld ms, guest paused "
		       "%lld ms, switch-over %lld ms, %.1f MiB RAM)\n", jstr(r.data, "name"),
		       jstr(r.data, "from"), jstr(r.data, "host"),
		       (long long)json_integer_value(json_object_get(r.data, "elapsed_ms")),
		       (long long)json_integer_value(json_object_get(r.data, "downtime_ms")),
		       (long long)json_integer_value(json_object_get(r.data, "pause_ms")),
		       (long long)json_integer_value(json_object_get(r.data, "switchover_ms")),
		       json_integer_value(json_object_get(r.data, "ram_bytes")) / 1048576.0);
	vcvm_response_free(&r);
	return 0;
}

static int simple(const struct vcvm_env *e, enum vcvm_req_type t, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "timeout", required_argument, 0, 't' },
		{ "hard", no_argument, 0, 'H' },
		{ "json", no_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 } };
	struct vcvm_request req = { .type = t };
	struct vcvm_response r;
	const char *op = vcvm_req_name(t);
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			if (t != VCVM_REQ_STOP)
				goto bad;
			req.u.stop.timeout_ms = (int)(atof(optarg) * 1000);
			break;
		case 'H':
			if (t != VCVM_REQ_STOP)
				goto bad;
			req.u.stop.hard = true;
			break;
		case 'j': json_out = 1; break;
		case 'h': usage(stdout); return 0;
		default: goto bad;
		}
	}
	if (optind != argc - 1)
		goto bad;
	snprintf(req.vm, sizeof(req.vm), "%s", argv[optind]);
	rc = run(e, &req, &r);
	if (rc < 0) {
		fail(op, req.vm, &r);
		vcvm_response_free(&r);
		return EXIT_FAIL;
	}
	if (json_out)
		print_data(r.data);
	else if (t == VCVM_REQ_STATUS)
		print_status(r.data);
	else if (t == VCVM_REQ_REGISTER)
		printf("registered %s (%s)\n", jstr(r.data, "name"), jstr(r.data, "folder"));
	else if (t == VCVM_REQ_DESTROY)
		printf("destroyed %s\n", req.vm);
	else if (t == VCVM_REQ_UNREGISTER)
		printf("unregistered %s\n", req.vm);
	else
		printf("%s: %s%s%s\n", jstr(r.data, "name"), jstr(r.data, "state"),
		       jstr(r.data, "host")[0] ? " on " : "", jstr(r.data, "host"));
	vcvm_response_free(&r);
	return 0;
bad:
	usage(stderr);
	return EXIT_USAGE;
}

static int cmd_create(const struct vcvm_env *e, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "datastore", required_argument, 0, 'd' },
		{ "memory", required_argument, 0, 'm' },
		{ "cpus", required_argument, 0, 'c' },
		{ "disk-size", required_argument, 0, 's' },
		{ "cpu-model", required_argument, 0, 'M' },
		{ "kernel", required_argument, 0, 'k' },
		{ "initrd", required_argument, 0, 'i' },
		{ "append", required_argument, 0, 'a' },
		{ "json", no_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 } };
	struct vcvm_request req = { .type = VCVM_REQ_CREATE };
	struct vcvm_response r;
	char *end;
	long v;
	int c;

	req.u.create.disk_bytes = 1ull << 30;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			snprintf(req.u.create.datastore, sizeof(req.u.create.datastore), "%s", optarg);
			break;
		case 'm':
		case 'c':
			v = strtol(optarg, &end, 10);
			if (*end || v <= 0 || v > 1 << 22) {
				fprintf(stderr, "vcvm: create: --%s: not a number: %s\n",
					c == 'm' ? "memory" : "cpus", optarg);
				return EXIT_USAGE;
			}
			if (c == 'm')
				req.u.create.memory_mib = (uint32_t)v;
			else
				req.u.create.vcpus = (uint32_t)v;
			break;
		case 's':
			if (vcvm_parse_size(optarg, &req.u.create.disk_bytes) < 0) {
				fprintf(stderr, "vcvm: create: --disk-size: not a size: %s "
					"(e.g. 512M, 10G, 0 for none)\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'M':
			snprintf(req.u.create.cpu_model, sizeof(req.u.create.cpu_model), "%s", optarg);
			break;
		case 'k':
			snprintf(req.u.create.kernel, sizeof(req.u.create.kernel), "%s", optarg);
			break;
		case 'i':
			snprintf(req.u.create.initrd, sizeof(req.u.create.initrd), "%s", optarg);
			break;
		case 'a':
			snprintf(req.u.create.append, sizeof(req.u.create.append), "%s", optarg);
			break;
		case 'j': json_out = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || !req.u.create.datastore[0]) {
		fprintf(stderr, "vcvm: create NAME --datastore DIR [options]\n");
		return EXIT_USAGE;
	}
	snprintf(req.vm, sizeof(req.vm), "%s", argv[optind]);
	if (run(e, &req, &r) < 0) {
		fail("create", req.vm, &r);
		vcvm_response_free(&r);
		return EXIT_FAIL;
	}
	if (json_out)
		print_data(r.data);
	else
		printf("created %s in %s\n", req.vm, jstr(r.data, "folder"));
	vcvm_response_free(&r);
	return 0;
}

/*
 * A request about no VM, taking only [--json] (list, host-info): run it and
 * leave the answer in *r (0), or say why and return the exit code.
 */
static int run_no_vm(const struct vcvm_env *e, enum vcvm_req_type t, int argc, char **argv,
		     struct vcvm_response *r)
{
	struct vcvm_request req = { .type = t };

	if (argc == 2 && strcmp(argv[1], "--json") == 0)
		json_out = 1;
	else if (argc != 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (run(e, &req, r) < 0) {
		fail(vcvm_req_name(t), NULL, r);
		vcvm_response_free(r);
		return EXIT_FAIL;
	}
	return 0;
}

static int cmd_list(const struct vcvm_env *e, int argc, char **argv)
{
	struct vcvm_response r;
	json_t *vm;
	size_t i;
	int rc = run_no_vm(e, VCVM_REQ_LIST, argc, argv, &r);

	if (rc)
		return rc;
	if (json_out) {
		print_data(r.data);
	} else {
		printf("%-20s %-9s %-12s %7s %4s  %s\n", "NAME", "STATE", "HOST", "MEMORY", "CPUS",
		       "FOLDER");
		json_array_foreach(r.data, i, vm)
			printf("%-20s %-9s %-12s %6dM %4d  %s\n", jstr(vm, "name"), jstr(vm, "state"),
			       jstr(vm, "host")[0] ? jstr(vm, "host") : "-",
			       (int)json_integer_value(json_object_get(vm, "memory_mib")),
			       (int)json_integer_value(json_object_get(vm, "vcpus")), jstr(vm, "folder"));
	}
	vcvm_response_free(&r);
	return 0;
}

static void print_models(json_t *models)
{
	json_t *v;
	size_t i;

	json_array_foreach(models, i, v)
		printf("%s%s", i ? " " : "", json_string_value(v));
	printf("\n");
}

/* host-info: this host (direct mode) or --host's agent. */
static int cmd_host_info(const struct vcvm_env *e, int argc, char **argv)
{
	struct vcvm_response r;
	int rc = run_no_vm(e, VCVM_REQ_HOST_INFO, argc, argv, &r);

	if (rc)
		return rc;
	if (json_out) {
		print_data(r.data);
	} else {
		printf("host:       %s (%s)\n", jstr(r.data, "host"), jstr(r.data, "accel"));
		printf("cpu best:   %s\n", jstr(r.data, "cpu_best"));
		printf("cpu models: ");
		print_models(json_object_get(r.data, "cpu_models"));
		printf("load:       %.2f\n", json_number_value(json_object_get(r.data, "load1")));
		printf("memory:     %lld MiB available\n",
		       (long long)json_integer_value(json_object_get(r.data, "mem_available_mib")));
		printf("vms:        %lld running here\n",
		       (long long)json_integer_value(json_object_get(r.data, "vms_running")));
	}
	vcvm_response_free(&r);
	return 0;
}

/* The host names of the hosts file (VCVM_HOSTS_FILE), comma-joined. */
static int hosts_from_file(char *out, size_t n)
{
	const char *file = getenv("VCVM_HOSTS_FILE");
	char line[512], name[256];
	FILE *f = fopen(file && *file ? file : VCVM_HOSTS_DEFAULT, "r");

	out[0] = '\0';
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (line[0] != '#' && sscanf(line, "%255s", name) == 1 &&
		    strlen(out) + strlen(name) + 2 < n)
			snprintf(out + strlen(out), n - strlen(out), "%s%s", out[0] ? "," : "", name);
	fclose(f);
	return 0;
}

/*
 * cluster-cpu: ask every host's agent which CPU models it runs (HOST_INFO),
 * pick the highest ladder model all run (cpumodel.h), record it on the
 * datastore; `vcvm create` there then uses it.  Every host must answer: a
 * host left out could not take the cluster's VMs.
 */
static int cmd_cluster_cpu(const struct vcvm_env *e, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "datastore", required_argument, 0, 'd' },
		{ "hosts", required_argument, 0, 'H' },
		{ "dry-run", no_argument, 0, 'n' },
		{ "json", no_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 } };
	char hosts[4096] = "", why[512] = "", *h, *save = NULL;
	const char *ds = NULL, *best;
	json_t *sets[256], *rows = json_array();
	size_t n = 0, i;
	int c, dry = 0, rc = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'd': ds = optarg; break;
		case 'H': snprintf(hosts, sizeof(hosts), "%s", optarg); break;
		case 'n': dry = 1; break;
		case 'j': json_out = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc || (!ds && !dry)) {
		fprintf(stderr, "vcvm: cluster-cpu --datastore DIR [--hosts H1,H2,...] [--dry-run]\n");
		return EXIT_USAGE;
	}
	if (!hosts[0] && (hosts_from_file(hosts, sizeof(hosts)) < 0 || !hosts[0])) {
		fprintf(stderr, "vcvm: cluster-cpu: no --hosts and no host names in %s\n",
			getenv("VCVM_HOSTS_FILE") ?: VCVM_HOSTS_DEFAULT);
		return EXIT_USAGE;
	}
	for (h = strtok_r(hosts, ",", &save); h && n < 256; h = strtok_r(NULL, ",", &save)) {
		struct vcvm_request req = { .type = VCVM_REQ_HOST_INFO };
		struct vcvm_response r = { 0 };

		if (vcvm_remote(h, &req, NULL, NULL, &r) < 0) {
			fprintf(stderr, "vcvm: cluster-cpu: host %s: %s\n", h,
				r.why[0] ? r.why : vcvm_strerror(r.rc));
			vcvm_response_free(&r);
			rc = EXIT_FAIL;
			goto out;
		}
		sets[n] = json_incref(json_object_get(r.data, "cpu_models"));
		if (!json_is_array(sets[n])) {
			json_decref(sets[n]);
			fprintf(stderr, "vcvm: cluster-cpu: host %s answered no cpu_models\n", h);
			vcvm_response_free(&r);
			rc = EXIT_FAIL;
			goto out;
		}
		json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:I}", "host", h, "accel",
						      jstr(r.data, "accel"), "best",
						      jstr(r.data, "cpu_best"), "models",
						      (json_int_t)json_array_size(sets[n])));
		n++;
		vcvm_response_free(&r);
	}
	best = vcvm_cpu_common(sets, n);
	if (!best[0]) {
		fprintf(stderr, "vcvm: cluster-cpu: these hosts have no CPU model in common\n");
		rc = EXIT_FAIL;
		goto out;
	}
	if (!dry && vcvm_cluster_cpu_set(ds, best, rows, e->host, why, sizeof(why)) < 0) {
		fprintf(stderr, "vcvm: cluster-cpu: %s\n", why);
		rc = EXIT_FAIL;
		goto out;
	}
	if (json_out) {
		json_t *d = json_pack("{s:s, s:b, s:O}", "cpu_model", best, "recorded", !dry,
				      "hosts", rows);
		print_data(d);
		json_decref(d);
	} else {
		json_t *row;

		printf("%-20s %-5s %-20s %s\n", "HOST", "ACCEL", "BEST MODEL", "MODELS");
		json_array_foreach(rows, i, row)
			printf("%-20s %-5s %-20s %d\n", jstr(row, "host"), jstr(row, "accel"),
			       jstr(row, "best"), (int)json_integer_value(json_object_get(row, "models")));
		printf("cluster CPU model: %s\n", best);
		if (!dry)
			printf("recorded in %s/%s: vcvm create there uses it\n", ds,
			       VCVM_CLUSTER_FILE);
	}
out:
	for (i = 0; i < n; i++)
		json_decref(sets[i]);
	json_decref(rows);
	return rc;
}

/* console: the serial log from the datastore; -f follows it while the VM runs. */
static int cmd_console(const struct vcvm_env *e, int argc, char **argv)
{
	struct vcvm_request req = { .type = VCVM_REQ_STATUS };
	struct vcvm_response r;
	char path[VCVM_PATH_MAX + 64], buf[65536];
	int follow = 0, idle = 0;
	struct stat sb;
	ino_t ino = 0;
	FILE *f = NULL;
	size_t n;

	if (argc == 3 && (strcmp(argv[1], "-f") == 0 || strcmp(argv[1], "--follow") == 0)) {
		follow = 1;
		argv++;
		argc--;
	}
	if (argc != 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	snprintf(req.vm, sizeof(req.vm), "%s", argv[1]);
	if (run(e, &req, &r) < 0) {
		fail("console", req.vm, &r);
		vcvm_response_free(&r);
		return EXIT_FAIL;
	}
	snprintf(path, sizeof(path), "%s", jstr(r.data, "serial_log"));
	vcvm_response_free(&r);
	setvbuf(stdout, NULL, _IONBF, 0);
	for (;;) {
		if (!f) {
			f = fopen(path, "r");
			if (f && fstat(fileno(f), &sb) == 0)
				ino = sb.st_ino;
			if (!f && !follow) {
				fprintf(stderr, "vcvm: console %s: %s: %s\n", req.vm, path,
					strerror(errno));
				return EXIT_FAIL;
			}
		}
		while (f && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
			fwrite(buf, 1, n, stdout);
			idle = 0;
		}
		if (!follow)
			break;
		if (f)
			clearerr(f);
		/* a new start rotates the log: switch to the new file */
		if (f && stat(path, &sb) == 0 && sb.st_ino != ino) {
			fclose(f);
			f = NULL;
			continue;
		}
		usleep(200000);
		if (++idle % 5 == 0) {		/* about once a second: still running? */
			struct vcvm_response s;

			req.type = VCVM_REQ_STATUS;
			if (run(e, &req, &s) < 0 || (strcmp(jstr(s.data, "state"), "running") &&
						     strcmp(jstr(s.data, "state"), "paused"))) {
				vcvm_response_free(&s);
				if (f)
					while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
						fwrite(buf, 1, n, stdout);
				break;
			}
			vcvm_response_free(&s);
		}
	}
	if (f)
		fclose(f);
	return 0;
}

/* ---- move-storage: a progress line while QEMU mirrors ---- */

struct prog {
	int tty;
	uint64_t t0, last, last_pct;
	const char *phase;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* On a terminal one line redrawn; otherwise a line per 10%. */
static void draw_progress(const struct vcvm_progress *p, void *arg)
{
	struct prog *g = arg;
	uint64_t el = now_ms() - g->t0, pct = p->total ? p->done * 100 / p->total : 0;
	double rate = el ? (double)p->done / 1048576.0 / ((double)el / 1000.0) : 0;

	if (strcmp(p->phase, "switch-over") == 0) {
		fprintf(stderr, "%sswitch-over: all disks in step, switching to the new files\n",
			g->tty ? "\r\033[K" : "");
		g->phase = p->phase;
		return;
	}
	if (!g->tty && pct < g->last_pct + 10 && g->last)
		return;
	g->last = now_ms();
	g->last_pct = pct;
	g->phase = p->phase;
	fprintf(stderr, "%s%-6s %3llu%%  %llu / %llu MiB  %.1f MiB/s  %llu s%s",
		g->tty ? "\r\033[K" : "", p->phase, (unsigned long long)pct,
		(unsigned long long)(p->done >> 20), (unsigned long long)(p->total >> 20), rate,
		(unsigned long long)(el / 1000), g->tty ? "" : "\n");
}

static void on_interrupt(int sig)
{
	(void)sig;
	vcvm_move_interrupt();		/* the mover cancels, cleans up, and returns */
}

static int cmd_move_storage(const struct vcvm_env *e, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "to", required_argument, 0, 't' },
		{ "disk", required_argument, 0, 'd' },
		{ "max-bandwidth", required_argument, 0, 'b' },
		{ "cancel", no_argument, 0, 'C' },
		{ "json", no_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 } };
	struct vcvm_request req = { .type = VCVM_REQ_MOVE_STORAGE };
	struct prog g = { .tty = isatty(2), .t0 = now_ms() };
	struct sigaction sa = { .sa_handler = on_interrupt };
	struct vcvm_response r;
	json_t *d;
	size_t i;
	char *end;
	long v;
	int c, rc;

	req.u.move_storage.disk = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			snprintf(req.u.move_storage.to, sizeof(req.u.move_storage.to), "%s", optarg);
			break;
		case 'd':
			v = strtol(optarg, &end, 10);
			if (*end || v < 0 || v > 255) {
				fprintf(stderr, "vcvm: move-storage: --disk: not a disk index: %s\n",
					optarg);
				return EXIT_USAGE;
			}
			req.u.move_storage.disk = (int)v;
			break;
		case 'b':
			if (vcvm_parse_size(optarg, &req.u.move_storage.max_bandwidth) < 0) {
				fprintf(stderr, "vcvm: move-storage: --max-bandwidth: not a rate in "
					"bytes/s: %s (e.g. 20M)\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'C': req.type = VCVM_REQ_MOVE_CANCEL; break;
		case 'j': json_out = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || (req.type == VCVM_REQ_MOVE_STORAGE) == !req.u.move_storage.to[0]) {
		fprintf(stderr, "vcvm: move-storage VM --to DIR [--disk N] [--max-bandwidth RATE]\n"
			"       move-storage VM --cancel\n");
		return EXIT_USAGE;
	}
	snprintf(req.vm, sizeof(req.vm), "%s", argv[optind]);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rc = vcvm_handle(e, &req, draw_progress, &g, &r);
	if (g.tty && g.last)
		fprintf(stderr, "\r\033[K");
	if (rc < 0) {
		fail("move-storage", req.vm, &r);
		vcvm_response_free(&r);
		return EXIT_FAIL;
	}
	if (json_out) {
		print_data(r.data);
	} else if (req.type == VCVM_REQ_MOVE_CANCEL) {
		printf("%s: %s\n", jstr(r.data, "name"), jstr(r.data, "done"));
	} else {
		json_array_foreach(json_object_get(r.data, "disks"), i, d)
			printf("disk%d: %s -> %s (%lld MiB copied)\n",
			       (int)json_integer_value(json_object_get(d, "index")), jstr(d, "from"),
			       jstr(d, "to"),
			       (long long)(json_integer_value(json_object_get(d, "copied")) >> 20));
		printf("moved %s to %s %s in %.1f s\n", jstr(r.data, "name"), jstr(r.data, "folder"),
		       json_is_true(json_object_get(r.data, "live")) ? "while it ran" : "(offline)",
		       json_real_value(json_object_get(r.data, "seconds")));
	}
	vcvm_response_free(&r);
	return 0;
}

int main(int argc, char **argv)
{
	struct vcvm_env e;
	const char *cmd;
	char why[512] = "";
	int rc;

	/* global options before the command */
	while (argc >= 3 && (!strcmp(argv[1], "--host") || !strcmp(argv[1], "--key"))) {
		if (!strcmp(argv[1], "--host"))
			agent_addr = argv[2];
		else
			setenv("VCVM_KEY_FILE", argv[2], 1);
		argc -= 2;
		argv += 2;
	}
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[1];
	if (strcmp(cmd, "keygen") == 0) {
		const char *path = argc > 2 ? argv[2] : vcvm_key_path();

		if (vcvm_key_generate(path, why, sizeof(why)) < 0) {
			fprintf(stderr, "vcvm: keygen: %s\n", why);
			return EXIT_FAIL;
		}
		printf("wrote a new cluster key to %s (mode 0600): copy it to every host\n", path);
		return 0;
	}
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (getenv("VCVM_DEBUG"))
		vcfs_log_set_level(VCFS_LOG_DEBUG);
	rc = vcvm_env_init(&e, why, sizeof(why));
	if (rc < 0) {
		fprintf(stderr, "vcvm: %s\n", why);
		return EXIT_USAGE;
	}
	argc--;
	argv++;
	if (strcmp(cmd, "create") == 0)
		return cmd_create(&e, argc, argv);
	if (strcmp(cmd, "list") == 0)
		return cmd_list(&e, argc, argv);
	if (strcmp(cmd, "console") == 0)
		return cmd_console(&e, argc, argv);
	if (strcmp(cmd, "start") == 0)
		return simple(&e, VCVM_REQ_START, argc, argv);
	if (strcmp(cmd, "stop") == 0)
		return simple(&e, VCVM_REQ_STOP, argc, argv);
	if (strcmp(cmd, "reset") == 0)
		return simple(&e, VCVM_REQ_RESET, argc, argv);
	if (strcmp(cmd, "status") == 0)
		return simple(&e, VCVM_REQ_STATUS, argc, argv);
	if (strcmp(cmd, "destroy") == 0)
		return simple(&e, VCVM_REQ_DESTROY, argc, argv);
	if (strcmp(cmd, "register") == 0)
		return simple(&e, VCVM_REQ_REGISTER, argc, argv);
	if (strcmp(cmd, "move-storage") == 0)
		return cmd_move_storage(&e, argc, argv);
	if (strcmp(cmd, "unregister") == 0)
		return simple(&e, VCVM_REQ_UNREGISTER, argc, argv);
	if (strcmp(cmd, "migrate") == 0)
		return cmd_migrate(&e, argc, argv);
	if (strcmp(cmd, "host-info") == 0)
		return cmd_host_info(&e, argc, argv);
	if (strcmp(cmd, "cluster-cpu") == 0)
		return cmd_cluster_cpu(&e, argc, argv);
	fprintf(stderr, "vcvm: unknown command %s\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
