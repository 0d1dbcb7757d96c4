#include "timer.h"

#include <errno.h>
#include <stdlib.h>

void rudp__heap_init(struct rudp__heap *h)
{
	h->v = NULL;
	h->n = h->cap = 0;
}

void rudp__heap_free(struct rudp__heap *h)
{
	for (size_t i = 0; i < h->n; i++)
		h->v[i]->slot = RUDP__TIMER_IDLE;
	free(h->v);
	rudp__heap_init(h);
}

static void place(struct rudp__heap *h, size_t i, struct rudp__timer *t)
{
	h->v[i] = t;
	t->slot = i;
}

static void sift_up(struct rudp__heap *h, size_t i)
{
	struct rudp__timer *t = h->v[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!rudp__time_before(t->when, h->v[parent]->when))
			break;
		place(h, i, h->v[parent]);
		i = parent;
	}
	place(h, i, t);
}

static void sift_down(struct rudp__heap *h, size_t i)
{
	struct rudp__timer *t = h->v[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n &&
		    rudp__time_before(h->v[c + 1]->when, h->v[c]->when))
			c++;
		if (!rudp__time_before(h->v[c]->when, t->when))
			break;
		place(h, i, h->v[c]);
		i = c;
	}
	place(h, i, t);
}

void rudp__heap_remove(struct rudp__heap *h, struct rudp__timer *t)
{
	size_t i = t->slot;

	if (i == RUDP__TIMER_IDLE)
		return;
	t->slot = RUDP__TIMER_IDLE;
	h->n--;
	if (i == h->n)
		return;
	/*
	 * The last timer fills the hole; it may belong above or below it, and
	 * after sifting down a no-op sift up from its final slot settles it.
	 */
	struct rudp__timer *moved = h->v[h->n];
	place(h, i, moved);
	sift_down(h, i);
	sift_up(h, moved->slot);
}

int rudp__heap_reserve(struct rudp__heap *h, size_t n)
{
	if (n <= h->cap)
		return 0;
	size_t cap = h->cap ? h->cap : 16;
	while (cap < n)
		cap *= 2;
	struct rudp__timer **v = realloc(h->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	h->v = v;
	h->cap = cap;
	return 0;
}

int rudp__heap_set(struct rudp__heap *h, struct rudp__timer *t,
		   rudp__usec when)
{
	if (when == RUDP__NEVER) {
		rudp__heap_remove(h, t);
		t->when = RUDP__NEVER;
		return 0;
	}
	if (t->slot != RUDP__TIMER_IDLE) {
		rudp__usec old = t->when;
		t->when = when;
		if (rudp__time_before(when, old))
			sift_up(h, t->slot);
		else
			sift_down(h, t->slot);
		return 0;
	}
	int r = rudp__heap_reserve(h, h->n + 1);
	if (r < 0)
		return r;
	t->when = when;
	place(h, h->n++, t);
	sift_up(h, t->slot);
	return 0;
}
