#!/usr/bin/env bash
# Shows rudp working: builds the library and examples/hello, then runs a
# listener and a connector in two processes with RUDP_LOG=debug, so that
# every state transition of the three-way handshake is printed.  As root,
# with ip netns and nft available, both run inside a private network
# namespace (tests/netns-run.sh) whose nftables counters prove the traffic
# was UDP and that no TCP was sent; elsewhere they run on 127.0.0.1.
#
#   scripts/demo.sh
#   PORT=9100 BUILD_DIR=build scripts/demo.sh
#
# Exits 0 only if the connector connected and the listener accepted.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$RUDP_ROOT"

# The connector gives up after about two minutes by default (RUDP_SYN_RETRIES
# is 6); a demo that hangs that long looks broken, so cap each side.
readonly SIDE_TIMEOUT=30

tmp=
lpid=
# shellcheck disable=SC2317  # Called from the EXIT trap, which ShellCheck
# 0.9 does not follow.
cleanup() {
	if [ -n "$lpid" ] && kill -0 "$lpid" 2>/dev/null; then
		kill "$lpid" 2>/dev/null || true
	fi
	[ -z "$tmp" ] || rm -rf "$tmp"
}
trap cleanup EXIT
# Turning signals into an exit makes the EXIT trap clean up after ^C too;
# the background listener ignores SIGINT, since job control is off.
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs the listener in the background and the connector in the foreground,
# each line of their output tagged with its side, and checks both outcomes.
# This is the part that runs inside the network namespace when there is one.
run_pair() {
	local hello=$1 port=$2 rpid cstatus lstatus=0 i

	tmp=$(mktemp -d)
	mkfifo "$tmp/listener"
	# The listener writes into a FIFO rather than a pipe so that $! is the
	# listener itself, which the cleanup can then kill.
	sed -u 's/^/  listener  | /' <"$tmp/listener" | tee "$tmp/listener.log" &
	rpid=$!
	echo "--- listener: RUDP_LOG=debug hello listen $port"
	RUDP_LOG=debug timeout "$SIDE_TIMEOUT" "$hello" listen "$port" \
		>"$tmp/listener" 2>&1 &
	lpid=$!

	# Connecting before the listener is bound would only show a
	# retransmitted SYN, so wait until it says it is listening.
	for ((i = 0; i < 100; i++)); do
		grep -qs 'listening on' "$tmp/listener.log" && break
		kill -0 "$lpid" 2>/dev/null || break
		sleep 0.1
	done

	echo "--- connector: RUDP_LOG=debug hello connect 127.0.0.1 $port"
	set +e
	# --foreground keeps the connector in our process group, so ^C reaches it.
	RUDP_LOG=debug timeout --foreground "$SIDE_TIMEOUT" "$hello" connect 127.0.0.1 "$port" \
		2>&1 | sed -u 's/^/  connector | /'
	cstatus=${PIPESTATUS[0]}
	set -e

	# The listener exits by itself once it has accepted one connection.
	for ((i = 0; i < 50; i++)); do
		kill -0 "$lpid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$lpid" 2>/dev/null || true
	wait "$lpid" || lstatus=$?
	lpid=
	wait "$rpid" || true

	echo "--- connector exited with status $cstatus, listener with status $lstatus"
	if [ "$cstatus" -ne 0 ]; then
		say "FAIL: the connector did not connect"
		return 1
	fi
	if [ "$lstatus" -ne 0 ] || ! grep -q 'accepted a connection' "$tmp/listener.log"; then
		say "FAIL: the listener did not accept the connection"
		return 1
	fi
	return 0
}

# Whether a UDP socket is already bound to port $1 on this host.
port_busy() {
	[ -n "$(ss -Haun "sport = :$1" 2>/dev/null)" ]
}

# Picks the UDP port for a run on this host's loopback: PORT if given (and
# then it must be free), otherwise the first free one from 9000.
pick_port() {
	local p

	if [ -n "${PORT:-}" ]; then
		port_busy "$PORT" && die "UDP port $PORT is already in use"
		echo "$PORT"
		return 0
	fi
	for ((p = 9000; p < 9100; p++)); do
		port_busy "$p" || { echo "$p"; return 0; }
	done
	die "no free UDP port between 9000 and 9099; set PORT"
}

# netns-run.sh calls this script again with --pair inside the namespace.
if [ "${1:-}" = "--pair" ]; then
	run_pair "$2" "$3"
	exit
fi

build_dir=${BUILD_DIR:-build}
ensure_packages
ensure_configured "$build_dir"
# Only the example is needed, so a test file someone is still writing
# cannot stop the demo.
ninja -C "$build_dir" examples/hello
hello=$(realpath "$build_dir/examples/hello")

echo
echo "=== rudp demo: a reliable three-way handshake between two processes"
echo "=== over real UDP, with every state transition logged (RUDP_LOG=debug)"

if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null && command -v nft >/dev/null; then
	# A fresh namespace has no other sockets, so the default port is free.
	port=${PORT:-9000}
	echo "=== inside a private network namespace where nftables drops all TCP"
	echo "=== and counts UDP; listener on UDP port $port"
	echo
	status=0
	tests/netns-run.sh "$RUDP_ROOT/scripts/demo.sh" --pair "$hello" "$port" ||
		status=$?
	if [ "$status" -eq 0 ]; then
		echo
		echo "=== PASS: connected and accepted; nftables counted the UDP packets"
		echo "=== above and dropped no TCP, so the handshake went over UDP"
		exit 0
	fi
	[ "$status" -eq 77 ] || { echo "=== FAIL (status $status)"; exit 1; }
	say "network namespaces are unavailable here; running on 127.0.0.1 instead"
fi

port=$(pick_port)
echo "=== on this host's loopback, 127.0.0.1; listener on UDP port $port"
echo "=== (run as root with ip and nft for the proof that no TCP was used)"
echo
if run_pair "$hello" "$port"; then
	echo
	echo "=== PASS: the connector connected and the listener accepted"
	exit 0
fi
echo "=== FAIL"
exit 1
