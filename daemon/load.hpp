// Loading a configuration through every stage: YAML and the generic rules (config/), each
// cloud's platform rules (platforms/), and each bus's driver options and unit ranges (the
// driver plugins). Every stage reports all it finds.
#pragma once

#include <string>
#include <vector>

#include "bus/plugin_host.hpp"
#include "config/config.hpp"

namespace fieldlink {

struct Loaded {
    config::Config config;
    std::vector<config::ConfigError> errors;
    bool ok() const { return errors.empty(); }
};

// `plugins` may be null: driver options are then not checked (tools that only need the
// platforms, and the configuration fuzz target).
Loaded load_config_text(const std::string& text, const std::string& file, const bus::PluginRegistry* plugins);
// A file's text to read instead of what is on disk (a configuration pushed from the platform,
// checked before it is written): the main file, or a conf.d fragment that may not exist yet.
struct Replacement {
    std::string path;
    std::string text;
};
Loaded load_config_file(const std::string& path, const bus::PluginRegistry* plugins,
                        const Replacement* instead = nullptr);
// The conf.d fragments beside the main file `path` (conf.d/*.yaml and *.yml, regular files), by
// name: the files load_config_file reads after it.
std::vector<std::string> fragment_files(const std::string& path);

}  // namespace fieldlink
