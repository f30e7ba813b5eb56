#!/usr/bin/env bash
# tests/run.sh - `make check`: everything, from a fresh Debian 12 machine.
#
# 1. installs what is missing (build dependencies and the real servers the
#    tests start: istgt, tgt, nfs-ganesha, ceph, qemu),
# 2. builds with warnings as errors,
# 3. runs the libcheck unit suites, then every tests/*.sh script (each starts
#    and stops its own servers), then the lint,
# 4. ends with the summary line "N passed, N failed".
# Set VCFS_TESTS="disk_file disk_iscsi" to run only some scripts.
set -u
cd "$(dirname "$0")/.."
export VCFS_TOP=$PWD
export VCFS_TEST_TMP=${VCFS_TEST_TMP:-$(mktemp -d /var/tmp/vcfs-check.XXXXXX)}
export T_RESULTS=$VCFS_TEST_TMP/results
: > "$T_RESULTS"
. tests/lib/common.sh

t_section "installing what is missing"
need_pkgs build-essential pkg-config libfuse3-dev fuse3 libiscsi-dev libnfs-dev libssl-dev check \
	libsubunit-dev libjansson-dev uuid-dev iproute2 istgt tgt nfs-ganesha \
	nfs-ganesha-vfs rpcbind librados-dev ceph-mon ceph-osd ceph-common fio spin \
	qemu-system-x86 qemu-utils busybox-static attr clang libclang-rt-14-dev || { echo "package install failed"; exit 1; }

t_section "build"
if make -j2 WERROR=1 > "$VCFS_TEST_TMP/build.log" 2>&1; then
	t_pass "build (warnings as errors)"
else
	t_fail "build"; tail -n 40 "$VCFS_TEST_TMP/build.log"
	echo "0 passed, 1 failed"; exit 1
fi

t_section "unit suites (libcheck)"
for u in build/tests/check_*; do
	[ -x "$u" ] || continue
	n=$(basename "$u")
	out=$(CK_DEFAULT_TIMEOUT=60 "$u" 2>&1); rc=$?
	echo "$out" | grep -E '^[0-9]+%: Checks' | sed "s/^/  $n: /"
	echo "$out" | grep -E ':(F|E):' | head -n 20 | sed 's/^/          | /'
	# one result line per libcheck test case
	checks=$(echo "$out" | sed -nE 's/^[0-9]+%: Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/p')
	set -- $checks
	if [ $# -eq 3 ]; then
		for ((i=0; i<$1-$2-$3; i++)); do echo "pass $n" >> "$T_RESULTS"; done
		for ((i=0; i<$2+$3; i++)); do echo "fail $n" >> "$T_RESULTS"; done
	fi
	[ $rc -eq 0 ] || [ $# -eq 3 ] || t_fail "$n crashed (exit $rc)"
done

for s in tests/*.sh; do
	n=$(basename "$s" .sh)
	[ "$n" = run ] && continue
	if [ -n "${VCFS_TESTS:-}" ] && ! echo " $VCFS_TESTS " | grep -q " $n "; then
		continue
	fi
	t_section "$n"
	timeout -k 10 900 bash "$s"
	rc=$?
	[ $rc -eq 0 ] || [ $rc -eq 1 ] || t_fail "$n: script ended with exit $rc"
done

t_section "lint"
t_run "no storage syscalls outside disk/" make -s lint

p=$(grep -c '^pass' "$T_RESULTS"); f=$(grep -c '^fail' "$T_RESULTS"); s=$(grep -c '^skip' "$T_RESULTS")
if [ "$f" -gt 0 ]; then
	echo; echo "failures:"; grep '^fail' "$T_RESULTS" | sed 's/^fail /  /'
fi
echo
if [ "$s" -gt 0 ]; then
	echo "$p passed, $f failed, $s skipped"
else
	echo "$p passed, $f failed"
fi
[ "$f" -eq 0 ]
