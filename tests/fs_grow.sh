#!/usr/bin/env bash
# fs_grow.sh - `vcfs grow`: online growth of a datastore (fs/grow.c).
#
#  1. three hosts (vcfs-fuse daemons, each its own heartbeat slot) mount a
#     256 MiB image and fill it; the image file is enlarged to 1 GiB and
#     `vcfs grow` runs while they stay mounted; a host that did not grow
#     writes 500 MiB more (its allocator finds the space), another reads it
#     back, a third one deletes it (frees blocks past the end it knew), df
#     shows the new size on every host, every file survives a remount and
#     fsck.vcfs is clean;
#  2. a grow interrupted at every write it makes (VCFS_FAULT sticky EIO from
#     write N on: no later write lands, as in a crash): the volume either
#     kept its old size and mounts, or says a grow is under way, refuses to
#     mount, and `vcfs grow` finishes it; fsck.vcfs clean afterwards;
#  3. bad input: a backend no bigger than the volume, a size beyond the grow
#     limit, a smaller --size.
# Its mounts live in a private mount namespace: a namespace another program
# creates meanwhile must not copy them (a copied FUSE mount keeps its daemon,
# and so its heartbeat slot, alive after our unmount).
if [ -z "${VCFS_GROW_NS:-}" ]; then
	VCFS_GROW_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib/common.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/grow
mkdir -p "$T"
trap t_cleanup_run EXIT
img=$T/ds.img
uri=file:$img

mnt_host() {	# mnt_host NAME: mount on $T/NAME as host NAME
	mkdir -p "$T/$1"
	"$B/vcfs-fuse" -o host="$1" "$uri" "$T/$1" > "$T/$1.log" 2>&1 &&
		t_cleanup_push "fusermount3 -u '$T/$1'"
}
umount_all() {	# and wait for the daemons to leave their slots
	local h i
	for h in "$@"; do fusermount3 -u "$T/$h" 2>/dev/null; done
	for i in $(seq 1 100); do
		pgrep -f "vcfs-fuse.*$img" > /dev/null || break
		sleep 0.1
	done
}

t_section "online grow with three hosts mounted"
rm -f "$img"; truncate -s 256M "$img"
"$B/mkfs.vcfs" -q -T 200 -H 8 "$uri" || { t_fail "mkfs"; exit 0; }
ok=1
for h in ga gb gc; do mnt_host $h || { ok=0; t_fail "mount host $h (log $T/$h.log)"; }; done
[ $ok = 1 ] || exit 0
# fill the volume from host ga
head -c 150M /dev/urandom > "$T/fill.src"
cp "$T/fill.src" "$T/ga/fill1"
sync
if dd if=/dev/zero of="$T/ga/toomuch" bs=1M count=200 conv=fsync status=none 2>"$T/enospc.err"; then
	t_fail "a 200 MiB write into a 256 MiB volume holding 150 MiB fails with ENOSPC"
else
	grep -qi "no space" "$T/enospc.err" &&
		t_pass "a 200 MiB write into a 256 MiB volume holding 150 MiB fails with ENOSPC" ||
		t_fail "ENOSPC expected: $(cat "$T/enospc.err")"
fi
rm -f "$T/ga/toomuch"
size_before=$(df -B1M --output=size "$T/gb" | tail -n 1 | tr -d ' ')

truncate -s 1G "$img"
t_run "vcfs grow while three hosts are mounted" "$B/vcfs" grow "$uri"
"$B/vcfs" info --json "$uri" > "$T/info.json" 2>/dev/null
if grep -q '"size": *1073741824\|"size":1073741824' "$T/info.json"; then
	t_pass "the volume header says 1 GiB after the grow"
else
	t_fail "the volume header says 1 GiB after the grow: $(cat "$T/info.json")"
fi
# gb never ran the grow: its allocator must find the new space
head -c 500M /dev/urandom > "$T/big.src"
if cp "$T/big.src" "$T/gb/big" && sync; then
	t_pass "a host that did not grow writes 500 MiB into the new space"
else
	t_fail "a host that did not grow writes 500 MiB into the new space (log $T/gb.log)"
	tail -n 5 "$T/gb.log" | sed 's/^/          | /'
fi
if cmp -s "$T/big.src" "$T/gc/big"; then
	t_pass "a third host reads those blocks back byte for byte"
else
	t_fail "a third host reads those blocks back byte for byte (log $T/gc.log)"
fi
sleep 1.2	# statfs is cached for one second
size_after=$(df -B1M --output=size "$T/ga" | tail -n 1 | tr -d ' ')
if [ "${size_after:-0}" -gt $((size_before * 3)) ]; then
	t_pass "df on a mounted host shows the new size ($size_before -> $size_after MiB)"
else
	t_fail "df on a mounted host shows the new size ($size_before -> $size_after MiB)"
fi
cp "$T/gb/big" "$T/big.copy" 2>/dev/null
if rm "$T/gc/big" && cp "$T/big.src" "$T/ga/big2" && sync; then
	t_pass "a host frees blocks past its old end, and the space is used again"
else
	t_fail "a host frees blocks past its old end, and the space is used again"
fi
umount_all ga gb gc
t_run "fsck.vcfs is clean after the online grow" "$B/fsck.vcfs" -n "$uri"
mnt_host gd
if cmp -s "$T/fill.src" "$T/gd/fill1" && cmp -s "$T/big.src" "$T/gd/big2"; then
	t_pass "every file is intact after a remount"
else
	t_fail "every file is intact after a remount"
fi
umount_all gd

t_section "a grow interrupted at each of its writes"
rm -f "$T/base.img"; truncate -s 256M "$T/base.img"
"$B/mkfs.vcfs" -q -T 100 -H 4 "file:$T/base.img"
mnt_host_img() { mkdir -p "$T/m"; "$B/vcfs-fuse" -o host=probe "file:$1" "$T/m" > "$T/m.log" 2>&1; }
head -c 100M /dev/urandom > "$T/pre.src"
mnt_host_img "$T/base.img" && cp "$T/pre.src" "$T/m/pre" && sync && fusermount3 -u "$T/m"
sleep 0.3
bad=0; inprog=0; old=0; done_=0; n=1
while :; do
	cp --sparse=always "$T/base.img" "$T/cut.img"
	truncate -s 768M "$T/cut.img"
	if VCFS_FAULT="write:$n:sticky:EIO" "$B/vcfs" grow "file:$T/cut.img" > "$T/cut.log" 2>&1; then
		done_=1	# N is past the last write grow makes: the enumeration is complete
		break
	fi
	state=$("$B/vcfs" info --json "file:$T/cut.img" 2>/dev/null)
	if echo "$state" | grep -q '"grow_in_progress": *true'; then
		inprog=$((inprog + 1))
		if mnt_host_img "$T/cut.img"; then
			bad=1; echo "  write $n: a half-done grow mounted"; fusermount3 -u "$T/m"
		elif ! grep -q "vcfs grow" "$T/m.log"; then
			bad=1; echo "  write $n: the refusal does not say to run vcfs grow: $(tail -n 1 "$T/m.log")"
		fi
	else
		old=$((old + 1))
	fi
	if ! "$B/vcfs" grow "file:$T/cut.img" > "$T/fin.log" 2>&1; then
		bad=1; echo "  write $n: vcfs grow did not finish: $(tail -n 2 "$T/fin.log" | tr '\n' ' ')"
	elif ! "$B/fsck.vcfs" -n "file:$T/cut.img" > "$T/fin.fsck" 2>&1; then
		# the failed grow's own slot is left live (it could not write its
		# leave): fsck wants it recovered first, which the finishing grow did
		bad=1; echo "  write $n: fsck after finishing: $(grep -E '^[A-Z]{2}[0-9]{2}' "$T/fin.fsck" | head -3 | tr '\n' ' ')"
	elif ! mnt_host_img "$T/cut.img" || ! cmp -s "$T/pre.src" "$T/m/pre" ||
	     [ "$(df -B1M --output=size "$T/m" | tail -n 1 | tr -d ' ')" -lt 700 ]; then
		bad=1; echo "  write $n: after finishing, the volume is not 768 MiB with its data"
	fi
	fusermount3 -u "$T/m" 2>/dev/null
	n=$((n + 1))
	[ $n -gt 60 ] && break
done
if [ $bad = 0 ] && [ $done_ = 1 ] && [ $inprog -gt 0 ]; then
	t_pass "grow cut at each of its $((n - 1)) writes: $old left the old size, $inprog refused to mount until vcfs grow finished; every one ends clean"
else
	t_fail "grow cut at each write (bad=$bad complete=$done_ in-progress=$inprog old=$old)"
fi

t_section "bad input"
rm -f "$T/b.img"; truncate -s 256M "$T/b.img"
"$B/mkfs.vcfs" -q -T 100 -H 4 -G 512M "file:$T/b.img"
out=$("$B/vcfs" grow "file:$T/b.img" 2>&1); rc=$?
if [ $rc = 0 ] && echo "$out" | grep -q "nothing to grow"; then
	t_pass "grow with no new space says there is nothing to grow"
else
	t_fail "grow with no new space: exit $rc: $out"
fi
t_expect_fail "grow to more than the backend holds names both sizes" "enlarge the LUN or file" \
	"$B/vcfs" grow --size 300M "file:$T/b.img"
truncate -s 2G "$T/b.img"
out=$("$B/vcfs" grow "file:$T/b.img" 2>&1); rc=$?
if [ $rc = 0 ] && echo "$out" | grep -q "can grow to .* at most"; then
	t_pass "grow past the limit set by mkfs -G stops at the limit and says so"
else
	t_fail "grow past the mkfs -G limit: exit $rc: $out"
fi
t_run "fsck.vcfs is clean after a capped grow" "$B/fsck.vcfs" -n "file:$T/b.img"
