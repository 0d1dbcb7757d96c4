#include "ownfd.h"

#include <stdint.h>
#include <unistd.h>

static uint64_t bits[RUDP__OWNFD_MAX / 64];

void rudp__ownfd_add(int fd)
{
	if (fd >= 0 && fd < RUDP__OWNFD_MAX)
		__atomic_fetch_or(&bits[fd / 64], UINT64_C(1) << (fd % 64),
				  __ATOMIC_RELAXED);
}

void rudp__ownfd_del(int fd)
{
	if (fd >= 0 && fd < RUDP__OWNFD_MAX)
		__atomic_fetch_and(&bits[fd / 64], ~(UINT64_C(1) << (fd % 64)),
				   __ATOMIC_RELAXED);
}

bool rudp__ownfd_has(int fd)
{
	if (fd < 0 || fd >= RUDP__OWNFD_MAX)
		return false;
	return (__atomic_load_n(&bits[fd / 64], __ATOMIC_RELAXED) >>
		(fd % 64)) & 1;
}

void rudp__ownfd_close(int fd)
{
	/* Forget it first: once closed, the number may be reused at once. */
	rudp__ownfd_del(fd);
	close(fd);
}

int rudp__ownfd_next(int from)
{
	if (from < 0)
		from = 0;
	for (int w = from / 64; w < RUDP__OWNFD_MAX / 64; w++) {
		uint64_t v = __atomic_load_n(&bits[w], __ATOMIC_RELAXED);
		if (w == from / 64)
			v &= ~UINT64_C(0) << (from % 64);
		if (v)
			return w * 64 + __builtin_ctzll(v);
	}
	return -1;
}
