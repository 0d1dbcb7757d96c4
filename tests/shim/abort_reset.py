"""Abortive closes, as TCP makes them.

    abort_reset.py PORT

Two processes.  (1) The client sets SO_LINGER {on, 0} and closes after
sending 1000 bytes: the server first reads those bytes, then gets
ConnectionResetError, and its next sends fail (EPIPE or ECONNRESET).
(2) The client closes while bytes the server sent lie unread at its end:
that too is an abort, so the server's reads end in ConnectionResetError.
"""
import os
import socket
import struct
import sys
import time

from shimlib import check, say

PORT = int(sys.argv[1])
HOST = "127.0.0.1"


def client(mode):
    c = socket.create_connection((HOST, PORT), timeout=5)
    if mode == "linger0":
        c.sendall(b"x" * 1000)
        time.sleep(0.3)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
    else:
        # Wait until the server's bytes are here, and leave them unread.
        c.recv(1, socket.MSG_PEEK)
        time.sleep(0.3)
    c.close()
    time.sleep(1)
    os._exit(0)


def serve(lst, mode):
    pid = os.fork()
    if pid == 0:
        lst.close()
        client(mode)
    s, _ = lst.accept()
    s.settimeout(5)
    if mode == "unread":
        s.sendall(b"y" * 5000)
    got, err = 0, None
    t0 = time.monotonic()
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += len(b)
    except OSError as e:
        err = e
    took = time.monotonic() - t0
    if mode == "linger0":
        check(got == 1000, f"{mode}: the bytes before the reset arrived "
              f"({got} of 1000)")
    check(isinstance(err, ConnectionResetError),
          f"{mode}: the read after the reset raised ConnectionResetError "
          f"(got {err!r}) after {took:.3f} s")
    try:
        s.sendall(b"z" * 10)
        time.sleep(0.1)
        s.sendall(b"z" * 10)
        sent_err = None
    except OSError as e:
        sent_err = e
    check(isinstance(sent_err, (BrokenPipeError, ConnectionResetError)),
          f"{mode}: sending after the reset fails (got {sent_err!r})")
    s.close()
    os.waitpid(pid, 0)


lst = socket.socket()
lst.bind((HOST, PORT))
lst.listen(4)
for mode in ("linger0", "unread"):
    say(f"-- {mode}")
    serve(lst, mode)
lst.close()
say("abort_reset: all checks passed")
