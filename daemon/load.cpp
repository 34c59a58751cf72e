#include "load.hpp"

#include "config/parser.hpp"
#include "platforms/platform.hpp"

namespace fieldlink {

Loaded load_config_text(const std::string& text, const std::string& file, const bus::PluginRegistry* plugins) {
    auto parsed = config::parse_text(text, file);
    Loaded out{std::move(parsed.config), std::move(parsed.errors)};
    if (!parsed.structure_ok) return out;
    platforms::validate(out.config, out.errors);
    if (plugins) plugins->validate_buses(out.config, out.errors);
    return out;
}

Loaded load_config_file(const std::string& path, const bus::PluginRegistry* plugins) {
    std::string text;
    if (!config::read_file(path, text)) {
        Loaded out;
        out.config.file = path;
        out.errors.push_back(config::ConfigError{{}, "", "cannot open the configuration file"});
        return out;
    }
    return load_config_text(text, path, plugins);
}

}  // namespace fieldlink
