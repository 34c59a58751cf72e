// One spdlog logger per component ("core", "north", "bus:line1", ...), all sharing one sink:
// stderr, or journald when started by systemd (JOURNAL_STREAM set).
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace fieldlink::core {

void init_logging(const std::string& level);
std::shared_ptr<spdlog::logger> logger(const std::string& component);

}  // namespace fieldlink::core
