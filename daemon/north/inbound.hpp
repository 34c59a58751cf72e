// Helpers for reading platform messages: lenient JSON parsing without exceptions, ids that may be
// strings or numbers, and standard replies.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace fieldlink::north {

using Json = nlohmann::json;

// nullopt for anything that is not a JSON object.
inline std::optional<Json> parse_object(const std::string& payload) {
    Json j = Json::parse(payload, nullptr, false);
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

// Serialises without throwing on invalid UTF-8.
inline std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

}  // namespace fieldlink::north
