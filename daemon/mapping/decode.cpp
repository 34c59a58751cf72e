#include "decode.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <variant>

namespace fieldlink::mapping {
namespace {

bool swaps_bytes(WordOrder o) {
    return o == WordOrder::badc || o == WordOrder::dcba;
}
bool swaps_words(WordOrder o) {
    return o == WordOrder::cdab || o == WordOrder::dcba;
}

std::uint64_t be_value(const std::uint8_t* bytes, int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | bytes[i];
    return v;
}

// The double nearest to the shortest decimal that identifies `f` (0.1f -> 0.1, not
// 0.100000001490116), so float32 values publish as the device meant them.
double float_as_decimal(float f) {
    if (!std::isfinite(f)) return static_cast<double>(f);
    char buf[32];
    const auto res = std::to_chars(buf, buf + sizeof buf, f);
    auto d = static_cast<double>(f);
    std::from_chars(buf, res.ptr, d);  // locale-free and about twice as fast as strtod
    return d;
}

Value apply_scale(const PointCodec& c, Value raw) {
    if (c.scale == 1.0 && c.offset == 0.0) return raw;
    double d = 0;
    if (auto* i = std::get_if<std::int64_t>(&raw))
        d = static_cast<double>(*i);
    else if (auto* u = std::get_if<std::uint64_t>(&raw))
        d = static_cast<double>(*u);
    else if (auto* f = std::get_if<double>(&raw))
        d = *f;
    else
        return raw;
    return d * c.scale + c.offset;
}

std::optional<Value> decode_bcd(std::uint16_t word, std::string* error) {
    std::uint64_t v = 0;
    for (int shift = 12; shift >= 0; shift -= 4) {
        unsigned digit = (word >> shift) & 0xFu;
        if (digit > 9) {
            if (error) *error = "invalid BCD digit in register value";
            return std::nullopt;
        }
        v = v * 10 + digit;
    }
    return Value{v};
}

Value decode_string(const std::uint8_t* bytes, int n) {
    std::string s(reinterpret_cast<const char*>(bytes), static_cast<std::size_t>(n));
    auto end = s.find('\0');
    if (end != std::string::npos) s.resize(end);
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

}  // namespace

void registers_to_bytes(const std::uint16_t* regs, int words, WordOrder order, std::uint8_t* out) {
    for (int i = 0; i < words; ++i) {
        int src = swaps_words(order) ? words - 1 - i : i;
        std::uint16_t w = regs[src];
        const auto hi = static_cast<std::uint8_t>(w >> 8);
        const auto lo = static_cast<std::uint8_t>(w & 0xFF);
        out[static_cast<std::ptrdiff_t>(2) * i] = swaps_bytes(order) ? lo : hi;
        out[static_cast<std::ptrdiff_t>(2) * i + 1] = swaps_bytes(order) ? hi : lo;
    }
}

Value decode_bit(const PointCodec& codec, std::uint8_t bit) {
    (void)codec;
    return Value{bit != 0};
}

std::optional<Value> decode_registers(const PointCodec& c, const std::uint16_t* regs, std::size_t count,
                                      std::string* error) {
    const int words = register_count(c.type, c.string_length);
    if (words <= 0 || static_cast<std::size_t>(words) > count) {
        if (error) *error = "register image shorter than the type needs";
        return std::nullopt;
    }
    if (c.type == DataType::string) {
        std::string bytes(static_cast<std::size_t>(words) * 2, '\0');
        // Strings keep register order; only the byte order inside a register can swap.
        WordOrder o = swaps_bytes(c.order) ? WordOrder::badc : WordOrder::abcd;
        registers_to_bytes(regs, words, o, reinterpret_cast<std::uint8_t*>(bytes.data()));
        return decode_string(reinterpret_cast<const std::uint8_t*>(bytes.data()), words * 2);
    }
    std::uint8_t b[8] = {};
    registers_to_bytes(regs, words, c.order, b);
    const std::uint64_t raw = be_value(b, words * 2);
    switch (c.type) {
        case DataType::boolean:
            if (c.bit >= 0) return Value{((raw >> c.bit) & 1u) != 0};
            return Value{raw != 0};
        case DataType::int16:
            return apply_scale(c, static_cast<std::int64_t>(static_cast<std::int16_t>(raw)));
        case DataType::uint16:
            return apply_scale(c, std::uint64_t{raw});
        case DataType::int32:
            return apply_scale(c, static_cast<std::int64_t>(static_cast<std::int32_t>(raw)));
        case DataType::uint32:
            return apply_scale(c, std::uint64_t{raw});
        case DataType::int64:
            return apply_scale(c, static_cast<std::int64_t>(raw));
        case DataType::uint64:
            return apply_scale(c, std::uint64_t{raw});
        case DataType::float32: {
            auto u = static_cast<std::uint32_t>(raw);
            float f = 0;
            std::memcpy(&f, &u, sizeof f);
            return apply_scale(c, float_as_decimal(f));
        }
        case DataType::float64: {
            double d = 0;
            std::memcpy(&d, &raw, sizeof d);
            return apply_scale(c, d);
        }
        case DataType::bcd: {
            auto v = decode_bcd(static_cast<std::uint16_t>(raw), error);
            if (!v) return std::nullopt;
            return apply_scale(c, *v);
        }
        case DataType::string:
            break;
    }
    if (error) *error = "unsupported type";
    return std::nullopt;
}

void bytes_to_registers(const std::uint8_t* bytes, int words, WordOrder order, std::uint16_t* regs) {
    for (int i = 0; i < words; ++i) {
        const int dst = swaps_words(order) ? words - 1 - i : i;
        const std::uint8_t a = bytes[static_cast<std::ptrdiff_t>(2) * i];
        const std::uint8_t b = bytes[static_cast<std::ptrdiff_t>(2) * i + 1];
        regs[dst] =
            swaps_bytes(order) ? static_cast<std::uint16_t>(b << 8 | a) : static_cast<std::uint16_t>(a << 8 | b);
    }
}

namespace {

using core::number_of;

// The raw whole number a value stands for: exact for unscaled whole values, else rounded after
// reversing scale and offset. False when it lies outside [lo, hi].
bool raw_whole(const PointCodec& c, const Value& v, std::int64_t lo, std::uint64_t hi, std::uint64_t* bits) {
    if (c.scale == 1.0 && c.offset == 0.0) {
        if (const auto* u = std::get_if<std::uint64_t>(&v)) {
            *bits = *u;
            return *u <= hi;
        }
        if (const auto* i = std::get_if<std::int64_t>(&v)) {
            *bits = static_cast<std::uint64_t>(*i);
            return *i >= lo && (*i < 0 || static_cast<std::uint64_t>(*i) <= hi);
        }
    }
    const double raw = std::nearbyint((number_of(v) - c.offset) / c.scale);
    // 2^64 as a double: anything at or above it does not convert.
    if (!std::isfinite(raw) || raw < static_cast<double>(lo) || raw >= 18446744073709551616.0 ||
        (raw >= 0 && static_cast<std::uint64_t>(raw) > hi)) {
        return false;
    }
    *bits = raw < 0 ? static_cast<std::uint64_t>(static_cast<std::int64_t>(raw)) : static_cast<std::uint64_t>(raw);
    return true;
}

}  // namespace

namespace {

// A value as the raw bits of a numeric point type, after scale and offset; false when it does
// not fit.
bool raw_of(const PointCodec& c, const Value& v, std::uint64_t* raw) {
    switch (c.type) {
        case DataType::boolean:
            *raw = number_of(v) != 0.0 ? 1 : 0;
            return true;
        case DataType::int16:
            return raw_whole(c, v, INT16_MIN, INT16_MAX, raw);
        case DataType::uint16:
            return raw_whole(c, v, 0, UINT16_MAX, raw);
        case DataType::int32:
            return raw_whole(c, v, INT32_MIN, INT32_MAX, raw);
        case DataType::uint32:
            return raw_whole(c, v, 0, UINT32_MAX, raw);
        case DataType::int64:
            return raw_whole(c, v, INT64_MIN, INT64_MAX, raw);
        case DataType::uint64:
            return raw_whole(c, v, 0, UINT64_MAX, raw);
        case DataType::bcd: {
            std::uint64_t n = 0;
            const bool ok = raw_whole(c, v, 0, 9999, &n);
            for (int shift = 0; shift < 16; shift += 4, n /= 10) *raw |= (n % 10) << shift;
            return ok;
        }
        case DataType::float32: {
            const double d = (number_of(v) - c.offset) / c.scale;
            const bool ok = std::isfinite(d) && std::fabs(d) <= static_cast<double>(std::numeric_limits<float>::max());
            const auto f = ok ? static_cast<float>(d) : 0.0f;
            std::uint32_t u = 0;
            std::memcpy(&u, &f, sizeof u);
            *raw = u;
            return ok;
        }
        case DataType::float64: {
            const double d = (number_of(v) - c.offset) / c.scale;
            std::memcpy(raw, &d, sizeof *raw);
            return std::isfinite(d);
        }
        case DataType::string:
            break;
    }
    return true;
}

}  // namespace

bool encode_registers(const PointCodec& c, const Value& v, std::uint16_t* regs, std::string* error) {
    const int words = register_count(c.type, c.string_length);
    std::uint8_t b[250] = {};
    if (c.type == DataType::string) {
        const auto* s = std::get_if<std::string>(&v);
        if (!s || s->size() > static_cast<std::size_t>(words) * 2) {
            if (error) *error = "text does not fit the point's registers";
            return false;
        }
        std::copy(s->begin(), s->end(), b);  // the rest stays zero: the device's padding
        bytes_to_registers(b, words, swaps_bytes(c.order) ? WordOrder::badc : WordOrder::abcd, regs);
        return true;
    }
    std::uint64_t raw = 0;
    if (!raw_of(c, v, &raw)) {
        if (error) *error = "value does not fit the point's raw type after scale and offset";
        return false;
    }
    const int n = words * 2;
    for (int i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(raw >> (8 * (n - 1 - i)));
    bytes_to_registers(b, words, c.order, regs);
    return true;
}

PointCodec codec_of(const config::PointConfig& p) {
    PointCodec c;
    c.type = p.type;
    c.order = p.order;
    c.scale = p.scale;
    c.offset = p.offset;
    c.bit = p.bit;
    c.string_length = p.length;
    return c;
}

std::size_t decode_points(const std::vector<config::PointConfig>& points, const std::vector<std::uint32_t>& which,
                          const Response& r, std::vector<core::PointValue>& out, std::string* first_error) {
    std::size_t failed = 0;
    for (auto pi : which) {
        if (pi >= points.size()) continue;
        const auto& p = points[pi];
        const int off = p.address - r.address;
        if (off < 0 || off + (config::is_bit_area(r.area) ? 1 : p.count()) > r.count) {
            ++failed;  // a plan never does this; a hand-made one must not read out of bounds
            if (first_error && first_error->empty()) *first_error = "point " + p.name + " lies outside the response";
            continue;
        }
        if (config::is_bit_area(r.area)) {
            out.push_back({pi, decode_bit(codec_of(p), r.bits[off])});
            continue;
        }
        std::string err;
        auto v = decode_registers(codec_of(p), r.registers + off, static_cast<std::size_t>(r.count - off), &err);
        if (v) {
            out.push_back({pi, std::move(*v)});
        } else {
            ++failed;
            if (first_error && first_error->empty()) *first_error = "point " + p.name + ": " + err;
        }
    }
    return failed;
}

}  // namespace fieldlink::mapping
