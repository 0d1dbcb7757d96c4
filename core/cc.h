/*
 * Congestion control, pluggable: the connection reports acknowledgments,
 * losses and timeouts; the algorithm keeps the congestion window (bytes).
 * NewReno (RFC 5681, with SACK-driven recovery as in RFC 6675) is the one
 * algorithm today; the interface is what later ones plug into.
 */
#ifndef RUDP_CORE_CC_H
#define RUDP_CORE_CC_H

#include <stdint.h>

#include "seq.h"

struct rudp__cc;

struct rudp__cc_ops {
	const char *name;
	void (*init)(struct rudp__cc *cc);
	/* `acked` new bytes were cumulatively acknowledged. */
	void (*on_ack)(struct rudp__cc *cc, uint64_t acked, rudp__usec now);
	/*
	 * Loss detected by SACK, duplicate acks or RACK, once per recovery
	 * episode; the latest and smallest RTT samples come along so an
	 * algorithm can tell a full queue from a lossy link.
	 */
	void (*on_loss)(struct rudp__cc *cc, uint64_t flight, rudp__usec now,
			rudp__usec rtt, rudp__usec min_rtt);
	/* The retransmission timer expired. */
	void (*on_rto)(struct rudp__cc *cc, uint64_t flight);
};

struct rudp__cc {
	const struct rudp__cc_ops *ops;
	uint32_t mss;
	uint64_t cwnd;        /* bytes */
	uint64_t ssthresh;    /* bytes */
	uint64_t ca_acked;    /* bytes acked toward the next increase */
	int in_recovery;      /* set by the connection during fast recovery */
	uint64_t random_losses; /* (lossdiff) losses not taken as congestion */
};

extern const struct rudp__cc_ops rudp__cc_newreno;
extern const struct rudp__cc_ops rudp__cc_lossdiff;

/* The algorithm called name ("newreno", "lossdiff"), or NULL. */
const struct rudp__cc_ops *rudp__cc_find(const char *name);

void rudp__cc_init(struct rudp__cc *cc, const struct rudp__cc_ops *ops,
		   uint32_t mss);

#endif
