// Vocabulary shared by config, decoding and planning.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fieldlink::config {

enum class Area : std::uint8_t { coil = 0, discrete = 1, input = 2, holding = 3 };
enum class DataType : std::uint8_t {
    boolean,
    int16,
    uint16,
    int32,
    uint32,
    int64,
    uint64,
    float32,
    float64,
    string,
    bcd
};
enum class WordOrder : std::uint8_t { abcd, badc, cdab, dcba };
// How a point reaches the platform: a property (telemetry) every poll, or, when its trigger
// fires, an event (the platform's event, or telemetry where it has none) or a client attribute.
enum class Report : std::uint8_t { property, event, attribute };
// When an event or attribute point is reported: on every change (and its first reading), when it
// becomes true or non-zero, or never by itself (carried when another point of its event fires).
enum class Trigger : std::uint8_t { change, rising, none };
// When a point is read (`poll:`): with every poll of its device, on its own interval, once when
// its device first answers, or only at start and after a write to its device (on demand).
enum class PollClass : std::uint8_t { device, interval, once, on_write };
// What a device's publish window sends of a property polled several times in it.
enum class Aggregate : std::uint8_t { last, min, max, mean, count };

std::optional<Area> parse_area(std::string_view s);
std::optional<DataType> parse_type(std::string_view s);
std::optional<WordOrder> parse_order(std::string_view s);
std::optional<Report> parse_report(std::string_view s);
std::optional<Trigger> parse_trigger(std::string_view s);
std::optional<Aggregate> parse_aggregate(std::string_view s);
const char* to_string(Area a);
const char* to_string(DataType t);
const char* to_string(WordOrder o);
const char* to_string(Report r);
const char* to_string(Aggregate a);

inline bool is_bit_area(Area a) {
    return a == Area::coil || a == Area::discrete;
}

// Number of 16-bit registers a value of this type occupies (string: `length` registers).
int register_count(DataType t, int string_length);

}  // namespace fieldlink::config
