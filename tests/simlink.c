#include "simlink.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

struct sim_pkt {
	struct sim_pkt *next;
	rudp__usec at;
	uint64_t no;   /* ties broken by send order */
	int from, to;
	size_t len;
	uint8_t data[];
};

uint32_t sim_rand(struct sim *s)
{
	/* xorshift64*: fast, seedable, and good enough to drive impairments. */
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return (uint32_t)((s->rng * UINT64_C(2685821657736338717)) >> 32);
}

static uint32_t node_rand(void *ud)
{
	struct sim_node *n = ud;
	struct sim *s = n->sim;

	if (s->force_rand)
		return s->force_rand;
	return sim_rand(s);
}

static void node_event(void *ud, struct rudp__conn *c, enum rudp__event ev)
{
	struct sim_node *n = ud;

	n->nevents++;
	if (ev == RUDP__EV_ACCEPT)
		n->accepts++;
	if (ev == RUDP__EV_STATE) {
		struct sim_state_change *r = &n->states[n->nstates++ %
							SIM_STATES];
		r->at = n->sim->now;
		r->c = c;
		r->state = c->state;
	}
	if (ev == RUDP__EV_STATE && c->state == RUDP__CLOSED) {
		n->closed++;
		n->last_err = c->err;
	}
}

void sim_init(struct sim *s, uint64_t seed, const struct rudp__cfg *cfg)
{
	memset(s, 0, sizeof(*s));
	s->rng = seed ? seed : 1;
	s->now = 1000 * RUDP__SEC; /* far from zero: no accidental zero times */
	for (int i = 0; i < SIM_NODES; i++) {
		struct sim_node *n = &s->node[i];
		struct rudp__ep_ops ops = {
			.ud = n, .rand32 = node_rand, .on_event = node_event,
		};
		n->sim = s;
		n->addr.sin_family = AF_INET;
		n->addr.sin_addr.s_addr = htonl(0x0a000001u + (uint32_t)i);
		n->addr.sin_port = htons((uint16_t)(9000 + i));
		rudp__ep_init(&n->ep, cfg, &ops);
	}
}

void sim_free(struct sim *s)
{
	while (s->q) {
		struct sim_pkt *p = s->q;
		s->q = p->next;
		free(p);
	}
	for (int i = 0; i < SIM_NODES; i++)
		rudp__ep_free(&s->node[i].ep);
}

static int node_of(const struct sim *s, const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *sin = (const void *)ss;

	for (int i = 0; i < SIM_NODES; i++)
		if (sin->sin_addr.s_addr == s->node[i].addr.sin_addr.s_addr &&
		    sin->sin_port == s->node[i].addr.sin_port)
			return i;
	return -1;
}

static void enqueue(struct sim *s, int from, int to, const uint8_t *buf,
		    size_t len, rudp__usec at)
{
	struct sim_pkt *p = malloc(sizeof(*p) + len), **pp = &s->q;

	p->at = at;
	p->no = s->pktno++;
	p->from = from;
	p->to = to;
	p->len = len;
	memcpy(p->data, buf, len);
	while (*pp && ((*pp)->at < at || ((*pp)->at == at && (*pp)->no < p->no)))
		pp = &(*pp)->next;
	p->next = *pp;
	*pp = p;
}

static void record(struct sim *s, int from, int to, const uint8_t *buf,
		   size_t len, bool dropped)
{
	struct sim_trace *t;
	const uint8_t *payload;
	enum rudp__wire_err why;

	if (s->ntrace == SIM_TRACE)
		return;
	t = &s->trace[s->ntrace++];
	t->at = s->now;
	t->from = from;
	t->to = to;
	t->dropped = dropped;
	if (rudp__wire_decode(buf, len, &t->h, &payload, &why) < 0)
		memset(&t->h, 0, sizeof(t->h));
}

static bool chance(struct sim *s, unsigned pct)
{
	return pct && sim_rand(s) % 100 < pct;
}

size_t sim_flatten(uint8_t *buf, size_t hlen, const struct rudp__slices *pay)
{
	size_t n = hlen;

	for (unsigned k = 0; k < pay->n; k++) {
		memcpy(buf + n, pay->iov[k].iov_base, pay->iov[k].iov_len);
		n += pay->iov[k].iov_len;
	}
	return n;
}

void sim_flush(struct sim *s)
{
	uint8_t buf[RUDP__MAX_DGRAM];
	struct rudp__slices pay;
	struct sockaddr_storage to;
	socklen_t tolen;
	ssize_t hl;

	for (int i = 0; i < SIM_NODES; i++) {
		while ((hl = rudp__ep_send(&s->node[i].ep, buf, sizeof(buf),
					   &pay, &to, &tolen, s->now)) > 0) {
			size_t n = sim_flatten(buf, (size_t)hl, &pay);
			if (pay.n == 2)
				s->wrapped++;
			int dst = node_of(s, &to);
			struct rudp__hdr h;
			const uint8_t *payload;
			enum rudp__wire_err why;
			bool drop = dst < 0 || chance(s, s->loss_pct);

			if (!drop && s->filter &&
			    rudp__wire_decode(buf, n, &h, &payload,
					      &why) == 0)
				drop = s->filter(s, i, &h);
			if (!drop && s->rate_bps && s->queue_max &&
			    s->busy_until[i] > s->now + s->queue_max) {
				/* The bottleneck's buffer is full. */
				drop = true;
				s->queue_drops++;
			}
			if (s->strip_tsecr &&
			    rudp__wire_decode(buf, n, &h, &payload,
					      &why) == 0) {
				/* Re-encode in place with no echo. */
				h.tsecr = 0;
				rudp__wire_encode(&h, payload, buf, sizeof(buf));
			}
			record(s, i, dst, buf, n, drop);
			if (drop)
				continue;
			rudp__usec at = s->now + s->delay;
			/* A rate limit serialises each sender's datagrams. */
			if (s->rate_bps) {
				rudp__usec start = s->busy_until[i] > s->now
							   ? s->busy_until[i]
							   : s->now;
				s->busy_until[i] = start +
					(rudp__usec)n * 8 * RUDP__SEC /
						s->rate_bps;
				at = s->busy_until[i] + s->delay;
			}
			if (chance(s, s->reorder_pct) && s->jitter)
				at += sim_rand(s) % s->jitter;
			enqueue(s, i, dst, buf, n, at);
			if (chance(s, s->dup_pct))
				enqueue(s, i, dst, buf, n,
					at + (s->jitter ? sim_rand(s) % s->jitter
							: 0));
		}
	}
}

static rudp__usec next_event(const struct sim *s)
{
	rudp__usec t = s->q ? s->q->at : RUDP__NEVER;

	/* A slow reader's next read is an event of its own. */
	for (const struct sim_app *a = s->apps; a; a = a->next)
		if (a->read_every && a->c && !a->stop_reading &&
		    rudp__rcvbuf_ready(&a->c->rb))
			t = rudp__time_min(t, a->next_read);

	for (int i = 0; i < SIM_NODES; i++)
		t = rudp__time_min(t, rudp__ep_deadline(&s->node[i].ep));
	return t;
}

bool sim_step(struct sim *s, rudp__usec limit)
{
	for (struct sim_app *a = s->apps; a; a = a->next)
		sim_app_pump(s, a);
	sim_flush(s);
	rudp__usec t = next_event(s);
	if (t == RUDP__NEVER || rudp__time_before(limit, t))
		return false;
	if (rudp__time_before(s->now, t))
		s->now = t;
	while (s->q && rudp__time_reached(s->now, s->q->at)) {
		struct sim_pkt *p = s->q;
		s->q = p->next;
		rudp__ep_recv(&s->node[p->to].ep,
			      (const struct sockaddr *)&s->node[p->from].addr,
			      sizeof(struct sockaddr_in), p->data, p->len,
			      s->now);
		free(p);
	}
	for (int i = 0; i < SIM_NODES; i++)
		rudp__ep_timeout(&s->node[i].ep, s->now);
	for (struct sim_app *a = s->apps; a; a = a->next)
		sim_app_pump(s, a);
	sim_flush(s);
	return true;
}

bool sim_run(struct sim *s, rudp__usec limit, bool (*done)(struct sim *s))
{
	sim_flush(s);
	while (!(done && done(s)))
		if (!sim_step(s, limit))
			return done ? done(s) : true;
	return true;
}

void sim_inject(struct sim *s, int from, int to, const uint8_t *buf,
		size_t len)
{
	rudp__ep_recv(&s->node[to].ep,
		      (const struct sockaddr *)&s->node[from].addr,
		      sizeof(struct sockaddr_in), buf, len, s->now);
}

void sim_connect_conn(struct sim *s, struct rudp__conn *c, int b)
{
	memcpy(&c->peer, &s->node[b].addr, sizeof(s->node[b].addr));
	c->peerlen = sizeof(s->node[b].addr);
	c->user_owned = true;
	rudp__conn_connect(c, s->now);
	rudp__ep_settle(c->ep, c);
}

struct rudp__conn *sim_connect(struct sim *s, int a, int b)
{
	struct rudp__conn *c = rudp__ep_conn_new(&s->node[a].ep);

	sim_connect_conn(s, c, b);
	return c;
}

struct rudp__conn *sim_listen(struct sim *s, int n, unsigned backlog)
{
	struct rudp__conn *c = rudp__ep_conn_new(&s->node[n].ep);

	c->user_owned = true;
	rudp__conn_listen(c, backlog);
	rudp__ep_settle(&s->node[n].ep, c);
	return c;
}

size_t sim_times(const struct sim *s, int from, uint8_t flags,
		 rudp__usec *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < s->ntrace && n < max; i++)
		if (s->trace[i].from == from && s->trace[i].h.flags == flags)
			out[n++] = s->trace[i].at;
	return n;
}

size_t sim_states(const struct sim *s, int n, const struct rudp__conn *c,
		  enum rudp__state *out, rudp__usec *at, size_t max)
{
	const struct sim_node *node = &s->node[n];
	unsigned first = node->nstates > SIM_STATES
				 ? node->nstates - SIM_STATES : 0;
	size_t k = 0;

	for (unsigned i = first; i < node->nstates && k < max; i++) {
		const struct sim_state_change *r = &node->states[i % SIM_STATES];
		if (r->c != c)
			continue;
		out[k] = r->state;
		if (at)
			at[k] = r->at;
		k++;
	}
	return k;
}

uint8_t sim_pattern(uint32_t seed, uint64_t i)
{
	uint64_t x = (i + 1) * UINT64_C(0x9e3779b97f4a7c15) ^ seed;

	x ^= x >> 29;
	return (uint8_t)(x * UINT64_C(0xbf58476d1ce4e5b9) >> 56);
}

void sim_app_add(struct sim *s, struct sim_app *a)
{
	a->next = s->apps;
	s->apps = a;
}

/* Checks n bytes app a receives against the pattern and counts them. */
static void app_read(struct sim_app *a, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != sim_pattern(a->rx_seed, a->received + i))
			a->corrupt = true;
	a->received += n;
}

size_t sim_deliver(void *ud, struct rudp__conn *c, const uint8_t *p,
		   size_t n)
{
	struct sim_node *node = ud;
	struct sim_app *a = node->sim->apps;

	while (a && a->c != c)
		a = a->next;
	if (!a || a->stop_reading)
		return 0;
	if (n > a->direct_max)
		n = a->direct_max;
	app_read(a, p, n);
	a->direct += n;
	return n;
}

void sim_app_pump(struct sim *s, struct sim_app *a)
{
	struct rudp__conn *c = a->c;
	uint8_t *p;
	const uint8_t *q;
	size_t n;

	if (!c)
		return;
	while (a->sent < a->to_send &&
	       (n = rudp__conn_send_reserve(c, &p)) > 0) {
		if (n > a->to_send - a->sent)
			n = (size_t)(a->to_send - a->sent);
		for (size_t i = 0; i < n; i++)
			p[i] = sim_pattern(a->tx_seed, a->sent + i);
		rudp__conn_send_commit(c, n);
		a->sent += n;
	}
	if (a->shut_when_done && a->sent == a->to_send && !c->fin_queued &&
	    rudp__conn_can_send(c))
		rudp__conn_shutdown_write(c);
	size_t budget = a->read_limit ? a->read_limit : SIZE_MAX;
	if (a->read_every) {
		if (rudp__time_before(s->now, a->next_read))
			budget = 0;
		else
			a->next_read = s->now + a->read_every;
	}
	while (!a->stop_reading && budget &&
	       (n = rudp__conn_recv_peek(c, &q)) > 0) {
		if (n > budget)
			n = budget;
		app_read(a, q, n);
		rudp__conn_recv_consume(c, n);
		budget -= n;
	}
	if (rudp__conn_recv_eof(c))
		a->eof = true;
	rudp__ep_settle(c->ep, c);
}
