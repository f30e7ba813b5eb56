#!/usr/bin/env bash
# vm_cpu.sh - the cluster's CPU model (EVC-like baseline): host-info lists the
# models this host's QEMU runs with its accelerator; two hosts in namespaces
# with agents, host b allowing fewer models (--cpu-models, as an older CPU
# would); `vcvm cluster-cpu` asks both and records the highest common model
# on the datastore; `vcvm create` there uses it; the VM starts with
# -cpu MODEL,enforce on a and live-migrates to b; a model b does not run is
# refused naming it; a model the accelerator cannot run does not start (TCG:
# Haswell); an unreachable host, a corrupt record: clear errors, nothing
# changed.  TCG, 128 MiB guest.
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/hosts.sh"
. "$(dirname "$0")/lib/vmhosts.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/vmcpu
mkdir -p "$T"

if ! command -v qemu-system-x86_64 >/dev/null; then t_skip "vm cpu: no qemu-system-x86_64"; exit 0; fi
if [ ! -x "$B/vcvm-agent" ] || [ ! -x "$B/vcfs-fuse" ]; then t_skip "vm cpu: not built"; exit 0; fi

G=$(bash "$VCFS_TOP/tests/guest/build.sh" 2> "$T/guest-build.log") ||
	{ t_fail "guest build"; tail -n 5 "$T/guest-build.log"; exit 0; }

t_section "vm cpu: this host's models"
out=$(VCVM_ACCEL=tcg "$B/vcvm" host-info --json 2>&1)
if echo "$out" | grep -q '"qemu64"' && echo "$out" | grep -q '"accel": "tcg"'; then
	t_pass "host-info lists qemu64 under tcg"
else
	t_fail "host-info: $out"
fi
# TCG in QEMU 7.2 has no AVX/FMA etc.: Haswell has unavailable features
if echo "$out" | grep -q '"Haswell"'; then
	t_fail "host-info lists Haswell under TCG (it has unavailable features)"
else
	t_pass "host-info leaves out Haswell (features TCG lacks)"
fi
best=$(echo "$out" | sed -n 's/.*"cpu_best": "\([^"]*\)".*/\1/p')
[ -n "$best" ] && [ "$best" != qemu64 ] && t_pass "best model here: $best" ||
	t_fail "best model here: '$best'"

vm_hosts_setup "$T" 1G || { t_fail "VM hosts setup"; exit 0; }

t_section "vm cpu: two hosts, b runs fewer models"
OLD="qemu64,kvm64,Conroe,Penryn,Nehalem,486"
# b's QEMU is a wrapper that counts model probes (-machine none): the agent
# probes once at its start, and its connection children reuse the answer
cat > "$T/qemu-count" <<EOF2
#!/bin/sh
case " \$* " in *" -machine none "*) echo probe >> "$T/probes.log" ;; esac
exec qemu-system-x86_64 "\$@"
EOF2
chmod +x "$T/qemu-count"
: > "$T/probes.log"
if vm_host_start a && VCVM_QEMU=$T/qemu-count vm_host_start b --cpu-models "$OLD"; then
	t_pass "hosts a and b (b: --cpu-models $OLD)"
else
	t_fail "hosts"; exit 0
fi
wait_for 20 vc a host-info > /dev/null && wait_for 20 vc b host-info > /dev/null ||
	{ t_fail "agents answer"; exit 0; }
out=$(vc b host-info --json 2>&1)
if echo "$out" | grep -q '"cpu_best": "Nehalem"' && ! echo "$out" | grep -q '"Westmere"'; then
	t_pass "b answers HOST_INFO: best Nehalem, no Westmere"
else
	t_fail "b's host-info: $(echo "$out" | tr '\n' ' ' | cut -c1-300)"
fi
vc b host-info > /dev/null
n=$(wc -l < "$T/probes.log")
if [ "$n" -eq 1 ]; then
	t_pass "b's agent probed its QEMU's models once for three or more HOST_INFO requests"
else
	t_fail "b's agent probed its QEMU's models $n times (once expected)"
fi

t_section "vm cpu: cluster-cpu"
t_expect_fail "an unreachable host fails the command, naming it" "nohost" \
	vcli a cluster-cpu --datastore "$DSP" --hosts a,nohost
t_run "nothing recorded after the failure" host_exec a sh -c "[ ! -e '$DSP/.vcvm-cluster.json' ]"
out=$(vcli a cluster-cpu --dry-run --hosts a 2>&1)
if echo "$out" | grep -q "cluster CPU model: $best" && host_exec a sh -c "[ ! -e '$DSP/.vcvm-cluster.json' ]"; then
	t_pass "--dry-run for a alone: $best, nothing recorded"
else
	t_fail "--dry-run: $out"
fi
out=$(vcli a cluster-cpu --datastore "$DSP" --hosts a,b 2>&1)
echo "$out" | sed 's/^/          | /'
if echo "$out" | grep -q "cluster CPU model: Nehalem" &&
	host_exec a grep -q '"cpu_model": "Nehalem"' "$DSP/.vcvm-cluster.json"; then
	t_pass "cluster-cpu a,b: Nehalem, recorded on the datastore"
else
	t_fail "cluster-cpu a,b: $out"
fi
t_run "b sees the record through its own mount" host_exec b grep -q Nehalem "$DSP/.vcvm-cluster.json"

t_section "vm cpu: a VM on the cluster's model"
t_run "create on a (no --cpu-model)" vc a create c1 --datastore "$DSP" --memory 128 \
	--disk-size 64M --kernel "$G/vmlinuz" --initrd "$G/initrd.img" \
	--append "console=ttyS0 panic=-1 quiet"
t_run "vm.json says Nehalem" host_exec a grep -q '"cpu_model": "Nehalem"' "$DSP/c1/vm.json"
t_run "start on a" vc a start c1
pid=$(cat "$T"/a/run/*/qemu.pid 2>/dev/null | head -n 1)
t_run "QEMU runs -cpu Nehalem,enforce" sh -c "tr '\\0' ' ' < /proc/$pid/cmdline | grep -q -- '-cpu Nehalem,enforce'"
t_run "its disk uses native AIO (VCVM_AIO default)" sh -c "tr '\\0' ' ' < /proc/$pid/cmdline | grep -q '\"aio\":\"native\"'"
t_run "migrate to b (b runs Nehalem)" vc a migrate c1 --to b
out=$(vc b status c1 2>&1)
echo "$out" | grep -q "running on b" && t_pass "status on b: running on b" ||
	t_fail "status on b: $out"
t_run "stop on b" vc b stop --hard c1

t_section "vm cpu: models a host cannot run"
host_exec a sed -i 's/"cpu_model": "Nehalem"/"cpu_model": "Westmere"/' "$DSP/c1/vm.json"
t_run "vm.json now says Westmere" host_exec a grep -q '"cpu_model": "Westmere"' "$DSP/c1/vm.json"
t_run "c1 as Westmere starts on a" vc a start c1
t_expect_fail "migrate to b refused, naming the model" "Westmere" vc a migrate c1 --to b
out=$(vc a status c1 2>&1)
echo "$out" | grep -q "running on a" && t_pass "c1 still runs on a after the refusal" ||
	t_fail "after the refusal: $out"
t_run "stop on a" vc a stop --hard c1
host_exec a sed -i 's/"cpu_model": "Westmere"/"cpu_model": "Haswell"/' "$DSP/c1/vm.json"
t_run "vm.json now says Haswell" host_exec a grep -q '"cpu_model": "Haswell"' "$DSP/c1/vm.json"
t_expect_fail "Haswell under TCG does not start (enforce)" "Haswell|feature" vc a start c1
out=$(vc a status c1 2>&1)
echo "$out" | grep -Eq "state: *(stopped|crashed)" && t_pass "c1 not running after the refused start" ||
	t_fail "after the refused start: $out"

t_section "vm cpu: a corrupt record"
host_exec a sh -c "echo '{\"cpu_model\": ' > '$DSP/.vcvm-cluster.json'"
t_run "the record is corrupt" host_exec a sh -c "! grep -q Nehalem '$DSP/.vcvm-cluster.json'"
t_expect_fail "create refuses, naming the record" "vcvm-cluster.json" \
	vc a create c2 --datastore "$DSP" --disk-size 0
t_run "create --cpu-model still works" vc a create c2 --datastore "$DSP" --disk-size 0 --cpu-model qemu64
t_run "destroy c1" vc a destroy c1
t_run "destroy c2" vc a destroy c2
