#!/usr/bin/env bash
# fs_posix.sh - POSIX behaviour through the FUSE mount, as programs expect of a
# local filesystem: create flags, rename, links, unlink while open, attributes,
# errno of every refusal, sparse files and SEEK_DATA/SEEK_HOLE, O_DIRECT,
# qemu-img, xattrs, persistence across remount, mount -t vcfs.
# VCFS_BUILD picks the binaries (tests/sanitizers.sh: build-asan/);
# VCFS_TEST_IO_TIMEOUT the volume's T in ms (200; slow sanitizer builds need more).

# Mount in a private mount namespace: a namespace that other tests create
# meanwhile would otherwise copy our FUSE mount, keep its connection alive
# after our unmount, and the daemon would never exit.
if [ -z "${VCFS_PRIVATE_MNTNS:-}" ]; then
	VCFS_PRIVATE_MNTNS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib/common.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/posix
mkdir -p "$T"
img=$T/ds.img
M=$T/mnt
mkdir -p "$M"
need_pkgs attr qemu-utils >/dev/null 2>&1

if [ ! -x "$B/vcfs-fuse" ] || [ ! -x "$B/mkfs.vcfs" ]; then
	t_skip "POSIX tests (vcfs-fuse or mkfs.vcfs not built)"; exit 0
fi
rm -f "$img"; truncate -s 1G "$img"
"$B/mkfs.vcfs" -q -H 8 -T "${VCFS_TEST_IO_TIMEOUT:-200}" "$img" || { t_fail "mkfs"; exit 0; }

mount_it() {
	"$B/vcfs-fuse" -o host=posix "$img" "$M" > "$T/fuse.log" 2>&1 &&
		wait_for 10 mountpoint -q "$M"
}
# The daemon releases its heartbeat slot after the kernel has let go of the
# mount, so wait for it to exit before anything looks at the image.  An exited
# daemon may stay a zombie until its reaper gets to it: that counts as gone.
gone() { case $(ps -o stat= -p "$1" 2>/dev/null) in ""|Z*) return 0;; esac; return 1; }
umount_it() {
	local pids p rc=0
	pids=$(pgrep -f -- "vcfs-fuse .*$M\$")
	fusermount3 -u "$M" || rc=1
	for p in $pids; do
		wait_for 20 gone "$p" || { rc=1; echo "vcfs-fuse $p still running; mount" \
			"namespaces holding $M: $(grep -l " $M " /proc/[0-9]*/mountinfo | tr '\n' ' ')"; }
	done
	return $rc
}
t_cleanup_push "umount_it"
if mount_it; then t_pass "mount (daemonised)"; else
	t_fail "mount (log $T/fuse.log)"; tail -5 "$T/fuse.log"; exit 0; fi

# run a case: name, shell snippet executed in $M
c() { t_run "$1" sh -ec "cd '$M'; $2"; }
# an errno case: name, expected message, command
e() { t_expect_fail "$1" "$2" sh -c "cd '$M'; $3"; }

c "create, write, read back" 'echo hello > f1; [ "$(cat f1)" = hello ]'
e "O_CREAT|O_EXCL on an existing file: EEXIST" "File exists" 'dd if=/dev/null of=f1 conv=excl status=none'
c "O_CREAT|O_EXCL on a new name creates it" 'dd if=/dev/null of=fx conv=excl status=none; [ -f fx ] && [ "$(cat f1)" = hello ]'
c "O_TRUNC empties a file" 'echo longer-content > f2; : > f2; [ ! -s f2 ]'
c "O_APPEND appends" 'echo a > f3; echo b >> f3; [ "$(cat f3)" = "$(printf "a\nb")" ]'
c "mkdir, nested, rmdir" 'mkdir -p d1/d2/d3; rmdir d1/d2/d3; [ ! -e d1/d2/d3 ]'
e "rmdir of a non-empty directory: ENOTEMPTY" "not empty" 'mkdir -p ne/x; rmdir ne'
e "opening a directory for writing: EISDIR" "Is a directory" 'echo x > d1'
e "a 256-byte name: ENAMETOOLONG" "too long" "touch $(printf 'n%.0s' $(seq 256))"
c "a 255-byte name works" "touch $(printf 'n%.0s' $(seq 255))"
e "symlink loop: ELOOP" "Too many levels" 'ln -s loop1 loop2; ln -s loop2 loop1; cat loop1'
e "unlink of a missing name: ENOENT" "No such file" 'rm nosuch'
e "rmdir of a file: ENOTDIR" "Not a directory" 'rmdir f1'
e "mkdir over an existing name: EEXIST" "File exists" 'mkdir f1'
e "hard link to a directory: EPERM" "not allowed|Operation not permitted" 'ln d1 dlink'
c "rename a file over an existing file" 'echo new > r1; echo old > r2; mv -f r1 r2; [ "$(cat r2)" = new ] && [ ! -e r1 ]'
c "rename a directory over an empty directory" 'mkdir -p rd1/x rd2; mv -T rd1 rd2; [ -d rd2/x ] && [ ! -e rd1 ]'
e "rename a directory over a non-empty one: ENOTEMPTY" "not empty|exists" 'mkdir -p re1 re2/y; mv -T re1 re2'
e "rename a directory into itself: EINVAL" "Invalid argument|cannot move" 'mkdir -p self/sub; mv self self/sub/'
c "rename across directories keeps the inode" 'echo z > mv1; i=$(stat -c %i mv1); mv mv1 d1/mv1; [ $(stat -c %i d1/mv1) = $i ]'
e "RENAME_NOREPLACE refuses an existing target: EEXIST" "File exists" "echo a > nr1; echo b > nr2; '$B/tests/rename2' noreplace nr1 nr2"
c "RENAME_NOREPLACE left both files" '[ "$(cat nr1)" = a ] && [ "$(cat nr2)" = b ]'
c "RENAME_NOREPLACE to a free name moves" "echo a > nf1; '$B/tests/rename2' noreplace nf1 nf2; [ ! -e nf1 ] && [ \"\$(cat nf2)\" = a ]"
c "RENAME_EXCHANGE swaps two files" "echo a > x1; echo bb > x2; i=\$(stat -c %i x1); '$B/tests/rename2' exchange x1 x2; [ \"\$(cat x1)\" = bb ] && [ \"\$(cat x2)\" = a ] && [ \$(stat -c %i x2) = \$i ]"
c "RENAME_EXCHANGE swaps a file and a directory across directories" "mkdir -p xd/sub; echo f > xf; '$B/tests/rename2' exchange xf xd/sub; [ -d xf ] && [ \"\$(cat xd/sub)\" = f ]"
e "RENAME_EXCHANGE with a missing target: ENOENT" "No such file" "echo a > x3; '$B/tests/rename2' exchange x3 x-none"
c "hard links share data and count links" 'echo L > h1; ln h1 h2; [ $(stat -c %h h1) = 2 ] && echo M >> h2 && grep -q M h1; rm h1; [ $(stat -c %h h2) = 1 ]'
c "directory link counts follow subdirectories" 'mkdir lc; mkdir lc/a lc/b; [ $(stat -c %h lc) = 4 ]; rmdir lc/a; [ $(stat -c %h lc) = 3 ]'
c "symlinks: short and 3000-byte targets" 't=$(printf "x%.0s" $(seq 3000)); ln -s f1 s1; ln -s "$t" s2; [ "$(readlink s1)" = f1 ] && [ "$(readlink s2)" = "$t" ] && [ "$(cat s1)" = hello ]'
c "chmod, chown, utimens" 'touch p1; chmod 0640 p1; chown 123:456 p1; touch -d "2001-02-03 04:05:06.123456789" p1; [ "$(stat -c "%a %u %g %y" p1)" = "640 123 456 2001-02-03 04:05:06.123456789 +0000" ]'
c "setgid directory: files take its group, subdirectories the bit" 'mkdir sg; chown 0:777 sg; chmod 2775 sg; touch sg/f; mkdir sg/d; [ $(stat -c %g sg/f) = 777 ] && [ $(stat -c %a sg/d | cut -c1) = 2 ]'
c "chown by root clears setuid" 'touch su; chmod 4755 su; chown 1:1 su; [ $(stat -c %a su) = 755 ]'
c "a write by another user clears setuid and setgid" 'touch sw; chmod 6777 sw; setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "echo x >> sw"; [ $(stat -c %a sw) = 777 ] && [ -s sw ]'
c "a write by root keeps setuid" 'touch sr; chmod 4755 sr; echo x >> sr; [ $(stat -c %a sr) = 4755 ]'
e "permissions are checked (default_permissions): EACCES" "Permission denied" 'touch pm; chmod 600 pm; setpriv --reuid=65534 --regid=65534 --clear-groups cat pm'
c "truncate up reads zeros, down cuts" 'printf abcdef > t1; truncate -s 100000 t1; [ $(stat -c %s t1) = 100000 ] && [ "$(tail -c 5 t1 | od -An -tx1 | tr -d " ")" = 0000000000 ]; truncate -s 3 t1; [ "$(cat t1)" = abc ]'
c "a file growing past 1 MiB keeps its data" 'head -c 700000 /dev/urandom > g1; cp g1 g2; head -c 3000000 /dev/urandom >> g2; head -c 700000 g2 | cmp - g1'
c "mkfifo and device nodes" 'mkfifo fifo; [ -p fifo ]; mknod cdev c 1 3; [ -c cdev ]'
c "unlink of an open file: data readable until close" 'echo keep > uo; exec 3<uo; rm uo; [ "$(cat <&3)" = keep ]; exec 3<&-'
# close(2) returns before the kernel's RELEASE reaches the daemon: poll df
c "space of an unlinked open file is freed at last close" 'free() { df -k . | awk "NR==2{print \$4}"; }; before=$(free); dd if=/dev/zero of=big bs=1M count=64 status=none; exec 4<big; rm big; mid=$(free); [ $mid -lt $((before - 60000)) ]; exec 4<&-; for i in $(seq 50); do [ $(free) -gt $((mid + 60000)) ] && exit 0; sleep 0.2; done; echo "still $(free) KiB free, $mid while open, $before before"; exit 1'
c "statfs through df" 'df -k . | awk "NR==2{exit !(\$2 > 900000)}"'
c "xattrs: set, get, list, remove" 'touch xa; setfattr -n user.k -v v1 xa; [ "$(getfattr --only-values -n user.k xa)" = v1 ]; getfattr -d xa | grep -q user.k; setfattr -x user.k xa; ! getfattr -n user.k xa 2>/dev/null; setfattr -n user.p -v pv xa'
# 1 KiB of packed attributes per inode (fs/ondisk.h VCFS_XATTR_MAX); more is ENOSPC like ext4
e "xattrs beyond the inode's 1 KiB: ENOSPC" "No space left" 'touch xd; setfattr -n user.big -v "$(printf "v%.0s" $(seq 2000))" xd'
c "xattrs: three names listed, a 600-byte value" 'touch xc; v=$(printf "v%.0s" $(seq 600)); setfattr -n user.a -v 1 xc; setfattr -n user.b -v 2 xc; setfattr -n user.c -v "$v" xc; [ $(getfattr -d xc | grep -c "^user\.") = 3 ]; [ "$(getfattr --only-values -n user.c xc)" = "$v" ]'
e "getxattr of a missing attribute: ENODATA" "No such attribute" 'touch xb; getfattr -n user.none xb'
c "sparse file: holes read as zeros, du small" 'truncate -s 64M sp; printf data | dd of=sp bs=1 seek=33554432 conv=notrunc status=none; [ $(du -k sp | cut -f1) -lt 4096 ]; [ "$(dd if=sp bs=1 skip=1000 count=4 status=none | od -An -tx1 | tr -d " ")" = 00000000 ]'
c "SEEK_DATA / SEEK_HOLE find the data" "'$B/tests/seekhole' sp 33554432"
c "fallocate: keep-size, punch hole frees space" 'fallocate -l 32M fa; [ $(du -k fa | cut -f1) -ge 32000 ]; fallocate -p -o 0 -l 16M fa; [ $(du -k fa | cut -f1) -lt 20000 ]; [ $(stat -c %s fa) = 33554432 ]'
c "O_DIRECT writes and reads of 1 MiB" 'dd if=/dev/urandom of=/tmp/vcfs-od.$$ bs=1M count=8 status=none; dd if=/tmp/vcfs-od.$$ of=od bs=1M oflag=direct status=none; dd if=od of=/tmp/vcfs-od2.$$ bs=1M iflag=direct status=none; cmp /tmp/vcfs-od.$$ /tmp/vcfs-od2.$$; rm -f /tmp/vcfs-od.$$ /tmp/vcfs-od2.$$'
# 4 jobs x 32 requests of 1 MiB: more in flight than vcfs-fuse has pooled
# I/O buffers (48, 16 of them the workers' own), so some requests run on
# buffers of their own; fio checks every block it wrote
c "1 MiB direct I/O, 128 requests in flight, every block verified" 'fio --name=pool --directory=. --filename_format="pool.\$jobnum" --rw=randwrite --bs=1M --size=24M --numjobs=4 --ioengine=libaio --iodepth=32 --direct=1 --verify=crc32c --verify_fatal=1 --do_verify=1 --output=/dev/null; rm -f pool.*'
c "qemu-img create and check a qcow2 image" 'qemu-img create -q -f qcow2 vm.qcow2 1G; qemu-img check -q vm.qcow2; qemu-img info vm.qcow2 | grep -q "virtual size: 1 GiB"'
c "qemu-img convert keeps holes (map reports them)" 'qemu-img create -q -f raw vm.raw 256M; qemu-io -c "write -P 0xab 128M 1M" vm.raw >/dev/null; qemu-img map --output=json vm.raw | grep -q "\"data\": false"'
c "1000 files in one directory, listed once each" 'mkdir many; for i in $(seq 1000); do : > many/f$i; done; [ $(ls many | wc -l) = 1000 ] && [ $(ls many | sort -u | wc -l) = 1000 ]'

# persistence and a clean unmount
sum=$(cd "$M" && cat f1 g2 | md5sum)
if umount_it; then t_pass "clean unmount (daemon exited)"; else t_fail "clean unmount"; fi
t_run "fsck is clean after the POSIX run" "$B/fsck.vcfs" -n "$img"
if mount_it; then
	t_run "everything is still there after remount" sh -c "cd '$M' && [ \"\$(cat f1 g2 | md5sum)\" = '$sum' ] && [ \$(ls many | wc -l) = 1000 ] && [ -p fifo ] && [ \"\$(readlink s1)\" = f1 ] && [ \$(stat -c %a sg/d | cut -c1) = 2 ] && [ \"\$(getfattr --only-values -n user.p xa)\" = pv ] && ! getfattr -n user.k xa 2>/dev/null"
	umount_it
else
	t_fail "remount (log $T/fuse.log)"
fi

# SIGTERM unmounts cleanly too
if mount_it; then
	pid=$(pgrep -f -- "vcfs-fuse .*$M\$")
	kill -TERM $pid
	t_run "SIGTERM: the daemon unmounts and exits" wait_for 20 sh -c "case \$(ps -o stat= -p $pid) in ''|Z*) ! mountpoint -q '$M';; *) false;; esac"
	t_run "fsck is clean after SIGTERM" "$B/fsck.vcfs" -n "$img"
else
	t_fail "mount for the SIGTERM case (log $T/fuse.log)"
fi

# mount(8) finds helpers only in /sbin: put mount.vcfs there through an
# overlay in a private mount namespace, leaving the machine's /sbin alone.
mkdir -p "$T/sbin"; cp "$VCFS_TOP/tools/mount.vcfs" "$B/vcfs-fuse" "$T/sbin/"
t_run "mount -t vcfs (through mount.vcfs, fstab options filtered) and umount" \
	unshare -m --propagation private sh -ec "
	mount -t overlay -o lowerdir='$T/sbin':/usr/sbin overlay /usr/sbin
	mount -t vcfs -o host=viamount,_netdev,defaults,noauto '$img' '$M'
	grep ' $M fuse.vcfs ' /proc/mounts
	grep -q 'allow_other' /proc/mounts
	[ \"\$(cat '$M/f1')\" = hello ]
	pid=\$(pgrep -f -- 'vcfs-fuse .*$M\$')
	umount '$M'
	for i in \$(seq 100); do case \$(ps -o stat= -p \$pid) in ''|Z*) exit 0;; esac; sleep 0.2; done
	echo 'daemon still running after umount'; exit 1"
t_run "mount.vcfs -o ro mounts read-only" sh -ec "
	'$T/sbin/mount.vcfs' '$img' '$M' -o ro
	trap 'fusermount3 -u \"$M\"' EXIT
	[ \"\$(cat '$M/f1')\" = hello ]
	! touch '$M/rofile' 2>/dev/null"
umount_it >/dev/null 2>&1
t_run "mount.vcfs -f (fake) mounts nothing" sh -ec "'$T/sbin/mount.vcfs' '$img' '$M' -f -o host=x; ! mountpoint -q '$M'"

t_expect_fail "mounting a missing image is refused clearly" "No such file" \
	"$B/vcfs-fuse" -f "$T/none.img" "$M"
head -c 4M /dev/urandom > "$T/junk.img"
t_expect_fail "mounting random data is refused clearly" "not a vcfs datastore" \
	"$B/vcfs-fuse" -f "$T/junk.img" "$M"
t_expect_fail "mount point missing" "mount point" "$B/vcfs-fuse" "$img" "$T/nodir"

# Direct writes to ONE file run concurrently (FOPEN_PARALLEL_DIRECT_WRITES in
# the open reply; without it the kernel takes the inode lock around each):
# every backend write is slowed to 100 ms by the fault layer and 16 O_DIRECT
# writers each write one block of a file already written.  One at a time they
# take at least 1.6 s; together about 0.1 s plus process start-up.
pimg=$T/par.img
rm -f "$pimg"; truncate -s 256M "$pimg"
"$B/mkfs.vcfs" -q -H 8 -T 1000 "$pimg"
if VCFS_FAULT="write:0:delay=100000" "$B/vcfs-fuse" -o host=par "$pimg" "$M" \
		> "$T/fuse-par.log" 2>&1 && wait_for 10 mountpoint -q "$M"; then
	head -c 64K /dev/urandom > "$T/par.ref"
	dd if="$T/par.ref" of="$M/par" bs=64K oflag=direct status=none
	t_run "16 direct writers to one file run concurrently (under 0.8 s with 100 ms per backend write)" \
		sh -ec "head -c 64K /dev/urandom > '$T/par.new'
		s=\$(date +%s%N)
		for i in \$(seq 0 15); do dd if='$T/par.new' of='$M/par' bs=4K skip=\$i seek=\$i count=1 \
			oflag=direct conv=notrunc status=none & done
		wait
		e=\$(( (\$(date +%s%N) - s) / 1000000 ))
		echo \"16 writes took \$e ms\"
		cmp '$T/par.new' '$M/par'
		[ \$e -lt 800 ]"
	t_run "16 direct writers filling holes of one thin file concurrently: every byte lands" \
		sh -ec "truncate -s 64M '$M/thin'
		for i in \$(seq 0 15); do dd if='$T/par.new' of='$M/thin' bs=4K skip=\$i \
			seek=\$(( i * 1024 + i )) count=1 oflag=direct conv=notrunc status=none & done
		wait
		for i in \$(seq 0 15); do
			dd if='$M/thin' bs=4K skip=\$(( i * 1024 + i )) count=1 status=none |
				cmp - '$T/par.new' -i 0:\$(( i * 4096 )) -n 4096
		done
		[ \$(stat -c %s '$M/thin') = 67108864 ]"
	umount_it >/dev/null 2>&1
	t_run "fsck is clean after the concurrent writers" "$B/fsck.vcfs" -n "$pimg"
else
	t_fail "mount with a slowed disk (log $T/fuse-par.log)"
fi

# The asynchronous data path's errors: the fault layer's "aio" rule fails the
# first direct write that goes asynchronously (an allocated block inside the
# size); the writer gets EIO, the old bytes stay, the next write lands, and a
# read going the same way returns the data.
if VCFS_FAULT="aio:2:EIO" "$B/vcfs-fuse" -o host=aio "$pimg" "$M" \
		> "$T/fuse-aio.log" 2>&1 && wait_for 10 mountpoint -q "$M"; then
	t_run "a failed asynchronous write gives EIO and keeps the old bytes; the next one lands" \
		sh -ec "head -c 8K /dev/urandom > '$T/aio.old'; head -c 4K /dev/urandom > '$T/aio.new'
		dd if='$T/aio.old' of='$M/aio' bs=8K oflag=direct status=none
		dd if='$M/aio' of=/dev/null bs=4K count=1 iflag=direct status=none
		! dd if='$T/aio.new' of='$M/aio' bs=4K seek=1 oflag=direct conv=notrunc status=none 2>'$T/aio.err'
		grep -q 'Input/output error' '$T/aio.err'
		cmp '$T/aio.old' '$M/aio'
		dd if='$T/aio.new' of='$M/aio' bs=4K seek=1 oflag=direct conv=notrunc status=none
		dd if='$M/aio' bs=4K skip=1 count=1 iflag=direct status=none | cmp - '$T/aio.new'"
	umount_it >/dev/null 2>&1
	t_run "fsck is clean after the failed asynchronous write" "$B/fsck.vcfs" -n "$pimg"
else
	t_fail "mount with a failing asynchronous path (log $T/fuse-aio.log)"
fi
rm -f "$img" "$pimg" "$T/junk.img" "$T/par.ref" "$T/par.new" "$T/aio.old" "$T/aio.new" "$T/aio.err"
