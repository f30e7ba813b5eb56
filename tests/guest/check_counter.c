/*
 * check_counter.c - verify a disk the test guest's writer wrote.
 *
 *   check_counter IMAGE [MIN_N]
 *
 * Block i (4 KiB at offset i * 4096) must read "counter i\n" for i = 0..n-1,
 * and every block after n must be empty (all zero): a block written out of
 * sequence after a gap means a write was lost or landed in the wrong place.
 * With MIN_N, at least MIN_N + 1 blocks (0..MIN_N) must be there: the last
 * number the guest printed on its serial log, whose write had returned, so a
 * missing one is a lost acknowledged write.
 *
 * Prints "ok: blocks 0..N-1" (or "ok: empty") and exits 0; otherwise names
 * the first bad block and exits 1.  Exit 2 on usage or I/O errors.
 * Holes are skipped with SEEK_DATA so a large sparse image is read quickly.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLK 4096

static int zero(const char *b, size_t from)
{
	size_t i;

	for (i = from; i < BLK; i++)
		if (b[i])
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	static char blk[BLK];
	char want[64];
	long long n = 0, min_n = -1, i;
	off_t size, pos;
	int fd;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: check_counter IMAGE [MIN_N]\n");
		return 2;
	}
	if (argc == 3)
		min_n = atoll(argv[2]);
	fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "check_counter: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	size = lseek(fd, 0, SEEK_END);

	/* the sequence */
	for (n = 0; (off_t)((n + 1) * BLK) <= size; n++) {
		if (pread(fd, blk, BLK, (off_t)(n * BLK)) != BLK) {
			fprintf(stderr, "check_counter: read block %lld: %s\n", n, strerror(errno));
			return 2;
		}
		snprintf(want, sizeof(want), "counter %lld\n", n);
		if (strncmp(blk, want, strlen(want)) != 0)
			break;
		if (!zero(blk, strlen(want))) {
			printf("FAIL: block %lld holds \"counter %lld\" followed by garbage\n", n, n);
			return 1;
		}
	}
	/* nothing after it: the first non-matching block and the rest are empty */
	pos = (off_t)(n * BLK);
	while (pos < size) {
		off_t d = lseek(fd, pos, SEEK_DATA);

		if (d < 0)
			break;		/* ENXIO: only holes from pos on */
		pos = d & ~(off_t)(BLK - 1);
		if (pread(fd, blk, BLK, pos) <= 0)
			break;
		if (!zero(blk, 0)) {
			i = pos / BLK;
			blk[60] = 0;
			for (char *c = blk; *c; c++)
				if (*c == '\n')
					*c = ' ';
			printf("FAIL: sequence ends at block %lld but block %lld is not empty "
			       "(\"%s\"): a gap or a write out of place\n", n, i, blk);
			return 1;
		}
		pos += BLK;
	}
	if (min_n >= 0 && n <= min_n) {
		printf("FAIL: blocks 0..%lld are there but the guest reported counter %lld: "
		       "acknowledged writes were lost\n", n - 1, min_n);
		return 1;
	}
	if (n == 0)
		printf("ok: empty\n");
	else
		printf("ok: blocks 0..%lld\n", n - 1);
	return 0;
}
