// DaShi AIoT (Aliyun style, protocols.md §4): the login signature.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace fieldlink::platforms {

// Lower-case hex HMAC of "clientId{c}deviceId{d}productId{p}timestamp{t}" with the device secret.
std::optional<std::string> aiot_sign(std::string_view client_id, std::string_view device_id,
                                     std::string_view product_id, std::string_view timestamp, std::string_view secret,
                                     std::string_view method);

}  // namespace fieldlink::platforms
