/*
 * The retransmit queue: cumulative acks drop exactly the covered segments,
 * RTT samples obey Karn's rule, the (re)send bookkeeping hands out the
 * right segment, and all of it holds across sequence-number wraparound.
 * The wraparound-safe helpers of seq.h, which the queue relies on, are
 * tested here too.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "rtx.h"
#include "seq.h"
#include "wire.h"

static struct rudp__rtx q;

static void setup(void)
{
	rudp__rtx_init(&q);
}

static void teardown(void)
{
	rudp__rtx_clear(&q);
}

/* Walks the list to count segments, independently of q.count. */
static size_t walk_count(const struct rudp__rtx *r)
{
	size_t n = 0;
	const struct rudp__seg *last = NULL;

	for (const struct rudp__seg *s = r->head; s; s = s->next) {
		last = s;
		n++;
	}
	ck_assert_ptr_eq(r->tail, last);
	return n;
}

/* Pushes segments of the given lengths back to back from seq. */
static void push_run(uint32_t seq, const uint32_t *lens, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(rudp__rtx_push(&q, seq, lens[i], 0), 0);
		seq += lens[i];
	}
}

/* Transmits every queued segment once at time now. */
static void send_all(rudp__usec now)
{
	struct rudp__seg *s;

	while ((s = rudp__rtx_next(&q)) != NULL)
		rudp__rtx_sent(&q, s, now);
}

START_TEST(test_rtx_push_queues_in_order)
{
	ck_assert(rudp__rtx_empty(&q));
	ck_assert_int_eq(rudp__rtx_push(&q, 100, 1, RUDP__F_SYN), 0);
	ck_assert_int_eq(rudp__rtx_push(&q, 101, 500, 0), 0);
	ck_assert_int_eq(rudp__rtx_push(&q, 601, 1, RUDP__F_FIN), 0);
	ck_assert(!rudp__rtx_empty(&q));
	ck_assert_uint_eq(q.count, 3);
	ck_assert_uint_eq(walk_count(&q), 3);

	const struct rudp__seg *s = q.head;
	ck_assert_uint_eq(s->seq, 100);
	ck_assert_uint_eq(s->len, 1);
	ck_assert_uint_eq(s->flags, RUDP__F_SYN);
	s = s->next;
	ck_assert_uint_eq(s->seq, 101);
	ck_assert_uint_eq(s->len, 500);
	ck_assert_uint_eq(s->flags, 0);
	s = s->next;
	ck_assert_uint_eq(s->seq, 601);
	ck_assert_uint_eq(s->flags, RUDP__F_FIN);
	ck_assert_ptr_eq(s, q.tail);
	/* New segments wait for their first transmission. */
	for (s = q.head; s; s = s->next) {
		ck_assert(s->needs_tx);
		ck_assert_uint_eq(s->ntx, 0);
	}
}
END_TEST

START_TEST(test_rtx_ack_cumulative)
{
	static const uint32_t lens[] = { 1, 100, 100, 1 };
	rudp__usec rtt;

	push_run(1000, lens, 4);
	send_all(10);
	/* One ack covering everything empties the queue. */
	ck_assert_uint_eq(rudp__rtx_ack(&q, 1202, 0, 50, &rtt), 4);
	ck_assert(rudp__rtx_empty(&q));
	ck_assert_ptr_null(q.tail);
	ck_assert_uint_eq(q.count, 0);

	/* An emptied queue takes new segments as head and tail. */
	ck_assert_int_eq(rudp__rtx_push(&q, 1202, 10, 0), 0);
	ck_assert_ptr_eq(q.head, q.tail);
	ck_assert_uint_eq(q.head->seq, 1202);
	ck_assert_uint_eq(walk_count(&q), 1);
}
END_TEST

START_TEST(test_rtx_ack_partial)
{
	static const uint32_t lens[] = { 1, 100, 100, 1 };
	rudp__usec rtt;

	push_run(1000, lens, 4);
	send_all(10);
	/* 1101 ends the second segment exactly. */
	ck_assert_uint_eq(rudp__rtx_ack(&q, 1101, 0, 50, &rtt), 2);
	ck_assert_uint_eq(q.count, 2);
	ck_assert_uint_eq(walk_count(&q), 2);
	ck_assert_uint_eq(q.head->seq, 1101);

	/* An ack inside a segment does not cover it. */
	ck_assert_uint_eq(rudp__rtx_ack(&q, 1150, 0, 60, &rtt), 0);
	ck_assert_uint_eq(rtt, RUDP__NEVER);
	ck_assert_uint_eq(q.head->seq, 1101);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 1200, 0, 60, &rtt), 0);
	ck_assert_uint_eq(q.count, 2);

	ck_assert_uint_eq(rudp__rtx_ack(&q, 1201, 0, 70, &rtt), 1);
	ck_assert_uint_eq(q.head->seq, 1201);
	ck_assert_ptr_eq(q.head, q.tail);
}
END_TEST

START_TEST(test_rtx_ack_nothing_new)
{
	static const uint32_t lens[] = { 10, 10 };
	rudp__usec rtt = 0;

	push_run(5000, lens, 2);
	send_all(10);
	/* A duplicate ack of the oldest byte, and an ack from the past. */
	ck_assert_uint_eq(rudp__rtx_ack(&q, 5000, 0, 50, &rtt), 0);
	ck_assert_uint_eq(rtt, RUDP__NEVER);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 4000, 0, 50, &rtt), 0);
	ck_assert_uint_eq(rtt, RUDP__NEVER);
	ck_assert_uint_eq(q.count, 2);
	ck_assert_uint_eq(walk_count(&q), 2);
}
END_TEST

START_TEST(test_rtx_ack_on_empty_queue)
{
	rudp__usec rtt = 0;

	ck_assert_uint_eq(rudp__rtx_ack(&q, 12345, 0, 50, &rtt), 0);
	ck_assert_uint_eq(rtt, RUDP__NEVER);
	ck_assert(rudp__rtx_empty(&q));
	ck_assert_ptr_null(q.tail);
}
END_TEST

START_TEST(test_rtx_clear_empties)
{
	static const uint32_t lens[] = { 1, 2, 3, 4, 5 };

	push_run(0, lens, 5);
	rudp__rtx_clear(&q);
	ck_assert(rudp__rtx_empty(&q));
	ck_assert_ptr_null(q.tail);
	ck_assert_uint_eq(q.count, 0);
	ck_assert_ptr_null(rudp__rtx_next(&q));
}
END_TEST

START_TEST(test_rtx_karn_samples_once_sent)
{
	rudp__usec rtt = 0;

	rudp__rtx_push(&q, 1, 1, RUDP__F_SYN);
	rudp__rtx_sent(&q, rudp__rtx_next(&q), 1000);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 2, 0, 1750, &rtt), 1);
	ck_assert_uint_eq(rtt, 750);
}
END_TEST

START_TEST(test_rtx_karn_skips_retransmitted)
{
	rudp__usec rtt = 0;

	/* Sent twice: the ack might answer either copy, so no sample. */
	rudp__rtx_push(&q, 1, 1, RUDP__F_SYN);
	rudp__rtx_sent(&q, rudp__rtx_next(&q), 1000);
	rudp__rtx_requeue_all(&q);
	rudp__rtx_sent(&q, rudp__rtx_next(&q), 3000);
	ck_assert_uint_eq(q.head->ntx, 2);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 2, 0, 3100, &rtt), 1);
	ck_assert_uint_eq(rtt, RUDP__NEVER);
}
END_TEST

START_TEST(test_rtx_karn_uses_newest_acked)
{
	rudp__usec rtt = 0;
	struct rudp__seg *s;

	/*
	 * Old segment retransmitted, newer one sent once: the ack of both
	 * is unambiguous for the newer one, which gives the sample.
	 */
	rudp__rtx_push(&q, 100, 10, 0);
	rudp__rtx_push(&q, 110, 10, 0);
	rudp__rtx_sent(&q, q.head, 1000);
	rudp__rtx_sent(&q, q.head, 2000);
	rudp__rtx_sent(&q, q.tail, 2500);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 120, 0, 2900, &rtt), 2);
	ck_assert_uint_eq(rtt, 400);

	/*
	 * The other way round: the newest acked was retransmitted, so the
	 * older once-sent segment must not lend its (stale) sample.
	 */
	rudp__rtx_push(&q, 120, 10, 0);
	rudp__rtx_push(&q, 130, 10, 0);
	s = q.head;
	rudp__rtx_sent(&q, s, 5000);
	rudp__rtx_sent(&q, s->next, 5000);
	rudp__rtx_sent(&q, s->next, 7000);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 140, 0, 7100, &rtt), 2);
	ck_assert_uint_eq(rtt, RUDP__NEVER);
}
END_TEST

START_TEST(test_rtx_karn_ignores_unacked_tail)
{
	rudp__usec rtt = 0;

	/* The newest *acked* segment decides, not the newest queued one. */
	rudp__rtx_push(&q, 100, 10, 0);
	rudp__rtx_push(&q, 110, 10, 0);
	rudp__rtx_sent(&q, q.head, 1000);
	rudp__rtx_sent(&q, q.tail, 1100);
	rudp__rtx_sent(&q, q.tail, 4000);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 110, 0, 1300, &rtt), 1);
	ck_assert_uint_eq(rtt, 300);
}
END_TEST

/*
 * A retransmitted segment acked with a timestamp echoed from before the
 * retransmission was delivered by its original: the resend was not
 * needed (RFC 3522).  Echoing the resend's own time, it was.
 */
START_TEST(test_rtx_spurious_retransmission_found_by_echoed_timestamp)
{
	rudp__usec rtt = 0;

	rudp__rtx_push(&q, 100, 10, 0);
	rudp__rtx_push(&q, 110, 10, 0);
	rudp__rtx_sent(&q, q.head, 1000);
	rudp__rtx_sent(&q, q.tail, 1010);
	rudp__rtx_requeue_all(&q);
	rudp__rtx_sent(&q, q.head, 2000);
	rudp__rtx_sent(&q, q.tail, 2010);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 110, 2000, 2500, &rtt), 1);
	ck_assert_uint_eq(q.spurious, 0);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 120, 1010, 2600, &rtt), 1);
	ck_assert_uint_eq(q.spurious, 1);
}
END_TEST

START_TEST(test_rtx_karn_no_sample_if_never_sent)
{
	rudp__usec rtt = 0;

	/* Acking a segment never transmitted has no send time to measure. */
	rudp__rtx_push(&q, 100, 10, 0);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 110, 0, 1300, &rtt), 1);
	ck_assert_uint_eq(rtt, RUDP__NEVER);
}
END_TEST

START_TEST(test_rtx_next_returns_oldest_unsent)
{
	static const uint32_t lens[] = { 1, 10, 10 };
	struct rudp__seg *s;

	ck_assert_ptr_null(rudp__rtx_next(&q));
	push_run(0, lens, 3);
	s = rudp__rtx_next(&q);
	ck_assert_ptr_eq(s, q.head);
	rudp__rtx_sent(&q, s, 100);
	s = rudp__rtx_next(&q);
	ck_assert_ptr_eq(s, q.head->next);
	rudp__rtx_sent(&q, s, 110);
	s = rudp__rtx_next(&q);
	ck_assert_ptr_eq(s, q.tail);
	rudp__rtx_sent(&q, s, 120);
	ck_assert_ptr_null(rudp__rtx_next(&q));
}
END_TEST

START_TEST(test_rtx_sent_bookkeeping)
{
	struct rudp__seg *s;

	rudp__rtx_push(&q, 7, 3, 0);
	s = q.head;
	rudp__rtx_sent(&q, s, 1000);
	ck_assert_uint_eq(s->ntx, 1);
	ck_assert_uint_eq(s->sent_at, 1000);
	ck_assert(!s->needs_tx);
	/* A retransmission counts and moves the send time forward. */
	rudp__rtx_sent(&q, s, 2500);
	ck_assert_uint_eq(s->ntx, 2);
	ck_assert_uint_eq(s->sent_at, 2500);
	ck_assert(!s->needs_tx);
}
END_TEST

START_TEST(test_rtx_requeue_all)
{
	static const uint32_t lens[] = { 1, 10, 10, 10 };
	struct rudp__seg *s;

	push_run(0, lens, 4);
	send_all(100);
	ck_assert_ptr_null(rudp__rtx_next(&q));

	/* After a timeout everything outstanding goes again, oldest first. */
	rudp__rtx_requeue_all(&q);
	for (s = q.head; s; s = s->next) {
		ck_assert(s->needs_tx);
		ck_assert_uint_eq(s->ntx, 1);
		ck_assert_uint_eq(s->sent_at, 100);
	}
	ck_assert_ptr_eq(rudp__rtx_next(&q), q.head);
	send_all(300);
	for (s = q.head; s; s = s->next) {
		ck_assert_uint_eq(s->ntx, 2);
		ck_assert_uint_eq(s->sent_at, 300);
	}
	ck_assert_uint_eq(q.count, 4);
}
END_TEST

START_TEST(test_rtx_requeue_after_partial_ack)
{
	static const uint32_t lens[] = { 10, 10, 10 };
	rudp__usec rtt;

	push_run(0, lens, 3);
	send_all(100);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 10, 0, 150, &rtt), 1);
	/* Only what is still outstanding is sent again. */
	rudp__rtx_requeue_all(&q);
	ck_assert_ptr_eq(rudp__rtx_next(&q), q.head);
	ck_assert_uint_eq(q.head->seq, 10);
	ck_assert_uint_eq(q.count, 2);
}
END_TEST

START_TEST(test_rtx_ack_across_wraparound)
{
	rudp__usec rtt;

	/* Segments at ...fff0 (ending at 0 exactly), 0, and 5. */
	ck_assert_int_eq(rudp__rtx_push(&q, 0xfffffff0u, 0x10, 0), 0);
	ck_assert_int_eq(rudp__rtx_push(&q, 0, 5, 0), 0);
	ck_assert_int_eq(rudp__rtx_push(&q, 5, 5, 0), 0);
	send_all(100);

	/* Numerically smaller acks from before the wrap cover nothing yet. */
	ck_assert_uint_eq(rudp__rtx_ack(&q, 0xfffffff8u, 0, 150, &rtt), 0);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 0xffffffffu, 0, 150, &rtt), 0);
	/* 0 is past 0xffffffff: the first segment is done. */
	ck_assert_uint_eq(rudp__rtx_ack(&q, 0, 0, 160, &rtt), 1);
	ck_assert_uint_eq(rtt, 60);
	ck_assert_uint_eq(q.head->seq, 0);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 10, 0, 170, &rtt), 2);
	ck_assert(rudp__rtx_empty(&q));
}
END_TEST

START_TEST(test_rtx_ack_segment_straddling_wrap)
{
	rudp__usec rtt;

	/* One segment covering ...fffe, ...ffff, 0 and 1. */
	ck_assert_int_eq(rudp__rtx_push(&q, 0xfffffffeu, 4, 0), 0);
	ck_assert_int_eq(rudp__rtx_push(&q, 2, 1, RUDP__F_FIN), 0);
	send_all(100);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 0xffffffffu, 0, 120, &rtt), 0);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 1, 0, 120, &rtt), 0);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 2, 0, 130, &rtt), 1);
	ck_assert_uint_eq(q.head->seq, 2);
	/* A single big cumulative ack works across the wrap as well. */
	ck_assert_uint_eq(rudp__rtx_ack(&q, 3, 0, 140, &rtt), 1);
	ck_assert(rudp__rtx_empty(&q));
}
END_TEST

START_TEST(test_rtx_ack_whole_queue_across_wrap)
{
	static const uint32_t lens[] = { 100, 100, 100, 100 };
	rudp__usec rtt;

	/* 0xffffff00 + 400 = 0x100, past the wrap. */
	push_run(0xffffff00u, lens, 4);
	send_all(100);
	ck_assert_uint_eq(rudp__rtx_ack(&q, 0x100, 0, 200, &rtt), 4);
	ck_assert(rudp__rtx_empty(&q));
	ck_assert_ptr_null(q.tail);
}
END_TEST

START_TEST(test_seq_lt_and_gt)
{
	ck_assert(rudp__seq_lt(1, 2));
	ck_assert(!rudp__seq_lt(2, 1));
	ck_assert(!rudp__seq_lt(7, 7));
	ck_assert(rudp__seq_gt(2, 1));
	ck_assert(!rudp__seq_gt(1, 2));
	ck_assert(!rudp__seq_gt(7, 7));
	/* Across the wrap the numerically larger value comes first. */
	ck_assert(rudp__seq_lt(0xffffffffu, 0));
	ck_assert(!rudp__seq_lt(0, 0xffffffffu));
	ck_assert(rudp__seq_gt(0, 0xffffffffu));
	ck_assert(rudp__seq_lt(0xfffffff0u, 0x10));
	ck_assert(rudp__seq_gt(0x10, 0xfffffff0u));
}
END_TEST

START_TEST(test_seq_le_and_ge)
{
	ck_assert(rudp__seq_le(7, 7));
	ck_assert(rudp__seq_ge(7, 7));
	ck_assert(rudp__seq_le(0xffffffffu, 0xffffffffu));
	ck_assert(rudp__seq_le(0xffffffffu, 0));
	ck_assert(!rudp__seq_le(0, 0xffffffffu));
	ck_assert(rudp__seq_ge(0, 0xffffffffu));
	ck_assert(!rudp__seq_ge(0xffffffffu, 0));
	ck_assert(rudp__seq_le(3, 4));
	ck_assert(!rudp__seq_ge(3, 4));
}
END_TEST

START_TEST(test_seq_half_circle_horizon)
{
	/* Less than half the circle ahead is "after"; more is "before". */
	ck_assert(rudp__seq_lt(0, 0x7fffffffu));
	ck_assert(rudp__seq_gt(0, 0x80000001u));
	ck_assert(rudp__seq_lt(0x80000000u, 0xffffffffu));
	ck_assert(rudp__seq_gt(0x80000000u, 0x00000001u));
	/* The horizon moves with the reference point. */
	for (uint32_t base = 0; base < 0xf0000000u; base += 0x10000001u) {
		ck_assert(rudp__seq_lt(base, base + 0x7fffffffu));
		ck_assert(rudp__seq_gt(base, base + 0x80000001u));
		ck_assert(rudp__seq_lt(base - 1, base));
		ck_assert(rudp__seq_gt(base + 1, base));
	}
}
END_TEST

START_TEST(test_seq_in_range)
{
	ck_assert(rudp__seq_in(5, 5, 10));
	ck_assert(rudp__seq_in(9, 5, 10));
	ck_assert(!rudp__seq_in(10, 5, 10));
	ck_assert(!rudp__seq_in(4, 5, 10));
	/* A range wrapping the circle: [...fff0, 0x10). */
	ck_assert(rudp__seq_in(0xfffffff0u, 0xfffffff0u, 0x10));
	ck_assert(rudp__seq_in(0xffffffffu, 0xfffffff0u, 0x10));
	ck_assert(rudp__seq_in(0, 0xfffffff0u, 0x10));
	ck_assert(rudp__seq_in(0xf, 0xfffffff0u, 0x10));
	ck_assert(!rudp__seq_in(0x10, 0xfffffff0u, 0x10));
	ck_assert(!rudp__seq_in(0xffffffefu, 0xfffffff0u, 0x10));
	ck_assert(!rudp__seq_in(0x80000000u, 0xfffffff0u, 0x10));
	/* An empty range holds nothing. */
	ck_assert(!rudp__seq_in(5, 5, 5));
	ck_assert(!rudp__seq_in(0, 0, 0));
}
END_TEST

START_TEST(test_seq_time_helpers)
{
	ck_assert(rudp__time_before(1, 2));
	ck_assert(!rudp__time_before(2, 2));
	ck_assert(!rudp__time_before(3, 2));
	ck_assert(rudp__time_reached(2, 2));
	ck_assert(rudp__time_reached(3, 2));
	ck_assert(!rudp__time_reached(1, 2));
	/* Nothing is ever reached at NEVER, and NEVER never wins a min. */
	ck_assert(!rudp__time_reached(UINT64_MAX - 1, RUDP__NEVER));
	ck_assert_uint_eq(rudp__time_min(5, RUDP__NEVER), 5);
	ck_assert_uint_eq(rudp__time_min(RUDP__NEVER, 5), 5);
	ck_assert_uint_eq(rudp__time_min(9, 4), 4);
	ck_assert_uint_eq(RUDP__SEC, 1000 * RUDP__MSEC);
}
END_TEST

static Suite *rtx_suite(void)
{
	Suite *s = suite_create("rtx");
	TCase *tc;

	tc = tcase_create("push_ack");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_rtx_push_queues_in_order);
	tcase_add_test(tc, test_rtx_ack_cumulative);
	tcase_add_test(tc, test_rtx_ack_partial);
	tcase_add_test(tc, test_rtx_ack_nothing_new);
	tcase_add_test(tc, test_rtx_ack_on_empty_queue);
	tcase_add_test(tc, test_rtx_clear_empties);
	suite_add_tcase(s, tc);

	tc = tcase_create("karn");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_rtx_karn_samples_once_sent);
	tcase_add_test(tc, test_rtx_karn_skips_retransmitted);
	tcase_add_test(tc, test_rtx_karn_uses_newest_acked);
	tcase_add_test(tc, test_rtx_karn_ignores_unacked_tail);
	tcase_add_test(tc, test_rtx_karn_no_sample_if_never_sent);
	suite_add_tcase(s, tc);

	tc = tcase_create("spurious");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_rtx_spurious_retransmission_found_by_echoed_timestamp);
	suite_add_tcase(s, tc);

	tc = tcase_create("requeue");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_rtx_next_returns_oldest_unsent);
	tcase_add_test(tc, test_rtx_sent_bookkeeping);
	tcase_add_test(tc, test_rtx_requeue_all);
	tcase_add_test(tc, test_rtx_requeue_after_partial_ack);
	suite_add_tcase(s, tc);

	tc = tcase_create("wraparound");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_rtx_ack_across_wraparound);
	tcase_add_test(tc, test_rtx_ack_segment_straddling_wrap);
	tcase_add_test(tc, test_rtx_ack_whole_queue_across_wrap);
	suite_add_tcase(s, tc);

	tc = tcase_create("seq_wraparound");
	tcase_add_test(tc, test_seq_lt_and_gt);
	tcase_add_test(tc, test_seq_le_and_ge);
	tcase_add_test(tc, test_seq_half_circle_horizon);
	tcase_add_test(tc, test_seq_in_range);
	tcase_add_test(tc, test_seq_time_helpers);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(rtx_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
