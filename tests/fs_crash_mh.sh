#!/usr/bin/env bash
# fs_crash_mh.sh - crash points across hosts (build/tests/crashmh, from
# tests/disk/crashmh.c): three hosts mounted in one process on one in-memory
# datastore, each through its own crash-recording handle, run creates, writes
# with fsync, renames and unlinks in a shared directory and in their own, and
# hand a file's lock over to each other.  Crash images combine a prefix of
# every host's write stream (every prefix of the recorded global order, every
# prefix of each host with the others as early as the lock records' CAS order
# allows, and random interleavings closed under that order) with keep, drop,
# tear or random fates for in-flight writes; a fresh host recovers the dead
# hosts as a survivor would, every acknowledged fsync of every host must be
# there byte for byte, and fsck -n must be clean.
#
# VCFS_CRASH_SEED=N repeats a run (three workloads: seeds N, N+1, N+2);
# VCFS_CRASH_MH_RANDOM=N random interleavings per workload (default 1000).
# Everything lives in memory: nothing to clean up but the logs.
. "$(dirname "$0")/lib/common.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/crashmh
mkdir -p "$T"

seed=${VCFS_CRASH_SEED:-$(( $(date +%s) % 100000 ))}
nrand=${VCFS_CRASH_MH_RANDOM:-1000}
echo "  seed $seed (VCFS_CRASH_SEED=$seed repeats this run)"

if [ ! -x "$B/tests/crashmh" ]; then
	t_fail "fs_crash_mh: $B/tests/crashmh is not built"
	exit 1
fi
start=$SECONDS
for s in $seed $((seed + 1)) $((seed + 2)); do
	log=$T/seed-$s.log
	"$B/tests/crashmh" -s "$s" -S 60 -R "$nrand" > "$log" 2>&1
	rc=$?
	sum=$(grep "^crashmh: seed $s: " "$log" | tail -n 1)
	points=$(echo "$sum" | sed -nE 's/.*crash points ([0-9]+).*/\1/p')
	if [ $rc -eq 0 ] && [ -n "$points" ]; then
		t_pass "fs_crash_mh seed $s: ${sum#crashmh: seed $s: }"
	else
		t_fail "fs_crash_mh seed $s: exit $rc (repeat: $B/tests/crashmh -s $s -S 60 -R $nrand; log $log)"
		grep -E '^(FAIL|  )' "$log" | head -n 40 | sed 's/^/          | /'
		[ -n "$sum" ] && echo "          | $sum"
		[ -z "$sum" ] && tail -n 10 "$log" | sed 's/^/          | /'
	fi
done
echo "  fs_crash_mh: $((SECONDS - start)) s"
exit 0
