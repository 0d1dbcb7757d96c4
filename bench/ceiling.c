/*
 * The throughput ceiling of rudp's data path on this machine: the same
 * kernel objects and threads a byte crosses under the shim, with no
 * protocol at all.  A writer thread (the sending program) writes its
 * socket-pair end; a forwarder thread (the sender's loop) reads the other
 * end and sends each chunk as one UDP datagram with a header-sized prefix;
 * a second forwarder (the receiver's loop) receives with recvmmsg and
 * writes the payload, straight from its receive buffer, into a second
 * socket pair; a reader thread (the receiving program) reads it.  The
 * receiver acknowledges every few datagrams and the sender keeps at most a
 * window in flight, as rudp must so the UDP buffers never overflow.
 *
 * It makes no copy in user space (rudp makes two) and keeps no state, so
 * what it prints is an upper bound for any protocol built this way: if
 * this falls short of a target, the design cannot meet it here.
 *
 *   ceiling [seconds] [datagram bytes]     (default 3 s, 65,000 bytes)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define HDR 36               /* rudp's header */
#define PROG_IO (128 * 1024) /* iperf3's default block */
#define WINDOW (8u << 20)    /* bytes in flight, rudp's UDP buffer size */
#define ACK_EVERY 8          /* datagrams per acknowledgement */
#define RX_BATCH 32

static int a_prog, a_loop, b_loop, b_prog, u_send, u_recv;
static size_t dgram = 65000;
static atomic_bool stop;
static uint64_t received;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *writer(void *arg)
{
	static char buf[PROG_IO];

	(void)arg;
	memset(buf, 'x', sizeof(buf));
	while (!atomic_load(&stop)) {
		if (write(a_prog, buf, sizeof(buf)) < 0 && errno != EINTR)
			break;
	}
	shutdown(a_prog, SHUT_WR);
	return NULL;
}

static void *reader(void *arg)
{
	static char buf[PROG_IO];
	ssize_t r;

	(void)arg;
	while ((r = read(b_prog, buf, sizeof(buf))) != 0) {
		if (r > 0)
			received += (uint64_t)r;
		else if (errno != EINTR)
			break;
	}
	return NULL;
}

static int epoll_with(int fd1, int fd2)
{
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN };

	if (ep < 0)
		die("epoll_create1");
	ev.data.fd = fd1;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd1, &ev) < 0)
		die("epoll_ctl");
	ev.data.fd = fd2;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd2, &ev) < 0)
		die("epoll_ctl");
	return ep;
}

/*
 * The sender's loop: pair -> UDP while the window allows, acknowledgements
 * in.  The pair is read straight into the datagram's payload slot.
 */
static void *sender(void *arg)
{
	uint8_t *buf = malloc(HDR + dgram);
	uint64_t sent = 0, acked = 0;
	bool reading = true, eof = false;
	int ep = epoll_with(a_loop, u_send);

	(void)arg;
	if (!buf)
		die("malloc");
	memset(buf, 0, HDR);
	while (!eof) {
		struct epoll_event evs[2];
		if (epoll_wait(ep, evs, 2, -1) < 0 && errno != EINTR)
			die("epoll_wait");
		uint64_t ack;
		while (recv(u_send, &ack, sizeof(ack), MSG_DONTWAIT) ==
		       (ssize_t)sizeof(ack)) {
			if (ack > acked)
				acked = ack;
		}
		while (sent - acked < WINDOW) {
			ssize_t r = recv(a_loop, buf + HDR, dgram, MSG_DONTWAIT);
			if (r == 0) {
				eof = true;
				break;
			}
			if (r < 0)
				break;
			if (send(u_send, buf, HDR + (size_t)r, 0) < 0 &&
			    errno != ENOBUFS && errno != EAGAIN)
				die("send");
			sent += (uint64_t)r;
		}
		/* Level-triggered: stop hearing the pair while the window is full. */
		bool want = sent - acked < WINDOW;
		if (want != reading) {
			struct epoll_event ev = {
				.events = want ? EPOLLIN : 0, .data.fd = a_loop
			};
			if (epoll_ctl(ep, EPOLL_CTL_MOD, a_loop, &ev) < 0)
				die("epoll_ctl");
			reading = want;
		}
	}
	send(u_send, buf, 0, 0); /* an empty datagram ends the stream */
	free(buf);
	return NULL;
}

/* Writes all of p to the receiver's pair, waiting while it is full. */
static void to_pair(const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(b_loop, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			die("send to pair");
		struct pollfd pfd = { .fd = b_loop, .events = POLLOUT };
		(void)poll(&pfd, 1, -1);
	}
}

/* The receiver's loop: UDP -> pair, an acknowledgement every few. */
static void *forwarder(void *arg)
{
	uint8_t *slots = malloc((size_t)RX_BATCH * (HDR + dgram));
	struct mmsghdr m[RX_BATCH];
	struct iovec iov[RX_BATCH];
	uint64_t got = 0;
	unsigned since_ack = 0;

	(void)arg;
	if (!slots)
		die("malloc");
	for (;;) {
		memset(m, 0, sizeof(m));
		for (int i = 0; i < RX_BATCH; i++) {
			iov[i].iov_base = slots + (size_t)i * (HDR + dgram);
			iov[i].iov_len = HDR + dgram;
			m[i].msg_hdr.msg_iov = &iov[i];
			m[i].msg_hdr.msg_iovlen = 1;
		}
		int n = recvmmsg(u_recv, m, RX_BATCH, MSG_WAITFORONE, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("recvmmsg");
		}
		for (int i = 0; i < n; i++) {
			if (m[i].msg_len == 0) {
				shutdown(b_loop, SHUT_WR);
				free(slots);
				return NULL;
			}
			to_pair((uint8_t *)iov[i].iov_base + HDR,
				m[i].msg_len - HDR);
			got += m[i].msg_len - HDR;
			if (++since_ack == ACK_EVERY) {
				send(u_recv, &got, sizeof(got), 0);
				since_ack = 0;
			}
		}
		if (since_ack) {
			send(u_recv, &got, sizeof(got), 0);
			since_ack = 0;
		}
	}
}

static void udp_pair(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in b = a;
	socklen_t len = sizeof(a);
	int big = 8 << 20;

	u_send = socket(AF_INET, SOCK_DGRAM, 0);
	u_recv = socket(AF_INET, SOCK_DGRAM, 0);
	if (u_send < 0 || u_recv < 0 ||
	    bind(u_send, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    bind(u_recv, (struct sockaddr *)&b, sizeof(b)) < 0 ||
	    getsockname(u_send, (struct sockaddr *)&a, &len) < 0 ||
	    getsockname(u_recv, (struct sockaddr *)&b, &len) < 0 ||
	    connect(u_send, (struct sockaddr *)&b, sizeof(b)) < 0 ||
	    connect(u_recv, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("udp");
	/* As rudp sizes them (core/loop.c size_bufs). */
	for (int i = 0; i < 2; i++) {
		int fd = i ? u_recv : u_send;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big,
			       sizeof(big)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big,
			       sizeof(big)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	}
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 3;
	int sv[2];
	pthread_t t[4];

	if (argc > 2)
		dgram = (size_t)atol(argv[2]);
	if (secs <= 0 || dgram < 1 || dgram > 65507 - HDR) {
		fprintf(stderr, "usage: ceiling [seconds] [datagram bytes]\n");
		return 2;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		die("socketpair");
	a_prog = sv[0];
	a_loop = sv[1];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		die("socketpair");
	b_loop = sv[0];
	b_prog = sv[1];
	udp_pair();

	uint64_t t0 = now_ns();
	pthread_create(&t[0], NULL, reader, NULL);
	pthread_create(&t[1], NULL, forwarder, NULL);
	pthread_create(&t[2], NULL, sender, NULL);
	pthread_create(&t[3], NULL, writer, NULL);
	struct timespec d = { .tv_sec = (time_t)secs,
			      .tv_nsec = (long)((secs - (time_t)secs) * 1e9) };
	nanosleep(&d, NULL);
	atomic_store(&stop, true);
	for (int i = 3; i >= 0; i--)
		pthread_join(t[i], NULL);
	double el = (double)(now_ns() - t0) / 1e9;
	printf("%.1f Gbit/s\n", (double)received * 8 / el / 1e9);
	return 0;
}
