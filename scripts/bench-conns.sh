#!/usr/bin/env bash
# What connections cost, rudp against kernel TCP, with bench/conns.c (plain
# POSIX sockets; the same binary runs on kernel TCP and under the shim):
#
#   idle  N idle connections between a client process and a forked server
#         process: heap, RSS and descriptors per connection in each process,
#         and the CPU both use while the connections sit idle;
#   rate  new connections per second (the server accepts and closes, the
#         client keeps CONNS_CONC connects in flight), and the CPU time each
#         connection costs, in all and in the server's loop thread.
#
# It builds its own release tree first (build-bench, as scripts/bench.sh
# does), interleaves the runs of the two columns, and prints Markdown table
# rows of medians in bench.sh's format.  About 45 s.
#
#   scripts/bench-conns.sh
#
# CONNS_N      idle connections (default 10000, lowered to what RLIMIT_NOFILE
#              allows rudp: 4 descriptors per connecting socket, 3 per
#              accepted one, when the limit cannot be raised)
# CONNS_IDLE   idle seconds measured (default 2)
# CONNS_SECS   rate: measured seconds per run (default 2, after 0.5 s warm-up)
# CONNS_CONC   rate: connects in flight (default 16)
# CONNS_REPS   runs per cell (default 3)
# CONNS_TSV    a file: write the rows there, tab-separated, and the notes to
#              CONNS_TSV.notes, instead of printing (scripts/bench.sh does)
# BENCH_PORT   first port to try (default: 30000 plus a per-process offset)
# BUILD_DIR    build directory (default build-bench, a release build)
#
# Progress goes to stderr; stdout is the table and its notes.  Exit status 1
# when a run failed (the table is printed anyway).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$RUDP_ROOT"

build_dir=${BUILD_DIR:-build-bench}
n=${CONNS_N:-10000}
idle_secs=${CONNS_IDLE:-2}
secs=${CONNS_SECS:-2}
conc=${CONNS_CONC:-16}
reps=${CONNS_REPS:-3}
port=${BENCH_PORT:-$((30000 + ($$ % 40) * 250))}
for v in n idle_secs secs conc reps port; do
	case ${!v} in '' | *[!0-9]*) die "$v must be a whole number, not '${!v}'" ;; esac
done
[ "$reps" -ge 1 ] && [ "$n" -ge 1 ] || die "CONNS_REPS and CONNS_N must be at least 1"

say "configuring and building $build_dir (release)"
ensure_configured "$build_dir" -Dbuildtype=release -Db_ndebug=true >&2
ninja -C "$build_dir" shim/librudp_shim.so bench/conns >&2 || die "the build failed"
conns=$RUDP_ROOT/$build_dir/bench/conns
shim=$RUDP_ROOT/$build_dir/shim/librudp_shim.so

# conns raises RLIMIT_NOFILE itself; here we only find out how far it can
# go (raising the hard limit needs CAP_SYS_RESOURCE) and fit N to it.
need=$((n * 4 + 1024))
n_note=""
if ! (ulimit -n "$need") 2>/dev/null; then
	limit=$(ulimit -Hn)
	fit=$(((limit - 1024) / 4 / 500 * 500))
	[ "$fit" -ge 500 ] || die "RLIMIT_NOFILE ($limit) is too low for the idle test"
	if [ "$fit" -lt "$n" ]; then
		n_note="$n idle connections need about $need descriptors per process under rudp, but RLIMIT_NOFILE cannot be raised past $limit here (raising the hard limit needs CAP_SYS_RESOURCE), so the idle rows use $fit connections"
		say "note: $n_note"
		n=$fit
	fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=()

port_base=30000 # alloc_port (lib.sh) wraps to it

# run COL MODE ARGS...: runs conns; its name=value lines in $tmp/out.
run() {
	local col=$1 mode=$2 status=0
	shift 2
	alloc_port
	local cmd=("$conns" "$mode" -p "$port_out" "$@")
	[ "$col" = rudp ] && cmd=(env LD_PRELOAD="$shim" RUDP_PORTS="$port_out" "${cmd[@]}")
	timeout -k 5 60 "${cmd[@]}" >"$tmp/out" 2>"$tmp/err" || status=$?
	if [ "$status" -ne 0 ] || ! grep -q = "$tmp/out"; then
		say "FAILED: $mode $col (exit status $status)"
		tail -n 5 "$tmp/err" | sed 's/^/    /' >&2
		failures+=("$mode $col: exit status $status")
		return 1
	fi
	grep -v WARNING "$tmp/err" | sed "s/^/  $col: /" >&2 || true
}

# The metrics kept: name in conns' output -> table row.
ROWS=(idle_server_heap_per_conn_bytes idle_client_heap_per_conn_bytes
	idle_server_rss_per_conn_bytes idle_client_rss_per_conn_bytes
	idle_server_fds_per_conn idle_client_fds_per_conn
	idle_kernel_slab_per_conn_bytes idle_cpu_pct rate_conns_per_s rate_cpu_us_per_conn rate_server_loop_cpu_us_per_conn
	rate_client_loop_cpu_us_per_conn rate_server_loop_bound_conns_per_s
	rate_connect_p50_us)
declare -A TITLE=(
	[idle_server_heap_per_conn_bytes]="$n idle: heap/conn, accepting process"
	[idle_client_heap_per_conn_bytes]="$n idle: heap/conn, connecting process"
	[idle_server_rss_per_conn_bytes]="$n idle: RSS/conn, accepting process"
	[idle_client_rss_per_conn_bytes]="$n idle: RSS/conn, connecting process"
	[idle_server_fds_per_conn]="$n idle: descriptors/conn, accepting"
	[idle_client_fds_per_conn]="$n idle: descriptors/conn, connecting"
	[idle_kernel_slab_per_conn_bytes]="$n idle: kernel slab/conn, both ends"
	[idle_cpu_pct]="$n idle: CPU, both processes"
	[rate_conns_per_s]="new connections/s, $conc in flight"
	[rate_cpu_us_per_conn]="CPU per new connection, both ends"
	[rate_server_loop_cpu_us_per_conn]="  of which server loop thread"
	[rate_server_loop_bound_conns_per_s]="one server loop thread's capacity"
	[rate_client_loop_cpu_us_per_conn]="  of which client loop thread"
	[rate_connect_p50_us]="connect() p50, $conc in flight"
)
declare -A UNIT=(
	[idle_server_heap_per_conn_bytes]=bytes [idle_client_heap_per_conn_bytes]=bytes
	[idle_server_rss_per_conn_bytes]=bytes [idle_client_rss_per_conn_bytes]=bytes
	[idle_server_fds_per_conn]=fds [idle_client_fds_per_conn]=fds
	[idle_kernel_slab_per_conn_bytes]=bytes
	[idle_cpu_pct]="% of a core" [rate_conns_per_s]=conn/s
	[rate_cpu_us_per_conn]=µs [rate_server_loop_cpu_us_per_conn]=µs
	[rate_client_loop_cpu_us_per_conn]=µs [rate_connect_p50_us]=µs
	[rate_server_loop_bound_conns_per_s]=conn/s
)
declare -A vals=()

collect() {
	local col=$1 k v
	while IFS='=' read -r k v; do
		[ -n "${TITLE[$k]+set}" ] && vals[$k:$col]+="$v "
	done <"$tmp/out"
	return 0
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$SECONDS
for ((rep = 1; rep <= reps; rep++)); do
	for col in rudp tcp; do
		say "idle, $col, run $rep/$reps: $n connections, ${idle_secs} s idle"
		run "$col" idle -n "$n" -s "$idle_secs" && collect "$col"
		say "rate, $col, run $rep/$reps: ${secs} s, $conc in flight"
		run "$col" rate -t "$secs" -c "$conc" && collect "$col"
	done
done
elapsed=$((SECONDS - started))

rows=()
row_of() { local IFS=$'\t'; rows+=("$*"); }
row_of scenario unit rudp "kernel TCP" rudp/TCP
for k in "${ROWS[@]}"; do
	cells=("${TITLE[$k]}" "${UNIT[$k]}")
	declare -A med=()
	for col in rudp tcp; do
		med[$col]=""
		if [ -z "${vals[$k:$col]:-}" ]; then
			cells+=("FAILED")
		else
			med[$col]=$(tr ' ' '\n' <<<"${vals[$k:$col]}" | grep . | median)
			cells+=("$(fmt "${med[$col]}")")
		fi
	done
	# Loop threads exist only under rudp; kernel TCP keeps its state in
	# the kernel, so a ratio of user-space memory would mean nothing.
	case $k in
	*loop*) cells[3]="n/a" med[tcp]="" ;;
	*heap* | *rss*) med[tcp]="" ;;
	esac
	ratio=""
	if [ -n "${med[rudp]}" ] && [ -n "${med[tcp]}" ] &&
		awk -v b="${med[tcp]}" 'BEGIN { exit !(b > 0) }'; then
		ratio=$(fmt "$(awk -v a="${med[rudp]}" -v b="${med[tcp]}" 'BEGIN { print a / b }')")
	fi
	cells+=("$ratio")
	unset med
	row_of "${cells[@]}"
done

# For scripts/bench.sh: the rows (no header) as tab-separated lines in the
# file CONNS_TSV, the notes in CONNS_TSV.notes, and no table here.
if [ -n "${CONNS_TSV:-}" ]; then
	printf '%s\n' "${rows[@]:1}" >"$CONNS_TSV"
	exec >"$CONNS_TSV.notes"
fi
echo "- load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg);" \
	"$reps run(s) per cell, interleaved; medians; measuring took ${elapsed} s"
echo
[ -n "${CONNS_TSV:-}" ] || printf '%s\n' "${rows[@]}" | md_table
echo
echo "Notes (bench/conns.c; both ends on 127.0.0.1, the server a forked process):"
echo "- idle: per connection, in each process, after one warm-up connection;"
echo "  heap is mallinfo2() in use (every arena, so the shim's allocations too),"
echo "  RSS is VmRSS; CPU is getrusage of both processes over ${idle_secs} s idle."
echo "  Heap counts what malloc handed out, touched or not (RSS: touched)."
echo "  Kernel slab is /proc/meminfo Slab, system-wide: both ends' sockets,"
echo "  plus whatever else the machine did meanwhile."
echo "- rate: the server accepts and closes, the client reads end of file and"
echo "  closes (TIME_WAIT on the server, as for an HTTP/1.0 server); CPU per"
echo "  connection is both processes' getrusage over the measured interval;"
echo "  loop thread is the library's event-loop thread alone (schedstat);"
echo "  its capacity is 1e6 / its µs per connection: the new connections/s"
echo "  one loop thread could carry with a core to itself (the issue's"
echo "  target), where end to end the four threads share two cores."
echo "  connections/s depends on what else the machine runs; CPU per"
echo "  connection much less."
[ -z "$n_note" ] || echo "- $n_note."
if [ "${#failures[@]}" -gt 0 ]; then
	echo "- failed runs (${#failures[@]}), left out of the medians:"
	for f in "${failures[@]}"; do echo "  - $f"; done
	exit 1
fi
exit 0
