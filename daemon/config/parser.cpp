#include "parser.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "core/suggest.hpp"
#include "points_file.hpp"
#include "reader.hpp"

namespace fieldlink::config {
namespace {

constexpr std::int64_t kMaxAddress = 65535;
constexpr Duration kMaxDuration{86'400'000LL * 3650};

std::optional<std::string> parse_method(std::string_view s) {
    if (s == "md5" || s == "sha1" || s == "sha256") return std::string(s);
    return std::nullopt;
}

std::optional<std::string> parse_log_level(std::string_view s) {
    for (const char* l : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
        if (s == l) return std::string(s);
    }
    return std::nullopt;
}

// A resolver address as c-ares takes it: an IPv4 or IPv6 literal, with an optional port
// ("192.168.1.1", "192.168.1.1:5353", "2001:db8::1", "[2001:db8::1]:53"). Host names are refused:
// resolving the resolver would need a resolver.
bool valid_dns_server(const std::string& s) {
    auto port_ok = [](std::string_view p) {
        unsigned v = 0;
        auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
        return ec == std::errc() && end == p.data() + p.size() && v >= 1 && v <= 65535;
    };
    unsigned char buf[16];
    std::string host = s;
    if (!s.empty() && s.front() == '[') {
        const auto close = s.find(']');
        if (close == std::string::npos) return false;
        host = s.substr(1, close - 1);
        const std::string rest = s.substr(close + 1);
        if (!rest.empty() && (rest.front() != ':' || !port_ok(std::string_view(rest).substr(1)))) return false;
        return inet_pton(AF_INET6, host.c_str(), buf) == 1;
    }
    if (inet_pton(AF_INET6, s.c_str(), buf) == 1) return true;
    if (const auto colon = s.find(':'); colon != std::string::npos) {
        if (!port_ok(std::string_view(s).substr(colon + 1))) return false;
        host = s.substr(0, colon);
    }
    return inet_pton(AF_INET, host.c_str(), buf) == 1;
}

void add_dns_server(GatewayConfig& g, const YAML::Node& n, Reader& r) {
    auto v = r.string(n);
    if (!v) return;
    if (!valid_dns_server(*v)) {
        r.error(n, "'" + *v +
                       "' is not a resolver address; expected an IPv4 or IPv6 address with an optional port, e.g. "
                       "192.168.1.1, 192.168.1.1:5353, [2001:db8::1]:53");
        return;
    }
    g.dns_servers.push_back(*v);
}

template <typename T, typename V>
void set_if(T& dst, const std::optional<V>& v) {
    if (v) dst = static_cast<T>(*v);
}

// A listen address: PORT (on 127.0.0.1) or HOST:PORT ([::1]:PORT); none (and an error) when bad.
std::optional<std::pair<std::string, int>> listen_address(const YAML::Node& n, Reader& r, const char* what,
                                                          const char* example) {
    auto text = r.scalar(n, what);
    if (!text) return std::nullopt;
    std::string host = "127.0.0.1", port = *text;
    if (const auto colon = text->rfind(':'); colon != std::string::npos) {
        host = text->substr(0, colon);
        port = text->substr(colon + 1);
        if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    }
    char* end = nullptr;
    const long p = std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || p < 1 || p > 65535 || host.empty()) {
        r.error(n, "'" + *text +
                       "' is not a listen address; expected a port 1..65535 (on 127.0.0.1) or HOST:PORT, like " +
                       example);
        return std::nullopt;
    }
    return std::make_pair(host, static_cast<int>(p));
}

// ---- gateway.modbus_server ----------------------------------------------------------------
const Field<ServedPoint> kServedFields[] = {
    {"device", true, [](ServedPoint& p, const YAML::Node& n, Reader& r) { set_if(p.device, r.string(n)); }},
    {"point", true, [](ServedPoint& p, const YAML::Node& n, Reader& r) { set_if(p.point, r.string(n)); }},
    {"unit", false,
     [](ServedPoint& p, const YAML::Node& n, Reader& r) {
         set_if(p.unit, r.integer(n, 0, 255, "the unit id clients address, 0..255"));
     }},
    {"area", false,
     [](ServedPoint& p, const YAML::Node& n, Reader& r) {
         set_if(p.area, r.enumeration<Area>(n, parse_area, "coil, discrete, input, holding"));
     }},
    {"address", true,
     [](ServedPoint& p, const YAML::Node& n, Reader& r) {
         set_if(p.address, r.integer(n, 0, kMaxAddress, "a 0-based protocol address 0..65535"));
     }},
};

const Field<ModbusServerConfig> kModbusServerFields[] = {
    {"listen", true,
     [](ModbusServerConfig& m, const YAML::Node& n, Reader& r) {
         if (auto at = listen_address(n, r, "a port (5020, on 127.0.0.1) or HOST:PORT (0.0.0.0:502)", "0.0.0.0:502")) {
             std::tie(m.host, m.port) = *at;
         }
     }},
    {"max_clients", false,
     [](ModbusServerConfig& m, const YAML::Node& n, Reader& r) {
         set_if(m.max_clients, r.integer(n, 1, 1000, "clients served at once, 1..1000"));
     }},
    {"idle_timeout", false,
     [](ModbusServerConfig& m, const YAML::Node& n, Reader& r) {
         set_if(m.idle_timeout, r.duration(n, Duration{1000}, Duration{86'400'000}));
     }},
    {"stale_after", false,
     [](ModbusServerConfig& m, const YAML::Node& n, Reader& r) {
         set_if(m.stale_after, r.duration(n, Duration{0}, Duration{86'400'000}));
     }},
    {"stale_exception", false,
     [](ModbusServerConfig& m, const YAML::Node& n, Reader& r) {
         auto v = r.integer(n, 1, 11,
                            "a Modbus exception code: 4 (server device failure) or 11 (gateway target "
                            "device failed to respond)");
         if (v && *v != 4 && *v != 11) {
             r.error(n, std::to_string(*v) + " is not an exception for a stale value; expected 4 or 11");
             return;
         }
         set_if(m.stale_exception, v);
     }},
    {"map", true,
     [](ModbusServerConfig& m, const YAML::Node& n, Reader& r) {
         if (!n.IsSequence()) {
             r.error(n, "expected a list of { device, point, unit, area, address }");
             return;
         }
         for (std::size_t i = 0; i < n.size(); ++i) {
             Reader::Scope s(r, "[" + std::to_string(i) + "]");
             ServedPoint p;
             p.mark = Reader::mark_of(n[i]);
             if (r.map(n[i], kServedFields, p)) m.map.push_back(std::move(p));
         }
     }},
};

// ---- gateway ----------------------------------------------------------------------------
const Field<GatewayConfig> kGatewayFields[] = {
    {"data_dir", false, [](GatewayConfig& g, const YAML::Node& n, Reader& r) { set_if(g.data_dir, r.string(n)); }},
    {"status_dir", false, [](GatewayConfig& g, const YAML::Node& n, Reader& r) { set_if(g.status_dir, r.string(n)); }},
    {"log_level", false,
     [](GatewayConfig& g, const YAML::Node& n, Reader& r) {
         set_if(g.log_level,
                r.enumeration<std::string>(n, parse_log_level, "trace, debug, info, warn, error, critical, off"));
     }},
    {"plugin_dir", false, [](GatewayConfig& g, const YAML::Node& n, Reader& r) { set_if(g.plugin_dir, r.string(n)); }},
    {"strict", false, [](GatewayConfig& g, const YAML::Node& n, Reader& r) { set_if(g.strict, r.boolean(n)); }},
    {"clock", false,
     [](GatewayConfig& g, const YAML::Node& n, Reader& r) {
         set_if(g.clock, r.enumeration<core::ClockPolicy>(
                             n,
                             [](std::string_view x) -> std::optional<core::ClockPolicy> {
                                 if (x == "auto") return core::ClockPolicy::automatic;
                                 if (x == "wait") return core::ClockPolicy::wait;
                                 if (x == "off") return core::ClockPolicy::off;
                                 return std::nullopt;
                             },
                             "auto, wait, off"));
     }},
    {"store", false,
     [](GatewayConfig& g, const YAML::Node& n, Reader& r) {
         auto v = r.enumeration<std::string>(
             n,
             [](std::string_view x) -> std::optional<std::string> {
                 if (x == "disk" || x == "memory") return std::string(x);
                 return std::nullopt;
             },
             "disk, memory");
         if (v) g.store_on_disk = *v == "disk";
     }},
    {"store_max_bytes", false,
     [](GatewayConfig& g, const YAML::Node& n, Reader& r) {
         set_if(g.store_max_bytes, r.size(n, std::uint64_t{64} * 1024));
     }},
    {"store_max_age", false,
     [](GatewayConfig& g, const YAML::Node& n, Reader& r) {
         set_if(g.store_max_age, r.duration(n, Duration{0}, kMaxDuration));
     }},
    {"dns_servers", false,
     [](GatewayConfig& g, const YAML::Node& n, Reader& r) {
         if (n.IsScalar()) {
             add_dns_server(g, n, r);
             return;
         }
         if (!n.IsSequence()) {
             r.error(n, "expected a list of resolver addresses, e.g. [ 192.168.1.1, \"[2001:db8::1]:53\" ]");
             return;
         }
         for (std::size_t i = 0; i < n.size(); ++i) {
             Reader::Scope s(r, "[" + std::to_string(i) + "]");
             add_dns_server(g, n[i], r);
         }
     }},
    {"http", false,
     [](GatewayConfig& g, const YAML::Node& n, Reader& r) {
         if (auto at = listen_address(n, r, "a port (9910, on 127.0.0.1) or HOST:PORT ([::1]:9910, 0.0.0.0:9910)",
                                      "127.0.0.1:9910 or [::1]:9910")) {
             std::tie(g.http_host, g.http_port) = *at;
         }
     }},
    {"modbus_server", false,
     [](GatewayConfig& g, const YAML::Node& n, Reader& r) {
         g.modbus_server.mark = Reader::mark_of(n);
         r.map(n, kModbusServerFields, g.modbus_server);
     }},
    {"dns_timeout", false,
     [](GatewayConfig& g, const YAML::Node& n, Reader& r) {
         set_if(g.dns_timeout, r.duration(n, Duration{100}, Duration{60'000}));
     }},
    {"store_sync", false,
     [](GatewayConfig& g, const YAML::Node& n, Reader& r) {
         if (n.IsScalar() && n.Scalar() == "batch")
             g.store_sync = Duration{0};
         else
             set_if(g.store_sync, r.duration(n, Duration{10}, Duration{60'000}));
     }},
};

// ---- clouds -----------------------------------------------------------------------------
const Field<TlsConfig> kTlsFields[] = {
    {"ca_file", false, [](TlsConfig& t, const YAML::Node& n, Reader& r) { set_if(t.ca_file, r.string(n)); }},
    {"cert_file", false, [](TlsConfig& t, const YAML::Node& n, Reader& r) { set_if(t.cert_file, r.string(n)); }},
    {"key_file", false, [](TlsConfig& t, const YAML::Node& n, Reader& r) { set_if(t.key_file, r.string(n)); }},
};

const Field<CloudConfig> kCloudFields[] = {
    {"platform", true,
     [](CloudConfig& c, const YAML::Node& n, Reader& r) {
         set_if(c.platform, r.string(n));  // the platform registry checks the name
     }},
    {"host", true, [](CloudConfig& c, const YAML::Node& n, Reader& r) { set_if(c.host, r.string(n)); }},
    {"port", false,
     [](CloudConfig& c, const YAML::Node& n, Reader& r) {
         set_if(c.port, r.integer(n, 1, 65535, "a TCP port 1..65535"));
     }},
    {"tls", false,
     [](CloudConfig& c, const YAML::Node& n, Reader& r) {
         TlsConfig t;
         if (r.map(n, kTlsFields, t)) c.tls = t;
     }},
    {"product_id", false, [](CloudConfig& c, const YAML::Node& n, Reader& r) { set_if(c.product_id, r.string(n)); }},
    {"keepalive", false,
     [](CloudConfig& c, const YAML::Node& n, Reader& r) {
         set_if(c.keepalive, r.duration(n, Duration{1000}, Duration{65'535'000}));
     }},
    {"token_method", false,
     [](CloudConfig& c, const YAML::Node& n, Reader& r) {
         set_if(c.token_method, r.enumeration<std::string>(n, parse_method, "md5, sha1, sha256"));
     }},
    {"token_ttl", false,
     [](CloudConfig& c, const YAML::Node& n, Reader& r) {
         set_if(c.token_ttl, r.duration(n, Duration{60'000}, kMaxDuration));
     }},
    {"token_expiry", false,
     [](CloudConfig& c, const YAML::Node& n, Reader& r) {
         set_if(c.token_expiry, r.integer(n, 1, INT64_C(253402300799), "an absolute expiry in Unix seconds"));
     }},
    {"product_key", false, [](CloudConfig& c, const YAML::Node& n, Reader& r) { set_if(c.product_key, r.secret(n)); }},
    {"username", false, [](CloudConfig& c, const YAML::Node& n, Reader& r) { set_if(c.username, r.string(n)); }},
    {"password", false, [](CloudConfig& c, const YAML::Node& n, Reader& r) { set_if(c.password, r.secret(n)); }},
    {"client_id", false, [](CloudConfig& c, const YAML::Node& n, Reader& r) { set_if(c.client_id, r.string(n)); }},
    {"qos", false, [](CloudConfig& c, const YAML::Node& n, Reader& r) { set_if(c.qos, r.integer(n, 0, 1, "0 or 1")); }},
    {"max_rate", false,
     [](CloudConfig& c, const YAML::Node& n, Reader& r) {
         auto v = r.number(n);
         if (v && *v < 0)
             r.error(n, "max_rate must be >= 0 messages per second (0 = unlimited)");
         else
             set_if(c.max_rate, v);
     }},
    {"max_payload_size", false,
     [](CloudConfig& c, const YAML::Node& n, Reader& r) { set_if(c.max_payload_size, r.size(n, 4096)); }},
    {"max_inflight", false,
     [](CloudConfig& c, const YAML::Node& n, Reader& r) {
         set_if(c.max_inflight, r.integer(n, 1, 1000, "1..1000 messages"));
     }},
    {"command_ttl", false,
     [](CloudConfig& c, const YAML::Node& n, Reader& r) {
         set_if(c.command_ttl, r.duration(n, Duration{1000}, Duration{86'400'000}));
     }},
    {"remote_config", false,
     [](CloudConfig& c, const YAML::Node& n, Reader& r) { set_if(c.remote_config, r.boolean(n)); }},
    {"diagnostics", false, [](CloudConfig& c, const YAML::Node& n, Reader& r) { set_if(c.diagnostics, r.boolean(n)); }},
    {"remote_config_deadline", false,
     [](CloudConfig& c, const YAML::Node& n, Reader& r) {
         set_if(c.remote_config_deadline, r.duration(n, Duration{5000}, Duration{3'600'000}));
     }},
};

}  // namespace

std::vector<const char*> cloud_keys() {
    std::vector<const char*> keys;
    for (const auto& f : kCloudFields) keys.push_back(f.key);
    return keys;
}

namespace {

// A section whose own keys go through `fields` and whose other keys (single values) belong to
// something else, checked later by it: a bus's driver, a cloud's platform. False when `node` is
// not a mapping (`expected` says what it should have been).
template <typename T, std::size_t N>
bool parse_with_options(const YAML::Node& node, const Field<T> (&fields)[N], T& out, std::vector<Option>& options,
                        Reader& r, const char* expected, const char* option_is) {
    if (!node.IsMap()) {
        r.error(node, expected);
        return false;
    }
    r.unique_keys(node);
    for (const auto& kv : node) {
        const auto key = kv.first.as<std::string>("");
        Reader::Scope s(r, key);
        const auto* f = std::find_if(std::begin(fields), std::end(fields),
                                     [&key](const Field<T>& field) { return key == field.key; });
        if (f != std::end(fields)) {
            f->parse(out, kv.second, r);
        } else if (auto v = r.scalar(kv.second, option_is)) {
            options.push_back(Option{key, *v, Reader::mark_of(kv.first)});
        }
    }
    for (const auto& f : fields) {
        if (f.required && !node[f.key]) r.missing_key(node, f.key);
    }
    return true;
}

// Keys of the cloud table go through it; everything else is the platform's own key, checked by
// the platform (daemon/platforms/registry.cpp) against the keys it declares.
void parse_cloud(const YAML::Node& node, CloudConfig& c, Reader& r) {
    if (!parse_with_options(node, kCloudFields, c, c.options, r,
                            "expected a mapping with 'platform:', 'host:' and the platform's keys",
                            "a single value for a platform's key"))
        return;
    for (const auto& kv : node) c.given[kv.first.as<std::string>("")] = Reader::mark_of(kv.first);
}

// ---- buses ------------------------------------------------------------------------------
const Field<BusConfig> kBusCoreFields[] = {
    {"driver", true, [](BusConfig& b, const YAML::Node& n, Reader& r) { set_if(b.driver, r.string(n)); }},
    {"retries", false,
     [](BusConfig& b, const YAML::Node& n, Reader& r) { set_if(b.retries, r.integer(n, 0, 10, "0..10 retries")); }},
    {"backoff_max", false,
     [](BusConfig& b, const YAML::Node& n, Reader& r) {
         set_if(b.backoff_max, r.duration(n, Duration{100}, Duration{3'600'000}));
     }},
    {"max_gap", false,
     [](BusConfig& b, const YAML::Node& n, Reader& r) { set_if(b.max_gap, r.integer(n, 0, 124, "0..124 registers")); }},
    {"turnaround", false,
     [](BusConfig& b, const YAML::Node& n, Reader& r) {
         set_if(b.turnaround, r.duration(n, Duration{0}, Duration{10'000}));
     }},
};

// Core keys go through the table; everything else is a driver option, checked later against
// the options the driver plugin declares.
void parse_bus(const YAML::Node& node, BusConfig& bus, Reader& r) {
    parse_with_options(node, kBusCoreFields, bus, bus.options, r,
                       "expected a mapping with 'driver:' and the driver's options",
                       "a single value for a driver option");
}

// ---- devices and points -----------------------------------------------------------------
// `deadband: 0.5` (engineering units) or `deadband: 2%` (of the value last sent).
void parse_deadband(PointConfig& p, const YAML::Node& n, Reader& r) {
    auto text = r.scalar(n, "a number, or a percentage like 2%");
    if (!text) return;
    std::string t = *text;
    p.deadband_percent = !t.empty() && t.back() == '%';
    if (p.deadband_percent) t.pop_back();
    char* end = nullptr;
    const double v = std::strtod(t.c_str(), &end);
    if (t.empty() || *end != '\0' || !std::isfinite(v) || v < 0 || (p.deadband_percent && v > 100)) {
        r.error(n, "'" + *text +
                       "' is not a deadband; expected a number >= 0 (engineering units) or a percentage "
                       "0%..100% of the value last sent");
        return;
    }
    p.deadband = v;
}

// `commands: { on: 1, off: 0 }`: names a plain command may use instead of a value.
void parse_commands(PointConfig& p, const YAML::Node& n, Reader& r) {
    if (!n.IsMap()) {
        r.error(n, "expected a mapping of command names to values, like { on: 1, off: 0 }");
        return;
    }
    r.unique_keys(n);
    for (const auto& kv : n) {
        const auto name = kv.first.as<std::string>("");
        Reader::Scope s(r, name);
        if (name.empty()) {
            r.error(kv.first, "expected a command name");
            continue;
        }
        if (auto v = r.scalar(kv.second, "a single value for the command")) {
            p.commands.push_back({name, *v, Reader::mark_of(kv.first), core::Value{}});
        }
    }
}

// `poll: 10s` (its own interval), `poll: once` or `poll: on_write`.
void parse_poll(PointConfig& p, const YAML::Node& n, Reader& r) {
    const auto text = n.IsScalar() ? n.Scalar() : std::string();
    if (text == "once" || text == "on_write") {
        p.poll = text == "once" ? PollClass::once : PollClass::on_write;
        return;
    }
    if (!text.empty() && std::isalpha(static_cast<unsigned char>(text[0]))) {
        r.error(n, "unknown value '" + text + "'" + core::did_you_mean(text, {"once", "on_write"}) +
                       "; expected a duration like 10s, 'once' or 'on_write'");
        return;
    }
    if (auto d = r.duration(n, Duration{10}, Duration{86'400'000})) {
        p.poll = PollClass::interval;
        p.poll_interval = *d;
    }
}

const Field<PointConfig> kPointFields[] = {
    {"name", true, [](PointConfig& p, const YAML::Node& n, Reader& r) { set_if(p.name, r.string(n)); }},
    {"area", false,
     [](PointConfig& p, const YAML::Node& n, Reader& r) {
         set_if(p.area, r.enumeration<Area>(n, parse_area, "coil, discrete, input, holding"));
     }},
    {"address", false,
     [](PointConfig& p, const YAML::Node& n, Reader& r) {
         set_if(p.address, r.integer(n, 0, kMaxAddress,
                                     "a 0-based protocol address 0..65535 (register 40001 is holding address 0)"));
     }},
    {"field", false, [](PointConfig& p, const YAML::Node& n, Reader& r) { set_if(p.field, r.string(n)); }},
    {"unit", false, [](PointConfig& p, const YAML::Node& n, Reader& r) { set_if(p.eng_unit, r.string(n)); }},
    {"type", false,
     [](PointConfig& p, const YAML::Node& n, Reader& r) {
         set_if(p.type,
                r.enumeration<DataType>(
                    n, parse_type, "bool, int16, uint16, int32, uint32, int64, uint64, float32, float64, string, bcd"));
     }},
    {"order", false,
     [](PointConfig& p, const YAML::Node& n, Reader& r) {
         set_if(p.order, r.enumeration<WordOrder>(n, parse_order, "abcd, badc, cdab, dcba"));
     }},
    {"scale", false, [](PointConfig& p, const YAML::Node& n, Reader& r) { set_if(p.scale, r.number(n)); }},
    {"offset", false, [](PointConfig& p, const YAML::Node& n, Reader& r) { set_if(p.offset, r.number(n)); }},
    {"bit", false,
     [](PointConfig& p, const YAML::Node& n, Reader& r) {
         set_if(p.bit, r.integer(n, 0, 15, "a bit number 0..15 within the register"));
     }},
    {"length", false,
     [](PointConfig& p, const YAML::Node& n, Reader& r) {
         set_if(p.length, r.integer(n, 1, 125, "1..125 registers"));
     }},
    {"writable", false, [](PointConfig& p, const YAML::Node& n, Reader& r) { set_if(p.writable, r.boolean(n)); }},
    {"min", false, [](PointConfig& p, const YAML::Node& n, Reader& r) { p.min = r.number(n); }},
    {"max", false, [](PointConfig& p, const YAML::Node& n, Reader& r) { p.max = r.number(n); }},
    {"commands", false, parse_commands},
    {"deadband", false, parse_deadband},
    {"on_change", false, [](PointConfig& p, const YAML::Node& n, Reader& r) { set_if(p.on_change, r.boolean(n)); }},
    {"heartbeat", false,
     [](PointConfig& p, const YAML::Node& n, Reader& r) {
         set_if(p.heartbeat, r.duration(n, Duration{1000}, Duration{86'400'000}));
     }},
    {"report", false,
     [](PointConfig& p, const YAML::Node& n, Reader& r) {
         set_if(p.report, r.enumeration<Report>(n, parse_report, "property, event, attribute"));
     }},
    {"event", false, [](PointConfig& p, const YAML::Node& n, Reader& r) { set_if(p.event, r.string(n)); }},
    {"poll", false, parse_poll},
    {"aggregate", false,
     [](PointConfig& p, const YAML::Node& n, Reader& r) {
         if (auto a = r.enumeration<Aggregate>(n, parse_aggregate, "last, min, max, mean, count")) {
             p.aggregate = *a;
             p.aggregate_given = true;
         }
     }},
    {"trigger", false,
     [](PointConfig& p, const YAML::Node& n, Reader& r) {
         if (auto t = r.enumeration<Trigger>(n, parse_trigger, "change, rising, none")) {
             p.trigger = *t;
             p.trigger_given = true;
         }
     }},
};

// One point (a mapping of the YAML's `points:` or a row of a points file), appended to `d`.
void parse_point(DeviceConfig& d, const YAML::Node& n, Reader& r) {
    PointConfig p;
    p.mark = Reader::mark_of(n);
    if (n.IsMap() && n["area"] && is_bit_area(parse_area(n["area"].as<std::string>("")).value_or(Area::holding))) {
        p.type = DataType::boolean;  // default type of bit areas
    }
    if (!r.map(n, kPointFields, p)) return;
    if (!p.field.empty()) {  // a driver's named field: an input float64 placed by validation
        if (n["area"] || n["address"]) {
            r.error(n["area"] ? n["area"] : n["address"],
                    "a point with 'field' takes no area or address (the driver places the field)");
            return;
        }
        if (n["type"] && p.type != DataType::float64) {
            r.error(n["type"], "a field is read as a number (float64); leave 'type' out");
            return;
        }
        p.area = Area::input;
        p.type = DataType::float64;
    } else if (!n["area"] || !n["address"]) {
        r.missing_key(n, n["area"] ? "address" : "area");
        return;
    }
    d.points.push_back(std::move(p));
}

void parse_points(DeviceConfig& d, const YAML::Node& n, Reader& r) {
    if (!n.IsSequence()) {
        r.error(n, "expected a list of points (lines starting with '- name:')");
        return;
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
        Reader::Scope s(r, "[" + std::to_string(i) + "]");
        parse_point(d, n[i], r);
    }
}

// `points_file: meter.csv`: the rows of a CSV register map (config/points_file.hpp), relative to
// the main configuration file's directory.
void parse_points_file(DeviceConfig& d, const YAML::Node& n, Reader& r) {
    const auto name = r.string(n);
    if (!name) return;
    const std::string path = resolve_points_file(*name, Reader::main_dir());
    std::string text, why;
    if (!read_file(path, text, &why)) {
        r.error(n, "points file " + path + ": " +
                       (why == "cannot open the configuration file" ? std::string("cannot open it") : why));
        return;
    }
    auto file = std::make_shared<const std::string>(path);
    const auto rows = read_points_csv(text, file, r);
    for (const auto& row : rows) {
        Reader::Scope s(r, "[line " + std::to_string(row.mark.line) + "]");
        RowMarks marks(row);
        parse_point(d, row.map, r);
    }
}

const Field<DeviceConfig> kDeviceFields[] = {
    {"name", true, [](DeviceConfig& d, const YAML::Node& n, Reader& r) { set_if(d.name, r.string(n)); }},
    {"cloud", true, [](DeviceConfig& d, const YAML::Node& n, Reader& r) { set_if(d.cloud, r.string(n)); }},
    {"bus", true, [](DeviceConfig& d, const YAML::Node& n, Reader& r) { set_if(d.bus, r.string(n)); }},
    {"unit", false,
     [](DeviceConfig& d, const YAML::Node& n, Reader& r) {
         set_if(d.unit, r.integer(n, 0, 255, "a Modbus unit id 0..255 (1..247 on serial lines)"));
         d.unit_given = true;
     }},
    {"units", false,
     [](DeviceConfig& d, const YAML::Node& n, Reader& r) {
         set_if(d.units, r.scalar(n, "unit ids like 1-32 or 1-4,7"));
         d.units_mark = Reader::mark_of(n);
     }},
    {"template", false, [](DeviceConfig& d, const YAML::Node& n, Reader& r) { set_if(d.template_name, r.string(n)); }},
    {"key", false, [](DeviceConfig& d, const YAML::Node& n, Reader& r) { set_if(d.key, r.secret(n)); }},
    {"key_file", false, [](DeviceConfig& d, const YAML::Node& n, Reader& r) { set_if(d.key, r.secret_file(n)); }},
    {"product_id", false, [](DeviceConfig& d, const YAML::Node& n, Reader& r) { set_if(d.product_id, r.string(n)); }},
    {"product_key", false, [](DeviceConfig& d, const YAML::Node& n, Reader& r) { set_if(d.product_key, r.secret(n)); }},
    {"device_id", false, [](DeviceConfig& d, const YAML::Node& n, Reader& r) { set_if(d.device_id, r.string(n)); }},
    {"gateway", false, [](DeviceConfig& d, const YAML::Node& n, Reader& r) { set_if(d.gateway, r.boolean(n)); }},
    {"via", false, [](DeviceConfig& d, const YAML::Node& n, Reader& r) { set_if(d.via, r.string(n)); }},
    {"link_event", false, [](DeviceConfig& d, const YAML::Node& n, Reader& r) { set_if(d.link_event, r.string(n)); }},
    {"interval", false,
     [](DeviceConfig& d, const YAML::Node& n, Reader& r) {
         set_if(d.interval, r.duration(n, Duration{10}, Duration{86'400'000}));
         d.interval_given = true;
     }},
    {"publish", false,
     [](DeviceConfig& d, const YAML::Node& n, Reader& r) {
         set_if(d.publish, r.duration(n, Duration{10}, Duration{86'400'000}));
     }},
    {"max_gap", false,
     [](DeviceConfig& d, const YAML::Node& n, Reader& r) {
         set_if(d.max_gap, r.integer(n, 0, 124, "0..124 registers"));
     }},
    {"points", false, parse_points},
    {"points_file", false, parse_points_file},
};

const Field<TemplateConfig> kTemplateFields[] = {
    {"points", false,
     [](TemplateConfig& t, const YAML::Node& n, Reader& r) {
         DeviceConfig holder;
         parse_points(holder, n, r);
         t.points.insert(t.points.end(), holder.points.begin(), holder.points.end());
     }},
    {"points_file", false,
     [](TemplateConfig& t, const YAML::Node& n, Reader& r) {
         DeviceConfig holder;
         parse_points_file(holder, n, r);
         t.points.insert(t.points.end(), holder.points.begin(), holder.points.end());
     }},
    {"interval", false,
     [](TemplateConfig& t, const YAML::Node& n, Reader& r) {
         t.interval = r.duration(n, Duration{10}, Duration{86'400'000});
     }},
};

// "1-32", "1-4,7,9-10": the unit ids, in order; nullopt when malformed or out of 0..255.
std::optional<std::vector<int>> parse_units(const std::string& text) {
    std::vector<int> out;
    std::stringstream in(text);
    std::string part;
    while (std::getline(in, part, ',')) {
        int a = -1, b = -1;
        const auto dash = part.find('-');
        const std::string first = part.substr(0, dash);
        const std::string last = dash == std::string::npos ? first : part.substr(dash + 1);
        auto r1 = std::from_chars(first.data(), first.data() + first.size(), a);
        auto r2 = std::from_chars(last.data(), last.data() + last.size(), b);
        if (first.empty() || last.empty() || r1.ptr != first.data() + first.size() ||
            r2.ptr != last.data() + last.size() || a < 0 || b > 255 || a > b) {
            return std::nullopt;
        }
        for (int u = a; u <= b; ++u) out.push_back(u);
    }
    if (out.empty()) return std::nullopt;
    return out;
}

std::string with_unit(std::string s, int unit) {
    for (auto at = s.find("{unit}"); at != std::string::npos; at = s.find("{unit}", at)) {
        s.replace(at, 6, std::to_string(unit));
    }
    return s;
}

// Templates and unit ranges, before validation: a device with `template:` gets the template's
// points first (and its interval unless it has its own); one with `units:` becomes one device
// per unit id, `{unit}` in its name (and device_id) replaced by the id.
void expand_devices(Config& cfg, std::vector<ConfigError>& errors) {
    std::vector<DeviceConfig> out;
    for (std::size_t i = 0; i < cfg.devices.size(); ++i) {
        DeviceConfig& d = cfg.devices[i];
        const std::string path = device_path(i);
        if (!d.template_name.empty()) {
            auto t = std::find_if(cfg.templates.begin(), cfg.templates.end(),
                                  [&](const TemplateConfig& x) { return x.name == d.template_name; });
            if (t == cfg.templates.end()) {
                std::string names;
                std::vector<std::string> list;
                for (const auto& x : cfg.templates) {
                    names += (names.empty() ? "" : ", ") + x.name;
                    list.push_back(x.name);
                }
                errors.push_back({d.mark, path + ".template",
                                  "template '" + d.template_name + "' is not defined" +
                                      core::did_you_mean(d.template_name, list) +
                                      "; defined templates: " + (names.empty() ? "(none)" : names)});
                continue;
            }
            d.points.insert(d.points.begin(), t->points.begin(), t->points.end());
            if (t->interval && !d.interval_given) d.interval = *t->interval;
        }
        if (d.units.empty()) {
            out.push_back(std::move(d));
            continue;
        }
        auto units = parse_units(d.units);
        if (!units) {
            errors.push_back({d.units_mark, path + ".units",
                              "'" + d.units +
                                  "' is not a list of unit ids; expected ranges like 1-32 or 1-4,7 "
                                  "within 0..255"});
        } else if (d.unit_given) {
            errors.push_back({d.units_mark, path + ".units", "give either 'unit' or 'units', not both"});
        } else if (d.name.find("{unit}") == std::string::npos) {
            errors.push_back({d.mark, path + ".name",
                              "a device with 'units' needs {unit} in its name (like meter-{unit}), one name per "
                              "unit"});
        } else {
            for (int u : *units) {
                DeviceConfig one = d;
                one.name = with_unit(d.name, u);
                one.device_id = with_unit(d.device_id, u);
                one.unit = u;
                out.push_back(std::move(one));
            }
        }
    }
    cfg.devices = std::move(out);
}

// ---- sections ---------------------------------------------------------------------------
template <typename T, typename Fn>
void parse_named_map(const YAML::Node& n, Reader& r, std::vector<T>& out, Fn parse_one) {
    if (!n.IsMap()) {
        r.error(n, "expected a mapping of names to definitions");
        return;
    }
    r.unique_keys(n);
    for (const auto& kv : n) {
        T item;
        item.name = kv.first.as<std::string>("");
        item.mark = Reader::mark_of(kv.first);
        Reader::Scope s(r, item.name);
        parse_one(kv.second, item, r);
        out.push_back(std::move(item));
    }
}

struct TopLevel {
    Config* cfg;
};

const Field<TopLevel> kTopFields[] = {
    {"gateway", false, [](TopLevel& t, const YAML::Node& n, Reader& r) { r.map(n, kGatewayFields, t.cfg->gateway); }},
    {"templates", false,
     [](TopLevel& t, const YAML::Node& n, Reader& r) {
         parse_named_map(n, r, t.cfg->templates,
                         [](const YAML::Node& v, TemplateConfig& tc, Reader& rr) { rr.map(v, kTemplateFields, tc); });
     }},
    {"clouds", true,
     [](TopLevel& t, const YAML::Node& n, Reader& r) { parse_named_map(n, r, t.cfg->clouds, parse_cloud); }},
    {"buses", true,
     [](TopLevel& t, const YAML::Node& n, Reader& r) { parse_named_map(n, r, t.cfg->buses, parse_bus); }},
    {"devices", true,
     [](TopLevel& t, const YAML::Node& n, Reader& r) {
         if (!n.IsSequence()) {
             r.error(n, "expected a list of devices (lines starting with '- name:')");
             return;
         }
         for (std::size_t i = 0; i < n.size(); ++i) {
             Reader::Scope s(r, "[" + std::to_string(i) + "]");
             DeviceConfig d;
             d.mark = Reader::mark_of(n[i]);
             if (r.map(n[i], kDeviceFields, d)) t.cfg->devices.push_back(std::move(d));
         }
     }},
};

// file:line:column of a mark, for a message that names a second position.
std::string where(const Mark& m, const std::string& main_file) {
    return (m.file ? *m.file : main_file) + ":" + std::to_string(m.line) + ":" + std::to_string(m.column);
}

// A fragment's clouds, buses or templates joined to the configuration; a name defined twice is
// an error at the second definition naming the first.
template <typename T>
void merge_named(std::vector<T>& into, std::vector<T>& from, const char* section, const std::string& main_file,
                 std::vector<ConfigError>& errors) {
    for (auto& item : from) {
        auto it = std::find_if(into.begin(), into.end(), [&item](const T& x) { return x.name == item.name; });
        if (it != into.end()) {
            errors.push_back(ConfigError{item.mark, std::string(section) + "." + item.name,
                                         "defined twice: here and at " + where(it->mark, main_file)});
            continue;
        }
        into.push_back(std::move(item));
    }
}

// One file's YAML into `into` (every section optional when the configuration is split).
bool read_sections(const std::string& text, bool split, bool main, Config& into, std::vector<ConfigError>& errors) {
    YAML::Node root;
    try {
        root = YAML::Load(text);
    } catch (const YAML::DeepRecursion& e) {
        Mark at = Reader::mark_of(YAML::Node());
        at.line = e.mark.line + 1;
        at.column = e.mark.column + 1;
        errors.push_back(
            ConfigError{at, "",
                        "invalid YAML: nested too deep here (" + std::to_string(e.depth()) +
                            " levels of mappings or lists); a configuration needs a handful, expected far fewer"});
        return false;
    } catch (const YAML::Exception& e) {
        Mark at = Reader::mark_of(YAML::Node());
        at.line = e.mark.line + 1;
        at.column = e.mark.column + 1;
        errors.push_back(ConfigError{at, "", "invalid YAML: " + e.msg});
        return false;
    }
    Reader r(errors);
    if (!root.IsMap()) {
        r.error(root, main ? "expected a mapping with the sections gateway, clouds, buses, devices"
                           : "expected a mapping with the sections clouds, buses, templates, devices");
        return false;
    }
    if (!main && root["gateway"]) {
        r.error(root["gateway"], "the gateway section belongs in the main file only");
        return false;
    }
    TopLevel top{&into};
    if (!split) return r.map(root, kTopFields, top);
    Field<TopLevel> optional[std::size(kTopFields)];
    std::copy(std::begin(kTopFields), std::end(kTopFields), std::begin(optional));
    for (auto& f : optional) f.required = false;
    return r.map(root, optional, top);
}

}  // namespace

ParseResult parse_text(const std::string& text, const std::string& file) {
    return parse_files(text, file, {});
}

ParseResult parse_files(const std::string& text, const std::string& file, const std::vector<Fragment>& fragments) {
    ParseResult res;
    res.config.file = file;
    Reader::set_main_file(file);
    const bool split = !fragments.empty();
    if (!read_sections(text, split, true, res.config, res.errors)) return res;
    for (const auto& f : fragments) {
        Reader::FileScope scope(std::make_shared<const std::string>(f.path));
        Config part;
        if (!read_sections(f.text, true, false, part, res.errors)) continue;
        merge_named(res.config.clouds, part.clouds, "clouds", file, res.errors);
        merge_named(res.config.buses, part.buses, "buses", file, res.errors);
        merge_named(res.config.templates, part.templates, "templates", file, res.errors);
        for (auto& d : part.devices) {
            auto it = std::find_if(res.config.devices.begin(), res.config.devices.end(),
                                   [&d](const DeviceConfig& x) { return x.name == d.name; });
            if (it != res.config.devices.end()) {
                res.errors.push_back(ConfigError{d.mark, "devices." + d.name,
                                                 "device defined twice: here and at " + where(it->mark, file)});
                continue;
            }
            res.config.devices.push_back(std::move(d));
        }
    }
    if (split) {
        for (const char* section : {"clouds", "buses", "devices"}) {
            const bool empty = std::string(section) == "clouds"  ? res.config.clouds.empty()
                               : std::string(section) == "buses" ? res.config.buses.empty()
                                                                 : res.config.devices.empty();
            if (empty && res.errors.empty()) {
                res.errors.push_back(
                    ConfigError{Mark{}, section, "missing: neither the main file nor conf.d/*.yaml defines any"});
            }
        }
    }
    if (res.errors.empty()) expand_devices(res.config, res.errors);
    res.structure_ok = res.errors.empty();
    if (res.structure_ok) validate(res.config, res.errors);
    return res;
}

bool read_file(const std::string& path, std::string& text, std::string* why) {
    std::ifstream in(path);
    if (!in) {
        if (why) *why = "cannot open the configuration file";
        return false;
    }
    in.seekg(0, std::ios::end);
    const auto size = static_cast<std::uint64_t>(std::max<std::streamoff>(0, in.tellg()));
    in.seekg(0, std::ios::beg);
    if (size > kMaxConfigBytes) {
        if (why) {
            *why = "the file is " + std::to_string(size) + " bytes; a configuration is read up to " +
                   std::to_string(kMaxConfigBytes / (std::uint64_t{1024} * 1024)) +
                   " MiB (expected a configuration, not a data file)";
        }
        return false;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
    return true;
}

}  // namespace fieldlink::config
