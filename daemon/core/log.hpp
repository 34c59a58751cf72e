// One spdlog logger per component ("core", "north", "bus:line1", ...), all sharing one sink:
// stderr, or journald when started by systemd (JOURNAL_STREAM set).
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <vector>

namespace fieldlink::core {

void init_logging(const std::string& level);
std::shared_ptr<spdlog::logger> logger(const std::string& component);
// The last warnings and errors (at most 50, oldest first), for the status page. Log lines never
// carry secrets (keys, tokens and passwords are never logged).
std::vector<std::string> recent_problems();

}  // namespace fieldlink::core
