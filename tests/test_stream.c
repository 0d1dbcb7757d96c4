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

/* B has read A's end of stream. */
static bool b_eof(struct sim *s)
{
	(void)s;
	return app_b.eof;
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

/*
 * Payloads go out in place from the send ring, so a segment whose bytes
 * wrap around the ring's end is two slices: with a ring that is no
 * multiple of the segment size many do, and every byte still arrives.
 */
START_TEST(test_stream_payload_sent_in_place_across_ring_wrap)
{
	cfg.snd_buf = 10007;
	sim_free(&sim);
	init_sim(3);
	connect_apps();
	app_a.to_send = 500 * 1000;
	ck_assert(sim_run(&sim, sim.now + 60 * S, transfer_done));
	ck_assert(!app_b.corrupt);
	ck_assert_uint_gt(sim.wrapped, 10);
	ck_assert_uint_eq(sim.node[B].ep.stats.data_in, 500 * 1000);
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

/*
 * B's program takes bytes as they arrive through the deliver hook, up to
 * max of each offer, while A sends `bytes` and its FIN.
 */
static void direct_transfer(size_t max, uint64_t bytes)
{
	sim.node[B].ep.ops.deliver = sim_deliver;
	connect_apps();
	app_b.direct_max = max;
	app_a.to_send = bytes;
	app_a.shut_when_done = true;
	ck_assert(sim_run(&sim, sim.now + 120 * S, transfer_done));
	ck_assert(!app_b.corrupt);
	ck_assert(sim_run(&sim, sim.now + 60 * S, b_eof));
	ck_assert_uint_eq(app_b.received, bytes);
	ck_assert_uint_eq(sim.node[B].ep.stats.data_in, bytes);
}

START_TEST(test_stream_direct_delivery_takes_all)
{
	direct_transfer(SIZE_MAX, 1000 * 1000);
	/* Every byte went straight to the program: no ring was needed. */
	ck_assert_uint_eq(app_b.direct, 1000 * 1000);
	ck_assert_ptr_null(cb->rb.buf);
	ck_assert_uint_eq(rudp__rcvbuf_window(&cb->rb), cfg.rcv_wnd);
}
END_TEST

START_TEST(test_stream_direct_delivery_takes_part)
{
	/*
	 * The rest of each offer is stored, and while it waits later
	 * segments are stored behind it rather than overtaking it.
	 */
	direct_transfer(300, 1000 * 1000);
	ck_assert_uint_gt(app_b.direct, 0);
	ck_assert_uint_lt(app_b.direct, 1000 * 1000);
	ck_assert_ptr_nonnull(cb->rb.buf);
}
END_TEST

START_TEST(test_stream_direct_delivery_takes_nothing_changes_nothing)
{
	rudp__usec took;
	size_t ntrace;

	/* A hook that takes nothing: exactly the run without one. */
	sim.loss_pct = 3;
	direct_transfer(0, 300 * 1000);
	ck_assert_uint_eq(app_b.direct, 0);
	took = sim.now;
	ntrace = sim.ntrace;
	sim_free(&sim);
	init_sim(1);
	sim.loss_pct = 3;
	connect_apps();
	app_a.to_send = 300 * 1000;
	app_a.shut_when_done = true;
	ck_assert(sim_run(&sim, sim.now + 120 * S, transfer_done));
	ck_assert(sim_run(&sim, sim.now + 60 * S, b_eof));
	ck_assert_uint_eq(sim.now, took);
	ck_assert_uint_eq(sim.ntrace, ntrace);
}
END_TEST

/*
 * Under loss, duplication and reordering the hook sees only segments that
 * arrive exactly in order with nothing waiting: holes are filled through
 * the reorder buffer, and the stream is still exact.
 */
START_TEST(test_stream_direct_delivery_under_impairments)
{
	sim.loss_pct = 5;
	sim.dup_pct = 5;
	sim.reorder_pct = 10;
	sim.jitter = 20 * MS;
	direct_transfer(SIZE_MAX, 500 * 1000);
	ck_assert_uint_gt(app_b.direct, 0);
	ck_assert_uint_lt(app_b.direct, 500 * 1000);
	ck_assert_uint_gt(sim.node[B].ep.stats.dup_data, 0);
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
	/* The connection counts its own resends, as TCP_INFO reports them. */
	ck_assert_uint_eq(ca->total_retrans, st->retransmits);
}
END_TEST

/*
 * A path that reorders and loses nothing: late segments are taken for
 * lost, but they arrive before or despite their resends (the echoed
 * timestamps show every resend unneeded), so each recovery is undone and
 * the window is not cut for congestion that was never there.
 */
START_TEST(test_stream_reordering_recoveries_are_undone)
{
	/* CUBIC cuts its window for every loss it is told of. */
	sim.node[A].ep.cfg.cc = &rudp__cc_cubic;
	connect_apps();
	sim.reorder_pct = 3;
	sim.jitter = 2 * MS;
	app_a.to_send = 4000 * 1000;
	rudp__usec t0 = sim.now;
	ck_assert(sim_run(&sim, sim.now + 120 * S, transfer_done));
	ck_assert(!app_b.corrupt);
	struct rudp__ep_stats *a = &sim.node[A].ep.stats;
	ck_assert_uint_gt(a->undos, 0);
	ck_assert_uint_eq(a->timeouts, 0);
	/*
	 * Seed 1: 0.78 s; without undo every late segment cut CUBIC's window
	 * and the same 4 MB took 2.87 s.
	 */
	ck_assert_uint_lt(sim.now - t0, 1500 * MS);
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

/*
 * Nagle's rule.  A writes 300 bytes, and 300 more before any ack could be
 * back: the first goes at once, and the second waits for the first's ack
 * unless TCP_NODELAY is set or a FIN follows it.
 */

/* A's data segments sent since trace entry `from`: when, and how long. */
static size_t a_data(size_t from, rudp__usec *at, uint32_t *len, size_t max)
{
	size_t n = 0;

	for (size_t i = from; i < sim.ntrace && n < max; i++) {
		if (sim.trace[i].from != A || !sim.trace[i].h.len)
			continue;
		at[n] = sim.trace[i].at;
		len[n++] = sim.trace[i].h.len;
	}
	return n;
}

/*
 * Two short writes in a row, the second half a one-way delay after the
 * first (before any ack can be back), with TCP_NODELAY or a FIN after the
 * second as asked.  Returns how far apart the two segments were sent.
 */
static rudp__usec two_short_writes(bool nodelay, bool fin)
{
	rudp__usec at[4];
	uint32_t len[4];

	connect_apps();
	warm_up();
	ca->nodelay = nodelay;
	size_t before = sim.ntrace;
	app_a.to_send += 300;
	(void)sim_run(&sim, sim.now + sim.delay / 2, NULL);
	app_a.to_send += 300;
	app_a.shut_when_done = fin;
	ck_assert(sim_run(&sim, sim.now + 5 * S, transfer_done));
	ck_assert(!app_b.corrupt);
	ck_assert_uint_eq(a_data(before, at, len, 4), 2);
	ck_assert_uint_eq(len[0], 300);
	ck_assert_uint_eq(len[1], 300);
	return at[1] - at[0];
}

START_TEST(test_stream_nagle_holds_short_write_until_ack)
{
	ck_assert_uint_ge(two_short_writes(false, false), 2 * sim.delay);
}
END_TEST

START_TEST(test_stream_nagle_off_with_nodelay)
{
	ck_assert_uint_lt(two_short_writes(true, false), sim.delay);
}
END_TEST

START_TEST(test_stream_nagle_fin_sends_the_tail)
{
	ck_assert_uint_lt(two_short_writes(false, true), sim.delay);
}
END_TEST

/*
 * A bulk sender whose writes are not multiples of the segment size sends
 * whole segments: 25 writes of 2.5 segments each, one every millisecond
 * for about two round trips, make at least 61 full segments and a short
 * one per round trip, where sending each write at once makes 25 short.
 */
START_TEST(test_stream_nagle_fills_segments_of_bulk_writes)
{
	rudp__usec at[128];
	uint32_t len[128];
	size_t n, full = 0;

	connect_apps();
	warm_up();
	size_t before = sim.ntrace;
	for (int i = 0; i < 25; i++) {
		app_a.to_send += 5 * cfg.mss / 2;
		(void)sim_run(&sim, sim.now + 1 * MS, NULL);
	}
	ck_assert(sim_run(&sim, sim.now + 5 * S, transfer_done));
	ck_assert(!app_b.corrupt);
	n = a_data(before, at, len, 128);
	for (size_t i = 0; i < n; i++)
		full += len[i] == cfg.mss;
	ck_assert_uint_ge(full, 61);
	ck_assert_uint_le(n - full, 3);
}
END_TEST

/*
 * Teardown.  Every state change a node reports is recorded by the
 * simulated link, so each path through the state table is checked as the
 * exact sequence of states each end went through.
 */

/* Asserts connection c of node n went through exactly `want`, in order. */
static void states_are(int n, const struct rudp__conn *c,
		       const enum rudp__state *want, size_t nwant)
{
	enum rudp__state got[SIM_STATES];
	size_t k = sim_states(&sim, n, c, got, NULL, SIM_STATES);
	char msg[512] = "";
	bool same = k == nwant;

	for (size_t i = 0; i < k; i++) {
		if (same && got[i] != want[i])
			same = false;
		strncat(msg, rudp__state_name(got[i]),
			sizeof(msg) - strlen(msg) - 1);
		strncat(msg, " ", sizeof(msg) - strlen(msg) - 1);
	}
	ck_assert_msg(same, "node %d went through: %s", n, msg);
}

/* When connection c of node n last entered state st (it must have). */
static rudp__usec entered(int n, const struct rudp__conn *c,
			  enum rudp__state st)
{
	enum rudp__state got[SIM_STATES];
	rudp__usec at[SIM_STATES];
	size_t k = sim_states(&sim, n, c, got, at, SIM_STATES);

	while (k--)
		if (got[k] == st)
			return at[k];
	ck_abort_msg("node %d never entered %s", n, rudp__state_name(st));
	return 0;
}

static bool a_fin_wait_2_b_close_wait(struct sim *s)
{
	(void)s;
	return ca->state == RUDP__FIN_WAIT_2 && cb->state == RUDP__CLOSE_WAIT;
}

/* A closes, until B has acked (A in FIN_WAIT_2, B in CLOSE_WAIT). */
static void close_a(void)
{
	app_a.shut_when_done = true;
	ck_assert(sim_run(&sim, sim.now + 10 * S, a_fin_wait_2_b_close_wait));
	ck_assert(app_b.eof);
	ck_assert(!app_a.eof);
}

#define NSTATES(a) (sizeof(a) / sizeof((a)[0]))

static const enum rudp__state active_closer[] = {
	RUDP__SYN_SENT, RUDP__ESTABLISHED, RUDP__FIN_WAIT_1,
	RUDP__FIN_WAIT_2, RUDP__TIME_WAIT, RUDP__CLOSED,
};
static const enum rudp__state passive_closer[] = {
	RUDP__SYN_RCVD, RUDP__ESTABLISHED, RUDP__CLOSE_WAIT,
	RUDP__LAST_ACK, RUDP__CLOSED,
};

START_TEST(test_stream_active_close_then_passive_close)
{
	connect_apps();
	close_a();
	app_b.shut_when_done = true;
	ck_assert(sim_run(&sim, sim.now + 10 * S, both_closed));
	states_are(A, ca, active_closer, NSTATES(active_closer));
	states_are(B, cb, passive_closer, NSTATES(passive_closer));
	ck_assert_int_eq(ca->err, 0);
	ck_assert_int_eq(cb->err, 0);
	ck_assert(app_a.eof && app_b.eof);
	/* B's FIN put A in TIME_WAIT; A's ack of it ended B one way later. */
	rudp__usec tw = entered(A, ca, RUDP__TIME_WAIT);
	ck_assert_uint_eq(entered(B, cb, RUDP__CLOSED) - tw, sim.delay);
	/* TIME_WAIT lasts exactly its configured time. */
	ck_assert_uint_eq(entered(A, ca, RUDP__CLOSED) - tw, cfg.time_wait);
}
END_TEST

START_TEST(test_stream_simultaneous_close_through_closing)
{
	static const enum rudp__state a_want[] = {
		RUDP__SYN_SENT, RUDP__ESTABLISHED, RUDP__FIN_WAIT_1,
		RUDP__CLOSING, RUDP__TIME_WAIT, RUDP__CLOSED,
	};
	static const enum rudp__state b_want[] = {
		RUDP__SYN_RCVD, RUDP__ESTABLISHED, RUDP__FIN_WAIT_1,
		RUDP__CLOSING, RUDP__TIME_WAIT, RUDP__CLOSED,
	};
	rudp__usec at[4];

	connect_apps();
	/* Both programs close at the same instant: the FINs cross. */
	app_a.shut_when_done = app_b.shut_when_done = true;
	ck_assert(sim_run(&sim, sim.now + 10 * S, both_closed));
	states_are(A, ca, a_want, NSTATES(a_want));
	states_are(B, cb, b_want, NSTATES(b_want));
	ck_assert_uint_eq(sim_times(&sim, A, RUDP__F_ACK | RUDP__F_FIN, at, 4),
			  1);
	ck_assert_uint_eq(sim_times(&sim, B, RUDP__F_ACK | RUDP__F_FIN, at + 1,
				    3), 1);
	ck_assert_uint_eq(at[0], at[1]);
	ck_assert_int_eq(ca->err, 0);
	ck_assert_int_eq(cb->err, 0);
	ck_assert(app_a.eof && app_b.eof);
	/* Each FIN was acked once: no retransmission, no timeout. */
	ck_assert_uint_eq(sim.node[A].ep.stats.retransmits, 0);
	ck_assert_uint_eq(sim.node[B].ep.stats.retransmits, 0);
}
END_TEST

/*
 * A shuts its sending side and waits in FIN_WAIT_2 while B goes on
 * sending 200 kB, which all arrive, before B closes in turn.
 */
START_TEST(test_stream_half_close_keeps_other_direction)
{
	uint8_t *p;

	connect_apps();
	close_a();
	/* The half-closed side can no longer send. */
	ck_assert(!rudp__conn_can_send(ca));
	ck_assert_uint_eq(rudp__conn_send_reserve(ca, &p), 0);
	ck_assert(rudp__conn_can_send(cb));
	app_b.to_send = 200 * 1000;
	app_b.shut_when_done = true;
	ck_assert(sim_run(&sim, sim.now + 60 * S, both_closed));
	ck_assert_uint_eq(app_a.received, 200 * 1000);
	ck_assert(!app_a.corrupt);
	ck_assert(app_a.eof);
	ck_assert_uint_eq(sim.node[A].ep.stats.data_in, 200 * 1000);
	ck_assert_uint_eq(sim.node[B].ep.stats.data_out, 200 * 1000);
	/* A received it all in FIN_WAIT_2, and only then B's FIN. */
	states_are(A, ca, active_closer, NSTATES(active_closer));
	states_are(B, cb, passive_closer, NSTATES(passive_closer));
	ck_assert_int_eq(ca->err, 0);
	ck_assert_int_eq(cb->err, 0);
}
END_TEST

/* Drops the first `tw_drops` pure ACKs A sends from TIME_WAIT. */
static int tw_drops;

static bool drop_time_wait_ack(struct sim *s, int from,
			       const struct rudp__hdr *h)
{
	(void)s;
	if (from != A || h->flags != RUDP__F_ACK ||
	    ca->state != RUDP__TIME_WAIT || tw_drops == 0)
		return false;
	tw_drops--;
	return true;
}

/* Index in the trace of the n-th datagram from `from` with `flags`. */
static size_t nth_sent(int from, uint8_t flags, unsigned n)
{
	unsigned seen = 0;

	for (size_t i = 0; i < sim.ntrace; i++)
		if (sim.trace[i].from == from && sim.trace[i].h.flags == flags &&
		    seen++ == n)
			return i;
	ck_abort_msg("node %d sent no datagram #%u with flags %#x", from, n,
		     flags);
	return 0;
}

/*
 * The last ACK is lost: B, in LAST_ACK, retransmits its FIN, and A, in
 * TIME_WAIT, acks it again and starts TIME_WAIT over (RFC 793: "restart
 * the 2 MSL timeout").
 */
START_TEST(test_stream_time_wait_reacks_fin_and_restarts)
{
	connect_apps();
	close_a();
	app_b.shut_when_done = true;
	tw_drops = 1;
	sim.filter = drop_time_wait_ack;
	ck_assert(sim_run(&sim, sim.now + 10 * S, both_closed));
	ck_assert_int_eq(tw_drops, 0);
	states_are(A, ca, active_closer, NSTATES(active_closer));
	states_are(B, cb, passive_closer, NSTATES(passive_closer));
	ck_assert_int_eq(cb->err, 0);
	/* B sent its FIN twice; A acked each copy. */
	const struct sim_trace *fin1 =
		&sim.trace[nth_sent(B, RUDP__F_ACK | RUDP__F_FIN, 0)];
	const struct sim_trace *fin2 =
		&sim.trace[nth_sent(B, RUDP__F_ACK | RUDP__F_FIN, 1)];
	ck_assert_uint_eq(fin2->h.seq, fin1->h.seq);
	unsigned acks = 0;
	for (size_t i = 0; i < sim.ntrace; i++)
		if (sim.trace[i].from == A &&
		    sim.trace[i].h.flags == RUDP__F_ACK &&
		    sim.trace[i].h.ack == fin1->h.seq + 1) {
			ck_assert_uint_eq(sim.trace[i].at,
					  (acks ? fin2->at : fin1->at) +
						  sim.delay);
			ck_assert(sim.trace[i].dropped == (acks == 0));
			acks++;
		}
	ck_assert_uint_eq(acks, 2);
	ck_assert_uint_eq(entered(A, ca, RUDP__TIME_WAIT), fin1->at + sim.delay);
	/* TIME_WAIT counts again from the retransmitted FIN. */
	rudp__usec end = entered(A, ca, RUDP__CLOSED);
	ck_assert_msg(end == fin2->at + sim.delay + cfg.time_wait,
		      "TIME_WAIT ended %llu ms after the first FIN arrived, "
		      "%llu ms after the retransmitted one (time_wait %llu ms)",
		      (unsigned long long)((end - fin1->at - sim.delay) / MS),
		      (unsigned long long)((end - fin2->at - sim.delay) / MS),
		      (unsigned long long)(cfg.time_wait / MS));
}
END_TEST

/*
 * Once TIME_WAIT is over, a late copy of the peer's FIN or data for that
 * connection is not taken: it draws a reset, as any segment for a
 * connection that no longer exists.
 */
START_TEST(test_stream_segment_after_time_wait_draws_reset)
{
	uint8_t buf[RUDP__HDR_LEN + 100];
	uint8_t payload[100] = { 0 };

	connect_apps();
	close_a();
	app_b.shut_when_done = true;
	ck_assert(sim_run(&sim, sim.now + 10 * S, both_closed));
	ck_assert_int_eq(ca->state, RUDP__CLOSED);
	struct rudp__hdr h =
		sim.trace[nth_sent(B, RUDP__F_ACK | RUDP__F_FIN, 0)].h;
	uint64_t resets = sim.node[A].ep.stats.resets_out;
	uint64_t data_in = sim.node[A].ep.stats.data_in;
	size_t before = sim.ntrace;

	/* The FIN again, then 100 bytes of data where the FIN was. */
	ssize_t n = rudp__wire_encode(&h, NULL, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	sim_inject(&sim, B, A, buf, (size_t)n);
	h.flags = RUDP__F_ACK;
	h.len = sizeof(payload);
	n = rudp__wire_encode(&h, payload, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	sim_inject(&sim, B, A, buf, (size_t)n);
	sim_flush(&sim);
	ck_assert_int_eq(ca->state, RUDP__CLOSED);
	ck_assert_int_eq(ca->err, 0);
	ck_assert_uint_eq(sim.node[A].ep.stats.data_in, data_in);
	ck_assert_uint_eq(sim.node[A].ep.stats.resets_out, resets + 2);
	ck_assert_uint_eq(sim.ntrace, before + 2);
	for (size_t i = before; i < sim.ntrace; i++) {
		ck_assert_int_eq(sim.trace[i].from, A);
		ck_assert_int_eq(sim.trace[i].to, B);
		ck_assert_uint_eq(sim.trace[i].h.flags, RUDP__F_RST);
		/* RFC 793: a reset to an ACK takes its seq from the ack. */
		ck_assert_uint_eq(sim.trace[i].h.seq, h.ack);
		ck_assert_uint_eq(sim.trace[i].h.dst_cid, cb->local_cid);
	}
}
END_TEST

START_TEST(test_stream_abort_resets_peer)
{
	rudp__usec at[4];

	connect_apps();
	/* In the middle of a transfer, with data in flight both ways. */
	app_a.to_send = 1000 * 1000;
	app_b.to_send = 1000 * 1000;
	ck_assert(sim_run(&sim, sim.now + 50 * MS, NULL));
	ck_assert(rudp__seq_gt(ca->snd_nxt, ca->snd_una));
	ck_assert_uint_gt(app_b.received, 0);
	rudp__conn_abort(ca, ECONNABORTED);
	rudp__ep_settle(&sim.node[A].ep, ca);
	ck_assert_int_eq(ca->state, RUDP__CLOSED);
	ck_assert_int_eq(ca->err, ECONNABORTED);
	rudp__usec t0 = sim.now;
	ck_assert(sim_run(&sim, sim.now + 10 * S, both_closed));
	ck_assert_int_eq(cb->err, ECONNRESET);
	ck_assert_uint_eq(sim.node[B].ep.stats.resets_in, 1);
	/* The reset went out at once and ended B one way later. */
	ck_assert_uint_ge(sim_times(&sim, A, RUDP__F_RST, at, 4), 1);
	ck_assert_uint_eq(at[0], t0);
	ck_assert_uint_eq(entered(B, cb, RUDP__CLOSED), t0 + sim.delay);
	static const enum rudp__state a_want[] = {
		RUDP__SYN_SENT, RUDP__ESTABLISHED, RUDP__CLOSED,
	};
	static const enum rudp__state b_want[] = {
		RUDP__SYN_RCVD, RUDP__ESTABLISHED, RUDP__CLOSED,
	};
	states_are(A, ca, a_want, NSTATES(a_want));
	states_are(B, cb, b_want, NSTATES(b_want));
	/* Nothing more is sent once the connection is gone. */
	ck_assert(!rudp__conn_wants_tx(ca));
	ck_assert(!rudp__conn_can_send(cb));
}
END_TEST

static bool a_gone(struct sim *s)
{
	return s->node[A].ep.nconns == 0;
}

/*
 * What the API does when A's program closes its socket: the connection is
 * orphaned, sends its FIN and is the endpoint's to end.  Returns it, for
 * looking at after it is gone from ca.
 */
static const struct rudp__conn *orphan_a(void)
{
	const struct rudp__conn *gone = ca;

	app_a.c = NULL;
	ca->app_closed = true;
	rudp__conn_shutdown_write(ca);
	rudp__ep_release(&sim.node[A].ep, ca);
	ca = NULL;
	return gone;
}

/*
 * A's program closes and goes away (the connection is orphaned) while B
 * never closes: A's FIN_WAIT_2 does not wait for B's FIN for ever, but
 * gives up fin_timeout after it got there.
 */
START_TEST(test_stream_orphan_fin_wait_2_times_out)
{
	static const enum rudp__state a_want[] = {
		RUDP__SYN_SENT, RUDP__ESTABLISHED, RUDP__FIN_WAIT_1,
		RUDP__FIN_WAIT_2, RUDP__CLOSED,
	};
	const struct rudp__conn *gone;

	sim_free(&sim);
	cfg.fin_timeout = 10 * S;
	init_sim(1);
	connect_apps();
	gone = orphan_a();
	ck_assert(sim_run(&sim, sim.now + 60 * S, a_gone));
	states_are(A, gone, a_want, NSTATES(a_want));
	ck_assert_int_eq(sim.node[A].last_err, 0);
	ck_assert_uint_eq(entered(A, gone, RUDP__CLOSED) -
				  entered(A, gone, RUDP__FIN_WAIT_2),
			  cfg.fin_timeout);
	/* B still has its half open: it never closed. */
	ck_assert_int_eq(cb->state, RUDP__CLOSE_WAIT);
}
END_TEST

/*
 * The same, but the program first shut its sending side (shutdown) and
 * only closed once FIN_WAIT_2 was reached: the orphan must give up
 * within fin_timeout of being orphaned just the same.
 */
START_TEST(test_stream_orphaned_in_fin_wait_2_times_out)
{
	const struct rudp__conn *gone;

	sim_free(&sim);
	cfg.fin_timeout = 10 * S;
	init_sim(1);
	connect_apps();
	app_a.shut_when_done = true;
	ck_assert(sim_run(&sim, sim.now + 10 * S, a_fin_wait_2_b_close_wait));
	/* Now the program closes. */
	ck_assert(sim_run(&sim, sim.now + 1 * S, NULL));
	rudp__usec closed_at = sim.now;
	gone = orphan_a();
	bool ended = sim_run(&sim, closed_at + cfg.fin_timeout, a_gone);
	ck_assert_msg(ended, "orphan still in %s %s after its program closed "
		      "(fin_timeout %llu s)", rudp__state_name(gone->state),
		      rudp__conn_deadline(gone) == RUDP__NEVER
			      ? "with no timer armed"
			      : "past fin_timeout",
		      (unsigned long long)(cfg.fin_timeout / S));
	ck_assert_int_eq(sim.node[A].last_err, 0);
	ck_assert_uint_le(entered(A, gone, RUDP__CLOSED),
			  closed_at + cfg.fin_timeout);
}
END_TEST

/* Keepalive on A: first probe after 10 s idle, then every 2 s, 3 probes. */
static void keepalive_on_a(void)
{
	ca->keepalive = true;
	ca->ka_idle = 10 * S;
	ca->ka_intvl = 2 * S;
	ca->ka_cnt = 3;
	rudp__ep_settle(&sim.node[A].ep, ca);
}

/* Whether trace entry i is a keepalive probe from A. */
static bool is_probe(size_t i)
{
	const struct sim_trace *t = &sim.trace[i];

	return t->from == A && t->h.flags == RUDP__F_ACK && t->h.len == 0 &&
	       t->h.seq == ca->snd_una - 1;
}

static bool a_closed(struct sim *s)
{
	(void)s;
	return ca->state == RUDP__CLOSED;
}

START_TEST(test_stream_keepalive_detects_vanished_peer)
{
	connect_apps();
	keepalive_on_a();
	rudp__usec idle_since = ca->last_rx;
	size_t before = sim.ntrace;
	/* B disappears: nothing gets through either way any more. */
	sim.loss_pct = 100;
	ck_assert(sim_run(&sim, sim.now + 600 * S, a_closed));
	ck_assert_int_eq(ca->err, ETIMEDOUT);
	/* idle + cnt * intvl: 10 + 3 * 2 = 16 s after the last word. */
	ck_assert_uint_eq(entered(A, ca, RUDP__CLOSED) - idle_since,
			  ca->ka_idle + ca->ka_cnt * ca->ka_intvl);
	/* Exactly cnt probes, at idle, idle + intvl, idle + 2 intvl. */
	unsigned probes = 0;
	for (size_t i = before; i < sim.ntrace; i++) {
		if (sim.trace[i].from != A)
			continue;
		ck_assert(is_probe(i));
		ck_assert_uint_eq(sim.trace[i].at - idle_since,
				  ca->ka_idle + probes * ca->ka_intvl);
		probes++;
	}
	ck_assert_uint_eq(probes, ca->ka_cnt);
	/* B heard none of it and still thinks all is well. */
	ck_assert_int_eq(cb->state, RUDP__ESTABLISHED);
}
END_TEST

START_TEST(test_stream_keepalive_answered_keeps_connection)
{
	connect_apps();
	keepalive_on_a();
	rudp__usec t0 = sim.now, last = ca->last_rx;
	size_t before = sim.ntrace;
	ck_assert(!sim_run(&sim, t0 + 120 * S, a_closed));
	ck_assert_int_eq(ca->state, RUDP__ESTABLISHED);
	ck_assert_int_eq(cb->state, RUDP__ESTABLISHED);
	ck_assert_int_eq(ca->err, 0);
	/*
	 * Each probe goes out idle after the last answer, and B answers it
	 * at once (one way later) with an ack of where it is.
	 */
	unsigned probes = 0;
	for (size_t i = before; i < sim.ntrace; i++) {
		const struct sim_trace *t = &sim.trace[i];
		if (t->from == A) {
			ck_assert(is_probe(i));
			ck_assert_uint_eq(t->at, last + ca->ka_idle);
			probes++;
		} else {
			ck_assert_uint_eq(t->h.flags, RUDP__F_ACK);
			ck_assert_uint_eq(t->h.ack, ca->snd_una);
			ck_assert_uint_eq(t->at, last + ca->ka_idle + sim.delay);
			last = t->at + sim.delay;
		}
	}
	/* 120 s at one probe per ~10 s, all answered: never more than one out. */
	ck_assert_uint_ge(probes, 11);
	ck_assert_uint_le(ca->ka_probes, 1);
}
END_TEST

/*
 * B vanishes with data outstanding: the retransmission timer backs off,
 * doubling each time, and after data_retries timeouts without an ack
 * the next one ends the connection with ETIMEDOUT.
 */
START_TEST(test_stream_data_retries_then_etimedout)
{
	rudp__usec rtx[16];
	size_t nrtx = 0;

	sim_free(&sim);
	cfg.data_retries = 4;
	init_sim(1);
	connect_apps();
	app_a.to_send = 100 * 1000;
	ck_assert(sim_run(&sim, sim.now + 20 * MS, NULL));
	ck_assert_uint_eq(sim.node[A].ep.stats.timeouts, 0);
	sim.loss_pct = 100;
	ck_assert(sim_run(&sim, sim.now + 3600 * S, a_closed));
	ck_assert_int_eq(ca->err, ETIMEDOUT);
	rudp__usec end = entered(A, ca, RUDP__CLOSED);
	/* data_retries timeouts resend; one more gives up. */
	ck_assert_uint_eq(sim.node[A].ep.stats.timeouts, cfg.data_retries + 1);
	/* The oldest unacked segment was resent at each timeout. */
	for (size_t i = 0; i < sim.ntrace; i++)
		if (sim.trace[i].from == A && sim.trace[i].h.len &&
		    sim.trace[i].h.seq == ca->snd_una && nrtx < 16)
			rtx[nrtx++] = sim.trace[i].at;
	ck_assert_uint_eq(nrtx, 1 + cfg.data_retries);
	ck_assert_uint_ge(rtx[1] - rtx[0], cfg.rto_min);
	/*
	 * RFC 6298 (5.5): from the first timeout on, each wait is twice the
	 * one before, the last one included, which ends the connection.
	 */
	rtx[nrtx] = end;
	for (size_t i = 3; i <= nrtx; i++)
		ck_assert_uint_eq(rtx[i] - rtx[i - 1],
				  2 * (rtx[i - 1] - rtx[i - 2]));
	ck_assert_int_eq(cb->state, RUDP__ESTABLISHED);
}
END_TEST

/* Drops A's first data segment carrying exactly `lone_len` bytes. */
static uint16_t lone_len;

static bool drop_lone_segment(struct sim *s, int from,
			      const struct rudp__hdr *h)
{
	(void)s;
	if (from != A || h->len != lone_len || lone_len == 0)
		return false;
	lone_len = 0;
	return true;
}

/*
 * RFC 6298 in a running transfer over a path with a fixed 50 ms round
 * trip: SRTT converges on it, RTTVAR decays, the RTO is SRTT + max(G,
 * 4 RTTVAR), and a lost segment is resent exactly that long after it was
 * sent.  Run with timestamps echoed (_i = 0) and without (_i = 1), where
 * Karn's rule picks the samples.
 */
START_TEST(test_stream_rto_converges_on_fixed_rtt)
{
	sim_free(&sim);
	/* No floor, so the estimate itself shows. */
	cfg.rto_min = 0;
	init_sim(3);
	sim.delay = 25 * MS;
	sim.strip_tsecr = _i == 1;
	connect_apps();
	app_a.to_send = 1000 * 1000;
	ck_assert(sim_run(&sim, sim.now + 120 * S, transfer_done));
	ck_assert(!app_b.corrupt);
	struct rudp__rtt *r = &ca->rtt;
	ck_assert(r->has_sample);
	/*
	 * Samples are the round trip plus at most the delayed-ack timer,
	 * and most are the bare round trip: SRTT ends within a millisecond.
	 */
	ck_assert_msg(r->srtt >= 50 * MS && r->srtt <= 51 * MS,
		      "srtt %llu us", (unsigned long long)r->srtt);
	ck_assert_msg(r->rttvar <= 1 * MS, "rttvar %llu us",
		      (unsigned long long)r->rttvar);
	rudp__usec k = 4 * r->rttvar > RUDP__RTT_GRANULARITY
			       ? 4 * r->rttvar : RUDP__RTT_GRANULARITY;
	ck_assert_uint_eq(r->rto, r->srtt + k);
	rudp__usec rto = rudp__rtt_rto(r, 0);
	ck_assert_uint_eq(rto, r->rto);
	/* One more short message, its first copy lost: resent after rto. */
	ck_assert(sim_run(&sim, sim.now + 1 * S, NULL));
	size_t before = sim.ntrace;
	lone_len = 123;
	sim.filter = drop_lone_segment;
	app_a.to_send += 123;
	ck_assert(sim_run(&sim, sim.now + 10 * S, transfer_done));
	ck_assert(!app_b.corrupt);
	rudp__usec sent[2];
	size_t n = 0;
	for (size_t i = before; i < sim.ntrace && n < 2; i++)
		if (sim.trace[i].from == A && sim.trace[i].h.len == 123)
			sent[n++] = sim.trace[i].at;
	ck_assert_uint_lt(sim.ntrace, SIM_TRACE); /* the trace saw it all */
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(sent[1] - sent[0], rto);
	ck_assert_uint_eq(sim.node[A].ep.stats.timeouts, 1);
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
	tcase_add_test(tc, test_stream_payload_sent_in_place_across_ring_wrap);
	tcase_add_test(tc, test_stream_sequence_wraps);
	tcase_add_test(tc, test_stream_direct_delivery_takes_all);
	tcase_add_test(tc, test_stream_direct_delivery_takes_part);
	tcase_add_test(tc,
		       test_stream_direct_delivery_takes_nothing_changes_nothing);
	tcase_add_test(tc, test_stream_direct_delivery_under_impairments);
	tcase_add_test(tc, test_stream_seeded_impairments_deliver_exactly);
	suite_add_tcase(s, tc);

	tc = tcase_create("loss_and_flow_control");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_stream_loss_recovered_by_sack_not_timeout);
	tcase_add_test(tc, test_stream_reordering_recoveries_are_undone);
	tcase_add_test(tc, test_stream_zero_window_then_resume);
	tcase_add_test(tc, test_stream_slow_reader_paces_sender);
	tcase_add_test(tc, test_stream_peer_vanishes_times_out);
	suite_add_tcase(s, tc);

	tc = tcase_create("acks");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_stream_delayed_ack_every_second_segment);
	tcase_add_test(tc, test_stream_lone_full_segment_acked_after_delay);
	suite_add_tcase(s, tc);

	tc = tcase_create("nagle");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_stream_nagle_holds_short_write_until_ack);
	tcase_add_test(tc, test_stream_nagle_off_with_nodelay);
	tcase_add_test(tc, test_stream_nagle_fin_sends_the_tail);
	tcase_add_test(tc, test_stream_nagle_fills_segments_of_bulk_writes);
	suite_add_tcase(s, tc);

	tc = tcase_create("teardown");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_stream_active_close_then_passive_close);
	tcase_add_test(tc, test_stream_simultaneous_close_through_closing);
	tcase_add_test(tc, test_stream_half_close_keeps_other_direction);
	tcase_add_test(tc, test_stream_time_wait_reacks_fin_and_restarts);
	tcase_add_test(tc, test_stream_segment_after_time_wait_draws_reset);
	tcase_add_test(tc, test_stream_abort_resets_peer);
	tcase_add_test(tc, test_stream_orphan_fin_wait_2_times_out);
	tcase_add_test(tc, test_stream_orphaned_in_fin_wait_2_times_out);
	suite_add_tcase(s, tc);

	tc = tcase_create("dead_peer");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_stream_keepalive_detects_vanished_peer);
	tcase_add_test(tc, test_stream_keepalive_answered_keeps_connection);
	tcase_add_test(tc, test_stream_data_retries_then_etimedout);
	suite_add_tcase(s, tc);

	tc = tcase_create("rto_estimation");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_stream_rto_converges_on_fixed_rtt, 0, 2);
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
