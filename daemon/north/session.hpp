// One MQTT session of one device (or of a gateway carrying several), driven by the north loop
// through three seams, so unit tests can run it on a fake clock:
//   Loop      descriptors and one timer per session (keepalive, reconnect, rate, renewal)
//   Resolver  the cloud's host name, off the loop's critical path
//   Transport the MQTT client (libmosquitto in the daemon)
// Its Connection (connection.hpp) logs in and stays connected, within the platform's login-rate
// rule. The session itself keeps samples waiting while offline or rate-limited (the newest in
// memory, older ones in the store), publishes them in the platform's message shape at QoS 1,
// deletes exactly the records a packet carried when all its messages are acknowledged, answers
// the platform's requests and carries its writes to the bus.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>

#include "config/config.hpp"
#include "core/value.hpp"
#include "core/write_job.hpp"
#include "north/answers.hpp"
#include "north/connection.hpp"
#include "north/counters.hpp"
#include "north/downlink.hpp"
#include "north/in_flight.hpp"
#include "north/loop.hpp"
#include "north/outflow.hpp"
#include "north/presence.hpp"
#include "north/profile.hpp"
#include "north/session_env.hpp"

namespace spdlog {
class logger;
}

namespace fieldlink::north {

class Session final : private Connection::User {
  public:
    Session(SessionInfo info, const Profile& profile, SessionEnv env);
    ~Session() override = default;
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Connects as soon as the login-rate rule allows.
    void start();
    // A new batch (already in the store when there is one); call flush() after a group.
    void enqueue(core::SampleBatch&& batch);
    // A device's unit stopped answering (online = false) or answers again: the platform is told
    // (logout / login) where it shows device state.
    void presence(std::uint32_t device, bool online, const std::string& reason = {});
    // Publishes what the rate, the in-flight limit and the connection allow.
    void flush();
    // A reload kept this session (the same cloud settings, the same devices at the same indexes):
    // from now on it refers to the new configuration and profile. Connection and queues stay.
    void rebase(SessionInfo info, const Profile& profile);
    // Disconnects cleanly and stays down (shutdown, reload).
    void stop();
    // The wall clock stepped: credentials dated under the old clock are made again, and a session
    // waiting to log in tries now (within the login-rate rule), without the backoff it earned
    // while its tokens were dated wrong. A connected session stays connected.
    void clock_stepped();
    // A write this session handed to a bus worker has finished (called on the loop's thread):
    // the platform gets its reply, unless the deadline already answered it.
    void write_done(const core::WriteJob& job);
    std::size_t writes_pending() const { return downlink_.pending(); }
    // Forgets queued batches the store dropped (record ids up to `id`), unless in flight.
    void forget_through(std::int64_t id);

    bool idle() const { return !outflow_.waiting() && in_flight_.messages() == 0 && answers_.data() == 0; }
    // Records the platform refused for good, per (device index, the platform's reason).
    const InFlightBook::Rejected& rejected() const { return in_flight_.rejected(); }
    bool connected() const { return conn_.up(); }
    // What became of a pushed configuration (a channel session sends it when connected).
    void report_config(const ConfigReport& r);
    // The first connection attempt is over: connected once, or failed at least once.
    bool attempted() const { return conn_.attempted(); }
    std::size_t queued_in_memory() const { return outflow_.in_memory(); }
    std::size_t in_flight() const { return in_flight_.messages(); }
    // Acquisition time of the oldest sample this session still has to deliver (0: none known).
    std::int64_t oldest_waiting_ms() const;
    const SessionCounters& counters() const { return counters_; }
    const std::string& name() const { return info_.name; }
    std::size_t serial() const { return env_.index; }
    const SessionInfo& info() const { return info_; }

  private:
    using Awaiting = AnswerBook::Awaiting;

    // What the connection tells the session (connection.hpp).
    void up() override;
    void down() override;
    void ready() override;
    void turn(TimePoint now) override;
    TimePoint next_due() const override;
    void new_client() override;
    void puback(int mid) override;
    void barrier(int mid) override;
    void message(const std::string& topic, const std::string& payload) override;
    void count(std::uint64_t SessionCounters::*field, std::uint64_t n) override;
    std::size_t batches_in_memory() const override { return outflow_.in_memory(); }

    std::size_t sendable() const;
    bool publish(const Message& m, std::size_t packet);
    bool publish_data(std::deque<core::SampleBatch>& queue);
    void finish_message(std::size_t packet);
    void on_answer(const Answer& a, const std::string& kind, const std::string& topic);
    void unknown_answer(const Answer& a, const std::string& kind, const std::string& topic);
    void control_answered(const Answer& a, Answer::Outcome outcome, const std::string& kind, const Awaiting& w);
    void retry_later(const Answer& a, const std::string& kind, Awaiting& w);
    void refused_for_good(const Answer& a, const std::string& kind, const Awaiting& w);
    void answer_deadlines(TimePoint now);
    bool send_retry(TimePoint now);
    void forget_request(const std::string& id, bool fallback);
    void handle(const std::string& topic, const std::string& payload);
    void start_write(Command&& c);
    void reply_write(const Downlink::Answer& a);
    void diagnose(DiagRequest q);
    void answer_diagnostics(const DiagRequest& q, bool ok, const std::string& result);
    void answer_read(const Downlink::Answer& a);
    void audit(const Downlink::Answer& a, const std::string& asked_by);
    void audit_append(const store::AuditEntry& e);
    void count(std::uint64_t SessionCounters::*field) { count(field, 1); }
    void confirm_sent();
    void say_farewell();

    SessionInfo info_;
    const config::CloudConfig* cloud_;  // pointers: a reload moves a kept session to the new configuration
    const Profile* profile_;
    SessionEnv env_;
    std::shared_ptr<spdlog::logger> log_;

    TokenBucket rate_;

    Outflow outflow_;              // data waiting to go
    InFlightBook in_flight_;       // packets sent and messages awaiting PUBACK
    AnswerBook answers_;           // messages awaiting the platform's answer
    bool control_turn_ = true;     // control and data messages take turns
    PresenceBook presence_;        // units not answering, devices logged in on the platform
    std::deque<Message> control_;  // on-connect messages and replies, sent before data
    LatestValues latest_;
    std::set<std::string> logged_kinds_;  // inbound problems are logged once per kind
    Downlink downlink_;                   // writes from the platform on their way to the bus
    std::uint32_t next_id_ = 1;
    // QoS 0 data confirmed by barriers (Profile::confirms_qos0): the messages sent since the last
    // barrier, and the barrier in flight with those it confirms.
    struct Barrier {
        std::vector<int> sent;
        int mid = 0;
        std::vector<int> covered;
    } barrier_;
    bool restart_wanted_ = false;  // the platform asked for a new connection (Inbound::restart)
    SessionCounters counters_;
    Connection conn_;  // last: it goes first, with the client, before what its callbacks touch
};

}  // namespace fieldlink::north
