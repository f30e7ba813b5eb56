/*
 * clock.c - monotonic clock with a test-installable override.
 *
 * CLOCK_BOOTTIME, not CLOCK_MONOTONIC: the monotonic clock stops while the
 * machine is suspended, so a host resumed after a suspend would believe its
 * heartbeat lease still fresh while the others had long declared it dead.
 * The boot-time clock keeps counting through a suspend.
 */
#include <errno.h>
#include <time.h>
#include "clock.h"

static vcfs_clock_fn clock_fn;
static void *clock_arg;

void vcfs_clock_set(vcfs_clock_fn fn, void *arg)
{
	clock_fn = fn;
	clock_arg = arg;
}

uint64_t vcfs_now_ns(void)
{
	struct timespec ts;

	if (clock_fn)
		return clock_fn(clock_arg);
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * VCFS_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static vcfs_sleep_fn sleep_fn;
static void *sleep_arg;

void vcfs_clock_set_sleep(vcfs_sleep_fn fn, void *arg)
{
	sleep_fn = fn;
	sleep_arg = arg;
}

void vcfs_sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / VCFS_NS_PER_S),
			       .tv_nsec = (long)(ns % VCFS_NS_PER_S) };

	if (sleep_fn) {
		sleep_fn(sleep_arg, ns);
		return;
	}
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static vcfs_idle_fn idle_fn;
static void *idle_arg;

void vcfs_clock_set_idle(vcfs_idle_fn fn, void *arg)
{
	idle_fn = fn;
	idle_arg = arg;
}

void vcfs_idle(int idle)
{
	if (idle_fn)
		idle_fn(idle_arg, idle);
}
