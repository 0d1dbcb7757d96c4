#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"
#include "ownfd.h"

/* Most bytes one socket moves per service round: fairness between them. */
#define PUMP_BUDGET (1024 * 1024)
#define NOT_WATCHED (~0u)

static struct rudp__sock **tab;
static size_t ntab, nsocks;
/*
 * The table changes only under the loop's lock, and also under tab_mu, so
 * that rudp__sock_known() can look a descriptor up without the loop's lock
 * (the shim asks on every call it interposes, and the loop thread may hold
 * that lock for a whole batch of datagrams).
 */
static pthread_mutex_t tab_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rudp__sock *dirty_head;
/* Signalled on every connection state change, for the exit flush. */
static pthread_cond_t state_cv = PTHREAD_COND_INITIALIZER;

size_t rudp__sock_count(void)
{
	return __atomic_load_n(&nsocks, __ATOMIC_RELAXED);
}

static size_t bucket(uint64_t cookie, size_t n)
{
	return (size_t)(cookie * UINT64_C(0x9e3779b97f4a7c15) >> 32) & (n - 1);
}

static int table_put(struct rudp__sock *s)
{
	pthread_mutex_lock(&tab_mu);
	if (nsocks >= ntab) {
		size_t n = ntab ? 2 * ntab : 64;
		struct rudp__sock **t = calloc(n, sizeof(*t));
		if (!t) {
			pthread_mutex_unlock(&tab_mu);
			return -ENOMEM;
		}
		for (size_t i = 0; i < ntab; i++) {
			while (tab[i]) {
				struct rudp__sock *x = tab[i];
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
	/* Read without the lock by rudp__sock_count(); written under it. */
	__atomic_store_n(&nsocks, nsocks + 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&tab_mu);
	return 0;
}

static void table_del(struct rudp__sock *s)
{
	if (!s->in_table)
		return;
	pthread_mutex_lock(&tab_mu);
	struct rudp__sock **pp = &tab[bucket(s->cookie, ntab)];
	while (*pp != s)
		pp = &(*pp)->hnext;
	*pp = s->hnext;
	s->in_table = false;
	__atomic_store_n(&nsocks, nsocks - 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&tab_mu);
}

static int cookie_of(int fd, uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);

	return getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len) < 0 ? -errno
									 : 0;
}

struct rudp__sock *rudp__sock_find(uint64_t cookie)
{
	struct rudp__sock *s;

	if (!nsocks)
		return NULL;
	for (s = tab[bucket(cookie, ntab)]; s; s = s->hnext)
		if (s->cookie == cookie)
			return s;
	return NULL;
}

struct rudp__sock *rudp__sock_lookup(int fd)
{
	uint64_t cookie;

	if (!nsocks || cookie_of(fd, &cookie) < 0)
		return NULL;
	return rudp__sock_find(cookie);
}

int rudp__sock_cookie(int fd, uint64_t *cookie)
{
	int r;

	/* Our own getsockopt must not come back through the shim. */
	rudp__in_core++;
	r = cookie_of(fd, cookie);
	rudp__in_core--;
	return r;
}

/*
 * The lock-free tests below hold tab_mu, under which the table cannot
 * change, and a socket in it cannot be freed.
 */
bool rudp__sock_known_cookie(uint64_t cookie)
{
	bool found;

	pthread_mutex_lock(&tab_mu);
	found = rudp__sock_find(cookie) != NULL;
	pthread_mutex_unlock(&tab_mu);
	return found;
}

int rudp__sock_listener_cookie(uint64_t cookie)
{
	struct rudp__sock *s;
	int r;

	pthread_mutex_lock(&tab_mu);
	s = rudp__sock_find(cookie);
	r = !s ? -EBADF
	       : __atomic_load_n(&s->listening, __ATOMIC_RELAXED) ? 0 : -EINVAL;
	pthread_mutex_unlock(&tab_mu);
	return r;
}

int rudp__sock_accepted_cookie(uint64_t listener, uint64_t cookie)
{
	struct rudp__sock *l;
	int r = 0;

	pthread_mutex_lock(&tab_mu);
	l = rudp__sock_find(listener);
	if (!l) {
		r = -EBADF;
	} else if (rudp__sock_find(cookie)) {
		/* Ours: the record has left the pair. */
		unsigned n = __atomic_load_n(&l->inflight, __ATOMIC_RELAXED);
		while (n && !__atomic_compare_exchange_n(&l->inflight, &n, n - 1,
							 false, __ATOMIC_RELAXED,
							 __ATOMIC_RELAXED))
			;
		r = 1;
	}
	pthread_mutex_unlock(&tab_mu);
	return r;
}

bool rudp__sock_known(int fd)
{
	uint64_t cookie;

	if (!rudp__sock_count() || rudp__sock_cookie(fd, &cookie) < 0)
		return false;
	return rudp__sock_known_cookie(cookie);
}

int rudp__sock_take_error_cookie(uint64_t cookie, int *err)
{
	struct rudp__sock *s;

	pthread_mutex_lock(&tab_mu);
	s = rudp__sock_find(cookie);
	if (s)
		*err = __atomic_exchange_n(&s->so_error, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&tab_mu);
	return s ? 0 : -EBADF;
}

int rudp__sock_take_error(int fd, int *err)
{
	uint64_t cookie;
	int r;

	if (!rudp__sock_count())
		return -EBADF;
	r = rudp__sock_cookie(fd, &cookie);
	if (r < 0)
		return r;
	return rudp__sock_take_error_cookie(cookie, err);
}

static struct rudp__sock *sock_alloc(int domain)
{
	struct rudp__sock *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	pthread_cond_init(&s->cv, NULL);
	s->src.kind = RUDP__SRC_SOCK;
	s->domain = domain;
	s->core_fd = s->hold_fd = -1;
	s->watching = NOT_WATCHED;
	return s;
}

static void sock_free(struct rudp__sock *s)
{
	pthread_cond_destroy(&s->cv);
	free(s);
}

/* Registers our end for exactly `events` (plus hang-ups), if changed. */
static void watch(struct rudp__sock *s, uint32_t events)
{
	if (s->core_fd < 0 || events == s->watching)
		return;
	if (events == NOT_WATCHED)
		rudp__loop_unwatch(s->core_fd);
	else if (s->watching == NOT_WATCHED)
		(void)rudp__loop_watch(s->core_fd, events, &s->src);
	else
		(void)rudp__loop_rewatch(s->core_fd, events, &s->src);
	s->watching = events;
}

/*
 * Fills the program's send buffer so that fd polls as not writable.  The
 * smallest buffer keeps the plug to a few kilobytes.
 */
static int plug(struct rudp__sock *s, int fd)
{
	static const char zeros[16384];
	static int default_sndbuf; /* a fresh pair's: the same for all */
	socklen_t len = sizeof(s->sndbuf);
	int one = 1;
	ssize_t n;

	if (!default_sndbuf &&
	    getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &default_sndbuf, &len) < 0)
		return -errno;
	s->sndbuf = default_sndbuf;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &one, sizeof(one)) < 0)
		return -errno;
	for (;;) {
		n = send(fd, zeros, sizeof(zeros), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		s->plug += (size_t)n;
		/* A short send: the buffer is full. */
		if ((size_t)n < sizeof(zeros))
			return 0;
	}
	return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
}

void rudp__sock_unplug(struct rudp__sock *s)
{
	/* As large as one plug: one recv() drains it.  Lock held. */
	static char sink[16384];

	if (!s->plug || s->core_fd < 0)
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
	/*
	 * Nothing else can be in our end: the plug kept the program from
	 * writing.  So epoll (EPOLLIN once the pump wants it) tells when
	 * something comes, and the pump need not read to find out.
	 */
	if (!s->plug)
		s->in_drained = true;
	/* getsockopt reported the doubled size the kernel keeps; undo it. */
	if (s->hold_fd >= 0)
		(void)setsockopt(s->hold_fd, SOL_SOCKET, SO_SNDBUF,
				 &(int){ s->sndbuf / 2 }, sizeof(int));
}

static void release_hold(struct rudp__sock *s)
{
	if (s->hold_fd >= 0)
		rudp__ownfd_close(s->hold_fd);
	s->hold_fd = -1;
}

void rudp__sock_drop_hold(struct rudp__sock *s)
{
	release_hold(s);
}

/*
 * The pair behind a new socket, our copy of the program's end, the cookie
 * and, if asked, the plug: everything but the socket table and epoll.  On
 * failure s has no descriptors left.
 */
static int make_pair(struct rudp__sock *s, int flags, bool plugged,
		     bool end_is_hold, int *fd)
{
	int sv[2] = { -1, -1 };
	int r;

	/* Both ends non-blocking at once when the program's is to be. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
				(flags & SOCK_NONBLOCK), 0, sv) < 0)
		return -errno;
	s->core_fd = sv[1] = rudp__ownfd_adopt(sv[1]);
	if ((!end_is_hold && !(flags & SOCK_CLOEXEC) && fcntl(sv[0], F_SETFD, 0) < 0) ||
	    (!(flags & SOCK_NONBLOCK) && fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0)) {
		r = -errno;
		goto fail;
	}
	/*
	 * Our own copy of the program's end: it restores the buffer after
	 * the plug, tells us what the program left unread when it closes,
	 * and lets us make its reads fail with ECONNRESET on a reset (a
	 * socket pair reports that when its peer closes with unread data,
	 * which only a writer on the program's side can leave).
	 */
	/*
	 * A caller that moves the program's end elsewhere (dup3 onto the
	 * program's descriptor, or SCM_RIGHTS) keeps sv[0] itself as ours.
	 */
	s->hold_fd = end_is_hold ? (sv[0] = rudp__ownfd_adopt(sv[0]))
				 : rudp__ownfd_dup(sv[0]);
	if (s->hold_fd < 0) {
		r = -errno;
		goto fail;
	}
	r = cookie_of(sv[0], &s->cookie);
	if (r < 0)
		goto fail;
	if (plugged && (r = plug(s, sv[0])) < 0)
		goto fail;
	*fd = sv[0];
	return 0;
fail:
	if (s->hold_fd == sv[0])
		s->hold_fd = -1;
	release_hold(s);
	if (sv[0] >= 0) {
		rudp__ownfd_close(sv[0]);
		rudp__ownfd_close(sv[1]);
	}
	s->core_fd = -1;
	return r;
}

/*
 * A plugged pair made ahead for the next connect() taken over by the shim,
 * watched already, its program's end still ours: taking it saves that
 * connect() the socket pair, moving both ends above the program's
 * descriptors, the cookie, the plug and the epoll registration (about 10
 * system calls).  It is made by a thread that closed a connecting socket,
 * after it let go of the loop's lock, and swapped in and out atomically.
 */
static struct rudp__sock *spare;

/* Frees a socket that never reached the table, and its descriptors. */
static void unmake(struct rudp__sock *s)
{
	release_hold(s);
	rudp__ownfd_close(s->core_fd);
	sock_free(s);
}

void rudp__sock_spare_refill(void)
{
	struct rudp__sock *s, *none = NULL;
	int fd;

	/*
	 * Only where ours are numbered above the program's: elsewhere a
	 * spare would take numbers the program's next sockets are to get
	 * (the very number a close() just freed).
	 */
	if (__atomic_load_n(&spare, __ATOMIC_RELAXED) ||
	    !rudp__ownfd_high())
		return;
	s = sock_alloc(AF_INET);
	if (!s)
		return;
	/* Non-blocking, as most connecting programs want it. */
	if (make_pair(s, SOCK_NONBLOCK, true, true, &fd) < 0) {
		sock_free(s);
		return;
	}
	watch(s, 0);
	if (__atomic_compare_exchange_n(&spare, &none, s, false,
					__ATOMIC_RELEASE, __ATOMIC_RELAXED))
		return;
	/* Another thread's came first; closing ours unregisters it. */
	unmake(s);
}

/* The spare pair, ready for a socket of `domain` with `flags`, or NULL. */
static struct rudp__sock *take_spare(int domain, int flags)
{
	struct rudp__sock *s = __atomic_exchange_n(&spare, NULL,
						   __ATOMIC_ACQUIRE);

	if (!s)
		return NULL;
	if (!(flags & SOCK_NONBLOCK) && fcntl(s->hold_fd, F_SETFL, 0) < 0) {
		unmake(s);
		return NULL;
	}
	s->domain = domain;
	return s;
}

int rudp__sock_new(int domain, int flags, bool plugged, bool end_is_hold,
		   struct rudp__sock **out, int *fd)
{
	struct rudp__sock *s = plugged && end_is_hold ? take_spare(domain, flags)
						      : NULL;
	int r;

	if (s) {
		*fd = s->hold_fd;
	} else {
		s = sock_alloc(domain);
		if (!s)
			return -ENOMEM;
		r = make_pair(s, flags, plugged, end_is_hold, fd);
		if (r < 0) {
			sock_free(s);
			return r;
		}
	}
	r = table_put(s);
	if (r < 0) {
		/* Closing our descriptors ends the registration too. */
		if (!end_is_hold)
			rudp__ownfd_close(*fd);
		unmake(s);
		return r;
	}
	/*
	 * Registered at once, for the hang-up of a program that closes it
	 * before it connects.  An accepted socket (unplugged) is registered
	 * by the service round that follows, with the events it needs: one
	 * epoll_ctl() instead of two.
	 */
	if (plugged)
		watch(s, 0);
	*out = s;
	return 0;
}

int rudp__sock_new_remote(int fd, int domain,
			  const struct rudp__accept_rec *rec,
			  struct rudp__sock **out)
{
	struct rudp__sock *n = sock_alloc(domain);
	int r;

	if (!n)
		return -ENOMEM;
	r = cookie_of(fd, &n->cookie);
	if (r < 0)
		goto fail;
	n->remote = true;
	n->connected = true;
	memcpy(&n->peer, &rec->peer, sizeof(n->peer));
	n->peerlen = rec->peerlen;
	memcpy(&n->local, &rec->local, sizeof(n->local));
	n->locallen = rec->locallen;
	r = table_put(n);
	if (r < 0)
		goto fail;
	*out = n;
	return 0;
fail:
	sock_free(n);
	return r;
}

void rudp__sock_free_remote(struct rudp__sock *s)
{
	table_del(s);
	sock_free(s);
}

void rudp__sock_local_addr(const struct rudp__sock *s,
			   struct sockaddr_storage *ss, socklen_t *len)
{
	if (!s->lep || rudp__lep_local_addr(s->lep, ss, len) < 0) {
		memset(ss, 0, sizeof(*ss));
		ss->ss_family = (sa_family_t)s->domain;
		*len = s->domain == AF_INET ? sizeof(struct sockaddr_in)
					    : sizeof(struct sockaddr_in6);
	}
}

/* Keeps what the program may still ask once the protocol side is gone. */
static void cache_addrs(struct rudp__sock *s)
{
	rudp__sock_local_addr(s, &s->local, &s->locallen);
	if (s->conn) {
		__atomic_store_n(&s->listening,
				 s->conn->state == RUDP__LISTEN,
				 __ATOMIC_RELAXED);
		s->connected = s->conn->state != RUDP__CLOSED &&
			       s->conn->state != RUDP__SYN_SENT;
		memcpy(&s->peer, &s->conn->peer, s->conn->peerlen);
		s->peerlen = s->conn->peerlen;
	}
}

static void drop_conn(struct rudp__sock *s)
{
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
}

static void close_core(struct rudp__sock *s)
{
	if (s->core_fd < 0)
		return;
	if (s->watching != NOT_WATCHED)
		rudp__loop_unwatch(s->core_fd);
	s->watching = NOT_WATCHED;
	rudp__ownfd_close(s->core_fd);
	s->core_fd = -1;
}

/*
 * Ends a socket the program no longer holds: the connection goes to the
 * core (orphaned to finish its FIN exchange, or reset), our descriptors
 * close, and the loop frees s once no waiter still holds it.
 */
static void sock_destroy(struct rudp__sock *s)
{
	table_del(s);
	drop_conn(s);
	release_hold(s);
	/* Only a registration needs undoing: an epoll_ctl() less if none. */
	rudp__loop_bury(s->watching != NOT_WATCHED ? s->core_fd : -1, &s->src);
	s->watching = NOT_WATCHED;
	if (s->core_fd >= 0) {
		rudp__ownfd_close(s->core_fd);
		s->core_fd = -1;
	}
	pthread_cond_broadcast(&s->cv);
}

void rudp__sock_discard(struct rudp__sock *s)
{
	sock_destroy(s);
}

/*
 * The connection is over but the program still holds its descriptor:
 * s becomes a record of what it was, with our descriptors closed.  A
 * reset shows in the program's reads as ECONNRESET, as on TCP.
 */
static void detach(struct rudp__sock *s, int err)
{
	cache_addrs(s);
	if (err && s->hold_fd >= 0 && s->core_fd >= 0) {
		/* An unread byte at our end makes closing it a reset. */
		while (send(s->hold_fd, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
		       errno == EINTR)
			;
	}
	s->connected = false;
	drop_conn(s);
	release_hold(s);
	close_core(s);
	s->remote = true;
	pthread_cond_broadcast(&s->cv);
}

/* Whether our end has hung up: no copy of the program's end is open. */
static bool hung_up(const struct rudp__sock *s)
{
	struct pollfd p = { .fd = s->core_fd, .events = 0 };

	return s->core_fd >= 0 && poll(&p, 1, 0) == 1 &&
	       (p.revents & (POLLHUP | POLLERR));
}

static void mark_dirty(struct rudp__sock *s)
{
	if (s->dirty)
		return;
	s->dirty = true;
	s->dirty_next = dirty_head;
	dirty_head = s;
}

void rudp__sock_touch(struct rudp__sock *s)
{
	mark_dirty(s);
}

/* Moves what the program wrote into the connection's send buffer. */
static void pump_in(struct rudp__sock *s)
{
	struct rudp__conn *c = s->conn;
	size_t budget = PUMP_BUDGET;
	uint8_t *p;
	size_t n;
	ssize_t r;

	if (!c || s->eof_in || s->plug || s->core_fd < 0)
		return;
	/*
	 * Our end was read empty and epoll (level-triggered, EPOLLIN while
	 * wanted() asks for it) has not reported it readable since: a read
	 * would only say EAGAIN.  Closing and exiting read to the end anyway.
	 */
	if (s->in_drained && !s->exiting && !s->closing)
		return;
	/*
	 * The send ring (1 MiB by default) is allocated on first use: until
	 * the program writes, a 1-byte peek replaces the read, so an idle
	 * connection costs no ring (the same one system call).
	 */
	if (!c->sb.buf && rudp__conn_can_send(c) && !s->exiting) {
		char b;
		r = recv(s->core_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			s->in_drained = true;
			rudp__ep_settle(&s->lep->ep, c);
			return;
		}
		if (r == 0) {
			/* Closed or shut down without writing a byte: FIN. */
			s->eof_in = true;
			rudp__conn_shutdown_write(c);
			rudp__ep_settle(&s->lep->ep, c);
			return;
		}
	}
	while (budget && (n = rudp__conn_send_reserve(c, &p)) > 0) {
		size_t want = n < budget ? n : budget;
		r = recv(s->core_fd, p, want, MSG_DONTWAIT);
		if (r > 0) {
			rudp__conn_send_commit(c, (size_t)r);
			budget -= (size_t)r;
			/*
			 * A stream socket returns less than asked only when
			 * its queue ran out: no need for a read that fails.
			 * At exit the EAGAIN is what ends the stream.
			 */
			if ((size_t)r < want && !s->exiting) {
				s->in_drained = true;
				break;
			}
			continue;
		}
		if (r == 0 ||
		    (s->exiting && (errno == EAGAIN || errno == EWOULDBLOCK))) {
			/*
			 * The program shut down writing or closed (or, at
			 * exit, has written its last byte): FIN.
			 */
			s->eof_in = true;
			rudp__conn_shutdown_write(c);
		} else if (errno == EINTR) {
			continue;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			s->in_drained = true;
		}
		break;
	}
	rudp__ep_settle(&s->lep->ep, c);
	if (!budget)
		mark_dirty(s);
}

/*
 * The program's thread appends its bytes to the send ring itself, lock
 * held (rudp__maybe_send_direct).  Whatever the program wrote into the
 * pair before comes first, so the pair is read to the end (one recv that
 * mostly says EAGAIN) before the bytes go in; if it cannot be emptied the
 * bytes go to the pair behind it.  Returns how many went in (and were
 * flushed), or the negated reason to take the pair instead:
 * RUDP__DW_UNUSUAL, RUDP__DW_PAIR or RUDP__DW_FULL.
 */
ssize_t rudp__sock_send_direct(struct rudp__sock *s, const struct iovec *iov,
			       int iovcnt)
{
	struct rudp__conn *c = s->conn;
	size_t done = 0, k = 1;
	uint8_t *p;

	if (s->src.dead || s->remote || !c || !s->lep || s->core_fd < 0 ||
	    s->plug || s->eof_in || s->closing || s->exiting || s->shut_wr ||
	    !s->handshake_done || !rudp__conn_can_send(c))
		return -RUDP__DW_UNUSUAL;
	/* Order: what is in the pair was written first. */
	s->in_drained = false;
	pump_in(s);
	if (!s->in_drained || s->eof_in || !rudp__conn_can_send(c)) {
		mark_dirty(s);
		return -RUDP__DW_PAIR;
	}
	/* Buffer by buffer, in order, until the ring is full. */
	for (int i = 0; i < iovcnt && k; i++) {
		const uint8_t *src = iov[i].iov_base;
		size_t off = 0;
		while (off < iov[i].iov_len &&
		       (k = rudp__conn_send_reserve(c, &p)) > 0) {
			if (k > iov[i].iov_len - off)
				k = iov[i].iov_len - off;
			memcpy(p, src + off, k);
			rudp__conn_send_commit(c, k);
			off += k;
		}
		done += off;
	}
	if (!done)
		return -RUDP__DW_FULL;
	rudp__ep_settle(&s->lep->ep, c);
	rudp__lep_flush(s->lep);
	/* The service round re-arms EPOLLIN if the ring filled. */
	if (!rudp__sndbuf_space(&c->sb))
		mark_dirty(s);
	return (ssize_t)done;
}

/* Moves in-order bytes from the connection to the program's end. */
static void pump_out(struct rudp__sock *s)
{
	struct rudp__conn *c = s->conn;
	const uint8_t *p;
	size_t n;
	ssize_t w;

	if (!c || s->core_fd < 0)
		return;
	s->out_blocked = false;
	while ((n = rudp__conn_recv_peek(c, &p)) > 0) {
		w = send(s->core_fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w > 0) {
			rudp__conn_recv_consume(c, (size_t)w);
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			s->out_blocked = true;
			break;
		}
		/* The program will never read again (shut down, closed). */
		rudp__conn_recv_consume(c, n);
	}
	if (rudp__conn_recv_eof(c) && !s->core_shut) {
		shutdown(s->core_fd, SHUT_WR);
		s->core_shut = true;
	}
	rudp__ep_settle(&s->lep->ep, c);
}

/*
 * The pair's buffer (about 200 KiB by default) is what lets bytes skip the
 * reorder buffer, and a bulk transfer arrives in batches of up to 2 MiB:
 * once the pair is full, the rest of a batch takes the way through the
 * ring and pump_out, a copy more.  So the first time it fills, our end may
 * hold as much as the receive buffer (the kernel doubles what it is given).
 * The cost is kernel memory, only while the program reads slower than
 * bytes arrive; a connection whose program keeps up never pays it.  Past
 * net.core.wmem_max only root may go, as with the UDP sockets' buffers.
 */
static void grow_out(struct rudp__sock *s, const struct rudp__conn *c)
{
	int want = (int)(c->rb.cap / 2);

	s->out_grown = true;
	if (setsockopt(s->core_fd, SOL_SOCKET, SO_SNDBUFFORCE, &want,
		       sizeof(want)) < 0)
		(void)setsockopt(s->core_fd, SOL_SOCKET, SO_SNDBUF, &want,
				 sizeof(want));
}

/*
 * Segments shorter than this take the way through the reorder buffer: a
 * system call per segment costs more than the copy it saves (a few
 * microseconds against about one per 10 KB copied), while pump_out sends
 * a whole batch's bytes in one.  Loopback's 64 KB datagrams are well
 * above it, Ethernet-sized ones below.
 */
#define DIRECT_MIN 16384

/*
 * Core hook: in-order bytes that arrived while nothing waited ahead of them
 * go straight from the received datagram into our end, the one copy the
 * pair needs anyway, instead of through the reorder buffer and pump_out.
 * What the pair does not take now the core stores, and pump_out sends it
 * once there is room, as before.
 */
static size_t deliver_direct(struct rudp__conn *c, const uint8_t *p,
			     size_t n)
{
	struct rudp__sock *s = c->user;
	ssize_t w;

	if (!s || s->core_fd < 0 || n < DIRECT_MIN)
		return 0;
	for (;;) {
		w = send(s->core_fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w >= 0)
			return (size_t)w;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			/* The program will never read again: dropped. */
			return n;
		if (s->out_grown)
			return 0;
		grow_out(s, c);
	}
}

/* The epoll events our end needs now. */
static uint32_t wanted(const struct rudp__sock *s)
{
	const struct rudp__conn *c = s->conn;
	uint32_t ev = 0;

	if (!c)
		return 0;
	if (!s->eof_in && !s->plug && rudp__conn_can_send(c) &&
	    rudp__sndbuf_space(&c->sb))
		ev |= EPOLLIN | EPOLLRDHUP;
	if (s->out_blocked || s->accept_blocked)
		ev |= EPOLLOUT;
	return ev;
}

static bool data_state(enum rudp__state st)
{
	return st == RUDP__ESTABLISHED || st == RUDP__CLOSE_WAIT ||
	       st == RUDP__FIN_WAIT_1 || st == RUDP__FIN_WAIT_2 ||
	       st == RUDP__CLOSING || st == RUDP__LAST_ACK ||
	       st == RUDP__TIME_WAIT;
}

/*
 * What the program left unread at its end, through our copy of it, or -1
 * if we have none to ask.
 */
static int unread_of(const struct rudp__sock *s)
{
	int unread;

	if (s->hold_fd < 0 || ioctl(s->hold_fd, SIOCINQ, &unread) < 0)
		return -1;
	return unread;
}

/*
 * The program has let go of s for good (its last copy closed, or the
 * process exits).  Unread data or SO_LINGER {on, 0} mean a reset, as TCP;
 * otherwise the connection finishes sending and ends with FIN, orphaned.
 * `unread` is what the program left unread, or -1 if unknown.
 */
static void let_go(struct rudp__sock *s, int unread)
{
	struct rudp__conn *c = s->conn;
	int err = 0;
	socklen_t len = sizeof(err);

	if (c && data_state(c->state) && c->state != RUDP__TIME_WAIT) {
		/*
		 * Unknown, it shows as the reset a pair reports when the
		 * program's end went with unread bytes (read before pump_in,
		 * whose recv would consume the error).  Known, that error
		 * cannot have happened: our copy kept the program's end open.
		 */
		if (unread < 0 && s->core_fd >= 0)
			getsockopt(s->core_fd, SOL_SOCKET, SO_ERROR, &err, &len);
		pump_in(s);
		bool abort = unread > 0 || err == ECONNRESET ||
			     rudp__rcvbuf_ready(&c->rb) ||
			     (s->opts[RUDP__OPT_LINGER_ON] &&
			      !s->opts[RUDP__OPT_LINGER_SECS]);
		if (abort) {
			rudp__conn_abort(c, ECONNRESET);
		} else {
			c->app_closed = true;
			/*
			 * Bytes still waiting at our end are part of the
			 * stream: keep reading them until the end of it.
			 */
			if (!s->eof_in && s->core_fd >= 0) {
				s->closing = true;
				mark_dirty(s);
				return;
			}
			rudp__conn_shutdown_write(c);
		}
	}
	sock_destroy(s);
}

void rudp__sock_closed(struct rudp__sock *s)
{
	int unread;

	if (s->remote) {
		rudp__sock_free_remote(s);
		return;
	}
	/* What the program left unread, before our copy goes. */
	unread = unread_of(s);
	release_hold(s);
	/*
	 * Other copies (dup, fork) keep the connection, as on TCP; the
	 * hang-up on our end tells when the last one goes.  A socket still
	 * connecting is ended regardless: closing it aborts the attempt.
	 */
	if (s->conn && s->conn->state == RUDP__SYN_SENT) {
		sock_destroy(s);
		return;
	}
	if (hung_up(s) || s->core_fd < 0)
		let_go(s, unread);
}

/* Loop hook: our end of s reported `events`. */
static void on_sock(struct rudp__src *src, uint32_t events)
{
	struct rudp__sock *s = (struct rudp__sock *)src;

	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		s->in_drained = false;
		pump_in(s);
	}
	if (events & EPOLLOUT) {
		/* For a listener: the program accepted, the pair has room. */
		s->accept_blocked = false;
		pump_out(s);
	}
	if (events & (EPOLLHUP | EPOLLERR)) {
		/*
		 * Both directions of the pair are shut.  Without our copy of
		 * the program's end, that is the program closing its last
		 * copy, unless its own shutdown() calls explain it.
		 */
		bool shut = s->shut_wr && (s->shut_rd || s->core_shut);
		if (s->hold_fd < 0 && !shut) {
			let_go(s, -1);
			return;
		}
		/* Nothing more can flow: stop listening to a level hang-up. */
		watch(s, NOT_WATCHED);
	}
	mark_dirty(s);
}

/*
 * Gives listener l's oldest established connection a socket of its own and
 * sends the program's end down l's pair, where accept() picks it up.  The
 * connection leaves the accept queue only once the record is in the pair:
 * on failure (-EAGAIN when the pair is full) it is still queued, and the
 * new socket, which the program never saw, is gone again.
 */
void rudp__accept_msg_init(struct rudp__accept_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->iov.iov_base = &m->rec;
	m->iov.iov_len = sizeof(m->rec);
	m->msg.msg_iov = &m->iov;
	m->msg.msg_iovlen = 1;
	m->msg.msg_control = m->cbuf;
	m->msg.msg_controllen = sizeof(m->cbuf);
}

static int deliver(struct rudp__sock *l)
{
	struct rudp__conn *c = l->conn->aq_head;
	struct rudp__accept_msg m;
	struct rudp__accept_rec *rec = &m.rec;
	struct cmsghdr *cm;
	struct rudp__sock *n;
	ssize_t w;
	int fd, r;

	rudp__accept_msg_init(&m);
	cm = CMSG_FIRSTHDR(&m.msg);
	/*
	 * Non-blocking, which servers mostly ask accept4() for: then neither
	 * we nor accept() need an fcntl() to set it; accept() clears it for
	 * the others.
	 */
	r = rudp__sock_new(l->domain, SOCK_CLOEXEC | SOCK_NONBLOCK, false, true,
			   &n, &fd);
	if (r < 0)
		return r;
	rec->cookie = n->cookie;
	memcpy(&rec->peer, &c->peer, c->peerlen);
	rec->peerlen = c->peerlen;
	rudp__sock_local_addr(l, &rec->local, &rec->locallen);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	do
		w = sendmsg(l->core_fd, &m.msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)sizeof(*rec)) {
		/*
		 * A record is far smaller than the least buffer a pair can
		 * have, so it goes in whole or not at all.
		 */
		r = w < 0 ? -errno : -EIO;
		goto fail;
	}
	/* In flight, the descriptor lives on in the message; fd is our hold. */
	(void)rudp__conn_accept(l->conn);
	__atomic_fetch_add(&l->inflight, 1, __ATOMIC_RELAXED);
	n->conn = c;
	n->handshake_done = true;
	/*
	 * The pair is new: whatever the program writes into it is reported
	 * by epoll once the service round that follows registers our end
	 * (level-triggered), so no read need look now.
	 */
	n->in_drained = true;
	c->user = n;
	c->user_owned = true;
	n->lep = l->lep;
	n->lep->refs++;
	memcpy(n->opts, l->opts, sizeof(n->opts));
	rudp__sock_apply_opts(n);
	mark_dirty(n);
	return 0;
fail:
	sock_destroy(n);
	return r;
}

/*
 * Hands listener l's established connections to the program, oldest first,
 * for as long as its pair takes them.  What does not fit waits on the
 * core's accept queue, where the backlog counts it as it would on TCP,
 * until the program has accepted enough for epoll to report our end
 * writable again (EPOLLOUT, see wanted()).  This runs in the service round,
 * never from the core's event callback: the core is still using the
 * connection there, and a failure here may end it.
 */
static void deliver_queued(struct rudp__sock *l)
{
	struct rudp__conn *c;
	int r;

	while (l->conn->aq_head && !l->accept_blocked) {
		r = deliver(l);
		if (r == -EAGAIN) {
			l->accept_blocked = true;
			break;
		}
		if (r < 0) {
			/*
			 * Out of descriptors or memory: nothing tells us when
			 * that passes, so rather than leave the peer waiting
			 * on a connection the program cannot see, reset it.
			 */
			rudp__log(RUDP__LOG_WARN,
				  "cannot queue an accepted connection: %s",
				  strerror(-r));
			c = rudp__conn_accept(l->conn);
			rudp__ep_release(c->ep, c);
		}
	}
}

/* Brings one socket's pumps and epoll registration up to date. */
static void service_one(struct rudp__sock *s)
{
	struct rudp__conn *c = s->conn;

	if (s->src.dead || s->remote || !c)
		return;
	pump_out(s);
	pump_in(s);
	if (c->state == RUDP__LISTEN)
		deliver_queued(s);
	if (s->closing && (s->eof_in || c->state == RUDP__CLOSED)) {
		rudp__conn_shutdown_write(c);
		sock_destroy(s);
		return;
	}
	/* An ended connection whose bytes the program has all received. */
	if (c->state == RUDP__CLOSED && !rudp__rcvbuf_ready(&c->rb) &&
	    (s->handshake_done || !s->connecting)) {
		detach(s, c->err);
		return;
	}
	if (s->watching != NOT_WATCHED || !s->eof_in || !s->core_shut)
		watch(s, wanted(s));
	if (s->lep)
		rudp__lep_flush(s->lep);
}

void rudp__sock_service(void)
{
	while (dirty_head) {
		struct rudp__sock *s = dirty_head;
		dirty_head = s->dirty_next;
		s->dirty = false;
		service_one(s);
	}
}

/*
 * What one accept record, with the descriptor it carries, takes of the
 * pair's send buffer: the kernel charges the buffer it allocates for it
 * (1280 bytes on Linux 6); 2 KiB leaves room for other kernels.
 */
#define ACCEPT_REC_COST 2048

void rudp__sock_size_backlog(struct rudp__sock *s, unsigned backlog)
{
	int have = 0, want = (int)(backlog * ACCEPT_REC_COST);
	socklen_t len = sizeof(have);

	if (s->core_fd < 0 ||
	    getsockopt(s->core_fd, SOL_SOCKET, SO_SNDBUF, &have, &len) < 0 ||
	    have >= want)
		return;
	/*
	 * The kernel doubles what it is given, for its bookkeeping.  Past
	 * net.core.wmem_max only root may go (SO_SNDBUFFORCE); otherwise we
	 * take what we get, and deliver_queued() waits for room instead.
	 */
	if (setsockopt(s->core_fd, SOL_SOCKET, SO_SNDBUFFORCE,
		       &(int){ want / 2 }, sizeof(int)) < 0)
		(void)setsockopt(s->core_fd, SOL_SOCKET, SO_SNDBUF,
				 &(int){ want / 2 }, sizeof(int));
}

static unsigned backlog_extra(struct rudp__conn *l)
{
	struct rudp__sock *s = l->user;
	int outq = 0;

	if (!s || s->core_fd < 0)
		return 0;
	/*
	 * Records taken by another process (after fork) are invisible to us
	 * one by one, but an empty queue is not: then nothing waits.
	 */
	if (__atomic_load_n(&s->inflight, __ATOMIC_RELAXED) &&
	    ioctl(s->core_fd, SIOCOUTQ, &outq) == 0 && outq == 0)
		__atomic_store_n(&s->inflight, 0, __ATOMIC_RELAXED);
	return __atomic_load_n(&s->inflight, __ATOMIC_RELAXED);
}

/* Loop hook: the core reports ev on c. */
static void on_event(struct rudp__conn *c, enum rudp__event ev)
{
	struct rudp__sock *s = c->user;

	if (ev == RUDP__EV_STATE)
		pthread_cond_broadcast(&state_cv);
	if (!s)
		return;
	switch (ev) {
	case RUDP__EV_ACCEPT:
		/*
		 * Delivered in the service round, after the core's call: a
		 * socket must never be ended from inside it (the core goes on
		 * using the connection once this returns).
		 */
		mark_dirty(s);
		break;
	case RUDP__EV_STATE:
		if (c->state == RUDP__ESTABLISHED) {
			s->handshake_done = true;
			rudp__sock_unplug(s);
		}
		if (c->state == RUDP__CLOSED && s->connecting) {
			__atomic_store_n(&s->so_error, c->err, __ATOMIC_RELAXED);
			rudp__sock_unplug(s);
		}
		mark_dirty(s);
		break;
	case RUDP__EV_READABLE:
	case RUDP__EV_WRITABLE:
		mark_dirty(s);
		break;
	}
	pthread_cond_broadcast(&s->cv);
}

bool rudp__sock_wait(struct rudp__sock *s)
{
	s->waiters++;
	rudp__loop_wait(&s->cv);
	s->waiters--;
	return !s->src.dead;
}

/* A buffer size the program set, within 16 KiB and 64 MiB. */
static uint32_t buf_clamp(int v)
{
	return v < 16384 ? 16384 : (uint32_t)v > (64u << 20) ? 64u << 20
							   : (uint32_t)v;
}

void rudp__sock_apply_opts(struct rudp__sock *s)
{
	struct rudp__conn *c = s->conn;
	const int *o = s->opts;

	if (!c)
		return;
	c->keepalive = o[RUDP__OPT_KEEPALIVE] != 0;
	/*
	 * TCP_NODELAY set on a live connection sends what Nagle held back
	 * at once, as Linux's tcp_push_pending_frames does.
	 */
	bool push = o[RUDP__OPT_NODELAY] && !c->nodelay && c->sb.len && s->lep;
	c->nodelay = o[RUDP__OPT_NODELAY] != 0;
	if (push) {
		rudp__ep_settle(&s->lep->ep, c);
		rudp__lep_flush(s->lep);
	}
	if (o[RUDP__OPT_KEEPIDLE] > 0)
		c->ka_idle = (rudp__usec)o[RUDP__OPT_KEEPIDLE] * RUDP__SEC;
	if (o[RUDP__OPT_KEEPINTVL] > 0)
		c->ka_intvl = (rudp__usec)o[RUDP__OPT_KEEPINTVL] * RUDP__SEC;
	if (o[RUDP__OPT_KEEPCNT] > 0)
		c->ka_cnt = (unsigned)o[RUDP__OPT_KEEPCNT];
	/*
	 * Buffer sizes take effect until the first byte uses the buffer (the
	 * receive buffer is made when the connection is established), within
	 * 16 KiB to 64 MiB, like the kernel's own clamps.
	 */
	if (o[RUDP__OPT_SNDBUF] > 0 && !c->sb.buf)
		c->sb.cap = buf_clamp(o[RUDP__OPT_SNDBUF]);
	if (o[RUDP__OPT_RCVBUF] > 0 &&
	    (c->state == RUDP__CLOSED || c->state == RUDP__LISTEN ||
	     c->state == RUDP__SYN_SENT || c->state == RUDP__SYN_RCVD))
		c->rcv_wnd = buf_clamp(o[RUDP__OPT_RCVBUF]);
}

/* Loop hook: frees a dead socket once no waiter holds it. */
static bool free_sock(struct rudp__src *src)
{
	struct rudp__sock *s = (struct rudp__sock *)src;

	if (s->waiters)
		return false;
	sock_free(s);
	return true;
}

/*
 * Loop hook, in a fork()ed child: every local socket becomes a remote
 * record, keeping what the program may still ask about it.  The loop
 * drops the rest (and closes our descriptors).
 */
static void at_fork_child(void)
{
	/*
	 * The table is consistent (it changes only under the loop's lock,
	 * which the fork held) but another thread of the parent may have
	 * held tab_mu to read it: the child starts with it free.
	 */
	pthread_mutex_init(&tab_mu, NULL);
	dirty_head = NULL;
	/* Its descriptors are the parent loop's, which the child closes. */
	if (spare)
		sock_free(spare);
	spare = NULL;
	for (size_t i = 0; i < ntab; i++) {
		for (struct rudp__sock *s = tab[i]; s; s = s->hnext) {
			s->waiters = 0;
			s->dirty = false;
			if (s->remote)
				continue;
			cache_addrs(s);
			s->remote = true;
			s->conn = NULL;
			s->lep = NULL;
			s->core_fd = s->hold_fd = -1;
			s->watching = NOT_WATCHED;
			s->plug = 0;
		}
	}
}

/* Whether any connection still has bytes or a FIN to get across. */
static bool anything_in_flight(void)
{
	for (size_t i = 0; i < ntab; i++)
		for (struct rudp__sock *s = tab[i]; s; s = s->hnext)
			if (!s->remote && s->closing)
				return true;
	return rudp__loop_busy(false);
}

void rudp__sock_exit_flush(rudp__usec linger)
{
	rudp__usec deadline = rudp__now() + linger;

	/* Every connection the program still holds is closed by its exit. */
	for (size_t i = 0; i < ntab; i++) {
		struct rudp__sock *s = tab[i], *next;
		for (; s; s = next) {
			next = s->hnext;
			if (s->remote || !s->conn ||
			    !data_state(s->conn->state))
				continue;
			/*
			 * The program writes no more: what is in the pair is
			 * all of it, drained as the send buffer makes room.
			 */
			s->exiting = true;
			let_go(s, unread_of(s));
		}
	}
	rudp__sock_service();
	while (anything_in_flight()) {
		struct timespec ts;
		rudp__usec now = rudp__now();
		if (!rudp__time_before(now, deadline)) {
			rudp__log(RUDP__LOG_WARN, "exit: gave up waiting for "
				  "connections to finish sending");
			(void)rudp__loop_busy(true);
			return;
		}
		/* The condition variable measures on the realtime clock. */
		clock_gettime(CLOCK_REALTIME, &ts);
		rudp__usec wait = deadline - now < 100 * RUDP__MSEC
					  ? deadline - now : 100 * RUDP__MSEC;
		ts.tv_nsec += (long)(wait % RUDP__SEC) * 1000;
		ts.tv_sec += (time_t)(wait / RUDP__SEC) + ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		rudp__loop_timedwait(&state_cv, &ts);
		rudp__sock_service();
	}
}

const struct rudp__loop_hooks rudp__sock_hooks = {
	.on_event = on_event,
	.backlog_extra = backlog_extra,
	.at_fork_child = at_fork_child,
	.on_sock = on_sock,
	.free_sock = free_sock,
	.service = rudp__sock_service,
	.exit_flush = rudp__sock_exit_flush,
	.deliver = deliver_direct,
};
