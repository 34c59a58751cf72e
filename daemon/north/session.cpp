#include "session.hpp"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstring>

#include "config/writes.hpp"
#include "core/log.hpp"

namespace fieldlink::north {

namespace {

constexpr int kErrTimeout = -1;  // our own code: no answer in time (not a transport code)
constexpr std::chrono::seconds kReconnectCap{60};
// Platform commands are small (OneNET: 20 KB); anything near the MQTT limits is hostile.
constexpr std::size_t kMaxInboundBytes = std::size_t{256} * 1024;
// Credentials are computed again this long before they expire.
constexpr std::int64_t kRenewMarginS = 300;
// A message the platform answers: how long its answer may take after PUBACK, how often it is
// sent in all (a missing answer or a code the documents do not classify), and how far apart
// (doubling from 1 s) transient failures are sent again.
constexpr std::chrono::seconds kAnswerTimeout{30};
constexpr int kMaxAttempts = 3;
constexpr std::chrono::seconds kRetryCap{60};
// Answer ids kept after their answer, so that a late duplicate is not taken for a stranger.
constexpr std::size_t kFinishedAnswersKept = 64;

// What a refused CONNACK means, with what to check on this platform.
std::string connack_text(int rc, const std::string& platform) {
    const bool token = platform == "onenet" || platform == "onenet-legacy";
    const char* check = token                       ? " (check the product id, device name, key and token method)"
                        : platform == "aiot"        ? " (check the product key, device name and device secret)"
                        : platform == "thingsboard" ? " (check the access token, or the user name and password)"
                                                    : " (check the user name, password and client id)";
    switch (rc) {
        case 1:
            return "unacceptable protocol version";
        case 2:
            return "client id rejected";
        case 3:
            return "server unavailable";
        case 4:
            return std::string("bad user name or password") + check;
        case 5:
            return std::string("not authorised") + check;
        default:
            return "refused";
    }
}

}  // namespace

Session::Session(SessionInfo info, const Profile& profile, SessionEnv env)
    : info_(std::move(info)),
      cloud_(info_.cloud),
      profile_(&profile),
      env_(std::move(env)),
      log_(core::logger("north")),
      backoff_(profile.reconnect_base(), kReconnectCap, core::Backoff::Jitter::full),
      // libmosquitto checks its keepalive in whole seconds; four looks per period keep a PINGREQ
      // well inside the broker's 1.5 x keepalive.
      misc_period_(std::max<std::chrono::milliseconds>(std::chrono::milliseconds(250), cloud_->keepalive / 4)),
      backlog_on_disk_(env_.store != nullptr) {
    const TimePoint now = env_.loop->now();
    const std::int64_t now_ms = env_.loop->unix_ms();
    const std::int64_t window_ms = profile.login_limit().window.count();
    for (auto at : env_.earlier_logins) {
        if (at > now_ms - window_ms) logins_.push_back(now - std::chrono::milliseconds(now_ms - at));
    }
}

Session::~Session() {
    env_.loop->cancel(this);
    unwatch();
}

// ---- connection ------------------------------------------------------------------------------

void Session::start() {
    if (state_ != State::idle) return;
    connect(env_.loop->now());
}

// The platform's login-rate rule (Profile::login_limit; OneNET kicks a device that logs in more
// than 3 times in 5 s). Backoff alone is not enough: it resets after a successful login that is
// then kicked.
TimePoint Session::login_allowed_at(TimePoint now) {
    const LoginLimit limit = profile_->login_limit();
    while (!logins_.empty() && logins_.front() <= now - limit.window) logins_.pop_front();
    return logins_.size() < limit.logins ? now : logins_.front() + limit.window + std::chrono::milliseconds(50);
}

bool Session::refresh_credentials(std::int64_t now_s) {
    if (credentials_ && (credentials_->expires_s == 0 || now_s < credentials_->expires_s - kRenewMarginS)) return true;
    std::string err;
    auto c = profile_->credentials(info_, now_s, &err);
    if (!c) {
        log_->error("device {}: cannot compute credentials for cloud {}: {}", info_.name, cloud_->name, err);
        return false;
    }
    if (transport_ && credentials_ && c->client_id != credentials_->client_id) {
        // A new client id needs a new client; what was in flight is sent again from the store.
        unwatch();
        transport_.reset();
        packets_.clear();
        inflight_.clear();
        awaiting_.clear();
        awaiting_data_ = 0;
        awaiting_gates_ = 0;
        next_answer_check_ = TimePoint::max();
        if (env_.store) {
            live_.clear();
            backlog_.clear();
            disk_after_ = 0;
            backlog_on_disk_ = true;
        }
    }
    credentials_ = std::move(c);
    return true;
}

void Session::connect(TimePoint now) {
    if (const TimePoint at = login_allowed_at(now); at > now) {
        state_ = State::waiting;
        reconnect_at_ = at;
        reschedule();
        return;
    }
    if (!refresh_credentials(env_.loop->unix_ms() / 1000)) {
        schedule_reconnect(now);
        return;
    }
    if (!transport_) {
        transport_ = env_.make_transport(*this, *cloud_, credentials_->client_id);
        if (!transport_) {
            log_->error("device {}: cannot create an MQTT client", info_.name);
            schedule_reconnect(now);
            return;
        }
    }
    if (env_.window && !in_window_) {
        if (!env_.window->enter(this)) {
            state_ = State::queued;  // admitted() when a place is free
            env_.loop->cancel(this);
            return;
        }
        in_window_ = true;
    }
    resolve();
}

void Session::admitted() {
    in_window_ = true;
    admitted_ = true;
    env_.loop->schedule(this, env_.loop->now());  // continue from the loop, not inside someone else's callback
}

void Session::leave_window() {
    if (!in_window_ || !env_.window) return;
    in_window_ = false;
    env_.window->leave();
}

void Session::resolve() {
    state_ = State::resolving;
    env_.loop->cancel(this);
    const std::uint64_t generation = ++resolve_generation_;
    // The answer may come after a reload destroyed this session: the callback checks first.
    env_.resolver->resolve(cloud_->host, [self = std::weak_ptr<Session*>(self_), generation](const Resolution& r) {
        if (auto s = self.lock()) (*s)->on_resolved(r, generation);
    });
}

void Session::on_resolved(const Resolution& r, std::uint64_t generation) {
    if (generation != resolve_generation_ || state_ != State::resolving) return;  // stopped meanwhile
    const TimePoint now = env_.loop->now();
    if (r.addresses.empty()) {  // the resolver logs each name once per streak
        count(&SessionCounters::resolve_failures);
        schedule_reconnect(now);
        return;
    }
    const std::string& address = r.addresses[address_index_ % r.addresses.size()];
    logins_.push_back(now);
    if (env_.store) env_.store->record_login(info_.name, env_.loop->unix_ms());
    unwatch();  // the client closes any old socket; a new one may reuse its number
    const int keepalive = static_cast<int>(cloud_->keepalive.count() / 1000);
    const int rc = transport_->connect(*credentials_, address, cloud_->port, keepalive);
    if (rc != 0) {
        if (failures_ == 0) log_connect_failure(address, transport_->error_text(rc));
        ++address_index_;
        schedule_reconnect(now);
        return;
    }
    state_ = State::connecting;
    connect_deadline_ = now + std::clamp<std::chrono::milliseconds>(cloud_->keepalive, std::chrono::seconds(5),
                                                                    std::chrono::seconds(30));
    sync_watch();
    reschedule();
}

void Session::schedule_reconnect(TimePoint now) {
    leave_window();
    ++failures_;
    count(&SessionCounters::connect_failures);
    state_ = State::waiting;
    reconnect_at_ = now + backoff_.next(failures_);
    reschedule();
}

void Session::log_connect_failure(const std::string& address, const std::string& reason) {
    const std::string where = address == cloud_->host ? cloud_->host : cloud_->host + " (" + address + ")";
    log_->warn("device {}: cannot connect to cloud {} at {}:{}: {}", info_.name, cloud_->name, where, cloud_->port,
               reason);
}

void Session::lost(const char* why, int rc) {
    const std::string reason = rc == kErrTimeout ? std::string("timed out")
                               : transport_      ? transport_->error_text(rc)
                                                 : "?";
    if (state_ == State::connected) {
        log_->warn("device {}: connection to cloud {} lost ({}: {}); {} batches waiting in memory, reconnecting",
                   info_.name, cloud_->name, why, reason, live_.size() + backlog_.size());
        if (env_.connected) --*env_.connected;
    } else {
        ++address_index_;  // the next attempt tries the name's next address
        if (state_ == State::connecting && failures_ == 0 && std::strcmp(why, "connack") != 0) {
            log_connect_failure(cloud_->host, std::string(why) + ": " + reason);  // the backoff retries quietly
        }
    }
    unwatch();
    // Writes not yet started are withdrawn: their reply could not go, and the platform gives up.
    for (auto& [id, w] : writes_) w.job->expire();
    writes_.clear();
    schedule_reconnect(env_.loop->now());
}

void Session::clock_stepped() {
    if (credentials_ && credentials_->expires_s != 0) credentials_->expires_s = 1;  // made again when next needed
    failures_ = 0;
    if (state_ != State::waiting) return;
    reconnect_at_ = env_.loop->now();
    reschedule();
}

void Session::rebase(SessionInfo info, const Profile& profile) {
    info_ = std::move(info);
    cloud_ = info_.cloud;
    profile_ = &profile;
}

void Session::stop() {
    if (state_ == State::queued && env_.window) env_.window->withdraw(this);
    leave_window();
    const bool was_connected = state_ == State::connected;
    for (auto& [id, w] : writes_) w.job->expire();
    writes_.clear();
    state_ = State::stopped;  // before disconnect: its callback must not reconnect
    ++resolve_generation_;
    env_.loop->cancel(this);
    // The socket leaves the loop before the client closes it: once closed, its number may be
    // taken by another thread's descriptor (the HTTP server's accept), which the loop must not touch.
    unwatch();
    if (transport_ && was_connected) {
        transport_->disconnect();
        if (env_.connected) --*env_.connected;
    }
}

// ---- loop callbacks --------------------------------------------------------------------------

// Keeps the loop's watch in step with the client's socket and its wish to write.
void Session::sync_watch() {
    const int fd = transport_ ? transport_->socket() : -1;
    if (fd != watched_fd_) unwatch();
    if (fd < 0) return;
    const std::uint32_t want = EPOLLIN | (transport_->want_write() ? EPOLLOUT : 0u);
    if (fd == watched_fd_ && want == watched_events_) return;
    env_.loop->watch(fd, want, this);
    watched_fd_ = fd;
    watched_events_ = want;
}

void Session::unwatch() {
    if (watched_fd_ >= 0) env_.loop->unwatch(watched_fd_);
    watched_fd_ = -1;
    watched_events_ = 0;
}

void Session::on_io(std::uint32_t events) {
    if (!transport_ || (state_ != State::connecting && state_ != State::connected)) return;
    int rc = 0;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) rc = transport_->on_readable();
    if (rc == 0 && (events & EPOLLOUT) && (state_ == State::connecting || state_ == State::connected)) {
        rc = transport_->on_writable();
    }
    if (rc != 0 && (state_ == State::connecting || state_ == State::connected)) {
        lost("socket", rc);
        return;
    }
    // Callbacks only recorded what happened; acting on it (subscribing, publishing) waits until
    // libmosquitto's call has returned and released its locks.
    if (state_ == State::connected && subscribe_pending_) after_connack();
    if (state_ == State::connected) flush();
    sync_watch();
}

void Session::on_timer(TimePoint now) {
    switch (state_) {
        case State::waiting:
            if (now >= reconnect_at_) {
                connect(now);
                return;
            }
            break;
        case State::queued:
            if (admitted_) {
                admitted_ = false;
                resolve();
                return;
            }
            break;
        case State::connecting:
            if (now >= connect_deadline_) {
                lost("no answer to CONNECT", kErrTimeout);
                return;
            }
            break;
        case State::connected:
            if (now >= next_misc_) {
                next_misc_ = now + misc_period_;
                if (const int rc = transport_->on_timer(); rc != 0 && state_ == State::connected) {
                    lost("keepalive", rc);
                    return;
                }
            }
            if (state_ == State::connected && now >= next_answer_check_) answer_deadlines(now);
            if (state_ == State::connected && !writes_.empty()) write_deadlines(now);
            if (state_ == State::connected) flush();
            break;
        default:
            break;
    }
    if (credentials_ && credentials_->expires_s &&
        env_.loop->unix_ms() / 1000 >= credentials_->expires_s - kRenewMarginS) {
        refresh_credentials(env_.loop->unix_ms() / 1000);  // ready before the next reconnect needs them
    }
    reschedule();
}

// The session's one timer: whichever of its deadlines comes first.
void Session::reschedule() {
    TimePoint next = TimePoint::max();
    switch (state_) {
        case State::waiting:
            next = reconnect_at_;
            break;
        case State::connecting:
            next = connect_deadline_;
            break;
        case State::connected: {
            next = std::min({next_misc_, next_answer_check_, next_write_check()});
            const bool waiting =
                !control_.empty() || !live_.empty() || !backlog_.empty() || backlog_on_disk_ || retry_ready_;
            if (waiting && cloud_->max_rate > 0 && tokens_ < 1.0 && sendable() == 0 &&
                static_cast<int>(inflight_.size()) < cloud_->max_inflight) {
                const auto need = std::chrono::duration<double>((1.0 - tokens_) / cloud_->max_rate);
                next = std::min(next, last_refill_ + std::chrono::duration_cast<Clock::duration>(need) +
                                          std::chrono::microseconds(1));
            }
            break;
        }
        default:
            break;
    }
    if (credentials_ && credentials_->expires_s && state_ != State::stopped) {
        const auto renew_in = std::chrono::seconds(
            std::max<std::int64_t>(0, credentials_->expires_s - kRenewMarginS - env_.loop->unix_ms() / 1000));
        next = std::min(next, env_.loop->now() + renew_in);
    }
    if (next == TimePoint::max()) {
        env_.loop->cancel(this);
    } else {
        env_.loop->schedule(this, next);
    }
}

// ---- transport callbacks ---------------------------------------------------------------------

void Session::on_connack(int rc) {
    if (state_ != State::connecting) return;
    if (rc != 0) {
        // Once per streak of failures, as other connection failures: the backoff retries quietly.
        if (failures_ == 0) {
            log_->error(
                "device {}: cloud {} refused the connection: {} (CONNACK {}); retried with backoff, logged "
                "again once connected",
                info_.name, cloud_->name, connack_text(rc, cloud_->platform), rc);
        }
        lost("connack", rc);
        return;
    }
    leave_window();
    count(&SessionCounters::connects);
    if (failures_ > 0 || counters_.connects > 1) {
        log_->info("device {}: connected to cloud {} again after {} failed attempt(s)", info_.name, cloud_->name,
                   failures_);
    } else {
        log_->info("device {}: connected to cloud {} ({}:{})", info_.name, cloud_->name, cloud_->host, cloud_->port);
    }
    failures_ = 0;
    state_ = State::connected;
    if (env_.connected) ++*env_.connected;
    const TimePoint now = env_.loop->now();
    last_refill_ = now;
    next_misc_ = now + misc_period_;
    subscribe_pending_ = true;  // after the read call returns: libmosquitto holds its locks in callbacks
}

// Right after CONNACK, outside libmosquitto's callback: subscriptions and on-connect messages.
void Session::after_connack() {
    subscribe_pending_ = false;
    for (const auto& topic : profile_->subscriptions(info_)) {
        if (const int sub = transport_->subscribe(topic, profile_->downlink_qos()); sub != 0) {
            log_->warn("device {}: cannot subscribe to {}: {}", info_.name, topic, transport_->error_text(sub));
        }
    }
    control_.clear();
    logged_in_.clear();
    needs_login_.clear();
    for (auto& m : profile_->on_connect(info_, next_id_)) control_.push_back(std::move(m));
    // Answers to what was delivered before the connection dropped may be lost with it: those
    // messages go again (what was not yet PUBACKed, libmosquitto sends again itself). On-connect
    // requests are all sent anew.
    const TimePoint now = env_.loop->now();
    awaiting_gates_ = 0;
    for (auto it = awaiting_.begin(); it != awaiting_.end();) {
        if (it->second.packet == 0) {
            it = awaiting_.erase(it);
            continue;
        }
        if (it->second.delivered) {
            it->second.delivered = false;
            it->second.retry = true;
            it->second.due = now;
            retry_ready_ = true;
        }
        ++it;
    }
}

void Session::on_disconnect(int rc) {
    if (state_ != State::connecting && state_ != State::connected) return;
    lost("disconnected", rc);
}

void Session::on_puback(int mid) {
    auto it = inflight_.find(mid);
    if (it == inflight_.end()) return;
    const Mid m = std::move(it->second);
    inflight_.erase(it);
    count(&SessionCounters::messages_acked);
    if (m.answer_id.empty()) {
        finish_message(m.packet);
        return;
    }
    // The platform's answer finishes it (or already has); from now on that answer is awaited.
    auto a = awaiting_.find(m.answer_id);
    if (a == awaiting_.end() || a->second.retry || a->second.packet != m.packet) return;
    a->second.delivered = true;
    a->second.due = env_.loop->now() + kAnswerTimeout;
    plan_answer_check(a->second.due);
}

// One message of `packet` is done; the packet's records are deleted once all of them are.
void Session::finish_message(std::size_t packet) {
    auto p = packets_.find(packet);
    if (p == packets_.end() || --p->second.messages > 0) return;
    if (env_.store) {
        for (const auto& r : p->second.records) env_.store->ack(r.device, r.id);
    }
    packets_.erase(p);
}

// The platform's answer to one of our requests. Only an answer finishes a message that expects
// one: accepted, or refused for good (its records dropped and counted per device and reason); a
// transient failure sends it again later. An answer naming no request of ours finishes nothing.
// An answer naming no request of ours: counted (and logged once per kind), unless it is a second
// answer to a request sent twice.
void Session::unknown_answer(const Answer& a, const std::string& kind, const std::string& topic) {
    if (std::find(finished_answers_.begin(), finished_answers_.end(), a.id) != finished_answers_.end()) {
        return;  // the first one counted
    }
    count(&SessionCounters::answers_unknown);
    if (logged_kinds_.insert(kind + "|unknown id").second) {
        log_->warn(
            "device {}: answer on {} names request '{}', which awaits no answer; nothing is finished "
            "(further ones like it are counted, not logged)",
            info_.name, topic, a.id);
    }
}

// An on-connect request (topology, login) answered: what follows depends on it.
void Session::control_answered(const Answer& a, Answer::Outcome outcome, const std::string& kind, const Awaiting& w) {
    if (outcome != Answer::Outcome::accepted) {
        count(&SessionCounters::error_replies);
        if (logged_kinds_.insert(kind + "|error reply|" + a.reason).second) {
            log_->warn("device {}: request {} on {} failed: {} (further ones like it are counted, not logged)",
                       info_.name, a.id, w.message.topic, a.reason);
        }
    }
    std::vector<Message> next = outcome == Answer::Outcome::accepted ? w.message.then : w.message.otherwise;
    if (outcome == Answer::Outcome::accepted) next.insert(next.end(), a.follow_ups.begin(), a.follow_ups.end());
    forget_request(a.id, false);
    for (auto& m : next) control_.push_back(std::move(m));
}

// A transient refusal: the message goes again later (doubling delay, capped).
void Session::retry_later(const Answer& a, const std::string& kind, Awaiting& w) {
    const auto delay =
        std::min<std::chrono::seconds>(kRetryCap, std::chrono::seconds(std::int64_t{1} << std::min(w.attempts - 1, 6)));
    w.retry = true;
    w.delivered = false;
    w.due = env_.loop->now() + delay;
    plan_answer_check(w.due);
    if (logged_kinds_.insert(kind + "|transient|" + a.reason).second) {
        log_->warn(
            "device {}: the platform answered message {} on {} with {}; it is sent again (further "
            "ones like it are counted, not logged)",
            info_.name, a.id, w.message.topic, a.reason);
    }
}

// A permanent refusal: the packet's records are dropped, counted per device and reason (once per
// packet, however many of its messages were refused).
void Session::refused_for_good(const Answer& a, const std::string& kind, const Awaiting& w) {
    auto p = packets_.find(w.packet);
    if (p == packets_.end() || p->second.rejected) return;
    p->second.rejected = true;
    for (const auto& r : p->second.records) ++rejected_[{r.device, a.reason}];
    count(&SessionCounters::records_rejected, p->second.records.size());
    if (logged_kinds_.insert(kind + "|rejected|" + a.reason).second) {
        log_->error(
            "device {}: the platform refused message {} on {}: {}; its {} record(s) are dropped, "
            "counted per device and reason in status.json (further ones like it are counted, not "
            "logged)",
            info_.name, a.id, w.message.topic, a.reason, p->second.records.size());
    }
}

void Session::on_answer(const Answer& a, const std::string& kind, const std::string& topic) {
    auto it = awaiting_.find(a.id);
    if (it == awaiting_.end()) {
        unknown_answer(a, kind, topic);
        return;
    }
    Awaiting& w = it->second;
    using O = Answer::Outcome;
    O outcome = a.outcome;
    if (outcome == O::unknown) outcome = w.attempts >= kMaxAttempts ? O::permanent : O::transient;
    if (w.packet == 0) {
        control_answered(a, outcome, kind, w);
        return;
    }
    if (outcome == O::transient) {
        retry_later(a, kind, w);
        return;
    }
    if (outcome == O::permanent) refused_for_good(a, kind, w);
    const std::size_t packet = w.packet;
    awaiting_.erase(it);
    --awaiting_data_;
    finished_answers_.push_back(a.id);
    if (finished_answers_.size() > kFinishedAnswersKept) finished_answers_.pop_front();
    finish_message(packet);
}

// Drops an on-connect request from the awaited ones; `fallback`: its `otherwise` messages go.
void Session::forget_request(const std::string& id, bool fallback) {
    auto it = awaiting_.find(id);
    if (it == awaiting_.end()) return;
    if (it->second.message.gate) --awaiting_gates_;
    if (fallback) {
        for (const auto& m : it->second.message.otherwise) control_.push_back(m);
    }
    awaiting_.erase(it);
}

// Retries that are due, answers that are overdue: a missing answer sends the message again, at
// most kMaxAttempts times in all; after that its PUBACK stands for delivery (counted, logged).
void Session::answer_deadlines(TimePoint now) {
    next_answer_check_ = TimePoint::max();
    std::vector<std::string> done;
    for (auto& [id, w] : awaiting_) {
        if (w.retry) {  // sent by send_retries once due
            if (w.due <= now) {
                retry_ready_ = true;
            } else {
                plan_answer_check(w.due);
            }
            continue;
        }
        if (!w.delivered) continue;
        if (w.due > now) {
            plan_answer_check(w.due);
            continue;
        }
        if (w.packet != 0) count(&SessionCounters::answers_missing);
        const bool again = w.packet != 0 && w.attempts < kMaxAttempts;
        if (w.packet != 0 && logged_kinds_.insert(again ? "answer|missing" : "answer|never").second) {
            log_->warn(again ? "device {}: no answer to message {} on {} within {} s; it is sent again (further ones "
                               "like it are counted, not logged)"
                             : "device {}: no answer to message {} on {} within {} s after every attempt; its PUBACK "
                               "stands for delivery (further ones like it are counted, not logged)",
                       info_.name, id, w.message.topic, kAnswerTimeout.count());
        }
        if (again) {
            w.delivered = false;
            w.retry = true;
            w.due = now;
            retry_ready_ = true;
        } else {
            done.push_back(id);
        }
    }
    for (const auto& id : done) {
        auto it = awaiting_.find(id);
        const std::size_t packet = it->second.packet;
        if (packet == 0) {  // an on-connect request nobody answered: its fallback goes
            forget_request(id, true);
            continue;
        }
        awaiting_.erase(it);
        --awaiting_data_;
        finish_message(packet);
    }
}

// Sends one message due to go again; false (and no longer ready) when none is due.
bool Session::send_retry(TimePoint now) {
    for (auto& [id, w] : awaiting_) {
        if (!w.retry || w.due > now) continue;
        ++w.attempts;
        count(&SessionCounters::answers_retried);
        publish(w.message, w.packet);  // a failure schedules it again
        return true;
    }
    retry_ready_ = false;
    return false;
}

void Session::on_message(const std::string& topic, const std::string& payload) {
    handle(topic, payload);
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
        in = profile_->on_message(info_, topic, payload, latest_, next_id_);
    }
    if (in.command) count(&SessionCounters::commands);
    if (in.refused) count(&SessionCounters::commands_refused);
    if (in.malformed) count(&SessionCounters::malformed);
    if (in.error_reply) count(&SessionCounters::error_replies);
    if (in.answer) on_answer(*in.answer, in.kind, topic);
    if (in.kind == "unexpected") count(&SessionCounters::unexpected);
    const char* category = in.malformed     ? "malformed"
                           : in.error_reply ? "error reply"
                           : in.refused     ? "refused"
                                            : "other";
    if (!in.problem.empty() && logged_kinds_.insert(in.kind + '|' + category).second) {
        log_->warn("device {}: {} (topic {}; further ones like it are counted, not logged)", info_.name,
                   core::printable(in.problem, 512), core::printable(topic, 256));
    }
    // Replies jump the queue but not the rate limit: sent as soon as the read call returns if a
    // token is there (on_io flushes), else first.
    for (auto it = in.replies.rbegin(); it != in.replies.rend(); ++it) control_.push_front(*it);
    if (in.write) start_write(std::move(*in.write));
}

// ---- writes from the platform -----------------------------------------------------------------

namespace {

std::string describe_values(const config::DeviceConfig& d, const std::vector<core::PointValue>& values) {
    std::string out;
    for (const auto& pv : values) {
        if (!out.empty()) out += ", ";
        out += d.points[pv.point_index].name + "=" + config::describe(pv.value);
    }
    return out.empty() ? "nothing" : out;
}

}  // namespace

// The job may wait behind the request in progress on its bus (a unit timing out holds a serial
// line for its response timeout): if the bus has not started it by 60% of the platform's
// deadline it is withdrawn and refused, never written late; one started and not confirmed just
// before the deadline is answered as unconfirmed.
void Session::start_write(Command&& c) {
    const TimePoint now = env_.loop->now();
    const auto deadline = profile_->command_deadline();
    PendingWrite w;
    w.received = now;
    w.give_up = now + deadline * 6 / 10;
    w.hard = now + deadline - std::min<Clock::duration>(deadline / 10, std::chrono::milliseconds(300));
    w.job = std::make_shared<core::WriteJob>();
    w.job->device = c.device;
    w.job->values = c.values;
    w.job->id = next_write_++;
    w.job->session = env_.index;
    w.job->deadline = std::chrono::steady_clock::now() + (w.give_up - now);
    w.command = std::move(c);
    if (!env_.submit_write) {
        reply_write(w, CommandResult{false, "this gateway runs no bus for the device", {}});
        return;
    }
    auto job = w.job;
    writes_.emplace(job->id, std::move(w));
    env_.submit_write(std::move(job));
    reschedule();
}

void Session::reply_write(const PendingWrite& w, CommandResult r) {
    count(r.ok ? &SessionCounters::writes_ok : &SessionCounters::writes_failed);
    const auto& d = info_.device(w.command.device);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(env_.loop->now() - w.received).count();
    // (the id is the platform's text: capped and escaped for the log)
    const std::string asked =
        w.command.id.empty() ? w.command.kind : w.command.kind + " id " + core::printable(w.command.id, 64);
    if (r.ok) {
        log_->info("write from cloud {} ({}) to {}: {}: done, read back {} ({} ms)", cloud_->name, asked, d.name,
                   describe_values(d, w.command.values), describe_values(d, r.values), ms);
    } else {
        log_->warn("write from cloud {} ({}) to {}: {}: failed: {} ({} ms)", cloud_->name, asked, d.name,
                   describe_values(d, w.command.values), r.reason, ms);
    }
    Message m = profile_->command_reply(info_, w.command, r);
    if (!m.topic.empty()) control_.push_front(std::move(m));
}

void Session::write_done(const core::WriteJob& job) {
    auto it = writes_.find(job.id);
    if (it == writes_.end()) {  // answered by its deadline already
        log_->warn("device {}: a write answered as unconfirmed finished later: {}", info_.name,
                   job.ok ? "it was written and read back" : job.reason);
        return;
    }
    reply_write(it->second, CommandResult{job.ok, job.reason, job.read_back});
    writes_.erase(it);
    flush();
    reschedule();
}

void Session::write_deadlines(TimePoint now) {
    for (auto it = writes_.begin(); it != writes_.end();) {
        auto& w = it->second;
        if (now >= w.give_up && w.job->expire()) {
            reply_write(w, CommandResult{false,
                                         "timeout: the bus did not reach the write in time (busy, or "
                                         "waiting for a unit that does not answer); nothing was written",
                                         {}});
        } else if (now >= w.hard) {
            reply_write(w, CommandResult{false,
                                         "timeout: the device did not confirm the write in time; it may "
                                         "have been applied",
                                         {}});
        } else {
            ++it;
            continue;
        }
        it = writes_.erase(it);
    }
}

TimePoint Session::next_write_check() const {
    TimePoint next = TimePoint::max();
    for (const auto& [id, w] : writes_) {
        next = std::min(next, w.job->state.load() == core::WriteJob::queued ? w.give_up : w.hard);
    }
    return next;
}

// ---- data ------------------------------------------------------------------------------------

void Session::count(std::uint64_t SessionCounters::*field, std::uint64_t n) {
    counters_.*field += n;
    if (env_.totals) env_.totals->*field += n;
}

void Session::enqueue(core::SampleBatch&& batch) {
    auto& latest = latest_[batch.device_index];
    if (latest.empty()) latest.resize(info_.device(batch.device_index).points.size());
    for (const auto& pv : batch.values) latest[pv.point_index] = pv.value;
    if (live_.size() >= env_.memory_window) {
        if (live_.front().record_id != 0 && env_.store) {
            backlog_on_disk_ = true;  // still on disk: it comes back through the backlog, in order
        } else {
            count(&SessionCounters::samples_dropped, live_.front().values.size());  // nothing else holds it
            if (!dropping_) {
                log_->warn("device {}: {} batches waiting in memory and no store; dropping the oldest (counted)",
                           info_.name, env_.memory_window);
            }
            dropping_ = true;
        }
        live_.pop_front();
    }
    live_.push_back(std::move(batch));
}

// Only a device logged in during this connection is logged out, and only one logged out (or
// whose login was held back while its unit did not answer) is logged in again; a login still on
// its way (after its topo/add reply) simply goes, or waits, as the unit's state says.
void Session::presence(std::uint32_t device, bool online) {
    if (online ? offline_.erase(device) == 0 : !offline_.insert(device).second) return;
    if (state_ != State::connected) return;  // on connect, offline devices are not logged in
    if (online ? needs_login_.erase(device) == 0 : logged_in_.erase(device) == 0) return;
    if (!online) needs_login_.insert(device);
    for (auto& m : profile_->presence(info_, device, online, next_id_)) control_.push_back(std::move(m));
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
    if (!env_.store || !backlog_on_disk_ || backlog_.size() >= env_.backlog_chunk / 2) return;
    const std::int64_t before = live_.empty() || live_.front().record_id == 0 ? INT64_MAX : live_.front().record_id;
    auto loaded = env_.store->load(info_.devices, disk_after_, before, env_.backlog_chunk);
    if (loaded.size() < env_.backlog_chunk) backlog_on_disk_ = false;
    for (auto& b : loaded) {
        disk_after_ = std::max(disk_after_, b.record_id);
        backlog_.push_back(std::move(b));
    }
}

std::int64_t Session::oldest_waiting_ms() const {
    std::int64_t oldest = 0;
    auto consider = [&oldest](std::int64_t t) {
        if (t && (!oldest || t < oldest)) oldest = t;
    };
    for (const auto& [id, p] : packets_) consider(p.oldest_ms);
    if (!backlog_.empty()) consider(backlog_.front().timestamp_ms);
    if (!live_.empty()) consider(live_.front().timestamp_ms);
    return oldest;
}

void Session::refill_tokens(TimePoint now) {
    if (cloud_->max_rate <= 0) return;
    const double dt = std::chrono::duration<double>(now - last_refill_).count();
    // Capacity 1: no bursts, so no window of any length ever sees more than rate x length + 1.
    tokens_ = std::min(1.0, tokens_ + dt * cloud_->max_rate);
    last_refill_ = now;
}

// Messages that may go now: room in flight, and a token when the cloud has a rate.
std::size_t Session::sendable() const {
    const int room = std::max(0, cloud_->max_inflight - static_cast<int>(inflight_.size()));
    const auto r = static_cast<std::size_t>(room);
    return cloud_->max_rate > 0 ? std::min(r, static_cast<std::size_t>(std::max(0.0, tokens_))) : r;
}

bool Session::publish(const Message& m, std::size_t packet) {
    int mid = 0;
    const int rc = transport_->publish(m.topic, m.payload, profile_->qos(), &mid);
    const TimePoint now = env_.loop->now();
    Awaiting* w = nullptr;
    if (!m.answer_id.empty()) {  // kept until its answer comes, to be sent again if need be
        auto [it, fresh] = awaiting_.try_emplace(m.answer_id);
        w = &it->second;
        if (fresh) {
            w->packet = packet;
            w->message = m;
            if (packet) ++awaiting_data_;
            if (!packet && m.gate) ++awaiting_gates_;
        }
        w->delivered = false;
        w->retry = false;
    }
    if (rc != 0) {
        log_->warn("device {}: publish to {} failed: {}", info_.name, m.topic, transport_->error_text(rc));
        if (w && packet) {  // it goes again
            w->retry = true;
            w->due = now + std::chrono::seconds(1);
            plan_answer_check(w->due);
        } else if (w) {
            forget_request(m.answer_id, false);
        }
        return false;
    }
    if (profile_->qos() > 0) {
        inflight_[mid] = Mid{packet, m.answer_id};
    } else {
        count(&SessionCounters::messages_acked);
        if (w) {
            w->delivered = true;
            w->due = now + kAnswerTimeout;
            plan_answer_check(w->due);
        }
    }
    count(&SessionCounters::messages_sent);
    count(&SessionCounters::samples_sent, m.samples);
    if (cloud_->max_rate > 0) tokens_ -= 1.0;
    return true;
}

// One packet from the front of `queue`: its records are deleted from the store once every
// message of the packet is acknowledged.
bool Session::publish_data(std::deque<core::SampleBatch>& queue) {
    auto packets = profile_->build(info_, queue, 1, next_id_);
    if (packets.empty()) return false;
    auto& p = packets.front();
    if (p.superseded) count(&SessionCounters::values_superseded, p.superseded);
    // (QoS 0 never carries stored data: the configuration refuses qos 0 with the disk store.)
    const std::size_t id = p.records.empty() || profile_->qos() == 0 ? 0 : next_packet_++;
    if (id) packets_[id] = InFlight{p.messages.size(), std::move(p.records), p.oldest_ms};
    for (const auto& m : p.messages) {
        if (!publish(m, id)) return false;
    }
    return !p.messages.empty();
}

// Control messages (on-connect requests, replies) go first, except that once the gates are
// open (the topology is known) they take turns with data, so a gateway's many sub-device logins
// never hold live data back for long. Data itself: retries, then backlog and live data taking
// turns, so a long backlog never starves live data. Messages awaiting the platform's answer are
// bounded: a platform that stops answering pauses data.
void Session::flush() {
    if (state_ != State::connected) return;
    const TimePoint now = env_.loop->now();
    refill_tokens(now);
    const std::size_t most_awaiting = std::size_t{4} * static_cast<std::size_t>(cloud_->max_inflight);
    while (sendable() > 0) {
        const bool gated = awaiting_gates_ > 0 ||
                           std::any_of(control_.begin(), control_.end(), [](const Message& m) { return m.gate; });
        const bool data_waiting = !gated && awaiting_data_ < most_awaiting &&
                                  (retry_ready_ || !live_.empty() || !backlog_.empty() || backlog_on_disk_);
        if (!control_.empty() && (control_turn_ || !data_waiting)) {
            const std::int64_t logs_in = control_.front().logs_in;
            if (logs_in >= 0 && offline_.count(static_cast<std::uint32_t>(logs_in))) {
                needs_login_.insert(static_cast<std::uint32_t>(logs_in));  // logs in when its unit answers
                control_.pop_front();
                continue;
            }
            if (!publish(control_.front(), 0)) break;
            if (logs_in >= 0) logged_in_.insert(static_cast<std::uint32_t>(logs_in));
            control_.pop_front();
            control_turn_ = false;
            continue;
        }
        if (!data_waiting) break;
        control_turn_ = true;
        if (retry_ready_ && send_retry(now)) continue;
        refill_backlog();
        const bool use_backlog = !backlog_.empty() && (prefer_backlog_ || live_.empty());
        auto& queue = use_backlog ? backlog_ : live_;
        if (queue.empty()) break;
        prefer_backlog_ = !use_backlog;
        if (!publish_data(queue)) break;
    }
    sync_watch();
    reschedule();
}

}  // namespace fieldlink::north
