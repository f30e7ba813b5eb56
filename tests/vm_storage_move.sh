#!/usr/bin/env bash
# vm_storage_move.sh - Storage vMotion: `vcvm move-storage` moves the disk of a
# running TCG guest between two vcfs datastores (two images, each mounted by
# vcfs-fuse) while its writer writes block n = "counter n" (O_DIRECT|O_DSYNC):
# the counter goes on, vm.json names the new file, the old one is gone, holes
# stay holes; the move back; a cancel mid-copy (slow copy through a bandwidth
# limit) from another vcvm, by Ctrl-C, and after the mover was killed -9; a
# full and a missing target refused, a target that fills up during the copy,
# each with the VM still running; a guest writing as fast as it can still
# converges, with a second disk moving with the first; offline moves of the
# stopped VM, of one disk (--disk) and of the other.  At the end
# the disk is checked block by block: no gap, no lost acknowledged write.

# Private mount namespace (as fs_posix.sh): another test's namespace must not
# copy our FUSE mounts and keep their daemons alive after our unmount.
if [ -z "${VCFS_PRIVATE_MNTNS:-}" ]; then
	VCFS_PRIVATE_MNTNS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib/common.sh"
B=$VCFS_BUILD
V=${VCVM_BIN:-$B/vcvm}
CHECK=$B/tests/guest/check_counter
T=$VCFS_TEST_TMP/svm
mkdir -p "$T"

if ! command -v qemu-system-x86_64 >/dev/null; then
	t_skip "storage move: qemu-system-x86_64 is not installed"; exit 0
fi
if [ ! -x "$B/vcfs-fuse" ] || [ ! -x "$B/mkfs.vcfs" ] || [ ! -x "$V" ]; then
	t_skip "storage move: vcfs-fuse, mkfs.vcfs or vcvm not built"; exit 0
fi
need_pkgs attr python3 >/dev/null 2>&1

export VCVM_RUN_DIR=$T/run VCVM_STATE_DIR=$T/state VCVM_HOST=host-a
export VCVM_ACCEL=${VCVM_TEST_ACCEL:-tcg}

# ---- two datastores ----
gone() { case $(ps -o stat= -p "$1" 2>/dev/null) in ""|Z*) return 0;; esac; return 1; }
umount_ds() {
	local m=$1 pids p
	mountpoint -q "$m" || return 0
	pids=$(pgrep -f -- "vcfs-fuse .*$m\$")
	fusermount3 -u "$m" || umount -l "$m"
	for p in $pids; do wait_for 20 gone "$p"; done
}
for i in 1 2; do
	rm -f "$T/ds$i.img"; truncate -s 2G "$T/ds$i.img"
	"$B/mkfs.vcfs" -q -H 8 "$T/ds$i.img" || { t_fail "mkfs ds$i"; exit 0; }
	mkdir -p "$T/ds$i"
	"$B/vcfs-fuse" -o host=svm$i "$T/ds$i.img" "$T/ds$i" > "$T/fuse$i.log" 2>&1 &&
		wait_for 10 mountpoint -q "$T/ds$i" || { t_fail "mount ds$i"; tail -5 "$T/fuse$i.log"; exit 0; }
	t_cleanup_push "umount_ds '$T/ds$i'"
done
M1=$T/ds1 M2=$T/ds2
t_pass "two vcfs datastores mounted ($M1, $M2)"

if G=$(bash "$VCFS_TOP/tests/guest/build.sh" 2> "$T/guest-build.log"); then
	t_pass "test guest built ($G)"
else
	t_fail "guest build"; tail -n 20 "$T/guest-build.log" | sed 's/^/          | /'; exit 0
fi

VM=sm1
LOG=$M1/$VM/serial.log
SIZE=268435456
t_cleanup_push "'$V' move-storage $VM --cancel; '$V' stop --hard $VM"

# The log's last line may be one the guest is still writing ("counter 12" of
# "counter 1235"): the larger of the last two is the last complete one.
last_counter() {
	local n
	n=$(tr -d '\r' < "$LOG" 2>/dev/null | sed -n 's/^counter \([0-9][0-9]*\)$/\1/p' | tail -n 2 | sort -n | tail -n 1)
	echo "${n:--1}"
}
counter_at_least() { [ "$(last_counter)" -ge "$1" ]; }
# the counter keeps going: k more writes within s seconds
goes_on() { local n; n=$(last_counter); wait_for "$2" counter_at_least $((n + $1)); }
running() { "$V" status --json "$VM" 2>/dev/null | grep -q '"state": "running"'; }
disk_file() { sed -n 's/.*"file": "\([^"]*\)".*/\1/p' "$M1/$VM/vm.json" | head -n 1; }
alloc_kib() { du -k "$1" | cut -f1; }
# no gap and nothing lost: writer output matches the disk (VM stopped)
check_disk() { "$CHECK" "$1" "$(last_counter)"; }

t_section "svm: a guest on datastore 1"
t_run "create $VM on $M1 (256 MiB disk)" "$V" create "$VM" --datastore "$M1" --memory 128 \
	--disk-size 256M --kernel "$G/vmlinuz" --initrd "$G/initrd.img" \
	--append "console=ttyS0 panic=-1 quiet"
t_run "start" "$V" start "$VM"
wait_for 90 counter_at_least 20 || { t_fail "guest wrote no counter 20 in 90 s"; tail -5 "$LOG"; exit 0; }
t_pass "guest writes its counter (at $(last_counter))"

t_section "svm: move to datastore 2 while it writes"
n0=$(last_counter)
t_run "move-storage --to $M2" "$V" move-storage "$VM" --to "$M2"
t_run "vm.json names $M2/$VM/disk0.raw" sh -c "[ '$(disk_file)' = '$M2/$VM/disk0.raw' ]"
t_run "old file removed" sh -c "[ ! -e '$M1/$VM/disk0.raw' ]"
t_run "VM still running" running
t_run "counter goes on after the move (was $n0)" goes_on 20 60
k=$(alloc_kib "$M2/$VM/disk0.raw")
if [ "$k" -lt $((SIZE / 1024 / 10)) ]; then
	t_pass "target is sparse: $k KiB allocated of $((SIZE / 1024)) KiB"
else
	t_fail "target not sparse: $k KiB allocated of $((SIZE / 1024)) KiB"
fi
t_run "target carries user.vcfs.multiwriter=1" sh -c \
	"getfattr --only-values -n user.vcfs.multiwriter '$M2/$VM/disk0.raw' | grep -qx 1"
t_run "status shows the new disk path" sh -c "'$V' status $VM | grep -q 'disk0: *$M2/$VM/disk0.raw'"

t_section "svm: move back"
t_run "move-storage --to $M1 (its own folder)" "$V" move-storage "$VM" --to "$M1"
t_run "vm.json names disk0.raw in the folder again" sh -c "[ '$(disk_file)' = disk0.raw ]"
t_run "datastore 2 left empty (file and folder gone)" sh -c "[ ! -e '$M2/$VM' ]"
t_run "counter goes on after the move back" goes_on 20 60

t_section "svm: cancel mid-copy"
cp "$M1/$VM/vm.json" "$T/vm.json.before"
# ~100 blocks of 4 KiB per 10 s are data; at 16 KiB/s the copy takes a while
"$V" move-storage "$VM" --to "$M2" --max-bandwidth 16K > "$T/mv-cancel.out" 2>&1 &
mv_pid=$!
t_run "the move is under way (target created, copy running)" wait_for 30 \
	sh -c "[ -e '$M2/$VM/disk0.raw' ] && grep -q mirror '$T/mv-cancel.out'"
t_run "move-storage --cancel" "$V" move-storage "$VM" --cancel
wait $mv_pid; rc=$?
if [ $rc -eq 1 ] && grep -q "cancelled" "$T/mv-cancel.out"; then
	t_pass "the mover exits 1: cancelled"
else
	t_fail "mover: exit $rc: $(tail -n 2 "$T/mv-cancel.out" | tr '\n' ' ')"
fi
t_run "no partial target left" sh -c "[ ! -e '$M2/$VM/disk0.raw' ] && [ ! -e '$M2/$VM' ]"
t_run "vm.json unchanged" cmp "$T/vm.json.before" "$M1/$VM/vm.json"
t_run "VM still running on the old disk" sh -c \
	"'$V' status $VM | grep -q 'state: *running' && '$V' status $VM | grep -q 'disk0: *$M1/$VM/disk0.raw'"
t_run "counter goes on after the cancel" goes_on 10 60

t_section "svm: Ctrl-C of the mover cancels"
"$V" move-storage "$VM" --to "$M2" --max-bandwidth 16K > "$T/mv-int.out" 2>&1 &
mv_pid=$!
wait_for 30 sh -c "grep -q mirror '$T/mv-int.out'"
kill -INT $mv_pid; wait $mv_pid; rc=$?
if [ $rc -eq 1 ] && grep -q "cancelled" "$T/mv-int.out"; then
	t_pass "SIGINT: the mover cancels and exits 1"
else
	t_fail "SIGINT: exit $rc: $(tail -n 2 "$T/mv-int.out" | tr '\n' ' ')"
fi
t_run "no target left, vm.json unchanged, VM running" sh -c \
	"[ ! -e '$M2/$VM' ] && cmp '$T/vm.json.before' '$M1/$VM/vm.json' && '$V' status $VM | grep -q 'state: *running'"

t_section "svm: the mover killed -9, then --cancel cleans up"
"$V" move-storage "$VM" --to "$M2" --max-bandwidth 16K > "$T/mv-kill.out" 2>&1 &
mv_pid=$!
wait_for 30 sh -c "grep -q mirror '$T/mv-kill.out'"
kill -9 $mv_pid; wait $mv_pid 2>/dev/null
t_expect_fail "a new move is refused while the dead one is not cleaned up" "--cancel" \
	"$V" move-storage "$VM" --to "$M2"
t_run "--cancel after the mover died" sh -c "'$V' move-storage $VM --cancel | grep -q cancelled"
t_run "no target left, vm.json unchanged" sh -c \
	"[ ! -e '$M2/$VM' ] && cmp '$T/vm.json.before' '$M1/$VM/vm.json'"
t_run "VM runs on, counter goes on" goes_on 10 60

t_section "svm: full and missing targets"
mkdir -p "$T/full"
mount -t tmpfs -o size=1M tmpfs "$T/full" && t_cleanup_push "umount '$T/full'"
dd if=/dev/zero of="$T/full/fill" bs=64K status=none 2>/dev/null
t_expect_fail "a full target is refused, naming the free space" "free space|full" \
	"$V" move-storage "$VM" --to "$T/full"
t_expect_fail "a missing target is refused" "No such file.*mount the datastore" \
	"$V" move-storage "$VM" --to "$T/nonexistent"
t_expect_fail "a disk index out of range is refused" "has 1 disk" \
	"$V" move-storage "$VM" --to "$M2" --disk 3
# a target that fills up during the copy: a small third datastore, filled by
# someone else while the (slow) mirror runs; QEMU's write fails with ENOSPC
rm -f "$T/ds3.img"; truncate -s 96M "$T/ds3.img"; mkdir -p "$T/ds3"
if "$B/mkfs.vcfs" -q -H 2 "$T/ds3.img" && "$B/vcfs-fuse" -o host=svm3 "$T/ds3.img" "$T/ds3" \
	> "$T/fuse3.log" 2>&1 && wait_for 10 mountpoint -q "$T/ds3"; then
	t_cleanup_push "umount_ds '$T/ds3'"
	# The copy must still need a new 1 MiB block once the filler has taken the
	# space: the guest's counters (4 KiB each) must reach past the first MiB
	# of the disk, or every write of the copy lands in the block its first
	# write allocated and the move succeeds (seen in CI: 1 MiB copied)
	wait_for 120 counter_at_least 400 ||
		t_fail "the guest wrote no counter 400 in 120 s (at $(last_counter))"
	# 64 KiB/s: the first MiB of the copy takes ~16 s, the fill about a second
	"$V" move-storage "$VM" --to "$T/ds3" --max-bandwidth 64K > "$T/mv-full.out" 2>&1 &
	mv_pid=$!
	wait_for 30 test -e "$T/ds3/$VM/disk0.raw"
	dd if=/dev/zero bs=1M status=none 2>/dev/null | tr '\0' x | \
		dd of="$T/ds3/filler" bs=1M iflag=fullblock status=none 2>/dev/null
	wait $mv_pid; rc=$?
	if [ $rc -eq 1 ] && grep -qi "full" "$T/mv-full.out"; then
		t_pass "target filled during the copy: the move fails, saying the datastore is full"
	else
		t_fail "target filled during the copy: exit $rc: $(tail -n 2 "$T/mv-full.out" | tr '\n' ' ')"
	fi
	t_run "no partial target on the full datastore" sh -c "[ ! -e '$T/ds3/$VM' ]"
	rm -f "$T/ds3/filler"
else
	t_fail "third (small) datastore: mkfs or mount failed"
fi
t_run "VM still running, vm.json unchanged" sh -c \
	"'$V' status $VM | grep -q 'state: *running' && cmp '$T/vm.json.before' '$M1/$VM/vm.json'"
t_run "counter goes on" goes_on 10 60

t_section "svm: a guest writing as fast as it can"
t_run "stop" "$V" stop "$VM"
t_run "disk after the moves: every acknowledged write there, no gap" check_disk "$M1/$VM/disk0.raw"
# checked: start over on an empty disk, so that the backlog the slow copy
# below must work through stays small whatever the machine's load
truncate -s 0 "$M1/$VM/disk0.raw"; truncate -s $SIZE "$M1/$VM/disk0.raw"
sed -i 's/"append": "console=ttyS0 panic=-1 quiet"/"append": "console=ttyS0 panic=-1 quiet vcvm.interval=1"/' \
	"$M1/$VM/vm.json"
# a second disk, on SATA (the guest does not use it; QEMU's device naming
# differs from virtio's): 64 MiB, 256 KiB of data at 8 MiB and at 40 MiB, the
# rest holes
truncate -s 64M "$T/disk1.ref"
dd if=/dev/urandom of="$T/disk1.ref" bs=256K count=1 seek=32 conv=notrunc status=none
dd if=/dev/urandom of="$T/disk1.ref" bs=256K count=1 seek=160 conv=notrunc status=none
cp --sparse=always "$T/disk1.ref" "$M1/$VM/disk1.raw"
# and a third, qcow2 on SCSI: 32 MiB virtual, 64 KiB of data at 4 MiB (small:
# the copy below is held to a few KiB/s)
qemu-img create -q -f qcow2 "$M1/$VM/disk2.qcow2" 32M &&
	qemu-io -f qcow2 -c "write -P 0x5a 4M 64K" "$M1/$VM/disk2.qcow2" > /dev/null &&
	qemu-img convert -O raw "$M1/$VM/disk2.qcow2" "$T/disk2.ref" || t_fail "qcow2 disk made"
python3 - "$M1/$VM/vm.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
d = dict(c["disks"][0]); d["file"] = "disk1.raw"; d["bus"] = "sata"; c["disks"].append(d)
d = dict(c["disks"][0]); d["file"] = "disk2.qcow2"; d["bus"] = "scsi"; d["format"] = "qcow2"
c["disks"].append(d)
json.dump(c, open(p, "w"), indent=2)
PY
t_run "start with vcvm.interval=1 (a write every millisecond, or as fast as TCG allows)" \
	"$V" start "$VM"
wait_for 90 sh -c "tr -d '\r' < '$LOG' | grep -q 'every 1 ms'"
wait_for 60 counter_at_least 50
a=$(last_counter); sleep 3; b=$(last_counter)
echo "  guest write rate: $(( (b - a) / 3 )) blocks/s"
# The background copy is held below the guest's dirty rate (~4 KiB per write):
# a mirror that copied dirty blocks after the fact would chase them forever;
# write-blocking puts each new write on both sides, so only the backlog is left.
rate=$(( (b - a) / 3 * 4 / 2 ))
[ $rate -ge 16 ] || rate=16
t0=$SECONDS; c0=$(last_counter)
t_run "move-storage converges under continuous writes (copy limited to ${rate}K/s)" \
	timeout 200 "$V" move-storage "$VM" --to "$M2" --max-bandwidth ${rate}K
echo "  move under continuous writes: $((SECONDS - t0)) s, $(( $(last_counter) - c0 )) guest writes meanwhile"
t_run "counter goes on on datastore 2" goes_on 50 60
t_run "the three disks moved together (vm.json names them on $M2)" sh -c \
	"grep -q '\"file\": \"$M2/$VM/disk0.raw\"' '$M1/$VM/vm.json' && grep -q '\"file\": \"$M2/$VM/disk1.raw\"' '$M1/$VM/vm.json' && grep -q '\"file\": \"$M2/$VM/disk2.qcow2\"' '$M1/$VM/vm.json' && [ ! -e '$M1/$VM/disk1.raw' ] && [ ! -e '$M1/$VM/disk2.qcow2' ]"
t_run "stop" "$V" stop "$VM"
t_run "disk on datastore 2: no gap, no lost write" check_disk "$M2/$VM/disk0.raw"
t_run "second disk: same bytes, still sparse" sh -c \
	"cmp '$T/disk1.ref' '$M2/$VM/disk1.raw' && [ \$(du -k '$M2/$VM/disk1.raw' | cut -f1) -lt 16384 ]"
t_run "qcow2 disk moved live: still qcow2, same contents, its data allocated" sh -c \
	"qemu-img info '$M2/$VM/disk2.qcow2' | grep -q 'file format: qcow2' && qemu-img compare -q -f qcow2 -F raw '$M2/$VM/disk2.qcow2' '$T/disk2.ref' && [ \$(qemu-img map --output=json '$M2/$VM/disk2.qcow2' | grep -c '\"data\": true') -ge 1 ] && [ \$(du -k '$M2/$VM/disk2.qcow2' | cut -f1) -lt 4096 ]"

t_section "svm: offline move of the stopped VM"
t_run "move-storage --disk 1 of the stopped VM (copy of one disk)" sh -c \
	"'$V' move-storage $VM --disk 1 --to '$M1' | grep -q offline"
t_run "disk1 back in the folder, disk0 still on $M2" sh -c \
	"grep -q '\"file\": \"disk1.raw\"' '$M1/$VM/vm.json' && grep -q '\"file\": \"$M2/$VM/disk0.raw\"' '$M1/$VM/vm.json' && [ ! -e '$M2/$VM/disk1.raw' ] && cmp '$T/disk1.ref' '$M1/$VM/disk1.raw'"
t_run "move-storage of the stopped VM (the disk left)" sh -c \
	"'$V' move-storage $VM --to '$M1' | grep -q offline"
t_run "vm.json names disk0.raw, datastore 2 empty" sh -c \
	"[ '$(disk_file)' = disk0.raw ] && [ ! -e '$M2/$VM' ]"
t_run "qcow2 disk copied back offline, same contents" \
	qemu-img compare -q -f qcow2 -F raw "$M1/$VM/disk2.qcow2" "$T/disk2.ref"
t_run "copy kept the holes and the data" sh -c \
	"[ \$(du -k '$M1/$VM/disk0.raw' | cut -f1) -lt $((SIZE / 1024 / 10)) ] && '$CHECK' '$M1/$VM/disk0.raw' $(last_counter)"
n=$(last_counter)
t_run "start again" "$V" start "$VM"
t_run "the writer resumes at $((n + 1)) on the copied disk" wait_for 90 sh -c \
	"tr -d '\r' < '$LOG' | grep -q '^writer: start at $((n + 1)) '"
t_run "stop" "$V" stop "$VM"
t_run "offline move to $M2 again: vm.json marks the disk owned" sh -c \
	"'$V' move-storage $VM --to '$M2' | grep -q offline && grep -q '\"owned\": true' '$M1/$VM/vm.json'"
# a disk named by absolute path that the VM does not own (shared) stays
cp --sparse=always "$T/disk1.ref" "$T/shared.raw"
sed "s|\"disks\": \[|\"disks\": [{\"file\": \"$T/shared.raw\"}, |" "$M1/$VM/vm.json" > "$T/vm.json.new" &&
	cp "$T/vm.json.new" "$M1/$VM/vm.json"
t_run "vm.json names the shared disk" grep -q "\"file\": \"$T/shared.raw\"" "$M1/$VM/vm.json"
t_run "destroy" "$V" destroy "$VM"
t_run "destroy removed the moved disk and its folder on $M2, kept the shared one" sh -c \
	"[ ! -e '$M2/$VM' ] && [ ! -e '$M1/$VM' ] && [ -f '$T/shared.raw' ]"
