#include "plugin_host.hpp"

#include <dirent.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "duration.hpp"

#ifndef FIELDLINK_BUILD_PLUGIN_DIR
#define FIELDLINK_BUILD_PLUGIN_DIR ""
#endif
#ifndef FIELDLINK_INSTALL_PLUGIN_DIR
#define FIELDLINK_INSTALL_PLUGIN_DIR "/usr/lib/fieldlink/plugins"
#endif

namespace fieldlink::core {
namespace {

constexpr std::uint32_t kHostVersions[] = {FL_DRIVER_ABI_V1};

bool applies_to(const fl_option_v1& o, const std::string& driver) {
    if (!o.drivers) return true;
    std::string list = std::string(" ") + o.drivers + " ";
    return list.find(" " + driver + " ") != std::string::npos;
}

// Canonical text for a declared option, or an error message.
bool canonicalize(const fl_option_v1& o, const std::string& in, std::string& out, std::string& err) {
    switch (o.type) {
        case FL_OPT_STRING: out = in; return true;
        case FL_OPT_BOOL:
            if (in == "true" || in == "yes" || in == "on") out = "true";
            else if (in == "false" || in == "no" || in == "off") out = "false";
            else { err = "expected true or false"; return false; }
            return true;
        case FL_OPT_INT: {
            char* end = nullptr;
            long long v = std::strtoll(in.c_str(), &end, 10);
            if (in.empty() || *end != '\0') { err = "'" + in + "' is not an integer"; return false; }
            if (v < o.min || v > o.max) {
                err = std::to_string(v) + " is out of range; expected " + std::to_string(o.min) + ".." + std::to_string(o.max);
                return false;
            }
            out = std::to_string(v);
            return true;
        }
        case FL_OPT_DURATION: {
            auto d = parse_duration(in);
            if (!d) { err = "'" + in + "' is not a duration; expected e.g. 300ms, 5s"; return false; }
            if (d->count() < o.min || d->count() > o.max) {
                err = "duration out of range; expected " + std::to_string(o.min) + "ms.." + std::to_string(o.max) + "ms";
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
                err = "unknown value '" + in + "'; expected one of: " + choices;
                return false;
            }
            out = in;
            return true;
        }
        default: err = "driver declares an unknown option type"; return false;
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
    if (!t || chosen != FL_DRIVER_ABI_V1) {
        if (error) {
            *error = "plugin " + path + ": refused: it supports none of the driver ABI versions this host speaks (1)";
            if (t) *error += "; it picked version " + std::to_string(chosen);
        }
        dlclose(h);
        return false;
    }
    const auto* table = static_cast<const fl_driver_v1*>(t);
    if (table->struct_size < offsetof(fl_driver_v1, reserved) || table->abi_version != FL_DRIVER_ABI_V1 ||
        !table->driver_names || !table->create || !table->read) {
        if (error) *error = "plugin " + path + ": refused: malformed driver table for ABI version 1";
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
            files.push_back(dir + "/" + name);
        }
    }
    closedir(d);
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
        std::string err;
        if (!load_file(f, &err)) errors.push_back(err);
    }
}

void PluginRegistry::add_static(const fl_driver_v1* table) { plugins_.push_back(LoadedPlugin{"(static)", nullptr, table}); }

const fl_driver_v1* PluginRegistry::find(const std::string& driver_name) const {
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

void PluginRegistry::validate_buses(Config& cfg, std::vector<ConfigError>& errors) const {
    for (auto& bus : cfg.buses) {
        const std::string path = "buses." + bus.name;
        const fl_driver_v1* t = find(bus.driver);
        if (!t) {
            errors.push_back({bus.mark, path + ".driver", "driver '" + bus.driver + "' is not available; installed drivers: " + driver_names()});
            continue;
        }
        std::vector<DriverOption> canonical;
        std::string expected;
        for (std::size_t i = 0; i < t->option_count; ++i) {
            if (applies_to(t->options[i], bus.driver)) expected += (expected.empty() ? "" : ", ") + std::string(t->options[i].key);
        }
        for (const auto& given : bus.options) {
            const fl_option_v1* decl = nullptr;
            for (std::size_t i = 0; i < t->option_count; ++i) {
                if (given.key == t->options[i].key && applies_to(t->options[i], bus.driver)) decl = &t->options[i];
            }
            if (!decl) {
                errors.push_back({given.mark, path, "unknown key '" + given.key + "' for driver " + bus.driver +
                                                        "; expected one of: driver, retries, backoff_max, max_gap, turnaround, " + expected});
                continue;
            }
            std::string value, err;
            if (!canonicalize(*decl, given.value, value, err)) {
                errors.push_back({given.mark, path + "." + given.key, err});
                continue;
            }
            canonical.push_back({given.key, value, given.mark});
        }
        for (std::size_t i = 0; i < t->option_count; ++i) {
            const auto& o = t->options[i];
            if (!applies_to(o, bus.driver)) continue;
            bool present = std::any_of(canonical.begin(), canonical.end(), [&](const DriverOption& d) { return d.key == o.key; });
            bool given = std::any_of(bus.options.begin(), bus.options.end(), [&](const DriverOption& d) { return d.key == o.key; });
            if (present || given) continue;
            if (!o.default_value) {
                errors.push_back({bus.mark, path, "missing required key '" + std::string(o.key) + "' for driver " + bus.driver + " (" + (o.help ? o.help : "") + ")"});
                continue;
            }
            canonical.push_back({o.key, o.default_value, bus.mark});
        }
        for (const auto& o : canonical) {
            if (o.key == "baud") bus.baud = std::atoi(o.value.c_str());
        }
        bus.options = std::move(canonical);
    }
}

std::string default_plugin_dir() {
    if (const char* env = std::getenv("FIELDLINK_PLUGIN_DIR"); env && *env) return env;
    std::string build = FIELDLINK_BUILD_PLUGIN_DIR;
    if (!build.empty()) {
        if (DIR* d = opendir(build.c_str())) {
            closedir(d);
            return build;
        }
    }
    return FIELDLINK_INSTALL_PLUGIN_DIR;
}

std::unique_ptr<DriverInstance> DriverInstance::create(const fl_driver_v1* table, const BusConfig& bus,
                                                       std::string* error) {
    std::vector<fl_kv_v1> kv;
    kv.reserve(bus.options.size());
    for (const auto& o : bus.options) kv.push_back(fl_kv_v1{o.key.c_str(), o.value.c_str()});
    void* h = nullptr;
    fl_error_v1 err{};
    err.struct_size = sizeof err;
    if (table->create(bus.driver.c_str(), kv.data(), kv.size(), &h, &err) != FL_OK || !h) {
        if (error) *error = err.message[0] ? err.message : "driver refused its options";
        return nullptr;
    }
    return std::unique_ptr<DriverInstance>(new DriverInstance(table, h));
}

DriverInstance::~DriverInstance() {
    if (table_->close) table_->close(handle_);
    if (table_->destroy) table_->destroy(handle_);
}

fl_status DriverInstance::open(fl_error_v1* err) { return table_->open ? table_->open(handle_, err) : FL_OK; }
fl_status DriverInstance::read(fl_read_v1* req, fl_error_v1* err) { return table_->read(handle_, req, err); }
fl_status DriverInstance::write(const fl_write_v1* req, fl_error_v1* err) {
    if (!table_->write) {
        std::snprintf(err->message, sizeof err->message, "driver does not support writes");
        return FL_ERROR;
    }
    return table_->write(handle_, req, err);
}
void DriverInstance::interrupt() { if (table_->interrupt) table_->interrupt(handle_); }
void DriverInstance::close() { if (table_->close) table_->close(handle_); }

}  // namespace fieldlink::core
