#include "rcvbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "seq.h"

void rudp__rcvbuf_init(struct rudp__rcvbuf *rb, size_t cap, uint32_t nxt)
{
	memset(rb, 0, sizeof(*rb));
	rb->cap = cap;
	rb->base = rb->nxt = nxt;
}

void rudp__rcvbuf_free(struct rudp__rcvbuf *rb)
{
	free(rb->buf);
	free(rb->ooo);
	rb->buf = NULL;
	rb->ooo = NULL;
	rb->nooo = 0;
}

/* Copies len bytes to sequence number seq's place in the ring. */
static void put(struct rudp__rcvbuf *rb, uint32_t seq, const uint8_t *data,
		size_t len)
{
	size_t at = (rb->head + (seq - rb->base)) % rb->cap;
	size_t first = rb->cap - at < len ? rb->cap - at : len;

	memcpy(rb->buf + at, data, first);
	memcpy(rb->buf, data + first, len - first);
}

/* Records [s, e) as present beyond nxt, merging with its neighbours. */
static int add_range(struct rudp__rcvbuf *rb, uint32_t s, uint32_t e)
{
	unsigned i = 0;

	while (i < rb->nooo && rudp__seq_lt(rb->ooo[i].end, s))
		i++;
	/* Overlapping or touching ranges from i on fold into [s, e). */
	unsigned j = i;
	while (j < rb->nooo && rudp__seq_le(rb->ooo[j].start, e)) {
		if (rudp__seq_lt(rb->ooo[j].start, s))
			s = rb->ooo[j].start;
		if (rudp__seq_gt(rb->ooo[j].end, e))
			e = rb->ooo[j].end;
		j++;
	}
	if (i == j) {
		if (rb->nooo == RUDP__RCV_MAX_RANGES)
			return -ENOBUFS;
		memmove(&rb->ooo[i + 1], &rb->ooo[i],
			(rb->nooo - i) * sizeof(rb->ooo[0]));
		rb->nooo++;
	} else if (j > i + 1) {
		memmove(&rb->ooo[i + 1], &rb->ooo[j],
			(rb->nooo - j) * sizeof(rb->ooo[0]));
		rb->nooo -= j - i - 1;
	}
	rb->ooo[i].start = s;
	rb->ooo[i].end = e;
	rb->last = i;
	return 0;
}

/*
 * Moves nxt to e, the end of bytes just taken in order, and on over every
 * early range that now follows without a gap.  Returns how far it moved.
 */
static uint32_t advance(struct rudp__rcvbuf *rb, uint32_t e)
{
	uint32_t old = rb->nxt;

	rb->nxt = e;
	while (rb->nooo && rudp__seq_le(rb->ooo[0].start, rb->nxt)) {
		if (rudp__seq_gt(rb->ooo[0].end, rb->nxt))
			rb->nxt = rb->ooo[0].end;
		memmove(&rb->ooo[0], &rb->ooo[1],
			(rb->nooo - 1) * sizeof(rb->ooo[0]));
		rb->nooo--;
		rb->last = 0;
	}
	return rb->nxt - old;
}

int rudp__rcvbuf_insert(struct rudp__rcvbuf *rb, uint32_t seq,
			const uint8_t *data, size_t len, bool *dup)
{
	uint32_t lo = rb->nxt, hi = rb->base + (uint32_t)rb->cap;
	uint32_t s = seq, e = seq + (uint32_t)len;

	*dup = true;
	/* Trim to the window [nxt, base + cap). */
	if (rudp__seq_lt(s, lo)) {
		if (rudp__seq_le(e, lo))
			return 0;
		data += lo - s;
		s = lo;
	}
	if (rudp__seq_gt(e, hi))
		e = hi;
	if (!rudp__seq_lt(s, e))
		return 0;
	if (!rb->buf) {
		rb->buf = malloc(rb->cap);
		rb->ooo = malloc(RUDP__RCV_MAX_RANGES * sizeof(*rb->ooo));
		if (!rb->buf || !rb->ooo) {
			rudp__rcvbuf_free(rb);
			return -ENOMEM;
		}
	}
	/* Bytes already held beyond nxt make this a duplicate, not news. */
	for (unsigned i = 0; i < rb->nooo; i++)
		if (rudp__seq_le(rb->ooo[i].start, s) &&
		    rudp__seq_ge(rb->ooo[i].end, e))
			return 0;
	if (s != rb->nxt && add_range(rb, s, e) < 0)
		return 0;
	put(rb, s, data, e - s);
	*dup = false;
	if (s != rb->nxt)
		return 0;
	return (int)advance(rb, e);
}

int rudp__rcvbuf_pass(struct rudp__rcvbuf *rb, size_t n)
{
	/*
	 * Nothing is ready, so base is nxt: both move past the bytes, and
	 * head with them, which keeps every early byte at its index.
	 */
	rb->base += (uint32_t)n;
	rb->head = (rb->head + n) % rb->cap;
	return (int)advance(rb, rb->nxt + (uint32_t)n);
}

size_t rudp__rcvbuf_peek(const struct rudp__rcvbuf *rb, const uint8_t **p)
{
	size_t ready = rudp__rcvbuf_ready(rb);

	if (!ready)
		return 0;
	*p = rb->buf + rb->head;
	return rb->cap - rb->head < ready ? rb->cap - rb->head : ready;
}

void rudp__rcvbuf_consume(struct rudp__rcvbuf *rb, size_t n)
{
	rb->base += (uint32_t)n;
	rb->head = (rb->head + n) % rb->cap;
}

unsigned rudp__rcvbuf_sack(const struct rudp__rcvbuf *rb,
			   struct rudp__sack *out, unsigned max)
{
	unsigned n = 0;

	if (!rb->nooo || !max)
		return 0;
	unsigned first = rb->last < rb->nooo ? rb->last : 0;
	out[n].start = rb->ooo[first].start;
	out[n].end = rb->ooo[first].end;
	n++;
	for (unsigned i = 0; i < rb->nooo && n < max; i++) {
		if (i == first)
			continue;
		out[n].start = rb->ooo[i].start;
		out[n].end = rb->ooo[i].end;
		n++;
	}
	return n;
}
