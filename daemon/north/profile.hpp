// Platform profiles: how a session logs in, what it subscribes to, which messages it sends on
// connect and for data, and how it answers what the platform sends. Sessions, the event loop and
// the queues are shared by all profiles; a profile holds no per-session state.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/config.hpp"
#include "core/value.hpp"

namespace fieldlink::north {

struct Credentials {
    std::string client_id;
    std::string username;  // empty: none
    std::string password;  // secret: never logged
};

struct Message {
    std::string topic;
    std::string payload;
    std::size_t samples = 0;  // values carried, for counters
};

// What a profile knows about the session it serves.
struct SessionInfo {
    const core::Config* cfg = nullptr;
    const core::CloudConfig* cloud = nullptr;
    // The device whose credentials log in; nullptr when the cloud's own credentials do
    // (ThingsBoard gateway).
    const core::DeviceConfig* identity = nullptr;
    std::vector<std::uint32_t> devices;  // every device whose data this session carries
    std::string name;                    // for logs

    const core::DeviceConfig& device(std::uint32_t index) const { return cfg->devices[index]; }
};

// Latest decoded value of every point, per device index (answers "property get").
using LatestValues = std::unordered_map<std::uint32_t, std::vector<std::optional<core::Value>>>;

// Result of handling one message from the platform.
struct Inbound {
    std::vector<Message> replies;
    std::string kind;     // what it was: "property/set", "post/reply", "rpc", ...
    std::string problem;  // set when malformed, unknown, refused or an error reply: logged once per kind
    bool command = false; // a platform request that got an answer
    bool refused = false; // ... answered with a failure code
    bool malformed = false;
    bool error_reply = false;  // the platform answered one of our requests with an error code
};

class Profile {
public:
    virtual ~Profile() = default;
    // Fresh credentials, computed before every connect and reconnect.
    virtual std::optional<Credentials> credentials(const SessionInfo& s, std::int64_t now_s,
                                                   std::string* error) const = 0;
    virtual std::vector<std::string> subscriptions(const SessionInfo&) const { return {}; }
    // Messages to send right after CONNACK, before any data (sub-device login, topology, ...).
    virtual std::vector<Message> on_connect(const SessionInfo&, std::uint32_t& /*next_id*/) const { return {}; }
    // Builds at most `max_messages` messages from the oldest waiting batches, popping what it used.
    virtual std::vector<Message> build(const SessionInfo& s, std::deque<core::SampleBatch>& pending,
                                       std::size_t max_messages, std::uint32_t& next_id) const = 0;
    virtual Inbound on_message(const SessionInfo&, const std::string& /*topic*/, const std::string& /*payload*/,
                               const LatestValues&) const {
        Inbound in;
        in.kind = "unexpected";
        in.problem = "message on a topic this platform does not use";
        return in;
    }
    virtual int qos() const { return 1; }
    virtual int downlink_qos() const { return 0; }
};

std::unique_ptr<Profile> make_profile(const core::CloudConfig& cloud);

// Takes the next request id of a session: 1 .. 2^31-1 (OneNET's ids are 32-bit signed / at most
// 13 digits), then wraps to 1.
inline std::uint32_t take_message_id(std::uint32_t& next_id) {
    const std::uint32_t id = next_id;
    next_id = next_id >= 0x7FFFFFFFu ? 1 : next_id + 1;
    return id;
}

// Keeps every message far below platform limits (OneNET: 256 KB): a message carries at most this
// many values (about 50 bytes each in JSON), and always at least one sample set.
constexpr std::size_t kMaxValuesPerMessage = 3000;

// How many of the oldest `limit` batches fit the value budget (at least 1 when any wait).
inline std::size_t batches_within_budget(const std::deque<core::SampleBatch>& pending, std::size_t limit) {
    std::size_t n = 0, values = 0;
    for (const auto& b : pending) {
        if (n == limit || (n > 0 && values + b.values.size() > kMaxValuesPerMessage)) break;
        values += b.values.size();
        ++n;
    }
    return n;
}

// Shared JSON writing helpers (also used by the unit tests).
void append_json_value(std::string& out, const core::Value& v);
void append_json_string(std::string& out, const std::string& s);

// Exposed for unit tests.
std::string onenet_dp_payload(const core::DeviceConfig& d, const std::deque<core::SampleBatch>& batches,
                              std::size_t count, std::uint32_t id);
std::string expand_template(const std::string& tmpl, const core::DeviceConfig& d,
                            const core::SampleBatch& b, const core::PointValue* point);
std::string legacy_dp_type3(const std::string& json);

// Per-platform factories (profile_*.cpp).
std::unique_ptr<Profile> make_onenet_datapoints(const core::CloudConfig& c);
std::unique_ptr<Profile> make_onenet_thing_model(const core::CloudConfig& c);
std::unique_ptr<Profile> make_onenet_legacy(const core::CloudConfig& c);
std::unique_ptr<Profile> make_aiot(const core::CloudConfig& c);
std::unique_ptr<Profile> make_thingsboard(const core::CloudConfig& c);
std::unique_ptr<Profile> make_mqtt_template(const core::CloudConfig& c);

}  // namespace fieldlink::north
