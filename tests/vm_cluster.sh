#!/usr/bin/env bash
# vm_cluster.sh - VMs on a vcfs datastore shared by two hosts (network, mount
# and UTS namespaces, tests/lib/hosts.sh), each with its own vcvm-agent:
# the agent refuses clients without the cluster key and frames with a bad MAC
# or an old seq (a python client speaks the documented protocol); two hosts racing to start one VM: one runs it, the other's
# error names the winner; QEMU killed -> the VM starts on the other host;
# vMotion a -> b with the guest writer running (no gap, no lost write, only
# b runs it, b holds .vcvm.lock, the hand-over events in order); vMotion
# failures (destination QEMU killed, --cancel, link cut, CPU model refused)
# leave the VM running once on the source; vMotion back b -> a; host a's
# vcfs daemon killed while it runs the VM: b starts it once a is dead.  TCG, 128 MiB guests.
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/hosts.sh"
. "$(dirname "$0")/lib/vmhosts.sh"
B=$VCFS_BUILD
CHECK=$B/tests/guest/check_counter
T=$VCFS_TEST_TMP/vmc
mkdir -p "$T"

if ! command -v qemu-system-x86_64 >/dev/null; then t_skip "vm cluster: no qemu-system-x86_64"; exit 0; fi
if [ ! -x "$B/vcvm-agent" ] || [ ! -x "$B/vcfs-fuse" ]; then t_skip "vm cluster: not built"; exit 0; fi
command -v python3 >/dev/null || need_pkgs python3

G=$(bash "$VCFS_TOP/tests/guest/build.sh" 2> "$T/guest-build.log") ||
	{ t_fail "guest build"; tail -n 5 "$T/guest-build.log"; exit 0; }

vm_hosts_setup "$T" 2G || { t_fail "VM hosts setup"; exit 0; }
on() { local h=$1; shift; host_exec "$h" "$@"; }

t_section "vm cluster: two hosts, one datastore, an agent each"
if vm_host_start a && vm_host_start b; then t_pass "hosts a and b mounted the datastore"; else
	t_fail "hosts"; exit 0; fi
both_list() { vc a list && vc b list; }
t_run "both agents answer an authenticated list" wait_for 20 both_list

t_section "vm cluster: authentication"
"$B/vcvm" keygen "$T/other.key" > /dev/null
t_expect_fail "a client with another key is refused" "authentication failed" \
	host_exec a env VCVM_KEY_FILE="$T/other.key" VCVM_HOSTS_FILE="$HF" "$B/vcvm" --host a list
cp "$KEY" "$T/loose.key"; chmod 644 "$T/loose.key"
t_expect_fail "a key file readable by others is refused, naming its mode" "mode 0644" \
	host_exec a env VCVM_KEY_FILE="$T/loose.key" "$B/vcvm" --host a list
cat > "$T/rogue.py" <<'EOF'
# rogue.py KEYFILE ADDR PORT MODE: a client that authenticates correctly and
# then breaks the frame rules (MODE badmac | replay | noauth); prints what the
# agent did: "closed" (no answer) or "answered".
import hmac, hashlib, json, os, socket, struct, sys
key = bytes.fromhex(open(sys.argv[1]).read().strip())
s = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=10)
def send(o):
    b = json.dumps(o).encode(); s.sendall(struct.pack(">I", len(b)) + b)
def recv():
    h = b""
    while len(h) < 4:
        c = s.recv(4 - len(h))
        if not c: return None
        h += c
    n = struct.unpack(">I", h)[0]; b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: return None
        b += c
    return json.loads(b)
hello = recv(); na = bytes.fromhex(hello["hello"]["nonce"])
mode = sys.argv[4]
if mode == "noauth":
    send({"type": "list", "seq": 1, "vm": "", "args": {}, "mac": "00" * 32})
    print("closed" if recv() is None else "answered"); sys.exit(0)
nc = os.urandom(32)
send({"auth": {"nonce": nc.hex(), "mac": hmac.new(key, b"vcvm-c" + na + nc, hashlib.sha256).hexdigest()}})
assert "auth_ok" in recv()
ks = hmac.new(key, b"vcvm-s" + na + nc, hashlib.sha256).digest()
def frame(seq, o, good=True):
    rest = {k: v for k, v in o.items() if k not in ("seq", "type", "mac")}
    canon = json.dumps(rest, sort_keys=True, separators=(",", ":"))
    m = hmac.new(ks, ("%d\n%s\n%s" % (seq, o.get("type", ""), canon)).encode(), hashlib.sha256).hexdigest()
    f = dict(o); f["seq"] = seq; f["mac"] = m if good else "00" * 32; return f
req = {"type": "ping", "vm": "", "args": {}}
send(frame(1, req)); r = recv(); assert r and r["rc"] == 0, r
if mode == "ok":
    send(frame(2, req))
elif mode == "badmac":
    send(frame(2, req, good=False))
elif mode == "replay":
    send(frame(1, req))
print("closed" if recv() is None else "answered")
EOF
rogue() { host_exec a python3 "$T/rogue.py" "$KEY" "${IP[a]}" 9077 "$1" 2>&1; }
rogue_is() { rogue "$1" | grep -qx "$2"; }
t_run "a correct python client gets answers (protocol as documented)" rogue_is ok answered
t_run "a request before authentication: closed without an answer" rogue_is noauth closed
t_run "a frame with a bad MAC: closed without an answer" rogue_is badmac closed
t_run "a replayed seq: closed without an answer" rogue_is replay closed
t_run "the agent logged the refused client" grep -q "refused.*another cluster key" "$T/a/agent.log"

t_section "vm cluster: one VM, two hosts racing to start it"
VM=v1
t_run "create $VM on the datastore (128 MiB, 64 MiB disk) through a's agent" \
	vc a create "$VM" --datastore "$DSP" --memory 128 --disk-size 64M \
	--kernel "$G/vmlinuz" --initrd "$G/initrd.img" --append "console=ttyS0 panic=-1 quiet"
t_run "register it on b" vc b register "$DSP/$VM"
LOG=$DSP/$VM/serial.log
# The log's last line may be one the guest is still writing ("counter 12" of
# "counter 1235"): the larger of the last two is the last complete one.
last_counter() {	# last counter on the serial log, read on host $1
	local n
	n=$(on "$1" cat "$LOG" 2>/dev/null | tr -d '\r' | sed -n 's/^counter \([0-9][0-9]*\)$/\1/p' | tail -n 2 | sort -n | tail -n 1)
	echo "${n:--1}"
}
counter_at_least() { [ "$(last_counter "$1")" -ge "$2" ]; }
running_on() { vc "$1" status --json "$VM" 2>/dev/null | grep -q '"state": "running"'; }
qemu_pid() { vc "$1" status --json "$VM" 2>/dev/null | sed -n 's/.*"pid": \([0-9]*\).*/\1/p'; }

vc a start "$VM" > "$T/race.a" 2>&1 & ra=$!
vc b start "$VM" > "$T/race.b" 2>&1 & rb=$!
wait $ra; ea=$?; wait $rb; eb=$?
if [ $ea -eq 0 ] && [ $eb -ne 0 ]; then W=a L=b; elif [ $eb -eq 0 ] && [ $ea -ne 0 ]; then W=b L=a; else W=; fi
if [ -n "$W" ]; then t_pass "race: exactly one start succeeded ($W)"; else
	t_fail "race: a exit $ea, b exit $eb: $(cat "$T/race.a" "$T/race.b" | tr '\n' ' ')"; W=a L=b; fi
t_run "race: the loser's error names the winner ($W)" grep -Eq "locked by host $W\b" "$T/race.$L"
echo "  loser said: $(cat "$T/race.$L")"
only_on() { running_on "$1" && ! running_on "$2"; }
t_run "race: the VM runs on $W only" only_on "$W" "$L"
t_run "guest writer runs on $W" wait_for 90 counter_at_least "$W" 5

t_section "vm cluster: QEMU killed, the VM starts on the other host"
n0=$(last_counter "$W")
kill -9 "$(qemu_pid "$W")"
crashed_on() { vc "$1" status "$VM" | grep -q 'state: *crashed'; }
t_run "status on $W: crashed" wait_for 10 crashed_on "$W"
t_run "start on $L after the crash (the lock went with QEMU)" wait_for 20 vc "$L" start "$VM"
t_run "writer resumes on $L" wait_for 90 counter_at_least "$L" $((n0 + 5))
SRC=$L DST=$W

t_section "vm cluster: vMotion $SRC -> $DST with the writer running"
n1=$(last_counter "$SRC")
t_run "migrate $SRC -> $DST" vc "$SRC" migrate "$VM" --to "$DST"
tail -q -n 1 "$VCFS_TEST_TMP"/log.migrate_${SRC}_-__${DST}* 2>/dev/null | sed 's/^/  /'
t_run "counter goes on on $DST" wait_for 60 counter_at_least "$DST" $((n1 + 10))
migrated() { only_on "$1" "$2" && vc "$2" status "$VM" | grep -q "migrated to $1"; }
t_run "only $DST runs it; $SRC says migrated" migrated "$DST" "$SRC"
t_run "$DST holds .vcvm.lock (lock record)" sh -c \
	"nsenter -t ${HOST_PID[$DST]} -m -u -n '$B/vcfs' locks --json '$DSP/$VM/.vcvm.lock' | grep -q '\"host\": *\"$DST\"'"
ev=$(cat "$T/$SRC"/run/*/events.log "$T/$DST"/run/*/events.log | sort -n)
ts() { echo "$ev" | awk -v h="$1" -v p="$2" '$2 == h && index($0, p) { t = $1 } END { print t "" }'; }
c1=$(ts "$SRC" "completed:"); r1=$(ts "$SRC" "guard released"); k1=$(ts "$DST" "guard taken"); g1=$(ts "$DST" "cont")
if [ -n "$c1" ] && [ -n "$g1" ] && [ "$c1" -le "$r1" ] && [ "$r1" -lt "$k1" ] && [ "$k1" -le "$g1" ]; then
	t_pass "hand-over order: $SRC inactive ($c1) <= released (+$((r1 - c1)) us) < $DST took it (+$((k1 - r1)) us) <= cont (+$((g1 - k1)) us)"
else
	t_fail "hand-over order: completed $c1 released $r1 taken $k1 cont $g1"; echo "$ev" | tail -n 12
fi

t_section "vm cluster: vMotion failures keep the VM on the source"
# slow the stream so there is time to break it
one_qemu() { [ "$(cat "$T"/a/run/*/qemu.pid "$T"/b/run/*/qemu.pid 2>/dev/null | while read -r p; do
	kill -0 "$p" 2>/dev/null && echo "$p"; done | wc -l)" -eq 1 ]; }
ready_count() { cat "$T/$1"/run/*/events.log 2>/dev/null | grep -c "incoming QEMU ready"; }
incoming_qemu() {	# pid of the incoming QEMU on host $1 once it listens (after $2 readies)
	[ "$(ready_count "$1")" -gt "$2" ] || return 1
	cat "$T/$1"/run/*/qemu.pid 2>/dev/null
}
S=$DST D=$SRC
n2=$(last_counter "$S")
rc0=$(ready_count "$D")
vc "$S" migrate "$VM" --to "$D" --max-bandwidth 2M > "$T/mig2.out" 2>&1 & mp=$!
if wait_for 30 incoming_qemu "$D" "$rc0"; then sleep 1; kill -9 "$(incoming_qemu "$D" "$rc0")"; fi
wait $mp; rc=$?
if [ $rc -ne 0 ] && grep -q "keeps running on $S" "$T/mig2.out"; then
	t_pass "destination QEMU killed mid-migration: migrate fails, VM keeps running on $S"
else t_fail "destination QEMU killed: exit $rc: $(tail -n 2 "$T/mig2.out")"; fi
once_on() { only_on "$1" "$2" && one_qemu; }
t_run "after the failed vMotion: running on $S, once" wait_for 15 once_on "$S" "$D"
t_run "counter goes on on $S" wait_for 60 counter_at_least "$S" $((n2 + 10))

rc0=$(ready_count "$D")
vc "$S" migrate "$VM" --to "$D" --max-bandwidth 2M > "$T/mig3.out" 2>&1 & mp=$!
wait_for 30 incoming_qemu "$D" "$rc0" && sleep 1
t_run "vcvm migrate --cancel" vc "$S" migrate "$VM" --cancel
wait $mp; rc=$?
if [ $rc -ne 0 ] && grep -q "cancelled" "$T/mig3.out"; then t_pass "cancelled vMotion fails, naming the cancel"
else t_fail "cancel: exit $rc: $(tail -n 2 "$T/mig3.out")"; fi
t_run "after the cancel: running on $S, once; the destination QEMU is gone" wait_for 15 once_on "$S" "$D"
n3=$(last_counter "$S")
t_run "counter goes on on $S" wait_for 60 counter_at_least "$S" $((n3 + 5))

rc0=$(ready_count "$D")
vc "$S" migrate "$VM" --to "$D" --max-bandwidth 2M > "$T/mig4.out" 2>&1 & mp=$!
wait_for 30 incoming_qemu "$D" "$rc0" && sleep 1
host_cut "$D"
t_cleanup_push "host_uncut $D"
wait $mp; rc=$?
host_uncut "$D"
if [ $rc -ne 0 ] && grep -Eq "no progress|hung up" "$T/mig4.out" && grep -q "keeps running on $S" "$T/mig4.out"; then
	t_pass "link to $D cut mid-migration: migrate fails (stall), VM keeps running on $S"
else t_fail "link cut: exit $rc: $(tail -n 2 "$T/mig4.out")"; fi
t_run "after the cut: running on $S, once ($D's agent killed its incoming QEMU)" wait_for 90 once_on "$S" "$D"
n3=$(last_counter "$S")
t_run "counter goes on on $S" wait_for 60 counter_at_least "$S" $((n3 + 5))

# the process running the vMotion on the source dies while QEMU waits paused
# at pre-switchover: the destination's agent drops its QEMU, and
# `migrate --cancel` resumes the source (it still holds the lock); deaths
# inside the switch-over itself: tests/vm_migrate_fail.sh
stalled() { local x; x=$(last_counter "$S"); sleep 3; [ "$(last_counter "$S")" = "$x" ]; }
rc0=$(ready_count "$D")
vc "$S" migrate "$VM" --to "$D" > "$T/mig5.out" 2>&1 & mp=$!
if wait_for 60 incoming_qemu "$D" "$rc0"; then
	mpid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$T/$S"/run/*/migrate.json)
	kill -STOP "$mpid"
	t_run "source agent's vMotion process stopped: the guest pauses at pre-switchover" \
		wait_for 90 stalled
	kill -9 "$mpid"
fi
wait $mp
# the destination's agent, which lost its source, kills its incoming QEMU and
# asks $S's agent to resume (MIGRATE_CANCEL) by itself; the user's --cancel
# does the same: whichever comes second finds nothing to do
cancel_or_resumed() {
	vc "$S" migrate "$VM" --cancel > "$T/cancel5.out" 2>&1 ||
		{ grep -q "no migration of $VM in progress" "$T/cancel5.out" && running_on "$S"; }
}
t_run "migrate --cancel resumes the orphaned source (or $D's agent did)" cancel_or_resumed
t_run "after the orphaned vMotion: running on $S, once" wait_for 90 once_on "$S" "$D"
n3=$(last_counter "$S")
t_run "counter goes on on $S" wait_for 60 counter_at_least "$S" $((n3 + 5))

nsenter -t "${HOST_PID[$D]}" -m -u -n -- env VCVM_HOST="$D" VCVM_RUN_DIR="$T/$D/run" \
	VCVM_STATE_DIR="$T/$D/state" VCVM_ACCEL=tcg "$B/vcvm-agent" --key "$KEY" --port 9078 \
	--cpu-models kvm64 > "$T/$D/agent2.log" 2>&1 &
t_cleanup_push "kill $!"
sleep 0.5
t_expect_fail "a destination without the VM's CPU model (qemu64) refuses it" \
	"does not offer CPU model \"qemu64\"" vc "$S" migrate "$VM" --to "${IP[$D]}:9078"
t_run "... and the VM runs on $S" running_on "$S"

t_section "vm cluster: vMotion back $S -> $D, then the disk"
n4=$(last_counter "$S")
t_run "migrate $S -> $D" vc "$S" migrate "$VM" --to "$D"
t_run "counter goes on on $D" wait_for 60 counter_at_least "$D" $((n4 + 10))
t_run "stop on $D" vc "$D" stop "$VM"
n5=$(last_counter "$D")
t_run "disk: blocks 0..$n5 are \"counter i\": no gap, no lost write over 2 crashes/starts and 2 vMotions" \
	on "$D" "$CHECK" "$DSP/$VM/disk0.raw" "$n5"
t_run "the lock is free after the stop: a starts it" vc a start "$VM"
t_run "writer runs on a" wait_for 90 counter_at_least a $((n5 + 5))

t_section "vm cluster: host a crashes while running the VM"
n6=$(last_counter a)
host_kill a		# vcfs-fuse killed -9: no heartbeat, no unmount
t_run "b starts the VM once a's heartbeat is dead (its lock went with it)" \
	wait_for 90 vc b start "$VM"
t_run "writer resumes on b" wait_for 90 counter_at_least b $((n6 + 5))
kill_qemus a		# the old QEMU could not write since a's mount died
t_run "stop on b" vc b stop "$VM"
n7=$(last_counter b)
t_run "disk after the host crash: blocks 0..$n7, no gap" on b "$CHECK" "$DSP/$VM/disk0.raw" "$n7"
