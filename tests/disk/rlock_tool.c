/*
 * rlock_tool.c - byte-range lock tester for the cluster lock tests and the
 * lock latency benchmark.  Opens FILE once and runs its steps in order on
 * that one descriptor:
 *
 *   rlock_tool [-r] FILE STEP...
 *	KIND:TYPE:START:LEN	set a lock, not waiting (KIND posix | ofd | flock,
 *				TYPE r | w | u; LEN 0 = to EOF; flock ignores
 *				START and LEN)
 *	wait:KIND:TYPE:START:LEN	the same, waiting (F_SETLKW, F_OFD_SETLKW,
 *				flock without LOCK_NB)
 *	get:KIND:TYPE:START:LEN	F_GETLK / F_OFD_GETLK: prints "unlocked" or
 *				"locked TYPE START LEN pid PID"
 *	sleep:SECONDS		sleep (the locks stay held)
 *	pause			wait for a signal (killed by the test)
 *	echo:TEXT		print TEXT (a marker for the test to wait on)
 *	bench:N			N times: F_OFD_SETLK write lock on byte 0, then
 *				unlock; prints p50/p99/mean latency in us
 *   -r opens read-only (default read-write).
 *
 * Each step that sets a lock prints "ok KIND" when it got it.  Exit status:
 * 0 all steps done; 11 a lock was refused (EAGAIN/EACCES/EWOULDBLOCK), after
 * printing "busy"; 1 any other error (printed).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static int parse(char *spec, char **kind, int *type, off_t *start, off_t *len)
{
	char *t, *s, *l;

	*kind = strtok(spec, ":");
	t = strtok(NULL, ":");
	s = strtok(NULL, ":");
	l = strtok(NULL, ":");
	if (!*kind || !t)
		return -1;
	*type = *t == 'r' ? F_RDLCK : *t == 'w' ? F_WRLCK : *t == 'u' ? F_UNLCK : -1;
	*start = s ? strtoll(s, NULL, 0) : 0;
	*len = l ? strtoll(l, NULL, 0) : 0;
	if (*type < 0 || (strcmp(*kind, "posix") && strcmp(*kind, "ofd") && strcmp(*kind, "flock")))
		return -1;
	return 0;
}

static int do_lock(int fd, char *spec, int wait, int get)
{
	struct flock fl;
	char *kind;
	int type, cmd, rc;
	off_t start, len;

	if (parse(spec, &kind, &type, &start, &len)) {
		fprintf(stderr, "rlock_tool: bad step '%s'\n", spec);
		return 1;
	}
	if (!strcmp(kind, "flock")) {
		int op = type == F_RDLCK ? LOCK_SH : type == F_WRLCK ? LOCK_EX : LOCK_UN;
		rc = flock(fd, op | (wait ? 0 : LOCK_NB));
		goto done;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = (short)type;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = len;
	if (!strcmp(kind, "ofd"))
		cmd = get ? F_OFD_GETLK : wait ? F_OFD_SETLKW : F_OFD_SETLK;
	else
		cmd = get ? F_GETLK : wait ? F_SETLKW : F_SETLK;
	rc = fcntl(fd, cmd, &fl);
	if (!rc && get) {
		if (fl.l_type == F_UNLCK)
			printf("unlocked\n");
		else
			printf("locked %c %lld %lld pid %d\n", fl.l_type == F_WRLCK ? 'w' : 'r',
			       (long long)fl.l_start, (long long)fl.l_len, fl.l_pid);
		fflush(stdout);
		return 0;
	}
done:
	if (!rc) {
		printf("ok %s\n", kind);
		fflush(stdout);
		return 0;
	}
	if (errno == EAGAIN || errno == EACCES || errno == EWOULDBLOCK) {
		printf("busy\n");
		fflush(stdout);
		return 11;
	}
	fprintf(stderr, "rlock_tool: %s: %s\n", spec, strerror(errno));
	return 1;
}

static int cmp_u64(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;

	return x < y ? -1 : x > y;
}

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static int bench(int fd, long n)
{
	unsigned long long *lat = calloc((size_t)n, sizeof(*lat)), sum = 0;
	struct flock fl = { .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };

	if (!lat || n <= 0)
		return 1;
	for (long i = 0; i < n; i++) {
		unsigned long long t0 = now_ns();
		fl.l_type = F_WRLCK;
		if (fcntl(fd, F_OFD_SETLK, &fl))
			goto fail;
		fl.l_type = F_UNLCK;
		if (fcntl(fd, F_OFD_SETLK, &fl))
			goto fail;
		lat[i] = now_ns() - t0;
		sum += lat[i];
	}
	qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
	printf("setlk+unlock n=%ld p50_us=%.1f p99_us=%.1f mean_us=%.1f\n", n,
	       lat[n / 2] / 1e3, lat[(n * 99) / 100] / 1e3, (double)sum / (double)n / 1e3);
	free(lat);
	return 0;
fail:
	fprintf(stderr, "rlock_tool: bench: %s\n", strerror(errno));
	free(lat);
	return 1;
}

int main(int argc, char **argv)
{
	int fd, rc = 0, ro = 0, i = 1;

	if (argc > 1 && !strcmp(argv[1], "-r")) {
		ro = 1;
		i++;
	}
	if (argc - i < 1) {
		fprintf(stderr, "usage: rlock_tool [-r] FILE STEP...  (see the source)\n");
		return 2;
	}
	fd = open(argv[i], ro ? O_RDONLY : O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "rlock_tool: %s: %s\n", argv[i], strerror(errno));
		return 1;
	}
	for (i++; i < argc && !rc; i++) {
		char *a = argv[i];

		if (!strncmp(a, "sleep:", 6))
			sleep((unsigned)atoi(a + 6));
		else if (!strcmp(a, "pause"))
			pause();
		else if (!strncmp(a, "echo:", 5)) {
			printf("%s\n", a + 5);
			fflush(stdout);
		} else if (!strncmp(a, "bench:", 6))
			rc = bench(fd, atol(a + 6));
		else if (!strncmp(a, "wait:", 5))
			rc = do_lock(fd, a + 5, 1, 0);
		else if (!strncmp(a, "get:", 4))
			rc = do_lock(fd, a + 4, 0, 1);
		else
			rc = do_lock(fd, a, 0, 0);
	}
	close(fd);
	return rc;
}
