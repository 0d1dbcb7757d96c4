#include "conn.h"

#include <errno.h>
#include <string.h>

#include "endpoint.h"
#include "log.h"

/*
 * The legal transitions (RFC 793's diagram, limited to the states this
 * version has).  Anything not listed is a bug in the caller, refused here.
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
		[RUDP__CLOSED] = true,      /* RST, abort */
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
	}
	return "?";
}

bool rudp__state_legal(enum rudp__state from, enum rudp__state to)
{
	if ((unsigned)from >= RUDP__NSTATES || (unsigned)to >= RUDP__NSTATES)
		return false;
	return legal[from][to];
}

void rudp__cfg_default(struct rudp__cfg *cfg)
{
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
	cfg->rcv_wnd = 256 * 1024;
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
		if (l && from == RUDP__SYN_RCVD) {
			l->npending--;
			enqueue_accept(l, c);
		}
		break;
	case RUDP__CLOSED:
		rudp__rtx_clear(&c->rtx);
		c->rto_at = RUDP__NEVER;
		c->ack_pending = false;
		if (l && from == RUDP__SYN_RCVD) {
			/* A half-open child dies quietly; the listener goes on. */
			l->npending--;
			c->listener = NULL;
		}
		if (c->ep->listener == c)
			c->ep->listener = NULL;
		break;
	case RUDP__LISTEN:
	case RUDP__SYN_SENT:
	case RUDP__SYN_RCVD:
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
	c->retries = retries;
	c->backoff = 0;
	return rudp__rtx_push(&c->rtx, c->iss, 1, RUDP__F_SYN);
}

int rudp__conn_connect(struct rudp__conn *c, rudp__usec now)
{
	(void)now;
	if (c->state != RUDP__CLOSED)
		return -EISCONN;
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

/*
 * Takes in the acknowledgment h carries, which the caller has checked lies
 * in (snd_una, snd_nxt].  Feeds the RTT estimator (Karn's rule applies in
 * rtx) and restarts or stops the retransmission timer (RFC 6298 5.2, 5.3).
 */
static void take_ack(struct rudp__conn *c, const struct rudp__hdr *h,
		     rudp__usec now)
{
	rudp__usec sample;

	c->snd_wnd = h->wnd;
	if (!rudp__seq_gt(h->ack, c->snd_una))
		return;
	c->snd_una = h->ack;
	if (rudp__rtx_ack(&c->rtx, h->ack, now, &sample) == 0)
		return;
	if (sample != RUDP__NEVER)
		rudp__rtt_sample(&c->rtt, sample);
	c->backoff = 0;
	c->rto_at = rudp__rtx_empty(&c->rtx)
			    ? RUDP__NEVER
			    : now + rudp__rtt_rto(&c->rtt, 0);
}

static bool ack_acceptable(const struct rudp__conn *c,
			   const struct rudp__hdr *h)
{
	return (h->flags & RUDP__F_ACK) && rudp__seq_gt(h->ack, c->snd_una) &&
	       rudp__seq_le(h->ack, c->snd_nxt);
}

static void fail(struct rudp__conn *c, int err)
{
	c->err = err;
	(void)rudp__conn_set_state(c, RUDP__CLOSED);
}

/*
 * A reset is believed only when it proves it saw our traffic: in SYN_SENT it
 * must acknowledge our SYN; once synchronized its sequence number must fall
 * in our receive window (RFC 793, tightened in the spirit of RFC 5961).
 */
static void on_rst(struct rudp__conn *c, const struct rudp__hdr *h)
{
	uint32_t wnd = c->rcv_wnd ? c->rcv_wnd : 1;

	switch (c->state) {
	case RUDP__CLOSED:
	case RUDP__LISTEN:
		return;
	case RUDP__SYN_SENT:
		if (!(h->flags & RUDP__F_ACK) || h->ack != c->snd_nxt)
			return;
		c->ep->stats.resets_in++;
		fail(c, ECONNREFUSED);
		return;
	case RUDP__SYN_RCVD:
	case RUDP__ESTABLISHED:
		if (!rudp__seq_in(h->seq, c->rcv_nxt, c->rcv_nxt + wnd))
			return;
		c->ep->stats.resets_in++;
		fail(c, ECONNRESET);
		return;
	}
}

/* The seed's LISTEN handler: a SYN creates a child in SYN_RCVD. */
static void on_listen(struct rudp__conn *l, const struct sockaddr *from,
		      socklen_t fromlen, const struct rudp__hdr *h,
		      rudp__usec now)
{
	struct rudp__ep *ep = l->ep;
	struct rudp__conn *c;

	unsigned extra = ep->ops.backlog_extra
				 ? ep->ops.backlog_extra(ep->ops.ud, l) : 0;

	if (h->flags != RUDP__F_SYN)
		return;
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
	c->peer_cid = h->src_cid;
	c->irs = h->seq;
	c->rcv_nxt = h->seq + 1;
	c->snd_wnd = h->wnd;
	c->ts_recent = h->tsval;
	if (send_syn(c, ep->cfg.synack_retries) < 0) {
		rudp__ep_settle(ep, c);
		return;
	}
	rudp__cidtab_add(&ep->tab, c, RUDP__BY_PEER);
	c->listener = l;
	l->npending++;
	(void)rudp__conn_set_state(c, RUDP__SYN_RCVD);
	(void)now;
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

/* The seed's SYN_RCVD handler: the ACK of our SYNACK completes it. */
static void on_syn_rcvd(struct rudp__conn *c, const struct sockaddr *from,
			socklen_t fromlen, const struct rudp__hdr *h,
			rudp__usec now)
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
}

static void on_established(struct rudp__conn *c, const struct rudp__hdr *h,
			   rudp__usec now)
{
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
	if (!(h->flags & RUDP__F_ACK) || !rudp__seq_le(h->ack, c->snd_nxt))
		return;
	c->ts_recent = h->tsval;
	take_ack(c, h, now);
}

void rudp__conn_input(struct rudp__conn *c, const struct sockaddr *from,
		      socklen_t fromlen, const struct rudp__hdr *h,
		      const uint8_t *payload, rudp__usec now)
{
	(void)payload;
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
		on_syn_rcvd(c, from, fromlen, h, now);
		return;
	case RUDP__ESTABLISHED:
		on_established(c, h, now);
		return;
	}
}

void rudp__conn_timeout(struct rudp__conn *c, rudp__usec now)
{
	if (!rudp__time_reached(now, c->rto_at))
		return;
	if (c->backoff >= c->retries) {
		fail(c, ETIMEDOUT);
		return;
	}
	/* RFC 6298 (5.4-5.6): resend, back off, restart the timer. */
	c->backoff++;
	if (c->state == RUDP__SYN_SENT || c->state == RUDP__SYN_RCVD)
		c->syn_timedout = true;
	rudp__rtx_requeue_all(&c->rtx);
	c->rto_at = now + rudp__rtt_rto(&c->rtt, c->backoff);
}

rudp__usec rudp__conn_deadline(const struct rudp__conn *c)
{
	return c->rto_at;
}

bool rudp__conn_wants_tx(const struct rudp__conn *c)
{
	return c->rst_pending || c->ack_pending || rudp__rtx_next(&c->rtx);
}

static void fill_common(const struct rudp__conn *c, struct rudp__hdr *h,
			rudp__usec now)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = c->local_cid;
	h->dst_cid = c->peer_cid;
	h->wnd = c->rcv_wnd;
	h->tsval = (uint32_t)now;
	h->tsecr = c->ts_recent;
}

ssize_t rudp__conn_write(struct rudp__conn *c, uint8_t *buf, size_t cap,
			 rudp__usec now)
{
	struct rudp__hdr h;
	struct rudp__seg *s;
	ssize_t n;

	fill_common(c, &h, now);
	if (c->rst_pending) {
		h.flags = RUDP__F_RST;
		h.seq = c->snd_nxt;
		n = rudp__wire_encode(&h, NULL, buf, cap);
		if (n > 0) {
			c->rst_pending = false;
			c->ep->stats.resets_out++;
		}
		return n;
	}
	s = rudp__rtx_next(&c->rtx);
	if (s) {
		h.flags = s->flags;
		h.seq = s->seq;
		/* Everything but our very first SYN acknowledges the peer. */
		if (c->state != RUDP__SYN_SENT) {
			h.flags |= RUDP__F_ACK;
			h.ack = c->rcv_nxt;
		}
		n = rudp__wire_encode(&h, NULL, buf, cap);
		if (n < 0)
			return n;
		if (s->ntx)
			c->ep->stats.retransmits++;
		rudp__rtx_sent(s, now);
		if (c->rto_at == RUDP__NEVER)
			c->rto_at = now + rudp__rtt_rto(&c->rtt, c->backoff);
		if (h.flags & RUDP__F_ACK)
			c->ack_pending = false;
		return n;
	}
	if (c->ack_pending) {
		h.flags = RUDP__F_ACK;
		h.seq = c->snd_nxt;
		h.ack = c->rcv_nxt;
		n = rudp__wire_encode(&h, NULL, buf, cap);
		if (n > 0)
			c->ack_pending = false;
		return n;
	}
	return 0;
}

void rudp__conn_abort(struct rudp__conn *c, int err)
{
	struct rudp__ep *ep = c->ep;

	switch (c->state) {
	case RUDP__CLOSED:
		return;
	case RUDP__LISTEN:
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
		break;
	case RUDP__SYN_SENT:
		/* The peer holds no state for us yet: nothing to reset. */
		break;
	case RUDP__SYN_RCVD:
	case RUDP__ESTABLISHED:
		c->rst_pending = true;
		break;
	}
	fail(c, err);
}

void rudp__conn_unreachable(struct rudp__conn *c, int err)
{
	/*
	 * Only a connection attempt treats ICMP as fatal, as TCP does; later
	 * an unreachable is soft, since routes come back.
	 */
	if (c->state == RUDP__SYN_SENT)
		fail(c, err);
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
