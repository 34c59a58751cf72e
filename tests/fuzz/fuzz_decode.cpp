// Any register image under any codec: a value or an error, never a read out of bounds.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "mapping/decode.hpp"
#include "platforms/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace fieldlink::mapping;
    if (size < 4) return 0;
    PointCodec c;
    c.type = static_cast<DataType>(data[0] % 11);
    c.order = static_cast<WordOrder>(data[1] % 4);
    c.bit = data[2] % 17 == 16 ? -1 : data[2] % 16;
    c.string_length = data[3] % 126;
    c.scale = (data[3] & 1) ? 0.1 : 1.0;
    std::vector<std::uint16_t> regs((size - 4) / 2);
    if (!regs.empty()) std::memcpy(regs.data(), data + 4, regs.size() * 2);
    std::string err;
    auto v = decode_registers(c, regs.data(), regs.size(), &err);
    if (v) {
        std::string out;
        fieldlink::platforms::append_json_value(out, *v);
    }
    return 0;
}
