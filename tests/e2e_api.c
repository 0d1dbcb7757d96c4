/*
 * End-to-end tests of the public API (include/rudp.h) over real UDP on
 * loopback.  tests/netns-run.sh runs this program in a private network
 * namespace where kernel TCP is dropped, so everything seen here went over
 * UDP.
 *
 * Every case runs in its own forked process, and every case that needs a
 * peer forks that peer before its first rudp call: the library's loop thread
 * does not survive fork(), so each process must start the library afresh.
 * The top-level process therefore never calls rudp at all.  Processes talk
 * over AF_UNIX control channels (addresses, go/done tokens, counters); every
 * wait on them, on an rudp descriptor or on a child is bounded, and every
 * process also arms alarm() so that a hang ends as a failure.
 *
 * Output is TAP: one "ok N - name" or "not ok N - name" line per case, with
 * "#" lines explaining each failed check and the measured timings.  The exit
 * status is non-zero when any case failed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rudp.h"

#define SA(p) ((struct sockaddr *)(p))

/* A peer process gives up on its own after this long, whatever it waits on. */
#define PEER_ALARM_S 40

/* Number of connections in the concurrency case. */
#define NCONC 100

/* Which process is speaking, for the diagnostics. */
static const char *role = "main";
/* Failed checks in this process; a process exits non-zero if any failed. */
static unsigned failures;

static void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One "#" line per message, flushed at once, so processes interleave whole. */
static void diag(const char *fmt, ...)
{
	char line[768];
	va_list ap;
	int n = snprintf(line, sizeof(line), "# [%s] ", role);

	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	printf("%s\n", line);
	fflush(stdout);
}

static const char *errname(int e)
{
	const char *s = strerrorname_np(e);

	return s ? s : "unknown errno";
}

/*
 * Records a failed expectation.  errno is read on entry, so when cond is a
 * comparison on an rudp call's result it shows why that call failed.
 */
static bool check_(bool ok, const char *expr, const char *file, int line)
{
	int e = errno;

	if (!ok) {
		failures++;
		diag("FAIL %s:%d: %s (errno: %s)", file, line, expr,
		     e ? errname(e) : "0");
	}
	errno = e;
	return ok;
}

#define CHECK(cond) check_((cond), #cond, __FILE__, __LINE__)

/* Records whether a call that should fail did so with errno `want`. */
static bool expect_err_(int r, int e, int want, const char *call,
			const char *file, int line)
{
	if (r == -1 && e == want)
		return true;
	failures++;
	if (r == -1)
		diag("FAIL %s:%d: %s failed with %s, expected %s", file, line,
		     call, errname(e), errname(want));
	else
		diag("FAIL %s:%d: %s returned %d, expected -1/%s", file, line,
		     call, r, errname(want));
	return false;
}

/*
 * The call and the errno read must be sequenced, so this is a statement:
 * evaluating both as arguments of one function call would be unspecified.
 */
#define EXPECT_ERR(call, want)                                            \
	do {                                                              \
		errno = 0;                                                \
		int r_ = (call);                                          \
		int e_ = errno;                                           \
		(void)expect_err_(r_, e_, (want), #call, __FILE__,        \
				  __LINE__);                              \
	} while (0)

#define EXPECT_RES(r, e, want, what) \
	expect_err_((r), (e), (want), (what), __FILE__, __LINE__)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int ms_left(double deadline)
{
	double left = (deadline - now_s()) * 1000.0;

	return left <= 0 ? 0 : (int)left + 1;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* poll(2) on one descriptor: its revents, 0 on timeout, -1 on error. */
static int poll_one(int fd, short events, int timeout_ms)
{
	double deadline = now_s() + timeout_ms / 1000.0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int n = poll(&p, 1, ms_left(deadline));

		if (n > 0)
			return p.revents;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* A SOL_SOCKET integer option, or INT_MIN (with a diagnostic) on error. */
static int sockopt_int(int fd, int name)
{
	int v = INT_MIN;
	socklen_t len = sizeof(v);

	if (rudp_getsockopt(fd, SOL_SOCKET, name, &v, &len) < 0) {
		diag("rudp_getsockopt(%d, SOL_SOCKET, %d): %s", fd, name,
		     errname(errno));
		return INT_MIN;
	}
	if (len != sizeof(v)) {
		diag("rudp_getsockopt(%d, %d) set optlen %u", fd, name,
		     (unsigned)len);
		return INT_MIN;
	}
	return v;
}

/* Whether fd is still an open descriptor of this process. */
static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

/*
 * rudp_close must release the descriptor whatever state the connection is
 * in; when it does not, the test closes it so later fd numbers stay
 * predictable, and counts the failure.
 */
static void close_checked(int fd, const char *what)
{
	errno = 0;
	int r = rudp_close(fd);
	int e = errno;

	if (r != 0) {
		failures++;
		diag("FAIL: rudp_close(%s) returned %d/%s; the descriptor is "
		     "%s", what, r, errname(e),
		     fd_open(fd) ? "still open (leaked)" : "closed");
		if (fd_open(fd))
			close(fd);
	} else if (fd_open(fd)) {
		failures++;
		diag("FAIL: rudp_close(%s) returned 0 but left it open", what);
		close(fd);
	}
}

/*
 * Closes a socket whose peer may already have reset it, where the result
 * of rudp_close is not what the case is about (case 9 checks it): if the
 * library refuses, close(2) releases the descriptor instead.  Returns
 * whether rudp_close worked, for the caller to tally.
 */
static bool release(int fd)
{
	if (rudp_close(fd) == 0)
		return true;
	if (fd_open(fd))
		close(fd);
	return false;
}

/*
 * True when fd reports the end of the connection: hung up, or readable
 * with nothing but EOF to read.
 */
static bool at_eof(int fd, int revents)
{
	char c;

	if (revents & POLLHUP)
		return true;
	if (!(revents & (POLLIN | POLLRDHUP)))
		return false;
	return recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) == 0;
}

/* Waits up to timeout_ms for fd to report EOF/HUP; the seconds it took or -1. */
static double wait_eof(int fd, int timeout_ms)
{
	double t0 = now_s(), deadline = t0 + timeout_ms / 1000.0;

	for (;;) {
		int r = poll_one(fd, POLLIN | POLLRDHUP, ms_left(deadline));

		if (r > 0 && at_eof(fd, r))
			return now_s() - t0;
		if (r <= 0 || now_s() >= deadline)
			return -1;
		/* Readable but not EOF is unexpected here: say so, go on. */
		diag("fd %d readable (revents %#x) without EOF", fd, r);
		sleep_ms(10);
	}
}

/* Reports how long a wait_eof took, or that it timed out. */
static void diag_wait(const char *what, double dt)
{
	if (dt < 0)
		diag("%s: not within the time allowed", what);
	else
		diag("%s after %.6f s", what, dt);
}

/* Addresses. */

static socklen_t sa_len(int domain)
{
	return domain == AF_INET6 ? sizeof(struct sockaddr_in6)
				  : sizeof(struct sockaddr_in);
}

/* The loopback address of `domain`, port 0. */
static socklen_t loopback(int domain, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (domain == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	return sa_len(domain);
}

static unsigned sa_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/* Same family, address and port (scope and flow label are not compared). */
static bool sa_eq(const struct sockaddr_storage *a,
		  const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a,
					 *y = (const void *)b;
		return x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a,
					  *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
	}
	return false;
}

/* Same address ignoring the port: "the loopback address, some port". */
static bool sa_same_host(const struct sockaddr_storage *a,
			 const struct sockaddr_storage *b)
{
	struct sockaddr_storage x = *a, y = *b;

	if (x.ss_family == AF_INET6) {
		((struct sockaddr_in6 *)&x)->sin6_port = 0;
		((struct sockaddr_in6 *)&y)->sin6_port = 0;
	} else {
		((struct sockaddr_in *)&x)->sin_port = 0;
		((struct sockaddr_in *)&y)->sin_port = 0;
	}
	return sa_eq(&x, &y);
}

static const char *sa_str(const struct sockaddr_storage *ss, char *buf,
			  size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	const void *a = ss->ss_family == AF_INET6
				? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
				: (const void *)&((const struct sockaddr_in *)ss)->sin_addr;

	inet_ntop(ss->ss_family, a, host, sizeof(host));
	snprintf(buf, len, ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
		 host, sa_port(ss));
	return buf;
}

/*
 * A UDP port with nothing bound to it: the kernel hands out a free one to a
 * plain socket, which is then closed.  Inside the test's private namespace
 * nothing else can take it in between.
 */
static bool free_udp_port(int domain, struct sockaddr_storage *ss)
{
	socklen_t len = loopback(domain, ss);
	int u = socket(domain, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool ok = u >= 0 && bind(u, SA(ss), len) == 0 &&
		  getsockname(u, SA(ss), &len) == 0;

	if (u >= 0)
		close(u);
	return CHECK(ok) && CHECK(sa_port(ss) != 0);
}

/* A plain UDP socket bound to an ephemeral loopback port, or -1. */
static int plain_udp(int domain, struct sockaddr_storage *ss)
{
	socklen_t len = loopback(domain, ss);
	int u = socket(domain, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (!CHECK(u >= 0))
		return -1;
	if (!CHECK(bind(u, SA(ss), len) == 0) ||
	    !CHECK(getsockname(u, SA(ss), &len) == 0)) {
		close(u);
		return -1;
	}
	return u;
}

/* An rudp socket bound to an ephemeral loopback port (its address in *ss). */
static int rudp_bound(int domain, struct sockaddr_storage *ss)
{
	socklen_t len = loopback(domain, ss);
	int fd = rudp_socket(domain, SOCK_STREAM, 0);

	if (!CHECK(fd >= 0))
		return -1;
	if (!CHECK(rudp_bind(fd, SA(ss), len) == 0) ||
	    !CHECK(rudp_getsockname(fd, SA(ss), &len) == 0) ||
	    !CHECK(len == sa_len(domain)) || !CHECK(sa_port(ss) != 0)) {
		rudp_close(fd);
		return -1;
	}
	return fd;
}

/* A listener on an ephemeral loopback port. */
static int rudp_listener(int domain, int backlog, struct sockaddr_storage *ss)
{
	int fd = rudp_bound(domain, ss);

	if (fd >= 0 && !CHECK(rudp_listen(fd, backlog) == 0)) {
		rudp_close(fd);
		return -1;
	}
	return fd;
}

/* Control channels between the processes of one case. */

static bool ch_send(int ch, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		/* MSG_NOSIGNAL: a peer that died is a failure, not SIGPIPE. */
		ssize_t n = send(ch, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			failures++;
			diag("FAIL: control channel send: %s", errname(errno));
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static bool ch_recv(int ch, void *buf, size_t len, int timeout_ms)
{
	double deadline = now_s() + timeout_ms / 1000.0;
	char *p = buf;

	while (len) {
		int r = poll_one(ch, POLLIN, ms_left(deadline));
		if (r <= 0) {
			failures++;
			diag("FAIL: control channel: nothing from the other "
			     "process within %d ms", timeout_ms);
			return false;
		}
		ssize_t n = recv(ch, p, len, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			failures++;
			diag("FAIL: control channel: the other process is "
			     "gone");
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static bool ch_put(int ch, char tok)
{
	return ch_send(ch, &tok, 1);
}

/* Waits for token `want`; anything else is a protocol error of the test. */
static bool ch_get(int ch, char want, int timeout_ms)
{
	char tok = 0;

	if (!ch_recv(ch, &tok, 1, timeout_ms))
		return false;
	if (tok != want) {
		failures++;
		diag("FAIL: control channel: got '%c', expected '%c'", tok,
		     want);
		return false;
	}
	return true;
}

/* Peer processes. */

typedef int (*peer_fn)(int ch, const void *arg);

struct peer {
	pid_t pid;
	int ch;
};

/*
 * Forks a peer running fn.  Call before the caller's first rudp call, so
 * that the child starts with no library state (and no loop thread to lose).
 */
static bool spawn(struct peer *p, const char *name, peer_fn fn,
		  const void *arg)
{
	int sv[2];

	p->pid = -1;
	p->ch = -1;
	if (!CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ==
		   0))
		return false;
	fflush(NULL);
	p->pid = fork();
	if (!CHECK(p->pid >= 0)) {
		close(sv[0]);
		close(sv[1]);
		return false;
	}
	if (p->pid == 0) {
		close(sv[0]);
		/* Dies with the case process, and never outlives the run. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(PEER_ALARM_S);
		role = name;
		failures = 0;
		int r = fn(sv[1], arg);
		close(sv[1]);
		exit(r ? r : failures ? 1 : 0);
	}
	close(sv[1]);
	p->ch = sv[0];
	return true;
}

/* Waits up to timeout_ms for pid; its wait status, or -1 after killing it. */
static int wait_child(pid_t pid, int timeout_ms)
{
	double deadline = now_s() + timeout_ms / 1000.0;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return st;
		if (r < 0 && errno != EINTR)
			return -1;
		if (now_s() >= deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			return -1;
		}
		sleep_ms(5);
	}
}

/*
 * Closes the channel (which tells a peer still waiting on it to give up)
 * and collects the peer; its failure is the case's failure.
 */
static void reap(struct peer *p, int timeout_ms)
{
	int st;

	if (p->pid <= 0)
		return;
	close(p->ch);
	st = wait_child(p->pid, timeout_ms);
	if (st == -1) {
		failures++;
		diag("FAIL: peer %d did not exit within %d ms; killed",
		     (int)p->pid, timeout_ms);
	} else if (WIFSIGNALED(st)) {
		failures++;
		diag("FAIL: peer %d killed by signal %d (%s)", (int)p->pid,
		     WTERMSIG(st), strsignal(WTERMSIG(st)));
	} else if (WEXITSTATUS(st) != 0) {
		failures++;
		diag("FAIL: peer %d exited with status %d", (int)p->pid,
		     WEXITSTATUS(st));
	}
	p->pid = -1;
}

/*
 * Case 1 and 2: a blocking handshake between two processes.  The case
 * process listens; the peer connects and reports its local address, which
 * the listener compares with what accept returned.
 */

/*
 * TCP_INFO of a connection just made: its state, and a sending window
 * that tools can read (iperf3 prints snd_cwnd * snd_mss): some segments of
 * a nonzero size, and no slow-start threshold yet.
 */
static void check_tcp_info(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (!CHECK(rudp_getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0))
		return;
	CHECK(len == sizeof(ti));
	CHECK(ti.tcpi_state == TCP_ESTABLISHED);
	CHECK(ti.tcpi_snd_mss >= 536 && ti.tcpi_snd_mss <= 65535);
	CHECK(ti.tcpi_snd_cwnd >= 2 && ti.tcpi_snd_cwnd <= 100);
	CHECK(ti.tcpi_snd_ssthresh == 0x7fffffff);
}

static int handshake_connector(int ch, const void *arg)
{
	int domain = *(const int *)arg;
	struct sockaddr_storage srv, local, peer;
	socklen_t len;
	int fd;

	if (!ch_recv(ch, &srv, sizeof(srv), 5000))
		return 1;
	fd = rudp_socket(domain, SOCK_STREAM, 0);
	if (!CHECK(fd >= 0))
		return 1;
	if (!CHECK(rudp_connect(fd, SA(&srv), sa_len(domain)) == 0))
		return 1;
	len = sizeof(local);
	CHECK(rudp_getsockname(fd, SA(&local), &len) == 0);
	CHECK(len == sa_len(domain));
	CHECK(sa_same_host(&local, &srv) && sa_port(&local) != 0);
	len = sizeof(peer);
	CHECK(rudp_getpeername(fd, SA(&peer), &len) == 0);
	CHECK(len == sa_len(domain));
	CHECK(sa_eq(&peer, &srv));
	CHECK(sockopt_int(fd, SO_TYPE) == SOCK_STREAM);
	CHECK(sockopt_int(fd, SO_DOMAIN) == domain);
	CHECK(sockopt_int(fd, SO_ACCEPTCONN) == 0);
	CHECK(sockopt_int(fd, SO_ERROR) == 0);
	check_tcp_info(fd);
	/* Once connected, the descriptor is writable as for TCP. */
	CHECK(poll_one(fd, POLLOUT, 1000) == POLLOUT);
	if (!ch_send(ch, &local, sizeof(local)))
		return 1;
	/* Stay connected until the listener has looked at its side. */
	if (!ch_get(ch, 'd', 10000))
		return 1;
	/* This side closes first; case 9 covers the side closed second. */
	close_checked(fd, "connected socket");
	return 0;
}

static bool have_ipv6_loopback(void)
{
	struct sockaddr_storage ss;
	socklen_t len = loopback(AF_INET6, &ss);
	int u = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool ok = u >= 0 && bind(u, SA(&ss), len) == 0;

	if (u >= 0)
		close(u);
	return ok;
}

static int handshake_case(int domain)
{
	struct sockaddr_storage addr, lo, from, local, name;
	socklen_t len;
	struct peer p;
	char b1[64], b2[64];
	int fd, c;

	if (!spawn(&p, "connector", handshake_connector, &domain))
		return 1;
	loopback(domain, &lo);
	fd = rudp_listener(domain, 16, &addr);
	if (fd < 0)
		goto out;
	CHECK(sa_same_host(&addr, &lo));
	CHECK(sockopt_int(fd, SO_ACCEPTCONN) == 1);
	CHECK(sockopt_int(fd, SO_TYPE) == SOCK_STREAM);
	CHECK(sockopt_int(fd, SO_DOMAIN) == domain);
	len = sizeof(name);
	EXPECT_ERR(rudp_getpeername(fd, SA(&name), &len), ENOTCONN);
	if (!ch_send(p.ch, &addr, sizeof(addr)))
		goto out;

	len = sizeof(from);
	memset(&from, 0, sizeof(from));
	c = rudp_accept(fd, SA(&from), &len);
	if (!CHECK(c >= 0))
		goto out;
	CHECK(len == sa_len(domain));
	if (ch_recv(p.ch, &local, sizeof(local), 5000) &&
	    !CHECK(sa_eq(&from, &local)))
		diag("accept gave %s, the connector's name is %s",
		     sa_str(&from, b1, sizeof(b1)),
		     sa_str(&local, b2, sizeof(b2)));
	len = sizeof(name);
	CHECK(rudp_getpeername(c, SA(&name), &len) == 0);
	CHECK(len == sa_len(domain) && sa_eq(&name, &from));
	len = sizeof(name);
	CHECK(rudp_getsockname(c, SA(&name), &len) == 0);
	CHECK(len == sa_len(domain) && sa_eq(&name, &addr));
	CHECK(sockopt_int(c, SO_ACCEPTCONN) == 0);
	CHECK(sockopt_int(c, SO_TYPE) == SOCK_STREAM);
	CHECK(sockopt_int(c, SO_DOMAIN) == domain);
	CHECK(poll_one(c, POLLOUT, 1000) == POLLOUT);
	/* The listener itself is unaffected by the accept. */
	CHECK(sockopt_int(fd, SO_ACCEPTCONN) == 1);
	ch_put(p.ch, 'd');
	/*
	 * The connector closes first and exits; what c sees then, and how
	 * closing it afterwards goes, is case 9's business.
	 */
	reap(&p, 10000);
	release(c);
	close_checked(fd, "listener");
out:
	reap(&p, 10000);
	return 0;
}

static int case_handshake_v4(void)
{
	return handshake_case(AF_INET);
}

static int case_handshake_v6(void)
{
	if (!have_ipv6_loopback()) {
		diag("skipped: cannot bind a UDP socket to ::1");
		return 77;
	}
	return handshake_case(AF_INET6);
}

/*
 * Case 3: a SYN to a port where an rudp socket is bound but not listening
 * draws a reset, which must fail the connect at once with ECONNREFUSED.
 */

static int bound_only_peer(int ch, const void *arg)
{
	struct sockaddr_storage addr;
	struct rudp_stats st;
	int fd;

	(void)arg;
	fd = rudp_bound(AF_INET, &addr);
	if (fd < 0 || !ch_send(ch, &addr, sizeof(addr)))
		return 1;
	if (!ch_get(ch, 'd', 10000))
		return 1;
	CHECK(rudp_get_stats(&st, sizeof(st)) == 0);
	CHECK(st.resets_out >= 1);
	CHECK(st.no_conn >= 1);
	CHECK(st.malformed == 0);
	close_checked(fd, "bound socket");
	return 0;
}

static int case_refused_rst(void)
{
	struct sockaddr_storage addr;
	struct rudp_stats st;
	struct peer p;
	double t0, dt;
	int fd, r, e;

	if (!spawn(&p, "bound-only", bound_only_peer, NULL))
		return 1;
	if (!ch_recv(p.ch, &addr, sizeof(addr), 5000))
		goto out;
	fd = rudp_socket(AF_INET, SOCK_STREAM, 0);
	if (!CHECK(fd >= 0))
		goto out;
	t0 = now_s();
	errno = 0;
	r = rudp_connect(fd, SA(&addr), sa_len(AF_INET));
	e = errno;
	dt = now_s() - t0;
	diag("timing: connect refused by RST after %.6f s", dt);
	EXPECT_RES(r, e, ECONNREFUSED, "blocking connect to a bound port");
	CHECK(dt < 1.0);
	CHECK(rudp_get_stats(&st, sizeof(st)) == 0);
	CHECK(st.resets_in == 1);
	CHECK(st.retransmits == 0);
	close_checked(fd, "refused socket");
	ch_put(p.ch, 'd');
out:
	reap(&p, 10000);
	return 0;
}

/*
 * Case 4: nothing at all on the port, so the kernel answers the SYN with
 * ICMP port unreachable, which must fail the connect at once.
 */
static int case_refused_icmp(void)
{
	struct sockaddr_storage addr;
	double t0, dt;
	int fd, r, e;

	if (!free_udp_port(AF_INET, &addr))
		return 1;
	fd = rudp_socket(AF_INET, SOCK_STREAM, 0);
	if (!CHECK(fd >= 0))
		return 1;
	t0 = now_s();
	errno = 0;
	r = rudp_connect(fd, SA(&addr), sa_len(AF_INET));
	e = errno;
	dt = now_s() - t0;
	diag("timing: connect refused by ICMP after %.6f s", dt);
	EXPECT_RES(r, e, ECONNREFUSED, "blocking connect to a free port");
	CHECK(dt < 1.0);
	close_checked(fd, "refused socket");
	return 0;
}

/*
 * Case 5: a plain UDP socket swallows every SYN.  With one SYN retry and a
 * 200 ms initial RTO the connect must time out after 0.2 + 0.4 s, having
 * sent exactly the SYN and one retransmission of it.
 */

/* Whether buf is an rudp v1 bare SYN (docs/PROTOCOL.md, core/wire.c). */
static bool is_syn(const unsigned char *buf, ssize_t n)
{
	return n == 36 && buf[0] == 0x52 && buf[1] == 0x55 && buf[2] == 1 &&
	       buf[3] == 0x01 && !buf[8] && !buf[9] && !buf[10] && !buf[11];
}

static int ignoring_peer(int ch, const void *arg)
{
	struct sockaddr_storage addr;
	unsigned char buf[2048], first[36];
	unsigned counts[3] = { 0, 0, 0 }; /* SYNs, others, SYNs that differ */
	double drain_until = 0;
	bool done = false;
	int u;

	(void)arg;
	u = plain_udp(AF_INET, &addr);
	if (u < 0 || !ch_send(ch, &addr, sizeof(addr)))
		return 1;
	for (;;) {
		struct pollfd pf[2] = { { .fd = u, .events = POLLIN },
					{ .fd = ch, .events = POLLIN } };
		int timeout = done ? ms_left(drain_until) : 10000;
		if (done && timeout == 0)
			break;
		int n = poll(pf, done ? 1 : 2, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (done)
				break;
			failures++;
			diag("FAIL: no word from the connector in 10 s");
			return 1;
		}
		if (pf[0].revents & POLLIN) {
			ssize_t len = recv(u, buf, sizeof(buf), MSG_DONTWAIT);
			if (len < 0)
				continue;
			if (!is_syn(buf, len)) {
				counts[1]++;
				continue;
			}
			/* A retransmission repeats the connection id and ISN. */
			if (counts[0] == 0)
				memcpy(first, buf, sizeof(first));
			else if (memcmp(first + 4, buf + 4, 4) != 0 ||
				 memcmp(first + 12, buf + 12, 4) != 0)
				counts[2]++;
			counts[0]++;
		}
		if (!done && (pf[1].revents & (POLLIN | POLLHUP))) {
			char tok;
			if (recv(ch, &tok, 1, 0) != 1)
				return 1;
			/* Half a second more catches a SYN sent too many. */
			done = true;
			drain_until = now_s() + 0.5;
		}
	}
	close(u);
	return ch_send(ch, counts, sizeof(counts)) ? 0 : 1;
}

static int case_timeout(void)
{
	struct sockaddr_storage addr;
	struct rudp_stats st;
	unsigned counts[3];
	struct peer p;
	double t0, dt;
	int fd, r, e;

	/* The library reads its configuration when it starts: set it first. */
	setenv("RUDP_SYN_RETRIES", "1", 1);
	setenv("RUDP_RTO_INITIAL_MS", "200", 1);
	if (!spawn(&p, "ignorer", ignoring_peer, NULL))
		return 1;
	if (!ch_recv(p.ch, &addr, sizeof(addr), 5000))
		goto out;
	fd = rudp_socket(AF_INET, SOCK_STREAM, 0);
	if (!CHECK(fd >= 0))
		goto out;
	t0 = now_s();
	errno = 0;
	r = rudp_connect(fd, SA(&addr), sa_len(AF_INET));
	e = errno;
	dt = now_s() - t0;
	diag("timing: connect timed out after %.6f s", dt);
	EXPECT_RES(r, e, ETIMEDOUT, "blocking connect to a silent port");
	CHECK(dt >= 0.5 && dt <= 3.0);
	CHECK(rudp_get_stats(&st, sizeof(st)) == 0);
	CHECK(st.retransmits == 1);
	close_checked(fd, "timed-out socket");
	if (ch_put(p.ch, 'd') &&
	    ch_recv(p.ch, counts, sizeof(counts), 5000)) {
		diag("the silent port received %u SYNs and %u other datagrams",
		     counts[0], counts[1]);
		CHECK(counts[0] == 2);
		CHECK(counts[1] == 0);
		CHECK(counts[2] == 0);
	}
out:
	reap(&p, 10000);
	return 0;
}

/*
 * Case 6: non-blocking connect, successful, pending, and refused both by
 * reset and by ICMP.  The peer holds a listener and a bound, non-listening
 * socket.
 */

static int nb_server_peer(int ch, const void *arg)
{
	struct sockaddr_storage addrs[2];
	struct pollfd pf[2];
	int l, b, c = -1;

	(void)arg;
	l = rudp_listener(AF_INET, 4, &addrs[0]);
	b = rudp_bound(AF_INET, &addrs[1]);
	if (l < 0 || b < 0 || !ch_send(ch, addrs, sizeof(addrs)))
		return 1;
	/* Accept the one connection, unless the case process gives up. */
	pf[0] = (struct pollfd){ .fd = l, .events = POLLIN };
	pf[1] = (struct pollfd){ .fd = ch, .events = POLLIN };
	if (poll(pf, 2, 10000) > 0 && (pf[0].revents & POLLIN))
		c = rudp_accept(l, NULL, NULL);
	CHECK(c >= 0);
	ch_get(ch, 'd', 10000);
	/* The connector has closed (and reset) c by now; see case 9. */
	if (c >= 0)
		release(c);
	close_checked(b, "bound socket");
	close_checked(l, "listener");
	return 0;
}

/* A non-blocking connect that must be refused: POLLOUT, then SO_ERROR. */
static void nb_refused(const struct sockaddr_storage *addr, const char *how)
{
	double t0, dt;
	int fd, rev;

	fd = rudp_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (!CHECK(fd >= 0))
		return;
	t0 = now_s();
	EXPECT_ERR(rudp_connect(fd, SA(addr), sa_len(AF_INET)), EINPROGRESS);
	rev = poll_one(fd, POLLOUT, 3000);
	dt = now_s() - t0;
	diag("timing: non-blocking connect refused by %s: POLLOUT after "
	     "%.6f s (revents %#x)", how, dt, (unsigned)rev);
	CHECK(rev > 0 && (rev & POLLOUT));
	CHECK(sockopt_int(fd, SO_ERROR) == ECONNREFUSED);
	/* SO_ERROR reads and clears. */
	CHECK(sockopt_int(fd, SO_ERROR) == 0);
	close_checked(fd, "refused non-blocking socket");
}

static int case_nonblocking_connect(void)
{
	struct sockaddr_storage addrs[2], silent, unbound, name;
	socklen_t len;
	struct peer p;
	int q = -1, fd, rev, r, e;

	if (!spawn(&p, "server", nb_server_peer, NULL))
		return 1;
	if (!ch_recv(p.ch, addrs, sizeof(addrs), 5000))
		goto out;

	/* Pending: the SYN goes to a port that never answers. */
	q = plain_udp(AF_INET, &silent);
	if (q < 0)
		goto out;
	fd = rudp_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (!CHECK(fd >= 0))
		goto out;
	EXPECT_ERR(rudp_connect(fd, SA(&silent), sa_len(AF_INET)),
		   EINPROGRESS);
	rev = poll_one(fd, POLLOUT, 100);
	if (!CHECK(rev == 0))
		diag("a handshake in progress polled as revents %#x",
		     (unsigned)rev);
	EXPECT_ERR(rudp_connect(fd, SA(&silent), sa_len(AF_INET)), EALREADY);
	CHECK(sockopt_int(fd, SO_ERROR) == 0);
	len = sizeof(name);
	EXPECT_ERR(rudp_getpeername(fd, SA(&name), &len), ENOTCONN);
	close_checked(fd, "connecting socket");

	/* Success. */
	fd = rudp_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (!CHECK(fd >= 0))
		goto out;
	EXPECT_ERR(rudp_connect(fd, SA(&addrs[0]), sa_len(AF_INET)),
		   EINPROGRESS);
	rev = poll_one(fd, POLLOUT, 3000);
	if (!CHECK(rev == POLLOUT))
		diag("an established connection polled as revents %#x",
		     (unsigned)rev);
	CHECK(sockopt_int(fd, SO_ERROR) == 0);
	len = sizeof(name);
	CHECK(rudp_getpeername(fd, SA(&name), &len) == 0);
	CHECK(sa_eq(&name, &addrs[0]));
	/*
	 * The first connect after a non-blocking success may report it (0,
	 * as Linux TCP does) or EISCONN; either way the next one is EISCONN.
	 */
	errno = 0;
	r = rudp_connect(fd, SA(&addrs[0]), sa_len(AF_INET));
	e = errno;
	if (r == 0) {
		diag("second connect after a non-blocking success returned 0 "
		     "(as Linux TCP); a third returns EISCONN");
		EXPECT_ERR(rudp_connect(fd, SA(&addrs[0]), sa_len(AF_INET)),
			   EISCONN);
	} else {
		diag("second connect after a non-blocking success: %s",
		     errname(e));
		EXPECT_RES(r, e, EISCONN, "second connect");
	}
	close_checked(fd, "connected socket");

	/* Refused by the bound peer's reset, and by ICMP. */
	nb_refused(&addrs[1], "RST");
	if (free_udp_port(AF_INET, &unbound))
		nb_refused(&unbound, "ICMP");
	ch_put(p.ch, 'd');
out:
	if (q >= 0)
		close(q);
	reap(&p, 10000);
	return 0;
}

/*
 * Case 7: a non-blocking listener.  accept says EAGAIN while the queue is
 * empty, the descriptor turns readable when a connection arrives, and stops
 * being readable once it has been accepted.
 */

static int late_connector(int ch, const void *arg)
{
	struct sockaddr_storage srv;
	int fd;

	(void)arg;
	if (!ch_recv(ch, &srv, sizeof(srv), 5000) || !ch_get(ch, 'g', 10000))
		return 1;
	fd = rudp_socket(AF_INET, SOCK_STREAM, 0);
	if (!CHECK(fd >= 0))
		return 1;
	if (!CHECK(rudp_connect(fd, SA(&srv), sa_len(AF_INET)) == 0) ||
	    !ch_put(ch, 'c'))
		return 1;
	/* The listener has closed (and reset) this connection by now. */
	ch_get(ch, 'd', 10000);
	release(fd);
	return 0;
}

static int case_nonblocking_accept(void)
{
	struct sockaddr_storage addr, from;
	socklen_t len;
	struct peer p;
	double t0;
	int fd, c, fl, rev;

	if (!spawn(&p, "connector", late_connector, NULL))
		return 1;
	fd = rudp_listener(AF_INET, 8, &addr);
	if (fd < 0)
		goto out;
	fl = fcntl(fd, F_GETFL);
	CHECK(fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0);
	EXPECT_ERR(rudp_accept(fd, NULL, NULL), EAGAIN);
	CHECK(poll_one(fd, POLLIN, 100) == 0);
	if (!ch_send(p.ch, &addr, sizeof(addr)) || !ch_put(p.ch, 'g'))
		goto out;
	t0 = now_s();
	rev = poll_one(fd, POLLIN, 3000);
	diag("listener readable %.6f s after the go", now_s() - t0);
	CHECK(rev == POLLIN);
	len = sizeof(from);
	c = rudp_accept(fd, SA(&from), &len);
	CHECK(c >= 0);
	CHECK(len == sa_len(AF_INET));
	rev = poll_one(fd, POLLIN, 0);
	if (!CHECK(rev == 0))
		diag("listener still polls as revents %#x after the accept",
		     (unsigned)rev);
	EXPECT_ERR(rudp_accept(fd, NULL, NULL), EAGAIN);
	/*
	 * A reset that overtakes the connector's wake-up fails its connect
	 * with ECONNRESET (as on Linux), so close only once it has returned.
	 */
	ch_get(p.ch, 'c', 5000);
	if (c >= 0)
		close_checked(c, "accepted socket");
	close_checked(fd, "listener");
	ch_put(p.ch, 'd');
out:
	reap(&p, 10000);
	return 0;
}

/*
 * Non-blocking connects from each of fds[0..n) to srv, all in flight at
 * once, waited for up to 10 s: returns how many succeeded (writable with
 * SO_ERROR 0), says why the others did not, and leaves in *pending how
 * many never finished.
 */
static int connect_all(const int *fds, int n,
		       const struct sockaddr_storage *srv, int *pending)
{
	struct pollfd *pf = calloc((size_t)n, sizeof(*pf));
	double t0 = now_s(), deadline = t0 + 10.0;
	int ok = 0;

	*pending = 0;
	if (!CHECK(pf))
		return 0;
	for (int i = 0; i < n; i++) {
		EXPECT_ERR(rudp_connect(fds[i], SA(srv), sa_len(AF_INET)),
			   EINPROGRESS);
		pf[i] = (struct pollfd){ .fd = fds[i], .events = POLLOUT };
		(*pending)++;
	}
	while (*pending && now_s() < deadline) {
		int r = poll(pf, (nfds_t)n, ms_left(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (int i = 0; i < n; i++) {
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			int err = sockopt_int(fds[i], SO_ERROR);
			if (err == 0 && pf[i].revents == POLLOUT)
				ok++;
			else
				diag("connection %d: revents %#x, SO_ERROR %d",
				     i, (unsigned)pf[i].revents, err);
			/* A negative fd makes poll skip the entry. */
			pf[i].fd = -1;
			(*pending)--;
		}
	}
	diag("%d of %d connections established in %.3f s", ok, n,
	     now_s() - t0);
	free(pf);
	return ok;
}

/*
 * Case 8: NCONC non-blocking connects from one process, all in flight at
 * once, to a listener with backlog 128 in another.
 */

static int many_connector(int ch, const void *arg)
{
	struct sockaddr_storage srv;
	int fds[NCONC], ok, pending;

	(void)arg;
	if (!ch_recv(ch, &srv, sizeof(srv), 5000))
		return 1;
	for (int i = 0; i < NCONC; i++) {
		fds[i] = rudp_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (!CHECK(fds[i] >= 0))
			return 1;
	}
	ok = connect_all(fds, NCONC, &srv, &pending);
	CHECK(ok == NCONC);
	CHECK(pending == 0);
	CHECK(ch_send(ch, &ok, sizeof(ok)));
	/*
	 * Keep them open until the listener has accepted every one; it has
	 * closed (and reset) them all by the time it says so.
	 */
	ch_get(ch, 'd', 15000);
	int refused = 0;
	for (int i = 0; i < NCONC; i++)
		refused += !release(fds[i]);
	if (refused)
		diag("note: rudp_close failed on %d of %d connections reset "
		     "by the peer (case 9 checks this)", refused, NCONC);
	return 0;
}

static int case_concurrent(void)
{
	struct sockaddr_storage addr;
	struct rudp_stats st;
	int fds[NCONC], n = 0, ok = 0, fd;
	struct peer p;
	double deadline;

	if (!spawn(&p, "connector", many_connector, NULL))
		return 1;
	fd = rudp_listener(AF_INET, 128, &addr);
	if (fd < 0 || !ch_send(p.ch, &addr, sizeof(addr)))
		goto out;
	deadline = now_s() + 10.0;
	while (n < NCONC) {
		int rev = poll_one(fd, POLLIN, ms_left(deadline));
		if (rev <= 0)
			break;
		int c = rudp_accept(fd, NULL, NULL);
		if (!CHECK(c >= 0))
			break;
		fds[n++] = c;
	}
	diag("accepted %d of %d", n, NCONC);
	CHECK(n == NCONC);
	CHECK(rudp_get_stats(&st, sizeof(st)) == 0);
	diag("listener stats: in %llu, out %llu, malformed %llu, no_conn %llu,"
	     " retransmits %llu, backlog_drops %llu", st.dgrams_in,
	     st.dgrams_out, st.malformed, st.no_conn, st.retransmits,
	     st.backlog_drops);
	CHECK(st.malformed == 0);
	CHECK(st.backlog_drops == 0);
	if (ch_recv(p.ch, &ok, sizeof(ok), 10000))
		CHECK(ok == NCONC);
	for (int i = 0; i < n; i++)
		close_checked(fds[i], "an accepted socket");
	close_checked(fd, "listener");
	ch_put(p.ch, 'd');
out:
	reap(&p, 15000);
	return 0;
}

/*
 * Case 9: closing.  This version aborts an open connection with a reset,
 * so the peer must see its descriptor hang up within 2 s, whether the
 * connection was closed with rudp_close or with plain close(2), and from
 * either side, and also when the closing process exits right after
 * rudp_close.  A descriptor number freed by close(2) must be reusable at
 * once by a new rudp socket.  The descriptor of a connection that was reset
 * must still close cleanly with rudp_close.
 */

static int closing_connector(int ch, const void *arg)
{
	struct sockaddr_storage srv, name;
	socklen_t len;
	double dt;
	int fd, again;

	(void)arg;
	if (!ch_recv(ch, &srv, sizeof(srv), 5000))
		return 1;

	/*
	 * Plain close(2) first, while this process has freed no descriptor
	 * yet: the lowest free number is then exactly the one closed, so
	 * the next rudp_socket must reuse it.
	 */
	fd = rudp_socket(AF_INET, SOCK_STREAM, 0);
	if (!CHECK(fd >= 0) ||
	    !CHECK(rudp_connect(fd, SA(&srv), sa_len(AF_INET)) == 0))
		return 1;
	if (!ch_put(ch, 'c') || !ch_get(ch, 'a', 5000))
		return 1;
	CHECK(close(fd) == 0);
	again = rudp_socket(AF_INET, SOCK_STREAM, 0);
	if (!CHECK(again == fd))
		diag("rudp_socket returned %d after close(%d)", again, fd);
	if (!CHECK(again >= 0))
		return 1;
	CHECK(sockopt_int(again, SO_ERROR) == 0);
	CHECK(sockopt_int(again, SO_ACCEPTCONN) == 0);
	len = sizeof(name);
	EXPECT_ERR(rudp_getpeername(again, SA(&name), &len), ENOTCONN);
	CHECK(rudp_connect(again, SA(&srv), sa_len(AF_INET)) == 0);
	len = sizeof(name);
	CHECK(rudp_getsockname(again, SA(&name), &len) == 0);
	if (!ch_send(ch, &name, sizeof(name)) || !ch_get(ch, 'a', 5000))
		return 1;
	close_checked(again, "the socket that reused the number");

	/* rudp_close here; the acceptor must see its side hang up. */
	fd = rudp_socket(AF_INET, SOCK_STREAM, 0);
	if (!CHECK(fd >= 0) ||
	    !CHECK(rudp_connect(fd, SA(&srv), sa_len(AF_INET)) == 0))
		return 1;
	if (!ch_put(ch, 'c') || !ch_get(ch, 'a', 5000))
		return 1;
	close_checked(fd, "connected socket");

	/* The acceptor's rudp_close; this side must see the hang-up. */
	fd = rudp_socket(AF_INET, SOCK_STREAM, 0);
	if (!CHECK(fd >= 0) ||
	    !CHECK(rudp_connect(fd, SA(&srv), sa_len(AF_INET)) == 0))
		return 1;
	if (!ch_put(ch, 'c') || !ch_get(ch, 'x', 5000))
		return 1;
	dt = wait_eof(fd, 2000);
	diag_wait("connector saw the acceptor's close", dt);
	CHECK(dt >= 0);
	close_checked(fd, "socket reset by the peer");

	/*
	 * rudp_close and then exit at once, as short programs do: the reset
	 * must still reach the acceptor, or its side stays open forever.
	 */
	fd = rudp_socket(AF_INET, SOCK_STREAM, 0);
	if (!CHECK(fd >= 0) ||
	    !CHECK(rudp_connect(fd, SA(&srv), sa_len(AF_INET)) == 0))
		return 1;
	if (!ch_put(ch, 'c') || !ch_get(ch, 'a', 5000))
		return 1;
	close_checked(fd, "connected socket, just before exit");
	return 0;
}

static int case_closing(void)
{
	struct sockaddr_storage addr, from, name;
	socklen_t len;
	struct peer p;
	double dt;
	int fd, c = -1, d = -1;

	if (!spawn(&p, "connector", closing_connector, NULL))
		return 1;
	fd = rudp_listener(AF_INET, 8, &addr);
	if (fd < 0 || !ch_send(p.ch, &addr, sizeof(addr)))
		goto out;

	/* The connector closes with close(2), then reuses the number. */
	if (!ch_get(p.ch, 'c', 5000))
		goto out;
	c = rudp_accept(fd, NULL, NULL);
	if (!CHECK(c >= 0) || !ch_put(p.ch, 'a'))
		goto out;
	/*
	 * Plain close(2) of an rudp descriptor is not the API's close: the
	 * library keeps its own reference to the program's end (to report
	 * resets as ECONNRESET), so the connection lives until rudp_close or
	 * the process's exit.  What must hold is that the number is safe to
	 * reuse, which the connector checks next.
	 */
	if (!ch_recv(p.ch, &name, sizeof(name), 5000))
		goto out;
	len = sizeof(from);
	d = rudp_accept(fd, SA(&from), &len);
	if (CHECK(d >= 0))
		CHECK(sa_eq(&from, &name));
	close_checked(c, "socket reset after the peer's close(2)");
	c = -1;
	if (!ch_put(p.ch, 'a'))
		goto out;
	dt = wait_eof(d, 2000);
	CHECK(dt >= 0);
	if (d >= 0)
		close_checked(d, "socket reset after the peer's rudp_close");
	d = -1;

	/* The connector closes with rudp_close. */
	if (!ch_get(p.ch, 'c', 5000))
		goto out;
	c = rudp_accept(fd, NULL, NULL);
	if (!CHECK(c >= 0) || !ch_put(p.ch, 'a'))
		goto out;
	dt = wait_eof(c, 2000);
	diag_wait("acceptor saw rudp_close of the peer", dt);
	CHECK(dt >= 0);
	close_checked(c, "socket reset after the peer's rudp_close");
	c = -1;

	/* This side closes with rudp_close. */
	if (!ch_get(p.ch, 'c', 5000))
		goto out;
	c = rudp_accept(fd, NULL, NULL);
	if (!CHECK(c >= 0))
		goto out;
	close_checked(c, "accepted socket");
	c = -1;
	ch_put(p.ch, 'x');

	/* The connector's rudp_close is the last thing before its exit. */
	if (!ch_get(p.ch, 'c', 5000))
		goto out;
	c = rudp_accept(fd, NULL, NULL);
	if (!CHECK(c >= 0) || !ch_put(p.ch, 'a'))
		goto out;
	dt = wait_eof(c, 2000);
	diag_wait("acceptor saw rudp_close and exit of the peer", dt);
	CHECK(dt >= 0);
	release(c);
	c = -1;
	close_checked(fd, "listener");
out:
	reap(&p, 10000);
	return 0;
}

/* Case 10: argument and state errors, all in one process. */
static int case_bad_arguments(void)
{
	struct sockaddr_storage addr, name;
	struct sockaddr_in6 six = { .sin6_family = AF_INET6,
				    .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	socklen_t len;
	int s, t, l, c, a, v, pfd[2];
	char small;

	EXPECT_ERR(rudp_socket(AF_UNIX, SOCK_STREAM, 0), EAFNOSUPPORT);
	EXPECT_ERR(rudp_socket(AF_INET, SOCK_DGRAM, 0), EINVAL);
	EXPECT_ERR(rudp_socket(AF_INET, SOCK_STREAM | 0x100, 0), EINVAL);
	EXPECT_ERR(rudp_socket(AF_INET, SOCK_STREAM, IPPROTO_UDP),
		   EPROTONOSUPPORT);

	s = rudp_socket(AF_INET, SOCK_STREAM, 0);
	if (!CHECK(s >= 0))
		return 1;
	EXPECT_ERR(rudp_bind(s, SA(&six), sizeof(six)), EAFNOSUPPORT);
	len = sizeof(name);
	EXPECT_ERR(rudp_getpeername(s, SA(&name), &len), ENOTCONN);
	len = loopback(AF_INET, &addr);
	EXPECT_ERR(rudp_bind(s, SA(&addr), 4), EINVAL);
	CHECK(rudp_bind(s, SA(&addr), len) == 0);
	EXPECT_ERR(rudp_bind(s, SA(&addr), len), EINVAL);
	len = sizeof(addr);
	CHECK(rudp_getsockname(s, SA(&addr), &len) == 0);
	CHECK(sa_port(&addr) != 0);

	/* The same UDP port, taken by another rudp socket. */
	t = rudp_socket(AF_INET, SOCK_STREAM, 0);
	if (CHECK(t >= 0)) {
		EXPECT_ERR(rudp_bind(t, SA(&addr), sa_len(AF_INET)),
			   EADDRINUSE);
		close_checked(t, "socket that failed to bind");
	}

	/*
	 * Options no socket has (an unassigned number, an unknown level),
	 * so that ENOPROTOOPT stays right as real options get supported;
	 * then a known option with no room for its value.
	 */
	len = sizeof(v);
	EXPECT_ERR(rudp_getsockopt(s, SOL_SOCKET, 0x7ffe, &v, &len),
		   ENOPROTOOPT);
	len = sizeof(v);
	EXPECT_ERR(rudp_getsockopt(s, 0x7ffe, 1, &v, &len), ENOPROTOOPT);
	len = sizeof(small);
	EXPECT_ERR(rudp_getsockopt(s, SOL_SOCKET, SO_TYPE, &small, &len),
		   EINVAL);
	close_checked(s, "bound socket");

	/*
	 * A connected socket cannot listen, a listener cannot connect, and
	 * a connected socket cannot accept.  Both ends live in this process:
	 * the loop thread serves the listener while connect blocks.
	 */
	l = rudp_listener(AF_INET, 4, &addr);
	c = rudp_socket(AF_INET, SOCK_STREAM, 0);
	if (l >= 0 && CHECK(c >= 0) &&
	    CHECK(rudp_connect(c, SA(&addr), sa_len(AF_INET)) == 0)) {
		EXPECT_ERR(rudp_listen(c, 4), EINVAL);
		EXPECT_ERR(rudp_connect(c, SA(&addr), sa_len(AF_INET)),
			   EISCONN);
		EXPECT_ERR(rudp_accept(c, NULL, NULL), EINVAL);
		EXPECT_ERR(rudp_connect(l, SA(&addr), sa_len(AF_INET)),
			   EINVAL);
		EXPECT_ERR(rudp_accept4(l, NULL, NULL, 0x4000000), EINVAL);
		a = rudp_accept(l, NULL, NULL);
		if (CHECK(a >= 0)) {
			EXPECT_ERR(rudp_listen(a, 4), EINVAL);
			close_checked(a, "accepted socket");
		}
		/* Calling listen again on a listener updates the backlog. */
		CHECK(rudp_listen(l, 8) == 0);
	}
	if (c >= 0)
		close_checked(c, "connected socket");
	if (l >= 0)
		close_checked(l, "listener");

	/* A descriptor that is not an rudp socket at all. */
	if (!CHECK(pipe2(pfd, O_CLOEXEC) == 0))
		return 1;
	len = loopback(AF_INET, &addr);
	EXPECT_ERR(rudp_bind(pfd[0], SA(&addr), len), EBADF);
	EXPECT_ERR(rudp_listen(pfd[0], 4), EBADF);
	EXPECT_ERR(rudp_connect(pfd[0], SA(&addr), len), EBADF);
	EXPECT_ERR(rudp_accept(pfd[0], NULL, NULL), EBADF);
	len = sizeof(name);
	EXPECT_ERR(rudp_getsockname(pfd[0], SA(&name), &len), EBADF);
	len = sizeof(name);
	EXPECT_ERR(rudp_getpeername(pfd[0], SA(&name), &len), EBADF);
	len = sizeof(v);
	EXPECT_ERR(rudp_getsockopt(pfd[0], SOL_SOCKET, SO_TYPE, &v, &len),
		   EBADF);
	EXPECT_ERR(rudp_close(pfd[0]), EBADF);
	/* rudp_close of a foreign descriptor must leave it alone. */
	CHECK(fd_open(pfd[0]));
	EXPECT_ERR(rudp_close(-1), EBADF);
	EXPECT_ERR(rudp_listen(100000, 4), EBADF);
	close(pfd[0]);
	close(pfd[1]);

	/*
	 * A number that was an rudp socket, closed with close(2) and now a
	 * pipe: the library must notice it is not its socket any more.
	 */
	s = rudp_socket(AF_INET, SOCK_STREAM, 0);
	if (CHECK(s >= 0)) {
		close(s);
		if (CHECK(pipe2(pfd, O_CLOEXEC) == 0)) {
			if (pfd[0] != s && pfd[1] != s)
				diag("note: the pipe did not reuse fd %d", s);
			int p = pfd[0] == s ? pfd[0] : pfd[1];
			len = sizeof(v);
			EXPECT_ERR(rudp_getsockopt(p, SOL_SOCKET, SO_TYPE, &v,
						   &len),
				   EBADF);
			EXPECT_ERR(rudp_close(p), EBADF);
			CHECK(fd_open(p));
			close(pfd[0]);
			close(pfd[1]);
		}
	}
	return 0;
}

/*
 * Cases 11 and 12: NQUEUE connections established before the program
 * accepts any, within a backlog of QBACKLOG.  Like TCP, the library must
 * hold every one until it is accepted, and each must work once it is:
 * none may be reset, however many the listener's socket pair (which
 * carries accepted connections to the program) takes at a time.  Case 11
 * runs with the pair as the library sets it up; case 12 shrinks the
 * library's end of it to a few records first, as an unprivileged process
 * could get with the usual net.core.wmem_max, so that connections must
 * wait in the library until accept() makes room.
 *
 * Each accepted connection carries one number and then the listener's
 * close: the connector must read the number and an orderly end of file.
 * Data flows one way only, and the listener's send buffers are small,
 * because each buffer that takes data is allocated (2 MiB by default) and
 * meson's MALLOC_PERTURB_ makes every allocation cost a memset.
 */

#define NQUEUE 800
#define QBACKLOG 1024

/* Raises the soft RLIMIT_NOFILE to at least `need`, within the hard one. */
static void raise_nofile(rlim_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
	CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
}

static int queue_connector(int ch, const void *arg)
{
	struct sockaddr_storage srv;
	struct pollfd *pf = calloc(NQUEUE, sizeof(*pf));
	int *fds = calloc(NQUEUE, sizeof(*fds));
	bool *seen = calloc(NQUEUE, sizeof(*seen));
	uint32_t *val = calloc(NQUEUE, sizeof(*val));
	size_t *got = calloc(NQUEUE, sizeof(*got));
	int ok, clean = 0, pending;
	double deadline;

	(void)arg;
	if (!CHECK(pf && fds && seen && val && got) ||
	    !ch_recv(ch, &srv, sizeof(srv), 5000))
		return 1;
	/* Per connection: its pair, our copy of its end, its UDP socket. */
	raise_nofile(4 * NQUEUE + 64);
	for (int i = 0; i < NQUEUE; i++) {
		fds[i] = rudp_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (!CHECK(fds[i] >= 0))
			return 1;
	}
	ok = connect_all(fds, NQUEUE, &srv, &pending);
	CHECK(ok == NQUEUE);
	if (!ch_send(ch, &ok, sizeof(ok)))
		return 1;
	/*
	 * A connection reset while it waited for accept() reports an error
	 * here instead of its number and the end of file.
	 */
	for (int i = 0; i < NQUEUE; i++)
		pf[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
	pending = NQUEUE;
	deadline = now_s() + 15.0;
	while (pending && now_s() < deadline) {
		int n = poll(pf, NQUEUE, ms_left(deadline));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (int i = 0; i < NQUEUE; i++) {
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			ssize_t r = recv(fds[i], (char *)&val[i] + got[i],
					 sizeof(val[i]) + 1 - got[i],
					 MSG_DONTWAIT);
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r > 0) {
				got[i] += (size_t)r;
				if (got[i] <= sizeof(val[i]))
					continue;
			}
			if (r == 0 && got[i] == sizeof(val[i]) &&
			    val[i] < NQUEUE && !seen[val[i]]) {
				seen[val[i]] = true;
				clean++;
			} else {
				diag("connection %d: read %zd (%s) after %zu "
				     "bytes", i, r,
				     r < 0 ? errname(errno) : "-", got[i]);
			}
			pf[i].fd = -1;
			pending--;
		}
	}
	diag("%d of %d connections carried their number and ended cleanly",
	     clean, NQUEUE);
	CHECK(clean == NQUEUE);
	ch_send(ch, &clean, sizeof(clean));
	ch_get(ch, 'd', 15000);
	for (int i = 0; i < NQUEUE; i++)
		release(fds[i]);
	free(pf);
	free(fds);
	free(seen);
	free(val);
	free(got);
	return 0;
}

/*
 * Finds the library's end of listener l's socket pair (a white-box step:
 * a marker written into l can be read only there) and shrinks its send
 * buffer to the minimum, which holds a handful of accept records.
 */
static bool shrink_listener_pair(int l)
{
	static const char marker[16] = "rudp-e2e-marker";
	char buf[sizeof(marker)];
	int dom;
	socklen_t len;

	if (!CHECK(send(l, marker, sizeof(marker), MSG_DONTWAIT) ==
		   (ssize_t)sizeof(marker)))
		return false;
	for (int fd = 3; fd < 65536; fd++) {
		len = sizeof(dom);
		if (fd == l ||
		    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) < 0 ||
		    dom != AF_UNIX ||
		    recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT) !=
			    (ssize_t)sizeof(buf) ||
		    memcmp(buf, marker, sizeof(buf)) != 0)
			continue;
		CHECK(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) ==
		      (ssize_t)sizeof(buf));
		return CHECK(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ 1 },
					sizeof(int)) == 0);
	}
	diag("FAIL: the library's end of the listener's pair not found");
	failures++;
	return false;
}

static int queue_case(bool shrink)
{
	struct sockaddr_storage addr;
	struct rudp_stats st;
	int n = 0, ok = 0, clean = 0, fd = -1, c;
	struct peer p;
	double t0, deadline;

	if (!spawn(&p, "connector", queue_connector, NULL))
		return 1;
	/* Per connection: our end, our copy of its end, the accepted one. */
	raise_nofile(3 * NQUEUE + 64);
	fd = rudp_listener(AF_INET, QBACKLOG, &addr);
	if (fd < 0 || (shrink && !shrink_listener_pair(fd)) ||
	    !CHECK(rudp_setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ 16384 },
				   sizeof(int)) == 0) ||
	    !ch_send(p.ch, &addr, sizeof(addr)))
		goto out;
	/* Nothing is accepted until every connection is established. */
	if (!ch_recv(p.ch, &ok, sizeof(ok), 20000) || !CHECK(ok == NQUEUE))
		goto out;
	t0 = now_s();
	deadline = t0 + 10.0;
	while (n < NQUEUE) {
		int rev = poll_one(fd, POLLIN, ms_left(deadline));
		if (rev <= 0)
			break;
		c = rudp_accept(fd, NULL, NULL);
		if (c < 0 && errno == EAGAIN)
			continue;
		if (!CHECK(c >= 0))
			break;
		uint32_t v = (uint32_t)n++;
		CHECK(send(c, &v, sizeof(v), MSG_NOSIGNAL) ==
		      (ssize_t)sizeof(v));
		/*
		 * Not close_checked(): the loop thread makes pairs for the
		 * connections still queued meanwhile, and may take the
		 * number this frees at once.
		 */
		CHECK(rudp_close(c) == 0);
	}
	diag("accepted %d of %d in %.3f s", n, NQUEUE, now_s() - t0);
	CHECK(n == NQUEUE);
	if (ch_recv(p.ch, &clean, sizeof(clean), 20000))
		CHECK(clean == NQUEUE);
	CHECK(rudp_get_stats(&st, sizeof(st)) == 0);
	diag("listener stats: backlog_drops %llu, resets_out %llu, "
	     "retransmits %llu", st.backlog_drops, st.resets_out,
	     st.retransmits);
	CHECK(st.backlog_drops == 0);
	CHECK(st.resets_out == 0);
	ch_put(p.ch, 'd');
out:
	reap(&p, 20000);
	if (fd >= 0)
		close_checked(fd, "listener");
	return 0;
}

static int case_queue(void)
{
	return queue_case(false);
}

static int case_queue_small_pair(void)
{
	return queue_case(true);
}

/*
 * Case 13: a client that closes first, 100 times in a row.  Each connecting
 * socket has a UDP socket of its own, and TIME_WAIT must not keep it: kernel
 * TCP's TIME_WAIT holds no descriptor, and a client making hundreds of short
 * connections a second would otherwise run out of them.
 */
#define SHORT_CONNS 100

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int short_connector(int ch, const void *arg)
{
	struct sockaddr_storage srv;
	int before, after = -1;

	(void)arg;
	if (!ch_recv(ch, &srv, sizeof(srv), 5000))
		return 1;
	before = count_fds();
	for (int i = 0; i < SHORT_CONNS; i++) {
		int fd = rudp_socket(AF_INET, SOCK_STREAM, 0);
		if (!CHECK(fd >= 0) ||
		    !CHECK(rudp_connect(fd, SA(&srv), sa_len(AF_INET)) == 0))
			return 1;
		CHECK(rudp_close(fd) == 0);
	}
	/*
	 * The listener closes its side once it has read each end of stream;
	 * then each connection here is in TIME_WAIT.  The loop thread's own
	 * descriptors (epoll, timer, wake-up) and a few in flight may remain.
	 */
	if (!ch_get(ch, 'd', 10000))
		return 1;
	double t0 = now_s();
	while (now_s() - t0 < 1.0) {
		after = count_fds();
		if (after <= before + 8)
			break;
		usleep(10000);
	}
	diag("descriptors: %d before, %d after %d connections closed first "
	     "(%.3f s)", before, after, SHORT_CONNS, now_s() - t0);
	CHECK(after >= 0 && after <= before + 8);
	return 0;
}

static int case_short_connections(void)
{
	struct sockaddr_storage addr;
	struct peer p;
	int fd, n = 0;

	if (!spawn(&p, "connector", short_connector, NULL))
		return 1;
	fd = rudp_listener(AF_INET, 64, &addr);
	if (fd < 0 || !ch_send(p.ch, &addr, sizeof(addr)))
		goto out;
	for (; n < SHORT_CONNS; n++) {
		int c = rudp_accept(fd, NULL, NULL);
		if (!CHECK(c >= 0))
			break;
		CHECK(wait_eof(c, 5000) >= 0);
		/*
		 * Not close_checked(): the next connection may already be
		 * arriving, and the loop thread can reuse the number for it.
		 */
		CHECK(rudp_close(c) == 0);
	}
	CHECK(n == SHORT_CONNS);
	ch_put(p.ch, 'd');
out:
	reap(&p, 10000);
	if (fd >= 0)
		close_checked(fd, "listener");
	return 0;
}

/*
 * Case 14: a program under a small soft RLIMIT_NOFILE (64 here, 1024 as
 * usual) accepts as many connections as it could on TCP, numbered as TCP
 * would number them: the library's own descriptors (two per accepted
 * connection) live above the program's range, in room it makes between the
 * soft and the hard limit.  A child the program forks sees its old limit.
 */
#define LOW_SOFT 64
#define LOW_CONNS 48

static int low_connector(int ch, const void *arg)
{
	struct sockaddr_storage srv;
	int fds[LOW_CONNS], n = 0;

	(void)arg;
	if (!ch_recv(ch, &srv, sizeof(srv), 5000))
		return 1;
	for (; n < LOW_CONNS; n++) {
		fds[n] = rudp_socket(AF_INET, SOCK_STREAM, 0);
		if (!CHECK(fds[n] >= 0) ||
		    !CHECK(rudp_connect(fds[n], SA(&srv), sa_len(AF_INET)) == 0))
			break;
	}
	ch_get(ch, 'd', 15000);
	for (int i = 0; i < n; i++)
		release(fds[i]);
	return 0;
}

/* How many descriptors below `below` are open. */
static int count_fds_below(int below)
{
	int n = 0;

	for (int fd = 0; fd < below; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

static int case_low_nofile(void)
{
	struct sockaddr_storage addr;
	struct rlimit rl;
	struct peer p;
	int fds[LOW_CONNS], n = 0, fd = -1, low, top = -1, st = -1;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_max < 4 * LOW_SOFT) {
		diag("hard RLIMIT_NOFILE below %d: no room to test in",
		     4 * LOW_SOFT);
		return 0;
	}
	if (!spawn(&p, "connector", low_connector, NULL))
		return 1;
	/* Before the first rudp call: the library starts under this limit. */
	rl.rlim_cur = LOW_SOFT;
	if (!CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0))
		goto out;
	fd = rudp_listener(AF_INET, 64, &addr);
	low = count_fds_below(LOW_SOFT);
	if (fd < 0 || !ch_send(p.ch, &addr, sizeof(addr)))
		goto out;
	for (; n < LOW_CONNS; n++) {
		fds[n] = rudp_accept(fd, NULL, NULL);
		if (!CHECK(fds[n] >= 0))
			break;
		if (fds[n] > top)
			top = fds[n];
	}
	diag("accepted %d of %d under a soft limit of %d, the highest as %d",
	     n, LOW_CONNS, LOW_SOFT, top);
	CHECK(n == LOW_CONNS);
	/*
	 * As on TCP, the only descriptors in the program's range are its
	 * own: one per accepted connection.  (The numbers need not be
	 * consecutive: a socket pair is made low and then moved up, and an
	 * accept can meet that moment.)
	 */
	CHECK(count_fds_below(LOW_SOFT) == low + n);
	pid_t child = fork();
	if (child == 0) {
		_exit(getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		      rl.rlim_cur == LOW_SOFT ? 0 : 1);
	}
	if (CHECK(child > 0))
		CHECK(waitpid(child, &st, 0) == child && st == 0);
	ch_put(p.ch, 'd');
	for (int i = 0; i < n; i++)
		release(fds[i]);
out:
	reap(&p, 15000);
	if (fd >= 0)
		close_checked(fd, "listener");
	return 0;
}

struct tcase {
	const char *name;
	int (*fn)(void);
	unsigned timeout_s;
};

static const struct tcase cases[] = {
	{ "blocking handshake between two processes on 127.0.0.1",
	  case_handshake_v4, 30 },
	{ "blocking handshake between two processes on ::1",
	  case_handshake_v6, 30 },
	{ "connect to a bound, non-listening port is refused by RST",
	  case_refused_rst, 30 },
	{ "connect to an unbound port is refused by ICMP",
	  case_refused_icmp, 30 },
	{ "connect to a silent port times out after the SYN retries",
	  case_timeout, 30 },
	{ "non-blocking connect: pending, success, refused",
	  case_nonblocking_connect, 30 },
	{ "non-blocking accept and listener readability",
	  case_nonblocking_accept, 30 },
	{ "100 concurrent handshakes to one listener", case_concurrent, 60 },
	{ "closing: rudp_close, close(2), descriptor reuse", case_closing,
	  30 },
	{ "bad arguments and wrong states", case_bad_arguments, 30 },
	{ "800 connections wait for accept within a backlog of 1024",
	  case_queue, 60 },
	{ "the same through a listener pair that holds a few at a time",
	  case_queue_small_pair, 60 },
	{ "100 connections closed first: TIME_WAIT keeps no descriptor",
	  case_short_connections, 30 },
	{ "a soft descriptor limit of 64 admits 48 connections, numbered as TCP",
	  case_low_nofile, 30 },
};

/* Whether case i (from 0) was asked for: all of them when argv names none. */
static bool selected(size_t i, int argc, char **argv)
{
	if (argc < 2)
		return true;
	for (int a = 1; a < argc; a++)
		if (strtoul(argv[a], NULL, 10) == i + 1)
			return true;
	return false;
}

/* e2e_api [N...]: runs every case, or only the numbered ones. */
int main(int argc, char **argv)
{
	size_t n = sizeof(cases) / sizeof(cases[0]);
	unsigned failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("1..%zu\n", n);
	for (size_t i = 0; i < n; i++) {
		const struct tcase *tc = &cases[i];
		double t0 = now_s();
		pid_t pid;
		int st;

		if (!selected(i, argc, argv)) {
			printf("ok %zu - %s # SKIP not selected\n", i + 1,
			       tc->name);
			continue;
		}

		fflush(NULL);
		pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			char name[32];

			snprintf(name, sizeof(name), "case %zu", i + 1);
			role = name;
			alarm(tc->timeout_s);
			int r = tc->fn();
			fflush(NULL);
			exit(r ? r : failures ? 1 : 0);
		}
		st = wait_child(pid, (int)(tc->timeout_s + 10) * 1000);
		if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 77) {
			printf("ok %zu - %s # SKIP\n", i + 1, tc->name);
			continue;
		}
		if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			printf("ok %zu - %s (%.3f s)\n", i + 1, tc->name,
			       now_s() - t0);
			continue;
		}
		failed++;
		if (st == -1)
			printf("# case %zu did not finish; killed\n", i + 1);
		else if (WIFSIGNALED(st))
			printf("# case %zu killed by signal %d (%s)\n", i + 1,
			       WTERMSIG(st), strsignal(WTERMSIG(st)));
		printf("not ok %zu - %s\n", i + 1, tc->name);
	}
	if (failed)
		printf("# %u of %zu cases failed\n", failed, n);
	return failed ? 1 : 0;
}
