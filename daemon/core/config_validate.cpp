// Cross-field and cross-section rules that the per-key tables cannot express.
#include <algorithm>
#include <cctype>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include "config.hpp"

namespace fieldlink::core {
namespace {

class Checker {
public:
    explicit Checker(std::vector<ConfigError>& errors) : errors_(errors) {}
    void fail(const Mark& m, const std::string& path, const std::string& msg) {
        errors_.push_back(ConfigError{m, path, msg});
    }

private:
    std::vector<ConfigError>& errors_;
};

bool topic_safe(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
}

bool stream_name_ok(const std::string& s) {
    if (s.empty() || s.size() > 30) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' ||
                  (c == '$' && i == 0);
        if (!ok) return false;
    }
    return true;
}

template <typename T>
std::string names_of(const std::vector<T>& v) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ", ") + x.name;
    return out.empty() ? "(none)" : out;
}

template <typename T>
std::optional<std::size_t> find_named(const std::vector<T>& v, const std::string& name) {
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i].name == name) return i;
    }
    return std::nullopt;
}

void check_point(Checker& c, const std::string& path, const PointConfig& p, const CloudConfig* cloud) {
    const std::string at = path + ".points." + p.name;
    if (is_bit_area(p.area) && p.type != DataType::boolean) {
        c.fail(p.mark, at, std::string("type ") + to_string(p.type) + " does not fit area " +
                               to_string(p.area) + ", which holds single bits; expected type bool "
                               "(or area holding/input for a " + to_string(p.type) + ")");
        return;
    }
    if (p.type == DataType::string && p.length == 0) {
        c.fail(p.mark, at, "type string needs 'length' (registers, 1..125, two characters each)");
        return;
    }
    if (p.type != DataType::string && p.length != 0) {
        c.fail(p.mark, at, "'length' applies to type string only");
    }
    if (p.bit >= 0 && (is_bit_area(p.area) || p.type != DataType::boolean)) {
        c.fail(p.mark, at, "'bit' selects one bit of a register; expected type bool on area holding or input");
    }
    if (p.writable && (p.area == Area::discrete || p.area == Area::input)) {
        c.fail(p.mark, at, std::string("area ") + to_string(p.area) +
                               " is read-only; only coil and holding points can be writable");
    }
    if ((p.scale != 1.0 || p.offset != 0.0) &&
        (p.type == DataType::boolean || p.type == DataType::string)) {
        c.fail(p.mark, at, std::string("scale/offset apply to numeric types, not ") + to_string(p.type));
    }
    const long end = static_cast<long>(p.address) + p.count() - 1;
    if (end > 65535) {
        c.fail(p.mark, at, "address " + std::to_string(p.address) + " plus " +
                               std::to_string(p.count()) + " registers ends at " + std::to_string(end) +
                               ", past the last 0-based protocol address 65535");
    }
    if (cloud && cloud->platform == Platform::onenet && !stream_name_ok(p.name)) {
        c.fail(p.mark, at, "OneNET datastream names are 1..30 characters of A-Z a-z 0-9 _ .; got '" +
                               p.name + "'");
    }
}

void check_device(Checker& c, Config& cfg, std::size_t index) {
    DeviceConfig& d = cfg.devices[index];
    const std::string path = "devices[" + std::to_string(index) + "]";
    const CloudConfig* cloud = nullptr;
    if (auto ci = find_named(cfg.clouds, d.cloud)) {
        d.cloud_index = *ci;
        cloud = &cfg.clouds[*ci];
    } else {
        c.fail(d.mark, path + ".cloud", "cloud '" + d.cloud + "' is not defined; defined clouds: " + names_of(cfg.clouds));
    }
    if (auto bi = find_named(cfg.buses, d.bus)) {
        d.bus_index = *bi;
        const BusConfig& bus = cfg.buses[*bi];
        if (bus.driver == "modbus-rtu" && (d.unit < 1 || d.unit > 247)) {
            c.fail(d.mark, path + ".unit", "unit " + std::to_string(d.unit) +
                                               " is out of range for a serial line; expected 1..247");
        }
    } else {
        c.fail(d.mark, path + ".bus", "bus '" + d.bus + "' is not defined; defined buses: " + names_of(cfg.buses));
    }
    if (cloud && cloud->platform == Platform::onenet) {
        if (!topic_safe(d.name)) {
            c.fail(d.mark, path + ".name", "OneNET device names may use only A-Z a-z 0-9 _ -; got '" + d.name + "'");
        }
        if (d.key.empty() && cloud->product_key.empty()) {
            c.fail(d.mark, path, "device '" + d.name + "' needs 'key' (or key_file), or cloud '" +
                                     cloud->name + "' needs 'product_key', to compute its OneNET token");
        }
    }
    if (cloud && cloud->platform == Platform::onenet_legacy) {
        const bool numeric = !d.device_id.empty() &&
                             std::all_of(d.device_id.begin(), d.device_id.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
        if (!numeric) {
            c.fail(d.mark, path + ".device_id", "OneNET legacy needs 'device_id': the numeric device id the platform assigned (the MQTT client id)");
        }
        if (d.key.empty() && cloud->password.empty()) {
            c.fail(d.mark, path, "device '" + d.name + "' needs 'key' (its auth_info), or cloud '" + cloud->name +
                                     "' needs 'password' (an API key)");
        }
    }
    if (cloud && cloud->platform == Platform::aiot && d.key.empty()) {
        c.fail(d.mark, path, "device '" + d.name + "' needs 'key' (its deviceSecret) to sign the DaShi login");
    }
    if (d.points.empty()) c.fail(d.mark, path + ".points", "expected at least one point");
    if (cloud && cloud->platform == Platform::onenet && cloud->protocol == OnenetProtocol::thing_model &&
        d.points.size() > 100) {
        c.fail(d.mark, path + ".points", "OneNET's thing model takes at most 100 properties per device in one message; got " +
                                             std::to_string(d.points.size()) + " (split the device)");
    }
    std::map<std::string, const PointConfig*> seen;
    for (const auto& p : d.points) {
        if (auto it = seen.find(p.name); it != seen.end()) {
            c.fail(p.mark, path + ".points", "duplicate point name '" + p.name + "' (first defined at line " +
                                                 std::to_string(it->second->mark.line) + ")");
        } else {
            seen.emplace(p.name, &p);
        }
        check_point(c, path, p, cloud);
    }
}

void require(Checker& c, const CloudConfig& cl, const std::string& value, const char* key) {
    if (value.empty()) {
        c.fail(cl.mark, "clouds." + cl.name, std::string("missing required key '") + key + "' for platform " +
                                                 to_string(cl.platform));
    }
}

void check_cloud(Checker& c, CloudConfig& cl) {
    const std::string path = "clouds." + cl.name;
    switch (cl.platform) {
        case Platform::onenet:
            require(c, cl, cl.product_id, "product_id");
            if (cl.keepalive < Duration{10'000} || cl.keepalive > Duration{1'800'000}) {
                c.fail(cl.mark, path + ".keepalive", "OneNET accepts a keepalive of 10s..1800s");
            }
            if (cl.max_rate == 0) cl.max_rate = 1.0;  // OneNET: 1 message/s per device
            if (cl.token_method.empty()) cl.token_method = "sha256";
            break;
        case Platform::onenet_legacy:
            require(c, cl, cl.product_id, "product_id");
            if (cl.keepalive < Duration{120'000}) {
                c.fail(cl.mark, path + ".keepalive", "OneNET legacy MQTT expects a keepalive of at least 120s");
            }
            if (cl.max_rate == 0) cl.max_rate = 1.0;
            break;
        case Platform::aiot:
            require(c, cl, cl.product_id, "product_id");
            if (cl.token_method.empty()) cl.token_method = "sha1";
            break;
        case Platform::thingsboard:
            require(c, cl, cl.username, "username");  // the gateway device's access token
            if (cl.client_id == "{device}") cl.client_id = "fieldlink-gateway";
            break;
        case Platform::mqtt: break;
    }
    if (cl.protocol == OnenetProtocol::thing_model && cl.platform != Platform::onenet) {
        c.fail(cl.mark, path + ".protocol", "'protocol' applies to platform onenet only");
    }
    if (cl.port == 0) cl.port = cl.platform == Platform::onenet_legacy ? 6002 : cl.tls ? 8883 : 1883;
    if (cl.tls && cl.tls->cert_file.empty() != cl.tls->key_file.empty()) {
        c.fail(cl.mark, path + ".tls", "cert_file and key_file go together (client certificate)");
    }
}

// OneNET gateway topology: `via` names a gateway device of the same thing-model cloud.
void check_gateway_links(Checker& c, Config& cfg) {
    for (std::size_t i = 0; i < cfg.devices.size(); ++i) {
        DeviceConfig& d = cfg.devices[i];
        const std::string path = "devices[" + std::to_string(i) + "]";
        const CloudConfig& cloud = cfg.clouds[d.cloud_index];
        const bool thing_model = cloud.platform == Platform::onenet && cloud.protocol == OnenetProtocol::thing_model;
        if (d.gateway && !thing_model) {
            c.fail(d.mark, path + ".gateway", "gateway devices need a cloud with platform onenet and protocol thing-model");
        }
        if (d.via.empty()) continue;
        auto gi = find_named(cfg.devices, d.via);
        if (!gi || !cfg.devices[*gi].gateway) {
            c.fail(d.mark, path + ".via", "'" + d.via + "' is not a device with 'gateway: true'");
            continue;
        }
        if (cfg.devices[*gi].cloud != d.cloud) {
            c.fail(d.mark, path + ".via", "sub-device and gateway '" + d.via + "' must use the same cloud");
            continue;
        }
        if (d.gateway) c.fail(d.mark, path + ".via", "a gateway cannot itself be carried by another gateway");
        d.via_index = *gi;
    }
}

}  // namespace

const char* to_string(Platform p) {
    switch (p) {
        case Platform::onenet: return "onenet";
        case Platform::onenet_legacy: return "onenet-legacy";
        case Platform::aiot: return "aiot";
        case Platform::thingsboard: return "thingsboard";
        case Platform::mqtt: return "mqtt";
    }
    return "?";
}

void validate_config(Config& cfg, std::vector<ConfigError>& errors) {
    Checker c(errors);
    const std::size_t errors_before = errors.size();
    for (auto& cl : cfg.clouds) {
        check_cloud(c, cl);
        if (cl.qos == 0 && cfg.gateway.store_on_disk) {
            c.fail(cl.mark, "clouds." + cl.name + ".qos", "qos 0 gets no acknowledgement, so stored data would be deleted "
                                                          "unconfirmed; use qos 1, or gateway.store: memory");
        }
    }
    std::map<std::string, std::size_t> names;
    for (std::size_t i = 0; i < cfg.devices.size(); ++i) {
        const auto& d = cfg.devices[i];
        if (auto it = names.find(d.name); it != names.end()) {
            c.fail(d.mark, "devices[" + std::to_string(i) + "].name",
                   "duplicate device name '" + d.name + "' (first defined at line " +
                       std::to_string(cfg.devices[it->second].mark.line) + ")");
        } else {
            names.emplace(d.name, i);
        }
        check_device(c, cfg, i);
    }
    if (errors_before == errors.size()) check_gateway_links(c, cfg);
}

}  // namespace fieldlink::core
