// Loads driver plugins (dlopen), negotiates the ABI version, validates bus options against the
// options each driver declares, asks each driver for its bus-time model, and wraps a driver
// instance with the host services it may use (descriptors below FD_SETSIZE).
#pragma once

#include <fieldlink/driver.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace fieldlink::bus {

struct LoadedPlugin {
    std::string path;
    void* handle = nullptr;
    const fl_driver_v2* table = nullptr;
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
    // Registers a driver table linked into the executable (tests). False when malformed.
    bool add_static(const fl_driver_v2* table, std::string* error = nullptr);

    const fl_driver_v2* find(const std::string& driver_name) const;
    std::string driver_names() const;

    // Checks each bus's driver and options; on success replaces bus.options by the full,
    // canonical option set (defaults filled in) and bus.timing by the driver's model, then
    // checks every device's unit id against its bus's range.
    void validate_buses(config::Config& cfg, std::vector<config::ConfigError>& errors) const;

  private:
    std::vector<LoadedPlugin> plugins_;
};

// The plugin directory to use: explicit > $FIELDLINK_PLUGIN_DIR > build dir > install dir.
std::string default_plugin_dir();

// A counter a driver instance keeps of what only it sees (late replies, dropped frames).
struct DriverCounter {
    std::string name;
    std::uint64_t value = 0;
};

// One driver instance (one bus). Not thread-safe except interrupt() and counters().
class DriverInstance {
  public:
    static std::unique_ptr<DriverInstance> create(const fl_driver_v2* table, const config::BusConfig& bus,
                                                  std::string* error);
    ~DriverInstance();
    DriverInstance(const DriverInstance&) = delete;
    DriverInstance& operator=(const DriverInstance&) = delete;

    fl_status open(fl_error_v2* err);
    fl_status read(fl_read_v2* req, fl_error_v2* err);
    fl_status write(const fl_write_v2* req, fl_error_v2* err);
    void interrupt();
    void close();
    // The driver's own counters (none when the driver keeps none).
    std::vector<DriverCounter> counters() const;

  private:
    DriverInstance(const fl_driver_v2* t, void* h) : table_(t), handle_(h) {}
    const fl_driver_v2* table_;
    void* handle_;
};

// The host services every driver instance gets (descriptor numbers below FD_SETSIZE).
const fl_host_v2* host_services();

}  // namespace fieldlink::bus
