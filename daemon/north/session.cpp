#include "session.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "config/writes.hpp"
#include "core/clock.hpp"
#include "core/log.hpp"

namespace fieldlink::north {

namespace {

// Platform commands are small (OneNET: 20 KB); anything near the MQTT limits is hostile.
constexpr std::size_t kMaxInboundBytes = std::size_t{256} * 1024;

}  // namespace

Session::Session(SessionInfo info, const Profile& profile, SessionEnv env)
    : info_(std::move(info)),
      cloud_(info_.cloud),
      profile_(&profile),
      env_(std::move(env)),
      log_(core::logger("north")),
      outflow_(env_.store != nullptr),
      conn_(*this, info_, profile, env_) {}

// ---- the connection --------------------------------------------------------------------------

void Session::start() {
    conn_.start();
}

void Session::clock_stepped() {
    conn_.clock_stepped();
}

// A new client id: what was in flight is sent again from the store.
void Session::new_client() {
    in_flight_.clear();
    answers_.clear();
    if (env_.store) outflow_.reread_from_store();
}

void Session::rebase(SessionInfo info, const Profile& profile) {
    info.state = info_.state;  // the same session goes on: its seq, bdSeq, ...
    info_ = std::move(info);
    cloud_ = info_.cloud;
    profile_ = &profile;
    conn_.rebase(profile);
}

void Session::stop() {
    downlink_.withdraw_all();
    say_farewell();
    conn_.stop();
}

// The platform's last message before a clean disconnect (Sparkplug's NDEATH), while connected.
void Session::say_farewell() {
    if (!conn_.up()) return;
    const auto bye = profile_->farewell(info_);
    if (!bye) return;
    int mid = 0;
    if (const int rc = conn_.client().publish(bye->topic, bye->payload, bye->qos, &mid, false); rc != 0) {
        log_->warn("device {}: cannot publish {} before disconnecting: {}", info_.name, bye->topic,
                   conn_.client().error_text(rc));
    }
}

void Session::down() {
    downlink_.withdraw_all();
    if (!profile_->confirms_qos0()) return;
    // QoS 0 messages the broker did not confirm are lost with the connection: everything in
    // flight goes again from the store (what was confirmed is deleted from it already).
    barrier_ = {};
    new_client();
}

void Session::ready() {
    if (restart_wanted_ && conn_.up()) {
        restart_wanted_ = false;
        say_farewell();
        conn_.restart("the platform asked for a new session");
        return;
    }
    flush();
}

// While connected, the connection's timer serves the session's deadlines too.
void Session::turn(TimePoint now) {
    if (now >= answers_.next_check()) answer_deadlines(now);
    for (auto& a : downlink_.expired(now)) reply_write(a);
    flush();
}

TimePoint Session::next_due() const {
    TimePoint next = std::min(answers_.next_check(), downlink_.next_check());
    const bool waiting = !control_.empty() || outflow_.waiting() || answers_.retry_ready();
    if (waiting && sendable() == 0 && static_cast<int>(in_flight_.messages()) < cloud_->max_inflight) {
        next = std::min(next, rate_.next_token(cloud_->max_rate));  // waits for its token
    }
    return next;
}

// Right after CONNACK, outside libmosquitto's callback: subscriptions and on-connect messages.
void Session::up() {
    rate_.start(env_.loop->now());
    Transport& client = conn_.client();
    for (const auto& topic : profile_->subscriptions(info_)) {
        if (const int sub = client.subscribe(topic, profile_->downlink_qos()); sub != 0) {
            log_->warn("device {}: cannot subscribe to {}: {}", info_.name, topic, client.error_text(sub));
        }
    }
    control_.clear();
    presence_.new_connection();
    restart_wanted_ = false;
    for (auto& m : profile_->on_connect(info_, latest_, next_id_)) control_.push_back(std::move(m));
    if (info_.channel && env_.config_report && !env_.config_report->empty()) {
        for (auto& m : profile_->config_report(info_, *env_.config_report, next_id_)) control_.push_back(std::move(m));
    }
    if (profile_->presence_on_connect()) {
        for (const auto& [device, why] : presence_.offline()) {
            for (auto& m : profile_->presence(info_, device, false, why, latest_, next_id_)) {
                control_.push_back(std::move(m));
            }
        }
    }
    // Answers to what was delivered before the connection dropped may be lost with it: those
    // messages go again (what was not yet PUBACKed, libmosquitto sends again itself). On-connect
    // requests are all sent anew.
    answers_.reconnected(env_.loop->now());
}

// What became of a pushed configuration, sent now when connected (else after the next CONNECT).
// The answer to the request that carried the push goes at once, outside the queue: a reload
// may replace this session right after (its queue goes with it), and the platform awaits it.
void Session::report_config(const ConfigReport& r) {
    if (!info_.channel || !connected()) return;
    for (auto& m : profile_->config_report(info_, r, next_id_)) {
        if (r.reply_topic.empty() || m.topic != r.reply_topic) {
            control_.push_back(std::move(m));
            continue;
        }
        int mid = 0;
        if (const int rc = conn_.client().publish(m.topic, m.payload, 0, &mid, false); rc != 0) {
            log_->warn("device {}: cannot answer on {}: {}", info_.name, m.topic, conn_.client().error_text(rc));
        }
    }
    conn_.sync();
}

void Session::puback(int mid) {
    if (profile_->confirms_qos0()) return;  // the client reports QoS 0 as written: not a confirmation
    const auto m = in_flight_.acknowledged(mid);
    if (!m) return;
    count(&SessionCounters::messages_acked);
    if (m->answer_id.empty()) {
        finish_message(m->packet);
        return;
    }
    // The platform's answer finishes it (or already has); from now on that answer is awaited.
    answers_.acknowledged(m->answer_id, m->packet, env_.loop->now());
}

// The broker handled every message the barrier covers: each counts as acknowledged.
void Session::barrier(int mid) {
    if (mid == 0 || mid != barrier_.mid) return;
    barrier_.mid = 0;
    for (const int m : std::exchange(barrier_.covered, {})) {
        if (const auto done = in_flight_.acknowledged(m)) {
            count(&SessionCounters::messages_acked);
            finish_message(done->packet);
        }
    }
}

// QoS 0 data sent since the last barrier gets one, unless one is still on its way.
void Session::confirm_sent() {
    if (barrier_.sent.empty() || barrier_.mid != 0) return;
    Transport& client = conn_.client();
    int mid = 0;
    if (const int rc = client.barrier(&mid); rc != 0) {
        log_->warn("device {}: cannot confirm {} message(s) sent at QoS 0: {}; they go again after a reconnect",
                   info_.name, barrier_.sent.size(), rc < 0 ? std::string("no barrier") : client.error_text(rc));
        return;
    }
    barrier_.mid = mid;
    barrier_.covered = std::exchange(barrier_.sent, {});
}

// One message of `packet` is done; the packet's records are deleted once all of them are.
void Session::finish_message(std::size_t packet) {
    const auto records = in_flight_.finish_message(packet);
    if (env_.store) {
        for (const auto& r : records) env_.store->ack(r.device, r.id);
    }
}

// The platform's answer to one of our requests. Only an answer finishes a message that expects
// one: accepted, or refused for good (its records dropped and counted per device and reason); a
// transient failure sends it again later. An answer naming no request of ours finishes nothing.
// An answer naming no request of ours: counted (and logged once per kind), unless it is a second
// answer to a request sent twice.
void Session::unknown_answer(const Answer& a, const std::string& kind, const std::string& topic) {
    if (answers_.answered_lately(a.id)) return;  // the first one counted
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
    answers_.again_later(w, env_.loop->now());
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
    const std::size_t records = in_flight_.reject(w.packet, a.reason);
    if (records == 0) return;  // counted once per packet
    count(&SessionCounters::records_rejected, records);
    if (logged_kinds_.insert(kind + "|rejected|" + a.reason).second) {
        log_->error(
            "device {}: the platform refused message {} on {}: {}; its {} record(s) are dropped, "
            "counted per device and reason in status.json (further ones like it are counted, not "
            "logged)",
            info_.name, a.id, w.message.topic, a.reason, records);
    }
}

void Session::on_answer(const Answer& a, const std::string& kind, const std::string& topic) {
    Awaiting* found = answers_.find(a.id);
    if (found == nullptr) {
        unknown_answer(a, kind, topic);
        return;
    }
    Awaiting& w = *found;
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
    finish_message(answers_.finish(a.id));
}

// Drops an on-connect request from the awaited ones; `fallback`: its `otherwise` messages go.
void Session::forget_request(const std::string& id, bool fallback) {
    Message m = answers_.forget(id);
    if (fallback) {
        for (auto& next : m.otherwise) control_.push_back(std::move(next));
    }
}

// Retries that are due, answers that are overdue: a missing answer sends the message again, at
// most kMaxAttempts times in all; after that its PUBACK stands for delivery (counted, logged).
void Session::answer_deadlines(TimePoint now) {
    for (const auto& id : answers_.overdue(now)) {
        Awaiting& w = *answers_.find(id);
        if (w.packet == 0) {  // an on-connect request nobody answered: its fallback goes
            forget_request(id, true);
            continue;
        }
        count(&SessionCounters::answers_missing);
        const bool again = w.attempts < kMaxAttempts;
        if (logged_kinds_.insert(again ? "answer|missing" : "answer|never").second) {
            log_->warn(again ? "device {}: no answer to message {} on {} within {} s; it is sent again (further ones "
                               "like it are counted, not logged)"
                             : "device {}: no answer to message {} on {} within {} s after every attempt; its PUBACK "
                               "stands for delivery (further ones like it are counted, not logged)",
                       info_.name, id, w.message.topic, kAnswerTimeout.count());
        }
        if (again) {
            answers_.again_now(w, now);
        } else {
            finish_message(answers_.finish(id));
        }
    }
}

// Sends one message due to go again; false (and no longer ready) when none is due.
bool Session::send_retry(TimePoint now) {
    Awaiting* w = answers_.next_retry(now);
    if (w == nullptr) return false;
    ++w->attempts;
    count(&SessionCounters::answers_retried);
    publish(w->message, w->packet);  // a failure schedules it again
    return true;
}

void Session::message(const std::string& topic, const std::string& payload) {
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
    if (in.refused && env_.audit) {  // refused before it could be a write: the platform's text
        store::AuditEntry e;
        e.at_ms = core::unix_ms_now();
        e.cloud = cloud_->name;
        e.from = in.kind;
        e.device = info_.name;
        e.text = core::printable(payload, 512);
        e.result = "refused";
        e.reason = in.problem;
        audit_append(e);
    }
    if (in.write) start_write(std::move(*in.write));
    if (in.diagnostics) diagnose(std::move(*in.diagnostics));
    if (in.config_push && info_.channel) {
        if (env_.submit_config) {
            log_->info("cloud {}: a configuration was pushed ({}, {} bytes{}{})", cloud_->name,
                       in.config_push->file.empty() ? "the main file" : in.config_push->file,
                       in.config_push->text.size(), in.config_push->id.empty() ? "" : ", request ",
                       core::printable(in.config_push->id, 64));
            env_.submit_config(cloud_->name, std::move(*in.config_push));
        }
    }
    if (in.restart) restart_wanted_ = true;  // after the client's read call (ready())
}

// ---- diagnostics -------------------------------------------------------------------------------

namespace {

std::string diag_json(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

void Session::answer_diagnostics(const DiagRequest& q, bool ok, const std::string& result) {
    if (!ok) {
        log_->warn("diagnostics request from cloud {} ({}) refused: {}", cloud_->name, core::printable(q.what, 64),
                   result);
    }
    Message m = profile_->diagnostics_reply(info_, q, ok, result);
    if (m.topic.empty()) return;
    control_.push_front(std::move(m));
    conn_.sync();
}

// Read-only requests, answered at once (the warning lines, the bus statistics) or by the device's
// bus worker between two polls (raw registers, like a write: see start_write). Refused unless
// the cloud has `diagnostics: true`.
void Session::diagnose(DiagRequest q) {
    count(&SessionCounters::commands);
    if (!cloud_->diagnostics) {
        return answer_diagnostics(q, false,
                                  "diagnostics are off for cloud " + cloud_->name +
                                      " (diagnostics: true in its configuration answers these read-only requests)");
    }
    if (!q.problem.empty()) return answer_diagnostics(q, false, q.problem);
    if (q.what == "log") {
        auto lines = core::recent_problems();
        const auto keep = static_cast<std::size_t>(std::clamp<std::int64_t>(q.lines, 0, 50));
        if (lines.size() > keep) lines.erase(lines.begin(), lines.end() - static_cast<std::ptrdiff_t>(keep));
        return answer_diagnostics(q, true, diag_json({{"lines", lines}}));
    }
    if (q.what == "bus_stats") {
        if (!env_.bus_stats) return answer_diagnostics(q, false, "this gateway runs no bus");
        return answer_diagnostics(q, true, env_.bus_stats());
    }
    // read_registers
    const auto& devices = info_.cfg->devices;
    const auto it =
        std::find_if(devices.begin(), devices.end(), [&](const config::DeviceConfig& d) { return d.name == q.device; });
    const auto area = config::parse_area(q.area);
    const bool bits = area && config::is_bit_area(*area);
    const std::int64_t most = bits ? 2000 : 125;
    std::string why;
    if (it == devices.end()) {
        why = "no configured device '" + core::printable(q.device, 64) + "' (a device's name from the configuration)";
    } else if (!area) {
        why = "area '" + core::printable(q.area, 32) + "': expected holding, input, coil or discrete";
    } else if (q.address < 0 || q.address > 65535) {
        why = "address: expected 0..65535";
    } else if (q.count < 1 || q.count > most || q.address + q.count > 65536) {
        why = fmt::format("count: expected 1..{} {} within the address space", most, bits ? "bits" : "registers");
    }
    if (!why.empty()) return answer_diagnostics(q, false, why);
    Command c;
    c.device = static_cast<std::uint32_t>(it - devices.begin());
    c.kind = "diagnostics read";
    c.id = q.id;
    c.raw_area = static_cast<std::uint8_t>(*area);
    c.raw_address = static_cast<std::uint16_t>(q.address);
    c.raw_count = static_cast<std::uint16_t>(q.count);
    c.diag = std::move(q);
    start_write(std::move(c));
}

// A raw read's result from the bus worker (or its refusal, expiry, deadline).
void Session::answer_read(const Downlink::Answer& a) {
    const auto& q = *a.command.diag;
    const auto& d = info_.device(a.command.device);
    if (!a.result.ok) return answer_diagnostics(q, false, a.result.reason);
    log_->info("diagnostics read from cloud {}: {} unit {} {} {}+{}", cloud_->name, d.name, d.unit, q.area, q.address,
               q.count);
    return answer_diagnostics(q, true,
                              diag_json({{"device", d.name},
                                         {"unit", d.unit},
                                         {"area", q.area},
                                         {"address", q.address},
                                         {"count", q.count},
                                         {"values", a.registers}}));
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

// A write goes to the bus worker of its device (see downlink.hpp for its deadlines), unless it
// is older than the cloud's command_ttl already: from the platform's request time where it gives
// one and the wall clock can be trusted, else from now. The worker looks at its age again when it
// reaches it.
void Session::start_write(Command&& c) {
    const TimePoint now = env_.loop->now();
    if (!env_.submit_write) {
        reply_write(Downlink::refuse(std::move(c), now, "this gateway runs no bus for the device"));
        return;
    }
    const std::int64_t boot_now = core::boot_ms();
    std::int64_t born = boot_now;
    if (c.requested_ms && (!env_.clock_trusted || env_.clock_trusted())) {
        born -= std::max<std::int64_t>(0, core::unix_ms_now() - *c.requested_ms);  // (a clock ahead of ours: now)
    }
    const std::int64_t ttl = cloud_->command_ttl.count();
    if (boot_now - born > ttl) {
        const std::string why = fmt::format(
            "expired: the command was {:.1f} s old when it arrived (command_ttl {:.1f} s); nothing was written",
            static_cast<double>(boot_now - born) / 1000.0, static_cast<double>(ttl) / 1000.0);
        reply_write(Downlink::refuse(std::move(c), now, why, core::WriteJob::Failure::expired));
        return;
    }
    env_.submit_write(downlink_.start(std::move(c), now, profile_->command_deadline(), env_.index, born, ttl));
    conn_.sync();
}

namespace {

const char* audit_result(const CommandResult& r) {
    using F = core::WriteJob::Failure;
    if (r.ok) return "done";
    switch (r.failure) {
        case F::refused:
            return "refused";
        case F::expired:
            return "expired";
        case F::superseded:
            return "superseded";
        default:
            return "failed";
    }
}

std::vector<std::pair<std::string, core::Value>> named(const config::DeviceConfig& d,
                                                       const std::vector<core::PointValue>& values) {
    std::vector<std::pair<std::string, core::Value>> out;
    out.reserve(values.size());
    for (const auto& pv : values) out.emplace_back(d.points[pv.point_index].name, pv.value);
    return out;
}

}  // namespace

void Session::audit(const Downlink::Answer& a, const std::string& asked_by) {
    if (!env_.audit) return;
    const auto& d = info_.device(a.command.device);
    store::AuditEntry e;
    e.at_ms = core::unix_ms_now();
    e.cloud = cloud_->name;
    e.from = asked_by;
    e.requested_ms = a.command.requested_ms;
    e.device = d.name;
    e.asked = named(d, a.command.values);
    e.result = audit_result(a.result);
    if (!a.result.ok) e.reason = a.result.reason;
    e.read_back = named(d, a.result.values);
    audit_append(e);
}

void Session::audit_append(const store::AuditEntry& e) {
    if (env_.audit->append(e) || env_.audit->lost() != 1) return;  // the first loss is logged
    log_->error("write audit log: {}; writes go on, their entries are lost until the disk takes them again",
                env_.audit->problem());
}

// Logged, counted and answered to the platform in its own shape (when it wants an answer).
void Session::reply_write(const Downlink::Answer& a) {
    const auto& r = a.result;
    if (a.command.diag) return answer_read(a);
    count(r.ok ? &SessionCounters::writes_ok : &SessionCounters::writes_failed);
    const auto& d = info_.device(a.command.device);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(env_.loop->now() - a.received).count();
    // (the id is the platform's text: capped and escaped for the log)
    const std::string asked =
        a.command.id.empty() ? a.command.kind : a.command.kind + " id " + core::printable(a.command.id, 64);
    if (r.ok) {
        log_->info("write from cloud {} ({}) to {}: {}: done, read back {} ({} ms)", cloud_->name, asked, d.name,
                   describe_values(d, a.command.values), describe_values(d, r.values), ms);
    } else {
        log_->warn("write from cloud {} ({}) to {}: {}: failed: {} ({} ms)", cloud_->name, asked, d.name,
                   describe_values(d, a.command.values), r.reason, ms);
    }
    Message m = profile_->command_reply(info_, a.command, r);
    if (!m.topic.empty()) control_.push_front(std::move(m));
    audit(a, asked);
}

void Session::write_done(const core::WriteJob& job) {
    auto answer = downlink_.done(job);
    if (!answer) {  // answered by its deadline already
        log_->warn("device {}: a write answered as unconfirmed finished later: {}", info_.name,
                   job.ok ? "it was written and read back" : job.reason);
        return;
    }
    reply_write(*answer);
    flush();
    conn_.sync();
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
    const auto pushed = outflow_.push(std::move(batch), env_.memory_window, env_.store != nullptr);
    if (pushed.samples_dropped > 0) count(&SessionCounters::samples_dropped, pushed.samples_dropped);
    if (pushed.first_drop) {
        log_->warn("device {}: {} batches waiting in memory and no store; dropping the oldest (counted)", info_.name,
                   env_.memory_window);
    }
}

// The platform is told where it shows device state (presence.hpp says when).
void Session::presence(std::uint32_t device, bool online, const std::string& reason) {
    presence_.reason(device, online ? std::string() : reason);
    if (!presence_.change(device, online, conn_.up())) return;
    for (auto& m : profile_->presence(info_, device, online, reason, latest_, next_id_)) {
        control_.push_back(std::move(m));
    }
}

void Session::forget_through(std::int64_t id) {
    outflow_.forget_through(id);
}

std::int64_t Session::oldest_waiting_ms() const {
    std::int64_t oldest = 0;
    auto consider = [&oldest](std::int64_t t) {
        if (t && (!oldest || t < oldest)) oldest = t;
    };
    consider(in_flight_.oldest_ms());
    consider(outflow_.oldest_ms());
    return oldest;
}

// Messages that may go now: room in flight, and a token when the cloud has a rate.
std::size_t Session::sendable() const {
    const int room = std::max(0, cloud_->max_inflight - static_cast<int>(in_flight_.messages()));
    return std::min(static_cast<std::size_t>(room), rate_.available(cloud_->max_rate));
}

bool Session::publish(const Message& m, std::size_t packet) {
    int mid = 0;
    Transport& client = conn_.client();
    std::string stamped;
    const bool restamped = profile_->stamp(info_, m, &stamped);
    const int rc = client.publish(m.topic, restamped ? stamped : m.payload, profile_->qos(), &mid, m.retain);
    const TimePoint now = env_.loop->now();
    // Kept until its answer comes, to be sent again if need be.
    Awaiting* w = m.answer_id.empty() ? nullptr : &answers_.sending(m, packet);
    if (rc != 0) {
        log_->warn("device {}: publish to {} failed: {}", info_.name, m.topic, client.error_text(rc));
        if (w && packet) {  // it goes again
            answers_.again_at(*w, now + std::chrono::seconds(1));
        } else if (w) {
            forget_request(m.answer_id, false);
        }
        return false;
    }
    if (profile_->qos() > 0) {
        in_flight_.sent(mid, packet, m.answer_id);
    } else if (packet != 0 && profile_->confirms_qos0()) {
        in_flight_.sent(mid, packet, m.answer_id);
        barrier_.sent.push_back(mid);
    } else {
        count(&SessionCounters::messages_acked);
        if (w) answers_.delivered(*w, now);
    }
    count(&SessionCounters::messages_sent);
    count(&SessionCounters::samples_sent, m.samples);
    rate_.take(cloud_->max_rate);
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
    const bool acked = profile_->qos() > 0 || profile_->confirms_qos0();
    const std::size_t id =
        p.records.empty() || !acked ? 0 : in_flight_.add_packet(p.messages.size(), std::move(p.records), p.oldest_ms);
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
    if (!conn_.up()) return;
    const TimePoint now = env_.loop->now();
    rate_.refill(now, cloud_->max_rate);
    const std::size_t most_awaiting = std::size_t{4} * static_cast<std::size_t>(cloud_->max_inflight);
    while (sendable() > 0) {
        const bool gated = answers_.gates() > 0 ||
                           std::any_of(control_.begin(), control_.end(), [](const Message& m) { return m.gate; });
        const bool data_waiting = !gated && !profile_->holds_data(info_) && answers_.data() < most_awaiting &&
                                  (answers_.retry_ready() || outflow_.waiting());
        if (!control_.empty() && (control_turn_ || !data_waiting)) {
            const std::int64_t logs_in = control_.front().logs_in;
            if (logs_in >= 0 && presence_.hold_login(static_cast<std::uint32_t>(logs_in))) {
                control_.pop_front();
                continue;
            }
            if (!publish(control_.front(), 0)) break;
            if (logs_in >= 0) presence_.logged_in(static_cast<std::uint32_t>(logs_in));
            control_.pop_front();
            control_turn_ = false;
            continue;
        }
        if (!data_waiting) break;
        control_turn_ = true;
        if (answers_.retry_ready() && send_retry(now)) continue;
        if (env_.store) outflow_.refill(*env_.store, info_.devices, env_.backlog_chunk);
        auto* queue = outflow_.next();
        if (queue == nullptr || !publish_data(*queue)) break;
    }
    if (profile_->confirms_qos0()) confirm_sent();
    conn_.sync();
}

}  // namespace fieldlink::north
