/*
 * Connection lookup for an endpoint: a chained hash table keyed by a 32-bit
 * connection id, intrusive so that insert and remove never allocate per
 * connection.  One table holds two kinds of chains: by our own id (every
 * datagram) and by the peer's id (to recognise a retransmitted SYN).
 */
#ifndef RUDP_CORE_CIDTAB_H
#define RUDP_CORE_CIDTAB_H

#include <stddef.h>
#include <stdint.h>

struct rudp__conn;

struct rudp__cidtab {
	struct rudp__conn **b[2]; /* bucket heads, one array per kind */
	size_t nb;                /* buckets per kind, a power of two */
	size_t n[2];
};

int rudp__cidtab_init(struct rudp__cidtab *t);
void rudp__cidtab_free(struct rudp__cidtab *t);
void rudp__cidtab_add(struct rudp__cidtab *t, struct rudp__conn *c, int kind);
void rudp__cidtab_del(struct rudp__cidtab *t, struct rudp__conn *c, int kind);
/* The first connection on kind's chain whose id is key, then the next. */
struct rudp__conn *rudp__cidtab_find(const struct rudp__cidtab *t, int kind,
				     uint32_t key);
struct rudp__conn *rudp__cidtab_next(const struct rudp__conn *c, int kind,
				     uint32_t key);

#endif
