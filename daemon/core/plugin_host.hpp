// Loads driver plugins (dlopen), negotiates the ABI version, validates bus options against the
// options each driver declares, and wraps a driver instance.
#pragma once

#include <fieldlink/driver.h>

#include <memory>
#include <string>
#include <vector>

#include "config.hpp"

namespace fieldlink::core {

struct LoadedPlugin {
    std::string path;
    void* handle = nullptr;
    const fl_driver_v1* table = nullptr;
};

class PluginRegistry {
public:
    PluginRegistry() = default;
    ~PluginRegistry();
    PluginRegistry(const PluginRegistry&) = delete;
    PluginRegistry& operator=(const PluginRegistry&) = delete;

    // Loads one plugin. Returns false with `error` set when it cannot be used.
    bool load_file(const std::string& path, std::string* error);
    // Loads every fl_*.so in `dir`; messages for refused plugins are appended to `errors`.
    void load_dir(const std::string& dir, std::vector<std::string>& errors);
    // Registers a driver table linked into the executable (tests).
    void add_static(const fl_driver_v1* table);

    const fl_driver_v1* find(const std::string& driver_name) const;
    std::string driver_names() const;

    // Checks each bus's driver and options; on success replaces bus.options by the full,
    // canonical option set (defaults filled in) and fills cost-model fields (baud).
    void validate_buses(Config& cfg, std::vector<ConfigError>& errors) const;

private:
    std::vector<LoadedPlugin> plugins_;
};

// The plugin directory to use: explicit > $FIELDLINK_PLUGIN_DIR > build dir > install dir.
std::string default_plugin_dir();

// One driver instance (one bus). Not thread-safe except interrupt().
class DriverInstance {
public:
    static std::unique_ptr<DriverInstance> create(const fl_driver_v1* table, const BusConfig& bus,
                                                  std::string* error);
    ~DriverInstance();
    DriverInstance(const DriverInstance&) = delete;
    DriverInstance& operator=(const DriverInstance&) = delete;

    fl_status open(fl_error_v1* err);
    fl_status read(fl_read_v1* req, fl_error_v1* err);
    fl_status write(const fl_write_v1* req, fl_error_v1* err);
    void interrupt();
    void close();

private:
    DriverInstance(const fl_driver_v1* t, void* h) : table_(t), handle_(h) {}
    const fl_driver_v1* table_;
    void* handle_;
};

}  // namespace fieldlink::core
