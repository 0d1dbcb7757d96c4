/*
 * Wire format v1: encode and decode of the fixed header (docs/PROTOCOL.md
 * has the byte diagram).  Both directions are pure functions over byte
 * buffers; nothing here trusts a datagram until decode has checked it.
 */
#ifndef RUDP_CORE_WIRE_H
#define RUDP_CORE_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RUDP__MAGIC      0x5255u /* "RU" */
#define RUDP__VERSION    1u
#define RUDP__HDR_LEN    36u
#define RUDP__SACK_LEN   8u
/*
 * SACK blocks: a pure ack may carry up to RUDP__MAX_SACK, so that under
 * heavy loss the sender hears of every hole; a segment with data carries at
 * most RUDP__DATA_SACK, which the segment size leaves room for.
 */
#define RUDP__MAX_SACK   32u
#define RUDP__DATA_SACK  4u
#define RUDP__MAX_DGRAM  65507u /* largest UDP payload over IPv4 */
/* The longest header: the fixed part and as many SACK blocks as allowed. */
#define RUDP__MAX_HDR    (RUDP__HDR_LEN + RUDP__MAX_SACK * RUDP__SACK_LEN)

enum {
	RUDP__F_SYN = 0x01,
	RUDP__F_ACK = 0x02,
	RUDP__F_FIN = 0x04,
	RUDP__F_RST = 0x08,
	RUDP__F_KNOWN = 0x0f,
};

struct rudp__sack {
	uint32_t start; /* first sequence number held */
	uint32_t end;   /* one past the last */
};

struct rudp__hdr {
	uint8_t flags;
	uint8_t nsack;
	uint16_t len;     /* payload bytes following the header and SACKs */
	uint32_t src_cid; /* sender's connection id */
	uint32_t dst_cid; /* receiver's connection id; 0 only on a SYN */
	uint32_t seq;
	uint32_t ack;     /* meaningful only with RUDP__F_ACK */
	uint32_t wnd;     /* receive window, bytes */
	uint32_t tsval;   /* sender's clock, microseconds mod 2^32 */
	uint32_t tsecr;   /* the latest tsval seen from the peer */
	struct rudp__sack sack[RUDP__MAX_SACK];
};

/* Why a datagram was rejected; each has its own counter. */
enum rudp__wire_err {
	RUDP__WIRE_OK = 0,
	RUDP__WIRE_SHORT,     /* shorter than the fixed header */
	RUDP__WIRE_MAGIC,     /* not an rudp datagram */
	RUDP__WIRE_VERSION,   /* a version this build does not speak */
	RUDP__WIRE_FLAGS,     /* unknown bits or an impossible combination */
	RUDP__WIRE_LENGTH,    /* lengths disagree with the datagram */
	RUDP__WIRE_FIELD,     /* a field value no sender may produce */
	RUDP__WIRE_NERR
};

const char *rudp__wire_err_name(enum rudp__wire_err e);

/*
 * The sender's connection id from the first bytes of a datagram we sent
 * (as an ICMP error quotes it), or 0 if too little of it is there.
 */
uint32_t rudp__wire_src_cid(const uint8_t *buf, size_t len);

/* Bytes the encoded datagram takes. */
static inline size_t rudp__wire_size(const struct rudp__hdr *h)
{
	return RUDP__HDR_LEN + (size_t)h->nsack * RUDP__SACK_LEN + h->len;
}

/*
 * Writes header, SACK blocks and `h->len` payload bytes to buf.  Returns
 * the datagram length, -EMSGSIZE when cap is too small, or -EINVAL when h
 * itself would not pass decode (so the sender can never emit what the
 * receiver must reject).
 */
ssize_t rudp__wire_encode(const struct rudp__hdr *h, const void *payload,
			  uint8_t *buf, size_t cap);

/*
 * The same without the payload: writes header and SACK blocks only, for a
 * datagram whose `h->len` payload bytes go to the kernel from where they
 * lie.  Returns the header length or the errors above (the whole datagram
 * must still fit RUDP__MAX_DGRAM).
 */
ssize_t rudp__wire_encode_hdr(const struct rudp__hdr *h, uint8_t *buf,
			      size_t cap);

/*
 * Parses buf.  On success fills *h, points *payload at the h->len payload
 * bytes inside buf and returns 0.  Otherwise returns -EBADMSG and sets *why.
 */
int rudp__wire_decode(const uint8_t *buf, size_t len, struct rudp__hdr *h,
		      const uint8_t **payload, enum rudp__wire_err *why);

#endif
