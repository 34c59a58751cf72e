#!/usr/bin/env bash
# Runs every benchmark and prints one summary line per figure (ratios against baselines measured
# in the same run). Usage: bench/run.sh [SECONDS] [SESSION_SECONDS] [SESSIONS ...]
#   SECONDS          load time of the throughput benchmark (default 10)
#   SESSION_SECONDS  measuring window of each session count (default 15)
#   SESSIONS         session counts (default 300 1000 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# Tests on: the sessions benchmark needs the OneNET emulator (a broker that answers data).
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DFIELDLINK_TESTS=ON >/dev/null
cmake --build build-bench -j "$(nproc)" >/dev/null
PY=/usr/bin/python3  # Debian's, with the packages deps.sh installed
[ -x "$PY" ] || PY=python3
secs="${1:-10}"
session_secs="${2:-15}"
shift $(($# < 2 ? $# : 2))
./build-bench/bench/plan_bench
"$PY" bench/throughput.py build-bench "$secs"
"$PY" bench/sparkplug.py build-bench "$secs"
"$PY" bench/modbus_server.py build-bench "$secs"
./build-bench/bench/store_bench
"$PY" bench/replay.py build-bench 1000000
"$PY" bench/wear.py build-bench 60
"$PY" bench/footprint.py build-bench 5
"$PY" bench/control.py build-bench 500
"$PY" bench/command_load.py build-bench 2000
"$PY" bench/deadband.py build-bench 30
"$PY" bench/reload.py build-bench 200
"$PY" bench/remote_config.py build-bench 100 10
"$PY" bench/scan.py build-bench 100
"$PY" bench/publish_window.py build-bench 20
"$PY" bench/sessions.py build-bench "$session_secs" "$@"
# Raspberry Pi-class footprint and shipped sizes: the demo natively and under qemu-user (the
# arm64/armhf trees of scripts/cross.sh), the package (cpack) and the image (scripts/container.sh).
(cd build-bench && cpack -G DEB >/dev/null)
[ -d build-arm64 ] && [ -d build-armhf ] || bash scripts/cross.sh arm64 armhf >/dev/null
if [ "$(id -u)" -eq 0 ] && command -v podman >/dev/null; then bash scripts/container.sh >/dev/null; fi
"$PY" bench/pi.py build-bench build-arm64 build-armhf 30
