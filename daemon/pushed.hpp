// Configuration pushed from a platform (a cloud with `remote_config: true`): where it may go,
// what it may not contain, how it is written, and the versions and last result kept on disk.
// The daemon's main thread checks, writes, applies and rolls back (app.cpp); the platforms carry
// it (north::ConfigPush) and report what became of it (north::ConfigReport).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "north/profile.hpp"

namespace fieldlink::pushed {

// The file a push replaces: "" or the main file's own name: the main file; "conf.d/NAME.yaml"
// (or .yml; NAME of letters, digits, _ . -, not starting with a dot): that fragment beside the
// main file. nullopt with `why` for anything else (no other directory is ever written).
std::optional<std::string> target_of(const std::string& main_file, const std::string& file, std::string* why);

// Secrets written out in a pushed text: a cloud's password and product_key, a device's key and
// product_key, a ThingsBoard cloud's username (its access token). Each must be a reference
// (`${ENV}`, `key_file:`): a configuration that travelled through the platform must not carry
// them. One error per literal, with its position in `file`.
std::vector<config::ConfigError> literal_secrets(const std::string& text, const std::string& file);

// Writes `text` to `path` so that a reader (or a power cut) sees the old file or the new one,
// never a part: a temporary file beside it, rename; with `durable`, fsync of the file before the
// rename and of the directory after (a power cut keeps the new one). The mode of the file it
// replaces is kept (0640 for a new one).
bool write_atomic(const std::string& path, const std::string& text, std::string* why, bool durable = true);

// "sha256:<hex>" of a text (the version of a pushed file).
std::string version_of(const std::string& text);
// The version of the configuration on disk as it is loaded: the main file and each conf.d
// fragment, by name ("" when the main file cannot be read).
std::string running_version(const std::string& main_file);

// data_dir/config-history: the last `keep` versions written by pushes (each the replaced file's
// previous text and the pushed one, named <unix ms>-<what>-<file>), and state.json: the last
// push's report, sent again after every connection and every restart.
class History {
  public:
    History(std::string dir, std::size_t keep) : dir_(std::move(dir)), keep_(keep) {}
    const std::string& dir() const { return dir_; }
    // Saves one version (`what`: "before" or "pushed") and removes the oldest beyond `keep` pairs.
    // Not synced: the versions are a record, a rollback uses the text kept in memory.
    bool save(const std::string& what, const std::string& file, const std::string& text, std::string* why);
    // The files kept, oldest first (tests, the status page).
    std::vector<std::string> files() const;
    bool save_state(const north::ConfigReport& r, std::string* why);
    std::optional<north::ConfigReport> load_state() const;

  private:
    std::string dir_;
    std::size_t keep_;
};

}  // namespace fieldlink::pushed
