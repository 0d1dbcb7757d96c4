/*
 * conns: what connections cost, measured with plain POSIX sockets only, so
 * that one binary runs on kernel TCP as it is and over rudp under
 *
 *   LD_PRELOAD=build-bench/shim/librudp_shim.so RUDP_PORTS=PORT conns ...
 *
 * Two modes; each forks a server child (its own process, so under rudp its
 * own loop thread) that listens on 127.0.0.1:PORT, and the parent is the
 * client.
 *
 *   conns idle -p PORT [-n 10000] [-s 5] [-w 128] [-S 0.5]
 *       The client opens N connections (at most -w connects in flight, and
 *       at most -w started but not yet accepted by the server program), the
 *       server accepts them; after -S seconds of settling both keep every
 *       connection registered for EPOLLIN, as an idle server would, and
 *       wait.  Each process measures what its N connection ends cost it,
 *       from a baseline taken after one warm-up connection (so one-time
 *       costs such as starting the loop thread are left out, and table
 *       growth is counted):
 *         heap  mallinfo2() uordblks + hblkhd, every arena (the shim's
 *               library allocates with the process's malloc)
 *         RSS   VmRSS from /proc/self/statm
 *         fds   entries in /proc/self/fd
 *         CPU   getrusage(RUSAGE_SELF) user + system, every thread (the
 *               loop thread too), over -s idle seconds, as % of one core
 *       plus the system-wide change of Slab in /proc/meminfo (kernel
 *       objects of both ends; noisy when other work runs).
 *
 *   conns rate -p PORT [-t 3] [-c 32] [-W 0.5] [-m server|client|rst]
 *       The client keeps -c non-blocking connects in flight; the server
 *       accepts.  Who ends each connection (-m):
 *         server  (default) the server closes right after accept(); the
 *                 client waits for end of file, then closes.  TIME_WAIT
 *                 lands on the server, as for an HTTP/1.0 server, so the
 *                 client's ephemeral ports are not used up on kernel TCP
 *                 and rudp keeps its TIME_WAIT connections in the
 *                 listener's endpoint, without descriptors.
 *         client  the client closes as soon as connect() completes (TIME_WAIT
 *                 on the client; the server closes on end of file).
 *         rst     the client closes at once with SO_LINGER {1, 0} (a reset,
 *                 no TIME_WAIT anywhere); the server closes after accept().
 *       After a warm-up (-W, 0.5 s) it counts for -t seconds: completed
 *       connections per second (client side: connect completed and
 *       connection ended) and accepts per second (server side), each
 *       process's CPU time per connection, its loop thread's alone (every
 *       thread but the main one: under the shim, the library's event loop;
 *       /proc/self/task/N/schedstat), and connect() latency percentiles.
 *       With -m client or rst the client does not wait for the server's
 *       accept(), so a large -c can pile established connections up in the
 *       server's accept queue.
 *
 * Output: one `name=value` line per metric on stdout; a summary on stderr.
 * RLIMIT_NOFILE is raised as needed (with CAP_SYS_RESOURCE, past the hard
 * limit up to /proc/sys/fs/nr_open); when it cannot be, a warning says so
 * and idle_nofile_limit shows what was available.  Both ends exit with
 * _exit(), without closing thousands of connections one by one.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
/* idle: the server tells the client of every ACK_EVERY accepted. */
#define ACK_EVERY 16
#define PIPE_TAG (~(uint64_t)0)

struct opts {
	const char *mode;
	const char *host;
	int port;
	unsigned n;        /* idle: connections */
	unsigned window;   /* idle: connects in flight */
	double idle_secs;  /* idle: measured idle time */
	double settle;     /* idle: pause between setup and measuring */
	double secs;       /* rate: measured time */
	double warm;       /* rate: warm-up */
	unsigned conc;     /* rate: connects in flight */
	int close_mode;    /* rate: CLOSE_* */
};

enum { CLOSE_SERVER, CLOSE_CLIENT, CLOSE_RST };
static const char *const close_names[] = { "server", "client", "rst" };

static struct sockaddr_in addr;
static const char *prog = "conns";

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: %s idle -p PORT [-n CONNS] [-s IDLE_SECS] [-w WINDOW] [-S SETTLE_SECS]\n"
		"       %s rate -p PORT [-t SECS] [-c CONCURRENCY] [-W WARMUP_SECS]\n"
		"                       [-m server|client|rst]\n"
		"       common: [-a IPV4_ADDRESS] (default 127.0.0.1)\n",
		prog, prog);
	exit(2);
}

/* ----------------------------------------------------------------------- */
/* Measurements.  None of them allocates from the heap except count_fds(),
 * whose DIR buffer is freed again before it returns. */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds used by the whole process (every thread) so far. */
static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long long heap_bytes(void)
{
	struct mallinfo2 m = mallinfo2();

	return (long long)m.uordblks + (long long)m.hblkhd;
}

/* Reads a small file into buf without stdio (no heap). */
static ssize_t slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n, got = 0;

	if (fd < 0)
		return -1;
	while ((size_t)got < len - 1 &&
	       (n = read(fd, buf + got, len - 1 - (size_t)got)) > 0)
		got += n;
	close(fd);
	buf[got] = 0;
	return got;
}

/*
 * CPU seconds used so far by the process's other threads: under the shim,
 * the library's loop thread (schedstat's first field is nanoseconds on the
 * CPU).  0 on kernel TCP, where the program has no other thread.
 */
static double other_threads_cpu_s(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	long self = (long)getpid(); /* the measuring thread is the main one */
	double sum = 0;
	char path[300], buf[128];

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || atol(e->d_name) == self)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat",
			 e->d_name);
		if (slurp(path, buf, sizeof(buf)) > 0)
			sum += strtod(buf, NULL) / 1e9;
	}
	closedir(d);
	return sum;
}

static long long rss_bytes(void)
{
	char buf[256];
	long long size, res;

	if (slurp("/proc/self/statm", buf, sizeof(buf)) <= 0 ||
	    sscanf(buf, "%lld %lld", &size, &res) != 2)
		return -1;
	return res * sysconf(_SC_PAGESIZE);
}

/* Slab (kernel objects), system-wide, from /proc/meminfo. */
static long long slab_bytes(void)
{
	char buf[8192];
	const char *p;

	if (slurp("/proc/meminfo", buf, sizeof(buf)) <= 0 ||
	    !(p = strstr(buf, "\nSlab:")))
		return -1;
	return strtoll(p + 6, NULL, 10) * 1024;
}

static long count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

struct snap {
	long long heap, rss, slab;
	long fds;
};

static void snapshot(struct snap *s)
{
	s->heap = heap_bytes(); /* first: count_fds allocates and frees */
	s->rss = rss_bytes();
	s->slab = slab_bytes();
	s->fds = count_fds();
}

/* ----------------------------------------------------------------------- */
/* Descriptors and sockets. */

static rlim_t nofile_limit;

/*
 * Raises RLIMIT_NOFILE to `need` if it can: the soft limit up to the hard
 * one, and as root the hard one up to /proc/sys/fs/nr_open.
 */
static void raise_nofile(rlim_t need)
{
	struct rlimit rl;
	char buf[64];
	rlim_t nr_open = 1 << 20;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur < need) {
		if (slurp("/proc/sys/fs/nr_open", buf, sizeof(buf)) > 0)
			nr_open = (rlim_t)strtoull(buf, NULL, 10);
		if (rl.rlim_max < need) {
			struct rlimit up;
			up.rlim_cur = up.rlim_max = need < nr_open ? need : nr_open;
			if (setrlimit(RLIMIT_NOFILE, &up) == 0)
				rl = up;
		}
		if (rl.rlim_cur < need) {
			rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
			(void)getrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	nofile_limit = rl.rlim_cur;
	if (nofile_limit < need)
		fprintf(stderr,
			"%s: WARNING: RLIMIT_NOFILE is %llu and cannot be raised "
			"to %llu here (that needs CAP_SYS_RESOURCE, or a higher "
			"hard limit): enough for about %llu rudp connections "
			"per process (3 to 4 descriptors each), %llu kernel TCP "
			"ones\n",
			prog, (unsigned long long)nofile_limit,
			(unsigned long long)need,
			(unsigned long long)(nofile_limit > 256 ? (nofile_limit - 256) / 4 : 0),
			(unsigned long long)(nofile_limit > 256 ? nofile_limit - 256 : 0));
}

static int listener(void)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("bind to port %d: %s", ntohs(addr.sin_port), strerror(errno));
	if (listen(fd, 4096) < 0)
		die("listen: %s", strerror(errno));
	return fd;
}

/* Starts a non-blocking connect: the socket, or -errno. */
static int start_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 &&
	    errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static int sock_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err;
}

static void ep_add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl ADD %d: %s", fd, strerror(errno));
}

static void ep_mod(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0)
		die("epoll_ctl MOD %d: %s", fd, strerror(errno));
}

/* ----------------------------------------------------------------------- */
/* The control pipes between client (parent) and server (child). */

static int to_child = -1, from_child = -1, to_parent = -1, from_parent = -1;

static void put(int fd, char c)
{
	while (write(fd, &c, 1) < 0)
		if (errno != EINTR)
			die("control pipe: %s", strerror(errno));
}

/* Waits for byte `want`; dies if the other side went away. */
static void expect(int fd, char want)
{
	char c;
	ssize_t n;

	for (;;) {
		n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("the %s went away", fd == from_child ? "server" : "client");
		if (c == want)
			return;
		if (c == 'X')
			die("the %s failed", fd == from_child ? "server" : "client");
	}
}

/* The child's result line, up to its newline (or its closing the pipe). */
static void read_line(int fd, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len - 1 && (!got || buf[got - 1] != '\n')) {
		n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = 0;
}

/* A number the child reported as "key=value ...", or -1. */
static double field(const char *buf, const char *key)
{
	size_t k = strlen(key);

	for (const char *p = buf; (p = strstr(p, key)); p++)
		if ((p == buf || p[-1] == ' ' || p[-1] == '\n') && p[k] == '=')
			return strtod(p + k + 1, NULL);
	return -1;
}

static pid_t child;

static void fork_server(void (*serve)(const struct opts *), const struct opts *o)
{
	int a[2], b[2];

	if (pipe2(a, O_CLOEXEC) < 0 || pipe2(b, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	child = fork();
	if (child < 0)
		die("fork: %s", strerror(errno));
	if (child == 0) {
		prog = "conns (server)";
		close(a[1]);
		close(b[0]);
		from_parent = a[0];
		to_parent = b[1];
		serve(o);
		/*
		 * _exit: no exit-time linger for thousands of connections;
		 * the measurement is over.
		 */
		_exit(0);
	}
	close(a[0]);
	close(b[1]);
	to_child = a[1];
	from_child = b[0];
}

static void reap_child(void)
{
	int st;

	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, &st, 0);
		child = 0;
	}
}

/*
 * The end of a run: _exit(), so that neither kernel TCP nor rudp spends
 * time closing thousands of connections (rudp's exit would otherwise wait
 * for every FIN exchange); the kernel reclaims the descriptors.
 */
static _Noreturn void finish(void)
{
	reap_child();
	fflush(NULL);
	_exit(0);
}

/* ----------------------------------------------------------------------- */
/* idle */

/* Counts events over `secs` in epoll_wait, like an idle server. */
static unsigned idle_wait(int ep, double secs)
{
	struct epoll_event evs[MAX_EVENTS];
	double end = now_s() + secs;
	unsigned events = 0;
	double left;

	while ((left = end - now_s()) > 0) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, (int)(left * 1000) + 1);
		if (n > 0)
			events += (unsigned)n;
	}
	return events;
}

static void idle_server(const struct opts *o)
{
	struct epoll_event evs[MAX_EVENTS];
	struct snap before, after;
	int lfd, ep, fd;
	unsigned accepted = 0, events;
	double c0, c1, t0, t1;
	char out[512];

	ep = epoll_create1(EPOLL_CLOEXEC);
	lfd = listener();
	ep_add(ep, lfd, EPOLLIN, (uint64_t)lfd);
	put(to_parent, 'L');
	/* The warm-up connection. */
	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0) {
		if (errno != EAGAIN && errno != EINTR)
			die("accept: %s", strerror(errno));
		epoll_wait(ep, evs, MAX_EVENTS, 1000);
	}
	ep_add(ep, fd, EPOLLIN, (uint64_t)fd);
	snapshot(&before);
	put(to_parent, 'B');
	while (accepted < o->n) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, 1000);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 != (uint64_t)lfd)
				continue; /* an idle connection: nothing comes */
			while (accepted < o->n &&
			       (fd = accept4(lfd, NULL, NULL,
					     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
				ep_add(ep, fd, EPOLLIN, (uint64_t)fd);
				if (++accepted % ACK_EVERY == 0)
					put(to_parent, 'a');
			}
			if (fd < 0 && errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED) {
				fprintf(stderr, "%s: accept after %u: %s\n", prog,
					accepted, strerror(errno));
				put(to_parent, 'X');
				return;
			}
		}
	}
	put(to_parent, 'A');
	expect(from_parent, 'G');
	snapshot(&after);
	t0 = now_s();
	c0 = cpu_s();
	events = idle_wait(ep, o->idle_secs);
	c1 = cpu_s();
	t1 = now_s();
	int len = snprintf(out, sizeof(out),
			   "heap=%lld rss=%lld fds=%ld cpu=%.6f wall=%.6f events=%u\n",
			   after.heap - before.heap, after.rss - before.rss,
			   after.fds - before.fds, c1 - c0, t1 - t0, events);
	if (write(to_parent, out, (size_t)len) < 0)
		die("control pipe: %s", strerror(errno));
	/*
	 * Exiting now would end our connections while the client may still
	 * be measuring its idle time: wait until it has read the results.
	 */
	expect(from_parent, 'Q');
}

static _Noreturn void idle_mode(const struct opts *o)
{
	struct epoll_event evs[MAX_EVENTS];
	struct snap before, after;
	char res[512];
	unsigned started = 0, done = 0, inflight = 0, events;
	int ep, fd;
	double t0, t1, c0, c1, w0, w1;

	/* rudp: 3 descriptors per accepted connection, 4 per connecting one. */
	raise_nofile((rlim_t)o->n * 5 + 1024);
	fork_server(idle_server, o);
	ep = epoll_create1(EPOLL_CLOEXEC);
	expect(from_child, 'L');

	/* The warm-up connection, left out of the counts. */
	fd = start_connect();
	if (fd < 0)
		die("connect: %s", strerror(-fd));
	ep_add(ep, fd, EPOLLOUT, (uint64_t)fd);
	if (epoll_wait(ep, evs, 1, 10000) != 1 || sock_error(fd))
		die("the warm-up connection failed: %s", strerror(sock_error(fd)));
	ep_mod(ep, fd, EPOLLIN, (uint64_t)fd);
	expect(from_child, 'B');
	snapshot(&before);

	/*
	 * At most -w connections are started and not yet accepted by the
	 * server program: a client faster than the server's accept() would
	 * otherwise pile established connections up in its accept queue,
	 * which rudp (as of 744b4f8) cannot hold beyond a few hundred.
	 */
	unsigned acked = 0;
	bool server_done = false;
	ep_add(ep, from_child, EPOLLIN, PIPE_TAG);
	t0 = now_s();
	while (done < o->n) {
		while (inflight < o->window && started < o->n &&
		       started < acked + o->window) {
			fd = start_connect();
			if (fd < 0)
				die("connect %u of %u: %s%s", started + 1, o->n,
				    strerror(-fd),
				    fd == -EMFILE ? " (RLIMIT_NOFILE too low)" : "");
			ep_add(ep, fd, EPOLLOUT, (uint64_t)fd);
			started++;
			inflight++;
		}
		int n = epoll_wait(ep, evs, MAX_EVENTS, 10000);
		if (n == 0)
			die("no connection completed in 10 s (%u of %u done)",
			    done, o->n);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == PIPE_TAG) {
				char b[256];
				ssize_t r = read(from_child, b, sizeof(b));
				if (r <= 0)
					die("the server went away");
				for (ssize_t k = 0; k < r; k++) {
					if (b[k] == 'a')
						acked += ACK_EVERY;
					else if (b[k] == 'A')
						server_done = true;
					else if (b[k] == 'X')
						die("the server failed");
				}
				continue;
			}
			if (!(evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
				continue;
			fd = (int)evs[i].data.u64;
			int err = sock_error(fd);
			if (err)
				die("connection %u failed: %s", done + 1, strerror(err));
			ep_mod(ep, fd, EPOLLIN, (uint64_t)fd);
			inflight--;
			done++;
		}
	}
	t1 = now_s();
	epoll_ctl(ep, EPOLL_CTL_DEL, from_child, NULL);
	if (!server_done)
		expect(from_child, 'A');
	/* Let handshake timers and delayed acks run out. */
	usleep((useconds_t)(o->settle * 1e6));
	put(to_child, 'G');
	snapshot(&after);
	w0 = now_s();
	c0 = cpu_s();
	events = idle_wait(ep, o->idle_secs);
	c1 = cpu_s();
	w1 = now_s();
	read_line(from_child, res, sizeof(res));
	put(to_child, 'Q');
	if (!*res)
		die("the server reported nothing");

	double n = o->n;
	double s_cpu = field(res, "cpu"), s_wall = field(res, "wall");
	printf("idle_conns=%u\n", o->n);
	printf("idle_nofile_limit=%llu\n", (unsigned long long)nofile_limit);
	printf("idle_setup_conns_per_s=%.0f\n", n / (t1 - t0));
	printf("idle_server_heap_per_conn_bytes=%.0f\n", field(res, "heap") / n);
	printf("idle_server_rss_per_conn_bytes=%.0f\n", field(res, "rss") / n);
	printf("idle_server_fds_per_conn=%.2f\n", field(res, "fds") / n);
	printf("idle_server_cpu_pct=%.3f\n", 100 * s_cpu / s_wall);
	printf("idle_client_heap_per_conn_bytes=%.0f\n",
	       (double)(after.heap - before.heap) / n);
	printf("idle_client_rss_per_conn_bytes=%.0f\n",
	       (double)(after.rss - before.rss) / n);
	printf("idle_client_fds_per_conn=%.2f\n",
	       (double)(after.fds - before.fds) / n);
	printf("idle_client_cpu_pct=%.3f\n", 100 * (c1 - c0) / (w1 - w0));
	printf("idle_cpu_pct=%.3f\n", 100 * ((c1 - c0) / (w1 - w0) + s_cpu / s_wall));
	printf("idle_kernel_slab_per_conn_bytes=%.0f\n",
	       (double)(after.slab - before.slab) / n);
	printf("idle_events=%.0f\n", events + field(res, "events"));
	fflush(stdout);
	fprintf(stderr,
		"idle: %u connections set up in %.2f s (%.0f/s, %u in flight)\n"
		"  per connection   server (accepted)   client (connected)\n"
		"  heap             %10.0f B        %10.0f B\n"
		"  RSS              %10.0f B        %10.0f B\n"
		"  descriptors      %10.2f          %10.2f\n"
		"  idle CPU         %9.3f %%         %9.3f %%   over %.1f s\n"
		"  kernel slab, system-wide, both ends: %.0f B per connection\n",
		o->n, t1 - t0, n / (t1 - t0), o->window,
		field(res, "heap") / n, (double)(after.heap - before.heap) / n,
		field(res, "rss") / n, (double)(after.rss - before.rss) / n,
		field(res, "fds") / n, (double)(after.fds - before.fds) / n,
		100 * s_cpu / s_wall, 100 * (c1 - c0) / (w1 - w0), o->idle_secs,
		(double)(after.slab - before.slab) / n);
	if (events + field(res, "events") > 0)
		fprintf(stderr, "  note: %.0f events on idle connections\n",
			events + field(res, "events"));
	finish();
}

/* ----------------------------------------------------------------------- */
/* rate */

/*
 * Per-descriptor state; events carry (generation << 32 | fd) so that an
 * event for a descriptor already closed (and its number reused) is told
 * apart.
 */
enum { FREE, CONNECTING, WAIT_EOF };
struct slot {
	uint8_t st;
	uint32_t gen;
	double started, connected;
};

/* Latency samples of the measured interval, in microseconds. */
struct samples {
	float *v;
	size_t n, cap;
};

static void sample(struct samples *s, double us)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 65536;
		float *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = (float)us;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

static double pct(struct samples *s, double p)
{
	if (!s->n)
		return 0;
	qsort(s->v, s->n, sizeof(*s->v), cmp_float);
	return s->v[(size_t)(p * (double)(s->n - 1))];
}
static struct slot *slots;

static uint64_t tag(int fd)
{
	return (uint64_t)slots[fd].gen << 32 | (uint32_t)fd;
}

static void rate_server(const struct opts *o)
{
	struct epoll_event evs[MAX_EVENTS];
	unsigned long long accepted = 0, a0 = 0, errors = 0;
	double c0 = 0, t0 = 0, l0 = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int lfd = listener();
	char buf[512];

	ep_add(ep, lfd, EPOLLIN, (uint64_t)lfd);
	ep_add(ep, from_parent, EPOLLIN, (uint64_t)from_parent);
	put(to_parent, 'L');
	for (;;) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
		for (int i = 0; i < n; i++) {
			int fd = (int)evs[i].data.u64;
			if (fd == lfd) {
				int c;
				while ((c = accept4(lfd, NULL, NULL,
						    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					accepted++;
					if (o->close_mode == CLOSE_CLIENT)
						ep_add(ep, c, EPOLLIN | EPOLLRDHUP,
						       (uint64_t)c);
					else
						close(c);
				}
				if (errno != EAGAIN && errno != EINTR &&
				    errno != ECONNABORTED) {
					if (errors++ < 5)
						fprintf(stderr, "%s: accept: %s\n",
							prog, strerror(errno));
					if (errno == EMFILE || errno == ENFILE)
						usleep(1000);
				}
			} else if (fd == from_parent) {
				char c;
				if (read(from_parent, &c, 1) != 1)
					return;
				if (c == 'M') {
					a0 = accepted;
					l0 = other_threads_cpu_s();
					c0 = cpu_s();
					t0 = now_s();
				} else if (c == 'E') {
					double c1 = cpu_s(), t1 = now_s();
					double l1 = other_threads_cpu_s();
					int len = snprintf(buf, sizeof(buf),
						"accepted=%llu cpu=%.6f loopcpu=%.6f wall=%.6f errors=%llu\n",
						accepted - a0, c1 - c0, l1 - l0, t1 - t0, errors);
					if (write(to_parent, buf, (size_t)len) < 0)
						return;
				} else if (c == 'Q') {
					return;
				}
			} else {
				/* CLOSE_CLIENT: the client's end of file. */
				char b[64];
				ssize_t r = read(fd, b, sizeof(b));
				if (r == 0 || (r < 0 && errno != EAGAIN &&
					       errno != EINTR))
					close(fd);
			}
		}
	}
}

static _Noreturn void rate_mode(const struct opts *o)
{
	struct epoll_event evs[MAX_EVENTS];
	unsigned long long completed = 0, connected = 0, errors = 0, c_at_mark = 0;
	unsigned inflight = 0;
	double start, t0 = 0, t1 = 0, cpu0 = 0, cpu1 = 0, loop0 = 0, loop1 = 0;
	int phase = 0; /* 0 warm-up, 1 measuring, 2 done */
	int ep, fd;
	char res[512];
	static const struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	struct samples lat_conn = { 0 }, lat_eof = { 0 };

	raise_nofile((rlim_t)o->conc * 8 + 1024);
	slots = calloc(nofile_limit, sizeof(*slots));
	if (!slots)
		die("out of memory");
	fork_server(rate_server, o);
	ep = epoll_create1(EPOLL_CLOEXEC);
	expect(from_child, 'L');

	start = now_s();
	while (phase < 2) {
		while (inflight < o->conc) {
			fd = start_connect();
			if (fd < 0) {
				if (errors++ < 5)
					fprintf(stderr, "%s: connect: %s\n", prog,
						strerror(-fd));
				usleep(1000);
				break;
			}
			if ((rlim_t)fd >= nofile_limit)
				die("descriptor %d out of range", fd);
			slots[fd].st = CONNECTING;
			slots[fd].gen++;
			slots[fd].started = now_s();
			ep_add(ep, fd, EPOLLOUT, tag(fd));
			inflight++;
		}
		int n = epoll_wait(ep, evs, MAX_EVENTS, 10);
		for (int i = 0; i < n; i++) {
			fd = (int)(uint32_t)evs[i].data.u64;
			if ((uint32_t)(evs[i].data.u64 >> 32) != slots[fd].gen)
				continue; /* a descriptor closed meanwhile */
			bool end = false;
			if (slots[fd].st == CONNECTING) {
				int err = sock_error(fd);
				if (err) {
					if (errors++ < 5)
						fprintf(stderr, "%s: connect: %s\n",
							prog, strerror(err));
					close(fd);
					slots[fd].st = FREE;
					inflight--;
					continue;
				}
				connected++;
				slots[fd].connected = now_s();
				if (phase == 1)
					sample(&lat_conn, 1e6 * (slots[fd].connected -
								 slots[fd].started));
				if (o->close_mode == CLOSE_SERVER) {
					slots[fd].st = WAIT_EOF;
					ep_mod(ep, fd, EPOLLIN | EPOLLRDHUP, tag(fd));
					if (!(evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)))
						continue;
				} else {
					if (o->close_mode == CLOSE_RST)
						setsockopt(fd, SOL_SOCKET, SO_LINGER,
							   &rst, sizeof(rst));
					end = true;
				}
			}
			if (slots[fd].st == WAIT_EOF) {
				char b[64];
				ssize_t r = read(fd, b, sizeof(b));
				end = r == 0 || (r < 0 && errno != EAGAIN &&
						 errno != EINTR);
			}
			if (end) {
				if (phase == 1 && o->close_mode == CLOSE_SERVER)
					sample(&lat_eof, 1e6 * (now_s() -
								slots[fd].connected));
				close(fd);
				slots[fd].st = FREE;
				inflight--;
				completed++;
			}
		}
		double t = now_s();
		if (phase == 0 && t - start >= o->warm) {
			put(to_child, 'M');
			t0 = t;
			loop0 = other_threads_cpu_s();
			cpu0 = cpu_s();
			c_at_mark = completed;
			phase = 1;
		} else if (phase == 1 && t - t0 >= o->secs) {
			put(to_child, 'E');
			t1 = t;
			cpu1 = cpu_s();
			loop1 = other_threads_cpu_s();
			phase = 2;
		}
	}
	read_line(from_child, res, sizeof(res));
	put(to_child, 'Q');
	if (!*res)
		die("the server reported nothing");

	double cn = (double)(completed - c_at_mark), sn = field(res, "accepted");
	double wall = t1 - t0, s_cpu = field(res, "cpu"), s_wall = field(res, "wall");
	printf("rate_close_by=%s\n", close_names[o->close_mode]);
	printf("rate_concurrency=%u\n", o->conc);
	printf("rate_secs=%.3f\n", wall);
	printf("rate_conns_per_s=%.0f\n", cn / wall);
	printf("rate_server_accepts_per_s=%.0f\n", sn / s_wall);
	printf("rate_client_completed=%.0f\n", cn);
	printf("rate_server_accepted=%.0f\n", sn);
	printf("rate_client_cpu_us_per_conn=%.2f\n", cn > 0 ? 1e6 * (cpu1 - cpu0) / cn : 0);
	printf("rate_server_cpu_us_per_conn=%.2f\n", sn > 0 ? 1e6 * s_cpu / sn : 0);
	printf("rate_cpu_us_per_conn=%.2f\n",
	       cn > 0 ? 1e6 * (cpu1 - cpu0) / cn + (sn > 0 ? 1e6 * s_cpu / sn : 0) : 0);
	/*
	 * The library's loop thread alone (0 on kernel TCP): one loop thread
	 * can carry at most 1e6 / (its microseconds per connection) a second.
	 */
	double s_loop = field(res, "loopcpu");
	double cl_us = cn > 0 ? 1e6 * (loop1 - loop0) / cn : 0;
	double sl_us = sn > 0 ? 1e6 * s_loop / sn : 0;
	printf("rate_client_loop_cpu_us_per_conn=%.2f\n", cl_us);
	printf("rate_server_loop_cpu_us_per_conn=%.2f\n", sl_us);
	if (sl_us > 0)
		printf("rate_server_loop_bound_conns_per_s=%.0f\n", 1e6 / sl_us);
	if (cl_us > 0)
		printf("rate_client_loop_bound_conns_per_s=%.0f\n", 1e6 / cl_us);
	/* connect() to writable; writable to the server's end of file. */
	double c50 = pct(&lat_conn, 0.5), c99 = pct(&lat_conn, 0.99);
	double e50 = pct(&lat_eof, 0.5), e99 = pct(&lat_eof, 0.99);
	printf("rate_connect_p50_us=%.1f\n", c50);
	printf("rate_connect_p99_us=%.1f\n", c99);
	if (o->close_mode == CLOSE_SERVER) {
		printf("rate_eof_p50_us=%.1f\n", e50);
		printf("rate_eof_p99_us=%.1f\n", e99);
	}
	printf("rate_client_cpu_pct=%.1f\n", 100 * (cpu1 - cpu0) / wall);
	printf("rate_server_cpu_pct=%.1f\n", 100 * s_cpu / s_wall);
	printf("rate_errors=%.0f\n", (double)errors + field(res, "errors"));
	fflush(stdout);
	fprintf(stderr,
		"rate: %.0f connections/s over %.2f s (%u in flight, closed by %s)\n"
		"  client: %.0f completed, %.1f us CPU each (%.0f%% of a core)\n"
		"  server: %.0f accepted (%.0f/s), %.1f us CPU each (%.0f%% of a core)\n"
		"  loop threads: client %.1f us, server %.1f us per connection\n"
		"  connect() until writable: p50 %.0f us, p99 %.0f us; then until "
		"the server's end of file: p50 %.0f us, p99 %.0f us\n"
		"  errors: %llu client, %.0f server\n",
		cn / wall, wall, o->conc, close_names[o->close_mode],
		cn, cn > 0 ? 1e6 * (cpu1 - cpu0) / cn : 0, 100 * (cpu1 - cpu0) / wall,
		sn, sn / s_wall, sn > 0 ? 1e6 * s_cpu / sn : 0, 100 * s_cpu / s_wall,
		cl_us, sl_us, c50, c99, e50, e99, errors, field(res, "errors"));
	(void)connected;
	finish();
}

/* ----------------------------------------------------------------------- */

static double num(const char *s, double lo, double hi)
{
	char *end;
	double v = strtod(s, &end);

	if (!*s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "%s: bad number '%s' (%g to %g)\n", prog, s, lo, hi);
		usage();
	}
	return v;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.host = "127.0.0.1", .port = -1, .n = 10000, .window = 128,
		.idle_secs = 5, .settle = 0.5, .secs = 3, .warm = 0.5, .conc = 32,
		.close_mode = CLOSE_SERVER,
	};
	int c;

	if (argc < 2 || argv[1][0] == '-')
		usage();
	o.mode = argv[1];
	optind = 2;
	while ((c = getopt(argc, argv, "a:c:m:n:p:s:S:t:w:W:")) != -1) {
		switch (c) {
		case 'a': o.host = optarg; break;
		case 'c': o.conc = (unsigned)num(optarg, 1, 100000); break;
		case 'm':
			if (!strcmp(optarg, "server"))
				o.close_mode = CLOSE_SERVER;
			else if (!strcmp(optarg, "client"))
				o.close_mode = CLOSE_CLIENT;
			else if (!strcmp(optarg, "rst"))
				o.close_mode = CLOSE_RST;
			else
				usage();
			break;
		case 'n': o.n = (unsigned)num(optarg, 1, 1000000); break;
		case 'p': o.port = (int)num(optarg, 1, 65535); break;
		case 's': o.idle_secs = num(optarg, 0.1, 3600); break;
		case 'S': o.settle = num(optarg, 0, 60); break;
		case 't': o.secs = num(optarg, 0.1, 3600); break;
		case 'w': o.window = (unsigned)num(optarg, 1, 100000); break;
		case 'W': o.warm = num(optarg, 0, 60); break;
		default: usage();
		}
	}
	if (optind != argc || o.port < 0)
		usage();
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)o.port);
	if (inet_pton(AF_INET, o.host, &addr.sin_addr) != 1)
		die("bad IPv4 address '%s'", o.host);
	signal(SIGPIPE, SIG_IGN);
	atexit(reap_child);
	if (!strcmp(o.mode, "idle"))
		idle_mode(&o);
	if (!strcmp(o.mode, "rate"))
		rate_mode(&o);
	usage();
}
