/*
 * The public API (include/rudp.h): the seed design's API layer.
 *
 * Each rudp socket is a real descriptor pair; the program holds one end (so
 * poll, select and epoll work on it, and fcntl(O_NONBLOCK) is the
 * non-blocking switch), the library holds the other and the loop watches it.
 *
 * - Until a connection is established the program's end is "plugged": its
 *   send buffer is filled, so it polls as not writable, exactly like a TCP
 *   socket in SYN_SENT; the loop unplugs it when the handshake ends.
 * - A listener's accepted connections travel to the program as descriptors
 *   passed over the listener's pair (SCM_RIGHTS), one record each, so the
 *   listener polls readable exactly while accept() would not block, a
 *   blocking accept() is an ordinary blocking recvmsg() (signals interrupt it
 *   as they would accept()), and any process that shares the listener after
 *   fork() can accept.
 * - Sockets are found by the kernel's socket cookie of the program's end,
 *   not by descriptor number: it is the same through dup() and fork(), and is
 *   never reused.
 * - A socket whose protocol runs in another process (inherited over fork(),
 *   or accepted from a listener that process owns) is "remote": we keep only
 *   what the program may ask about it (addresses, options).
 *
 * Internal functions return -errno; the exported functions convert to
 * -1/errno in one place, ret().
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "rudp.h"

#include "api.h"
#include "log.h"
#include "loop.h"
#include "ownfd.h"

/* Socket options the program may set; we store them and report them back. */
enum opt {
	OPT_REUSEADDR, OPT_REUSEPORT, OPT_KEEPALIVE, OPT_RCVBUF, OPT_SNDBUF,
	OPT_NODELAY, OPT_KEEPIDLE, OPT_KEEPINTVL, OPT_KEEPCNT, OPT_LINGER_ON,
	OPT_LINGER_SECS, OPT_N
};

struct sock {
	struct rudp__src src; /* first: the loop watches the library's end */
	uint64_t cookie;      /* SO_COOKIE of the program's end: our key */
	int core_fd;          /* the library's end; -1 for a remote socket */
	int plug_fd;          /* our copy of the program's end while plugged */
	int domain;
	bool in_table;
	bool remote;          /* the protocol runs in another process */
	bool listening;       /* (remote) it was a listener */
	bool connected;       /* (remote) it was established */
	bool connecting;      /* connect() called, result not yet collected */
	bool shut_rd;         /* the program shut down reading */
	bool shut_wr;         /* the program shut down writing */
	bool core_shut;       /* we shut our sending side (connection over) */
	size_t plug;          /* bytes plugging the program's send buffer */
	int sndbuf;           /* its send buffer size before the plug */
	int so_error;         /* pending error, read by SO_ERROR */
	unsigned waiters;     /* threads blocked on cv: keep us alive */
	unsigned inflight;    /* (listener) accepted records not yet taken */
	int opts[OPT_N];
	struct sockaddr_storage local, peer; /* (remote) cached addresses */
	socklen_t locallen, peerlen;
	struct rudp__lep *lep;
	struct rudp__conn *conn;
	struct sock *hnext;   /* hash chain */
	pthread_cond_t cv;
};

/* What a listener sends the program for each connection, with its fd. */
struct accept_rec {
	uint32_t peerlen, locallen;
	struct sockaddr_storage peer, local;
};

static struct sock **tab;
static size_t ntab, nsocks;

static void on_event(struct rudp__conn *c, enum rudp__event ev);
static void on_sock(struct rudp__src *src, uint32_t events);
static bool free_sock(struct rudp__src *src);
static unsigned backlog_extra(struct rudp__conn *l);
static void at_fork_child(void);

static const struct rudp__loop_hooks hooks = {
	.on_event = on_event,
	.backlog_extra = backlog_extra,
	.at_fork_child = at_fork_child,
	.on_sock = on_sock,
	.free_sock = free_sock,
};

/* The single place an internal -errno becomes the POSIX -1/errno. */
static int ret(int r)
{
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return r;
}

static size_t bucket(uint64_t cookie, size_t n)
{
	return (size_t)(cookie * UINT64_C(0x9e3779b97f4a7c15) >> 32) & (n - 1);
}

static int table_put(struct sock *s)
{
	if (nsocks >= ntab) {
		size_t n = ntab ? 2 * ntab : 64;
		struct sock **t = calloc(n, sizeof(*t));
		if (!t)
			return -ENOMEM;
		for (size_t i = 0; i < ntab; i++) {
			while (tab[i]) {
				struct sock *x = tab[i];
				tab[i] = x->hnext;
				x->hnext = t[bucket(x->cookie, n)];
				t[bucket(x->cookie, n)] = x;
			}
		}
		free(tab);
		tab = t;
		ntab = n;
	}
	size_t b = bucket(s->cookie, ntab);
	s->hnext = tab[b];
	tab[b] = s;
	s->in_table = true;
	/* Read without the lock by rudp__owns(); written under it. */
	__atomic_store_n(&nsocks, nsocks + 1, __ATOMIC_RELAXED);
	return 0;
}

static void table_del(struct sock *s)
{
	if (!s->in_table)
		return;
	struct sock **pp = &tab[bucket(s->cookie, ntab)];
	while (*pp != s)
		pp = &(*pp)->hnext;
	*pp = s->hnext;
	s->in_table = false;
	__atomic_store_n(&nsocks, nsocks - 1, __ATOMIC_RELAXED);
}

static int cookie_of(int fd, uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);

	return getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len) < 0 ? -errno
									 : 0;
}

/* The socket behind descriptor fd, or NULL if fd is not an rudp socket. */
static struct sock *lookup(int fd)
{
	uint64_t cookie;
	struct sock *s;

	if (!nsocks || cookie_of(fd, &cookie) < 0)
		return NULL;
	for (s = tab[bucket(cookie, ntab)]; s; s = s->hnext)
		if (s->cookie == cookie)
			return s;
	return NULL;
}

static bool nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_NONBLOCK);
}

static socklen_t addr_len(int domain)
{
	return domain == AF_INET ? sizeof(struct sockaddr_in)
				 : sizeof(struct sockaddr_in6);
}

/* Copies an address out with getsockname(2)'s truncation rules. */
static void copy_addr(const void *a, socklen_t alen, struct sockaddr *out,
		      socklen_t *outlen)
{
	if (!out || !outlen)
		return;
	memcpy(out, a, *outlen < alen ? *outlen : alen);
	*outlen = alen;
}

/*
 * Fills the program's send buffer so that fd polls as not writable.  The
 * smallest buffer keeps the plug to a few kilobytes.  We keep a copy of fd
 * until the plug is drained, since restoring the buffer size needs one and
 * the program may have renumbered or closed its own by then; the price is
 * that closing a connecting socket with plain close(2) takes effect when
 * the handshake ends, not at once.
 */
static int plug(struct sock *s, int fd)
{
	static const char zeros[4096];
	socklen_t len = sizeof(s->sndbuf);
	int one = 1;
	ssize_t n;

	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &s->sndbuf, &len) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &one, sizeof(one)) < 0)
		return -errno;
	s->plug_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (s->plug_fd < 0)
		return -errno;
	rudp__ownfd_add(s->plug_fd);
	for (;;) {
		n = send(fd, zeros, sizeof(zeros), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		s->plug += (size_t)n;
	}
	return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
}

/* Drains the plug: the program's end becomes writable, its buffer restored. */
static void unplug(struct sock *s)
{
	char sink[4096];

	if (s->plug_fd < 0)
		return;
	while (s->plug) {
		size_t want = s->plug < sizeof(sink) ? s->plug : sizeof(sink);
		ssize_t n = recv(s->core_fd, sink, want, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		s->plug -= (size_t)n;
	}
	/* getsockopt reported the doubled size the kernel keeps; undo it. */
	(void)setsockopt(s->plug_fd, SOL_SOCKET, SO_SNDBUF,
			 &(int){ s->sndbuf / 2 }, sizeof(int));
	rudp__ownfd_close(s->plug_fd);
	s->plug_fd = -1;
}

static struct sock *sock_alloc(int domain)
{
	struct sock *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	pthread_cond_init(&s->cv, NULL);
	s->src.kind = RUDP__SRC_SOCK;
	s->domain = domain;
	s->core_fd = s->plug_fd = -1;
	return s;
}

static void sock_free(struct sock *s)
{
	pthread_cond_destroy(&s->cv);
	free(s);
}

/*
 * Makes a local socket: a descriptor pair, the program's end returned in
 * *fd with `flags` (SOCK_NONBLOCK/SOCK_CLOEXEC) applied.
 */
static int sock_new(int domain, int flags, bool plugged, struct sock **out,
		    int *fd)
{
	int sv[2] = { -1, -1 };
	struct sock *s = sock_alloc(domain);
	int r;

	if (!s)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		goto fail;
	}
	s->core_fd = sv[1];
	rudp__ownfd_add(sv[1]);
	if ((!(flags & SOCK_CLOEXEC) && fcntl(sv[0], F_SETFD, 0) < 0) ||
	    fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0 ||
	    ((flags & SOCK_NONBLOCK) && fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0)) {
		r = -errno;
		goto fail;
	}
	r = cookie_of(sv[0], &s->cookie);
	if (r < 0)
		goto fail;
	if (plugged && (r = plug(s, sv[0])) < 0)
		goto fail;
	r = table_put(s);
	if (r < 0)
		goto fail;
	/*
	 * No events asked for: epoll always reports a hang-up, and a hang-up
	 * on our end means the program closed its last copy of the other.
	 */
	r = rudp__loop_watch(sv[1], 0, &s->src);
	if (r < 0) {
		table_del(s);
		goto fail;
	}
	*out = s;
	*fd = sv[0];
	return 0;
fail:
	if (s->plug_fd >= 0)
		rudp__ownfd_close(s->plug_fd);
	if (sv[0] >= 0) {
		close(sv[0]);
		rudp__ownfd_close(sv[1]);
	}
	sock_free(s);
	return r;
}

/*
 * Ends a local s: the connection is released to the core (which resets it
 * if it is still open), our descriptors are closed and s is handed to the
 * loop to free once no waiter still holds it.
 */
static void sock_destroy(struct sock *s)
{
	table_del(s);
	if (s->conn) {
		s->conn->user = NULL;
		rudp__ep_release(&s->lep->ep, s->conn);
		s->conn = NULL;
	}
	if (s->lep) {
		rudp__lep_flush(s->lep);
		rudp__lep_put(s->lep);
		s->lep = NULL;
	}
	if (s->plug_fd >= 0)
		rudp__ownfd_close(s->plug_fd);
	s->plug_fd = -1;
	rudp__loop_bury(s->core_fd, &s->src);
	rudp__ownfd_close(s->core_fd);
	pthread_cond_broadcast(&s->cv);
}

static bool free_sock(struct rudp__src *src)
{
	struct sock *s = (struct sock *)src;

	if (s->waiters)
		return false;
	sock_free(s);
	return true;
}

static void local_addr(const struct sock *s, struct sockaddr_storage *ss,
		       socklen_t *len);

/*
 * Keeps what the program may still ask about s (its addresses and state)
 * once the protocol behind it is gone, as a remote socket does.
 */
static void cache_addrs(struct sock *s)
{
	local_addr(s, &s->local, &s->locallen);
	if (s->conn) {
		s->listening = s->conn->state == RUDP__LISTEN;
		s->connected = s->conn->state == RUDP__ESTABLISHED;
		memcpy(&s->peer, &s->conn->peer, s->conn->peerlen);
		s->peerlen = s->conn->peerlen;
	}
}

static void on_sock(struct rudp__src *src, uint32_t events)
{
	struct sock *s = (struct sock *)src;

	if (!(events & (EPOLLHUP | EPOLLERR)))
		return;
	/*
	 * Our end hangs up once both directions are shut.  If the program
	 * shut them itself (shutdown(), or its write side after the
	 * connection ended), its descriptor is still open: the protocol side
	 * ends but the record stays, so later calls on the descriptor still
	 * answer.  Otherwise the program closed its last copy.
	 */
	if (s->shut_wr && (s->shut_rd || s->core_shut)) {
		cache_addrs(s);
		table_del(s);
		sock_destroy(s);
		struct sock *d = sock_alloc(s->domain);
		if (!d)
			return;
		d->cookie = s->cookie;
		d->remote = true;
		d->listening = s->listening;
		d->connected = s->connected;
		d->local = s->local;
		d->locallen = s->locallen;
		d->peer = s->peer;
		d->peerlen = s->peerlen;
		memcpy(d->opts, s->opts, sizeof(d->opts));
		if (table_put(d) < 0)
			sock_free(d);
		return;
	}
	sock_destroy(s);
}

static void local_addr(const struct sock *s, struct sockaddr_storage *ss,
		       socklen_t *len)
{
	*len = sizeof(*ss);
	if (!s->lep || getsockname(s->lep->fd, (struct sockaddr *)ss, len) < 0) {
		/* Unbound: the wildcard address and port 0, as for TCP. */
		memset(ss, 0, sizeof(*ss));
		ss->ss_family = (sa_family_t)s->domain;
		*len = addr_len(s->domain);
	}
}

/*
 * A listener's child is established: give it a socket of its own and send
 * the program's end down the listener's pair, where accept() picks it up.
 */
static void deliver(struct sock *l, struct rudp__conn *c)
{
	struct accept_rec rec = { 0 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = &rec, .iov_len = sizeof(rec) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	struct sock *n;
	ssize_t r;
	int fd;

	if (sock_new(l->domain, SOCK_CLOEXEC, false, &n, &fd) < 0)
		goto abort;
	n->conn = c;
	c->user = n;
	c->user_owned = true;
	n->lep = l->lep;
	n->lep->refs++;
	memcpy(&rec.peer, &c->peer, c->peerlen);
	rec.peerlen = c->peerlen;
	local_addr(l, &rec.local, &rec.locallen);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	do
		r = sendmsg(l->core_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	/* In flight, the descriptor lives on in the message. */
	close(fd);
	if (r == (ssize_t)sizeof(rec)) {
		l->inflight++;
		return;
	}
	/* No room: the program's end is gone, and the hang-up ends n. */
	rudp__log(RUDP__LOG_WARN, "cannot queue an accepted connection: %s",
		  r < 0 ? strerror(errno) : "short write");
	return;
abort:
	rudp__ep_release(c->ep, c);
}

static unsigned backlog_extra(struct rudp__conn *l)
{
	struct sock *s = l->user;
	int outq = 0;

	if (!s)
		return 0;
	/*
	 * Records taken by another process (after fork) are invisible to us
	 * one by one, but an empty queue is not: then nothing waits.
	 */
	if (s->inflight && ioctl(s->core_fd, SIOCOUTQ, &outq) == 0 && outq == 0)
		s->inflight = 0;
	return s->inflight;
}

static void on_event(struct rudp__conn *c, enum rudp__event ev)
{
	struct sock *s = c->user;

	if (!s)
		return;
	switch (ev) {
	case RUDP__EV_ACCEPT:
		while (c->aq_head)
			deliver(s, rudp__conn_accept(c));
		break;
	case RUDP__EV_STATE:
		if (c->state == RUDP__ESTABLISHED && s->plug)
			unplug(s);
		if (c->state == RUDP__CLOSED) {
			if (s->connecting && c->err)
				s->so_error = c->err;
			/*
			 * The program's end must report the end: readable
			 * (EOF) and writable (SO_ERROR has the reason).  Only
			 * our sending side is shut, so that a later hang-up
			 * still means the program closed its end.
			 */
			unplug(s);
			shutdown(s->core_fd, SHUT_WR);
			s->core_shut = true;
		}
		break;
	}
	pthread_cond_broadcast(&s->cv);
}

/* Blocks on s->cv; false if s was closed meanwhile. */
static bool wait_on(struct sock *s)
{
	s->waiters++;
	rudp__loop_wait(&s->cv);
	s->waiters--;
	return !s->src.dead;
}

/*
 * In a fork()ed child: every local socket becomes a remote one, keeping
 * what the program may still ask about it.  The loop drops the rest.
 */
static void at_fork_child(void)
{
	for (size_t i = 0; i < ntab; i++) {
		for (struct sock *s = tab[i]; s; s = s->hnext) {
			s->waiters = 0;
			if (s->remote)
				continue;
			cache_addrs(s);
			s->remote = true;
			s->conn = NULL;
			s->lep = NULL;
			s->core_fd = s->plug_fd = -1;
			s->plug = 0;
		}
	}
}

static int check_addr(const struct sock *s, const struct sockaddr *addr,
		      socklen_t len)
{
	if (!addr)
		return -EFAULT;
	if (len < sizeof(sa_family_t))
		return -EINVAL;
	if (addr->sa_family != s->domain)
		return -EAFNOSUPPORT;
	if (len < addr_len(s->domain))
		return -EINVAL;
	return 0;
}

static int do_socket(int domain, int type, int protocol)
{
	int flags = type & (SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct sock *s;
	int r, fd;

	if (domain != AF_INET && domain != AF_INET6)
		return -EAFNOSUPPORT;
	if ((type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != SOCK_STREAM)
		return -EINVAL;
	if (protocol != 0 && protocol != IPPROTO_TCP)
		return -EPROTONOSUPPORT;
	r = rudp__loop_lock(&hooks);
	if (r < 0)
		return r;
	r = sock_new(domain, flags, true, &s, &fd);
	if (r == 0)
		r = fd;
	rudp__loop_unlock();
	return r;
}

int rudp_socket(int domain, int type, int protocol)
{
	return ret(do_socket(domain, type, protocol));
}

/* Everything below runs with the loop's lock held. */

static int do_bind(struct sock *s, const struct sockaddr *addr, socklen_t len)
{
	int r;

	if (s->remote || s->lep)
		return -EINVAL;
	r = check_addr(s, addr, len);
	if (r < 0)
		return r;
	return rudp__lep_open(s->domain, addr, len, NULL, 0, &s->lep);
}

static int do_listen(struct sock *s, int backlog)
{
	int r;

	if (s->remote)
		return s->listening ? 0 : -EINVAL;
	if (s->conn && s->conn->state != RUDP__LISTEN)
		return -EINVAL;
	if (backlog <= 0)
		backlog = 1;
	if (backlog > SOMAXCONN)
		backlog = SOMAXCONN;
	if (!s->lep) {
		struct sockaddr_storage any = { .ss_family = (sa_family_t)s->domain };
		r = rudp__lep_open(s->domain, (struct sockaddr *)&any,
				   addr_len(s->domain), NULL, 0, &s->lep);
		if (r < 0)
			return r;
	}
	if (!s->conn) {
		s->conn = rudp__ep_conn_new(&s->lep->ep);
		if (!s->conn)
			return -ENOMEM;
		s->conn->user_owned = true;
		s->conn->user = s;
	}
	r = rudp__conn_listen(s->conn, (unsigned)backlog);
	rudp__ep_settle(&s->lep->ep, s->conn);
	/*
	 * A listener's readiness is its queue of accepted connections alone;
	 * it needs no plug, and dropping ours lets its hang-up be seen as
	 * soon as the program closes it.
	 */
	if (r == 0)
		unplug(s);
	return r;
}

static int connect_result(struct sock *s)
{
	int err = s->so_error;

	s->connecting = false;
	s->so_error = 0;
	if (s->conn->state == RUDP__ESTABLISHED)
		return 0;
	return -(err ? err : ECONNABORTED);
}

static int do_connect(struct sock *s, int fd, const struct sockaddr *addr,
		      socklen_t len)
{
	int r;

	if (s->remote)
		return s->listening ? -EINVAL : -EISCONN;
	if (s->conn) {
		switch (s->conn->state) {
		case RUDP__LISTEN:
			return -EINVAL;
		case RUDP__SYN_SENT:
		case RUDP__SYN_RCVD:
			return -EALREADY;
		case RUDP__ESTABLISHED:
			/* The first call after a non-blocking success. */
			if (s->connecting) {
				s->connecting = false;
				return 0;
			}
			return -EISCONN;
		case RUDP__CLOSED:
			/*
			 * A failed attempt: report it once, as TCP does, then
			 * refuse reuse; portable programs make a new socket.
			 */
			return s->connecting ? connect_result(s) : -ECONNABORTED;
		}
	}
	r = check_addr(s, addr, len);
	if (r < 0)
		return r;
	if (!s->lep)
		r = rudp__lep_open(s->domain, NULL, 0, addr, len, &s->lep);
	else if (s->lep->ep.nconns == 0)
		r = rudp__lep_connect(s->lep, addr, len);
	if (r < 0)
		return r;
	s->conn = rudp__ep_conn_new(&s->lep->ep);
	if (!s->conn)
		return -ENOMEM;
	s->conn->user_owned = true;
	s->conn->user = s;
	memcpy(&s->conn->peer, addr, addr_len(s->domain));
	s->conn->peerlen = addr_len(s->domain);
	s->connecting = true;
	r = rudp__conn_connect(s->conn, rudp__now());
	rudp__ep_settle(&s->lep->ep, s->conn);
	rudp__lep_flush(s->lep);
	if (r < 0)
		return r;
	if (nonblocking(fd))
		return -EINPROGRESS;
	while (s->conn && s->conn->state == RUDP__SYN_SENT)
		if (!wait_on(s))
			return -EBADF;
	return connect_result(s);
}

/*
 * Registers a descriptor that accept() received.  If this process owns its
 * protocol we know it already; otherwise it is remote and the record's
 * addresses are all we will ever know of it.
 */
static int adopt(struct sock *l, int fd, const struct accept_rec *rec)
{
	struct sock *n = lookup(fd);
	uint64_t cookie;
	int r;

	if (n) {
		if (l->inflight)
			l->inflight--;
		return 0;
	}
	r = cookie_of(fd, &cookie);
	if (r < 0)
		return r;
	n = sock_alloc(l->domain);
	if (!n)
		return -ENOMEM;
	n->cookie = cookie;
	n->remote = true;
	n->connected = true;
	memcpy(&n->peer, &rec->peer, sizeof(n->peer));
	n->peerlen = rec->peerlen;
	memcpy(&n->local, &rec->local, sizeof(n->local));
	n->locallen = rec->locallen;
	r = table_put(n);
	if (r < 0)
		sock_free(n);
	return r;
}

static int do_accept(int fd, struct sockaddr *addr, socklen_t *len,
		     int flags)
{
	struct accept_rec rec;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = &rec, .iov_len = sizeof(rec) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm;
	struct sock *s;
	ssize_t n;
	int nfd = -1, r;

	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
		return -EINVAL;
	r = rudp__loop_lock(&hooks);
	if (r < 0)
		return r;
	s = lookup(fd);
	r = !s ? -EBADF
	       : (s->remote ? s->listening
			    : s->conn && s->conn->state == RUDP__LISTEN)
		 ? 0 : -EINVAL;
	rudp__loop_unlock();
	if (r < 0)
		return r;
	/*
	 * The wait happens outside the lock, in the kernel: a blocking accept
	 * sleeps in recvmsg() (restarted or interrupted by signals exactly as
	 * accept() would be), a non-blocking one gets EAGAIN from it.
	 */
	do
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR && 0);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			memcpy(&nfd, CMSG_DATA(cm), sizeof(int));
	if (n == 0)
		return -EINVAL; /* the listener was shut down */
	if (nfd < 0 || n != (ssize_t)sizeof(rec)) {
		if (nfd >= 0)
			close(nfd);
		return -ECONNABORTED;
	}
	if ((!(flags & SOCK_CLOEXEC) && fcntl(nfd, F_SETFD, 0) < 0) ||
	    ((flags & SOCK_NONBLOCK) && fcntl(nfd, F_SETFL, O_NONBLOCK) < 0)) {
		r = -errno;
		goto fail;
	}
	r = rudp__loop_lock(&hooks);
	if (r < 0)
		goto fail;
	s = lookup(fd);
	r = s ? adopt(s, nfd, &rec) : -EBADF;
	rudp__loop_unlock();
	if (r < 0)
		goto fail;
	copy_addr(&rec.peer, rec.peerlen, addr, len);
	return nfd;
fail:
	close(nfd);
	return r;
}

/* Whether the program's end of s is gone: our end has hung up. */
static bool hung_up(const struct sock *s)
{
	struct pollfd p = { .fd = s->core_fd, .events = 0 };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

static int do_close(struct sock *s, int fd)
{
	close(fd);
	/*
	 * A remote record goes with the descriptor.  A local socket ends when
	 * its last copy closes (dup, fork), as with TCP.  The loop would hear
	 * of it from the hang-up on our end, but we look now, so that the
	 * peer is told before close() returns; one still connecting holds our
	 * own copy (the plug), so it is ended here regardless: closing it
	 * must abort the attempt at once.
	 */
	if (s->remote) {
		table_del(s);
		sock_free(s);
	} else if (s->plug_fd >= 0 || hung_up(s)) {
		sock_destroy(s);
	}
	return 0;
}

static int do_getsockname(struct sock *s, struct sockaddr *addr,
			  socklen_t *len)
{
	struct sockaddr_storage ss;
	socklen_t sl;

	if (!addr || !len)
		return -EFAULT;
	if (s->remote)
		copy_addr(&s->local, s->locallen, addr, len);
	else {
		local_addr(s, &ss, &sl);
		copy_addr(&ss, sl, addr, len);
	}
	return 0;
}

static int do_getpeername(struct sock *s, struct sockaddr *addr,
			  socklen_t *len)
{
	if (!addr || !len)
		return -EFAULT;
	if (s->remote) {
		if (!s->connected)
			return -ENOTCONN;
		copy_addr(&s->peer, s->peerlen, addr, len);
		return 0;
	}
	if (!s->conn || s->conn->state != RUDP__ESTABLISHED)
		return -ENOTCONN;
	copy_addr(&s->conn->peer, s->conn->peerlen, addr, len);
	return 0;
}

static int do_shutdown(struct sock *s, int fd, int how)
{
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return -EINVAL;
	if (s->remote ? !s->connected
		      : !s->conn || s->conn->state != RUDP__ESTABLISHED)
		return -ENOTCONN;
	/*
	 * Reading ends when we stop feeding the program's end; writing ends
	 * when the program's end stops sending to ours, which the data path
	 * reads as end of stream.  Both are done on the descriptors, so they
	 * hold for every copy of the socket, as shutdown() does on TCP.
	 */
	if (how != SHUT_WR) {
		if (s->remote)
			shutdown(fd, SHUT_RD);
		else
			shutdown(s->core_fd, SHUT_WR);
		s->shut_rd = true;
	}
	if (how != SHUT_RD) {
		s->shut_wr = true;
		if (shutdown(fd, SHUT_WR) < 0)
			return -errno;
	}
	return 0;
}

/* Which stored option (level, name) is, or -1. */
static int opt_index(int level, int name)
{
	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_REUSEADDR: return OPT_REUSEADDR;
		case SO_REUSEPORT: return OPT_REUSEPORT;
		case SO_KEEPALIVE: return OPT_KEEPALIVE;
		case SO_RCVBUF: return OPT_RCVBUF;
		case SO_SNDBUF: return OPT_SNDBUF;
		}
	} else if (level == IPPROTO_TCP) {
		switch (name) {
		case TCP_NODELAY: return OPT_NODELAY;
		case TCP_KEEPIDLE: return OPT_KEEPIDLE;
		case TCP_KEEPINTVL: return OPT_KEEPINTVL;
		case TCP_KEEPCNT: return OPT_KEEPCNT;
		}
	}
	return -1;
}

static enum rudp__state state_of(const struct sock *s)
{
	if (s->remote)
		return s->listening ? RUDP__LISTEN
				    : s->connected ? RUDP__ESTABLISHED
						   : RUDP__CLOSED;
	return s->conn ? s->conn->state : RUDP__CLOSED;
}

/* Linux's tcp_info state numbers for ours. */
static uint8_t tcpi_state(enum rudp__state st)
{
	switch (st) {
	case RUDP__CLOSED: return TCP_CLOSE;
	case RUDP__LISTEN: return TCP_LISTEN;
	case RUDP__SYN_SENT: return TCP_SYN_SENT;
	case RUDP__SYN_RCVD: return TCP_SYN_RECV;
	case RUDP__ESTABLISHED: return TCP_ESTABLISHED;
	}
	return TCP_CLOSE;
}

static int put_opt(void *val, socklen_t *len, const void *v, socklen_t vlen)
{
	/* Like the kernel, a short buffer gets a truncated value. */
	if (*len > vlen)
		*len = vlen;
	memcpy(val, v, *len);
	return 0;
}

static int do_getsockopt(struct sock *s, int level, int name, void *val,
			 socklen_t *len)
{
	int v, i;

	if (!val || !len)
		return -EFAULT;
	if (level == IPPROTO_TCP && name == TCP_INFO) {
		struct tcp_info ti = { .tcpi_state = tcpi_state(state_of(s)) };
		if (!s->remote && s->conn) {
			ti.tcpi_rto = (uint32_t)rudp__rtt_rto(&s->conn->rtt,
							      s->conn->backoff);
			ti.tcpi_rtt = (uint32_t)s->conn->rtt.srtt;
			ti.tcpi_rttvar = (uint32_t)s->conn->rtt.rttvar;
			ti.tcpi_backoff = (uint8_t)s->conn->backoff;
		}
		return put_opt(val, len, &ti, sizeof(ti));
	}
	if (level == SOL_SOCKET && name == SO_LINGER) {
		struct linger lg = { .l_onoff = s->opts[OPT_LINGER_ON],
				     .l_linger = s->opts[OPT_LINGER_SECS] };
		return put_opt(val, len, &lg, sizeof(lg));
	}
	if (*len < sizeof(int))
		return -EINVAL;
	if (level == SOL_SOCKET && name == SO_ERROR) {
		v = s->so_error;
		s->so_error = 0;
	} else if (level == SOL_SOCKET && name == SO_TYPE) {
		v = SOCK_STREAM;
	} else if (level == SOL_SOCKET && name == SO_DOMAIN) {
		v = s->domain;
	} else if (level == SOL_SOCKET && name == SO_PROTOCOL) {
		v = IPPROTO_TCP;
	} else if (level == SOL_SOCKET && name == SO_ACCEPTCONN) {
		v = state_of(s) == RUDP__LISTEN;
	} else if ((i = opt_index(level, name)) >= 0) {
		v = s->opts[i];
	} else {
		return -ENOPROTOOPT;
	}
	return put_opt(val, len, &v, sizeof(v));
}

static int do_setsockopt(struct sock *s, int level, int name,
			 const void *val, socklen_t len)
{
	int i = opt_index(level, name), v;

	if (!val)
		return -EFAULT;
	if (level == SOL_SOCKET && name == SO_LINGER) {
		struct linger lg;
		if (len < sizeof(lg))
			return -EINVAL;
		memcpy(&lg, val, sizeof(lg));
		s->opts[OPT_LINGER_ON] = lg.l_onoff;
		s->opts[OPT_LINGER_SECS] = lg.l_linger;
		return 0;
	}
	if (i < 0)
		return -ENOPROTOOPT;
	if (len < sizeof(int))
		return -EINVAL;
	memcpy(&v, val, sizeof(v));
	/* Booleans read back as 0/1, as the kernel reports them. */
	if (i == OPT_REUSEADDR || i == OPT_REUSEPORT || i == OPT_KEEPALIVE ||
	    i == OPT_NODELAY)
		v = !!v;
	s->opts[i] = v;
	return 0;
}

static int do_stats(struct rudp_stats *out, unsigned long size)
{
	struct rudp__ep_stats st;
	struct rudp_stats r = { 0 };

	if (!out)
		return -EFAULT;
	rudp__loop_stats(&st);
	r.dgrams_in = st.dgrams_in;
	r.dgrams_out = st.dgrams_out;
	for (int i = 0; i < RUDP__WIRE_NERR; i++)
		r.malformed += st.malformed[i];
	r.no_conn = st.no_conn;
	r.retransmits = st.retransmits;
	r.backlog_drops = st.backlog_drops;
	r.resets_out = st.resets_out;
	r.resets_in = st.resets_in;
	memcpy(out, &r, size < sizeof(r) ? size : sizeof(r));
	return 0;
}

/*
 * Each exported call on a socket: take the lock (starting the loop on first
 * use), find the socket, run the internal function, release, convert.
 */
#define ON_SOCK(fd, call)                              \
	do {                                           \
		int r_ = rudp__loop_lock(&hooks);      \
		if (r_ < 0)                            \
			return ret(r_);                \
		struct sock *s = lookup(fd);           \
		r_ = s ? (call) : -EBADF;              \
		rudp__loop_unlock();                   \
		return ret(r_);                        \
	} while (0)

int rudp_bind(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	ON_SOCK(fd, do_bind(s, addr, addrlen));
}

int rudp_listen(int fd, int backlog)
{
	ON_SOCK(fd, do_listen(s, backlog));
}

int rudp_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	ON_SOCK(fd, do_connect(s, fd, addr, addrlen));
}

int rudp_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	return ret(do_accept(fd, addr, addrlen, flags));
}

int rudp_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	return rudp_accept4(fd, addr, addrlen, 0);
}

int rudp_close(int fd)
{
	ON_SOCK(fd, do_close(s, fd));
}

int rudp_shutdown(int fd, int how)
{
	ON_SOCK(fd, do_shutdown(s, fd, how));
}

int rudp_getsockname(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	ON_SOCK(fd, do_getsockname(s, addr, addrlen));
}

int rudp_getpeername(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	ON_SOCK(fd, do_getpeername(s, addr, addrlen));
}

int rudp_getsockopt(int fd, int level, int optname, void *optval,
		    socklen_t *optlen)
{
	ON_SOCK(fd, do_getsockopt(s, level, optname, optval, optlen));
}

int rudp_setsockopt(int fd, int level, int optname, const void *optval,
		    socklen_t optlen)
{
	ON_SOCK(fd, do_setsockopt(s, level, optname, optval, optlen));
}

int rudp_get_stats(struct rudp_stats *out, unsigned long size)
{
	int r = rudp__loop_lock(&hooks);

	if (r < 0)
		return ret(r);
	r = do_stats(out, size);
	rudp__loop_unlock();
	return ret(r);
}

bool rudp__owns(int fd)
{
	bool mine;

	/* The shim asks on every call: no sockets, no lock, no syscall. */
	if (!__atomic_load_n(&nsocks, __ATOMIC_RELAXED))
		return false;
	if (rudp__loop_lock(&hooks) < 0)
		return false;
	mine = lookup(fd) != NULL;
	rudp__loop_unlock();
	return mine;
}
