// Shared test helpers: configurations loaded through every stage with the built-in drivers.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "bus/plugin_host.hpp"
#include "load.hpp"

extern "C" const fl_driver_v2* fl_sim_driver_table(void);
extern "C" const fl_driver_v2* fl_modbus_driver_table(void);
extern "C" const fl_driver_v2* fl_serial_driver_table(void);

namespace fieldlink::test {

// The sim, modbus and serial-line drivers, linked statically.
inline const bus::PluginRegistry& drivers() {
    static const bus::PluginRegistry* reg = [] {
        auto* r = new bus::PluginRegistry();
        r->add_static(fl_sim_driver_table());
        r->add_static(fl_modbus_driver_table());
        r->add_static(fl_serial_driver_table());
        return r;
    }();
    return *reg;
}

// Loads a configuration that must be valid (every error fails the test).
inline config::Config load_ok(const std::string& text) {
    auto r = load_config_text(text, "t.yaml", &drivers());
    for (const auto& e : r.errors) FAIL(config::format_error("t.yaml", e));
    return std::move(r.config);
}

// A fresh directory under $TMPDIR (or /tmp), removed with its contents when the test program
// exits, so repeated runs leave nothing behind.
inline std::string temp_dir(const char* prefix) {
    struct Dirs {
        std::mutex m;
        std::vector<std::filesystem::path> paths;
        ~Dirs() {
            std::error_code ec;
            for (const auto& p : paths) std::filesystem::remove_all(p, ec);
        }
    };
    static Dirs dirs;
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
    if (!mkdtemp(tmpl.data())) FAIL("mkdtemp " << tmpl);
    std::lock_guard<std::mutex> lock(dirs.m);
    dirs.paths.emplace_back(tmpl);
    return tmpl;
}

}  // namespace fieldlink::test
