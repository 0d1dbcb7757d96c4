/*
 * The connection-id table: both kinds of chain find what was added and
 * forget what was deleted, duplicate peer ids are all reachable through
 * find/next, and growth to many thousands of entries loses nothing.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "cidtab.h"
#include "conn.h"

static struct rudp__cidtab tab;

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

static void setup(void)
{
	ck_assert_int_eq(rudp__cidtab_init(&tab), 0);
}

static void teardown(void)
{
	rudp__cidtab_free(&tab);
}

/* Zeroed connections, as the endpoint hands them to the table. */
static struct rudp__conn *conns(size_t n)
{
	struct rudp__conn *c = calloc(n, sizeof(*c));

	ck_assert_ptr_nonnull(c);
	return c;
}

/* How many connections find/next yield for key, checking each matches. */
static size_t count_key(int kind, uint32_t key)
{
	size_t n = 0;

	for (struct rudp__conn *c = rudp__cidtab_find(&tab, kind, key); c;
	     c = rudp__cidtab_next(c, kind, key)) {
		uint32_t got = kind == RUDP__BY_LOCAL ? c->local_cid
						      : c->peer_cid;
		if (got != key)
			ck_abort_msg("key %#x yielded a conn keyed %#x", key,
				     got);
		if (++n > 1000000)
			ck_abort_msg("key %#x: the chain loops", key);
	}
	return n;
}

/* Whether find/next for key reaches c. */
static int reaches(int kind, uint32_t key, const struct rudp__conn *c)
{
	for (struct rudp__conn *x = rudp__cidtab_find(&tab, kind, key); x;
	     x = rudp__cidtab_next(x, kind, key))
		if (x == c)
			return 1;
	return 0;
}

START_TEST(test_cidtab_empty_finds_nothing)
{
	ck_assert_ptr_null(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, 1));
	ck_assert_ptr_null(rudp__cidtab_find(&tab, RUDP__BY_PEER, 1));
	ck_assert_ptr_null(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, 0));
	ck_assert_ptr_null(rudp__cidtab_find(&tab, RUDP__BY_PEER,
					     UINT32_MAX));
	ck_assert_uint_eq(tab.n[RUDP__BY_LOCAL], 0);
	ck_assert_uint_eq(tab.n[RUDP__BY_PEER], 0);
}
END_TEST

START_TEST(test_cidtab_add_find_local)
{
	struct rudp__conn *c = conns(3);

	c[0].local_cid = 0x1001;
	c[1].local_cid = 0x2002;
	c[2].local_cid = UINT32_MAX;
	for (int i = 0; i < 3; i++) {
		rudp__cidtab_add(&tab, &c[i], RUDP__BY_LOCAL);
		ck_assert(c[i].in_table[RUDP__BY_LOCAL]);
		ck_assert(!c[i].in_table[RUDP__BY_PEER]);
	}
	ck_assert_uint_eq(tab.n[RUDP__BY_LOCAL], 3);
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, 0x1001), &c[0]);
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, 0x2002), &c[1]);
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, UINT32_MAX),
			 &c[2]);
	ck_assert_ptr_null(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, 0x3003));
	ck_assert_ptr_null(rudp__cidtab_next(&c[0], RUDP__BY_LOCAL, 0x1001));
	free(c);
}
END_TEST

START_TEST(test_cidtab_add_find_peer)
{
	struct rudp__conn *c = conns(2);

	c[0].peer_cid = 0xaaaa;
	c[1].peer_cid = 0xbbbb;
	rudp__cidtab_add(&tab, &c[0], RUDP__BY_PEER);
	rudp__cidtab_add(&tab, &c[1], RUDP__BY_PEER);
	ck_assert_uint_eq(tab.n[RUDP__BY_PEER], 2);
	ck_assert_uint_eq(tab.n[RUDP__BY_LOCAL], 0);
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_PEER, 0xaaaa), &c[0]);
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_PEER, 0xbbbb), &c[1]);
	ck_assert_ptr_null(rudp__cidtab_find(&tab, RUDP__BY_PEER, 0xcccc));
	free(c);
}
END_TEST

START_TEST(test_cidtab_kinds_are_independent)
{
	struct rudp__conn *c = conns(3);

	/* Each id is one connection's own and the other's peer id. */
	c[0].local_cid = 5;
	c[0].peer_cid = 9;
	c[1].local_cid = 9;
	c[1].peer_cid = 5;
	for (int i = 0; i < 2; i++) {
		rudp__cidtab_add(&tab, &c[i], RUDP__BY_LOCAL);
		rudp__cidtab_add(&tab, &c[i], RUDP__BY_PEER);
	}
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, 5), &c[0]);
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_PEER, 5), &c[1]);
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, 9), &c[1]);
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_PEER, 9), &c[0]);

	/* On one chain only: invisible to the other kind. */
	c[2].local_cid = 77;
	c[2].peer_cid = 88;
	rudp__cidtab_add(&tab, &c[2], RUDP__BY_LOCAL);
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, 77), &c[2]);
	ck_assert_ptr_null(rudp__cidtab_find(&tab, RUDP__BY_PEER, 88));
	ck_assert_ptr_null(rudp__cidtab_find(&tab, RUDP__BY_PEER, 77));

	/* Removing from one kind leaves the other alone. */
	rudp__cidtab_del(&tab, &c[0], RUDP__BY_LOCAL);
	ck_assert_ptr_null(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, 5));
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_PEER, 9), &c[0]);
	ck_assert_uint_eq(tab.n[RUDP__BY_LOCAL], 2);
	ck_assert_uint_eq(tab.n[RUDP__BY_PEER], 2);
	free(c);
}
END_TEST

START_TEST(test_cidtab_del_removes)
{
	struct rudp__conn *c = conns(5);

	for (int i = 0; i < 5; i++) {
		c[i].local_cid = 100 + (uint32_t)i;
		rudp__cidtab_add(&tab, &c[i], RUDP__BY_LOCAL);
	}
	rudp__cidtab_del(&tab, &c[2], RUDP__BY_LOCAL);
	ck_assert(!c[2].in_table[RUDP__BY_LOCAL]);
	ck_assert_ptr_null(c[2].link[RUDP__BY_LOCAL]);
	ck_assert_ptr_null(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, 102));
	ck_assert_uint_eq(tab.n[RUDP__BY_LOCAL], 4);
	for (int i = 0; i < 5; i++)
		if (i != 2)
			ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_LOCAL,
							   100 + (uint32_t)i),
					 &c[i]);

	/* A deleted entry can come back. */
	rudp__cidtab_add(&tab, &c[2], RUDP__BY_LOCAL);
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, 102), &c[2]);
	ck_assert_uint_eq(tab.n[RUDP__BY_LOCAL], 5);
	free(c);
}
END_TEST

START_TEST(test_cidtab_add_twice_is_noop)
{
	struct rudp__conn *c = conns(1);

	/*
	 * Linking the same node in twice would make its chain loop back on
	 * itself, so the second add must do nothing.
	 */
	c->peer_cid = 42;
	rudp__cidtab_add(&tab, c, RUDP__BY_PEER);
	rudp__cidtab_add(&tab, c, RUDP__BY_PEER);
	ck_assert_uint_eq(tab.n[RUDP__BY_PEER], 1);
	ck_assert_uint_eq(count_key(RUDP__BY_PEER, 42), 1);
	rudp__cidtab_del(&tab, c, RUDP__BY_PEER);
	ck_assert_ptr_null(rudp__cidtab_find(&tab, RUDP__BY_PEER, 42));
	ck_assert_uint_eq(tab.n[RUDP__BY_PEER], 0);
	free(c);
}
END_TEST

START_TEST(test_cidtab_duplicate_peer_ids)
{
	enum { DUP = 8 };
	struct rudp__conn *c = conns(DUP + 2);

	/*
	 * Several peers may choose the same id; a retransmitted SYN must be
	 * matched against every one of them.
	 */
	for (int i = 0; i < DUP; i++) {
		c[i].local_cid = 1000 + (uint32_t)i;
		c[i].peer_cid = 0x77;
		rudp__cidtab_add(&tab, &c[i], RUDP__BY_PEER);
	}
	c[DUP].peer_cid = 0x78;
	c[DUP + 1].peer_cid = 0x76;
	rudp__cidtab_add(&tab, &c[DUP], RUDP__BY_PEER);
	rudp__cidtab_add(&tab, &c[DUP + 1], RUDP__BY_PEER);

	ck_assert_uint_eq(count_key(RUDP__BY_PEER, 0x77), DUP);
	for (int i = 0; i < DUP; i++)
		ck_assert(reaches(RUDP__BY_PEER, 0x77, &c[i]));
	ck_assert_uint_eq(count_key(RUDP__BY_PEER, 0x78), 1);

	/* Deleting from the front, middle and end of the run. */
	struct rudp__conn *first = rudp__cidtab_find(&tab, RUDP__BY_PEER, 0x77);
	rudp__cidtab_del(&tab, first, RUDP__BY_PEER);
	rudp__cidtab_del(&tab, &c[3], RUDP__BY_PEER);
	rudp__cidtab_del(&tab, &c[DUP - 1], RUDP__BY_PEER);
	size_t gone = 2 + (first != &c[3] && first != &c[DUP - 1]);
	ck_assert_uint_eq(count_key(RUDP__BY_PEER, 0x77), DUP - gone);
	ck_assert(!reaches(RUDP__BY_PEER, 0x77, first));
	ck_assert(!reaches(RUDP__BY_PEER, 0x77, &c[3]));
	ck_assert(!reaches(RUDP__BY_PEER, 0x77, &c[DUP - 1]));
	ck_assert_uint_eq(count_key(RUDP__BY_PEER, 0x78), 1);
	ck_assert_uint_eq(count_key(RUDP__BY_PEER, 0x76), 1);
	free(c);
}
END_TEST

static uint32_t peer_key(const struct rudp__conn *c)
{
	return c->peer_cid;
}

START_TEST(test_cidtab_next_skips_other_keys)
{
	enum { NO = 1000, DUP = 5 };
	struct rudp__conn *other = conns(NO);
	struct rudp__conn *dup = conns(DUP);
	const struct rudp__conn *a = NULL;

	/*
	 * A thousand random keys in about as many buckets are bound to
	 * share chains.  Pick a chain holding two different keys, so that
	 * find and next must step over a stranger to reach every duplicate.
	 */
	prng_seed(11);
	for (size_t i = 0; i < NO; i++) {
		other[i].peer_cid = (uint32_t)prng_next() | 1;
		rudp__cidtab_add(&tab, &other[i], RUDP__BY_PEER);
	}
	size_t nb = tab.nb;
	for (size_t b = 0; b < tab.nb && !a; b++) {
		const struct rudp__conn *x = tab.b[RUDP__BY_PEER][b];
		for (; x && x->link[RUDP__BY_PEER]; x = x->link[RUDP__BY_PEER])
			if (peer_key(x) != peer_key(x->link[RUDP__BY_PEER]))
				a = x;
	}
	ck_assert_ptr_nonnull(a);
	uint32_t key = peer_key(a);
	size_t before = count_key(RUDP__BY_PEER, key);
	ck_assert_uint_ge(before, 1);

	/* Few enough that the table does not grow and separate them. */
	for (int i = 0; i < DUP; i++) {
		dup[i].peer_cid = key;
		rudp__cidtab_add(&tab, &dup[i], RUDP__BY_PEER);
	}
	ck_assert_uint_eq(tab.nb, nb);
	ck_assert_uint_eq(count_key(RUDP__BY_PEER, key), before + DUP);
	for (int i = 0; i < DUP; i++)
		ck_assert(reaches(RUDP__BY_PEER, key, &dup[i]));
	for (size_t i = 0; i < NO; i++)
		ck_assert(reaches(RUDP__BY_PEER, other[i].peer_cid, &other[i]));
	free(dup);
	free(other);
}
END_TEST

START_TEST(test_cidtab_growth_keeps_all_findable)
{
	enum { N = 20000 };
	struct rudp__conn *c = conns(N);

	/* Distinct, non-zero random local ids, as the endpoint draws them. */
	prng_seed(0xc1d7ab);
	for (size_t i = 0; i < N; i++) {
		uint32_t id;
		do
			id = (uint32_t)prng_next();
		while (id == 0 || rudp__cidtab_find(&tab, RUDP__BY_LOCAL, id));
		c[i].local_cid = id;
		c[i].peer_cid = (uint32_t)(i + 1);
		rudp__cidtab_add(&tab, &c[i], RUDP__BY_LOCAL);
		rudp__cidtab_add(&tab, &c[i], RUDP__BY_PEER);
	}
	ck_assert_uint_eq(tab.n[RUDP__BY_LOCAL], N);
	ck_assert_uint_eq(tab.n[RUDP__BY_PEER], N);
	/* It grew (a power of two, as lookups mask with nb - 1). */
	ck_assert_uint_ge(tab.nb, N / 4);
	ck_assert_uint_eq(tab.nb & (tab.nb - 1), 0);

	for (size_t i = 0; i < N; i++) {
		if (rudp__cidtab_find(&tab, RUDP__BY_LOCAL, c[i].local_cid) !=
		    &c[i])
			ck_abort_msg("local id of conn %zu lost", i);
		if (rudp__cidtab_find(&tab, RUDP__BY_PEER, c[i].peer_cid) !=
		    &c[i])
			ck_abort_msg("peer id of conn %zu lost", i);
	}

	/* Delete every other one; the rest must survive it. */
	for (size_t i = 0; i < N; i += 2) {
		rudp__cidtab_del(&tab, &c[i], RUDP__BY_LOCAL);
		rudp__cidtab_del(&tab, &c[i], RUDP__BY_PEER);
	}
	ck_assert_uint_eq(tab.n[RUDP__BY_LOCAL], N / 2);
	ck_assert_uint_eq(tab.n[RUDP__BY_PEER], N / 2);
	for (size_t i = 0; i < N; i++) {
		struct rudp__conn *want = i % 2 ? &c[i] : NULL;
		if (rudp__cidtab_find(&tab, RUDP__BY_LOCAL, c[i].local_cid) !=
		    want)
			ck_abort_msg("local id of conn %zu wrong after del", i);
		if (rudp__cidtab_find(&tab, RUDP__BY_PEER, c[i].peer_cid) !=
		    want)
			ck_abort_msg("peer id of conn %zu wrong after del", i);
	}
	free(c);
}
END_TEST

START_TEST(test_cidtab_growth_keeps_duplicates)
{
	enum { KEYS = 40, PER = 150, N = KEYS * PER };
	struct rudp__conn *c = conns(N);

	/* Rehashing must move whole runs of equal keys, not just heads. */
	for (size_t i = 0; i < N; i++) {
		c[i].peer_cid = 0x10000 + (uint32_t)(i % KEYS);
		rudp__cidtab_add(&tab, &c[i], RUDP__BY_PEER);
	}
	ck_assert_uint_ge(tab.nb, N / 4);
	for (uint32_t k = 0; k < KEYS; k++)
		ck_assert_uint_eq(count_key(RUDP__BY_PEER, 0x10000 + k), PER);
	for (size_t i = 0; i < N; i += 97)
		ck_assert(reaches(RUDP__BY_PEER, c[i].peer_cid, &c[i]));
	free(c);
}
END_TEST

START_TEST(test_cidtab_del_absent_is_harmless)
{
	struct rudp__conn *c = conns(3);

	c[0].local_cid = 1;
	c[0].peer_cid = 2;
	c[1].local_cid = 3;
	c[1].peer_cid = 4;
	/* c[2] collides by key with c[0] but was never added. */
	c[2].local_cid = 1;
	c[2].peer_cid = 2;
	rudp__cidtab_add(&tab, &c[0], RUDP__BY_LOCAL);
	rudp__cidtab_add(&tab, &c[0], RUDP__BY_PEER);
	rudp__cidtab_add(&tab, &c[1], RUDP__BY_LOCAL);

	rudp__cidtab_del(&tab, &c[2], RUDP__BY_LOCAL);
	rudp__cidtab_del(&tab, &c[2], RUDP__BY_PEER);
	/* c[1] is on the local chain only. */
	rudp__cidtab_del(&tab, &c[1], RUDP__BY_PEER);
	ck_assert_uint_eq(tab.n[RUDP__BY_LOCAL], 2);
	ck_assert_uint_eq(tab.n[RUDP__BY_PEER], 1);
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, 1), &c[0]);
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_PEER, 2), &c[0]);
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, 3), &c[1]);

	/* Deleting twice is as harmless as deleting something absent. */
	rudp__cidtab_del(&tab, &c[0], RUDP__BY_LOCAL);
	rudp__cidtab_del(&tab, &c[0], RUDP__BY_LOCAL);
	ck_assert_uint_eq(tab.n[RUDP__BY_LOCAL], 1);
	ck_assert_ptr_null(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, 1));
	ck_assert_ptr_eq(rudp__cidtab_find(&tab, RUDP__BY_LOCAL, 3), &c[1]);
	free(c);
}
END_TEST

/*
 * A peer picks the ids we file its connections under, so ids that differ
 * only in their high bits must still spread over the buckets; otherwise a
 * peer could put all its connections on one chain and make every lookup a
 * linear walk.
 */
START_TEST(test_cidtab_adversarial_ids_spread)
{
	const size_t n = 4095;
	struct rudp__conn *c = conns(n);
	size_t longest = 0;

	for (size_t i = 0; i < n; i++) {
		c[i].peer_cid = (uint32_t)(i + 1) << 20;
		rudp__cidtab_add(&tab, &c[i], RUDP__BY_PEER);
	}
	for (size_t b = 0; b < tab.nb; b++) {
		size_t len = 0;
		for (struct rudp__conn *x = tab.b[RUDP__BY_PEER][b]; x;
		     x = x->link[RUDP__BY_PEER])
			len++;
		if (len > longest)
			longest = len;
	}
	/* Random placement gives chains of a handful; 32 is far beyond. */
	ck_assert_uint_lt(longest, 32);
	for (size_t i = 0; i < n; i++)
		rudp__cidtab_del(&tab, &c[i], RUDP__BY_PEER);
	free(c);
}
END_TEST

static Suite *cidtab_suite(void)
{
	Suite *s = suite_create("cidtab");
	TCase *tc;

	tc = tcase_create("add_find_del");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cidtab_empty_finds_nothing);
	tcase_add_test(tc, test_cidtab_add_find_local);
	tcase_add_test(tc, test_cidtab_add_find_peer);
	tcase_add_test(tc, test_cidtab_kinds_are_independent);
	tcase_add_test(tc, test_cidtab_del_removes);
	tcase_add_test(tc, test_cidtab_add_twice_is_noop);
	suite_add_tcase(s, tc);

	tc = tcase_create("duplicates");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cidtab_duplicate_peer_ids);
	tcase_add_test(tc, test_cidtab_next_skips_other_keys);
	suite_add_tcase(s, tc);

	tc = tcase_create("growth");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cidtab_growth_keeps_all_findable);
	tcase_add_test(tc, test_cidtab_growth_keeps_duplicates);
	tcase_add_test(tc, test_cidtab_adversarial_ids_spread);
	suite_add_tcase(s, tc);

	tc = tcase_create("del_absent");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cidtab_del_absent_is_harmless);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cidtab_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
