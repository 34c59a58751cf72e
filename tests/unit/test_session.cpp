// The north side's state machine on a fake clock and a fake transport: in-flight packets, the
// backlog refilled from disk, the token bucket, reconnects and the login limit, credential
// renewal, a slow resolver, and timers that follow what is due.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <set>

#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>

#include "fake_north.hpp"
#include "helpers.hpp"
#include "north/mosquitto_transport.hpp"
#include "north/north.hpp"
#include "north/session.hpp"
#include "platforms/platform.hpp"
#include "platforms/sparkplug_payload.hpp"
#include "store/outbox.hpp"

using namespace fieldlink;
using namespace std::chrono_literals;

namespace {

// A configuration, its profiles, and one Session per planned session on the fakes.
struct Rig {
    config::Config cfg;
    std::vector<std::unique_ptr<north::Profile>> profiles;
    test::FakeLoop loop;
    test::FakeResolver resolver;
    test::FakeTransports transports;
    std::unique_ptr<store::Outbox> store;
    std::vector<std::unique_ptr<north::Session>> sessions;
    north::SessionCounters totals;
    std::size_t connected = 0;
    north::ConnectWindow* connect_window = nullptr;

    explicit Rig(const std::string& text, bool with_store = false, std::size_t window = 2000, std::size_t chunk = 500,
                 north::ConnectWindow* cw = nullptr)
        : connect_window(cw) {
        cfg = test::load_ok(with_store ? "gateway: { data_dir: " + test::temp_dir("fl-session") + " }\n" + text
                                       : "gateway: { store: memory }\n" + text);
        profiles = platforms::make_profiles(cfg);
        transports.loop = &loop;
        resolver.address_of = {{"broker.test", "127.0.0.1"}, {"slow.test", "127.0.0.2"}};
        std::string err;
        if (with_store) {
            store = store::Outbox::open(cfg, &err);
            REQUIRE_MESSAGE(store, err);
        }
        for (auto& info : north::plan_sessions(cfg, profiles)) {
            north::SessionEnv env;
            env.loop = &loop;
            env.resolver = &resolver;
            env.make_transport = transports.factory();
            env.store = store.get();
            env.totals = &totals;
            env.connected = &connected;
            env.window = connect_window;
            env.memory_window = window;
            env.backlog_chunk = chunk;
            const auto& p = *profiles[static_cast<std::size_t>(info.cloud - cfg.clouds.data())];
            sessions.push_back(std::make_unique<north::Session>(std::move(info), p, std::move(env)));
        }
    }
    north::Session& session(std::size_t i = 0) { return *sessions[i]; }
    test::FakeTransport& transport(std::size_t i = 0) { return *transports.made.at(i); }

    // A batch of device `d`, every point `v` (stored first when there is a store, as the north
    // loop does).
    void feed(north::Session& s, std::uint32_t d, double v) {
        core::SampleBatch b;
        b.device_index = d;
        b.timestamp_ms = loop.unix_ms();
        b.values.resize(cfg.devices[d].points.size());
        for (std::uint32_t i = 0; i < b.values.size(); ++i) {
            b.values[i].point_index = i;
            b.values[i].value.emplace<double>(v);
        }
        if (store) {
            std::vector<core::SampleBatch*> p{&b};
            store->append(p);
        }
        s.enqueue(std::move(b));
        s.flush();
    }
};

const char* kOnenet = R"(
clouds:
  c: { platform: onenet, host: broker.test, product_id: "469948", product_key: kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI=, keepalive: 60s }
buses:
  s: { driver: sim }
devices:
  - { name: d1, cloud: c, bus: s, points: [ { name: v, area: holding, address: 0 } ] }
)";

const char* kPerPoint = R"(
clouds:
  c: { platform: mqtt, host: broker.test, topic: "plant/{device}/{point}", payload: "{value}", max_inflight: 50 }
buses:
  s: { driver: sim }
devices:
  - { name: m1, cloud: c, bus: s, points: [ { name: a, area: holding, address: 0 }, { name: b, area: holding, address: 1 }, { name: c, area: holding, address: 2 } ] }
)";

// Lets the fake time run until the session has connected `n` times in all.
void until_connects(test::FakeLoop& loop, test::FakeTransport& t, std::size_t n) {
    for (int i = 0; i < 2000 && t.connects.size() < n; ++i) loop.advance(100ms);
    REQUIRE(t.connects.size() == n);
}

std::int64_t et_of(const std::string& token) {
    const auto at = token.find("&et=") + 4;
    return std::stoll(token.substr(at, token.find('&', at) - at));
}

}  // namespace

TEST_CASE("session: resolves, connects, subscribes, and sends at most one message per second without bursts") {
    Rig r(kOnenet);
    auto& s = r.session();
    s.start();
    REQUIRE(r.transports.made.size() == 1);
    auto& t = r.transport();
    REQUIRE(t.connects.size() == 1);
    CHECK(t.connects[0].second == "127.0.0.1");  // the resolved address, never the name
    CHECK(t.connects[0].first.client_id == "d1");
    t.connack();
    const auto connected_at = r.loop.now();
    CHECK(s.connected());
    CHECK(r.connected == 1);
    CHECK(t.subscriptions == std::vector<std::string>{"$sys/469948/d1/dp/post/json/+", "$sys/469948/d1/cmd/request/+"});
    // 30 batches, one every 100 ms, all acknowledged at once: the token bucket (capacity 1) lets
    // one message out per second, each carrying what waited.
    for (int i = 0; i < 30; ++i) {
        r.feed(s, 0, i);
        r.loop.advance(100ms);
        t.ack_all();
    }
    r.loop.advance(2s);
    t.ack_all();
    REQUIRE(t.published.size() >= 3);
    // The first message too waits one interval after connecting: a daemon restarted at once
    // (kill -9, crash, upgrade) cannot know when the previous process last published.
    CHECK(t.published[0].at - connected_at >= 1s);
    for (std::size_t i = 1; i < t.published.size(); ++i) {
        CHECK(t.published[i].at - t.published[i - 1].at >= 1s);
    }
    // Datapoints carry whole seconds: of the ten values a second, the newest goes; the others are
    // counted, never sent with a time the platform would take for the same sample.
    std::size_t values = 0;
    for (const auto& p : t.published) {
        std::set<std::int64_t> seconds;
        const auto j = nlohmann::json::parse(p.payload);
        for (const auto& v : j["dp"]["v"]) {
            CHECK(seconds.insert(v["t"].get<std::int64_t>()).second);
            ++values;
        }
    }
    CHECK(values >= 3);
    CHECK(values + s.counters().values_superseded == 30);
    CHECK(s.idle());
}

TEST_CASE("session: a packet's records are deleted only when every message of it is acknowledged") {
    Rig r(kPerPoint, true);
    auto& s = r.session();
    s.start();
    auto& t = r.transport();
    t.connack();
    r.feed(s, 0, 1.0);  // one batch of three points: three messages, one record
    REQUIRE(t.published.size() == 3);
    t.puback(t.published[0].mid);
    t.puback(t.published[1].mid);
    r.store->maintain(r.loop.now());
    CHECK(r.store->stats().records == 1);
    t.puback(t.published[1].mid);  // a duplicate acknowledgement changes nothing
    r.store->maintain(r.loop.now());
    CHECK(r.store->stats().records == 1);
    t.puback(t.published[2].mid);
    r.store->maintain(r.loop.now());
    CHECK(r.store->stats().records == 0);
    CHECK(s.idle());
}

TEST_CASE("session: messages in flight survive a reconnect and are acknowledged afterwards") {
    Rig r(kPerPoint, true);
    auto& s = r.session();
    s.start();
    auto& t = r.transport();
    t.connack();
    r.feed(s, 0, 1.0);
    REQUIRE(t.published.size() == 3);
    t.drop();  // the client resends its QoS 1 messages after the next CONNACK
    CHECK_FALSE(s.connected());
    until_connects(r.loop, t, 2);
    t.connack();
    for (int i = 0; i < 3; ++i) t.puback(t.published[static_cast<std::size_t>(i)].mid);
    r.store->maintain(r.loop.now());
    CHECK(r.store->stats().records == 0);
}

TEST_CASE(
    "session: a backlog beyond the memory window is reloaded from the store, oldest first, taking turns with live "
    "data") {
    // Window of 4 batches in memory, chunks of 4 from disk.
    Rig r(kOnenet, true, 4, 4);
    auto& s = r.session();
    for (int i = 0; i < 20; ++i) {  // offline: 20 stored, the newest 4 in memory, a second apart
        r.feed(s, 0, i);
        r.loop.advance(1s);
    }
    CHECK(s.queued_in_memory() == 4);
    s.start();
    auto& t = r.transport();
    t.connack();
    std::vector<double> sent;
    for (int round = 0; round < 60 && !s.idle(); ++round) {
        r.loop.advance(1s);
        t.ack_all();
        r.store->maintain(r.loop.now());
        if (round == 2) r.feed(s, 0, 100);  // live data arrives while the backlog drains
    }
    for (const auto& p : t.published) {
        const auto j = nlohmann::json::parse(p.payload);
        for (const auto& v : j["dp"]["v"]) sent.push_back(v["v"].get<double>());
    }
    REQUIRE(sent.size() == 21);
    // Every stored value exactly once; the backlog (0..15) in order; the live 100 not last.
    std::vector<double> backlog;
    for (double v : sent) {
        if (v < 16) backlog.push_back(v);
    }
    for (std::size_t i = 0; i < backlog.size(); ++i) CHECK(backlog[i] == static_cast<double>(i));
    CHECK(sent.back() != 100);
    CHECK(r.store->stats().records == 0);
}

TEST_CASE("session: reconnects back off and never log in more than 3 times in 5 s") {
    Rig r(kOnenet);
    auto& s = r.session();
    s.start();
    auto& t = r.transport();
    // A broker that accepts and then kicks at once, for two minutes.
    for (int i = 0; i < 400; ++i) {
        if (t.open && !s.connected()) {
            t.connack();
            t.drop();
        }
        r.loop.advance(300ms);
    }
    REQUIRE(t.connect_times.size() >= 5);
    for (std::size_t i = 3; i < t.connect_times.size(); ++i) {
        CHECK(t.connect_times[i] - t.connect_times[i - 3] >= 5s);
    }
}

namespace {

// A platform's profile with another login rule: the session asks the profile, it knows no rule
// of its own.
class StricterLogins : public north::Profile {
  public:
    explicit StricterLogins(const north::Profile& inner) : north::Profile(inner.cloud()), inner_(inner) {}
    north::LoginLimit login_limit() const override { return {1, 10s}; }
    std::optional<north::Credentials> credentials(const north::SessionInfo& s, std::int64_t now_s,
                                                  std::string* error) const override {
        return inner_.credentials(s, now_s, error);
    }
    std::vector<north::Packet> build(const north::SessionInfo& s, std::deque<core::SampleBatch>& pending,
                                     std::size_t max_packets, std::uint32_t& next_id) const override {
        return inner_.build(s, pending, max_packets, next_id);
    }

  private:
    const north::Profile& inner_;
};

}  // namespace

TEST_CASE("session: the login rule is the platform's (Profile::login_limit)") {
    Rig r(kPerPoint);
    StricterLogins strict(*r.profiles[0]);
    north::SessionEnv env;
    env.loop = &r.loop;
    env.resolver = &r.resolver;
    env.make_transport = r.transports.factory();
    auto infos = north::plan_sessions(r.cfg, r.profiles);
    north::Session s(std::move(infos.at(0)), strict, std::move(env));
    s.start();
    auto& t = r.transport();
    for (int i = 0; i < 400; ++i) {  // accepted and kicked at once, for two minutes
        if (t.open && !s.connected()) {
            t.connack();
            t.drop();
        }
        r.loop.advance(300ms);
    }
    REQUIRE(t.connect_times.size() >= 5);
    for (std::size_t i = 1; i < t.connect_times.size(); ++i) CHECK(t.connect_times[i] - t.connect_times[i - 1] >= 10s);
    CHECK(r.profiles[0]->login_limit().logins == 3);  // the generic MQTT platform's courtesy
}

TEST_CASE("session: a name that does not resolve is retried with backoff, then used when it resolves") {
    Rig r(kOnenet);
    r.resolver.address_of.erase("broker.test");
    auto& s = r.session();
    s.start();
    r.loop.advance(30s);
    CHECK(r.transports.made.size() == 1);
    CHECK(r.transport().connects.empty());  // nothing to connect to
    const auto queries = r.resolver.queries.size();
    CHECK(queries >= 2);
    CHECK(queries <= 8);  // backoff from 2 s, doubling: not one query per tick
    CHECK(s.counters().resolve_failures == queries);
    r.resolver.address_of["broker.test"] = "10.0.0.7";
    until_connects(r.loop, r.transport(), 1);
    CHECK(r.transport().connects[0].second == "10.0.0.7");
}

TEST_CASE("session: a slow resolver delays only the sessions waiting for that name") {
    const std::string text = R"(
clouds:
  slow: { platform: mqtt, host: slow.test, max_rate: 1 }
  fast: { platform: mqtt, host: broker.test, max_rate: 1 }
buses:
  s: { driver: sim }
devices:
  - { name: a, cloud: slow, bus: s, points: [ { name: v, area: holding, address: 0 } ] }
  - { name: b, cloud: fast, bus: s, points: [ { name: v, area: holding, address: 0 } ] }
)";
    Rig r(text);
    r.resolver.answer_at_once = false;
    r.sessions[0]->start();
    r.sessions[1]->start();
    r.resolver.answer("broker.test");  // the fast name answers; slow.test takes 10 s
    r.transport(1).connack();
    for (int i = 0; i < 10; ++i) {
        r.feed(*r.sessions[0], 0, i);
        r.feed(*r.sessions[1], 1, i);
        r.loop.advance(1s);
        r.transport(1).ack_all();
    }
    CHECK(r.transport(1).published.size() >= 9);  // on time, one per second
    CHECK(r.transport(0).published.empty());
    r.resolver.answer("slow.test");
    r.transport(0).connack();
    r.loop.advance(1100ms);                         // one interval after connecting (the rate budget starts empty)
    CHECK_FALSE(r.transport(0).published.empty());  // then the waiting data goes
}

TEST_CASE("session: credentials are computed again before they expire") {
    const std::string text =
        std::string(kOnenet).replace(std::string(kOnenet).find("keepalive: 60s"), 14, "keepalive: 60s, token_ttl: 10m");
    Rig r(text);
    auto& s = r.session();
    s.start();
    auto& t = r.transport();
    t.connack();
    const auto first_et = et_of(t.connects[0].first.password);
    CHECK(first_et == r.loop.unix_ms() / 1000 + 600);
    r.loop.advance(8min);  // past expiry minus the renewal margin
    t.drop();
    until_connects(r.loop, t, 2);
    CHECK(et_of(t.connects[1].first.password) > first_et);
}

TEST_CASE("session: timers follow what is due (keepalive checks), not a fixed tick") {
    Rig r(kOnenet);
    auto& s = r.session();
    s.start();
    auto& t = r.transport();
    t.connack();
    const auto firings = r.loop.timer_firings;
    r.loop.advance(600s);  // idle: no data for ten minutes
    // Four keepalive checks per 60 s keepalive: ~40 wake-ups, where a 100 ms tick would be 6000.
    CHECK(r.loop.timer_firings - firings <= 41);
    CHECK(t.misc_calls >= 39);
    CHECK(r.loop.armed() == 1);  // one timer per session
}

TEST_CASE("session: no CONNACK within the deadline is a failed attempt, retried") {
    Rig r(kOnenet);
    auto& s = r.session();
    s.start();
    auto& t = r.transport();
    r.loop.advance(31s);  // never answered
    CHECK_FALSE(s.connected());
    r.loop.advance(60s);
    CHECK(t.connects.size() >= 2);
    CHECK(s.counters().connect_failures >= 1);
}

TEST_CASE("session: at most max_inflight messages wait for acknowledgement") {
    const std::string text = R"(
clouds:
  c: { platform: mqtt, host: broker.test, max_inflight: 2 }
buses:
  s: { driver: sim }
devices:
  - { name: m, cloud: c, bus: s, points: [ { name: v, area: holding, address: 0 } ] }
)";
    Rig r(text);
    auto& s = r.session();
    s.start();
    auto& t = r.transport();
    t.connack();
    for (int i = 0; i < 5; ++i) r.feed(s, 0, i);
    CHECK(t.published.size() == 2);
    CHECK(s.in_flight() == 2);
    t.puback(t.published[0].mid);
    CHECK(t.published.size() == 3);
    t.ack_all();
    t.ack_all();
    t.ack_all();
    CHECK(t.published.size() == 5);
    CHECK(s.idle());
}

TEST_CASE("a libmosquitto client holds one descriptor: its unused wake-up socket pair is refused") {
    CHECK(north::descriptors_per_client() == 1);
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);  // everyone else still gets theirs
    close(sv[0]);
    close(sv[1]);
}

TEST_CASE("session: at most so many sessions connect at once; the others wait their turn in order") {
    std::string text = "clouds:\n  c: { platform: mqtt, host: broker.test }\nbuses:\n  s: { driver: sim }\ndevices:\n";
    for (int i = 0; i < 5; ++i) {
        text += "  - { name: m" + std::to_string(i) +
                ", cloud: c, bus: s, points: [ { name: v, area: holding, address: 0 } ] }\n";
    }
    north::ConnectWindow window(2);
    Rig r(text, false, 2000, 500, &window);
    for (auto& s : r.sessions) s->start();
    r.loop.advance(std::chrono::milliseconds(1));
    auto connecting = [&] {
        std::size_t n = 0;
        for (auto* t : r.transports.made) n += t->connects.size();
        return n;
    };
    CHECK(connecting() == 2);
    CHECK(window.waiting() == 3);
    r.transport(0).connack();  // one place frees: the next in line goes
    r.loop.advance(std::chrono::milliseconds(1));
    CHECK(connecting() == 3);
    r.transport(1).drop();  // a failed attempt frees its place too
    r.loop.advance(std::chrono::milliseconds(1));
    CHECK(connecting() == 4);
    r.sessions[4]->stop();  // a waiting session that stops leaves the line
    CHECK(window.waiting() == 0);
    r.transport(2).connack();
    r.transport(3).connack();
    CHECK(window.inside() <= 2);
}

// ---- answers: a message the platform answers is finished by the answer, not by PUBACK ----------

namespace {

// A connected datapoints session with a store and one message sent (value 1), not yet answered.
struct Answered {
    Rig r{kOnenet, true};
    north::Session& s = r.session();
    test::FakeTransport* t = nullptr;
    Answered() {
        s.start();
        t = &r.transport();
        t->answer = nullptr;  // the test answers
        t->connack();
        r.loop.advance(1s);
        r.feed(s, 0, 1.0);
        REQUIRE(t->published.size() == 1);
        t->puback(t->published[0].mid);
    }
    std::uint64_t stored() {
        r.store->maintain(r.loop.now());
        return r.store->stats().records;
    }
    std::string id(std::size_t i = 0) const {
        return std::to_string(nlohmann::json::parse(t->published.at(i).payload)["id"].get<long long>());
    }
    void answer(const std::string& suffix, const std::string& payload) {
        t->message("$sys/469948/d1/dp/post/json/" + suffix, payload);
        r.loop.advance(10ms);
    }
};

}  // namespace

TEST_CASE("session answers: PUBACK alone does not delete a record; the platform's acceptance does") {
    Answered a;
    CHECK(a.stored() == 1);
    CHECK_FALSE(a.s.idle());
    a.answer("accepted", R"({"id":)" + a.id() + "}");
    CHECK(a.stored() == 0);
    CHECK(a.s.idle());
    CHECK(a.s.counters().records_rejected == 0);
}

TEST_CASE("session answers: a transient failure sends the same message again later, until it is accepted") {
    Answered a;
    a.answer("rejected", R"({"id":)" + a.id() + R"(,"err_code":100,"err_msg":"internal error"})");
    CHECK(a.stored() == 1);
    a.r.loop.advance(3s);  // 1 s back-off (and the rate's token)
    REQUIRE(a.t->published.size() == 2);
    CHECK(a.t->published[1].payload == a.t->published[0].payload);  // the same request, same id
    CHECK(a.s.counters().answers_retried == 1);
    a.t->puback(a.t->published[1].mid);
    a.answer("accepted", R"({"id":)" + a.id() + "}");
    CHECK(a.stored() == 0);
    CHECK(a.s.idle());
}

TEST_CASE("session answers: a permanent refusal drops the records, counted per device and reason") {
    Answered a;
    a.answer("rejected", R"({"id":)" + a.id() + R"(,"err_code":98,"err_msg":"Illegal Data"})");
    CHECK(a.stored() == 0);
    CHECK(a.s.counters().records_rejected == 1);
    REQUIRE(a.s.rejected().size() == 1);
    CHECK(a.s.rejected().begin()->first == std::make_pair(std::uint32_t{0}, std::string("err_code 98 Illegal Data")));
    CHECK(a.s.rejected().begin()->second == 1);
    a.r.loop.advance(120s);
    CHECK(a.t->published.size() == 1);  // never sent again
}

TEST_CASE("session answers: an unknown code is retried, then taken as a refusal after three attempts") {
    Answered a;
    for (int attempt = 1; attempt <= 3; ++attempt) {
        REQUIRE(a.t->published.size() == static_cast<std::size_t>(attempt));
        a.t->puback(a.t->published.back().mid);
        a.answer("rejected", R"({"id":)" + a.id() + R"(,"err_code":77,"err_msg":"who knows"})");
        a.r.loop.advance(10s);
    }
    CHECK(a.t->published.size() == 3);
    CHECK(a.stored() == 0);
    CHECK(a.s.counters().records_rejected == 1);
}

TEST_CASE("session answers: bad answers (unknown id, not JSON, no id) are counted and finish nothing") {
    Answered a;
    a.answer("accepted", R"({"id":999999})");
    a.answer("accepted", "not json");
    a.answer("accepted", R"({"x":1})");
    a.answer("rejected", R"({"id":-1,"err_code":98,"err_msg":"Illegal Data"})");
    CHECK(a.stored() == 1);
    CHECK(a.s.counters().answers_unknown == 1);
    CHECK(a.s.counters().malformed == 3);
    a.answer("accepted", R"({"id":)" + a.id() + "}");
    CHECK(a.stored() == 0);
    a.answer("accepted", R"({"id":)" + a.id() + "}");  // a duplicate of the answer just taken: quiet
    CHECK(a.s.counters().answers_unknown == 1);
}

TEST_CASE("session answers: no answer in 30 s sends the message again; after three attempts PUBACK stands") {
    Answered a;
    a.r.loop.advance(31s);
    REQUIRE(a.t->published.size() == 2);
    CHECK(a.s.counters().answers_missing == 1);
    a.t->puback(a.t->published[1].mid);
    a.r.loop.advance(31s);
    REQUIRE(a.t->published.size() == 3);
    a.t->puback(a.t->published[2].mid);
    CHECK(a.stored() == 1);
    a.r.loop.advance(31s);
    CHECK(a.t->published.size() == 3);
    CHECK(a.stored() == 0);
    CHECK(a.s.counters().answers_missing == 3);
}

TEST_CASE("session answers: what was delivered but not answered before a reconnect is sent again after it") {
    Answered a;
    a.t->drop();
    until_connects(a.r.loop, *a.t, 2);
    a.t->connack();
    a.r.loop.advance(2s);
    REQUIRE(a.t->published.size() == 2);
    CHECK(a.t->published[1].payload == a.t->published[0].payload);
    a.t->puback(a.t->published[1].mid);
    a.answer("accepted", R"({"id":)" + a.id() + "}");
    CHECK(a.stored() == 0);
}

TEST_CASE("session gateway: data waits for the topology; unanswered topo/get falls back to adding every sub-device") {
    Rig r(R"(
clouds:
  c: { platform: onenet, protocol: thing-model, host: broker.test, product_id: GWP, max_rate: 100, product_key: kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI= }
buses:
  s: { driver: sim }
devices:
  - { name: gw, cloud: c, bus: s, gateway: true, key: kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI=, points: [ { name: a, area: holding, address: 0 } ] }
  - { name: m1, cloud: c, bus: s, via: gw, points: [ { name: a, area: holding, address: 0 } ] }
  - { name: m2, cloud: c, bus: s, via: gw, points: [ { name: a, area: holding, address: 0 } ] }
)");
    auto& s = r.session();
    s.start();
    auto& t = r.transport();
    t.answer = nullptr;  // the platform says nothing
    t.connack();
    r.loop.advance(100ms);
    r.feed(s, 0, 1.0);
    r.loop.advance(5s);
    t.ack_all();
    REQUIRE(t.published.size() == 1);  // topo/get only: the data waits for the topology
    CHECK(t.published[0].topic == "$sys/GWP/gw/thing/sub/topo/get");
    r.loop.advance(31s);  // no answer: every sub-device is added, each add again holding data back
    t.ack_all();
    r.loop.advance(1s);
    std::vector<std::string> topics;
    for (const auto& p : t.published) topics.push_back(p.topic.substr(p.topic.find("/thing/") + 7));
    CHECK(topics == std::vector<std::string>{"sub/topo/get", "sub/topo/add", "sub/topo/add"});
    // The adds are answered: each sub-device logs in, and data goes between the logins.
    for (std::size_t i = 1; i < 3; ++i) {
        const auto id = nlohmann::json::parse(t.published[i].payload)["id"].get<std::string>();
        t.message("$sys/GWP/gw/thing/sub/topo/add/reply", R"({"id":")" + id + R"(","code":200,"msg":"success"})");
    }
    r.loop.advance(1s);
    topics.clear();
    for (const auto& p : t.published) topics.push_back(p.topic.substr(p.topic.find("/thing/") + 7));
    REQUIRE(topics.size() == 6);
    CHECK(std::count(topics.begin(), topics.end(), "sub/login") == 2);
    CHECK(topics[3] == "sub/login");  // a login first, then data takes its turn
    CHECK(topics[4] == "pack/post");
}

TEST_CASE("session presence, generic MQTT: a retained status, told offline with the reason on connect") {
    Rig r(R"(
clouds:
  c: { platform: mqtt, host: broker.test, status_topic: "st/{device}" }
buses:
  s: { driver: sim }
devices:
  - { name: m0, cloud: c, bus: s, points: [ { name: a, area: holding, address: 0 } ] }
  - { name: m1, cloud: c, bus: s, points: [ { name: a, area: holding, address: 0 } ] }
)");
    r.session(1).start();
    r.transport(0).connack();
    REQUIRE(r.transport(0).published.size() == 1);  // m1 online, unit not known to fail
    CHECK(r.transport(0).published[0].topic == "st/m1");
    CHECK(r.transport(0).published[0].retain);
    auto& s = r.session(0);
    s.presence(0, false, "no response (timeout): 300 ms");  // down before the CONNECT
    s.start();
    auto& t = r.transport(1);
    t.connack();
    REQUIRE(t.published.size() == 1);  // its online held back, offline instead
    auto status = nlohmann::json::parse(t.published.back().payload);
    CHECK(t.published.back().retain);
    CHECK(status["online"] == false);
    CHECK(status["reason"] == "no response (timeout): 300 ms");
    s.presence(0, true);
    s.flush();
    REQUIRE(t.published.size() == 2);
    status = nlohmann::json::parse(t.published.back().payload);
    CHECK(status["online"] == true);
    CHECK_FALSE(status.contains("reason"));
}

TEST_CASE("session presence: a sub-device whose unit stops answering is logged out, and in again when it answers") {
    Rig r(R"(
clouds:
  c: { platform: onenet, protocol: thing-model, host: broker.test, product_id: GWP, max_rate: 100, product_key: kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI= }
buses:
  s: { driver: sim }
devices:
  - { name: gw, cloud: c, bus: s, gateway: true, key: kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI=, points: [ { name: a, area: holding, address: 0 } ] }
  - { name: m1, cloud: c, bus: s, via: gw, points: [ { name: a, area: holding, address: 0 } ] }
)");
    auto& s = r.session();
    s.presence(1, false);  // down before the session connects: it is not logged in on connect
    s.start();
    auto& t = r.transport();
    t.connack();
    auto topics = [&t] {
        std::vector<std::string> out;
        for (const auto& p : t.published) out.push_back(p.topic.substr(p.topic.find("/thing/") + 7));
        return out;
    };
    for (int i = 0; i < 5; ++i) {
        r.loop.advance(1s);
        t.ack_all();
    }
    CHECK(topics() == std::vector<std::string>{"sub/topo/get", "sub/topo/get/result", "sub/topo/add"});
    s.presence(1, true);  // answering again
    s.presence(1, true);  // (a repeat changes nothing)
    s.flush();
    r.loop.advance(1s);
    t.ack_all();
    CHECK(topics().back() == "sub/login");
    s.presence(1, false);
    s.presence(0, false);  // the gateway itself stays online with its connection
    s.flush();
    r.loop.advance(1s);
    t.ack_all();
    CHECK(topics().back() == "sub/logout");
    CHECK(nlohmann::json::parse(t.published.back().payload)["params"]["deviceName"] == "m1");
    const auto all = topics();
    CHECK(std::count(all.begin(), all.end(), "sub/logout") == 1);
}

TEST_CASE("session: one a reload destroys while its timers and DNS query are pending is never called back") {
    Rig rig(kOnenet);
    rig.resolver.answer_at_once = false;
    auto& s = rig.session();
    s.start();
    rig.loop.advance(100ms);
    REQUIRE(rig.resolver.pending.size() == 1);  // resolving: the query holds a callback
    // Re-arming leaves stale entries behind in the lazily deleted timer heap.
    for (int i = 0; i < 5; ++i) rig.loop.advance(1s);
    s.stop();
    rig.loop.drop_cancelled();
    rig.sessions.clear();  // what North::apply does with a replaced session
    // Neither the answer nor the timers reach it (ASan in CI reads freed memory otherwise).
    rig.resolver.answer("broker.test");
    rig.loop.advance(60s);
    CHECK(rig.loop.armed() == 0);
}

TEST_CASE("timers: a cancelled handler may be destroyed once drop_cancelled ran") {
    struct Counting final : north::TimerHandler {
        int fired = 0;
        void on_timer(north::TimePoint) override { ++fired; }
    };
    north::TimerHeap heap;
    auto gone = std::make_unique<Counting>();
    Counting stays;
    const north::TimePoint t0{};
    for (int i = 0; i < 100; ++i) heap.schedule(gone.get(), t0 + std::chrono::milliseconds(i));  // 99 stale entries
    heap.schedule(&stays, t0 + 5ms);
    heap.cancel(gone.get());
    heap.compact();
    gone.reset();
    heap.fire_due(t0 + 1s);
    CHECK(stays.fired == 1);
    CHECK(heap.armed() == 0);
    CHECK(heap.next() == north::TimePoint::max());
}

namespace {

// Records what a Connection tells its user; its own deadline is `due`.
struct RecordingUser final : north::Connection::User {
    std::vector<std::string> calls;
    north::TimePoint due = north::TimePoint::max();
    std::vector<north::TimePoint> turns;
    north::SessionCounters counters;
    north::Connection* conn = nullptr;

    void up() override {
        calls.emplace_back("up");
        conn->client().subscribe("cmd/#", 1);  // the client is there to use once up
    }
    void down() override { calls.emplace_back("down"); }
    void ready() override { calls.emplace_back("ready"); }
    void turn(north::TimePoint now) override {
        turns.push_back(now);
        due = north::TimePoint::max();
    }
    north::TimePoint next_due() const override { return due; }
    void new_client() override { calls.emplace_back("new client"); }
    void puback(int mid) override { calls.push_back("puback " + std::to_string(mid)); }
    void message(const std::string& topic, const std::string&) override { calls.push_back("message " + topic); }
    void count(std::uint64_t north::SessionCounters::*field, std::uint64_t n) override { counters.*field += n; }
    std::size_t batches_in_memory() const override { return 0; }
};

}  // namespace

TEST_CASE("connection: up after the read call, the user's deadline served, down and back with backoff, stop stays") {
    Rig r(kPerPoint);
    const auto plan = north::plan_sessions(r.cfg, r.profiles);
    const north::SessionInfo& info = plan.at(0);
    north::SessionEnv env;
    env.loop = &r.loop;
    env.resolver = &r.resolver;
    env.make_transport = r.transports.factory();
    std::size_t connected = 0;
    env.connected = &connected;
    RecordingUser user;
    north::Connection conn(user, info, *r.profiles[0], env);
    user.conn = &conn;
    CHECK_FALSE(conn.attempted());

    conn.start();
    // (the Rig's sessions made no transport: they were never started)
    REQUIRE(r.transports.made.size() == 1);
    auto& t = *r.transports.made[0];
    REQUIRE(t.connects.size() == 1);
    CHECK(t.connects[0].second == "127.0.0.1");
    CHECK_FALSE(conn.up());

    t.connack();
    CHECK(conn.up());
    CHECK(connected == 1);
    CHECK(user.counters.connects == 1);
    // Subscribing happens once the read call has returned, then the user may send.
    CHECK(user.calls == std::vector<std::string>{"up", "ready"});
    CHECK(t.subscriptions == std::vector<std::string>{"cmd/#"});

    // The user's own deadline comes through the connection's one timer.
    const north::TimePoint due = r.loop.now() + 1500ms;
    user.due = due;
    conn.sync();
    r.loop.advance(1400ms);
    CHECK(user.turns.empty());
    r.loop.advance(200ms);
    REQUIRE(user.turns.size() == 1);
    CHECK(user.turns[0] == due);  // at its time, not at the next keepalive look

    t.puback(7);
    t.message("cmd/x", "1");
    CHECK(user.calls.at(2) == "puback 7");
    CHECK(user.calls.at(4) == "message cmd/x");

    user.calls.clear();
    t.drop();
    CHECK_FALSE(conn.up());
    CHECK(connected == 0);
    CHECK(user.calls == std::vector<std::string>{"down"});
    CHECK(user.counters.connect_failures == 1);
    until_connects(r.loop, t, 2);
    CHECK(conn.attempted());

    // A refused CONNACK is a failure: down again, counted, retried later.
    t.connack(5);
    CHECK_FALSE(conn.up());
    CHECK(user.counters.connect_failures == 2);
    until_connects(r.loop, t, 3);
    t.connack();
    CHECK(conn.up());
    CHECK(user.counters.connects == 2);

    conn.stop();
    CHECK_FALSE(conn.up());
    CHECK(connected == 0);
    CHECK_FALSE(t.open);
    r.loop.advance(120s);
    CHECK(t.connects.size() == 3);  // stopped stays stopped
}

namespace {

// A platform that keeps per-session state: it counts CONNECTs into its will (as Sparkplug's
// bdSeq) and numbers messages in sending order (as Sparkplug's seq).
struct CountingState final : north::PlatformState {
    std::uint64_t connects = 0;
    std::uint64_t sent = 0;
};

class CountingProfile final : public north::Profile {
  public:
    using north::Profile::Profile;
    std::shared_ptr<north::PlatformState> make_state() const override { return std::make_shared<CountingState>(); }
    std::optional<north::Credentials> credentials(const north::SessionInfo& s, std::int64_t,
                                                  std::string*) const override {
        return north::Credentials{s.name, "", "", 0, std::nullopt};
    }
    std::vector<north::Packet> build(const north::SessionInfo& s, std::deque<core::SampleBatch>& pending, std::size_t,
                                     std::uint32_t&) const override {
        north::Packet p;
        north::take_front(pending, p);
        p.messages.emplace_back("data/" + s.name, "v", 1);
        return {p};
    }
    north::LoginLimit login_limit() const override { return {100, std::chrono::milliseconds(1000)}; }
    std::optional<north::Will> will(const north::SessionInfo& s) const override {
        auto& st = state(s);
        ++st.connects;
        return north::Will{"death/" + s.name, std::to_string(st.connects), 1, false};
    }
    bool stamp(const north::SessionInfo& s, const north::Message& m, std::string* payload) const override {
        *payload = m.payload + "#" + std::to_string(state(s).sent++);
        return true;
    }

  private:
    static CountingState& state(const north::SessionInfo& s) { return static_cast<CountingState&>(*s.state); }
};

}  // namespace

TEST_CASE("session: a platform's own state numbers wills per CONNECT and messages in sending order, across a reload") {
    Rig r(kPerPoint);
    CountingProfile profile(r.cfg.clouds[0]);
    auto plan = profile.sessions(r.cfg, 0);
    REQUIRE(plan.size() == 1);
    REQUIRE(plan[0].state);
    north::SessionEnv env;
    env.loop = &r.loop;
    env.resolver = &r.resolver;
    env.make_transport = r.transports.factory();
    north::Session s(plan[0], profile, std::move(env));
    s.start();
    auto& t = *r.transports.made.at(0);
    REQUIRE(t.connects.size() == 1);
    REQUIRE(t.connects[0].first.will);
    CHECK(t.connects[0].first.will->topic == "death/m1");
    CHECK(t.connects[0].first.will->payload == "1");
    t.connack();
    r.feed(s, 0, 1.0);
    r.feed(s, 0, 2.0);
    REQUIRE(t.published.size() == 2);
    CHECK(t.published[0].payload == "v#0");
    CHECK(t.published[1].payload == "v#1");

    // A reload keeps the session: a fresh plan (with a fresh state) does not start the counts over.
    s.rebase(profile.sessions(r.cfg, 0).at(0), profile);
    t.drop();
    until_connects(r.loop, t, 2);
    CHECK(t.connects[1].first.will->payload == "2");  // the next CONNECT's own will
    t.connack();
    r.feed(s, 0, 3.0);
    REQUIRE(t.published.size() >= 3);
    CHECK(t.published.back().payload == "v#" + std::to_string(t.published.size() - 1));
}

namespace {

const char* kSparkplug = R"(
clouds:
  c: { platform: sparkplug, host: broker.test, group_id: G, edge_node_id: N }
buses:
  s: { driver: sim }
devices:
  - { name: d1, cloud: c, bus: s, points: [ { name: v, area: holding, address: 0, type: float64 } ] }
)";

platforms::sparkplug::Payload decoded(const std::string& bytes) {
    std::string error;
    auto p = platforms::sparkplug::decode(bytes, &error);
    REQUIRE_MESSAGE(p, error);
    return *p;
}

std::int64_t bd_seq_of(const std::string& bytes) {
    for (const auto& m : decoded(bytes).metrics) {
        if (m.name == "bdSeq") return static_cast<std::int64_t>(std::get<std::uint64_t>(*m.value));
    }
    FAIL("no bdSeq");
    return -1;
}

}  // namespace

TEST_CASE("session sparkplug: births numbered from 0 after each CONNECT with the will's bdSeq, then data by seq") {
    Rig r(kSparkplug, true);
    auto& s = r.session();
    s.start();
    auto& t = r.transport();
    REQUIRE(t.connects.size() == 1);
    REQUIRE(t.connects[0].first.will);
    CHECK(t.connects[0].first.will->topic == "spBv1.0/G/NDEATH/N");
    CHECK(t.connects[0].first.will->qos == 1);
    const auto bd = bd_seq_of(t.connects[0].first.will->payload);
    t.connack();
    REQUIRE(t.published.size() == 2);
    CHECK(t.published[0].topic == "spBv1.0/G/NBIRTH/N");
    CHECK(bd_seq_of(t.published[0].payload) == bd);
    CHECK(t.published[1].topic == "spBv1.0/G/DBIRTH/N/d1");
    r.feed(s, 0, 2.5);
    REQUIRE(t.published.size() == 3);
    CHECK(t.published[2].topic == "spBv1.0/G/DDATA/N/d1");
    for (std::size_t i = 0; i < 3; ++i) CHECK(decoded(t.published[i].payload).seq == i);
    const auto data = decoded(t.published[2].payload);
    REQUIRE(data.metrics.size() == 1);
    CHECK(data.metrics[0].name.empty());  // by alias
    CHECK(data.metrics[0].alias == 2u);
    // A reconnect: the next bdSeq in the will and the births, seq from 0 again.
    t.drop();
    until_connects(r.loop, t, 2);
    CHECK(bd_seq_of(t.connects[1].first.will->payload) == (bd + 1) % 256);
    t.connack();
    CHECK(decoded(t.published[3].payload).seq == 0u);
    CHECK(bd_seq_of(t.published[3].payload) == (bd + 1) % 256);
}

TEST_CASE("session sparkplug: QoS 0 data is deleted from the store only once a barrier after it is answered") {
    Rig r(kSparkplug, true);
    auto& s = r.session();
    s.start();
    auto& t = r.transport();
    t.connack();
    const auto records = [&] {
        r.store->maintain(r.loop.now());
        return r.store->stats().records;
    };
    r.feed(s, 0, 1.0);
    REQUIRE(t.published.size() == 3);
    t.puback(t.published[2].mid);  // libmosquitto reports a QoS 0 message once written: not a confirmation
    CHECK(records() == 1);
    REQUIRE(t.barriers.size() == 1);
    t.unsuback(t.barriers[0]);
    CHECK(records() == 0);
    // Sent, then the connection drops before the barrier's answer: it goes again, as history.
    r.loop.advance(1000ms);
    r.feed(s, 0, 2.0);
    REQUIRE(t.published.size() == 4);
    REQUIRE(t.barriers.size() == 2);
    t.drop();
    CHECK(records() == 1);
    until_connects(r.loop, t, 2);
    t.connack();
    REQUIRE(t.published.size() == 7);  // NBIRTH, DBIRTH, the DDATA again
    CHECK(t.published[6].topic == "spBv1.0/G/DDATA/N/d1");
    const auto again = decoded(t.published[6].payload);
    CHECK(again.metrics.at(0).historical);
    CHECK(std::get<double>(*again.metrics.at(0).value) == 2.0);
    t.unsuback(t.barriers[0]);  // a stale barrier answer confirms nothing
    CHECK(records() == 1);
    t.unsuback(t.barriers.back());
    CHECK(records() == 0);
    // A clean stop says NDEATH with the connection's bdSeq before disconnecting.
    s.stop();
    CHECK(t.published.back().topic == "spBv1.0/G/NDEATH/N");
    CHECK(bd_seq_of(t.published.back().payload) == bd_seq_of(t.connects.back().first.will->payload));
}
