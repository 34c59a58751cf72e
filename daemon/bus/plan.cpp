#include "plan.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

namespace fieldlink::bus {
namespace {

struct Span {
    std::uint32_t point;
    int start;
    int end;  // exclusive
};

// Optimal partition of sorted spans into contiguous groups (dynamic programming over prefixes):
// cost(group) = overhead + length * unit, subject to the length cap and the gap cap.
std::vector<ReadRequest> plan_area(Area area, std::vector<Span> spans, const CostModel& m) {
    std::sort(spans.begin(), spans.end(),
              [](const Span& a, const Span& b) { return a.start != b.start ? a.start < b.start : a.end < b.end; });
    const bool bits = config::is_bit_area(area);
    const int cap = bits ? m.max_bits : m.max_registers;
    const double unit = bits ? m.per_bit : m.per_register;
    const std::size_t n = spans.size();
    std::vector<double> best(n + 1, std::numeric_limits<double>::infinity());
    std::vector<std::size_t> cut(n + 1, 0);
    best[0] = 0;
    for (std::size_t j = 1; j <= n; ++j) {
        // Group spans i..j-1 (walking i backwards keeps the running end and gap check cheap).
        int end = spans[j - 1].end;
        int lowest_start = spans[j - 1].start;
        for (std::size_t i = j; i-- > 0;) {
            if (i < j - 1) {
                const int gap = lowest_start - spans[i].end;
                if (m.max_gap >= 0 && gap > m.max_gap) break;
                end = std::max(end, spans[i].end);
                lowest_start = spans[i].start;
            }
            if (end - spans[i].start > cap) break;
            const double c = best[i] + m.request_overhead + (end - spans[i].start) * unit;
            if (c < best[j]) {
                best[j] = c;
                cut[j] = i;
            }
        }
    }
    std::vector<ReadRequest> out;
    for (std::size_t j = n; j > 0; j = cut[j]) {
        ReadRequest r;
        r.area = area;
        const std::size_t i = cut[j];
        int end = 0;
        for (std::size_t k = i; k < j; ++k) {
            end = std::max(end, spans[k].end);
            r.points.push_back(spans[k].point);
        }
        r.address = static_cast<std::uint16_t>(spans[i].start);
        r.count = static_cast<std::uint16_t>(end - spans[i].start);
        out.push_back(std::move(r));
    }
    std::reverse(out.begin(), out.end());
    return out;
}

}  // namespace

CostModel cost_model_for(const config::BusConfig& bus, int device_max_gap) {
    const auto& t = bus.timing;
    CostModel m;
    m.request_overhead = t.request_overhead_us + static_cast<double>(bus.turnaround.count()) * 1000.0;
    m.per_register = t.register_us;
    m.per_bit = t.bit_us;
    m.max_registers = t.max_registers;
    m.max_bits = t.max_bits;
    const int gap = device_max_gap >= 0 ? device_max_gap : bus.max_gap;
    if (gap >= 0) {
        m.max_gap = gap;
        m.request_overhead = (gap + 0.5) * m.per_register;  // bridging up to `gap` pays off
    }
    return m;
}

std::vector<ReadRequest> plan_reads(const std::vector<config::PointConfig>& points, const CostModel& model) {
    std::vector<std::uint32_t> all(points.size());
    for (std::uint32_t i = 0; i < points.size(); ++i) all[i] = i;
    return plan_reads(points, model, all);
}

std::vector<ReadRequest> plan_reads(const std::vector<config::PointConfig>& points, const CostModel& model,
                                    const std::vector<std::uint32_t>& subset) {
    std::vector<Span> by_area[4];
    for (const std::uint32_t i : subset) {
        const auto& p = points[i];
        if (p.link) continue;  // the device's link state: not on the bus
        by_area[static_cast<int>(p.area)].push_back(Span{i, p.address, p.address + p.count()});
    }
    std::vector<ReadRequest> plan;
    for (Area a : {Area::coil, Area::discrete, Area::input, Area::holding}) {
        auto part = plan_area(a, by_area[static_cast<int>(a)], model);
        plan.insert(plan.end(), part.begin(), part.end());
    }
    return plan;
}

double plan_cost(const std::vector<ReadRequest>& plan, const CostModel& m) {
    double c = 0;
    for (const auto& r : plan) {
        c += m.request_overhead + r.count * (config::is_bit_area(r.area) ? m.per_bit : m.per_register);
    }
    return c;
}

std::string describe_plan(const config::DeviceConfig& d, const std::vector<ReadRequest>& plan) {
    std::ostringstream o;
    o << "device " << d.name << " (bus " << d.bus << ", unit " << d.unit << ", every " << d.interval.count()
      << "ms): " << plan.size() << (plan.size() == 1 ? " request" : " requests") << " per cycle\n";
    for (const auto& r : plan) {
        o << "  read " << config::to_string(r.area) << ' ' << r.address << ".." << (r.address + r.count - 1) << " ("
          << r.count << (config::is_bit_area(r.area) ? " bits" : " registers") << "):";
        for (auto pi : r.points) o << ' ' << d.points[pi].name;
        o << '\n';
    }
    return o.str();
}

std::vector<PollGroup> poll_groups(const config::DeviceConfig& device) {
    using config::PollClass;
    std::vector<PollGroup> groups;
    const auto group_for = [&](PollClass kind, core::Duration interval) -> PollGroup& {
        for (auto& g : groups) {
            if (g.kind == kind && g.interval == interval) return g;
        }
        groups.push_back(PollGroup{kind, interval, {}});
        return groups.back();
    };
    for (std::uint32_t i = 0; i < device.points.size(); ++i) {
        const auto& p = device.points[i];
        if (p.link) continue;
        const bool with_device =
            p.poll == PollClass::device || (p.poll == PollClass::interval && p.poll_interval == device.interval);
        if (with_device) {
            group_for(PollClass::device, device.interval).points.push_back(i);
        } else {
            group_for(p.poll, p.poll == PollClass::interval ? p.poll_interval : core::Duration{0}).points.push_back(i);
        }
    }
    // device, then interval (shortest first), once, on_write: the order of PollClass
    std::stable_sort(groups.begin(), groups.end(), [](const PollGroup& a, const PollGroup& b) {
        return a.kind != b.kind ? a.kind < b.kind : a.interval < b.interval;
    });
    return groups;
}

std::string describe_plans(const config::DeviceConfig& device, const CostModel& model) {
    const auto groups = poll_groups(device);
    if (groups.size() <= 1) return describe_plan(device, plan_reads(device.points, model));
    std::ostringstream o;
    o << "device " << device.name << " (bus " << device.bus << ", unit " << device.unit << "): " << groups.size()
      << " poll groups\n";
    for (const auto& g : groups) {
        const auto plan = plan_reads(device.points, model, g.points);
        if (g.periodic())
            o << "  every " << g.interval.count() << "ms";
        else
            o << (g.kind == config::PollClass::once ? "  once, when the device first answers"
                                                    : "  at start and after each write to the device");
        o << ": " << plan.size() << (plan.size() == 1 ? " request\n" : " requests\n");
        for (const auto& r : plan) {
            o << "    read " << config::to_string(r.area) << ' ' << r.address << ".." << (r.address + r.count - 1)
              << " (" << r.count << (config::is_bit_area(r.area) ? " bits" : " registers") << "):";
            for (auto pi : r.points) o << ' ' << device.points[pi].name;
            o << '\n';
        }
    }
    return o.str();
}

namespace {

double option_ms(const config::BusConfig& bus, const char* key) {
    for (const auto& o : bus.options) {
        if (o.key == key) return std::atof(o.value.c_str());
    }
    return 0;
}

std::string option_text(const config::BusConfig& bus, const char* key) {
    for (const auto& o : bus.options) {
        if (o.key == key) return o.value;
    }
    return {};
}

}  // namespace

double cycle_us(const config::DeviceConfig& device, const config::BusConfig& bus, bool other_units) {
    std::vector<std::uint32_t> all(device.points.size());
    for (std::uint32_t i = 0; i < all.size(); ++i) all[i] = i;
    return cycle_us(device, bus, other_units, all);
}

double cycle_us(const config::DeviceConfig& device, const config::BusConfig& bus, bool other_units,
                const std::vector<std::uint32_t>& subset) {
    const CostModel m = cost_model_for(bus, -1);  // the wire's cost, not a tuned gap
    const double turnaround_us = static_cast<double>(bus.turnaround.count()) * 1000.0;
    double us = 0;
    for (const auto& r : plan_reads(device.points, cost_model_for(bus, device.max_gap), subset)) {
        const double unit = config::is_bit_area(r.area) ? m.per_bit : m.per_register;
        us += bus.timing.request_overhead_us + turnaround_us + r.count * unit;
    }
    if (other_units) us += option_ms(bus, "unit_switch_delay") * 1000.0;
    return us;
}

std::vector<LineBudget> line_budgets(const config::Config& cfg) {
    std::vector<LineBudget> out;
    for (std::size_t b = 0; b < cfg.buses.size(); ++b) {
        if (!cfg.buses[b].timing.shared_line) continue;
        LineBudget budget;
        budget.bus_index = b;
        std::vector<std::pair<const config::DeviceConfig*, PollGroup>> on_line;  // periodic groups
        std::size_t devices = 0;
        for (const auto& d : cfg.devices) {
            if (d.bus_index != b || d.interval.count() <= 0) continue;
            ++devices;
            for (auto& g : poll_groups(d)) {
                if (g.periodic() && g.interval.count() > 0) on_line.emplace_back(&d, std::move(g));
            }
        }
        if (on_line.empty()) continue;
        budget.devices = devices;
        budget.window_us = std::numeric_limits<double>::infinity();
        for (const auto& [d, g] : on_line)
            budget.window_us = std::min(budget.window_us, static_cast<double>(g.interval.count()) * 1000.0);
        for (const auto& [d, g] : on_line) {
            const double polls = budget.window_us / (static_cast<double>(g.interval.count()) * 1000.0);
            budget.needed_us += polls * cycle_us(*d, cfg.buses[b], devices > 1, g.points);
        }
        out.push_back(budget);
    }
    return out;
}

std::string describe_budget(const config::Config& cfg, const LineBudget& b) {
    const auto& bus = cfg.buses[b.bus_index];
    std::ostringstream o;
    o << "bus " << bus.name << " (" << bus.driver;
    if (const auto baud = option_text(bus, "baud"); !baud.empty()) o << ", " << baud << " baud";
    o << "): " << b.devices << " device(s) need " << std::lround(b.needed_us / 1000.0) << " ms of line time every "
      << std::lround(b.window_us / 1000.0) << " ms (" << std::lround(100.0 * b.needed_us / b.window_us) << "%)";
    return o.str();
}

}  // namespace fieldlink::bus
