/*
 * An endpoint is everything behind one UDP socket, sans-I/O: an optional
 * listener, the connections it demultiplexes by connection id, their timers,
 * the queue of connections with something to send, and the stateless resets
 * owed to strangers.  The event loop feeds it datagrams and time; tests feed
 * it a simulated link.
 */
#ifndef RUDP_CORE_ENDPOINT_H
#define RUDP_CORE_ENDPOINT_H

#include "cidtab.h"
#include "conn.h"

enum rudp__event {
	RUDP__EV_STATE,    /* c changed state (c->err says why if CLOSED) */
	RUDP__EV_ACCEPT,   /* listener c has a new connection to accept */
	RUDP__EV_READABLE, /* new in-order bytes, or the peer's FIN */
	RUDP__EV_WRITABLE, /* acked bytes freed room in the send buffer */
};

struct rudp__ep_ops {
	void *ud;
	/* Uniformly random; the core never makes a system call for it. */
	uint32_t (*rand32)(void *ud);
	/* Called synchronously from inside the rudp__ep_* call that caused it. */
	void (*on_event)(void *ud, struct rudp__conn *c, enum rudp__event ev);
	/*
	 * Optional: connections the owner has taken off listener l's accept
	 * queue that still wait for the program, so the backlog counts them.
	 */
	unsigned (*backlog_extra)(void *ud, struct rudp__conn *l);
	/*
	 * Optional: the payload size for a connection to peer (from the
	 * route MTU); the configured mss when absent.
	 */
	uint32_t (*mss)(void *ud, const struct sockaddr *peer, socklen_t len);
	/*
	 * Optional: offers n in-order bytes of c to its program before they
	 * would be stored, saving the copy into the reorder buffer and back
	 * out.  Returns how many the program took (0 to n); the rest is
	 * stored as without the hook.  Called synchronously, only while no
	 * stored byte waits ahead of them, so the order holds.  Bytes the
	 * program will never read may be taken and dropped.
	 */
	size_t (*deliver)(void *ud, struct rudp__conn *c, const uint8_t *p,
			  size_t n);
};

struct rudp__ep_stats {
	uint64_t dgrams_in, dgrams_out;
	uint64_t malformed[RUDP__WIRE_NERR];
	uint64_t no_conn;
	uint64_t retransmits;
	uint64_t fast_retransmits; /* losses found by SACK or duplicate acks */
	uint64_t timeouts;         /* retransmission timer expiries */
	uint64_t undos;            /* recoveries undone: reordering, not loss */
	uint64_t data_in, data_out; /* payload bytes, first transmissions */
	uint64_t dup_data;         /* received payload already held */
	uint64_t backlog_drops;
	uint64_t resets_in, resets_out;
	uint64_t reset_drops; /* stateless resets not sent: queue full */
};

/* A reply owed to a datagram that matched no connection. */
struct rudp__reset {
	struct rudp__hdr hdr;
	struct sockaddr_storage to;
	socklen_t tolen;
};

#define RUDP__RESETQ_LEN 32

struct rudp__ep {
	struct rudp__cfg cfg;
	struct rudp__ep_ops ops;
	struct rudp__conn *listener;
	struct rudp__conn *conns; /* all of them, for whole-endpoint events */
	struct rudp__cidtab tab;
	struct rudp__heap timers;
	struct rudp__conn *txq_head, *txq_tail;
	struct rudp__reset *resets; /* RUDP__RESETQ_LEN, allocated on first use */
	unsigned nresets;
	size_t nconns;
	struct rudp__ep_stats stats;
};

int rudp__ep_init(struct rudp__ep *ep, const struct rudp__cfg *cfg,
		  const struct rudp__ep_ops *ops);
/* Frees every connection, whoever owns it. */
void rudp__ep_free(struct rudp__ep *ep);

/* A new CLOSED connection with a fresh connection id, or NULL. */
struct rudp__conn *rudp__ep_conn_new(struct rudp__ep *ep);

/* Whether two addresses name the same host and port (family, port, address). */
bool rudp__addr_same(const struct sockaddr_storage *a, socklen_t alen,
		     const struct sockaddr *b, socklen_t blen);

/*
 * Owes `h`, which arrived from `from` and matched no usable connection, a
 * reset (never in answer to a reset).
 */
void rudp__ep_reply_rst(struct rudp__ep *ep, const struct sockaddr *from,
			socklen_t fromlen, const struct rudp__hdr *h);

/* Reports ev on c to the endpoint's owner. */
static inline void rudp__ep_event(struct rudp__ep *ep, struct rudp__conn *c,
				  enum rudp__event ev)
{
	if (ep->ops.on_event)
		ep->ops.on_event(ep->ops.ud, c, ev);
}

/* Handles one datagram that arrived from `from`. */
void rudp__ep_recv(struct rudp__ep *ep, const struct sockaddr *from,
		   socklen_t fromlen, const uint8_t *buf, size_t len,
		   rudp__usec now);

/*
 * The next datagram to send: its header goes into buf (RUDP__MAX_HDR bytes
 * always suffice), its payload is left where it lies in the connection's
 * send ring and pay points at it, and its destination goes into *to.  The
 * payload stays valid until the endpoint next takes in a datagram or one of
 * its connections ends (only an ack or the end of a connection releases
 * ring bytes), so a caller may collect a batch and hand it to the kernel in
 * one call.  Returns the header's length, 0 when nothing is left, or a
 * negative errno.
 */
ssize_t rudp__ep_send(struct rudp__ep *ep, uint8_t *buf, size_t cap,
		      struct rudp__slices *pay, struct sockaddr_storage *to,
		      socklen_t *tolen, rudp__usec now);

static inline rudp__usec rudp__ep_deadline(const struct rudp__ep *ep)
{
	return rudp__heap_deadline(&ep->timers);
}

/* Runs every connection timer due at now. */
void rudp__ep_timeout(struct rudp__ep *ep, rudp__usec now);

/*
 * Brings the endpoint's view of c up to date after anything changed it:
 * its timer, its place in the send queue, and freeing it once it is closed,
 * drained and owned by nobody.  Every entry point calls it; the API layer
 * calls it after its own changes (connect, listen, release).
 */
void rudp__ep_settle(struct rudp__ep *ep, struct rudp__conn *c);

/*
 * The API lets go of c.  If it queued a FIN and marked the program gone
 * (app_closed), c finishes sending and closing on its own; otherwise a
 * live connection is aborted.  Either way it is reaped once CLOSED.
 */
void rudp__ep_release(struct rudp__ep *ep, struct rudp__conn *c);

/*
 * The network reported a datagram of connection `cid` undeliverable with
 * err (ECONNREFUSED for a port unreachable); cid 0 for a connected
 * socket's every connection (it has one peer).  The id comes from the
 * datagram the ICMP error quotes, not from the address: a port freed by
 * one peer may already belong to a new one.
 */
void rudp__ep_unreachable(struct rudp__ep *ep, uint32_t cid, int err);

/* Whether anything is left that needs this endpoint's socket. */
static inline bool rudp__ep_idle(const struct rudp__ep *ep)
{
	return ep->nconns == 0 && ep->nresets == 0;
}

#endif
