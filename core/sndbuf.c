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

void rudp__sndbuf_copy(const struct rudp__sndbuf *sb, size_t off,
		       uint8_t *out, size_t n)
{
	size_t at = (sb->head + off) % sb->cap;
	size_t first = sb->cap - at < n ? sb->cap - at : n;

	memcpy(out, sb->buf + at, first);
	memcpy(out + first, sb->buf, n - first);
}

void rudp__sndbuf_consume(struct rudp__sndbuf *sb, size_t n)
{
	sb->head = (sb->head + n) % sb->cap;
	sb->len -= n;
}
