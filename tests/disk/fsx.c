/*
 * fsx.c - file system exerciser for a mounted vcfs (in the tradition of the
 * fsx that BSD, XFS and Linux use): random writes, reads, truncates and
 * fallocate calls on a few files, each with an in-memory shadow copy.  Every
 * read is compared byte for byte with the shadow, so is every whole file at
 * the end and around remounts, and SEEK_DATA/SEEK_HOLE answers are checked
 * against it (a hole may never hide non-zero bytes).
 *
 *   fsx [-n OPS] [-s SEED] [-f FILES] [-m MAXSIZE] [-l MAXLEN]
 *       [-R CMD -r EVERY] [-S SAVEDIR] [-V EVERY] [-q] DIR
 *
 * Each file is reached through three descriptors: O_RDWR (the daemon gives
 * writers direct I/O), O_RDONLY (page cache: must see every write made through
 * the others) and O_RDWR|O_DIRECT (4 KiB-aligned requests only).
 *
 * Every change is read back at once (one byte either side included) through
 * the writer's or the cached descriptor, and all files are verified whole
 * every -V operations (5000; 0 = never) besides the end.
 *
 * -R CMD is run through sh every EVERY operations with all files closed (the
 * test passes an unmount + mount); the files are verified whole afterwards.
 * -S writes each file's shadow to SAVEDIR/NAME.good at the end, so that the
 * test can compare the files again after a later remount.
 *
 * On any mismatch or unexpected error fsx prints the seed, the operation
 * number, the first differing byte and the last operations, and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ALIGN 4096u
#define HISTORY 32	/* operations printed on failure, besides those on the bad range */

enum op {
	OP_WRITE, OP_DWRITE, OP_READ, OP_CREAD, OP_DREAD, OP_TRUNC, OP_PUNCH, OP_KEEP,
	OP_ALLOC, OP_ZERO, OP_SEEK, OP_FSYNC, OP_REOPEN, OP_NR
};
static const char *const op_name[OP_NR] = {
	"write", "write O_DIRECT", "read", "read (cached fd)", "read O_DIRECT",
	"truncate", "punch hole", "fallocate keep-size", "fallocate", "zero range",
	"seek data/hole", "fsync", "close+reopen"
};
/* weights out of 100 */
static const int op_weight[OP_NR] = {
	22, 6, 14, 10, 4, 8, 8, 6, 4, 4, 6, 2, 6
};

struct file {
	char path[PATH_MAX];
	const char *name;
	int rw, ro, dio;	/* descriptors */
	uint8_t *good;		/* shadow, maxsize bytes */
	uint64_t size;
};

struct hist {
	uint64_t n;
	int op, file;
	uint64_t off, len, size_before, size_after;
};

static uint64_t g_seed, g_rng, g_nops = 100000, g_maxsize = 8u << 20, g_maxlen = 1280u << 10;
static uint64_t g_opno;
static uint64_t g_verify_every = 5000;	/* whole-file verification period */
static int g_nfiles = 4, g_quiet;
static struct file *g_files;
static uint8_t *g_buf;		/* I/O buffer, ALIGN-aligned, g_maxlen + ALIGN bytes */
static struct hist *g_hist;	/* every operation, g_nops + 1 entries */
static int g_bad_file = -1;	/* on a mismatch: what to search the history for */
static uint64_t g_bad_off, g_bad_end;
static uint64_t g_count[OP_NR];
static double g_time[OP_NR];	/* seconds spent per operation type */

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t rnd(void)
{
	/* xorshift64* */
	g_rng ^= g_rng >> 12;
	g_rng ^= g_rng << 25;
	g_rng ^= g_rng >> 27;
	return g_rng * 0x2545F4914F6CDD1DULL;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void hist_print(const struct hist *h)
{
	fprintf(stderr, "  #%-7" PRIu64 " %-20s %s 0x%" PRIx64 " 0x%" PRIx64 " -> 0x%" PRIx64 "\n",
		h->n, op_name[h->op], g_files[h->file].name, h->off, h->len, h->size_after);
}

/*
 * The last operations, and before them every earlier operation on the bad
 * file that changed its size or touched the bad range.
 */
static void history_dump(void)
{
	uint64_t first = g_opno >= HISTORY ? g_opno - HISTORY + 1 : 1;

	if (!g_hist)
		return;
	if (g_bad_file >= 0) {
		fprintf(stderr, "fsx: earlier operations on %s touching 0x%" PRIx64 "..0x%" PRIx64
			" or its size:\n", g_files[g_bad_file].name, g_bad_off, g_bad_end);
		for (uint64_t i = 1; i < first; i++) {
			const struct hist *h = &g_hist[i];
			int sized = h->op == OP_TRUNC || h->op == OP_ALLOC || h->op == OP_ZERO ||
				    h->op == OP_WRITE || h->op == OP_DWRITE;

			if (h->file != g_bad_file || h->op == OP_READ || h->op == OP_CREAD ||
			    h->op == OP_DREAD || h->op == OP_SEEK)
				continue;
			if (h->op == OP_TRUNC ? h->off < g_bad_end
					      : h->off < g_bad_end && h->off + h->len > g_bad_off)
				hist_print(h);
			else if (sized && h->size_after != h->size_before)
				hist_print(h);
		}
	}
	fprintf(stderr, "fsx: last operations (op file offset length -> size):\n");
	for (uint64_t i = first; i <= g_opno && i <= g_nops; i++)
		if (g_hist[i].op >= 0)
			hist_print(&g_hist[i]);
}

__attribute__((format(printf, 1, 2), noreturn))
static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fsx: FAILED at operation %" PRIu64 " (seed %" PRIu64 "): ", g_opno,
		g_seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	history_dump();
	fprintf(stderr, "fsx: rerun with -s %" PRIu64 " to repeat\n", g_seed);
	exit(1);
}

/* History: an operation is recorded before it runs, completed after. */
static void record_start(int op, int fi)
{
	struct hist *h = &g_hist[g_opno];

	h->n = g_opno;
	h->op = op;
	h->file = fi;
	h->size_before = h->size_after = g_files[fi].size;
}

static void record_end(uint64_t off, uint64_t len)
{
	struct hist *h = &g_hist[g_opno];

	h->off = off;
	h->len = len;
	h->size_after = g_files[h->file].size;
}

/* Compare len bytes read at off with the shadow; fail naming the first bad byte. */
static void compare(struct file *f, const uint8_t *got, uint64_t off, uint64_t len,
		    const char *how)
{
	const uint8_t *want = f->good + off;

	if (!memcmp(got, want, len))
		return;
	for (uint64_t i = 0; i < len; i++) {
		if (got[i] != want[i]) {
			uint64_t j = i;

			while (j < len && got[j] != want[j])
				j++;
			g_bad_file = (int)(f - g_files);
			g_bad_off = off + i;
			g_bad_end = off + j;
			fail("%s: %s: %" PRIu64 " bytes at 0x%" PRIx64 "+0x%" PRIx64
			     " = 0x%" PRIx64 " differ from the shadow (first: read 0x%02x, "
			     "expected 0x%02x; %" PRIu64 " bytes in that run; file size 0x%"
			     PRIx64 ")", f->name, how, len, off, i, off + i, got[i], want[i],
			     j - i, f->size);
		}
	}
}

static void check_size(struct file *f, int fd, const char *how)
{
	struct stat st;

	if (fstat(fd, &st))
		fail("%s: fstat: %s", f->name, strerror(errno));
	if ((uint64_t)st.st_size != f->size)
		fail("%s: %s: size %lld, expected 0x%" PRIx64 " (%" PRIu64 ")", f->name, how,
		     (long long)st.st_size, f->size, f->size);
}

static void open_file(struct file *f, int create)
{
	int fl = create ? O_CREAT | O_TRUNC : 0;

	f->rw = open(f->path, O_RDWR | fl, 0644);
	if (f->rw < 0)
		fail("open %s O_RDWR: %s", f->path, strerror(errno));
	f->ro = open(f->path, O_RDONLY);
	if (f->ro < 0)
		fail("open %s O_RDONLY: %s", f->path, strerror(errno));
	f->dio = open(f->path, O_RDWR | O_DIRECT);
	if (f->dio < 0)
		fail("open %s O_RDWR|O_DIRECT: %s", f->path, strerror(errno));
}

static void close_file(struct file *f)
{
	if (close(f->rw) || close(f->ro) || close(f->dio))
		fail("close %s: %s", f->path, strerror(errno));
	f->rw = f->ro = f->dio = -1;
}

static void fill(uint8_t *p, uint64_t len)
{
	uint64_t x = (g_opno + 1) * 0x9E3779B97F4A7C15ULL;

	for (uint64_t i = 0; i < len; i++) {
		if (!(i & 7)) {
			x ^= x >> 33;
			x *= 0xff51afd7ed558ccdULL;
			x ^= x >> 29;
			x += i;
		}
		p[i] = (uint8_t)(x >> ((i & 7) * 8));
		if (!p[i])
			p[i] = 0x5a;	/* no zeros: a lost write never looks like a hole */
	}
}

/* Read [off, off+len) through fd and compare with the shadow (short at EOF). */
static void read_check(struct file *f, int fd, uint64_t off, uint64_t len, const char *how)
{
	uint64_t want = off >= f->size ? 0 : (off + len > f->size ? f->size - off : len);
	uint64_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, g_buf + done, len - done, (off_t)(off + done));

		if (n < 0)
			fail("%s: %s of 0x%" PRIx64 " bytes at 0x%" PRIx64 ": %s", f->name, how,
			     len, off, strerror(errno));
		if (n == 0)
			break;
		done += (uint64_t)n;
	}
	if (done != want)
		fail("%s: %s of 0x%" PRIx64 " bytes at 0x%" PRIx64 " returned 0x%" PRIx64
		     ", expected 0x%" PRIx64 " (size 0x%" PRIx64 ")", f->name, how, len, off,
		     done, want, f->size);
	compare(f, g_buf, off, done, how);
}

static void set_size(struct file *f, uint64_t size)
{
	if (size > f->size)
		memset(f->good + f->size, 0, size - f->size);
	f->size = size;
}

static void write_do(struct file *f, int fd, uint64_t off, uint64_t len, const char *how)
{
	uint64_t done = 0;

	fill(g_buf, len);
	while (done < len) {
		ssize_t n = pwrite(fd, g_buf + done, len - done, (off_t)(off + done));

		if (n <= 0)
			fail("%s: %s of 0x%" PRIx64 " bytes at 0x%" PRIx64 ": %s", f->name, how,
			     len, off, n ? strerror(errno) : "wrote nothing");
		done += (uint64_t)n;
	}
	if (off > f->size)
		set_size(f, off);	/* the gap reads as zeros */
	memcpy(f->good + off, g_buf, len);
	if (off + len > f->size)
		f->size = off + len;
}

static void falloc_do(struct file *f, int mode, uint64_t off, uint64_t len, const char *how)
{
	if (fallocate(f->rw, mode, (off_t)off, (off_t)len))
		fail("%s: %s 0x%" PRIx64 "+0x%" PRIx64 " (mode 0x%x): %s", f->name, how, off,
		     len, mode, strerror(errno));
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		uint64_t end = off + len;

		if (mode & FALLOC_FL_KEEP_SIZE && end > f->size)
			end = f->size;
		if (end > off) {
			if (end > f->size)
				set_size(f, end);
			memset(f->good + off, 0, end - off);
		}
	}
	if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > f->size)
		set_size(f, off + len);
}

static int all_zero(const uint8_t *p, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

/*
 * SEEK_DATA may report zeros as data, but never skip non-zero bytes; a hole
 * found by SEEK_HOLE must read as zeros up to the next data.
 */
static void seek_check(struct file *f, uint64_t off)
{
	off_t d = lseek(f->rw, (off_t)off, SEEK_DATA), h, d2;

	if (d < 0) {
		if (errno != ENXIO)
			fail("%s: SEEK_DATA from 0x%" PRIx64 ": %s", f->name, off, strerror(errno));
		if (off < f->size && !all_zero(f->good + off, f->size - off))
			fail("%s: SEEK_DATA from 0x%" PRIx64 " says ENXIO, but there is data "
			     "before the end 0x%" PRIx64, f->name, off, f->size);
		return;
	}
	if ((uint64_t)d < off || (uint64_t)d > f->size)
		fail("%s: SEEK_DATA from 0x%" PRIx64 " gave 0x%llx (size 0x%" PRIx64 ")",
		     f->name, off, (long long)d, f->size);
	if (!all_zero(f->good + off, (uint64_t)d - off))
		fail("%s: SEEK_DATA from 0x%" PRIx64 " gave 0x%llx, skipping non-zero bytes",
		     f->name, off, (long long)d);
	h = lseek(f->rw, d, SEEK_HOLE);
	if (h < d || (uint64_t)h > f->size)
		fail("%s: SEEK_HOLE from 0x%llx gave 0x%llx (%s; size 0x%" PRIx64 ")", f->name,
		     (long long)d, (long long)h, h < 0 ? strerror(errno) : "out of range",
		     f->size);
	if ((uint64_t)h == f->size)
		return;
	d2 = lseek(f->rw, h, SEEK_DATA);
	if (d2 < 0 && errno != ENXIO)
		fail("%s: SEEK_DATA from 0x%llx: %s", f->name, (long long)h, strerror(errno));
	if (d2 < 0)
		d2 = (off_t)f->size;
	if (d2 < h || !all_zero(f->good + h, (uint64_t)(d2 - h)))
		fail("%s: the hole 0x%llx..0x%llx reported by SEEK_HOLE/SEEK_DATA holds "
		     "non-zero bytes", f->name, (long long)h, (long long)d2);
}

/*
 * Read back what an operation changed, one byte either side, through the
 * writer's descriptor or (half the time) the cached read-only one, so that a
 * lost or misplaced change is caught before later operations cover it up.
 */
static void check_range(struct file *f, uint64_t off, uint64_t len, const char *how)
{
	uint64_t start = off ? off - 1 : 0, end = off + len + 1;

	if (end > g_maxsize)
		end = g_maxsize;
	while (start < end) {
		uint64_t n = end - start < g_maxlen ? end - start : g_maxlen;

		read_check(f, rnd_below(2) ? f->ro : f->rw, start, n, how);
		start += n;
	}
}

static void verify_all(const char *when)
{
	for (int i = 0; i < g_nfiles; i++) {
		struct file *f = &g_files[i];

		check_size(f, f->rw, when);
		for (uint64_t off = 0; off < f->size; off += g_maxlen) {
			uint64_t len = f->size - off < g_maxlen ? f->size - off : g_maxlen;

			read_check(f, f->ro, off, len, when);
		}
	}
}

/* An offset and a length inside the file limit; small, medium or big. */
static void pick_range(uint64_t *off, uint64_t *len, int aligned)
{
	uint64_t r = rnd_below(100), max;

	max = r < 45 ? 4096 : r < 90 ? 128u << 10 : g_maxlen;
	*len = 1 + rnd_below(max);
	*off = rnd_below(g_maxsize);
	if (aligned) {
		*off &= ~(uint64_t)(ALIGN - 1);
		*len = (*len + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
	}
	if (*off + *len > g_maxsize) {
		*len = g_maxsize - *off;
		if (!*len) {
			*off -= ALIGN;
			*len = ALIGN;
		}
	}
}

/* Most reads land inside the file; some straddle or pass the end. */
static void pick_read(struct file *f, uint64_t *off, uint64_t *len, int aligned)
{
	pick_range(off, len, aligned);
	if (f->size && rnd_below(4)) {
		*off = rnd_below(f->size);
		if (aligned)
			*off &= ~(uint64_t)(ALIGN - 1);
	}
}

static int pick_op(void)
{
	int r = (int)rnd_below(100), op;

	for (op = 0; op < OP_NR - 1; op++) {
		if (r < op_weight[op])
			break;
		r -= op_weight[op];
	}
	return op;
}

static void one_op(void)
{
	int fi = (int)rnd_below((uint64_t)g_nfiles), op = pick_op();
	struct file *f = &g_files[fi];
	uint64_t off = 0, len = 0, old;
	double t0 = now();

	record_start(op, fi);
	switch (op) {
	case OP_WRITE:
		pick_range(&off, &len, 0);
		write_do(f, f->rw, off, len, op_name[op]);
		check_range(f, off, len, "read back after write");
		break;
	case OP_DWRITE:
		pick_range(&off, &len, 1);
		write_do(f, f->dio, off, len, op_name[op]);
		check_range(f, off, len, "read back after O_DIRECT write");
		break;
	case OP_READ:
		pick_read(f, &off, &len, 0);
		read_check(f, f->rw, off, len, op_name[op]);
		check_size(f, f->rw, op_name[op]);
		break;
	case OP_CREAD:
		pick_read(f, &off, &len, 0);
		read_check(f, f->ro, off, len, op_name[op]);
		break;
	case OP_DREAD:
		pick_read(f, &off, &len, 1);
		read_check(f, f->dio, off, len, op_name[op]);
		break;
	case OP_TRUNC:
		/* half the time within the current size (down), else anywhere */
		off = rnd_below(2) && f->size ? rnd_below(f->size) : rnd_below(g_maxsize + 1);
		if (rnd_below(4) == 0)
			off &= ~(uint64_t)(ALIGN - 1);
		old = f->size;
		if (ftruncate(f->rw, (off_t)off))
			fail("%s: ftruncate to 0x%" PRIx64 ": %s", f->name, off, strerror(errno));
		set_size(f, off);
		check_size(f, f->ro, "size after truncate");
		if (old > off)
			check_range(f, off, old > off + ALIGN ? ALIGN : old - off,
				    "read at the new end after truncate");
		else
			check_range(f, old, off - old, "read back the zeros after truncate up");
		break;
	case OP_PUNCH:
		pick_range(&off, &len, rnd_below(2));
		if (f->size && rnd_below(4))
			off = rnd_below(f->size);
		if (off + len > g_maxsize)
			len = g_maxsize - off;
		if (!len)
			len = 1;
		falloc_do(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len, op_name[op]);
		check_range(f, off, len, "read back after punch hole");
		break;
	case OP_KEEP:
		pick_range(&off, &len, 0);
		falloc_do(f, FALLOC_FL_KEEP_SIZE, off, len, op_name[op]);
		check_range(f, off, len, "read back after fallocate keep-size");
		break;
	case OP_ALLOC:
		pick_range(&off, &len, 0);
		falloc_do(f, 0, off, len, op_name[op]);
		check_range(f, off, len, "read back after fallocate");
		break;
	case OP_ZERO:
		pick_range(&off, &len, rnd_below(2));
		if (f->size && rnd_below(2))
			off = rnd_below(f->size);
		if (off + len > g_maxsize)
			len = g_maxsize - off;
		if (!len)
			len = 1;
		falloc_do(f, FALLOC_FL_ZERO_RANGE, off, len, op_name[op]);
		check_range(f, off, len, "read back after zero range");
		break;
	case OP_SEEK:
		off = f->size ? rnd_below(f->size) : 0;
		seek_check(f, off);
		break;
	case OP_FSYNC:
		if ((rnd_below(2) ? fdatasync(f->rw) : fsync(f->rw)))
			fail("%s: fsync: %s", f->name, strerror(errno));
		break;
	case OP_REOPEN:
		close_file(f);
		open_file(f, 0);
		check_size(f, f->ro, "size after reopen");
		break;
	}
	g_count[op]++;
	g_time[op] += now() - t0;
	record_end(off, len);
}

static void save_shadows(const char *dir)
{
	char p[PATH_MAX];

	for (int i = 0; i < g_nfiles; i++) {
		struct file *f = &g_files[i];
		FILE *out;

		snprintf(p, sizeof(p), "%s/%s.good", dir, f->name);
		out = fopen(p, "w");
		if (!out || (f->size && fwrite(f->good, f->size, 1, out) != 1) || fclose(out))
			fail("saving the shadow %s: %s", p, strerror(errno));
	}
}

/* A number with an optional K, M or G suffix (powers of 1024). */
static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end || end == s) {
		fprintf(stderr, "fsx: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: fsx [-n OPS] [-s SEED] [-f FILES] [-m MAXSIZE] [-l MAXLEN]\n"
		"           [-R CMD -r EVERY] [-S SAVEDIR] [-V EVERY] [-q] DIR\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *remount = NULL, *savedir = NULL, *dir;
	uint64_t every = 0;
	struct timespec t0, t1;
	void *buf;
	int c;

	g_seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
	while ((c = getopt(argc, argv, "n:s:f:m:l:R:r:S:V:q")) != -1) {
		switch (c) {
		case 'n': g_nops = strtoull(optarg, NULL, 0); break;
		case 's': g_seed = strtoull(optarg, NULL, 0); break;
		case 'f': g_nfiles = atoi(optarg); break;
		case 'm': g_maxsize = parse_size(optarg); break;
		case 'l': g_maxlen = parse_size(optarg); break;
		case 'R': remount = optarg; break;
		case 'r': every = strtoull(optarg, NULL, 0); break;
		case 'S': savedir = optarg; break;
		case 'V': g_verify_every = strtoull(optarg, NULL, 0); break;
		case 'q': g_quiet = 1; break;
		default: usage();
		}
	}
	if (optind != argc - 1 || g_nfiles < 1 || g_maxsize < 2 * ALIGN || g_maxlen < ALIGN ||
	    (remount && !every))
		usage();
	dir = argv[optind];
	g_maxsize &= ~(uint64_t)(ALIGN - 1);
	g_maxlen &= ~(uint64_t)(ALIGN - 1);
	g_rng = g_seed ? g_seed : 1;
	printf("fsx: seed %" PRIu64 ", %" PRIu64 " operations on %d files of up to %" PRIu64
	       " bytes in %s\n", g_seed, g_nops, g_nfiles, g_maxsize, dir);
	fflush(stdout);

	if (posix_memalign(&buf, ALIGN, g_maxlen + ALIGN))
		fail("out of memory");
	g_buf = buf;
	g_files = calloc((size_t)g_nfiles, sizeof(*g_files));
	if (!g_files)
		fail("out of memory");
	for (int i = 0; i < g_nfiles; i++) {
		struct file *f = &g_files[i];

		snprintf(f->path, sizeof(f->path), "%s/fsx.%d", dir, i);
		f->name = strrchr(f->path, '/') + 1;
		f->good = calloc(1, g_maxsize);
		if (!f->good)
			fail("out of memory");
		open_file(f, 1);
	}
	g_hist = calloc(g_nops + 1, sizeof(*g_hist));
	if (!g_hist)
		fail("out of memory");
	for (uint64_t i = 0; i <= g_nops; i++)
		g_hist[i].op = -1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (g_opno = 1; g_opno <= g_nops; g_opno++) {
		one_op();
		if (!g_quiet && g_opno % 10000 == 0) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			printf("fsx: %" PRIu64 " operations, %.0f s\n", g_opno,
			       (double)(t1.tv_sec - t0.tv_sec) +
			       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
			fflush(stdout);
		}
		if (g_verify_every && g_opno % g_verify_every == 0)
			verify_all("periodic verify");
		if (remount && g_opno % every == 0 && g_opno < g_nops) {
			for (int i = 0; i < g_nfiles; i++)
				close_file(&g_files[i]);
			fflush(stdout);
			c = system(remount);
			if (c != 0)
				fail("the remount command '%s' failed (status %d)", remount, c);
			for (int i = 0; i < g_nfiles; i++)
				open_file(&g_files[i], 0);
			verify_all("verify after remount");
			printf("fsx: remounted after operation %" PRIu64 ", all files verified\n",
			       g_opno);
		}
	}
	g_opno--;
	verify_all("final verify");
	for (int i = 0; i < g_nfiles; i++)
		close_file(&g_files[i]);
	if (savedir)
		save_shadows(savedir);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("fsx: %" PRIu64 " operations verified in %.1f s (seed %" PRIu64 "):", g_nops,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, g_seed);
	for (int op = 0; op < OP_NR; op++)
		printf(" %s %" PRIu64 " (%.1f s)%s", op_name[op], g_count[op], g_time[op],
		       op < OP_NR - 1 ? "," : "\n");
	for (int i = 0; i < g_nfiles; i++)
		free(g_files[i].good);
	free(g_files);
	free(buf);
	return 0;
}
