/*
 * rename2.c - renameat2(2) with a flag, for the POSIX tests (coreutils on
 * Debian 12 has no mv --exchange):  rename2 exchange|noreplace|plain OLD NEW
 * Exits 0 on success; otherwise prints the errno's message and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	unsigned flags;

	if (argc != 4) {
		fprintf(stderr, "usage: rename2 exchange|noreplace|plain OLD NEW\n");
		return 2;
	}
	if (!strcmp(argv[1], "exchange"))
		flags = RENAME_EXCHANGE;
	else if (!strcmp(argv[1], "noreplace"))
		flags = RENAME_NOREPLACE;
	else if (!strcmp(argv[1], "plain"))
		flags = 0;
	else {
		fprintf(stderr, "rename2: unknown flag %s\n", argv[1]);
		return 2;
	}
	if (syscall(SYS_renameat2, AT_FDCWD, argv[2], AT_FDCWD, argv[3], flags)) {
		fprintf(stderr, "rename2 %s %s %s: %s\n", argv[1], argv[2], argv[3],
			strerror(errno));
		return 1;
	}
	return 0;
}
