#!/usr/bin/env bash
# The test command: installs what is needed, then builds and runs everything, each stage timed:
#   build (-Werror) | lint: clang-format and clang-tidy | unit + integration tests, and the Debian
#   package built, installed, run, removed and purged (root) | the container image built with
#   podman on a debootstrap base and run (root) | arm64 and armhf cross builds, their unit tests
#   and an end-to-end run under qemu-user |
#   AddressSanitizer + UBSan build and tests | ThreadSanitizer build and tests |
#   libFuzzer targets (clang), each printing its executions and the project code it reached.
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
build_tree() {  # build_tree DIR [CMAKE ARGS...]: configures and builds one tree, warnings as errors
    local dir=$1
    shift
    cmake -S . -B "$dir" -G Ninja -DFIELDLINK_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j "$JOBS"
}
run_tests() {  # run_tests DIR [CTEST ARGS...]: every test, with ctest's summary
    local dir=$1
    shift
    ctest --test-dir "$dir" --output-on-failure -j "$JOBS" "$@"
}

stage "dependencies (apt)" bash scripts/deps.sh --test

stage "build (RelWithDebInfo, -Werror)" build_tree build -DCMAKE_BUILD_TYPE=RelWithDebInfo
stage "lint: clang-format, clang-tidy" bash scripts/lint.sh build
stage "tests: unit, integration" run_tests build -LE container
stage "container image (podman, runc)" run_tests build -L container
stage "cross builds: arm64, armhf (qemu-user)" bash scripts/cross.sh arm64 armhf

stage "build (ASan + UBSan)" build_tree build-asan -DCMAKE_BUILD_TYPE=Debug -DFIELDLINK_SANITIZE=ON -DFIELDLINK_BENCH=OFF
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
stage "tests under ASan + UBSan" run_tests build-asan -LE "package|container"  # both are built from build/
unset ASAN_OPTIONS UBSAN_OPTIONS

stage "build (ThreadSanitizer)" build_tree build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFIELDLINK_TSAN=ON -DFIELDLINK_BENCH=OFF
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

fuzz_build() {
    CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFIELDLINK_FUZZ=ON -DFIELDLINK_BENCH=OFF >/dev/null
    cmake --build build-fuzz -j "$JOBS" --target fuzz_all
}
stage "build (libFuzzer targets, clang)" fuzz_build
stage "fuzz targets (20 s each)" ctest --test-dir build-fuzz -L fuzz --output-on-failure -V

echo
echo "== time per stage"
printf '%s\n' "${TIMES[@]}"
printf '%-40s %4ds\n' "total" $(($(date +%s) - T0))
