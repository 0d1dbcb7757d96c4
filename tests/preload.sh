# shellcheck shell=bash
# Sourced by the end-to-end scripts that run programs under the shim.
#
# shim_preload SHIM: sets PRELOAD to what LD_PRELOAD must hold for SHIM.
# When SHIM was built with AddressSanitizer, the ASan runtime comes first
# (it must), leak checking is turned off for the unmodified programs, and
# UBSan is made to stop at its first report, so undefined behaviour in the
# shim fails a test as a memory error does.  (ldd's output is read whole:
# with pipefail, `ldd | grep -q` fails whenever grep's early exit makes ldd
# die of SIGPIPE.)
# shellcheck disable=SC2034 # PRELOAD is the caller's
shim_preload() {
	local deps asan

	PRELOAD=$1
	deps=$(ldd "$1" 2>/dev/null || true)
	[[ $deps == *libasan* ]] || return 0
	asan=$(awk '/libasan/ { print $3 }' <<<"$deps")
	[ -r "$asan" ] || asan=$(gcc -print-file-name=libasan.so)
	PRELOAD="$asan:$1"
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
}
