// YAML text to Config: declared tables per section, then the generic cross-field rules
// (validate.cpp). Platform rules (daemon/platforms/) and driver options (the plugins) are later
// stages; the daemon runs all of them through fieldlink::load_config (daemon/load.hpp).
#pragma once

#include <string>
#include <vector>

#include "config.hpp"

namespace fieldlink::config {

struct ParseResult {
    Config config;
    std::vector<ConfigError> errors;
    bool structure_ok = false;  // every section read through its table (later stages may run)
    bool ok() const { return errors.empty(); }
};

// `file` is used in messages only.
ParseResult parse_text(const std::string& text, const std::string& file);
// A configuration split over files: the main one and fragments (conf.d/*.yaml, in the order
// given) with clouds, buses, templates and devices, merged; a name defined twice is an error that
// gives both positions. Messages name the file each position is in.
struct Fragment {
    std::string path;
    std::string text;
};
ParseResult parse_files(const std::string& text, const std::string& file, const std::vector<Fragment>& fragments);
// The keys every cloud takes, whatever its platform (the rest are the platforms' own keys).
std::vector<const char*> cloud_keys();
// The generic rules: references, names, point shapes, storage (called by parse_text).
void validate(Config& cfg, std::vector<ConfigError>& errors);
// Reads a whole file; false when it cannot be opened.
// A configuration file is read up to this size; a larger one is refused (`why` says so).
constexpr std::uint64_t kMaxConfigBytes = 4U << 20;
// The file's text; false with `why` (cannot open, too large).
bool read_file(const std::string& path, std::string& text, std::string* why = nullptr);

}  // namespace fieldlink::config
