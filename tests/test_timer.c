/*
 * The timer heap: the earliest timer is always at the root, every timer
 * knows its slot, and rescheduling, removal and freeing keep both true.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "timer.h"

#define NT 2000

static struct rudp__heap heap;
static struct rudp__timer timers[NT];

/* A fixed-seed xorshift64* generator, so that failures reproduce. */
static uint64_t prng_state;

static void prng_seed(uint64_t seed)
{
	prng_state = seed ? seed : 1;
}

static uint64_t prng_next(void)
{
	prng_state ^= prng_state >> 12;
	prng_state ^= prng_state << 25;
	prng_state ^= prng_state >> 27;
	return prng_state * UINT64_C(2685821657736338717);
}

static uint32_t prng_below(uint32_t n)
{
	return (uint32_t)(prng_next() >> 32) % n;
}

static void setup(void)
{
	rudp__heap_init(&heap);
	for (size_t i = 0; i < NT; i++)
		rudp__timer_init(&timers[i]);
}

static void teardown(void)
{
	rudp__heap_free(&heap);
}

/*
 * Checks the two invariants everything else relies on: each queued timer's
 * slot names its own index, and no child fires before its parent.
 */
static void check_heap(const struct rudp__heap *h)
{
	/*
	 * Plain ifs rather than ck_assert: this runs over thousands of
	 * timers, and each ck_assert reports its location to the runner.
	 */
	if (h->n > h->cap)
		ck_abort_msg("%zu timers in a heap of %zu", h->n, h->cap);
	for (size_t i = 0; i < h->n; i++) {
		const struct rudp__timer *t = h->v[i];
		if (!t || t->slot != i)
			ck_abort_msg("slot %zu holds a timer that says %zu", i,
				     t ? t->slot : (size_t)0);
		if (t->when == RUDP__NEVER)
			ck_abort_msg("slot %zu is queued for never", i);
		if (i > 0 && h->v[(i - 1) / 2]->when > t->when)
			ck_abort_msg("slot %zu fires before its parent", i);
	}
}

/* Whether t is queued in h, found by scanning rather than by its slot. */
static int queued(const struct rudp__heap *h, const struct rudp__timer *t)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i] == t)
			return 1;
	return 0;
}

/*
 * Empties h by repeatedly removing the minimum, checking that deadlines
 * come out in order.  Returns how many timers came out.
 */
static size_t drain_in_order(struct rudp__heap *h)
{
	size_t count = 0;
	rudp__usec last = 0;
	struct rudp__timer *t;

	while ((t = rudp__heap_min(h)) != NULL) {
		ck_assert_uint_eq(rudp__heap_deadline(h), t->when);
		ck_assert_uint_ge(t->when, last);
		last = t->when;
		rudp__heap_remove(h, t);
		ck_assert_uint_eq(t->slot, RUDP__TIMER_IDLE);
		count++;
	}
	ck_assert_uint_eq(h->n, 0);
	return count;
}

START_TEST(test_timer_empty_heap_has_no_deadline)
{
	ck_assert_ptr_null(rudp__heap_min(&heap));
	ck_assert_uint_eq(rudp__heap_deadline(&heap), RUDP__NEVER);
	ck_assert_uint_eq(timers[0].slot, RUDP__TIMER_IDLE);
	ck_assert_uint_eq(timers[0].when, RUDP__NEVER);
}
END_TEST

START_TEST(test_timer_orders_random_inserts)
{
	prng_seed(UINT64_C(0x7133e5));
	for (size_t i = 0; i < NT; i++) {
		/* A narrow range makes equal deadlines common too. */
		rudp__usec when = 1 + prng_below(i % 2 ? 500 : 1000000);
		ck_assert_int_eq(rudp__heap_set(&heap, &timers[i], when), 0);
		ck_assert_uint_eq(timers[i].when, when);
		ck_assert_uint_eq(heap.n, i + 1);
		if (i % 97 == 0)
			check_heap(&heap);
	}
	check_heap(&heap);
	ck_assert_uint_eq(drain_in_order(&heap), NT);
}
END_TEST

START_TEST(test_timer_root_is_earliest)
{
	/* Descending inserts make every new timer the new root. */
	for (size_t i = 0; i < 10; i++) {
		ck_assert_int_eq(rudp__heap_set(&heap, &timers[i], 100 - i), 0);
		ck_assert_ptr_eq(rudp__heap_min(&heap), &timers[i]);
		ck_assert_uint_eq(rudp__heap_deadline(&heap), 100 - i);
	}
	/* A later one leaves the root alone. */
	ck_assert_int_eq(rudp__heap_set(&heap, &timers[10], 1000), 0);
	ck_assert_ptr_eq(rudp__heap_min(&heap), &timers[9]);
	check_heap(&heap);
}
END_TEST

START_TEST(test_timer_reschedule_earlier)
{
	for (size_t i = 0; i < 50; i++)
		rudp__heap_set(&heap, &timers[i], 1000 + 10 * i);
	/* The latest timer jumps ahead of everyone. */
	ck_assert_int_eq(rudp__heap_set(&heap, &timers[49], 5), 0);
	ck_assert_uint_eq(heap.n, 50);
	ck_assert_ptr_eq(rudp__heap_min(&heap), &timers[49]);
	ck_assert_uint_eq(rudp__heap_deadline(&heap), 5);
	check_heap(&heap);
	/* A middle one moves up but not to the root. */
	ck_assert_int_eq(rudp__heap_set(&heap, &timers[30], 1001), 0);
	check_heap(&heap);
	ck_assert_ptr_eq(rudp__heap_min(&heap), &timers[49]);
	ck_assert_uint_eq(drain_in_order(&heap), 50);
}
END_TEST

START_TEST(test_timer_reschedule_later)
{
	for (size_t i = 0; i < 50; i++)
		rudp__heap_set(&heap, &timers[i], 1000 + 10 * i);
	ck_assert_ptr_eq(rudp__heap_min(&heap), &timers[0]);
	/* The root moves to the back; the runner-up takes its place. */
	ck_assert_int_eq(rudp__heap_set(&heap, &timers[0], 1000000), 0);
	ck_assert_uint_eq(heap.n, 50);
	ck_assert_ptr_eq(rudp__heap_min(&heap), &timers[1]);
	check_heap(&heap);
	/* Rescheduling to the same time is a valid no-op. */
	ck_assert_int_eq(rudp__heap_set(&heap, &timers[1], 1010), 0);
	ck_assert_ptr_eq(rudp__heap_min(&heap), &timers[1]);
	check_heap(&heap);

	/* The old root now comes out last. */
	struct rudp__timer *t;
	while ((t = rudp__heap_min(&heap)) != &timers[0]) {
		ck_assert_ptr_nonnull(t);
		rudp__heap_remove(&heap, t);
	}
	ck_assert_uint_eq(heap.n, 1);
}
END_TEST

START_TEST(test_timer_reschedule_random)
{
	prng_seed(42);
	for (size_t i = 0; i < 500; i++)
		rudp__heap_set(&heap, &timers[i], 1 + prng_below(100000));
	/* Moving queued timers either way must never duplicate them. */
	for (size_t k = 0; k < 5000; k++) {
		struct rudp__timer *t = &timers[prng_below(500)];
		ck_assert_int_eq(rudp__heap_set(&heap, t,
						1 + prng_below(100000)), 0);
		ck_assert_uint_eq(heap.n, 500);
		if (k % 250 == 0)
			check_heap(&heap);
	}
	check_heap(&heap);
	ck_assert_uint_eq(drain_in_order(&heap), 500);
}
END_TEST

/* Queues timers 0..n-1 at 10, 20, ... so their heap layout is known. */
static void queue_ascending(size_t n)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(rudp__heap_set(&heap, &timers[i], 10 * (i + 1)),
				 0);
	/* Ascending inserts never sift, so timer i sits in slot i. */
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(timers[i].slot, i);
}

START_TEST(test_timer_remove_root)
{
	queue_ascending(31);
	rudp__heap_remove(&heap, &timers[0]);
	ck_assert_uint_eq(timers[0].slot, RUDP__TIMER_IDLE);
	ck_assert_uint_eq(heap.n, 30);
	ck_assert_ptr_eq(rudp__heap_min(&heap), &timers[1]);
	ck_assert(!queued(&heap, &timers[0]));
	check_heap(&heap);
	ck_assert_uint_eq(drain_in_order(&heap), 30);
}
END_TEST

START_TEST(test_timer_remove_last)
{
	queue_ascending(31);
	rudp__heap_remove(&heap, &timers[30]);
	ck_assert_uint_eq(timers[30].slot, RUDP__TIMER_IDLE);
	ck_assert_uint_eq(heap.n, 30);
	ck_assert(!queued(&heap, &timers[30]));
	check_heap(&heap);
	ck_assert_uint_eq(drain_in_order(&heap), 30);
}
END_TEST

START_TEST(test_timer_remove_middle)
{
	queue_ascending(31);
	/*
	 * Slot 3 roots a subtree of later timers; the last timer (310),
	 * which fills the hole, belongs below them and must sift down.
	 */
	rudp__heap_remove(&heap, &timers[3]);
	ck_assert_uint_eq(timers[3].slot, RUDP__TIMER_IDLE);
	ck_assert_uint_eq(heap.n, 30);
	ck_assert(!queued(&heap, &timers[3]));
	check_heap(&heap);
	ck_assert_uint_eq(drain_in_order(&heap), 30);
}
END_TEST

START_TEST(test_timer_remove_middle_sifts_up)
{
	static const rudp__usec when[] = { 10, 100, 20, 110, 120, 30, 40 };

	/*
	 * Inserted in this order nothing sifts, so the left subtree holds
	 * 100, 110, 120 and the right one 20, 30, 40.  Removing 110 moves
	 * the last timer (40) under 100, where it must sift up instead.
	 */
	for (size_t i = 0; i < 7; i++) {
		ck_assert_int_eq(rudp__heap_set(&heap, &timers[i], when[i]), 0);
		ck_assert_uint_eq(timers[i].slot, i);
	}
	rudp__heap_remove(&heap, &timers[3]);
	ck_assert_uint_eq(heap.n, 6);
	ck_assert_uint_eq(timers[6].slot, 1);
	ck_assert_uint_eq(timers[1].slot, 3);
	check_heap(&heap);
	ck_assert_uint_eq(drain_in_order(&heap), 6);
}
END_TEST

START_TEST(test_timer_remove_random)
{
	prng_seed(7);
	for (size_t i = 0; i < 1000; i++)
		rudp__heap_set(&heap, &timers[i], 1 + prng_below(5000));
	size_t left = 1000;
	for (size_t k = 0; k < 600; k++) {
		struct rudp__timer *t = &timers[prng_below(1000)];
		int was = t->slot != RUDP__TIMER_IDLE;
		rudp__heap_remove(&heap, t);
		left -= (size_t)was;
		ck_assert_uint_eq(heap.n, left);
		ck_assert_uint_eq(t->slot, RUDP__TIMER_IDLE);
		if (k % 50 == 0)
			check_heap(&heap);
	}
	check_heap(&heap);
	ck_assert_uint_eq(drain_in_order(&heap), left);
}
END_TEST

START_TEST(test_timer_remove_idle_is_harmless)
{
	queue_ascending(5);
	rudp__heap_remove(&heap, &timers[10]);
	ck_assert_uint_eq(heap.n, 5);
	rudp__heap_remove(&heap, &timers[2]);
	rudp__heap_remove(&heap, &timers[2]);
	ck_assert_uint_eq(heap.n, 4);
	check_heap(&heap);
}
END_TEST

START_TEST(test_timer_never_removes)
{
	queue_ascending(7);
	ck_assert_int_eq(rudp__heap_set(&heap, &timers[0], RUDP__NEVER), 0);
	ck_assert_uint_eq(heap.n, 6);
	ck_assert_uint_eq(timers[0].slot, RUDP__TIMER_IDLE);
	ck_assert_uint_eq(timers[0].when, RUDP__NEVER);
	ck_assert(!queued(&heap, &timers[0]));
	ck_assert_ptr_eq(rudp__heap_min(&heap), &timers[1]);
	check_heap(&heap);

	/* On an idle timer it is a no-op that still records NEVER. */
	ck_assert_int_eq(rudp__heap_set(&heap, &timers[0], RUDP__NEVER), 0);
	ck_assert_uint_eq(heap.n, 6);

	/* Cancelling everything leaves no deadline behind. */
	for (size_t i = 1; i < 7; i++)
		rudp__heap_set(&heap, &timers[i], RUDP__NEVER);
	ck_assert_uint_eq(heap.n, 0);
	ck_assert_uint_eq(rudp__heap_deadline(&heap), RUDP__NEVER);

	/* A cancelled timer can be queued again. */
	ck_assert_int_eq(rudp__heap_set(&heap, &timers[3], 77), 0);
	ck_assert_ptr_eq(rudp__heap_min(&heap), &timers[3]);
}
END_TEST

START_TEST(test_timer_reserve_prevents_growth)
{
	ck_assert_int_eq(rudp__heap_reserve(&heap, 1000), 0);
	ck_assert_uint_ge(heap.cap, 1000);
	struct rudp__timer **v = heap.v;
	size_t cap = heap.cap;

	/* Reserving less than is already there changes nothing. */
	ck_assert_int_eq(rudp__heap_reserve(&heap, 10), 0);
	ck_assert_ptr_eq(heap.v, v);
	ck_assert_uint_eq(heap.cap, cap);

	/* Up to the reservation, inserts never reallocate. */
	prng_seed(3);
	for (size_t i = 0; i < 1000; i++) {
		ck_assert_int_eq(rudp__heap_set(&heap, &timers[i],
						1 + prng_below(1000)), 0);
		ck_assert_ptr_eq(heap.v, v);
	}
	ck_assert_uint_eq(heap.cap, cap);
	check_heap(&heap);
}
END_TEST

START_TEST(test_timer_grows_past_capacity)
{
	/* Inserting without a reservation grows as needed, keeping order. */
	for (size_t i = 0; i < NT; i++)
		ck_assert_int_eq(rudp__heap_set(&heap, &timers[i], NT - i), 0);
	ck_assert_uint_ge(heap.cap, NT);
	check_heap(&heap);
	ck_assert_uint_eq(drain_in_order(&heap), NT);
}
END_TEST

START_TEST(test_timer_free_marks_idle)
{
	queue_ascending(40);
	rudp__heap_free(&heap);
	ck_assert_uint_eq(heap.n, 0);
	ck_assert_ptr_null(heap.v);
	ck_assert_ptr_null(rudp__heap_min(&heap));
	/* Owners may later call remove; that must not touch freed memory. */
	for (size_t i = 0; i < 40; i++) {
		ck_assert_uint_eq(timers[i].slot, RUDP__TIMER_IDLE);
		rudp__heap_remove(&heap, &timers[i]);
	}
	/* The freed heap is empty but usable again. */
	ck_assert_int_eq(rudp__heap_set(&heap, &timers[5], 9), 0);
	ck_assert_ptr_eq(rudp__heap_min(&heap), &timers[5]);
	ck_assert_uint_eq(heap.n, 1);
}
END_TEST

static Suite *timer_suite(void)
{
	Suite *s = suite_create("timer");
	TCase *tc;

	tc = tcase_create("ordering");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_timer_empty_heap_has_no_deadline);
	tcase_add_test(tc, test_timer_orders_random_inserts);
	tcase_add_test(tc, test_timer_root_is_earliest);
	suite_add_tcase(s, tc);

	tc = tcase_create("reschedule");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_timer_reschedule_earlier);
	tcase_add_test(tc, test_timer_reschedule_later);
	tcase_add_test(tc, test_timer_reschedule_random);
	suite_add_tcase(s, tc);

	tc = tcase_create("remove");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_timer_remove_root);
	tcase_add_test(tc, test_timer_remove_last);
	tcase_add_test(tc, test_timer_remove_middle);
	tcase_add_test(tc, test_timer_remove_middle_sifts_up);
	tcase_add_test(tc, test_timer_remove_random);
	tcase_add_test(tc, test_timer_remove_idle_is_harmless);
	tcase_add_test(tc, test_timer_never_removes);
	suite_add_tcase(s, tc);

	tc = tcase_create("memory");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_timer_reserve_prevents_growth);
	tcase_add_test(tc, test_timer_grows_past_capacity);
	tcase_add_test(tc, test_timer_free_marks_idle);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(timer_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
