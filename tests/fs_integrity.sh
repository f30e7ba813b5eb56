#!/usr/bin/env bash
# fs_integrity.sh - data integrity through the FUSE mount: build/tests/fsx runs
# random writes (buffered and O_DIRECT), reads (writer's fd, a cached read-only
# fd, O_DIRECT), truncates up and down, punch hole, keep-size and plain
# fallocate, zero range and SEEK_DATA/SEEK_HOLE checks on a few files up to
# 8 MiB, against an in-memory shadow of every byte, with a remount in the
# middle; then fsck must be clean and the files must survive another remount.
#
# VCFS_FSX_SEED=N repeats a run (the seed is printed, and again on failure);
# VCFS_FSX_OPS=N changes the number of operations of the main run (100000),
# VCFS_FSX_OPS64 that of the 64K-block run (12000), VCFS_FSX_PAROPS that of
# each parallel fsx (4000): tests/sanitizers.sh runs a cut-down copy.
# VCFS_TEST_IO_TIMEOUT sets the volume's T in ms (500).

# Mount in a private mount namespace: a namespace that other tests create
# meanwhile would otherwise copy our FUSE mount, keep its connection alive
# after our unmount, and the daemon would never exit.
if [ -z "${VCFS_PRIVATE_MNTNS:-}" ]; then
	VCFS_PRIVATE_MNTNS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib/common.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/integrity
M=$T/mnt
mkdir -p "$T" "$M"
seed=${VCFS_FSX_SEED:-$(( (RANDOM << 15) | RANDOM ))}
ops=${VCFS_FSX_OPS:-100000}
ops64=${VCFS_FSX_OPS64:-12000}
paro=${VCFS_FSX_PAROPS:-4000}

if [ ! -x "$B/vcfs-fuse" ] || [ ! -x "$B/mkfs.vcfs" ] || [ ! -x "$B/tests/fsx" ]; then
	t_skip "integrity tests (vcfs-fuse, mkfs.vcfs or tests/fsx not built)"; exit 0
fi

# mount/unmount helpers shared with fsx's -R command (a script, so that fsx's
# system() can run it): the unmount waits for the daemon to exit, since it
# releases the heartbeat slot only after the kernel has let go of the mount.
cat > "$T/mnt.sh" <<EOF
#!/bin/sh
# mnt.sh mount|umount|remount IMAGE
M='$M' B='$B' T='$T'
img=\$2
do_mount() {
	"\$B/vcfs-fuse" -o host=integrity "\$img" "\$M" >> "\$T/fuse.log" 2>&1 || return 1
	i=0; until mountpoint -q "\$M"; do i=\$((i+1)); [ \$i -lt 100 ] || return 1; sleep 0.1; done
}
do_umount() {
	pids=\$(pgrep -f -- "vcfs-fuse .*\$M\\\$")
	fusermount3 -u "\$M" || return 1
	# an exited daemon may stay a zombie until its reaper gets to it
	for p in \$pids; do
		i=0; until case \$(ps -o stat= -p \$p) in ''|Z*) true;; *) false;; esac; do
			i=\$((i+1)); [ \$i -lt 200 ] || { echo "vcfs-fuse \$p did not exit;" \
				"mount namespaces holding \$M:" \$(grep -l " \$M " /proc/[0-9]*/mountinfo); return 1; }
			sleep 0.1
		done
	done
}
case \$1 in
mount) do_mount ;;
umount) do_umount ;;
remount) do_umount && do_mount ;;
*) exit 2 ;;
esac
EOF
t_cleanup_push "sh '$T/mnt.sh' umount x"

# run_fsx NAME MKFS-OPTS FSX-OPTS...: format, mount, run fsx (shadows saved
# to $T/good), unmount, fsck, remount, compare every file with its shadow.
run_fsx() {
	local name=$1 mkfs_opts=$2 img=$T/ds.img
	shift 2
	rm -rf "$img" "$T/good"; mkdir -p "$T/good"
	truncate -s 2G "$img"
	if ! "$B/mkfs.vcfs" -q -H 8 -T "${VCFS_TEST_IO_TIMEOUT:-500}" $mkfs_opts "$img"; then
		t_fail "$name: mkfs.vcfs $mkfs_opts"; return
	fi
	if ! sh "$T/mnt.sh" mount "$img"; then
		t_fail "$name: mount (log $T/fuse.log)"; tail -5 "$T/fuse.log"; return
	fi
	t_run "$name: fsx $* (seed $seed)" "$B/tests/fsx" -q -s "$seed" \
		-R "sh '$T/mnt.sh' remount '$img'" -S "$T/good" "$@" "$M"
	# t_run's log of that case: the timing and remount lines
	grep -h '^fsx: [0-9]* operations verified\|^fsx: remounted' \
		"$VCFS_TEST_TMP/log.$(echo "$name: fsx $* (seed $seed)" | tr -c 'A-Za-z0-9_.-' _)" \
		2>/dev/null | sed 's/^/          /'
	if ! sh "$T/mnt.sh" umount "$img"; then
		t_fail "$name: unmount"; return
	fi
	t_run "$name: fsck.vcfs is clean afterwards" "$B/fsck.vcfs" -n "$img"
	if ! sh "$T/mnt.sh" mount "$img"; then
		t_fail "$name: remount (log $T/fuse.log)"; return
	fi
	t_run "$name: after another remount every file equals its shadow" sh -ec "
		n=0
		for g in '$T'/good/*.good; do
			f='$M'/\$(basename \"\$g\" .good)
			cmp \"\$g\" \"\$f\"
			n=\$((n+1))
		done
		[ \$n -gt 0 ]"
	sh "$T/mnt.sh" umount "$img"
	rm -f "$img"
}

echo "  fsx seed $seed (VCFS_FSX_SEED=$seed repeats it)"
# 1 MiB blocks (the default): 100,000 operations, remounted half way
run_fsx "1M blocks" "" -n "$ops" -f 4 -m 8M -r $((ops / 2))
# 64 KiB blocks: a file spans 128 blocks (indirect maps, more boundaries),
# remounted every 4,000 operations
run_fsx "64K blocks" "-b 64K" -n "$ops64" -f 3 -m 8M -r $((ops64 / 3))

# Three fsx at once in their own directories: concurrent requests on the
# daemon's threads (allocation, journal, directory of each) on one host.
par() {
	local img=$T/ds.img i pids= rc=0
	rm -f "$img"; truncate -s 2G "$img"
	"$B/mkfs.vcfs" -q -H 8 -T "${VCFS_TEST_IO_TIMEOUT:-500}" -b 64K "$img" || { t_fail "parallel: mkfs.vcfs"; return; }
	sh "$T/mnt.sh" mount "$img" || { t_fail "parallel: mount (log $T/fuse.log)"; return; }
	for i in 1 2 3; do
		mkdir "$M/p$i"
		"$B/tests/fsx" -q -s $((seed + i)) -n "$paro" -f 2 -m 4M -V 1000 "$M/p$i" \
			> "$T/par$i.log" 2>&1 &
		pids="$pids $!"
	done
	for i in $pids; do wait $i || rc=1; done
	if [ $rc = 0 ]; then
		t_pass "parallel: 3 fsx of $paro operations at once (seeds $((seed + 1))..$((seed + 3)))"
	else
		t_fail "parallel: 3 fsx at once (logs $T/par*.log)"
		grep -h -A3 FAILED "$T"/par*.log | sed 's/^/          | /'
	fi
	sh "$T/mnt.sh" umount "$img" || { t_fail "parallel: unmount"; return; }
	t_run "parallel: fsck.vcfs is clean afterwards" "$B/fsck.vcfs" -n "$img"
	rm -f "$img"
}
par
# keep the daemon's log when something failed
grep -q "^fail" "$T_RESULTS" 2>/dev/null || rm -rf "$T"
