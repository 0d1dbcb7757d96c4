/*
 * The retransmit queue: every sent segment that occupies sequence space
 * (SYN, data, FIN) stays here, oldest first, until a cumulative ack covers
 * it.  This is the seed design's "reliability layer": the reply a packet
 * expects is the ack of its sequence number, so one mechanism serves the
 * handshake and the byte stream.  The queue also keeps the SACK scoreboard
 * (RFC 6675): which segments the peer holds, which are deemed lost, and how
 * many bytes are in flight.
 */
#ifndef RUDP_CORE_RTX_H
#define RUDP_CORE_RTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "seq.h"
#include "wire.h"

struct rudp__seg {
	struct rudp__seg *next;
	uint32_t seq;
	uint32_t len;       /* sequence space taken: SYN and FIN count one */
	uint8_t flags;      /* RUDP__F_SYN / RUDP__F_FIN it carries */
	rudp__usec sent_at; /* last transmission */
	unsigned ntx;       /* transmissions so far */
	bool needs_tx;      /* never sent, or deemed lost: (re)send it */
	bool sacked;        /* the peer holds it beyond the cumulative ack */
};

struct rudp__rtx {
	struct rudp__seg *head, *tail;
	size_t count;
	size_t nneed;       /* segments with needs_tx */
	uint64_t flight;    /* bytes sent, neither sacked nor deemed lost */
	/*
	 * RACK (RFC 8985): the latest transmission known to have arrived,
	 * and the round trip it took.  Anything sent before it that has not
	 * arrived within that round trip (plus a reordering allowance) is
	 * lost, retransmissions included.
	 */
	rudp__usec rack_xmit;
	rudp__usec rack_rtt;
	rudp__usec min_rtt; /* kept current by the connection */
	/*
	 * Retransmissions the acks showed were not needed (the original
	 * arrived first), counted for the connection to act on and clear.
	 */
	unsigned spurious;
};

void rudp__rtx_init(struct rudp__rtx *q);
void rudp__rtx_clear(struct rudp__rtx *q);

/* Appends a new segment, queued for its first transmission. */
int rudp__rtx_push(struct rudp__rtx *q, uint32_t seq, uint32_t len,
		   uint8_t flags);

/*
 * Drops every segment that `ack` fully covers.  Returns how many were
 * dropped; *rtt gets a sample from the newest of them if that one was sent
 * exactly once and is not queued again (Karn's rule), else RUDP__NEVER.
 * tsecr is the timestamp the ack echoes (0: none): one older than a
 * dropped segment's retransmission shows the original arrived (RFC 3522).
 */
size_t rudp__rtx_ack(struct rudp__rtx *q, uint32_t ack, uint32_t tsecr,
		     rudp__usec now, rudp__usec *rtt);

/* Marks segments inside the SACK blocks as held by the peer. */
size_t rudp__rtx_sack(struct rudp__rtx *q, const struct rudp__sack *blocks,
		      unsigned n, rudp__usec now);

/*
 * RACK: deems lost every outstanding segment sent before the latest one
 * delivered and unanswered for rack_rtt + reo_wnd by now.  Returns how
 * many were newly deemed lost; *next gets the time the next one would be
 * (RUDP__NEVER if none is pending).
 */
size_t rudp__rtx_rack(struct rudp__rtx *q, rudp__usec now, rudp__usec reo_wnd,
		      rudp__usec *next);

/* Queues the newest outstanding segment again (a tail loss probe). */
bool rudp__rtx_probe_tail(struct rudp__rtx *q);

/*
 * Deems lost every sent, unsacked segment with at least `dupthresh`
 * sacked segments after it (RFC 6675's DupThresh rule).  Returns how many
 * were newly deemed lost.
 */
size_t rudp__rtx_detect_loss(struct rudp__rtx *q, unsigned dupthresh);

/* Deems the oldest outstanding segment lost (three duplicate acks). */
bool rudp__rtx_lose_head(struct rudp__rtx *q);

/* Queues every unsacked segment again (after a retransmission timeout). */
void rudp__rtx_requeue_all(struct rudp__rtx *q);

/* The oldest segment waiting to be (re)sent, or NULL. */
struct rudp__seg *rudp__rtx_next(const struct rudp__rtx *q);

/* Records a transmission of s at now. */
void rudp__rtx_sent(struct rudp__rtx *q, struct rudp__seg *s, rudp__usec now);

static inline bool rudp__rtx_empty(const struct rudp__rtx *q)
{
	return q->head == NULL;
}

#endif
