// Any byte string as a configuration file: must give a config or errors, never a crash.
#include <cstdint>
#include <string>

#include "core/config_parser.hpp"
#include "core/plan.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    auto r = fieldlink::core::parse_config_text(text, "fuzz.yaml");
    for (const auto& e : r.errors) (void)fieldlink::core::format_error("fuzz.yaml", e);
    if (r.ok()) {
        for (const auto& d : r.config.devices) {
            const auto& bus = r.config.buses[d.bus_index];
            (void)fieldlink::core::describe_plan(d, fieldlink::core::plan_reads(d.points, fieldlink::core::cost_model_for(bus, d.max_gap)));
        }
    }
    return 0;
}
