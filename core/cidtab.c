#include "cidtab.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "conn.h"

static uint32_t key_of(const struct rudp__conn *c, int kind)
{
	return kind == RUDP__BY_LOCAL ? c->local_cid : c->peer_cid;
}

static size_t slot(const struct rudp__cidtab *t, uint32_t key)
{
	/*
	 * Ids are random, but a peer's are not ours to trust: mix every bit
	 * of the key into the bits we keep (the high half of a 64-bit
	 * Fibonacci product), so ids chosen to differ only in some bits
	 * still spread over the buckets.
	 */
	return (size_t)(((uint64_t)key * UINT64_C(0x9e3779b97f4a7c15)) >> 32) &
	       (t->nb - 1);
}

int rudp__cidtab_init(struct rudp__cidtab *t)
{
	t->nb = 16;
	t->n[0] = t->n[1] = 0;
	t->b[0] = calloc(t->nb, sizeof(*t->b[0]));
	t->b[1] = calloc(t->nb, sizeof(*t->b[1]));
	if (!t->b[0] || !t->b[1]) {
		rudp__cidtab_free(t);
		return -ENOMEM;
	}
	return 0;
}

void rudp__cidtab_free(struct rudp__cidtab *t)
{
	free(t->b[0]);
	free(t->b[1]);
	t->b[0] = t->b[1] = NULL;
	t->nb = 0;
}

static int grow(struct rudp__cidtab *t)
{
	size_t nb = t->nb * 2;
	struct rudp__conn **nbk[2];

	nbk[0] = calloc(nb, sizeof(*nbk[0]));
	nbk[1] = calloc(nb, sizeof(*nbk[1]));
	if (!nbk[0] || !nbk[1]) {
		free(nbk[0]);
		free(nbk[1]);
		return -ENOMEM;
	}
	size_t onb = t->nb;
	t->nb = nb;
	for (int k = 0; k < RUDP__NKINDS; k++) {
		for (size_t i = 0; i < onb; i++) {
			struct rudp__conn *c = t->b[k][i];
			while (c) {
				struct rudp__conn *next = c->link[k];
				size_t s = slot(t, key_of(c, k));
				c->link[k] = nbk[k][s];
				nbk[k][s] = c;
				c = next;
			}
		}
		free(t->b[k]);
		t->b[k] = nbk[k];
	}
	return 0;
}

void rudp__cidtab_add(struct rudp__cidtab *t, struct rudp__conn *c, int kind)
{
	if (c->in_table[kind])
		return;
	/* A failed grow only lengthens chains; lookups stay correct. */
	if (t->n[kind] >= t->nb)
		(void)grow(t);
	size_t s = slot(t, key_of(c, kind));
	c->link[kind] = t->b[kind][s];
	t->b[kind][s] = c;
	c->in_table[kind] = true;
	t->n[kind]++;
}

void rudp__cidtab_del(struct rudp__cidtab *t, struct rudp__conn *c, int kind)
{
	if (!c->in_table[kind])
		return;
	struct rudp__conn **pp = &t->b[kind][slot(t, key_of(c, kind))];
	while (*pp && *pp != c)
		pp = &(*pp)->link[kind];
	if (*pp)
		*pp = c->link[kind];
	c->link[kind] = NULL;
	c->in_table[kind] = false;
	t->n[kind]--;
}

struct rudp__conn *rudp__cidtab_find(const struct rudp__cidtab *t, int kind,
				     uint32_t key)
{
	struct rudp__conn *c = t->b[kind][slot(t, key)];

	while (c && key_of(c, kind) != key)
		c = c->link[kind];
	return c;
}

struct rudp__conn *rudp__cidtab_next(const struct rudp__conn *c, int kind,
				     uint32_t key)
{
	for (c = c->link[kind]; c; c = c->link[kind])
		if (key_of(c, kind) == key)
			return (struct rudp__conn *)c;
	return NULL;
}
