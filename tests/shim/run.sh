#!/usr/bin/env bash
# End-to-end tests of the LD_PRELOAD shim with unmodified programs:
# netcat-openbsd's nc, socat and small python3 programs (tests/shim/*.py).
#
#   RUDP_SHIM=/path/to/librudp_shim.so run.sh CASE
#
# Meson runs each CASE inside tests/netns-run.sh (a private network
# namespace that drops TCP and proves UDP was used; unmarked_tcp runs with
# --expect-tcp, bad_ports without it).  Each case uses its own ports, bounds
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

PRELOAD=$RUDP_SHIM
# (ldd's output is read whole: with pipefail, `ldd | grep -q` fails whenever
# grep's early exit makes ldd die of SIGPIPE.)
deps=$(ldd "$RUDP_SHIM" 2>/dev/null || true)
if [[ $deps == *libasan* ]]; then
	asan=$(awk '/libasan/ { print $3 }' <<<"$deps")
	[ -r "$asan" ] || asan=$(gcc -print-file-name=libasan.so)
	PRELOAD="$asan:$RUDP_SHIM"
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
	# Undefined behaviour in the shim fails the case, as a memory error does.
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
	say "the shim is ASan-built: LD_PRELOAD=$PRELOAD"
fi

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

case_epoll_accept() {
	say "python: accepting through epoll (LT, ET, one-shot; nginx pattern)"
	py 10 24131-24135 epoll_accept.py 24131
}

case_names() {
	say "python: getsockname/getpeername and socket options"
	py 10 24141,24142 names.py 24141 24142
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

case_closefrom() {
	need nc
	say "python: close every descriptor but the listener, then accept"
	py 15 24171 closefrom.py 24171
}

# ---------------------------------------------------------------------------

declare -F "case_$name" >/dev/null || fail "unknown case '$name'"
start=$(now_ms)
"case_$name"
echo "PASS: $name ($(($(now_ms) - start)) ms)"
