/* hv_err.c - vcvm_strerror(): the hypervisor codes, then vcfs's and errno. */
#include "hypervisor/hv_err.h"

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
