/*
 * The endpoint: demultiplexing by connection id, malformed datagrams
 * dropped and counted, stateless resets, and reaping of finished
 * connections.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "simlink.h"

#define A 0
#define B 1
#define C 2
#define MS RUDP__MSEC
#define S RUDP__SEC

static struct sim sim;
static struct rudp__cfg cfg;

static void setup(void)
{
	rudp__cfg_default(&cfg);
	sim_init(&sim, 7, &cfg);
	sim.delay = 5 * MS;
}

static void teardown(void)
{
	sim_free(&sim);
}

static size_t encode(const struct rudp__hdr *h, uint8_t *buf)
{
	ssize_t n = rudp__wire_encode(h, NULL, buf, RUDP__MAX_DGRAM);

	ck_assert_int_gt(n, 0);
	return (size_t)n;
}

START_TEST(test_endpoint_malformed_dropped_and_counted)
{
	uint8_t buf[64] = { 0 };
	struct rudp__ep_stats *st = &sim.node[B].ep.stats;
	struct rudp__hdr h = { .flags = RUDP__F_SYN, .src_cid = 1 };
	size_t n;

	sim_listen(&sim, B, 4);
	sim_inject(&sim, A, B, buf, 10);                  /* short */
	sim_inject(&sim, A, B, buf, RUDP__HDR_LEN);       /* magic */
	n = encode(&h, buf);
	buf[2] = 9;                                       /* version */
	sim_inject(&sim, A, B, buf, n);
	n = encode(&h, buf);
	sim_inject(&sim, A, B, buf, n + 1);               /* length */
	buf[3] = RUDP__F_SYN | RUDP__F_FIN;               /* flags */
	sim_inject(&sim, A, B, buf, n);
	ck_assert_uint_eq(st->malformed[RUDP__WIRE_SHORT], 1);
	ck_assert_uint_eq(st->malformed[RUDP__WIRE_MAGIC], 1);
	ck_assert_uint_eq(st->malformed[RUDP__WIRE_VERSION], 1);
	ck_assert_uint_eq(st->malformed[RUDP__WIRE_LENGTH], 1);
	ck_assert_uint_eq(st->malformed[RUDP__WIRE_FLAGS], 1);
	ck_assert_uint_eq(st->dgrams_in, 5);
	/* Nothing was trusted: no child, no reply of any kind. */
	ck_assert_uint_eq(sim.node[B].ep.nconns, 1);
	sim_flush(&sim);
	ck_assert_uint_eq(sim.ntrace, 0);
}
END_TEST

START_TEST(test_endpoint_unknown_cid_gets_stateless_reset)
{
	uint8_t buf[RUDP__MAX_DGRAM];
	struct rudp__hdr h = {
		.flags = RUDP__F_ACK, .src_cid = 11, .dst_cid = 22,
		.seq = 100, .ack = 5000,
	};

	sim_inject(&sim, A, B, buf, encode(&h, buf));
	ck_assert_uint_eq(sim.node[B].ep.stats.no_conn, 1);
	sim_flush(&sim);
	ck_assert_uint_eq(sim.ntrace, 1);
	/* RFC 793: the reset takes its sequence number from the ack. */
	ck_assert_uint_eq(sim.trace[0].h.flags, RUDP__F_RST);
	ck_assert_uint_eq(sim.trace[0].h.seq, 5000);
	ck_assert_uint_eq(sim.trace[0].h.dst_cid, 11);
	ck_assert_uint_eq(sim.trace[0].h.src_cid, 22);
	ck_assert_int_eq(sim.trace[0].to, A);
}
END_TEST

START_TEST(test_endpoint_reset_never_answers_reset)
{
	uint8_t buf[RUDP__MAX_DGRAM];
	struct rudp__hdr h = { .flags = RUDP__F_RST, .src_cid = 3,
			       .dst_cid = 4 };

	sim_inject(&sim, A, B, buf, encode(&h, buf));
	sim_flush(&sim);
	ck_assert_uint_eq(sim.ntrace, 0);
	ck_assert_uint_eq(sim.node[B].ep.stats.no_conn, 1);
}
END_TEST

START_TEST(test_endpoint_reset_queue_is_bounded)
{
	uint8_t buf[RUDP__MAX_DGRAM];
	struct rudp__hdr h = { .flags = RUDP__F_ACK, .src_cid = 1,
			       .dst_cid = 2 };
	size_t n = encode(&h, buf);

	for (int i = 0; i < 100; i++)
		sim_inject(&sim, A, B, buf, n);
	ck_assert_uint_eq(sim.node[B].ep.nresets, RUDP__RESETQ_LEN);
	ck_assert_uint_eq(sim.node[B].ep.stats.reset_drops,
			  100 - RUDP__RESETQ_LEN);
	sim_flush(&sim);
	ck_assert_uint_eq(sim.ntrace, RUDP__RESETQ_LEN);
	ck_assert(rudp__ep_idle(&sim.node[B].ep));
}
END_TEST

START_TEST(test_endpoint_right_cid_wrong_address_is_dropped)
{
	uint8_t buf[RUDP__MAX_DGRAM];
	struct rudp__conn *l = sim_listen(&sim, B, 4);
	struct rudp__conn *a = sim_connect(&sim, A, B);

	ck_assert(sim_run(&sim, sim.now + 1 * S, NULL));
	struct rudp__conn *b = rudp__conn_accept(l);
	ck_assert_ptr_nonnull(b);
	b->user_owned = true;
	/* C knows A's connection id but is not A: its reset must not work. */
	struct rudp__hdr h = { .flags = RUDP__F_RST, .src_cid = b->local_cid,
			       .dst_cid = a->local_cid, .seq = a->rcv_nxt };
	sim_inject(&sim, C, A, buf, encode(&h, buf));
	ck_assert_int_eq(a->state, RUDP__ESTABLISHED);
	ck_assert_uint_eq(sim.node[A].ep.stats.no_conn, 1);
	/* The same datagram from B's address is believed. */
	sim_inject(&sim, B, A, buf, encode(&h, buf));
	ck_assert_int_eq(a->state, RUDP__CLOSED);
}
END_TEST

START_TEST(test_endpoint_demuxes_many_connections)
{
	struct rudp__conn *l = sim_listen(&sim, B, 64);
	struct rudp__conn *a[40];

	for (int i = 0; i < 40; i++)
		a[i] = sim_connect(&sim, i % 2 ? A : C, B);
	ck_assert(sim_run(&sim, sim.now + 2 * S, NULL));
	ck_assert_uint_eq(l->nqueued, 40);
	for (int i = 0; i < 40; i++) {
		ck_assert_int_eq(a[i]->state, RUDP__ESTABLISHED);
		/* Each connector is paired with a distinct child of B. */
		struct rudp__conn *b = rudp__cidtab_find(
			&sim.node[B].ep.tab, RUDP__BY_LOCAL, a[i]->peer_cid);
		ck_assert_ptr_nonnull(b);
		ck_assert_uint_eq(b->peer_cid, a[i]->local_cid);
	}
}
END_TEST

START_TEST(test_endpoint_reaps_closed_unowned_connections)
{
	struct rudp__conn *l = sim_listen(&sim, B, 4);
	struct rudp__conn *a = sim_connect(&sim, A, B);

	ck_assert(sim_run(&sim, sim.now + 1 * S, NULL));
	ck_assert_uint_eq(sim.node[B].ep.nconns, 2);
	/* The API lets go of the listener and the connector. */
	rudp__ep_release(&sim.node[B].ep, l);
	rudp__ep_release(&sim.node[A].ep, a);
	ck_assert(sim_run(&sim, sim.now + 1 * S, NULL));
	ck_assert_uint_eq(sim.node[A].ep.nconns, 0);
	ck_assert_uint_eq(sim.node[B].ep.nconns, 0);
	ck_assert(rudp__ep_idle(&sim.node[A].ep));
	ck_assert(rudp__ep_idle(&sim.node[B].ep));
	ck_assert_uint_eq(rudp__ep_deadline(&sim.node[B].ep), RUDP__NEVER);
}
END_TEST

START_TEST(test_endpoint_second_listener_refused)
{
	struct rudp__conn *c;

	sim_listen(&sim, B, 4);
	c = rudp__ep_conn_new(&sim.node[B].ep);
	ck_assert_int_eq(rudp__conn_listen(c, 4), -EADDRINUSE);
	ck_assert_int_eq(c->state, RUDP__CLOSED);
}
END_TEST

static Suite *endpoint_suite(void)
{
	Suite *s = suite_create("endpoint");
	TCase *tc;

	tc = tcase_create("rejects_bad_input");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_endpoint_malformed_dropped_and_counted);
	tcase_add_test(tc, test_endpoint_right_cid_wrong_address_is_dropped);
	suite_add_tcase(s, tc);

	tc = tcase_create("stateless_reset");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_endpoint_unknown_cid_gets_stateless_reset);
	tcase_add_test(tc, test_endpoint_reset_never_answers_reset);
	tcase_add_test(tc, test_endpoint_reset_queue_is_bounded);
	suite_add_tcase(s, tc);

	tc = tcase_create("demux_and_lifetime");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_endpoint_demuxes_many_connections);
	tcase_add_test(tc, test_endpoint_reaps_closed_unowned_connections);
	tcase_add_test(tc, test_endpoint_second_listener_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(endpoint_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
