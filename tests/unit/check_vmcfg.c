/*
 * check_vmcfg.c - vm.json: defaults, round trip, validation messages that name
 * the field, format version, unknown keys kept, atomic save.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "hypervisor/hv_err.h"
#include "hypervisor/vmcfg.h"

static char dir[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_vmcfg.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/vm.json", dir);
	f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* Load text; expect rc, and (if field) that the message names field. */
static void expect_load(const char *text, int rc, const char *field)
{
	struct vcvm_cfg c;
	char why[512] = "";
	int r;

	write_file(text);
	r = vcvm_cfg_load(dir, &c, why, sizeof(why));
	ck_assert_msg(r == rc, "load rc %d (%s), wanted %d; why: %s", r, vcvm_strerror(r), rc, why);
	if (field)
		ck_assert_msg(strstr(why, field) != NULL, "message \"%s\" does not name %s", why,
			      field);
	if (r == 0)
		vcvm_cfg_free(&c);
}

START_TEST(defaults_roundtrip)
{
	struct vcvm_cfg a, b;
	char why[256];

	ck_assert_int_eq(vcvm_cfg_init(&a, "web01"), 0);
	ck_assert_int_eq(a.format, VCVM_CFG_FORMAT);
	ck_assert_int_eq(a.memory_mib, 256);
	ck_assert_str_eq(a.machine, "q35");
	ck_assert_int_eq(strlen(a.uuid), 36);
	a.ndisks = 2;
	snprintf(a.disks[0].file, sizeof(a.disks[0].file), "disk0.raw");
	a.disks[0].io_shares = 2000;
	a.disks[0].io_limit_iops = 500;
	snprintf(a.disks[1].file, sizeof(a.disks[1].file), "data.qcow2");
	a.disks[1].format = VCVM_FMT_QCOW2;
	a.disks[1].bus = VCVM_BUS_SATA;
	a.disks[1].io_shares = 1000;
	a.nnics = 1;
	snprintf(a.nics[0].model, sizeof(a.nics[0].model), "virtio-net-pci");
	snprintf(a.nics[0].mac, sizeof(a.nics[0].mac), "52:54:00:12:34:56");
	snprintf(a.nics[0].network, sizeof(a.nics[0].network), "user");
	a.ha.priority = VCVM_HA_HIGH;
	snprintf(a.ha.last_host, sizeof(a.ha.last_host), "esx2");
	a.drs.ngroups = 1;
	snprintf(a.drs.groups[0], sizeof(a.drs.groups[0]), "web-anti");
	snprintf(a.ft.secondary, sizeof(a.ft.secondary), "esx3");
	a.is_template = true;
	a.nalarms = 1;
	snprintf(a.alarms[0].metric, sizeof(a.alarms[0].metric), "cpu_pct");
	a.alarms[0].warning = 80;
	a.alarms[0].critical = 95.5;
	snprintf(a.replication.target, sizeof(a.replication.target), "/mnt/dr/web01");
	a.replication.last_generation = 42;
	snprintf(a.kernel, sizeof(a.kernel), "vmlinuz");
	snprintf(a.append, sizeof(a.append), "console=ttyS0 vcvm.dirty=8");

	ck_assert_int_eq(vcvm_cfg_save(dir, &a, why, sizeof(why)), 0);
	ck_assert_int_eq(vcvm_cfg_load(dir, &b, why, sizeof(why)), 0);
	ck_assert_str_eq(b.name, "web01");
	ck_assert_str_eq(b.uuid, a.uuid);
	ck_assert_int_eq(b.ndisks, 2);
	ck_assert_str_eq(b.disks[1].file, "data.qcow2");
	ck_assert_int_eq(b.disks[1].format, VCVM_FMT_QCOW2);
	ck_assert_int_eq(b.disks[1].bus, VCVM_BUS_SATA);
	ck_assert_int_eq(b.disks[0].io_shares, 2000);
	ck_assert_int_eq(b.disks[0].io_limit_iops, 500);
	ck_assert_str_eq(b.nics[0].mac, "52:54:00:12:34:56");
	ck_assert_int_eq(b.ha.priority, VCVM_HA_HIGH);
	ck_assert_str_eq(b.ha.last_host, "esx2");
	ck_assert_int_eq(b.drs.ngroups, 1);
	ck_assert_str_eq(b.drs.groups[0], "web-anti");
	ck_assert_str_eq(b.ft.secondary, "esx3");
	ck_assert(b.is_template);
	ck_assert_int_eq(b.nalarms, 1);
	ck_assert(b.alarms[0].critical == 95.5);
	ck_assert_str_eq(b.replication.target, "/mnt/dr/web01");
	ck_assert_int_eq(b.replication.last_generation, 42);
	ck_assert_str_eq(b.kernel, "vmlinuz");
	ck_assert_str_eq(b.append, "console=ttyS0 vcvm.dirty=8");
	vcvm_cfg_free(&b);
}
END_TEST

START_TEST(minimal_file_gets_defaults)
{
	struct vcvm_cfg c;
	char why[256];

	write_file("{\"format\": 1, \"name\": \"a\", "
		   "\"uuid\": \"0f8fad5b-d9cb-469f-a165-70867728950e\"}");
	ck_assert_int_eq(vcvm_cfg_load(dir, &c, why, sizeof(why)), 0);
	ck_assert_int_eq(c.memory_mib, 256);
	ck_assert_int_eq(c.vcpus, 1);
	ck_assert_str_eq(c.serial_log, "serial.log");
	ck_assert_int_eq(c.ha.priority, VCVM_HA_MEDIUM);
	ck_assert_int_eq(c.ndisks, 0);
	vcvm_cfg_free(&c);
}
END_TEST

#define HEAD "{\"format\": 1, \"name\": \"a\", \"uuid\": \"0f8fad5b-d9cb-469f-a165-70867728950e\""

START_TEST(errors_name_the_field)
{
	expect_load("{ \"format\": 1, ", -VCVM_ECONFIG, "line 1");
	expect_load("[]", -VCVM_ECONFIG, "object");
	expect_load("{\"name\": \"a\"}", -VCVM_ECONFIG, "format");
	expect_load("{\"format\": 1, \"uuid\": \"0f8fad5b-d9cb-469f-a165-70867728950e\"}",
		    -VCVM_ECONFIG, "name");
	expect_load(HEAD ", \"memory_mib\": 4}", -VCVM_ECONFIG, "memory_mib");
	expect_load(HEAD ", \"memory_mib\": \"lots\"}", -VCVM_ECONFIG, "memory_mib");
	expect_load(HEAD ", \"vcpus\": 0}", -VCVM_ECONFIG, "vcpus");
	expect_load(HEAD ", \"machine\": \"microvm\"}", -VCVM_ECONFIG, "machine");
	expect_load(HEAD ", \"cpu_model\": \"a b\"}", -VCVM_ECONFIG, "cpu_model");
	expect_load("{\"format\": 1, \"name\": \"../x\", "
		    "\"uuid\": \"0f8fad5b-d9cb-469f-a165-70867728950e\"}", -VCVM_ECONFIG, "name");
	expect_load("{\"format\": 1, \"name\": \"a\", \"uuid\": \"nope\"}", -VCVM_ECONFIG, "uuid");
	expect_load(HEAD ", \"disks\": [{\"file\": \"d0\"}, {\"file\": \"d1\", \"format\": \"vmdk\"}]}",
		    -VCVM_ECONFIG, "disks[1].format");
	expect_load(HEAD ", \"disks\": [{\"file\": \"../etc/passwd\"}]}", -VCVM_ECONFIG,
		    "disks[0].file");
	expect_load(HEAD ", \"disks\": [{\"format\": \"raw\"}]}", -VCVM_ECONFIG, "disks[0].file");
	expect_load(HEAD ", \"disks\": [{\"file\": \"d\"}, {\"file\": \"d\"}]}", -VCVM_ECONFIG,
		    "disks[1].file");
	expect_load(HEAD ", \"disks\": [{\"file\": \"d\", \"bus\": \"floppy\"}]}", -VCVM_ECONFIG,
		    "disks[0].bus");
	expect_load(HEAD ", \"disks\": [{\"file\": \"d\", \"io\": {\"shares\": 0}}]}",
		    -VCVM_ECONFIG, "disks[0].io.shares");
	expect_load(HEAD ", \"disks\": {}}", -VCVM_ECONFIG, "disks");
	expect_load(HEAD ", \"nics\": [{\"mac\": \"01:00:00:00:00:01\"}]}", -VCVM_ECONFIG,
		    "nics[0].mac");
	expect_load(HEAD ", \"nics\": [{\"mac\": \"52:54:00:00:00:01\", \"model\": \"ne2k\"}]}",
		    -VCVM_ECONFIG, "nics[0].model");
	expect_load(HEAD ", \"ha\": {\"priority\": \"urgent\"}}", -VCVM_ECONFIG, "ha.priority");
	expect_load(HEAD ", \"ha\": []}", -VCVM_ECONFIG, "ha");
	expect_load(HEAD ", \"drs\": {\"groups\": [\"ok\", \"not ok\"]}}", -VCVM_ECONFIG,
		    "drs.groups[1]");
	expect_load(HEAD ", \"template\": \"yes\"}", -VCVM_ECONFIG, "template");
	expect_load(HEAD ", \"alarms\": [{\"metric\": \"cpu\", \"warning\": 90, \"critical\": 10}]}",
		    -VCVM_ECONFIG, "alarms[0].critical");
	expect_load(HEAD ", \"replication\": {\"last_generation\": -1}}", -VCVM_ECONFIG,
		    "replication.last_generation");
	expect_load(HEAD ", \"boot\": {\"initrd\": \"i\"}}", -VCVM_ECONFIG, "boot.kernel");
	expect_load(HEAD ", \"name\": \"b\"}", -VCVM_ECONFIG, "duplicate");
}
END_TEST

START_TEST(format_version)
{
	expect_load("{\"format\": 2, \"name\": \"a\", "
		    "\"uuid\": \"0f8fad5b-d9cb-469f-a165-70867728950e\"}", -VCVM_ECFGVERSION, "newer");
	expect_load("{\"format\": 0, \"name\": \"a\", "
		    "\"uuid\": \"0f8fad5b-d9cb-469f-a165-70867728950e\"}", -VCVM_ECONFIG, "format");
}
END_TEST

START_TEST(missing_file)
{
	struct vcvm_cfg c;
	char why[256];

	ck_assert_int_eq(vcvm_cfg_load(dir, &c, why, sizeof(why)), -VCVM_ENOVM);
}
END_TEST

START_TEST(unknown_keys_survive_rewrite)
{
	struct vcvm_cfg c;
	char why[256], p[256];
	json_t *root;

	write_file(HEAD ", \"future_feature\": {\"x\": 1}, "
		   "\"disks\": [{\"file\": \"d0\", \"encryption\": \"aes\"}]}");
	ck_assert_int_eq(vcvm_cfg_load(dir, &c, why, sizeof(why)), 0);
	c.memory_mib = 512;
	ck_assert_int_eq(vcvm_cfg_save(dir, &c, why, sizeof(why)), 0);
	vcvm_cfg_free(&c);
	snprintf(p, sizeof(p), "%s/vm.json", dir);
	root = json_load_file(p, 0, NULL);
	ck_assert_ptr_nonnull(root);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(root, "future_feature"),
							    "x")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
		json_object_get(root, "disks"), 0), "encryption")), "aes");
	ck_assert_int_eq(json_integer_value(json_object_get(root, "memory_mib")), 512);
	json_decref(root);
}
END_TEST

START_TEST(save_refuses_invalid_and_keeps_old)
{
	struct vcvm_cfg c, d;
	char why[256] = "", p[256];
	struct stat st;

	ck_assert_int_eq(vcvm_cfg_init(&c, "keep"), 0);
	ck_assert_int_eq(vcvm_cfg_save(dir, &c, why, sizeof(why)), 0);
	c.vcpus = 1000;
	ck_assert_int_eq(vcvm_cfg_save(dir, &c, why, sizeof(why)), -VCVM_ECONFIG);
	ck_assert(strstr(why, "vcpus") != NULL);
	ck_assert_int_eq(vcvm_cfg_load(dir, &d, why, sizeof(why)), 0);
	ck_assert_int_eq(d.vcpus, 1);
	vcvm_cfg_free(&d);
	/* no temp file left behind */
	snprintf(p, sizeof(p), "%s/vm.json.tmp.%d", dir, (int)getpid());
	ck_assert_int_eq(stat(p, &st), -1);
	/* a folder we cannot write into: the error comes back, the old file stays */
	c.vcpus = 2;
	snprintf(p, sizeof(p), "%s/nonexistent", dir);
	ck_assert_int_eq(vcvm_cfg_save(p, &c, why, sizeof(why)), -ENOENT);
}
END_TEST

START_TEST(names)
{
	struct vcvm_cfg c;

	ck_assert(vcvm_name_ok("vm-1.test_2"));
	ck_assert(!vcvm_name_ok(""));
	ck_assert(!vcvm_name_ok(".hidden"));
	ck_assert(!vcvm_name_ok("-opt"));
	ck_assert(!vcvm_name_ok("a/b"));
	ck_assert(!vcvm_name_ok("a b"));
	ck_assert(!vcvm_name_ok("x12345678901234567890123456789012345678901234567890123456789012345"));
	ck_assert_int_eq(vcvm_cfg_init(&c, "bad name"), -VCVM_ENAME);
	ck_assert_str_eq(vcvm_strerror(-VCVM_ENAME),
			 "invalid VM name (letters, digits, '.', '_', '-'; at most 64)");
	ck_assert_str_eq(vcvm_strerror(-VCFS_ECORRUPT), "on-disk structure is corrupt");
	ck_assert_str_eq(vcvm_strerror(-ENOENT), strerror(ENOENT));
}
END_TEST

START_TEST(paths)
{
	char out[64];

	ck_assert_int_eq(vcvm_cfg_path("/ds/vm", "disk0.raw", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/ds/vm/disk0.raw");
	ck_assert_int_eq(vcvm_cfg_path("/ds/vm", "/other/disk.raw", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/other/disk.raw");
	ck_assert_int_eq(vcvm_cfg_path("/ds/vm", "x12345678901234567890123456789012345678901234567890"
				       "12345678901234567890", out, sizeof(out)), -ENAMETOOLONG);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("vmcfg");
	TCase *t = tcase_create("vmcfg");

	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, defaults_roundtrip);
	tcase_add_test(t, minimal_file_gets_defaults);
	tcase_add_test(t, errors_name_the_field);
	tcase_add_test(t, format_version);
	tcase_add_test(t, missing_file);
	tcase_add_test(t, unknown_keys_survive_rewrite);
	tcase_add_test(t, save_refuses_invalid_and_keeps_old);
	tcase_add_test(t, names);
	tcase_add_test(t, paths);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int nf;

	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
