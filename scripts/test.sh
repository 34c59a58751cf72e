#!/usr/bin/env bash
# The test command: installs what is needed, then builds and runs everything, each stage timed:
#   build (-Werror) | unit + integration tests, and the Debian package built, installed, run,
#   removed and purged (root), with lint (clang-format, clang-tidy) and the container image
#   (built with podman on a debootstrap base and run, root) behind them | armhf and arm64 cross
#   builds, armhf's unit tests and both end to end under qemu-user | AddressSanitizer + UBSan
#   build and tests, the ThreadSanitizer build behind them | ThreadSanitizer tests, the libFuzzer
#   build behind them | libFuzzer targets (clang), each printing its executions and the project
#   code it reached.
# Servers the tests need (mosquitto, the Modbus simulator, socat ptys, a DNS server) are started by
# the tests themselves on free loopback ports. Ends with the time each stage took.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)
TIMES=()
T0=$(date +%s)
stage() {  # stage NAME COMMAND...: runs and times one stage
    local name=$1 start=$(date +%s)
    shift
    echo
    echo "== $name"
    "$@"
    TIMES+=("$(printf '%-40s %4ds' "$name" $(($(date +%s) - start)))")
}
# The trees built here are unity builds (8 sources per compiler run: json, fmt, spdlog and
# yaml-cpp templates instantiated once per batch, not once per file): in a fresh-clone run on 2
# cores the native build went from 494 to 294 s, the ASan build from 565 to 371 s. Each file
# still compiles on its own (includes, names): the libFuzzer tree (clang) compiles every source
# separately and clang-tidy reads each one.
build_tree() {  # build_tree DIR [CMAKE ARGS...]: configures and builds one tree, warnings as errors
    local dir=$1
    shift
    cmake -S . -B "$dir" -G Ninja -DFIELDLINK_WERROR=ON -DCMAKE_UNITY_BUILD=ON "$@" >/dev/null
    cmake --build "$dir" -j "$JOBS"
}
run_tests() {  # run_tests DIR [CTEST ARGS...]: every test, with ctest's summary
    local dir=$1
    shift
    ctest --test-dir "$dir" --output-on-failure -j "$JOBS" "$@"
}
# The integration tests spend most of their time waiting on timers, so the next CPU-bound stage
# runs behind them at the lowest priority (nice 19: a CFS weight of 15 against the tests' 1024,
# so the tests keep the CPU whenever they want it), its output kept and shown when it is joined.
BEHIND_PID='' BEHIND_NAME='' BEHIND_LOG='' BEHIND_START=0
trap '[ -z "$BEHIND_PID" ] || kill -- "-$BEHIND_PID" 2>/dev/null || true' EXIT
export -f build_tree
behind() {  # behind NAME COMMAND...: starts a stage in the background (its own process group)
    BEHIND_NAME=$1
    shift
    BEHIND_LOG=$(mktemp)
    BEHIND_START=$(date +%s)
    JOBS=$JOBS setsid nice -n 19 bash -c 'set -euo pipefail; "$@"' _ "$@" > "$BEHIND_LOG" 2>&1 &
    BEHIND_PID=$!
    echo "($BEHIND_NAME: started behind the next stage at low priority)"
}
join_behind() {  # waits for the stage started by behind, shows its output, fails as it failed
    local rc=0
    wait "$BEHIND_PID" || rc=$?
    BEHIND_PID=''
    echo
    echo "== $BEHIND_NAME (ran behind the stage above)"
    cat "$BEHIND_LOG"
    rm -f "$BEHIND_LOG"
    TIMES+=("$(printf '%-40s %4ds (behind)' "$BEHIND_NAME" $(($(date +%s) - BEHIND_START)))")
    [ "$rc" -eq 0 ] || { echo "== $BEHIND_NAME failed ($rc)"; exit "$rc"; }
}

stage "dependencies (apt)" bash scripts/deps.sh --test

stage "build (RelWithDebInfo, -Werror)" build_tree build -DCMAKE_BUILD_TYPE=RelWithDebInfo
# clang-tidy, then the container image (mostly downloads and a build in the image) behind the tests.
lint_and_image() {
    bash scripts/lint.sh
    echo
    echo "== container image (podman, runc)"
    run_tests build -L container
}
export -f run_tests lint_and_image
behind "lint; container image (podman, runc)" lint_and_image
stage "tests: unit, integration" run_tests build -LE container
join_behind
stage "cross builds: armhf, arm64 (qemu-user)" bash scripts/cross.sh armhf arm64:e2e

# The sanitizer trees carry line tables only (-g1): their reports still name function, file and
# line; full debug information (variables, types) made an ASan compile 14% longer
# (daemon/north/session.cpp: 24.4 s against 21.3 s).
stage "build (ASan + UBSan)" build_tree build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
    -DFIELDLINK_SANITIZE=ON -DFIELDLINK_BENCH=OFF
behind "build (ThreadSanitizer)" build_tree build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" -DFIELDLINK_TSAN=ON -DFIELDLINK_BENCH=OFF
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
stage "tests under ASan + UBSan" run_tests build-asan -LE "package|container"  # both are built from build/
unset ASAN_OPTIONS UBSAN_OPTIONS
join_behind

fuzz_build() {
    CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFIELDLINK_FUZZ=ON -DFIELDLINK_BENCH=OFF >/dev/null
    cmake --build build-fuzz -j "$JOBS" --target fuzz_all
}
export -f fuzz_build
behind "build (libFuzzer targets, clang)" fuzz_build
export TSAN_OPTIONS=halt_on_error=1:exitcode=66:second_deadlock_stack=1
# Under TSan: the unit tests and the integration tests where threads meet (bus workers and the
# north loop, writes and replies, reloads, the HTTP server, the resolver, the watchdog). The
# long single-threaded north-side scenarios (store crash cycles, gateway topology, outage and
# backlog replays, platform shapes, answers) run natively and under ASan; they are left out here
# to keep the command within its time limit. The clock test preloads libfaketime, which TSan's own
# interception of the clock functions does not expect: it runs natively and under ASan.
stage "tests under ThreadSanitizer" run_tests build-tsan -LE "package|container" \
    -E "integration_(store|gateway_topology|gateway_outage|backlog|platforms|answers|clock)$"
unset TSAN_OPTIONS
join_behind
# One fuzzer per core: each is single-threaded.
stage "fuzz targets (20 s each)" ctest --test-dir build-fuzz -L fuzz --output-on-failure -V -j "$JOBS"

echo
echo "== time per stage"
printf '%s\n' "${TIMES[@]}"
printf '%-40s %4ds\n' "total" $(($(date +%s) - T0))
