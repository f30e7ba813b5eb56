#!/usr/bin/env bash
# disk_iscsi.sh - the iscsi:// backend against real targets on 127.0.0.1:
#   istgt: executes COMPARE AND WRITE           -> cas mode "ats"
#   tgtd:  no COMPARE AND WRITE, persistent reservations and UNMAP
#                                               -> cas mode "ats+pr"
# the conformance suite (with a multi-process CAS counter) on both, the CAS
# mode and capabilities each reports, and the bad inputs: wrong LUN, wrong
# IQN, CHAP refused, nothing listening, a target that does not answer, a LUN
# below the minimum size.  Each failure must be clear and bounded in time.
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/iscsi.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/iscsi
mkdir -p "$T"

need_pkgs istgt tgt >/dev/null 2>&1
if ! command -v istgt >/dev/null || ! command -v tgtd >/dev/null; then
	t_skip "iscsi: istgt/tgt not installed"
	exit 0
fi

# expect_within NAME MAX_SECONDS PATTERN CMD...: CMD fails, prints PATTERN, and
# returns within MAX_SECONDS (a bound on the error path, not just a result).
expect_within() {
	local name=$1 max=$2 pat=$3; shift 3
	local out rc t0=$(date +%s%N) dt
	out=$(timeout $((max + 10)) "$@" 2>&1); rc=$?
	dt=$(( ($(date +%s%N) - t0) / 1000000 ))
	if [ $rc -ne 0 ] && echo "$out" | grep -Eqi -- "$pat" && [ $dt -le $((max * 1000)) ]; then
		t_pass "$name (${dt} ms)"
	else
		t_fail "$name (exit $rc, ${dt} ms, wanted /$pat/ within ${max} s): $(echo "$out" | tail -n 2 | tr '\n' ' ')"
	fi
}

probe_json() { "$B/vcfs" probe --json "$@" 2>/dev/null; }

# ---- istgt: ATS ----
if istgt_start "$T/istgt" 64; then
	t_pass "istgt: started ($ISTGT_URI)"
	t_run "istgt: conformance (4 processes CAS stress)" \
		"$B/tests/conformance" --stress 4 --iters 500 "$ISTGT_URI"
	t_run "istgt: probe reports cas mode ats, shared, safe" sh -c \
		"'$B/vcfs' probe --json '$ISTGT_URI' | grep -q '\"cas_mode\":\"ats\".*\"cas_shared\":true.*\"safe\":true'"
	base=iscsi://127.0.0.1:$ISTGT_PORT
	expect_within "istgt: wrong LUN" 10 "no such LUN" "$B/vcfs" probe "$base/$ISTGT_IQN/3"
	expect_within "istgt: wrong IQN" 10 "no target named" \
		"$B/vcfs" probe "$base/$ISCSI_TEST_IQN_BASE:nosuchdisk/0"
	# a target that stops answering: the login is bounded by the io timeout
	kill -STOP "$ISTGT_PID"
	expect_within "istgt: silent target (SIGSTOP), open bounded by the 1 s io timeout" 2 \
		"within the io timeout|timed out" "$B/vcfs" probe --timeout-ms 1000 "$ISTGT_URI"
	kill -CONT "$ISTGT_PID"
	t_run "istgt: answers again after SIGCONT" "$B/vcfs" probe "$ISTGT_URI"
	istgt_stop
else
	t_fail "istgt: did not start (see $T/istgt/istgt.log)"
fi

# ---- istgt with CHAP ----
if istgt_start "$T/chap" 8 vcfsuser chapsecret1234; then
	hostpart=${ISTGT_URI#iscsi://}
	expect_within "CHAP: wrong password refused" 10 "authentication refused" \
		"$B/vcfs" probe "iscsi://vcfsuser%wrongsecret99@$hostpart"
	expect_within "CHAP: no credentials refused" 10 "authentication refused" \
		"$B/vcfs" probe "$ISTGT_URI"
	# A refused login names the target, with the password replaced by ***:
	# error messages end up in logs and tickets.  Every tool that prints a
	# URI, not just probe.
	for cmd in "vcfs probe" "vcfs info" "fsck.vcfs -n" "mkfs.vcfs -n"; do
		out=$(timeout 20 "$B/${cmd%% *}" ${cmd#* } \
			"iscsi://vcfsuser%wrongsecret99@$hostpart" 2>&1); rc=$?
		if [ $rc -ne 0 ] && ! echo "$out" | grep -q wrongsecret99 &&
		   echo "$out" | grep -qF "iscsi://vcfsuser%***@$hostpart"; then
			t_pass "CHAP: $cmd with a wrong password prints it as ***"
		else
			t_fail "CHAP: $cmd with a wrong password (exit $rc) leaks it or names no target: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
		fi
	done
	t_run "CHAP: right password logs in" "$B/vcfs" probe "iscsi://vcfsuser%chapsecret1234@$hostpart"
	t_run "CHAP: the password never appears in the description" sh -c \
		"'$B/vcfs' probe --json 'iscsi://vcfsuser%chapsecret1234@$hostpart' | grep -q '\"target\":\"iscsi://127' && \
		 ! '$B/vcfs' probe --json 'iscsi://vcfsuser%chapsecret1234@$hostpart' | grep -q chapsecret"
	istgt_stop
else
	t_fail "istgt with CHAP: did not start (see $T/chap/istgt.log)"
fi

# ---- tgtd: ATS+PR, UNMAP ----
if tgtd_start "$T/tgtd" 64; then
	t_pass "tgtd: started ($TGTD_URI)"
	t_run "tgtd: conformance (4 processes CAS stress over persistent reservations)" \
		"$B/tests/conformance" --stress 4 --iters 300 "$TGTD_URI"
	t_run "tgtd: probe reports cas mode ats+pr, UNMAP, shared, safe" sh -c \
		"'$B/vcfs' probe --json '$TGTD_URI' | grep -q '\"cas_mode\":\"ats+pr\".*\"cas_shared\":true.*\"unmap\":true.*\"safe\":true'"
	base=iscsi://127.0.0.1:$TGTD_PORT
	expect_within "tgtd: wrong LUN" 10 "no such LUN" "$B/vcfs" probe "$base/$TGTD_IQN/7"
	expect_within "tgtd: wrong IQN" 10 "no target named" \
		"$B/vcfs" probe "$base/$ISCSI_TEST_IQN_BASE:nosuchtgt/1"
	# LUN 2: a 512 KiB image, below the 1 MiB minimum
	truncate -s 512K "$T/tgtd/small.img"
	if tgtd_adm --mode logicalunit --op new --tid 1 --lun 2 --backing-store "$T/tgtd/small.img"; then
		expect_within "tgtd: LUN below the minimum size" 10 "smaller than the minimum" \
			"$B/vcfs" probe "$base/$TGTD_IQN/2"
	else
		t_fail "tgtd: could not add the small LUN"
	fi
	tgtd_stop
else
	t_fail "tgtd: did not start (see $T/tgtd/tgtd.log)"
fi

# ---- nothing listening ----
port=$(free_port)
expect_within "nothing listening on the port" 2 "connection refused" \
	"$B/vcfs" probe --timeout-ms 1000 "iscsi://127.0.0.1:$port/$ISCSI_TEST_IQN_BASE:x/0"
