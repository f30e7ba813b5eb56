#!/usr/bin/env bash
# cluster_rename.sh - a name another host renamed a new file over (the way
# vm.json is rewritten: write a temp file, rename it over) opens on this host
# at once, with the new content: the kernel's cached entry still names the old,
# now freed inode, and vcfs answers the open with ESTALE so that the kernel
# looks the name up again (ENOENT would fail the open for up to the 1 s entry
# timeout).  Two hosts = two vcfs-fuse mounts of one image, each with its own
# heartbeat slot and its own kernel caches.
if [ -z "${VCFS_RENAME_NS:-}" ]; then
	VCFS_RENAME_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib/common.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/rename
mkdir -p "$T/a" "$T/b"
trap t_cleanup_run EXIT
rm -f "$T/ds.img"; truncate -s 1G "$T/ds.img"
"$B/mkfs.vcfs" -q -T 200 -H 4 "$T/ds.img" || { t_fail "mkfs"; exit 0; }
for h in a b; do
	"$B/vcfs-fuse" -o host=r$h "$T/ds.img" "$T/$h" > "$T/$h.log" 2>&1 ||
		{ t_fail "mount host $h"; exit 0; }
	t_cleanup_push "fusermount3 -u '$T/$h'"
done
echo v0 > "$T/a/vm.json"
sleep 1.2
bad=0 n=30
for i in $(seq 1 $n); do
	cat "$T/b/vm.json" > /dev/null 2>&1	# b caches the name -> inode
	echo "v$i" > "$T/a/vm.json.tmp" && mv "$T/a/vm.json.tmp" "$T/a/vm.json"
	out=$(cat "$T/b/vm.json" 2>&1)
	[ "$out" = "v$i" ] || { bad=$((bad + 1)); echo "  round $i: b read '$out'"; }
done
if [ $bad -eq 0 ]; then
	t_pass "$n renames over a name on host a: host b opens the new file at once every time"
else
	t_fail "renames over a name on host a: host b failed $bad of $n opens"
fi
