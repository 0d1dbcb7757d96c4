#!/usr/bin/env bash
# Checks udp-relay end to end over loopback, with python3 as the UDP echo
# server and the clients, so it needs no root.  Every run uses ports the
# kernel picks (the server and the relay bind port 0 and report it), so
# runs never collide with each other or with other tests.
#
#   tests/test_relay.sh [PATH-TO-UDP-RELAY]
#
# The default relay is build/tests/udp-relay.  Exit status: 0 when every
# case passes, 1 on a failure, 77 (meson's "skipped") without python3.
set -euo pipefail

relay=${1:-$(dirname "${BASH_SOURCE[0]}")/../build/tests/udp-relay}
[ -x "$relay" ] || { echo "test_relay: no relay at $relay" >&2; exit 1; }
command -v python3 >/dev/null || { echo "test_relay: skipped: no python3" >&2; exit 77; }

tmp=$(mktemp -d)
server_pid=
relay_pid=

# Background processes are killed on any exit, so a failed case leaves
# nothing running behind it.
cleanup() {
	local pid
	for pid in $relay_pid $server_pid; do
		kill "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "not ok - $*" >&2; exit 1; }

# The peers.  Payloads start with an 8-digit sequence number, so every
# datagram can be identified whichever way it went.
cat >"$tmp/peer.py" <<'PY'
import json, select, signal, socket, sys, time

def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET

def make_socket(host):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    # A large buffer keeps the kernel from dropping a burst before we read.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return s

def payload(seq, size, tag=b""):
    head = b"%08d" % seq + tag
    return head + b"x" * max(0, size - len(head))

def server(host, log):
    """Echoes every datagram; on SIGTERM writes what it saw to log."""
    s = make_socket(host)
    s.bind((host, 0))
    print(s.getsockname()[1], flush=True)
    seqs, peers = [], set()
    def stop(*_):
        with open(log, "w") as f:
            json.dump({"seqs": seqs, "peers": len(peers)}, f)
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    while True:
        data, peer = s.recvfrom(65536)
        seqs.append(int(data[:8]))
        peers.add(peer)
        s.sendto(data, peer)

def collect(socks, got, last, until):
    """Reads every reply that arrives before the time until."""
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return
        ready, _, _ = select.select(socks, [], [], left)
        for s in ready:
            data = s.recv(65536)
            # A reply meant for another client is recorded as client -1.
            c = socks.index(s)
            mine = data[8:].split(b"x")[0] == b":%d" % c
            got.append((c if mine else -1, int(data[:8])))
            last[0] = time.monotonic()

def paced(host, port, n, burst, gap_ms, size, clients=1):
    """Sends n datagrams per client in bursts and collects the replies
    until 200 ms pass without one (the longest test delay is 30 ms)."""
    socks = [make_socket(host) for _ in range(clients)]
    got, t0 = [], time.monotonic()
    last = [t0]
    for i in range(0, n, burst):
        for seq in range(i, min(n, i + burst)):
            for c, s in enumerate(socks):
                s.sendto(payload(seq, size, b":%d" % c), (host, port))
        collect(socks, got, last, time.monotonic() + gap_ms / 1000)
    while True:
        before = len(got)
        collect(socks, got, last, time.monotonic() + 0.2)
        if len(got) == before:
            break
    ports = [s.getsockname()[1] for s in socks]
    print(json.dumps({"got": got, "elapsed": last[0] - t0, "ports": ports}))

def rtt(host, port, n):
    """Measures n sequential round trips."""
    s = make_socket(host)
    s.settimeout(2)
    rtts = []
    for seq in range(n):
        t = time.monotonic()
        s.sendto(payload(seq, 16), (host, port))
        if int(s.recv(65536)[:8]) != seq:
            sys.exit("reply out of sequence")
        rtts.append((time.monotonic() - t) * 1000)
    print(json.dumps({"rtts": rtts}))

mode, args = sys.argv[1], sys.argv[2:]
if mode == "server":
    server(args[0], args[1])
elif mode == "paced":
    paced(args[0], int(args[1]), *map(int, args[2:]))
elif mode == "rtt":
    rtt(args[0], int(args[1]), int(args[2]))
PY

# Starts an echo server on HOST; sets server_port and server_pid.  Its log
# (what it received) is $tmp/NAME.server once stop_all has run.
start_server() {
	local name=$1 host=$2 i

	# The file exists before the server starts, since the redirection
	# below happens in the child, possibly after the first poll.
	: >"$tmp/$name.port"
	python3 "$tmp/peer.py" server "$host" "$tmp/$name.server" >"$tmp/$name.port" &
	server_pid=$!
	for ((i = 0; i < 250; i++)); do
		server_port=$(cat "$tmp/$name.port")
		[ -n "$server_port" ] && return 0
		sleep 0.02
	done
	fail "$name: the echo server did not start"
}

# Starts the relay with the given arguments plus --stats $tmp/NAME.stats;
# sets relay_port and relay_pid once it prints its "listening on" line.
start_relay() {
	local name=$1 i line
	shift

	: >"$tmp/$name.relay"
	"$relay" --stats "$tmp/$name.stats" "$@" 2>"$tmp/$name.relay" &
	relay_pid=$!
	for ((i = 0; i < 250; i++)); do
		line=$(grep -m1 '^udp-relay: listening on ' "$tmp/$name.relay" || true)
		if [ -n "$line" ]; then
			relay_port=${line##*:}
			return 0
		fi
		kill -0 "$relay_pid" 2>/dev/null || break
		sleep 0.02
	done
	cat "$tmp/$name.relay" >&2
	fail "$name: the relay did not start"
}

# Stops the relay (it must exit 0 on SIGTERM within 3 s, writing its
# stats) and then the server (writing its log).
stop_all() {
	local name=$1 i rc=0

	kill -TERM "$relay_pid"
	for ((i = 0; i < 150; i++)); do
		kill -0 "$relay_pid" 2>/dev/null || break
		sleep 0.02
	done
	kill -0 "$relay_pid" 2>/dev/null && fail "$name: the relay ignored SIGTERM"
	wait "$relay_pid" || rc=$?
	relay_pid=
	[ "$rc" -eq 0 ] || fail "$name: the relay exited with status $rc"
	kill -TERM "$server_pid"
	wait "$server_pid" || true
	server_pid=
	[ -s "$tmp/$name.server" ] || fail "$name: the echo server wrote no log"
	grep -q '^udp-relay: up: received=' "$tmp/$name.relay" ||
		fail "$name: no summary line on stderr"
}

# One whole case over IPv4 loopback: server, relay with the given
# impairments, a paced client (N BURST GAP_MS SIZE [CLIENTS]), then stop.
run_case() {
	local name=$1 client_args
	read -ra client_args <<<"$2"
	shift 2

	start_server "$name" 127.0.0.1
	start_relay "$name" --listen 127.0.0.1:0 --to "127.0.0.1:$server_port" "$@"
	python3 "$tmp/peer.py" paced 127.0.0.1 "$relay_port" "${client_args[@]}" \
		>"$tmp/$name.client"
	stop_all "$name"
}

# Runs a python check against the case's files: C (the client's replies),
# S (what the server got) and R (the relay's stats) are loaded for it, and
# ok(cond, msg) fails the case with msg.
check() {
	local name=$1
	shift
	python3 - "$tmp" "$name" "$@" <<PY || fail "$name"
import json, sys
tmp, name = sys.argv[1], sys.argv[2]
C = json.load(open(f"{tmp}/{name}.client"))
S = json.load(open(f"{tmp}/{name}.server"))
R = json.load(open(f"{tmp}/{name}.stats"))
up, down = R["up"], R["down"]
seqs = [s for _, s in C["got"]]
def ok(cond, msg):
    if not cond:
        print(f"{name}: {msg}", file=sys.stderr)
        print(f"  relay: {json.dumps(R)}", file=sys.stderr)
        sys.exit(1)
def inversions(v):
    return sum(1 for a, b in zip(v, v[1:]) if b < a)
$(cat)
PY
}

# Prints "ok - WHAT (seconds)" for the case that has just passed.
started=${EPOCHREALTIME//[!0-9]/}
case_start=$started
pass() {
	local now=${EPOCHREALTIME//[!0-9]/} us
	us=$((now - case_start))
	printf 'ok - %s (%d.%02d s)\n' "$1" $((us / 1000000)) $((us % 1000000 / 10000))
	case_start=$now
}

# 1. No impairment: every datagram comes back exactly once, in order.
run_case plain "1000 10 1 32"
check plain <<'PY'
ok(seqs == list(range(1000)), f"{len(seqs)} replies, {inversions(seqs)} out of order")
ok(S["seqs"] == list(range(1000)), "the server did not see 0..999 in order")
ok(up["received"] == up["forwarded"] == down["received"] == down["forwarded"] == 1000,
   "counters are not all 1000")
PY
pass "plain: 1000 datagrams round-trip once each, in order"

# 2. --loss 50 --seed 7, twice.  One client sends in order over loopback and
# the server echoes in arrival order, so each direction sees the same
# arrival order every run and the seeded result must repeat exactly.  The
# band is wide (Binomial(1000, 0.5) has sd 15.8, so 350..650 is +-9 sd; the
# down direction sees about 500, sd 11, and 0.35..0.65 of them is +-7 sd):
# it only catches a wrong probability, since the seed fixes the outcome.
for run in loss1 loss2; do
	run_case "$run" "1000 10 1 32" --loss 50 --seed 7
	check "$run" <<'PY'
ok(up["received"] == 1000, "the relay did not receive all 1000")
ok(350 <= up["forwarded"] <= 650, f"up forwarded {up['forwarded']} of 1000")
ok(up["forwarded"] + up["dropped_loss"] == 1000, "up counters do not add up")
ok(len(S["seqs"]) == up["forwarded"] == down["received"],
   "the server's count differs from the relay's")
ok(0.35 <= down["forwarded"] / down["received"] <= 0.65,
   f"down forwarded {down['forwarded']} of {down['received']}")
ok(len(seqs) == down["forwarded"], "the client's count differs from the relay's")
ok(seqs == sorted(set(seqs)) and set(seqs) <= set(S["seqs"]), "replies out of order")
PY
done
check loss2 "$tmp/loss1" <<'PY'
C1 = json.load(open(f"{sys.argv[3]}.client"))
S1 = json.load(open(f"{sys.argv[3]}.server"))
R1 = json.load(open(f"{sys.argv[3]}.stats"))
ok(S["seqs"] == S1["seqs"], "the server got different datagrams on the second run")
ok(seqs == [s for _, s in C1["got"]], "the client got different replies on the second run")
ok(up == R1["up"] and down == R1["down"], "the counters differ between runs")
PY
pass "loss: --loss 50 --seed 7 passes $(python3 -c "import json; r=json.load(open('$tmp/loss1.stats')); print(r['up']['forwarded'], 'of 1000 up,', r['down']['forwarded'], 'of', r['down']['received'], 'down')"), identical on two runs"

# 3. --dup 100: the server gets every datagram twice and, as the replies
# are duplicated too, the client gets each four times.
run_case dup "200 10 1 32" --dup 100
check dup <<'PY'
ok(sorted(S["seqs"]) == sorted(list(range(200)) * 2), "the server did not get each twice")
ok(sorted(seqs) == sorted(list(range(200)) * 4), "the client did not get each four times")
ok(up["duplicated"] == 200 and up["forwarded"] == 400, "up counters are wrong")
ok(down["duplicated"] == 400 and down["forwarded"] == 800, "down counters are wrong")
PY
pass "dup: --dup 100 doubles every datagram in each direction"

# 4. --reorder 50 --delay 5: none lost, but some overtaken, in each
# direction on its own (the client's order differs from the order in which
# the server sent the replies).
run_case reorder "500 5 1 32" --reorder 50 --delay 5
check reorder <<'PY'
ok(sorted(seqs) == list(range(500)), f"{len(seqs)} replies, not each of 0..499 once")
ok(inversions(S["seqs"]) > 0, "the server saw no reordering")
ok(seqs != S["seqs"], "the down direction did not reorder")
ok(100 <= up["reordered"] <= 400 and 100 <= down["reordered"] <= 400,
   "reordered counts are implausible")
print(f"  {inversions(S['seqs'])} inversions up, {inversions(seqs)} end to end")
PY
pass "reorder: --reorder 50 --delay 5 reorders, loses nothing"

# 5. --delay 50: every round trip takes at least 100 ms.  The upper bound
# is loose, for loaded machines; the real check is the lower one.
start_server delay 127.0.0.1
start_relay delay --listen 127.0.0.1:0 --to "127.0.0.1:$server_port" --delay 50
python3 "$tmp/peer.py" rtt 127.0.0.1 "$relay_port" 5 >"$tmp/delay.rtt"
stop_all delay
python3 - "$tmp/delay.rtt" "$tmp/delay.stats" <<'PY' || fail "delay"
import json, sys
rtts = json.load(open(sys.argv[1]))["rtts"]
R = json.load(open(sys.argv[2]))
print(f"  rtt ms: min {min(rtts):.3f} max {max(rtts):.3f}; relay timer lateness "
      f"max {R['timer_late_us_max']} us avg {R['timer_late_us_avg']} us")
if not all(100 <= r < 400 for r in rtts):
    sys.exit(f"delay: round trips {rtts} not in [100, 400) ms")
PY
pass "delay: --delay 50 gives round trips of at least 100 ms"

# 6. --rate 1: 250 datagrams of 1000 bytes are 2 Mbit, so about 2 s at
# 1 Mbit/s; the replies are limited too but overlap.  Then a short queue
# must drop what does not fit.
run_case rate "250 10 1 1000" --rate 1
check rate <<'PY'
ok(sorted(seqs) == list(range(250)), f"{len(seqs)} replies, not each of 0..249 once")
ok(1.5 <= C["elapsed"] < 5, f"250 KB took {C['elapsed']:.2f} s at 1 Mbit/s")
print(f"  250 KB took {C['elapsed']:.3f} s")
PY
run_case queue "100 100 1 1000" --rate 1 --queue 10
check queue <<'PY'
ok(up["dropped_queue"] > 0, "a 10-datagram queue dropped nothing from a 100-datagram burst")
ok(up["forwarded"] + up["dropped_queue"] == 100, "up counters do not add up")
ok(len(seqs) == down["forwarded"], "the client's count differs from the relay's")
PY
pass "rate: --rate 1 takes about 2 s for 250 KB; --queue 10 drops the excess"

# 7. Bad arguments exit 2 with a message naming the option.
bad() {
	local want=$1 rc=0
	shift
	"$relay" "$@" 2>"$tmp/bad.err" >/dev/null || rc=$?
	[ "$rc" -eq 2 ] || fail "bad: '$*' exited $rc, not 2"
	grep -qF -- "$want" "$tmp/bad.err" ||
		fail "bad: '$*' did not mention '$want': $(cat "$tmp/bad.err")"
}
ok_args=(--listen 127.0.0.1:0 --to 127.0.0.1:9)
bad --loss "${ok_args[@]}" --loss abc
bad --loss "${ok_args[@]}" --loss 101
bad --dup "${ok_args[@]}" --dup -1
bad --reorder "${ok_args[@]}" --reorder 5%
bad --delay "${ok_args[@]}" --delay -5
bad --jitter "${ok_args[@]}" --jitter x
bad --rate "${ok_args[@]}" --rate 0
bad --queue "${ok_args[@]}" --queue 0
bad --seed "${ok_args[@]}" --seed -3
bad --bogus "${ok_args[@]}" --bogus 1
bad "'--loss' needs a value" "${ok_args[@]}" --loss
bad "missing --to" --listen 127.0.0.1:0
bad "missing --listen" --to 127.0.0.1:9
bad --to --listen 127.0.0.1:0 --to 127.0.0.1
bad --to --listen 127.0.0.1:0 --to ::1:9000
bad --to --listen 127.0.0.1:0 --to 127.0.0.1:0
bad --listen --listen 127.0.0.1:70000 --to 127.0.0.1:9
bad "unexpected argument" "${ok_args[@]}" extra
pass "bad arguments: 18 cases exit 2 naming the option"

# 8. IPv6, where loopback has it: [::1] on both sides.
if python3 -c 'import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))' 2>/dev/null; then
	start_server ipv6 ::1
	start_relay ipv6 --listen '[::1]:0' --to "[::1]:$server_port"
	grep -q 'listening on \[::1\]:' "$tmp/ipv6.relay" || fail "ipv6: wrong listening line"
	python3 "$tmp/peer.py" paced ::1 "$relay_port" 100 10 1 32 >"$tmp/ipv6.client"
	stop_all ipv6
	check ipv6 <<<'ok(seqs == list(range(100)), "not every datagram came back in order")'
	pass "ipv6: [::1] relays 100 datagrams in order"
else
	echo "ok - ipv6: skipped, no IPv6 loopback"
fi

# 9. 64 clients at once through the wildcard listener: each gets its own
# upstream port, so the server sees 64 peers, and each client gets exactly
# its own replies.
start_server many 127.0.0.1
start_relay many --listen 0 --to "127.0.0.1:$server_port"
python3 "$tmp/peer.py" paced 127.0.0.1 "$relay_port" 20 5 1 32 64 >"$tmp/many.client"
stop_all many
check many <<'PY'
from collections import Counter
per = Counter(c for c, _ in C["got"])
ok(S["peers"] == 64 and R["clients"] == 64, f"{S['peers']} peers at the server, {R['clients']} clients")
ok(all(per[c] == 20 for c in range(64)), "some client lost replies")
ok(sorted(C["got"]) == [[c, s] for c in range(64) for s in range(20)], "replies went astray")
PY
pass "many: 64 clients get 64 upstream ports and their own replies"

case_start=$started
pass "all relay cases"
