"""Helpers shared by the shim's end-to-end test programs.

The programs run under the shim (LD_PRELOAD) as ordinary Python programs;
these helpers only report and look things up.  Whether a descriptor is an
rudp socket is decided from the kernel's own tables, not from the shim's
answers: an rudp descriptor is one end of an AF_UNIX socket pair (its inode
is in /proc/net/unix), a kernel TCP socket is in /proc/net/tcp{,6}.
"""
import os
import socket
import sys
import time

DEADLINE = 5.0  # seconds any single wait may take


def check(cond, what):
    """Prints 'ok: what', or 'FAIL: what' and exits 1."""
    if not cond:
        print(f"FAIL: {what}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def say(what):
    print(f"-- {what}", flush=True)


def _inodes(path, col):
    found = set()
    try:
        with open(path) as f:
            next(f)  # header
            for line in f:
                fields = line.split()
                if len(fields) > col:
                    found.add(int(fields[col]))
    except FileNotFoundError:
        pass
    return found


def inode(fd):
    return os.fstat(fd).st_ino


def is_rudp(sock_or_fd):
    """Whether the descriptor is the program's end of an rudp socket pair."""
    fd = sock_or_fd if isinstance(sock_or_fd, int) else sock_or_fd.fileno()
    return inode(fd) in _inodes("/proc/net/unix", 6)


def is_kernel_tcp(sock_or_fd):
    fd = sock_or_fd if isinstance(sock_or_fd, int) else sock_or_fd.fileno()
    ino = inode(fd)
    return ino in _inodes("/proc/net/tcp", 9) | _inodes("/proc/net/tcp6", 9)


def accept_within(lst, secs=DEADLINE):
    """accept() on lst with a bound on the wait, restoring its mode after."""
    old = lst.gettimeout()
    lst.settimeout(secs)
    try:
        return lst.accept()
    finally:
        lst.settimeout(old)


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as u:
            u.bind(("::1", 0))
        return True
    except OSError:
        return False


class Deadline:
    def __init__(self, secs=DEADLINE):
        self.end = time.monotonic() + secs

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def expired(self):
        return time.monotonic() >= self.end


def accept_one(host, port, secs=10):
    """Listens on (host, port), over IPv6 when host has a colon, and returns
    the first connection accepted within secs and the listener (kept open
    by the caller for as long as it would be)."""
    lst = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((host, port))
    lst.listen(1)
    conn, _ = accept_within(lst, secs)
    return conn, lst
