#!/usr/bin/env bash
# sanitizers.sh - the code under AddressSanitizer + UndefinedBehaviorSanitizer
# and under ThreadSanitizer, each built in its own tree by the Makefile
# (make SAN=asan -> build-asan/, make SAN=tsan -> build-tsan/).
#
# ASan + UBSan (leaks included):
#   - the libcheck unit suites (check_fs without its two long test cases,
#     "big" and "crash", which take over ten minutes under ASan);
#   - fs_posix.sh and a cut-down fs_integrity.sh run against the ASan build
#     (VCFS_BUILD=build-asan): the FUSE daemon, mkfs, fsck and the tools.
# TSan:
#   - check_lock (its threaded tests: waiters, racing acquirers, monitors);
#   - the multi-threaded FUSE daemon under concurrent I/O from several
#     processes: three fsx and a metadata storm of two shells on one mount,
#     while a second daemon (another host) mounts the same image and writes
#     and reads its own files; then fsck.
#
# Every sanitizer report fails the check it happened in: the unit suites
# abort the test (abort_on_error / halt_on_error), daemons write their
# reports to log_path files that are collected here and printed.  Reports
# from third-party libraries are suppressed in tests/sanitizers.supp (each
# with the reason); none from vcfs code is.
# VCFS_SAN="asan" or "tsan" runs only one half; VCFS_TSAN_HALT=0 lets the
# daemons go on after a TSan report, to collect every race of a run.
. "$(dirname "$0")/lib/common.sh"
cd "$VCFS_TOP"
T=$VCFS_TEST_TMP/sanitizers
rm -rf "$T"; mkdir -p "$T/reports"
halves=${VCFS_SAN:-asan tsan}
supp=$VCFS_TOP/tests/sanitizers.supp
failed=0
s_fail() { failed=1; t_fail "$@"; }

# reports CHECK: fail CHECK if sanitizer reports were written since the last
# call, print them, and move them aside
reports() {
	local f n=0
	for f in "$T"/reports/*.*[0-9]; do
		[ -e "$f" ] || continue
		n=$((n + 1))
		echo "          | $f:"
		grep -E 'ERROR|WARNING|SUMMARY|runtime error|^ *#[0-9]+ ' "$f" | head -n 25 |
			sed 's/^/          | /'
		mv "$f" "$f.seen"
	done
	if [ $n -eq 0 ]; then t_pass "$1: no sanitizer report"; else s_fail "$1: $n sanitizer reports"; fi
}

# script NAME PREFIX ENV...: run tests/NAME.sh against another build; its
# results are re-recorded as "PREFIX NAME: case" lines
script() {
	local name=$1 prefix=$2 res=$T/$1.results rc
	shift 2
	: > "$res"
	env "$@" T_RESULTS="$res" VCFS_TEST_TMP="$T/tmp-$name" \
		timeout -k 10 300 bash "tests/$name.sh" > "$T/$name.log" 2>&1
	rc=$?
	[ $rc -le 1 ] || echo "fail script ended with exit $rc" >> "$res"
	while read -r st rest; do
		case $st in
		pass) t_pass "$prefix $name: $rest" ;;
		skip) t_skip "$prefix $name: $rest" ;;
		*) s_fail "$prefix $name: $rest (log $T/$name.log)" ;;
		esac
	done < "$res"
}

# suite PREFIX BINARY [CASE]: one libcheck suite (or one of its test cases).
# A failure without a sanitizer report is run once more before it counts:
# the suites assert lease timings (T = 100-200 ms) that a sanitizer build on
# a loaded machine may miss once; a sanitizer report always counts.
suite() {
	local n out rc try label=$(basename "$2")${3:+ ($3)}
	for try in 1 2; do
		# T = 600 ms for check_fs's lease (2-3x slower code: a T = 200 ms
		# host whose renewal lands 400 ms late is fenced, as it should be)
		out=$(env ${3:+CK_RUN_CASE=$3} CK_DEFAULT_TIMEOUT=300 VCFS_CHECK_FS_T_MS=600 "$2" 2>&1)
		rc=$?
		echo "$out" > "$T/$1-$(basename "$2")${3:+-$3}.log"
		[ $rc -eq 0 ] && break
		echo "$out" | grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error|WARNING: ThreadSanitizer' && break
		echo "  $1 $label failed without a sanitizer report; once more"
	done
	if [ $rc -eq 0 ]; then
		t_pass "$1 $label: $(echo "$out" | grep -oE 'Checks: [0-9]+' | tail -n 1) pass"
	else
		s_fail "$1 $label (exit $rc; log $T/$1-$(basename "$2")${3:+-$3}.log)"
		echo "$out" | grep -E ':(F|E):|ERROR: |SUMMARY|runtime error|WARNING: ThreadSanitizer' |
			head -n 12 | sed 's/^/          | /'
	fi
}

# units DIR PREFIX: the libcheck suites in DIR/tests
units() {
	local u
	if [ "$2" = tsan ]; then
		# the threaded ones: waiters and racing acquirers, monitors and
		# recoverers, fencing while other threads use the lease
		for c in modes recovery fencing; do suite tsan "$1/tests/check_lock" $c; done
		return
	fi
	for u in "$1"/tests/check_*; do
		[ -x "$u" ] || continue
		# check_fs: its "fs" case (its "big" and "crash" ones take over
		# ten minutes under ASan)
		if [ "$(basename "$u")" = check_fs ]; then suite "$2" "$u" fs; else suite "$2" "$u"; fi
	done
}

if echo " $halves " | grep -q ' asan '; then
	t_section "sanitizers: ASan + UBSan (build-asan/)"
	s=$SECONDS
	# what the checks below run, not everything (benchmarks, hypervisor)
	if make -j2 SAN=asan WERROR=0 build-asan/vcfs-fuse build-asan/mkfs.vcfs \
		build-asan/fsck.vcfs build-asan/vcfs build-asan/tests/fsx \
		build-asan/tests/rename2 build-asan/tests/seekhole \
		$(ls tests/unit/check_*.c | sed 's|^tests/unit/|build-asan/tests/|; s|\.c$||') \
		> "$T/build-asan.log" 2>&1; then
		t_pass "ASan + UBSan build ($((SECONDS - s)) s)"
		# use_sigaltstack=0: with Debian 12's gcc 12 runtime and glibc 2.36,
		# ASan's own thread teardown (UnsetAlternateSignalStack, called from
		# glibc's __nptl_deallocate_tsd) reports a stack-buffer-underflow
		# in its sigaltstack interceptor at every thread exit of the
		# daemon; no vcfs frame is involved, and without the alternate
		# stack that code does not run (only stack-overflow reports lose
		# their stack trace)
		asan=detect_leaks=1:abort_on_error=1:use_sigaltstack=0
		export ASAN_OPTIONS=$asan:log_path=$T/reports/asan
		export LSAN_OPTIONS=suppressions=$supp
		export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$T/reports/ubsan
		# the unit suites print their reports (no log_path): libcheck's
		# forked test fails with the report in its output
		ASAN_OPTIONS=$asan UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
			units build-asan asan
		script fs_posix asan VCFS_BUILD="$VCFS_TOP/build-asan" VCFS_TEST_IO_TIMEOUT=2000
		reports "asan fs_posix"
		script fs_integrity asan VCFS_BUILD="$VCFS_TOP/build-asan" VCFS_TEST_IO_TIMEOUT=2000 VCFS_FSX_OPS=4000 \
			VCFS_FSX_OPS64=1500 VCFS_FSX_PAROPS=1000
		reports "asan fs_integrity"
		unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
	else
		s_fail "ASan + UBSan build (log $T/build-asan.log)"
		tail -n 20 "$T/build-asan.log" | sed 's/^/          | /'
	fi
	echo "  asan half: $((SECONDS - s)) s"
fi

# ---- TSan: the daemon under concurrent I/O ----
Z=$VCFS_TOP/build-tsan
M1=$T/m1 M2=$T/m2 img=$T/tsan.img
TSAN_PIDS=
tsan_umount() {
	local m p
	for m in "$M1" "$M2"; do
		# a daemon that aborted on a report leaves a dead mount behind
		fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
	done
	# the daemons free their heartbeat slots on the way out (slow under TSan)
	for p in $TSAN_PIDS; do
		for _ in $(seq 1 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$p" 2>/dev/null && echo "vcfs-fuse $p did not exit in 60 s"
		wait "$p" 2>/dev/null
	done
	TSAN_PIDS=
}

tsan_io() {
	local pids=() i rc=0
	mkdir -p "$M1" "$M2"
	rm -f "$img"; truncate -s 1G "$img"
	"$Z/mkfs.vcfs" -q -H 4 -T 2000 -b 64K "$img" || { s_fail "tsan: mkfs"; return; }
	t_cleanup_push tsan_umount
	# in the foreground (-f), so that the pids are known and waited for
	"$Z/vcfs-fuse" -f -o host=tsan1 "$img" "$M1" > "$T/fuse1.log" 2>&1 &
	TSAN_PIDS="$!"
	"$Z/vcfs-fuse" -f -o host=tsan2 "$img" "$M2" > "$T/fuse2.log" 2>&1 &
	TSAN_PIDS="$TSAN_PIDS $!"
	wait_for 30 mountpoint -q "$M1" && wait_for 30 mountpoint -q "$M2" ||
		{ s_fail "tsan: two daemons mount one image (logs $T/fuse*.log)"; return; }
	t_pass "tsan: two daemons (hosts) mount one image"
	for i in 1 2 3; do
		mkdir "$M1/p$i"
		"$VCFS_BUILD/tests/fsx" -q -s $((1000 + i)) -n 1000 -f 2 -m 2M -V 500 "$M1/p$i" \
			> "$T/fsx$i.log" 2>&1 &
		pids+=($!)
	done
	# a metadata storm of two processes in one directory
	mkdir "$M1/storm"
	for i in a b; do
		sh -c "d='$M1/storm'; for n in \$(seq 1 60); do echo $i\$n > \$d/$i\$n;
			mv \$d/$i\$n \$d/$i\$n.r; ls \$d > /dev/null; done
			for n in \$(seq 1 2 60); do rm \$d/$i\$n.r; done" > "$T/storm$i.log" 2>&1 &
		pids+=($!)
	done
	# the other host works on its own files meanwhile
	sh -c "mkdir '$M2/h2'; for n in \$(seq 1 20); do
		dd if=/dev/urandom of='$M2/h2/f'\$n bs=64K count=4 status=none; cat '$M2/h2/f'\$n > /dev/null;
		done; ls '$M2' > /dev/null" > "$T/host2.log" 2>&1 &
	pids+=($!)
	for i in "${pids[@]}"; do wait "$i" || rc=1; done
	if [ $rc = 0 ]; then
		t_pass "tsan: 3 fsx + 2 metadata writers on one daemon, another host writing"
	else
		s_fail "tsan: concurrent I/O failed (logs $T/fsx*.log $T/storm*.log $T/host2.log)"
		grep -h -A3 FAILED "$T"/fsx*.log | head -n 10 | sed 's/^/          | /'
		cat "$T"/storm*.log "$T/host2.log" | head -n 5 | sed 's/^/          | /'
	fi
	t_run "tsan: the storm left 60 names" sh -c "[ \$(ls '$M1/storm' | wc -l) = 60 ]"
	tsan_umount
	t_run "tsan: fsck is clean afterwards" "$Z/fsck.vcfs" -n "$img"
	rm -f "$img"
}

if echo " $halves " | grep -q ' tsan '; then
	t_section "sanitizers: TSan (build-tsan/)"
	s=$SECONDS
	if make -j2 SAN=tsan WERROR=0 build-tsan/vcfs-fuse build-tsan/mkfs.vcfs \
		build-tsan/fsck.vcfs build-tsan/tests/check_lock > "$T/build-tsan.log" 2>&1; then
		t_pass "TSan build ($((SECONDS - s)) s)"
		export TSAN_OPTIONS="halt_on_error=${VCFS_TSAN_HALT:-1}:second_deadlock_stack=1:suppressions=$supp"
		units "$Z" tsan
		export TSAN_OPTIONS="$TSAN_OPTIONS:log_path=$T/reports/tsan"
		tsan_io
		reports "tsan daemons"
		unset TSAN_OPTIONS
	else
		s_fail "TSan build (log $T/build-tsan.log)"
		tail -n 20 "$T/build-tsan.log" | sed 's/^/          | /'
	fi
	echo "  tsan half: $((SECONDS - s)) s"
fi
[ $failed = 1 ] || rm -rf "$T"
