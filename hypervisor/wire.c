/*
 * wire.c - agent channel: key file, handshake, MAC'd frames (see wire.h and
 * the wire shape in agent.h).
 *
 * MACs are HMAC-SHA256 (libcrypto).  The nonces are 32 random bytes sent as
 * 64 hex digits; the MAC inputs below use the raw bytes:
 *   client proof   HMAC(K,  "vcvm-c" | Na | Nc)
 *   agent proof    HMAC(K,  "vcvm-a" | Nc | Na)
 *   session key    Ks = HMAC(K, "vcvm-s" | Na | Nc)
 *   frame mac      HMAC(Ks, decimal(seq) "\n" type "\n" canon(rest))
 * where type is the frame's "type" string ("" when it has none) and rest is
 * the frame without "seq", "type" and "mac", dumped by jansson with sorted
 * keys, compact, ASCII only: both ends compute the same bytes.  The agent
 * never says why a handshake failed (no oracle): it closes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "hypervisor/hv_err.h"
#include "hypervisor/hv_int.h"
#include "hypervisor/wire.h"

#define MAC_LEN 32

struct vcvm_conn {
	int fd;
	uint8_t ks[MAC_LEN];
	uint64_t seq_out, seq_in;
	int call_ms;			/* vcvm_call: silence allowed between frames */
	char peer[VCVM_HOST_MAX];
	char local[64], remote[64];
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = 0;
}

static int unhex(const char *s, uint8_t *b, size_t n)
{
	size_t i;
	unsigned v;

	if (!s || strlen(s) != 2 * n)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		b[i] = (uint8_t)v;
	}
	return 0;
}

static void hmac(const uint8_t *key, size_t keylen, const void *data, size_t n, uint8_t out[MAC_LEN])
{
	unsigned len = MAC_LEN;

	HMAC(EVP_sha256(), key, (int)keylen, data, n, out, &len);
}

/* HMAC(key, label | a | b) over 32-byte a and b */
static void hmac3(const uint8_t *key, const char *label, const uint8_t *a, const uint8_t *b,
		  uint8_t out[MAC_LEN])
{
	uint8_t buf[6 + 2 * MAC_LEN];

	memcpy(buf, label, 6);
	memcpy(buf + 6, a, MAC_LEN);
	memcpy(buf + 6 + MAC_LEN, b, MAC_LEN);
	hmac(key, VCVM_KEY_LEN, buf, sizeof(buf), out);
}

/* ---- key file ---- */

const char *vcvm_key_path(void)
{
	const char *p = getenv("VCVM_KEY_FILE");

	return p && *p ? p : VCVM_KEY_DEFAULT;
}

int vcvm_key_load(const char *path, uint8_t key[VCVM_KEY_LEN], char *why, size_t whylen)
{
	char buf[2 * VCVM_KEY_LEN + 8];
	struct stat sb;
	ssize_t n;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = -errno;
		hv_fmt(why, whylen, "cluster key %s: %s (create one with vcvm keygen and copy it "
		       "to every host)", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		hv_fmt(why, whylen, "cluster key %s: not a regular file", path);
		return -EINVAL;
	}
	if ((sb.st_mode & 077) || sb.st_uid != geteuid()) {
		close(fd);
		hv_fmt(why, whylen, "cluster key %s: mode %04o owner %u: must be 0600 and owned "
		       "by uid %u (chmod 600 %s)", path, (unsigned)(sb.st_mode & 07777),
		       (unsigned)sb.st_uid, (unsigned)geteuid(), path);
		return -EPERM;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	if (unhex(buf, key, VCVM_KEY_LEN) < 0) {
		hv_fmt(why, whylen, "cluster key %s: not 64 hex digits (vcvm keygen writes one)", path);
		return -EINVAL;
	}
	return 0;
}

int vcvm_key_generate(const char *path, char *why, size_t whylen)
{
	uint8_t key[VCVM_KEY_LEN];
	char txt[2 * VCVM_KEY_LEN + 2];
	int fd, rc = 0;

	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
		hv_fmt(why, whylen, "getrandom: %s", strerror(errno));
		return -EIO;
	}
	hex(key, sizeof(key), txt);
	strcat(txt, "\n");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		hv_fmt(why, whylen, "%s: %s%s", path, strerror(errno),
		       rc == -EEXIST ? " (remove it first: every host must then get the new key)" : "");
		return rc;
	}
	if (write(fd, txt, strlen(txt)) != (ssize_t)strlen(txt) || fsync(fd) < 0)
		rc = errno ? -errno : -EIO;
	close(fd);
	if (rc < 0) {
		unlink(path);
		hv_fmt(why, whylen, "%s: %s", path, strerror(-rc));
	}
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* ---- raw frames ---- */

static int io_wait(int fd, short ev, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = ev };
	uint64_t now = mono_ms();
	int r;

	if (now >= deadline)
		return -ETIMEDOUT;
	r = poll(&p, 1, (int)(deadline - now));
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

static int read_full(int fd, void *buf, size_t n, uint64_t deadline)
{
	size_t got = 0;
	ssize_t r;
	int rc;

	while (got < n) {
		rc = io_wait(fd, POLLIN, deadline);
		if (rc < 0)
			return rc;
		r = read(fd, (char *)buf + got, n - got);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t n, uint64_t deadline)
{
	size_t put = 0;
	ssize_t r;
	int rc;

	while (put < n) {
		rc = io_wait(fd, POLLOUT, deadline);
		if (rc < 0)
			return rc;
		r = send(fd, (const char *)buf + put, n - put, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		put += (size_t)r;
	}
	return 0;
}

static int frame_send(int fd, json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT);
	uint32_t len;
	uint8_t hdr[4];
	uint64_t deadline = mono_ms() + VCVM_CALL_MS;
	int rc;

	if (!s)
		return -ENOMEM;
	len = (uint32_t)strlen(s);
	if (len > VCVM_MSG_MAX) {
		free(s);
		return -EMSGSIZE;
	}
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	rc = write_full(fd, hdr, 4, deadline);
	if (!rc)
		rc = write_full(fd, s, len, deadline);
	free(s);
	return rc;
}

static int frame_recv(int fd, int timeout_ms, json_t **out)
{
	uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
	uint8_t hdr[4];
	uint32_t len;
	char *buf;
	int rc;

	*out = NULL;
	rc = read_full(fd, hdr, 4, deadline);
	if (rc < 0)
		return rc;
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (len == 0 || len > VCVM_MSG_MAX)
		return -VCVM_EPROTO;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	rc = read_full(fd, buf, len, deadline);
	if (rc == 0) {
		*out = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
		if (!*out || !json_is_object(*out)) {
			json_decref(*out);
			*out = NULL;
			rc = -VCVM_EPROTO;
		}
	}
	free(buf);
	return rc;
}

/* ---- MAC'd frames ---- */

static int frame_mac(const struct vcvm_conn *c, uint64_t seq, json_t *obj, uint8_t out[MAC_LEN])
{
	json_t *rest = json_copy(obj);
	const char *type;
	char *canon, *msg;
	int n;

	if (!rest)
		return -ENOMEM;
	type = json_string_value(json_object_get(obj, "type"));
	json_object_del(rest, "seq");
	json_object_del(rest, "type");
	json_object_del(rest, "mac");
	canon = json_dumps(rest, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	json_decref(rest);
	if (!canon)
		return -ENOMEM;
	n = asprintf(&msg, "%llu\n%s\n%s", (unsigned long long)seq, type ? type : "", canon);
	free(canon);
	if (n < 0)
		return -ENOMEM;
	hmac(c->ks, sizeof(c->ks), msg, (size_t)n, out);
	free(msg);
	return 0;
}

int vcvm_conn_send(struct vcvm_conn *c, json_t *obj)
{
	uint8_t mac[MAC_LEN];
	char mhex[2 * MAC_LEN + 1];
	json_t *f = json_copy(obj);
	int rc;

	if (!f)
		return -ENOMEM;
	c->seq_out++;
	json_object_set_new(f, "seq", json_integer((json_int_t)c->seq_out));
	rc = frame_mac(c, c->seq_out, f, mac);
	if (!rc) {
		hex(mac, MAC_LEN, mhex);
		json_object_set_new(f, "mac", json_string(mhex));
		rc = frame_send(c->fd, f);
	}
	json_decref(f);
	return rc;
}

int vcvm_conn_recv(struct vcvm_conn *c, int timeout_ms, json_t **out)
{
	uint8_t mac[MAC_LEN], want[MAC_LEN];
	json_t *f;
	json_int_t seq;
	int rc;

	*out = NULL;
	rc = frame_recv(c->fd, timeout_ms, &f);
	if (rc < 0)
		return rc;
	seq = json_integer_value(json_object_get(f, "seq"));
	if (!json_is_integer(json_object_get(f, "seq")) || seq <= 0 || (uint64_t)seq != c->seq_in + 1 ||
	    unhex(json_string_value(json_object_get(f, "mac")), mac, MAC_LEN) < 0 ||
	    frame_mac(c, (uint64_t)seq, f, want) < 0 || CRYPTO_memcmp(mac, want, MAC_LEN) != 0) {
		json_decref(f);
		return -VCVM_EPROTO;
	}
	c->seq_in = (uint64_t)seq;
	*out = f;
	return 0;
}

/* ---- handshake ---- */

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t n)
{
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)n);
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)n);
}

static struct vcvm_conn *conn_new(int fd)
{
	struct vcvm_conn *c = calloc(1, sizeof(*c));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int one = 1, idle = 10, intvl = 5, cnt = 3;

	if (!c)
		return NULL;
	c->fd = fd;
	c->call_ms = VCVM_CALL_MS;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* a peer behind a cut link is declared gone in about 25 s */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		addr_text(&ss, c->local, sizeof(c->local));
	sl = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		addr_text(&ss, c->remote, sizeof(c->remote));
	return c;
}

void vcvm_conn_close(struct vcvm_conn *c)
{
	if (!c)
		return;
	close(c->fd);
	OPENSSL_cleanse(c->ks, sizeof(c->ks));
	free(c);
}

const char *vcvm_conn_peer(const struct vcvm_conn *c) { return c->peer; }
const char *vcvm_conn_local_addr(const struct vcvm_conn *c) { return c->local; }
const char *vcvm_conn_remote_addr(const struct vcvm_conn *c) { return c->remote; }
int vcvm_conn_fd(const struct vcvm_conn *c) { return c->fd; }
void vcvm_conn_set_call_ms(struct vcvm_conn *c, int ms) { c->call_ms = ms; }

int vcvm_conn_accept(int fd, const uint8_t key[VCVM_KEY_LEN], const char *host,
		     struct vcvm_conn **out, char *why, size_t whylen)
{
	uint8_t na[MAC_LEN], nc[MAC_LEN], mac[MAC_LEN], want[MAC_LEN];
	char nhex[2 * MAC_LEN + 1], mhex[2 * MAC_LEN + 1];
	struct vcvm_conn *c = conn_new(fd);
	json_t *f = NULL, *a;
	int rc;

	*out = NULL;
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	if (getrandom(na, sizeof(na), 0) != (ssize_t)sizeof(na)) {
		rc = -EIO;
		goto fail;
	}
	hex(na, MAC_LEN, nhex);
	f = json_pack("{s:{s:i, s:s, s:s}}", "hello", "proto", VCVM_AGENT_PROTO, "host", host,
		      "nonce", nhex);
	rc = f ? frame_send(fd, f) : -ENOMEM;
	json_decref(f);
	f = NULL;
	if (rc < 0)
		goto fail;
	rc = frame_recv(fd, VCVM_AUTH_MS, &f);
	if (rc < 0)
		goto fail;
	a = json_object_get(f, "auth");
	if (unhex(json_string_value(json_object_get(a, "nonce")), nc, MAC_LEN) < 0 ||
	    unhex(json_string_value(json_object_get(a, "mac")), mac, MAC_LEN) < 0) {
		rc = -VCVM_EAUTH;
		hv_fmt(why, whylen, "no auth frame (not a vcvm client?)");
		goto fail;
	}
	hmac3(key, "vcvm-c", na, nc, want);
	if (CRYPTO_memcmp(mac, want, MAC_LEN) != 0) {
		rc = -VCVM_EAUTH;
		hv_fmt(why, whylen, "wrong client proof (another cluster key)");
		goto fail;
	}
	json_decref(f);
	hmac3(key, "vcvm-a", nc, na, mac);
	hex(mac, MAC_LEN, mhex);
	f = json_pack("{s:{s:s}}", "auth_ok", "mac", mhex);
	rc = f ? frame_send(fd, f) : -ENOMEM;
	json_decref(f);
	f = NULL;
	if (rc < 0)
		goto fail;
	hmac3(key, "vcvm-s", na, nc, c->ks);
	*out = c;
	return 0;
fail:
	if (!why[0])
		hv_fmt(why, whylen, "handshake: %s", vcvm_strerror(rc));
	json_decref(f);
	vcvm_conn_close(c);
	return rc;
}

/* Split "name:port" (one colon: not an IPv6 address) in place; port or NULL. */
static char *split_port(char *s)
{
	char *colon = strchr(s, ':');

	if (!colon || strchr(colon + 1, ':'))
		return NULL;
	*colon = 0;
	return colon + 1;
}

/* "HOST[:PORT]" through the hosts file to host and port strings. */
static void resolve_name(const char *addr, char *host, size_t hn, char *port, size_t pn)
{
	char line[512], name[256], val[256], *p, *vp;
	const char *file = getenv("VCVM_HOSTS_FILE");
	FILE *f;

	snprintf(host, hn, "%s", addr);
	p = split_port(host);
	snprintf(port, pn, "%s", p ? p : "");
	f = fopen(file && *file ? file : VCVM_HOSTS_DEFAULT, "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || sscanf(line, "%255s %255s", name, val) != 2 || strcmp(name, host))
			continue;
		vp = split_port(val);
		if (vp && !port[0])
			snprintf(port, pn, "%s", vp);
		snprintf(host, hn, "%s", val);
		break;
	}
	if (f)
		fclose(f);
	if (!port[0])
		snprintf(port, pn, "%d", VCVM_AGENT_PORT);
}

int vcvm_host_address(const char *name, char *out, size_t n)
{
	char line[512], hn[256], val[256];
	const char *file = getenv("VCVM_HOSTS_FILE");
	struct in6_addr a6;
	struct in_addr a4;
	FILE *f;
	int rc = -ENOENT;

	f = fopen(file && *file ? file : VCVM_HOSTS_DEFAULT, "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || sscanf(line, "%255s %255s", hn, val) != 2 || strcmp(hn, name))
			continue;
		split_port(val);
		/* an address, not a name: binding must not depend on DNS */
		if (inet_pton(AF_INET, val, &a4) == 1 || inet_pton(AF_INET6, val, &a6) == 1) {
			snprintf(out, n, "%s", val);
			rc = 0;
		}
		break;
	}
	if (f)
		fclose(f);
	return rc;
}

int vcvm_conn_connect(const char *addr, const uint8_t key[VCVM_KEY_LEN],
		      struct vcvm_conn **out, char *why, size_t whylen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL, *p;
	uint8_t na[MAC_LEN], nc[MAC_LEN], mac[MAC_LEN], want[MAC_LEN];
	char host[256], port[32], nhex[2 * MAC_LEN + 1], mhex[2 * MAC_LEN + 1];
	struct vcvm_conn *c = NULL;
	json_t *f = NULL, *h;
	int fd = -1, rc, flags;
	uint64_t deadline;

	*out = NULL;
	resolve_name(addr, host, sizeof(host), port, sizeof(port));
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc) {
		hv_fmt(why, whylen, "agent %s: %s (a name from %s, a DNS name or an address)", addr,
		       gai_strerror(rc), getenv("VCVM_HOSTS_FILE") ?: VCVM_HOSTS_DEFAULT);
		return -EHOSTUNREACH;
	}
	rc = -EHOSTUNREACH;
	for (p = ai; p; p = p->ai_next) {
		fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
		if (fd < 0)
			continue;
		flags = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, flags | O_NONBLOCK);
		if (connect(fd, p->ai_addr, p->ai_addrlen) == 0 || errno == EINPROGRESS) {
			int err = 0;
			socklen_t el = sizeof(err);

			deadline = mono_ms() + VCVM_AUTH_MS;
			rc = io_wait(fd, POLLOUT, deadline);
			if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0) {
				fcntl(fd, F_SETFL, flags);
				break;
			}
			rc = rc ? rc : -err;
		} else {
			rc = -errno;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		hv_fmt(why, whylen, "agent %s (%s port %s): %s (is vcvm-agent running there?)", addr,
		       host, port, strerror(-rc));
		return rc;
	}
	c = conn_new(fd);
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	rc = frame_recv(fd, VCVM_AUTH_MS, &f);
	h = json_object_get(f, "hello");
	if (rc < 0 || unhex(json_string_value(json_object_get(h, "nonce")), na, MAC_LEN) < 0) {
		hv_fmt(why, whylen, "agent %s: no hello (%s)", addr, rc < 0 ? vcvm_strerror(rc) :
		       "not a vcvm agent");
		rc = rc < 0 ? rc : -VCVM_EPROTO;
		goto fail;
	}
	snprintf(c->peer, sizeof(c->peer), "%s", json_string_value(json_object_get(h, "host")) ?: addr);
	json_decref(f);
	if (getrandom(nc, sizeof(nc), 0) != (ssize_t)sizeof(nc)) {
		rc = -EIO;
		f = NULL;
		goto fail;
	}
	hmac3(key, "vcvm-c", na, nc, mac);
	hex(nc, MAC_LEN, nhex);
	hex(mac, MAC_LEN, mhex);
	f = json_pack("{s:{s:s, s:s}}", "auth", "nonce", nhex, "mac", mhex);
	rc = f ? frame_send(fd, f) : -ENOMEM;
	json_decref(f);
	f = NULL;
	if (rc == 0)
		rc = frame_recv(fd, VCVM_AUTH_MS, &f);
	h = json_object_get(f, "auth_ok");
	if (rc < 0 || unhex(json_string_value(json_object_get(h, "mac")), mac, MAC_LEN) < 0) {
		rc = -VCVM_EAUTH;
		hv_fmt(why, whylen, "agent %s (%s) refused us: %s (key %s)", addr, c->peer,
		       vcvm_strerror(rc), vcvm_key_path());
		goto fail;
	}
	hmac3(key, "vcvm-a", nc, na, want);
	if (CRYPTO_memcmp(mac, want, MAC_LEN) != 0) {
		rc = -VCVM_EAUTH;
		hv_fmt(why, whylen, "agent %s (%s) could not prove it holds the cluster key",
		       addr, c->peer);
		goto fail;
	}
	json_decref(f);
	hmac3(key, "vcvm-s", na, nc, c->ks);
	*out = c;
	return 0;
fail:
	json_decref(f);
	vcvm_conn_close(c);
	return rc;
}

/* ---- requests ---- */

static void set_str(json_t *o, const char *k, const char *v)
{
	if (v && *v)
		json_object_set_new(o, k, json_string(v));
}

static void set_int(json_t *o, const char *k, uint64_t v)
{
	if (v)
		json_object_set_new(o, k, json_integer((json_int_t)v));
}

json_t *vcvm_req_to_json(const struct vcvm_request *r)
{
	json_t *a = json_object(), *j;

	switch (r->type) {
	case VCVM_REQ_CREATE:
		set_str(a, "datastore", r->u.create.datastore);
		set_int(a, "memory_mib", r->u.create.memory_mib);
		set_int(a, "vcpus", r->u.create.vcpus);
		set_int(a, "disk_bytes", r->u.create.disk_bytes);
		set_str(a, "cpu_model", r->u.create.cpu_model);
		set_str(a, "kernel", r->u.create.kernel);
		set_str(a, "initrd", r->u.create.initrd);
		set_str(a, "append", r->u.create.append);
		break;
	case VCVM_REQ_STOP:
		set_int(a, "timeout_ms", (uint64_t)(r->u.stop.timeout_ms > 0 ? r->u.stop.timeout_ms : 0));
		if (r->u.stop.hard)
			json_object_set_new(a, "hard", json_true());
		break;
	case VCVM_REQ_MIGRATE:
		set_str(a, "to_host", r->u.migrate.to_host);
		set_int(a, "max_bandwidth", r->u.migrate.max_bandwidth);
		set_int(a, "downtime_ms", r->u.migrate.downtime_ms);
		break;
	case VCVM_REQ_MIGRATE_PREPARE:
		set_str(a, "folder", r->u.migrate_prepare.folder);
		set_str(a, "cpu_model", r->u.migrate_prepare.cpu_model);
		set_str(a, "machine", r->u.migrate_prepare.machine);
		set_str(a, "from_host", r->u.migrate_prepare.from_host);
		break;
	case VCVM_REQ_MIGRATE_COMMIT:
	case VCVM_REQ_MIGRATE_ABORT:
	case VCVM_REQ_MIGRATE_CANCEL:
		set_str(a, "from_host", r->u.migrate_commit.from_host);
		break;
	case VCVM_REQ_MOVE_STORAGE:
		set_str(a, "to", r->u.move_storage.to);
		json_object_set_new(a, "disk", json_integer(r->u.move_storage.disk));
		set_int(a, "max_bandwidth", r->u.move_storage.max_bandwidth);
		break;
	default:
		break;
	}
	j = json_pack("{s:s, s:s, s:o}", "type", vcvm_req_name(r->type), "vm", r->vm, "args", a);
	return j;
}

static void get_str(json_t *a, const char *k, char *out, size_t n)
{
	snprintf(out, n, "%s", json_string_value(json_object_get(a, k)) ?: "");
}

static uint64_t get_u64(json_t *a, const char *k)
{
	json_int_t v = json_integer_value(json_object_get(a, k));

	return v > 0 ? (uint64_t)v : 0;
}

int vcvm_req_from_json(json_t *j, struct vcvm_request *r, char *why, size_t whylen)
{
	const char *type = json_string_value(json_object_get(j, "type"));
	json_t *a = json_object_get(j, "args");
	int t;

	memset(r, 0, sizeof(*r));
	t = type ? vcvm_req_from_name(type) : -EINVAL;
	if (t < 0) {
		hv_fmt(why, whylen, "request type \"%s\" unknown to this agent (protocol %d)",
		       type ? type : "(none)", VCVM_AGENT_PROTO);
		return -ENOSYS;
	}
	r->type = (enum vcvm_req_type)t;
	r->seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
	get_str(j, "vm", r->vm, sizeof(r->vm));
	switch (r->type) {
	case VCVM_REQ_CREATE:
		get_str(a, "datastore", r->u.create.datastore, sizeof(r->u.create.datastore));
		r->u.create.memory_mib = (uint32_t)get_u64(a, "memory_mib");
		r->u.create.vcpus = (uint32_t)get_u64(a, "vcpus");
		r->u.create.disk_bytes = get_u64(a, "disk_bytes");
		get_str(a, "cpu_model", r->u.create.cpu_model, sizeof(r->u.create.cpu_model));
		get_str(a, "kernel", r->u.create.kernel, sizeof(r->u.create.kernel));
		get_str(a, "initrd", r->u.create.initrd, sizeof(r->u.create.initrd));
		get_str(a, "append", r->u.create.append, sizeof(r->u.create.append));
		break;
	case VCVM_REQ_STOP:
		r->u.stop.timeout_ms = (int)get_u64(a, "timeout_ms");
		r->u.stop.hard = json_is_true(json_object_get(a, "hard"));
		break;
	case VCVM_REQ_MIGRATE:
		get_str(a, "to_host", r->u.migrate.to_host, sizeof(r->u.migrate.to_host));
		r->u.migrate.max_bandwidth = get_u64(a, "max_bandwidth");
		r->u.migrate.downtime_ms = (uint32_t)get_u64(a, "downtime_ms");
		break;
	case VCVM_REQ_MIGRATE_PREPARE:
		get_str(a, "folder", r->u.migrate_prepare.folder, sizeof(r->u.migrate_prepare.folder));
		get_str(a, "cpu_model", r->u.migrate_prepare.cpu_model,
			sizeof(r->u.migrate_prepare.cpu_model));
		get_str(a, "machine", r->u.migrate_prepare.machine, sizeof(r->u.migrate_prepare.machine));
		get_str(a, "from_host", r->u.migrate_prepare.from_host,
			sizeof(r->u.migrate_prepare.from_host));
		break;
	case VCVM_REQ_MIGRATE_COMMIT:
	case VCVM_REQ_MIGRATE_ABORT:
	case VCVM_REQ_MIGRATE_CANCEL:
		get_str(a, "from_host", r->u.migrate_commit.from_host,
			sizeof(r->u.migrate_commit.from_host));
		break;
	case VCVM_REQ_MOVE_STORAGE:
		get_str(a, "to", r->u.move_storage.to, sizeof(r->u.move_storage.to));
		r->u.move_storage.disk = json_is_integer(json_object_get(a, "disk")) ?
			(int)json_integer_value(json_object_get(a, "disk")) : -1;
		r->u.move_storage.max_bandwidth = get_u64(a, "max_bandwidth");
		break;
	default:
		break;
	}
	return 0;
}

int vcvm_call(struct vcvm_conn *c, const struct vcvm_request *req, vcvm_progress_fn progress,
	      void *arg, struct vcvm_response *resp)
{
	json_t *f = vcvm_req_to_json(req), *p;
	int rc;

	memset(resp, 0, sizeof(*resp));
	rc = f ? vcvm_conn_send(c, f) : -ENOMEM;
	json_decref(f);
	while (rc == 0) {
		rc = vcvm_conn_recv(c, c->call_ms, &f);
		if (rc < 0)
			break;
		p = json_object_get(f, "progress");
		if (p) {
			struct vcvm_progress pr = {
				.phase = json_string_value(json_object_get(p, "phase")) ?: "",
				.done = get_u64(p, "done"), .total = get_u64(p, "total") };

			if (progress)
				progress(&pr, arg);
			json_decref(f);
			continue;
		}
		resp->rc = (int)json_integer_value(json_object_get(f, "rc"));
		get_str(f, "error", resp->why, sizeof(resp->why));
		resp->data = json_incref(json_object_get(f, "data"));
		json_decref(f);
		return resp->rc;
	}
	resp->rc = rc;
	hv_fmt(resp->why, sizeof(resp->why), "agent %s: %s", c->peer, vcvm_strerror(rc));
	return rc;
}

int vcvm_remote(const char *addr, const struct vcvm_request *req, vcvm_progress_fn progress,
		void *arg, struct vcvm_response *resp)
{
	uint8_t key[VCVM_KEY_LEN];
	struct vcvm_conn *c;
	int rc;

	memset(resp, 0, sizeof(*resp));
	rc = vcvm_key_load(vcvm_key_path(), key, resp->why, sizeof(resp->why));
	if (rc == 0)
		rc = vcvm_conn_connect(addr, key, &c, resp->why, sizeof(resp->why));
	OPENSSL_cleanse(key, sizeof(key));
	if (rc < 0) {
		resp->rc = rc;
		return rc;
	}
	rc = vcvm_call(c, req, progress, arg, resp);
	vcvm_conn_close(c);
	return rc;
}
