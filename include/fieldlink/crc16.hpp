// The Modbus RTU CRC-16 (CRC-16/MODBUS: polynomial 0xA001 reflected, initial 0xFFFF), for code
// that frames itself: the simulator's RTU server, the fuzz target's loopback server and the
// serial-line driver's CRC-16 checksums (libmodbus keeps its own private). Header-only.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fieldlink {

inline std::uint16_t modbus_crc16(const std::uint8_t* p, std::size_t n) {
    std::uint16_t crc = 0xFFFF;
    for (std::size_t i = 0; i < n; ++i) {
        crc ^= p[i];
        for (int b = 0; b < 8; ++b)
            crc = (crc & 1) ? static_cast<std::uint16_t>((crc >> 1) ^ 0xA001) : static_cast<std::uint16_t>(crc >> 1);
    }
    return crc;
}

}  // namespace fieldlink
