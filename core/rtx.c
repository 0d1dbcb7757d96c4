#include "rtx.h"

#include <errno.h>
#include <stdlib.h>

void rudp__rtx_init(struct rudp__rtx *q)
{
	q->head = q->tail = NULL;
	q->count = q->nneed = 0;
	q->flight = 0;
	q->rack_xmit = 0;
	q->rack_rtt = 0;
	q->spurious = 0;
}

/* Segment s (sent at least once) is known to have arrived. */
static void rack_delivered(struct rudp__rtx *q, const struct rudp__seg *s,
			   rudp__usec now)
{
	/*
	 * A retransmitted segment acked sooner than any round trip could
	 * be was delivered by its original: its send time says nothing
	 * (RFC 8985, step 2).
	 */
	if (s->ntx > 1 && now - s->sent_at < q->min_rtt)
		return;
	if (s->ntx && s->sent_at >= q->rack_xmit) {
		q->rack_xmit = s->sent_at;
		q->rack_rtt = now - s->sent_at;
	}
}

void rudp__rtx_clear(struct rudp__rtx *q)
{
	struct rudp__seg *s = q->head;

	while (s) {
		struct rudp__seg *next = s->next;
		free(s);
		s = next;
	}
	rudp__rtx_init(q);
}

int rudp__rtx_push(struct rudp__rtx *q, uint32_t seq, uint32_t len,
		   uint8_t flags)
{
	struct rudp__seg *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->seq = seq;
	s->len = len;
	s->flags = flags;
	s->needs_tx = true;
	if (q->tail)
		q->tail->next = s;
	else
		q->head = s;
	q->tail = s;
	q->count++;
	q->nneed++;
	return 0;
}

/* Takes s out of the flight or the resend count, whichever it is in. */
static void settle_out(struct rudp__rtx *q, const struct rudp__seg *s)
{
	if (s->needs_tx)
		q->nneed--;
	else if (!s->sacked)
		q->flight -= s->len;
}

size_t rudp__rtx_ack(struct rudp__rtx *q, uint32_t ack, uint32_t tsecr,
		     rudp__usec now, rudp__usec *rtt)
{
	size_t n = 0;

	*rtt = RUDP__NEVER;
	while (q->head && rudp__seq_le(q->head->seq + q->head->len, ack)) {
		struct rudp__seg *s = q->head;
		if (s->ntx == 1 && !s->needs_tx)
			*rtt = now - s->sent_at;
		else
			*rtt = RUDP__NEVER;
		/*
		 * Resent, and the ack echoes a timestamp from before the
		 * resend: the original got there first (RFC 3522).
		 */
		if (s->ntx > 1 && !s->sacked && tsecr &&
		    rudp__seq_lt(tsecr, (uint32_t)s->sent_at))
			q->spurious++;
		if (!s->sacked && !s->needs_tx)
			rack_delivered(q, s, now);
		settle_out(q, s);
		q->head = s->next;
		free(s);
		q->count--;
		n++;
	}
	if (!q->head)
		q->tail = NULL;
	return n;
}

size_t rudp__rtx_sack(struct rudp__rtx *q, const struct rudp__sack *blocks,
		      unsigned n, rudp__usec now)
{
	size_t marked = 0;

	for (struct rudp__seg *s = q->head; s; s = s->next) {
		if (s->sacked || s->ntx == 0)
			continue;
		for (unsigned i = 0; i < n; i++) {
			if (rudp__seq_le(blocks[i].start, s->seq) &&
			    rudp__seq_le(s->seq + s->len, blocks[i].end)) {
				if (!s->needs_tx)
					rack_delivered(q, s, now);
				settle_out(q, s);
				s->needs_tx = false;
				s->sacked = true;
				marked++;
				break;
			}
		}
	}
	return marked;
}

static void lose(struct rudp__rtx *q, struct rudp__seg *s)
{
	q->flight -= s->len;
	s->needs_tx = true;
	q->nneed++;
}

size_t rudp__rtx_detect_loss(struct rudp__rtx *q, unsigned dupthresh)
{
	size_t total = 0, seen = 0, lost = 0;

	for (struct rudp__seg *s = q->head; s; s = s->next)
		total += s->sacked;
	for (struct rudp__seg *s = q->head; s && total - seen >= dupthresh;
	     s = s->next) {
		if (s->sacked) {
			seen++;
			continue;
		}
		/*
		 * Only a first transmission: SACKs for segments sent before
		 * a retransmission say nothing about it (RFC 6675 retransmits
		 * each hole once); RACK judges retransmissions by time.
		 */
		if (!s->needs_tx && s->ntx == 1) {
			lose(q, s);
			lost++;
		}
	}
	return lost;
}

size_t rudp__rtx_rack(struct rudp__rtx *q, rudp__usec now, rudp__usec reo_wnd,
		      rudp__usec *next)
{
	size_t lost = 0;

	*next = RUDP__NEVER;
	if (!q->rack_xmit)
		return 0;
	for (struct rudp__seg *s = q->head; s; s = s->next) {
		if (s->sacked || s->needs_tx || !s->ntx ||
		    s->sent_at >= q->rack_xmit)
			continue;
		rudp__usec due = s->sent_at + q->rack_rtt + reo_wnd;
		if (rudp__time_reached(now, due)) {
			lose(q, s);
			lost++;
		} else if (rudp__time_before(due, *next)) {
			*next = due;
		}
	}
	return lost;
}

bool rudp__rtx_probe_tail(struct rudp__rtx *q)
{
	struct rudp__seg *last = NULL;

	for (struct rudp__seg *s = q->head; s; s = s->next)
		if (!s->sacked && !s->needs_tx && s->ntx)
			last = s;
	if (!last)
		return false;
	lose(q, last);
	return true;
}

bool rudp__rtx_lose_head(struct rudp__rtx *q)
{
	struct rudp__seg *s = q->head;

	if (!s || s->needs_tx || s->sacked || s->ntx != 1)
		return false;
	lose(q, s);
	return true;
}

void rudp__rtx_requeue_all(struct rudp__rtx *q)
{
	for (struct rudp__seg *s = q->head; s; s = s->next)
		if (!s->needs_tx && !s->sacked)
			lose(q, s);
}

struct rudp__seg *rudp__rtx_next(const struct rudp__rtx *q)
{
	if (!q->nneed)
		return NULL;
	for (struct rudp__seg *s = q->head; s; s = s->next)
		if (s->needs_tx)
			return s;
	return NULL;
}

void rudp__rtx_sent(struct rudp__rtx *q, struct rudp__seg *s, rudp__usec now)
{
	if (s->needs_tx) {
		s->needs_tx = false;
		q->nneed--;
		q->flight += s->len;
	}
	s->sent_at = now;
	s->ntx++;
}
