// Remote diagnostics (issue 24, item 4): each platform's request and answer, the checks of the
// keys, and the bus worker reading a raw range once without writing or touching the schedule.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bus/bus_worker.hpp"
#include "core/clock.hpp"
#include "helpers.hpp"
#include "north/north.hpp"
#include "platforms/platform.hpp"

using namespace fieldlink;
using nlohmann::json;

namespace {

const char* const kDiag = R"(
clouds:
  mq: { platform: mqtt, host: h, diagnostics: true, diagnostics_topic: site/gw1/diag }
  tb: { platform: thingsboard, host: h, username: T, diagnostics: true }
  on: { platform: onenet, host: h, product_id: P1, protocol: thing-model }
buses:
  s: { driver: sim }
devices:
  - { name: m1, cloud: mq, bus: s, points: &pts [ { name: a, area: holding, address: 1 } ] }
  - { name: t, cloud: tb, bus: s, points: *pts }
  - { name: o, cloud: on, bus: s, key: a2V5, points: *pts }
)";

}  // namespace

TEST_CASE("diagnostics: off unless given; a generic MQTT cloud needs diagnostics_topic; datapoints refuse it") {
    const auto cfg = test::load_ok(kDiag);
    CHECK(cfg.clouds[0].diagnostics);
    CHECK_FALSE(cfg.clouds[2].diagnostics);
    const char* devices =
        "buses: { s: { driver: sim } }\ndevices: [ { name: d, cloud: c, bus: s, key: a2V5, points: [ { name: a, "
        "area: coil, address: 0 } ] } ]\n";
    auto r = load_config_text(std::string("clouds: { c: { platform: mqtt, host: h, diagnostics: true } }\n") + devices,
                              "t.yaml", &test::drivers());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].path == "clouds.c.diagnostics_topic");
    r = load_config_text(
        std::string("clouds: { c: { platform: onenet, host: h, product_id: P, diagnostics: true } }\n") + devices,
        "t.yaml", &test::drivers());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].path == "clouds.c.diagnostics");
    CHECK(r.errors[0].message.find("diagnostics works on: ") != std::string::npos);
}

TEST_CASE("diagnostics requests on each platform and their answers") {
    const auto cfg = test::load_ok(kDiag);
    const auto profiles = platforms::make_profiles(cfg);
    const auto sessions = north::plan_sessions(cfg, profiles);
    REQUIRE(sessions.size() == 3);
    const auto& mq = *profiles[0];
    const auto& tb = *profiles[1];
    const auto& on = *profiles[2];

    SUBCASE("generic MQTT: JSON on diagnostics_topic, answers on /reply") {
        const auto subs = mq.subscriptions(sessions[0]);
        CHECK(std::find(subs.begin(), subs.end(), "site/gw1/diag") != subs.end());
        auto in = mq.on_message(sessions[0], "site/gw1/diag",
                                R"({"id":"5","request":"read_registers","device":"m1","area":"input","address":3,)"
                                R"("count":4})",
                                {});
        REQUIRE(in.diagnostics);
        const auto& q = *in.diagnostics;
        CHECK(q.problem.empty());
        CHECK(q.what == "read_registers");
        CHECK(q.device == "m1");
        CHECK(q.area == "input");
        CHECK(q.address == 3);
        CHECK(q.count == 4);
        CHECK(q.id == "5");
        CHECK(q.reply_topic == "site/gw1/diag/reply");
        auto m = mq.diagnostics_reply(sessions[0], q, true, R"({"values":[1,2]})");
        CHECK(m.topic == "site/gw1/diag/reply");
        CHECK(json::parse(m.payload) == json::parse(R"({"id":"5","ok":true,"result":{"values":[1,2]}})"));
        m = mq.diagnostics_reply(sessions[0], q, false, "no configured device 'x'");
        CHECK(json::parse(m.payload) == json::parse(R"({"id":"5","ok":false,"error":"no configured device 'x'"})"));
        // Defaults, and what is refused.
        in = mq.on_message(sessions[0], "site/gw1/diag", R"({"request":"read_registers","device":"m1","address":0})",
                           {});
        CHECK(in.diagnostics->area == "holding");
        CHECK(in.diagnostics->count == 1);
        CHECK(mq.on_message(sessions[0], "site/gw1/diag", R"({"request":"log"})", {}).diagnostics->lines == 50);
        CHECK(mq.on_message(sessions[0], "site/gw1/diag", R"({"request":"write"})", {})
                  .diagnostics->problem.find("unknown request 'write'") != std::string::npos);
        CHECK(mq.on_message(sessions[0], "site/gw1/diag", "not json", {})
                  .diagnostics->problem.find("must be a JSON object") != std::string::npos);
        CHECK(mq.on_message(sessions[0], "site/gw1/diag", R"({"request":"log","lines":"x"})", {})
                  .diagnostics->problem.find("lines") != std::string::npos);
    }
    SUBCASE("ThingsBoard: the gateway device's own RPC fieldlink_diagnostics, answered on rpc/response/{id}") {
        const auto subs = tb.subscriptions(sessions[1]);
        CHECK(std::find(subs.begin(), subs.end(), "v1/devices/me/rpc/request/+") != subs.end());
        auto in = tb.on_message(sessions[1], "v1/devices/me/rpc/request/17",
                                R"({"method":"fieldlink_diagnostics","params":{"request":"bus_stats"}})", {});
        REQUIRE(in.diagnostics);
        CHECK(in.diagnostics->what == "bus_stats");
        CHECK(in.diagnostics->reply_topic == "v1/devices/me/rpc/response/17");
        const auto m = tb.diagnostics_reply(sessions[1], *in.diagnostics, true, R"({"buses":[]})");
        CHECK(m.topic == "v1/devices/me/rpc/response/17");
        CHECK(json::parse(m.payload) == json::parse(R"({"ok":true,"result":{"buses":[]}})"));
        in = tb.on_message(sessions[1], "v1/devices/me/rpc/request/18", R"({"method":"reboot","params":{}})", {});
        REQUIRE(in.diagnostics);
        CHECK(in.diagnostics->problem.find("unknown method 'reboot'") != std::string::npos);
    }
    SUBCASE("OneNET thing model: the service fieldlink_diagnostics, on any device (refused there when off)") {
        auto in = on.on_message(sessions[2], "$sys/P1/o/thing/service/fieldlink_diagnostics/invoke",
                                R"({"id":"9","version":"1.0","params":{"request":"log","lines":3}})", {});
        REQUIRE(in.diagnostics);
        CHECK(in.diagnostics->lines == 3);
        CHECK(in.diagnostics->id == "9");
        CHECK(in.diagnostics->reply_topic == "$sys/P1/o/thing/service/fieldlink_diagnostics/invoke_reply");
        auto m = on.diagnostics_reply(sessions[2], *in.diagnostics, true, R"({"lines":["a"]})");
        auto j = json::parse(m.payload);
        CHECK(j["code"] == 200);
        CHECK(j["data"] == json::parse(R"({"lines":["a"]})"));
        m = on.diagnostics_reply(sessions[2], *in.diagnostics, false, "diagnostics are off");
        j = json::parse(m.payload);
        CHECK(j["code"] == 100);
        CHECK(j["msg"] == "diagnostics are off");
    }
}

TEST_CASE("bus worker: a raw read reads the range once, writes nothing, and reports an exception") {
    test::WorkerRig rig(R"(
clouds:
  c: { platform: mqtt, host: 127.0.0.1 }
buses:
  b: { driver: fake }
devices:
  - { name: d, cloud: c, bus: b, unit: 3, interval: 1h, points: [ { name: a, area: holding, address: 0 } ] }
)",
                        test::FakeLine::Timing::fast);
    {
        std::lock_guard<std::mutex> lock(test::fake_line().m);
        test::fake_line().regs[500] = 7;
        test::fake_line().regs[501] = 8;
        test::fake_line().bits[9] = 1;
    }
    std::mutex m;
    int finished = 0;
    const auto raw = [&](std::uint8_t area, std::uint16_t address, std::uint16_t count) {
        auto j = std::make_shared<core::WriteJob>();
        j->id = 1;
        j->raw_area = area;
        j->raw_address = address;
        j->raw_count = count;
        j->deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        j->born_boot_ms = core::boot_ms();
        j->done = [&](const core::WriteJobPtr&) {
            std::lock_guard<std::mutex> lock(m);
            ++finished;
        };
        return j;
    };
    auto regs = raw(static_cast<std::uint8_t>(config::Area::holding), 500, 3);
    auto bits = raw(static_cast<std::uint8_t>(config::Area::coil), 8, 3);
    rig.worker->submit(regs);
    rig.worker->submit(bits);
    rig.worker->start();
    for (int i = 0; i < 500; ++i) {
        {
            std::lock_guard<std::mutex> lock(m);
            if (finished == 2) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    {
        std::lock_guard<std::mutex> lock(test::fake_line().m);
        test::fake_line().exception_units[3] = 2;
    }
    auto refused = raw(static_cast<std::uint8_t>(config::Area::holding), 0, 1);
    rig.worker->submit(refused);
    for (int i = 0; i < 500; ++i) {
        {
            std::lock_guard<std::mutex> lock(m);
            if (finished == 3) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    rig.worker->stop();
    REQUIRE(finished == 3);
    CHECK(regs->ok);
    CHECK(regs->raw_values == std::vector<std::uint16_t>{7, 8, 502});  // (an unset address reads as itself)
    CHECK(bits->ok);
    CHECK(bits->raw_values == std::vector<std::uint16_t>{0, 1, 0});
    CHECK_FALSE(refused->ok);
    CHECK(refused->failure == core::WriteJob::Failure::exception);
    CHECK(refused->reason.find("Modbus exception 2") != std::string::npos);
    std::lock_guard<std::mutex> lock(test::fake_line().m);
    CHECK(test::fake_line().writes.empty());
    CHECK(rig.worker->counters(0).writes.load() == 0);
}
