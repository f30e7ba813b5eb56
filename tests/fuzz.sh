#!/usr/bin/env bash
# fuzz.sh - libFuzzer targets over everything that parses what is on disk or
# what a user types (tests/fuzz/fuzz_*.c: volume header, heartbeat slots, lock
# records, journal replay, inodes, block maps, directories, a whole image
# through fsck and a mount, the datastore URI, vm.json).
#
#  1. `make fuzz` builds them with clang -fsanitize=fuzzer,address,undefined
#     into build-fuzz/fuzz/;
#  2. every input in tests/fuzz/regress/<target>/ (crashes found before, and
#     fixed) is replayed: each must run clean;
#  3. each target fuzzes for VCFS_FUZZ_TIME seconds (default 12) from its
#     seed corpus tests/fuzz/corpus/<target>/ (copied: the committed corpus
#     is never changed).  A crash, leak, sanitizer report, timeout or
#     out-of-memory fails the check and prints the reproducer's path:
#         build-fuzz/fuzz/fuzz_<target> <reproducer>
#     replays it; add it to tests/fuzz/regress/<target>/ once fixed.
# VCFS_FUZZ_TARGETS="uri dir" runs only some targets.
. "$(dirname "$0")/lib/common.sh"
cd "$VCFS_TOP"
T=$VCFS_TEST_TMP/fuzz
F=$VCFS_TOP/build-fuzz/fuzz
secs=${VCFS_FUZZ_TIME:-12}
mkdir -p "$T"
failed=0
fz_fail() { failed=1; t_fail "$@"; }

if ! command -v clang > /dev/null; then
	t_skip "fuzzing (clang is not installed: apt-get install clang)"; exit 0
fi
if make -j2 fuzz WERROR=0 > "$T/build.log" 2>&1; then
	t_pass "fuzz targets build (clang, -fsanitize=fuzzer,address,undefined)"
else
	t_fail "fuzz targets build (log $T/build.log)"; tail -n 20 "$T/build.log" | sed 's/^/          | /'
	exit 0
fi

# the largest input each target reads (its format, see the target's header)
max_len() {
	case $1 in
	image) echo $((1 + 64 * 4100)) ;;
	journal) echo $((1 + 12 * 4096)) ;;
	dir) echo $((2 + 4 * 4096)) ;;
	hb|bmap) echo $((1 + 2 * 4096)) ;;
	vmcfg) echo 65536 ;;
	*) echo $((2 + 4096)) ;;
	esac
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
for src in tests/fuzz/fuzz_*.c; do
	n=$(basename "$src" .c); n=${n#fuzz_}
	if [ -n "${VCFS_FUZZ_TARGETS:-}" ] && ! echo " $VCFS_FUZZ_TARGETS " | grep -q " $n "; then
		continue
	fi
	bin=$F/fuzz_$n
	reg=(tests/fuzz/regress/$n/*)
	if [ -e "${reg[0]}" ]; then
		if "$bin" -rss_limit_mb=4096 "${reg[@]}" > "$T/regress-$n.log" 2>&1; then
			t_pass "$n: ${#reg[@]} regression inputs replay clean"
		else
			fz_fail "$n: a regression input fails again (log $T/regress-$n.log)"
			grep -E 'ERROR|SUMMARY|Running:' "$T/regress-$n.log" | tail -n 6 | sed 's/^/          | /'
		fi
	fi
	work=$T/corpus-$n art=$T/artifacts/$n
	rm -rf "$work"; mkdir -p "$work" "$art"
	cp tests/fuzz/corpus/$n/* "$work/" 2>/dev/null
	"$bin" -max_total_time="$secs" -max_len="$(max_len "$n")" -timeout=30 \
		-rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$art/" \
		"$work" > "$T/run-$n.log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$T/run-$n.log")
	cov=$(grep -oE 'cov: [0-9]+' "$T/run-$n.log" | tail -n 1)
	repro=$(ls "$art"/* 2>/dev/null | head -n 1)
	if [ $rc -eq 0 ] && [ -z "$repro" ]; then
		t_pass "$n: ${execs:-?} executions in ${secs} s, no crash (${cov:-cov ?})"
	else
		fz_fail "$n: crash after ${execs:-?} executions (exit $rc); reproducer $repro; replay: $bin $repro; log $T/run-$n.log"
		grep -E 'ERROR|SUMMARY|#[0-9]+ 0x' "$T/run-$n.log" | head -n 12 | sed 's/^/          | /'
	fi
done
# keep the logs and reproducers only when something failed
[ $failed = 1 ] || rm -rf "$T"
