# tests/lib/ceph.sh - start and stop a throw-away one-node Ceph cluster for the
# tests (sourced after tests/lib/common.sh).
#
# One ceph-mon and one ceph-osd on 127.0.0.1, the OSD on memstore (objects in
# RAM, nothing on a disk), authentication off, no manager, and one pool of
# size 1.  Everything lives under DIR: the conf file, the monitor's store and
# keyring, the OSD's data directory, sockets, pid files and logs; nothing is
# read from or written to /etc/ceph or /var/lib/ceph, so several of these
# clusters (other tests, other engineers) can run side by side.  The monitor
# listens on a free port (msgr v1 only, so one port is all a client needs);
# the OSD picks its own ports from the 6800-7300 range.
#
#   ceph_start DIR
#       sets CEPH_CONF (conf path for every client: rados -c, ?conf=),
#       CEPH_POOL (the pool, "vcfs"), CEPH_MON_PORT, CEPH_MON_PID,
#       CEPH_OSD_PID, CEPH_DIR; registers ceph_stop with t_cleanup_push;
#       returns non-zero (with the logs' tails on stderr) if the cluster does
#       not take a write within its bound.
#   ceph_stop
#   ceph_cli CMD...   run the ceph CLI against the cluster, bounded
#
# ceph_start must run in the test shell itself (not in $(...)) so that the
# variables and the cleanup survive.
#
# Invariants: every wait is bounded (the monitor 15 s, the OSD plus pool 30 s;
# every CLI call 10 s and rados_*_op_timeout 5 s), and ceph_stop kills only
# the two pids it started.

CEPH_DIR=
CEPH_CONF=
CEPH_POOL=vcfs
CEPH_MON_PID=
CEPH_OSD_PID=

# The CLI would wait for an absent monitor forever (client_mount_timeout is
# 300 s by default): bound every call.
ceph_cli() {
	timeout 10 ceph -c "$CEPH_CONF" --connect-timeout 5 "$@"
}

ceph_rados() {
	timeout 10 rados -c "$CEPH_CONF" --client_mount_timeout 5 \
		--rados_osd_op_timeout 5 --rados_mon_op_timeout 5 "$@"
}

ceph_start() {
	local dir=$1 fsid port osd_uuid osd_id tool
	dir=$(mkdir -p "$dir" && cd "$dir" && pwd) || return 1
	for tool in ceph-mon ceph-osd ceph monmaptool ceph-authtool rados uuidgen; do
		if ! command -v $tool >/dev/null; then
			echo "ceph_start: $tool not installed" >&2
			return 1
		fi
	done
	rm -rf "$dir/mon" "$dir/osd" "$dir/run" "$dir/log" "$dir/monmap" "$dir/keyring"
	mkdir -p "$dir/mon" "$dir/osd" "$dir/run" "$dir/log"
	port=$(free_port) || { echo "ceph_start: no free port" >&2; return 1; }
	fsid=$(uuidgen)
	CEPH_DIR=$dir
	CEPH_CONF=$dir/ceph.conf
	CEPH_MON_PORT=$port
	# Small and quiet: one OSD shard and few threads (the machine is shared),
	# a 512 MiB memstore, crush placing replicas across OSDs rather than
	# hosts (there is one host), pool size 1 allowed and the default,
	# health warnings about that silenced.  Daemon paths are per section
	# ("$name" and "$id" expand per daemon).
	cat > "$CEPH_CONF" <<-EOF
	[global]
	fsid = $fsid
	mon host = [v1:127.0.0.1:$port]
	public addr = 127.0.0.1
	ms bind msgr2 = false
	auth cluster required = none
	auth service required = none
	auth client required = none
	auth allow insecure global id reclaim = false
	run dir = $dir/run
	keyring = $dir/keyring
	osd pool default size = 1
	osd pool default min size = 1
	osd pool default pg num = 8
	osd pool default pgp num = 8
	osd crush chooseleaf type = 0
	mon allow pool size one = true
	mon allow pool delete = true
	mon warn on pool no redundancy = false
	mon data avail warn = 1
	mon data avail crit = 0
	ms bind port min = 6800
	ms bind port max = 7300
	[client]
	# clients: no admin socket (concurrent ones would fight over the name),
	# no log file
	admin socket =
	log file =
	[mon]
	admin socket = $dir/run/\$name.asok
	pid file = $dir/run/\$name.pid
	log file = $dir/log/\$name.log
	mon cluster log file = $dir/log/cluster.log
	mon data = $dir/mon/\$id
	mon initial members = a
	[osd]
	admin socket = $dir/run/\$name.asok
	pid file = $dir/run/\$name.pid
	log file = $dir/log/\$name.log
	osd data = $dir/osd/\$id
	osd objectstore = memstore
	memstore device bytes = 536870912
	osd op num shards = 1
	osd op num threads per shard = 2
	osd crush update on start = false
	osd class update on start = false
	EOF

	# Monitor: its own keyring only because mkfs insists on one.
	ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. \
		--cap mon 'allow *' >/dev/null 2>&1 &&
	monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$port]" \
		"$dir/monmap" >/dev/null 2>&1 &&
	ceph-mon -c "$CEPH_CONF" -i a --mkfs --monmap "$dir/monmap" \
		--keyring "$dir/keyring" > "$dir/log/mon-mkfs.out" 2>&1
	if [ $? -ne 0 ]; then
		echo "ceph_start: monitor mkfs failed" >&2
		tail -n 20 "$dir/log/mon-mkfs.out" >&2
		return 1
	fi
	t_cleanup_push "ceph_stop"
	# -f: foreground (logging to the log file), so $! is the daemon itself
	ceph-mon -c "$CEPH_CONF" -i a -f > "$dir/log/mon.out" 2>&1 &
	CEPH_MON_PID=$!
	if ! wait_for 15 ceph_cli mon stat; then
		echo "ceph_start: monitor on 127.0.0.1:$port not answering after 15 s" >&2
		tail -n 20 "$dir/log/mon.out" "$dir/log/mon.a.log" >&2 2>/dev/null
		return 1
	fi

	# OSD: registered with the monitor, then its memstore made and started.
	# Right after "mon stat" answered, a command may still reach the monitor
	# with a zero fsid and be dropped (mon.a.log: "handle_command on fsid
	# 0000... != ...", the CLI then prints nothing: seen once in CI); "osd new"
	# with the same uuid is idempotent, so ask again for a few seconds.
	osd_uuid=$(uuidgen)
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		osd_id=$(ceph_cli osd new "$osd_uuid" 2>/dev/null)
		[ "$osd_id" = 0 ] && break
		sleep 0.5
	done
	if [ "$osd_id" != 0 ]; then
		echo "ceph_start: 'ceph osd new' gave '$osd_id', wanted 0" >&2
		return 1
	fi
	# The OSD would place itself in the crush map and set its device class
	# at start, by mon commands it may send before its monitor client has
	# the monmap (Pacific refuses them: "wrong fsid", and the OSD exits).
	# So place it here instead, directly under the root: with chooseleaf
	# type 0 the one rule picks OSDs, not hosts.
	if ! ceph_cli osd crush add osd.0 1.0 root=default >/dev/null 2>&1; then
		echo "ceph_start: cannot add osd.0 to the crush map" >&2
		return 1
	fi
	mkdir -p "$dir/osd/0"
	if ! ceph-osd -c "$CEPH_CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" \
		> "$dir/log/osd-mkfs.out" 2>&1; then
		echo "ceph_start: OSD mkfs failed" >&2
		tail -n 20 "$dir/log/osd-mkfs.out" >&2
		return 1
	fi
	ceph-osd -c "$CEPH_CONF" -i 0 -f > "$dir/log/osd.out" 2>&1 &
	CEPH_OSD_PID=$!

	if ! ceph_cli osd pool create "$CEPH_POOL" 8 8 >/dev/null 2>&1 ||
	   ! ceph_cli osd pool application enable "$CEPH_POOL" rados >/dev/null 2>&1; then
		echo "ceph_start: cannot create pool $CEPH_POOL" >&2
		return 1
	fi
	# Up means a client write lands: the OSD booted, the PGs peered.
	echo ready > "$dir/ready"
	if ! wait_for 30 ceph_rados -p "$CEPH_POOL" put vcfs-ready "$dir/ready"; then
		echo "ceph_start: pool $CEPH_POOL takes no write after 30 s" >&2
		ceph_cli -s >&2 2>&1
		tail -n 20 "$dir/log/osd.out" "$dir/log/osd.0.log" >&2 2>/dev/null
		return 1
	fi
	ceph_rados -p "$CEPH_POOL" rm vcfs-ready >/dev/null 2>&1
	export CEPH_CONF CEPH_POOL
	return 0
}

# Stop one daemon by pid: TERM, up to 5 s, then KILL; reap it.
ceph_kill_pid() {
	local pid=$1
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill -CONT "$pid" 2>/dev/null
		kill "$pid" 2>/dev/null
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

ceph_stop() {
	# OSD first: a monitor going away under it only makes it wait
	ceph_kill_pid "$CEPH_OSD_PID"
	ceph_kill_pid "$CEPH_MON_PID"
	CEPH_OSD_PID=
	CEPH_MON_PID=
}
