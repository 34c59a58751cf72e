#include "session.hpp"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstring>

#include "core/log.hpp"

namespace fieldlink::north {

namespace {

constexpr std::size_t kLiveWindow = 2000;    // newest batches kept in memory per session
constexpr std::size_t kBacklogChunk = 500;   // batches loaded from the store at a time

// Platform commands are small (OneNET: 20 KB); anything near the MQTT limits is hostile.
constexpr std::size_t kMaxInboundBytes = 256 * 1024;

const char* error_text(int rc) { return rc == MOSQ_ERR_ERRNO ? std::strerror(errno) : mosquitto_strerror(rc); }

const char* connack_text(int rc) {
    switch (rc) {
        case 1: return "unacceptable protocol version";
        case 2: return "client id rejected";
        case 3: return "server unavailable";
        case 4: return "bad user name or password (check the product id, device name, key and token method)";
        case 5: return "not authorised (check the product id, device name, key and token method)";
        default: return "refused";
    }
}

}  // namespace

Session::Session(SessionInfo info, const Profile& profile, int epoll_fd, store::Outbox* store)
    : info_(std::move(info)),
      cloud_(*info_.cloud),
      profile_(profile),
      epoll_fd_(epoll_fd),
      backoff_(profile.reconnect_base(), std::chrono::milliseconds(60'000), core::Backoff::Jitter::full),
      store_(store),
      log_(core::logger("north")) {
    backlog_on_disk_ = store_ != nullptr;
    if (store_) {  // logins of a previous process count too (crash loops must not get the device banned)
        const auto now_ms = core::unix_ms_now();
        const auto now = Clock::now();
        for (auto at : store_->recent_logins(info_.name, now_ms - 5000)) {
            logins_.push_back(now - std::chrono::milliseconds(now_ms - at));
        }
    }
}

Session::~Session() {
    if (registered_fd_ >= 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, registered_fd_, nullptr);
    if (mosq_) mosquitto_destroy(mosq_);
}

void Session::enqueue(core::SampleBatch&& batch) {
    auto& latest = latest_[batch.device_index];
    if (latest.empty()) latest.resize(info_.device(batch.device_index).points.size());
    for (const auto& pv : batch.values) latest[pv.point_index] = pv.value;
    if (live_.size() >= kLiveWindow) {
        if (live_.front().record_id != 0 && store_) {
            backlog_on_disk_ = true;  // still on disk: it comes back through the backlog, in order
        } else {
            counters_.samples_dropped += live_.front().values.size();  // not stored: nothing else holds it
            if (!dropping_) log_->warn("device {}: {} batches waiting in memory and no store; dropping the oldest (counted)",
                                       info_.name, kLiveWindow);
            dropping_ = true;
        }
        live_.pop_front();
    }
    live_.push_back(std::move(batch));
}

void Session::forget_through(std::int64_t id) {
    auto drop = [id](std::deque<core::SampleBatch>& q) {
        while (!q.empty() && q.front().record_id != 0 && q.front().record_id <= id) q.pop_front();
    };
    drop(backlog_);
    drop(live_);
    disk_after_ = std::max(disk_after_, id);
}

void Session::refill_backlog() {
    if (!store_ || !backlog_on_disk_ || backlog_.size() >= kBacklogChunk / 2) return;
    const std::int64_t before = live_.empty() || live_.front().record_id == 0 ? INT64_MAX : live_.front().record_id;
    auto loaded = store_->load(info_.devices, disk_after_, before, kBacklogChunk);
    if (loaded.size() < kBacklogChunk) backlog_on_disk_ = false;
    for (auto& b : loaded) {
        disk_after_ = std::max(disk_after_, b.record_id);
        backlog_.push_back(std::move(b));
    }
}

// OneNET kicks a device that logs in more than 3 times in 5 s; every platform gets the same
// courtesy. Backoff alone is not enough: it resets after a successful login that is then kicked.
Session::Clock::time_point Session::login_allowed_at(Clock::time_point now) {
    constexpr std::size_t kMaxLogins = 3;
    constexpr auto kWindow = std::chrono::seconds(5);
    while (!logins_.empty() && logins_.front() <= now - kWindow) logins_.pop_front();
    return logins_.size() < kMaxLogins ? now : logins_.front() + kWindow + std::chrono::milliseconds(50);
}

void Session::connect(Clock::time_point now) {
    if (const auto at = login_allowed_at(now); at > now) {
        state_ = State::waiting;
        reconnect_at_ = at;
        return;
    }
    logins_.push_back(now);
    if (store_) store_->record_login(info_.name, core::unix_ms_now());
    std::string err;
    auto creds = profile_.credentials(info_, core::unix_ms_now() / 1000, &err);
    if (!creds) {
        log_->error("device {}: cannot compute credentials for cloud {}: {}", info_.name, cloud_.name, err);
        schedule_reconnect(now);
        return;
    }
    if (!mosq_) {
        mosq_ = mosquitto_new(creds->client_id.c_str(), true, this);  // clean session, always
        if (!mosq_) {
            log_->error("device {}: cannot create MQTT client", info_.name);
            schedule_reconnect(now);
            return;
        }
        mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
        mosquitto_connect_callback_set(mosq_, on_connect);
        mosquitto_disconnect_callback_set(mosq_, on_disconnect);
        mosquitto_publish_callback_set(mosq_, on_publish);
        mosquitto_message_callback_set(mosq_, on_message);
        mosquitto_will_clear(mosq_);  // OneNET refuses wills; no platform here needs one
        if (cloud_.tls) {
            const auto& t = *cloud_.tls;
            int rc = mosquitto_tls_set(mosq_, t.ca_file.empty() ? nullptr : t.ca_file.c_str(), nullptr,
                                       t.cert_file.empty() ? nullptr : t.cert_file.c_str(),
                                       t.key_file.empty() ? nullptr : t.key_file.c_str(), nullptr);
            if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_tls_opts_set(mosq_, 1, nullptr, nullptr);  // verify peer
            if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_tls_insecure_set(mosq_, false);              // check host name
            if (rc != MOSQ_ERR_SUCCESS) {
                log_->error("device {}: TLS setup failed: {}", info_.name, mosquitto_strerror(rc));
                schedule_reconnect(now);
                return;
            }
        }
    }
    mosquitto_username_pw_set(mosq_, creds->username.empty() ? nullptr : creds->username.c_str(),
                              creds->password.empty() ? nullptr : creds->password.c_str());
    const int keepalive = static_cast<int>(cloud_.keepalive.count() / 1000);
    int rc = !connect_started_ ? mosquitto_connect_async(mosq_, cloud_.host.c_str(), cloud_.port, keepalive)
                               : mosquitto_reconnect_async(mosq_);
    connect_started_ = true;
    if (rc != MOSQ_ERR_SUCCESS) {
        if (failures_ == 0) log_connect_failure(rc);
        state_ = State::waiting;
        sync_fd();
        schedule_reconnect(now);
        return;
    }
    state_ = State::connecting;
    sync_fd();
}

void Session::schedule_reconnect(Clock::time_point now) {
    ++failures_;
    ++counters_.connect_failures;
    state_ = State::waiting;
    reconnect_at_ = now + backoff_.next(failures_);
}

// Keeps the epoll registration in step with libmosquitto's socket and its wish to write.
void Session::sync_fd() {
    const int fd = mosq_ ? mosquitto_socket(mosq_) : -1;
    const std::uint32_t want = EPOLLIN | ((fd >= 0 && mosquitto_want_write(mosq_)) ? EPOLLOUT : 0u);
    if (fd != registered_fd_) {
        if (registered_fd_ >= 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, registered_fd_, nullptr);
        registered_fd_ = -1;
        if (fd >= 0) {
            epoll_event ev{};
            ev.events = want;
            ev.data.ptr = this;
            if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0) {
                registered_fd_ = fd;
                registered_events_ = want;
            }
        }
    } else if (fd >= 0 && want != registered_events_) {
        epoll_event ev{};
        ev.events = want;
        ev.data.ptr = this;
        epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
        registered_events_ = want;
    }
}

void Session::log_connect_failure(int rc) {
    log_->warn("device {}: cannot connect to cloud {} at {}:{}: {}{}", info_.name, cloud_.name, cloud_.host,
               cloud_.port, error_text(rc), rc == MOSQ_ERR_TLS ? " (TLS handshake or certificate verification failed)" : "");
}

void Session::lost(const char* why, int rc) {
    if (state_ == State::connected) {
        log_->warn("device {}: connection to cloud {} lost ({}: {}); {} batches waiting in memory, reconnecting",
                   info_.name, cloud_.name, why, error_text(rc), live_.size() + backlog_.size());
    } else if (state_ == State::connecting && failures_ == 0 && rc != MOSQ_ERR_CONN_REFUSED) {
        log_connect_failure(rc);  // first failure of a streak only: the backoff retries quietly
    }
    if (registered_fd_ >= 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, registered_fd_, nullptr);
    registered_fd_ = -1;
    schedule_reconnect(Clock::now());
}

void Session::on_events(std::uint32_t events) {
    if (!mosq_) return;
    int rc = MOSQ_ERR_SUCCESS;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) rc = mosquitto_loop_read(mosq_, 16);
    if (rc == MOSQ_ERR_SUCCESS && (events & EPOLLOUT)) rc = mosquitto_loop_write(mosq_, 16);
    if (rc != MOSQ_ERR_SUCCESS && state_ != State::waiting) {
        lost("socket", rc);
        return;
    }
    if (state_ == State::connected) flush(Clock::now());
    sync_fd();
}

void Session::tick(Clock::time_point now) {
    if (state_ == State::idle || (state_ == State::waiting && now >= reconnect_at_)) {
        connect(now);
        return;
    }
    if (state_ == State::waiting || !mosq_) return;
    const int rc = mosquitto_loop_misc(mosq_);
    if (rc != MOSQ_ERR_SUCCESS && state_ != State::waiting) {
        lost("keepalive", rc);
        return;
    }
    if (state_ == State::connected) flush(now);
    sync_fd();
}

bool Session::publish(const Message& m, std::size_t group) {
    int mid = 0;
    const int rc = mosquitto_publish(mosq_, &mid, m.topic.c_str(), static_cast<int>(m.payload.size()),
                                     m.payload.data(), profile_.qos(), false);
    if (rc != MOSQ_ERR_SUCCESS) {
        log_->warn("device {}: publish to {} failed: {}", info_.name, m.topic, mosquitto_strerror(rc));
        return false;
    }
    if (profile_.qos() > 0) {
        inflight_[mid] = group;
    } else {
        ++counters_.messages_acked;
    }
    ++counters_.messages_sent;
    counters_.samples_sent += m.samples;
    if (cloud_.max_rate > 0) tokens_ -= 1.0;
    return true;
}

// One packet from the front of `queue`: its records are deleted from the store once every
// message of the packet is acknowledged.
bool Session::publish_data(std::deque<core::SampleBatch>& queue) {
    auto packets = profile_.build(info_, queue, 1, next_id_);
    if (packets.empty()) return false;
    auto& p = packets.front();
    Group g;
    g.records = std::move(p.records);
    g.messages = p.messages.size();
    // (QoS 0 never carries stored data: the configuration refuses qos 0 with the disk store.)
    const std::size_t id = g.records.empty() || profile_.qos() == 0 ? 0 : next_group_++;
    if (id) groups_[id] = std::move(g);
    for (const auto& m : p.messages) {
        if (!publish(m, id)) return false;
    }
    return !p.messages.empty();
}

void Session::flush(Clock::time_point now) {
    if (state_ != State::connected) return;
    refill_backlog();
    if (live_.empty() && backlog_.empty() && control_.empty()) return;
    if (cloud_.max_rate > 0) {
        const double dt = std::chrono::duration<double>(now - last_refill_).count();
        // Capacity 1: no bursts, so no window of any length ever sees more than rate x length + 1.
        tokens_ = std::min(1.0, tokens_ + dt * cloud_.max_rate);
        last_refill_ = now;
    }
    auto allowed = [this] {
        const auto room = static_cast<std::size_t>(std::max(0, cloud_.max_inflight - static_cast<int>(inflight_.size())));
        return cloud_.max_rate > 0 ? std::min(room, static_cast<std::size_t>(std::max(0.0, tokens_))) : room;
    };
    while (!control_.empty() && allowed() > 0) {
        if (!publish(control_.front())) break;
        control_.pop_front();
    }
    // Backlog and live data take turns, so a long backlog never starves live data.
    while (control_.empty() && allowed() > 0) {
        refill_backlog();
        const bool use_backlog = !backlog_.empty() && (prefer_backlog_ || live_.empty());
        auto& queue = use_backlog ? backlog_ : live_;
        if (queue.empty()) break;
        prefer_backlog_ = !use_backlog;
        if (!publish_data(queue)) break;
    }
    sync_fd();
}

void Session::disconnect() {
    const bool was_connected = state_ == State::connected;
    state_ = State::waiting;  // before mosquitto_disconnect: its callback must not reconnect
    if (mosq_ && was_connected) {
        mosquitto_disconnect(mosq_);
        mosquitto_loop_write(mosq_, 1);
    }
    if (registered_fd_ >= 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, registered_fd_, nullptr);
    registered_fd_ = -1;
    state_ = State::waiting;
    reconnect_at_ = Clock::time_point::max();
}

void Session::on_connect(mosquitto*, void* self, int rc) {
    auto* s = static_cast<Session*>(self);
    if (rc != 0) {
        s->log_->error("device {}: cloud {} refused the connection: {} (CONNACK {})", s->info_.name,
                       s->cloud_.name, connack_text(rc), rc);
        s->lost("connack", MOSQ_ERR_CONN_REFUSED);
        return;
    }
    ++s->counters_.connects;
    if (s->failures_ > 0 || s->counters_.connects > 1) {
        s->log_->info("device {}: connected to cloud {} again after {} failed attempt(s)", s->info_.name,
                      s->cloud_.name, s->failures_);
    } else {
        s->log_->info("device {}: connected to cloud {} ({}:{})", s->info_.name, s->cloud_.name, s->cloud_.host,
                      s->cloud_.port);
    }
    s->failures_ = 0;
    s->state_ = State::connected;
    s->last_refill_ = Clock::now();
    for (const auto& topic : s->profile_.subscriptions(s->info_)) {
        const int sub = mosquitto_subscribe(s->mosq_, nullptr, topic.c_str(), s->profile_.downlink_qos());
        if (sub != MOSQ_ERR_SUCCESS) s->log_->warn("device {}: cannot subscribe to {}: {}", s->info_.name, topic, mosquitto_strerror(sub));
    }
    s->control_.clear();
    for (auto& m : s->profile_.on_connect(s->info_, s->next_id_)) s->control_.push_back(std::move(m));
}

void Session::on_message(mosquitto*, void* self, const mosquitto_message* msg) {
    auto* s = static_cast<Session*>(self);
    const std::string topic = msg->topic ? msg->topic : "";
    const std::string payload(static_cast<const char*>(msg->payload), static_cast<std::size_t>(std::max(0, msg->payloadlen)));
    s->handle(topic, payload);
}

// Answers a platform message at once (platforms time out requests after a few seconds); problems
// are logged once per kind of message and counted.
void Session::handle(const std::string& topic, const std::string& payload) {
    Inbound in;
    if (payload.size() > kMaxInboundBytes) {
        in.kind = "oversized";
        in.malformed = true;
        in.problem = "message of " + std::to_string(payload.size()) + " bytes refused unread (limit " +
                     std::to_string(kMaxInboundBytes) + ")";
    } else {
        in = profile_.on_message(info_, topic, payload, latest_);
    }
    if (in.command) ++counters_.commands;
    if (in.refused) ++counters_.commands_refused;
    if (in.malformed) ++counters_.malformed;
    if (in.error_reply) ++counters_.error_replies;
    if (in.kind == "unexpected") ++counters_.unexpected;
    const char* category = in.malformed ? "malformed" : in.error_reply ? "error reply" : in.refused ? "refused" : "other";
    if (!in.problem.empty() && logged_kinds_.insert(in.kind + '|' + category).second) {
        log_->warn("device {}: {} (topic {}; further ones like it are counted, not logged)", info_.name, in.problem, topic);
    }
    // Replies jump the queue but not the rate limit: sent now if a token is there, else first.
    for (auto it = in.replies.rbegin(); it != in.replies.rend(); ++it) control_.push_front(*it);
    flush(Clock::now());
}

void Session::on_disconnect(mosquitto*, void* self, int rc) {
    auto* s = static_cast<Session*>(self);
    if (s->state_ == State::waiting) return;
    s->lost("disconnected", rc);
}

void Session::on_publish(mosquitto*, void* self, int mid) {
    auto* s = static_cast<Session*>(self);
    auto it = s->inflight_.find(mid);
    if (it == s->inflight_.end()) return;
    const std::size_t group_id = it->second;
    s->inflight_.erase(it);
    ++s->counters_.messages_acked;
    auto group = s->groups_.find(group_id);
    if (group == s->groups_.end() || --group->second.messages > 0) return;
    if (s->store_) {
        for (const auto& r : group->second.records) s->store_->ack(r.device, r.id);
    }
    s->groups_.erase(group);
}

}  // namespace fieldlink::north
