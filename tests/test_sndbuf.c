/*
 * The send ring: memory only once the program writes, reserve hands out
 * the contiguous free run (to the end of the ring or up to the oldest
 * byte), commit and consume move the two ends, and slices point at any
 * range of held bytes by its offset from snd_una, in place: one slice, or
 * two when the range wraps around the end of the ring.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sndbuf.h"

static struct rudp__sndbuf sb;

/* Byte i of the stream the tests write. */
static uint8_t byte_at(uint64_t i)
{
	return (uint8_t)(i * 37 + (i >> 8));
}

static uint64_t written, acked; /* stream offsets of the two ends */

static void teardown(void)
{
	rudp__sndbuf_free(&sb);
}

/* Reserves, fills the whole run and commits it; returns its length. */
static size_t fill(void)
{
	uint8_t *p = NULL;
	size_t n = rudp__sndbuf_reserve(&sb, &p);

	for (size_t i = 0; i < n; i++)
		p[i] = byte_at(written + i);
	rudp__sndbuf_commit(&sb, n);
	written += n;
	return n;
}

/* Writes exactly n bytes through reserve and commit. */
static void write_n(size_t n)
{
	uint8_t *p = NULL;
	size_t k = rudp__sndbuf_reserve(&sb, &p);

	ck_assert_uint_ge(k, n);
	for (size_t i = 0; i < n; i++)
		p[i] = byte_at(written + i);
	rudp__sndbuf_commit(&sb, n);
	written += n;
}

static void ack(size_t n)
{
	rudp__sndbuf_consume(&sb, n);
	acked += n;
}

/*
 * Points at n bytes at offset off from snd_una and checks the slices: in
 * the ring, as few as possible (a second only from the ring's start, for
 * a range that wraps), and holding exactly those bytes.
 */
static void check_slices(size_t off, size_t n)
{
	struct rudp__slices sl;
	size_t at = (sb.head + off) % sb.cap, got = 0, bad = n;

	rudp__sndbuf_slices(&sb, off, n, &sl);
	ck_assert_uint_eq(sl.n, n == 0 ? 0 : at + n > sb.cap ? 2 : 1);
	for (unsigned k = 0; k < sl.n; k++) {
		const uint8_t *p = sl.iov[k].iov_base;
		ck_assert_ptr_eq(p, k ? sb.buf : sb.buf + at);
		ck_assert_uint_gt(sl.iov[k].iov_len, 0);
		ck_assert_uint_le(sl.iov[k].iov_len,
				  sb.cap - (size_t)(p - sb.buf));
		for (size_t i = 0; i < sl.iov[k].iov_len && bad == n; i++)
			if (p[i] != byte_at(acked + off + got + i))
				bad = got + i;
		got += sl.iov[k].iov_len;
	}
	ck_assert_uint_eq(got, n);
	ck_assert_msg(bad == n, "slices at %zu: byte %zu differs", off, bad);
}

START_TEST(test_sndbuf_lazy_allocation)
{
	uint8_t *p = NULL;

	written = acked = 0;
	rudp__sndbuf_init(&sb, 1000);
	ck_assert_ptr_null(sb.buf);
	ck_assert_uint_eq(sb.len, 0);
	ck_assert_uint_eq(rudp__sndbuf_space(&sb), 1000);
	/* The first reserve allocates and offers the whole ring. */
	ck_assert_uint_eq(rudp__sndbuf_reserve(&sb, &p), 1000);
	ck_assert_ptr_nonnull(sb.buf);
	ck_assert_ptr_eq(p, sb.buf);
	/* Free returns to the unallocated, empty state. */
	rudp__sndbuf_free(&sb);
	ck_assert_ptr_null(sb.buf);
	ck_assert_uint_eq(sb.len, 0);
	ck_assert_uint_eq(sb.head, 0);
	ck_assert_uint_eq(rudp__sndbuf_space(&sb), 1000);
}
END_TEST

START_TEST(test_sndbuf_reserve_commit_consume)
{
	uint8_t *p = NULL;

	written = acked = 0;
	rudp__sndbuf_init(&sb, 1000);
	write_n(300);
	ck_assert_uint_eq(sb.len, 300);
	ck_assert_uint_eq(rudp__sndbuf_space(&sb), 700);
	/* The next run starts right after the committed bytes. */
	ck_assert_uint_eq(rudp__sndbuf_reserve(&sb, &p), 700);
	ck_assert_ptr_eq(p, sb.buf + 300);
	/* A reserve not committed changes nothing. */
	ck_assert_uint_eq(sb.len, 300);
	ack(100);
	ck_assert_uint_eq(sb.head, 100);
	ck_assert_uint_eq(sb.len, 200);
	ck_assert_uint_eq(rudp__sndbuf_space(&sb), 800);
	check_slices(0, 200);
	/* Committing less than reserved is allowed. */
	write_n(50);
	ck_assert_uint_eq(sb.len, 250);
	check_slices(0, 250);
}
END_TEST

START_TEST(test_sndbuf_reserve_stops_at_ring_end_then_head)
{
	uint8_t *p = NULL;

	written = acked = 0;
	rudp__sndbuf_init(&sb, 1000);
	write_n(800);
	ack(600);
	/* Tail at 800, head at 600: first the 200 to the end... */
	ck_assert_uint_eq(rudp__sndbuf_reserve(&sb, &p), 200);
	ck_assert_ptr_eq(p, sb.buf + 800);
	ck_assert_uint_eq(fill(), 200);
	/* ...then the 600 from the start of the ring up to the head. */
	ck_assert_uint_eq(rudp__sndbuf_reserve(&sb, &p), 600);
	ck_assert_ptr_eq(p, sb.buf);
	ck_assert_uint_eq(fill(), 600);
	ck_assert_uint_eq(sb.len, 1000);
	ck_assert_uint_eq(rudp__sndbuf_space(&sb), 0);
	check_slices(0, 1000);
}
END_TEST

START_TEST(test_sndbuf_full_reserve_returns_zero)
{
	uint8_t *p = NULL;

	written = acked = 0;
	rudp__sndbuf_init(&sb, 512);
	ck_assert_uint_eq(fill(), 512);
	ck_assert_uint_eq(rudp__sndbuf_space(&sb), 0);
	ck_assert_uint_eq(rudp__sndbuf_reserve(&sb, &p), 0);
	/* Full with the head in the middle of the ring too. */
	ack(100);
	ck_assert_uint_eq(fill(), 100);
	ck_assert_uint_eq(rudp__sndbuf_reserve(&sb, &p), 0);
	/* One byte acked is one byte of room, at the right place. */
	ack(1);
	ck_assert_uint_eq(rudp__sndbuf_reserve(&sb, &p), 1);
	ck_assert_ptr_eq(p, sb.buf + 100);
}
END_TEST

START_TEST(test_sndbuf_slices_at_offsets_across_wrap)
{
	written = acked = 0;
	rudp__sndbuf_init(&sb, 1000);
	write_n(900);
	ack(700);
	/*
	 * Head at 700: 300 bytes held up to the end of the ring (offsets
	 * 0..299), then 600 from index 0 (offsets 300..899).
	 */
	ck_assert_uint_eq(fill(), 100);
	write_n(600);
	ck_assert_uint_eq(sb.len, 900);
	/* Entirely before the wrap, straddling it, entirely after it. */
	check_slices(0, 300);
	check_slices(100, 200);
	check_slices(250, 100);
	check_slices(299, 2);
	check_slices(300, 600);
	check_slices(899, 1);
	check_slices(0, 900);
	/* A zero-length range is no slice at all. */
	check_slices(450, 0);
}
END_TEST

START_TEST(test_sndbuf_stream_through_many_wraps)
{
	uint64_t rng = 12345;

	written = acked = 0;
	rudp__sndbuf_init(&sb, 777);
	/* Random writes, slices and acks: the ring goes round ~1000 times. */
	while (written < 777 * 1000) {
		rng = rng * 6364136223846793005u + 1442695040888963407u;
		uint32_t r = (uint32_t)(rng >> 33);
		if (r % 3)
			fill();
		if (sb.len) {
			size_t off = r % sb.len;
			size_t n = (r >> 10) % (sb.len - off + 1);
			check_slices(off, n);
			ack((r >> 20) % (sb.len + 1));
		}
		ck_assert_uint_eq(sb.len, written - acked);
		ck_assert_uint_eq(sb.head, acked % 777);
	}
}
END_TEST

static Suite *sndbuf_suite(void)
{
	Suite *s = suite_create("sndbuf");
	TCase *tc;

	tc = tcase_create("allocation");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_sndbuf_lazy_allocation);
	suite_add_tcase(s, tc);

	tc = tcase_create("reserve_commit_consume");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_sndbuf_reserve_commit_consume);
	tcase_add_test(tc, test_sndbuf_reserve_stops_at_ring_end_then_head);
	tcase_add_test(tc, test_sndbuf_full_reserve_returns_zero);
	suite_add_tcase(s, tc);

	tc = tcase_create("slices");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_sndbuf_slices_at_offsets_across_wrap);
	tcase_add_test(tc, test_sndbuf_stream_through_many_wraps);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sndbuf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
