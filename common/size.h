/*
 * size.h - sizes as people write them: "4096", "64k", "512M", "2G", "1T",
 * also "2GiB" and "2GB" (binary units all: K = 1024).  One parser for the
 * tools, the benchmarks and the URI options (?create=).
 */
#ifndef VCFS_SIZE_H
#define VCFS_SIZE_H
#include <stdint.h>

/* 0 and *out set, or -EINVAL (empty, negative, junk after the unit, overflow). */
int vcfs_parse_size(const char *s, uint64_t *out);

#endif
