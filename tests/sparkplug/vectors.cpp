// Prints Sparkplug B payloads made by the gateway's encoder (platforms/sparkplug_payload), one per
// line as "hex<TAB>expected JSON", for a decoder nobody on the project wrote (Eclipse Tahu's
// sparkplug-payload, tests/sparkplug/tahu_decode.js) to read back in test_sparkplug_oracle.py.
#include <cstdint>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "platforms/sparkplug_payload.hpp"

namespace sp = fieldlink::platforms::sparkplug;
using fieldlink::core::Value;

namespace {

std::string hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (const unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

// A value as text, the way the oracle prints it (64-bit integers do not fit a JS number).
std::string text(const Value& v) {
    if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
    if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
    if (const auto* u = std::get_if<std::uint64_t>(&v)) return std::to_string(*u);
    if (const auto* s = std::get_if<std::string>(&v)) return *s;
    return nlohmann::json(std::get<double>(v)).dump();
}

int emit(const sp::Payload& p) {
    std::string err;
    const auto bytes = sp::encode(p, &err);
    if (!bytes) {
        std::fprintf(stderr, "vectors: %s\n", err.c_str());
        return 1;
    }
    nlohmann::json want{{"seq", p.seq ? nlohmann::json(*p.seq) : nlohmann::json()},
                        {"timestamp", p.timestamp ? nlohmann::json(*p.timestamp) : nlohmann::json()},
                        {"metrics", nlohmann::json::array()}};
    for (const auto& m : p.metrics) {
        want["metrics"].push_back({{"name", m.name},
                                   {"alias", m.alias.value_or(0)},
                                   {"type", sp::datatype_name(m.datatype)},
                                   {"historical", m.historical},
                                   {"null", m.is_null},
                                   {"ts", m.timestamp ? nlohmann::json(*m.timestamp) : nlohmann::json()},
                                   {"value", m.value && !m.is_null ? text(*m.value) : ""}});
    }
    std::printf("%s\t%s\n", hex(*bytes).c_str(), want.dump().c_str());
    return 0;
}

sp::Metric metric(std::uint64_t alias, sp::DataType t, Value v, bool named = true) {
    sp::Metric m;
    if (named) m.name = "Device/m" + std::to_string(alias);
    m.alias = alias;
    m.datatype = t;
    m.timestamp = 1'700'000'000'000 + alias;
    m.value = std::move(v);
    return m;
}

}  // namespace

int main() {
    int rc = 0;
    // A birth: every basic datatype the gateway publishes, at its limits where JS can tell.
    sp::Payload birth;
    birth.timestamp = 1'700'000'000'123;
    birth.seq = 0;
    std::uint64_t a = 0;
    for (const auto& [t, v] : std::initializer_list<std::pair<sp::DataType, Value>>{
             {sp::DataType::int8, std::int64_t{-128}},
             {sp::DataType::int16, std::int64_t{-32768}},
             {sp::DataType::int32, std::int64_t{-2147483647}},
             {sp::DataType::int64, std::int64_t{-9007199254740993}},
             {sp::DataType::uint8, std::uint64_t{255}},
             {sp::DataType::uint16, std::uint64_t{65535}},
             {sp::DataType::uint32, std::uint64_t{4294967295}},
             {sp::DataType::uint64, std::uint64_t{18446744073709551615u}},
             {sp::DataType::float32, 0.5},
             {sp::DataType::float64, 21.375},
             {sp::DataType::boolean, true},
             {sp::DataType::string, std::string("Kessel 2 \xc3\xa4")},
         }) {
        birth.metrics.push_back(metric(a++, t, v));
    }
    rc |= emit(birth);
    // Data: by alias only, historical, a null, seq at the top of its range.
    sp::Payload data;
    data.timestamp = 1'700'000'001'000;
    data.seq = 255;
    data.metrics.push_back(metric(1, sp::DataType::int16, std::int64_t{-7}, false));
    auto late = metric(9, sp::DataType::float64, 3.25, false);
    late.historical = true;
    data.metrics.push_back(late);
    auto gone = metric(10, sp::DataType::boolean, false, false);
    gone.is_null = true;
    data.metrics.push_back(gone);
    rc |= emit(data);
    // A death certificate: bdSeq only, no seq.
    sp::Payload death;
    death.timestamp = 1'700'000'002'000;
    sp::Metric bd;
    bd.name = "bdSeq";
    bd.datatype = sp::DataType::uint64;
    bd.value = std::uint64_t{3};
    death.metrics.push_back(bd);
    rc |= emit(death);
    return rc;
}
