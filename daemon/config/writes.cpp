#include "config/writes.hpp"

#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <variant>

namespace fieldlink::config {
namespace {

std::pair<double, double> raw_range(DataType t) {
    switch (t) {
        case DataType::int16:
            return {-32768.0, 32767.0};
        case DataType::uint16:
            return {0.0, 65535.0};
        case DataType::int32:
            return {-2147483648.0, 2147483647.0};
        case DataType::uint32:
            return {0.0, 4294967295.0};
        case DataType::int64:
            return {-9223372036854775808.0, 9223372036854774784.0};  // largest doubles inside the range
        case DataType::uint64:
            return {0.0, 18446744073709549568.0};
        case DataType::float32:
            return {-static_cast<double>(FLT_MAX), static_cast<double>(FLT_MAX)};
        case DataType::float64:
            return {-DBL_MAX, DBL_MAX};
        case DataType::bcd:
            return {0.0, 9999.0};
        case DataType::boolean:
        case DataType::string:
            break;
    }
    return {0.0, 0.0};
}

bool is_integer_type(DataType t) {
    return t != DataType::float32 && t != DataType::float64 && t != DataType::boolean && t != DataType::string;
}

// A number from a value: bools are not numbers; text must be one number, whole.
std::optional<core::Value> as_number(const core::Value& v) {
    if (std::holds_alternative<bool>(v)) return std::nullopt;
    if (const auto* s = std::get_if<std::string>(&v)) {
        auto n = value_from_text(*s);
        if (std::holds_alternative<std::string>(n) || std::holds_alternative<bool>(n)) return std::nullopt;
        return n;
    }
    return v;
}

std::string fmt_number(double d) {
    char buf[32];
    auto res = std::to_chars(buf, buf + sizeof buf, d);
    return {buf, res.ptr};
}

std::optional<core::Value> accept_bool(const core::Value& v, std::string* why) {
    if (const auto* b = std::get_if<bool>(&v)) return *b;
    if (const auto* s = std::get_if<std::string>(&v)) {
        if (*s == "true" || *s == "1") return true;
        if (*s == "false" || *s == "0") return false;
    } else if (!std::holds_alternative<double>(v)) {
        const double d = core::number_of(v);
        if (d == 0.0 || d == 1.0) return d == 1.0;
    }
    *why = "type mismatch: " + describe(v) + " given, expected true or false (or 1 / 0)";
    return std::nullopt;
}

// Unscaled whole-number types keep full 64-bit precision.
std::optional<core::Value> accept_whole(const PointConfig& p, const core::Value& n, std::string* why) {
    const auto [lo, hi] = raw_range(p.type);
    if (const auto* d = std::get_if<double>(&n)) {
        if (std::floor(*d) != *d) {
            *why = "type mismatch: " + describe(n) + " given, " + to_string(p.type) + " takes whole numbers";
            return std::nullopt;
        }
    }
    bool fits = false;
    core::Value out;
    if (const auto* u = std::get_if<std::uint64_t>(&n)) {
        fits = p.type == DataType::uint64 || (p.type == DataType::int64 && *u <= INT64_MAX) ||
               static_cast<double>(*u) <= hi;
        out = p.type == DataType::int64 && fits ? core::Value(static_cast<std::int64_t>(*u)) : core::Value(*u);
    } else if (const auto* i = std::get_if<std::int64_t>(&n)) {
        fits = p.type == DataType::int64 || (static_cast<double>(*i) >= lo && static_cast<double>(*i) <= hi);
        out = *i;
    } else {
        const double d = core::number_of(n);
        if (std::isfinite(d) && d != std::trunc(d)) {
            *why = "not a whole number: " + describe(n) + " given, point " + p.name + " (" + to_string(p.type) +
                   ") takes whole numbers";
            return std::nullopt;
        }
        // (a number past 64 bits arrives as a double: 2^64 would convert to nothing sensible)
        constexpr double kTwo63 = 9223372036854775808.0;
        fits = std::isfinite(d) && d >= lo && d <= hi && d >= -kTwo63 && d < 2 * kTwo63;
        if (fits) {
            out = d < 0 ? core::Value(static_cast<std::int64_t>(d)) : core::Value(static_cast<std::uint64_t>(d));
        }
    }
    const bool is_unsigned = p.type == DataType::uint16 || p.type == DataType::uint32 || p.type == DataType::uint64 ||
                             p.type == DataType::bcd;
    if (fits && is_unsigned) {
        if (const auto* i = std::get_if<std::int64_t>(&out)) {
            fits = *i >= 0;
            out = static_cast<std::uint64_t>(*i);
        }
    } else if (fits && !is_unsigned) {
        if (const auto* u = std::get_if<std::uint64_t>(&out)) {
            fits = *u <= INT64_MAX;
            out = static_cast<std::int64_t>(*u);
        }
    }
    const double x = core::number_of(out);
    if (!fits || (p.min && x < *p.min) || (p.max && x > *p.max)) {
        const auto [rlo, rhi] = write_range(p);
        *why = "out of range: " + describe(n) + " given, point " + p.name + " takes " + fmt_number(rlo) + ".." +
               fmt_number(rhi);
        return std::nullopt;
    }
    return out;
}

}  // namespace

std::pair<double, double> write_range(const PointConfig& p) {
    auto [lo, hi] = raw_range(p.type);
    if (p.type == DataType::boolean || p.type == DataType::string) return {0.0, 0.0};
    lo = lo * p.scale + p.offset;
    hi = hi * p.scale + p.offset;
    if (lo > hi) std::swap(lo, hi);
    if (p.min) lo = std::max(lo, *p.min);
    if (p.max) hi = std::min(hi, *p.max);
    return {lo, hi};
}

core::Value value_from_text(const std::string& text) {
    if (text == "true") return true;
    if (text == "false") return false;
    const char* b = text.data();
    const char* e = b + text.size();
    if (!text.empty() && text[0] != '+') {
        std::int64_t i = 0;
        if (auto r = std::from_chars(b, e, i); r.ec == std::errc() && r.ptr == e) return i;
        std::uint64_t u = 0;
        if (auto r = std::from_chars(b, e, u); r.ec == std::errc() && r.ptr == e) return u;
        double d = 0;
        if (auto r = std::from_chars(b, e, d); r.ec == std::errc() && r.ptr == e && std::isfinite(d)) return d;
    }
    return text;
}

std::string describe(const core::Value& v) {
    return std::visit(
        [](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::string>) {
                return "\"" + x.substr(0, 40) + (x.size() > 40 ? "...\"" : "\"");
            } else if constexpr (std::is_same_v<T, bool>) {
                return x ? "true" : "false";
            } else if constexpr (std::is_same_v<T, double>) {
                return fmt_number(x);
            } else {
                return std::to_string(x);
            }
        },
        v);
}

const PointConfig* point_with_command(const DeviceConfig& d, const std::string& name) {
    for (const auto& p : d.points) {
        for (const auto& c : p.commands) {
            if (c.name == name) return &p;
        }
    }
    return nullptr;
}

std::optional<core::Value> accept_write(const PointConfig& p, const core::Value& requested, std::string* why) {
    if (!p.writable || p.link) {
        *why = "point " + p.name + " is not writable";
        return std::nullopt;
    }
    const core::Value* v = &requested;
    if (const auto* s = std::get_if<std::string>(v)) {
        for (const auto& c : p.commands) {
            if (c.name == *s) v = &c.value;
        }
    }
    if (p.type == DataType::boolean) return accept_bool(*v, why);
    if (p.type == DataType::string) {
        const auto* s = std::get_if<std::string>(v);
        if (!s) {
            *why = "type mismatch: " + describe(*v) + " given, point " + p.name + " takes text";
            return std::nullopt;
        }
        if (s->find('\0') != std::string::npos) {
            *why = "text with a NUL character given, point " + p.name +
                   " takes text without NUL (the registers are padded with NUL: it would cut the text short)";
            return std::nullopt;
        }
        if (s->size() > static_cast<std::size_t>(p.length) * 2) {
            *why = "out of range: text of " + std::to_string(s->size()) + " bytes given, point " + p.name +
                   " holds at most " + std::to_string(p.length * 2);
            return std::nullopt;
        }
        return *s;
    }
    auto n = as_number(*v);
    if (!n) {
        *why = "type mismatch: " + describe(*v) + " given, point " + p.name + " (" + to_string(p.type) +
               ") takes a number";
        return std::nullopt;
    }
    if (is_integer_type(p.type) && p.scale == 1.0 && p.offset == 0.0) return accept_whole(p, *n, why);
    const double d = core::number_of(*n);
    const auto [lo, hi] = write_range(p);
    if (!std::isfinite(d) || d < lo || d > hi) {
        *why = "out of range: " + describe(*n) + " given, point " + p.name + " takes " + fmt_number(lo) + ".." +
               fmt_number(hi);
        return std::nullopt;
    }
    return d;
}

}  // namespace fieldlink::config
