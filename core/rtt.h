/*
 * Round-trip time estimation and the retransmission timeout, per RFC 6298.
 * Callers obey Karn's rule by feeding only samples from segments that were
 * sent once (or from echoed timestamps, which are unambiguous).
 */
#ifndef RUDP_CORE_RTT_H
#define RUDP_CORE_RTT_H

#include <stdbool.h>

#include "seq.h"

/* Clock granularity G of RFC 6298 section 2; our clock ticks in us. */
#define RUDP__RTT_GRANULARITY UINT64_C(1000)

struct rudp__rtt {
	rudp__usec srtt;
	rudp__usec rttvar;
	rudp__usec rto;     /* current base RTO, before backoff */
	rudp__usec min_rto;
	rudp__usec min_rtt;  /* smallest sample seen: RACK's reordering window */
	rudp__usec latest;   /* the most recent sample */
	rudp__usec max_rto;
	bool has_sample;
};

void rudp__rtt_init(struct rudp__rtt *r, rudp__usec initial, rudp__usec min,
		    rudp__usec max);
void rudp__rtt_sample(struct rudp__rtt *r, rudp__usec sample);

/* The timeout after `backoff` consecutive expiries: rto * 2^backoff, capped. */
rudp__usec rudp__rtt_rto(const struct rudp__rtt *r, unsigned backoff);

#endif
