"""Writes a file down a connection and exits at once, without close().

    exit_flush.py server PORT FILE   listens on 127.0.0.1:PORT, accepts one
                                     connection, writes FILE, sys.exit(0)
    exit_flush.py client PORT FILE   connects, writes FILE, sys.exit(0)

The program never closes the socket itself and exits as soon as its last
write returned, with bytes still in flight: exit() must deliver them (with
TCP the kernel would), so the peer receives every byte, then EOF.  (The
interpreter may close the socket object while it shuts down, or leave it
to the process exit; both are a program's normal exit.)
"""
import socket
import sys

from shimlib import accept_within, check, is_rudp


def main():
    mode, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(path, "rb") as f:
        data = f.read()
    if mode == "server":
        lst = socket.socket()
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind(("127.0.0.1", port))
        lst.listen(1)
        s, _ = accept_within(lst, 10)
    else:
        s = socket.socket()
        s.connect(("127.0.0.1", port))
    check(is_rudp(s), f"the {mode}'s socket is an rudp socket")
    s.sendall(data)
    print(f"-- {mode}: wrote {len(data)} bytes; exiting without close()",
          flush=True)
    globals()["keep"] = s  # not closed, not collected before exit
    sys.exit(0)


if __name__ == "__main__":
    main()
