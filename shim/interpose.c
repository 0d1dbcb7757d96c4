/*
 * librudp_shim.so: LD_PRELOAD interposition that carries a program's TCP
 * connections on marked ports (RUDP_PORTS) over rudp.
 *
 * Three layers per call, in the manner of socket_wrapper: the exported libc
 * name is one line calling shim_<call>(), which holds the decision, and
 * which calls the real libc_<call>(), resolved once with dlsym(RTLD_NEXT).
 *
 * The descriptors rudp hands out are real kernel descriptors (see
 * docs/DESIGN.md), so read/write/send/recv, poll/select/epoll, fcntl,
 * ioctl(FIONBIO/FIONREAD), sendfile and their fortified variants go straight
 * to the kernel and are not interposed.  Only the calls that create, name,
 * configure or end a connection are.  socket() is not interposed either: the
 * port is unknown when a socket is created, so a kernel TCP socket is made
 * as usual and replaced in place (same descriptor number, same flags, same
 * epoll registrations) when the program binds or connects it to a marked
 * port.
 */
#define _GNU_SOURCE /* accept4, dup3, close_range: glibc declares them so */
#include <dlfcn.h>
#include <linux/close_range.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "rudp.h"

#include "api.h"
#include "log.h"
#include "loop.h"
#include "fdset.h"
#include "ownfd.h"
#include "ports.h"

#define EXPORT __attribute__((visibility("default")))

static struct rudp__ports ports;

/* The real libc functions. */
static struct {
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*close)(int);
	int (*close_range)(unsigned, unsigned, int);
	void (*closefrom)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*shutdown)(int, int);
	int (*getsockname)(int, struct sockaddr *, socklen_t *);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	ssize_t (*sendto)(int, const void *, size_t, int,
			  const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*epoll_ctl)(int, int, int, struct epoll_event *);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*writev)(int, const struct iovec *, int);
} real;

static pthread_once_t resolved = PTHREAD_ONCE_INIT;

static void *must_resolve(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (!f) {
		rudp__log(RUDP__LOG_ERROR, "cannot find libc's %s: %s", name,
			  dlerror());
		_exit(127);
	}
	return f;
}

/*
 * dlsym returns an object pointer; copying its bytes into the function
 * pointer is the POSIX-blessed way to convert it.
 */
#define RESOLVE(name)                                           \
	do {                                                    \
		void *f_ = must_resolve(#name);                 \
		memcpy(&real.name, &f_, sizeof(f_));            \
	} while (0)

static void resolve(void)
{
	RESOLVE(bind);
	RESOLVE(connect);
	RESOLVE(listen);
	RESOLVE(accept);
	RESOLVE(accept4);
	RESOLVE(close);
	RESOLVE(close_range);
	RESOLVE(closefrom);
	RESOLVE(dup2);
	RESOLVE(dup3);
	RESOLVE(shutdown);
	RESOLVE(getsockname);
	RESOLVE(getpeername);
	RESOLVE(getsockopt);
	RESOLVE(setsockopt);
	RESOLVE(sendto);
	RESOLVE(sendmsg);
	RESOLVE(epoll_ctl);
	RESOLVE(write);
	RESOLVE(send);
	RESOLVE(writev);
}

#define REAL(name) (pthread_once(&resolved, resolve), real.name)

static int libc_bind(int fd, const struct sockaddr *a, socklen_t l)
{
	return REAL(bind)(fd, a, l);
}

static int libc_connect(int fd, const struct sockaddr *a, socklen_t l)
{
	return REAL(connect)(fd, a, l);
}

static int libc_listen(int fd, int backlog)
{
	return REAL(listen)(fd, backlog);
}

static int libc_accept4(int fd, struct sockaddr *a, socklen_t *l, int fl)
{
	return REAL(accept4)(fd, a, l, fl);
}

static int libc_accept(int fd, struct sockaddr *a, socklen_t *l)
{
	return REAL(accept)(fd, a, l);
}

static int libc_close(int fd)
{
	return REAL(close)(fd);
}

static int libc_close_range(unsigned first, unsigned last, int flags)
{
	return REAL(close_range)(first, last, flags);
}

static int libc_dup3(int oldfd, int newfd, int flags)
{
	return REAL(dup3)(oldfd, newfd, flags);
}

static int libc_dup2(int oldfd, int newfd)
{
	return REAL(dup2)(oldfd, newfd);
}

static int libc_shutdown(int fd, int how)
{
	return REAL(shutdown)(fd, how);
}

static int libc_getsockname(int fd, struct sockaddr *a, socklen_t *l)
{
	return REAL(getsockname)(fd, a, l);
}

static int libc_getpeername(int fd, struct sockaddr *a, socklen_t *l)
{
	return REAL(getpeername)(fd, a, l);
}

static int libc_getsockopt(int fd, int lvl, int name, void *v, socklen_t *l)
{
	return REAL(getsockopt)(fd, lvl, name, v, l);
}

static int libc_setsockopt(int fd, int lvl, int name, const void *v,
			   socklen_t l)
{
	return REAL(setsockopt)(fd, lvl, name, v, l);
}

static ssize_t libc_sendto(int fd, const void *b, size_t n, int fl,
			   const struct sockaddr *a, socklen_t l)
{
	return REAL(sendto)(fd, b, n, fl, a, l);
}

static ssize_t libc_sendmsg(int fd, const struct msghdr *m, int fl)
{
	return REAL(sendmsg)(fd, m, fl);
}

static int libc_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	return REAL(epoll_ctl)(epfd, op, fd, ev);
}

static ssize_t libc_write(int fd, const void *b, size_t n)
{
	return REAL(write)(fd, b, n);
}

static ssize_t libc_writev(int fd, const struct iovec *v, int n)
{
	return REAL(writev)(fd, v, n);
}

static ssize_t libc_send(int fd, const void *b, size_t n, int fl)
{
	return REAL(send)(fd, b, n, fl);
}

/*
 * Descriptor numbers the shim made or accepted as rudp program ends, so
 * that write() and send() on anything else cost one bit test.  A member is
 * only a hint (the program may have replaced the number by means the shim
 * does not see): the socket's cookie confirms it.
 */
static struct rudp__fdset rudp_fds;

/*
 * Kernel sockets whose program set SO_RCVBUF or SO_SNDBUF on them before
 * a take-over: only those sizes are carried, since a kernel socket always
 * reports one and its defaults (TCP's starting sizes) would shrink ours.
 */
static struct rudp__fdset sized_fds;

/* Takes the members in [first, last] out of set. */
static void fdset_del_range(struct rudp__fdset *set, unsigned first,
			    unsigned last)
{
	for (int f = rudp__fdset_next(set, first > INT32_MAX ? INT32_MAX
							     : (int)first);
	     f >= 0 && (unsigned)f <= last; f = rudp__fdset_next(set, f))
		rudp__fdset_del(set, f);
}

/* newfd now names what oldfd names: it is in set exactly if oldfd is. */
static void fdset_copy(struct rudp__fdset *set, int oldfd, int newfd)
{
	if (rudp__fdset_has(set, oldfd))
		rudp__fdset_add(set, newfd);
	else
		rudp__fdset_del(set, newfd);
}

/*
 * Runs before main: an invalid RUDP_PORTS or RUDP_LOG stops the program
 * with status 2, naming the bad token.  Failing closed is deliberate: the
 * user asked for rudp, and silently using TCP instead would hide that.
 */
__attribute__((constructor)) static void shim_init(void)
{
	char err[256];
	const char *lvl = getenv("RUDP_LOG");

	if (rudp__log_parse(lvl, &rudp__log_level) < 0) {
		fprintf(stderr, "rudp: bad RUDP_LOG=%s: use error, warn, info "
				"or debug\n", lvl);
		_exit(2);
	}
	if (rudp__ports_parse(getenv("RUDP_PORTS"), &ports, err,
			      sizeof(err)) < 0) {
		fprintf(stderr, "rudp: %s\n", err);
		_exit(2);
	}
	pthread_once(&resolved, resolve);
}

/* The port of an AF_INET/AF_INET6 address, or -1 for anything else. */
static int port_of(const struct sockaddr *a, socklen_t len)
{
	if (!a)
		return -1;
	if (a->sa_family == AF_INET && len >= sizeof(struct sockaddr_in))
		return ntohs(((const struct sockaddr_in *)a)->sin_port);
	if (a->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
		return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
	return -1;
}

static bool marked(const struct sockaddr *a, socklen_t len)
{
	int port = port_of(a, len);

	if (port < 0)
		return false;
	/* Port 0 (any port) is ours only when every port is. */
	return port ? rudp__ports_has(&ports, (uint16_t)port) : ports.all;
}

/*
 * Whether fd is a kernel TCP socket (the kind we may take over): only
 * AF_INET and AF_INET6 sockets speak IPPROTO_TCP.  Never one of ours,
 * which are AF_UNIX.
 */
static bool kernel_tcp(int fd)
{
	int v;
	socklen_t len = sizeof(v);

	return libc_getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &len) == 0 &&
	       v == IPPROTO_TCP;
}

/* Whether the shim has anything to do with fd at all: the fast path. */
static bool ours(int fd)
{
	return !rudp__in_core && ports.any && rudp__owns(fd);
}

/*
 * epoll registrations of kernel TCP sockets that may still be taken over.
 * Replacing a descriptor drops its registrations (they belong to the old
 * file), so we remember them and make them again on the new one: nginx,
 * for one, registers a socket before connect().
 */
struct ereg {
	int epfd, fd;
	struct epoll_event ev;
};

static pthread_mutex_t regs_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ereg *regs;
static size_t nregs, capregs;

static void regs_forget(int fd)
{
	pthread_mutex_lock(&regs_mu);
	for (size_t i = 0; i < nregs;) {
		if (regs[i].fd == fd || regs[i].epfd == fd)
			regs[i] = regs[--nregs];
		else
			i++;
	}
	pthread_mutex_unlock(&regs_mu);
}

static void regs_track(int epfd, int op, int fd, const struct epoll_event *ev)
{
	pthread_mutex_lock(&regs_mu);
	for (size_t i = 0; i < nregs; i++) {
		if (regs[i].epfd != epfd || regs[i].fd != fd)
			continue;
		if (op == EPOLL_CTL_DEL)
			regs[i] = regs[--nregs];
		else if (ev)
			regs[i].ev = *ev;
		goto out;
	}
	if (op != EPOLL_CTL_ADD || !ev || !kernel_tcp(fd))
		goto out;
	if (nregs == capregs) {
		size_t cap = capregs ? 2 * capregs : 16;
		struct ereg *r = realloc(regs, cap * sizeof(*r));
		if (!r)
			goto out; /* only a later take-over loses this one */
		regs = r;
		capregs = cap;
	}
	regs[nregs++] = (struct ereg){ .epfd = epfd, .fd = fd, .ev = *ev };
out:
	pthread_mutex_unlock(&regs_mu);
}

static void regs_replay(int fd)
{
	pthread_mutex_lock(&regs_mu);
	for (size_t i = 0; i < nregs;) {
		if (regs[i].fd != fd) {
			i++;
			continue;
		}
		if (libc_epoll_ctl(regs[i].epfd, EPOLL_CTL_ADD, fd,
				   &regs[i].ev) < 0)
			rudp__log(RUDP__LOG_WARN,
				  "fd %d: cannot restore its epoll registration: %s",
				  fd, strerror(errno));
		/* An rudp descriptor needs no tracking: it never changes. */
		regs[i] = regs[--nregs];
	}
	pthread_mutex_unlock(&regs_mu);
}

/* Options a program commonly sets before connect() or bind(); carried over. */
static const struct { int level, name; } carried[] = {
	{ SOL_SOCKET, SO_REUSEADDR }, { SOL_SOCKET, SO_REUSEPORT },
	{ SOL_SOCKET, SO_KEEPALIVE }, { IPPROTO_TCP, TCP_NODELAY },
	{ IPPROTO_TCP, TCP_KEEPIDLE }, { IPPROTO_TCP, TCP_KEEPINTVL },
	{ IPPROTO_TCP, TCP_KEEPCNT },
};

/*
 * What a fresh kernel TCP socket reports for SO_RCVBUF and SO_SNDBUF.  A
 * size equal to it is not carried: a descriptor closed behind the shim's
 * back (fclose() closes inside libc) can leave a stale mark on its number,
 * and carrying TCP's starting sizes would shrink our buffers to them.
 */
static const int buf_opts[2] = { SO_RCVBUF, SO_SNDBUF };
static int fresh_bufs[2];
static pthread_once_t fresh_once = PTHREAD_ONCE_INIT;

static void read_fresh_bufs(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	for (size_t i = 0; i < 2; i++) {
		socklen_t l = sizeof(fresh_bufs[i]);
		if (libc_getsockopt(fd, SOL_SOCKET, buf_opts[i], &fresh_bufs[i],
				    &l) < 0)
			fresh_bufs[i] = 0;
	}
	libc_close(fd);
}

/* Adds to carry the buffer sizes the program set on kernel socket fd. */
static void carry_bufs(int fd, struct rudp__carry *carry)
{
	pthread_once(&fresh_once, read_fresh_bufs);
	for (size_t i = 0; i < 2; i++) {
		int v = 0;
		socklen_t l = sizeof(v);
		/* The kernel reports twice what was set. */
		if (libc_getsockopt(fd, SOL_SOCKET, buf_opts[i], &v, &l) < 0 ||
		    v <= 1 || v == fresh_bufs[i])
			continue;
		carry->opts[carry->nopts].level = SOL_SOCKET;
		carry->opts[carry->nopts].name = buf_opts[i];
		carry->opts[carry->nopts++].val = v / 2;
	}
	rudp__fdset_del(&sized_fds, fd);
}

/*
 * Replaces kernel TCP socket fd, in place, by an rudp socket: same number,
 * same O_NONBLOCK and FD_CLOEXEC, the same options and epoll registrations,
 * and bound to the same address if it was bound.  Returns 0 or -errno.
 */
static int take_over(int fd)
{
	struct rudp__carry carry = { .nopts = sizeof(carried) / sizeof(carried[0]) };
	socklen_t lglen = sizeof(carry.linger);
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD), domain;

	_Static_assert(sizeof(carried) / sizeof(carried[0]) + 2 <= RUDP__CARRY_MAX,
		       "struct rudp__carry has room for every carried option "
		       "and both buffer sizes");
	if (fl < 0 || fdfl < 0)
		return -errno;
	/*
	 * The address's family is the socket's domain: one system call
	 * fewer than asking SO_DOMAIN as well.
	 */
	carry.boundlen = sizeof(carry.bound);
	if (libc_getsockname(fd, (struct sockaddr *)&carry.bound,
			     &carry.boundlen) < 0)
		return -errno;
	domain = carry.bound.ss_family;
	if (domain != AF_INET && domain != AF_INET6)
		return -EAFNOSUPPORT;
	if (port_of((struct sockaddr *)&carry.bound, carry.boundlen) <= 0)
		carry.boundlen = 0;
	for (size_t i = 0; i < carry.nopts; i++) {
		socklen_t l = sizeof(carry.opts[i].val);
		carry.opts[i].level = carried[i].level;
		carry.opts[i].name = carried[i].name;
		if (libc_getsockopt(fd, carried[i].level, carried[i].name,
				    &carry.opts[i].val, &l) < 0)
			carry.opts[i].val = 0;
	}
	if (libc_getsockopt(fd, SOL_SOCKET, SO_LINGER, &carry.linger, &lglen) < 0)
		memset(&carry.linger, 0, sizeof(carry.linger));
	if (rudp__fdset_has(&sized_fds, fd))
		carry_bufs(fd, &carry);
	if (rudp__socket_onto(fd, domain, SOCK_STREAM | SOCK_CLOEXEC |
			      ((fl & O_NONBLOCK) ? SOCK_NONBLOCK : 0),
			      (fdfl & FD_CLOEXEC) != 0, &carry) < 0) {
		int e = errno;
		/* A failed bind leaves the socket replaced all the same. */
		if (rudp__owns(fd))
			regs_replay(fd);
		return -e;
	}
	regs_replay(fd);
	rudp__fdset_add(&rudp_fds, fd);
	rudp__log(RUDP__LOG_DEBUG, "fd %d: taken over by rudp", fd);
	return 0;
}

/* The one place the shim turns -errno into -1/errno. */
static int fail(int r)
{
	errno = -r;
	return -1;
}

/*
 * bind and connect: a kernel TCP socket is taken over when the address is
 * marked.  That test comes first because it is the one every new
 * connection passes, and a kernel TCP socket needs no ownership test (one
 * system call fewer); a repeated call on one of ours pays it instead.
 */
static int shim_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	int r;

	if (rudp__in_core || !ports.any)
		return libc_bind(fd, addr, len);
	if (marked(addr, len) && kernel_tcp(fd)) {
		r = take_over(fd);
		if (r < 0)
			return fail(r);
		return rudp_bind(fd, addr, len);
	}
	if (rudp__owns(fd))
		return rudp_bind(fd, addr, len);
	return libc_bind(fd, addr, len);
}

static int shim_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	int r;

	if (rudp__in_core || !ports.any)
		return libc_connect(fd, addr, len);
	if (marked(addr, len) && kernel_tcp(fd)) {
		r = take_over(fd);
		if (r < 0)
			return fail(r);
		return rudp_connect(fd, addr, len);
	}
	if (rudp__owns(fd))
		return rudp_connect(fd, addr, len);
	return libc_connect(fd, addr, len);
}

static int shim_listen(int fd, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int r;

	if (rudp__in_core || !ports.any)
		return libc_listen(fd, backlog);
	if (rudp__owns(fd))
		return rudp_listen(fd, backlog);
	/*
	 * listen() on an unbound socket picks a port; which one is unknown
	 * until then, so only "every port" covers it.
	 */
	if (ports.all && kernel_tcp(fd) &&
	    libc_getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
	    port_of((struct sockaddr *)&ss, len) == 0) {
		r = take_over(fd);
		if (r < 0)
			return fail(r);
		return rudp_listen(fd, backlog);
	}
	return libc_listen(fd, backlog);
}

/* Whether the shim may have anything to do with a descriptor. */
static bool may_be_ours(void)
{
	return !rudp__in_core && ports.any;
}

static int shim_accept4(int fd, struct sockaddr *addr, socklen_t *len,
			int flags)
{
	int r;

	if (may_be_ours() &&
	    (r = rudp__maybe_accept4(fd, addr, len, flags)) != RUDP__NOT_OURS) {
		rudp__fdset_add(&rudp_fds, r);
		return r;
	}
	return libc_accept4(fd, addr, len, flags);
}

static int shim_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	int r;

	if (may_be_ours() &&
	    (r = rudp__maybe_accept4(fd, addr, len, 0)) != RUDP__NOT_OURS) {
		rudp__fdset_add(&rudp_fds, r);
		return r;
	}
	return libc_accept(fd, addr, len);
}

static int shim_close(int fd)
{
	if (rudp__in_core)
		return libc_close(fd);
	/*
	 * Programs close descriptors they never opened (daemons, closefrom
	 * loops); ours must survive that.  The program cannot have meant our
	 * descriptor, so it is told the close succeeded.
	 */
	if (rudp__ownfd_has(fd)) {
		rudp__log(RUDP__LOG_DEBUG, "close(%d): kept, rudp owns it", fd);
		return 0;
	}
	if (nregs)
		regs_forget(fd);
	rudp__fdset_del(&rudp_fds, fd);
	rudp__fdset_del(&sized_fds, fd);
	if (ports.any) {
		int r = rudp__maybe_close(fd);
		if (r != RUDP__NOT_OURS)
			return r;
	}
	return libc_close(fd);
}

/* Calls close_range for [first, last] minus our own descriptors. */
static int shim_close_range(unsigned first, unsigned last, int flags)
{
	unsigned cur = first;

	/* Setting close-on-exec harms nothing: ours have it already. */
	if (rudp__in_core || (flags & CLOSE_RANGE_CLOEXEC))
		return libc_close_range(first, last, flags);
	fdset_del_range(&rudp_fds, first, last);
	fdset_del_range(&sized_fds, first, last);
	while (cur <= last) {
		int own = rudp__ownfd_next(cur > INT32_MAX ? INT32_MAX : (int)cur);
		if (own < 0 || (unsigned)own > last)
			return libc_close_range(cur, last, flags);
		if ((unsigned)own > cur &&
		    libc_close_range(cur, (unsigned)own - 1, flags) < 0)
			return -1;
		cur = (unsigned)own + 1;
		if (cur == 0)
			break;
	}
	return 0;
}

static int shim_dup3(int oldfd, int newfd, int flags)
{
	/*
	 * Replacing one of our descriptors would cut a connection's lifeline
	 * behind our back.  Moving ours aside is not worth the complexity for
	 * something programs do only by accident, so it is refused.
	 */
	if (!rudp__in_core && rudp__ownfd_has(newfd)) {
		rudp__log(RUDP__LOG_WARN,
			  "dup to fd %d refused: rudp uses that descriptor",
			  newfd);
		return fail(-EBUSY);
	}
	int r = flags == -1 ? libc_dup2(oldfd, newfd)
			    : libc_dup3(oldfd, newfd, flags);
	if (r >= 0 && oldfd != newfd) {
		fdset_copy(&rudp_fds, oldfd, newfd);
		fdset_copy(&sized_fds, oldfd, newfd);
	}
	return r;
}

static int shim_shutdown(int fd, int how)
{
	if (ours(fd))
		return rudp_shutdown(fd, how);
	return libc_shutdown(fd, how);
}

static int shim_getsockname(int fd, struct sockaddr *a, socklen_t *l)
{
	if (ours(fd))
		return rudp_getsockname(fd, a, l);
	return libc_getsockname(fd, a, l);
}

static int shim_getpeername(int fd, struct sockaddr *a, socklen_t *l)
{
	if (ours(fd))
		return rudp_getpeername(fd, a, l);
	return libc_getpeername(fd, a, l);
}

static int shim_getsockopt(int fd, int lvl, int name, void *v, socklen_t *l)
{
	int r = may_be_ours() ? rudp__maybe_getsockopt(fd, lvl, name, v, l)
			      : RUDP__NOT_OURS;

	if (r == RUDP__NOT_OURS)
		return libc_getsockopt(fd, lvl, name, v, l);
	if (r == 0)
		return 0;
	/*
	 * Anything rudp does not model is answered by the descriptor itself
	 * (SO_RCVLOWAT, SO_SNDTIMEO, ...), which is what the program uses.
	 */
	return libc_getsockopt(fd, lvl, name, v, l);
}

static int shim_setsockopt(int fd, int lvl, int name, const void *v,
			   socklen_t l)
{
	int r = may_be_ours() ? rudp__maybe_setsockopt(fd, lvl, name, v, l)
			      : RUDP__NOT_OURS;

	if (r == RUDP__NOT_OURS) {
		r = libc_setsockopt(fd, lvl, name, v, l);
		if (r == 0 && lvl == SOL_SOCKET &&
		    (name == SO_RCVBUF || name == SO_SNDBUF ||
		     name == SO_RCVBUFFORCE || name == SO_SNDBUFFORCE))
			rudp__fdset_add(&sized_fds, fd);
		return r;
	}
	if (r == 0)
		return 0;
	/*
	 * The promise: TCP options are accepted, never fail.  Socket
	 * level ones go to the descriptor (timeouts, low-water marks).
	 */
	if (lvl == SOL_SOCKET && libc_setsockopt(fd, lvl, name, v, l) == 0)
		return 0;
	if (lvl == IPPROTO_TCP || lvl == IPPROTO_IP || lvl == IPPROTO_IPV6)
		return 0;
	return libc_setsockopt(fd, lvl, name, v, l);
}

/*
 * write(), send(), writev() and sendmsg() on an rudp descriptor of this
 * process: the program's thread puts the bytes in the send ring and sends
 * them itself when the loop's lock is free, which saves the loop thread's
 * wake-up (two of the six thread hand-offs of a request and its answer).
 * What the ring cannot take, and anything unusual, goes into the pair as
 * before, with its blocking, EAGAIN, EPIPE and SIGPIPE intact.  Vectors of
 * more buffers than DIRECT_IOV_MAX take the pair whole: the rest of one
 * is copied on the stack.
 */
#define DIRECT_IOV_MAX 64

/* Bytes in iov, or 0 past what one call may write (the kernel refuses it). */
static size_t iov_total(const struct iovec *iov, int cnt)
{
	size_t n = 0;

	for (int i = 0; i < cnt; i++) {
		if (iov[i].iov_len > (size_t)SSIZE_MAX - n)
			return 0;
		n += iov[i].iov_len;
	}
	return n;
}

/*
 * Into the pair, what the ring did not take: iov less its first skip
 * bytes.  On a socket write() and writev() are sendmsg() with flags 0.
 */
static ssize_t pair_rest(int fd, const struct iovec *iov, int cnt,
			 size_t skip, int flags)
{
	struct iovec rest[DIRECT_IOV_MAX];
	struct msghdr m = { .msg_iov = rest };
	int i = 0;

	while (i < cnt && skip >= iov[i].iov_len)
		skip -= iov[i++].iov_len;
	for (; i < cnt; i++, skip = 0) {
		rest[m.msg_iovlen].iov_base = (char *)iov[i].iov_base + skip;
		rest[m.msg_iovlen++].iov_len = iov[i].iov_len - skip;
	}
	return libc_sendmsg(fd, &m, flags);
}

/*
 * The direct way for the bytes of iov: how many were sent (the ring's
 * share, plus what the pair took of the rest), or RUDP__NOT_OURS when the
 * caller's own libc call must take them all (nothing to send included).
 * The cheap tests come first: every write() of the program passes here.
 */
static ssize_t send_direct(int fd, const struct iovec *iov, size_t cnt,
			   int flags)
{
	ssize_t k, r;
	size_t n;

	if (rudp__in_core || !rudp__fdset_has(&rudp_fds, fd) || !ports.any ||
	    (flags & ~(MSG_NOSIGNAL | MSG_DONTWAIT)) || cnt < 1 ||
	    cnt > DIRECT_IOV_MAX || !(n = iov_total(iov, (int)cnt)))
		return RUDP__NOT_OURS;
	k = rudp__maybe_send_direct(fd, iov, (int)cnt);
	if (k == RUDP__NOT_OURS || (size_t)k == n)
		return k;
	/* The ring is full: the rest waits in the pair, after these. */
	int e = errno;
	r = pair_rest(fd, iov, (int)cnt, (size_t)k, flags);
	if (r < 0) {
		/* A short write, as the kernel's would be. */
		errno = e;
		return k;
	}
	return k + r;
}

static ssize_t shim_write_send(int fd, const void *buf, size_t n, int flags,
			       bool is_send)
{
	struct iovec v = { .iov_base = (void *)buf, .iov_len = n };
	ssize_t r = send_direct(fd, &v, 1, flags);

	if (r != RUDP__NOT_OURS)
		return r;
	return is_send ? libc_send(fd, buf, n, flags) : libc_write(fd, buf, n);
}

static ssize_t shim_writev(int fd, const struct iovec *iov, int cnt)
{
	ssize_t r = cnt > 0 ? send_direct(fd, iov, (size_t)cnt, 0)
			    : RUDP__NOT_OURS;

	return r != RUDP__NOT_OURS ? r : libc_writev(fd, iov, cnt);
}

/*
 * sendto() with MSG_FASTOPEN connects and sends in one call; with an
 * address on a connected rudp socket the address is ignored, as TCP does
 * (the descriptor underneath would refuse it).
 */
static ssize_t shim_sendto(int fd, const void *buf, size_t n, int flags,
			   const struct sockaddr *a, socklen_t l)
{
	if (!a || rudp__in_core || !ports.any)
		return libc_sendto(fd, buf, n, flags, a, l);
	if (!rudp__owns(fd)) {
		if (!(flags & MSG_FASTOPEN) || !marked(a, l) || !kernel_tcp(fd))
			return libc_sendto(fd, buf, n, flags, a, l);
		int r = take_over(fd);
		if (r < 0)
			return fail(r);
	}
	if (flags & MSG_FASTOPEN) {
		if (rudp_connect(fd, a, l) < 0 && errno != EISCONN)
			return -1;
		flags &= ~MSG_FASTOPEN;
	}
	return libc_sendto(fd, buf, n, flags, NULL, 0);
}

static ssize_t shim_sendmsg(int fd, const struct msghdr *m, int flags)
{
	struct msghdr copy;

	/* Plain data on a connected socket: the direct way, as send(). */
	if (m && !m->msg_name && !m->msg_controllen) {
		ssize_t r = send_direct(fd, m->msg_iov, m->msg_iovlen, flags);
		if (r != RUDP__NOT_OURS)
			return r;
	}
	if (!m || !m->msg_name || rudp__in_core || !ports.any)
		return libc_sendmsg(fd, m, flags);
	if (!rudp__owns(fd) && !(flags & MSG_FASTOPEN))
		return libc_sendmsg(fd, m, flags);
	if (!rudp__owns(fd)) {
		int r;
		if (!marked(m->msg_name, m->msg_namelen) || !kernel_tcp(fd))
			return libc_sendmsg(fd, m, flags);
		r = take_over(fd);
		if (r < 0)
			return fail(r);
	}
	if (flags & MSG_FASTOPEN) {
		if (rudp_connect(fd, m->msg_name, m->msg_namelen) < 0 &&
		    errno != EISCONN)
			return -1;
		flags &= ~MSG_FASTOPEN;
	}
	copy = *m;
	copy.msg_name = NULL;
	copy.msg_namelen = 0;
	return libc_sendmsg(fd, &copy, flags);
}

static int shim_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	int r = libc_epoll_ctl(epfd, op, fd, ev);

	if (r == 0 && ports.any && !rudp__in_core)
		regs_track(epfd, op, fd, ev);
	return r;
}

/*
 * The exported libc names: one line each.  glibc declares the address
 * arguments as transparent unions under _GNU_SOURCE, so ours match.
 */

EXPORT int bind(int fd, __CONST_SOCKADDR_ARG a, socklen_t l)
{
	return shim_bind(fd, a.__sockaddr__, l);
}

EXPORT int connect(int fd, __CONST_SOCKADDR_ARG a, socklen_t l)
{
	return shim_connect(fd, a.__sockaddr__, l);
}

EXPORT int listen(int fd, int backlog)
{
	return shim_listen(fd, backlog);
}

EXPORT int accept(int fd, __SOCKADDR_ARG a, socklen_t *l)
{
	return shim_accept(fd, a.__sockaddr__, l);
}

EXPORT int accept4(int fd, __SOCKADDR_ARG a, socklen_t *l, int flags)
{
	return shim_accept4(fd, a.__sockaddr__, l, flags);
}

EXPORT int close(int fd)
{
	return shim_close(fd);
}

EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	return shim_close_range(first, last, flags);
}

EXPORT void closefrom(int lowfd)
{
	(void)shim_close_range(lowfd < 0 ? 0 : (unsigned)lowfd, ~0U, 0);
}

EXPORT int dup2(int oldfd, int newfd)
{
	return shim_dup3(oldfd, newfd, -1);
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
	return shim_dup3(oldfd, newfd, flags);
}

EXPORT int shutdown(int fd, int how)
{
	return shim_shutdown(fd, how);
}

EXPORT int getsockname(int fd, __SOCKADDR_ARG a, socklen_t *l)
{
	return shim_getsockname(fd, a.__sockaddr__, l);
}

EXPORT int getpeername(int fd, __SOCKADDR_ARG a, socklen_t *l)
{
	return shim_getpeername(fd, a.__sockaddr__, l);
}

EXPORT int getsockopt(int fd, int lvl, int name, void *v, socklen_t *l)
{
	return shim_getsockopt(fd, lvl, name, v, l);
}

EXPORT int setsockopt(int fd, int lvl, int name, const void *v, socklen_t l)
{
	return shim_setsockopt(fd, lvl, name, v, l);
}

EXPORT ssize_t sendto(int fd, const void *b, size_t n, int flags,
		      __CONST_SOCKADDR_ARG a, socklen_t l)
{
	return shim_sendto(fd, b, n, flags, a.__sockaddr__, l);
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	return shim_sendmsg(fd, m, flags);
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	return shim_epoll_ctl(epfd, op, fd, ev);
}

EXPORT ssize_t write(int fd, const void *b, size_t n)
{
	return shim_write_send(fd, b, n, 0, false);
}

EXPORT ssize_t writev(int fd, const struct iovec *v, int n)
{
	return shim_writev(fd, v, n);
}

EXPORT ssize_t send(int fd, const void *b, size_t n, int flags)
{
	return shim_write_send(fd, b, n, flags, true);
}
