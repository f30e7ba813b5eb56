#!/usr/bin/env bash
# fs_crash.sh - crash-point enumeration over the filesystem (build/tests/crashfs,
# from tests/disk/crashfs.c): for each workload, record every write through the
# crash layer, then crash after EVERY write with the keep, drop and tear
# policies and a few random seeds, recover with fsck -y, and demand a clean
# fsck -n, a new host able to mount, write and unmount, and every fsync'd byte
# (and nothing but old or new bytes) in every file.
#
# VCFS_CRASH_SEED=N repeats a run (workload contents, offsets, random crash
# seeds); VCFS_CRASH_RANDOM=N sets the random seeds per write index (default 4).
. "$(dirname "$0")/lib/common.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/crash
mkdir -p "$T"

seed=${VCFS_CRASH_SEED:-$(( $(date +%s) % 100000 ))}
nrand=${VCFS_CRASH_RANDOM:-4}
echo "  seed $seed (VCFS_CRASH_SEED=$seed repeats this run)"

if [ ! -x "$B/tests/crashfs" ]; then
	t_fail "fs_crash: $B/tests/crashfs is not built"
	exit 1
fi
start=$SECONDS
for w in create write rename truncate falloc mix grow orphan; do
	log=$T/$w.log
	"$B/tests/crashfs" -w "$w" -s "$seed" -r "$nrand" -m > "$log" 2>&1
	rc=$?
	sum=$(grep "^crashfs: $w:" "$log" | tail -n 1)
	points=$(echo "$sum" | sed -nE 's/.*crash points ([0-9]+).*/\1/p')
	images=$(echo "$sum" | sed -nE 's/.* ([0-9]+) distinct images.*/\1/p')
	writes=$(echo "$sum" | sed -nE "s/^crashfs: $w: ([0-9]+) writes.*/\1/p")
	secs=$(echo "$sum" | sed -nE 's/.*; ([0-9.]+) s \(replay.*/\1/p')
	if [ $rc -eq 0 ] && [ -n "$points" ]; then
		t_pass "fs_crash $w: ${points:-0} crash points over $writes writes ($images distinct images recovered and checked) in ${secs}s"
	else
		t_fail "fs_crash $w: exit $rc, seed $seed (repeat: $B/tests/crashfs -w $w -s $seed -r $nrand -m; log $log)"
		grep -E '^(FAIL|  )' "$log" | head -n 40 | sed 's/^/          | /'
		[ -n "$sum" ] && echo "          | $sum"
		[ -z "$sum" ] && tail -n 10 "$log" | sed 's/^/          | /'
	fi
done
echo "  fs_crash: $((SECONDS - start)) s"
exit 0
