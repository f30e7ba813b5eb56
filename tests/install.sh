#!/usr/bin/env bash
# install.sh - `make install` with PREFIX and DESTDIR puts every program where
# users expect it (mkfs.vcfs, fsck.vcfs, mount.vcfs and vcfs-fuse in sbin, so
# that mount -t vcfs and fsck -t vcfs find them), a man page for every program,
# each page renders without warnings, and every program's --help names its page.
. "$(dirname "$0")/lib/common.sh"
B=$VCFS_BUILD
D=$VCFS_TEST_TMP/destdir
rm -rf "$D"
if make -s -C "$VCFS_TOP" install DESTDIR="$D" PREFIX=/usr > "$VCFS_TEST_TMP/install.log" 2>&1; then
	t_pass "make install DESTDIR=... PREFIX=/usr"
else
	t_fail "make install (log $VCFS_TEST_TMP/install.log)"; exit 0
fi
for p in sbin/mkfs.vcfs sbin/fsck.vcfs sbin/mount.vcfs sbin/vcfs-fuse bin/vcfs bin/vcvm bin/vcvm-agent; do
	if [ -x "$D/usr/$p" ]; then t_pass "installed /usr/$p"; else t_fail "installed /usr/$p"; fi
done
declare -A SEC=([mkfs.vcfs]=8 [fsck.vcfs]=8 [mount.vcfs]=8 [vcfs-fuse]=8 [vcfs]=8 [vcvm]=1 [vcvm-agent]=8)
for p in "${!SEC[@]}"; do
	m=$D/usr/share/man/man${SEC[$p]}/$p.${SEC[$p]}
	if [ ! -f "$m" ]; then t_fail "man page $p(${SEC[$p]}) installed"; continue; fi
	w=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$m" 2>&1)
	if [ -z "$w" ]; then t_pass "man page $p(${SEC[$p]}) installed and renders without warnings"; else
		t_fail "man page $p(${SEC[$p]}) renders with warnings: $(echo "$w" | head -n 3 | tr '\n' ' ')"; fi
done
for p in mkfs.vcfs fsck.vcfs vcfs vcfs-fuse vcvm vcvm-agent; do
	if "$B/$p" --help 2>&1 | grep -q "$p(${SEC[$p]})"; then t_pass "$p --help names $p(${SEC[$p]})"; else
		t_fail "$p --help names $p(${SEC[$p]})"; fi
done
rm -rf "$D"
