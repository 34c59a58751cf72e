#pragma once

#include <string>
#include <vector>

#include "config.hpp"

namespace fieldlink::core {

struct ParseResult {
    Config config;
    std::vector<ConfigError> errors;
    bool ok() const { return errors.empty(); }
};

// Parses and validates a configuration (everything but driver options, which need the plugins:
// see PluginRegistry::validate_bus_options). `file` is used in messages only.
ParseResult parse_config_text(const std::string& text, const std::string& file);
ParseResult parse_config_file(const std::string& path);

}  // namespace fieldlink::core
