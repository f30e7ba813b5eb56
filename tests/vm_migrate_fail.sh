#!/usr/bin/env bash
# vm_migrate_fail.sh - vMotion when the process running it on the source
# dies inside the switch-over (test hook VCVM_TEST_DIE_AFTER, migrate.h).
# Two hosts (namespaces, tests/lib/hosts.sh) mount one vcfs datastore, each
# with its own vcvm-agent; the vMotion runs in direct mode (the CLI on the
# source is the migrating process) so that the hook kills only it:
#  - dies right after its shim released .vcvm.lock, before COMMIT: the
#    destination's agent sees the connection end, finds its incoming
#    migration completed and the lock free, takes it and runs the VM; the
#    stale source QEMU is stopped (the destination asks the source's agent);
#    exactly one QEMU, on the destination, which holds the lock; the guest
#    counter goes on;
#  - dies right after "completed", lock not released: the destination cannot
#    take the lock, kills its QEMU and asks the source's agent to resume its
#    orphaned QEMU; exactly one QEMU, on the source;
#  - stops (hangs) right after its release: the destination runs the VM
#    alone after 10 s of silence; its QEMU is then killed and the source
#    goes on: taking the lock back it finds the destination's name in the
#    lock file, so its copy is stale and is stopped, never resumed;
# and the disk holds every counter block with no gap (check_counter).
# TCG, 128 MiB guest.
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/hosts.sh"
. "$(dirname "$0")/lib/vmhosts.sh"
B=$VCFS_BUILD
CHECK=$B/tests/guest/check_counter
T=$VCFS_TEST_TMP/vmf
mkdir -p "$T"

if ! command -v qemu-system-x86_64 >/dev/null; then t_skip "vm migrate fail: no qemu-system-x86_64"; exit 0; fi
if [ ! -x "$B/vcvm-agent" ] || [ ! -x "$B/vcfs-fuse" ]; then t_skip "vm migrate fail: not built"; exit 0; fi

G=$(bash "$VCFS_TOP/tests/guest/build.sh" 2> "$T/guest-build.log") ||
	{ t_fail "guest build"; tail -n 5 "$T/guest-build.log"; exit 0; }

vm_hosts_setup "$T" 2G || { t_fail "VM hosts setup"; exit 0; }
# shellcheck disable=SC2046
direct() { local h=$1 die=$2; shift 2; host_exec "$h" env $(vm_henv "$h") VCVM_TEST_DIE_AFTER="$die" "$B/vcvm" "$@"; }

t_section "vm migrate fail: two hosts, one datastore"
if vm_host_start a && vm_host_start b; then t_pass "hosts a and b mounted the datastore"; else
	t_fail "hosts"; exit 0; fi
both_list() { vc a list && vc b list; }
t_run "both agents answer" wait_for 20 both_list
VM=f1
LOG=$DSP/$VM/serial.log
t_run "create $VM (128 MiB, 64 MiB disk)" vc a create "$VM" --datastore "$DSP" --memory 128 \
	--disk-size 64M --kernel "$G/vmlinuz" --initrd "$G/initrd.img" --append "console=ttyS0 panic=-1 quiet"
t_run "register it on b" vc b register "$DSP/$VM"
# The log's last line may be one the guest is still writing ("counter 12" of
# "counter 1235"): the larger of the last two is the last complete one.
last_counter() {
	local n
	n=$(host_exec "$1" cat "$LOG" 2>/dev/null | tr -d '\r' | sed -n 's/^counter \([0-9][0-9]*\)$/\1/p' | tail -n 2 | sort -n | tail -n 1)
	echo "${n:--1}"
}
counter_at_least() { [ "$(last_counter "$1")" -ge "$2" ]; }
running_on() { vc "$1" status --json "$VM" 2>/dev/null | grep -q '"state": "running"'; }
live_qemus() {	# live QEMUs of the VM on both hosts
	cat "$T"/a/run/*/qemu.pid "$T"/b/run/*/qemu.pid 2>/dev/null | while read -r p; do
		kill -0 "$p" 2>/dev/null && echo "$p"; done | wc -l
}
once_on() { running_on "$1" && ! running_on "$2" && [ "$(live_qemus)" -eq 1 ]; }
lock_host() {	# the host in .vcvm.lock's lock record, read on host $1
	nsenter -t "${HOST_PID[$1]}" -m -u -n "$B/vcfs" locks --json "$DSP/$VM/.vcvm.lock" |
		sed -n 's/.*"host": *"\([^"]*\)".*/\1/p' | head -n 1
}
lock_is() { [ "$(lock_host "$1")" = "$2" ]; }
t_run "start on a" vc a start "$VM"
t_run "guest writer runs on a" wait_for 120 counter_at_least a 5

t_section "vm migrate fail: the source dies after releasing the lock, before COMMIT"
n1=$(last_counter a)
direct a lock-released migrate "$VM" --to b > "$T/die1.out" 2>&1; rc=$?
if [ $rc -eq 99 ] && grep -q "VCVM_TEST_DIE_AFTER=lock-released" "$T"/a/run/*/events.log; then
	t_pass "the migrating process died at the hook (exit 99)"
else t_fail "hook: exit $rc: $(tail -n 2 "$T/die1.out")"; fi
t_run "the VM runs exactly once, on b (b's agent finished the vMotion alone)" wait_for 60 once_on b a
t_run "b holds .vcvm.lock (lock record)" wait_for 10 lock_is b b
t_run "the guest counter goes on on b" wait_for 60 counter_at_least b $((n1 + 10))
t_run "a's stale QEMU was stopped: its exit record says migrated to b" \
	wait_for 30 sh -c "grep -q 'migrated to b' $T/a/run/*/exit.json"
ev=$(cat "$T"/a/run/*/events.log "$T"/b/run/*/events.log | sort -n)
ts() { echo "$ev" | awk -v h="$1" -v p="$2" '$2 == h && index($0, p) { t = $1 } END { print t "" }'; }
r1=$(ts a "guard released (close"); k1=$(ts b "guard taken (open"); g1=$(ts b "cont (source lost")
if [ -n "$r1" ] && [ -n "$k1" ] && [ -n "$g1" ] && [ "$r1" -lt "$k1" ] && [ "$k1" -le "$g1" ]; then
	t_pass "order: a released ($r1) < b took the lock (+$((k1 - r1)) us) <= b cont (+$((g1 - k1)) us)"
else t_fail "order: released $r1 taken $k1 cont $g1"; echo "$ev" | tail -n 12; fi

t_section "vm migrate fail: the source dies after completed, still holding the lock"
n2=$(last_counter b)
direct b completed migrate "$VM" --to a > "$T/die2.out" 2>&1; rc=$?
if [ $rc -eq 99 ]; then t_pass "the migrating process died at the hook (exit 99)"
else t_fail "hook: exit $rc: $(tail -n 2 "$T/die2.out")"; fi
t_run "the VM runs exactly once, on b again (a could not take the lock, b's agent resumed it)" \
	wait_for 90 once_on b a
t_run "b still holds .vcvm.lock" lock_is b b
t_run "the guest counter goes on on b" wait_for 60 counter_at_least b $((n2 + 10))
t_run "a's agent logged why it killed its incoming QEMU" grep -q "its lock still held" \
	<(cat "$T"/a/run/*/events.log)

t_section "vm migrate fail: the source hangs after its release; the destination runs, dies"
# b's vMotion process stops itself after releasing the lock; a, its incoming
# migration completed and no COMMIT for 10 s, takes the lock and runs the VM;
# then a's QEMU is killed (the lock is free again) and b's process goes on:
# its COMMIT fails, and taking the lock back it finds that a held it since
# its release, so its copy is stale: it must stop it, not resume it
# shellcheck disable=SC2046
host_exec b env $(vm_henv b) VCVM_TEST_DIE_AFTER=lock-released:stop "$B/vcvm" migrate "$VM" --to a \
	> "$T/stop3.out" 2>&1 & mp=$!
stopped_hook() { grep -q "lock-released:stop: stopping" "$T"/b/run/*/events.log; }
ran_alone() { grep -q "cont (source silent" "$T"/a/run/*/events.log; }
t_run "b's vMotion process stopped itself after its release" wait_for 90 stopped_hook
t_run "a finished the vMotion alone after 10 s of silence, holding the lock" wait_for 60 ran_alone
t_run "the VM runs on a" wait_for 10 running_on a
t_run "a holds .vcvm.lock" lock_is a a
kill_qemus a
crashed_on_a() { vc a status "$VM" | grep -q 'state: *crashed'; }
t_run "a's QEMU killed: crashed on a" wait_for 20 crashed_on_a
mpid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$T"/b/run/*/migrate.json)
kill -CONT "$mpid" 2>/dev/null
wait $mp; rc=$?
if [ $rc -ne 0 ] && grep -q "stale" "$T/stop3.out"; then
	t_pass "b's vMotion fails: its copy is stale (a held the lock since), it was stopped"
else t_fail "stale: exit $rc: $(tail -n 2 "$T/stop3.out")"; fi
echo "  b said: $(tail -n 1 "$T/stop3.out")"
t_run "no QEMU of the VM runs anywhere (none resumed stale memory)" wait_for 20 \
	sh -c "[ \$(cat $T/a/run/*/qemu.pid $T/b/run/*/qemu.pid 2>/dev/null | while read -r p; do
		kill -0 \$p 2>/dev/null && echo \$p; done | wc -l) -eq 0 ]"
n3=$(last_counter a)
t_run "disk: blocks 0..$n3 are \"counter i\": no gap, no lost write" \
	host_exec a "$CHECK" "$DSP/$VM/disk0.raw" "$n3"
t_run "started again on b, the writer goes on from the disk" vc b start "$VM"
t_run "the counter goes on on b" wait_for 120 counter_at_least b $((n3 + 5))
t_run "stop on b" vc b stop "$VM"
n4=$(last_counter b)
t_run "disk: blocks 0..$n4, no gap" host_exec b "$CHECK" "$DSP/$VM/disk0.raw" "$n4"
