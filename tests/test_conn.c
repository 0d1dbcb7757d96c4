/*
 * The connection state machine: its transition table, and the handshake
 * driven through the simulated link with a fake clock.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "simlink.h"

#define A 0 /* the connecting node */
#define B 1 /* the listening node */
#define C_NODE 2 /* a bystander */
#define MS RUDP__MSEC
#define S RUDP__SEC

static struct sim sim;
static struct rudp__cfg cfg;

static void setup(void)
{
	rudp__cfg_default(&cfg);
	sim_init(&sim, 42, &cfg);
	sim.delay = 10 * MS;
}

static void teardown(void)
{
	sim_free(&sim);
}

/* The transitions docs/PROTOCOL.md draws; everything else is illegal. */
static const struct { enum rudp__state from, to; } legal_pairs[] = {
	{ RUDP__CLOSED, RUDP__LISTEN },
	{ RUDP__CLOSED, RUDP__SYN_SENT },
	{ RUDP__CLOSED, RUDP__SYN_RCVD },
	{ RUDP__LISTEN, RUDP__CLOSED },
	{ RUDP__SYN_SENT, RUDP__ESTABLISHED },
	{ RUDP__SYN_SENT, RUDP__CLOSED },
	{ RUDP__SYN_RCVD, RUDP__ESTABLISHED },
	{ RUDP__SYN_RCVD, RUDP__CLOSED },
	{ RUDP__ESTABLISHED, RUDP__FIN_WAIT_1 },
	{ RUDP__ESTABLISHED, RUDP__CLOSE_WAIT },
	{ RUDP__ESTABLISHED, RUDP__CLOSED },
	{ RUDP__FIN_WAIT_1, RUDP__FIN_WAIT_2 },
	{ RUDP__FIN_WAIT_1, RUDP__CLOSING },
	{ RUDP__FIN_WAIT_1, RUDP__TIME_WAIT },
	{ RUDP__FIN_WAIT_1, RUDP__CLOSED },
	{ RUDP__FIN_WAIT_2, RUDP__TIME_WAIT },
	{ RUDP__FIN_WAIT_2, RUDP__CLOSED },
	{ RUDP__CLOSE_WAIT, RUDP__LAST_ACK },
	{ RUDP__CLOSE_WAIT, RUDP__CLOSED },
	{ RUDP__CLOSING, RUDP__TIME_WAIT },
	{ RUDP__CLOSING, RUDP__CLOSED },
	{ RUDP__LAST_ACK, RUDP__CLOSED },
	{ RUDP__TIME_WAIT, RUDP__CLOSED },
};
#define NLEGAL (sizeof(legal_pairs) / sizeof(legal_pairs[0]))

static bool expected_legal(enum rudp__state from, enum rudp__state to)
{
	for (size_t i = 0; i < NLEGAL; i++)
		if (legal_pairs[i].from == from && legal_pairs[i].to == to)
			return true;
	return false;
}

START_TEST(test_conn_table_matches_the_diagram)
{
	for (int f = 0; f < RUDP__NSTATES; f++)
		for (int t = 0; t < RUDP__NSTATES; t++)
			ck_assert_msg(rudp__state_legal(f, t) ==
					      expected_legal(f, t),
				      "%s -> %s", rudp__state_name(f),
				      rudp__state_name(t));
	ck_assert(!rudp__state_legal(RUDP__NSTATES, RUDP__CLOSED));
	ck_assert(!rudp__state_legal(RUDP__CLOSED, (enum rudp__state)-1));
}
END_TEST

/* Each legal transition, taken through the one function that changes state. */
START_TEST(test_conn_legal_transition_taken)
{
	enum rudp__state from = legal_pairs[_i].from, to = legal_pairs[_i].to;
	struct rudp__conn *c = rudp__ep_conn_new(&sim.node[A].ep);
	unsigned before = sim.node[A].nevents;

	c->state = from;
	ck_assert_int_eq(rudp__conn_set_state(c, to), 0);
	ck_assert_int_eq(c->state, to);
	ck_assert_uint_eq(sim.node[A].nevents, before + 1);
}
END_TEST

START_TEST(test_conn_illegal_transition_refused)
{
	struct rudp__conn *c = rudp__ep_conn_new(&sim.node[A].ep);
	int refused = 0;

	for (int f = 0; f < RUDP__NSTATES; f++) {
		for (int t = 0; t < RUDP__NSTATES; t++) {
			if (expected_legal(f, t))
				continue;
			unsigned before = sim.node[A].nevents;
			c->state = f;
			ck_assert_int_eq(rudp__conn_set_state(c, t), -EINVAL);
			ck_assert_int_eq(c->state, f);
			ck_assert_uint_eq(sim.node[A].nevents, before);
			refused++;
		}
	}
	ck_assert_int_eq(refused, RUDP__NSTATES * RUDP__NSTATES - (int)NLEGAL);
}
END_TEST

static struct rudp__conn *conn_a, *listener_b;

static bool a_done(struct sim *s)
{
	(void)s;
	return conn_a->state != RUDP__SYN_SENT;
}

static bool both_done(struct sim *s)
{
	return a_done(s) && listener_b->nqueued + listener_b->npending == 0
		       ? a_done(s)
		       : a_done(s) && listener_b->nqueued == 1;
}

static void start(unsigned backlog)
{
	listener_b = sim_listen(&sim, B, backlog);
	conn_a = sim_connect(&sim, A, B);
}

START_TEST(test_conn_handshake_clean)
{
	rudp__usec t0 = sim.now;

	start(4);
	ck_assert_int_eq(conn_a->state, RUDP__SYN_SENT);
	ck_assert(sim_run(&sim, t0 + 5 * S, both_done));
	ck_assert_int_eq(conn_a->state, RUDP__ESTABLISHED);
	ck_assert_uint_eq(listener_b->nqueued, 1);
	struct rudp__conn *c = rudp__conn_accept(listener_b);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(c->state, RUDP__ESTABLISHED);
	/* Each side acknowledges the other's initial sequence number. */
	ck_assert_uint_eq(conn_a->snd_una, conn_a->iss + 1);
	ck_assert_uint_eq(conn_a->rcv_nxt, c->iss + 1);
	ck_assert_uint_eq(c->rcv_nxt, conn_a->iss + 1);
	ck_assert_uint_eq(conn_a->peer_cid, c->local_cid);
	ck_assert_uint_eq(c->peer_cid, conn_a->local_cid);
	/* Exactly SYN, SYNACK, ACK: three datagrams, one RTT apart. */
	ck_assert_uint_eq(sim.ntrace, 3);
	ck_assert_uint_eq(sim.trace[0].h.flags, RUDP__F_SYN);
	ck_assert_uint_eq(sim.trace[1].h.flags, RUDP__F_SYN | RUDP__F_ACK);
	ck_assert_uint_eq(sim.trace[2].h.flags, RUDP__F_ACK);
	ck_assert_uint_eq(sim.trace[2].at - t0, 20 * MS);
	/* The handshake measured the 20 ms round trip (Karn: sent once). */
	ck_assert(conn_a->rtt.has_sample);
	ck_assert_uint_eq(conn_a->rtt.srtt, 20 * MS);
	ck_assert_uint_eq(sim.node[A].ep.stats.retransmits, 0);
	c->user_owned = true;
}
END_TEST

/* Drops the first datagram from `sim.arg`-selected node carrying flags. */
struct drop_rule {
	int from;
	uint8_t flags;
	int times; /* how many to drop; -1 for all */
};

static bool drop_filter(struct sim *s, int from, const struct rudp__hdr *h)
{
	struct drop_rule *r = s->arg;

	if (from != r->from || h->flags != r->flags || r->times == 0)
		return false;
	if (r->times > 0)
		r->times--;
	return true;
}

static void drop(int from, uint8_t flags, int times)
{
	static struct drop_rule r;

	r.from = from;
	r.flags = flags;
	r.times = times;
	sim.arg = &r;
	sim.filter = drop_filter;
}

START_TEST(test_conn_lost_syn_is_retransmitted_after_initial_rto)
{
	rudp__usec t0 = sim.now, at[8];

	drop(A, RUDP__F_SYN, 1);
	start(4);
	ck_assert(sim_run(&sim, t0 + 10 * S, both_done));
	ck_assert_int_eq(conn_a->state, RUDP__ESTABLISHED);
	ck_assert_uint_eq(sim_times(&sim, A, RUDP__F_SYN, at, 8), 2);
	ck_assert_uint_eq(at[0] - t0, 0);
	ck_assert_uint_eq(at[1] - t0, 1 * S); /* RFC 6298's initial 1 s */
	ck_assert_uint_eq(listener_b->nqueued, 1);
	ck_assert_uint_eq(sim.node[A].ep.stats.retransmits, 1);
	/*
	 * The SYNACK echoes the timestamp of the SYN that reached B, the
	 * retransmission, so the round trip is measured without ambiguity.
	 */
	ck_assert(conn_a->rtt.has_sample);
	ck_assert_uint_eq(conn_a->rtt.srtt, 20 * MS);
}
END_TEST

/*
 * A peer that echoes no timestamps leaves only Karn's rule, which gives no
 * sample from a retransmitted SYN: RFC 6298 (5.7) then starts the data
 * phase with a 3 s RTO.
 */
START_TEST(test_conn_lost_syn_without_timestamps_rto_3s)
{
	rudp__usec t0 = sim.now;

	drop(A, RUDP__F_SYN, 1);
	sim.strip_tsecr = true;
	start(4);
	ck_assert(sim_run(&sim, t0 + 10 * S, both_done));
	ck_assert_int_eq(conn_a->state, RUDP__ESTABLISHED);
	ck_assert(!conn_a->rtt.has_sample);
	ck_assert_uint_eq(rudp__rtt_rto(&conn_a->rtt, 0), 3 * S);
}
END_TEST

START_TEST(test_conn_lost_synack_is_recovered_without_second_child)
{
	rudp__usec t0 = sim.now;

	drop(B, RUDP__F_SYN | RUDP__F_ACK, 1);
	start(4);
	ck_assert(sim_run(&sim, t0 + 10 * S, both_done));
	ck_assert_int_eq(conn_a->state, RUDP__ESTABLISHED);
	ck_assert_uint_eq(listener_b->nqueued, 1);
	/* Listener plus one child: the retransmitted SYN made no second. */
	ck_assert_uint_eq(sim.node[B].ep.nconns, 2);
	/* A's SYN timer fires at 1 s; B answers the repeat SYN at once. */
	ck_assert_uint_lt(sim.now - t0, 1 * S + 40 * MS);
}
END_TEST

static bool b_established(struct sim *s)
{
	(void)s;
	return listener_b->nqueued == 1;
}

START_TEST(test_conn_lost_final_ack_is_recovered)
{
	rudp__usec t0 = sim.now, at[8];

	drop(A, RUDP__F_ACK, 1);
	start(4);
	ck_assert(sim_run(&sim, t0 + 10 * S, b_established));
	ck_assert_int_eq(conn_a->state, RUDP__ESTABLISHED);
	/* B resends its SYNACK one initial RTO after the first (sent at 10 ms). */
	ck_assert_uint_eq(sim_times(&sim, B, RUDP__F_SYN | RUDP__F_ACK, at, 8),
			  2);
	ck_assert_uint_eq(at[1] - at[0], 1 * S);
	/* ...and the established A answers it with a fresh ACK. */
	ck_assert_uint_eq(sim_times(&sim, A, RUDP__F_ACK, at, 8), 2);
	ck_assert_uint_eq(sim.now - t0, 1 * S + 30 * MS);
}
END_TEST

START_TEST(test_conn_syn_backoff_then_etimedout)
{
	rudp__usec t0 = sim.now, at[16];
	static const unsigned expect_s[] = { 0, 1, 3, 7, 15, 31, 63 };

	drop(A, RUDP__F_SYN, -1);
	start(4);
	ck_assert(sim_run(&sim, t0 + 300 * S, a_done));
	ck_assert_int_eq(conn_a->state, RUDP__CLOSED);
	ck_assert_int_eq(conn_a->err, ETIMEDOUT);
	ck_assert_int_eq(sim.node[A].last_err, ETIMEDOUT);
	/* One SYN plus syn_retries retransmissions, doubling each time. */
	ck_assert_uint_eq(sim_times(&sim, A, RUDP__F_SYN, at, 16),
			  cfg.syn_retries + 1);
	for (unsigned i = 0; i <= cfg.syn_retries; i++)
		ck_assert_uint_eq(at[i] - t0, expect_s[i] * S);
	/* The last wait is as long as all before it, as on Linux: 127 s. */
	ck_assert_uint_eq(sim.now - t0, 127 * S);
}
END_TEST

START_TEST(test_conn_synack_retries_exhausted_frees_child)
{
	rudp__usec t0 = sim.now;

	/* B's SYNACKs never arrive and A gives up sooner than B. */
	drop(B, RUDP__F_SYN | RUDP__F_ACK, -1);
	start(4);
	ck_assert(!sim_run(&sim, t0 + 300 * S, b_established));
	ck_assert_int_eq(conn_a->state, RUDP__CLOSED);
	ck_assert_int_eq(conn_a->err, ETIMEDOUT);
	/* The half-open child timed out and was reaped: only the listener. */
	ck_assert_uint_eq(sim.node[B].ep.nconns, 1);
	ck_assert_uint_eq(listener_b->npending, 0);
	ck_assert_int_eq(listener_b->state, RUDP__LISTEN);
}
END_TEST

/*
 * 30% loss each way with fixed seeds: whenever A's SYN is resent by its
 * timer the gaps double; nobody ever makes a second child; and every run
 * ends either established on both sides or with a clean error.
 */
START_TEST(test_conn_handshake_under_random_loss)
{
	unsigned both = 0;

	for (uint64_t seed = 1; seed <= 200; seed++) {
		struct sim *s = &sim;
		rudp__usec t0, at[16];

		sim_free(s);
		sim_init(s, seed, &cfg);
		s->delay = 10 * MS;
		s->loss_pct = 30;
		t0 = s->now;
		start(4);
		sim_run(s, t0 + 400 * S, NULL);
		size_t n = sim_times(s, A, RUDP__F_SYN, at, 16);
		for (size_t i = 1; i < n; i++)
			ck_assert_uint_eq(at[i] - at[i - 1], (1u << (i - 1)) * S);
		ck_assert_uint_le(s->node[B].ep.nconns, 2);
		ck_assert_uint_le(listener_b->nqueued, 1);
		if (listener_b->nqueued == 1)
			ck_assert_int_eq(conn_a->state, RUDP__ESTABLISHED);
		if (conn_a->state == RUDP__CLOSED)
			ck_assert_int_eq(conn_a->err, ETIMEDOUT);
		if (conn_a->state == RUDP__ESTABLISHED &&
		    listener_b->nqueued == 1)
			both++;
	}
	/* 0.7^2 per round trip with 6 retries: nearly all must complete. */
	ck_assert_uint_ge(both, 190);
}
END_TEST

START_TEST(test_conn_rst_from_port_without_listener)
{
	rudp__usec t0 = sim.now;

	conn_a = sim_connect(&sim, A, B); /* B does not listen */
	ck_assert(sim_run(&sim, t0 + 5 * S, a_done));
	ck_assert_int_eq(conn_a->state, RUDP__CLOSED);
	ck_assert_int_eq(conn_a->err, ECONNREFUSED);
	ck_assert_uint_eq(sim.now - t0, 20 * MS); /* one round trip */
	ck_assert_uint_eq(sim.node[B].ep.stats.resets_out, 1);
	ck_assert_uint_eq(sim.node[A].ep.stats.resets_in, 1);
}
END_TEST

START_TEST(test_conn_backlog_drops_then_admits)
{
	rudp__usec t0 = sim.now;
	struct rudp__conn *second;

	start(1);
	second = sim_connect(&sim, A, B);
	ck_assert(sim_run(&sim, t0 + 100 * MS, NULL));
	ck_assert_uint_eq(listener_b->nqueued, 1);
	ck_assert_uint_eq(sim.node[B].ep.stats.backlog_drops, 1);
	ck_assert_int_eq(second->state, RUDP__SYN_SENT);
	/* Accepting frees a slot; the dropped SYN's retransmission gets in. */
	rudp__conn_accept(listener_b)->user_owned = true;
	ck_assert(sim_run(&sim, t0 + 2 * S, NULL));
	ck_assert_int_eq(second->state, RUDP__ESTABLISHED);
	ck_assert_uint_eq(listener_b->nqueued, 1);
}
END_TEST

START_TEST(test_conn_duplicate_syn_after_established_gets_ack)
{
	rudp__usec t0 = sim.now;

	sim.dup_pct = 100;
	sim.jitter = 100 * MS; /* duplicates arrive late, after the ACK */
	start(4);
	ck_assert(sim_run(&sim, t0 + 5 * S, NULL));
	ck_assert_int_eq(conn_a->state, RUDP__ESTABLISHED);
	ck_assert_uint_eq(listener_b->nqueued, 1);
	ck_assert_uint_eq(sim.node[B].ep.nconns, 2);
	ck_assert_uint_eq(sim.node[B].accepts, 1);
}
END_TEST

START_TEST(test_conn_iss_wraparound)
{
	rudp__usec t0 = sim.now;

	/*
	 * Every id and initial sequence number drawn from here on is 2^32 - 1,
	 * so both acks wrap to 0 (the listener's own id stays random, so the
	 * child's cannot collide with it).
	 */
	listener_b = sim_listen(&sim, B, 4);
	sim.force_rand = UINT32_MAX;
	conn_a = sim_connect(&sim, A, B);
	ck_assert(sim_run(&sim, t0 + 5 * S, both_done));
	ck_assert_int_eq(conn_a->state, RUDP__ESTABLISHED);
	ck_assert_uint_eq(conn_a->snd_una, 0);
	ck_assert_uint_eq(conn_a->rcv_nxt, 0);
	ck_assert_uint_eq(listener_b->nqueued, 1);
}
END_TEST

/*
 * Buffer sizes the program set (SO_RCVBUF, SO_SNDBUF) size the connection:
 * the connecting side's own, and what a listener accepts inherits the
 * listener's.  Each side then advertises its own receive buffer.
 */
START_TEST(test_conn_buffer_sizes_set_before_the_handshake_hold)
{
	listener_b = sim_listen(&sim, B, 4);
	listener_b->rcv_wnd = 64 * 1024;
	listener_b->sb.cap = 96 * 1024;
	conn_a = rudp__ep_conn_new(&sim.node[A].ep);
	ck_assert_ptr_nonnull(conn_a);
	conn_a->rcv_wnd = 48 * 1024;
	sim_connect_conn(&sim, conn_a, B);
	ck_assert(sim_run(&sim, sim.now + 5 * S, both_done));
	struct rudp__conn *c = rudp__conn_accept(listener_b);
	ck_assert_ptr_nonnull(c);
	c->user_owned = true;
	ck_assert_uint_eq(c->rb.cap, 64 * 1024);
	ck_assert_uint_eq(c->sb.cap, 96 * 1024);
	ck_assert_uint_eq(conn_a->rb.cap, 48 * 1024);
	ck_assert_uint_eq(conn_a->snd_wnd, 64 * 1024);
	ck_assert_uint_eq(c->snd_wnd, 48 * 1024);
}
END_TEST

static void establish(void)
{
	start(4);
	ck_assert(sim_run(&sim, sim.now + 5 * S, both_done));
}

START_TEST(test_conn_abort_resets_peer)
{
	establish();
	struct rudp__conn *b = rudp__conn_accept(listener_b);
	b->user_owned = true;
	rudp__ep_release(&sim.node[A].ep, conn_a);
	ck_assert(sim_run(&sim, sim.now + 1 * S, NULL));
	ck_assert_int_eq(b->state, RUDP__CLOSED);
	ck_assert_int_eq(b->err, ECONNRESET);
	/* A's side is gone entirely once its RST went out. */
	ck_assert_uint_eq(sim.node[A].ep.nconns, 0);
}
END_TEST

START_TEST(test_conn_rst_outside_window_ignored)
{
	uint8_t buf[RUDP__HDR_LEN];
	struct rudp__hdr h = { 0 };

	establish();
	struct rudp__conn *b = rudp__conn_accept(listener_b);
	b->user_owned = true;
	h.flags = RUDP__F_RST;
	h.src_cid = b->local_cid;
	h.dst_cid = conn_a->local_cid;
	h.seq = conn_a->rcv_nxt + conn_a->rcv_wnd + 10;
	ck_assert_int_gt(rudp__wire_encode(&h, NULL, buf, sizeof(buf)), 0);
	sim_inject(&sim, B, A, buf, sizeof(buf));
	ck_assert_int_eq(conn_a->state, RUDP__ESTABLISHED);
	h.seq = conn_a->rcv_nxt;
	ck_assert_int_gt(rudp__wire_encode(&h, NULL, buf, sizeof(buf)), 0);
	sim_inject(&sim, B, A, buf, sizeof(buf));
	ck_assert_int_eq(conn_a->state, RUDP__CLOSED);
	ck_assert_int_eq(conn_a->err, ECONNRESET);
}
END_TEST

START_TEST(test_conn_rst_in_syn_sent_must_ack_our_syn)
{
	uint8_t buf[RUDP__HDR_LEN];
	struct rudp__hdr h = { 0 };

	conn_a = sim_connect(&sim, A, B);
	h.flags = RUDP__F_RST | RUDP__F_ACK;
	h.src_cid = 7;
	h.dst_cid = conn_a->local_cid;
	h.ack = conn_a->snd_nxt + 1; /* not the ack of our SYN */
	ck_assert_int_gt(rudp__wire_encode(&h, NULL, buf, sizeof(buf)), 0);
	sim_inject(&sim, B, A, buf, sizeof(buf));
	ck_assert_int_eq(conn_a->state, RUDP__SYN_SENT);
	h.ack = conn_a->snd_nxt;
	ck_assert_int_gt(rudp__wire_encode(&h, NULL, buf, sizeof(buf)), 0);
	sim_inject(&sim, B, A, buf, sizeof(buf));
	ck_assert_int_eq(conn_a->state, RUDP__CLOSED);
	ck_assert_int_eq(conn_a->err, ECONNREFUSED);
}
END_TEST

START_TEST(test_conn_unreachable_host_soft_port_fatal)
{
	establish();
	/* Host unreachable is soft, connecting or connected. */
	rudp__ep_unreachable(&sim.node[A].ep, 0, EHOSTUNREACH);
	ck_assert_int_eq(conn_a->state, RUDP__ESTABLISHED);
	struct rudp__conn *c = sim_connect(&sim, A, B);
	rudp__ep_unreachable(&sim.node[A].ep, 0, EHOSTUNREACH);
	ck_assert_int_eq(c->state, RUDP__SYN_SENT);
	/*
	 * Port unreachable refuses the attempt and resets the open
	 * connection: its peer's process, where its state lived, is gone.
	 */
	rudp__ep_unreachable(&sim.node[A].ep, 0, ECONNREFUSED);
	ck_assert_int_eq(c->state, RUDP__CLOSED);
	ck_assert_int_eq(c->err, ECONNREFUSED);
	ck_assert_int_eq(conn_a->state, RUDP__CLOSED);
	ck_assert_int_eq(conn_a->err, ECONNRESET);
}
END_TEST

START_TEST(test_conn_unreachable_names_the_peer)
{
	establish();
	struct rudp__conn *other = sim_connect(&sim, A, C_NODE);
	/* An error about some other connection leaves this one alone. */
	rudp__ep_unreachable(&sim.node[A].ep, other->local_cid, ECONNREFUSED);
	ck_assert_int_eq(conn_a->state, RUDP__ESTABLISHED);
	ck_assert_int_eq(other->state, RUDP__CLOSED);
	rudp__ep_unreachable(&sim.node[A].ep, conn_a->local_cid, ECONNREFUSED);
	ck_assert_int_eq(conn_a->state, RUDP__CLOSED);
}
END_TEST

START_TEST(test_conn_listener_close_aborts_children)
{
	rudp__usec t0 = sim.now;

	drop(A, RUDP__F_ACK, -1); /* keep one child half-open */
	start(4);
	ck_assert(sim_run(&sim, t0 + 100 * MS, NULL));
	ck_assert_uint_eq(listener_b->npending, 1);
	rudp__ep_release(&sim.node[B].ep, listener_b);
	sim.filter = NULL;
	ck_assert(sim_run(&sim, sim.now + 1 * S, NULL));
	/* The child reset A and then everything on B was reaped. */
	ck_assert_uint_eq(sim.node[B].ep.nconns, 0);
	ck_assert_int_eq(conn_a->state, RUDP__CLOSED);
	ck_assert_int_eq(conn_a->err, ECONNRESET);
}
END_TEST

static Suite *conn_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc;

	tc = tcase_create("transition_table");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_conn_table_matches_the_diagram);
	tcase_add_loop_test(tc, test_conn_legal_transition_taken, 0, NLEGAL);
	tcase_add_test(tc, test_conn_illegal_transition_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("handshake");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_conn_handshake_clean);
	tcase_add_test(tc, test_conn_iss_wraparound);
	tcase_add_test(tc, test_conn_duplicate_syn_after_established_gets_ack);
	tcase_add_test(tc, test_conn_backlog_drops_then_admits);
	tcase_add_test(tc, test_conn_buffer_sizes_set_before_the_handshake_hold);
	suite_add_tcase(s, tc);

	tc = tcase_create("handshake_loss");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_conn_lost_syn_is_retransmitted_after_initial_rto);
	tcase_add_test(tc, test_conn_lost_syn_without_timestamps_rto_3s);
	tcase_add_test(tc, test_conn_lost_synack_is_recovered_without_second_child);
	tcase_add_test(tc, test_conn_lost_final_ack_is_recovered);
	tcase_add_test(tc, test_conn_syn_backoff_then_etimedout);
	tcase_add_test(tc, test_conn_synack_retries_exhausted_frees_child);
	tcase_add_test(tc, test_conn_handshake_under_random_loss);
	suite_add_tcase(s, tc);

	tc = tcase_create("resets_and_errors");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_conn_rst_from_port_without_listener);
	tcase_add_test(tc, test_conn_abort_resets_peer);
	tcase_add_test(tc, test_conn_rst_outside_window_ignored);
	tcase_add_test(tc, test_conn_rst_in_syn_sent_must_ack_our_syn);
	tcase_add_test(tc, test_conn_unreachable_host_soft_port_fatal);
	tcase_add_test(tc, test_conn_unreachable_names_the_peer);
	tcase_add_test(tc, test_conn_listener_close_aborts_children);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(conn_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
