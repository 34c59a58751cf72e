// The local Modbus TCP server's register image: every type and word order laid out as a write
// would put it on a device (decoding what is served gives the value back), unmapped addresses
// refused, stale and missing values answered with the configured exception.
#include <doctest/doctest.h>

#include "helpers.hpp"
#include "mapping/decode.hpp"
#include "serve/image.hpp"
#include "serve/request.hpp"

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
      - { device: m, point: setpoint, area: holding, address: 20 }
      - { device: m, point: limit, area: holding, address: 21 }
      - { device: n, point: x, area: holding, address: 23 }
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
      - { name: setpoint, area: holding, address: 20, type: int16, writable: true, min: -100, max: 100 }
      - { name: limit, area: holding, address: 21, type: float32, writable: true, min: 0, max: 50 }
  - name: n
    cloud: c
    bus: s
    interval: 1s
    points:
      - { name: x, area: holding, address: 0, writable: true }
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

namespace {

// A Modbus TCP request: MBAP header (transaction 7, unit 1), function code, data.
std::vector<std::uint8_t> adu(std::uint8_t fc, const std::vector<std::uint8_t>& data, std::uint8_t unit = 1) {
    std::vector<std::uint8_t> a(8 + data.size());
    a[1] = 7;
    a[5] = static_cast<std::uint8_t>(data.size() + 2);
    a[6] = unit;
    a[7] = fc;
    std::copy(data.begin(), data.end(), a.begin() + 8);
    return a;
}

}  // namespace

TEST_CASE("serve: requests are framed from a stream; malformed ones refused, writes checked as a cloud's are") {
    const auto cfg = test::load_ok(kServed);
    serve::Cache cache(cfg);
    serve::Image image(cfg);
    const std::int64_t now = 1'700'000'000'000;
    cache.put(sample(now));

    SUBCASE("framing") {
        auto two = adu(3, {0, 0, 0, 1});
        for (const auto b : adu(4, {0, 0, 0, 2})) two.push_back(b);
        CHECK(serve::next_request(two) == 12);
        CHECK(serve::next_request({two.begin(), two.begin() + 11}) == 0);  // half a request: wait
        CHECK(serve::next_request({0, 1, 0, 0}) == 0);
        CHECK(serve::next_request({0, 1, 0, 1, 0, 6, 1, 3}) == -1);  // not protocol 0
        CHECK(serve::next_request({0, 1, 0, 0, 0, 1, 1, 3}) == -1);  // length 1
        CHECK(serve::next_request({0, 1, 0, 0, 1, 0, 1, 3}) == -1);  // length 256
    }
    SUBCASE("reads") {
        auto a = serve::answer_request(cfg, image, cache, adu(3, {0, 0, 0, 2}), now);
        CHECK(a.exception == 0);
        CHECK(a.read.words == std::vector<std::uint16_t>{65535, 0xFFFE});
        CHECK(serve::answer_request(cfg, image, cache, adu(43, {14, 1, 0}), now).exception == 1);
        CHECK(serve::answer_request(cfg, image, cache, adu(3, {0, 0, 0, 126}), now).exception == 3);
        CHECK(serve::answer_request(cfg, image, cache, adu(3, {0, 0, 0, 0}), now).exception == 3);
        CHECK(serve::answer_request(cfg, image, cache, adu(3, {0xFF, 0xFF, 0, 2}), now).exception == 2);
        CHECK(serve::answer_request(cfg, image, cache, adu(3, {0, 0, 0}), now).exception == 3);  // short
        CHECK(serve::answer_request(cfg, image, cache, adu(1, {0, 0, 0, 1}), now).read.bits ==
              std::vector<std::uint8_t>{1});
    }
    SUBCASE("writes") {
        auto w = serve::answer_request(cfg, image, cache, adu(6, {0, 20, 0xFF, 0xCE}), now);  // -50
        REQUIRE(w.exception == 0);
        REQUIRE(w.write);
        CHECK(w.write->device == 0);
        REQUIRE(w.write->values.size() == 1);
        CHECK(w.write->values[0].point_index == 10);
        CHECK(core::number_of(w.write->values[0].value) == -50);
        // setpoint and limit (float32 12.5 = 0x41480000) in one request
        w = serve::answer_request(cfg, image, cache, adu(16, {0, 20, 0, 3, 6, 0, 5, 0x41, 0x48, 0, 0}), now);
        REQUIRE(w.write);
        REQUIRE(w.write->values.size() == 2);
        CHECK(core::number_of(w.write->values[1].value) == 12.5);
        CHECK(serve::answer_request(cfg, image, cache, adu(5, {0, 0, 0xFF, 0}), now).write->values.size() == 1);
        // refused: out of range, read-only, half a point, two devices, not served, malformed
        CHECK(serve::answer_request(cfg, image, cache, adu(6, {0, 20, 0, 101}), now).exception == 3);
        CHECK(serve::answer_request(cfg, image, cache, adu(16, {0, 21, 0, 2, 4, 0x42, 0x50, 0, 0}), now).exception ==
              3);  // 52.0 over max 50
        CHECK(serve::answer_request(cfg, image, cache, adu(6, {0, 0, 0, 1}), now).exception == 2);
        CHECK(serve::answer_request(cfg, image, cache, adu(6, {0, 21, 0, 1}), now).exception == 2);
        CHECK(serve::answer_request(cfg, image, cache, adu(16, {0, 20, 0, 4, 8, 0, 1, 0x41, 0x48, 0, 0, 0, 1}), now)
                  .exception == 2);
        CHECK(serve::answer_request(cfg, image, cache, adu(6, {0, 99, 0, 1}), now).exception == 2);
        CHECK(serve::answer_request(cfg, image, cache, adu(5, {0, 0, 0x12, 0x34}), now).exception == 3);
        CHECK(serve::answer_request(cfg, image, cache, adu(16, {0, 20, 0, 1, 3, 0, 1}), now).exception == 3);
    }
}
