#!/usr/bin/env bash
# disk_nfs.sh - the nfs:// backend against a real NFSv3 server: nfs-ganesha
# (VFS FSAL) and rpcbind in a network namespace of their own (tests/lib/nfs.sh);
# every client command runs inside that namespace and talks to 127.0.0.1.
#
#   the conformance suite with a 4-process CAS counter on a 64 MiB file,
#   the CAS mode and capabilities probe reports, ?create=SIZE, fixed ports
#   (?nfsport=&mountport=, no portmapper), and the bad inputs: missing file,
#   missing export, file below the minimum size, permission denied, a refused
#   connection, a server that stops answering (bounded by the io timeout, and
#   the same handle works again once it answers), options that would break
#   sharing.  Each failure must be clear and bounded in time.
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/nfs.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/nfs
mkdir -p "$T"

need_pkgs nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils iproute2 >/dev/null 2>&1
if ! command -v ganesha.nfsd >/dev/null || ! command -v rpcbind >/dev/null ||
   ! command -v nfs-ls >/dev/null; then
	t_skip "nfs: nfs-ganesha, rpcbind or libnfs-utils not installed"
	exit 0
fi

# expect_within NAME MAX_SECONDS PATTERN CMD...: CMD fails, prints PATTERN, and
# returns within MAX_SECONDS (a bound on the error path, not just a result).
expect_within() {
	local name=$1 max=$2 pat=$3; shift 3
	local out rc t0=$(date +%s%N) dt
	out=$(timeout $((max + 10)) "$@" 2>&1); rc=$?
	dt=$(( ($(date +%s%N) - t0) / 1000000 ))
	if [ $rc -ne 0 ] && echo "$out" | grep -Eqi -- "$pat" && [ $dt -le $((max * 1000)) ]; then
		t_pass "$name (${dt} ms)"
	else
		t_fail "$name (exit $rc, ${dt} ms, wanted /$pat/ within ${max} s): $(echo "$out" | tail -n 2 | tr '\n' ' ')"
	fi
}

if ! ganesha_start "$T/ganesha"; then
	t_fail "nfs: ganesha did not start (see $T/ganesha/ganesha.log)"
	exit 0
fi
NX=(ip netns exec "$NFS_NS")
t_pass "nfs: ganesha + rpcbind up in namespace $NFS_NS ($NFS_URI_BASE)"

E=$NFS_EXPORT_DIR
U=$NFS_URI_BASE
truncate -s 64M "$E/ds.img"
truncate -s 512K "$E/small.img"
truncate -s 8M "$E/private.img"
chmod 600 "$E/private.img"

t_run "nfs: conformance (4 processes CAS stress over lock files)" \
	"${NX[@]}" "$B/tests/conformance" --stress 4 --iters 200 "$U/ds.img"
t_run "nfs: probe reports cas mode nfs-lockfile, shared, safe" sh -c \
	"ip netns exec '$NFS_NS' '$B/vcfs' probe --json '$U/ds.img' | grep -q '\"cas_mode\":\"nfs-lockfile\".*\"cas_shared\":true.*\"safe\":true'"
t_run "nfs: CAS leaves no lock files behind" sh -c "[ -z \"\$(ls -A '$E/ds.img.cas')\" ]"
t_run "nfs: fixed ports, no portmapper lookup (?nfsport=2049&mountport=20048)" \
	"${NX[@]}" "$B/vcfs" probe "$U/ds.img?nfsport=2049&mountport=20048"
t_run "nfs: ?create=16M creates a missing datastore file" sh -c \
	"ip netns exec '$NFS_NS' '$B/vcfs' probe '$U/created.img?create=16M' && [ \$(stat -c %s '$E/created.img') -eq 16777216 ]"

expect_within "nfs: missing file says to create it" 5 "create it first" \
	"${NX[@]}" "$B/vcfs" probe --timeout-ms 2000 "$U/nosuch.img"
expect_within "nfs: path outside every export" 5 "exports none of" \
	"${NX[@]}" "$B/vcfs" probe --timeout-ms 2000 "nfs://127.0.0.1/not/exported/ds.img"
expect_within "nfs: file below the 1 MiB minimum" 5 "smaller than the minimum" \
	"${NX[@]}" "$B/vcfs" probe --timeout-ms 2000 "$U/small.img"
expect_within "nfs: ?create= below the minimum" 5 "smaller than the minimum" \
	"${NX[@]}" "$B/vcfs" probe --timeout-ms 2000 "$U/tiny.img?create=64K"
expect_within "nfs: permission denied (uid 1000 on a 0600 root file)" 5 "permission denied" \
	"${NX[@]}" "$B/vcfs" probe --timeout-ms 2000 "$U/private.img?uid=1000&gid=1000"
expect_within "nfs: caching options refused" 5 "refused" \
	"${NX[@]}" "$B/vcfs" probe --timeout-ms 2000 "$U/ds.img?readahead=65536"
expect_within "nfs: NFSv4 refused" 5 "only NFSv3" \
	"${NX[@]}" "$B/vcfs" probe --timeout-ms 2000 "$U/ds.img?version=4"
p1=$(free_port) p2=$(free_port)
expect_within "nfs: nothing listening (connection refused)" 3 "connection refused" \
	"${NX[@]}" "$B/vcfs" probe --timeout-ms 1000 "nfs://127.0.0.1:$p1$E/ds.img?mountport=$p2"

# A server that stops answering: the open is bounded by the 1 s io timeout.
gpid=$(cat "$T/ganesha/ganesha.pid" 2>/dev/null)
if [ -n "$gpid" ] && kill -STOP "$gpid"; then
	expect_within "nfs: silent server (SIGSTOP), open bounded by the 1 s io timeout" 2 \
		"within the io timeout|timed out" \
		"${NX[@]}" "$B/vcfs" probe --timeout-ms 1000 "$U/ds.img"
	kill -CONT "$gpid"
	t_run "nfs: answers again after SIGCONT" nfs_exec "$B/vcfs" probe "$U/ds.img"
else
	t_fail "nfs: no ganesha pid to stop"
fi

ns_was=$NFS_NS	# ganesha_stop clears NFS_NS
ganesha_stop
t_run "nfs: server and namespace gone after stop" sh -c \
	"! ip netns list | grep -qw '$ns_was' && ! kill -0 ${gpid:-0} 2>/dev/null"
