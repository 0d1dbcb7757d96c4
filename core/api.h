/*
 * What the API layer offers the LD_PRELOAD shim beyond include/rudp.h.
 * Internal: hidden from the library's users by the version script.
 */
#ifndef RUDP_CORE_API_H
#define RUDP_CORE_API_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Whether fd is an rudp socket, of this process or inherited. */
bool rudp__owns(int fd);

/*
 * The calls the shim makes on descriptors that may or may not be ours, in
 * one lookup: RUDP__NOT_OURS when fd is not an rudp socket (nothing done),
 * otherwise what the rudp_* call of the same name returns.
 */
#define RUDP__NOT_OURS (-1000)

/*
 * What a kernel TCP socket hands on to the rudp socket that replaces it:
 * the options the program set on it (a value of 0 is left unset) and the
 * address it was bound to.
 */
#define RUDP__CARRY_MAX 10
struct rudp__carry {
	unsigned nopts;
	struct { int level, name, val; } opts[RUDP__CARRY_MAX];
	struct linger linger;
	struct sockaddr_storage bound;
	socklen_t boundlen;   /* 0: not bound to a port */
};

/*
 * An rudp socket put in place of descriptor target (dup3), without the
 * intermediate descriptor rudp_socket + dup3 + close would cost, with
 * carry's options and address applied under the same lock.  0, or -1 and
 * errno; a failed bind leaves the new socket in place, unbound.
 */
int rudp__socket_onto(int target, int domain, int type, bool cloexec,
		      const struct rudp__carry *carry);
int rudp__maybe_close(int fd);
/*
 * Bytes of the iovcnt buffers of iov (not all empty) the program's thread
 * put in fd's send ring, or RUDP__NOT_OURS.
 */
ssize_t rudp__maybe_send_direct(int fd, const struct iovec *iov, int iovcnt);
int rudp__maybe_accept4(int fd, struct sockaddr *addr, socklen_t *len,
			int flags);
int rudp__maybe_getsockopt(int fd, int level, int name, void *val,
			   socklen_t *len);
int rudp__maybe_setsockopt(int fd, int level, int name, const void *val,
			   socklen_t len);

#endif
