#include "cc.h"

#include <string.h>

/* RFC 6928's initial window: ten segments. */
#define INITIAL_SEGMENTS 10

void rudp__cc_init(struct rudp__cc *cc, const struct rudp__cc_ops *ops,
		   uint32_t mss)
{
	memset(cc, 0, sizeof(*cc));
	cc->ops = ops;
	cc->mss = mss;
	ops->init(cc);
}

static void newreno_init(struct rudp__cc *cc)
{
	cc->cwnd = (uint64_t)INITIAL_SEGMENTS * cc->mss;
	cc->ssthresh = UINT64_MAX;
}

static void newreno_on_ack(struct rudp__cc *cc, uint64_t acked,
			   rudp__usec now)
{
	(void)now;
	/* During recovery the window stays at ssthresh (RFC 6675). */
	if (cc->in_recovery)
		return;
	if (cc->cwnd < cc->ssthresh) {
		/*
		 * Slow start with byte counting (RFC 3465), at most two
		 * segments per ack so that a stretch ack cannot burst.
		 */
		cc->cwnd += acked < 2ull * cc->mss ? acked : 2ull * cc->mss;
		return;
	}
	/* Congestion avoidance: one segment per window of acked bytes. */
	cc->ca_acked += acked;
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
	cc->ssthresh = half_flight(cc, flight);
	cc->cwnd = cc->ssthresh;
	cc->ca_acked = 0;
}

/*
 * Loss differentiation.  A congested path drops packets because a queue is
 * full, and a full queue first makes the round trip longer; a lossy link
 * (radio, a policer dropping at random, the tests' nftables) drops them at
 * any queue length.  So a loss seen while the latest round trip is still
 * within a quarter (or 1 ms) of the smallest one is taken as random and
 * leaves the window alone; a loss with an inflated round trip halves it as
 * NewReno does, which keeps the algorithm fair to TCP at a shared
 * bottleneck.  Timeouts always count as congestion.
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
	newreno_on_loss(cc, flight, now, rtt, min_rtt);
}

static void newreno_on_rto(struct rudp__cc *cc, uint64_t flight)
{
	cc->ssthresh = half_flight(cc, flight);
	/* RFC 5681 (3.1): the loss window is one segment. */
	cc->cwnd = cc->mss;
	cc->ca_acked = 0;
}

const struct rudp__cc_ops rudp__cc_newreno = {
	.name = "newreno",
	.init = newreno_init,
	.on_ack = newreno_on_ack,
	.on_loss = newreno_on_loss,
	.on_rto = newreno_on_rto,
};

const struct rudp__cc_ops rudp__cc_lossdiff = {
	.name = "lossdiff",
	.init = newreno_init,
	.on_ack = newreno_on_ack,
	.on_loss = lossdiff_on_loss,
	.on_rto = newreno_on_rto,
};

const struct rudp__cc_ops *rudp__cc_find(const char *name)
{
	if (strcmp(name, rudp__cc_newreno.name) == 0)
		return &rudp__cc_newreno;
	if (strcmp(name, rudp__cc_lossdiff.name) == 0)
		return &rudp__cc_lossdiff;
	return NULL;
}
