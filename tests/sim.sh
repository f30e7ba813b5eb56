#!/usr/bin/env bash
# sim.sh - deterministic-schedule cluster simulation (build/tests/sim, from
# tests/disk/sim.c): 8-16 hosts (from the seed) in one process on one
# in-memory disk (disk/mem.h) and a driven clock; the scheduler runs their
# operations, heartbeat renewals and monitor passes, crashes, pauses, stalled
# requests, I/O errors and a final power cut by a seeded PRNG, and checks:
# no late write lands from a host whose slot was taken or recovered, no file
# is held for writing by two hosts with valid leases, a journal is replayed
# at most once per generation, what a new writer reads and what a survivor
# finds after recovering everything lies between the last acknowledged fsync
# and the latest write, fsck -n clean after recovery.
#
# VCFS_SIM_SEED=S replays one seed (printed on failure, with the command);
# VCFS_SIM_SEEDS=N seeds per run (default 200), starting at a seed printed
# here (VCFS_SIM_FIRST=S to choose it).
. "$(dirname "$0")/lib/common.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/sim
mkdir -p "$T"

if [ ! -x "$B/tests/sim" ]; then
	t_fail "sim: $B/tests/sim is not built"
	exit 1
fi
first=${VCFS_SIM_FIRST:-$(( $(date +%s) % 1000000 ))}
n=${VCFS_SIM_SEEDS:-200}
log=$T/sim.log
start=$SECONDS
if [ -n "$VCFS_SIM_SEED" ]; then
	"$B/tests/sim" -k 200 -v > "$log" 2>&1
else
	env -u VCFS_SIM_SEED "$B/tests/sim" -s "$first" -n "$n" -k 200 > "$log" 2>&1
fi
rc=$?
sum=$(grep "^sim: [0-9]* seeds" "$log" | tail -n 1)
if [ $rc -eq 0 ] && [ -n "$sum" ]; then
	t_pass "sim: ${sum#sim: }"
else
	t_fail "sim: exit $rc (log $log)"
	grep -E '^(FAIL|  replay)' "$log" | head -n 20 | sed 's/^/          | /'
	[ -n "$sum" ] && echo "          | $sum"
	[ -z "$sum" ] && tail -n 10 "$log" | sed 's/^/          | /'
fi
echo "  sim: $((SECONDS - start)) s"
exit 0
