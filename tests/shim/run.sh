#!/usr/bin/env bash
# End-to-end tests of the LD_PRELOAD shim with unmodified programs:
# netcat-openbsd's nc, socat, curl, iperf3 and small python3 programs
# (tests/shim/*.py).
#
#   RUDP_SHIM=/path/to/librudp_shim.so run.sh CASE
#
# Meson runs each CASE inside tests/netns-run.sh (a private network
# namespace that drops TCP and proves UDP was used; unmarked_tcp runs with
# --expect-tcp, bad_ports without it, and netns_loss builds two namespaces
# of its own).  udp-relay is taken from the build directory of RUDP_SHIM,
# or from RUDP_RELAY.  Each case uses its own ports, bounds
# every wait with timeout(1), and kills the background processes it started.
# It prints what it checks and exits 0 (pass), 1 (fail) or 77 (skip: a tool
# is missing).
#
# When the shim was built with AddressSanitizer, the ASan runtime is put
# first in LD_PRELOAD (it must be), leak checking is turned off for the
# unmodified programs, and UBSan is made to stop at its first report.
#
# PYTHON overrides the interpreter (default: /usr/bin/python3, else python3).
# "A && B || fail" is meant: fail when either A or B is false.
# shellcheck disable=SC2015
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=${1:?usage: run.sh CASE}

skip() { echo "SKIP: $*" >&2; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
say() { echo "-- $*"; }

[ -n "${RUDP_SHIM:-}" ] || fail "RUDP_SHIM must name librudp_shim.so"
[ -r "$RUDP_SHIM" ] || fail "RUDP_SHIM=$RUDP_SHIM: no such library"
need() { command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed"; }
need timeout
need ss

if [ -z "${PYTHON:-}" ]; then
	if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
need "$PYTHON"

# shellcheck source=../preload.sh
source "$(dirname "${BASH_SOURCE[0]}")/../preload.sh"
shim_preload "$RUDP_SHIM"
[ "$PRELOAD" = "$RUDP_SHIM" ] || say "the shim is ASan-built: LD_PRELOAD=$PRELOAD"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rudp-shim-$name.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

# shim SECS PORTS CMD...: runs CMD under the shim with RUDP_PORTS=PORTS,
# killed after SECS seconds (status 124).
shim() {
	local secs=$1 ports=$2
	shift 2
	timeout -k 2 "$secs" env LD_PRELOAD="$PRELOAD" RUDP_PORTS="$ports" "$@"
}

# py SECS PORTS PROGRAM.py ARGS...: a helper program under the shim.
py() {
	local secs=$1 ports=$2 prog=$3
	shift 3
	shim "$secs" "$ports" "$PYTHON" "$here/$prog" "$@"
}

# bg LOG SECS PORTS CMD...: starts CMD in the background under the shim as
# `shim` does, output to $tmp/LOG.out and .err; sets $bgpid (timeout's pid,
# which passes our kill on to CMD).
bg() {
	local log=$1 secs=$2 ports=$3
	shift 3
	timeout -k 2 "$secs" env LD_PRELOAD="$PRELOAD" RUDP_PORTS="$ports" "$@" \
		</dev/null >"$tmp/$log.out" 2>"$tmp/$log.err" &
	bgpid=$!
	pids+=("$bgpid")
}

show() { # show LOG: prints a background program's output (on failure)
	local f
	for f in "$tmp/$1.out" "$tmp/$1.err"; do
		[ -s "$f" ] && sed "s|^|  $1.${f##*.}: |" "$f" >&2
	done
	return 0
}

# wait_udp PORT PID LOG: waits (at most 5 s) until a UDP socket is bound to
# PORT, i.e. the rudp listener is up, while PID is alive.
wait_udp() {
	local port=$1 pid=$2 log=$3 i
	for ((i = 0; i < 100; i++)); do
		if [ -n "$(ss -Hnul "sport = :$port")" ]; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			show "$log"
			fail "$log exited before it listened on UDP port $port"
		fi
		sleep 0.05
	done
	show "$log"
	fail "nothing bound UDP port $port within 5 s"
}

# reap PID: waits for a background process (bounded by its timeout); sets
# $rc to its exit status.  (Not in $(...): a subshell cannot wait for it.)
reap() {
	local p keep=()
	rc=0
	wait "$1" || rc=$?
	# Forget it, so that cleanup never signals a recycled pid.
	for p in "${pids[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	pids=("${keep[@]}")
}

# wait_exit PID SECS: true once PID has exited (then reaped, status in
# $rc), false if it is still running after SECS seconds.
wait_exit() {
	local pid=$1 i
	for ((i = 0; i < $2 * 20; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			reap "$pid"
			return 0
		fi
		sleep 0.05
	done
	return 1
}

now_ms() { date +%s%3N; }

# ---------------------------------------------------------------------------

case_nc_connect_accept() {
	local port=24101 t0 st lst
	need nc
	say "nc -l 127.0.0.1 $port under the shim; nc -z -v connects to it"
	bg listener 20 "$port" nc -l 127.0.0.1 "$port"
	lst=$bgpid
	wait_udp "$port" "$lst" listener
	ok "nc -l is listening on UDP port $port"

	st=0
	shim 5 "$port" nc -z -v 127.0.0.1 "$port" >"$tmp/client.out" \
		2>"$tmp/client.err" || st=$?
	[ "$st" -eq 0 ] || { show client; fail "nc -z exited $st, expected 0"; }
	grep -q "succeeded" "$tmp/client.err" ||
		{ show client; fail "nc -z -v did not report success"; }
	ok "nc -z -v 127.0.0.1 $port succeeded (exit 0)"

	t0=$(now_ms)
	wait_exit "$lst" 5 ||
		{ show listener; fail "nc -l did not exit within 5 s of the client"; }
	st=$rc
	[ "$st" -eq 0 ] || { show listener; fail "nc -l exited $st, expected 0"; }
	ok "nc -l saw the client close and exited 0 by itself" \
		"($(($(now_ms) - t0)) ms after the client)"
}

case_refused() {
	local port=24111 pyport=24112 t0 ms st
	need nc
	# openbsd nc reports why a connect failed only with -v (as over TCP).
	say "nc -z -v 127.0.0.1 $port with nothing listening"
	t0=$(now_ms)
	st=0
	shim 5 "$port" nc -z -v 127.0.0.1 "$port" >"$tmp/nc.out" \
		2>"$tmp/nc.err" || st=$?
	ms=$(($(now_ms) - t0))
	[ "$st" -ne 0 ] && [ "$st" -ne 124 ] ||
		{ show nc; fail "nc -z exited $st, expected a failure status"; }
	ok "nc -z failed (exit $st)"
	grep -q "Connection refused" "$tmp/nc.err" ||
		{ show nc; fail "nc's stderr does not say 'Connection refused'"; }
	ok "stderr says: $(head -n1 "$tmp/nc.err")"
	[ "$ms" -lt 1000 ] || fail "refusal took $ms ms, expected < 1000"
	ok "refused in $ms ms (< 1 s)"

	say "python client to 127.0.0.1 $pyport with nothing listening"
	py 5 "$pyport" client.py 127.0.0.1 "$pyport" refused
}

case_nonblocking_connect() {
	local ports=24121-24123
	say "python: non-blocking connect with select(), poll() and SO_ERROR"
	py 10 "$ports" nonblocking_connect.py 24121 24122 24123
}

case_spares() {
	say "python: connections one after another, on spares made at close"
	# Below the hard limit, so that the library numbers its own above
	# the program's descriptors: only then are spares made.
	local hard
	hard=$(ulimit -Hn)
	[ "$hard" = unlimited ] || [ "$hard" -gt 1024 ] ||
		skip "the hard descriptor limit ($hard) leaves no room above 1024"
	(ulimit -Sn 1024 && py 10 24141 spares.py 24141)
}

case_epoll_accept() {
	say "python: accepting through epoll (LT, ET, one-shot; nginx pattern)"
	py 10 24131-24135 epoll_accept.py 24131
}

case_names() {
	say "python: getsockname/getpeername and socket options"
	py 10 24141,24142 names.py 24141 24142
}

case_abort_reset() {
	say "python: SO_LINGER {1, 0} and close with unread data reset the peer"
	py 15 24301 abort_reset.py 24301
}

case_unmarked_tcp() {
	say "python: RUDP_PORTS=24151,24153; TCP on 24152 stays kernel TCP"
	py 10 24151,24153 unmarked_tcp.py 24151 24153 24152 "$tmp"
}

case_bad_ports() {
	local val tok st
	need nc
	# A bad value stops the program before main with status 2, naming the
	# offending token.
	while IFS='|' read -r val tok; do
		for prog in "echo main-ran" "nc -h"; do
			st=0
			# shellcheck disable=SC2086 # $prog is a command line
			timeout 5 env LD_PRELOAD="$PRELOAD" RUDP_PORTS="$val" $prog \
				>"$tmp/bad.out" 2>"$tmp/bad.err" || st=$?
			[ "$st" -eq 2 ] ||
				{ show bad; fail "RUDP_PORTS='$val' $prog: exit $st, expected 2"; }
			[ ! -s "$tmp/bad.out" ] ||
				{ show bad; fail "RUDP_PORTS='$val' $prog: main() ran"; }
			grep -qF "'$tok'" "$tmp/bad.err" ||
				{ show bad; fail "RUDP_PORTS='$val': stderr does not name '$tok'"; }
			ok "RUDP_PORTS='$val' $prog: exit 2 before main;" \
				"stderr: $(head -n1 "$tmp/bad.err")"
		done
	done <<-'EOF'
		90x0|90x0
		1-|1-
		*,80|*
		80,,81|
		0|0
		65536|65536
		9000-8000|9000-8000
	EOF

	st=0
	timeout 5 env LD_PRELOAD="$PRELOAD" RUDP_PORTS=80 RUDP_LOG=loud true \
		2>"$tmp/bad.err" || st=$?
	[ "$st" -eq 2 ] && grep -q "loud" "$tmp/bad.err" ||
		{ show bad; fail "RUDP_LOG=loud: exit $st, expected 2 naming it"; }
	ok "RUDP_LOG=loud: exit 2; stderr: $(head -n1 "$tmp/bad.err")"

	# Unset or empty: the shim is inert.
	local ref
	ref=0
	timeout 5 nc -h >/dev/null 2>&1 || ref=$?
	for how in unset empty; do
		local envset=(env LD_PRELOAD="$PRELOAD" RUDP_PORTS=)
		[ "$how" = unset ] && envset=(env -u RUDP_PORTS LD_PRELOAD="$PRELOAD")
		st=0
		out=$(timeout 5 "${envset[@]}" echo main-ran 2>"$tmp/bad.err") ||
			st=$?
		[ "$st" -eq 0 ] && [ "$out" = main-ran ] && [ ! -s "$tmp/bad.err" ] ||
			{ show bad; fail "RUDP_PORTS $how: echo exited $st ('$out')"; }
		st=0
		timeout 5 "${envset[@]}" nc -h >/dev/null 2>&1 || st=$?
		[ "$st" -eq "$ref" ] ||
			fail "RUDP_PORTS $how: nc -h exited $st, without the shim $ref"
		ok "RUDP_PORTS $how: programs run normally (echo, nc -h exit $st)"
		timeout 10 "${envset[@]}" "$PYTHON" -c '
import socket, sys
sys.path.insert(0, sys.argv[1])
from shimlib import accept_within, check, is_kernel_tcp, is_rudp
lst = socket.socket()
lst.bind(("127.0.0.1", 0))
lst.listen(1)
c = socket.create_connection(lst.getsockname(), timeout=5)
conn, peer = accept_within(lst)
check(all(is_kernel_tcp(s) and not is_rudp(s) for s in (lst, c, conn)),
      "with the shim inert, a TCP connection is kernel TCP")
' "$here" || fail "RUDP_PORTS $how: python TCP check failed"
	done
}

case_fork_server() {
	local port=24161 pfport=24162 i st sc pf n
	need socat
	need nc
	say "(a) socat TCP-LISTEN:$port,fork,reuseaddr EXEC:/bin/true"
	bg socat 20 "$port" socat -d -d \
		"TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" EXEC:/bin/true
	sc=$bgpid
	wait_udp "$port" "$sc" socat
	for i in 1 2 3; do
		st=0
		shim 5 "$port" nc -z -v 127.0.0.1 "$port" >"$tmp/nc.out" \
			2>"$tmp/nc.err" || st=$?
		[ "$st" -eq 0 ] || { show nc; show socat; fail "client $i: nc -z exited $st"; }
		ok "client $i: nc -z succeeded"
	done
	kill -0 "$sc" 2>/dev/null || { show socat; fail "socat died"; }
	ok "socat is still listening"
	# nc -z succeeds once the handshake completes, even if nobody accepts;
	# socat's log shows that the listening process accepted each and forked
	# a child for it (its children fork again for EXEC: not counted).
	local master
	master=$(sed -n 's/.*socat\[\([0-9]*\)\] N listening on.*/\1/p;T;q' \
		"$tmp/socat.err")
	[ -n "$master" ] || { show socat; fail "socat logged no 'listening on'"; }
	master="socat\[$master\]"
	for i in $(seq 50); do
		n=$(grep -Ec "$master N forked off child" "$tmp/socat.err" || true)
		[ "$n" -ge 3 ] && break
		sleep 0.1
	done
	n=$(grep -Ec "$master N accepting connection from" "$tmp/socat.err" || true)
	[ "$n" -eq 3 ] || { show socat; fail "socat accepted $n connections, expected 3"; }
	n=$(grep -Ec "$master N forked off child" "$tmp/socat.err" || true)
	[ "$n" -eq 3 ] || { show socat; fail "socat forked $n children, expected 3"; }
	ok "socat accepted 3 connections and forked a child for each"
	grep -Eq "socat\[[0-9]+\] E " "$tmp/socat.err" && { show socat; fail "socat logged an error"; }
	ok "socat logged no error"

	say "(b) python prefork: master listens on $pfport, 2 workers accept"
	bg prefork 15 "$pfport" "$PYTHON" "$here/prefork.py" "$pfport" 2
	pf=$bgpid
	wait_udp "$pfport" "$pf" prefork
	for i in 1 2; do
		st=0
		py 5 "$pfport" client.py 127.0.0.1 "$pfport" ok \
			>"$tmp/client$i.out" 2>"$tmp/client$i.err" || st=$?
		[ "$st" -eq 0 ] || { show "client$i"; show prefork; fail "client $i exited $st"; }
		ok "client $i connected from $(sed -n 's/^name //p' "$tmp/client$i.out")"
	done
	reap "$pf"
	st=$rc
	[ "$st" -eq 0 ] || { show prefork; fail "prefork master exited $st"; }
	sed 's/^/  prefork: /' "$tmp/prefork.out"
	sed -n 's/^name //p' "$tmp/client1.out" "$tmp/client2.out" | sort \
		>"$tmp/clients"
	sed -n 's/^peer //p' "$tmp/prefork.out" | sort >"$tmp/peers"
	[ "$(wc -l <"$tmp/peers")" -eq 2 ] && cmp -s "$tmp/clients" "$tmp/peers" ||
		{ show prefork; fail "workers' peers differ from the clients' names"; }
	ok "each worker accepted one client, getpeername matches; all exited 0"
}

case_accept_close() {
	local port=24181 n=200 sv st
	say "python: a server accepts and closes at once; $n blocking connects"
	bg server 20 "$port" "$PYTHON" "$here/accept_close.py" server "$port" "$n"
	sv=$bgpid
	wait_udp "$port" "$sv" server
	st=0
	py 20 "$port" accept_close.py client "$port" "$n" || st=$?
	wait_exit "$sv" 5 || { show server; fail "the server did not finish"; }
	[ "$rc" -eq 0 ] || { show server; fail "the server exited $rc"; }
	[ "$st" -eq 0 ] || fail "the client exited $st"
	ok "server accepted all $n connections, client saw no error"
}

case_relisten() {
	say "python: a listener closed and opened again on its port"
	py 15 24311 relisten.py 24311
}

case_closefrom() {
	need nc
	say "python: close every descriptor but the listener, then accept"
	py 15 24171 closefrom.py 24171
}

# ---------------------------------------------------------------------------
# The byte stream and teardown with unmodified programs.

# bg_io IN OUT LOG SECS PORTS CMD...: bg, with stdin from IN and stdout to
# OUT (stderr to $tmp/LOG.err).  CMD runs in network namespace $NETNS if
# that is set.
bg_io() {
	local in=$1 out=$2 log=$3 secs=$4 ports=$5
	shift 5
	${NETNS:+ip netns exec "$NETNS"} timeout -k 2 "$secs" \
		env LD_PRELOAD="$PRELOAD" RUDP_PORTS="$ports" "$@" \
		<"$in" >"$out" 2>"$tmp/$log.err" &
	bgpid=$!
	pids+=("$bgpid")
}

# wait_udp_ns PORT PID LOG: wait_udp, in network namespace $NETNS if set.
wait_udp_ns() {
	local port=$1 pid=$2 log=$3 i
	for ((i = 0; i < 100; i++)); do
		if [ -n "$(${NETNS:+ip netns exec "$NETNS"} ss -Hnul "sport = :$port")" ]; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null ||
			{ show "$log"; fail "$log exited before it listened on UDP port $port"; }
		sleep 0.05
	done
	show "$log"
	fail "nothing bound UDP port $port within 5 s"
}

# wait_line FILE PATTERN PID SECS: waits until FILE has a line matching
# PATTERN (grep -E), while PID lives; false after SECS seconds or if PID
# exited without writing it.
wait_line() {
	local f=$1 pat=$2 pid=$3 i
	for ((i = 0; i < $4 * 20; i++)); do
		grep -Eq "$pat" "$f" 2>/dev/null && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			grep -Eq "$pat" "$f" 2>/dev/null
			return
		fi
		sleep 0.05
	done
	return 1
}

# child PID: the program timeout(1) runs as PID (what kill -9 must hit).
child() {
	local c i
	for ((i = 0; i < 100; i++)); do
		c=$(pgrep -P "$1" | head -n1 || true)
		[ -n "$c" ] && { echo "$c"; return 0; }
		sleep 0.05
	done
	return 1
}

sha() { sha256sum <"$1" | cut -d' ' -f1; }
# rate BYTES MS: "N MiB/s"
rate() { awk -v b="$1" -v ms="$2" 'BEGIN { printf "%.1f MiB/s", b / 1048576 / (ms > 0 ? ms / 1000 : 0.001) }'; }

# nc_xfer DATA SECS PORTS SRVADDR SRVPORT DSTADDR DSTPORT: DATA through
# unmodified nc both ways, sha256 verified.  The server listens on
# SRVADDR:SRVPORT (in namespace $SRV_NS if set); the client connects to
# DSTADDR:DSTPORT (in $CLI_NS if set): the server, or a relay in between.
nc_xfer() {
	local data=$1 secs=$2 ports=$3 saddr=$4 sport=$5 daddr=$6 dport=$7
	local sv cl t0 ms bytes want
	bytes=$(stat -c %s "$data")
	want=$(sha "$data")

	say "client -> server: nc -N $daddr $dport < data; nc -l $saddr $sport > file"
	NETNS=${SRV_NS:-} bg_io /dev/null "$tmp/up.data" up_srv "$secs" "$ports" \
		nc -l "$saddr" "$sport"
	sv=$bgpid
	NETNS=${SRV_NS:-} wait_udp_ns "$sport" "$sv" up_srv
	t0=$(now_ms)
	NETNS=${CLI_NS:-} bg_io "$data" /dev/null up_cli "$secs" "$ports" \
		nc -N "$daddr" "$dport"
	cl=$bgpid
	reap "$cl"
	[ "$rc" -eq 0 ] || { show up_cli; show up_srv; fail "the sending nc exited $rc"; }
	reap "$sv"
	ms=$(($(now_ms) - t0))
	[ "$rc" -eq 0 ] || { show up_srv; fail "the receiving nc -l exited $rc"; }
	[ "$(stat -c %s "$tmp/up.data")" -eq "$bytes" ] ||
		fail "nc -l received $(stat -c %s "$tmp/up.data") bytes, expected $bytes"
	[ "$(sha "$tmp/up.data")" = "$want" ] || fail "client -> server: sha256 differs"
	ok "client -> server: $bytes bytes, sha256 matches, both exited 0;" \
		"$ms ms ($(rate "$bytes" "$ms"))"
	rm -f "$tmp/up.data"

	say "server -> client: nc -N -l $saddr $sport < data; nc $daddr $dport > file"
	NETNS=${SRV_NS:-} bg_io "$data" /dev/null down_srv "$secs" "$ports" \
		nc -N -l "$saddr" "$sport"
	sv=$bgpid
	NETNS=${SRV_NS:-} wait_udp_ns "$sport" "$sv" down_srv
	t0=$(now_ms)
	NETNS=${CLI_NS:-} bg_io /dev/null "$tmp/down.data" down_cli "$secs" \
		"$ports" nc "$daddr" "$dport"
	cl=$bgpid
	reap "$cl"
	[ "$rc" -eq 0 ] || { show down_cli; show down_srv; fail "the receiving nc exited $rc"; }
	reap "$sv"
	ms=$(($(now_ms) - t0))
	[ "$rc" -eq 0 ] || { show down_srv; fail "the sending nc -N -l exited $rc"; }
	[ "$(stat -c %s "$tmp/down.data")" -eq "$bytes" ] ||
		fail "nc received $(stat -c %s "$tmp/down.data") bytes, expected $bytes"
	[ "$(sha "$tmp/down.data")" = "$want" ] || fail "server -> client: sha256 differs"
	ok "server -> client: $bytes bytes, sha256 matches, both exited 0;" \
		"$ms ms ($(rate "$bytes" "$ms"))"
	rm -f "$tmp/down.data"
}

case_nc_64mib() {
	local port=24201
	need nc
	need sha256sum
	head -c 64M /dev/urandom >"$tmp/data"
	say "64 MiB of random data through nc over 127.0.0.1:$port, no loss"
	nc_xfer "$tmp/data" 25 "$port" 127.0.0.1 "$port" 127.0.0.1 "$port"
}

# The relay is built next to the shim (build/tests/udp-relay), unless
# RUDP_RELAY names it.
relay_bin() {
	local r=${RUDP_RELAY:-$(dirname "$RUDP_SHIM")/../tests/udp-relay}
	[ -x "$r" ] || fail "no udp-relay at $r (build it, or set RUDP_RELAY)"
	echo "$r"
}

case_nc_64mib_impaired() {
	local port=24211 rport=24212 relay rl mib=${RUDP_IMPAIRED_MIB:-64} secs
	need nc
	need sha256sum
	relay=$(relay_bin)
	# 64 MiB each way takes 8-11 s here (with or without ASan); each nc
	# gets 50 s.  RUDP_IMPAIRED_MIB sets another size.
	secs=$((mib <= 64 ? 50 : mib))
	head -c "${mib}M" /dev/urandom >"$tmp/data"
	say "$mib MiB through udp-relay 127.0.0.1:$rport -> :$port" \
		"(--loss 10 --dup 5 --reorder 10 --delay 2 --seed 7)"
	timeout -k 2 $((2 * secs + 5)) "$relay" --listen "127.0.0.1:$rport" \
		--to "127.0.0.1:$port" --loss 10 --dup 5 --reorder 10 --delay 2 \
		--seed 7 --stats "$tmp/relay.json" \
		</dev/null >"$tmp/relay.out" 2>"$tmp/relay.err" &
	rl=$!
	pids+=("$rl")
	wait_line "$tmp/relay.err" "listening on" "$rl" 5 ||
		{ show relay; fail "udp-relay did not start"; }
	nc_xfer "$tmp/data" "$secs" "$port,$rport" 127.0.0.1 "$port" 127.0.0.1 "$rport"
	kill "$rl"
	reap "$rl"
	[ "$rc" -eq 0 ] || { show relay; fail "udp-relay exited $rc"; }
	ok "relay: $(sed 's/udp-relay: //' "$tmp/relay.err" | grep up:)"
	grep -q '"dropped_loss":[1-9]' "$tmp/relay.json" &&
		grep -q '"duplicated":[1-9]' "$tmp/relay.json" &&
		grep -q '"reordered":[1-9]' "$tmp/relay.json" ||
		fail "the relay did not lose, duplicate and reorder datagrams"
	ok "the relay lost, duplicated and reordered datagrams in both directions"
}

case_socat_halfclose() {
	local port=24221 port2=24222 sv st reply want t0
	need socat
	need nc
	need sha256sum
	head -c 4M /dev/urandom >"$tmp/data"
	want=$(sha "$tmp/data")

	say "(a) socat server: cat >x; echo got \$(wc -c <x); client socat -t 20 - TCP:..."
	bg socat 30 "$port" socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" \
		"SYSTEM:cat >$tmp/x; echo got \$(wc -c <$tmp/x)"
	sv=$bgpid
	wait_udp "$port" "$sv" socat
	t0=$(now_ms)
	st=0
	shim 30 "$port" socat -t 20 - "TCP:127.0.0.1:$port" <"$tmp/data" \
		>"$tmp/reply" 2>"$tmp/client.err" || st=$?
	[ "$st" -eq 0 ] || { show client; show socat; fail "the socat client exited $st"; }
	reply=$(cat "$tmp/reply")
	[ "$reply" = "got 4194304" ] ||
		{ show socat; fail "the client received '$reply', expected 'got 4194304'"; }
	ok "the client shut down writing and still received '$reply'" \
		"($(($(now_ms) - t0)) ms)"
	[ "$(sha "$tmp/x")" = "$want" ] || fail "the server's copy differs (sha256)"
	ok "the server read all 4 MiB (sha256 matches) before its EOF"
	wait_exit "$sv" 10 || { show socat; fail "the socat server did not exit"; }
	[ "$rc" -eq 0 ] || { show socat; fail "the socat server exited $rc"; }
	ok "the socat server exited 0"

	say "(b) socat server: sha256sum (answers only at EOF); client nc -N"
	bg socat2 30 "$port2" socat "TCP-LISTEN:$port2,bind=127.0.0.1,reuseaddr" \
		"SYSTEM:sha256sum"
	sv=$bgpid
	wait_udp "$port2" "$sv" socat2
	st=0
	shim 30 "$port2" nc -N 127.0.0.1 "$port2" <"$tmp/data" \
		>"$tmp/reply" 2>"$tmp/client.err" || st=$?
	[ "$st" -eq 0 ] || { show client; show socat2; fail "nc -N exited $st"; }
	reply=$(cut -d' ' -f1 "$tmp/reply")
	[ "$reply" = "$want" ] ||
		{ show socat2; fail "the reply '$reply' is not the data's sha256"; }
	ok "nc -N shut down writing and received the server's sha256 of all 4 MiB"
	wait_exit "$sv" 10 || { show socat2; fail "the socat server did not exit"; }
	[ "$rc" -eq 0 ] || { show socat2; fail "the socat server exited $rc"; }
	ok "the socat server exited 0"
}

case_curl_keepalive() {
	local port=24231 sv st f n urls=() outs=() conns
	need curl
	need sha256sum
	# On Debian 12, curl does not even start with libasan preloaded (its
	# libp11-kit constructor runs before ASan is initialised and leaves
	# glibc's locale lock broken; `curl --version` hangs, with or without
	# the shim), so there is nothing to test in the sanitizer pass.
	if [ "$PRELOAD" != "$RUDP_SHIM" ] &&
		! timeout 5 env LD_PRELOAD="${PRELOAD%%:*}" curl --version \
			>/dev/null 2>&1; then
		skip "curl cannot start with libasan preloaded"
	fi
	mkdir -p "$tmp/www" "$tmp/got"
	head -c 1M /dev/urandom >"$tmp/www/big.bin"
	head -c 100K /dev/urandom >"$tmp/www/mid.bin"
	printf '0123456789' >"$tmp/www/small.txt"
	say "python3 http.server (HTTP/1.1) on 127.0.0.1:$port; one curl, 3 URLs"
	if "$PYTHON" -m http.server --help 2>/dev/null | grep -q -- --protocol; then
		bg http 40 "$port" "$PYTHON" -m http.server --bind 127.0.0.1 \
			--directory "$tmp/www" --protocol HTTP/1.1 "$port"
	else
		bg http 40 "$port" "$PYTHON" -c '
import functools, http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])),
    functools.partial(H, directory=sys.argv[2])).serve_forever()
' "$port" "$tmp/www"
	fi
	sv=$bgpid
	wait_udp "$port" "$sv" http
	for f in big.bin mid.bin small.txt; do
		urls+=("http://127.0.0.1:$port/$f")
		outs+=(-o "$tmp/got/$f")
	done
	st=0
	shim 30 "$port" curl -sS -v --fail "${outs[@]}" "${urls[@]}" \
		-w '%{http_code} %{num_connects} %{size_download}\n' \
		>"$tmp/curl.out" 2>"$tmp/curl.err" || st=$?
	[ "$st" -eq 0 ] || { show curl; show http; fail "curl exited $st"; }
	sed 's/^/  curl -w: /' "$tmp/curl.out"
	n=$(grep -c '^200 ' "$tmp/curl.out" || true)
	[ "$n" -eq 3 ] || { show curl; fail "$n of 3 transfers answered 200"; }
	for f in big.bin mid.bin small.txt; do
		[ "$(sha "$tmp/got/$f")" = "$(sha "$tmp/www/$f")" ] ||
			fail "$f: sha256 differs"
	done
	ok "3 files (1 MiB, 100 KiB, 10 bytes) downloaded, sha256 of each matches"
	conns=$(awk '{ s += $2 } END { print s + 0 }' "$tmp/curl.out")
	[ "$conns" -eq 1 ] || { show curl; fail "curl made $conns connections, expected 1"; }
	n=$(grep -c "Re-using existing connection" "$tmp/curl.err" || true)
	[ "$n" -eq 2 ] || { show curl; fail "curl re-used the connection $n times, expected 2"; }
	ok "one connection for all three (num_connects sums to 1; 2 re-uses in -v)"
	kill -0 "$sv" 2>/dev/null || { show http; fail "http.server died"; }
	ok "http.server is still serving"
}

case_iperf3() {
	local port=24241 port2=24242 port3=24243 sv st how p args
	need iperf3
	# window: -w makes iperf3's server close its listener and listen
	# again on the same port while the control connection it accepted is
	# still open, and check the buffer sizes it reads back.
	for how in forward reverse window; do
		p=$port args=()
		[ "$how" = reverse ] && p=$port2 args=(-R)
		[ "$how" = window ] && p=$port3 args=(-w 256K)
		say "iperf3 -s -1 on 127.0.0.1:$p; iperf3 -c -t 3 ${args[*]}"
		bg "srv_$how" 30 "$p" iperf3 -s -1 -B 127.0.0.1 -p "$p" -J
		sv=$bgpid
		wait_udp "$p" "$sv" "srv_$how"
		st=0
		shim 30 "$p" iperf3 -c 127.0.0.1 -p "$p" -t 3 -J "${args[@]}" \
			>"$tmp/cli_$how.out" 2>"$tmp/cli_$how.err" || st=$?
		[ "$st" -eq 0 ] ||
			{ show "cli_$how"; show "srv_$how"; fail "iperf3 -c exited $st"; }
		wait_exit "$sv" 10 || { show "srv_$how"; fail "iperf3 -s -1 did not exit"; }
		[ "$rc" -eq 0 ] || { show "srv_$how"; fail "iperf3 -s -1 exited $rc"; }
		"$PYTHON" - "$tmp/cli_$how.out" "$tmp/srv_$how.out" "$how" <<-'PY' ||
			import json, sys
			cli, srv = (json.load(open(f)) for f in sys.argv[1:3])
			for name, j in (("client", cli), ("server", srv)):
			    if "error" in j:
			        sys.exit(f"FAIL: iperf3 {name}: {j['error']}")
			end = cli["end"]
			sent = end["sum_sent"]
			recv = end["sum_received"]
			if not (sent["bytes"] > 0 and sent["bits_per_second"] > 0 and
			        recv["bytes"] > 0 and recv["bits_per_second"] > 0):
			    sys.exit(f"FAIL: iperf3 reports no throughput: {sent} {recv}")
			print(f"ok: {sys.argv[3]}: sent {sent['bytes']} bytes at "
			      f"{sent['bits_per_second'] / 1e9:.2f} Gbit/s, received "
			      f"{recv['bytes']} at {recv['bits_per_second'] / 1e9:.2f} "
			      f"Gbit/s (retransmits reported: {sent.get('retransmits')})")
		PY
			{ show "cli_$how"; fail "iperf3's JSON report is not a success"; }
		ok "iperf3 -c and -s -1 both exited 0 ($how)"
	done
}

case_fork_32() {
	local port=24251 sv i n=32 cl=() bad=0 t0
	need socat
	need nc
	head -c $((n * 256))K /dev/urandom >"$tmp/all"
	split -b 256K -d -a 2 "$tmp/all" "$tmp/in."
	# -t 30: after a client's EOF socat waits that long (default 0.5 s)
	# for cat's echo to end; it exits as soon as it does.
	say "socat TCP-LISTEN:$port,fork EXEC:cat; $n nc -N clients at once," \
		"256 KiB each"
	bg socat 50 "$port" socat -t 30 \
		"TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" EXEC:cat
	sv=$bgpid
	wait_udp "$port" "$sv" socat
	t0=$(now_ms)
	for ((i = 0; i < n; i++)); do
		bg_io "$tmp/in.$(printf %02d "$i")" "$tmp/out.$i" "c$i" 40 "$port" \
			nc -N 127.0.0.1 "$port"
		cl+=("$bgpid")
	done
	for ((i = 0; i < n; i++)); do
		reap "${cl[$i]}"
		if [ "$rc" -ne 0 ]; then
			show "c$i"
			echo "client $i: nc exited $rc" >&2
			bad=$((bad + 1))
		elif ! cmp -s "$tmp/in.$(printf %02d "$i")" "$tmp/out.$i"; then
			echo "client $i: the echo differs ($(stat -c %s "$tmp/out.$i") bytes)" >&2
			bad=$((bad + 1))
		fi
	done
	[ "$bad" -eq 0 ] || { show socat; fail "$bad of $n clients failed"; }
	ok "all $n clients got their 256 KiB echoed byte for byte, exit 0" \
		"($(($(now_ms) - t0)) ms)"
	kill -0 "$sv" 2>/dev/null || { show socat; fail "the socat server died"; }
	ok "socat is still listening"
}

case_slow_reader() {
	local port=24261 total=$((1 << 30)) mib=${RUDP_SLOW_MIBPS:-64}
	local rd wr rpid wpid pid kib n what t_r t_w lag buffered
	need pgrep
	# ASan keeps freed memory in a quarantine of 256 MiB by default, which
	# would be measured here as if rudp held it: keep it small.
	[ "$PRELOAD" = "$RUDP_SHIM" ] ||
		export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=16"
	say "python writer sends 1 GiB of zeros as fast as it can;" \
		"the reader reads at $mib MiB/s"
	bg reader 55 "$port" "$PYTHON" "$here/slow_reader.py" reader "$port" \
		"$total" "$mib"
	rd=$bgpid
	wait_udp "$port" "$rd" reader
	bg writer 55 "$port" "$PYTHON" "$here/slow_reader.py" writer "$port" \
		"$total"
	wr=$bgpid
	rpid=$(child "$rd") || fail "no reader process"
	wpid=$(child "$wr") || fail "no writer process"
	timeout 60 "$PYTHON" "$here/slow_reader.py" monitor 55 "$rpid" "$wpid" \
		>"$tmp/rss.out" || fail "the memory monitor failed"
	# Memory first: it is measured whatever the transfer's outcome.
	while read -r _ pid kib n; do
		[ "$pid" = "$rpid" ] && what=reader || what=writer
		[ "$n" -gt 10 ] || fail "only $n RSS samples of the $what"
		[ "$kib" -lt $((200 * 1024)) ] ||
			fail "the $what's RSS peaked at $((kib / 1024)) MiB (limit 200 MiB)"
		ok "the $what's RSS peaked at $((kib / 1024)) MiB ($n samples; < 200 MiB)"
	done <"$tmp/rss.out"
	reap "$wr"
	[ "$rc" -eq 0 ] || { show writer; show reader; fail "the writer exited $rc"; }
	reap "$rd"
	local rdrc=$rc
	grep -v '^done' "$tmp/writer.out"
	# Bounded buffers also mean the writer cannot get far ahead: it
	# finishes about when the reader has the last few MiB to go.
	t_r=$(sed -n 's/^done //p' "$tmp/reader.out")
	t_w=$(sed -n 's/^done //p' "$tmp/writer.out")
	[ -n "$t_r" ] && [ -n "$t_w" ] ||
		{ show reader; show writer; fail "the reader did not get all 1 GiB"; }
	lag=$(awk -v a="$t_r" -v b="$t_w" 'BEGIN { printf "%.2f", a - b }')
	buffered=$(awk -v l="$lag" -v m="$mib" 'BEGIN { printf "%d", l * m }')
	[ "$buffered" -lt 64 ] ||
		fail "the writer finished ${lag} s before the reader:" \
			"~$buffered MiB were buffered somewhere"
	ok "the writer finished ${lag} s before the reader's last byte" \
		"(~$buffered MiB in flight)"
	[ "$rdrc" -eq 0 ] || { show reader; fail "the reader exited $rdrc"; }
	grep -v '^done' "$tmp/reader.out"
}

# direct_write: send(), write(), sendmsg(), writev() and sendall() in turn,
# chunks from 1 byte to 2 MiB; the first two go from the program's thread
# into the send ring when they can, the others through the socket pair, so
# the stream's order depends on each direct write taking the pair's bytes
# first.  RUDP_STATS shows the direct path was taken.
case_direct_write() {
	local port=24291 sv st=0 n v
	say "python: 48 MiB sent through five kinds of write call, checked in order"
	bg server 40 "$port" "$PYTHON" "$here/direct_write.py" server "$port"
	sv=$bgpid
	wait_udp "$port" "$sv" server
	RUDP_STATS=1 timeout -k 2 40 env LD_PRELOAD="$PRELOAD" RUDP_PORTS="$port" \
		"$PYTHON" "$here/direct_write.py" client "$port" \
		>"$tmp/client.out" 2>"$tmp/client.err" || st=$?
	wait_exit "$sv" 10 || { show server; fail "the server did not finish"; }
	[ "$st" -eq 0 ] || { show client; show server; fail "the client exited $st"; }
	[ "$rc" -eq 0 ] || { show server; fail "the server exited $rc"; }
	grep '^ok' "$tmp/server.out"
	n=$(sed -n 's/.*direct writes: \([0-9]*\) .*/\1/p' "$tmp/client.err")
	[ -n "$n" ] && [ "$n" -gt 0 ] ||
		{ show client; fail "no write went the direct way"; }
	v=$(sed -n 's/.*bytes, \([0-9]*\) of several buffers.*/\1/p' "$tmp/client.err")
	[ -n "$v" ] && [ "$v" -gt 0 ] ||
		{ show client; fail "no sendmsg() or writev() went the direct way"; }
	ok "$n writes went from the program's thread, $v of them sendmsg() or" \
		"writev(); $(grep -o 'to the pair.*' "$tmp/client.err")"
}

# pk_start I WHAT PORT first|second CMD1... ";;" CMD2...: scenario I of
# peer_killed.  CMD1 (the listener) and CMD2 start under the shim; once the
# survivor (the one not named) prints "progress", the other is killed with
# SIGKILL.  Sets what[I], sur[I] (the survivor's pid), slog[I] and t0[I].
pk_start() {
	local i=$1 port=$3 victim=$4 first=() p1 p2 v
	what[i]=$2
	shift 4
	while [ "$1" != ";;" ]; do first+=("$1"); shift; done
	shift
	say "${what[$i]}"
	bg "pk${i}a" 50 "$port" "${first[@]}"
	p1=$bgpid
	wait_udp "$port" "$p1" "pk${i}a"
	bg "pk${i}b" 50 "$port" "$@"
	p2=$bgpid
	if [ "$victim" = first ]; then
		v=$p1 sur[i]=$p2 slog[i]=pk${i}b
	else
		v=$p2 sur[i]=$p1 slog[i]=pk${i}a
	fi
	wait_line "$tmp/${slog[$i]}.out" '^progress' "${sur[$i]}" 20 ||
		{ show "${slog[$i]}"; fail "${what[$i]}: the transfer did not start"; }
	kill -9 "$(child "$v")"
	t0[i]=$(now_ms)
	# (The shell would report the SIGKILL; that is the point, not news.)
	{ reap "$v"; } 2>/dev/null
}

case_peer_killed() {
	local pk=$here/peer_killed.py i n=5 bound=30 bad=0 left ms res
	local what=() sur=() slog=() t0=() end=()
	need nc
	need pgrep
	pk_start 0 "(a) kill -9 the receiving nc -l; python sends (blocking connect)" \
		24271 first nc -l 127.0.0.1 24271 ";;" \
		"$PYTHON" "$pk" sender 127.0.0.1 24271 blocking
	pk_start 1 "(b) kill -9 the receiving nc -l; python sends (connect with a timeout)" \
		24272 first nc -l 127.0.0.1 24272 ";;" \
		"$PYTHON" "$pk" sender 127.0.0.1 24272 timeout
	pk_start 2 "(c) kill -9 the sending nc (client); python receives (listener)" \
		24273 second "$PYTHON" "$pk" receiver listen 127.0.0.1 24273 ";;" \
		sh -c 'exec nc 127.0.0.1 24273 </dev/zero'
	pk_start 3 "(d) kill -9 the sending nc -l; python receives (client)" \
		24274 first sh -c 'exec nc -l 127.0.0.1 24274 </dev/zero' ";;" \
		"$PYTHON" "$pk" receiver connect 127.0.0.1 24274
	# A listener on :: serves IPv4 peers too; their ICMP errors reach its
	# UDP socket only through the IPv4 error option.
	pk_start 4 "(e) kill -9 the receiving nc (IPv4 client); python sends from a listener on ::" \
		24275 second "$PYTHON" "$pk" sender :: 24275 listen ";;" \
		sh -c 'exec nc 127.0.0.1 24275 >/dev/null'
	# All five survivors are watched at once, so the case takes ~30 s
	# even if every one of them hangs.
	say "waiting up to $bound s after each kill for the survivor to end"
	while :; do
		left=0
		for ((i = 0; i < n; i++)); do
			[ -z "${end[$i]:-}" ] || continue
			if ! kill -0 "${sur[$i]}" 2>/dev/null; then
				end[i]=$(now_ms)
			elif [ $(($(now_ms) - t0[i])) -ge $((bound * 1000)) ]; then
				end[i]=hang
			else
				left=1
			fi
		done
		[ "$left" -eq 1 ] || break
		sleep 0.05
	done
	for ((i = 0; i < n; i++)); do
		if [ "${end[$i]}" = hang ]; then
			show "${slog[$i]}"
			echo "FAIL: ${what[$i]}: the survivor was still running" \
				"$bound s after the kill (a hang)" >&2
			kill "${sur[$i]}" 2>/dev/null || true
			reap "${sur[$i]}"
			bad=$((bad + 1))
			continue
		fi
		reap "${sur[$i]}"
		ms=$((end[i] - t0[i]))
		res=$(grep -Ev '^(progress|ok:|--)' "$tmp/${slog[$i]}.out" || true)
		if [ "$rc" -ne 0 ] || [ -z "$res" ]; then
			show "${slog[$i]}"
			echo "FAIL: ${what[$i]}: the survivor exited $rc ('$res')" >&2
			bad=$((bad + 1))
			continue
		fi
		ok "${what[$i]}: the survivor got '$res' $ms ms after the kill"
	done
	[ "$bad" -eq 0 ] || fail "$bad of $n scenarios did not end well within $bound s"
}

case_exit_flush() {
	local port=24281 port2=24282 port3=24283 port4=24284 sv st i
	need nc
	need sha256sum
	say "(a) echo hi | nc -q0 127.0.0.1 $port, 10 times; nc -l receives 'hi\\n'"
	printf 'hi\n' >"$tmp/hi"
	for i in $(seq 10); do
		bg_io /dev/null "$tmp/got" srv 20 "$port" nc -l 127.0.0.1 "$port"
		sv=$bgpid
		wait_udp "$port" "$sv" srv
		st=0
		shim 15 "$port" nc -q0 127.0.0.1 "$port" <"$tmp/hi" \
			>/dev/null 2>"$tmp/cli.err" || st=$?
		[ "$st" -eq 0 ] || { show cli; fail "round $i: nc -q0 exited $st"; }
		wait_exit "$sv" 15 || { show srv; fail "round $i: nc -l did not exit"; }
		[ "$rc" -eq 0 ] || { show srv; fail "round $i: nc -l exited $rc"; }
		cmp -s "$tmp/hi" "$tmp/got" ||
			fail "round $i: nc -l received '$(od -c "$tmp/got" | head -n2)'"
	done
	ok "10 rounds: nc -l received exactly 'hi\\n' and exited 0 each time"

	head -c 10M /dev/urandom >"$tmp/data"
	say "(b) python server writes 10 MiB and sys.exit()s; nc client reads"
	bg server 30 "$port2" "$PYTHON" "$here/exit_flush.py" server "$port2" \
		"$tmp/data"
	sv=$bgpid
	wait_udp "$port2" "$sv" server
	st=0
	shim 30 "$port2" nc 127.0.0.1 "$port2" </dev/null >"$tmp/got" \
		2>"$tmp/cli.err" || st=$?
	[ "$st" -eq 0 ] || { show cli; show server; fail "nc exited $st"; }
	wait_exit "$sv" 15 || { show server; fail "the server did not exit"; }
	[ "$rc" -eq 0 ] || { show server; fail "the server exited $rc"; }
	[ "$(sha "$tmp/got")" = "$(sha "$tmp/data")" ] ||
		fail "nc received $(stat -c %s "$tmp/got") bytes, not the 10 MiB (sha256)"
	ok "nc received all 10 MiB (sha256 matches), then EOF; the server exited 0"

	say "(c) python client writes 10 MiB and sys.exit()s; nc -l reads"
	bg_io /dev/null "$tmp/got" srv3 30 "$port3" nc -l 127.0.0.1 "$port3"
	sv=$bgpid
	wait_udp "$port3" "$sv" srv3
	st=0
	py 30 "$port3" exit_flush.py client "$port3" "$tmp/data" \
		>"$tmp/cli.out" 2>"$tmp/cli.err" || st=$?
	[ "$st" -eq 0 ] || { show cli; fail "the python client exited $st"; }
	wait_exit "$sv" 15 || { show srv3; fail "nc -l did not exit"; }
	[ "$rc" -eq 0 ] || { show srv3; fail "nc -l exited $rc"; }
	[ "$(sha "$tmp/got")" = "$(sha "$tmp/data")" ] ||
		fail "nc -l received $(stat -c %s "$tmp/got") bytes, not the 10 MiB (sha256)"
	ok "nc -l received all 10 MiB (sha256 matches), then EOF; exited 0"

	# With a slow reader, the writer exits while its send buffer is full
	# and more of its bytes still wait in the descriptor: all must come.
	say "(d) python client writes 10 MiB and sys.exit()s; a python reader" \
		"reads at 20 MiB/s"
	head -c 10M /dev/zero >"$tmp/zeros"
	bg slow 30 "$port4" "$PYTHON" "$here/slow_reader.py" reader "$port4" \
		$((10 << 20)) 20
	sv=$bgpid
	wait_udp "$port4" "$sv" slow
	st=0
	py 30 "$port4" exit_flush.py client "$port4" "$tmp/zeros" \
		>"$tmp/cli.out" 2>"$tmp/cli.err" || st=$?
	[ "$st" -eq 0 ] || { show cli; fail "the python client exited $st"; }
	wait_exit "$sv" 15 || { show slow; fail "the reader did not exit"; }
	[ "$rc" -eq 0 ] || { show slow; fail "the reader exited $rc"; }
	ok "the slow reader received all 10 MiB, then EOF"
}

# packets NS COUNTER: the packet count of an nftables counter in NS.
packets() {
	ip netns exec "$1" nft list counter inet rudp_loss "$2" |
		sed -n 's/.*packets \([0-9]*\).*/\1/p'
}

case_netns_loss() {
	local a b port=24291 ns dev udp_in lost tcp
	need nc
	need sha256sum
	[ "$(id -u)" -eq 0 ] || skip "needs root for network namespaces"
	command -v ip >/dev/null || skip "ip (iproute2) not installed"
	command -v nft >/dev/null || skip "nft (nftables) not installed"
	a="rudp-loss$$-a" b="rudp-loss$$-b"
	ip netns add "$a" 2>/dev/null || skip "cannot create a network namespace"
	# (Expanded now: $a and $b are gone by the time the trap runs.)
	# shellcheck disable=SC2064
	trap "cleanup; ip netns del $a 2>/dev/null; ip netns del $b 2>/dev/null" EXIT
	ip netns add "$b" || fail "cannot create a second namespace"
	ip -n "$a" link add veth0 type veth peer name veth1 netns "$b" ||
		skip "cannot create a veth pair"
	ip -n "$a" addr add 10.77.0.1/24 dev veth0
	ip -n "$b" addr add 10.77.0.2/24 dev veth1
	# Loss is drawn per datagram where they arrive.  With the veth's
	# offloads on, a UDP GSO send would cross as one packet and be lost
	# whole; with them off it is split before the link, as on a wire.
	for ns in "$a" "$b"; do
		dev=veth0
		[ "$ns" = "$b" ] && dev=veth1
		ip -n "$ns" link set lo up
		ip -n "$ns" link set "$dev" up
		if command -v ethtool >/dev/null; then
			ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off \
				tx-udp-segmentation off \
				>/dev/null 2>&1 ||
				say "warning: cannot turn $dev's offloads off"
		else
			say "warning: no ethtool: GSO sends are lost whole"
		fi
		ip netns exec "$ns" nft -f - <<-'NFT' || skip "cannot load nftables rules"
			table inet rudp_loss {
				counter udp_in {}
				counter udp_lost {}
				counter tcp_out {}
				chain out {
					type filter hook output priority 0; policy accept;
					meta l4proto tcp counter name "tcp_out" drop
				}
				chain in {
					type filter hook input priority 0; policy accept;
					meta l4proto tcp drop
					iifname "lo" accept
					meta l4proto udp numgen random mod 100 < 5 counter name "udp_lost" drop
					meta l4proto udp counter name "udp_in"
				}
			}
		NFT
	done
	head -c "${RUDP_NETNS_MIB:-16}M" /dev/urandom >"$tmp/data"
	say "${RUDP_NETNS_MIB:-16} MiB through nc between namespaces over veth" \
		"(10.77.0.1 <-> 10.77.0.2); both drop all TCP and 5% of UDP"
	SRV_NS=$a CLI_NS=$b nc_xfer "$tmp/data" 50 "$port" 10.77.0.1 "$port" \
		10.77.0.1 "$port"
	for ns in "$a" "$b"; do
		udp_in=$(packets "$ns" udp_in)
		lost=$(packets "$ns" udp_lost)
		tcp=$(packets "$ns" tcp_out)
		[ "${tcp:-1}" -eq 0 ] || fail "$ns tried kernel TCP ($tcp packets)"
		[ "${udp_in:-0}" -gt 0 ] && [ "${lost:-0}" -gt 0 ] ||
			fail "$ns: UDP received $udp_in, dropped $lost: expected both > 0"
		ok "$ns: UDP datagrams received $udp_in, dropped $lost" \
			"($(awk -v l="$lost" -v u="$udp_in" 'BEGIN { printf "%.1f", 100 * l / (l + u) }')%); TCP sent 0"
	done
}

# ---------------------------------------------------------------------------

declare -F "case_$name" >/dev/null || fail "unknown case '$name'"
start=$(now_ms)
"case_$name"
echo "PASS: $name ($(($(now_ms) - start)) ms)"
