/*
 * The socket objects behind the API: each rudp socket is a real descriptor
 * pair, the program holding one end and the library the other, and this
 * module moves the byte stream between the library's end and the
 * connection (the "pump"), keeps the pair's readiness matching TCP's, and
 * finds sockets again from any descriptor the program passes in.
 * docs/DESIGN.md tells the whole story.  Everything here runs with the
 * loop's lock held.
 */
#ifndef RUDP_CORE_SOCK_H
#define RUDP_CORE_SOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "loop.h"

/* Socket options the program may set; stored and reported back. */
enum rudp__opt {
	RUDP__OPT_REUSEADDR, RUDP__OPT_REUSEPORT, RUDP__OPT_KEEPALIVE,
	RUDP__OPT_RCVBUF, RUDP__OPT_SNDBUF, RUDP__OPT_NODELAY,
	RUDP__OPT_KEEPIDLE, RUDP__OPT_KEEPINTVL, RUDP__OPT_KEEPCNT,
	RUDP__OPT_LINGER_ON, RUDP__OPT_LINGER_SECS, RUDP__OPT_N
};

struct rudp__sock {
	struct rudp__src src; /* first: the loop watches the library's end */
	uint64_t cookie;      /* SO_COOKIE of the program's end: our key */
	int core_fd;          /* the library's end; -1 once done or remote */
	int hold_fd;          /* our own copy of the program's end, or -1 */
	int domain;
	bool in_table;
	bool remote;          /* the protocol runs elsewhere, or has ended */
	bool listening;       /* listen() succeeded (remote: it was a listener);
				 atomic: accept() reads it under tab_mu alone */
	bool connected;       /* (remote) it was established */
	bool connecting;      /* connect() called, result not yet collected */
	bool handshake_done;  /* the connection reached ESTABLISHED */
	bool shut_rd, shut_wr;/* the program's shutdown() calls */
	bool core_shut;       /* we shut our sending side: the program's EOF */
	bool eof_in;          /* the program's end has no more to send */
	bool out_blocked;     /* the program's end was full: wait to write */
	bool out_grown;       /* our end's buffer raised for a bulk stream */
	bool in_drained;      /* our end read empty: epoll tells when more comes */
	bool closing;         /* the program let go: drain, then finish */
	bool exiting;         /* process exit: what is in the pair is all */
	bool dirty;           /* on the service list */
	bool accept_blocked;  /* (listener) its pair is full: wait for room */
	uint32_t watching;    /* epoll events registered, ~0u if none */
	size_t plug;          /* bytes plugging the program's send buffer */
	int sndbuf;           /* its send buffer size before the plug */
	int so_error;         /* pending error, read by SO_ERROR */
	unsigned waiters;     /* threads blocked on cv: keep us alive */
	unsigned inflight;    /* (listener) accepted records not yet taken;
				 atomic: accept() takes them off under tab_mu */
	int opts[RUDP__OPT_N];
	struct sockaddr_storage local, peer; /* (remote) cached addresses */
	socklen_t locallen, peerlen;
	struct rudp__lep *lep;
	struct rudp__conn *conn;
	struct rudp__sock *hnext;    /* hash chain */
	struct rudp__sock *dirty_next;
	pthread_cond_t cv;
};

/* What a listener sends the program for each connection, with its fd. */
struct rudp__accept_rec {
	uint64_t cookie;      /* of the descriptor that comes with it */
	uint32_t peerlen, locallen;
	struct sockaddr_storage peer, local;
};

/*
 * The message a record travels in down the listener's pair, with room for
 * the one descriptor it carries (SCM_RIGHTS): the same layout for the
 * library that sends it and the accept() that receives it.
 */
struct rudp__accept_msg {
	struct rudp__accept_rec rec;
	_Alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov;
	struct msghdr msg;
};

/* Points m's header at its own record and control space. */
void rudp__accept_msg_init(struct rudp__accept_msg *m);

extern const struct rudp__loop_hooks rudp__sock_hooks;

/* How many sockets exist; read without the lock by the shim's fast path. */
size_t rudp__sock_count(void);

/*
 * A new local socket: the pair, the program's end returned in *fd with
 * `flags` (SOCK_NONBLOCK/SOCK_CLOEXEC), plugged (not writable) if asked.
 */
int rudp__sock_new(int domain, int flags, bool plugged, bool end_is_hold,
		   struct rudp__sock **out, int *fd);
/*
 * Makes the plugged pair the next connect() taken over by the shim will
 * use, unless there is one; without the loop's lock (after a connecting
 * socket was closed).
 */
void rudp__sock_spare_refill(void);
/* Ends a socket the program never saw. */
void rudp__sock_discard(struct rudp__sock *s);

/* A record of descriptor fd whose protocol runs elsewhere. */
int rudp__sock_new_remote(int fd, int domain,
			  const struct rudp__accept_rec *rec,
			  struct rudp__sock **out);

/* The socket behind descriptor fd, or NULL if fd is not an rudp socket. */
struct rudp__sock *rudp__sock_lookup(int fd);
/* The same by cookie, without a system call. */
struct rudp__sock *rudp__sock_find(uint64_t cookie);

/* Whether fd is one of ours; needs no lock (the shim's test). */
bool rudp__sock_known(int fd);
/* The same in two steps, for callers that go on to use the cookie. */
int rudp__sock_cookie(int fd, uint64_t *cookie);
bool rudp__sock_known_cookie(uint64_t cookie);
int rudp__sock_take_error_cookie(uint64_t cookie, int *err);

/*
 * accept() without the loop's lock: whether the socket with this cookie is
 * a listener (0, -EINVAL, or -EBADF when it is not ours); and, once a
 * record has arrived, whether its socket is ours (1: the listener counts
 * one record fewer in flight), or a remote one (0), or the listener is
 * gone (-EBADF).
 */
int rudp__sock_listener_cookie(uint64_t cookie);
int rudp__sock_accepted_cookie(uint64_t listener, uint64_t cookie);

/*
 * SO_ERROR without the loop's lock: what a program asks right after poll
 * says a non-blocking connect() is done, while the loop thread that woke
 * it is still at work.  0 or -EBADF (not ours).
 */
int rudp__sock_take_error(int fd, int *err);

/* Forgets a remote record. */
void rudp__sock_free_remote(struct rudp__sock *s);

/*
 * The program closed descriptor fd of s (already closed by the caller).
 * If it was the last copy, the connection is closed as TCP would: FIN
 * after every byte written, or RST if the program left data unread or set
 * SO_LINGER to zero.
 */
void rudp__sock_closed(struct rudp__sock *s);

/* The program's thread sends the iovcnt buffers of iov itself (see sock.c). */
ssize_t rudp__sock_send_direct(struct rudp__sock *s, const struct iovec *iov,
			       int iovcnt);

/* Drains the plug: the program's end becomes writable. */
void rudp__sock_unplug(struct rudp__sock *s);

/* Closes our copy of the program's end (a listener needs none). */
void rudp__sock_drop_hold(struct rudp__sock *s);

/*
 * Lets listener s's pair hold `backlog` accepted connections, so that
 * every one the backlog admits can wait in accept() as on TCP.
 */
void rudp__sock_size_backlog(struct rudp__sock *s, unsigned backlog);

/* Queues s for the next service round. */
void rudp__sock_touch(struct rudp__sock *s);

/* Applies buffer and keepalive options to s's connection. */
void rudp__sock_apply_opts(struct rudp__sock *s);

/* The local address, the wildcard and port 0 when unbound. */
void rudp__sock_local_addr(const struct rudp__sock *s,
			   struct sockaddr_storage *ss, socklen_t *len);

/* Blocks on s->cv; false if s was closed meanwhile. */
bool rudp__sock_wait(struct rudp__sock *s);

/* Moves bytes both ways and re-arms epoll for every socket that needs it. */
void rudp__sock_service(void);

/*
 * At exit: treats every open connection as closed by the program and
 * waits, up to `linger`, for the bytes already written to be delivered
 * and the FIN exchange to finish, as the kernel would after a TCP
 * program's exit.  Lock held; it is released while waiting.
 */
void rudp__sock_exit_flush(rudp__usec linger);

#endif
