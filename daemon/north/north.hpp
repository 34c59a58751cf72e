// The north side: one thread running one event loop over every device session (epoll plus a
// timer heap), the resolver and the store, fed by an eventfd-backed queue from the bus workers.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"
#include "core/bounded_queue.hpp"
#include "core/value.hpp"
#include "core/write_job.hpp"
#include "north/clock_hold.hpp"
#include "north/disk_trouble.hpp"
#include "north/handoff.hpp"
#include "north/loop.hpp"
#include "north/mosquitto_transport.hpp"
#include "north/profile.hpp"
#include "north/resolver.hpp"
#include "north/session.hpp"
#include "north/status.hpp"
#include "north/watchdog.hpp"
#include "north/write_returns.hpp"
#include "store/audit.hpp"
#include "store/outbox.hpp"

namespace fieldlink::north {

struct NorthTotals {
    SessionCounters sum;
    std::size_t sessions = 0;
    std::size_t sessions_connected = 0;
};

// Which sessions the configuration needs and which devices each carries, as each cloud's profile
// says (`profiles[i]` serves cfg.clouds[i]).
std::vector<SessionInfo> plan_sessions(const config::Config& cfg,
                                       const std::vector<std::unique_ptr<Profile>>& profiles);

class North {
  public:
    North(const config::Config& cfg, std::vector<std::unique_ptr<Profile>> profiles,
          std::size_t queue_capacity = 65536);
    ~North();
    North(const North&) = delete;
    North& operator=(const North&) = delete;

    bool start(std::string* error);
    // Thread-safe: called by bus workers with a round of batches; takes as many as the hand-off
    // queue has room for (from the front) and leaves the rest.
    void push(std::vector<core::SampleBatch>& batches) { queue_.push_all(batches); }
    // Before start(): where writes from the platforms go (the bus worker owning the device). Called
    // on the north thread; the worker calls job->done when finished.
    void set_writer(std::function<void(core::WriteJobPtr)> writer) { writer_ = std::move(writer); }
    // Before start(): the service manager's watchdog. Every period/2 the loop sends WATCHDOG=1,
    // unless `stuck` names a part that made no progress (a bus worker stuck in its driver): then
    // the pings stop and systemd restarts the daemon. Without a watchdog `period` is 0.
    void set_watchdog(std::chrono::milliseconds period, std::function<std::string()> stuck) {
        watchdog_.set(period, std::move(stuck));
    }
    // True once every session has made its first connection attempt (connected or failed).
    bool first_attempts_done() const { return attempted_.load() >= sessions_.size(); }
    // What the disk refuses now (the store's writes, the status files), "" when nothing: for
    // /healthz, /metrics and STATUS=. Thread-safe.
    std::string disk_problem() const { return disk_.text(); }
    // While running, from another thread: moves to `next` (aligned with the running configuration
    // by config::align_devices, with the same gateway settings; `profiles` serve next.clouds and
    // `stuck` replaces the watchdog's question). Sessions that would be made again unchanged
    // stay connected with their queues; the others are stopped and replaced. Runs on the north
    // thread between two turns of its loop and returns when done; `next` must outlive this North
    // or the next apply. Not ok (with `error`, nothing changed) when a changed cloud's TLS files
    // cannot be loaded.
    struct Reloaded {
        bool ok = false;
        std::string error;
        std::size_t kept = 0, started = 0, stopped = 0;
    };
    Reloaded apply(const config::Config& next, std::vector<std::unique_ptr<Profile>> profiles,
                   std::function<std::string()> stuck);
    // Before start(): where configurations pushed on a cloud's channel go (called on the north
    // thread with the cloud's name; it must not block).
    void set_config_channel(std::function<void(const std::string&, ConfigPush)> f) { config_channel_ = std::move(f); }
    // Before start(): the bus statistics as JSON, for diagnostics requests (called on the north
    // thread; it must not block for long).
    void set_bus_stats(std::function<std::string()> f) { bus_stats_ = std::move(f); }
    // While running, from another thread: what became of the last pushed configuration; the
    // channel sessions send it now (when connected) and after every CONNECT.
    void report_config(const ConfigReport& r);
    // While running, from another thread: whether the channel session of cloud `name` is connected.
    bool channel_connected(const std::string& name);
    // Publishes what is waiting for at most `drain`, disconnects every session, joins.
    void stop(std::chrono::milliseconds drain);
    NorthTotals totals() const;

  private:
    class Watch;  // an IoHandler calling a member function
    class Every;  // a TimerHandler calling a member function periodically

    void run();
    bool open_store(std::string* error);
    void watch_clock_at_start();
    void arm_loop();
    void on_queue();
    void drain_queue();
    void drain_due(TimePoint now);
    void maintain(TimePoint now);
    void write_status(TimePoint now);
    void watchdog_tick(TimePoint now);
    void count_attempts();
    bool all_idle() const;
    void publish_totals();
    void on_stop_fd();
    void submit_write(core::WriteJobPtr job);
    std::unique_ptr<Session> make_session(SessionInfo info, std::size_t sessions,
                                          std::vector<std::int64_t> earlier_logins);
    Reloaded apply_now(const config::Config& next, std::vector<std::unique_ptr<Profile>> profiles,
                       std::function<std::string()> stuck);
    void on_write_results();
    void keep_unchanged(std::vector<SessionInfo>& infos, const config::Config& next,
                        const std::vector<std::unique_ptr<Profile>>& profiles, Reloaded& r,
                        std::vector<std::unique_ptr<Session>>& fresh, std::vector<SessionInfo>& to_make);
    std::vector<Session*> make_missing(std::vector<std::unique_ptr<Session>>& fresh, std::vector<SessionInfo>& to_make,
                                       std::size_t total);

    const config::Config* cfg_;  // a pointer: apply() moves it to the next configuration
    core::BoundedQueue<core::SampleBatch> queue_;
    std::vector<std::unique_ptr<Profile>> profiles_;  // per cloud (same order as cfg.clouds)
    EpollLoop loop_;
    TlsContexts tls_;
    std::unique_ptr<Resolver> resolver_;
    std::unique_ptr<store::Outbox> store_;
    std::unique_ptr<store::AuditLog> audit_;  // every write from the platform and how it ended
    ConnectWindow window_{64};                // below common listen backlogs (mosquitto: 100)
    std::vector<std::unique_ptr<Session>> sessions_;
    std::vector<Session*> route_;                          // device index -> its session
    std::unordered_map<std::size_t, Session*> by_serial_;  // Session::serial() -> session (write results)
    std::size_t next_serial_ = 0;
    Handoff reload_;  // apply() hands the reload to the north thread
    // Runs `task` on the north thread between two turns and returns when it is done.
    void on_loop(const std::function<void()>& task);
    std::function<void(const std::string&, ConfigPush)> config_channel_;
    ConfigReport config_report_;  // on the north thread
    std::function<std::string()> bus_stats_;
    std::vector<Session*> touched_;
    SessionCounters sum_;
    std::size_t connected_ = 0;
    std::unique_ptr<Watch> queue_watch_, stop_watch_;
    std::unique_ptr<Every> maintenance_, status_, notify_;
    Watchdog watchdog_;
    std::atomic<std::size_t> attempted_{0};
    void status_written(const std::string& why);
    // The wall clock (core/clock.hpp): batches taken before it can be trusted are held in memory,
    // in order, and stamped with their true time once it can (clock_hold.hpp).
    void deliver(std::deque<core::SampleBatch>& batches);
    void watch_clock();
    std::unique_ptr<ClockHold> clock_;
    void update_disk_problem();
    DiskTrouble disk_;  // what the disk refuses now
    TimePoint attempts_counted_{};
    class Once;  // a TimerHandler calling a member function once
    std::unique_ptr<Once> drain_timer_;
    TimePoint last_drain_{};
    int stop_fd_ = -1;
    std::function<void(core::WriteJobPtr)> writer_;
    WriteReturns write_returns_;  // bus workers hand finished writes back
    std::unique_ptr<Watch> writes_watch_;
    std::atomic<bool> stop_requested_{false};
    std::chrono::milliseconds drain_{0};
    TimePoint started_{};
    bool all_connected_logged_ = false;
    bool reloaded_ = false;  // the configuration was reloaded since start (for the log)
    std::chrono::milliseconds status_period_{1000};
    StatusWriter status_writer_;  // status.json, metrics.prom and the latest values they show
    std::thread thread_;
    mutable std::mutex totals_mutex_;
    NorthTotals totals_;
};

}  // namespace fieldlink::north
