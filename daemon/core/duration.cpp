#include "duration.hpp"

#include <charconv>
#include <cstdint>

namespace fieldlink::core {

std::optional<Duration> parse_duration(std::string_view text) {
    std::int64_t n = 0;
    const char* first = text.data();
    const char* last = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(first, last, n);
    if (ec != std::errc{} || ptr == first || n < 0) return std::nullopt;
    std::string_view unit(ptr, static_cast<std::size_t>(last - ptr));
    std::int64_t factor = 0;
    if (unit == "ms")
        factor = 1;
    else if (unit == "s")
        factor = 1000;
    else if (unit == "m")
        factor = 60'000;
    else if (unit == "h")
        factor = 3'600'000;
    else if (unit == "d")
        factor = 86'400'000;
    else
        return std::nullopt;
    if (n > INT64_MAX / factor) return std::nullopt;
    return Duration{n * factor};
}

std::string format_duration(Duration d) {
    const std::int64_t ms = d.count();
    if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
    if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
    if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

}  // namespace fieldlink::core
