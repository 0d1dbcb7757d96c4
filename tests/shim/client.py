"""A one-connection client, run under the shim.

    client.py HOST PORT ok       connect (blocking), print our own address
                                 as "name HOST PORT", close
    client.py HOST PORT refused  a blocking connect() and one with a timeout
                                 (Python's non-blocking connect + poll) must
                                 both raise ConnectionRefusedError, quickly
"""
import socket
import sys
import time

from shimlib import check, is_rudp

host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
family = socket.AF_INET6 if ":" in host else socket.AF_INET

if mode == "ok":
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.connect((host, port))
        check(is_rudp(s), f"client socket to port {port} is an rudp socket")
        name = s.getsockname()
        print(f"name {name[0]} {name[1]}", flush=True)
elif mode == "refused":
    for label, timeout in (("blocking connect()", None),
                           ("connect() with a timeout", 3.0)):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            t0 = time.monotonic()
            try:
                s.connect((host, port))
                got = "connected"
            except ConnectionRefusedError:
                got = "ConnectionRefusedError"
            except OSError as e:
                got = f"{type(e).__name__}: {e}"
            took = time.monotonic() - t0
            check(got == "ConnectionRefusedError",
                  f"{label} to port {port} with no listener raises "
                  f"ConnectionRefusedError (got {got})")
            check(took < 1.0, f"{label} was refused in {took:.3f} s (< 1 s)")
            check(is_rudp(s), "the refused socket was an rudp socket")
else:
    sys.exit(f"client.py: unknown mode {mode}")
