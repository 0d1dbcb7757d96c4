#!/usr/bin/env bash
# Measures rudp against kernel TCP and against kcptun (a TCP-over-KCP tunnel
# on UDP, the peer people use for this job) with unmodified programs: iperf3
# bulk throughput (one connection) on loopback, through a UDP relay, and
# across a pair of network namespaces with random packet loss; connect() and
# 64-byte request/response latency with small python3 programs; and whether
# a 64 MiB file sent with nc across 5% loss arrives whole (SHA-256); how a
# rudp flow shares a 100 Mbit/s router queue with a CUBIC TCP flow
# (tests/fairness.sh); and what connections cost: idle memory, descriptors
# and CPU, and new connections per second (scripts/bench-conns.sh).  It
# builds its own release tree first, runs every measurement of each column
# in turn (interleaved), several times, and prints one Markdown table of
# medians.
#
#   scripts/bench.sh                # about 9 minutes
#   BENCH_QUICK=1 scripts/bench.sh  # about 2.5 minutes: 1 run per cell, -t 2
#
# BENCH_QUICK  1 for the short run
# BENCH_REPS   runs per cell (default 3, quick 1; the latency rows get at
#              least 5, quick 3)
# BENCH_SECS   iperf3 -t, measured seconds per run (default 3, quick 2),
#              after a 1 second warm-up that iperf3 -O leaves out
# BENCH_INTEGRITY_REPS  transfers per column in the integrity row (default 1)
# BENCH_INTEGRITY_SECS  how long one such transfer may take before it counts
#              as stalled (default 120)
# BENCH_KCPTUN_OPTS  extra flags for both kcptun ends, after the script's
#              own (e.g. "--ds 0 --ps 0" to turn its FEC off)
# CONNS_*      passed on to scripts/bench-conns.sh (the connection-cost rows)
# BENCH_TCP_CC the kernel TCP column's congestion control (default cubic,
#              as the targets say; the machine's default may be another)
# BENCH_ROWS   only these rows, by name, comma- or space-separated (loopback
#              ceiling relay relay-loss1 relay-loss5 relay-reorder veth
#              veth-loss1 veth-loss5
#              fairness connect connect-1024 connect-floor connect-path
#              pingpong
#              integrity conns; default all)
# BENCH_COLUMNS  only these columns (rudp tcp kcptun; default all)
# BENCH_PORT   first port to try (default: 20000 plus a per-process offset);
#              ports in use are skipped
# BUILD_DIR    build directory (default build-bench, a release build)
#
# The rows that need network namespaces (root, iproute2, nftables) are
# skipped with a note when those are unavailable, and the kcptun column when
# the Debian package kcptun is missing and cannot be installed.  Progress
# goes to stderr; stdout is the report.  Exit status: 0 when every run
# succeeded, 1 when a run failed or rudp or kernel TCP delivered a file
# that was not intact (the table is printed anyway, with the failures
# listed).  kcptun delivering a file cut short is reported, not a failure.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$RUDP_ROOT"

build_dir=${BUILD_DIR:-build-bench}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	reps=${BENCH_REPS:-1}
	secs=${BENCH_SECS:-2}
else
	reps=${BENCH_REPS:-3}
	secs=${BENCH_SECS:-3}
fi
# A latency run takes a fraction of a second and its p50 moves with where
# the scheduler puts the two processes, so those rows get more runs.
lat_reps=$((reps < 3 ? 3 : (reps < 5 ? 5 : reps)))
omit=1          # iperf3 -O: slow start is not what is being measured
# The fairness row is one long run (two flows at once, converging at a
# 100 Mbit/s bottleneck after 5 s left out), not a median of short ones.
fair_secs=$([ "${BENCH_QUICK:-0}" = 1 ] && echo 10 || echo 20)
tcp_cc=${BENCH_TCP_CC:-cubic}
if ! grep -qw "$tcp_cc" /proc/sys/net/ipv4/tcp_available_congestion_control 2>/dev/null; then
	tcp_cc=$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo cubic)
fi
connects=200    # connect() samples per latency run
pings=2000      # round trips per ping-pong run
port=${BENCH_PORT:-$((20000 + ($$ % 40) * 250))}
integ_reps=${BENCH_INTEGRITY_REPS:-1}
integ_secs=${BENCH_INTEGRITY_SECS:-120}
integ_bytes=$((64 * 1024 * 1024))

for v in reps secs port integ_reps integ_secs; do
	case ${!v} in '' | *[!0-9]*) die "$v must be a whole number, not '${!v}'" ;; esac
done
if [ "$reps" -lt 1 ] || [ "$secs" -lt 1 ] || [ "$integ_reps" -lt 1 ] ||
	[ "$integ_secs" -lt 1 ]; then
	die "BENCH_REPS, BENCH_SECS and BENCH_INTEGRITY_* must be at least 1"
fi

# ---------------------------------------------------------------------------
# Columns and rows.  A column is a way of carrying the connection; each row
# (scenario) says how to measure it for each column in measure() below, and
# a cell a column cannot fill reads n/a.  Another column is a name here, a
# title, a short name for the ratio columns, and its arms in measure().
# Kernel TCP twice: with CUBIC (tcp), the algorithm the targets name, and
# for the bulk rows with the machine's own default (tcpdef) when that is
# another (BBR here): on loopback the two differ by 2x or more.
tcp_def=$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo "$tcp_cc")
COLUMNS=(rudp tcp tcpdef kcptun)
declare -A COL_TITLE=([rudp]="rudp" [tcp]="kernel TCP $tcp_cc"
	[tcpdef]="kernel TCP $tcp_def" [kcptun]="kcptun")
declare -A COL_SHORT=([rudp]="rudp" [tcp]="$tcp_cc" [tcpdef]="$tcp_def"
	[kcptun]="kcptun")
# The ratio columns: A:B is A's median divided by B's.
RATIOS=(rudp:tcp rudp:tcpdef rudp:kcptun)
if [ "$tcp_def" = "$tcp_cc" ]; then
	COLUMNS=(rudp tcp kcptun)
	RATIOS=(rudp:tcp rudp:kcptun)
fi
# Why a whole column cannot run here (set below), if it cannot.
declare -A COL_NOTE=()

SCENARIOS=(loopback ceiling relay relay-loss1 relay-loss5 relay-reorder veth veth-loss1
	veth-loss5 fairness connect connect-1024 connect-floor connect-path pingpong
	integrity conns)
declare -A SC_TITLE=(
	[loopback]="loopback"
	[ceiling]="loopback, rudp's path without protocol"
	[relay]="relay, no loss"
	[relay-loss1]="relay, 1% loss"
	[relay-loss5]="relay, 5% loss"
	[relay-reorder]="relay, 5% reordered by 0-2 ms"
	[veth]="veth, no loss"
	[veth-loss1]="veth, 1% loss"
	[veth-loss5]="veth, 5% loss"
	[fairness]="100 Mbit/s shared with 1 TCP flow"
	[connect]="connect() p50, loopback"
	[connect-1024]="connect() p50, soft fd limit 1024"
	[connect-floor]="connect() floor: one UDP round trip"
	[connect-path]="connect(), rudp's path without protocol"
	[pingpong]="64 B ping-pong p50, loopback"
	[integrity]="veth, 5% loss, 64 MiB intact"
	[conns]="connection costs (scripts/bench-conns.sh)"
)
if [ -n "${BENCH_COLUMNS:-}" ]; then
	declare -A wanted=()
	for col in ${BENCH_COLUMNS//,/ }; do
		[ -n "${COL_TITLE[$col]:-}" ] || die "BENCH_COLUMNS: no column named '$col'"
		wanted[$col]=1
	done
	kept=()
	for col in "${COLUMNS[@]}"; do
		[ -z "${wanted[$col]:-}" ] || kept+=("$col")
	done
	COLUMNS=("${kept[@]}")
	kept=()
	for r in "${RATIOS[@]}"; do
		[ -z "${wanted[${r%%:*}]:-}" ] || [ -z "${wanted[${r#*:}]:-}" ] ||
			kept+=("$r")
	done
	RATIOS=("${kept[@]}")
	unset wanted kept
fi
if [ -n "${BENCH_ROWS:-}" ]; then
	declare -A wanted=()
	for sc in ${BENCH_ROWS//,/ }; do
		[ -n "${SC_TITLE[$sc]:-}" ] || die "BENCH_ROWS: no row named '$sc'"
		wanted[$sc]=1
	done
	kept=()
	for sc in "${SCENARIOS[@]}"; do
		[ -z "${wanted[$sc]:-}" ] || kept+=("$sc")
	done
	SCENARIOS=("${kept[@]}")
	unset wanted kept
fi
declare -A SC_UNIT=(
	[loopback]=Gbit/s [ceiling]=Gbit/s [relay]=Gbit/s [relay-loss1]=Gbit/s
	[relay-loss5]=Gbit/s [relay-reorder]=Gbit/s [veth]=Gbit/s [veth-loss1]=Gbit/s
	[veth-loss5]=Gbit/s [fairness]=share [connect]=µs
	[connect-1024]=µs [connect-floor]=µs [connect-path]=µs
	[pingpong]=µs [integrity]=sha256
)

# ---------------------------------------------------------------------------
# Background processes.  Each one starts in a session of its own (setsid
# execs in place, since a background job of a non-interactive shell is not a
# group leader), so stopping it by its process group also stops whatever it
# started: the command under timeout(1), socat's forked children.

tmp=$(mktemp -d)
bg_pids=()
ns_a="" ns_b=""
failures=()

# bg_start NAME CMD...: runs CMD with stdout and stderr in $tmp/NAME.out and
# $tmp/NAME.err; its pid is left in bg_last.
bg_last=""
bg_start() {
	local name=$1
	shift
	setsid "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null &
	bg_last=$!
	bg_pids+=("$bg_last")
}

bg_forget() {
	local p keep=()
	for p in "${bg_pids[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	bg_pids=("${keep[@]}")
}

# bg_stop PID: SIGTERM to its group, SIGKILL after a grace period.
bg_stop() {
	local pid=$1 i
	kill -TERM -- "-$pid" 2>/dev/null || true
	for ((i = 0; i < 30; i++)); do
		kill -0 -- "-$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	bg_forget "$pid"
}

# bg_wait PID SECS: waits up to SECS for the process to exit by itself, then
# stops it.  Returns its exit status (or 124 when it had to be stopped).
bg_wait() {
	local pid=$1 limit=$2 i status=0
	for ((i = 0; i < limit * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		bg_stop "$pid"
		return 124
	fi
	wait "$pid" || status=$?
	bg_forget "$pid"
	# Anything the process left in its group goes too.
	kill -KILL -- "-$pid" 2>/dev/null || true
	return "$status"
}

# shellcheck disable=SC2317  # Called from the EXIT trap, which ShellCheck
# 0.9 does not follow.
cleanup() {
	local pid
	trap - EXIT INT TERM
	for pid in "${bg_pids[@]}"; do
		kill -TERM -- "-$pid" 2>/dev/null || true
	done
	if [ "${#bg_pids[@]}" -gt 0 ]; then
		sleep 1
		for pid in "${bg_pids[@]}"; do
			kill -KILL -- "-$pid" 2>/dev/null || true
		done
		wait 2>/dev/null || true
	fi
	[ -z "$ns_a" ] || ip netns del "$ns_a" 2>/dev/null || true
	[ -z "$ns_b" ] || ip netns del "$ns_b" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for FILE PATTERN SECS: until FILE holds a line matching PATTERN.
wait_for() {
	local i
	for ((i = 0; i < $3 * 20; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# wait_tcp_listen PORT SECS: until a TCP socket listens on PORT here.
wait_tcp_listen() {
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		[ -n "$(ss -Hltn "sport = :$1")" ] && return 0
		sleep 0.05
	done
	return 1
}

port_base=20000 # alloc_port (lib.sh) wraps to it

# A failed run is reported with the tail of what its programs said.
run_failed() {
	local what=$1 f
	shift
	say "FAILED: $what"
	for f in "$@"; do
		[ -s "$tmp/$f" ] || continue
		sed "s/^/    $f: /" "$tmp/$f" | tail -n 8 >&2
	done
	failures+=("$what")
	return 1
}

# ---------------------------------------------------------------------------
# How each column runs a program.  rudp programs get the shim through
# rudp-run.  RUDP_EXIT_LINGER_MS bounds how long a process's exit waits for
# its last FIN to be acknowledged: behind the relay a peer that has already
# exited cannot answer, and the default 10 s would only slow the script down
# (it is after the measured interval, so it does not change the numbers).

shim=$RUDP_ROOT/$build_dir/shim/librudp_shim.so
relay_bin=$RUDP_ROOT/$build_dir/tests/udp-relay
ceiling_bin=$RUDP_ROOT/$build_dir/bench/ceiling
handshake_bin=$RUDP_ROOT/$build_dir/bench/handshake

# wrap_cmd COL PORT: sets wrap=(...) to prefix a command with.
wrap=()
wrap_cmd() {
	case $1 in
	rudp) wrap=(env RUDP_SHIM="$shim" RUDP_EXIT_LINGER_MS=2000
		"$RUDP_ROOT/scripts/rudp-run" -p "$2" --) ;;
	*) wrap=() ;;
	esac
}

# in_ns NAME: sets nsx=(...) to run a command in that namespace ("" = here).
nsx=()
in_ns() {
	if [ -n "$1" ]; then nsx=(ip netns exec "$1"); else nsx=(); fi
}

# kcptun carries the program's TCP connection as a tunnel: the client
# program connects to kcptun-client's TCP listener on 127.0.0.1 on its own
# side, the tunnel carries the stream as KCP over UDP to kcptun-server on
# the server's side, and that connects over TCP to the server program on
# 127.0.0.1 there.  So in the veth rows only UDP crosses the veth, and in
# the relay rows udp-relay sits between the two tunnel ends.
#
# Both ends get the same flags: no encryption and no compression (rudp has
# neither), the fastest profile (fast3: nodelay 1, interval 10 ms, resend 2,
# no congestion window), send and receive windows of 4096 packets (about
# 5.6 MB, well above what these links need at their rates), no DSCP mark,
# and its default forward error correction (10 data + 3 parity shards) and
# 4 MiB socket buffers.  --mtu is the UDP payload: 1472 on the veth (a
# 1500-byte link less IPv4 and UDP headers, so no fragments, as for rudp)
# and 1500, the most kcptun accepts, on loopback.
kcp_opts=(--crypt none --nocomp --mode fast3 --sndwnd 4096 --rcvwnd 4096
	--dscp 0 --quiet)
read -r -a kcp_extra <<<"${BENCH_KCPTUN_OPTS:-}"
kcp_opts+=("${kcp_extra[@]}")
kcp_mtu_lo=1500
kcp_mtu_veth=1472

# kcp_up SNS SHOST CNS MTU TARGET RELAY LOSS REP LIMIT: starts kcptun-server
# in namespace SNS on UDP SHOST:(a free port), forwarding to TCP
# 127.0.0.1:TARGET there, and kcptun-client in CNS listening on TCP
# 127.0.0.1:$kcp_port; with RELAY 1 the UDP goes through udp-relay (LOSS %
# loss each way, --seed REP) on loopback.  Each process is stopped after
# LIMIT seconds at the latest; kcp_down stops them.  Returns 1 when one did
# not start (its log is in kcs.err, rel.err or kcc.err).
kcp_port=""
kcp_pids=()
# Impairments the relay adds beyond --loss (the reordering row).
relay_extra=()
kcp_up() {
	local sns=$1 shost=$2 cns=$3 mtu=$4 target=$5 relay=$6 loss=$7 rep=$8
	local limit=$9 kport remote
	kcp_pids=()
	alloc_port
	kport=$port_out
	in_ns "$sns"
	bg_start kcs "${nsx[@]}" timeout "$limit" kcptun-server \
		-l "$shost:$kport" -t "127.0.0.1:$target" --mtu "$mtu" "${kcp_opts[@]}"
	kcp_pids+=("$bg_last")
	wait_for "$tmp/kcs.err" "listening on" 10 || return 1
	remote=$shost:$kport
	if [ "$relay" = 1 ]; then
		alloc_port
		bg_start rel timeout "$limit" "$relay_bin" \
			--listen "127.0.0.1:$port_out" --to "$remote" \
			--loss "${loss:-0}" --seed "$rep" "${relay_extra[@]}"
		kcp_pids+=("$bg_last")
		wait_for "$tmp/rel.err" "listening on" 10 || return 1
		remote=127.0.0.1:$port_out
	fi
	alloc_port
	kcp_port=$port_out
	in_ns "$cns"
	bg_start kcc "${nsx[@]}" timeout "$limit" kcptun-client \
		-l "127.0.0.1:$kcp_port" -r "$remote" --mtu "$mtu" "${kcp_opts[@]}"
	kcp_pids+=("$bg_last")
	wait_for "$tmp/kcc.err" "listening on" 10 || return 1
}

kcp_down() {
	local p
	for p in "${kcp_pids[@]}"; do bg_stop "$p"; done
	kcp_pids=()
}

# ---------------------------------------------------------------------------
# iperf3: one connection, client sends, -O 1 warm-up left out.  Prints the
# receiver's rate in Gbit/s.
#
# iperf_run COL WHERE LOSS REP, WHERE one of:
#   lo     client and server on 127.0.0.1;
#   relay  client -> relay -> server on loopback: rudp through udp-relay
#          (with LOSS % loss each way), kernel TCP through a socat TCP relay,
#          kcptun with udp-relay between its two ends;
#   veth   client in namespace A, server in namespace B (loss set by
#          set_loss beforehand); kcptun's client end runs in A, its server
#          end in B.
result=""
iperf_run() {
	local col=$1 where=$2 loss=$3 rep=$4
	local sport cport host=127.0.0.1 sns="" cns="" relay=0 tag
	local srv cli rel="" status=0 mtu=$kcp_mtu_lo

	tag="iperf $where${loss:+ loss $loss%} $col run $rep"
	alloc_port
	sport=$port_out
	cport=$sport
	case $where in
	relay)
		if [ "$col" != kcptun ]; then
			alloc_port
			cport=$port_out
		fi
		relay=1
		;;
	veth)
		host=10.201.0.2
		sns=$ns_b
		cns=$ns_a
		mtu=$kcp_mtu_veth
		;;
	esac
	rm -f "$tmp"/srv.* "$tmp"/cli.* "$tmp"/rel.* "$tmp"/kc[sc].*

	in_ns "$sns"
	wrap_cmd "$col" "$sport"
	bg_start srv "${nsx[@]}" timeout $((secs + omit + 40)) "${wrap[@]}" \
		iperf3 -s -1 -p "$sport" --forceflush
	srv=$bg_last
	if ! wait_for "$tmp/srv.out" "Server listening" 10; then
		bg_stop "$srv"
		run_failed "$tag: the iperf3 server did not start" srv.out srv.err
		return 1
	fi

	if [ "$col" = kcptun ]; then
		if ! kcp_up "$sns" "$host" "$cns" "$mtu" "$sport" "$relay" "$loss" \
			"$rep" $((secs + omit + 40)); then
			kcp_down
			bg_stop "$srv"
			run_failed "$tag: the kcptun tunnel did not start" \
				kcs.err rel.err kcc.err
			return 1
		fi
		host=127.0.0.1
		cport=$kcp_port
	elif [ "$relay" = 1 ]; then
		if [ "$col" = rudp ]; then
			bg_start rel timeout $((secs + omit + 40)) "$relay_bin" \
				--listen "127.0.0.1:$cport" --to "127.0.0.1:$sport" \
				--loss "${loss:-0}" --seed "$rep" "${relay_extra[@]}"
			rel=$bg_last
			wait_for "$tmp/rel.err" "listening on" 10 || status=1
		else
			# The same 64 KiB per system call as the UDP relay's
			# largest datagrams (socat's default is 8 KiB).
			bg_start rel timeout $((secs + omit + 40)) socat -b 65536 \
				"TCP-LISTEN:$cport,bind=127.0.0.1,fork,reuseaddr" \
				"TCP:127.0.0.1:$sport"
			rel=$bg_last
			wait_tcp_listen "$cport" 10 || status=1
		fi
		if [ "$status" -ne 0 ]; then
			bg_stop "$rel"
			bg_stop "$srv"
			run_failed "$tag: the relay did not start" rel.err
			return 1
		fi
	fi

	in_ns "$cns"
	wrap_cmd "$col" "$cport"
	# Kernel TCP runs CUBIC, the algorithm the targets name, whatever
	# the machine's default (BBR on some).
	local ccopt=()
	[ "$col" != tcp ] || ccopt=(-C "$tcp_cc")
	[ "$col" != tcpdef ] || ccopt=(-C "$tcp_def")
	bg_start cli "${nsx[@]}" timeout -k 5 $((secs + omit + 25)) "${wrap[@]}" \
		iperf3 -c "$host" -p "$cport" -t "$secs" -O "$omit" "${ccopt[@]}" -J
	cli=$bg_last
	bg_wait "$cli" $((secs + omit + 35)) || status=$?
	# The server exits after its one test; give it a moment, then stop it.
	bg_wait "$srv" 5 >/dev/null 2>&1 || true
	[ -z "$rel" ] || bg_stop "$rel"
	kcp_down

	if ! result=$(iperf_gbps "$tmp/cli.out" 2>"$tmp/cli.parse"); then
		run_failed "$tag: no result (client exit status $status)" \
			cli.parse cli.err srv.out srv.err rel.err kcs.err kcc.err
		return 1
	fi
	[ "$status" -eq 0 ] ||
		say "note: $tag: client exit status $status after a valid result"
	return 0
}

iperf_gbps() {
	python3 - "$1" <<'PY'
import json, sys
try:
    with open(sys.argv[1]) as f:
        d = json.load(f)
except (OSError, ValueError) as e:
    sys.exit(f"no iperf3 JSON: {e}")
if d.get("error"):
    sys.exit("iperf3: " + d["error"])
print("%.6f" % (d["end"]["sum_received"]["bits_per_second"] / 1e9))
PY
}

# ---------------------------------------------------------------------------
# Latency, with python3 on both ends (TCP_NODELAY on every socket):
#   connect   p50 of the time blocking connect() takes; the server accepts
#             and closes; the first 10 connections are left out;
#   pingpong  p50 round trip of a 64-byte message echoed back, after 100
#             round trips of warm-up;
#   udprtt    p50 round trip of a 1-byte UDP datagram echoed back by the
#             server process, waited for as connect() waits (poll, then
#             recv), after 10 of warm-up: the least any handshake between
#             two processes in user space takes, since the server's
#             process must run once for the client to hear back.
# Prints microseconds.

cat >"$tmp/lat.py" <<'PY'
import json, socket, statistics, sys, time

def listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(256)
    print("ready", flush=True)
    return s

def nodelay(s):
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

def report(samples):
    samples.sort()
    print(json.dumps({"p50_us": statistics.median(samples),
                      "p90_us": samples[int(len(samples) * 0.9)],
                      "n": len(samples)}))

mode, port = sys.argv[1], int(sys.argv[2])
if mode == "accept-server":
    s = listener(port)
    while True:
        c, _ = s.accept()
        c.close()
elif mode == "echo-server":
    s = listener(port)
    c, _ = s.accept()
    nodelay(c)
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
elif mode == "udp-echo-server":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    print("ready", flush=True)
    while True:
        d, a = s.recvfrom(2048)
        s.sendto(d, a)
elif mode == "udprtt":
    n, warm, out = int(sys.argv[3]), 10, []
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(10)
    c.connect(("127.0.0.1", port))
    for i in range(warm + n):
        t0 = time.perf_counter_ns()
        c.send(b"x")
        c.recv(2048)
        t1 = time.perf_counter_ns()
        if i >= warm:
            out.append((t1 - t0) / 1000)
    report(out)
elif mode == "connect":
    n, warm, out = int(sys.argv[3]), 10, []
    for i in range(warm + n):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(10)
        nodelay(c)
        t0 = time.perf_counter_ns()
        c.connect(("127.0.0.1", port))
        t1 = time.perf_counter_ns()
        c.close()
        if i >= warm:
            out.append((t1 - t0) / 1000)
    report(out)
elif mode == "pingpong":
    n, warm, out = int(sys.argv[3]), 100, []
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    nodelay(c)
    msg = b"x" * 64
    for i in range(warm + n):
        t0 = time.perf_counter_ns()
        c.sendall(msg)
        got = 0
        while got < len(msg):
            d = c.recv(len(msg) - got)
            if not d:
                sys.exit("the server closed the connection")
            got += len(d)
        t1 = time.perf_counter_ns()
        if i >= warm:
            out.append((t1 - t0) / 1000)
    c.close()
    report(out)
PY

# p50_of: the p50_us of the JSON line a latency program printed on stdin
# (lat.py's report(), bench/handshake), in microseconds.
p50_of() {
	python3 -c 'import json,sys; print(json.load(sys.stdin)["p50_us"])'
}

# lat_run COL KIND REP [SOFT].  kcptun: the client talks to kcptun-client,
# the tunnel's server end to the server (connect is not run through it: see
# measure()).  SOFT: both programs run with that soft RLIMIT_NOFILE, the
# hard one unchanged (a Debian login session has 1024 soft under a hard
# limit of 524288; where soft is below hard the library numbers its own
# descriptors above the program's and makes sockets ahead: docs/DESIGN.md).
lat_run() {
	local col=$1 kind=$2 rep=$3 sport cport srv cli status=0 smode count tag
	local lim=()
	[ -z "${4:-}" ] || lim=(bash -c 'ulimit -Sn "$0" && exec "$@"' "$4")
	tag="$kind $col run $rep"
	case $kind in
	connect) smode=accept-server count=$connects ;;
	udprtt) smode=udp-echo-server count=$connects ;;
	*) smode=echo-server count=$pings ;;
	esac
	alloc_port
	sport=$port_out
	cport=$sport
	rm -f "$tmp"/srv.* "$tmp"/cli.* "$tmp"/kc[sc].*
	wrap_cmd "$col" "$sport"
	bg_start srv timeout 60 "${lim[@]}" "${wrap[@]}" python3 "$tmp/lat.py" \
		"$smode" "$sport"
	srv=$bg_last
	if ! wait_for "$tmp/srv.out" ready 10; then
		bg_stop "$srv"
		run_failed "$tag: the server did not start" srv.err
		return 1
	fi
	if [ "$col" = kcptun ]; then
		if ! kcp_up "" 127.0.0.1 "" "$kcp_mtu_lo" "$sport" 0 "" "$rep" 60; then
			kcp_down
			bg_stop "$srv"
			run_failed "$tag: the kcptun tunnel did not start" kcs.err kcc.err
			return 1
		fi
		cport=$kcp_port
	fi
	bg_start cli timeout -k 5 45 "${lim[@]}" "${wrap[@]}" python3 "$tmp/lat.py" \
		"$kind" "$cport" "$count"
	cli=$bg_last
	bg_wait "$cli" 55 || status=$?
	bg_stop "$srv"
	kcp_down
	if [ "$status" -ne 0 ] ||
		! result=$(p50_of <"$tmp/cli.out" 2>/dev/null); then
		run_failed "$tag: no result (client exit status $status)" cli.out cli.err \
			srv.err kcs.err kcc.err
		return 1
	fi
}

# ---------------------------------------------------------------------------
# Integrity: nc sends a 64 MiB random file from namespace A to an nc
# listener in namespace B across the veth with 5% loss (set by prepare), and
# what the listener wrote is compared with what was sent.  The listener
# decides: it exits when its stream ends, whole or not, or is stopped after
# BENCH_INTEGRITY_SECS.  Sets result to one of
#   ok                          every byte, in order (SHA-256 equal);
#   TRUNCATED n/m bytes         the stream ended cleanly after a correct
#                               prefix: the program was told "end of file";
#   ABORTED (exit s) n/m bytes  the listener failed with a correct prefix;
#   STALLED n/m bytes           no end of stream within the time limit;
#   CORRUPT n/m bytes           bytes that were never sent;
# and integ_time to the seconds from the sender's start to the listener's
# exit.  For kcptun, nc sends to kcptun-client in A, and kcptun-server in B
# forwards to the listener on 127.0.0.1 there.

integ_file=$tmp/integ.sent
integ_sum=""
integ_time=""
integ_notes=()
integ_run() {
	local col=$1 rep=$2 sport cport lhost=10.201.0.2 host=10.201.0.2
	local srv cli sstatus=0 t0 n tag
	tag="integrity $col run $rep"
	if [ -z "$integ_sum" ]; then
		head -c "$integ_bytes" /dev/urandom >"$integ_file"
		integ_sum=$(sha256sum <"$integ_file" | cut -d' ' -f1)
	fi
	alloc_port
	sport=$port_out
	cport=$sport
	[ "$col" != kcptun ] || lhost=127.0.0.1
	rm -f "$tmp"/isrv.* "$tmp"/icli.* "$tmp"/kc[sc].*

	in_ns "$ns_b"
	wrap_cmd "$col" "$sport"
	bg_start isrv "${nsx[@]}" timeout $((integ_secs + 30)) "${wrap[@]}" \
		nc -n -v -l "$lhost" "$sport"
	srv=$bg_last
	if ! wait_for "$tmp/isrv.err" "Listening on" 10; then
		bg_stop "$srv"
		run_failed "$tag: the nc listener did not start" isrv.err
		return 1
	fi
	if [ "$col" = kcptun ]; then
		if ! kcp_up "$ns_b" 10.201.0.2 "$ns_a" "$kcp_mtu_veth" "$sport" 0 "" \
			"$rep" $((integ_secs + 30)); then
			kcp_down
			bg_stop "$srv"
			run_failed "$tag: the kcptun tunnel did not start" kcs.err kcc.err
			return 1
		fi
		host=127.0.0.1
		cport=$kcp_port
	fi

	in_ns "$ns_a"
	wrap_cmd "$col" "$cport"
	t0=$EPOCHREALTIME
	# -N: shut the connection down for writing at the end of the file.
	# shellcheck disable=SC2016  # $1.. are sh's, not ours
	bg_start icli "${nsx[@]}" timeout -k 5 $((integ_secs + 10)) "${wrap[@]}" \
		sh -c 'exec nc -n -N "$1" "$2" <"$3"' nc "$host" "$cport" "$integ_file"
	cli=$bg_last
	bg_wait "$srv" "$integ_secs" || sstatus=$?
	integ_time=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
	bg_wait "$cli" 10 >/dev/null 2>&1 || true
	kcp_down

	n=$(stat -c %s "$tmp/isrv.out" 2>/dev/null || echo 0)
	if [ "$sstatus" -eq 124 ]; then
		result="STALLED $n/$integ_bytes bytes"
		cmp -s -n "$n" "$integ_file" "$tmp/isrv.out" ||
			result="CORRUPT $n/$integ_bytes bytes"
	elif [ "$n" -eq "$integ_bytes" ] &&
		[ "$(sha256sum <"$tmp/isrv.out" | cut -d' ' -f1)" = "$integ_sum" ]; then
		result=ok
	elif [ "$n" -lt "$integ_bytes" ] &&
		cmp -s -n "$n" "$integ_file" "$tmp/isrv.out"; then
		if [ "$sstatus" -eq 0 ]; then
			result="TRUNCATED $n/$integ_bytes bytes"
		else
			result="ABORTED (exit $sstatus) $n/$integ_bytes bytes"
		fi
	else
		result="CORRUPT $n/$integ_bytes bytes"
	fi
	rm -f "$tmp/isrv.out"
	if [ "$result" != ok ]; then
		say "integrity $col run $rep: $result; the tails of the logs:"
		for n in isrv.err icli.err kcs.err kcc.err; do
			[ -s "$tmp/$n" ] || continue
			sed "s/^/    $n: /" "$tmp/$n" | tail -n 5 >&2
		done
		integ_notes+=("$tag: $result after $integ_time s")
		# rudp and kernel TCP promise the whole stream or an error.
		[ "$col" = kcptun ] || failures+=("$tag: $result")
	fi
	return 0
}

# ---------------------------------------------------------------------------
# Network namespaces: A (10.201.0.1) and B (10.201.0.2) joined by a veth
# pair with the default MTU of 1500 and segmentation/receive offloads off, so
# both protocols put real Ethernet-sized packets on the link.  Loss is an
# nftables rule at input in each namespace that drops N% of TCP and UDP
# packets arriving from the veth at random: both directions, every protocol,
# the same way.  Loopback inside a namespace is spared, so kcptun's TCP legs
# between a program and its own tunnel end see no loss.

netns_note=""
netns_setup() {
	local n dev
	if [ "$(id -u)" -ne 0 ]; then
		netns_note="needs root (network namespaces)"
		return 1
	fi
	if ! command -v nft >/dev/null || ! command -v ip >/dev/null; then
		netns_note="needs iproute2 and nftables"
		return 1
	fi
	ns_a=rudp-bench-a-$$
	ns_b=rudp-bench-b-$$
	if ! ip netns add "$ns_a" || ! ip netns add "$ns_b" ||
		! ip link add va netns "$ns_a" type veth peer name vb netns "$ns_b" ||
		! ip -n "$ns_a" addr add 10.201.0.1/24 dev va ||
		! ip -n "$ns_b" addr add 10.201.0.2/24 dev vb; then
		netns_note="cannot create network namespaces and a veth pair here"
		return 1
	fi
	for n in "$ns_a" "$ns_b"; do
		ip -n "$n" link set lo up
		dev=va
		[ "$n" = "$ns_b" ] && dev=vb
		ip -n "$n" link set "$dev" up
		# Programs that do not choose (nc in the integrity row) get
		# the same TCP congestion control as iperf3 -C, through the
		# route: a namespace's default is not ours to set (EPERM).
		ip -n "$n" route change 10.201.0.0/24 dev "$dev" \
			congctl "$tcp_cc" ||
			say "warning: cannot set congctl $tcp_cc on $dev's route"
		if command -v ethtool >/dev/null; then
			# tx-udp-segmentation too: otherwise a UDP GSO send
			# crosses the veth whole, which TCP with TSO off cannot.
			ip netns exec "$n" ethtool -K "$dev" tso off gso off gro off \
				tx-udp-segmentation off >/dev/null 2>&1 ||
				say "warning: ethtool could not turn offloads off on $dev"
		fi
	done
	if ! set_loss 0; then
		netns_note="cannot load nftables rules in a namespace"
		return 1
	fi
	command -v ethtool >/dev/null ||
		say "warning: no ethtool: veth offloads left as they are"
	return 0
}

set_loss() {
	local n
	for n in "$ns_a" "$ns_b"; do
		ip netns exec "$n" nft -f - <<NFT || return 1
table inet rudp_bench
delete table inet rudp_bench
table inet rudp_bench {
	chain in {
		type filter hook input priority 0; policy accept;
		iifname != "lo" meta l4proto { tcp, udp } numgen random mod 100 < $1 drop
	}
}
NFT
	done
}

# ---------------------------------------------------------------------------
# measure SCENARIO COLUMN REP: sets result, or returns 1 (failed) or 2 (the
# column has no way to do this row).

# connect:kcptun is n/a: kcptun-client accepts the program's connection
# itself and opens the stream through the tunnel afterwards, so connect()
# would time a local TCP handshake with kcptun-client and nothing of the
# tunnel; the ping-pong row shows what the tunnel costs.
measure() {
	case $1:$2 in
	loopback:rudp | loopback:tcp | loopback:tcpdef | loopback:kcptun)
		iperf_run "$2" lo "" "$3" ;;
	ceiling:rudp) ceiling_run "$3" ;;
	ceiling:tcp | ceiling:tcpdef) iperf_run "$2" lo "" "$3" ;;
	relay:rudp | relay:tcp | relay:tcpdef | relay:kcptun)
		iperf_run "$2" relay "" "$3" ;;
	relay-loss1:rudp | relay-loss1:kcptun) iperf_run "$2" relay 1 "$3" ;;
	relay-loss5:rudp | relay-loss5:kcptun) iperf_run "$2" relay 5 "$3" ;;
	relay-reorder:rudp | relay-reorder:kcptun)
		# Local: iperf_run sees it, and every other row keeps none.
		local relay_extra=(--delay 1 --reorder 5 --jitter 2)
		iperf_run "$2" relay "" "$3" || return 1 ;;
	veth:rudp | veth:tcp | veth:tcpdef | veth:kcptun)
		iperf_run "$2" veth "" "$3" ;;
	veth-loss1:rudp | veth-loss1:tcp | veth-loss1:tcpdef | veth-loss1:kcptun)
		iperf_run "$2" veth 1 "$3" ;;
	veth-loss5:rudp | veth-loss5:tcp | veth-loss5:tcpdef | veth-loss5:kcptun)
		iperf_run "$2" veth 5 "$3" ;;
	connect:rudp | connect:tcp) lat_run "$2" connect "$3" ;;
	connect-1024:rudp | connect-1024:tcp) lat_run "$2" connect "$3" 1024 ;;
	# The floor is plain UDP between two python3 processes (no shim): it
	# sits in the rudp column to be read against TCP's whole connect().
	connect-floor:rudp) lat_run tcp udprtt "$3" ;;
	connect-floor:tcp | connect-floor:tcpdef) lat_run "$2" connect "$3" ;;
	connect-path:rudp) handshake_run "$3" ;;
	connect-path:tcp | connect-path:tcpdef) lat_run "$2" connect "$3" ;;
	pingpong:rudp | pingpong:tcp | pingpong:kcptun) lat_run "$2" pingpong "$3" ;;
	integrity:rudp | integrity:tcp | integrity:kcptun) integ_run "$2" "$3" ;;
	fairness:rudp) fair_run "$3" ;;
	*) return 2 ;;
	esac
}

# fair_run REP: tests/fairness.sh (its own three namespaces: a router with
# a 100 Mbit/s tbf queue) runs one rudp and one CUBIC TCP iperf3 at once;
# the result is rudp's share of what the two moved.
fair_run() {
	local out
	if ! out=$("$RUDP_ROOT/tests/fairness.sh" "$shim" --secs "$fair_secs" \
		2>"$tmp/fair.err"); then
		run_failed "fairness run $1 failed" fair.err
		return 1
	fi
	say "$out"
	result=$(sed -n 's/.*rudp share \([0-9.]*\).*/\1/p' <<<"$out")
	[ -n "$result" ]
}

# ceiling_run REP: bench/ceiling moves bytes through the kernel objects and
# threads rudp's data path crosses on loopback (two socket pairs, two
# forwarding threads, UDP), with no protocol and no copy in user space: the
# most any protocol built this way could reach here.
ceiling_run() {
	if ! result=$("$ceiling_bin" "$secs" 2>"$tmp/ceiling.err" |
		sed -n 's/^\([0-9.]*\) Gbit\/s$/\1/p') || [ -z "$result" ]; then
		run_failed "ceiling run $1 failed" ceiling.err
		return 1
	fi
}

# handshake_run REP: bench/handshake times connects that cross the kernel
# objects and threads rudp's handshake does (a socket pair dup3()ed onto
# the program's descriptor, a UDP socket, the server's and the client's
# loop threads, poll() in the program), with no protocol: the least any
# connect() built this way could take here.
handshake_run() {
	if ! result=$("$handshake_bin" "$connects" 2>"$tmp/handshake.err" |
		p50_of) || [ -z "$result" ]; then
		run_failed "handshake run $1 failed" handshake.err
		return 1
	fi
}

# What a row needs before its runs; sets skip_reason when it cannot run.
# (Not called in a subshell: the namespaces it makes must be cleaned up.)
skip_reason=""
prepare() {
	skip_reason=""
	case $1 in
	fairness)
		[ "$(id -u)" -eq 0 ] || skip_reason="needs root (network namespaces)"
		;;
	veth* | integrity)
		if [ -z "$ns_a" ] && [ -z "$netns_note" ]; then
			netns_setup || true
		fi
		if [ -n "$netns_note" ]; then
			skip_reason=$netns_note
			return 0
		fi
		case $1 in
		veth) set_loss 0 ;;
		veth-loss1) set_loss 1 ;;
		veth-loss5 | integrity) set_loss 5 ;;
		esac || skip_reason="cannot load the nftables loss rule"
		;;
	esac
	return 0
}

# ---------------------------------------------------------------------------

ensure_packages >&2
for tool in iperf3 socat python3 ss setsid timeout nc sha256sum cmp; do
	command -v "$tool" >/dev/null || die "$tool is not installed"
done
# kcptun is for this script only, so it is not among RUDP_PACKAGES; without
# it the kcptun column is skipped rather than the whole run.
has_kcptun=0
for col in "${COLUMNS[@]}"; do [ "$col" != kcptun ] || has_kcptun=1; done
if [ "$has_kcptun" = 1 ] && { ! command -v kcptun-client >/dev/null ||
	! command -v kcptun-server >/dev/null; }; then
	install_missing_packages kcptun >&2 || true
	if ! command -v kcptun-client >/dev/null || ! command -v kcptun-server >/dev/null; then
		COL_NOTE[kcptun]="kcptun is not installed (Debian package kcptun)"
		say "warning: ${COL_NOTE[kcptun]}: its column is skipped"
	fi
fi

say "configuring and building $build_dir (release)"
ensure_configured "$build_dir" -Dbuildtype=release -Db_ndebug=true >&2
ninja -C "$build_dir" shim/librudp_shim.so tests/udp-relay bench/ceiling \
	bench/handshake >&2 ||
	die "the build failed"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$SECONDS
# vals[SC:COL]: the results of the runs, space-separated; set (maybe empty,
# when every run failed) for each cell the column measures.  checks[COL]:
# the integrity row's outcomes, one "RESULT<TAB>SECONDS" line per run.
declare -A vals=() notes=() checks=()
for sc in "${SCENARIOS[@]}"; do
	if [ "$sc" = conns ]; then
		# Rows of their own, rudp and kernel TCP only, measured by
		# bench/conns.c: idle connections' cost and connections/s.
		say "connection costs: scripts/bench-conns.sh"
		if ! CONNS_TSV="$tmp/conns.tsv" BUILD_DIR="$build_dir" CONNS_REPS="${CONNS_REPS:-$reps}" \
			"$RUDP_ROOT/scripts/bench-conns.sh" >&2; then
			failures+=("scripts/bench-conns.sh failed (see its notes)")
		fi
		continue
	fi
	prepare "$sc"
	if [ -n "$skip_reason" ]; then
		notes[$sc]="skipped: $skip_reason"
		say "skipping ${SC_TITLE[$sc]}: $skip_reason"
		continue
	fi
	n=$reps
	case $sc in
	connect | connect-1024 | connect-floor | connect-path | pingpong)
		n=$lat_reps ;;
	integrity) n=$integ_reps ;;
	fairness) n=1 ;;
	esac
	for ((rep = 1; rep <= n; rep++)); do
		for col in "${COLUMNS[@]}"; do
			[ -z "${COL_NOTE[$col]:-}" ] || continue
			status=0
			measure "$sc" "$col" "$rep" || status=$?
			case $status:$sc in
			0:integrity)
				vals[$sc:$col]+=""
				checks[$col]+="$result"$'\t'"$integ_time"$'\n'
				say "${SC_TITLE[$sc]}: $col run $rep/$n: $result, $integ_time s"
				;;
			0:*)
				vals[$sc:$col]+="$result "
				say "${SC_TITLE[$sc]}: $col run $rep/$n: $(fmt "$result") ${SC_UNIT[$sc]}"
				;;
			2:*) ;;
			*) vals[$sc:$col]+="" ;;
			esac
		done
	done
done
elapsed=$((SECONDS - started))

# ---------------------------------------------------------------------------
# The report.

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "# rudp benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r) $(uname -m)"
echo "- load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- rudp $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- core shim include 2>/dev/null || echo ' (modified)'), $build_dir: release, NDEBUG"
if [ "$tcp_def" = "$tcp_cc" ]; then
	echo "- kernel TCP: $tcp_cc (also this machine's default)"
else
	echo "- kernel TCP: $tcp_cc, and $tcp_def (this machine's default) in the bulk rows"
fi
echo "- $(iperf3 --version | head -n 1), one connection, -t $secs -O $omit;" \
	"$reps run(s) per cell ($lat_reps for latency), interleaved; medians;" \
	"measuring took ${elapsed} s"
if [ "$has_kcptun" = 1 ] && [ -z "${COL_NOTE[kcptun]:-}" ]; then
	echo "- kcptun $(dpkg-query -W -f='${Version}' kcptun 2>/dev/null || echo '?'):" \
		"${kcp_opts[*]}, --mtu $kcp_mtu_lo (loopback) or $kcp_mtu_veth (veth)"
fi
echo

# integ_cell COL: the integrity row's cell from checks[COL].
integ_cell() {
	local lines=${checks[$1]:-} total bad
	total=$(grep -c . <<<"$lines" || true)
	bad=$(awk -F'\t' '$1 != "" && $1 != "ok"' <<<"$lines")
	if [ -z "$bad" ]; then
		printf 'ok, %s s' "$(fmt "$(cut -f2 <<<"$lines" | grep . | median)")"
		[ "$total" -eq 1 ] || printf ' (%d runs)' "$total"
	else
		printf '%s' "$(head -n 1 <<<"$bad" | cut -f1)"
		[ "$total" -eq 1 ] || printf ' (%d of %d runs)' "$(grep -c . <<<"$bad")" "$total"
	fi
}

header=(scenario unit)
for col in "${COLUMNS[@]}"; do header+=("${COL_TITLE[$col]}"); done
for r in "${RATIOS[@]}"; do header+=("${COL_SHORT[${r%%:*}]}/${COL_SHORT[${r#*:}]}"); done
rows=()
row_of() { local IFS=$'\t'; rows+=("$*"); }
row_of "${header[@]}"

foot=()
for sc in "${SCENARIOS[@]}"; do
	if [ "$sc" = conns ]; then
		# bench-conns.sh's rows: title, unit, rudp, kernel TCP, ratio.
		while IFS=$'\t' read -r title unit r t ratio; do
			cells=("$title" "$unit")
			for col in "${COLUMNS[@]}"; do
				case $col in
				rudp) cells+=("$r") ;;
				tcp) cells+=("$t") ;;
				*) cells+=("n/a") ;;
				esac
			done
			for rr in "${RATIOS[@]}"; do
				if [ "$rr" = rudp:tcp ]; then cells+=("$ratio"); else cells+=(""); fi
			done
			row_of "${cells[@]}"
		done <"$tmp/conns.tsv" 2>/dev/null || foot+=("connection costs: no rows (bench-conns.sh failed)")
		continue
	fi
	cells=("${SC_TITLE[$sc]}" "${SC_UNIT[$sc]}")
	declare -A med=()
	for col in "${COLUMNS[@]}"; do
		med[$col]=""
		if [ -n "${notes[$sc]:-}" ] || [ -n "${COL_NOTE[$col]:-}" ]; then
			cells+=("skipped")
		elif [ -z "${vals[$sc:$col]+set}" ]; then
			cells+=("n/a")
		elif [ "$sc" = integrity ] && [ -n "${checks[$col]:-}" ]; then
			cells+=("$(integ_cell "$col")")
		elif [ -z "${vals[$sc:$col]// /}" ]; then
			cells+=("FAILED")
		else
			med[$col]=$(tr ' ' '\n' <<<"${vals[$sc:$col]}" | grep . | median)
			cells+=("$(fmt "${med[$col]}")")
		fi
	done
	for r in "${RATIOS[@]}"; do
		a=${med[${r%%:*}]:-} b=${med[${r#*:}]:-}
		if [ -n "$a" ] && [ -n "$b" ]; then
			cells+=("$(fmt "$(awk -v a="$a" -v b="$b" \
				'BEGIN { if (b > 0) print a / b; else print 0 }')")")
		else
			cells+=("")
		fi
	done
	unset med
	row_of "${cells[@]}"
	[ -z "${notes[$sc]:-}" ] || foot+=("${SC_TITLE[$sc]}: ${notes[$sc]}")
done
for col in "${COLUMNS[@]}"; do
	[ -z "${COL_NOTE[$col]:-}" ] || foot+=("${COL_TITLE[$col]}: skipped: ${COL_NOTE[$col]}")
done
for f in "${integ_notes[@]}"; do foot+=("$f"); done

# Markdown, with the columns padded so that it reads in a terminal too.
printf '%s\n' "${rows[@]}" | md_table
echo
echo "Notes:"
echo "- Gbit/s: iperf3's receiver rate, higher is better; µs: lower is better."
echo "  The rudp/X columns are rudp's median divided by column X's: above"
echo "  1 rudp is faster in Gbit/s rows and slower in µs rows."
echo "- kcptun: program -> kcptun-client (TCP, 127.0.0.1 on the client's side)"
echo "  -> KCP over UDP -> kcptun-server -> TCP 127.0.0.1 -> program, with the"
echo "  flags above; rudp sends ~64 KB datagrams on loopback, kcptun 1500 bytes."
echo "- loopback: 127.0.0.1, MTU 65536, so rudp sends ~64 KB datagrams there."
echo "- loopback, rudp's path without protocol: bench/ceiling, in the rudp"
echo "  column: the socket pairs, forwarding threads and UDP socket a byte"
echo "  crosses under the shim, 65,000-byte datagrams, acks every 8, an 8 MiB"
echo "  window, no protocol state and no copy in user space; the TCP columns"
echo "  measure loopback again. Its ratio bounds what this design can reach."
echo "- relay: rudp, and kcptun's UDP between its two ends, through udp-relay"
echo "  (tests/relay.c); kernel TCP through a socat TCP relay (TCP-LISTEN,fork"
echo "  -> TCP, 64 KiB buffer), all on loopback."
echo "- relay, N% loss: udp-relay --loss N drops N% of the datagrams each way"
echo "  (rudp's ~64 KB each, kcptun's 1500 bytes); kernel TCP cannot cross a"
echo "  UDP relay (n/a)."
echo "- relay, 5% reordered: udp-relay --delay 1 --reorder 5 --jitter 2: 1 ms"
echo "  each way, and 5% of the datagrams held back 0-2 ms more, so they"
echo "  arrive after later ones; nothing is lost."
echo "- veth: two network namespaces, veth MTU 1500, TSO/GSO/GRO off; nftables"
echo "  drops N% of TCP and UDP packets from the veth at random on input in both"
echo "  namespaces; kcptun's two ends run one in each, so only UDP crosses it."
echo "- connect(): p50 of $connects blocking connects (python3), server accepts"
echo "  and closes; kcptun n/a: kcptun-client accepts the connection itself and"
echo "  opens the tunnel afterwards, so it would time a loopback TCP connect."
echo "  connect() p50, soft fd limit 1024: the same, both programs under"
echo "  ulimit -Sn 1024 (hard limit unchanged), as in a Debian login session."
echo "  connect() floor: p50 of $connects round trips of a 1-byte UDP datagram"
echo "  between two python3 processes, no shim, waited for as connect() waits;"
echo "  any handshake in user space needs at least this (TCP column: connect())."
echo "  connect(), rudp's path without protocol: bench/handshake, in the rudp"
echo "  column: p50 of $connects connects through a socket pair dup3()ed onto the"
echo "  program's descriptor, a UDP socket, a loop thread in each process and"
echo "  poll(), no protocol and no checks; the TCP column is connect() again."
echo "  Its ratio bounds what this design can reach."
echo "  ping-pong: p50 of $pings round trips of 64 bytes, TCP_NODELAY."
echo "- 64 MiB intact: nc -N sends 64 MiB of random bytes from one namespace to"
echo "  nc -l in the other across the 5%-loss veth; ok when what the listener"
echo "  wrote has the same SHA-256, with the seconds until the listener exited;"
echo "  TRUNCATED when its stream ended early without an error, STALLED when it"
echo "  had not ended after $integ_secs s; $integ_reps run(s) per column."
echo "- 100 Mbit/s shared: tests/fairness.sh, client -- router -- server"
echo "  namespaces, tbf 100 Mbit/s with a 20 ms queue on the router, one rudp"
echo "  and one $tcp_cc iperf3 at once for $((fair_secs + 5)) s (first 5 left out); the"
echo "  cell is rudp's share of the two (target 1/3 to 2/3)."
if [ -s "$tmp/conns.tsv.notes" ]; then
	echo "- connection costs, from scripts/bench-conns.sh:"
	grep . "$tmp/conns.tsv.notes" | sed 's/^/  /'
fi
for f in "${foot[@]}"; do echo "- $f"; done
if [ "${#failures[@]}" -gt 0 ]; then
	echo "- failed runs (${#failures[@]}), left out of the medians:"
	for f in "${failures[@]}"; do echo "  - $f"; done
	exit 1
fi
exit 0
