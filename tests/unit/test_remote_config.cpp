// Configuration pushed from the platform (issue 24, item 1): the keys, each platform's channel
// (what arrives, what is reported), the files a push may replace, secrets written out, the atomic
// write, the versions kept and the last result on disk.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "north/north.hpp"
#include "platforms/platform.hpp"
#include "pushed.hpp"

using namespace fieldlink;
using nlohmann::json;

namespace {

const char* const kChannels = R"(
clouds:
  mq: { platform: mqtt, host: h, config_topic: site/gw1/config, remote_config: true, remote_config_deadline: 20s }
  tb: { platform: thingsboard, host: h, username: "${TB_TOKEN}", remote_config: true }
  plain: { platform: mqtt, host: h }
buses:
  s: { driver: sim }
devices:
  - { name: m1, cloud: mq, bus: s, points: &pts [ { name: a, area: holding, address: 1 } ] }
  - { name: m2, cloud: mq, bus: s, points: *pts }
  - { name: t, cloud: tb, bus: s, points: *pts }
  - { name: p, cloud: plain, bus: s, points: *pts }
)";

config::Config load_channels() {
    setenv("TB_TOKEN", "token", 1);
    return test::load_ok(kChannels);
}

struct Channels {
    config::Config cfg = load_channels();
    std::vector<std::unique_ptr<north::Profile>> profiles = platforms::make_profiles(cfg);
    std::vector<north::SessionInfo> sessions = north::plan_sessions(cfg, profiles);

    const north::Profile& profile(const north::SessionInfo& s) {
        return *profiles[static_cast<std::size_t>(s.cloud - cfg.clouds.data())];
    }
    north::Inbound ask(std::size_t session, const std::string& topic, const std::string& payload) {
        const auto& s = sessions.at(session);
        return profile(s).on_message(s, topic, payload, {});
    }
};

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("remote_config: off unless given; a deadline of 60 s; mqtt needs config_topic; others refuse it") {
    Channels c;
    CHECK(c.cfg.clouds[0].remote_config);
    CHECK(c.cfg.clouds[0].remote_config_deadline.count() == 20'000);
    CHECK(c.cfg.clouds[1].remote_config_deadline.count() == 60'000);
    CHECK_FALSE(c.cfg.clouds[2].remote_config);
    const char* devices =
        "buses: { s: { driver: sim } }\ndevices: [ { name: d, cloud: c, bus: s, points: [ { name: a, area: coil, "
        "address: 0 } ] } ]\n";
    auto r =
        load_config_text(std::string("clouds: { c: { platform: mqtt, host: h, remote_config: true } }\n") + devices,
                         "t.yaml", &test::drivers());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].path == "clouds.c.config_topic");
    r = load_config_text(
        std::string("clouds: { c: { platform: onenet, host: h, product_id: P, remote_config: true } }\n") + devices,
        "t.yaml", &test::drivers());
    bool said = false;
    for (const auto& e : r.errors) {
        if (e.path == "clouds.c.remote_config") {
            said = true;
            CHECK(e.message.find("remote_config works on: ") != std::string::npos);
            CHECK(e.message.find("mqtt") != std::string::npos);
            CHECK(e.message.find("thingsboard") != std::string::npos);
        }
    }
    CHECK(said);
    r = load_config_text(
        std::string("clouds: { c: { platform: mqtt, host: h, remote_config: true, config_topic: a/+/b } }\n") + devices,
        "t.yaml", &test::drivers());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].path == "clouds.c.config_topic");
}

TEST_CASE("the channel is the first session of a cloud with remote_config: it alone subscribes and takes pushes") {
    Channels c;
    REQUIRE(c.sessions.size() == 4);  // m1, m2 (generic MQTT: a session per device), tb, plain
    CHECK(c.sessions[0].channel);
    CHECK_FALSE(c.sessions[1].channel);
    CHECK(c.sessions[2].channel);
    CHECK_FALSE(c.sessions[3].channel);
    const auto subs = c.profile(c.sessions[0]).subscriptions(c.sessions[0]);
    CHECK(std::find(subs.begin(), subs.end(), "site/gw1/config") != subs.end());
    const auto others = c.profile(c.sessions[1]).subscriptions(c.sessions[1]);
    CHECK(std::find(others.begin(), others.end(), "site/gw1/config") == others.end());
    const auto tb = c.profile(c.sessions[2]).subscriptions(c.sessions[2]);
    CHECK(std::find(tb.begin(), tb.end(), "v1/devices/me/attributes") != tb.end());

    SUBCASE("generic MQTT: a JSON object, a JSON text, or YAML as it is") {
        auto in = c.ask(0, "site/gw1/config", R"({"id": 7, "file": "conf.d/x.yaml", "config": "devices: []\n"})");
        REQUIRE(in.config_push);
        CHECK(in.config_push->id == "7");
        CHECK(in.config_push->file == "conf.d/x.yaml");
        CHECK(in.config_push->text == "devices: []\n");
        CHECK(in.config_push->problem.empty());
        in = c.ask(0, "site/gw1/config", "gateway: { log_level: info }\n");
        REQUIRE(in.config_push);
        CHECK(in.config_push->file.empty());
        CHECK(in.config_push->text == "gateway: { log_level: info }\n");
        in = c.ask(0, "site/gw1/config", R"({"id": "x", "file": 3})");
        REQUIRE(in.config_push);
        CHECK(in.config_push->problem.find("\"config\" is missing") != std::string::npos);
        in = c.ask(0, "site/gw1/config", "[1, 2]");
        REQUIRE(in.config_push);
        CHECK(in.config_push->problem.find("must be a JSON text or object") != std::string::npos);
        CHECK_FALSE(c.ask(0, "site/gw1/config", "").config_push);             // a retained one being cleared
        CHECK_FALSE(c.ask(1, "site/gw1/config", "devices: []").config_push);  // not the channel
    }
    SUBCASE("ThingsBoard: the gateway's shared attribute fieldlink_config; its other attributes are no push") {
        auto in = c.ask(2, "v1/devices/me/attributes", R"({"fieldlink_config": "devices: []\n", "other": 1})");
        REQUIRE(in.config_push);
        CHECK(in.config_push->text == "devices: []\n");
        CHECK_FALSE(c.ask(2, "v1/devices/me/attributes", R"({"other": 1})").config_push);
        CHECK_FALSE(c.ask(2, "v1/devices/me/attributes", R"({"fieldlink_config_result": "applied"})").config_push);
    }
    SUBCASE("ThingsBoard: on every connection the gateway asks for fieldlink_config; the answer is a push") {
        CHECK(std::find(tb.begin(), tb.end(), "v1/devices/me/attributes/response/+") != tb.end());
        std::uint32_t next_id = 41;
        const auto hello = c.profile(c.sessions[2]).on_connect(c.sessions[2], {}, next_id);
        const auto ask = std::find_if(hello.begin(), hello.end(), [](const north::Message& m) {
            return m.topic.rfind("v1/devices/me/attributes/request/", 0) == 0;
        });
        REQUIRE(ask != hello.end());
        CHECK(ask->topic == "v1/devices/me/attributes/request/41");
        CHECK(ask->payload == R"({"sharedKeys":"fieldlink_config"})");
        auto in = c.ask(2, "v1/devices/me/attributes/response/41",
                        R"({"shared": {"fieldlink_config": {"config": "devices: []\n", "id": 5}}})");
        REQUIRE(in.config_push);
        CHECK(in.config_push->text == "devices: []\n");
        CHECK(in.config_push->id == "5");
        CHECK_FALSE(c.ask(2, "v1/devices/me/attributes/response/42", R"({})").config_push);  // never set
        CHECK_FALSE(c.ask(2, "v1/devices/me/attributes/response/43", R"({"shared": {}})").config_push);
    }
    SUBCASE("reports: retained JSON on config_topic/state; ThingsBoard client attributes") {
        north::ConfigReport r;
        r.id = "7";
        r.file = "config.yaml";
        r.version = "sha256:ab";
        r.result = "refused";
        r.error = "config.yaml:3:5: x: y";
        r.running = "sha256:cd";
        r.at_ms = 1700000000000;
        std::uint32_t next_id = 1;
        auto m = c.profile(c.sessions[0]).config_report(c.sessions[0], r, next_id);
        REQUIRE(m.size() == 1);
        CHECK(m[0].topic == "site/gw1/config/state");
        CHECK(m[0].retain);
        CHECK(json::parse(m[0].payload) == json{{"id", "7"},
                                                {"file", "config.yaml"},
                                                {"version", "sha256:ab"},
                                                {"result", "refused"},
                                                {"error", "config.yaml:3:5: x: y"},
                                                {"running", "sha256:cd"},
                                                {"ts", 1700000000000}});
        m = c.profile(c.sessions[2]).config_report(c.sessions[2], r, next_id);
        REQUIRE(m.size() == 1);
        CHECK(m[0].topic == "v1/devices/me/attributes");
        const auto j = json::parse(m[0].payload);
        CHECK(j["fieldlink_config_version"] == "sha256:ab");
        CHECK(j["fieldlink_config_result"] == "refused");
        CHECK(j["fieldlink_config_error"] == "config.yaml:3:5: x: y");
    }
}

TEST_CASE("OneNET thing model: the service fieldlink_config of the gateway; its reply, then events") {
    setenv("GW_KEY", "c2VjcmV0", 1);
    const auto cfg = test::load_ok(R"(
clouds:
  on: { platform: onenet, host: h, product_id: P1, protocol: thing-model, remote_config: true }
buses:
  s: { driver: sim }
devices:
  - { name: gw, cloud: on, bus: s, gateway: true, key: "${GW_KEY}", points: [ { name: a, area: holding, address: 1 } ] }
  - { name: sub, cloud: on, bus: s, via: gw, product_id: P2, key: "${GW_KEY}", points: [ { name: a, area: holding, address: 1 } ] }
)");
    const auto profiles = platforms::make_profiles(cfg);
    const auto sessions = north::plan_sessions(cfg, profiles);
    REQUIRE(sessions.size() == 1);
    REQUIRE(sessions[0].channel);
    const auto& p = *profiles[0];
    auto in =
        p.on_message(sessions[0], "$sys/P1/gw/thing/service/fieldlink_config/invoke",
                     R"({"id":"42","version":"1.0","params":{"config":"devices: []\n","file":"conf.d/a.yaml"}})", {});
    REQUIRE(in.config_push);
    CHECK_FALSE(in.command);  // (not a write: no bus is involved)
    CHECK(in.config_push->id == "42");
    CHECK(in.config_push->file == "conf.d/a.yaml");
    CHECK(in.config_push->reply_topic == "$sys/P1/gw/thing/service/fieldlink_config/invoke_reply");
    // Another service is still a write request of the device.
    CHECK_FALSE(p.on_message(sessions[0], "$sys/P1/gw/thing/service/reset/invoke",
                             R"({"id":"43","version":"1.0","params":{"a":1}})", {})
                    .config_push);

    north::ConfigReport r;
    r.id = "42";
    r.result = "refused";
    r.error = "config.yaml:3:5: first\nconfig.yaml:9:1: second";
    r.at_ms = 1700000000000;
    r.reply_topic = "$sys/P1/gw/thing/service/fieldlink_config/invoke_reply";
    std::uint32_t next_id = 7;
    auto m = p.config_report(sessions[0], r, next_id);
    REQUIRE(m.size() == 2);
    CHECK(m[0].topic == r.reply_topic);
    auto reply = json::parse(m[0].payload);
    CHECK(reply["id"] == "42");
    CHECK(reply["code"] == 100);
    CHECK(reply["msg"] == "refused: config.yaml:3:5: first");
    CHECK(m[1].topic == "$sys/P1/gw/thing/event/post");
    CHECK(m[1].answer_id == "7");
    auto event = json::parse(m[1].payload);
    CHECK(event["params"]["fieldlink_config"]["time"] == 1700000000000);
    CHECK(event["params"]["fieldlink_config"]["value"]["result"] == "refused");
    r.reply_topic.clear();
    r.result = "applied";
    m = p.config_report(sessions[0], r, next_id);
    REQUIRE(m.size() == 1);  // (sent again after a CONNECT: the event only)
    CHECK(json::parse(m[0].payload)["params"]["fieldlink_config"]["value"]["result"] == "applied");
}

TEST_CASE("a push may replace the main file or a conf.d fragment beside it, nothing else") {
    std::string why;
    CHECK(pushed::target_of("/etc/fieldlink/config.yaml", "", &why) == "/etc/fieldlink/config.yaml");
    CHECK(pushed::target_of("/etc/fieldlink/config.yaml", "config.yaml", &why) == "/etc/fieldlink/config.yaml");
    CHECK(pushed::target_of("/etc/fieldlink/config.yaml", "conf.d/site-7.yml", &why) ==
          "/etc/fieldlink/conf.d/site-7.yml");
    for (const char* bad : {"../x.yaml", "conf.d/../../etc/passwd.yaml", "conf.d/.hidden.yaml", "conf.d/a/b.yaml",
                            "/etc/fieldlink/config.yaml", "conf.d/x.txt", "other.yaml", "conf.d/x.yaml\n"}) {
        CAPTURE(bad);
        why.clear();
        CHECK_FALSE(pushed::target_of("/etc/fieldlink/config.yaml", bad, &why));
        CHECK(why.find("expected 'config.yaml'") != std::string::npos);
    }
}

TEST_CASE("secrets written out in a pushed text are refused with their positions; references pass") {
    const std::string text = R"(clouds:
  a: { platform: onenet, product_id: P, product_key: plainkey }
  b: { platform: mqtt, host: h, username: u, password: "${MQTT_PASSWORD}" }
  c: { platform: thingsboard, host: h, username: abcdef }
  d: { platform: mqtt, host: h, username: user, password: hunter2 }
devices:
  - { name: x, key: k1 }
  - { name: y, key_file: /etc/fieldlink/y.key }
)";
    const auto errors = pushed::literal_secrets(text, "conf.d/p.yaml");
    std::vector<std::string> at;
    for (const auto& e : errors) {
        at.push_back(config::format_error("main.yaml", e));
        CHECK(e.message.find("${ENV_VAR}") != std::string::npos);
        CHECK(e.message.find("hunter2") == std::string::npos);
    }
    REQUIRE(at.size() == 4);
    CHECK(at[0].rfind("conf.d/p.yaml:2:", 0) == 0);
    CHECK(at[0].find("clouds.a.product_key") != std::string::npos);
    CHECK(at[1].find("clouds.c.username") != std::string::npos);
    CHECK(at[2].find("clouds.d.password") != std::string::npos);
    CHECK(at[3].find("devices[0].key") != std::string::npos);
    CHECK(pushed::literal_secrets("a: [unclosed", "x.yaml").empty());  // (the parser says what is wrong)
}

TEST_CASE("the atomic write keeps the mode; history keeps the last N pairs; the state survives") {
    const std::string dir = test::temp_dir("fl-pushed");
    const std::string file = dir + "/config.yaml";
    std::string why;
    REQUIRE(pushed::write_atomic(file, "one\n", &why));
    struct stat st {};
    REQUIRE(stat(file.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
    chmod(file.c_str(), 0600);
    REQUIRE(pushed::write_atomic(file, "two\n", &why));
    REQUIRE(stat(file.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(slurp(file) == "two\n");
    CHECK_FALSE(std::filesystem::exists(file + ".tmp"));
    CHECK_FALSE(pushed::write_atomic("/proc/version/x", "x", &why));
    CHECK(why.find("cannot create") != std::string::npos);

    CHECK(pushed::version_of("abc") ==
          "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");  // FIPS 180-2 vector
    const std::string running = pushed::running_version(file);
    CHECK(running == pushed::version_of("two\n"));
    std::filesystem::create_directory(dir + "/conf.d");
    REQUIRE(pushed::write_atomic(dir + "/conf.d/a.yaml", "a\n", &why));
    CHECK(pushed::running_version(file) != running);

    pushed::History h(dir + "/history", 2);
    for (int i = 0; i < 4; ++i) {
        REQUIRE(h.save("before", file, "b" + std::to_string(i), &why));
        REQUIRE(h.save("pushed", file, "p" + std::to_string(i), &why));
        usleep(2000);
    }
    const auto kept = h.files();
    REQUIRE(kept.size() == 4);
    CHECK(slurp(dir + "/history/" + kept[0]) == "b2");
    CHECK(slurp(dir + "/history/" + kept[3]) == "p3");
    CHECK_FALSE(h.load_state());
    north::ConfigReport r;
    r.id = "9";
    r.file = "config.yaml";
    r.version = "sha256:1";
    r.result = "rolled back";
    r.error = "cloud x did not connect";
    r.at_ms = 5;
    REQUIRE(h.save_state(r, &why));
    const auto back = h.load_state();
    REQUIRE(back);
    CHECK(back->id == "9");
    CHECK(back->result == "rolled back");
    CHECK(back->error == "cloud x did not connect");
    CHECK(back->at_ms == 5);
    CHECK(h.files().size() == 4);  // (state.json is not a version)
    std::ofstream(dir + "/history/state.json") << "{not json";
    CHECK_FALSE(h.load_state());
    std::filesystem::remove_all(dir);
}
