/*
 * The retransmit queue: every sent segment that occupies sequence space
 * (SYN, FIN, data) stays here, oldest first, until a cumulative ack covers
 * it.  This is the seed design's "reliability layer": the reply a packet
 * expects is simply the ack of its sequence number, so one mechanism serves
 * the handshake now and the byte stream later.
 */
#ifndef RUDP_CORE_RTX_H
#define RUDP_CORE_RTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "seq.h"

struct rudp__seg {
	struct rudp__seg *next;
	uint32_t seq;
	uint32_t len;       /* sequence space taken: SYN and FIN count one */
	uint8_t flags;      /* RUDP__F_SYN / RUDP__F_FIN it carries */
	rudp__usec sent_at; /* last transmission */
	unsigned ntx;       /* transmissions so far */
	bool needs_tx;      /* queued for (re)transmission */
};

struct rudp__rtx {
	struct rudp__seg *head, *tail;
	size_t count;
};

void rudp__rtx_init(struct rudp__rtx *q);
void rudp__rtx_clear(struct rudp__rtx *q);

/* Appends a new segment, queued for its first transmission. */
int rudp__rtx_push(struct rudp__rtx *q, uint32_t seq, uint32_t len,
		   uint8_t flags);

/*
 * Drops every segment that `ack` fully covers.  Returns how many were
 * dropped; *rtt gets a sample from the newest of them if that one was sent
 * exactly once (Karn's rule), else RUDP__NEVER.
 */
size_t rudp__rtx_ack(struct rudp__rtx *q, uint32_t ack, rudp__usec now,
		     rudp__usec *rtt);

/* Queues every outstanding segment again (after a retransmission timeout). */
void rudp__rtx_requeue_all(struct rudp__rtx *q);

/* The oldest segment waiting to be (re)sent, or NULL. */
struct rudp__seg *rudp__rtx_next(const struct rudp__rtx *q);

/* Records a transmission of s at now. */
void rudp__rtx_sent(struct rudp__seg *s, rudp__usec now);

static inline bool rudp__rtx_empty(const struct rudp__rtx *q)
{
	return q->head == NULL;
}

#endif
