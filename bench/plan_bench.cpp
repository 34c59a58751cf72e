// Requests per cycle for a scattered 200-point map: fieldlinkd's plan versus one request per point
// and versus merging only adjacent registers, on an RTU line (9600 baud) and on Modbus TCP.
#include <cstdio>
#include <vector>

#include "bus/plan.hpp"
#include "bus/plugin_host.hpp"

using namespace fieldlink::bus;
using namespace fieldlink::config;

extern "C" const fl_driver_v2* fl_modbus_driver_table(void);

namespace {

// A deterministic, realistic scatter: clusters of meter registers with small gaps, mixed types,
// a few isolated registers far away, some coils.
std::vector<PointConfig> scattered_map() {
    std::vector<PointConfig> pts;
    unsigned seed = 12345;
    auto rnd = [&seed](unsigned n) {
        seed = seed * 1103515245u + 12345u;
        return (seed >> 16) % n;
    };
    const DataType types[] = {DataType::uint16, DataType::int16,   DataType::float32,
                              DataType::uint32, DataType::float32, DataType::uint16};
    int addr = 0;
    while (pts.size() < 200) {
        PointConfig p;
        p.name = "p" + std::to_string(pts.size());
        if (rnd(10) == 0) {
            p.area = Area::coil;
            p.type = DataType::boolean;
            p.address = static_cast<std::uint16_t>(rnd(400));
        } else {
            p.area = rnd(3) == 0 ? Area::input : Area::holding;
            p.type = types[rnd(6)];
            addr += static_cast<int>(rnd(8) == 0 ? 40 + rnd(200) : rnd(4));  // mostly small gaps
            p.address = static_cast<std::uint16_t>(addr % 6000);
            addr += register_count(p.type, 0);
        }
        pts.push_back(p);
    }
    return pts;
}

void report(const char* label, const BusConfig& bus, const std::vector<PointConfig>& pts) {
    const CostModel model = cost_model_for(bus, -1);
    const auto best = plan_reads(pts, model);
    const auto adjacent = plan_reads(pts, cost_model_for(bus, 0));
    std::vector<ReadRequest> one;  // never merge: every point its own request
    for (std::uint32_t i = 0; i < pts.size(); ++i) {
        ReadRequest r;
        r.area = pts[i].area;
        r.address = pts[i].address;
        r.count = static_cast<std::uint16_t>(pts[i].count());
        r.points = {i};
        one.push_back(r);
    }
    // Bus time per cycle under the driver's model (microseconds on the wire); shown for serial lines.
    const double byte_ms = bus.timing.shared_line ? 0.001 : 0.0;
    if (byte_ms > 0) {
        std::printf(
            "plan (%s): fieldlinkd %zu requests/cycle (%.0f ms bus time) | one per point %zu (%.0f ms) | "
            "adjacent only %zu (%.0f ms)\n",
            label, best.size(), plan_cost(best, model) * byte_ms, one.size(), plan_cost(one, model) * byte_ms,
            adjacent.size(), plan_cost(adjacent, model) * byte_ms);
    } else {
        std::printf("plan (%s): fieldlinkd %zu requests/cycle | one per point %zu | adjacent only %zu\n", label,
                    best.size(), one.size(), adjacent.size());
    }
}

// A bus as configuration checking leaves it: canonical options, the driver's own bus model.
BusConfig bus_of(const PluginRegistry& drivers, const char* driver, std::vector<DriverOption> options) {
    Config cfg;
    BusConfig b;
    b.name = driver;
    b.driver = driver;
    b.options = std::move(options);
    cfg.buses.push_back(b);
    std::vector<ConfigError> errors;
    drivers.validate_buses(cfg, errors);
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", format_error("bench", e).c_str());
    return cfg.buses[0];
}

}  // namespace

int main() {
    PluginRegistry drivers;
    drivers.add_static(fl_modbus_driver_table());
    const auto pts = scattered_map();
    report("scattered 200-point map, RTU 9600 baud",
           bus_of(drivers, "modbus-rtu", {{"device", "/dev/ttyUSB0", {}}, {"baud", "9600", {}}}), pts);
    report("scattered 200-point map, Modbus TCP", bus_of(drivers, "modbus-tcp", {{"host", "127.0.0.1", {}}}), pts);
    return 0;
}
