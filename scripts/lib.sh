# shellcheck shell=bash
# Shared helpers for scripts/test.sh, scripts/demo.sh and scripts/bench.sh.
# Source it; it defines functions and RUDP_ROOT and runs nothing else, so
# sourcing it has no side effects beyond that.

# Every script works relative to the repository root, so that build/ always
# means the same directory no matter where the script was started from.
RUDP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The Debian 12 packages the build, the tests, the demo and the benchmark
# need.  python3 is listed because a minimal image may lack it and test.sh
# parses Meson's JSON test log with it; iproute2 and nftables give the
# namespaced UDP proof; iperf3 and ethtool (veth offloads off) are for
# bench.sh; curl and iperf3 are unmodified programs the shim's end-to-end
# tests run, and procps gives them pgrep.
RUDP_PACKAGES=(meson ninja-build check pkg-config gcc libc6-dev
	netcat-openbsd socat nftables iproute2 python3 iperf3 ethtool curl
	procps)

# Messages go to stderr so that a script's stdout stays the real output.
say() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { say "$*"; exit 1; }

# Installs whichever of RUDP_PACKAGES are missing.  Nothing touches apt when
# everything is present, so a second run is quick and works offline.  When
# not root it cannot install, so it prints the exact command and fails.
ensure_packages() {
	install_missing_packages "${RUDP_PACKAGES[@]}" || exit 1
}

# install_missing_packages PKG...: installs whichever of the given Debian
# packages are missing, the same way.  Returns 1, having said why, when it
# cannot (not root, or apt-get failed), so that a caller for which the
# packages are optional (bench.sh and kcptun) can go on without them.
install_missing_packages() {
	local missing=() pkg status

	if ! command -v dpkg-query >/dev/null; then
		say "warning: dpkg-query not found (not Debian?); not checking packages"
		return 0
	fi
	for pkg in "$@"; do
		status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
		[ "$status" = "install ok installed" ] || missing+=("$pkg")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0

	say "missing Debian packages: ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		say "not running as root, so cannot install them; as root, run:"
		echo "apt-get install -y --no-install-recommends ${missing[*]}" >&2
		return 1
	fi
	# The lock timeout makes a concurrent apt run (unattended-upgrades on a
	# fresh machine, say) a wait rather than a failure.
	if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update; then
		say "apt-get update failed"
		return 1
	fi
	if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
		install -y --no-install-recommends "${missing[@]}"; then
		say "apt-get install failed"
		return 1
	fi
}

# Makes DIR (relative to the repository root) a configured Meson build
# directory, passing any further arguments to Meson as options.  A directory
# that exists but is not a usable Meson build directory (an interrupted
# setup, stray files, a different Meson version) is wiped and set up again.
ensure_configured() {
	local dir=$1
	shift

	if [ -f "$dir/meson-private/coredata.dat" ] && [ -f "$dir/build.ninja" ]; then
		# meson configure without options changes nothing but proves
		# Meson can load the directory.  Options are applied separately,
		# so a mistyped option fails the run instead of wiping the build.
		# Ninja reruns Meson by itself when meson.build changes.
		if meson configure "$dir" >/dev/null; then
			[ "$#" -eq 0 ] || meson configure "$dir" "$@" ||
				die "meson configure $dir $* failed"
			return 0
		fi
		say "Meson cannot use $dir as it is; setting it up from scratch"
	elif [ -e "$dir" ]; then
		say "$dir is not a valid Meson build directory; setting it up from scratch"
	else
		meson setup "$dir" "$@" || die "meson setup $dir failed"
		return 0
	fi
	meson setup --wipe "$dir" "$@" && return 0
	# --wipe refuses directories Meson never configured, so clear it by
	# hand, but only a directory inside the repository.
	case "$(realpath -m "$dir")" in
	"$RUDP_ROOT"/?*) rm -rf "$dir" ;;
	*) die "refusing to delete $dir, which is outside $RUDP_ROOT" ;;
	esac
	meson setup "$dir" "$@" || die "meson setup $dir failed"
}

# Helpers of the measuring scripts (bench.sh, bench-conns.sh).

# alloc_port: the next port from $port on with no TCP or UDP socket on it,
# in $port_out; past 65000 it starts again at $port_base.  (A global, not
# command substitution, so the counter advances.)
port_out=""
alloc_port() {
	while [ -n "$(ss -Htuan "sport = :$port")" ]; do
		port=$((port + 1))
	done
	port_out=$port
	port=$((port + 1))
	[ "$port" -lt 65000 ] || port=$port_base
}

# median: the median of the numbers on stdin, one per line.
median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) exit 1
		if (NR % 2) print v[(NR + 1) / 2]
		else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
	}'
}

# fmt V: three significant figures or so, without exponents.  (The limits
# are where rounding moves a value into the next decade: 9.996 prints as
# 10.0.)
fmt() {
	awk -v v="$1" 'BEGIN {
		if (v == 0) printf "0"
		else if (v >= 99.95) printf "%.0f", v
		else if (v >= 9.995) printf "%.1f", v
		else if (v >= 0.9995) printf "%.2f", v
		else if (v >= 0.009995) printf "%.3f", v
		else printf "%.4f", v
	}'
}

# md_table: tab-separated rows on stdin (the first is the header) as a
# Markdown table, the columns padded so that it reads in a terminal too;
# the first two columns are text (left), the others numbers (right).
md_table() {
	python3 -c '
import sys
rows = [line.rstrip("\n").split("\t") for line in sys.stdin]
w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
def line(cells):
    return "| " + " | ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i])
                             for i, c in enumerate(cells)) + " |"
print(line(rows[0]))
print("| " + " | ".join("-" * w[i] if i < 2 else "-" * (w[i] - 1) + ":"
                        for i in range(len(w))) + " |")
for r in rows[1:]:
    print(line(r))
'
}
