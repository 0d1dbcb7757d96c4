/*
 * The descriptors the library itself owns (epoll, timerfd, eventfd, UDP
 * sockets, our ends of socket pairs).  Programs close descriptors they did
 * not open (closefrom loops, close_range); the shim asks here so that ours
 * survive, and a forked child closes all of them at once.  A bitmap with
 * atomic updates, so the check on every close(2) costs no lock and no
 * system call.
 */
#ifndef RUDP_CORE_OWNFD_H
#define RUDP_CORE_OWNFD_H

#include <stdbool.h>

/* Descriptors at or above this are not tracked (and so not protected). */
#define RUDP__OWNFD_MAX (1 << 20)

void rudp__ownfd_add(int fd);
void rudp__ownfd_del(int fd);
bool rudp__ownfd_has(int fd);

/* Closes our descriptor fd and forgets it. */
void rudp__ownfd_close(int fd);

/* The lowest owned descriptor >= from, or -1. */
int rudp__ownfd_next(int from);

#endif
