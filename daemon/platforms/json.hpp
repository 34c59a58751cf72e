// JSON for platforms: writing values and strings fast and without exceptions (devices send
// invalid UTF-8), templates, and reading platform messages leniently (ids that may be strings or
// numbers, no exceptions).
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "core/value.hpp"
#include "north/profile.hpp"

namespace fieldlink::platforms {

// A JSON value: numbers with 15 significant digits (exact for every decoded integer and
// float32, without the binary noise of scaling), NaN/Inf as null.
void append_json_value(std::string& out, const core::Value& v);
// A JSON string literal; invalid UTF-8 becomes U+FFFD instead of an exception.
void append_json_string(std::string& out, const std::string& s);

// Expands {device} {point} {value} {values} {ts} {ts_ms} (`point` may be null); any other
// brace is kept as written, so JSON templates work.
std::string expand_template(const std::string& tmpl, const config::DeviceConfig& d, const core::SampleBatch& b,
                            const core::PointValue* point);

// Points reported as events (the platform's events; telemetry where a platform has none) and as
// client attributes (ThingsBoard; properties elsewhere). See config::Report.
inline bool is_event(const config::DeviceConfig& d, const core::PointValue& pv) {
    return d.points[pv.point_index].report == config::Report::event;
}
inline bool is_attribute(const config::DeviceConfig& d, const core::PointValue& pv) {
    return d.points[pv.point_index].report == config::Report::attribute;
}
// Whether a batch carries anything but events (properties, attributes).
inline bool has_properties(const config::DeviceConfig& d, const core::SampleBatch& b) {
    return std::any_of(b.values.begin(), b.values.end(), [&](const core::PointValue& pv) { return !is_event(d, pv); });
}
// The events a batch carries: each event's identifier and its values (positions in b.values), in
// the order the events first appear.
using EventValues = std::vector<std::pair<std::string, std::vector<std::size_t>>>;
EventValues events_of(const config::DeviceConfig& d, const core::SampleBatch& b);
// {"point":value,...}: an event's parameters.
void append_event_params(std::string& out, const config::DeviceConfig& d, const core::SampleBatch& b,
                         const std::vector<std::size_t>& values);

using Json = nlohmann::json;

// Messages from outside nest at most this deep: no platform's command needs more than a few
// levels, and a parsed value is copied and serialised recursively (100,000 levels of [[[...]]],
// 200 KB, overflowed the north thread's stack).
constexpr int kMaxJsonDepth = 32;
// The deepest nesting of [ and { in a JSON text, outside strings (counting stops past `limit`).
int json_depth(std::string_view text, int limit);
// Parses a message from outside: discarded (is_discarded()) when it is not JSON or nests deeper
// than kMaxJsonDepth.
inline Json parse_json(const std::string& text) {
    Json j(Json::value_t::discarded);
    if (json_depth(text, kMaxJsonDepth) <= kMaxJsonDepth) j = Json::parse(text, nullptr, false);
    return j;
}

// nullopt for anything that is not a JSON object (or nests too deep).
inline std::optional<Json> parse_object(const std::string& payload) {
    Json j = parse_json(payload);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    return j;
}

// The request id as text ("123" or 123), or nullopt when absent or of another type.
inline std::optional<std::string> id_of(const Json& j, const char* key = "id") {
    auto it = j.find(key);
    if (it == j.end()) return std::nullopt;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number_integer()) return std::to_string(it->get<long long>());
    return std::nullopt;
}

inline std::string text_of(const Json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

inline std::optional<long long> int_of(const Json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) return std::nullopt;
    return it->get<long long>();
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The platform's answer to request `id`: its outcome, and unless accepted the reason as the
// platform gave it ("code 309 identifier not exist", `code_key` and `text_key` naming its fields).
inline north::Answer make_answer(const std::string& id, const Json& j, north::Answer::Outcome outcome,
                                 const char* code_key, const char* text_key) {
    north::Answer a;
    a.id = id;
    a.outcome = outcome;
    if (outcome != north::Answer::Outcome::accepted) {
        const auto code = int_of(j, code_key);
        a.reason = std::string(code_key) + " " + std::to_string(code.value_or(-1)) + " " + text_of(j, text_key);
    }
    return a;
}

// ---- writes from the platform -----------------------------------------------------------------

// At most this many points per write (OneNET: 50 per property set).
constexpr std::size_t kMaxWriteValues = 50;

// A JSON value as a sample value (numbers keep integer precision); arrays and objects become
// their text, which no point accepts.
core::Value value_of(const Json& j);

// {"point": value, ...}: every point known, writable, and its value accepted
// (config::accept_write), in name order. False with `why` naming the first problem, and then
// nothing is added to `out`: a write is accepted whole or refused whole.
bool writes_of(const config::DeviceConfig& d, const Json& params, std::vector<core::PointValue>& out, std::string* why);

// A command of a simple device (OneNET datapoints, legacy $creq, generic MQTT): a JSON object of
// points and values (its "id", when the device has no such point, is the request id), a command
// name of one of the device's points ("on", or "\"on\"" as JSON), or `point=value`. False with
// `why` for anything else. In an object, "ts" (when the device has no such point) is when the
// sender issued it, Unix ms (`requested`). `sets_state`: the command sets values (an object,
// point=value), as opposed to a command name, an action.
bool plain_command(const config::DeviceConfig& d, const std::string& payload, std::vector<core::PointValue>& out,
                   std::string* id, std::string* why, std::optional<std::int64_t>* requested = nullptr,
                   bool* sets_state = nullptr);

// {"point":value,...} of `values` (e.g. the values read back after a write).
std::string point_values_json(const config::DeviceConfig& d, const std::vector<core::PointValue>& values);

// Serialises without throwing on invalid UTF-8.
inline std::string dump(const Json& j) {
    return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// A configuration pushed on a channel: a JSON object {"config": "<YAML>", "file":
// "conf.d/NAME.yaml" (optional: the main file), "id": ... (optional)}, or a JSON string holding the
// main file's YAML. Anything else is a push with `problem` set (it is refused and reported).
north::ConfigPush config_push_of(const Json& v);
// A diagnostics request: {"request": "read_registers", "device": .., "area": "holding",
// "address": N, "count": N} | {"request": "log", "lines": N} | {"request": "bus_stats"}; anything
// else is a request with `problem` set (refused with it).
north::DiagRequest diag_request_of(const Json& params);
// A diagnostics answer as JSON: {"ok": true, "result": <the result>} or {"ok": false, "error": ..}.
Json diag_answer_json(bool ok, const std::string& result);
// The report as a JSON object with `prefix` before each key ("fieldlink_config_" for ThingsBoard
// attributes, "" for a generic MQTT state topic): id, file, version, result, error, running, ts.
Json config_report_json(const north::ConfigReport& r, const std::string& prefix);

}  // namespace fieldlink::platforms
