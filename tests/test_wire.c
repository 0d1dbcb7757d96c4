/*
 * The wire format: every field survives a round trip, every malformed
 * datagram is rejected with the reason its counter needs, encode refuses
 * what decode would reject, and a seeded fuzzer finds no crash and no
 * datagram that decodes but does not re-encode to the same bytes.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* Large enough for any datagram the format can describe. */
#define BIG (RUDP__HDR_LEN + 255 * RUDP__SACK_LEN + 65535 + 64)

static uint8_t buf[BIG];
static uint8_t out[BIG];
static uint8_t payload_bytes[65536];

/*
 * A fixed-seed xorshift64* generator, so that a fuzz failure reproduces on
 * every machine and every run.
 */
static uint64_t prng_state;

static void prng_seed(uint64_t seed)
{
	prng_state = seed ? seed : 1;
}

static uint64_t prng_next(void)
{
	prng_state ^= prng_state >> 12;
	prng_state ^= prng_state << 25;
	prng_state ^= prng_state >> 27;
	return prng_state * UINT64_C(2685821657736338717);
}

static uint32_t prng_below(uint32_t n)
{
	return (uint32_t)(prng_next() >> 32) % n;
}

static void fill_payload(void)
{
	for (size_t i = 0; i < sizeof(payload_bytes); i++)
		payload_bytes[i] = (uint8_t)(i * 31u + 7u);
}

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

/*
 * Writes h exactly as the byte diagram lays it out, without any of the
 * checks encode makes, so that tests can hand decode headers encode would
 * refuse.  SACK blocks past the fourth are filled with a valid-looking
 * non-empty range so that only the count itself is wrong.  Returns the
 * datagram length.
 */
static size_t raw_encode(const struct rudp__hdr *h, const void *payload,
			 uint8_t *p)
{
	put16(p, RUDP__MAGIC);
	p[2] = RUDP__VERSION;
	p[3] = h->flags;
	put32(p + 4, h->src_cid);
	put32(p + 8, h->dst_cid);
	put32(p + 12, h->seq);
	put32(p + 16, h->ack);
	put32(p + 20, h->wnd);
	put32(p + 24, h->tsval);
	put32(p + 28, h->tsecr);
	put16(p + 32, h->len);
	p[34] = h->nsack;
	p[35] = 0;
	uint8_t *q = p + RUDP__HDR_LEN;
	for (unsigned i = 0; i < h->nsack; i++, q += RUDP__SACK_LEN) {
		if (i < RUDP__MAX_SACK) {
			put32(q, h->sack[i].start);
			put32(q + 4, h->sack[i].end);
		} else {
			put32(q, 1000 + i);
			put32(q + 4, 2000 + i);
		}
	}
	if (h->len)
		memcpy(q, payload, h->len);
	return (size_t)(q - p) + h->len;
}

/* An established connection's data segment, the most common datagram. */
static struct rudp__hdr data_hdr(void)
{
	struct rudp__hdr h;

	memset(&h, 0, sizeof(h));
	h.flags = RUDP__F_ACK;
	h.src_cid = 0x11223344;
	h.dst_cid = 0x55667788;
	h.seq = 1000;
	h.ack = 2000;
	h.wnd = 65536;
	h.tsval = 12345;
	h.tsecr = 6789;
	h.len = 10;
	return h;
}

/* A data segment that also reports two early ranges. */
static struct rudp__hdr sacked_data_hdr(void)
{
	struct rudp__hdr h = data_hdr();

	h.nsack = 2;
	h.sack[0].start = 1;
	h.sack[0].end = 2;
	h.sack[1].start = 3;
	h.sack[1].end = 4;
	return h;
}

/* A bare SYN: the only datagram addressed to connection id 0. */
static struct rudp__hdr syn_hdr(void)
{
	struct rudp__hdr h;

	memset(&h, 0, sizeof(h));
	h.flags = RUDP__F_SYN;
	h.src_cid = 0xabcdef01;
	h.seq = 0x01020304;
	h.wnd = 4096;
	h.tsval = 99;
	return h;
}

static void assert_hdr_eq(const struct rudp__hdr *a, const struct rudp__hdr *b)
{
	ck_assert_uint_eq(a->flags, b->flags);
	ck_assert_uint_eq(a->nsack, b->nsack);
	ck_assert_uint_eq(a->len, b->len);
	ck_assert_uint_eq(a->src_cid, b->src_cid);
	ck_assert_uint_eq(a->dst_cid, b->dst_cid);
	ck_assert_uint_eq(a->seq, b->seq);
	ck_assert_uint_eq(a->ack, b->ack);
	ck_assert_uint_eq(a->wnd, b->wnd);
	ck_assert_uint_eq(a->tsval, b->tsval);
	ck_assert_uint_eq(a->tsecr, b->tsecr);
	for (unsigned i = 0; i < a->nsack; i++) {
		ck_assert_uint_eq(a->sack[i].start, b->sack[i].start);
		ck_assert_uint_eq(a->sack[i].end, b->sack[i].end);
	}
}

/*
 * Encodes h, decodes the result and checks that every field, the payload
 * bytes and the payload's position came back unchanged.
 */
static void assert_round_trip(const struct rudp__hdr *h, const void *payload)
{
	struct rudp__hdr d;
	const uint8_t *pl = NULL;
	enum rudp__wire_err why = RUDP__WIRE_NERR;

	ssize_t n = rudp__wire_encode(h, payload, buf, sizeof(buf));
	ck_assert_int_eq(n, (ssize_t)rudp__wire_size(h));
	ck_assert_int_eq(rudp__wire_decode(buf, (size_t)n, &d, &pl, &why), 0);
	ck_assert_int_eq(why, RUDP__WIRE_OK);
	assert_hdr_eq(&d, h);
	ck_assert_ptr_eq(pl, buf + RUDP__HDR_LEN + h->nsack * RUDP__SACK_LEN);
	if (h->len)
		ck_assert_int_eq(memcmp(pl, payload, h->len), 0);
}

/*
 * h is a header no sender may produce: decode must reject its raw bytes
 * with reason `want`, and encode must refuse to write it at all.
 */
static void assert_rejected(const struct rudp__hdr *h, enum rudp__wire_err want)
{
	struct rudp__hdr d;
	const uint8_t *pl;
	enum rudp__wire_err why = RUDP__WIRE_OK;
	size_t n = raw_encode(h, payload_bytes, buf);

	ck_assert_int_eq(rudp__wire_decode(buf, n, &d, &pl, &why), -EBADMSG);
	ck_assert_msg(why == want, "flags %#x: rejected as %s, want %s",
		      h->flags, rudp__wire_err_name(why),
		      rudp__wire_err_name(want));
	ck_assert_int_eq(rudp__wire_encode(h, payload_bytes, out, sizeof(out)),
			 -EINVAL);
}

/* Decodes the n bytes in buf and checks they are rejected as `want`. */
static void assert_bytes_rejected(size_t n, enum rudp__wire_err want)
{
	struct rudp__hdr d;
	const uint8_t *pl;
	enum rudp__wire_err why = RUDP__WIRE_OK;

	ck_assert_int_eq(rudp__wire_decode(buf, n, &d, &pl, &why), -EBADMSG);
	ck_assert_msg(why == want, "%zu bytes: rejected as %s, want %s", n,
		      rudp__wire_err_name(why), rudp__wire_err_name(want));
}

START_TEST(test_wire_round_trips_every_field)
{
	/* Each SACK count, with and without payload, so no offset is fixed. */
	for (unsigned ns = 0; ns <= RUDP__MAX_SACK; ns++) {
		for (unsigned len = 0; len <= 1; len++) {
			struct rudp__hdr h = data_hdr();
			h.nsack = (uint8_t)ns;
			h.len = (uint16_t)(len ? 100 + ns : 0);
			for (unsigned i = 0; i < ns; i++) {
				h.sack[i].start = 3000 + 100 * i;
				h.sack[i].end = 3050 + 100 * i;
			}
			assert_round_trip(&h, payload_bytes + ns);
		}
	}
}
END_TEST

START_TEST(test_wire_round_trips_max_values)
{
	struct rudp__hdr h;

	/* All-ones fields catch any truncation to a narrower type. */
	for (unsigned ns = 0; ns <= RUDP__MAX_SACK; ns++) {
		memset(&h, 0, sizeof(h));
		h.flags = RUDP__F_ACK | RUDP__F_FIN;
		h.nsack = (uint8_t)ns;
		h.src_cid = UINT32_MAX;
		h.dst_cid = UINT32_MAX;
		h.seq = UINT32_MAX;
		h.ack = UINT32_MAX;
		h.wnd = UINT32_MAX;
		h.tsval = UINT32_MAX;
		h.tsecr = UINT32_MAX;
		/* The largest payload that still fits one IPv4 UDP datagram. */
		h.len = (uint16_t)(RUDP__MAX_DGRAM - RUDP__HDR_LEN -
				   ns * RUDP__SACK_LEN);
		for (unsigned i = 0; i < ns; i++) {
			h.sack[i].start = UINT32_MAX - i;
			h.sack[i].end = i; /* a block that wraps the circle */
		}
		assert_round_trip(&h, payload_bytes);
		ck_assert_uint_eq(rudp__wire_size(&h), RUDP__MAX_DGRAM);
	}
}
END_TEST

START_TEST(test_wire_round_trips_every_legal_kind)
{
	struct rudp__hdr h;

	h = syn_hdr();
	assert_round_trip(&h, NULL);

	h = syn_hdr();
	h.flags = RUDP__F_SYN | RUDP__F_ACK;
	h.dst_cid = 7;
	h.ack = 0x01020305;
	assert_round_trip(&h, NULL);

	h = data_hdr();
	h.len = 0;
	assert_round_trip(&h, NULL);

	h = data_hdr();
	h.flags = RUDP__F_FIN | RUDP__F_ACK;
	assert_round_trip(&h, payload_bytes);

	/* A stateless reset may not know who it is, so src_cid 0 is legal. */
	h = data_hdr();
	h.flags = RUDP__F_RST;
	h.len = 0;
	h.ack = 0;
	h.src_cid = 0;
	assert_round_trip(&h, NULL);

	h = data_hdr();
	h.flags = RUDP__F_RST | RUDP__F_ACK;
	h.len = 0;
	assert_round_trip(&h, NULL);
}
END_TEST

START_TEST(test_wire_encodes_documented_layout)
{
	struct rudp__hdr h = data_hdr();
	static const uint8_t want[] = {
		0x52, 0x55, 0x01, 0x02,   /* magic "RU", version 1, ACK */
		0x11, 0x22, 0x33, 0x44,   /* src_cid */
		0x55, 0x66, 0x77, 0x88,   /* dst_cid */
		0x00, 0x00, 0x03, 0xe8,   /* seq 1000 */
		0x00, 0x00, 0x07, 0xd0,   /* ack 2000 */
		0x00, 0x01, 0x00, 0x00,   /* wnd 65536 */
		0x00, 0x00, 0x30, 0x39,   /* tsval 12345 */
		0x00, 0x00, 0x1a, 0x85,   /* tsecr 6789 */
		0x00, 0x02, 0x01, 0x00,   /* len 2, nsack 1, reserved */
		0xde, 0xad, 0xbe, 0xef,   /* sack[0].start */
		0xfe, 0xed, 0xfa, 0xce,   /* sack[0].end */
		0xa5, 0x5a,               /* payload */
	};
	static const uint8_t pl[] = { 0xa5, 0x5a };

	/*
	 * A round trip alone would pass with a byte order that is wrong in
	 * both directions, so pin the bytes the other end expects.
	 */
	h.len = 2;
	h.nsack = 1;
	h.sack[0].start = 0xdeadbeef;
	h.sack[0].end = 0xfeedface;
	ck_assert_int_eq(rudp__wire_encode(&h, pl, buf, sizeof(buf)),
			 (ssize_t)sizeof(want));
	ck_assert_int_eq(memcmp(buf, want, sizeof(want)), 0);
}
END_TEST

START_TEST(test_wire_rejects_truncated)
{
	struct rudp__hdr h = sacked_data_hdr();
	size_t n = (size_t)rudp__wire_encode(&h, payload_bytes, buf,
					     sizeof(buf));
	ck_assert_uint_eq(n, RUDP__HDR_LEN + 2 * RUDP__SACK_LEN + h.len);

	/* Shorter than the fixed header, whatever the bytes say. */
	for (size_t len = 0; len < RUDP__HDR_LEN; len++)
		assert_bytes_rejected(len, RUDP__WIRE_SHORT);
	/* A whole header but cut inside the SACK blocks or the payload. */
	for (size_t len = RUDP__HDR_LEN; len < n; len++)
		assert_bytes_rejected(len, RUDP__WIRE_LENGTH);
}
END_TEST

START_TEST(test_wire_rejects_bad_magic)
{
	struct rudp__hdr h = data_hdr();
	size_t n = raw_encode(&h, payload_bytes, buf);

	/* Any single bit of either magic byte spoils it. */
	for (unsigned byte = 0; byte < 2; byte++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			buf[byte] ^= (uint8_t)(1u << bit);
			assert_bytes_rejected(n, RUDP__WIRE_MAGIC);
			buf[byte] ^= (uint8_t)(1u << bit);
		}
	}
	/* Magic is checked before the version, which is also wrong here. */
	buf[0] = 0;
	buf[1] = 0;
	buf[2] = 0;
	assert_bytes_rejected(n, RUDP__WIRE_MAGIC);
}
END_TEST

START_TEST(test_wire_rejects_unknown_version)
{
	static const uint8_t bad[] = { 0, 2, 3, 0x81, 0xff };
	struct rudp__hdr h = data_hdr();
	size_t n = raw_encode(&h, payload_bytes, buf);

	for (size_t i = 0; i < sizeof(bad); i++) {
		buf[2] = bad[i];
		assert_bytes_rejected(n, RUDP__WIRE_VERSION);
	}
}
END_TEST

START_TEST(test_wire_rejects_unknown_flag_bits)
{
	/* Each unknown bit alone, on top of an otherwise valid data segment. */
	for (unsigned bit = 4; bit < 8; bit++) {
		struct rudp__hdr h = data_hdr();
		h.flags |= (uint8_t)(1u << bit);
		assert_rejected(&h, RUDP__WIRE_FLAGS);
	}
	struct rudp__hdr h = data_hdr();
	h.flags = 0xff;
	assert_rejected(&h, RUDP__WIRE_FLAGS);
}
END_TEST

START_TEST(test_wire_rejects_syn_fin)
{
	struct rudp__hdr h = syn_hdr();

	h.flags = RUDP__F_SYN | RUDP__F_FIN;
	assert_rejected(&h, RUDP__WIRE_FLAGS);
	h.flags |= RUDP__F_ACK;
	h.dst_cid = 5;
	assert_rejected(&h, RUDP__WIRE_FLAGS);
}
END_TEST

START_TEST(test_wire_rejects_rst_syn)
{
	struct rudp__hdr h = syn_hdr();

	h.flags = RUDP__F_RST | RUDP__F_SYN;
	h.dst_cid = 5;
	assert_rejected(&h, RUDP__WIRE_FLAGS);
	h.flags |= RUDP__F_ACK;
	assert_rejected(&h, RUDP__WIRE_FLAGS);
}
END_TEST

START_TEST(test_wire_rejects_rst_fin)
{
	struct rudp__hdr h = data_hdr();

	h.len = 0;
	h.flags = RUDP__F_RST | RUDP__F_FIN;
	h.ack = 0;
	assert_rejected(&h, RUDP__WIRE_FLAGS);
	h.flags |= RUDP__F_ACK;
	assert_rejected(&h, RUDP__WIRE_FLAGS);
}
END_TEST

START_TEST(test_wire_rejects_missing_ack)
{
	struct rudp__hdr h = data_hdr();

	/* Neither SYN nor RST: the segment must acknowledge something. */
	h.ack = 0;
	h.flags = 0;
	assert_rejected(&h, RUDP__WIRE_FLAGS);
	h.flags = RUDP__F_FIN;
	assert_rejected(&h, RUDP__WIRE_FLAGS);
}
END_TEST

START_TEST(test_wire_rejects_payload_on_syn)
{
	struct rudp__hdr h = syn_hdr();

	h.len = 1;
	assert_rejected(&h, RUDP__WIRE_LENGTH);
	h.flags = RUDP__F_SYN | RUDP__F_ACK;
	h.dst_cid = 9;
	h.len = 500;
	assert_rejected(&h, RUDP__WIRE_LENGTH);
}
END_TEST

START_TEST(test_wire_rejects_payload_on_rst)
{
	struct rudp__hdr h = data_hdr();

	h.flags = RUDP__F_RST;
	h.ack = 0;
	h.len = 1;
	assert_rejected(&h, RUDP__WIRE_LENGTH);
	h.flags = RUDP__F_RST | RUDP__F_ACK;
	h.len = 64;
	assert_rejected(&h, RUDP__WIRE_LENGTH);
}
END_TEST

START_TEST(test_wire_rejects_too_many_sacks)
{
	static const uint8_t counts[] = { RUDP__MAX_SACK + 1, 100, 255 };

	/*
	 * raw_encode writes every block the count claims, so the length
	 * field agrees with the datagram and only the count is wrong.
	 */
	for (size_t i = 0; i < sizeof(counts); i++) {
		struct rudp__hdr h = data_hdr();
		h.nsack = counts[i];
		for (unsigned j = 0; j < RUDP__MAX_SACK; j++) {
			h.sack[j].start = 10 * j + 1;
			h.sack[j].end = 10 * j + 2;
		}
		assert_rejected(&h, RUDP__WIRE_LENGTH);
	}
}
END_TEST

START_TEST(test_wire_rejects_sack_without_ack)
{
	struct rudp__hdr h = syn_hdr();

	h.nsack = 1;
	h.sack[0].start = 1;
	h.sack[0].end = 2;
	assert_rejected(&h, RUDP__WIRE_FIELD);

	h = data_hdr();
	h.flags = RUDP__F_RST;
	h.ack = 0;
	h.len = 0;
	h.nsack = 2;
	h.sack[0].start = 1;
	h.sack[0].end = 2;
	h.sack[1].start = 5;
	h.sack[1].end = 6;
	assert_rejected(&h, RUDP__WIRE_FIELD);
}
END_TEST

START_TEST(test_wire_rejects_ack_number_without_ack_flag)
{
	struct rudp__hdr h = syn_hdr();

	/* An ack field nobody should read must not carry a stale value. */
	h.ack = 1;
	assert_rejected(&h, RUDP__WIRE_FIELD);
}
END_TEST

START_TEST(test_wire_rejects_length_longer_than_datagram)
{
	struct rudp__hdr h = data_hdr();
	size_t n = raw_encode(&h, payload_bytes, buf);

	/* The length field claims one payload byte more than arrived. */
	put16(buf + 32, (uint16_t)(h.len + 1));
	assert_bytes_rejected(n, RUDP__WIRE_LENGTH);
	put16(buf + 32, 0xffff);
	assert_bytes_rejected(n, RUDP__WIRE_LENGTH);
	/* Or the SACK count claims a block that did not arrive. */
	put16(buf + 32, h.len);
	buf[34] = 1;
	assert_bytes_rejected(n, RUDP__WIRE_LENGTH);
}
END_TEST

START_TEST(test_wire_rejects_length_shorter_than_datagram)
{
	struct rudp__hdr h = data_hdr();
	size_t n = raw_encode(&h, payload_bytes, buf);

	/* Trailing bytes the header does not account for. */
	assert_bytes_rejected(n + 1, RUDP__WIRE_LENGTH);
	put16(buf + 32, (uint16_t)(h.len - 1));
	assert_bytes_rejected(n, RUDP__WIRE_LENGTH);
	put16(buf + 32, 0);
	assert_bytes_rejected(n, RUDP__WIRE_LENGTH);
}
END_TEST

START_TEST(test_wire_rejects_nonzero_reserved)
{
	struct rudp__hdr h = data_hdr();
	size_t n = raw_encode(&h, payload_bytes, buf);

	for (unsigned bit = 0; bit < 8; bit++) {
		buf[35] = (uint8_t)(1u << bit);
		assert_bytes_rejected(n, RUDP__WIRE_FIELD);
	}
}
END_TEST

START_TEST(test_wire_rejects_zero_src_cid)
{
	struct rudp__hdr h;

	h = syn_hdr();
	h.src_cid = 0;
	assert_rejected(&h, RUDP__WIRE_FIELD);

	h = syn_hdr();
	h.flags = RUDP__F_SYN | RUDP__F_ACK;
	h.dst_cid = 3;
	h.src_cid = 0;
	assert_rejected(&h, RUDP__WIRE_FIELD);

	h = data_hdr();
	h.src_cid = 0;
	assert_rejected(&h, RUDP__WIRE_FIELD);

	h = data_hdr();
	h.flags = RUDP__F_FIN | RUDP__F_ACK;
	h.src_cid = 0;
	assert_rejected(&h, RUDP__WIRE_FIELD);
}
END_TEST

START_TEST(test_wire_rejects_zero_dst_cid)
{
	static const uint8_t kinds[] = {
		RUDP__F_SYN | RUDP__F_ACK,
		RUDP__F_ACK,
		RUDP__F_FIN | RUDP__F_ACK,
		RUDP__F_RST,
		RUDP__F_RST | RUDP__F_ACK,
	};

	for (size_t i = 0; i < sizeof(kinds); i++) {
		struct rudp__hdr h = data_hdr();
		h.flags = kinds[i];
		h.len = 0;
		if (!(kinds[i] & RUDP__F_ACK))
			h.ack = 0;
		/* The same header with a real dst_cid is fine... */
		assert_round_trip(&h, NULL);
		/* ...so the zero is what gets it rejected. */
		h.dst_cid = 0;
		assert_rejected(&h, RUDP__WIRE_FIELD);
	}
}
END_TEST

START_TEST(test_wire_rejects_dst_cid_on_bare_syn)
{
	struct rudp__hdr h = syn_hdr();

	h.dst_cid = 1;
	assert_rejected(&h, RUDP__WIRE_FIELD);
	h.dst_cid = UINT32_MAX;
	assert_rejected(&h, RUDP__WIRE_FIELD);
}
END_TEST

START_TEST(test_wire_rejects_empty_sack_block)
{
	/* An empty block in any position, after valid ones. */
	for (unsigned bad = 0; bad < RUDP__MAX_SACK; bad++) {
		struct rudp__hdr h = data_hdr();
		h.nsack = RUDP__MAX_SACK;
		for (unsigned i = 0; i < RUDP__MAX_SACK; i++) {
			h.sack[i].start = 5000 + 100 * i;
			h.sack[i].end = i == bad ? h.sack[i].start
						 : h.sack[i].start + 10;
		}
		assert_rejected(&h, RUDP__WIRE_FIELD);
	}
}
END_TEST

START_TEST(test_wire_encode_refuses_what_decode_rejects)
{
	unsigned refused = 0, written = 0;

	/*
	 * Every flag byte against every combination of the fields the rules
	 * look at: encode must succeed exactly when decode accepts the same
	 * header, and then produce exactly the bytes decode accepted.
	 */
	for (unsigned flags = 0; flags < 256; flags++) {
		for (unsigned combo = 0; combo < 32; combo++) {
			struct rudp__hdr h = data_hdr();
			struct rudp__hdr d;
			const uint8_t *pl;
			enum rudp__wire_err why;

			h.flags = (uint8_t)flags;
			h.src_cid = combo & 1 ? 0x1234 : 0;
			h.dst_cid = combo & 2 ? 0x5678 : 0;
			h.len = combo & 4 ? 3 : 0;
			h.ack = combo & 8 ? 77 : 0;
			h.nsack = combo & 16 ? 1 : 0;
			h.sack[0].start = 10;
			h.sack[0].end = 20;
			size_t n = raw_encode(&h, payload_bytes, buf);
			int dec = rudp__wire_decode(buf, n, &d, &pl, &why);
			ssize_t enc = rudp__wire_encode(&h, payload_bytes, out,
							sizeof(out));
			if (dec == 0) {
				ck_assert_int_eq(enc, (ssize_t)n);
				ck_assert_int_eq(memcmp(out, buf, n), 0);
				written++;
			} else {
				ck_assert_int_eq(enc, -EINVAL);
				refused++;
			}
		}
	}
	/* Both branches must have been taken for the check to mean much. */
	ck_assert_uint_gt(written, 10);
	ck_assert_uint_gt(refused, 1000);
}
END_TEST

START_TEST(test_wire_encode_reports_small_buffer)
{
	for (unsigned ns = 0; ns <= RUDP__MAX_SACK; ns++) {
		struct rudp__hdr h = data_hdr();
		h.nsack = (uint8_t)ns;
		for (unsigned i = 0; i < ns; i++) {
			h.sack[i].start = i + 1;
			h.sack[i].end = i + 2;
		}
		size_t need = rudp__wire_size(&h);
		ck_assert_int_eq(rudp__wire_encode(&h, payload_bytes, out,
						   need - 1), -EMSGSIZE);
		ck_assert_int_eq(rudp__wire_encode(&h, payload_bytes, out, 0),
				 -EMSGSIZE);
		ck_assert_int_eq(rudp__wire_encode(&h, payload_bytes, out,
						   need), (ssize_t)need);
	}
}
END_TEST

START_TEST(test_wire_encode_refuses_oversized_datagram)
{
	struct rudp__hdr h = data_hdr();

	/* One byte past what IPv4 UDP can carry, however big the buffer. */
	h.len = (uint16_t)(RUDP__MAX_DGRAM - RUDP__HDR_LEN + 1);
	ck_assert_int_eq(rudp__wire_encode(&h, payload_bytes, buf, sizeof(buf)),
			 -EMSGSIZE);
	h.len--;
	ck_assert_int_eq(rudp__wire_encode(&h, payload_bytes, buf, sizeof(buf)),
			 (ssize_t)RUDP__MAX_DGRAM);
}
END_TEST

START_TEST(test_wire_encode_hdr_is_encode_without_payload)
{
	struct rudp__hdr h = sacked_data_hdr();
	ssize_t full = rudp__wire_encode(&h, payload_bytes, buf, sizeof(buf));
	/*
	 * A datagram sent in slices is the header, then the payload from
	 * wherever it lies: the same bytes as encode's.  The buffer need
	 * only hold the header, but the payload still counts for the size.
	 */
	size_t hl = RUDP__HDR_LEN + 2 * RUDP__SACK_LEN;
	ck_assert_int_eq(rudp__wire_encode_hdr(&h, out, hl), (ssize_t)hl);
	ck_assert_int_eq(full, (ssize_t)(hl + h.len));
	ck_assert_int_eq(memcmp(out, buf, hl), 0);
	ck_assert_int_eq(rudp__wire_encode_hdr(&h, out, hl - 1), -EMSGSIZE);
	h.len = (uint16_t)(RUDP__MAX_DGRAM - hl + 1);
	ck_assert_int_eq(rudp__wire_encode_hdr(&h, out, sizeof(out)),
			 -EMSGSIZE);
	h.flags |= 0x80;
	ck_assert_int_eq(rudp__wire_encode_hdr(&h, out, sizeof(out)), -EINVAL);
}
END_TEST

START_TEST(test_wire_err_names_are_distinct)
{
	/* Each reason feeds its own counter, so each needs its own name. */
	for (int a = 0; a < RUDP__WIRE_NERR; a++) {
		const char *na = rudp__wire_err_name((enum rudp__wire_err)a);
		ck_assert_ptr_nonnull(na);
		ck_assert_str_ne(na, "?");
		for (int b = a + 1; b < RUDP__WIRE_NERR; b++)
			ck_assert_str_ne(na, rudp__wire_err_name(
						     (enum rudp__wire_err)b));
	}
}
END_TEST

/* A random header that encode accepts, for the fuzzer to start from. */
static struct rudp__hdr random_valid_hdr(void)
{
	static const uint8_t kinds[] = {
		RUDP__F_SYN,
		RUDP__F_SYN | RUDP__F_ACK,
		RUDP__F_ACK,
		RUDP__F_FIN | RUDP__F_ACK,
		RUDP__F_RST,
		RUDP__F_RST | RUDP__F_ACK,
	};
	struct rudp__hdr h;

	memset(&h, 0, sizeof(h));
	h.flags = kinds[prng_below(sizeof(kinds))];
	h.src_cid = (uint32_t)prng_next() | 1;
	h.dst_cid = h.flags == RUDP__F_SYN ? 0 : (uint32_t)prng_next() | 1;
	if ((h.flags & RUDP__F_RST) && prng_below(2))
		h.src_cid = 0;
	h.seq = (uint32_t)prng_next();
	h.ack = h.flags & RUDP__F_ACK ? (uint32_t)prng_next() : 0;
	h.wnd = (uint32_t)prng_next();
	h.tsval = (uint32_t)prng_next();
	h.tsecr = (uint32_t)prng_next();
	if (h.flags & RUDP__F_ACK) {
		h.nsack = (uint8_t)prng_below(RUDP__MAX_SACK + 1);
		for (unsigned i = 0; i < h.nsack; i++) {
			h.sack[i].start = (uint32_t)prng_next();
			h.sack[i].end = h.sack[i].start + 1 + prng_below(5000);
		}
	}
	if (!(h.flags & (RUDP__F_SYN | RUDP__F_RST)))
		h.len = (uint16_t)prng_below(64);
	return h;
}

/* Damages a datagram in one of the ways a network or an attacker might. */
static size_t mutate(uint8_t *p, size_t n, size_t cap)
{
	switch (prng_below(6)) {
	case 0: /* Flip one bit anywhere. */
		if (n)
			p[prng_below((uint32_t)n)] ^= (uint8_t)(1u << prng_below(8));
		return n;
	case 1: /* Overwrite one header byte. */
		if (n)
			p[prng_below((uint32_t)(n < RUDP__HDR_LEN ? n
							   : RUDP__HDR_LEN))] =
				(uint8_t)prng_next();
		return n;
	case 2: /* Flag byte: the densest set of rules. */
		if (n > 3)
			p[3] = (uint8_t)prng_next();
		return n;
	case 3: /* Counts and lengths, which decide how much is read. */
		if (n > 34)
			p[32 + prng_below(3)] = (uint8_t)prng_below(8);
		return n;
	case 4: /* Truncate. */
		return n ? prng_below((uint32_t)n) : 0;
	default: /* Extend with junk. */
		{
			size_t extra = 1 + prng_below(16);
			if (n + extra > cap)
				return n;
			for (size_t i = 0; i < extra; i++)
				p[n + i] = (uint8_t)prng_next();
			return n + extra;
		}
	}
}

START_TEST(test_wire_fuzz_never_crashes_and_round_trips)
{
	enum { ITERATIONS = 100000, SCRATCH = 512 };
	uint8_t scratch[SCRATCH];
	unsigned long accepted = 0, rejected = 0;
	unsigned long why_seen[RUDP__WIRE_NERR] = { 0 };

	prng_seed(UINT64_C(0x5255d00df00d1234));
	for (unsigned it = 0; it < ITERATIONS; it++) {
		size_t n;
		unsigned mode = prng_below(8);

		if (mode == 0) {
			/* Pure noise, half of it behind a valid preamble. */
			n = prng_below(SCRATCH);
			for (size_t i = 0; i < n; i++)
				scratch[i] = (uint8_t)prng_next();
			if (n >= 3 && prng_below(2)) {
				put16(scratch, RUDP__MAGIC);
				scratch[2] = RUDP__VERSION;
			}
		} else {
			struct rudp__hdr h = random_valid_hdr();
			ssize_t r = rudp__wire_encode(&h, payload_bytes,
						      scratch, SCRATCH);
			if (r <= 0)
				ck_abort_msg("it %u: valid header refused", it);
			n = (size_t)r;
			/* Mode 1 leaves it intact; the rest damage it. */
			for (unsigned k = mode - 1; k > 0; k--)
				n = mutate(scratch, n, SCRATCH);
		}

		/*
		 * Decode from a heap copy of exactly n bytes so that the
		 * sanitizer build catches any read past the datagram.
		 */
		uint8_t *dg = malloc(n ? n : 1);
		if (!dg)
			ck_abort_msg("out of memory");
		memcpy(dg, scratch, n);
		struct rudp__hdr d;
		const uint8_t *pl = NULL;
		enum rudp__wire_err why = RUDP__WIRE_NERR;
		int rc = rudp__wire_decode(dg, n, &d, &pl, &why);
		/*
		 * Plain ifs rather than ck_assert in this loop: each ck_assert
		 * records its location with the runner, which would dominate
		 * the run time.  The iteration number makes a failure easy to
		 * replay.
		 */
		if (rc == 0) {
			if (why != RUDP__WIRE_OK)
				ck_abort_msg("it %u: accepted with why=%d", it,
					     (int)why);
			if (pl != dg + RUDP__HDR_LEN + d.nsack * RUDP__SACK_LEN)
				ck_abort_msg("it %u: payload misplaced", it);
			ssize_t m = rudp__wire_encode(&d, pl, out, sizeof(out));
			if (m != (ssize_t)n || memcmp(out, dg, n) != 0)
				ck_abort_msg("it %u: %zu bytes accepted, but "
					     "re-encoding returned %zd or "
					     "different bytes", it, n, m);
			accepted++;
		} else {
			if (rc != -EBADMSG || why <= RUDP__WIRE_OK ||
			    why >= RUDP__WIRE_NERR)
				ck_abort_msg("it %u: rc %d why %d", it, rc,
					     (int)why);
			why_seen[why]++;
			rejected++;
		}
		if (mode == 1 && rc != 0)
			ck_abort_msg("it %u: intact datagram rejected as %s",
				     it, rudp__wire_err_name(why));
		free(dg);
	}
	/*
	 * A generator that only ever produced garbage (or only valid input)
	 * would make the loop above vacuous, so insist on both outcomes and
	 * on every rejection reason being reached.
	 */
	ck_assert_uint_gt(accepted, ITERATIONS / 10);
	ck_assert_uint_gt(rejected, ITERATIONS / 10);
	for (int e = RUDP__WIRE_OK + 1; e < RUDP__WIRE_NERR; e++)
		ck_assert_msg(why_seen[e] > 0, "fuzz never produced %s",
			      rudp__wire_err_name((enum rudp__wire_err)e));
}
END_TEST

static Suite *wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc;

	tc = tcase_create("round_trip");
	tcase_add_test(tc, test_wire_round_trips_every_field);
	tcase_add_test(tc, test_wire_round_trips_max_values);
	tcase_add_test(tc, test_wire_round_trips_every_legal_kind);
	tcase_add_test(tc, test_wire_encodes_documented_layout);
	suite_add_tcase(s, tc);

	tc = tcase_create("rejects_malformed");
	tcase_add_test(tc, test_wire_rejects_truncated);
	tcase_add_test(tc, test_wire_rejects_bad_magic);
	tcase_add_test(tc, test_wire_rejects_unknown_version);
	tcase_add_test(tc, test_wire_rejects_unknown_flag_bits);
	tcase_add_test(tc, test_wire_rejects_syn_fin);
	tcase_add_test(tc, test_wire_rejects_rst_syn);
	tcase_add_test(tc, test_wire_rejects_rst_fin);
	tcase_add_test(tc, test_wire_rejects_missing_ack);
	tcase_add_test(tc, test_wire_rejects_payload_on_syn);
	tcase_add_test(tc, test_wire_rejects_payload_on_rst);
	tcase_add_test(tc, test_wire_rejects_too_many_sacks);
	tcase_add_test(tc, test_wire_rejects_sack_without_ack);
	tcase_add_test(tc, test_wire_rejects_ack_number_without_ack_flag);
	tcase_add_test(tc, test_wire_rejects_length_longer_than_datagram);
	tcase_add_test(tc, test_wire_rejects_length_shorter_than_datagram);
	tcase_add_test(tc, test_wire_rejects_nonzero_reserved);
	tcase_add_test(tc, test_wire_rejects_zero_src_cid);
	tcase_add_test(tc, test_wire_rejects_zero_dst_cid);
	tcase_add_test(tc, test_wire_rejects_dst_cid_on_bare_syn);
	tcase_add_test(tc, test_wire_rejects_empty_sack_block);
	suite_add_tcase(s, tc);

	tc = tcase_create("encode_limits");
	tcase_add_test(tc, test_wire_encode_refuses_what_decode_rejects);
	tcase_add_test(tc, test_wire_encode_reports_small_buffer);
	tcase_add_test(tc, test_wire_encode_refuses_oversized_datagram);
	tcase_add_test(tc, test_wire_encode_hdr_is_encode_without_payload);
	tcase_add_test(tc, test_wire_err_names_are_distinct);
	suite_add_tcase(s, tc);

	tc = tcase_create("fuzz");
	tcase_add_test(tc, test_wire_fuzz_never_crashes_and_round_trips);
	/* Sanitizer builds run the 100000 iterations several times slower. */
	tcase_set_timeout(tc, 110);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(wire_suite());
	int failed;

	fill_payload();
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
