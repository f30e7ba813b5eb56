/*
 * fuzz_uri.c - libFuzzer target: the datastore URI parser (disk/uri.c), the
 * URI redaction used in every message and the query lookup.  Input: the URI
 * bytes (cut at the first NUL).  Invariants checked beyond "no crash": a
 * parsed URI has a scheme and what that scheme needs, a file: path is
 * absolute or a bare path, and a refused one leaves nothing allocated.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "disk/disk_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vcfs_uri u;
	char *s, *r;
	int rc;

	if (size > 4096)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	rc = vcfs_uri_parse(s, &u);
	if (rc == 0) {
		if (!u.scheme)
			abort();
		if (!strcmp(u.scheme, "file")) {
			/* "file:" URIs must name an absolute path; only a bare
			 * path (no scheme word before a ':') may be relative */
			const char *colon = strchr(s, ':'), *slash = strchr(s, '/');
			if (!u.path || (u.path[0] != '/' && colon &&
					!(slash && slash < colon) && s[0] != '.'))
				abort();
		} else if (!strcmp(u.scheme, "iscsi")) {
			if (!u.host || !u.target || u.lun < 0 || u.lun > 16383)
				abort();
		} else if (!strcmp(u.scheme, "nfs")) {
			if (!u.host || !u.path || u.path[0] != '/')
				abort();
		} else if (!strcmp(u.scheme, "rados")) {
			if (!u.pool || !u.image)
				abort();
			free(vcfs_uri_query_get(&u, "conf"));
			free(vcfs_uri_query_get(&u, "id"));
		} else {
			abort();	/* an unknown scheme was accepted */
		}
		if (u.port < 0 || u.port > 65535)
			abort();
		vcfs_uri_free(&u);
	} else if (u.scheme || u.host || u.path || u.user || u.password || u.query) {
		abort();	/* a refusal left something allocated */
	}
	r = vcfs_uri_redact(s);
	free(r);
	free(s);
	return 0;
}
