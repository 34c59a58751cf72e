// Platform credentials: the OneNET token (protocols.md §1.4) and the DaShi AIoT signature (§4.1).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fieldlink::core {

constexpr const char* kOnenetTokenVersion = "2018-10-31";

// URL-encodes with exactly OneNET's 8-character table: + space / ? % # & =
std::string onenet_url_encode(std::string_view value);
std::string onenet_device_res(std::string_view product_id, std::string_view device);
std::string onenet_product_res(std::string_view product_id);

struct TokenRequest {
    std::string res;
    std::int64_t expiry = 0;  // Unix seconds
    std::string method = "sha256";
    std::string key_base64;   // device key or product access key, as shown in the console
};

// Returns the token (the MQTT password), or nullopt with `error` saying what is wrong.
std::optional<std::string> onenet_token(const TokenRequest& req, std::string* error);

// DaShi AIoT (Aliyun style): lower-case hex HMAC of "clientId{c}deviceId{d}productId{p}timestamp{t}".
std::optional<std::string> aiot_sign(std::string_view client_id, std::string_view device_id,
                                     std::string_view product_id, std::string_view timestamp,
                                     std::string_view secret, std::string_view method);

}  // namespace fieldlink::core
