"""Accepting rudp connections through epoll, as servers do.

    epoll_accept.py BASE_PORT

Uses BASE_PORT .. BASE_PORT+4 (all must be in RUDP_PORTS): listeners in
level-triggered, edge-triggered and one-shot modes, plus clients registered
in epoll before their non-blocking connect() (the nginx pattern), one to a
listener and one to a port held by a UDP socket that never answers.
"""
import errno
import select
import selectors
import socket
import sys

from shimlib import Deadline, check, is_rudp, say

BASE = int(sys.argv[1])
HOST = "127.0.0.1"
NCLIENTS = 3
E = select


def listener(port):
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind((HOST, port))
    lst.listen(16)
    lst.setblocking(False)
    check(is_rudp(lst), f"listener on port {port} is an rudp socket")
    return lst


def clients(port):
    """NCLIENTS blocking connects (the handshake runs in our loop thread)."""
    cs = []
    for _ in range(NCLIENTS):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(5)
        c.connect((HOST, port))
        cs.append(c)
    return cs, {c.getsockname() for c in cs}


def finish(label, lst, cs, names, accepted):
    check(set(accepted) == names,
          f"{label}: all {NCLIENTS} clients accepted, each once")
    for c in cs:
        c.close()
    lst.close()


# --- selectors (epoll under the hood), level-triggered --------------------
say("level-triggered EPOLLIN via selectors.DefaultSelector")
lst = listener(BASE)
sel = selectors.DefaultSelector()
check(isinstance(sel, selectors.EpollSelector), "the selector is epoll")
sel.register(lst, selectors.EVENT_READ)
check(sel.select(0) == [], "no event before any client connects")
cs, names = clients(BASE)
accepted = []
dl = Deadline()
while len(accepted) < NCLIENTS and not dl.expired():
    for key, mask in sel.select(dl.left()):
        check(key.fileobj is lst and mask & selectors.EVENT_READ,
              "notification is EPOLLIN on the listener")
        # Level-triggered: one accept per notification; the next select()
        # must report the listener again while more are queued.
        try:
            conn, peer = lst.accept()
        except BlockingIOError:
            check(False, "accept() after an EPOLLIN notification succeeds")
        accepted.append(peer)
        conn.close()
check(sel.select(0.1) == [], "no further event once the queue is empty")
sel.close()
finish("level-triggered", lst, cs, names, accepted)

# --- raw epoll, edge-triggered ---------------------------------------------
say("edge-triggered EPOLLIN|EPOLLET")
lst = listener(BASE + 1)
ep = E.epoll()
ep.register(lst.fileno(), E.EPOLLIN | E.EPOLLET)
cs, names = clients(BASE + 1)
accepted = []
dl = Deadline()
notifications = 0
while len(accepted) < NCLIENTS and not dl.expired():
    for fd, ev in ep.poll(dl.left()):
        check(fd == lst.fileno() and ev & E.EPOLLIN,
              "edge notification is EPOLLIN on the listener")
        notifications += 1
        while True:  # edge-triggered: drain until EAGAIN
            try:
                conn, peer = lst.accept()
            except BlockingIOError:
                break
            accepted.append(peer)
            conn.close()
check(notifications >= 1, f"{notifications} edge notification(s) seen")
check(ep.poll(0.1) == [], "no further edge once drained")
ep.close()
finish("edge-triggered", lst, cs, names, accepted)

# --- raw epoll, one-shot, re-armed with modify -----------------------------
say("one-shot EPOLLIN|EPOLLONESHOT, re-armed with EPOLL_CTL_MOD")
lst = listener(BASE + 2)
ep = E.epoll()
ONESHOT = E.EPOLLIN | E.EPOLLONESHOT
ep.register(lst.fileno(), ONESHOT)
cs, names = clients(BASE + 2)
accepted = []
dl = Deadline()
while len(accepted) < NCLIENTS and not dl.expired():
    evs = ep.poll(dl.left())
    if not evs:
        continue
    check(evs == [(lst.fileno(), E.EPOLLIN)],
          f"one-shot notification is EPOLLIN on the listener ({evs})")
    conn, peer = lst.accept()
    accepted.append(peer)
    conn.close()
    if len(accepted) < NCLIENTS:
        # Another connection is queued (select() says so, independently of
        # epoll), yet the disarmed registration must stay silent.
        r, _, _ = select.select([lst], [], [], dl.left())
        check(r == [lst], "select(): another connection is queued")
        check(ep.poll(0.2) == [],
              "disarmed one-shot registration reports nothing")
    ep.modify(lst.fileno(), ONESHOT)
ep.close()
finish("one-shot", lst, cs, names, accepted)

# --- a client registered before connect() (nginx) --------------------------
lst = listener(BASE + 3)
for label, flags in (("level-triggered", 0), ("edge-triggered", E.EPOLLET)):
    say(f"client registered {label} in epoll before connect()")
    ep = E.epoll()
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.setblocking(False)
    ep.register(c.fileno(), E.EPOLLIN | E.EPOLLOUT | E.EPOLLRDHUP | flags)
    err = c.connect_ex((HOST, BASE + 3))
    check(err == errno.EINPROGRESS, "connect_ex returns EINPROGRESS")
    check(is_rudp(c), "the client was taken over by rudp in place")
    dl = Deadline()
    got = 0
    while not got & E.EPOLLOUT and not dl.expired():
        for fd, ev in ep.poll(dl.left()):
            check(fd == c.fileno(), f"event is for the client fd {fd}")
            got |= ev
    check(got & E.EPOLLOUT, f"EPOLLOUT arrives after the handshake ({got:#x})")
    check(not got & (E.EPOLLERR | E.EPOLLHUP), "without EPOLLERR/EPOLLHUP")
    check(c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0,
          "SO_ERROR is 0")
    lst.setblocking(True)
    lst.settimeout(5)
    conn, peer = lst.accept()
    check(peer == c.getsockname(), "the listener accepted that client")
    conn.close()
    c.close()
    ep.close()
lst.close()

say("client registered in epoll before connect() to a port that never answers")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((HOST, BASE + 4))
ep = E.epoll()
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
c.setblocking(False)
ep.register(c.fileno(), E.EPOLLIN | E.EPOLLOUT)
check(c.connect_ex((HOST, BASE + 4)) == errno.EINPROGRESS,
      "connect_ex returns EINPROGRESS")
u.settimeout(5)
u.recvfrom(65536)  # raises on timeout
say("the SYN reached the silent UDP port")
evs = ep.poll(0.2)
check(evs == [], f"no epoll event within 200 ms while unanswered ({evs})")
c.close()
u.close()
ep.close()
print("epoll_accept: all checks passed", flush=True)
