// Platform profiles: how a device session logs in, which topic it publishes to and what the
// payload looks like. Sessions, the event loop and the queues are shared by all profiles.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
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

class Profile {
public:
    virtual ~Profile() = default;
    // Computes fresh credentials (called before every connect and reconnect).
    virtual std::optional<Credentials> credentials(const core::DeviceConfig& d, std::int64_t now_s,
                                                   std::string* error) const = 0;
    // Builds messages from waiting batches, consuming at most the batches that fit in one message
    // (or `max_messages` messages); consumed batches are popped from `pending`.
    virtual std::vector<Message> build(const core::DeviceConfig& d, std::deque<core::SampleBatch>& pending,
                                       std::size_t max_messages, std::uint32_t& next_id) const = 0;
    virtual int qos() const { return 1; }
};

std::unique_ptr<Profile> make_profile(const core::CloudConfig& cloud);

// Exposed for unit tests.
std::string onenet_dp_payload(const core::DeviceConfig& d, const std::deque<core::SampleBatch>& batches,
                              std::size_t count, std::uint32_t id);
std::string expand_template(const std::string& tmpl, const core::DeviceConfig& d,
                            const core::SampleBatch& b, const core::PointValue* point);
std::string legacy_dp_type3(const std::string& json);
void append_json_value(std::string& out, const core::Value& v);

}  // namespace fieldlink::north
