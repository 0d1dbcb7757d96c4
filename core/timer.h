/*
 * A binary min-heap of intrusive timers.  Each timer remembers its slot so
 * that rescheduling or cancelling is O(log n) without a search; the event
 * loop and every endpoint keep one, so an idle connection costs no wakeup.
 */
#ifndef RUDP_CORE_TIMER_H
#define RUDP_CORE_TIMER_H

#include <stddef.h>

#include "seq.h"

#define RUDP__TIMER_IDLE ((size_t)-1)

struct rudp__timer {
	rudp__usec when;
	size_t slot; /* index in the heap, RUDP__TIMER_IDLE when not queued */
};

struct rudp__heap {
	struct rudp__timer **v;
	size_t n, cap;
};

static inline void rudp__timer_init(struct rudp__timer *t)
{
	t->when = RUDP__NEVER;
	t->slot = RUDP__TIMER_IDLE;
}

void rudp__heap_init(struct rudp__heap *h);
void rudp__heap_free(struct rudp__heap *h);

/*
 * Queues t to fire at `when`, moving it if already queued.  RUDP__NEVER
 * removes it.  Returns 0 or -ENOMEM (t is then left as it was).
 */
int rudp__heap_set(struct rudp__heap *h, struct rudp__timer *t,
		   rudp__usec when);
/* Makes room for n timers so that queueing up to n cannot fail. */
int rudp__heap_reserve(struct rudp__heap *h, size_t n);
void rudp__heap_remove(struct rudp__heap *h, struct rudp__timer *t);

/* The earliest timer, or NULL when none is queued. */
static inline struct rudp__timer *rudp__heap_min(const struct rudp__heap *h)
{
	return h->n ? h->v[0] : NULL;
}

static inline rudp__usec rudp__heap_deadline(const struct rudp__heap *h)
{
	return h->n ? h->v[0]->when : RUDP__NEVER;
}

#endif
