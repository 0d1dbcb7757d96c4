#include "ports.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Reads a port number 1-65535: decimal digits only, no sign, no spaces. */
static int number(const char *s, size_t len, unsigned *out)
{
	unsigned v = 0;

	if (len == 0 || len > 5)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*out = v;
	return 0;
}

static int bad(struct rudp__ports *p, const char *all, char *err,
	       size_t errlen, const char *tok, size_t len, const char *why)
{
	snprintf(err, errlen, "bad token '%.*s' in RUDP_PORTS=%s: %s",
		 (int)len, tok, all, why);
	/* Nothing half-parsed survives an error. */
	memset(p, 0, sizeof(*p));
	return -EINVAL;
}

int rudp__ports_parse(const char *s, struct rudp__ports *p, char *err,
		      size_t errlen)
{
	const char *all = s;

	memset(p, 0, sizeof(*p));
	if (!s || !*s)
		return 0;
	if (strcmp(s, "*") == 0) {
		p->all = p->any = true;
		return 0;
	}
	for (;;) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		const char *dash = memchr(s, '-', len);
		unsigned lo, hi;

		if (len == 0)
			return bad(p, all, err, errlen, s, 0,
				   "empty entry (stray comma?)");
		if (dash) {
			size_t l1 = (size_t)(dash - s);
			if (number(s, l1, &lo) < 0 ||
			    number(dash + 1, len - l1 - 1, &hi) < 0)
				return bad(p, all, err, errlen, s, len,
					   "a range is two ports 1-65535 "
					   "joined by '-'");
			if (hi < lo)
				return bad(p, all, err, errlen, s, len,
					   "range ends before it starts");
		} else {
			if (number(s, len, &lo) < 0)
				return bad(p, all, err, errlen, s, len,
					   memchr(s, '*', len)
						   ? "'*' must stand alone"
						   : "not a port 1-65535");
			hi = lo;
		}
		for (unsigned v = lo; v <= hi; v++)
			p->bits[v / 64] |= UINT64_C(1) << (v % 64);
		p->any = true;
		if (!end)
			return 0;
		s = end + 1;
	}
}
