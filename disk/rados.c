/* rados.c - placeholder until the rados backend lands (being written). */
#include "disk_int.h"

int vcfs_rados_open(const struct vcfs_uri *u, const struct vcfs_disk_opts *o,
		   struct vcfs_disk **out)
{
	(void)u;
	(void)o;
	*out = 0;
	return -VCFS_ENOBACKEND;
}
