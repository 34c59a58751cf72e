// Cross-field and cross-section rules that the per-key tables cannot express.
#include <algorithm>
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
    if (d.points.empty()) c.fail(d.mark, path + ".points", "expected at least one point");
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

void check_cloud(Checker& c, CloudConfig& cl) {
    const std::string path = "clouds." + cl.name;
    switch (cl.platform) {
        case Platform::onenet:
            if (cl.protocol != OnenetProtocol::datapoints) {
                c.fail(cl.mark, path + ".protocol", "protocol thing-model is not implemented yet; supported: datapoints");
            }
            if (cl.product_id.empty()) c.fail(cl.mark, path, "missing required key 'product_id' for platform onenet");
            if (cl.keepalive < Duration{10'000} || cl.keepalive > Duration{1'800'000}) {
                c.fail(cl.mark, path + ".keepalive", "OneNET accepts a keepalive of 10s..1800s");
            }
            if (cl.max_rate == 0) cl.max_rate = 1.0;  // OneNET: 1 message/s per device
            break;
        case Platform::mqtt: break;
        case Platform::onenet_legacy:
        case Platform::aiot:
        case Platform::thingsboard:
            c.fail(cl.mark, path + ".platform", std::string("platform ") + to_string(cl.platform) +
                                                    " is not implemented yet; supported: onenet, mqtt");
            break;
    }
    if (cl.port == 0) cl.port = cl.tls ? 8883 : 1883;
    if (cl.tls && cl.tls->cert_file.empty() != cl.tls->key_file.empty()) {
        c.fail(cl.mark, path + ".tls", "cert_file and key_file go together (client certificate)");
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
    for (auto& cl : cfg.clouds) check_cloud(c, cl);
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
}

}  // namespace fieldlink::core
