#include "conn.h"

#include <errno.h>
#include <string.h>

#include "endpoint.h"
#include "log.h"

/* RFC 6675's DupThresh: sacked segments above a hole that make it a loss. */
#define DUPTHRESH 3
/* Data segments acked at once at the start of a connection. */
#define QUICKACKS 16

/*
 * The legal transitions (RFC 793's diagram, without simultaneous open).
 * Anything not listed is a bug in the caller, refused here.
 */
static const bool legal[RUDP__NSTATES][RUDP__NSTATES] = {
	[RUDP__CLOSED] = {
		[RUDP__LISTEN] = true,    /* listen() */
		[RUDP__SYN_SENT] = true,  /* connect() */
		[RUDP__SYN_RCVD] = true,  /* child created by a listener */
	},
	[RUDP__LISTEN] = {
		[RUDP__CLOSED] = true,    /* close() */
	},
	[RUDP__SYN_SENT] = {
		[RUDP__ESTABLISHED] = true, /* SYNACK acknowledging our SYN */
		[RUDP__CLOSED] = true,      /* RST, ICMP, timeout, close() */
	},
	[RUDP__SYN_RCVD] = {
		[RUDP__ESTABLISHED] = true, /* ACK of our SYNACK */
		[RUDP__CLOSED] = true,      /* RST, timeout, listener closed */
	},
	[RUDP__ESTABLISHED] = {
		[RUDP__FIN_WAIT_1] = true,  /* close() or shutdown(SHUT_WR) */
		[RUDP__CLOSE_WAIT] = true,  /* the peer's FIN */
		[RUDP__CLOSED] = true,      /* RST, timeout, abort */
	},
	[RUDP__FIN_WAIT_1] = {
		[RUDP__FIN_WAIT_2] = true,  /* our FIN acknowledged */
		[RUDP__CLOSING] = true,     /* the peer's FIN, ours unacked */
		[RUDP__TIME_WAIT] = true,   /* the peer's FIN acking ours */
		[RUDP__CLOSED] = true,      /* RST, timeout, abort */
	},
	[RUDP__FIN_WAIT_2] = {
		[RUDP__TIME_WAIT] = true,   /* the peer's FIN */
		[RUDP__CLOSED] = true,      /* RST, orphan timeout, abort */
	},
	[RUDP__CLOSE_WAIT] = {
		[RUDP__LAST_ACK] = true,    /* close() or shutdown(SHUT_WR) */
		[RUDP__CLOSED] = true,      /* RST, timeout, abort */
	},
	[RUDP__CLOSING] = {
		[RUDP__TIME_WAIT] = true,   /* our FIN acknowledged */
		[RUDP__CLOSED] = true,      /* RST, timeout, abort */
	},
	[RUDP__LAST_ACK] = {
		[RUDP__CLOSED] = true,      /* our FIN acknowledged, RST, timeout */
	},
	[RUDP__TIME_WAIT] = {
		[RUDP__CLOSED] = true,      /* the timer */
	},
};

const char *rudp__state_name(enum rudp__state s)
{
	switch (s) {
	case RUDP__CLOSED: return "CLOSED";
	case RUDP__LISTEN: return "LISTEN";
	case RUDP__SYN_SENT: return "SYN_SENT";
	case RUDP__SYN_RCVD: return "SYN_RCVD";
	case RUDP__ESTABLISHED: return "ESTABLISHED";
	case RUDP__FIN_WAIT_1: return "FIN_WAIT_1";
	case RUDP__FIN_WAIT_2: return "FIN_WAIT_2";
	case RUDP__CLOSE_WAIT: return "CLOSE_WAIT";
	case RUDP__CLOSING: return "CLOSING";
	case RUDP__LAST_ACK: return "LAST_ACK";
	case RUDP__TIME_WAIT: return "TIME_WAIT";
	}
	return "?";
}

bool rudp__state_legal(enum rudp__state from, enum rudp__state to)
{
	if ((unsigned)from >= RUDP__NSTATES || (unsigned)to >= RUDP__NSTATES)
		return false;
	return legal[from][to];
}

/* States in which both sides know each other's sequence numbers. */
static bool synchronized(enum rudp__state s)
{
	switch (s) {
	case RUDP__CLOSED:
	case RUDP__LISTEN:
	case RUDP__SYN_SENT:
		return false;
	case RUDP__SYN_RCVD:
	case RUDP__ESTABLISHED:
	case RUDP__FIN_WAIT_1:
	case RUDP__FIN_WAIT_2:
	case RUDP__CLOSE_WAIT:
	case RUDP__CLOSING:
	case RUDP__LAST_ACK:
	case RUDP__TIME_WAIT:
		return true;
	}
	return false;
}

void rudp__cfg_default(struct rudp__cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->rto_initial = 1 * RUDP__SEC;
	/*
	 * RFC 6298 asks for a 1 s floor; like Linux we use 200 ms, since a
	 * 1 s floor makes every loss on a fast path cost a second.
	 */
	cfg->rto_min = 200 * RUDP__MSEC;
	/* RFC 6298 (2.5) allows any cap of at least 60 s; Linux uses 120 s. */
	cfg->rto_max = 120 * RUDP__SEC;
	/* Linux's defaults: a silent peer fails connect() after ~127 s. */
	cfg->syn_retries = 6;
	cfg->synack_retries = 5;
	/*
	 * Linux's tcp_retries2 (15) means up to half an hour; a quarter of
	 * that many doublings from a 200 ms RTO still rides out minute-long
	 * outages but reports a dead peer in under two minutes.
	 */
	cfg->data_retries = 8;
	/*
	 * 2 MiB each: on loopback a 1 MiB window left the sender waiting for
	 * acks (5 of 5 interleaved iperf3 runs 5-13% slower), while 4 MiB
	 * and more lose as much again to copies from colder caches.  Both are
	 * allocated on first use, so an idle connection pays nothing for it;
	 * Linux lets TCP's buffers grow to 4 MiB (send) and 6 MiB (receive).
	 */
	cfg->rcv_wnd = 2 * 1024 * 1024;
	cfg->snd_buf = 2 * 1024 * 1024;
	/* Fits a 1280-byte IPv6 minimum MTU path; the route MTU raises it. */
	cfg->mss = 1280 - 48 - RUDP__HDR_LEN - RUDP__DATA_SACK * RUDP__SACK_LEN;
	cfg->delack = 20 * RUDP__MSEC;
	cfg->time_wait = 2 * RUDP__SEC;
	cfg->fin_timeout = 60 * RUDP__SEC;
	/* Linux's keepalive defaults: 2 h idle, 75 s apart, 9 probes. */
	cfg->ka_idle = 7200 * RUDP__SEC;
	cfg->ka_intvl = 75 * RUDP__SEC;
	cfg->ka_cnt = 9;
	cfg->cc = rudp__cc_default;
}

static void enqueue_accept(struct rudp__conn *l, struct rudp__conn *c)
{
	c->aq_next = NULL;
	if (l->aq_tail)
		l->aq_tail->aq_next = c;
	else
		l->aq_head = c;
	l->aq_tail = c;
	l->nqueued++;
}

/* Bookkeeping that goes with entering a state, before anyone hears of it. */
static void on_enter(struct rudp__conn *c, enum rudp__state from)
{
	struct rudp__conn *l = c->listener;
	const struct rudp__cfg *cfg = &c->ep->cfg;

	switch (c->state) {
	case RUDP__ESTABLISHED:
		/*
		 * RFC 6298 (5.7): a handshake that needed a timeout and gave
		 * no RTT sample starts the data phase with a 3 s RTO.
		 */
		if (c->syn_timedout && !c->rtt.has_sample &&
		    c->rtt.rto < 3 * RUDP__SEC)
			rudp__rtt_init(&c->rtt, 3 * RUDP__SEC, c->rtt.min_rto,
				       c->rtt.max_rto);
		c->retries = cfg->data_retries;
		/* The program's SO_RCVBUF, or the default (sock.c). */
		rudp__rcvbuf_init(&c->rb, c->rcv_wnd, c->rcv_nxt);
		rudp__cc_init(&c->cc, cfg->cc, c->mss);
		if (l && from == RUDP__SYN_RCVD) {
			l->npending--;
			enqueue_accept(l, c);
		}
		break;
	case RUDP__CLOSED:
		rudp__rtx_clear(&c->rtx);
		c->rto_at = c->delack_at = c->tw_at = c->ka_at = RUDP__NEVER;
		c->rack_at = c->pto_at = RUDP__NEVER;
		c->ack_pending = false;
		c->ka_due = false;
		/* Bytes no one can send any more are not kept either. */
		rudp__sndbuf_free(&c->sb);
		if (l && from == RUDP__SYN_RCVD) {
			/* A half-open child dies quietly; the listener goes on. */
			l->npending--;
			c->listener = NULL;
		}
		if (c->ep->listener == c)
			c->ep->listener = NULL;
		break;
	case RUDP__TIME_WAIT:
		c->tw_at = c->last_rx + cfg->time_wait;
		c->rto_at = RUDP__NEVER;
		break;
	case RUDP__FIN_WAIT_2:
		/* An orphan must not wait forever for a peer that never ends. */
		if (c->app_closed)
			c->tw_at = c->last_rx + cfg->fin_timeout;
		break;
	case RUDP__LISTEN:
	case RUDP__SYN_SENT:
	case RUDP__SYN_RCVD:
	case RUDP__FIN_WAIT_1:
	case RUDP__CLOSE_WAIT:
	case RUDP__CLOSING:
	case RUDP__LAST_ACK:
		break;
	}
}

int rudp__conn_set_state(struct rudp__conn *c, enum rudp__state to)
{
	enum rudp__state from = c->state;

	if (!rudp__state_legal(from, to)) {
		rudp__log(RUDP__LOG_ERROR, "conn %08x: illegal %s -> %s",
			  c->local_cid, rudp__state_name(from),
			  rudp__state_name(to));
		return -EINVAL;
	}
	c->state = to;
	rudp__log(RUDP__LOG_DEBUG, "conn %08x: %s -> %s%s%s", c->local_cid,
		  rudp__state_name(from), rudp__state_name(to),
		  c->err ? ": " : "", c->err ? strerror(c->err) : "");
	on_enter(c, from);
	rudp__ep_event(c->ep, c, RUDP__EV_STATE);
	if (to == RUDP__ESTABLISHED && c->listener)
		rudp__ep_event(c->ep, c->listener, RUDP__EV_ACCEPT);
	return 0;
}

/* Queues the SYN (or SYNACK) that opens our half of the connection. */
static int send_syn(struct rudp__conn *c, unsigned retries)
{
	c->iss = c->ep->ops.rand32(c->ep->ops.ud);
	c->snd_una = c->iss;
	c->snd_nxt = c->iss + 1;
	c->snd_sml = c->iss;
	c->retries = retries;
	c->backoff = 0;
	return rudp__rtx_push(&c->rtx, c->iss, 1, RUDP__F_SYN);
}

int rudp__conn_connect(struct rudp__conn *c, rudp__usec now)
{
	if (c->state != RUDP__CLOSED)
		return -EISCONN;
	c->last_rx = now;
	int r = send_syn(c, c->ep->cfg.syn_retries);
	if (r < 0)
		return r;
	return rudp__conn_set_state(c, RUDP__SYN_SENT);
}

int rudp__conn_listen(struct rudp__conn *c, unsigned backlog)
{
	if (c->state == RUDP__LISTEN) {
		c->backlog = backlog;
		return 0;
	}
	if (c->state != RUDP__CLOSED)
		return -EINVAL;
	if (c->ep->listener)
		return -EADDRINUSE;
	c->backlog = backlog;
	c->ep->listener = c;
	return rudp__conn_set_state(c, RUDP__LISTEN);
}

static void arm_pto(struct rudp__conn *c, rudp__usec now);

static void fail(struct rudp__conn *c, int err)
{
	c->err = err;
	(void)rudp__conn_set_state(c, RUDP__CLOSED);
}

/* Sequence number just past the last byte the program has given us. */
static uint32_t data_end(const struct rudp__conn *c)
{
	return c->snd_una + (uint32_t)c->sb.len;
}

/*
 * Undo, as Linux's (with timestamps where Linux also has DSACK): once
 * every retransmission of the last recovery has proved unneeded, or the
 * recovery ended without one (every segment taken for lost arrived), the
 * reduction answered reordering, not congestion, and the controller is
 * put back as it was before.  Its counters stay as they are.
 */
static void try_undo(struct rudp__conn *c)
{
	if (!c->undo_valid || c->undo_retrans)
		return;
	uint64_t random_losses = c->cc.random_losses;
	uint64_t hystart_exits = c->cc.hystart_exits;
	c->cc = c->cc_prior;
	c->cc.random_losses = random_losses;
	c->cc.hystart_exits = hystart_exits;
	c->cc.in_recovery = 0;
	c->in_recovery = false;
	c->undo_valid = false;
	c->ep->stats.undos++;
}

/* Retransmissions the echoed timestamps showed were not needed. */
static void take_spurious(struct rudp__conn *c)
{
	unsigned n = c->rtx.spurious;

	c->rtx.spurious = 0;
	c->undo_retrans = n < c->undo_retrans ? c->undo_retrans - n : 0;
	try_undo(c);
}

/*
 * Takes in the acknowledgment h carries, which the caller has checked lies
 * in [snd_una, snd_nxt].  Releases acknowledged bytes, feeds the RTT
 * estimator and congestion control, and restarts or stops the
 * retransmission timer (RFC 6298 5.2, 5.3).
 */
static void take_ack(struct rudp__conn *c, const struct rudp__hdr *h,
		     rudp__usec now)
{
	rudp__usec sample;
	uint32_t acked;
	uint64_t flight = c->rtx.flight;

	c->snd_wnd = h->wnd;
	/* Any acceptable ack proves the peer alive, and answers a probe. */
	c->rto_fails = 0;
	c->tlp_out = false;
	if (!rudp__seq_gt(h->ack, c->snd_una))
		return;
	acked = h->ack - c->snd_una;
	/* The SYN and FIN take sequence space but no buffer. */
	if (c->sb.len) {
		uint32_t skip = (c->snd_una == c->iss) ? 1 : 0;
		size_t bytes = acked - skip < c->sb.len ? acked - skip
							: c->sb.len;
		rudp__sndbuf_consume(&c->sb, bytes);
		rudp__ep_event(c->ep, c, RUDP__EV_WRITABLE);
	}
	c->snd_una = h->ack;
	c->dupacks = 0;
	c->rtx.min_rtt = c->rtt.min_rtt;
	if (rudp__rtx_ack(&c->rtx, h->ack, h->tsecr, now, &sample) == 0)
		return;
	if (c->rtx.spurious)
		take_spurious(c);
	/*
	 * An echoed timestamp measures the round trip even across
	 * retransmissions (RFC 7323); the queue's own Karn-filtered sample
	 * covers a peer that echoes nothing.
	 */
	if (h->tsecr && (uint32_t)now - h->tsecr < (uint32_t)(60 * RUDP__SEC))
		sample = (uint32_t)now - h->tsecr;
	if (sample != RUDP__NEVER)
		rudp__rtt_sample(&c->rtt, sample);
	c->backoff = 0;
	if (c->in_recovery && rudp__seq_ge(h->ack, c->recover)) {
		c->in_recovery = false;
		c->cc.in_recovery = 0;
		try_undo(c);
		/* Every segment of the episode is acked: nothing more can tell. */
		c->undo_valid = false;
	}
	if (c->cc.ops && c->state != RUDP__SYN_SENT &&
	    c->state != RUDP__SYN_RCVD) {
		struct rudp__cc_ack a = {
			.acked = acked, .flight = flight, .now = now,
			.rtt = sample, .srtt = c->rtt.srtt,
			.ack = h->ack, .snd_nxt = c->snd_nxt,
		};
		c->cc.ops->on_ack(&c->cc, &a);
	}
	c->rto_at = rudp__rtx_empty(&c->rtx)
			    ? RUDP__NEVER
			    : now + rudp__rtt_rto(&c->rtt, 0);
	arm_pto(c, now);
}

/* Enters fast recovery once per window of data (RFC 6582's "recover"). */
static void on_loss(struct rudp__conn *c, rudp__usec now)
{
	c->ep->stats.fast_retransmits++;
	if (c->in_recovery)
		return;
	c->in_recovery = true;
	c->recover = c->snd_nxt;
	c->cc_prior = c->cc;
	c->undo_valid = true;
	c->undo_retrans = 0;
	c->cc.ops->on_loss(&c->cc, c->rtx.flight, now, c->rtt.latest,
			   c->rtt.min_rtt);
	c->cc.in_recovery = 1;
}

/*
 * RACK's reordering allowance: a quarter of the minimum round trip
 * (RFC 8985), so reordering within that is not taken for loss.
 */
static rudp__usec reo_wnd(const struct rudp__conn *c)
{
	return c->rtt.has_sample ? c->rtt.min_rtt / 4 : 0;
}

/* Time-based loss detection (RACK); arms its timer for what is pending. */
static void rack_detect(struct rudp__conn *c, rudp__usec now)
{
	if (rudp__rtx_rack(&c->rtx, now, reo_wnd(c), &c->rack_at))
		on_loss(c, now);
}

/*
 * The tail loss probe (RACK-TLP): if nothing is heard for about two round
 * trips while data is out, probe with one segment so that a lost tail is
 * found by acks and SACK within a round trip, not by the retransmission
 * timer.  The ack of a lone segment may be delayed, so that case waits
 * the delayed-ack time on top.
 */
static void arm_pto(struct rudp__conn *c, rudp__usec now)
{
	if (!c->rtx.flight || !c->rtt.has_sample || !c->cc.ops || c->tlp_out) {
		c->pto_at = RUDP__NEVER;
		return;
	}
	rudp__usec pto = 2 * c->rtt.srtt;
	if (c->rtx.flight <= c->mss)
		pto += c->ep->cfg.delack;
	if (pto < RUDP__MSEC)
		pto = RUDP__MSEC;
	c->pto_at = now + pto;
	if (!rudp__time_before(c->pto_at, c->rto_at))
		c->pto_at = RUDP__NEVER;
}

/* SACK blocks and duplicate acks: the scoreboard and loss detection. */
static void take_sack(struct rudp__conn *c, const struct rudp__hdr *h,
		      bool dup, rudp__usec now)
{
	size_t news = 0;

	c->rtx.min_rtt = c->rtt.min_rtt;
	if (h->nsack)
		news = rudp__rtx_sack(&c->rtx, h->sack, h->nsack, now);
	if (news && rudp__rtx_detect_loss(&c->rtx, DUPTHRESH))
		on_loss(c, now);
	/* Without SACK news, three duplicate acks mean the head is lost. */
	if (!news && dup && c->rtx.flight && ++c->dupacks == DUPTHRESH &&
	    rudp__rtx_lose_head(&c->rtx))
		on_loss(c, now);
	rack_detect(c, now);
}

static bool ack_acceptable(const struct rudp__conn *c,
			   const struct rudp__hdr *h)
{
	return (h->flags & RUDP__F_ACK) && rudp__seq_gt(h->ack, c->snd_una) &&
	       rudp__seq_le(h->ack, c->snd_nxt);
}

/*
 * A reset is believed only when it proves it saw our traffic: in SYN_SENT it
 * must acknowledge our SYN; once synchronized its sequence number must fall
 * in our receive window (RFC 793, tightened in the spirit of RFC 5961).
 */
static void on_rst(struct rudp__conn *c, const struct rudp__hdr *h)
{
	uint32_t wnd = c->rcv_wnd ? c->rcv_wnd : 1;

	if (c->state == RUDP__SYN_SENT) {
		if (!(h->flags & RUDP__F_ACK) || h->ack != c->snd_nxt)
			return;
		c->ep->stats.resets_in++;
		fail(c, ECONNREFUSED);
		return;
	}
	if (!synchronized(c->state))
		return;
	if (!rudp__seq_in(h->seq, c->rcv_nxt, c->rcv_nxt + wnd))
		return;
	c->ep->stats.resets_in++;
	/* A reset ends TIME_WAIT quietly; elsewhere it is news. */
	fail(c, c->state == RUDP__TIME_WAIT ? 0 : ECONNRESET);
}

/* The seed's LISTEN handler: a SYN creates a child in SYN_RCVD. */
static void on_listen(struct rudp__conn *l, const struct sockaddr *from,
		      socklen_t fromlen, const struct rudp__hdr *h,
		      rudp__usec now)
{
	struct rudp__ep *ep = l->ep;
	struct rudp__conn *c;

	if (h->flags != RUDP__F_SYN)
		return;
	unsigned extra = ep->ops.backlog_extra
				 ? ep->ops.backlog_extra(ep->ops.ud, l) : 0;
	if (l->npending + l->nqueued + extra >= l->backlog) {
		/* Silence, not a reset: the peer retries as it would on TCP. */
		ep->stats.backlog_drops++;
		return;
	}
	c = rudp__ep_conn_new(ep);
	if (!c)
		return;
	memcpy(&c->peer, from, fromlen);
	c->peerlen = fromlen;
	if (ep->ops.mss)
		c->mss = ep->ops.mss(ep->ops.ud, from, fromlen);
	c->peer_cid = h->src_cid;
	c->irs = h->seq;
	c->rcv_nxt = h->seq + 1;
	c->snd_wnd = h->wnd;
	/* Buffer sizes set on the listener hold for what it accepts, as on TCP. */
	c->rcv_wnd = l->rcv_wnd;
	c->sb.cap = l->sb.cap;
	c->ts_recent = h->tsval;
	c->last_rx = now;
	if (send_syn(c, ep->cfg.synack_retries) < 0) {
		rudp__ep_settle(ep, c);
		return;
	}
	rudp__cidtab_add(&ep->tab, c, RUDP__BY_PEER);
	c->listener = l;
	l->npending++;
	(void)rudp__conn_set_state(c, RUDP__SYN_RCVD);
	rudp__ep_settle(ep, c);
}

/* The seed's SYN_SENT handler: only a SYNACK for our SYN completes it. */
static void on_syn_sent(struct rudp__conn *c, const struct sockaddr *from,
			socklen_t fromlen, const struct rudp__hdr *h,
			rudp__usec now)
{
	if ((h->flags & RUDP__F_ACK) && h->ack != c->snd_nxt) {
		/* An ack of something we never sent: RFC 793 resets it. */
		rudp__ep_reply_rst(c->ep, from, fromlen, h);
		return;
	}
	if (h->flags != (RUDP__F_SYN | RUDP__F_ACK))
		return;
	c->peer_cid = h->src_cid;
	c->irs = h->seq;
	c->rcv_nxt = h->seq + 1;
	c->ts_recent = h->tsval;
	take_ack(c, h, now);
	c->ack_pending = true;
	(void)rudp__conn_set_state(c, RUDP__ESTABLISHED);
}

/*
 * Moves to the state the peer's FIN leads to, once every byte before it is
 * in.  FIN_WAIT_1 goes to TIME_WAIT directly if the same segment acked ours.
 */
static void fin_arrived(struct rudp__conn *c)
{
	c->fin_rcvd = true;
	c->rcv_nxt = c->peer_fin_seq + 1;
	c->ack_pending = true;
	rudp__ep_event(c->ep, c, RUDP__EV_READABLE);
	switch (c->state) {
	case RUDP__ESTABLISHED:
		(void)rudp__conn_set_state(c, RUDP__CLOSE_WAIT);
		break;
	case RUDP__FIN_WAIT_1:
		(void)rudp__conn_set_state(c, rudp__seq_gt(c->snd_una,
							   c->fin_seq)
						      ? RUDP__TIME_WAIT
						      : RUDP__CLOSING);
		break;
	case RUDP__FIN_WAIT_2:
		(void)rudp__conn_set_state(c, RUDP__TIME_WAIT);
		break;
	case RUDP__CLOSED:
	case RUDP__LISTEN:
	case RUDP__SYN_SENT:
	case RUDP__SYN_RCVD:
	case RUDP__CLOSE_WAIT:
	case RUDP__CLOSING:
	case RUDP__LAST_ACK:
	case RUDP__TIME_WAIT:
		break;
	}
}

/* Our FIN was acknowledged: where that leads. */
static void fin_acked(struct rudp__conn *c)
{
	switch (c->state) {
	case RUDP__FIN_WAIT_1:
		(void)rudp__conn_set_state(c, RUDP__FIN_WAIT_2);
		break;
	case RUDP__CLOSING:
		(void)rudp__conn_set_state(c, RUDP__TIME_WAIT);
		break;
	case RUDP__LAST_ACK:
		(void)rudp__conn_set_state(c, RUDP__CLOSED);
		break;
	case RUDP__CLOSED:
	case RUDP__LISTEN:
	case RUDP__SYN_SENT:
	case RUDP__SYN_RCVD:
	case RUDP__ESTABLISHED:
	case RUDP__FIN_WAIT_2:
	case RUDP__CLOSE_WAIT:
	case RUDP__TIME_WAIT:
		break;
	}
}

/* Whether this state still takes the peer's data. */
static bool receiving(enum rudp__state s)
{
	return s == RUDP__ESTABLISHED || s == RUDP__FIN_WAIT_1 ||
	       s == RUDP__FIN_WAIT_2;
}

/*
 * Offers a segment's payload that starts exactly at rcv_nxt to the owner's
 * deliver hook, when nothing stored waits ahead of it, and moves the
 * window past what the program took.  Returns how many bytes it took.
 * Only as much as the window holds is offered, as storing would trim it.
 */
static size_t offer(struct rudp__conn *c, const struct rudp__hdr *h,
		    const uint8_t *payload, int *adv)
{
	const struct rudp__ep_ops *ops = &c->ep->ops;
	size_t n = h->len, took;

	if (!ops->deliver || h->seq != c->rb.nxt ||
	    rudp__rcvbuf_ready(&c->rb))
		return 0;
	if (n > rudp__rcvbuf_window(&c->rb))
		n = rudp__rcvbuf_window(&c->rb);
	took = ops->deliver(ops->ud, c, payload, n);
	if (took)
		*adv = rudp__rcvbuf_pass(&c->rb, took);
	return took;
}

/*
 * Payload and FIN of a segment that passed the ack checks.  Decides when
 * to acknowledge: at once for anything out of order, duplicated or final,
 * otherwise every second full segment or after the delayed-ack timeout.
 */
static void take_data(struct rudp__conn *c, const struct rudp__hdr *h,
		      const uint8_t *payload, rudp__usec now)
{
	bool dup = true;
	int adv = 0;

	if (h->len) {
		if (!receiving(c->state) || c->app_closed) {
			/*
			 * Data for a program that has closed: as TCP, reset,
			 * so the sender learns its bytes went nowhere.
			 */
			if (c->app_closed && receiving(c->state)) {
				c->rst_pending = true;
				fail(c, ECONNRESET);
				return;
			}
			c->ack_pending = true;
			return;
		}
		size_t took = offer(c, h, payload, &adv);
		if (took < h->len) {
			int more = rudp__rcvbuf_insert(&c->rb,
						       h->seq + (uint32_t)took,
						       payload + took,
						       h->len - took, &dup);
			if (more > 0)
				adv += more;
		}
		dup = dup && !took;
		if (dup)
			c->ep->stats.dup_data += h->len;
		if (adv > 0) {
			c->ep->stats.data_in += (uint64_t)adv;
			c->last_data = now;
			c->rcv_nxt = c->rb.nxt;
			/* RFC 7323: echo the segment that advanced us. */
			c->ts_recent = h->tsval;
			rudp__ep_event(c->ep, c, RUDP__EV_READABLE);
		}
		if (dup || h->seq != c->rb.nxt - (uint32_t)adv ||
		    c->rb.nooo) {
			c->ack_pending = true;
		} else if (++c->segs_unacked >= 2 ||
			   (!c->pingpong &&
			    (h->len < c->mss || c->quickacks < QUICKACKS))) {
			/*
			 * Every second full segment, and the end of a burst
			 * (a short segment) at once: a request/response
			 * exchange must not wait out the delayed-ack timer.
			 * The first segments of a connection are acked at
			 * once too, as Linux's quickack mode does, so slow
			 * start is not held back by a window of one segment
			 * waiting for its delayed ack.
			 */
			c->quickacks++;
			c->ack_pending = true;
		} else if (c->delack_at == RUDP__NEVER) {
			/*
			 * In pingpong mode a lone segment is a request (or
			 * the answer to ours): its ack waits for the data the
			 * program sends back, as with TCP, which saves a
			 * datagram and a wakeup of the peer each way.
			 */
			c->delack_at = now + c->ep->cfg.delack;
		}
	}
	if (h->flags & RUDP__F_FIN) {
		c->peer_fin_known = true;
		c->peer_fin_seq = h->seq + h->len;
		c->ack_pending = true;
	}
	if (c->peer_fin_known && !c->fin_rcvd && receiving(c->state) &&
	    c->rb.nxt == c->peer_fin_seq)
		fin_arrived(c);
}

/* Everything after the handshake: the seed's ESTABLISHED and beyond. */
static void on_synchronized(struct rudp__conn *c, const struct sockaddr *from,
			    socklen_t fromlen, const struct rudp__hdr *h,
			    const uint8_t *payload, rudp__usec now)
{
	uint32_t seg_len = h->len + ((h->flags & RUDP__F_FIN) ? 1 : 0);
	uint32_t wnd = rudp__rcvbuf_window(&c->rb);

	if (h->flags & RUDP__F_SYN) {
		/*
		 * A retransmitted SYN or SYNACK means our ACK was lost; only
		 * one for this very connection (same initial sequence) gets
		 * a fresh ACK, anything else is ignored.
		 */
		if (h->seq == c->irs)
			c->ack_pending = true;
		return;
	}
	/*
	 * RFC 793's acceptability test: some of the segment must fall in
	 * the window (a zero window takes only empty segments at rcv_nxt).
	 * Anything else is old or from the future: say where we are.
	 */
	/*
	 * In TIME_WAIT the peer's FIN is old news that must still be acked:
	 * its retransmission means our ack was lost, and restarts the wait.
	 */
	if (c->state == RUDP__TIME_WAIT && (h->flags & RUDP__F_FIN) &&
	    h->seq + h->len + 1 == c->rcv_nxt) {
		c->ack_pending = true;
		c->tw_at = now + c->ep->cfg.time_wait;
		return;
	}
	bool ok = seg_len == 0
			  ? rudp__seq_in(h->seq, c->rcv_nxt,
					 c->rcv_nxt + (wnd ? wnd : 1))
			  : wnd && (rudp__seq_in(h->seq, c->rcv_nxt,
						 c->rcv_nxt + wnd) ||
				    rudp__seq_in(h->seq + seg_len - 1,
						 c->rcv_nxt, c->rcv_nxt + wnd));
	if (!ok) {
		if (seg_len)
			c->ep->stats.dup_data += h->len;
		c->ack_pending = true;
		/* A keepalive probe or a stray old segment is still life. */
		if (h->flags & RUDP__F_ACK) {
			c->ka_probes = 0;
			c->rto_fails = 0;
		}
		return;
	}
	if (!(h->flags & RUDP__F_ACK))
		return;
	if (rudp__seq_gt(h->ack, c->snd_nxt)) {
		/* Acks what we never sent: say where we are, drop it. */
		c->ack_pending = true;
		return;
	}
	c->ka_probes = 0;
	if (rudp__seq_ge(h->ack, c->snd_una)) {
		bool dup = h->ack == c->snd_una && seg_len == 0 &&
			   h->wnd == c->snd_wnd;
		bool fin_was_out = c->fin_sent &&
				   !rudp__seq_gt(c->snd_una, c->fin_seq);
		take_ack(c, h, now);
		take_sack(c, h, dup, now);
		if (fin_was_out && rudp__seq_gt(c->snd_una, c->fin_seq))
			fin_acked(c);
		if (c->state == RUDP__CLOSED)
			return;
	}
	if (c->state == RUDP__TIME_WAIT) {
		/* A retransmitted FIN: ack it again and wait anew. */
		if (h->flags & RUDP__F_FIN) {
			c->ack_pending = true;
			c->tw_at = now + c->ep->cfg.time_wait;
		}
		return;
	}
	(void)from;
	(void)fromlen;
	take_data(c, h, payload, now);
}

/* The seed's SYN_RCVD handler: the ACK of our SYNACK completes it. */
static void on_syn_rcvd(struct rudp__conn *c, const struct sockaddr *from,
			socklen_t fromlen, const struct rudp__hdr *h,
			const uint8_t *payload, rudp__usec now)
{
	if (h->flags == RUDP__F_SYN) {
		/* The peer never got our SYNACK: send it again, now. */
		if (h->seq == c->irs)
			rudp__rtx_requeue_all(&c->rtx);
		return;
	}
	if (h->flags & RUDP__F_SYN)
		return;
	if (!ack_acceptable(c, h)) {
		rudp__ep_reply_rst(c->ep, from, fromlen, h);
		return;
	}
	if (h->seq != c->rcv_nxt)
		return;
	c->ts_recent = h->tsval;
	take_ack(c, h, now);
	(void)rudp__conn_set_state(c, RUDP__ESTABLISHED);
	/* The ACK that completes the handshake may already carry data. */
	if (h->len || (h->flags & RUDP__F_FIN))
		on_synchronized(c, from, fromlen, h, payload, now);
}

void rudp__conn_input(struct rudp__conn *c, const struct sockaddr *from,
		      socklen_t fromlen, const struct rudp__hdr *h,
		      const uint8_t *payload, rudp__usec now)
{
	if (synchronized(c->state))
		c->last_rx = now;
	if (h->flags & RUDP__F_RST) {
		on_rst(c, h);
		return;
	}
	switch (c->state) {
	case RUDP__CLOSED:
		return;
	case RUDP__LISTEN:
		on_listen(c, from, fromlen, h, now);
		return;
	case RUDP__SYN_SENT:
		on_syn_sent(c, from, fromlen, h, now);
		return;
	case RUDP__SYN_RCVD:
		on_syn_rcvd(c, from, fromlen, h, payload, now);
		return;
	case RUDP__ESTABLISHED:
	case RUDP__FIN_WAIT_1:
	case RUDP__FIN_WAIT_2:
	case RUDP__CLOSE_WAIT:
	case RUDP__CLOSING:
	case RUDP__LAST_ACK:
	case RUDP__TIME_WAIT:
		on_synchronized(c, from, fromlen, h, payload, now);
		return;
	}
}

/* Stall probing: how recent data must be, and its timing (see below). */
#define STALL_WINDOW (30 * RUDP__SEC)
#define STALL_IDLE   (2 * RUDP__SEC)
#define STALL_INTVL  (1 * RUDP__SEC)
#define STALL_CNT    5

/*
 * Whether idle probes apply now, and their timing.  SO_KEEPALIVE asks for
 * them on its own schedule.  Without it, a receiver in the middle of a
 * transfer (data arrived within the last 30 s, no FIN yet) that hears
 * nothing for 2 s probes too, every second: with nothing of its own to
 * send it would otherwise never notice a peer that was killed, where on
 * TCP the peer's kernel would have said so.  A live peer answers and costs
 * one datagram per 2 s of silence, for 30 s at most.
 */
static bool ka_armed(const struct rudp__conn *c, rudp__usec *idle,
		     rudp__usec *intvl, unsigned *cnt)
{
	if (!rudp__rtx_empty(&c->rtx) ||
	    (c->state != RUDP__ESTABLISHED && c->state != RUDP__CLOSE_WAIT &&
	     c->state != RUDP__FIN_WAIT_2))
		return false;
	if (c->keepalive && c->state != RUDP__FIN_WAIT_2) {
		*idle = c->ka_idle;
		*intvl = c->ka_intvl;
		*cnt = c->ka_cnt;
		return true;
	}
	if (c->fin_rcvd || !c->last_data ||
	    !rudp__time_before(c->last_rx, c->last_data + STALL_WINDOW))
		return false;
	*idle = STALL_IDLE;
	*intvl = STALL_INTVL;
	*cnt = STALL_CNT;
	return true;
}

static void rto_expired(struct rudp__conn *c, rudp__usec now)
{
	c->ep->stats.timeouts++;
	/*
	 * Give up after `retries` timeouts in a row with no sign of life.
	 * During the handshake every timeout counts; afterwards any ack
	 * resets the count, so a peer that keeps answering (a zero window
	 * we are probing, say) is never given up on.
	 */
	bool handshake = c->state == RUDP__SYN_SENT ||
			 c->state == RUDP__SYN_RCVD;
	if ((handshake ? c->backoff : c->rto_fails) >= c->retries) {
		fail(c, ETIMEDOUT);
		return;
	}
	/* RFC 6298 (5.4-5.6): resend, back off, restart the timer. */
	c->backoff++;
	c->rto_fails++;
	if (c->state == RUDP__SYN_SENT || c->state == RUDP__SYN_RCVD) {
		c->syn_timedout = true;
	} else if (c->cc.ops && c->backoff == 1) {
		/*
		 * Only the first expiry of a run reduces ssthresh (RFC 5681
		 * 3.1): later ones see one segment in flight and would
		 * collapse it to two segments.
		 */
		c->cc.ops->on_rto(&c->cc, c->rtx.flight, now);
		c->in_recovery = false;
		c->cc.in_recovery = 0;
	}
	/* A timeout is not undone: nothing was heard to show it unneeded. */
	c->undo_valid = false;
	rudp__rtx_requeue_all(&c->rtx);
	c->rto_at = now + rudp__rtt_rto(&c->rtt, c->backoff);
	c->pto_at = c->rack_at = RUDP__NEVER;
	c->tlp_out = false;
}

/* The probe timer fired: one segment goes out, past cwnd if need be. */
static void pto_expired(struct rudp__conn *c)
{
	c->pto_at = RUDP__NEVER;
	/*
	 * One probe per silence (RFC 8985): the next waits for an ack, and
	 * after that the retransmission timer is in charge.  New data makes
	 * the better probe; else the newest segment again.
	 */
	c->tlp_out = true;
	if (rudp__seq_lt(c->snd_nxt, data_end(c)) ||
	    rudp__rtx_probe_tail(&c->rtx))
		c->probe = true;
}

void rudp__conn_timeout(struct rudp__conn *c, rudp__usec now)
{
	if (rudp__time_reached(now, c->rto_at)) {
		rto_expired(c, now);
		if (c->state == RUDP__CLOSED)
			return;
	}
	if (rudp__time_reached(now, c->delack_at)) {
		c->delack_at = RUDP__NEVER;
		c->ack_pending = true;
		/* The program did not answer in time: ack at once again. */
		c->pingpong = false;
	}
	if (rudp__time_reached(now, c->rack_at)) {
		c->rack_at = RUDP__NEVER;
		rack_detect(c, now);
	}
	if (rudp__time_reached(now, c->pto_at))
		pto_expired(c);
	if (c->pace_wait && rudp__pacer_ready(&c->pacer, now))
		c->pace_wait = false;
	if (rudp__time_reached(now, c->tw_at)) {
		c->tw_at = RUDP__NEVER;
		/* TIME_WAIT over, or an orphan's FIN_WAIT_2 gave up. */
		(void)rudp__conn_set_state(c, RUDP__CLOSED);
		return;
	}
	rudp__usec idle, intvl;
	unsigned cnt;
	if (ka_armed(c, &idle, &intvl, &cnt)) {
		rudp__usec due = c->ka_probes ? c->ka_at : c->last_rx + idle;
		if (rudp__time_reached(now, due)) {
			if (c->ka_probes >= cnt) {
				fail(c, ETIMEDOUT);
				return;
			}
			c->ka_probes++;
			c->ka_due = true;
			c->ka_at = now + intvl;
		}
	}
}

rudp__usec rudp__conn_deadline(const struct rudp__conn *c)
{
	rudp__usec t = rudp__time_min(c->rto_at, c->delack_at);

	t = rudp__time_min(t, c->tw_at);
	t = rudp__time_min(t, c->rack_at);
	t = rudp__time_min(t, c->pto_at);
	if (c->pace_wait)
		t = rudp__time_min(t, c->pacer.next);
	rudp__usec idle, intvl;
	unsigned cnt;
	if (ka_armed(c, &idle, &intvl, &cnt))
		t = rudp__time_min(t, c->ka_probes ? c->ka_at
						   : c->last_rx + idle);
	return t;
}

/* Whether the last segment shorter than the MSS awaits its ack. */
static bool short_unacked(const struct rudp__conn *c)
{
	return rudp__seq_gt(c->snd_sml, c->snd_una) &&
	       rudp__seq_le(c->snd_sml, c->snd_nxt);
}

/* Bytes of new data we may put on the wire now, 0 if none. */
static uint32_t sendable(const struct rudp__conn *c)
{
	/* New data goes out until our FIN does (which changes the state). */
	if (c->state != RUDP__ESTABLISHED && c->state != RUDP__CLOSE_WAIT)
		return 0;
	if (!rudp__seq_lt(c->snd_nxt, data_end(c)))
		return 0;
	uint32_t unsent = data_end(c) - c->snd_nxt;
	uint32_t n = unsent < c->mss ? unsent : c->mss;
	uint64_t flight = c->rtx.flight;
	/*
	 * Nagle's rule as Linux applies it (Minshall's variant): the tail
	 * shorter than a segment waits while an earlier short segment is
	 * unacknowledged, so a bulk sender's writes fill whole segments (on
	 * loopback iperf3's datagrams grew from 52 to 62 KB on average) and
	 * a request that follows an answered one still goes at once.  The
	 * cost is TCP's: a program that writes twice and then waits for a
	 * reply, without TCP_NODELAY, waits a round trip for the ack of the
	 * first write (the peer acks a short segment at once), or the
	 * delayed ack when the peer is in pingpong mode.  A FIN makes the
	 * tail final, and a loss probe must carry what there is.
	 */
	if (unsent < c->mss && !c->nodelay && !c->fin_queued && !c->probe &&
	    short_unacked(c))
		return 0;
	/* The congestion window, but always one segment when idle or probing. */
	if (flight && flight + n > c->cc.cwnd && !c->probe)
		return 0;
	/* The peer's window; a zero window still gets a one-byte probe. */
	uint32_t used = c->snd_nxt - c->snd_una;
	if (used >= c->snd_wnd)
		return flight ? 0 : 1;
	if (n > c->snd_wnd - used)
		n = c->snd_wnd - used;
	return n;
}

static bool fin_ready(const struct rudp__conn *c)
{
	return c->fin_queued && !c->fin_sent && c->snd_nxt == data_end(c) &&
	       (c->state == RUDP__ESTABLISHED || c->state == RUDP__CLOSE_WAIT);
}

/* Whether a queued retransmission fits the congestion window now. */
static bool rtx_allowed(const struct rudp__conn *c, const struct rudp__seg *s)
{
	if (!c->cc.ops || s->flags & RUDP__F_SYN || c->probe)
		return true;
	return !c->rtx.flight || c->rtx.flight + s->len <= c->cc.cwnd;
}

bool rudp__conn_wants_tx(const struct rudp__conn *c)
{
	const struct rudp__seg *s = rudp__rtx_next(&c->rtx);

	return c->rst_pending || c->ack_pending || c->ka_due ||
	       (!c->pace_wait && ((s && rtx_allowed(c, s)) || sendable(c))) ||
	       fin_ready(c);
}

static void fill_common(struct rudp__conn *c, struct rudp__hdr *h,
			rudp__usec now)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = c->local_cid;
	h->dst_cid = c->peer_cid;
	h->tsval = (uint32_t)now;
	h->tsecr = c->ts_recent;
	if (c->state == RUDP__SYN_SENT)
		return;
	h->flags = RUDP__F_ACK;
	h->ack = c->rcv_nxt;
	if (synchronized(c->state) && c->state != RUDP__SYN_RCVD) {
		h->wnd = rudp__rcvbuf_window(&c->rb);
		h->nsack = (uint8_t)rudp__rcvbuf_sack(&c->rb, h->sack,
						      RUDP__DATA_SACK);
	} else {
		h->wnd = c->rcv_wnd;
	}
}

/* Bookkeeping common to every datagram that acknowledges the peer. */
static void acked_now(struct rudp__conn *c, const struct rudp__hdr *h)
{
	if (!(h->flags & RUDP__F_ACK))
		return;
	c->ack_pending = false;
	c->segs_unacked = 0;
	c->delack_at = RUDP__NEVER;
	c->last_wnd_sent = h->wnd;
}

/*
 * Builds the datagram for rtx segment s (SYN, data or FIN): the header in
 * buf, the payload left in the send ring for the kernel to read from there
 * (pay), so sending costs no copy here.  Returns the header's length.
 */
static ssize_t write_seg(struct rudp__conn *c, struct rudp__seg *s,
			 struct rudp__hdr *h, uint8_t *buf, size_t cap,
			 struct rudp__slices *pay, rudp__usec now)
{
	uint32_t plen = s->len - ((s->flags & (RUDP__F_SYN | RUDP__F_FIN)) ? 1
									    : 0);
	ssize_t n;

	h->flags |= s->flags;
	h->seq = s->seq;
	h->len = (uint16_t)plen;
	n = rudp__wire_encode_hdr(h, buf, cap);
	if (n < 0)
		return n;
	rudp__sndbuf_slices(&c->sb, s->seq - c->snd_una, plen, pay);
	if (s->ntx) {
		c->ep->stats.retransmits++;
		c->total_retrans++;
		c->undo_retrans++;
	} else {
		c->ep->stats.data_out += plen;
	}
	if (c->cc.ops && !(s->flags & RUDP__F_SYN))
		rudp__pacer_sent(&c->pacer, (size_t)n + plen,
				 rudp__cc_pacing_rate(&c->cc, c->rtt.srtt),
				 c->mss, now);
	/*
	 * New data soon after data came in: the program answers what it
	 * reads, so acks of lone segments may wait for the answer.
	 */
	if (plen && !s->ntx && c->last_data &&
	    rudp__time_before(now, c->last_data + c->ep->cfg.delack))
		c->pingpong = true;
	rudp__rtx_sent(&c->rtx, s, now);
	if (c->rto_at == RUDP__NEVER)
		c->rto_at = now + rudp__rtt_rto(&c->rtt, c->backoff);
	c->probe = false;
	if (c->pto_at == RUDP__NEVER)
		arm_pto(c, now);
	acked_now(c, h);
	return n;
}

ssize_t rudp__conn_write(struct rudp__conn *c, uint8_t *buf, size_t cap,
			 struct rudp__slices *pay, rudp__usec now)
{
	struct rudp__hdr h;
	struct rudp__seg *s;
	uint32_t n;
	ssize_t r;

	pay->n = 0;
	if (c->rst_pending) {
		fill_common(c, &h, now);
		h.flags = RUDP__F_RST;
		h.ack = 0;
		h.nsack = 0;
		h.wnd = 0;
		h.seq = c->snd_nxt;
		r = rudp__wire_encode(&h, NULL, buf, cap);
		if (r > 0) {
			c->rst_pending = false;
			c->ep->stats.resets_out++;
		}
		return r;
	}
	fill_common(c, &h, now);
	s = rudp__rtx_next(&c->rtx);
	n = sendable(c);
	/*
	 * Data waits for the pacer (the handshake, probes, the FIN and
	 * acks do not); the deadline wakes the connection when it may go.
	 */
	c->pace_wait = ((s && rtx_allowed(c, s)) || n) && !c->probe &&
		       !rudp__pacer_ready(&c->pacer, now);
	if (c->pace_wait) {
		s = NULL;
		n = 0;
	}
	if (s && rtx_allowed(c, s))
		return write_seg(c, s, &h, buf, cap, pay, now);
	if (n) {
		r = rudp__rtx_push(&c->rtx, c->snd_nxt, n, 0);
		if (r < 0)
			return r;
		c->snd_nxt += n;
		if (n < c->mss)
			c->snd_sml = c->snd_nxt;
		return write_seg(c, c->rtx.tail, &h, buf, cap, pay, now);
	}
	if (fin_ready(c)) {
		r = rudp__rtx_push(&c->rtx, c->snd_nxt, 1, RUDP__F_FIN);
		if (r < 0)
			return r;
		c->fin_seq = c->snd_nxt;
		c->fin_sent = true;
		c->snd_nxt++;
		(void)rudp__conn_set_state(c, c->state == RUDP__ESTABLISHED
						      ? RUDP__FIN_WAIT_1
						      : RUDP__LAST_ACK);
		return write_seg(c, c->rtx.tail, &h, buf, cap, pay, now);
	}
	if (c->ka_due) {
		/*
		 * A keepalive probe is an empty segment one below snd_una:
		 * old news the peer must answer with an ack (RFC 1122).
		 */
		c->ka_due = false;
		h.seq = c->snd_una - 1;
		return rudp__wire_encode(&h, NULL, buf, cap);
	}
	if (c->ack_pending) {
		h.seq = c->snd_nxt;
		/* A pure ack has room to name every hole we know of. */
		if (synchronized(c->state) && c->state != RUDP__SYN_RCVD)
			h.nsack = (uint8_t)rudp__rcvbuf_sack(&c->rb, h.sack,
							     RUDP__MAX_SACK);
		r = rudp__wire_encode(&h, NULL, buf, cap);
		if (r > 0)
			acked_now(c, &h);
		return r;
	}
	return 0;
}

void rudp__conn_abort(struct rudp__conn *c, int err)
{
	struct rudp__ep *ep = c->ep;

	if (c->state == RUDP__LISTEN) {
		/* Children not yet accepted die with their listener. */
		for (struct rudp__conn *k = ep->conns; k; k = k->all_next) {
			if (k->listener != c)
				continue;
			k->listener = NULL;
			k->aq_next = NULL;
			rudp__conn_abort(k, ECONNABORTED);
		}
		c->aq_head = c->aq_tail = NULL;
		c->npending = c->nqueued = 0;
	}
	if (c->state == RUDP__CLOSED)
		return;
	/* A peer that holds state for us is told; SYN_SENT's holds none. */
	if (synchronized(c->state) && c->state != RUDP__TIME_WAIT)
		c->rst_pending = true;
	fail(c, err);
}

void rudp__conn_unreachable(struct rudp__conn *c, int err)
{
	/*
	 * Host and network unreachables are soft, as on TCP: routes come
	 * back.  A port unreachable is not: the peer's connection state
	 * lives in its process, and nothing listening on its UDP port means
	 * that process (or its socket) is gone, so the connection is dead.
	 * A connection attempt is refused; an open connection was reset.
	 */
	if (err != ECONNREFUSED)
		return;
	if (c->state == RUDP__SYN_SENT)
		fail(c, ECONNREFUSED);
	else if (synchronized(c->state))
		/*
		 * A peer that had finished sending (its FIN is in) left in
		 * order: the program reads its end of stream, not a reset.
		 */
		fail(c, c->state == RUDP__TIME_WAIT || c->fin_rcvd ? 0
								   : ECONNRESET);
}

struct rudp__conn *rudp__conn_accept(struct rudp__conn *l)
{
	struct rudp__conn *c = l->aq_head;

	if (!c)
		return NULL;
	l->aq_head = c->aq_next;
	if (!l->aq_head)
		l->aq_tail = NULL;
	l->nqueued--;
	c->aq_next = NULL;
	c->listener = NULL;
	return c;
}

bool rudp__conn_can_send(const struct rudp__conn *c)
{
	return (c->state == RUDP__ESTABLISHED ||
		c->state == RUDP__CLOSE_WAIT) && !c->fin_queued;
}

size_t rudp__conn_send_reserve(struct rudp__conn *c, uint8_t **p)
{
	if (!rudp__conn_can_send(c))
		return 0;
	return rudp__sndbuf_reserve(&c->sb, p);
}

void rudp__conn_send_commit(struct rudp__conn *c, size_t n)
{
	rudp__sndbuf_commit(&c->sb, n);
}

size_t rudp__conn_recv_peek(const struct rudp__conn *c, const uint8_t **p)
{
	return rudp__rcvbuf_peek(&c->rb, p);
}

void rudp__conn_recv_consume(struct rudp__conn *c, size_t n)
{
	uint32_t before = rudp__rcvbuf_window(&c->rb);

	rudp__rcvbuf_consume(&c->rb, n);
	/*
	 * Tell the peer when the window opens enough to matter (from below
	 * one segment, or by a quarter of the buffer): otherwise a sender
	 * stalled on a full window would wait for its persist probe.
	 */
	uint32_t after = rudp__rcvbuf_window(&c->rb);
	if (synchronized(c->state) &&
	    ((before < c->mss && after >= c->mss) ||
	     after - c->last_wnd_sent >= c->rb.cap / 4) &&
	    after > c->last_wnd_sent)
		c->ack_pending = true;
}

bool rudp__conn_recv_eof(const struct rudp__conn *c)
{
	return c->fin_rcvd && rudp__rcvbuf_ready(&c->rb) == 0;
}

void rudp__conn_shutdown_write(struct rudp__conn *c)
{
	c->fin_queued = true;
}
