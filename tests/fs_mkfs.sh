#!/usr/bin/env bash
# fs_mkfs.sh - mkfs.vcfs: layouts, lazy initialisation, refusals, bad input.
. "$(dirname "$0")/lib/common.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/mkfs
mkdir -p "$T"

img=$T/ds.img
rm -f "$img"; truncate -s 256M "$img"
t_run "mkfs a 256 MiB image (8 hosts)" "$B/mkfs.vcfs" -L test1 -H 8 "$img"
t_run "the header carries the label and VCFS signature" \
	sh -c "head -c 4096 '$img' | grep -q test1 && head -c 4 '$img' | grep -q VCFS"
t_run "backup header in the last block" \
	sh -c "tail -c 4096 '$img' | grep -q test1"
t_run "probe sees a formatted volume and stays read-only on it" \
	sh -c "'$B/vcfs' probe '$img' | grep -Eqi 'vcfs|formatted'"

# 1 TiB sparse file: mkfs must write only a few MiB (lazy initialisation)
big=$T/big.img
rm -f "$big"; truncate -s 1T "$big"
if "$B/mkfs.vcfs" -q -H 64 "$big" > "$T/big.log" 2>&1; then
	kib=$(du -k "$big" | cut -f1)
	if [ "$kib" -lt 16384 ]; then
		t_pass "mkfs 1 TiB, 64 hosts writes ${kib} KiB (lazy init)"
	else
		t_fail "mkfs 1 TiB wrote ${kib} KiB, expected under 16 MiB"
	fi
else
	t_fail "mkfs 1 TiB (log $T/big.log)"; tail -5 "$T/big.log"
fi
rm -f "$big"

dry=$T/dry.img
rm -f "$dry"; truncate -s 1G "$dry"
t_run "dry run prints a layout" sh -c "'$B/mkfs.vcfs' -n -H 16 -b 4M '$dry' | grep -q '4096 KiB'"
t_run "dry run writes nothing" sh -c "[ \$(du -k '$dry' | cut -f1) -eq 0 ]"
t_run "large blocks of 64 KiB" "$B/mkfs.vcfs" -q -b 64K -H 4 "$dry"
t_run "256 hosts on 1 GiB" "$B/mkfs.vcfs" -q -H 256 "$dry"

small=$T/small.img
rm -f "$small"; truncate -s 4M "$small"
t_expect_fail "too small for 64 hosts: says so and how to fix" "too small.*fewer hosts" \
	"$B/mkfs.vcfs" "$small"
t_expect_fail "block size not a power of two" "power of two" "$B/mkfs.vcfs" -b 3M "$dry"
t_expect_fail "more than 256 hosts" "1 to 256" "$B/mkfs.vcfs" -H 300 "$dry"
t_expect_fail "I/O timeout out of range" "100 to 60000" "$B/mkfs.vcfs" -T 50 "$dry"
t_expect_fail "label too long" "longer than 63" "$B/mkfs.vcfs" -L "$(printf 'x%.0s' $(seq 70))" "$dry"
t_expect_fail "bad option value" "bad value for -b" "$B/mkfs.vcfs" -b lots "$dry"
t_expect_fail "missing target" "No such file" "$B/mkfs.vcfs" "$T/nope.img"
t_expect_fail "unknown scheme" "unknown URI scheme" "$B/mkfs.vcfs" "gopher://x/y"
t_run "exit code 2 on usage errors" sh -c "'$B/mkfs.vcfs' >/dev/null 2>&1; [ \$? -eq 2 ]"

# The same volume formatted twice: the new generation hides every old block.
t_run "re-format an idle datastore" "$B/mkfs.vcfs" -q -L second -H 8 "$img"
t_run "the new label is there" sh -c "head -c 4096 '$img' | grep -q second"

# Live heartbeats: a mounted host makes mkfs refuse (needs the FUSE daemon).
if [ -x "$B/vcfs-fuse" ]; then
	mnt=$T/mnt; mkdir -p "$mnt"
	if "$B/vcfs-fuse" -o host=livehost "$img" "$mnt" > "$T/fuse.log" 2>&1; then
		t_cleanup_push "fusermount3 -u '$mnt'"
		t_expect_fail "refuses a datastore with live hosts" "heartbeating|live host" \
			"$B/mkfs.vcfs" -T 100 "$img"
		fusermount3 -u "$mnt"
		t_run "formats it once the host unmounted" "$B/mkfs.vcfs" -q -H 8 "$img"
	else
		t_fail "mount for the live-host case (log $T/fuse.log)"
	fi
else
	t_skip "mkfs refuses live hosts (vcfs-fuse not built yet)"
fi
rm -f "$img" "$dry" "$small"
