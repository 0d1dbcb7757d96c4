#include "cc.h"

#include <math.h>
#include <string.h>

/* RFC 6928's initial window: ten segments. */
#define INITIAL_SEGMENTS 10

/* RFC 9406's constants. */
#define HS_MIN_RTT_THRESH (4 * RUDP__MSEC)
#define HS_MAX_RTT_THRESH (16 * RUDP__MSEC)
#define HS_MIN_RTT_DIVISOR 8
#define HS_N_RTT_SAMPLE 8
#define HS_CSS_GROWTH_DIVISOR 4
#define HS_CSS_ROUNDS 5

/* RFC 9438's constants: the cubic's scale (segments/s^3) and decrease. */
#define CUBIC_C 0.4
#define CUBIC_BETA 0.7

void rudp__cc_init(struct rudp__cc *cc, const struct rudp__cc_ops *ops,
		   uint32_t mss)
{
	memset(cc, 0, sizeof(*cc));
	cc->ops = ops;
	cc->mss = mss;
	cc->hs.cur_min = cc->hs.last_min = RUDP__NEVER;
	cc->cubic.epoch = RUDP__NEVER;
	ops->init(cc);
}

static void common_init(struct rudp__cc *cc)
{
	cc->cwnd = (uint64_t)INITIAL_SEGMENTS * cc->mss;
	cc->ssthresh = UINT64_MAX;
}

/*
 * Growth is earned by using the window: a program that writes a little at
 * a time (request/response) leaves most of it idle, and a window grown
 * without being tested would later be sent as one unpaced burst.  Half
 * used counts, as in Linux's slow start.
 */
static bool cwnd_limited(const struct rudp__cc *cc,
			 const struct rudp__cc_ack *a)
{
	return 2 * a->flight >= cc->cwnd;
}

/*
 * Slow start with byte counting (RFC 3465), at most two segments per ack
 * so that a stretch ack cannot burst, and HyStart++ watching the round
 * trip: a rise of an eighth (4 to 16 ms) over the previous round's minimum
 * moves to conservative slow start, a quarter of the growth, and five
 * rounds of it without the round trip falling back end slow start.
 */
static void slow_start(struct rudp__cc *cc, const struct rudp__cc_ack *a)
{
	struct rudp__hystart *hs = &cc->hs;
	uint64_t inc = a->acked < 2ull * cc->mss ? a->acked : 2ull * cc->mss;

	if (!hs->round_open || rudp__seq_ge(a->ack, hs->round_end)) {
		hs->round_open = true;
		hs->round_end = a->snd_nxt;
		hs->last_min = hs->cur_min;
		hs->cur_min = RUDP__NEVER;
		hs->samples = 0;
		if (hs->in_css && ++hs->css_rounds >= HS_CSS_ROUNDS) {
			hs->in_css = false;
			cc->hystart_exits++;
			cc->ssthresh = cc->cwnd;
			return;
		}
	}
	if (a->rtt != RUDP__NEVER) {
		hs->cur_min = rudp__time_min(hs->cur_min, a->rtt);
		hs->samples++;
	}
	if (hs->samples >= HS_N_RTT_SAMPLE && hs->cur_min != RUDP__NEVER &&
	    hs->last_min != RUDP__NEVER) {
		rudp__usec th = hs->last_min / HS_MIN_RTT_DIVISOR;
		if (th < HS_MIN_RTT_THRESH)
			th = HS_MIN_RTT_THRESH;
		if (th > HS_MAX_RTT_THRESH)
			th = HS_MAX_RTT_THRESH;
		if (!hs->in_css && hs->cur_min >= hs->last_min + th) {
			hs->in_css = true;
			hs->css_rounds = 0;
			hs->css_baseline = hs->cur_min;
		} else if (hs->in_css && hs->cur_min < hs->css_baseline) {
			/* The rise was a blip: back to doubling. */
			hs->in_css = false;
		}
	}
	if (cwnd_limited(cc, a))
		cc->cwnd += hs->in_css ? inc / HS_CSS_GROWTH_DIVISOR : inc;
}

/*
 * What every algorithm does with an ack before its own congestion
 * avoidance: nothing during recovery (the window stays at ssthresh, RFC
 * 6675), slow start below ssthresh.  True when avoidance is to grow.
 */
static bool avoidance(struct rudp__cc *cc, const struct rudp__cc_ack *a)
{
	if (cc->in_recovery)
		return false;
	if (cc->cwnd < cc->ssthresh) {
		slow_start(cc, a);
		return false;
	}
	return cwnd_limited(cc, a);
}

static void newreno_on_ack(struct rudp__cc *cc, const struct rudp__cc_ack *a)
{
	if (!avoidance(cc, a))
		return;
	/* Congestion avoidance: one segment per window of acked bytes. */
	cc->ca_acked += a->acked;
	if (cc->ca_acked >= cc->cwnd) {
		cc->ca_acked -= cc->cwnd;
		cc->cwnd += cc->mss;
	}
}

static uint64_t half_flight(const struct rudp__cc *cc, uint64_t flight)
{
	uint64_t h = flight / 2;

	return h > 2ull * cc->mss ? h : 2ull * cc->mss;
}

static void newreno_on_loss(struct rudp__cc *cc, uint64_t flight,
			    rudp__usec now, rudp__usec rtt, rudp__usec min_rtt)
{
	(void)now;
	(void)rtt;
	(void)min_rtt;
	cc->hs.in_css = false;
	cc->ssthresh = half_flight(cc, flight);
	cc->cwnd = cc->ssthresh;
	cc->ca_acked = 0;
}

static void newreno_on_rto(struct rudp__cc *cc, uint64_t flight,
			   rudp__usec now)
{
	(void)now;
	cc->hs.in_css = false;
	cc->ssthresh = half_flight(cc, flight);
	/* RFC 5681 (3.1): the loss window is one segment. */
	cc->cwnd = cc->mss;
	cc->ca_acked = 0;
}

/* W_cubic(t) of RFC 9438 in bytes, t in seconds since the epoch. */
static double w_cubic(const struct rudp__cc *cc, double t)
{
	double d = t - cc->cubic.k;

	return CUBIC_C * d * d * d * cc->mss + cc->cubic.w_max;
}

/* Starts a congestion-avoidance epoch at the present window. */
static void cubic_epoch(struct rudp__cc *cc, rudp__usec now)
{
	struct rudp__cubic *cu = &cc->cubic;

	cu->epoch = now;
	cu->w_est = (double)cc->cwnd;
	if (cu->w_max <= (double)cc->cwnd) {
		/* Above the old maximum (or none yet): probe from here. */
		cu->w_max = (double)cc->cwnd;
		cu->k = 0;
	} else {
		cu->k = cbrt((cu->w_max - (double)cc->cwnd) / cc->mss / CUBIC_C);
	}
}

static void cubic_on_ack(struct rudp__cc *cc, const struct rudp__cc_ack *a)
{
	struct rudp__cubic *cu = &cc->cubic;

	if (!avoidance(cc, a))
		return;
	if (cu->epoch == RUDP__NEVER)
		cubic_epoch(cc, a->now);
	double cwnd = (double)cc->cwnd;
	double t = (double)(a->now - cu->epoch) / RUDP__SEC;
	double target = w_cubic(cc, t + (double)a->srtt / RUDP__SEC);

	if (target < cwnd)
		target = cwnd;
	if (target > 1.5 * cwnd)
		target = 1.5 * cwnd;
	/* The Reno-friendly region: never slower than AIMD(alpha, beta). */
	cu->w_est += 3.0 * (1 - CUBIC_BETA) / (1 + CUBIC_BETA) *
		     (double)a->acked * cc->mss / cwnd;
	double next = w_cubic(cc, t) < cu->w_est
			      ? cu->w_est
			      : cwnd + (target - cwnd) * (double)a->acked / cwnd;
	/* Fractions of a byte add up until they make one. */
	if (next > cwnd) {
		double inc = next - cwnd + cu->frac;
		cc->cwnd += (uint64_t)inc;
		cu->frac = inc - floor(inc);
	}
}

/* The multiplicative decrease, shared by loss and timeout. */
static void cubic_decrease(struct rudp__cc *cc)
{
	struct rudp__cubic *cu = &cc->cubic;
	double cwnd = (double)cc->cwnd;

	cc->hs.in_css = false;
	/* Fast convergence: a flow that lost below its last peak yields. */
	cu->w_max = cwnd < cu->w_max ? cwnd * (1 + CUBIC_BETA) / 2 : cwnd;
	uint64_t ss = (uint64_t)(cwnd * CUBIC_BETA);
	cc->ssthresh = ss > 2ull * cc->mss ? ss : 2ull * cc->mss;
	cu->frac = 0;
	cu->epoch = RUDP__NEVER;
}

static void cubic_on_loss(struct rudp__cc *cc, uint64_t flight,
			  rudp__usec now, rudp__usec rtt, rudp__usec min_rtt)
{
	(void)flight;
	(void)rtt;
	(void)min_rtt;
	cubic_decrease(cc);
	cc->cwnd = cc->ssthresh;
	cubic_epoch(cc, now);
}

static void cubic_on_rto(struct rudp__cc *cc, uint64_t flight, rudp__usec now)
{
	(void)flight;
	(void)now;
	cubic_decrease(cc);
	/* The epoch starts when slow start reaches ssthresh again. */
	cc->cwnd = cc->mss;
}

/*
 * Loss differentiation.  A congested path drops packets because a queue is
 * full, and a full queue first makes the round trip longer; a lossy link
 * (radio, a policer dropping at random, the tests' nftables) drops them at
 * any queue length.  So a loss seen while the latest round trip is still
 * within a quarter (or 1 ms) of the smallest one is taken as random and
 * leaves the window alone; a loss with an inflated round trip is CUBIC's,
 * which keeps the algorithm fair to TCP at a shared bottleneck.  Timeouts
 * always count as congestion.
 */
static void lossdiff_on_loss(struct rudp__cc *cc, uint64_t flight,
			     rudp__usec now, rudp__usec rtt,
			     rudp__usec min_rtt)
{
	rudp__usec slack = min_rtt / 4 > RUDP__MSEC ? min_rtt / 4 : RUDP__MSEC;

	if (min_rtt && rtt <= min_rtt + slack) {
		cc->random_losses++;
		return;
	}
	cubic_on_loss(cc, flight, now, rtt, min_rtt);
}

const struct rudp__cc_ops rudp__cc_newreno = {
	.name = "newreno",
	.init = common_init,
	.on_ack = newreno_on_ack,
	.on_loss = newreno_on_loss,
	.on_rto = newreno_on_rto,
};

const struct rudp__cc_ops rudp__cc_cubic = {
	.name = "cubic",
	.init = common_init,
	.on_ack = cubic_on_ack,
	.on_loss = cubic_on_loss,
	.on_rto = cubic_on_rto,
};

const struct rudp__cc_ops rudp__cc_lossdiff = {
	.name = "lossdiff",
	.init = common_init,
	.on_ack = cubic_on_ack,
	.on_loss = lossdiff_on_loss,
	.on_rto = cubic_on_rto,
};

const struct rudp__cc_ops *const rudp__cc_default = &rudp__cc_lossdiff;

const struct rudp__cc_ops *rudp__cc_find(const char *name)
{
	static const struct rudp__cc_ops *const all[] = {
		&rudp__cc_newreno, &rudp__cc_cubic, &rudp__cc_lossdiff};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(name, all[i]->name) == 0)
			return all[i];
	return NULL;
}

uint64_t rudp__cc_pacing_rate(const struct rudp__cc *cc, rudp__usec srtt)
{
	if (!srtt)
		return 0;
	/* Gains in tenths: 2.0 in slow start, 1.2 in congestion avoidance. */
	uint64_t gain = cc->cwnd < cc->ssthresh ? 20 : 12;

	return cc->cwnd * gain * RUDP__SEC / (10 * srtt);
}
