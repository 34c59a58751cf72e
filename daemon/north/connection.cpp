#include "connection.hpp"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstring>

#include "core/log.hpp"

namespace fieldlink::north {

namespace {

constexpr int kErrTimeout = -1;  // our own code: no answer in time (not a transport code)
// Credentials are computed again this long before they expire.
constexpr std::int64_t kRenewMarginS = 300;

// What a refused CONNACK means (with what to check on this platform, for refused credentials).
std::string connack_text(int rc, const Profile& profile) {
    switch (rc) {
        case 1:
            return "unacceptable protocol version";
        case 2:
            return "client id rejected";
        case 3:
            return "server unavailable";
        case 4:
            return std::string("bad user name or password (check ") + profile.credentials_hint() + ")";
        case 5:
            return std::string("not authorised (check ") + profile.credentials_hint() + ")";
        default:
            return "refused";
    }
}

}  // namespace

Connection::Connection(User& user, const SessionInfo& info, const Profile& profile, const SessionEnv& env)
    : user_(user),
      info_(&info),
      profile_(&profile),
      env_(&env),
      log_(core::logger("north")),
      pacer_(profile.reconnect_base()),
      // libmosquitto checks its keepalive in whole seconds; four looks per period keep a PINGREQ
      // well inside the broker's 1.5 x keepalive.
      misc_period_(std::max<std::chrono::milliseconds>(std::chrono::milliseconds(250), info.cloud->keepalive / 4)) {
    pacer_.restore(env.earlier_logins, profile.login_limit(), env.loop->now(), env.loop->unix_ms());
}

Connection::~Connection() {
    env_->loop->cancel(this);
    unwatch();
}

// ---- connecting ------------------------------------------------------------------------------

void Connection::start() {
    if (state_ != State::idle) return;
    connect(env_->loop->now());
}

bool Connection::renewal_due(std::int64_t now_s) const {
    return credentials_ && credentials_->expires_s != 0 && now_s >= credentials_->expires_s - kRenewMarginS;
}

bool Connection::refresh_credentials(std::int64_t now_s) {
    if (credentials_ && !renewal_due(now_s)) return true;
    std::string err;
    auto c = profile_->credentials(*info_, now_s, &err);
    if (!c) {
        log_->error("device {}: cannot compute credentials for cloud {}: {}", info_->name, cloud().name, err);
        return false;
    }
    if (transport_ && credentials_ && c->client_id != credentials_->client_id) {
        // A new client id needs a new client; what was in flight is sent again from the store.
        unwatch();
        transport_.reset();
        user_.new_client();
    }
    credentials_ = std::move(c);
    return true;
}

void Connection::connect(TimePoint now) {
    if (const TimePoint at = pacer_.allowed_at(now, profile_->login_limit()); at > now) {
        state_ = State::waiting;
        reconnect_at_ = at;
        reschedule();
        return;
    }
    if (!refresh_credentials(env_->loop->unix_ms() / 1000)) {
        schedule_reconnect(now);
        return;
    }
    if (!transport_) {
        transport_ = env_->make_transport(*this, cloud(), credentials_->client_id);
        if (!transport_) {
            log_->error("device {}: cannot create an MQTT client", info_->name);
            schedule_reconnect(now);
            return;
        }
    }
    if (env_->window && !in_window_) {
        if (!env_->window->enter(this)) {
            state_ = State::queued;  // admitted() when a place is free
            env_->loop->cancel(this);
            return;
        }
        in_window_ = true;
    }
    resolve();
}

void Connection::admitted() {
    in_window_ = true;
    admitted_ = true;
    env_->loop->schedule(this, env_->loop->now());  // continue from the loop, not inside someone else's callback
}

void Connection::leave_window() {
    if (!in_window_ || !env_->window) return;
    in_window_ = false;
    env_->window->leave();
}

void Connection::resolve() {
    state_ = State::resolving;
    env_->loop->cancel(this);
    const std::uint64_t generation = ++resolve_generation_;
    // The answer may come after a reload destroyed this connection: the callback checks first.
    env_->resolver->resolve(cloud().host, [self = std::weak_ptr<Connection*>(self_), generation](const Resolution& r) {
        if (auto c = self.lock()) (*c)->on_resolved(r, generation);
    });
}

void Connection::on_resolved(const Resolution& r, std::uint64_t generation) {
    if (generation != resolve_generation_ || state_ != State::resolving) return;  // stopped meanwhile
    const TimePoint now = env_->loop->now();
    if (r.addresses.empty()) {  // the resolver logs each name once per streak
        user_.count(&SessionCounters::resolve_failures, 1);
        schedule_reconnect(now);
        return;
    }
    const std::string& address = pacer_.address(r.addresses);
    pacer_.attempt(now);
    if (env_->store) env_->store->record_login(info_->name, env_->loop->unix_ms());
    unwatch();  // the client closes any old socket; a new one may reuse its number
    const int keepalive = static_cast<int>(cloud().keepalive.count() / 1000);
    credentials_->will = profile_->will(*info_);  // (a new one for each CONNECT)
    const int rc = transport_->connect(*credentials_, address, cloud().port, keepalive);
    if (rc != 0) {
        if (pacer_.failures() == 0) log_connect_failure(address, transport_->error_text(rc));
        pacer_.next_address();
        schedule_reconnect(now);
        return;
    }
    state_ = State::connecting;
    connect_deadline_ = now + std::clamp<std::chrono::milliseconds>(cloud().keepalive, std::chrono::seconds(5),
                                                                    std::chrono::seconds(30));
    sync_watch();
    reschedule();
}

void Connection::schedule_reconnect(TimePoint now) {
    leave_window();
    const auto delay = pacer_.failed();
    user_.count(&SessionCounters::connect_failures, 1);
    state_ = State::waiting;
    reconnect_at_ = now + delay;
    reschedule();
}

void Connection::log_connect_failure(const std::string& address, const std::string& reason) {
    const std::string& host = cloud().host;
    const std::string where = address == host ? host : host + " (" + address + ")";
    log_->warn("device {}: cannot connect to cloud {} at {}:{}: {}", info_->name, cloud().name, where, cloud().port,
               reason);
}

void Connection::lost(const char* why, int rc) {
    const std::string reason = rc == kErrTimeout ? std::string("timed out")
                               : transport_      ? transport_->error_text(rc)
                                                 : "?";
    if (state_ == State::connected) {
        log_->warn("device {}: connection to cloud {} lost ({}: {}); {} batches waiting in memory, reconnecting",
                   info_->name, cloud().name, why, reason, user_.batches_in_memory());
        if (env_->connected) --*env_->connected;
    } else {
        pacer_.next_address();  // the next attempt tries the name's next address
        if (state_ == State::connecting && pacer_.failures() == 0 && std::strcmp(why, "connack") != 0) {
            log_connect_failure(cloud().host, std::string(why) + ": " + reason);  // the backoff retries quietly
        }
    }
    unwatch();
    user_.down();
    schedule_reconnect(env_->loop->now());
}

void Connection::clock_stepped() {
    if (credentials_ && credentials_->expires_s != 0) credentials_->expires_s = 1;  // made again when next needed
    pacer_.forgive();
    if (state_ != State::waiting) return;
    reconnect_at_ = env_->loop->now();
    reschedule();
}

void Connection::stop() {
    if (state_ == State::queued && env_->window) env_->window->withdraw(this);
    leave_window();
    const bool was_connected = state_ == State::connected;
    state_ = State::stopped;  // before disconnect: its callback must not reconnect
    ++resolve_generation_;
    env_->loop->cancel(this);
    // The socket leaves the loop before the client closes it: once closed, its number may be
    // taken by another thread's descriptor (the HTTP server's accept), which the loop must not touch.
    unwatch();
    if (transport_ && was_connected) {
        transport_->disconnect();
        if (env_->connected) --*env_->connected;
    }
}

void Connection::restart(const char* why) {
    if (state_ != State::connected) return;
    log_->info("device {}: ending the connection to cloud {} and connecting again: {}", info_->name, cloud().name, why);
    state_ = State::waiting;  // before disconnect: its callback is not a loss
    if (env_->connected) --*env_->connected;
    unwatch();
    transport_->disconnect();
    user_.down();
    leave_window();
    reconnect_at_ = env_->loop->now() + profile_->reconnect_base();  // not a failure: no backoff
    reschedule();
}

// ---- the loop's calls ------------------------------------------------------------------------

// Keeps the loop's watch in step with the client's socket and its wish to write.
void Connection::sync_watch() {
    const int fd = transport_ ? transport_->socket() : -1;
    watch_.sync(*env_->loop, this, fd, fd >= 0 && transport_->want_write());
}

void Connection::on_io(std::uint32_t events) {
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
    if (state_ == State::connected && subscribe_pending_) {
        subscribe_pending_ = false;
        user_.up();
    }
    if (state_ == State::connected) user_.ready();
    sync_watch();
}

void Connection::on_timer(TimePoint now) {
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
            if (state_ == State::connected) user_.turn(now);
            break;
        default:
            break;
    }
    const std::int64_t now_s = env_->loop->unix_ms() / 1000;
    if (renewal_due(now_s)) refresh_credentials(now_s);  // ready before the next reconnect needs them
    reschedule();
}

// The one timer: whichever deadline comes first.
void Connection::reschedule() {
    TimePoint next = TimePoint::max();
    switch (state_) {
        case State::waiting:
            next = reconnect_at_;
            break;
        case State::connecting:
            next = connect_deadline_;
            break;
        case State::connected:
            next = std::min(next_misc_, user_.next_due());
            break;
        default:
            break;
    }
    if (credentials_ && credentials_->expires_s && state_ != State::stopped) {
        const auto renew_in = std::chrono::seconds(
            std::max<std::int64_t>(0, credentials_->expires_s - kRenewMarginS - env_->loop->unix_ms() / 1000));
        next = std::min(next, env_->loop->now() + renew_in);
    }
    if (next == TimePoint::max()) {
        env_->loop->cancel(this);
    } else {
        env_->loop->schedule(this, next);
    }
}

// ---- the client's callbacks ------------------------------------------------------------------

void Connection::on_connack(int rc) {
    if (state_ != State::connecting) return;
    if (rc != 0) {
        // Once per streak of failures, as other connection failures: the backoff retries quietly.
        if (pacer_.failures() == 0) {
            log_->error(
                "device {}: cloud {} refused the connection: {} (CONNACK {}); retried with backoff, logged "
                "again once connected",
                info_->name, cloud().name, connack_text(rc, *profile_), rc);
        }
        lost("connack", rc);
        return;
    }
    leave_window();
    user_.count(&SessionCounters::connects, 1);
    if (pacer_.failures() > 0 || ever_up_) {
        log_->info("device {}: connected to cloud {} again after {} failed attempt(s)", info_->name, cloud().name,
                   pacer_.failures());
    } else {
        log_->info("device {}: connected to cloud {} ({}:{})", info_->name, cloud().name, cloud().host, cloud().port);
    }
    ever_up_ = true;
    pacer_.succeeded();
    state_ = State::connected;
    if (env_->connected) ++*env_->connected;
    next_misc_ = env_->loop->now() + misc_period_;
    subscribe_pending_ = true;  // after the read call returns: libmosquitto holds its locks in callbacks
}

void Connection::on_disconnect(int rc) {
    if (state_ != State::connecting && state_ != State::connected) return;
    lost("disconnected", rc);
}

}  // namespace fieldlink::north
