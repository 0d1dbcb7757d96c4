/*
 * Batched UDP I/O: the one place datagrams cross into and out of the
 * kernel.  Per-datagram system calls cap a UDP transport far below TCP
 * (TCP hands the kernel 64 KiB at a time), so sends go out as one
 * sendmmsg() per batch, with runs of equal-sized datagrams to the same peer
 * merged into single UDP GSO sends (UDP_SEGMENT), and receives come in by
 * recvmmsg(), with coalesced (UDP_GRO) buffers split back into datagrams.
 * Kernels without GSO or GRO get the same batches without them.
 */
#ifndef RUDP_CORE_UDPIO_H
#define RUDP_CORE_UDPIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define RUDP__TX_MAX 64     /* datagrams per send batch */
#define RUDP__RX_MAX 32     /* receive slots per recvmmsg() */
#define RUDP__RX_SLOT 65536 /* bytes per slot: a whole coalesced buffer */

/*
 * One datagram to send, as pieces the kernel gathers: its header, written
 * into the batch's buffer, then its payload where it already lies (a send
 * ring; two slices when it wraps), so no byte is copied in user space.
 */
struct rudp__txdgram {
	struct iovec iov[3];
	unsigned niov;
	uint32_t len; /* the datagram's length: every piece together */
	struct sockaddr_storage to;
	socklen_t tolen;
};

struct rudp__txbatch {
	uint8_t *buf; /* RUDP__TX_MAX headers of up to RUDP__MAX_HDR bytes */
	size_t used;
	struct rudp__txdgram d[RUDP__TX_MAX];
	unsigned n;
};

struct rudp__rxdgram {
	const uint8_t *p;
	size_t len;
	const struct sockaddr_storage *from;
	socklen_t fromlen;
};

struct rudp__rxbatch {
	uint8_t *buf; /* RUDP__RX_MAX slots */
	struct sockaddr_storage from[RUDP__RX_MAX];
	socklen_t fromlen[RUDP__RX_MAX];
	size_t len[RUDP__RX_MAX];
	uint16_t gso[RUDP__RX_MAX]; /* segment size of a coalesced slot, or 0 */
	unsigned n;
};

/* Per-socket switches, set once we learn the kernel lacks a feature. */
struct rudp__udpcaps {
	bool no_gso;
};

int rudp__udpio_init(struct rudp__txbatch *tx, struct rudp__rxbatch *rx);

/* Asks the kernel to coalesce received datagrams (harmless if it cannot). */
void rudp__udpio_enable_gro(int fd);

/*
 * Sends the batch on fd (connected: destinations ignored).  Returns 0, or
 * the -errno of a failure the caller must act on (-ECONNREFUSED: the
 * peer's ICMP answer on a connected socket).  Datagrams the kernel could
 * not take are dropped, as the network would drop them.
 */
int rudp__udpio_send(int fd, bool connected, struct rudp__udpcaps *caps,
		     const struct rudp__txbatch *tx);

/*
 * Receives up to RUDP__RX_MAX buffers.  Returns how many, 0 when none is
 * waiting, or -errno.
 */
int rudp__udpio_recv(int fd, struct rudp__rxbatch *rx);

/*
 * The i-th datagram of a received batch: walks slot by slot, splitting
 * coalesced slots.  Returns false when the batch is exhausted.
 */
bool rudp__udpio_next(const struct rudp__rxbatch *rx, unsigned *slot,
		      size_t *off, struct rudp__rxdgram *out);

#endif
