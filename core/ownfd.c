#include "ownfd.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/resource.h>
#include <unistd.h>

static struct rudp__fdset own;

/*
 * Where our descriptors go.  The kernel numbers a new descriptor with the
 * lowest free number and counts it against the soft RLIMIT_NOFILE, so ours
 * (two or three per connection where TCP needs the program's one) would
 * push the program's own numbers up, toward FD_SETSIZE for a select()
 * program, and make it run out at a third of the connections it manages on
 * TCP: about 330 under the usual soft limit of 1024.  The hard limit is
 * usually far higher (systemd: 524288), and the soft limit stays low only
 * for select()'s sake.  So we raise the soft limit and number ours from the
 * old soft limit up: the program's numbers and its headroom are what they
 * would be on TCP.  The cost is that the program sees the raised limit in
 * getrlimit(), and so would a program it execs without forking first (a
 * forked child gets the old limit back).  Above OLD_SOFT_MAX we leave the
 * limits alone: the program has room enough, and numbering ours that high
 * would make the kernel's descriptor table of the process that large.
 */
#define OLD_SOFT_MAX 16384

static int base;         /* ours are numbered from here; 0: anywhere */
static rlim_t old_soft;  /* the soft limit before we raised it */
static rlim_t raised_to; /* what we raised it to */

void rudp__ownfd_init(void)
{
	struct rlimit rl;

	if (base || getrlimit(RLIMIT_NOFILE, &rl) < 0 ||
	    rl.rlim_cur > OLD_SOFT_MAX || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t soft = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max < RUDP__OWNFD_MAX ? rl.rlim_max
						     : RUDP__OWNFD_MAX;
	if (rl.rlim_cur <= soft || setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	old_soft = soft;
	raised_to = rl.rlim_cur;
	base = (int)soft;
}

void rudp__ownfd_fork_child(void)
{
	struct rlimit rl;

	/* Unless the program has set a limit of its own since. */
	if (raised_to && getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur == raised_to) {
		rl.rlim_cur = old_soft;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	base = 0;
	raised_to = 0;
}

int rudp__ownfd_adopt(int fd)
{
	if (fd >= 0 && fd < base) {
		int moved = fcntl(fd, F_DUPFD_CLOEXEC, base);
		/* Full up there: the low number serves as well. */
		if (moved >= 0) {
			close(fd);
			fd = moved;
		}
	}
	rudp__ownfd_add(fd);
	return fd;
}

int rudp__ownfd_dup(int fd)
{
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, base);

	if (copy < 0 && base)
		copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	rudp__ownfd_add(copy);
	return copy;
}

void rudp__ownfd_add(int fd)
{
	rudp__fdset_add(&own, fd);
}

void rudp__ownfd_del(int fd)
{
	rudp__fdset_del(&own, fd);
}

bool rudp__ownfd_high(void)
{
	return base > 0;
}

bool rudp__ownfd_has(int fd)
{
	return rudp__fdset_has(&own, fd);
}

void rudp__ownfd_close(int fd)
{
	/* Forget it first: once closed, the number may be reused at once. */
	rudp__ownfd_del(fd);
	close(fd);
}

int rudp__ownfd_next(int from)
{
	return rudp__fdset_next(&own, from);
}
