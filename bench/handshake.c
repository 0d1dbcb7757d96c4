/*
 * The least a connect() can take on this machine when a user-space thread
 * carries the connection over UDP and the program holds a real kernel
 * descriptor (what lets poll, epoll and fork work unchanged under the
 * shim): the same kernel objects and wakeups as rudp's handshake, with no
 * protocol at all.
 *
 * A child process stands for the server's loop: one thread asleep in
 * epoll_wait on a UDP socket, which answers each datagram (the SYN) with
 * one back (the SYNACK).  In the parent, a loop thread sleeps in
 * epoll_wait too.  The program's thread, per connect: a non-blocking TCP
 * socket (as python's connect with a timeout makes), then, timed, a
 * socket pair dup3()ed onto it, a connected UDP socket added to the loop's
 * epoll set, the SYN, and poll() on the descriptor.  The loop thread
 * hears the answer and writes one byte into the pair, which ends the
 * poll.  Three threads wake in turn (the server's loop, the client's loop,
 * the program), as in any design of this kind that completes a
 * non-blocking connect: the program is in poll(), not in our code, when
 * the answer comes.
 *
 * It leaves out everything rudp does besides: the shim's checks of the
 * socket, the plug that keeps the pair unwritable, the protocol's state,
 * the third segment of the handshake and the server's accept.  So what it
 * prints is a lower bound: if this exceeds a target, the design cannot
 * meet it here.
 *
 *   handshake [connects]       (default 1,000, after 10 left out)
 *
 * Prints {"p50_us": ..., "p90_us": ..., "n": ...}, as the latency runs of
 * scripts/bench.sh do.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WARM 10

static int loop_ep;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The server's loop: answers every datagram with one back to its sender. */
static void answer(int u)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int ep = epoll_create1(0);

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, u, &ev) < 0)
		die("epoll");
	for (;;) {
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof(from);
		char buf[64];
		ssize_t n;

		if (epoll_wait(ep, &ev, 1, -1) < 0)
			continue;
		n = recvfrom(u, buf, sizeof(buf), MSG_DONTWAIT,
			     (struct sockaddr *)&from, &fromlen);
		if (n > 0)
			(void)sendto(u, buf, (size_t)n, 0,
				     (struct sockaddr *)&from, fromlen);
	}
}

/*
 * The client's loop.  Each event's data holds a connection's UDP socket
 * and its end of the pair: the answer is read, the socket leaves the set
 * and one byte makes the program's descriptor ready.
 */
static void *client_loop(void *arg)
{
	(void)arg;
	for (;;) {
		struct epoll_event evs[8];
		int n = epoll_wait(loop_ep, evs, 8, -1);

		for (int i = 0; i < n; i++) {
			int u = (int)(evs[i].data.u64 >> 32);
			int end = (int)(uint32_t)evs[i].data.u64;
			char buf[64];

			(void)recv(u, buf, sizeof(buf), MSG_DONTWAIT);
			(void)epoll_ctl(loop_ep, EPOLL_CTL_DEL, u, NULL);
			(void)send(end, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		}
	}
	return NULL;
}

/* One connect: returns its microseconds; *u and *end are left to close. */
static double one_connect(int fd, const struct sockaddr_in *srv, int *u,
			  int *end)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct epoll_event ev = { .events = EPOLLIN };
	double t0 = now_us();
	int sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       sp) < 0 || dup3(sp[0], fd, O_CLOEXEC) < 0)
		die("socket pair");
	close(sp[0]);
	*end = sp[1];
	*u = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (*u < 0 || connect(*u, (const struct sockaddr *)srv,
			      sizeof(*srv)) < 0)
		die("udp socket");
	ev.data.u64 = (uint64_t)(uint32_t)*u << 32 | (uint32_t)*end;
	if (epoll_ctl(loop_ep, EPOLL_CTL_ADD, *u, &ev) < 0)
		die("epoll_ctl");
	if (send(*u, "S", 1, 0) < 0)
		die("send");
	while (poll(&pfd, 1, -1) < 0)
		;
	return now_us() - t0;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	struct sockaddr_in srv = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(srv);
	double *us = calloc((size_t)(n > 0 ? n : 1), sizeof(*us));
	pthread_t loop;
	pid_t child;
	int s;

	if (n < 1 || !us) {
		fprintf(stderr, "usage: handshake [connects >= 1]\n");
		return 2;
	}
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&srv, sizeof(srv)) < 0 ||
	    getsockname(s, (struct sockaddr *)&srv, &len) < 0)
		die("server socket");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0)
		answer(s);
	close(s);
	loop_ep = epoll_create1(EPOLL_CLOEXEC);
	if (loop_ep < 0 || pthread_create(&loop, NULL, client_loop, NULL))
		die("client loop");
	for (int i = 0; i < WARM + n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), u, end;
		double t;

		if (fd < 0)
			die("socket");
		t = one_connect(fd, &srv, &u, &end);
		close(fd);
		close(u);
		close(end);
		if (i >= WARM)
			us[i - WARM] = t;
	}
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	qsort(us, (size_t)n, sizeof(*us), by_value);
	printf("{\"p50_us\": %.3f, \"p90_us\": %.3f, \"n\": %d}\n",
	       n % 2 ? us[n / 2] : (us[n / 2 - 1] + us[n / 2]) / 2,
	       us[n * 9 / 10], n);
	free(us);
	return 0;
}
