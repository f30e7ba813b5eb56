# tests/lib/common.sh - shared shell test harness (sourced).
#
# Every test script sources this, calls t_pass/t_fail/t_skip per case, and the
# runner (tests/run.sh) adds the counts up and prints "N passed, N failed".
# Servers that tests start register a cleanup with t_cleanup_push so that
# nothing is left running, even when a test fails half way.
#
# tests/run.sh runs scripts two at a time (VCFS_JOBS), each with a
# VCFS_TEST_TMP and a T_RESULTS of its own.  A script must therefore name
# whatever is machine-wide after itself: namespaces and links with $$, ports
# from free_port, /tmp files with $$; and it must never kill by name
# (pkill, killall) or clean up anything it did not start.

VCFS_TOP=${VCFS_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# the build the scripts test (tests/sanitizers.sh points it at build-asan/)
VCFS_BUILD=${VCFS_BUILD:-$VCFS_TOP/build}
VCFS_TEST_TMP=${VCFS_TEST_TMP:-/tmp/vcfs-test.$$}
mkdir -p "$VCFS_TEST_TMP"
# results file shared with the runner: one line per case, "pass|fail|skip name"
T_RESULTS=${T_RESULTS:-$VCFS_TEST_TMP/results}

t_pass() { echo "  ok      $*"; echo "pass $*" >> "$T_RESULTS"; }
t_fail() { echo "  FAILED  $*"; echo "fail $*" >> "$T_RESULTS"; }
t_skip() { echo "  skip    $*"; echo "skip $*" >> "$T_RESULTS"; }
t_section() { echo; echo "== $*"; }

# t_run NAME CMD...: run CMD, pass if it exits 0; its output goes to a log
# that is printed (tail) on failure.
t_run() {
	local name=$1; shift
	local log="$VCFS_TEST_TMP/log.$(echo "$name" | tr -c 'A-Za-z0-9_.-' _)"
	if "$@" > "$log" 2>&1; then
		t_pass "$name"
	else
		t_fail "$name (exit $?; log $log)"
		tail -n 30 "$log" | sed 's/^/          | /'
	fi
}

# t_expect_fail NAME PATTERN CMD...: CMD must exit non-zero within its own
# bound and print PATTERN (extended regexp) on stdout/stderr.
t_expect_fail() {
	local name=$1 pat=$2; shift 2
	local out rc
	out=$("$@" 2>&1); rc=$?
	if [ $rc -ne 0 ] && echo "$out" | grep -Eqi -- "$pat"; then
		t_pass "$name"
	else
		t_fail "$name (exit $rc, wanted /$pat/): $(echo "$out" | tail -n 3 | tr '\n' ' ')"
	fi
}

# Cleanups run last-in first-out at exit.
T_CLEANUPS=()
t_cleanup_push() { T_CLEANUPS+=("$*"); }
t_cleanup_run() {
	local i
	for ((i=${#T_CLEANUPS[@]}-1; i>=0; i--)); do
		eval "${T_CLEANUPS[$i]}" >/dev/null 2>&1 || true
	done
	T_CLEANUPS=()
}

# need_pkgs PKG...: install the Debian packages that are missing.
need_pkgs() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
		apt-get update -qq >/dev/null 2>&1
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

# free_port: a TCP port nobody listens on (loopback).
free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 30000))
		ss -ltnH "sport = :$p" 2>/dev/null | grep -q . || { echo $p; return 0; }
	done
	return 1
}

# wait_for SECONDS CMD...: poll CMD until it succeeds or time runs out.
wait_for() {
	local t=$1; shift
	local end=$((SECONDS + t))
	while [ $SECONDS -lt $end ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

trap 't_cleanup_run' EXIT
