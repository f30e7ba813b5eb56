/*
 * check_qmp.c - the QMP client against a real QEMU (no guest: -nodefaults,
 * no disk, the firmware just idles) and against a fake server for the cases a
 * real QEMU will not produce on demand (silence, late replies, garbage).
 *
 * Each test starts its own QEMU in the fixture; libcheck's fork mode kills
 * nothing for us, so teardown does.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "hypervisor/hv_err.h"
#include "hypervisor/qmp.h"

static char dir[64], sock[128];
static pid_t qemu_pid = -1, fake_pid = -1;

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void start_qemu(void)
{
	char qmparg[200];

	snprintf(qmparg, sizeof(qmparg), "unix:%s,server=on,wait=off", sock);
	qemu_pid = fork();
	ck_assert_int_ge(qemu_pid, 0);
	if (qemu_pid == 0) {
		execlp("qemu-system-x86_64", "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg",
		       "-nodefaults", "-display", "none", "-m", "32", "-qmp", qmparg, (char *)NULL);
		_exit(127);
	}
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_qmp.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/qmp.sock", dir);
}

static void teardown(void)
{
	char cmd[128];

	if (qemu_pid > 0) {
		kill(qemu_pid, SIGKILL);
		waitpid(qemu_pid, NULL, 0);
	}
	if (fake_pid > 0) {
		kill(fake_pid, SIGKILL);
		waitpid(fake_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static struct vcvm_qmp *connect_qemu(void)
{
	struct vcvm_qmp *q = NULL;
	int rc;

	start_qemu();
	rc = vcvm_qmp_connect(sock, 10000, &q);
	ck_assert_msg(rc == 0, "connect: %s", vcvm_strerror(rc));
	return q;
}

static const char *status_of(struct vcvm_qmp *q)
{
	static char st[32];
	json_t *r = NULL;

	ck_assert_int_eq(vcvm_qmp_execute(q, "query-status", NULL, 5000, &r), 0);
	snprintf(st, sizeof(st), "%s", json_string_value(json_object_get(r, "status")));
	json_decref(r);
	return st;
}

START_TEST(status_and_version)
{
	struct vcvm_qmp *q = connect_qemu();

	ck_assert_str_eq(status_of(q), "running");
	ck_assert_int_ge(vcvm_qmp_qemu_version(q), 20000);	/* 2.0 or later */
	vcvm_qmp_close(q);
}
END_TEST

START_TEST(stop_cont_events)
{
	struct vcvm_qmp *q = connect_qemu();
	json_t *ev = NULL;

	ck_assert_int_eq(vcvm_qmp_execute(q, "stop", NULL, 5000, NULL), 0);
	ck_assert_int_eq(vcvm_qmp_wait_event(q, "STOP", 5000, &ev), 0);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "event")), "STOP");
	ck_assert_ptr_nonnull(json_object_get(ev, "timestamp"));
	json_decref(ev);
	ck_assert_str_eq(status_of(q), "paused");

	ck_assert_int_eq(vcvm_qmp_execute(q, "cont", NULL, 5000, NULL), 0);
	ck_assert_int_eq(vcvm_qmp_wait_event(q, "RESUME", 5000, NULL), 0);
	ck_assert_str_eq(status_of(q), "running");

	/* two events queued while a command runs come out in order */
	ck_assert_int_eq(vcvm_qmp_execute(q, "stop", NULL, 5000, NULL), 0);
	ck_assert_int_eq(vcvm_qmp_execute(q, "cont", NULL, 5000, NULL), 0);
	ck_assert_int_eq(vcvm_qmp_execute(q, "query-status", NULL, 5000, NULL), 0);
	ck_assert_int_eq(vcvm_qmp_wait_event(q, NULL, 5000, &ev), 0);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "event")), "STOP");
	json_decref(ev);
	ck_assert_int_eq(vcvm_qmp_wait_event(q, NULL, 5000, &ev), 0);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "event")), "RESUME");
	json_decref(ev);
	vcvm_qmp_close(q);
}
END_TEST

START_TEST(errors_are_reported)
{
	struct vcvm_qmp *q = connect_qemu();
	json_t *args = json_pack("{s:s}", "bogus", "x");

	ck_assert_int_eq(vcvm_qmp_execute(q, "no-such-command", NULL, 5000, NULL), -VCVM_EQMP);
	ck_assert_str_eq(vcvm_qmp_error_class(q), "CommandNotFound");
	ck_assert(strstr(vcvm_qmp_error_desc(q), "no-such-command") != NULL);
	ck_assert_int_eq(vcvm_qmp_execute(q, "query-status", args, 5000, NULL), -VCVM_EQMP);
	ck_assert_str_eq(vcvm_qmp_error_class(q), "GenericError");
	ck_assert(strstr(vcvm_qmp_error_desc(q), "bogus") != NULL);
	json_decref(args);
	/* the connection is still fine, and the error is cleared */
	ck_assert_str_eq(status_of(q), "running");
	ck_assert_str_eq(vcvm_qmp_error_class(q), "");
	vcvm_qmp_close(q);
}
END_TEST

START_TEST(event_driven_poll)
{
	struct vcvm_qmp *q = connect_qemu();
	struct pollfd p = { .events = POLLIN };
	long long end = ms_now() + 5000;
	json_t *ev = NULL;
	int got = 0;

	ck_assert_int_eq(vcvm_qmp_pop_event(q, &ev), -EAGAIN);
	ck_assert_int_eq(vcvm_qmp_execute(q, "stop", NULL, 5000, NULL), 0);
	/* the STOP event may already be queued (read with the reply) or still on the socket */
	while (!got && ms_now() < end) {
		if (vcvm_qmp_pop_event(q, &ev) == 0) {
			got = 1;
			break;
		}
		p.fd = vcvm_qmp_fd(q);
		if (poll(&p, 1, 100) > 0)
			ck_assert_int_ge(vcvm_qmp_read_ready(q), 0);
	}
	ck_assert(got);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "event")), "STOP");
	json_decref(ev);
	ck_assert_int_eq(vcvm_qmp_execute(q, "cont", NULL, 5000, NULL), 0);
	vcvm_qmp_flush_events(q);
	ck_assert_int_eq(vcvm_qmp_pop_event(q, &ev), -EAGAIN);
	vcvm_qmp_close(q);
}
END_TEST

START_TEST(wait_event_timeout_is_bounded)
{
	struct vcvm_qmp *q = connect_qemu();
	long long t0 = ms_now(), dt;

	ck_assert_int_eq(vcvm_qmp_wait_event(q, "NEVER_HAPPENS", 300, NULL), -ETIMEDOUT);
	dt = ms_now() - t0;
	ck_assert_msg(dt >= 290 && dt < 1000, "waited %lld ms for a 300 ms timeout", dt);
	vcvm_qmp_close(q);
}
END_TEST

START_TEST(quit_then_closed)
{
	struct vcvm_qmp *q = connect_qemu();
	int rc, st;

	rc = vcvm_qmp_execute(q, "quit", NULL, 5000, NULL);
	ck_assert_msg(rc == 0 || rc == -VCVM_EQMPCLOSED, "quit: %s", vcvm_strerror(rc));
	ck_assert_int_eq(vcvm_qmp_wait_event(q, "SHUTDOWN", 5000, NULL), 0);
	ck_assert_int_eq(waitpid(qemu_pid, &st, 0), qemu_pid);
	qemu_pid = -1;
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_int_eq(vcvm_qmp_wait_event(q, "STOP", 2000, NULL), -VCVM_EQMPCLOSED);
	ck_assert_int_eq(vcvm_qmp_execute(q, "query-status", NULL, 2000, NULL), -VCVM_EQMPCLOSED);
	vcvm_qmp_close(q);
}
END_TEST

START_TEST(qemu_killed_is_noticed)
{
	struct vcvm_qmp *q = connect_qemu();
	long long t0;
	int rc;

	kill(qemu_pid, SIGKILL);
	waitpid(qemu_pid, NULL, 0);
	qemu_pid = -1;
	t0 = ms_now();
	rc = vcvm_qmp_execute(q, "query-status", NULL, 5000, NULL);
	ck_assert_int_eq(rc, -VCVM_EQMPCLOSED);
	ck_assert(ms_now() - t0 < 1000);
	vcvm_qmp_close(q);
}
END_TEST

START_TEST(connect_timeout_no_socket)
{
	struct vcvm_qmp *q = NULL;
	long long t0 = ms_now(), dt;

	ck_assert_int_eq(vcvm_qmp_connect(sock, 300, &q), -ETIMEDOUT);
	dt = ms_now() - t0;
	ck_assert_msg(dt >= 290 && dt < 1000, "connect gave up after %lld ms", dt);
	ck_assert_ptr_null(q);
}
END_TEST

/*
 * A fake QMP server for one connection.  mode:
 *   0  accepts and says nothing (no greeting)
 *   1  greets, accepts capabilities, then never answers command 2 but answers
 *      it late (after command 3 is sent) before answering command 3
 *   2  greets, then sends garbage
 */
static void fake_server(int mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int ls, c;

	strcpy(sa.sun_path, sock);
	ls = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(ls, 0);
	ck_assert_int_eq(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(ls, 1), 0);
	fake_pid = fork();
	ck_assert_int_ge(fake_pid, 0);
	if (fake_pid > 0) {
		close(ls);
		return;
	}
	c = accept(ls, NULL, NULL);
	if (c < 0)
		_exit(1);
	if (mode == 0) {
		pause();
		_exit(0);
	}
	dprintf(c, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}}, "
		"\"capabilities\": []}}\r\n");
	if (mode == 2) {
		dprintf(c, "{\"event\": \"X\", \"timestamp\": {}}\r\nthis is not json\r\n");
		pause();
		_exit(0);
	}
	{
		FILE *f = fdopen(dup(c), "r");
		char line[1024], id2[64] = "";

		while (fgets(line, sizeof(line), f)) {
			char *p = strstr(line, "\"id\":\""), id[64];

			if (!p)
				continue;
			sscanf(p + 6, "%63[^\"]", id);
			if (strstr(line, "qmp_capabilities")) {
				dprintf(c, "{\"return\": {}, \"id\": \"%s\"}\r\n", id);
			} else if (!id2[0]) {
				snprintf(id2, sizeof(id2), "%s", id);	/* stay silent */
			} else {
				/* late reply to the old command, then the right one */
				dprintf(c, "{\"return\": {\"late\": true}, \"id\": \"%s\"}\r\n", id2);
				dprintf(c, "{\"timestamp\": {}, \"event\": \"EV\"}\r\n");
				dprintf(c, "{\"return\": {\"late\": false}, \"id\": \"%s\"}\r\n", id);
			}
		}
	}
	_exit(0);
}

START_TEST(connect_timeout_no_greeting)
{
	struct vcvm_qmp *q = NULL;
	long long t0, dt;

	fake_server(0);
	t0 = ms_now();
	ck_assert_int_eq(vcvm_qmp_connect(sock, 300, &q), -ETIMEDOUT);
	dt = ms_now() - t0;
	ck_assert_msg(dt >= 290 && dt < 1000, "connect gave up after %lld ms", dt);
}
END_TEST

START_TEST(execute_timeout_and_late_reply)
{
	struct vcvm_qmp *q = NULL;
	json_t *r = NULL;
	long long t0, dt;

	fake_server(1);
	ck_assert_int_eq(vcvm_qmp_connect(sock, 2000, &q), 0);
	ck_assert_int_eq(vcvm_qmp_qemu_version(q), 70200);
	t0 = ms_now();
	ck_assert_int_eq(vcvm_qmp_execute(q, "query-status", NULL, 300, NULL), -ETIMEDOUT);
	dt = ms_now() - t0;
	ck_assert_msg(dt >= 290 && dt < 1000, "execute gave up after %lld ms", dt);
	/* the late reply to the first command must not be taken for the second's */
	ck_assert_int_eq(vcvm_qmp_execute(q, "query-status", NULL, 2000, &r), 0);
	ck_assert(json_is_false(json_object_get(r, "late")));
	json_decref(r);
	ck_assert_int_eq(vcvm_qmp_wait_event(q, "EV", 100, NULL), 0);
	vcvm_qmp_close(q);
}
END_TEST

START_TEST(garbage_is_a_protocol_error)
{
	struct vcvm_qmp *q = NULL;

	fake_server(2);
	ck_assert_int_eq(vcvm_qmp_connect(sock, 2000, &q), -VCVM_EQMPPROTO);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("qmp");
	TCase *t = tcase_create("real qemu");
	TCase *f = tcase_create("fake server");

	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, status_and_version);
	tcase_add_test(t, stop_cont_events);
	tcase_add_test(t, errors_are_reported);
	tcase_add_test(t, event_driven_poll);
	tcase_add_test(t, wait_event_timeout_is_bounded);
	tcase_add_test(t, quit_then_closed);
	tcase_add_test(t, qemu_killed_is_noticed);
	suite_add_tcase(s, t);

	tcase_add_checked_fixture(f, setup, teardown);
	tcase_add_test(f, connect_timeout_no_socket);
	tcase_add_test(f, connect_timeout_no_greeting);
	tcase_add_test(f, execute_timeout_and_late_reply);
	tcase_add_test(f, garbage_is_a_protocol_error);
	suite_add_tcase(s, f);
	return s;
}

int main(void)
{
	SRunner *sr;
	int nf;

	if (access("/usr/bin/qemu-system-x86_64", X_OK) != 0 &&
	    system("command -v qemu-system-x86_64 >/dev/null") != 0) {
		printf("check_qmp: qemu-system-x86_64 is not installed\n");
		return EXIT_FAILURE;
	}
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
