#include "plugin_host.hpp"

#include <dirent.h>
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/duration.hpp"
#include "core/low_fds.hpp"
#include "core/suggest.hpp"

#ifndef FIELDLINK_BUILD_ROOT
#define FIELDLINK_BUILD_ROOT ""
#endif
#ifndef FIELDLINK_BUILD_PLUGIN_DIR
#define FIELDLINK_BUILD_PLUGIN_DIR ""
#endif
#ifndef FIELDLINK_INSTALL_PLUGIN_DIR
#define FIELDLINK_INSTALL_PLUGIN_DIR "/usr/lib/fieldlink/plugins"
#endif

namespace fieldlink::bus {

using config::ConfigError;
using config::DriverOption;
namespace {

constexpr std::uint32_t kHostVersions[] = {FL_DRIVER_ABI_V2};

int host_fd_low(void* ctx, int fd) {
    return static_cast<core::LowFds*>(ctx)->place(fd);
}
int host_fd_release(void* ctx, int fd) {
    return static_cast<core::LowFds*>(ctx)->release(fd);
}

// Everything the host reads of a plugin's tables lies within these sizes.
constexpr std::size_t kMinDriverSize = offsetof(fl_driver_v2, reserved);
constexpr std::size_t kMinOptionSize = offsetof(fl_option_v2, reserved);
constexpr std::size_t kMinModelSize = offsetof(fl_bus_model_v2, reserved);

// Malformed-table reason, or empty when the table is usable.
std::string table_problem(const fl_driver_v2* t) {
    if (t->struct_size < kMinDriverSize || t->abi_version != FL_DRIVER_ABI_V2)
        return "malformed driver table for ABI version 2";
    if (!t->driver_names || !t->create || !t->read || !t->bus_model)
        return "driver table lacks names, create, read or bus_model";
    for (std::size_t i = 0; i < t->option_count; ++i) {
        if (t->options[0].struct_size < kMinOptionSize || !fl_option_at(t->options, i)->key)
            return "malformed option table";
    }
    return {};
}

bool applies_to(const fl_option_v2& o, const std::string& driver) {
    if (!o.drivers) return true;
    std::string list = std::string(" ") + o.drivers + " ";
    return list.find(" " + driver + " ") != std::string::npos;
}

// Canonical text for a declared option, or an error message.
bool canonicalize(const fl_option_v2& o, const std::string& in, std::string& out, std::string& err) {
    switch (o.type) {
        case FL_OPT_STRING:
            out = in;
            return true;
        case FL_OPT_BOOL:
            if (in == "true" || in == "yes" || in == "on")
                out = "true";
            else if (in == "false" || in == "no" || in == "off")
                out = "false";
            else {
                err = "expected true or false";
                return false;
            }
            return true;
        case FL_OPT_INT: {
            char* end = nullptr;
            long long v = std::strtoll(in.c_str(), &end, 10);
            if (in.empty() || *end != '\0') {
                err = "'" + in + "' is not an integer";
                return false;
            }
            if (v < o.min || v > o.max) {
                err = std::to_string(v) + " is out of range; expected " + std::to_string(o.min) + ".." +
                      std::to_string(o.max);
                return false;
            }
            out = std::to_string(v);
            return true;
        }
        case FL_OPT_DURATION: {
            auto d = core::parse_duration(in);
            if (!d) {
                err = "'" + in + "' is not a duration; expected e.g. 300ms, 5s";
                return false;
            }
            if (d->count() < o.min || d->count() > o.max) {
                err =
                    "duration out of range; expected " + std::to_string(o.min) + "ms.." + std::to_string(o.max) + "ms";
                return false;
            }
            out = std::to_string(d->count());
            return true;
        }
        case FL_OPT_ENUM: {
            std::string choices = o.choices ? o.choices : "";
            std::string padded = "|" + choices + "|";
            if (padded.find("|" + in + "|") == std::string::npos) {
                std::replace(choices.begin(), choices.end(), '|', ',');
                err = "unknown value '" + in + "'" + core::did_you_mean(in, core::words(choices)) +
                      "; expected one of: " + choices;
                return false;
            }
            out = in;
            return true;
        }
        default:
            err = "driver declares an unknown option type";
            return false;
    }
}

}  // namespace

PluginRegistry::~PluginRegistry() {
    for (auto& p : plugins_) {
        if (p.handle) dlclose(p.handle);
    }
}

bool PluginRegistry::load_file(const std::string& path, std::string* error) {
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        if (error) *error = "plugin " + path + ": cannot load: " + dlerror();
        return false;
    }
    auto entry = reinterpret_cast<fl_driver_entry_fn>(dlsym(h, FL_DRIVER_ENTRY_SYMBOL));
    if (!entry) {
        if (error) *error = "plugin " + path + ": no entry symbol '" FL_DRIVER_ENTRY_SYMBOL "'; not a fieldlink driver";
        dlclose(h);
        return false;
    }
    std::uint32_t chosen = 0;
    const void* t = entry(kHostVersions, std::size(kHostVersions), &chosen);
    if (!t || chosen != FL_DRIVER_ABI_V2) {
        if (error) {
            *error = "plugin " + path + ": refused: it supports none of the driver ABI versions this host speaks (2)";
            if (t) *error += "; it picked version " + std::to_string(chosen);
        }
        dlclose(h);
        return false;
    }
    const auto* table = static_cast<const fl_driver_v2*>(t);
    if (const std::string problem = table_problem(table); !problem.empty()) {
        if (error) *error = "plugin " + path + ": refused: " + problem;
        dlclose(h);
        return false;
    }
    plugins_.push_back(LoadedPlugin{path, h, table});
    return true;
}

void PluginRegistry::load_dir(const std::string& dir, std::vector<std::string>& errors) {
    DIR* d = opendir(dir.c_str());
    if (!d) {
        errors.push_back("plugin directory " + dir + ": cannot open: " + std::strerror(errno));
        return;
    }
    std::vector<std::string> files;
    while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name.rfind("fl_", 0) == 0 && name.size() > 3 && name.substr(name.size() - 3) == ".so") {
            files.push_back(dir + "/");
            files.back() += name;
        }
    }
    closedir(d);
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
        std::string err;
        if (!load_file(f, &err)) errors.push_back(err);
    }
}

bool PluginRegistry::add_static(const fl_driver_v2* table, std::string* error) {
    if (const std::string problem = table_problem(table); !problem.empty()) {
        if (error)
            *error = "static driver " + std::string(table->plugin_name ? table->plugin_name : "?") + ": " + problem;
        return false;
    }
    plugins_.push_back(LoadedPlugin{"(static)", nullptr, table});
    return true;
}

const fl_driver_v2* PluginRegistry::find(const std::string& driver_name) const {
    for (const auto& p : plugins_) {
        for (const char* const* n = p.table->driver_names; *n; ++n) {
            if (driver_name == *n) return p.table;
        }
    }
    return nullptr;
}

std::string PluginRegistry::driver_names() const {
    std::string out;
    for (const auto& p : plugins_) {
        for (const char* const* n = p.table->driver_names; *n; ++n) out += (out.empty() ? "" : ", ") + std::string(*n);
    }
    return out.empty() ? "(none loaded)" : out;
}

namespace {

std::vector<fl_kv_v2> kv_of(const std::vector<DriverOption>& options) {
    std::vector<fl_kv_v2> kv;
    kv.reserve(options.size());
    for (const auto& o : options) kv.push_back(fl_kv_v2{sizeof(fl_kv_v2), 0, o.key.c_str(), o.value.c_str()});
    return kv;
}

// The declared options of `t` that apply to `driver`, in declaration order.
std::vector<const fl_option_v2*> options_for(const fl_driver_v2* t, const std::string& driver) {
    std::vector<const fl_option_v2*> out;
    for (std::size_t i = 0; i < t->option_count; ++i) {
        const fl_option_v2* o = fl_option_at(t->options, i);
        if (applies_to(*o, driver)) out.push_back(o);
    }
    return out;
}

// Validates the given options of one bus into canonical ones (defaults filled in).
bool canonical_options(const fl_driver_v2* t, config::BusConfig& bus, std::vector<ConfigError>& errors) {
    const std::string path = "buses." + bus.name;
    const auto declared = options_for(t, bus.driver);
    std::string expected;
    for (const auto* o : declared) expected += (expected.empty() ? "" : ", ") + std::string(o->key);
    const std::string all_keys = "driver, retries, backoff_max, max_gap, turnaround, " + expected;
    std::vector<DriverOption> canonical;
    const std::size_t before = errors.size();
    for (const auto& given : bus.options) {
        auto decl =
            std::find_if(declared.begin(), declared.end(), [&](const fl_option_v2* o) { return given.key == o->key; });
        if (decl == declared.end()) {
            errors.push_back({given.mark, path,
                              "unknown key '" + given.key + "' for driver " + bus.driver +
                                  core::did_you_mean(given.key, core::words(all_keys)) +
                                  "; expected one of: " + all_keys});
            continue;
        }
        std::string value, err;
        if (!canonicalize(**decl, given.value, value, err)) {
            errors.push_back({given.mark, path + "." + given.key, err});
            continue;
        }
        canonical.push_back({given.key, value, given.mark});
    }
    for (const auto* o : declared) {
        const bool given =
            std::any_of(bus.options.begin(), bus.options.end(), [&](const DriverOption& d) { return d.key == o->key; });
        if (given) continue;
        if (!o->default_value) {
            errors.push_back({bus.mark, path,
                              "missing required key '" + std::string(o->key) + "' for driver " + bus.driver + " (" +
                                  (o->help ? o->help : "") + ")"});
            continue;
        }
        canonical.push_back({o->key, o->default_value, bus.mark});
    }
    bus.options = std::move(canonical);
    return errors.size() == before;
}

// Asks the driver for its bus-time model and unit range.
bool bus_model(const fl_driver_v2* t, config::BusConfig& bus, std::vector<ConfigError>& errors) {
    const auto kv = kv_of(bus.options);
    fl_bus_model_v2 m{};
    m.struct_size = sizeof m;
    fl_error_v2 err{};
    err.struct_size = sizeof err;
    if (t->bus_model(bus.driver.c_str(), kv.data(), kv.size(), &m, &err) != FL_OK) {
        errors.push_back({bus.mark, "buses." + bus.name,
                          std::string("driver ") + bus.driver +
                              " refused these options: " + (err.message[0] ? err.message : "no reason given")});
        return false;
    }
    if (m.struct_size < kMinModelSize || m.max_registers == 0 || m.max_bits == 0 || m.unit_min > m.unit_max) {
        errors.push_back({bus.mark, "buses." + bus.name, "driver " + bus.driver + " states a malformed bus model"});
        return false;
    }
    auto& tm = bus.timing;
    tm.request_overhead_us = m.request_overhead_us;
    tm.register_us = m.register_us;
    tm.bit_us = m.bit_us;
    tm.max_registers = static_cast<int>(std::min<std::uint32_t>(m.max_registers, 125));
    tm.max_bits = static_cast<int>(std::min<std::uint32_t>(m.max_bits, 2000));
    tm.unit_min = m.unit_min;
    tm.unit_max = m.unit_max;
    tm.shared_line = (m.flags & FL_BUS_SHARED_LINE) != 0;
    return true;
}

// A point named by `field:`: the driver says which input register its float64 starts at.
void place_field(const fl_driver_v2* t, const config::BusConfig& bus, config::PointConfig& p, std::size_t device,
                 std::size_t index, std::vector<ConfigError>& errors) {
    const std::string path = config::device_path(device) + ".points[" + std::to_string(index) + "].field";
    const bool has_slot = t->struct_size >= offsetof(fl_driver_v2, field_address) + sizeof t->field_address;
    if (!has_slot || !t->field_address) {
        errors.push_back(
            {p.mark, path, "driver " + bus.driver + " has no named fields; give this point an area and an address"});
        return;
    }
    const auto kv = kv_of(bus.options);
    fl_error_v2 err{};
    err.struct_size = sizeof err;
    std::uint16_t address = 0;
    if (t->field_address(bus.driver.c_str(), kv.data(), kv.size(), p.field.c_str(), &address, &err) != FL_OK) {
        errors.push_back({p.mark, path, err.message[0] ? err.message : "the driver does not know this field"});
        return;
    }
    if (address > 65532) {
        errors.push_back({p.mark, path, "driver " + bus.driver + " placed the field past address 65532"});
        return;
    }
    p.address = address;
}

}  // namespace

void PluginRegistry::validate_buses(config::Config& cfg, std::vector<ConfigError>& errors) const {
    std::vector<bool> usable(cfg.buses.size(), false);
    for (std::size_t b = 0; b < cfg.buses.size(); ++b) {
        auto& bus = cfg.buses[b];
        const fl_driver_v2* t = find(bus.driver);
        if (!t) {
            errors.push_back({bus.mark, "buses." + bus.name + ".driver",
                              "driver '" + bus.driver + "' is not available" +
                                  core::did_you_mean(bus.driver, core::words(driver_names())) +
                                  "; installed drivers: " + driver_names()});
            continue;
        }
        usable[b] = canonical_options(t, bus, errors) && bus_model(t, bus, errors);
    }
    for (std::size_t i = 0; i < cfg.devices.size(); ++i) {
        auto& d = cfg.devices[i];
        if (d.bus_index >= cfg.buses.size() || !usable[d.bus_index]) continue;
        const auto& bus = cfg.buses[d.bus_index];
        for (std::size_t j = 0; j < d.points.size(); ++j) {
            if (!d.points[j].field.empty()) place_field(find(bus.driver), bus, d.points[j], i, j, errors);
        }
        if (d.unit < bus.timing.unit_min || d.unit > bus.timing.unit_max) {
            errors.push_back({d.mark, config::device_path(i) + ".unit",
                              "unit " + std::to_string(d.unit) + " is out of range for bus " + bus.name + " (driver " +
                                  bus.driver + "); expected " + std::to_string(bus.timing.unit_min) + ".." +
                                  std::to_string(bus.timing.unit_max)});
        }
    }
}

std::string default_plugin_dir() {
    if (const char* env = std::getenv("FIELDLINK_PLUGIN_DIR"); env && *env) return env;
    // The build tree's plugins for a binary run from the build tree; an installed binary uses the
    // installed ones even on the machine that built it.
    std::string build = FIELDLINK_BUILD_PLUGIN_DIR;
    char exe[4096];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const std::string self = n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : std::string();
    if (!build.empty() && self.rfind(FIELDLINK_BUILD_ROOT, 0) == 0) {
        if (DIR* d = opendir(build.c_str())) {
            closedir(d);
            return build;
        }
    }
    return FIELDLINK_INSTALL_PLUGIN_DIR;
}

const fl_host_v2* host_services() {
    static const fl_host_v2 host = {sizeof(fl_host_v2), 0, &core::LowFds::instance(), host_fd_low, host_fd_release, {}};
    return &host;
}

std::unique_ptr<DriverInstance> DriverInstance::create(const fl_driver_v2* table, const config::BusConfig& bus,
                                                       std::string* error) {
    const auto kv = kv_of(bus.options);
    void* h = nullptr;
    fl_error_v2 err{};
    err.struct_size = sizeof err;
    if (table->create(bus.driver.c_str(), kv.data(), kv.size(), host_services(), &h, &err) != FL_OK || !h) {
        if (error) *error = err.message[0] ? err.message : "driver refused its options";
        return nullptr;
    }
    return std::unique_ptr<DriverInstance>(new DriverInstance(table, h));
}

DriverInstance::~DriverInstance() {
    if (table_->close) table_->close(handle_);
    if (table_->destroy) table_->destroy(handle_);
}

fl_status DriverInstance::open(fl_error_v2* err) {
    return table_->open ? table_->open(handle_, err) : FL_OK;
}
fl_status DriverInstance::read(fl_read_v2* req, fl_error_v2* err) {
    return table_->read(handle_, req, err);
}
fl_status DriverInstance::write(const fl_write_v2* req, fl_error_v2* err) {
    if (!table_->write) {
        std::snprintf(err->message, sizeof err->message, "driver does not support writes");
        return FL_ERROR;
    }
    return table_->write(handle_, req, err);
}
void DriverInstance::interrupt() {
    if (table_->interrupt) table_->interrupt(handle_);
}
void DriverInstance::close() {
    if (table_->close) table_->close(handle_);
}

std::vector<DriverCounter> DriverInstance::counters() const {
    std::vector<DriverCounter> out;
    const bool has_slot = table_->struct_size >= offsetof(fl_driver_v2, counters) + sizeof table_->counters;
    if (!has_slot || !table_->counters) return out;
    fl_counter_v2 buf[32] = {};
    const std::size_t n = std::min<std::size_t>(table_->counters(handle_, buf, 32), 32);
    for (std::size_t i = 0; i < n; ++i) {
        if (buf[i].name) out.push_back({buf[i].name, buf[i].value});
    }
    return out;
}

}  // namespace fieldlink::bus
