/*
 * vcvm-agent.c - the per-host VM agent: serves agent.h requests over
 * authenticated TCP by calling vcvm_handle(), the same handler the CLI runs
 * in direct mode.
 *
 * One process per connection (forked after accept, like sshd): a long
 * request (a vMotion) blocks nobody else, and a crash in one request takes
 * only its connection.  The agent keeps no VM state of its own: every VM's
 * state is in its run directory and its shim (vm.h), its lock on the
 * datastore (guard.h).  So the agent can be restarted while VMs run.
 *
 * A connection that ends while this host has prepared an incoming vMotion
 * that was neither committed nor aborted hands it to vcvm_migrate_orphan():
 * if the incoming migration completed and the source released the VM's
 * datastore lock, the VM runs here (the source died in the switch-over);
 * otherwise the incoming QEMU is killed and the source keeps the VM.  While
 * such a connection is silent, the same check runs once a second: a source
 * that released the lock and then hangs is not waited for beyond
 * VCVM_MIGRATE_COMMIT_MS.  The lock decides every case (agent.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common/log.h"
#include "hypervisor/agent.h"
#include "hypervisor/cpumodel.h"
#include "hypervisor/hv_err.h"
#include "hypervisor/migrate.h"
#include "hypervisor/wire.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: vcvm-agent [--listen ADDR] [--port PORT] [--key FILE] [--host NAME]\n"
		"                  [--cpu-models MODEL,...]\n"
		"Serves vcvm requests for this host over authenticated TCP (default port %d,\n"
		"key %s).  See vcvm-agent(8).\n", VCVM_AGENT_PORT, VCVM_KEY_DEFAULT);
}

struct sender {
	struct vcvm_conn *c;
};

static void send_progress(const struct vcvm_progress *p, void *arg)
{
	struct sender *s = arg;
	json_t *f = json_pack("{s:{s:s, s:I, s:I}}", "progress", "phase", p->phase,
			      "done", (json_int_t)p->done, "total", (json_int_t)p->total);

	if (f)
		vcvm_conn_send(s->c, f);
	json_decref(f);
}

static void serve(const struct vcvm_env *e, int fd, const uint8_t key[VCVM_KEY_LEN],
		  const char *peer_ip)
{
	char why[256] = "", incoming[VCVM_PATH_MAX] = "", from[VCVM_HOST_MAX] = "";
	struct vcvm_request req;
	struct vcvm_response r;
	struct vcvm_conn *c;
	struct sender s;
	json_t *f;
	int rc;

	rc = vcvm_conn_accept(fd, key, e->host, &c, why, sizeof(why));
	if (rc < 0) {
		vcfs_warn("refused %s: %s", peer_ip, why);
		return;
	}
	s.c = c;
	for (;;) {
		if (incoming[0]) {
			struct pollfd p = { .fd = vcvm_conn_fd(c), .events = POLLIN };

			if (poll(&p, 1, 1000) == 0) {
				rc = vcvm_migrate_orphan(e, incoming, from, false, why, sizeof(why));
				if (rc != -EAGAIN) {
					vcfs_warn("%s: source %s silent after the vMotion of %s: %s",
						  peer_ip, from, incoming, why);
					incoming[0] = 0;
				}
				continue;
			}
		}
		rc = vcvm_conn_recv(c, 24 * 3600 * 1000, &f);
		if (rc < 0) {
			if (rc != -ECONNRESET)
				vcfs_warn("%s: closing: %s", peer_ip, vcvm_strerror(rc));
			break;
		}
		rc = vcvm_req_from_json(f, &req, why, sizeof(why));
		json_decref(f);
		if (rc < 0) {
			memset(&r, 0, sizeof(r));
			r.rc = rc;
			snprintf(r.why, sizeof(r.why), "%s", why);
		} else {
			vcvm_handle(e, &req, send_progress, &s, &r);
			vcfs_info("%s (%s): %s %s: %s", peer_ip, vcvm_conn_peer(c), vcvm_req_name(req.type),
				  req.vm, r.rc ? r.why : "ok");
			if (req.type == VCVM_REQ_MIGRATE_PREPARE && r.rc == 0) {
				snprintf(incoming, sizeof(incoming), "%s", req.u.migrate_prepare.folder);
				snprintf(from, sizeof(from), "%s", req.u.migrate_prepare.from_host);
			} else if ((req.type == VCVM_REQ_MIGRATE_COMMIT ||
				    req.type == VCVM_REQ_MIGRATE_ABORT) && !strcmp(req.vm, incoming)) {
				incoming[0] = 0;
			}
		}
		f = json_pack("{s:i, s:s, s:O?}", "rc", r.rc, "error", r.why, "data", r.data);
		vcvm_response_free(&r);
		rc = f ? vcvm_conn_send(c, f) : -ENOMEM;
		json_decref(f);
		if (rc < 0)
			break;
	}
	if (incoming[0]) {
		why[0] = 0;
		rc = vcvm_migrate_orphan(e, incoming, from, true, why, sizeof(why));
		vcfs_warn("%s: source %s hung up during the vMotion of %s: %s%s", peer_ip, from,
			  incoming, rc < 0 ? "error: " : "", why);
	}
	vcvm_conn_close(c);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "listen", required_argument, 0, 'l' },
		{ "port", required_argument, 0, 'p' },
		{ "key", required_argument, 0, 'k' },
		{ "host", required_argument, 0, 'H' },
		{ "cpu-models", required_argument, 0, 'c' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 } };
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE }, *ai = NULL;
	const char *listen_addr = NULL;
	char port[16], why[512] = "", ip[64];
	uint8_t key[VCVM_KEY_LEN];
	struct vcvm_env e;
	int c, lfd, one = 1, rc;

	snprintf(port, sizeof(port), "%d", VCVM_AGENT_PORT);
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'l': listen_addr = optarg; break;
		case 'p': snprintf(port, sizeof(port), "%s", optarg); break;
		case 'k': setenv("VCVM_KEY_FILE", optarg, 1); break;
		case 'H': setenv("VCVM_HOST", optarg, 1); break;
		case 'c': setenv("VCVM_CPU_MODELS", optarg, 1); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (getenv("VCVM_DEBUG"))
		vcfs_log_set_level(VCFS_LOG_DEBUG);
	else
		vcfs_log_set_level(VCFS_LOG_INFO);
	if (vcvm_env_init(&e, why, sizeof(why)) < 0) {
		fprintf(stderr, "vcvm-agent: %s\n", why);
		return 2;
	}
	rc = vcvm_key_load(vcvm_key_path(), key, why, sizeof(why));
	if (rc < 0) {
		fprintf(stderr, "vcvm-agent: %s\n", why);
		return 1;
	}
	rc = getaddrinfo(listen_addr, port, &hints, &ai);
	if (rc) {
		fprintf(stderr, "vcvm-agent: --listen %s --port %s: %s\n", listen_addr ?: "*", port,
			gai_strerror(rc));
		return 2;
	}
	lfd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(lfd, 64) < 0) {
		fprintf(stderr, "vcvm-agent: listen on %s port %s: %s\n", listen_addr ?: "*", port,
			strerror(errno));
		return 1;
	}
	freeaddrinfo(ai);
	{	/* probe the CPU models once, here (before SIGCHLD is ignored:
		 * the probe waits for its QEMU): every connection child
		 * inherits the answer (cpumodel.c keeps it per QEMU binary),
		 * so HOST_INFO and a migration's PREPARE start no QEMU */
		json_t *m = NULL;

		if (vcvm_cpu_usable(&e, &m, why, sizeof(why)))
			vcfs_warn("CPU models: %s (probed again at each request)", why);
		json_decref(m);
	}
	signal(SIGCHLD, SIG_IGN);	/* connection children reap themselves */
	signal(SIGPIPE, SIG_IGN);
	fprintf(stderr, "vcvm-agent: host %s listening on %s port %s (key %s, accel %s)\n", e.host,
		listen_addr ?: "*", port, vcvm_key_path(), e.accel);
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		pid_t pid;

		if (fd < 0) {
			if (errno != EINTR)
				vcfs_warn("accept: %s", strerror(errno));
			continue;
		}
		ip[0] = 0;
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
		else if (ss.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
		pid = fork();
		if (pid == 0) {
			close(lfd);
			signal(SIGCHLD, SIG_DFL);	/* vm.c waits for its shims */
			serve(&e, fd, key, ip);
			_exit(0);
		}
		if (pid < 0)
			vcfs_warn("fork: %s", strerror(errno));
		close(fd);
	}
}
