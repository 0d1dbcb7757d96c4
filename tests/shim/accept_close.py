"""A server that accepts and closes at once; its clients' connect() must work.

    accept_close.py server PORT N   accept N connections, closing each at
                                    once (inetd-style rejectors, socat
                                    EXEC:/bin/true); exit 0
    accept_close.py client PORT N   N blocking connects; each must return
                                    success, as over kernel TCP (where the
                                    server's close sends a FIN that arrives
                                    after the handshake)

The server's close can reach the client before the client's connect()
returned; connect() must still report the completed handshake and leave
the end of the connection to the next read.
"""
import errno
import socket
import sys

from shimlib import check, is_rudp

mode, PORT, N = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
HOST = "127.0.0.1"

if mode == "server":
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind((HOST, PORT))
    lst.listen(64)
    check(is_rudp(lst), "server's listener is an rudp socket")
    lst.settimeout(5)
    n = 0
    for _ in range(N):
        c, _ = lst.accept()
        c.close()
        n += 1
    check(n == N, f"server accepted and closed {n} connections")
elif mode == "client":
    failures = {}
    for _ in range(N):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.connect((HOST, PORT))
            except OSError as e:
                name = errno.errorcode.get(e.errno, str(e.errno))
                failures[name] = failures.get(name, 0) + 1
    check(not failures, f"{N} blocking connects to a server that closes at "
                        f"once all succeed (failures: {failures or 'none'})")
else:
    sys.exit(f"accept_close.py: unknown mode {mode}")
