#include "north.hpp"

#include <fmt/format.h>
#include <mosquitto.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <optional>

#include "config/diff.hpp"
#include "core/log.hpp"
#include "core/systemd.hpp"

namespace fieldlink::north {

namespace {

// How far back logins count (for the login-rate rule across restarts and reloads): the longest
// window of the configured platforms' rules.
std::int64_t login_memory(const std::vector<std::unique_ptr<Profile>>& profiles) {
    std::int64_t ms = 0;
    for (const auto& p : profiles) {
        if (p) ms = std::max<std::int64_t>(ms, p->login_limit().window.count());
    }
    return ms;
}

constexpr std::chrono::milliseconds kMaintenance{500};  // store acks, budget, totals
// Newest batches kept in memory per session while they wait: 100,000 in all, 16..2000 each.
constexpr std::size_t kMemoryBatches = 100'000;
constexpr std::size_t kBacklogChunk = 500;
// Group commit: batches that arrive within this long of the last store transaction wait for the
// next one (fewer transactions and disk writes under load; at most this much added latency).
constexpr std::chrono::milliseconds kGroupCommit{50};

}  // namespace

class North::Watch final : public IoHandler {
  public:
    Watch(North* n, void (North::*fn)()) : north_(n), fn_(fn) {}
    void on_io(std::uint32_t) override { (north_->*fn_)(); }

  private:
    North* north_;
    void (North::*fn_)();
};

class North::Every final : public TimerHandler {
  public:
    Every(North* n, void (North::*fn)(TimePoint), std::chrono::milliseconds period)
        : north_(n), fn_(fn), period_(period) {}
    void start() { north_->loop_.schedule(this, north_->loop_.now() + period_); }
    void on_timer(TimePoint now) override {
        (north_->*fn_)(now);
        north_->loop_.schedule(this, now + period_);
    }

  private:
    North* north_;
    void (North::*fn_)(TimePoint);
    std::chrono::milliseconds period_;
};

class North::Once final : public TimerHandler {
  public:
    Once(North* n, void (North::*fn)(TimePoint)) : north_(n), fn_(fn) {}
    void on_timer(TimePoint now) override { (north_->*fn_)(now); }

  private:
    North* north_;
    void (North::*fn_)(TimePoint);
};

// On the north thread: the job goes to its bus worker, and comes back through write_returns_.
void North::submit_write(core::WriteJobPtr job) {
    job->done = [this](core::WriteJobPtr j) { write_returns_.hand_back(std::move(j)); };
    writer_(std::move(job));
}

void North::on_write_results() {
    for (const auto& job : write_returns_.take()) {
        // A session a reload replaced is gone; its platform request was answered by its deadline.
        if (auto it = by_serial_.find(job->session); it != by_serial_.end()) it->second->write_done(*job);
    }
}

std::vector<SessionInfo> plan_sessions(const config::Config& cfg,
                                       const std::vector<std::unique_ptr<Profile>>& profiles) {
    std::vector<SessionInfo> out;
    for (std::size_t c = 0; c < cfg.clouds.size() && c < profiles.size(); ++c) {
        if (!profiles[c]) continue;
        bool first = true;
        for (auto& s : profiles[c]->sessions(cfg, c)) {
            s.channel = first && (cfg.clouds[c].remote_config || cfg.clouds[c].diagnostics);
            first = false;
            out.push_back(std::move(s));
        }
    }
    return out;
}

North::North(const config::Config& cfg, std::vector<std::unique_ptr<Profile>> profiles, std::size_t queue_capacity)
    : cfg_(&cfg), queue_(queue_capacity), profiles_(std::move(profiles)) {
    mosquitto_lib_init();
}

North::~North() {
    stop(std::chrono::milliseconds(0));
    sessions_.clear();
    resolver_.reset();
    if (stop_fd_ >= 0) close(stop_fd_);
    mosquitto_lib_cleanup();
}

std::unique_ptr<Session> North::make_session(SessionInfo info, std::size_t sessions,
                                             std::vector<std::int64_t> earlier_logins) {
    const Profile& p = *profiles_[static_cast<std::size_t>(info.cloud - cfg_->clouds.data())];
    SessionEnv env;
    env.loop = &loop_;
    env.resolver = resolver_.get();
    env.make_transport = mosquitto_transports(tls_);
    env.store = store_.get();
    env.totals = &sum_;
    env.connected = &connected_;
    env.window = &window_;
    env.memory_window = std::clamp<std::size_t>(kMemoryBatches / std::max<std::size_t>(1, sessions), 16, 2000);
    env.backlog_chunk = kBacklogChunk;
    env.earlier_logins = std::move(earlier_logins);
    env.index = next_serial_++;
    if (writer_) env.submit_write = [this](core::WriteJobPtr job) { submit_write(std::move(job)); };
    env.audit = audit_.get();
    env.clock_trusted = [this] { return !clock_ || clock_->trusted(); };
    if (config_channel_) env.submit_config = config_channel_;
    env.config_report = &config_report_;
    env.bus_stats = bus_stats_;
    auto s = std::make_unique<Session>(std::move(info), p, std::move(env));
    by_serial_[s->serial()] = s.get();
    return s;
}

// The durable store, or none: `store: memory`, or a disk that refuses it at start (a full or
// read-only card must not keep the gateway down: systemd would restart it into the same wall).
// False only for errors that are not the disk's.
bool North::open_store(std::string* error) {
    if (cfg_->gateway.store_on_disk) {
        bool disk = false;
        store_ = store::Outbox::open(*cfg_, error, &disk);
        if (!store_ && !disk) return false;
        if (!store_) {
            disk_.store_unopened(*error);
            core::logger("store")->error(
                "{}; running WITHOUT the durable store until restarted with room: live data "
                "is still sent, what the broker does not take is lost",
                *error);
            error->clear();
            update_disk_problem();
        }
    } else {
        core::logger("store")->warn("store: memory: queued data is not durable and is lost on restart");
        ::mkdir(cfg_->gateway.data_dir.c_str(), 0750);  // status.json and metrics.prom may still go there
    }
    if (!cfg_->gateway.status_dir.empty()) ::mkdir(cfg_->gateway.status_dir.c_str(), 0750);
    audit_ = std::make_unique<store::AuditLog>(cfg_->gateway.data_dir + "/audit.log");
    return true;
}

// A wall clock before this build's date or the newest stored sample is not to be trusted with
// stamps until it is set (core/clock.hpp).
void North::watch_clock_at_start() {
    const std::int64_t floor =
        std::max<std::int64_t>(std::int64_t{FIELDLINK_BUILD_EPOCH} * 1000, store_ ? store_->newest_timestamp_ms() : 0);
    clock_ = std::make_unique<ClockHold>(cfg_->gateway.clock, floor);
    if (!clock_->trusted()) {
        core::logger("north")->warn(
            "the wall clock ({} ms) cannot be trusted yet: {}; samples are held in memory and stamped with their true "
            "time once it can (gateway.clock)",
            core::unix_ms_now(), clock_->clock().why_not());
    }
}

// The loop's descriptors (the bus workers' queue, stop, finished writes) and periodic work.
void North::arm_loop() {
    queue_watch_ = std::make_unique<Watch>(this, &North::on_queue);
    drain_timer_ = std::make_unique<Once>(this, &North::drain_due);
    stop_watch_ = std::make_unique<Watch>(this, &North::on_stop_fd);  // wakes the loop; run() sees the flag
    loop_.watch(queue_.fd(), EPOLLIN, queue_watch_.get());
    loop_.watch(stop_fd_, EPOLLIN, stop_watch_.get());
    writes_watch_ = std::make_unique<Watch>(this, &North::on_write_results);
    loop_.watch(write_returns_.fd(), EPOLLIN, writes_watch_.get());
    maintenance_ = std::make_unique<Every>(this, &North::maintain, kMaintenance);
    // Status files cost O(sessions): every second up to 500 sessions, then less often (30 s at most).
    status_period_ = std::chrono::milliseconds(std::clamp<std::size_t>(sessions_.size() * 2, 1000, 30'000));
    status_ = std::make_unique<Every>(this, &North::write_status, status_period_);
    // STATUS= every second under systemd; WATCHDOG=1 every half period when it asks for one.
    notify_ = std::make_unique<Every>(this, &North::watchdog_tick, watchdog_.tick_period());
}

bool North::start(std::string* error) {
    stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!loop_.ok() || stop_fd_ < 0 || !write_returns_.open()) {
        if (error) *error = std::string("cannot create the event loop: ") + std::strerror(errno);
        return false;
    }
    if (!tls_.load(*cfg_, error)) return false;
    ResolverOptions ro;
    ro.servers = cfg_->gateway.dns_servers;
    ro.timeout = cfg_->gateway.dns_timeout;
    resolver_ = make_cares_resolver(loop_, ro, error);
    if (!resolver_) return false;
    if (!open_store(error)) return false;
    watch_clock_at_start();
    auto infos = plan_sessions(*cfg_, profiles_);
    const auto logins = store_ ? store_->recent_logins(core::unix_ms_now() - login_memory(profiles_))
                               : std::map<std::string, std::vector<std::int64_t>>{};
    route_.assign(cfg_->devices.size(), nullptr);
    status_writer_.reset(*cfg_);
    for (auto& info : infos) {
        auto it = logins.find(info.name);
        auto session =
            make_session(std::move(info), infos.size(), it != logins.end() ? it->second : std::vector<std::int64_t>{});
        for (auto d : session->info().devices) route_[d] = session.get();
        sessions_.push_back(std::move(session));
    }
    arm_loop();
    thread_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "fl-north");  // for top -H, ps -L, perf
        run();
    });
    return true;
}

void North::stop(std::chrono::milliseconds drain) {
    if (!thread_.joinable()) return;
    drain_ = drain;
    stop_requested_.store(true);
    std::uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
    thread_.join();
}

bool North::all_idle() const {
    return std::all_of(sessions_.begin(), sessions_.end(), [](const auto& s) { return !s->connected() || s->idle(); });
}

// Batches are waiting: take them now, or with the next group commit when the last transaction
// was very recent.
void North::on_queue() {
    queue_.clear_signal();
    const TimePoint now = loop_.now();
    if (now - last_drain_ >= kGroupCommit) {
        drain_queue();
    } else if (!drain_timer_->timer_armed) {
        loop_.schedule(drain_timer_.get(), last_drain_ + kGroupCommit);
    }
}

void North::drain_due(TimePoint) {
    drain_queue();
}

// Persist first (one transaction for everything drained), then hand over; each session that got
// data flushes once, so a burst becomes few messages.
void North::drain_queue() {
    std::deque<core::SampleBatch> batches;
    queue_.drain(batches);
    last_drain_ = loop_.now();
    if (batches.empty()) return;
    if (!clock_->trusted()) {
        clock_->hold(batches);
        return;
    }
    deliver(batches);
}

// Stored (one transaction), remembered for the status, routed; each session that got data
// flushes once.
void North::deliver(std::deque<core::SampleBatch>& batches) {
    if (store_) {
        std::vector<core::SampleBatch*> ptrs;
        ptrs.reserve(batches.size());
        for (auto& b : batches) {
            if (b.kind == core::SampleBatch::Kind::samples) ptrs.push_back(&b);
        }
        store_->append(ptrs);
        update_disk_problem();
    }
    for (const auto& b : batches) status_writer_.remember(b);
    for (auto& b : batches) {
        Session* s = b.device_index < route_.size() ? route_[b.device_index] : nullptr;
        if (!s) continue;
        if (touched_.empty() || touched_.back() != s) touched_.push_back(s);
        if (b.kind == core::SampleBatch::Kind::samples) {
            s->enqueue(std::move(b));
        } else {
            s->presence(b.device_index, b.kind == core::SampleBatch::Kind::device_up, b.reason);
        }
    }
    std::sort(touched_.begin(), touched_.end());
    touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
    for (auto* s : touched_) s->flush();
    touched_.clear();
}

// Twice a second: a step of the wall clock (NTP answering, an operator's date -s) lets every
// session waiting to log in try at once with fresh credentials; the first time the clock can be
// trusted, what was held is stamped with its true time and goes out, oldest first.
void North::watch_clock() {
    const bool was = clock_->trusted();
    if (const std::int64_t step = clock_->check(); step != 0) {
        core::logger("north")->warn(
            "the wall clock stepped by {:+.3f} s; sessions waiting to log in try again now, with fresh credentials",
            static_cast<double>(step) / 1000.0);
        for (auto& s : sessions_) s->clock_stepped();
    }
    if (was || !clock_->trusted()) return;
    std::deque<core::SampleBatch> batches = clock_->release();
    core::logger("north")->info(
        "the wall clock can be trusted now: {} batch(es) held since start are stamped with their true time and sent",
        batches.size());
    if (!batches.empty()) deliver(batches);
}

// Acknowledged records are deleted, the budget enforced and the totals published twice a second.
void North::maintain(TimePoint now) {
    watch_clock();
    if (store_) {
        if (const std::int64_t dropped = store_->maintain(now)) {
            for (auto& s : sessions_) s->forget_through(dropped);
        }
        update_disk_problem();
    }
    publish_totals();
}

void North::update_disk_problem() {
    disk_.update(store_ && !store_->writable() ? store_->problem() : std::string());
}

North::Reloaded North::apply(const config::Config& next, std::vector<std::unique_ptr<Profile>> profiles,
                             std::function<std::string()> stuck) {
    std::promise<Reloaded> done;
    auto result = done.get_future();
    reload_.post([&] { done.set_value(apply_now(next, std::move(profiles), std::move(stuck))); });
    const std::uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
    return result.get();
}

void North::on_loop(const std::function<void()>& task) {
    if (!thread_.joinable()) {
        task();
        return;
    }
    std::promise<void> done;
    auto finished = done.get_future();
    reload_.post([&] {
        task();
        done.set_value();
    });
    const std::uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
    finished.get();
}

void North::report_config(const ConfigReport& r) {
    on_loop([&] {
        for (auto& s : sessions_) {
            if (s->info().channel) s->report_config(r);
        }
        config_report_ = r;
        config_report_.reply_topic.clear();  // (answered once; what is sent again on CONNECT is the report)
    });
}

bool North::channel_connected(const std::string& name) {
    bool up = false;
    on_loop([&] {
        for (const auto& s : sessions_) {
            if (s->info().channel && s->info().cloud->name == name && s->connected()) up = true;
        }
    });
    return up;
}

namespace {

std::optional<std::size_t> identity_index(const SessionInfo& s) {
    if (!s.identity) return std::nullopt;
    return static_cast<std::size_t>(s.identity - s.cfg->devices.data());
}

// A session survives a reload when it would be made again exactly as it is: the same name, the
// same cloud settings, the same devices (by index: the configurations are aligned) unchanged.
bool same_session(const SessionInfo& a, const SessionInfo& b) {
    if (a.name != b.name || a.devices != b.devices || identity_index(a) != identity_index(b) ||
        a.channel != b.channel) {
        return false;
    }
    if (!config::same_cloud(*a.cloud, *b.cloud)) return false;
    return std::all_of(a.devices.begin(), a.devices.end(),
                       [&](std::uint32_t d) { return config::same_device(a.device(d), b.device(d)); });
}

}  // namespace

// On the north thread, between two turns of the loop: batches still queued belong to the running
// configuration and are taken first; then the store maps the new devices, sessions that would
// be made again unchanged are kept (connected, with their queues) and the others stopped and
// replaced.
// Sessions that would be made again unchanged are kept (rebased on the new configuration and
// profiles), the others stopped. `fresh` gets, in plan order, a kept session or null for one to
// make from `to_make`.
void North::keep_unchanged(std::vector<SessionInfo>& infos, const config::Config& next,
                           const std::vector<std::unique_ptr<Profile>>& profiles, Reloaded& r,
                           std::vector<std::unique_ptr<Session>>& fresh, std::vector<SessionInfo>& to_make) {
    std::map<std::string, std::unique_ptr<Session>> running;
    for (auto& s : sessions_) running[s->name()] = std::move(s);
    sessions_.clear();
    for (auto& info : infos) {
        auto it = running.find(info.name);
        if (it != running.end() && same_session(it->second->info(), info)) {
            const Profile& p = *profiles[static_cast<std::size_t>(info.cloud - next.clouds.data())];
            it->second->rebase(std::move(info), p);
            fresh.push_back(std::move(it->second));
            running.erase(it);
            ++r.kept;
            continue;
        }
        fresh.push_back(nullptr);  // made later, once the profiles and configuration are the new ones
        to_make.push_back(std::move(info));
    }
    for (auto& [name, s] : running) {  // changed or no longer configured
        s->stop();
        by_serial_.erase(s->serial());
        ++r.stopped;
    }
    loop_.drop_cancelled();  // no timer entry may point at a session destroyed here
}

// The sessions `fresh` lacks (its nulls), made from `to_make` in order; replaced sessions' recent
// logins count for their successors (the login-rate rule). Returns the new ones.
std::vector<Session*> North::make_missing(std::vector<std::unique_ptr<Session>>& fresh,
                                          std::vector<SessionInfo>& to_make, std::size_t total) {
    std::map<std::string, std::vector<std::int64_t>> logins;
    if (store_ && !to_make.empty()) {
        store_->flush_logins();
        logins = store_->recent_logins(core::unix_ms_now() - login_memory(profiles_));
    }
    std::vector<Session*> made;
    std::size_t next = 0;
    for (auto& s : fresh) {
        if (s) continue;
        auto& info = to_make[next++];
        auto it = logins.find(info.name);
        s = make_session(std::move(info), total,
                         it != logins.end() ? std::move(it->second) : std::vector<std::int64_t>{});
        made.push_back(s.get());
    }
    return made;
}

North::Reloaded North::apply_now(const config::Config& next, std::vector<std::unique_ptr<Profile>> profiles,
                                 std::function<std::string()> stuck) {
    Reloaded r;
    if (!tls_.reload(*cfg_, next, &r.error)) return r;
    drain_queue();
    maintain(loop_.now());
    if (store_) store_->remap(next);
    auto infos = plan_sessions(next, profiles);
    std::vector<std::unique_ptr<Session>> fresh;
    std::vector<SessionInfo> to_make;
    keep_unchanged(infos, next, profiles, r, fresh, to_make);
    const auto* const old_cfg = cfg_;
    cfg_ = &next;
    profiles_ = std::move(profiles);
    watchdog_.ask(std::move(stuck));
    const std::vector<Session*> started = make_missing(fresh, to_make, infos.size());
    r.started = started.size();
    sessions_ = std::move(fresh);
    route_.assign(next.devices.size(), nullptr);
    for (auto& s : sessions_) {
        for (auto d : s->info().devices) route_[d] = s.get();
    }
    status_writer_.realign(*old_cfg, next);
    all_connected_logged_ = false;
    started_ = loop_.now();
    reloaded_ = true;
    attempts_counted_ = TimePoint{};
    for (auto* s : started) s->start();
    count_attempts();
    publish_totals();
    r.ok = true;
    return r;
}

void North::on_stop_fd() {  // NOLINT(readability-make-member-function-const): a Watch handler
    std::uint64_t n = 0;
    (void)!read(stop_fd_, &n, sizeof n);
}

// Sessions that made their first connection attempt (for READY=1), at most every 20 ms.
void North::count_attempts() {
    const auto now = loop_.now();
    if (now - attempts_counted_ < std::chrono::milliseconds(20)) return;
    attempts_counted_ = now;
    std::size_t n = 0;
    for (const auto& s : sessions_) n += s->attempted() ? 1 : 0;
    attempted_.store(n);
}

// From the event loop itself: a loop that stops turning stops the pings too.
void North::watchdog_tick(TimePoint) {
    std::uint64_t queued = 0, dropped = 0;
    for (const auto& s : sessions_) {
        queued += s->queued_in_memory() + s->in_flight();
        dropped += s->counters().samples_dropped;
    }
    if (store_) {
        const auto st = store_->stats();
        queued += st.records;
        dropped += st.dropped_budget;
    }
    std::string status =
        fmt::format("STATUS={}/{} sessions up, {} queued, {} dropped", connected_, sessions_.size(), queued, dropped);
    if (const std::string disk = disk_problem(); !disk.empty()) status += "; " + disk;
    if (!clock_->trusted())
        status += fmt::format("; waiting for the wall clock to be set ({} batches held)", clock_->held());
    status = watchdog_.notification(std::move(status));
    core::systemd::notify(status.c_str());
}

void North::publish_totals() {
    std::lock_guard<std::mutex> lock(totals_mutex_);
    totals_.sum = sum_;
    totals_.sessions = sessions_.size();
    totals_.sessions_connected = connected_;
}

NorthTotals North::totals() const {
    std::lock_guard<std::mutex> lock(totals_mutex_);
    return totals_;
}

void North::run() {
    auto log = core::logger("north");
    log->info("event loop started: {} session(s)", sessions_.size());
    started_ = loop_.now();
    status_writer_.started(started_);
    for (auto& s : sessions_) s->start();
    maintenance_->start();
    status_->start();
    if (core::systemd::available()) notify_->start();
    bool stopping = false;
    TimePoint deadline{};
    for (;;) {
        loop_.run_once(stopping ? std::chrono::milliseconds(20) : std::chrono::milliseconds(1000));
        if (reload_.pending()) reload_.run();
        if (store_) store_->flush_logins();  // one transaction per loop turn, however many logins
        if (attempted_.load() < sessions_.size()) count_attempts();
        if (!all_connected_logged_ && !sessions_.empty() && connected_ == sessions_.size()) {
            all_connected_logged_ = true;
            log->info("all {} sessions connected {}ms after {}", sessions_.size(),
                      std::chrono::duration_cast<std::chrono::milliseconds>(loop_.now() - started_).count(),
                      reloaded_ ? "the reload" : "start");
        }
        if (!stopping && stop_requested_.load()) {
            stopping = true;
            deadline = loop_.now() + drain_;
        }
        if (stopping && (all_idle() || loop_.now() >= deadline)) break;
    }
    drain_queue();
    for (auto& s : sessions_) s->stop();
    if (store_) {
        store_->maintain(loop_.now());
        log->info("store: {}", core::figure_words(store::figures::kStore, store_->stats()));
    }
    publish_totals();
    log->info("event loop stopped: {}", core::figure_words(figures::kSession, sum_));
}

void North::write_status(TimePoint now) {
    const StatusView view{*cfg_,          sessions_,  store_.get(),    clock_->trusted(),
                          clock_->held(), connected_, loop_.unix_ms(), status_period_};
    status_written(status_writer_.write(view, now));
}

// One line when the status files cannot be written (a full or read-only disk), one when they can
// again; the gateway goes on either way.
void North::status_written(const std::string& why) {
    const bool was_written = disk_.status_files().empty();
    if (!disk_.status_files(why)) return;
    if (why.empty()) {
        core::logger("north")->info("status files are written again");
    } else if (was_written) {
        core::logger("north")->error("{}; the status files keep their last content, retried every {} ms", why,
                                     status_period_.count());
    }
    update_disk_problem();
}

}  // namespace fieldlink::north
