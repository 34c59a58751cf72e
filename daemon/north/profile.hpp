// What the north side needs of a platform: a Profile (one per configured cloud) says which MQTT
// sessions the cloud needs, how each logs in, what it subscribes to, which messages it sends on
// connect and for data, and how it answers what the platform sends. Profiles are implemented in
// daemon/platforms/ (one file per platform); sessions, the store and the event loop are shared
// by all. A profile holds no per-session state.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "core/value.hpp"
#include "core/write_job.hpp"

namespace fieldlink::north {

// The message the broker publishes for a client that goes away without DISCONNECT (Sparkplug's
// NDEATH). Platforms that forbid a will (OneNET) leave it unset.
struct Will {
    std::string topic;
    std::string payload;
    int qos = 1;
    bool retain = false;
};

struct Credentials {
    std::string client_id;
    std::string username;        // empty: none
    std::string password;        // secret: never logged
    std::int64_t expires_s = 0;  // Unix seconds after which they must be computed again; 0: never
    std::optional<Will> will;    // set again (or cleared) on every CONNECT
};

struct Message {
    Message() = default;
    Message(std::string t, std::string p, std::size_t n = 0, std::string answer = {})
        : topic(std::move(t)), payload(std::move(p)), samples(n), answer_id(std::move(answer)) {}

    std::string topic;
    std::string payload;
    std::size_t samples = 0;  // values carried, for counters
    // Set when the platform answers this message with a result naming this id (OneNET thing
    // model /reply, datapoints accepted|rejected, DaShi /response): the message is finished by
    // that answer, not by PUBACK. Empty: PUBACK finishes it.
    std::string answer_id;
    // On-connect requests (answer_id set): data waits while a `gate` request is unanswered (the
    // gateway's topology must be known before sub-devices' data goes); `then` is sent when the
    // platform accepts it, `otherwise` when it refuses or does not answer.
    bool gate = false;
    // The device (config index) this message logs in, or -1: not sent while that device's unit
    // does not answer.
    std::int64_t logs_in = -1;
    bool retain = false;  // kept by the broker for later subscribers (a device's status)
    std::vector<Message> then;
    std::vector<Message> otherwise;
};

// What the platform said of one of our messages.
struct Answer {
    enum class Outcome {
        accepted,   // done
        transient,  // busy, rate limited, internal error: send it again later
        permanent,  // refused for what it is (format, unknown property): sending it again cannot help
        unknown     // a code the documents do not classify: retried a few times, then refused
    };
    std::string id;
    Outcome outcome = Outcome::accepted;
    std::string reason;  // "code 309 identifier not exist": the platform's code and message
    // Sent when the answer accepts a request of ours that awaits it (e.g. what the topology the
    // platform returned still needs); ignored for an answer nobody awaits.
    std::vector<Message> follow_ups;
};

// A stored record: (device index in the configuration, outbox record id).
struct RecordRef {
    std::uint32_t device = 0;
    std::int64_t id = 0;
    bool operator==(const RecordRef& o) const { return device == o.device && id == o.id; }
};

// One unit of acknowledgement: the messages built from some waiting batches, and exactly the
// stored records those batches were. The records are deleted from the outbox when every
// message of the packet is acknowledged (most packets hold one message; a per-point template
// makes several of one batch).
struct Packet {
    std::vector<Message> messages;
    std::vector<RecordRef> records;
    std::size_t samples = 0;
    std::size_t superseded = 0;  // values left out: another value of the same stream and second went
    std::int64_t oldest_ms = 0;  // acquisition time of its oldest batch
};

// Moves the oldest waiting batch into `p` (its record and samples) and returns it.
core::SampleBatch take_front(std::deque<core::SampleBatch>& pending, Packet& p);
// Moves the batches at `indices` (ascending) into `p`, keeping the others in order.
void take_at(std::deque<core::SampleBatch>& pending, const std::vector<std::size_t>& indices, Packet& p);

// What a platform keeps per session from one message to the next (Sparkplug's seq and bdSeq):
// made by the profile with the session's plan, kept when a reload keeps the session.
struct PlatformState {
    virtual ~PlatformState() = default;
};

// What a profile knows about the session it serves.
struct SessionInfo {
    const config::Config* cfg = nullptr;
    const config::CloudConfig* cloud = nullptr;
    // The device whose credentials log in; nullptr when the cloud's own credentials do
    // (ThingsBoard gateway).
    const config::DeviceConfig* identity = nullptr;
    std::vector<std::uint32_t> devices;  // every device whose data this session carries
    std::string name;                    // for logs
    // The platform's own state of this session (null: it keeps none). A pointer to something
    // mutable: the profile's calls take the SessionInfo as const and change only this.
    std::shared_ptr<PlatformState> state;
    // The session carrying the cloud's configuration and diagnostics channel (the first of a
    // cloud with remote_config or diagnostics): it subscribes to them, reports what became of a
    // push and answers diagnostics.
    bool channel = false;

    const config::DeviceConfig& device(std::uint32_t index) const { return cfg->devices[index]; }
};

// Latest decoded value of every point, per device index (answers "property get").
using LatestValues = std::unordered_map<std::uint32_t, std::vector<std::optional<core::Value>>>;

// A read-only diagnostics request of the platform (a cloud with `diagnostics: true`): the raw
// registers of a configured device's unit, the last warning lines, the bus statistics.
struct DiagRequest {
    std::string what;    // "read_registers", "log", "bus_stats"
    std::string device;  // read_registers: a configured device's name
    std::string area;    // ... holding, input, coil, discrete
    std::int64_t address = -1;
    std::int64_t count = 0;
    std::int64_t lines = 50;  // log: the last so many (at most 50 are kept)
    std::string id;           // the platform's request id
    std::string reply_topic;  // where the answer goes
    std::string problem;      // set when the request could not be understood: refused
};

// A write the platform asked for, already checked against the points (config::accept_write):
// carried out by the device's bus worker, then answered with Profile::command_reply.
struct Command {
    std::uint32_t device = 0;              // index into Config::devices
    std::vector<core::PointValue> values;  // in the order they are written
    std::string kind;                      // "property/set", "rpc", ... (for logs)
    std::string id;                        // the platform's request id
    std::string reply_topic;               // empty: the platform expects no reply (attribute updates)
    std::string detail;                    // what the reply needs again (a service identifier, ...)
    // When the platform issued it (Unix ms), where the platform says: its age counts against
    // the cloud's command_ttl from then, not from its arrival.
    std::optional<std::int64_t> requested_ms;
    // It sets a state (a property, an attribute, a metric): a newer one for the same points
    // replaces it while it waits for the bus. Actions (RPC, services, command names) never do.
    bool sets_state = false;
    // Set: not a write but a diagnostics read of raw registers (raw_* below); answered with
    // Profile::diagnostics_reply, not command_reply, and not audited as a write.
    std::optional<DiagRequest> diag;
    std::uint8_t raw_area = 0;
    std::uint16_t raw_address = 0;
    std::uint16_t raw_count = 0;
};

// How a command ended: written and read back (ok), or why not.
struct CommandResult {
    bool ok = false;
    std::string reason;
    std::vector<core::PointValue> values;  // read back from the device
    core::WriteJob::Failure failure = core::WriteJob::Failure::none;
};

// A configuration the platform pushed on a cloud's channel (`remote_config: true`): checked,
// written, applied and reported by the daemon (app.cpp).
struct ConfigPush {
    std::string file;     // "" : the main file; else "conf.d/NAME.yaml"
    std::string text;     // the YAML
    std::string id;       // the platform's request id, echoed in the report ("" : none)
    std::string problem;  // set when the message could not be understood: refused and reported
    // Where the platform awaits an answer to the request that carried it (OneNET's service
    // invoke_reply), sent with the first report; "" : none.
    std::string reply_topic;
};

// What became of the last pushed configuration, reported on the channel (and again on every
// connection of the channel's session).
struct ConfigReport {
    std::string id;       // the push's request id
    std::string file;     // "config.yaml" or "conf.d/NAME.yaml"
    std::string version;  // "sha256:<hex>" of the pushed text
    // "verifying" (written and reloaded, waiting for the cloud to connect again), "applied",
    // "unchanged", "refused" (nothing written or restarted), "rolled back".
    std::string result;
    std::string error;        // file:line:col: path: message lines, or why it was rolled back
    std::string running;      // "sha256:<hex>" of the configuration running now (main file + conf.d)
    std::int64_t at_ms = 0;   // when the result was reached (Unix ms)
    std::string reply_topic;  // the push's ConfigPush::reply_topic, in its first report only
    bool empty() const { return result.empty(); }
};

// Result of handling one message from the platform.
struct Inbound {
    std::vector<Message> replies;
    std::string kind;      // what it was: "property/set", "post/reply", "rpc", ...
    std::string problem;   // set when malformed, unknown, refused or an error reply: logged once per kind
    bool command = false;  // a platform request that got an answer
    bool refused = false;  // ... answered with a failure code
    bool malformed = false;
    bool error_reply = false;  // the platform answered one of our requests with an error code
    // The platform's answer to one of our requests (the session matches it by id).
    std::optional<Answer> answer;
    // A write to carry out before replying (the reply comes from command_reply).
    std::optional<Command> write;
    // The session is to end its connection (after the platform's farewell) and make a new one
    // (Sparkplug: the primary host went offline).
    bool restart = false;
    // A configuration pushed on the cloud's channel (only from a channel session).
    std::optional<ConfigPush> config_push;
    // A diagnostics request (answered by the session: refused unless the cloud enables them).
    std::optional<DiagRequest> diagnostics;
};

// How often a device may log in: at most `logins` connection attempts within `window` (a platform
// that kicks or bans a device logging in more often).
struct LoginLimit {
    std::size_t logins = 3;
    std::chrono::milliseconds window{5000};
};

class Profile {
  public:
    explicit Profile(const config::CloudConfig& cloud) : cloud_(cloud) {}
    virtual ~Profile() = default;
    Profile(const Profile&) = delete;
    Profile& operator=(const Profile&) = delete;

    const config::CloudConfig& cloud() const { return cloud_; }
    // Bytes one message's payload may take (the cloud's max_payload_size; unlimited when unset).
    std::size_t max_payload() const {
        return cloud_.max_payload_size ? static_cast<std::size_t>(cloud_.max_payload_size) : SIZE_MAX;
    }

    // The sessions this cloud needs and the devices each carries (`cloud_index` is this cloud's
    // index in cfg.clouds). Default: one session per device, logging in as that device.
    virtual std::vector<SessionInfo> sessions(const config::Config& cfg, std::size_t cloud_index) const;
    // A new session's PlatformState (null: the platform keeps none).
    virtual std::shared_ptr<PlatformState> make_state() const { return nullptr; }
    // Fresh credentials, computed before a connect when the previous ones expired.
    virtual std::optional<Credentials> credentials(const SessionInfo& s, std::int64_t now_s,
                                                   std::string* error) const = 0;
    virtual std::vector<std::string> subscriptions(const SessionInfo&) const { return {}; }
    // Messages to send right after CONNACK, before any data (sub-device login, topology, births
    // carrying the latest values, ...).
    virtual std::vector<Message> on_connect(const SessionInfo&, const LatestValues& /*latest*/,
                                            std::uint32_t& /*next_id*/) const {
        return {};
    }
    // Builds at most `max_packets` packets from the oldest waiting batches, taking (with
    // take_front) exactly the batches each packet carries.
    virtual std::vector<Packet> build(const SessionInfo& s, std::deque<core::SampleBatch>& pending,
                                      std::size_t max_packets, std::uint32_t& next_id) const = 0;
    // A message from the platform; `next_id` numbers the requests it leads to (a gateway's topology
    // change: sub-devices to add again).
    virtual Inbound on_message(const SessionInfo&, const std::string& topic, const std::string& payload,
                               const LatestValues&, std::uint32_t& next_id) const;
    Inbound on_message(const SessionInfo& s, const std::string& topic, const std::string& payload,
                       const LatestValues& latest) const {
        std::uint32_t next_id = 1;
        return on_message(s, topic, payload, latest, next_id);
    }
    // Messages telling the platform that a device's unit stopped answering (online = false) or
    // answers again, where the platform shows device state (a gateway's sub-devices). Default:
    // none.
    // `latest` holds the values read before (Sparkplug's DBIRTH carries them).
    // True: after each CONNECT the platform is told of every device whose unit does not answer
    // (presence(.., false, ..)); its on-connect messages say the others are online.
    virtual bool presence_on_connect() const { return false; }
    virtual std::vector<Message> presence(const SessionInfo&, std::uint32_t /*device*/, bool /*online*/,
                                          const std::string& /*reason*/, const LatestValues& /*latest*/,
                                          std::uint32_t& /*next_id*/) const {
        return {};
    }
    // Ends a platform's write request: when `ok`, `c` goes to `device`'s bus worker
    // (Inbound::write); otherwise the platform's failure reply (command_reply, where the platform
    // has one) goes at once and the problem is logged as "<what> refused: <why>".
    Inbound write_or_refuse(const SessionInfo& s, Inbound in, Command c, const config::DeviceConfig* device, bool ok,
                            const std::string& what, const std::string& why) const;
    // The platform's reply to a write (success with the values read back, or failure with the
    // reason); a message with an empty topic sends nothing.
    virtual Message command_reply(const SessionInfo&, const Command&, const CommandResult&) const { return {}; }
    // How long the platform waits for a command's reply (OneNET: 5 s for property set and
    // synchronous services); the reply must go before that.
    virtual std::chrono::milliseconds command_deadline() const { return std::chrono::milliseconds(5000); }
    // The answer to a diagnostics request: `ok` with `result` (a JSON value as text), or the
    // refusal or failure `result` (plain text). An empty topic sends nothing.
    virtual Message diagnostics_reply(const SessionInfo&, const DiagRequest&, bool /*ok*/,
                                      const std::string& /*result*/) const {
        return {};
    }
    // Tells the platform what became of a pushed configuration (on a channel session; sent again
    // after every CONNECT); `next_id` numbers its requests. None by default.
    virtual std::vector<Message> config_report(const SessionInfo&, const ConfigReport&,
                                               std::uint32_t& /*next_id*/) const {
        return {};
    }
    virtual int qos() const { return 1; }
    virtual int downlink_qos() const { return 0; }
    // The platform's login-rate rule, honoured across restarts (the store keeps recent logins).
    virtual LoginLimit login_limit() const = 0;
    // The will of the next CONNECT, asked before each one (Sparkplug's NDEATH, whose bdSeq counts
    // the connections). None by default.
    virtual std::optional<Will> will(const SessionInfo&) const { return std::nullopt; }
    // The payload `m` goes with, numbered in sending order (Sparkplug's seq): false to send it as
    // it is. Asked for every message just before it is handed to the client.
    virtual bool stamp(const SessionInfo&, const Message& /*m*/, std::string* /*payload*/) const { return false; }
    // Published just before a clean disconnect (Sparkplug's NDEATH: a stop or a restart). None
    // by default.
    virtual std::optional<Will> farewell(const SessionInfo&) const { return std::nullopt; }
    // True while data must wait in the outbox (Sparkplug: the primary host is offline, or the
    // births have not gone yet).
    virtual bool holds_data(const SessionInfo&) const { return false; }
    // With qos() 0: stored data is confirmed by a round trip the broker answers after it (an
    // UNSUBSCRIBE's UNSUBACK: a server handles one client's packets in order), and what the
    // connection loses unconfirmed goes again. Sparkplug sends data at QoS 0 and loses none.
    virtual bool confirms_qos0() const { return false; }
    // What to check when the broker refuses this platform's credentials (CONNACK 4 or 5), for
    // the log line.
    virtual const char* credentials_hint() const { return "the user name, password and client id"; }
    // First reconnect delay (doubling, full jitter, capped at 60 s).
    virtual std::chrono::milliseconds reconnect_base() const { return std::chrono::milliseconds(1000); }

  protected:
    // One session for the whole cloud, carrying every device of it and logging in with the
    // cloud's own credentials (ThingsBoard's gateway, a Sparkplug edge node); none without devices.
    std::vector<SessionInfo> one_session(const config::Config& cfg, std::size_t cloud_index) const;
    Credentials cloud_credentials() const {
        return Credentials{cloud_.client_id, cloud_.username, cloud_.password, 0, std::nullopt};
    }

    const config::CloudConfig& cloud_;
};

// The largest request id: sizing a payload with it, its size never grows with the real id.
inline constexpr std::uint32_t kLongestMessageId = 0x7FFFFFFF;

// Takes the next request id of a session: 1 .. 2^31-1 (OneNET's ids are 32-bit signed / at most
// 13 digits), then wraps to 1.
inline std::uint32_t take_message_id(std::uint32_t& next_id) {
    const std::uint32_t id = next_id;
    next_id = next_id >= kLongestMessageId ? 1 : next_id + 1;
    return id;
}

// Byte limits (cloud max_payload_size). `render(n)` builds the payload of a message carrying the
// first n of the batches considered; the result is a count n <= most whose payload fits `limit`
// and fills at least 15/16 of it when more batches wait (guessed from the bytes per batch), with
// that payload in `payload`. It is at least 1: when one batch alone is too large, the caller
// splits its values (split_values).
std::size_t fit_batches(std::size_t most, std::size_t limit, const std::function<std::string(std::size_t)>& render,
                        std::string& payload);

// One batch's values in consecutive parts, each a batch of its own (same device, time and
// record) whose payload `render(part)` fits `limit`. A single value is always a part.
std::vector<core::SampleBatch> split_values(const core::SampleBatch& b, std::size_t limit,
                                            const std::function<std::string(const core::SampleBatch&)>& render);

}  // namespace fieldlink::north
