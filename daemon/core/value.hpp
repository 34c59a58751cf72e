// A decoded sample value and the batch handed from a bus worker to the north side.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace fieldlink::core {

using Value = std::variant<bool, std::int64_t, std::uint64_t, double, std::string>;

struct PointValue {
    std::uint32_t point_index = 0;  // index into DeviceConfig::points
    Value value;
};

struct SampleBatch {
    // samples: values read; device_down / device_up: the unit stopped answering / answers again
    // (no values; never stored; the platform is told where it tracks device state).
    enum class Kind : std::uint8_t { samples, device_down, device_up };
    Kind kind = Kind::samples;
    std::uint32_t device_index = 0;  // index into Config::devices
    std::int64_t timestamp_ms = 0;   // acquisition time, Unix ms
    std::int64_t boot_ms = 0;        // acquisition time on the boot-time clock (0: unknown; core/clock.hpp)
    std::vector<PointValue> values;
    std::int64_t record_id = 0;  // outbox record (0: not stored)
    std::string reason;          // device_down: why (no response, link down, exception 11, ...)
};

// A value as a number, the one conversion used everywhere (deadbands, range checks, encoding):
// true 1 and false 0, integers and doubles as they are, text 0 (it is not a number).
inline double number_of(const Value& v) {
    if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
    if (const auto* u = std::get_if<std::uint64_t>(&v)) return static_cast<double>(*u);
    if (const auto* d = std::get_if<double>(&v)) return *d;
    if (const auto* b = std::get_if<bool>(&v)) return *b ? 1.0 : 0.0;
    return 0.0;
}

inline std::int64_t unix_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace fieldlink::core
