#!/usr/bin/env bash
# bench/run.sh - `make bench`: the shared-disk layer on every backend, beside
# the raw backing store.  A benchmark, not a test: it prints numbers and has
# no pass or fail.
#
# In one run it creates a scratch directory under /var/tmp, starts the real
# servers itself (the same helpers the tests use: tests/lib/iscsi.sh,
# tests/lib/nfs.sh, tests/lib/ceph.sh when present), keeps every backing
# store on that one filesystem, and measures with build/bench/disk_bench:
#
#   raw    plain O_DIRECT pread/pwrite on a local file: the baseline
#   file   file: backend on an image beside it (CAS: OFD lock)
#   istgt  iscsi:// to istgt on 127.0.0.1 (CAS: SCSI COMPARE AND WRITE, "ats")
#   tgt    iscsi:// to tgtd (no COMPARE AND WRITE: persistent-reservation
#          fallback, "ats+pr")
#   nfs    nfs:// to nfs-ganesha, NFSv3, in its own network namespace (the
#          client runs inside it through nfs_exec)
#   rados  rados:// to a one-node memstore Ceph cluster, when the rados
#          backend is built and tests/lib/ceph.sh exists
#
# Each row is run VCFS_BENCH_REPS times, the repetitions interleaved across
# rows (rep 1 of every row, then rep 2, ...) so that a burst of load from
# other work on the machine spreads over the rows instead of hitting one; each
# cell is the median of its repetitions.  Ratio columns divide by the raw row.
#
# Knobs (environment):
#   VCFS_BENCH_SIZE  size of every target and of the area written over;
#                    MiB, or with an M/G suffix (default 64M)
#   VCFS_BENCH_SECS  seconds per measurement, decimals allowed (default 1);
#                    disk_bench makes 7 measurements per run
#   VCFS_BENCH_REPS  repetitions per row (default 3)
#   VCFS_BENCH_ONLY  rows to run, e.g. "file nfs" (default: all); raw always
#                    runs, as the ratios need it
#
# Every server it starts is stopped, and the scratch directory removed, when
# it exits, also on Ctrl-C or SIGTERM (t_cleanup_push, tests/lib/common.sh).
# With the defaults the whole run takes about two minutes.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DB=$TOP/build/bench/disk_bench
ALL_ROWS="raw file istgt tgt nfs rados"

die() { echo "bench: $*" >&2; exit 2; }

# ---- knobs ----
size=${VCFS_BENCH_SIZE:-64M}
case $size in
	*[Gg]) MB=${size%[Gg]}; [[ $MB =~ ^[0-9]+$ ]] && MB=$((MB * 1024)) ;;
	*[Mm]) MB=${size%[Mm]} ;;
	*) MB=$size ;;
esac
[[ $MB =~ ^[0-9]+$ ]] && [ "$MB" -ge 2 ] ||
	die "VCFS_BENCH_SIZE='$size': want MiB (at least 2) or a size like 64M, 1G"
SECS=${VCFS_BENCH_SECS:-1}
[[ $SECS =~ ^[0-9]*\.?[0-9]+$ ]] && awk -v s="$SECS" 'BEGIN { exit !(s > 0) }' ||
	die "VCFS_BENCH_SECS='$SECS': want a positive number of seconds"
REPS=${VCFS_BENCH_REPS:-3}
[[ $REPS =~ ^[0-9]+$ ]] && [ "$REPS" -ge 1 ] || die "VCFS_BENCH_REPS='$REPS': want 1 or more"
ROWS=raw
for r in ${VCFS_BENCH_ONLY:-$ALL_ROWS}; do
	case " $ALL_ROWS " in
		*" $r "*) [ "$r" = raw ] || ROWS="$ROWS $r" ;;
		*) die "VCFS_BENCH_ONLY: unknown row '$r' (rows: $ALL_ROWS)" ;;
	esac
done
[ -x "$DB" ] || die "$DB missing: run make first (make bench builds it)"
[ "$(id -u)" = 0 ] || echo "bench: not root: the servers (netns, iSCSI targets) may not start" >&2

# ---- scratch directory, harness, cleanup ----
BENCH_DIR=$(mktemp -d /var/tmp/vcfs-bench.XXXXXX) || die "cannot create a directory in /var/tmp"
export VCFS_TEST_TMP=$BENCH_DIR
. "$TOP/tests/lib/common.sh"
. "$TOP/bench/summary.sh"
export VCFS_BENCH_SUMMARY=${VCFS_BENCH_SUMMARY:-$BENCH_DIR/summary}
: > "$VCFS_BENCH_SUMMARY"
. "$TOP/tests/lib/iscsi.sh"
. "$TOP/tests/lib/nfs.sh"
HAVE_CEPH_LIB=0
if [ -f "$TOP/tests/lib/ceph.sh" ]; then
	. "$TOP/tests/lib/ceph.sh"
	HAVE_CEPH_LIB=1
fi
t_cleanup_push "rm -rf '$BENCH_DIR'"	# first in, so it runs last
# A second Ctrl-C must not cut the cleanup short.
trap 'trap "" INT TERM; t_cleanup_run' EXIT
trap 'echo; echo "bench: interrupted; stopping the servers it started" >&2; exit 130' INT TERM

host_line() {
	echo "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)"
}
START=$SECONDS
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "vcfs disk benchmark: $(date -u '+%F %H:%M UTC'); $(host_line)"
echo "  targets ${MB} MiB, ${SECS} s per measurement, median of ${REPS} runs per cell;"
echo "  scratch directory $BENCH_DIR (everything on $(df --output=source,fstype "$BENCH_DIR" | tail -n 1 | tr -s ' ' ' '))"

# ---- targets: start what the chosen rows need ----
declare -A URI RUNNER
SKIPPED=()
active=raw
truncate -s "${MB}M" "$BENCH_DIR/raw.img"

skip() { SKIPPED+=("$1: skipped ($2)"); echo "  $1: skipped ($2)"; }

for r in $ROWS; do
	case $r in
	raw) continue ;;	# always measured, already in the list
	file)
		truncate -s "${MB}M" "$BENCH_DIR/file.img"
		URI[file]=file:$BENCH_DIR/file.img ;;
	istgt)
		need_pkgs istgt >/dev/null 2>&1
		if ! command -v istgt >/dev/null; then
			skip istgt "istgt not installed"; continue
		fi
		if ! istgt_start "$BENCH_DIR/istgt" "$MB"; then
			skip istgt "istgt did not start"; continue
		fi
		URI[istgt]=$ISTGT_URI ;;
	tgt)
		need_pkgs tgt >/dev/null 2>&1
		if ! command -v tgtd >/dev/null; then
			skip tgt "tgt not installed"; continue
		fi
		if ! tgtd_start "$BENCH_DIR/tgtd" "$MB"; then
			skip tgt "tgtd did not start"; continue
		fi
		URI[tgt]=$TGTD_URI ;;
	nfs)
		need_pkgs nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils iproute2 >/dev/null 2>&1
		if ! command -v ganesha.nfsd >/dev/null || ! command -v rpcbind >/dev/null ||
		   ! command -v nfs-ls >/dev/null; then
			skip nfs "nfs-ganesha, rpcbind or libnfs-utils not installed"; continue
		fi
		if ! ganesha_start "$BENCH_DIR/ganesha"; then
			skip nfs "nfs-ganesha did not start"; continue
		fi
		truncate -s "${MB}M" "$NFS_EXPORT_DIR/bench.img"
		URI[nfs]=$NFS_URI_BASE/bench.img
		RUNNER[nfs]="ip netns exec $NFS_NS" ;;
	rados)
		# built = the library calls librados (not the placeholder backend)
		if [ $HAVE_CEPH_LIB = 0 ] || ! nm "$TOP/build/libvcfs.a" 2>/dev/null | grep -q ' U rados_'; then
			echo "  rados: skipped (not built or no tests/lib/ceph.sh)"
			SKIPPED+=("rados: skipped (not built or no tests/lib/ceph.sh)")
			continue
		fi
		if ! ceph_start "$BENCH_DIR/ceph"; then
			skip rados "the Ceph cluster did not start"; continue
		fi
		URI[rados]="rados://$CEPH_POOL/vcfs-bench?conf=$CEPH_CONF&create=${MB}M" ;;
	esac
	active="$active $r"
done
echo "  servers up after $((SECONDS - START)) s; rows: $active"

# ---- measure: reps interleaved across rows ----
RESULTS=$BENCH_DIR/results
: > "$RESULTS"
# 7 timed measurements, the fill and the connection: bound each run
TMO=$(awk -v s="$SECS" -v mb="$MB" 'BEGIN { printf "%d", 8 * s + mb / 5 + 60 }')

run_row() {
	local row=$1 rep=$2 out rc line
	local args=(--seconds "$SECS" --size "${MB}M" --label "$row")
	[ "$rep" -gt 1 ] && args+=(--no-fill)	# rep 1 wrote the whole area
	if [ "$row" = raw ]; then
		args+=(--raw "$BENCH_DIR/raw.img")
	else
		args+=("${URI[$row]}")
	fi
	# --foreground: same process group, so Ctrl-C reaches disk_bench at once
	out=$(${RUNNER[$row]:-} timeout --foreground "$TMO" "$DB" "${args[@]}" \
		2> "$BENCH_DIR/err.$row.$rep")
	rc=$?
	line=$(echo "$out" | grep '^row ' | tail -n 1)
	if [ $rc -eq 0 ] && [ -n "$line" ]; then
		echo "$rep $line" >> "$RESULTS"
		printf ' %s' "$row"
	else
		printf ' %s(FAILED, exit %d)' "$row" "$rc"
		FAILS+=("$row run $rep: exit $rc: $(tail -n 2 "$BENCH_DIR/err.$row.$rep" | tr '\n' ' ')")
	fi
}

FAILS=()
for ((rep = 1; rep <= REPS; rep++)); do
	printf '  run %d/%d:' "$rep" "$REPS"
	for r in $active; do
		run_row "$r" "$rep"
	done
	echo
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the table: per-cell medians, ratios against raw ----
echo
awk -v rows="$active" -v reps="$REPS" '
function median(row, key,   n, i, j, t, v) {
	n = 0
	for (i = 1; i <= reps; i++)
		if ((row, i, key) in val)
			v[++n] = val[row, i, key] + 0
	if (!n)
		return ""
	for (i = 2; i <= n; i++)	# insertion sort: n is small
		for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
			t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
		}
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function pair(a, b, fmt) {
	if (a == "" || b == "")
		return "-"
	return sprintf(fmt "/" fmt, a, b)
}
# display width: mawk counts bytes, and the µ in the headers takes two
function dlen(s,   t) {
	t = s
	gsub(/µ/, "u", t)
	return length(t)
}
function pad(s, n, right,   p) {
	p = ""
	while (dlen(s) + length(p) < n)
		p = p " "
	return right ? p s : s p
}
function ratio(x, base) {
	if (x == "" || base == "" || base <= 0)
		return "-"
	return sprintf("%.2f", x / base)
}
{
	rep = $1; row = $3
	for (i = 4; i <= NF; i++) {
		split($i, kv, "=")
		val[row, rep, kv[1]] = kv[2]
	}
	if (val[row, rep, "cas_mode"] != "")
		mode[row] = val[row, rep, "cas_mode"]
	good[row]++
}
END {
	nr = split(rows, R, " ")
	head[1] = "backend"; head[2] = "CAS mode"; head[3] = "4K QD1 read p50/p99 µs"
	head[4] = "4K QD1 write p50/p99 µs"; head[5] = "QD16 4K IOPS read/write"
	head[6] = "1 MiB MiB/s read/write"; head[7] = "CAS p50/p99 µs"
	head[8] = "IOPS vs raw r/w"; head[9] = "MiB/s vs raw r/w"; head[10] = "runs"
	nc = 10
	for (k = 1; k <= nr; k++) {
		r = R[k]
		rd50 = median(r, "rd_p50_us"); rd99 = median(r, "rd_p99_us")
		wr50 = median(r, "wr_p50_us"); wr99 = median(r, "wr_p99_us")
		ri = median(r, "rd_qd16_iops"); wi = median(r, "wr_qd16_iops")
		rm = median(r, "seq_rd_mibs"); wm = median(r, "seq_wr_mibs")
		c50 = median(r, "cas_p50_us"); c99 = median(r, "cas_p99_us")
		if (r == "raw") {
			bri = ri; bwi = wi; brm = rm; bwm = wm
		}
		cell[k, 1] = r == "raw" ? "raw (O_DIRECT)" : r
		cell[k, 2] = r == "raw" ? "-" : (mode[r] != "" ? mode[r] : "-")
		cell[k, 3] = pair(rd50, rd99, "%.0f")
		cell[k, 4] = pair(wr50, wr99, "%.0f")
		cell[k, 5] = pair(ri, wi, "%.0f")
		cell[k, 6] = pair(rm, wm, "%.0f")
		cell[k, 7] = (r == "raw" || c50 == "" || c50 + 0 == 0) ? "-" : pair(c50, c99, "%.0f")
		ra = ratio(ri, bri); rb = ratio(wi, bwi)
		cell[k, 8] = ra == "-" && rb == "-" ? "-" : ra "/" rb
		ra = ratio(rm, brm); rb = ratio(wm, bwm)
		cell[k, 9] = ra == "-" && rb == "-" ? "-" : ra "/" rb
		cell[k, 10] = (good[r] + 0) "/" reps
	}
	for (c = 1; c <= nc; c++) {
		w[c] = dlen(head[c])
		for (k = 1; k <= nr; k++)
			if (dlen(cell[k, c]) > w[c])
				w[c] = dlen(cell[k, c])
	}
	# a Markdown table: text columns left, numbers right-aligned
	line = "|"
	for (c = 1; c <= nc; c++)
		line = line " " pad(head[c], w[c], 0) " |"
	print line
	line = "|"
	for (c = 1; c <= nc; c++) {
		d = ""
		while (length(d) < w[c] + 1)
			d = d "-"
		line = line (c <= 2 ? d "-" : d ":") "|"
	}
	print line
	for (k = 1; k <= nr; k++) {
		line = "|"
		for (c = 1; c <= nc; c++)
			line = line " " pad(cell[k, c], w[c], c > 2) " |"
		print line
	}
}' "$RESULTS"
echo
echo "Each cell is the median of its runs (cells taken independently); ratios divide"
echo "by the raw row.  4K QD1 = one 4 KiB random request at a time; QD16 = 16 threads"
echo "of 4 KiB random requests; 1 MiB = 4 threads streaming 1 MiB requests; CAS ="
echo "one-sector compare-and-write.  The machine is shared (load $LOAD_START at the"
echo "start, $LOAD_END at the end): numbers are noisy; compare rows of one run."
for s in "${SKIPPED[@]}"; do echo "$s"; done
for f in "${FAILS[@]}"; do echo "failed: $f"; done
echo "total $((SECONDS - START)) s"
# headline figures of the disk layer for the one table at the end
awk '
function median(row, key,   n, i, j, t, a) {
	n = 0
	for (i = 1; i <= reps; i++) if ((row, i, key) in val) a[++n] = val[row, i, key] + 0
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n ? (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) : ""
}
{ for (i = 4; i <= NF; i++) { split($i, kv, "="); val[$3, $1, kv[1]] = kv[2] }
  if ($1 > reps) reps = $1; if (!($3 in seen)) { seen[$3] = 1; rows[++nr] = $3 } }
END {
	bri = median("raw", "rd_qd16_iops"); bwi = median("raw", "wr_qd16_iops")
	for (k = 1; k <= nr; k++) {
		r = rows[k]; if (r == "raw") continue
		ri = median(r, "rd_qd16_iops"); wi = median(r, "wr_qd16_iops"); c = median(r, "cas_p50_us")
		if (ri != "" && bri > 0)
			printf "disk layer|%s: 4K QD16 read/write IOPS|%.0f/%.0f|raw O_DIRECT file|%.0f/%.0f|%.2f/%.2f|-\n", r, ri, wi, bri, bwi, ri / bri, wi / bwi
		if (c != "" && c > 0)
			printf "disk layer|%s: compare-and-write p50|%.0f µs|-|-|-|-\n", r, c
	}
}' "$RESULTS" >> "${VCFS_BENCH_SUMMARY:-/dev/null}" 2>/dev/null
echo; bash "$TOP/bench/fs_bench.sh"	# the filesystem and the cluster: fs_bench.sh, its own tables
echo; bash "$TOP/bench/dir_bench.sh"	# one directory growing to 100,000 entries
echo; bash "$TOP/bench/rlock_bench.sh"	# byte-range lock latency through FUSE
echo; bash "$TOP/bench/storage_bench.sh"	# Storage vMotion: move-storage, vcfs vs plain files
echo; bash "$TOP/bench/vm_bench.sh"	# vMotion times and downtime: vm_bench.sh
echo
echo "== vcfs at a glance: every benchmark's headline figure beside its baseline, same run"
bench_summary_print "$VCFS_BENCH_SUMMARY"
exit 0
