// Commands with a lifetime (issue 24, item 3): the platform's request time, state writes that
// replace older ones still queued, the bus worker refusing what has outlived command_ttl, and the
// audit log that records every write, refusal and expiry.
#include <doctest/doctest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "bus/bus_worker.hpp"
#include "core/clock.hpp"
#include "helpers.hpp"
#include "north/north.hpp"
#include "platforms/platform.hpp"
#include "platforms/sparkplug_payload.hpp"
#include "store/audit.hpp"

using namespace fieldlink;
using nlohmann::json;

namespace {

const char* const kCommands = R"(
clouds:
  mq: { platform: mqtt, host: h, command_topic: "fl/{device}/cmd", command_ttl: 5s }
  tb: { platform: thingsboard, host: h, username: TOKEN }
  sp: { platform: sparkplug, host: h, group_id: G, edge_node_id: N }
buses:
  s: { driver: sim }
devices:
  - { name: m, cloud: mq, bus: s, points: &pts [ { name: relay, area: coil, address: 1, writable: true, commands: { "on": true } }, { name: sp, area: holding, address: 10, writable: true } ] }
  - { name: t, cloud: tb, bus: s, points: *pts }
  - { name: p, cloud: sp, bus: s, points: *pts }
)";

struct Commands {
    config::Config cfg = test::load_ok(kCommands);
    std::vector<std::unique_ptr<north::Profile>> profiles = platforms::make_profiles(cfg);
    std::vector<north::SessionInfo> sessions = north::plan_sessions(cfg, profiles);

    north::Inbound ask(std::size_t session, const std::string& topic, const std::string& payload) {
        const auto& s = sessions.at(session);
        return profiles[static_cast<std::size_t>(s.cloud - cfg.clouds.data())]->on_message(s, topic, payload, {});
    }
};

}  // namespace

TEST_CASE("command_ttl: 30 s unless given, 1 s to a day") {
    CHECK(test::load_ok(kCommands).clouds[0].command_ttl.count() == 5000);
    CHECK(test::load_ok(kCommands).clouds[1].command_ttl.count() == 30'000);
    const auto r = load_config_text(
        "clouds: { c: { platform: mqtt, host: h, command_ttl: 100ms } }\nbuses: { s: { driver: sim } }\n"
        "devices: [ { name: d, cloud: c, bus: s, points: [ { name: a, area: coil, address: 0 } ] } ]\n",
        "t.yaml", &test::drivers());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].path == "clouds.c.command_ttl");
}

TEST_CASE("a command's request time and whether it sets a state, per platform") {
    Commands f;
    auto in = f.ask(0, "fl/m/cmd", R"({"id":"9","ts":1700000000123,"sp":3})");
    REQUIRE(in.write);
    CHECK(in.write->requested_ms == 1700000000123);
    CHECK(in.write->sets_state);
    CHECK(in.write->values.size() == 1);  // "ts" is not a point
    in = f.ask(0, "fl/m/cmd", "on");      // a command name: an action, no time
    REQUIRE(in.write);
    CHECK_FALSE(in.write->sets_state);
    CHECK_FALSE(in.write->requested_ms);
    in = f.ask(0, "fl/m/cmd", R"({"ts":"yesterday","sp":3})");
    CHECK(in.refused);
    CHECK(in.problem.find("\"ts\" is when the command was issued") != std::string::npos);
    in = f.ask(1, "v1/gateway/attributes", R"({"device":"t","data":{"sp":4}})");
    REQUIRE(in.write);
    CHECK(in.write->sets_state);  // an attribute is a state
    in = f.ask(1, "v1/gateway/rpc", R"({"device":"t","data":{"id":1,"method":"set","params":{"sp":5}}})");
    REQUIRE(in.write);
    CHECK_FALSE(in.write->sets_state);  // an RPC is an action

    in = f.ask(0, "fl/m/cmd", "");  // a retained command cleared: nothing to do, nothing to answer
    CHECK_FALSE(in.command);
    CHECK_FALSE(in.write);
    CHECK_FALSE(in.refused);
    CHECK(in.replies.empty());

    namespace sp = platforms::sparkplug;
    sp::Payload dcmd;  // Sparkplug: the payload's timestamp is the host's send time
    dcmd.timestamp = 1700000000456;
    sp::Metric m;
    m.name = "sp";
    m.datatype = sp::DataType::uint16;
    m.value = core::Value(std::uint64_t{7});
    dcmd.metrics.push_back(m);
    std::string err;
    const auto bytes = sp::encode(dcmd, &err);
    REQUIRE_MESSAGE(bytes, err);
    in = f.ask(2, "spBv1.0/G/DCMD/N/p", *bytes);
    REQUIRE_MESSAGE(in.write, in.problem);
    CHECK(in.write->requested_ms == 1700000000456);
    CHECK(in.write->sets_state);
}

namespace {

const char* const kWorker = R"(
clouds:
  c: { platform: mqtt, host: 127.0.0.1 }
buses:
  b: { driver: fake }
devices:
  - name: d
    cloud: c
    bus: b
    interval: 1h
    points:
      - { name: relay, area: coil, address: 1, writable: true }
      - { name: sp, area: holding, address: 10, writable: true }
      - { name: level, area: holding, address: 20, writable: true }
)";

core::WriteJobPtr job(std::uint64_t id, std::vector<core::PointValue> values, bool state, std::vector<int>& order,
                      std::mutex& m) {
    auto j = std::make_shared<core::WriteJob>();
    j->id = id;
    j->values = std::move(values);
    j->sets_state = state;
    j->deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    j->born_boot_ms = core::boot_ms();
    j->ttl_ms = 30'000;
    j->done = [&order, &m, id](const core::WriteJobPtr&) {
        std::lock_guard<std::mutex> lock(m);
        order.push_back(static_cast<int>(id));
    };
    return j;
}

std::size_t line_writes() {
    std::lock_guard<std::mutex> lock(test::fake_line().m);
    return test::fake_line().writes.size();
}

void check_worker_outcomes(const core::WriteJobPtr& old_sp, const core::WriteJobPtr& newer,
                           const std::vector<core::WriteJobPtr>& written, const core::WriteJobPtr& stale) {
    CHECK(old_sp->failure == core::WriteJob::Failure::superseded);
    CHECK(old_sp->reason.find("(request 4)") != std::string::npos);
    CHECK(old_sp->written == 0);
    CHECK(newer->failure == core::WriteJob::Failure::superseded);
    CHECK(newer->reason.find("(request 3)") != std::string::npos);
    for (const auto& j : written) CHECK(j->ok);
    CHECK(stale->failure == core::WriteJob::Failure::expired);
    CHECK(stale->reason.rfind("expired: the command was 31.", 0) == 0);
    CHECK(stale->reason.find("(command_ttl 30.0 s); nothing was written") != std::string::npos);
    CHECK(stale->written == 0);
}

}  // namespace

TEST_CASE("bus worker: a write older than its lifetime is refused unwritten; queued state writes coalesce") {
    test::WorkerRig rig(kWorker, test::FakeLine::Timing::fast);
    {
        std::lock_guard<std::mutex> lock(test::fake_line().m);
        test::fake_line().refused_writes.clear();
    }
    std::mutex m;
    std::vector<int> order;
    const auto pv = [](std::uint32_t point, std::int64_t v) {
        core::PointValue p;
        p.point_index = point;
        p.value = core::Value(v);
        return p;
    };
    // Queued before the worker starts, so it finds them together.
    auto old_sp = job(1, {pv(1, 10)}, true, order, m);             // replaced by the newest setting sp: 4
    auto newer = job(2, {pv(1, 11), pv(2, 5)}, true, order, m);    // replaced by 3 (the same points)
    auto partial = job(3, {pv(1, 12), pv(2, 6)}, true, order, m);  // not covered by 4 (level): written
    auto only_sp = job(4, {pv(1, 13)}, true, order, m);            // written (the newest)
    auto action1 = job(5, {pv(0, 1)}, false, order, m);            // actions never coalesce
    auto action2 = job(6, {pv(0, 0)}, false, order, m);
    auto stale = job(7, {pv(2, 7)}, true, order, m);
    stale->born_boot_ms = core::boot_ms() - 31'000;  // issued 31 s ago, ttl 30 s
    const std::size_t before = line_writes();
    for (const auto& j : {old_sp, newer, partial, only_sp, action1, action2, stale}) rig.worker->submit(j);
    rig.worker->start();
    for (int i = 0; i < 500; ++i) {
        {
            std::lock_guard<std::mutex> lock(m);
            if (order.size() == 7) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    rig.worker->stop();
    REQUIRE(order.size() == 7);
    check_worker_outcomes(old_sp, newer, {partial, only_sp, action1, action2}, stale);
    CHECK(line_writes() - before == 5);  // 3: two points, 4: one, the actions: one each
    std::lock_guard<std::mutex> lock(test::fake_line().m);
    CHECK(test::fake_line().regs[10] == 13);  // the newest set point
    CHECK(test::fake_line().regs[20] == 6);   // not the expired 7
}

namespace {

std::vector<json> read_lines(const std::string& path) {
    std::vector<json> out;
    for (const auto& l : store::AuditLog::tail(path, 1000)) out.push_back(json::parse(l));
    return out;
}

store::AuditEntry done_entry() {
    store::AuditEntry e;
    e.at_ms = 1700000000000;
    e.cloud = "local";
    e.from = "command id 7";
    e.requested_ms = 1699999999000;
    e.device = "pump";
    e.asked = {{"relay", core::Value(true)}, {"sp", core::Value(21.5)}};
    e.result = "done";
    e.read_back = {{"relay", core::Value(true)}, {"sp", core::Value(21.5)}};
    return e;
}

void check_lines(const std::vector<json>& lines) {
    REQUIRE(lines.size() == 3);
    CHECK(lines[0] == json::parse(R"({"ts":1700000000000,"cloud":"local","from":"command id 7",
        "requested":1699999999000,"device":"pump","asked":{"relay":true,"sp":21.5},"result":"done",
        "read_back":{"relay":true,"sp":21.5}})"));
    CHECK(lines[1]["result"] == "expired");
    CHECK(lines[1]["reason"] == "expired: the command was 62.0 s old");
    CHECK_FALSE(lines[1].contains("read_back"));
    CHECK(lines[2]["result"] == "refused");
    CHECK(lines[2]["text"].get<std::string>().find("{\"sp\":") == 0);  // invalid bytes replaced
    CHECK_FALSE(lines[2].contains("asked"));
}

}  // namespace

TEST_CASE("audit log: one JSON line per write, kept across reopening (a restart)") {
    const std::string dir = test::temp_dir("fl-audit");
    const std::string path = dir + "/audit.log";
    store::AuditEntry e = done_entry();
    {
        store::AuditLog log(path);
        REQUIRE(log.append(e));
        e.result = "expired";
        e.reason = "expired: the command was 62.0 s old";
        e.read_back.clear();
        REQUIRE(log.append(e));
    }
    {  // a restart: appended, nothing lost
        store::AuditLog log(path);
        store::AuditEntry refused;
        refused.at_ms = 1700000000500;
        refused.cloud = "local";
        refused.from = "command";
        refused.device = "pump";
        refused.text = std::string("{\"sp\":\xff\xfe") + "}";  // what came, not UTF-8
        refused.result = "refused";
        refused.reason = "point sp: out of range";
        REQUIRE(log.append(refused));
    }
    check_lines(read_lines(path));
    std::remove(path.c_str());
    rmdir(dir.c_str());
}

TEST_CASE("audit log: bounded to two files; a directory that is not there loses entries, counted") {
    const std::string dir = test::temp_dir("fl-audit");
    store::AuditEntry e = done_entry();
    {  // past the size the file turns into .1, the one before is dropped
        store::AuditLog small(dir + "/small.log", 1000);
        for (int i = 0; i < 100; ++i) {
            e.at_ms = i;
            REQUIRE(small.append(e));
        }
    }
    std::ifstream one(dir + "/small.log.1", std::ios::ate);
    std::ifstream now(dir + "/small.log", std::ios::ate);
    CHECK(static_cast<long>(one.tellg()) < 1400);
    CHECK(static_cast<long>(now.tellg()) < 1400);
    const auto kept = read_lines(dir + "/small.log");
    REQUIRE_FALSE(kept.empty());
    CHECK(kept.back()["ts"] == 99);  // the newest kept, in order
    CHECK(kept.front()["ts"].get<int>() > 80);

    store::AuditLog nowhere(dir + "/missing/audit.log");
    CHECK_FALSE(nowhere.append(e));
    CHECK(nowhere.problem().find("cannot open") == 0);
    CHECK(nowhere.lost() == 1);
    std::remove((dir + "/small.log").c_str());
    std::remove((dir + "/small.log.1").c_str());
    rmdir(dir.c_str());
}
