#include "platforms/sparkplug_payload.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <memory>

#include "sparkplug_b.pb-c.h"

namespace fieldlink::platforms::sparkplug {

namespace {

using PbPayload = Fieldlink__Sparkplug__Payload;
using PbMetric = Fieldlink__Sparkplug__Payload__Metric;

struct Range {
    std::int64_t lo;
    std::uint64_t hi;
};

// The whole numbers a datatype holds (DataType::unknown: none).
std::optional<Range> whole_range(DataType t) {
    switch (t) {
        case DataType::int8:
            return Range{INT8_MIN, INT8_MAX};
        case DataType::int16:
            return Range{INT16_MIN, INT16_MAX};
        case DataType::int32:
            return Range{INT32_MIN, INT32_MAX};
        case DataType::int64:
            return Range{INT64_MIN, INT64_MAX};
        case DataType::uint8:
            return Range{0, UINT8_MAX};
        case DataType::uint16:
            return Range{0, UINT16_MAX};
        case DataType::uint32:
            return Range{0, UINT32_MAX};
        case DataType::uint64:
        case DataType::datetime:
            return Range{0, UINT64_MAX};
        default:
            return std::nullopt;
    }
}

bool is_signed(DataType t) {
    return t == DataType::int8 || t == DataType::int16 || t == DataType::int32 || t == DataType::int64;
}

// A whole value inside `r`, as its 64-bit two's complement bits.
std::optional<std::uint64_t> whole_bits(const core::Value& v, Range r) {
    if (const auto* i = std::get_if<std::int64_t>(&v)) {
        if (*i < r.lo || (*i > 0 && static_cast<std::uint64_t>(*i) > r.hi)) return std::nullopt;
        return static_cast<std::uint64_t>(*i);
    }
    if (const auto* u = std::get_if<std::uint64_t>(&v)) {
        if (*u > r.hi) return std::nullopt;
        return *u;
    }
    return std::nullopt;
}

bool is_number(const core::Value& v) {
    return std::holds_alternative<std::int64_t>(v) || std::holds_alternative<std::uint64_t>(v) ||
           std::holds_alternative<double>(v);
}

// protobuf-c gives a oneof as a C union tagged by value_case: set_value and from_wire write and
// read only the member the tag names.
// NOLINTBEGIN(cppcoreguidelines-pro-type-union-access)

// Puts `v` in the field its datatype uses; false when it does not fit.
bool set_value(PbMetric& pm, DataType t, const core::Value& v) {
    if (const auto r = whole_range(t)) {
        const auto bits = whole_bits(v, *r);
        if (!bits) return false;
        if (r->hi <= UINT32_MAX && t != DataType::datetime) {
            pm.value_case = FIELDLINK__SPARKPLUG__PAYLOAD__METRIC__VALUE_INT_VALUE;
            pm.int_value = static_cast<std::uint32_t>(*bits);  // two's complement, 32 bits
        } else {
            pm.value_case = FIELDLINK__SPARKPLUG__PAYLOAD__METRIC__VALUE_LONG_VALUE;
            pm.long_value = *bits;
        }
        return true;
    }
    switch (t) {
        case DataType::float32:
            if (!is_number(v)) return false;
            pm.value_case = FIELDLINK__SPARKPLUG__PAYLOAD__METRIC__VALUE_FLOAT_VALUE;
            pm.float_value = static_cast<float>(core::number_of(v));
            return true;
        case DataType::float64:
            if (!is_number(v)) return false;
            pm.value_case = FIELDLINK__SPARKPLUG__PAYLOAD__METRIC__VALUE_DOUBLE_VALUE;
            pm.double_value = core::number_of(v);
            return true;
        case DataType::boolean:
            if (!std::holds_alternative<bool>(v)) return false;
            pm.value_case = FIELDLINK__SPARKPLUG__PAYLOAD__METRIC__VALUE_BOOLEAN_VALUE;
            pm.boolean_value = std::get<bool>(v) ? 1 : 0;
            return true;
        case DataType::string:
        case DataType::text:
            if (!std::holds_alternative<std::string>(v)) return false;
            pm.value_case = FIELDLINK__SPARKPLUG__PAYLOAD__METRIC__VALUE_STRING_VALUE;
            // protobuf-c reads it only while packing; the string outlives that.
            pm.string_value = const_cast<char*>(std::get<std::string>(v).c_str());  // NOLINT(*-const-cast)
            return true;
        default:
            return false;
    }
}

std::string describe(const core::Value& v) {
    if (const auto* s = std::get_if<std::string>(&v)) return "text '" + s->substr(0, 32) + "'";
    if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
    if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
    if (const auto* u = std::get_if<std::uint64_t>(&v)) return std::to_string(*u);
    return fmt::format("{}", std::get<double>(v));
}

Metric from_wire(const PbMetric& pm) {
    Metric m;
    if (pm.name) m.name = pm.name;
    if (pm.has_alias) m.alias = pm.alias;
    if (pm.has_timestamp) m.timestamp = pm.timestamp;
    if (pm.has_datatype) m.datatype = static_cast<DataType>(pm.datatype);
    m.historical = pm.has_is_historical && pm.is_historical;
    m.is_null = pm.has_is_null && pm.is_null;
    switch (pm.value_case) {
        case FIELDLINK__SPARKPLUG__PAYLOAD__METRIC__VALUE_INT_VALUE:
            m.value = std::uint64_t{pm.int_value};
            break;
        case FIELDLINK__SPARKPLUG__PAYLOAD__METRIC__VALUE_LONG_VALUE:
            m.value = std::uint64_t{pm.long_value};
            break;
        case FIELDLINK__SPARKPLUG__PAYLOAD__METRIC__VALUE_FLOAT_VALUE:
            m.value = static_cast<double>(pm.float_value);
            break;
        case FIELDLINK__SPARKPLUG__PAYLOAD__METRIC__VALUE_DOUBLE_VALUE:
            m.value = pm.double_value;
            break;
        case FIELDLINK__SPARKPLUG__PAYLOAD__METRIC__VALUE_BOOLEAN_VALUE:
            m.value = pm.boolean_value != 0;
            break;
        case FIELDLINK__SPARKPLUG__PAYLOAD__METRIC__VALUE_STRING_VALUE:
            m.value = std::string(pm.string_value ? pm.string_value : "");
            break;
        case FIELDLINK__SPARKPLUG__PAYLOAD__METRIC__VALUE_BYTES_VALUE:
            m.value = std::string(reinterpret_cast<const char*>(pm.bytes_value.data), pm.bytes_value.len);
            break;
        default:
            break;
    }
    return m;
}

// NOLINTEND(cppcoreguidelines-pro-type-union-access)

}  // namespace

const char* datatype_name(DataType t) {
    switch (t) {
        case DataType::int8:
            return "Int8";
        case DataType::int16:
            return "Int16";
        case DataType::int32:
            return "Int32";
        case DataType::int64:
            return "Int64";
        case DataType::uint8:
            return "UInt8";
        case DataType::uint16:
            return "UInt16";
        case DataType::uint32:
            return "UInt32";
        case DataType::uint64:
            return "UInt64";
        case DataType::float32:
            return "Float";
        case DataType::float64:
            return "Double";
        case DataType::boolean:
            return "Boolean";
        case DataType::string:
            return "String";
        case DataType::datetime:
            return "DateTime";
        case DataType::text:
            return "Text";
        default:
            return "Unknown";
    }
}

std::optional<std::string> encode(const Payload& p, std::string* error) {
    std::vector<PbMetric> metrics(p.metrics.size());
    std::vector<PbMetric*> pointers;
    pointers.reserve(metrics.size());
    for (std::size_t i = 0; i < p.metrics.size(); ++i) {
        const Metric& m = p.metrics[i];
        PbMetric& pm = metrics[i];
        fieldlink__sparkplug__payload__metric__init(&pm);
        if (!m.name.empty()) pm.name = const_cast<char*>(m.name.c_str());  // NOLINT(*-const-cast): read by pack only
        pm.has_alias = m.alias.has_value();
        pm.alias = m.alias.value_or(0);
        pm.has_timestamp = m.timestamp.has_value();
        pm.timestamp = m.timestamp.value_or(0);
        pm.has_datatype = m.datatype != DataType::unknown;
        pm.datatype = static_cast<std::uint32_t>(m.datatype);
        pm.has_is_historical = m.historical;
        pm.is_historical = m.historical;
        pm.has_is_null = m.is_null;
        pm.is_null = m.is_null;
        if (!m.is_null && m.value && !set_value(pm, m.datatype, *m.value)) {
            if (error) {
                const std::string who = m.name.empty() ? "alias " + std::to_string(m.alias.value_or(0)) : m.name;
                *error =
                    fmt::format("metric {}: value {} is not a {}", who, describe(*m.value), datatype_name(m.datatype));
            }
            return std::nullopt;
        }
        pointers.push_back(&pm);
    }
    PbPayload pp;
    fieldlink__sparkplug__payload__init(&pp);
    pp.has_timestamp = p.timestamp.has_value();
    pp.timestamp = p.timestamp.value_or(0);
    pp.has_seq = p.seq.has_value();
    pp.seq = p.seq.value_or(0);
    pp.n_metrics = pointers.size();
    pp.metrics = pointers.data();
    std::string out(fieldlink__sparkplug__payload__get_packed_size(&pp), '\0');
    fieldlink__sparkplug__payload__pack(&pp, reinterpret_cast<std::uint8_t*>(out.data()));
    return out;
}

std::optional<Payload> decode(const std::string& bytes, std::string* error) {
    const std::unique_ptr<PbPayload, void (*)(PbPayload*)> pp(
        fieldlink__sparkplug__payload__unpack(nullptr, bytes.size(),
                                              reinterpret_cast<const std::uint8_t*>(bytes.data())),
        [](PbPayload* q) { fieldlink__sparkplug__payload__free_unpacked(q, nullptr); });
    if (!pp) {
        if (error)
            *error =
                fmt::format("not a Sparkplug B payload ({} bytes that do not decode as its protobuf)", bytes.size());
        return std::nullopt;
    }
    Payload p;
    if (pp->has_timestamp) p.timestamp = pp->timestamp;
    if (pp->has_seq) p.seq = pp->seq;
    p.metrics.reserve(pp->n_metrics);
    for (std::size_t i = 0; i < pp->n_metrics; ++i) p.metrics.push_back(from_wire(*pp->metrics[i]));
    return p;
}

std::optional<core::Value> typed_value(const Metric& m, DataType type) {
    if (!m.value) return std::nullopt;
    const core::Value& v = *m.value;
    if (const auto r = whole_range(type)) {
        const auto* raw = std::get_if<std::uint64_t>(&v);
        if (raw == nullptr) return std::nullopt;
        if (!is_signed(type)) {
            if (*raw > r->hi) return std::nullopt;
            return core::Value{*raw};
        }
        // int_value carries a signed type as 32-bit two's complement; long_value as 64-bit.
        const std::int64_t s = type != DataType::int64 && *raw <= UINT32_MAX
                                   ? std::int64_t{static_cast<std::int32_t>(static_cast<std::uint32_t>(*raw))}
                                   : static_cast<std::int64_t>(*raw);
        if (s < r->lo || (s > 0 && static_cast<std::uint64_t>(s) > r->hi)) return std::nullopt;
        return core::Value{s};
    }
    switch (type) {
        case DataType::float32:
        case DataType::float64:
            if (!std::holds_alternative<double>(v) || !std::isfinite(std::get<double>(v))) return std::nullopt;
            return v;
        case DataType::boolean:
            if (!std::holds_alternative<bool>(v)) return std::nullopt;
            return v;
        case DataType::string:
        case DataType::text:
            if (!std::holds_alternative<std::string>(v)) return std::nullopt;
            return v;
        default:
            return std::nullopt;
    }
}

}  // namespace fieldlink::platforms::sparkplug
