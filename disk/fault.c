/* fault.c - placeholder until the fault layer lands (being written). */
#include "disk_int.h"

int vcfs_fault_wrap(struct vcfs_disk *lower, struct vcfs_disk **out)
{
	(void)lower;
	*out = 0;
	return -VCFS_ENOBACKEND;
}

int vcfs_fault_parse(struct vcfs_disk *fault, const char *spec)
{
	(void)fault;
	(void)spec;
	return -VCFS_ENOBACKEND;
}
