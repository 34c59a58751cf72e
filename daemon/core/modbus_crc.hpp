// The Modbus RTU CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF), for code that frames RTU
// itself: the simulator's RTU server and the fuzz target's loopback server (libmodbus keeps its
// own private).
#pragma once

#include <cstddef>
#include <cstdint>

namespace fieldlink::core {

inline std::uint16_t modbus_crc16(const std::uint8_t* p, std::size_t n) {
    std::uint16_t crc = 0xFFFF;
    for (std::size_t i = 0; i < n; ++i) {
        crc ^= p[i];
        for (int b = 0; b < 8; ++b)
            crc = (crc & 1) ? static_cast<std::uint16_t>((crc >> 1) ^ 0xA001) : static_cast<std::uint16_t>(crc >> 1);
    }
    return crc;
}

}  // namespace fieldlink::core
