"""A program that closes every descriptor it did not open, as daemons do.

    closefrom.py PORT

Opens an rudp listener on 127.0.0.1:PORT, then closes every descriptor from
3 to 1023 except the listener, three ways in turn (then again with the
listener moved above the shim's descriptors): os.closerange() around
the listener (close_range(2) in glibc), close() one by one, and libc's
closefrom() above it (after closerange below it).  After each, clients (one
in this process, one `nc -z` child) must still connect and be accepted:
the shim's own descriptors (UDP socket, event loop, socket-pair ends) must
have survived.
"""
import ctypes
import fcntl
import os
import socket
import subprocess
import sys

from shimlib import accept_within, check, is_rudp, say

PORT = int(sys.argv[1])
HOST = "127.0.0.1"
LIBC = ctypes.CDLL(None, use_errno=True)


def fds():
    """Open descriptors, less the one listdir() used to read the list."""
    found = set()
    for n in os.listdir("/proc/self/fd"):
        try:
            os.readlink(f"/proc/self/fd/{n}")
        except FileNotFoundError:
            continue  # listdir's own, closed by now
        found.add(int(n))
    return found


def serve_two(lst, label):
    c = socket.create_connection((HOST, PORT), timeout=5)
    check(is_rudp(c), f"{label}: in-process client is rudp")
    conn, peer = accept_within(lst)
    check(peer == c.getsockname(), f"{label}: in-process client accepted")
    conn.close()
    c.close()
    r = subprocess.run(["nc", "-z", HOST, str(PORT)], timeout=5)
    check(r.returncode == 0, f"{label}: nc -z child connects (exit 0)")
    conn, peer = accept_within(lst)
    check(peer[0] == HOST, f"{label}: nc -z child accepted, from {peer}")
    conn.close()


inherited = fds()
lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lst.bind((HOST, PORT))
lst.listen(8)
lfd = lst.fileno()
check(is_rudp(lst), f"listener (fd {lfd}) is an rudp socket")
mine = {0, 1, 2, lfd}
# What the shim opened for the listener (UDP socket, socket-pair end, event
# loop): stable for as long as the listener lives.
theirs = fds() - mine - inherited
check(len(theirs) >= 2,
      f"the shim holds descriptors of its own: {sorted(theirs)}")

rounds = (
    ("os.closerange", lambda: (os.closerange(3, lfd),
                               os.closerange(lfd + 1, 1024))),
    ("close() each", lambda: [_try_close(fd) for fd in range(3, 1024)
                              if fd != lfd]),
    ("closefrom()", lambda: (os.closerange(3, lfd),
                             LIBC.closefrom(lfd + 1))),
)


def _try_close(fd):
    try:
        os.close(fd)
    except OSError:
        pass


def run_rounds():
    for label, close_all in rounds:
        say(f"{label}: closing every descriptor from 3 to 1023 but {lfd}")
        close_all()
        left = fds()
        check(lfd in left, f"{label}: the listener fd {lfd} is still open")
        check(theirs <= left, f"{label}: the shim's descriptors "
                              f"{sorted(theirs)} survived")
        serve_two(lst, label)


# The listener below the shim's descriptors, then above them.
run_rounds()
high = fcntl.fcntl(lfd, fcntl.F_DUPFD, 100)
os.close(lst.detach())
lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM, fileno=high)
lfd = lst.fileno()
mine = {0, 1, 2, lfd}
check(is_rudp(lst) and lst.getsockname() == (HOST, PORT),
      f"the listener moved to fd {lfd} (dup, then close of the old number)")
run_rounds()
lst.close()
print("closefrom: all checks passed", flush=True)
