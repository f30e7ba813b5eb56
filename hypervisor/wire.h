/*
 * wire.h - the agent channel of agent.h: the cluster key, the HMAC-SHA256
 * handshake, MAC'd frames, and a request/response call over them.
 *
 * Key: 32 random bytes, stored as 64 hex digits (one line) in
 * VCVM_KEY_FILE (environment) or /etc/vcvm/cluster.key.  The file must be a
 * regular file of mode 0600 (or stricter) owned by the reader: anything else
 * is refused with a message naming the mode, because a key readable by others
 * lets them drive every VM of the cluster.
 *
 * Addresses: "HOST[:PORT]", where HOST is a name from the hosts file
 * (VCVM_HOSTS_FILE or /etc/vcvm/hosts: "name address[:port]" per line, '#'
 * comments), else a DNS name or an IP address; PORT defaults to
 * VCVM_AGENT_PORT.
 *
 * A connection is owned by one thread.  Every receive has a deadline.
 */
#ifndef VCVM_WIRE_H
#define VCVM_WIRE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "hypervisor/agent.h"

#define VCVM_KEY_LEN		32
#define VCVM_KEY_DEFAULT	"/etc/vcvm/cluster.key"
#define VCVM_HOSTS_DEFAULT	"/etc/vcvm/hosts"
#define VCVM_AUTH_MS		5000	/* the whole handshake */
#define VCVM_CALL_MS		120000	/* silence allowed between two frames (a stop
					 * waits 30 s for the guest, then quit/kill) */

/* The key file in use: VCVM_KEY_FILE, else the default. */
const char *vcvm_key_path(void);

/* Read and check the key file.  -EPERM (why names the mode), -EINVAL, -errno. */
int vcvm_key_load(const char *path, uint8_t key[VCVM_KEY_LEN], char *why, size_t whylen);

/* Write a new random key to path (mode 0600, refuses to overwrite: -EEXIST). */
int vcvm_key_generate(const char *path, char *why, size_t whylen);

struct vcvm_conn;

/*
 * Client side: connect to addr ("HOST[:PORT]"), run the handshake.  On
 * success the agent's host name is in vcvm_conn_peer().  -VCVM_EAUTH when the
 * agent closed without auth_ok (wrong key), -ECONNREFUSED, -ETIMEDOUT, ...
 */
int vcvm_conn_connect(const char *addr, const uint8_t key[VCVM_KEY_LEN],
		      struct vcvm_conn **out, char *why, size_t whylen);

/*
 * Agent side: run the handshake on an accepted socket fd (taken over: closed
 * by vcvm_conn_close, or at once on failure).  host: this agent's name.
 */
int vcvm_conn_accept(int fd, const uint8_t key[VCVM_KEY_LEN], const char *host,
		     struct vcvm_conn **out, char *why, size_t whylen);

/* Send obj (borrowed) with the next seq and its mac. */
int vcvm_conn_send(struct vcvm_conn *c, json_t *obj);

/*
 * Receive the next frame, check its seq and mac (either wrong: -VCVM_EPROTO
 * and the caller closes).  -ECONNRESET at a clean close, -ETIMEDOUT.
 */
int vcvm_conn_recv(struct vcvm_conn *c, int timeout_ms, json_t **out);

const char *vcvm_conn_peer(const struct vcvm_conn *c);		/* peer's host name */
const char *vcvm_conn_local_addr(const struct vcvm_conn *c);	/* our IP on this link */
const char *vcvm_conn_remote_addr(const struct vcvm_conn *c);	/* the peer's IP */
int vcvm_conn_fd(const struct vcvm_conn *c);
void vcvm_conn_set_call_ms(struct vcvm_conn *c, int ms);	/* default VCVM_CALL_MS */
void vcvm_conn_close(struct vcvm_conn *c);

/*
 * The address the hosts file gives for host name (an IP address, without
 * the port): 0, or -ENOENT (no line, or a DNS name there).  vMotion's
 * incoming QEMU listens on it.
 */
int vcvm_host_address(const char *name, char *out, size_t n);

/* A request as its JSON frame (without seq/mac), and back. */
json_t *vcvm_req_to_json(const struct vcvm_request *req);
int vcvm_req_from_json(json_t *j, struct vcvm_request *req, char *why, size_t whylen);

/*
 * Send req, pass progress frames to progress (may be NULL), and fill resp.
 * Returns resp->rc, or a transport error (then resp->why says which host).
 */
int vcvm_call(struct vcvm_conn *c, const struct vcvm_request *req, vcvm_progress_fn progress,
	      void *arg, struct vcvm_response *resp);

/* Connect to addr and vcvm_call once, loading the key from vcvm_key_path(). */
int vcvm_remote(const char *addr, const struct vcvm_request *req, vcvm_progress_fn progress,
		void *arg, struct vcvm_response *resp);

#endif
