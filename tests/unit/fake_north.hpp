// Fakes for driving north::Session without a network or real time, in the spirit of Mosquitto's
// fake-broker tests: FakeLoop keeps its own clock and fires timers as the test advances it,
// FakeTransport plays the broker (CONNACK, PUBACK, drops) and records what the session sent,
// FakeResolver answers names when the test says so.
#pragma once

#include <sys/epoll.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "north/loop.hpp"
#include "north/resolver.hpp"
#include "north/transport.hpp"

namespace fieldlink::test {

// What the documented platforms answer to a message (protocols.md): OneNET thing-model requests
// on .../reply, datapoints on .../accepted, DaShi property reports on .../response; nothing for
// the others. Returns (topic, payload), or an empty topic.
inline std::pair<std::string, std::string> platform_answer(const std::string& topic, const std::string& payload) {
    auto ends = [&](const char* s) {
        const std::string e(s);
        return topic.size() >= e.size() && topic.compare(topic.size() - e.size(), e.size(), e) == 0;
    };
    const auto j = nlohmann::json::parse(payload, nullptr, false);
    if (!j.is_object() || !j.contains("id")) return {};
    if (ends("/dp/post/json")) return {topic + "/accepted", nlohmann::json{{"id", j["id"]}}.dump()};
    if (topic.find("/thing/") != std::string::npos &&
        (ends("/property/post") || ends("/pack/post") || ends("/history/post") || ends("/sub/topo/add") ||
         ends("/sub/login") || ends("/event/post"))) {
        return {topic + "/reply", nlohmann::json{{"id", j["id"]}, {"code", 200}, {"msg", "success"}}.dump()};
    }
    if (ends("/thing/sub/topo/get")) {  // an empty topology: the gateway adds every sub-device
        return {topic + "/reply",
                nlohmann::json{{"id", j["id"]}, {"code", 200}, {"msg", "success"}, {"data", nlohmann::json::array()}}
                    .dump()};
    }
    if (ends("/thing/properties/up")) {
        return {topic + "/response", nlohmann::json{{"id", j["id"]},
                                                    {"code", 200},
                                                    {"data", nlohmann::json::object()},
                                                    {"message", "success"},
                                                    {"method", "thing.properties.up"},
                                                    {"version", "1.0"}}
                                         .dump()};
    }
    return {};
}

class FakeLoop final : public north::Loop {
  public:
    north::TimePoint t{std::chrono::hours(1000)};
    std::int64_t unix_base_ms = 1'700'000'000'000;
    std::map<int, std::pair<std::uint32_t, north::IoHandler*>> watched;
    std::size_t timer_firings = 0;

    void watch(int fd, std::uint32_t events, north::IoHandler* h) override { watched[fd] = {events, h}; }
    void unwatch(int fd) override { watched.erase(fd); }
    // The descriptor became readable: its handler runs as epoll would call it.
    bool readable(int fd) {
        auto it = watched.find(fd);
        if (it == watched.end()) return false;
        it->second.second->on_io(EPOLLIN);
        return true;
    }
    void schedule(north::TimerHandler* h, north::TimePoint when) override { heap_.schedule(h, when); }
    void cancel(north::TimerHandler* h) override { heap_.cancel(h); }
    void drop_cancelled() override { heap_.compact(); }
    north::TimePoint now() const override { return t; }
    std::int64_t unix_ms() const override {
        return unix_base_ms + std::chrono::duration_cast<std::chrono::milliseconds>(t - start_).count();
    }
    // Moves the clock forward, firing each timer at its own due time, in order.
    void advance(std::chrono::milliseconds d) {
        const north::TimePoint end = t + d;
        for (north::TimePoint next = heap_.next(); next <= end; next = heap_.next()) {
            t = std::max(t, next);
            ++timer_firings;
            heap_.fire_due(t);
        }
        t = end;
    }
    std::size_t armed() const { return heap_.armed(); }

  private:
    north::TimerHeap heap_;
    north::TimePoint start_{t};
};

class FakeTransport final : public north::Transport {
  public:
    struct Publish {
        std::string topic;
        std::string payload;
        int mid;
        north::TimePoint at;
        bool retain = false;
    };
    north::TransportEvents* events = nullptr;
    FakeLoop* loop = nullptr;
    std::vector<std::pair<north::Credentials, std::string>> connects;  // (credentials, address)
    std::vector<north::TimePoint> connect_times;
    std::vector<std::string> subscriptions;
    std::vector<Publish> published;
    std::vector<int> barriers;  // mids of barrier() calls, in order
    int misc_calls = 0;
    int refuse_connect = 0;  // a MOSQ_ERR_* to return from connect()
    bool open = false;
    int next_mid = 1;
    int fd = 900;  // distinct per transport (FakeTransports numbers them)
    // The platform's answer to each message ack_all() acknowledges (none: set it empty).
    std::function<std::pair<std::string, std::string>(const std::string&, const std::string&)> answer = platform_answer;

    int connect(const north::Credentials& c, const std::string& address, int, int) override {
        connects.emplace_back(c, address);
        connect_times.push_back(loop->now());
        if (refuse_connect) return refuse_connect;
        open = true;
        return 0;
    }
    int publish(const std::string& topic, const std::string& payload, int, int* mid, bool retain) override {
        *mid = next_mid++;
        published.push_back({topic, payload, *mid, loop->now(), retain});
        return 0;
    }
    int subscribe(const std::string& topic, int) override {
        subscriptions.push_back(topic);
        return 0;
    }
    int barrier(int* mid) override {
        *mid = next_mid++;
        barriers.push_back(*mid);
        return 0;
    }
    void disconnect() override { open = false; }
    int socket() const override { return open ? fd : -1; }
    bool want_write() const override { return false; }
    // Broker packets arrive inside the read call, as libmosquitto reports them.
    int on_readable() override {
        auto inbox = std::move(inbox_);
        inbox_.clear();
        int rc = 0;
        for (auto& f : inbox) rc = f() ? rc : 7;  // 7: MOSQ_ERR_CONN_LOST
        return rc;
    }
    int on_writable() override { return 0; }
    int on_timer() override {
        ++misc_calls;
        return 0;
    }
    std::string error_text(int rc) const override { return "fake error " + std::to_string(rc); }

    // The broker's side: each arrives on the socket and is read by the session.
    void connack(int rc = 0) {
        inbox_.push_back([this, rc] {
            events->on_connack(rc);
            return true;
        });
        deliver();
    }
    void puback(int mid) {
        inbox_.push_back([this, mid] {
            events->on_puback(mid);
            return true;
        });
        deliver();
    }
    // The broker's answer to a barrier (UNSUBACK).
    void unsuback(int mid) {
        inbox_.push_back([this, mid] {
            events->on_barrier(mid);
            return true;
        });
        deliver();
    }
    void message(const std::string& topic, const std::string& payload) {
        inbox_.push_back([this, topic, payload] {
            events->on_message(topic, payload);
            return true;
        });
        deliver();
    }
    void drop() {
        inbox_.push_back([this] {
            open = false;
            events->on_disconnect(7);
            return false;
        });
        deliver();
    }
    void ack_all() {
        for (std::size_t i = 0; i < published.size(); ++i) {  // acks may cause more publishes
            if (!acked_[published[i].mid]) {
                acked_[published[i].mid] = true;
                const auto p = published[i];  // the session may publish (and reallocate) meanwhile
                puback(p.mid);
                if (answer) {
                    auto [topic, payload] = answer(p.topic, p.payload);
                    if (!topic.empty()) message(topic, payload);
                }
            }
        }
    }

  private:
    void deliver() {
        if (!loop->readable(fd)) inbox_.clear();  // nobody reads a socket that is not watched
    }
    std::vector<std::function<bool()>> inbox_;
    std::map<int, bool> acked_;
};

class FakeResolver final : public north::Resolver {
  public:
    bool answer_at_once = true;
    std::map<std::string, std::string> address_of;  // host -> address (missing: NXDOMAIN)
    std::vector<std::pair<std::string, Callback>> pending;
    std::vector<std::string> queries;

    void resolve(const std::string& host, Callback done) override {
        queries.push_back(host);
        pending.emplace_back(host, std::move(done));
        if (answer_at_once) answer(host);
    }
    // Answers every pending query for `host`.
    void answer(const std::string& host) {
        std::vector<Callback> due;
        for (auto it = pending.begin(); it != pending.end();) {
            if (it->first == host) {
                due.push_back(std::move(it->second));
                it = pending.erase(it);
            } else {
                ++it;
            }
        }
        north::Resolution r;
        if (auto a = address_of.find(host); a != address_of.end()) {
            r.addresses = {a->second};
        } else {
            r.error = "Domain name not found";
        }
        for (auto& d : due) d(r);
    }
};

// A transport factory handing out FakeTransports the test can reach.
struct FakeTransports {
    FakeLoop* loop = nullptr;
    std::vector<FakeTransport*> made;
    north::TransportFactory factory() {
        return [this](north::TransportEvents& ev, const config::CloudConfig&, const std::string&) {
            auto t = std::make_unique<FakeTransport>();
            t->events = &ev;
            t->loop = loop;
            t->fd = 900 + static_cast<int>(made.size());
            made.push_back(t.get());
            return std::unique_ptr<north::Transport>(std::move(t));
        };
    }
};

}  // namespace fieldlink::test
