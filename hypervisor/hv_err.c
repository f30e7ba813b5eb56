/* hv_err.c - vcvm_strerror(): the hypervisor codes, then vcfs's and errno. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include "hypervisor/hv_err.h"
#include "hypervisor/hv_int.h"

const char *vcvm_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
#define VCVM_ERR_CASE(name, val, msg) case val: return msg;
	VCVM_ERRORS(VCVM_ERR_CASE)
#undef VCVM_ERR_CASE
	default:
		return vcfs_strerror(err);
	}
}

int hv_fmt(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(buf, n, fmt, ap);
	va_end(ap);
	return r < 0 || (size_t)r >= n ? -ENAMETOOLONG : 0;
}
