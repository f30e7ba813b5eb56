/*
 * seekhole.c - check SEEK_DATA/SEEK_HOLE on a sparse file whose only data
 * starts at DATAOFF:  seekhole FILE DATAOFF
 * SEEK_DATA from 0 must land at or before DATAOFF (block granularity) and
 * past 0; SEEK_HOLE from there past DATAOFF; SEEK_DATA past EOF is ENXIO.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct stat st;
	off_t want, d, h;
	int fd;

	if (argc != 3)
		return 2;
	want = (off_t)strtoll(argv[2], NULL, 0);
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &st))
		return perror(argv[1]), 1;
	d = lseek(fd, 0, SEEK_DATA);
	if (d < 0 || d > want || d == 0) {
		fprintf(stderr, "SEEK_DATA from 0 gave %lld (%s), data is at %lld\n",
			(long long)d, d < 0 ? "error" : "wrong", (long long)want);
		return 1;
	}
	h = lseek(fd, d, SEEK_HOLE);
	if (h <= want) {
		fprintf(stderr, "SEEK_HOLE from %lld gave %lld, data is at %lld\n",
			(long long)d, (long long)h, (long long)want);
		return 1;
	}
	if (lseek(fd, st.st_size + 4096, SEEK_DATA) != -1 || errno != ENXIO) {
		fprintf(stderr, "SEEK_DATA past EOF did not fail with ENXIO\n");
		return 1;
	}
	if (lseek(fd, 0, SEEK_HOLE) != 0) {
		fprintf(stderr, "SEEK_HOLE from 0 is not 0 on a file that starts with a hole\n");
		return 1;
	}
	printf("data at %lld, hole at %lld\n", (long long)d, (long long)h);
	return 0;
}
