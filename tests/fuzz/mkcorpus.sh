#!/usr/bin/env bash
# mkcorpus.sh - rebuild the seed corpus of the fuzz targets (tests/fuzz/corpus/)
# from a real datastore: mkfs.vcfs formats a 16 MiB image with the geometry
# the targets' harness uses (tests/fuzz/img.h: -H 2 -b 64K -N 256 -T 1000),
# vcfs-fuse mounts it and the shell makes a tree (a directory of 150 files,
# nested directories, data in direct blocks and past VCFS_NDIRECT in a large
# file, short and long symlinks, xattrs, a FIFO, a hard link), it is
# unmounted, and mkcorpus.py cuts out each structure in the input format of
# its target.  Not run by `make check` (the seeds are committed); run it when
# the on-disk format changes:  bash tests/fuzz/mkcorpus.sh  (needs root and
# /dev/fuse; builds with make first).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${VCFS_BUILD:-$top/build}
out=$top/tests/fuzz/corpus
t=$(mktemp -d /tmp/vcfs-corpus.XXXXXX)
img=$t/ds.img M=$t/mnt
mkdir -p "$M"
trap 'fusermount3 -u "$M" 2>/dev/null; rm -rf "$t"' EXIT

truncate -s 16M "$img"
"$B/mkfs.vcfs" -q -f -H 2 -b 64K -N 256 -T 1000 "$img"
cp "$img" "$t/fresh.img"
"$B/vcfs-fuse" -o host=corpus "$img" "$M"
for i in $(seq 1 20); do mountpoint -q "$M" && break; sleep 0.2; done
mkdir "$M/dir" "$M/dir/sub" "$M/a" "$M/a/b" "$M/a/b/c"
for i in $(seq -w 0 149); do : > "$M/dir/entry-$i"; done
head -c 30000 /dev/urandom > "$M/file"
setfattr -n user.a -v 1 "$M/file"
setfattr -n user.bb -v "$(printf 'v%.0s' $(seq 300))" "$M/file"
ln "$M/file" "$M/dir/hard"
ln -s file "$M/short"
ln -s "$(printf 'l%.0s' $(seq 2000))" "$M/long"
mkfifo "$M/fifo"
# large blocks after 1 MiB; logical block 259 needs the indirect block
head -c 3000 /dev/urandom | dd of="$M/big" bs=64K seek=259 conv=notrunc status=none
head -c 1M /dev/urandom | dd of="$M/big" bs=1M seek=2 conv=notrunc status=none
echo data > "$M/a/b/c/deep"
pid=$(pgrep -f -- "vcfs-fuse .*$M\$")
fusermount3 -u "$M"
while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
"$B/fsck.vcfs" -n "$img" > /dev/null
rm -rf "$out"
python3 "$top/tests/fuzz/mkcorpus.py" "$img" "$t/fresh.img" "$out"
du -sh "$out"
