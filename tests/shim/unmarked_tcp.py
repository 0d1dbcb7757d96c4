"""What the shim must leave alone: unmarked TCP ports, UNIX and UDP sockets.

    unmarked_tcp.py MARKED_PORT UDP_PORT UNMARKED_PORT TMPDIR

RUDP_PORTS must name MARKED_PORT and UDP_PORT but not UNMARKED_PORT.  A TCP
connection on UNMARKED_PORT must be kernel TCP (and carry data: the kernel
does it), one on MARKED_PORT rudp, in the same process; UNIX sockets and a
UDP socket bound to a marked port must work as usual.
"""
import os
import socket
import sys

from shimlib import accept_within, check, is_kernel_tcp, is_rudp, say

MARKED, UDP, UNMARKED = (int(a) for a in sys.argv[1:4])
TMP = sys.argv[4]
HOST = "127.0.0.1"


def tcp_pair(port):
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((HOST, port))
    lst.listen(4)
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(5)
    c.connect((HOST, port))
    conn, peer = accept_within(lst)
    check(peer == c.getsockname() and c.getpeername() == (HOST, port),
          f"port {port}: connected, addresses agree")
    return lst, c, conn


say(f"TCP on unmarked port {UNMARKED}")
lst, c, conn = tcp_pair(UNMARKED)
for what, s in (("listener", lst), ("client", c), ("accepted", conn)):
    check(is_kernel_tcp(s) and not is_rudp(s), f"{what} is a kernel TCP socket")
c.sendall(b"over kernel tcp")
conn.settimeout(5)
check(conn.recv(100) == b"over kernel tcp", "data crosses it (kernel TCP)")
for s in (conn, c, lst):
    s.close()

say(f"TCP on marked port {MARKED}, same process")
lst, c, conn = tcp_pair(MARKED)
for what, s in (("listener", lst), ("client", c), ("accepted", conn)):
    check(is_rudp(s) and not is_kernel_tcp(s), f"{what} is an rudp socket")
for s in (conn, c, lst):
    s.close()

say("UNIX socketpair")
a, b = socket.socketpair()
a.sendall(b"ping")
b.settimeout(5)
check(b.recv(10) == b"ping", "a UNIX socketpair carries data")
check(b.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_UNIX,
      "its SO_DOMAIN is AF_UNIX")
a.close()
b.close()

say("UNIX stream listener at a path")
path = os.path.join(TMP, "unmarked.sock")
ul = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
ul.bind(path)
ul.listen(1)
uc = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
uc.settimeout(5)
uc.connect(path)
us, _ = accept_within(ul)
uc.sendall(b"pong")
us.settimeout(5)
check(us.recv(10) == b"pong", "a UNIX stream connection carries data")
check(ul.getsockname() == path, f"its getsockname is the path")
for s in (us, uc, ul):
    s.close()

say(f"UDP on marked port {UDP}")
u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u1.bind((HOST, UDP))
u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u2.connect((HOST, UDP))
check(u1.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_DGRAM,
      "a UDP socket bound to a marked port stays SOCK_DGRAM")
check(not is_rudp(u1) and not is_rudp(u2), "neither UDP socket is rudp")
u2.send(b"datagram")
u1.settimeout(5)
data, src = u1.recvfrom(100)
check(data == b"datagram" and src == u2.getsockname(),
      "a datagram to the marked port arrives, from the sender's address")
u1.sendto(b"reply", src)
u2.settimeout(5)
check(u2.recv(100) == b"reply", "sendto() back to the sender works")
u1.close()
u2.close()
print("unmarked_tcp: all checks passed", flush=True)
