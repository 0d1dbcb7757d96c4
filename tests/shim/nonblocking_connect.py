"""Non-blocking connect() under the shim, as event-driven programs use it.

    nonblocking_connect.py LISTEN_PORT REFUSED_PORT SILENT_PORT

LISTEN_PORT gets an rudp listener in this process; nothing listens on
REFUSED_PORT; SILENT_PORT is held by a plain UDP socket that reads and
ignores datagrams, so a connect to it stays in SYN_SENT.  All three ports
must be in RUDP_PORTS.
"""
import errno
import select
import socket
import sys

from shimlib import Deadline, accept_within, check, is_rudp, say

LISTEN, REFUSED, SILENT = (int(a) for a in sys.argv[1:4])
HOST = "127.0.0.1"
POLL_BAD = select.POLLERR | select.POLLHUP | select.POLLNVAL


def nb_connect(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    err = s.connect_ex((HOST, port))
    check(err == errno.EINPROGRESS,
          f"non-blocking connect_ex to port {port} returns EINPROGRESS "
          f"(got {errno.errorcode.get(err, err)})")
    check(is_rudp(s), "the connecting socket was taken over by rudp")
    return s


def so_error(s):
    return s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


def wait_select(s, what):
    _, w, _ = select.select([], [s], [], Deadline().left())
    check(w == [s], f"select() reports the socket writable once {what}")


def wait_poll(s, what):
    p = select.poll()
    p.register(s, select.POLLOUT)
    ev = p.poll(int(Deadline().left() * 1000))
    check(len(ev) == 1 and ev[0][0] == s.fileno()
          and ev[0][1] & select.POLLOUT,
          f"poll() reports POLLOUT once {what} (got {ev})")
    return ev[0][1]


lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lst.bind((HOST, LISTEN))
lst.listen(8)
check(is_rudp(lst), f"listener on port {LISTEN} is an rudp socket")

say("success, select()")
s = nb_connect(LISTEN)
wait_select(s, "the handshake completes")
check(so_error(s) == 0, "SO_ERROR is 0 after a successful connect")
conn, peer = accept_within(lst)
check(peer == s.getsockname(),
      f"the listener accepted this client ({peer} == {s.getsockname()})")
check(s.getpeername() == (HOST, LISTEN), "the client's peer is the listener")
conn.close()
s.close()

say("success, poll()")
s = nb_connect(LISTEN)
ev = wait_poll(s, "the handshake completes")
check(not ev & POLL_BAD, f"no POLLERR/POLLHUP on success (revents {ev:#x})")
check(so_error(s) == 0, "SO_ERROR is 0 after a successful connect")
conn, peer = accept_within(lst)
check(peer == s.getsockname(), "the listener accepted this client")
conn.close()
s.close()

say("refused, select()")
s = nb_connect(REFUSED)
wait_select(s, "the connect is refused")
err = so_error(s)
check(err == errno.ECONNREFUSED,
      f"SO_ERROR is ECONNREFUSED (got {errno.errorcode.get(err, err)})")
check(so_error(s) == 0, "reading SO_ERROR cleared it")
s.close()

say("refused, poll()")
s = nb_connect(REFUSED)
wait_poll(s, "the connect is refused")
err = so_error(s)
check(err == errno.ECONNREFUSED,
      f"SO_ERROR is ECONNREFUSED (got {errno.errorcode.get(err, err)})")
s.close()

say("no answer yet: a peer that ignores the SYN")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((HOST, SILENT))
s = nb_connect(SILENT)
u.settimeout(Deadline().left())
syn, src = u.recvfrom(65536)
check(len(syn) > 0 and src == s.getsockname(),
      f"the SYN arrived over UDP at port {SILENT} from the client's address")
_, w, _ = select.select([], [s], [], 0.2)
check(w == [], "select(): not writable within 200 ms while unanswered")
p = select.poll()
p.register(s, select.POLLOUT)
ev = p.poll(200)
check(ev == [], f"poll(): no event within 200 ms while unanswered (got {ev})")
err = so_error(s)
check(err == 0, f"SO_ERROR is 0 while still connecting (got {err})")
s.close()
u.close()
print("nonblocking_connect: all checks passed", flush=True)
