// Sparkplug B payloads (specification 3.0, chapter 6) to and from bytes, with Debian's
// protobuf-c (the schema: sparkplug_b.proto). Only what the gateway writes and reads: metrics
// with scalar values. Encoding follows the specification's datatype table (Int8..UInt32 in
// int_value, signed ones as 32-bit two's complement; Int64, UInt64 and DateTime in long_value);
// decoding (commands from a host) also takes an integer from either field, as hosts differ.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/value.hpp"

namespace fieldlink::platforms::sparkplug {

// The specification's DataType numbers (basic types).
enum class DataType : std::uint32_t {
    unknown = 0,
    int8 = 1,
    int16 = 2,
    int32 = 3,
    int64 = 4,
    uint8 = 5,
    uint16 = 6,
    uint32 = 7,
    uint64 = 8,
    float32 = 9,
    float64 = 10,
    boolean = 11,
    string = 12,
    datetime = 13,
    text = 14,
};
const char* datatype_name(DataType t);

struct Metric {
    std::string name;  // empty: not sent (data and commands go by alias)
    std::optional<std::uint64_t> alias;
    std::optional<std::uint64_t> timestamp;  // acquisition time, Unix ms
    DataType datatype = DataType::unknown;   // unknown: not sent (allowed after the birth)
    bool historical = false;
    bool is_null = false;  // no value: the metric's value is not known now
    // The value as written (encode: converted to the datatype's field) or as read (decode: the
    // field's own type: uint64 for int_value and long_value, double for float_value too).
    std::optional<core::Value> value;
};

struct Payload {
    std::optional<std::uint64_t> timestamp;  // when sent, Unix ms
    std::optional<std::uint64_t> seq;        // none in NDEATH
    std::vector<Metric> metrics;
};

// The bytes of `p`. A value that does not fit its datatype (a negative UInt16, text for an
// Int32) is refused with why (the caller's metric name is named).
std::optional<std::string> encode(const Payload& p, std::string* error);
// A payload from the wire (commands, births read back in tests). Bytes that are not a Sparkplug
// B payload are refused with why; unknown fields are skipped.
std::optional<Payload> decode(const std::string& bytes, std::string* error);

// A decoded integer as the datatype means it (int_value of a signed type is two's complement).
std::optional<core::Value> typed_value(const Metric& m, DataType type);

}  // namespace fieldlink::platforms::sparkplug
