// The connection part of a session: a state machine from "not connected" to "connected" and
// back, driven by the north loop (the client's socket, one timer), the resolver and the MQTT
// client's callbacks.
//
//   idle -> [waiting: login-rate rule, backoff] -> [queued: connect window] -> resolving
//        -> connecting -> connected -> (lost) -> waiting ...        stop() -> stopped
//
// It makes and renews the credentials, keeps the client's socket in the loop, sends keepalives
// and reconnects with capped, jittered backoff within the platform's login-rate rule. What
// travels over the connection is its user's business (the session): the user is told when the
// connection is up or down and what arrived, and is given its turn when its own deadline is due.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "north/connect_window.hpp"
#include "north/counters.hpp"
#include "north/login_pacer.hpp"
#include "north/loop.hpp"
#include "north/profile.hpp"
#include "north/resolver.hpp"
#include "north/session_env.hpp"
#include "north/transport.hpp"

namespace spdlog {
class logger;
}

namespace fieldlink::north {

class Connection final : public IoHandler, public TimerHandler, public TransportEvents, public ConnectWindow::Member {
  public:
    // What the connection tells the one who sends over it. Every call comes from the loop's
    // thread, outside libmosquitto's callbacks unless said otherwise.
    class User {
      public:
        virtual ~User() = default;
        virtual void up() = 0;                   // connected (CONNACK accepted): subscribe, queue on-connect messages
        virtual void down() = 0;                 // an attempt or a connection ended; writes in progress are withdrawn
        virtual void ready() = 0;                // the socket was served while connected: send what may go
        virtual void turn(TimePoint now) = 0;    // while connected, next_due() has come
        virtual TimePoint next_due() const = 0;  // while connected: when turn() is wanted next
        virtual void new_client() = 0;           // the client id changed: what was in flight goes again
        virtual void puback(int mid) = 0;        // (inside the client's callback)
        virtual void barrier(int /*mid*/) {}     // the broker answered a barrier (ditto)
        virtual void message(const std::string& topic, const std::string& payload) = 0;  // (ditto)
        virtual void count(std::uint64_t SessionCounters::*field, std::uint64_t n) = 0;
        virtual std::size_t batches_in_memory() const = 0;  // for the log line of a lost connection
    };

    // `info` and `env` outlive the connection (the session holds both).
    Connection(User& user, const SessionInfo& info, const Profile& profile, const SessionEnv& env);
    ~Connection() override;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Connects as soon as the login-rate rule allows.
    void start();
    // Disconnects cleanly and stays down (shutdown, reload).
    void stop();
    // Disconnects cleanly and connects again (the platform asked for a new session); `why` is
    // logged. Outside the client's callbacks.
    void restart(const char* why);
    // A reload kept the session: `info` (the same object) now refers to the new configuration.
    void rebase(const Profile& profile) { profile_ = &profile; }
    // Credentials dated under the old clock are made again; a wait for the next attempt ends now
    // (within the login-rate rule), without the backoff earned while the tokens were dated wrong.
    void clock_stepped();

    bool up() const { return state_ == State::connected; }
    // The first attempt is over: connected once, or failed at least once.
    bool attempted() const { return ever_up_ || pacer_.failures() > 0; }
    // The MQTT client; only while up().
    Transport& client() { return *transport_; }
    // The user's next_due() or the client's wish to write changed.
    void sync() {
        sync_watch();
        reschedule();
    }

    void on_io(std::uint32_t events) override;
    void on_timer(TimePoint now) override;
    void on_connack(int rc) override;
    void on_disconnect(int rc) override;
    void on_puback(int mid) override { user_.puback(mid); }
    void on_barrier(int mid) override { user_.barrier(mid); }
    void on_message(const std::string& topic, const std::string& payload) override { user_.message(topic, payload); }
    void admitted() override;

  private:
    enum class State { idle, waiting, queued, resolving, connecting, connected, stopped };

    const config::CloudConfig& cloud() const { return *info_->cloud; }
    void connect(TimePoint now);
    void resolve();
    void on_resolved(const Resolution& r, std::uint64_t generation);
    void leave_window();
    bool refresh_credentials(std::int64_t now_s);
    bool renewal_due(std::int64_t now_s) const;
    void schedule_reconnect(TimePoint now);
    void lost(const char* why, int rc);
    void log_connect_failure(const std::string& address, const std::string& reason);
    void sync_watch();
    void unwatch() { watch_.clear(*env_->loop); }
    void reschedule();

    User& user_;
    const SessionInfo* info_;
    const Profile* profile_;
    const SessionEnv* env_;
    std::shared_ptr<spdlog::logger> log_;

    State state_ = State::idle;
    std::unique_ptr<Transport> transport_;
    std::optional<Credentials> credentials_;
    SocketWatch watch_;  // the client's socket in the loop
    std::uint64_t resolve_generation_ = 0;
    bool in_window_ = false;
    bool admitted_ = false;
    bool subscribe_pending_ = false;  // up() waits until the client's read call has returned
    bool ever_up_ = false;
    LoginPacer pacer_;  // when to try again: login-rate rule, backoff, next address
    TimePoint reconnect_at_{};
    TimePoint connect_deadline_{};
    TimePoint next_misc_{};  // the client's keepalive look
    std::chrono::milliseconds misc_period_;
    // Expires with the connection: the resolver's callback, which may outlive it, holds a weak_ptr.
    std::shared_ptr<Connection*> self_ = std::make_shared<Connection*>(this);
};

}  // namespace fieldlink::north
