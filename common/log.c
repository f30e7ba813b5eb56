/* log.c - vcfs_log(): level filter and a replaceable sink (stderr by default). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "log.h"

static enum vcfs_log_level log_level = VCFS_LOG_INFO;
static vcfs_log_sink log_sink;
static void *log_sink_arg;

void vcfs_log_set_level(enum vcfs_log_level lvl)
{
	log_level = lvl;
}

void vcfs_log_set_sink(vcfs_log_sink sink, void *arg)
{
	log_sink = sink;
	log_sink_arg = arg;
}

void vcfs_log(enum vcfs_log_level lvl, const char *fmt, ...)
{
	static const char *names[] = { "error", "warning", "info", "debug" };
	char msg[1024];
	va_list ap;

	if (lvl > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_sink) {
		log_sink(lvl, msg, log_sink_arg);
		return;
	}
	fprintf(stderr, "vcfs[%d]: %s: %s\n", (int)getpid(), names[lvl], msg);
}
