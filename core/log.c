#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum rudp__log_level rudp__log_level = RUDP__LOG_WARN;

static const char *const names[] = {
	[RUDP__LOG_ERROR] = "error",
	[RUDP__LOG_WARN] = "warn",
	[RUDP__LOG_INFO] = "info",
	[RUDP__LOG_DEBUG] = "debug",
};

int rudp__log_parse(const char *s, enum rudp__log_level *out)
{
	if (!s || !*s) {
		*out = RUDP__LOG_WARN;
		return 0;
	}
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum rudp__log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void rudp__log_write(enum rudp__log_level lvl, const char *fmt, ...)
{
	char line[512];
	int saved = errno;
	int n = snprintf(line, sizeof(line), "rudp[%ld]: %s: ", (long)getpid(),
			 names[lvl]);
	va_list ap;

	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/*
	 * One write(2) per line so lines from several threads or processes do
	 * not interleave, and no stdio lock that a forked child could inherit
	 * held.  A failed diagnostic has nowhere to be reported.
	 */
	while (write(STDERR_FILENO, line, (size_t)n) < 0 && errno == EINTR)
		;
	errno = saved;
}
