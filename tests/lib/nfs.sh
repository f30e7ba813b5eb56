# tests/lib/nfs.sh - start and stop a real NFSv3 server for the tests (sourced
# after tests/lib/common.sh).
#
# The server is nfs-ganesha with the VFS FSAL plus the rpcbind it registers
# with, both inside a network namespace of their own (only "lo" in it, up) and
# a private mount namespace with a tmpfs on /run, so that neither touches the
# machine's own rpcbind, /run/rpcbind.sock or port 2049.  The exported
# directory lives on the host filesystem (DIR/export), so the test script
# creates and inspects datastore files directly; clients reach the server by
# running inside the namespace:  nfs_exec CMD...  (= ip netns exec NS CMD).
#
#   ganesha_start DIR
#       sets NFS_NS (namespace), NFS_HOST (127.0.0.1, valid inside NFS_NS),
#       NFS_EXPORT (the export's path, also the path to put in URIs),
#       NFS_EXPORT_DIR (= NFS_EXPORT, host path of the export), NFS_URI_BASE
#       (nfs://127.0.0.1$NFS_EXPORT), GANESHA_PID, RPCBIND_PID; registers
#       ganesha_stop with t_cleanup_push; returns non-zero (with the log's
#       tail on stderr) if the export does not become mountable in time.
#   ganesha_stop
#   nfs_exec CMD...   run CMD inside the server's network namespace
#
# ganesha_start must run in the test shell itself (not in $(...)) so that the
# variables and the cleanup survive.

NFS_NS=
GANESHA_PID=
RPCBIND_PID=

nfs_exec() {
	ip netns exec "$NFS_NS" "$@"
}

# The export answers a MOUNT and a READDIR through libnfs (nfs-ls from
# libnfs-utils), i.e. rpcbind, mountd and nfsd are all up.
nfs_export_ready() {
	nfs_exec nfs-ls "nfs://127.0.0.1$NFS_EXPORT/?version=3" >/dev/null 2>&1
}

ganesha_start() {
	local dir=$1
	dir=$(mkdir -p "$dir" && cd "$dir" && pwd) || return 1
	NFS_NS=vcfsnfs$$_$RANDOM
	NFS_HOST=127.0.0.1
	NFS_EXPORT=$dir/export
	NFS_EXPORT_DIR=$NFS_EXPORT
	NFS_URI_BASE=nfs://$NFS_HOST$NFS_EXPORT
	rm -rf "$dir/export" "$dir/recov"
	mkdir -p "$dir/export" "$dir/recov"
	rm -f "$dir/ganesha.pid" "$dir/rpcbind.pid" "$dir/ganesha.log"
	# NFSv3 over TCP only, fixed ports (URIs may name them with
	# ?nfsport=2049&mountport=20048 and skip the portmapper), no NLM, no
	# rquota, no grace period; root is not squashed so that the test
	# (running as root) owns what it creates.
	cat > "$dir/ganesha.conf" <<-EOF
	NFS_CORE_PARAM {
	  Protocols = 3;
	  NFS_Port = 2049;
	  MNT_Port = 20048;
	  Enable_NLM = false;
	  Enable_RQUOTA = false;
	}
	NFSV4 {
	  Graceless = true;
	  RecoveryBackend = fs;
	  RecoveryRoot = "$dir/recov";
	}
	NFS_KRB5 {
	  Active_krb5 = false;
	}
	EXPORT {
	  Export_Id = 1;
	  Path = "$dir/export";
	  Pseudo = "$dir/export";
	  Access_Type = RW;
	  Squash = No_Root_Squash;
	  Protocols = 3;
	  Transports = TCP;
	  SecType = sys;
	  FSAL {
	    Name = VFS;
	  }
	}
	LOG {
	  Default_Log_Level = WARN;
	}
	EOF
	if ! ip netns add "$NFS_NS"; then
		echo "ganesha_start: cannot create network namespace $NFS_NS" >&2
		return 1
	fi
	t_cleanup_push "ganesha_stop"
	nfs_exec ip link set lo up
	# A private /run for rpcbind's socket and ganesha's pid/state; rpcbind
	# is started first (ganesha registers with it) and its pid recorded.
	ip netns exec "$NFS_NS" unshare --mount --propagation private bash -c '
		mount -t tmpfs vcfs-nfs-run /run || exit 1
		mkdir -p /run/ganesha /run/rpcbind
		rpcbind -f -w & echo $! > "$1/rpcbind.pid"
		for _ in $(seq 1 50); do [ -S /run/rpcbind.sock ] && break; sleep 0.1; done
		exec ganesha.nfsd -F -f "$1/ganesha.conf" -L "$1/ganesha.log" -p "$1/ganesha.pid"
	' ganesha "$dir" > "$dir/ganesha.out" 2>&1 &
	GANESHA_PID=$!
	GANESHA_DIR=$dir
	wait_for 5 test -s "$dir/rpcbind.pid"
	RPCBIND_PID=$(cat "$dir/rpcbind.pid" 2>/dev/null)
	if ! wait_for 30 nfs_export_ready; then
		echo "ganesha_start: export $NFS_EXPORT not mountable after 30 s" >&2
		tail -n 20 "$dir/ganesha.log" "$dir/ganesha.out" >&2 2>/dev/null
		return 1
	fi
	return 0
}

# Stop one process by pid: TERM, up to 5 s, then KILL.
nfs_kill_pid() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -CONT "$pid" 2>/dev/null
	kill "$pid" 2>/dev/null
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null
}

ganesha_stop() {
	# $! is ganesha itself (ip netns exec, unshare and bash all exec);
	# the pid file is a second opinion
	nfs_kill_pid "$GANESHA_PID"
	[ -n "$GANESHA_DIR" ] && nfs_kill_pid "$(cat "$GANESHA_DIR/ganesha.pid" 2>/dev/null)"
	nfs_kill_pid "$RPCBIND_PID"
	[ -n "$GANESHA_PID" ] && wait "$GANESHA_PID" 2>/dev/null
	GANESHA_PID=
	RPCBIND_PID=
	if [ -n "$NFS_NS" ]; then
		ip netns del "$NFS_NS" 2>/dev/null
		NFS_NS=
	fi
}
