#include "sndbuf.h"

#include <stdlib.h>
#include <string.h>

void rudp__sndbuf_init(struct rudp__sndbuf *sb, size_t cap)
{
	memset(sb, 0, sizeof(*sb));
	sb->cap = cap;
}

void rudp__sndbuf_free(struct rudp__sndbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->head = sb->len = 0;
}

size_t rudp__sndbuf_reserve(struct rudp__sndbuf *sb, uint8_t **p)
{
	if (sb->len == sb->cap)
		return 0;
	if (!sb->buf && !(sb->buf = malloc(sb->cap)))
		return 0;
	size_t tail = (sb->head + sb->len) % sb->cap;
	*p = sb->buf + tail;
	/* Up to the end of the ring, or up to the head if that comes first. */
	return tail >= sb->head ? sb->cap - tail : sb->head - tail;
}

void rudp__sndbuf_commit(struct rudp__sndbuf *sb, size_t n)
{
	sb->len += n;
}

void rudp__sndbuf_slices(const struct rudp__sndbuf *sb, size_t off, size_t n,
			 struct rudp__slices *out)
{
	size_t at = (sb->head + off) % sb->cap;
	size_t first = sb->cap - at < n ? sb->cap - at : n;

	out->n = 0;
	if (!n)
		return;
	out->iov[0].iov_base = sb->buf + at;
	out->iov[0].iov_len = first;
	out->n = 1;
	if (first < n) {
		out->iov[1].iov_base = sb->buf;
		out->iov[1].iov_len = n - first;
		out->n = 2;
	}
}

void rudp__sndbuf_consume(struct rudp__sndbuf *sb, size_t n)
{
	sb->head = (sb->head + n) % sb->cap;
	sb->len -= n;
}
