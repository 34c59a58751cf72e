// Text helpers shared by the CLI's generators (`fieldlink import`, `fieldlink scan`): ASCII lower
// case for matching names, and a YAML double-quoted scalar for what they write out.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <string>

namespace fieldlink::cli {

inline std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

inline std::string quoted(const std::string& s) {
    YAML::Emitter e;
    e << YAML::DoubleQuoted << s;
    return e.c_str();
}

}  // namespace fieldlink::cli
