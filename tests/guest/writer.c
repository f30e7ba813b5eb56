/*
 * writer.c - the test guest's workload (static, runs as a child of /init).
 *
 * Every interval (100 ms by default) it writes block n of the disk (4 KiB at
 * offset n * 4096) with the text "counter n", through O_DIRECT|O_DSYNC, and
 * only after that write has returned prints "counter n" on the console.  So
 * every number on the serial log is durable on the disk, and the host checks
 * afterwards (tests/guest/check_counter) that blocks 0..n read "counter i"
 * with no gap: a lost write, a write that landed twice in different places,
 * or a write from a second copy of the guest after a migration shows up.
 *
 * At start it scans the disk for the first block that is not "counter i" and
 * continues from there, so a reboot, a reset, a migration or a storage move
 * continues the sequence instead of starting over.
 *
 * Kernel command line (read from /proc/cmdline):
 *   vcvm.dev=/dev/vda       the disk
 *   vcvm.interval=100       milliseconds between writes
 *   vcvm.dirty=N            a child process rewrites N MiB of memory in a loop
 *   vcvm.dirty_rate=R       ... at most R MiB/s (0: as fast as it can)
 *
 * The ACPI power button (QMP system_powerdown) is watched on /dev/input/event*:
 * the writer finishes the write it is in, prints "writer: power button" and
 * exits 0; /init then powers the machine off.  SIGTERM does the same.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BLK	4096
#define MAX_EV	8

static volatile sig_atomic_t stop_req;

static void on_term(int sig)
{
	(void)sig;
	stop_req = 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Value of "key=" on the kernel command line, copied into out; 0 if found. */
static int cmdline_get(const char *key, char *out, size_t outsz)
{
	char buf[4096], *p, *tok, *save = NULL;
	size_t klen = strlen(key);
	ssize_t n;
	int fd = open("/proc/cmdline", O_RDONLY);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	for (p = buf; (tok = strtok_r(p, " \n", &save)); p = NULL) {
		if (strncmp(tok, key, klen) == 0 && tok[klen] == '=') {
			snprintf(out, outsz, "%s", tok + klen + 1);
			return 0;
		}
	}
	return -1;
}

static long cmdline_long(const char *key, long dflt)
{
	char v[64];

	if (cmdline_get(key, v, sizeof(v)) < 0)
		return dflt;
	return strtol(v, NULL, 10);
}

/* Child: rewrite mib MiB forever, one byte per 4 KiB page, at most rate MiB/s. */
static void dirty_loop(long mib, long rate)
{
	size_t len = (size_t)mib << 20, off;
	unsigned char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char v = 0;

	if (mem == MAP_FAILED) {
		printf("writer: cannot map %ld MiB to dirty\n", mib);
		_exit(1);
	}
	printf("writer: dirtying %ld MiB%s\n", mib, rate ? "" : " (unlimited rate)");
	fflush(stdout);
	for (;;) {
		uint64_t t0 = now_ms();

		v++;
		for (off = 0; off < len; off += 4096)
			mem[off] = v;
		if (rate > 0) {
			/* one pass is mib MiB: it should take mib/rate seconds */
			uint64_t want = (uint64_t)mib * 1000 / (uint64_t)rate, took = now_ms() - t0;

			if (took < want)
				usleep((useconds_t)(want - took) * 1000);
		}
	}
}

/* Open every /dev/input/eventN that exists (power button, keyboard). */
static int open_inputs(struct pollfd *pfd)
{
	char path[64];
	int i, n = 0;

	for (i = 0; i < 16 && n < MAX_EV; i++) {
		snprintf(path, sizeof(path), "/dev/input/event%d", i);
		int fd = open(path, O_RDONLY | O_NONBLOCK);

		if (fd < 0)
			continue;
		pfd[n].fd = fd;
		pfd[n].events = POLLIN;
		n++;
	}
	return n;
}

static int power_pressed(struct pollfd *pfd, int n)
{
	struct input_event ev;
	int i;

	for (i = 0; i < n; i++) {
		if (!(pfd[i].revents & POLLIN))
			continue;
		while (read(pfd[i].fd, &ev, sizeof(ev)) == (ssize_t)sizeof(ev))
			if (ev.type == EV_KEY && ev.code == KEY_POWER && ev.value == 1)
				return 1;
	}
	return 0;
}

/* "counter n" followed by a newline and zeros, in a 4 KiB aligned block. */
static void fill(char *blk, uint64_t n)
{
	memset(blk, 0, BLK);
	snprintf(blk, BLK, "counter %llu\n", (unsigned long long)n);
}

/* First block that is not "counter i": where to continue after a restart. */
static uint64_t resume_point(int fd, char *blk, uint64_t nblocks)
{
	char want[64];
	uint64_t n;

	for (n = 0; n < nblocks; n++) {
		if (pread(fd, blk, BLK, (off_t)(n * BLK)) != BLK)
			break;
		snprintf(want, sizeof(want), "counter %llu\n", (unsigned long long)n);
		if (strncmp(blk, want, strlen(want)) != 0)
			break;
	}
	return n;
}

int main(int argc, char **argv)
{
	char dev[256] = "/dev/vda";
	struct pollfd pfd[MAX_EV];
	long interval, dirty, rate;
	uint64_t n, nblocks, next;
	char *blk;
	off_t size;
	int fd, nev;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1)
		snprintf(dev, sizeof(dev), "%s", argv[1]);
	else
		cmdline_get("vcvm.dev", dev, sizeof(dev));
	interval = cmdline_long("vcvm.interval", 100);
	dirty = cmdline_long("vcvm.dirty", 0);
	rate = cmdline_long("vcvm.dirty_rate", 0);
	if (interval < 1)
		interval = 1;

	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);

	if (dirty > 0) {
		pid_t p = fork();

		if (p == 0)
			dirty_loop(dirty, rate);
		if (p < 0)
			printf("writer: fork: %s\n", strerror(errno));
	}

	fd = open(dev, O_RDWR | O_DIRECT | O_DSYNC);
	if (fd < 0) {
		printf("writer: open %s: %s\n", dev, strerror(errno));
		return 1;
	}
	size = lseek(fd, 0, SEEK_END);
	if (size < BLK) {
		printf("writer: %s is too small\n", dev);
		return 1;
	}
	nblocks = (uint64_t)size / BLK;
	if (posix_memalign((void **)&blk, BLK, BLK) != 0) {
		printf("writer: out of memory\n");
		return 1;
	}
	nev = open_inputs(pfd);
	n = resume_point(fd, blk, nblocks);
	printf("writer: start at %llu on %s (%llu blocks, every %ld ms, %d input devices)\n",
	       (unsigned long long)n, dev, (unsigned long long)nblocks, interval, nev);

	next = now_ms();
	while (!stop_req) {
		uint64_t t = now_ms();
		int wait = next > t ? (int)(next - t) : 0;

		if (nev > 0 && poll(pfd, (nfds_t)nev, wait) > 0) {
			if (power_pressed(pfd, nev)) {
				printf("writer: power button\n");
				break;
			}
			continue;
		}
		if (nev == 0 && wait > 0)
			usleep((useconds_t)wait * 1000);
		if (stop_req)
			break;
		if (n >= nblocks) {
			printf("writer: disk full at %llu\n", (unsigned long long)n);
			pause();
			continue;
		}
		fill(blk, n);
		if (pwrite(fd, blk, BLK, (off_t)(n * BLK)) != BLK) {
			printf("writer: write %llu: %s\n", (unsigned long long)n, strerror(errno));
			usleep(100000);
			continue;
		}
		printf("counter %llu\n", (unsigned long long)n);
		n++;
		next += (uint64_t)interval;
		if (next + (uint64_t)interval < now_ms())
			next = now_ms();	/* fell behind (stopped VM): do not burst */
	}
	printf("writer: stopped at %llu\n", (unsigned long long)n);
	close(fd);
	return 0;
}
