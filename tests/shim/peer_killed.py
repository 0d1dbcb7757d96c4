"""One end of a transfer whose peer is killed (kill -9) in the middle.

    peer_killed.py sender HOST PORT blocking|timeout|listen
    peer_killed.py receiver listen|connect HOST PORT

The sender connects (a plain blocking connect(), or with a timeout, which
Python does as a non-blocking connect completed by poll() and SO_ERROR),
or listens on HOST (IPv6 when it has a colon) and accepts, and sends
without end; the receiver accepts or connects and reads until
EOF or an error.  Each prints "progress" once 8 MiB have passed, which is
when the test kills the peer, then exactly one result line:

    error ERRNO_NAME after BYTES    (an exception from send or recv)
    eof after BYTES                 (the receiver read end of stream)

and exits 0.  Not ending at all is the failure the test looks for.
"""
import errno
import socket
import sys

from shimlib import accept_one, check, is_rudp

MARK = 8 << 20


def result(what, n):
    print(f"{what} after {n}", flush=True)


def sender(host, port, how):
    if how == "listen":
        s, _lst = accept_one(host, port)
    elif how == "timeout":
        s = socket.create_connection((host, port), timeout=10)
        s.settimeout(None)
    else:
        s = socket.socket()
        s.connect((host, port))
    check(is_rudp(s), f"the sender's socket ({how}) is an rudp socket")
    buf = bytes(64 << 10)
    sent = 0
    try:
        while True:
            s.sendall(buf)
            sent += len(buf)
            if sent - len(buf) < MARK <= sent:
                print("progress", flush=True)
    except OSError as e:
        result(f"error {errno.errorcode.get(e.errno, e.errno)}", sent)


def receiver(how, host, port):
    if how == "listen":
        s, _lst = accept_one(host, port)
    else:
        s = socket.socket()
        s.connect((host, port))
    check(is_rudp(s), f"the receiver's socket ({how}) is an rudp socket")
    got = 0
    try:
        while True:
            b = s.recv(64 << 10)
            if not b:
                result("eof", got)
                return
            got += len(b)
            if got - len(b) < MARK <= got:
                print("progress", flush=True)
    except OSError as e:
        result(f"error {errno.errorcode.get(e.errno, e.errno)}", got)


def main():
    if sys.argv[1] == "sender":
        sender(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        receiver(sys.argv[2], sys.argv[3], int(sys.argv[4]))


if __name__ == "__main__":
    main()
