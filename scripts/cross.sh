#!/usr/bin/env bash
# Cross builds for the Raspberry Pi (arm64: Pi 3/4/5 and Zero 2 W on a 64-bit OS; armhf: the
# 32-bit OS) with Debian's cross compilers (scripts/deps.sh --test) against a sysroot of Debian's
# release suite for that architecture (scripts/sysroot.sh: debootstrap --foreign, cached), then
# their tests under qemu-user: the unit tests, the fuzz corpora replayed, and one end-to-end run
# (tests/integration/test_cross.py: the foreign fieldlinkd polls the sim driver and the foreign
# Modbus simulator and publishes to this machine's mosquitto with the OneNET emulator of the
# native tree, which must be built first).
#   bash scripts/cross.sh armhf arm64:e2e
# ARCH:e2e builds only what the end-to-end run needs (the daemon, the CLI, the plugins) and runs
# only that: the test command gives the whole suite to armhf, the target that differs most from
# the build machine (32-bit, 32-bit time_t in bookworm, unsigned char), and the end-to-end run to
# arm64 (unsigned char too, else the build machine's LP64), which halves the stage.
# Cross trees are Release (-O2, no debug information): they are built to be run here, not shipped.
# Both are unity builds, as the test command's native trees (the arm64 daemon took 7 minutes one
# file at a time); every source is still compiled on its own by the libFuzzer tree (clang) and
# read on its own by clang-tidy.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/test-plugins/onenet_emulator.so ] || { echo "cross.sh: build the native tree (build/) first" >&2; exit 1; }
for arg in "$@"; do
    arch=${arg%%:*}
    scope=all
    [ "$arg" = "$arch" ] || scope=${arg#*:}
    [ "$scope" = all ] || [ "$scope" = e2e ] || { echo "cross.sh: unknown scope '$scope' in '$arg' (ARCH or ARCH:e2e)" >&2; exit 2; }
    case $arch in
        arm64) triplet=aarch64-linux-gnu ;;
        armhf) triplet=arm-linux-gnueabihf ;;
        *) echo "cross.sh: unknown architecture '$arch' (arm64, armhf)" >&2; exit 2 ;;
    esac
    echo "-- $arch ($triplet): $scope"
    sysroot=$(bash scripts/sysroot.sh "$arch" | tail -1)
    # A foreign binary started without qemu (binfmt_misc) finds its loader and libraries there too.
    export QEMU_LD_PREFIX=$sysroot
    # A tree configured against another sysroot (its package list changed) caches that one's paths.
    stale=$( (grep -o "fieldlink-sysroot/$arch-[^/;: ]*" "build-$arch/CMakeCache.txt" 2>/dev/null || true) |
        sort -u | grep -v "/$(basename "$sysroot")\$" || true)
    if [ -n "$stale" ]; then
        echo "cross.sh: build-$arch was configured for another sysroot; configuring it afresh"
        rm -rf "build-$arch"
    fi
    cmake -S . -B "build-$arch" -G Ninja -DCMAKE_TOOLCHAIN_FILE="cmake/toolchains/$triplet.cmake" \
        -DFIELDLINK_SYSROOT="$sysroot" -DCMAKE_UNITY_BUILD=ON \
        -DCMAKE_BUILD_TYPE=Release -DFIELDLINK_WERROR=ON -DFIELDLINK_BENCH=OFF \
        -DFIELDLINK_HOST_EMULATOR="$PWD/build/test-plugins/onenet_emulator.so" >/dev/null
    if [ "$scope" = e2e ]; then
        cmake --build "build-$arch" -j "$(nproc)" --target fieldlinkd fieldlink fl_sim fl_modbus fl_serial
        ctest --test-dir "build-$arch" --output-on-failure -R '^integration_cross$'
    else
        cmake --build "build-$arch" -j "$(nproc)"
        ctest --test-dir "build-$arch" --output-on-failure -j "$(nproc)"
    fi
done
