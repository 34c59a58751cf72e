#include "credentials.hpp"

#include "crypto.hpp"

namespace fieldlink::core {

std::string onenet_url_encode(std::string_view value) {
    std::string out;
    out.reserve(value.size() + 16);
    for (char c : value) {
        switch (c) {
            case '+': out += "%2B"; break;
            case ' ': out += "%20"; break;
            case '/': out += "%2F"; break;
            case '?': out += "%3F"; break;
            case '%': out += "%25"; break;
            case '#': out += "%23"; break;
            case '&': out += "%26"; break;
            case '=': out += "%3D"; break;
            default: out += c;
        }
    }
    return out;
}

std::string onenet_device_res(std::string_view product_id, std::string_view device) {
    return "products/" + std::string(product_id) + "/devices/" + std::string(device);
}

std::string onenet_product_res(std::string_view product_id) {
    return "products/" + std::string(product_id);
}

std::optional<std::string> onenet_token(const TokenRequest& req, std::string* error) {
    auto key = base64_decode(req.key_base64);
    if (!key) {
        if (error) *error = "the key is not valid Base64; expected the access key as shown in the OneNET console";
        return std::nullopt;
    }
    const std::string et = std::to_string(req.expiry);
    const std::string to_sign = et + "\n" + req.method + "\n" + req.res + "\n" + kOnenetTokenVersion;
    auto digest = hmac(req.method, *key, to_sign);
    if (!digest) {
        if (error) *error = "unknown signature method '" + req.method + "'; expected md5, sha1 or sha256";
        return std::nullopt;
    }
    return std::string("version=") + kOnenetTokenVersion + "&res=" + onenet_url_encode(req.res) +
           "&et=" + et + "&method=" + req.method + "&sign=" + onenet_url_encode(base64_encode(*digest));
}

std::optional<std::string> aiot_sign(std::string_view client_id, std::string_view device_id,
                                     std::string_view product_id, std::string_view timestamp,
                                     std::string_view secret, std::string_view method) {
    std::string content = "clientId" + std::string(client_id) + "deviceId" + std::string(device_id) +
                          "productId" + std::string(product_id) + "timestamp" + std::string(timestamp);
    auto digest = hmac(method, secret, content);
    if (!digest) return std::nullopt;
    return hex_lower(*digest);
}

}  // namespace fieldlink::core
