#!/usr/bin/env bash
# admin_tools.sh - the vcfs admin tool on a mounted datastore: info, hosts,
# disk create/clone/extend/inflate/reclaim through the mount, and break-lock
# (refuses a live holder; releases a dead one by recovering it).
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/hosts.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/admin
mkdir -p "$T"
if [ ! -x "$B/vcfs-fuse" ]; then t_skip "admin tool tests (vcfs-fuse not built)"; exit 0; fi
img=$T/ds.img
rm -f "$img"; truncate -s 2G "$img"
"$B/mkfs.vcfs" -q -L admin -H 8 -T 250 "$img" || { t_fail "mkfs"; exit 0; }
host_start a1 "$img" || { t_fail "mount"; exit 0; }
M=$(host_mnt a1)
x() { host_exec a1 sh -c "cd $M && $*"; }

t_run "vcfs info shows the label and free space" sh -c "'$B/vcfs' info '$img' | grep -q 'label:       admin' && '$B/vcfs' info --json '$img' | grep -q '\"data_free\"'"
t_run "vcfs hosts shows a1 live" sh -c "'$B/vcfs' hosts '$img' | grep -q 'a1 .* live'"
t_run "disk create --thin allocates nothing" x "'$B/vcfs' disk create --thin 256M thin.raw && [ \$(du -k thin.raw | cut -f1) -lt 1024 ]"
t_run "disk create --eager allocates and zeroes all" x "'$B/vcfs' disk create --eager 64M eager.raw && [ \$(du -k eager.raw | cut -f1) -ge 65536 ] && cmp -n 67108864 eager.raw /dev/zero"
t_run "disk create --zeroed allocates, reads zeros" x "'$B/vcfs' disk create --zeroed 64M zeroed.raw && [ \$(du -k zeroed.raw | cut -f1) -ge 65536 ] && cmp -n 67108864 zeroed.raw /dev/zero"
t_run "disk clone keeps holes and data" x "dd if=/dev/urandom of=thin.raw bs=1M count=2 seek=100 conv=notrunc status=none && '$B/vcfs' disk clone thin.raw clone.raw && cmp thin.raw clone.raw && [ \$(du -k clone.raw | cut -f1) -lt 4096 ]"
t_run "disk extend grows a thin disk" x "'$B/vcfs' disk extend clone.raw 512M && [ \$(stat -c %s clone.raw) -eq 536870912 ]"
t_run "disk inflate fills the holes" x "'$B/vcfs' disk inflate clone.raw && [ \$(du -k clone.raw | cut -f1) -ge 524288 ] && cmp -n 268435456 thin.raw clone.raw"
t_run "disk reclaim punches the zeros" x "'$B/vcfs' disk reclaim clone.raw && [ \$(du -k clone.raw | cut -f1) -lt 8192 ] && cmp -n 268435456 thin.raw clone.raw"
t_expect_fail "disk create refuses an existing file" "File exists" x "'$B/vcfs' disk create --thin 1M thin.raw"
t_expect_fail "disk create: a bad size" "bad size" x "'$B/vcfs' disk create --thin lots new.raw"

# break-lock: a1 holds a file open for writing
host_exec a1 sh -c "exec 3>>$M/held.raw; touch $T/held; sleep 300" &
wait_for 10 test -e "$T/held"
ino=$(host_exec a1 stat -c %i "$M/held.raw")
t_expect_fail "break-lock refuses while the holder is alive" "alive" \
	"$B/vcfs" break-lock --yes "$img" "$ino"
t_run "the lock is still held by a1" sh -c "'$B/vcfs' locks '$img' $ino | grep -q 'host a1'"
host_kill a1	# no other host: nobody recovers it
t_expect_fail "break-lock asks first (no answer: nothing changed)" "nothing changed" \
	sh -c "echo no | '$B/vcfs' break-lock '$img' $ino"
t_run "break-lock --yes releases a dead holder's lock by recovering it" sh -c \
	"'$B/vcfs' break-lock --yes '$img' $ino | grep -q 'lock is released'"
t_run "the slot is free again" sh -c "! '$B/vcfs' hosts '$img' | grep -q 'a1'"
t_run "fsck is clean after break-lock" "$B/fsck.vcfs" -n "$img"
host_start a2 "$img" || t_fail "remount"
t_run "another host opens the file for writing" host_exec a2 sh -c "echo ok >> $(host_mnt a2)/held.raw"
host_stop a2
rm -f "$img"
