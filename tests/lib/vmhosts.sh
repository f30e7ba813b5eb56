# tests/lib/vmhosts.sh - hosts that run VMs: tests/lib/hosts.sh hosts, each
# with the datastore bound at one path ($DSP) and its own vcvm-agent (sourced
# after common.sh and hosts.sh; used by the vm_* tests and bench/vm_bench.sh).
#
#   vm_hosts_setup DIR SIZE   image DIR/ds.img of SIZE (mkfs -H 8), the
#                             storage network, a cluster key and hosts file;
#                             sets img, DSP, KEY, HF
#   vm_host_start NAME [AGENT-OPTS]   mount as NAME, bind at $DSP, list it in
#                             $HF, start its agent (AGENT[NAME], IP[NAME]);
#                             cleanups kill the agent and the host's QEMUs
#   vm_henv NAME             the environment of NAME's agent (and of a
#                             direct-mode CLI there): run and state dirs
#                             under DIR/NAME, TCG, hosts file, key
#   vc NAME ARGS...          the vcvm CLI inside NAME, talking to NAME's agent
#   vcli NAME ARGS...        the CLI inside NAME in direct mode (no --host)
#   kill_qemus NAME          kill -9 every QEMU of NAME (pid files)
declare -A AGENT IP

vm_hosts_setup() {
	VMH_DIR=$1
	img=$VMH_DIR/ds.img
	truncate -s "$2" "$img"
	"$B/mkfs.vcfs" -q -H 8 "$img" || { echo "mkfs.vcfs $img failed"; return 1; }
	DSP=$VMH_DIR/vmfs		# every host mounts the datastore here (its own namespace)
	mkdir -p "$DSP"
	hosts_net_setup || { echo "network namespaces could not be set up"; return 1; }
	KEY=$VMH_DIR/cluster.key
	"$B/vcvm" keygen "$KEY" > /dev/null || return 1
	HF=$VMH_DIR/hosts
	: > "$HF"
}

vm_henv() {
	echo VCVM_HOST="$1" VCVM_RUN_DIR="$VMH_DIR/$1/run" VCVM_STATE_DIR="$VMH_DIR/$1/state" \
		VCVM_ACCEL=tcg VCVM_HOSTS_FILE="$HF" VCVM_KEY_FILE="$KEY"
}

kill_qemus() {
	local p
	for p in "$VMH_DIR/$1"/run/*/qemu.pid; do [ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null; done
	return 0
}

vm_host_start() {
	local h=$1; shift
	host_start "$h" "$img" || return 1
	host_exec "$h" mount --bind "$(host_mnt "$h")" "$DSP" || return 1
	IP[$h]=10.250.0.$((10 + HOST_IDX[$h]))
	echo "$h ${IP[$h]}" >> "$HF"
	mkdir -p "$VMH_DIR/$h"
	# nsenter itself, not host_exec: $! must be the agent (nsenter and env
	# exec it), not the subshell of a backgrounded function
	# shellcheck disable=SC2046
	nsenter -t "${HOST_PID[$h]}" -m -u -n -- env $(vm_henv "$h") "$B/vcvm-agent" \
		--key "$KEY" "$@" > "$VMH_DIR/$h/agent.log" 2>&1 &
	AGENT[$h]=$!
	t_cleanup_push "kill_qemus $h"
	t_cleanup_push "kill ${AGENT[$h]}"
}

vc() {
	local h=$1; shift
	host_exec "$h" env VCVM_KEY_FILE="$KEY" VCVM_HOSTS_FILE="$HF" "$B/vcvm" --host "$h" "$@"
}

# shellcheck disable=SC2046
vcli() { local h=$1; shift; host_exec "$h" env $(vm_henv "$h") "$B/vcvm" "$@"; }
