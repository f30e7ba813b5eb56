# tests/lib/hosts.sh - many vcfs hosts on one machine (sourced after common.sh).
#
# A "host" is a vcfs-fuse daemon in namespaces of its own: a network namespace
# (ip netns), and a private mount and UTS namespace (unshare) so that its FUSE
# mount is visible only inside it and its hostname is its name.  Every host
# mounts the same datastore URI: an image file (the OFD CAS works across
# namespaces of one kernel), or a LUN / NFS file served from the storage
# namespace that hosts_net_setup creates and reaches over a veth per host, so
# that one host's storage path can be cut (host_cut).
#
#   hosts_net_setup          storage namespace $HOSTS_STOR_NS with bridge
#                            10.250.0.1/24; later hosts get 10.250.0.(10+i)
#   hosts_bridge NS          that bridge in an existing namespace NS (a
#                            server's own, e.g. nfs.sh's $NFS_NS)
#   host_start NAME URI [OPTS]   mount; sets HOST_PID_NAME, HOST_MNT_NAME
#   host_launch NAME URI [OPTS] / host_wait NAME [SECS]   the same in two steps
#                            (launch many, then wait: their logins overlap)
#   host_exec NAME CMD...    run CMD inside the host (its mount, net, uts)
#   host_mnt NAME            its mount point (a path valid inside the host)
#   host_kill NAME           kill -9 (a crash: no unmount, no slot release)
#   host_stop NAME           clean unmount
#   host_cut NAME / host_uncut NAME   storage link down / up
#   hosts_stop_all
#
# HOSTS_LOG_TS=1 before host_start: every line of that host's log
# ($HOSTS_DIR/NAME/fuse.log) starts with the wall-clock time it was written
# (seconds.microseconds, bash's $EPOCHREALTIME; read as the daemon writes it,
# stderr being unbuffered), so events of several hosts and the test's own
# ($EPOCHREALTIME) are ordered on one clock: host_log_time NAME REGEX prints
# the time of the first matching line.

HOSTS_DIR=$VCFS_TEST_TMP/hosts
HOSTS_STOR_NS=
HOSTS_N=0
declare -A HOST_PID HOST_NS HOST_MNT HOST_IDX

hosts_net_setup() {
	HOSTS_STOR_NS=vcstor$$
	ip netns add "$HOSTS_STOR_NS" || return 1
	t_cleanup_push "ip netns del $HOSTS_STOR_NS"
	ip -n "$HOSTS_STOR_NS" link set lo up
	hosts_bridge "$HOSTS_STOR_NS"
}

# hosts_bridge NS: the storage bridge br0 (10.250.0.1/24) in namespace NS.
# Its MAC address is set once and for all: a bridge without one takes the
# lowest MAC of its ports, so it changed whenever a host whose (random) veth
# MAC was lower joined.  A host that had resolved 10.250.0.1 while the bridge
# wore ANOTHER host's port address then sent to a MAC that is not its own
# port's: the bridge passes such frames up as PACKET_OTHERHOST, IP drops
# them, and that host's TCP connections to the server stalled until its ARP
# entry expired (107 s measured) - the "NFS server stalls after mounting"
# flake of cluster_net.sh.
hosts_bridge() {
	ip -n "$1" link add br0 type bridge || return 1
	ip -n "$1" link set br0 address 02:00:0a:fa:00:01
	ip -n "$1" addr add 10.250.0.1/24 dev br0
	ip -n "$1" link set br0 up
}

stor_exec() { ip netns exec "$HOSTS_STOR_NS" "$@"; }

hosts_stamp() {
	local l
	while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done
}

host_log_time() {
	grep -E -m1 -- "$2" "$HOSTS_DIR/$1/fuse.log" 2>/dev/null | awk '{ print $1 }'
}

host_start() {
	host_launch "$@" && host_wait "$1"
}

# host_launch NAME URI [OPTS]: host_start without waiting for the mount, so
# that many hosts log in at once; host_wait NAME [SECONDS] then waits (10 s).
host_launch() {
	local name=$1 uri=$2 opts=${3:-} ns i mnt log
	HOSTS_N=$((HOSTS_N + 1)); i=$HOSTS_N
	ns=vch$$_$i
	mnt=$HOSTS_DIR/$name/mnt
	log=$HOSTS_DIR/$name/fuse.log
	mkdir -p "$mnt"
	ip netns add "$ns" || return 1
	t_cleanup_push "ip netns del $ns"
	ip -n "$ns" link set lo up
	if [ -n "$HOSTS_STOR_NS" ]; then
		ip link add "vh$$_$i" type veth peer name "vs$$_$i" || return 1
		ip link set "vh$$_$i" netns "$ns"
		ip link set "vs$$_$i" netns "$HOSTS_STOR_NS"
		ip -n "$ns" link set "vh$$_$i" name eth0
		ip -n "$ns" addr add "10.250.0.$((10 + i))/24" dev eth0
		ip -n "$ns" link set eth0 up
		ip -n "$HOSTS_STOR_NS" link set "vs$$_$i" master br0
		ip -n "$HOSTS_STOR_NS" link set "vs$$_$i" up
	fi
	local cmd="hostname '$name'; exec '$VCFS_BUILD/vcfs-fuse' -f -o host='$name'${opts:+,$opts} '$uri' '$mnt'"
	if [ -n "${HOSTS_LOG_TS:-}" ]; then
		# $! stays the daemon: the stamper is the redirection's child
		ip netns exec "$ns" unshare --mount --uts --propagation private \
			sh -c "$cmd" > >(hosts_stamp > "$log") 2>&1 &
	else
		ip netns exec "$ns" unshare --mount --uts --propagation private \
			sh -c "$cmd" > "$log" 2>&1 &
	fi
	HOST_PID[$name]=$!
	HOST_NS[$name]=$ns
	HOST_MNT[$name]=$mnt
	HOST_IDX[$name]=$i
	t_cleanup_push "kill -9 ${HOST_PID[$name]}"
}

host_wait() {
	local name=$1 secs=${2:-10} t mnt=${HOST_MNT[$1]} log=$HOSTS_DIR/$1/fuse.log
	for t in $(seq 1 $((secs * 10))); do
		if ! kill -0 "${HOST_PID[$name]}" 2>/dev/null; then
			echo "host $name: vcfs-fuse exited:" >&2; tail -n 5 "$log" >&2
			return 1
		fi
		nsenter -t "${HOST_PID[$name]}" -m -- mountpoint -q "$mnt" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "host $name: not mounted after $secs s" >&2; tail -n 5 "$log" >&2
	return 1
}

host_exec() {
	local name=$1; shift
	nsenter -t "${HOST_PID[$name]}" -m -u -n -- "$@"
}

host_mnt() { echo "${HOST_MNT[$1]}"; }

host_kill() {
	kill -9 "${HOST_PID[$1]}" 2>/dev/null || true
	wait "${HOST_PID[$1]}" 2>/dev/null || true
	return 0
}

host_stop() {
	local name=$1
	kill -0 "${HOST_PID[$name]}" 2>/dev/null || return 0
	host_exec "$name" fusermount3 -u "${HOST_MNT[$name]}" || return 1
	wait "${HOST_PID[$name]}" 2>/dev/null || true
	return 0
}

host_cut() { ip -n "${HOST_NS[$1]}" link set eth0 down; }
host_uncut() { ip -n "${HOST_NS[$1]}" link set eth0 up; }

hosts_stop_all() {
	local n
	for n in "${!HOST_PID[@]}"; do host_stop "$n" || host_kill "$n"; done
}
