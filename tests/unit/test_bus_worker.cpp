#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "bus/bus_worker.hpp"
#include "config/diff.hpp"
#include "fake_driver.hpp"
#include "helpers.hpp"

using namespace fieldlink;

namespace {

using Rig = test::WorkerRig;

// Unit 2 never answers (timeout) and unit 3 answers with exception 2; unit 1 reads its addresses.
void flaky_units() {
    auto& l = test::fake_line();
    std::lock_guard<std::mutex> lock(l.m);
    l.dead_units = {2};
    l.exception_units = {{3, 2}, {4, 11}};
}

const char* kConfig = R"(
clouds:
  c: { platform: mqtt, host: 127.0.0.1 }
buses:
  b: { driver: fake }
devices:
  - { name: good, cloud: c, bus: b, unit: 1, interval: 20ms, points: [ { name: x, area: holding, address: 5, type: uint16 } ] }
  - { name: dead, cloud: c, bus: b, unit: 2, interval: 20ms, points: [ { name: x, area: holding, address: 5 } ] }
  - { name: refuses, cloud: c, bus: b, unit: 3, interval: 20ms, points: [ { name: x, area: holding, address: 5 } ] }
  - { name: behind, cloud: c, bus: b, unit: 4, interval: 20ms, points: [ { name: x, area: holding, address: 5 } ] }
)";

}  // namespace

TEST_CASE("a dead unit is backed off while its neighbour keeps polling; exceptions are counted; 10/11 are offline") {
    Rig rig(kConfig);
    flaky_units();
    auto& w = *rig.worker;
    auto& c = rig;
    w.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    w.stop();

    const auto& good = w.counters(0);
    const auto& dead = w.counters(1);
    const auto& refuses = w.counters(2);
    // 700 ms at 20 ms is ~35 cycles; the dead unit gets 2 tries (1 + 1 retry), then one probe
    // per backoff period (>= 500 ms): a handful, however slow the machine.
    CHECK(good.ok.load() >= 5);
    CHECK(test::fake_line().reads_of(2) <= 4);
    CHECK(dead.timeouts.load() == static_cast<std::uint64_t>(test::fake_line().reads_of(2)));
    CHECK(dead.ok.load() == 0);
    CHECK(refuses.exceptions.load() >= 5);
    CHECK(test::fake_line().reads_of(4) <= 4);  // exception 11: the unit behind a gateway is offline
    std::lock_guard<std::mutex> lock(c.m);
    REQUIRE(!c.got.empty());
    std::vector<std::pair<std::uint32_t, std::string>> down;
    for (const auto& b : c.got) {
        if (b.kind == core::SampleBatch::Kind::device_down) {  // once each: they never answer
            CHECK(b.values.empty());
            down.emplace_back(b.device_index, b.reason);
            continue;
        }
        CHECK(b.kind == core::SampleBatch::Kind::samples);
        CHECK(b.device_index == 0);  // only the good unit produced samples
        REQUIRE(b.values.size() == 1);
        CHECK(std::get<std::uint64_t>(b.values[0].value) == 5);
    }
    REQUIRE(down.size() == 2);
    std::sort(down.begin(), down.end());
    CHECK(down[0].first == 1);
    CHECK(down[0].second.rfind("no response (timeout): ", 0) == 0);
    CHECK(down[1] ==
          std::pair<std::uint32_t, std::string>{3, "Modbus exception 11 (gateway target device failed to respond)"});
}

namespace {

// One unit played through a script, one step per poll: registers 0..3 are alarm, state, Ua and
// temp; a step of -1 does not answer.
const std::vector<std::vector<int>> kScript = {
    {0, 5, 230, 20}, {0, 5, 231, 21}, {1, 5, 251, 22}, {1, 6, 252, 23}, {0, 6, 229, 24}, {-1}, {0, 6, 230, 25}};
const int kSteps = static_cast<int>(kScript.size());

std::string names(const config::DeviceConfig& d, const core::SampleBatch& b) {
    std::string out;
    for (const auto& pv : b.values) out += (out.empty() ? "" : " ") + d.points[pv.point_index].name;
    return out;
}

}  // namespace

TEST_CASE("events and attributes go when their trigger fires; the link event when the unit stops and answers") {
    Rig rig(R"(
clouds:
  c: { platform: mqtt, host: 127.0.0.1 }
buses:
  b: { driver: fake, retries: 0 }
devices:
  - name: m
    cloud: c
    bus: b
    unit: 1
    interval: 20ms
    link_event: link
    points:
      - { name: alarm, area: holding, address: 0, report: event, event: over, trigger: rising }
      - { name: state, area: holding, address: 1, report: attribute }
      - { name: Ua, area: holding, address: 2, report: event, event: over, trigger: none }
      - { name: temp, area: holding, address: 3 }
)");
    const auto& dev = rig.cfg.devices[0];
    REQUIRE(dev.points.size() == 5);  // the link point added by validation
    CHECK(dev.points[4].name == "online");
    CHECK(dev.points[4].link);
    CHECK(dev.points[4].event_name() == "link");
    {
        std::lock_guard<std::mutex> lock(test::fake_line().m);
        test::fake_line().script = kScript;
    }
    auto& w = *rig.worker;
    auto& c = rig;
    w.start();
    for (int i = 0; i < 500 && test::fake_line().step.load() < kSteps; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    w.stop();
    REQUIRE(test::fake_line().step.load() == kSteps);
    std::vector<std::string> seen;
    std::lock_guard<std::mutex> lock(c.m);
    for (const auto& b : c.got) {
        if (b.kind == core::SampleBatch::Kind::samples) {
            seen.push_back(names(dev, b));
        } else {
            seen.emplace_back(b.kind == core::SampleBatch::Kind::device_down ? "<down>" : "<up>");
        }
    }
    const std::vector<std::string> expected = {
        "state temp online",  // first reading: attribute and link state (changes); alarm 0 does not rise
        "temp",
        "alarm Ua temp",  // alarm rises: the event goes with its parameter Ua
        "state temp",     // alarm stays 1: no event; the attribute changed
        "temp",           // alarm falls: a rising trigger stays quiet
        "<down>",
        "online",  // link event: the unit stopped answering
        "<up>",
        "temp online",  // answering again
    };
    REQUIRE(seen.size() >= expected.size());
    for (std::size_t i = expected.size(); i < seen.size(); ++i) CHECK(seen[i] == "temp");  // polls until stop()
    seen.resize(expected.size());
    CHECK(seen == expected);
}

TEST_CASE("backoff: capped, equal jitter in [b/2, b], full jitter in [0, b]") {
    core::Backoff equal(std::chrono::milliseconds(1000), std::chrono::milliseconds(8000));
    core::Backoff full(std::chrono::milliseconds(1000), std::chrono::milliseconds(8000), core::Backoff::Jitter::full);
    for (int i = 0; i < 200; ++i) {
        const auto e1 = equal.next(1).count(), e4 = equal.next(4).count(), e9 = equal.next(9).count();
        CHECK(e1 >= 500);
        CHECK(e1 <= 1000);
        CHECK(e4 >= 4000);
        CHECK(e4 <= 8000);
        CHECK(e9 <= 8000);  // capped
        const auto f3 = full.next(3).count();
        CHECK(f3 >= 0);
        CHECK(f3 <= 4000);
    }
}

TEST_CASE("a read that stop() interrupts is not counted against the device") {
    Rig rig(R"(
clouds:
  c: { platform: mqtt, host: 127.0.0.1 }
buses:
  b: { driver: fake, retries: 2 }
devices:
  - { name: d, cloud: c, bus: b, unit: 1, interval: 20ms, points: [ { name: x, area: holding, address: 5 } ] }
)");
    {
        std::lock_guard<std::mutex> lock(test::fake_line().m);
        test::fake_line().block_reads = true;  // until the host interrupts the read
    }
    auto& w = *rig.worker;
    w.start();
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (test::fake_line().blocked_reads.load() == 0 && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    REQUIRE(test::fake_line().blocked_reads.load() == 1);
    w.stop();  // the shutdown summary must not blame the device (or the link) for it
    const auto& d = w.counters(0);
    CHECK(d.polls.load() <= 1);
    CHECK(d.link_errors.load() == 0);
    CHECK(d.timeouts.load() == 0);
    CHECK(test::fake_line().blocked_reads.load() == 1);  // no retry once stopping
}

TEST_CASE("a reload moves a paused worker to the new configuration: unchanged devices keep counting") {
    const char* before = R"(
clouds:
  c: { platform: mqtt, host: 127.0.0.1 }
buses:
  b: { driver: fake }
devices:
  - { name: keep, cloud: c, bus: b, unit: 1, interval: 20ms, points: [ { name: x, area: holding, address: 5 } ] }
  - { name: change, cloud: c, bus: b, unit: 1, interval: 20ms, points: [ { name: x, area: holding, address: 6, writable: true } ] }
)";
    Rig rig(before);
    auto& w = *rig.worker;
    auto& c = rig;
    w.start();
    while (w.counters(0).ok.load() < 3 || w.counters(1).ok.load() < 3) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const auto* keep_counters = &w.counters(0);

    // `change` reads another register now, and a third device comes.
    std::string text = before;
    text.replace(text.find("address: 6"), 10, "address: 7");
    text +=
        "  - { name: new, cloud: c, bus: b, unit: 1, interval: 20ms, points: [ { name: x, area: holding, address: 8 } "
        "] }\n";
    auto next = rig.load(text);
    config::align_devices(rig.cfg, next);

    REQUIRE(w.pause(std::chrono::seconds(5)));
    const auto polls_paused = w.counters(0).polls.load();
    // A write for the changed device, queued before the reload: refused, never written with the
    // old meaning of its point.
    auto job = std::make_shared<core::WriteJob>();
    job->device = 1;
    job->values.push_back({0, core::Value{std::uint64_t{1}}});
    job->deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    std::atomic<bool> answered{false};
    job->done = [&answered](core::WriteJobPtr) { answered = true; };
    w.submit(job);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(w.counters(0).polls.load() == polls_paused);  // paused: no request
    CHECK_FALSE(answered.load());
    {
        std::lock_guard<std::mutex> lock(c.m);
        c.got.clear();
    }
    w.rebase(next, 0);
    CHECK(answered.load());
    CHECK(job->failure == core::WriteJob::Failure::refused);
    w.resume();
    while (w.device_count() < 3 || w.counters(2).ok.load() < 3 || w.counters(1).ok.load() < 3) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    w.stop();
    REQUIRE(w.device_count() == 3);
    CHECK(&w.counters(0) == keep_counters);            // the same counters, going on
    CHECK(w.counters(0).polls.load() > polls_paused);  // ... from where they were
    std::lock_guard<std::mutex> lock(c.m);
    for (const auto& b : c.got) {
        if (b.kind != core::SampleBatch::Kind::samples) continue;
        REQUIRE(b.values.size() == 1);
        // The fake line answers a register with its address: each device's new layout.
        const std::uint64_t expected[] = {5, 7, 8};
        REQUIRE(b.device_index < 3);
        CHECK(std::get<std::uint64_t>(b.values[0].value) == expected[b.device_index]);
    }
}
