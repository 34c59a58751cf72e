// Decoding of Modbus register / bit images into typed values: one point (decode_registers,
// decode_bit) or every point a read response covers (decode_points).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/types.hpp"
#include "core/value.hpp"

namespace fieldlink::mapping {

using config::DataType;
using config::WordOrder;
using core::Value;

struct PointCodec {
    DataType type = DataType::uint16;
    WordOrder order = WordOrder::abcd;
    double scale = 1.0;
    double offset = 0.0;
    int bit = -1;           // bit field within a register (0..15), -1 = whole value
    int string_length = 0;  // registers, for DataType::string
};

// Decodes one value from `regs` (register areas; `count` words available) or from a single bit.
// Returns nullopt with `error` set when the image cannot be decoded (e.g. invalid BCD digit).
std::optional<Value> decode_registers(const PointCodec& codec, const std::uint16_t* regs, std::size_t count,
                                      std::string* error);
Value decode_bit(const PointCodec& codec, std::uint8_t bit);

// Reassembles `words` registers into the big-endian byte sequence "abcd..." the order names.
void registers_to_bytes(const std::uint16_t* regs, int words, WordOrder order, std::uint8_t* out);

PointCodec codec_of(const config::PointConfig& p);

// The inverse of decode_registers for writes: a value accepted by config::accept_write, with
// scale and offset reversed (rounded to the nearest raw step), laid out in the point's word and
// byte order into register_count(type) words at `regs`. False with `error` when the raw value
// does not fit its type.
bool encode_registers(const PointCodec& codec, const Value& v, std::uint16_t* regs, std::string* error);

// The inverse of registers_to_bytes.
void bytes_to_registers(const std::uint8_t* bytes, int words, WordOrder order, std::uint16_t* regs);

// One read response: `count` registers (or bits) of `area` starting at `address`.
struct Response {
    config::Area area = config::Area::holding;
    std::uint16_t address = 0;
    std::uint16_t count = 0;
    const std::uint16_t* registers = nullptr;
    const std::uint8_t* bits = nullptr;
};

// Decodes the points `which` (indices into `points`, each inside the response's range) and
// appends their values to `out`. Returns how many could not be decoded; the first reason goes
// to `first_error`.
std::size_t decode_points(const std::vector<config::PointConfig>& points, const std::vector<std::uint32_t>& which,
                          const Response& r, std::vector<core::PointValue>& out, std::string* first_error);

}  // namespace fieldlink::mapping
