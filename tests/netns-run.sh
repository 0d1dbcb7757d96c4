#!/usr/bin/env bash
# Runs a command inside a fresh, private network namespace whose only link is
# loopback, with nftables rules that drop every TCP packet and count every
# UDP packet.  Afterwards it checks the counters, so a test that passes here
# has provably carried its traffic over UDP and never over kernel TCP.
#
#   netns-run.sh [--expect-tcp] CMD [ARGS...]
#
# --expect-tcp is the opposite proof, for a test that must show kernel TCP
# is still used where rudp does not apply: TCP is counted but not dropped,
# and the check requires that some TCP was sent (UDP may be zero).
#
# Exit status: CMD's status if CMD fails; 1 if CMD passed but the counters
# disagree (default: UDP carried nothing or something tried TCP;
# --expect-tcp: no TCP was sent); 77 (meson's "skipped") when namespaces or
# nftables are unavailable (not root, no CAP_NET_ADMIN, no nft binary).
set -u

expect_tcp=false
if [ "${1:-}" = "--expect-tcp" ]; then
	expect_tcp=true
	shift
fi
tcp_verdict=drop
$expect_tcp && tcp_verdict=accept

skip() { echo "netns-run: skipped: $*" >&2; exit 77; }

[ "$#" -ge 1 ] || { echo "usage: netns-run.sh [--expect-tcp] CMD [ARGS...]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || skip "needs root for network namespaces"
command -v ip >/dev/null || skip "ip (iproute2) not installed"
command -v nft >/dev/null || skip "nft (nftables) not installed"

ns="rudp-t$$-$RANDOM"
ip netns add "$ns" 2>/dev/null || skip "cannot create a network namespace"
trap 'ip netns del "$ns" 2>/dev/null' EXIT
in_ns() { ip netns exec "$ns" "$@"; }

in_ns ip link set lo up || skip "cannot bring up loopback in the namespace"
in_ns nft -f - <<NFT || skip "cannot load nftables rules"
table inet rudp_proof {
	counter udp_out {}
	counter tcp_out {}
	chain out {
		type filter hook output priority 0; policy accept;
		meta l4proto udp counter name "udp_out"
		meta l4proto tcp counter name "tcp_out" $tcp_verdict
	}
}
NFT

in_ns "$@"
status=$?

packets() {
	in_ns nft list counter inet rudp_proof "$1" |
		sed -n 's/.*packets \([0-9]*\).*/\1/p'
}
udp=$(packets udp_out)
tcp=$(packets tcp_out)
if $expect_tcp; then
	echo "netns-run: UDP packets sent: ${udp:-?}, TCP packets sent: ${tcp:-?}" >&2
	[ "$status" -eq 0 ] || exit "$status"
	if [ "${tcp:-0}" -eq 0 ]; then
		echo "netns-run: FAIL: --expect-tcp, but the test sent no TCP" >&2
		exit 1
	fi
	exit 0
fi
echo "netns-run: UDP packets sent: ${udp:-?}, TCP packets dropped: ${tcp:-?}" >&2
[ "$status" -eq 0 ] || exit "$status"
if [ "${udp:-0}" -eq 0 ]; then
	echo "netns-run: FAIL: the test sent no UDP at all" >&2
	exit 1
fi
if [ "${tcp:-0}" -ne 0 ]; then
	echo "netns-run: FAIL: the test tried kernel TCP" >&2
	exit 1
fi
exit 0
