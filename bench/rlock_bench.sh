#!/usr/bin/env bash
# bench/rlock_bench.sh - byte-range lock latency through FUSE (not a test:
# prints numbers).  One F_OFD_SETLK write lock on one byte plus its unlock,
# timed per pair by build/tests/rlock_tool bench:N:
#
#   local   the same pairs on a file of the local filesystem (the kernel's
#           own lock table): the baseline
#   vcfs    a file in a vcfs mount of a file: image (T = 1000 ms), each pair
#           two FUSE requests, each one read of the inode's lock block and one
#           compare-and-write of its lock table sector
#   vcfs+2  the same while a second host (its own mount of the image) holds a
#           read lock on another byte of the same file: the table is shared
#
# Knobs: VCFS_BENCH_LOCKS (pairs per row, default 2000).  Runs in a private
# mount namespace; the scratch directory is removed at exit.
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=$TOP/build
N=${VCFS_BENCH_LOCKS:-2000}
RL=$B/tests/rlock_tool
[ -x "$RL" ] && [ -x "$B/vcfs-fuse" ] || { echo "rlock_bench: build first (make)" >&2; exit 2; }
if [ -z "${RLOCK_BENCH_INNER:-}" ]; then
	RLOCK_BENCH_INNER=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
d=$(mktemp -d /var/tmp/vcfs-rlockbench-XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	fusermount3 -u "$d/m1" 2>/dev/null; fusermount3 -u "$d/m2" 2>/dev/null
	rm -rf "$d"
}
trap cleanup EXIT
truncate -s 1G "$d/ds.img"
"$B/mkfs.vcfs" -q -H 8 "$d/ds.img" || exit 1
mkdir -p "$d/m1" "$d/m2"
"$B/vcfs-fuse" -o host=bench1 "$d/ds.img" "$d/m1" || exit 1
head -c 1M /dev/zero > "$d/local"
head -c 1M /dev/zero > "$d/m1/f"
setfattr -n user.vcfs.multiwriter -v 1 "$d/m1/f" 2>/dev/null
row() { printf '%-8s %s\n' "$1" "$("$RL" "$2" "bench:$N")"; }
echo "byte-range lock latency: F_OFD_SETLK write on one byte + unlock, $N pairs"
row local "$d/local"
row vcfs "$d/m1/f"
"$B/vcfs-fuse" -o host=bench2 "$d/ds.img" "$d/m2" || exit 1
sleep 1.2
"$RL" -r "$d/m2/f" ofd:r:4096:1 pause > /dev/null 2>&1 &
pids+=($!)
sleep 1
row vcfs+2 "$d/m1/f"
