"""What iperf3 -w does: a listener closed and opened again on its port, and
buffer sizes set before connect() and listen().

    relisten.py PORT

One process, as over kernel TCP: a listener accepts a connection and is
closed while that connection stays open; a new listener with SO_REUSEADDR
must bind and listen on the same port, accept a new connection, and both
connections must carry bytes both ways.  A socket without SO_REUSEADDR
must still be refused the port (EADDRINUSE), as Linux refuses it.  Buffer
sizes read back as Linux reports them: twice what was set, never 0; sizes
set on the kernel socket before the shim took it over are carried over, to
the connecting socket and to what a listener accepts.
"""
import errno
import socket
import sys

from shimlib import accept_within, check, is_rudp

PORT = int(sys.argv[1])
HOST = "127.0.0.1"


def listener(reuse, rcvbuf=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((HOST, PORT))
    s.listen(4)
    return s


def pair(lst):
    c = socket.create_connection((HOST, PORT), timeout=5)
    a, _ = accept_within(lst)
    a.settimeout(5)
    return c, a


def echo_both_ways(c, a, what):
    c.sendall(b"ping " + what)
    got = a.recv(100)
    a.sendall(b"pong " + what)
    back = c.recv(100)
    check(got == b"ping " + what and back == b"pong " + what,
          f"{what.decode()} connection carries bytes both ways")


first = listener(reuse=True)
old_c, old_a = pair(first)
first.close()

try:
    second = listener(reuse=True)
except OSError as e:
    check(False, f"a new listener with SO_REUSEADDR binds the port an "
                 f"accepted connection still holds ({e})")
check(True, "a new listener with SO_REUSEADDR binds the port an accepted "
            "connection still holds")
new_c, new_a = pair(second)
echo_both_ways(new_c, new_a, b"new")
echo_both_ways(old_c, old_a, b"old")
second.close()

plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    plain.bind((HOST, PORT))
    refused = None
except OSError as e:
    refused = e.errno
check(refused == errno.EADDRINUSE,
      "without SO_REUSEADDR the port is refused while connections hold it "
      f"(errno {refused})")
plain.close()

rcv = new_c.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
snd = new_c.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
check(rcv > 0 and snd > 0,
      f"unset buffer sizes read back as the sizes in use ({rcv}, {snd})")
new_c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 100 * 1024)
snd = new_c.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
check(snd == 200 * 1024, f"SO_SNDBUF set to 100 KiB reads back doubled ({snd})")
for x in (old_c, old_a, new_c, new_a):
    x.close()

third = listener(reuse=True, rcvbuf=96 * 1024)
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 80 * 1024)
c.settimeout(5)
c.connect((HOST, PORT))
a, _ = accept_within(third)
check(is_rudp(c) and is_rudp(a), "both ends are rudp sockets")
rc = c.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
ra = a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
check(rc == 160 * 1024, f"SO_RCVBUF set before connect() holds after it ({rc})")
check(ra == 192 * 1024,
      f"SO_RCVBUF set on the listener before bind() holds for what it accepts ({ra})")
echo_both_ways(c, a, b"sized")
for x in (c, a, third):
    x.close()
