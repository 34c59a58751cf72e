#!/usr/bin/env bash
# The test command: installs what is needed, builds (normal build with warnings as errors, then an
# AddressSanitizer + UndefinedBehaviorSanitizer build, then the libFuzzer targets with clang) and
# runs every test through ctest. Servers the tests need (mosquitto, the Modbus simulator, socat)
# are started by the tests themselves on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)

bash scripts/deps.sh

echo "== build (RelWithDebInfo, -Werror)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFIELDLINK_WERROR=ON >/dev/null
cmake --build build -j "$JOBS"
echo "== tests"
ctest --test-dir build --output-on-failure -j "$JOBS"

echo "== build (ASan + UBSan)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFIELDLINK_SANITIZE=ON -DFIELDLINK_WERROR=ON >/dev/null
cmake --build build-asan -j "$JOBS"
echo "== tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$JOBS"

echo "== fuzz targets (clang, libFuzzer + ASan, short runs)"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFIELDLINK_FUZZ=ON \
  -DFIELDLINK_TESTS=ON >/dev/null
cmake --build build-fuzz -j "$JOBS" --target fuzz_all
ctest --test-dir build-fuzz --output-on-failure -L fuzz
