// `fieldlink import`: a site's register maps from another gateway, as a draft fieldlink
// configuration: the ThingsBoard IoT Gateway's Modbus connector (JSON) and EMQX Neuron's tag
// export (CSV). What cannot be carried over is reported by file position, never guessed.
#pragma once

#include <string>
#include <vector>

namespace fieldlink::cli {

struct ImportResult {
    std::string yaml;                 // clouds:, buses: and devices: of what could be imported
    std::vector<std::string> errors;  // "file:line:column: what" or "file: json path: what"
    int devices = 0;
    int points = 0;
};

// `text` read from `file` (named in messages); `cloud`: the cloud the devices publish to.
ImportResult import_thingsboard(const std::string& text, const std::string& file, const std::string& cloud);
ImportResult import_neuron(const std::string& text, const std::string& file, const std::string& cloud);

// The command: reads FILE, writes the YAML to stdout (or OUT), the errors to stderr. Exit status
// 0, or 2 when something was refused (what could be imported is still written).
int run_import(const std::string& format, const std::string& file, const std::string& out, const std::string& cloud);

}  // namespace fieldlink::cli
