// Sparkplug B payloads (platforms/sparkplug_payload): bytes worked out by hand from the
// specification's schema, every basic datatype there and back, values that do not fit their
// datatype refused with the metric named, and what a host may send in a command. (The gateway's
// messages are also decoded by Eclipse Tahu's decoder in tests/integration.)
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "platforms/sparkplug_payload.hpp"

using namespace fieldlink;
namespace sp = fieldlink::platforms::sparkplug;

namespace {

std::string hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        if (!out.empty()) out += ' ';
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

sp::Metric metric(const std::string& name, std::uint64_t alias, sp::DataType t, core::Value v) {
    sp::Metric m;
    m.name = name;
    m.alias = alias;
    m.datatype = t;
    m.value = std::move(v);
    return m;
}

}  // namespace

TEST_CASE("sparkplug payload: the bytes of a birth metric, field by field") {
    sp::Payload p;
    p.timestamp = 1;
    p.seq = 0;
    p.metrics.push_back(metric("a", 1, sp::DataType::int16, std::int64_t{-2}));
    std::string err;
    const auto bytes = sp::encode(p, &err);
    REQUIRE_MESSAGE(bytes, err);
    // timestamp (1, varint) 1; metrics (2, 13 bytes): name "a", alias 1, datatype 2 (Int16),
    // int_value (10) -2 as 32-bit two's complement; seq (3) 0.
    CHECK(hex(*bytes) == "08 01 12 0d 0a 01 61 10 01 20 02 50 fe ff ff ff 0f 18 00");

    const auto back = sp::decode(*bytes, &err);
    REQUIRE_MESSAGE(back, err);
    CHECK(back->timestamp == 1u);
    CHECK(back->seq == 0u);
    REQUIRE(back->metrics.size() == 1);
    const auto& m = back->metrics[0];
    CHECK(m.name == "a");
    CHECK(m.alias == 1u);
    CHECK(m.datatype == sp::DataType::int16);
    CHECK(sp::typed_value(m, sp::DataType::int16) == core::Value{std::int64_t{-2}});
}

TEST_CASE("sparkplug payload: every basic datatype there and back, at its limits") {
    struct Case {
        sp::DataType type;
        core::Value value;
    };
    const Case cases[] = {
        {sp::DataType::int8, std::int64_t{-128}},
        {sp::DataType::int8, std::int64_t{127}},
        {sp::DataType::int16, std::int64_t{-32768}},
        {sp::DataType::int32, std::int64_t{INT32_MIN}},
        {sp::DataType::int64, std::int64_t{INT64_MIN}},
        {sp::DataType::int64, std::int64_t{INT64_MAX}},
        {sp::DataType::uint8, std::uint64_t{255}},
        {sp::DataType::uint16, std::uint64_t{65535}},
        {sp::DataType::uint32, std::uint64_t{UINT32_MAX}},
        {sp::DataType::uint64, std::uint64_t{UINT64_MAX}},
        {sp::DataType::datetime, std::uint64_t{1'700'000'000'000}},
        {sp::DataType::float32, 0.5},
        {sp::DataType::float64, -1e300},
        {sp::DataType::boolean, true},
        {sp::DataType::boolean, false},
        {sp::DataType::string, std::string("héllo")},
        {sp::DataType::text, std::string("")},
    };
    sp::Payload p;
    p.seq = 255;
    for (const auto& c : cases) {
        const std::uint64_t alias = p.metrics.size();
        p.metrics.push_back(metric("m" + std::to_string(alias), alias, c.type, c.value));
    }
    std::string err;
    const auto bytes = sp::encode(p, &err);
    REQUIRE_MESSAGE(bytes, err);
    const auto back = sp::decode(*bytes, &err);
    REQUIRE_MESSAGE(back, err);
    REQUIRE(back->metrics.size() == std::size(cases));
    CHECK(back->seq == 255u);
    CHECK_FALSE(back->timestamp);
    for (std::size_t i = 0; i < std::size(cases); ++i) {
        CAPTURE(sp::datatype_name(cases[i].type));
        CHECK(back->metrics[i].datatype == cases[i].type);
        CHECK(back->metrics[i].alias == i);
        CHECK(sp::typed_value(back->metrics[i], cases[i].type) == cases[i].value);
    }
}

TEST_CASE("sparkplug payload: a value that does not fit its datatype is refused, naming the metric") {
    std::string err;
    sp::Payload p;
    p.metrics.push_back(metric("Pump/Speed", 4, sp::DataType::uint16, std::int64_t{-1}));
    CHECK_FALSE(sp::encode(p, &err));
    CHECK(err == "metric Pump/Speed: value -1 is not a UInt16");
    p.metrics[0] = metric("", 9, sp::DataType::int32, std::string("x"));
    CHECK_FALSE(sp::encode(p, &err));
    CHECK(err == "metric alias 9: value text 'x' is not a Int32");
    p.metrics[0] = metric("b", 1, sp::DataType::boolean, std::int64_t{1});
    CHECK_FALSE(sp::encode(p, &err));

    // A metric with no value (the unit stopped answering) is null, whatever its datatype.
    sp::Metric null;
    null.alias = 3;
    null.datatype = sp::DataType::float64;
    null.is_null = true;
    p.metrics[0] = null;
    const auto bytes = sp::encode(p, &err);
    REQUIRE_MESSAGE(bytes, err);
    const auto back = sp::decode(*bytes, &err);
    REQUIRE(back);
    CHECK(back->metrics[0].is_null);
    CHECK_FALSE(back->metrics[0].value);
    CHECK_FALSE(back->seq);  // (NDEATH carries no seq)
}

TEST_CASE("sparkplug payload: what a host sends in a command is read liberally, checked strictly") {
    // A DCMD as hosts write it: alias only, value in the field of the host's choosing.
    sp::Metric m;
    m.alias = 7;
    m.value = std::uint64_t{0xFFFFFFFFFFFFFFFFu};  // Int8 -1 written to long_value (64-bit)
    CHECK(sp::typed_value(m, sp::DataType::int8) == core::Value{std::int64_t{-1}});
    m.value = std::uint64_t{0xFFFFFFFFu};  // ... or to int_value (32-bit)
    CHECK(sp::typed_value(m, sp::DataType::int8) == core::Value{std::int64_t{-1}});
    m.value = std::uint64_t{128};
    CHECK_FALSE(sp::typed_value(m, sp::DataType::int8));  // out of range
    CHECK(sp::typed_value(m, sp::DataType::uint8) == core::Value{std::uint64_t{128}});
    m.value = std::uint64_t{256};
    CHECK_FALSE(sp::typed_value(m, sp::DataType::uint8));
    m.value = 1.5;
    CHECK_FALSE(sp::typed_value(m, sp::DataType::uint16));  // not a whole number
    CHECK(sp::typed_value(m, sp::DataType::float32) == core::Value{1.5});
    m.value = true;
    CHECK_FALSE(sp::typed_value(m, sp::DataType::float64));
    CHECK(sp::typed_value(m, sp::DataType::boolean) == core::Value{true});
    m.value.reset();
    CHECK_FALSE(sp::typed_value(m, sp::DataType::boolean));

    std::string err;
    CHECK_FALSE(sp::decode(std::string("\x0a\xff\xff", 3), &err));  // a length past the end
    CHECK(err == "not a Sparkplug B payload (3 bytes that do not decode as its protobuf)");
    // Unknown fields (a host's metadata, properties, uuid) are skipped.
    const std::string with_unknown("\x12\x08\x10\x07\x42\x02\x08\x01\x70\x01",
                                   10);  // metric: alias 7, field 8 (metadata), boolean true
    const auto p = sp::decode(with_unknown, &err);
    REQUIRE_MESSAGE(p, err);
    REQUIRE(p->metrics.size() == 1);
    CHECK(p->metrics[0].alias == 7u);
    CHECK(sp::typed_value(p->metrics[0], sp::DataType::boolean) == core::Value{true});
}
