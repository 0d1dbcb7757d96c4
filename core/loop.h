/*
 * The event loop: the one background thread of the process.  It owns the
 * UDP sockets, an epoll set, a timerfd armed at the earliest protocol
 * deadline and an eventfd to wake it, and it is the only place (with the
 * API calls, which flush what they queue) that moves datagrams between the
 * sans-I/O endpoints and the kernel.  One mutex guards all protocol state;
 * API calls hold it while they act and wait on condition variables with it.
 */
#ifndef RUDP_CORE_LOOP_H
#define RUDP_CORE_LOOP_H

#include <pthread.h>
#include <stdbool.h>

#include "endpoint.h"
#include "udpio.h"

/* What an epoll event points at; the first member of each owner. */
enum rudp__src_kind { RUDP__SRC_TIMER, RUDP__SRC_WAKE, RUDP__SRC_UDP,
		      RUDP__SRC_SOCK };

struct rudp__src {
	enum rudp__src_kind kind;
	bool dead;                  /* closed; freed once the loop is past it */
	struct rudp__src *grave_next;
};

/* A loop endpoint: one UDP socket and the sans-I/O endpoint behind it. */
struct rudp__lep {
	struct rudp__src src;
	struct rudp__ep ep;
	int fd;
	int domain;
	bool connected;   /* connect()ed: ICMP errors reach us */
	struct rudp__udpcaps caps;
	unsigned refs;    /* API sockets using it */
	struct rudp__timer timer;
	struct rudp__lep *next, **pprev; /* L.leps, unlinked in O(1) */
	struct sockaddr_storage local; /* getsockname, once it has a port */
	socklen_t locallen;            /* 0 until then */
};

struct rudp__loop_hooks {
	void (*on_event)(struct rudp__conn *c, enum rudp__event ev);
	/* Connections waiting to be accepted outside the core's queue. */
	unsigned (*backlog_extra)(struct rudp__conn *listener);
	/* In a fork()ed child, before the parent's loop state is dropped. */
	void (*at_fork_child)(void);
	/* An RUDP__SRC_SOCK source reported `events`. */
	void (*on_sock)(struct rudp__src *src, uint32_t events);
	/* Frees a dead RUDP__SRC_SOCK source; false if it must wait. */
	bool (*free_sock)(struct rudp__src *src);
	/* Catches up on work the events above queued; before every unlock. */
	void (*service)(void);
	/* At process exit: finish what the program's connections sent. */
	void (*exit_flush)(rudp__usec linger);
	/* The core's deliver hook (struct rudp__ep_ops): bytes to c's program. */
	size_t (*deliver)(struct rudp__conn *c, const uint8_t *p, size_t n);
};

/*
 * Non-zero while this thread runs library code: always on the loop thread,
 * and while an API call holds the lock.  The LD_PRELOAD shim checks it so
 * that the library's own socket calls go straight to libc and never re-enter
 * the shim.
 */
extern __thread int rudp__in_core __attribute__((tls_model("initial-exec")));

/* The current time on the clock the whole library uses. */
rudp__usec rudp__now(void);

/*
 * Starts the loop thread on first use and returns with the loop's lock
 * held, or returns a negative errno (no lock held).
 */
int rudp__loop_lock(const struct rudp__loop_hooks *hooks);
void rudp__loop_unlock(void);
/*
 * The lock for the program's thread's direct writes: 0, or -EAGAIN when
 * this process runs no loop, -EBUSY when the lock is taken.
 */
int rudp__loop_trylock(const struct rudp__loop_hooks *hooks);

/* RUDP_DIRECT_WRITE (default on): write()/send() from the program's thread. */
extern bool rudp__direct_write;

/* What became of write()/send() calls on rudp descriptors (RUDP_STATS). */
enum rudp__dw_stat {
	RUDP__DW_DIRECT, RUDP__DW_BYTES, /* sent from the program's thread */
	RUDP__DW_VECTORED, /* of them, from more than one buffer (writev...) */
	RUDP__DW_BUSY,    /* the loop held the lock: to the pair */
	RUDP__DW_UNUSUAL, /* not established, shut down, not this process's... */
	RUDP__DW_PAIR,    /* bytes written earlier still in the pair */
	RUDP__DW_FULL,    /* the send ring was full */
	RUDP__DW_NSTATS
};
extern unsigned long rudp__dw_stats[RUDP__DW_NSTATS];
#define RUDP__DW_COUNT(i, n) \
	__atomic_fetch_add(&rudp__dw_stats[i], (n), __ATOMIC_RELAXED)

/* Waits on cv with the loop's lock (until the CLOCK_REALTIME time ts). */
void rudp__loop_wait(pthread_cond_t *cv);
void rudp__loop_timedwait(pthread_cond_t *cv, const struct timespec *ts);

/*
 * Whether any connection still has data or its FIN unacknowledged;
 * with `report`, each such connection is logged.
 */
bool rudp__loop_busy(bool report);


/* The settings new connections start with (environment applied). */
const struct rudp__cfg *rudp__loop_cfg(void);

/*
 * The payload size for a connection to peer: the route MTU less the IP,
 * UDP and rudp headers and room for SACK blocks, so datagrams never need
 * fragmenting (RUDP_MSS overrides).  Recent answers are cached per host;
 * on a miss the kernel is asked through connected_fd, a UDP socket
 * connected to peer, or through a throwaway socket when it is -1.
 */
uint32_t rudp__loop_mss(int domain, const struct sockaddr *peer,
			socklen_t peerlen, int connected_fd);

/*
 * Opens a UDP socket of `domain`, binds it to `local` when given (else the
 * kernel picks on first use) and connects it to `peer` when given.  The
 * new endpoint has one reference.  Lock held.
 */
int rudp__lep_open(int domain, const struct sockaddr *local,
		   socklen_t locallen, const struct sockaddr *peer,
		   socklen_t peerlen, struct rudp__lep **out);

/*
 * The endpoint's socket's address (getsockname, remembered once it has a
 * port).  0 or -errno.
 */
int rudp__lep_local_addr(struct rudp__lep *lep, struct sockaddr_storage *ss,
			 socklen_t *len);

/*
 * The endpoint bound to exactly `local` that a closed listener left to the
 * connections it accepted, with a reference taken for the caller, or NULL.
 * Lock held.
 */
struct rudp__lep *rudp__lep_orphaned(int domain, const struct sockaddr *local,
				     socklen_t locallen);

/*
 * Makes the UDP socket the next connecting socket of `domain` will use,
 * unless there is one; without the lock (see rudp__sock_spare_refill).
 */
void rudp__lep_spare_refill(int domain);

/* Connects an existing, unused endpoint's socket to peer.  Lock held. */
int rudp__lep_connect(struct rudp__lep *lep, const struct sockaddr *peer,
		      socklen_t peerlen);

/* Drops a reference; the socket closes once nothing needs it.  Lock held. */
void rudp__lep_put(struct rudp__lep *lep);

/*
 * Sends everything the endpoint has queued and re-arms its timer.  Call
 * after any change to its connections.  Lock held.
 */
void rudp__lep_flush(struct rudp__lep *lep);

/* Registers, changes or drops the epoll interest in fd.  Lock held. */
int rudp__loop_watch(int fd, uint32_t events, struct rudp__src *src);
int rudp__loop_rewatch(int fd, uint32_t events, struct rudp__src *src);
void rudp__loop_unwatch(int fd);

/* Unregisters fd and hands src to the loop to free later.  Lock held. */
void rudp__loop_bury(int fd, struct rudp__src *src);

/* Adds every endpoint's counters, living and closed, into *out. */
void rudp__loop_stats(struct rudp__ep_stats *out);

#endif
