"""A fast writer against a slow reader: memory must stay bounded.

    slow_reader.py reader PORT TOTAL RATE_MIB   (under the shim)
    slow_reader.py writer PORT TOTAL            (under the shim)
    slow_reader.py monitor SECS PID...          (not under the shim)

The reader listens on 127.0.0.1:PORT, accepts one connection and reads
TOTAL bytes at no more than RATE_MIB MiB/s, checking that every byte is
zero and that the stream then ends.  The writer connects and sends TOTAL
zero bytes as fast as the connection takes them, then closes.  Each prints
"done T" with the CLOCK_MONOTONIC time (system-wide, so the two compare) at
which it sent or received its last byte.

The monitor samples VmRSS of each PID from /proc/PID/status every 50 ms
until all have exited (at most SECS seconds) and prints "rss PID MAX_KIB
SAMPLES" per PID.
"""
import socket
import sys
import time

from shimlib import DEADLINE, accept_one, check, is_rudp, say

CHUNK = 1 << 20


def reader(port, total, rate):
    conn, _lst = accept_one("127.0.0.1", port)
    check(is_rudp(conn), "the reader's accepted socket is an rudp socket")
    conn.settimeout(DEADLINE * 4)  # no single read may stall this long
    zeros = bytes(256 << 10)
    buf = bytearray(256 << 10)
    view = memoryview(buf)
    got = 0
    bps = rate * (1 << 20)
    t0 = time.monotonic()
    last = t0
    while True:
        ahead = got / bps - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
        try:
            n = conn.recv_into(buf)
        except OSError as e:
            check(False, f"reading at offset {got} of {total}: {e!r}, "
                  f"{time.monotonic() - last:.3f} s after the last bytes")
        if n == 0:
            break
        if view[:n] != zeros[:n]:
            check(False, f"the bytes at offset {got} are all zero")
        got += n
        last = time.monotonic()
        if got == total:
            # When the last byte came, whatever the end of stream does.
            print(f"done {last:.6f}", flush=True)
        if got > total:
            break
    secs = last - t0
    check(got == total, f"the reader received {got} bytes, expected {total}")
    say(f"reader: {got} bytes in {secs:.1f} s "
        f"({got / secs / (1 << 20):.1f} MiB/s; paced at {rate} MiB/s), "
        f"then end of stream")
    conn.close()


def writer(port, total):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(None)
    check(is_rudp(s), "the writer's socket is an rudp socket")
    block = memoryview(bytes(CHUNK))
    left = total
    t0 = time.monotonic()
    while left:
        n = min(left, CHUNK)
        s.sendall(block[:n])
        left -= n
    t = time.monotonic()
    print(f"done {t:.6f}", flush=True)
    say(f"writer: {total} bytes handed over in {t - t0:.1f} s")
    s.close()


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return 0  # a zombie has no VmRSS line


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        # Reaped between the open and the read: the kernel says ESRCH.
        return False


def monitor(secs, pids):
    peak = {p: 0 for p in pids}
    samples = {p: 0 for p in pids}
    end = time.monotonic() + secs
    while time.monotonic() < end and any(alive(p) for p in pids):
        for p in pids:
            r = rss_kib(p)
            if r:
                peak[p] = max(peak[p], r)
                samples[p] += 1
        time.sleep(0.05)
    for p in pids:
        print(f"rss {p} {peak[p]} {samples[p]}", flush=True)


def main():
    mode = sys.argv[1]
    if mode == "reader":
        reader(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    elif mode == "writer":
        writer(int(sys.argv[2]), int(sys.argv[3]))
    elif mode == "monitor":
        monitor(float(sys.argv[2]), [int(p) for p in sys.argv[3:]])
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
