// Read coalescing: turns a device's points into the fewest, cheapest read requests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace fieldlink::bus {

using config::Area;

struct ReadRequest {
    Area area = Area::holding;
    std::uint16_t address = 0;
    std::uint16_t count = 0;
    std::vector<std::uint32_t> points;  // indices into the device's points
};

// Bus time model, in microseconds on the wire: what one extra request costs versus one extra
// register (or bit) in an existing request. Bridging a gap pays off while the gap's registers
// cost less than a request. The driver states its model (fl_bus_model_v2); the bus adds the
// devices' turnaround.
struct CostModel {
    double request_overhead = 24.0;  // frame headers, CRC, silent intervals, device turnaround
    double per_register = 2.0;
    double per_bit = 0.125;
    int max_gap = -1;  // explicit cap on a bridged gap (registers or bits); -1 = cost decides
    int max_registers = 125;
    int max_bits = 2000;
};

CostModel cost_model_for(const config::BusConfig& bus, int device_max_gap);
std::vector<ReadRequest> plan_reads(const std::vector<config::PointConfig>& points, const CostModel& model);
// The same for the points listed in `subset` (indices into `points`), planned together.
std::vector<ReadRequest> plan_reads(const std::vector<config::PointConfig>& points, const CostModel& model,
                                    const std::vector<std::uint32_t>& subset);

// A device's points by when they are read (`poll:`): one group per interval, the device's own
// interval first (its points without `poll:`, and those polled at that same interval), then the
// others by interval, then `once`, then `on_write`. Groups due at the same time are read with one
// plan of their points together. The device's link state point is in none (it is not read).
struct PollGroup {
    config::PollClass kind = config::PollClass::device;
    core::Duration interval{0};  // periodic groups (device, interval)
    std::vector<std::uint32_t> points;
    bool periodic() const { return kind == config::PollClass::device || kind == config::PollClass::interval; }
};
std::vector<PollGroup> poll_groups(const config::DeviceConfig& device);
// `--check --plan`: describe_plan of the whole device when every point is polled with it, else
// one plan per poll group.
std::string describe_plans(const config::DeviceConfig& device, const CostModel& model);
// Total bus cost of a plan under the model (for the benchmark and `--plan`).
double plan_cost(const std::vector<ReadRequest>& plan, const CostModel& model);
std::string describe_plan(const config::DeviceConfig& device, const std::vector<ReadRequest>& plan);

// Line time of one poll of a device: each planned request's framing, silent intervals and
// registers (the driver's model) plus the bus's turnaround, and the driver's unit switch delay
// when the line has other units to switch from.
double cycle_us(const config::DeviceConfig& device, const config::BusConfig& bus, bool other_units);
// ... of one poll of the points in `subset`.
double cycle_us(const config::DeviceConfig& device, const config::BusConfig& bus, bool other_units,
                const std::vector<std::uint32_t>& subset);

// A shared serial line's schedule against its time: over the shortest poll interval on the line
// (the window), the line time every device's periodic poll groups need in that window, on
// average (a group polled every 10 s in a 1 s window counts a tenth of its poll).
struct LineBudget {
    std::size_t bus_index = 0;
    std::size_t devices = 0;
    double window_us = 0;  // the shortest interval of a device on the line
    double needed_us = 0;  // line time of all polls due in one window
    bool fits() const { return needed_us <= window_us; }
};
std::vector<LineBudget> line_budgets(const config::Config& cfg);
// "bus line1 (modbus-rtu, 9600 baud): 3 device(s) need 949 ms of line time every 1000 ms (95%)"
std::string describe_budget(const config::Config& cfg, const LineBudget& b);

}  // namespace fieldlink::bus
