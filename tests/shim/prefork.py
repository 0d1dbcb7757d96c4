"""A prefork server: the master listens, its workers accept.

    prefork.py PORT NWORKERS

The master binds and listens on 127.0.0.1:PORT, forks NWORKERS workers and
waits for them.  Each worker accepts one connection on the inherited
listener, prints "peer HOST PORT" (from getpeername, checked against what
accept() returned), waits for the client to close (EOF), closes it and
exits 0.  The master exits 0 when every
worker did.  The clients are other processes (run.sh starts them).
"""
import os
import socket
import sys

from shimlib import check, is_rudp

PORT, NWORKERS = int(sys.argv[1]), int(sys.argv[2])

lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.0.0.1", PORT))
lst.listen(8)
check(is_rudp(lst), "master's listener is an rudp socket")

workers = []
for _ in range(NWORKERS):
    pid = os.fork()
    if pid == 0:
        try:
            me = f"worker {os.getpid()}"
            lst.settimeout(8)
            conn, peer = lst.accept()
            check(is_rudp(conn), f"{me}: accepted an rudp connection")
            check(conn.getpeername() == peer,
                  f"{me}: getpeername {conn.getpeername()} == {peer}")
            check(conn.getsockname() == ("127.0.0.1", PORT),
                  f"{me}: getsockname is the listener's address")
            print(f"peer {peer[0]} {peer[1]}", flush=True)
            # The client closes first: a server that closes first resets
            # the connection (no graceful close yet), which could reach the
            # client before its connect() returned.
            conn.settimeout(8)
            check(conn.recv(1) == b"", f"{me}: reads EOF when the client "
                                       "closes")
            conn.close()
            os._exit(0)
        except BaseException as e:  # never return into the master's code
            print(f"FAIL: worker {os.getpid()}: {e!r}", file=sys.stderr,
                  flush=True)
            os._exit(1)
        finally:
            os._exit(1)
    workers.append(pid)

# The master keeps the listener (its loop thread runs the protocol) but
# never accepts.
failed = 0
for pid in workers:
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    print(f"master: worker {pid} exited with {code}", flush=True)
    failed += code != 0
check(failed == 0, f"all {NWORKERS} workers exited 0")
