#!/usr/bin/env bash
# fs_fsck.sh - fsck.vcfs image tests (e2fsprogs' tests/f_* habit).
#
# Each folder in tests/fsck/ is one case: `damage` holds vcfs_damage commands
# applied to a fresh image, `expect.1` the problem codes the first run
# (fsck.vcfs -y) must report (as a set), after which a second run (-n) must be
# clean (a `check-only` file: the first run is -n, must report the codes and
# exit 4, then -y repairs).  Cases with a `needs` file want a populated image, built through the
# FUSE daemon; variables $INO_name / $PTR_name name its inodes and blocks.
# Its mount lives in a private mount namespace: a namespace another program
# creates meanwhile must not copy it (a copied FUSE mount keeps the daemon,
# and so its heartbeat slot, alive after our unmount).
if [ -z "${VCFS_FSCK_NS:-}" ]; then
	VCFS_FSCK_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib/common.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/fsck
mkdir -p "$T"
base=$T/base.img
pop=$T/populated.img

rm -f "$base"; truncate -s 256M "$base"
"$B/mkfs.vcfs" -q -H 8 -T 100 "$base" || { t_fail "mkfs for the fsck images"; exit 0; }
t_run "fsck of a fresh datastore is clean (exit 0)" "$B/fsck.vcfs" -n "$base"

# the populated image, when the FUSE daemon exists
have_pop=0
if [ -x "$B/vcfs-fuse" ]; then
	cp --sparse=always "$base" "$pop"
	mnt=$T/mnt; mkdir -p "$mnt"
	if "$B/vcfs-fuse" -o host=fsckpop "$pop" "$mnt" > "$T/pop.log" 2>&1; then
		t_cleanup_push "fusermount3 -u '$mnt'"
		mkdir "$mnt/dir1" "$mnt/dir1/sub"
		head -c 3M /dev/urandom > "$mnt/dir1/file1"
		head -c 4096 /dev/urandom > "$mnt/small"
		head -c 4096 /dev/urandom > "$mnt/small2"
		truncate -s 2M "$mnt/sparse"
		dd if=/dev/urandom of="$mnt/sparse" bs=4k count=1 seek=$((300 * 256)) conv=notrunc status=none
		ln -s dir1/file1 "$mnt/link"
		ln "$mnt/small" "$mnt/dir1/hardlink"
		for n in dir1 dir1/sub dir1/file1 small small2 sparse; do
			v=$(basename "$n"); echo "INO_$v=$(stat -c %i "$mnt/$n")"
		done > "$T/vars"
		sync
		if fusermount3 -u "$mnt"; then
			for _ in $(seq 1 100); do	# the daemon leaves its slot
				pgrep -f "vcfs-fuse.*$pop" > /dev/null || break
				sleep 0.1
			done
			. "$T/vars"
			echo "PTR_small=$("$B/tests/vcfs_damage" "$pop" ptr-of "$INO_small" 0)" >> "$T/vars"
			if "$B/fsck.vcfs" -n "$pop" > "$T/pop.fsck" 2>&1; then
				t_pass "fsck of a populated datastore is clean"
				have_pop=1
			else
				t_fail "fsck of a populated datastore is clean (log $T/pop.fsck)"
				tail -n 15 "$T/pop.fsck" | sed 's/^/          | /'
			fi
		else
			t_fail "unmount of the populated image"
		fi
	else
		t_fail "mount for the populated image (log $T/pop.log)"
	fi
fi

codes() { grep -oE '^[A-Z]{2}[0-9]{2}' "$1" | sort -u | tr '\n' ' '; }

for dir in "$VCFS_TOP"/tests/fsck/*/; do
	name=$(basename "$dir")
	img=$T/$name.img
	if [ -f "$dir/needs" ]; then
		if [ $have_pop = 0 ]; then
			t_skip "fsck $name (needs a populated image: vcfs-fuse)"
			continue
		fi
		cp --sparse=always "$pop" "$img"
		. "$T/vars"
	else
		cp --sparse=always "$base" "$img"
	fi
	ok=1
	while read -r line; do
		[ -z "$line" ] && continue
		eval "set -- $line"
		"$B/tests/vcfs_damage" "$img" "$@" > "$T/$name.damage" 2>&1 || ok=0
	done < "$dir/damage"
	if [ $ok = 0 ]; then
		t_fail "fsck $name: damage step failed: $(cat "$T/$name.damage")"; continue
	fi
	# cases with a check-only first run: -n reports (exit 4), then -y fixes
	want_rc1=1
	if [ -f "$dir/check-only" ]; then
		"$B/fsck.vcfs" -n "$img" > "$T/$name.1" 2>&1; rc1=$?
		want_rc1=4
		"$B/fsck.vcfs" -y "$img" > "$T/$name.1y" 2>&1 || [ $? -eq 1 ] || rc1=99
	else
		"$B/fsck.vcfs" -y "$img" > "$T/$name.1" 2>&1; rc1=$?
	fi
	"$B/fsck.vcfs" -n "$img" > "$T/$name.2" 2>&1; rc2=$?
	got=$(codes "$T/$name.1")
	want=$(sort -u "$dir/expect.1" | tr '\n' ' ')
	if [ "$got" = "$want" ] && [ $rc1 -eq $want_rc1 ] && [ $rc2 -eq 0 ]; then
		t_pass "fsck $name: first run fixes [${got% }], second run clean"
	else
		t_fail "fsck $name: first run exit $rc1 codes [${got% }] (want exit $want_rc1 [${want% }]), second run exit $rc2"
		sed 's/^/          1| /' "$T/$name.1" | head -n 12
		sed 's/^/          2| /' "$T/$name.2" | head -n 6
	fi
	rm -f "$img"
done

# bad input: a foreign image and a missing one
junk=$T/junk.img; head -c 8M /dev/urandom > "$junk"
t_expect_fail "fsck refuses a foreign image" "not a vcfs datastore" "$B/fsck.vcfs" -n "$junk"
t_run "fsck exit 8 on a foreign image" sh -c "'$B/fsck.vcfs' -n '$junk' >/dev/null 2>&1; [ \$? -eq 8 ]"
t_expect_fail "fsck on a missing image" "No such file" "$B/fsck.vcfs" -n "$T/none.img"
t_run "fsck usage error exit 16" sh -c "'$B/fsck.vcfs' -n -y '$base' >/dev/null 2>&1; [ \$? -eq 16 ]"
t_run "fsck -n leaves problems: exit 4 and nothing written" sh -c "
	cp --sparse=always '$base' '$T/left.img' &&
	'$B/tests/vcfs_damage' '$T/left.img' cbmp-nfree 0 7 &&
	sum=\$(md5sum < '$T/left.img');
	'$B/fsck.vcfs' -n '$T/left.img' >/dev/null 2>&1; rc=\$?;
	[ \$rc -eq 4 ] && [ \"\$sum\" = \"\$(md5sum < '$T/left.img')\" ]"
rm -f "$junk" "$T/left.img" "$base" "$pop"
