#include "north.hpp"

#include <mosquitto.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <deque>

#include "core/log.hpp"

namespace fieldlink::north {

namespace {
constexpr long kTickMs = 100;
}  // namespace

std::vector<SessionInfo> plan_sessions(const config::Config& cfg, const std::vector<std::unique_ptr<Profile>>& profiles) {
    std::vector<SessionInfo> out;
    for (std::size_t c = 0; c < cfg.clouds.size() && c < profiles.size(); ++c) {
        if (!profiles[c]) continue;
        for (auto& s : profiles[c]->sessions(cfg, c)) out.push_back(std::move(s));
    }
    return out;
}

North::North(const config::Config& cfg, std::vector<std::unique_ptr<Profile>> profiles, std::size_t queue_capacity)
    : cfg_(cfg), queue_(queue_capacity), profiles_(std::move(profiles)) {
    mosquitto_lib_init();
}

North::~North() {
    stop(std::chrono::milliseconds(0));
    sessions_.clear();
    for (int fd : {epoll_fd_, timer_fd_, stop_fd_}) {
        if (fd >= 0) close(fd);
    }
    mosquitto_lib_cleanup();
}

bool North::start(std::string* error) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_fd_ < 0 || timer_fd_ < 0 || stop_fd_ < 0) {
        if (error) *error = std::string("cannot create event loop: ") + std::strerror(errno);
        return false;
    }
    itimerspec its{};
    its.it_interval.tv_nsec = kTickMs * 1'000'000;
    its.it_value.tv_nsec = kTickMs * 1'000'000;
    timerfd_settime(timer_fd_, 0, &its, nullptr);
    for (int fd : {queue_.fd(), timer_fd_, stop_fd_}) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = static_cast<std::uint64_t>(fd) | (1ULL << 63);  // tag: not a session
        epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    }
    if (cfg_.gateway.store_on_disk) {
        store_ = store::Outbox::open(cfg_, error);
        if (!store_) return false;
    } else {
        core::logger("store")->warn("store: memory: queued data is not durable and is lost on restart");
    }
    for (auto& info : plan_sessions(cfg_, profiles_)) {
        const Profile* p = profiles_[static_cast<std::size_t>(info.cloud - cfg_.clouds.data())].get();
        for (auto d : info.devices) route_[d] = sessions_.size();
        sessions_.push_back(std::make_unique<Session>(std::move(info), *p, epoll_fd_, store_.get()));
    }
    thread_ = std::thread([this] { run(); });
    return true;
}

void North::stop(std::chrono::milliseconds drain) {
    if (!thread_.joinable()) return;
    drain_ = drain;
    std::uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
    thread_.join();
}

bool North::all_idle() const {
    for (const auto& s : sessions_) {
        if (s->connected() && !s->idle()) return false;
    }
    return true;
}

void North::tick() {
    const auto now = Session::Clock::now();
    if (const std::int64_t dropped = store_ ? store_->maintain(now) : 0) {
        for (auto& s : sessions_) s->forget_through(dropped);
    }
    NorthTotals t;
    for (auto& s : sessions_) {
        s->tick(now);
        const auto& c = s->counters();
        t.messages_sent += c.messages_sent;
        t.messages_acked += c.messages_acked;
        t.samples_sent += c.samples_sent;
        t.samples_dropped += c.samples_dropped;
        t.sessions_connected += s->connected() ? 1 : 0;
        t.commands += c.commands;
        t.commands_refused += c.commands_refused;
        t.malformed += c.malformed;
        t.error_replies += c.error_replies;
        t.unexpected += c.unexpected;
    }
    if (!all_connected_logged_ && t.sessions_connected == sessions_.size() && !sessions_.empty()) {
        all_connected_logged_ = true;
        core::logger("north")->info("all {} sessions connected {}ms after start", sessions_.size(),
                                    std::chrono::duration_cast<std::chrono::milliseconds>(now - started_).count());
    }
    if (now - last_status_ >= std::chrono::seconds(1)) write_status(now);
    std::lock_guard<std::mutex> lock(totals_mutex_);
    totals_ = t;
}

namespace {

void write_atomically(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    if (FILE* f = std::fopen(tmp.c_str(), "w")) {
        const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
        if (std::fclose(f) == 0 && ok) std::rename(tmp.c_str(), path.c_str());
    }
}

}  // namespace

// status.json (for `fieldlink status`) and metrics.prom (Prometheus text format, e.g. for
// node_exporter's textfile collector), rewritten every second.
void North::write_status(Session::Clock::time_point now) {
    const double dt = std::chrono::duration<double>(now - last_status_).count();
    last_status_ = now;
    const auto queues = store_ ? store_->per_device() : std::vector<store::Outbox::DeviceQueue>{};
    const std::int64_t now_ms = core::unix_ms_now();
    last_samples_sent_.resize(sessions_.size());
    nlohmann::json sessions = nlohmann::json::array();
    std::string prom;
    auto metric = [&prom](const char* name, const std::string& session, double v) {
        prom += fmt::format("{}{{session=\"{}\"}} {}\n", name, session, v);
    };
    for (std::size_t i = 0; i < sessions_.size(); ++i) {
        const auto& s = *sessions_[i];
        const auto& c = s.counters();
        std::uint64_t queued = 0, dropped = 0;
        std::int64_t oldest = 0;
        for (auto d : s.info().devices) {
            if (d >= queues.size()) continue;
            queued += queues[d].queued;
            dropped += queues[d].dropped;
            if (queues[d].oldest_ms && (!oldest || queues[d].oldest_ms < oldest)) oldest = queues[d].oldest_ms;
        }
        const double rate = dt > 0 ? static_cast<double>(c.samples_sent - last_samples_sent_[i]) / dt : 0;
        last_samples_sent_[i] = c.samples_sent;
        const double age_s = oldest ? static_cast<double>(now_ms - oldest) / 1000.0 : 0;
        sessions.push_back({{"name", s.name()}, {"cloud", s.info().cloud->name}, {"connected", s.connected()},
                            {"queued_on_disk", queued}, {"queued_in_memory", s.queued_in_memory()},
                            {"oldest_queued_age_s", age_s}, {"samples_sent_per_s", rate},
                            {"samples_sent", c.samples_sent}, {"messages_acked", c.messages_acked},
                            {"samples_dropped_budget", dropped}, {"samples_dropped_memory", c.samples_dropped},
                            {"commands", c.commands}, {"malformed", c.malformed}, {"error_replies", c.error_replies}});
        metric("fieldlink_session_connected", s.name(), s.connected() ? 1 : 0);
        metric("fieldlink_queued_batches", s.name(), static_cast<double>(queued));
        metric("fieldlink_oldest_queued_age_seconds", s.name(), age_s);
        metric("fieldlink_samples_sent_total", s.name(), static_cast<double>(c.samples_sent));
        metric("fieldlink_samples_dropped_total", s.name(), static_cast<double>(dropped + c.samples_dropped));
        metric("fieldlink_send_rate_samples_per_second", s.name(), rate);
        metric("fieldlink_platform_requests_total", s.name(), static_cast<double>(c.commands));
        metric("fieldlink_malformed_messages_total", s.name(), static_cast<double>(c.malformed));
    }
    nlohmann::json status = {{"time_ms", now_ms}, {"sessions", sessions}};
    if (store_) {
        const auto st = store_->stats();
        status["store"] = {{"path", store_->path()}, {"queued_batches", st.records}, {"bytes_used", st.bytes_used},
                           {"appended", st.appended}, {"acked", st.acked}, {"dropped_budget", st.dropped_budget},
                           {"dropped_unconfigured", st.dropped_unknown}, {"dropped_unwritable", st.dropped_full},
                           {"corrupt", st.corrupt}};
        prom += fmt::format("fieldlink_store_bytes {}\nfieldlink_store_queued_batches {}\nfieldlink_store_corrupt_total {}\n",
                            st.bytes_used, st.records, st.corrupt);
    }
    write_atomically(cfg_.gateway.data_dir + "/status.json", status.dump(1));
    write_atomically(cfg_.gateway.data_dir + "/metrics.prom", prom);
}

NorthTotals North::totals() const {
    std::lock_guard<std::mutex> lock(totals_mutex_);
    return totals_;
}

void North::run() {
    auto log = core::logger("north");
    log->info("event loop started: {} session(s)", sessions_.size());
    const auto now = Session::Clock::now();
    started_ = now;
    for (auto& s : sessions_) s->connect(now);
    std::deque<core::SampleBatch> batches;
    epoll_event events[256];
    bool stopping = false;
    Session::Clock::time_point deadline{};
    for (;;) {
        const int n = epoll_wait(epoll_fd_, events, 256, stopping ? 20 : -1);
        for (int i = 0; i < n; ++i) {
            const std::uint64_t tag = events[i].data.u64;
            if (tag & (1ULL << 63)) {
                const int fd = static_cast<int>(tag & 0xFFFFFFFF);
                if (fd == queue_.fd()) {
                    queue_.drain(batches);
                    // Persist first (one transaction for everything drained), then hand over.
                    std::vector<core::SampleBatch*> ptrs;
                    for (auto& b : batches) ptrs.push_back(&b);
                    if (store_) store_->append(ptrs);
                    const auto t = Session::Clock::now();
                    while (!batches.empty()) {
                        auto& s = *sessions_[route_[batches.front().device_index]];
                        s.enqueue(std::move(batches.front()));
                        batches.pop_front();
                        s.flush(t);
                    }
                } else if (fd == timer_fd_) {
                    std::uint64_t ticks = 0;
                    (void)!read(timer_fd_, &ticks, sizeof ticks);
                    tick();
                } else if (fd == stop_fd_ && !stopping) {
                    stopping = true;
                    deadline = Session::Clock::now() + drain_;
                }
                continue;
            }
            static_cast<Session*>(events[i].data.ptr)->on_events(events[i].events);
        }
        if (stopping && (all_idle() || Session::Clock::now() >= deadline)) break;
    }
    tick();
    for (auto& s : sessions_) s->disconnect();
    if (store_) {
        store_->maintain(Session::Clock::now());
        const auto st = store_->stats();
        log->info("store: {} batch(es) queued on disk ({} bytes), {} appended, {} acknowledged, {} samples dropped by the "
              "budget, {} of unconfigured devices, {} unwritable; {} corrupt", st.records, st.bytes_used, st.appended,
              st.acked, st.dropped_budget, st.dropped_unknown, st.dropped_full, st.corrupt);
    }
    const auto t = totals();
    log->info("event loop stopped: {} messages sent, {} acknowledged, {} samples sent, {} dropped; "
              "{} platform requests answered ({} refused), {} malformed, {} error replies, {} unexpected",
              t.messages_sent, t.messages_acked, t.samples_sent, t.samples_dropped, t.commands, t.commands_refused,
              t.malformed, t.error_replies, t.unexpected);
}

}  // namespace fieldlink::north
