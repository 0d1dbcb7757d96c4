#include "rtx.h"

#include <errno.h>
#include <stdlib.h>

void rudp__rtx_init(struct rudp__rtx *q)
{
	q->head = q->tail = NULL;
	q->count = 0;
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
	return 0;
}

size_t rudp__rtx_ack(struct rudp__rtx *q, uint32_t ack, rudp__usec now,
		     rudp__usec *rtt)
{
	size_t n = 0;

	*rtt = RUDP__NEVER;
	while (q->head && rudp__seq_le(q->head->seq + q->head->len, ack)) {
		struct rudp__seg *s = q->head;
		if (s->ntx == 1 && !s->needs_tx)
			*rtt = now - s->sent_at;
		else
			*rtt = RUDP__NEVER;
		q->head = s->next;
		free(s);
		q->count--;
		n++;
	}
	if (!q->head)
		q->tail = NULL;
	return n;
}

void rudp__rtx_requeue_all(struct rudp__rtx *q)
{
	for (struct rudp__seg *s = q->head; s; s = s->next)
		s->needs_tx = true;
}

struct rudp__seg *rudp__rtx_next(const struct rudp__rtx *q)
{
	for (struct rudp__seg *s = q->head; s; s = s->next)
		if (s->needs_tx)
			return s;
	return NULL;
}

void rudp__rtx_sent(struct rudp__seg *s, rudp__usec now)
{
	s->sent_at = now;
	s->ntx++;
	s->needs_tx = false;
}
