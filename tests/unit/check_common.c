/*
 * check_common.c - common/: CRC-32C against published vectors (and its
 * alignment and continuation paths), the one error space, the injected clock.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/clock.h"
#include "common/crc32c.h"
#include "common/size.h"
#include "common/vcfs_err.h"

/* ---- crc32c ---- */

/* Bit-at-a-time reference, written from the definition (reflected 0x82F63B78):
 * the tables and the slicing-by-8 loop of crc32c.c must agree with it. */
static uint32_t crc_ref(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
	}
	return ~c;
}

START_TEST(crc_vectors)
{
	uint8_t b[32];

	/* the check value of the CRC catalogue */
	ck_assert_uint_eq(vcfs_crc32c(0, "123456789", 9), 0xE3069283u);
	/* RFC 3720 (iSCSI) appendix B.4 */
	memset(b, 0, sizeof(b));
	ck_assert_uint_eq(vcfs_crc32c(0, b, sizeof(b)), 0x8A9136AAu);
	memset(b, 0xff, sizeof(b));
	ck_assert_uint_eq(vcfs_crc32c(0, b, sizeof(b)), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	ck_assert_uint_eq(vcfs_crc32c(0, b, sizeof(b)), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)(31 - i);
	ck_assert_uint_eq(vcfs_crc32c(0, b, sizeof(b)), 0x113FDB5Cu);
	/* empty input leaves the CRC alone */
	ck_assert_uint_eq(vcfs_crc32c(0, b, 0), 0);
	ck_assert_uint_eq(vcfs_crc32c(0x12345678u, b, 0), 0x12345678u);
	/* a one-bit change is seen */
	b[17] ^= 0x10;
	ck_assert_uint_ne(vcfs_crc32c(0, b, sizeof(b)), 0x113FDB5Cu);
}
END_TEST

/* Every start alignment and length around the 8-byte loop, against the
 * reference; and a CRC continued across any split equals the whole one. */
START_TEST(crc_alignment_and_continuation)
{
	uint8_t *buf = malloc(300);
	uint64_t x = 0x243F6A8885A308D3ull;

	ck_assert_ptr_nonnull(buf);
	for (int i = 0; i < 300; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
	for (size_t start = 0; start < 9; start++)
		for (size_t len = 0; len < 200; len += (len < 40 ? 1 : 13)) {
			uint32_t want = crc_ref(buf + start, len);
			ck_assert_uint_eq(vcfs_crc32c(0, buf + start, len), want);
			for (size_t cut = 0; cut <= len; cut += 7) {
				uint32_t c = vcfs_crc32c(0, buf + start, cut);
				c = vcfs_crc32c(c, buf + start + cut, len - cut);
				ck_assert_msg(c == want, "start %zu len %zu cut %zu", start, len, cut);
			}
		}
	free(buf);
}
END_TEST

/* ---- vcfs_strerror ---- */

START_TEST(strerror_project_codes)
{
	ck_assert_str_eq(vcfs_strerror(0), "success");
	ck_assert_str_eq(vcfs_strerror(-VCFS_EMISCOMPARE),
			 "compare-and-write miscompare: the sector changed");
	/* both signs give the same message */
	ck_assert_str_eq(vcfs_strerror(VCFS_EMISCOMPARE), vcfs_strerror(-VCFS_EMISCOMPARE));
	ck_assert_str_eq(vcfs_strerror(-VCFS_EINJECTED), "injected fault (test layer)");
	ck_assert_ptr_nonnull(strstr(vcfs_strerror(-VCFS_ECRASHED), "simulated crash"));
	ck_assert_ptr_nonnull(strstr(vcfs_strerror(-VCFS_EALIGN), "sector size"));
	ck_assert_ptr_nonnull(strstr(vcfs_strerror(-VCFS_ERANGE), "end of the datastore"));
	ck_assert_ptr_nonnull(strstr(vcfs_strerror(-VCFS_ESCHEME), "unknown URI scheme"));
	/* past the end of the list, above the errno range */
	ck_assert_str_eq(vcfs_strerror(-(VCFS_ERR_BASE + 999)), "unknown vcfs error");
	ck_assert_str_eq(vcfs_strerror(-VCFS_ERR_BASE), "unknown vcfs error");
}
END_TEST

/* Every code of the X-macro: value above the base, distinct, and a message
 * of its own (so no two codes can be confused in a log). */
START_TEST(strerror_every_code_distinct)
{
#define CODE(name, val, msg) { val, msg },
	static const struct { int val; const char *msg; } codes[] = { VCFS_ERRORS(CODE) };
#undef CODE
	const size_t n = sizeof(codes) / sizeof(codes[0]);

	ck_assert_uint_ge(n, 20);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_gt(codes[i].val, VCFS_ERR_BASE);
		ck_assert_str_eq(vcfs_strerror(-codes[i].val), codes[i].msg);
		ck_assert_uint_gt(strlen(codes[i].msg), 10);
		for (size_t j = 0; j < i; j++) {
			ck_assert_int_ne(codes[i].val, codes[j].val);
			ck_assert_str_ne(vcfs_strerror(codes[i].val), vcfs_strerror(codes[j].val));
		}
	}
}
END_TEST

START_TEST(strerror_errno)
{
	ck_assert_str_eq(vcfs_strerror(-EIO), "Input/output error");
	ck_assert_str_eq(vcfs_strerror(-ENOENT), "No such file or directory");
	ck_assert_str_eq(vcfs_strerror(-ETIMEDOUT), "Connection timed out");
	ck_assert_str_eq(vcfs_strerror(EROFS), "Read-only file system");
	ck_assert_str_eq(vcfs_strerror(-ENOSPC), strerror(ENOSPC));
}
END_TEST

/* ---- the injected clock ---- */

static uint64_t fake_now(void *arg)
{
	return *(uint64_t *)arg;
}

START_TEST(size_parse)
{
	uint64_t v = 7;

	ck_assert_int_eq(vcfs_parse_size("4096", &v), 0);
	ck_assert_uint_eq(v, 4096);
	ck_assert_int_eq(vcfs_parse_size("64k", &v), 0);
	ck_assert_uint_eq(v, 65536);
	ck_assert_int_eq(vcfs_parse_size("2GiB", &v), 0);
	ck_assert_uint_eq(v, 2ull << 30);
	ck_assert_int_eq(vcfs_parse_size("3T", &v), 0);
	ck_assert_uint_eq(v, 3ull << 40);
	ck_assert_int_eq(vcfs_parse_size("512MB", &v), 0);
	ck_assert_uint_eq(v, 512ull << 20);
	v = 7;
	ck_assert_int_eq(vcfs_parse_size("", &v), -EINVAL);
	ck_assert_int_eq(vcfs_parse_size("-1G", &v), -EINVAL);
	ck_assert_int_eq(vcfs_parse_size("12X", &v), -EINVAL);
	ck_assert_int_eq(vcfs_parse_size("1GX", &v), -EINVAL);
	ck_assert_int_eq(vcfs_parse_size("B", &v), -EINVAL);
	ck_assert_int_eq(vcfs_parse_size("99999999999T", &v), -EINVAL);	/* overflow */
	ck_assert_int_eq(vcfs_parse_size("99999999999999999999", &v), -EINVAL);
	ck_assert_uint_eq(v, 7);	/* untouched on error */
}
END_TEST

START_TEST(clock_injected)
{
	uint64_t t = 42 * VCFS_NS_PER_S;

	vcfs_clock_set(fake_now, &t);
	ck_assert_uint_eq(vcfs_now_ns(), 42 * VCFS_NS_PER_S);
	ck_assert_uint_eq(vcfs_now_ns(), 42 * VCFS_NS_PER_S);	/* frozen until driven */
	t += 1500 * VCFS_NS_PER_MS;
	ck_assert_uint_eq(vcfs_now_ns(), 43500 * VCFS_NS_PER_MS);
	/* a test may even run time backwards: the clock reports what it is given */
	t = 7;
	ck_assert_uint_eq(vcfs_now_ns(), 7);
	vcfs_clock_set(NULL, NULL);
	/* the real clock again: far from the fake values, and moving */
	{
		uint64_t a = vcfs_now_ns(), b;
		ck_assert_uint_gt(a, 1000);
		vcfs_sleep_ns(2 * VCFS_NS_PER_MS);
		b = vcfs_now_ns();
		ck_assert_uint_ge(b - a, 2 * VCFS_NS_PER_MS);
	}
}
END_TEST

/* vcfs_sleep_ns sleeps on the real clock even while a fake one is installed:
 * backoffs must not spin when a test freezes time. */
START_TEST(clock_sleep_real)
{
	uint64_t t = 1, a, b;
	struct timespec ts;

	vcfs_clock_set(fake_now, &t);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	a = (uint64_t)ts.tv_sec * VCFS_NS_PER_S + (uint64_t)ts.tv_nsec;
	vcfs_sleep_ns(30 * VCFS_NS_PER_MS);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	b = (uint64_t)ts.tv_sec * VCFS_NS_PER_S + (uint64_t)ts.tv_nsec;
	ck_assert_uint_ge(b - a, 30 * VCFS_NS_PER_MS);
	ck_assert_uint_eq(vcfs_now_ns(), 1);
	vcfs_clock_set(NULL, NULL);
	/* zero sleeps return at once */
	vcfs_sleep_ns(0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("common");
	TCase *crc = tcase_create("crc32c"), *err = tcase_create("errors");
	TCase *clk = tcase_create("clock");

	tcase_add_test(crc, crc_vectors);
	tcase_add_test(crc, crc_alignment_and_continuation);
	suite_add_tcase(s, crc);
	tcase_add_test(err, strerror_project_codes);
	tcase_add_test(err, strerror_every_code_distinct);
	tcase_add_test(err, strerror_errno);
	suite_add_tcase(s, err);
	tcase_add_test(clk, size_parse);
	tcase_add_test(clk, clock_injected);
	tcase_add_test(clk, clock_sleep_real);
	suite_add_tcase(s, clk);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int nf;

	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? 1 : 0;
}
