#include "platforms/json.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <iterator>

#include "config/writes.hpp"

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

core::Value value_of(const Json& j) {
    if (j.is_boolean()) return j.get<bool>();
    if (j.is_number_unsigned()) return j.get<std::uint64_t>();
    if (j.is_number_integer()) return j.get<std::int64_t>();
    if (j.is_number_float()) return j.get<double>();
    if (j.is_string()) return j.get<std::string>();
    return dump(j);
}

bool writes_of(const config::DeviceConfig& d, const Json& params, std::vector<core::PointValue>& out,
               std::string* why) {
    if (!params.is_object() || params.empty()) {
        *why = "expected an object of points and values, like {\"setpoint\": 20.5}";
        return false;
    }
    if (params.size() > kMaxWriteValues) {
        *why = "at most " + std::to_string(kMaxWriteValues) + " points per write";
        return false;
    }
    std::vector<core::PointValue> accepted;  // all or nothing: one bad point refuses the write
    for (const auto& item : params.items()) {
        const std::string& name = item.key();
        const Json& value = item.value();
        auto p = std::find_if(d.points.begin(), d.points.end(), [&](const auto& pt) { return pt.name == name; });
        if (p == d.points.end()) {
            *why = "unknown point '" + name.substr(0, 64) + "' on device " + d.name;
            return false;
        }
        auto v = config::accept_write(*p, value_of(value), why);
        if (!v) return false;
        accepted.push_back({static_cast<std::uint32_t>(p - d.points.begin()), std::move(*v)});
    }
    out.insert(out.end(), std::make_move_iterator(accepted.begin()), std::make_move_iterator(accepted.end()));
    return true;
}

int json_depth(std::string_view text, int limit) {
    int depth = 0, deepest = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') {
                ++i;  // the escaped character, whatever it is
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
            if (deepest > limit) return deepest;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return deepest;
}

bool plain_command(const config::DeviceConfig& d, const std::string& payload, std::vector<core::PointValue>& out,
                   std::string* id, std::string* why, std::optional<std::int64_t>* requested, bool* sets_state) {
    std::string text = payload;
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    if (json_depth(text, kMaxJsonDepth) > kMaxJsonDepth) {
        *why = "the command nests deeper than " + std::to_string(kMaxJsonDepth) + " levels";
        return false;
    }
    const Json j = parse_json(text);
    if (!j.is_discarded() && j.is_object()) {
        Json params = j;
        const bool has_id_point =
            std::any_of(d.points.begin(), d.points.end(), [](const auto& p) { return p.name == "id"; });
        if (!has_id_point && j.contains("id")) {
            if (auto i = id_of(j)) *id = *i;
            params.erase("id");
        }
        const bool has_ts_point =
            std::any_of(d.points.begin(), d.points.end(), [](const auto& p) { return p.name == "ts"; });
        if (!has_ts_point && j.contains("ts")) {
            const Json& ts = j["ts"];
            if (!ts.is_number_integer() || ts.get<std::int64_t>() <= 0) {
                *why = "\"ts\" is when the command was issued: expected Unix milliseconds (an integer)";
                return false;
            }
            if (requested) *requested = ts.get<std::int64_t>();
            params.erase("ts");
        }
        if (sets_state) *sets_state = true;
        return writes_of(d, params, out, why);
    }
    if (!j.is_discarded() && j.is_string()) text = j.get<std::string>();
    if (const auto* p = config::point_with_command(d, text)) {
        auto v = config::accept_write(*p, text, why);
        if (!v) return false;
        out.push_back({static_cast<std::uint32_t>(p - d.points.data()), std::move(*v)});
        return true;
    }
    if (const auto eq = text.find('='); eq != std::string::npos && eq > 0) {
        Json params = Json::object();
        params[text.substr(0, eq)] = text.substr(eq + 1);
        if (sets_state) *sets_state = true;
        return writes_of(d, params, out, why);
    }
    *why = "expected a command name of device " + d.name + ", point=value, or a JSON object of points; got '" +
           text.substr(0, 40) + "'";
    return false;
}

std::string point_values_json(const config::DeviceConfig& d, const std::vector<core::PointValue>& values) {
    std::string out = "{";
    for (const auto& pv : values) {
        if (out.size() > 1) out += ',';
        append_json_string(out, d.points[pv.point_index].name);
        out += ':';
        append_json_value(out, pv.value);
    }
    return out + "}";
}

north::ConfigPush config_push_of(const Json& v) {
    north::ConfigPush p;
    if (v.is_string()) {
        p.text = v.get<std::string>();
        return p;
    }
    constexpr const char* kExpected =
        R"(expected the configuration's YAML as a text, or {"config": "<YAML>", "file": "conf.d/NAME.yaml", "id": ...})";
    if (!v.is_object()) {
        p.problem = std::string("a pushed configuration must be a JSON text or object; ") + kExpected;
        return p;
    }
    p.id = id_of(v).value_or("");
    const auto config = v.find("config");
    const auto file = v.find("file");
    if (config == v.end() || !config->is_string()) {
        p.problem = std::string("\"config\" is missing or not a text; ") + kExpected;
    } else if (file != v.end() && !file->is_string()) {
        p.problem = std::string("\"file\" is not a text; ") + kExpected;
    } else {
        p.text = config->get<std::string>();
        if (file != v.end()) p.file = file->get<std::string>();
    }
    return p;
}

north::DiagRequest diag_request_of(const Json& params) {
    north::DiagRequest q;
    constexpr const char* kExpected =
        R"(expected {"request": "read_registers", "device": NAME, "area": "holding", "address": N, "count": N}, )"
        R"({"request": "log", "lines": N} or {"request": "bus_stats"})";
    if (!params.is_object()) {
        q.problem = std::string("a diagnostics request must be a JSON object; ") + kExpected;
        return q;
    }
    q.what = text_of(params, "request");
    if (q.what != "read_registers" && q.what != "log" && q.what != "bus_stats") {
        q.problem = "unknown request '" + q.what.substr(0, 64) + "'; " + kExpected;
        return q;
    }
    q.device = text_of(params, "device");
    q.area = params.contains("area") ? text_of(params, "area") : "holding";
    const auto number = [&](const char* key, std::int64_t fallback) {
        const auto it = params.find(key);
        if (it == params.end()) return fallback;
        return it->is_number_integer() ? it->get<std::int64_t>() : std::int64_t{-1};
    };
    q.address = number("address", -1);
    q.count = number("count", 1);
    q.lines = number("lines", 50);
    if (q.what == "log" && q.lines < 0) q.problem = "lines: expected a whole number 0..50";
    return q;
}

Json diag_answer_json(bool ok, const std::string& result) {
    if (!ok) return Json{{"ok", false}, {"error", result}};
    return Json{{"ok", true}, {"result", Json::parse(result, nullptr, false)}};
}

Json config_report_json(const north::ConfigReport& r, const std::string& prefix) {
    Json j = Json::object();
    if (!r.id.empty()) j[prefix + "id"] = r.id;
    j[prefix + "file"] = r.file;
    j[prefix + "version"] = r.version;
    j[prefix + "result"] = r.result;
    j[prefix + "error"] = r.error;
    j[prefix + "running"] = r.running;
    j[prefix + "ts"] = r.at_ms;
    return j;
}

}  // namespace fieldlink::platforms
