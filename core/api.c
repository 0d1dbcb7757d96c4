/*
 * The public API (include/rudp.h): the seed design's API layer.  Each rudp
 * socket is a real descriptor pair; the program holds one end (so poll and
 * epoll work on it), the library holds the other.  Until a connection is
 * established the program's end is "plugged": its send buffer is filled, so
 * it polls as not writable, exactly like a TCP socket in SYN_SENT; the loop
 * unplugs it when the handshake ends.  A listener's end carries one byte
 * per connection waiting in its accept queue, so it polls readable exactly
 * when accept() would not block.
 *
 * Internal functions return -errno; the exported functions convert to
 * -1/errno in one place, ret().
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "rudp.h"

#include "log.h"
#include "loop.h"

struct sock {
	struct rudp__src src; /* first: the loop watches the library's end */
	uint64_t cookie;      /* SO_COOKIE of the program's end: our key */
	int core_fd;          /* the library's end */
	int plug_fd;          /* our copy of the program's end while plugged */
	int domain;
	bool in_table;
	bool connecting;      /* connect() called, result not yet collected */
	size_t plug;          /* bytes plugging the program's send buffer */
	int sndbuf;           /* its send buffer size before the plug */
	int so_error;         /* pending error, read by SO_ERROR */
	unsigned waiters;     /* threads blocked on cv: keep us alive */
	struct rudp__lep *lep;
	struct rudp__conn *conn;
	struct sock *hnext;   /* hash chain */
	pthread_cond_t cv;
};

/*
 * Sockets are found by the kernel's socket cookie of the program's end, not
 * by descriptor number: the cookie is the same through dup(), dup2() and
 * fork(), and is never reused, so a number the program closed and got back
 * for something else can never be mistaken for ours.
 */
static struct sock **tab;
static size_t ntab, nsocks;

static void on_event(struct rudp__conn *c, enum rudp__event ev);
static void on_sock(struct rudp__src *src, uint32_t events);
static bool free_sock(struct rudp__src *src);

static const struct rudp__loop_hooks hooks = {
	.on_event = on_event,
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
	nsocks++;
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
	nsocks--;
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

	if (!ntab || cookie_of(fd, &cookie) < 0)
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

/* Drains the plug: fd becomes writable and gets its buffer size back. */
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
	close(s->plug_fd);
	s->plug_fd = -1;
}

/*
 * Makes a socket: a descriptor pair, the program's end returned in *fd.
 * `flags` are SOCK_NONBLOCK/SOCK_CLOEXEC for the program's end.
 */
static int sock_new(int domain, int flags, bool plugged, struct sock **out,
		    int *fd)
{
	int sv[2] = { -1, -1 };
	struct sock *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	pthread_cond_init(&s->cv, NULL);
	s->src.kind = RUDP__SRC_SOCK;
	s->domain = domain;
	s->plug_fd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		goto fail;
	}
	s->core_fd = sv[1];
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
		close(s->plug_fd);
	if (sv[0] >= 0) {
		close(sv[0]);
		close(sv[1]);
	}
	pthread_cond_destroy(&s->cv);
	free(s);
	return r;
}

/*
 * Ends s: the connection is released to the core (which resets it if it is
 * still open), our descriptors are closed and s is handed to the loop to
 * free once no waiter still holds it.
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
		close(s->plug_fd);
	rudp__loop_bury(s->core_fd, &s->src);
	close(s->core_fd);
	pthread_cond_broadcast(&s->cv);
}

static bool free_sock(struct rudp__src *src)
{
	struct sock *s = (struct sock *)src;

	if (s->waiters)
		return false;
	pthread_cond_destroy(&s->cv);
	free(s);
	return true;
}

static void on_sock(struct rudp__src *src, uint32_t events)
{
	struct sock *s = (struct sock *)src;

	/*
	 * Both directions shut means the program's end is gone: we only ever
	 * shut down our sending side, so a hang-up cannot be our own doing.
	 */
	if (events & (EPOLLHUP | EPOLLERR))
		sock_destroy(s);
}

static void on_event(struct rudp__conn *c, enum rudp__event ev)
{
	struct sock *s = c->user;

	if (!s)
		return;
	switch (ev) {
	case RUDP__EV_ACCEPT:
		/* One readable byte per queued connection. */
		while (send(s->core_fd, "a", 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
		       errno == EINTR)
			;
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

static int check_addr(const struct sock *s, const struct sockaddr *addr,
		      socklen_t len)
{
	if (!addr)
		return -EFAULT;
	if (len < sizeof(sa_family_t))
		return -EINVAL;
	if (addr->sa_family != s->domain)
		return -EAFNOSUPPORT;
	if (len < (s->domain == AF_INET ? sizeof(struct sockaddr_in)
					: sizeof(struct sockaddr_in6)))
		return -EINVAL;
	return 0;
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

static int do_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct sock *s = lookup(fd);
	int r;

	if (!s)
		return -EBADF;
	if (s->lep)
		return -EINVAL;
	r = check_addr(s, addr, len);
	if (r < 0)
		return r;
	return rudp__lep_open(s->domain, addr, len, NULL, 0, &s->lep);
}

static int do_listen(int fd, int backlog)
{
	struct sock *s = lookup(fd);
	int r;

	if (!s)
		return -EBADF;
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
	 * A listener's readiness is the accept tokens alone; it needs no
	 * plug, and dropping ours lets its hang-up be seen as soon as the
	 * program closes it.
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

static int do_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct sock *s = lookup(fd);
	int r;

	if (!s)
		return -EBADF;
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

static int do_accept(int fd, struct sockaddr *addr, socklen_t *len,
		     int flags)
{
	struct sock *s = lookup(fd), *n;
	struct rudp__conn *c;
	char token;
	int r, nfd;

	if (!s)
		return -EBADF;
	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
		return -EINVAL;
	for (;;) {
		if (!s->conn || s->conn->state != RUDP__LISTEN)
			return -EINVAL;
		if (s->conn->aq_head)
			break;
		if (nonblocking(fd))
			return -EAGAIN;
		if (!wait_on(s))
			return -EBADF;
	}
	r = sock_new(s->domain, flags, false, &n, &nfd);
	if (r < 0)
		return r;
	c = rudp__conn_accept(s->conn);
	while (recv(fd, &token, 1, MSG_DONTWAIT) < 0 && errno == EINTR)
		;
	c->user_owned = true;
	c->user = n;
	n->conn = c;
	n->lep = s->lep;
	n->lep->refs++;
	if (c->state == RUDP__CLOSED) {
		/* Reset while it waited in the queue: the program sees EOF. */
		n->so_error = c->err;
		shutdown(n->core_fd, SHUT_WR);
	}
	copy_addr(&c->peer, c->peerlen, addr, len);
	return nfd;
}

static int do_close(int fd)
{
	struct sock *s = lookup(fd);

	if (!s)
		return -EBADF;
	close(fd);
	/*
	 * Other copies (dup, fork) keep the connection open, as with TCP; the
	 * hang-up on our end tells the loop when the last one goes.  A socket
	 * still connecting holds our own copy (the plug), so it is ended here:
	 * closing it must abort the attempt now.
	 */
	if (s->plug_fd >= 0)
		sock_destroy(s);
	return 0;
}

static int do_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct sock *s = lookup(fd);
	struct sockaddr_storage ss = { .ss_family = 0 };
	socklen_t sl = sizeof(ss);

	if (!s)
		return -EBADF;
	if (!addr || !len)
		return -EFAULT;
	if (!s->lep) {
		/* Unbound: the wildcard address and port 0, as for TCP. */
		ss.ss_family = (sa_family_t)s->domain;
		sl = addr_len(s->domain);
	} else if (getsockname(s->lep->fd, (struct sockaddr *)&ss, &sl) < 0) {
		return -errno;
	}
	copy_addr(&ss, sl, addr, len);
	return 0;
}

static int do_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct sock *s = lookup(fd);

	if (!s)
		return -EBADF;
	if (!addr || !len)
		return -EFAULT;
	if (!s->conn || s->conn->state != RUDP__ESTABLISHED)
		return -ENOTCONN;
	copy_addr(&s->conn->peer, s->conn->peerlen, addr, len);
	return 0;
}

static int do_getsockopt(int fd, int level, int name, void *val,
			 socklen_t *len)
{
	struct sock *s = lookup(fd);
	int v;

	if (!s)
		return -EBADF;
	if (!val || !len)
		return -EFAULT;
	if (level != SOL_SOCKET)
		return -ENOPROTOOPT;
	switch (name) {
	case SO_ERROR:
		v = s->so_error;
		s->so_error = 0;
		break;
	case SO_TYPE:
		v = SOCK_STREAM;
		break;
	case SO_DOMAIN:
		v = s->domain;
		break;
	case SO_PROTOCOL:
		v = IPPROTO_TCP;
		break;
	case SO_ACCEPTCONN:
		v = s->conn && s->conn->state == RUDP__LISTEN;
		break;
	default:
		return -ENOPROTOOPT;
	}
	if (*len < sizeof(int))
		return -EINVAL;
	memcpy(val, &v, sizeof(v));
	*len = sizeof(v);
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
 * Each exported call: take the lock (starting the loop on first use), run
 * the internal function, release, convert the error.
 */
#define LOCKED(call)                                   \
	do {                                           \
		int r_ = rudp__loop_lock(&hooks);      \
		if (r_ < 0)                            \
			return ret(r_);                \
		r_ = (call);                           \
		rudp__loop_unlock();                   \
		return ret(r_);                        \
	} while (0)

int rudp_bind(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	LOCKED(do_bind(fd, addr, addrlen));
}

int rudp_listen(int fd, int backlog)
{
	LOCKED(do_listen(fd, backlog));
}

int rudp_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	LOCKED(do_connect(fd, addr, addrlen));
}

int rudp_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	LOCKED(do_accept(fd, addr, addrlen, flags));
}

int rudp_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	return rudp_accept4(fd, addr, addrlen, 0);
}

int rudp_close(int fd)
{
	LOCKED(do_close(fd));
}

int rudp_getsockname(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	LOCKED(do_getsockname(fd, addr, addrlen));
}

int rudp_getpeername(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	LOCKED(do_getpeername(fd, addr, addrlen));
}

int rudp_getsockopt(int fd, int level, int optname, void *optval,
		    socklen_t *optlen)
{
	LOCKED(do_getsockopt(fd, level, optname, optval, optlen));
}

int rudp_get_stats(struct rudp_stats *out, unsigned long size)
{
	LOCKED(do_stats(out, size));
}
