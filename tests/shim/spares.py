"""Connections one after another use the spares the previous close made.

    spares.py PORT

Run under a soft descriptor limit below the hard one, so that the library
numbers its descriptors above the program's and makes spares.  Each
connect() after the first takes the spare pair and UDP socket: the program
must see what it would on TCP: the descriptor number the close freed, the
blocking mode it asked for, a working connection.
"""
import resource
import socket
import sys

from shimlib import accept_within, check, is_rudp, say

PORT = int(sys.argv[1])
HOST = "127.0.0.1"

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
check(soft < hard, f"the soft descriptor limit {soft} is below the hard {hard}")

lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lst.bind((HOST, PORT))
lst.listen(8)
check(is_rudp(lst), f"listener on port {PORT} is an rudp socket")

first = None
for i, timeout in enumerate((None, 3.0, None, 0.0, 3.0)):
    say(f"connection {i + 1}, timeout {timeout}")
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    fd = c.fileno()
    if first is None:
        first = fd
    check(fd == first, f"the socket is numbered {fd}, as the last one was")
    c.settimeout(timeout)
    if timeout == 0.0:
        c.connect_ex((HOST, PORT))
        c.settimeout(3.0)
    else:
        c.connect((HOST, PORT))
    check(is_rudp(c), "the connecting socket was taken over by rudp")
    check(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1,
          "TCP_NODELAY set before connect() is still set")
    a, _ = accept_within(lst)
    c.settimeout(timeout if timeout else None)
    c.sendall(b"ping %d" % i)
    got = a.recv(64)
    check(got == b"ping %d" % i, f"the peer received what was sent ({got})")
    a.sendall(b"pong")
    check(c.recv(64) == b"pong", "the answer came back")
    check(c.gettimeout() == (timeout if timeout else None),
          "the socket's blocking mode is the one the program set")
    a.close()
    c.close()
