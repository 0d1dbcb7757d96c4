/*
 * A simulated network for the sans-I/O core: endpoints exchange datagrams
 * through a queue with delay, seeded loss, duplication and reordering, under
 * a fake clock that jumps straight to the next delivery or timer.  Tests can
 * also drop chosen datagrams with a filter and read back a trace of every
 * datagram sent.
 */
#ifndef RUDP_TESTS_SIMLINK_H
#define RUDP_TESTS_SIMLINK_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#include "endpoint.h"

#define SIM_NODES 3
#define SIM_TRACE 4096
#define SIM_STATES 64

struct sim;

/* Returns true to drop the datagram h that node `from` sends. */
typedef bool (*sim_filter)(struct sim *s, int from, const struct rudp__hdr *h);

struct sim_trace {
	rudp__usec at;
	int from, to;
	struct rudp__hdr h;
	bool dropped;
};

struct sim_pkt;

/*
 * A simulated program on one end of a connection: it writes `to_send`
 * bytes of a seeded pattern, reads whatever arrives (at most `read_limit`
 * bytes per step if non-zero: a slow reader) and checks every byte.
 */
struct sim_app {
	struct rudp__conn *c;
	uint64_t to_send, sent;
	uint64_t received;
	uint32_t tx_seed, rx_seed;   /* pattern of each direction */
	size_t read_limit;           /* bytes per read, 0 for all */
	rudp__usec read_every;       /* with read_limit: one read this often */
	rudp__usec next_read;
	bool stop_reading;
	bool shut_when_done;         /* shutdown(SHUT_WR) after the last byte */
	bool eof;                    /* saw the peer's end of stream */
	bool corrupt;                /* a byte differed from the pattern */
	/*
	 * With sim_deliver as its node's deliver hook: the most it takes of
	 * each offer (0 takes nothing), and how many bytes it took so.
	 */
	size_t direct_max;
	uint64_t direct;
	struct sim_app *next;
};

/* Byte i of the stream with seed `seed`. */
uint8_t sim_pattern(uint32_t seed, uint64_t i);

/* One state change a node's event hook saw, and when. */
struct sim_state_change {
	rudp__usec at;
	const struct rudp__conn *c;
	enum rudp__state state;
};

struct sim_node {
	struct rudp__ep ep;
	struct sockaddr_in addr;
	struct sim *sim;
	unsigned nevents;
	unsigned accepts;    /* RUDP__EV_ACCEPT reports */
	unsigned closed;     /* connections that reached CLOSED */
	int last_err;        /* err of the last connection that closed */
	/* The latest state changes of every connection, oldest overwritten. */
	struct sim_state_change states[SIM_STATES];
	unsigned nstates;    /* changes ever recorded */
};

struct sim {
	rudp__usec now;
	uint64_t rng;
	struct sim_node node[SIM_NODES];
	/* Impairments, applied per datagram in each direction. */
	unsigned loss_pct, dup_pct, reorder_pct;
	rudp__usec delay;     /* one-way */
	rudp__usec jitter;    /* extra delay, uniform, for reordered datagrams */
	sim_filter filter;
	bool strip_tsecr;     /* a peer that echoes no timestamps */
	void *arg;            /* for the filter's use */
	/* Overrides the next random draws of the endpoints when non-zero. */
	uint32_t force_rand;
	struct sim_pkt *q;    /* in flight, by delivery time */
	struct sim_app *apps; /* pumped after every step */
	uint64_t rate_bps;    /* link rate per direction, 0 for unlimited */
	rudp__usec busy_until[SIM_NODES]; /* when each sender's link frees */
	/*
	 * With rate_bps: the bottleneck's buffer, as the longest a datagram
	 * may wait for the link; one that would wait longer is dropped
	 * (drop-tail).  0 for an unbounded buffer.
	 */
	rudp__usec queue_max;
	uint64_t queue_drops;
	uint64_t pktno;
	uint64_t wrapped;     /* datagrams whose payload wrapped a send ring */
	struct sim_trace trace[SIM_TRACE];
	size_t ntrace;
};

void sim_init(struct sim *s, uint64_t seed, const struct rudp__cfg *cfg);
void sim_free(struct sim *s);

/* Uniform random number from the simulation's seeded generator. */
uint32_t sim_rand(struct sim *s);

/*
 * Makes the datagram rudp__ep_send handed out in pieces one buffer, as the
 * kernel would: the payload slices copied in after the hlen header bytes
 * at buf (which has room for a whole datagram).  Returns its length.
 */
size_t sim_flatten(uint8_t *buf, size_t hlen, const struct rudp__slices *pay);

/* Collects what every endpoint wants to send and puts it on the wire. */
void sim_flush(struct sim *s);

/*
 * Advances the clock to the next delivery or timer, if that is no later than
 * `limit`, and processes it.  Returns false when nothing happens by limit.
 */
bool sim_step(struct sim *s, rudp__usec limit);

/* Steps until done(s) holds or the clock would pass limit. */
bool sim_run(struct sim *s, rudp__usec limit, bool (*done)(struct sim *s));

/* Injects a raw datagram to node `to` as if from `from`'s address. */
void sim_inject(struct sim *s, int from, int to, const uint8_t *buf,
		size_t len);

/* Starts a connection from node a to node b; returns the new connection. */
struct rudp__conn *sim_connect(struct sim *s, int a, int b);

/* Starts connection c, made on some node's endpoint and set up, to node b. */
void sim_connect_conn(struct sim *s, struct rudp__conn *c, int b);

/* Makes node n listen with the given backlog. */
struct rudp__conn *sim_listen(struct sim *s, int n, unsigned backlog);

/* Attaches app to the simulation; it is pumped after every step. */
void sim_app_add(struct sim *s, struct sim_app *a);

/*
 * A deliver hook (struct rudp__ep_ops) for a node whose apps take bytes as
 * they arrive: the app on connection c takes up to its direct_max.
 */
size_t sim_deliver(void *ud, struct rudp__conn *c, const uint8_t *p,
		   size_t n);

/* Moves data between app and its connection as the program would. */
void sim_app_pump(struct sim *s, struct sim_app *a);

/* The times at which node `from` sent datagrams with exactly `flags`. */
size_t sim_times(const struct sim *s, int from, uint8_t flags,
		 rudp__usec *out, size_t max);

/*
 * The states connection c of node n entered, oldest first, among the last
 * SIM_STATES changes the node recorded; *at (if not NULL) gets their times.
 */
size_t sim_states(const struct sim *s, int n, const struct rudp__conn *c,
		  enum rudp__state *out, rudp__usec *at, size_t max);

#endif
