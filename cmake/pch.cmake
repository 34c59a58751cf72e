# Precompiled headers for the daemon's code (fieldlink_core, the CLI): the library headers nearly
# every translation unit parses (the standard library, fmt, spdlog, nlohmann/json, yaml-cpp) are
# parsed once per target, not once per file. Parsing them is a fifth of a -O2 compile
# (daemon/north/session.cpp: 3.5 of 16.7 s); fieldlink_core compiled in 507 s of CPU instead of
# 686. Not for the unit tests: compiled at -O0, most of their files are small, and loading the
# precompiled header cost more than it saved (185 s of CPU against 161). The test command builds
# the core seven times (native, ASan, TSan, libFuzzer, armhf, arm64, the container image).
# FIELDLINK_PCH=OFF for tools that read compile_commands.json and cannot load GCC's precompiled
# headers (clang-tidy: scripts/lint.sh configures its own tree).
option(FIELDLINK_PCH "Precompile the common library headers" ON)
set(FIELDLINK_PCH_HEADERS
  <algorithm> <array> <atomic> <chrono> <cstdint> <cstring> <deque> <functional> <map> <memory>
  <mutex> <optional> <string> <string_view> <unordered_map> <utility> <variant> <vector>
  <fmt/format.h> <spdlog/spdlog.h> <nlohmann/json.hpp> <yaml-cpp/yaml.h>)
function(fieldlink_pch target)
  if(FIELDLINK_PCH)
    target_precompile_headers(${target} PRIVATE ${FIELDLINK_PCH_HEADERS} ${ARGN})
  endif()
endfunction()
