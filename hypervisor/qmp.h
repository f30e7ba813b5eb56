/*
 * qmp.h - a QMP (QEMU Machine Protocol) client over a unix socket.
 *
 * One connection to one QEMU.  Messages are JSON objects, one per line; this
 * client keeps its own line buffer, parses each complete line with jansson and
 * sorts it: the reply to the command in flight (matched by "id"), an event
 * (queued in arrival order), or noise (replies to commands that timed out,
 * which are dropped).  Nothing blocks without a deadline: every call takes a
 * timeout in milliseconds and returns -ETIMEDOUT when it passes.
 *
 * Event-driven use: an agent polls vcvm_qmp_fd() of many VMs together, calls
 * vcvm_qmp_read_ready() when one is readable, and drains vcvm_qmp_pop_event().
 * Synchronous use: vcvm_qmp_execute() and vcvm_qmp_wait_event(), which queue
 * every other event they read on the way.
 *
 * A QMP error reply ({"error": {"class", "desc"}}) returns -VCVM_EQMP and keeps
 * class and desc for vcvm_qmp_error_class()/_desc() until the next command.
 * After QEMU closes the socket (it exited), calls return -VCVM_EQMPCLOSED but
 * events read before the close can still be popped (SHUTDOWN, for one).
 *
 * Not thread-safe: one thread owns a connection.
 */
#ifndef VCVM_QMP_H
#define VCVM_QMP_H

#include <jansson.h>

struct vcvm_qmp;

/*
 * Connect to the QMP socket at path, read the greeting and negotiate
 * capabilities (qmp_capabilities).  Retries while the socket does not exist or
 * refuses (QEMU still starting) until timeout_ms has passed.
 * Returns 0 and *out, or -ETIMEDOUT, -errno, -VCVM_EQMPPROTO, -VCVM_EQMPCLOSED.
 */
int vcvm_qmp_connect(const char *path, int timeout_ms, struct vcvm_qmp **out);

/*
 * Run command cmd with args (may be NULL; borrowed, not stolen) and wait up to
 * timeout_ms for its reply.  On success *ret (if ret is not NULL) receives the
 * "return" value, a new reference the caller json_decref()s.
 * Returns 0, -VCVM_EQMP (see vcvm_qmp_error_*), -ETIMEDOUT, -VCVM_EQMPCLOSED.
 * A reply that arrives after the timeout is recognised by its id and dropped.
 */
int vcvm_qmp_execute(struct vcvm_qmp *q, const char *cmd, json_t *args, int timeout_ms,
		     json_t **ret);

/*
 * Wait up to timeout_ms for an event named name (NULL: any event), looking at
 * the queue first.  Events of other names stay queued, in order.  On success
 * *ev (if not NULL) receives the whole event object (new reference).
 * Returns 0, -ETIMEDOUT or -VCVM_EQMPCLOSED (queue empty of that name).
 */
int vcvm_qmp_wait_event(struct vcvm_qmp *q, const char *name, int timeout_ms, json_t **ev);

/* Take the oldest queued event without reading; 0 and *ev, or -EAGAIN. */
int vcvm_qmp_pop_event(struct vcvm_qmp *q, json_t **ev);

/* Drop every queued event (before starting an operation whose events matter). */
void vcvm_qmp_flush_events(struct vcvm_qmp *q);

/* The socket, for poll(); readable means call vcvm_qmp_read_ready(). */
int vcvm_qmp_fd(const struct vcvm_qmp *q);

/*
 * Read what is available without blocking and queue the events found.
 * Returns the number of events queued (>= 0), or -VCVM_EQMPCLOSED at EOF.
 */
int vcvm_qmp_read_ready(struct vcvm_qmp *q);

/* Class and description of the last QMP error reply ("" if none). */
const char *vcvm_qmp_error_class(const struct vcvm_qmp *q);
const char *vcvm_qmp_error_desc(const struct vcvm_qmp *q);

/* QEMU's version from the greeting, as major*10000 + minor*100 + micro. */
int vcvm_qmp_qemu_version(const struct vcvm_qmp *q);

/* Close the socket and free everything (queued events included). NULL is fine. */
void vcvm_qmp_close(struct vcvm_qmp *q);

#endif
