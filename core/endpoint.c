#include "endpoint.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int rudp__ep_init(struct rudp__ep *ep, const struct rudp__cfg *cfg,
		  const struct rudp__ep_ops *ops)
{
	memset(ep, 0, sizeof(*ep));
	ep->cfg = *cfg;
	ep->ops = *ops;
	rudp__heap_init(&ep->timers);
	return rudp__cidtab_init(&ep->tab);
}

static void free_conn(struct rudp__ep *ep, struct rudp__conn *c)
{
	for (int k = 0; k < RUDP__NKINDS; k++)
		rudp__cidtab_del(&ep->tab, c, k);
	rudp__heap_remove(&ep->timers, &c->timer);
	if (c->in_txq) {
		struct rudp__conn **pp = &ep->txq_head, *prev = NULL;
		while (*pp != c) {
			prev = *pp;
			pp = &(*pp)->tx_next;
		}
		*pp = c->tx_next;
		if (ep->txq_tail == c)
			ep->txq_tail = prev;
	}
	if (c->all_prev)
		c->all_prev->all_next = c->all_next;
	else
		ep->conns = c->all_next;
	if (c->all_next)
		c->all_next->all_prev = c->all_prev;
	if (ep->listener == c)
		ep->listener = NULL;
	rudp__rtx_clear(&c->rtx);
	rudp__sndbuf_free(&c->sb);
	rudp__rcvbuf_free(&c->rb);
	ep->nconns--;
	free(c);
}

void rudp__ep_free(struct rudp__ep *ep)
{
	while (ep->conns)
		free_conn(ep, ep->conns);
	rudp__heap_free(&ep->timers);
	rudp__cidtab_free(&ep->tab);
	free(ep->resets);
	ep->resets = NULL;
}

struct rudp__conn *rudp__ep_conn_new(struct rudp__ep *ep)
{
	struct rudp__conn *c = calloc(1, sizeof(*c));
	uint32_t cid;

	if (!c)
		return NULL;
	/* Reserve the timer slot now so arming it later cannot fail. */
	if (rudp__heap_reserve(&ep->timers, ep->nconns + 1) < 0) {
		free(c);
		return NULL;
	}
	do
		cid = ep->ops.rand32(ep->ops.ud);
	while (cid == 0 || rudp__cidtab_find(&ep->tab, RUDP__BY_LOCAL, cid));
	c->ep = ep;
	c->state = RUDP__CLOSED;
	c->local_cid = cid;
	c->rcv_wnd = ep->cfg.rcv_wnd;
	c->mss = ep->cfg.mss;
	c->rto_at = c->delack_at = c->tw_at = c->ka_at = RUDP__NEVER;
	c->rack_at = c->pto_at = RUDP__NEVER;
	c->ka_idle = ep->cfg.ka_idle;
	c->ka_intvl = ep->cfg.ka_intvl;
	c->ka_cnt = ep->cfg.ka_cnt;
	rudp__sndbuf_init(&c->sb, ep->cfg.snd_buf);
	rudp__rtx_init(&c->rtx);
	rudp__timer_init(&c->timer);
	rudp__rtt_init(&c->rtt, ep->cfg.rto_initial, ep->cfg.rto_min,
		       ep->cfg.rto_max);
	rudp__cidtab_add(&ep->tab, c, RUDP__BY_LOCAL);
	c->all_next = ep->conns;
	if (ep->conns)
		ep->conns->all_prev = c;
	ep->conns = c;
	ep->nconns++;
	return c;
}

static bool reapable(const struct rudp__ep *ep, const struct rudp__conn *c)
{
	return c->state == RUDP__CLOSED && !c->user_owned && !c->listener &&
	       !c->rst_pending && ep->listener != c;
}

void rudp__ep_settle(struct rudp__ep *ep, struct rudp__conn *c)
{
	if (reapable(ep, c)) {
		free_conn(ep, c);
		return;
	}
	/* Cannot fail: the slot was reserved when c was created. */
	(void)rudp__heap_set(&ep->timers, &c->timer, rudp__conn_deadline(c));
	if (!c->in_txq && rudp__conn_wants_tx(c)) {
		c->tx_next = NULL;
		if (ep->txq_tail)
			ep->txq_tail->tx_next = c;
		else
			ep->txq_head = c;
		ep->txq_tail = c;
		c->in_txq = true;
	}
}

static void settle_all(struct rudp__ep *ep)
{
	struct rudp__conn *c = ep->conns, *next;

	for (; c; c = next) {
		next = c->all_next;
		rudp__ep_settle(ep, c);
	}
}

bool rudp__addr_same(const struct sockaddr_storage *a, socklen_t alen,
		     const struct sockaddr *b, socklen_t blen)
{
	if (alen != blen || a->ss_family != b->sa_family)
		return false;
	if (b->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (b->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a,
					  *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
	}
	return false;
}

void rudp__ep_reply_rst(struct rudp__ep *ep, const struct sockaddr *from,
			socklen_t fromlen, const struct rudp__hdr *h)
{
	struct rudp__reset *r;

	if (h->flags & RUDP__F_RST)
		return;
	/*
	 * A bounded queue: under a flood of garbage we would rather drop
	 * resets than grow, and the peers' own timeouts cover the loss.
	 */
	if (!ep->resets)
		ep->resets = malloc(RUDP__RESETQ_LEN * sizeof(*ep->resets));
	if (!ep->resets || ep->nresets == RUDP__RESETQ_LEN ||
	    fromlen > sizeof(r->to)) {
		ep->stats.reset_drops++;
		return;
	}
	r = &ep->resets[ep->nresets++];
	memset(r, 0, sizeof(*r));
	memcpy(&r->to, from, fromlen);
	r->tolen = fromlen;
	r->hdr.src_cid = h->dst_cid;
	r->hdr.dst_cid = h->src_cid;
	r->hdr.tsecr = h->tsval;
	/* RFC 793 "Reset Generation": take the seq from its ack, or ack it. */
	if (h->flags & RUDP__F_ACK) {
		r->hdr.flags = RUDP__F_RST;
		r->hdr.seq = h->ack;
	} else {
		r->hdr.flags = RUDP__F_RST | RUDP__F_ACK;
		r->hdr.ack = h->seq + h->len +
			     ((h->flags & RUDP__F_SYN) ? 1 : 0) +
			     ((h->flags & RUDP__F_FIN) ? 1 : 0);
	}
}

void rudp__ep_recv(struct rudp__ep *ep, const struct sockaddr *from,
		   socklen_t fromlen, const uint8_t *buf, size_t len,
		   rudp__usec now)
{
	struct rudp__hdr h;
	const uint8_t *payload;
	enum rudp__wire_err why;
	struct rudp__conn *c;

	ep->stats.dgrams_in++;
	if (rudp__wire_decode(buf, len, &h, &payload, &why) < 0) {
		ep->stats.malformed[why]++;
		rudp__log(RUDP__LOG_DEBUG, "dropped malformed datagram (%s)",
			  rudp__wire_err_name(why));
		return;
	}
	if (h.dst_cid == 0) {
		/* A bare SYN: a retransmission for a child we made, or new. */
		for (c = rudp__cidtab_find(&ep->tab, RUDP__BY_PEER, h.src_cid);
		     c; c = rudp__cidtab_next(c, RUDP__BY_PEER, h.src_cid))
			if (rudp__addr_same(&c->peer, c->peerlen, from, fromlen))
				break;
		if (!c)
			c = ep->listener;
	} else {
		c = rudp__cidtab_find(&ep->tab, RUDP__BY_LOCAL, h.dst_cid);
		/* The id alone is guessable; the address must match too. */
		if (c && !rudp__addr_same(&c->peer, c->peerlen, from, fromlen))
			c = NULL;
	}
	/*
	 * A connection that has ended is as good as none, though the program
	 * may still hold it: the peer learns at once (a FIN retransmitted
	 * after our TIME_WAIT, say) instead of retrying into silence.
	 */
	if (!c || (c->state == RUDP__CLOSED && !c->rst_pending)) {
		ep->stats.no_conn++;
		rudp__ep_reply_rst(ep, from, fromlen, &h);
		return;
	}
	rudp__conn_input(c, from, fromlen, &h, payload, now);
	rudp__ep_settle(ep, c);
}

ssize_t rudp__ep_send(struct rudp__ep *ep, uint8_t *buf, size_t cap,
		      struct rudp__slices *pay, struct sockaddr_storage *to,
		      socklen_t *tolen, rudp__usec now)
{
	pay->n = 0;
	if (ep->nresets) {
		struct rudp__reset *r = &ep->resets[0];
		ssize_t n = rudp__wire_encode(&r->hdr, NULL, buf, cap);
		if (n < 0)
			return n;
		memcpy(to, &r->to, r->tolen);
		*tolen = r->tolen;
		ep->nresets--;
		memmove(&ep->resets[0], &ep->resets[1],
			ep->nresets * sizeof(ep->resets[0]));
		ep->stats.resets_out++;
		ep->stats.dgrams_out++;
		return n;
	}
	while (ep->txq_head) {
		struct rudp__conn *c = ep->txq_head;
		ep->txq_head = c->tx_next;
		if (!ep->txq_head)
			ep->txq_tail = NULL;
		c->in_txq = false;
		ssize_t n = rudp__conn_write(c, buf, cap, pay, now);
		if (n > 0) {
			memcpy(to, &c->peer, c->peerlen);
			*tolen = c->peerlen;
			ep->stats.dgrams_out++;
		}
		/* Back of the queue if it has more: round robin. */
		rudp__ep_settle(ep, c);
		if (n != 0)
			return n;
	}
	return 0;
}

void rudp__ep_timeout(struct rudp__ep *ep, rudp__usec now)
{
	/*
	 * Every due timer either fires and moves its deadline forward or
	 * ends its connection; the bound guards against a timer that fails
	 * to move, which would otherwise spin here forever.
	 */
	for (size_t budget = ep->nconns + 1; budget; budget--) {
		struct rudp__timer *t = rudp__heap_min(&ep->timers);
		if (!t || !rudp__time_reached(now, t->when))
			return;
		struct rudp__conn *c = (struct rudp__conn *)
			((char *)t - offsetof(struct rudp__conn, timer));
		rudp__conn_timeout(c, now);
		rudp__ep_settle(ep, c);
	}
}

void rudp__ep_release(struct rudp__ep *ep, struct rudp__conn *c)
{
	bool was_listener = c->state == RUDP__LISTEN;

	c->user_owned = false;
	c->user = NULL;
	/*
	 * A connection whose owner arranged its end (FIN queued) lives on,
	 * orphaned, until that exchange is over; anything else is aborted.
	 */
	if (!c->fin_queued || !c->app_closed)
		rudp__conn_abort(c, 0);
	/* An orphan already waiting for the peer's FIN waits a bounded time. */
	else if (c->state == RUDP__FIN_WAIT_2 && c->tw_at == RUDP__NEVER)
		c->tw_at = c->last_rx + ep->cfg.fin_timeout;
	if (was_listener)
		settle_all(ep);
	else
		rudp__ep_settle(ep, c);
}

void rudp__ep_unreachable(struct rudp__ep *ep, uint32_t cid, int err)
{
	struct rudp__conn *c;

	if (cid) {
		c = rudp__cidtab_find(&ep->tab, RUDP__BY_LOCAL, cid);
		if (c) {
			rudp__conn_unreachable(c, err);
			rudp__ep_settle(ep, c);
		}
		return;
	}
	for (c = ep->conns; c; c = c->all_next)
		rudp__conn_unreachable(c, err);
	settle_all(ep);
}
