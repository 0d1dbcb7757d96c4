/*
 * rudp: a reliable, TCP-like connection protocol carried over UDP.
 *
 * The API mirrors the BSD socket calls.  Every handle it returns is a real
 * kernel file descriptor (one end of an AF_UNIX socketpair whose other end
 * the library's event-loop thread services), so a program can poll(),
 * select() or epoll it, and fcntl(O_NONBLOCK) on it switches the rudp calls
 * below to non-blocking behaviour exactly as it would for a TCP socket.
 *
 * All calls return -1 and set errno on failure.  Each function lists the
 * errno values it can produce in addition to EBADF (the descriptor is not an
 * rudp socket, or has been closed) and ENOMEM.
 *
 * Thread safety: every call may be made from any thread.  One background
 * thread per process, started by the first call that needs it, runs the
 * protocol.
 */
#ifndef RUDP_H
#define RUDP_H

#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RUDP_VERSION_MAJOR 0
#define RUDP_VERSION_MINOR 1

/*
 * Creates an unconnected rudp socket.  `domain` is AF_INET or AF_INET6,
 * `type` is SOCK_STREAM optionally or-ed with SOCK_NONBLOCK and/or
 * SOCK_CLOEXEC, `protocol` is 0 or IPPROTO_TCP.
 *
 * Errors: EAFNOSUPPORT (other domain), EPROTONOSUPPORT (other protocol),
 * EINVAL (other type or flags), EMFILE/ENFILE (no descriptors left).
 */
int rudp_socket(int domain, int type, int protocol);

/*
 * Binds the socket to a local address; the port is the UDP port the
 * connection's datagrams use.  Port 0 picks an ephemeral port.
 *
 * Errors: EINVAL (already bound, or addrlen too short), EAFNOSUPPORT
 * (address family differs from the socket's), EADDRINUSE, EADDRNOTAVAIL,
 * EACCES, as bind(2) on the underlying UDP socket.
 */
int rudp_bind(int fd, const struct sockaddr *addr, socklen_t addrlen);

/*
 * Marks the socket as accepting connections.  A backlog <= 0 is taken as 1;
 * values above SOMAXCONN are capped.  The backlog bounds half-open plus
 * not-yet-accepted connections; SYNs beyond it are dropped (the peer
 * retransmits).  An unbound socket is bound to an ephemeral port first.
 * Calling listen again on a listener updates the backlog.
 *
 * Errors: EINVAL (socket is connecting or connected), EADDRINUSE.
 */
int rudp_listen(int fd, int backlog);

/*
 * Connects to a listening rudp peer with a three-way handshake.  A blocking
 * socket waits until the handshake completes or fails.  A non-blocking one
 * returns -1/EINPROGRESS; the descriptor becomes writable when the handshake
 * ends, and rudp_getsockopt(SO_ERROR) then gives its result.
 *
 * Errors: ECONNREFUSED (no listener: RST or ICMP port unreachable),
 * ETIMEDOUT (no answer after the SYN retries), EINPROGRESS, EALREADY (a
 * non-blocking connect is in progress), EISCONN, EAFNOSUPPORT, EINVAL
 * (listening socket, bad address length), EINTR (a signal arrived while
 * blocked; the handshake continues as with TCP).
 */
int rudp_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);

/*
 * Takes the oldest established connection off the listener's queue and
 * returns a new descriptor for it.  `flags` accepts SOCK_NONBLOCK and
 * SOCK_CLOEXEC as accept4(2).  The listener descriptor is readable exactly
 * while the queue is non-empty.  After fork(), any process holding the
 * listener may accept from it.
 *
 * Errors: EINVAL (not listening, bad flags), EAGAIN (non-blocking and
 * nothing queued), EINTR (a signal without SA_RESTART), EMFILE/ENFILE.
 */
int rudp_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);
int rudp_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);

/*
 * Closes the descriptor.  As with TCP, the connection ends when the last
 * copy of the descriptor (dup, fork) is closed; closing a socket that is
 * still connecting aborts the attempt at once.  An open connection is then
 * aborted with a reset in this version; graceful close arrives with the
 * data stream.  Plain close(2) has the same effect.
 */
int rudp_close(int fd);

/*
 * Shuts down reading (SHUT_RD), writing (SHUT_WR) or both, for every copy
 * of the descriptor, as shutdown(2).  Use this rather than shutdown(2) on an
 * rudp descriptor: the descriptor underneath is a socket pair, and shutting
 * it down directly is indistinguishable from closing it.
 *
 * Errors: EINVAL (bad `how`), ENOTCONN (not connected).
 */
int rudp_shutdown(int fd, int how);

/*
 * The local and peer addresses, as getsockname(2)/getpeername(2).
 *
 * Errors: ENOTCONN (getpeername on an unconnected socket), EINVAL.
 */
int rudp_getsockname(int fd, struct sockaddr *addr, socklen_t *addrlen);
int rudp_getpeername(int fd, struct sockaddr *addr, socklen_t *addrlen);

/*
 * Socket options.  SOL_SOCKET/SO_ERROR reads and clears the pending error
 * (the result of a non-blocking connect); SO_TYPE, SO_DOMAIN, SO_PROTOCOL
 * and SO_ACCEPTCONN answer as for TCP; IPPROTO_TCP/TCP_INFO fills the state
 * and RTT fields of struct tcp_info; options stored by rudp_setsockopt read
 * back as set.
 *
 * Errors: ENOPROTOOPT (option not supported), EINVAL (optlen too small).
 */
int rudp_getsockopt(int fd, int level, int optname, void *optval,
		    socklen_t *optlen);

/*
 * Stores the options a TCP program sets so that it reads them back:
 * SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, SO_RCVBUF, SO_SNDBUF, SO_LINGER,
 * TCP_NODELAY, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT.  They do not change
 * the protocol's behaviour in this version.
 *
 * Errors: ENOPROTOOPT (other options), EINVAL (optlen too small).
 */
int rudp_setsockopt(int fd, int level, int optname, const void *optval,
		    socklen_t optlen);

/*
 * Protocol counters for this process, for diagnostics and tests.  Fields
 * are only ever added at the end; `size` is sizeof(struct rudp_stats) as the
 * caller knows it.
 */
struct rudp_stats {
	unsigned long long dgrams_in;       /* datagrams received */
	unsigned long long dgrams_out;      /* datagrams sent */
	unsigned long long malformed;       /* dropped: failed to decode */
	unsigned long long no_conn;         /* dropped: no such connection */
	unsigned long long retransmits;     /* segments sent again on timeout */
	unsigned long long backlog_drops;   /* SYNs dropped: backlog full */
	unsigned long long resets_out;      /* RSTs sent */
	unsigned long long resets_in;       /* RSTs accepted */
};
int rudp_get_stats(struct rudp_stats *out, unsigned long size);

#ifdef __cplusplus
}
#endif

#endif /* RUDP_H */
