#include "pacer.h"

uint64_t rudp__pacer_quantum(uint64_t rate, uint32_t mss)
{
	uint64_t q = rate / 1000;

	return q > 2ull * mss ? q : 2ull * mss;
}

void rudp__pacer_sent(struct rudp__pacer *p, size_t len, uint64_t rate,
		      uint32_t mss, rudp__usec now)
{
	if (!rate) {
		p->next = 0;
		return;
	}
	rudp__usec credit = rudp__pacer_quantum(rate, mss) * RUDP__SEC / rate;
	rudp__usec from = now > credit ? now - credit : 0;

	if (rudp__time_before(p->next, from))
		p->next = from;
	p->next += (rudp__usec)len * RUDP__SEC / rate;
}
