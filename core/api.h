/*
 * What the API layer offers the LD_PRELOAD shim beyond include/rudp.h.
 * Internal: hidden from the library's users by the version script.
 */
#ifndef RUDP_CORE_API_H
#define RUDP_CORE_API_H

#include <stdbool.h>
#include <sys/socket.h>

/* Whether fd is an rudp socket, of this process or inherited. */
bool rudp__owns(int fd);

/*
 * The calls the shim makes on descriptors that may or may not be ours, in
 * one lookup: RUDP__NOT_OURS when fd is not an rudp socket (nothing done),
 * otherwise what the rudp_* call of the same name returns.
 */
#define RUDP__NOT_OURS (-1000)

/*
 * An rudp socket put in place of descriptor target (dup3), without the
 * intermediate descriptor rudp_socket + dup3 + close would cost.
 */
int rudp__socket_onto(int target, int domain, int type, bool cloexec);
int rudp__maybe_close(int fd);
int rudp__maybe_accept4(int fd, struct sockaddr *addr, socklen_t *len,
			int flags);
int rudp__maybe_getsockopt(int fd, int level, int name, void *val,
			   socklen_t *len);
int rudp__maybe_setsockopt(int fd, int level, int name, const void *val,
			   socklen_t len);

#endif
