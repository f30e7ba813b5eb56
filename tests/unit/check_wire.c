/*
 * check_wire.c - the agent channel (hypervisor/wire.c): key file rules, the
 * handshake with the right and a wrong key, MAC'd frames and their sequence,
 * a request through vcvm_call with progress frames, request JSON round trip.
 * The agent side runs in a thread on a loopback socket.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "hypervisor/hv_err.h"
#include "hypervisor/wire.h"

static char dir[128], keyf[160], key2f[160];
static uint8_t key[VCVM_KEY_LEN], key2[VCVM_KEY_LEN];

static void setup(void)
{
	char why[256];

	snprintf(dir, sizeof(dir), "/tmp/check_wire.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(keyf, sizeof(keyf), "%s/k1", dir);
	snprintf(key2f, sizeof(key2f), "%s/k2", dir);
	ck_assert_int_eq(vcvm_key_generate(keyf, why, sizeof(why)), 0);
	ck_assert_int_eq(vcvm_key_generate(key2f, why, sizeof(why)), 0);
	ck_assert_int_eq(vcvm_key_load(keyf, key, why, sizeof(why)), 0);
	ck_assert_int_eq(vcvm_key_load(key2f, key2, why, sizeof(why)), 0);
}

static void teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(key_rules)
{
	char why[256] = "";
	uint8_t k[VCVM_KEY_LEN];

	ck_assert_int_eq(vcvm_key_generate(keyf, why, sizeof(why)), -EEXIST);
	ck_assert_int_ne(memcmp(key, key2, sizeof(key)), 0);
	chmod(keyf, 0644);
	ck_assert_int_eq(vcvm_key_load(keyf, k, why, sizeof(why)), -EPERM);
	ck_assert_ptr_nonnull(strstr(why, "0644"));
}
END_TEST

/* ---- an agent in a thread: answers each request with a progress frame
 * and rc 0, data {"vm": the request's vm} ---- */

struct srv {
	int lfd, port;
	int accept_rc, frames;
};

static void *serve(void *arg)
{
	struct srv *s = arg;
	struct vcvm_conn *c;
	char why[256] = "";
	json_t *f, *out;
	int fd = accept(s->lfd, NULL, NULL);

	s->accept_rc = vcvm_conn_accept(fd, key, "agent1", &c, why, sizeof(why));
	if (s->accept_rc)
		return NULL;
	while (vcvm_conn_recv(c, 5000, &f) == 0) {
		s->frames++;
		out = json_pack("{s:{s:s, s:i, s:i}}", "progress", "phase", "memory", "done", 1,
				"total", 2);
		vcvm_conn_send(c, out);
		json_decref(out);
		out = json_pack("{s:i, s:s, s:{s:O}}", "rc", 0, "error", "", "data", "vm",
				json_object_get(f, "vm"));
		vcvm_conn_send(c, out);
		json_decref(out);
		json_decref(f);
	}
	vcvm_conn_close(c);
	return NULL;
}

static pthread_t start_srv(struct srv *s)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	pthread_t t;

	memset(s, 0, sizeof(*s));
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(s->lfd, 4), 0);
	getsockname(s->lfd, (struct sockaddr *)&sa, &sl);
	s->port = ntohs(sa.sin_port);
	pthread_create(&t, NULL, serve, s);
	return t;
}

static int progress_seen;

static void on_progress(const struct vcvm_progress *p, void *arg)
{
	(void)arg;
	if (!strcmp(p->phase, "memory") && p->done == 1 && p->total == 2)
		progress_seen++;
}

START_TEST(handshake_and_call)
{
	struct vcvm_request req = { .type = VCVM_REQ_STATUS };
	struct vcvm_response r;
	struct vcvm_conn *c;
	char addr[64], why[256] = "";
	struct srv s;
	pthread_t t = start_srv(&s);

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", s.port);
	ck_assert_int_eq(vcvm_conn_connect(addr, key, &c, why, sizeof(why)), 0);
	ck_assert_str_eq(vcvm_conn_peer(c), "agent1");
	snprintf(req.vm, sizeof(req.vm), "web01");
	progress_seen = 0;
	ck_assert_int_eq(vcvm_call(c, &req, on_progress, NULL, &r), 0);
	ck_assert_int_eq(progress_seen, 1);
	ck_assert_str_eq(json_string_value(json_object_get(r.data, "vm")), "web01");
	vcvm_response_free(&r);
	snprintf(req.vm, sizeof(req.vm), "db02");
	ck_assert_int_eq(vcvm_call(c, &req, NULL, NULL, &r), 0);	/* seq 2 on both sides */
	ck_assert_str_eq(json_string_value(json_object_get(r.data, "vm")), "db02");
	vcvm_response_free(&r);
	vcvm_conn_close(c);
	pthread_join(t, NULL);
	close(s.lfd);
	ck_assert_int_eq(s.accept_rc, 0);
	ck_assert_int_eq(s.frames, 2);
}
END_TEST

START_TEST(wrong_key_refused)
{
	struct vcvm_conn *c = NULL;
	char addr[64], why[256] = "";
	struct srv s;
	pthread_t t = start_srv(&s);

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", s.port);
	ck_assert_int_eq(vcvm_conn_connect(addr, key2, &c, why, sizeof(why)), -VCVM_EAUTH);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(why, "refused"));
	pthread_join(t, NULL);
	close(s.lfd);
	ck_assert_int_eq(s.accept_rc, -VCVM_EAUTH);
	ck_assert_int_eq(s.frames, 0);
}
END_TEST

START_TEST(request_json_round_trip)
{
	struct vcvm_request a = { .type = VCVM_REQ_MIGRATE }, b;
	char why[256];
	json_t *j;

	snprintf(a.vm, sizeof(a.vm), "web01");
	snprintf(a.u.migrate.to_host, sizeof(a.u.migrate.to_host), "esx2");
	a.u.migrate.max_bandwidth = 1u << 30;
	a.u.migrate.downtime_ms = 30;
	j = vcvm_req_to_json(&a);
	ck_assert_int_eq(vcvm_req_from_json(j, &b, why, sizeof(why)), 0);
	json_decref(j);
	ck_assert_int_eq(b.type, VCVM_REQ_MIGRATE);
	ck_assert_str_eq(b.vm, "web01");
	ck_assert_str_eq(b.u.migrate.to_host, "esx2");
	ck_assert_uint_eq(b.u.migrate.max_bandwidth, 1u << 30);
	ck_assert_uint_eq(b.u.migrate.downtime_ms, 30);
	j = json_pack("{s:s, s:s, s:{}}", "type", "teleport", "vm", "x", "args");
	ck_assert_int_eq(vcvm_req_from_json(j, &b, why, sizeof(why)), -ENOSYS);
	ck_assert_ptr_nonnull(strstr(why, "teleport"));
	json_decref(j);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("wire");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, key_rules);
	tcase_add_test(tc, handshake_and_call);
	tcase_add_test(tc, wrong_key_refused);
	tcase_add_test(tc, request_json_round_trip);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
