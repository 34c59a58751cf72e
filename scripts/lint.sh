#!/usr/bin/env bash
# Formatting and static analysis over the sources: clang-format (every C/C++ file, no change
# allowed) and clang-tidy (daemon/ and plugins/, with the project's .clang-tidy: any warning
# fails). clang-tidy reads the compile commands of a tree of its own (build-lint: configured, its
# only build step the generated Sparkplug header), so it can run while build/ is being tested.
#   bash scripts/lint.sh [--deep]
# The test command leaves out clang-tidy's path-sensitive static analyzer (clang-analyzer-*): it
# costs three quarters of clang-tidy's time (daemon/north/session.cpp: 94 s with it, 24 s without),
# and the bugs it looks for (null dereferences, use after free, leaks, uninitialised reads) are
# what the AddressSanitizer, UBSan and ThreadSanitizer runs and the fuzzers catch where they
# happen. --deep runs it too (every check of .clang-tidy), before a release or on a change to
# memory handling.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build-lint
CHECKS=-clang-analyzer-*
for arg in "$@"; do
    case $arg in
        --deep) CHECKS='' ;;
        *) echo "lint.sh: unknown argument '$arg' (--deep)" >&2; exit 2 ;;
    esac
done
echo "== clang-format --dry-run -Werror"
git ls-files '*.c' '*.h' '*.cpp' '*.hpp' | xargs clang-format --dry-run -Werror
echo "clang-format: $(git ls-files '*.c' '*.h' '*.cpp' '*.hpp' | wc -l) files formatted as .clang-format says"
cmake -S . -B "$BUILD" -G Ninja -DFIELDLINK_BENCH=OFF >/dev/null
cmake --build "$BUILD" --target fieldlink_sparkplug_pb >/dev/null
echo "== clang-tidy (daemon/, plugins/)${CHECKS:+, without the static analyzer (--deep runs it)}"
run-clang-tidy -p "$BUILD" -j "$(nproc)" -quiet ${CHECKS:+"-checks=$CHECKS"} 'daemon/.*\.cpp$' 'plugins/.*\.cpp$' > "$BUILD/clang-tidy.log" 2>&1 || {
    sed 's/\x1b\[[0-9;]*m//g' "$BUILD/clang-tidy.log" | grep -E "warning:|error:" | sort -u
    echo "clang-tidy: findings above (full log: $BUILD/clang-tidy.log)"
    exit 1
}
echo "clang-tidy: $(git ls-files 'daemon/*.cpp' 'plugins/*.cpp' | wc -l) files, no findings"
