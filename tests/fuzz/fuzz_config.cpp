// Any byte string as a configuration file: must give a config or errors, never a crash.
#include <cstdint>
#include <string>

#include "bus/plan.hpp"
#include "bus/plugin_host.hpp"
#include "load.hpp"
#include "pushed.hpp"

extern "C" const fl_driver_v2* fl_sim_driver_table(void);
extern "C" const fl_driver_v2* fl_modbus_driver_table(void);

// Every stage: YAML, generic rules, platform rules, driver options (the built-in drivers).
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace fieldlink;
    static const bus::PluginRegistry* drivers = [] {
        auto* r = new bus::PluginRegistry();
        r->add_static(fl_sim_driver_table());
        r->add_static(fl_modbus_driver_table());
        return r;
    }();
    const std::string text(reinterpret_cast<const char*>(data), size);
    auto r = load_config_text(text, "fuzz.yaml", drivers);
    for (const auto& e : r.errors) (void)config::format_error("fuzz.yaml", e);
    // The same text pushed from a platform: its secrets written out.
    for (const auto& e : pushed::literal_secrets(text, "pushed.yaml")) (void)config::format_error("fuzz.yaml", e);
    if (r.ok()) {
        for (const auto& d : r.config.devices) {
            const auto& b = r.config.buses[d.bus_index];
            (void)bus::describe_plans(d, bus::cost_model_for(b, d.max_gap));
        }
    }
    return 0;
}
