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
#include "core/config.hpp"
#include "core/value.hpp"
#include "north/profile.hpp"

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

    Session(SessionInfo info, const Profile& profile, int epoll_fd, std::size_t max_pending_batches);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    void enqueue(core::SampleBatch&& batch);
    void connect(Clock::time_point now);
    void on_events(std::uint32_t events);
    void tick(Clock::time_point now);
    void flush(Clock::time_point now);
    void disconnect();

    bool idle() const { return pending_.empty() && inflight_.empty(); }
    bool connected() const { return state_ == State::connected; }
    const SessionCounters& counters() const { return counters_; }
    const std::string& name() const { return info_.name; }

private:
    enum class State { idle, connecting, connected, waiting };

    static void on_connect(mosquitto* m, void* self, int rc);
    static void on_disconnect(mosquitto* m, void* self, int rc);
    static void on_publish(mosquitto* m, void* self, int mid);
    static void on_message(mosquitto* m, void* self, const mosquitto_message* msg);
    bool publish(const Message& m);
    void handle(const std::string& topic, const std::string& payload);

    void sync_fd();
    void lost(const char* why, int rc);
    void log_connect_failure(int rc);
    void schedule_reconnect(Clock::time_point now);
    Clock::time_point login_allowed_at(Clock::time_point now);

    SessionInfo info_;
    const core::CloudConfig& cloud_;
    const Profile& profile_;
    int epoll_fd_;
    std::size_t max_pending_;
    mosquitto* mosq_ = nullptr;
    State state_ = State::idle;
    int registered_fd_ = -1;
    std::uint32_t registered_events_ = 0;
    Clock::time_point reconnect_at_{};
    int failures_ = 0;
    core::Backoff backoff_;
    double tokens_ = 1.0;
    Clock::time_point last_refill_{};
    std::deque<Clock::time_point> logins_;  // recent connection attempts, for the login-rate limit
    std::deque<core::SampleBatch> pending_;
    std::deque<Message> control_;  // on-connect messages, sent before data
    LatestValues latest_;
    std::set<std::string> logged_kinds_;  // inbound problems are logged once per kind
    std::unordered_map<int, std::size_t> inflight_;  // mid -> samples
    std::uint32_t next_id_ = 1;
    bool dropping_ = false;
    SessionCounters counters_;
    std::shared_ptr<spdlog::logger> log_;
};

}  // namespace fieldlink::north
