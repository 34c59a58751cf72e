#include <doctest/doctest.h>

#include "bus/plan.hpp"
#include "helpers.hpp"

using namespace fieldlink::bus;
using namespace fieldlink::config;

namespace {

PointConfig pt(const char* name, Area a, std::uint16_t addr, DataType t = DataType::uint16, int length = 0) {
    PointConfig p;
    p.name = name;
    p.area = a;
    p.address = addr;
    p.type = is_bit_area(a) ? DataType::boolean : t;
    p.length = length;
    return p;
}

// A bus as validation leaves it: options canonical, timing stated by the modbus driver.
BusConfig bus_of(const char* driver, std::vector<DriverOption> options) {
    Config cfg;
    BusConfig b;
    b.name = "b";
    b.driver = driver;
    b.options = std::move(options);
    cfg.buses.push_back(b);
    std::vector<ConfigError> errors;
    fieldlink::test::drivers().validate_buses(cfg, errors);
    for (const auto& e : errors) FAIL(format_error("t.yaml", e));
    return cfg.buses[0];
}

BusConfig rtu(int baud = 9600) {
    return bus_of("modbus-rtu", {{"device", "/dev/ttyUSB0", {}}, {"baud", std::to_string(baud), {}}});
}

BusConfig tcp() {
    return bus_of("modbus-tcp", {{"host", "127.0.0.1", {}}});
}

}  // namespace

TEST_CASE("adjacent registers become one request") {
    std::vector<PointConfig> pts{pt("a", Area::holding, 0), pt("b", Area::holding, 1, DataType::float32),
                                 pt("c", Area::holding, 3)};
    auto plan = plan_reads(pts, cost_model_for(rtu(), -1));
    REQUIRE(plan.size() == 1);
    CHECK(plan[0].address == 0);
    CHECK(plan[0].count == 4);
    CHECK(plan[0].points.size() == 3);
}

TEST_CASE("a small gap is bridged on RTU, a large one is not") {
    // RTU 9600 baud, 5 ms turnaround: a request costs ~24 byte times, a register 2.
    std::vector<PointConfig> pts{pt("a", Area::holding, 0), pt("b", Area::holding, 6), pt("c", Area::holding, 100)};
    auto plan = plan_reads(pts, cost_model_for(rtu(), -1));
    REQUIRE(plan.size() == 2);
    CHECK(plan[0].address == 0);
    CHECK(plan[0].count == 7);
    CHECK(plan[1].address == 100);
    CHECK(plan[1].count == 1);
}

TEST_CASE("TCP bridges gaps up to the protocol cap") {
    std::vector<PointConfig> pts{pt("a", Area::holding, 0), pt("b", Area::holding, 100)};
    auto plan = plan_reads(pts, cost_model_for(tcp(), -1));
    REQUIRE(plan.size() == 1);
    CHECK(plan[0].count == 101);
}

TEST_CASE("the 125-register cap splits requests") {
    std::vector<PointConfig> pts;
    for (std::uint16_t a = 0; a < 300; ++a) pts.push_back(pt("p", Area::holding, a));
    auto plan = plan_reads(pts, cost_model_for(tcp(), -1));
    REQUIRE(plan.size() == 3);
    for (const auto& r : plan) CHECK(r.count <= 125);
    CHECK(plan[0].count + plan[1].count + plan[2].count == 300);
}

TEST_CASE("the 2000-bit cap splits coil reads") {
    std::vector<PointConfig> pts;
    for (std::uint16_t a = 0; a < 2500; a += 10) pts.push_back(pt("c", Area::coil, a));
    auto plan = plan_reads(pts, cost_model_for(tcp(), -1));
    REQUIRE(plan.size() == 2);
    for (const auto& r : plan) CHECK(r.count <= 2000);
}

TEST_CASE("areas are never mixed") {
    std::vector<PointConfig> pts{pt("h", Area::holding, 0), pt("i", Area::input, 1), pt("c", Area::coil, 0),
                                 pt("d", Area::discrete, 0), pt("h2", Area::holding, 1)};
    auto plan = plan_reads(pts, cost_model_for(tcp(), -1));
    REQUIRE(plan.size() == 4);
    for (const auto& r : plan) {
        for (auto i : r.points) CHECK(pts[i].area == r.area);
    }
}

TEST_CASE("max_gap 0 disables bridging; explicit gaps are honoured") {
    std::vector<PointConfig> pts{pt("a", Area::holding, 0), pt("b", Area::holding, 2), pt("c", Area::holding, 3)};
    CHECK(plan_reads(pts, cost_model_for(tcp(), 0)).size() == 2);
    CHECK(plan_reads(pts, cost_model_for(tcp(), 1)).size() == 1);
}

TEST_CASE("overlapping points share a request") {
    std::vector<PointConfig> pts{pt("f", Area::holding, 10, DataType::float32), pt("hi", Area::holding, 10),
                                 pt("lo", Area::holding, 11)};
    auto plan = plan_reads(pts, cost_model_for(rtu(), -1));
    REQUIRE(plan.size() == 1);
    CHECK(plan[0].address == 10);
    CHECK(plan[0].count == 2);
}

TEST_CASE("the plan is never costlier than one request per point or adjacent-only merging") {
    std::vector<PointConfig> pts;
    unsigned seed = 7;
    for (int i = 0; i < 200; ++i) {
        seed = seed * 1103515245u + 12345u;
        pts.push_back(pt("p", Area::holding, static_cast<std::uint16_t>((seed >> 8) % 2000)));
    }
    const auto model = cost_model_for(rtu(), -1);
    auto best = plan_reads(pts, model);
    auto adjacent = plan_reads(pts, cost_model_for(rtu(), 0));
    CHECK(plan_cost(best, model) <= plan_cost(adjacent, model));
    CHECK(best.size() <= adjacent.size());
    std::size_t covered = 0;
    for (const auto& r : best) covered += r.points.size();
    CHECK(covered == pts.size());
}

TEST_CASE("describe_plan names every request and point") {
    DeviceConfig d;
    d.name = "meter";
    d.bus = "line1";
    d.unit = 3;
    d.points = {pt("v", Area::input, 10), pt("i", Area::input, 12)};
    auto text = describe_plan(d, plan_reads(d.points, cost_model_for(rtu(), -1)));
    CHECK(text ==
          "device meter (bus line1, unit 3, every 5000ms): 1 request per cycle\n"
          "  read input 10..12 (3 registers): v i\n");
}

TEST_CASE("the line budget: each device's planned requests against the shortest interval") {
    Config cfg;
    cfg.buses.push_back(rtu(9600));
    cfg.buses[0].name = "line1";
    const auto device = [](int unit, long interval_ms) {
        DeviceConfig d;
        d.name = "m" + std::to_string(unit);
        d.unit = unit;
        d.bus_index = 0;
        d.interval = Duration{interval_ms};
        d.points = {pt("block", Area::holding, 0, DataType::string, 60)};  // 60 registers, one request
        return d;
    };
    // At 9600 baud a character (start, 8 data, parity or stop, stop) takes 1145.8 µs: one request
    // is 20 characters of framing and silent intervals, 120 of data, and the 5 ms turnaround.
    CHECK(cycle_us(device(1, 1000), cfg.buses[0], false) == doctest::Approx(20 * 1145.8333 + 5000 + 120 * 1145.8333));
    for (int u = 1; u <= 6; ++u) cfg.devices.push_back(device(u, 1000));
    auto b = line_budgets(cfg);
    REQUIRE(b.size() == 1);
    CHECK(b[0].fits());
    CHECK(describe_budget(cfg, b[0]) ==
          "bus line1 (modbus-rtu, 9600 baud): 6 device(s) need 992 ms of line time every "
          "1000 ms (99%)");
    cfg.devices.push_back(device(7, 1000));  // one more unit: over
    b = line_budgets(cfg);
    CHECK_FALSE(b[0].fits());
    CHECK(describe_budget(cfg, b[0]) ==
          "bus line1 (modbus-rtu, 9600 baud): 7 device(s) need 1158 ms of line time every 1000 ms (116%)");
    cfg.devices.back().interval = Duration{2000};  // polled half as often: counts half
    b = line_budgets(cfg);
    CHECK(b[0].needed_us == doctest::Approx(6.5 * cycle_us(device(1, 1000), cfg.buses[0], true)));
    CHECK_FALSE(b[0].fits());
    cfg.devices.pop_back();
    for (auto& o : cfg.buses[0].options) {
        if (o.key == "unit_switch_delay") o.value = "10";  // 10 ms before another unit
    }
    b = line_budgets(cfg);
    CHECK_FALSE(b[0].fits());  // 6 × (165.4 + 10) ms
    CHECK(b[0].needed_us == doctest::Approx(6 * (165416.67 + 10000)));
    // A TCP bus is no shared line: no budget.
    Config tcp_cfg;
    tcp_cfg.buses.push_back(tcp());
    tcp_cfg.devices.push_back(device(1, 10));
    CHECK(line_budgets(tcp_cfg).empty());
}
