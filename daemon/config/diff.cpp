#include "config/diff.hpp"

#include <map>
#include <tuple>
#include <utility>

namespace fieldlink::config {

// A field added to one of these structs must be compared below: the sizes are checked where
// they are known (x86-64 with libstdc++, the build every change goes through first).
#if defined(__x86_64__) && defined(__GLIBCXX__)
static_assert(sizeof(GatewayConfig) == 344, "GatewayConfig changed: update same_gateway");
static_assert(sizeof(ModbusServerConfig) == 112, "ModbusServerConfig changed: update same_modbus_listener");
static_assert(sizeof(TlsConfig) == 96, "TlsConfig changed: update same_cloud");
static_assert(sizeof(CloudConfig) == 576, "CloudConfig changed: update same_cloud");
static_assert(sizeof(Option) == 88, "Option changed: update same_option");
static_assert(sizeof(BusConfig) == 192, "BusConfig changed: update same_bus");
static_assert(sizeof(BusConfig::Timing) == 48, "BusConfig::Timing changed: update same_bus");
static_assert(sizeof(PointConfig) == 296, "PointConfig changed: update same_point");
static_assert(sizeof(PointConfig::Command) == 128, "PointConfig::Command changed: update same_point");
static_assert(sizeof(DeviceConfig) == 512, "DeviceConfig changed: update same_device");
#endif

namespace {

template <typename T, typename Same>
bool same_list(const std::vector<T>& a, const std::vector<T>& b, Same same) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (!same(a[i], b[i])) return false;
    }
    return true;
}

bool same_tls(const std::optional<TlsConfig>& a, const std::optional<TlsConfig>& b) {
    if (a.has_value() != b.has_value()) return false;
    if (!a) return true;
    return std::tie(a->ca_file, a->cert_file, a->key_file) == std::tie(b->ca_file, b->cert_file, b->key_file);
}

bool same_keys(const std::map<std::string, Mark>& a, const std::map<std::string, Mark>& b) {
    if (a.size() != b.size()) return false;
    for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j) {
        if (i->first != j->first) return false;
    }
    return true;
}

bool same_command(const PointConfig::Command& a, const PointConfig::Command& b) {
    return std::tie(a.name, a.text, a.value) == std::tie(b.name, b.text, b.value);
}

bool same_point(const PointConfig& a, const PointConfig& b) {
    return std::tie(a.name, a.area, a.address, a.type, a.order, a.scale, a.offset, a.bit, a.length, a.writable, a.min,
                    a.max, a.deadband, a.deadband_percent, a.on_change, a.heartbeat, a.report, a.event, a.trigger,
                    a.trigger_given, a.link, a.field, a.eng_unit, a.poll, a.poll_interval, a.aggregate,
                    a.aggregate_given) == std::tie(b.name, b.area, b.address, b.type, b.order, b.scale, b.offset, b.bit,
                                                   b.length, b.writable, b.min, b.max, b.deadband, b.deadband_percent,
                                                   b.on_change, b.heartbeat, b.report, b.event, b.trigger,
                                                   b.trigger_given, b.link, b.field, b.eng_unit, b.poll,
                                                   b.poll_interval, b.aggregate, b.aggregate_given) &&
           same_list(a.commands, b.commands, same_command);
}

bool same_option(const DriverOption& a, const DriverOption& b) {
    return a.key == b.key && a.value == b.value;
}

}  // namespace

// Only where the Modbus server listens makes a reload restart everything; its map, limits and
// exceptions are applied in place (serve::Server::reconfigure), its clients staying connected.
bool same_modbus_listener(const ModbusServerConfig& a, const ModbusServerConfig& b) {
    return std::tie(a.host, a.port) == std::tie(b.host, b.port);
}

bool same_gateway(const GatewayConfig& a, const GatewayConfig& b) {
    // log_level and strict are left out: a reload applies them without restarting anything.
    return std::tie(a.data_dir, a.status_dir, a.plugin_dir, a.clock, a.store_on_disk, a.store_max_bytes,
                    a.store_max_age, a.store_sync, a.dns_servers, a.dns_timeout, a.http_host, a.http_port) ==
               std::tie(b.data_dir, b.status_dir, b.plugin_dir, b.clock, b.store_on_disk, b.store_max_bytes,
                        b.store_max_age, b.store_sync, b.dns_servers, b.dns_timeout, b.http_host, b.http_port) &&
           same_modbus_listener(a.modbus_server, b.modbus_server);
}

bool same_cloud(const CloudConfig& a, const CloudConfig& b) {
    return std::tie(a.name, a.platform, a.host, a.port, a.product_id, a.keepalive, a.token_method, a.token_ttl,
                    a.token_expiry, a.product_key, a.username, a.password, a.client_id, a.qos, a.max_rate,
                    a.max_inflight, a.max_payload_size, a.command_ttl, a.remote_config, a.remote_config_deadline,
                    a.diagnostics) == std::tie(b.name, b.platform, b.host, b.port, b.product_id, b.keepalive,
                                               b.token_method, b.token_ttl, b.token_expiry, b.product_key, b.username,
                                               b.password, b.client_id, b.qos, b.max_rate, b.max_inflight,
                                               b.max_payload_size, b.command_ttl, b.remote_config,
                                               b.remote_config_deadline, b.diagnostics) &&
           same_list(a.options, b.options, same_option) && same_tls(a.tls, b.tls) && same_keys(a.given, b.given);
}

bool same_bus(const BusConfig& a, const BusConfig& b) {
    const auto& s = a.timing;
    const auto& t = b.timing;
    return std::tie(a.name, a.driver, a.retries, a.backoff_max, a.max_gap, a.turnaround) ==
               std::tie(b.name, b.driver, b.retries, b.backoff_max, b.max_gap, b.turnaround) &&
           same_list(a.options, b.options, same_option) &&
           std::tie(s.request_overhead_us, s.register_us, s.bit_us, s.max_registers, s.max_bits, s.unit_min, s.unit_max,
                    s.shared_line) == std::tie(t.request_overhead_us, t.register_us, t.bit_us, t.max_registers,
                                               t.max_bits, t.unit_min, t.unit_max, t.shared_line);
}

bool same_device(const DeviceConfig& a, const DeviceConfig& b) {
    return std::tie(a.name, a.cloud, a.bus, a.unit, a.key, a.product_id, a.product_key, a.device_id, a.gateway, a.via,
                    a.link_event, a.template_name, a.units, a.unit_given, a.interval_given, a.interval, a.publish,
                    a.max_gap, a.retired) == std::tie(b.name, b.cloud, b.bus, b.unit, b.key, b.product_id,
                                                      b.product_key, b.device_id, b.gateway, b.via, b.link_event,
                                                      b.template_name, b.units, b.unit_given, b.interval_given,
                                                      b.interval, b.publish, b.max_gap, b.retired) &&
           same_list(a.points, b.points, same_point);
}

void align_devices(const Config& prev, Config& next) {
    std::map<std::string, std::size_t> fresh;  // name -> index in next, before aligning
    for (std::size_t i = 0; i < next.devices.size(); ++i) fresh.emplace(next.devices[i].name, i);
    std::vector<DeviceConfig> out;
    out.reserve(prev.devices.size() + next.devices.size());
    std::vector<std::size_t> moved(next.devices.size(), kUnresolved);  // old position -> new
    std::vector<bool> placed(next.devices.size(), false);
    for (const auto& p : prev.devices) {
        auto it = p.retired ? fresh.end() : fresh.find(p.name);
        if (it == fresh.end()) {
            DeviceConfig r;
            r.retired = true;
            r.cloud_index = kUnresolved;
            r.bus_index = kUnresolved;
            out.push_back(std::move(r));
            continue;
        }
        moved[it->second] = out.size();
        placed[it->second] = true;
        out.push_back(std::move(next.devices[it->second]));
    }
    for (std::size_t i = 0; i < next.devices.size(); ++i) {
        if (placed[i]) continue;
        moved[i] = out.size();
        out.push_back(std::move(next.devices[i]));
    }
    for (auto& d : out) {
        if (d.via_index) d.via_index = moved[*d.via_index];
    }
    next.devices = std::move(out);
}

}  // namespace fieldlink::config
