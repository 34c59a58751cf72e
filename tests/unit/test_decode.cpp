#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "helpers.hpp"
#include "mapping/decode.hpp"
#include "mapping/report.hpp"

using namespace fieldlink::mapping;
using fieldlink::config::DataType;
using fieldlink::config::WordOrder;

namespace {

Value dec(DataType t, WordOrder o, std::initializer_list<std::uint16_t> regs, double scale = 1, double offset = 0) {
    PointCodec c;
    c.type = t;
    c.order = o;
    c.scale = scale;
    c.offset = offset;
    std::vector<std::uint16_t> r(regs);
    std::string err;
    auto v = decode_registers(c, r.data(), r.size(), &err);
    REQUIRE_MESSAGE(v.has_value(), err);
    return *v;
}

}  // namespace

TEST_CASE("16-bit types and byte swap") {
    CHECK(std::get<std::int64_t>(dec(DataType::int16, WordOrder::abcd, {0xFFFE})) == -2);
    CHECK(std::get<std::uint64_t>(dec(DataType::uint16, WordOrder::abcd, {0xFFFE})) == 65534);
    CHECK(std::get<std::uint64_t>(dec(DataType::uint16, WordOrder::badc, {0x1234})) == 0x3412);
    CHECK(std::get<std::uint64_t>(dec(DataType::uint16, WordOrder::dcba, {0x1234})) == 0x3412);
    CHECK(std::get<std::uint64_t>(dec(DataType::uint16, WordOrder::cdab, {0x1234})) == 0x1234);
}

TEST_CASE("32-bit integers in the four orders") {
    // 0x12345678 laid out as bytes A=12 B=34 C=56 D=78
    CHECK(std::get<std::uint64_t>(dec(DataType::uint32, WordOrder::abcd, {0x1234, 0x5678})) == 0x12345678u);
    CHECK(std::get<std::uint64_t>(dec(DataType::uint32, WordOrder::badc, {0x3412, 0x7856})) == 0x12345678u);
    CHECK(std::get<std::uint64_t>(dec(DataType::uint32, WordOrder::cdab, {0x5678, 0x1234})) == 0x12345678u);
    CHECK(std::get<std::uint64_t>(dec(DataType::uint32, WordOrder::dcba, {0x7856, 0x3412})) == 0x12345678u);
    CHECK(std::get<std::int64_t>(dec(DataType::int32, WordOrder::abcd, {0xFFFF, 0xFFFF})) == -1);
    CHECK(std::get<std::int64_t>(dec(DataType::int32, WordOrder::cdab, {0x0000, 0x8000})) == INT32_MIN);
}

TEST_CASE("64-bit integers in the four orders") {
    const std::uint64_t want = 0x0102030405060708ULL;
    CHECK(std::get<std::uint64_t>(dec(DataType::uint64, WordOrder::abcd, {0x0102, 0x0304, 0x0506, 0x0708})) == want);
    CHECK(std::get<std::uint64_t>(dec(DataType::uint64, WordOrder::badc, {0x0201, 0x0403, 0x0605, 0x0807})) == want);
    CHECK(std::get<std::uint64_t>(dec(DataType::uint64, WordOrder::cdab, {0x0708, 0x0506, 0x0304, 0x0102})) == want);
    CHECK(std::get<std::uint64_t>(dec(DataType::uint64, WordOrder::dcba, {0x0807, 0x0605, 0x0403, 0x0201})) == want);
    CHECK(std::get<std::int64_t>(dec(DataType::int64, WordOrder::abcd, {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE})) == -2);
}

TEST_CASE("float32 in the four orders") {
    // 21.5f = 0x41AC0000; 0.1f = 0x3DCCCCCD
    CHECK(std::get<double>(dec(DataType::float32, WordOrder::abcd, {0x41AC, 0x0000})) == 21.5);
    CHECK(std::get<double>(dec(DataType::float32, WordOrder::badc, {0xAC41, 0x0000})) == 21.5);
    CHECK(std::get<double>(dec(DataType::float32, WordOrder::cdab, {0x0000, 0x41AC})) == 21.5);
    CHECK(std::get<double>(dec(DataType::float32, WordOrder::dcba, {0x0000, 0xAC41})) == 21.5);
    // float32 values publish as the shortest decimal that identifies them
    CHECK(std::get<double>(dec(DataType::float32, WordOrder::abcd, {0x3DCC, 0xCCCD})) == 0.1);
    CHECK(std::get<double>(dec(DataType::float32, WordOrder::abcd, {0xC2F6, 0xE979})) == doctest::Approx(-123.456));
}

TEST_CASE("float64 in the four orders") {
    // 1234.5678 = 0x40934A456D5CFAAD
    const double want = 1234.5678;
    CHECK(std::get<double>(dec(DataType::float64, WordOrder::abcd, {0x4093, 0x4A45, 0x6D5C, 0xFAAD})) == want);
    CHECK(std::get<double>(dec(DataType::float64, WordOrder::badc, {0x9340, 0x454A, 0x5C6D, 0xADFA})) == want);
    CHECK(std::get<double>(dec(DataType::float64, WordOrder::cdab, {0xFAAD, 0x6D5C, 0x4A45, 0x4093})) == want);
    CHECK(std::get<double>(dec(DataType::float64, WordOrder::dcba, {0xADFA, 0x5C6D, 0x454A, 0x9340})) == want);
}

TEST_CASE("scale and offset") {
    CHECK(std::get<double>(dec(DataType::int16, WordOrder::abcd, {0xFF9C}, 0.1, 0)) == doctest::Approx(-10.0));
    CHECK(std::get<double>(dec(DataType::uint16, WordOrder::abcd, {250}, 0.1, -40)) == doctest::Approx(-15.0));
    CHECK(std::get<double>(dec(DataType::float32, WordOrder::abcd, {0x41AC, 0x0000}, 2, 1)) == 44.0);
}

TEST_CASE("bool from registers and bit fields") {
    PointCodec c;
    c.type = DataType::boolean;
    std::uint16_t r = 0x0008;
    CHECK(std::get<bool>(*decode_registers(c, &r, 1, nullptr)) == true);
    c.bit = 3;
    CHECK(std::get<bool>(*decode_registers(c, &r, 1, nullptr)) == true);
    c.bit = 2;
    CHECK(std::get<bool>(*decode_registers(c, &r, 1, nullptr)) == false);
    CHECK(std::get<bool>(decode_bit(c, 1)) == true);
    CHECK(std::get<bool>(decode_bit(c, 0)) == false);
}

TEST_CASE("BCD") {
    CHECK(std::get<std::uint64_t>(dec(DataType::bcd, WordOrder::abcd, {0x1234})) == 1234);
    CHECK(std::get<std::uint64_t>(dec(DataType::bcd, WordOrder::badc, {0x3412})) == 1234);
    PointCodec c;
    c.type = DataType::bcd;
    std::uint16_t bad = 0x12A4;
    std::string err;
    CHECK_FALSE(decode_registers(c, &bad, 1, &err).has_value());
    CHECK(err == "invalid BCD digit in register value");
}

TEST_CASE("strings") {
    PointCodec c;
    c.type = DataType::string;
    c.string_length = 3;
    std::uint16_t r[] = {0x4142, 0x4344, 0x0000};  // "ABCD\0\0"
    CHECK(std::get<std::string>(*decode_registers(c, r, 3, nullptr)) == "ABCD");
    c.order = WordOrder::badc;
    CHECK(std::get<std::string>(*decode_registers(c, r, 3, nullptr)) == "BADC");
    std::uint16_t padded[] = {0x4F4B, 0x2020, 0x2020};  // "OK    "
    c.order = WordOrder::abcd;
    CHECK(std::get<std::string>(*decode_registers(c, padded, 3, nullptr)) == "OK");
}

TEST_CASE("short register image is an error, not a read past the end") {
    PointCodec c;
    c.type = DataType::float64;
    std::uint16_t r[2] = {0, 0};
    std::string err;
    CHECK_FALSE(decode_registers(c, r, 2, &err).has_value());
    CHECK(err == "register image shorter than the type needs");
}

TEST_CASE("values: one conversion to a number, the same everywhere (true is 1, text is not a number)") {
    using fieldlink::core::number_of;
    using fieldlink::core::Value;
    CHECK(number_of(Value{true}) == 1.0);
    CHECK(number_of(Value{false}) == 0.0);
    CHECK(number_of(Value{std::int64_t{-7}}) == -7.0);
    CHECK(number_of(Value{std::uint64_t{18446744073709551615ULL}}) == 18446744073709551615.0);
    CHECK(number_of(Value{2.5}) == 2.5);
    CHECK(number_of(Value{std::string("12")}) == 0.0);
}

TEST_CASE("report filter: deadband and heartbeat for properties, triggers for events with their parameters") {
    const auto cfg = fieldlink::test::load_ok(R"(
clouds:
  c: { platform: mqtt, host: 127.0.0.1 }
buses:
  b: { driver: sim }
devices:
  - name: m
    cloud: c
    bus: b
    interval: 1s
    points:
      - { name: t, area: holding, address: 0, deadband: 2, heartbeat: 1m }
      - { name: alarm, area: holding, address: 1, report: event, event: over, trigger: rising }
      - { name: level, area: holding, address: 2, report: event, event: over, trigger: none }
      - { name: plain, area: holding, address: 3 }
)");
    const auto& dc = cfg.devices[0];
    fieldlink::mapping::ReportFilter f(dc);
    using fieldlink::core::Value;
    const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
    const auto run = [&](double t, std::int64_t alarm, std::int64_t level, std::chrono::seconds at) {
        fieldlink::core::SampleBatch b;
        b.values = {{0, Value{t}}, {1, Value{alarm}}, {2, Value{level}}, {3, Value{std::int64_t{7}}}};
        f.apply(dc, b, t0 + at);
        std::vector<std::uint32_t> kept;
        for (const auto& pv : b.values) kept.push_back(pv.point_index);
        return kept;
    };
    // First reading: the property, the rising alarm with its parameter, the plain point.
    CHECK(run(20.0, 1, 5, std::chrono::seconds(0)) == std::vector<std::uint32_t>{0, 1, 2, 3});
    // Within the deadband, the alarm still high: only the plain point.
    CHECK(run(21.5, 1, 6, std::chrono::seconds(1)) == std::vector<std::uint32_t>{3});
    // Past the deadband (from the value last sent, 20): sent.
    CHECK(run(22.5, 0, 6, std::chrono::seconds(2)) == std::vector<std::uint32_t>{0, 3});
    // The alarm rises again: the event goes with its parameter.
    CHECK(run(22.5, 1, 9, std::chrono::seconds(3)) == std::vector<std::uint32_t>{1, 2, 3});
    // The heartbeat is due: sent although unchanged.
    CHECK(run(22.5, 1, 9, std::chrono::seconds(70)) == std::vector<std::uint32_t>{0, 3});
    // A value written from the platform is news, whatever its deadband.
    f.forget_sent(0);
    CHECK(run(22.5, 1, 9, std::chrono::seconds(71)) == std::vector<std::uint32_t>{0, 3});
}
