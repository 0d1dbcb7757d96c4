/*
 * RUDP_PORTS: which TCP ports the shim carries over rudp.  A comma list of
 * ports and inclusive ranges ("9000", "9000,9100-9199"), or "*" for every
 * port.  Pure parsing, no I/O, so the unit tests cover every case.
 */
#ifndef RUDP_SHIM_PORTS_H
#define RUDP_SHIM_PORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rudp__ports {
	bool all;
	bool any;                  /* at least one port is marked */
	uint64_t bits[65536 / 64]; /* bit p set: port p is marked */
};

/*
 * Parses s into *p.  NULL or an empty string marks nothing.  On error
 * returns -EINVAL and writes a message naming the offending token to err.
 */
int rudp__ports_parse(const char *s, struct rudp__ports *p, char *err,
		      size_t errlen);

static inline bool rudp__ports_has(const struct rudp__ports *p, uint16_t port)
{
	return p->all || (p->bits[port / 64] >> (port % 64)) & 1;
}

#endif
