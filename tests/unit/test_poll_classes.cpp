// Poll classes (`poll:` per point) and publish windows (`publish:` per device, `aggregate:` per
// point): the configuration's rules and messages, the groups and their plans, the window's
// aggregates against a ramp, and a bus worker polling each class at its rate.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "bus/bus_worker.hpp"
#include "bus/plan.hpp"
#include "config/parser.hpp"
#include "fake_driver.hpp"
#include "helpers.hpp"
#include "mapping/window.hpp"

using namespace fieldlink;

namespace {

std::string device_with(const std::string& device_keys, const std::string& points) {
    return "clouds:\n  c: { platform: mqtt, host: 127.0.0.1 }\nbuses:\n  b: { driver: fake }\n"
           "devices:\n  - { name: d, cloud: c, bus: b, unit: 1, interval: 20ms" +
           device_keys + ", points: [" + points + "] }\n";
}

std::vector<std::string> errors_of(const std::string& text) {
    auto r = load_config_text(text, "p.yaml", &test::drivers());
    std::vector<std::string> out;
    for (const auto& e : r.errors) out.push_back(config::format_error("p.yaml", e));
    return out;
}

std::string only_error(const std::string& text) {
    auto e = errors_of(text);
    REQUIRE_MESSAGE(e.size() == 1, text);
    return e[0];
}

// The points of the batches handed over, by name: how many batches carried each.
std::map<std::string, int> carried(test::WorkerRig& rig) {
    std::map<std::string, int> n;
    std::lock_guard<std::mutex> lock(rig.m);
    for (const auto& b : rig.got) {
        for (const auto& pv : b.values) ++n[rig.cfg.devices[b.device_index].points[pv.point_index].name];
    }
    return n;
}

// One poll of the ramp: value x in the five properties and the event; the event stays in the batch.
void add_ramp_step(mapping::PublishWindow& w, const config::DeviceConfig& d, int x) {
    core::SampleBatch b;
    b.timestamp_ms = 1000 + x;
    for (std::uint32_t p = 0; p < 6; ++p) {
        core::PointValue pv;
        pv.point_index = p;
        pv.value = static_cast<std::uint64_t>(x);
        b.values.push_back(std::move(pv));
    }
    w.add(d, b);
    REQUIRE(b.values.size() == 1);  // the event goes with its poll
    CHECK(b.values[0].point_index == 5);
}

// last, min, max, mean, count of 10, 11, 12, 13, 14 taken at 1010..1014 ms.
void check_aggregates_of_10_to_14(const core::SampleBatch& out) {
    REQUIRE(out.values.size() == 5);
    CHECK(std::get<std::uint64_t>(out.values[0].value) == 14);
    CHECK(std::get<std::uint64_t>(out.values[1].value) == 10);
    CHECK(std::get<std::uint64_t>(out.values[2].value) == 14);
    CHECK(std::get<double>(out.values[3].value) == doctest::Approx(12.0));
    CHECK(std::get<std::uint64_t>(out.values[4].value) == 5);
    CHECK(out.timestamp_ms == 1014);
}

// Windows of a ramp (lo, hi, n per batch): each starts where the last ended, n its length.
// Returns the polls they hold in all.
std::uint64_t check_windows(const std::vector<core::SampleBatch>& got) {
    std::uint64_t next = 0, total = 0;
    for (const auto& b : got) {
        REQUIRE(b.values.size() == 3);
        const auto lo = std::get<std::uint64_t>(b.values[0].value);
        const auto hi = std::get<std::uint64_t>(b.values[1].value);
        const auto n = std::get<std::uint64_t>(b.values[2].value);
        CHECK(lo == next);  // nothing lost or repeated between windows
        CHECK(n == hi - lo + 1);
        next = hi + 1;
        total += n;
    }
    return total;
}

}  // namespace

TEST_CASE("poll, aggregate and publish are read, and refused with what was expected") {
    auto cfg = test::load_ok(device_with(", publish: 100ms",
                                         "{ name: a, area: holding, address: 0 },"
                                         "{ name: b, area: holding, address: 1, poll: 1s, aggregate: mean },"
                                         "{ name: c, area: holding, address: 2, poll: once },"
                                         "{ name: e, area: holding, address: 3, poll: on_write, aggregate: count }"));
    const auto& d = cfg.devices[0];
    CHECK(d.publish == core::Duration{100});
    CHECK(d.points[0].poll == config::PollClass::device);
    CHECK(d.points[1].poll == config::PollClass::interval);
    CHECK(d.points[1].poll_interval == core::Duration{1000});
    CHECK(d.points[1].aggregate == config::Aggregate::mean);
    CHECK(d.points[2].poll == config::PollClass::once);
    CHECK(d.points[3].poll == config::PollClass::on_write);

    CHECK(only_error(device_with("", "{ name: a, area: holding, address: 0, poll: onse }")) ==
          "p.yaml:6:112: devices[0].points[0].poll: unknown value 'onse' (did you mean 'once'?); expected a duration "
          "like 10s, 'once' or 'on_write'");
    CHECK(only_error(device_with("", "{ name: a, area: holding, address: 0, poll: 5ms }")).find("poll:") !=
          std::string::npos);
    CHECK(only_error(device_with("", "{ name: a, area: holding, address: 0, aggregate: max }")) ==
          "p.yaml:6:68: devices[0].points.a.aggregate: 'aggregate' applies in a publish window; the device has no "
          "'publish:' (e.g. publish: 1s), so every poll is sent");
    CHECK(only_error(device_with(", publish: 1s", "{ name: a, area: coil, address: 0, aggregate: mean }")) ==
          "p.yaml:6:81: devices[0].points.a.aggregate: 'aggregate: mean' applies to numeric points; a bool takes "
          "last or count");
    CHECK(only_error(device_with(", publish: 10ms", "{ name: a, area: holding, address: 0 }")) ==
          "p.yaml:6:5: devices[0].publish: publish window 10ms is shorter than the device's interval 20ms; a window "
          "holds at least one poll");
    CHECK(only_error(device_with("",
                                 "{ name: a, area: holding, address: 0, poll: once, on_change: true, "
                                 "heartbeat: 1m }")) ==
          "p.yaml:6:68: devices[0].points.a.heartbeat: 'heartbeat' repeats a value read periodically; this point is "
          "read once");
    CHECK(only_error(device_with("",
                                 "{ name: a, area: holding, address: 0, poll: 10s, on_change: true, "
                                 "heartbeat: 5s }")) ==
          "p.yaml:6:68: devices[0].points.a.heartbeat: heartbeat 5s is shorter than the point's poll interval 10s; "
          "the value is read only once per interval");
    CHECK(only_error(
              device_with(", publish: 1s", "{ name: a, area: holding, address: 0, report: event, aggregate: last }")) ==
          "p.yaml:6:81: devices[0].points.a.aggregate: 'aggregate' applies to properties; an event or attribute is "
          "sent when its trigger fires");
}

TEST_CASE("poll groups: the device's interval first, then by interval, once, on_write; planned together") {
    auto cfg = test::load_ok(device_with("",
                                         "{ name: a, area: holding, address: 0 },"
                                         "{ name: s, area: holding, address: 1, poll: 1s },"
                                         "{ name: f, area: holding, address: 2, poll: 20ms },"
                                         "{ name: o, area: holding, address: 3, poll: once },"
                                         "{ name: w, area: holding, address: 4, poll: on_write },"
                                         "{ name: t, area: holding, address: 5, poll: 100ms }"));
    const auto& d = cfg.devices[0];
    const auto groups = bus::poll_groups(d);
    REQUIRE(groups.size() == 5);
    CHECK(groups[0].kind == config::PollClass::device);
    CHECK(groups[0].points == std::vector<std::uint32_t>{0, 2});  // `poll: 20ms` is the device's own interval
    CHECK(groups[1].interval == core::Duration{100});
    CHECK(groups[2].interval == core::Duration{1000});
    CHECK(groups[3].kind == config::PollClass::once);
    CHECK(groups[4].kind == config::PollClass::on_write);
    // Groups due together are one plan: registers 0..2 in one request, not two.
    const auto model = bus::cost_model_for(cfg.buses[0], -1);
    CHECK(bus::plan_reads(d.points, model, {0, 2, 1}).size() == 1);
    CHECK(bus::plan_reads(d.points, model, {0, 2}).size() == 1);
    const auto text = bus::describe_plans(d, model);
    CHECK(text.find("device d (bus b, unit 1): 5 poll groups\n  every 20ms: 1 request\n    read holding 0..2 "
                    "(3 registers): a f\n") != std::string::npos);
    CHECK(text.find("  once, when the device first answers: 1 request\n") != std::string::npos);
    CHECK(text.find("  at start and after each write to the device: 1 request\n") != std::string::npos);
}

TEST_CASE("the line budget counts each poll group at its own rate") {
    const std::string bus = "buses:\n  b: { driver: modbus-rtu, device: /dev/ttyUSB0, baud: 9600 }\n";
    auto cfg =
        test::load_ok("clouds:\n  c: { platform: mqtt, host: 127.0.0.1 }\n" + bus +
                      "devices:\n  - { name: d, cloud: c, bus: b, unit: 1, interval: 100ms, points: ["
                      "{ name: a, area: holding, address: 0 }, { name: s, area: holding, address: 100, poll: 1s },"
                      "{ name: o, area: holding, address: 200, poll: once } ] }\n");
    const auto budgets = bus::line_budgets(cfg);
    REQUIRE(budgets.size() == 1);
    CHECK(budgets[0].window_us == doctest::Approx(100000));
    CHECK(budgets[0].needed_us == doctest::Approx(bus::cycle_us(cfg.devices[0], cfg.buses[0], false, {0}) +
                                                  0.1 * bus::cycle_us(cfg.devices[0], cfg.buses[0], false, {1})));
}

TEST_CASE("a publish window sends each point's aggregate of a ramp, and starts afresh") {
    auto cfg = test::load_ok(device_with(
        ", publish: 100ms",
        "{ name: last, area: holding, address: 0 }, { name: lo, area: holding, address: 0, aggregate: min },"
        "{ name: hi, area: holding, address: 0, aggregate: max }, { name: avg, area: holding, address: 0, "
        "aggregate: mean }, { name: n, area: holding, address: 0, aggregate: count },"
        "{ name: ev, area: holding, address: 1, report: event }"));
    const auto& d = cfg.devices[0];
    mapping::PublishWindow w(d);
    for (int x = 10; x < 15; ++x) add_ramp_step(w, d, x);
    core::SampleBatch out;
    w.take(d, out);
    check_aggregates_of_10_to_14(out);
    CHECK(w.empty());
    core::SampleBatch none;
    w.take(d, none);
    CHECK(none.values.empty());
}

TEST_CASE("a worker with a publish window sends every poll of a ramp once, window after window") {
    test::WorkerRig rig(device_with(", publish: 100ms",
                                    "{ name: lo, area: holding, address: 0, aggregate: min },"
                                    "{ name: hi, area: holding, address: 0, aggregate: max },"
                                    "{ name: n, area: holding, address: 0, aggregate: count }"),
                        test::FakeLine::Timing::fast);
    {
        auto& l = test::fake_line();
        std::lock_guard<std::mutex> lock(l.m);
        for (int i = 0; i < 5000; ++i) l.script.push_back({i});
    }
    rig.worker->start();
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    rig.worker->stop();  // the last window is flushed, not lost
    const int polls = test::fake_line().step.load();
    REQUIRE(polls < 5000);
    std::lock_guard<std::mutex> lock(rig.m);
    REQUIRE(rig.got.size() >= 4);
    const auto total = check_windows(rig.got);
    CHECK(total == static_cast<std::uint64_t>(polls));
    // 20 ms polls in 100 ms windows: about 5 a window (fewer on a loaded machine, never more than 6).
    CHECK(rig.got.size() <= static_cast<std::size_t>(polls));
}

TEST_CASE("a worker reads each poll class at its rate; on_write points after a write") {
    test::WorkerRig rig(device_with("",
                                    "{ name: a, area: holding, address: 0 },"
                                    "{ name: slow, area: holding, address: 1, poll: 300ms },"
                                    "{ name: o, area: holding, address: 2, poll: once },"
                                    "{ name: mode, area: holding, address: 3, poll: on_write },"
                                    "{ name: set, area: holding, address: 10, writable: true, poll: on_write }"),
                        test::FakeLine::Timing::fast);
    rig.worker->start();
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    auto before = carried(rig);
    CHECK(before["a"] >= 10);
    CHECK(before["slow"] >= 2);
    CHECK(before["slow"] <= 3);
    CHECK(before["o"] == 1);
    CHECK(before["mode"] == 1);
    CHECK(before["set"] == 1);
    auto job = rig.run({{4, core::Value(static_cast<std::uint64_t>(7))}});
    REQUIRE(job->ok);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    rig.worker->stop();
    auto after = carried(rig);
    CHECK(after["o"] == 1);
    CHECK(after["mode"] == 2);  // read again after the write
    CHECK(after["set"] == 3);   // the write's read-back, and the read after it
}
