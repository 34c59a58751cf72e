// The north side: one thread running one epoll loop over every device session, a timerfd tick
// for keepalives, reconnects and rate limits, and an eventfd-backed queue from the bus workers.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/bounded_queue.hpp"
#include "config/config.hpp"
#include "core/value.hpp"
#include "north/profile.hpp"
#include "north/session.hpp"
#include "store/outbox.hpp"

namespace fieldlink::north {

struct NorthTotals {
    std::uint64_t messages_sent = 0;
    std::uint64_t messages_acked = 0;
    std::uint64_t samples_sent = 0;
    std::uint64_t samples_dropped = 0;
    std::uint64_t sessions_connected = 0;
    std::uint64_t commands = 0;
    std::uint64_t commands_refused = 0;
    std::uint64_t malformed = 0;
    std::uint64_t error_replies = 0;
    std::uint64_t unexpected = 0;
};

// Which sessions the configuration needs and which devices each carries, as each cloud's profile
// says (`profiles[i]` serves cfg.clouds[i]).
std::vector<SessionInfo> plan_sessions(const config::Config& cfg, const std::vector<std::unique_ptr<Profile>>& profiles);

class North {
public:
    North(const config::Config& cfg, std::vector<std::unique_ptr<Profile>> profiles, std::size_t queue_capacity = 65536);
    ~North();
    North(const North&) = delete;
    North& operator=(const North&) = delete;

    bool start(std::string* error);
    // Thread-safe: called by bus workers. False when the hand-off queue is full.
    bool push(core::SampleBatch&& batch) { return queue_.push(std::move(batch)); }
    // Publishes what is waiting for at most `drain`, disconnects every session, joins.
    void stop(std::chrono::milliseconds drain);
    NorthTotals totals() const;

private:
    void run();
    void tick();
    void write_status(Session::Clock::time_point now);
    bool all_idle() const;

    const config::Config& cfg_;
    core::BoundedQueue<core::SampleBatch> queue_;
    std::unique_ptr<store::Outbox> store_;
    std::vector<std::unique_ptr<Profile>> profiles_;  // per cloud (same order as cfg.clouds)
    std::vector<std::unique_ptr<Session>> sessions_;
    std::unordered_map<std::uint32_t, std::size_t> route_;  // device index -> session
    int epoll_fd_ = -1;
    int timer_fd_ = -1;
    int stop_fd_ = -1;
    std::chrono::milliseconds drain_{0};
    Session::Clock::time_point started_{};
    bool all_connected_logged_ = false;
    Session::Clock::time_point last_status_{};
    std::vector<std::uint64_t> last_samples_sent_;  // per session, for the send rate
    std::thread thread_;
    mutable std::mutex totals_mutex_;
    NorthTotals totals_;
};

}  // namespace fieldlink::north
