// The local Modbus TCP server's register image: every type and word order laid out as a write
// would put it on a device (decoding what is served gives the value back), unmapped addresses
// refused, stale and missing values answered with the configured exception.
#include <doctest/doctest.h>

#include "helpers.hpp"
#include "mapping/decode.hpp"
#include "serve/image.hpp"

using namespace fieldlink;

namespace {

const char* kServed = R"(
gateway:
  store: memory
  modbus_server:
    listen: 5020
    stale_exception: 11
    stale_after: 3s
    map:
      - { device: m, point: u16, area: holding, address: 0 }
      - { device: m, point: i16, area: holding, address: 1 }
      - { device: m, point: f32, area: holding, address: 2 }
      - { device: m, point: f32swap, area: holding, address: 4 }
      - { device: m, point: u32, area: input, address: 0 }
      - { device: m, point: i64, area: input, address: 2 }
      - { device: m, point: scaled, area: input, address: 6 }
      - { device: m, point: text, area: input, address: 7 }
      - { device: m, point: relay, area: coil, address: 0 }
      - { device: m, point: alarm, unit: 2, area: discrete, address: 5 }
clouds:
  c: { platform: mqtt, host: 127.0.0.1 }
buses:
  s: { driver: sim }
devices:
  - name: m
    cloud: c
    bus: s
    interval: 1s
    points:
      - { name: u16, area: holding, address: 0 }
      - { name: i16, area: holding, address: 1, type: int16 }
      - { name: f32, area: holding, address: 2, type: float32 }
      - { name: f32swap, area: holding, address: 4, type: float32, order: cdab }
      - { name: u32, area: holding, address: 6, type: uint32, order: dcba }
      - { name: i64, area: holding, address: 8, type: int64 }
      - { name: scaled, area: holding, address: 12, type: int16, scale: 0.1, offset: -40 }
      - { name: text, area: holding, address: 13, type: string, length: 2 }
      - { name: relay, area: coil, address: 0, type: bool, writable: true }
      - { name: alarm, area: discrete, address: 0, type: bool }
)";

core::SampleBatch sample(std::int64_t at_ms) {
    core::SampleBatch b;
    b.device_index = 0;
    b.timestamp_ms = at_ms;
    b.values = {{0, core::Value{std::uint64_t{65535}}},
                {1, core::Value{std::int64_t{-2}}},
                {2, core::Value{21.5}},
                {3, core::Value{-1.25}},
                {4, core::Value{std::uint64_t{4000000000}}},
                {5, core::Value{std::int64_t{-5000000000}}},
                {6, core::Value{-12.3}},
                {7, core::Value{std::string("ab")}},
                {8, core::Value{true}},
                {9, core::Value{false}}};
    return b;
}

// What a client reading the served registers of `point` gets back, decoded as the point says.
core::Value served_value(const config::Config& cfg, const serve::ReadResult& r, std::uint32_t point) {
    REQUIRE(r.exception == 0);
    std::string why;
    auto v = mapping::decode_registers(mapping::codec_of(cfg.devices[0].points[point]), r.words.data(), r.words.size(),
                                       &why);
    REQUIRE_MESSAGE(v, why);
    return *v;
}

}  // namespace

TEST_CASE("serve: each type and word order is served as a write would lay it out, and reads back the same") {
    const auto cfg = test::load_ok(kServed);
    serve::Cache cache(cfg);
    serve::Image image(cfg);
    const std::int64_t now = 1'700'000'000'000;
    cache.put(sample(now));
    using A = config::Area;
    CHECK(image.read(cache, 1, A::holding, 0, 1, now).words == std::vector<std::uint16_t>{65535});
    CHECK(image.read(cache, 1, A::holding, 1, 1, now).words == std::vector<std::uint16_t>{0xFFFE});
    CHECK(served_value(cfg, image.read(cache, 1, A::holding, 2, 2, now), 2) == core::Value{21.5});
    CHECK(served_value(cfg, image.read(cache, 1, A::holding, 4, 2, now), 3) == core::Value{-1.25});
    const auto f32 = image.read(cache, 1, A::holding, 2, 4, now);  // two points in one read
    REQUIRE(f32.words.size() == 4);
    CHECK(f32.words[0] == 0x41AC);  // 21.5 = 0x41AC0000 (abcd)
    CHECK(f32.words[3] == 0xBFA0);  // -1.25 = 0xBFA00000 (cdab: low word first)
    CHECK(served_value(cfg, image.read(cache, 1, A::input, 0, 2, now), 4) == core::Value{std::uint64_t{4000000000}});
    CHECK(served_value(cfg, image.read(cache, 1, A::input, 2, 4, now), 5) == core::Value{std::int64_t{-5000000000}});
    const auto scaled = served_value(cfg, image.read(cache, 1, A::input, 6, 1, now), 6);
    CHECK(core::number_of(scaled) == doctest::Approx(-12.3));
    CHECK(served_value(cfg, image.read(cache, 1, A::input, 7, 2, now), 7) == core::Value{std::string("ab")});
    CHECK(image.read(cache, 1, A::coil, 0, 1, now).bits == std::vector<std::uint8_t>{1});
    CHECK(image.read(cache, 2, A::discrete, 5, 1, now).bits == std::vector<std::uint8_t>{0});
    // A read starting inside a point gets its second register.
    CHECK(image.read(cache, 1, A::holding, 3, 1, now).words == std::vector<std::uint16_t>{0x0000});
}

TEST_CASE("serve: unmapped addresses are illegal; missing, stale and down values get the configured exception") {
    const auto cfg = test::load_ok(kServed);
    serve::Cache cache(cfg);
    serve::Image image(cfg);
    const std::int64_t now = 1'700'000'000'000;
    using A = config::Area;
    CHECK(image.read(cache, 1, A::holding, 0, 1, now).exception == 11);  // nothing read yet
    cache.put(sample(now));
    CHECK(image.read(cache, 1, A::holding, 0, 7, now).exception == 2);  // address 6 is not served
    CHECK(image.read(cache, 3, A::holding, 0, 1, now).exception == 2);  // nor unit 3
    CHECK(image.read(cache, 1, A::input, 0, 1, now).exception == 0);
    CHECK(image.read(cache, 1, A::holding, 0, 6, now + 3000).exception == 0);  // 3 s: still current
    CHECK(image.read(cache, 1, A::holding, 0, 6, now + 3001).exception == 11);
    cache.down(0);
    CHECK(image.read(cache, 1, A::holding, 0, 1, now).exception == 11);
    cache.put(sample(now + 5000));  // answering again
    CHECK(image.read(cache, 1, A::holding, 0, 1, now + 5000).exception == 0);
}
