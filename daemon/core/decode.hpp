// Decoding of Modbus register / bit images into typed values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "types.hpp"
#include "value.hpp"

namespace fieldlink::core {

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
std::optional<Value> decode_registers(const PointCodec& codec, const std::uint16_t* regs,
                                      std::size_t count, std::string* error);
Value decode_bit(const PointCodec& codec, std::uint8_t bit);

// Reassembles `words` registers into the big-endian byte sequence "abcd..." the order names.
void registers_to_bytes(const std::uint16_t* regs, int words, WordOrder order,
                        std::uint8_t* out);

}  // namespace fieldlink::core
