// OneNET (current platform, protocols.md §1-2): the token login shared by both protocols, and
// what the two protocol files (onenet_datapoints.cpp, onenet_thing_model.cpp) share.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "north/profile.hpp"

namespace fieldlink::platforms {

constexpr const char* kOnenetTokenVersion = "2018-10-31";
constexpr std::uint64_t kOnenetMaxPayload = std::uint64_t{256} * 1024;  // protocols.md 1.6: larger payloads disconnect
// Answer codes in OneNET's replies, both ways: 200 success; 100 is the official SDK's "failed"
// (any non-200 code is a failure).
constexpr int kCodeOk = 200;
constexpr int kCodeFailed = 100;

// URL-encodes with exactly OneNET's 8-character table: + space / ? % # & =
std::string onenet_url_encode(std::string_view value);
std::string onenet_device_res(std::string_view product_id, std::string_view device);
std::string onenet_product_res(std::string_view product_id);

struct TokenRequest {
    std::string res;
    std::int64_t expiry = 0;  // Unix seconds
    std::string method = "sha256";
    std::string key_base64;  // device key or product access key, as shown in the console
};

// Returns the token (the MQTT password), or nullopt with `error` saying what is wrong.
std::optional<std::string> onenet_token(const TokenRequest& req, std::string* error);

// Login shared by both OneNET protocols: clientId = device name, username = product id,
// password = token signed with the device key (or the product key).
class OnenetProfile : public north::Profile {
  public:
    using north::Profile::Profile;
    std::optional<north::Credentials> credentials(const north::SessionInfo& s, std::int64_t now_s,
                                                  std::string* error) const override;
    std::chrono::milliseconds reconnect_base() const override { return std::chrono::milliseconds(2000); }
    // OneNET kicks a device that logs in more than 3 times in 5 s (protocols.md, platform limits).
    north::LoginLimit login_limit() const override { return {3, std::chrono::milliseconds(5000)}; }
    const char* credentials_hint() const override { return "the product id, device name, key and token method"; }

  protected:
    // "$sys/{pid}/{device}/"
    std::string prefix(const north::SessionInfo& s) const;
    const std::string& product_of(const config::DeviceConfig& d) const;
    const std::string& signing_key(const config::DeviceConfig& d) const;
    // The token of device `d` (the session's own, or a sub-device's sasToken).
    std::optional<std::string> token_for(const config::DeviceConfig& d, std::int64_t now_s, std::int64_t* expiry,
                                         std::string* error) const;
};

// {"id":"..","code":..,"msg":"..","data":..} (data omitted when empty).
std::string onenet_reply(const std::string& id, int code, const std::string& msg, const std::string& data_json = "");

// Datapoints payload of the first `count` batches (exposed for unit tests): one value per stream
// and second (the newest); `superseded` (optional) counts the values left out.
std::string onenet_dp_payload(const config::DeviceConfig& d, const std::deque<core::SampleBatch>& batches,
                              std::size_t count, std::uint32_t id, std::size_t* superseded = nullptr);

std::unique_ptr<north::Profile> make_onenet_datapoints(const config::CloudConfig& c);
std::unique_ptr<north::Profile> make_onenet_thing_model(const config::CloudConfig& c);

}  // namespace fieldlink::platforms
