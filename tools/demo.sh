#!/usr/bin/env bash
# tools/demo.sh - `make demo`: vcfs at work on the embedded default, a datastore
# in a local image file mounted by three hosts at once.  Each host is a
# vcfs-fuse daemon in network, mount and UTS namespaces of its own
# (tests/lib/hosts.sh), as separate machines sharing one LUN would be: for
# safety they share only the image; a network between the namespaces carries
# the host agents' requests and a live migration's memory.  It leaves nothing
# running and nothing mounted.
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
	libsubunit-dev libjansson-dev uuid-dev iproute2 attr qemu-system-x86 qemu-utils busybox-static bc
make -s -j2

img=$VCFS_TEST_TMP/datastore.img
truncate -s 2G "$img"

say "Is the backing store safe to share? (atomic compare-and-write, 8 racing processes)"
run $B/vcfs probe --stress 8 --iters 100 "$img" | grep -E 'CAS mode|stress|verdict'

say "Format a 2 GiB datastore for up to 16 hosts, I/O timeout T = 500 ms"
run $B/mkfs.vcfs -L demo -H 16 -T 500 "$img"

say "Mount it on three hosts at once (each in its own namespaces)"
hosts_net_setup
DSP=$VCFS_TEST_TMP/vmfs		# the datastore's path on every host (VM configs name it)
mkdir -p "$DSP"
for h in esx1 esx2 esx3; do
	host_start "$h" "$img"
	host_exec "$h" mount --bind "$(host_mnt "$h")" "$DSP"
	echo "  $h: vcfs-fuse pid ${HOST_PID[$h]}, the datastore at $DSP inside its namespace"
done
sleep 1
run $B/vcfs hosts "$img"

say "A VM folder created on esx1 appears on esx2 and esx3"
on esx1 "mkdir vm1 && $VCFS_TOP/$B/vcfs disk create --thin 1G vm1/disk.raw && echo 'memory=512' > vm1/vm.conf"
sleep 1.2
on esx2 "ls -ls vm1"
on esx3 "cat vm1/vm.conf"

say "esx1 runs the VM: its disk is open for writing, so esx2 cannot open it (on-disk lock)"
# (stderr to /dev/null: the shell around it reports "Terminated" at the cleanup's pkill)
host_exec esx1 sh -c "exec 3>>$(host_mnt esx1)/vm1/disk.raw; touch $VCFS_TEST_TMP/held; sleep 600" \
	2>/dev/null & disown
t_cleanup_push "pkill -f 'touch $VCFS_TEST_TMP/held'"
wait_for 10 test -e "$VCFS_TEST_TMP/held"
on esx2 "echo write >> vm1/disk.raw" || true
echo "  esx2's log says:"
grep -i "lock" "$HOSTS_DIR/esx2/fuse.log" | tail -n 1 | sed 's/^/    /'
run $B/vcfs locks "$img" "$(host_exec esx2 stat -c %i "$(host_mnt esx2)/vm1/disk.raw")"

say "esx2 and esx3 run the host agent (vcvm-agent): requests need the cluster key"
KEY=$VCFS_TEST_TMP/cluster.key HF=$VCFS_TEST_TMP/agents
run $B/vcvm keygen "$KEY" > /dev/null
: > "$HF"
for h in esx2 esx3; do
	echo "$h 10.250.0.$((10 + HOST_IDX[$h]))" >> "$HF"
	mkdir -p "$VCFS_TEST_TMP/$h"
	host_exec "$h" env VCVM_HOST="$h" VCVM_RUN_DIR="$VCFS_TEST_TMP/$h/run" \
		VCVM_STATE_DIR="$VCFS_TEST_TMP/$h/state" VCVM_ACCEL=tcg VCVM_HOSTS_FILE="$HF" \
		$VCFS_TOP/$B/vcvm-agent --key "$KEY" > "$VCFS_TEST_TMP/$h/agent.log" 2>&1 & disown
	t_cleanup_push "for p in $VCFS_TEST_TMP/$h/run/*/qemu.pid; do kill -9 \$(cat \$p); done"
done
t_cleanup_push "pkill -f 'vcvm-agent --key $KEY'"
vc() {	# vc HOST ARGS: vcvm on HOST, talking to its agent (shown)
	local h=$1; shift
	printf '\033[2m[%s]$ vcvm %s\033[0m\n' "$h" "$*"
	host_exec "$h" env VCVM_KEY_FILE="$KEY" VCVM_HOSTS_FILE="$HF" $VCFS_TOP/$B/vcvm --host "$h" "$@"
}
counter_at_least() { [ "$(host_exec esx2 sh -c "tr -d '\r' < $DSP/web01/serial.log" 2>/dev/null |
	sed -n 's/^counter \([0-9]*\)$/\1/p' | tail -n 1)" -ge "$1" ] 2>/dev/null; }
G=$(bash tests/guest/build.sh 2> "$VCFS_TEST_TMP/guest.log") ||
	{ echo "  (the test guest could not be built: $(tail -n 1 "$VCFS_TEST_TMP/guest.log"))"; G=; }

say "The cluster's CPU model: every agent says what its QEMU runs; the highest common model is recorded on the datastore"
for h in esx2 esx3; do	# the agents listen within a moment
	wait_for 20 host_exec "$h" env VCVM_KEY_FILE="$KEY" VCVM_HOSTS_FILE="$HF" \
		$VCFS_TOP/$B/vcvm --host "$h" host-info > /dev/null 2>&1 || true
done
printf '\033[2m[%s]$ vcvm %s\033[0m\n' esx2 "cluster-cpu --datastore $DSP --hosts esx2,esx3"
host_exec esx2 env VCVM_KEY_FILE="$KEY" VCVM_HOSTS_FILE="$HF" $VCFS_TOP/$B/vcvm cluster-cpu \
	--datastore "$DSP" --hosts esx2,esx3 || true

if [ -n "$G" ]; then
say "A small VM on the datastore boots on esx2 (QEMU, TCG here); its guest writes block n = 'counter n' every 100 ms"
vc esx2 create web01 --datastore "$DSP" --memory 128 --disk-size 64M --kernel "$G/vmlinuz" \
	--initrd "$G/initrd.img" --append "console=ttyS0 panic=-1 quiet"
vc esx3 register "$DSP/web01"
vc esx2 start web01
wait_for 120 counter_at_least 3 || true
echo "  the guest counts: $(host_exec esx2 sh -c "tr -d '\r' < $DSP/web01/serial.log" | grep '^counter' | tail -n 1)"
vc esx3 start web01 || echo "  (esx3 may not start it: esx2 runs it, and the datastore's lock says so)"

say "Live-migrate web01 from esx2 to esx3 (vMotion): memory goes over TCP, the disk stays where it is"
vc esx2 migrate web01 --to esx3
sleep 2
vc esx3 status web01 | head -n 4
vc esx2 status web01 | head -n 2
echo "  the guest kept counting: $(host_exec esx3 sh -c "tr -d '\r' < $DSP/web01/serial.log" | grep '^counter' | tail -n 1)"
n=$(host_exec esx3 sh -c "tr -d '\r' < $DSP/web01/serial.log" | sed -n 's/^counter \([0-9]*\)$/\1/p' | tail -n 1)
vc esx3 stop --hard web01 > /dev/null
run host_exec esx3 $VCFS_TOP/$B/tests/guest/check_counter "$DSP/web01/disk0.raw" "$n" || true
echo "  (every block 0..$n on the disk holds its counter: no write lost across the move)"
fi

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
pkill -f "vcvm-agent --key $KEY" || true
for h in esx2 esx3; do
	host_exec "$h" umount "$DSP"	# the bind mount first, then the datastore
	host_stop "$h"
done
run $B/fsck.vcfs -n "$img"

say "Done: nothing is left mounted or running, the image is removed."
