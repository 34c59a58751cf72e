// Writes from the cloud: what a point accepts, the register image a write puts on the wire, the
// configuration rules, every platform's command shapes, and the bus worker's write path.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "bus/bus_worker.hpp"
#include "config/writes.hpp"
#include "fake_driver.hpp"
#include "helpers.hpp"
#include "mapping/decode.hpp"
#include "north/north.hpp"
#include "platforms/json.hpp"
#include "platforms/platform.hpp"

using namespace fieldlink;
using nlohmann::json;

namespace {

config::PointConfig point(const char* name, config::DataType t, bool writable = true) {
    config::PointConfig p;
    p.name = name;
    p.type = t;
    p.writable = writable;
    return p;
}

std::optional<core::Value> accept(const config::PointConfig& p, const core::Value& v, std::string* why = nullptr) {
    std::string w;
    auto r = config::accept_write(p, v, &w);
    if (why) *why = w;
    return r;
}

}  // namespace

TEST_CASE("accept_write: writable only, the point's type, its raw range through scale, min and max") {
    using config::DataType;
    std::string why;
    CHECK_FALSE(accept(point("ro", DataType::uint16, false), std::int64_t{1}, &why));
    CHECK(why == "point ro is not writable");

    auto b = point("relay", DataType::boolean);
    CHECK(accept(b, true) == core::Value(true));
    CHECK(accept(b, std::int64_t{0}) == core::Value(false));
    CHECK(accept(b, std::string("1")) == core::Value(true));
    CHECK_FALSE(accept(b, std::string("on"), &why));  // only through a command
    CHECK(why.rfind("type mismatch", 0) == 0);
    b.commands.push_back({"on", "true", {}, core::Value(true)});
    CHECK(accept(b, std::string("on")) == core::Value(true));

    auto u = point("u", DataType::uint16);
    CHECK(accept(u, std::int64_t{65535}) == core::Value(std::uint64_t{65535}));
    CHECK_FALSE(accept(u, std::int64_t{65536}, &why));
    CHECK(why == "out of range: 65536 given, point u takes 0..65535");
    CHECK_FALSE(accept(u, std::int64_t{-1}));
    CHECK_FALSE(accept(u, 1.5, &why));  // not a whole number
    CHECK(why.rfind("type mismatch", 0) == 0);
    CHECK(accept(u, std::string("42")) == core::Value(std::uint64_t{42}));  // OneNET sends numbers as text
    CHECK_FALSE(accept(u, true));
    CHECK_FALSE(accept(u, std::string("warm")));

    auto i = point("i", DataType::int16);
    CHECK(accept(i, std::int64_t{-32768}) == core::Value(std::int64_t{-32768}));
    CHECK_FALSE(accept(i, std::int64_t{32768}));

    auto big = point("big", DataType::uint64);
    CHECK(accept(big, std::uint64_t{18446744073709551615ULL}) == core::Value(std::uint64_t{18446744073709551615ULL}));
    auto sbig = point("sbig", DataType::int64);
    CHECK(accept(sbig, std::int64_t{-9223372036854775807LL}) == core::Value(std::int64_t{-9223372036854775807LL}));
    // A JSON number past 64 bits arrives as a double: refused, never rounded into the register.
    CHECK_FALSE(accept(big, 18446744073709551616.0, &why));
    CHECK(why.rfind("out of range", 0) == 0);
    CHECK_FALSE(accept(sbig, 9223372036854775808.0, &why));
    CHECK(why.rfind("out of range", 0) == 0);
    CHECK(accept(big, 1e19) == core::Value(std::uint64_t{10000000000000000000ULL}));  // whole and in range

    auto scaled = point("level", DataType::uint16);
    scaled.scale = 0.1;
    CHECK(accept(scaled, 12.3) == core::Value(12.3));
    CHECK(accept(scaled, std::int64_t{6553}) == core::Value(6553.0));
    CHECK_FALSE(accept(scaled, 6553.6, &why));
    CHECK(why == "out of range: 6553.6 given, point level takes 0..6553.5");

    auto f = point("sp", DataType::float32);
    f.min = 0;
    f.max = 100;
    CHECK(accept(f, std::string("30.5")) == core::Value(30.5));
    CHECK_FALSE(accept(f, 100.5));
    CHECK_FALSE(accept(f, std::int64_t{-1}));
    CHECK(config::write_range(f) == std::pair<double, double>{0.0, 100.0});

    auto s = point("label", DataType::string);
    s.length = 2;
    CHECK(accept(s, std::string("abcd")) == core::Value(std::string("abcd")));
    CHECK_FALSE(accept(s, std::string("abcde"), &why));
    CHECK(why.rfind("out of range", 0) == 0);
    CHECK_FALSE(accept(s, std::int64_t{5}));
    CHECK_FALSE(accept(s, std::string("a\0b", 3), &why));
    CHECK(why.find("NUL") != std::string::npos);

    CHECK(config::value_from_text("true") == core::Value(true));
    CHECK(config::value_from_text("-3") == core::Value(std::int64_t{-3}));
    CHECK(config::value_from_text("18446744073709551615") == core::Value(std::uint64_t{18446744073709551615ULL}));
    CHECK(config::value_from_text("2.5") == core::Value(2.5));
    CHECK(config::value_from_text("+1") == core::Value(std::string("+1")));
    CHECK(config::value_from_text("nan") == core::Value(std::string("nan")));
}

TEST_CASE("encode_registers is the inverse of decode_registers, in every type and word order") {
    using config::DataType;
    using config::WordOrder;
    const std::pair<DataType, core::Value> cases[] = {
        {DataType::uint16, std::uint64_t{65535}},
        {DataType::int16, std::int64_t{-2}},
        {DataType::int32, std::int64_t{-123456}},
        {DataType::uint32, std::uint64_t{4000000000ULL}},
        {DataType::int64, std::int64_t{-9223372036854775807LL}},
        {DataType::uint64, std::uint64_t{18446744073709551615ULL}},
        {DataType::float32, 42.5},
        {DataType::float64, 0.1},
        {DataType::bcd, std::uint64_t{1234}},
        {DataType::boolean, true},
    };
    for (auto order : {WordOrder::abcd, WordOrder::badc, WordOrder::cdab, WordOrder::dcba}) {
        for (const auto& one : cases) {
            const auto type = one.first;
            const auto& value = one.second;
            mapping::PointCodec c;
            c.type = type;
            c.order = order;
            std::uint16_t regs[4] = {};
            std::string err;
            REQUIRE(mapping::encode_registers(c, value, regs, &err));
            auto back = mapping::decode_registers(c, regs, 4, &err);
            REQUIRE(back);
            CHECK_MESSAGE(*back == value, config::to_string(type) << " " << config::to_string(order));
        }
    }
    mapping::PointCodec f;
    f.type = DataType::float32;
    std::uint16_t regs[2] = {};
    REQUIRE(mapping::encode_registers(f, 42.5, regs, nullptr));
    CHECK(regs[0] == 0x422A);  // one FC16 of both words: 0x422A0000
    CHECK(regs[1] == 0x0000);
    f.order = WordOrder::cdab;
    REQUIRE(mapping::encode_registers(f, 42.5, regs, nullptr));
    CHECK(regs[0] == 0x0000);
    CHECK(regs[1] == 0x422A);

    mapping::PointCodec scaled;
    scaled.type = DataType::uint16;
    scaled.scale = 0.1;
    scaled.offset = -40;
    REQUIRE(mapping::encode_registers(scaled, 12.3, regs, nullptr));
    CHECK(regs[0] == 523);  // (12.3 + 40) / 0.1, rounded
    CHECK_FALSE(mapping::encode_registers(scaled, 7000.0, regs, nullptr));

    mapping::PointCodec text;
    text.type = DataType::string;
    text.string_length = 2;
    text.order = WordOrder::badc;
    REQUIRE(mapping::encode_registers(text, std::string("AB"), regs, nullptr));
    CHECK(regs[0] == 0x4241);
    CHECK(regs[1] == 0);
    auto back = mapping::decode_registers(text, regs, 2, nullptr);
    CHECK(*back == core::Value(std::string("AB")));
}

TEST_CASE("config: writes limited to writable points; commands resolved and unique per device") {
    auto errors = [](const std::string& points) {
        auto r = load_config_text(
            "clouds: { c: { platform: mqtt, host: h } }\nbuses: { s: { driver: sim } }\ndevices:\n"
            "  - { name: d, cloud: c, bus: s, points: [" +
                points + "] }\n",
            "t.yaml", &test::drivers());
        std::string all;
        for (const auto& e : r.errors) all += config::format_error("t.yaml", e) + "\n";
        return all;
    };
    CHECK(
        errors("{ name: a, area: holding, address: 0, writable: true, min: 0, max: 10, commands: { lo: 1 } }").empty());
    CHECK(errors("{ name: a, area: holding, address: 0, max: 10 }").find("not writable") != std::string::npos);
    CHECK(errors("{ name: a, area: coil, address: 0, commands: { on: 1 } }").find("not writable") != std::string::npos);
    CHECK(errors("{ name: a, area: holding, address: 0, writable: true, min: 5, max: 1 }")
              .find("'min' is greater than 'max'") != std::string::npos);
    CHECK(errors("{ name: a, area: coil, address: 0, writable: true, min: 0 }").find("numeric types") !=
          std::string::npos);
    CHECK(errors("{ name: a, area: holding, address: 0, type: bool, bit: 3, writable: true }").find("bit field") !=
          std::string::npos);
    const auto bad = errors("{ name: a, area: holding, address: 0, writable: true, commands: { up: 70000 } }");
    CHECK(bad.find("points.a.commands.up") != std::string::npos);
    CHECK(bad.find("command value '70000': out of range") != std::string::npos);
    CHECK(errors("{ name: a, area: coil, address: 0, writable: true, commands: { on: 1 } }, "
                 "{ name: b, area: coil, address: 1, writable: true, commands: { on: 1 } }")
              .find("command 'on' is already defined") != std::string::npos);
    CHECK(errors("{ name: a, area: coil, address: 0, writable: true, commands: [on] }")
              .find("expected a mapping of command names") != std::string::npos);
    // Report by exception
    CHECK(errors("{ name: a, area: holding, address: 0, deadband: 2.5, heartbeat: 10m }, "
                 "{ name: b, area: holding, address: 1, deadband: 5% }, { name: c, area: coil, address: 0, "
                 "on_change: true }")
              .empty());
    CHECK(errors("{ name: a, area: holding, address: 0, deadband: 101% }").find("not a deadband") != std::string::npos);
    CHECK(errors("{ name: a, area: holding, address: 0, deadband: -1 }").find("not a deadband") != std::string::npos);
    CHECK(errors("{ name: a, area: coil, address: 0, deadband: 1 }").find("takes 'on_change: true'") !=
          std::string::npos);
    CHECK(errors("{ name: a, area: holding, address: 0, heartbeat: 1m }").find("applies with 'deadband'") !=
          std::string::npos);
    CHECK(errors("{ name: a, area: holding, address: 0, on_change: true, heartbeat: 1s }")
              .find("shorter than the device's interval 5s") != std::string::npos);
    CHECK(errors("{ name: a, area: holding, address: 0, report: attribute, on_change: true }")
              .find("apply to properties") != std::string::npos);
    auto r = load_config_text(
        "clouds: { c: { platform: onenet, host: h, product_id: p, command_topic: x } }\nbuses: { s: { driver: sim } }\n"
        "devices: [ { name: d, cloud: c, bus: s, key: a2V5, points: [ { name: a, area: coil, address: 0 } ] } ]\n",
        "t.yaml", &test::drivers());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].message.find("applies to platform mqtt") != std::string::npos);
}

namespace {

const char* const kPlatforms = R"(
clouds:
  dp: { platform: onenet, host: h, product_id: "469948", token_expiry: 1673053248 }
  tm: { platform: onenet, protocol: thing-model, host: h, product_id: PID, product_key: kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI=, token_expiry: 2524579200 }
  legacy: { platform: onenet-legacy, host: h, product_id: "12345", keepalive: 120s }
  das: { platform: aiot, host: h, product_id: pk }
  tb: { platform: thingsboard, host: h, username: TOKEN }
  mq: { platform: mqtt, host: h, command_topic: "fl/{device}/set/{point}" }
  mq2: { platform: mqtt, host: h, command_topic: "fl/{device}/cmd", reply_topic: "fl/{device}/ack" }
buses:
  s: { driver: sim }
devices:
  - { name: dpdev, cloud: dp, bus: s, key: a2V5, points: &pts [ { name: relay, area: coil, address: 1, writable: true, commands: { "on": true, "off": false } }, { name: sp, area: holding, address: 10, type: float32, writable: true, max: 100 }, { name: t, area: holding, address: 0 } ] }
  - { name: gw, cloud: tm, bus: s, gateway: true, points: *pts }
  - { name: sub1, cloud: tm, bus: s, via: gw, product_id: SubPid, product_key: a2V5, points: *pts }
  - { name: old, cloud: legacy, bus: s, device_id: "5678", key: SN, points: *pts }
  - { name: das1, cloud: das, bus: s, key: k, points: *pts }
  - { name: tb1, cloud: tb, bus: s, points: *pts }
  - { name: mq1, cloud: mq, bus: s, points: *pts }
  - { name: mq2, cloud: mq2, bus: s, points: *pts }
)";

struct Platforms {
    config::Config cfg = test::load_ok(kPlatforms);
    std::vector<std::unique_ptr<north::Profile>> profiles = platforms::make_profiles(cfg);
    std::vector<north::SessionInfo> sessions = north::plan_sessions(cfg, profiles);

    const north::SessionInfo& session(const std::string& name) {
        for (const auto& s : sessions) {
            if (s.name == name) return s;
        }
        FAIL("no session " << name);
        return sessions[0];
    }
    const north::Profile& profile(const north::SessionInfo& s) {
        return *profiles[static_cast<std::size_t>(s.cloud - cfg.clouds.data())];
    }
    north::Inbound ask(const std::string& session_name, const std::string& topic, const std::string& payload) {
        const auto& s = session(session_name);
        return profile(s).on_message(s, topic, payload, {});
    }
    json reply(const std::string& session_name, const north::Command& c, bool ok, const std::string& reason = {}) {
        const auto& s = session(session_name);
        north::CommandResult r{ok, reason, {}};
        if (ok) r.values = c.values;
        auto m = profile(s).command_reply(s, c, r);
        CHECK(m.topic == c.reply_topic);
        return json::parse(m.payload);
    }
};

}  // namespace

TEST_CASE("OneNET thing model: property set, service invoke, sub-device set and invoke become writes") {
    Platforms f;
    auto in = f.ask("gw", "$sys/PID/gw/thing/property/set", R"({"id":"123","version":"1.0","params":{"sp":"30.5"}})");
    REQUIRE(in.write);
    CHECK(in.command);
    CHECK(in.replies.empty());  // the reply waits for the device
    CHECK(in.write->reply_topic == "$sys/PID/gw/thing/property/set_reply");
    REQUIRE(in.write->values.size() == 1);
    CHECK(in.write->values[0].point_index == 1);
    CHECK(in.write->values[0].value == core::Value(30.5));
    CHECK(f.reply("gw", *in.write, true) == json::parse(R"({"id":"123","code":200,"msg":"success"})"));
    auto fail = f.reply("gw", *in.write, false, "timeout");
    CHECK(fail["code"] != 200);
    CHECK(fail["msg"] == "timeout");

    in = f.ask("gw", "$sys/PID/gw/thing/service/on/invoke", R"({"id":"125","version":"1.0","params":{}})");
    REQUIRE(in.write);
    CHECK(in.write->values[0].value == core::Value(true));
    CHECK(f.reply("gw", *in.write, true) ==
          json::parse(R"({"id":"125","code":200,"msg":"success","data":{"relay":true}})"));
    in = f.ask("gw", "$sys/PID/gw/thing/service/setup/invoke", R"({"id":"126","params":{"sp":5,"relay":false}})");
    REQUIRE(in.write);
    CHECK(in.write->values.size() == 2);

    in = f.ask(
        "gw", "$sys/PID/gw/thing/sub/property/set",
        R"({"id":"134","version":"1.0","params":{"productID":"SubPid","deviceName":"sub1","params":{"relay":true}}})");
    REQUIRE(in.write);
    CHECK(f.cfg.devices[in.write->device].name == "sub1");
    CHECK(in.write->reply_topic == "$sys/PID/gw/thing/sub/property/set_reply");
    in = f.ask(
        "gw", "$sys/PID/gw/thing/sub/service/invoke",
        R"({"id":"136","version":"1.0","params":{"productID":"SubPid","deviceName":"sub1","identifier":"off","input":{}}})");
    REQUIRE(in.write);
    CHECK(f.reply("gw", *in.write, true) == json::parse(R"({"id":"136","code":200,"msg":"success","data":{
        "productID":"SubPid","deviceName":"sub1","identifier":"off","output":{"relay":false}}})"));

    // Refused before any device: each with the platform's failure reply and the reason.
    const std::pair<const char*, const char*> refused[] = {
        {R"({"id":"1","params":{"t":5}})", "point t is not writable"},
        {R"({"id":"1","params":{"sp":500}})", "out of range: 500 given, point sp takes"},
        {R"({"id":"1","params":{"sp":"warm"}})", "type mismatch"},
        {R"({"id":"1","params":{"nope":1}})", "unknown point 'nope'"},
        {R"({"id":"1","params":[1]})", "expected an object of points"},
        {R"({"id":"1","params":{"relay":true,"t":5}})", "point t is not writable"},  // refused whole
    };
    for (const auto& [payload, reason] : refused) {
        in = f.ask("gw", "$sys/PID/gw/thing/property/set", payload);
        CHECK_FALSE(in.write);
        CHECK(in.refused);
        REQUIRE(in.replies.size() == 1);
        auto r = json::parse(in.replies[0].payload);
        CHECK(r["id"] == "1");
        CHECK(r["code"] != 200);
        CHECK_MESSAGE(r["msg"].get<std::string>().find(reason) != std::string::npos, r["msg"]);
    }
    in = f.ask("gw", "$sys/PID/gw/thing/sub/property/set",
               R"({"id":"2","params":{"productID":"SubPid","deviceName":"other","params":{"relay":true}}})");
    CHECK_FALSE(in.write);
    CHECK(json::parse(in.replies[0].payload)["msg"].get<std::string>().find("unknown sub-device") == 0);
    in = f.ask("gw", "$sys/PID/gw/thing/property/set", R"({"params":{"sp":1}})");  // no id: nothing to answer
    CHECK(in.malformed);
    CHECK(in.replies.empty());
}

TEST_CASE("a command nested 100,000 levels deep is refused on every platform's command topic, without a crash") {
    // 100,000 nested arrays as a write's value (about 200 KB, under every payload limit): copied
    // or serialised recursively, it overflowed the north thread's stack.
    const std::string deep = std::string(100'000, '[') + "1" + std::string(100'000, ']');
    const std::string in_params = R"({"id":"9","params":{"sp":)" + deep + "}}";
    Platforms f;
    const std::pair<const char*, std::string> asks[][1] = {
        {{"gw", "$sys/PID/gw/thing/property/set"}},
        {{"gw", "$sys/PID/gw/thing/sub/property/set"}},
        {{"dpdev", "$sys/469948/dpdev/cmd/request/c-9"}},
        {{"das1", "sys/pk/das1/thing/properties/set"}},
        {{"mq1", "fl/mq1/set/sp"}},
        {{"mq2", "fl/mq2/cmd"}},
        {{"old", "$creq/9a1c-uuid"}},
        {{"tb", "v1/gateway/rpc"}},
        {{"tb", "v1/gateway/attributes"}},
    };
    for (const auto& a : asks) {
        for (const std::string& payload : {in_params, R"({"sp":)" + deep + "}", deep}) {
            CAPTURE(a[0].second);
            const auto in = f.ask(a[0].first, a[0].second, payload);
            CHECK_FALSE(in.write);
        }
    }
    CHECK(platforms::json_depth(deep, platforms::kMaxJsonDepth) == platforms::kMaxJsonDepth + 1);
    CHECK(platforms::parse_json(deep).is_discarded());
    CHECK(platforms::parse_json(std::string(32, '[') + std::string(32, ']')).is_array());
    CHECK(platforms::json_depth(R"({"a":"[[[[{{{{","b":[[1]]})", 32) == 3);  // brackets in strings do not count
    CHECK(platforms::json_depth(R"({"a":"\"[[[["})", 32) == 1);
}

TEST_CASE("OneNET datapoints and legacy: plain commands, point=value and JSON objects") {
    Platforms f;
    auto in = f.ask("dpdev", "$sys/469948/dpdev/cmd/request/c-1", "on");
    REQUIRE(in.write);
    CHECK(in.write->reply_topic == "$sys/469948/dpdev/cmd/response/c-1");
    CHECK(in.write->values[0].value == core::Value(true));
    CHECK(f.reply("dpdev", *in.write, true) ==
          json::parse(R"({"id":"c-1","code":200,"msg":"success","data":{"relay":true}})"));
    in = f.ask("dpdev", "$sys/469948/dpdev/cmd/request/c-2", "sp=12.5\n");
    REQUIRE(in.write);
    CHECK(in.write->values[0].value == core::Value(12.5));
    in = f.ask("dpdev", "$sys/469948/dpdev/cmd/request/c-3", R"({"sp":1,"relay":"off"})");
    REQUIRE(in.write);
    REQUIRE(in.write->values.size() == 2);
    CHECK(in.write->values[0].point_index == 0);  // relay, in name order
    CHECK(in.write->values[0].value == core::Value(false));
    in = f.ask("dpdev", "$sys/469948/dpdev/cmd/request/c-4", "\"off\"");
    REQUIRE(in.write);
    in = f.ask("dpdev", "$sys/469948/dpdev/cmd/request/c-5", "reboot");
    CHECK_FALSE(in.write);
    CHECK(in.refused);
    CHECK(json::parse(in.replies[0].payload)["code"] != 200);

    in = f.ask("old", "$creq/7a1c-uuid", "on");
    REQUIRE(in.write);
    CHECK(in.write->reply_topic == "$crsp/7a1c-uuid");
    CHECK(f.reply("old", *in.write, true) == json::parse(R"({"code":0,"msg":"success","data":{"relay":true}})"));
    CHECK(f.reply("old", *in.write, false, "x")["code"] == 1);
    in = f.ask("old", "$creq/7a1c-uuid", "");
    CHECK(in.refused);
    CHECK(json::parse(in.replies[0].payload)["code"] == 1);
}

TEST_CASE("DaShi: properties/set and service/set, answered on /response") {
    Platforms f;
    auto in = f.ask("das1", "sys/pk/das1/thing/properties/set",
                    R"({"id":"125","version":"1.0","params":{"sp":"30.5"},"method":"thing.properties.set"})");
    REQUIRE(in.write);
    CHECK(
        f.reply("das1", *in.write, true) ==
        json::parse(
            R"({"code":200,"data":{},"id":"125","message":"success","method":"thing.properties.set","version":"1.0"})"));
    in = f.ask("das1", "sys/pk/das1/thing/service/set",
               R"({"id":"126","version":"1.0","identifier":"on","params":{},"method":"thing.service.set"})");
    REQUIRE(in.write);
    CHECK(f.reply("das1", *in.write, true) ==
          json::parse(R"({"code":200,"identifier":"on","data":{"params":{"relay":true}},"id":"126","message":"success",
                          "method":"thing.service.set","version":"1.0"})"));
    in = f.ask("das1", "sys/pk/das1/thing/properties/set", R"({"id":"128","params":{"sp":1,"t":1}})");
    CHECK_FALSE(in.write);  // refused whole
    in = f.ask("das1", "sys/pk/das1/thing/properties/set", R"({"id":"127","params":{"t":1}})");
    CHECK(in.refused);
    auto r = json::parse(in.replies[0].payload);
    CHECK(r["code"] != 200);
    CHECK(r["message"] == "point t is not writable");
}

TEST_CASE("ThingsBoard: RPC set, a command method, a point method, get; shared attributes write") {
    Platforms f;
    auto in = f.ask("tb", "v1/gateway/rpc", R"({"device":"tb1","data":{"id":41,"method":"set","params":{"sp":20}}})");
    REQUIRE(in.write);
    CHECK(f.reply("tb", *in.write, true) ==
          json::parse(R"({"device":"tb1","id":41,"data":{"success":true,"values":{"sp":20}}})"));
    CHECK(f.reply("tb", *in.write, false, "timeout") ==
          json::parse(R"({"device":"tb1","id":41,"data":{"success":false,"error":"timeout"}})"));
    in = f.ask("tb", "v1/gateway/rpc", R"({"device":"tb1","data":{"id":42,"method":"on"}})");
    REQUIRE(in.write);
    CHECK(in.write->values[0].value == core::Value(true));
    in = f.ask("tb", "v1/gateway/rpc", R"({"device":"tb1","data":{"id":43,"method":"sp","params":{"value":7}}})");
    REQUIRE(in.write);
    CHECK(in.write->values[0].value == core::Value(7.0));
    in = f.ask("tb", "v1/gateway/rpc", R"({"device":"tb1","data":{"id":44,"method":"toggle_gpio","params":{}}})");
    CHECK(in.refused);
    CHECK(json::parse(in.replies[0].payload)["data"]["error"] == "unknown point 'toggle_gpio' on device tb1");
    in = f.ask("tb", "v1/gateway/rpc",
               R"({"device":"tb1","data":{"id":47,"method":"set","params":{"relay":true,"sp":500}}})");
    CHECK_FALSE(in.write);  // one bad value refuses the whole write
    CHECK(in.refused);
    in = f.ask("tb", "v1/gateway/rpc", R"({"device":"ghost","data":{"id":45,"method":"on"}})");
    CHECK(in.refused);

    const auto& s = f.session("tb");
    north::LatestValues latest;
    latest[5] = {core::Value(true), core::Value(20.0), std::nullopt};
    in = f.profile(s).on_message(s, "v1/gateway/rpc", R"({"device":"tb1","data":{"id":46,"method":"get"}})", latest);
    REQUIRE(in.replies.size() == 1);
    CHECK(json::parse(in.replies[0].payload) ==
          json::parse(R"({"device":"tb1","id":46,"data":{"success":true,"values":{"relay":true,"sp":20.0}}})"));

    in = f.ask("tb", "v1/gateway/attributes", R"({"device":"tb1","data":{"sp":12,"firmware":"1.2"}})");
    REQUIRE(in.write);
    CHECK(in.write->reply_topic.empty());  // ThingsBoard expects no reply to an attribute update
    CHECK(in.write->values.size() == 1);
    in = f.ask("tb", "v1/gateway/attributes", R"({"device":"tb1","data":{"firmware":"1.2"}})");
    CHECK_FALSE(in.write);  // the platform's own attributes
    CHECK_FALSE(in.refused);
}

TEST_CASE("generic MQTT: command topics per device, a {point} level, replies on reply_topic") {
    Platforms f;
    const auto& s = f.session("mq1");
    CHECK(f.profile(s).subscriptions(s) == std::vector<std::string>{"fl/mq1/set/+"});
    auto in = f.ask("mq1", "fl/mq1/set/sp", "21.5");
    REQUIRE(in.write);
    CHECK(in.write->reply_topic == "fl/mq1/set/sp/reply");
    CHECK(in.write->values[0].value == core::Value(21.5));
    in = f.ask("mq1", "fl/mq1/set/relay", "on");
    REQUIRE(in.write);
    in = f.ask("mq1", "fl/mq1/set/a/b", "1");
    CHECK(in.kind == "unexpected");

    const auto& s2 = f.session("mq2");
    CHECK(f.profile(s2).subscriptions(s2) == std::vector<std::string>{"fl/mq2/cmd"});
    in = f.ask("mq2", "fl/mq2/cmd", R"({"id":"9","sp":3})");
    REQUIRE(in.write);
    CHECK(in.write->id == "9");
    CHECK(f.reply("mq2", *in.write, true) == json::parse(R"({"id":"9","success":true,"values":{"sp":3.0}})"));
    in = f.ask("mq2", "fl/mq2/cmd", "sp=1000");
    CHECK(in.refused);
    CHECK(in.replies[0].topic == "fl/mq2/ack");
    CHECK(json::parse(in.replies[0].payload)["success"] == false);
}

namespace {

// The fake line as a device in memory: writes land in its registers unless the address is
// refused (exception 2, address 99) or the device is stubborn (it acknowledges and keeps its old
// value).
test::FakeLine& g_mem = test::fake_line();

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
      - { name: sp, area: holding, address: 10, type: float32, order: cdab, writable: true }
      - { name: level, area: holding, address: 20, scale: 0.1, writable: true }
      - { name: bad, area: holding, address: 99, writable: true }
)";

// Runs jobs through a started worker and waits for each to finish.
struct Rig : test::WorkerRig {
    Rig() : WorkerRig(kWorker, test::FakeLine::Timing::fast) {
        {
            std::lock_guard<std::mutex> lock(g_mem.m);
            g_mem.unset_reads_address = false;
            g_mem.refused_writes = {{99, 2}};
        }
        worker->start();
    }
};

}  // namespace

TEST_CASE("bus worker: writes ahead of polls, FC16 for wide values, read back, failures with reasons") {
    Rig rig;
    auto job = rig.run({{1, core::Value(42.5)}});
    CHECK(job->ok);
    CHECK(job->state.load() == core::WriteJob::taken);
    {
        std::lock_guard<std::mutex> lock(g_mem.m);
        CHECK(g_mem.writes.back() == std::pair<int, int>{10, 2});  // both words in one request
        CHECK(g_mem.regs[10] == 0x0000);                           // cdab: low word first
        CHECK(g_mem.regs[11] == 0x422A);
    }
    REQUIRE(job->read_back.size() == 1);
    CHECK(job->read_back[0].value == core::Value(42.5));

    std::size_t published_before = 0;
    {
        std::lock_guard<std::mutex> lock(rig.m);
        published_before = rig.got.size();
    }
    job = rig.run({{0, core::Value(true)}, {2, core::Value(12.3)}});
    CHECK(job->ok);
    CHECK(job->written == 2);
    {
        std::lock_guard<std::mutex> lock(g_mem.m);
        CHECK(g_mem.bits[1] == 1);
        CHECK(g_mem.regs[20] == 123);
    }
    {  // the values read back are published at once, as the device's data (a poll may come
       // after them on a slow machine: look among what was published since the write)
        std::lock_guard<std::mutex> lock(rig.m);
        const auto read_back = std::find_if(rig.got.begin() + static_cast<std::ptrdiff_t>(published_before),
                                            rig.got.end(), [](const core::SampleBatch& b) {
                                                return b.values.size() == 2 &&
                                                       b.values[0].point_index + b.values[1].point_index == 2 &&
                                                       b.values[0].point_index != 1;
                                            });
        CHECK(read_back != rig.got.end());
    }

    job = rig.run({{3, core::Value(std::uint64_t{1})}});
    CHECK_FALSE(job->ok);
    CHECK(job->failure == core::WriteJob::Failure::exception);
    CHECK(job->reason == "unit 1 answered the write of bad with Modbus exception 2 (illegal data address)");

    g_mem.stubborn = true;
    job = rig.run({{2, core::Value(50.0)}});
    CHECK_FALSE(job->ok);
    CHECK(job->failure == core::WriteJob::Failure::mismatch);
    CHECK(job->reason == "unit 1 holds level = 12.3 after the write of 50");
    g_mem.stubborn = false;

    g_mem.dead = true;
    job = rig.run({{2, core::Value(1.0)}});
    CHECK(job->failure == core::WriteJob::Failure::timeout);
    CHECK(job->written == 0);
    g_mem.dead = false;

    job = rig.run({{2, core::Value(1.0)}}, std::chrono::milliseconds(-1));  // its deadline passed while queued
    CHECK(job->failure == core::WriteJob::Failure::expired);
    CHECK(job->written == 0);

    auto gone = std::make_shared<core::WriteJob>();  // given up by the north side: never written
    gone->values = {{2, core::Value(9.0)}};
    gone->deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    REQUIRE(gone->expire());
    std::size_t writes = 0;
    {
        std::lock_guard<std::mutex> lock(g_mem.m);
        writes = g_mem.writes.size();
    }
    rig.worker->submit(gone);
    rig.run({{0, core::Value(false)}});  // a later job has finished, so the worker saw the expired one
    {
        std::lock_guard<std::mutex> lock(g_mem.m);
        CHECK(g_mem.writes.size() == writes + 1);
    }
    rig.worker->stop();
    CHECK(rig.worker->counters(0).writes.load() == 3);
    CHECK(rig.worker->counters(0).write_errors.load() == 4);
}

TEST_CASE("templates and unit ranges: 32 identical meters in one block") {
    auto cfg = test::load_ok(R"(
clouds: { c: { platform: mqtt, host: h } }
templates:
  meter-x:
    interval: 2s
    points:
      - { name: Ua, area: input, address: 0, type: float32 }
      - { name: Ia, area: input, address: 2, type: float32 }
buses: { s: { driver: sim } }
devices:
  - { name: "meter-{unit}", template: meter-x, units: 1-32, cloud: c, bus: s }
  - { name: "m{unit}", template: meter-x, units: "40,42-43", cloud: c, bus: s, interval: 1s,
      points: [ { name: extra, area: holding, address: 9 } ] }
)");
    REQUIRE(cfg.devices.size() == 35);
    CHECK(cfg.devices[0].name == "meter-1");
    CHECK(cfg.devices[31].name == "meter-32");
    CHECK(cfg.devices[31].unit == 32);
    CHECK(cfg.devices[31].points.size() == 2);
    CHECK(cfg.devices[31].interval == config::Duration{2000});
    CHECK(cfg.devices[32].name == "m40");
    CHECK(cfg.devices[34].unit == 43);
    REQUIRE(cfg.devices[34].points.size() == 3);  // the template's, then its own
    CHECK(cfg.devices[34].points[2].name == "extra");
    CHECK(cfg.devices[34].interval == config::Duration{1000});

    auto errors = [](const std::string& devices) {
        auto r = load_config_text(
            "clouds: { c: { platform: mqtt, host: h } }\nbuses: { s: { driver: sim } }\n"
            "templates: { t: { points: [ { name: a, area: holding, address: 0 } ] } }\n"
            "devices:\n" +
                devices,
            "t.yaml", &test::drivers());
        std::string all;
        for (const auto& e : r.errors) all += config::format_error("t.yaml", e) + "\n";
        return all;
    };
    CHECK(errors("  - { name: d, template: nope, cloud: c, bus: s }\n").find("template 'nope' is not defined") !=
          std::string::npos);
    CHECK(errors("  - { name: d, template: t, units: 1-3, cloud: c, bus: s }\n").find("needs {unit} in its name") !=
          std::string::npos);
    CHECK(errors("  - { name: 'd{unit}', template: t, units: 1-300, cloud: c, bus: s }\n")
              .find("is not a list of unit ids") != std::string::npos);
    CHECK(errors("  - { name: 'd{unit}', template: t, unit: 3, units: 1-2, cloud: c, bus: s }\n")
              .find("either 'unit' or 'units'") != std::string::npos);
    CHECK(errors("  - { name: d, cloud: c, bus: s }\n").find("expected at least one point") != std::string::npos);
    CHECK(errors("  - { name: 'd{unit}', template: t, units: 1-2, cloud: c, bus: s }\n"
                 "  - { name: d2, template: t, cloud: c, bus: s }\n")
              .find("duplicate device name 'd2'") != std::string::npos);
}
