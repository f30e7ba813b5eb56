/*
 * log.h - one logging entry point for libraries and daemons.
 *
 * Libraries never print to stdout; they log through vcfs_log(), which by default
 * writes "vcfs[pid]: LEVEL: msg" to stderr and can be redirected (syslog, a
 * test buffer) with vcfs_log_set_sink().
 */
#ifndef VCFS_LOG_H
#define VCFS_LOG_H

enum vcfs_log_level { VCFS_LOG_ERR, VCFS_LOG_WARN, VCFS_LOG_INFO, VCFS_LOG_DEBUG };

typedef void (*vcfs_log_sink)(enum vcfs_log_level lvl, const char *msg, void *arg);

void vcfs_log(enum vcfs_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void vcfs_log_set_level(enum vcfs_log_level lvl);
void vcfs_log_set_sink(vcfs_log_sink sink, void *arg);

#define vcfs_err(...)   vcfs_log(VCFS_LOG_ERR, __VA_ARGS__)
#define vcfs_warn(...)  vcfs_log(VCFS_LOG_WARN, __VA_ARGS__)
#define vcfs_info(...)  vcfs_log(VCFS_LOG_INFO, __VA_ARGS__)
#define vcfs_debug(...) vcfs_log(VCFS_LOG_DEBUG, __VA_ARGS__)

/*
 * Report corruption where it is found (SQLite's CORRUPT_BKPT): logs the file,
 * line and what was being read, then evaluates to -VCFS_ECORRUPT.
 */
#define VCFS_CORRUPT(what, blk)                                                   \
	(vcfs_err("corruption at %s:%d: %s (block %llu)", __FILE__, __LINE__,     \
		  (what), (unsigned long long)(blk)), -VCFS_ECORRUPT)

#endif
