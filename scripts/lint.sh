#!/usr/bin/env bash
# Formatting and static analysis over the sources: clang-format (every C/C++ file, no change
# allowed) and clang-tidy (daemon/ and plugins/, with the project's .clang-tidy: any warning
# fails). Needs a configured build directory for compile_commands.json (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
echo "== clang-format --dry-run -Werror"
git ls-files '*.c' '*.h' '*.cpp' '*.hpp' | xargs clang-format --dry-run -Werror
echo "clang-format: $(git ls-files '*.c' '*.h' '*.cpp' '*.hpp' | wc -l) files formatted as .clang-format says"
echo "== clang-tidy (daemon/, plugins/)"
run-clang-tidy -p "$BUILD" -j "$(nproc)" -quiet 'daemon/.*\.cpp$' 'plugins/.*\.cpp$' > "$BUILD/clang-tidy.log" 2>&1 || {
    sed 's/\x1b\[[0-9;]*m//g' "$BUILD/clang-tidy.log" | grep -E "warning:|error:" | sort -u
    echo "clang-tidy: findings above (full log: $BUILD/clang-tidy.log)"
    exit 1
}
echo "clang-tidy: $(git ls-files 'daemon/*.cpp' 'plugins/*.cpp' | wc -l) files, no findings"
