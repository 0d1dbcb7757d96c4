/*
 * A set of descriptor numbers with atomic updates.  A membership test is
 * one load, with no lock and no system call, so it can sit on paths that
 * every close(2) or write(2) of the program takes.  Numbers at or above
 * RUDP__FDSET_MAX are never members.
 */
#ifndef RUDP_CORE_FDSET_H
#define RUDP_CORE_FDSET_H

#include <stdbool.h>
#include <stdint.h>

#define RUDP__FDSET_MAX (1 << 20)

struct rudp__fdset {
	uint64_t w[RUDP__FDSET_MAX / 64];
};

static inline bool rudp__fdset_fits(int fd)
{
	return fd >= 0 && fd < RUDP__FDSET_MAX;
}

static inline void rudp__fdset_add(struct rudp__fdset *s, int fd)
{
	if (rudp__fdset_fits(fd))
		__atomic_fetch_or(&s->w[fd / 64], UINT64_C(1) << (fd % 64),
				  __ATOMIC_RELAXED);
}

static inline void rudp__fdset_del(struct rudp__fdset *s, int fd)
{
	if (rudp__fdset_fits(fd))
		__atomic_fetch_and(&s->w[fd / 64], ~(UINT64_C(1) << (fd % 64)),
				   __ATOMIC_RELAXED);
}

static inline bool rudp__fdset_has(const struct rudp__fdset *s, int fd)
{
	return rudp__fdset_fits(fd) &&
	       ((__atomic_load_n(&s->w[fd / 64], __ATOMIC_RELAXED) >>
		 (fd % 64)) & 1);
}

/* The lowest member >= from, or -1. */
static inline int rudp__fdset_next(const struct rudp__fdset *s, int from)
{
	if (from < 0)
		from = 0;
	for (int w = from / 64; w < RUDP__FDSET_MAX / 64; w++) {
		uint64_t v = __atomic_load_n(&s->w[w], __ATOMIC_RELAXED);
		if (w == from / 64)
			v &= ~UINT64_C(0) << (from % 64);
		if (v)
			return w * 64 + __builtin_ctzll(v);
	}
	return -1;
}

#endif
