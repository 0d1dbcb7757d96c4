/*
 * Congestion control, pluggable: the connection reports acknowledgments,
 * losses and timeouts; the algorithm keeps the congestion window (bytes)
 * and says how fast to pace it out.
 *
 * - "newreno": RFC 5681 with SACK-driven recovery (RFC 6675).
 * - "cubic":   RFC 9438, the Linux default, so that a rudp flow and a TCP
 *              flow sharing a bottleneck grow and back off alike.
 * - "lossdiff": CUBIC that does not take a loss seen at an empty queue
 *              (round trip near its minimum) for congestion.
 *
 * All three leave slow start by HyStart++ (RFC 9406): when the round trip
 * grows while the window doubles, the flow is filling a queue, and going on
 * doubling would overflow it by up to a whole window.
 */
#ifndef RUDP_CORE_CC_H
#define RUDP_CORE_CC_H

#include <stdbool.h>
#include <stdint.h>

#include "seq.h"

struct rudp__cc;

/* What one acceptable ack tells the algorithm. */
struct rudp__cc_ack {
	uint64_t acked;     /* bytes newly acked, cumulatively */
	uint64_t flight;    /* bytes in flight before this ack */
	rudp__usec now;
	rudp__usec rtt;     /* this ack's round-trip sample, or RUDP__NEVER */
	rudp__usec srtt;    /* smoothed round trip, 0 before the first */
	uint32_t ack;       /* the cumulative ack (sequence number) */
	uint32_t snd_nxt;   /* the next sequence number to be sent */
};

struct rudp__cc_ops {
	const char *name;
	void (*init)(struct rudp__cc *cc);
	void (*on_ack)(struct rudp__cc *cc, const struct rudp__cc_ack *a);
	/*
	 * Loss detected by SACK, duplicate acks or RACK, once per recovery
	 * episode; the latest and smallest RTT samples come along so an
	 * algorithm can tell a full queue from a lossy link.
	 */
	void (*on_loss)(struct rudp__cc *cc, uint64_t flight, rudp__usec now,
			rudp__usec rtt, rudp__usec min_rtt);
	/* The retransmission timer expired. */
	void (*on_rto)(struct rudp__cc *cc, uint64_t flight, rudp__usec now);
};

/* HyStart++ (RFC 9406) round tracking. */
struct rudp__hystart {
	uint32_t round_end;       /* a round ends when this is acked */
	bool round_open;
	bool in_css;              /* conservative slow start */
	unsigned css_rounds;
	unsigned samples;         /* RTT samples this round */
	rudp__usec cur_min, last_min, css_baseline;
};

/* CUBIC (RFC 9438) state; windows in bytes, times in microseconds. */
struct rudp__cubic {
	double w_max;   /* window before the last reduction */
	double k;       /* seconds from the epoch to w_max again */
	double w_est;   /* the Reno-friendly estimate */
	double frac;    /* growth below one byte, carried to the next ack */
	rudp__usec epoch; /* RUDP__NEVER: no congestion-avoidance epoch yet */
};

struct rudp__cc {
	const struct rudp__cc_ops *ops;
	uint32_t mss;
	uint64_t cwnd;        /* bytes */
	uint64_t ssthresh;    /* bytes */
	uint64_t ca_acked;    /* bytes acked toward the next increase */
	int in_recovery;      /* set by the connection during fast recovery */
	uint64_t random_losses; /* (lossdiff) losses not taken as congestion */
	uint64_t hystart_exits; /* slow starts ended by a growing round trip */
	struct rudp__hystart hs;
	struct rudp__cubic cubic;
};

extern const struct rudp__cc_ops rudp__cc_newreno;
extern const struct rudp__cc_ops rudp__cc_cubic;
extern const struct rudp__cc_ops rudp__cc_lossdiff;
/* What connections use unless RUDP_CC names another. */
extern const struct rudp__cc_ops *const rudp__cc_default;

/* The algorithm called name ("newreno", "cubic", "lossdiff"), or NULL. */
const struct rudp__cc_ops *rudp__cc_find(const char *name);

void rudp__cc_init(struct rudp__cc *cc, const struct rudp__cc_ops *ops,
		   uint32_t mss);

/*
 * The pacing rate in bytes per second for a smoothed round trip srtt: the
 * window spread over a round trip, with Linux's headroom (twice that in
 * slow start so the window can still double, 1.2 times after), or 0 for
 * "do not pace" when there is no round trip yet.
 */
uint64_t rudp__cc_pacing_rate(const struct rudp__cc *cc, rudp__usec srtt);

#endif
