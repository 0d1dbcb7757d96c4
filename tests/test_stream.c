/*
 * The byte stream and teardown of a connection, end to end through the
 * simulated link: every byte arrives once and in order whatever the link
 * does, flow control bounds the buffers, and every way of ending a
 * connection goes through the states TCP would.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "simlink.h"

#define A 0
#define B 1
#define MS RUDP__MSEC
#define S RUDP__SEC

static struct sim sim;
static struct rudp__cfg cfg;
static struct rudp__conn *listener, *ca, *cb;
static struct sim_app app_a, app_b;

static void init_sim(uint64_t seed)
{
	sim_init(&sim, seed, &cfg);
	sim.delay = 5 * MS;
	memset(&app_a, 0, sizeof(app_a));
	memset(&app_b, 0, sizeof(app_b));
	app_a.tx_seed = app_b.rx_seed = (uint32_t)seed * 7 + 1;
	app_b.tx_seed = app_a.rx_seed = (uint32_t)seed * 13 + 2;
}

static void setup(void)
{
	rudp__cfg_default(&cfg);
	cfg.mss = 1000;
	cfg.rcv_wnd = 64 * 1024;
	cfg.snd_buf = 64 * 1024;
	cfg.time_wait = 500 * MS;
	init_sim(1);
}

static void teardown(void)
{
	sim_free(&sim);
}

static bool established(struct sim *s)
{
	(void)s;
	return ca->state == RUDP__ESTABLISHED && listener->aq_head;
}

/* Connects A to B and attaches the two programs. */
static void connect_apps(void)
{
	listener = sim_listen(&sim, B, 8);
	ca = sim_connect(&sim, A, B);
	ck_assert(sim_run(&sim, sim.now + 60 * S, established));
	cb = rudp__conn_accept(listener);
	cb->user_owned = true;
	app_a.c = ca;
	app_b.c = cb;
	sim_app_add(&sim, &app_a);
	sim_app_add(&sim, &app_b);
}

static bool both_closed(struct sim *s)
{
	(void)s;
	return ca->state == RUDP__CLOSED && cb->state == RUDP__CLOSED;
}

static bool transfer_done(struct sim *s)
{
	(void)s;
	return app_b.received == app_a.to_send &&
	       app_a.received == app_b.to_send;
}

START_TEST(test_stream_clean_transfer_and_close)
{
	connect_apps();
	app_a.to_send = 1000 * 1000;
	app_a.shut_when_done = true;
	app_b.shut_when_done = true;
	ck_assert(sim_run(&sim, sim.now + 60 * S, transfer_done));
	ck_assert(!app_b.corrupt);
	/* Both FINs: A closes first (TIME_WAIT), B last (LAST_ACK). */
	ck_assert(sim_run(&sim, sim.now + 60 * S, both_closed));
	ck_assert(app_a.eof && app_b.eof);
	ck_assert_int_eq(ca->err, 0);
	ck_assert_int_eq(cb->err, 0);
	ck_assert_uint_eq(sim.node[A].ep.stats.retransmits, 0);
	ck_assert_uint_eq(sim.node[A].ep.stats.data_out, 1000 * 1000);
	ck_assert_uint_eq(sim.node[B].ep.stats.data_in, 1000 * 1000);
}
END_TEST

START_TEST(test_stream_both_directions_at_once)
{
	connect_apps();
	app_a.to_send = 300 * 1000;
	app_b.to_send = 500 * 1000;
	ck_assert(sim_run(&sim, sim.now + 60 * S, transfer_done));
	ck_assert(!app_a.corrupt && !app_b.corrupt);
}
END_TEST

/*
 * The property the whole protocol exists for: under seeded loss,
 * duplication and reordering, thousands of transfers each deliver exactly
 * the bytes sent, in order, and end cleanly.
 */
START_TEST(test_stream_seeded_impairments_deliver_exactly)
{
	unsigned runs = 0, resets = 0;

	/* TIME_WAIT long enough to outlast the peer's FIN retransmissions. */
	cfg.time_wait = 2 * S;
	for (uint64_t seed = 1; seed <= 1000; seed++) {
		sim_free(&sim);
		init_sim(seed);
		sim.loss_pct = (unsigned)(seed % 3) * 5 + 2; /* 2, 7, 12 % */
		sim.dup_pct = 5;
		sim.reorder_pct = 10;
		sim.jitter = 20 * MS;
		connect_apps();
		app_a.to_send = 20 * 1000 + seed * 97;
		app_b.to_send = seed % 2 ? 5000 : 0;
		app_a.shut_when_done = app_b.shut_when_done = true;
		ck_assert_msg(sim_run(&sim, sim.now + 600 * S, both_closed),
			      "seed %llu: states %s/%s", (unsigned long long)seed,
			      rudp__state_name(ca->state),
			      rudp__state_name(cb->state));
		ck_assert_msg(!app_a.corrupt && !app_b.corrupt, "seed %llu",
			      (unsigned long long)seed);
		ck_assert_uint_eq(app_b.received, app_a.to_send);
		ck_assert_uint_eq(app_a.received, app_b.to_send);
		ck_assert(app_a.eof && app_b.eof);
		/*
		 * Every byte is in and both ends saw the other's FIN.  The
		 * one error allowed is the last ack of a FIN lost until the
		 * peer's TIME_WAIT was over: its next FIN then draws a reset
		 * (the price of a TIME_WAIT of seconds rather than minutes),
		 * so it must be rare.
		 */
		if (ca->err || cb->err) {
			ck_assert_msg((ca->err == ECONNRESET && !cb->err) ||
				      (cb->err == ECONNRESET && !ca->err),
				      "seed %llu: errors %d/%d",
				      (unsigned long long)seed, ca->err,
				      cb->err);
			resets++;
		}
		runs++;
	}
	ck_assert_uint_eq(runs, 1000);
	ck_assert_uint_le(resets, 10);
}
END_TEST

START_TEST(test_stream_sequence_wraps)
{
	/* Both initial sequence numbers a few KB below 2^32. */
	listener = sim_listen(&sim, B, 8);
	sim.force_rand = UINT32_MAX - 5000;
	ca = sim_connect(&sim, A, B);
	ck_assert(sim_run(&sim, sim.now + 5 * S, established));
	sim.force_rand = 0;
	cb = rudp__conn_accept(listener);
	cb->user_owned = true;
	app_a.c = ca;
	app_b.c = cb;
	sim_app_add(&sim, &app_a);
	sim_app_add(&sim, &app_b);
	sim.loss_pct = 5;
	app_a.to_send = 200 * 1000;
	app_b.to_send = 100 * 1000;
	ck_assert(sim_run(&sim, sim.now + 120 * S, transfer_done));
	ck_assert(!app_a.corrupt && !app_b.corrupt);
	/* The stream crossed zero: numerically, we are below where we began. */
	ck_assert_uint_lt(ca->snd_nxt, ca->iss);
}
END_TEST

START_TEST(test_stream_loss_recovered_by_sack_not_timeout)
{
	connect_apps();
	sim.loss_pct = 2;
	app_a.to_send = 2000 * 1000;
	ck_assert(sim_run(&sim, sim.now + 120 * S, transfer_done));
	ck_assert(!app_b.corrupt);
	struct rudp__ep_stats *st = &sim.node[A].ep.stats;
	/* Isolated losses are repaired by fast retransmit, not the timer. */
	ck_assert_uint_gt(st->fast_retransmits, 10);
	ck_assert_uint_lt(st->timeouts, st->fast_retransmits / 4 + 1);
}
END_TEST

/*
 * A reader that stops: the sender fills the receive window, then probes
 * the zero window without ever giving up, and nothing grows beyond the
 * configured buffers; once the reader resumes, every byte arrives.
 */
START_TEST(test_stream_zero_window_then_resume)
{
	connect_apps();
	app_b.stop_reading = true;
	app_a.to_send = 1000 * 1000;
	ck_assert(!sim_run(&sim, sim.now + 30 * S, transfer_done));
	ck_assert_uint_eq(rudp__rcvbuf_window(&cb->rb), 0);
	ck_assert_uint_le(rudp__rcvbuf_ready(&cb->rb), cfg.rcv_wnd);
	ck_assert_uint_le(ca->sb.len, cfg.snd_buf);
	/* The sender is blocked, not dead: probes keep getting answers. */
	ck_assert_int_eq(ca->state, RUDP__ESTABLISHED);
	ck_assert_uint_lt(app_a.sent, app_a.to_send);
	app_b.stop_reading = false;
	ck_assert(sim_run(&sim, sim.now + 300 * S, transfer_done));
	ck_assert(!app_b.corrupt);
}
END_TEST

START_TEST(test_stream_slow_reader_paces_sender)
{
	connect_apps();
	/* 2000 bytes every 10 ms: 200 kB/s, far below what the link carries. */
	app_b.read_limit = 2000;
	app_b.read_every = 10 * MS;
	app_a.to_send = 500 * 1000;
	rudp__usec t0 = sim.now;
	ck_assert(sim_run(&sim, sim.now + 600 * S, transfer_done));
	ck_assert(!app_b.corrupt);
	ck_assert_int_eq(ca->state, RUDP__ESTABLISHED);
	/* The reader set the pace (2.5 s at its rate), and the sender never
	 * held more than its buffer nor the receiver more than its window. */
	ck_assert_uint_ge(sim.now - t0, 2 * S);
	ck_assert_uint_lt(sim.now - t0, 10 * S);
}
END_TEST

START_TEST(test_stream_peer_vanishes_times_out)
{
	connect_apps();
	app_a.to_send = 100 * 1000;
	/* B disappears: everything to it is lost from now on. */
	sim.loss_pct = 100;
	ck_assert(sim_run(&sim, sim.now + 3600 * S, NULL));
	ck_assert_int_eq(ca->state, RUDP__CLOSED);
	ck_assert_int_eq(ca->err, ETIMEDOUT);
	ck_assert_uint_ge(sim.node[A].ep.stats.timeouts, cfg.data_retries);
}
END_TEST

/*
 * The first segments of a connection are acked at once (quickack, for
 * slow start); these tests look at the steady state after them.
 */
static void warm_up(void)
{
	app_a.to_send = 40 * cfg.mss;
	ck_assert(sim_run(&sim, sim.now + 5 * S, transfer_done));
	ck_assert(sim_run(&sim, sim.now + 1 * S, NULL));
}

START_TEST(test_stream_delayed_ack_every_second_segment)
{
	rudp__usec at[64];

	connect_apps();
	/* 100 Mbit/s spaces the segments out, so each is handled alone. */
	sim.rate_bps = 100 * 1000 * 1000;
	warm_up();
	size_t before = sim.ntrace;
	app_a.to_send += 10 * cfg.mss;
	ck_assert(sim_run(&sim, sim.now + 5 * S, transfer_done));
	/* Ten full segments from A draw five acks from B, not ten. */
	size_t acks = 0;
	for (size_t i = before; i < sim.ntrace; i++)
		if (sim.trace[i].from == B && sim.trace[i].h.len == 0)
			acks++;
	ck_assert_uint_eq(acks, 5);
	(void)at;
}
END_TEST

START_TEST(test_stream_lone_full_segment_acked_after_delay)
{
	connect_apps();
	warm_up();
	size_t before = sim.ntrace;
	/* One segment of exactly mss bytes: the ack waits out the timer. */
	app_a.to_send += cfg.mss;
	rudp__usec t0 = sim.now;
	ck_assert(sim_run(&sim, sim.now + 5 * S, transfer_done));
	ck_assert(sim_run(&sim, sim.now + 1 * S, NULL));
	for (size_t i = before; i < sim.ntrace; i++) {
		if (sim.trace[i].from != B)
			continue;
		ck_assert_uint_eq(sim.trace[i].at - t0,
				  sim.delay + cfg.delack);
		return;
	}
	ck_abort_msg("B never acked");
}
END_TEST

static Suite *stream_suite(void)
{
	Suite *s = suite_create("stream");
	TCase *tc;

	tc = tcase_create("transfer");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_stream_clean_transfer_and_close);
	tcase_add_test(tc, test_stream_both_directions_at_once);
	tcase_add_test(tc, test_stream_sequence_wraps);
	tcase_add_test(tc, test_stream_seeded_impairments_deliver_exactly);
	suite_add_tcase(s, tc);

	tc = tcase_create("loss_and_flow_control");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_stream_loss_recovered_by_sack_not_timeout);
	tcase_add_test(tc, test_stream_zero_window_then_resume);
	tcase_add_test(tc, test_stream_slow_reader_paces_sender);
	tcase_add_test(tc, test_stream_peer_vanishes_times_out);
	suite_add_tcase(s, tc);

	tc = tcase_create("acks");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_stream_delayed_ack_every_second_segment);
	tcase_add_test(tc, test_stream_lone_full_segment_acked_after_delay);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(stream_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
