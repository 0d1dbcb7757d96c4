/*
 * udp-relay: a UDP impairment relay for end-to-end tests.  It sits between
 * real UDP peers so that unmodified programs can be tested over a lossy,
 * slow or reordering path without root, network namespaces or netem:
 *
 *   udp-relay --listen [ADDR:]PORT --to HOST:PORT [--loss PCT] [--dup PCT]
 *             [--reorder PCT] [--delay MS] [--jitter MS] [--rate MBIT]
 *             [--queue PKTS] [--seed N] [--stats FILE]
 *
 * Clients send to the listen address.  Each distinct client address gets
 * its own upstream socket connected to --to, so the server sees one stable
 * peer per client, and whatever the server sends to that socket goes back
 * to the client.  "up" is client to server, "down" is server to client.
 *
 * Every datagram in either direction passes the same stages, each with its
 * own state per direction:
 *
 *   loss -> dup -> rate (token bucket, drop-tail queue) -> delay + reorder
 *
 * The rate stage comes before the delay so that it models a bottleneck
 * link whose queue fills, followed by propagation delay.  Random decisions
 * come from xorshift64* streams seeded from --seed, one stream per
 * impairment and direction, and every enabled impairment draws for every
 * datagram whatever the others decided; so a run is reproducible for a
 * given arrival order in each direction, and turning one impairment on
 * does not change the pattern of another.
 *
 * Exit status: 0 after SIGINT or SIGTERM, 1 on a runtime failure (a socket
 * cannot be bound, say), 2 on bad arguments.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h> /* isfinite is a macro: no libm needed */
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define PROG "udp-relay"

#define NEVER            UINT64_MAX
#define MAX_DGRAM        65536        /* larger than any UDP payload */
#define MAX_EVENTS       64
#define RX_BATCH         64           /* datagrams per socket per wakeup */
#define HELD_MAX         65536        /* datagrams in the delay heap */
#define HELD_BYTES_MAX   (128u << 20) /* bytes in the heap and rate queues */
#define HASH_BUCKETS     4096         /* power of two */
#define CLIENTS_MAX      16384
#define RATE_MIN_GAP_US  100          /* shortest rate-stage timer */
#define SOCK_BUF         (4 << 20)
#define QUEUE_MAX        100000

enum dir { UP, DOWN, NDIR };

static const char *const dir_name[NDIR] = { "up", "down" };

struct counters {
	uint64_t received;      /* datagrams that entered this direction */
	uint64_t forwarded;     /* datagrams sent on, duplicates included */
	uint64_t dropped_loss;  /* dropped by --loss */
	uint64_t duplicated;    /* extra copies made by --dup */
	uint64_t reordered;     /* datagrams held back by --reorder */
	uint64_t dropped_queue; /* rate queue full, or the delay heap cap hit */
	uint64_t dropped_send;  /* the kernel refused the send (buffer full) */
};

struct rng {
	uint64_t s;
};

/* What an epoll event refers to: the first member of each source. */
enum kind { K_LISTEN, K_UPSTREAM, K_TIMER, K_SIGNAL, K_STATS };

struct src {
	enum kind kind;
};

/* A client address in a canonical form that can be hashed and compared. */
struct akey {
	uint32_t scope;
	uint16_t family;
	uint16_t port;
	uint8_t addr[16];
};

struct client {
	struct src src;         /* K_UPSTREAM; must stay first */
	struct client *next;    /* hash chain */
	struct akey key;
	int fd;                 /* connected to --to */
	socklen_t alen;
	struct sockaddr_storage addr;
};

struct pkt {
	uint64_t due;           /* when it leaves the delay heap */
	uint64_t seq;           /* arrival order, to keep ties first-in first-out */
	struct client *c;
	uint64_t hold;          /* extra microseconds chosen by --reorder */
	uint32_t len;
	enum dir dir;
	uint8_t data[];
};

struct way {
	struct counters n;
	struct rng loss_rng, dup_rng, reorder_rng;
	double tokens;          /* bytes; negative while in debt */
	uint64_t refilled;      /* when tokens were last brought up to date */
	struct pkt **q;         /* ring of --queue datagrams waiting for tokens */
	size_t qhead, qlen;
};

struct opts {
	const char *listen, *to, *stats;
	double loss, dup, reorder;  /* probabilities in [0, 1] */
	uint64_t delay_us, jitter_us;
	double rate;                /* bytes per second; 0 means unlimited */
	double depth;               /* token bucket size in bytes */
	size_t queue;
	uint64_t seed;
};

struct relay {
	struct opts o;
	int epfd, lfd, tfd, sfd, stfd;
	struct src lsrc, tsrc, ssrc, stsrc;
	struct sockaddr_storage to;
	socklen_t tolen;
	struct client *bucket[HASH_BUCKETS];
	size_t nclients, max_clients;
	uint64_t dropped_clients;
	struct way way[NDIR];
	struct pkt **heap;
	size_t hn, hcap;
	size_t held_bytes;
	uint64_t seq;
	uint64_t armed;
	uint64_t late_max, late_sum, late_n;
	uint64_t started;
	char *stats_tmp;
	bool stats_warned;
	uint8_t buf[MAX_DGRAM];
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- Random numbers ---- */

/*
 * splitmix64 turns the seed and a stream number into well-mixed, non-zero
 * xorshift states, so seeds 0, 1 and 2 give unrelated streams.
 */
static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t z = seed + (stream + 1) * 0x9e3779b97f4a7c15u;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	z ^= z >> 31;
	r->s = z ? z : 0x9e3779b97f4a7c15u;
}

static uint64_t rng_next(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1du;
}

/* A uniform double in [0, 1) from the top 53 bits. */
static double rng_unit(struct rng *r)
{
	return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- Argument parsing ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " --listen [ADDR:]PORT --to HOST:PORT [options]\n"
		"  --listen [ADDR:]PORT  where clients send (PORT 0: any free port;\n"
		"                        no ADDR: all addresses, IPv4 and IPv6)\n"
		"  --to HOST:PORT        the server; IPv6 as [::1]:9000\n"
		"  --loss PCT            drop each datagram with this probability\n"
		"  --dup PCT             send an extra copy with this probability\n"
		"  --reorder PCT         hold this share of datagrams back by a random\n"
		"                        extra delay in [0, jitter] (default 100 when\n"
		"                        only --jitter is given)\n"
		"  --delay MS            fixed one-way delay\n"
		"  --jitter MS           reorder hold range (default 2*delay, or 10)\n"
		"  --rate MBIT           per-direction rate limit in megabit/s\n"
		"  --queue PKTS          rate-limit queue length (default 1000)\n"
		"  --seed N              random seed (default 1)\n"
		"  --stats FILE          write JSON counters every second and on exit\n"
		"Every impairment applies to each direction independently.\n");
}

static __attribute__((noreturn)) void
bad_value(const char *opt, const char *val, const char *want)
{
	fprintf(stderr, PROG ": bad value for --%s: '%s' (%s)\n", opt, val, want);
	exit(2);
}

/* Parses a whole string as a finite double within [lo, hi]. */
static bool parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno || !isfinite(v) || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static double parse_pct(const char *opt, const char *val)
{
	double v;

	if (!parse_double(val, 0, 100, &v))
		bad_value(opt, val, "expected a percentage from 0 to 100");
	return v / 100;
}

static uint64_t parse_ms(const char *opt, const char *val)
{
	double v;

	/* An hour is far beyond any test and keeps microseconds in range. */
	if (!parse_double(val, 0, 3600000, &v))
		bad_value(opt, val, "expected milliseconds from 0 to 3600000");
	return (uint64_t)(v * 1000 + 0.5);
}

static uint64_t parse_uint(const char *opt, const char *val, uint64_t lo,
			   uint64_t hi, const char *want)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(val, &end, 0);
	/* strtoull quietly negates "-1", so a sign is rejected up front. */
	if (end == val || *end || errno || strchr(val, '-') || v < lo || v > hi)
		bad_value(opt, val, want);
	return v;
}

/*
 * Splits "HOST:PORT", "[V6]:PORT" or (when port_only is allowed) "PORT"
 * into host and port, and resolves them.  A bare IPv6 address is refused
 * because its last group could not be told from a port.  host_given says
 * whether an address was present.
 */
static void parse_addr(const char *opt, const char *val, bool port_only,
		       bool passive, struct sockaddr_storage *ss,
		       socklen_t *len, bool *host_given)
{
	char host[256], port[8];
	const char *colon, *p;
	struct addrinfo hints = {
		.ai_socktype = SOCK_DGRAM,
		.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0),
	}, *ai;
	unsigned long pv;
	size_t hl;
	int r;

	if (val[0] == '[') {
		const char *rb = strchr(val, ']');
		if (!rb || rb[1] != ':')
			bad_value(opt, val, "expected [IPV6]:PORT");
		hl = (size_t)(rb - val - 1);
		p = val + 1;
		colon = rb + 1;
	} else {
		colon = strrchr(val, ':');
		if (colon && colon != strchr(val, ':'))
			bad_value(opt, val, "IPv6 addresses need brackets: [::1]:9000");
		hl = colon ? (size_t)(colon - val) : 0;
		p = val;
	}
	if (!colon && !port_only)
		bad_value(opt, val, "expected HOST:PORT");
	if (colon && hl == 0)
		bad_value(opt, val, "empty address before the port");
	if (hl >= sizeof(host))
		bad_value(opt, val, "address too long");
	memcpy(host, p, hl);
	host[hl] = '\0';
	p = colon ? colon + 1 : val;
	if (!*p || strlen(p) >= sizeof(port) || strspn(p, "0123456789") != strlen(p))
		bad_value(opt, val, "expected a port number");
	pv = strtoul(p, NULL, 10);
	if (pv > 65535 || (pv == 0 && !passive))
		bad_value(opt, val, passive ? "port must be 0 to 65535"
					    : "port must be 1 to 65535");
	snprintf(port, sizeof(port), "%lu", pv);
	*host_given = hl > 0;
	if (!*host_given) {
		/* The caller picks the wildcard address and its family. */
		memset(ss, 0, sizeof(*ss));
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)pv);
		*len = 0;
		return;
	}
	r = getaddrinfo(host, port, &hints, &ai);
	if (r) {
		fprintf(stderr, PROG ": bad value for --%s: '%s' (%s)\n", opt, val,
			gai_strerror(r));
		exit(2);
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_LISTEN = 256, O_TO, O_LOSS, O_DUP, O_REORDER, O_DELAY,
	       O_JITTER, O_RATE, O_QUEUE, O_SEED, O_STATS, O_HELP };
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "to", required_argument, NULL, O_TO },
		{ "loss", required_argument, NULL, O_LOSS },
		{ "dup", required_argument, NULL, O_DUP },
		{ "reorder", required_argument, NULL, O_REORDER },
		{ "delay", required_argument, NULL, O_DELAY },
		{ "jitter", required_argument, NULL, O_JITTER },
		{ "rate", required_argument, NULL, O_RATE },
		{ "queue", required_argument, NULL, O_QUEUE },
		{ "seed", required_argument, NULL, O_SEED },
		{ "stats", required_argument, NULL, O_STATS },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	bool reorder_given = false, jitter_given = false;
	double mbit;
	int c;

	*o = (struct opts){ .queue = 1000, .seed = 1 };
	/* Our own messages name the option, so getopt's are turned off. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		const char *v = optarg;
		switch (c) {
		case O_LISTEN:
			o->listen = v;
			break;
		case O_TO:
			o->to = v;
			break;
		case O_LOSS:
			o->loss = parse_pct("loss", v);
			break;
		case O_DUP:
			o->dup = parse_pct("dup", v);
			break;
		case O_REORDER:
			o->reorder = parse_pct("reorder", v);
			reorder_given = true;
			break;
		case O_DELAY:
			o->delay_us = parse_ms("delay", v);
			break;
		case O_JITTER:
			o->jitter_us = parse_ms("jitter", v);
			jitter_given = true;
			break;
		case O_RATE:
			if (!parse_double(v, 0, 100000, &mbit) || mbit <= 0)
				bad_value("rate", v, "expected megabit/s above 0, at most 100000");
			o->rate = mbit * 1e6 / 8;
			break;
		case O_QUEUE:
			o->queue = (size_t)parse_uint("queue", v, 1, QUEUE_MAX,
						      "expected datagrams from 1 to 100000");
			break;
		case O_SEED:
			o->seed = parse_uint("seed", v, 0, UINT64_MAX,
					     "expected an unsigned 64-bit integer");
			break;
		case O_STATS:
			o->stats = v;
			break;
		case O_HELP:
			usage(stdout);
			exit(0);
		case ':':
			fprintf(stderr, PROG ": option '%s' needs a value\n",
				argv[optind - 1]);
			usage(stderr);
			exit(2);
		default:
			fprintf(stderr, PROG ": unknown option '%s'\n",
				argv[optind - 1]);
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		exit(2);
	}
	if (!o->listen || !o->to) {
		fprintf(stderr, PROG ": missing %s\n",
			!o->listen ? "--listen [ADDR:]PORT" : "--to HOST:PORT");
		usage(stderr);
		exit(2);
	}
	if (!jitter_given)
		o->jitter_us = o->delay_us ? 2 * o->delay_us : 10000;
	/* Jitter on its own means every datagram is jittered, as with netem. */
	if (jitter_given && !reorder_given)
		o->reorder = 1;
	/*
	 * Two full-size Ethernet frames, or 5 ms at the configured rate on
	 * fast links, so the bucket neither starves small bursts nor lets a
	 * long idle period turn into a flood.
	 */
	o->depth = o->rate * 0.005 > 3000 ? o->rate * 0.005 : 3000;
}

/* ---- Addresses and clients ---- */

static void make_key(const struct sockaddr_storage *ss, struct akey *k)
{
	memset(k, 0, sizeof(*k));
	k->family = ss->ss_family;
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		k->port = s6->sin6_port;
		k->scope = s6->sin6_scope_id;
		memcpy(k->addr, &s6->sin6_addr, 16);
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		k->port = s4->sin_port;
		memcpy(k->addr, &s4->sin_addr, 4);
	}
}

static size_t key_hash(const struct akey *k)
{
	const uint8_t *b = (const uint8_t *)k;
	uint64_t h = 0xcbf29ce484222325u;

	for (size_t i = 0; i < sizeof(*k); i++)
		h = (h ^ b[i]) * 0x100000001b3u;
	return (size_t)(h ^ (h >> 32)) & (HASH_BUCKETS - 1);
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t n)
{
	char host[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(out, n, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(out, n, "%s:%u", host, ntohs(s4->sin_port));
	}
}

/*
 * Buffers are raised so that a burst from a fast sender waits in the
 * kernel rather than being dropped before the relay sees it; the kernel
 * caps the request at net.core.[rw]mem_max, which is fine.
 */
static void grow_buffers(int fd)
{
	int v = SOCK_BUF;

	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

static struct client *client_get(struct relay *r,
				  const struct sockaddr_storage *ss,
				  socklen_t alen)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct client *c;
	struct akey k;
	size_t h;

	make_key(ss, &k);
	h = key_hash(&k);
	for (c = r->bucket[h]; c; c = c->next)
		if (!memcmp(&c->key, &k, sizeof(k)))
			return c;
	/*
	 * Clients are never forgotten, so that a client keeps its upstream
	 * port however long it is idle; the cap keeps memory and descriptors
	 * bounded instead.
	 */
	if (r->nclients >= r->max_clients)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->src.kind = K_UPSTREAM;
	c->key = k;
	c->alen = alen;
	memcpy(&c->addr, ss, alen);
	c->fd = socket(r->to.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fprintf(stderr, PROG ": upstream socket: %s\n", strerror(errno));
		free(c);
		return NULL;
	}
	grow_buffers(c->fd);
	/*
	 * Connecting lets the kernel drop anything not from the server and
	 * report ICMP errors, and fixes the ephemeral port now.
	 */
	ev.data.ptr = &c->src;
	if (connect(c->fd, (struct sockaddr *)&r->to, r->tolen) < 0 ||
	    epoll_ctl(r->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		fprintf(stderr, PROG ": upstream socket: %s\n", strerror(errno));
		close(c->fd);
		free(c);
		return NULL;
	}
	c->next = r->bucket[h];
	r->bucket[h] = c;
	r->nclients++;
	return c;
}

/* ---- The delay heap, ordered by (due, seq) ---- */

static bool pkt_before(const struct pkt *a, const struct pkt *b)
{
	return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static bool heap_push(struct relay *r, struct pkt *p)
{
	size_t i;

	if (r->hn == r->hcap) {
		size_t ncap = r->hcap ? 2 * r->hcap : 256;
		struct pkt **v;
		if (ncap > HELD_MAX)
			return false;
		v = realloc(r->heap, ncap * sizeof(*v));
		if (!v)
			return false;
		r->heap = v;
		r->hcap = ncap;
	}
	i = r->hn++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!pkt_before(p, r->heap[parent]))
			break;
		r->heap[i] = r->heap[parent];
		i = parent;
	}
	r->heap[i] = p;
	return true;
}

static struct pkt *heap_pop(struct relay *r)
{
	struct pkt *top = r->heap[0], *last;
	size_t i = 0;

	last = r->heap[--r->hn];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= r->hn)
			break;
		if (c + 1 < r->hn && pkt_before(r->heap[c + 1], r->heap[c]))
			c++;
		if (!pkt_before(r->heap[c], last))
			break;
		r->heap[i] = r->heap[c];
		i = c;
	}
	if (r->hn)
		r->heap[i] = last;
	return top;
}

/* ---- The pipeline ---- */

static void pkt_free(struct relay *r, struct pkt *p)
{
	r->held_bytes -= p->len;
	free(p);
}

static void send_pkt(struct relay *r, struct pkt *p)
{
	struct way *w = &r->way[p->dir];
	ssize_t n;

	do {
		if (p->dir == UP)
			n = send(p->c->fd, p->data, p->len, 0);
		else
			n = sendto(r->lfd, p->data, p->len, 0,
				   (struct sockaddr *)&p->c->addr, p->c->alen);
	} while (n < 0 && errno == EINTR);
	/*
	 * A full socket buffer is a drop rather than a wait, because the
	 * relay never blocks and a real path would drop too.  An error left
	 * by an ICMP unreachable on the connected upstream socket lands here
	 * as well.
	 */
	if (n < 0)
		w->n.dropped_send++;
	else
		w->n.forwarded++;
	pkt_free(r, p);
}

/* The datagram has left the rate stage: apply the delay and the hold. */
static void depart(struct relay *r, struct pkt *p, uint64_t now)
{
	if (r->o.delay_us == 0 && p->hold == 0) {
		send_pkt(r, p);
		return;
	}
	p->due = now + r->o.delay_us + p->hold;
	if (!heap_push(r, p)) {
		r->way[p->dir].n.dropped_queue++;
		pkt_free(r, p);
	}
}

static void refill(struct relay *r, struct way *w, uint64_t now)
{
	w->tokens += (double)(now - w->refilled) * r->o.rate / 1e6;
	if (w->tokens > r->o.depth)
		w->tokens = r->o.depth;
	w->refilled = now;
}

/*
 * A datagram may go whenever the bucket is not in debt, and takes it as
 * far into debt as its size; so a datagram larger than the bucket still
 * passes, and the long-run rate is exact.
 */
static void rate_admit(struct relay *r, struct pkt *p, uint64_t now)
{
	struct way *w = &r->way[p->dir];

	if (r->o.rate <= 0) {
		depart(r, p, now);
		return;
	}
	refill(r, w, now);
	if (w->qlen == 0 && w->tokens >= 0) {
		w->tokens -= p->len;
		depart(r, p, now);
	} else if (w->qlen >= r->o.queue) {
		w->n.dropped_queue++;
		pkt_free(r, p);
	} else {
		w->q[(w->qhead + w->qlen++) % r->o.queue] = p;
	}
}

static void rate_service(struct relay *r, struct way *w, uint64_t now)
{
	if (w->qlen == 0)
		return;
	refill(r, w, now);
	while (w->qlen && w->tokens >= 0) {
		struct pkt *p = w->q[w->qhead];
		w->qhead = (w->qhead + 1) % r->o.queue;
		w->qlen--;
		w->tokens -= p->len;
		depart(r, p, now);
	}
}

/*
 * When the head of the queue may go.  The minimum gap batches several
 * datagrams per wakeup on fast links instead of one timer per datagram.
 */
static uint64_t rate_next(const struct relay *r, const struct way *w)
{
	double wait;

	if (w->qlen == 0)
		return NEVER;
	/* Rounded up, so the timer never fires just before the debt is paid. */
	wait = -w->tokens * 1e6 / r->o.rate + 1;
	if (wait < RATE_MIN_GAP_US)
		wait = RATE_MIN_GAP_US;
	return w->refilled + (uint64_t)wait;
}

/*
 * Every enabled impairment draws for every datagram, lost or not, so each
 * stream stays aligned with the arrival count alone.
 */
static void ingress(struct relay *r, enum dir d, struct client *c,
		    const uint8_t *data, size_t len, uint64_t now)
{
	struct way *w = &r->way[d];
	bool lost = false, dup = false, held = false;
	uint64_t hold = 0;

	w->n.received++;
	if (r->o.loss > 0)
		lost = rng_unit(&w->loss_rng) < r->o.loss;
	if (r->o.dup > 0)
		dup = rng_unit(&w->dup_rng) < r->o.dup;
	if (r->o.reorder > 0) {
		held = rng_unit(&w->reorder_rng) < r->o.reorder;
		hold = rng_next(&w->reorder_rng) % (r->o.jitter_us + 1);
	}
	if (lost) {
		w->n.dropped_loss++;
		return;
	}
	if (dup)
		w->n.duplicated++;
	if (held)
		w->n.reordered++;
	for (int copy = 0; copy < (dup ? 2 : 1); copy++) {
		struct pkt *p;
		if (r->held_bytes + len > HELD_BYTES_MAX ||
		    !(p = malloc(sizeof(*p) + len))) {
			w->n.dropped_queue++;
			continue;
		}
		p->seq = r->seq++;
		p->c = c;
		p->dir = d;
		p->hold = held ? hold : 0;
		p->len = (uint32_t)len;
		memcpy(p->data, data, len);
		r->held_bytes += len;
		rate_admit(r, p, now);
	}
}

/* Sends everything due: the rate queues first, since they feed the heap. */
static void service(struct relay *r, uint64_t now)
{
	for (int d = 0; d < NDIR; d++)
		rate_service(r, &r->way[d], now);
	while (r->hn && r->heap[0]->due <= now) {
		struct pkt *p = heap_pop(r);
		uint64_t late = now - p->due;
		if (late > r->late_max)
			r->late_max = late;
		r->late_sum += late;
		r->late_n++;
		send_pkt(r, p);
	}
}

static void rearm(struct relay *r)
{
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };
	uint64_t next = r->hn ? r->heap[0]->due : NEVER;

	for (int d = 0; d < NDIR; d++) {
		uint64_t t = rate_next(r, &r->way[d]);
		if (t < next)
			next = t;
	}
	if (next == r->armed)
		return;
	/* An absolute time already past fires at once, which is what we want. */
	if (next != NEVER) {
		its.it_value.tv_sec = (time_t)(next / 1000000u);
		its.it_value.tv_nsec = (long)(next % 1000000u) * 1000;
		/* Zero would disarm the timer; time zero is long past anyway. */
		if (next == 0)
			its.it_value.tv_nsec = 1;
	}
	if (timerfd_settime(r->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		fprintf(stderr, PROG ": timerfd_settime: %s\n", strerror(errno));
		exit(1);
	}
	r->armed = next;
}

/* ---- Socket events ---- */

static void on_listen(struct relay *r)
{
	for (int i = 0; i < RX_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t alen = sizeof(ss);
		struct client *c;
		ssize_t n;

		do
			n = recvfrom(r->lfd, r->buf, sizeof(r->buf), 0,
				     (struct sockaddr *)&ss, &alen);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			break;
		c = client_get(r, &ss, alen);
		if (!c) {
			r->dropped_clients++;
			continue;
		}
		ingress(r, UP, c, r->buf, (size_t)n, now_us());
	}
}

static void on_upstream(struct relay *r, struct client *c)
{
	for (int i = 0; i < RX_BATCH; i++) {
		ssize_t n;

		do
			n = recv(c->fd, r->buf, sizeof(r->buf), 0);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			/*
			 * An ICMP error (the server is not up yet, say) is
			 * reported once and consumed by this recv; the
			 * socket stays usable, so read on.
			 */
			if (errno == ECONNREFUSED || errno == EHOSTUNREACH ||
			    errno == ENETUNREACH)
				continue;
			break;
		}
		ingress(r, DOWN, c, r->buf, (size_t)n, now_us());
	}
}

/* ---- Statistics ---- */

static void print_counters(FILE *f, const struct counters *n, bool json)
{
	if (json)
		fprintf(f, "{\"received\":%" PRIu64 ",\"forwarded\":%" PRIu64
			",\"dropped_loss\":%" PRIu64 ",\"duplicated\":%" PRIu64
			",\"reordered\":%" PRIu64 ",\"dropped_queue\":%" PRIu64
			",\"dropped_send\":%" PRIu64 "}",
			n->received, n->forwarded, n->dropped_loss, n->duplicated,
			n->reordered, n->dropped_queue, n->dropped_send);
	else
		fprintf(f, "received=%" PRIu64 " forwarded=%" PRIu64
			" dropped_loss=%" PRIu64 " duplicated=%" PRIu64
			" reordered=%" PRIu64 " dropped_queue=%" PRIu64
			" dropped_send=%" PRIu64,
			n->received, n->forwarded, n->dropped_loss, n->duplicated,
			n->reordered, n->dropped_queue, n->dropped_send);
}

/*
 * The file is written beside its final name and renamed over it, so a
 * test reading it mid-run never sees half a line.
 */
static void write_stats(struct relay *r)
{
	FILE *f;
	bool ok;

	if (!r->o.stats)
		return;
	f = fopen(r->stats_tmp, "w");
	if (!f) {
		ok = false;
	} else {
		fprintf(f, "{");
		for (int d = 0; d < NDIR; d++) {
			fprintf(f, "\"%s\":", dir_name[d]);
			print_counters(f, &r->way[d].n, true);
			fprintf(f, ",");
		}
		fprintf(f, "\"clients\":%zu,\"dropped_clients\":%" PRIu64
			",\"held\":%zu,\"timer_late_us_max\":%" PRIu64
			",\"timer_late_us_avg\":%.1f,\"uptime_ms\":%" PRIu64 "}\n",
			r->nclients, r->dropped_clients,
			r->hn + r->way[UP].qlen + r->way[DOWN].qlen, r->late_max,
			r->late_n ? (double)r->late_sum / (double)r->late_n : 0.0,
			(now_us() - r->started) / 1000);
		ok = !ferror(f);
		ok = (fclose(f) == 0) && ok;
		ok = ok && rename(r->stats_tmp, r->o.stats) == 0;
	}
	/* Once is enough: a broken path would otherwise repeat every second. */
	if (!ok && !r->stats_warned) {
		fprintf(stderr, PROG ": cannot write %s: %s\n", r->o.stats,
			strerror(errno));
		r->stats_warned = true;
	}
}

static void print_summary(const struct relay *r)
{
	fprintf(stderr, PROG ":");
	for (int d = 0; d < NDIR; d++) {
		fprintf(stderr, " %s: ", dir_name[d]);
		print_counters(stderr, &r->way[d].n, false);
		fprintf(stderr, ";");
	}
	fprintf(stderr, " clients=%zu dropped_clients=%" PRIu64
		" timer_late_us max=%" PRIu64 " avg=%.1f\n",
		r->nclients, r->dropped_clients, r->late_max,
		r->late_n ? (double)r->late_sum / (double)r->late_n : 0.0);
}

/* ---- Setup and teardown ---- */

static __attribute__((noreturn)) void die_errno(const char *what)
{
	fprintf(stderr, PROG ": %s: %s\n", what, strerror(errno));
	exit(1);
}

static void add_src(struct relay *r, int fd, struct src *s, enum kind k)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };

	s->kind = k;
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		die_errno("epoll_ctl");
}

/*
 * Binds the listening socket.  Without an address it takes the IPv6
 * wildcard with IPV6_V6ONLY off, so IPv4 and IPv6 clients both reach it,
 * and falls back to IPv4 where IPv6 is unavailable.
 */
static int open_listener(const char *arg, struct sockaddr_storage *ss,
			 socklen_t len, bool host_given)
{
	char name[INET6_ADDRSTRLEN + 8];
	int fd = -1, off = 0;

	if (!host_given) {
		uint16_t port = ((struct sockaddr_in6 *)ss)->sin6_port;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		memset(ss, 0, sizeof(*ss));
		fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
			s6->sin6_family = AF_INET6;
			s6->sin6_addr = in6addr_any;
			s6->sin6_port = port;
			len = sizeof(*s6);
		} else {
			s4->sin_family = AF_INET;
			s4->sin_addr.s_addr = htonl(INADDR_ANY);
			s4->sin_port = port;
			len = sizeof(*s4);
		}
	}
	if (fd < 0)
		fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die_errno("socket");
	grow_buffers(fd);
	if (bind(fd, (struct sockaddr *)ss, len) < 0) {
		fprintf(stderr, PROG ": cannot bind --listen %s: %s\n", arg,
			strerror(errno));
		exit(1);
	}
	len = sizeof(*ss);
	if (getsockname(fd, (struct sockaddr *)ss, &len) < 0)
		die_errno("getsockname");
	format_addr(ss, name, sizeof(name));
	fprintf(stderr, PROG ": listening on %s\n", name);
	return fd;
}

/*
 * Each client holds a descriptor, so the soft limit is raised to the hard
 * one and the client cap derived from it, leaving room for the rest.
 */
static size_t client_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1000;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max;
		if (want == RLIM_INFINITY || want > 1u << 20)
			want = 1u << 20;
		if (want > rl.rlim_cur) {
			rl.rlim_cur = want;
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				getrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (rl.rlim_cur < 64)
		return 16;
	return rl.rlim_cur - 32 < CLIENTS_MAX ? (size_t)(rl.rlim_cur - 32)
					       : CLIENTS_MAX;
}

static void setup(struct relay *r, int argc, char **argv)
{
	struct itimerspec sec = { { 1, 0 }, { 1, 0 } };
	struct sockaddr_storage lss;
	socklen_t llen;
	bool to_host, listen_host;
	sigset_t mask;
	uint64_t now;

	parse_args(argc, argv, &r->o);
	parse_addr("to", r->o.to, false, false, &r->to, &r->tolen, &to_host);
	parse_addr("listen", r->o.listen, true, true, &lss, &llen, &listen_host);
	r->lfd = r->tfd = r->sfd = r->stfd = -1;
	r->armed = NEVER;
	r->max_clients = client_limit();
	if (r->o.stats) {
		size_t n = strlen(r->o.stats) + 5;
		r->stats_tmp = malloc(n);
		if (!r->stats_tmp)
			die_errno("malloc");
		snprintf(r->stats_tmp, n, "%s.tmp", r->o.stats);
	}

	now = r->started = now_us();
	for (int d = 0; d < NDIR; d++) {
		struct way *w = &r->way[d];
		rng_seed(&w->loss_rng, r->o.seed, (uint64_t)d * 3 + 0);
		rng_seed(&w->dup_rng, r->o.seed, (uint64_t)d * 3 + 1);
		rng_seed(&w->reorder_rng, r->o.seed, (uint64_t)d * 3 + 2);
		w->tokens = r->o.depth;
		w->refilled = now;
		if (r->o.rate > 0) {
			w->q = calloc(r->o.queue, sizeof(*w->q));
			if (!w->q)
				die_errno("calloc");
		}
	}

	/*
	 * The default timer slack of 50 us would be the largest error in a
	 * short delay; a process may ask for less.
	 */
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);

	/*
	 * Signals arrive through a descriptor so the loop can exit cleanly.
	 * A shell starts background jobs with SIGINT ignored, and an ignored
	 * signal is discarded rather than queued, so the default is restored
	 * before blocking.
	 */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		die_errno("sigprocmask");
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (r->epfd < 0)
		die_errno("epoll_create1");
	r->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (r->sfd < 0)
		die_errno("signalfd");
	add_src(r, r->sfd, &r->ssrc, K_SIGNAL);
	r->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (r->tfd < 0)
		die_errno("timerfd_create");
	add_src(r, r->tfd, &r->tsrc, K_TIMER);
	if (r->o.stats) {
		r->stfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (r->stfd < 0 || timerfd_settime(r->stfd, 0, &sec, NULL) < 0)
			die_errno("stats timer");
		add_src(r, r->stfd, &r->stsrc, K_STATS);
		write_stats(r);
	}
	/* Last, so the "listening" line means everything else is ready. */
	r->lfd = open_listener(r->o.listen, &lss, llen, listen_host);
	add_src(r, r->lfd, &r->lsrc, K_LISTEN);
}

static void teardown(struct relay *r)
{
	for (size_t i = 0; i < r->hn; i++)
		free(r->heap[i]);
	free(r->heap);
	for (int d = 0; d < NDIR; d++) {
		struct way *w = &r->way[d];
		for (size_t i = 0; i < w->qlen; i++)
			free(w->q[(w->qhead + i) % r->o.queue]);
		free(w->q);
	}
	for (size_t h = 0; h < HASH_BUCKETS; h++) {
		struct client *c = r->bucket[h], *next;
		for (; c; c = next) {
			next = c->next;
			close(c->fd);
			free(c);
		}
	}
	free(r->stats_tmp);
	close(r->lfd);
	close(r->tfd);
	close(r->sfd);
	if (r->stfd >= 0)
		close(r->stfd);
	close(r->epfd);
}

/* Empties a timerfd; a spurious wakeup just finds nothing to read. */
static void drain_timer(int fd)
{
	uint64_t ticks;
	ssize_t n;

	do
		n = read(fd, &ticks, sizeof(ticks));
	while (n < 0 && errno == EINTR);
}

int main(int argc, char **argv)
{
	/* The relay is large (a datagram buffer, the hash table), so heap. */
	struct relay *r = calloc(1, sizeof(*r));
	struct epoll_event evs[MAX_EVENTS];
	bool stop = false;

	if (!r)
		die_errno("calloc");
	setup(r, argc, argv);
	while (!stop) {
		int n = epoll_wait(r->epfd, evs, MAX_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die_errno("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			struct src *s = evs[i].data.ptr;
			struct signalfd_siginfo si;
			switch (s->kind) {
			case K_LISTEN:
				on_listen(r);
				break;
			case K_UPSTREAM:
				on_upstream(r, (struct client *)s);
				break;
			case K_TIMER:
				drain_timer(r->tfd);
				break;
			case K_SIGNAL:
				if (read(r->sfd, &si, sizeof(si)) == sizeof(si))
					stop = true;
				break;
			case K_STATS:
				drain_timer(r->stfd);
				write_stats(r);
				break;
			}
		}
		service(r, now_us());
		rearm(r);
	}
	write_stats(r);
	print_summary(r);
	teardown(r);
	free(r);
	return 0;
}
