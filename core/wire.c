#include "wire.h"

#include <errno.h>
#include <string.h>

/*
 * Fixed header, all fields big-endian:
 *   0  magic(16) version(8) flags(8)
 *   4  src_cid
 *   8  dst_cid
 *  12  seq
 *  16  ack
 *  20  wnd
 *  24  tsval
 *  28  tsecr
 *  32  len(16) nsack(8) reserved(8)
 *  36  nsack * { start, end }, then len payload bytes
 */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

/*
 * The rules a header must satisfy, shared by both directions so that encode
 * refuses exactly what decode would reject.
 */
static enum rudp__wire_err check(const struct rudp__hdr *h)
{
	uint8_t f = h->flags;

	if (f & ~RUDP__F_KNOWN)
		return RUDP__WIRE_FLAGS;
	/* A reset ends everything, so it never carries SYN, FIN or data. */
	if ((f & RUDP__F_RST) && (f & (RUDP__F_SYN | RUDP__F_FIN)))
		return RUDP__WIRE_FLAGS;
	if ((f & RUDP__F_SYN) && (f & RUDP__F_FIN))
		return RUDP__WIRE_FLAGS;
	/* Only a SYN may open a connection, so everything else must ack. */
	if (!(f & (RUDP__F_SYN | RUDP__F_RST | RUDP__F_ACK)))
		return RUDP__WIRE_FLAGS;
	if (h->nsack > RUDP__MAX_SACK)
		return RUDP__WIRE_LENGTH;
	if ((f & (RUDP__F_SYN | RUDP__F_RST)) && h->len)
		return RUDP__WIRE_LENGTH;
	if (h->nsack && !(f & RUDP__F_ACK))
		return RUDP__WIRE_FIELD;
	if (!(f & RUDP__F_ACK) && h->ack)
		return RUDP__WIRE_FIELD;
	/*
	 * Connection ids: the sender always names itself (a stateless reset
	 * may not know an id, so RST alone may carry 0), and only a bare SYN
	 * is addressed to a connection that does not exist yet.
	 */
	if (!h->src_cid && !(f & RUDP__F_RST))
		return RUDP__WIRE_FIELD;
	if (!h->dst_cid && f != RUDP__F_SYN)
		return RUDP__WIRE_FIELD;
	if (h->dst_cid && f == RUDP__F_SYN)
		return RUDP__WIRE_FIELD;
	for (unsigned i = 0; i < h->nsack; i++)
		if (h->sack[i].start == h->sack[i].end)
			return RUDP__WIRE_FIELD;
	return RUDP__WIRE_OK;
}

ssize_t rudp__wire_encode_hdr(const struct rudp__hdr *h, uint8_t *buf,
			      size_t cap)
{
	size_t n = rudp__wire_size(h) - h->len;

	if (check(h) != RUDP__WIRE_OK)
		return -EINVAL;
	if (n > cap || rudp__wire_size(h) > RUDP__MAX_DGRAM)
		return -EMSGSIZE;
	put16(buf, RUDP__MAGIC);
	buf[2] = RUDP__VERSION;
	buf[3] = h->flags;
	put32(buf + 4, h->src_cid);
	put32(buf + 8, h->dst_cid);
	put32(buf + 12, h->seq);
	put32(buf + 16, h->ack);
	put32(buf + 20, h->wnd);
	put32(buf + 24, h->tsval);
	put32(buf + 28, h->tsecr);
	put16(buf + 32, h->len);
	buf[34] = h->nsack;
	buf[35] = 0;
	uint8_t *p = buf + RUDP__HDR_LEN;
	for (unsigned i = 0; i < h->nsack; i++, p += RUDP__SACK_LEN) {
		put32(p, h->sack[i].start);
		put32(p + 4, h->sack[i].end);
	}
	return (ssize_t)n;
}

ssize_t rudp__wire_encode(const struct rudp__hdr *h, const void *payload,
			  uint8_t *buf, size_t cap)
{
	ssize_t n = rudp__wire_encode_hdr(h, buf, cap);

	if (n < 0)
		return n;
	if ((size_t)n + h->len > cap)
		return -EMSGSIZE;
	/* The caller may have built the payload in place already. */
	if (h->len && buf + n != (const uint8_t *)payload)
		memcpy(buf + n, payload, h->len);
	return n + h->len;
}

int rudp__wire_decode(const uint8_t *buf, size_t len, struct rudp__hdr *h,
		      const uint8_t **payload, enum rudp__wire_err *why)
{
	enum rudp__wire_err e;

	if (len < RUDP__HDR_LEN) {
		e = RUDP__WIRE_SHORT;
		goto fail;
	}
	if (get16(buf) != RUDP__MAGIC) {
		e = RUDP__WIRE_MAGIC;
		goto fail;
	}
	if (buf[2] != RUDP__VERSION) {
		e = RUDP__WIRE_VERSION;
		goto fail;
	}
	memset(h, 0, sizeof(*h));
	h->flags = buf[3];
	h->src_cid = get32(buf + 4);
	h->dst_cid = get32(buf + 8);
	h->seq = get32(buf + 12);
	h->ack = get32(buf + 16);
	h->wnd = get32(buf + 20);
	h->tsval = get32(buf + 24);
	h->tsecr = get32(buf + 28);
	h->len = get16(buf + 32);
	h->nsack = buf[34];
	if (buf[35] != 0) {
		e = RUDP__WIRE_FIELD;
		goto fail;
	}
	/* Check the count before reading blocks so a lie cannot over-read. */
	if (h->nsack > RUDP__MAX_SACK || rudp__wire_size(h) != len) {
		e = RUDP__WIRE_LENGTH;
		goto fail;
	}
	const uint8_t *p = buf + RUDP__HDR_LEN;
	for (unsigned i = 0; i < h->nsack; i++, p += RUDP__SACK_LEN) {
		h->sack[i].start = get32(p);
		h->sack[i].end = get32(p + 4);
	}
	e = check(h);
	if (e != RUDP__WIRE_OK)
		goto fail;
	*payload = p;
	*why = RUDP__WIRE_OK;
	return 0;
fail:
	*why = e;
	return -EBADMSG;
}

uint32_t rudp__wire_src_cid(const uint8_t *buf, size_t len)
{
	return len >= 8 ? get32(buf + 4) : 0;
}

const char *rudp__wire_err_name(enum rudp__wire_err e)
{
	switch (e) {
	case RUDP__WIRE_OK: return "ok";
	case RUDP__WIRE_SHORT: return "short";
	case RUDP__WIRE_MAGIC: return "magic";
	case RUDP__WIRE_VERSION: return "version";
	case RUDP__WIRE_FLAGS: return "flags";
	case RUDP__WIRE_LENGTH: return "length";
	case RUDP__WIRE_FIELD: return "field";
	case RUDP__WIRE_NERR: break;
	}
	return "?";
}
