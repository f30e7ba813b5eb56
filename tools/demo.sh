#!/usr/bin/env bash
# tools/demo.sh - `make demo`: vcfs at work on the embedded default, a datastore
# in a local image file mounted by three hosts at once.  Each host is a
# vcfs-fuse daemon in network, mount and UTS namespaces of its own
# (tests/lib/hosts.sh), as separate machines sharing one LUN would be; the only
# thing they share is the image.  It leaves nothing running and nothing mounted.
set -eu
cd "$(dirname "$0")/.."
export VCFS_TOP=$PWD
export VCFS_TEST_TMP=$(mktemp -d /var/tmp/vcfs-demo.XXXXXX)
. tests/lib/common.sh
. tests/lib/hosts.sh
t_cleanup_push "rm -rf $VCFS_TEST_TMP"
B=build
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
on() {	# on HOST CMD: run a shell command on a host, showing it
	local h=$1; shift
	printf '\033[2m[%s]$ %s\033[0m\n' "$h" "$*"
	host_exec "$h" sh -c "cd $(host_mnt "$h") && $*"
}

say "Installing what is missing and building"
need_pkgs build-essential pkg-config libfuse3-dev fuse3 libiscsi-dev libnfs-dev libssl-dev check \
	libsubunit-dev libjansson-dev uuid-dev iproute2 attr
make -s -j2

img=$VCFS_TEST_TMP/datastore.img
truncate -s 2G "$img"

say "Is the backing store safe to share? (atomic compare-and-write, 8 racing processes)"
run $B/vcfs probe --stress 8 --iters 100 "$img" | grep -E 'CAS mode|stress|verdict'

say "Format a 2 GiB datastore for up to 16 hosts, I/O timeout T = 500 ms"
run $B/mkfs.vcfs -L demo -H 16 -T 500 "$img"

say "Mount it on three hosts at once (each in its own namespaces)"
for h in esx1 esx2 esx3; do
	host_start "$h" "$img"
	echo "  $h: vcfs-fuse pid ${HOST_PID[$h]}, mounted at $(host_mnt "$h") inside its namespace"
done
sleep 1
run $B/vcfs hosts "$img"

say "A VM folder created on esx1 appears on esx2 and esx3"
on esx1 "mkdir vm1 && $VCFS_TOP/$B/vcfs disk create --thin 1G vm1/disk.raw && echo 'memory=512' > vm1/vm.conf"
sleep 1.2
on esx2 "ls -ls vm1"
on esx3 "cat vm1/vm.conf"

say "esx1 runs the VM: its disk is open for writing, so esx2 cannot open it (on-disk lock)"
host_exec esx1 sh -c "exec 3>>$(host_mnt esx1)/vm1/disk.raw; touch $VCFS_TEST_TMP/held; sleep 600" &
wait_for 10 test -e "$VCFS_TEST_TMP/held"
on esx2 "echo write >> vm1/disk.raw" || true
echo "  esx2's log says:"
grep -i "lock" "$HOSTS_DIR/esx2/fuse.log" | tail -n 1 | sed 's/^/    /'
run $B/vcfs locks "$img" "$(host_exec esx2 stat -c %i "$(host_mnt esx2)/vm1/disk.raw")"

say "esx1 writes and fsyncs a file, then dies (kill -9): no unmount, its locks left on disk"
on esx1 "dd if=/dev/urandom of=vm1/nvram bs=64k count=4 conv=fsync status=none && md5sum vm1/nvram"
t0=$(date +%s.%N)
host_kill esx1
echo "  esx1 killed; survivors see its heartbeat stop, wait 7T = 3.5 s, replay its journal, free its locks"

say "esx2 takes over the VM's disk as soon as esx1 is declared dead"
until host_exec esx2 sh -c "echo taken-over >> $(host_mnt esx2)/vm1/disk.raw" 2>/dev/null; do sleep 0.2; done
printf '  esx2 holds the disk %.1f s after the kill\n' "$(echo "$(date +%s.%N) - $t0" | bc)"
grep -ih "recover" "$HOSTS_DIR"/esx*/fuse.log | tail -n 2 | sed 's/^/    /'
on esx3 "md5sum vm1/nvram"
echo "  (the same checksum: what esx1 had fsync'd survived its death)"
run $B/vcfs hosts "$img"

say "Unmount everywhere and check the datastore offline"
host_stop esx2
host_stop esx3
run $B/fsck.vcfs -n "$img"

say "Done: nothing is left mounted or running, the image is removed."
