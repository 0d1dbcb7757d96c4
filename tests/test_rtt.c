/*
 * The RTT estimator against RFC 6298: the initial RTO, the first and later
 * samples (with the integer arithmetic rtt.c uses, truncating each
 * division), clamping to the configured bounds, and exponential backoff.
 * Expected values are worked out by hand in the comments rather than by
 * re-running the estimator's own formulas.
 */
#include <check.h>
#include <limits.h>
#include <stdlib.h>

#include "rtt.h"

#define MS RUDP__MSEC
#define S  RUDP__SEC
#define G  RUDP__RTT_GRANULARITY

static struct rudp__rtt rtt;

START_TEST(test_rtt_initial_rto)
{
	rudp__rtt_init(&rtt, 1 * S, 200 * MS, 60 * S);
	ck_assert(!rtt.has_sample);
	ck_assert_uint_eq(rtt.rto, 1 * S);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 0), 1 * S);
	ck_assert_uint_eq(rtt.min_rto, 200 * MS);
	ck_assert_uint_eq(rtt.max_rto, 60 * S);
}
END_TEST

START_TEST(test_rtt_initial_rto_clamped)
{
	/* A misconfigured initial value still respects the bounds. */
	rudp__rtt_init(&rtt, 50 * MS, 200 * MS, 60 * S);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 0), 200 * MS);
	rudp__rtt_init(&rtt, 90 * S, 200 * MS, 60 * S);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 0), 60 * S);
}
END_TEST

START_TEST(test_rtt_first_sample)
{
	rudp__rtt_init(&rtt, 1 * S, 200 * MS, 60 * S);
	rudp__rtt_sample(&rtt, 100 * MS);
	ck_assert(rtt.has_sample);
	/* (2.2): SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4*RTTVAR). */
	ck_assert_uint_eq(rtt.srtt, 100000);
	ck_assert_uint_eq(rtt.rttvar, 50000);
	ck_assert_uint_eq(rtt.rto, 100000 + 200000);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 0), 300000);
}
END_TEST

START_TEST(test_rtt_first_sample_odd)
{
	/* R/2 truncates: 100001 us gives RTTVAR 50000, RTO 300001. */
	rudp__rtt_init(&rtt, 1 * S, 0, 60 * S);
	rudp__rtt_sample(&rtt, 100001);
	ck_assert_uint_eq(rtt.srtt, 100001);
	ck_assert_uint_eq(rtt.rttvar, 50000);
	ck_assert_uint_eq(rtt.rto, 300001);
}
END_TEST

START_TEST(test_rtt_granularity_floor)
{
	/*
	 * R = 300 us: RTTVAR = 150, 4*RTTVAR = 600 is below G = 1000 us, so
	 * RTO = 300 + 1000 (no minimum configured to hide it).
	 */
	rudp__rtt_init(&rtt, 1 * S, 0, 60 * S);
	rudp__rtt_sample(&rtt, 300);
	ck_assert_uint_eq(rtt.srtt, 300);
	ck_assert_uint_eq(rtt.rttvar, 150);
	ck_assert_uint_eq(rtt.rto, 300 + G);
}
END_TEST

START_TEST(test_rtt_subsequent_samples)
{
	rudp__rtt_init(&rtt, 1 * S, 0, 60 * S);
	rudp__rtt_sample(&rtt, 100000);

	/*
	 * (2.3) with alpha 1/8, beta 1/4, RTTVAR updated from the old SRTT:
	 *   R = 200000: |SRTT - R| = 100000
	 *   RTTVAR = (3 * 50000 + 100000) / 4 = 62500
	 *   SRTT   = (7 * 100000 + 200000) / 8 = 112500
	 *   RTO    = 112500 + 4 * 62500 = 362500
	 * (Updating SRTT first would give RTTVAR 59375.)
	 */
	rudp__rtt_sample(&rtt, 200000);
	ck_assert_uint_eq(rtt.rttvar, 62500);
	ck_assert_uint_eq(rtt.srtt, 112500);
	ck_assert_uint_eq(rtt.rto, 362500);

	/*
	 *   R = 50000: |112500 - 50000| = 62500
	 *   RTTVAR = (3 * 62500 + 62500) / 4 = 62500
	 *   SRTT   = (7 * 112500 + 50000) / 8 = 837500 / 8 = 104687 (trunc)
	 *   RTO    = 104687 + 250000 = 354687
	 */
	rudp__rtt_sample(&rtt, 50000);
	ck_assert_uint_eq(rtt.rttvar, 62500);
	ck_assert_uint_eq(rtt.srtt, 104687);
	ck_assert_uint_eq(rtt.rto, 354687);

	/*
	 *   R = 104687: deviation 0
	 *   RTTVAR = (3 * 62500 + 0) / 4 = 46875
	 *   SRTT   = (7 * 104687 + 104687) / 8 = 104687
	 *   RTO    = 104687 + 187500 = 292187
	 */
	rudp__rtt_sample(&rtt, 104687);
	ck_assert_uint_eq(rtt.rttvar, 46875);
	ck_assert_uint_eq(rtt.srtt, 104687);
	ck_assert_uint_eq(rtt.rto, 292187);
}
END_TEST

START_TEST(test_rtt_converges_on_steady_rtt)
{
	/*
	 * A constant RTT keeps SRTT exact and shrinks RTTVAR towards zero,
	 * so the RTO settles at R + G: the granularity is what is left.
	 */
	rudp__rtt_init(&rtt, 1 * S, 0, 60 * S);
	for (int i = 0; i < 200; i++)
		rudp__rtt_sample(&rtt, 40 * MS);
	ck_assert_uint_eq(rtt.srtt, 40 * MS);
	ck_assert_uint_eq(rtt.rttvar, 0);
	ck_assert_uint_eq(rtt.rto, 40 * MS + G);
}
END_TEST

START_TEST(test_rtt_tracks_a_step_change)
{
	/* After a jump from 10 ms to 200 ms, SRTT approaches from below. */
	rudp__rtt_init(&rtt, 1 * S, 0, 60 * S);
	for (int i = 0; i < 50; i++)
		rudp__rtt_sample(&rtt, 10 * MS);
	rudp__usec prev = rtt.srtt;
	for (int i = 0; i < 100; i++) {
		rudp__rtt_sample(&rtt, 200 * MS);
		ck_assert_uint_ge(rtt.srtt, prev);
		ck_assert_uint_le(rtt.srtt, 200 * MS);
		prev = rtt.srtt;
	}
	/* Truncation may leave SRTT a few microseconds short, never more. */
	ck_assert_uint_ge(rtt.srtt, 200 * MS - 8);
}
END_TEST

START_TEST(test_rtt_clamps_to_min)
{
	/* 10 ms samples would give RTO 30 ms; RFC 6298 (2.4) floors it. */
	rudp__rtt_init(&rtt, 1 * S, 200 * MS, 60 * S);
	rudp__rtt_sample(&rtt, 10 * MS);
	ck_assert_uint_eq(rtt.srtt, 10 * MS);
	ck_assert_uint_eq(rtt.rto, 200 * MS);
	for (int i = 0; i < 20; i++)
		rudp__rtt_sample(&rtt, 10 * MS);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 0), 200 * MS);
}
END_TEST

START_TEST(test_rtt_clamps_to_max)
{
	/* 30 s would give RTO 90 s; (2.5) allows a ceiling of 60 s. */
	rudp__rtt_init(&rtt, 1 * S, 200 * MS, 60 * S);
	rudp__rtt_sample(&rtt, 30 * S);
	ck_assert_uint_eq(rtt.srtt, 30 * S);
	ck_assert_uint_eq(rtt.rto, 60 * S);
	/* The estimate itself is not clamped, only the timeout. */
	ck_assert_uint_eq(rtt.rttvar, 15 * S);
}
END_TEST

START_TEST(test_rtt_backoff_doubles)
{
	rudp__rtt_init(&rtt, 1 * S, 200 * MS, 60 * S);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 0), 1 * S);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 1), 2 * S);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 2), 4 * S);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 3), 8 * S);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 5), 32 * S);
	/* Backing off reads the base RTO without changing it. */
	ck_assert_uint_eq(rtt.rto, 1 * S);
}
END_TEST

START_TEST(test_rtt_backoff_capped_at_max)
{
	rudp__rtt_init(&rtt, 1 * S, 200 * MS, 60 * S);
	/* 64 s would exceed the 60 s ceiling (5.5 allows such a cap). */
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 6), 60 * S);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 7), 60 * S);
	/* However many expiries, the value must not wrap around. */
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 64), 60 * S);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 1000), 60 * S);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, UINT_MAX), 60 * S);
}
END_TEST

START_TEST(test_rtt_backoff_after_sample)
{
	/* Backoff doubles the measured RTO, not the initial one. */
	rudp__rtt_init(&rtt, 1 * S, 200 * MS, 60 * S);
	rudp__rtt_sample(&rtt, 100 * MS);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 0), 300 * MS);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 1), 600 * MS);
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 4), 4800 * MS);
	/* 300 ms * 2^8 = 76.8 s, past the ceiling. */
	ck_assert_uint_eq(rudp__rtt_rto(&rtt, 8), 60 * S);
}
END_TEST

static Suite *rtt_suite(void)
{
	Suite *s = suite_create("rtt");
	TCase *tc;

	tc = tcase_create("initial");
	tcase_add_test(tc, test_rtt_initial_rto);
	tcase_add_test(tc, test_rtt_initial_rto_clamped);
	suite_add_tcase(s, tc);

	tc = tcase_create("samples");
	tcase_add_test(tc, test_rtt_first_sample);
	tcase_add_test(tc, test_rtt_first_sample_odd);
	tcase_add_test(tc, test_rtt_granularity_floor);
	tcase_add_test(tc, test_rtt_subsequent_samples);
	tcase_add_test(tc, test_rtt_converges_on_steady_rtt);
	tcase_add_test(tc, test_rtt_tracks_a_step_change);
	suite_add_tcase(s, tc);

	tc = tcase_create("clamping");
	tcase_add_test(tc, test_rtt_clamps_to_min);
	tcase_add_test(tc, test_rtt_clamps_to_max);
	suite_add_tcase(s, tc);

	tc = tcase_create("backoff");
	tcase_add_test(tc, test_rtt_backoff_doubles);
	tcase_add_test(tc, test_rtt_backoff_capped_at_max);
	tcase_add_test(tc, test_rtt_backoff_after_sample);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(rtt_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
