"""Bytes a program writes through every kind of call arrive once, in order.

    direct_write.py server PORT    accept one connection, read to the end,
                                   check every byte against the pattern
    direct_write.py client PORT    send the pattern in chunks of many sizes,
                                   turn by turn through send(), write(),
                                   sendmsg(), writev() and sendall()

write(), send(), sendmsg() and writev() on an rudp descriptor go from the
program's thread straight into the send ring when they can, and through
the socket pair when they cannot (the loop holds its lock, the ring is
full); a write may go part one way, part the other.  The stream must come
out in the order the calls were made whichever way each chunk went.  Each prints one "ok:" line and exits 0, or exits 1.
"""
import os
import socket
import sys

from shimlib import accept_one, check, is_rudp

PATTERN = bytes((i * 7 + 3) % 251 for i in range(251)) * 9000  # > 2 MiB
TOTAL = 48 << 20
SIZES = [1, 64, 1000, 4096, 65536, 300000, 2 << 20, 17, 1460, 131072]


def chunk(off, n):
    start = off % 251
    return PATTERN[start:start + n]


def server(port):
    s, _lst = accept_one("127.0.0.1", port)
    check(is_rudp(s), "the accepted socket is an rudp socket")
    got = 0
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        if b != chunk(got, len(b)):
            for i, x in enumerate(b):
                if x != PATTERN[(got + i) % 251]:
                    sys.exit(f"FAIL: byte {got + i} is wrong")
        got += len(b)
    check(got == TOTAL, f"all {TOTAL} bytes arrived (got {got})")
    print(f"ok: {got} bytes, in order", flush=True)


def client(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(None)
    check(is_rudp(s), "the client's socket is an rudp socket")
    fd = s.fileno()
    off, turn = 0, 0
    while off < TOTAL:
        n = min(SIZES[turn % len(SIZES)], TOTAL - off)
        c = chunk(off, n)
        how = turn % 5
        if how == 0:
            sent = s.send(c)
        elif how == 1:
            sent = os.write(fd, c)
        elif how == 2:
            h = n // 2
            sent = s.sendmsg([c[:h], c[h:]])
        elif how == 3:
            h = n // 3
            sent = os.writev(fd, [c[:h], c[h:]])
        else:
            s.sendall(c)
            sent = n
        off += sent
        turn += 1
    s.shutdown(socket.SHUT_WR)
    check(s.recv(1) == b"", "the server closed after reading")
    s.close()
    print(f"ok: {off} bytes sent in {turn} calls", flush=True)


if __name__ == "__main__":
    {"server": server, "client": client}[sys.argv[1]](int(sys.argv[2]))
