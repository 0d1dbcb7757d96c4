/*
 * The descriptors the library itself owns (epoll, timerfd, eventfd, UDP
 * sockets, our ends of socket pairs).  Programs close descriptors they did
 * not open (closefrom loops, close_range); the shim asks here so that ours
 * survive, and a forked child closes all of them at once.  A bitmap with
 * atomic updates (core/fdset.h), so the check on every close(2) costs no
 * lock and no system call.
 */
#ifndef RUDP_CORE_OWNFD_H
#define RUDP_CORE_OWNFD_H

#include <stdbool.h>

#include "fdset.h"

/* Descriptors at or above this are not tracked (and so not protected). */
#define RUDP__OWNFD_MAX RUDP__FDSET_MAX

/*
 * Makes room for our descriptors above the program's (once per process,
 * lock held): when the soft RLIMIT_NOFILE is below the hard one, it is
 * raised and ours are numbered from the old soft limit up.
 */
void rudp__ownfd_init(void);

/* A forked child gets the program's soft limit back. */
void rudp__ownfd_fork_child(void);

/*
 * Takes fd as ours: moves it above the program's range when there is room
 * (fd itself is closed then) and returns the descriptor to use.  A
 * negative fd is returned unchanged.
 */
int rudp__ownfd_adopt(int fd);

/* A copy of fd, ours and close-on-exec, above the program's range. */
int rudp__ownfd_dup(int fd);

/* Whether ours are numbered above the program's range (see above). */
bool rudp__ownfd_high(void);

void rudp__ownfd_add(int fd);
void rudp__ownfd_del(int fd);
bool rudp__ownfd_has(int fd);

/* Closes our descriptor fd and forgets it. */
void rudp__ownfd_close(int fd);

/* The lowest owned descriptor >= from, or -1. */
int rudp__ownfd_next(int from);

#endif
