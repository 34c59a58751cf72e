#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "north/north.hpp"
#include "north/profile.hpp"
#include "platforms/aiot.hpp"
#include "platforms/json.hpp"
#include "platforms/onenet.hpp"
#include "platforms/onenet_legacy.hpp"
#include "platforms/platform.hpp"

using namespace fieldlink;
using nlohmann::json;

namespace {

const char* kConfig = R"(
clouds:
  dp: { platform: onenet, host: h, product_id: "469948", token_expiry: 1673053248, token_method: sha1 }
  tm: { platform: onenet, protocol: thing-model, host: h, product_id: IHL2T99b8k, product_key: kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI=, token_expiry: 2524579200 }
  legacy: { platform: onenet-legacy, host: h, product_id: "12345", keepalive: 120s }
  das: { platform: aiot, host: h, product_id: pk, client_id: "12345" }
  tb: { platform: thingsboard, host: h, username: TOKEN123 }
  plain: { platform: mqtt, host: h, topic: "plant/{device}/{point}", payload: "{value}" }
buses:
  s: { driver: sim }
devices:
  - { name: Chic_D, cloud: dp, bus: s, key: rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U=, points: [ { name: temperature, area: holding, address: 0 }, { name: relay, area: coil, address: 1 }, { name: label, area: holding, address: 5, type: string, length: 2 } ] }
  - { name: gw01, cloud: tm, bus: s, gateway: true, points: [ { name: Power, area: holding, address: 0 } ] }
  - { name: meter-01, cloud: tm, bus: s, via: gw01, product_id: SubPid01, product_key: MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=, points: [ { name: Ua, area: holding, address: 0 }, { name: Ia, area: holding, address: 1 } ] }
  - { name: meter-02, cloud: tm, bus: s, via: gw01, product_id: SubPid01, product_key: MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=, points: [ { name: Ua, area: holding, address: 0 } ] }
  - { name: solo, cloud: tm, bus: s, points: [ { name: WF, area: holding, address: 0 } ] }
  - { name: old, cloud: legacy, bus: s, device_id: "5678", key: SN-0001, points: [ { name: temperature, area: holding, address: 0 } ] }
  - { name: device, cloud: das, bus: s, key: secret, points: [ { name: WF, area: holding, address: 0 } ] }
  - { name: Device A, cloud: tb, bus: s, points: [ { name: temperature, area: holding, address: 0 } ] }
  - { name: Device B, cloud: tb, bus: s, points: [ { name: humidity, area: holding, address: 0 } ] }
  - { name: p1, cloud: plain, bus: s, points: [ { name: t, area: holding, address: 0 } ] }
)";

struct Fixture {
    config::Config cfg;
    std::vector<north::SessionInfo> sessions;
    std::vector<std::unique_ptr<north::Profile>> profiles;

    Fixture() : cfg(test::load_ok(kConfig)) {
        profiles = platforms::make_profiles(cfg);
        sessions = north::plan_sessions(cfg, profiles);
    }
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
    std::uint32_t device(const std::string& name) {
        for (std::uint32_t i = 0; i < cfg.devices.size(); ++i) {
            if (cfg.devices[i].name == name) return i;
        }
        FAIL("no device " << name);
        return 0;
    }
};

// Every message of the packets, in order.
std::vector<north::Message> flat(const std::vector<north::Packet>& packets) {
    std::vector<north::Message> out;
    for (const auto& p : packets) out.insert(out.end(), p.messages.begin(), p.messages.end());
    return out;
}

core::SampleBatch batch(std::uint32_t device, std::int64_t ts, std::vector<core::PointValue> values) {
    core::SampleBatch b;
    b.device_index = device;
    b.timestamp_ms = ts;
    b.values = std::move(values);
    return b;
}

}  // namespace

TEST_CASE("sessions: one per device, gateways carry their sub-devices, ThingsBoard one per cloud") {
    Fixture f;
    CHECK(f.sessions.size() == 7);  // Chic_D, gw01(+2), solo, old, device, tb, p1
    CHECK(f.session("gw01").devices.size() == 3);
    CHECK(f.session("tb").devices.size() == 2);
    CHECK(f.session("tb").identity == nullptr);
}

TEST_CASE("OneNET datapoints: credentials, topic, payload, commands") {
    Fixture f;
    const auto& s = f.session("Chic_D");
    const auto& p = f.profile(s);
    std::string err;
    auto creds = p.credentials(s, 0, &err);
    REQUIRE(creds);
    CHECK(creds->client_id == "Chic_D");
    CHECK(creds->username == "469948");
    CHECK(creds->password ==
          "version=2018-10-31&res=products%2F469948%2Fdevices%2FChic_D&et=1673053248&method=sha1&sign="
          "prIMDQ23WFI6PMj2IWpaRJJL4eE%3D");
    const auto d = f.device("Chic_D");
    std::deque<core::SampleBatch> q{batch(d, 1552289676000, {{0, 30.5}, {1, true}}),
                                    batch(d, 1552289677000, {{0, std::int64_t{31}}, {1, false}})};
    std::uint32_t id = 123;
    auto msgs = flat(p.build(s, q, 5, id));
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].topic == "$sys/469948/Chic_D/dp/post/json");
    CHECK(
        json::parse(msgs[0].payload) ==
        json::parse(
            R"({"id":123,"dp":{"temperature":[{"v":30.5,"t":1552289676},{"v":31,"t":1552289677}],"relay":[{"v":true,"t":1552289676},{"v":false,"t":1552289677}]}})"));
    CHECK(msgs[0].samples == 4);
    CHECK(q.empty());

    auto in = p.on_message(s, "$sys/469948/Chic_D/cmd/request/abc-1", "reboot", {});
    CHECK(in.command);
    CHECK(in.refused);
    REQUIRE(in.replies.size() == 1);
    CHECK(in.replies[0].topic == "$sys/469948/Chic_D/cmd/response/abc-1");
    in = p.on_message(s, "$sys/469948/Chic_D/dp/post/json/rejected",
                      R"({"id":123,"err_code":98,"err_msg":"Illegal Data"})", {});
    REQUIRE(in.answer);
    CHECK(in.answer->id == "123");
    CHECK(in.answer->outcome == north::Answer::Outcome::permanent);
    CHECK(in.answer->reason == "err_code 98 Illegal Data");
    in = p.on_message(s, "$sys/469948/Chic_D/dp/post/json/rejected",
                      R"({"id":124,"err_code":100,"err_msg":"internal error"})", {});
    REQUIRE(in.answer);
    CHECK(in.answer->outcome == north::Answer::Outcome::transient);
    in = p.on_message(s, "$sys/469948/Chic_D/dp/post/json/accepted", R"({"id":125})", {});
    REQUIRE(in.answer);
    CHECK(in.answer->id == "125");
    CHECK(in.answer->outcome == north::Answer::Outcome::accepted);
    // The platform could not read our id (-1), or the answer is not JSON: nothing to match.
    for (const char* bad : {R"({"id":-1,"err_code":98,"err_msg":"Illegal Data"})", "not json", R"({"err_code":98})"}) {
        in = p.on_message(s, "$sys/469948/Chic_D/dp/post/json/rejected", bad, {});
        CHECK(in.malformed);
        CHECK_FALSE(in.answer);
    }
}

TEST_CASE("OneNET thing model: direct device posts properties, backlog goes to history/post") {
    Fixture f;
    const auto& s = f.session("solo");
    const auto& p = f.profile(s);
    CHECK(p.subscriptions(s) == std::vector<std::string>{"$sys/IHL2T99b8k/solo/thing/#"});
    const auto d = f.device("solo");
    std::deque<core::SampleBatch> q{batch(d, 1524448722123, {{0, 23.6}})};
    std::uint32_t id = 123;
    auto msgs = flat(p.build(s, q, 5, id));
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].topic == "$sys/IHL2T99b8k/solo/thing/property/post");
    CHECK(json::parse(msgs[0].payload) ==
          json::parse(R"({"id":"123","version":"1.0","params":{"WF":{"value":23.6,"time":1524448722123}}})"));
    q = {batch(d, 1700000000000, {{0, 230.1}}), batch(d, 1700000060000, {{0, 230.4}})};
    msgs = flat(p.build(s, q, 5, id));
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].topic == "$sys/IHL2T99b8k/solo/thing/history/post");
    CHECK(
        json::parse(msgs[0].payload) ==
        json::parse(
            R"({"id":"124","version":"1.0","params":[{"properties":{"WF":[{"value":230.1,"time":1700000000000},{"value":230.4,"time":1700000060000}]}}]})"));
}

TEST_CASE("OneNET gateway: topology and login on connect, pack/post with identities") {
    Fixture f;
    const auto& s = f.session("gw01");
    const auto& p = f.profile(s);
    std::uint32_t id = 129;
    // On connect: the topology first (data waits for it); without an answer, every sub-device is
    // added, each logging in after its topo/add reply.
    auto ctl = p.on_connect(s, {}, id);
    REQUIRE(ctl.size() == 1);
    CHECK(ctl[0].topic == "$sys/IHL2T99b8k/gw01/thing/sub/topo/get");
    CHECK(json::parse(ctl[0].payload) == json::parse(R"({"id":"129","version":"1.0"})"));
    CHECK(ctl[0].answer_id == "129");
    CHECK(ctl[0].gate);
    const auto& adds = ctl[0].otherwise;
    REQUIRE(adds.size() == 2);
    CHECK(adds[0].topic == "$sys/IHL2T99b8k/gw01/thing/sub/topo/add");
    CHECK(adds[0].gate);
    auto add = json::parse(adds[0].payload);
    CHECK(add["id"] == "130");
    CHECK(add["params"]["productID"] == "SubPid01");
    CHECK(add["params"]["deviceName"] == "meter-01");
    CHECK(add["params"]["sasToken"].get<std::string>().rfind(
              "version=2018-10-31&res=products%2FSubPid01%2Fdevices%2Fmeter-01&et=2524579200&method=sha256&sign=", 0) ==
          0);
    REQUIRE(adds[0].then.size() == 1);
    CHECK(adds[0].then[0].topic == "$sys/IHL2T99b8k/gw01/thing/sub/login");
    CHECK_FALSE(adds[0].then[0].gate);
    CHECK(json::parse(adds[0].then[0].payload) ==
          json::parse(R"({"id":"131","version":"1.0","params":{"productID":"SubPid01","deviceName":"meter-01"}})"));

    // The platform's topology lists meter-01 (and a device of another product with the same
    // name as meter-02): meter-01 only logs in, meter-02 is added; the sync result is reported.
    std::uint32_t next = 200;
    auto in =
        p.on_message(s, "$sys/IHL2T99b8k/gw01/thing/sub/topo/get/reply",
                     R"({"id":"129","code":200,"msg":"success","data":[{"deviceName":"meter-01","productID":"SubPid01"},
                              {"deviceName":"meter-02","productID":"Other"}]})",
                     {}, next);
    REQUIRE(in.answer);
    CHECK(in.answer->outcome == north::Answer::Outcome::accepted);
    const auto& fu = in.answer->follow_ups;
    REQUIRE(fu.size() == 3);
    CHECK(fu[0].topic == "$sys/IHL2T99b8k/gw01/thing/sub/topo/get/result");
    CHECK(json::parse(fu[0].payload) == json::parse(R"({"id":"129","code":200,"msg":"success"})"));
    CHECK(fu[1].topic == "$sys/IHL2T99b8k/gw01/thing/sub/login");
    CHECK(json::parse(fu[1].payload)["params"]["deviceName"] == "meter-01");
    CHECK(fu[2].topic == "$sys/IHL2T99b8k/gw01/thing/sub/topo/add");
    CHECK(json::parse(fu[2].payload)["params"]["deviceName"] == "meter-02");

    // topo/change: subList is the whole topology; a configured sub-device it lacks is added again.
    in = p.on_message(
        s, "$sys/IHL2T99b8k/gw01/thing/sub/topo/change",
        R"({"id":"133","version":"1.0","params":{"subList":[{"deviceName":"meter-02","productID":"SubPid01"}]}})", {},
        next);
    REQUIRE(in.replies.size() == 2);
    CHECK(in.replies[0].topic == "$sys/IHL2T99b8k/gw01/thing/sub/topo/change_reply");
    CHECK(json::parse(in.replies[0].payload)["code"] == 200);
    CHECK(in.replies[1].topic == "$sys/IHL2T99b8k/gw01/thing/sub/topo/add");
    CHECK(json::parse(in.replies[1].payload)["params"]["deviceName"] == "meter-01");
    CHECK(in.problem.find("meter-01") != std::string::npos);
    in = p.on_message(s, "$sys/IHL2T99b8k/gw01/thing/sub/topo/change", R"({"id":"134","params":{}})", {}, next);
    CHECK(in.malformed);
    id = 134;

    const auto m1 = f.device("meter-01"), m2 = f.device("meter-02"), gw = f.device("gw01");
    std::deque<core::SampleBatch> q{batch(m1, 1700000000000, {{0, 231.2}, {1, 3.1}}),
                                    batch(m2, 1700000000000, {{0, 229.9}}),
                                    batch(gw, 1700000000000, {{0, std::string("on")}})};
    auto msgs = flat(p.build(s, q, 5, id));
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].topic == "$sys/IHL2T99b8k/gw01/thing/pack/post");
    CHECK(json::parse(msgs[0].payload) == json::parse(R"({"id":"134","version":"1.0","params":[
      {"identity":{"productID":"SubPid01","deviceName":"meter-01"},"properties":{"Ua":{"value":231.2,"time":1700000000000},"Ia":{"value":3.1,"time":1700000000000}}},
      {"identity":{"productID":"SubPid01","deviceName":"meter-02"},"properties":{"Ua":{"value":229.9,"time":1700000000000}}},
      {"properties":{"Power":{"value":"on","time":1700000000000}}}]})"));
}

TEST_CASE("OneNET thing model: set refused, get answered from the latest values, replies checked") {
    Fixture f;
    const auto& s = f.session("gw01");
    const auto& p = f.profile(s);
    north::LatestValues latest;
    latest[f.device("meter-01")] = {core::Value{231.2}, core::Value{3.1}};
    auto in = p.on_message(
        s, "$sys/IHL2T99b8k/gw01/thing/sub/property/get",
        R"({"id":"135","version":"1.0","params":{"productID":"SubPid01","deviceName":"meter-01","params":["Ua","Ia"]}})",
        latest);
    REQUIRE(in.replies.size() == 1);
    CHECK(in.replies[0].topic == "$sys/IHL2T99b8k/gw01/thing/sub/property/get_reply");
    CHECK(json::parse(in.replies[0].payload) ==
          json::parse(R"({"id":"135","code":200,"msg":"success","data":{"Ua":231.2,"Ia":3.1}})"));

    in = p.on_message(s, "$sys/IHL2T99b8k/gw01/thing/property/set",
                      R"({"id":"123","version":"1.0","params":{"Power":"off"}})", latest);
    CHECK(in.refused);
    REQUIRE(in.replies.size() == 1);
    CHECK(in.replies[0].topic == "$sys/IHL2T99b8k/gw01/thing/property/set_reply");
    auto r = json::parse(in.replies[0].payload);
    CHECK(r["id"] == "123");
    CHECK(r["code"] != 200);

    in = p.on_message(s, "$sys/IHL2T99b8k/gw01/thing/service/reboot/invoke", R"({"id":"125","params":{"delay":5}})",
                      latest);
    REQUIRE(in.replies.size() == 1);
    CHECK(in.replies[0].topic == "$sys/IHL2T99b8k/gw01/thing/service/reboot/invoke_reply");

    in = p.on_message(s, "$sys/IHL2T99b8k/gw01/thing/pack/post/reply",
                      R"({"id":"128","code":309,"msg":"identifier not exist"})", latest);
    REQUIRE(in.answer);
    CHECK(in.answer->id == "128");
    CHECK(in.answer->outcome == north::Answer::Outcome::permanent);
    CHECK(in.answer->reason == "code 309 identifier not exist");
    CHECK(in.replies.empty());
    // protocols.md §2.2: internal error and "device not online" pass; codes it does not list are unknown.
    const std::pair<const char*, north::Answer::Outcome> codes[] = {
        {"200", north::Answer::Outcome::accepted},  {"303", north::Answer::Outcome::transient},
        {"308", north::Answer::Outcome::transient}, {"301", north::Answer::Outcome::permanent},
        {"312", north::Answer::Outcome::permanent}, {"999", north::Answer::Outcome::unknown}};
    for (const auto& [code, outcome] : codes) {
        in = p.on_message(s, "$sys/IHL2T99b8k/gw01/thing/history/post/reply",
                          std::string(R"({"id":"7","code":)") + code + "}", latest);
        REQUIRE(in.answer);
        CHECK(in.answer->outcome == outcome);
    }
    in = p.on_message(s, "$sys/IHL2T99b8k/gw01/thing/property/post/reply", R"({"code":200})", latest);
    CHECK(in.malformed);
    CHECK_FALSE(in.answer);

    in = p.on_message(s, "$sys/IHL2T99b8k/gw01/thing/property/set", "{not json", latest);
    CHECK(in.malformed);
    CHECK(in.replies.empty());
    in = p.on_message(s, "$sys/IHL2T99b8k/gw01/thing/property/get", R"({"id":"9","params":["Nope"]})", latest);
    CHECK(in.refused);
    CHECK(json::parse(in.replies[0].payload)["code"] != 200);
}

TEST_CASE("OneNET legacy: credentials, $dp type 3, type 1 for a backlog, $creq answered on $crsp") {
    Fixture f;
    const auto& s = f.session("old");
    const auto& p = f.profile(s);
    std::string err;
    auto creds = p.credentials(s, 0, &err);
    CHECK(creds->client_id == "5678");
    CHECK(creds->username == "12345");
    CHECK(creds->password == "SN-0001");
    const auto d = f.device("old");
    std::deque<core::SampleBatch> q{batch(d, 0, {{0, 22.5}})};
    std::uint32_t id = 1;
    auto msgs = flat(p.build(s, q, 5, id));
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].topic == "$dp");
    CHECK(msgs[0].payload == platforms::onenet_legacy_frame(3, R"({"temperature":22.5})"));
    q = {batch(d, 1429021872000, {{0, 22.5}}), batch(d, 1429021873000, {{0, 23.0}})};  // 2015-04-14 14:31:12 UTC
    msgs = flat(p.build(s, q, 5, id));
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].payload[0] == 1);
    CHECK(
        msgs[0].payload.substr(3) ==
        R"({"datastreams":[{"id":"temperature","datapoints":[{"at":"2015-04-14 22:31:12","value":22.5},{"at":"2015-04-14 22:31:13","value":23}]}]})");
    // `at` has whole seconds: one value per stream and second, the newest; the others counted.
    q = {batch(d, 1429021872100, {{0, 1.0}}), batch(d, 1429021872900, {{0, 2.0}}), batch(d, 1429021872500, {{0, 1.5}}),
         batch(d, 1429021873000, {{0, 3.0}})};
    auto packets = p.build(s, q, 5, id);
    REQUIRE(packets.size() == 1);
    CHECK(packets[0].superseded == 2);
    REQUIRE(packets[0].messages.size() == 1);
    CHECK(
        packets[0].messages[0].payload.substr(3) ==
        R"({"datastreams":[{"id":"temperature","datapoints":[{"at":"2015-04-14 22:31:12","value":2},{"at":"2015-04-14 22:31:13","value":3}]}]})");
    CHECK(packets[0].messages[0].payload ==
          platforms::onenet_legacy_frame(1, packets[0].messages[0].payload.substr(3)));
    auto in = p.on_message(s, "$creq/7a1c-uuid", "on", {});
    REQUIRE(in.replies.size() == 1);
    CHECK(in.replies[0].topic == "$crsp/7a1c-uuid");
}

TEST_CASE("DaShi AIoT: signed login and property report") {
    Fixture f;
    const auto& s = f.session("device");
    const auto& p = f.profile(s);
    std::string err;
    auto creds = p.credentials(s, 0, &err);
    REQUIRE(creds);
    // clientId carries the timestamp that was signed: recompute the documented signature with it.
    const auto ts_start = creds->client_id.find("timestamp=") + 10;
    const std::string ts = creds->client_id.substr(ts_start, creds->client_id.size() - ts_start - 1);
    CHECK(creds->client_id == "12345|securemode=3,signmethod=hmacsha1,timestamp=" + ts + "|");
    CHECK(creds->username == "device&pk");
    CHECK(creds->password == *platforms::aiot_sign("12345", "device", "pk", ts, "secret", "sha1"));
    std::deque<core::SampleBatch> q{batch(f.device("device"), 1524448722000, {{0, 23.6}})};
    std::uint32_t id = 123;
    auto msgs = flat(p.build(s, q, 5, id));
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].topic == "sys/pk/device/thing/properties/up");
    CHECK(
        json::parse(msgs[0].payload) ==
        json::parse(
            R"({"id":"123","version":"1.0","sys":{"ack":1},"params":{"WF":{"value":23.6,"time":1524448722000}},"method":"thing.properties.up"})"));
    auto in = p.on_message(
        s, "sys/pk/device/thing/properties/set",
        R"({"id":"125","version":"1.0","params":{"temperature":"30.5"},"method":"thing.properties.set"})", {});
    REQUIRE(in.replies.size() == 1);
    CHECK(in.replies[0].topic == "sys/pk/device/thing/properties/set/response");
    auto r = json::parse(in.replies[0].payload);
    CHECK(r["id"] == "125");
    CHECK(r["code"] != 200);
    CHECK(r["method"] == "thing.properties.set");
    in = p.on_message(
        s, "sys/pk/device/thing/properties/up/response",
        R"({"code":460,"data":{},"id":"123","message":"request parameter error!","method":"thing.properties.up","version":"1.0"})",
        {});
    REQUIRE(in.answer);
    CHECK(in.answer->id == "123");
    CHECK(in.answer->outcome == north::Answer::Outcome::permanent);
    CHECK(in.answer->reason == "code 460 request parameter error!");
    in = p.on_message(s, "sys/pk/device/thing/properties/up/response", R"({"code":429,"id":"124"})", {});
    REQUIRE(in.answer);
    CHECK(in.answer->outcome == north::Answer::Outcome::transient);
    in = p.on_message(s, "sys/pk/device/thing/properties/up/response", R"({"code":200})", {});
    CHECK(in.malformed);
    CHECK_FALSE(in.answer);
}

TEST_CASE("ThingsBoard gateway API: connect, telemetry for several devices, RPC answered") {
    Fixture f;
    const auto& s = f.session("tb");
    const auto& p = f.profile(s);
    std::string err;
    auto creds = p.credentials(s, 0, &err);
    CHECK(creds->username == "TOKEN123");
    CHECK(creds->client_id == "fieldlink-gateway");
    std::uint32_t id = 1;
    auto ctl = p.on_connect(s, {}, id);
    REQUIRE(ctl.size() == 2);
    CHECK(ctl[0].topic == "v1/gateway/connect");
    CHECK(json::parse(ctl[0].payload) == json::parse(R"({"device":"Device A"})"));
    const auto a = f.device("Device A"), b = f.device("Device B");
    std::deque<core::SampleBatch> q{batch(a, 1483228800000, {{0, std::int64_t{42}}}),
                                    batch(b, 1483228800000, {{0, std::int64_t{80}}}),
                                    batch(a, 1483228801000, {{0, std::int64_t{43}}})};
    auto msgs = flat(p.build(s, q, 5, id));
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].topic == "v1/gateway/telemetry");
    CHECK(
        json::parse(msgs[0].payload) ==
        json::parse(
            R"({"Device A":[{"ts":1483228800000,"values":{"temperature":42}},{"ts":1483228801000,"values":{"temperature":43}}],"Device B":[{"ts":1483228800000,"values":{"humidity":80}}]})"));
    auto in = p.on_message(s, "v1/gateway/rpc",
                           R"({"device":"Device A","data":{"id":1,"method":"toggle_gpio","params":{"pin":1}}})", {});
    REQUIRE(in.replies.size() == 1);
    auto r = json::parse(in.replies[0].payload);
    CHECK(r["device"] == "Device A");
    CHECK(r["id"] == 1);
    CHECK(r["data"]["success"] == false);
    in = p.on_message(s, "v1/gateway/rpc", R"({"device":"Device A"})", {});
    CHECK(in.malformed);
}

TEST_CASE("generic MQTT: per-point topics") {
    Fixture f;
    const auto& s = f.session("p1");
    std::deque<core::SampleBatch> q{batch(f.device("p1"), 1, {{0, 21.5}})};
    std::uint32_t id = 1;
    auto msgs = flat(f.profile(s).build(s, q, 5, id));
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].topic == "plant/p1/t");
    CHECK(msgs[0].payload == "21.5");
}

TEST_CASE("templates expand device, point, value, times and values") {
    config::DeviceConfig d;
    d.name = "Chic_D";
    for (const char* n : {"temperature", "relay", "label"}) {
        config::PointConfig p;
        p.name = n;
        d.points.push_back(p);
    }
    auto b = batch(0, 1700000000123, {{0, 21.5}, {1, true}, {2, std::string("he said \"hi\"")}});
    CHECK(platforms::expand_template("plant/{device}/{point}", d, b, &b.values[0]) == "plant/Chic_D/temperature");
    CHECK(platforms::expand_template("{value}", d, b, &b.values[2]) == R"("he said \"hi\"")");
    CHECK(platforms::expand_template(R"({"ts":{ts_ms},"s":{ts},"values":{values}})", d, b, nullptr) ==
          R"({"ts":1700000000123,"s":1700000000,"values":{"temperature":21.5,"relay":true,"label":"he said \"hi\""}})");
    CHECK(platforms::expand_template("{unknown} {", d, b, nullptr) == "{unknown} {");
}

TEST_CASE("JSON values: no NaN, scaled values without binary noise") {
    std::string s;
    platforms::append_json_value(s, std::numeric_limits<double>::quiet_NaN());
    s += ' ';
    platforms::append_json_value(s, 101 * 0.1);
    s += ' ';
    platforms::append_json_value(s, std::uint64_t{18446744073709551615ULL});
    s += ' ';
    platforms::append_json_value(s, std::int64_t{-5});
    CHECK(s == "null 10.1 18446744073709551615 -5");
}

TEST_CASE("a device's invalid UTF-8 string is published with replacement characters, not a crash") {
    std::string s;
    platforms::append_json_value(s, std::string("ok\xff\xfe"));
    CHECK(s == "\"ok\xef\xbf\xbd\xef\xbf\xbd\"");
}

TEST_CASE("a backlog of a device with many points is packed by bytes up to OneNET's 256 KB") {
    config::DeviceConfig d;
    d.name = "big";
    for (int i = 0; i < 200; ++i) {
        config::PointConfig p;
        p.name = "p" + std::to_string(i);
        d.points.push_back(p);
    }
    config::Config cfg;
    cfg.devices.push_back(d);
    config::CloudConfig cloud;
    cloud.platform = "onenet";
    cloud.options.push_back({"protocol", "datapoints", {}});
    cloud.product_id = "1";
    cloud.max_payload_size = 256 * 1024;  // the platform's default, as validation sets it
    cfg.clouds.push_back(cloud);
    north::SessionInfo s{&cfg, &cfg.clouds[0], &cfg.devices[0], {0}, "big", nullptr};
    std::deque<core::SampleBatch> q;
    for (int b = 0; b < 100; ++b) {
        std::vector<core::PointValue> values;
        for (std::uint32_t i = 0; i < 200; ++i) values.push_back({i, 12345.678});
        q.push_back(batch(0, 1700000000000 + b * 1000, values));
    }
    std::uint32_t id = 1;
    auto msgs = flat(platforms::find("onenet")->make_profile(cfg.clouds[0])->build(s, q, 100, id));
    // About 6 KB a batch: packed by bytes, three messages of up to 256 KB, all but the last full.
    CHECK(msgs.size() == 3);
    std::size_t samples = 0;
    for (std::size_t i = 0; i < msgs.size(); ++i) {
        CHECK(msgs[i].payload.size() <= 256 * 1024);
        if (i + 1 < msgs.size()) CHECK(msgs[i].payload.size() > 240 * 1024);
        samples += msgs[i].samples;
    }
    CHECK(samples == 20000);
    CHECK(q.empty());
}

TEST_CASE("events and attributes on every platform that has them") {
    const auto cfg = test::load_ok(R"(
clouds:
  tm: { platform: onenet, protocol: thing-model, host: h, product_id: P1, product_key: kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI= }
  das: { platform: aiot, host: h, product_id: pk, client_id: "12345" }
  tb: { platform: thingsboard, host: h, username: TOKEN123 }
buses:
  s: { driver: sim }
devices:
  - name: solo
    cloud: tm
    bus: s
    points:
      - { name: WF, area: holding, address: 0 }
      - { name: alarm, area: holding, address: 1, report: event, event: over, trigger: rising }
      - { name: Ua, area: holding, address: 2, report: event, event: over, trigger: none }
      - { name: mode, area: holding, address: 3, report: attribute }
  - { name: gw, cloud: tm, bus: s, gateway: true, points: [ { name: Power, area: holding, address: 0 } ] }
  - { name: m1, cloud: tm, bus: s, via: gw, points: [ { name: Ua, area: holding, address: 0 }, { name: trip, area: coil, address: 1, report: event }, { name: cause, area: holding, address: 2, report: event, event: trip, trigger: none } ] }
  - { name: dev, cloud: das, bus: s, key: secret, points: [ { name: WF, area: holding, address: 0 }, { name: alarm, area: coil, address: 1, report: event } ] }
  - { name: A, cloud: tb, bus: s, points: [ { name: temperature, area: holding, address: 0 }, { name: fw, area: holding, address: 1, report: attribute }, { name: door, area: coil, address: 2, report: event } ] }
)");
    const auto profiles = platforms::make_profiles(cfg);
    const auto sessions = north::plan_sessions(cfg, profiles);
    const auto session = [&](const std::string& name) -> const north::SessionInfo& {
        for (const auto& s : sessions) {
            if (s.name == name) return s;
        }
        FAIL("no session " << name);
        return sessions[0];
    };
    const auto profile = [&](const north::SessionInfo& s) -> const north::Profile& {
        return *profiles[static_cast<std::size_t>(s.cloud - cfg.clouds.data())];
    };
    std::uint32_t id = 1;
    const std::int64_t t = 1700000000000;

    SUBCASE("OneNET direct device: property/post, event/post, both in pack/post, history/post with events") {
        const auto& s = session("solo");
        const auto& p = profile(s);
        std::deque<core::SampleBatch> q{
            batch(0, t, {{0, 23.6}, {1, std::int64_t{1}}, {2, 251.0}, {3, std::int64_t{2}}})};
        auto msgs = flat(p.build(s, q, 5, id));
        REQUIRE(msgs.size() == 1);
        CHECK(msgs[0].topic == "$sys/P1/solo/thing/pack/post");
        CHECK(json::parse(msgs[0].payload)["params"] ==
              json::parse(R"([{"properties":{"WF":{"value":23.6,"time":1700000000000},
              "mode":{"value":2,"time":1700000000000}},"events":{"over":{"value":{"alarm":1,"Ua":251.0},"time":1700000000000}}}])"));
        CHECK(msgs[0].answer_id == "1");
        q = {batch(0, t, {{1, std::int64_t{1}}, {2, 251.0}})};
        msgs = flat(p.build(s, q, 5, id));
        REQUIRE(msgs.size() == 1);
        CHECK(msgs[0].topic == "$sys/P1/solo/thing/event/post");
        CHECK(
            json::parse(msgs[0].payload) ==
            json::parse(
                R"({"id":"2","version":"1.0","params":{"over":{"value":{"alarm":1,"Ua":251.0},"time":1700000000000}}})"));
        q = {batch(0, t, {{0, 23.6}})};
        CHECK(flat(p.build(s, q, 5, id))[0].topic == "$sys/P1/solo/thing/property/post");
        q = {batch(0, t, {{0, 1.0}, {1, std::int64_t{1}}, {2, 250.0}}), batch(0, t + 1000, {{0, 2.0}}),
             batch(0, t + 2000, {{1, std::int64_t{1}}, {2, 252.0}})};
        msgs = flat(p.build(s, q, 5, id));
        REQUIRE(msgs.size() == 1);
        CHECK(msgs[0].topic == "$sys/P1/solo/thing/history/post");
        CHECK(json::parse(msgs[0].payload)["params"] ==
              json::parse(
                  R"([{"properties":{"WF":[{"value":1.0,"time":1700000000000},{"value":2.0,"time":1700000001000}]},
              "events":{"over":[{"value":{"alarm":1,"Ua":250.0},"time":1700000000000},{"value":{"alarm":1,"Ua":252.0},"time":1700000002000}]}}])"));
    }
    SUBCASE("OneNET gateway: a sub-device's events in pack/post") {
        const auto& s = session("gw");
        const auto& p = profile(s);
        std::deque<core::SampleBatch> q{batch(2, t, {{0, 230.0}, {1, true}})};
        auto msgs = flat(p.build(s, q, 5, id));
        REQUIRE(msgs.size() == 1);
        CHECK(msgs[0].topic == "$sys/P1/gw/thing/pack/post");
        CHECK(json::parse(msgs[0].payload)["params"] ==
              json::parse(R"([{"identity":{"productID":"P1","deviceName":"m1"},
              "properties":{"Ua":{"value":230.0,"time":1700000000000}},"events":{"trip":{"value":{"trip":true},"time":1700000000000}}}])"));
        // A set of events only: no empty "properties" (the platform wants 1..100 of each it gets).
        q = {batch(2, t, {{1, true}, {2, std::int64_t{3}}})};
        msgs = flat(p.build(s, q, 5, id));
        REQUIRE(msgs.size() == 1);
        CHECK(json::parse(msgs[0].payload)["params"] ==
              json::parse(R"([{"identity":{"productID":"P1","deviceName":"m1"},
              "events":{"trip":{"value":{"trip":true,"cause":3},"time":1700000000000}}}])"));
    }
    SUBCASE("OneNET: an event of two parameters and nothing else has no properties") {
        const auto& s = session("solo");
        const auto& p = profile(s);
        std::deque<core::SampleBatch> q{batch(0, t, {{1, std::int64_t{1}}, {2, 251.0}}),
                                        batch(0, t + 1000, {{1, std::int64_t{1}}, {2, 252.0}})};
        auto msgs = flat(p.build(s, q, 5, id));
        REQUIRE(msgs.size() == 1);
        CHECK(msgs[0].topic == "$sys/P1/solo/thing/history/post");
        CHECK(json::parse(msgs[0].payload)["params"] == json::parse(R"([{"events":{"over":[
              {"value":{"alarm":1,"Ua":251.0},"time":1700000000000},{"value":{"alarm":1,"Ua":252.0},"time":1700000001000}]}}])"));
    }
    SUBCASE("DaShi: properties/up and one event/up per event, each answered on its /response") {
        const auto& s = session("dev");
        const auto& p = profile(s);
        CHECK(p.subscriptions(s)[1] == "sys/pk/dev/thing/event/up/response");
        std::deque<core::SampleBatch> q{batch(3, t, {{0, 23.6}, {1, true}})};
        auto packets = p.build(s, q, 5, id);
        REQUIRE(packets.size() == 1);
        const auto& msgs = packets[0].messages;
        REQUIRE(msgs.size() == 2);
        CHECK(msgs[0].topic == "sys/pk/dev/thing/properties/up");
        CHECK(json::parse(msgs[0].payload)["params"] == json::parse(R"({"WF":{"value":23.6,"time":1700000000000}})"));
        CHECK(msgs[1].topic == "sys/pk/dev/thing/event/up");
        CHECK(json::parse(msgs[1].payload) ==
              json::parse(R"({"id":"2","version":"1.0","sys":{"ack":1},"identifier":"alarm",
              "params":{"value":{"alarm":true},"time":1700000000000},"method":"thing.event.up"})"));
        CHECK(msgs[1].answer_id == "2");
        auto in = p.on_message(s, "sys/pk/dev/thing/event/up/response",
                               R"({"code":200,"id":"2","method":"thing.event.up"})", {});
        REQUIRE(in.answer);
        CHECK(in.answer->id == "2");
        CHECK(in.answer->outcome == north::Answer::Outcome::accepted);
    }
    SUBCASE("ThingsBoard: events as telemetry, client attributes, attributes/request reconciled") {
        const auto& s = session("tb");
        const auto& p = profile(s);
        std::deque<core::SampleBatch> q{batch(4, t, {{0, 21.5}, {1, std::int64_t{7}}, {2, true}}),
                                        batch(4, t + 1000, {{1, std::int64_t{8}}})};
        auto packets = p.build(s, q, 5, id);
        REQUIRE(packets.size() == 1);
        const auto& msgs = packets[0].messages;
        REQUIRE(msgs.size() == 2);
        CHECK(msgs[0].topic == "v1/gateway/telemetry");
        CHECK(json::parse(msgs[0].payload) ==
              json::parse(R"({"A":[{"ts":1700000000000,"values":{"temperature":21.5,"door":true}}]})"));
        CHECK(msgs[1].topic == "v1/gateway/attributes");
        CHECK(json::parse(msgs[1].payload) == json::parse(R"({"A":{"fw":8}})"));  // the newest value
        CHECK(packets[0].records.size() == 0);                                    // (batches from no store)

        auto ctl = p.on_connect(s, {}, id);
        REQUIRE(ctl.size() == 2);
        CHECK(ctl[1].topic == "v1/gateway/attributes/request");
        const auto req = json::parse(ctl[1].payload);
        CHECK(req["device"] == "A");
        CHECK(req["client"] == json::parse(R"(["fw"])"));
        CHECK(ctl[1].answer_id == std::to_string(req["id"].get<int>()));
        north::LatestValues latest;
        latest[4] = {core::Value(21.5), core::Value(std::int64_t{8}), core::Value(true)};
        auto in = p.on_message(s, "v1/gateway/attributes/response",
                               R"({"id":)" + req["id"].dump() + R"(,"device":"A","value":7})", latest);
        REQUIRE(in.answer);
        CHECK(in.answer->id == ctl[1].answer_id);
        REQUIRE(in.answer->follow_ups.size() == 1);  // the platform holds 7, the device reads 8
        CHECK(in.answer->follow_ups[0].topic == "v1/gateway/attributes");
        CHECK(json::parse(in.answer->follow_ups[0].payload) == json::parse(R"({"A":{"fw":8}})"));
        in = p.on_message(s, "v1/gateway/attributes/response", R"({"id":9,"device":"A","value":8})", latest);
        REQUIRE(in.answer);
        CHECK(in.answer->follow_ups.empty());  // the same: nothing to send
        in = p.on_message(s, "v1/gateway/attributes/response", R"({"device":"A","value":8})", latest);
        CHECK(in.malformed);
    }
}

TEST_CASE("OneNET datapoints: one value per stream and second, the newest; the others counted") {
    Fixture f;
    const auto d = f.device("Chic_D");
    const auto& dev = f.cfg.devices[d];
    std::deque<core::SampleBatch> q{batch(d, 1700000000200, {{0, 1.0}, {1, true}}), batch(d, 1700000000700, {{0, 2.0}}),
                                    batch(d, 1700000000100, {{0, 0.5}}),  // older, queued later
                                    batch(d, 1700000001100, {{0, 3.0}})};
    std::size_t superseded = 0;
    const auto j = json::parse(platforms::onenet_dp_payload(dev, q, q.size(), 5, &superseded));
    CHECK(j["dp"]["temperature"] == json::parse(R"([{"v":2.0,"t":1700000000},{"v":3.0,"t":1700000001}])"));
    CHECK(j["dp"]["relay"] == json::parse(R"([{"v":true,"t":1700000000}])"));
    CHECK(superseded == 2);
    // Through build: the packet says how many it left out, and carries every record.
    const auto& s = f.session("Chic_D");
    std::uint32_t id = 1;
    auto packets = f.profile(s).build(s, q, 5, id);
    REQUIRE(packets.size() == 1);
    CHECK(packets[0].superseded == 2);
    CHECK(q.empty());
}
