#!/usr/bin/env bash
# Shows rudp working: builds the library, the shim and examples/hello, then
# runs two acts, each a listener and a connector in two processes with
# RUDP_LOG=debug, so that every state transition of the three-way handshake
# is printed:
#   1. examples/hello, a small program written against the C API;
#   2. two unmodified netcat (nc) processes under the LD_PRELOAD shim, whose
#      TCP connection is carried over rudp: one sends a 16 MiB file of random
#      bytes, the other receives it, and the SHA-256 of both must match.
# As root, with ip netns and nft available, each act runs inside a private
# network namespace (tests/netns-run.sh) whose nftables counters prove the
# traffic was UDP and that no TCP was sent; elsewhere on 127.0.0.1.
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
	local act=$1 port=$2 rpid cstatus lstatus=0 i
	local -a listen_cmd connect_cmd
	local ready accepted show_listen show_connect

	tmp=$(mktemp -d)

	case $act in
	hello)
		listen_cmd=("$hello" listen "$port")
		connect_cmd=("$hello" connect 127.0.0.1 "$port")
		ready='listening on'
		accepted='accepted a connection'
		show_listen="hello listen $port"
		show_connect="hello connect 127.0.0.1 $port"
		;;
	nc)
		# The connector sends the file and shuts down its side (-N);
		# the listener writes what it receives and exits at its end.
		head -c $((16 * 1024 * 1024)) /dev/urandom >"$tmp/sent"
		listen_cmd=("$rudp_run" -p "$port" -- sh -c \
			"exec nc -v -l 127.0.0.1 $port >'$tmp/received'")
		connect_cmd=("$rudp_run" -p "$port" -- sh -c \
			"exec nc -v -N 127.0.0.1 $port <'$tmp/sent'")
		ready='Listening on'
		accepted='Connection received'
		show_listen="rudp-run -p $port -- nc -v -l 127.0.0.1 $port > received"
		show_connect="rudp-run -p $port -- nc -v -N 127.0.0.1 $port < sent (16 MiB)"
		;;
	esac

	mkfifo "$tmp/listener"
	# The listener writes into a FIFO rather than a pipe so that $! is the
	# listener itself, which the cleanup can then kill.
	sed -u 's/^/  listener  | /' <"$tmp/listener" | tee "$tmp/listener.log" &
	rpid=$!
	echo "--- listener: RUDP_LOG=debug $show_listen"
	RUDP_LOG=debug timeout "$SIDE_TIMEOUT" "${listen_cmd[@]}" \
		>"$tmp/listener" 2>&1 &
	lpid=$!

	# Connecting before the listener is bound would only show a
	# retransmitted SYN, so wait until it says it is listening.
	for ((i = 0; i < 100; i++)); do
		grep -qs "$ready" "$tmp/listener.log" && break
		kill -0 "$lpid" 2>/dev/null || break
		sleep 0.1
	done

	echo "--- connector: RUDP_LOG=debug $show_connect"
	set +e
	# --foreground keeps the connector in our process group, so ^C reaches it.
	RUDP_LOG=debug timeout --foreground "$SIDE_TIMEOUT" "${connect_cmd[@]}" \
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
	if [ "$lstatus" -ne 0 ] || ! grep -q "$accepted" "$tmp/listener.log"; then
		say "FAIL: the listener did not accept the connection"
		return 1
	fi
	if [ "$act" = nc ]; then
		local sent received
		sent=$(sha256sum <"$tmp/sent" | cut -d' ' -f1)
		received=$(sha256sum <"$tmp/received" | cut -d' ' -f1)
		echo "--- sent     $(stat -c %s "$tmp/sent") bytes, sha256 $sent"
		echo "--- received $(stat -c %s "$tmp/received") bytes, sha256 $received"
		if [ "$sent" != "$received" ]; then
			say "FAIL: the file arrived changed"
			return 1
		fi
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
	hello=$3
	rudp_run=$4
	export RUDP_SHIM=$5
	run_pair "$2" "$6"
	exit
fi

build_dir=${BUILD_DIR:-build}
ensure_packages
ensure_configured "$build_dir"
# Only what the demo runs is built, so a test file someone is still writing
# cannot stop it.
ninja -C "$build_dir" examples/hello shim/librudp_shim.so
hello=$(realpath "$build_dir/examples/hello")
shim=$(realpath "$build_dir/shim/librudp_shim.so")
rudp_run=$RUDP_ROOT/scripts/rudp-run
export RUDP_SHIM=$shim

# Runs one act, in a namespace with the UDP proof when possible.
act() {
	local name=$1 title=$2 port status=0

	echo
	echo "=== Act: $title"
	if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null && command -v nft >/dev/null; then
		# A fresh namespace has no other sockets: the port is free.
		port=${PORT:-9000}
		echo "=== inside a private network namespace where nftables drops"
		echo "=== all TCP and counts UDP; listener on UDP port $port"
		tests/netns-run.sh "$RUDP_ROOT/scripts/demo.sh" --pair "$name" \
			"$hello" "$rudp_run" "$shim" "$port" || status=$?
		if [ "$status" -eq 0 ]; then
			echo "=== PASS: connected and accepted; nftables counted the UDP"
			echo "=== packets above and dropped no TCP: it all went over UDP"
			return 0
		fi
		[ "$status" -eq 77 ] || { echo "=== FAIL (status $status)"; return 1; }
		say "network namespaces are unavailable here; using 127.0.0.1"
	fi
	port=$(pick_port)
	echo "=== on this host's loopback, 127.0.0.1; listener on UDP port $port"
	echo "=== (run as root with ip and nft for the proof that no TCP was used)"
	if run_pair "$name" "$port"; then
		echo "=== PASS: the connector connected and the listener accepted"
		return 0
	fi
	echo "=== FAIL"
	return 1
}

echo
echo "=== rudp demo: reliable three-way handshakes over real UDP, with every"
echo "=== state transition logged (RUDP_LOG=debug)"
act hello "a program written against the C API (examples/hello)"
act nc "two unmodified nc processes under the shim (scripts/rudp-run)"
