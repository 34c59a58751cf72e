#include "load.hpp"

#include <algorithm>
#include <filesystem>
#include <memory>

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

std::vector<std::string> fragment_files(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path dir = fs::path(path).parent_path() / "conf.d";
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const auto ext = e.path().extension();
        if ((ext == ".yaml" || ext == ".yml") && e.is_regular_file(ec)) out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

namespace {

// conf.d/*.yaml (and *.yml) beside the main file, by name; an unreadable one is an error.
std::vector<config::Fragment> fragments_beside(const std::string& path, std::vector<config::ConfigError>& errors,
                                               const Replacement* instead) {
    namespace fs = std::filesystem;
    std::vector<config::Fragment> out;
    const fs::path dir = fs::path(path).parent_path() / "conf.d";
    const bool in_dir = instead && fs::path(instead->path).parent_path() == dir;
    std::vector<fs::path> names;
    for (auto& f : fragment_files(path)) {
        if (!in_dir || fs::path(f) != fs::path(instead->path)) names.emplace_back(std::move(f));
    }
    if (in_dir) {  // (where it sorts among them)
        names.emplace_back(instead->path);
        std::sort(names.begin(), names.end());
    }
    for (const auto& n : names) {
        config::Fragment f{n.string(), {}};
        if (in_dir && n == fs::path(instead->path)) {
            f.text = instead->text;
            out.push_back(std::move(f));
            continue;
        }
        std::string why;
        if (!config::read_file(f.path, f.text, &why)) {
            config::Mark at;
            at.file = std::make_shared<const std::string>(f.path);
            errors.push_back(config::ConfigError{
                at, "",
                why == "cannot open the configuration file" ? "cannot open this part of the configuration" : why});
            continue;
        }
        out.push_back(std::move(f));
    }
    return out;
}

}  // namespace

Loaded load_config_file(const std::string& path, const bus::PluginRegistry* plugins, const Replacement* instead) {
    std::string text, why;
    if (instead && instead->path == path) {
        text = instead->text;
    } else if (!config::read_file(path, text, &why)) {
        Loaded out;
        out.config.file = path;
        out.errors.push_back(config::ConfigError{{}, "", why});
        return out;
    }
    std::vector<config::ConfigError> unreadable;
    const auto fragments = fragments_beside(path, unreadable, instead);
    if (fragments.empty() && unreadable.empty()) return load_config_text(text, path, plugins);
    auto parsed = config::parse_files(text, path, fragments);
    Loaded out{std::move(parsed.config), std::move(parsed.errors)};
    out.errors.insert(out.errors.begin(), unreadable.begin(), unreadable.end());
    if (!parsed.structure_ok || !unreadable.empty()) return out;
    platforms::validate(out.config, out.errors);
    if (plugins) plugins->validate_buses(out.config, out.errors);
    return out;
}

}  // namespace fieldlink
