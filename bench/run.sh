#!/usr/bin/env bash
# Runs every benchmark and prints one summary line per figure (ratios against baselines measured
# in the same run). Usage: bench/run.sh [SECONDS] [SESSIONS] [SESSION_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DFIELDLINK_TESTS=OFF >/dev/null
cmake --build build-bench -j "$(nproc)" >/dev/null
./build-bench/bench/plan_bench
python3 bench/throughput.py build-bench "${1:-10}"
./build-bench/bench/store_bench
python3 bench/replay.py build-bench 1000000
python3 bench/sessions.py build-bench "${2:-1000}" "${3:-15}"
