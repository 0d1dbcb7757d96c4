"""Addresses and socket options of rudp sockets, as a TCP program sees them.

    names.py PORT4 PORT6

A listener, a client and the accepted connection on 127.0.0.1:PORT4 and,
if the loopback has IPv6, on [::1]:PORT6 (both ports in RUDP_PORTS).
"""
import errno
import socket
import struct
import sys

from shimlib import accept_within, check, have_ipv6_loopback, is_rudp, say

PORT4, PORT6 = int(sys.argv[1]), int(sys.argv[2])
SOL, TCP = socket.SOL_SOCKET, socket.IPPROTO_TCP


def addr(family, host, port):
    return (host, port) if family == socket.AF_INET else (host, port, 0, 0)


def geti(s, level, name):
    return s.getsockopt(level, name)


def run(family, host, port):
    fam = "IPv4" if family == socket.AF_INET else "IPv6"
    say(f"{fam}: listener, client and accepted connection on {host} {port}")
    server = addr(family, host, port)

    lst = socket.socket(family, socket.SOCK_STREAM)
    lst.setsockopt(SOL, socket.SO_REUSEADDR, 1)
    lst.bind(server[:2])
    lst.listen(4)
    check(is_rudp(lst), f"{fam} listener is an rudp socket")
    check(lst.getsockname() == server,
          f"listener getsockname {lst.getsockname()} == {server}")
    try:
        lst.getpeername()
        got = "an address"
    except OSError as e:
        got = errno.errorcode.get(e.errno, e.errno)
    check(got == "ENOTCONN", f"listener getpeername fails with ENOTCONN ({got})")

    c = socket.socket(family, socket.SOCK_STREAM)
    # Options set on the kernel TCP socket before connect() must survive
    # the shim replacing it with an rudp socket.
    c.setsockopt(TCP, socket.TCP_NODELAY, 1)
    c.setsockopt(SOL, socket.SO_KEEPALIVE, 1)
    c.setsockopt(TCP, socket.TCP_KEEPIDLE, 42)
    c.setsockopt(SOL, socket.SO_LINGER, struct.pack("ii", 1, 7))
    c.settimeout(5)
    c.connect(server[:2])
    check(is_rudp(c), f"{fam} client is an rudp socket")
    conn, peer = accept_within(lst)
    check(is_rudp(conn), f"{fam} accepted connection is an rudp socket")

    cname, cpeer = c.getsockname(), c.getpeername()
    check(cname == peer,
          f"client getsockname {cname} == address accept() returned {peer}")
    check(conn.getpeername() == cname,
          f"server getpeername {conn.getpeername()} == client getsockname")
    check(cpeer == server, f"client getpeername {cpeer} == server {server}")
    check(conn.getsockname() == server,
          f"accepted getsockname {conn.getsockname()} == {server}")
    check(cname[0] == host and cname[1] not in (0, port),
          f"client has its own ephemeral port on {host} ({cname[1]})")

    check(geti(c, TCP, socket.TCP_NODELAY) == 1,
          "TCP_NODELAY set before connect reads back 1")
    check(geti(c, SOL, socket.SO_KEEPALIVE) == 1,
          "SO_KEEPALIVE set before connect reads back 1")
    check(geti(c, TCP, socket.TCP_KEEPIDLE) == 42,
          "TCP_KEEPIDLE set before connect reads back 42")
    lg = struct.unpack("ii", c.getsockopt(SOL, socket.SO_LINGER, 8))
    check(lg == (1, 7), f"SO_LINGER set before connect reads back {lg}")

    for what, s, listening in (("listener", lst, 1), ("client", c, 0),
                               ("accepted", conn, 0)):
        check(geti(s, SOL, socket.SO_TYPE) == socket.SOCK_STREAM,
              f"{what}: SO_TYPE is SOCK_STREAM")
        check(geti(s, SOL, socket.SO_DOMAIN) == family,
              f"{what}: SO_DOMAIN is {fam}")
        check(geti(s, SOL, socket.SO_PROTOCOL) == socket.IPPROTO_TCP,
              f"{what}: SO_PROTOCOL is IPPROTO_TCP")
        check(geti(s, SOL, socket.SO_ACCEPTCONN) == listening,
              f"{what}: SO_ACCEPTCONN is {listening}")

    for what, s in (("client", c), ("accepted", conn)):
        s.setsockopt(TCP, socket.TCP_NODELAY, 1)
        s.setsockopt(SOL, socket.SO_KEEPALIVE, 1)
        s.setsockopt(SOL, socket.SO_REUSEADDR, 1)
        s.setsockopt(SOL, socket.SO_RCVBUF, 1 << 16)
        s.setsockopt(SOL, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.setsockopt(TCP, socket.TCP_KEEPIDLE, 30)
        # Each would have raised OSError had it failed.
        print(f"ok: {what}: setsockopt TCP_NODELAY, SO_KEEPALIVE, "
              "SO_REUSEADDR, SO_RCVBUF, SO_LINGER, TCP_KEEPIDLE succeed",
              flush=True)
        check(geti(s, TCP, socket.TCP_NODELAY) == 1,
              f"{what}: TCP_NODELAY reads back 1")
        check(geti(s, TCP, socket.TCP_KEEPIDLE) == 30,
              f"{what}: TCP_KEEPIDLE reads back 30")
        s.setsockopt(TCP, socket.TCP_NODELAY, 0)
        check(geti(s, TCP, socket.TCP_NODELAY) == 0,
              f"{what}: TCP_NODELAY cleared reads back 0")

    conn.close()
    c.close()
    lst.close()


run(socket.AF_INET, "127.0.0.1", PORT4)
if have_ipv6_loopback():
    run(socket.AF_INET6, "::1", PORT6)
else:
    say("IPv6: ::1 is not available here; IPv6 checks skipped")
print("names: all checks passed", flush=True)
