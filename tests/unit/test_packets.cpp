// A message owns its records: every profile builds its largest message from a long backlog, and
// the packet's records must be exactly the batches it took (in order), and its payload must
// carry exactly their values. A gateway's pack/history message (10 devices x 100 batches, far
// more than the 256 the first version remembered) is then acknowledged through a session and
// a real store, which must delete exactly those records.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

#include "fake_north.hpp"
#include "helpers.hpp"
#include "north/north.hpp"
#include "platforms/platform.hpp"
#include "store/outbox.hpp"

using namespace fieldlink;
using nlohmann::json;

namespace {

constexpr double kBase = 1e6;  // values are kBase + record id: unlike ids and times in payloads

const char* kClouds = R"(
clouds:
  dp: { platform: onenet, host: h, product_id: "469948", product_key: kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI= }
  tm: { platform: onenet, protocol: thing-model, host: h, product_id: P1, product_key: kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI= }
  legacy: { platform: onenet-legacy, host: h, product_id: "1", keepalive: 120s }
  das: { platform: aiot, host: h, product_id: pk }
  tb: { platform: thingsboard, host: h, username: T }
  plain: { platform: mqtt, host: h }
  perpoint: { platform: mqtt, host: h, topic: "p/{device}/{point}", payload: "{value}" }
  dp8: { platform: onenet, host: h, product_id: "469948", product_key: kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI=, max_payload_size: 8KB }
  tm4: { platform: onenet, protocol: thing-model, host: h, product_id: P1, product_key: kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI=, max_payload_size: 4KB }
  tb8: { platform: thingsboard, host: h, username: T, max_payload_size: 8KB }
  tb8b: { platform: thingsboard, host: h, username: T, client_id: other, max_payload_size: 8KB }
  das8: { platform: aiot, host: h, product_id: pk, max_payload_size: 8KB }
  plain8: { platform: mqtt, host: h, max_payload_size: 8KB }
  legacy8: { platform: onenet-legacy, host: h, product_id: "1", keepalive: 120s, max_payload_size: 8KB }
buses:
  s: { driver: sim }
devices:
)";

std::string device(const std::string& name, const std::string& cloud, const std::string& extra = "", int points = 1) {
    std::string pts;
    for (int i = 0; i < points; ++i)
        pts += (i ? ", " : "") + std::string("{ name: v") + std::to_string(i) +
               ", area: holding, address: " + std::to_string(i) + " }";
    return "  - { name: " + name + ", cloud: " + cloud + ", bus: s" + extra + ", points: [ " + pts + " ] }\n";
}

std::string config_text() {
    std::string d = device("d-dp", "dp") + device("tm-direct", "tm") + device("gw", "tm", ", gateway: true");
    for (int i = 0; i < 12; ++i) d += device("sub" + std::to_string(i), "tm", ", via: gw");
    d += device("legacy1", "legacy", ", device_id: \"5\", key: x") + device("das1", "das", ", key: x");
    d += device("legacy40", "legacy", ", device_id: \"6\", key: x", 40);
    d += device("legacybig", "legacy", ", device_id: \"7\", key: x", 5000);  // one set > 64 KB
    // Clouds with an 8 KB limit and devices of 20 and 600 points (one set of 600 is over 8 KB).
    d += device("dp20", "dp8", "", 20) + device("dp600", "dp8", "", 600);
    // OneNET's thing model takes at most 100 properties a device: a 4 KB limit there.
    d += device("tm20", "tm4", "", 20) + device("tm100", "tm4", "", 100) + device("gw4", "tm4", ", gateway: true", 100);
    for (int i = 0; i < 4; ++i) d += device("gwsub" + std::to_string(i), "tm4", ", via: gw4", 100);
    d += device("das600", "das8", ", key: x", 600) + device("plain600", "plain8", "", 600);
    d += device("legacy600", "legacy8", ", device_id: \"8\", key: x", 600);
    d += device("tb20a", "tb8", "", 20) + device("tb20b", "tb8", "", 20) + device("tb600", "tb8b", "", 600);
    for (int i = 0; i < 3; ++i) d += device("tb" + std::to_string(i), "tb");
    d += device("m1", "plain") + device("pp1", "perpoint", "", 2);
    return kClouds + d;
}

// Every number in [kBase, kBase + 1e6) anywhere in a JSON document.
void collect(const json& j, std::vector<std::int64_t>& out) {
    if (j.is_number()) {
        const double v = j.get<double>();
        if (v >= kBase && v < kBase + 1e6) out.push_back(static_cast<std::int64_t>(v - kBase));
    } else if (j.is_object() || j.is_array()) {
        for (const auto& e : j) collect(e, out);
    }
}

std::vector<std::int64_t> values_in(const north::Message& m) {
    std::string text = m.payload;
    if (m.topic == "$dp") text = text.substr(3);  // legacy frame header
    std::vector<std::int64_t> out;
    collect(json::parse(text), out);
    return out;
}

struct World {
    config::Config cfg = test::load_ok(config_text());
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
    // `n` batches round-robin over the session's devices, record ids 1..n, every point kBase + id.
    std::deque<core::SampleBatch> backlog(const north::SessionInfo& s, std::int64_t n) {
        std::deque<core::SampleBatch> q;
        for (std::int64_t id = 1; id <= n; ++id) {
            core::SampleBatch b;
            b.device_index = s.devices[static_cast<std::size_t>(id - 1) % s.devices.size()];
            b.timestamp_ms = 1'700'000'000'000 + id * 1000;
            b.record_id = id;
            b.values.resize(cfg.devices[b.device_index].points.size());
            for (std::uint32_t i = 0; i < b.values.size(); ++i) {
                b.values[i].point_index = i;
                b.values[i].value.emplace<double>(kBase + static_cast<double>(id));
            }
            q.push_back(std::move(b));
        }
        return q;
    }
};

// Builds one packet from a backlog of `n` and checks that it owns exactly what it consumed.
north::Packet check_largest(World& w, const std::string& name, std::int64_t n) {
    const auto& s = w.session(name);
    auto q = w.backlog(s, n);
    std::uint32_t id = 1;
    auto packets = w.profile(s).build(s, q, 1, id);
    REQUIRE(packets.size() == 1);
    auto& p = packets[0];
    const auto consumed = static_cast<std::size_t>(n) - q.size();
    REQUIRE(consumed > 0);
    REQUIRE(p.records.size() == consumed);
    // The oldest of the devices it carries, in queue order; nothing else.
    std::set<std::uint32_t> devices;
    for (const auto& r : p.records) devices.insert(r.device);
    std::vector<std::int64_t> expected;
    std::map<std::uint32_t, std::size_t> per_device;
    for (const auto& r : p.records) ++per_device[r.device];
    for (std::int64_t rid = 1; rid <= n && expected.size() < consumed; ++rid) {
        const auto d = s.devices[static_cast<std::size_t>(rid - 1) % s.devices.size()];
        if (devices.count(d) && per_device[d] > 0) {
            --per_device[d];
            expected.push_back(rid);
        }
    }
    REQUIRE(expected.size() == consumed);
    for (std::size_t i = 0; i < consumed; ++i) CHECK(p.records[i].id == expected[i]);
    for (const auto& b : q) CHECK(std::find(expected.begin(), expected.end(), b.record_id) == expected.end());
    if (!q.empty() && s.devices.size() == 1) {
        CHECK(q.front().record_id == static_cast<std::int64_t>(consumed + 1));  // the rest is still waiting
    }
    std::multiset<std::int64_t> carried;
    std::size_t samples = 0;
    for (const auto& m : p.messages) {
        for (auto v : values_in(m)) carried.insert(v);
        samples += m.samples;
    }
    const std::size_t points = w.cfg.devices[s.devices[0]].points.size();
    CHECK(carried.size() == consumed * points);
    for (auto rid : expected) CHECK(carried.count(rid) == points);
    CHECK(samples == p.samples);
    CHECK(p.samples == consumed * points);
    CHECK(p.oldest_ms == 1'700'000'000'000 + 1000);
    return p;
}

}  // namespace

TEST_CASE("packets: OneNET datapoints carry what fits 256 KB and own exactly it") {
    World w;
    auto p = check_largest(w, "d-dp", 5000);
    CHECK(p.records.size() == 5000);  // about 30 bytes a set of one value: all of them
    REQUIRE(p.messages.size() == 1);
    CHECK(p.messages[0].payload.size() <= 256 * 1024);
    auto big = check_largest(w, "d-dp", 20000);  // 600 KB: packed up to the limit
    CHECK(big.messages[0].payload.size() <= 256 * 1024);
    CHECK(big.messages[0].payload.size() > 240 * 1024);
}

TEST_CASE("packets: OneNET thing model, a direct device: property/post for one, history/post for a backlog") {
    World w;
    CHECK(check_largest(w, "tm-direct", 1).messages[0].topic == "$sys/P1/tm-direct/thing/property/post");
    auto p = check_largest(w, "tm-direct", 5000);
    CHECK(p.messages[0].topic == "$sys/P1/tm-direct/thing/history/post");
    CHECK(p.records.size() == 100);
}

TEST_CASE("packets: a OneNET gateway's history/post carries 10 devices x 100 batches, all owned") {
    World w;
    const auto& s = w.session("gw");
    REQUIRE(s.devices.size() == 13);  // the gateway and 12 sub-devices
    auto p = check_largest(w, "gw", 20000);
    CHECK(p.messages[0].topic == "$sys/P1/gw/thing/history/post");
    // Round-robin over 13 devices: the first 10 devices get 100 batches each; the other three's
    // batches wait for the next message.
    CHECK(p.records.size() == 1000);
    CHECK(json::parse(p.messages[0].payload)["params"].size() == 10);
    // One batch per device: pack/post.
    auto q = w.backlog(s, 10);
    std::uint32_t id = 1;
    auto packets = w.profile(s).build(s, q, 1, id);
    CHECK(packets[0].messages[0].topic == "$sys/P1/gw/thing/pack/post");
    CHECK(packets[0].records.size() == 10);
}

TEST_CASE("packets: OneNET legacy type 3 for one sample set, type 1 for a backlog") {
    World w;
    auto one = check_largest(w, "legacy1", 1);
    CHECK(one.messages[0].payload[0] == 3);
    auto many = check_largest(w, "legacy1", 5000);
    CHECK(many.messages[0].payload[0] == 1);
    CHECK(many.records.size() > 50);  // one point per set: far more than 50 sets fit in 64 KB
}

// Every $dp frame's 2-byte header states its body's length exactly; returns the body sizes.
std::vector<std::size_t> check_frames(const north::Packet& p, int type) {
    std::vector<std::size_t> sizes;
    for (const auto& m : p.messages) {
        REQUIRE(m.payload.size() >= 3);
        CHECK(m.payload[0] == type);
        const std::size_t header =
            (static_cast<std::uint8_t>(m.payload[1]) << 8) | static_cast<std::uint8_t>(m.payload[2]);
        CHECK(header == m.payload.size() - 3);
        CHECK(m.payload.size() - 3 <= 65535);
        sizes.push_back(m.payload.size() - 3);
    }
    return sizes;
}

TEST_CASE("packets: OneNET legacy frames fit their 2-byte length: a backlog is packed by bytes and split") {
    World w;
    // 40 points: 50 sets made an 83 KB body whose header said 17 KB; now as many whole sets as fit.
    auto p = check_largest(w, "legacy40", 5000);
    REQUIRE(p.messages.size() == 1);
    const auto sizes = check_frames(p, 1);
    CHECK(sizes[0] > 60000);  // packed close to the limit, not a fixed count of sets
    CHECK(p.records.size() > 30);
    // The whole backlog drains in frames that all fit, each record in exactly one packet.
    const auto& s = w.session("legacy40");
    auto q = w.backlog(s, 500);
    std::uint32_t id = 1;
    std::set<std::int64_t> seen;
    while (!q.empty()) {
        auto packets = w.profile(s).build(s, q, 4, id);
        REQUIRE(!packets.empty());
        for (const auto& pk : packets) {
            check_frames(pk, 1);
            for (const auto& r : pk.records) CHECK(seen.insert(r.id).second);
        }
    }
    CHECK(seen.size() == 500);
}

TEST_CASE("packets: OneNET legacy: one sample set larger than a frame spans messages of one packet") {
    World w;
    auto one = check_largest(w, "legacybig", 1);  // type 3, 5000 values
    CHECK(one.messages.size() >= 2);
    check_frames(one, 3);
    auto two = check_largest(w, "legacybig", 2);  // type 1: the first set alone, split
    CHECK(two.records.size() == 1);
    CHECK(two.messages.size() >= 2);
    check_frames(two, 1);
}

TEST_CASE("packets: every platform packs up to the cloud's max_payload_size in bytes and splits a larger set") {
    World w;
    for (const char* name :
         {"dp20", "dp600", "tm20", "tm100", "gw4", "das600", "plain600", "legacy600", "tb8", "tb8b"}) {
        CAPTURE(name);
        const auto& s = w.session(name);
        const std::size_t limit = w.profile(s).max_payload();
        for (std::int64_t n : {1, 7, 300}) {
            CAPTURE(n);
            auto p = check_largest(w, name, n);  // owns exactly what it carries, every value once
            for (const auto& m : p.messages) CHECK(m.payload.size() <= limit);
            const std::size_t points = w.cfg.devices[s.devices[0]].points.size();
            if (points >= 100) CHECK(p.messages.size() > 1);  // one set does not fit one message
        }
        // A whole backlog drains, every record in exactly one packet, every message within the limit.
        auto q = w.backlog(s, 300);
        std::uint32_t id = 1;
        std::set<std::int64_t> seen;
        std::size_t messages = 0, bytes = 0;
        while (!q.empty()) {
            for (const auto& pk : w.profile(s).build(s, q, 8, id)) {
                for (const auto& r : pk.records) CHECK(seen.insert(r.id).second);
                for (const auto& m : pk.messages) {
                    CHECK(m.payload.size() <= limit);
                    bytes += m.payload.size();
                    ++messages;
                }
            }
        }
        CHECK(seen.size() == 300);
        // Packed by bytes, not by a fixed count: messages are mostly full.
        if (std::string(name) == "dp20" || std::string(name) == "tb8") CHECK(bytes / messages > limit / 2);
    }
}

TEST_CASE("config: max_payload_size within the platform's own limit") {
    auto errors_of = [](const std::string& cloud) {
        auto r =
            load_config_text("clouds:\n  c: " + cloud +
                                 "\nbuses:\n  s: { driver: sim }\ndevices:\n  - { name: d, device_id: \"5\", key: k, "
                                 "cloud: c, bus: s, points: [ { name: v, area: holding, address: 0 } ] }\n",
                             "t.yaml", &test::drivers());
        std::string all;
        for (const auto& e : r.errors) all += config::format_error("t.yaml", e) + "\n";
        return all;
    };
    CHECK(errors_of("{ platform: onenet, host: h, product_id: p, max_payload_size: 512KB }")
              .find("over the platform's limit; expected at most 262144 (OneNET disconnects") != std::string::npos);
    CHECK(errors_of("{ platform: onenet-legacy, host: h, product_id: p, keepalive: 120s, max_payload_size: 1MB }")
              .find("expected at most 65538") != std::string::npos);
    CHECK(errors_of("{ platform: thingsboard, host: h, username: t, max_payload_size: 1MB }").empty());
    CHECK(errors_of("{ platform: mqtt, host: h, max_payload_size: 100 }").find("max_payload_size") !=
          std::string::npos);
    const auto cfg = test::load_ok(
        "clouds:\n  c: { platform: thingsboard, host: h, username: t }\nbuses:\n  s: { driver: sim }\ndevices:\n"
        "  - { name: d, cloud: c, bus: s, points: [ { name: v, area: holding, address: 0 } ] }\n");
    CHECK(cfg.clouds[0].max_payload_size == 65536);  // ThingsBoard's default
}

TEST_CASE("packets: DaShi, ThingsBoard and generic MQTT own exactly what they carry") {
    World w;
    CHECK(check_largest(w, "das1", 100).records.size() == 1);
    auto tb = check_largest(w, "tb", 5000);  // ThingsBoard's default limit: 64 KB
    CHECK(tb.messages[0].payload.size() <= 65536);
    CHECK(tb.messages[0].payload.size() > 60000);
    CHECK(check_largest(w, "m1", 100).records.size() == 1);
    auto pp = check_largest(w, "pp1", 100);
    CHECK(pp.messages.size() == 2);  // one message per point, one record for both
    CHECK(pp.records.size() == 1);
}

TEST_CASE("packets: a gateway backlog of 10 x 100 batches is deleted from the store exactly once it is acknowledged") {
    const std::string dir = test::temp_dir("fl-packets");
    auto cfg = test::load_ok("gateway: { data_dir: " + dir + " }\n" + config_text());
    auto profiles = platforms::make_profiles(cfg);
    auto infos = north::plan_sessions(cfg, profiles);
    auto info = *std::find_if(infos.begin(), infos.end(), [](const auto& i) { return i.name == "gw"; });
    std::string err;
    auto store = store::Outbox::open(cfg, &err);
    REQUIRE(store);
    // 1300 stored batches: 100 per device for the gateway and its 12 sub-devices.
    std::vector<core::SampleBatch> batches;
    for (int round = 0; round < 100; ++round) {
        for (auto d : info.devices) {
            core::SampleBatch b;
            b.device_index = d;
            b.timestamp_ms = 1'700'000'000'000 + round * 1000;
            b.values.resize(1);
            b.values[0].point_index = 0;
            b.values[0].value.emplace<double>(round);
            batches.push_back(std::move(b));
        }
    }
    std::vector<core::SampleBatch*> ptrs;
    for (auto& b : batches) ptrs.push_back(&b);
    store->append(ptrs);
    REQUIRE(store->stats().records == 1300);

    test::FakeLoop loop;
    test::FakeResolver resolver;
    resolver.address_of["h"] = "127.0.0.1";
    test::FakeTransports transports;
    transports.loop = &loop;
    north::SessionEnv env;
    env.loop = &loop;
    env.resolver = &resolver;
    env.make_transport = transports.factory();
    env.store = store.get();
    env.memory_window = 2000;
    env.backlog_chunk = 2000;
    const auto& profile = *profiles[static_cast<std::size_t>(info.cloud - cfg.clouds.data())];
    north::Session s(info, profile, env);
    s.start();
    auto& t = *transports.made.at(0);
    t.connack();
    // Topology first (topo/get, then topo/add per sub-device, data waiting), one message per
    // second; the logins then take turns with data.
    auto data_at = [&t] {
        for (std::size_t i = 0; i < t.published.size(); ++i) {
            if (t.published[i].topic == "$sys/P1/gw/thing/history/post") return i;
        }
        return t.published.size();
    };
    for (int i = 0; i < 60 && data_at() == t.published.size(); ++i) {
        loop.advance(std::chrono::seconds(1));
        t.ack_all();
    }
    REQUIRE(data_at() < t.published.size());
    std::size_t adds = 0;
    for (std::size_t i = 0; i < data_at(); ++i) adds += t.published[i].topic == "$sys/P1/gw/thing/sub/topo/add";
    CHECK(adds == 12);  // every sub-device is in the topology before data goes
    const auto data = t.published[data_at()];
    const auto params = json::parse(data.payload)["params"];
    std::size_t carried = 0;
    for (const auto& dev : params) carried += dev["properties"]["v0"].size();
    CHECK(carried == 1000);  // 10 devices x 100 batches in one message
    store->maintain(loop.now());
    CHECK(store->stats().records == 300);  // exactly the 1000 it carried are gone
    for (int i = 0; i < 30 && !s.idle(); ++i) {
        loop.advance(std::chrono::seconds(1));
        t.ack_all();
    }
    store->maintain(loop.now());
    CHECK(store->stats().records == 0);
    CHECK(s.idle());
}
