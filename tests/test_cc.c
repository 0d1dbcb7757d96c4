/*
 * Congestion control.  NewReno on its own first: the initial window,
 * byte-counted slow start, congestion avoidance, and the reactions to loss
 * and to a timeout, with expected windows worked out by hand; then CUBIC's
 * decrease and cubic regrowth, loss differentiation, the pacing rate and
 * the pacer.  Then NewReno as a connection drives it, through the
 * simulated link: a spy wrapped around the algorithm records every call a
 * bulk transfer makes, so the tests can check each reaction (HyStart++'s
 * exit from slow start included) against the flight the connection
 * reported.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc.h"
#include "pacer.h"
#include "simlink.h"

#define MSS 1000u
#define A_NODE 0
#define B_NODE 1
#define A_NODE 0
#define B_NODE 1
#define MS RUDP__MSEC
#define S RUDP__SEC

static struct rudp__cc cc;

static void setup_unit(void)
{
	rudp__cc_init(&cc, &rudp__cc_newreno, MSS);
}

/* An ack of bytes with the whole window in flight and no RTT sample. */
static void ack(uint64_t bytes)
{
	struct rudp__cc_ack a = {.acked = bytes, .flight = cc.cwnd,
				 .rtt = RUDP__NEVER};

	cc.ops->on_ack(&cc, &a);
}

START_TEST(test_cc_initial_window_ten_segments)
{
	ck_assert_str_eq(cc.ops->name, "newreno");
	ck_assert_uint_eq(cc.mss, MSS);
	/* RFC 6928: ten segments; no threshold until the first loss. */
	ck_assert_uint_eq(cc.cwnd, 10 * MSS);
	ck_assert_uint_eq(cc.ssthresh, UINT64_MAX);
	ck_assert_uint_eq(cc.ca_acked, 0);
	ck_assert_int_eq(cc.in_recovery, 0);
	rudp__cc_init(&cc, &rudp__cc_newreno, 1400);
	ck_assert_uint_eq(cc.cwnd, 14000);
}
END_TEST

START_TEST(test_cc_slow_start_grows_by_acked_bytes)
{
	/* RFC 3465: the window grows by the bytes acked, not per ack. */
	ack(MSS);
	ck_assert_uint_eq(cc.cwnd, 11 * MSS);
	ack(300);
	ck_assert_uint_eq(cc.cwnd, 11 * MSS + 300);
	ack(2 * MSS);
	ck_assert_uint_eq(cc.cwnd, 13 * MSS + 300);
	/* A window's worth of one-segment acks doubles the window. */
	rudp__cc_init(&cc, &rudp__cc_newreno, MSS);
	for (int i = 0; i < 10; i++)
		ack(MSS);
	ck_assert_uint_eq(cc.cwnd, 20 * MSS);
	ck_assert_uint_eq(cc.ca_acked, 0);
}
END_TEST

START_TEST(test_cc_slow_start_capped_at_two_segments_per_ack)
{
	/* A stretch ack of five segments counts as two (L = 2). */
	ack(5 * MSS);
	ck_assert_uint_eq(cc.cwnd, 12 * MSS);
	ack(2 * MSS + 1);
	ck_assert_uint_eq(cc.cwnd, 14 * MSS);
	ack(100 * MSS);
	ck_assert_uint_eq(cc.cwnd, 16 * MSS);
}
END_TEST

START_TEST(test_cc_congestion_avoidance_one_segment_per_window)
{
	cc.cwnd = 20 * MSS;
	cc.ssthresh = 20 * MSS; /* at the threshold: avoidance */
	/* 19 segments acked one by one: not yet a window, no growth. */
	for (int i = 0; i < 19; i++)
		ack(MSS);
	ck_assert_uint_eq(cc.cwnd, 20 * MSS);
	ck_assert_uint_eq(cc.ca_acked, 19 * MSS);
	/* The 20th completes the window: one segment more. */
	ack(MSS);
	ck_assert_uint_eq(cc.cwnd, 21 * MSS);
	ck_assert_uint_eq(cc.ca_acked, 0);
	/* The next window is 21 segments; big acks carry the remainder. */
	ack(15 * MSS);
	ck_assert_uint_eq(cc.cwnd, 21 * MSS);
	ack(10 * MSS);
	ck_assert_uint_eq(cc.cwnd, 22 * MSS);
	ck_assert_uint_eq(cc.ca_acked, 4 * MSS);
	/* About one segment per window: 10 windows of acks, 10 segments. */
	uint64_t start = cc.cwnd, acked = 0;
	while (cc.cwnd < start + 10 * MSS) {
		ack(MSS);
		acked += MSS;
	}
	/* 22 + 23 + ... + 31 windows of segments, less the 4 carried. */
	ck_assert_uint_eq(acked, (uint64_t)(265 - 4) * MSS);
}
END_TEST

START_TEST(test_cc_loss_halves_to_half_flight)
{
	cc.cwnd = 40 * MSS;
	cc.ca_acked = 500;
	cc.ops->on_loss(&cc, 36 * MSS, 0, 0, 0);
	/* RFC 5681 (4): ssthresh = max(FlightSize / 2, 2 * SMSS). */
	ck_assert_uint_eq(cc.ssthresh, 18 * MSS);
	ck_assert_uint_eq(cc.cwnd, 18 * MSS);
	ck_assert_uint_eq(cc.ca_acked, 0);
	/* Half the flight, not half the window. */
	cc.cwnd = 40 * MSS;
	cc.ops->on_loss(&cc, 10 * MSS, 0, 0, 0);
	ck_assert_uint_eq(cc.ssthresh, 5 * MSS);
	ck_assert_uint_eq(cc.cwnd, 5 * MSS);
	/* Odd flights round down. */
	cc.ops->on_loss(&cc, 5001, 0, 0, 0);
	ck_assert_uint_eq(cc.cwnd, 2500);
}
END_TEST

START_TEST(test_cc_loss_floor_two_segments)
{
	cc.ops->on_loss(&cc, 3 * MSS, 0, 0, 0);
	ck_assert_uint_eq(cc.ssthresh, 2 * MSS);
	ck_assert_uint_eq(cc.cwnd, 2 * MSS);
	cc.ops->on_loss(&cc, 0, 0, 0, 0);
	ck_assert_uint_eq(cc.ssthresh, 2 * MSS);
	ck_assert_uint_eq(cc.cwnd, 2 * MSS);
}
END_TEST

START_TEST(test_cc_rto_one_segment_and_halved_ssthresh)
{
	cc.cwnd = 30 * MSS;
	cc.ca_acked = 1234;
	cc.ops->on_rto(&cc, 30 * MSS, 0);
	/* RFC 5681 (3.1): the loss window is one segment. */
	ck_assert_uint_eq(cc.cwnd, MSS);
	ck_assert_uint_eq(cc.ssthresh, 15 * MSS);
	ck_assert_uint_eq(cc.ca_acked, 0);
	/* A second timeout with little in flight: the two-segment floor. */
	cc.ops->on_rto(&cc, MSS, 0);
	ck_assert_uint_eq(cc.cwnd, MSS);
	ck_assert_uint_eq(cc.ssthresh, 2 * MSS);
}
END_TEST

START_TEST(test_cc_slow_start_after_rto_up_to_ssthresh)
{
	cc.ops->on_rto(&cc, 8 * MSS, 0);
	ck_assert_uint_eq(cc.ssthresh, 4 * MSS);
	/* Slow start from one segment: 1, 2, 3, 4 segments. */
	ack(MSS);
	ack(MSS);
	ack(MSS);
	ck_assert_uint_eq(cc.cwnd, 4 * MSS);
	/* At ssthresh: avoidance, one segment per window from now on. */
	ack(MSS);
	ck_assert_uint_eq(cc.cwnd, 4 * MSS);
	ack(3 * MSS);
	ck_assert_uint_eq(cc.cwnd, 5 * MSS);
}
END_TEST

START_TEST(test_cc_no_growth_in_recovery)
{
	cc.ops->on_loss(&cc, 20 * MSS, 0, 0, 0);
	cc.in_recovery = 1;
	for (int i = 0; i < 50; i++)
		ack(2 * MSS);
	/* RFC 6675: the window stays at ssthresh through recovery... */
	ck_assert_uint_eq(cc.cwnd, 10 * MSS);
	ck_assert_uint_eq(cc.ca_acked, 0);
	/* ...and in slow start too, not just in avoidance. */
	cc.cwnd = 2 * MSS;
	ack(2 * MSS);
	ck_assert_uint_eq(cc.cwnd, 2 * MSS);
	/* Out of recovery, acks count again. */
	cc.in_recovery = 0;
	ack(MSS);
	ck_assert_uint_eq(cc.cwnd, 3 * MSS);
}
END_TEST

/*
 * A spy wrapped around NewReno: it records each call the connection under
 * test makes, with the window before and after, then checks them.
 */
enum call_kind { CALL_ACK, CALL_LOSS, CALL_RTO };

struct cc_call {
	enum call_kind kind;
	uint64_t arg;   /* bytes acked, or the flight at a loss or timeout */
	uint64_t flight; /* the connection's own count of bytes in flight */
	uint64_t cwnd0, ssthresh0, cwnd1, ssthresh1;
	int in_recovery;
	bool css1;      /* in HyStart++'s conservative slow start after it */
	uint64_t drops; /* bottleneck drops so far */
	rudp__usec at;
};

#define MAX_CALLS 65536

static struct cc_call calls[MAX_CALLS];
static size_t ncalls;
static struct sim sim;
static struct rudp__cfg cfg;
static struct rudp__conn *listener, *ca, *cb;
static struct sim_app app_a, app_b;

static struct cc_call *call_begin(struct rudp__cc *c, enum call_kind k,
				  uint64_t arg)
{
	struct cc_call *r;

	/* Only the sender's window is of interest. */
	if (!ca || c != &ca->cc)
		return NULL;
	ck_assert_uint_lt(ncalls, MAX_CALLS);
	r = &calls[ncalls++];
	r->kind = k;
	r->arg = arg;
	r->cwnd0 = c->cwnd;
	r->ssthresh0 = c->ssthresh;
	r->in_recovery = c->in_recovery;
	r->flight = ca->rtx.flight;
	r->drops = sim.queue_drops;
	r->at = sim.now;
	return r;
}

static void call_end(struct cc_call *r, const struct rudp__cc *c)
{
	if (!r)
		return;
	r->cwnd1 = c->cwnd;
	r->ssthresh1 = c->ssthresh;
	r->css1 = c->hs.in_css;
}

static void spy_init(struct rudp__cc *c)
{
	rudp__cc_newreno.init(c);
}

static void spy_on_ack(struct rudp__cc *c, const struct rudp__cc_ack *a)
{
	struct cc_call *r = call_begin(c, CALL_ACK, a->acked);

	/* The flight the connection had before the ack took some off. */
	if (r)
		r->flight = a->flight;
	rudp__cc_newreno.on_ack(c, a);
	call_end(r, c);
}

static void spy_on_loss(struct rudp__cc *c, uint64_t flight, rudp__usec now,
			rudp__usec rtt, rudp__usec min_rtt)
{
	struct cc_call *r = call_begin(c, CALL_LOSS, flight);

	rudp__cc_newreno.on_loss(c, flight, now, rtt, min_rtt);
	call_end(r, c);
}

static void spy_on_rto(struct rudp__cc *c, uint64_t flight, rudp__usec now)
{
	struct cc_call *r = call_begin(c, CALL_RTO, flight);

	rudp__cc_newreno.on_rto(c, flight, now);
	call_end(r, c);
}

static const struct rudp__cc_ops spy = {
	.name = "spy",
	.init = spy_init,
	.on_ack = spy_on_ack,
	.on_loss = spy_on_loss,
	.on_rto = spy_on_rto,
};

static void setup_sim(void)
{
	rudp__cfg_default(&cfg);
	cfg.mss = MSS;
	/* Buffers far above the path's capacity: only cwnd limits A. */
	cfg.rcv_wnd = 8 * 1024 * 1024;
	cfg.snd_buf = 8 * 1024 * 1024;
	cfg.cc = &spy;
	sim_init(&sim, 7, &cfg);
	/*
	 * 8 Mbit/s with 20 ms each way: a datagram of ~1 kB takes ~1 ms on
	 * the wire, so about 40 segments fill the 40 ms round trip.
	 */
	sim.delay = 20 * MS;
	sim.rate_bps = 8 * 1000 * 1000;
	memset(&app_a, 0, sizeof(app_a));
	memset(&app_b, 0, sizeof(app_b));
	app_a.tx_seed = app_b.rx_seed = 11;
	app_b.tx_seed = app_a.rx_seed = 12;
	ncalls = 0;
	ca = cb = NULL;
}

static void teardown_sim(void)
{
	sim_free(&sim);
}

static bool established(struct sim *s)
{
	(void)s;
	return ca->state == RUDP__ESTABLISHED && listener->aq_head;
}

static bool delivered(struct sim *s)
{
	(void)s;
	return app_b.received == app_a.to_send;
}

/* Connects A to B, then sends `bytes` from A while B reads everything. */
static void bulk_transfer(uint64_t bytes)
{
	listener = sim_listen(&sim, B_NODE, 4);
	ca = sim_connect(&sim, A_NODE, B_NODE);
	ck_assert(sim_run(&sim, sim.now + 10 * S, established));
	cb = rudp__conn_accept(listener);
	cb->user_owned = true;
	app_a.c = ca;
	app_b.c = cb;
	sim_app_add(&sim, &app_a);
	sim_app_add(&sim, &app_b);
	app_a.to_send = bytes;
	ck_assert(sim_run(&sim, sim.now + 600 * S, delivered));
	ck_assert(!app_b.corrupt);
	ck_assert_int_eq(ca->state, RUDP__ESTABLISHED);
}

/* The index of the first call of kind k from index i on, or ncalls. */
static size_t find_call(size_t i, enum call_kind k)
{
	while (i < ncalls && calls[i].kind != k)
		i++;
	return i;
}

static uint64_t half_flight(uint64_t flight)
{
	return flight / 2 > 2 * MSS ? flight / 2 : 2 * MSS;
}

/*
 * Rules every recorded call must obey, whatever the loss pattern: slow
 * start grows by the acked bytes up to two segments (a quarter of that in
 * HyStart++'s conservative phase, nothing while less than half the window
 * is in use), and ends either by a loss or by HyStart++ setting ssthresh
 * to the window; avoidance grows by at most one segment per ack, recovery
 * not at all; a loss sets the window to half the flight, a timeout to one
 * segment; and the flight reported is the connection's own count.
 */
static void check_every_call(void)
{
	for (size_t i = 0; i < ncalls; i++) {
		const struct cc_call *r = &calls[i];
		uint64_t grew = r->cwnd1 - r->cwnd0;

		switch (r->kind) {
		case CALL_ACK: {
			ck_assert_uint_ge(r->cwnd1, r->cwnd0);
			uint64_t inc = r->arg < 2 * MSS ? r->arg : 2 * MSS;
			if (r->css1)
				inc /= 4;
			if (2 * r->flight < r->cwnd0)
				inc = 0;
			if (r->ssthresh1 != r->ssthresh0) {
				/* HyStart++ ends slow start at the window. */
				ck_assert_uint_lt(r->cwnd0, r->ssthresh0);
				ck_assert_uint_eq(r->ssthresh1, r->cwnd0);
				ck_assert_uint_eq(grew, 0);
			} else if (r->in_recovery) {
				ck_assert_uint_eq(grew, 0);
			} else if (r->cwnd0 < r->ssthresh0) {
				ck_assert_uint_eq(grew, inc);
			} else {
				ck_assert(grew == 0 || grew == MSS);
			}
			break;
		}
		case CALL_LOSS:
			ck_assert_uint_eq(r->arg, r->flight);
			ck_assert_uint_eq(r->ssthresh1, half_flight(r->arg));
			ck_assert_uint_eq(r->cwnd1, r->ssthresh1);
			/* Once per episode: never while already recovering. */
			ck_assert_int_eq(r->in_recovery, 0);
			break;
		case CALL_RTO:
			/*
			 * Half the flight, or held where it was (a repeated
			 * timeout: see test_cc_repeated_timeouts_keep_ssthresh).
			 */
			ck_assert_uint_eq(r->arg, r->flight);
			ck_assert(r->ssthresh1 == half_flight(r->arg) ||
				  r->ssthresh1 == r->ssthresh0);
			ck_assert_uint_eq(r->cwnd1, MSS);
			break;
		}
	}
}

/*
 * A drop-tail bottleneck of 4 ms (about 4 segments) and no random loss:
 * too shallow a queue for the round trip to grow by HyStart++'s threshold
 * (an eighth of 40 ms), so slow start doubles the window until the queue
 * overflows, and the loss that causes is met by halving.
 */
START_TEST(test_cc_slow_start_until_bottleneck_overflows)
{
	sim.queue_max = 4 * MS;
	bulk_transfer(4 * 1000 * 1000);
	ck_assert_uint_gt(sim.queue_drops, 0);
	check_every_call();
	size_t loss = find_call(0, CALL_LOSS);
	ck_assert_uint_lt(loss, ncalls);
	/* Up to the first loss: slow start only, the window only grew. */
	for (size_t i = 0; i < loss; i++) {
		ck_assert_int_eq(calls[i].kind, CALL_ACK);
		ck_assert_uint_eq(calls[i].ssthresh1, UINT64_MAX);
		ck_assert_uint_gt(calls[i].cwnd1, calls[i].cwnd0);
	}
	/*
	 * Slow start ran for more than a round trip (the window more than
	 * doubled), then the loss set a threshold and at least halved the
	 * window: the connection never had more in flight than cwnd.
	 */
	ck_assert_uint_gt(calls[loss].cwnd0, 2 * 10 * MSS);
	ck_assert_uint_le(calls[loss].arg, calls[loss].cwnd0);
	ck_assert_uint_ne(calls[loss].ssthresh1, UINT64_MAX);
	ck_assert_uint_le(calls[loss].cwnd1, calls[loss].cwnd0 / 2);
	/* No timeout was needed: the drops were repaired by SACK. */
	ck_assert_uint_eq(find_call(0, CALL_RTO), ncalls);
	ck_assert_uint_eq(sim.node[A_NODE].ep.stats.timeouts, 0);
	/* After the first recovery, avoidance: never slow start again. */
	size_t ca_acks = 0;
	for (size_t i = loss + 1; i < ncalls; i++) {
		if (calls[i].kind != CALL_ACK || calls[i].in_recovery)
			continue;
		ck_assert_uint_ge(calls[i].cwnd0, calls[i].ssthresh0);
		ca_acks++;
	}
	ck_assert_uint_gt(ca_acks, 100);
}
END_TEST

/*
 * A deep drop-tail bottleneck (400 ms, ten round trips of queue): the
 * round trip grows while slow start doubles, HyStart++ moves to its
 * conservative phase (a quarter of the growth) and, five rounds later,
 * ends slow start before the queue overflows, where plain slow start
 * would go on doubling into a window's worth of drops.
 */
START_TEST(test_cc_hystart_leaves_slow_start_before_overflow)
{
	sim.queue_max = 400 * MS;
	bulk_transfer(4 * 1000 * 1000);
	check_every_call();
	size_t i = 0;
	while (i < ncalls && calls[i].ssthresh1 == UINT64_MAX)
		i++;
	ck_assert_uint_lt(i, ncalls);
	/* An ack ended slow start, not a loss, and nothing was dropped. */
	ck_assert_int_eq(calls[i].kind, CALL_ACK);
	ck_assert_uint_eq(calls[i].drops, 0);
	ck_assert_uint_eq(ca->cc.hystart_exits, 1);
	/* The conservative phase came first, and growth had slowed in it. */
	ck_assert(i > 0 && calls[i - 1].css1);
	/* By then the window was past the path's 40 segments. */
	ck_assert_uint_gt(calls[i].ssthresh1, 40 * MSS);
}
END_TEST

/*
 * Random loss of 1% on the rate-limited link (no queue limit): every loss
 * episode halves the window once, and between them the window grows.
 */
START_TEST(test_cc_random_loss_halves_each_episode)
{
	sim.loss_pct = 1;
	bulk_transfer(4 * 1000 * 1000);
	check_every_call();
	size_t losses = 0, first = find_call(0, CALL_LOSS);
	ck_assert_uint_lt(first, ncalls);
	/* Before the first loss the window grew past the initial ten. */
	ck_assert_uint_gt(calls[first].cwnd0, 10 * MSS);
	for (size_t i = first; i < ncalls; i = find_call(i + 1, CALL_LOSS))
		losses++;
	ck_assert_uint_ge(losses, 3);
	/* Each episode is reported once: fast retransmits outnumber them. */
	ck_assert_uint_ge(sim.node[A_NODE].ep.stats.fast_retransmits, losses);
	ck_assert_uint_eq(sim.node[B_NODE].ep.stats.data_in, app_a.to_send);
}
END_TEST

/* Drops everything either side sends during [from, until). */
static rudp__usec blackout_from, blackout_until;

static bool blackout(struct sim *s, int from, const struct rudp__hdr *h)
{
	(void)from;
	(void)h;
	return s->now >= blackout_from && s->now < blackout_until;
}

/*
 * The path goes dark both ways for 500 ms during slow start, longer than
 * tail loss probes can bridge: no ack comes back, the retransmission
 * timer fires, the window drops to one
 * segment with ssthresh at half the flight, and slow start climbs back to
 * that threshold before avoidance takes over.
 */
START_TEST(test_cc_timeout_restarts_from_one_segment)
{
	sim.queue_max = 20 * MS;
	sim.filter = blackout;
	blackout_from = sim.now + 150 * MS;
	blackout_until = blackout_from + 500 * MS;
	bulk_transfer(3 * 1000 * 1000);
	check_every_call();
	size_t rto = find_call(0, CALL_RTO);
	ck_assert_uint_lt(rto, ncalls);
	ck_assert_uint_ge(calls[rto].at, blackout_from);
	ck_assert_uint_lt(calls[rto].at, blackout_until);
	ck_assert_uint_gt(calls[rto].arg, 10 * MSS);
	ck_assert_uint_eq(calls[rto].cwnd1, MSS);
	ck_assert_uint_eq(calls[rto].ssthresh1, half_flight(calls[rto].arg));
	ck_assert_uint_ge(sim.node[A_NODE].ep.stats.timeouts, 1);
	/* The next ack grows the window from one segment, in slow start. */
	size_t next = find_call(rto + 1, CALL_ACK);
	ck_assert_uint_lt(next, ncalls);
	ck_assert_uint_eq(calls[next].cwnd0, MSS);
	ck_assert_uint_gt(calls[next].cwnd1, MSS);
	/* It reaches the threshold again and goes on in avoidance. */
	size_t i = next;
	while (i < ncalls && calls[i].cwnd1 < calls[i].ssthresh1)
		i++;
	ck_assert_uint_lt(i, ncalls);
	ck_assert_uint_eq(calls[i].ssthresh1, calls[rto].ssthresh1);
	while (++i < ncalls && calls[i].kind == CALL_ACK) {
		ck_assert_uint_ge(calls[i].cwnd0, calls[i].ssthresh0);
	}
}
END_TEST

/*
 * A two-second outage both ways (over an unbounded bottleneck buffer, so
 * slow start has grown a large window): the timer fires, then backs off
 * and fires again, each time finding one segment in flight.  RFC 5681 (3.1) holds ssthresh
 * constant once the segment has already been retransmitted by the timer,
 * so the threshold the first timeout set (half the real flight) survives
 * the later ones instead of collapsing to two segments.
 */
START_TEST(test_cc_repeated_timeouts_keep_ssthresh)
{
	sim.filter = blackout;
	blackout_from = sim.now + 300 * MS;
	blackout_until = blackout_from + 2 * S;
	bulk_transfer(2 * 1000 * 1000);
	check_every_call();
	size_t first = find_call(0, CALL_RTO);
	ck_assert_uint_lt(first, ncalls);
	ck_assert_uint_gt(calls[first].arg, 4 * MSS);
	/* The timer backed off and fired again during the outage... */
	ck_assert_uint_ge(sim.node[A_NODE].ep.stats.timeouts, 2);
	/*
	 * ...and the threshold the connection holds when each later call
	 * comes (any later timeout, then the first ack after the outage) is
	 * still the first timeout's, however the fix is made.
	 */
	size_t ack = find_call(first + 1, CALL_ACK);
	ck_assert_uint_lt(ack, ncalls);
	for (size_t i = first + 1; i <= ack; i++) {
		const struct cc_call *prev = &calls[i - 1];
		ck_assert_msg(calls[i].ssthresh0 == calls[first].ssthresh1,
			      "after the timeout at +%llu ms with %llu bytes "
			      "in flight, ssthresh is %llu, not %llu",
			      (unsigned long long)((prev->at -
						    calls[first].at) / MS),
			      (unsigned long long)prev->arg,
			      (unsigned long long)calls[i].ssthresh0,
			      (unsigned long long)calls[first].ssthresh1);
	}
	ck_assert_uint_eq(calls[ack].cwnd0, MSS);
}
END_TEST

/*
 * lossdiff leaves the window alone on a loss while the round trip is near
 * its minimum (a lossy link), and halves it like NewReno when the round
 * trip has grown (a full queue).
 */
START_TEST(test_cc_lossdiff_ignores_random_loss)
{
	struct rudp__cc c;

	rudp__cc_init(&c, &rudp__cc_lossdiff, MSS);
	uint64_t before = c.cwnd;
	c.ops->on_loss(&c, 10 * MSS, 0, 1100, 1000);
	ck_assert_uint_eq(c.cwnd, before);
	ck_assert_uint_eq(c.random_losses, 1);
	/* 1 ms of slack at least: 1.9 ms over a 1 ms minimum is random. */
	c.ops->on_loss(&c, 10 * MSS, 0, 1900, 1000);
	ck_assert_uint_eq(c.cwnd, before);
}
END_TEST

START_TEST(test_cc_lossdiff_halves_on_queueing_loss)
{
	struct rudp__cc c;

	rudp__cc_init(&c, &rudp__cc_lossdiff, MSS);
	c.ops->on_loss(&c, 20 * MSS, 0, 5000, 1000);
	/* CUBIC's decrease: 0.7 of the window. */
	ck_assert_uint_eq(c.cwnd, 7 * MSS);
	ck_assert_uint_eq(c.ssthresh, 7 * MSS);
	ck_assert_uint_eq(c.random_losses, 0);
}
END_TEST

/*
 * CUBIC on its own: a loss at a window of 100 segments, then acks of the
 * whole window once per 100 ms round trip.  RFC 9438: the window drops to
 * 0.7 of itself, and regrows along a cubic that is back at the old
 * maximum K = cbrt(100 * 0.3 / 0.4) = 4.22 s later: concave (fast, then
 * slowing) below it, convex (probing faster and faster) above it.
 */
static void cubic_rounds(struct rudp__cc *c, rudp__usec *now, double secs)
{
	for (rudp__usec end = *now + (rudp__usec)(secs * S); *now < end;
	     *now += 100 * MS) {
		uint64_t left = c->cwnd;
		while (left) {
			uint64_t n = left < 2 * MSS ? left : 2 * MSS;
			struct rudp__cc_ack a = {.acked = n, .flight = c->cwnd,
						 .now = *now, .srtt = 100 * MS,
						 .rtt = RUDP__NEVER};
			c->ops->on_ack(c, &a);
			left -= n;
		}
	}
}

START_TEST(test_cc_cubic_decrease_and_regrowth)
{
	struct rudp__cc c;
	rudp__usec now = 10 * S;

	rudp__cc_init(&c, &rudp__cc_cubic, MSS);
	c.cwnd = 100 * MSS;
	c.ops->on_loss(&c, 100 * MSS, now, 0, 0);
	ck_assert_uint_eq(c.cwnd, 70 * MSS);
	ck_assert_uint_eq(c.ssthresh, 70 * MSS);
	ck_assert_double_eq_tol(c.cubic.w_max, 100.0 * MSS, 1);
	ck_assert_double_eq_tol(c.cubic.k, 4.217, 0.001);
	/* Half way to K: more than half the way back (concave). */
	cubic_rounds(&c, &now, 2.1);
	uint64_t mid = c.cwnd;
	ck_assert_uint_gt(mid, 85 * MSS);
	ck_assert_uint_lt(mid, 100 * MSS);
	/* At K: back at the old maximum, within a segment or two. */
	cubic_rounds(&c, &now, 2.1);
	ck_assert_uint_ge(c.cwnd, 98 * MSS);
	ck_assert_uint_le(c.cwnd, 101 * MSS);
	/* Past it, growth speeds up again: the next 2 s add more than 2. */
	uint64_t at_k = c.cwnd;
	cubic_rounds(&c, &now, 2);
	uint64_t gain1 = c.cwnd - at_k;
	cubic_rounds(&c, &now, 2);
	ck_assert_uint_gt(gain1, 2 * MSS);
	ck_assert_uint_gt(c.cwnd - at_k - gain1, 2 * gain1);
}
END_TEST

START_TEST(test_cc_cubic_fast_convergence)
{
	struct rudp__cc c;

	rudp__cc_init(&c, &rudp__cc_cubic, MSS);
	c.cwnd = 100 * MSS;
	c.ops->on_loss(&c, 100 * MSS, 0, 0, 0);
	/*
	 * A second loss below the previous peak means another flow has
	 * taken a share: the peak is remembered lower, (1 + 0.7) / 2 of
	 * the window, so the flow gives bandwidth up faster.
	 */
	c.ops->on_loss(&c, 70 * MSS, 1 * S, 0, 0);
	ck_assert_uint_eq(c.cwnd, 49 * MSS);
	ck_assert_double_eq_tol(c.cubic.w_max, 70.0 * MSS * 0.85, 1);
}
END_TEST

START_TEST(test_cc_cubic_timeout_one_segment)
{
	struct rudp__cc c;

	rudp__cc_init(&c, &rudp__cc_cubic, MSS);
	c.cwnd = 40 * MSS;
	c.ops->on_rto(&c, 40 * MSS, 0);
	ck_assert_uint_eq(c.cwnd, MSS);
	ck_assert_uint_eq(c.ssthresh, 28 * MSS);
	ck_assert_uint_eq(c.cubic.epoch, RUDP__NEVER);
}
END_TEST

/* A window barely used (request/response) is not grown. */
START_TEST(test_cc_no_growth_when_application_limited)
{
	struct rudp__cc_ack a = {.acked = MSS, .flight = 4 * MSS,
				 .rtt = RUDP__NEVER};

	cc.ops->on_ack(&cc, &a);
	ck_assert_uint_eq(cc.cwnd, 10 * MSS);
	a.flight = 5 * MSS;
	cc.ops->on_ack(&cc, &a);
	ck_assert_uint_eq(cc.cwnd, 11 * MSS);
}
END_TEST

/*
 * The pacing rate spreads the window over the smoothed round trip, with
 * twice that in slow start and 1.2 times after; no round trip, no pacing.
 */
START_TEST(test_cc_pacing_rate)
{
	struct rudp__cc c;

	rudp__cc_init(&c, &rudp__cc_cubic, MSS);
	c.cwnd = 100 * MSS;
	ck_assert_uint_eq(rudp__cc_pacing_rate(&c, 0), 0);
	ck_assert_uint_eq(rudp__cc_pacing_rate(&c, 100 * MS), 2000000);
	c.ssthresh = 50 * MSS;
	ck_assert_uint_eq(rudp__cc_pacing_rate(&c, 100 * MS), 1200000);
	ck_assert_uint_eq(rudp__cc_pacing_rate(&c, 10 * MS), 12000000);
}
END_TEST

/*
 * The pacer at 1 MB/s (a byte a microsecond) with 1000-byte datagrams:
 * from idle a quantum (two segments, as 1 ms is less) goes at once, then
 * one datagram per millisecond; a second of sending moves what the rate
 * says, give or take the quantum.
 */
START_TEST(test_cc_pacer_spreads_datagrams)
{
	struct rudp__pacer p = {0};
	rudp__usec now = 10 * S;
	const uint64_t rate = 1000000;

	ck_assert_uint_eq(rudp__pacer_quantum(rate, MSS), 2 * MSS);
	ck_assert_uint_eq(rudp__pacer_quantum(100 * rate, MSS), 100000);
	ck_assert(rudp__pacer_ready(&p, now));
	unsigned burst = 0;
	while (rudp__pacer_ready(&p, now) && burst < 100) {
		rudp__pacer_sent(&p, MSS, rate, MSS, now);
		burst++;
	}
	ck_assert_uint_eq(burst, 3);
	ck_assert(!rudp__pacer_ready(&p, now + 999));
	ck_assert(rudp__pacer_ready(&p, now + 1000));
	/* Sending whenever allowed, in 10 us steps, for one second. */
	uint64_t bytes = 0;
	for (rudp__usec t = now + 1000; t < now + S; t += 10) {
		while (rudp__pacer_ready(&p, t)) {
			rudp__pacer_sent(&p, MSS, rate, MSS, t);
			bytes += MSS;
		}
	}
	ck_assert_uint_ge(bytes, rate - 2 * MSS);
	ck_assert_uint_le(bytes, rate + 2 * MSS);
	/* Rate 0: unpaced, always ready. */
	rudp__pacer_sent(&p, MSS, 0, MSS, now);
	ck_assert(rudp__pacer_ready(&p, now));
}
END_TEST

START_TEST(test_cc_find_by_name)
{
	ck_assert_ptr_eq(rudp__cc_find("newreno"), &rudp__cc_newreno);
	ck_assert_ptr_eq(rudp__cc_find("lossdiff"), &rudp__cc_lossdiff);
	ck_assert_ptr_eq(rudp__cc_find("cubic"), &rudp__cc_cubic);
	ck_assert_ptr_null(rudp__cc_find("bbr"));
	ck_assert_ptr_null(rudp__cc_find(""));
}
END_TEST

static Suite *cc_suite(void)
{
	Suite *s = suite_create("cc");
	TCase *tc;

	tc = tcase_create("newreno");
	tcase_add_checked_fixture(tc, setup_unit, NULL);
	tcase_add_test(tc, test_cc_initial_window_ten_segments);
	tcase_add_test(tc, test_cc_slow_start_grows_by_acked_bytes);
	tcase_add_test(tc, test_cc_slow_start_capped_at_two_segments_per_ack);
	tcase_add_test(tc, test_cc_congestion_avoidance_one_segment_per_window);
	tcase_add_test(tc, test_cc_loss_halves_to_half_flight);
	tcase_add_test(tc, test_cc_loss_floor_two_segments);
	tcase_add_test(tc, test_cc_rto_one_segment_and_halved_ssthresh);
	tcase_add_test(tc, test_cc_slow_start_after_rto_up_to_ssthresh);
	tcase_add_test(tc, test_cc_no_growth_in_recovery);
	tcase_add_test(tc, test_cc_no_growth_when_application_limited);
	suite_add_tcase(s, tc);

	tc = tcase_create("cubic");
	tcase_add_test(tc, test_cc_cubic_decrease_and_regrowth);
	tcase_add_test(tc, test_cc_cubic_fast_convergence);
	tcase_add_test(tc, test_cc_cubic_timeout_one_segment);
	suite_add_tcase(s, tc);

	tc = tcase_create("pacing");
	tcase_add_test(tc, test_cc_pacing_rate);
	tcase_add_test(tc, test_cc_pacer_spreads_datagrams);
	suite_add_tcase(s, tc);

	tc = tcase_create("lossdiff");
	tcase_add_test(tc, test_cc_lossdiff_ignores_random_loss);
	tcase_add_test(tc, test_cc_lossdiff_halves_on_queueing_loss);
	tcase_add_test(tc, test_cc_find_by_name);
	suite_add_tcase(s, tc);

	tc = tcase_create("bulk_transfer");
	tcase_add_checked_fixture(tc, setup_sim, teardown_sim);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_cc_slow_start_until_bottleneck_overflows);
	tcase_add_test(tc, test_cc_hystart_leaves_slow_start_before_overflow);
	tcase_add_test(tc, test_cc_random_loss_halves_each_episode);
	tcase_add_test(tc, test_cc_timeout_restarts_from_one_segment);
	tcase_add_test(tc, test_cc_repeated_timeouts_keep_ssthresh);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cc_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
