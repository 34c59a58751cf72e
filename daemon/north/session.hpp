// One MQTT session of one device: a libmosquitto client driven by the north event loop (never
// by a libmosquitto thread). Keeps samples waiting while offline or rate-limited, publishes them
// in the platform's message shape at QoS 1 and reconnects with capped, jittered backoff.
#pragma once

#include <mosquitto.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <set>
#include <unordered_map>

#include "core/backoff.hpp"
#include "config/config.hpp"
#include "core/value.hpp"
#include "north/profile.hpp"
#include "store/outbox.hpp"

namespace spdlog {
class logger;
}

namespace fieldlink::north {

struct SessionCounters {
    std::uint64_t commands = 0;          // platform requests answered
    std::uint64_t commands_refused = 0;  // ... with a failure code
    std::uint64_t malformed = 0;         // unreadable platform messages
    std::uint64_t error_replies = 0;     // our requests answered with an error code
    std::uint64_t unexpected = 0;        // messages on topics the profile does not use
    std::uint64_t messages_sent = 0;
    std::uint64_t messages_acked = 0;
    std::uint64_t samples_sent = 0;
    std::uint64_t samples_dropped = 0;  // oldest dropped because the pending bound was hit
    std::uint64_t connects = 0;
    std::uint64_t connect_failures = 0;
};

class Session {
public:
    using Clock = std::chrono::steady_clock;

    // `store` may be null (no durability: tests of the north side alone).
    Session(SessionInfo info, const Profile& profile, int epoll_fd, store::Outbox* store);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    void enqueue(core::SampleBatch&& batch);
    void connect(Clock::time_point now);
    void on_events(std::uint32_t events);
    void tick(Clock::time_point now);
    void flush(Clock::time_point now);
    void disconnect();

    bool idle() const { return live_.empty() && backlog_.empty() && !backlog_on_disk_ && inflight_.empty(); }
    // Forgets queued batches the store dropped (record ids up to `id`), unless already in flight.
    void forget_through(std::int64_t id);
    std::size_t queued_in_memory() const { return live_.size() + backlog_.size(); }
    bool connected() const { return state_ == State::connected; }
    const SessionCounters& counters() const { return counters_; }
    const std::string& name() const { return info_.name; }
    const SessionInfo& info() const { return info_; }

private:
    enum class State { idle, connecting, connected, waiting };

    static void on_connect(mosquitto* m, void* self, int rc);
    static void on_disconnect(mosquitto* m, void* self, int rc);
    static void on_publish(mosquitto* m, void* self, int mid);
    static void on_message(mosquitto* m, void* self, const mosquitto_message* msg);
    bool publish(const Message& m, std::size_t group = 0);
    void refill_backlog();
    bool publish_data(std::deque<core::SampleBatch>& queue);
    void handle(const std::string& topic, const std::string& payload);

    void sync_fd();
    void lost(const char* why, int rc);
    void log_connect_failure(int rc);
    void schedule_reconnect(Clock::time_point now);
    Clock::time_point login_allowed_at(Clock::time_point now);

    SessionInfo info_;
    const config::CloudConfig& cloud_;
    const Profile& profile_;
    int epoll_fd_;

    mosquitto* mosq_ = nullptr;
    State state_ = State::idle;
    bool connect_started_ = false;  // connect_async done once; later attempts use reconnect_async
    int registered_fd_ = -1;
    std::uint32_t registered_events_ = 0;
    Clock::time_point reconnect_at_{};
    int failures_ = 0;
    core::Backoff backoff_;
    double tokens_ = 1.0;
    Clock::time_point last_refill_{};
    std::deque<Clock::time_point> logins_;  // recent connection attempts, for the login-rate limit
    // Data waiting: the newest batches in memory (bounded window) and the older ones loaded from
    // the store in chunks, oldest first. Messages alternate between the two.
    std::deque<core::SampleBatch> live_;
    std::deque<core::SampleBatch> backlog_;
    bool backlog_on_disk_ = true;   // the store may hold older batches not yet loaded
    std::int64_t disk_after_ = 0;   // newest record id loaded into backlog_
    bool prefer_backlog_ = false;
    struct Group {
        std::size_t messages = 0;  // messages of this packet not yet acknowledged
        std::vector<RecordRef> records;
    };
    std::unordered_map<std::size_t, Group> groups_;
    std::size_t next_group_ = 1;
    store::Outbox* store_;
    std::deque<Message> control_;  // on-connect messages, sent before data
    LatestValues latest_;
    std::set<std::string> logged_kinds_;  // inbound problems are logged once per kind
    std::unordered_map<int, std::size_t> inflight_;  // QoS 1 mid awaiting PUBACK -> its group (0: none)
    std::uint32_t next_id_ = 1;
    bool dropping_ = false;
    SessionCounters counters_;
    std::shared_ptr<spdlog::logger> log_;
};

}  // namespace fieldlink::north
