/*
 * The RUDP_PORTS parser: single ports at both ends of the valid range,
 * comma lists, inclusive ranges, the "*" wildcard and the empty setting,
 * and the rejection of every malformed entry with a message that names it.
 * Each accepted setting is checked port by port over the whole 16-bit
 * space, so a stray bit anywhere (an off-by-one at a range end, a word
 * boundary in the bitmap) shows up as a wrong count.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ports.h"

static struct rudp__ports ports;
static char err[256];

/* Parses s into the shared state, clearing err so no stale text survives. */
static int parse(const char *s)
{
	memset(err, 0, sizeof(err));
	return rudp__ports_parse(s, &ports, err, sizeof(err));
}

/* Counts the marked ports, 0 included, through the public accessor. */
static unsigned marked_count(void)
{
	unsigned n = 0;

	for (unsigned port = 0; port <= 65535; port++)
		n += rudp__ports_has(&ports, (uint16_t)port);
	return n;
}

/* Asserts that s parses and marks exactly the ports in [lo, hi]. */
static void assert_range_only(const char *s, unsigned lo, unsigned hi)
{
	int ret = parse(s);

	ck_assert_msg(ret == 0, "\"%s\" returned %d (%s)", s, ret, err);
	ck_assert_msg(ports.any, "\"%s\" left any false", s);
	ck_assert_msg(!ports.all, "\"%s\" set all", s);
	ck_assert_msg(rudp__ports_has(&ports, (uint16_t)lo),
		      "\"%s\" missed %u", s, lo);
	ck_assert_msg(rudp__ports_has(&ports, (uint16_t)hi),
		      "\"%s\" missed %u", s, hi);
	/* The neighbours just outside are where an off-by-one would land. */
	ck_assert_msg(!rudp__ports_has(&ports, (uint16_t)(lo - 1)),
		      "\"%s\" marked %u", s, lo - 1);
	if (hi < 65535)
		ck_assert_msg(!rudp__ports_has(&ports, (uint16_t)(hi + 1)),
			      "\"%s\" marked %u", s, hi + 1);
	ck_assert_uint_eq(marked_count(), hi - lo + 1);
}

/*
 * Asserts that s is rejected with -EINVAL and that the message quotes tok,
 * so a user with a long setting can see which entry is wrong.
 */
static void assert_rejected(const char *s, const char *tok)
{
	int ret = parse(s);

	ck_assert_msg(ret == -EINVAL, "\"%s\" returned %d, not -EINVAL", s,
		      ret);
	ck_assert_msg(strstr(err, tok) != NULL,
		      "message for \"%s\" does not name \"%s\": \"%s\"", s,
		      tok, err);
}

START_TEST(test_ports_single_port)
{
	assert_range_only("80", 80, 80);
	assert_range_only("9000", 9000, 9000);
}
END_TEST

START_TEST(test_ports_lowest_port)
{
	/* Port 0 sits just below and must stay unmarked. */
	assert_range_only("1", 1, 1);
	ck_assert(!rudp__ports_has(&ports, 0));
}
END_TEST

START_TEST(test_ports_highest_port)
{
	assert_range_only("65535", 65535, 65535);
	ck_assert(!rudp__ports_has(&ports, 65534));
}
END_TEST

START_TEST(test_ports_list)
{
	ck_assert_int_eq(parse("80,443,8080"), 0);
	ck_assert(ports.any);
	ck_assert(!ports.all);
	ck_assert(rudp__ports_has(&ports, 80));
	ck_assert(rudp__ports_has(&ports, 443));
	ck_assert(rudp__ports_has(&ports, 8080));
	ck_assert(!rudp__ports_has(&ports, 79));
	ck_assert(!rudp__ports_has(&ports, 81));
	ck_assert(!rudp__ports_has(&ports, 442));
	ck_assert(!rudp__ports_has(&ports, 444));
	ck_assert(!rudp__ports_has(&ports, 8079));
	ck_assert(!rudp__ports_has(&ports, 8081));
	ck_assert_uint_eq(marked_count(), 3);
}
END_TEST

START_TEST(test_ports_list_extremes)
{
	/* Both ends of the space in one list, in descending order. */
	ck_assert_int_eq(parse("65535,1"), 0);
	ck_assert(rudp__ports_has(&ports, 1));
	ck_assert(rudp__ports_has(&ports, 65535));
	ck_assert(!rudp__ports_has(&ports, 0));
	ck_assert(!rudp__ports_has(&ports, 2));
	ck_assert(!rudp__ports_has(&ports, 65534));
	ck_assert_uint_eq(marked_count(), 2);
}
END_TEST

START_TEST(test_ports_list_duplicates)
{
	/* Repeating a port is harmless: the set is the same. */
	ck_assert_int_eq(parse("80,80,80"), 0);
	ck_assert(rudp__ports_has(&ports, 80));
	ck_assert_uint_eq(marked_count(), 1);
}
END_TEST

START_TEST(test_ports_list_with_ranges)
{
	/* The example from the header: one port and a range of a hundred. */
	ck_assert_int_eq(parse("9000,9100-9199"), 0);
	ck_assert(ports.any);
	ck_assert(rudp__ports_has(&ports, 9000));
	ck_assert(!rudp__ports_has(&ports, 8999));
	ck_assert(!rudp__ports_has(&ports, 9001));
	ck_assert(rudp__ports_has(&ports, 9100));
	ck_assert(rudp__ports_has(&ports, 9150));
	ck_assert(rudp__ports_has(&ports, 9199));
	ck_assert(!rudp__ports_has(&ports, 9099));
	ck_assert(!rudp__ports_has(&ports, 9200));
	ck_assert_uint_eq(marked_count(), 1 + 100);
}
END_TEST

START_TEST(test_ports_list_overlapping_ranges)
{
	/* Overlaps merge; 10-20 and 15-30 cover 10-30, 21 ports. */
	ck_assert_int_eq(parse("15-30,10-20,25"), 0);
	ck_assert(!rudp__ports_has(&ports, 9));
	ck_assert(!rudp__ports_has(&ports, 31));
	ck_assert_uint_eq(marked_count(), 21);
}
END_TEST

START_TEST(test_ports_reparse_clears)
{
	/* A second parse replaces the first rather than adding to it. */
	ck_assert_int_eq(parse("80,1000-2000"), 0);
	ck_assert_int_eq(parse("443"), 0);
	ck_assert(!rudp__ports_has(&ports, 80));
	ck_assert(!rudp__ports_has(&ports, 1500));
	ck_assert_uint_eq(marked_count(), 1);
	ck_assert_int_eq(parse("*"), 0);
	ck_assert_int_eq(parse(""), 0);
	ck_assert(!ports.all);
	ck_assert(!ports.any);
	ck_assert_uint_eq(marked_count(), 0);
}
END_TEST

START_TEST(test_ports_range)
{
	assert_range_only("9100-9199", 9100, 9199);
}
END_TEST

START_TEST(test_ports_range_single_element)
{
	assert_range_only("9000-9000", 9000, 9000);
	assert_range_only("1-1", 1, 1);
	assert_range_only("65535-65535", 65535, 65535);
}
END_TEST

START_TEST(test_ports_range_full)
{
	/* Every real port, yet port 0 stays out and all stays false. */
	assert_range_only("1-65535", 1, 65535);
	ck_assert(!rudp__ports_has(&ports, 0));
}
END_TEST

START_TEST(test_ports_range_word_boundaries)
{
	/* The bitmap holds 64 ports a word; cross and touch the seams. */
	assert_range_only("60-70", 60, 70);
	assert_range_only("63-64", 63, 64);
	assert_range_only("64-127", 64, 127);
	assert_range_only("65472-65535", 65472, 65535);
}
END_TEST

START_TEST(test_ports_wildcard)
{
	ck_assert_int_eq(parse("*"), 0);
	ck_assert(ports.all);
	ck_assert(ports.any);
	ck_assert(rudp__ports_has(&ports, 1));
	ck_assert(rudp__ports_has(&ports, 80));
	ck_assert(rudp__ports_has(&ports, 65535));
}
END_TEST

START_TEST(test_ports_null)
{
	ck_assert_int_eq(parse(NULL), 0);
	ck_assert(!ports.any);
	ck_assert(!ports.all);
	ck_assert_uint_eq(marked_count(), 0);
}
END_TEST

START_TEST(test_ports_empty_string)
{
	ck_assert_int_eq(parse(""), 0);
	ck_assert(!ports.any);
	ck_assert(!ports.all);
	ck_assert_uint_eq(marked_count(), 0);
}
END_TEST

START_TEST(test_ports_rejects_out_of_range)
{
	assert_rejected("0", "'0'");
	assert_rejected("65536", "65536");
	assert_rejected("99999", "99999");
	/* Zero is no more valid as part of a range or a list. */
	assert_rejected("0-10", "0-10");
	assert_rejected("80,0", "'0'");
	assert_rejected("1-65536", "1-65536");
}
END_TEST

START_TEST(test_ports_rejects_signs)
{
	assert_rejected("-1", "-1");
	assert_rejected("+80", "+80");
	assert_rejected("-5", "-5");
}
END_TEST

START_TEST(test_ports_rejects_spaces)
{
	/* The quotes show the space belongs to the token, not the message. */
	assert_rejected(" 80", "' 80'");
	assert_rejected("80 ", "'80 '");
	assert_rejected("80, 81", "' 81'");
}
END_TEST

START_TEST(test_ports_rejects_empty_entries)
{
	/*
	 * An empty entry has no text to quote, so the message says what is
	 * missing instead; the empty quotes still mark where the token was.
	 */
	assert_rejected("80,", "empty entry");
	assert_rejected("80,", "''");
	assert_rejected(",80", "empty entry");
	assert_rejected("80,,81", "empty entry");
	assert_rejected(",", "empty entry");
}
END_TEST

START_TEST(test_ports_rejects_bad_ranges)
{
	assert_rejected("9100-9000", "9100-9000");
	assert_rejected("9100-9000", "ends before it starts");
	/* Reversed by one: the smallest inversion must not read as empty. */
	assert_rejected("80-79", "80-79");
	assert_rejected("1-", "'1-'");
	assert_rejected("-5", "'-5'");
	assert_rejected("-", "'-'");
	assert_rejected("1-2-3", "1-2-3");
	assert_rejected("1--2", "1--2");
	assert_rejected("80,9100-9000", "9100-9000");
}
END_TEST

START_TEST(test_ports_rejects_non_decimal)
{
	assert_rejected("a", "'a'");
	assert_rejected("80a", "80a");
	assert_rejected("0x50", "0x50");
	assert_rejected("1e3", "1e3");
	assert_rejected("80,http", "http");
	assert_rejected("1-a", "1-a");
}
END_TEST

START_TEST(test_ports_rejects_misplaced_wildcard)
{
	/* "*" means every port only when it is the whole setting. */
	assert_rejected("*,80", "'*'");
	assert_rejected("*,80", "must stand alone");
	assert_rejected("80,*", "'*'");
	assert_rejected("**", "'**'");
	assert_rejected("*-80", "*-80");
	assert_rejected(" *", "' *'");
}
END_TEST

START_TEST(test_ports_rejects_long_numbers)
{
	/* Long inputs must be refused, not wrapped round to a small port. */
	assert_rejected("123456", "123456");
	assert_rejected("4294967376", "4294967376"); /* 2^32 + 80 */
	assert_rejected("18446744073709551696", "18446744073709551696");
	assert_rejected("000080", "000080");
	assert_rejected("1-4294967297", "1-4294967297");
}
END_TEST

START_TEST(test_ports_rejects_huge_token)
{
	/*
	 * A token far longer than the message buffer is still rejected, and
	 * the message is truncated inside the buffer rather than overrunning
	 * it, keeping the start of the token so the user can find it.
	 */
	size_t len = 100000;
	char *s = malloc(len + 1);
	char prefix[101];

	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < len; i++)
		s[i] = (char)('1' + i % 9);
	s[len] = '\0';
	memcpy(prefix, s, 100);
	prefix[100] = '\0';

	ck_assert_int_eq(parse(s), -EINVAL);
	ck_assert_uint_lt(strlen(err), sizeof(err));
	ck_assert_ptr_nonnull(strstr(err, prefix));
	free(s);
}
END_TEST

static Suite *ports_suite(void)
{
	Suite *s = suite_create("ports");
	TCase *tc;

	tc = tcase_create("single_ports");
	tcase_add_test(tc, test_ports_single_port);
	tcase_add_test(tc, test_ports_lowest_port);
	tcase_add_test(tc, test_ports_highest_port);
	suite_add_tcase(s, tc);

	tc = tcase_create("valid_lists");
	tcase_add_test(tc, test_ports_list);
	tcase_add_test(tc, test_ports_list_extremes);
	tcase_add_test(tc, test_ports_list_duplicates);
	tcase_add_test(tc, test_ports_list_with_ranges);
	tcase_add_test(tc, test_ports_list_overlapping_ranges);
	tcase_add_test(tc, test_ports_reparse_clears);
	suite_add_tcase(s, tc);

	tc = tcase_create("ranges");
	tcase_add_test(tc, test_ports_range);
	tcase_add_test(tc, test_ports_range_single_element);
	tcase_add_test(tc, test_ports_range_full);
	tcase_add_test(tc, test_ports_range_word_boundaries);
	suite_add_tcase(s, tc);

	tc = tcase_create("wildcard");
	tcase_add_test(tc, test_ports_wildcard);
	suite_add_tcase(s, tc);

	tc = tcase_create("empty");
	tcase_add_test(tc, test_ports_null);
	tcase_add_test(tc, test_ports_empty_string);
	suite_add_tcase(s, tc);

	tc = tcase_create("rejects_garbage");
	tcase_add_test(tc, test_ports_rejects_out_of_range);
	tcase_add_test(tc, test_ports_rejects_signs);
	tcase_add_test(tc, test_ports_rejects_spaces);
	tcase_add_test(tc, test_ports_rejects_empty_entries);
	tcase_add_test(tc, test_ports_rejects_bad_ranges);
	tcase_add_test(tc, test_ports_rejects_non_decimal);
	tcase_add_test(tc, test_ports_rejects_misplaced_wildcard);
	tcase_add_test(tc, test_ports_rejects_long_numbers);
	tcase_add_test(tc, test_ports_rejects_huge_token);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ports_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
