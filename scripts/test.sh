#!/usr/bin/env bash
# Builds rudp and runs its Meson test suites on Debian 12, installing any
# missing packages first when run as root.  The last line of output is
# always the summary "N passed, N failed" (with ", N skipped" appended when
# tests were skipped), and the exit status is non-zero on any failure.
#
#   scripts/test.sh
#   BUILD_DIR=build-asan MESON_OPTS="-Db_sanitize=address,undefined" \
#       SUITES=unit scripts/test.sh
#
# BUILD_DIR   build directory, relative to the repository root (default build)
# MESON_OPTS  options for meson setup/configure, split on whitespace
# SUITES      Meson test suites to run, separated by spaces or commas
#             (default: all of them)
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$RUDP_ROOT"

build_dir=${BUILD_DIR:-build}
read -ra meson_opts <<<"${MESON_OPTS:-}"
# Commas are accepted as well as spaces, because "unit,e2e" is how people
# tend to write a list in an environment variable.
suites=${SUITES:-}
read -ra suites <<<"${suites//,/ }"
suite_args=()
for s in "${suites[@]}"; do
	suite_args+=(--suite "$s")
done

ensure_packages

echo "=== configuring $build_dir${meson_opts[*]:+ ${meson_opts[*]}}"
ensure_configured "$build_dir" "${meson_opts[@]}"

echo "=== building $build_dir"
if ! ninja -C "$build_dir"; then
	# Meson refuses to run any test while one is unbuilt, so there are no
	# results to count; the broken build is reported as the one failure.
	say "the build failed, so no tests ran; counting the build as 1 failure"
	echo "0 passed, 1 failed"
	exit 1
fi

echo "=== testing $build_dir, suites: ${suites[*]:-all}"
# Remove the previous run's log so that a run which records nothing cannot
# be summarised from stale results.
log=$build_dir/meson-logs/testlog.json
rm -f "$log"
meson_status=0
meson test -C "$build_dir" --no-rebuild --print-errorlogs "${suite_args[@]}" ||
	meson_status=$?

# testlog.json holds one JSON object per test.  Results Meson did not have
# when this was written count as failures, so that nothing new passes
# silently.
counts=$(python3 - "$log" <<'PY'
import json, os, sys

passed = failed = skipped = 0
path = sys.argv[1]
if os.path.exists(path):
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            t = json.loads(line)
            r = t.get("result")
            if r in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif r == "SKIP":
                skipped += 1
            else:
                failed += 1
                print(f"test.sh: failed: {t.get('name')} ({r})", file=sys.stderr)
print(passed, failed, skipped)
PY
)
read -r passed failed skipped <<<"$counts"

if [ "$meson_status" -ne 0 ] && [ "$failed" -eq 0 ]; then
	# Meson failed without a failing test (it crashed, or a named suite
	# does not exist); that must not read as success.
	say "meson test exited with status $meson_status; counting it as 1 failure"
	failed=1
fi
if [ $((passed + failed + skipped)) -eq 0 ]; then
	say "warning: no tests ran (none defined for suites: ${suites[*]:-all})"
fi

summary="$passed passed, $failed failed"
[ "$skipped" -eq 0 ] || summary+=", $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]
