#include "rtt.h"

static rudp__usec clamp(const struct rudp__rtt *r, rudp__usec v)
{
	if (v < r->min_rto)
		return r->min_rto;
	if (v > r->max_rto)
		return r->max_rto;
	return v;
}

void rudp__rtt_init(struct rudp__rtt *r, rudp__usec initial, rudp__usec min,
		    rudp__usec max)
{
	r->srtt = 0;
	r->rttvar = 0;
	r->min_rto = min;
	r->max_rto = max;
	r->rto = clamp(r, initial);
	r->has_sample = false;
}

void rudp__rtt_sample(struct rudp__rtt *r, rudp__usec sample)
{
	if (!r->has_sample || sample < r->min_rtt)
		r->min_rtt = sample;
	r->latest = sample;
	if (!r->has_sample) {
		/* RFC 6298 (2.2): the first measurement seeds both estimates. */
		r->srtt = sample;
		r->rttvar = sample / 2;
		r->has_sample = true;
	} else {
		/* (2.3) with alpha = 1/8 and beta = 1/4, RTTVAR first. */
		rudp__usec dev = r->srtt > sample ? r->srtt - sample
						  : sample - r->srtt;
		r->rttvar = (3 * r->rttvar + dev) / 4;
		r->srtt = (7 * r->srtt + sample) / 8;
	}
	rudp__usec k = 4 * r->rttvar;
	r->rto = clamp(r, r->srtt + (k > RUDP__RTT_GRANULARITY
					     ? k : RUDP__RTT_GRANULARITY));
}

rudp__usec rudp__rtt_rto(const struct rudp__rtt *r, unsigned backoff)
{
	rudp__usec v = r->rto;

	/* (5.5): double per expiry; stop shifting once the cap is reached. */
	for (unsigned i = 0; i < backoff && v < r->max_rto; i++)
		v *= 2;
	return clamp(r, v);
}
