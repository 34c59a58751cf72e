#include "platforms/json.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>

namespace fieldlink::platforms {
namespace {

struct ValueWriter {
    std::string& out;
    void operator()(bool b) const { out += b ? "true" : "false"; }
    void operator()(std::int64_t i) const { fmt::format_to(std::back_inserter(out), "{}", i); }
    void operator()(std::uint64_t u) const { fmt::format_to(std::back_inserter(out), "{}", u); }
    void operator()(double d) const {
        if (!std::isfinite(d)) out += "null";  // JSON has no NaN/Inf
        // 15 significant digits: exact for every decoded integer and float32, and it hides the
        // binary noise of scaling (101 * 0.1 prints as 10.1, not 10.100000000000001).
        else fmt::format_to(std::back_inserter(out), "{:.15g}", d);
    }
    void operator()(const std::string& s) const { append_json_string(out, s); }
};

}  // namespace

void append_json_string(std::string& out, const std::string& s) {
    out += nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void append_json_value(std::string& out, const core::Value& v) { std::visit(ValueWriter{out}, v); }

std::string expand_template(const std::string& tmpl, const config::DeviceConfig& d, const core::SampleBatch& b,
                            const core::PointValue* point) {
    std::string out;
    out.reserve(tmpl.size() + 64);
    for (std::size_t i = 0; i < tmpl.size();) {
        if (tmpl[i] != '{') {
            out += tmpl[i++];
            continue;
        }
        // A variable is {name} with name in [a-z_]; any other brace is literal (JSON templates).
        std::size_t close = i + 1;
        while (close < tmpl.size() && (std::islower(static_cast<unsigned char>(tmpl[close])) || tmpl[close] == '_')) ++close;
        if (close >= tmpl.size() || tmpl[close] != '}' || close == i + 1) {
            out += tmpl[i++];
            continue;
        }
        const std::string var = tmpl.substr(i + 1, close - i - 1);
        if (var == "device") out += d.name;
        else if (var == "ts_ms") out += std::to_string(b.timestamp_ms);
        else if (var == "ts") out += std::to_string(b.timestamp_ms / 1000);
        else if (var == "point" && point) out += d.points[point->point_index].name;
        else if (var == "value" && point) append_json_value(out, point->value);
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

}  // namespace fieldlink::platforms
