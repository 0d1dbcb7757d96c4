/*
 * Wraparound-safe comparisons.  Sequence numbers and 32-bit timestamps live
 * on a circle, so "a before b" means "b is less than half the circle ahead
 * of a"; every comparison of them goes through these helpers so that a
 * plain `<` never sneaks in.  Times are uint64_t microseconds of the
 * monotonic clock, which do not wrap in practice, but they get helpers too
 * so that the unit is named at every comparison.
 */
#ifndef RUDP_CORE_SEQ_H
#define RUDP_CORE_SEQ_H

#include <stdbool.h>
#include <stdint.h>

static inline bool rudp__seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

static inline bool rudp__seq_le(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) <= 0;
}

static inline bool rudp__seq_gt(uint32_t a, uint32_t b)
{
	return rudp__seq_lt(b, a);
}

static inline bool rudp__seq_ge(uint32_t a, uint32_t b)
{
	return rudp__seq_le(b, a);
}

/* True when lo <= x < hi on the sequence circle. */
static inline bool rudp__seq_in(uint32_t x, uint32_t lo, uint32_t hi)
{
	return x - lo < hi - lo;
}

/* Microseconds: the one time unit of the core. */
typedef uint64_t rudp__usec;

#define RUDP__NEVER UINT64_MAX
#define RUDP__MSEC  UINT64_C(1000)
#define RUDP__SEC   UINT64_C(1000000)

static inline bool rudp__time_before(rudp__usec a, rudp__usec b)
{
	return a < b;
}

static inline bool rudp__time_reached(rudp__usec now, rudp__usec deadline)
{
	return now >= deadline;
}

static inline rudp__usec rudp__time_min(rudp__usec a, rudp__usec b)
{
	return rudp__time_before(a, b) ? a : b;
}

#endif
