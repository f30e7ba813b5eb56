/* err.c - vcfs_strerror() over the X-macro list in vcfs_err.h and over errno. */
#include <string.h>
#include "vcfs_err.h"

const char *vcfs_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return "success";
#define VCFS_ERR_CASE(name, val, msg) case val: return msg;
	VCFS_ERRORS(VCFS_ERR_CASE)
#undef VCFS_ERR_CASE
	default:
		break;
	}
	if (err < VCFS_ERR_BASE)
		return strerror(err);
	return "unknown vcfs error";
}
