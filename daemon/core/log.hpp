// One spdlog logger per component ("core", "north", "bus:line1", ...), all sharing one sink:
// stderr, or journald when started by systemd (JOURNAL_STREAM set).
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fieldlink::core {

void init_logging(const std::string& level);
std::shared_ptr<spdlog::logger> logger(const std::string& component);
// The last warnings and errors (at most 50, oldest first), for the status page. Log lines never
// carry secrets (keys, tokens and passwords are never logged).
std::vector<std::string> recent_problems();

// Outside text made safe for a log line: control characters as \n, \r, \t or \xNN, bytes that
// are not UTF-8 as \xNN, cut at about `cap` bytes (saying how many more there were). Every line
// passes through it (cut at kMaxLine); call it for a piece of outside text to cap it smaller.
constexpr std::size_t kMaxLine = 4096;
std::string printable(std::string_view in, std::size_t cap = 256);

}  // namespace fieldlink::core
