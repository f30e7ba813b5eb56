#!/usr/bin/env bash
# disk_rados.sh - the rados:// backend against a real Ceph cluster: one
# ceph-mon and one memstore ceph-osd on 127.0.0.1, auth off, a size-1 pool
# (tests/lib/ceph.sh), every path under the test directory.
#
#   the conformance suite with a 4-process CAS counter on a 64 MiB image made
#   by ?create=64M; what probe reports (cas mode rados-cmpext, shared, unmap,
#   safe); compare-and-write on objects that do not exist yet or end before
#   the sector (the OSD must compare them as zeros), unmap removing whole
#   objects; and the bad inputs: missing image without ?create, missing pool,
#   wrong conf path, unknown option, image below the minimum, a monitor that
#   is not there and an OSD that stops answering (both bounded by a 1 s io
#   timeout; the OSD's image works again once it answers).  Each failure
#   must be clear and bounded in time.
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/ceph.sh"
B=$VCFS_BUILD
T=$VCFS_TEST_TMP/rados
mkdir -p "$T"

# A build without librados says so; nothing else here can run.
out=$("$B/vcfs" probe --timeout-ms 1000 "rados://x/y" 2>&1)
if echo "$out" | grep -qi "not built"; then
	t_skip "rados: backend not built (librados-dev missing at build time)"
	exit 0
fi
need_pkgs ceph-mon ceph-osd ceph-common >/dev/null 2>&1
if ! command -v ceph-mon >/dev/null || ! command -v ceph-osd >/dev/null ||
   ! command -v rados >/dev/null; then
	t_skip "rados: ceph-mon, ceph-osd or ceph-common not installed"
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

t0=$SECONDS
if ! ceph_start "$T/ceph"; then
	t_fail "rados: ceph did not start (see $T/ceph/log)"
	exit 0
fi
t_pass "rados: ceph-mon + memstore ceph-osd up in $((SECONDS - t0)) s (127.0.0.1:$CEPH_MON_PORT, pool $CEPH_POOL)"

C=$CEPH_CONF
P=$CEPH_POOL
U="rados://$P"

t_run "rados: conformance (4 processes CAS stress over cmpext)" \
	"$B/tests/conformance" --stress 4 --iters 200 "$U/img?conf=$C&create=64M"
t_run "rados: image is a header plus 4 MiB objects named <image>.<16 hex>" sh -c \
	"ceph_out=\$(timeout 10 rados -c '$C' -p '$P' ls) &&
	 echo \"\$ceph_out\" | grep -qx 'img.vcfs-header' &&
	 echo \"\$ceph_out\" | grep -qx 'img.0000000000000000' &&
	 ! echo \"\$ceph_out\" | grep -v -e '^img\.vcfs-header\$' -e '^img\.[0-9a-f]\{16\}\$' | grep -q ."
t_run "rados: probe reports cas mode rados-cmpext, shared, unmap, safe" sh -c \
	"'$B/vcfs' probe --json '$U/img?conf=$C' | grep -q '\"cas_mode\":\"rados-cmpext\".*\"cas_shared\":true.*\"unmap\":true.*\"safe\":true'"
t_run "rados: CEPH_CONF from the environment when no ?conf=" \
	env CEPH_CONF="$C" "$B/vcfs" probe "$U/img"

# Compare-and-write where no object is yet, or past a short object's end,
# and unmap of whole objects: through the library (no tool exposes CAS on
# a chosen sector).  A small checker linked against build/libvcfs.a.
cat > "$T/rados_fresh.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "disk/disk.h"

static int fails;
static void check(int ok, const char *what, int rc)
{
	printf("%s - %s (%s)\n", ok ? "ok" : "not ok", what, vcfs_strerror(rc));
	fails += !ok;
}

int main(int argc, char **argv)
{
	struct vcfs_disk *d;
	unsigned char *z = vcfs_disk_buf_alloc(4u << 20), *a = vcfs_disk_buf_alloc(512);
	unsigned char *r = vcfs_disk_buf_alloc(4u << 20);
	const uint64_t M4 = 4u << 20;
	int rc;

	if (argc != 2 || (rc = vcfs_disk_open(argv[1], NULL, &d))) {
		printf("not ok - open\n");
		return 1;
	}
	memset(a, 0xab, 512);
	/* object 0 does not exist: it compares as zeros */
	rc = vcfs_disk_cas(d, 8 * 512, z, a);
	check(rc == 0, "CAS expecting zeros on a missing object succeeds", rc);
	rc = vcfs_disk_read(d, 8 * 512, r, 512);
	check(!rc && !memcmp(r, a, 512), "and wrote the sector", rc);
	rc = vcfs_disk_read(d, 0, r, 8 * 512);
	check(!rc && !memcmp(r, z, 8 * 512), "sectors before it read zeros", rc);
	/* object 1 does not exist: expecting data there is a miscompare */
	rc = vcfs_disk_cas(d, M4 + 512, a, a);
	check(rc == -VCFS_EMISCOMPARE, "CAS expecting data on a missing object miscompares", rc);
	rc = vcfs_disk_read(d, M4 + 512, r, 512);
	check(!rc && !memcmp(r, z, 512), "and wrote nothing", rc);
	/* object 2 holds one sector: beyond its end compares as zeros */
	rc = vcfs_disk_write(d, 2 * M4, a, 512, 0);
	if (!rc)
		rc = vcfs_disk_cas(d, 2 * M4 + 4096, z, a);
	check(rc == 0, "CAS expecting zeros past a short object's end succeeds", rc);
	rc = vcfs_disk_cas(d, 2 * M4 + 8192, a, z);
	check(rc == -VCFS_EMISCOMPARE, "CAS expecting data past its end miscompares", rc);
	/* unmap of objects 1..2 whole and half of object 3 */
	memset(r, 0x5c, M4);
	rc = vcfs_disk_write(d, M4, r, M4, 0);
	if (!rc)
		rc = vcfs_disk_write(d, 3 * M4, r, M4, 0);
	if (!rc)
		rc = vcfs_disk_unmap(d, M4, 2 * M4 + M4 / 2);
	if (!rc)
		rc = vcfs_disk_read(d, M4, r, M4);
	check(!rc && !memcmp(r, z, M4), "unmapped object reads zeros", rc);
	rc = vcfs_disk_read(d, 3 * M4, r, M4);
	check(!rc && !memcmp(r, z, M4 / 2) && r[M4 / 2] == 0x5c && r[M4 - 1] == 0x5c,
	      "half-unmapped object: zeros, then its data", rc);
	vcfs_disk_close(d);
	free(z);
	free(a);
	free(r);
	return fails ? 1 : 0;
}
EOF
if cc -std=c11 -D_GNU_SOURCE -I"$VCFS_TOP" -o "$T/rados_fresh" "$T/rados_fresh.c" \
	"$B/libvcfs.a" $(pkg-config --libs libiscsi libnfs uuid) -lrados -lm -pthread \
	> "$T/rados_fresh.cc.log" 2>&1; then
	t_run "rados: CAS on missing and short objects, unmap of whole and partial objects" \
		"$T/rados_fresh" "$U/fresh?conf=$C&create=16M"
	t_run "rados: unmap removed the whole objects and kept the partial one" sh -c \
		"ls=\$(timeout 10 rados -c '$C' -p '$P' ls) &&
		 ! echo \"\$ls\" | grep -qx 'fresh.0000000000000001' &&
		 ! echo \"\$ls\" | grep -qx 'fresh.0000000000000002' &&
		 echo \"\$ls\" | grep -qx 'fresh.0000000000000003'"
else
	t_fail "rados: cannot build the CAS checker (log $T/rados_fresh.cc.log)"
fi

expect_within "rados: missing image says to create it with ?create=SIZE" 5 \
	"no such image.*create it with \?create=SIZE" \
	"$B/vcfs" probe --timeout-ms 2000 "$U/nosuch?conf=$C"
expect_within "rados: missing pool" 5 "no pool nopool" \
	"$B/vcfs" probe --timeout-ms 2000 "rados://nopool/img?conf=$C&create=64M"
expect_within "rados: wrong conf path" 5 "cannot read ceph config $T/nosuch.conf" \
	"$B/vcfs" probe --timeout-ms 2000 "$U/img?conf=$T/nosuch.conf"
expect_within "rados: unknown URI option" 5 "unknown option 'size'" \
	"$B/vcfs" probe --timeout-ms 2000 "$U/img?conf=$C&size=1G"
expect_within "rados: ?create= below the 1 MiB minimum" 5 "smaller than the minimum" \
	"$B/vcfs" probe --timeout-ms 2000 "$U/tiny?conf=$C&create=64K"

# A monitor that is not there: the conf names a port nobody listens on.
dead=$(free_port)
sed "s/^\([[:space:]]*mon host = \).*/\1[v1:127.0.0.1:$dead]/" "$C" > "$T/dead.conf"
expect_within "rados: unreachable monitor, bounded by the 1 s io timeout" 3 \
	"no answer from the monitors \[v1:127.0.0.1:$dead\] \(from $T/dead.conf\)" \
	"$B/vcfs" probe --timeout-ms 1000 "$U/img?conf=$T/dead.conf"

# An OSD that stops answering: opening (the header read) gives up at the
# io timeout; once it answers again the same image opens.
if [ -n "$CEPH_OSD_PID" ] && kill -STOP "$CEPH_OSD_PID"; then
	expect_within "rados: silent OSD (SIGSTOP), open bounded by the 1 s io timeout" 5 \
		"did not answer within the io timeout" \
		"$B/vcfs" probe --timeout-ms 1000 "$U/img?conf=$C"
	kill -CONT "$CEPH_OSD_PID"
	t_run "rados: answers again after SIGCONT" "$B/vcfs" probe "$U/img?conf=$C"
else
	t_fail "rados: no OSD pid to stop"
fi

mon_pid=$CEPH_MON_PID osd_pid=$CEPH_OSD_PID
ceph_stop
t_run "rados: monitor and OSD gone after stop" sh -c \
	"! kill -0 ${mon_pid:-0} 2>/dev/null && ! kill -0 ${osd_pid:-0} 2>/dev/null"
