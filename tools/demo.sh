#!/usr/bin/env bash
# tools/demo.sh - `make demo`: vcfs at work on an embedded default, a datastore in
# a local image file shared by several "hosts" (processes, each with its own
# handle on the image, as separate machines would have).  It grows with the
# tree; today it shows the shared-disk layer that everything else stands on.
set -eu
cd "$(dirname "$0")/.."
export VCFS_TOP=$PWD
. tests/lib/common.sh
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Installing what is missing and building"
need_pkgs build-essential pkg-config libfuse3-dev fuse3 libiscsi-dev libnfs-dev check \
	libsubunit-dev libjansson-dev uuid-dev
make -s -j2

img=$(mktemp /var/tmp/vcfs-demo.XXXXXX.img)
t_cleanup_push "rm -f $img"
truncate -s 256M "$img"

say "A 256 MiB datastore image: what does the backend offer, and is it safe to share?"
build/vcfs probe "$img"

say "Eight hosts increment one on-disk counter by compare-and-write, 200 times each"
build/vcfs probe --stress 8 --iters 200 "$img" | grep -E 'stress|verdict'

say "A lost write never goes unnoticed: the third write fails (fault injection)"
VCFS_FAULT="write:3:EIO" build/tests/conformance --stress 0 "$img" | grep -E 'not ok|conformance:' | head -n 3 || true

say "Done; the image is removed and nothing is left running."
