/*
 * qmp.c - QMP client: unix socket, own line buffer, jansson, bounded waits.
 *
 * Invariants:
 *  - buf[0..len) holds bytes read but not yet parsed; it never holds a
 *    complete line between calls (every complete line is parsed at once).
 *  - at most one command is in flight: want_id is set while execute() waits,
 *    and a reply with another id (a command that timed out) is dropped.
 *  - events go to the tail of the queue in arrival order and leave it only
 *    through pop_event/wait_event/flush_events; the queue is capped
 *    (QMP_MAX_EVENTS, oldest dropped with a warning) so that a caller that
 *    never drains it cannot make us grow without bound.
 *
 * Deadlines run on CLOCK_MONOTONIC directly, not on the injectable vcfs
 * clock: they bound real waits on a real process, and a test that freezes the
 * vcfs clock must not make a QMP wait endless.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "hypervisor/hv_err.h"
#include "hypervisor/qmp.h"

#define QMP_MAX_LINE	(16u << 20)	/* query-qmp-schema is ~200 KiB; be generous */
#define QMP_MAX_EVENTS	4096
#define QMP_RETRY_MS	20

struct vcvm_qmp {
	int fd;
	int dead;			/* 0, or what every later read returns:
					 * -VCVM_EQMPCLOSED (EOF) or -VCVM_EQMPPROTO */
	char *buf;			/* unparsed bytes */
	size_t len, cap;
	unsigned long long next_id;
	char want_id[32];		/* id of the command in flight, "" if none */
	json_t *reply;			/* its reply, once read */
	json_t *events;			/* array used as a FIFO */
	int dropped_warned;
	int version;
	char err_class[64];
	char err_desc[512];
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int left_ms(uint64_t deadline)
{
	uint64_t now = mono_ms();

	return now >= deadline ? 0 : (int)(deadline - now);
}

static void queue_event(struct vcvm_qmp *q, json_t *msg)
{
	if (json_array_size(q->events) >= QMP_MAX_EVENTS) {
		if (!q->dropped_warned)
			vcfs_warn("qmp: event queue full (%d): dropping the oldest events",
				  QMP_MAX_EVENTS);
		q->dropped_warned = 1;
		json_array_remove(q->events, 0);
	}
	json_array_append(q->events, msg);
}

/* Sort one parsed message. Returns 1 if it was an event, 0 otherwise. */
static int dispatch(struct vcvm_qmp *q, json_t *msg)
{
	json_t *id;

	if (json_object_get(msg, "event")) {
		queue_event(q, msg);
		return 1;
	}
	if (json_object_get(msg, "return") || json_object_get(msg, "error")) {
		id = json_object_get(msg, "id");
		if (q->want_id[0] && json_is_string(id) &&
		    strcmp(json_string_value(id), q->want_id) == 0 && !q->reply) {
			q->reply = json_incref(msg);
		} else {
			vcfs_debug("qmp: dropping a reply to an earlier command (id %s)",
				   json_is_string(id) ? json_string_value(id) : "none");
		}
		return 0;
	}
	if (json_object_get(msg, "QMP")) {
		json_t *v = json_object_get(json_object_get(json_object_get(msg, "QMP"),
							    "version"), "qemu");

		q->version = (int)(json_integer_value(json_object_get(v, "major")) * 10000 +
				   json_integer_value(json_object_get(v, "minor")) * 100 +
				   json_integer_value(json_object_get(v, "micro")));
		if (q->version == 0)
			q->version = -1;	/* greeting seen, version unknown */
		return 0;
	}
	vcfs_debug("qmp: ignoring a message that is neither reply nor event");
	return 0;
}

/* Parse every complete line in buf. Returns events queued, or -VCVM_EQMPPROTO. */
static int parse_lines(struct vcvm_qmp *q)
{
	size_t start = 0;
	int nev = 0;
	char *nl;

	while ((nl = memchr(q->buf + start, '\n', q->len - start))) {
		size_t n = (size_t)(nl - (q->buf + start));
		json_error_t jerr;
		json_t *msg;
		size_t i;

		for (i = 0; i < n && (q->buf[start + i] == ' ' || q->buf[start + i] == '\r' ||
				      q->buf[start + i] == '\t'); i++)
			;
		if (i < n) {
			msg = json_loadb(q->buf + start, n, 0, &jerr);
			if (!msg || !json_is_object(msg)) {
				vcfs_err("qmp: unparsable message from QEMU: %s",
					 msg ? "not an object" : jerr.text);
				json_decref(msg);
				return -VCVM_EQMPPROTO;
			}
			nev += dispatch(q, msg);
			json_decref(msg);
		}
		start += n + 1;
	}
	if (start) {
		memmove(q->buf, q->buf + start, q->len - start);
		q->len -= start;
	}
	return nev;
}

/*
 * Read once: wait up to timeout_ms for data (0: do not wait), read what is
 * there, parse complete lines.  Returns events queued (>= 0; 0 also on a
 * timeout), -VCVM_EQMPCLOSED at EOF, or another negative error.
 */
static int read_some(struct vcvm_qmp *q, int timeout_ms)
{
	struct pollfd p = { .fd = q->fd, .events = POLLIN };
	ssize_t n;
	int r;

	if (q->dead)
		return q->dead;
	r = poll(&p, 1, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	if (r == 0)
		return 0;
	if (q->cap - q->len < 4096) {
		size_t ncap = q->cap ? q->cap * 2 : 65536;
		char *nb;

		if (ncap > QMP_MAX_LINE + 4096) {
			vcfs_err("qmp: a message from QEMU is longer than %u bytes", QMP_MAX_LINE);
			return -VCVM_EQMPPROTO;
		}
		nb = realloc(q->buf, ncap);
		if (!nb)
			return -ENOMEM;
		q->buf = nb;
		q->cap = ncap;
	}
	n = read(q->fd, q->buf + q->len, q->cap - q->len);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		q->dead = -VCVM_EQMPCLOSED;
		return errno == ECONNRESET ? -VCVM_EQMPCLOSED : -errno;
	}
	if (n == 0) {
		q->dead = -VCVM_EQMPCLOSED;
		/* a last line without its newline is still a message */
		if (q->len && q->len < q->cap) {
			q->buf[q->len++] = '\n';
			parse_lines(q);
		}
		return -VCVM_EQMPCLOSED;
	}
	q->len += (size_t)n;
	r = parse_lines(q);
	if (r < 0)
		q->dead = r;	/* out of step with the stream: no way to resync */
	return r;
}

static int send_all(struct vcvm_qmp *q, const char *s, size_t n, uint64_t deadline)
{
	while (n) {
		ssize_t w = send(q->fd, s, n, MSG_NOSIGNAL);

		if (w < 0) {
			struct pollfd p = { .fd = q->fd, .events = POLLOUT };

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				q->dead = -VCVM_EQMPCLOSED;
				return errno == EPIPE || errno == ECONNRESET ? -VCVM_EQMPCLOSED : -errno;
			}
			if (poll(&p, 1, left_ms(deadline)) == 0)
				return -ETIMEDOUT;
			continue;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int vcvm_qmp_execute(struct vcvm_qmp *q, const char *cmd, json_t *args, int timeout_ms,
		     json_t **ret)
{
	uint64_t deadline = mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	json_t *req = NULL, *err;
	char *line = NULL;
	size_t n;
	int rc;

	if (ret)
		*ret = NULL;
	q->err_class[0] = q->err_desc[0] = 0;
	if (q->dead)
		return q->dead;
	snprintf(q->want_id, sizeof(q->want_id), "vcvm-%llu", ++q->next_id);
	json_decref(q->reply);
	q->reply = NULL;

	req = json_pack("{s:s, s:s}", "execute", cmd, "id", q->want_id);
	if (!req || (args && json_object_set(req, "arguments", args) < 0)) {
		rc = -ENOMEM;
		goto out_req;
	}
	line = json_dumps(req, JSON_COMPACT);
	if (!line) {
		rc = -ENOMEM;
		goto out_req;
	}
	n = strlen(line);
	line[n] = '\n';		/* json_dumps's NUL becomes the line end */
	rc = send_all(q, line, n + 1, deadline);
	if (rc < 0)
		goto out_line;

	while (!q->reply) {
		int left = left_ms(deadline);

		if (left == 0) {
			rc = -ETIMEDOUT;
			goto out_line;
		}
		rc = read_some(q, left);
		if (rc < 0 && !q->reply)
			goto out_line;
	}
	err = json_object_get(q->reply, "error");
	if (err) {
		snprintf(q->err_class, sizeof(q->err_class), "%s",
			 json_string_value(json_object_get(err, "class")) ?: "GenericError");
		snprintf(q->err_desc, sizeof(q->err_desc), "%s",
			 json_string_value(json_object_get(err, "desc")) ?: "(no description)");
		vcfs_debug("qmp: %s: %s: %s", cmd, q->err_class, q->err_desc);
		rc = -VCVM_EQMP;
	} else {
		if (ret)
			*ret = json_incref(json_object_get(q->reply, "return"));
		rc = 0;
	}
	json_decref(q->reply);
	q->reply = NULL;
out_line:
	q->want_id[0] = 0;
	free(line);
out_req:
	json_decref(req);
	return rc;
}

/* Index of the first queued event named name (NULL: any), or -1. */
static int find_event(struct vcvm_qmp *q, const char *name)
{
	size_t i;

	for (i = 0; i < json_array_size(q->events); i++) {
		const char *e = json_string_value(json_object_get(json_array_get(q->events, i),
								  "event"));

		if (!name || (e && strcmp(e, name) == 0))
			return (int)i;
	}
	return -1;
}

int vcvm_qmp_wait_event(struct vcvm_qmp *q, const char *name, int timeout_ms, json_t **ev)
{
	uint64_t deadline = mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	int i, rc;

	if (ev)
		*ev = NULL;
	for (;;) {
		i = find_event(q, name);
		if (i >= 0) {
			if (ev)
				*ev = json_incref(json_array_get(q->events, (size_t)i));
			json_array_remove(q->events, (size_t)i);
			return 0;
		}
		if (left_ms(deadline) == 0)
			return -ETIMEDOUT;
		rc = read_some(q, left_ms(deadline));
		if (rc < 0 && find_event(q, name) < 0)
			return rc;
	}
}

int vcvm_qmp_pop_event(struct vcvm_qmp *q, json_t **ev)
{
	if (json_array_size(q->events) == 0)
		return -EAGAIN;
	*ev = json_incref(json_array_get(q->events, 0));
	json_array_remove(q->events, 0);
	return 0;
}

void vcvm_qmp_flush_events(struct vcvm_qmp *q)
{
	json_array_clear(q->events);
}

int vcvm_qmp_fd(const struct vcvm_qmp *q)
{
	return q->fd;
}

int vcvm_qmp_read_ready(struct vcvm_qmp *q)
{
	int total = 0, rc;

	do {
		size_t before = q->len;

		rc = read_some(q, 0);
		if (rc < 0)
			return rc;
		total += rc;
		if (q->len == before && rc == 0)
			break;		/* nothing more to read */
	} while (1);
	return total;
}

const char *vcvm_qmp_error_class(const struct vcvm_qmp *q)
{
	return q->err_class;
}

const char *vcvm_qmp_error_desc(const struct vcvm_qmp *q)
{
	return q->err_desc;
}

int vcvm_qmp_qemu_version(const struct vcvm_qmp *q)
{
	return q->version > 0 ? q->version : 0;
}

/* One connect attempt; 0, or -errno (ENOENT/ECONNREFUSED/EAGAIN are retried). */
static int try_connect(const char *path, int *fdp)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, e;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = errno;
		close(fd);
		return -e;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		e = errno;
		close(fd);
		return -e;
	}
	*fdp = fd;
	return 0;
}

int vcvm_qmp_connect(const char *path, int timeout_ms, struct vcvm_qmp **out)
{
	uint64_t deadline = mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	struct vcvm_qmp *q;
	int rc, fd = -1;

	*out = NULL;
	for (;;) {
		rc = try_connect(path, &fd);
		if (rc == 0)
			break;
		if (rc != -ENOENT && rc != -ECONNREFUSED && rc != -EAGAIN)
			return rc;
		if (left_ms(deadline) == 0)
			return -ETIMEDOUT;
		usleep(QMP_RETRY_MS * 1000);
	}

	q = calloc(1, sizeof(*q));
	if (!q) {
		rc = -ENOMEM;
		goto err_fd;
	}
	q->fd = fd;
	q->events = json_array();
	if (!q->events) {
		rc = -ENOMEM;
		goto err_q;
	}
	/* the greeting comes first; events that slip in before it are kept */
	while (q->version == 0) {
		int left = left_ms(deadline);

		if (left == 0) {
			rc = -ETIMEDOUT;
			goto err_q;
		}
		rc = read_some(q, left);
		if (rc < 0)
			goto err_q;
	}
	rc = vcvm_qmp_execute(q, "qmp_capabilities", NULL,
			      left_ms(deadline) > 0 ? left_ms(deadline) : 1, NULL);
	if (rc < 0) {
		if (rc == -VCVM_EQMP)
			vcfs_err("qmp: qmp_capabilities refused: %s", q->err_desc);
		goto err_q;
	}
	*out = q;
	return 0;

err_q:
	vcvm_qmp_close(q);
	return rc;
err_fd:
	close(fd);
	return rc;
}

void vcvm_qmp_close(struct vcvm_qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	json_decref(q->reply);
	json_decref(q->events);
	free(q->buf);
	free(q);
}
