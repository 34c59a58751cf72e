#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace fieldlink::core {

using Duration = std::chrono::milliseconds;

// Parses "300ms", "5s", "1m", "2h" (a non-negative integer and a unit). Returns nullopt otherwise.
std::optional<Duration> parse_duration(std::string_view text);
// The largest whole unit: 86400000ms -> "24h", 1500ms -> "1500ms".
std::string format_duration(Duration d);

}  // namespace fieldlink::core
