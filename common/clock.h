/*
 * clock.h - injected time (e2fsck's E2FSCK_TIME habit).
 *
 * Heartbeats, lease expiry and I/O deadlines read vcfs_now_ns(), a monotonic
 * clock in nanoseconds that keeps counting through a suspend (CLOCK_BOOTTIME).  Tests install their own clock with vcfs_clock_set() and
 * drive it, so multi-host protocol tests run deterministically.  Hosts never
 * compare clock values with each other: each only measures its own intervals.
 */
#ifndef VCFS_CLOCK_H
#define VCFS_CLOCK_H
#include <stdint.h>

typedef uint64_t (*vcfs_clock_fn)(void *arg);

uint64_t vcfs_now_ns(void);
/* Install a clock; NULL restores CLOCK_MONOTONIC. */
void vcfs_clock_set(vcfs_clock_fn fn, void *arg);
/* Sleep for ns on the real clock (backoff between retries), or through the
 * sleep hook when one is installed. */
void vcfs_sleep_ns(uint64_t ns);
/*
 * Simulation seam: with a driven clock a backoff loop waiting for
 * vcfs_now_ns() to pass a deadline would spin forever on the real clock; the
 * simulator installs fn, which advances its clock by ns (and may run other
 * simulated work) instead of sleeping.  NULL restores nanosleep.
 */
typedef void (*vcfs_sleep_fn)(void *arg, uint64_t ns);
void vcfs_clock_set_sleep(vcfs_sleep_fn fn, void *arg);

/*
 * Simulation seam: a thread about to block until another thread hands it
 * work (no timeout: the orphan worker waiting for recovered slots) calls
 * vcfs_idle(1) before the wait and vcfs_idle(0) after it; a simulator that
 * runs background threads in step counts it as parked meanwhile instead of
 * waiting for it to reach its next backoff.  A no-op without a hook.
 */
typedef void (*vcfs_idle_fn)(void *arg, int idle);
void vcfs_clock_set_idle(vcfs_idle_fn fn, void *arg);
void vcfs_idle(int idle);

#define VCFS_NS_PER_MS 1000000ULL
#define VCFS_NS_PER_S  1000000000ULL

#endif
