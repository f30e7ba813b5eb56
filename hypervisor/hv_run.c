/*
 * hv_run.c - hv_run(): run a short helper program and collect its output
 * (hv_int.h).  The pipes are read one after the other (stdout, then
 * stderr): the tools run here (qemu-img, a QEMU probe answering a few QMP
 * commands) write little to stderr, far less than a pipe holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "hypervisor/hv_int.h"

/* Read fd to its end: the first sz - 1 bytes into buf (NUL-terminated). */
static void read_all(int fd, char *buf, size_t sz)
{
	char sink[512];
	size_t n = 0;
	ssize_t r;

	for (;;) {
		if (n < sz - 1)
			r = read(fd, buf + n, sz - 1 - n);
		else
			r = read(fd, sink, sizeof(sink));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (n < sz - 1)
			n += (size_t)r;
	}
	buf[n] = '\0';
	close(fd);
}

static void close_pair(int p[2])
{
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
}

int hv_run(char *const argv[], const char *in, char *out, size_t outsz, char *err, size_t errsz)
{
	int pi[2] = { -1, -1 }, po[2] = { -1, -1 }, pe[2] = { -1, -1 }, st, rc;
	char *nl;
	pid_t pid;

	if (pipe2(pi, O_CLOEXEC) < 0 || pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
		rc = -errno;
		close_pair(pi);
		close_pair(po);
		close_pair(pe);
		return rc;
	}
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		close_pair(pi);
		close_pair(po);
		close_pair(pe);
		return rc;
	}
	if (pid == 0) {
		dup2(pi[0], 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execvp(argv[0], argv);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pi[0]);
	close(po[1]);
	close(pe[1]);
	if (in) {
		void (*old)(int) = signal(SIGPIPE, SIG_IGN);
		size_t n = strlen(in), off = 0;
		ssize_t w;

		while (off < n && ((w = write(pi[1], in + off, n - off)) > 0 || errno == EINTR))
			if (w > 0)
				off += (size_t)w;
		signal(SIGPIPE, old);
	}
	close(pi[1]);
	read_all(po[0], out, outsz);
	read_all(pe[0], err, errsz);
	while (*err && err[strlen(err) - 1] == '\n')
		err[strlen(err) - 1] = '\0';
	if ((nl = strrchr(err, '\n')))
		memmove(err, nl + 1, strlen(nl + 1) + 1);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int hv_find_prog(const char *prog, char *path, size_t n)
{
	const char *p = getenv("PATH"), *q;

	if (strchr(prog, '/'))
		return snprintf(path, n, "%s", prog) < (int)n && !access(path, X_OK) ? 0 : -ENOENT;
	for (p = p ? p : "/usr/bin:/bin"; *p; p = *q ? q + 1 : q) {
		q = strchrnul(p, ':');
		if (q > p && snprintf(path, n, "%.*s/%s", (int)(q - p), p, prog) < (int)n &&
		    !access(path, X_OK))
			return 0;
	}
	return -ENOENT;
}
