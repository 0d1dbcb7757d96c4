/*
 * The smallest rudp program: one process listens, another connects, and
 * both report what they see.  Run with RUDP_LOG=debug to watch every state
 * transition of the handshake.
 *
 *   hello listen PORT [COUNT]     accept COUNT connections (default 1)
 *   hello connect HOST PORT       connect once and report the result
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rudp.h"

static void show(const char *what, const struct sockaddr *sa)
{
	char host[INET6_ADDRSTRLEN + 8], port[8];

	if (getnameinfo(sa, sizeof(struct sockaddr_storage), host, sizeof(host),
			port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV))
		strcpy(host, "?");
	printf("%s %s port %s\n", what, host, port);
}

static int resolve(const char *host, const char *port,
		   struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *ai;
	int r = getaddrinfo(host, port, &hints, &ai);

	if (r) {
		fprintf(stderr, "hello: %s: %s\n", host, gai_strerror(r));
		return -1;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static int do_listen(const char *port, int count)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons((uint16_t)atoi(port)) };
	struct sockaddr_storage peer;
	socklen_t len;
	int fd = rudp_socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || rudp_bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    rudp_listen(fd, 16) < 0) {
		perror("hello: listen");
		return 1;
	}
	printf("listening on UDP port %s\n", port);
	fflush(stdout);
	for (int i = 0; i < count; i++) {
		len = sizeof(peer);
		int c = rudp_accept(fd, (struct sockaddr *)&peer, &len);
		if (c < 0) {
			perror("hello: accept");
			return 1;
		}
		show("accepted a connection from", (struct sockaddr *)&peer);
		fflush(stdout);
		rudp_close(c);
	}
	rudp_close(fd);
	return 0;
}

static int do_connect(const char *host, const char *port)
{
	struct sockaddr_storage ss, local;
	socklen_t len, llen = sizeof(local);
	int fd;

	if (resolve(host, port, &ss, &len) < 0)
		return 1;
	fd = rudp_socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0 || rudp_connect(fd, (struct sockaddr *)&ss, len) < 0) {
		fprintf(stderr, "hello: connect: %s\n", strerror(errno));
		return 1;
	}
	rudp_getsockname(fd, (struct sockaddr *)&local, &llen);
	show("connected from", (struct sockaddr *)&local);
	show("connected to", (struct sockaddr *)&ss);
	rudp_close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && strcmp(argv[1], "listen") == 0)
		return do_listen(argv[2], argc > 3 ? atoi(argv[3]) : 1);
	if (argc == 4 && strcmp(argv[1], "connect") == 0)
		return do_connect(argv[2], argv[3]);
	fprintf(stderr, "usage: hello listen PORT [COUNT] | "
			"hello connect HOST PORT\n");
	return 2;
}
