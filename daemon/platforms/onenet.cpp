// OneNET platform rules and login (protocols.md §1): token auth from the device key or the
// product key, keepalive 10..1800 s, 1 message/s per device, names usable in $sys topics.
#include "platforms/onenet.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "core/crypto.hpp"
#include "core/suggest.hpp"
#include "platforms/json.hpp"
#include "platforms/platform.hpp"

namespace fieldlink::platforms {

std::string onenet_url_encode(std::string_view value) {
    std::string out;
    out.reserve(value.size() + 16);
    for (char c : value) {
        switch (c) {
            case '+':
                out += "%2B";
                break;
            case ' ':
                out += "%20";
                break;
            case '/':
                out += "%2F";
                break;
            case '?':
                out += "%3F";
                break;
            case '%':
                out += "%25";
                break;
            case '#':
                out += "%23";
                break;
            case '&':
                out += "%26";
                break;
            case '=':
                out += "%3D";
                break;
            default:
                out += c;
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
    auto key = core::base64_decode(req.key_base64);
    if (!key) {
        if (error) *error = "the key is not valid Base64; expected the access key as shown in the OneNET console";
        return std::nullopt;
    }
    const std::string et = std::to_string(req.expiry);
    const std::string to_sign = et + "\n" + req.method + "\n" + req.res + "\n" + kOnenetTokenVersion;
    auto digest = core::hmac(req.method, *key, to_sign);
    if (!digest) {
        if (error) *error = "unknown signature method '" + req.method + "'; expected md5, sha1 or sha256";
        return std::nullopt;
    }
    return std::string("version=") + kOnenetTokenVersion + "&res=" + onenet_url_encode(req.res) + "&et=" + et +
           "&method=" + req.method + "&sign=" + onenet_url_encode(core::base64_encode(*digest));
}

std::string onenet_reply(const std::string& id, int code, const std::string& msg, const std::string& data_json) {
    std::string out = R"({"id":)";
    append_json_string(out, id);
    out += fmt::format(R"(,"code":{},"msg":)", code);
    append_json_string(out, msg);
    if (!data_json.empty()) out += R"(,"data":)" + data_json;
    out += '}';
    return out;
}

std::string OnenetProfile::prefix(const north::SessionInfo& s) const {
    return "$sys/" + cloud_.product_id + "/" + s.identity->name + "/";
}

const std::string& OnenetProfile::product_of(const config::DeviceConfig& d) const {
    return d.product_id.empty() ? cloud_.product_id : d.product_id;
}

// The device's own key; else its product's key: the device's product_key when it belongs to
// another product than the cloud's, the cloud's product_key only for the cloud's own product.
const std::string& OnenetProfile::signing_key(const config::DeviceConfig& d) const {
    static const std::string none;
    if (!d.key.empty()) return d.key;
    if (!d.product_key.empty()) return d.product_key;
    return product_of(d) == cloud_.product_id ? cloud_.product_key : none;
}

std::optional<std::string> OnenetProfile::token_for(const config::DeviceConfig& d, std::int64_t now_s,
                                                    std::int64_t* expiry, std::string* error) const {
    TokenRequest t;
    t.res = onenet_device_res(product_of(d), d.name);
    t.expiry = cloud_.token_expiry ? cloud_.token_expiry : now_s + cloud_.token_ttl.count() / 1000;
    t.method = cloud_.token_method;
    t.key_base64 = signing_key(d);
    if (expiry) *expiry = t.expiry;
    return onenet_token(t, error);
}

std::optional<north::Credentials> OnenetProfile::credentials(const north::SessionInfo& s, std::int64_t now_s,
                                                             std::string* error) const {
    std::int64_t expiry = 0;
    auto token = token_for(*s.identity, now_s, &expiry, error);
    if (!token) return std::nullopt;
    return north::Credentials{s.identity->name, cloud_.product_id, *token, expiry,
                              std::nullopt};  // (OneNET refuses a will)
}

namespace {

bool topic_safe(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
}

bool stream_name_ok(const std::string& s) {
    if (s.empty() || s.size() > 30) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || (c == '$' && i == 0)))
            return false;
    }
    return true;
}

class Onenet : public Platform {
  public:
    const char* name() const override { return "onenet"; }
    std::vector<OwnKey> own_keys() const override { return {{"protocol", "datapoints | thing-model"}}; }

    void check_cloud(config::CloudConfig& c, config::Checker& check) const override {
        require(check, c, c.product_id, "product_id");
        if (const auto protocol = protocol_of(c); protocol != "datapoints" && protocol != "thing-model") {
            check.fail(c.mark_of("protocol"), config::cloud_path(c) + ".protocol",
                       "unknown value '" + protocol + "'" +
                           core::did_you_mean(protocol, {"datapoints", "thing-model"}) +
                           "; expected one of: datapoints, thing-model");
        }
        if (c.keepalive < config::Duration{10'000} || c.keepalive > config::Duration{1'800'000}) {
            check.fail(c.mark_of("keepalive"), config::cloud_path(c) + ".keepalive",
                       "OneNET accepts a keepalive of 10s..1800s");
        }
        if (c.max_rate == 0) c.max_rate = 1.0;  // 1 message/s per device
        payload_limit(check, c, kOnenetMaxPayload, kOnenetMaxPayload, "OneNET disconnects on payloads over 256 KB");
        if (c.token_method.empty()) c.token_method = "sha256";
    }

    void check_device(const config::Config& cfg, std::size_t index, config::Checker& check) const override {
        const auto& d = cfg.devices[index];
        const auto& cloud = cfg.clouds[d.cloud_index];
        const std::string path = config::device_path(index);
        if (!topic_safe(d.name)) {
            check.fail(d.mark, path + ".name",
                       "OneNET device names may use only A-Z a-z 0-9 _ -; got '" + d.name + "'");
        }
        const bool other_product = !d.product_id.empty() && d.product_id != cloud.product_id;
        if (d.key.empty() && d.product_key.empty() && (other_product || cloud.product_key.empty())) {
            check.fail(d.mark, path,
                       other_product
                           ? "device '" + d.name + "' of product '" + d.product_id +
                                 "' needs its own 'key' (or key_file), or 'product_key' of product '" + d.product_id +
                                 "', to compute its OneNET token (the cloud's product_key belongs to product '" +
                                 cloud.product_id + "')"
                           : "device '" + d.name + "' needs 'key' (or key_file), or cloud '" + cloud.name +
                                 "' needs 'product_key', to compute its OneNET token");
        }
        for (const auto& p : d.points) {
            if (!stream_name_ok(p.name)) {
                check.fail(p.mark, path + ".points." + p.name,
                           "OneNET datastream names are 1..30 characters of A-Z a-z 0-9 _ .; got '" + p.name + "'");
            }
        }
        if (protocol_of(cloud) == "thing-model") {
            check_thing_model(cfg, index, check);
        } else {
            Platform::check_device(cfg, index, check);
        }
    }

    std::unique_ptr<north::Profile> make_profile(const config::CloudConfig& c) const override {
        return protocol_of(c) == "thing-model" ? make_onenet_thing_model(c) : make_onenet_datapoints(c);
    }
    bool takes_remote_config(const config::CloudConfig& c) const override { return protocol_of(c) == "thing-model"; }
    const char* remote_config_where() const override {
        return "onenet with protocol: thing-model (the service fieldlink_config)";
    }

  private:
    static std::string protocol_of(const config::CloudConfig& c) { return c.option_or("protocol", "datapoints"); }

    // Thing model: at most 100 properties per device in a message; gateway topology (a
    // sub-device names a gateway device of the same cloud; gateways are not nested).
    static void check_thing_model(const config::Config& cfg, std::size_t index, config::Checker& check) {
        const auto& d = cfg.devices[index];
        const std::string path = config::device_path(index);
        if (d.points.size() > 100) {
            check.fail(d.mark, path + ".points",
                       "OneNET's thing model takes at most 100 properties per device in one message; got " +
                           std::to_string(d.points.size()) + " (split the device)");
        }
        if (!d.via_index) return;
        const auto& gw = cfg.devices[*d.via_index];
        if (!gw.gateway) {
            check.fail(d.mark, path + ".via", "'" + d.via + "' is not a device with 'gateway: true'");
        } else if (gw.cloud != d.cloud) {
            check.fail(d.mark, path + ".via", "sub-device and gateway '" + d.via + "' must use the same cloud");
        } else if (d.gateway) {
            check.fail(d.mark, path + ".via", "a gateway cannot itself be carried by another gateway");
        }
    }
};

}  // namespace

const Platform& onenet_platform() {
    static const Onenet p;
    return p;
}

}  // namespace fieldlink::platforms
