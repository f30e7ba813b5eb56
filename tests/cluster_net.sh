#!/usr/bin/env bash
# cluster_net.sh - hosts sharing a datastore file served by NFS from a storage
# namespace, each host reaching it over its own veth link: coherence and locks
# across the network, and a host whose storage path is cut fences itself before
# the others take over its files, and stays harmless when the path returns.
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/nfs.sh"
. "$(dirname "$0")/lib/hosts.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/cnet
mkdir -p "$T"
HOSTS_LOG_TS=1	# host logs time-stamped on one clock, for the record
if [ ! -x "$B/vcfs-fuse" ]; then t_skip "network cluster tests (vcfs-fuse not built)"; exit 0; fi
m() { host_mnt "$1"; }

if ! ganesha_start "$T/nfs"; then t_fail "nfs-ganesha did not start"; exit 0; fi
t_cleanup_push ganesha_stop
# the NFS server's namespace is the storage namespace: a bridge the hosts join
# (with a fixed MAC address: see hosts_bridge)
HOSTS_STOR_NS=$NFS_NS
hosts_bridge "$NFS_NS" || { t_fail "storage bridge in the NFS namespace"; exit 0; }
E=$NFS_EXPORT_DIR
truncate -s 1G "$E/ds.img"
"$B/mkfs.vcfs" -q -H 8 -T 2000 "$E/ds.img" || { t_fail "mkfs"; exit 0; }
U="nfs://10.250.0.1$NFS_EXPORT/ds.img"

ok=1
for h in n1 n2 n3; do host_start "$h" "$U" || ok=0; done
if [ $ok = 1 ]; then t_pass "3 hosts mounted one datastore over NFS from the storage namespace"
else t_fail "3 hosts over NFS"; exit 0; fi

host_exec n1 sh -c "mkdir $(m n1)/vm && echo cfg > $(m n1)/vm/vm.conf"
sleep 1.2
t_run "nfs: created on n1, read on n3" sh -c "[ \"\$(nsenter -t ${HOST_PID[n3]} -m cat $(m n3)/vm/vm.conf)\" = cfg ]"

# n2 runs "a VM": its disk stays open for writing, and it writes fsync'd data.
# (Its path used to stall here for up to ~100 s now and then, which the test
# had taken for a loaded server: the storage bridge changed its MAC address
# when n3 joined; see hosts_bridge.)
v=n2
t_run "nfs: $v writes 4 MiB fsync'd before the cut" host_exec "$v" sh -c \
	"dd if=/dev/zero of=$(m $v)/vm/disk bs=1M count=4 conv=fsync status=none"
t_run "nfs: $v is healthy (not fenced) when the cut starts" sh -c "! grep -H 'FENCED:' $HOSTS_DIR/$v/fuse.log"
host_exec "$v" sh -c "exec 3>>$(m $v)/vm/disk; echo ok > $T/n2held; sleep 300" &
wait_for 10 test -e "$T/n2held"
t_expect_fail "nfs: n1 cannot open $v's disk for writing (EBUSY)" "busy" \
	host_exec n1 sh -c "echo x >> $(m n1)/vm/disk"
host_exec "$v" sh -c "echo before-cut | dd of=$(m $v)/vm/note conv=fsync status=none"

# cut n2's storage path
t0=$(date +%s.%N)
host_cut "$v"
fenced=0
for i in $(seq 1 150); do
	if grep -q "FENCED:" "$HOSTS_DIR/$v/fuse.log"; then fenced=1; break; fi
	sleep 0.1
done
tf=$(echo "$(date +%s.%N) - $t0" | bc)
if [ $fenced = 1 ]; then t_pass "path cut: n2 fenced itself after ${tf} s (no renewal for F - T = 6 s)"
else t_fail "path cut: n2 did not fence within 15 s"; fi
got=0
for i in $(seq 1 300); do
	if host_exec n1 sh -c "echo n1-took-over >> $(m n1)/vm/disk" 2>/dev/null; then got=1; break; fi
	sleep 0.1
done
tt=$(echo "$(date +%s.%N) - $t0" | bc)
if [ $got = 1 ]; then t_pass "path cut: n1 took n2's disk ${tt} s after the cut (D = 7T = 14 s), after n2 fenced"
else t_fail "path cut: n1 never got n2's disk"; fi
t_run "path cut: n1 took over strictly after n2 had fenced" sh -c "awk 'BEGIN{exit !($tf < $tt)}'"
# n2 was cut in the middle of a compare-and-write and left its lock file (an
# NFS "F.cas/SECTOR" file) behind; a CAS on that sector returns ETIMEDOUT
# after T while the 4T stale watch runs, and the lock layer passes that to
# the application (seen: "cat: note: Connection timed out").  The data must
# be there once the lock is broken: read for up to 10T, and say if it took
# more than one try.
note_tries=0
read_note() {
	local i
	for i in $(seq 1 20); do
		note_tries=$i
		[ "$(host_exec n3 cat "$(m n3)/vm/note" 2>>"$T/note.err")" = before-cut ] && return 0
		sleep 1
	done
	return 1
}
if read_note; then
	t_pass "path cut: what $v fsync'd before the cut is there (read on n3$([ $note_tries -gt 1 ] &&
		echo ", try $note_tries: $(sort -u "$T/note.err" | tr '\n' ' ')"))"
else
	t_fail "path cut: what $v fsync'd before the cut is not readable on n3 after 20 tries: $(sort -u "$T/note.err" | tr '\n' ' ')"
fi

# the path comes back: n2 stays fenced, writes nothing
host_uncut "$v"
sleep 3
t_expect_fail "path back: n2 stays fenced (EIO), writes nothing" "Input/output error" \
	host_exec "$v" sh -c "echo late > $(m $v)/vm/late"
t_run "path back: nothing of n2 appears on n3" host_exec n3 sh -c "[ ! -e $(m n3)/vm/late ]"
host_kill "$v"
host_stop n1
host_stop n3
t_run "fsck is clean after the path-cut run" "$B/fsck.vcfs" -n "$E/ds.img"
