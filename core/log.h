/*
 * Diagnostics to stderr, "rudp[pid]: level: message".  The level comes from
 * RUDP_LOG (error, warn, info, debug; default warn) when the library starts;
 * below warn the library is silent unless something is really wrong.
 */
#ifndef RUDP_CORE_LOG_H
#define RUDP_CORE_LOG_H

enum rudp__log_level {
	RUDP__LOG_ERROR,
	RUDP__LOG_WARN,
	RUDP__LOG_INFO,
	RUDP__LOG_DEBUG,
};

extern enum rudp__log_level rudp__log_level;

/*
 * Parses a RUDP_LOG value.  Returns 0 and sets *out, or -EINVAL for
 * anything but the four names (NULL or "" mean the default).
 */
int rudp__log_parse(const char *s, enum rudp__log_level *out);

void rudp__log_write(enum rudp__log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define rudp__log(lvl, ...)                                   \
	do {                                                  \
		if ((lvl) <= rudp__log_level)                 \
			rudp__log_write((lvl), __VA_ARGS__);  \
	} while (0)

#endif
