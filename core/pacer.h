/*
 * Pacing: spreads a window's datagrams over the round trip instead of
 * sending them back to back as acks arrive.  A burst of a whole window
 * lands in the bottleneck's queue at once and loses its tail there; paced,
 * the queue sees the rate, not the burst.
 *
 * A virtual clock: each datagram moves `next` on by its length at the
 * rate, and nothing paced goes out before `next`.  After an idle spell
 * `next` lags the present by at most the quantum's worth of time, so a
 * quantum may still go out at once: waking for every datagram costs a
 * timer and a system call each, which at gigabits would cost more than
 * the burst.
 */
#ifndef RUDP_CORE_PACER_H
#define RUDP_CORE_PACER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "seq.h"

struct rudp__pacer {
	rudp__usec next; /* earliest time of the next paced datagram */
};

static inline bool rudp__pacer_ready(const struct rudp__pacer *p,
				     rudp__usec now)
{
	return rudp__time_reached(now, p->next);
}

/*
 * The burst allowed at `rate` bytes per second: a millisecond's worth,
 * as Linux sizes its paced TSO bursts, and at least two segments.
 */
uint64_t rudp__pacer_quantum(uint64_t rate, uint32_t mss);

/* A datagram of len bytes went out at now; rate 0 means unpaced. */
void rudp__pacer_sent(struct rudp__pacer *p, size_t len, uint64_t rate,
		      uint32_t mss, rudp__usec now);

#endif
