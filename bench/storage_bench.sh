#!/usr/bin/env bash
# bench/storage_bench.sh - Storage vMotion: the time `vcvm move-storage` takes
# to move a filled 1 GiB disk of a running VM from one vcfs datastore to
# another, beside the same mirror between two plain directories of the
# backing filesystem, in the same run.  A benchmark, not a test: it prints a
# table and has no pass or fail (the target, vcfs/plain <= 1.3, is printed as
# met or not).
#
# Setup: one scratch directory under /var/tmp holds two vcfs images (each
# mounted by vcfs-fuse, default mkfs options) and two plain directories, so
# every file sits on the same backing filesystem.  Two TCG guests (the test
# guest of tests/guest: its writer writes a 4 KiB block every 100 ms through
# O_DIRECT|O_DSYNC, so each mirror has a guest writing) run throughout, one
# from a disk on ds1, one from a disk in plain1, each disk filled with
# non-zero bytes before the first start (zeroes would be skipped by
# detect-zeroes and measure nothing).  Then, interleaved so that both rows
# see the same load: vcfs ds1 -> ds2, plain1 -> plain2, ds2 -> ds1, plain2 ->
# plain1, ...  Each move is timed by the wall clock of the vcvm command
# (target creation, mirror, switch-over, config rewrite, old file removed).
# Median of 3 moves per row, of 5 when the first moves take under 15 s.
# Each repetition also times dd writing the same bytes (O_DIRECT, 1 MiB)
# into a new file on ds2 and in plain2: the ceiling the mirror's target
# writes can reach on each side.
#
# Knobs: VCFS_SVBENCH_MB (disk size, default 1024), VCFS_SVBENCH_RUNS (force
# a run count), VCFS_SVBENCH_KEEP=1 (keep the scratch directory), VCVM_BIN.
# Needs root (mounts in a private namespace), qemu-system-x86_64.

# A private mount namespace: nobody else's namespace copies our FUSE mounts.
if [ -z "${VCFS_PRIVATE_MNTNS:-}" ]; then
	VCFS_PRIVATE_MNTNS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=$TOP/build
V=${VCVM_BIN:-$B/vcvm}
MB=${VCFS_SVBENCH_MB:-1024}
W=$(mktemp -d /var/tmp/vcfs-svbench.XXXXXX)
VM=svbench

die() { echo "storage_bench: $*" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "storage_bench: skipped (no qemu-system-x86_64)"; exit 0; }
[ -x "$V" ] && [ -x "$B/vcfs-fuse" ] && [ -x "$B/mkfs.vcfs" ] || die "build first (make)"

export VCVM_RUN_DIR=$W/run VCVM_STATE_DIR=$W/state VCVM_HOST=bench VCVM_ACCEL=${VCVM_ACCEL:-tcg}

cleanup() {
	for vm in "$VM" "${VM}p"; do
		"$V" move-storage "$vm" --cancel >/dev/null 2>&1
		"$V" stop --hard "$vm" >/dev/null 2>&1
	done
	for m in "$W/ds1" "$W/ds2"; do
		if mountpoint -q "$m"; then
			p=$(pgrep -f -- "vcfs-fuse .*$m\$")
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m"
			for i in $(seq 50); do [ -n "$p" ] && kill -0 $p 2>/dev/null || break; sleep 0.2; done
		fi
	done
	[ -n "${VCFS_SVBENCH_KEEP:-}" ] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT

img_mb=$((MB * 2 + 1024))
for i in 1 2; do
	truncate -s ${img_mb}M "$W/ds$i.img"
	"$B/mkfs.vcfs" -q "$W/ds$i.img" || die "mkfs.vcfs ds$i"
	mkdir -p "$W/ds$i" "$W/plain$i"
	"$B/vcfs-fuse" -o host=bench$i "$W/ds$i.img" "$W/ds$i" > "$W/fuse$i.log" 2>&1 || die "mount ds$i"
	for t in $(seq 50); do mountpoint -q "$W/ds$i" && break; sleep 0.2; done
done
G=$(bash "$TOP/tests/guest/build.sh" 2> "$W/guest.log") || die "guest build (see $W/guest.log)"

# one guest per row, both running throughout, so both rows see the same load
for vm in "$VM:$W/ds1" "${VM}p:$W/plain1"; do
	name=${vm%%:*} ds=${vm#*:}
	"$V" create "$name" --datastore "$ds" --memory 128 --disk-size ${MB}M --kernel "$G/vmlinuz" \
		--initrd "$G/initrd.img" --append "console=ttyS0 panic=-1 quiet" > /dev/null || die "create $name"
	t0=$SECONDS
	# non-zero bytes everywhere (0xff; the writer overwrites from block 0 on)
	tr '\0' '\377' < /dev/zero | dd of="$ds/$name/disk0.raw" bs=1M count="$MB" iflag=fullblock \
		conv=notrunc,fsync status=none || die "fill"
	echo "storage_bench: filled the ${MB} MiB disk of $name in $ds in $((SECONDS - t0)) s"
	"$V" start "$name" > /dev/null || die "start $name"
done
for name in "$VM" "${VM}p"; do
	log=$(ls "$W"/*/"$name"/serial.log)
	for t in $(seq 300); do grep -q '^counter 5' "$log" 2>/dev/null && break; sleep 0.2; done
	grep -q '^counter 5' "$log" || die "the guest $name does not write"
done

LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
# move VM DST: wall time of one move in ms (to stdout)
move() {
	local s e
	s=$(date +%s%N)
	"$V" move-storage "$1" --to "$2" > "$W/move.out" 2>&1 || { cat "$W/move.out" >&2; die "move $1 to $2"; }
	e=$(date +%s%N)
	echo $(( (e - s) / 1000000 ))
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
# interleaved: vcfs ds1 -> ds2, plain1 -> plain2, ds2 -> ds1, plain2 -> plain1, ...
n=${VCFS_SVBENCH_RUNS:-3}
tv=() tp=() dv=() dp=()
# ddw FILE: ms to write the disk's size of 0xff bytes with O_DIRECT 1 MiB writes
ddw() {
	local s e
	rm -f "$1"
	s=$(date +%s%N)
	dd if="$W/fill.src" of="$1" bs=1M oflag=direct status=none || die "dd $1"
	e=$(date +%s%N)
	rm -f "$1"
	echo $(( (e - s) / 1000000 ))
}
tr '\0' '\377' < /dev/zero | head -c ${MB}M > "$W/fill.src"
for ((i = 0; i < n; i++)); do
	if ((i % 2 == 0)); then tov=$W/ds2 top=$W/plain2; else tov=$W/ds1 top=$W/plain1; fi
	tv+=("$(move "$VM" "$tov")")
	tp+=("$(move "${VM}p" "$top")")
	# the ceiling: the same bytes written by dd (O_DIRECT, 1 MiB) into a new file
	dv+=("$(ddw "$W/ds2/dd.raw")")
	dp+=("$(ddw "$W/plain2/dd.raw")")
	if [ -z "${VCFS_SVBENCH_RUNS:-}" ] && ((i == 0)) && ((tv[0] < 15000 && tp[0] < 15000)); then n=5; fi
done
echo "vcfs:ds1<->ds2 ${#tv[@]} $(printf '%s\n' "${tv[@]}" | median) ${tv[*]}" > "$W/rows"
echo "plain:dir1<->dir2 ${#tp[@]} $(printf '%s\n' "${tp[@]}" | median) ${tp[*]}" >> "$W/rows"
echo "dd-write:vcfs ${#dv[@]} $(printf '%s\n' "${dv[@]}" | median) ${dv[*]}" >> "$W/rows"
echo "dd-write:plain ${#dp[@]} $(printf '%s\n' "${dp[@]}" | median) ${dp[*]}" >> "$W/rows"
LOAD_END=$(cut -d' ' -f1 /proc/loadavg)
last=$(tr -d '\r' < "$W/ds1/$VM/serial.log" | sed -n 's/^counter \([0-9]*\)$/\1/p' | tail -n 1)
lastp=$(tr -d '\r' < "$W/plain1/${VM}p/serial.log" | sed -n 's/^counter \([0-9]*\)$/\1/p' | tail -n 1)

echo
echo "Storage vMotion: move a filled ${MB} MiB disk of a running TCG guest (writer active), runs interleaved"
printf '| %-20s | %4s | %9s | %8s | %-32s |\n' "path" "runs" "median s" "MiB/s" "each (ms)"
printf '|%s|%s|%s|%s|%s|\n' "----------------------" "------" "-----------" "----------" "----------------------------------"
while read -r name n med rest; do
	printf '| %-20s | %4s | %9.2f | %8.1f | %-32s |\n' "${name/:/ }" "$n" \
		"$(echo "$med" | awk '{print $1/1000}')" "$(echo "$med $MB" | awk '{print $2/($1/1000)}')" "$rest"
done < "$W/rows"
v=$(sed -n 1p "$W/rows" | awk '{print $3}'); p=$(sed -n 2p "$W/rows" | awk '{print $3}')
ratio=$(awk -v a="$v" -v b="$p" 'BEGIN {printf "%.2f", a / b}')
met=$(awk -v r="$ratio" 'BEGIN {print (r <= 1.3) ? "met" : "NOT met"}')
echo
echo "ratio vcfs/plain (median time): $ratio (target <= 1.3: $met)"
. "$TOP/bench/summary.sh"
bench_summary "storage vMotion" "move a filled ${MB} MiB disk of a running VM (median)" \
	"$(awk -v a="$v" 'BEGIN { printf "%.1f s", a / 1000 }')" "plain-file mirror" \
	"$(awk -v a="$p" 'BEGIN { printf "%.1f s", a / 1000 }')" "$ratio" "<= 1.3"

v=$(sed -n 3p "$W/rows" | awk '{print $3}'); p=$(sed -n 4p "$W/rows" | awk '{print $3}')
echo "ceiling: dd writing the same ${MB} MiB (O_DIRECT, 1 MiB) into a new file, vcfs/plain:" \
	"$(awk -v a="$v" -v b="$p" 'BEGIN {printf "%.2f", a / b}') (the mirror's target writes go the same way)"
echo "guests wrote throughout: counters at ${last:-?} (vcfs) and ${lastp:-?} (plain); load $LOAD_START at the start, $LOAD_END at the end"
echo "(the machine is shared: compare rows of one run)"
exit 0
