/*
 * The receive side's reorder buffer: one ring of bytes indexed by sequence
 * number, holding the in-order bytes the program has not taken yet and, past
 * them, whatever arrived early.  A short sorted list of ranges says which
 * early bytes are present; it is also where SACK blocks come from.  Memory
 * is the ring alone, fixed per connection, so a peer can never make us grow.
 * In-order bytes the program takes as they arrive are never stored at all
 * (rudp__rcvbuf_pass): the ring is for what waits.
 */
#ifndef RUDP_CORE_RCVBUF_H
#define RUDP_CORE_RCVBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/*
 * Holes we track at most; a segment that would need more is dropped.
 * Enough for a full 1 MiB window of 1400-byte segments at heavy loss.
 */
#define RUDP__RCV_MAX_RANGES 1024

struct rudp__range {
	uint32_t start, end; /* [start, end) */
};

struct rudp__rcvbuf {
	uint8_t *buf;      /* allocated on first data: idle connections pay nothing */
	size_t cap;
	uint32_t base;     /* sequence number of the oldest byte not yet taken */
	size_t head;       /* its index in buf */
	uint32_t nxt;      /* first byte not yet received in order (rcv_nxt) */
	struct rudp__range *ooo; /* beyond nxt, sorted; allocated with buf */
	unsigned nooo;
	unsigned last;     /* index in ooo of the most recently changed range */
};

void rudp__rcvbuf_init(struct rudp__rcvbuf *rb, size_t cap, uint32_t nxt);
void rudp__rcvbuf_free(struct rudp__rcvbuf *rb);

/* Bytes of room past nxt: the window we may advertise. */
static inline uint32_t rudp__rcvbuf_window(const struct rudp__rcvbuf *rb)
{
	return (uint32_t)(rb->cap - (rb->nxt - rb->base));
}

/* In-order bytes waiting for the program. */
static inline size_t rudp__rcvbuf_ready(const struct rudp__rcvbuf *rb)
{
	return rb->nxt - rb->base;
}

/*
 * Stores the part of [seq, seq+len) that lies in the window.  Returns how
 * many bytes nxt advanced by, or -ENOMEM when the ring cannot be allocated.
 * *dup is set when no new byte was stored at all.
 */
int rudp__rcvbuf_insert(struct rudp__rcvbuf *rb, uint32_t seq,
			const uint8_t *data, size_t len, bool *dup);

/*
 * The n bytes at nxt went to the program without being stored (the caller
 * handed them over directly, which keeps the order only while nothing is
 * ready, and at most the window): the window moves past them.  Returns how
 * many bytes nxt advanced by, n or more when they closed a gap before
 * bytes that arrived early.
 */
int rudp__rcvbuf_pass(struct rudp__rcvbuf *rb, size_t n);

/* The contiguous run of ready bytes at the front, and how long it is. */
size_t rudp__rcvbuf_peek(const struct rudp__rcvbuf *rb, const uint8_t **p);

/* The program took n ready bytes. */
void rudp__rcvbuf_consume(struct rudp__rcvbuf *rb, size_t n);

/*
 * Fills up to max SACK blocks, the most recently changed range first as
 * RFC 2018 asks.  Returns how many.
 */
unsigned rudp__rcvbuf_sack(const struct rudp__rcvbuf *rb,
			   struct rudp__sack *out, unsigned max);

#endif
