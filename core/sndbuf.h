/*
 * The send side's byte store: a ring holding every byte the program has
 * handed us from the oldest unacknowledged one (snd_una) on.  Segments are
 * not copies: the retransmit queue names sequence ranges, and a datagram's
 * payload is handed to the kernel as slices of this ring, so a
 * retransmission costs no memory, a transmission costs no copy in user
 * space, and acked bytes are released by moving one index.
 */
#ifndef RUDP_CORE_SNDBUF_H
#define RUDP_CORE_SNDBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct rudp__sndbuf {
	uint8_t *buf;  /* allocated on first data: idle connections pay nothing */
	size_t cap;
	size_t head;   /* index of the byte at snd_una */
	size_t len;    /* bytes held */
};

void rudp__sndbuf_init(struct rudp__sndbuf *sb, size_t cap);
void rudp__sndbuf_free(struct rudp__sndbuf *sb);

static inline size_t rudp__sndbuf_space(const struct rudp__sndbuf *sb)
{
	return sb->cap - sb->len;
}

/*
 * The contiguous free run at the end, to fill in place (from a socket, say)
 * and then commit.  Returns its length, 0 when full or out of memory.
 */
size_t rudp__sndbuf_reserve(struct rudp__sndbuf *sb, uint8_t **p);
void rudp__sndbuf_commit(struct rudp__sndbuf *sb, size_t n);

/*
 * Where a datagram's payload lies: up to two slices of the ring (two when
 * the bytes wrap around its end), none for a datagram without payload.
 */
struct rudp__slices {
	struct iovec iov[2];
	unsigned n;
};

/*
 * Points out at the n bytes starting off bytes after snd_una, in place.
 * They stay valid until those bytes are consumed (acknowledged) or the ring
 * is freed, which only taking an ack or closing the connection does.
 */
void rudp__sndbuf_slices(const struct rudp__sndbuf *sb, size_t off, size_t n,
			 struct rudp__slices *out);

/* Drops the n oldest bytes: they were acknowledged. */
void rudp__sndbuf_consume(struct rudp__sndbuf *sb, size_t n);

#endif
