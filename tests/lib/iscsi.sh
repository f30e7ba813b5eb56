# tests/lib/iscsi.sh - start and stop real iSCSI targets for the tests (sourced
# after tests/lib/common.sh).
#
# Two targets, because they cover the two CAS modes of disk/iscsi.c:
#   istgt  executes COMPARE AND WRITE atomically        -> cas mode "ats"
#   tgtd   has no COMPARE AND WRITE but SCSI-3 persistent reservations and,
#          with thin_provisioning=1, UNMAP              -> cas mode "ats+pr"
#
# Each target runs in the foreground as a child of the test shell, on
# 127.0.0.1 and a free port, with its configuration, pid, log and backing
# image under a private directory; nothing in /etc is read and no system
# service is touched.  Every start registers its stop with t_cleanup_push so
# the servers go away even when a test fails half way.
#
# Served from a network namespace instead (the multi-host tests: the storage
# namespace of tests/lib/hosts.sh, which hosts reach over their own veth so
# one host's path can be cut): set, before the start,
#   ISCSI_NS=namespace     the target runs inside it (ip netns exec)
#   ISCSI_ADDR=address     the portal's address there (e.g. 10.250.0.1)
#   ISCSI_ALLOW=net/bits   initiators allowed (default ADDR's /24)
# Unset (the default), everything is on the machine's 127.0.0.1 as before.
# The namespace is remembered per target, so the stop and tgtd_adm work after
# the variables change.
#
#   istgt_start DIR SIZE_MB [CHAPUSER CHAPPASS]
#       sets ISTGT_URI (iscsi://ADDR:PORT/IQN/0, without credentials),
#       ISTGT_HOST, ISTGT_PORT, ISTGT_IQN, ISTGT_PID; returns non-zero (with
#       the log's tail on stderr) if the target does not come up.
#       ISTGT_MAX_SESSIONS (default 32) raises istgt's session limit (one
#       session per mounted host, plus one per fsck/vcfs tool run).
#   istgt_stop
#   tgtd_start DIR SIZE_MB
#       sets TGTD_URI, TGTD_HOST, TGTD_PORT, TGTD_IQN, TGTD_PID, TGTD_CTL
#       (control port)
#   tgtd_stop
#
# Both functions must run in the test shell itself (not in $(...)) so that the
# variables and cleanups survive.

ISCSI_TEST_IQN_BASE=iqn.2026-11.org.vcfs.test

# iscsi_port_open PORT [NS]: something listens on TCP PORT (in namespace NS).
iscsi_port_open() {
	if [ -n "${2:-}" ]; then
		ip netns exec "$2" ss -ltnH "sport = :$1" 2>/dev/null | grep -q .
	else
		ss -ltnH "sport = :$1" 2>/dev/null | grep -q .
	fi
}

# iscsi_where: set ns, addr, allow (locals of the caller) from ISCSI_NS,
# ISCSI_ADDR, ISCSI_ALLOW; run PROGRAM in ns with iscsi_in "$ns" PROGRAM...
iscsi_where() {
	ns=${ISCSI_NS:-}
	if [ -n "$ns" ]; then
		addr=${ISCSI_ADDR:?ISCSI_NS is set: set ISCSI_ADDR to the portal address in it}
		allow=${ISCSI_ALLOW:-${addr%.*}.0/24}
	else
		addr=${ISCSI_ADDR:-127.0.0.1}
		allow=${ISCSI_ALLOW:-127.0.0.1}
	fi
}

iscsi_in() {
	local ns=$1; shift
	if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "$@"; fi
}

istgt_start() {
	local dir=$1 size=$2 user=${3:-} pass=${4:-}
	local port ucport auth_method=None auth_group="" ns addr allow
	iscsi_where
	port=$(free_port) || { echo "istgt_start: no free port" >&2; return 1; }
	ucport=$(free_port) || { echo "istgt_start: no free port" >&2; return 1; }
	mkdir -p "$dir/media"
	rm -f "$dir/disk.img"
	truncate -s "${size}M" "$dir/disk.img"
	if [ -n "$user" ]; then
		auth_method=CHAP
		auth_group="AuthGroup AuthGroup1"
		cat > "$dir/auth.conf" <<-EOF
		[AuthGroup1]
		  Auth "$user" "$pass"
		EOF
	else
		: > "$dir/auth.conf"
	fi
	# istgt insists on its unit-control portal; lock it with a random secret
	cat >> "$dir/auth.conf" <<-EOF
	[AuthGroup9999]
	  Auth "uctl" "uctl$RANDOM$RANDOM$RANDOM"
	EOF
	# One target (disk1), LUN 0, reachable from $allow only.  Timeout and
	# NopInInterval are istgt's own keep-alives; the digest and burst sizes
	# let 1 MiB requests go in one command.
	cat > "$dir/istgt.conf" <<-EOF
	[Global]
	  NodeBase "$ISCSI_TEST_IQN_BASE"
	  PidFile $dir/istgt.pid
	  AuthFile $dir/auth.conf
	  MediaDirectory $dir/media
	  LogFacility "local7"
	  Timeout 30
	  NopInInterval 20
	  DiscoveryAuthMethod None
	  MaxSessions ${ISTGT_MAX_SESSIONS:-32}
	  MaxConnections 4
	  MaxR2T 32
	  MaxOutstandingR2T 16
	  DefaultTime2Wait 2
	  DefaultTime2Retain 60
	  FirstBurstLength 262144
	  MaxBurstLength 1048576
	  MaxRecvDataSegmentLength 262144
	  InitialR2T Yes
	  ImmediateData Yes
	  DataPDUInOrder Yes
	  DataSequenceInOrder Yes
	  ErrorRecoveryLevel 0
	[UnitControl]
	  AuthMethod CHAP
	  AuthGroup AuthGroup9999
	  Portal UC1 127.0.0.1:$ucport
	  Netmask 127.0.0.1
	[PortalGroup1]
	  Portal DA1 $addr:$port
	[InitiatorGroup1]
	  InitiatorName "ALL"
	  Netmask $allow
	[LogicalUnit1]
	  TargetName disk1
	  Mapping PortalGroup1 InitiatorGroup1
	  AuthMethod $auth_method
	  $auth_group
	  UseDigest Auto
	  UnitType Disk
	  QueueDepth 32
	  LUN0 Storage $dir/disk.img ${size}MB
	EOF
	# not through iscsi_in: $! must be istgt itself (ip netns exec execs),
	# not a subshell running a function, or the stop would orphan it
	if [ -n "$ns" ]; then
		ip netns exec "$ns" istgt -c "$dir/istgt.conf" -D > "$dir/istgt.log" 2>&1 &
	else
		istgt -c "$dir/istgt.conf" -D > "$dir/istgt.log" 2>&1 &
	fi
	ISTGT_PID=$!
	t_cleanup_push "istgt_stop"
	if ! wait_for 10 iscsi_port_open "$port" "$ns"; then
		echo "istgt_start: istgt did not listen on $addr:$port${ns:+ in namespace $ns}; log:" >&2
		tail -n 20 "$dir/istgt.log" >&2
		istgt_stop
		return 1
	fi
	ISTGT_HOST=$addr
	ISTGT_PORT=$port
	ISTGT_IQN=$ISCSI_TEST_IQN_BASE:disk1
	ISTGT_URI=iscsi://$addr:$port/$ISTGT_IQN/0
	ISTGT_DIR=$dir
	return 0
}

istgt_stop() {
	[ -n "${ISTGT_PID:-}" ] || return 0
	if kill -0 "$ISTGT_PID" 2>/dev/null; then
		kill "$ISTGT_PID" 2>/dev/null
		# istgt exits on SIGTERM after closing its sessions; SIGKILL if not
		local i
		for i in $(seq 1 25); do
			kill -0 "$ISTGT_PID" 2>/dev/null || break
			sleep 0.2
		done
		kill -9 "$ISTGT_PID" 2>/dev/null
	fi
	wait "$ISTGT_PID" 2>/dev/null
	ISTGT_PID=
	return 0
}

# tgtadm against our own tgtd only (its private control port, in its
# namespace).
TGTD_NS=
tgtd_adm() {
	iscsi_in "$TGTD_NS" tgtadm --lld iscsi -C "$TGTD_CTL" "$@"
}

tgtd_start() {
	local dir=$1 size=$2 port ctl ns addr allow
	iscsi_where
	port=$(free_port) || { echo "tgtd_start: no free port" >&2; return 1; }
	# tgtd's management socket is /var/run/tgtd/socket.CTL: pick a CTL no
	# other tgtd (another test, the system service) is using.
	for _ in $(seq 1 50); do
		ctl=$((1000 + RANDOM % 8000))
		[ -e "/var/run/tgtd/socket.$ctl" ] || break
	done
	mkdir -p "$dir"
	rm -f "$dir/disk.img"
	truncate -s "${size}M" "$dir/disk.img"
	TGTD_CTL=$ctl
	TGTD_NS=$ns
	if [ -n "$ns" ]; then
		ip netns exec "$ns" tgtd -f -C "$ctl" --iscsi "portal=$addr:$port" > "$dir/tgtd.log" 2>&1 &
	else
		tgtd -f -C "$ctl" --iscsi "portal=$addr:$port" > "$dir/tgtd.log" 2>&1 &
	fi
	TGTD_PID=$!
	t_cleanup_push "tgtd_stop"
	if ! wait_for 10 iscsi_port_open "$port" "$ns" || ! wait_for 5 tgtd_adm --mode target --op show; then
		echo "tgtd_start: tgtd did not come up on $addr:$port${ns:+ in namespace $ns}; log:" >&2
		tail -n 20 "$dir/tgtd.log" >&2
		tgtd_stop
		return 1
	fi
	TGTD_IQN=$ISCSI_TEST_IQN_BASE:tgt1
	# Target, LUN 1 backed by the image (LUN 0 is tgt's controller), thin
	# provisioning so UNMAP is offered, write-back cache off is not needed:
	# SYNCHRONIZE CACHE and FUA reach the file.  Large bursts: the defaults
	# (8 KiB segments) make 1 MiB I/O crawl.
	tgtd_adm --mode target --op new --tid 1 --targetname "$TGTD_IQN" &&
	tgtd_adm --mode logicalunit --op new --tid 1 --lun 1 --backing-store "$dir/disk.img" &&
	tgtd_adm --mode logicalunit --op update --tid 1 --lun 1 --params thin_provisioning=1 &&
	tgtd_adm --mode target --op update --tid 1 --name MaxRecvDataSegmentLength --value 262144 &&
	tgtd_adm --mode target --op update --tid 1 --name MaxXmitDataSegmentLength --value 262144 &&
	tgtd_adm --mode target --op update --tid 1 --name MaxBurstLength --value 1048576 &&
	tgtd_adm --mode target --op update --tid 1 --name FirstBurstLength --value 262144 &&
	tgtd_adm --mode target --op bind --tid 1 --initiator-address "$allow" || {
		echo "tgtd_start: configuring the target failed; log:" >&2
		tail -n 20 "$dir/tgtd.log" >&2
		tgtd_stop
		return 1
	}
	TGTD_HOST=$addr
	TGTD_PORT=$port
	TGTD_URI=iscsi://$addr:$port/$TGTD_IQN/1
	TGTD_DIR=$dir
	return 0
}

tgtd_stop() {
	[ -n "${TGTD_PID:-}" ] || return 0
	if kill -0 "$TGTD_PID" 2>/dev/null; then
		# tgtd ignores SIGTERM: tear the target down, then the daemon
		tgtd_adm --mode target --op delete --force --tid 1 >/dev/null 2>&1
		tgtd_adm --mode system --op delete --force >/dev/null 2>&1
		local i
		for i in $(seq 1 10); do
			kill -0 "$TGTD_PID" 2>/dev/null || break
			sleep 0.2
		done
		kill -9 "$TGTD_PID" 2>/dev/null
	fi
	wait "$TGTD_PID" 2>/dev/null
	rm -f "/var/run/tgtd/socket.$TGTD_CTL" "/var/run/tgtd/socket.$TGTD_CTL.lock"
	TGTD_PID=
	return 0
}
