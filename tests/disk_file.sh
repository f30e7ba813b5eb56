#!/usr/bin/env bash
# disk_file.sh - the shared-disk conformance suite on the file: backend, the
# probe's verdict, and the bad inputs every backend shares (URI errors).
. "$(dirname "$0")/lib/common.sh"
B=$VCFS_BUILD
img=$VCFS_TEST_TMP/file.img
rm -f "$img"; truncate -s 64M "$img"

t_run "file: conformance (O_DIRECT image, 4 processes CAS stress)" \
	"$B/tests/conformance" --stress 4 --iters 250 "file:$img"
t_run "file: probe says safe (with stress)" "$B/vcfs" probe --stress 4 "$img"
t_run "file: probe --json" sh -c "'$B/vcfs' probe --json '$img' | grep -q '\"cas_mode\":\"ofd\"'"

# block device through a loop device, when the machine allows one
if loop=$(losetup -f --show "$img" 2>/dev/null); then
	t_cleanup_push "losetup -d $loop"
	t_run "file: conformance on a block device ($loop)" \
		"$B/tests/conformance" --stress 3 --iters 100 "$loop"
else
	t_skip "file: block device (no loop device available)"
fi

t_expect_fail "bad URI: unknown scheme" "unknown URI scheme" "$B/vcfs" probe "ftp://host/x"
t_expect_fail "bad URI: iscsi without LUN" "malformed datastore URI" \
	"$B/vcfs" probe "iscsi://127.0.0.1/iqn.2026-11.org.vcfs:t"
t_expect_fail "bad URI: port out of range" "malformed datastore URI" \
	"$B/vcfs" probe "iscsi://127.0.0.1:99999/iqn.2026-11.org.vcfs:t/0"
t_expect_fail "missing file" "No such file" "$B/vcfs" probe "$VCFS_TEST_TMP/nonexistent.img"
t_expect_fail "a directory is not a datastore" "neither a regular file|Is a directory|Invalid" \
	"$B/vcfs" probe "$VCFS_TEST_TMP"
small=$VCFS_TEST_TMP/small.img; rm -f "$small"; truncate -s 4096 "$small"
t_expect_fail "datastore below the minimum size" "smaller than the minimum" \
	"$B/vcfs" probe "$small"
t_expect_fail "fault injection: sticky write errors surface" "Input/output error|injected" \
	env VCFS_FAULT="write:1:sticky:EIO" "$B/tests/conformance" --stress 0 "$img"
