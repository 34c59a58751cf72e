// A hostile Modbus device: arbitrary bytes as the response to a read, over TCP (MBAP) and RTU
// framing, through libmodbus configured as the modbus plugin configures it, then decoded.
#include <modbus/modbus.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "mapping/decode.hpp"

namespace {

void one(modbus_t* ctx, const std::uint8_t* data, std::size_t size, bool bits) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return;
    modbus_set_socket(ctx, sv[0]);
    modbus_set_response_timeout(ctx, 0, 2000);
    modbus_set_byte_timeout(ctx, 0, 1000);
    modbus_set_error_recovery(ctx, MODBUS_ERROR_RECOVERY_NONE);
    modbus_set_slave(ctx, 1);
    if (size > 0) (void)!write(sv[1], data, size);
    shutdown(sv[1], SHUT_WR);
    std::uint16_t regs[125] = {};
    std::uint8_t coils[256] = {};
    const int n = bits ? modbus_read_bits(ctx, 0, 200, coils) : modbus_read_registers(ctx, 0, 10, regs);
    if (n > 0 && !bits) {
        fieldlink::mapping::PointCodec c;
        c.type = fieldlink::config::DataType::float64;
        std::string err;
        (void)fieldlink::mapping::decode_registers(c, regs, static_cast<std::size_t>(n), &err);
    }
    close(sv[0]);
    close(sv[1]);
    modbus_set_socket(ctx, -1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static modbus_t* tcp = modbus_new_tcp("127.0.0.1", 502);
    static modbus_t* rtu = modbus_new_rtu("/dev/null", 9600, 'N', 8, 1);
    if (size == 0) return 0;
    const bool bits = data[0] & 1;
    one(tcp, data + 1, size - 1, bits);
    one(rtu, data + 1, size - 1, bits);
    return 0;
}
