#!/usr/bin/env bash
# cluster_locks.sh - cluster-wide byte-range locks between hosts that share
# only the datastore image (tests/lib/hosts.sh: each host its own namespaces
# and vcfs-fuse daemon).  fcntl POSIX and OFD locks and flock, F_GETLK
# reporting (a holder on another host shows pid 0), F_SETLKW waiting, locks
# dropped when the process dies, when the host unmounts and when it crashes,
# and QEMU's own image locking (OFD locks on bytes 100+/200+) refusing a
# second writer on another host.  Lock requests go through
# build/tests/rlock_tool (tests/disk/rlock_tool.c).
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/hosts.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/clocks
mkdir -p "$T"
img=$T/ds.img
RL=$B/tests/rlock_tool
if [ ! -x "$B/vcfs-fuse" ] || [ ! -x "$RL" ]; then
	t_skip "cluster lock tests (vcfs-fuse or rlock_tool not built)"; exit 0
fi
rm -f "$img"; truncate -s 1G "$img"
t_cleanup_push "rm -f '$img'"
# T = 200 ms: dead after 1.4 s, so a crashed host's locks go quickly
"$B/mkfs.vcfs" -q -H 8 -T 200 "$img" || { t_fail "mkfs"; exit 0; }
m() { host_mnt "$1"; }
ok=1
host_start ha "$img" || ok=0
host_start hb "$img" || ok=0
if [ $ok = 1 ]; then t_pass "two hosts mounted one image"; else t_fail "two hosts mount"; exit 0; fi
t_cleanup_push "hosts_stop_all"

# both hosts open f at once (one of them for writing): a multi-writer file,
# else the second open fails with EBUSY before any byte-range lock matters
if ! host_exec ha sh -c "head -c 1M /dev/zero > $(m ha)/f &&
		setfattr -n user.vcfs.multiwriter -v 1 $(m ha)/f" > "$T/mw.log" 2>&1; then
	t_fail "cannot make f a multi-writer file (user.vcfs.multiwriter): $(cat "$T/mw.log")"
	exit 0
fi
sleep 1.2	# attribute cache: hb sees the new name

# bg NAME HOST ARGS...: rlock_tool in the background on HOST, output in $T/NAME
# ($! is rlock_tool itself: nsenter execs it, so killing $! kills the locker)
bg() {
	local n=$1 h=$2; shift 2
	nsenter -t "${HOST_PID[$h]}" -m -u -n -- "$RL" "$@" > "$T/$n" 2>&1 &
	eval "PID_$n=$!"
	t_cleanup_push "kill -9 $! 2>/dev/null"
}
# until_out NAME TEXT: wait (30 s) until $T/NAME holds TEXT
until_out() { wait_for 30 grep -q -- "$2" "$T/$1"; }
onb() { host_exec hb "$RL" "$@"; }

t_section "fcntl POSIX locks across hosts"
bg pa ha "$(m ha)/f" posix:w:0:0 echo:held pause
until_out pa held || t_fail "host a could not take a POSIX write lock: $(cat "$T/pa")"
t_expect_fail "F_SETLK read lock on b while a holds a write lock: EAGAIN" "^busy" \
	onb -r "$(m hb)/f" posix:r:0:10
t_run "F_GETLK on b reports a's write lock, whole file, pid 0 (another host)" sh -c "
	out=\$(nsenter -t ${HOST_PID[hb]} -m -u -n '$RL' -r '$(m hb)/f' get:posix:r:0:10); echo \$out;
	[ \"\$out\" = 'locked w 0 0 pid 0' ]"
t_run "F_GETLK on a (same host, other process) reports the holder's pid" sh -c "
	out=\$(nsenter -t ${HOST_PID[ha]} -m -u -n '$RL' '$(m ha)/f' get:posix:w:5:1); echo \$out;
	[ \"\$out\" = 'locked w 0 0 pid $PID_pa' ]"
kill -9 "$PID_pa"; wait "$PID_pa" 2>/dev/null
t_run "a's process killed: b takes the write lock at once" \
	wait_for 10 host_exec hb "$RL" "$(m hb)/f" posix:w:0:0

t_section "shared and ranged locks"
bg ra ha "$(m ha)/f" posix:r:0:100 posix:w:4096:4096 echo:held pause
until_out ra held
t_run "read locks coexist across hosts" onb -r "$(m hb)/f" posix:r:0:100
t_run "a disjoint range is free on b" onb "$(m hb)/f" posix:w:100:3996 posix:w:8192:0
t_expect_fail "an overlapping write range is refused on b" "^busy" onb "$(m hb)/f" posix:w:8000:200
kill -9 "$PID_ra"; wait "$PID_ra" 2>/dev/null

t_section "F_SETLKW waits for the other host"
bg wa ha "$(m ha)/f" posix:w:0:0 echo:held sleep:4 posix:u:0:0 echo:unlocked pause
until_out wa held
bg wb hb "$(m hb)/f" echo:waiting wait:posix:w:0:0 echo:granted
until_out wb waiting
sleep 2
t_run "b's F_SETLKW is still waiting while a holds the lock" sh -c "
	kill -0 $PID_wb && ! grep -q granted '$T/wb' && ! grep -q unlocked '$T/wa'"
t_run "b's F_SETLKW is granted once a unlocks" until_out wb granted
kill -9 "$PID_wa" "$PID_wb" 2>/dev/null; wait "$PID_wa" "$PID_wb" 2>/dev/null
bg wc ha "$(m ha)/f" posix:w:0:0 echo:held pause
until_out wc held
bg wd hb "$(m hb)/f" echo:waiting wait:posix:w:0:0 echo:granted
until_out wd waiting
sleep 1
kill -9 "$PID_wd"; wait "$PID_wd" 2>/dev/null
kill -9 "$PID_wc"; wait "$PID_wc" 2>/dev/null
t_run "a waiter killed while it waits leaves no lock behind (a relocks)" \
	wait_for 10 host_exec ha "$RL" "$(m ha)/f" posix:w:0:0

t_section "OFD locks and flock"
bg oa ha "$(m ha)/f" ofd:w:100:1 flock:w echo:held pause
until_out oa held
t_expect_fail "F_OFD_SETLK on b of a byte a holds: EAGAIN" "^busy" onb -r "$(m hb)/f" ofd:r:100:1
t_run "F_OFD_GETLK on b reports it (OFD: pid -1)" sh -c "
	out=\$(nsenter -t ${HOST_PID[hb]} -m -u -n '$RL' -r '$(m hb)/f' get:ofd:w:90:20); echo \$out;
	[ \"\$out\" = 'locked w 100 1 pid -1' ]"
t_run "vcfs locks PATH on b lists a's OFD write lock on byte 100 and its flock" sh -c "
	nsenter -t ${HOST_PID[hb]} -m '$B/vcfs' locks $(m hb)/f > '$T/locks.out' 2>&1; cat '$T/locks.out';
	grep -q 'byte-range lock: fcntl write 100-100, slot [0-9]*, host ha, pid $PID_oa\$' '$T/locks.out' &&
	grep -q 'byte-range lock: flock write 0-EOF, slot [0-9]*, host ha' '$T/locks.out'"
t_run "the next byte is free for an OFD lock on b" onb -r "$(m hb)/f" ofd:r:101:1
t_expect_fail "POSIX and OFD locks conflict across hosts" "^busy" onb -r "$(m hb)/f" posix:r:0:0
t_expect_fail "flock exclusive on b while a holds flock: EWOULDBLOCK" "^busy" onb -r "$(m hb)/f" flock:r
kill -9 "$PID_oa"; wait "$PID_oa" 2>/dev/null
t_run "a's OFD lock and flock are gone after its last close" \
	wait_for 10 host_exec hb "$RL" "$(m hb)/f" ofd:w:100:1 flock:w

t_section "host crash and unmount"
bg ka ha "$(m ha)/f" ofd:w:0:0 echo:held pause
until_out ka held
t_expect_fail "b is refused while a is alive" "^busy" onb "$(m hb)/f" ofd:w:0:1
host_kill ha
kill -9 "$PID_ka" 2>/dev/null; wait "$PID_ka" 2>/dev/null
t_run "a killed (-9): b gets the lock after a's recovery" \
	wait_for 60 host_exec hb "$RL" "$(m hb)/f" ofd:w:0:0
host_start ha2 "$img" || t_fail "host a2 mount"
bg ua ha2 -r "$(m ha2)/f" ofd:r:0:0 posix:r:0:0 echo:held pause
until_out ua held
t_expect_fail "b is refused while a2 holds read locks" "^busy" onb "$(m hb)/f" ofd:w:0:1
kill -TERM "${HOST_PID[ha2]}"
wait "${HOST_PID[ha2]}" 2>/dev/null
kill -9 "$PID_ua" 2>/dev/null; wait "$PID_ua" 2>/dev/null
t_run "a2 unmounted (SIGTERM) with the file still open: b gets the lock at once" \
	host_exec hb "$RL" "$(m hb)/f" ofd:w:0:0 ofd:u:0:0 posix:w:0:0

host_start hro "$img" ro || t_fail "read-only mount"
t_expect_fail "a read-only mount (no heartbeat slot) holds no locks: ENOLCK" "No locks available" \
	host_exec hro "$RL" -r "$(m hro)/f" posix:r:0:0
host_stop hro

t_section "QEMU image locking across hosts"
host_start ha3 "$img" || t_fail "host a3 mount"
if ! command -v qemu-io > /dev/null; then
	t_skip "QEMU image locking (qemu-io not installed)"
elif ! host_exec ha3 sh -c "head -c 16M /dev/zero > $(m ha3)/vm.raw &&
		setfattr -n user.vcfs.multiwriter -v 1 $(m ha3)/vm.raw" > "$T/mw.log" 2>&1; then
	t_fail "QEMU image locking: cannot make vm.raw a multi-writer file: $(cat "$T/mw.log")"
else
	sleep 1.2
	# a VM's disk: virtio-blk takes "write" and does not share it (QEMU
	# locks byte 201), paused (-S) before any guest code runs
	nsenter -t "${HOST_PID[ha3]}" -m -u -n -- sh -c "exec qemu-system-x86_64 -S -display none -nodefaults -machine q35 \
		-blockdev driver=file,filename=$(m ha3)/vm.raw,node-name=f0,locking=on \
		-device virtio-blk-pci,drive=f0" > "$T/qa" 2>&1 &
	qa=$!
	t_cleanup_push "kill -9 $qa 2>/dev/null"
	# QEMU holds its locks once the image is open: byte 201 ("write" not shared)
	wait_for 30 sh -c "nsenter -t ${HOST_PID[hb]} -m -u -n '$RL' -r '$(m hb)/vm.raw' \
		get:ofd:w:200:10 | grep -q '^locked'" ||
		t_fail "QEMU on a3 never took its image locks: $(cat "$T/qa")"
	t_expect_fail "qemu-io write on b while a's QEMU has the image: refused by QEMU's lock" \
		'Failed to get "write" lock' \
		host_exec hb qemu-io -f raw -c 'write 0 4k' "$(m hb)/vm.raw"
	t_run "qemu-img info on b works while a has it (QEMU shares reads)" \
		host_exec hb qemu-img info "$(m hb)/vm.raw"
	t_run "qemu-img info -U on b works while a has it" \
		host_exec hb qemu-img info -U "$(m hb)/vm.raw"
	kill -TERM "$qa" 2>/dev/null; wait "$qa" 2>/dev/null
	t_run "qemu-io write on b succeeds once a's QEMU exited" \
		wait_for 20 host_exec hb qemu-io -f raw -c 'write 0 4k' "$(m hb)/vm.raw"
fi

hosts_stop_all
t_run "fsck after the lock tests: clean once the dead host is recovered" sh -c "
	'$B/fsck.vcfs' -y '$img' > '$T/fsck.1' 2>&1; rc=\$?; [ \$rc -le 1 ] &&
	'$B/fsck.vcfs' -n '$img'"
