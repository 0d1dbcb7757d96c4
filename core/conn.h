/*
 * One rudp connection's state machine, sans-I/O: it consumes decoded
 * datagrams and the current time, and produces datagrams on request plus
 * the next time it must be woken.  It never touches a socket or a clock.
 */
#ifndef RUDP_CORE_CONN_H
#define RUDP_CORE_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "cc.h"
#include "pacer.h"
#include "rcvbuf.h"
#include "rtt.h"
#include "rtx.h"
#include "sndbuf.h"
#include "timer.h"
#include "wire.h"

struct rudp__ep;

/*
 * Every transition is checked against the table in conn.c; switches over
 * this enum have no default so the compiler points at each one to update
 * when a state is added.
 */
enum rudp__state {
	RUDP__CLOSED,
	RUDP__LISTEN,
	RUDP__SYN_SENT,
	RUDP__SYN_RCVD,
	RUDP__ESTABLISHED,
	RUDP__FIN_WAIT_1,
	RUDP__FIN_WAIT_2,
	RUDP__CLOSE_WAIT,
	RUDP__CLOSING,
	RUDP__LAST_ACK,
	RUDP__TIME_WAIT,
};
#define RUDP__NSTATES 11

const char *rudp__state_name(enum rudp__state s);
bool rudp__state_legal(enum rudp__state from, enum rudp__state to);

/* Tunables, fixed when a connection is created. */
struct rudp__cfg {
	rudp__usec rto_initial; /* before any RTT sample: 1 s, RFC 6298 */
	rudp__usec rto_min;
	rudp__usec rto_max;
	unsigned syn_retries;    /* SYN retransmissions before ETIMEDOUT */
	unsigned synack_retries; /* SYNACK retransmissions before giving up */
	unsigned data_retries;   /* timeouts without any ack before ETIMEDOUT */
	uint32_t rcv_wnd;        /* receive buffer (the most we advertise) */
	uint32_t snd_buf;        /* send buffer, bytes */
	uint32_t mss;            /* payload bytes per datagram */
	rudp__usec delack;       /* longest an ack may be delayed */
	rudp__usec time_wait;    /* TIME_WAIT duration */
	rudp__usec fin_timeout;  /* longest an orphan waits in FIN_WAIT_2 */
	rudp__usec ka_idle, ka_intvl; /* keepalive: first probe, then every */
	unsigned ka_cnt;         /* unanswered probes before ETIMEDOUT */
	const struct rudp__cc_ops *cc;
};

void rudp__cfg_default(struct rudp__cfg *cfg);

/* Chains a connection sits on in its endpoint's lookup tables. */
enum rudp__cid_kind { RUDP__BY_LOCAL, RUDP__BY_PEER, RUDP__NKINDS };

struct rudp__conn {
	struct rudp__ep *ep;
	enum rudp__state state;
	int err; /* why it closed: positive errno, 0 for a clean end */

	uint32_t local_cid;
	uint32_t peer_cid;
	struct sockaddr_storage peer;
	socklen_t peerlen;

	/* Send sequence space (RFC 793 names). */
	uint32_t iss, snd_una, snd_nxt, snd_wnd;
	/* Receive sequence space; rcv_nxt counts the peer's FIN, rb does not. */
	uint32_t irs, rcv_nxt, rcv_wnd;
	uint32_t ts_recent; /* last tsval from the peer, echoed as tsecr */

	/* The byte stream. */
	struct rudp__sndbuf sb; /* bytes from snd_una (once past the SYN) */
	struct rudp__rcvbuf rb;
	uint32_t mss;
	struct rudp__cc cc;
	uint32_t recover;     /* snd_nxt when recovery began (RFC 6582) */
	bool in_recovery;
	/*
	 * Undo (as Linux's, with timestamps instead of DSACK): the
	 * controller as it was before the last recovery, kept while every
	 * retransmission since may yet prove unneeded; undo_retrans counts
	 * those not yet shown to be.
	 */
	bool undo_valid;
	unsigned undo_retrans;
	struct rudp__cc cc_prior;
	unsigned dupacks;     /* duplicate acks without SACK news */
	rudp__usec rack_at;   /* when RACK may deem the next segment lost */
	rudp__usec pto_at;    /* tail loss probe timer (RACK-TLP) */
	bool probe;           /* one segment may go beyond cwnd: the probe */
	bool tlp_out;         /* a probe is out: no other until an ack */
	struct rudp__pacer pacer;
	bool pace_wait;       /* data is ready but the pacer says not yet */
	bool nodelay;         /* TCP_NODELAY: short segments go at once */
	uint32_t snd_sml;     /* end of the last short segment sent (Nagle) */
	bool fin_queued;      /* the program is done writing: FIN after data */
	bool fin_sent;
	uint32_t fin_seq;     /* sequence number of our FIN */
	bool fin_rcvd;        /* the peer's FIN is in, in order */
	bool peer_fin_known;  /* the peer's FIN arrived, maybe early */
	uint32_t peer_fin_seq;
	bool app_closed;      /* the program let go: no one reads any more */
	unsigned segs_unacked;/* full segments received since our last ack */
	unsigned quickacks;   /* segments acked at once so far (slow start) */
	bool pingpong;        /* the program answers what it reads: acks wait
				 to ride on the answer (Linux's pingpong mode) */
	rudp__usec delack_at; /* when a delayed ack is due */
	rudp__usec tw_at;     /* TIME_WAIT / FIN_WAIT_2 orphan deadline */
	rudp__usec last_rx;   /* last datagram from the peer */
	rudp__usec last_data; /* last new in-order byte from the peer */
	bool keepalive;
	rudp__usec ka_idle, ka_intvl; /* SO_KEEPALIVE timing (TCP_KEEP*) */
	unsigned ka_cnt;
	unsigned ka_probes;
	rudp__usec ka_at;
	bool ka_due;          /* a keepalive probe is to be sent */
	uint32_t last_wnd_sent; /* window in our last ack, to spot openings */

	struct rudp__rtx rtx;
	struct rudp__rtt rtt;
	unsigned backoff;   /* consecutive retransmission timeouts */
	uint32_t total_retrans; /* segments sent again, for TCP_INFO */
	rudp__usec rto_at;  /* when the oldest outstanding segment times out */
	unsigned retries;   /* how many timeouts are tolerated in this state */
	unsigned rto_fails; /* consecutive timeouts with no ack at all */
	bool syn_timedout;  /* the handshake needed a retransmission timeout */
	bool ack_pending;   /* a bare ACK is owed to the peer */
	bool rst_pending;   /* an RST is owed to the peer (then we are gone) */

	/* Listener side: children and the accept queue. */
	struct rudp__conn *listener; /* for a child, until it is accepted */
	unsigned backlog;
	unsigned npending;           /* children in SYN_RCVD */
	unsigned nqueued;            /* established, not yet accepted */
	struct rudp__conn *aq_head, *aq_tail, *aq_next;

	/* Endpoint bookkeeping. */
	struct rudp__conn *all_prev, *all_next; /* every conn of the endpoint */
	struct rudp__timer timer;
	struct rudp__conn *link[RUDP__NKINDS];
	bool in_table[RUDP__NKINDS];
	struct rudp__conn *tx_next;
	bool in_txq;
	bool user_owned; /* the API holds a handle; never freed under it */
	void *user;
};

/*
 * Moves c to state `to` if the transition table allows it, reports the
 * change to the endpoint's event hook, and returns 0; otherwise returns
 * -EINVAL and leaves c unchanged.
 */
int rudp__conn_set_state(struct rudp__conn *c, enum rudp__state to);

/* Starts an active open: queues the SYN.  c must be CLOSED. */
int rudp__conn_connect(struct rudp__conn *c, rudp__usec now);

/* Makes c a listener with the given backlog.  c must be CLOSED or LISTEN. */
int rudp__conn_listen(struct rudp__conn *c, unsigned backlog);

/*
 * A decoded datagram from `from` addressed to c: matched by connection id,
 * or a SYN handed to the listener.
 */
void rudp__conn_input(struct rudp__conn *c, const struct sockaddr *from,
		      socklen_t fromlen, const struct rudp__hdr *h,
		      const uint8_t *payload, rudp__usec now);

/* Runs whatever timers are due at now. */
void rudp__conn_timeout(struct rudp__conn *c, rudp__usec now);

/* The earliest time c needs rudp__conn_timeout, or RUDP__NEVER. */
rudp__usec rudp__conn_deadline(const struct rudp__conn *c);

/* Whether rudp__conn_write would produce a datagram now. */
bool rudp__conn_wants_tx(const struct rudp__conn *c);

/*
 * Writes the header (with SACK blocks) of the next datagram c wants to send
 * into buf and points pay at its payload, in place in the send ring; the
 * datagram is the two together.  Returns the header's length, 0 when there
 * is nothing to send, or a negative errno.
 */
ssize_t rudp__conn_write(struct rudp__conn *c, uint8_t *buf, size_t cap,
			 struct rudp__slices *pay, rudp__usec now);

/*
 * Ends c at once with positive errno err, telling a synchronized peer with
 * an RST.  A listener also aborts every child it still holds.
 */
void rudp__conn_abort(struct rudp__conn *c, int err);

/* The peer's network told us it is unreachable (ICMP). */
void rudp__conn_unreachable(struct rudp__conn *c, int err);

/*
 * The byte stream, for the owner of the connection.  Sending: reserve a
 * contiguous run of the send buffer, fill it, commit what was filled.
 * Receiving: peek at the in-order bytes, consume what the program took.
 */
size_t rudp__conn_send_reserve(struct rudp__conn *c, uint8_t **p);
void rudp__conn_send_commit(struct rudp__conn *c, size_t n);
size_t rudp__conn_recv_peek(const struct rudp__conn *c, const uint8_t **p);
void rudp__conn_recv_consume(struct rudp__conn *c, size_t n);

/* The peer has finished sending and the program has every byte of it. */
bool rudp__conn_recv_eof(const struct rudp__conn *c);

/* The program is done writing: send FIN after the data (shutdown/close). */
void rudp__conn_shutdown_write(struct rudp__conn *c);

/* Whether the connection can carry data from the program. */
bool rudp__conn_can_send(const struct rudp__conn *c);

/* Removes and returns the oldest connection on listener l's accept queue. */
struct rudp__conn *rudp__conn_accept(struct rudp__conn *l);

#endif
