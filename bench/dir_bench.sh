#!/usr/bin/env bash
# bench/dir_bench.sh - does one directory stay fast as it grows to 100,000
# entries (issue 3)?  Not a test: prints numbers.  build/bench/dir_bench fills
# one directory of a fresh datastore (file: image under /var/tmp, T = 1 s,
# through the fs library, no FUSE and no kernel cache) in 10 steps and times,
# after each step, the creates of the step and 1000 lookups of existing and of
# missing names.  The baseline is the same directory early on: the medians of
# the last three steps (80-100% of the entries) against those of the first
# three (10-30%); ratios near 1 are what "stays fast" means.
#
# Knobs: VCFS_DIRBENCH_N (entries, default 100000).
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=$TOP/build
N=${VCFS_DIRBENCH_N:-100000}
[ -x "$B/bench/dir_bench" ] || { echo "dir_bench: build first (make)" >&2; exit 2; }
. "$TOP/bench/summary.sh"

echo "One directory growing to $N entries ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)):"
echo "creates of each step, then 1000 lookups of existing names (name + inode) and of"
echo "missing names; latency p50/p99 in µs"
out=$("$B/bench/dir_bench" -n "$N" --steps 10 --label dir) || { echo "dir_bench failed"; exit 0; }
# v LINE KEY: the value of KEY= in LINE
v() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" <<< "$1"; }
printf '| %9s | %10s | %15s | %15s | %15s |\n' entries "creates/s" "create p50/p99" "lookup p50/p99" "miss p50/p99"
printf '|%s|%s|%s|%s|%s|\n' ----------: -----------: ----------------: ----------------: ----------------:
while read -r line; do
	printf '| %9s | %10s | %15s | %15s | %15s |\n' "$(v "$line" entries)" "$(v "$line" create_ops)" \
		"$(v "$line" create_p50_us)/$(v "$line" create_p99_us)" \
		"$(v "$line" lookup_p50_us)/$(v "$line" lookup_p99_us)" \
		"$(v "$line" miss_p50_us)/$(v "$line" miss_p99_us)"
done <<< "$out"
# early = the median of the first three steps, late = of the last three
med3() { sort -g | awk '{ a[NR] = $1 } END { print NR ? a[int((NR + 1) / 2)] : 0 }'; }
col() { while read -r line; do v "$line" "$1"; done; }
early() { head -n 3 <<< "$out" | col "$1" | med3; }
late() { tail -n 3 <<< "$out" | col "$1" | med3; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
e1=$(head -n 1 <<< "$out" | col entries); e3=$(sed -n 3p <<< "$out" | col entries)
l1=$(tail -n 3 <<< "$out" | head -n 1 | col entries); l3=$(tail -n 1 <<< "$out" | col entries)
echo "medians of the steps at $l1-$l3 vs $e1-$e3 entries: creates/s $(late create_ops) vs" \
     "$(early create_ops) (x$(ratio "$(late create_ops)" "$(early create_ops)")), lookup p50" \
     "$(late lookup_p50_us) vs $(early lookup_p50_us) µs (x$(ratio "$(late lookup_p50_us)" "$(early lookup_p50_us)")), miss p50" \
     "$(late miss_p50_us) vs $(early miss_p50_us) µs (x$(ratio "$(late miss_p50_us)" "$(early miss_p50_us)"))"
bench_summary "filesystem (library)" "lookup p50, directory at $l1-$l3 entries (median of steps)" \
	"$(late lookup_p50_us) µs" "same directory at $e1-$e3" "$(early lookup_p50_us) µs" \
	"$(ratio "$(late lookup_p50_us)" "$(early lookup_p50_us)")" "stays fast (about 1)"
bench_summary "filesystem (library)" "creates/s, directory at $l1-$l3 entries (median of steps)" \
	"$(late create_ops)" "same directory at $e1-$e3" "$(early create_ops)" \
	"$(ratio "$(late create_ops)" "$(early create_ops)")" "stays fast (about 1)"
