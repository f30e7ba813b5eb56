/*
 * uri.c - datastore URI parser (fuzzed: tests/fuzz/fuzz_uri.c).
 *
 *   file:/path | file:///path | /path            -> scheme "file", path
 *   iscsi://[user%pass@]host[:port]/iqn/lun      -> user, password, host, port,
 *                                                   target, lun
 *   nfs://host[:port]/export/dir/file[?query]    -> host, port, path, query
 *   rados://pool/image[?conf=PATH&id=NAME]        -> pool, image, query
 * host may be a bracketed IPv6 literal.  user and password are percent-decoded.
 * Returns 0, or -VCFS_EBADURI / -VCFS_ESCHEME / -ENOMEM; u is then empty.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "disk_int.h"
#include "../common/log.h"

static char *dupn(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = 0;
	}
	return p;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decode s[0..n) into a new string; NULL on bad escape or NUL byte. */
static char *pct_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int h, l;
			if (i + 2 >= n) {
				free(out);
				return NULL;
			}
			h = hexval((unsigned char)s[i + 1]);
			l = hexval((unsigned char)s[i + 2]);
			if (h < 0 || l < 0 || (h == 0 && l == 0)) {
				free(out);
				return NULL;
			}
			*o++ = (char)(h << 4 | l);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = 0;
	return out;
}

void vcfs_uri_free(struct vcfs_uri *u)
{
	free(u->scheme);
	free(u->user);
	free(u->password);
	free(u->host);
	free(u->path);
	free(u->target);
	free(u->pool);
	free(u->image);
	free(u->query);
	memset(u, 0, sizeof(*u));
}

/* Parse "host[:port]" or "[v6]:port" from s[0..n). */
static int parse_hostport(const char *s, size_t n, struct vcfs_uri *u)
{
	const char *colon = NULL;
	size_t hlen;

	if (n == 0)
		return -VCFS_EBADURI;
	if (s[0] == '[') {
		const char *rb = memchr(s, ']', n);
		if (!rb || rb == s + 1)
			return -VCFS_EBADURI;
		u->host = dupn(s + 1, (size_t)(rb - s - 1));
		if (rb + 1 < s + n) {
			if (rb[1] != ':')
				return -VCFS_EBADURI;
			colon = rb + 1;
		}
	} else {
		colon = memchr(s, ':', n);
		hlen = colon ? (size_t)(colon - s) : n;
		if (hlen == 0)
			return -VCFS_EBADURI;
		u->host = dupn(s, hlen);
	}
	if (!u->host)
		return -ENOMEM;
	for (const char *h = u->host; *h; h++)
		if (!isalnum((unsigned char)*h) && !strchr(".-_:", *h))
			return -VCFS_EBADURI;
	if (colon) {
		const char *p = colon + 1, *end = s + n;
		long port = 0;
		if (p == end || end - p > 5)
			return -VCFS_EBADURI;
		for (; p < end; p++) {
			if (!isdigit((unsigned char)*p))
				return -VCFS_EBADURI;
			port = port * 10 + (*p - '0');
		}
		if (port < 1 || port > 65535)
			return -VCFS_EBADURI;
		u->port = (int)port;
	}
	return 0;
}

static int parse_authority(const char *s, size_t n, struct vcfs_uri *u, int allow_user)
{
	const char *at = NULL;

	for (size_t i = 0; i < n; i++)
		if (s[i] == '@')
			at = s + i;	/* last '@': passwords may not hold a raw one */
	if (at) {
		const char *pct;
		size_t ulen = (size_t)(at - s);
		if (!allow_user)
			return -VCFS_EBADURI;
		/* libiscsi's form: user%password (the '%' not followed by hex) */
		pct = NULL;
		for (size_t i = 0; i < ulen; i++)
			if (s[i] == '%' && !(i + 2 < ulen && hexval((unsigned char)s[i + 1]) >= 0 &&
					     hexval((unsigned char)s[i + 2]) >= 0)) {
				pct = s + i;
				break;
			}
		if (!pct) {
			const char *c = memchr(s, ':', ulen);
			pct = c;
		}
		if (!pct || pct == s)
			return -VCFS_EBADURI;
		u->user = pct_decode(s, (size_t)(pct - s));
		u->password = pct_decode(pct + 1, (size_t)(at - pct - 1));
		if (!u->user || !u->password || !*u->password)
			return -VCFS_EBADURI;
		n -= (size_t)(at + 1 - s);
		s = at + 1;
	}
	return parse_hostport(s, n, u);
}

int vcfs_uri_parse(const char *s, struct vcfs_uri *u)
{
	const char *colon, *rest, *slash, *q;
	int rc = -VCFS_EBADURI;

	memset(u, 0, sizeof(*u));
	if (!s || !*s)
		return -VCFS_EBADURI;
	for (const char *c = s; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return -VCFS_EBADURI;
	colon = strchr(s, ':');
	slash = strchr(s, '/');
	if (s[0] == '/' || s[0] == '.' || !colon || (slash && slash < colon)) {
		/* a bare path: "word:rest" without a '/' before the ':' is a
		 * scheme, so "ftp:x" is refused and "file:x" wants /x */
		u->scheme = strdup("file");
		u->path = strdup(s);
		if (!u->scheme || !u->path)
			goto fail_nomem;
		return 0;
	}
	for (const char *c = s; c < colon; c++)
		if (!isalpha((unsigned char)*c)) {
			rc = -VCFS_EBADURI;
			goto fail;
		}
	u->scheme = dupn(s, (size_t)(colon - s));
	if (!u->scheme)
		goto fail_nomem;
	for (char *c = u->scheme; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	rest = colon + 1;

	if (!strcmp(u->scheme, "file")) {
		if (!strncmp(rest, "//", 2))
			rest += 2;	/* file:///path -> /path; file://host/ refused */
		if (rest[0] != '/')
			goto fail;
		u->path = strdup(rest);
		if (!u->path)
			goto fail_nomem;
		return 0;
	}
	if (strcmp(u->scheme, "iscsi") && strcmp(u->scheme, "nfs") &&
	    strcmp(u->scheme, "rados")) {
		rc = -VCFS_ESCHEME;
		goto fail;
	}
	if (strncmp(rest, "//", 2))
		goto fail;
	rest += 2;
	q = strchr(rest, '?');
	if (q) {
		u->query = strdup(q + 1);
		if (!u->query)
			goto fail_nomem;
	} else {
		q = rest + strlen(rest);
	}
	slash = memchr(rest, '/', (size_t)(q - rest));
	if (!slash || slash == rest)
		goto fail;

	if (!strcmp(u->scheme, "rados")) {
		const char *img = slash + 1;
		u->pool = dupn(rest, (size_t)(slash - rest));
		if (img >= q || memchr(img, '/', (size_t)(q - img)))
			goto fail;
		u->image = dupn(img, (size_t)(q - img));
		if (!u->pool || !u->image)
			goto fail_nomem;
		return 0;
	}
	rc = parse_authority(rest, (size_t)(slash - rest), u, !strcmp(u->scheme, "iscsi"));
	if (rc)
		goto fail;
	rc = -VCFS_EBADURI;
	if (!strcmp(u->scheme, "nfs")) {
		/* at least /export/file */
		const char *last = NULL;
		for (const char *c = slash; c < q; c++)
			if (*c == '/')
				last = c;
		if (last == slash || last + 1 >= q)
			goto fail;
		u->path = dupn(slash, (size_t)(q - slash));
		if (!u->path)
			goto fail_nomem;
		return 0;
	}
	/* iscsi: /iqn/lun */
	{
		const char *t = slash + 1, *t_end = memchr(t, '/', (size_t)(q - t));
		long lun = 0;
		if (!t_end || t_end == t || t_end + 1 >= q)
			goto fail;
		for (const char *c = t_end + 1; c < q; c++) {
			if (!isdigit((unsigned char)*c) || lun > 16383)
				goto fail;
			lun = lun * 10 + (*c - '0');
		}
		if (lun > 16383)
			goto fail;
		u->target = dupn(t, (size_t)(t_end - t));
		if (!u->target)
			goto fail_nomem;
		u->lun = (int)lun;
	}
	return 0;

fail_nomem:
	rc = -ENOMEM;
fail:
	vcfs_uri_free(u);
	return rc;
}

char *vcfs_uri_query_get(const struct vcfs_uri *u, const char *key)
{
	size_t klen = strlen(key);
	const char *p = u->query;

	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t n = amp ? (size_t)(amp - p) : strlen(p);
		if (n > klen && !strncmp(p, key, klen) && p[klen] == '=')
			return pct_decode(p + klen + 1, n - klen - 1);
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

/*
 * The password of an iscsi:// URI is whatever follows the first '%' or ':' of
 * the user part, up to its last '@'.  This deliberately covers more than the
 * parser would take as the password, and also URIs the parser refuses: a
 * typo'd URI is printed in "cannot open" messages too.  So:
 *   - the user part ends at the last '@' of the whole URI for iscsi:// (an
 *     IQN holds no '@', a password may hold a raw '/', '?' or '@'), and at the
 *     last '@' before the first '/' for the other schemes (whose paths may);
 *   - the password starts after the first '%' or ':', whichever comes first,
 *     even when that '%' is a percent escape of the user name (the user name
 *     is then partly hidden; a password is never partly shown).
 * Bare paths and file: URIs are returned unchanged.
 */
char *vcfs_uri_redact(const char *uri)
{
	const char *colon = strchr(uri, ':'), *auth, *end, *at = NULL, *sep = NULL;
	char *out;
	size_t keep, n;
	int iscsi;

	if (!colon || uri[0] == '/' || uri[0] == '.')
		return strdup(uri);
	for (const char *c = uri; c < colon; c++)
		if (!isalpha((unsigned char)*c))
			return strdup(uri);	/* no scheme: a path */
	if ((size_t)(colon - uri) == 4 && !strncasecmp(uri, "file", 4))
		return strdup(uri);
	iscsi = (size_t)(colon - uri) == 5 && !strncasecmp(uri, "iscsi", 5);
	auth = colon + 1;
	if (!strncmp(auth, "//", 2))
		auth += 2;
	end = iscsi ? NULL : strchr(auth, '/');
	if (!end)
		end = auth + strlen(auth);
	for (const char *c = auth; c < end; c++)
		if (*c == '@')
			at = c;
	for (const char *c = auth; at && c < at && !sep; c++)
		if (*c == '%' || *c == ':')
			sep = c;
	if (!sep)
		return strdup(uri);	/* no credentials, or a user name alone */
	keep = (size_t)(sep + 1 - uri);
	n = keep + 3 + strlen(at) + 1;
	out = malloc(n);
	if (!out)
		return NULL;
	memcpy(out, uri, keep);
	memcpy(out + keep, "***", 3);
	memcpy(out + keep + 3, at, strlen(at) + 1);
	return out;
}
