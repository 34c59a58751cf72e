#include "platforms/json.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

namespace fieldlink::platforms {
namespace {

struct ValueWriter {
    std::string& out;
    void operator()(bool b) const { out += b ? "true" : "false"; }
    void operator()(std::int64_t i) const { digits(i); }
    void operator()(std::uint64_t u) const { digits(u); }
    void operator()(double d) const {
        if (!std::isfinite(d)) {
            out += "null";  // JSON has no NaN/Inf
            return;
        }
        // 15 significant digits: exact for every decoded integer and float32, and it hides the
        // binary noise of scaling (101 * 0.1 prints as 10.1, not 10.100000000000001).
        char buf[32];
        const auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::general, 15);
        out.append(buf, r.ptr);
    }
    template <typename I>
    void digits(I v) const {
        char buf[24];
        const auto r = std::to_chars(buf, buf + sizeof buf, v);
        out.append(buf, r.ptr);
    }
    void operator()(const std::string& s) const { append_json_string(out, s); }
};

}  // namespace

void append_json_string(std::string& out, const std::string& s) {
    // Most strings (point and device names) are printable ASCII with nothing to escape.
    const bool plain = std::all_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u >= 0x20 && u < 0x80 && c != '"' && c != '\\';
    });
    if (plain) {
        out += '"';
        out += s;
        out += '"';
        return;
    }
    out += nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void append_json_value(std::string& out, const core::Value& v) {
    std::visit(ValueWriter{out}, v);
}

std::string expand_template(const std::string& tmpl, const config::DeviceConfig& d, const core::SampleBatch& b,
                            const core::PointValue* point) {
    std::string out;
    out.reserve(tmpl.size() + 64 + (tmpl.find("{values}") != std::string::npos ? b.values.size() * 24 : 0));
    for (std::size_t i = 0; i < tmpl.size();) {
        if (tmpl[i] != '{') {
            out += tmpl[i++];
            continue;
        }
        // A variable is {name} with name in [a-z_]; any other brace is literal (JSON templates).
        std::size_t close = i + 1;
        while (close < tmpl.size() && (std::islower(static_cast<unsigned char>(tmpl[close])) || tmpl[close] == '_'))
            ++close;
        if (close >= tmpl.size() || tmpl[close] != '}' || close == i + 1) {
            out += tmpl[i++];
            continue;
        }
        const std::string var = tmpl.substr(i + 1, close - i - 1);
        if (var == "device")
            out += d.name;
        else if (var == "ts_ms")
            out += std::to_string(b.timestamp_ms);
        else if (var == "ts")
            out += std::to_string(b.timestamp_ms / 1000);
        else if (var == "point" && point)
            out += d.points[point->point_index].name;
        else if (var == "value" && point)
            append_json_value(out, point->value);
        else if (var == "values") {
            out += '{';
            for (std::size_t k = 0; k < b.values.size(); ++k) {
                if (k) out += ',';
                append_json_string(out, d.points[b.values[k].point_index].name);
                out += ':';
                append_json_value(out, b.values[k].value);
            }
            out += '}';
        } else {
            out += tmpl.substr(i, close - i + 1);  // unknown variable: kept as written
        }
        i = close + 1;
    }
    return out;
}

EventValues events_of(const config::DeviceConfig& d, const core::SampleBatch& b) {
    EventValues out;
    for (std::size_t i = 0; i < b.values.size(); ++i) {
        if (!is_event(d, b.values[i])) continue;
        const std::string& name = d.points[b.values[i].point_index].event_name();
        auto it = std::find_if(out.begin(), out.end(), [&](const auto& e) { return e.first == name; });
        if (it == out.end()) {
            out.emplace_back(name, std::vector<std::size_t>{});
            it = out.end() - 1;
        }
        it->second.push_back(i);
    }
    return out;
}

void append_event_params(std::string& out, const config::DeviceConfig& d, const core::SampleBatch& b,
                         const std::vector<std::size_t>& values) {
    out += '{';
    for (std::size_t k = 0; k < values.size(); ++k) {
        if (k) out += ',';
        const auto& pv = b.values[values[k]];
        append_json_string(out, d.points[pv.point_index].name);
        out += ':';
        append_json_value(out, pv.value);
    }
    out += '}';
}

}  // namespace fieldlink::platforms
