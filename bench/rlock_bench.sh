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
. "$TOP/bench/summary.sh"
declare -A P50 P99
row() {
	local out; out=$("$RL" "$2" "bench:$N")
	printf '%-8s %s\n' "$1" "$out"
	P50[$1]=$(echo "$out" | sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p')
	P99[$1]=$(echo "$out" | sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p')
}
echo "byte-range lock latency: F_OFD_SETLK write on one byte + unlock, $N pairs"
row local "$d/local"
row vcfs "$d/m1/f"
"$B/vcfs-fuse" -o host=bench2 "$d/ds.img" "$d/m2" || exit 1
sleep 1.2
"$RL" -r "$d/m2/f" ofd:r:4096:1 pause > /dev/null 2>&1 &
pids+=($!)
sleep 1
row vcfs+2 "$d/m1/f"
for r in vcfs vcfs+2; do
	[ -n "${P50[$r]:-}" ] && [ -n "${P50[local]:-}" ] &&
	bench_summary "byte-range locks" "F_OFD_SETLK+unlock p50/p99 ($r)" "${P50[$r]}/${P99[$r]} µs" \
		"local filesystem" "${P50[local]}/${P99[local]} µs" \
		"$(awk -v a="${P50[$r]}" -v b="${P50[local]}" 'BEGIN { printf "%.0f", a / b }')" "-"
done
exit 0
