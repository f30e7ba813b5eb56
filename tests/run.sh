#!/usr/bin/env bash
# tests/run.sh - `make check`: everything, from a fresh Debian 12 machine.
#
# 1. installs what is missing (build dependencies and the real servers the
#    tests start: istgt, tgt, nfs-ganesha, ceph, qemu),
# 2. builds with warnings as errors,
# 3. runs the libcheck unit suites (each build/tests/check_* is one job) and
#    every tests/*.sh script (one job each; each starts and stops its own
#    servers) in VCFS_JOBS lanes at once (default 2), then the lint,
# 4. ends with the summary line "N passed, N failed".
# Set VCFS_TESTS="disk_file disk_iscsi" to run only some scripts (the unit
# suites always run); VCFS_JOBS=1 runs everything one after the other.
#
# Lanes.  A job's output (stdout and stderr) goes to a file of its own and is
# printed whole once the job and every job listed before it have ended, so
# the log reads in the same order whatever the lanes did: unit suites, then
# the scripts by name.  Each job records its checks in a results file of its
# own (T_RESULTS) and gets a VCFS_TEST_TMP of its own ($VCFS_TEST_TMP/NAME),
# so that files the scripts name under it (hosts/, log.*) cannot collide;
# the results are added up at the end, in that same order.  What else two
# scripts could share is named per process already: namespaces and veths
# carry $$ (hosts.sh, nfs.sh), the storage bridge and 10.250.0.x addresses
# live inside those namespaces, servers take free_port ports, tgtd a
# control socket no other tgtd uses, QEMU and agents run in the hosts'
# namespaces, and no script kills by name (pkill/killall).
#
# Scheduling: the longest pending job first (EST below, seconds measured
# on the 2-core machine; unknown jobs count 60), so that the
# long ones do not end up last on one lane.  JOB_CLASS limits what runs side
# by side: "vm" jobs (QEMU under TCG, CPU bound, migration and guest boot
# timing) run one at a time; an "alone" job runs with nothing beside it.
set -u
cd "$(dirname "$0")/.."
export VCFS_TOP=$PWD
export VCFS_TEST_TMP=${VCFS_TEST_TMP:-$(mktemp -d /var/tmp/vcfs-check.XXXXXX)}
export T_RESULTS=$VCFS_TEST_TMP/results
: > "$T_RESULTS"
. tests/lib/common.sh
LANES=${VCFS_JOBS:-2}
case $LANES in ''|*[!0-9]*|0) echo "VCFS_JOBS must be a number >= 1 (got '$LANES')"; exit 1 ;; esac

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

# Suites whose test cases are jobs of their own (CK_RUN_CASE), their cases
# being the tcase_create("NAME") calls of tests/unit/SUITE.c: check_fs's
# crash enumeration and big directories take 2 and 1.5 of its 3.5 minutes.
UNIT_SPLIT="check_fs"
# Wall time of each job (s; 2 lanes on the loaded 2-core machine), for the
# longest-first order only; a job not listed counts 60.
declare -A EST=(
	[fs_integrity]=440 [sanitizers]=400 [check_fs.crash]=280 [fuzz]=215
	[check_fs.big]=200 [cluster_iscsi]=155 [sim]=97 [fs_crash]=89
	[vm_storage_move]=86 [vm_cluster]=85 [vm_lifecycle]=62
)
job_class() {
	case $1 in
	vm_*) echo vm ;;
	*) echo any ;;
	esac
}

# run_unit PATH [CASE]: one libcheck suite, or only its test case CASE
# (CK_RUN_CASE); one result line per libcheck test.
run_unit() {
	local u=$1 c=${2:-} n what out rc checks
	n=$(basename "$u")
	what=$n${c:+ (case $c)}
	# (an empty CK_RUN_CASE runs no case at all: set it only for a case)
	out=$(env ${c:+CK_RUN_CASE="$c"} CK_DEFAULT_TIMEOUT=60 "$u" 2>&1); rc=$?
	echo "$out" | grep -E '^[0-9]+%: Checks' | sed "s/^/  $what: /"
	echo "$out" | grep -E ':(F|E):' | head -n 20 | sed 's/^/          | /'
	checks=$(echo "$out" | sed -nE 's/^[0-9]+%: Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/p')
	set -- $checks
	if [ $# -eq 3 ]; then
		for ((i=0; i<$1-$2-$3; i++)); do echo "pass $n" >> "$T_RESULTS"; done
		for ((i=0; i<$2+$3; i++)); do echo "fail $n" >> "$T_RESULTS"; done
	fi
	if [ $# -ne 3 ]; then
		t_fail "$what: no libcheck summary (exit $rc)"
		echo "$out" | tail -n 10 | sed 's/^/          | /'
	elif [ "$1" -eq 0 ]; then
		t_fail "$what: ran no checks"
	fi
}

# run_script PATH: one tests/*.sh script, bounded to 15 minutes.
run_script() {
	local s=$1 n rc
	n=$(basename "$s" .sh)
	VCFS_TEST_TMP=$VCFS_TEST_TMP/$n timeout -k 10 900 bash "$s"
	rc=$?
	[ $rc -eq 0 ] || [ $rc -eq 1 ] || t_fail "$n: script ended with exit $rc"
}

# The jobs, in the order their output is printed.
J=$VCFS_TEST_TMP/jobs
mkdir -p "$J"
names=()
declare -A JOB_CMD
for u in build/tests/check_*; do
	[ -x "$u" ] || continue
	n=$(basename "$u")
	if echo " $UNIT_SPLIT " | grep -q " $n "; then
		for c in $(sed -nE 's/.*tcase_create\("([A-Za-z0-9_-]+)"\).*/\1/p' "tests/unit/$n.c"); do
			names+=("$n.$c"); JOB_CMD[$n.$c]="run_unit $u $c"
		done
	else
		names+=("$n"); JOB_CMD[$n]="run_unit $u"
	fi
done
for s in tests/*.sh; do
	n=$(basename "$s" .sh)
	[ "$n" = run ] && continue
	if [ -n "${VCFS_TESTS:-}" ] && ! echo " $VCFS_TESTS " | grep -q " $n "; then
		continue
	fi
	names+=("$n"); JOB_CMD[$n]="run_script $s"
done

# pending, longest first (ties: listing order)
pending=($(for i in "${!names[@]}"; do
	echo "${EST[${names[$i]}]:-60} $i ${names[$i]}"
done | sort -k1,1nr -k2,2n | awk '{ print $3 }'))

declare -A PID_JOB JOB_T0 JOB_SECS RUNNING_CLASS
running=0 next_print=0 t_all=$EPOCHSECONDS

# may_start NAME: its class allows it beside what runs now
may_start() {
	local c
	c=$(job_class "$1")
	[ "${RUNNING_CLASS[alone]:-0}" -eq 0 ] || return 1
	[ "$c" = alone ] && { [ $running -eq 0 ]; return; }
	[ "$c" = vm ] && { [ "${RUNNING_CLASS[vm]:-0}" -eq 0 ]; return; }
	return 0
}

start_job() {
	local n=$1 c
	c=$(job_class "$n")
	(
		T_RESULTS=$J/$n.results
		: > "$T_RESULTS"
		t_section "$n"
		${JOB_CMD[$n]}
	) < /dev/null > "$J/$n.out" 2>&1 &
	PID_JOB[$!]=$n
	JOB_T0[$n]=$EPOCHSECONDS
	RUNNING_CLASS[$c]=$(( ${RUNNING_CLASS[$c]:-0} + 1 ))
	running=$((running + 1))
}

# print, in listing order, every finished job no earlier job is waiting for
flush_done() {
	while [ $next_print -lt ${#names[@]} ]; do
		local n=${names[$next_print]}
		[ -n "${JOB_SECS[$n]:-}" ] || return 0
		cat "$J/$n.out"
		cat "$J/$n.results" >> "$T_RESULTS"
		next_print=$((next_print + 1))
	done
}

# Interrupted: SIGTERM to every process under a running job (timeout passes
# it on to its script's process group; a script's EXIT trap cleans up).
descendants() { local c; for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done; }
stop_jobs() {
	local p
	for p in "${!PID_JOB[@]}"; do
		kill -TERM $(descendants "$p") 2>/dev/null
	done
	wait
	echo "interrupted"
	exit 130
}
trap stop_jobs INT TERM

while [ ${#pending[@]} -gt 0 ] || [ $running -gt 0 ]; do
	while [ $running -lt "$LANES" ] && [ ${#pending[@]} -gt 0 ]; do
		started=
		for i in "${!pending[@]}"; do
			if may_start "${pending[$i]}"; then
				started=${pending[$i]}
				unset 'pending[i]'; pending=("${pending[@]}")
				break
			fi
		done
		[ -n "$started" ] || break
		start_job "$started"
	done
	wait -n -p done_pid
	if [ -z "${done_pid:-}" ]; then
		t_fail "runner: lost track of its jobs (${!PID_JOB[*]})"; break
	fi
	n=${PID_JOB[$done_pid]:-}
	[ -n "$n" ] || continue
	unset "PID_JOB[$done_pid]"
	JOB_SECS[$n]=$((EPOCHSECONDS - ${JOB_T0[$n]}))
	c=$(job_class "$n")
	RUNNING_CLASS[$c]=$(( ${RUNNING_CLASS[$c]} - 1 ))
	running=$((running - 1))
	flush_done
done
flush_done

t_section "times ($LANES lanes, $((EPOCHSECONDS - t_all)) s for all jobs)"
for n in "${names[@]}"; do printf '  %-22s %4d s\n' "$n" "${JOB_SECS[$n]}"; done

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
