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
 * The socket objects and the byte pump live in core/sock.c; this file
 * checks arguments, runs each call against them, and converts errors:
 * internal functions return -errno, the exported ones -1/errno, in one
 * place, ret().
 */
#define _GNU_SOURCE /* dup3 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rudp.h"

#include "api.h"
#include "log.h"
#include "loop.h"
#include "sock.h"

#define hooks rudp__sock_hooks

/* The single place an internal -errno becomes the POSIX -1/errno. */
static int ret(int r)
{
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return r;
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

static int check_addr(const struct rudp__sock *s, const struct sockaddr *addr,
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
	struct rudp__sock *s;
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
	r = rudp__sock_new(domain, flags, true, false, &s, &fd);
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

static int do_bind(struct rudp__sock *s, const struct sockaddr *addr, socklen_t len)
{
	int r;

	if (s->remote || s->lep)
		return -EINVAL;
	r = check_addr(s, addr, len);
	if (r < 0)
		return r;
	r = rudp__lep_open(s->domain, addr, len, NULL, 0, &s->lep);
	/*
	 * TCP lets a socket with SO_REUSEADDR bind a port that only a closed
	 * listener's accepted connections still hold (iperf3 -w closes its
	 * listener and opens another on the same port mid-test).  Here those
	 * connections hold the port's UDP socket, so the new socket shares
	 * their endpoint instead of binding a second.  Unlike Linux we do not
	 * ask whether the old listener had the option too.
	 */
	if (r == -EADDRINUSE && s->opts[RUDP__OPT_REUSEADDR]) {
		s->lep = rudp__lep_orphaned(s->domain, addr, addr_len(s->domain));
		if (s->lep)
			r = 0;
	}
	return r;
}

static int do_listen(struct rudp__sock *s, int backlog)
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
	/* Buffer sizes set before listen() hold for what it accepts. */
	rudp__sock_apply_opts(s);
	r = rudp__conn_listen(s->conn, (unsigned)backlog);
	rudp__ep_settle(&s->lep->ep, s->conn);
	/*
	 * A listener's readiness is its queue of accepted connections alone;
	 * it needs no plug, and dropping ours lets its hang-up be seen as
	 * soon as the program closes it.
	 */
	if (r == 0) {
		rudp__sock_unplug(s);
		rudp__sock_drop_hold(s);
		rudp__sock_size_backlog(s, (unsigned)backlog);
		__atomic_store_n(&s->listening, true, __ATOMIC_RELAXED);
	}
	return r;
}

static int connect_result(struct rudp__sock *s)
{
	int err = __atomic_load_n(&s->so_error, __ATOMIC_RELAXED);

	s->connecting = false;
	rudp__sock_touch(s);
	/*
	 * A handshake that completed is a successful connect even if the
	 * peer has closed or reset since: that is for reads and writes to
	 * report, as on TCP.
	 */
	if (s->handshake_done)
		return 0;
	__atomic_store_n(&s->so_error, 0, __ATOMIC_RELAXED);
	return -(err ? err : ECONNABORTED);
}

static int do_connect(struct rudp__sock *s, int fd, const struct sockaddr *addr,
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
		case RUDP__FIN_WAIT_1:
		case RUDP__FIN_WAIT_2:
		case RUDP__CLOSE_WAIT:
		case RUDP__CLOSING:
		case RUDP__LAST_ACK:
		case RUDP__TIME_WAIT:
			/* The first call after a non-blocking success. */
			if (s->connecting)
				return connect_result(s);
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
	s->conn->mss = rudp__loop_mss(s->domain, addr, addr_len(s->domain),
				      s->lep->connected ? s->lep->fd : -1);
	rudp__sock_apply_opts(s);
	s->connecting = true;
	r = rudp__conn_connect(s->conn, rudp__now());
	rudp__ep_settle(&s->lep->ep, s->conn);
	rudp__lep_flush(s->lep);
	if (r < 0)
		return r;
	if (nonblocking(fd))
		return -EINPROGRESS;
	while (s->conn && s->conn->state == RUDP__SYN_SENT)
		if (!rudp__sock_wait(s))
			return -EBADF;
	return connect_result(s);
}

static int do_accept(int fd, struct sockaddr *addr, socklen_t *len,
		     int flags, bool maybe)
{
	struct rudp__accept_msg m;
	struct cmsghdr *cm;
	struct rudp__sock *s, *n;
	ssize_t got;
	int nfd = -1, r;
	uint64_t cookie;

	/*
	 * One SO_COOKIE read, and no loop's lock unless the connection's
	 * protocol runs in another process: whether fd is a listener, and
	 * later whether the record's socket is ours, are answered by the
	 * socket table's own lock, which the loop thread never holds for
	 * long.  A busy server accepts thousands of connections a second
	 * while the loop thread holds the loop's lock for whole batches.
	 */
	if (rudp__sock_cookie(fd, &cookie) < 0)
		return maybe ? RUDP__NOT_OURS : -EBADF;
	r = rudp__sock_listener_cookie(cookie);
	if (maybe && r == -EBADF)
		return RUDP__NOT_OURS;
	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
		return -EINVAL;
	if (r < 0)
		return r;
	/*
	 * The wait happens in the kernel: a blocking accept sleeps in
	 * recvmsg() (restarted or interrupted by signals exactly as accept()
	 * would be), a non-blocking one gets EAGAIN from it.
	 */
	rudp__accept_msg_init(&m);
	got = recvmsg(fd, &m.msg, MSG_CMSG_CLOEXEC);
	if (got < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	for (cm = CMSG_FIRSTHDR(&m.msg); cm; cm = CMSG_NXTHDR(&m.msg, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			memcpy(&nfd, CMSG_DATA(cm), sizeof(int));
	if (got == 0)
		return -EINVAL; /* the listener was shut down */
	if (nfd < 0 || got != (ssize_t)sizeof(m.rec)) {
		if (nfd >= 0)
			close(nfd);
		return -ECONNABORTED;
	}
	/* The listener makes accepted descriptors non-blocking. */
	if ((!(flags & SOCK_CLOEXEC) && fcntl(nfd, F_SETFD, 0) < 0) ||
	    (!(flags & SOCK_NONBLOCK) && fcntl(nfd, F_SETFL, 0) < 0)) {
		r = -errno;
		goto fail;
	}
	/*
	 * The record names the descriptor it came with.  One of ours is
	 * known already; otherwise it is remote, and the record's addresses
	 * are all we will ever know of it.
	 */
	r = rudp__sock_accepted_cookie(cookie, m.rec.cookie);
	if (r == 0) {
		r = rudp__loop_lock(&hooks);
		if (r < 0)
			goto fail;
		s = rudp__sock_find(cookie);
		r = s ? rudp__sock_new_remote(nfd, s->domain, &m.rec, &n)
		      : -EBADF;
		rudp__loop_unlock();
	}
	if (r < 0)
		goto fail;
	copy_addr(&m.rec.peer, m.rec.peerlen, addr, len);
	return nfd;
fail:
	close(nfd);
	return r;
}

/*
 * The address family of the connecting socket this thread closed last, for
 * spares_refill(), or 0.
 */
static __thread int closed_connector;

static int do_close(struct rudp__sock *s, int fd)
{
	if (!s->remote && s->lep && s->lep->connected)
		closed_connector = s->domain;
	close(fd);
	rudp__sock_closed(s);
	return 0;
}

/*
 * A program that connected once is likely to connect again: once it has
 * closed a connecting socket, and without the loop's lock, this thread
 * makes the pair and the UDP socket the next connect() will take, so that
 * connect() does not pay for them.  The cost moves to close(), where no
 * handshake waits on it.
 */
static void spares_refill(void)
{
	int domain = closed_connector, e = errno;

	if (!domain)
		return;
	closed_connector = 0;
	rudp__sock_spare_refill();
	rudp__lep_spare_refill(domain);
	/* What close() reports is its own error, not ours. */
	errno = e;
}

static int do_getsockname(struct rudp__sock *s, struct sockaddr *addr,
			  socklen_t *len)
{
	struct sockaddr_storage ss;
	socklen_t sl;

	if (!addr || !len)
		return -EFAULT;
	if (s->remote)
		copy_addr(&s->local, s->locallen, addr, len);
	else {
		rudp__sock_local_addr(s, &ss, &sl);
		copy_addr(&ss, sl, addr, len);
	}
	return 0;
}

static int do_getpeername(struct rudp__sock *s, struct sockaddr *addr,
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

static int do_shutdown(struct rudp__sock *s, int fd, int how)
{
	if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
		return -EINVAL;
	if (s->remote ? !s->connected
		      : !s->conn || !s->handshake_done ||
				s->conn->state == RUDP__CLOSED)
		return -ENOTCONN;
	/*
	 * Reading ends when we stop feeding the program's end; writing ends
	 * when the program's end stops sending to ours, which the data path
	 * reads as end of stream.  Both are done on the descriptors, so they
	 * hold for every copy of the socket, as shutdown() does on TCP.
	 */
	if (how != SHUT_WR) {
		if (s->remote || s->core_fd < 0) {
			shutdown(fd, SHUT_RD);
		} else {
			shutdown(s->core_fd, SHUT_WR);
			s->core_shut = true;
		}
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
		case SO_REUSEADDR: return RUDP__OPT_REUSEADDR;
		case SO_REUSEPORT: return RUDP__OPT_REUSEPORT;
		case SO_KEEPALIVE: return RUDP__OPT_KEEPALIVE;
		case SO_RCVBUF: return RUDP__OPT_RCVBUF;
		case SO_SNDBUF: return RUDP__OPT_SNDBUF;
		}
	} else if (level == IPPROTO_TCP) {
		switch (name) {
		case TCP_NODELAY: return RUDP__OPT_NODELAY;
		case TCP_KEEPIDLE: return RUDP__OPT_KEEPIDLE;
		case TCP_KEEPINTVL: return RUDP__OPT_KEEPINTVL;
		case TCP_KEEPCNT: return RUDP__OPT_KEEPCNT;
		}
	}
	return -1;
}

static enum rudp__state state_of(const struct rudp__sock *s)
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
	case RUDP__FIN_WAIT_1: return TCP_FIN_WAIT1;
	case RUDP__FIN_WAIT_2: return TCP_FIN_WAIT2;
	case RUDP__CLOSE_WAIT: return TCP_CLOSE_WAIT;
	case RUDP__CLOSING: return TCP_CLOSING;
	case RUDP__LAST_ACK: return TCP_LAST_ACK;
	case RUDP__TIME_WAIT: return TCP_TIME_WAIT;
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

/*
 * SO_RCVBUF and SO_SNDBUF read back as on Linux: twice what the program
 * set (the kernel doubles it for its bookkeeping, and programs such as
 * iperf3 check that they got at least what they asked for), or else the
 * size the connection's buffer has, never 0.
 */
static int buf_size(const struct rudp__sock *s, int i)
{
	const struct rudp__cfg *cfg = rudp__loop_cfg();

	if (s->opts[i] > 0)
		return s->opts[i] > INT_MAX / 2 ? INT_MAX : 2 * s->opts[i];
	if (i == RUDP__OPT_RCVBUF)
		return (int)(!s->remote && s->conn ? s->conn->rcv_wnd : cfg->rcv_wnd);
	return (int)(!s->remote && s->conn ? s->conn->sb.cap : cfg->snd_buf);
}

/*
 * The sending side in TCP_INFO's units: the window in segments of snd_mss
 * bytes, as tools read it (iperf3 prints snd_cwnd * snd_mss as "Cwnd" and
 * total_retrans as "Retr").  A slow start that has not ended yet has no
 * threshold: Linux's "infinite" value.
 */
static void tcp_info_sender(const struct rudp__conn *c, struct tcp_info *ti)
{
	uint32_t mss = c->mss ? c->mss : 1;
	uint64_t cwnd = c->cc.cwnd / mss, ssthresh = c->cc.ssthresh / mss;

	ti->tcpi_snd_mss = c->mss;
	ti->tcpi_total_retrans = c->total_retrans;
	ti->tcpi_snd_cwnd = cwnd > UINT32_MAX ? UINT32_MAX : (uint32_t)cwnd;
	ti->tcpi_snd_ssthresh = ssthresh >= 0x7fffffff ? 0x7fffffff
						      : (uint32_t)ssthresh;
}

static int do_getsockopt(struct rudp__sock *s, int level, int name, void *val,
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
			tcp_info_sender(s->conn, &ti);
		}
		return put_opt(val, len, &ti, sizeof(ti));
	}
	if (level == SOL_SOCKET && name == SO_LINGER) {
		struct linger lg = { .l_onoff = s->opts[RUDP__OPT_LINGER_ON],
				     .l_linger = s->opts[RUDP__OPT_LINGER_SECS] };
		return put_opt(val, len, &lg, sizeof(lg));
	}
	if (*len < sizeof(int))
		return -EINVAL;
	if (level == SOL_SOCKET && name == SO_ERROR) {
		v = __atomic_exchange_n(&s->so_error, 0, __ATOMIC_RELAXED);
	} else if (level == SOL_SOCKET && name == SO_TYPE) {
		v = SOCK_STREAM;
	} else if (level == SOL_SOCKET && name == SO_DOMAIN) {
		v = s->domain;
	} else if (level == SOL_SOCKET && name == SO_PROTOCOL) {
		v = IPPROTO_TCP;
	} else if (level == SOL_SOCKET && name == SO_ACCEPTCONN) {
		v = state_of(s) == RUDP__LISTEN;
	} else if ((i = opt_index(level, name)) == RUDP__OPT_RCVBUF ||
		   i == RUDP__OPT_SNDBUF) {
		v = buf_size(s, i);
	} else if (i >= 0) {
		v = s->opts[i];
	} else {
		return -ENOPROTOOPT;
	}
	return put_opt(val, len, &v, sizeof(v));
}

static int do_setsockopt(struct rudp__sock *s, int level, int name,
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
		s->opts[RUDP__OPT_LINGER_ON] = lg.l_onoff;
		s->opts[RUDP__OPT_LINGER_SECS] = lg.l_linger;
		return 0;
	}
	if (i < 0)
		return -ENOPROTOOPT;
	if (len < sizeof(int))
		return -EINVAL;
	memcpy(&v, val, sizeof(v));
	/* Booleans read back as 0/1, as the kernel reports them. */
	if (i == RUDP__OPT_REUSEADDR || i == RUDP__OPT_REUSEPORT || i == RUDP__OPT_KEEPALIVE ||
	    i == RUDP__OPT_NODELAY)
		v = !!v;
	s->opts[i] = v;
	/* Set on a live connection (keepalive after accept): in force now. */
	if (!s->remote)
		rudp__sock_apply_opts(s);
	return 0;
}

/*
 * The shim's take-over in one hold of the lock: the socket, the kernel
 * socket's options and its address.  One call each would take the lock
 * and read the socket's cookie again every time (three or four times a
 * connect()), and every lock taken is a chance to wait for the loop.
 */
int rudp__socket_onto(int target, int domain, int type, bool cloexec,
		      const struct rudp__carry *carry)
{
	int flags = type & (SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct rudp__sock *s;
	int r, fd;

	r = rudp__loop_lock(&hooks);
	if (r < 0)
		return ret(r);
	/* Our end of the pair stays ours (the hold); a copy replaces target. */
	r = rudp__sock_new(domain, flags, true, true, &s, &fd);
	if (r == 0 && dup3(fd, target, cloexec ? O_CLOEXEC : 0) < 0) {
		r = -errno;
		rudp__sock_discard(s);
	}
	if (r == 0) {
		/* Options the kernel socket had are stored as they were set. */
		for (unsigned i = 0; i < carry->nopts; i++)
			if (carry->opts[i].val)
				(void)do_setsockopt(s, carry->opts[i].level,
						    carry->opts[i].name,
						    &carry->opts[i].val,
						    sizeof(int));
		if (carry->linger.l_onoff)
			(void)do_setsockopt(s, SOL_SOCKET, SO_LINGER,
					    &carry->linger,
					    sizeof(carry->linger));
		if (carry->boundlen)
			r = do_bind(s, (const struct sockaddr *)&carry->bound,
				    carry->boundlen);
	}
	rudp__loop_unlock();
	return ret(r);
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
		struct rudp__sock *s = rudp__sock_lookup(fd);           \
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
	return ret(do_accept(fd, addr, addrlen, flags, false));
}

int rudp__maybe_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen,
			int flags)
{
	if (!rudp__sock_count())
		return RUDP__NOT_OURS;
	int r = do_accept(fd, addr, addrlen, flags, true);
	return r == RUDP__NOT_OURS ? r : ret(r);
}

/*
 * ON_SOCK for a descriptor that may not be ours, with one SO_COOKIE read:
 * whether it is ours is decided without the loop's lock (as rudp__owns()
 * does, so closing a file never waits for the loop thread), and the lock
 * is taken only for our own sockets, found again by cookie.
 */
#define MAYBE_ON_SOCK(fd, call)                                         \
	do {                                                            \
		uint64_t cookie_;                                       \
		if (!rudp__sock_count() ||                              \
		    rudp__sock_cookie(fd, &cookie_) < 0 ||              \
		    !rudp__sock_known_cookie(cookie_))                  \
			return RUDP__NOT_OURS;                          \
		int r_ = rudp__loop_lock(&hooks);                       \
		if (r_ < 0)                                             \
			return ret(r_);                                 \
		struct rudp__sock *s = rudp__sock_find(cookie_);        \
		r_ = s ? (call) : -EBADF;                               \
		rudp__loop_unlock();                                    \
		return ret(r_);                                         \
	} while (0)

static int maybe_close(int fd)
{
	MAYBE_ON_SOCK(fd, do_close(s, fd));
}

int rudp__maybe_close(int fd)
{
	int r = maybe_close(fd);

	spares_refill();
	return r;
}

int rudp__maybe_getsockopt(int fd, int level, int name, void *val,
			   socklen_t *len)
{
	/* SO_ERROR without the loop's lock, as rudp_getsockopt answers it. */
	if (level == SOL_SOCKET && name == SO_ERROR && val && len &&
	    *len >= sizeof(int)) {
		uint64_t cookie;
		int v, r;
		if (!rudp__sock_count() || rudp__sock_cookie(fd, &cookie) < 0)
			return RUDP__NOT_OURS;
		r = rudp__sock_take_error_cookie(cookie, &v);
		if (r < 0)
			return RUDP__NOT_OURS;
		*len = sizeof(int);
		memcpy(val, &v, sizeof(v));
		return 0;
	}
	MAYBE_ON_SOCK(fd, do_getsockopt(s, level, name, val, len));
}

int rudp__maybe_setsockopt(int fd, int level, int name, const void *val,
			   socklen_t len)
{
	MAYBE_ON_SOCK(fd, do_setsockopt(s, level, name, val, len));
}

/*
 * write(), send(), writev() and sendmsg() on fd from the program's own
 * thread, straight into the send ring, when the loop's lock is free: a
 * busy lock means the loop is at work and will pump the pair soon anyway,
 * and waiting for it here could deadlock a signal handler that writes
 * while its thread holds the lock.  The lock is tried before the socket's
 * cookie is read, so a write that finds it busy (most of a bulk sender's)
 * costs no system call here.
 * Cancellation is held off meanwhile: recv and sendmmsg are cancellation
 * points, and a thread cancelled there would keep the lock.  Returns how
 * many bytes went in (the caller writes the rest to the pair), or
 * RUDP__NOT_OURS: then nothing happened and the pair takes it all.
 */
ssize_t rudp__maybe_send_direct(int fd, const struct iovec *iov, int iovcnt)
{
	struct rudp__sock *s;
	uint64_t cookie;
	ssize_t r;
	int cancel;

	if (!__atomic_load_n(&rudp__direct_write, __ATOMIC_RELAXED))
		return RUDP__NOT_OURS;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	r = rudp__loop_trylock(&hooks);
	if (r < 0) {
		pthread_setcancelstate(cancel, NULL);
		/* -EAGAIN: no loop runs in this process (a forked child). */
		RUDP__DW_COUNT(r == -EBUSY ? RUDP__DW_BUSY : RUDP__DW_UNUSUAL, 1);
		return RUDP__NOT_OURS;
	}
	s = rudp__sock_cookie(fd, &cookie) == 0 ? rudp__sock_find(cookie) : NULL;
	r = s ? rudp__sock_send_direct(s, iov, iovcnt) : -RUDP__DW_UNUSUAL;
	rudp__loop_unlock();
	pthread_setcancelstate(cancel, NULL);
	if (r < 0) {
		RUDP__DW_COUNT((int)-r, 1);
		return RUDP__NOT_OURS;
	}
	RUDP__DW_COUNT(RUDP__DW_DIRECT, 1);
	RUDP__DW_COUNT(RUDP__DW_BYTES, (unsigned long)r);
	if (iovcnt > 1)
		RUDP__DW_COUNT(RUDP__DW_VECTORED, 1);
	return r;
}

int rudp_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	return rudp_accept4(fd, addr, addrlen, 0);
}

static int close_sock(int fd)
{
	ON_SOCK(fd, do_close(s, fd));
}

int rudp_close(int fd)
{
	int r = close_sock(fd);

	spares_refill();
	return r;
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
	/*
	 * SO_ERROR is what a program asks the moment a non-blocking
	 * connect() polls writable, which is while the loop thread that
	 * made it so still holds the lock: it is answered without it.
	 */
	if (level == SOL_SOCKET && optname == SO_ERROR && optval && optlen &&
	    *optlen >= sizeof(int)) {
		int v, r = rudp__sock_take_error(fd, &v);
		if (r < 0)
			return ret(r);
		*optlen = sizeof(int);
		memcpy(optval, &v, sizeof(v));
		return 0;
	}
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
	/*
	 * The shim asks on every call: no sockets, no lock, no syscall; and
	 * never the loop's lock, which the loop thread holds while it works.
	 */
	return rudp__sock_known(fd);
}
