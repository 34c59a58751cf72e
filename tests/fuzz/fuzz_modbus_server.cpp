// What a client of the local Modbus TCP server sends: a byte stream, framed into requests and
// answered from the register image, or taken as writes checked as a cloud's write is. The first
// byte sets the cache (values read or not, the unit down, the values stale); the rest is the
// stream. Every answer must be a known exception, or exactly the registers or bits asked for; a
// write accepted must hold only writable points of one device, each value encodable into its
// registers (the bus worker's write cannot fail on encoding).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "load.hpp"
#include "mapping/decode.hpp"
#include "serve/image.hpp"
#include "serve/request.hpp"

namespace cfgns = fieldlink::config;
namespace core = fieldlink::core;
namespace serve = fieldlink::serve;

namespace {

const char* kConfig = R"(
gateway:
  store: memory
  modbus_server:
    listen: 127.0.0.1:5020
    stale_after: 10s
    stale_exception: 4
    map:
      - { device: d1, point: a, area: holding, address: 0 }
      - { device: d1, point: f, area: holding, address: 1 }
      - { device: d1, point: u, area: holding, address: 3 }
      - { device: d1, point: i, area: holding, address: 4 }
      - { device: d1, point: u64, area: input, address: 0 }
      - { device: d1, point: s, area: holding, address: 10 }
      - { device: d1, point: b, area: holding, address: 13 }
      - { device: d1, point: d, area: holding, address: 14 }
      - { device: d1, point: i16, area: holding, address: 18 }
      - { device: d1, point: u32, area: holding, address: 19 }
      - { device: d1, point: on, area: coil, address: 0 }
      - { device: d1, point: on, area: discrete, address: 3 }
      - { device: d2, point: a, area: holding, address: 21 }
      - { device: d2, point: i16, area: holding, address: 22 }
      - { device: d2, point: on, unit: 2, area: coil, address: 1 }
clouds:
  c: { platform: mqtt, host: 127.0.0.1 }
buses:
  s: { driver: sim }
devices:
  - { name: d1, cloud: c, bus: s, points: &w [ { name: a, area: holding, address: 0 }, { name: on, area: coil, address: 1, writable: true }, { name: f, area: holding, address: 2, type: float32, order: cdab, writable: true, min: -5, max: 1e6 }, { name: u, area: holding, address: 4, scale: 0.1, offset: -40, writable: true }, { name: i, area: holding, address: 5, type: int64, order: dcba, writable: true }, { name: u64, area: holding, address: 9, type: uint64, writable: true }, { name: s, area: holding, address: 13, type: string, length: 3, order: badc, writable: true }, { name: b, area: holding, address: 16, type: bcd, writable: true }, { name: d, area: holding, address: 17, type: float64, scale: 1e-300, writable: true }, { name: i16, area: holding, address: 21, type: int16, writable: true }, { name: u32, area: holding, address: 22, type: uint32, writable: true } ] }
  - { name: d2, cloud: c, bus: s, points: *w }
)";

struct World {
    cfgns::Config cfg;
    World() { cfg = fieldlink::load_config_text(kConfig, "fuzz.yaml", nullptr).config; }
};

core::SampleBatch values_of(std::uint32_t device, std::int64_t at_ms) {
    core::SampleBatch b;
    b.device_index = device;
    b.timestamp_ms = at_ms;
    b.values = {{0, core::Value{std::uint64_t{7}}},
                {1, core::Value{true}},
                {2, core::Value{3.5}},
                {3, core::Value{-12.5}},
                {4, core::Value{std::int64_t{-1099511627776}}},
                {5, core::Value{std::uint64_t{1} << 63}},
                {6, core::Value{std::string("abcdef")}},
                {7, core::Value{std::uint64_t{1234}}},
                {8, core::Value{1e-290}},
                {9, core::Value{std::int64_t{-300}}},
                {10, core::Value{std::uint64_t{70000}}}};
    return b;
}

void check_answer(const World& w, const serve::Answer& a) {
    const int e = a.exception;
    if (e != 0) {
        if (e != 1 && e != 2 && e != 3 && e != 4 && e != 11) __builtin_trap();
        return;
    }
    if (!a.write) {
        const bool bits = cfgns::is_bit_area(a.area);
        if ((bits ? a.read.bits.size() : a.read.words.size()) != static_cast<std::size_t>(a.count)) __builtin_trap();
        return;
    }
    if (a.write->values.empty() || a.write->device >= w.cfg.devices.size()) __builtin_trap();
    for (const auto& pv : a.write->values) {
        const auto& p = w.cfg.devices[a.write->device].points.at(pv.point_index);
        if (!p.writable) __builtin_trap();
        std::uint16_t regs[125] = {};
        std::string why;
        if (!cfgns::is_bit_area(p.area) &&
            !fieldlink::mapping::encode_registers(fieldlink::mapping::codec_of(p), pv.value, regs, &why)) {
            __builtin_trap();
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static World w;
    if (size < 1 || w.cfg.devices.size() != 2) return 0;
    const std::int64_t now = 1'700'000'000'000;
    serve::Cache cache(w.cfg);
    serve::Image image(w.cfg);
    const std::uint8_t mode = data[0];
    if (mode & 1) cache.put(values_of(0, (mode & 4) ? now - 60'000 : now));
    if (mode & 2) cache.put(values_of(1, now));
    if (mode & 8) cache.down(1);
    std::vector<std::uint8_t> in(data + 1, data + size);
    for (;;) {
        const long n = serve::next_request(in);
        if (n < 0) break;  // the server closes such a connection
        if (n == 0) break;
        if (static_cast<std::size_t>(n) > in.size()) __builtin_trap();
        const std::vector<std::uint8_t> adu(in.begin(), in.begin() + n);
        in.erase(in.begin(), in.begin() + n);
        check_answer(w, serve::answer_request(w.cfg, image, cache, adu, now));
    }
    return 0;
}
