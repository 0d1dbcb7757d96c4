#define _GNU_SOURCE /* sendmmsg, recvmmsg */
#include "udpio.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* GSO takes at most this many segments, and 64 KiB in all. */
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000

int rudp__udpio_init(struct rudp__txbatch *tx, struct rudp__rxbatch *rx)
{
	tx->buf = malloc((size_t)RUDP__TX_MAX * RUDP__MAX_HDR);
	rx->buf = malloc((size_t)RUDP__RX_MAX * RUDP__RX_SLOT);
	if (!tx->buf || !rx->buf) {
		free(tx->buf);
		free(rx->buf);
		tx->buf = rx->buf = NULL;
		return -ENOMEM;
	}
	tx->used = 0;
	tx->n = 0;
	return 0;
}

void rudp__udpio_enable_gro(int fd)
{
	int on = 1;

	(void)setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof(on));
}

static bool same_peer(const struct rudp__txdgram *a,
		      const struct rudp__txdgram *b)
{
	return a->tolen == b->tolen && memcmp(&a->to, &b->to, a->tolen) == 0;
}

/* The UDP_SEGMENT control message of one GSO message. */
struct segcm {
	_Alignas(struct cmsghdr) char buf[CMSG_SPACE(sizeof(uint16_t))];
};

/*
 * Builds one message per run of equal-sized datagrams to one peer, with
 * the pieces of its datagrams gathered into iov (which has room for every
 * piece of the batch).  A GSO message is the concatenation hdr1,
 * payload1, hdr2, payload2, ... which the kernel cuts back into datagrams
 * every gso_size bytes, however the pieces fall.
 */
static unsigned build(const struct rudp__txbatch *tx, bool connected,
		      bool gso, struct mmsghdr *msgs, struct segcm *g,
		      struct iovec *iov)
{
	unsigned n = 0, niov = 0;

	for (unsigned i = 0; i < tx->n;) {
		const struct rudp__txdgram *d = &tx->d[i];
		unsigned j = i + 1;
		uint32_t total = d->len;

		/*
		 * Extend the run while the next datagram is as long (or is a
		 * shorter last one) and goes to the same peer: the kernel
		 * cuts at every gso_size bytes, so only the last may differ.
		 */
		while (gso && j < tx->n && j - i < GSO_MAX_SEGS &&
		       tx->d[j].len <= d->len && same_peer(d, &tx->d[j]) &&
		       total + tx->d[j].len <= GSO_MAX_BYTES) {
			total += tx->d[j].len;
			j++;
			if (tx->d[j - 1].len < d->len)
				break;
		}
		struct msghdr *m = &msgs[n].msg_hdr;
		memset(m, 0, sizeof(*m));
		m->msg_iov = iov + niov;
		for (unsigned k = i; k < j; k++) {
			memcpy(iov + niov, tx->d[k].iov,
			       tx->d[k].niov * sizeof(*iov));
			niov += tx->d[k].niov;
		}
		m->msg_iovlen = (size_t)(iov + niov - m->msg_iov);
		if (!connected) {
			m->msg_name = (void *)&d->to;
			m->msg_namelen = d->tolen;
		}
		if (j - i > 1) {
			uint16_t seg = (uint16_t)d->len;
			m->msg_control = g[n].buf;
			m->msg_controllen = sizeof(g[n].buf);
			struct cmsghdr *c = CMSG_FIRSTHDR(m);
			c->cmsg_level = SOL_UDP;
			c->cmsg_type = UDP_SEGMENT;
			c->cmsg_len = CMSG_LEN(sizeof(seg));
			memcpy(CMSG_DATA(c), &seg, sizeof(seg));
		}
		n++;
		i = j;
	}
	return n;
}

int rudp__udpio_send(int fd, bool connected, struct rudp__udpcaps *caps,
		     const struct rudp__txbatch *tx)
{
	struct mmsghdr msgs[RUDP__TX_MAX];
	struct segcm g[RUDP__TX_MAX];
	struct iovec iov[RUDP__TX_MAX * 3];
	unsigned n = build(tx, connected, !caps->no_gso, msgs, g, iov);
	unsigned done = 0;

	while (done < n) {
		int r = sendmmsg(fd, msgs + done, n - done, 0);
		if (r > 0) {
			done += (unsigned)r;
			continue;
		}
		if (errno == EINTR)
			continue;
		/* A kernel or device without UDP GSO: rebuild without it. */
		if ((errno == EIO || errno == EINVAL || errno == ENOPROTOOPT) &&
		    !caps->no_gso && msgs[done].msg_hdr.msg_controllen) {
			caps->no_gso = true;
			return rudp__udpio_send(fd, connected, caps, tx);
		}
		if (errno == ECONNREFUSED)
			return -ECONNREFUSED;
		/*
		 * A full socket buffer or a transient route error: drop
		 * this message like the network would and go on with the
		 * rest; retransmission covers it.
		 */
		done++;
	}
	return 0;
}

int rudp__udpio_recv(int fd, struct rudp__rxbatch *rx)
{
	struct mmsghdr msgs[RUDP__RX_MAX];
	struct iovec iov[RUDP__RX_MAX];
	struct {
		_Alignas(struct cmsghdr) char buf[CMSG_SPACE(sizeof(int))];
	} cm[RUDP__RX_MAX];
	int r;

	for (unsigned i = 0; i < RUDP__RX_MAX; i++) {
		iov[i].iov_base = rx->buf + (size_t)i * RUDP__RX_SLOT;
		iov[i].iov_len = RUDP__RX_SLOT;
		memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
		msgs[i].msg_hdr.msg_name = &rx->from[i];
		msgs[i].msg_hdr.msg_namelen = sizeof(rx->from[i]);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_control = cm[i].buf;
		msgs[i].msg_hdr.msg_controllen = sizeof(cm[i].buf);
	}
	do
		r = recvmmsg(fd, msgs, RUDP__RX_MAX, MSG_DONTWAIT, NULL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EAGAIN ? 0 : -errno;
	rx->n = (unsigned)r;
	for (int i = 0; i < r; i++) {
		struct msghdr *m = &msgs[i].msg_hdr;
		rx->fromlen[i] = m->msg_namelen;
		/* Truncated means too big to be ours: dropped by the caller. */
		rx->len[i] = (m->msg_flags & MSG_TRUNC) ? 0 : msgs[i].msg_len;
		rx->gso[i] = 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c;
		     c = CMSG_NXTHDR(m, c)) {
			if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
				int seg;
				memcpy(&seg, CMSG_DATA(c), sizeof(seg));
				rx->gso[i] = (uint16_t)seg;
			}
		}
	}
	return r;
}

bool rudp__udpio_next(const struct rudp__rxbatch *rx, unsigned *slot,
		      size_t *off, struct rudp__rxdgram *out)
{
	while (*slot < rx->n) {
		size_t len = rx->len[*slot];
		if (*off < len) {
			size_t seg = rx->gso[*slot] ? rx->gso[*slot] : len;
			if (seg > len - *off)
				seg = len - *off;
			out->p = rx->buf + (size_t)*slot * RUDP__RX_SLOT + *off;
			out->len = seg;
			out->from = &rx->from[*slot];
			out->fromlen = rx->fromlen[*slot];
			*off += seg;
			return true;
		}
		(*slot)++;
		*off = 0;
	}
	return false;
}
