/*
 * hv_int.h - internals shared by the hypervisor/ modules (not an API).
 */
#ifndef VCVM_HV_INT_H
#define VCVM_HV_INT_H

#include <stddef.h>

/*
 * snprintf that reports truncation: 0, or -ENAMETOOLONG when the result did
 * not fit (it is then cut, still NUL-terminated).  Used for paths and
 * messages built from names of unbounded length.
 */
int hv_fmt(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * The VM's run lock on this host: flock of <rundir>/lock (rundir created),
 * held by start, stop, reset, destroy and move-storage for their whole run;
 * waits up to a minute for another vcvm.  Returns the fd or -errno (why
 * says what, -EBUSY: "another vcvm is working on this VM").  vm.c.
 */
int vcvm_run_lock(const char *rundir, char *why, size_t whylen);

/*
 * Run argv (no shell; argv[0] looked up in PATH) with in (may be NULL) on
 * its stdin, its stdout into out (NUL-terminated, cut at outsz - 1), the
 * last line of its stderr into err.  Returns the exit status (127: could
 * not exec, 128 + n: killed by signal n), or -errno when it could not run.
 * For short tools (qemu-img, a QEMU probe): stdin is written whole before
 * stdout is read, so in must fit a pipe (64 KiB).  hv_run.c.
 */
int hv_run(char *const argv[], const char *in, char *out, size_t outsz, char *err, size_t errsz);

/* The file prog names (a path, or the first executable of that name in
 * PATH, "/usr/bin:/bin" when unset) into path; -ENOENT if there is none.
 * hv_run.c. */
int hv_find_prog(const char *prog, char *path, size_t n);

#endif
