#include "loop.h"

#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "ownfd.h"
#include "udpio.h"

#define MAX_EVENTS 64
#define RX_BATCH   64
#define RX_ROUNDS  4
#define ACK_EVERY  8

struct loop {
	pthread_mutex_t mu;
	bool started;             /* this process has its loop thread */
	bool atfork;              /* fork handlers registered (inherited) */
	const struct rudp__loop_hooks *hooks;
	int epfd;
	struct rudp__src timer_src;
	int tfd;
	rudp__usec armed;
	struct rudp__src wake_src;
	int efd;
	int gro_hold;             /* a UDP socket with GRO on, never used */
	struct rudp__heap timers; /* endpoints by their next deadline */
	struct rudp__lep *leps;
	struct rudp__src *graveyard;
	struct rudp__cfg cfg;
	unsigned mss_override;    /* RUDP_MSS, 0 for the route's */
	rudp__usec exit_linger;   /* RUDP_EXIT_LINGER_MS */
	unsigned busy_poll;       /* RUDP_BUSY_POLL_US, 0 = sleep at once */
	struct rudp__ep_stats closed_stats; /* endpoints already gone */
	uint8_t rnd[256];
	size_t rnd_left;
	uint8_t errbuf[64];       /* the start of a datagram an ICMP error quotes */
	struct rudp__txbatch tx;
	struct rudp__rxbatch rx;
};

__thread int rudp__in_core __attribute__((tls_model("initial-exec")));

static struct loop L = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.epfd = -1, .tfd = -1, .efd = -1, .gro_hold = -1,
	.armed = RUDP__NEVER,
};

rudp__usec rudp__now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (rudp__usec)ts.tv_sec * RUDP__SEC +
	       (rudp__usec)ts.tv_nsec / 1000;
}

static uint32_t loop_rand32(void *ud)
{
	uint32_t v;

	(void)ud;
	/*
	 * Initial sequence numbers and connection ids must not be guessable
	 * from outside, so they come from the kernel's CSPRNG, fetched in
	 * blocks to keep getrandom(2) off the per-connection path.
	 */
	if (L.rnd_left < sizeof(v)) {
		ssize_t n;
		do
			n = getrandom(L.rnd, sizeof(L.rnd), 0);
		while (n < 0 && errno == EINTR);
		if (n < (ssize_t)sizeof(v)) {
			/* getrandom cannot fail for 256 bytes once seeded. */
			abort();
		}
		L.rnd_left = (size_t)n;
	}
	L.rnd_left -= sizeof(v);
	memcpy(&v, L.rnd + L.rnd_left, sizeof(v));
	return v;
}

static void loop_on_event(void *ud, struct rudp__conn *c, enum rudp__event ev)
{
	(void)ud;
	L.hooks->on_event(c, ev);
}

static unsigned loop_backlog_extra(void *ud, struct rudp__conn *l)
{
	(void)ud;
	return L.hooks->backlog_extra(l);
}

static size_t loop_deliver(void *ud, struct rudp__conn *c, const uint8_t *p,
			   size_t n)
{
	(void)ud;
	return L.hooks->deliver(c, p, n);
}

static uint32_t loop_peer_mss(void *ud, const struct sockaddr *peer,
			      socklen_t len)
{
	(void)ud;
	return rudp__loop_mss(peer->sa_family, peer, len, -1);
}

/* Reads an unsigned setting from the environment, keeping *v if unset. */
static void env_uint(const char *name, unsigned max, unsigned *v)
{
	const char *s = getenv(name);
	char *end;

	if (!s || !*s)
		return;
	errno = 0;
	unsigned long x = strtoul(s, &end, 10);
	if (errno || *end || x > max || s[0] == '-') {
		rudp__log(RUDP__LOG_ERROR,
			  "%s=%s is not a number from 0 to %u; using %u", name,
			  s, max, *v);
		return;
	}
	*v = (unsigned)x;
}

static void read_config(void)
{
	const char *lvl = getenv("RUDP_LOG");
	unsigned rto_ms;

	if (rudp__log_parse(lvl, &rudp__log_level) < 0)
		rudp__log(RUDP__LOG_ERROR,
			  "RUDP_LOG=%s is not error, warn, info or debug", lvl);
	rudp__cfg_default(&L.cfg);
	env_uint("RUDP_SYN_RETRIES", 32, &L.cfg.syn_retries);
	env_uint("RUDP_SYNACK_RETRIES", 32, &L.cfg.synack_retries);
	rto_ms = (unsigned)(L.cfg.rto_initial / RUDP__MSEC);
	env_uint("RUDP_RTO_INITIAL_MS", 60000, &rto_ms);
	if (rto_ms)
		L.cfg.rto_initial = rto_ms * RUDP__MSEC;
	env_uint("RUDP_DATA_RETRIES", 32, &L.cfg.data_retries);
	const char *cc = getenv("RUDP_CC");
	if (cc && *cc) {
		const struct rudp__cc_ops *ops = rudp__cc_find(cc);
		if (ops)
			L.cfg.cc = ops;
		else
			rudp__log(RUDP__LOG_ERROR, "RUDP_CC=%s is not newreno, "
				  "cubic or lossdiff; using %s", cc,
				  L.cfg.cc->name);
	}
	unsigned ms = (unsigned)(L.cfg.time_wait / RUDP__MSEC);
	env_uint("RUDP_TIME_WAIT_MS", 600000, &ms);
	L.cfg.time_wait = ms * RUDP__MSEC;
	ms = 10000;
	env_uint("RUDP_EXIT_LINGER_MS", 600000, &ms);
	L.exit_linger = ms * RUDP__MSEC;
	L.busy_poll = 0;
	unsigned dw = 1;
	env_uint("RUDP_DIRECT_WRITE", 1, &dw);
	__atomic_store_n(&rudp__direct_write, dw != 0, __ATOMIC_RELAXED);
	env_uint("RUDP_BUSY_POLL_US", 10000, &L.busy_poll);
	L.mss_override = 0;
	env_uint("RUDP_MSS", RUDP__MAX_DGRAM - RUDP__HDR_LEN -
			     RUDP__DATA_SACK * RUDP__SACK_LEN, &L.mss_override);
	if (L.mss_override && L.mss_override < 64) {
		rudp__log(RUDP__LOG_ERROR, "RUDP_MSS=%u is below 64; ignored",
			  L.mss_override);
		L.mss_override = 0;
	}
}

/*
 * Path MTUs of recent peers, so that a burst of connections from or to one
 * host does not ask the kernel each time (with a throwaway socket for the
 * peers of an unconnected listener): the host's address (port left out)
 * and what the kernel said, for a second.
 */
#define MTU_CACHE 16
#define MTU_CACHE_TTL RUDP__SEC
static struct {
	struct sockaddr_storage host;
	rudp__usec at;
	int mtu;
} mtu_cache[MTU_CACHE];

static size_t host_key(const struct sockaddr *peer, socklen_t peerlen,
		       struct sockaddr_storage *host)
{
	memset(host, 0, sizeof(*host));
	memcpy(host, peer, peerlen < sizeof(*host) ? peerlen : sizeof(*host));
	if (peer->sa_family == AF_INET)
		((struct sockaddr_in *)host)->sin_port = 0;
	else if (peer->sa_family == AF_INET6)
		((struct sockaddr_in6 *)host)->sin6_port = 0;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < sizeof(*host); i++)
		h = (h ^ ((const uint8_t *)host)[i]) * 16777619u;
	return h % MTU_CACHE;
}

static int path_mtu(int fd, int domain)
{
	int mtu = 0;
	socklen_t len = sizeof(mtu);

	if (getsockopt(fd, domain == AF_INET ? IPPROTO_IP : IPPROTO_IPV6,
		       domain == AF_INET ? IP_MTU : IPV6_MTU, &mtu, &len) < 0)
		return 0;
	return mtu;
}

static uint32_t mss_of_mtu(int domain, int mtu)
{
	const uint32_t overhead = RUDP__HDR_LEN + RUDP__DATA_SACK * RUDP__SACK_LEN;
	uint32_t iphdr = domain == AF_INET ? 20 : 40;

	if (mtu < 576)
		return L.cfg.mss;
	uint32_t dgram = (uint32_t)mtu - iphdr - 8;
	if (dgram > RUDP__MAX_DGRAM)
		dgram = RUDP__MAX_DGRAM;
	return dgram - overhead;
}

const struct rudp__cfg *rudp__loop_cfg(void)
{
	return &L.cfg;
}

uint32_t rudp__loop_mss(int domain, const struct sockaddr *peer,
			socklen_t peerlen, int connected_fd)
{
	struct sockaddr_storage host;
	int fd, mtu = 0;

	if (L.mss_override)
		return L.mss_override;
	size_t k = host_key(peer, peerlen, &host);
	rudp__usec now = rudp__now();
	if (mtu_cache[k].mtu &&
	    rudp__time_before(now, mtu_cache[k].at + MTU_CACHE_TTL) &&
	    memcmp(&mtu_cache[k].host, &host, sizeof(host)) == 0) {
		return mss_of_mtu(domain, mtu_cache[k].mtu);
	}
	/*
	 * The kernel knows the path MTU of a connected UDP socket; a
	 * throwaway one asks for peers of an unconnected listener too.
	 */
	if (connected_fd >= 0) {
		mtu = path_mtu(connected_fd, domain);
	} else {
		fd = socket(domain, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, peer, peerlen) == 0)
			mtu = path_mtu(fd, domain);
		if (fd >= 0)
			close(fd);
	}
	if (mtu > 0) {
		mtu_cache[k].host = host;
		mtu_cache[k].at = now;
		mtu_cache[k].mtu = mtu;
	}
	return mss_of_mtu(domain, mtu);
}

static void *loop_main(void *arg);
static void at_fork_prepare(void);
static void at_fork_parent(void);
static void at_fork_child(void);

/*
 * Turning UDP_GRO on for a socket when no socket in the whole system has it
 * on flips a kernel static key (two, for IPv6), and closing the last such
 * socket flips it back: each patches kernel text on every CPU, about 46 us
 * and 48 us here against 2 us for the same socket when the key is already
 * on.  A client making one connection at a time would pay both on every
 * connection, since each has a UDP socket of its own.  So the loop holds
 * one socket with GRO on for as long as it runs: one descriptor, and the
 * key stays on (a flag test per datagram in the kernel's UDP receive path,
 * which every rudp socket turns on anyway).  An IPv6 socket turns both
 * keys on; where there is none, IPv4's is held.
 */
static void hold_gro(void)
{
	L.gro_hold = rudp__ownfd_adopt(socket(AF_INET6, SOCK_DGRAM |
						      SOCK_CLOEXEC, 0));
	if (L.gro_hold < 0)
		L.gro_hold = rudp__ownfd_adopt(socket(AF_INET, SOCK_DGRAM |
							      SOCK_CLOEXEC, 0));
	if (L.gro_hold >= 0)
		rudp__udpio_enable_gro(L.gro_hold);
}

/* Creates the loop's descriptors and thread.  Lock held. */
static int loop_start(void)
{
	struct epoll_event ev = { .events = EPOLLIN };
	sigset_t all, old;
	pthread_t t;
	pthread_attr_t attr;
	int r;

	read_config();
	rudp__ownfd_init();
	rudp__heap_init(&L.timers);
	if (!L.tx.buf && rudp__udpio_init(&L.tx, &L.rx) < 0) {
		errno = ENOMEM;
		goto fail;
	}
	L.timer_src.kind = RUDP__SRC_TIMER;
	L.wake_src.kind = RUDP__SRC_WAKE;
	L.epfd = rudp__ownfd_adopt(epoll_create1(EPOLL_CLOEXEC));
	L.tfd = rudp__ownfd_adopt(timerfd_create(CLOCK_MONOTONIC,
						 TFD_CLOEXEC | TFD_NONBLOCK));
	L.efd = rudp__ownfd_adopt(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	if (L.epfd < 0 || L.tfd < 0 || L.efd < 0)
		goto fail;
	ev.data.ptr = &L.timer_src;
	if (epoll_ctl(L.epfd, EPOLL_CTL_ADD, L.tfd, &ev) < 0)
		goto fail;
	ev.data.ptr = &L.wake_src;
	if (epoll_ctl(L.epfd, EPOLL_CTL_ADD, L.efd, &ev) < 0)
		goto fail;
	hold_gro();
	/*
	 * Fork handlers are inherited by children, so registering them once
	 * per program image is enough, however often the loop restarts.
	 */
	if (!L.atfork) {
		errno = pthread_atfork(at_fork_prepare, at_fork_parent,
				       at_fork_child);
		if (errno)
			goto fail;
		L.atfork = true;
	}
	/*
	 * The loop thread blocks every signal: the program's handlers must
	 * run on the program's own threads, as they would without us.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	errno = pthread_create(&t, &attr, loop_main, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (errno)
		goto fail;
	L.started = true;
	return 0;
fail:
	r = errno ? -errno : -ENOMEM;
	rudp__log(RUDP__LOG_ERROR, "cannot start the event loop: %s",
		  strerror(-r));
	if (L.epfd >= 0)
		rudp__ownfd_close(L.epfd);
	if (L.tfd >= 0)
		rudp__ownfd_close(L.tfd);
	if (L.efd >= 0)
		rudp__ownfd_close(L.efd);
	if (L.gro_hold >= 0)
		rudp__ownfd_close(L.gro_hold);
	L.epfd = L.tfd = L.efd = L.gro_hold = -1;
	return r;
}

int rudp__loop_lock(const struct rudp__loop_hooks *hooks)
{
	pthread_mutex_lock(&L.mu);
	rudp__in_core++;
	L.hooks = hooks;
	if (!L.started) {
		int r = loop_start();
		if (r < 0) {
			rudp__in_core--;
			pthread_mutex_unlock(&L.mu);
			return r;
		}
	}
	return 0;
}

bool rudp__direct_write;
unsigned long rudp__dw_stats[RUDP__DW_NSTATS];

int rudp__loop_trylock(const struct rudp__loop_hooks *hooks)
{
	/* Never starts a loop: a process without one has nothing to send. */
	if (!__atomic_load_n(&L.started, __ATOMIC_ACQUIRE))
		return -EAGAIN;
	if (pthread_mutex_trylock(&L.mu))
		return -EBUSY;
	if (!L.started) {
		pthread_mutex_unlock(&L.mu);
		return -EAGAIN;
	}
	rudp__in_core++;
	L.hooks = hooks;
	return 0;
}

void rudp__loop_unlock(void)
{
	if (L.hooks && L.started)
		L.hooks->service();
	rudp__in_core--;
	pthread_mutex_unlock(&L.mu);
}

void rudp__loop_wait(pthread_cond_t *cv)
{
	pthread_cond_wait(cv, &L.mu);
}

void rudp__loop_timedwait(pthread_cond_t *cv, const struct timespec *ts)
{
	pthread_cond_timedwait(cv, &L.mu, ts);
}


bool rudp__loop_busy(bool report)
{
	bool busy = false;

	for (struct rudp__lep *e = L.leps; e; e = e->next) {
		for (struct rudp__conn *c = e->ep.conns; c; c = c->all_next) {
			bool b = false;
			/*
			 * Done means every byte we sent and our FIN are
			 * acknowledged: the peer's own FIN is its business,
			 * as a TCP program's exit does not wait for it either.
			 */
			switch (c->state) {
			case RUDP__CLOSED:
			case RUDP__LISTEN:
			case RUDP__FIN_WAIT_2:
			case RUDP__TIME_WAIT:
				break;
			case RUDP__SYN_SENT:
			case RUDP__SYN_RCVD:
				/* An attempt the program gave up on is no loss. */
				b = c->user_owned;
				break;
			case RUDP__ESTABLISHED:
			case RUDP__FIN_WAIT_1:
			case RUDP__CLOSE_WAIT:
			case RUDP__CLOSING:
			case RUDP__LAST_ACK:
				b = true;
				break;
			}
			if (b && report)
				rudp__log(RUDP__LOG_WARN,
					  "conn %08x still %s, %zu bytes unacked",
					  c->local_cid, rudp__state_name(c->state),
					  c->sb.len);
			busy = busy || b;
			if (busy && !report)
				return true;
		}
	}
	return busy;
}


static void timespec_of(rudp__usec t, struct timespec *ts)
{
	ts->tv_sec = (time_t)(t / RUDP__SEC);
	ts->tv_nsec = (long)(t % RUDP__SEC) * 1000;
}

/*
 * Points the timerfd at the earliest endpoint deadline when that moved
 * earlier than what is armed.  A deadline that moved later (every data
 * segment pushes its retransmission time on; every ack clears it) leaves
 * the timer as it is: it fires early, run_timers() finds nothing due and
 * arms the real deadline then.  That trades one timerfd_settime() per
 * datagram for one spurious wakeup per armed period.
 */
static void rearm(void)
{
	rudp__usec when = rudp__heap_deadline(&L.timers);
	struct itimerspec its = { 0 };

	if (when == L.armed ||
	    (L.armed != RUDP__NEVER && (when == RUDP__NEVER ||
					rudp__time_before(L.armed, when))))
		return;
	/* An absolute zero would disarm: "already due" is 1 us instead. */
	if (when != RUDP__NEVER)
		timespec_of(when ? when : 1, &its.it_value);
	if (timerfd_settime(L.tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		L.armed = when;
}

int rudp__loop_watch(int fd, uint32_t events, struct rudp__src *src)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	return epoll_ctl(L.epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int rudp__loop_rewatch(int fd, uint32_t events, struct rudp__src *src)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	return epoll_ctl(L.epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void rudp__loop_unwatch(int fd)
{
	epoll_ctl(L.epfd, EPOLL_CTL_DEL, fd, NULL);
}

void rudp__loop_bury(int fd, struct rudp__src *src)
{
	if (fd >= 0)
		epoll_ctl(L.epfd, EPOLL_CTL_DEL, fd, NULL);
	src->dead = true;
	src->grave_next = L.graveyard;
	L.graveyard = src;
	/*
	 * No wake(): the loop frees it at the end of its next round, and a
	 * round already under way (events fetched before the lock) is what
	 * the burial guards against.  Waking the loop only to free memory
	 * cost every close() a context switch.
	 */
}

static void add_stats(struct rudp__ep_stats *to,
		      const struct rudp__ep_stats *s)
{
	to->dgrams_in += s->dgrams_in;
	to->dgrams_out += s->dgrams_out;
	for (int i = 0; i < RUDP__WIRE_NERR; i++)
		to->malformed[i] += s->malformed[i];
	to->no_conn += s->no_conn;
	to->retransmits += s->retransmits;
	to->backlog_drops += s->backlog_drops;
	to->resets_in += s->resets_in;
	to->resets_out += s->resets_out;
	to->reset_drops += s->reset_drops;
	to->fast_retransmits += s->fast_retransmits;
	to->timeouts += s->timeouts;
	to->undos += s->undos;
	to->data_in += s->data_in;
	to->data_out += s->data_out;
	to->dup_data += s->dup_data;
}

void rudp__loop_stats(struct rudp__ep_stats *out)
{
	memset(out, 0, sizeof(*out));
	add_stats(out, &L.closed_stats);
	for (struct rudp__lep *e = L.leps; e; e = e->next)
		add_stats(out, &e->ep.stats);
}

/*
 * UDP socket buffers must hold a whole congestion window of datagrams, or
 * a burst the loop thread has not drained yet is lost before it counts:
 * the kernel's default (about 200 KiB) is three 64 KiB datagrams on
 * loopback.  Root may exceed net.core.[rw]mem_max; others get the cap.
 */
static void size_bufs(int fd)
{
	static const int want = 8 << 20;

	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
}

/*
 * Frees an endpoint that was never listed, closing its socket (which
 * ends its epoll registration): nothing can have an event for it.
 */
static void lep_free(struct rudp__lep *lep)
{
	if (lep->fd >= 0)
		rudp__ownfd_close(lep->fd);
	rudp__ep_free(&lep->ep);
	free(lep);
}

/*
 * A UDP socket and its endpoint, sized and watched, neither bound nor
 * connected nor listed yet: the part of opening an endpoint that needs no
 * lock (the configuration it reads is set when the loop starts).
 */
static int lep_new(int domain, struct rudp__lep **out)
{
	struct rudp__ep_ops ops = {
		.rand32 = loop_rand32,
		.on_event = loop_on_event,
		.backlog_extra = loop_backlog_extra,
		.mss = loop_peer_mss,
		.deliver = loop_deliver,
	};
	struct rudp__lep *lep = calloc(1, sizeof(*lep));
	int r;

	if (!lep)
		return -ENOMEM;
	lep->src.kind = RUDP__SRC_UDP;
	lep->domain = domain;
	lep->refs = 1;
	rudp__timer_init(&lep->timer);
	lep->fd = rudp__ownfd_adopt(socket(domain, SOCK_DGRAM | SOCK_NONBLOCK |
						       SOCK_CLOEXEC, 0));
	if (lep->fd < 0) {
		r = -errno;
		goto fail;
	}
	size_bufs(lep->fd);
	rudp__udpio_enable_gro(lep->fd);
	r = rudp__ep_init(&lep->ep, &L.cfg, &ops);
	if (r < 0)
		goto fail;
	/* Unbound, it hears nothing until bound or connected. */
	r = rudp__loop_watch(lep->fd, EPOLLIN, &lep->src);
	if (r < 0)
		goto fail;
	*out = lep;
	return 0;
fail:
	lep_free(lep);
	return r;
}

/*
 * A UDP socket made ahead, per address family, for the next connecting
 * socket: taking it saves that connect() the socket, moving it above the
 * program's descriptors, its buffer sizes, GRO and the epoll registration
 * (7 system calls).  Made like the spare pair (rudp__sock_spare_refill).
 */
static struct rudp__lep *spare_lep[2];

static struct rudp__lep **spare_slot(int domain)
{
	return &spare_lep[domain == AF_INET6];
}

void rudp__lep_spare_refill(int domain)
{
	struct rudp__lep *lep, *none = NULL;

	if (__atomic_load_n(spare_slot(domain), __ATOMIC_RELAXED) ||
	    !rudp__ownfd_high() || lep_new(domain, &lep) < 0)
		return;
	if (!__atomic_compare_exchange_n(spare_slot(domain), &none, lep, false,
					 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		lep_free(lep);
}

int rudp__lep_open(int domain, const struct sockaddr *local,
		   socklen_t locallen, const struct sockaddr *peer,
		   socklen_t peerlen, struct rudp__lep **out)
{
	struct rudp__lep *lep = NULL;
	int r;

	if (!local && peer)
		lep = __atomic_exchange_n(spare_slot(domain), NULL,
					  __ATOMIC_ACQUIRE);
	if (!lep) {
		r = lep_new(domain, &lep);
		if (r < 0)
			return r;
	}
	if (local && bind(lep->fd, local, locallen) < 0) {
		r = -errno;
		goto fail;
	}
	if (peer) {
		r = rudp__lep_connect(lep, peer, peerlen);
		if (r < 0)
			goto fail;
	} else {
		/*
		 * An IPv6 socket serves IPv4 peers too (v4-mapped), and the
		 * kernel queues their ICMP errors only under the IPv4 option:
		 * without it, a peer gone from a dual-stack listener went
		 * unnoticed until retransmissions gave up.
		 */
		int on = 1;
		(void)setsockopt(lep->fd, IPPROTO_IP, IP_RECVERR, &on,
				 sizeof(on));
		if (domain == AF_INET6)
			(void)setsockopt(lep->fd, IPPROTO_IPV6, IPV6_RECVERR,
					 &on, sizeof(on));
	}
	r = rudp__heap_reserve(&L.timers, L.timers.n + 1);
	if (r < 0)
		goto fail;
	lep->next = L.leps;
	if (L.leps)
		L.leps->pprev = &lep->next;
	lep->pprev = &L.leps;
	L.leps = lep;
	*out = lep;
	return 0;
fail:
	lep_free(lep);
	return r;
}

int rudp__lep_local_addr(struct rudp__lep *lep, struct sockaddr_storage *ss,
			 socklen_t *len)
{
	if (lep->locallen) {
		memcpy(ss, &lep->local, lep->locallen);
		*len = lep->locallen;
		return 0;
	}
	*len = sizeof(*ss);
	if (getsockname(lep->fd, (struct sockaddr *)ss, len) < 0)
		return -errno;
	/* Bound to a port, it keeps that address: remember it. */
	if (((struct sockaddr_in *)ss)->sin_port && *len <= sizeof(lep->local)) {
		memcpy(&lep->local, ss, *len);
		lep->locallen = *len;
	}
	return 0;
}

/*
 * A walk, but only after a bind failed with EADDRINUSE, which no busy path
 * does.  Connected endpoints (a connect()'s own socket) and ones with a
 * listener are never shared this way.
 */
struct rudp__lep *rudp__lep_orphaned(int domain, const struct sockaddr *local,
				     socklen_t locallen)
{
	for (struct rudp__lep *e = L.leps; e; e = e->next) {
		struct sockaddr_storage ss;
		socklen_t sslen;

		if (e->domain != domain || e->connected || e->ep.listener ||
		    e->src.dead || rudp__lep_local_addr(e, &ss, &sslen) < 0 ||
		    !rudp__addr_same(&ss, sslen, local, locallen))
			continue;
		e->refs++;
		return e;
	}
	return NULL;
}

/* TIME_WAIT of a connection with a UDP socket of its own (see below). */
#define CONNECTED_TIME_WAIT RUDP__MSEC

int rudp__lep_connect(struct rudp__lep *lep, const struct sockaddr *peer,
		      socklen_t peerlen)
{
	int r;

	do
		r = connect(lep->fd, peer, peerlen);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	lep->connected = true;
	/*
	 * A connected socket serves one connection, and a TIME_WAIT of
	 * seconds would hold its descriptor that long (kernel TCP's holds
	 * none): a client making hundreds of short connections a second
	 * would run out.  What the wait is for, acking the peer's FIN again
	 * when our ack was lost, the peer gets from ICMP port unreachable
	 * once the socket is gone (a connection whose peer's FIN is in ends
	 * cleanly on it), and random connection ids keep an old segment out
	 * of a later connection on the same port.  So the wait here only
	 * lets the final ack leave, which happens in the same round.  The
	 * cost: where ICMP is filtered, a peer whose last ack was lost
	 * retransmits its FIN until it gives up (its program has closed).
	 */
	if (lep->ep.cfg.time_wait > CONNECTED_TIME_WAIT)
		lep->ep.cfg.time_wait = CONNECTED_TIME_WAIT;
	return 0;
}

static void lep_close_if_unused(struct rudp__lep *lep)
{
	if (lep->refs || !rudp__ep_idle(&lep->ep) || lep->src.dead)
		return;
	/*
	 * O(1): a client's endpoints, one per connection, stay listed through
	 * TIME_WAIT, so a walk would cost thousands of steps per close.
	 */
	*lep->pprev = lep->next;
	if (lep->next)
		lep->next->pprev = lep->pprev;
	rudp__heap_remove(&L.timers, &lep->timer);
	add_stats(&L.closed_stats, &lep->ep.stats);
	rudp__ownfd_close(lep->fd);
	/* close() already took it out of the epoll set. */
	rudp__loop_bury(-1, &lep->src);
}

void rudp__lep_put(struct rudp__lep *lep)
{
	lep->refs--;
	lep_close_if_unused(lep);
}

static void read_errqueue(struct rudp__lep *lep);

void rudp__lep_flush(struct rudp__lep *lep)
{
	rudp__usec now = rudp__now();
	struct rudp__txbatch *tx = &L.tx;
	bool more = true;

	/*
	 * Gather what the endpoint wants to send into one batch (headers
	 * written back to back, payloads left in the send rings), hand the
	 * batch to the kernel, and repeat while the batch filled up.  The
	 * payloads stay valid until the send: nothing here takes in a
	 * datagram (only an ack frees ring bytes), and a connection that
	 * produced data cannot end while it does (its state only moves to
	 * FIN_WAIT_1 or LAST_ACK here).
	 */
	while (more) {
		tx->n = 0;
		tx->used = 0;
		while (tx->n < RUDP__TX_MAX) {
			struct rudp__txdgram *d = &tx->d[tx->n];
			struct rudp__slices pay;
			ssize_t n = rudp__ep_send(&lep->ep, tx->buf + tx->used,
						  RUDP__MAX_HDR, &pay, &d->to,
						  &d->tolen, now);
			if (n <= 0)
				break;
			d->iov[0].iov_base = tx->buf + tx->used;
			d->iov[0].iov_len = (size_t)n;
			d->len = (uint32_t)n;
			for (unsigned k = 0; k < pay.n; k++) {
				d->iov[1 + k] = pay.iov[k];
				d->len += (uint32_t)pay.iov[k].iov_len;
			}
			d->niov = 1 + pay.n;
			tx->used += (size_t)n;
			tx->n++;
		}
		more = tx->n == RUDP__TX_MAX;
		if (!tx->n)
			break;
		/*
		 * A send can report an earlier ICMP error.  A connected
		 * socket has one peer, so it is that peer's; an unconnected
		 * one must read its error queue to learn whose it was.
		 */
		if (rudp__udpio_send(lep->fd, lep->connected, &lep->caps, tx) ==
		    -ECONNREFUSED) {
			if (lep->connected)
				rudp__ep_unreachable(&lep->ep, 0, ECONNREFUSED);
			else
				read_errqueue(lep);
		}
	}
	(void)rudp__heap_set(&L.timers, &lep->timer,
			     rudp__ep_deadline(&lep->ep));
	rearm();
	lep_close_if_unused(lep);
}

/*
 * An unconnected socket (a listener's) hears ICMP errors through its error
 * queue (IP_RECVERR), each with the start of the datagram that drew it, so
 * the error reaches the connection that sent it and no other.
 */
static void read_errqueue(struct rudp__lep *lep)
{
	union {
		char buf[512];
		struct cmsghdr align;
	} u;

	for (int i = 0; i < RX_BATCH; i++) {
		struct iovec iov = { .iov_base = L.errbuf,
				     .iov_len = sizeof(L.errbuf) };
		struct msghdr msg = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
		};
		ssize_t n = recvmsg(lep->fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT);
		if (n < 0)
			return;
		/* The quoted datagram names our connection: its src_cid. */
		uint32_t cid = rudp__wire_src_cid(L.errbuf, (size_t)n);
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm;
		     cm = CMSG_NXTHDR(&msg, cm)) {
			if (!((cm->cmsg_level == IPPROTO_IP &&
			       cm->cmsg_type == IP_RECVERR) ||
			      (cm->cmsg_level == IPPROTO_IPV6 &&
			       cm->cmsg_type == IPV6_RECVERR)))
				continue;
			struct sock_extended_err ee;
			memcpy(&ee, CMSG_DATA(cm), sizeof(ee));
			if ((ee.ee_origin == SO_EE_ORIGIN_ICMP ||
			     ee.ee_origin == SO_EE_ORIGIN_ICMP6) && cid)
				rudp__ep_unreachable(&lep->ep, cid,
						     (int)ee.ee_errno);
		}
	}
}

static void lep_read(struct rudp__lep *lep)
{
	struct rudp__rxdgram d;

	/* A bounded number of batches, so one busy socket cannot starve. */
	for (int round = 0; round < RX_ROUNDS; round++) {
		int n = rudp__udpio_recv(lep->fd, &L.rx);
		if (n < 0) {
			if (!lep->connected)
				read_errqueue(lep);
			else if (n == -ECONNREFUSED || n == -EHOSTUNREACH ||
				 n == -ENETUNREACH)
				rudp__ep_unreachable(&lep->ep, 0, -n);
			else
				rudp__log(RUDP__LOG_WARN, "UDP receive: %s",
					  strerror(-n));
			if (!lep->connected)
				continue;
			break;
		}
		if (n == 0)
			break;
		rudp__usec now = rudp__now();
		unsigned slot = 0;
		size_t off = 0;
		unsigned k = 0;
		while (rudp__udpio_next(&L.rx, &slot, &off, &d)) {
			rudp__ep_recv(&lep->ep, (const struct sockaddr *)d.from,
				      d.fromlen, d.p, d.len, now);
			/*
			 * Acks owed go out every few datagrams, not once per
			 * batch: under loss each carries only four SACK
			 * blocks, and the sender's clock is the ack stream.
			 */
			if (++k % ACK_EVERY == 0)
				rudp__lep_flush(lep);
		}
		/*
		 * Acks for this batch go out before the next is read, but
		 * only after the bytes that arrived are handed to their
		 * programs (the service round flushes too): the program's
		 * wakeup is the latency that counts, the ack can follow.
		 */
		L.hooks->service();
		rudp__lep_flush(lep);
		if (n < RUDP__RX_MAX)
			break;
	}
	rudp__lep_flush(lep);
}

static void run_timers(void)
{
	rudp__usec now = rudp__now();
	struct rudp__timer *t;

	while ((t = rudp__heap_min(&L.timers)) &&
	       rudp__time_reached(now, t->when)) {
		struct rudp__lep *lep = (struct rudp__lep *)
			((char *)t - offsetof(struct rudp__lep, timer));
		rudp__ep_timeout(&lep->ep, now);
		/* Moves lep's timer to its next deadline (or removes it). */
		rudp__lep_flush(lep);
	}
	rearm();
}

static void reap_graveyard(void)
{
	struct rudp__src **pp = &L.graveyard;

	while (*pp) {
		struct rudp__src *s = *pp;
		bool freed = true;

		*pp = s->grave_next;
		if (s->kind == RUDP__SRC_UDP) {
			struct rudp__lep *lep = (struct rudp__lep *)s;
			rudp__ep_free(&lep->ep);
			free(lep);
		} else {
			freed = L.hooks->free_sock(s);
		}
		if (!freed) {
			/* Still in use by a waiter: keep it for later. */
			s->grave_next = *pp;
			*pp = s;
			pp = &s->grave_next;
		}
	}
}

static void *loop_main(void *arg)
{
	struct epoll_event evs[MAX_EVENTS];
	uint64_t junk;

	(void)arg;
	rudp__in_core = 1;
	for (;;) {
		int n;
		if (L.busy_poll) {
			/*
			 * Opt-in: poll without sleeping for a while after the
			 * last event, so that the next one (a request's answer)
			 * needs no wakeup.  It costs a CPU while it spins, and
			 * hurts when the CPUs are all busy.
			 */
			rudp__usec until = rudp__now() + L.busy_poll;
			do
				n = epoll_wait(L.epfd, evs, MAX_EVENTS, 0);
			while (n == 0 && rudp__time_before(rudp__now(), until));
			if (n == 0)
				n = epoll_wait(L.epfd, evs, MAX_EVENTS, -1);
		} else {
			n = epoll_wait(L.epfd, evs, MAX_EVENTS, -1);
		}
		if (n < 0) {
			if (errno != EINTR)
				rudp__log(RUDP__LOG_ERROR, "epoll_wait: %s",
					  strerror(errno));
			continue;
		}
		pthread_mutex_lock(&L.mu);
		for (int i = 0; i < n; i++) {
			struct rudp__src *src = evs[i].data.ptr;
			if (src->dead)
				continue;
			switch (src->kind) {
			case RUDP__SRC_TIMER:
			case RUDP__SRC_WAKE:
				/* Level-triggered: drain or it fires forever. */
				while (read(src->kind == RUDP__SRC_TIMER
						    ? L.tfd : L.efd,
					    &junk, sizeof(junk)) < 0 &&
				       errno == EINTR)
					;
				if (src->kind == RUDP__SRC_TIMER)
					L.armed = RUDP__NEVER;
				break;
			case RUDP__SRC_UDP:
				lep_read((struct rudp__lep *)src);
				break;
			case RUDP__SRC_SOCK:
				L.hooks->on_sock(src, evs[i].events);
				break;
			}
		}
		run_timers();
		L.hooks->service();
		reap_graveyard();
		pthread_mutex_unlock(&L.mu);
	}
	return NULL;
}

/*
 * fork(): the child gets a copy of our memory but not the loop thread.  The
 * handlers take the lock around the fork so the copy is consistent; in the
 * child the API first turns its sockets into records of descriptors whose
 * protocol lives on in the parent, then every descriptor and endpoint of
 * the parent's loop is dropped, so the next API call in the child starts a
 * loop of its own.  Connections keep working in both processes because the
 * descriptors the program holds are real and the parent keeps pumping them.
 */
static void at_fork_prepare(void)
{
	pthread_mutex_lock(&L.mu);
	rudp__in_core++;
}

static void at_fork_parent(void)
{
	rudp__in_core--;
	pthread_mutex_unlock(&L.mu);
}

static void at_fork_child(void)
{
	if (L.started && L.hooks)
		L.hooks->at_fork_child();
	/* First: the heap points into the endpoints freed next. */
	rudp__heap_free(&L.timers);
	/* Spare sockets: their descriptors are closed below with the rest. */
	for (size_t i = 0; i < sizeof(spare_lep) / sizeof(spare_lep[0]); i++) {
		if (spare_lep[i]) {
			rudp__ep_free(&spare_lep[i]->ep);
			free(spare_lep[i]);
		}
		spare_lep[i] = NULL;
	}
	while (L.leps) {
		struct rudp__lep *lep = L.leps;
		L.leps = lep->next;
		rudp__ep_free(&lep->ep);
		free(lep);
	}
	while (L.graveyard) {
		struct rudp__src *src = L.graveyard;
		L.graveyard = src->grave_next;
		if (src->kind == RUDP__SRC_UDP) {
			rudp__ep_free(&((struct rudp__lep *)src)->ep);
			free(src);
		} else {
			L.hooks->free_sock(src);
		}
	}
	for (int fd = rudp__ownfd_next(0); fd >= 0; fd = rudp__ownfd_next(fd))
		rudp__ownfd_close(fd);
	rudp__ownfd_fork_child();
	L.epfd = L.tfd = L.efd = L.gro_hold = -1;
	L.armed = RUDP__NEVER;
	/* Never hand the child the parent's unused random bytes. */
	L.rnd_left = 0;
	memset(L.rnd, 0, sizeof(L.rnd));
	L.started = false;
	rudp__in_core--;
	pthread_mutex_unlock(&L.mu);
}

/*
 * Process exit: with TCP the kernel keeps sending what a program wrote
 * after the program is gone; here the process is the protocol, so exit()
 * waits (up to RUDP_EXIT_LINGER_MS) for the connections to deliver their
 * bytes and finish closing.  _exit() and fatal signals skip this.
 */
__attribute__((destructor)) static void loop_fini(void)
{
	if (!L.started)
		return;
	pthread_mutex_lock(&L.mu);
	rudp__in_core++;
	if (L.started && L.hooks)
		L.hooks->exit_flush(L.exit_linger);
	if (getenv("RUDP_STATS")) {
		struct rudp__ep_stats st;
		rudp__loop_stats(&st);
		rudp__log_write(RUDP__LOG_INFO,
			"stats: dgrams in %llu out %llu, data in %llu out %llu, "
			"retransmits %llu (fast %llu), timeouts %llu, "
			"recoveries undone %llu, dup data %llu, no_conn %llu",
			(unsigned long long)st.dgrams_in,
			(unsigned long long)st.dgrams_out,
			(unsigned long long)st.data_in,
			(unsigned long long)st.data_out,
			(unsigned long long)st.retransmits,
			(unsigned long long)st.fast_retransmits,
			(unsigned long long)st.timeouts,
			(unsigned long long)st.undos,
			(unsigned long long)st.dup_data,
			(unsigned long long)st.no_conn);
		rudp__log_write(RUDP__LOG_INFO,
			"direct writes: %lu (%lu bytes, %lu of several buffers); "
			"to the pair: lock busy %lu, bytes already in the pair "
			"%lu, ring full %lu, other %lu",
			rudp__dw_stats[RUDP__DW_DIRECT],
			rudp__dw_stats[RUDP__DW_BYTES],
			rudp__dw_stats[RUDP__DW_VECTORED],
			rudp__dw_stats[RUDP__DW_BUSY],
			rudp__dw_stats[RUDP__DW_PAIR],
			rudp__dw_stats[RUDP__DW_FULL],
			rudp__dw_stats[RUDP__DW_UNUSUAL]);
	}
	rudp__in_core--;
	pthread_mutex_unlock(&L.mu);
}
